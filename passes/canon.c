/* passes/canon.c -- rewrite composite ops into moments, reductions and elementwise ops.
 *
 * Codegen templates never see instance_norm, group_norm, layer_norm, batch_norm or softmax:
 *   instance_norm  (mean, rstd) = moments(x, spatial axes); (x - mean) * rstd [* w + b],
 *                  w and b reshaped to [C,1,..,1] so they broadcast over the channel axis
 *   group_norm     moments over axes 2.. of x viewed as [N,G,C/G,*S]; the [N,G,1,..] mean
 *                  and rstd broadcast to [N,G,C/G,1,..] (times a ones constant) and viewed
 *                  as [N,C,1,..]; then normalised like instance_norm (x's shape throughout)
 *   layer_norm     moments over the last `dims` axes; w, b already have those dims
 *   batch_norm     (x - rm) * rsqrt(rv + eps) [* w + b], each reshaped to [C,1,..,1]
 *                  ([C] unchanged for a 2-D input); num_batches_tracked loses its use
 *   softmax(axis)  m = reduce_max keepdim; e = exp(x - m); e / reduce_sum(e) keepdim
 * Replacement nodes take the Loc and name of the node they replace.  They are appended by the
 * builder (which runs their shape rules) and then moved to where the old node stood, so the
 * node array stays in topological order.
 *
 * requires:  typed module (infer)
 * preserves: ids of all other values; the replaced node's result is renamed (uses rewritten)
 *
 *   before:  %2 = instance_norm %1, %w, %b {eps=1e-05 affine=1}
 *   after:   %3, %4 = moments %1 {axes=[2,3,4] eps=1e-05}
 *            %5 = sub %1, %3      %6 = mul %5, %4
 *            %7 = reshape %w {shape=[4,1,1,1]}   %8 = mul %6, %7
 *            %9 = reshape %b {shape=[4,1,1,1]}   %10 = add %8, %9
 */
#include "pass.h"

#include <string.h>

typedef struct {
	Module *m;
	Diag *d;
	NodeId at;              /* the node being replaced: its name and Loc go to the new nodes */
} Rw;

/* Append op(a, b) with attrs (NULL: defaults); returns the new node's first result. */
static ValueId
emit(Rw *w, int op, ValueId a, ValueId b, const Attr *attrs)
{
	ValueId in[2] = { a, b };
	const Node *old = &w->m->nodes[w->at];
	int nin = optab[op].noperands;
	int64_t id = ir_add_node(w->m, op, in, nin, attrs, old->name, old->loc, w->d);

	if (id < 0)
		diag_internal(__FILE__, __LINE__, "canon built an ill-typed %s", optab[op].name);
	return w->m->nodes[id].out[0];
}

static ValueId
bin(Rw *w, int op, ValueId a, ValueId b)
{
	return emit(w, op, a, b, NULL);
}

static ValueId
reshape(Rw *w, ValueId x, const int64_t *dims, int rank)
{
	int64_t shape[IR_MAXRANK + 1] = { 0 };
	Attr a[4];

	Type to = type_make(w->m->values[x].type.dtype, rank, dims);

	if (type_equal(&w->m->values[x].type, &to))
		return x;               /* already that shape: no view needed */
	memcpy(shape, dims, (size_t)rank * sizeof *dims);
	ir_attrs_default(OP_reshape, a);
	a[0].present = 1;
	a[0].n = (uint16_t)rank;
	a[0].ints = shape;
	return emit(w, OP_reshape, x, 0, a);
}

/* v of shape [C] reshaped to [C,1,..,1] of the given rank (no-op for rank 1) */
static ValueId
per_channel(Rw *w, ValueId v, int rank)
{
	int64_t dims[IR_MAXRANK] = { 0 };

	if (rank <= 1)
		return v;
	dims[0] = w->m->values[v].type.dims[0];
	for (int i = 1; i < rank; i++)
		dims[i] = 1;
	return reshape(w, v, dims, rank);
}

static ValueId
scalar(Rw *w, double value)
{
	Attr a[4];

	ir_attrs_default(OP_constant, a);
	a[op_attr_index(OP_constant, "value")].f = value;
	a[op_attr_index(OP_constant, "value")].present = 1;
	return emit(w, OP_constant, 0, 0, a);
}

