/* codegen/knob.c -- schedule knobs: the environment's A/B switches, per kernel from a tuning
 * table (ir/tune.h, docs/tune.md).
 *
 * The templates and emitters read their switches through cg_knob(NAME): the knob of the
 * kernel being lowered or emitted when the tuning table's entry for its key sets NAME, else
 * $NAME.  cg_lower and the emitters enter a kernel's entry (cg_knob_enter) around the work on
 * that kernel; the current entry is per thread (the LLVM emitter builds modules in threads).
 * Only the knobs of the table below act per kernel: the graph-wide switches (SEGC_LAYOUT,
 * SEGC_PROLOGUE, SEGC_NORM_STATS, SEGC_ACT_BF16, SEGC_PREPACK) change what the passes
 * fuse and plan, so kernels and their keys, and stay in the environment. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"

/* name, targets ("cpu", "cuda" or "any"), what it chooses (docs/cli.md has the values) */
static const struct {
	const char *name, *target, *what;
} knobs[] = {
    {"SEGC_MMA", "cuda", "tensor-core main loop (0 off, 1, 2)"},
    {"SEGC_MMA_TILE", "cuda", "tensor-core tile MxN"},
    {"SEGC_MMA_BK", "cuda", "tensor-core K step"},
    {"SEGC_MMA_CPASYNC", "cuda", "cp.async staging"},
    {"SEGC_MMA_MINB", "cuda", "blocks per SM the tiles aim for"},
    {"SEGC_MMA_SPLITK", "cuda", "split-K (1: off)"},
    {"SEGC_MMA_XVEC", "cuda", "bf16 channels-last x by vectors"},
    {"SEGC_MMA_AROW", "cuda", "row-major A tile"},
    {"SEGC_MMA_XROW", "cuda", "row gathers"},
    {"SEGC_MMA_T48", "cuda", "48-column conv tiles"},
    {"SEGC_MMA_T64", "cuda", "128 x 64 conv tiles"},
    {"SEGC_MMA_CLVROWS", "cuda", "channels-last vector rows"},
    {"SEGC_MMA_HALO", "cuda", "halo-tile convs"},
    {"SEGC_HALO_RB", "cuda", "halo row blocks (2, 4)"},
    {"SEGC_HALO_TW", "cuda", "halo row width"},
    {"SEGC_HALO_MINB", "cuda", "halo blocks per SM"},
    {"SEGC_HALO_MAXCO", "cuda", "halo form up to this many output channels"},
    {"SEGC_CUDA_SMEM", "cuda", "shared memory per block (dynamic past 48 KiB)"},
    {"SEGC_CUDA_VEC", "cuda", "16-byte vectors in streaming loops"},
    {"SEGC_CUDA_ILP", "cuda", "lanes per thread"},
    {"SEGC_CUDA_ILP16", "cuda", "lanes per thread, 16-bit outputs"},
    {"SEGC_CUDA_ILP_MIN", "cuda", "trip count below which no vectors"},
    {"SEGC_CUDA_GRID", "cuda", "most blocks of an elementwise grid"},
    {"SEGC_CUDA_DIV32", "cuda", "32-bit divisions"},
    {"SEGC_CUDA_RAWBF16", "cuda", "bf16 loads passed through unconverted"},
    {"SEGC_GPU_FILL", "cuda", "SIMT conv occupancy target"},
    {"SEGC_SIMT_STATS", "cuda", "conv statistics in the SIMT conv"},
    {"SEGC_GPU_UP2", "cuda", "x2 trilinear upsample form"},
    {"SEGC_GPU_RED_THREADS", "cuda", "reduction threads"},
    {"SEGC_GPU_RED_GROUP", "cuda", "reduction group"},
    {"SEGC_GPU_RED_BLOCK", "cuda", "reduction block"},
    {"SEGC_WINOGRAD", "cpu", "Winograd convs (0 off, 1 forced)"},
    {"SEGC_CONV_KHLOOP", "cpu", "conv kh loop"},
    {"SEGC_PRO_PERLOAD", "cpu", "prologue per load"},
    {"SEGC_CONV_NOCL", "cpu", "no channel-blocked conv"},
    {"SEGC_CONV_NOPACK", "cpu", "no packed conv weights"},
    {"SEGC_CONV_NOTILE", "cpu", "no conv tiles"},
    {"SEGC_CONV_SCALAR", "cpu", "scalar conv"},
    {"SEGC_CONV_OLD", "cpu", "the first conv form"},
    {"SEGC_CONVCL_R", "cpu", "channels-last conv rows"},
    {"SEGC_CONVCL_NOPLANE", "cpu", "channels-last conv without planes"},
    {"SEGC_CONVCL_GLOBALPACK", "cpu", "channels-last conv packing"},
    {"SEGC_CONVCL_NOLOOP", "cpu", "channels-last conv fully unrolled"},
    {"SEGC_CLWINO_T", "cpu", "channels-last Winograd tiles per block"},
    {"SEGC_CLWINO_CW", "cpu", "channels-last Winograd GEMM lanes"},
    {"SEGC_CLWINO_PAR", "cpu", "channels-last Winograd iterations"},
    {"SEGC_LINEAR_DOT", "cpu", "linear as dot products"},
    {"SEGC_MATMUL_ROW", "cpu", "matmul by rows"},
    {"SEGC_LINEAR_SCRATCH", "cpu", "linear through scratch"},
    {"SEGC_REDUCE_NOLANES", "cpu", "reductions without lanes"},
    {"SEGC_RESIZE_GATHER", "cpu", "resize as gathers"},
    {"SEGC_SCAN_SCALAR", "cpu", "scalar scan"},
    {"SEGC_NO_WIDEN", "cpu", "no outer-loop vectors"},
};

