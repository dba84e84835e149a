/* codegen/tmpl_gpu_halo.c -- the halo-tile tensor-core form of conv3d (GPU forms,
 * codegen/tmpl_gpu.c; docs/cuda.md "Halo-tile convs"), taken with $SEGC_MMA_HALO=1.
 *
 * The implicit GEMM of tmpl_gpu_mma.c gathers every element of A once per tap: a 3x3x3 conv
 * reads each x element 27 times through L1, and the gather's instructions, not the tensor
 * cores, bind.  Here a block computes a tile of 128 output voxels (TH rows of TW = min(OW,
 * 64) voxels of one output depth) for bn output channels, and stages x once per chunk of CI
 * input channels (16 bf16, 8 tf32) as a halo in shared memory: (kd) x (TH + kh - 1) x (TW +
 * kw - 1) voxels, channels last (CI per voxel: 32 bytes), zero outside x.  The A fragment of
 * tap (a, b, c) for 16 consecutive output voxels of a row is then 16 consecutive halo voxels:
 * a row-major 16 x CI tile (ld = CI) that starts at a 32-byte boundary whatever the tap, as
 * wmma's loads need; the 27 taps read the halo, not x.
 *
 *   loop 1  parallel   wh[n][chunk][tap][ci] = w[n][chunk*CI + ci][tap], in the tile dtype
 *   loop 2  blocks over (output tiles, N tiles), 128 threads (4 warps of 32 voxels x bn)
 *           per chunk: barrier; stage the halo (thread: channel lane th % 8, voxel column
 *           th / 8 + 16 i: a warp stores 4 voxels x 8 lanes, no bank conflicts); B of the
 *           first tb taps by cp.async; barrier; per tb taps: B of the next tb taps by
 *           cp.async into the other half, the warps' MMAs, cp_wait, barrier
 *           then the accumulators to a shared C tile over the halo, and each thread (one
 *           voxel) applies the bias and the group's epilogue to its bn outputs (and, with
 *           conv statistics, leaves the results there for tmpl_tile_stats)
 *   loop 3  (conv statistics from the tiles only) tmpl_tile_stats_merge
 * Takes stride 1, groups 1, (kernel - 1) x dilation <= 4 per axis (3^3, 5^3, 3^3 dilated 2;
 * rows narrowed until the halo fits), any Ci (the last chunk's channels past Ci are zeros in
 * the halo and in wh), OW % 16 == 0 with 128 % TW == 0 and OW % TW == 0 (row blocks: any
 * OW % 16 == 0), Co >= 8, f32 tensors, tf32 or bf16, within the block's shared memory (48
 * KiB; $SEGC_CUDA_SMEM: more, dynamic); a load prologue (a fused normalize + activation on
 * x) is applied to every in-bounds element staged.  Returns 1 otherwise (tmpl_gpu_mma.c's
 * form follows).
 * $SEGC_HALO_RB = 2 or 4 (row blocks, rows_setup): tiles of 4R rows of 16 voxels, a warp's R
 * rows of one column sharing the A fragment of each halo row among the kh taps. */
#include "cg.h"
#include "tmpl.h"

#include <stdlib.h>

enum { HM = 128, HT = 128, TWMAX = 64, NFMAX = 4, ACCMAX = 8 };

/* halo columns per thread: ceil((128 + 4) / 16); B copies per stage: up to 3 x 64 x 2 (row
 * blocks: 5 x 64 x 2), 128 a round */
enum { MAXCOLS = 9, MAXROUNDS = 5 };

typedef struct {
	Conv cv;
	int64_t CI, cpu;    /* channels per chunk; per staging unit (bf16: a pair) */
	int64_t TW, TH;     /* output tile: TH rows of TW voxels */
	int64_t hm, nf;     /* voxels per block (64 nf), 16-voxel fragments per warp */
	int rows;           /* row blocks: a warp's nf fragments are nf rows of one column */
	int64_t rp;         /* row blocks: halo rows a staging pass (stage_units) */
	int64_t smax;       /* shared memory a block may use (cg_gpu_smem: 48 KiB by default) */
	int64_t HD, HH, HW; /* halo extents in voxels */
	int64_t nty, ntx;   /* tiles along OH, OW */
	int64_t bn, fn, tb; /* N tile, accumulators per warp along N, taps per B stage */
	int64_t ntap, nch, ldb, ldc, ce;
	ValueId x;
	int pro, tdt;
	int acp; /* the halo by cp.async (tf32 without a prologue: no conversion, no registers) */
	int hs, bs, cs, wh, tt; /* halo, B stages, C tile, the weight copy, the tap table */
} Halo;

static KNode *
bin(Lower *L, KBinOp op, KNode *a, KNode *b)
{
	return kir_bin(L->p, op, a, b);
}

static KNode *
lt(Lower *L, KNode *a, int64_t c)
{
	return kir_bin(L->p, KB_LT, a, ix_c(L, c));
}

/* whether the tiles of h fit the block's shared memory, and a stage's B copies tile_b's
 * rounds */
static int
fits(const Halo *h, int64_t es)
{
	int64_t al = 128;
	int64_t hb = (h->HD * h->HH * h->HW * h->CI * es + al - 1) / al * al;
	int64_t bb = (2 * h->tb * h->bn * h->ldb * es + al - 1) / al * al;
	int64_t cb = h->bn * h->ldc * 4;
	int64_t tt = (h->ntap * 4 + al - 1) / al * al; /* the tap table, then the rest */
	return tt + (hb + bb > cb ? hb + bb : cb) <= h->smax &&
	       h->tb * h->bn * (h->CI / h->ce) <= (int64_t)MAXROUNDS * HT;
}

