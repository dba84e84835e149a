/* codegen/tmpl_gpu_conv.c -- SIMT GPU forms of conv3d, conv3d_ndhwc, conv_transpose3d, linear and
 * matmul (fp32; and the fallback when tmpl_gpu_mma has no tensor-core form).  See docs/cuda.md,
 * "GPU forms: convolution".
 *
 * emit_cuda.c gives every iteration of a top-level parallel loop its own thread, consecutive
 * iterations to consecutive threads of a warp.  So each form is one flat parallel loop whose
 * index puts the dimension that is contiguous in memory fastest (coalesced loads and stores)
 * and the output-channel block outside it (the warp reads the same weights: one broadcast
 * transaction), and each thread computes a small register tile whose accumulators are
 * variables, the tile loops unrolled at compile time:
 *   conv3d       thread = (n, od, channel block, oh tile, ow); tile COB channels x PH rows;
 *                per (ci, kd): R = (PH-1)*sh + (KH-1)*dh + 1 input rows x KW taps of x, each
 *                loaded once and used by every (channel, row) it feeds.  Border taps are
 *                selects on per-thread row/column validity (only where a tap can fall out).
 *                With under FILL/2 threads, the ci loop is split into chunks first (partial
 *                sums in scratch; a second loop adds them, the bias and the epilogue).
 *   convT k == s thread = (n, od, channel block, oh phase, h tile, w); tile COB channels x S2
 *                w phases x PH input rows; one tap per output, so per ci: PH x loads, COB*S2
 *                weights.  Other convT: gather, thread = (n, od, channel block, oh, ow).
 *   conv3d_ndhwc (channels last) loop 1: wT[tap, ci, co] in scratch; loop 2: thread = (n, od,
 *                oh, ow tile, channel block, lane), co = (block*COB + j)*LW + lane: a warp's
 *                lanes are consecutive channels of one voxel (x loads broadcast, weight loads
 *                and stores coalesced); tile COB channels x PW outputs along ow.
 *   linear       loop 1 transposes W [O, I] into scratch Wt [I, O]; loop 2 is the GEMM below.
 *   matmul       y[b, m, n] = sum_k A[b, m, k] B[b, k, n]: thread = (batch, m tile, n block,
 *                lane) with n = block*OB*LW + j*LW + lane (LW = min(32, N) lanes): B loads
 *                are coalesced over lanes, A loads are warp-uniform; tile RB rows x OB cols.
 * A conv3d whose group has a norm's statistics (Group.stats) computes them from its threads'
 * outputs where whole warps share one (n, od, channel block, oh tile): the launch is then
 * block-mapped (simt_stats).
 * A conv3d root with a load prologue (Group.pro, docs/codegen.md) reads the prologue's
 * source and applies the chain once per loaded x element (its per-channel operands loaded
 * once per input channel); out-of-bounds taps stay 0.  Other roots have no prologue.
 * Pools keep the generic template (tmpl_pool.c): on a GPU lw_nest already makes it one thread
 * per output element with ow fastest, which is this file's mapping.  Tiles shrink until the
 * launch has FILL threads (or is 1 x 1); $SEGC_GPU_FILL overrides FILL (tests set it to 1 so
 * that small shapes keep the largest tiles and their edges are exercised). */
#include "tmpl.h"

#include <stdlib.h>
#include <string.h>

enum {
	COB_MAX = 8,      /* output channels per thread */
	PH_MAX = 8,       /* output rows (conv) / input rows (convT) per thread */
	ACC_MAX = 64,     /* accumulators per thread */
	GEMM_RB = 16,     /* rows per thread, at most */
	SPLIT_MIN = 8,    /* conv3d split reduction: input channels per chunk, at least */
	SPLIT_MAX = 16,   /* chunks, at most */
	LANES = 32,       /* a warp */
	FILL = 132 * 512, /* threads wanted per launch: 132 SMs x 4 blocks of 128 */
	STATS_T = 128,    /* threads per block of a conv3d with statistics (simt_stats) */
};

typedef Conv GConv;

/* ---- small helpers ---- */

static int64_t
fill_target(void)
{
	const char *s = cg_knob("SEGC_GPU_FILL");
	return s && *s ? strtoll(s, NULL, 10) : FILL;
}

static int64_t
cdiv(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

static int64_t
imin64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static KNode *
band(Lower *L, KNode *a, KNode *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return kir_bin(L->p, KB_AND, a, b);
}

/* i >= 0 (when lo) and i < n (when hi); NULL when neither can fail */
static KNode *
in_range(Lower *L, KNode *i, int lo, int hi, int64_t n)
{
	KNode *c = NULL;
	if (lo)
		c = kir_bin(L->p, KB_GE, i, ix_c(L, 0));
	if (hi)
		c = band(L, c, kir_bin(L->p, KB_LT, i, ix_c(L, n)));
	return c;
}

static KNode *
idiv(Lower *L, KNode *a, int64_t c)
{
	return c == 1 ? a : kir_bin(L->p, KB_DIV, a, ix_c(L, c));
}

static KNode *
irem(Lower *L, KNode *a, int64_t c)
{
	return c == 1 ? ix_c(L, 0) : kir_bin(L->p, KB_REM, a, ix_c(L, c));
}

/* a let-bound f32 accumulator initialised to init */
static int
acc_new(Lower *L, KNode *block, KNode *init)
{
	int v = kir_var(L->p, L->k, KT_F32, "acc");
	kir_append(L->p, block, kir_let(L->p, L->k, v, init));
	return v;
}

/* acc += a * b */
static void
acc_fma(Lower *L, KNode *block, int acc, KNode *a, KNode *b)
{
	KNode *m = kir_bin(L->p, KB_MUL, a, b);
	kir_append(L->p, block,
	           kir_assign(L->p, acc, kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc), m)));
}

/* cond ? load : 0 (a C conditional: the load is not made when cond is false) */
static KNode *
load_if(Lower *L, KNode *block, int buf, KNode *idx, KNode *cond)
{
	KNode *ld = kir_load(L->p, L->k, buf, idx);
	if (cond)
		ld = kir_select(L->p, cond, ld, kir_f32(L->p, 0));
	return lw_let(L, block, "xv", ld);
}

/* the load prologue (docs/codegen.md) applied to x element xv of batch n, channel c; 0 where
 * cond (the tap is in bounds, NULL: always) fails: a conv pads the prologue's output */
static KNode *
pro_load(Lower *L, KNode *block, KNode *xv, KNode *cond, KNode *n, KNode *c)
{
	KNode *v = lw_prologue(L, block, n, c, xv);
	if (cond)
		v = lw_let(L, block, "xp", kir_select(L->p, cond, v, kir_f32(L->p, 0)));
	return v;
}

/* output channels per thread: cog itself when small, else a divisor in [4, 8], else 8 (the
 * last block of a group is partial and guarded) */
static int64_t
pick_cob(int64_t cog)
{
	if (cog <= COB_MAX)
		return cog;
	for (int64_t d = COB_MAX; d >= 4; d--)
		if (cog % d == 0)
			return d;
	return COB_MAX;
}

/* The channel block of a thread: group g, first local channel cl0, and per tile channel j the
 * global channel co[j] and, for a partial block, its clamped copy cc[j] (for loads) and a
 * validity condition ok[j] (for stores).  cb: the block index (g * CBG + local block). */
typedef struct {
	int64_t cob, cbg; /* channels per thread, blocks per group */
	int partial;      /* cog % cob != 0 */
	KNode *g, *cl0, *co[COB_MAX], *cc[COB_MAX], *cl[COB_MAX], *ok[COB_MAX];
} ChBlk;

