/* codegen/tmpl_resize.c -- upsample (nearest, trilinear) of NCDHW tensors, PyTorch semantics.
 *
 * The scale per axis is in/out when size is given, 1/scale when scale is given (PyTorch's
 * area_pixel_compute_scale), computed in f32 like PyTorch's CPU kernels.
 *   nearest:    src = min(floor(dst * scale), in - 1)                    (legacy 'nearest')
 *   trilinear:  src = align_corners ? dst * (in-1)/(out-1) : max((dst + 0.5) * scale - 0.5, 0);
 *               i0 = floor(src), i1 = min(i0 + 1, in - 1), l1 = src - i0, l0 = 1 - l1;
 *               the 8 neighbours weighted by the products of l0/l1.
 * Loops over the output: parallel over N*C*OD*OH, vector over OW. */
#include "tmpl.h"

#include <string.h>

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
	KNode *idx[5], *i0[3], *i1[3], *l0[3], *l1[3];
	Coord c;

	if (!mode || strcmp(mode, "nearest") == 0)
		linear = 0;
	else if (strcmp(mode, "trilinear") == 0 || strcmp(mode, "linear") == 0)
		linear = 1;
	else
		return lw_fail(L, "upsample mode must be nearest or trilinear");
	KNode *body = lw_nest(L, ot->dims, 5, 1, idx);
	coord_full(&c, ot, idx);
	int xb = lw_buf(L, r->in[0]);
	KNode *nc = ix_add(L, ix_mul(L, idx[0], it->dims[1]), idx[1]);
	KNode *xbase = lw_simple(L, body, ix_mul(L, nc, it->dims[2] * it->dims[3] * it->dims[4]));
	for (int a = 0; a < 3; a++) {
		int64_t out = ot->dims[2 + a];
		float scale;
		in[a] = it->dims[2 + a];
		if (sc->present && sc->floats[a] > 0)
			scale = (float)(1.0 / sc->floats[a]);
		else
			scale = (float)in[a] / (float)out;
		KNode *src = lw_let(L, body, "src", src_pos(L, body, idx[2 + a], in[a], out, scale,
		                                            linear, align));
		KNode *fl = kir_cast(L->p, KT_I64, kir_un(L->p, KU_FLOOR, src));
		i0[a] = lw_let(L, body, "i0", kir_bin(L->p, KB_MIN, fl, ix_c(L, in[a] - 1)));
		if (!linear)
			continue;
		i1[a] = lw_let(L, body, "i1", kir_bin(L->p, KB_MIN, ix_add(L, i0[a], ix_c(L, 1)),
		                                      ix_c(L, in[a] - 1)));
		l1[a] = lw_let(L, body, "l1", kir_bin(L->p, KB_SUB, src,
		                                      kir_cast(L->p, KT_F32, i0[a])));
		l0[a] = lw_let(L, body, "l0", kir_bin(L->p, KB_SUB, kir_f32(L->p, 1), l1[a]));
	}
	if (!linear) {
		KNode *xi = ix_add(L, xbase, ix_add(L, ix_mul(L, i0[0], in[1] * in[2]),
		                                    ix_add(L, ix_mul(L, i0[1], in[2]), i0[2])));
		return lw_output(L, body, &c, kir_load(L->p, L->k, xb, xi));
	}
	KNode *sum = NULL;
	for (int corner = 0; corner < 8; corner++) {
		KNode *id = corner & 4 ? i1[0] : i0[0], *ih = corner & 2 ? i1[1] : i0[1];
		KNode *iw = corner & 1 ? i1[2] : i0[2];
		KNode *wgt = kir_bin(L->p, KB_MUL, kir_bin(L->p, KB_MUL, corner & 4 ? l1[0] : l0[0],
		                                           corner & 2 ? l1[1] : l0[1]),
		                     corner & 1 ? l1[2] : l0[2]);
		KNode *xi = ix_add(L, xbase, ix_add(L, ix_mul(L, id, in[1] * in[2]),
		                                    ix_add(L, ix_mul(L, ih, in[2]), iw)));
		KNode *t = kir_bin(L->p, KB_MUL, wgt, kir_load(L->p, L->k, xb, xi));
		sum = sum ? kir_bin(L->p, KB_ADD, sum, t) : t;
	}
	return lw_output(L, body, &c, sum);
}
