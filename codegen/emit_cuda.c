/* codegen/emit_cuda.c -- kernel IR -> CUDA C -> cubin (NVRTC) -> host object (the GPU emitter).
 *
 * For every Kernel and every top-level loop i of its body we write one CUDA kernel
 *     extern "C" __global__ void <kernel>_t<i>(T *b0, T *b1, ..., long long n)
 * whose threads walk the loop's n iterations with a grid-stride loop (one thread per
 * iteration when the grid is large enough); inner loops stay loops inside the thread.  A
 * serial top-level loop is one thread.  A block-mapped loop (LOOP_BLOCK around one LOOP_THREAD
 * loop, made by the tensor-core template) is one thread block per iteration: shared tiles (one
 * byte pool when a tile is stored over others), __syncthreads(), the warp-level wmma helpers
 * and the cp.async copies of cg_cuda_prelude_mma (cuda_prelude.c, docs/cuda.md).  The
 * buffers are passed as device pointers (slot base + offset, computed by the runtime);
 * read-only buffers that overlap no written one are read through the read-only cache (__ldg).
 * Variables are function-scope locals (the allocas of emit_llvm.c).  NVRTC (codegen/nvrtc.c)
 * compiles the source to a cubin for the target's sm_XX; the host object holds the manifest
 * (target cuda:sm_XX), the cubin and the launch schedule, a text that runtime/cuda.c
 * interprets (format in docs/cuda.md; the object: cuda_host.c).
 * Mirror image of emit_llvm.c: same helpers, same order, same suffixes (STYLE.md 3.9). */
#include "emit_cuda.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK = 128, MAXGRID = 1 << 21, LANE_STMTS = 48 };


/* ---- small helpers ---- */

void
cuda_tput(Text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	SEGC_ASSERT(n >= 0);
	if (t->len + (size_t)n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *s = realloc(t->s, cap);
		SEGC_ASSERT(s != NULL);
		t->s = s;
		t->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

void
cuda_line(CudaEmit *e)
{
	for (int i = 0; i < e->indent; i++)
		out(e, "\t");
}

static const char *
ctype(int t)
{
	switch ((KType)t) {
	case KT_VOID:
		return "void";
	case KT_BOOL:
		return "bool";
	case KT_I32:
		return "int";
	case KT_I64:
		return "long long";
	case KT_F32:
		return "float";
	}
	SEGC_ASSERT(!"bad KType");
	return NULL;
}

/* C type of a buffer element in memory (u8 is widened to int on load) */
static const char *
elemtype(int dtype)
{
	switch (dtype) {
	case DT_F32:
		return "float";
	case DT_I32:
		return "int";
	case DT_I64:
		return "long long";
	case DT_U8:
		return "unsigned char";
	case DT_BF16:
		return "__nv_bfloat16"; /* shared tiles, block-mapped kernels (check_kernel) */
	default:
		return NULL;
	}
}

unsigned
cuda_elemsize(int dtype)
{
	return dtype == DT_U8 ? 1 : dtype == DT_I64 ? 8 : dtype == DT_BF16 ? 2 : 4;
}

/* variable names: v<id>_<name>, the name reduced to [A-Za-z0-9_] */
void
cuda_varname(CudaEmit *e, int var)
{
	const char *s = e->k->varnames && e->k->varnames[var] ? e->k->varnames[var] : "";
	out(e, "v%d_", var);
	for (int i = 0; s[i] && i < 16; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		out(e, "%c", ok ? c : '_');
	}
	if (e->lanes && e->lanevar[var])
		out(e, e->lane0 ? "[0]" : "[u]");
}

/* lanes: the head of a statement that runs for every lane its guard holds */
void
cuda_lane_head(CudaEmit *e)
{
	cuda_line(e);
	out(e, "#pragma unroll\n");
	cuda_line(e);
	out(e, "for (int u = 0; u < %d; u++) ", e->lanes);
	if (e->guard >= 0)
		out(e, "if (g%d[u]) ", e->guard);
}

/* an f32 immediate: rounded to float like LLVMConstReal, non-finite values by their bits */
static void
fconst(CudaEmit *e, double v)
{
	float f = (float)v;
	char s[64];
	if (isnan(f)) {
		out(e, "__int_as_float(0x7fc00000)");
		return;
	}
	if (isinf(f)) {
		out(e, "__int_as_float(%s)", f > 0 ? "0x7f800000" : "(int)0xff800000u");
		return;
	}
	snprintf(s, sizeof s, "%.9g", (double)f);
	out(e, "%s%sf", s, strpbrk(s, ".eEn") ? "" : ".0");
}

/* ---- one helper per KKind, in the order of kir.def ---- */


static int
cuda_block(CudaEmit *e, const KNode *n)
{
	for (uint32_t i = 0; i < n->nkids; i++) {
		uint32_t r = i;
		while (r < n->nkids && n->kids[r]->kind == K_mma)
			r++;
		/* a run of MMAs: fragments loaded once (cuda_mma_run); a row-major A is always
		 * loaded as a fragment of its own type */
		if (r - i >= 2 || (r > i && e->k->bufs[n->kids[i]->buf].arow)) {
			if (cuda_mma_run(e, n->kids + i, r - i) < 0)
				return -1;
			i = r - 1;
		} else if (cuda_node(e, n->kids[i]) < 0) {
			return -1;
		}
	}
	return 0;
}

/* for (var = lo; var < hi; var += step) body, hi evaluated once (as emit_llvm.c does) */
static int
cuda_loop(CudaEmit *e, const KNode *n)
{
	if (n->ann == LOOP_BLOCK || n->ann == LOOP_THREAD)
		return cg_unsupported(e->d, e->k, "cuda", "block/thread loops inside a kernel");
	SEGC_ASSERT(n->ival >= 1);
	const char *vt = ctype(e->k->vartypes[n->var]);
	cuda_line(e);
	out(e, "{\n");
	e->indent++;
	cuda_line(e);
	out(e, "const %s hi%d = ", vt, n->var);
	if (cuda_node(e, n->b) < 0)
		return -1;
	out(e, ";\n");
	if (n->ann == LOOP_UNROLL && n->op) {
		cuda_line(e);
		out(e, "#pragma unroll %d\n", n->op);
	} else if (n->ann == LOOP_UNROLL) {
		cuda_line(e);
		out(e, "#pragma unroll\n");
	}
	cuda_line(e);
	out(e, "for (");
	cuda_varname(e, n->var);
	out(e, " = ");
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, "; ");
	cuda_varname(e, n->var);
	out(e, " < hi%d; ", n->var);
	cuda_varname(e, n->var);
	out(e, " += %lld) {\n", (long long)n->ival);
	cr_set(&e->rng, n->var, cr_loop(&e->rng, n));
	e->indent++;
	if (cuda_node(e, n->body) < 0)
		return -1;
	e->indent--;
	cuda_line(e);
	out(e, "}\n");
	e->indent--;
	cuda_line(e);
	out(e, "}\n");
	return 0;
}

/* lanes: the branches run under the guards g<t>[u] (the condition, where the enclosing guard
 * holds) and g<t+1>[u] (its negation there) */
static int
cuda_if_lanes(CudaEmit *e, const KNode *n)
{
	int outer = e->guard, t = ++e->nguards;
	++e->nguards;
	cuda_line(e);
	out(e, "{\n");
	e->indent++;
	cuda_line(e);
	out(e, "bool g%d[%d], g%d[%d];\n", t, e->lanes, t + 1, e->lanes);
	cuda_lane_head(e);
	out(e, "{ g%d[u] = (", t);
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, "); g%d[u] = !g%d[u]; }\n", t + 1, t);
	cuda_line(e);
	out(e, "#pragma unroll\n");
	cuda_line(e);
	out(e, "for (int u = 0; u < %d; u++) if (!g%d[u]) g%d[u] = g%d[u] = false;\n", e->lanes,
	    outer, t, t + 1);
	e->guard = t;
	if (cuda_node(e, n->body) < 0)
		return -1;
	e->guard = t + 1;
	if (n->c && cuda_node(e, n->c) < 0)
		return -1;
	e->guard = outer;
	e->indent--;
	cuda_line(e);
	out(e, "}\n");
	return 0;
}