static void
chblk(Lower *L, KNode *body, const GConv *cv, ChBlk *c, KNode *cb)
{
	KNode *lb;
	c->partial = cv->cog % c->cob != 0;
	c->g = cv->groups > 1 ? lw_let(L, body, "g", idiv(L, cb, c->cbg)) : ix_c(L, 0);
	lb = cv->groups > 1 ? lw_let(L, body, "lb", irem(L, cb, c->cbg)) : cb;
	c->cl0 = lw_let(L, body, "cl0", ix_mul(L, lb, c->cob));
	KNode *co0 = lw_let(L, body, "co0", ix_add(L, ix_mul(L, c->g, cv->cog), c->cl0));
	for (int64_t j = 0; j < c->cob; j++) {
		c->co[j] = ix_add(L, co0, ix_c(L, j));
		c->cc[j] = c->co[j];
		c->cl[j] = ix_add(L, c->cl0, ix_c(L, j));
		c->ok[j] = NULL;
		if (!c->partial)
			continue;
		KNode *cl = c->cl[j];
		c->ok[j] = lw_let(L, body, "cok", kir_bin(L->p, KB_LT, cl, ix_c(L, cv->cog)));
		c->cl[j] = lw_let(L, body, "cl", kir_bin(L->p, KB_MIN, cl, ix_c(L, cv->cog - 1)));
		c->cc[j] = lw_let(L, body, "cc", ix_add(L, ix_mul(L, c->g, cv->cog), c->cl[j]));
	}
}

/* bias (or 0) of tile channel j */
static KNode *
bias_of(Lower *L, KNode *body, const GConv *cv, const ChBlk *c, int64_t j)
{
	if (!cv->b)
		return kir_f32(L->p, 0);
	return lw_let(L, body, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), c->cc[j]));
}

/* the group's epilogue at output (n, co, od, oh, ow), under cond when not NULL */
static int
out5(Lower *L, KNode *body, KNode *cond, KNode *n, KNode *co, KNode *od, KNode *oh, KNode *ow,
     int acc)
{
	KNode *oidx[5] = {n, co, od, oh, ow};
	Coord c;
	if (cond) {
		KNode *f = kir_if(L->p, cond);
		kir_append(L->p, body, f);
		body = f->body;
	}
	coord_full(&c, lw_type(L, L->root->out[0]), oidx);
	return lw_output(L, body, &c, kir_ref(L->p, L->k, acc));
}

/* ---- conv3d: register-blocked direct convolution ---- */

/* Conv statistics (Group.stats) from the threads' outputs, where gpu_conv3d's launch is block-
 * mapped (simt_stats_fit): each warp holds 32 consecutive ow of one (n, od, channel block, oh
 * tile).  Per channel j a thread's mean over its ph values vals[j*ph + i] and the squares about
 * it, merged across the warp by shuffles (masks 1 .. 16: each side then holds ph*m values, so
 * Chan's formula has equal counts), lane 0's to scratch: partial g = (od*oht + oh tile)*OW/32
 * + ow/32 of the (n, channel) in ts, merged after the conv by tmpl_tile_stats_merge. */
static void
simt_stats(Lower *L, const TileStats *ts, KNode *body, const GConv *cv, const ChBlk *c,
           KNode *const *vals, int64_t ph, int64_t oht, KNode *const *idx, KNode *th)
{
	Program *p = L->p;
	Kernel *k = L->k;
	KNode *g = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, idx[2], oht), idx[4]), cv->OW / LANES),
	                  idiv(L, idx[5], LANES));
	g = lw_let(L, body, "sg", g);
	KNode *lane0 = kir_if(p, kir_bin(p, KB_EQ, irem(L, th, LANES), ix_c(L, 0)));
	for (int64_t j = 0; j < c->cob; j++) {
		KNode *s = vals[j * ph], *q = NULL;
		for (int64_t i = 1; i < ph; i++)
			s = kir_bin(p, KB_ADD, s, vals[j * ph + i]);
		int mv = kir_var(p, k, KT_F32, "smu"), m2 = kir_var(p, k, KT_F32, "sm2");
		kir_append(p, body, kir_let(p, k, mv, kir_bin(p, KB_MUL, s, kir_f32(p, 1.0 / ph))));
		for (int64_t i = 0; i < ph; i++) {
			KNode *d = lw_let(L, body, "sd",
			                  kir_bin(p, KB_SUB, vals[j * ph + i], kir_ref(p, k, mv)));
			KNode *dd = kir_bin(p, KB_MUL, d, d);
			q = q ? kir_bin(p, KB_ADD, q, dd) : dd;
		}
		kir_append(p, body, kir_let(p, k, m2, q));
		for (int m = 1; m < LANES; m *= 2) {
			KNode *mr = kir_ref(p, k, mv), *qr = kir_ref(p, k, m2);
			KNode *om = lw_let(L, body, "som", kir_shfl(p, mr, m));
			KNode *o2 = lw_let(L, body, "so2", kir_shfl(p, qr, m));
			KNode *d = lw_let(L, body, "sd", kir_bin(p, KB_SUB, om, mr));
			KNode *w = kir_bin(p, KB_MUL, kir_bin(p, KB_MUL, d, d),
			                   kir_f32(p, (double)ph * m * 0.5));
			KNode *sum = kir_bin(p, KB_ADD, kir_bin(p, KB_ADD, qr, o2), w);
			kir_append(p, body, kir_assign(p, m2, sum));
			KNode *half = kir_f32(p, 0.5);
			KNode *mean = kir_bin(p, KB_MUL, kir_bin(p, KB_ADD, mr, om), half);
			kir_append(p, body, kir_assign(p, mv, mean));
		}
		KNode *e = ix_add(L, ix_mul(L, idx[1], cv->Co), c->co[j]);
		e = lw_let(L, lane0->body, "se", ix_add(L, ix_mul(L, e, ts->G), g));
		kir_append(p, lane0->body, kir_store(p, ts->s0, e, kir_ref(p, k, mv)));
		kir_append(p, lane0->body, kir_store(p, ts->s1, e, kir_ref(p, k, m2)));
	}
	kir_append(p, body, lane0);
}

/* the second loop of a split reduction: out = bias + the ns partial sums in scratch pb
 * ([ns] x the output, row-major), one thread per output element, ow fastest */
static int
conv_split_sum(Lower *L, const GConv *cv, int pb, int64_t ns)
{
	const Type *ot = lw_type(L, L->root->out[0]);
	int64_t numel = type_numel(ot);
	KNode *idx[5];
	Coord c;
	KNode *body = lw_nest(L, ot->dims, 5, 0, idx);
	coord_full(&c, ot, idx);
	KNode *e = lw_let(L, body, "e", lw_index(L, &c, ot));
	int ca = L->root->op == OP_conv3d_ndhwc ? 4 : 1; /* the output's channel axis */
	KNode *v = cv->b ? kir_load(L->p, L->k, lw_buf(L, cv->b), idx[ca]) : NULL;
	for (int64_t s = 0; s < ns; s++) {
		KNode *ps = kir_load(L->p, L->k, pb, ix_add(L, e, ix_c(L, s * numel)));
		v = v ? kir_bin(L->p, KB_ADD, v, ps) : ps;
	}
	return lw_output(L, body, &c, lw_let(L, body, "v", v));
}

