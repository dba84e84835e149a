/* ir/shape.c -- shape rules: one shape_<rule>() per rule named in ops.def.
 *
 * A rule checks a node's operands (ranks, dtypes) and attributes, sets the types of its
 * results, and types its parameter operands: a weight of rank -1 gets the PyTorch layout
 * (conv3d weight [cout, cin/groups, kd, kh, kw], ...), a typed one is checked against it.
 * Semantics follow PyTorch exactly (output size formulas, python slicing, broadcasting).
 * Every problem is reported through diag_error() at the node's Loc and returns -1; a rule
 * never aborts on bad input.  Called by the builder as each node is added and by ir_verify. */
#include "ir.h"
#include "shape.h"

#include <math.h>
#include <string.h>

#define TS 160 /* room for a type string */
/* Sizes and size-like attributes are bounded so that no output-size formula can overflow
 * int64 (products of two stay below 2^61); real networks are far below these. */
#define MAXATTR ((int64_t)1 << 30)
#define MAXDIM ((int64_t)1 << 31)
#define MAXNUMEL ((int64_t)1 << 50)

static const char *
opname(const Node *n)
{
	return optab[n->op].name;
}

static const Type *
tin(const Module *m, const Node *n, int i)
{
	return &m->values[n->in[i]].type;
}

static Type *
tout(Module *m, const Node *n, int i)
{
	return &m->values[n->out[i]].type;
}

static const Attr *
at(const Node *n, const char *key)
{
	return ir_attr(n, key);
}

static int
isfloat(int dt)
{
	return dt == DT_F32 || dt == DT_F16 || dt == DT_BF16;
}

/* floor division, also for a negative numerator (PyTorch's div_rtn) */
static int64_t
floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* axis a of a rank-r tensor, negative counting from the end; -1 if out of range */
static int64_t
axis_norm(int64_t a, int r)
{
	if (a < -r || a >= r)
		return -1;
	return a < 0 ? a + r : a;
}

static const char *
vname(const Module *m, ValueId v)
{
	return m->values[v].name ? m->values[v].name : "(unnamed)";
}

static int
size_ok(const Type *t)
{
	int64_t numel = 1;
	if (t->rank > IR_MAXRANK)
		return 0;
	for (int i = 0; i < t->rank; i++) {
		if (t->dims[i] < 0 || t->dims[i] > MAXDIM)
			return 0;
		numel *= t->dims[i];
		if (numel > MAXNUMEL)
			return 0;
	}
	return 1;
}

/* Checks shared by every rule: operand count, operand ids, presence of parameters against
 * their enabling bool attribute, data operands typed, required attributes present and lists
 * of the right length.  untyped_weights: a data operand that is a named weight of rank -1 is
 * accepted (the rule types it, ir/shape_mamba.c). */
