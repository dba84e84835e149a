/* codegen/tmpl_conv_wino.c -- conv3d 3^3 (stride 1, pad 1, groups 1) on the CPU by Winograd
 * F(2x2x2, 3x3x3) (Lavin & Gray): 64 multiplies per 2x2x2 output tile and input channel
 * instead of 216.  With the 1-D matrices B^T (4x4), G (4x3) and A^T (2x4) applied along d, h
 * and w:  V = B^T d B (the 4^3 input tile d at 2t - 1), U = G g G^T (the 3^3 weights g),
 * Y[co] = A^T (sum_ci U[co, ci] . V[ci]) A (the tile's 8 outputs).
 * The kernel's loops (the lanes are VL = 16 or 8 tiles along w, widened by emit_llvm_vec.c;
 * the GEMM's lanes are R = 16 / VL rows of them):
 *   for (co block, ci chunk) parallel: for co in block vector: for ci in chunk:
 *     wino_u[xi][ci][co] = (G g[co, ci] G^T)[xi]                             xi = 0..63
 *   for (n, td) parallel: for th in steps of R: for tw0 in steps of VL:
 *     for r < R: for lane vector: for ci:
 *       for a < 4 (d slice): 16 x loads (stride 2, masked at the borders), B^T along w, h
 *         into a 4 x 16 tile (scratch)
 *       for k < 16 (h, w position): B^T along d, wino_v[slice][xi][ci][r*VL + lane] = V[xi]
 *     for xi, co block: for lane vector (16): acc[j] = 0; for ci:
 *       acc[j] += wino_u[xi][ci][co0 + j] (a broadcast) * wino_v[slice][xi][ci][lane]
 *       wino_m[slice][xi][co0 + j][lane] = acc[j]
 *     for r < R: for lane vector: for co: for a < 4: A^T along w, h of 16 wino_m loads;
 *       A^T along d, + bias, each of the 8 outputs through lw_output at
 *       (n, co, 2td + e, 2th + b, 2tw + c) (masked where outside: odd extents)
 * Each parallel iteration owns one slice of wino_v and wino_m (scratch is per kernel), so the
 * parallel loop is over (n, td) only.  Where it applies (wn_applies) and the measurements
 * behind it: docs/performance.md, "Winograd on the CPU".  SEGC_WINOGRAD=0 (compile time)
 * turns it off, SEGC_WINOGRAD=1 uses it on every conv it can lower (small ones too). */
#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

typedef struct {
	const Conv *cv;
	int64_t TD, TH, TW, VL, cob;
	int64_t GL, R; /* the GEMM's lanes: R rows of VL tiles (GL = R * VL) */
	/* elements from one xi to the next in wino_v / wino_m: padded by a cache line, as 64
	 * addresses 4 KiB apart (64 channels) share one set of the 8-way L1 */
	int64_t vxs, mxs;
	int xb, ub, vb, mb;
} Wino;

static KNode *
fadd(Lower *L, KNode *a, KNode *b)
{
	return kir_bin(L->p, KB_ADD, a, b);
}

static KNode *
fsub(Lower *L, KNode *a, KNode *b)
{
	return kir_bin(L->p, KB_SUB, a, b);
}

/* one 1-D transform of in[] into out[] (let-bound in blk); returns the outputs' count */
int
lw_wino_1d(Lower *L, KNode *blk, int kind, KNode **in, KNode **out)
{
	if (kind == WINO_BT) { /* [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]] */
		out[0] = lw_let(L, blk, "bt", fsub(L, in[0], in[2]));
		out[1] = lw_let(L, blk, "bt", fadd(L, in[1], in[2]));
		out[2] = lw_let(L, blk, "bt", fsub(L, in[2], in[1]));
		out[3] = lw_let(L, blk, "bt", fsub(L, in[1], in[3]));
		return 4;
	}
	if (kind == WINO_G) { /* [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]] */
		KNode *s = lw_let(L, blk, "gs",
		                  kir_bin(L->p, KB_MUL, fadd(L, in[0], in[2]), kir_f32(L->p, 0.5)));
		KNode *h = lw_let(L, blk, "gh", kir_bin(L->p, KB_MUL, in[1], kir_f32(L->p, 0.5)));
		out[0] = in[0];
		out[1] = lw_let(L, blk, "g", fadd(L, s, h));
		out[2] = lw_let(L, blk, "g", fsub(L, s, h));
		out[3] = in[2];
		return 4;
	}
	/* A^T = [[1,1,1,0],[0,1,-1,-1]] */
	out[0] = lw_let(L, blk, "at", fadd(L, fadd(L, in[0], in[1]), in[2]));
	out[1] = lw_let(L, blk, "at", fsub(L, fsub(L, in[1], in[2]), in[3]));
	return 2;
}