static int
gpu_conv3d(Lower *L, const GConv *cv)
{
	int64_t KD = cv->k[0], KH = cv->k[1], KW = cv->k[2], K3 = KD * KH * KW;
	int64_t sh = cv->s[1], dh = cv->dl[1], HW = cv->H * cv->W, DHW = cv->D * HW;
	int64_t ph = imin64(PH_MAX, cv->OH), oht;
	ChBlk c = {0};

	c.cob = pick_cob(cv->cog);
	/* under half the threads wanted with full tiles: split the ci reduction into ns chunks
	 * of nc channels (partial sums in scratch, a second loop adds them) before shrinking */
	int64_t ns = 1, nc = cv->cig;
	int64_t T0 = cv->N * cv->OD * cv->groups * cdiv(cv->cog, c.cob) * cdiv(cv->OH, ph) * cv->OW;
	if (2 * T0 <= fill_target() && cv->cig >= 2 * SPLIT_MIN) {
		ns = imin64(imin64(cdiv(fill_target(), T0), cv->cig / SPLIT_MIN), SPLIT_MAX);
		nc = cdiv(cv->cig, ns);
		ns = cdiv(cv->cig, nc);
	}
	for (;;) {
		c.cbg = cdiv(cv->cog, c.cob);
		oht = cdiv(cv->OH, ph);
		int64_t T = ns * cv->N * cv->OD * cv->groups * c.cbg * oht * cv->OW;
		if (T >= fill_target() || (ph == 1 && c.cob == 1))
			break;
		/* x loads are shared by the channels, weight loads by the rows: halve the larger */
		if (c.cob >= ph && c.cob > 1)
			c.cob = cdiv(c.cob, 2);
		else
			ph = cdiv(ph, 2);
	}
	while (c.cob * ph > ACC_MAX)
		ph = cdiv(ph, 2);
	/* at most 64 input rows and columns per thread (register arrays below) */
	while ((ph - 1) * sh + (KH - 1) * dh + 1 > 64 && ph > 1)
		ph = cdiv(ph, 2);
	if ((ph - 1) * sh + (KH - 1) * dh + 1 > 64 || KW > 64)
		return 1;
	oht = cdiv(cv->OH, ph);
	c.cbg = cdiv(cv->cog, c.cob);

	/* thread order: ow fastest, then the oh tile; the channel block outside the plane when
	 * the plane has a warp's worth of threads (x plane reuse in L2), else outside od */
	int inner = oht * cv->OW >= LANES;
	int64_t CB = cv->groups * c.cbg;
	int64_t dims[6] = {ns, cv->N, inner ? cv->OD : CB, inner ? CB : cv->OD, oht, cv->OW};
	KNode *idx[6], *body, *th = NULL;
	int pb = ns > 1
	             ? lw_scratch(L, DT_F32, ns * type_numel(lw_type(L, L->root->out[0])), "part")
	             : -1;
	/* the statistics of a norm that follows (Group.stats) from the threads' outputs
	 * (simt_stats): whole warps of one (n, od, channel block, oh tile), >= 32 partials per
	 * (batch, channel); else ($SEGC_SIMT_STATS=0 too) the moments' own loops after the conv */
	int64_t T = cv->N * cv->OD * CB * oht * cv->OW, G = cv->OD * oht * (cv->OW / LANES);
	const char *sse = cg_knob("SEGC_SIMT_STATS");
	int st = lw_stats(L) && ns == 1 && inner && cv->cog % c.cob == 0 && cv->OH % ph == 0 &&
	         cv->OW % LANES == 0 && T % STATS_T == 0 && G >= 32 && !(sse && atoi(sse) == 0);
	TileStats ts = {0};
	if (st) {
		KNode *blk;
		tmpl_tile_stats_setup(L, &ts, G, LANES * ph, cv->Co, cv->N);
		body = lw_block_loop(L, "blk", T / STATS_T, STATS_T, &blk, &th)->body;
		KNode *t = lw_let(L, body, "t", ix_add(L, ix_mul(L, blk, STATS_T), th));
		lw_unflatten(L, body, t, dims, 6, idx);
	} else {
		body = lw_nest(L, dims, 6, 0, idx);
	}
	KNode *sp = idx[0], *n = idx[1], *od = inner ? idx[2] : idx[3],
	      *cb = inner ? idx[3] : idx[2];
	KNode *ow = idx[5];
	KNode *oh0 = lw_let(L, body, "oh0", ix_mul(L, idx[4], ph));
	chblk(L, body, cv, &c, cb);

	/* input rows r = ih0 + r (r < R) and columns iw0 + kw*dw; validity where it can fail */
	int64_t R = (ph - 1) * sh + (KH - 1) * dh + 1;
	KNode *ih0 = lw_let(L, body, "ih0", ix_add(L, ix_mul(L, oh0, sh), ix_c(L, -cv->p[1])));
	KNode *iw0 = lw_let(L, body, "iw0", ix_add(L, ix_mul(L, ow, cv->s[2]), ix_c(L, -cv->p[2])));
	KNode *rok[64], *cok[64];
	for (int64_t r = 0; r < R; r++) {
		int lo = r < cv->p[1];
		int hi = (oht - 1) * ph * sh - cv->p[1] + r >= cv->H;
		KNode *e = in_range(L, ix_add(L, ih0, ix_c(L, r)), lo, hi, cv->H);
		rok[r] = e ? lw_let(L, body, "rok", e) : NULL;
	}
	for (int64_t kw = 0; kw < KW; kw++) {
		int64_t o = kw * cv->dl[2] - cv->p[2];
		int lo = o < 0, hi = (cv->OW - 1) * cv->s[2] + o >= cv->W;
		KNode *e = in_range(L, ix_add(L, iw0, ix_c(L, kw * cv->dl[2])), lo, hi, cv->W);
		cok[kw] = e ? lw_let(L, body, "cok", e) : NULL;
	}

	/* accumulators acc[j*ph + i]: channel j, output row oh0 + i */
	int acc[ACC_MAX];
	for (int64_t j = 0; j < c.cob; j++) {
		KNode *b = ns > 1 ? kir_f32(L->p, 0) : bias_of(L, body, cv, &c, j);
		for (int64_t i = 0; i < ph; i++)
			acc[j * ph + i] = acc_new(L, body, b);
	}
	int pro = lw_has_prologue(L);
	int xb = lw_buf(L, pro ? lw_prologue_src(L) : cv->x), wb = lw_buf(L, cv->w);
	KNode *xn = ix_mul(L, ix_add(L, ix_mul(L, n, cv->Ci), ix_mul(L, c.g, cv->cig)), DHW);
	xn = lw_let(L, body, "xn", ix_add(L, xn, ix_add(L, ix_mul(L, ih0, cv->W), iw0)));
	KNode *wj[COB_MAX];
	for (int64_t j = 0; j < c.cob; j++) /* w[co, ci, kd, kh, kw] */
		wj[j] = c.partial || j == 0
		            ? lw_let(L, body, "wj", ix_mul(L, c.cc[j], cv->cig * K3))
		            : NULL;

	KNode *ci, *kd, *c0 = ix_c(L, 0), *c1 = ix_c(L, cv->cig);
	if (ns > 1) { /* chunk sp: ci in [sp*nc, min(cig, sp*nc + nc)) */
		c0 = lw_let(L, body, "c0", ix_mul(L, sp, nc));
		c1 = kir_bin(L->p, KB_MIN, ix_add(L, c0, ix_c(L, nc)), ix_c(L, cv->cig));
		c1 = lw_let(L, body, "c1", c1);
	}
	KNode *cl = lw_loop(L, body, "ci", c0, c1, LOOP_SERIAL, &ci);
	KNode *xc = lw_let(L, cl->body, "xc", ix_add(L, xn, ix_mul(L, ci, DHW)));
	KNode *wc = lw_let(L, cl->body, "wc", ix_mul(L, ci, K3));
	KNode *cin = NULL; /* the global input channel, for the load prologue's operands */
	if (pro) {
		cin = lw_let(L, cl->body, "cin", ix_add(L, ix_mul(L, c.g, cv->cig), ci));
		lw_prologue_hoist(L, cl->body, n, cin);
	}
	KNode *dl = lw_loop(L, cl->body, "kd", ix_c(L, 0), ix_c(L, KD), LOOP_SERIAL, &kd);
	KNode *blk = dl->body;
	KNode *id = lw_let(L, blk, "id",
	                   ix_add(L, ix_add(L, ix_mul(L, od, cv->s[0]), ix_mul(L, kd, cv->dl[0])),
	                          ix_c(L, -cv->p[0])));
	int dlo = cv->p[0] > 0,
	    dhi = (cv->OD - 1) * cv->s[0] - cv->p[0] + (KD - 1) * cv->dl[0] >= cv->D;
	KNode *dok = in_range(L, id, dlo, dhi, cv->D);
	if (dok) {
		KNode *f = kir_if(L->p, dok);
		kir_append(L->p, blk, f);
		blk = f->body;
	}
	KNode *xr = lw_let(L, blk, "xr", ix_add(L, xc, ix_mul(L, id, HW)));
	KNode *wk = lw_let(L, blk, "wk", ix_add(L, wc, ix_mul(L, kd, KH * KW)));
	for (int64_t kw = 0; kw < KW; kw++) {
		KNode *xv[64];
		for (int64_t r = 0; r < R; r++) {
			KNode *xi = ix_add(L, xr, ix_c(L, r * cv->W + kw * cv->dl[2]));
			KNode *ok = band(L, rok[r], cok[kw]);
			xv[r] = load_if(L, blk, xb, xi, ok);
			if (pro) /* once per loaded element; padding stays 0 */
				xv[r] = pro_load(L, blk, xv[r], ok, n, cin);
		}
		for (int64_t kh = 0; kh < KH; kh++)
			for (int64_t j = 0; j < c.cob; j++) {
				int64_t off = kh * KW + kw;
				KNode *wbase = wj[j];
				if (!wbase) {
					wbase = wj[0];
					off += j * cv->cig * K3;
				}
				KNode *wi = ix_add(L, ix_add(L, wbase, wk), ix_c(L, off));
				KNode *wv = lw_let(L, blk, "wv", kir_load(L->p, L->k, wb, wi));
				for (int64_t i = 0; i < ph; i++)
					acc_fma(L, blk, acc[j * ph + i], wv, xv[i * sh + kh * dh]);
			}
	}

	lw_prologue_unhoist(L);
	/* the epilogue per output element, or the partial sums of chunk sp */
	KNode *pbase = NULL, *vals[ACC_MAX];
	if (ns > 1) {
		KNode *e = ix_add(L, ix_mul(L, sp, cv->N), n);
		e = ix_add(L, ix_mul(L, e, cv->Co), c.co[0]);
		e = ix_add(L, ix_mul(L, e, cv->OD), od);
		e = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, e, cv->OH), oh0), cv->OW), ow);
		pbase = lw_let(L, body, "pi", e);
	}
	for (int64_t j = 0; j < c.cob; j++)
		for (int64_t i = 0; i < ph; i++) {
			KNode *oh = lw_let(L, body, "oh", ix_add(L, oh0, ix_c(L, i)));
			KNode *cond = c.ok[j];
			if (cv->OH % ph)
				cond = band(L, cond, kir_bin(L->p, KB_LT, oh, ix_c(L, cv->OH)));
			if (ns == 1) {
				if (out5(L, body, cond, n, c.co[j], od, oh, ow, acc[j * ph + i]) <
				    0)
					return -1;
				vals[j * ph + i] = L->out_val; /* (want_val: the stored value) */
				continue;
			}
			KNode *b = body;
			if (cond) {
				KNode *f = kir_if(L->p, cond);
				kir_append(L->p, b, f);
				b = f->body;
			}
			int64_t off = (j * cv->OD * cv->OH + i) * cv->OW;
			kir_append(L->p, b,
			           kir_store(L->p, pb, ix_add(L, pbase, ix_c(L, off)),
			                     kir_ref(L->p, L->k, acc[j * ph + i])));
		}
	if (st) {
		simt_stats(L, &ts, body, cv, &c, vals, ph, oht, idx, th);
		return tmpl_tile_stats_merge(L, &ts);
	}
	return ns > 1 ? conv_split_sum(L, cv, pb, ns) : 0;
}

