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
 * (b + u) / c == b / c for u < V.  A load at a sequence index of a 16-byte aligned f32 or bf16
 * buffer becomes one or two 16-byte loads (into the let's variable where it is a let's whole
 * value, else into a temporary before the statement: a slice's copy), a store at a sequence
 * index one or two 16-byte stores, a load at a uniform index one load per thread.  Iterations
 * of a parallel loop are independent, so running V of them statement by statement is the
 * loop's meaning.
 *
 * The plan takes only what gains: a body of lets and stores (no branches, inner loops or
 * assignments), every load of a varying value and every store a vector access (a gather or
 * a scatter would spread one warp's access over V times the lines; a load under a condition
 * is not hoisted, so it refuses the plan too), and a trip count that V divides.  V is 8 where
 * a vector access is bf16 (16 bytes), else 4.  $SEGC_CUDA_VEC=2 (opt-in, for an A/B) takes
 * loops with gathers too, each gather a load per lane (a trilinear upsample: its coordinates
 * but the innermost and their weights computed once per V outputs). */
#include "emit_cuda.h"

#include <stdlib.h>
#include <string.h>

/* what cv_plan's walk needs */
typedef struct {
	Arena *a;
	CudaVec *cv;
	const Kernel *k;
	int64_t V;
	uint32_t stmt; /* the statement walked */
	int nvec;      /* vector accesses */
	int bf16;      /* a vector access is to a bf16 buffer */
	int gather;    /* $SEGC_CUDA_VEC=2: gathers load per lane instead of refusing the plan */
	int refused;   /* a statement or an access the plan does not take */
} Plan;

static int
uniform(int c)
{
	return (c & CV_UNI) != 0;
}

/* buffer b can be accessed 16 bytes at a time: f32 or bf16 in global memory, 16-byte aligned
 * at its offset (slot bases are: the arena and weights 64 bytes, caller pointers checked) */
static int
vec_buf(const Kernel *k, int b)
{
	const KBuf *kb = &k->bufs[b];
	return !kb->shared && (kb->dtype == DT_F32 || kb->dtype == DT_BF16) && kb->offset % 16 == 0;
}

/* a vector access to buffer b */
static void
count_vec(Plan *pl, int b)
{
	pl->nvec++;
	pl->bf16 |= pl->k->bufs[b].dtype == DT_BF16;
}

/* The class of integer or float expression n (classes of the variables it reads so far).  A
 * load at a sequence index of a vector buffer is hoisted (CudaVec.hoist: a 16-byte load before
 * the statement); one under a condition (a select's branch, the right side of && or ||) is
 * not, as it might read out of bounds where the condition is false: guarded.  Any other load
 * at a varying index (a gather) refuses the plan. */
static int
cls(Plan *pl, const KNode *n, int guarded)
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
		int i = cls(pl, n->a, guarded);
		if (uniform(i))
			return CV_UNI;
		if (i == CV_SEQ && vec_buf(pl->k, n->buf) && !guarded) {
			CudaVec *cv = pl->cv;
			*ARENA_PUSH(pl->a, cv->hoist, cv->nhoist, cv->caphoist) = n;
			*ARENA_PUSH(pl->a, cv->hstmt, cv->nhstmt, cv->caphstmt) = pl->stmt;
			count_vec(pl, n->buf);
			return CV_ANY;
		}
		pl->refused |= !pl->gather;
		return CV_ANY;
	}
	case K_binop: {
		int cond = n->op == KB_AND || n->op == KB_OR;
		int a = cls(pl, n->a, guarded), b = cls(pl, n->b, guarded || cond);
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
		return uniform(cls(pl, n->a, guarded)) ? CV_UNI : CV_ANY;
	case K_select: {
		int a = cls(pl, n->a, guarded), b = cls(pl, n->b, 1), c3 = cls(pl, n->c, 1);
		return uniform(a) && uniform(b) && uniform(c3) ? CV_UNI : CV_ANY;
	}
	case K_cast: { /* (widening a sequence keeps it one) */
		int a = cls(pl, n->a, guarded);
		if (a == CV_SEQ && n->type == KT_I64)
			return CV_SEQ;
		return uniform(a) ? CV_UNI : CV_ANY;
	}
	default:
		pl->refused = 1;
		return CV_ANY;
	}
}