static int
cuda_if(CudaEmit *e, const KNode *n)
{
	if (e->lanes)
		return cuda_if_lanes(e, n);
	cuda_line(e);
	out(e, "if (");
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, ") {\n");
	e->indent++;
	if (cuda_node(e, n->body) < 0)
		return -1;
	e->indent--;
	if (n->c) {
		cuda_line(e);
		out(e, "} else {\n");
		e->indent++;
		if (cuda_node(e, n->c) < 0)
			return -1;
		e->indent--;
	}
	cuda_line(e);
	out(e, "}\n");
	return 0;
}

static int
cuda_let(CudaEmit *e, const KNode *n)
{
	int indent = e->indent;
	if (e->lanes && !e->lane0) { /* the statement after the lane loop's head, on its line */
		cuda_lane_head(e);
		e->indent = 0;
	}
	cuda_line(e);
	e->indent = indent;
	cuda_varname(e, n->var);
	out(e, " = ");
	int word = cuda_word(e, n->var);
	if (e->raw && e->raw[n->var]) { /* raw_vars: 0 or a bf16 load, as bf16 */
		if (n->a->kind == K_const) {
			out(e, word ? "segc_w2_zero();\n" : "segc_bf16_zero();\n");
			return 0;
		}
		e->rawload = 1;
	}
	e->shfl_ok = e->inblock && n->a->kind == K_shfl;
	if (word) /* a bf16 load into half 0 */
		out(e, "segc_w2_ld(");
	int rc = cuda_node(e, n->a);
	e->shfl_ok = 0;
	if (rc < 0)
		return -1;
	out(e, word ? ");\n" : ";\n");
	cr_set(&e->rng, n->var, cr_expr(&e->rng, n->a)); /* (an assigned variable: no range) */
	return 0;
}

static int
cuda_assign(CudaEmit *e, const KNode *n)
{
	return cuda_let(e, n);
}

static int
cuda_store(CudaEmit *e, const KNode *n)
{
	const KBuf *kb = &e->k->bufs[n->buf];
	SEGC_ASSERT(n->a->type == KT_I32 || n->a->type == KT_I64);
	if (e->lanes)
		cuda_lane_head(e);
	else
		cuda_line(e);
	out(e, "b%d[", n->buf);
	if (cuda_node(e, n->a) < 0)
		return -1;
	/* (bf16: global buffers saturate, segc_f2bf: a -FLT_MAX mask stays finite; shared tiles,
	 * the tensor cores' inputs, round) */
	out(e, kb->dtype == DT_U8                    ? "] = (unsigned char)("
	       : kb->dtype == DT_BF16 && kb->shared ? "] = __float2bfloat16("
	       : kb->dtype == DT_BF16               ? "] = segc_f2bf("
	                                             : "] = (");
	if (cuda_node(e, n->b) < 0)
		return -1;
	out(e, ");\n");
	return 0;
}

static int
cuda_barrier(CudaEmit *e, const KNode *n)
{
	/* in a block-mapped kernel every thread of the block runs the body: a real barrier.
	 * Elsewhere one thread runs a whole iteration in order, as one CPU task does: nothing to
	 * wait for (a __syncthreads() would hang threads whose grid-stride loop ended early) */
	(void)n;
	cuda_line(e);
	out(e, e->inblock ? "__syncthreads();\n" : "/* barrier */\n");
	return 0;
}

/* segc_cp_async<n>(&dst[a], pred ? &src[b] : src, pred): the source is not read when the
 * predicate is false (zero fill), but its address stays a valid one */
static int
cuda_cp_async(CudaEmit *e, const KNode *n)
{
	const KBuf *d = &e->k->bufs[n->buf], *s = &e->k->bufs[n->var];
	int64_t bytes = n->ival * (int64_t)cuda_elemsize(d->dtype);
	if (!e->inblock)
		return cg_unsupported(e->d, e->k, "cuda", "cp_async outside a block-mapped kernel");
	if (!d->shared || s->shared || d->dtype != s->dtype ||
	    (bytes != 4 && bytes != 8 && bytes != 16))
		return cg_unsupported(e->d, e->k, "cuda",
		                      "cp_async other than 4, 8 or 16 bytes from global to shared");
	cuda_line(e);
	out(e, "segc_cp_async<%lld>(b%d + (", (long long)n->ival, n->buf);
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, "), ");
	if (n->c) {
		out(e, "(");
		if (cuda_node(e, n->c) < 0)
			return -1;
		out(e, ") ? ");
	}
	out(e, "b%d + (", n->var);
	if (cuda_node(e, n->b) < 0)
		return -1;
	out(e, ")");
	if (n->c) {
		out(e, " : b%d, ", n->var);
		if (cuda_node(e, n->c) < 0)
			return -1;
		out(e, ");\n");
	} else {
		out(e, ", true);\n");
	}
	return 0;
}

/* segc_vload4<ldg>(&src[a], pred, v0, v1, v2, v3) (f32) / segc_vload8<ldg>(.., v0..v7) (bf16,
 * into f32 variables or raw_vars as they are): one 16-byte load (none when pred is false:
 * zeros) */