/* Applies transform kind along axis ax of the n[0] x n[1] x n[2] array src (row-major) into
 * dst; n[ax] becomes the transform's output count. */
static void
wn_axis(Lower *L, KNode *blk, int kind, KNode **src, int64_t *n, int ax, KNode **dst)
{
	int64_t m[3] = {n[0], n[1], n[2]};
	int ni = (int)n[ax], no = kind == WINO_AT ? 2 : 4;
	m[ax] = no;
	int64_t si[3] = {n[1] * n[2], n[2], 1}, so[3] = {m[1] * m[2], m[2], 1};
	int64_t i[3];
	for (i[0] = 0; i[0] < m[0]; i[0]++)
		for (i[1] = 0; i[1] < m[1]; i[1]++)
			for (i[2] = 0; i[2] < m[2]; i[2]++) {
				if (i[ax] != 0)
					continue;
				KNode *in[4], *out[4];
				int64_t bi = i[0] * si[0] + i[1] * si[1] + i[2] * si[2];
				int64_t bo = i[0] * so[0] + i[1] * so[1] + i[2] * so[2];
				for (int k = 0; k < ni; k++)
					in[k] = src[bi + k * si[ax]];
				lw_wino_1d(L, blk, kind, in, out);
				for (int k = 0; k < no; k++)
					dst[bo + k * so[ax]] = out[k];
			}
	n[ax] = no;
}

/* the three axes (d, h, w) of an n^3 cube, v[] in place (64 entries of room); or, with
 * plane, the two axes (h, w) of an n x n square (16 entries) */
void
lw_wino_apply(Lower *L, KNode *blk, int kind, KNode **v, int64_t n, int plane)
{
	KNode *t[64];
	int64_t dims[3] = {plane ? 1 : n, n, n};
	wn_axis(L, blk, kind, v, dims, 2, t);
	wn_axis(L, blk, kind, t, dims, 1, v);
	if (plane)
		return;
	wn_axis(L, blk, kind, v, dims, 0, t);
	memcpy(v, t, sizeof(KNode *) * (size_t)(dims[0] * dims[1] * dims[2]));
}

/* The first loop: wino_u[(xi*Ci + ci)*Co + co] = (G g G^T)[xi] for every (co, ci).  Lanes
 * over co (27 gathers, 64 contiguous stores per ci), widened by the CPU emitter: as a plain
 * loop with ci innermost the 64 stores of a pair hit 64 lines (a quarter of a c64 conv's
 * time at 16^3); as an innermost vector loop LLVM's vectorizer took 80 ms of compile time per
 * kernel.  Parallel over (co block, chunk of WN_UCH input channels). */
enum { WN_UCH = 8 };

static void
wn_weights(Lower *L, Wino *w)
{
	const Conv *cv = w->cv;
	int64_t VU = cv->Co % 16 == 0 ? 16 : cv->Co % 8 == 0 ? 8 : cv->Co % 4 == 0 ? 4 : 1;
	int64_t dims[2] = {cv->Co / VU, (cv->Ci + WN_UCH - 1) / WN_UCH};
	KNode *idx[2], *v[64], *l, *ci;
	KNode *body = lw_nest(L, dims, 2, 0, idx);
	KNode *ll = lw_loop(L, body, "lane", ix_c(L, 0), ix_c(L, VU),
	                    VU > 1 ? LOOP_VECTOR : LOOP_SERIAL, &l);
	KNode *co = lw_let(L, ll->body, "co", ix_add(L, ix_mul(L, idx[0], VU), l));
	KNode *c0 = ix_mul(L, idx[1], WN_UCH);
	KNode *c1 = kir_bin(L->p, KB_MIN, ix_add(L, c0, ix_c(L, WN_UCH)), ix_c(L, cv->Ci));
	KNode *cl = lw_loop(L, ll->body, "ci", c0, c1, LOOP_SERIAL, &ci);
	KNode *b = cl->body;
	int wb = lw_buf(L, cv->w);
	KNode *wr = lw_let(L, b, "wr", ix_mul(L, ix_add(L, ix_mul(L, co, cv->Ci), ci), 27));
	for (int t = 0; t < 27; t++)
		v[t] = lw_let(L, b, "w", kir_load(L->p, L->k, wb, ix_add(L, wr, ix_c(L, t))));
	lw_wino_apply(L, b, WINO_G, v, 3, 0);
	KNode *ur = lw_let(L, b, "ur", ix_add(L, ix_mul(L, ci, cv->Co), co));
	for (int xi = 0; xi < 64; xi++) {
		KNode *ui = ix_add(L, ur, ix_c(L, (int64_t)xi * cv->Ci * cv->Co));
		kir_append(L->p, b, kir_store(L->p, w->ub, ui, v[xi]));
	}
}

