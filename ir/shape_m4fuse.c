/* ir/shape_m4fuse.c -- shape and cost rules of the M4Fuse ops
 * (ir/ops_m4fuse.def), the view helper of ir/ir_m4fuse.h, and the fvcore-style
 * MAC count of the M4Fuse paper.
 *
 * conv3d_w / layer_norm_w run the core rule (shape_conv3d, shape_norm_last,
 * cost_conv3d, cost_norm) on a view node whose weight operands are the data
 * operands, so a weight of the wrong shape gives the core message ("weight
 * 'fbb.satt.conv.0.weight' has shape ..."). select_by_index checks that the
 * index is an i64 [N] or [N,1] and that every candidate has the same type with
 * batch N. */
#include "ir_m4fuse.h"

#include <string.h>

#define TS 160

static void
copy_attrs(const Node *n, int op, Attr *attrs)
{
	ir_attrs_default(op, attrs);
	for (int i = 0; i < optab[n->op].nattrs; i++) {
		int k = op_attr_index(op, optab[n->op].schema[i].key);
		if (k >= 0)
			attrs[k] = n->attrs[i];
	}
}

int
m4_view(const Node *n, M4View *v)
{
	memset(v, 0, sizeof *v);
	v->node = *n;
	v->node.in = v->in;
	v->node.attrs = v->attrs;
	v->in[0] = n->in[0];
	v->in[1] = n->nin > 1 ? n->in[1] : 0;
	v->node.nin = 3;
	if (n->op == OP_conv3d_w) {
		v->node.op = OP_conv3d;
		copy_attrs(n, OP_conv3d, v->attrs);
		v->attrs[op_attr_index(OP_conv3d, "bias")].i = 0;
		v->in[2] = 0;
		return 0;
	}
	if (n->op == OP_layer_norm_w) {
		v->node.op = OP_layer_norm;
		copy_attrs(n, OP_layer_norm, v->attrs);
		v->attrs[op_attr_index(OP_layer_norm, "affine")].i = 1;
		v->in[2] = n->nin > 2 ? n->in[2] : 0;
		return 0;
	}
	return -1;
}

/* operand count, ids and types of a family node before its view runs */
static int
operands_ok(Module *m, Node *n, Diag *d, int want)
{
	const char *op = optab[n->op].name;
	if (n->nin != want)
		return diag_error(d, n->loc, "%s: got %d operands, expected %d", op, n->nin, want);
	for (int i = 0; i < n->nin; i++) {
		if (!n->in[i] || n->in[i] >= m->nvalues)
			return diag_error(d, n->loc, "%s: operand %d is missing, expected a value",
			                  op, i);
		if (m->values[n->in[i]].type.rank < 0)
			return diag_error(d, n->loc,
			                  "%s: operand %d has no type, expected a weight with a "
			                  "\"shape\" or a computed value",
			                  op, i);
	}
	return 0;
}

int
shape_conv3d_w(Module *m, Node *n, Diag *d)
{
	M4View v;
	if (operands_ok(m, n, d, 2) < 0 || m4_view(n, &v) < 0)
		return -1;
	return shape_conv3d(m, &v.node, d);
}

Cost
cost_conv3d_w(const Module *m, const Node *n)
{
	M4View v;
	Cost zero = {0, 0};
	if (m4_view(n, &v) < 0)
		return zero;
	return cost_conv3d(m, &v.node);
}

int
shape_layer_norm_w(Module *m, Node *n, Diag *d)
{
	M4View v;
	if (operands_ok(m, n, d, 3) < 0 || m4_view(n, &v) < 0)
		return -1;
	return shape_norm_last(m, &v.node, d);
}

Cost
cost_layer_norm_w(const Module *m, const Node *n)
{
	M4View v;
	Cost zero = {0, 0};
	if (m4_view(n, &v) < 0)
		return zero;
	return cost_norm(m, &v.node);
}