int
shape_prelude(Module *m, Node *n, Diag *d, int untyped_weights)
{
	const OpInfo *oi = &optab[n->op];
	int variadic = oi->noperands && oi->opspec[oi->noperands - 1].variadic;

	if (variadic ? n->nin < oi->noperands : n->nin != oi->noperands)
		return diag_error(d, n->loc, "%s: got %d operands, expected %s%d", opname(n),
		                  n->nin, variadic ? "at least " : "", oi->noperands);
	for (int i = 0; i < oi->nattrs; i++) {
		const AttrSpec *s = &oi->schema[i];
		const Attr *a = &n->attrs[i];
		if (!a->present) {
			if (!s->optional)
				return diag_error(d, n->loc, "%s: attribute '%s' is missing",
				                  opname(n), s->key);
			continue;
		}
		if (s->count && a->n != s->count)
			return diag_error(d, n->loc,
			                  "%s: attribute '%s' has %d values, expected %d",
			                  opname(n), s->key, a->n, s->count);
		if (a->type == AT_STR && !a->s)
			return diag_error(d, n->loc,
			                  "%s: attribute '%s' has no string, expected one",
			                  opname(n), s->key);
		if ((a->type == AT_INTS && a->n && !a->ints) ||
		    (a->type == AT_FLOATS && a->n && !a->floats))
			return diag_error(d, n->loc,
			                  "%s: attribute '%s' has no values, expected %d",
			                  opname(n), s->key, a->n);
		/* slice bounds are python-style and may be anything (clamped) */
		if (n->op == OP_slice && (!strcmp(s->key, "start") || !strcmp(s->key, "end")))
			continue;
		for (int k = 0; k < (a->type == AT_INTS ? a->n : a->type == AT_INT); k++) {
			int64_t v = a->type == AT_INTS ? a->ints[k] : a->i;
			if (v > MAXATTR || v < -MAXATTR)
				return diag_error(d, n->loc,
				                  "%s: attribute '%s' is %lld, expected a "
				                  "magnitude of at most 2^30",
				                  opname(n), s->key, (long long)v);
		}
	}
	for (int i = 0; i < n->nin; i++) {
		const OperandSpec *s = &oi->opspec[i < oi->noperands ? i : oi->noperands - 1];
		ValueId v = n->in[i];
		if (v >= m->nvalues)
			return diag_error(d, n->loc,
			                  "%s: operand '%s' is %u, expected a value id below %u",
			                  opname(n), s->name, v, m->nvalues);
		if (s->param) {
			int want = s->when < 0 || n->attrs[s->when].i;
			if (want && !v)
				return diag_error(d, n->loc, "%s: parameter '%s' is missing",
				                  opname(n), s->name);
			if (!want && v)
				return diag_error(d, n->loc,
				                  "%s: parameter '%s' given but '%s' is false, "
				                  "expected no operand",
				                  opname(n), s->name, oi->schema[s->when].key);
			continue;
		}
		if (!v)
			return diag_error(d, n->loc, "%s: operand '%s' is missing", opname(n),
			                  s->name);
		if (m->values[v].type.rank < 0 && untyped_weights && m->values[v].name)
			continue; /* typed by the rule */
		if (m->values[v].type.rank < 0)
			return diag_error(d, n->loc,
			                  "%s: operand '%s' has no type yet, expected a typed "
			                  "value",
			                  opname(n), s->name);
		if (!size_ok(&m->values[v].type))
			return diag_error(d, n->loc,
			                  "%s: operand '%s' is too large, expected dims "
			                  "below 2^31 and fewer than 2^50 elements",
			                  opname(n), s->name);
	}
	return 0;
}

/* Type parameter operand i as want (rank -1), or check it. */
static int
param(Module *m, Node *n, Diag *d, int i, Type want)
{
	ValueId v = n->in[i];
	char b1[TS], b2[TS];

	if (!v)
		return 0;
	Type *t = &m->values[v].type;
	if (t->rank < 0) {
		*t = want;
		return 0;
	}
	if (type_equal(t, &want))
		return 0;
	return diag_error(d, n->loc, "weight '%s' has shape %s, expected %s", vname(m, v),
	                  type_str(t, b1, sizeof b1), type_str(&want, b2, sizeof b2));
}

static Type
vec(int dt, int64_t c)
{
	return type_make(dt, 1, &c);
}

static int
need_float(const Module *m, const Node *n, Diag *d, int i)
{
	char b[TS];
	const Type *t = tin(m, n, i);
	if (isfloat(t->dtype))
		return 0;
	return diag_error(d, n->loc, "%s: operand %d has type %s, expected a float type (f32)",
	                  opname(n), i, type_str(t, b, sizeof b));
}

static int
need_rank(const Module *m, const Node *n, Diag *d, int i, int lo, int hi)
{
	char b[TS];
	const Type *t = tin(m, n, i);
	if (t->rank >= lo && t->rank <= hi)
		return 0;
	if (lo == hi)
		return diag_error(d, n->loc, "%s: input has type %s, expected rank %d", opname(n),
		                  type_str(t, b, sizeof b), lo);
	return diag_error(d, n->loc, "%s: input has type %s, expected rank %d or more", opname(n),
	                  type_str(t, b, sizeof b), lo);
}

/* ---- sources ---- */

int
shape_source(Module *m, Node *n, Diag *d)
{
	/* input and weight: the builder sets the type (a weight may stay rank -1) */
	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	if (!n->attrs[0].s || !n->attrs[0].s[0])
		return diag_error(d, n->loc, "%s: empty name, expected a name", opname(n));
	return 0;
}

