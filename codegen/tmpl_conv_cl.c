/* codegen/tmpl_conv_cl.c -- conv3d_ndhwc: conv3d on channels-last tensors, on the CPU.
 *
 * x [N, D, H, W, Ci], y [N, OD, OH, OW, Co], the weight conv3d's [Co, Ci/G, kd, kh, kw].
 * Channels are contiguous in x and y, so the vector lanes are 16 output channels and the
 * accumulators a block of R output positions (a register-resident micro-kernel, the lane
 * loop widened by emit_llvm_vec.c):
 *   wpack[B][kd][kh][ci][kw][16] = w[co0 + j, ci, kd, kh, kw]   (a first parallel loop;
 *                                  0 for lanes past the group's channels)
 *   for (B, n, od, oh) parallel: for each block of R positions along ow:
 *     for lane in [0, 16) vector:                   co = co0 + lane
 *       acc[r] = bias[co]
 *       for kd (if id inside): for kh (if ih inside): for ci in the group:
 *         wv[kw] = wpack[.., ci, kw, lane]                           (one vector load each)
 *         acc[r] += wv[kw] * x[n, id, ih, iw(r, kw), cx0 + ci]        (a broadcast scalar)
 *       y[n, od, oh, ow(r), co] = epilogue(acc[r])                   (vector stores)
 * B walks the groups' blocks of 16 output channels (a group of 20 channels: a block of 16
 * and one of 4 lanes).  The blocks of R positions along ow whose taps are all inside the
 * input run in one loop (ow0 a variable); the border blocks are unrolled with ow0 a
 * constant, so taps outside the input are left out per position, never masked.  Planes of
 * OW <= 8 and OH x OW <= 64 (the deep levels) run in blocks of whole rows (<= 16
 * positions), every position a constant, so each (kh, r) tap's validity is known here too.
 * Depthwise (one input and one output channel per group): the lanes are 16 channels of x as
 * well (x one vector load per tap).  The epilogue runs at each output element inside the
 * lane loop (lw_output), so the sums are stored once.
 * Small volumes with >= 8 channel blocks (weight-bound) pack per parallel iteration instead:
 *   for B parallel: for chunk of input channels (<= 128 KiB of packed weights, in L2):
 *     pack the chunk; for n, od, [oh]: blocks as above, from / into partial sums in scratch
 * 3^3 convs try Winograd first (tmpl_conv_cl_wino.c).  On CUDA the GPU forms lower the op
 * (tmpl_gpu.c); without one it is a compile-time error.  Measurements and switches:
 * docs/performance.md, "Channels-last conv on the CPU". */
#include "tmpl.h"

#include <stdlib.h>
#include <string.h>

/* CL_LOCALPAR, CL_LOCALVOL: the local pack from this many channel blocks, up to this many
 * output positions; CL_CHUNK: bytes of packed weights per chunk of input channels */
enum {
	CL_LANES = 16,
	CL_MAXR = 16,
	CL_MAXKW = 16,
	CL_PLANE = 64,
	CL_LOCALPAR = 8,
	CL_LOCALVOL = 4096,
	CL_CHUNK = 128 << 10
};

typedef struct {
	Conv cv;
	int64_t nb;   /* blocks of 16 output channels per group (all channels when dw) */
	int64_t nbt;  /* blocks in all */
	int64_t cigl; /* input channels the ci loop walks: cig, 1 when dw */
	int64_t wcs;  /* input channels per (B, kk) row of wpack: cigl, or the chunk's CC */
	int64_t K3;
	int dw;   /* depthwise: the lanes are x's channels too */
	int tail; /* some blocks have lanes past their group's channels */
	int xb, wb;
	KNode *n, *od, *oh; /* oh: row mode's, else NULL */
	KNode *co0, *cx0, *lim, *wB;
	/* chunks (local pack): this chunk's first input channel and count; the first and last
	 * chunk (uniform bools); the partial sums' buffer (0: one chunk) and this plane's base */
	KNode *c0, *cn, *first, *last;
	int part;
	KNode *pbase;
} Cl;

/* One block: R positions (oh, ow); ow = owc[r] (+ ow0 when ow0 is not NULL: the interior
 * loop, every tap inside); oh = ohc[r] in plane mode, else the iteration's oh. */