static int
cuda_vload(CudaEmit *e, const KNode *n)
{
	const KBuf *s = &e->k->bufs[n->buf];
	if (!e->inblock)
		return cg_unsupported(e->d, e->k, "cuda", "vload outside a block-mapped kernel");
	if (s->shared || n->ival * cuda_elemsize(s->dtype) != 16 ||
	    (s->dtype != DT_F32 && s->dtype != DT_BF16))
		return cg_unsupported(e->d, e->k, "cuda",
		                      "vload other than 16 bytes of f32 or bf16 from global");
	cuda_line(e);
	out(e, "segc_vload%d%s<%d>(b%d + (", (int)n->ival,
	    cuda_word(e, n->var) ? "w" : "", e->ldg[n->buf] ? 1 : 0, n->buf);
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, "), ");
	if (n->c) {
		if (cuda_node(e, n->c) < 0)
			return -1;
	} else {
		out(e, "true");
	}
	for (int i = 0; i < n->ival; i++) {
		out(e, ", ");
		cuda_varname(e, n->var + i);
	}
	out(e, ");\n");
	return 0;
}

/* segc_vst4(dst, v0..v3) (f32) / segc_vst8(dst, v0..v7) (bf16: pairs rounded, or raw_vars
 * packed as they are): one 16-byte store to a shared tile */
static int
cuda_vstore(CudaEmit *e, const KNode *n)
{
	const KBuf *d = &e->k->bufs[n->buf];
	if (!e->inblock || e->lanes)
		return cg_unsupported(e->d, e->k, "cuda", "vstore outside a block-mapped kernel");
	if (!d->shared || (d->dtype != DT_F32 && d->dtype != DT_BF16) ||
	    n->ival * cuda_elemsize(d->dtype) != 16)
		return cg_unsupported(e->d, e->k, "cuda",
		                      "vstore other than 16 bytes to a shared f32 or bf16 tile");
	cuda_line(e);
	out(e, "segc_vst%lld(b%d + (", (long long)n->ival, n->buf);
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, ")");
	for (int i = 0; i < n->ival; i++) {
		out(e, ", ");
		cuda_varname(e, kir_vec_var(n, i));
	}
	out(e, ");\n");
	return 0;
}

/* segc_shfl_xor(a, m): a of lane ^ m (__shfl_xor_sync over the whole warp): only a let's or an
 * assign's whole value in a block-mapped kernel, so that no ternary or short-circuit
 * evaluates it for some lanes only */
static int
cuda_shfl(CudaEmit *e, const KNode *n)
{
	if (!e->shfl_ok)
		return cg_unsupported(
		    e->d, e->k, "cuda",
		    "a warp shuffle outside a let or assign of a block-mapped kernel");
	e->shfl_ok = 0;
	out(e, "segc_shfl_xor(");
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, ", %d)", (int)n->ival);
	return 0;
}

static int
cuda_cp_wait(CudaEmit *e, const KNode *n)
{
	(void)n;
	if (!e->inblock)
		return cg_unsupported(e->d, e->k, "cuda", "cp_wait outside a block-mapped kernel");
	cuda_line(e);
	out(e, "segc_cp_wait();\n");
	return 0;
}

static int
cuda_const(CudaEmit *e, const KNode *n)
{
	if (n->type == KT_F32)
		fconst(e, n->fval);
	else if (n->type == KT_BOOL)
		out(e, n->ival ? "true" : "false");
	else if (n->type == KT_I32)
		out(e, "%d", (int)n->ival);
	else if (n->ival == INT64_MIN)
		out(e, "(-9223372036854775807LL - 1)");
	else
		out(e, "%lldLL", (long long)n->ival);
	return 0;
}

static int
cuda_var(CudaEmit *e, const KNode *n)
{
	cuda_varname(e, n->var);
	return 0;
}

static int
cuda_load(CudaEmit *e, const KNode *n)
{
	const KBuf *kb = &e->k->bufs[n->buf];
	int raw = e->rawload;
	SEGC_ASSERT(n->a->type == KT_I32 || n->a->type == KT_I64);
	SEGC_ASSERT(!raw || kb->dtype == DT_BF16);
	e->rawload = 0;
	for (uint32_t j = 0; e->vec && j < e->vec->nhoist; j++)
		if (e->vec->hoist[j] == n) { /* loaded before the statement (cuda_vec_fn) */
			out(e, "vl%u[u]", j);
			return 0;
		}
	out(e, kb->dtype == DT_U8                 ? "((int)"
	       : kb->dtype == DT_BF16 && !raw ? "__bfloat162float("
	                                      : "(");
	out(e, e->ldg[n->buf] ? "__ldg(&b%d[" : "b%d[", n->buf);
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, e->ldg[n->buf] ? "]))" : "])");
	return 0;
}

/* a binary operator written as an infix C operator, or NULL */
static const char *
infix(int op)
{
	switch ((KBinOp)op) {
	case KB_ADD:
		return "+";
	case KB_SUB:
		return "-";
	case KB_MUL:
		return "*";
	case KB_DIV:
		return "/";
	case KB_LT:
		return "<";
	case KB_LE:
		return "<=";
	case KB_GT:
		return ">";
	case KB_GE:
		return ">=";
	case KB_EQ:
		return "=="; /* f32: ordered equal, as emit_llvm.c's OEQ */
	case KB_NE:
		return "!="; /* f32: unordered or unequal, as UNE */
	case KB_AND:
		return "&&"; /* operands are pure: skipping b changes nothing */
	case KB_OR:
		return "||";
	case KB_REM:
	case KB_MIN:
	case KB_MAX:
	case KB_POW:
	case KB_COUNT:
		break;
	}
	return NULL;
}

/* a binary operator written as a call */
static const char *
callop(const KNode *n)
{
	int f = n->a->type == KT_F32;
	switch ((KBinOp)n->op) {
	case KB_REM:
		return f ? "fmodf" : NULL;
	case KB_MIN:
		return "segc_min";
	case KB_MAX:
		return "segc_max";
	case KB_POW:
		return "powf";
	default:
		return NULL;
	}
}