/* (mean, rstd) = moments(x, axes lo..rank-1, eps) */
static void
moments(Rw *w, ValueId x, int lo, double eps, ValueId *mean, ValueId *rstd)
{
	int rank = w->m->values[x].type.rank;
	int64_t axes[IR_MAXRANK + 1] = { 0 };
	int ia = op_attr_index(OP_moments, "axes"), ie = op_attr_index(OP_moments, "eps");
	Attr a[4];

	for (int i = lo; i < rank; i++)
		axes[i - lo] = i;
	ir_attrs_default(OP_moments, a);
	a[ia].present = 1;
	a[ia].n = (uint16_t)(rank - lo);
	a[ia].ints = axes;
	a[ie].f = eps;
	*mean = emit(w, OP_moments, x, 0, a);
	*rstd = ir_def(w->m, *mean)->out[1];
}

/* (x - mean) * rstd, then * wt + bs when they are present */
static ValueId
normalise(Rw *w, ValueId x, ValueId mean, ValueId rstd, ValueId wt, ValueId bs)
{
	ValueId y = bin(w, OP_mul, bin(w, OP_sub, x, mean), rstd);

	if (wt)
		y = bin(w, OP_mul, y, wt);
	if (bs)
		y = bin(w, OP_add, y, bs);
	return y;
}

static ValueId
instance_norm(Rw *w, const Node *n, const Type *t)
{
	ValueId mean, rstd, wt = 0, bs = 0;

	/* separate statements: the order of the new nodes must not depend on the compiler */
	moments(w, n->in[0], 2, ir_attr_float(n, "eps"), &mean, &rstd);
	if (n->in[1])
		wt = per_channel(w, n->in[1], t->rank - 1);
	if (n->in[2])
		bs = per_channel(w, n->in[2], t->rank - 1);
	return normalise(w, n->in[0], mean, rstd, wt, bs);
}

/* v [N,G,1,..,1] (a per-group statistic of xg [N,G,C/G,*S]) as a per-channel [N,C,1,..,1]:
 * v * ones[1,1,C/G,1,..,1] (a tiny broadcasting kernel), viewed as [N,C,1,..,1] */
static ValueId
per_group_channel(Rw *w, ValueId v, const Type *t, int64_t g)
{
	int64_t od[IR_MAXRANK + 1] = { 0 }, cd[IR_MAXRANK] = { 0 };
	int r = t->rank, io = op_attr_index(OP_constant, "shape");
	Attr a[4];
	ValueId ones;

	for (int i = 0; i <= r; i++)
		od[i] = 1;
	od[2] = t->dims[1] / g;
	ir_attrs_default(OP_constant, a);
	a[op_attr_index(OP_constant, "value")].f = 1.0;
	a[op_attr_index(OP_constant, "value")].present = 1;
	a[io].present = 1;
	a[io].n = (uint16_t)(r + 1);
	a[io].ints = od;
	a[io].floats = NULL; /* the default's (one element) would be copied n times */
	ones = emit(w, OP_constant, 0, 0, a);
	cd[0] = t->dims[0];
	cd[1] = t->dims[1];
	for (int i = 2; i < r; i++)
		cd[i] = 1;
	return reshape(w, bin(w, OP_mul, v, ones), cd, r);
}

static ValueId
group_norm(Rw *w, const Node *n, const Type *t)
{
	int64_t g = ir_attr_int(n, "groups"), dims[IR_MAXRANK] = { 0 };
	ValueId xg, mean, rstd, wt = 0, bs = 0;
	int r = t->rank;

	dims[0] = t->dims[0];
	dims[1] = g;
	dims[2] = t->dims[1] / g;
	for (int i = 2; i < r; i++)
		dims[i + 1] = t->dims[i];
	xg = reshape(w, n->in[0], dims, r + 1);
	moments(w, xg, 2, ir_attr_float(n, "eps"), &mean, &rstd);
	/* statistics per channel, so the normalise chain has x's shape (like instance_norm's):
	 * it fuses with what follows and can be a conv's load prologue (passes/fuse.c) */
	mean = per_group_channel(w, mean, t, g);
	rstd = per_group_channel(w, rstd, t, g);
	if (n->in[1])
		wt = per_channel(w, n->in[1], r - 1);
	if (n->in[2])
		bs = per_channel(w, n->in[2], r - 1);
	return normalise(w, n->in[0], mean, rstd, wt, bs);
}

