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
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"

/* name, target ("cpu" or "cuda"), the values a tuning file may give (an integer in [lo, hi];
 * hi < 0: a tile "MxN", M and N multiples of 16 up to 256; lo = hi = 1: a switch that acts by
 * being set, whatever its value) and what it chooses (docs/cli.md, docs/tune.md) */
static const struct {
	const char *name, *target;
	long long lo, hi;
	const char *what;
} knobs[] = {
    {"SEGC_MMA", "cuda", 0, 2, "tensor-core main loop (0 the first, 1, 2)"},
    {"SEGC_MMA_TILE", "cuda", 0, -1, "tensor-core tile MxN"},
    {"SEGC_MMA_BK", "cuda", 16, 32, "tensor-core K step (16, 32)"},
    {"SEGC_MMA_CPASYNC", "cuda", 0, 2, "cp.async staging"},
    {"SEGC_MMA_MINB", "cuda", 0, 8, "blocks per SM the tiles aim for"},
    {"SEGC_MMA_SPLITK", "cuda", 1, 64, "split-K (1: off)"},
    {"SEGC_MMA_XVEC", "cuda", 0, 1, "bf16 channels-last x by vectors"},
    {"SEGC_MMA_AROW", "cuda", 0, 1, "row-major A tile"},
    {"SEGC_MMA_XROW", "cuda", 0, 1, "row gathers"},
    {"SEGC_MMA_FRAG", "cuda", 0, 1, "register-fragment convs (mma.sync)"},
    {"SEGC_MMA_FRAG_UNROLL", "cuda", 1, 8, "register-fragment K loop unrolled"},
    {"SEGC_MMA_FRAG48", "cuda", 0, 1, "register-fragment 48-column tiles"},
    {"SEGC_MMA_T48", "cuda", 0, 1, "48-column conv tiles"},
    {"SEGC_MMA_T64", "cuda", 0, 1, "128 x 64 conv tiles"},
    {"SEGC_MMA_CLVROWS", "cuda", 0, 1, "channels-last vector rows"},
    {"SEGC_MMA_HALO", "cuda", 0, 1, "halo-tile convs"},
    {"SEGC_HALO_RB", "cuda", 0, 4, "halo row blocks (2, 4)"},
    {"SEGC_HALO_TW", "cuda", 16, 128, "halo row width (16, 32, 64, 128)"},
    {"SEGC_HALO_MINB", "cuda", 0, 8, "halo blocks per SM"},
    {"SEGC_HALO_MAXCO", "cuda", 0, 1 << 16, "halo form up to this many output channels"},
    {"SEGC_CUDA_SMEM", "cuda", 0, 232448, "shared memory per block (dynamic past 48 KiB)"},
    {"SEGC_CUDA_VEC", "cuda", 0, 2, "16-byte vectors in streaming loops"},
    {"SEGC_CUDA_ILP", "cuda", 1, 8, "lanes per thread"},
    {"SEGC_CUDA_ILP16", "cuda", 1, 8, "lanes per thread, 16-bit outputs"},
    {"SEGC_CUDA_ILP_MIN", "cuda", 0, 1LL << 40, "trip count below which no lanes"},
    {"SEGC_CUDA_GRID", "cuda", 1, 1 << 21, "most blocks of an elementwise grid"},
    {"SEGC_CUDA_DIV32", "cuda", 0, 1, "32-bit divisions"},
    {"SEGC_CUDA_RAWBF16", "cuda", 0, 1, "bf16 loads passed through unconverted"},
    {"SEGC_GPU_FILL", "cuda", 1024, 1 << 24, "SIMT conv threads wanted per launch"},
    {"SEGC_SIMT_STATS", "cuda", 0, 1, "conv statistics in the SIMT conv"},
    {"SEGC_GPU_UP2", "cuda", 0, 1, "x2 trilinear upsample form"},
    {"SEGC_GPU_RED_THREADS", "cuda", 1024, 1 << 24, "reduction threads"},
    {"SEGC_GPU_RED_GROUP", "cuda", 2, 4096, "reduction group"},
    {"SEGC_GPU_RED_BLOCK", "cuda", 0, 1024, "reduction block"},
    {"SEGC_WINOGRAD", "cpu", 0, 1, "Winograd convs (0 off, 1 forced)"},
    {"SEGC_CONV_KHLOOP", "cpu", 1, 1, "conv kh loop"},
    {"SEGC_PRO_PERLOAD", "cpu", 1, 1, "prologue per load"},
    {"SEGC_CONV_NOCL", "cpu", 1, 1, "no channel-blocked conv"},
    {"SEGC_CONV_NOPACK", "cpu", 1, 1, "no packed conv weights"},
    {"SEGC_CONV_NOTILE", "cpu", 1, 1, "no conv tiles"},
    {"SEGC_CONV_SCALAR", "cpu", 1, 1, "scalar conv"},
    {"SEGC_CONV_OLD", "cpu", 1, 1, "the first conv form"},
    {"SEGC_CONVCL_R", "cpu", 1, 64, "channels-last conv rows"},
    {"SEGC_CONVCL_NOPLANE", "cpu", 1, 1, "channels-last conv without planes"},
    {"SEGC_CONVCL_GLOBALPACK", "cpu", 1, 1, "channels-last conv packing"},
    {"SEGC_CONVCL_NOLOOP", "cpu", 1, 1, "channels-last conv fully unrolled"},
    {"SEGC_CLWINO_T", "cpu", 1, 32, "channels-last Winograd tiles per block"},
    {"SEGC_CLWINO_CW", "cpu", 16, 32, "channels-last Winograd GEMM lanes (16, 32)"},
    {"SEGC_CLWINO_PAR", "cpu", 1, 64, "channels-last Winograd iterations"},
    {"SEGC_LINEAR_DOT", "cpu", 1, 1, "linear as dot products"},
    {"SEGC_MATMUL_ROW", "cpu", 1, 1, "matmul by rows"},
    {"SEGC_LINEAR_SCRATCH", "cpu", 1, 1, "linear through scratch"},
    {"SEGC_REDUCE_NOLANES", "cpu", 1, 1, "reductions without lanes"},
    {"SEGC_RESIZE_GATHER", "cpu", 1, 1, "resize as gathers"},
    {"SEGC_SCAN_SCALAR", "cpu", 1, 1, "scalar scan"},
    {"SEGC_NO_WIDEN", "cpu", 1, 1, "no outer-loop vectors"},
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

/* the table's index of name, or -1 */
static int
find(const char *name)
{
	for (int i = 0; i < (int)(sizeof knobs / sizeof *knobs); i++)
		if (!strcmp(knobs[i].name, name))
			return i;
	return -1;
}

/* 1 if name is a per-kernel knob for target ("cpu", "cuda:sm_90"; NULL: any target) */
static int
knob_known(const char *name, const char *target)
{
	int i = find(name);
	return i >= 0 && (!target || !strncmp(knobs[i].target, target, strlen(knobs[i].target)));
}

/* a decimal integer, all of s */
static int
integer(const char *s, long long *v)
{
	char *end;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return *s && !*end && !errno;
}

const char *
cg_knob_check(const char *name, const char *value, const char *target)
{
	static _Thread_local char why[160];
	int i = find(name);
	long long v, m, n;
	char x;
	if (i < 0 || !knob_known(name, target)) {
		snprintf(why, sizeof why, "one of the per-kernel knobs for %s docs/tune.md lists",
		         target ? target : "a target");
		return why;
	}
	if (!value)
		return NULL;
	if (knobs[i].hi < 0) {
		if (sscanf(value, "%lld%c%lld", &m, &x, &n) == 3 && x == 'x' && m >= 16 &&
		    m <= 256 && n >= 16 && n <= 256 && m % 16 == 0 && n % 16 == 0)
			return NULL;
		return "a tile MxN, M and N multiples of 16 up to 256 (\"128x64\")";
	}
	if (integer(value, &v) && v >= knobs[i].lo && v <= knobs[i].hi)
		return NULL;
	if (knobs[i].lo == 1 && knobs[i].hi == 1)
		return "\"1\" (a switch that acts by being set)";
	snprintf(why, sizeof why, "an integer in [%lld, %lld]", knobs[i].lo, knobs[i].hi);
	return why;
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
	const char *sig = kir_signature(p, k, extra);
	uint64_t h = cg_code_hash(CG_HASH_INIT, sig, strlen(sig), 0);
	if (c) /* the kernel IR's half and the emitted code's */
		h = (h & 0xffffffff00000000ull) | ((c ^ (c >> 32)) & 0xffffffffull);
	return arena_printf(p->arena, "%016llx", (unsigned long long)h);
}

uint64_t
cg_code_hash(uint64_t h, const char *s, size_t n, int sched)
{
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
