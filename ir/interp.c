/* ir/interp.c -- the reference interpreter: runs a Module node by node with plain loops.
 *
 * The oracle every other part of segc is checked against (segc interp, tests/ops), so it is
 * written to be obviously right, not fast: one interp_<op>() per row of ir/ops.def, dispatched
 * through a table generated from ops.def (an op without a kernel here does not compile), PyTorch
 * semantics throughout, sums accumulated in double.  It runs any module that ir_verify accepts,
 * before or after passes (canon's moments/reshapes, fuse's groups are ignored: nodes run in
 * order).  Values live in malloc'd buffers, freed after their last use; this is the one place
 * in ir/ that allocates tensor-sized data, and a failed allocation is a diagnostic.
 * i64 values (num_batches_tracked) are passed through and copied, never computed on. */
#include "interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* ---- helpers ---- */

const Type *
ip_type(const Interp *ip, ValueId v)
{
	return &ip->m->values[v].type;
}

const float *
ip_in(const Interp *ip, const Node *n, int k)
{
	return ip->buf[n->in[k]].data;
}

/* Allocate result k of n (zeroed).  NULL after a diagnostic. */
void *
ip_result(Interp *ip, const Node *n, int k)
{
	ValueId v = n->out[k];
	const Type *t = ip_type(ip, v);
	size_t bytes = (size_t)type_bytes(t);
	void *p = calloc(bytes ? bytes : 1, 1);

	if (!p) {
		diag_error(ip->d, n->loc, "interp: out of memory allocating %zu bytes for the "
		           "result of %s", bytes, optab[n->op].name);
		return NULL;
	}
	ip->buf[v].data = p;
	ip->buf[v].owned = p;
	return p;
}

int
ip_fail(Interp *ip, const Node *n, const char *what)
{
	return diag_error(ip->d, n->loc, "interp: %s: %s", optab[n->op].name, what);
}

/* every data operand and result must be f32 */
int
ip_need_f32(Interp *ip, const Node *n)
{
	for (int i = 0; i < n->nin; i++)
		if (n->in[i] && ip_type(ip, n->in[i])->dtype != DT_F32)
			return ip_fail(ip, n, "operand is not f32, expected f32");
	for (int i = 0; i < n->nout; i++)
		if (ip_type(ip, n->out[i])->dtype != DT_F32)
			return ip_fail(ip, n, "result is not f32, expected f32");
	return 0;
}

/* a well-formed three-integer attribute (i3 in ops.def) */
int
ip_has3(const Attr *a)
{
	return a->n >= 3 && a->ints;
}

int
ip_normaxis(int64_t ax, int rank)
{
	return (int)(ax < 0 ? ax + rank : ax);
}

/* ---- sources ---- */

int
interp_input(Interp *ip, const Node *n)
{
	for (uint32_t i = 0; i < ip->m->ninputs; i++)
		if (ip->m->inputs[i] == n->out[0]) {
			ip->buf[n->out[0]].data = ip->inputs[i];
			return ip->inputs[i] ? 0 : ip_fail(ip, n, "no data given for this input");
		}
	return ip_fail(ip, n, "input node is not a module input");
}

int
interp_weight(Interp *ip, const Node *n)
{
	const Value *v = &ip->m->values[n->out[0]];
	const char *name = v->name ? v->name : ir_attr_str(n, "name");
	const void *p = ip->weight ? ip->weight(ip->ctx, name, &v->type) : NULL;

	if (!p)
		return diag_error(ip->d, n->loc, "interp: weight '%s' is missing",
		                  name ? name : "?");
	ip->buf[n->out[0]].data = p;
	return 0;
}

int
interp_constant(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->out[0]);
	double val = ir_attr_float(n, "value");
	int64_t cnt = type_numel(t);
	void *p = ip_result(ip, n, 0);

	if (!p)
		return -1;
	if (t->dtype == DT_F32) {
		for (int64_t i = 0; i < cnt; i++)
			((float *)p)[i] = (float)val;
	} else if (t->dtype == DT_I64) {
		for (int64_t i = 0; i < cnt; i++)
			((int64_t *)p)[i] = (int64_t)val;
	} else {
		return ip_fail(ip, n, "constant dtype is not supported, expected f32 or i64");
	}
	return 0;
}

/* ---- elementwise, unary ---- */

typedef double (*UnaryFn)(double x, const Node *n);

static int
unary(Interp *ip, const Node *n, UnaryFn f)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	int64_t cnt = type_numel(ip_type(ip, n->out[0]));
	if (type_numel(ip_type(ip, n->in[0])) != cnt)
		return ip_fail(ip, n, "operand and result sizes differ");
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t i = 0; i < cnt; i++)
		y[i] = (float)f(x[i], n);
	return 0;
}

int
interp_identity(Interp *ip, const Node *n)
{
	const Type *ti = ip_type(ip, n->in[0]);
	const Type *to = ip_type(ip, n->out[0]);
	if (ti->dtype != to->dtype || type_bytes(ti) != type_bytes(to))
		return ip_fail(ip, n, "operand and result types differ");
	void *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	memcpy(y, ip->buf[n->in[0]].data, (size_t)type_bytes(to));
	return 0;
}

static double
f_relu(double x, const Node *n)
{
	return x < 0 ? 0 : x;   /* NaN stays NaN, as in PyTorch */
}

static double
f_leaky_relu(double x, const Node *n)
{
	return x > 0 ? x : x * ir_attr_float(n, "slope");
}