/* ---- conv_transpose3d ---- */

/* kernel == stride, no padding, dilation 1: every output has exactly one tap per dim */
static int
convt_phase_ok(const GConv *cv)
{
	for (int a = 0; a < 3; a++)
		if (cv->k[a] != cv->s[a] || cv->p[a] != 0 || cv->dl[a] != 1 || cv->op[a] != 0)
			return 0;
	return 1;
}

/* out[n, co, S0*d+pd, S1*h+ph, S2*w+q] = b[co] + sum_ci x[n, ci, d, h, w] w[ci, co, pd, ph, q] */
static int
gpu_convt_phase(Lower *L, const GConv *cv)
{
	int64_t S0 = cv->s[0], S1 = cv->s[1], S2 = cv->s[2], K3 = S0 * S1 * S2;
	int64_t HW = cv->H * cv->W, DHW = cv->D * HW, ph = imin64(PH_MAX, cv->H), ht;
	ChBlk c = {0};

	c.cob = pick_cob(cv->cog);
	if (S2 > ACC_MAX)
		return 1;
	while (c.cob * S2 > ACC_MAX)
		c.cob = cdiv(c.cob, 2);
	for (;;) {
		c.cbg = cdiv(cv->cog, c.cob);
		ht = cdiv(cv->H, ph);
		int64_t T = cv->N * cv->OD * cv->groups * c.cbg * S1 * ht * cv->W;
		if (T >= fill_target() || (ph == 1 && c.cob == 1))
			break;
		if (c.cob * S2 >= ph && c.cob > 1)
			c.cob = cdiv(c.cob, 2);
		else
			ph = cdiv(ph, 2);
	}
	while (c.cob * S2 * ph > ACC_MAX)
		ph = cdiv(ph, 2);
	ht = cdiv(cv->H, ph);
	c.cbg = cdiv(cv->cog, c.cob);

	/* thread order: input w fastest (each thread writes S2 neighbours), then the h tile and
	 * the oh phase, the channel block outside the plane when the plane fills a warp */
	int inner = ht * cv->W >= LANES;
	int64_t CB = cv->groups * c.cbg;
	int64_t dims[6] = {cv->N, inner ? cv->OD : CB, inner ? CB : cv->OD, S1, ht, cv->W};
	KNode *idx[6];
	KNode *body = lw_nest(L, dims, 6, 0, idx);
	KNode *n = idx[0], *od = inner ? idx[1] : idx[2], *cb = inner ? idx[2] : idx[1];
	KNode *phs = idx[3], *w = idx[5];
	KNode *h0 = lw_let(L, body, "h0", ix_mul(L, idx[4], ph));
	KNode *d = lw_let(L, body, "d", idiv(L, od, S0));
	KNode *pd = lw_let(L, body, "pd", irem(L, od, S0));
	chblk(L, body, cv, &c, cb);

	KNode *rok[PH_MAX];
	for (int64_t r = 0; r < ph; r++)
		rok[r] =
		    cv->H % ph
		        ? lw_let(L, body, "rok",
		                 kir_bin(L->p, KB_LT, ix_add(L, h0, ix_c(L, r)), ix_c(L, cv->H)))
		        : NULL;
	int acc[ACC_MAX];
	for (int64_t j = 0; j < c.cob; j++) {
		KNode *b = bias_of(L, body, cv, &c, j);
		for (int64_t q = 0; q < S2 * ph; q++)
			acc[j * S2 * ph + q] = acc_new(L, body, b);
	}
	int xb = lw_buf(L, cv->x), wb = lw_buf(L, cv->w);
	KNode *xn = ix_add(L, ix_mul(L, n, cv->Ci), ix_mul(L, c.g, cv->cig));
	xn = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, xn, cv->D), d), HW),
	            ix_add(L, ix_mul(L, h0, cv->W), w));
	xn = lw_let(L, body, "xn", xn);
	/* w[g*cig + ci, cl, pd, ph, q] = ((g*cig + ci)*cog + cl)*K3 + (pd*S1 + ph)*S2 + q */
	KNode *tap = lw_let(L, body, "tap", ix_mul(L, ix_add(L, ix_mul(L, pd, S1), phs), S2));
	KNode *wj[COB_MAX];
	for (int64_t j = 0; j < c.cob; j++) {
		wj[j] = NULL;
		if (!c.partial && j > 0)
			continue;
		KNode *e = ix_add(L, ix_mul(L, c.g, cv->cig * cv->cog), c.cl[j]);
		wj[j] = lw_let(L, body, "wj", ix_add(L, ix_mul(L, e, K3), tap));
	}

	KNode *ci;
	KNode *cl = lw_loop(L, body, "ci", ix_c(L, 0), ix_c(L, cv->cig), LOOP_SERIAL, &ci);
	KNode *blk = cl->body;
	KNode *xc = lw_let(L, blk, "xc", ix_add(L, xn, ix_mul(L, ci, DHW)));
	KNode *wc = lw_let(L, blk, "wc", ix_mul(L, ci, cv->cog * K3));
	KNode *xv[PH_MAX];
	for (int64_t r = 0; r < ph; r++)
		xv[r] = load_if(L, blk, xb, ix_add(L, xc, ix_c(L, r * cv->W)), rok[r]);
	for (int64_t j = 0; j < c.cob; j++)
		for (int64_t q = 0; q < S2; q++) {
			KNode *wi = wj[j] ? ix_add(L, ix_add(L, wj[j], wc), ix_c(L, q))
			                  : ix_add(L, ix_add(L, wj[0], wc), ix_c(L, j * K3 + q));
			KNode *wv = lw_let(L, blk, "wv", kir_load(L->p, L->k, wb, wi));
			for (int64_t r = 0; r < ph; r++)
				acc_fma(L, blk, acc[(j * S2 + q) * ph + r], wv, xv[r]);
		}

	for (int64_t j = 0; j < c.cob; j++)
		for (int64_t r = 0; r < ph; r++) {
			KNode *oh = ix_add(L, ix_mul(L, ix_add(L, h0, ix_c(L, r)), S1), phs);
			oh = lw_let(L, body, "oh", oh);
			for (int64_t q = 0; q < S2; q++) {
				KNode *ow =
				    lw_let(L, body, "ow", ix_add(L, ix_mul(L, w, S2), ix_c(L, q)));
				if (out5(L, body, band(L, c.ok[j], rok[r]), n, c.co[j], od, oh, ow,
				         acc[(j * S2 + q) * ph + r]) < 0)
					return -1;
			}
		}
	return 0;
}