int
shape_constant(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	const Attr *sh = at(n, "shape");
	const char *dts = at(n, "dtype")->s;
	int dt = dtype_lookup(dts);
	if (dt < 0)
		return diag_error(d, n->loc,
		                  "constant: unknown dtype '%s', expected f32, f16, bf16, "
		                  "i32, i64 or u8",
		                  dts);
	if (sh->n > IR_MAXRANK)
		return diag_error(d, n->loc, "constant: shape has %d dims, expected at most %d",
		                  sh->n, IR_MAXRANK);
	for (int i = 0; i < sh->n; i++)
		if (sh->ints[i] < 1)
			return diag_error(d, n->loc,
			                  "constant: shape dim %d is %lld, expected >= 1", i,
			                  (long long)sh->ints[i]);
	Type t = type_make(dt, sh->n, sh->ints);
	if (!size_ok(&t))
		return diag_error(d, n->loc,
		                  "constant: shape too large, expected fewer than 2^50 "
		                  "elements");
	*tout(m, n, 0) = t;
	return 0;
}

/* ---- elementwise ---- */

int
shape_same(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	if (n->op != OP_identity && need_float(m, n, d, 0) < 0)
		return -1;
	if (n->op == OP_softmax && axis_norm(at(n, "axis")->i, x->rank) < 0)
		return diag_error(d, n->loc, "softmax: axis %lld out of range, expected -%d..%d",
		                  (long long)at(n, "axis")->i, x->rank, x->rank - 1);
	if (n->op == OP_gelu) {
		const char *a = at(n, "approximate")->s;
		if (strcmp(a, "none") && strcmp(a, "tanh"))
			return diag_error(d, n->loc,
			                  "gelu: approximate is '%s', expected 'none' or "
			                  "'tanh'",
			                  a);
	}
	if (n->op == OP_softplus && at(n, "beta")->f == 0)
		return diag_error(d, n->loc, "softplus: beta is 0, expected a non-zero value");
	*tout(m, n, 0) = *x;
	return 0;
}

int
shape_bcast(Module *m, Node *n, Diag *d)
{
	char b1[TS], b2[TS];

	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	const Type *a = tin(m, n, 0), *b = tin(m, n, 1);
	if (a->dtype != b->dtype || !isfloat(a->dtype))
		return diag_error(d, n->loc,
		                  "%s: operands have types %s and %s, expected the same "
		                  "float dtype",
		                  opname(n), type_str(a, b1, sizeof b1),
		                  type_str(b, b2, sizeof b2));
	Type r = *a;
	r.rank = a->rank > b->rank ? a->rank : b->rank;
	for (int i = 0; i < r.rank; i++) {
		int ia = i - (r.rank - a->rank), ib = i - (r.rank - b->rank);
		int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return diag_error(d, n->loc,
			                  "%s: cannot broadcast %s with %s (axis %d: %lld vs "
			                  "%lld), expected equal dims or 1",
			                  opname(n), type_str(a, b1, sizeof b1),
			                  type_str(b, b2, sizeof b2), i, (long long)da,
			                  (long long)db);
		r.dims[i] = da == 1 ? db : da;
	}
	for (int i = r.rank; i < IR_MAXRANK; i++)
		r.dims[i] = 0;
	*tout(m, n, 0) = r;
	return 0;
}

/* ---- index maps ---- */

