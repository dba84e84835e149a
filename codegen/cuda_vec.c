/* codegen/cuda_vec.c -- contiguous vectors of a top-level parallel loop for the CUDA emitter
 * (emit_cuda.c, docs/cuda.md "Vectors"): the plan (cv_plan) and its emission (cuda_vec_fn).
 *
 * A streaming elementwise loop (a normalize-activation pass, a residual add) indexes its
 * operands as p (same shape as the output) or as a function of p's outer coordinates only
 * (p / S: a per-channel scale).  One thread per iteration recomputes those coordinates (64-bit
 * divisions by constants), loads each operand with a 2- or 4-byte load and stores 2 or 4 bytes:
 * about 50 instructions per element for a bf16 pass, which leaves such passes bound by
 * instruction issue, not by memory.  Here a thread runs V consecutive iterations
 * p0, p0 + 1, .., p0 + V - 1 (p0 a multiple of V): every index expression is classified as
 *   - uniform: the same for the V iterations (computed once, from iteration p0's variables);
 *     CV_NN and CV_MV record what is known of its value: >= 0, a multiple of V;
 *   - a sequence (CV_SEQ): b + u in iteration p0 + u, with b >= 0 a multiple of V (the loop
 *     variable; a sequence plus a uniform non-negative multiple of V; a sequence % c for a
 *     constant c that V divides);
 *   - anything else (CV_ANY).
 * A sequence divided by a constant c that V divides is uniform: b and c are multiples of V, so
 * (b + u) / c == b / c for u < V.  A let of a load at a sequence index of a 16-byte aligned f32
 * or bf16 buffer becomes one or two 16-byte loads, a store at a sequence index one or two
 * 16-byte stores, a load at a uniform index one load per thread.  Iterations of a parallel
 * loop are independent, so running V of them statement by statement is the loop's meaning.
 *
 * The plan takes only what gains: a body of lets and stores (no branches, inner loops or
 * assignments), every load of a varying value and every store a vector access (a gather or
 * a scatter would spread one warp's access over V times the lines), and a trip count that V
 * divides.  V is 8 where a vector access is bf16 (16 bytes), else 4. */
#include "emit_cuda.h"

#include <stdlib.h>

/* what cv_plan's walk needs */
typedef struct {
	CudaVec *cv;
	const Kernel *k;
	int64_t V;
	int nvec;    /* vector accesses */
	int bf16;    /* a vector access is to a bf16 buffer */
	int refused; /* a statement or an access the plan does not take */
} Plan;

static int
uniform(int c)
{
	return (c & CV_UNI) != 0;
}

/* the class of integer or float expression n (classes of the variables it reads so far) */
static int
cls(Plan *pl, const KNode *n)
{
	int64_t V = pl->V, c = 0;
	switch ((KKind)n->kind) {
	case K_const:
		if (n->type != KT_I32 && n->type != KT_I64)
			return CV_UNI;
		return CV_UNI | (n->ival >= 0 ? CV_NN : 0) | (n->ival % V == 0 ? CV_MV : 0);
	case K_var:
		return pl->cv->var[n->var];
	case K_load: {
		int i = cls(pl, n->a);
		return uniform(i) ? CV_UNI : CV_ANY;
	}
	case K_binop: {
		int a = cls(pl, n->a), b = cls(pl, n->b);
		int isc = kir_const_i64(n->b, &c);
		if (uniform(a) && uniform(b)) {
			switch ((KBinOp)n->op) {
			case KB_ADD:
				return a & b;
			case KB_MUL:
				return CV_UNI | (a & b & CV_NN) | ((a | b) & CV_MV);
			case KB_DIV:
			case KB_REM:
				return isc && c > 0 ? CV_UNI | (a & CV_NN) : CV_UNI;
			default:
				return CV_UNI;
			}
		}
		switch ((KBinOp)n->op) {
		case KB_ADD: /* a sequence plus a uniform non-negative multiple of V */
			if (a == CV_SEQ && b == (CV_UNI | CV_NN | CV_MV))
				return CV_SEQ;
			if (b == CV_SEQ && a == (CV_UNI | CV_NN | CV_MV))
				return CV_SEQ;
			return CV_ANY;
		case KB_MUL:
			return a == CV_SEQ && isc && c == 1 ? CV_SEQ : CV_ANY;
		case KB_DIV:
			return a == CV_SEQ && isc && c > 0 && c % V == 0 ? CV_UNI | CV_NN : CV_ANY;
		case KB_REM:
			return a == CV_SEQ && isc && c > 0 && c % V == 0 ? CV_SEQ : CV_ANY;
		default:
			return CV_ANY;
		}
	}
	case K_unop:
		return uniform(cls(pl, n->a)) ? CV_UNI : CV_ANY;
	case K_select: {
		int u = uniform(cls(pl, n->a)) && uniform(cls(pl, n->b)) && uniform(cls(pl, n->c));
		return u ? CV_UNI : CV_ANY;
	}
	case K_cast: /* (widening a sequence keeps it one) */
		if (cls(pl, n->a) == CV_SEQ && n->type == KT_I64)
			return CV_SEQ;
		return uniform(cls(pl, n->a)) ? CV_UNI : CV_ANY;
	default:
		pl->refused = 1;
		return CV_ANY;
	}
}

