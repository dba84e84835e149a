/* ir/shape_mamba.c -- shape and cost rules of the SegMamba-family ops (ir/ops_mamba.def), and the
 * scan orders they share (ir/mamba.h).
 *
 * Layouts (token-major): sequences [B, L, C]; selective_scan u, delta, z [B, L, di], B and C
 * [B, L, N], A_log [di, N], D and delta_bias [di]; causal_conv1d weight [C, 1, k] and bias [C]
 * (PyTorch Conv1d layout); norms over the last axis with per-channel parameters.  Errors name
 * the attribute or operand and say what was expected; a rule never aborts on bad input. */
#include "mamba.h"
#include "shape.h"

#include <math.h>
#include <string.h>

#define TS 160

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

/* the shared checks (ir/shape.h), then every typed data operand f32 */
static int
prelude(Module *m, Node *n, Diag *d)
{
	char b[TS];

	if (shape_prelude(m, n, d, 1) < 0)
		return -1;
	for (int i = 0; i < n->nin; i++) {
		const Type *t = &m->values[n->in[i]].type;
		if (optab[n->op].opspec[i].param || !n->in[i] || t->rank < 0)
			continue;
		if (t->dtype != DT_F32)
			return diag_error(d, n->loc, "%s: operand '%s' has type %s, expected f32",
			                  opname(n), optab[n->op].opspec[i].name,
			                  type_str(t, b, sizeof b));
	}
	return 0;
}

/* operand i (data or parameter) typed as want: a weight of rank -1 takes it */
static int
typed_as(Module *m, Node *n, Diag *d, int i, Type want)
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
	const char *nm = m->values[v].name;
	if (nm)
		return diag_error(d, n->loc, "%s: weight '%s' has shape %s, expected %s", opname(n),
		                  nm, type_str(t, b1, sizeof b1), type_str(&want, b2, sizeof b2));
	return diag_error(d, n->loc, "%s: operand '%s' has type %s, expected %s", opname(n),
	                  optab[n->op].opspec[i].name, type_str(t, b1, sizeof b1),
	                  type_str(&want, b2, sizeof b2));
}

static Type
tmake(int rank, int64_t a, int64_t b, int64_t c)
{
	int64_t dims[3] = {a, b, c};
	return type_make(DT_F32, rank, dims);
}

static int
need_seq(Module *m, Node *n, Diag *d, int i)
{
	char b[TS];
	const Type *t = tin(m, n, i);
	if (t->rank == 3 && t->dims[0] >= 1 && t->dims[1] >= 1 && t->dims[2] >= 1)
		return 0;
	return diag_error(d, n->loc, "%s: operand '%s' has type %s, expected a sequence [B, L, C]",
	                  opname(n), optab[n->op].opspec[i].name, type_str(t, b, sizeof b));
}

/* ---- scan orders ---- */

int
mamba_order(const Node *n, int64_t len, ScanOrder *o, Diag *d)
{
	const Attr *dims = ir_attr(n, "dims"), *perm = ir_attr(n, "perm");
	int64_t ns = ir_attr_int(n, "nslices");
	int64_t vd[IR_MAXRANK], st[IR_MAXRANK];
	int r;

	memset(o, 0, sizeof *o);
	o->flip = (int)ir_attr_int(n, "flip");
	o->len = len;
	if (ns < 0)
		return diag_error(d, n->loc, "%s: attribute 'nslices' is %lld, expected >= 0",
		                  opname(n), (long long)ns);
	if (ns > 0) {
		if (dims->n || perm->n)
			return diag_error(
			    d, n->loc,
			    "%s: attribute 'nslices' given together with '%s', expected "
			    "one of them",
			    opname(n), dims->n ? "dims" : "perm");
		if (len % ns)
			return diag_error(
			    d, n->loc,
			    "%s: attribute 'nslices' is %lld but the sequence has %lld "
			    "tokens, expected a divisor of the sequence length",
			    opname(n), (long long)ns, (long long)len);
		o->n = 2;
		o->ext[0] = len / ns; /* i slowest: q = i*ns + j holds token j*(L/ns) + i */
		o->stride[0] = 1;
		o->ext[1] = ns;
		o->stride[1] = len / ns;
		return 0;
	}
	r = dims->n ? dims->n : 1;
	if (r > IR_MAXRANK)
		return diag_error(d, n->loc,
		                  "%s: attribute 'dims' has %d values, expected at most %d",
		                  opname(n), r, IR_MAXRANK);
	int64_t prod = 1;
	for (int i = 0; i < r; i++) {
		vd[i] = dims->n ? dims->ints[i] : len;
		if (vd[i] < 1)
			return diag_error(d, n->loc,
			                  "%s: attribute 'dims'[%d] is %lld, expected >= 1",
			                  opname(n), i, (long long)vd[i]);
		prod *= vd[i];
		if (prod > len)
			break;
	}
	if (prod != len)
		return diag_error(
		    d, n->loc,
		    "%s: attribute 'dims' does not multiply to the %lld tokens of the "
		    "sequence, expected a volume of that size",
		    opname(n), (long long)len);
	if (perm->n && perm->n != r)
		return diag_error(d, n->loc, "%s: attribute 'perm' has %d values, expected %d",
		                  opname(n), perm->n, r);
	st[r - 1] = 1;
	for (int i = r - 2; i >= 0; i--)
		st[i] = st[i + 1] * vd[i + 1];
	unsigned seen = 0;
	o->n = r;
	for (int j = 0; j < r; j++) {
		int64_t a = perm->n ? perm->ints[j] : j;
		if (a < 0 || a >= r || (seen >> a) & 1)
			return diag_error(
			    d, n->loc,
			    "%s: attribute 'perm' is not a permutation of 0..%d, expected "
			    "each axis once",
			    opname(n), r - 1);
		seen |= 1u << a;
		o->ext[j] = vd[a];
		o->stride[j] = st[a];
	}
	return 0;
}