static double
f_gelu(double x, const Node *n)
{
	const char *a = ir_attr_str(n, "approximate");
	if (a && !strcmp(a, "tanh")) {
		double k = sqrt(2.0 / M_PI);
		return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
	}
	return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static double
f_sigmoid(double x, const Node *n)
{
	return 1.0 / (1.0 + exp(-x));
}

static double
f_silu(double x, const Node *n)
{
	return x / (1.0 + exp(-x));
}

static double
f_tanh(double x, const Node *n)
{
	return tanh(x);
}

static double
f_exp(double x, const Node *n)
{
	return exp(x);
}

static double
f_log(double x, const Node *n)
{
	return log(x);
}

static double
f_sqrt(double x, const Node *n)
{
	return sqrt(x);
}

static double
f_rsqrt(double x, const Node *n)
{
	return 1.0 / sqrt(x);
}

static double
f_neg(double x, const Node *n)
{
	return -x;
}

static double
f_abs(double x, const Node *n)
{
	return fabs(x);
}

static double
f_erf(double x, const Node *n)
{
	return erf(x);
}

/* torch.nn.functional.softplus: x*beta > threshold ? x : log1p(exp(x*beta)) / beta */
static double
f_softplus(double x, const Node *n)
{
	double beta = ir_attr_float(n, "beta"), th = ir_attr_float(n, "threshold");
	return x * beta > th ? x : log1p(exp(x * beta)) / beta;
}

/* torch.clamp: min(max(x, lo), hi); NaN stays NaN; lo > hi gives hi */
static double
f_clamp(double x, const Node *n)
{
	const Attr *lo = ir_attr(n, "min"), *hi = ir_attr(n, "max");
	if (lo->present && x < lo->f)
		x = lo->f;
	if (hi->present && x > hi->f)
		x = hi->f;
	return x;
}

#define UNARY(name) \
	int interp_##name(Interp *ip, const Node *n) { return unary(ip, n, f_##name); }
UNARY(relu)
UNARY(leaky_relu)
UNARY(gelu)
UNARY(silu)
UNARY(sigmoid)
UNARY(tanh)
UNARY(exp)
UNARY(log)
UNARY(sqrt)
UNARY(rsqrt)
UNARY(neg)
UNARY(abs)
UNARY(erf)
UNARY(softplus)
UNARY(clamp)
#undef UNARY

/* ---- elementwise, binary with numpy broadcasting ---- */

/* Element strides of operand type t read at the indices of an output of type o: operands are
 * aligned on their last axes; a size-1 (or missing) axis has stride 0. -1 if not broadcastable. */
static int
bcast_strides(const Type *t, const Type *o, int64_t *st)
{
	int64_t s = 1;
	for (int i = o->rank - 1, j = t->rank - 1; i >= 0; i--, j--) {
		if (j < 0) {
			st[i] = 0;
			continue;
		}
		if (t->dims[j] == o->dims[i])
			st[i] = t->dims[j] == 1 ? 0 : s;
		else if (t->dims[j] == 1)
			st[i] = 0;
		else
			return -1;
		s *= t->dims[j];
	}
	return t->rank <= o->rank ? 0 : -1;
}

typedef double (*BinaryFn)(double a, double b);

static int
binary(Interp *ip, const Node *n, BinaryFn f)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *o = ip_type(ip, n->out[0]);
	int64_t sa[IR_MAXRANK], sb[IR_MAXRANK], idx[IR_MAXRANK] = { 0 };
	if (bcast_strides(ip_type(ip, n->in[0]), o, sa) < 0 ||
	    bcast_strides(ip_type(ip, n->in[1]), o, sb) < 0)
		return ip_fail(ip, n, "operands do not broadcast to the result");
	const float *a = ip_in(ip, n, 0), *b = ip_in(ip, n, 1);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t cnt = type_numel(o), ia = 0, ib = 0;
	for (int64_t i = 0; i < cnt; i++) {
		y[i] = (float)f(a[ia], b[ib]);
		/* odometer increment of idx, keeping ia/ib in step */
		for (int k = o->rank - 1; k >= 0; k--) {
			idx[k]++;
			ia += sa[k];
			ib += sb[k];
			if (idx[k] < o->dims[k])
				break;
			ia -= sa[k] * idx[k];
			ib -= sb[k] * idx[k];
			idx[k] = 0;
		}
	}
	return 0;
}

static double
b_add(double a, double b)
{
	return a + b;
}

static double
b_sub(double a, double b)
{
	return a - b;
}

static double
b_mul(double a, double b)
{
	return a * b;
}

static double
b_div(double a, double b)
{
	return a / b;
}

static double
b_maximum(double a, double b)
{
	return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
}

static double
b_minimum(double a, double b)
{
	return isnan(a) || isnan(b) ? NAN : (a < b ? a : b);
}

static double
b_pow(double a, double b)
{
	return pow(a, b);
}

#define BINARY(name) \
	int interp_##name(Interp *ip, const Node *n) { return binary(ip, n, b_##name); }
BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(div)
BINARY(maximum)
BINARY(minimum)
BINARY(pow)
#undef BINARY

/* ---- index maps (any dtype: elements are copied as bytes) ---- */

int
interp_reshape(Interp *ip, const Node *n)
{
	return interp_identity(ip, n);
}

int
interp_permute(Interp *ip, const Node *n)
{
	const Type *ti = ip_type(ip, n->in[0]), *to = ip_type(ip, n->out[0]);
	const Attr *perm = ir_attr(n, "perm");
	int r = ti->rank;
	int64_t sin[IR_MAXRANK], st[IR_MAXRANK], idx[IR_MAXRANK] = { 0 };

	if (perm->n != r || to->rank != r || ti->dtype != to->dtype)
		return ip_fail(ip, n, "perm does not match the operand rank");
	for (int k = r - 1, s = 1; k >= 0; k--) {
		sin[k] = s;
		s *= (int)ti->dims[k];
	}
	for (int k = 0; k < r; k++) {
		int p = ip_normaxis(perm->ints[k], r);
		if (p < 0 || p >= r || to->dims[k] != ti->dims[p])
			return ip_fail(ip, n, "perm does not match the operand shape");
		st[k] = sin[p];   /* output axis k walks input axis p */
	}
	size_t es = (size_t)dtype_size(ti->dtype);
	const char *x = ip->buf[n->in[0]].data;
	char *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t cnt = type_numel(to), off = 0;
	for (int64_t i = 0; i < cnt; i++) {
		memcpy(y + (size_t)i * es, x + (size_t)off * es, es);
		for (int k = r - 1; k >= 0; k--) {
			idx[k]++;
			off += st[k];
			if (idx[k] < to->dims[k])
				break;
			off -= st[k] * idx[k];
			idx[k] = 0;
		}
	}
	return 0;
}

/* python slicing x[start:end:step] along axis; step >= 1, start clamped like end */
int
interp_slice(Interp *ip, const Node *n)
{
	const Type *ti = ip_type(ip, n->in[0]), *to = ip_type(ip, n->out[0]);
	int r = ti->rank, ax = ip_normaxis(ir_attr_int(n, "axis"), r);
	int64_t step = ir_attr_int(n, "step"), start = ir_attr_int(n, "start");

	if (ax < 0 || ax >= r || to->rank != r || step < 1 || ti->dtype != to->dtype)
		return ip_fail(ip, n, "bad axis or step");
	int64_t dim = ti->dims[ax];
	if (start < 0)
		start += dim;
	start = max64(0, min64(start, dim));
	if (to->dims[ax] > 0 && start + (to->dims[ax] - 1) * step >= dim)
		return ip_fail(ip, n, "result does not fit the operand");
	int64_t outer = 1, inner = 1;
	for (int k = 0; k < ax; k++)
		outer *= ti->dims[k];
	for (int k = ax + 1; k < r; k++)
		inner *= ti->dims[k];
	size_t es = (size_t)dtype_size(ti->dtype), row = (size_t)inner * es;
	const char *x = ip->buf[n->in[0]].data;
	char *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t o = 0; o < outer; o++)
		for (int64_t j = 0; j < to->dims[ax]; j++)
			memcpy(y + (size_t)(o * to->dims[ax] + j) * row,
			       x + (size_t)(o * dim + start + j * step) * row, row);
	return 0;
}

