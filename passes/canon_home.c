/* passes/canon_home.c -- canon rewrites of the Mamba-HoME ops (ir/ops_home.def).
 *
 *   segment_mean(x, axis, s)    reshape x to [..., n/s, s, ...]; reduce_mean over the s axis
 *                               (keepdim 0): the result already has the node's shape
 * New nodes take the replaced node's name and Loc; pass_canon moves them into place.
 *
 *   before:  %2 = segment_mean %1 {axis=1 segment=4}                  (%1: f32[1,8,6])
 *   after:   %3 = reshape %1 {shape=[1,2,4,6]}   %4 = reduce_mean %3 {axes=[2] keepdim=0}
 * (pad_tokens has a template, codegen/tmpl_home.c: a concat with a constant operand cannot
 * be lowered, constants are never materialised.)
 */
#include "pass.h"

#include <string.h>

/* Append op(in[0..nin)) with attrs; returns its first result (a bug if ill-typed). */
static ValueId
emit(Module *m, NodeId at, int op, const ValueId *in, int nin, const Attr *attrs, Diag *d)
{
	const char *name = m->nodes[at].name;
	Loc loc = m->nodes[at].loc;
	int64_t id = ir_add_node(m, op, in, nin, attrs, name, loc, d);

	if (id < 0)
		diag_internal(__FILE__, __LINE__, "canon_home built an ill-typed %s",
		              optab[op].name);
	return m->nodes[id].out[0];
}

static void
set_int(int op, Attr *a, const char *key, int64_t v)
{
	int i = op_attr_index(op, key);
	a[i].present = 1;
	a[i].i = v;
}

static void
set_ints(int op, Attr *a, const char *key, int64_t *v, int n)
{
	int i = op_attr_index(op, key);
	a[i].present = 1;
	a[i].n = (uint16_t)n;
	a[i].ints = v;
}

static ValueId
segment_mean(Module *m, NodeId at, Diag *d)
{
	const Node *n = &m->nodes[at];
	ValueId x = n->in[0];
	Type ti = m->values[x].type;
	int ax = (int)ir_attr_int(n, "axis");
	int64_t s = ir_attr_int(n, "segment"), shape[IR_MAXRANK + 1] = {0}, axes[2] = {0};
	Attr a[8];
	int k = 0;

	if (ax < 0)
		ax += ti.rank;
	for (int i = 0; i < ti.rank; i++) {
		shape[k++] = i == ax ? ti.dims[i] / s : ti.dims[i];
		if (i == ax)
			shape[k++] = s;
	}
	ir_attrs_default(OP_reshape, a);
	set_ints(OP_reshape, a, "shape", shape, ti.rank + 1);
	x = emit(m, at, OP_reshape, &x, 1, a, d);
	axes[0] = ax + 1;
	ir_attrs_default(OP_reduce_mean, a);
	set_ints(OP_reduce_mean, a, "axes", axes, 1);
	set_int(OP_reduce_mean, a, "keepdim", 0);
	return emit(m, at, OP_reduce_mean, &x, 1, a, d);
}

ValueId
canon_home(Module *m, NodeId at, Diag *d)
{
	switch (m->nodes[at].op) {
	case OP_segment_mean:
		return segment_mean(m, at, d);
	default:
		diag_internal(__FILE__, __LINE__, "canon_home called on %s",
		              optab[m->nodes[at].op].name);
		return 0;
	}
}