typedef struct {
	int R;
	int64_t ohc[CL_MAXR], owc[CL_MAXR];
	KNode *ow0;
} ClBlk;

static int64_t
cdiv(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

/* 0 <= i < n */
static KNode *
inrange(Lower *L, KNode *i, int64_t n)
{
	return kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, i, ix_c(L, 0)),
	               kir_bin(L->p, KB_LT, i, ix_c(L, n)));
}

/* a let of buffer b at idx, 0 unless cond (a predicated, i.e. masked, load); cond NULL: plain */
static KNode *
guarded_load(Lower *L, KNode *block, const char *name, int b, KNode *idx, KNode *cond)
{
	if (!cond)
		return lw_let(L, block, name, kir_load(L->p, L->k, b, idx));
	int v = kir_var(L->p, L->k, KT_F32, name);
	kir_append(L->p, block, kir_let(L->p, L->k, v, kir_f32(L->p, 0)));
	KNode *ifl = kir_if(L->p, cond);
	kir_append(L->p, block, ifl);
	kir_append(L->p, ifl->body, kir_assign(L->p, v, kir_load(L->p, L->k, b, idx)));
	return kir_ref(L->p, L->k, v);
}

/* The first channel co0 of block B and its lane count lim (lets in block). */
static void
cl_block_chans(Lower *L, const Cl *c, KNode *block, KNode *B, KNode **co0, KNode **lim)
{
	const Conv *cv = &c->cv;
	if (c->dw) {
		*co0 = lw_let(L, block, "co0", ix_mul(L, B, CL_LANES));
		*lim = ix_add(L, ix_c(L, cv->Co), ix_mul(L, *co0, -1));
	} else {
		KNode *g = kir_bin(L->p, KB_DIV, B, ix_c(L, c->nb));
		KNode *bo = lw_let(L, block, "bo",
		                   ix_mul(L, kir_bin(L->p, KB_REM, B, ix_c(L, c->nb)), CL_LANES));
		*co0 = lw_let(L, block, "co0", ix_add(L, ix_mul(L, g, cv->cog), bo));
		*lim = ix_add(L, ix_c(L, cv->cog), ix_mul(L, bo, -1));
	}
	*lim = c->tail ? lw_let(L, block, "lim", *lim) : NULL;
}

/* Packs the weights of block B (channels co0 + j, j < lim) for input channel ci, or for
 * every ci when ci is NULL, at wpack[((B*KK + kk)*cigl + ci)*KW*16 + kw*16 + j]:
 *   for j vector: [for ci:] for kk: for kw (unrolled): wpack[..] = w[co0 + j, ci, kk*KW + kw]
 * (0 for lanes j >= lim).  The lane loop holds loops, so the CPU emitter widens it: a
 * gather of the 16 channels' weights and one vector store per tap, no per-row setup (as
 * an innermost 16-lane loop, LLVM's vectorizer spent ~2 cycles per weight in its checks). */
static void
cl_pack_rows(Lower *L, const Cl *c, KNode *block, int pb, KNode *B, KNode *co0, KNode *lim,
             KNode *ci)
{
	const Conv *cv = &c->cv;
	int64_t KW = cv->k[2], KK = cv->k[0] * cv->k[1];
	KNode *j, *kk;
	KNode *jl = lw_loop(L, block, "j", ix_c(L, 0), ix_c(L, CL_LANES), LOOP_VECTOR, &j);
	KNode *b = jl->body;
	KNode *ok = lim ? lw_let(L, b, "ok", kir_bin(L->p, KB_LT, j, lim)) : NULL;
	KNode *wrow = lw_let(L, b, "wrow", ix_mul(L, ix_add(L, co0, j), cv->cig * c->K3));
	if (!ci) {
		KNode *hi = c->cn ? c->cn : ix_c(L, c->cigl);
		KNode *cl = lw_loop(L, b, "ci", ix_c(L, 0), hi, LOOP_SERIAL, &ci);
		b = cl->body;
	}
	KNode *cs = c->c0 ? ix_add(L, c->c0, ci) : ci; /* the source's input channel */
	KNode *src0 = lw_let(L, b, "src", ix_add(L, wrow, ix_mul(L, cs, c->K3)));
	KNode *dst0 = ix_add(L, ix_mul(L, B, KK * c->wcs * KW * CL_LANES),
	                     ix_add(L, ix_mul(L, ci, KW * CL_LANES), j));
	dst0 = lw_let(L, b, "dst", dst0);
	KNode *kl = lw_loop(L, b, "kk", ix_c(L, 0), ix_c(L, KK), LOOP_SERIAL, &kk);
	KNode *src = lw_let(L, kl->body, "s", ix_add(L, src0, ix_mul(L, kk, KW)));
	KNode *dst =
	    lw_let(L, kl->body, "d", ix_add(L, dst0, ix_mul(L, kk, c->wcs * KW * CL_LANES)));
	for (int64_t kw = 0; kw < KW; kw++) {
		KNode *v = guarded_load(L, kl->body, "wv", c->wb, ix_add(L, src, ix_c(L, kw)), ok);
		kir_append(L->p, kl->body,
		           kir_store(L->p, pb, ix_add(L, dst, ix_c(L, kw * CL_LANES)), v));
	}
}

