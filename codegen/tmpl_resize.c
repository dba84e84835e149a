/* codegen/tmpl_resize.c -- upsample (nearest, trilinear) of NCDHW tensors, PyTorch semantics.
 *
 * The scale per axis is in/out when size is given, 1/scale when scale is given (PyTorch's
 * area_pixel_compute_scale), computed in f32 like PyTorch's CPU kernels.
 *   nearest:    src = min(floor(dst * scale), in - 1)                    (legacy 'nearest')
 *   trilinear:  src = align_corners ? dst * (in-1)/(out-1) : max((dst + 0.5) * scale - 0.5, 0);
 *               i0 = floor(src), i1 = min(i0 + 1, in - 1), l1 = src - i0, l0 = 1 - l1;
 *               the 8 neighbours weighted by the products of l0/l1.
 * Loops over the output: parallel over N*C*OD*OH, vector over OW (each output vector gathers
 * its 8 corners).  Trilinear on the CPU is separable instead (resize_rows): parallel over
 * N*C*OD, and per output row (od, oh) the d/h blend of the 4 source rows -- contiguous vector
 * loads, weights uniform over the row -- into a row of IW floats in kernel scratch, then the
 * w blend out of that L1-resident row (2 gathers per output vector instead of 8 from memory):
 *   for p in [0, N*C*OD) parallel { for oh { for wi vector { t[p,wi] = sum_dh wd wh x[..] }
 *                                            for ow vector { y = l0 t[p,i0(ow)] + l1 t[..] } } }
 * On a GPU, trilinear by exactly 2 on every axis without align_corners (SegResNet's decoder)
 * is one thread per input voxel (up2_gpu): output 2i + p blends source i - 1 + p and i + p
 * (clamped) with weights 1/4, 3/4 (p = 0) or 3/4, 1/4 (p = 1), which is PyTorch's formula at
 * scale 2 border included; the thread loads the 27 neighbours once and writes its 2 x 2 x 2
 * outputs, blending separably (w, then h, then d): 27 loads for 8 outputs instead of 64, and
 * the index arithmetic once.  $SEGC_GPU_UP2=0: the gather form below. */
#include "tmpl.h"

#include <stdlib.h>
#include <string.h>

/* the separable trilinear form's scratch row (floats per parallel iteration) is capped */
enum { RESIZE_SCRATCH_MAX = 8 << 20 };

/* per-axis source position (f32) for output index o */
static KNode *
src_pos(Lower *L, KNode *block, KNode *o, int64_t in, int64_t out, float scale, int linear,
        int align)
{
	KNode *of = kir_cast(L->p, KT_F32, o);
	if (!linear)
		return kir_bin(L->p, KB_MUL, of, kir_f32(L->p, scale));
	if (align) {
		float sc = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
		return kir_bin(L->p, KB_MUL, of, kir_f32(L->p, sc));
	}
	KNode *v = kir_bin(L->p, KB_ADD, of, kir_f32(L->p, 0.5));
	v = kir_bin(L->p, KB_MUL, v, kir_f32(L->p, scale));
	v = kir_bin(L->p, KB_SUB, v, kir_f32(L->p, 0.5));
	return kir_bin(L->p, KB_MAX, v, kir_f32(L->p, 0));
}

typedef struct {
	KNode *i0, *i1, *l0, *l1;
} Lerp;

/* the per-axis interpolation of output index o: source indices and weights, as lets */
static Lerp
lerp(Lower *L, KNode *block, KNode *o, int64_t in, int64_t out, float scale, int align)
{
	Lerp z;
	KNode *src = lw_let(L, block, "src", src_pos(L, block, o, in, out, scale, 1, align));
	KNode *fl = kir_cast(L->p, KT_I64, kir_un(L->p, KU_FLOOR, src));
	z.i0 = lw_let(L, block, "i0", kir_bin(L->p, KB_MIN, fl, ix_c(L, in - 1)));
	z.i1 = lw_let(L, block, "i1",
	              kir_bin(L->p, KB_MIN, ix_add(L, z.i0, ix_c(L, 1)), ix_c(L, in - 1)));
	z.l1 = lw_let(L, block, "l1", kir_bin(L->p, KB_SUB, src, kir_cast(L->p, KT_F32, z.i0)));
	z.l0 = lw_let(L, block, "l0", kir_bin(L->p, KB_SUB, kir_f32(L->p, 1), z.l1));
	return z;
}