/* nvcc contracts a*b + c into an FMA (-fmad=true), as emit_llvm.c's llvm.fmuladd does */
static int
cuda_binop(CudaEmit *e, const KNode *n)
{
	const char *op = infix(n->op), *fn = op ? NULL : callop(n);
	SEGC_ASSERT(n->a->type == n->b->type);
	if (cr_u32(&e->rng, n)) { /* i64 / or % of a dividend in [0, 2^32): in 32 bits */
		out(e, "((long long)((unsigned)(");
		if (cuda_node(e, n->a) < 0)
			return -1;
		out(e, ") %s %lldu))", n->op == KB_DIV ? "/" : "%",
		    (long long)cr_expr(&e->rng, n->b).lo); /* (a constant: lo == hi) */
		return 0;
	}
	if (!op && !fn) { /* integer remainder */
		SEGC_ASSERT(n->op == KB_REM);
		op = "%";
	}
	out(e, "%s(", fn ? fn : "");
	if (cuda_node(e, n->a) < 0)
		return -1;
	if (fn)
		out(e, ", ");
	else
		out(e, " %s ", op);
	if (cuda_node(e, n->b) < 0)
		return -1;
	out(e, ")");
	return 0;
}

static const char *
unop_fn(const KNode *n)
{
	if (n->a->type != KT_F32) {
		switch (n->op) {
		case KU_NEG:
			return "-";
		case KU_ABS:
			return "segc_iabs";
		case KU_NOT:
			return "!";
		default:
			break;
		}
		SEGC_ASSERT(!"float unop on an integer");
	}
	switch ((KUnOp)n->op) {
	case KU_NEG:
		return "-";
	case KU_ABS:
		return "fabsf";
	case KU_EXP:
		return "expf";
	case KU_LOG:
		return "logf";
	case KU_SQRT:
		return "sqrtf";
	case KU_RSQRT:
		return "segc_rsqrt";
	case KU_TANH:
		return "tanhf";
	case KU_ERF:
		return "erff";
	case KU_FLOOR:
		return "floorf";
	case KU_CEIL:
		return "ceilf";
	case KU_TF32:
		return "segc_tf32f";
	case KU_NOT:
	case KU_COUNT:
		break;
	}
	SEGC_ASSERT(!"bad f32 unop");
	return NULL;
}

static int
cuda_unop(CudaEmit *e, const KNode *n)
{
	out(e, "(%s(", unop_fn(n));
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, "))");
	return 0;
}

static int
cuda_select(CudaEmit *e, const KNode *n)
{
	out(e, "(");
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, " ? ");
	if (cuda_node(e, n->b) < 0)
		return -1;
	out(e, " : ");
	if (cuda_node(e, n->c) < 0)
		return -1;
	out(e, ")");
	return 0;
}

/* C conversions are emit_llvm.c's: f32 -> int truncates (fptosi), to bool tests != 0 */
static int
cuda_cast(CudaEmit *e, const KNode *n)
{
	int from = n->a->type, to = n->type;
	if (from == to)
		return cuda_node(e, n->a);
	if (to == KT_BOOL) {
		out(e, "((");
		if (cuda_node(e, n->a) < 0)
			return -1;
		out(e, from == KT_F32 ? ") != 0.0f)" : ") != 0)");
		return 0;
	}
	out(e, "((%s)(", ctype(to));
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, "))");
	return 0;
}

/* the one dispatch over every kind (STYLE.md 3.9); expressions append their text */
int
cuda_node(CudaEmit *e, const KNode *n)
{
	switch ((KKind)n->kind) {
	case K_block:
		return cuda_block(e, n);
	case K_loop:
		return cuda_loop(e, n);
	case K_if:
		return cuda_if(e, n);
	case K_let:
		return cuda_let(e, n);
	case K_assign:
		return cuda_assign(e, n);
	case K_store:
		return cuda_store(e, n);
	case K_barrier:
		return cuda_barrier(e, n);
	case K_mma_zero:
		return cuda_mma_zero(e, n);
	case K_mma:
		return cuda_mma(e, n);
	case K_mma_store:
		return cuda_mma_store(e, n);
	case K_mmar:
		return cuda_mmar(e, n);
	case K_cp_async:
		return cuda_cp_async(e, n);
	case K_cp_wait:
		return cuda_cp_wait(e, n);
	case K_vload:
		return cuda_vload(e, n);
	case K_vstore:
		return cuda_vstore(e, n);
	case K_const:
		return cuda_const(e, n);
	case K_var:
		return cuda_var(e, n);
	case K_load:
		return cuda_load(e, n);
	case K_binop:
		return cuda_binop(e, n);
	case K_unop:
		return cuda_unop(e, n);
	case K_select:
		return cuda_select(e, n);
	case K_cast:
		return cuda_cast(e, n);
	case K_shfl:
		return cuda_shfl(e, n);
	case K_COUNT:
		break;
	}
	SEGC_ASSERT(!"unknown kernel node");
	return -1;
}

/* ---- functions ---- */

/* does the kernel write buffer i, or a buffer whose bytes overlap it? */
static int
overlaps_written(const Kernel *k, uint32_t i)
{
	const KBuf *a = &k->bufs[i];
	if (a->shared)
		return 1;
	for (uint32_t j = 0; j < k->nbufs; j++) {
		const KBuf *b = &k->bufs[j];
		if (!b->written || b->slot != a->slot || b->shared)
			continue;
		int64_t a1 = a->offset + a->numel * (int64_t)cuda_elemsize(a->dtype);
		int64_t b1 = b->offset + b->numel * (int64_t)cuda_elemsize(b->dtype);
		if (a->offset < b1 && b->offset < a1)
			return 1;
	}
	return 0;
}

/* the parameter list: one pointer per buffer (not the shared tiles), then the trip count */
static void
params(CudaEmit *e)
{
	const Kernel *k = e->k;
	for (uint32_t i = 0; i < k->nbufs; i++) {
		e->ldg[i] = !overlaps_written(k, i);
		if (!k->bufs[i].shared)
			out(e, "%s%s *b%u, ", e->ldg[i] ? "const " : "", elemtype(k->bufs[i].dtype),
			    i);
	}
	out(e, "long long n)");
}

static void
mark_var(const KNode *n, int var, void *used)
{
	(void)n;
	((uint8_t *)used)[var] = 1;
}

/* the declarations of the variables top-level loop n uses (a kernel's other loops have their
 * own): arrays of lanes for e->lanevar's when lanevar is set */
static void
declare_vars(CudaEmit *e, const KNode *n, int lanes)
{
	const Kernel *k = e->k;
	uint8_t *used = arena_zalloc(e->p->arena, k->nvars + 1);
	kir_each_var(n, mark_var, used);
	for (uint32_t v = 0; v < k->nvars; v++) {
		if (!used[v])
			continue;
		out(e, "\t%s ", cuda_word(e, (int)v)  ? "segc_w2"
		                 : e->raw && e->raw[v] ? "__nv_bfloat16"
		                                       : ctype(k->vartypes[v]));
		cuda_varname(e, (int)v);
		out(e, lanes > 1 && e->lanevar[v] ? "[%d];\n" : ";\n", lanes);
	}
	/* the function's ranges start here: its loop's variable (and a block's thread's) */
	cr_begin(&e->rng, e->p->arena, k, n);
	cr_set(&e->rng, n->var, cr_loop(&e->rng, n));
	if (n->ann == LOOP_BLOCK && n->body->nkids == 1 && n->body->kids[0]->kind == K_loop)
		cr_set(&e->rng, n->body->kids[0]->var, cr_loop(&e->rng, n->body->kids[0]));
}