/* The weights into scratch as wpack[B][kd][kh][ci][kw][16], block B at B*K3*cigl*16.
 * local: inside the main loop's iteration of block B (block), which then reads them from
 * L2; else a first parallel loop of the kernel over (B, ci).  Returns the scratch buffer. */
static int
cl_pack(Lower *L, const Cl *c, KNode *block, KNode *B, KNode *co0, KNode *lim)
{
	int pb = lw_scratch(L, DT_F32, c->nbt * c->K3 * c->wcs * CL_LANES, "wpack");
	KNode *ci = NULL;
	if (!block) {
		int64_t dims[2] = {c->nbt, c->cigl};
		KNode *idx[2];
		block = lw_nest(L, dims, 2, 0, idx);
		B = idx[0], ci = idx[1];
		cl_block_chans(L, c, block, B, &co0, &lim);
	}
	cl_pack_rows(L, c, block, pb, B, co0, lim, ci);
	return pb;
}

/* The taps of one (kd, kh) row for the block: xr[r] the x index of (n, id, ih_r, 0, cx0), or
 * NULL when ih_r is outside; iw(r, kw) = ow(r)*sw + kw*dw - pw.  A ci loop; per ci the KW
 * weight vectors, then each x element once for every (r, kw) that reads it. */
static void
cl_taps(Lower *L, const Cl *c, const ClBlk *bk, KNode *block, KNode *const *xr, KNode *wr,
        const int *acc, KNode *lane, KNode *ok)
{
	const Conv *cv = &c->cv;
	int64_t KW = cv->k[2], sw = cv->s[2], dw = cv->dl[2], pw = cv->p[2];
	int valid[CL_MAXR][CL_MAXKW], anyw[CL_MAXKW] = {0};
	int64_t iw[CL_MAXR][CL_MAXKW];
	for (int r = 0; r < bk->R; r++)
		for (int64_t kw = 0; kw < KW; kw++) {
			iw[r][kw] = bk->owc[r] * sw + kw * dw - pw;
			valid[r][kw] = xr[r] && (bk->ow0 || (iw[r][kw] >= 0 && iw[r][kw] < cv->W));
			anyw[kw] |= valid[r][kw];
		}
	KNode *ci = ix_c(L, 0), *b = block;
	if (c->cigl > 1) {
		KNode *hi = c->cn ? c->cn : ix_c(L, c->cigl);
		KNode *cl = lw_loop(L, block, "ci", ix_c(L, 0), hi, LOOP_SERIAL, &ci);
		b = cl->body;
	}
	KNode *xc = c->dw ? ix_add(L, ci, lane) : ci; /* x channel offset from cx0 */
	KNode *wc =
	    c->cigl > 1 ? lw_let(L, b, "wc", ix_add(L, wr, ix_mul(L, ci, KW * CL_LANES))) : wr;
	KNode *wv[CL_MAXKW] = {0};
	for (int64_t kw = 0; kw < KW; kw++)
		if (anyw[kw])
			wv[kw] = lw_let(
			    L, b, "wv",
			    kir_load(L->p, L->k, c->wb, ix_add(L, wc, ix_c(L, kw * CL_LANES))));
	/* x elements in order: for each r's row, each iw; one load for every (r, kw) reading it */
	int done[CL_MAXR][CL_MAXKW];
	memset(done, 0, sizeof done);
	for (int r = 0; r < bk->R; r++)
		for (int64_t kw = 0; kw < KW; kw++) {
			if (!valid[r][kw] || done[r][kw])
				continue;
			KNode *xi = ix_add(L, xr[r], ix_add(L, ix_c(L, iw[r][kw] * cv->Ci), xc));
			KNode *xv = c->dw && ok
			                ? guarded_load(L, b, "xv", c->xb, xi, ok)
			                : lw_let(L, b, "xv", kir_load(L->p, L->k, c->xb, xi));
			for (int r2 = r; r2 < bk->R; r2++)
				for (int64_t k2 = 0; k2 < KW; k2++) {
					if (!valid[r2][k2] || done[r2][k2] || xr[r2] != xr[r] ||
					    iw[r2][k2] != iw[r][kw])
						continue;
					done[r2][k2] = 1;
					KNode *sum =
					    kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc[r2]),
					            kir_bin(L->p, KB_MUL, wv[k2], xv));
					kir_append(L->p, b, kir_assign(L->p, acc[r2], sum));
				}
		}
}

