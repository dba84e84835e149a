/* codegen/tmpl_gpu_mma.c -- tensor-core implicit GEMM for conv3d, conv3d_ndhwc, conv_transpose3d
 * (kernel == stride), linear and matmul when --precision is tf32 or bf16 (GPU forms,
 * codegen/tmpl_gpu.c).
 *
 * Each root is a GEMM C[M, N] = A[M, K] B[K, N] with FP32 accumulation:
 *   conv3d      M = batch*OD*OH*OW, N = Cout, K = Cin*kd*kh*kw; A = im2col gather of x (0
 *               outside the input), B[k, n] = w[n*K + k]           (groups == 1)
 *   convT k==s  M = batch*D*H*W (input voxels), N = Cout*kd*kh*kw (channel, output phase),
 *               K = Cin; A[m, k] = x[b, k, voxel], B[k, n] = w[k*N + n]; C[m, n] lands at
 *               out[b, co, d*kd + pd, h*kh + ph, w*kw + pw]
 *   linear      M = rows, N = out features, K = in; A = x, B[k, n] = W[n*K + k]
 *   matmul      per batch element (a third block coordinate, broadcast like tmpl_matmul.c)
 *   conv3d_ndhwc  (channels last) conv3d's GEMM transposed: M = Cout, N = batch*OD*OH*OW, K =
 *               kvol*Cin ordered k = tap*Cin + ci; A[m, k] = wt[k*Mp + m] (a copy of w made
 *               by a first loop), B[k, n] = x[voxel n, tap, ci], C[m, n] lands at y[n*Cout +
 *               m]: A by 16-byte cp.async, B by 16-byte cp.async of 4 channels (tf32, Cin %
 *               4 == 0) or per element, through a shared table of the tile's voxels;
 *               wide tiles (16 x 128, 32 x 128, 64 x 64, 128 x 64: pick_tiling_cl),
 *               cl_stage_load
 * One LOOP_BLOCK iteration per bm x bn tile of C (M tiles fastest, so consecutive blocks reuse
 * one B tile from L2); pick_tiling chooses the tile, threads and K step (BK): 64 x 64 or 128 x
 * 32 with 128 threads (warps of 32 x 32 = 2 x 2 MMA accumulators of 16 x 16, kir.def K_mma*),
 * or, for large GEMMs, 128 x 128 / 256 x 64 with 256 threads (warps of 64 x 32 = 4 x 2).  The K
 * loop is pipelined through registers: each thread holds its A elements (gathered, zero past M
 * and K) and B elements of one step in registers.  Double-buffered (default, SEGC_MMA=1): per
 * step it issues all loads of the next step, runs the MMAs on one half of the shared tiles,
 * stores the registers to the other half, barrier.  Single-buffered (SEGC_MMA=0): store,
 * barrier, loads, MMAs, barrier.  Tiles are column-major; bf16 tiles round on the store, tf32
 * rounds when the fragments are loaded.  Then the accumulators go to a shared C tile (double-
 * buffered: over the A and B tiles, cc columns at a time) and every thread applies the
 * epilogue (bias, lw_output) to its elements, guarded for ragged M, N (split-K, pick_splits:
 * raw partial tiles to scratch instead, summed by a second loop, split_sum).  The staging and
 * epilogue orders follow
 * the contiguous global dimension (m for convolutions: ow; k or n for linear/matmul) so that
 * a warp's accesses coalesce.  Where m is the fast dim (convolutions), each thread keeps one m
 * for the whole tile, so the m half of the im2col gather and of the output coordinate is
 * computed once per tile; the k half: with Cin % 16 == 0, K is ordered tap-major (k = tap*Cin
 * + ci) so each half K step has one tap, checked and located once per half (stage_load_tap_a,
 * B from a tap-major copy of w made by a first parallel loop), or, with bf16 activations and
 * rows of 8-voxel octets, each thread an octet: one 16-byte load per channel and row of taps
 * (the row gather, tmpl_gpu_mma_row.c, K ordered by rows of taps; at bf16 and tf32 its
 * register-fragment form, $SEGC_MMA_FRAG=0 not: the windows straight into mma.sync, no A or
 * B tile, 256 x 16|32|48 tiles, the C tile's rows two a thread in the epilogue);
 * otherwise from a tap table in shared memory (k_table).  A conv whose x has a load prologue
 * (lw_has_prologue: instance norm + activation fused into it) applies it to every in-bounds
 * element it gathers; padding stays 0.
 * Returns 1 (the fp32 SIMT forms follow) for grouped convolutions, N < 8, K < 8, M < 16,
 * non-f32 tensors, and convT other than the phase form (conv3d_ndhwc: Cout < 8, fewer than 16
 * output voxels, K < 8, x of 2^30 elements or more). */
#include "tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The blocking of one GEMM (pick_tiling): nt threads = (bm / 16fm) x (bn / 16fn) warps, each
 * owning 16fm x 16fn of the bm x bn C tile (fm x fn accumulators); K steps of bk; dbuf: the
 * main loop of SEGC_MMA=1 (double-buffered shared tiles, one barrier per step), else the
 * single-buffered one (two barriers per step); the epilogue in chunks of cc columns of C. */
typedef struct {
	int nt, bm, bn, bk, fm, fn, dbuf, cc;
} Tiling;

typedef enum { G_CONV, G_CONVT, G_LINEAR, G_MATMUL, G_CONVCL } GemmKind;

typedef struct {
	GemmKind kind;
	int64_t M, N, K, batch;        /* batch: matmul batch elements (else 1) */
	int a_kfast, b_kfast, c_nfast; /* staging / epilogue orders (coalescing) */
	/* conv / convT */
	int64_t Nb, Ci, D, H, W, Co, OD, OH, OW, k[3], s[3], p[3], dl[3];
	ValueId x, w, bias;
	const Type *yt;
	int kt;   /* conv: the shared i32 table of the K step's taps (tmpl_gpu_mma) */
	int tapk; /* conv with Ci % 16 == 0: K ordered tap-major, k = tap*Ci + ci (stage_load) */
	int wt;   /* tapk: scratch copy of w as [n][tap][ci], so B[k, n] = wt[n*K + k] */
	int pro;  /* conv: x has a load prologue (lw_prologue) applied to in-bounds elements */
	int x32;  /* conv, tapk: x's elements fit i32 offsets (the gather in 32-bit arithmetic) */
	int bk;   /* the K step */
	/* conv3d_ndhwc (G_CONVCL, the roles of conv3d swapped: M = Co, N = voxels) */
	int64_t Mp; /* M rounded up to the tile: the rows of wt, zero past M */
	int vt;     /* shared i32 voxel table of the tile's n: x offset, 3 positions */
	int xce;    /* x gathered by cp.async of xce (4: 16 bytes, 1) elements; 0: registers */
	int xv;     /* bf16: x gathered into registers by 16-byte loads of xv (4) elements; 0: 1 */
	int64_t smem; /* the shared memory a block may use (cg_gpu_smem: 48 KiB by default) */
} Gemm;

/* conv3d_ndhwc: the k run a thread gathers of x per row, by one copy or vector load (1: by
 * element) */
static int64_t
x_run(const Gemm *g)
{
	return g->xce ? g->xce : g->xv ? g->xv : 1;
}

/* ---- the shape test ---- */

static int
conv_setup(Lower *L, Gemm *g)
{
	const Node *n = L->root;
	int tr = n->op == OP_conv_transpose3d;

	Conv cv;
	lw_conv_shape(L, &cv);
	if (cv.groups != 1)
		return 0;
	g->Nb = cv.N, g->Ci = cv.Ci, g->D = cv.D, g->H = cv.H, g->W = cv.W;
	g->Co = cv.Co, g->OD = cv.OD, g->OH = cv.OH, g->OW = cv.OW;
	for (int i = 0; i < 3; i++) {
		g->k[i] = cv.k[i], g->s[i] = cv.s[i], g->p[i] = cv.p[i], g->dl[i] = cv.dl[i];
		if (tr && (cv.k[i] != cv.s[i] || cv.p[i] || cv.dl[i] != 1 || cv.op[i]))
			return 0;
	}
	int64_t kvol = g->k[0] * g->k[1] * g->k[2];
	/* 32-bit tap offsets (the conv's K table): one batch element of x and the taps' reach */
	if (g->Ci * g->D * g->H * g->W >= ((int64_t)1 << 30) ||
	    g->k[0] * g->dl[0] * g->H * g->W >= ((int64_t)1 << 30))
		return 0;
	g->x = lw_has_prologue(L) ? lw_prologue_src(L) : n->in[0];
	g->pro = lw_has_prologue(L);
	g->x32 = type_numel(lw_type(L, g->x)) < ((int64_t)1 << 31) - g->Ci * g->D * g->H * g->W;
	g->w = n->in[1];
	g->bias = n->nin > 2 ? n->in[2] : 0;
	if (tr) {
		g->kind = G_CONVT;
		g->M = g->Nb * g->D * g->H * g->W;
		g->N = g->Co * kvol;
		g->K = g->Ci;
		g->a_kfast = 0, g->b_kfast = 0, g->c_nfast = 0;
	} else {
		g->kind = G_CONV;
		g->M = g->Nb * g->OD * g->OH * g->OW;
		g->N = g->Co;
		g->K = g->Ci * kvol;
		g->a_kfast = 0, g->b_kfast = 1, g->c_nfast = 0;
		g->tapk = g->Ci % 16 == 0;
	}
	return 1;
}

/* conv3d_ndhwc, groups 1: C[co, voxel] = sum_k wt[k, co] * x[voxel, tap, ci] with k = tap*Ci +
 * ci (the GEMM of conv3d transposed, so that x's Ci-contiguous runs are B's k-contiguous
 * columns and C's m = co is the output's fastest dim) */
static int
convcl_setup(Lower *L, Gemm *g)
{
	const Node *n = L->root;
	const Type *it = lw_type(L, n->in[0]);
	Conv cv;

	lw_conv_shape(L, &cv);
	if (cv.groups != 1 || lw_has_prologue(L))
		return 0;
	g->Nb = cv.N, g->Ci = cv.Ci, g->D = cv.D, g->H = cv.H, g->W = cv.W;
	g->Co = cv.Co, g->OD = cv.OD, g->OH = cv.OH, g->OW = cv.OW;
	for (int i = 0; i < 3; i++)
		g->k[i] = cv.k[i], g->s[i] = cv.s[i], g->p[i] = cv.p[i], g->dl[i] = cv.dl[i];
	/* the gather's offsets and positions in i32 (padding may make them negative) */
	if (type_numel(it) >= ((int64_t)1 << 30) || g->D * g->H * g->W >= ((int64_t)1 << 28))
		return 0;
	g->kind = G_CONVCL;
	g->x = n->in[0], g->w = n->in[1];
	g->bias = n->nin > 2 ? n->in[2] : 0;
	g->M = g->Co;
	g->N = g->Nb * g->OD * g->OH * g->OW;
	g->K = g->k[0] * g->k[1] * g->k[2] * g->Ci;
	g->a_kfast = 0, g->b_kfast = 1, g->c_nfast = 0;
	return 1;
}

