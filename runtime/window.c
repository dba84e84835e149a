/* runtime/window.c -- whole-case inference: sliding windows, blending, mirroring, normalisation,
 * activation and labels (the engine ABI's window_* and postprocess members).
 *
 * The algorithm is MONAI's sliding_window_inference as documented: the volume is padded with
 * zeros (half before, half after) to at least the ROI on every axis, windows of the ROI start
 * at positions a fixed interval int(roi * (1 - overlap)) apart with the last one moved back
 * inside the volume (or, as an option, nnU-Net's evenly spread steps), every window's output
 * is weighted by an importance map (ones, or MONAI's Gaussian with sigma = 0.125 * roi), summed,
 * and divided by the summed weights; the padding is cropped away.  Mirroring runs the network
 * on every flip of each window over the chosen axes and averages the flipped-back outputs
 * (nnU-Net's per-window test-time mirroring).  The engine is reached only through its public
 * function table, and N windows (the engine input's batch) go through one forward pass.
 * Nothing here prints; work buffers are allocated per call and freed before returning. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_manifest.h"
#include "rt_util.h"
#include "rt_window.h"

void
rt_window_defaults(segc_window_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	o->overlap = 0.5;
	o->blend = SEGC_BLEND_CONSTANT;
	o->sigma_scale = 0.125;
	o->positions = SEGC_POSITIONS_MONAI;
	o->normalize = SEGC_NORM_NONE;
}

/* the caller's options over the defaults (a smaller, older struct keeps the newer defaults) */
static segc_status
get_options(const segc_window_options *in, segc_window_options *o, char *err, size_t errlen)
{
	rt_window_defaults(o);
	if (!in)
		return SEGC_OK;
	if (in->size < sizeof(uint32_t))
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window options: size %u is too small", in->size);
	memcpy(o, in, in->size < sizeof *o ? in->size : sizeof *o);
	if (!(o->overlap >= 0 && o->overlap < 1))
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window options: overlap %g is out of range, expected [0, 1)",
		               o->overlap);
	if (o->blend != SEGC_BLEND_CONSTANT && o->blend != SEGC_BLEND_GAUSSIAN)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window options: blend %d, expected 0 (constant) or 1 (gaussian)",
		               o->blend);
	if (!(o->sigma_scale > 0 && o->sigma_scale < 1e6))
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window options: sigma_scale %g, expected a positive number",
		               o->sigma_scale);
	if (o->positions != SEGC_POSITIONS_MONAI && o->positions != SEGC_POSITIONS_NNUNET)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window options: positions %d, expected 0 (monai) or 1 (nnunet)",
		               o->positions);
	if (o->mirror_axes > 7)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window options: mirror_axes %u, expected a mask of bits 0..2",
		               o->mirror_axes);
	if (o->normalize < SEGC_NORM_NONE || o->normalize > SEGC_NORM_ZSCORE_NONZERO)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window options: normalize %d, expected 0, 1 or 2", o->normalize);
	return SEGC_OK;
}

int64_t
rt_window_positions(int64_t n, int64_t roi, double overlap, int nnunet, int64_t *pos)
{
	int64_t num, i;

	if (nnunet) {
		/* nnU-Net: ceil((n - roi) / step) + 1 steps spread evenly, rounded half to even
		 * as np.round does (nearbyint in the default rounding mode) */
		double step = (double)roi * (1.0 - overlap);
		double actual;

		num = (int64_t)ceil((double)(n - roi) / step) + 1;
		actual = num > 1 ? (double)(n - roi) / (double)(num - 1) : 0;
		for (i = 0; pos && i < num; i++)
			pos[i] = (int64_t)nearbyint(actual * (double)i);
		return num;
	}
	/* MONAI: _get_scan_interval + dense_patch_slices */
	int64_t interval = roi == n ? roi : (int64_t)((double)roi * (1.0 - overlap));
	if (interval <= 0)
		interval = 1;
	int64_t cap = (n + interval - 1) / interval;
	num = 1;
	for (i = 0; i < cap; i++)
		if (i * interval + roi >= n) {
			num = i + 1;
			break;
		}
	for (i = 0; pos && i < num; i++) {
		int64_t s = i * interval, over = s + roi - n;
		pos[i] = s - (over > 0 ? over : 0);
	}
	return num;
}

