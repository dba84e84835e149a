/* codegen/tmpl_gpu_mma.c -- tensor-core implicit GEMM for conv3d, conv_transpose3d (kernel ==
 * stride), linear and matmul when --precision is tf32 or bf16 (GPU forms, codegen/tmpl_gpu.c).
 *
 * Each root is a GEMM C[M, N] = A[M, K] B[K, N] with FP32 accumulation:
 *   conv3d      M = batch*OD*OH*OW, N = Cout, K = Cin*kd*kh*kw; A = im2col gather of x (0
 *               outside the input), B[k, n] = w[n*K + k]           (groups == 1)
 *   convT k==s  M = batch*D*H*W (input voxels), N = Cout*kd*kh*kw (channel, output phase),
 *               K = Cin; A[m, k] = x[b, k, voxel], B[k, n] = w[k*N + n]; C[m, n] lands at
 *               out[b, co, d*kd + pd, h*kh + ph, w*kw + pw]
 *   linear      M = rows, N = out features, K = in; A = x, B[k, n] = W[n*K + k]
 *   matmul      per batch element (a third block coordinate, broadcast like tmpl_matmul.c)
 * One LOOP_BLOCK iteration per bm x bn tile of C (M tiles fastest, so consecutive blocks reuse
 * one B tile from L2): 64 x 64, or 128 x 32 when N <= 32; 128 threads = 4 warps, each warp a
 * 32 x 32 part = 2 x 2 MMA accumulators of 16 x 16 (kir.def K_mma*).  The K loop (steps of
 * BK) is pipelined through registers: each thread holds its A elements (gathered, zero past M
 * and K) and B elements of one step in registers; per step it stores them to the shared tiles
 * (column-major; bf16 tiles round on the store, tf32 rounds when the fragments are loaded),
 * barrier, issues all loads of the next step, runs BK/KF MMAs per accumulator, barrier.  Then
 * the accumulators go to a shared C tile and every thread applies the epilogue (bias,
 * lw_output) to its elements, guarded for ragged M, N.  The staging and epilogue orders follow
 * the contiguous global dimension (m for convolutions: ow; k or n for linear/matmul) so that
 * a warp's accesses coalesce.  Where m is the fast dim (convolutions), each thread keeps one m
 * for the whole tile, so the m half of the im2col gather and of the output coordinate is
 * computed once per tile; the k half: with Cin % 16 == 0, K is ordered tap-major (k = tap*Cin
 * + ci) so each half K step has one tap, checked and located once per half (stage_load_tap_a,
 * B from a tap-major copy of w made by a first parallel loop);
 * otherwise from a tap table in shared memory (k_table).
 * Returns 1 (the fp32 SIMT forms follow) for grouped convolutions, N < 8, K < 8, M < 16,
 * non-f32 tensors, and convT other than the phase form. */
#include "tmpl.h"

#include <string.h>

/* K step and threads per block; the C tile (bm x bn) is chosen per GEMM (tmpl_gpu_mma) */
enum { BK = 32, NT = 128 };

typedef enum { G_CONV, G_CONVT, G_LINEAR, G_MATMUL } GemmKind;

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
} Gemm;

/* ---- the shape test ---- */

static int
all_f32(Lower *L)
{
	const Node *r = L->root;
	for (int i = 0; i < r->nin; i++)
		if (r->in[i] && lw_type(L, r->in[i])->dtype != DT_F32)
			return 0;
	return lw_type(L, r->out[0])->dtype == DT_F32;
}

