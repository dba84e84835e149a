/* passes/canon_mamba.c -- canon rewrites of the SegMamba-family ops (ir/ops_mamba.def) that are
 * reductions plus elementwise math; the scan, conv1d and pruning ops have templates
 * (codegen/tmpl_scan.c).  New nodes take the replaced node's name and Loc; pass_canon moves
 * them into place.
 *
 *   rms_norm(x, w, eps)       x * rsqrt(reduce_mean(x*x, [-1], keepdim) + eps) * w
 *   rms_norm_l2(x, g, eps)    x / maximum(sqrt(reduce_sum(x*x, [-1], keepdim)), eps) * sqrt(C) * g
 *   dyt(x, alpha, w, b)       tanh(x * clamp(alpha, alpha_min, alpha_max)) * w + b
 *   token_score(x, eps)       s = sqrt(reduce_sum(x*x, [2])); mx = reduce_max(s, [1], keepdim);
 *                             mn = -reduce_max(-s, [1], keepdim); (s - mn) / (mx - mn + eps)
 *
 *   before:  %5 = rms_norm %1, %2 {eps=1e-06}                     (%1: f32[2,7,24])
 *   after:   %6 = mul %1, %1   %7 = reduce_mean %6 {axes=[-1] keepdim=1}   %8 = constant 1e-06
 *            %9 = add %7, %8   %10 = rsqrt %9   %11 = mul %1, %10   %12 = mul %11, %2 */
#include "pass.h"

#include <math.h>

typedef struct {
	Module *m;
	NodeId at;
	Diag *d;
} Cx;

static ValueId
emit(Cx *c, int op, ValueId a, ValueId b, const Attr *attrs)
{
	ValueId in[2] = {a, b};
	const char *name = c->m->nodes[c->at].name;
	Loc loc = c->m->nodes[c->at].loc;
	int64_t id = ir_add_node(c->m, op, in, optab[op].noperands, attrs, name, loc, c->d);

	if (id < 0)
		diag_internal(__FILE__, __LINE__, "canon_mamba built an ill-typed %s",
		              optab[op].name);
	return c->m->nodes[id].out[0];
}

static ValueId
bin(Cx *c, int op, ValueId a, ValueId b)
{
	return emit(c, op, a, b, NULL);
}

static ValueId
un(Cx *c, int op, ValueId a)
{
	return emit(c, op, a, 0, NULL);
}

static ValueId
scalar(Cx *c, double v)
{
	Attr a[4];
	int i = op_attr_index(OP_constant, "value");

	ir_attrs_default(OP_constant, a);
	a[i].present = 1;
	a[i].f = v;
	return emit(c, OP_constant, 0, 0, a);
}

static ValueId
reduce(Cx *c, int op, ValueId x, int64_t axis, int keep)
{
	int64_t axes[2] = {axis, 0};
	Attr a[4];
	int ia = op_attr_index(op, "axes"), ik = op_attr_index(op, "keepdim");

	ir_attrs_default(op, a);
	a[ia].present = 1;
	a[ia].n = 1;
	a[ia].ints = axes;
	a[ik].present = 1;
	a[ik].i = keep;
	return emit(c, op, x, 0, a);
}

static ValueId
clamp(Cx *c, ValueId x, double lo, double hi)
{
	Attr a[4];
	int il = op_attr_index(OP_clamp, "min"), ih = op_attr_index(OP_clamp, "max");

	ir_attrs_default(OP_clamp, a);
	a[il].present = a[ih].present = 1;
	a[il].f = lo;
	a[ih].f = hi;
	return emit(c, OP_clamp, x, 0, a);
}

ValueId
canon_mamba(Module *m, NodeId at, Diag *d)
{
	Cx c = {m, at, d};
	Node n = m->nodes[at]; /* a copy: emitting may move the array */
	ValueId x = n.in[0];
	const Type t = m->values[x].type;
	int64_t ch = t.dims[t.rank - 1];

	switch (n.op) {
	case OP_rms_norm: {
		double eps = ir_attr_float(&n, "eps");
		ValueId ms = reduce(&c, OP_reduce_mean, bin(&c, OP_mul, x, x), -1, 1);
		ValueId r = un(&c, OP_rsqrt, bin(&c, OP_add, ms, scalar(&c, eps)));
		return bin(&c, OP_mul, bin(&c, OP_mul, x, r), n.in[1]);
	}
	case OP_rms_norm_l2: {
		double eps = ir_attr_float(&n, "eps");
		ValueId ss = reduce(&c, OP_reduce_sum, bin(&c, OP_mul, x, x), -1, 1);
		ValueId den = bin(&c, OP_maximum, un(&c, OP_sqrt, ss), scalar(&c, eps));
		ValueId y = bin(&c, OP_div, x, den);
		y = bin(&c, OP_mul, y, scalar(&c, sqrt((double)ch)));
		return bin(&c, OP_mul, y, n.in[1]);
	}
	case OP_dyt: {
		ValueId a = n.in[1];
		if (ir_attr_int(&n, "clamp"))
			a = clamp(&c, a, ir_attr_float(&n, "alpha_min"),
			          ir_attr_float(&n, "alpha_max"));
		ValueId y = un(&c, OP_tanh, bin(&c, OP_mul, x, a));
		return bin(&c, OP_add, bin(&c, OP_mul, y, n.in[2]), n.in[3]);
	}
	case OP_token_score: {
		double eps = ir_attr_float(&n, "eps");
		ValueId s = un(&c, OP_sqrt, reduce(&c, OP_reduce_sum, bin(&c, OP_mul, x, x), 2, 0));
		ValueId mx = reduce(&c, OP_reduce_max, s, 1, 1);
		ValueId mn = un(&c, OP_neg, reduce(&c, OP_reduce_max, un(&c, OP_neg, s), 1, 1));
		ValueId den = bin(&c, OP_add, bin(&c, OP_sub, mx, mn), scalar(&c, eps));
		return bin(&c, OP_div, bin(&c, OP_sub, s, mn), den);
	}
	default:
		diag_internal(__FILE__, __LINE__, "canon_mamba: unexpected op %s",
		              optab[n.op].name);
	}
}