/* the engine's window geometry: input [N, C, rd, rh, rw], output 0 [N, K, rd, rh, rw] */
typedef struct {
	int64_t N, C, K, R;                 /* R: voxels per window */
	int64_t roi[3], S[3], P[3], pad[3]; /* ROI, volume, padded volume, padding before */
	int64_t npos[3];
	int nflips;
} Geo;

static segc_status
geometry(const segc_api *api, const segc_engine_t *e, const int64_t shape[3], Geo *g, char *err,
         size_t errlen)
{
	segc_tensor_info in, out;
	int a;

	memset(g, 0, sizeof *g);
	if (!shape)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "window: shape is NULL");
	if (api->num_inputs(e) != 1)
		return rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,
		               "window: the engine has %d inputs; sliding windows need exactly 1",
		               api->num_inputs(e));
	if (api->num_outputs(e) < 1 || api->input_info(e, 0, &in) != SEGC_OK ||
	    api->output_info(e, 0, &out) != SEGC_OK)
		return rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,
		               "window: the engine has no output");
	if (in.dtype != SEGC_F32 || in.rank != 5)
		return rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,
		               "window: input '%s' must be f32 [N, C, D, H, W]", in.name);
	if (out.dtype != SEGC_F32 || out.rank != 5 || out.shape[0] != in.shape[0] ||
	    out.shape[2] != in.shape[2] || out.shape[3] != in.shape[3] ||
	    out.shape[4] != in.shape[4])
		return rt_errf(
		    SEGC_ERR_UNSUPPORTED, err, errlen,
		    "window: output '%s' must be f32 [N, K, D, H, W] with the input's N, "
		    "D, H, W",
		    out.name);
	g->N = in.shape[0];
	g->C = in.shape[1];
	g->K = out.shape[1];
	g->R = in.shape[2] * in.shape[3] * in.shape[4];
	for (a = 0; a < 3; a++) {
		g->roi[a] = in.shape[2 + a];
		g->S[a] = shape[a];
		if (shape[a] < 1 || shape[a] > ((int64_t)1 << 24))
			return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			               "window: volume axis %d has size %lld, expected 1 .. 2^24",
			               a, (long long)shape[a]);
		g->P[a] = shape[a] > g->roi[a] ? shape[a] : g->roi[a];
		g->pad[a] = (g->P[a] - shape[a]) / 2;
	}
	if (g->S[0] * g->S[1] > ((int64_t)1 << 40) / g->S[2])
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "window: volume too large");
	return SEGC_OK;
}

int64_t
rt_window_count(const segc_api *api, const segc_engine_t *e, const segc_window_options *oin,
                const int64_t shape[3])
{
	segc_window_options o;
	Geo g;
	char err[8];
	int64_t n = 1;

	if (!e || get_options(oin, &o, err, sizeof err) != SEGC_OK ||
	    geometry(api, e, shape, &g, err, sizeof err) != SEGC_OK)
		return -1;
	for (int a = 0; a < 3; a++)
		n *= rt_window_positions(g.P[a], g.roi[a], o.overlap, o.positions, NULL);
	return n << __builtin_popcount(o.mirror_axes);
}

/* MONAI's importance map: ones, or the product over axes of the erf-discretised Gaussian
 * (truncated at 4 sigma) centred at roi // 2, divided by its maximum; zeros are raised to the
 * smallest non-zero value so that no voxel has weight 0. */
