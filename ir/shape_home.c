/* ir/shape_home.c -- shape and cost rules of the Mamba-HoME ops (ir/ops_home.def).
 *
 * pad_tokens and segment_mean are the two places where HoME's grouping can be ill-formed:
 * a group size below 1, or a sequence that does not split into whole segments (the
 * second-level slots cannot be formed).  Both are rejected here with one line naming the
 * attribute, at the node's Loc, so the frontend points at the graph expression behind it. */
#include "ir.h"

#define TS 160

static const Type *
tin(const Module *m, const Node *n, int i)
{
	return &m->values[n->in[i]].type;
}

/* the one data operand: present, typed, float, rank >= 1; the axis attribute in range */
static int
home_operand(const Module *m, const Node *n, Diag *d, int *ax)
{
	const char *op = optab[n->op].name;
	char b[TS];

	if (n->nin != 1 || !n->in[0] || n->in[0] >= m->nvalues)
		return diag_error(d, n->loc, "%s: got %d operands, expected 1", op, n->nin);
	const Type *x = tin(m, n, 0);
	if (x->rank < 1)
		return diag_error(d, n->loc,
		                  "%s: operand has no type or rank 0, expected a "
		                  "tensor of rank >= 1",
		                  op);
	if (x->dtype != DT_F32 && x->dtype != DT_F16 && x->dtype != DT_BF16)
		return diag_error(d, n->loc, "%s: operand has type %s, expected a float type", op,
		                  type_str(x, b, sizeof b));
	int64_t a = ir_attr_int(n, "axis");
	if (a < -x->rank || a >= x->rank)
		return diag_error(d, n->loc, "%s: axis %lld out of range, expected -%d..%d", op,
		                  (long long)a, x->rank, x->rank - 1);
	*ax = (int)(a < 0 ? a + x->rank : a);
	return 0;
}

int
shape_pad_tokens(Module *m, Node *n, Diag *d)
{
	int ax = 0;

	if (home_operand(m, n, d, &ax) < 0)
		return -1;
	int64_t k = ir_attr_int(n, "group_size");
	if (k < 1)
		return diag_error(d, n->loc,
		                  "pad_tokens: group_size is %lld, expected a positive group size "
		                  "(tokens per group)",
		                  (long long)k);
	if (k > ((int64_t)1 << 30))
		return diag_error(d, n->loc,
		                  "pad_tokens: group_size is %lld, expected at most 2^30",
		                  (long long)k);
	Type r = *tin(m, n, 0);
	r.dims[ax] = (r.dims[ax] + k - 1) / k * k;
	m->values[n->out[0]].type = r;
	return 0;
}

int
shape_segment_mean(Module *m, Node *n, Diag *d)
{
	int ax = 0;

	if (home_operand(m, n, d, &ax) < 0)
		return -1;
	int64_t s = ir_attr_int(n, "segment"), len = tin(m, n, 0)->dims[ax];
	if (tin(m, n, 0)->rank >= IR_MAXRANK)
		return diag_error(d, n->loc, "segment_mean: operand of rank %d, expected below %d",
		                  tin(m, n, 0)->rank, IR_MAXRANK);
	if (s < 1)
		return diag_error(d, n->loc,
		                  "segment_mean: segment is %lld, expected a positive segment size "
		                  "(tokens per slot)",
		                  (long long)s);
	if (len % s)
		return diag_error(
		    d, n->loc,
		    "segment_mean: axis %d has %lld tokens, not a multiple of segment "
		    "%lld: the slots cannot be formed, expected a segment size that "
		    "divides it",
		    ax, (long long)len, (long long)s);
	Type r = *tin(m, n, 0);
	r.dims[ax] = len / s;
	m->values[n->out[0]].type = r;
	return 0;
}

Cost
cost_home_zero(const Module *m, const Node *n)
{
	Cost c = {0, 0};
	return c;
}

/* one add per input element */
Cost
cost_segment_mean(const Module *m, const Node *n)
{
	Cost c = {0, 0};
	if (n->nin && n->in[0] && m->values[n->in[0]].type.rank >= 0)
		c.flops = (double)type_numel(&m->values[n->in[0]].type);
	return c;
}