static KNode *
fma2(Lower *L, KNode *a, KNode *x, KNode *b, KNode *y)
{
	return kir_bin(L->p, KB_ADD, kir_bin(L->p, KB_MUL, a, x), kir_bin(L->p, KB_MUL, b, y));
}

/* trilinear, separable (the header comment); 1 when it does not apply */
static int
resize_rows(Lower *L, const float *scale, int align)
{
	const Node *r = L->root;
	const Type *it = lw_type(L, r->in[0]), *ot = lw_type(L, r->out[0]);
	int64_t ID = it->dims[2], IH = it->dims[3], IW = it->dims[4];
	int64_t OH = ot->dims[3], OW = ot->dims[4];
	int64_t dims[3] = {ot->dims[0], ot->dims[1], ot->dims[2]};
	int64_t par = dims[0] * dims[1] * dims[2];
	KNode *idx[5], *ohi, *wi, *ow;
	Coord c;

	if (L->p->gpu || cg_knob("SEGC_RESIZE_GATHER") || par * IW * 4 > RESIZE_SCRATCH_MAX)
		return 1;
	int tb = lw_scratch(L, DT_F32, par * IW, "row");
	int xb = lw_buf(L, r->in[0]);
	KNode *body = lw_nest(L, dims, 3, 0, idx);
	KNode *p = lw_simple(L, body, ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, idx[0], dims[1]),
	                                                        idx[1]), dims[2]), idx[2]));
	KNode *trow = lw_simple(L, body, ix_mul(L, p, IW));
	KNode *xnc = lw_simple(L, body, ix_mul(L, ix_add(L, ix_mul(L, idx[0], it->dims[1]), idx[1]),
	                                       ID * IH * IW));
	Lerp d = lerp(L, body, idx[2], ID, dims[2], scale[0], align);
	KNode *hl = lw_loop(L, body, "oh", ix_c(L, 0), ix_c(L, OH), LOOP_SERIAL, &ohi);
	Lerp h = lerp(L, hl->body, ohi, IH, OH, scale[1], align);
	KNode *rows[4];
	for (int k = 0; k < 4; k++) {
		KNode *dd = k & 2 ? d.i1 : d.i0, *hh = k & 1 ? h.i1 : h.i0;
		KNode *off = ix_add(L, ix_mul(L, dd, IH * IW), ix_mul(L, hh, IW));
		rows[k] = lw_simple(L, hl->body, ix_add(L, xnc, off));
	}
	KNode *tl = lw_loop(L, hl->body, "wi", ix_c(L, 0), ix_c(L, IW), LOOP_VECTOR, &wi);
	KNode *xr[4];
	for (int k = 0; k < 4; k++)
		xr[k] = kir_load(L->p, L->k, xb, ix_add(L, rows[k], wi));
	KNode *v = fma2(L, d.l0, fma2(L, h.l0, xr[0], h.l1, xr[1]), d.l1,
	                fma2(L, h.l0, xr[2], h.l1, xr[3]));
	kir_append(L->p, tl->body, kir_store(L->p, tb, ix_add(L, trow, wi), v));
	/* the w blend: chunks of V lanes whose body is a loop over the 2 taps, so that the CPU
	 * emitter widens it (LLVM's vectorizer left the plain loop scalar: 2.9 GB/s) */
	int64_t V = 0;
	for (int64_t v = 16; v >= 4 && !V; v /= 2)
		V = OW % v == 0 ? v : 0;
	KNode *ob = hl->body, *obi = ix_c(L, 0);
	if (V)
		ob = lw_loop(L, ob, "owb", ix_c(L, 0), ix_c(L, OW / V), LOOP_SERIAL, &obi)->body;
	KNode *ol = lw_loop(L, ob, "ow", ix_c(L, 0), ix_c(L, V ? V : OW), LOOP_VECTOR, &ow);
	ow = lw_simple(L, ol->body, ix_add(L, ix_mul(L, obi, V), ow));
	Lerp w = lerp(L, ol->body, ow, IW, OW, scale[2], align);
	KNode *acc = lw_let(L, ol->body, "acc", kir_f32(L->p, 0)), *t;
	KNode *tap = lw_loop(L, ol->body, "tap", ix_c(L, 0), ix_c(L, 2), LOOP_SERIAL, &t);
	KNode *first = kir_bin(L->p, KB_EQ, t, ix_c(L, 0));
	KNode *ti = kir_select(L->p, first, w.i0, w.i1), *tw = kir_select(L->p, first, w.l0, w.l1);
	KNode *tv = kir_load(L->p, L->k, tb, ix_add(L, trow, ti));
	kir_append(L->p, tap->body, kir_assign(L->p, acc->var,
	                                       kir_bin(L->p, KB_ADD, acc,
	                                               kir_bin(L->p, KB_MUL, tw, tv))));
	idx[3] = ohi, idx[4] = ow;
	coord_full(&c, ot, idx);
	return lw_output(L, ol->body, &c, acc);
}