static void
importance(float *imp, const int64_t roi[3], int gaussian, double sigma_scale, double *g1)
{
	int64_t r, i, z, y, x, R = roi[0] * roi[1] * roi[2];
	double *g[3] = {g1, g1 + roi[0], g1 + roi[0] + roi[1]};
	float mn = 1;

	if (!gaussian) {
		for (r = 0; r < R; r++)
			imp[r] = 1;
		return;
	}
	for (int a = 0; a < 3; a++) {
		double sigma = (double)roi[a] * sigma_scale, t = 0.70710678 / sigma;
		int64_t tail = (int64_t)(fmax(sigma * 4.0, 0.5) + 0.5), c = roi[a] / 2;
		double k0 = 0.5 * (erf(t * 0.5) - erf(t * -0.5));
		for (i = 0; i < roi[a]; i++) {
			double d = (double)(i - c);
			double k = 0.5 * (erf(t * (d + 0.5)) - erf(t * (d - 0.5)));
			g[a][i] = (i - c <= tail && c - i <= tail && k > 0) ? k / k0 : 0;
		}
	}
	r = 0;
	for (z = 0; z < roi[0]; z++)
		for (y = 0; y < roi[1]; y++)
			for (x = 0; x < roi[2]; x++, r++) {
				imp[r] = (float)(g[0][z] * g[1][y] * g[2][x]);
				if (imp[r] > 0 && imp[r] < mn)
					mn = imp[r];
			}
	for (r = 0; r < R; r++)
		if (imp[r] < mn)
			imp[r] = mn;
}

/* per-channel z-score: *shift and *scale so that x' = (x - shift) * scale */
static void
norm_stats(const float *img, int64_t V, int mode, double *shift, double *scale)
{
	double s = 0, ss = 0, n = 0, mean, var;

	*shift = 0;
	*scale = 1;
	if (mode == SEGC_NORM_NONE)
		return;
	for (int64_t v = 0; v < V; v++)
		if (mode == SEGC_NORM_ZSCORE || img[v] != 0) {
			s += img[v];
			n += 1;
		}
	if (n == 0)
		return;
	mean = s / n;
	for (int64_t v = 0; v < V; v++)
		if (mode == SEGC_NORM_ZSCORE || img[v] != 0)
			ss += (img[v] - mean) * (img[v] - mean);
	var = ss / n; /* population variance, as MONAI's NormalizeIntensity */
	*shift = mean;
	*scale = var > 0 ? 1.0 / sqrt(var) : 1.0;
}

typedef struct {
	const segc_api *api;
	segc_engine_t *e;
	segc_window_options o;
	Geo g;
	const float *image;
	float *out, *cnt, *imp, *win, *ibuf, *obuf, *tmp; /* tmp: an output flipped back */
	double *shift, *scale;
	void **outs;
	int64_t (*slot)[4]; /* per batch entry: window start z, y, x (padded coords), flip */
	int64_t done, total;
} Win;

/* the window at start (padded coordinates), normalised, zeros outside the volume */
static void
extract(Win *w, const int64_t st[3])
{
	const Geo *g = &w->g;
	int64_t V = g->S[0] * g->S[1] * g->S[2], r = 0;

	for (int64_t c = 0; c < g->C; c++) {
		const float *src = w->image + c * V;
		int nz = w->o.normalize == SEGC_NORM_ZSCORE_NONZERO;
		for (int64_t z = 0; z < g->roi[0]; z++) {
			int64_t iz = st[0] + z - g->pad[0];
			for (int64_t y = 0; y < g->roi[1]; y++) {
				int64_t iy = st[1] + y - g->pad[1];
				for (int64_t x = 0; x < g->roi[2]; x++, r++) {
					int64_t ix = st[2] + x - g->pad[2];
					float v = 0;
					if (iz >= 0 && iz < g->S[0] && iy >= 0 && iy < g->S[1] &&
					    ix >= 0 && ix < g->S[2]) {
						v = src[(iz * g->S[1] + iy) * g->S[2] + ix];
						if (!(nz && v == 0))
							v = (float)((v - w->shift[c]) *
							            w->scale[c]);
					}
					w->win[r] = v;
				}
			}
		}
	}
}

/* dst = src flipped over the axes in f (bit 0 D, 1 H, 2 W), for n channels of a window;
 * a flip is its own inverse, so the same copy maps outputs back */