static int
gemm_setup(Lower *L, Gemm *g)
{
	const Node *r = L->root;
	memset(g, 0, sizeof *g);
	g->yt = lw_type(L, r->out[0]);
	g->batch = 1;
	if (!lw_all_f32(L))
		return 0;
	switch (r->op) {
	case OP_conv3d:
	case OP_conv_transpose3d:
		if (!conv_setup(L, g))
			return 0;
		break;
	case OP_conv3d_ndhwc:
		if (!convcl_setup(L, g))
			return 0;
		return g->M >= 8 && g->N >= 16 && g->K >= 8;
	case OP_linear: {
		const Type *xt = lw_type(L, r->in[0]);
		g->kind = G_LINEAR;
		g->K = xt->dims[xt->rank - 1];
		g->N = g->yt->dims[g->yt->rank - 1];
		g->M = type_numel(g->yt) / (g->N ? g->N : 1);
		g->x = r->in[0], g->w = r->in[1];
		g->bias = r->nin > 2 ? r->in[2] : 0;
		g->a_kfast = 1, g->b_kfast = 1, g->c_nfast = 1;
		break;
	}
	case OP_matmul: {
		const Type *at = lw_type(L, r->in[0]);
		if (g->yt->rank < 2 || at->rank < 2 || lw_type(L, r->in[1])->rank < 2)
			return 0;
		g->kind = G_MATMUL;
		g->M = g->yt->dims[g->yt->rank - 2];
		g->N = g->yt->dims[g->yt->rank - 1];
		g->K = at->dims[at->rank - 1];
		g->batch = g->M > 0 && g->N > 0 ? type_numel(g->yt) / (g->M * g->N) : 1;
		g->x = r->in[0], g->w = r->in[1];
		g->a_kfast = 1, g->b_kfast = 0, g->c_nfast = 1;
		break;
	}
	default:
		return 0;
	}
	return g->N >= 8 && g->K >= 8 && g->M >= 16 && g->K < ((int64_t)1 << 31);
}

/* ---- small builders ---- */

static KNode *
bin(Lower *L, KBinOp op, KNode *a, int64_t c)
{
	return kir_bin(L->p, op, a, ix_c(L, c));
}

static KNode *
land(Lower *L, KNode *a, KNode *b)
{
	return a ? kir_bin(L->p, KB_AND, a, b) : b;
}

/* split flat i over dims[0..nd) (row-major), lets in block */
static void
split(Lower *L, KNode *block, KNode *i, const int64_t *dims, int nd, KNode **out)
{
	int64_t stride = 1;
	for (int d = nd - 1; d >= 0; d--) {
		KNode *q = stride == 1 ? i : bin(L, KB_DIV, i, stride);
		if (dims[d] == 1 && d > 0)
			out[d] = ix_c(L, 0);
		else
			out[d] = d == 0 ? lw_simple(L, block, q)
			                : lw_let(L, block, "i", bin(L, KB_REM, q, dims[d]));
		stride *= dims[d];
	}
}

/* split() in 32-bit arithmetic (i < 2^31: the K index), the parts widened to i64; the GPU
 * divides 32-bit integers by constants with one multiply-high, 64-bit ones with many */
static void
split32(Lower *L, KNode *block, KNode *i, const int64_t *dims, int nd, KNode **out)
{
	int64_t stride = 1;
	KNode *i32 = lw_let(L, block, "k32", kir_cast(L->p, KT_I32, i));
	for (int d = nd - 1; d >= 0; d--) {
		KNode *q = stride == 1 ? i32 : kir_bin(L->p, KB_DIV, i32, i32_c(L, stride));
		if (dims[d] == 1 && d > 0)
			out[d] = ix_c(L, 0);
		else if (d == 0)
			out[d] = lw_let(L, block, "i", kir_cast(L->p, KT_I64, q));
		else
			out[d] = lw_let(
			    L, block, "i",
			    kir_cast(L->p, KT_I64, kir_bin(L->p, KB_REM, q, i32_c(L, dims[d]))));
		stride *= dims[d];
	}
}

/* ---- operands ---- */

/* what A[m, k] needs of m: computed once per thread and tile where m is fixed per thread */
typedef struct {
	KNode *base;   /* conv: x offset of (batch, 0, od*s - p, oh*s - p, ow*s - p) (may lie
	                * outside x: only used with a tap that lands inside); convT: of
	                * (batch, 0, voxel) */
	KNode *pos[3]; /* conv: od*s - p (and oh, ow), i32 */
	KNode *m;      /* linear, matmul */
	KNode *nb;     /* conv: the batch index (for a load prologue) */
	KNode *base32; /* conv with Gemm.x32: base as i32 */
} APrep;

static void
a_prep(Lower *L, const Gemm *g, KNode *block, KNode *m, APrep *a)
{
	memset(a, 0, sizeof *a);
	a->m = m;
	if (g->kind == G_CONV) {
		int64_t od[4] = {g->Nb, g->OD, g->OH, g->OW};
		KNode *mo[4];
		split(L, block, m, od, 4, mo);
		int64_t st[3] = {g->H * g->W, g->W, 1};
		KNode *base = ix_mul(L, mo[0], g->Ci * g->D * g->H * g->W);
		for (int i = 0; i < 3; i++) {
			KNode *p0 =
			    lw_let(L, block, "p0",
			           ix_add(L, ix_mul(L, mo[i + 1], g->s[i]), ix_c(L, -g->p[i])));
			a->pos[i] = lw_let(L, block, "p32", kir_cast(L->p, KT_I32, p0));
			base = ix_add(L, base, ix_mul(L, p0, st[i]));
		}
		a->base = lw_let(L, block, "xb", base);
		a->nb = mo[0];
		if (g->x32)
			a->base32 = lw_let(L, block, "xb32", kir_cast(L->p, KT_I32, a->base));
	} else if (g->kind == G_CONVT) {
		int64_t sp = g->D * g->H * g->W;
		KNode *b = lw_simple(L, block, bin(L, KB_DIV, m, sp));
		KNode *v = lw_let(L, block, "i", bin(L, KB_REM, m, sp));
		a->base = lw_let(L, block, "xb", ix_add(L, ix_mul(L, b, g->Ci * sp), v));
	}
}

/* conv, one K step ahead: threads th < BK write the tap table of k = k0 + th at slot:
 * kt[4*th] = ci*DHW + kd*dd*HW + kh*dh*W + kw*dw (the x offset), kt[4*th + 1..3] = kd*dd,
 * kh*dh, kw*dw (i32); the division of k happens here once per K step, not per element */
static void
k_table(Lower *L, const Gemm *g, KNode *block, KNode *th, KNode *k0, KNode *slot)
{
	int64_t kd[4] = {g->Ci, g->k[0], g->k[1], g->k[2]}, st[3] = {g->H * g->W, g->W, 1};
	KNode *ko[4];
	KNode *iff = kir_if(L->p, bin(L, KB_LT, th, g->bk));
	kir_append(L->p, block, iff);
	KNode *b = iff->body, *t4 = lw_let(L, b, "t4", ix_add(L, slot, ix_mul(L, th, 4)));
	split32(L, b, ix_add(L, k0, th), kd, 4, ko);
	KNode *off = ix_mul(L, ko[0], g->D * g->H * g->W);
	for (int i = 0; i < 3; i++) {
		KNode *d = lw_simple(L, b, ix_mul(L, ko[i + 1], g->dl[i]));
		off = ix_add(L, off, ix_mul(L, d, st[i]));
		kir_append(L->p, b,
		           kir_store(L->p, g->kt, ix_add(L, t4, ix_c(L, i + 1)),
		                     kir_cast(L->p, KT_I32, d)));
	}
	kir_append(L->p, b, kir_store(L->p, g->kt, t4, kir_cast(L->p, KT_I32, off)));
}

/* valv = A[m, k] (0 where the gather falls outside x); m < M and k < K here; kk = k - k0,
 * slot: where the K step's tap table starts */
static void
a_load(Lower *L, const Gemm *g, KNode *block, const APrep *a, KNode *k, KNode *kk, KNode *slot,
       KNode *aoff, int valv)
{
	int xb = lw_buf(L, g->x);
	KNode *idx, *ok = NULL;
	if (g->kind == G_CONV) {
		int64_t in[3] = {g->D, g->H, g->W};
		KNode *k4 = lw_let(L, block, "k4", ix_add(L, slot, ix_mul(L, kk, 4)));
		for (int i = 0; i < 3; i++) {
			KNode *d = kir_load(L->p, L->k, g->kt, ix_add(L, k4, ix_c(L, i + 1)));
			KNode *pos = lw_let(L, block, "ip", kir_bin(L->p, KB_ADD, a->pos[i], d));
			ok = land(L, ok, i32_in(L, pos, in[i]));
		}
		idx = ix_add(L, a->base, kir_cast(L->p, KT_I64, kir_load(L->p, L->k, g->kt, k4)));
	} else if (g->kind == G_CONVT) {
		idx = ix_add(L, a->base, ix_mul(L, k, g->D * g->H * g->W));
	} else {
		idx = ix_add(L, aoff, ix_add(L, ix_mul(L, a->m, g->K), k));
	}
	KNode *ld = kir_load(L->p, L->k, xb, idx);
	if (g->pro) { /* k = ci*kvol + tap */
		KNode *iff = kir_if(L->p, ok);
		int64_t kvol = g->k[0] * g->k[1] * g->k[2];
		KNode *ci = kir_cast(
		    L->p, KT_I64, kir_bin(L->p, KB_DIV, kir_cast(L->p, KT_I32, k), i32_c(L, kvol)));
		kir_append(L->p, block, iff);
		kir_append(L->p, iff->body,
		           kir_assign(L->p, valv, lw_prologue(L, iff->body, a->nb, ci, ld)));
		return;
	}
	if (!ok) {
		kir_append(L->p, block, kir_assign(L->p, valv, ld));
		return;
	}
	KNode *iff = kir_if(L->p, ok);
	kir_append(L->p, block, iff);
	kir_append(L->p, iff->body, kir_assign(L->p, valv, ld));
}

static KNode *
load_b(Lower *L, const Gemm *g, KNode *k, KNode *n, KNode *boff)
{
	int wb = g->tapk ? g->wt : lw_buf(L, g->w);
	KNode *idx;
	if (g->kind == G_CONV || g->kind == G_LINEAR)
		idx = ix_add(L, ix_mul(L, n, g->K), k);
	else /* convT: w[ci, (co, phase)]; matmul: b[k, n] */
		idx = ix_add(L, boff, ix_add(L, ix_mul(L, k, g->N), n));
	return kir_load(L->p, L->k, wb, idx);
}

/* ---- the output coordinate of C[m, n] and the epilogue ---- */

/* what the output coordinate needs of m (hoisted like APrep) */
typedef struct {
	KNode *mo[IR_MAXRANK];
} OPrep;

static void
o_prep(Lower *L, const Gemm *g, KNode *block, KNode *m, OPrep *o)
{
	int64_t od[4] = {g->Nb, g->OD, g->OH, g->OW}, id[4] = {g->Nb, g->D, g->H, g->W};
	if (g->kind == G_CONV)
		split(L, block, m, od, 4, o->mo);
	else if (g->kind == G_CONVT)
		split(L, block, m, id, 4, o->mo);
	else if (g->kind == G_LINEAR)
		split(L, block, m, g->yt->dims, g->yt->rank - 1, o->mo);
	else
		o->mo[0] = m; /* matmul; conv3d_ndhwc: the output channel */
}