/* the input index along one axis for output o and tap k: i = (o + p - k*d) / s when that is
 * a non-negative multiple of s below n; *ok gets the condition */
static KNode *
convt_axis(Lower *L, KNode *blk, KNode *o, KNode *k, const GConv *cv, int a, int64_t n, KNode **ok)
{
	KNode *t = ix_add(L, ix_add(L, o, ix_c(L, cv->p[a])), ix_mul(L, k, -cv->dl[a]));
	t = lw_let(L, blk, "t", t);
	KNode *c = kir_bin(L->p, KB_GE, t, ix_c(L, 0));
	if (cv->s[a] > 1)
		c = band(L, c, kir_bin(L->p, KB_EQ, irem(L, t, cv->s[a]), ix_c(L, 0)));
	KNode *i = lw_let(L, blk, "i", idiv(L, t, cv->s[a]));
	*ok = band(L, c, kir_bin(L->p, KB_LT, i, ix_c(L, n)));
	return i;
}

/* general conv_transpose3d: out[o] = b + sum over taps k with (o + p - k*d) = s*i, i inside */
static int
gpu_convt_gather(Lower *L, const GConv *cv)
{
	int64_t K3 = cv->k[0] * cv->k[1] * cv->k[2], HW = cv->H * cv->W, DHW = cv->D * HW;
	ChBlk c = {0};

	c.cob = pick_cob(cv->cog);
	for (;;) {
		c.cbg = cdiv(cv->cog, c.cob);
		int64_t T = cv->N * cv->OD * cv->groups * c.cbg * cv->OH * cv->OW;
		if (T >= fill_target() || c.cob == 1)
			break;
		c.cob = cdiv(c.cob, 2);
	}
	int inner = cv->OH * cv->OW >= LANES;
	int64_t CB = cv->groups * c.cbg;
	int64_t dims[5] = {cv->N, inner ? cv->OD : CB, inner ? CB : cv->OD, cv->OH, cv->OW};
	KNode *idx[5];
	KNode *body = lw_nest(L, dims, 5, 0, idx);
	KNode *n = idx[0], *od = inner ? idx[1] : idx[2], *cb = inner ? idx[2] : idx[1];
	KNode *o[3] = {od, idx[3], idx[4]}, *k[3], *i[3], *ok;
	const char *kn[3] = {"kd", "kh", "kw"};
	int64_t in[3] = {cv->D, cv->H, cv->W};
	chblk(L, body, cv, &c, cb);

	int acc[COB_MAX];
	for (int64_t j = 0; j < c.cob; j++)
		acc[j] = acc_new(L, body, bias_of(L, body, cv, &c, j));
	int xb = lw_buf(L, cv->x), wb = lw_buf(L, cv->w);
	KNode *xn = ix_add(L, ix_mul(L, n, cv->Ci), ix_mul(L, c.g, cv->cig));
	xn = lw_let(L, body, "xn", ix_mul(L, xn, DHW));
	KNode *wj[COB_MAX]; /* w[g*cig + ci, cl, kd, kh, kw] */
	for (int64_t j = 0; j < c.cob; j++) {
		KNode *e = ix_add(L, ix_mul(L, c.g, cv->cig * cv->cog), c.cl[j]);
		wj[j] = lw_let(L, body, "wj", ix_mul(L, e, K3));
	}
	KNode *blk = body;
	for (int a = 0; a < 3; a++) {
		KNode *kl =
		    lw_loop(L, blk, kn[a], ix_c(L, 0), ix_c(L, cv->k[a]), LOOP_SERIAL, &k[a]);
		i[a] = convt_axis(L, kl->body, o[a], k[a], cv, a, in[a], &ok);
		KNode *f = kir_if(L->p, ok);
		kir_append(L->p, kl->body, f);
		blk = f->body;
	}
	KNode *xi = ix_add(L, ix_add(L, ix_mul(L, i[0], HW), ix_mul(L, i[1], cv->W)), i[2]);
	xi = lw_let(L, blk, "xi", ix_add(L, xn, xi));
	KNode *wt =
	    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, k[0], cv->k[1]), k[1]), cv->k[2]), k[2]);
	wt = lw_let(L, blk, "wt", wt);
	KNode *ci;
	KNode *cl = lw_loop(L, blk, "ci", ix_c(L, 0), ix_c(L, cv->cig), LOOP_SERIAL, &ci);
	KNode *xv =
	    lw_let(L, cl->body, "xv", kir_load(L->p, L->k, xb, ix_add(L, xi, ix_mul(L, ci, DHW))));
	KNode *wc = lw_let(L, cl->body, "wc", ix_add(L, wt, ix_mul(L, ci, cv->cog * K3)));
	for (int64_t j = 0; j < c.cob; j++) {
		KNode *wv = kir_load(L->p, L->k, wb, ix_add(L, wj[j], wc));
		acc_fma(L, cl->body, acc[j], lw_let(L, cl->body, "wv", wv), xv);
	}
	for (int64_t j = 0; j < c.cob; j++)
		if (out5(L, body, c.ok[j], n, c.co[j], od, o[1], o[2], acc[j]) < 0)
			return -1;
	return 0;
}