int
interp_concat(Interp *ip, const Node *n)
{
	const Type *to = ip_type(ip, n->out[0]);
	int r = to->rank, ax = ip_normaxis(ir_attr_int(n, "axis"), r);
	if (ax < 0 || ax >= r)
		return ip_fail(ip, n, "bad axis");
	int64_t outer = 1, inner = 1, at = 0;
	for (int k = 0; k < ax; k++)
		outer *= to->dims[k];
	for (int k = ax + 1; k < r; k++)
		inner *= to->dims[k];
	size_t es = (size_t)dtype_size(to->dtype);
	char *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int i = 0; i < n->nin; i++) {
		const Type *ti = ip_type(ip, n->in[i]);
		if (ti->rank != r || ti->dtype != to->dtype || at + ti->dims[ax] > to->dims[ax] ||
		    type_numel(ti) != outer * ti->dims[ax] * inner)
			return ip_fail(ip, n, "operand shapes do not match the result");
		const char *x = ip->buf[n->in[i]].data;
		size_t chunk = (size_t)(ti->dims[ax] * inner) * es;
		for (int64_t o = 0; o < outer; o++)
			memcpy(y + ((size_t)(o * to->dims[ax] + at) * inner) * es,
			       x + (size_t)o * chunk, chunk);
		at += ti->dims[ax];
	}
	return 0;
}

/* ---- reductions ---- */

/* Mark the reduced axes of a rank-r operand in red[]; an empty list reduces every axis.
 * Returns the number of reduced elements per output element, or -1. */
static int64_t
reduced_axes(const Node *n, const Type *t, uint8_t *red)
{
	const Attr *axes = ir_attr(n, "axes");
	int64_t cnt = 1;
	memset(red, 0, IR_MAXRANK);
	for (int i = 0; i < t->rank; i++)
		red[i] = axes->n == 0;
	for (int i = 0; i < axes->n; i++) {
		int a = ip_normaxis(axes->ints[i], t->rank);
		if (a < 0 || a >= t->rank)
			return -1;
		red[a] = 1;
	}
	for (int i = 0; i < t->rank; i++)
		if (red[i])
			cnt *= t->dims[i];
	return cnt;
}

/* Output element index (keepdim or not: same linear order) of every input element. */
static int64_t *
reduce_map(Interp *ip, const Node *n, const Type *t, const uint8_t *red)
{
	int64_t cnt = type_numel(t), idx[IR_MAXRANK] = { 0 };
	int64_t *map = malloc((size_t)(cnt ? cnt : 1) * sizeof *map);
	if (!map) {
		diag_error(ip->d, n->loc, "interp: out of memory in %s", optab[n->op].name);
		return NULL;
	}
	for (int64_t i = 0; i < cnt; i++) {
		int64_t o = 0;
		for (int k = 0; k < t->rank; k++)
			if (!red[k])
				o = o * t->dims[k] + idx[k];
		map[i] = o;
		for (int k = t->rank - 1; k >= 0; k--) {
			if (++idx[k] < t->dims[k])
				break;
			idx[k] = 0;
		}
	}
	return map;
}

enum { R_SUM, R_MEAN, R_MAX };

static int
reduce(Interp *ip, const Node *n, int kind)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *ti = ip_type(ip, n->in[0]), *to = ip_type(ip, n->out[0]);
	uint8_t red[IR_MAXRANK];
	int64_t per = reduced_axes(n, ti, red);
	int64_t nout = type_numel(to), cnt = type_numel(ti);
	if (per < 0 || per * nout != cnt)
		return ip_fail(ip, n, "axes do not match the result shape");
	int64_t *map = reduce_map(ip, n, ti, red);
	double *acc = calloc((size_t)(nout ? nout : 1), sizeof *acc);
	float *y = map && acc ? ip_result(ip, n, 0) : NULL;
	if (!y) {
		if (map && !acc)
			diag_error(ip->d, n->loc, "interp: out of memory in %s", optab[n->op].name);
		free(map);
		free(acc);
		return -1;
	}
	const float *x = ip_in(ip, n, 0);
	if (kind == R_MAX)
		for (int64_t i = 0; i < nout; i++)
			acc[i] = -INFINITY;
	for (int64_t i = 0; i < cnt; i++) {
		double *a = &acc[map[i]];
		if (kind != R_MAX)
			*a += x[i];
		else if (x[i] > *a || isnan(x[i]))
			*a = x[i];
	}
	for (int64_t i = 0; i < nout; i++)
		y[i] = (float)(kind == R_MEAN ? acc[i] / (double)per : acc[i]);
	free(map);
	free(acc);
	return 0;
}

int
interp_reduce_sum(Interp *ip, const Node *n)
{
	return reduce(ip, n, R_SUM);
}

int
interp_reduce_mean(Interp *ip, const Node *n)
{
	return reduce(ip, n, R_MEAN);
}

int
interp_reduce_max(Interp *ip, const Node *n)
{
	return reduce(ip, n, R_MAX);
}

/* moments(x, axes, eps) -> (mean, 1/sqrt(biased var + eps)), keepdim; two passes in double */
int
interp_moments(Interp *ip, const Node *n)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *ti = ip_type(ip, n->in[0]);
	uint8_t red[IR_MAXRANK];
	int64_t per = reduced_axes(n, ti, red);
	int64_t nout = type_numel(ip_type(ip, n->out[0])), cnt = type_numel(ti);
	double eps = ir_attr_float(n, "eps");
	if (per <= 0 || per * nout != cnt || type_numel(ip_type(ip, n->out[1])) != nout)
		return ip_fail(ip, n, "axes do not match the result shape");
	int64_t *map = reduce_map(ip, n, ti, red);
	double *sum = calloc((size_t)(nout ? nout : 1), sizeof *sum);
	double *sq = calloc((size_t)(nout ? nout : 1), sizeof *sq);
	float *mean = map && sum && sq ? ip_result(ip, n, 0) : NULL;
	float *rstd = mean ? ip_result(ip, n, 1) : NULL;
	if (!rstd) {
		if (map && (!sum || !sq))
			diag_error(ip->d, n->loc, "interp: out of memory in moments");
		free(map);
		free(sum);
		free(sq);
		return -1;
	}
	const float *x = ip_in(ip, n, 0);
	for (int64_t i = 0; i < cnt; i++)
		sum[map[i]] += x[i];
	for (int64_t i = 0; i < nout; i++)
		sum[i] /= (double)per;
	for (int64_t i = 0; i < cnt; i++) {
		double dv = x[i] - sum[map[i]];
		sq[map[i]] += dv * dv;
	}
	for (int64_t i = 0; i < nout; i++) {
		mean[i] = (float)sum[i];
		rstd[i] = (float)(1.0 / sqrt(sq[i] / (double)per + eps));
	}
	free(map);
	free(sum);
	free(sq);
	return 0;
}