static int
emit_out(Lower *L, const Gemm *g, KNode *block, const OPrep *o, KNode *n, KNode *const *bidx,
         KNode *val)
{
	KNode *idx[IR_MAXRANK], *bn = n;
	Coord c;
	const Type *yt = g->yt;
	if (g->kind == G_CONV) {
		idx[0] = o->mo[0], idx[1] = n, idx[2] = o->mo[1], idx[3] = o->mo[2];
		idx[4] = o->mo[3];
	} else if (g->kind == G_CONVCL) { /* y[voxel n, channel m] */
		int64_t od[4] = {g->Nb, g->OD, g->OH, g->OW};
		split32(L, block, n, od, 4, idx);
		idx[4] = bn = o->mo[0];
	} else if (g->kind == G_CONVT) {
		int64_t nd[4] = {g->Co, g->k[0], g->k[1], g->k[2]};
		KNode *no[4];
		split(L, block, n, nd, 4, no);
		idx[0] = o->mo[0], idx[1] = bn = no[0];
		for (int a = 0; a < 3; a++)
			idx[2 + a] = lw_let(L, block, "o",
			                    ix_add(L, ix_mul(L, o->mo[a + 1], g->s[a]), no[a + 1]));
	} else if (g->kind == G_LINEAR) {
		for (int d = 0; d < yt->rank - 1; d++)
			idx[d] = o->mo[d];
		idx[yt->rank - 1] = n;
	} else {
		for (int d = 0; d < yt->rank - 2; d++)
			idx[d] = bidx[d];
		idx[yt->rank - 2] = o->mo[0];
		idx[yt->rank - 1] = n;
	}
	if (g->bias)
		val = kir_bin(L->p, KB_ADD, val, kir_load(L->p, L->k, lw_buf(L, g->bias), bn));
	coord_full(&c, yt, idx);
	return lw_output(L, block, &c, val);
}

/* ---- statistics (Group.stats) from the output tiles ---- */

/* the tiles' statistics (tmpl_tile_stats) where they fit: every tile in one batch element
 * (S, the output voxels per batch element, a multiple of bm), S / bm >= 32 tiles each */
static int
stats_fit(Lower *L, const Gemm *g, const Tiling *t)
{
	int64_t S = g->OD * g->OH * g->OW;
	return lw_stats(L) && g->kind == G_CONV && S % t->bm == 0 && S / t->bm >= 32 &&
	       tmpl_tile_stats_tpc(t->nt, t->cc, t->bm);
}

/* ---- the kernel ---- */

/* The elements e = r*nt + th (r in [0, total/nt)) of a tile walked fast dim first: f = e %
 * fast is th % fast for every r (fast divides nt), so it is a let in hoist; s = e / fast is
 * r*(nt/fast) + th/fast, a let in the returned loop body.  (nt dividing fast: f = th + (r %
 * (fast/nt))*nt, s = r / (fast/nt), both in the body.) */
static KNode *
thread_elems(Lower *L, KNode *hoist, KNode *th, int64_t nt, int64_t total, int64_t fast, KNode **fi,
             KNode **si)
{
	KNode *r;
	if (fast > nt) {
		SEGC_ASSERT(fast % nt == 0 && total % fast == 0);
		KNode *lp =
		    lw_loop(L, hoist, "r", ix_c(L, 0), ix_c(L, total / nt), LOOP_SERIAL, &r);
		*fi = lw_let(L, lp->body, "f",
		             ix_add(L, th, ix_mul(L, bin(L, KB_REM, r, fast / nt), nt)));
		*si = lw_let(L, lp->body, "s", bin(L, KB_DIV, r, fast / nt));
		return lp->body;
	}
	SEGC_ASSERT(nt % fast == 0 && total % nt == 0);
	*fi = lw_let(L, hoist, "f", bin(L, KB_REM, th, fast));
	KNode *tq = lw_let(L, hoist, "tq", bin(L, KB_DIV, th, fast));
	KNode *loop = lw_loop(L, hoist, "r", ix_c(L, 0), ix_c(L, total / nt), LOOP_SERIAL, &r);
	*si = lw_let(L, loop->body, "s", ix_add(L, ix_mul(L, r, nt / fast), tq));
	return loop->body;
}

/* the register stage of the K loop (tmpl_gpu_mma): at most bm*bk/nt A and bn*bk/nt B
 * elements per thread (pick_tiling keeps to these) */
enum { MAXA = 32, MAXB = 16, CL_VROWS = 4 };
typedef struct {
	Gemm *g;
	Tiling t;
	KNode *th, *aoff, *boff, *m0, *n0;
	int64_t lda, ldb;
	int as, bs;
	KNode *fa, *qa, *fb, *qb; /* th % fast, th / fast of the A and B walks */
	KNode *mok;               /* A walked m first: m < M, the thread's one m */
	APrep ap;                 /* ... and its gather terms */
	int ra[MAXA], rb[MAXB];   /* the registers */
	int bcp;                  /* B by cp_async from wt (no B registers): 16-byte chunks */
	int acp;                  /* A by cp_async from x (tf32 tap-major, no prologue) */
	KNode *cpk, *cpn;         /* ... a thread's chunk: its k in the step, its first n */
	/* conv3d_ndhwc (cl_stage_load): A chunks of ace elements, the thread's first at (cam,
	 * cak); B: the thread's k in the step (bkq) and first row (bnn) */
	int64_t ace;
	KNode *cam, *cak, *bkq, *bnn;
	KNode *vrow[CL_VROWS][4]; /* the thread's rows of the voxel table, when few (else NULL) */
	/* A row-major in the tile (As[m*lda + k]; tmpl_gpu_mma decides): the thread's A elements
	 * are one run of `run` k (from qa*run) of its m, stored by 16-byte vstores */
	int arow;
	int64_t run;
	const MmaRow *row; /* the row gather (tmpl_gpu_mma_row.c) fills A, or NULL */
} Stage;

/* tile coordinates of a thread's j-th A element: (mm, kk) */
static void
a_elem(Lower *L, const Stage *st, int j, KNode **mm, KNode **kk)
{
	if (st->arow) {
		*mm = st->fa;
		*kk = ix_add(L, ix_mul(L, st->qa, st->run), ix_c(L, j));
	} else if (st->g->a_kfast) {
		*kk = st->fa;
		*mm = ix_add(L, ix_c(L, j * (st->t.nt / st->t.bk)), st->qa);
	} else {
		*mm = st->fa;
		*kk = ix_add(L, ix_c(L, j * (st->t.nt / st->t.bm)), st->qa);
	}
}

static void
b_elem(Lower *L, const Stage *st, int j, KNode **kk, KNode **nn)
{
	if (st->g->b_kfast) {
		*kk = st->fb;
		*nn = ix_add(L, ix_c(L, j * (st->t.nt / st->t.bk)), st->qb);
	} else {
		*nn = st->fb;
		*kk = ix_add(L, ix_c(L, j * (st->t.nt / st->t.bn)), st->qb);
	}
}

/* tap-major conv (g->tapk): k = tap*Ci + ci, and Ci % 16 == 0, so each half (16 k) of a K
 * step has one tap.  Per half h: the thread's validity (its m, the tap inside x, k < K) and
 * the x offset of (m, tap, ci0) once (in i32 where x allows: g->x32); then A element j (kk =
 * cj + qa, cj a constant) is x[base_h + (cj % 16)*DHW]: one predicated load at a constant
 * offset, no per-element table reads, compares or divisions.  With a row-major A tile
 * (st->arow) the thread's run of k (qa*run + j) lies in one or two halves of its own (kh =
 * kbase + qa*run + 16h), element j at x[base_h + (j % 16)*DHW].  With a load prologue each
 * loaded element goes through it (its channel); padding stays 0.  (B comes from the
 * tap-major copy of w, g->wt.) */
static void
stage_load_tap_a(Lower *L, const Stage *st, KNode *block, KNode *kbase, KNode *ao)
{
	Program *p = L->p;
	const Gemm *g = st->g;
	int64_t dhw = g->D * g->H * g->W;
	int64_t in[3] = {g->D, g->H, g->W}, sp[3] = {g->H * g->W, g->W, 1};
	int64_t tk[3] = {g->k[0], g->k[1], g->k[2]};
	KNode *ok[2], *base[2], *ciq[2], *to[3];
	int nh = st->arow ? (int)((st->run + 15) / 16) : st->t.bk / 16;
	SEGC_ASSERT(nh <= 2);
	for (int h = 0; h < nh; h++) {
		KNode *kh = ix_add(L, kbase, ix_c(L, 16 * h));
		if (st->arow)
			kh = ix_add(L, kh, ix_mul(L, st->qa, st->run));
		kh = lw_let(L, block, "kh", kh);
		KNode *k32 = lw_let(L, block, "kh32", kir_cast(p, KT_I32, kh));
		KNode *tap = lw_let(L, block, "tap", kir_bin(p, KB_DIV, k32, i32_c(L, g->Ci)));
		KNode *ci0 = kir_bin(p, KB_REM, k32, i32_c(L, g->Ci));
		split32(L, block, tap, tk, 3, to);
		KNode *v = kir_bin(p, KB_AND, st->mok, bin(L, KB_LT, kh, g->K));
		ciq[h] = lw_let(L, block, "ciq",
		                st->arow ? ci0 : i32_add(L, ci0, kir_cast(p, KT_I32, st->qa)));
		KNode *off =
		    g->x32 ? i32_add(L, st->ap.base32, i32_mul(L, ciq[h], dhw))
		           : ix_add(L, st->ap.base, ix_mul(L, kir_cast(p, KT_I64, ciq[h]), dhw));
		for (int i = 0; i < 3; i++) {
			KNode *d = lw_simple(L, block, ix_mul(L, to[i], g->dl[i]));
			KNode *d32 = kir_cast(p, KT_I32, d);
			KNode *pos = lw_let(L, block, "ip", i32_add(L, st->ap.pos[i], d32));
			v = kir_bin(p, KB_AND, v, i32_in(L, pos, in[i]));
			off = g->x32 ? i32_add(L, off, i32_mul(L, d32, sp[i]))
			             : ix_add(L, off, ix_mul(L, d, sp[i]));
		}
		ok[h] = lw_let(L, block, "hok", v);
		base[h] = lw_let(L, block, "hb", off);
	}
	int xb = lw_buf(L, g->x);
	for (int j = 0; j < st->t.bm * st->t.bk / st->t.nt; j++) {
		/* kk = cj + qa, qa < nt/bm, which divides 16 (arow: kk = qa*run + j) */
		int64_t cj = st->arow ? j : j * (st->t.nt / st->t.bm);
		int h = (int)(cj / 16);
		KNode *idx = g->x32 ? i32_add(L, base[h], i32_c(L, (cj % 16) * dhw))
		                    : ix_add(L, base[h], ix_c(L, (cj % 16) * dhw));
		if (st->acp) { /* straight into the tile: 4 bytes, zero where !ok */
			KNode *mm, *kk;
			a_elem(L, st, j, &mm, &kk);
			KNode *dst = ix_add(L, ao, ix_add(L, mm, ix_mul(L, kk, st->lda)));
			kir_append(p, block, kir_cp_async(p, st->as, dst, xb, idx, 1, ok[h]));
			continue;
		}
		kir_append(p, block, kir_let(p, L->k, st->ra[j], kir_f32(p, 0)));
		KNode *iff = kir_if(p, ok[h]);
		kir_append(p, block, iff);
		KNode *ld = kir_load(p, L->k, xb, idx);
		if (g->pro)
			ld =
			    lw_prologue(L, iff->body, st->ap.nb,
			                kir_cast(p, KT_I64, i32_add(L, ciq[h], i32_c(L, cj % 16))),
			                ld);
		kir_append(p, iff->body, kir_assign(p, st->ra[j], ld));
	}
}