/* ---- linear and matmul: a GEMM with B [K, N] row-major ---- */

typedef struct {
	int ab, bb; /* A rows of K (row stride K), B [K, N] (row stride N) */
	int64_t M, N, K;
	int nb; /* batch dims of y (matmul); linear: 0, its rows are y's leading dims */
	const Type *yt, *at, *bt;
	ValueId bias; /* linear's bias [N], or 0 */
} Gemm;

static int
gpu_gemm(Lower *L, const Gemm *gm)
{
	int64_t M = gm->M, N = gm->N, K = gm->K, NB = 1;
	int64_t lw = imin64(LANES, N), ob = imin64(COB_MAX, cdiv(N, lw));
	int64_t rb = imin64(imin64(GEMM_RB, ACC_MAX / ob), M);
	for (int d = 0; d < gm->nb; d++)
		NB *= gm->yt->dims[d];
	for (;;) {
		int64_t T = NB * cdiv(M, rb) * cdiv(N, ob * lw) * lw;
		if (T >= fill_target() || (rb == 1 && ob == 1))
			break;
		if (rb > 1)
			rb = cdiv(rb, 2);
		else
			ob = cdiv(ob, 2);
	}

	/* thread = (batch..., m tile, n block, lane): n = blk*ob*lw + j*lw + lane */
	int64_t dims[IR_MAXRANK + 3];
	KNode *idx[IR_MAXRANK + 3];
	for (int d = 0; d < gm->nb; d++)
		dims[d] = gm->yt->dims[d];
	dims[gm->nb] = cdiv(M, rb);
	dims[gm->nb + 1] = cdiv(N, ob * lw);
	dims[gm->nb + 2] = lw;
	KNode *body = lw_nest(L, dims, gm->nb + 3, 0, idx);
	KNode *m0 = lw_let(L, body, "m0", ix_mul(L, idx[gm->nb], rb));
	KNode *n0 = ix_add(L, ix_mul(L, idx[gm->nb + 1], ob * lw), idx[gm->nb + 2]);
	n0 = lw_let(L, body, "n0", n0);
	KNode *aoff = gm->nb ? lw_batch_off(L, idx, gm->yt, gm->at) : ix_c(L, 0);
	KNode *boff = gm->nb ? lw_batch_off(L, idx, gm->yt, gm->bt) : ix_c(L, 0);
	int mpart = M % rb != 0, npart = N % (ob * lw) != 0;

	KNode *mi[GEMM_RB], *mok[GEMM_RB], *arow[GEMM_RB];
	for (int64_t i = 0; i < rb; i++) {
		mi[i] = ix_add(L, m0, ix_c(L, i));
		mok[i] = NULL;
		arow[i] = NULL;
		if (mpart) {
			mi[i] = lw_let(L, body, "mi", mi[i]);
			mok[i] = lw_let(L, body, "mok", kir_bin(L->p, KB_LT, mi[i], ix_c(L, M)));
			KNode *mc = kir_bin(L->p, KB_MIN, mi[i], ix_c(L, M - 1));
			arow[i] = lw_let(L, body, "arow", ix_add(L, aoff, ix_mul(L, mc, K)));
		} else if (i == 0) {
			arow[i] = lw_let(L, body, "arow", ix_add(L, aoff, ix_mul(L, m0, K)));
		}
	}
	KNode *nj[COB_MAX], *nok[COB_MAX], *bcol[COB_MAX];
	for (int64_t j = 0; j < ob; j++) {
		nj[j] = ix_add(L, n0, ix_c(L, j * lw));
		nok[j] = NULL;
		bcol[j] = NULL;
		if (npart) {
			nj[j] = lw_let(L, body, "nj", nj[j]);
			nok[j] = lw_let(L, body, "nok", kir_bin(L->p, KB_LT, nj[j], ix_c(L, N)));
			KNode *nc = kir_bin(L->p, KB_MIN, nj[j], ix_c(L, N - 1));
			bcol[j] = lw_let(L, body, "bcol", ix_add(L, boff, nc));
		} else if (j == 0) {
			bcol[j] = lw_let(L, body, "bcol", ix_add(L, boff, n0));
		}
	}
	int acc[ACC_MAX];
	for (int64_t j = 0; j < ob; j++) {
		KNode *b = kir_f32(L->p, 0);
		if (gm->bias) {
			KNode *bi = npart ? kir_bin(L->p, KB_MIN, nj[j], ix_c(L, N - 1)) : nj[j];
			b = lw_let(L, body, "b", kir_load(L->p, L->k, lw_buf(L, gm->bias), bi));
		}
		for (int64_t i = 0; i < rb; i++)
			acc[i * ob + j] = acc_new(L, body, b);
	}

	KNode *kk;
	KNode *kl = lw_loop(L, body, "k", ix_c(L, 0), ix_c(L, K), LOOP_SERIAL, &kk);
	KNode *blk = kl->body, *av[GEMM_RB], *bv[COB_MAX];
	KNode *brow = lw_let(L, blk, "brow", ix_mul(L, kk, N));
	for (int64_t i = 0; i < rb; i++) {
		KNode *ai = arow[i] ? ix_add(L, arow[i], kk)
		                    : ix_add(L, ix_add(L, arow[0], kk), ix_c(L, i * K));
		av[i] = lw_let(L, blk, "av", kir_load(L->p, L->k, gm->ab, ai));
	}
	for (int64_t j = 0; j < ob; j++) {
		KNode *bi = bcol[j] ? ix_add(L, bcol[j], brow)
		                    : ix_add(L, ix_add(L, bcol[0], brow), ix_c(L, j * lw));
		bv[j] = lw_let(L, blk, "bv", kir_load(L->p, L->k, gm->bb, bi));
	}
	for (int64_t i = 0; i < rb; i++)
		for (int64_t j = 0; j < ob; j++)
			acc_fma(L, blk, acc[i * ob + j], av[i], bv[j]);

	/* the epilogue at y[batch..., m, n]; linear: m unflattened over y's leading dims */
	const Type *yt = gm->yt;
	for (int64_t i = 0; i < rb; i++)
		for (int64_t j = 0; j < ob; j++) {
			KNode *oi[IR_MAXRANK], *b = body, *cond = band(L, mok[i], nok[j]);
			Coord c;
			if (cond) {
				KNode *f = kir_if(L->p, cond);
				kir_append(L->p, b, f);
				b = f->body;
			}
			if (gm->nb) {
				for (int d = 0; d < gm->nb; d++)
					oi[d] = idx[d];
				oi[gm->nb] = mi[i];
			} else {
				KNode *q = mi[i];
				for (int d = yt->rank - 2; d >= 0; d--) {
					oi[d] = d ? lw_let(L, b, "r", irem(L, q, yt->dims[d])) : q;
					if (d)
						q = lw_let(L, b, "q", idiv(L, q, yt->dims[d]));
				}
			}
			oi[yt->rank - 1] = nj[j];
			coord_full(&c, yt, oi);
			if (lw_output(L, b, &c, kir_ref(L->p, L->k, acc[i * ob + j])) < 0)
				return -1;
		}
	return 0;
}