static int
conv_setup(Lower *L, Gemm *g)
{
	const Node *n = L->root;
	const Type *it = lw_type(L, n->in[0]), *ot = lw_type(L, n->out[0]);
	int tr = n->op == OP_conv_transpose3d;

	if (ir_attr_int(n, "groups") != 1)
		return 0;
	g->Nb = it->dims[0], g->Ci = it->dims[1];
	g->D = it->dims[2], g->H = it->dims[3], g->W = it->dims[4];
	g->Co = ot->dims[1], g->OD = ot->dims[2], g->OH = ot->dims[3], g->OW = ot->dims[4];
	for (int i = 0; i < 3; i++) {
		g->k[i] = ir_attr(n, "kernel")->ints[i];
		g->s[i] = ir_attr(n, "stride")->ints[i];
		g->p[i] = ir_attr(n, "pad")->ints[i];
		g->dl[i] = ir_attr(n, "dilation")->ints[i];
		if (tr && (g->k[i] != g->s[i] || g->p[i] || g->dl[i] != 1 ||
		           ir_attr(n, "output_padding")->ints[i]))
			return 0;
	}
	int64_t kvol = g->k[0] * g->k[1] * g->k[2];
	/* 32-bit tap offsets (the conv's K table): one batch element of x and the taps' reach */
	if (g->Ci * g->D * g->H * g->W >= ((int64_t)1 << 30) ||
	    g->k[0] * g->dl[0] * g->H * g->W >= ((int64_t)1 << 30))
		return 0;
	g->x = n->in[0];
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

static int
gemm_setup(Lower *L, Gemm *g)
{
	const Node *r = L->root;
	memset(g, 0, sizeof *g);
	g->yt = lw_type(L, r->out[0]);
	g->batch = 1;
	if (!all_f32(L))
		return 0;
	switch (r->op) {
	case OP_conv3d:
	case OP_conv_transpose3d:
		if (!conv_setup(L, g))
			return 0;
		break;
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

static KNode *
c32(Lower *L, int64_t c)
{
	return kir_cast(L->p, KT_I32, ix_c(L, c));
}

/* split() in 32-bit arithmetic (i < 2^31: the K index), the parts widened to i64; the GPU
 * divides 32-bit integers by constants with one multiply-high, 64-bit ones with many */
static void
split32(Lower *L, KNode *block, KNode *i, const int64_t *dims, int nd, KNode **out)
{
	int64_t stride = 1;
	KNode *i32 = lw_let(L, block, "k32", kir_cast(L->p, KT_I32, i));
	for (int d = nd - 1; d >= 0; d--) {
		KNode *q = stride == 1 ? i32 : kir_bin(L->p, KB_DIV, i32, c32(L, stride));
		if (dims[d] == 1 && d > 0)
			out[d] = ix_c(L, 0);
		else if (d == 0)
			out[d] = lw_let(L, block, "i", kir_cast(L->p, KT_I64, q));
		else
			out[d] = lw_let(
			    L, block, "i",
			    kir_cast(L->p, KT_I64, kir_bin(L->p, KB_REM, q, c32(L, dims[d]))));
		stride *= dims[d];
	}
}

/* batch offset of operand vt (rank >= 2) at output batch index bidx[0..nb), broadcasting */
static KNode *
batch_off(Lower *L, KNode *const *bidx, const Type *yt, const Type *vt)
{
	KNode *e = ix_c(L, 0);
	for (int d = 0; d < yt->rank - 2; d++) {
		int od = d - (yt->rank - vt->rank);
		if (od < 0 || vt->dims[od] == 1)
			continue;
		e = ix_add(L, e, ix_mul(L, bidx[d], lw_stride(vt, od)));
	}
	return e;
}

/* ---- operands ---- */

/* what A[m, k] needs of m: computed once per thread and tile where m is fixed per thread */
typedef struct {
	KNode *base;   /* conv: x offset of (batch, 0, od*s - p, oh*s - p, ow*s - p) (may lie
	                * outside x: only used with a tap that lands inside); convT: of
	                * (batch, 0, voxel) */
	KNode *pos[3]; /* conv: od*s - p (and oh, ow), i32 */
	KNode *m;      /* linear, matmul */
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
	KNode *iff = kir_if(L->p, bin(L, KB_LT, th, BK));
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
			ok = land(L, ok,
			          kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, pos, c32(L, 0)),
			                  kir_bin(L->p, KB_LT, pos, c32(L, in[i]))));
		}
		idx = ix_add(L, a->base, kir_cast(L->p, KT_I64, kir_load(L->p, L->k, g->kt, k4)));
	} else if (g->kind == G_CONVT) {
		idx = ix_add(L, a->base, ix_mul(L, k, g->D * g->H * g->W));
	} else {
		idx = ix_add(L, aoff, ix_add(L, ix_mul(L, a->m, g->K), k));
	}
	KNode *ld = kir_load(L->p, L->k, xb, idx);
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
		o->mo[0] = m;
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