/* softmax along one axis, max-subtracted, in double */
int
interp_softmax(Interp *ip, const Node *n)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *t = ip_type(ip, n->in[0]);
	int ax = ip_normaxis(ir_attr_int(n, "axis"), t->rank);
	if (ax < 0 || ax >= t->rank || type_numel(ip_type(ip, n->out[0])) != type_numel(t))
		return ip_fail(ip, n, "bad axis");
	int64_t outer = 1, inner = 1, len = t->dims[ax];
	for (int k = 0; k < ax; k++)
		outer *= t->dims[k];
	for (int k = ax + 1; k < t->rank; k++)
		inner *= t->dims[k];
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			const float *xs = x + o * len * inner + i;
			float *ys = y + o * len * inner + i;
			double mx = -INFINITY, s = 0;
			for (int64_t j = 0; j < len; j++)
				mx = xs[j * inner] > mx ? xs[j * inner] : mx;
			for (int64_t j = 0; j < len; j++)
				s += exp(xs[j * inner] - mx);
			for (int64_t j = 0; j < len; j++)
				ys[j * inner] = (float)(exp(xs[j * inner] - mx) / s);
		}
	return 0;
}

/* ---- normalisations ---- */

/* Normalise x viewed as [rows, len], each row by its own biased mean and variance (eps inside
 * the sqrt), then y = xhat * w[c] + b[c] with c = aff(r, j, p), the affine parameter index of
 * element j of row r. */
typedef int64_t (*AffIndex)(int64_t r, int64_t j, const int64_t *p);

static int
normalize_rows(Interp *ip, const Node *n, int64_t rows, int64_t len, AffIndex aff,
               const int64_t *p)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	if (rows * len != type_numel(ip_type(ip, n->in[0])) || len <= 0)
		return ip_fail(ip, n, "operand shape does not match the normalised axes");
	double eps = ir_attr_float(n, "eps");
	int affine = (int)ir_attr_int(n, "affine");
	const float *x = ip_in(ip, n, 0);
	const float *w = affine && n->in[1] ? ip_in(ip, n, 1) : NULL;
	const float *b = affine && n->in[2] ? ip_in(ip, n, 2) : NULL;
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * len;
		double mean = 0, var = 0;
		for (int64_t j = 0; j < len; j++)
			mean += xr[j];
		mean /= (double)len;
		for (int64_t j = 0; j < len; j++)
			var += (xr[j] - mean) * (xr[j] - mean);
		var /= (double)len;
		double rstd = 1.0 / sqrt(var + eps);
		for (int64_t j = 0; j < len; j++) {
			double v = (xr[j] - mean) * rstd;
			int64_t c = aff(r, j, p);
			if (w)
				v *= w[c];
			if (b)
				v += b[c];
			y[r * len + j] = (float)v;
		}
	}
	return 0;
}

/* p = {C, spatial}: row r is (n, c) */
static int64_t
aff_instance(int64_t r, int64_t j, const int64_t *p)
{
	return r % p[0];
}

/* p = {G, C/G, spatial}: row r is (n, g), element j is (c in group, s) */
static int64_t
aff_group(int64_t r, int64_t j, const int64_t *p)
{
	return (r % p[0]) * p[1] + j / p[2];
}

/* layer norm: the affine parameters cover the whole row */
static int64_t
aff_layer(int64_t r, int64_t j, const int64_t *p)
{
	return j;
}

int
interp_instance_norm(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	if (t->rank < 2)
		return ip_fail(ip, n, "operand rank < 2");
	int64_t p[1] = { t->dims[1] }, rows = t->dims[0] * t->dims[1];
	if (rows == 0)
		return ip_fail(ip, n, "empty operand");
	return normalize_rows(ip, n, rows, type_numel(t) / rows, aff_instance, p);
}

int
interp_group_norm(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	int64_t g = ir_attr_int(n, "groups");
	if (t->rank < 2 || g <= 0 || t->dims[1] % g || t->dims[0] * t->dims[1] == 0)
		return ip_fail(ip, n, "channels are not divisible by groups");
	int64_t spatial = type_numel(t) / (t->dims[0] * t->dims[1]);
	int64_t p[3] = { g, t->dims[1] / g, spatial };
	return normalize_rows(ip, n, t->dims[0] * g, t->dims[1] / g * spatial, aff_group, p);
}

int
interp_layer_norm(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	int64_t dims = ir_attr_int(n, "dims"), len = 1;
	if (dims < 1 || dims > t->rank)
		return ip_fail(ip, n, "dims out of range");
	for (int k = t->rank - (int)dims; k < t->rank; k++)
		len *= t->dims[k];
	if (len == 0)
		return ip_fail(ip, n, "empty normalised axes");
	return normalize_rows(ip, n, type_numel(t) / len, len, aff_layer, NULL);
}

/* inference: (x - rm) / sqrt(rv + eps) * w + b per channel (axis 1) */
int
interp_batch_norm(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	for (int i = 0; i < 5; i++)   /* num_batches_tracked (operand 5) is i64 and unused */
		if (n->in[i] && ip_type(ip, n->in[i])->dtype != DT_F32)
			return ip_fail(ip, n, "operand is not f32, expected f32");
	if (t->rank < 2 || !n->in[3] || !n->in[4])
		return ip_fail(ip, n, "operand rank < 2 or running stats missing");
	int64_t C = t->dims[1], spatial = 1, cnt = type_numel(t);
	for (int k = 2; k < t->rank; k++)
		spatial *= t->dims[k];
	double eps = ir_attr_float(n, "eps");
	int affine = (int)ir_attr_int(n, "affine");
	const float *x = ip_in(ip, n, 0);
	const float *w = affine && n->in[1] ? ip_in(ip, n, 1) : NULL;
	const float *b = affine && n->in[2] ? ip_in(ip, n, 2) : NULL;
	const float *rm = ip_in(ip, n, 3), *rv = ip_in(ip, n, 4);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t i = 0; i < cnt; i++) {
		int64_t c = (i / spatial) % C;
		double v = (x[i] - rm[c]) / sqrt(rv[c] + eps);
		if (w)
			v *= w[c];
		if (b)
			v += b[c];
		y[i] = (float)v;
	}
	return 0;
}

/* ---- convolutions ---- */

typedef struct {
	int64_t N, Ci, Co, G, in[3], out[3], k[3], s[3], p[3], dl[3];
} ConvGeom;

