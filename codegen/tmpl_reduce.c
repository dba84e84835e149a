/* codegen/tmpl_reduce.c -- reduce_sum, reduce_mean, reduce_max and moments.
 *
 * One parallel loop over the kept dims (flattened); inside, a f32 accumulator and one loop
 * per run of adjacent reduced dims (merged, since they are contiguous), the innermost a
 * vector loop.  moments makes two passes, mean then the biased variance of (x - mean), for
 * accuracy, and stores (mean, 1/sqrt(var + eps)) with keepdim shapes; it takes no epilogue.
 *
 *   reduce_sum x[N,C,D,H,W] axes=[2,3,4]:
 *     for p in [0, N*C) parallel {
 *       acc = 0; for r in [0, D*H*W) vector { acc += x[p*DHW + r] }; y[p] = acc }
 *   reduce_max x[N,C,D,H,W] axes=[1] (the last dim kept: the lane form, red_lanes):
 *     for p in [0, N*D*H*W/32) parallel { for lane in [0, 32) vector {
 *       acc = -inf; for r in [0, C) { acc = max(acc, x[n, r, d, h, w0 + lane]) }
 *       y[..] = acc } } */
#include "tmpl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	int nloops;
	int64_t ext[IR_MAXRANK], stride[IR_MAXRANK];   /* reduced loops */
	int64_t count;                                 /* reduced elements */
	int64_t lanes;                                 /* lane form: lanes of the last dim */
} RedLoops;

/* The lane form, on the CPU, when the last dim is kept (a reduction over channels or depth of
 * NCDHW): a LOOP_VECTOR loop over `lanes` consecutive elements of the last dim holds the
 * reduced loops, so the emitter widens it (emit_llvm_vec.c) and every reduced step is one
 * contiguous vector load per accumulator -- the innermost-vector form would gather at the
 * reduced axis' stride.  The largest power of two <= 32 dividing the last dim, >= 4; 0 for
 * none (SEGC_REDUCE_NOLANES=1 for A/B). */
static int64_t
red_lanes(Lower *L, const Type *it, const uint8_t *red, int nloops)
{
	int64_t w = it->dims[it->rank - 1];
	if (L->p->gpu || red[it->rank - 1] || !nloops || cg_knob("SEGC_REDUCE_NOLANES"))
		return 0;
	for (int64_t v = 32; v >= 4; v /= 2)
		if (w % v == 0)
			return v;
	return 0;
}

/* Emit the reduced loops into block; returns the innermost block and sets *xi to the input
 * index (base + reduced offsets). */
static KNode *
red_nest(Lower *L, KNode *block, const RedLoops *r, KNode *base, KNode **xi)
{
	KNode *e = base, *i;
	for (int j = 0; j < r->nloops; j++) {
		LoopAnn ann = j == r->nloops - 1 && !r->lanes ? LOOP_VECTOR : LOOP_SERIAL;
		KNode *loop = lw_loop(L, block, "r", ix_c(L, 0), ix_c(L, r->ext[j]), ann, &i);
		e = ix_add(L, e, ix_mul(L, i, r->stride[j]));
		block = loop->body;
	}
	*xi = e;
	return block;
}

/* an accumulator loop: acc = init; for reduced: acc = op(acc, f(x)); returns acc's ref */
static KNode *
accumulate(Lower *L, KNode *block, const RedLoops *r, int xb, KNode *base, KBinOp op,
           double init, KNode *mean)
{
	int acc = kir_var(L->p, L->k, KT_F32, "acc");
	KNode *xi;

	kir_append(L->p, block, kir_let(L->p, L->k, acc, kir_f32(L->p, init)));
	KNode *in = red_nest(L, block, r, base, &xi);
	KNode *x = kir_load(L->p, L->k, xb, xi);
	if (mean) {
		KNode *dx = lw_let(L, in, "dx", kir_bin(L->p, KB_SUB, x, mean));
		x = kir_bin(L->p, KB_MUL, dx, dx);
	}
	kir_append(L->p, in, kir_assign(L->p, acc, kir_bin(L->p, op, kir_ref(L->p, L->k, acc), x)));
	return kir_ref(L->p, L->k, acc);
}