/* One block: the lane loop with the R accumulators, the reduction, the epilogue. */
static int
cl_block(Lower *L, const Cl *c, const ClBlk *bk, KNode *block)
{
	const Conv *cv = &c->cv;
	int64_t KH = cv->k[1];
	KNode *l, *kd, *kh;
	int acc[CL_MAXR];
	KNode *ll = lw_loop(L, block, "lane", ix_c(L, 0), ix_c(L, CL_LANES), LOOP_VECTOR, &l);
	KNode *b = ll->body;
	KNode *co = lw_let(L, b, "co", ix_add(L, c->co0, l));
	KNode *ok = c->tail ? lw_let(L, b, "ok", kir_bin(L->p, KB_LT, l, c->lim)) : NULL;
	KNode *bias = cv->b ? guarded_load(L, b, "b", lw_buf(L, cv->b), co, ok) : kir_f32(L->p, 0);
	KNode *pi[CL_MAXR];
	for (int r = 0; r < bk->R; r++) {
		acc[r] = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, b, kir_let(L->p, L->k, acc[r], bias));
		/* the partial sums of (oh, ow) at part[pbase + (oh*OW + ow)*16 + l] */
		if (c->part) {
			KNode *ow =
			    bk->ow0 ? ix_add(L, bk->ow0, ix_c(L, bk->owc[r])) : ix_c(L, bk->owc[r]);
			pi[r] = ix_add(
			    L, ix_add(L, c->pbase, l),
			    ix_mul(L, ix_add(L, ow, ix_c(L, c->oh ? 0 : bk->ohc[r] * cv->OW)),
			           CL_LANES));
		}
	}
	if (c->part) { /* after the first chunk: from the partial sums */
		KNode *ifp = kir_if(L->p, kir_un(L->p, KU_NOT, c->first));
		kir_append(L->p, b, ifp);
		for (int r = 0; r < bk->R; r++)
			kir_append(L->p, ifp->body,
			           kir_assign(L->p, acc[r], kir_load(L->p, L->k, c->part, pi[r])));
	}
	KNode *dl = lw_loop(L, b, "kd", ix_c(L, 0), ix_c(L, cv->k[0]), LOOP_SERIAL, &kd);
	KNode *id =
	    lw_let(L, dl->body, "id",
	           ix_add(L, ix_add(L, ix_mul(L, c->od, cv->s[0]), ix_mul(L, kd, cv->dl[0])),
	                  ix_c(L, -cv->p[0])));
	KNode *ifd = kir_if(L->p, inrange(L, id, cv->D));
	kir_append(L->p, dl->body, ifd);
	KNode *xd =
	    lw_let(L, ifd->body, "xd", ix_mul(L, ix_add(L, ix_mul(L, c->n, cv->D), id), cv->H));
	KNode *wd = ix_add(L, c->wB, ix_mul(L, kd, KH * c->wcs * cv->k[2] * CL_LANES));
	wd = lw_let(L, ifd->body, "wd", ix_add(L, wd, l));
	int64_t rowx = cv->W * cv->Ci; /* x elements per (id, ih) row */
	KNode *xr[CL_MAXR];
	if (c->oh) { /* row mode: oh uniform, kh a loop with a uniform branch */
		KNode *hl = lw_loop(L, ifd->body, "kh", ix_c(L, 0), ix_c(L, KH), LOOP_SERIAL, &kh);
		KNode *ih = lw_let(
		    L, hl->body, "ih",
		    ix_add(L, ix_add(L, ix_mul(L, c->oh, cv->s[1]), ix_mul(L, kh, cv->dl[1])),
		           ix_c(L, -cv->p[1])));
		KNode *ifh = kir_if(L->p, inrange(L, ih, cv->H));
		kir_append(L->p, hl->body, ifh);
		KNode *x0 = ix_add(L, ix_mul(L, ix_add(L, xd, ih), rowx), c->cx0);
		if (bk->ow0)
			x0 = ix_add(L, x0, ix_mul(L, bk->ow0, cv->s[2] * cv->Ci));
		x0 = lw_let(L, ifh->body, "xr", x0);
		for (int r = 0; r < bk->R; r++)
			xr[r] = x0;
		KNode *wr = lw_let(L, ifh->body, "wr",
		                   ix_add(L, wd, ix_mul(L, kh, c->wcs * cv->k[2] * CL_LANES)));
		cl_taps(L, c, bk, ifh->body, xr, wr, acc, l, ok);
	} else { /* plane mode: every position's oh a constant, kh unrolled */
		KNode *xd0 = lw_let(L, ifd->body, "xp", ix_add(L, ix_mul(L, xd, rowx), c->cx0));
		for (int64_t k = 0; k < KH; k++) {
			int any = 0;
			KNode *rows[CL_MAXR] = {0}; /* one expression per distinct ih */
			for (int r = 0; r < bk->R; r++) {
				int64_t ih = bk->ohc[r] * cv->s[1] + k * cv->dl[1] - cv->p[1];
				xr[r] = NULL;
				if (ih < 0 || ih >= cv->H)
					continue;
				for (int r2 = 0; r2 < r && !xr[r]; r2++)
					if (bk->ohc[r2] == bk->ohc[r])
						xr[r] = rows[r2];
				if (!xr[r])
					xr[r] = lw_let(L, ifd->body, "xr",
					               ix_add(L, xd0, ix_c(L, ih * rowx)));
				rows[r] = xr[r];
				any = 1;
			}
			if (!any)
				continue;
			KNode *wr =
			    lw_let(L, ifd->body, "wr",
			           ix_add(L, wd, ix_c(L, k * c->wcs * cv->k[2] * CL_LANES)));
			cl_taps(L, c, bk, ifd->body, xr, wr, acc, l, ok);
		}
	}
	if (c->part) { /* before the last chunk: the partial sums */
		KNode *ifp = kir_if(L->p, kir_un(L->p, KU_NOT, c->last));
		kir_append(L->p, b, ifp);
		for (int r = 0; r < bk->R; r++)
			kir_append(L->p, ifp->body,
			           kir_store(L->p, c->part, pi[r], kir_ref(L->p, L->k, acc[r])));
		KNode *ifl = kir_if(L->p, c->last);
		kir_append(L->p, b, ifl);
		b = ifl->body;
	}
	/* the epilogue at (n, od, oh, ow, co), inside the lane loop */
	const Type *ot = lw_type(L, cv->out);
	KNode *ob = b;
	if (ok) {
		KNode *ifo = kir_if(L->p, ok);
		kir_append(L->p, b, ifo);
		ob = ifo->body;
	}
	for (int r = 0; r < bk->R; r++) {
		KNode *oh = c->oh ? c->oh : ix_c(L, bk->ohc[r]);
		KNode *ow = bk->ow0 ? ix_add(L, bk->ow0, ix_c(L, bk->owc[r])) : ix_c(L, bk->owc[r]);
		KNode *oidx[5] = {c->n, c->od, oh, ow, co};
		Coord crd;
		coord_full(&crd, ot, oidx);
		if (lw_output(L, ob, &crd, kir_ref(L->p, L->k, acc[r])) < 0)
			return -1;
	}
	return 0;
}