/* a let whose whole value is a hoisted load loads straight into its variable (def 2) */
static void
stmt(Plan *pl, const KNode *s)
{
	CudaVec *cv = pl->cv;
	switch ((KKind)s->kind) {
	case K_let: {
		if (cv->def[s->var]) { /* defined twice */
			pl->refused = 1;
			return;
		}
		uint32_t nh = cv->nhoist;
		cv->var[s->var] = (uint8_t)cls(pl, s->a, 0);
		cv->def[s->var] = 1;
		if (cv->nhoist == nh + 1 && cv->hoist[nh] == s->a) {
			cv->nhoist = cv->nhstmt = nh;
			cv->def[s->var] = 2;
		}
		return;
	}
	case K_store:
		if (cls(pl, s->a, 0) != CV_SEQ || !vec_buf(pl->k, s->buf)) {
			pl->refused = 1;
			return;
		}
		count_vec(pl, s->buf);
		cls(pl, s->b, 0);
		return;
	default:
		pl->refused = 1;
	}
}

/* the plan for width V: 0, or 1 when the loop takes it (2 where a vector access is bf16) */
static int
plan(Arena *a, CudaVec *cv, const Kernel *k, const KNode *top, int64_t cnt, int64_t V, int gather)
{
	int64_t lo;
	Plan pl = {.a = a, .cv = cv, .k = k, .V = V, .gather = gather};
	if (top->ann != LOOP_PARALLEL || top->ival != 1 || !kir_const_i64(top->a, &lo) || lo < 0 ||
	    lo % V || cnt % V || top->body->kind != K_block)
		return 0;
	for (uint32_t v = 0; v < k->nvars; v++)
		cv->var[v] = CV_ANY, cv->def[v] = 0;
	cv->var[top->var] = CV_SEQ;
	cv->def[top->var] = 1;
	cv->nhoist = cv->nhstmt = 0;
	for (pl.stmt = 0; pl.stmt < top->body->nkids && !pl.refused; pl.stmt++)
		stmt(&pl, top->body->kids[pl.stmt]);
	if (pl.refused || pl.nvec == 0 || (V == 4 && pl.bf16))
		return 0;
	cv->width = (int)V;
	return pl.bf16 ? 2 : 1;
}

int
cv_plan(Arena *a, const Kernel *k, const KNode *top, int64_t cnt, CudaVec *cv)
{
	const char *s = cg_knob("SEGC_CUDA_VEC");
	int gather = s && atoi(s) == 2;
	cv->width = 0;
	if (s && !strcmp(s, "0"))
		return 0;
	cv->var = arena_zalloc(a, k->nvars + 1);
	cv->def = arena_zalloc(a, k->nvars + 1);
	/* 8 where a vector access is bf16 (16 bytes); an f32-only loop at 4 */
	if (plan(a, cv, k, top, cnt, 8, gather) == 2)
		return 8;
	cv->width = 0;
	return plan(a, cv, k, top, cnt, 4, gather) ? 4 : 0;
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
	e->vec = cv;
	for (uint32_t i = 0; i < n->body->nkids; i++) {
		const KNode *s = n->body->kids[i];
		int rc = 0;
		for (uint32_t j = 0; j < cv->nhoist && rc == 0; j++) {
			const KNode *l = cv->hoist[j];
			if (cv->hstmt[j] != i)
				continue;
			cuda_line(e);
			out(e, "float vl%u[%d];\n", j, V);
			cuda_line(e);
			out(e, "segc_vld<%d, %d>(", V, e->ldg[l->buf]);
			rc = lane0_addr(e, l->buf, l->a);
			out(e, ", vl%u);\n", j);
		}
		if (rc < 0)
			return -1;
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
	e->vec = NULL;
	out(e, "\t}\n}\n\n");
	return 0;
}