static void
flip_copy(float *dst, const float *src, int64_t n, const int64_t roi[3], int f)
{
	int64_t R = roi[0] * roi[1] * roi[2];

	for (int64_t c = 0; c < n; c++)
		for (int64_t z = 0; z < roi[0]; z++) {
			int64_t sz = f & 1 ? roi[0] - 1 - z : z;
			for (int64_t y = 0; y < roi[1]; y++) {
				int64_t sy = f & 2 ? roi[1] - 1 - y : y;
				const float *s = src + c * R + (sz * roi[1] + sy) * roi[2];
				float *d = dst + c * R + (z * roi[1] + y) * roi[2];
				if (f & 4)
					for (int64_t x = 0; x < roi[2]; x++)
						d[x] = s[roi[2] - 1 - x];
				else
					memcpy(d, s, (size_t)roi[2] * sizeof *d);
			}
		}
}

/* run the b filled batch entries, add their weighted, flipped-back outputs */
static segc_status
flush(Win *w, int b, char *err, size_t errlen)
{
	const Geo *g = &w->g;
	const void *ins[1] = {w->ibuf};
	int64_t V = g->S[0] * g->S[1] * g->S[2];
	float wt = 1.0f / (float)g->nflips;
	segc_status st;

	/* unused entries of a last, partial batch: zeros, so results never depend on stale data */
	if (b < g->N)
		memset(w->ibuf + b * g->C * g->R, 0, (size_t)((g->N - b) * g->C * g->R) * 4);
	st = w->api->run(w->e, ins, w->outs);
	if (st != SEGC_OK)
		return st;
	for (int i = 0; i < b; i++) {
		const int64_t *s = w->slot[i];
		flip_copy(w->tmp, w->obuf + i * g->K * g->R, g->K, g->roi, (int)s[3]);
		for (int64_t k = 0; k < g->K; k++) {
			const float *src = w->tmp + k * g->R;
			float *dst = w->out + k * V;
			int64_t r = 0;
			for (int64_t z = 0; z < g->roi[0]; z++) {
				int64_t iz = s[0] + z - g->pad[0];
				for (int64_t y = 0; y < g->roi[1]; y++, r += g->roi[2]) {
					int64_t iy = s[1] + y - g->pad[1];
					if (iz < 0 || iz >= g->S[0] || iy < 0 || iy >= g->S[1])
						continue;
					for (int64_t x = 0; x < g->roi[2]; x++) {
						int64_t ix = s[2] + x - g->pad[2];
						if (ix >= 0 && ix < g->S[2])
							dst[(iz * g->S[1] + iy) * g->S[2] + ix] +=
							    w->imp[r + x] * src[r + x] * wt;
					}
				}
			}
		}
	}
	w->done += b;
	if (w->o.progress && w->o.progress(w->o.user, w->done, w->total) != 0)
		return rt_errf(SEGC_ERR_STATE, err, errlen,
		               "window: cancelled by the progress callback");
	return SEGC_OK;
}

/* add the importance map of the window at st to the weight sum of the volume's voxels */
static void
count_window(Win *w, const int64_t st[3])
{
	const Geo *g = &w->g;
	int64_t r = 0;

	for (int64_t z = 0; z < g->roi[0]; z++)
		for (int64_t y = 0; y < g->roi[1]; y++)
			for (int64_t x = 0; x < g->roi[2]; x++, r++) {
				int64_t iz = st[0] + z - g->pad[0], iy = st[1] + y - g->pad[1],
				        ix = st[2] + x - g->pad[2];
				if (iz >= 0 && iz < g->S[0] && iy >= 0 && iy < g->S[1] && ix >= 0 &&
				    ix < g->S[2])
					w->cnt[(iz * g->S[1] + iy) * g->S[2] + ix] += w->imp[r];
			}
}