int64_t
mamba_pos(const ScanOrder *o, int64_t q)
{
	int64_t t = 0;
	if (o->flip)
		q = o->len - 1 - q;
	for (int j = o->n - 1; j >= 0; j--) {
		t += (q % o->ext[j]) * o->stride[j];
		q /= o->ext[j];
	}
	return t;
}

int64_t
mamba_keep_count(double keep, int64_t len)
{
	double k = floor(keep * (double)len);
	if (k < 1)
		k = 1;
	if (k > (double)len)
		k = (double)len;
	return (int64_t)k;
}

/* ---- shape rules ---- */

int
shape_scan(Module *m, Node *n, Diag *d)
{
	ScanOrder o;

	if (prelude(m, n, d) < 0 || need_seq(m, n, d, 0) < 0 || need_seq(m, n, d, 3) < 0)
		return -1;
	const Type *u = tin(m, n, 0), *bt = tin(m, n, 3);
	int64_t b = u->dims[0], l = u->dims[1], di = u->dims[2], ns = bt->dims[2];
	if (ns > 64)
		return diag_error(d, n->loc,
		                  "%s: operand 'B' has d_state %lld, expected at most 64",
		                  opname(n), (long long)ns);
	if (typed_as(m, n, d, 1, *u) < 0 || typed_as(m, n, d, 2, tmake(2, di, ns, 0)) < 0 ||
	    typed_as(m, n, d, 3, tmake(3, b, l, ns)) < 0 ||
	    typed_as(m, n, d, 4, tmake(3, b, l, ns)) < 0 ||
	    typed_as(m, n, d, 5, tmake(1, di, 0, 0)) < 0 ||
	    typed_as(m, n, d, 6, tmake(1, di, 0, 0)) < 0 || typed_as(m, n, d, 7, *u) < 0)
		return -1;
	if (mamba_order(n, l, &o, d) < 0)
		return -1;
	*tout(m, n, 0) = *u;
	*tout(m, n, 1) = *u;
	return 0;
}