static void cl_stage_load(Lower *L, const Stage *st, KNode *block, KNode *kbase, KNode *ao,
                          KNode *bo);

/* the registers = the A and B elements of the K step at kbase (0 past M, N, K); st->acp: A
 * copied into the tile half at ao instead (conv3d_ndhwc: cl_stage_load, B maybe at bo) */
static void
stage_load(Lower *L, const Stage *st, KNode *block, KNode *kbase, KNode *slot, KNode *ao, KNode *bo)
{
	Program *p = L->p;
	const Gemm *g = st->g;
	KNode *mm, *kk, *nn;
	if (g->kind == G_CONVCL) {
		cl_stage_load(L, st, block, kbase, ao, bo);
		return;
	}
	if (st->row)
		mma_row_load(L, st->row, block, kbase);
	else if (g->tapk)
		stage_load_tap_a(L, st, block, kbase, ao);
	for (int j = 0; !g->tapk && j < st->t.bm * st->t.bk / st->t.nt; j++) {
		APrep ap = st->ap;
		KNode *mok = st->mok;
		a_elem(L, st, j, &mm, &kk);
		if (g->a_kfast) {
			KNode *m = lw_let(L, block, "m", ix_add(L, st->m0, mm));
			mok = bin(L, KB_LT, m, g->M);
			a_prep(L, g, block, m, &ap);
		}
		KNode *k = lw_let(L, block, "k", ix_add(L, kbase, kk));
		kir_append(p, block, kir_let(p, L->k, st->ra[j], kir_f32(p, 0)));
		KNode *iff = kir_if(p, kir_bin(p, KB_AND, mok, bin(L, KB_LT, k, g->K)));
		kir_append(p, block, iff);
		a_load(L, g, iff->body, &ap, k, kk, slot, st->aoff, st->ra[j]);
	}
	for (int j = 0; !st->bcp && j < st->t.bn * st->t.bk / st->t.nt; j++) {
		b_elem(L, st, j, &kk, &nn);
		KNode *n = lw_let(L, block, "n", ix_add(L, st->n0, nn));
		KNode *k = lw_let(L, block, "k", ix_add(L, kbase, kk));
		kir_append(p, block, kir_let(p, L->k, st->rb[j], kir_f32(p, 0)));
		KNode *iff =
		    kir_if(p, kir_bin(p, KB_AND, bin(L, KB_LT, n, g->N), bin(L, KB_LT, k, g->K)));
		kir_append(p, block, iff);
		kir_append(p, iff->body, kir_assign(p, st->rb[j], load_b(L, g, k, n, st->boff)));
	}
}

/* the shared tiles = the registers (As column-major [kk][mm], Bs [nn][kk]); ao, bo: where
 * the step's tiles start (the buffer half of a double-buffered loop) */
static void
stage_store(Lower *L, const Stage *st, KNode *block, KNode *ao, KNode *bo)
{
	Program *p = L->p;
	KNode *mm, *kk, *nn;
	if (st->row)
		mma_row_store(L, st->row, block, ao);
	if (st->arow) { /* the thread's run: 16 bytes at a time (8 bf16 or 4 f32) */
		int64_t vn = p->precision == KP_BF16 ? 8 : 4;
		KNode *row = ix_add(L, ao, ix_add(L, ix_mul(L, st->fa, st->lda),
		                                  ix_mul(L, st->qa, st->run)));
		for (int64_t q = 0; q < st->run; q += vn) {
			SEGC_ASSERT(st->ra[q + vn - 1] == st->ra[q] + vn - 1);
			kir_append(p, block, kir_vstore(p, st->as, ix_add(L, row, ix_c(L, q)),
			                                st->ra[q], (int)vn, 1));
		}
	}
	for (int j = 0; !st->acp && !st->arow && !st->row && j < st->t.bm * st->t.bk / st->t.nt;
	     j++) {
		a_elem(L, st, j, &mm, &kk);
		kir_append(p, block,
		           kir_store(p, st->as,
		                     ix_add(L, ao, ix_add(L, mm, ix_mul(L, kk, st->lda))),
		                     kir_ref(p, L->k, st->ra[j])));
	}
	if (st->g->xv) { /* conv3d_ndhwc's vector loads (cl_stage_load): xv registers a row */
		int64_t xv = st->g->xv, cpr = st->t.bk / xv;
		for (int64_t r = 0; r < st->t.bn * cpr / st->t.nt; r++) {
			nn = ix_add(L, st->bnn, ix_c(L, r * (st->t.nt / cpr)));
			KNode *row = ix_add(L, bo, ix_add(L, st->bkq, ix_mul(L, nn, st->ldb)));
			for (int64_t c = 0; c < xv; c++)
				kir_append(p, block,
				           kir_store(p, st->bs, ix_add(L, row, ix_c(L, c)),
				                     kir_ref(p, L->k, st->rb[xv * r + c])));
		}
		return;
	}
	for (int j = 0; !st->bcp && j < st->t.bn * st->t.bk / st->t.nt; j++) {
		b_elem(L, st, j, &kk, &nn);
		kir_append(p, block,
		           kir_store(p, st->bs,
		                     ix_add(L, bo, ix_add(L, kk, ix_mul(L, nn, st->ldb))),
		                     kir_ref(p, L->k, st->rb[j])));
	}
}

/* B of the K step at kbase by asynchronous copies (st->bcp): the tap-major weights wt[n*K + k]
 * are contiguous along k, and K % 16 == 0, so a step's B is bn rows of bk/ce chunks of ce
 * elements (16 bytes); thread th copies chunk k = (th % (bk/ce))*ce of rows th/(bk/ce) +
 * r*(nt/(bk/ce)) into the tile half at bo (where bk/ce does not divide nt, the threads past
 * the last whole row copy nothing: the row gather's K step of 48); zero past N and K (nothing
 * read there) */
static void
stage_cp_b(Lower *L, const Stage *st, KNode *block, KNode *kbase, KNode *bo, int ce)
{
	Program *p = L->p;
	const Gemm *g = st->g;
	int64_t cpr = st->t.bk / ce, nt = st->t.nt, rpr = nt / cpr;
	if (nt % cpr) {
		KNode *iff = kir_if(p, bin(L, KB_LT, st->cpn, rpr));
		kir_append(p, block, iff);
		block = iff->body;
	}
	KNode *k = lw_let(L, block, "k", ix_add(L, kbase, st->cpk));
	for (int64_t r = 0; r * rpr < st->t.bn; r++) {
		KNode *blk = block;
		KNode *nn = ix_add(L, st->cpn, ix_c(L, r * rpr));
		if ((r + 1) * rpr > st->t.bn) { /* the last round: rows past the tile */
			KNode *iff = kir_if(p, bin(L, KB_LT, nn, st->t.bn));
			kir_append(p, block, iff);
			blk = iff->body;
		}
		KNode *n = lw_let(L, blk, "n", ix_add(L, st->n0, nn));
		KNode *ok = kir_bin(p, KB_AND, bin(L, KB_LT, n, g->N), bin(L, KB_LT, k, g->K));
		KNode *dst = ix_add(L, bo, ix_add(L, st->cpk, ix_mul(L, nn, st->ldb)));
		KNode *src = ix_add(L, ix_mul(L, n, g->K), k);
		kir_append(p, blk, kir_cp_async(p, st->bs, dst, g->wt, src, ce, ok));
	}
}

/* ---- conv3d_ndhwc (G_CONVCL) ---- */

/* the tile's voxel table, by threads th < bn: vt[4*nn] = the x offset of (batch, p0, p1, p2,
 * ci 0) with p = o*s - pad of voxel n0 + nn, vt[4*nn + 1 + i] = p_i (i32); p0 = -2^30 past N,
 * so every tap of such a column fails the bounds test */
static void
cl_voxel_table(Lower *L, const Stage *st, KNode *block)
{
	Program *p = L->p;
	const Gemm *g = st->g;
	int64_t od[4] = {g->Nb, g->OD, g->OH, g->OW}, in[3] = {g->D, g->H, g->W};
	KNode *o[4];
	KNode *iff = kir_if(p, bin(L, KB_LT, st->th, st->t.bn));
	kir_append(p, block, iff);
	KNode *b = iff->body;
	KNode *n = lw_let(L, b, "n", ix_add(L, st->n0, st->th));
	KNode *nok = lw_let(L, b, "nok", bin(L, KB_LT, n, g->N));
	split32(L, b, kir_bin(p, KB_MIN, n, ix_c(L, g->N - 1)), od, 4, o);
	KNode *t4 = lw_let(L, b, "t4", ix_mul(L, st->th, 4));
	KNode *off = o[0];
	for (int i = 0; i < 3; i++) {
		KNode *pi =
		    lw_let(L, b, "p", ix_add(L, ix_mul(L, o[i + 1], g->s[i]), ix_c(L, -g->p[i])));
		off = ix_add(L, ix_mul(L, off, in[i]), pi);
		KNode *v = kir_cast(p, KT_I32, pi);
		if (i == 0)
			v = kir_select(p, nok, v, i32_c(L, -((int64_t)1 << 30)));
		kir_append(p, b, kir_store(p, g->vt, ix_add(L, t4, ix_c(L, i + 1)), v));
	}
	kir_append(p, b, kir_store(p, g->vt, t4, kir_cast(p, KT_I32, ix_mul(L, off, g->Ci))));
}

/* A and B of the K step at kbase.  A[m, k] = wt[k*Mp + m] (the weights, zero past M): by
 * cp.async of ce elements along m into the tile half at ao (st->acp), else registers (m
 * fastest: coalesced).  B[k, n] = x[voxel n, tap, ci] for k = tap*Ci + ci: each thread has
 * one k (run) of the step, k = kbase + bkq, and rows nn = bnn + r*(nt / (bk / xce)): the tap
 * and its x offset are decoded once per step, each row costs three shared table reads, six
 * compares and a load or a copy (xce elements, 16 bytes when 4: Ci % 4 == 0 keeps a run in
 * one tap) into the tile half at bo, zero where the tap falls outside x or k >= K. */
