/* passes/canon_m4fuse.c -- canon rewrites of the M4Fuse ops (ir/ops_m4fuse.def).
 *
 *   conv3d_w x, w {attrs}      ->  conv3d x, w, - {attrs, bias=false}
 *                                  (the weight operand is the shared value; the conv template
 *                                  reads it like any weight)
 *   layer_norm_w x, w, b {dims, eps}
 *                              ->  mean, rstd = moments x {axes = last dims, eps}
 *                                  ((x - mean) * rstd) * w + b
 *   group_fold x [N,L,C] {G}   ->  reshape [N,L,G,d]; permute [0,2,1,3]; reshape [G*N,L,d]
 *   group_unfold x [G*N,L,d]   ->  reshape [N,G,L,d]; permute [0,2,1,3]; reshape [N,L,G*d]
 * The new nodes take the replaced node's name and Loc; passes/canon.c places them where it
 * stood.  Called from pass_canon's switch; returns the replacement of the node's result. */
#include "pass.h"

#include "ir_m4fuse.h"

static ValueId
add(Module *m, const Node *old, int op, const ValueId *in, int nin, const Attr *attrs, Diag *d)
{
	int64_t id = ir_add_node(m, op, in, nin, attrs, old->name, old->loc, d);
	if (id < 0)
		diag_internal(__FILE__, __LINE__, "canon built an ill-typed %s", optab[op].name);
	return m->nodes[id].out[0];
}

static ValueId
bin(Module *m, const Node *old, int op, ValueId a, ValueId b, Diag *d)
{
	ValueId in[2] = {a, b};
	return add(m, old, op, in, 2, NULL, d);
}

static ValueId
reshape(Module *m, const Node *old, ValueId x, const int64_t *dims, int rank, Diag *d)
{
	int64_t shape[IR_MAXRANK] = {0};
	Attr a[4];
	for (int i = 0; i < rank; i++)
		shape[i] = dims[i];
	ir_attrs_default(OP_reshape, a);
	a[0].present = 1;
	a[0].n = (uint16_t)rank;
	a[0].ints = shape;
	return add(m, old, OP_reshape, &x, 1, a, d);
}

static ValueId
fold(Module *m, const Node *old, Diag *d)
{
	const Type *t = &m->values[old->in[0]].type;
	int64_t G = ir_attr_int(old, "groups");
	int64_t perm[4] = {0, 2, 1, 3}, d4[4], d3[3];
	Attr a[4];
	if (old->op == OP_group_fold) {
		int64_t N = t->dims[0], L = t->dims[1], dd = t->dims[2] / G;
		d4[0] = N, d4[1] = L, d4[2] = G, d4[3] = dd;
		d3[0] = G * N, d3[1] = L, d3[2] = dd;
	} else {
		int64_t N = t->dims[0] / G, L = t->dims[1], dd = t->dims[2];
		d4[0] = N, d4[1] = G, d4[2] = L, d4[3] = dd;
		d3[0] = N, d3[1] = L, d3[2] = G * dd;
	}
	ValueId y = reshape(m, old, old->in[0], d4, 4, d);
	ir_attrs_default(OP_permute, a);
	a[0].present = 1;
	a[0].n = 4;
	a[0].ints = perm;
	y = add(m, old, OP_permute, &y, 1, a, d);
	return reshape(m, old, y, d3, 3, d);
}

ValueId
canon_m4fuse(Module *m, NodeId at, Diag *d)
{
	Node old = m->nodes[at]; /* a copy: appending may move the array */
	M4View v;

	if (old.op == OP_group_fold || old.op == OP_group_unfold)
		return fold(m, &old, d);
	if (m4_view(&old, &v) < 0)
		diag_internal(__FILE__, __LINE__, "canon_m4fuse on %s", optab[old.op].name);
	if (old.op == OP_conv3d_w)
		return add(m, &old, OP_conv3d, v.in, 3, v.attrs, d);

	/* layer_norm_w */
	const Type *t = &m->values[old.in[0]].type;
	int rank = t->rank, dims = (int)ir_attr_int(&old, "dims");
	int64_t axes[IR_MAXRANK] = {0};
	Attr a[4];
	int ia = op_attr_index(OP_moments, "axes"), ie = op_attr_index(OP_moments, "eps");
	for (int i = rank - dims; i < rank; i++)
		axes[i - (rank - dims)] = i;
	ir_attrs_default(OP_moments, a);
	a[ia].present = 1;
	a[ia].n = (uint16_t)dims;
	a[ia].ints = axes;
	a[ie].f = ir_attr_float(&old, "eps");
	ValueId x = old.in[0];
	ValueId mean = add(m, &old, OP_moments, &x, 1, a, d);
	ValueId rstd = ir_def(m, mean)->out[1];
	ValueId y = bin(m, &old, OP_mul, bin(m, &old, OP_sub, x, mean, d), rstd, d);
	y = bin(m, &old, OP_mul, y, old.in[1], d);
	return bin(m, &old, OP_add, y, old.in[2], d);
}
