/* ir/interp_mamba.c -- reference kernels of the SegMamba-family ops (ir/ops_mamba.def).
 *
 * Written to be obviously right: the scan keeps its state in double and walks the order one
 * step at a time through mamba_pos(); token_prune sorts (score descending, token index
 * ascending) with qsort, independent of the threshold search the template uses. */
#include "interp.h"
#include "mamba.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double
softplus20(double x)
{
	return x > 20 ? x : log1p(exp(x));
}

static double
silu(double x)
{
	return x / (1 + exp(-x));
}

int
interp_selective_scan(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	const float *u = ip_in(ip, n, 0), *dl = ip_in(ip, n, 1), *alog = ip_in(ip, n, 2);
	const float *bm = ip_in(ip, n, 3), *cm = ip_in(ip, n, 4), *dd = ip_in(ip, n, 5);
	const float *db = ip_in(ip, n, 6), *z = ip_in(ip, n, 7);
	int64_t nb = t->dims[0], l = t->dims[1], di = t->dims[2];
	int64_t ns = ip_type(ip, n->in[3])->dims[2];
	int sp = (int)ir_attr_int(n, "softplus");
	ScanOrder o;
	double h[64], a[64];

	if (ip_need_f32(ip, n) < 0 || mamba_order(n, l, &o, ip->d) < 0)
		return -1;
	float *yg = ip_result(ip, n, 0), *y = ip_result(ip, n, 1);
	if (!yg || !y)
		return -1;
	for (int64_t b = 0; b < nb; b++)
		for (int64_t c = 0; c < di; c++) {
			for (int64_t k = 0; k < ns; k++) {
				h[k] = 0;
				a[k] = -exp((double)alog[c * ns + k]);
			}
			for (int64_t q = 0; q < l; q++) {
				int64_t tk = b * l + mamba_pos(&o, q);
				double uu = u[tk * di + c], dt = (double)dl[tk * di + c] + db[c];
				double acc = 0;
				if (sp)
					dt = softplus20(dt);
				for (int64_t k = 0; k < ns; k++) {
					h[k] = exp(dt * a[k]) * h[k] + dt * bm[tk * ns + k] * uu;
					acc += cm[tk * ns + k] * h[k];
				}
				acc += dd[c] * uu;
				y[tk * di + c] = (float)acc;
				yg[tk * di + c] = (float)(acc * silu(z[tk * di + c]));
			}
		}
	return 0;
}

int
interp_causal_conv1d(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	const float *x = ip_in(ip, n, 0), *w = ip_in(ip, n, 1);
	const float *bias = ip_in(ip, n, 2);
	int64_t nb = t->dims[0], l = t->dims[1], ch = t->dims[2];
	int64_t k = ip_type(ip, n->in[1])->dims[2];
	int act = (int)ir_attr_int(n, "silu");
	ScanOrder o;

	if (ip_need_f32(ip, n) < 0 || mamba_order(n, l, &o, ip->d) < 0)
		return -1;
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t b = 0; b < nb; b++)
		for (int64_t q = 0; q < l; q++) {
			int64_t tk = b * l + mamba_pos(&o, q);
			for (int64_t c = 0; c < ch; c++) {
				double acc = bias[c];
				for (int64_t j = 0; j < k; j++) {
					int64_t qq = q - (k - 1) + j;
					if (qq >= 0)
						acc += (double)w[c * k + j] *
						       x[(b * l + mamba_pos(&o, qq)) * ch + c];
				}
				y[tk * ch + c] = (float)(act ? silu(acc) : acc);
			}
		}
	return 0;
}

static int
rms(Interp *ip, const Node *n, int l2)
{
	const Type *t = ip_type(ip, n->in[0]);
	const float *x = ip_in(ip, n, 0), *g = ip_in(ip, n, 1);
	int64_t c = t->dims[t->rank - 1], rows = type_numel(t) / (c ? c : 1);
	double eps = ir_attr_float(n, "eps");

	if (ip_need_f32(ip, n) < 0)
		return -1;
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = x + r * c;
		double ss = 0, s;
		for (int64_t j = 0; j < c; j++)
			ss += (double)xr[j] * xr[j];
		if (l2) {
			double nrm = sqrt(ss);
			s = sqrt((double)c) / (nrm > eps ? nrm : eps);
		} else {
			s = 1 / sqrt(ss / (double)c + eps);
		}
		for (int64_t j = 0; j < c; j++)
			y[r * c + j] = (float)(xr[j] * s * g[j]);
	}
	return 0;
}

int
interp_rms_norm(Interp *ip, const Node *n)
{
	return rms(ip, n, 0);
}

int
interp_rms_norm_l2(Interp *ip, const Node *n)
{
	return rms(ip, n, 1);
}

int
interp_dyt(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	const float *x = ip_in(ip, n, 0), *al = ip_in(ip, n, 1), *w = ip_in(ip, n, 2);
	const float *bs = ip_in(ip, n, 3);
	int64_t c = t->dims[t->rank - 1], e = type_numel(t);
	double a = al[0];

	if (ip_need_f32(ip, n) < 0)
		return -1;
	if (ir_attr_int(n, "clamp")) {
		double lo = ir_attr_float(n, "alpha_min"), hi = ir_attr_float(n, "alpha_max");
		a = a < lo ? lo : a > hi ? hi : a;
	}
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t i = 0; i < e; i++)
		y[i] = (float)(w[i % c] * tanh((double)(float)a * x[i]) + bs[i % c]);
	return 0;
}