/* buffer b can be accessed 16 bytes at a time: f32 or bf16 in global memory, 16-byte aligned
 * at its offset (slot bases are: the arena and weights 64 bytes, caller pointers checked) */
static int
vec_buf(const Kernel *k, int b)
{
	const KBuf *kb = &k->bufs[b];
	return !kb->shared && (kb->dtype == DT_F32 || kb->dtype == DT_BF16) && kb->offset % 16 == 0;
}

/* every load under n (not a let's whole value) at a varying index refuses the plan */
static void
no_gather(Plan *pl, const KNode *n)
{
	if (!n)
		return;
	if (n->kind == K_load && !uniform(cls(pl, n->a)))
		pl->refused = 1;
	no_gather(pl, n->a);
	no_gather(pl, n->b);
	no_gather(pl, n->c);
}

static void
stmt(Plan *pl, const KNode *s)
{
	switch ((KKind)s->kind) {
	case K_let:
		if (pl->cv->def[s->var]) { /* defined twice */
			pl->refused = 1;
			return;
		}
		pl->cv->def[s->var] = 1;
		if (s->a->kind == K_load && cls(pl, s->a->a) == CV_SEQ &&
		    vec_buf(pl->k, s->a->buf)) {
			pl->cv->var[s->var] = CV_ANY;
			pl->cv->def[s->var] = 2;
			pl->nvec++;
			pl->bf16 |= pl->k->bufs[s->a->buf].dtype == DT_BF16;
			no_gather(pl, s->a->a);
			return;
		}
		pl->cv->var[s->var] = (uint8_t)cls(pl, s->a);
		no_gather(pl, s->a);
		return;
	case K_store:
		if (cls(pl, s->a) != CV_SEQ || !vec_buf(pl->k, s->buf)) {
			pl->refused = 1;
			return;
		}
		pl->nvec++;
		pl->bf16 |= pl->k->bufs[s->buf].dtype == DT_BF16;
		no_gather(pl, s->a);
		no_gather(pl, s->b);
		return;
	default:
		pl->refused = 1;
	}
}

/* the plan for width V; 1 when the loop takes it */
static int
plan(CudaVec *cv, const Kernel *k, const KNode *top, int64_t cnt, int64_t V)
{
	int64_t lo;
	Plan pl = {.cv = cv, .k = k, .V = V};
	if (top->ann != LOOP_PARALLEL || top->ival != 1 || !kir_const_i64(top->a, &lo) || lo < 0 ||
	    lo % V || cnt % V || top->body->kind != K_block)
		return 0;
	for (uint32_t v = 0; v < k->nvars; v++)
		cv->var[v] = CV_ANY, cv->def[v] = 0;
	cv->var[top->var] = CV_SEQ;
	for (uint32_t i = 0; i < top->body->nkids && !pl.refused; i++)
		stmt(&pl, top->body->kids[i]);
	if (pl.refused || pl.nvec == 0 || (V == 4 && pl.bf16))
		return 0;
	cv->width = (int)V;
	return pl.bf16 ? 2 : 1;
}

