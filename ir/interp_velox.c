/* ir/interp_velox.c -- reference kernels of the VeloxSeg ops (ir/ops_velox.def).
 *
 * Plain loops straight from the definitions in ir/ops_velox.def and ir/velox.h; they are the
 * oracle the canon rewrites (passes/canon_velox.c) are tested against. */
#include "interp.h"
#include "velox.h"

#include <math.h>

/* coordinates of flat index f over dims[3] */
static void
unflat3(int64_t f, const int64_t *dims, int64_t *c)
{
	c[2] = f % dims[2];
	c[1] = f / dims[2] % dims[1];
	c[0] = f / (dims[1] * dims[2]);
}

/* max over the small window S at o of one channel (G1 x G2 planes) */
static float
window_max(const float *xc, const int64_t *o, const int64_t *S, int64_t G1, int64_t G2)
{
	float mx = -INFINITY;
	for (int64_t u0 = 0; u0 < S[0]; u0++)
		for (int64_t u1 = 0; u1 < S[1]; u1++)
			for (int64_t u2 = 0; u2 < S[2]; u2++) {
				float v = xc[((o[0] + u0) * G1 + o[1] + u1) * G2 + o[2] + u2];
				if (v > mx || isnan(v))
					mx = v;
			}
	return mx;
}

int
interp_pwa_gather(Interp *ip, const Node *n)
{
	const Type *tx = ip_type(ip, n->in[0]), *ty = ip_type(ip, n->out[0]);
	PwaGeom g;

	if (ip_need_f32(ip, n) < 0 || velox_geom(n, tx->dims + 2, &g, ip->d) < 0)
		return -1;
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t N = tx->dims[0], C = tx->dims[1], G[3] = {tx->dims[2], tx->dims[3], tx->dims[4]};
	int64_t H = ty->dims[1], NW = ty->dims[2], SQ = ty->dims[3], dim = ty->dims[4];
	for (int m = 0; m < n->nin; m++) {
		const float *x = ip_in(ip, n, m);
		for (int64_t b = 0; b < N; b++)
			for (int i = 0; i < g.npairs; i++) {
				int64_t nwin[3] = {G[0] / g.B[i][0], G[1] / g.B[i][1],
				                   G[2] / g.B[i][2]};
				for (int64_t hd = 0; hd < H; hd++)
					for (int64_t w = 0; w < g.nw[i]; w++)
						for (int64_t t = 0; t < g.l; t++)
							for (int64_t c = 0; c < dim; c++) {
								int64_t I[3], a[3], o[3];
								int64_t ch = (i * H + hd) * dim + c;
								unflat3(w, nwin, I);
								unflat3(t, g.n, a);
								for (int k = 0; k < 3; k++)
									o[k] = I[k] * g.B[i][k] +
									       a[k] * g.S[i][k];
								const float *xc =
								    x + (b * C + ch) * G[0] * G[1] *
								            G[2];
								int64_t yi = ((b * H + hd) * NW +
								              g.off[i] + w) *
								                 SQ +
								             m * g.l + t;
								y[yi * dim + c] = window_max(
								    xc, o, g.S[i], G[1], G[2]);
							}
			}
	}
	return 0;
}

/* align_corners source of output y along an axis of n inputs and B outputs */
static void
lerp_src(int64_t y, int64_t n, int64_t B, int64_t *i0, int64_t *i1, float *lam)
{
	float src = B > 1 ? (float)y * ((float)(n - 1) / (float)(B - 1)) : 0.0f;
	int64_t f = (int64_t)floorf(src);
	if (f > n - 1)
		f = n - 1;
	*i0 = f;
	*i1 = f + 1 < n ? f + 1 : n - 1;
	*lam = src - (float)f;
}