/* the halo's extents for the output tile TH x TW */
static void
extents(Halo *h)
{
	const Conv *cv = &h->cv;
	h->HD = (cv->k[0] - 1) * cv->dl[0] + 1;
	h->HH = h->TH + (cv->k[1] - 1) * cv->dl[1];
	h->HW = h->TW + (cv->k[2] - 1) * cv->dl[2];
}

/* the row form: rows narrowed (to 16 at the least) until the halo fits with one tap per B
 * stage (5^3 kernels: 5 x 12 x 20 voxels at TW = 16); then 3 taps per stage where they fit */
static int
row_setup(Halo *h, int es)
{
	h->ldc = HM + 8;
	for (;; h->TW /= 2) {
		h->TH = HM / h->TW;
		extents(h);
		h->tb = 1;
		if (fits(h, es))
			break;
		if (h->TW == 16)
			return 0;
	}
	h->tb = h->ntap % 3 == 0 ? 3 : 1;
	if (!fits(h, es))
		h->tb = 1;
	return 1;
}

/* $SEGC_HALO_RB = R (2 or 4; opt-in): row blocks.  A warp owns R rows of 16 voxels of one
 * column (tiles of 4R rows of 16: 64 R voxels a block, each thread 64 R / 128 in the epilogue)
 * and the taps go in the order (kd, kw, kh), a B stage the kh taps of (kd, kw) groups, so the A
 * fragment of halo row j serves output row j - kh dh for every kh: R + (kh - 1) dh fragment
 * loads for R kh MMAs a column tile (3^3, R = 4: 6 for 12, where the row form loads 12), and
 * each B fragment R MMAs.  R halves while the accumulators pass ACCMAX or the shared memory
 * the block's limit; 0 without it (h: the row form).  A B stage holds 3 or 2 groups where
 * they fit, else one */
static int
rows_setup(Halo *h, int es)
{
	const Conv *cv = &h->cv;
	const char *e = cg_knob("SEGC_HALO_RB");
	int64_t r = e && *e ? atoll(e) : 0;
	if (r != 2 && r != NFMAX)
		return 0;
	h->rows = 1;
	h->TW = 16;
	h->tb = cv->k[1];
	for (; r >= 2; r /= 2) {
		h->nf = r;
		h->hm = 64 * r;
		h->TH = h->hm / h->TW;
		extents(h);
		h->ldc = h->hm + 8;
		if (r * h->fn <= ACCMAX && fits(h, es))
			break;
	}
	if (r < 2)
		return 0;
	/* B stages of 3 or 2 (kd, kw) groups where they fit: a third or half of the barriers */
	for (int64_t g = 3; g >= 2; g--) {
		h->tb = g * cv->k[1];
		if ((cv->k[0] * cv->k[2]) % g == 0 && fits(h, es))
			return 1;
	}
	h->tb = cv->k[1];
	return 1;
}

static int
setup(Lower *L, Halo *h)
{
	Conv *cv = &h->cv;
	const Node *n = L->root;
	const char *he = cg_knob("SEGC_MMA_HALO");
	int bf = L->p->precision == KP_BF16, es = bf ? 2 : 4;

	if (!he || atoi(he) != 1 || n->op != OP_conv3d || L->p->precision == KP_FP32 ||
	    !lw_all_f32(L))
		return 0;
	lw_conv_shape(L, cv);
	/* ($SEGC_HALO_MAXCO = N: only convs of at most N output channels, the narrow ones) */
	const char *mco = cg_knob("SEGC_HALO_MAXCO");
	if (cv->groups != 1 || cv->Co < 8 || (mco && *mco && cv->Co > atoll(mco)))
		return 0;
	for (int i = 0; i < 3; i++) /* the halo reaches (k - 1)*dilation <= 4 past the tile */
		if (cv->s[i] != 1 || cv->dl[i] < 1 || (cv->k[i] - 1) * cv->dl[i] > 4)
			return 0;
	h->CI = bf ? 16 : 8;
	h->cpu = bf ? 2 : 1;
	/* rows of at most TWMAX voxels ($SEGC_HALO_TW: 16, 32, 64 or 128): at OW = 128, two rows of
	 * 64 stage 4 x 66 halo voxels per kd where one row of 128 stages 3 x 130 (99 against 146
	 * per output voxel, 60 against 81 staging rounds per thread) in 25 KiB instead of 37 */
	const char *twe = cg_knob("SEGC_HALO_TW");
	int64_t twmax = twe && *twe ? atoll(twe) : TWMAX;
	if (twmax != 16 && twmax != 32 && twmax != 64 && twmax != 128)
		twmax = TWMAX;
	h->TW = cv->OW < twmax ? cv->OW : twmax;
	if (cv->OW % 16)
		return 0;
	/* the fewest N tiles of <= 64 columns (each stages the halo again), then the narrowest
	 * multiple of 16 (Co 48: one tile of 48, not 64 with 16 idle; Co 96: two of 48) */
	int64_t ntn = (cv->Co + 63) / 64;
	h->bn = ((cv->Co + ntn - 1) / ntn + 15) / 16 * 16;
	h->fn = h->bn / 16;
	h->ntap = cv->k[0] * cv->k[1] * cv->k[2];
	h->nch = (cv->Ci + h->CI - 1) / h->CI; /* the last chunk zero past Ci */
	h->ldb = h->CI + 8;
	h->ce = 16 / es;
	h->smax = cg_gpu_smem(L->p);
	int64_t tw = h->TW;
	if (!rows_setup(h, es)) { /* (row blocks: columns of 16, any OW % 16 == 0) */
		h->rows = 0, h->hm = HM, h->nf = 2, h->TW = tw;
		if (HM % h->TW || cv->OW % h->TW || !row_setup(h, es))
			return 0;
	}
	h->nty = (cv->OH + h->TH - 1) / h->TH;
	h->ntx = cv->OW / h->TW;
	/* 32-bit-safe sizes are not needed (i64 offsets); x's batch element must be addressable */
	h->pro = lw_has_prologue(L);
	h->x = h->pro ? lw_prologue_src(L) : n->in[0];
	h->tdt = bf ? DT_BF16 : DT_F32;
	const char *cpe = cg_knob("SEGC_MMA_CPASYNC"); /* (0 or 1: the halo through registers) */
	h->acp = !bf && !h->pro && (!cpe || !*cpe || atoi(cpe) >= 2);
	/* (row blocks: staged by 16-byte vectors of ce channels, HW x CI / ce of them a row) */
	h->rp = h->rows ? HT / (h->HW * (h->CI / h->ce)) : 0;
	return 1;
}