static const char *
vname(const Module *m, ValueId v)
{
	return m->values[v].name ? m->values[v].name : "(computed)";
}

int
shape_select_by_index(Module *m, Node *n, Diag *d)
{
	char b1[TS], b2[TS];

	if (n->nin < 2)
		return diag_error(d, n->loc,
		                  "select_by_index: got %d operands, expected an index and at "
		                  "least one candidate",
		                  n->nin);
	for (int i = 0; i < n->nin; i++) {
		if (!n->in[i] || n->in[i] >= m->nvalues || m->values[n->in[i]].type.rank < 0)
			return diag_error(d, n->loc,
			                  "select_by_index: operand %d is missing or untyped, "
			                  "expected a typed value",
			                  i);
	}
	const Type *x0 = &m->values[n->in[1]].type;
	if (x0->rank < 1 || x0->dtype != DT_F32)
		return diag_error(d, n->loc,
		                  "select_by_index: candidate 0 has type %s, expected f32 with a "
		                  "batch axis",
		                  type_str(x0, b1, sizeof b1));
	for (int i = 2; i < n->nin; i++) {
		const Type *xi = &m->values[n->in[i]].type;
		if (!type_equal(xi, x0))
			return diag_error(d, n->loc,
			                  "select_by_index: candidate %d has type %s, expected %s "
			                  "(the type of candidate 0)",
			                  i - 1, type_str(xi, b1, sizeof b1),
			                  type_str(x0, b2, sizeof b2));
	}
	const Type *ix = &m->values[n->in[0]].type;
	int64_t N = x0->dims[0];
	if (ix->dtype != DT_I64 || ix->rank < 1 || ix->rank > 2 || ix->dims[0] != N ||
	    (ix->rank == 2 && ix->dims[1] != 1))
		return diag_error(d, n->loc,
		                  "select_by_index: index '%s' has type %s, expected i64[%lld] "
		                  "or i64[%lld,1] (one label per sample)",
		                  vname(m, n->in[0]), type_str(ix, b1, sizeof b1), (long long)N,
		                  (long long)N);
	m->values[n->out[0]].type = *x0;
	return 0;
}

/* a copy: no arithmetic */
Cost
cost_select_by_index(const Module *m, const Node *n)
{
	Cost c = {0, 0};
	return c;
}

/* group_fold [N,L,C] -> [G*N, L, C/G]; group_unfold [G*N, L, d] -> [N, L, G*d] */
int
shape_group_fold(Module *m, Node *n, Diag *d)
{
	char b[TS];
	const char *op = optab[n->op].name;
	if (operands_ok(m, n, d, 1) < 0)
		return -1;
	const Type *x = &m->values[n->in[0]].type;
	int64_t G = ir_attr_int(n, "groups");
	if (x->rank != 3 || x->dtype != DT_F32)
		return diag_error(d, n->loc, "%s: input has type %s, expected f32 [N, L, C] tokens",
		                  op, type_str(x, b, sizeof b));
	if (G < 1)
		return diag_error(d, n->loc, "%s: groups is %lld, expected >= 1", op, (long long)G);
	Type r = *x;
	if (n->op == OP_group_fold) {
		if (x->dims[2] % G)
			return diag_error(
			    d, n->loc,
			    "%s: %lld channels not divisible by groups=%lld, expected a "
			    "multiple of %lld",
			    op, (long long)x->dims[2], (long long)G, (long long)G);
		r.dims[0] = x->dims[0] * G;
		r.dims[2] = x->dims[2] / G;
	} else {
		if (x->dims[0] % G)
			return diag_error(d, n->loc,
			                  "%s: batch %lld not divisible by groups=%lld, expected a "
			                  "multiple of %lld (a group_fold result)",
			                  op, (long long)x->dims[0], (long long)G, (long long)G);
		r.dims[0] = x->dims[0] / G;
		r.dims[2] = x->dims[2] * G;
	}
	m->values[n->out[0]].type = r;
	return 0;
}