static int
conv_geom(Interp *ip, const Node *n, int transposed, ConvGeom *g)
{
	const Type *x = ip_type(ip, n->in[0]), *w = ip_type(ip, n->in[1]);
	const Type *y = ip_type(ip, n->out[0]);
	const Attr *k = ir_attr(n, "kernel"), *s = ir_attr(n, "stride"), *p = ir_attr(n, "pad");
	const Attr *dl = ir_attr(n, "dilation");

	if (ip_need_f32(ip, n) < 0)
		return -1;
	if (!ip_has3(k) || !ip_has3(s) || !ip_has3(p) || !ip_has3(dl))
		return ip_fail(ip, n, "kernel, stride, pad or dilation is not three integers");
	if (x->rank != 5 || w->rank != 5 || y->rank != 5)
		return ip_fail(ip, n, "operand, weight or result is not 5-D");
	/* the channel axis and the first spatial one: NCDHW, or NDHWC for conv3d_ndhwc */
	int ca = n->op == OP_conv3d_ndhwc ? 4 : 1, sa = ca == 4 ? 1 : 2;
	g->N = x->dims[0];
	g->Ci = x->dims[ca];
	g->Co = y->dims[ca];
	g->G = ir_attr_int(n, "groups");
	if (g->G <= 0 || g->Ci % g->G || g->Co % g->G || y->dims[0] != g->N)
		return ip_fail(ip, n, "channels are not divisible by groups");
	for (int i = 0; i < 3; i++) {
		g->in[i] = x->dims[sa + i];
		g->out[i] = y->dims[sa + i];
		g->k[i] = k->ints[i];
		g->s[i] = s->ints[i];
		g->p[i] = p->ints[i];
		g->dl[i] = dl->ints[i];
		if (w->dims[2 + i] != g->k[i] || g->s[i] < 1 || g->dl[i] < 1)
			return ip_fail(ip, n, "weight does not match the kernel, or bad stride");
	}
	int64_t w0 = transposed ? g->Ci : g->Co, w1 = transposed ? g->Co / g->G : g->Ci / g->G;
	if (w->dims[0] != w0 || w->dims[1] != w1)
		return ip_fail(ip, n, "weight shape does not match the channels");
	if (n->in[2] && type_numel(ip_type(ip, n->in[2])) != g->Co)
		return ip_fail(ip, n, "bias size does not match the output channels");
	return 0;
}

/* sum over the kernel window of one input channel xc for output point o, weights wc */
static double
conv_window(const ConvGeom *g, const float *xc, const float *wc, const int64_t *o)
{
	double acc = 0;
	for (int64_t kd = 0; kd < g->k[0]; kd++) {
		int64_t id = o[0] * g->s[0] - g->p[0] + kd * g->dl[0];
		if (id < 0 || id >= g->in[0])
			continue;
		for (int64_t kh = 0; kh < g->k[1]; kh++) {
			int64_t ih = o[1] * g->s[1] - g->p[1] + kh * g->dl[1];
			if (ih < 0 || ih >= g->in[1])
				continue;
			for (int64_t kw = 0; kw < g->k[2]; kw++) {
				int64_t iw = o[2] * g->s[2] - g->p[2] + kw * g->dl[2];
				if (iw < 0 || iw >= g->in[2])
					continue;
				acc += (double)xc[(id * g->in[1] + ih) * g->in[2] + iw] *
				       wc[(kd * g->k[1] + kh) * g->k[2] + kw];
			}
		}
	}
	return acc;
}

/* y[n,co,o] = b[co] + sum_{ci in co's group, k} x[n, ci, o*s - p + k*dl] w[co, ci', k] */
int
interp_conv3d(Interp *ip, const Node *n)
{
	ConvGeom g;
	if (conv_geom(ip, n, 0, &g) < 0)
		return -1;
	const float *x = ip_in(ip, n, 0), *w = ip_in(ip, n, 1);
	const float *bias = n->in[2] ? ip_in(ip, n, 2) : NULL;
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t cig = g.Ci / g.G, cog = g.Co / g.G;
	int64_t ksz = g.k[0] * g.k[1] * g.k[2];
	int64_t isz = g.in[0] * g.in[1] * g.in[2];
	int64_t o[3];
	for (int64_t b = 0; b < g.N; b++)
	for (int64_t co = 0; co < g.Co; co++) {
		int64_t grp = co / cog;
		for (o[0] = 0; o[0] < g.out[0]; o[0]++)
		for (o[1] = 0; o[1] < g.out[1]; o[1]++)
		for (o[2] = 0; o[2] < g.out[2]; o[2]++) {
			double acc = bias ? bias[co] : 0.0;
			for (int64_t ci = 0; ci < cig; ci++)
				acc += conv_window(&g, x + (b * g.Ci + grp * cig + ci) * isz,
				                   w + (co * cig + ci) * ksz, o);
			int64_t at = ((b * g.Co + co) * g.out[0] + o[0]) * g.out[1] + o[1];
			y[at * g.out[2] + o[2]] = (float)acc;
		}
	}
	return 0;
}

/* conv3d on channels-last tensors: x [N, D, H, W, Ci], y [N, OD, OH, OW, Co], the weight as
 * conv3d's; x is gathered into one NCDHW channel plane at a time and conv_window reused */
int
interp_conv3d_ndhwc(Interp *ip, const Node *n)
{
	ConvGeom g;
	if (conv_geom(ip, n, 0, &g) < 0)
		return -1;
	const float *x = ip_in(ip, n, 0), *w = ip_in(ip, n, 1);
	const float *bias = n->in[2] ? ip_in(ip, n, 2) : NULL;
	float *y = ip_result(ip, n, 0);
	int64_t cig = g.Ci / g.G, cog = g.Co / g.G, ksz = g.k[0] * g.k[1] * g.k[2];
	int64_t isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2];
	float *plane = y ? malloc((size_t)(g.Ci * isz) * sizeof *plane) : NULL;
	if (!plane) {
		if (y)
			diag_error(ip->d, n->loc, "interp: out of memory in conv3d_ndhwc");
		return -1;
	}
	int64_t o[3];
	for (int64_t b = 0; b < g.N; b++) {
		for (int64_t c = 0; c < g.Ci; c++) /* [D*H*W, Ci] -> [Ci, D*H*W] */
			for (int64_t i = 0; i < isz; i++)
				plane[c * isz + i] = x[(b * isz + i) * g.Ci + c];
		for (int64_t co = 0; co < g.Co; co++) {
			int64_t grp = co / cog, at = 0;
			for (o[0] = 0; o[0] < g.out[0]; o[0]++)
			for (o[1] = 0; o[1] < g.out[1]; o[1]++)
			for (o[2] = 0; o[2] < g.out[2]; o[2]++, at++) {
				double acc = bias ? bias[co] : 0.0;
				for (int64_t ci = 0; ci < cig; ci++)
					acc += conv_window(&g, plane + (grp * cig + ci) * isz,
					                   w + (co * cig + ci) * ksz, o);
				y[(b * osz + at) * g.Co + co] = (float)acc;
			}
		}
	}
	free(plane);
	return 0;
}