/* a*x + b*y with constant weights */
static KNode *
blend(Lower *L, double a, KNode *x, double b, KNode *y)
{
	return fma2(L, kir_f32(L->p, a), x, kir_f32(L->p, b), y);
}

/* trilinear x2 on a GPU (the header comment); 1 when it does not apply */
static int
up2_gpu(Lower *L, int align)
{
	const Node *r = L->root;
	const Type *it = lw_type(L, r->in[0]), *ot = lw_type(L, r->out[0]);
	const char *env = cg_knob("SEGC_GPU_UP2");
	KNode *idx[5], *nb[3][3], *od[5];
	Coord c;

	if (!L->p->gpu || align || it->rank != 5 || (env && strcmp(env, "0") == 0))
		return 1;
	for (int a = 2; a < 5; a++)
		if (ot->dims[a] != 2 * it->dims[a])
			return 1;
	KNode *body = lw_nest(L, it->dims, 5, 0, idx);
	int xb = lw_buf(L, r->in[0]);
	int64_t D = it->dims[2], H = it->dims[3], W = it->dims[4];
	KNode *nc = ix_add(L, ix_mul(L, idx[0], it->dims[1]), idx[1]);
	KNode *xbase = lw_simple(L, body, ix_mul(L, nc, D * H * W));
	/* the clamped neighbours i - 1, i, i + 1 per axis, as offsets */
	const int64_t st[3] = {H * W, W, 1}, n[3] = {D, H, W};
	for (int a = 0; a < 3; a++) {
		KNode *i = idx[2 + a];
		KNode *lo = kir_bin(L->p, KB_MAX, ix_add(L, i, ix_c(L, -1)), ix_c(L, 0));
		KNode *hi = kir_bin(L->p, KB_MIN, ix_add(L, i, ix_c(L, 1)), ix_c(L, n[a] - 1));
		nb[a][0] = lw_simple(L, body, ix_mul(L, lo, st[a]));
		nb[a][1] = lw_simple(L, body, ix_mul(L, i, st[a]));
		nb[a][2] = lw_simple(L, body, ix_mul(L, hi, st[a]));
	}
	/* w blend of the 9 rows, then h, then d: v[dr][hr][pw] -> u[dr][ph][pw] -> out */
	KNode *v[3][3][2], *u[3][2][2];
	for (int dr = 0; dr < 3; dr++)
		for (int hr = 0; hr < 3; hr++) {
			KNode *row = ix_add(L, xbase, ix_add(L, nb[0][dr], nb[1][hr]));
			row = lw_simple(L, body, row);
			KNode *x[3];
			for (int wr = 0; wr < 3; wr++)
				x[wr] = lw_let(L, body, "x",
				               kir_load(L->p, L->k, xb, ix_add(L, row, nb[2][wr])));
			v[dr][hr][0] = lw_let(L, body, "vw", blend(L, 0.25, x[0], 0.75, x[1]));
			v[dr][hr][1] = lw_let(L, body, "vw", blend(L, 0.75, x[1], 0.25, x[2]));
		}
	for (int dr = 0; dr < 3; dr++)
		for (int pw = 0; pw < 2; pw++) {
			u[dr][0][pw] = lw_let(L, body, "vh",
			                      blend(L, 0.25, v[dr][0][pw], 0.75, v[dr][1][pw]));
			u[dr][1][pw] = lw_let(L, body, "vh",
			                      blend(L, 0.75, v[dr][1][pw], 0.25, v[dr][2][pw]));
		}
	od[0] = idx[0], od[1] = idx[1];
	for (int q = 0; q < 8; q++) {
		int pd = q >> 2, ph = (q >> 1) & 1, pw = q & 1;
		KNode *y = pd ? blend(L, 0.75, u[1][ph][pw], 0.25, u[2][ph][pw])
		              : blend(L, 0.25, u[0][ph][pw], 0.75, u[1][ph][pw]);
		od[2] = ix_add(L, ix_mul(L, idx[2], 2), ix_c(L, pd));
		od[3] = ix_add(L, ix_mul(L, idx[3], 2), ix_c(L, ph));
		od[4] = ix_add(L, ix_mul(L, idx[4], 2), ix_c(L, pw));
		coord_full(&c, ot, od);
		if (lw_output(L, body, &c, lw_let(L, body, "y", y)) < 0)
			return -1;
	}
	return 0;
}