int
shape_reshape(Module *m, Node *n, Diag *d)
{
	char b[TS];

	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	const Attr *s = at(n, "shape");
	if (s->n > IR_MAXRANK)
		return diag_error(d, n->loc, "reshape: %d dims, expected at most %d", s->n,
		                  IR_MAXRANK);
	int infer = -1;
	int64_t known = 1;
	for (int i = 0; i < s->n; i++) {
		if (s->ints[i] == -1) {
			if (infer >= 0)
				return diag_error(d, n->loc,
				                  "reshape: more than one -1 in shape, expected "
				                  "at most one");
			infer = i;
		} else if (s->ints[i] < 1) {
			return diag_error(d, n->loc, "reshape: dim %d is %lld, expected >= 1 or -1",
			                  i, (long long)s->ints[i]);
		} else {
			known *= s->ints[i];
			if (known > MAXNUMEL)
				return diag_error(d, n->loc,
				                  "reshape: shape has more than 2^50 elements, "
				                  "expected a shape of %s",
				                  type_str(x, b, sizeof b));
		}
	}
	int64_t numel = type_numel(x);
	Type r = type_make(x->dtype, s->n, s->ints);
	if (infer >= 0) {
		if (numel % known)
			return diag_error(d, n->loc,
			                  "reshape: cannot infer -1 for %s (%lld elements) "
			                  "from %lld, expected a divisor",
			                  type_str(x, b, sizeof b), (long long)numel,
			                  (long long)known);
		r.dims[infer] = numel / known;
		known = numel;
	}
	if (known != numel)
		return diag_error(d, n->loc,
		                  "reshape: %s has %lld elements, the shape %lld, expected "
		                  "the same count",
		                  type_str(x, b, sizeof b), (long long)numel, (long long)known);
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_permute(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	const Attr *p = at(n, "perm");
	int seen[IR_MAXRANK] = { 0 };
	if (p->n != x->rank)
		return diag_error(d, n->loc, "permute: perm has %d entries, expected %d (the rank)",
		                  p->n, x->rank);
	Type r = *x;
	for (int i = 0; i < p->n; i++) {
		int64_t a = axis_norm(p->ints[i], x->rank);
		if (a < 0 || seen[a]++)
			return diag_error(d, n->loc,
			                  "permute: perm is not a permutation of 0..%d at "
			                  "entry %d (%lld)",
			                  x->rank - 1, i, (long long)p->ints[i]);
		r.dims[i] = x->dims[a];
	}
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_slice(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	int64_t ax = axis_norm(at(n, "axis")->i, x->rank);
	int64_t step = at(n, "step")->i;
	if (ax < 0)
		return diag_error(d, n->loc, "slice: axis %lld out of range, expected -%d..%d",
		                  (long long)at(n, "axis")->i, x->rank, x->rank - 1);
	if (step < 1)
		return diag_error(d, n->loc, "slice: step is %lld, expected >= 1", (long long)step);
	int64_t dim = x->dims[ax], s = at(n, "start")->i, e = at(n, "end")->i;
	/* python: negative counts from the end, then clamp into [0, dim] */
	if (s < 0)
		s = s + dim < 0 ? 0 : s + dim;
	if (e < 0)
		e = e + dim < 0 ? 0 : e + dim;
	if (s > dim)
		s = dim;
	if (e > dim)
		e = dim;
	int64_t len = e > s ? (e - s - 1) / step + 1 : 0;
	if (len < 1)
		return diag_error(d, n->loc,
		                  "slice: [%lld:%lld:%lld] of an axis of size %lld is "
		                  "empty, expected a non-empty slice",
		                  (long long)at(n, "start")->i, (long long)at(n, "end")->i,
		                  (long long)step, (long long)dim);
	Type r = *x;
	r.dims[ax] = len;
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_concat(Module *m, Node *n, Diag *d)
{
	char b1[TS], b2[TS];

	if (shape_prelude(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	if (x->rank < 1)
		return diag_error(d, n->loc, "concat: operand 0 has rank 0, expected rank >= 1");
	int64_t ax = axis_norm(at(n, "axis")->i, x->rank);
	if (ax < 0)
		return diag_error(d, n->loc, "concat: axis %lld out of range, expected -%d..%d",
		                  (long long)at(n, "axis")->i, x->rank, x->rank - 1);
	Type r = *x;
	for (int i = 1; i < n->nin; i++) {
		const Type *y = tin(m, n, i);
		int ok = y->rank == x->rank && y->dtype == x->dtype;
		for (int k = 0; ok && k < x->rank; k++)
			if (k != ax && y->dims[k] != x->dims[k])
				ok = 0;
		if (!ok)
			return diag_error(d, n->loc,
			                  "concat: operand %d has type %s, expected %s except "
			                  "along axis %lld",
			                  i, type_str(y, b1, sizeof b1), type_str(x, b2, sizeof b2),
			                  (long long)ax);
		r.dims[ax] += y->dims[ax];
	}
	*tout(m, n, 0) = r;
	return 0;
}

/* ---- reductions ---- */

/* the keepdim shape of reducing x over axes into *r; mask[a] = 1 for reduced axes */
static int
reduced(const Node *n, Diag *d, const Type *x, const Attr *axes, Type *r, int *mask)
{
	memset(mask, 0, IR_MAXRANK * sizeof *mask);
	if (axes->n == 0)
		return diag_error(d, n->loc, "%s: no axes, expected at least one", opname(n));
	*r = *x;
	for (int i = 0; i < axes->n; i++) {
		int64_t a = axis_norm(axes->ints[i], x->rank);
		if (a < 0)
			return diag_error(d, n->loc, "%s: axis %lld out of range, expected -%d..%d",
			                  opname(n), (long long)axes->ints[i], x->rank,
			                  x->rank - 1);
		if (mask[a]++)
			return diag_error(d, n->loc,
			                  "%s: axis %lld given twice, expected unique axes",
			                  opname(n), (long long)axes->ints[i]);
		r->dims[a] = 1;
	}
	return 0;
}

int
shape_reduce(Module *m, Node *n, Diag *d)
{
	int mask[IR_MAXRANK];
	Type r;

	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	if (reduced(n, d, x, at(n, "axes"), &r, mask) < 0)
		return -1;
	if (!at(n, "keepdim")->i) {
		int k = 0;
		for (int i = 0; i < x->rank; i++)
			if (!mask[i])
				r.dims[k++] = x->dims[i];
		for (int i = k; i < IR_MAXRANK; i++)
			r.dims[i] = 0;
		r.rank = (int8_t)k;
	}
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_moments(Module *m, Node *n, Diag *d)
{
	int mask[IR_MAXRANK];
	Type r;

	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0)
		return -1;
	if (reduced(n, d, tin(m, n, 0), at(n, "axes"), &r, mask) < 0)
		return -1;
	if (!(at(n, "eps")->f >= 0))
		return diag_error(d, n->loc, "moments: eps is %g, expected >= 0", at(n, "eps")->f);
	*tout(m, n, 0) = r;
	*tout(m, n, 1) = r;
	return 0;
}

/* ---- normalisations ---- */

static int
check_eps(const Node *n, Diag *d)
{
	double e = at(n, "eps")->f;
	if (!(e >= 0))
		return diag_error(d, n->loc, "%s: eps is %g, expected >= 0", opname(n), e);
	return 0;
}

int
shape_norm_chan(Module *m, Node *n, Diag *d)
{
	char b[TS];

	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 || check_eps(n, d) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	int minrank = n->op == OP_instance_norm ? 3 : 2;
	if (need_rank(m, n, d, 0, minrank, IR_MAXRANK) < 0)
		return -1;
	int64_t c = x->dims[1];
	if (n->op == OP_group_norm) {
		int64_t g = at(n, "groups")->i;
		if (g < 1)
			return diag_error(d, n->loc, "group_norm: groups is %lld, expected >= 1",
			                  (long long)g);
		if (c % g)
			return diag_error(d, n->loc,
			                  "group_norm: %lld channels of %s not divisible by "
			                  "groups=%lld, expected a multiple",
			                  (long long)c, type_str(x, b, sizeof b), (long long)g);
	}
	if (param(m, n, d, 1, vec(x->dtype, c)) < 0 || param(m, n, d, 2, vec(x->dtype, c)) < 0)
		return -1;
	*tout(m, n, 0) = *x;
	return 0;
}

int
shape_norm_last(Module *m, Node *n, Diag *d)
{
	char b[TS];

	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 || check_eps(n, d) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	int64_t k = at(n, "dims")->i;
	if (k < 1 || k > x->rank)
		return diag_error(d, n->loc, "layer_norm: dims is %lld for %s, expected 1..%d",
		                  (long long)k, type_str(x, b, sizeof b), x->rank);
	Type w = type_make(x->dtype, (int)k, x->dims + x->rank - k);
	if (param(m, n, d, 1, w) < 0 || param(m, n, d, 2, w) < 0)
		return -1;
	*tout(m, n, 0) = *x;
	return 0;
}

int
shape_batch_norm(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 || check_eps(n, d) < 0)
		return -1;
	if (need_rank(m, n, d, 0, 2, IR_MAXRANK) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	int64_t c = x->dims[1];
	if (param(m, n, d, 1, vec(x->dtype, c)) < 0 || param(m, n, d, 2, vec(x->dtype, c)) < 0 ||
	    param(m, n, d, 3, vec(DT_F32, c)) < 0 || param(m, n, d, 4, vec(DT_F32, c)) < 0 ||
	    param(m, n, d, 5, type_make(DT_I64, 0, NULL)) < 0)
		return -1;
	*tout(m, n, 0) = *x;
	return 0;
}

/* ---- roots ---- */

/* kernel >= 1, stride >= 1, pad >= 0, dilation >= 1 (NULL: not an attribute of the op) */
static int
check_window(const Node *n, Diag *d, const Attr *k, const Attr *s, const Attr *p, const Attr *dl)
{
	for (int i = 0; i < 3; i++) {
		if (k->ints[i] < 1)
			return diag_error(d, n->loc, "%s: kernel[%d] is %lld, expected >= 1",
			                  opname(n), i, (long long)k->ints[i]);
		if (s && s->ints[i] < 1)
			return diag_error(d, n->loc, "%s: stride[%d] is %lld, expected >= 1",
			                  opname(n), i, (long long)s->ints[i]);
		if (p->ints[i] < 0)
			return diag_error(d, n->loc, "%s: pad[%d] is %lld, expected >= 0",
			                  opname(n), i, (long long)p->ints[i]);
		if (dl && dl->ints[i] < 1)
			return diag_error(d, n->loc, "%s: dilation[%d] is %lld, expected >= 1",
			                  opname(n), i, (long long)dl->ints[i]);
	}
	return 0;
}

static int
out_size_error(const Node *n, Diag *d, int axis, int64_t o, int64_t in)
{
	return diag_error(d, n->loc,
	                  "%s: output size along spatial axis %d is %lld for input "
	                  "size %lld, expected >= 1",
	                  opname(n), axis, (long long)o, (long long)in);
}

/* cin/cout/groups checks shared by conv3d and conv_transpose3d */
static int
check_groups(const Node *n, Diag *d, int64_t cin, int64_t cout, int64_t g)
{
	if (g < 1)
		return diag_error(d, n->loc, "%s: groups is %lld, expected >= 1", opname(n),
		                  (long long)g);
	if (cout < 1)
		return diag_error(d, n->loc, "%s: cout is %lld, expected >= 1", opname(n),
		                  (long long)cout);
	if (cin % g)
		return diag_error(d, n->loc,
		                  "%s: %lld input channels not divisible by groups=%lld, "
		                  "expected a multiple",
		                  opname(n), (long long)cin, (long long)g);
	if (cout % g)
		return diag_error(d, n->loc,
		                  "%s: cout=%lld not divisible by groups=%lld, expected a "
		                  "multiple",
		                  opname(n), (long long)cout, (long long)g);
	return 0;
}

/* conv3d and conv3d_ndhwc: the channel axis ca of x and of the result (1, or 4 channels
 * last), the spatial axes sa..sa+2 */
static int
conv_shape(Module *m, Node *n, Diag *d, int ca, int sa)
{
	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 ||
	    need_rank(m, n, d, 0, 5, 5) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	const Attr *k = at(n, "kernel"), *s = at(n, "stride"), *p = at(n, "pad");
	const Attr *dl = at(n, "dilation");
	int64_t cin = x->dims[ca], cout = at(n, "cout")->i, g = at(n, "groups")->i;
	if (check_window(n, d, k, s, p, dl) < 0 || check_groups(n, d, cin, cout, g) < 0)
		return -1;
	Type r = *x;
	r.dims[ca] = cout;
	for (int i = 0; i < 3; i++) {
		int64_t in = x->dims[sa + i];
		int64_t o = floordiv(in + 2 * p->ints[i] - dl->ints[i] * (k->ints[i] - 1) - 1,
		                     s->ints[i]) +
		            1;
		if (o < 1)
			return out_size_error(n, d, i, o, in);
		r.dims[sa + i] = o;
	}
	int64_t wd[5] = { cout, cin / g, k->ints[0], k->ints[1], k->ints[2] };
	if (param(m, n, d, 1, type_make(x->dtype, 5, wd)) < 0 ||
	    param(m, n, d, 2, vec(x->dtype, cout)) < 0)
		return -1;
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_conv3d(Module *m, Node *n, Diag *d)
{
	return conv_shape(m, n, d, 1, 2);
}

/* conv3d_ndhwc: conv3d on channels-last tensors, x [N, D, H, W, Ci] -> [N, OD, OH, OW, Co];
 * the weight is conv3d's [Co, Ci/groups, kd, kh, kw] (the same state_dict key and layout) */
int
shape_conv3d_ndhwc(Module *m, Node *n, Diag *d)
{
	return conv_shape(m, n, d, 4, 1);
}

int
shape_conv_transpose3d(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 ||
	    need_rank(m, n, d, 0, 5, 5) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	const Attr *k = at(n, "kernel"), *s = at(n, "stride"), *p = at(n, "pad");
	const Attr *op = at(n, "output_padding"), *dl = at(n, "dilation");
	int64_t cin = x->dims[1], cout = at(n, "cout")->i, g = at(n, "groups")->i;
	if (check_window(n, d, k, s, p, dl) < 0 || check_groups(n, d, cin, cout, g) < 0)
		return -1;
	Type r = *x;
	r.dims[1] = cout;
	for (int i = 0; i < 3; i++) {
		/* PyTorch: output padding must be smaller than either stride or dilation */
		if (op->ints[i] < 0 || (op->ints[i] >= s->ints[i] && op->ints[i] >= dl->ints[i]))
			return diag_error(
			        d, n->loc,
			        "conv_transpose3d: output_padding[%d] is %lld, "
			        "expected >= 0 and smaller than stride (%lld) or dilation "
			        "(%lld)",
			        i, (long long)op->ints[i], (long long)s->ints[i],
			        (long long)dl->ints[i]);
		int64_t in = x->dims[2 + i];
		int64_t o = (in - 1) * s->ints[i] - 2 * p->ints[i] +
		            dl->ints[i] * (k->ints[i] - 1) + op->ints[i] + 1;
		if (o < 1)
			return out_size_error(n, d, i, o, in);
		r.dims[2 + i] = o;
	}
	int64_t wd[5] = { cin, cout / g, k->ints[0], k->ints[1], k->ints[2] };
	if (param(m, n, d, 1, type_make(x->dtype, 5, wd)) < 0 ||
	    param(m, n, d, 2, vec(x->dtype, cout)) < 0)
		return -1;
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_linear(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 ||
	    need_rank(m, n, d, 0, 1, IR_MAXRANK) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	int64_t out = at(n, "out")->i, in = x->dims[x->rank - 1];
	if (out < 1)
		return diag_error(d, n->loc, "linear: out is %lld, expected >= 1", (long long)out);
	int64_t wd[2] = { out, in };
	if (param(m, n, d, 1, type_make(x->dtype, 2, wd)) < 0 ||
	    param(m, n, d, 2, vec(x->dtype, out)) < 0)
		return -1;
	Type r = *x;
	r.dims[r.rank - 1] = out;
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_matmul(Module *m, Node *n, Diag *d)
{
	char b1[TS], b2[TS];

	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 ||
	    need_float(m, n, d, 1) < 0)
		return -1;
	const Type *a = tin(m, n, 0), *b = tin(m, n, 1);
	if (a->rank < 2 || b->rank < 2)
		return diag_error(d, n->loc,
		                  "matmul: operands %s and %s, expected rank >= 2 for both "
		                  "(rank-1 operands are not supported)",
		                  type_str(a, b1, sizeof b1), type_str(b, b2, sizeof b2));
	if (a->dtype != b->dtype || a->dims[a->rank - 1] != b->dims[b->rank - 2])
		return diag_error(d, n->loc,
		                  "matmul: cannot multiply %s by %s, expected [..,n,k] x "
		                  "[..,k,m] of one dtype",
		                  type_str(a, b1, sizeof b1), type_str(b, b2, sizeof b2));
	int ba = a->rank - 2, bb = b->rank - 2, br = ba > bb ? ba : bb;
	Type r = *a;
	r.rank = (int8_t)(br + 2);
	for (int i = 0; i < br; i++) {
		int ia = i - (br - ba), ib = i - (br - bb);
		int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return diag_error(d, n->loc,
			                  "matmul: batch dims of %s and %s do not broadcast "
			                  "(%lld vs %lld), expected equal dims or 1",
			                  type_str(a, b1, sizeof b1), type_str(b, b2, sizeof b2),
			                  (long long)da, (long long)db);
		r.dims[i] = da == 1 ? db : da;
	}
	r.dims[br] = a->dims[a->rank - 2];
	r.dims[br + 1] = b->dims[b->rank - 1];
	for (int i = r.rank; i < IR_MAXRANK; i++)
		r.dims[i] = 0;
	*tout(m, n, 0) = r;
	return 0;
}

/* PyTorch's pooling_output_shape(), including the ceil_mode rule that the last window must
 * start inside the input or the left padding */
static int64_t
pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t dl, int ceil)
{
	int64_t o = floordiv(in + 2 * p - dl * (k - 1) - 1 + (ceil ? s - 1 : 0), s) + 1;
	if (ceil && (o - 1) * s >= in + p)
		o--;
	return o;
}

int
shape_pool3d(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 ||
	    need_rank(m, n, d, 0, 5, 5) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	const Attr *k = at(n, "kernel"), *s = at(n, "stride"), *p = at(n, "pad");
	const Attr *dl = n->op == OP_max_pool3d ? at(n, "dilation") : NULL;
	if (!s->present)
		s = k; /* stride defaults to the kernel */
	if (check_window(n, d, k, s, p, dl) < 0)
		return -1;
	int ceil = (int)at(n, "ceil_mode")->i;
	Type r = *x;
	for (int i = 0; i < 3; i++) {
		if (p->ints[i] > k->ints[i] / 2)
			return diag_error(d, n->loc,
			                  "%s: pad[%d] is %lld, expected at most half the "
			                  "kernel (%lld)",
			                  opname(n), i, (long long)p->ints[i],
			                  (long long)(k->ints[i] / 2));
		int64_t in = x->dims[2 + i];
		int64_t o = pool_out(in, k->ints[i], s->ints[i], p->ints[i], dl ? dl->ints[i] : 1,
		                     ceil);
		if (o < 1)
			return out_size_error(n, d, i, o, in);
		r.dims[2 + i] = o;
	}
	*tout(m, n, 0) = r;
	return 0;
}

int
shape_upsample(Module *m, Node *n, Diag *d)
{
	if (shape_prelude(m, n, d, 0) < 0 || need_float(m, n, d, 0) < 0 ||
	    need_rank(m, n, d, 0, 5, 5) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	const char *mode = at(n, "mode")->s;
	const Attr *sc = at(n, "scale"), *sz = at(n, "size");
	int trilinear = !strcmp(mode, "trilinear");
	if (!trilinear && strcmp(mode, "nearest"))
		return diag_error(d, n->loc,
		                  "upsample: mode is '%s', expected 'nearest' or "
		                  "'trilinear'",
		                  mode);
	if (at(n, "align_corners")->i && !trilinear)
		return diag_error(d, n->loc,
		                  "upsample: align_corners with mode 'nearest', expected "
		                  "mode 'trilinear'");
	if (sc->present == sz->present)
		return diag_error(d, n->loc, "upsample: %s, expected exactly one of scale and size",
		                  sc->present ? "both scale and size given"
		                              : "neither scale nor size");
	Type r = *x;
	for (int i = 0; i < 3; i++) {
		int64_t in = x->dims[2 + i], o;
		if (sc->present) {
			if (!(sc->floats[i] > 0) || !isfinite(sc->floats[i]))
				return diag_error(d, n->loc,
				                  "upsample: scale[%d] is %g, expected > 0", i,
				                  sc->floats[i]);
			double f = floor((double)in * sc->floats[i]);
			if (f > (double)MAXDIM)
				return diag_error(d, n->loc,
				                  "upsample: scale[%d] is %g, expected an output "
				                  "below 2^31",
				                  i, sc->floats[i]);
			o = (int64_t)f;
		} else {
			o = sz->ints[i];
		}
		if (o < 1)
			return out_size_error(n, d, i, o, in);
		r.dims[2 + i] = o;
	}
	*tout(m, n, 0) = r;
	return 0;
}
