/* codegen/tmpl_eltwise.c -- elementwise groups and the scalar formula of every ELT op.
 *
 * cg_elt_expr() is the one place where an elementwise op becomes arithmetic; both
 * elementwise groups (tmpl_eltwise) and every template's epilogue (lw_output) use it.
 * An elementwise group loops over its output shape after collapsing adjacent dims that every
 * operand either covers fully or broadcasts (so [N,C,D,H,W] + [C,1,1,1] runs as [N,C,DHW]):
 * one parallel loop over the outer dims, a vector loop over the innermost. */
#include "tmpl.h"

#include <math.h>
#include <string.h>

static KNode *
fc(Lower *L, double v)
{
	return kir_f32(L->p, v);
}

static KNode *
fb(Lower *L, KBinOp op, KNode *a, KNode *b)
{
	return kir_bin(L->p, op, a, b);
}

/* 1 / (1 + exp(-x)) */
static KNode *
sigmoid(Lower *L, KNode *x)
{
	KNode *e = kir_un(L->p, KU_EXP, kir_un(L->p, KU_NEG, x));
	return fb(L, KB_DIV, fc(L, 1), fb(L, KB_ADD, fc(L, 1), e));
}

static KNode *
gelu(Lower *L, KNode *block, const Node *n, KNode *x)
{
	const char *ap = ir_attr_str(n, "approximate");
	KNode *inner;

	if (ap && strcmp(ap, "tanh") == 0) {
		/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
		KNode *x3 = fb(L, KB_MUL, fb(L, KB_MUL, x, x), x);
		KNode *u = fb(L, KB_ADD, x, fb(L, KB_MUL, fc(L, 0.044715), x3));
		inner = kir_un(L->p, KU_TANH, fb(L, KB_MUL, fc(L, 0.7978845608028654), u));
	} else {
		/* 0.5 x (1 + erf(x / sqrt 2)) */
		inner = kir_un(L->p, KU_ERF, fb(L, KB_MUL, x, fc(L, M_SQRT1_2)));
	}
	return fb(L, KB_MUL, fb(L, KB_MUL, fc(L, 0.5), x), fb(L, KB_ADD, fc(L, 1), inner));
}

/* PyTorch: x * beta > threshold ? x : log1p(exp(x * beta)) / beta */
static KNode *
softplus(Lower *L, KNode *block, const Node *n, KNode *x)
{
	double beta = ir_attr_float(n, "beta"), thr = ir_attr_float(n, "threshold");
	KNode *bx = lw_simple(L, block, fb(L, KB_MUL, x, fc(L, beta)));
	KNode *sp = kir_un(L->p, KU_LOG, fb(L, KB_ADD, fc(L, 1), kir_un(L->p, KU_EXP, bx)));
	sp = fb(L, KB_DIV, sp, fc(L, beta));
	return kir_select(L->p, fb(L, KB_GT, bx, fc(L, thr)), x, sp);
}

static KNode *
clamp(Lower *L, const Node *n, KNode *x)
{
	const Attr *lo = ir_attr(n, "min"), *hi = ir_attr(n, "max");
	if (lo->present)
		x = fb(L, KB_MAX, x, fc(L, lo->f));
	if (hi->present)
		x = fb(L, KB_MIN, x, fc(L, hi->f));
	return x;
}

KNode *
cg_elt_expr(Lower *L, KNode *block, const Node *n, KNode **x)
{
	switch (n->op) {
	case OP_identity:   return x[0];
	case OP_relu:       return fb(L, KB_MAX, x[0], fc(L, 0));
	case OP_leaky_relu: {
		double s = ir_attr_float(n, "slope");
		KNode *sx = fb(L, KB_MUL, x[0], fc(L, s));
		/* for 0 <= slope <= 1, max(x, slope*x) is the same function, one op fewer */
		if (s >= 0 && s <= 1)
			return fb(L, KB_MAX, x[0], sx);
		return kir_select(L->p, fb(L, KB_GT, x[0], fc(L, 0)), x[0], sx);
	}
	case OP_gelu:       return gelu(L, block, n, x[0]);
	case OP_silu:       return fb(L, KB_MUL, x[0], sigmoid(L, x[0]));
	case OP_sigmoid:    return sigmoid(L, x[0]);
	case OP_tanh:       return kir_un(L->p, KU_TANH, x[0]);
	case OP_exp:        return kir_un(L->p, KU_EXP, x[0]);
	case OP_log:        return kir_un(L->p, KU_LOG, x[0]);
	case OP_sqrt:       return kir_un(L->p, KU_SQRT, x[0]);
	case OP_rsqrt:      return kir_un(L->p, KU_RSQRT, x[0]);
	case OP_neg:        return kir_un(L->p, KU_NEG, x[0]);
	case OP_abs:        return kir_un(L->p, KU_ABS, x[0]);
	case OP_erf:        return kir_un(L->p, KU_ERF, x[0]);
	case OP_softplus:   return softplus(L, block, n, x[0]);
	case OP_clamp:      return clamp(L, n, x[0]);
	case OP_add:        return fb(L, KB_ADD, x[0], x[1]);
	case OP_sub:        return fb(L, KB_SUB, x[0], x[1]);
	case OP_mul:        return fb(L, KB_MUL, x[0], x[1]);
	case OP_div:        return fb(L, KB_DIV, x[0], x[1]);
	case OP_maximum:    return fb(L, KB_MAX, x[0], x[1]);
	case OP_minimum:    return fb(L, KB_MIN, x[0], x[1]);
	case OP_pow:        return fb(L, KB_POW, x[0], x[1]);
	default:            return NULL;   /* batch_norm: canon rewrites it */
	}
}