/* add xv * w[k] to yc[i*s - p + k*dl] for every kernel offset k that lands in the output */
static void
scatter_window(const ConvGeom *g, double *yc, const float *wc, const int64_t *i, double xv)
{
	for (int64_t kd = 0; kd < g->k[0]; kd++) {
		int64_t od = i[0] * g->s[0] - g->p[0] + kd * g->dl[0];
		if (od < 0 || od >= g->out[0])
			continue;
		for (int64_t kh = 0; kh < g->k[1]; kh++) {
			int64_t oh = i[1] * g->s[1] - g->p[1] + kh * g->dl[1];
			if (oh < 0 || oh >= g->out[1])
				continue;
			for (int64_t kw = 0; kw < g->k[2]; kw++) {
				int64_t ow = i[2] * g->s[2] - g->p[2] + kw * g->dl[2];
				if (ow < 0 || ow >= g->out[2])
					continue;
				yc[(od * g->out[1] + oh) * g->out[2] + ow] +=
					xv * wc[(kd * g->k[1] + kh) * g->k[2] + kw];
			}
		}
	}
}

/* The adjoint of conv3d: every input element scatters x * w into
 * y[n, co, i*s - p + k*dl]; weight layout [Ci, Co/G, kd, kh, kw]; the output size (with
 * output_padding) is the result type's.  Accumulated in double. */
int
interp_conv_transpose3d(Interp *ip, const Node *n)
{
	ConvGeom g;
	if (conv_geom(ip, n, 1, &g) < 0)
		return -1;
	const float *x = ip_in(ip, n, 0), *w = ip_in(ip, n, 1);
	const float *bias = n->in[2] ? ip_in(ip, n, 2) : NULL;
	int64_t osz = g.out[0] * g.out[1] * g.out[2], isz = g.in[0] * g.in[1] * g.in[2];
	int64_t cnt = g.N * g.Co * osz;
	double *acc = calloc((size_t)(cnt ? cnt : 1), sizeof *acc);
	float *y = acc ? ip_result(ip, n, 0) : NULL;
	if (!y) {
		if (!acc)
			diag_error(ip->d, n->loc, "interp: out of memory in conv_transpose3d");
		free(acc);
		return -1;
	}
	int64_t cig = g.Ci / g.G, cog = g.Co / g.G, ksz = g.k[0] * g.k[1] * g.k[2];
	int64_t i[3];
	for (int64_t b = 0; b < g.N; b++)
	for (int64_t ci = 0; ci < g.Ci; ci++) {
		int64_t grp = ci / cig;
		const float *xc = x + (b * g.Ci + ci) * isz;
		for (int64_t co = 0; co < cog; co++) {
			const float *wc = w + (ci * cog + co) * ksz;
			double *yc = acc + (b * g.Co + grp * cog + co) * osz;
			for (i[0] = 0; i[0] < g.in[0]; i[0]++)
			for (i[1] = 0; i[1] < g.in[1]; i[1]++)
			for (i[2] = 0; i[2] < g.in[2]; i[2]++)
				scatter_window(&g, yc, wc, i,
				               xc[(i[0] * g.in[1] + i[1]) * g.in[2] + i[2]]);
		}
	}
	for (int64_t k = 0; k < cnt; k++)
		y[k] = (float)(acc[k] + (bias ? bias[(k / osz) % g.Co] : 0.0));
	free(acc);
	return 0;
}

/* ---- matrix products ---- */

/* y[..., o] = b[o] + sum_i x[..., i] W[o, i] */
int
interp_linear(Interp *ip, const Node *n)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *tx = ip_type(ip, n->in[0]), *tw = ip_type(ip, n->in[1]);
	const Type *ty = ip_type(ip, n->out[0]);
	if (tx->rank < 1 || tw->rank != 2 || ty->rank != tx->rank)
		return ip_fail(ip, n, "bad operand or weight rank");
	int64_t K = tx->dims[tx->rank - 1], O = tw->dims[0];
	if (tw->dims[1] != K || ty->dims[ty->rank - 1] != O ||
	    (n->in[2] && type_numel(ip_type(ip, n->in[2])) != O))
		return ip_fail(ip, n, "weight shape does not match the operand");
	int64_t rows = K ? type_numel(tx) / K : 0;
	if (rows * O != type_numel(ty))
		return ip_fail(ip, n, "result shape does not match the operand");
	const float *x = ip_in(ip, n, 0), *w = ip_in(ip, n, 1);
	const float *b = n->in[2] ? ip_in(ip, n, 2) : NULL;
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t r = 0; r < rows; r++)
		for (int64_t o = 0; o < O; o++) {
			double acc = b ? b[o] : 0.0;
			for (int64_t i = 0; i < K; i++)
				acc += (double)x[r * K + i] * w[o * K + i];
			y[r * O + o] = (float)acc;
		}
	return 0;
}

/* torch.matmul: a [..., M, K] @ b [..., K, N], batch axes broadcast; a 1-D a is [1, K]
 * (the M axis dropped from the result), a 1-D b is [K, 1] (the N axis dropped) */
int
interp_matmul(Interp *ip, const Node *n)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	Type ta = *ip_type(ip, n->in[0]), tb = *ip_type(ip, n->in[1]);
	if (ta.rank < 1 || tb.rank < 1)
		return ip_fail(ip, n, "operand rank < 1");
	if (ta.rank == 1) {
		ta.dims[1] = ta.dims[0];
		ta.dims[0] = 1;
		ta.rank = 2;
	}
	if (tb.rank == 1) {
		tb.dims[1] = 1;
		tb.rank = 2;
	}
	int64_t M = ta.dims[ta.rank - 2], K = ta.dims[ta.rank - 1], N = tb.dims[tb.rank - 1];
	if (tb.dims[tb.rank - 2] != K)
		return ip_fail(ip, n, "inner dimensions differ");
	/* batch shape: broadcast of the leading axes */
	Type bt = { .dtype = DT_F32 }, ba = ta, bb = tb;
	ba.rank -= 2;
	bb.rank -= 2;
	bt.rank = ba.rank > bb.rank ? ba.rank : bb.rank;
	for (int i = 0; i < bt.rank; i++) {
		int ia = i - (bt.rank - ba.rank), ib = i - (bt.rank - bb.rank);
		int64_t da = ia >= 0 ? ba.dims[ia] : 1, db = ib >= 0 ? bb.dims[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return ip_fail(ip, n, "batch dimensions do not broadcast");
		bt.dims[i] = da == 1 ? db : da;
	}
	int64_t sa[IR_MAXRANK], sb[IR_MAXRANK], idx[IR_MAXRANK] = { 0 };
	bcast_strides(&ba, &bt, sa);
	bcast_strides(&bb, &bt, sb);
	int64_t nb = type_numel(&bt);
	if (nb * M * N != type_numel(ip_type(ip, n->out[0])))
		return ip_fail(ip, n, "result shape does not match the operands");
	const float *a = ip_in(ip, n, 0), *b = ip_in(ip, n, 1);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t offa = 0, offb = 0;
	for (int64_t bi = 0; bi < nb; bi++) {
		const float *ap = a + offa * M * K, *bp = b + offb * K * N;
		float *yp = y + bi * M * N;
		for (int64_t i = 0; i < M; i++)
			for (int64_t j = 0; j < N; j++) {
				double acc = 0;
				for (int64_t k = 0; k < K; k++)
					acc += (double)ap[i * K + k] * bp[k * N + j];
				yp[i * N + j] = (float)acc;
			}
		for (int k = bt.rank - 1; k >= 0; k--) {
			idx[k]++;
			offa += sa[k];
			offb += sb[k];
			if (idx[k] < bt.dims[k])
				break;
			offa -= sa[k] * idx[k];
			offb -= sb[k] * idx[k];
			idx[k] = 0;
		}
	}
	return 0;
}