static ValueId
layer_norm(Rw *w, const Node *n, const Type *t)
{
	ValueId mean, rstd;

	moments(w, n->in[0], t->rank - (int)ir_attr_int(n, "dims"), ir_attr_float(n, "eps"),
	        &mean, &rstd);
	return normalise(w, n->in[0], mean, rstd, n->in[1], n->in[2]);
}

static ValueId
batch_norm(Rw *w, const Node *n, const Type *t)
{
	int r = t->rank - 1;
	ValueId rm, rv, eps, rstd, wt = 0, bs = 0;

	rm = per_channel(w, n->in[3], r);
	rv = per_channel(w, n->in[4], r);
	eps = scalar(w, ir_attr_float(n, "eps"));
	rstd = bin(w, OP_rsqrt, bin(w, OP_add, rv, eps), 0);
	if (n->in[1])
		wt = per_channel(w, n->in[1], r);
	if (n->in[2])
		bs = per_channel(w, n->in[2], r);
	return normalise(w, n->in[0], rm, rstd, wt, bs);
}

static ValueId
reduce_keep(Rw *w, int op, ValueId x, int64_t axis)
{
	int64_t axes[2] = { axis, 0 };
	Attr a[4];

	ir_attrs_default(op, a);
	a[op_attr_index(op, "axes")].present = 1;
	a[op_attr_index(op, "axes")].n = 1;
	a[op_attr_index(op, "axes")].ints = axes;
	a[op_attr_index(op, "keepdim")].i = 1;
	a[op_attr_index(op, "keepdim")].present = 1;
	return emit(w, op, x, 0, a);
}

static ValueId
softmax(Rw *w, const Node *n, const Type *t)
{
	int64_t axis = ir_attr_int(n, "axis");
	ValueId x = n->in[0], e;

	if (axis < 0)
		axis += t->rank;
	e = bin(w, OP_exp, bin(w, OP_sub, x, reduce_keep(w, OP_reduce_max, x, axis)), 0);
	return bin(w, OP_div, e, reduce_keep(w, OP_reduce_sum, e, axis));
}

int
pass_canon(Module *m, PassCtx *cx)
{
	uint32_t norig = m->nnodes;
	uint32_t (*span)[2] = arena_zalloc(cx->scratch, (size_t)norig * sizeof *span);

	for (uint32_t i = 0; i < norig; i++) {
		Rw w = { m, cx->diag, i };
		Node old = m->nodes[i];         /* a copy: appending may move the array */
		const Type t = m->values[old.nin ? old.in[0] : 0].type;
		ValueId y;

		if (old.dead)
			continue;
		span[i][0] = m->nnodes;
		switch (old.op) {
		case OP_instance_norm: y = instance_norm(&w, &old, &t); break;
		case OP_group_norm:    y = group_norm(&w, &old, &t); break;
		case OP_layer_norm:    y = layer_norm(&w, &old, &t); break;
		case OP_batch_norm:    y = batch_norm(&w, &old, &t); break;
		case OP_softmax:       y = softmax(&w, &old, &t); break;
		/* op families: one case line per composite op, rewritten in canon_<family>.c */
		case OP_rms_norm: case OP_rms_norm_l2: case OP_dyt: case OP_token_score:
			y = canon_mamba(m, i, cx->diag); break;
		case OP_conv3d_w: case OP_layer_norm_w: case OP_group_fold: case OP_group_unfold:
			y = canon_m4fuse(m, i, cx->diag); break;
		case OP_segment_mean:  y = canon_home(m, i, cx->diag); break;
		case OP_pwa_gather: case OP_pwa_scatter: case OP_pixel_shuffle3d:
			y = canon_velox(m, &old, cx->diag); break;
		default:               continue;
		}
		span[i][1] = m->nnodes;
		m->nodes[i].dead = 1;
		ir_replace_uses(m, old.out[0], y);
		cx->changed = 1;
	}
	if (cx->changed)
		pass_place(m, norig, (const uint32_t (*)[2])span, m->nnodes);
	ir_count_uses(m);
	return 0;
}