/* the conv's tap (kd k1 + kh) k2 + kw of the form's tap t: t itself, or with row blocks t =
 * (kd k2 + kw) k1 + kh (a B stage is the k1 taps of one (kd, kw)) */
static KNode *
conv_tap(Lower *L, const Halo *h, KNode *t)
{
	const Conv *cv = &h->cv;
	if (!h->rows)
		return t;
	KNode *kh = bin(L, KB_REM, t, ix_c(L, cv->k[1]));
	KNode *kd = bin(L, KB_DIV, t, ix_c(L, cv->k[1] * cv->k[2]));
	KNode *kw = bin(L, KB_REM, bin(L, KB_DIV, t, ix_c(L, cv->k[1])), ix_c(L, cv->k[2]));
	return ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, kd, cv->k[1]), kh), cv->k[2]), kw);
}

/* loop 1: wh[((n*nch + c)*ntap + t)*CI + ci] = w[n, c*CI + ci, conv_tap(t)] (0 past Ci) */
static void
weight_copy(Lower *L, Halo *h)
{
	int64_t dims[4] = {h->cv.Co, h->nch, h->ntap, h->CI};
	KNode *ix[4];
	h->wh = lw_scratch(L, h->tdt, h->cv.Co * h->nch * h->CI * h->ntap, "wh");
	KNode *pb = lw_nest(L, dims, 4, 0, ix);
	KNode *ti = ix_add(
	    L,
	    ix_mul(L,
	           ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, ix[0], h->nch), ix[1]), h->ntap), ix[2]),
	           h->CI),
	    ix[3]);
	KNode *ci = ix_add(L, ix_mul(L, ix[1], h->CI), ix[3]);
	KNode *wi = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, ix[0], h->cv.Ci), ci), h->ntap),
	                   conv_tap(L, h, ix[2]));
	KNode *v = kir_load(L->p, L->k, lw_buf(L, h->cv.w), wi);
	if (h->cv.Ci % h->CI) {
		int vv = kir_var(L->p, L->k, KT_F32, "wv");
		kir_append(L->p, pb, kir_let(L->p, L->k, vv, kir_f32(L->p, 0)));
		KNode *iff = kir_if(L->p, lt(L, ci, h->cv.Ci));
		kir_append(L->p, pb, iff);
		kir_append(L->p, iff->body, kir_assign(L->p, vv, v));
		v = kir_ref(L->p, L->k, vv);
	}
	kir_append(L->p, pb, kir_store(L->p, h->wh, ti, v));
}

/* the block's tile origin and its thread's fixed terms */
typedef struct {
	KNode *th, *b, *oz, *oy0, *ox0, *n0;
	KNode *q, *hx0;      /* staging: channel lane, first halo column */
	KNode *xb;           /* x offset of (b, channel 0, 0, 0, ox0 - p2 + hx0) */
	KNode *cok[MAXCOLS]; /* halo column hx0 + 16 i lies inside x (and the halo) */
	/* B copies, per round r of the thread's (tb x bn x CI/ce copies per stage): the source
	 * offset of tap 0 of chunk 0, the destination offset in a half, the row's n < Co, the
	 * round's copy within the stage (NULL: every thread's is) */
	KNode *bsrc[MAXROUNDS], *bdst[MAXROUNDS], *bok[MAXROUNDS], *bin[MAXROUNDS];
	/* row blocks' staging (tile_units): the thread's first row, column's x offset (of
	 * batch b, the vector's first channel), column in x, halo offset of its vector, the
	 * vector's first channel in a chunk */
	KNode *urow, *ux, *uok, *udst, *uc0;
} Tile;

static int64_t
halo_cols(const Halo *h)
{
	return (h->HW + HT / 8 - 1) / (HT / 8);
}

/* once per tile: which of the thread's halo columns hx0 + 16 i lie inside x (those past the
 * halo are not stored: stage_halo) */
static void
tile_cols(Lower *L, const Halo *h, Tile *t, KNode *block)
{
	const Conv *cv = &h->cv;
	for (int64_t i = 0; i < halo_cols(h); i++) {
		KNode *ix = ix_add(L, ix_add(L, t->ox0, t->hx0), ix_c(L, 16 * i - cv->p[2]));
		t->cok[i] = lw_let(L, block, "cok", lw_inrange(L, ix, cv->W));
	}
	t->xb = lw_let(L, block, "xb",
	               ix_add(L, ix_mul(L, t->b, cv->Ci * cv->D * cv->H * cv->W),
	                      ix_add(L, ix_add(L, t->ox0, t->hx0), ix_c(L, -cv->p[2]))));
}