/* positions per row block: SEGC_CONVCL_R (compile time, A/B), else 8 */
static int64_t
row_block(const Conv *cv)
{
	const char *e = cg_knob("SEGC_CONVCL_R");
	int64_t R = e ? atoll(e) : 8;
	R = R < 1 ? 1 : R > CL_MAXR ? CL_MAXR : R;
	return cv->OW <= CL_MAXR ? cv->OW : R;
}

int
tmpl_conv_ndhwc(Lower *L)
{
	Cl c;
	memset(&c, 0, sizeof c);
	Conv *cv = &c.cv;

	if (L->p->gpu)
		return cg_unsupported(L->d, L->k, "cuda", "conv3d_ndhwc");
	lw_conv_shape(L, cv); /* channels last: the Conv fields keep their meaning */
	int rc = tmpl_conv_cl_wino(L); /* Winograd for the 3^3 convs (tmpl_conv_cl_wino.c) */
	if (rc != 1)
		return rc;
	if (cv->k[2] > CL_MAXKW)
		return lw_fail(L, "conv3d_ndhwc: kernel width over 16 is not supported");
	c.dw = cv->cig == 1 && cv->cog == 1;
	c.nb = c.dw ? cdiv(cv->Co, CL_LANES) : cdiv(cv->cog, CL_LANES);
	c.nbt = c.dw ? c.nb : cv->groups * c.nb;
	c.tail = c.dw ? cv->Co % CL_LANES != 0 : cv->cog % CL_LANES != 0;
	c.cigl = c.dw ? 1 : cv->cig;
	c.K3 = cv->k[0] * cv->k[1] * cv->k[2];
	c.xb = lw_buf(L, cv->x);
	c.wb = lw_buf(L, cv->w);

	/* plane mode: narrow planes (the deep levels) in blocks of whole rows, positions known
	 * here.  Small volumes with enough channel blocks for the threads (weight-bound): an
	 * iteration per channel block packs its own weights, in chunks of input channels that
	 * stay in L2 (every (n, od, oh) reads them; partial sums in scratch between chunks);
	 * else the weights are packed by a first loop. */
	int plane = cv->OH > 1 && cv->OW <= CL_MAXR / 2 && cv->OH * cv->OW <= CL_PLANE &&
	            !cg_knob("SEGC_CONVCL_NOPLANE");
	int64_t vol = cv->N * cv->OD * cv->OH * cv->OW;
	int local = c.nbt >= CL_LOCALPAR && vol <= CL_LOCALVOL &&
	            !cg_knob("SEGC_CONVCL_GLOBALPACK");
	int64_t CC = CL_CHUNK / (c.K3 * CL_LANES * 4), nch = 1;
	CC = CC < 1 ? 1 : CC;
	if (local && c.cigl > CC)
		nch = cdiv(c.cigl, CC), CC = cdiv(c.cigl, nch); /* even chunks */
	c.wcs = local && nch > 1 ? CC : c.cigl;
	int pb = local ? 0 : cl_pack(L, &c, NULL, NULL, NULL, NULL);
	int64_t dims[4] = {c.nbt, cv->N, cv->OD, cv->OH};
	KNode *idx[4];
	KNode *body = lw_nest(L, dims, local ? 1 : plane ? 3 : 4, 0, idx);
	KNode *B = idx[0];
	cl_block_chans(L, &c, body, B, &c.co0, &c.lim);
	c.cx0 = c.dw ? c.co0
	             : lw_let(L, body, "cx0",
	                      ix_mul(L, kir_bin(L->p, KB_DIV, B, ix_c(L, c.nb)), cv->cig));
	if (local) {
		if (nch > 1) {
			KNode *ch;
			KNode *chl =
			    lw_loop(L, body, "ch", ix_c(L, 0), ix_c(L, nch), LOOP_SERIAL, &ch);
			body = chl->body;
			c.c0 = lw_let(L, body, "c0", ix_mul(L, ch, CC));
			c.cn = lw_let(L, body, "cn",
			              kir_bin(L->p, KB_MIN, ix_c(L, CC),
			                      ix_add(L, ix_c(L, c.cigl), ix_mul(L, c.c0, -1))));
			c.first = lw_let(L, body, "first", kir_bin(L->p, KB_EQ, ch, ix_c(L, 0)));
			c.last =
			    lw_let(L, body, "last", kir_bin(L->p, KB_EQ, ch, ix_c(L, nch - 1)));
			c.cx0 = lw_let(L, body, "cxc", ix_add(L, c.cx0, c.c0));
			c.part = lw_scratch(L, DT_F32, c.nbt * vol * CL_LANES, "cl_part");
		}
		pb = cl_pack(L, &c, body, B, c.co0, c.lim);
		KNode *nl = lw_loop(L, body, "n", ix_c(L, 0), ix_c(L, cv->N), LOOP_SERIAL, &idx[1]);
		KNode *dl =
		    lw_loop(L, nl->body, "od", ix_c(L, 0), ix_c(L, cv->OD), LOOP_SERIAL, &idx[2]);
		body = dl->body;
		if (!plane) {
			KNode *hl = lw_loop(L, body, "oh", ix_c(L, 0), ix_c(L, cv->OH), LOOP_SERIAL,
			                    &idx[3]);
			body = hl->body;
		}
	}
	c.wb = pb;
	c.n = idx[1], c.od = idx[2], c.oh = plane ? NULL : idx[3];
	c.wB = lw_let(L, body, "wB", ix_mul(L, B, c.K3 * c.wcs * CL_LANES));
	if (c.part) { /* ((B*N + n)*OD + od)*OH [+ oh] positions, times 16 */
		KNode *pl = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, B, cv->N), c.n), cv->OD), c.od);
		pl = ix_mul(L, pl, cv->OH);
		if (c.oh)
			pl = ix_add(L, pl, c.oh);
		c.pbase = lw_let(L, body, "pbase", ix_mul(L, pl, cv->OW * CL_LANES));
	}

	ClBlk bk;
	if (plane) { /* blocks of whole rows, <= 16 positions, every position a constant */
		int64_t rpb = CL_MAXR / cv->OW;
		for (int64_t oh0 = 0; oh0 < cv->OH; oh0 += rpb) {
			memset(&bk, 0, sizeof bk);
			for (int64_t oh = oh0; oh < oh0 + rpb && oh < cv->OH; oh++)
				for (int64_t ow = 0; ow < cv->OW; ow++, bk.R++)
					bk.ohc[bk.R] = oh, bk.owc[bk.R] = ow;
			if (cl_block(L, &c, &bk, body) < 0)
				return -1;
		}
		return 0;
	}
	/* row mode: blocks of R along ow; the interior ones (every tap inside) in one loop */
	int64_t R = row_block(cv), nblk = cdiv(cv->OW, R);
	int64_t sw = cv->s[2], reach = (cv->k[2] - 1) * cv->dl[2] - cv->p[2];
	int64_t blo = cdiv(cv->p[2], R * sw), bhi = -1;
	for (int64_t b = 0; b < nblk; b++)
		if ((b + 1) * R <= cv->OW && ((b + 1) * R - 1) * sw + reach <= cv->W - 1)
			bhi = b;
	if (cg_knob("SEGC_CONVCL_NOLOOP")) /* A/B: every block unrolled */
		bhi = -1;
	for (int64_t b = 0; b < nblk; b++) {
		if (b == blo && blo <= bhi) {
			KNode *bi;
			KNode *bl = lw_loop(L, body, "blk", ix_c(L, blo), ix_c(L, bhi + 1),
			                    LOOP_SERIAL, &bi);
			memset(&bk, 0, sizeof bk);
			bk.R = (int)R;
			for (int r = 0; r < bk.R; r++)
				bk.owc[r] = r;
			bk.ow0 = lw_let(L, bl->body, "ow0", ix_mul(L, bi, R));
			if (cl_block(L, &c, &bk, bl->body) < 0)
				return -1;
			b = bhi;
			continue;
		}
		memset(&bk, 0, sizeof bk);
		bk.R = (int)(cv->OW - b * R < R ? cv->OW - b * R : R);
		for (int r = 0; r < bk.R; r++)
			bk.owc[r] = b * R + r;
		if (cl_block(L, &c, &bk, body) < 0)
			return -1;
	}
	return 0;
}