/* linear: loop 1 writes Wt[k, o] = W[o, k] to scratch (coalesced reads of B in the GEMM) */
static int
gpu_linear(Lower *L)
{
	const Node *r = L->root;
	const Type *yt = lw_type(L, r->out[0]), *xt = lw_type(L, r->in[0]);
	Gemm gm = {0};
	KNode *idx[2];

	gm.K = xt->dims[xt->rank - 1];
	gm.N = yt->dims[yt->rank - 1];
	gm.M = 1;
	for (int d = 0; d < yt->rank - 1; d++)
		gm.M *= yt->dims[d];
	gm.yt = yt;
	gm.ab = lw_buf(L, r->in[0]);
	gm.bias = r->nin > 2 ? r->in[2] : 0;
	int wb = lw_buf(L, r->in[1]);
	gm.bb = lw_scratch(L, DT_F32, gm.K * gm.N, "wt");
	int64_t dims[2] = {gm.K, gm.N};
	KNode *body = lw_nest(L, dims, 2, 0, idx);
	KNode *wi = ix_add(L, ix_mul(L, idx[1], gm.K), idx[0]);
	KNode *ti = ix_add(L, ix_mul(L, idx[0], gm.N), idx[1]);
	kir_append(L->p, body, kir_store(L->p, gm.bb, ti, kir_load(L->p, L->k, wb, wi)));
	return gpu_gemm(L, &gm);
}

static int
gpu_matmul(Lower *L)
{
	const Node *r = L->root;
	const Type *yt = lw_type(L, r->out[0]);
	const Type *at = lw_type(L, r->in[0]), *bt = lw_type(L, r->in[1]);
	Gemm gm = {0};

	if (at->rank < 2 || bt->rank < 2)
		return 1; /* the generic template reports it */
	gm.M = yt->dims[yt->rank - 2];
	gm.N = yt->dims[yt->rank - 1];
	gm.K = at->dims[at->rank - 1];
	gm.nb = yt->rank - 2;
	gm.yt = yt, gm.at = at, gm.bt = bt;
	gm.ab = lw_buf(L, r->in[0]);
	gm.bb = lw_buf(L, r->in[1]);
	return gpu_gemm(L, &gm);
}

/* ---- conv3d_ndhwc: channels last, output channel fastest across threads ---- */

enum {
	CL_COB = 4, /* output channels per thread (LW apart) */
	CL_PW = 8,  /* outputs along ow per thread */
};

/* y[n, od, oh, ow, co] = b[co] + sum x[n, id, ih, iw, g*cig + ci] w[co, ci, kd, kh, kw].
 * Loop 1: wT[(tap*cig + ci)*Co + co] = w[co, ci, tap] in scratch (co contiguous).  Loop 2:
 * thread = (n, od, oh, ow tile, channel block, lane), channel j of a thread co = (block*COB +
 * j)*LW + lane: the lanes of a warp are consecutive channels of one voxel, so their x loads
 * are one address (groups 1) or a few, their weight loads and output stores consecutive
 * addresses.  Tile COB channels x PW outputs along ow; per (kd, kh, ci): R = (PW-1)*sw +
 * (KW-1)*dw + 1 x columns (per channel with groups > 1), COB x KW weights, COB x PW x KW FMAs.
 * Border taps: an if per depth and row tap where it can fail, selects on the columns. */