/* the halo of chunk c: hs[((hz*HH + hy)*HW + hx)*CI + ci] = x[b, c*CI + ci, oz + hz - p0, oy0
 * + hy - p1, ox0 + hx - p2] (prologue applied), 0 outside x.  The thread's channels one after
 * another (a prologue's per-channel operands loaded once for each); per row of the halo, its
 * columns' loads at constant offsets from one row offset */
static void
stage_halo(Lower *L, const Halo *h, const Tile *t, KNode *block, KNode *c)
{
	Program *p = L->p;
	const Conv *cv = &h->cv;
	int64_t dhw = cv->D * cv->H * cv->W, hw = cv->H * cv->W;
	int xb = lw_buf(L, h->x), ragged = cv->Ci % h->CI != 0;
	for (int64_t u = 0; u < h->cpu; u++) {
		KNode *ch = lw_let(
		    L, block, "ch",
		    ix_add(L, ix_mul(L, c, h->CI), ix_add(L, ix_mul(L, t->q, h->cpu), ix_c(L, u))));
		if (h->pro) /* (a channel past Ci: its operands clamped, its elements 0) */
			lw_prologue_hoist(L, block, t->b,
			                  ragged ? kir_bin(p, KB_MIN, ch, ix_c(L, cv->Ci - 1))
			                         : ch);
		KNode *cb = lw_let(L, block, "cb", ix_add(L, t->xb, ix_mul(L, ch, dhw)));
		KNode *r;
		KNode *rl =
		    lw_loop(L, block, "hr", ix_c(L, 0), ix_c(L, h->HD * h->HH), LOOP_SERIAL, &r);
		KNode *rb = rl->body;
		KNode *hz = lw_let(L, rb, "hz", bin(L, KB_DIV, r, ix_c(L, h->HH)));
		KNode *hy = lw_let(L, rb, "hy", bin(L, KB_REM, r, ix_c(L, h->HH)));
		KNode *iz =
		    lw_let(L, rb, "iz", ix_add(L, ix_add(L, t->oz, hz), ix_c(L, -cv->p[0])));
		KNode *iy =
		    lw_let(L, rb, "iy", ix_add(L, ix_add(L, t->oy0, hy), ix_c(L, -cv->p[1])));
		KNode *rok = bin(L, KB_AND, lw_inrange(L, iz, cv->D), lw_inrange(L, iy, cv->H));
		if (ragged)
			rok = bin(L, KB_AND, rok, lt(L, ch, cv->Ci));
		rok = lw_let(L, rb, "rok", rok);
		KNode *ro = lw_let(
		    L, rb, "ro", ix_add(L, cb, ix_add(L, ix_mul(L, iz, hw), ix_mul(L, iy, cv->W))));
		KNode *dr =
		    lw_let(L, rb, "dr",
		           ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, r, h->HW), t->hx0), h->CI),
		                  ix_add(L, ix_mul(L, t->q, h->cpu), ix_c(L, u))));
		for (int64_t i = 0; i < halo_cols(h); i++) {
			KNode *ib = rb;
			if (16 * (i + 1) > h->HW) { /* columns past the halo: no store */
				KNode *iff = kir_if(p, lt(L, t->hx0, h->HW - 16 * i));
				kir_append(p, rb, iff);
				ib = iff->body;
			}
			KNode *ok = bin(L, KB_AND, rok, t->cok[i]);
			if (h->acp) { /* tf32, no prologue: a 4-byte copy, 0 where !ok */
				kir_append(p, ib,
				           kir_cp_async(p, h->hs,
				                        ix_add(L, dr, ix_c(L, 16 * i * h->CI)), xb,
				                        ix_add(L, ro, ix_c(L, 16 * i)), 1, ok));
				continue;
			}
			int vv = kir_var(p, L->k, KT_F32, "hv");
			kir_append(p, ib, kir_let(p, L->k, vv, kir_f32(p, 0)));
			KNode *iff = kir_if(p, ok);
			kir_append(p, ib, iff);
			KNode *v = kir_load(p, L->k, xb, ix_add(L, ro, ix_c(L, 16 * i)));
			if (h->pro)
				v = lw_prologue(L, iff->body, t->b, ch, v);
			kir_append(p, iff->body, kir_assign(p, vv, v));
			kir_append(p, ib,
			           kir_store(p, h->hs, ix_add(L, dr, ix_c(L, 16 * i * h->CI)),
			                     kir_ref(p, L->k, vv)));
		}
		if (h->pro)
			lw_prologue_unhoist(L);
	}
}

/* row blocks, once per tile: thread th < rp U (U = HW CI / ce units of a
 * halo row: its columns, then each column's second vector) stages unit th % U of halo rows
 * th / U, + rp, ...: its column's bounds and x offset once */