/* i32 constant */
static KNode *
w32(Lower *L, int64_t v)
{
	return kir_cast(L->p, KT_I32, ix_c(L, v));
}

/* The input transform of the row of VL tiles at (n, td, th, tw0) into the slice at vofs, in
 * two loops per input channel: per d slice a, its 16 x loads (stride 2 in the lane, masked at
 * the w borders, zero in rows outside in d or h) and B^T along w and h into a 4 x 16 tile
 * (at tofs in the row's M slice, free until the GEMM); then per (h, w) position, B^T along d
 * into V.  One unrolled 64-load body compiled 70 ms slower per kernel (LLVM) and ran slower
 * (spills: c32 at 32^3 1.8x instead of 2.1x the direct conv). */
static void
wn_input(Lower *L, const Wino *w, KNode *blk, KNode *n, KNode *td, KNode *th, KNode *tw0,
         KNode *vofs, KNode *tofs)
{
	const Conv *cv = w->cv;
	KNode *hok[4], *ihc[4], *l, *ci, *a, *k, *v[16];
	for (int b = 0; b < 4; b++) {
		KNode *ih = lw_let(L, blk, "ih", ix_add(L, ix_mul(L, th, 2), ix_c(L, b - 1)));
		hok[b] = lw_let(L, blk, "hok", lw_inrange(L, ih, cv->H));
		ihc[b] = lw_let(L, blk, "ihc", ix_mul(L, lw_clampi(L, ih, cv->H), cv->W));
	}
	KNode *ll = lw_loop(L, blk, "lane", ix_c(L, 0), ix_c(L, w->VL), LOOP_VECTOR, &l);
	KNode *lb = ll->body;
	KNode *tw = lw_let(L, lb, "tw", ix_add(L, tw0, l));
	KNode *tw32 = lw_let(L, lb, "tw32", kir_cast(L->p, KT_I32, tw));
	/* which of the four columns iw = 2tw - 1 + c may fall outside: a lane mask */
	KNode *wok[4] = {NULL, NULL, NULL, NULL};
	wok[0] = lw_let(L, lb, "wok", kir_bin(L->p, KB_GE, tw32, w32(L, 1)));
	for (int c = 1; c < 4; c++)
		if (2 * (w->TW - 1) - 1 + c >= cv->W) /* 2tw - 1 + c < W */
			wok[c] = lw_let(L, lb, "wok",
			                kir_bin(L->p, KB_LT, tw32, w32(L, (cv->W - c + 2) / 2)));
	KNode *cl = lw_loop(L, lb, "ci", ix_c(L, 0), ix_c(L, cv->Ci), LOOP_SERIAL, &ci);
	KNode *xc = ix_mul(L, ix_add(L, ix_mul(L, n, cv->Ci), ci), cv->D * cv->H * cv->W);
	xc = lw_let(L, cl->body, "xc", ix_add(L, xc, ix_add(L, ix_mul(L, tw, 2), ix_c(L, -1))));
	KNode *al = lw_loop(L, cl->body, "a", ix_c(L, 0), ix_c(L, 4), LOOP_SERIAL, &a);
	KNode *ab = al->body;
	KNode *id = lw_let(L, ab, "id", ix_add(L, ix_add(L, ix_mul(L, td, 2), a), ix_c(L, -1)));
	KNode *dok = lw_let(L, ab, "dok", lw_inrange(L, id, cv->D));
	KNode *xd =
	    lw_let(L, ab, "xd", ix_add(L, xc, ix_mul(L, lw_clampi(L, id, cv->D), cv->H * cv->W)));
	for (int b = 0; b < 4; b++) {
		KNode *ok = lw_let(L, ab, "ok", kir_bin(L->p, KB_AND, dok, hok[b]));
		KNode *xr = lw_let(L, ab, "xr", ix_add(L, xd, ihc[b]));
		for (int c = 0; c < 4; c++) {
			KNode *ld = kir_load(L->p, L->k, w->xb, ix_add(L, xr, ix_c(L, c)));
			if (!wok[c]) { /* inside in w: zero the rows outside in d or h */
				v[b * 4 + c] =
				    lw_let(L, ab, "x", kir_select(L->p, ok, ld, kir_f32(L->p, 0)));
				continue;
			}
			int xv = kir_var(L->p, L->k, KT_F32, "x");
			kir_append(L->p, ab, kir_let(L->p, L->k, xv, kir_f32(L->p, 0)));
			KNode *ifl = kir_if(L->p, kir_bin(L->p, KB_AND, ok, wok[c]));
			kir_append(L->p, ab, ifl);
			kir_append(L->p, ifl->body, kir_assign(L->p, xv, ld));
			v[b * 4 + c] = kir_ref(L->p, L->k, xv);
		}
	}
	lw_wino_apply(L, ab, WINO_BT, v, 4, 1);
	KNode *ta = lw_let(L, ab, "ta", ix_add(L, tofs, ix_add(L, ix_mul(L, a, 16 * w->VL), l)));
	for (int t = 0; t < 16; t++)
		kir_append(L->p, ab,
		           kir_store(L->p, w->mb, ix_add(L, ta, ix_c(L, t * w->VL)), v[t]));
	KNode *kl = lw_loop(L, cl->body, "k", ix_c(L, 0), ix_c(L, 16), LOOP_SERIAL, &k);
	KNode *tk = lw_let(L, kl->body, "tk", ix_add(L, tofs, ix_add(L, ix_mul(L, k, w->VL), l)));
	KNode *in[4], *out[4];
	for (int d = 0; d < 4; d++)
		in[d] = lw_let(L, kl->body, "t",
		               kir_load(L->p, L->k, w->mb, ix_add(L, tk, ix_c(L, d * 16 * w->VL))));
	lw_wino_1d(L, kl->body, WINO_BT, in, out);
	KNode *vk = ix_add(L, ix_add(L, vofs, ix_mul(L, k, w->vxs)), ix_mul(L, ci, w->GL));
	vk = lw_let(L, kl->body, "vk", ix_add(L, vk, l));
	for (int d = 0; d < 4; d++)
		kir_append(L->p, kl->body,
		           kir_store(L->p, w->vb, ix_add(L, vk, ix_c(L, d * 16 * w->vxs)), out[d]));
}