/* root: reduce_* or moments over arbitrary axes */
int
tmpl_reduce(Lower *L)
{
	const Node *n = L->root;
	const Type *it = lw_type(L, n->in[0]);
	const Attr *axes = ir_attr(n, "axes");
	int keep = n->op == OP_moments || ir_attr_int(n, "keepdim");
	uint8_t red[IR_MAXRANK] = { 0 };
	int64_t kdims[IR_MAXRANK];
	int kd[IR_MAXRANK], nk = 0;
	KNode *kidx[IR_MAXRANK], *oidx[IR_MAXRANK];
	RedLoops r = { 0 };
	Coord c;

	for (int i = 0; i < axes->n; i++) {
		int64_t a = axes->ints[i] < 0 ? axes->ints[i] + it->rank : axes->ints[i];
		if (a < 0 || a >= it->rank)
			return lw_fail(L, "reduction axis out of range");
		red[a] = 1;
	}
	r.count = 1;
	for (int d = 0; d < it->rank; d++) {
		if (!red[d]) {
			kd[nk] = d;
			kdims[nk++] = it->dims[d];
			continue;
		}
		r.count *= it->dims[d];
		if (d > 0 && red[d - 1] && r.nloops > 0) {   /* contiguous with the previous one */
			r.ext[r.nloops - 1] *= it->dims[d];
			r.stride[r.nloops - 1] = lw_stride(it, d);
			continue;
		}
		r.ext[r.nloops] = it->dims[d];
		r.stride[r.nloops++] = lw_stride(it, d);
	}
	r.lanes = red_lanes(L, it, red, r.nloops);
	if (r.lanes)
		kdims[nk - 1] /= r.lanes;
	KNode *body = lw_nest(L, kdims, nk, 0, kidx);
	if (r.lanes) {
		KNode *lane, *vl;
		vl = lw_loop(L, body, "lane", ix_c(L, 0), ix_c(L, r.lanes), LOOP_VECTOR, &lane);
		body = vl->body;
		KNode *w = ix_add(L, ix_mul(L, kidx[nk - 1], r.lanes), lane);
		kidx[nk - 1] = lw_simple(L, body, w);
	}
	KNode *base = ix_c(L, 0);
	for (int j = 0; j < nk; j++)
		base = ix_add(L, base, ix_mul(L, kidx[j], lw_stride(it, kd[j])));
	base = lw_simple(L, body, base);
	/* output coordinates: kept dims, and 0 for the reduced ones when keepdim */
	for (int d = 0, j = 0, o = 0; d < it->rank; d++) {
		if (!red[d])
			oidx[o++] = kidx[j++];
		else if (keep)
			oidx[o++] = ix_c(L, 0);
	}
	coord_full(&c, lw_type(L, n->out[0]), oidx);

	int xb = lw_buf(L, n->in[0]);
	double inv = 1.0 / (double)(r.count ? r.count : 1);
	switch (n->op) {
	case OP_reduce_sum:
		return lw_output(L, body, &c, accumulate(L, body, &r, xb, base, KB_ADD, 0, NULL));
	case OP_reduce_mean: {
		KNode *s = accumulate(L, body, &r, xb, base, KB_ADD, 0, NULL);
		return lw_output(L, body, &c, kir_bin(L->p, KB_MUL, s, kir_f32(L->p, inv)));
	}
	case OP_reduce_max:
		return lw_output(L, body, &c,
		                 accumulate(L, body, &r, xb, base, KB_MAX, -INFINITY, NULL));
	default:
		break;
	}
	/* moments */
	if (L->g->nnodes > 1)
		return lw_fail(L, "moments takes no epilogue");
	KNode *s = accumulate(L, body, &r, xb, base, KB_ADD, 0, NULL);
	KNode *mean = lw_let(L, body, "mean", kir_bin(L->p, KB_MUL, s, kir_f32(L->p, inv)));
	KNode *ss = accumulate(L, body, &r, xb, base, KB_ADD, 0, mean);
	KNode *var = kir_bin(L->p, KB_MUL, ss, kir_f32(L->p, inv));
	KNode *sd = kir_un(L->p, KU_SQRT, kir_bin(L->p, KB_ADD, var,
	                                          kir_f32(L->p, ir_attr_float(n, "eps"))));
	KNode *rstd = kir_bin(L->p, KB_DIV, kir_f32(L->p, 1), sd);
	if (lw_is_out(L, n->out[0]))
		lw_store(L, body, &c, n->out[0], mean);
	if (lw_is_out(L, n->out[1]))
		lw_store(L, body, &c, n->out[1], rstd);
	return 0;
}