/* ---- the kernel ---- */

/* The elements e = r*NT + th (r in [0, total/NT)) of a tile walked fast dim first: f = e %
 * fast is th % fast for every r (fast divides NT), so it is a let in hoist; s = e / fast is
 * r*(NT/fast) + th/fast, a let in the returned loop body. */
static KNode *
thread_elems(Lower *L, KNode *hoist, KNode *th, int64_t total, int64_t fast, KNode **fi, KNode **si)
{
	KNode *r;
	SEGC_ASSERT(NT % fast == 0 && total % NT == 0);
	*fi = lw_let(L, hoist, "f", bin(L, KB_REM, th, fast));
	KNode *tq = lw_let(L, hoist, "tq", bin(L, KB_DIV, th, fast));
	KNode *loop = lw_loop(L, hoist, "r", ix_c(L, 0), ix_c(L, total / NT), LOOP_SERIAL, &r);
	*si = lw_let(L, loop->body, "s", ix_add(L, ix_mul(L, r, NT / fast), tq));
	return loop->body;
}

/* the register stage of the K loop (tmpl_gpu_mma) */
enum { MAXA = 128 * BK / NT, MAXB = 64 * BK / NT };
typedef struct {
	Gemm *g;
	KNode *th, *aoff, *boff, *m0, *n0;
	int64_t bm, bn, lda, ldb;
	int as, bs;
	KNode *fa, *qa, *fb, *qb; /* th % fast, th / fast of the A and B walks */
	KNode *mok;               /* A walked m first: m < M, the thread's one m */
	APrep ap;                 /* ... and its gather terms */
	int ra[MAXA], rb[MAXB];   /* the registers */
} Stage;

/* tile coordinates of a thread's j-th A element: (mm, kk) */
static void
a_elem(Lower *L, const Stage *st, int j, KNode **mm, KNode **kk)
{
	if (st->g->a_kfast) {
		*kk = st->fa;
		*mm = ix_add(L, ix_c(L, j * (NT / BK)), st->qa);
	} else {
		*mm = st->fa;
		*kk = ix_add(L, ix_c(L, j * (NT / st->bm)), st->qa);
	}
}

static void
b_elem(Lower *L, const Stage *st, int j, KNode **kk, KNode **nn)
{
	if (st->g->b_kfast) {
		*kk = st->fb;
		*nn = ix_add(L, ix_c(L, j * (NT / BK)), st->qb);
	} else {
		*nn = st->fb;
		*kk = ix_add(L, ix_c(L, j * (NT / st->bn)), st->qb);
	}
}

/* tap-major conv (g->tapk): k = tap*Ci + ci, and Ci % 16 == 0, so each half (16 k) of a K
 * step has one tap.  Per half h: the thread's validity (its m, the tap inside x, k < K) and
 * the x offset of (m, tap, ci0) once; then A element j (kk = cj + qa, cj a constant) is
 * x[base_h + (cj % 16)*DHW]: one predicated load at a constant offset, no per-element table
 * reads, compares or divisions.  (B comes from the tap-major copy of w, g->wt.) */