/* The 64 batched GEMMs of a row: M[xi][co][lane] = sum_ci U[xi][ci][co] V[xi][ci][lane]. */
static void
wn_gemm(Lower *L, const Wino *w, KNode *blk, KNode *vofs, KNode *mofs)
{
	const Conv *cv = w->cv;
	KNode *xi, *cb, *l, *ci;
	int acc[16];
	KNode *xl = lw_loop(L, blk, "xi", ix_c(L, 0), ix_c(L, 64), LOOP_SERIAL, &xi);
	KNode *vx = lw_let(L, xl->body, "vx", ix_add(L, vofs, ix_mul(L, xi, w->vxs)));
	KNode *ux = lw_let(L, xl->body, "ux", ix_mul(L, xi, cv->Ci * cv->Co));
	KNode *mx = lw_let(L, xl->body, "mx", ix_add(L, mofs, ix_mul(L, xi, w->mxs)));
	KNode *bl =
	    lw_loop(L, xl->body, "cb", ix_c(L, 0), ix_c(L, cv->Co / w->cob), LOOP_SERIAL, &cb);
	KNode *co0 = lw_let(L, bl->body, "co0", ix_mul(L, cb, w->cob));
	KNode *ll = lw_loop(L, bl->body, "lane", ix_c(L, 0), ix_c(L, w->GL), LOOP_VECTOR, &l);
	for (int64_t j = 0; j < w->cob; j++) {
		acc[j] = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, ll->body, kir_let(L->p, L->k, acc[j], kir_f32(L->p, 0)));
	}
	KNode *cl = lw_loop(L, ll->body, "ci", ix_c(L, 0), ix_c(L, cv->Ci), LOOP_SERIAL, &ci);
	KNode *vv =
	    lw_let(L, cl->body, "v",
	           kir_load(L->p, L->k, w->vb, ix_add(L, vx, ix_add(L, ix_mul(L, ci, w->GL), l))));
	KNode *ur = lw_let(L, cl->body, "ur", ix_add(L, ux, ix_add(L, ix_mul(L, ci, cv->Co), co0)));
	for (int64_t j = 0; j < w->cob; j++) {
		KNode *u = kir_load(L->p, L->k, w->ub, ix_add(L, ur, ix_c(L, j)));
		KNode *s = fadd(L, kir_ref(L->p, L->k, acc[j]), kir_bin(L->p, KB_MUL, u, vv));
		kir_append(L->p, cl->body, kir_assign(L->p, acc[j], s));
	}
	for (int64_t j = 0; j < w->cob; j++) {
		KNode *mi =
		    ix_add(L, mx, ix_add(L, ix_mul(L, ix_add(L, co0, ix_c(L, j)), w->GL), l));
		kir_append(L->p, ll->body, kir_store(L->p, w->mb, mi, kir_ref(L->p, L->k, acc[j])));
	}
}