static segc_status
slide(Win *w, int64_t *pos[3], char *err, size_t errlen)
{
	const Geo *g = &w->g;
	int64_t st[3];
	int b = 0;
	segc_status s;

	for (int64_t i = 0; i < g->npos[0]; i++)
		for (int64_t j = 0; j < g->npos[1]; j++)
			for (int64_t k = 0; k < g->npos[2]; k++) {
				st[0] = pos[0][i];
				st[1] = pos[1][j];
				st[2] = pos[2][k];
				extract(w, st);
				count_window(w, st);
				for (int f = 0; f < 8; f++) {
					if (f & ~(int)w->o.mirror_axes)
						continue;
					flip_copy(w->ibuf + b * g->C * g->R, w->win, g->C, g->roi,
					          f);
					memcpy(w->slot[b], st, sizeof st);
					w->slot[b][3] = f;
					if (++b == g->N) {
						if ((s = flush(w, b, err, errlen)) != SEGC_OK)
							return s;
						b = 0;
					}
				}
			}
	if (b > 0)
		return flush(w, b, err, errlen);
	return SEGC_OK;
}

segc_status
rt_window_run(const segc_api *api, segc_engine_t *e, const segc_window_options *oin,
              const float *image, const int64_t shape[3], float *out, char *err, size_t errlen)
{
	Win w;
	Geo *g = &w.g;
	int64_t *pos[3] = {NULL, NULL, NULL}, V, npass = 1;
	double *g1 = NULL;
	segc_status st;
	int nout, i, a;

	memset(&w, 0, sizeof w);
	w.api = api;
	w.e = e;
	w.image = image;
	w.out = out;
	if (!e)
		return SEGC_ERR_INVALID_ARGUMENT;
	if ((st = get_options(oin, &w.o, err, errlen)) != SEGC_OK)
		return st;
	if ((st = geometry(api, e, shape, g, err, errlen)) != SEGC_OK)
		return st;
	if (!image || !out)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "window: image or out is NULL");
	g->nflips = 1 << __builtin_popcount(w.o.mirror_axes);
	V = g->S[0] * g->S[1] * g->S[2];
	nout = api->num_outputs(e);

	st = SEGC_ERR_NO_MEMORY;
	w.cnt = calloc((size_t)V, sizeof *w.cnt);
	w.imp = malloc((size_t)g->R * sizeof *w.imp);
	w.win = malloc((size_t)(g->C * g->R) * sizeof *w.win);
	w.tmp = malloc((size_t)(g->K * g->R) * sizeof *w.tmp);
	w.ibuf = malloc((size_t)(g->N * g->C * g->R) * sizeof *w.ibuf);
	w.obuf = malloc((size_t)(g->N * g->K * g->R) * sizeof *w.obuf);
	w.shift = malloc((size_t)g->C * sizeof *w.shift);
	w.scale = malloc((size_t)g->C * sizeof *w.scale);
	w.slot = malloc((size_t)g->N * sizeof *w.slot);
	w.outs = calloc((size_t)nout, sizeof *w.outs);
	g1 = malloc((size_t)(g->roi[0] + g->roi[1] + g->roi[2]) * sizeof *g1);
	if (!w.cnt || !w.imp || !w.win || !w.tmp || !w.ibuf || !w.obuf || !w.shift || !w.scale ||
	    !w.slot || !w.outs || !g1)
		goto nomem;
	w.outs[0] = w.obuf;
	for (i = 1; i < nout; i++) {
		segc_tensor_info ti;
		api->output_info(e, i, &ti);
		int64_t n = rt_numel(ti.rank, ti.shape);
		w.outs[i] = malloc((size_t)(n > 0 ? n : 1) * 8);
		if (!w.outs[i])
			goto nomem;
	}
	for (a = 0; a < 3; a++) {
		g->npos[a] =
		    rt_window_positions(g->P[a], g->roi[a], w.o.overlap, w.o.positions, NULL);
		pos[a] = malloc((size_t)g->npos[a] * sizeof *pos[a]);
		if (!pos[a])
			goto nomem;
		rt_window_positions(g->P[a], g->roi[a], w.o.overlap, w.o.positions, pos[a]);
		npass *= g->npos[a];
	}
	w.total = npass * g->nflips;
	for (int64_t c = 0; c < g->C; c++)
		norm_stats(image + c * V, V, w.o.normalize, &w.shift[c], &w.scale[c]);
	importance(w.imp, g->roi, w.o.blend == SEGC_BLEND_GAUSSIAN, w.o.sigma_scale, g1);
	memset(out, 0, (size_t)(g->K * V) * sizeof *out);
	st = slide(&w, pos, err, errlen);
	if (st == SEGC_OK)
		for (int64_t k = 0; k < g->K; k++)
			for (int64_t v = 0; v < V; v++)
				out[k * V + v] /= w.cnt[v];
	goto done;
