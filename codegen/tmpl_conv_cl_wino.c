/* codegen/tmpl_conv_cl_wino.c -- conv3d_ndhwc 3^3 (stride 1, pad 1, groups 1) on the CPU by
 * Winograd F(2x2x2, 3x3x3), channels last.  The math of tmpl_conv_wino.c (B^T, G, A^T along
 * d, h and w: V = B^T d B, U = G g G^T, Y = A^T (sum_ci U . V) A), but the lanes are 16
 * channels: x's and y's channel vectors are contiguous, so every transform is vector loads
 * and stores and any spatial size works (tiles are flattened over (n, td, th, tw)).
 *   for (co block, ci chunk) parallel: for co in block vector: for ci in chunk:
 *     clw_u[xi][ci][co] = (G g[co, ci] G^T)[xi]                                xi = 0..63
 *   for (group of output channels, chunk of tile blocks) parallel: for each block of T tiles:
 *     for t < T: for ci block: for lane vector (16 ci):                     input transform
 *       per d slice a: 16 loads x[n, 2td-1+a, 2th-1+b, 2tw-1+c, ci] (0 outside), B^T along
 *       w and h into a 4 x 16 tile; then B^T along d: clw_v[xi][t][ci]
 *     for xi: for co block of the group: for lane vector (CW co):                 64 GEMMs
 *       acc[t] = 0; for ci: acc[t] += clw_v[xi][t][ci] (broadcast) * clw_u[xi][ci][co]
 *       clw_m[xi][t][co] = acc[t]
 *     for t < T: for co block of 16: for lane vector:                      output transform
 *       A^T along w, h per d slice, then along d, + bias; each of the 8 outputs through
 *       lw_output at (n, 2td+e, 2th+b, 2tw+c, co) (skipped past odd extents)
 * Channel counts that are not multiples of 16 (32): the last block starts at C - 16 (C - 32)
 * and overlaps the one before (the same values computed twice; the output's overlapping
 * lanes are masked off).  Each parallel iteration owns a slice of clw_v / clw_m (scratch is
 * per kernel).  Where it applies and what it measures: docs/performance.md, "Channels-last
 * Winograd on the CPU".  SEGC_WINOGRAD=0 (compile time) off, =1 wherever it can lower;
 * SEGC_CLWINO_T, _CW, _PAR (compile time, A/B): tiles per block, GEMM lanes, iterations. */
#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

/* CW_LANES: the transforms' lanes (channels); CW_UCH: input channels per U iteration;
 * CW_PAR, CW_SLICES: the main loop's iterations at most, and their scratch in bytes */
enum { CW_LANES = 16, CW_UCH = 8, CW_PAR = 32, CW_SLICES = 4 << 20 };

typedef struct {
	Conv cv;
	int64_t TD, TH, TW, ntiles;
	int64_t T;        /* tiles per block: the GEMM's accumulators per lane vector */
	int64_t CW;       /* the GEMM's lanes: output channels per block (16 or 32) */
	int64_t ncw;      /* GEMM channel blocks */
	int64_t nco, nci; /* 16-channel blocks of the output and of the input */
	int64_t nblk;     /* blocks of T tiles */
	int64_t ngroups;  /* output channel groups (parallel; each redoes the input transform) */
	int64_t nchunks;  /* chunks of tile blocks per group (parallel) */
	int64_t vxs, mxs, uxs; /* elements from one xi to the next in clw_v, clw_m, clw_u */
	int xb, ub, vb, mb;
} Cw;

static KNode *
fadd(Lower *L, KNode *a, KNode *b)
{
	return kir_bin(L->p, KB_ADD, a, b);
}

/* the first channel of block b of width wd out of C channels: the last block ends at C */
static KNode *
cw_c0(Lower *L, KNode *blk, KNode *b, int64_t wd, int64_t C)
{
	KNode *c0 = ix_mul(L, b, wd);
	if (C % wd)
		c0 = kir_bin(L->p, KB_MIN, c0, ix_c(L, C - wd));
	return lw_let(L, blk, "c0", c0);
}