static void
tile_units(Lower *L, const Halo *h, Tile *t, KNode *block)
{
	const Conv *cv = &h->cv;
	int64_t gpv = h->CI / h->ce, dhw = cv->D * cv->H * cv->W;
	KNode *u = lw_let(L, block, "un", bin(L, KB_REM, t->th, ix_c(L, h->HW * gpv)));
	t->urow = lw_let(L, block, "ur", bin(L, KB_DIV, t->th, ix_c(L, h->HW * gpv)));
	KNode *col = lw_let(L, block, "ucol", bin(L, KB_REM, u, ix_c(L, h->HW)));
	KNode *g = bin(L, KB_DIV, u, ix_c(L, h->HW));
	t->uc0 = lw_let(L, block, "uc0", ix_mul(L, g, h->ce));
	KNode *ix = lw_let(L, block, "uix", ix_add(L, ix_add(L, t->ox0, col), ix_c(L, -cv->p[2])));
	t->uok = lw_let(L, block, "uok", lw_inrange(L, ix, cv->W));
	t->ux = lw_let(L, block, "ux",
	               ix_add(L, ix_mul(L, t->b, cv->Ci * dhw),
	                      ix_add(L, ix, ix_mul(L, t->uc0, dhw))));
	t->udst = lw_let(L, block, "udst", ix_add(L, ix_mul(L, col, h->CI), t->uc0));
}

/* row blocks: the halo of chunk c by units (tile_units): per row, ce channel loads of one
 * voxel (a warp's loads: 16 columns of two channel planes) through the load prologue, if
 * any (its operands hoisted per channel once a chunk), and one 16-byte store (tf32 without
 * a prologue: 4-byte cp.async copies instead), 0 outside x and past Ci */
static void
stage_units(Lower *L, const Halo *h, const Tile *t, KNode *block, KNode *c)
{
	Program *p = L->p;
	const Conv *cv = &h->cv;
	int64_t dhw = cv->D * cv->H * cv->W, nr = h->HD * h->HH, gpv = h->CI / h->ce;
	int xb = lw_buf(L, h->x), ragged = cv->Ci % h->CI != 0;
	KNode *act = kir_if(p, lt(L, t->th, h->rp * h->HW * gpv));
	kir_append(p, block, act);
	KNode *cb = lw_let(L, act->body, "uc", ix_add(L, t->ux, ix_mul(L, c, h->CI * dhw)));
	/* the unit's first channel; with a load prologue each of its ce channels' operands
	 * hoisted once a chunk (a channel past Ci: clamped, its elements 0) */
	KNode *ch0 = lw_let(L, act->body, "uch", ix_add(L, ix_mul(L, c, h->CI), t->uc0));
	LwHoist ho[8];
	SEGC_ASSERT(h->ce <= 8);
	for (int64_t j = 0; j < h->ce && h->pro; j++) {
		KNode *ch = ix_add(L, ch0, ix_c(L, j));
		lw_prologue_hoist(L, act->body, t->b,
		                  ragged ? kir_bin(p, KB_MIN, ch, ix_c(L, cv->Ci - 1)) : ch);
		lw_prologue_keep(L, &ho[j]);
	}
	KNode *i;
	KNode *rl = lw_loop(L, act->body, "ui", ix_c(L, 0), ix_c(L, (nr + h->rp - 1) / h->rp),
	                    LOOP_SERIAL, &i);
	KNode *r = lw_let(L, rl->body, "uq", ix_add(L, t->urow, ix_mul(L, i, h->rp)));
	KNode *in = kir_if(p, lt(L, r, nr));
	kir_append(p, rl->body, in);
	KNode *b = in->body;
	KNode *iz = ix_add(L, ix_add(L, t->oz, bin(L, KB_DIV, r, ix_c(L, h->HH))),
	                   ix_c(L, -cv->p[0]));
	KNode *iy = ix_add(L, ix_add(L, t->oy0, bin(L, KB_REM, r, ix_c(L, h->HH))),
	                   ix_c(L, -cv->p[1]));
	iz = lw_let(L, b, "uz", iz);
	iy = lw_let(L, b, "uy", iy);
	KNode *ok = lw_let(L, b, "uk",
	                   bin(L, KB_AND, t->uok,
	                       bin(L, KB_AND, lw_inrange(L, iz, cv->D), lw_inrange(L, iy, cv->H))));
	KNode *ro = lw_let(L, b, "uo", ix_add(L, cb, ix_add(L, ix_mul(L, iz, cv->H * cv->W),
	                                                    ix_mul(L, iy, cv->W))));
	KNode *dst = lw_let(L, b, "ud", ix_add(L, ix_mul(L, r, h->HW * h->CI), t->udst));
	int v0 = -1; /* the vector's ce variables, consecutive (kir_vstore) */
	for (int64_t j = 0; j < h->ce && !h->acp; j++) {
		int v = kir_var(p, L->k, KT_F32, "uv");
		SEGC_ASSERT(v0 < 0 || v == v0 + j);
		v0 = v0 < 0 ? v : v0;
	}
	for (int64_t j = 0; j < h->ce; j++) {
		KNode *okj = ok;
		if (ragged) /* channel ch0 + j < Ci */
			okj = bin(L, KB_AND, ok, lt(L, ix_add(L, ch0, ix_c(L, j)), cv->Ci));
		KNode *src = ix_add(L, ro, ix_c(L, j * dhw));
		if (h->acp) {
			KNode *d = ix_add(L, dst, ix_c(L, j));
			kir_append(p, b, kir_cp_async(p, h->hs, d, xb, src, 1, okj));
			continue;
		}
		int v = v0 + (int)j;
		kir_append(p, b, kir_let(p, L->k, v, kir_f32(p, 0)));
		KNode *iff = kir_if(p, okj);
		kir_append(p, b, iff);
		KNode *x = kir_load(p, L->k, xb, src);
		if (h->pro) {
			lw_prologue_use(L, &ho[j]);
			x = lw_prologue(L, iff->body, t->b, ix_add(L, ch0, ix_c(L, j)), x);
		}
		kir_append(p, iff->body, kir_assign(p, v, x));
	}
	if (h->pro)
		lw_prologue_unhoist(L);
	if (!h->acp)
		kir_append(p, b, kir_vstore(p, h->hs, dst, v0, (int)h->ce, 1));
}