nomem:
	st = rt_errf(SEGC_ERR_NO_MEMORY, err, errlen,
	             "window: cannot allocate the work buffers for a [%lld, %lld, %lld] volume",
	             (long long)g->S[0], (long long)g->S[1], (long long)g->S[2]);
done:
	for (i = 1; w.outs && i < nout; i++)
		free(w.outs[i]);
	for (a = 0; a < 3; a++)
		free(pos[a]);
	free(w.outs);
	free(g1);
	free(w.slot);
	free(w.scale);
	free(w.shift);
	free(w.obuf);
	free(w.ibuf);
	free(w.win);
	free(w.tmp);
	free(w.imp);
	free(w.cnt);
	return st;
}

segc_status
rt_postprocess(const segc_post_options *p, float *scores, int64_t nvox, int32_t *labels, char *err,
               size_t errlen)
{
	int64_t K, v, k;
	int r;

	if (!p || !scores || nvox < 0)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "postprocess: options or scores is NULL");
	if (p->size < sizeof *p)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "postprocess: options size %u, expected %zu", p->size, sizeof *p);
	K = p->nclasses;
	if (K < 1 || p->activation < SEGC_ACT_NONE || p->activation > SEGC_ACT_SIGMOID)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "postprocess: %lld classes, activation %d", (long long)K,
		               p->activation);
	if (labels && p->activation == SEGC_ACT_SIGMOID && p->nregions < 1)
		return rt_errf(
		    SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		    "postprocess: sigmoid labels need regions (channel, label, threshold)");
	for (r = 0; labels && p->activation == SEGC_ACT_SIGMOID && r < p->nregions; r++)
		if (!p->region_channel || !p->region_label || !p->region_threshold ||
		    p->region_channel[r] < 0 || p->region_channel[r] >= K)
			return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			               "postprocess: region %d: channel %d is not one of the %lld "
			               "output channels",
			               r, p->region_channel ? p->region_channel[r] : -1,
			               (long long)K);
	for (v = 0; v < nvox; v++) {
		if (p->activation == SEGC_ACT_SOFTMAX) {
			float mx = scores[v];
			double sum = 0;
			for (k = 1; k < K; k++)
				mx = scores[k * nvox + v] > mx ? scores[k * nvox + v] : mx;
			for (k = 0; k < K; k++)
				sum += scores[k * nvox + v] = expf(scores[k * nvox + v] - mx);
			for (k = 0; k < K; k++)
				scores[k * nvox + v] = (float)(scores[k * nvox + v] / sum);
		} else if (p->activation == SEGC_ACT_SIGMOID) {
			for (k = 0; k < K; k++)
				scores[k * nvox + v] = 1.0f / (1.0f + expf(-scores[k * nvox + v]));
		}
		if (!labels)
			continue;
		if (p->activation == SEGC_ACT_SIGMOID) {
			int32_t l = 0;
			for (r = 0; r < p->nregions; r++)
				if (scores[p->region_channel[r] * nvox + v] >=
				    p->region_threshold[r])
					l = p->region_label[r];
			labels[v] = l;
		} else {
			int64_t best = 0;
			for (k = 1; k < K; k++)
				if (scores[k * nvox + v] > scores[best * nvox + v])
					best = k;
			labels[v] = p->label_map ? p->label_map[best] : (int32_t)best;
		}
	}
	return SEGC_OK;
}