/* The first loop: clw_u[xi*uxs + ci*Co + co] = (G g[co, ci] G^T)[xi], lanes over 16 output
 * channels (27 gathers of w, 64 vector stores per ci); parallel over (co block, ci chunk). */
static void
cw_weights(Lower *L, const Cw *w)
{
	const Conv *cv = &w->cv;
	int64_t dims[2] = {w->nco, (cv->Ci + CW_UCH - 1) / CW_UCH};
	KNode *idx[2], *v[64], *l, *ci;
	KNode *body = lw_nest(L, dims, 2, 0, idx);
	KNode *c0 = cw_c0(L, body, idx[0], CW_LANES, cv->Co);
	KNode *ll = lw_loop(L, body, "lane", ix_c(L, 0), ix_c(L, CW_LANES), LOOP_VECTOR, &l);
	KNode *co = lw_let(L, ll->body, "co", ix_add(L, c0, l));
	KNode *i0 = ix_mul(L, idx[1], CW_UCH);
	KNode *i1 = kir_bin(L->p, KB_MIN, ix_add(L, i0, ix_c(L, CW_UCH)), ix_c(L, cv->Ci));
	KNode *cl = lw_loop(L, ll->body, "ci", i0, i1, LOOP_SERIAL, &ci);
	KNode *b = cl->body;
	int wb = lw_buf(L, cv->w);
	KNode *wr = lw_let(L, b, "wr", ix_mul(L, ix_add(L, ix_mul(L, co, cv->Ci), ci), 27));
	for (int t = 0; t < 27; t++)
		v[t] = lw_let(L, b, "w", kir_load(L->p, L->k, wb, ix_add(L, wr, ix_c(L, t))));
	lw_wino_apply(L, b, WINO_G, v, 3, 0);
	KNode *ur = lw_let(L, b, "ur", ix_add(L, ix_mul(L, ci, cv->Co), co));
	for (int xi = 0; xi < 64; xi++) {
		KNode *ui = ix_add(L, ur, ix_c(L, (int64_t)xi * w->uxs));
		kir_append(L->p, b, kir_store(L->p, w->ub, ui, v[xi]));
	}
}

/* The coordinates (n, td, th, tw) of tile number p (lets in blk). */
static void
cw_tile(Lower *L, const Cw *w, KNode *blk, KNode *p, KNode **tc)
{
	int64_t dims[4] = {w->cv.N, w->TD, w->TH, w->TW};
	lw_unflatten(L, blk, p, dims, 4, tc);
}

/* The input transform of tile t of the block into clw_v[xi][t][ci] (at vofs); tofs: a
 * 1024-element tile of clw_m, free until the GEMM. */