static void
cl_stage_load(Lower *L, const Stage *st, KNode *block, KNode *kbase, KNode *ao, KNode *bo)
{
	Program *p = L->p;
	const Gemm *g = st->g;
	int64_t bm = st->t.bm, bn = st->t.bn, bk = st->t.bk, nt = st->t.nt;
	int64_t in[3] = {g->D, g->H, g->W}, tk[3] = {g->k[0], g->k[1], g->k[2]};
	int wt = g->wt, xb = lw_buf(L, g->x);

	if (st->acp) { /* chunk e = r*nt + th: mm = (e % cpm)*ce, kk = e / cpm */
		int64_t ce = st->ace, cpm = bm / ce, total = bm * bk / ce;
		for (int64_t r = 0; r * nt < total; r++) {
			KNode *blk = block;
			KNode *kk = ix_add(L, st->cak, ix_c(L, r * (nt / cpm)));
			if (total < nt) {
				KNode *iff = kir_if(p, bin(L, KB_LT, kk, bk));
				kir_append(p, block, iff);
				blk = iff->body;
			}
			KNode *k = lw_let(L, blk, "k", ix_add(L, kbase, kk));
			KNode *dst = ix_add(L, ao, ix_add(L, st->cam, ix_mul(L, kk, st->lda)));
			KNode *src = ix_add(L, ix_mul(L, k, g->Mp), ix_add(L, st->m0, st->cam));
			kir_append(
			    p, blk,
			    kir_cp_async(p, st->as, dst, wt, src, (int)ce, bin(L, KB_LT, k, g->K)));
		}
	}
	for (int j = 0; !st->acp && j < bm * bk / nt; j++) {
		KNode *mm, *kk;
		a_elem(L, st, j, &mm, &kk);
		KNode *k = lw_let(L, block, "k", ix_add(L, kbase, kk));
		kir_append(p, block, kir_let(p, L->k, st->ra[j], kir_f32(p, 0)));
		KNode *iff = kir_if(p, bin(L, KB_LT, k, g->K));
		kir_append(p, block, iff);
		KNode *ld =
		    kir_load(p, L->k, wt, ix_add(L, ix_mul(L, k, g->Mp), ix_add(L, st->m0, mm)));
		kir_append(p, iff->body, kir_assign(p, st->ra[j], ld));
	}

	/* B: the thread's k of this step, decoded once */
	int64_t ce = x_run(g), cpr = bk / ce, rows = bn * cpr / nt;
	SEGC_ASSERT(bn * cpr % nt == 0);
	KNode *k = lw_let(L, block, "k", ix_add(L, kbase, st->bkq));
	KNode *kok = lw_let(L, block, "kok", bin(L, KB_LT, k, g->K));
	KNode *k32 = lw_let(L, block, "k32", kir_cast(p, KT_I32, k));
	KNode *tap = lw_let(L, block, "tap", kir_bin(p, KB_DIV, k32, i32_c(L, g->Ci)));
	KNode *toff = kir_bin(p, KB_REM, k32, i32_c(L, g->Ci)), *to[3], *d[3];
	split32(L, block, tap, tk, 3, to);
	for (int i = 0; i < 3; i++)
		d[i] = lw_let(L, block, "d", kir_cast(p, KT_I32, ix_mul(L, to[i], g->dl[i])));
	KNode *sp = i32_add(L, i32_mul(L, i32_add(L, i32_mul(L, d[0], g->H), d[1]), g->W), d[2]);
	toff = lw_let(L, block, "toff", i32_add(L, i32_mul(L, sp, g->Ci), toff));
	for (int64_t r = 0; r < rows; r++) {
		KNode *nn = ix_add(L, st->bnn, ix_c(L, r * (nt / cpr)));
		KNode *e4 = lw_let(L, block, "e4", ix_mul(L, nn, 4)), *ok = kok;
		for (int i = 0; i < 3; i++) {
			KNode *v = st->vrow[0][0]
			               ? st->vrow[r][i + 1]
			               : kir_load(p, L->k, g->vt, ix_add(L, e4, ix_c(L, i + 1)));
			KNode *pos = lw_let(L, block, "ip", i32_add(L, v, d[i]));
			ok = kir_bin(p, KB_AND, ok, i32_in(L, pos, in[i]));
		}
		ok = lw_let(L, block, "ok", ok);
		KNode *src =
		    i32_add(L, st->vrow[0][0] ? st->vrow[r][0] : kir_load(p, L->k, g->vt, e4),
		            toff);
		if (g->xce) {
			KNode *dst = ix_add(L, bo, ix_add(L, st->bkq, ix_mul(L, nn, st->ldb)));
			kir_append(p, block, kir_cp_async(p, st->bs, dst, xb, src, (int)ce, ok));
			continue;
		}
		if (g->xv) { /* registers rb[xv*r ..]: k .. k+xv-1 of row nn (stage_store) */
			SEGC_ASSERT(st->rb[ce * r + ce - 1] == st->rb[ce * r] + ce - 1);
			kir_append(p, block, kir_vload(p, st->rb[ce * r], (int)ce, xb, src, ok));
			continue;
		}
		kir_append(p, block, kir_let(p, L->k, st->rb[r], kir_f32(p, 0)));
		KNode *iff = kir_if(p, ok);
		kir_append(p, block, iff);
		kir_append(p, iff->body, kir_assign(p, st->rb[r], kir_load(p, L->k, xb, src)));
	}
}

/* one K step's MMAs: every warp's fm x fn accumulators over the step's bk, from the tiles at
 * ao (As) and bo (Bs); wm, wn: the warp's corner in the C tile */
static void
step_mma(Lower *L, const Stage *st, KNode *block, KNode *wm, KNode *wn, KNode *ao, KNode *bo,
         int kf)
{
	for (int ks = 0; ks < st->t.bk; ks += kf) {
		/* 64 x 32 warps: an empty block between sub-steps ends emit_cuda's fragment run
		 * there (4 + 2 fragments live, not 8 + 4 for all of a bf16 step's MMAs) */
		if (ks && st->t.fm * st->t.fn >= 8)
			kir_append(L->p, block, kir_block(L->p));
		for (int i = 0; i < st->t.fm; i++)
			for (int j = 0; j < st->t.fn; j++) {
				KNode *wr = ix_add(L, wm, ix_c(L, 16 * i)), *a;
				if (st->arow) /* A row-major: row wr, column ks */
					a = ix_add(L, ao,
					           ix_add(L, ix_mul(L, wr, st->lda), ix_c(L, ks)));
				else
					a = ix_add(L, ix_add(L, ao, wr), ix_c(L, ks * st->lda));
				KNode *b =
				    ix_add(L, ix_add(L, bo, ix_c(L, ks)),
				           ix_mul(L, ix_add(L, wn, ix_c(L, 16 * j)), st->ldb));
				kir_append(L->p, block,
				           kir_mma(L->p, i * st->t.fn + j, st->as, a, st->bs, b));
			}
	}
}

/* the leading dimension of a row-major A tile: rows of bk elements and 16 bytes (the 16-byte
 * stores and the fragment loads of 8 consecutive rows then hit distinct banks) */
static int64_t
arow_ld(const Tiling *t, int esz)
{
	return t->bk + 16 / esz;
}

/* shared bytes of tiling t (bytes per tile element esz; A row-major where arow); the pool of a
 * double-buffered one */
static int64_t
tiling_smem(const Tiling *t, int esz, int ktable, int arow)
{
	int64_t nb = t->dbuf ? 2 : 1, al = 128;
	int64_t at = arow ? t->bm * arow_ld(t, esz) : t->bk * (t->bm + 8);
	int64_t a = (nb * at * esz + al - 1) / al * al;
	int64_t b = (nb * t->bn * (t->bk + 8) * esz + al - 1) / al * al;
	int64_t c = (int64_t)t->cc * (t->bm + 8) * 4, kt = ktable ? 2 * t->bk * 4 * 4 : 0;
	if (!t->dbuf)
		return a + b + c + kt;
	return (a + b > c ? a + b : c) + kt;
}

/* The tiling of a channels-last conv: N (voxels) is large, M (Co) often small, so the tile
 * is wide: 16 x 128 (Co <= 16; warps 1 x 4 of 16 x 32), 32 x 128 (Co <= 32; 1 x 4 of 32 x
 * 32), 64 x 64 (2 x 2 of 32 x 32) with 128 threads, or, for Co > 64 when that still gives
 * >= 264 tiles (two per SM of an H100), 128 x 64 with 256 threads (4 x 2 of 32 x 32: x
 * gathered once per 128 channels); double-buffered; K step 32 for 64 x 64, else 16 (48 KiB of
 * shared memory; B registers).  $SEGC_MMA_TILE (16x128, 32x128, 64x64, 128x64) and
 * $SEGC_MMA_BK (16, 32) override; a choice over the limits falls back to 64 x 64, K step 16. */
static void
pick_tiling_cl(const Gemm *g, int bf, Tiling *t)
{
	const char *te = cg_knob("SEGC_MMA_TILE"), *ke = cg_knob("SEGC_MMA_BK");
	int64_t tiles = (g->M + 127) / 128 * ((g->N + 63) / 64);
	int bm = g->M <= 16 ? 16 : g->M <= 32 ? 32 : g->M <= 64 || tiles < 264 ? 64 : 128, sm, sn;
	if (te && sscanf(te, "%dx%d", &sm, &sn) == 2 &&
	    ((sm == 16 && sn == 128) || (sm == 32 && sn == 128) || (sm == 64 && sn == 64) ||
	     (sm == 128 && sn == 64)))
		bm = sm;
	int bn = bm >= 64 ? 64 : 128;
	*t =
	    (Tiling){bm == 128 ? 256 : 128, bm, bn, bm == 64 ? 32 : 16, bm == 16 ? 1 : 2, 2, 1, bn};
	if (ke && (atoi(ke) == 16 || atoi(ke) == 32))
		t->bk = atoi(ke);
	if (t->bm * t->bk / t->nt > MAXA || (!g->xce && t->bn * t->bk / t->nt > MAXB) ||
	    tiling_smem(t, bf ? 2 : 4, 0, 0) + t->bn * 16 > g->smem)
		*t = (Tiling){128, 64, 64, 16, 2, 2, 1, 64};
}

/* Tiles 48 columns wide (warps of 32 x 48: fm 2, fn 3) fit tap-major convs only, whose B rows
 * are k-fast and whose C is m-fast (the staging and epilogue walks need only 16 | bn) */
static int
t48_fits(const Gemm *g)
{
	return g->kind == G_CONV && g->tapk && g->b_kfast && !g->c_nfast;
}

/* a tile-choice switch: $name's value (0 off, else on) where set, else dflt */
static int
tile_env(const char *name, int dflt)
{
	const char *e = cg_knob(name);
	return e && *e ? atoi(e) != 0 : dflt;
}

/* The tiling of a GEMM.  $SEGC_MMA (read when segc compiles): 0 the main loop and tiles of
 * before (64 x 64 or 128 x 32, 128 threads, K step 32, single-buffered); 1 (default) the
 * double-buffered loop with larger tiles where M and N allow: 128 x 128 (N > 64) or 256 x 64
 * (32 < N <= 64) with 256 threads, warps of 64 x 32, when that still gives >= 264 tiles (two
 * per SM of an H100/H200) and K >= 256 (not for convT: K = Cin, and 242 registers); else 64 x
 * 64, 128 x 32 (N <= 32) or 128 x 16 (N <= 16, warps of 32 x 16) with 128 threads.  Tap-major
 * convs (t48_fits) take 128 x 48 for 32 < N <= 48 (128 threads) and, where 128 x 128 would be
 * taken, 128 x 96 for 64 < N <= 96 (256 threads): no idle quarter of the tile (SegMamba's
 * widths 48 and 96), and 256 x 64's A tile row-major does not fit 48 KiB ($SEGC_MMA_T48=0:
 * not).  $SEGC_MMA_T64=1 (opt-in until a GPU times it): those with 32 < N <= 64 take 128 x 64
 * (256 threads, warps of 32 x 32) where 256 x 64 would be taken, so their A tile can be
 * row-major.  2: the double-buffered loop with the tiles of 0 (for A/B runs).
 * $SEGC_MMA_TILE=BMxBN (64x64, 128x32, 128x16, 128x128, 256x64, 128x64; 128x48, 128x96 where
 * they fit) and $SEGC_MMA_BK=16|32 override the choice; a choice that does not fit 48 KiB of
 * shared memory or the register stage falls back to 64 x 64, K step 32.  K step at tf32 16
 * for the 256-thread tiles and 128 x 48. */