/* root: upsample, mode nearest or trilinear */
int
tmpl_resize(Lower *L)
{
	const Node *r = L->root;
	const Type *it = lw_type(L, r->in[0]), *ot = lw_type(L, r->out[0]);
	const char *mode = ir_attr_str(r, "mode");
	const Attr *sc = ir_attr(r, "scale");
	int linear, align = (int)ir_attr_int(r, "align_corners");
	int64_t in[3];
	KNode *idx[5];
	Coord c;

	if (!mode || strcmp(mode, "nearest") == 0)
		linear = 0;
	else if (strcmp(mode, "trilinear") == 0 || strcmp(mode, "linear") == 0)
		linear = 1;
	else
		return lw_fail(L, "upsample mode must be nearest or trilinear");
	float scales[3];
	for (int a = 0; a < 3; a++) {
		int64_t out = ot->dims[2 + a];
		in[a] = it->dims[2 + a];
		if (sc->present && sc->floats[a] > 0)
			scales[a] = (float)(1.0 / sc->floats[a]);
		else
			scales[a] = (float)in[a] / (float)out;
	}
	if (linear) {
		int rc = resize_rows(L, scales, align);
		if (rc == 1)
			rc = up2_gpu(L, align);
		if (rc != 1)
			return rc;
	}
	KNode *body = lw_nest(L, ot->dims, 5, 1, idx);
	coord_full(&c, ot, idx);
	int xb = lw_buf(L, r->in[0]);
	KNode *nc = ix_add(L, ix_mul(L, idx[0], it->dims[1]), idx[1]);
	KNode *xbase = lw_simple(L, body, ix_mul(L, nc, it->dims[2] * it->dims[3] * it->dims[4]));
	Lerp z[3];
	for (int a = 0; a < 3; a++) {
		if (linear) {
			z[a] = lerp(L, body, idx[2 + a], in[a], ot->dims[2 + a], scales[a], align);
			continue;
		}
		KNode *src = lw_let(L, body, "src", src_pos(L, body, idx[2 + a], in[a],
		                                            ot->dims[2 + a], scales[a], 0, align));
		KNode *fl = kir_cast(L->p, KT_I64, kir_un(L->p, KU_FLOOR, src));
		z[a].i0 = lw_let(L, body, "i0", kir_bin(L->p, KB_MIN, fl, ix_c(L, in[a] - 1)));
	}
	if (!linear) {
		KNode *xi = ix_add(L, xbase, ix_add(L, ix_mul(L, z[0].i0, in[1] * in[2]),
		                                    ix_add(L, ix_mul(L, z[1].i0, in[2]), z[2].i0)));
		return lw_output(L, body, &c, kir_load(L->p, L->k, xb, xi));
	}
	KNode *sum = NULL;
	for (int corner = 0; corner < 8; corner++) {
		const Lerp *d = &z[0], *h = &z[1], *w = &z[2];
		KNode *id = corner & 4 ? d->i1 : d->i0, *ih = corner & 2 ? h->i1 : h->i0;
		KNode *iw = corner & 1 ? w->i1 : w->i0;
		KNode *wgt = kir_bin(L->p, KB_MUL, kir_bin(L->p, KB_MUL, corner & 4 ? d->l1 : d->l0,
		                                           corner & 2 ? h->l1 : h->l0),
		                     corner & 1 ? w->l1 : w->l0);
		KNode *xi = ix_add(L, xbase, ix_add(L, ix_mul(L, id, in[1] * in[2]),
		                                    ix_add(L, ix_mul(L, ih, in[2]), iw)));
		KNode *t = kir_bin(L->p, KB_MUL, wgt, kir_load(L->p, L->k, xb, xi));
		sum = sum ? kir_bin(L->p, KB_ADD, sum, t) : t;
	}
	return lw_output(L, body, &c, sum);
}