static void
stage_load_tap_a(Lower *L, const Stage *st, KNode *block, KNode *kbase)
{
	Program *p = L->p;
	const Gemm *g = st->g;
	int64_t dhw = g->D * g->H * g->W;
	int64_t in[3] = {g->D, g->H, g->W}, sp[3] = {g->H * g->W, g->W, 1};
	int64_t tk[3] = {g->k[0], g->k[1], g->k[2]};
	KNode *ok[2], *base[2], *to[3];
	for (int h = 0; h < 2; h++) {
		KNode *kh = lw_let(L, block, "kh", ix_add(L, kbase, ix_c(L, 16 * h)));
		KNode *k32 = lw_let(L, block, "kh32", kir_cast(p, KT_I32, kh));
		KNode *tap = lw_let(L, block, "tap", kir_bin(p, KB_DIV, k32, c32(L, g->Ci)));
		KNode *ci0 = kir_cast(p, KT_I64, kir_bin(p, KB_REM, k32, c32(L, g->Ci)));
		split32(L, block, tap, tk, 3, to);
		KNode *v = kir_bin(p, KB_AND, st->mok, bin(L, KB_LT, kh, g->K));
		KNode *off = ix_add(L, st->ap.base, ix_mul(L, ix_add(L, ci0, st->qa), dhw));
		for (int i = 0; i < 3; i++) {
			KNode *d = lw_simple(L, block, ix_mul(L, to[i], g->dl[i]));
			KNode *pos =
			    lw_let(L, block, "ip",
			           kir_bin(p, KB_ADD, st->ap.pos[i], kir_cast(p, KT_I32, d)));
			v = kir_bin(p, KB_AND, v,
			            kir_bin(p, KB_AND, kir_bin(p, KB_GE, pos, c32(L, 0)),
			                    kir_bin(p, KB_LT, pos, c32(L, in[i]))));
			off = ix_add(L, off, ix_mul(L, d, sp[i]));
		}
		ok[h] = lw_let(L, block, "hok", v);
		base[h] = lw_let(L, block, "hb", off);
	}
	int xb = lw_buf(L, g->x);
	for (int j = 0; j < st->bm * BK / NT; j++) {
		int64_t cj = j * (NT / st->bm); /* kk = cj + qa, qa < NT/bm, which divides 16 */
		int h = (int)(cj / 16);
		kir_append(p, block, kir_let(p, L->k, st->ra[j], kir_f32(p, 0)));
		KNode *iff = kir_if(p, ok[h]);
		kir_append(p, block, iff);
		kir_append(p, iff->body,
		           kir_assign(p, st->ra[j],
		                      kir_load(p, L->k, xb,
		                               ix_add(L, base[h], ix_c(L, (cj % 16) * dhw)))));
	}
}