static void
cw_input(Lower *L, const Cw *w, KNode *blk, KNode *tile, KNode *t, KNode *vofs, KNode *tofs)
{
	const Conv *cv = &w->cv;
	KNode *tc[4], *cb, *l, *a, *k, *v[16], *hwok[16], *hwx[16];
	cw_tile(L, w, blk, tile, tc);
	/* per (b, c): the clamped (ih, iw) offset and whether it is inside */
	for (int b = 0; b < 4; b++) {
		KNode *ih = lw_let(L, blk, "ih", ix_add(L, ix_mul(L, tc[2], 2), ix_c(L, b - 1)));
		KNode *hok = lw_let(L, blk, "hok", lw_inrange(L, ih, cv->H));
		KNode *ihc = ix_mul(L, lw_clampi(L, ih, cv->H), cv->W);
		for (int c = 0; c < 4; c++) {
			KNode *iw = ix_add(L, ix_mul(L, tc[3], 2), ix_c(L, c - 1));
			hwok[b * 4 + c] = lw_let(
			    L, blk, "ok", kir_bin(L->p, KB_AND, hok, lw_inrange(L, iw, cv->W)));
			hwx[b * 4 + c] =
			    lw_let(L, blk, "hw",
			           ix_mul(L, ix_add(L, ihc, lw_clampi(L, iw, cv->W)), cv->Ci));
		}
	}
	KNode *bl = lw_loop(L, blk, "cb", ix_c(L, 0), ix_c(L, w->nci), LOOP_SERIAL, &cb);
	KNode *ci0 = cw_c0(L, bl->body, cb, CW_LANES, cv->Ci);
	KNode *ll = lw_loop(L, bl->body, "lane", ix_c(L, 0), ix_c(L, CW_LANES), LOOP_VECTOR, &l);
	KNode *lb = ll->body;
	KNode *xc = lw_let(L, lb, "xc", ix_add(L, ci0, l));
	/* per d slice a: 16 loads, B^T along w and h into tofs[a][16][lane] */
	KNode *al = lw_loop(L, lb, "a", ix_c(L, 0), ix_c(L, 4), LOOP_SERIAL, &a);
	KNode *ab = al->body;
	KNode *id = lw_let(L, ab, "id", ix_add(L, ix_add(L, ix_mul(L, tc[1], 2), a), ix_c(L, -1)));
	KNode *dok = lw_let(L, ab, "dok", lw_inrange(L, id, cv->D));
	KNode *xd = ix_mul(L, ix_add(L, ix_mul(L, tc[0], cv->D), lw_clampi(L, id, cv->D)),
	                   cv->H * cv->W * cv->Ci);
	xd = lw_let(L, ab, "xd", ix_add(L, xd, xc));
	for (int j = 0; j < 16; j++) {
		KNode *ld = kir_load(L->p, L->k, w->xb, ix_add(L, xd, hwx[j]));
		KNode *ok = kir_bin(L->p, KB_AND, dok, hwok[j]);
		v[j] = lw_let(L, ab, "x", kir_select(L->p, ok, ld, kir_f32(L->p, 0)));
	}
	lw_wino_apply(L, ab, WINO_BT, v, 4, 1);
	KNode *ta = lw_let(L, ab, "ta", ix_add(L, tofs, ix_add(L, ix_mul(L, a, 16 * CW_LANES), l)));
	for (int j = 0; j < 16; j++)
		kir_append(L->p, ab,
		           kir_store(L->p, w->mb, ix_add(L, ta, ix_c(L, j * CW_LANES)), v[j]));
	/* per (h, w) position k: B^T along d into clw_v[d*16 + k][t][ci] */
	KNode *kl = lw_loop(L, lb, "k", ix_c(L, 0), ix_c(L, 16), LOOP_SERIAL, &k);
	KNode *tk =
	    lw_let(L, kl->body, "tk", ix_add(L, tofs, ix_add(L, ix_mul(L, k, CW_LANES), l)));
	KNode *in[4], *out[4];
	for (int d = 0; d < 4; d++)
		in[d] =
		    lw_let(L, kl->body, "t",
		           kir_load(L->p, L->k, w->mb, ix_add(L, tk, ix_c(L, d * 16 * CW_LANES))));
	lw_wino_1d(L, kl->body, WINO_BT, in, out);
	KNode *vk = ix_add(L, ix_add(L, vofs, ix_mul(L, k, w->vxs)), ix_mul(L, t, cv->Ci));
	vk = lw_let(L, kl->body, "vk", ix_add(L, vk, xc));
	for (int d = 0; d < 4; d++)
		kir_append(L->p, kl->body,
		           kir_store(L->p, w->vb, ix_add(L, vk, ix_c(L, d * 16 * w->vxs)), out[d]));
}

/* The 64 GEMMs of a block, over the group's channel blocks [j0, j1):
 * clw_m[xi][t][co] = sum_ci clw_v[xi][t][ci] clw_u[xi][ci][co]. */