/* block size of a LOOP_BLOCK top-level loop n: its body is one LOOP_THREAD loop [0, T) */
static int
block_threads(CudaEmit *e, const KNode *n, int64_t *T)
{
	const KNode *t = n->body->nkids == 1 ? n->body->kids[0] : NULL;
	int64_t lo;
	if (!t || t->kind != K_loop || t->ann != LOOP_THREAD || t->ival != 1 ||
	    !kir_const_i64(t->a, &lo) || lo != 0 || !kir_const_i64(t->b, T) || *T < 1 || *T > 1024)
		return cg_unsupported(
		    e->d, e->k, "cuda",
		    "a block loop whose body is not one thread loop [0, T <= 1024)");
	return 0;
}

/* the bytes of kernel k's shared buffers on the GPU: laid out as shared_pool does where one
 * lies over others (KBuf.over) or where they take more than 48 KiB, else their sum (*pool: 1
 * where they go in a pool) */
static int64_t
pool_bytes(const Kernel *k, int *pool)
{
	int64_t end = 0, gpu = 0, sum = 0;
	int64_t *goff = calloc(k->nbufs + 1, sizeof *goff);
	SEGC_ASSERT(goff != NULL);
	*pool = 0;
	for (uint32_t b = 0; b < k->nbufs; b++)
		if (k->bufs[b].shared) {
			*pool |= k->bufs[b].over != 0;
			sum += k->bufs[b].numel * cuda_elemsize(k->bufs[b].dtype);
		}
	*pool |= sum > CG_SMEM_STATIC;
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t b = 0; b < k->nbufs; b++) {
			const KBuf *kb = &k->bufs[b];
			int64_t bytes = kb->numel * cuda_elemsize(kb->dtype), g0 = end;
			if (!kb->shared || (pass == 0) != !kb->over)
				continue;
			if (kb->over)
				g0 = goff[kb->over - 1];
			else
				goff[b] = g0, end = (end + bytes + 127) / 128 * 128;
			gpu = g0 + bytes > gpu ? g0 + bytes : gpu;
		}
	free(goff);
	return *pool ? gpu : sum;
}

/* the dynamic shared memory of a block-mapped kernel whose pool takes `bytes`: those bytes
 * where they pass 48 KiB (cg_gpu_smem allows up to the architecture's limit), else 0 */
static int64_t
dyn_bytes(int64_t bytes)
{
	return bytes > CG_SMEM_STATIC ? bytes : 0;
}

/* the dynamic shared memory of kernel k's block-mapped launches */
static int64_t
dyn_smem(const Kernel *k)
{
	int pool;
	return dyn_bytes(pool_bytes(k, &pool));
}

/* the shared buffers of a kernel where one is stored over others (KBuf.over), or where they
 * take more than 48 KiB, as one byte pool: the others in order, each 128-byte aligned; an
 * overlay at the offset of its buffer.  The offsets are written as expressions of sizeof (the
 * host emulation's bf16 may be wider).  dyn: the pool is dynamic shared memory. */
static void
shared_pool(CudaEmit *e, int64_t dyn)
{
	const Kernel *k = e->k;
	Text at = {0}, size = {0};
	const char **off = arena_zalloc(e->p->arena, (k->nbufs + 1) * sizeof *off);
	cuda_tput(&at, "0");
	cuda_tput(&size, "0");
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t b = 0; b < k->nbufs; b++) {
			const KBuf *kb = &k->bufs[b];
			if (!kb->shared || (pass == 0) != !kb->over)
				continue;
			const char *type = elemtype(kb->dtype);
			if (kb->over) {
				off[b] = off[kb->over - 1];
			} else {
				off[b] = arena_strdup(e->p->arena, at.s);
				char *next =
				    arena_printf(e->p->arena, "SEGC_AL128(%s + sizeof(%s) * %lld)",
				                 at.s, type, (long long)kb->numel);
				at.len = 0;
				cuda_tput(&at, "%s", next);
			}
			char *sz = arena_printf(e->p->arena, "SEGC_MAX(%s, %s + sizeof(%s) * %lld)",
			                        size.s, off[b], type, (long long)kb->numel);
			size.len = 0;
			cuda_tput(&size, "%s", sz);
		}
	if (dyn) /* over 48 KiB: dynamic shared memory (the launch passes its bytes, the runtime
	          * raises the function's limit); the emulation keeps a static pool */
		out(e, "#ifdef SEGC_EMU\n"
		       "\tSEGC_SHARED __align__(128) unsigned char segc_smem[%s];\n"
		       "#else\n\textern __shared__ __align__(128) unsigned char segc_dsmem[];\n"
		       "\tunsigned char *const segc_smem = segc_dsmem;\n#endif\n",
		    size.s);
	else
		out(e, "\tSEGC_SHARED __align__(128) unsigned char segc_smem[%s];\n", size.s);
	/* the emulation starts each block with the pool holding NaNs (bytes 0xff), as a GPU's
	 * shared memory holds what it held: a read before a write shows */
	out(e, "#ifdef SEGC_EMU\n\tsegc_emu_poison(segc_smem, sizeof segc_smem);\n#endif\n");
	for (uint32_t b = 0; b < k->nbufs; b++)
		if (k->bufs[b].shared)
			out(e, "\t%s *const b%u = (%s *)(segc_smem + %s);\n",
			    elemtype(k->bufs[b].dtype), b, elemtype(k->bufs[b].dtype), off[b]);
	free(at.s);
	free(size.s);
}

/* "var = (T)(lo) + (T)t * step;" of top-level loop n, at the current position */
int
cuda_loop_start(CudaEmit *e, const KNode *n)
{
	const char *vt = ctype(e->k->vartypes[n->var]);
	cuda_varname(e, n->var);
	out(e, " = (%s)(", vt);
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, ") + (%s)t * %lld;\n", vt, (long long)n->ival);
	return 0;
}

/* a block-mapped top-level loop n (LOOP_BLOCK over [lo, hi), body: thread loop [0, T)):
 *     static __device__ void <kernel>_t<i>_body(...) { shared tiles; locals;
 *         for (t = blockIdx.x; t < n; t += gridDim.x) { b = lo + t*step; th = threadIdx.x; .. } }
 *     extern "C" __global__ <kernel>_t<i>(...) { SEGC_BLOCK_RUN(T, body, (b0, .., n)); }
 * every thread of a block runs every block iteration, so barriers are uniform */