/* once per tile: the thread's B copies of a stage (tile_b) */
static void
tile_b(Lower *L, const Halo *h, Tile *t, KNode *block)
{
	int64_t per = h->CI / h->ce, total = h->tb * h->bn * per;
	KNode *k = lw_let(L, block, "bk", ix_mul(L, bin(L, KB_REM, t->th, ix_c(L, per)), h->ce));
	SEGC_ASSERT((total + HT - 1) / HT <= MAXROUNDS && HT % per == 0);
	for (int64_t r = 0; r * HT < total; r++) {
		KNode *u = ix_add(L, t->th, ix_c(L, r * HT));
		t->bin[r] = (r + 1) * HT > total ? lw_let(L, block, "bin", lt(L, u, total)) : NULL;
		KNode *rest = lw_let(L, block, "br", bin(L, KB_DIV, u, ix_c(L, per)));
		KNode *nn = lw_let(L, block, "bnn", bin(L, KB_REM, rest, ix_c(L, h->bn)));
		KNode *tt = lw_let(L, block, "bt", bin(L, KB_DIV, rest, ix_c(L, h->bn)));
		KNode *n = lw_let(L, block, "bn", ix_add(L, t->n0, nn));
		t->bok[r] = lw_let(L, block, "bok", lt(L, n, h->cv.Co));
		t->bsrc[r] = lw_let(
		    L, block, "bsrc",
		    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, n, h->nch * h->ntap), tt), h->CI), k));
		t->bdst[r] = lw_let(
		    L, block, "bdst",
		    ix_add(L, ix_mul(L, tt, h->bn * h->ldb), ix_add(L, ix_mul(L, nn, h->ldb), k)));
	}
}

/* B of taps [tap0, tap0 + tb) of chunk c into stage half `half`: bs[half*tb*bn*ldb + t*bn*ldb
 * + nn*ldb + k] = wh[((n0 + nn)*nch + c)*ntap + tap0 + t)*CI + k], 16-byte copies, zero past
 * Co */
static void
stage_b(Lower *L, const Halo *h, const Tile *t, KNode *block, KNode *c, KNode *tap0, KNode *half)
{
	Program *p = L->p;
	int64_t per = h->CI / h->ce, total = h->tb * h->bn * per;
	KNode *hb = ix_mul(L, half, h->tb * h->bn * h->ldb);
	KNode *so =
	    lw_let(L, block, "bso", ix_mul(L, ix_add(L, ix_mul(L, c, h->ntap), tap0), h->CI));
	for (int64_t r = 0; r * HT < total; r++) {
		KNode *blk = block;
		if (t->bin[r]) {
			KNode *iff = kir_if(p, t->bin[r]);
			kir_append(p, block, iff);
			blk = iff->body;
		}
		kir_append(p, blk,
		           kir_cp_async(p, h->bs, ix_add(L, hb, t->bdst[r]), h->wh,
		                        ix_add(L, t->bsrc[r], so), (int)h->ce, t->bok[r]));
	}
}

/* once per tile: tt[t] = the halo offset (voxels) of the form's tap t, by threads < ntap
 * (read after the chunk loop's first barrier) */
static void
tile_taps(Lower *L, const Halo *h, Tile *t, KNode *block)
{
	Program *p = L->p;
	const Conv *cv = &h->cv;
	KNode *iff = kir_if(p, lt(L, t->th, h->ntap));
	kir_append(p, block, iff);
	KNode *b = iff->body, *tap = lw_let(L, iff->body, "tap", conv_tap(L, h, t->th));
	KNode *kd = ix_mul(L, bin(L, KB_DIV, tap, ix_c(L, cv->k[1] * cv->k[2])), cv->dl[0]);
	KNode *kh =
	    ix_mul(L, bin(L, KB_REM, bin(L, KB_DIV, tap, ix_c(L, cv->k[2])), ix_c(L, cv->k[1])),
	           cv->dl[1]);
	KNode *kw = ix_mul(L, bin(L, KB_REM, tap, ix_c(L, cv->k[2])), cv->dl[2]);
	KNode *to = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, kd, h->HH), kh), h->HW), kw);
	kir_append(p, b, kir_store(p, h->tt, t->th, kir_cast(p, KT_I32, to)));
}

/* the warp's MMAs for tap tap (B at bo): fragment i of the warp's 32 voxels (row base rb[i])
 * against each of its fn B column tiles */
static void
step(Lower *L, const Halo *h, const Tile *t, KNode *block, KNode *const *rb, KNode *tap, KNode *bo)
{
	Program *p = L->p;
	KNode *to = lw_let(L, block, "to", kir_cast(p, KT_I64, kir_load(p, L->k, h->tt, tap)));
	for (int i = 0; i < 2; i++) {
		KNode *ao = lw_let(L, block, "ao", ix_mul(L, ix_add(L, rb[i], to), h->CI));
		for (int j = 0; j < h->fn; j++)
			kir_append(p, block,
			           kir_mma(p, (int)(i * h->fn + j), h->hs, ao, h->bs,
			                   ix_add(L, bo, ix_c(L, 16 * j * h->ldb))));
	}
}

/* with row blocks: the warp's MMAs for the k1 taps of stage s (B at bo; rb0 its first row's
 * base).  The A fragment of halo row j is loaded once (one offset, cuda_mma_run) for the
 * output rows j - kh dh it serves, each B fragment once for the warp's nf rows */