static void
cw_gemm(Lower *L, const Cw *w, KNode *blk, KNode *j0, KNode *j1, KNode *vofs, KNode *mofs)
{
	const Conv *cv = &w->cv;
	KNode *xi, *j, *l, *ci;
	int acc[32];
	KNode *xl = lw_loop(L, blk, "xi", ix_c(L, 0), ix_c(L, 64), LOOP_SERIAL, &xi);
	KNode *vx = lw_let(L, xl->body, "vx", ix_add(L, vofs, ix_mul(L, xi, w->vxs)));
	KNode *mx = lw_let(L, xl->body, "mx", ix_add(L, mofs, ix_mul(L, xi, w->mxs)));
	KNode *jl = lw_loop(L, xl->body, "j", j0, j1, LOOP_SERIAL, &j);
	KNode *co0 = cw_c0(L, jl->body, j, w->CW, cv->Co);
	KNode *ux = lw_let(L, jl->body, "ux", ix_add(L, ix_mul(L, xi, w->uxs), co0));
	KNode *mc = lw_let(L, jl->body, "mc", ix_add(L, mx, co0));
	KNode *ll = lw_loop(L, jl->body, "lane", ix_c(L, 0), ix_c(L, w->CW), LOOP_VECTOR, &l);
	for (int64_t t = 0; t < w->T; t++) {
		acc[t] = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, ll->body, kir_let(L->p, L->k, acc[t], kir_f32(L->p, 0)));
	}
	KNode *cl = lw_loop(L, ll->body, "ci", ix_c(L, 0), ix_c(L, cv->Ci), LOOP_SERIAL, &ci);
	KNode *u =
	    lw_let(L, cl->body, "u",
	           kir_load(L->p, L->k, w->ub, ix_add(L, ux, ix_add(L, ix_mul(L, ci, cv->Co), l))));
	KNode *vc = lw_let(L, cl->body, "vc", ix_add(L, vx, ci));
	for (int64_t t = 0; t < w->T; t++) {
		KNode *v = kir_load(L->p, L->k, w->vb, ix_add(L, vc, ix_c(L, t * cv->Ci)));
		KNode *s = fadd(L, kir_ref(L->p, L->k, acc[t]), kir_bin(L->p, KB_MUL, v, u));
		kir_append(L->p, cl->body, kir_assign(L->p, acc[t], s));
	}
	for (int64_t t = 0; t < w->T; t++) {
		KNode *mi = ix_add(L, mc, ix_add(L, ix_c(L, t * cv->Co), l));
		kir_append(L->p, ll->body, kir_store(L->p, w->mb, mi, kir_ref(L->p, L->k, acc[t])));
	}
}

/* The output transform of tile t of the block over the group's 16-channel blocks [o0, o1):
 * A^T M A + bias, each output through lw_output; tofs: a 256-element tile of clw_v, free
 * after the GEMM. */