static int
block_fn(CudaEmit *e, const KNode *n, int i, int64_t T)
{
	const Kernel *k = e->k;
	const KNode *th = n->body->kids[0];
	int pool;
	int64_t shbytes = pool_bytes(k, &pool), lim = cg_gpu_smem(e->p);
	if (shbytes > lim)
		return cg_unsupported(e->d, k, "cuda",
		                      arena_printf(e->p->arena,
		                                   "%lld bytes of shared tiles, over the %lld "
		                                   "allowed ($SEGC_CUDA_SMEM)",
		                                   (long long)shbytes, (long long)lim));
	out(e, "static __device__ void\n%s_t%d_body(", k->name, i);
	params(e);
	out(e, "\n{\n");
	for (uint32_t b = 0; !pool && b < k->nbufs; b++) {
		if (!k->bufs[b].shared)
			continue;
		out(e, "\tSEGC_SHARED __align__(32) %s b%u[%lld];\n", elemtype(k->bufs[b].dtype), b,
		    (long long)k->bufs[b].numel);
	}
	if (pool)
		shared_pool(e, dyn_bytes(shbytes));
	e->raw = cr_raw_vars(e->p->arena, k, n);
	e->words = cr_word_vars(e->p->arena, k, n, e->raw);
	declare_vars(e, n, 1);
	int nacc = kir_count_acc(n);
	e->racc = kir_contains(n, K_mmar);
	if (nacc && e->racc)
		out(e, "\tfloat segc_racc[%d][8];\n", nacc);
	else if (nacc)
		out(e, "\tsegc_acc_t segc_acc[%d];\n", nacc);
	out(e, "\tfor (long long t = blockIdx.x; t < n; t += gridDim.x) {\n\t\t");
	if (cuda_loop_start(e, n) < 0)
		return -1;
	out(e, "\t\t");
	cuda_varname(e, th->var);
	out(e, " = (%s)threadIdx.x;\n", ctype(k->vartypes[th->var]));
	e->indent = 2;
	e->inblock = 1;
	int rc = cuda_node(e, th->body);
	e->inblock = 0;
	e->raw = NULL;
	e->words = (CrWords){NULL, NULL};
	if (rc < 0)
		return -1;
	out(e, "\t}\n}\n\n");
	if (th->op) /* blocks per SM asked by the template (kir.h) */
		out(e, "extern \"C\" __global__ void __launch_bounds__(%lld, %d)\n%s_t%d(",
		    (long long)T, th->op, k->name, i);
	else
		out(e, "extern \"C\" __global__ void __launch_bounds__(%lld)\n%s_t%d(",
		    (long long)T, k->name, i);
	params(e);
	out(e, "\n{\n\tSEGC_BLOCK_RUN(%lld, %s_t%d_body, (", (long long)T, k->name, i);
	for (uint32_t b = 0; b < k->nbufs; b++)
		if (!k->bufs[b].shared)
			out(e, "b%u, ", b);
	out(e, "n));\n}\n\n");
	return 0;
}

/* the grid-stride loop of a parallel loop in lanes (ilp_lanes) */
static int
task_lanes(CudaEmit *e, const KNode *n, int lanes)
{
	out(e, "\tconst long long G = (long long)gridDim.x * blockDim.x;\n"
	       "\tfor (long long t0 = (long long)blockIdx.x * blockDim.x + threadIdx.x; t0 < n;"
	       "\n\t     t0 += %d * G) {\n\t\tbool g0[%d];\n", lanes, lanes);
	e->lanes = lanes;
	e->guard = e->nguards = 0;
	out(e, "#pragma unroll\n\t\tfor (int u = 0; u < %d; u++) {\n"
	       "\t\t\tconst long long t = t0 + u * G;\n\t\t\tg0[u] = t < n;\n\t\t\t", lanes);
	if (cuda_loop_start(e, n) < 0)
		return -1;
	out(e, "\t\t}\n");
	e->indent = 2;
	int rc = cuda_node(e, n->body);
	e->lanes = 0;
	if (rc < 0)
		return -1;
	out(e, "\t}\n}\n\n");
	return 0;
}

/* 1 if the statements under n can run in lanes: small (*budget statements, counted down),
 * at most one level of inner loops (depth) of constant bounds (their variables stay scalars:
 * scalar[]), no block-mapped statements.  Small: the memory-bound kernels (elementwise,
 * normalize, moments, copies) gain loads in flight; a conv's long bodies four times over
 * made NVRTC take minutes */
static int
lanes_fit(const KNode *n, uint8_t *scalar, int depth, int *budget)
{
	int64_t c;
	if (!n)
		return 1;
	if (n->kind != K_block && --*budget < 0)
		return 0;
	switch ((KKind)n->kind) {
	case K_loop:
		if (!kir_const_i64(n->a, &c) || !kir_const_i64(n->b, &c) || n->ann > LOOP_UNROLL ||
		    depth > 0)
			return 0;
		scalar[n->var] = 1;
		return lanes_fit(n->body, scalar, depth + 1, budget);
	case K_mma_zero:
	case K_mma:
	case K_mma_store:
	case K_mmar:
	case K_cp_async:
	case K_cp_wait:
	case K_vload:
	case K_vstore:
	case K_shfl:
		return 0;
	default:
		break;
	}
	for (uint32_t i = 0; i < n->nkids; i++)
		if (!lanes_fit(n->kids[i], scalar, depth, budget))
			return 0;
	return lanes_fit(n->body, scalar, depth, budget) && lanes_fit(n->c, scalar, depth, budget);
}

/* Lanes of top-level parallel loop n with cnt iterations, for loops of >= $SEGC_CUDA_ILP_MIN
 * (default 2^16; tests: 1) iterations whose body fits (lanes_fit): 2 in the kernels of class
 * elementwise (cg_kernel_class), 1 (no lanes) in the others; $SEGC_CUDA_ILP (1..8) sets the
 * lanes of every class.  Each thread then runs lanes iterations t, t + G, ... (G = the grid's
 * threads: each statement's accesses stay coalesced) in lock step, so a thread has that many
 * independent loads in flight; iterations of a parallel loop are independent, so any
 * interleaving of theirs is the loop's meaning.  The grid shrinks by the same factor.
 * Measured on an H100 at 128^3 (docs/cuda.md, "Lanes"): 2 lanes take the elementwise kernels
 * (the normalize-activation passes) from 49-58% to 72-83% of HBM bandwidth; they slow the
 * reductions (a moments pass already has fewer threads than the GPU holds) and the gathers
 * (upsample), and 4 lanes gain less than 2.  An elementwise kernel that writes only 16-bit
 * buffers (bf16 activations) moves half the bytes per load: it gets $SEGC_CUDA_ILP16 lanes
 * (default 4; at 2 the bf16 passes reached 38-52% of HBM bandwidth). */