static void
step_rows(Lower *L, const Halo *h, KNode *block, KNode *rb0, KNode *s, KNode *bo)
{
	Program *p = L->p;
	const Conv *cv = &h->cv;
	int64_t k1 = cv->k[1], dh = cv->dl[1], nj = h->nf + (k1 - 1) * dh;
	KNode *tap0 = ix_mul(L, s, k1);
	KNode *to = lw_let(L, block, "to", kir_cast(p, KT_I64, kir_load(p, L->k, h->tt, tap0)));
	KNode *ao[NFMAX + 8];
	SEGC_ASSERT(nj <= NFMAX + 8);
	for (int64_t j = 0; j < nj; j++)
		ao[j] = lw_let(L, block, "ao",
		               ix_mul(L, ix_add(L, ix_add(L, rb0, to), ix_c(L, j * h->HW)), h->CI));
	for (int64_t j = 0; j < nj; j++)
		for (int64_t kh = 0; kh < k1; kh++) {
			int64_t r = j - kh * dh;
			if (r < 0 || r >= h->nf)
				continue;
			for (int64_t jn = 0; jn < h->fn; jn++) {
				KNode *b = ix_add(L, bo, ix_c(L, (kh * h->bn + 16 * jn) * h->ldb));
				kir_append(p, block, kir_mma(p, (int)(r * h->fn + jn), h->hs,
				                             ao[j], h->bs, b));
			}
		}
}