/* ---- pooling ---- */

typedef struct {
	int64_t NC, in[3], out[3], k[3], s[3], p[3], dl[3];
} PoolGeom;

static int
pool_geom(Interp *ip, const Node *n, PoolGeom *g)
{
	const Type *x = ip_type(ip, n->in[0]), *y = ip_type(ip, n->out[0]);
	const Attr *k = ir_attr(n, "kernel"), *s = ir_attr(n, "stride"), *p = ir_attr(n, "pad");
	int hasdl = op_attr_index(n->op, "dilation") >= 0;

	if (ip_need_f32(ip, n) < 0)
		return -1;
	if (!ip_has3(k) || (s->present && !ip_has3(s)) || !ip_has3(p) ||
	    (hasdl && !ip_has3(ir_attr(n, "dilation"))))
		return ip_fail(ip, n, "kernel, stride, pad or dilation is not three integers");
	if (x->rank != 5 || y->rank != 5 || x->dims[0] != y->dims[0] || x->dims[1] != y->dims[1])
		return ip_fail(ip, n, "operand or result is not 5-D with matching N, C");
	g->NC = x->dims[0] * x->dims[1];
	for (int i = 0; i < 3; i++) {
		g->in[i] = x->dims[2 + i];
		g->out[i] = y->dims[2 + i];
		g->k[i] = k->ints[i];
		g->s[i] = s->present ? s->ints[i] : k->ints[i];
		g->p[i] = p->ints[i];
		g->dl[i] = hasdl ? ir_attr(n, "dilation")->ints[i] : 1;
		if (g->k[i] < 1 || g->s[i] < 1 || g->dl[i] < 1)
			return ip_fail(ip, n, "kernel, stride and dilation must be >= 1");
	}
	return 0;
}

/* max over the window; padding never wins (it is -inf); NaN propagates */
int
interp_max_pool3d(Interp *ip, const Node *n)
{
	PoolGeom g;
	if (pool_geom(ip, n, &g) < 0)
		return -1;
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t isz = g.in[0] * g.in[1] * g.in[2];
	for (int64_t c = 0; c < g.NC; c++) {
		const float *xc = x + c * isz;
		for (int64_t od = 0; od < g.out[0]; od++)
		for (int64_t oh = 0; oh < g.out[1]; oh++)
		for (int64_t ow = 0; ow < g.out[2]; ow++) {
			float mx = -INFINITY;
			for (int64_t kd = 0; kd < g.k[0]; kd++) {
				int64_t id = od * g.s[0] - g.p[0] + kd * g.dl[0];
				if (id < 0 || id >= g.in[0])
					continue;
				for (int64_t kh = 0; kh < g.k[1]; kh++) {
					int64_t ih = oh * g.s[1] - g.p[1] + kh * g.dl[1];
					if (ih < 0 || ih >= g.in[1])
						continue;
					for (int64_t kw = 0; kw < g.k[2]; kw++) {
						int64_t iw = ow * g.s[2] - g.p[2] + kw * g.dl[2];
						if (iw < 0 || iw >= g.in[2])
							continue;
						float v = xc[(id * g.in[1] + ih) * g.in[2] + iw];
						if (v > mx || isnan(v))
							mx = v;
					}
				}
			}
			y[((c * g.out[0] + od) * g.out[1] + oh) * g.out[2] + ow] = mx;
		}
	}
	return 0;
}

/* PyTorch avg_pool3d: the window is clipped to input + padding for the count_include_pad
 * divisor, then to the input for the sum (and the divisor otherwise) */
int
interp_avg_pool3d(Interp *ip, const Node *n)
{
	PoolGeom g;
	if (pool_geom(ip, n, &g) < 0)
		return -1;
	int incl = (int)ir_attr_int(n, "count_include_pad");
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t isz = g.in[0] * g.in[1] * g.in[2];
	for (int64_t c = 0; c < g.NC; c++) {
		const float *xc = x + c * isz;
		for (int64_t od = 0; od < g.out[0]; od++)
		for (int64_t oh = 0; oh < g.out[1]; oh++)
		for (int64_t ow = 0; ow < g.out[2]; ow++) {
			int64_t o[3] = { od, oh, ow }, lo[3], hi[3], pool = 1, valid = 1;
			for (int i = 0; i < 3; i++) {
				lo[i] = o[i] * g.s[i] - g.p[i];
				hi[i] = min64(lo[i] + g.k[i], g.in[i] + g.p[i]);
				pool *= hi[i] - lo[i];
				lo[i] = max64(lo[i], 0);
				hi[i] = min64(hi[i], g.in[i]);
				valid *= hi[i] > lo[i] ? hi[i] - lo[i] : 0;
			}
			double s = 0;
			for (int64_t id = lo[0]; id < hi[0]; id++)
				for (int64_t ih = lo[1]; ih < hi[1]; ih++)
					for (int64_t iw = lo[2]; iw < hi[2]; iw++)
						s += xc[(id * g.in[1] + ih) * g.in[2] + iw];
			int64_t div = incl ? pool : valid;
			y[((c * g.out[0] + od) * g.out[1] + oh) * g.out[2] + ow] =
				div > 0 ? (float)(s / (double)div) : 0.0f;
		}
	}
	return 0;
}

/* ---- resize ---- */

/* PyTorch's scale for one axis: in/out, or 1/scale_factor when one was given */
static float
resize_scale(int64_t in, int64_t out, const Attr *scale, int i)
{
	if (scale->present && scale->n > i && scale->floats && scale->floats[i] > 0)
		return (float)(1.0 / scale->floats[i]);
	return (float)in / (float)out;
}

/* nearest: src = min(floor(dst * scale), in - 1) (upsample_nearest3d, not nearest-exact) */
static int64_t
nearest_src(int64_t o, int64_t in, int64_t out, float scale)
{
	if (out == in)
		return o;
	if (out == 2 * in)
		return o >> 1;
	return min64((int64_t)floorf((float)o * scale), in - 1);
}