/* the registers = the A and B elements of the K step at kbase (0 past M, N, K) */
static void
stage_load(Lower *L, const Stage *st, KNode *block, KNode *kbase, KNode *slot)
{
	Program *p = L->p;
	const Gemm *g = st->g;
	KNode *mm, *kk, *nn;
	if (g->tapk)
		stage_load_tap_a(L, st, block, kbase);
	for (int j = 0; !g->tapk && j < st->bm * BK / NT; j++) {
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
	for (int j = 0; j < st->bn * BK / NT; j++) {
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

/* the shared tiles = the registers (As column-major [kk][mm], Bs [nn][kk]) */
static void
stage_store(Lower *L, const Stage *st, KNode *block)
{
	Program *p = L->p;
	KNode *mm, *kk, *nn;
	for (int j = 0; j < st->bm * BK / NT; j++) {
		a_elem(L, st, j, &mm, &kk);
		kir_append(p, block,
		           kir_store(p, st->as, ix_add(L, mm, ix_mul(L, kk, st->lda)),
		                     kir_ref(p, L->k, st->ra[j])));
	}
	for (int j = 0; j < st->bn * BK / NT; j++) {
		b_elem(L, st, j, &kk, &nn);
		kir_append(p, block,
		           kir_store(p, st->bs, ix_add(L, kk, ix_mul(L, nn, st->ldb)),
		                     kir_ref(p, L->k, st->rb[j])));
	}
}

int
tmpl_gpu_mma(Lower *L)
{
	Gemm g;
	Program *p = L->p;
	Kernel *k = L->k;
	int bf = p->precision == KP_BF16;
	int kf = bf ? 16 : 8, tdt = bf ? DT_BF16 : DT_F32;

	if (p->precision == KP_FP32 || !gemm_setup(L, &g))
		return 1;
	/* the C tile: 64 x 64 (2 x 2 warps), or 128 x 32 (4 x 1 warps) when N <= 32 */
	int64_t bm = g.N <= 32 ? 128 : 64, bn = g.N <= 32 ? 32 : 64, wcols = bm / 32;
	int64_t lda = bm + 8, ldb = BK + 8, ldc = bm + 8;
	int64_t nmb = (g.M + bm - 1) / bm, nnb = (g.N + bn - 1) / bn;
	int as = kir_shared(p, k, tdt, BK * lda, (int)lda, "As");
	int bs = kir_shared(p, k, tdt, bn * ldb, (int)ldb, "Bs");
	int cs = kir_shared(p, k, DT_F32, bn * ldc, (int)ldc, "Cs");

	if (g.tapk) { /* wt[n, tap, ci] = w[n, ci, tap]: one flat parallel loop before the GEMM */
		int64_t kvol = g.k[0] * g.k[1] * g.k[2], dims[3] = {g.N, g.Ci, kvol};
		KNode *ix[3];
		g.wt = lw_scratch(L, DT_F32, g.N * g.K, "wt");
		KNode *pb = lw_nest(L, dims, 3, 0, ix);
		KNode *nk = ix_mul(L, ix[0], g.K);
		KNode *ti = ix_add(L, nk, ix_add(L, ix_mul(L, ix[2], g.Ci), ix[1]));
		KNode *wi = ix_add(L, nk, ix_add(L, ix_mul(L, ix[1], kvol), ix[2]));
		kir_append(p, pb, kir_store(p, g.wt, ti, kir_load(p, k, lw_buf(L, g.w), wi)));
	}
	KNode *blk, *th;
	KNode *bl =
	    lw_loop(L, k->body, "blk", ix_c(L, 0), ix_c(L, nmb * nnb * g.batch), LOOP_BLOCK, &blk);
	KNode *tl = lw_loop(L, bl->body, "th", ix_c(L, 0), ix_c(L, NT), LOOP_THREAD, &th);
	KNode *body = tl->body;
	KNode *mb = lw_let(L, body, "mb", bin(L, KB_REM, blk, nmb));
	KNode *rest = lw_let(L, body, "rest", bin(L, KB_DIV, blk, nmb));
	KNode *nb = lw_let(L, body, "nb", bin(L, KB_REM, rest, nnb));
	KNode *m0 = lw_let(L, body, "m0", ix_mul(L, mb, bm));
	KNode *n0 = lw_let(L, body, "n0", ix_mul(L, nb, bn));
	KNode *warp = lw_let(L, body, "warp", bin(L, KB_DIV, th, 32));
	KNode *wm = lw_let(L, body, "wm", ix_mul(L, bin(L, KB_REM, warp, wcols), 32));
	KNode *wn = lw_let(L, body, "wn", ix_mul(L, bin(L, KB_DIV, warp, wcols), 32));
	KNode *bidx[IR_MAXRANK], *aoff = ix_c(L, 0), *boff = ix_c(L, 0);
	if (g.kind == G_MATMUL) {
		KNode *bi = lw_let(L, body, "bi", bin(L, KB_DIV, rest, nnb));
		split(L, body, bi, g.yt->dims, g.yt->rank - 2, bidx);
		aoff = lw_simple(L, body, batch_off(L, bidx, g.yt, lw_type(L, g.x)));
		boff = lw_simple(L, body, batch_off(L, bidx, g.yt, lw_type(L, g.w)));
	}
	for (int i = 0; i < 4; i++)
		kir_append(p, body, kir_mma_zero(p, i));

	/* the K loop, software-pipelined through registers: every thread loads its A and B
	 * elements of the next K step into registers (all loads issued back to back, then in
	 * flight during the MMAs), and stores them to the shared tiles at the top of the next
	 * step; a conv's tap table is written one step ahead into the other of two slots */
	Stage st = {&g, th, aoff, boff, m0,   n0,   bm,   bn,  lda, ldb,
	            as, bs, NULL, NULL, NULL, NULL, NULL, {0}, {0}, {0}};
	st.fa = lw_let(L, body, "fa", bin(L, KB_REM, th, g.a_kfast ? BK : bm));
	st.qa = lw_let(L, body, "qa", bin(L, KB_DIV, th, g.a_kfast ? BK : bm));
	st.fb = lw_let(L, body, "fb", bin(L, KB_REM, th, g.b_kfast ? BK : bn));
	st.qb = lw_let(L, body, "qb", bin(L, KB_DIV, th, g.b_kfast ? BK : bn));
	if (!g.a_kfast) { /* m = m0 + th % bm for the whole tile: its gather terms too */
		KNode *m = lw_let(L, body, "m", ix_add(L, m0, st.fa));
		st.mok = lw_let(L, body, "mok", bin(L, KB_LT, m, g.M));
		a_prep(L, &g, body, m, &st.ap);
	}
	for (int j = 0; j < bm * BK / NT; j++)
		st.ra[j] = kir_var(p, k, KT_F32, "ra");
	for (int j = 0; j < bn * BK / NT; j++)
		st.rb[j] = kir_var(p, k, KT_F32, "rb");
	g.kt = -1;
	if (g.kind == G_CONV && !g.tapk) {
		g.kt = kir_shared(p, k, DT_I32, 2 * BK * 4, 0, "Kt");
		k_table(L, &g, body, th, ix_c(L, 0), ix_c(L, 0));
		kir_append(p, body, kir_barrier(p));
	}
	stage_load(L, &st, body, ix_c(L, 0), ix_c(L, 0));
	int kv = kir_var(p, k, KT_I64, "k0");
	KNode *kl = kir_loop(p, kv, ix_c(L, 0), ix_c(L, g.K), BK, LOOP_SERIAL);
	kir_append(p, body, kl);
	KNode *k0 = kir_ref(p, k, kv), *kb = kl->body;
	KNode *next = lw_let(L, kb, "kn", ix_add(L, k0, ix_c(L, BK))), *slot = ix_c(L, 0);
	if (g.kind == G_CONV && !g.tapk) {
		KNode *par = bin(L, KB_REM, bin(L, KB_DIV, k0, BK), 2);
		slot =
		    lw_let(L, kb, "slot", ix_mul(L, kir_bin(p, KB_SUB, ix_c(L, 1), par), BK * 4));
		k_table(L, &g, kb, th, next, slot);
	}
	stage_store(L, &st, kb);
	kir_append(p, kb, kir_barrier(p));
	stage_load(L, &st, kb, next, slot);
	for (int ks = 0; ks < BK; ks += kf)
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++) {
				KNode *ao =
				    ix_add(L, ix_add(L, wm, ix_c(L, 16 * i)), ix_c(L, ks * lda));
				KNode *bo = ix_add(L, ix_c(L, ks),
				                   ix_mul(L, ix_add(L, wn, ix_c(L, 16 * j)), ldb));
				kir_append(p, kb, kir_mma(p, i * 2 + j, as, ao, bs, bo));
			}
	kir_append(p, kb, kir_barrier(p));

	KNode *fi, *si, *mm = NULL, *nn, *m = NULL, *n, *iff, *sb;
	/* accumulators -> the shared C tile -> epilogue per element */
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			KNode *co = ix_add(L, ix_add(L, wm, ix_c(L, 16 * i)),
			                   ix_mul(L, ix_add(L, wn, ix_c(L, 16 * j)), ldc));
			kir_append(p, body, kir_mma_store(p, i * 2 + j, cs, co));
		}
	kir_append(p, body, kir_barrier(p));
	OPrep op;
	if (!g.c_nfast) { /* m fixed per thread: its output coordinate once */
		mm = lw_let(L, body, "f", bin(L, KB_REM, th, bm));
		m = lw_let(L, body, "m", ix_add(L, m0, mm));
		o_prep(L, &g, body, m, &op);
	}
	sb = thread_elems(L, body, th, bm * bn, g.c_nfast ? bn : bm, &fi, &si);
	if (g.c_nfast) {
		mm = si, nn = fi;
		m = lw_let(L, sb, "m", ix_add(L, m0, mm));
	} else {
		nn = si;
	}
	n = lw_let(L, sb, "n", ix_add(L, n0, nn));
	iff = kir_if(p, kir_bin(p, KB_AND, bin(L, KB_LT, m, g.M), bin(L, KB_LT, n, g.N)));
	kir_append(p, sb, iff);
	if (g.c_nfast)
		o_prep(L, &g, iff->body, m, &op);
	KNode *acc = kir_load(p, k, cs, ix_add(L, mm, ix_mul(L, nn, ldc)));
	/* a block's next tile (grid-stride) writes Cs only after its K loop's barriers, so
	 * after every thread has finished this epilogue */
	return emit_out(L, &g, iff->body, &op, n, bidx, acc);
}