/* The output transform of the row: A^T M A + bias, each output through lw_output; A^T along
 * w and h per d slice (a loop) into a 4 x 4 x VL tile at tofs (the row's V slice, free after
 * the GEMM), then along d. */
static int
wn_output(Lower *L, const Wino *w, KNode *blk, KNode *n, KNode *td, KNode *th, KNode *tw0,
          KNode *mofs, KNode *tofs)
{
	const Conv *cv = w->cv;
	const Type *ot = lw_type(L, cv->out);
	KNode *l, *co, *a, *v[16];
	KNode *ll = lw_loop(L, blk, "lane", ix_c(L, 0), ix_c(L, w->VL), LOOP_VECTOR, &l);
	KNode *lb = ll->body;
	KNode *tw = lw_let(L, lb, "tw", ix_add(L, tw0, l));
	KNode *ow0 = lw_let(L, lb, "ow", ix_mul(L, tw, 2));
	KNode *od0 = lw_let(L, lb, "od", ix_mul(L, td, 2));
	KNode *oh0 = lw_let(L, lb, "oh", ix_mul(L, th, 2));
	KNode *ok[3] = {NULL, NULL, NULL}; /* the second output of a tile, for odd extents */
	if (cv->OD % 2)
		ok[0] = lw_let(L, lb, "dok", kir_bin(L->p, KB_LT, od0, ix_c(L, cv->OD - 1)));
	if (cv->OH % 2)
		ok[1] = lw_let(L, lb, "hok", kir_bin(L->p, KB_LT, oh0, ix_c(L, cv->OH - 1)));
	if (cv->OW % 2)
		ok[2] = lw_let(
		    L, lb, "wok",
		    kir_bin(L->p, KB_LT, kir_cast(L->p, KT_I32, tw), w32(L, (cv->OW - 1) / 2)));
	KNode *cl = lw_loop(L, lb, "co", ix_c(L, 0), ix_c(L, cv->Co), LOOP_SERIAL, &co);
	KNode *cb = cl->body;
	KNode *mr = lw_let(L, cb, "mr", ix_add(L, mofs, ix_add(L, ix_mul(L, co, w->GL), l)));
	/* per d slice: A^T along w and h into a 4 x 4 tile at tofs; then A^T along d */
	KNode *al = lw_loop(L, cb, "a", ix_c(L, 0), ix_c(L, 4), LOOP_SERIAL, &a);
	KNode *ma = lw_let(L, al->body, "ma", ix_add(L, mr, ix_mul(L, a, 16 * w->mxs)));
	for (int k = 0; k < 16; k++)
		v[k] = lw_let(L, al->body, "m",
		              kir_load(L->p, L->k, w->mb, ix_add(L, ma, ix_c(L, k * w->mxs))));
	lw_wino_apply(L, al->body, WINO_AT, v, 4, 1);
	KNode *ta =
	    lw_let(L, al->body, "ta", ix_add(L, tofs, ix_add(L, ix_mul(L, a, 4 * w->VL), l)));
	for (int k = 0; k < 4; k++)
		kir_append(L->p, al->body,
		           kir_store(L->p, w->vb, ix_add(L, ta, ix_c(L, k * w->VL)), v[k]));
	KNode *tl = lw_let(L, cb, "tl", ix_add(L, tofs, l));
	for (int k = 0; k < 4; k++) {
		KNode *in[4], *out[2];
		for (int d = 0; d < 4; d++)
			in[d] = lw_let(L, cb, "t",
			               kir_load(L->p, L->k, w->vb,
			                        ix_add(L, tl, ix_c(L, (d * 4 + k) * w->VL))));
		lw_wino_1d(L, cb, WINO_AT, in, out);
		v[k] = out[0], v[4 + k] = out[1];
	}
	KNode *bias = cv->b ? lw_let(L, cb, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), co)) : NULL;
	/* the two d outputs in a loop: half the epilogue code (LLVM time) */
	KNode *e, *el = lw_loop(L, cb, "e", ix_c(L, 0), ix_c(L, 2), LOOP_SERIAL, &e);
	KNode *e0 = lw_let(L, el->body, "e0", kir_bin(L->p, KB_EQ, e, ix_c(L, 0)));
	KNode *od = lw_let(L, el->body, "od", ix_add(L, od0, e));
	KNode *dok = ok[0] ? lw_let(L, el->body, "dok", kir_bin(L->p, KB_OR, e0, ok[0])) : NULL;
	for (int b = 0; b < 2; b++)
		for (int c = 0; c < 2; c++) {
			KNode *y = kir_select(L->p, e0, v[b * 2 + c], v[4 + b * 2 + c]);
			KNode *cond = dok, *ob = el->body;
			if (bias)
				y = fadd(L, y, bias);
			if (b && ok[1])
				cond = cond ? kir_bin(L->p, KB_AND, cond, ok[1]) : ok[1];
			if (c && ok[2])
				cond = cond ? kir_bin(L->p, KB_AND, cond, ok[2]) : ok[2];
			if (cond) {
				KNode *ifo = kir_if(L->p, cond);
				kir_append(L->p, el->body, ifo);
				ob = ifo->body;
			}
			KNode *oidx[5] = {n, co, od, ix_add(L, oh0, ix_c(L, b)),
			                  ix_add(L, ow0, ix_c(L, c))};
			Coord crd;
			coord_full(&crd, ot, oidx);
			if (lw_output(L, ob, &crd, y) < 0)
				return -1;
		}
	return 0;
}