/* trilinear value at grid point p of window w's token block xw (tokens x dim, channel c) */
static float
window_lerp(const float *xw, const PwaGeom *g, int i, const int64_t *p, int64_t dim)
{
	int64_t i0[3], i1[3];
	float lam[3], acc = 0;

	for (int k = 0; k < 3; k++)
		lerp_src(p[k] % g->B[i][k], g->n[k], g->B[i][k], &i0[k], &i1[k], &lam[k]);
	for (int k = 0; k < 8; k++) {
		int64_t a0 = k & 4 ? i1[0] : i0[0], a1 = k & 2 ? i1[1] : i0[1];
		int64_t a2 = k & 1 ? i1[2] : i0[2];
		float wt = (k & 4 ? lam[0] : 1 - lam[0]) * (k & 2 ? lam[1] : 1 - lam[1]) *
		           (k & 1 ? lam[2] : 1 - lam[2]);
		acc += wt * xw[((a0 * g->n[1] + a1) * g->n[2] + a2) * dim];
	}
	return acc;
}

int
interp_pwa_scatter(Interp *ip, const Node *n)
{
	const Type *tx = ip_type(ip, n->in[0]), *ty = ip_type(ip, n->out[0]);
	PwaGeom g;

	if (ip_need_f32(ip, n) < 0 || velox_geom(n, ir_attr(n, "grid")->ints, &g, ip->d) < 0)
		return -1;
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t N = tx->dims[0], H = tx->dims[1], NW = tx->dims[2], SQ = tx->dims[3];
	int64_t dim = tx->dims[4], C = ty->dims[1];
	int64_t G[3] = {ty->dims[2], ty->dims[3], ty->dims[4]};
	int64_t mod = ir_attr_int(n, "modality");
	for (int64_t b = 0; b < N; b++)
		for (int i = 0; i < g.npairs; i++)
			for (int64_t hd = 0; hd < H; hd++)
				for (int64_t c = 0; c < dim; c++) {
					float *yc = y + (b * C + (i * H + hd) * dim + c) * G[0] *
					                    G[1] * G[2];
					for (int64_t f = 0; f < G[0] * G[1] * G[2]; f++) {
						int64_t p[3];
						unflat3(f, G, p);
						int64_t w = (p[0] / g.B[i][0] * (G[1] / g.B[i][1]) +
						             p[1] / g.B[i][1]) *
						                (G[2] / g.B[i][2]) +
						            p[2] / g.B[i][2];
						const float *xw =
						    x +
						    (((b * H + hd) * NW + g.off[i] + w) * SQ +
						     mod * g.l) *
						        dim +
						    c;
						yc[f] = window_lerp(xw, &g, i, p, dim);
					}
				}
	return 0;
}

int
interp_pwa_rel_bias(Interp *ip, const Node *n)
{
	const Type *ty = ip_type(ip, n->out[0]);
	PwaGeom g;

	if (velox_geom(n, NULL, &g, ip->d) < 0)
		return -1;
	const float *tab = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	if (!tab)
		return ip_fail(ip, n, "relative_position_bias_table has no data");
	int64_t H = ty->dims[0], S = ty->dims[2];
	for (int64_t hd = 0; hd < H; hd++)
		for (int64_t p = 0; p < S; p++)
			for (int64_t q = 0; q < S; q++)
				y[(hd * S + p) * S + q] =
				    tab[velox_relidx(g.n, p % g.l, q % g.l) * H + hd];
	return 0;
}

int
interp_pixel_shuffle3d(Interp *ip, const Node *n)
{
	const Type *tx = ip_type(ip, n->in[0]), *ty = ip_type(ip, n->out[0]);

	if (ip_need_f32(ip, n) < 0)
		return -1;
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	int64_t r = ir_attr_int(n, "r"), N = ty->dims[0], C = ty->dims[1], Ci = tx->dims[1];
	int64_t D = tx->dims[2], Hh = tx->dims[3], W = tx->dims[4];
	for (int64_t b = 0; b < N; b++)
		for (int64_t c = 0; c < C; c++)
			for (int64_t z = 0; z < D * r; z++)
				for (int64_t h = 0; h < Hh * r; h++)
					for (int64_t w = 0; w < W * r; w++) {
						int64_t ci =
						    ((c * r + z % r) * r + h % r) * r + w % r;
						int64_t xi =
						    ((b * Ci + ci) * D + z / r) * Hh + h / r;
						y[(((b * C + c) * D * r + z) * Hh * r + h) * W * r +
						  w] = x[xi * W + w / r];
					}
	return 0;
}
