/* ir/cost.c -- cost rules: one cost_<rule>() per rule named in ops.def, and module totals.
 *
 * A rule returns the multiply-accumulates (conv, matmul, linear) and the arithmetic FLOPs of
 * one node, from its (already inferred) types: flops = 2 x macs + everything else.  The
 * numbers go into the manifest and `segc info`; elementwise and norm counts are estimates
 * (eltK: K flops per output element), the MAC counts are exact.
 * Requires: types set (shape rules ran); a node with an untyped result costs 0. */
#include "ir.h"

#include <string.h>

static const Type *
tin(const Module *m, const Node *n, int i)
{
	return &m->values[n->in[i]].type;
}

static const Type *
tout(const Module *m, const Node *n, int i)
{
	return &m->values[n->out[i]].type;
}

/* elements of result i; 0 when not typed */
static double
nout_elems(const Module *m, const Node *n, int i)
{
	const Type *t = tout(m, n, i);
	return t->rank < 0 ? 0 : (double)type_numel(t);
}

static double
nin_elems(const Module *m, const Node *n, int i)
{
	if (i >= n->nin || !n->in[i] || tin(m, n, i)->rank < 0)
		return 0;
	return (double)type_numel(tin(m, n, i));
}

static Cost
per_out(const Module *m, const Node *n, double k)
{
	Cost c = { 0, k * nout_elems(m, n, 0) };
	return c;
}

Cost
cost_zero(const Module *m, const Node *n)
{
	Cost c = { 0, 0 };
	return c;
}

Cost
cost_elt1(const Module *m, const Node *n)
{
	return per_out(m, n, 1);
}

Cost
cost_elt2(const Module *m, const Node *n)
{
	return per_out(m, n, 2);
}

Cost
cost_elt4(const Module *m, const Node *n)
{
	return per_out(m, n, 4);
}

Cost
cost_elt8(const Module *m, const Node *n)
{
	return per_out(m, n, 8);
}

Cost
cost_red1(const Module *m, const Node *n)
{
	Cost c = { 0, nin_elems(m, n, 0) };
	return c;
}

/* moments: sum, sum of squares, one more for the square; the rsqrt per output is noise */
Cost
cost_red3(const Module *m, const Node *n)
{
	Cost c = { 0, 3 * nin_elems(m, n, 0) };
	return c;
}

/* max, subtract, exp, sum, divide */
Cost
cost_softmax(const Module *m, const Node *n)
{
	return per_out(m, n, 5);
}

/* instance/group/layer norm: statistics (3) + normalise (2) + affine (2 when present);
 * batch_norm in inference is an affine map: normalise (2) + affine (2 when present) */
Cost
cost_norm(const Module *m, const Node *n)
{
	/* ops without an `affine` switch (rms_norm) always scale */
	int affine = op_attr_index(n->op, "affine") < 0 || ir_attr_int(n, "affine");
	double k = (n->op == OP_batch_norm ? 2 : 5) + (affine ? 2 : 0);
	return per_out(m, n, k);
}

static int
has_bias(const Node *n)
{
	return n->nin > 2 && n->in[2] != 0;
}

/* conv3d and conv3d_ndhwc: x's channel axis ca */
static Cost
conv_cost(const Module *m, const Node *n, int ca)
{
	Cost c = { 0, 0 };
	const Attr *k = ir_attr(n, "kernel");
	int64_t g = ir_attr_int(n, "groups");
	const Type *x = tin(m, n, 0);
	if (x->rank != 5 || g < 1 || tout(m, n, 0)->rank < 0)
		return c;
	double kvol = (double)k->ints[0] * (double)k->ints[1] * (double)k->ints[2];
	c.macs = nout_elems(m, n, 0) * (double)(x->dims[ca] / g) * kvol;
	c.flops = 2 * c.macs + (has_bias(n) ? nout_elems(m, n, 0) : 0);
	return c;
}

Cost
cost_conv3d(const Module *m, const Node *n)
{
	return conv_cost(m, n, 1);
}

/* conv3d on channels-last tensors: the same MACs as conv3d, Ci is x's last dim */
Cost
cost_conv3d_ndhwc(const Module *m, const Node *n)
{
	return conv_cost(m, n, 4);
}

/* every input element is scattered into cout/groups x kernel outputs */
Cost
cost_conv_transpose3d(const Module *m, const Node *n)
{
	Cost c = { 0, 0 };
	const Attr *k = ir_attr(n, "kernel");
	int64_t g = ir_attr_int(n, "groups"), cout = ir_attr_int(n, "cout");
	if (tin(m, n, 0)->rank != 5 || g < 1 || tout(m, n, 0)->rank < 0)
		return c;
	double kvol = (double)k->ints[0] * (double)k->ints[1] * (double)k->ints[2];
	c.macs = nin_elems(m, n, 0) * (double)(cout / g) * kvol;
	c.flops = 2 * c.macs + (has_bias(n) ? nout_elems(m, n, 0) : 0);
	return c;
}

Cost
cost_linear(const Module *m, const Node *n)
{
	Cost c = { 0, 0 };
	const Type *x = tin(m, n, 0);
	if (x->rank < 1 || tout(m, n, 0)->rank < 0)
		return c;
	c.macs = nout_elems(m, n, 0) * (double)x->dims[x->rank - 1];
	c.flops = 2 * c.macs + (has_bias(n) ? nout_elems(m, n, 0) : 0);
	return c;
}

Cost
cost_matmul(const Module *m, const Node *n)
{
	Cost c = { 0, 0 };
	const Type *a = tin(m, n, 0);
	if (a->rank < 2 || tout(m, n, 0)->rank < 0)
		return c;
	c.macs = nout_elems(m, n, 0) * (double)a->dims[a->rank - 1];
	c.flops = 2 * c.macs;
	return c;
}

/* one compare or add per window element */
Cost
cost_pool(const Module *m, const Node *n)
{
	const Attr *k = ir_attr(n, "kernel");
	return per_out(m, n, (double)k->ints[0] * (double)k->ints[1] * (double)k->ints[2]);
}

/* trilinear: 7 lerps of 2 flops; nearest only moves data */
Cost
cost_upsample(const Module *m, const Node *n)
{
	const char *mode = ir_attr_str(n, "mode");
	return per_out(m, n, mode && !strcmp(mode, "trilinear") ? 14 : 0);
}

Cost
ir_node_cost(const Module *m, const Node *n)
{
	return optab[n->op].cost(m, n);
}

int64_t
ir_param_count(const Module *m)
{
	int64_t total = 0;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->dead || n->op != OP_weight)
			continue;
		const Type *t = &m->values[n->out[0]].type;
		if (t->rank >= 0)
			total += type_numel(t);
	}
	return total;
}