/* 1 when the Winograd form applies to the root: conv3d 3^3, stride 1, dilation 1, pad 1,
 * groups 1, >= 16 channels in and out, no load prologue, sums in a group output that does not
 * overlap the inputs, rows of 4 or a multiple of 8 tiles; and, unless SEGC_WINOGRAD=1
 * forces it, enough work: positions x Ci x Co >= WN_MINWORK (below it the weight transform
 * and the loops' overhead cost more than the multiplies saved: c16 at 4x16x16 ran 0.75x the
 * direct conv's speed, c32 at 2x16x16 and c16 at 8x8x32 (2^19) 1.3x); rows of 4 tiles (8^3
 * volumes: 4-lane transforms) only from Ci x Co >= WN_MINCH4 (c64 at 8^3 0.8x, c96 1.5x,
 * 384 -> 192 1.3x); and U (64 x Ci x Co floats, kernel scratch) at most WN_MAXU bytes: the
 * largest kernel's scratch is part of the engine's arena, and mamba_home's 384 -> 192 convs
 * at 8^3 (19 MiB of U, about 2% of its latency) took its arena from 31.6 to 51 MiB and its
 * peak RSS from 0.48 to 0.49 of PyTorch's, against a target of 0.5 (with the cap: 39 MiB) */
enum { WN_MINWORK = 1 << 19, WN_MINCH4 = 8192, WN_MAXU = 16 << 20 };