static int64_t
ilp_min(void)
{
	const char *m = cg_knob("SEGC_CUDA_ILP_MIN");
	return m ? atoll(m) : 1 << 16;
}

static int
ilp_lanes(CudaEmit *e, const KNode *n, int64_t cnt)
{
	const char *s = cg_knob("SEGC_CUDA_ILP");
	const char *s16 = cg_knob("SEGC_CUDA_ILP16");
	int u = s ? atoi(s) : 0; /* an unreadable value, like none: the class rule */
	if (u < 1 || u > 8) {
		u = strcmp(cg_kernel_class(e->k->name), "elementwise") ? 1 : 2;
		int narrow = u == 2, u16 = s16 ? atoi(s16) : 0; /* writes 16-bit buffers only */
		for (uint32_t b = 0; narrow && b < e->k->nbufs; b++)
			narrow = !e->k->bufs[b].written || e->k->bufs[b].shared ||
			         cuda_elemsize(e->k->bufs[b].dtype) == 2;
		if (narrow)
			u = u16 >= 1 && u16 <= 8 ? u16 : 4;
	}
	if (u < 2 || n->ann != LOOP_PARALLEL || cnt < ilp_min())
		return 1;
	uint8_t *scalar = arena_zalloc(e->p->arena, e->k->nvars + 1);
	int budget = LANE_STMTS;
	return lanes_fit(n->body, scalar, 0, &budget) ? u : 1;
}

/* __global__ <kernel>_t<i>: iterations [0, n) of top-level loop n, var = lo + t*step; in
 * vectors where cv->width (cuda_vec_fn), else in lanes (task_lanes) */
static int
task_fn(CudaEmit *e, const KNode *n, int i, int parallel, int lanes, const CudaVec *cv)
{
	const Kernel *k = e->k;
	out(e, "extern \"C\" __global__ void __launch_bounds__(%d)\n%s_t%d(", BLOCK, k->name, i);
	params(e);
	out(e, "\n{\n");
	uint8_t *scalar = arena_zalloc(e->p->arena, k->nvars + 1);
	int budget = LANE_STMTS;
	if (cv->width)
		for (uint32_t v = 0; v < k->nvars; v++)
			scalar[v] = (cv->var[v] & CV_UNI) != 0;
	else if (lanes > 1)
		lanes_fit(n->body, scalar, 0, &budget);
	e->lanevar = arena_zalloc(e->p->arena, k->nvars + 1);
	for (uint32_t v = 0; v < k->nvars; v++)
		e->lanevar[v] = lanes > 1 && !scalar[v];
	declare_vars(e, n, lanes);
	if (cv->width)
		return cuda_vec_fn(e, n, cv);
	if (lanes > 1)
		return task_lanes(e, n, lanes);
	if (parallel)
		out(e,
		    "\tfor (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n;"
		    "\n\t     t += (long long)gridDim.x * blockDim.x) {\n");
	else
		out(e, "\tif (blockIdx.x != 0 || threadIdx.x != 0)\n\t\treturn;\n"
		       "\tfor (long long t = 0; t < n; t++) {\n");
	out(e, "\t\t");
	if (cuda_loop_start(e, n) < 0)
		return -1;
	e->indent = 2;
	if (cuda_node(e, n->body) < 0)
		return -1;
	out(e, "\t}\n}\n\n");
	return 0;
}

/* trip count of top-level loop n; the grid is planned at compile time, so it must be constant */
static int
trip_count(CudaEmit *e, const KNode *n, int64_t *cnt)
{
	int64_t lo, hi;
	if (!kir_const_i64(n->a, &lo) || !kir_const_i64(n->b, &hi))
		return cg_unsupported(e->d, e->k, "cuda",
		                      "top-level loops with a run-time trip count");
	*cnt = hi > lo ? (hi - lo + n->ival - 1) / n->ival : 0;
	return 0;
}

static int
check_kernel(CudaEmit *e, const Kernel *k)
{
	/* the tensor-core prelude declares bf16: emit_module emits it where any kernel is
	 * block-mapped or has a bf16 buffer */
	for (uint32_t i = 0; i < k->nbufs; i++)
		if (!elemtype(k->bufs[i].dtype) || (k->bufs[i].dtype == DT_BF16 && !e->mma))
			return cg_unsupported(
			    e->d, k, "cuda",
			    arena_printf(e->p->arena, "%s buffers", dtype_name(k->bufs[i].dtype)));
	for (uint32_t i = 0; i < k->body->nkids; i++)
		SEGC_ASSERT(k->body->kids[i]->kind == K_loop);
	return 0;
}

static int emit_kernels(CudaEmit *e, const char **sigs);

/* the whole program: one __global__ per top-level loop, one schedule line per launch */
static int
emit_module(CudaEmit *e)
{
	const Program *p = e->p;
	int mma = 0;
	for (uint32_t ki = 0; ki < p->nkernels; ki++) {
		const Kernel *k = &p->kernels[ki];
		for (uint32_t i = 0; i < k->body->nkids; i++)
			if (k->body->kids[i]->ann == LOOP_BLOCK)
				mma = 1;
		for (uint32_t i = 0; i < k->nbufs; i++) /* (bf16 activations, weight copies) */
			mma |= k->bufs[i].dtype == DT_BF16;
	}
	e->mma = mma;
	out(e, "%s", cg_cuda_prelude);
	if (mma) /* block-mapped kernels: shared tiles, barriers, tensor cores; bf16 */
		out(e, "#define SEGC_KF %d\n%s", p->precision == KP_BF16 ? 16 : 8,
		    cg_cuda_prelude_mma);
	cuda_tput(&e->sched, "segc-cuda 1\narch %s\n", e->arch);
	/* kernels with the same signature (kir_signature + read-only choices) share the
	 * __global__ functions of the first one, as emit_llvm.c shares task functions */
	const char **sigs = arena_zalloc(p->arena, (p->nkernels + 1) * sizeof *sigs);
	const TuneEntry *was = cg_knob_enter(NULL);
	int rc = emit_kernels(e, sigs);
	cg_knob_enter(was);
	return rc;
}