static _Thread_local const TuneEntry *cur;

const char *
cg_knob(const char *name)
{
	if (cur)
		for (int i = 0; i < cur->nknobs; i++)
			if (!strcmp(cur->knobs[i].name, name))
				return cur->knobs[i].value;
	return getenv(name);
}

const TuneEntry *
cg_knob_enter(const TuneEntry *e)
{
	const TuneEntry *was = cur;
	cur = e;
	return was;
}

int
cg_knob_known(const char *name, const char *target)
{
	for (size_t i = 0; i < sizeof knobs / sizeof *knobs; i++)
		if (!strcmp(knobs[i].name, name))
			return !target || !strcmp(knobs[i].target, "any") ||
			       !strncmp(knobs[i].target, target, strlen(knobs[i].target));
	return 0;
}

const char *
cg_knob_name(int i, const char **target, const char **what)
{
	if (i < 0 || i >= (int)(sizeof knobs / sizeof *knobs))
		return NULL;
	if (target)
		*target = knobs[i].target;
	if (what)
		*what = knobs[i].what;
	return knobs[i].name;
}

/* the knobs the emitters read (the rest act through the kernel IR, which the fingerprint
 * covers) */
static const char *const emit_knobs[] = {"SEGC_CUDA_VEC",     "SEGC_CUDA_ILP",
                                         "SEGC_CUDA_ILP16",   "SEGC_CUDA_ILP_MIN",
                                         "SEGC_CUDA_GRID",    "SEGC_CUDA_DIV32",
                                         "SEGC_CUDA_RAWBF16", "SEGC_CUDA_SMEM",
                                         "SEGC_NO_WIDEN",     NULL};

const char *
cg_kernel_fingerprint(const Program *p, const Kernel *k)
{
	char extra[512];
	size_t n = 0;
	uint64_t c = p->code_fp ? p->code_fp[k - p->kernels] : 0;
	const TuneEntry *was = cg_knob_enter(k->tune);
	extra[0] = 0;
	for (int i = 0; !c && emit_knobs[i]; i++) { /* (the code's hash covers them) */
		const char *v = cg_knob(emit_knobs[i]);
		if (v && n < sizeof extra)
			n += (size_t)snprintf(extra + n, sizeof extra - n, "%s=%.40s;",
			                      emit_knobs[i], v);
	}
	cg_knob_enter(was);
	uint64_t h = cg_code_hash(0, "", 0, 0);
	const char *sig = kir_signature(p, k, extra);
	h = cg_code_hash(h, sig, strlen(sig), 0);
	if (c) /* the kernel IR's half and the emitted code's */
		h = (h & 0xffffffff00000000ull) | ((c ^ (c >> 32)) & 0xffffffffull);
	return arena_printf(p->arena, "%016llx", (unsigned long long)h);
}

uint64_t
cg_code_hash(uint64_t h, const char *s, size_t n, int sched)
{
	h ^= 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		/* (a launch line's " slot:offset" buffers: where, not what) */
		if (sched && s[i] == ' ' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
			size_t w = i + 1, colon = 0;
			while (w < n && s[w] != ' ' && s[w] != '\n')
				colon |= s[w++] == ':';
			if (colon) {
				i = w - 1;
				continue;
			}
		}
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	}
	return h;
}
