/* passes/fold.c -- fold constants and algebraic identities.
 *
 * A constant node holds one scalar broadcast to its shape, so:
 *   - an elementwise op whose operands are all constants becomes a constant (computed in
 *     double, rounded to f32), rewritten in place so its result keeps its id and position;
 *   - a reshape or permute of a constant is a constant of the new shape;
 *   - x*1, 1*x, x+0, 0+x, x-0, x/1 and identity x become x, when x already has the result's
 *     type (a broadcasting identity such as x[4] * 1[2,4] is kept);
 *   - reshape(reshape(x)) reads x directly; a reshape to x's own shape and a permute with the
 *     identity perm become x.
 * One forward sweep suffices: operands are folded before their users are visited.
 *
 * requires:  typed module (infer); canon first, so norms are exposed
 * preserves: ids; folded nodes keep their result id; replaced nodes are removed
 *
 *   before:  %3 = constant {value=2}  %4 = mul %3, %3  %5 = mul %1, %6 (%6 = constant 1)
 *   after:   %4 = constant {value=4}                   (uses of %5 read %1)
 */
#include "pass.h"

#include <math.h>
#include <string.h>

static const Node *
def_const(const Module *m, ValueId v)
{
	const Node *n = v ? ir_def(m, v) : NULL;
	return n && !n->dead && n->op == OP_constant ? n : NULL;
}

static double
cval(const Module *m, ValueId v)
{
	return ir_attr_float(def_const(m, v), "value");
}

/* the value of op on scalar operands a, b; 0 if op is not folded here */
static int
eval(const Node *n, double a, double b, double *r)
{
	switch (n->op) {
	case OP_identity:   *r = a; break;
	case OP_relu:       *r = a > 0 ? a : 0; break;
	case OP_leaky_relu: *r = a > 0 ? a : a * ir_attr_float(n, "slope"); break;
	case OP_silu:       *r = a / (1 + exp(-a)); break;
	case OP_sigmoid:    *r = 1 / (1 + exp(-a)); break;
	case OP_tanh:       *r = tanh(a); break;
	case OP_exp:        *r = exp(a); break;
	case OP_log:        *r = log(a); break;
	case OP_sqrt:       *r = sqrt(a); break;
	case OP_rsqrt:      *r = 1 / sqrt(a); break;
	case OP_neg:        *r = -a; break;
	case OP_abs:        *r = fabs(a); break;
	case OP_erf:        *r = erf(a); break;
	case OP_add:        *r = a + b; break;
	case OP_sub:        *r = a - b; break;
	case OP_mul:        *r = a * b; break;
	case OP_div:        *r = a / b; break;
	case OP_maximum:    *r = a > b ? a : b; break;
	case OP_minimum:    *r = a < b ? a : b; break;
	case OP_pow:        *r = pow(a, b); break;
	default:            return 0;
	}
	*r = (float)*r;
	return 1;
}

/* Turn node n into "constant {value}" of its result type, in place. */
static void
make_const(Module *m, Node *n, double value, Diag *d)
{
	const Type *t = &m->values[n->out[0]].type;
	Attr *a = arena_zalloc(m->arena, (optab[OP_constant].nattrs + 1) * sizeof *a);
	int iv = op_attr_index(OP_constant, "value"), is = op_attr_index(OP_constant, "shape");
	int id = op_attr_index(OP_constant, "dtype");

	ir_attrs_default(OP_constant, a);
	a[iv].f = value;
	a[iv].present = 1;
	a[is].present = 1;
	a[is].n = (uint16_t)t->rank;
	a[is].ints = arena_zalloc(m->arena, (size_t)(t->rank + 1) * sizeof(int64_t));
	memcpy(a[is].ints, t->dims, (size_t)t->rank * sizeof(int64_t));
	a[id].present = 1;
	a[id].s = dtype_name(t->dtype);
	n->op = OP_constant;
	n->nin = 0;
	n->attrs = a;
	if (optab[OP_constant].shape(m, n, d) < 0)
		diag_internal(__FILE__, __LINE__, "fold built an ill-typed constant");
}

/* true if operand i of n is a constant equal to k */
static int
is_k(const Module *m, const Node *n, int i, double k)
{
	return def_const(m, n->in[i]) && cval(m, n->in[i]) == k;
}

/* The value n's result can be replaced by, or 0 if none. */
static ValueId
identity_of(const Module *m, const Node *n)
{
	const Type *t = &m->values[n->out[0]].type;
	ValueId x = 0;

	switch (n->op) {
	case OP_identity:
		x = n->in[0];
		break;
	case OP_mul:
		x = is_k(m, n, 1, 1) ? n->in[0] : is_k(m, n, 0, 1) ? n->in[1] : 0;
		break;
	case OP_add:
		x = is_k(m, n, 1, 0) ? n->in[0] : is_k(m, n, 0, 0) ? n->in[1] : 0;
		break;
	case OP_sub:
		x = is_k(m, n, 1, 0) ? n->in[0] : 0;
		break;
	case OP_div:
		x = is_k(m, n, 1, 1) ? n->in[0] : 0;
		break;
	case OP_reshape:
		x = n->in[0];
		break;
	case OP_permute: {
		const Attr *p = ir_attr(n, "perm");
		for (int i = 0; i < p->n; i++)
			if (p->ints[i] != i)
				return 0;
		x = n->in[0];
		break;
	}
	default:
		return 0;
	}
	return x && type_equal(&m->values[x].type, t) ? x : 0;
}

/* fold n if all its operands are constants; 1 if it did */
static int
fold_const(Module *m, Node *n, Diag *d)
{
	double a = 0, b = 0, r;

	if (n->nin == 0 || n->nout != 1)
		return 0;
	for (int i = 0; i < n->nin; i++)
		if (!def_const(m, n->in[i]))
			return 0;
	if (n->op == OP_reshape || n->op == OP_permute) {
		make_const(m, n, cval(m, n->in[0]), d);
		return 1;
	}
	if (optab[n->op].cls != FUSE_ELT || n->nin > 2)
		return 0;
	a = cval(m, n->in[0]);
	if (n->nin > 1)
		b = cval(m, n->in[1]);
	if (!eval(n, a, b, &r))
		return 0;
	make_const(m, n, r, d);
	return 1;
}

int
pass_fold(Module *m, PassCtx *cx)
{
	for (uint32_t i = 0; i < m->nnodes; i++) {
		Node *n = &m->nodes[i];
		ValueId x;

		if (n->dead || optab[n->op].cls == FUSE_SRC)
			continue;
		if (fold_const(m, n, cx->diag)) {
			cx->changed = 1;
			continue;
		}
		/* reshape(reshape(x)) -> reshape(x); the inner one may die (dce) */
		if (n->op == OP_reshape && ir_def(m, n->in[0])->op == OP_reshape) {
			n->in[0] = ir_def(m, n->in[0])->in[0];
			cx->changed = 1;
		}
		x = identity_of(m, n);
		if (x) {
			ir_replace_uses(m, n->out[0], x);
			n->dead = 1;
			cx->changed = 1;
		}
	}
	ir_sweep(m, &cx->changed);
	ir_count_uses(m);
	return 0;
}