int
shape_conv1d(Module *m, Node *n, Diag *d)
{
	ScanOrder o;

	if (prelude(m, n, d) < 0 || need_seq(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0), *w = tin(m, n, 1);
	int64_t k = w->rank == 3 ? w->dims[2] : 0;
	if (k < 1 || k > 16)
		return diag_error(d, n->loc,
		                  "causal_conv1d: weight has kernel size %lld, expected a "
		                  "typed [C, 1, k] weight with k in 1..16",
		                  (long long)k);
	if (typed_as(m, n, d, 1, tmake(3, x->dims[2], 1, k)) < 0 ||
	    typed_as(m, n, d, 2, tmake(1, x->dims[2], 0, 0)) < 0)
		return -1;
	if (mamba_order(n, x->dims[1], &o, d) < 0)
		return -1;
	*tout(m, n, 0) = *x;
	return 0;
}

int
shape_rms_norm(Module *m, Node *n, Diag *d)
{
	char b[TS];

	if (prelude(m, n, d) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	if (x->rank < 1)
		return diag_error(d, n->loc, "%s: input has type %s, expected rank 1 or more",
		                  opname(n), type_str(x, b, sizeof b));
	double e = ir_attr_float(n, "eps");
	if (!(e >= 0))
		return diag_error(d, n->loc, "%s: eps is %g, expected >= 0", opname(n), e);
	if (typed_as(m, n, d, 1, tmake(1, x->dims[x->rank - 1], 0, 0)) < 0)
		return -1;
	*tout(m, n, 0) = *x;
	return 0;
}

int
shape_dyt(Module *m, Node *n, Diag *d)
{
	char b[TS];

	if (prelude(m, n, d) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	if (x->rank < 1)
		return diag_error(d, n->loc, "dyt: input has type %s, expected rank 1 or more",
		                  type_str(x, b, sizeof b));
	double lo = ir_attr_float(n, "alpha_min"), hi = ir_attr_float(n, "alpha_max");
	if (ir_attr_int(n, "clamp") && !(lo <= hi))
		return diag_error(d, n->loc,
		                  "dyt: alpha_min %g > alpha_max %g, expected min <= max", lo, hi);
	int64_t c = x->dims[x->rank - 1];
	if (typed_as(m, n, d, 1, tmake(1, 1, 0, 0)) < 0 ||
	    typed_as(m, n, d, 2, tmake(1, c, 0, 0)) < 0 ||
	    typed_as(m, n, d, 3, tmake(1, c, 0, 0)) < 0)
		return -1;
	*tout(m, n, 0) = *x;
	return 0;
}

int
shape_token_score(Module *m, Node *n, Diag *d)
{
	if (prelude(m, n, d) < 0 || need_seq(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	double e = ir_attr_float(n, "eps");
	if (!(e > 0))
		return diag_error(d, n->loc, "token_score: eps is %g, expected > 0", e);
	*tout(m, n, 0) = tmake(2, x->dims[0], x->dims[1], 0);
	return 0;
}

int
shape_token_prune(Module *m, Node *n, Diag *d)
{
	ScanOrder o;

	if (prelude(m, n, d) < 0 || need_seq(m, n, d, 0) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	double keep = ir_attr_float(n, "keep");
	const char *s = ir_attr_str(n, "summary");
	if (!(keep > 0 && keep <= 1))
		return diag_error(d, n->loc,
		                  "token_prune: attribute 'keep' (the keep rate) is %g, expected a "
		                  "rate in (0, 1]",
		                  keep);
	if (strcmp(s, "mean") && strcmp(s, "score"))
		return diag_error(d, n->loc,
		                  "token_prune: attribute 'summary' is '%s', expected 'mean' or "
		                  "'score'",
		                  s);
	if (typed_as(m, n, d, 1, tmake(2, x->dims[0], x->dims[1], 0)) < 0)
		return -1;
	if (mamba_order(n, x->dims[1], &o, d) < 0)
		return -1;
	int64_t k = mamba_keep_count(keep, x->dims[1]);
	int64_t rows = k + (k < x->dims[1]);
	*tout(m, n, 0) = tmake(3, x->dims[0], rows, x->dims[2]);
	*tout(m, n, 1) = tmake(2, x->dims[0], rows, 0);
	return 0;
}

int
shape_token_unpool(Module *m, Node *n, Diag *d)
{
	char b1[TS], b2[TS];

	if (prelude(m, n, d) < 0 || need_seq(m, n, d, 0) < 0 || need_seq(m, n, d, 2) < 0)
		return -1;
	const Type *y = tin(m, n, 0), *like = tin(m, n, 2);
	if (y->dims[0] != like->dims[0] || y->dims[1] > like->dims[1])
		return diag_error(
		    d, n->loc,
		    "token_unpool: y is %s and like is %s, expected the same batch and "
		    "at most as many tokens",
		    type_str(y, b1, sizeof b1), type_str(like, b2, sizeof b2));
	if (typed_as(m, n, d, 1, tmake(2, y->dims[0], y->dims[1], 0)) < 0)
		return -1;
	*tout(m, n, 0) = tmake(3, y->dims[0], like->dims[1], y->dims[2]);
	return 0;
}

/* ---- cost rules ---- */

static double
numel(const Module *m, ValueId v)
{
	const Type *t = &m->values[v].type;
	return v && t->rank >= 0 ? (double)type_numel(t) : 0;
}

/* per (token, channel): softplus 4, exp(dt*A) 2N, state update 3N, output 2N, D skip 2, gate 5;
 * no MACs (the projections around it are linear ops) */
Cost
cost_scan(const Module *m, const Node *n)
{
	Cost c = {0, 0};
	const Type *bt = &m->values[n->in[3]].type;
	double ns = bt->rank == 3 ? (double)bt->dims[2] : 0;
	c.flops = numel(m, n->in[0]) * (7 * ns + 11);
	return c;
}

Cost
cost_conv1d(const Module *m, const Node *n)
{
	Cost c = {0, 0};
	double e = numel(m, n->out[0]);
	const Type *w = &m->values[n->in[1]].type;
	c.macs = e * (double)(w->rank == 3 ? w->dims[2] : 0);
	c.flops = 2 * c.macs + e * (double)(1 + 4 * ir_attr_int(n, "silu"));
	return c;
}

Cost
cost_dyt(const Module *m, const Node *n)
{
	Cost c = {0, 6 * numel(m, n->out[0])};
	return c;
}

Cost
cost_tscore(const Module *m, const Node *n)
{
	Cost c = {0, 2 * numel(m, n->in[0]) + 4 * numel(m, n->out[0])};
	return c;
}

Cost
cost_tprune(const Module *m, const Node *n)
{
	Cost c = {0, numel(m, n->in[0]) + 64 * numel(m, n->in[1])};
	return c;
}