/* trilinear: the lower source index and the weight of the upper one, in float like PyTorch */
static void
linear_src(int64_t o, int64_t in, int64_t out, int align, float scale, int64_t *i0, int64_t *i1,
           float *l1)
{
	float src;
	if (align) {
		float sc = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
		src = sc * (float)o;
	} else {
		src = scale * ((float)o + 0.5f) - 0.5f;
		if (src < 0)
			src = 0;
	}
	*i0 = min64((int64_t)floorf(src), in - 1);
	*i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
	float l = src - (float)*i0;
	*l1 = l < 0 ? 0 : l > 1 ? 1 : l;
}

int
interp_upsample(Interp *ip, const Node *n)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *tx = ip_type(ip, n->in[0]), *ty = ip_type(ip, n->out[0]);
	const char *mode = ir_attr_str(n, "mode");
	const Attr *scale = ir_attr(n, "scale");
	int align = (int)ir_attr_int(n, "align_corners"), tri;
	if (mode && !strcmp(mode, "trilinear"))
		tri = 1;
	else if (!mode || !strcmp(mode, "nearest"))
		tri = 0;
	else
		return ip_fail(ip, n, "unknown mode, expected nearest or trilinear");
	if (tx->rank != 5 || ty->rank != 5 || tx->dims[0] != ty->dims[0] ||
	    tx->dims[1] != ty->dims[1])
		return ip_fail(ip, n, "operand or result is not 5-D with matching N, C");
	int64_t in[3], out[3], *i0[3], *i1[3];
	float sc[3], *l1[3];
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int ok = 1;
	for (int a = 0; a < 3; a++) {
		in[a] = tx->dims[2 + a];
		out[a] = ty->dims[2 + a];
		sc[a] = resize_scale(in[a], out[a], scale, a);
		i0[a] = malloc((size_t)(out[a] + 1) * sizeof(int64_t));
		i1[a] = malloc((size_t)(out[a] + 1) * sizeof(int64_t));
		l1[a] = malloc((size_t)(out[a] + 1) * sizeof(float));
		ok &= i0[a] && i1[a] && l1[a] && in[a] > 0;
	}
	for (int a = 0; ok && a < 3; a++)
		for (int64_t o = 0; o < out[a]; o++) {
			if (tri) {
				linear_src(o, in[a], out[a], align, sc[a], &i0[a][o], &i1[a][o],
				           &l1[a][o]);
			} else {
				i0[a][o] = i1[a][o] = nearest_src(o, in[a], out[a], sc[a]);
				l1[a][o] = 0;
			}
		}
	int64_t NC = tx->dims[0] * tx->dims[1], isz = in[0] * in[1] * in[2];
	for (int64_t c = 0; ok && c < NC; c++) {
		const float *xc = x + c * isz;
		for (int64_t od = 0; od < out[0]; od++)
		for (int64_t oh = 0; oh < out[1]; oh++)
		for (int64_t ow = 0; ow < out[2]; ow++) {
			double v = 0;
			for (int cd = 0; cd < 2; cd++)
			for (int chh = 0; chh < 2; chh++)
			for (int cw = 0; cw < 2; cw++) {
				double wd = cd ? l1[0][od] : 1.0f - l1[0][od];
				double wh = chh ? l1[1][oh] : 1.0f - l1[1][oh];
				double ww = cw ? l1[2][ow] : 1.0f - l1[2][ow];
				if (wd == 0 || wh == 0 || ww == 0)
					continue;
				int64_t id = cd ? i1[0][od] : i0[0][od];
				int64_t ih = chh ? i1[1][oh] : i0[1][oh];
				int64_t iw = cw ? i1[2][ow] : i0[2][ow];
				v += wd * wh * ww * xc[(id * in[1] + ih) * in[2] + iw];
			}
			y[((c * out[0] + od) * out[1] + oh) * out[2] + ow] = (float)v;
		}
	}
	for (int a = 0; a < 3; a++) {
		free(i0[a]);
		free(i1[a]);
		free(l1[a]);
	}
	if (!ok)
		return diag_error(ip->d, n->loc, "interp: out of memory in upsample");
	return 0;
}

/* ---- the dispatch table, generated from ops.def ---- */

static const InterpFn interp_fn[OP_COUNT] = {
#define OP(name, operands, nout, cls, attrs, shape, cost) [OP_##name] = interp_##name,
#include "ops.def"
};

static void
release(Interp *ip, ValueId v)
{
	free(ip->buf[v].owned);
	ip->buf[v].owned = NULL;
	ip->buf[v].data = NULL;
}

int
ir_interp(const Module *m, const void *const *inputs, IrWeightFn weight, void *ctx,
          void *const *outputs, Diag *d)
{
	Interp ip = { .m = m, .inputs = inputs, .weight = weight, .ctx = ctx, .d = d };
	uint32_t *last = calloc(m->nvalues + 1, sizeof *last);   /* last node using a value */
	uint8_t *keep = calloc(m->nvalues + 1, 1);                /* module outputs */
	int rc = 0;

	ip.buf = calloc(m->nvalues + 1, sizeof *ip.buf);
	if (!last || !keep || !ip.buf) {
		free(last);
		free(keep);
		free(ip.buf);
		return diag_error(d, loc_none, "interp: out of memory");
	}
	if (op_init() < 0)
		rc = diag_error(d, loc_none, "interp: bad op table");
	for (uint32_t i = 0; i < m->noutputs; i++)
		keep[m->outputs[i]] = 1;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		for (int j = 0; !n->dead && j < n->nin; j++)
			last[n->in[j]] = i;
		for (int j = 0; j < n->nout; j++)
			last[n->out[j]] = last[n->out[j]] > i ? last[n->out[j]] : i;
	}
	for (uint32_t i = 0; rc == 0 && i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->nin; j++)
			if (n->in[j] && !ip.buf[n->in[j]].data &&
			    type_numel(ip_type(&ip, n->in[j])) > 0)
				rc = diag_error(d, n->loc, "interp: %s: operand %d has no value",
				                optab[n->op].name, j);
		if (rc == 0)
			rc = interp_fn[n->op](&ip, n);
		/* free what no later node reads */
		for (int j = 0; j < n->nin; j++)
			if (n->in[j] && last[n->in[j]] <= i && !keep[n->in[j]])
				release(&ip, n->in[j]);
		for (int j = 0; j < n->nout; j++)
			if (last[n->out[j]] <= i && !keep[n->out[j]])
				release(&ip, n->out[j]);
	}
	for (uint32_t i = 0; rc == 0 && i < m->noutputs; i++) {
		ValueId v = m->outputs[i];
		size_t bytes = (size_t)type_bytes(ip_type(&ip, v));
		if (!ip.buf[v].data && bytes)
			rc = diag_error(d, loc_none, "interp: output %u was not computed", i);
		else if (bytes)
			memcpy(outputs[i], ip.buf[v].data, bytes);
	}
	for (uint32_t v = 0; v < m->nvalues; v++)
		free(ip.buf[v].owned);
	free(ip.buf);
	free(last);
	free(keep);
	return rc;
}