static int
cw_output(Lower *L, const Cw *w, KNode *blk, KNode *tile, KNode *t, KNode *o0, KNode *o1,
          KNode *mofs, KNode *tofs)
{
	const Conv *cv = &w->cv;
	const Type *ot = lw_type(L, cv->out);
	KNode *tc[4], *ob, *l, *a, *e, *v[16];
	cw_tile(L, w, blk, tile, tc);
	KNode *od0 = lw_let(L, blk, "od", ix_mul(L, tc[1], 2));
	KNode *oh0 = lw_let(L, blk, "oh", ix_mul(L, tc[2], 2));
	KNode *ow0 = lw_let(L, blk, "ow", ix_mul(L, tc[3], 2));
	KNode *ok[3] = {NULL, NULL, NULL}; /* the second output of a tile, for odd extents */
	if (cv->OD % 2)
		ok[0] = lw_let(L, blk, "dok", kir_bin(L->p, KB_LT, od0, ix_c(L, cv->OD - 1)));
	if (cv->OH % 2)
		ok[1] = lw_let(L, blk, "hok", kir_bin(L->p, KB_LT, oh0, ix_c(L, cv->OH - 1)));
	if (cv->OW % 2)
		ok[2] = lw_let(L, blk, "wok", kir_bin(L->p, KB_LT, ow0, ix_c(L, cv->OW - 1)));
	KNode *mt = lw_let(L, blk, "mt", ix_add(L, mofs, ix_mul(L, t, cv->Co)));
	KNode *bl = lw_loop(L, blk, "ob", o0, o1, LOOP_SERIAL, &ob);
	KNode *co0 = cw_c0(L, bl->body, ob, CW_LANES, cv->Co);
	KNode *ll = lw_loop(L, bl->body, "lane", ix_c(L, 0), ix_c(L, CW_LANES), LOOP_VECTOR, &l);
	KNode *lb = ll->body;
	KNode *co = lw_let(L, lb, "co", ix_add(L, co0, l));
	/* the last block of a tail: only the lanes the block before did not store */
	KNode *cok = NULL;
	if (cv->Co % CW_LANES)
		cok = lw_let(L, lb, "cok", kir_bin(L->p, KB_GE, co, ix_mul(L, ob, CW_LANES)));
	KNode *mr = lw_let(L, lb, "mr", ix_add(L, mt, co));
	/* per d slice: A^T along w and h into tofs[a][4][lane]; then A^T along d */
	KNode *al = lw_loop(L, lb, "a", ix_c(L, 0), ix_c(L, 4), LOOP_SERIAL, &a);
	KNode *ma = lw_let(L, al->body, "ma", ix_add(L, mr, ix_mul(L, a, 16 * w->mxs)));
	for (int k = 0; k < 16; k++)
		v[k] = lw_let(L, al->body, "m",
		              kir_load(L->p, L->k, w->mb, ix_add(L, ma, ix_c(L, k * w->mxs))));
	lw_wino_apply(L, al->body, WINO_AT, v, 4, 1);
	KNode *ta =
	    lw_let(L, al->body, "ta", ix_add(L, tofs, ix_add(L, ix_mul(L, a, 4 * CW_LANES), l)));
	for (int k = 0; k < 4; k++)
		kir_append(L->p, al->body,
		           kir_store(L->p, w->vb, ix_add(L, ta, ix_c(L, k * CW_LANES)), v[k]));
	KNode *tl = lw_let(L, lb, "tl", ix_add(L, tofs, l));
	for (int k = 0; k < 4; k++) {
		KNode *in[4], *out[2];
		for (int d = 0; d < 4; d++)
			in[d] = lw_let(L, lb, "t",
			               kir_load(L->p, L->k, w->vb,
			                        ix_add(L, tl, ix_c(L, (d * 4 + k) * CW_LANES))));
		lw_wino_1d(L, lb, WINO_AT, in, out);
		v[k] = out[0], v[4 + k] = out[1];
	}
	KNode *bias = cv->b ? lw_let(L, lb, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), co)) : NULL;
	/* the two d outputs in a loop: half the epilogue code */
	KNode *el = lw_loop(L, lb, "e", ix_c(L, 0), ix_c(L, 2), LOOP_SERIAL, &e);
	KNode *e0 = lw_let(L, el->body, "e0", kir_bin(L->p, KB_EQ, e, ix_c(L, 0)));
	KNode *od = lw_let(L, el->body, "od", ix_add(L, od0, e));
	KNode *dok = ok[0] ? lw_let(L, el->body, "dok", kir_bin(L->p, KB_OR, e0, ok[0])) : NULL;
	if (cok)
		dok = dok ? kir_bin(L->p, KB_AND, dok, cok) : cok;
	for (int b = 0; b < 2; b++)
		for (int c = 0; c < 2; c++) {
			KNode *y = kir_select(L->p, e0, v[b * 2 + c], v[4 + b * 2 + c]);
			KNode *cond = dok, *obk = el->body;
			if (bias)
				y = fadd(L, y, bias);
			if (b && ok[1])
				cond = cond ? kir_bin(L->p, KB_AND, cond, ok[1]) : ok[1];
			if (c && ok[2])
				cond = cond ? kir_bin(L->p, KB_AND, cond, ok[2]) : ok[2];
			if (cond) {
				KNode *ifo = kir_if(L->p, cond);
				kir_append(L->p, el->body, ifo);
				obk = ifo->body;
			}
			KNode *oidx[5] = {tc[0], od, ix_add(L, oh0, ix_c(L, b)),
			                  ix_add(L, ow0, ix_c(L, c)), co};
			Coord crd;
			coord_full(&crd, ot, oidx);
			if (lw_output(L, obk, &crd, y) < 0)
				return -1;
		}
	return 0;
}