int
cv_plan(Arena *a, const Kernel *k, const KNode *top, int64_t cnt, CudaVec *cv)
{
	const char *s = getenv("SEGC_CUDA_VEC");
	cv->width = 0;
	if (s && atoi(s) == 0 && s[0] == '0')
		return 0;
	cv->var = arena_zalloc(a, k->nvars + 1);
	cv->def = arena_zalloc(a, k->nvars + 1);
	/* 8 where a vector access is bf16 (16 bytes); an f32-only loop at 4 */
	if (plan(cv, k, top, cnt, 8) == 2)
		return 8;
	cv->width = 0;
	return plan(cv, k, top, cnt, 4) ? 4 : 0;
}

/* buffer b at iteration p0's index expression idx (lane 0's variables) */
static int
lane0_addr(CudaEmit *e, int b, const KNode *idx)
{
	out(e, "b%d + (", b);
	e->lane0 = 1;
	int rc = cuda_node(e, idx);
	e->lane0 = 0;
	out(e, ")");
	return rc;
}

/* top-level parallel loop n in vectors (cv_plan): thread t runs iterations tV .. tV + V - 1
 * statement by statement; a uniform let once (lane 0's variables), a let of a load at a
 * sequence index as segc_vld (one or two 16-byte loads), a store as segc_vst of the V values,
 * other lets in a lane loop.  n (the trip count) is a multiple of V. */
int
cuda_vec_fn(CudaEmit *e, const KNode *n, const CudaVec *cv)
{
	int V = cv->width;
	out(e, "\tconst long long G = (long long)gridDim.x * blockDim.x;\n"
	       "\tfor (long long t0 = (long long)blockIdx.x * blockDim.x + threadIdx.x;"
	       "\n\t     t0 < n / %d; t0 += G) {\n"
	       "#pragma unroll\n\t\tfor (int u = 0; u < %d; u++) {\n"
	       "\t\t\tconst long long t = t0 * %d + u;\n\t\t\t", V, V, V);
	e->lanes = V;
	e->guard = -1;
	if (cuda_loop_start(e, n) < 0)
		return -1;
	out(e, "\t\t}\n");
	e->indent = 2;
	for (uint32_t i = 0; i < n->body->nkids; i++) {
		const KNode *s = n->body->kids[i];
		int rc = 0;
		if (s->kind == K_let && cv->def[s->var] == 2) {
			cuda_line(e);
			out(e, "segc_vld<%d, %d>(", V, e->ldg[s->a->buf]);
			rc = lane0_addr(e, s->a->buf, s->a->a);
			out(e, ", ");
			e->lanes = 0; /* (the array) */
			cuda_varname(e, s->var);
			e->lanes = V;
			out(e, ");\n");
		} else if (s->kind == K_store) {
			cuda_line(e);
			out(e, "{\n");
			e->indent++;
			cuda_line(e);
			out(e, "float vs[%d];\n", V);
			cuda_lane_head(e);
			out(e, "vs[u] = ");
			rc = cuda_node(e, s->b);
			out(e, ";\n");
			cuda_line(e);
			out(e, "segc_vst<%d>(", V);
			rc |= lane0_addr(e, s->buf, s->a);
			out(e, ", vs);\n");
			e->indent--;
			cuda_line(e);
			out(e, "}\n");
		} else {
			e->lane0 = s->kind == K_let && (cv->var[s->var] & CV_UNI);
			rc = cuda_node(e, s);
			e->lane0 = 0;
		}
		if (rc < 0)
			return -1;
	}
	e->lanes = 0;
	out(e, "\t}\n}\n\n");
	return 0;
}