/* every kernel's functions and schedule lines, under its tuning entry's knobs */
static int
emit_kernels(CudaEmit *e, const char **sigs)
{
	const Program *p = e->p;
	for (uint32_t ki = 0; ki < p->nkernels; ki++) {
		const Kernel *k = &p->kernels[ki];
		e->k = k;
		cg_knob_enter(k->tune);
		if (check_kernel(e, k) < 0)
			return -1;
		size_t src0 = e->src.len, sched0 = e->sched.len;
		int share = -1;
		e->ldg = arena_zalloc(p->arena, k->nbufs + 1);
		char *ro = arena_zalloc(p->arena, k->nbufs + 2);
		/* (upper case: not 16-byte aligned, so no vectors: cv_plan) */
		for (uint32_t b = 0; b < k->nbufs; b++)
			ro[b] = k->bufs[b].shared ? 's' : overlaps_written(k, b) ? 'w' : 'r';
		for (uint32_t b = 0; b < k->nbufs; b++)
			ro[b] -= k->bufs[b].offset % 16 ? 'a' - 'A' : 0;
		sigs[ki] = kir_signature(p, k, ro);
		const char *fname = k->name;
		for (uint32_t j = 0; j < ki; j++)
			if (!strcmp(sigs[j], sigs[ki])) {
				fname = p->kernels[j].name;
				share = (int)j;
				break;
			}
		for (uint32_t i = 0; i < k->body->nkids; i++) {
			const KNode *n = k->body->kids[i];
			int64_t cnt = 0, T = 0;
			if (n->ann == LOOP_THREAD)
				return cg_unsupported(e->d, k, "cuda",
				                      "thread loops at the top level");
			if (trip_count(e, n, &cnt) < 0)
				return -1;
			int par = n->ann == LOOP_PARALLEL, blk = n->ann == LOOP_BLOCK;
			if (blk && block_threads(e, n, &T) < 0)
				return -1;
			/* vectors (cuda_vec.c) for the loops that take them, else lanes */
			CudaVec cv = {0};
			int lanes = par && cnt >= ilp_min() && cv_plan(p->arena, k, n, cnt, &cv)
			                ? cv.width
			                : blk ? 1 : ilp_lanes(e, n, cnt);
			if (fname == k->name &&
			    (blk ? block_fn(e, n, (int)i, T)
			         : task_fn(e, n, (int)i, par, lanes, &cv)) < 0)
				return -1;
			if (cnt == 0)
				continue;
			int64_t block = par ? (cnt >= BLOCK ? BLOCK : (cnt + 31) / 32 * 32) : 1;
			int64_t grid = par ? (cnt + block * lanes - 1) / (block * lanes) : 1;
			if (blk) /* one block per iteration */
				block = T, grid = cnt;
			/* $SEGC_CUDA_GRID=G (A/B): at most G blocks for an elementwise kernel's
			 * grid-stride loops (fewer, longer-lived blocks) */
			const char *ge = cg_knob("SEGC_CUDA_GRID");
			int64_t gmax = ge && atoll(ge) > 0 ? atoll(ge) : MAXGRID;
			if (par && grid > gmax && !strcmp(cg_kernel_class(k->name), "elementwise"))
				grid = gmax;
			grid = grid > MAXGRID ? MAXGRID : grid;
			uint32_t nparam = 0;
			for (uint32_t b = 0; b < k->nbufs; b++)
				nparam += !k->bufs[b].shared;
			cuda_tput(&e->sched, "%s %s_t%u %lld %lld %lld %u",
			     ki + p->npack < p->nkernels ? "launch" : "pack", fname, i,
			     (long long)cnt, (long long)grid, (long long)block, nparam);
			for (uint32_t b = 0; b < k->nbufs; b++)
				if (!k->bufs[b].shared)
					cuda_tput(&e->sched, " %u:%lld", k->bufs[b].slot,
					     (long long)k->bufs[b].offset);
			int64_t dyn = blk ? dyn_smem(k) : 0; /* (the same for fname's kernel) */
			if (dyn)
				cuda_tput(&e->sched, " smem=%lld", (long long)dyn);
			if (ki + p->npack < p->nkernels) /* the kernel table's index (profiles) */
				cuda_tput(&e->sched, " k=%u", ki);
			cuda_tput(&e->sched, "\n");
			e->nlaunches++;
		}
		if (p->code_fp) { /* its functions (or those it shares) and launch shapes */
			uint64_t h = share >= 0 ? p->code_fp[share] : CG_HASH_INIT;
			h = cg_code_hash(h, e->src.s + src0, e->src.len - src0, 0);
			h = cg_code_hash(h, e->sched.s + sched0, e->sched.len - sched0, 1);
			p->code_fp[ki] = h;
		}
	}
	cuda_tput(&e->sched, "end\n");
	return 0;
}

/* the manifest with "target cpu" replaced by "target cuda:sm_XX" */
static const char *
cuda_manifest(CudaEmit *e, const char *target)
{
	const char *m = e->p->manifest ? e->p->manifest : "";
	const char *at = strstr(m, "\ntarget cpu\n");
	SEGC_ASSERT(at != NULL);
	return arena_printf(e->p->arena, "%.*s\ntarget %s\n%s", (int)(at - m), m, target,
	                    at + strlen("\ntarget cpu\n"));
}

int
cg_emit_cuda(const Program *p, const CgOptions *o, const char *obj_path, Diag *d)
{
	CudaEmit e = {.p = p, .d = d};
	const char *target = o && o->target ? o->target : "";
	int rc = -1;

	if (strcmp(target, "cuda:sm_90") && strcmp(target, "cuda:sm_80"))
		return diag_error(d, loc_none, "--target %s: expected cuda:sm_90 or cuda:sm_80",
		                  target);
	if (o->precision && strcmp(o->precision, "fp32") && strcmp(o->precision, "tf32") &&
	    strcmp(o->precision, "bf16"))
		return diag_error(d, loc_none, "--precision=%s: expected fp32, tf32 or bf16",
		                  o->precision);
	e.arch = target + strlen("cuda:");
	if (o->emit_kernels)
		cg_print_kernels(p, o->emit_kernels);
	if (emit_module(&e) == 0) {
		const char *manifest = cuda_manifest(&e, target);
		if (o->emit_cuda) {
			fputs(e.src.s, o->emit_cuda);
			fprintf(o->emit_cuda, "/* launch schedule:\n%s*/\n/* manifest:\n%s*/\n",
			        e.sched.s, manifest);
		}
		void *cubin = NULL;
		size_t ncubin = 0;
		if (cg_nvrtc_compile(e.src.s, p->kernels ? p->kernels[0].name : "engine", e.arch,
		                     &cubin, &ncubin, d) == 0) {
			rc = cg_cuda_host_object(p, manifest, e.sched.s, cubin, ncubin, obj_path,
			                          d);
			free(cubin);
		}
	}
	free(e.src.s);
	free(e.sched.s);
	return rc;
}