static int
gpu_conv3d_cl(Lower *L, const GConv *cv)
{
	int64_t KD = cv->k[0], KH = cv->k[1], KW = cv->k[2], K3 = KD * KH * KW;
	int64_t sw = cv->s[2], dw = cv->dl[2], Co = cv->Co, Ci = cv->Ci;
	int64_t lw = imin64(LANES, cdiv(Co, CL_COB)), cob = imin64(CL_COB, cdiv(Co, lw));
	int64_t pw = imin64(CL_PW, cv->OW), nb, owt;

	if (KW > 64 || lw_has_prologue(L))
		return 1;
	/* under half the threads wanted with full tiles: split the ci reduction into ns chunks
	 * of nc channels (partial sums in scratch, a second loop adds them), as conv3d does */
	int64_t ns = 1, nc = cv->cig;
	int64_t T0 = cv->N * cv->OD * cv->OH * cdiv(cv->OW, pw) * cdiv(Co, cob * lw) * lw;
	if (2 * T0 <= fill_target() && cv->cig >= 2 * SPLIT_MIN) {
		ns = imin64(imin64(cdiv(fill_target(), T0), cv->cig / SPLIT_MIN), SPLIT_MAX);
		nc = cdiv(cv->cig, ns);
		ns = cdiv(cv->cig, nc);
	}
	for (;;) {
		nb = cdiv(Co, cob * lw);
		owt = cdiv(cv->OW, pw);
		int64_t T = ns * cv->N * cv->OD * cv->OH * owt * nb * lw;
		if (T >= fill_target() || (pw == 1 && cob == 1))
			break;
		if (cob >= pw && cob > 1) /* x loads are shared by the channels: halve the larger */
			cob = cdiv(cob, 2);
		else
			pw = cdiv(pw, 2);
	}
	while ((pw - 1) * sw + (KW - 1) * dw + 1 > 64 && pw > 1)
		pw = cdiv(pw, 2);
	int64_t R = (pw - 1) * sw + (KW - 1) * dw + 1;
	if (R > 64)
		return 1;
	nb = cdiv(Co, cob * lw);
	owt = cdiv(cv->OW, pw);

	/* loop 1: the weights with co contiguous */
	int wt = lw_scratch(L, DT_F32, K3 * cv->cig * Co, "wT");
	{
		int64_t dims[3] = {K3, cv->cig, Co};
		KNode *ix[3];
		KNode *b1 = lw_nest(L, dims, 3, 0, ix);
		KNode *ti =
		    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, ix[0], cv->cig), ix[1]), Co), ix[2]);
		KNode *wi =
		    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, ix[2], cv->cig), ix[1]), K3), ix[0]);
		kir_append(L->p, b1,
		           kir_store(L->p, wt, ti, kir_load(L->p, L->k, lw_buf(L, cv->w), wi)));
	}

	const Type *ot = lw_type(L, L->root->out[0]);
	int pb = ns > 1 ? lw_scratch(L, DT_F32, ns * type_numel(ot), "part") : -1;
	int64_t dims[7] = {ns, cv->N, cv->OD, cv->OH, owt, nb, lw};
	KNode *idx[7];
	KNode *body = lw_nest(L, dims, 7, 0, idx);
	KNode *sp = idx[0], *n = idx[1], *od = idx[2], *oh = idx[3], *lane = idx[6];
	KNode *ow0 = lw_let(L, body, "ow0", ix_mul(L, idx[4], pw));
	int partial = Co % (cob * lw) != 0, share = cv->groups == 1;
	KNode *co[CL_COB], *cc[CL_COB], *ok[CL_COB], *xch[CL_COB];
	for (int64_t j = 0; j < cob; j++) {
		KNode *e =
		    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, idx[5], cob), ix_c(L, j)), lw), lane);
		co[j] = cc[j] = lw_let(L, body, "co", e);
		ok[j] = NULL;
		if (partial) {
			ok[j] = lw_let(L, body, "cok", kir_bin(L->p, KB_LT, co[j], ix_c(L, Co)));
			cc[j] =
			    lw_let(L, body, "cc", kir_bin(L->p, KB_MIN, co[j], ix_c(L, Co - 1)));
		}
		/* the x channel of local input channel 0 for channel j (its group's first) */
		xch[j] = share
		             ? ix_c(L, 0)
		             : lw_let(L, body, "xch", ix_mul(L, idiv(L, cc[j], cv->cog), cv->cig));
	}

	/* input columns iw0 + r (r < R); validity where it can fail (known per r) */
	KNode *iw0 = lw_let(L, body, "iw0", ix_add(L, ix_mul(L, ow0, sw), ix_c(L, -cv->p[2])));
	KNode *cok[64];
	int used[64] = {0};
	for (int64_t i = 0; i < pw; i++)
		for (int64_t kw = 0; kw < KW; kw++)
			used[i * sw + kw * dw] = 1;
	for (int64_t r = 0; r < R; r++) {
		int lo = r < cv->p[2], hi = (owt - 1) * pw * sw - cv->p[2] + r >= cv->W;
		KNode *e = used[r] ? in_range(L, ix_add(L, iw0, ix_c(L, r)), lo, hi, cv->W) : NULL;
		cok[r] = e ? lw_let(L, body, "colok", e) : NULL;
	}
	int acc[CL_COB * CL_PW];
	for (int64_t j = 0; j < cob; j++) {
		KNode *b = cv->b && ns == 1
		               ? lw_let(L, body, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), cc[j]))
		               : kir_f32(L->p, 0);
		for (int64_t i = 0; i < pw; i++)
			acc[j * pw + i] = acc_new(L, body, b);
	}
	int xb = lw_buf(L, cv->x);

	/* depth and row taps: an if where the tap can leave the input */
	KNode *kd, *kh, *ci;
	KNode *dl = lw_loop(L, body, "kd", ix_c(L, 0), ix_c(L, KD), LOOP_SERIAL, &kd);
	KNode *blk = dl->body;
	KNode *id = ix_add(L, ix_add(L, ix_mul(L, od, cv->s[0]), ix_mul(L, kd, cv->dl[0])),
	                   ix_c(L, -cv->p[0]));
	id = lw_let(L, blk, "id", id);
	KNode *c =
	    in_range(L, id, cv->p[0] > 0,
	             (cv->OD - 1) * cv->s[0] - cv->p[0] + (KD - 1) * cv->dl[0] >= cv->D, cv->D);
	if (c) {
		KNode *f = kir_if(L->p, c);
		kir_append(L->p, blk, f);
		blk = f->body;
	}
	KNode *hl = lw_loop(L, blk, "kh", ix_c(L, 0), ix_c(L, KH), LOOP_SERIAL, &kh);
	blk = hl->body;
	KNode *ih = ix_add(L, ix_add(L, ix_mul(L, oh, cv->s[1]), ix_mul(L, kh, cv->dl[1])),
	                   ix_c(L, -cv->p[1]));
	ih = lw_let(L, blk, "ih", ih);
	c = in_range(L, ih, cv->p[1] > 0,
	             (cv->OH - 1) * cv->s[1] - cv->p[1] + (KH - 1) * cv->dl[1] >= cv->H, cv->H);
	if (c) {
		KNode *f = kir_if(L->p, c);
		kir_append(L->p, blk, f);
		blk = f->body;
	}
	/* x offset of (n, id, ih, iw0, 0); the weights of tap (kd, kh, 0) */
	KNode *xr = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, n, cv->D), id), cv->H), ih);
	xr = lw_let(L, blk, "xr", ix_mul(L, ix_add(L, ix_mul(L, xr, cv->W), iw0), Ci));
	KNode *wr = ix_mul(L, ix_add(L, ix_mul(L, kd, KH), kh), KW * cv->cig * Co);
	wr = lw_let(L, blk, "wr", wr);
	KNode *c0 = ix_c(L, 0), *c1 = ix_c(L, cv->cig);
	if (ns > 1) { /* chunk sp: ci in [sp*nc, min(cig, sp*nc + nc)) */
		c0 = lw_let(L, blk, "c0", ix_mul(L, sp, nc));
		c1 = kir_bin(L->p, KB_MIN, ix_add(L, c0, ix_c(L, nc)), ix_c(L, cv->cig));
		c1 = lw_let(L, blk, "c1", c1);
	}
	KNode *cl = lw_loop(L, blk, "ci", c0, c1, LOOP_SERIAL, &ci);
	blk = cl->body;
	KNode *xv[CL_COB][64], *wv[CL_COB][64];
	for (int64_t j = 0; j < (share ? 1 : cob); j++) {
		KNode *xc = lw_let(L, blk, "xc", ix_add(L, ix_add(L, xr, xch[j]), ci));
		for (int64_t r = 0; r < R; r++)
			xv[j][r] = used[r]
			               ? load_if(L, blk, xb, ix_add(L, xc, ix_c(L, r * Ci)), cok[r])
			               : NULL;
	}
	KNode *wc = lw_let(L, blk, "wc", ix_add(L, wr, ix_mul(L, ci, Co)));
	for (int64_t j = 0; j < cob; j++)
		for (int64_t kw = 0; kw < KW; kw++) {
			KNode *wi = ix_add(L, ix_add(L, wc, cc[j]), ix_c(L, kw * cv->cig * Co));
			wv[j][kw] = lw_let(L, blk, "wv", kir_load(L->p, L->k, wt, wi));
		}
	for (int64_t j = 0; j < cob; j++)
		for (int64_t i = 0; i < pw; i++)
			for (int64_t kw = 0; kw < KW; kw++)
				acc_fma(L, blk, acc[j * pw + i], wv[j][kw],
				        xv[share ? 0 : j][i * sw + kw * dw]);

	/* the epilogue at y[n, od, oh, ow0 + i, co], or chunk sp's partial sums (laid out as y) */
	KNode *pbase = NULL;
	if (ns > 1) {
		KNode *e = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, sp, cv->N), n), cv->OD), od);
		e = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, e, cv->OH), oh), cv->OW), ow0);
		pbase = lw_let(L, body, "pi", ix_mul(L, e, Co));
	}
	for (int64_t j = 0; j < cob; j++)
		for (int64_t i = 0; i < pw; i++) {
			KNode *ow = lw_let(L, body, "ow", ix_add(L, ow0, ix_c(L, i)));
			KNode *cond = ok[j], *b = body;
			if (cv->OW % pw)
				cond = band(L, cond, kir_bin(L->p, KB_LT, ow, ix_c(L, cv->OW)));
			if (cond) {
				KNode *f = kir_if(L->p, cond);
				kir_append(L->p, b, f);
				b = f->body;
			}
			if (ns > 1) {
				KNode *pi = ix_add(L, ix_add(L, pbase, ix_c(L, i * Co)), co[j]);
				kir_append(
				    L->p, b,
				    kir_store(L->p, pb, pi, kir_ref(L->p, L->k, acc[j * pw + i])));
				continue;
			}
			KNode *oidx[5] = {n, od, oh, ow, co[j]};
			Coord oc;
			coord_full(&oc, ot, oidx);
			if (lw_output(L, b, &oc, kir_ref(L->p, L->k, acc[j * pw + i])) < 0)
				return -1;
		}
	return ns > 1 ? conv_split_sum(L, cv, pb, ns) : 0;
}

/* ---- the entry ---- */

int
tmpl_gpu_conv(Lower *L)
{
	GConv cv;

	switch (L->root->op) {
	case OP_conv3d:
		lw_conv_shape(L, &cv);
		return gpu_conv3d(L, &cv);
	case OP_conv3d_ndhwc:
		lw_conv_shape(L, &cv); /* x [N, D, H, W, Ci], y [N, OD, OH, OW, Co] */
		return gpu_conv3d_cl(L, &cv);
	case OP_conv_transpose3d:
		lw_conv_shape(L, &cv);
		if (convt_phase_ok(&cv))
			return gpu_convt_phase(L, &cv);
		return gpu_convt_gather(L, &cv);
	case OP_linear:
		return gpu_linear(L);
	case OP_matmul:
		return gpu_matmul(L);
	default:
		return 1; /* pools: tmpl_pool.c is already one thread per output element */
	}
}