int
interp_token_score(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	const float *x = ip_in(ip, n, 0);
	int64_t nb = t->dims[0], l = t->dims[1], c = t->dims[2];
	double eps = ir_attr_float(n, "eps");

	if (ip_need_f32(ip, n) < 0)
		return -1;
	float *s = ip_result(ip, n, 0);
	if (!s)
		return -1;
	for (int64_t b = 0; b < nb; b++) {
		float mn = INFINITY, mx = -INFINITY;
		for (int64_t i = 0; i < l; i++) {
			double ss = 0;
			for (int64_t j = 0; j < c; j++) {
				double v = x[(b * l + i) * c + j];
				ss += v * v;
			}
			float v = (float)sqrt(ss);
			s[b * l + i] = v;
			mn = v < mn ? v : mn;
			mx = v > mx ? v : mx;
		}
		for (int64_t i = 0; i < l; i++)
			s[b * l + i] = (s[b * l + i] - mn) / (mx - mn + (float)eps);
	}
	return 0;
}

typedef struct {
	float s;
	int64_t i;
} Scored;

/* score descending, then token index ascending (ties go to the lower raster index) */
static int
by_score(const void *pa, const void *pb)
{
	const Scored *a = pa, *b = pb;
	if (a->s != b->s)
		return a->s > b->s ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

int
interp_token_prune(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->in[0]);
	const float *x = ip_in(ip, n, 0), *s = ip_in(ip, n, 1);
	int64_t nb = t->dims[0], l = t->dims[1];
	size_t c = (size_t)t->dims[2];
	int64_t k = mamba_keep_count(ir_attr_float(n, "keep"), l);
	int64_t rows = k + (k < l);
	int wscore = !strcmp(ir_attr_str(n, "summary"), "score");
	ScanOrder o;

	if (ip_need_f32(ip, n) < 0 || mamba_order(n, l, &o, ip->d) < 0)
		return -1;
	if (l < 1)
		return ip_fail(ip, n, "empty sequence, expected at least one token");
	float *y = ip_result(ip, n, 0), *idx = ip_result(ip, n, 1);
	if (!y || !idx)
		return -1;
	Scored *ord = malloc((size_t)l * sizeof *ord);
	char *kept = malloc((size_t)l);
	double *acc = malloc(c * sizeof *acc);
	if (!ord || !kept || !acc) {
		free(ord);
		free(kept);
		free(acc);
		return ip_fail(ip, n, "out of memory");
	}
	for (int64_t b = 0; b < nb; b++) {
		const float *sb = s + b * l, *xb = x + b * l * c;
		for (int64_t i = 0; i < l; i++)
			ord[i] = (Scored){sb[i], i};
		qsort(ord, (size_t)l, sizeof *ord, by_score);
		memset(kept, 0, (size_t)l);
		for (int64_t i = 0; i < k; i++)
			kept[ord[i].i] = 1;
		int64_t r = 0;
		for (int64_t q = 0; q < l; q++) {
			int64_t tk = mamba_pos(&o, q);
			if (!kept[tk])
				continue;
			memcpy(y + (b * rows + r) * c, xb + tk * c, (size_t)c * sizeof *y);
			idx[b * rows + r] = (float)tk;
			r++;
		}
		if (k == l)
			continue;
		double wsum = 0;
		memset(acc, 0, c * sizeof *acc);
		for (int64_t i = 0; i < l; i++) {
			if (kept[i])
				continue;
			double wt = wscore ? sb[i] : 1;
			wsum += wt;
			for (size_t j = 0; j < c; j++)
				acc[j] += wt * xb[i * c + j];
		}
		double div = wscore ? (wsum > 1e-6 ? wsum : 1e-6) : (double)(l - k);
		for (size_t j = 0; j < c; j++)
			y[(size_t)(b * rows + k) * c + j] = (float)(acc[j] / div);
		idx[b * rows + k] = -1;
	}
	free(ord);
	free(kept);
	free(acc);
	return 0;
}

int
interp_token_unpool(Interp *ip, const Node *n)
{
	const Type *yt = ip_type(ip, n->in[0]), *ot = ip_type(ip, n->out[0]);
	const float *y = ip_in(ip, n, 0), *idx = ip_in(ip, n, 1);
	int64_t nb = yt->dims[0], rows = yt->dims[1], c = yt->dims[2], l = ot->dims[1];

	if (ip_need_f32(ip, n) < 0)
		return -1;
	float *o = ip_result(ip, n, 0);
	if (!o)
		return -1;
	for (int64_t b = 0; b < nb; b++) {
		const float *yb = y + b * rows * c;
		if (idx[b * rows + rows - 1] < 0)
			for (int64_t i = 0; i < l; i++)
				memcpy(o + (b * l + i) * c, yb + (rows - 1) * c,
				       (size_t)c * sizeof *o);
		for (int64_t r = 0; r < rows; r++) {
			if (idx[b * rows + r] < 0)
				continue;
			int64_t tk = (int64_t)idx[b * rows + r];
			if (tk >= l)
				return ip_fail(ip, n, "token index out of range, expected < L");
			memcpy(o + (b * l + tk) * c, yb + r * c, (size_t)c * sizeof *o);
		}
	}
	return 0;
}