static void
pick_tiling(const Gemm *g, int bf, Tiling *t)
{
	const char *mode = cg_knob("SEGC_MMA"), *te = cg_knob("SEGC_MMA_TILE");
	const char *ke = cg_knob("SEGC_MMA_BK");
	int bm = 0, bn = 0, esz = bf ? 2 : 4;
	int t48 = t48_fits(g) && tile_env("SEGC_MMA_T48", 1);
	int t64 = t48_fits(g) && tile_env("SEGC_MMA_T64", 0);
	int64_t many = 264;
	if (mode && (atoi(mode) == 0 || atoi(mode) == 2)) {
		int n32 = g->N <= 32, db = atoi(mode) == 2;
		*t = (Tiling){128, n32 ? 128 : 64, n32 ? 32 : 64, 32, 2, 2, db, n32 ? 32 : 64};
		bm = -1; /* no tile choice below */
	} else if (!te || sscanf(te, "%dx%d", &bm, &bn) != 2) {
		int64_t mt = (g->M + 127) / 128, nt = (g->N + 127) / 128;
		if (g->K < 256 || g->kind == G_CONVT) /* short K loops: the tile's overheads */
			many = INT64_MAX;
		if (g->N <= 16)
			bm = 128, bn = 16;
		else if (g->N <= 32)
			bm = 128, bn = 32;
		else if (g->N <= 48 && t48)
			bm = 128, bn = 48;
		else if (g->N > 64 && g->N <= 96 && t48 && mt * g->batch >= many)
			bm = 128, bn = 96;
		else if (g->N <= 64 && t64 && mt * g->batch >= many)
			bm = 128, bn = 64;
		else if (g->N <= 64)
			bm = (g->M + 255) / 256 * g->batch >= many ? 256 : 64, bn = 64;
		else if (mt * nt * g->batch >= many)
			bm = 128, bn = 128;
		else
			bm = 64, bn = 64;
	}
	if (bm < 0)
		; /* SEGC_MMA=0 or 2 */
	else if (bm == 128 && bn == 128)
		*t = (Tiling){256, 128, 128, bf ? 32 : 16, 4, 2, 1, 64};
	else if (bm == 256 && bn == 64)
		*t = (Tiling){256, 256, 64, bf ? 32 : 16, 4, 2, 1, 32};
	else if (bm == 128 && bn == 64)
		*t = (Tiling){256, 128, 64, bf ? 32 : 16, 2, 2, 1, 64};
	else if (bm == 128 && bn == 32)
		*t = (Tiling){128, 128, 32, 32, 2, 2, 1, 32};
	else if (bm == 128 && bn == 48 && t48_fits(g))
		*t = (Tiling){128, 128, 48, bf ? 32 : 16, 2, 3, 1, 48};
	else if (bm == 128 && bn == 96 && t48_fits(g))
		*t = (Tiling){256, 128, 96, bf ? 32 : 16, 2, 3, 1, 48};
	else if (bm == 128 && bn == 16)
		*t = (Tiling){128, 128, 16, 32, 2, 1, 1, 16};
	else
		*t = (Tiling){128, 64, 64, 32, 2, 2, 1, 64};
	if (t->nt == 256 && g->pro) /* a prologue's arithmetic: fewer A elements per step */
		t->bk = 16;
	/* tap-table gathers (three shared reads each), double-buffered: at K step 32, 223..245
	 * registers (64 x 64, 128 x 32); at 16, 128 */
	if (t->dbuf && g->kind == G_CONV && !g->tapk)
		t->bk = 16;
	if (ke && (atoi(ke) == 16 || atoi(ke) == 32))
		t->bk = atoi(ke);
	if (t->bm * t->bk / t->nt > MAXA || t->bn * t->bk / t->nt > MAXB ||
	    tiling_smem(t, esz, g->kind == G_CONV && !g->tapk, 0) > g->smem)
		*t = (Tiling){128, 64, 64, 32, 2, 2, 1, 64};
}

/* Split-K: a GEMM with fewer tiles than half the GPU's SMs (deep layers at small volumes)
 * splits its K loop over *s blocks per tile, each *kchunk of K (whole K steps), whose partial
 * C tiles go to scratch; a second, parallel loop adds them, the bias and the epilogue
 * (tmpl_gpu_mma).  S = SMs / tiles (132 on sm_90, 108 on sm_80), at most 8 and at most one
 * split per 4 K steps; $SEGC_MMA_SPLITK forces S (1: none).  Not for matmul and convT.  The
 * register-fragment tiles (4 warps, no shared tile, frag) aim at 4 blocks an SM: fewer tiles
 * than 2 an SM split into S = 4 SMs / tiles. */
static void
pick_splits(const Program *p, const Gemm *g, const Tiling *t, int64_t tiles, int nosplit,
            int frag, int64_t *s, int64_t *kchunk)
{
	const char *se = cg_knob("SEGC_MMA_SPLITK");
	se = se && *se ? se : NULL;
	int64_t sms = (p->gpu >= 90 ? 132 : 108) * (frag ? 4 : 1);
	int64_t steps = (g->K + t->bk - 1) / t->bk;
	int64_t want = se ? atoll(se) : tiles * 2 <= sms && !nosplit ? sms / tiles : 1;
	want = se ? want : want < steps / 4 ? want : steps / 4;
	want = want < 8 ? want : 8;
	*s = 1;
	*kchunk = g->K;
	if (want < 2 || steps < 2 || g->kind == G_CONVT || g->kind == G_MATMUL)
		return;
	int64_t per = (steps + want - 1) / want; /* K steps per split */
	*kchunk = per * t->bk;
	*s = (steps + per - 1) / per;
}

/* the second loop of a split GEMM: C[m, n] = the sum of the ns partial tiles in part (laid out
 * [split][m][n], n fastest where c_nfast, else [split][n][m]), then the bias and epilogue */
static int
split_sum(Lower *L, const Gemm *g, int part, int64_t ns)
{
	Program *p = L->p;
	KNode *e, *m, *n, *bidx[IR_MAXRANK] = {0};
	OPrep op;
	int64_t mn = g->M * g->N, fast = g->c_nfast ? g->N : g->M;
	KNode *pl = lw_loop(L, L->k->body, "e", ix_c(L, 0), ix_c(L, mn), LOOP_PARALLEL, &e);
	KNode *b = pl->body, *f = lw_let(L, b, "f", bin(L, KB_REM, e, fast));
	KNode *sl = lw_let(L, b, "s", bin(L, KB_DIV, e, fast));
	m = g->c_nfast ? sl : f;
	n = g->c_nfast ? f : sl;
	KNode *v = kir_load(p, L->k, part, e);
	for (int64_t s = 1; s < ns; s++)
		v = kir_bin(p, KB_ADD, v, kir_load(p, L->k, part, ix_add(L, e, ix_c(L, s * mn))));
	o_prep(L, g, b, m, &op);
	return emit_out(L, g, b, &op, n, bidx, v);
}