/* By default only where it measured faster (1 thread, mins, this form vs the direct
 * channels-last conv): at least CW_MINTILES tiles (8 tiles, 4^3: c32 0.033 vs 0.028 ms, c128
 * 0.64 vs 0.45; 27 tiles, 6^3: c16 0.018 vs 0.021, c32 0.069 vs 0.085, c128 1.13 vs 1.38)
 * and at most CW_UPERTILE bytes of U per tile: U is written and read back every run, and
 * when it leaves the caches that costs more than its GEMMs save (c256 at 6^3, 16 MiB of U
 * for 27 tiles: 6.7 vs 5.6 ms; at 8^3, 64 tiles: 10.3 vs 13.8); and U at most CW_MAXU bytes
 * (kernel scratch is part of the engine's arena), as tmpl_conv_wino.c's WN_MAXU. */
enum { CW_MINTILES = 24, CW_UPERTILE = 256 << 10, CW_MAXU = 16 << 20 };

static int
cw_applies(Lower *L, const Conv *cv)
{
	const char *e = cg_knob("SEGC_WINOGRAD");
	if ((e && !strcmp(e, "0")) || L->p->gpu || L->root->op != OP_conv3d_ndhwc)
		return 0;
	for (int a = 0; a < 3; a++)
		if (cv->k[a] != 3 || cv->s[a] != 1 || cv->dl[a] != 1 || cv->p[a] != 1)
			return 0;
	if (cv->groups != 1 || cv->Ci < 16 || cv->Co < 16 || lw_has_prologue(L))
		return 0;
	if (cv->OD != cv->D || cv->OH != cv->H || cv->OW != cv->W)
		return 0;
	if (e && !strcmp(e, "1"))
		return 1;
	int64_t ntiles = cv->N * ((cv->OD + 1) / 2) * ((cv->OH + 1) / 2) * ((cv->OW + 1) / 2);
	int64_t ubytes = 64 * cv->Ci * cv->Co * 4;
	return ntiles >= CW_MINTILES && ubytes <= ntiles * CW_UPERTILE && ubytes <= CW_MAXU;
}

/* positive integer from the environment (A/B switches), else dflt */
static int64_t
cw_env(const char *name, int64_t dflt)
{
	const char *e = cg_knob(name);
	int64_t v = e ? atoll(e) : 0;
	return v > 0 ? v : dflt;
}