static int
wn_applies(Lower *L, const Conv *cv, ValueId accv)
{
	const char *e = cg_knob("SEGC_WINOGRAD");
	if ((e && !strcmp(e, "0")) || L->p->gpu || L->root->op != OP_conv3d)
		return 0;
	int force = e && !strcmp(e, "1");
	if (!force && (cv->N * cv->OD * cv->OH * cv->OW * cv->Ci * cv->Co < WN_MINWORK ||
	               64 * cv->Ci * cv->Co * 4 > WN_MAXU))
		return 0;
	for (int a = 0; a < 3; a++)
		if (cv->k[a] != 3 || cv->s[a] != 1 || cv->dl[a] != 1 || cv->p[a] != 1)
			return 0;
	if (cv->groups != 1 || cv->Ci < 16 || cv->Co < 16 || lw_has_prologue(L) || !accv ||
	    lw_out_aliases_input(L))
		return 0;
	if (cv->OD != cv->D || cv->OH != cv->H || cv->OW != cv->W)
		return 0;
	int64_t TW = (cv->OW + 1) / 2;
	if (TW == 4) /* 4-lane transforms: only where the GEMM dominates */
		return force || cv->Ci * cv->Co >= WN_MINCH4;
	return TW % 8 == 0;
}

/* 0 done, -1 after a diagnostic, 1 not applicable (the direct conv lowers the root) */
int
tmpl_conv_wino(Lower *L, const Conv *cv, ValueId accv)
{
	Wino w = {0};
	if (!wn_applies(L, cv, accv))
		return 1;
	w.cv = cv;
	w.TD = (cv->OD + 1) / 2, w.TH = (cv->OH + 1) / 2, w.TW = (cv->OW + 1) / 2;
	w.VL = w.TW % 16 == 0 ? 16 : w.TW % 8 == 0 ? 8 : 4;
	/* 16 GEMM lanes: two rows of 8 tiles where a row has 8 (32 lanes with 8 channels per
	 * block measured 5-15% slower) */
	w.GL = 16, w.R = w.GL / w.VL;
	if (w.TH % w.R)
		w.R = 1, w.GL = w.VL;
	for (w.cob = 16; cv->Co % w.cob; w.cob--)
		;
	w.vxs = cv->Ci * w.GL + 16, w.mxs = cv->Co * w.GL + 16;
	int64_t par = cv->N * w.TD;
	w.xb = lw_buf(L, cv->x);
	w.ub = lw_scratch(L, DT_F32, 64 * cv->Ci * cv->Co, "wino_u");
	w.vb = lw_scratch(L, DT_F32, par * 64 * w.vxs, "wino_v");
	w.mb = lw_scratch(L, DT_F32, par * 64 * w.mxs, "wino_m");
	wn_weights(L, &w);

	int64_t dims[2] = {cv->N, w.TD};
	KNode *idx[2], *th, *tb, *r;
	KNode *body = lw_nest(L, dims, 2, 0, idx);
	KNode *pi = ix_add(L, ix_mul(L, idx[0], w.TD), idx[1]);
	KNode *vofs = lw_let(L, body, "vofs", ix_mul(L, pi, 64 * w.vxs));
	KNode *mofs = lw_let(L, body, "mofs", ix_mul(L, pi, 64 * w.mxs));
	KNode *hl = lw_loop(L, body, "thg", ix_c(L, 0), ix_c(L, w.TH / w.R), LOOP_SERIAL, &th);
	KNode *bl = lw_loop(L, hl->body, "twb", ix_c(L, 0), ix_c(L, w.TW / w.VL), LOOP_SERIAL, &tb);
	KNode *tw0 = lw_let(L, bl->body, "tw0", ix_mul(L, tb, w.VL));
	/* the R rows' input transforms fill the GEMM's lanes, their output transforms read them */
	KNode *rl = lw_loop(L, bl->body, "r", ix_c(L, 0), ix_c(L, w.R), LOOP_SERIAL, &r);
	KNode *thr = lw_let(L, rl->body, "th", ix_add(L, ix_mul(L, th, w.R), r));
	wn_input(L, &w, rl->body, idx[0], idx[1], thr, tw0,
	         lw_let(L, rl->body, "vr", ix_add(L, vofs, ix_mul(L, r, w.VL))), mofs);
	wn_gemm(L, &w, bl->body, vofs, mofs);
	rl = lw_loop(L, bl->body, "r", ix_c(L, 0), ix_c(L, w.R), LOOP_SERIAL, &r);
	thr = lw_let(L, rl->body, "th", ix_add(L, ix_mul(L, th, w.R), r));
	return wn_output(L, &w, rl->body, idx[0], idx[1], thr, tw0,
	                 lw_let(L, rl->body, "mr", ix_add(L, mofs, ix_mul(L, r, w.VL))), vofs);
}