int
tmpl_gpu_mma(Lower *L)
{
	Gemm g;
	Tiling t = {0};
	Program *p = L->p;
	Kernel *k = L->k;
	int bf = p->precision == KP_BF16;
	int kf = bf ? 16 : 8, tdt = bf ? DT_BF16 : DT_F32;

	if (p->precision == KP_FP32 || !gemm_setup(L, &g))
		return 1;
	g.smem = cg_gpu_smem(p);
	if (g.kind != G_CONV && lw_has_prologue(L))
		return 1; /* only the conv gather applies it: the SIMT form does */
	/* cp.async ($SEGC_MMA_CPASYNC: 0 none, 1 B only, 2 (default) A too): in double-
	 * buffered tap-major convs, B from wt (in the tile's dtype); A at tf32 without a
	 * prologue (bf16 tiles and prologues need the values in registers).  conv3d_ndhwc:
	 * 1: A (wt, the tile's dtype), 2: and B (x) at tf32, 16 bytes where Ci % 4 == 0 and x
	 * lies 16-byte aligned in the arena (a caller's device pointer may not be), else 4 */
	const char *cpe = cg_knob("SEGC_MMA_CPASYNC");
	int cpm = cpe ? atoi(cpe) : 2, ce = bf ? 8 : 4, cl = g.kind == G_CONVCL;
	if (cl) {
		int xbi = lw_buf(L, g.x); /* (may grow k->bufs) */
		const KBuf *xk = &k->bufs[xbi];
		int al = g.Ci % 4 == 0 && xk->slot == 0 && xk->offset % 16 == 0 &&
		         xk->dtype == DT_F32; /* (a bf16 x: element by element) */
		g.xce = cpm >= 2 && !bf ? (al ? 4 : 1) : 0;
		/* bf16 (the tile's elements rounded from x's f32): x by 16-byte vector loads into
		 * registers where the copies would be 16 bytes ($SEGC_MMA_XVEC=0: element by
		 * element) */
		const char *xve = cg_knob("SEGC_MMA_XVEC");
		g.xv = bf && al && (!xve || atoi(xve) != 0) ? 4 : 0;
		pick_tiling_cl(&g, bf, &t);
	} else {
		pick_tiling(&g, bf, &t);
	}
	/* the row gather where it applies (tmpl_gpu_mma_row.c; $SEGC_MMA_XROW=0: not): its K
	 * step, 64- or 128-row tiles (256 x 64 becomes 128 x 64; where the tile does not fit the
	 * shared memory allowed (48 KiB unless $SEGC_CUDA_SMEM) at a K step of KP: 128 x 64 of
	 * 256 threads (for 128 x 128), else 64 x 64 (the 5x5x5 convs), as the row gather loads a
	 * tenth of what the other does), B by cp.async */
	MmaRow row = {0};
	int xrow = 0;
	if (g.kind == G_CONV && !g.pro && t.dbuf && cpm >= 1) {
		Tiling rt = t.bm == 256 ? (Tiling){256, 128, 64, 32, 2, 2, 1, 64} : t;
		lw_conv_shape(L, &row.cv);
		for (int i = 0; i < 3 && !xrow; i++) {
			if (i)
				rt = i == 1 ? (Tiling){256, 128, 64, 32, 2, 2, 1, 64}
				            : (Tiling){128, 64, 64, 32, 2, 2, 1, 64};
			if (mma_row_fits(L, &row, rt.bm, rt.nt, rt.bn)) {
				rt.bk = (int)row.bk;
				xrow = tiling_smem(&rt, bf ? 2 : 4, 0, 0) <= g.smem;
			}
		}
		t = xrow ? rt : t;
		if (xrow) /* K in the form's order (a small Cin's groups padded to kf k) */
			g.tapk = 1, g.K = row.ngroups * row.KP;
	}
	/* the register-fragment form (tmpl_gpu_mma_row.c; bf16 and tf32, $SEGC_MMA_FRAG=0 not):
	 * 256 x 16, 32 or 48 tiles of 4 warps, A in registers, B from wt in fragment order (a bf16
	 * or tf32 copy in global memory, as the cp.async forms': not with $SEGC_MMA_CPASYNC=0) */
	MmaRow fr = {0};
	int frag = 0;
	if (g.kind == G_CONV && !g.pro && cpm >= 1) { /* (any Cin: mma_frag_fits) */
		lw_conv_shape(L, &fr.cv);
		frag = mma_frag_fits(L, &fr, g.N);
	}
	if (frag) {
		xrow = 0, g.tapk = 1; /* (K in the form's order) */
		/* (48 columns: the C tile 16 at a time, 256 x 48 f32 would not fit 48 KiB) */
		t = (Tiling){128, 256, (int)fr.bn, (int)fr.bk, 4, (int)fr.bn / 16, 0,
		             fr.bn == 48 ? 16 : (int)fr.bn};
		g.K = fr.ngroups * fr.KP;
	}
	g.bk = t.bk;
	int bcp = cl ? g.xce != 0 : t.dbuf && g.tapk && cpm >= 1;
	int acp = cl ? cpm >= 1 : bcp && cpm >= 2 && !bf && !g.pro && !xrow;
	int64_t bm = t.bm, bn = t.bn, bk = t.bk, nt = t.nt, nbuf = t.dbuf ? 2 : 1;
	/* A row-major where a tap-major conv's A goes through registers: each thread's run of k
	 * of its m is contiguous in the tile, stored 16 bytes at a time instead of an element at
	 * a time (half the shared-store wavefronts; bf16 activations packed as they are); the
	 * fragments load row-major.  H100, 128^3 bf16: 6-13% less GPU time per graph, 20-23% less
	 * in the full-resolution convs.  $SEGC_MMA_AROW=0: the column-major tile (A/B) */
	const char *are = cg_knob("SEGC_MMA_AROW");
	int arow = !xrow && !frag && g.kind == G_CONV && g.tapk && !acp && bm * bk / nt >= 8 &&
	           tiling_smem(&t, bf ? 2 : 4, 0, 1) <= g.smem && (!are || atoi(are) != 0);
	/* (frag: the register accumulators' stores, a lane's rows 8 apart, hit 16 banks with ldc
	 * odd, 4 with bm + 8) */
	int64_t lda = arow ? arow_ld(&t, bf ? 2 : 4) : bm + 8, ldb = bk + 8;
	int64_t ldc = frag ? bm + 1 : bm + 8;
	int64_t wrows = bm / (16 * t.fm);
	int64_t atile = arow ? bm * lda : bk * lda; /* elements of one A tile */
	int64_t nmb = (g.M + bm - 1) / bm, nnb = (g.N + bn - 1) / bn, ksp, kchunk;
	/* statistics from the tiles (Group.stats) where they fit: then no split-K unless forced */
	int stat = stats_fit(L, &g, &t);
	pick_splits(p, &g, &t, nmb * nnb * g.batch, stat, frag, &ksp, &kchunk);
	int part = ksp > 1 ? lw_scratch(L, DT_F32, ksp * g.M * g.N, "kpart") : -1;
	TileStats sts = {0};
	stat = stat && ksp == 1;
	if (stat)
		tmpl_tile_stats_setup(L, &sts, g.OD * g.OH * g.OW / bm, bm, g.N, g.Nb);
	SEGC_ASSERT(wrows * (bn / (16 * t.fn)) * 32 == nt && bn % t.cc == 0);
	int as = frag ? -1 : kir_shared(p, k, tdt, nbuf * atile, (int)lda, "As");
	if (!frag)
		k->bufs[as].arow = (uint8_t)arow;
	int bs = frag ? -1 : kir_shared(p, k, tdt, nbuf * bn * ldb, (int)ldb, "Bs");
	/* C, a chunk of cc columns (bn, but in the double-buffered tiles and frag's 48-column
	 * ones); double-buffered over the A and B tiles, after the K loop */
	int cs = t.dbuf ? kir_shared_over(p, k, DT_F32, t.cc * ldc, (int)ldc, "Cs", as)
	                : kir_shared(p, k, DT_F32, t.cc * ldc, (int)ldc, "Cs");

	if (cl) { /* wt[k, m] = w[m, ci, tap] (k = tap*Ci + ci), 0 for m in [M, Mp): loop 1 */
		int64_t kvol = g.k[0] * g.k[1] * g.k[2], dims[3] = {kvol, g.Ci, nmb * bm};
		KNode *ix[3];
		g.Mp = nmb * bm;
		g.wt = lw_scratch(L, acp ? tdt : DT_F32, g.K * g.Mp, "wt");
		KNode *pb = lw_nest(L, dims, 3, 0, ix);
		KNode *ti =
		    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, ix[0], g.Ci), ix[1]), g.Mp), ix[2]);
		KNode *mc = kir_bin(p, KB_MIN, ix[2], ix_c(L, g.M - 1));
		KNode *wi =
		    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, mc, g.Ci), ix[1]), kvol), ix[0]);
		KNode *v = kir_load(p, k, lw_buf(L, g.w), wi);
		if (g.Mp > g.M)
			v = kir_select(p, bin(L, KB_LT, ix[2], g.M), v, kir_f32(p, 0));
		kir_append(p, pb, kir_store(p, g.wt, ti, v));
		/* (the C tile may extend over it: Vt is rewritten only after the epilogue's
		 * last barrier, and read only in the K loop) */
		g.vt = kir_shared(p, k, DT_I32, bn * 4, 0, "Vt");
	}
	if (frag) /* wt in fragment order, bf16 (tf32: f32) */
		g.wt = lw_scratch(L, bf ? DT_BF16 : DT_F32, fr.ngroups * fr.KP * nnb * bn, "wt");
	else if (g.tapk) /* wt: one flat parallel loop before the GEMM */
		g.wt = lw_scratch(L, bcp ? tdt : DT_F32, g.N * g.K, "wt");
	if (frag) {
		mma_frag_wt(L, &fr, g.wt, lw_buf(L, g.w), g.N, nnb * bn / 16);
	} else if (g.tapk && xrow) {
		mma_row_wt(L, &row, g.wt, lw_buf(L, g.w), g.N);
	} else if (g.tapk) { /* wt[n, tap, ci] = w[n, ci, tap] */
		int64_t kvol = g.k[0] * g.k[1] * g.k[2], dims[3] = {g.N, g.Ci, kvol};
		KNode *ix[3];
		KNode *pb = lw_nest(L, dims, 3, 0, ix);
		KNode *nk = ix_mul(L, ix[0], g.K);
		KNode *ti = ix_add(L, nk, ix_add(L, ix_mul(L, ix[2], g.Ci), ix[1]));
		KNode *wi = ix_add(L, nk, ix_add(L, ix_mul(L, ix[1], kvol), ix[2]));
		kir_append(p, pb, kir_store(p, g.wt, ti, kir_load(p, k, lw_buf(L, g.w), wi)));
	}
	KNode *blk, *th;
	KNode *tl = lw_block_loop(L, "blk", nmb * nnb * g.batch * ksp, nt, &blk, &th);
	/* 256 threads: ask for 2 blocks per SM (<= 128 registers; without, 164..251 and one
	 * block); $SEGC_MMA_MINB overrides (0: no request) */
	const char *mbe = cg_knob("SEGC_MMA_MINB");
	tl->op = (uint8_t)(mbe ? atoi(mbe) : nt == 256 ? 2 : 0);
	KNode *body = tl->body;
	KNode *kbeg = ix_c(L, 0), *kend = ix_c(L, g.K), *sk = NULL;
	if (ksp > 1) { /* split sk of the tile's K: blocks [sk*tiles, (sk+1)*tiles) */
		int64_t tiles = nmb * nnb * g.batch;
		sk = lw_let(L, body, "sk", bin(L, KB_DIV, blk, tiles));
		blk = lw_let(L, body, "tb", bin(L, KB_REM, blk, tiles));
		kbeg = lw_let(L, body, "kbeg", ix_mul(L, sk, kchunk));
		kend = lw_let(L, body, "kend",
		              kir_bin(p, KB_MIN, ix_add(L, kbeg, ix_c(L, kchunk)), ix_c(L, g.K)));
	}
	KNode *mb = lw_let(L, body, "mb", bin(L, KB_REM, blk, nmb));
	KNode *rest = lw_let(L, body, "rest", bin(L, KB_DIV, blk, nmb));
	KNode *nb = lw_let(L, body, "nb", bin(L, KB_REM, rest, nnb));
	KNode *m0 = lw_let(L, body, "m0", ix_mul(L, mb, bm));
	KNode *n0 = lw_let(L, body, "n0", ix_mul(L, nb, bn));
	KNode *warp = lw_let(L, body, "warp", bin(L, KB_DIV, th, 32));
	KNode *wm = lw_let(L, body, "wm", ix_mul(L, bin(L, KB_REM, warp, wrows), 16 * t.fm));
	KNode *wn = lw_let(L, body, "wn", ix_mul(L, bin(L, KB_DIV, warp, wrows), 16 * t.fn));
	KNode *bidx[IR_MAXRANK], *aoff = ix_c(L, 0), *boff = ix_c(L, 0);
	if (g.kind == G_MATMUL) {
		KNode *bi = lw_let(L, body, "bi", bin(L, KB_DIV, rest, nnb));
		split(L, body, bi, g.yt->dims, g.yt->rank - 2, bidx);
		aoff = lw_simple(L, body, lw_batch_off(L, bidx, g.yt, lw_type(L, g.x)));
		boff = lw_simple(L, body, lw_batch_off(L, bidx, g.yt, lw_type(L, g.w)));
	}
	for (int i = 0; i < t.fm * t.fn; i++)
		kir_append(p, body, kir_mma_zero(p, i));

	/* the K loop, software-pipelined through registers: every thread loads its A and B
	 * elements of the next K step into registers (all loads issued back to back, then in
	 * flight during the MMAs) and stores them to the shared tiles (single-buffered: at the
	 * top of the next step, between two barriers; double-buffered: into the other half
	 * after the MMAs, one barrier); a conv's tap table is written ahead into two slots */
	Stage st = {&g, t,    th,   aoff, boff, m0,   n0,  lda, ldb, as,
	            bs, NULL, NULL, NULL, NULL, NULL, {0}, {0}, {0}};
	/* (row-major A with nt == bm: qa 0, so that the gather's K terms, kh = kbase + qa*run + ..,
	 * stay warp-uniform, in uniform registers: 96 -> 110 registers otherwise; the row
	 * gather: neither) */
	if (!xrow && !frag) {
		st.fa = lw_let(L, body, "fa", bin(L, KB_REM, th, g.a_kfast ? bk : bm));
		st.qa = arow && nt == bm
		            ? ix_c(L, 0)
		            : lw_let(L, body, "qa", bin(L, KB_DIV, th, g.a_kfast ? bk : bm));
	}
	if (!frag) {
		st.fb = lw_let(L, body, "fb", bin(L, KB_REM, th, g.b_kfast ? bk : bn));
		st.qb = lw_let(L, body, "qb", bin(L, KB_DIV, th, g.b_kfast ? bk : bn));
	}
	if (xrow) { /* the thread's octet of m for the whole tile, its windows' registers */
		mma_row_prep(L, &row, body, th, m0, g.M, lda, as, atile);
		st.row = &row;
	} else if (frag) {
		mma_frag_prep(L, &fr, body, th, m0, g.M);
	} else if (!g.a_kfast) { /* m = m0 + th % bm for the whole tile: its gather terms too */
		KNode *m = lw_let(L, body, "m", ix_add(L, m0, st.fa));
		st.mok = lw_let(L, body, "mok", bin(L, KB_LT, m, g.M));
		a_prep(L, &g, body, m, &st.ap);
	}
	for (int j = 0; !acp && !xrow && !frag && j < bm * bk / nt; j++)
		st.ra[j] = kir_var(p, k, KT_F32, "ra");
	st.acp = acp;
	st.arow = arow;
	st.run = bm * bk / nt;
	for (int j = 0; !bcp && !frag && j < bn * bk / nt; j++)
		st.rb[j] = kir_var(p, k, KT_F32, "rb");
	st.bcp = bcp;
	if (bcp && !cl) {
		st.cpk = lw_let(L, body, "cpk", ix_mul(L, bin(L, KB_REM, th, bk / ce), ce));
		st.cpn = lw_let(L, body, "cpn", bin(L, KB_DIV, th, bk / ce));
	}
	if (cl) { /* the thread's A chunk and B k run (cl_stage_load); the voxel table */
		int64_t xc = x_run(&g);
		st.ace = ce;
		st.cam = lw_let(L, body, "cam", ix_mul(L, bin(L, KB_REM, th, bm / ce), ce));
		st.cak = lw_let(L, body, "cak", bin(L, KB_DIV, th, bm / ce));
		st.bkq = lw_let(L, body, "bkq", ix_mul(L, bin(L, KB_REM, th, bk / xc), xc));
		st.bnn = lw_let(L, body, "bnn", bin(L, KB_DIV, th, bk / xc));
		cl_voxel_table(L, &st, body);
		kir_append(p, body, kir_barrier(p));
		/* $SEGC_MMA_CLVROWS=1: with few rows per thread (16-byte copies: 4), their entries
		 * in registers for the tile, not read per step (32 x 128 tf32: 128 registers, 80
		 * without; which is faster is for a GPU to say) */
		const char *vre = cg_knob("SEGC_MMA_CLVROWS");
		int64_t cpr = bk / xc, rows = vre && atoi(vre) == 1 ? bn * cpr / nt : CL_VROWS + 1;
		for (int64_t r = 0; rows <= CL_VROWS && r < rows; r++)
			for (int q = 0; q < 4; q++) {
				KNode *e = ix_add(L, ix_mul(L, st.bnn, 4),
				                  ix_c(L, r * (nt / cpr) * 4 + q));
				st.vrow[r][q] = lw_let(L, body, "vt", kir_load(p, k, g.vt, e));
			}
	}
	g.kt = -1;
	int ktab = g.kind == G_CONV && !g.tapk;
	if (ktab) {
		g.kt = kir_shared(p, k, DT_I32, 2 * bk * 4, 0, "Kt");
		k_table(L, &g, body, th, kbeg, ix_c(L, 0));
		if (t.dbuf)
			k_table(L, &g, body, th, ix_add(L, kbeg, ix_c(L, bk)), ix_c(L, bk * 4));
		kir_append(p, body, kir_barrier(p));
	}
	if (!frag)
		stage_load(L, &st, body, kbeg, ix_c(L, 0), ix_c(L, 0), ix_c(L, 0));
	if (t.dbuf) {
		if (bcp && !cl)
			stage_cp_b(L, &st, body, kbeg, ix_c(L, 0), ce);
		stage_store(L, &st, body, ix_c(L, 0), ix_c(L, 0));
		if (bcp || acp)
			kir_append(p, body, kir_cp_wait(p));
		kir_append(p, body, kir_barrier(p));
	}
	int kv = kir_var(p, k, KT_I64, "k0");
	KNode *kl = kir_loop(p, kv, kbeg, kend, bk, LOOP_SERIAL);
	/* frag: $SEGC_MMA_FRAG_UNROLL=U (opt-in) unrolls the K loop U times, so that ptxas may
	 * issue a group's loads during the MMAs of the one before (no barrier in the way) */
	const char *fue = frag ? cg_knob("SEGC_MMA_FRAG_UNROLL") : NULL;
	if (fue && atoi(fue) > 1 && atoi(fue) <= 8)
		kl->ann = LOOP_UNROLL, kl->op = (uint8_t)atoi(fue);
	kir_append(p, body, kl);
	KNode *k0 = kir_ref(p, k, kv), *kb = kl->body;
	KNode *next = lw_let(L, kb, "kn", ix_add(L, k0, ix_c(L, bk))), *slot = ix_c(L, 0);
	/* the step's parity counts from the split's first step (the halves, the table slots) */
	KNode *k0r = ksp > 1 ? kir_bin(p, KB_SUB, k0, kbeg) : k0;
	if (frag) {
		mma_frag_step(L, &fr, kb, k0, ix_mul(L, nb, bn / 16), nnb * bn / 16, g.wt);
	} else if (t.dbuf) {
		KNode *cur = lw_let(L, kb, "cur", bin(L, KB_REM, bin(L, KB_DIV, k0r, bk), 2));
		KNode *oth = lw_let(L, kb, "oth", kir_bin(p, KB_SUB, ix_c(L, 1), cur));
		if (ktab)
			slot = lw_let(L, kb, "slot", ix_mul(L, oth, bk * 4));
		stage_load(L, &st, kb, next, slot, ix_mul(L, oth, atile),
		           ix_mul(L, oth, bn * ldb));
		if (bcp && !cl)
			stage_cp_b(L, &st, kb, next, ix_mul(L, oth, bn * ldb), ce);
		step_mma(L, &st, kb, wm, wn, lw_let(L, kb, "ac", ix_mul(L, cur, atile)),
		         lw_let(L, kb, "bc", ix_mul(L, cur, bn * ldb)), kf);
		if (ktab) /* slot cur held step k0's table, read before the last barrier */
			k_table(L, &g, kb, th, ix_add(L, k0, ix_c(L, 2 * bk)),
			        ix_mul(L, cur, bk * 4));
		stage_store(L, &st, kb, ix_mul(L, oth, atile), ix_mul(L, oth, bn * ldb));
		if (bcp || acp)
			kir_append(p, kb, kir_cp_wait(p));
		kir_append(p, kb, kir_barrier(p));
	} else {
		if (ktab) {
			KNode *par = bin(L, KB_REM, bin(L, KB_DIV, k0r, bk), 2);
			slot = lw_let(L, kb, "slot",
			              ix_mul(L, kir_bin(p, KB_SUB, ix_c(L, 1), par), bk * 4));
			k_table(L, &g, kb, th, next, slot);
		}
		stage_store(L, &st, kb, ix_c(L, 0), ix_c(L, 0));
		kir_append(p, kb, kir_barrier(p));
		stage_load(L, &st, kb, next, slot, ix_c(L, 0), ix_c(L, 0));
		step_mma(L, &st, kb, wm, wn, ix_c(L, 0), ix_c(L, 0), kf);
		kir_append(p, kb, kir_barrier(p));
	}

	/* accumulators -> the shared C tile (cc columns at a time) -> epilogue per element (frag:
	 * every warp holds all bn columns, in registers: the chunks unrolled, each storing its
	 * own accumulators) */
	KNode *fi, *si, *mm = NULL, *nn, *m = NULL, *n, *iff, *sb;
	int64_t nch = bn / t.cc, fch = frag ? nch : 1;
	KNode *wc = nch > 1 && !frag ? lw_let(L, body, "wc", bin(L, KB_DIV, wn, t.cc)) : NULL;
	OPrep op;
	int mvar = !g.c_nfast && bm > nt; /* (frag: two m a thread) */
	/* m fixed per thread: its output coordinate once (split: none) */
	if (!g.c_nfast && !mvar) {
		mm = lw_let(L, body, "f", bin(L, KB_REM, th, bm));
		m = lw_let(L, body, "m", ix_add(L, m0, mm));
		if (ksp == 1)
			o_prep(L, &g, body, m, &op);
	}
	for (int64_t c = 0; c < fch; c++) {
		KNode *hc = ix_c(L, c), *eb = body;
		if (nch > 1 && !frag) {
			KNode *cl =
			    lw_loop(L, body, "hc", ix_c(L, 0), ix_c(L, nch), LOOP_SERIAL, &hc);
			eb = cl->body;
		}
		KNode *sto = eb;
		if (nch > 1 && !frag) { /* the warps whose columns lie in chunk hc */
			KNode *wi = kir_if(p, kir_bin(p, KB_EQ, wc, hc));
			kir_append(p, eb, wi);
			sto = wi->body;
		}
		KNode *wnc = ix_add(L, wn, ix_mul(L, hc, -t.cc));
		for (int i = 0; i < t.fm; i++)
			for (int j = 0; j < t.fn; j++) { /* (frag: rows 8 apart from voxel 2i) */
				if (frag && 16 * j / t.cc != c) /* (frag: chunk c's accumulators) */
					continue;
				KNode *co = ix_add(L, ix_add(L, wm, ix_c(L, frag ? 2 * i : 16 * i)),
				                   ix_mul(L, ix_add(L, wnc, ix_c(L, 16 * j)), ldc));
				int a = i * t.fn + j;
				kir_append(p, sto, frag ? kir_mma_store_rows(p, a, cs, co, 8)
				                        : kir_mma_store(p, a, cs, co));
			}
		kir_append(p, eb, kir_barrier(p));
		sb = thread_elems(L, eb, th, nt, bm * t.cc, g.c_nfast ? t.cc : bm, &fi, &si);
		if (g.c_nfast || mvar) {
			mm = mvar ? fi : si, nn = mvar ? si : fi;
			m = lw_let(L, sb, "m", ix_add(L, m0, mm));
		} else {
			nn = si;
		}
		KNode *nc = ix_add(L, nn, ix_mul(L, hc, t.cc)); /* the column in the C tile */
		n = lw_let(L, sb, "n", ix_add(L, n0, nc));
		iff = kir_if(p, kir_bin(p, KB_AND, bin(L, KB_LT, m, g.M), bin(L, KB_LT, n, g.N)));
		kir_append(p, sb, iff);
		if ((g.c_nfast || mvar) && ksp == 1)
			o_prep(L, &g, iff->body, m, &op);
		KNode *acc = kir_load(p, k, cs, ix_add(L, mm, ix_mul(L, nn, ldc)));
		if (ksp > 1) { /* the partial tile (split_sum adds them) */
			KNode *pi = g.c_nfast ? ix_add(L, ix_mul(L, m, g.N), n)
			                      : ix_add(L, ix_mul(L, n, g.M), m);
			KNode *at = ix_add(L, ix_mul(L, sk, g.M * g.N), pi);
			kir_append(p, iff->body, kir_store(p, part, at, acc));
		} else if (emit_out(L, &g, iff->body, &op, n, bidx, acc) < 0) {
			return -1;
		} else if (stat) { /* the result over its accumulator, for stats_tile */
			kir_append(p, iff->body,
			           kir_store(p, cs, ix_add(L, mm, ix_mul(L, nn, ldc)), L->out_val));
		}
		if (stat)
			tmpl_tile_stats(L, &sts, eb, th, nt, t.cc, mb,
			                ix_add(L, n0, ix_mul(L, hc, t.cc)), cs, ldc);
		/* single-buffered: a block's next tile writes Cs only after its K loop's barriers,
		 * so after every thread has finished this epilogue; double-buffered, Cs lies over
		 * the A and B tiles (and the next chunk over this one): a barrier */
		if (t.dbuf || frag) /* (frag: no barrier in the K loop; the next chunk's stores) */
			kir_append(p, eb, kir_barrier(p));
	}
	if (stat)
		return tmpl_tile_stats_merge(L, &sts);
	return ksp > 1 ? split_sum(L, &g, part, ksp) : 0;
}