/* 0 done, -1 after a diagnostic, 1 not applicable (the direct form lowers the root) */
int
tmpl_conv_cl_wino(Lower *L)
{
	Cw w;
	memset(&w, 0, sizeof w);
	Conv *cv = &w.cv;
	lw_conv_shape(L, cv); /* channels last: the Conv fields keep their meaning */
	if (!cw_applies(L, cv))
		return 1;
	w.TD = (cv->OD + 1) / 2, w.TH = (cv->OH + 1) / 2, w.TW = (cv->OW + 1) / 2;
	w.ntiles = cv->N * w.TD * w.TH * w.TW;
	/* 16 accumulator vectors: 8 tiles x 32 channels, or 16 x 16 where 32 does not divide Co
	 * (the overlapping last block: c48 at 32^3 1 thread 18.5 -> 15.0 ms with 16) */
	w.CW = cw_env("SEGC_CLWINO_CW", cv->Co % 32 ? 16 : 32);
	w.CW = w.CW == 16 || cv->Co < 32 ? 16 : 32;
	w.T = cw_env("SEGC_CLWINO_T", w.CW == 32 ? 8 : 16);
	w.T = w.T > 32 ? 32 : w.T > w.ntiles ? w.ntiles : w.T;
	w.ncw = (cv->Co + w.CW - 1) / w.CW;
	w.nco = (cv->Co + CW_LANES - 1) / CW_LANES;
	w.nci = (cv->Ci + CW_LANES - 1) / CW_LANES;
	w.nblk = (w.ntiles + w.T - 1) / w.T;
	/* padded by a cache line: 64 rows 2^k bytes apart would share one L1 set */
	w.vxs = w.T * cv->Ci + 16, w.mxs = w.T * cv->Co + 16;
	w.uxs = cv->Ci * cv->Co + 16;
	/* parallel iterations: up to CW_PAR (small ones even out a loaded machine's threads),
	 * their slices of clw_v and clw_m at most CW_SLICES bytes in all (but 2); chunks of tile
	 * blocks, then groups of >= 2 GEMM channel blocks (each redoes the input transform) */
	int64_t slice = 64 * (w.vxs + w.mxs) * 4;
	int64_t par = cw_env("SEGC_CLWINO_PAR", CW_PAR), pmem = CW_SLICES / slice;
	par = par < pmem ? par : pmem < 2 ? 2 : pmem;
	w.nchunks = w.nblk < par ? w.nblk : par;
	for (w.ngroups = 1; w.nchunks * w.ngroups < par && w.ngroups < w.ncw / 2; w.ngroups++)
		;
	int64_t P = w.nchunks * w.ngroups;
	w.xb = lw_buf(L, cv->x);
	w.ub = lw_scratch(L, DT_F32, 64 * w.uxs, "clw_u");
	w.vb = lw_scratch(L, DT_F32, P * 64 * w.vxs, "clw_v");
	w.mb = lw_scratch(L, DT_F32, P * 64 * w.mxs, "clw_m");
	cw_weights(L, &w);

	int64_t dims[1] = {P};
	KNode *it, *bi, *t;
	KNode *body = lw_nest(L, dims, 1, 0, &it);
	/* group-major: a thread's contiguous share of the iterations reads fewer columns of U */
	KNode *grp = lw_let(L, body, "grp", kir_bin(L->p, KB_DIV, it, ix_c(L, w.nchunks)));
	KNode *chk = lw_let(L, body, "chk", kir_bin(L->p, KB_REM, it, ix_c(L, w.nchunks)));
	KNode *vofs = lw_let(L, body, "vofs", ix_mul(L, it, 64 * w.vxs));
	KNode *mofs = lw_let(L, body, "mofs", ix_mul(L, it, 64 * w.mxs));
	KNode *b0 = kir_bin(L->p, KB_DIV, ix_mul(L, chk, w.nblk), ix_c(L, w.nchunks));
	KNode *b1 = kir_bin(L->p, KB_DIV, ix_mul(L, ix_add(L, chk, ix_c(L, 1)), w.nblk),
	                    ix_c(L, w.nchunks));
	KNode *j0 =
	    lw_let(L, body, "j0", kir_bin(L->p, KB_DIV, ix_mul(L, grp, w.ncw), ix_c(L, w.ngroups)));
	KNode *j1 = lw_let(L, body, "j1",
	                   kir_bin(L->p, KB_DIV, ix_mul(L, ix_add(L, grp, ix_c(L, 1)), w.ncw),
	                           ix_c(L, w.ngroups)));
	KNode *o0 = lw_let(L, body, "o0", ix_mul(L, j0, w.CW / CW_LANES));
	KNode *o1 = lw_let(L, body, "o1",
	                   kir_bin(L->p, KB_MIN, ix_mul(L, j1, w.CW / CW_LANES), ix_c(L, w.nco)));
	KNode *bl = lw_loop(L, body, "blk", b0, b1, LOOP_SERIAL, &bi);
	KNode *p0 = lw_let(L, bl->body, "p0", ix_mul(L, bi, w.T));
	/* input transforms (the last block's missing tiles repeat the last tile) */
	KNode *tl = lw_loop(L, bl->body, "t", ix_c(L, 0), ix_c(L, w.T), LOOP_SERIAL, &t);
	KNode *tile = ix_add(L, p0, t);
	if (w.ntiles % w.T)
		tile = kir_bin(L->p, KB_MIN, tile, ix_c(L, w.ntiles - 1));
	cw_input(L, &w, tl->body, lw_let(L, tl->body, "tile", tile), t, vofs, mofs);
	cw_gemm(L, &w, bl->body, j0, j1, vofs, mofs);
	/* output transforms of the block's tiles (not the repeats) */
	tl = lw_loop(L, bl->body, "t", ix_c(L, 0), ix_c(L, w.T), LOOP_SERIAL, &t);
	KNode *tb = tl->body;
	tile = lw_let(L, tb, "tile", ix_add(L, p0, t));
	if (w.ntiles % w.T) {
		KNode *ift = kir_if(L->p, kir_bin(L->p, KB_LT, tile, ix_c(L, w.ntiles)));
		kir_append(L->p, tb, ift);
		tb = ift->body;
	}
	return cw_output(L, &w, tb, tile, t, o0, o1, mofs, vofs);
}