/* true if v is broadcast along dim d of t */
static int
isbcast(const Type *vt, const Type *t, int d)
{
	int od = d - (t->rank - vt->rank);
	return od < 0 || vt->dims[od] != t->dims[d];
}

/* Loop dims for an elementwise group: size-1 dims dropped, neighbours merged when every
 * operand of every group node agrees on broadcasting them. */
static void
coord_collapse(Lower *L, Coord *c, const Type *t)
{
	uint64_t mask[IR_MAXRANK];
	int n = 0, many = 0;

	memset(c, 0, sizeof *c);
	c->t = t;
	for (int d = 0; d < t->rank; d++) {
		uint64_t bit = 1, mk = 0;
		if (t->dims[d] == 1)
			continue;
		for (uint32_t i = 0; i < L->g->nnodes; i++) {
			const Node *nd = &L->m->nodes[L->g->nodes[i]];
			for (int j = 0; j < nd->nin; j++, bit <<= 1) {
				if (!bit)
					many = 1;   /* more than 64 operands: do not merge */
				else if (nd->in[j] && isbcast(lw_type(L, nd->in[j]), t, d))
					mk |= bit;
			}
		}
		if (n > 0 && mask[n - 1] == mk && !many) {
			c->last[n - 1] = (int8_t)d;
			continue;
		}
		mask[n] = mk;
		c->first[n] = c->last[n] = (int8_t)d;
		n++;
	}
	c->n = n;
}

/* root: an ELT node; loops over its output, operands broadcast */
int
tmpl_eltwise(Lower *L)
{
	const Node *r = L->root;
	const Type *t = lw_type(L, r->out[0]);
	int64_t dims[IR_MAXRANK];
	KNode *x[IR_MAXRANK];
	Coord c;

	coord_collapse(L, &c, t);
	for (int j = 0; j < c.n; j++) {
		dims[j] = 1;
		for (int d = c.first[j]; d <= c.last[j]; d++)
			dims[j] *= t->dims[d];
	}
	KNode *body = lw_nest(L, dims, c.n, 1, c.idx);
	c.flat = L->nest_flat; /* (the loop dims cover t's non-1 dims in order) */
	for (int j = 0; j < r->nin && j < IR_MAXRANK; j++)
		x[j] = lw_simple(L, body, lw_operand(L, &c, r->in[j]));
	KNode *v = cg_elt_expr(L, body, r, x);
	if (!v)
		return cg_unsupported(L->d, L->k, "cpu", optab[r->op].name);
	return lw_output(L, body, &c, v);
}

/* ---- index maps: permute, slice, concat, reshape (a copy) ---- */

/* loops over out's full shape; returns the innermost block, idx[] per output dim */
static KNode *
nest_over(Lower *L, const Type *t, KNode **idx)
{
	return lw_nest(L, t->dims, t->rank, 1, idx);
}

static int
inj_permute(Lower *L)
{
	const Type *t = lw_type(L, L->root->out[0]), *it = lw_type(L, L->root->in[0]);
	const Attr *perm = ir_attr(L->root, "perm");
	KNode *idx[IR_MAXRANK], *in = ix_c(L, 0);
	Coord c;

	KNode *body = nest_over(L, t, idx);
	/* out dim d is input dim perm[d] */
	for (int d = 0; d < t->rank; d++) {
		int64_t p = perm->ints[d] < 0 ? perm->ints[d] + it->rank : perm->ints[d];
		in = ix_add(L, in, ix_mul(L, idx[d], lw_stride(it, (int)p)));
	}
	coord_full(&c, t, idx);
	KNode *v = kir_load(L->p, L->k, lw_buf(L, L->root->in[0]), in);
	return lw_output(L, body, &c, v);
}