int
tmpl_gpu_halo(Lower *L)
{
	Halo h = {0};
	Program *p = L->p;
	Kernel *k = L->k;
	if (!setup(L, &h))
		return 1;
	const Conv *cv = &h.cv;
	weight_copy(L, &h);
	/* the tap table first: Cs, over Hs, may reach past Bs, and a block's next tile writes
	 * the table while other threads may still read Cs */
	h.tt = kir_shared(p, k, DT_I32, h.ntap, 0, "Tt");
	h.hs = kir_shared(p, k, h.tdt, h.HD * h.HH * h.HW * h.CI, (int)h.CI, "Hs");
	k->bufs[h.hs].arow = 1;
	h.bs = kir_shared(p, k, h.tdt, 2 * h.tb * h.bn * h.ldb, (int)h.ldb, "Bs");
	h.cs = kir_shared_over(p, k, DT_F32, h.bn * h.ldc, (int)h.ldc, "Cs", h.hs);

	int64_t tm = cv->N * cv->OD * h.nty * h.ntx, tn = (cv->Co + h.bn - 1) / h.bn;
	/* the statistics from the tiles (Group.stats, tmpl_tile_stats): whole tiles (OH % TH ==
	 * 0), >= 32 per batch element, 2, 4 or 8 threads per column */
	TileStats sts = {0};
	int64_t ntiles = cv->OD * h.nty * h.ntx;
	int stat =
	    lw_stats(L) && cv->OH % h.TH == 0 && HT % h.bn == 0 && HT / h.bn <= 32 && ntiles >= 32;
	if (stat)
		tmpl_tile_stats_setup(L, &sts, ntiles, h.hm, cv->Co, cv->N);
	KNode *blk, *th, *c;
	KNode *tl = lw_block_loop(L, "blk", tm * tn, HT, &blk, &th);
	/* blocks per SM asked: 4 (<= 128 registers), 3 from 6 accumulators a warp (48- and
	 * 64-column tiles: 162 registers unbounded, spills at 128); $SEGC_HALO_MINB overrides (0:
	 * no request) */
	const char *mbe = cg_knob("SEGC_HALO_MINB");
	tl->op = (uint8_t)(mbe && *mbe ? atoi(mbe) : h.nf * h.fn >= 6 ? 3 : 4);
	KNode *body = tl->body;
	Tile t = {0};
	t.th = th;
	KNode *mb = lw_let(L, body, "mb", bin(L, KB_REM, blk, ix_c(L, tm)));
	KNode *nb = lw_let(L, body, "nb", bin(L, KB_DIV, blk, ix_c(L, tm)));
	int64_t dims[4] = {cv->N, cv->OD, h.nty, h.ntx};
	KNode *mo[4];
	lw_unflatten(L, body, mb, dims, 4, mo);
	t.b = mo[0], t.oz = mo[1];
	t.oy0 = lw_let(L, body, "oy0", ix_mul(L, mo[2], h.TH));
	t.ox0 = lw_let(L, body, "ox0", ix_mul(L, mo[3], h.TW));
	t.n0 = lw_let(L, body, "n0", ix_mul(L, nb, h.bn));
	t.q = lw_let(L, body, "q", bin(L, KB_REM, th, ix_c(L, 8)));
	t.hx0 = lw_let(L, body, "hx0", bin(L, KB_DIV, th, ix_c(L, 8)));
	if (h.rp)
		tile_units(L, &h, &t, body);
	else
		tile_cols(L, &h, &t, body);
	tile_b(L, &h, &t, body);
	tile_taps(L, &h, &t, body);
	/* the warp's nf fragments: voxels 16 (w nf + i) .. +15 of the tile, row tr, column tw
	 * (row blocks: rows w nf + i of column 0) */
	KNode *warp = lw_let(L, body, "warp", bin(L, KB_DIV, th, ix_c(L, 32)));
	KNode *rb[NFMAX];
	for (int i = 0; i < (h.rows ? 1 : h.nf); i++) {
		KNode *m = ix_mul(L, ix_add(L, ix_mul(L, warp, h.nf), ix_c(L, i)), 16);
		KNode *tr = bin(L, KB_DIV, m, ix_c(L, h.TW)),
		      *tw = bin(L, KB_REM, m, ix_c(L, h.TW));
		rb[i] = lw_let(L, body, "rb", ix_add(L, ix_mul(L, tr, h.HW), tw));
	}
	for (int i = 0; i < h.nf * h.fn; i++)
		kir_append(p, body, kir_mma_zero(p, i));

	/* the chunks */
	KNode *cl = lw_loop(L, body, "c", ix_c(L, 0), ix_c(L, h.nch), LOOP_SERIAL, &c);
	KNode *cb = cl->body;
	kir_append(p, cb, kir_barrier(p)); /* the last chunk's (tile's) reads of Hs, Bs, Cs */
	if (h.rp)
		stage_units(L, &h, &t, cb, c);
	else
		stage_halo(L, &h, &t, cb, c);
	stage_b(L, &h, &t, cb, c, ix_c(L, 0), ix_c(L, 0));
	kir_append(p, cb, kir_cp_wait(p));
	kir_append(p, cb, kir_barrier(p));
	KNode *s;
	int64_t nst = h.ntap / h.tb;
	/* (not unrolled: unrolled, the 64-column tiles took 202 registers) */
	KNode *sl = lw_loop(L, cb, "s", ix_c(L, 0), ix_c(L, nst), LOOP_SERIAL, &s);
	KNode *sb = sl->body;
	KNode *cur = lw_let(L, sb, "cur", bin(L, KB_REM, s, ix_c(L, 2)));
	if (nst > 1) {
		KNode *iff = kir_if(p, lt(L, s, nst - 1));
		kir_append(p, sb, iff);
		stage_b(L, &h, &t, iff->body, c, ix_mul(L, ix_add(L, s, ix_c(L, 1)), h.tb),
		        kir_bin(p, KB_SUB, ix_c(L, 1), cur));
	}
	KNode *bo = lw_let(L, sb, "bo", ix_mul(L, cur, h.tb * h.bn * h.ldb));
	for (int64_t u = 0; h.rows && u < h.tb / cv->k[1]; u++)
		step_rows(L, &h, sb, rb[0], ix_add(L, ix_mul(L, s, h.tb / cv->k[1]), ix_c(L, u)),
		          ix_add(L, bo, ix_c(L, u * cv->k[1] * h.bn * h.ldb)));
	for (int64_t u = 0; u < h.tb && !h.rows; u++)
		step(L, &h, &t, sb, rb, ix_add(L, ix_mul(L, s, h.tb), ix_c(L, u)),
		     ix_add(L, bo, ix_c(L, u * h.bn * h.ldb)));
	kir_append(p, sb, kir_cp_wait(p));
	kir_append(p, sb, kir_barrier(p));

	/* the accumulators -> Cs (over the halo) -> the epilogue, one voxel per thread (row
	 * blocks of 4: two, vx and vx + 128) */
	for (int i = 0; i < h.nf; i++)
		for (int j = 0; j < h.fn; j++) {
			KNode *co = ix_add(L, ix_mul(L, warp, 16 * h.nf),
			                   ix_c(L, 16 * i + 16 * j * h.ldc));
			kir_append(p, body, kir_mma_store(p, (int)(i * h.fn + j), h.cs, co));
		}
	kir_append(p, body, kir_barrier(p));
	KNode *eb = body, *vx = th;
	if (h.hm > HT) {
		KNode *u;
		KNode *ul = lw_loop(L, body, "u", ix_c(L, 0), ix_c(L, h.hm / HT), LOOP_SERIAL, &u);
		eb = ul->body;
		vx = lw_let(L, eb, "vx", ix_add(L, th, ix_mul(L, u, HT)));
	}
	KNode *oy = lw_let(L, eb, "oy", ix_add(L, t.oy0, bin(L, KB_DIV, vx, ix_c(L, h.TW))));
	KNode *ox = lw_let(L, eb, "ox", ix_add(L, t.ox0, bin(L, KB_REM, vx, ix_c(L, h.TW))));
	KNode *j;
	KNode *jl = lw_loop(L, eb, "j", ix_c(L, 0), ix_c(L, h.bn), LOOP_SERIAL, &j);
	KNode *n = lw_let(L, jl->body, "n", ix_add(L, t.n0, j));
	KNode *iff = kir_if(p, bin(L, KB_AND, lt(L, n, cv->Co), lt(L, oy, cv->OH)));
	kir_append(p, jl->body, iff);
	KNode *v = kir_load(p, k, h.cs, ix_add(L, vx, ix_mul(L, j, h.ldc)));
	if (cv->b)
		v = bin(L, KB_ADD, v, kir_load(p, k, lw_buf(L, cv->b), n));
	KNode *idx[5] = {t.b, n, t.oz, oy, ox};
	Coord co;
	coord_full(&co, lw_type(L, L->root->out[0]), idx);
	int rc = lw_output(L, iff->body, &co, v);
	if (rc < 0 || !stat)
		return rc;
	/* the result over its accumulator (a block's next tile starts with a barrier) */
	KNode *ci = ix_add(L, vx, ix_mul(L, j, h.ldc));
	kir_append(p, iff->body, kir_store(p, h.cs, ci, L->out_val));
	tmpl_tile_stats(L, &sts, body, th, HT, h.bn, mb, t.n0, h.cs, h.ldc);
	return tmpl_tile_stats_merge(L, &sts);
}