static int
inj_slice(Lower *L)
{
	const Type *t = lw_type(L, L->root->out[0]), *it = lw_type(L, L->root->in[0]);
	int64_t axis = ir_attr_int(L->root, "axis"), start = ir_attr_int(L->root, "start");
	int64_t step = ir_attr_int(L->root, "step");
	KNode *idx[IR_MAXRANK], *in = ix_c(L, 0);
	Coord c;

	if (axis < 0)
		axis += it->rank;
	if (start < 0)
		start += it->dims[axis];
	if (start < 0)
		start = 0;
	if (start > it->dims[axis])
		start = it->dims[axis];
	if (step < 1)
		return lw_fail(L, "slice step must be >= 1");
	KNode *body = nest_over(L, t, idx);
	for (int d = 0; d < t->rank; d++) {
		KNode *i = idx[d];
		if (d == axis)
			i = ix_add(L, ix_mul(L, i, step), ix_c(L, start));
		in = ix_add(L, in, ix_mul(L, i, lw_stride(it, d)));
	}
	coord_full(&c, t, idx);
	KNode *v = kir_load(L->p, L->k, lw_buf(L, L->root->in[0]), in);
	return lw_output(L, body, &c, v);
}

/* Input in of a concat without epilogue, at element offset off along axis, already sits in
 * the output's bytes (memplan's alias_concat placed it there: every dim before the axis is 1,
 * so the chunk is contiguous), so its copy would read and write the same bytes. */
static int
concat_in_place(Lower *L, ValueId in, const Type *t, int64_t axis, int64_t off)
{
	int64_t chunk;
	int bi, bo;

	if (L->g->nnodes != 1)
		return 0;
	for (int64_t d = 0; d < axis; d++)
		if (t->dims[d] != 1)
			return 0;
	bi = lw_buf(L, in);
	bo = lw_outbuf(L, L->root->out[0]);   /* may move L->k->bufs */
	/* (bytes of the buffer's elements: bf16 activations are 2, not the f32 type's 4) */
	chunk = off * lw_stride(t, (int)axis) * dtype_size(L->k->bufs[bo].dtype);
	return L->k->bufs[bi].slot == L->k->bufs[bo].slot &&
	       L->k->bufs[bi].dtype == L->k->bufs[bo].dtype &&
	       L->k->bufs[bi].offset == L->k->bufs[bo].offset + chunk;
}

/* one loop nest per input, each writing its range of the concat axis (none for an input
 * already in place) */
static int
inj_concat(Lower *L)
{
	const Type *t = lw_type(L, L->root->out[0]);
	int64_t axis = ir_attr_int(L->root, "axis"), off = 0;
	KNode *idx[IR_MAXRANK], *oidx[IR_MAXRANK];
	Coord c;

	if (axis < 0)
		axis += t->rank;
	for (int j = 0; j < L->root->nin; j++) {
		ValueId in = L->root->in[j];
		const Type *it = lw_type(L, in);
		if (concat_in_place(L, in, t, axis, off)) {
			off += it->dims[axis];
			continue;
		}
		KNode *body = nest_over(L, it, idx);
		for (int d = 0; d < t->rank; d++)
			oidx[d] = d == axis ? ix_add(L, idx[d], ix_c(L, off)) : idx[d];
		Coord ic;
		coord_full(&ic, it, idx);
		coord_full(&c, t, oidx);
		KNode *v = kir_load(L->p, L->k, lw_buf(L, in), lw_index(L, &ic, it));
		if (lw_output(L, body, &c, v) < 0)
			return -1;
		off += it->dims[axis];
	}
	return 0;
}

/* reshape as a group (its result is an engine output): same flat index */
static int
inj_reshape(Lower *L)
{
	const Type *t = lw_type(L, L->root->out[0]);
	KNode *idx[IR_MAXRANK];
	Coord c;

	KNode *body = nest_over(L, t, idx);
	coord_full(&c, t, idx);
	KNode *v = kir_load(L->p, L->k, lw_buf(L, L->root->in[0]), lw_index(L, &c, t));
	return lw_output(L, body, &c, v);
}

/* root: permute, slice, concat or reshape; a gather from output index to input index */
int
tmpl_inj(Lower *L)
{
	switch (L->root->op) {
	case OP_permute: return inj_permute(L);
	case OP_slice:   return inj_slice(L);
	case OP_concat:  return inj_concat(L);
	default:         return inj_reshape(L);
	}
}
