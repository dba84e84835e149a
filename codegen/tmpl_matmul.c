/* codegen/tmpl_matmul.c -- linear (y = x W^T + b over the last axis) and batched matmul.
 *
 * CPU forms (docs/performance.md, "Linear on the CPU"): a register-blocked GEMM.  One
 * parallel iteration per block of R rows x OB output features keeps R x OB/16 accumulator
 * vectors over the whole k loop (the lane loop is widened by the CPU emitter; x[r, k] is a
 * broadcast, the lanes' W one vector load per k):
 *   for (row block, o block) parallel { for o in block vector { acc[j] = b[o];
 *     for k { w = W^T[k, o]; acc[j] += x[r0 + j, k] * w } ; store acc[j] } }
 * then the epilogue over the block's finished rows (raw sums in the group's output, or in
 * scratch if that may overlap an operand).  Rows past the last full block: one more parallel
 * loop with fewer accumulators.  linear (lin_gemm, >= LIN_MINROWS rows) first packs W into
 * scratch as [O/OB][I][OB]; matmul (mm_gemm) reads B's rows [K, N] as they are, when a lane
 * width divides N.
 * linear otherwise (few rows, 1..3 outputs of long rows, CUDA's generic form): one parallel
 * iteration per output element; a dot product of two contiguous rows, a vector reduction:
 *   for p in [0, rows*O) parallel { acc = b[o]; for k in [0, I) vector { acc += x[r,k] * W[o,k] } }
 * matmul otherwise (N without a lane width, CUDA): one parallel iteration per output row
 * (batch, m); the row is accumulated in the output buffer with the k loop outside a
 * contiguous vector loop over the columns:
 *   y[b,m,:] = 0; for k { av = a[b,m,k]; for n vector { y[b,m,n] += av * b[b,k,n] } }
 * then the epilogue runs over the row.  If the output may overlap an operand (in-place
 * planning), a register accumulator with the k loop innermost is used instead.  On CUDA
 * tmpl_gpu_conv.c / tmpl_gpu_mma.c have their own forms. */
#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

static int
lin(Lower *L)
{
	const Node *r = L->root;
	const Type *yt = lw_type(L, r->out[0]), *xt = lw_type(L, r->in[0]);
	int64_t I = xt->dims[xt->rank - 1];
	KNode *idx[IR_MAXRANK], *kk;
	Coord c;

	KNode *body = lw_nest(L, yt->dims, yt->rank, 0, idx);
	KNode *o = idx[yt->rank - 1];
	KNode *xr = ix_c(L, 0);
	for (int d = 0; d < yt->rank - 1; d++)
		xr = ix_add(L, xr, ix_mul(L, idx[d], lw_stride(xt, d)));
	xr = lw_simple(L, body, xr);
	KNode *wr = lw_simple(L, body, ix_mul(L, o, I));
	int acc = kir_var(L->p, L->k, KT_F32, "acc");
	KNode *init = r->nin > 2 && r->in[2] ? kir_load(L->p, L->k, lw_buf(L, r->in[2]), o)
	                                     : kir_f32(L->p, 0);
	kir_append(L->p, body, kir_let(L->p, L->k, acc, init));
	KNode *kl = lw_loop(L, body, "k", ix_c(L, 0), ix_c(L, I), LOOP_VECTOR, &kk);
	KNode *x = kir_load(L->p, L->k, lw_buf(L, r->in[0]), ix_add(L, xr, kk));
	KNode *w = kir_load(L->p, L->k, lw_buf(L, r->in[1]), ix_add(L, wr, kk));
	kir_append(L->p, kl->body,
	           kir_assign(L->p, acc,
	                      kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc),
	                              kir_bin(L->p, KB_MUL, x, w))));
	coord_full(&c, yt, idx);
	return lw_output(L, body, &c, kir_ref(L->p, L->k, acc));
}

/* the value whose buffer accumulates the rows: the group's last output, if materialised */
static ValueId
acc_value(Lower *L)
{
	const Node *last = &L->m->nodes[L->g->nodes[L->g->nnodes - 1]];
	if (lw_is_out(L, last->out[0]))
		return last->out[0];
	if (lw_is_out(L, L->root->out[0]))
		return L->root->out[0];
	return 0;
}

/* Registers the buffers of the epilogue's operands, so that lw_out_aliases_input sees them */
static void
epilogue_bufs(Lower *L)
{
	for (uint32_t i = 1; i < L->g->nnodes; i++) {
		const Node *n = &L->m->nodes[L->g->nodes[i]];
		for (int j = 0; j < n->nin; j++) {
			const Value *v = &L->m->values[n->in[j]];
			if (v->storage != ST_NONE && v->storage != ST_CONST &&
			    L->m->nodes[v->def].op != OP_constant)
				lw_buf(L, n->in[j]);
		}
	}
}

static int
mm(Lower *L)
{
	const Node *r = L->root;
	const Type *yt = lw_type(L, r->out[0]);
	const Type *at = lw_type(L, r->in[0]), *bt = lw_type(L, r->in[1]);
	int64_t M = yt->dims[yt->rank - 2], N = yt->dims[yt->rank - 1];
	int64_t K = at->dims[at->rank - 1];
	KNode *idx[IR_MAXRANK], *kk, *nn;
	int ab = lw_buf(L, r->in[0]), bb = lw_buf(L, r->in[1]);
	ValueId accv = 0;
	Coord c;

	(void)M;
	epilogue_bufs(L);
	if (!lw_out_aliases_input(L))
		accv = acc_value(L);

	/* rows: every output dim but the last */
	KNode *body = lw_nest(L, yt->dims, yt->rank - 1, 0, idx);
	KNode *m = idx[yt->rank - 2];
	KNode *arow = ix_add(L, lw_batch_off(L, idx, yt, at), ix_mul(L, m, K));
	arow = lw_simple(L, body, arow);
	KNode *bbase = lw_simple(L, body, lw_batch_off(L, idx, yt, bt));
	if (!accv) {
		/* register accumulator per output element, k innermost */
		KNode *nl = lw_loop(L, body, "n", ix_c(L, 0), ix_c(L, N), LOOP_SERIAL, &nn);
		int acc = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, nl->body, kir_let(L->p, L->k, acc, kir_f32(L->p, 0)));
		KNode *kl = lw_loop(L, nl->body, "k", ix_c(L, 0), ix_c(L, K), LOOP_VECTOR, &kk);
		KNode *a = kir_load(L->p, L->k, ab, ix_add(L, arow, kk));
		KNode *bi = ix_add(L, bbase, ix_add(L, ix_mul(L, kk, N), nn));
		KNode *b = kir_load(L->p, L->k, bb, bi);
		KNode *sum = kir_bin(L->p, KB_MUL, a, b);
		sum = kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc), sum);
		kir_append(L->p, kl->body, kir_assign(L->p, acc, sum));
		idx[yt->rank - 1] = nn;
		coord_full(&c, yt, idx);
		return lw_output(L, nl->body, &c, kir_ref(L->p, L->k, acc));
	}
	int yb = lw_outbuf(L, accv);
	KNode *yrow = ix_c(L, 0);
	for (int d = 0; d < yt->rank - 1; d++)
		yrow = ix_add(L, yrow, ix_mul(L, idx[d], lw_stride(yt, d)));
	yrow = lw_simple(L, body, yrow);
	KNode *il = lw_loop(L, body, "n", ix_c(L, 0), ix_c(L, N), LOOP_VECTOR, &nn);
	kir_append(L->p, il->body, kir_store(L->p, yb, ix_add(L, yrow, nn), kir_f32(L->p, 0)));
	KNode *kl = lw_loop(L, body, "k", ix_c(L, 0), ix_c(L, K), LOOP_SERIAL, &kk);
	KNode *av = lw_let(L, kl->body, "av", kir_load(L->p, L->k, ab, ix_add(L, arow, kk)));
	KNode *brow = lw_let(L, kl->body, "brow", ix_add(L, bbase, ix_mul(L, kk, N)));
	il = lw_loop(L, kl->body, "n", ix_c(L, 0), ix_c(L, N), LOOP_VECTOR, &nn);
	KNode *yi = ix_add(L, yrow, nn);
	KNode *bv = kir_load(L->p, L->k, bb, ix_add(L, brow, nn));
	KNode *v = kir_bin(L->p, KB_MUL, av, bv);
	v = kir_bin(L->p, KB_ADD, kir_load(L->p, L->k, yb, yi), v);
	kir_append(L->p, il->body, kir_store(L->p, yb, yi, v));
	il = lw_loop(L, body, "n", ix_c(L, 0), ix_c(L, N), LOOP_VECTOR, &nn);
	idx[yt->rank - 1] = nn;
	coord_full(&c, yt, idx);
	KNode *y = lw_let(L, il->body, "v", kir_load(L->p, L->k, yb, ix_add(L, yrow, nn)));
	return lw_output(L, il->body, &c, y);
}

/* ---- linear as a register-blocked GEMM (the CPU form for >= LIN_MINROWS rows) ---- */

enum {
	LIN_MINROWS = 16, /* fewer rows: the dot-product form (W read once, not packed) */
	LIN_ACC = 16,     /* accumulator vectors of 16 lanes per block */
};

typedef struct {
	const Type *yt;
	int64_t rows, I, O; /* rows: the product of y's leading dims; I: the reduction length */
	int64_t OB, nob, R; /* lanes (output features per block), o blocks, rows per block */
	int64_t ws;         /* step of the W operand per k: OB (packed W), N (matmul's B) */
	int xb, wb, bb;     /* x (rows of I), W (wb[wr + k*ws + lane]), bias (-1: none) */
	int accb;           /* raw sums [rows, O] for the epilogue; -1: lw_output in the block */
} Gemm;

/* Lanes per block: 4..16 for O <= 16, else the widest of 64, 32, 16 that pads O no more
 * than 16 lanes do (35 -> 16, 96 -> 32, 192 -> 64) */
static int64_t
lin_lanes(int64_t O)
{
	int64_t v = 4, p16 = (O + 15) / 16 * 16;
	if (O <= 16) {
		while (v < O)
			v *= 2;
		return v;
	}
	for (v = 64; v > 16; v /= 2)
		if ((O + v - 1) / v * v <= p16)
			return v;
	return 16;
}

/* 1 when a group output overlaps buffer b of the kernel */
static int
lin_overlaps(Lower *L, int b)
{
	const KBuf *kb = &L->k->bufs[b];
	int64_t blo = kb->offset, bhi = kb->offset + kb->numel * dtype_size(kb->dtype);
	for (uint32_t i = 0; i < L->g->nouts; i++) {
		const Value *o = &L->m->values[L->g->outs[i]];
		int64_t olo = o->offset, ohi = o->offset + value_bytes(o);
		if (kb->slot == o->slot && blo < ohi && olo < bhi)
			return 1;
	}
	return 0;
}

/* First parallel loop: wpack[(ob*I + k)*OB + j] = W[min(ob*OB + j, O - 1), k] (lanes past O
 * repeat the last row: they are computed and never stored) */
static void
lin_pack(Lower *L, Gemm *g, int wb)
{
	int64_t dims[2] = {g->nob, g->I};
	KNode *idx[2], *j;
	g->wb = lw_scratch(L, DT_F32, g->nob * g->I * g->OB, "wpack");
	KNode *body = lw_nest(L, dims, 2, 0, idx);
	KNode *jl = lw_loop(L, body, "j", ix_c(L, 0), ix_c(L, g->OB), LOOP_VECTOR, &j);
	KNode *o = ix_add(L, ix_mul(L, idx[0], g->OB), j);
	if (g->nob * g->OB != g->O)
		o = kir_bin(L->p, KB_MIN, o, ix_c(L, g->O - 1));
	KNode *src = ix_add(L, ix_mul(L, o, g->I), idx[1]);
	KNode *dst = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, idx[0], g->I), idx[1]), g->OB), j);
	kir_append(L->p, jl->body, kir_store(L->p, g->wb, dst, kir_load(L->p, L->k, wb, src)));
}

/* One block: rows [r0, r0 + nr) of y (flat) x output features [ob*OB, ob*OB + OB), appended
 * to body (a parallel iteration): nr accumulators in the lanes' registers over the whole k
 * loop; row j's x at xb[xr + j*I + k], the lanes' W at wb[wr + k*ws + lane] */
static int
gemm_block(Lower *L, Gemm *g, KNode *body, KNode *r0, KNode *ob, int64_t nr, KNode *xr, KNode *wr)
{
	KNode *lane, *kk, *row, *oo, *idx[IR_MAXRANK];
	int acc[LIN_ACC];
	int part = g->nob * g->OB != g->O;
	Coord c;

	KNode *o0 = lw_let(L, body, "o0", ix_mul(L, ob, g->OB));
	KNode *ll = lw_loop(L, body, "lane", ix_c(L, 0), ix_c(L, g->OB), LOOP_VECTOR, &lane);
	KNode *o = lw_let(L, ll->body, "o", ix_add(L, o0, lane));
	KNode *init = kir_f32(L->p, 0);
	if (g->bb >= 0) {
		KNode *oc = part ? kir_bin(L->p, KB_MIN, o, ix_c(L, g->O - 1)) : o;
		init = lw_let(L, ll->body, "b", kir_load(L->p, L->k, g->bb, oc));
	}
	for (int64_t j = 0; j < nr; j++) {
		acc[j] = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, ll->body, kir_let(L->p, L->k, acc[j], init));
	}
	KNode *kl = lw_loop(L, ll->body, "k", ix_c(L, 0), ix_c(L, g->I), LOOP_SERIAL, &kk);
	KNode *wi = ix_add(L, ix_add(L, wr, ix_mul(L, kk, g->ws)), lane);
	KNode *w = lw_let(L, kl->body, "w", kir_load(L->p, L->k, g->wb, wi));
	for (int64_t j = 0; j < nr; j++) {
		KNode *xi = ix_add(L, ix_add(L, xr, ix_c(L, j * g->I)), kk);
		KNode *x = kir_load(L->p, L->k, g->xb, xi);
		KNode *sum =
		    kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc[j]), kir_bin(L->p, KB_MUL, x, w));
		kir_append(L->p, kl->body, kir_assign(L->p, acc[j], sum));
	}
	KNode *st = ll->body;
	if (part) { /* lanes past O: masked stores */
		KNode *f = kir_if(L->p, kir_bin(L->p, KB_LT, o, ix_c(L, g->O)));
		kir_append(L->p, ll->body, f);
		st = f->body;
	}
	for (int64_t j = 0; j < nr; j++) {
		KNode *rj = ix_add(L, r0, ix_c(L, j));
		if (g->accb >= 0) {
			KNode *yi = ix_add(L, ix_mul(L, rj, g->O), o);
			kir_append(L->p, st,
			           kir_store(L->p, g->accb, yi, kir_ref(L->p, L->k, acc[j])));
			continue;
		}
		/* no epilogue: y itself, its leading dims flattened */
		memset(&c, 0, sizeof c);
		c.t = g->yt, c.n = 2;
		c.idx[0] = rj, c.first[0] = 0, c.last[0] = (int8_t)(g->yt->rank - 2);
		c.idx[1] = o, c.first[1] = c.last[1] = (int8_t)(g->yt->rank - 1);
		if (lw_output(L, st, &c, kir_ref(L->p, L->k, acc[j])) < 0)
			return -1;
	}
	if (g->accb < 0)
		return 0;
	/* the epilogue over the finished rows (L1-resident), at y's full coordinates */
	KNode *rl = lw_loop(L, body, "r", r0, ix_add(L, r0, ix_c(L, nr)), LOOP_SERIAL, &row);
	lw_unflatten(L, rl->body, row, g->yt->dims, g->yt->rank - 1, idx);
	KNode *yr = lw_let(L, rl->body, "yr", ix_mul(L, row, g->O));
	KNode *hi = ix_add(L, o0, ix_c(L, g->OB));
	if (part)
		hi = kir_bin(L->p, KB_MIN, hi, ix_c(L, g->O));
	KNode *ol = lw_loop(L, rl->body, "o", o0, hi, LOOP_VECTOR, &oo);
	idx[g->yt->rank - 1] = oo;
	coord_full(&c, g->yt, idx);
	KNode *v = lw_let(L, ol->body, "v", kir_load(L->p, L->k, g->accb, ix_add(L, yr, oo)));
	return lw_output(L, ol->body, &c, v);
}

/* Where the blocks put their raw sums (Gemm.accb): nowhere without an epilogue (lw_output
 * stores y); else in the group's output, whose epilogue then reads and writes the same
 * element, or in scratch if that output may overlap an epilogue operand (in-place planning;
 * SEGC_LINEAR_SCRATCH=1 forces it, for the tests) */
static void
gemm_accbuf(Lower *L, Gemm *g)
{
	ValueId accv;

	g->accb = -1;
	if (L->g->nnodes == 1)
		return;
	accv = lw_out_aliases_input(L) || cg_knob("SEGC_LINEAR_SCRATCH") ? 0 : acc_value(L);
	if (accv && type_numel(lw_type(L, accv)) == g->rows * g->O)
		g->accb = lw_outbuf(L, accv);
	else
		g->accb = lw_scratch(L, DT_F32, g->rows * g->O, "yraw");
}

/* accumulator rows per block: LIN_ACC vectors of 16 lanes */
static int64_t
gemm_rows(int64_t OB)
{
	return OB > 16 ? LIN_ACC / (OB / 16) : LIN_ACC;
}

static int
lin_gemm(Lower *L)
{
	const Node *r = L->root;
	const Type *xt = lw_type(L, r->in[0]);
	KNode *idx[2];
	Gemm g;

	memset(&g, 0, sizeof g);
	g.yt = lw_type(L, r->out[0]);
	g.I = xt->dims[xt->rank - 1];
	g.O = g.yt->dims[g.yt->rank - 1];
	g.rows = type_numel(g.yt) / g.O;
	epilogue_bufs(L);
	g.xb = lw_buf(L, r->in[0]);
	int wb = lw_buf(L, r->in[1]);
	g.bb = r->nin > 2 && r->in[2] ? lw_buf(L, r->in[2]) : -1;
	if (lin_overlaps(L, g.xb) || lin_overlaps(L, wb) || (g.bb >= 0 && lin_overlaps(L, g.bb)))
		return lin(L); /* y over its own operands: only per-element accumulation is safe */
	gemm_accbuf(L, &g);
	g.OB = lin_lanes(g.O);
	g.nob = (g.O + g.OB - 1) / g.OB;
	g.R = gemm_rows(g.OB);
	g.ws = g.OB;
	lin_pack(L, &g, wb);

	int64_t nfull = g.rows / g.R, tail = g.rows % g.R;
	if (nfull) {
		int64_t dims[2] = {nfull, g.nob};
		KNode *body = lw_nest(L, dims, 2, 0, idx);
		KNode *r0 = lw_let(L, body, "r0", ix_mul(L, idx[0], g.R));
		KNode *xr = lw_let(L, body, "xr", ix_mul(L, r0, g.I));
		KNode *wr = lw_let(L, body, "wr", ix_mul(L, idx[1], g.I * g.OB));
		if (gemm_block(L, &g, body, r0, idx[1], g.R, xr, wr) < 0)
			return -1;
	}
	if (tail) {
		int64_t dims[1] = {g.nob};
		KNode *body = lw_nest(L, dims, 1, 0, idx);
		KNode *wr = lw_let(L, body, "wr", ix_mul(L, idx[0], g.I * g.OB));
		if (gemm_block(L, &g, body, ix_c(L, nfull * g.R), idx[0], tail,
		               ix_c(L, nfull * g.R * g.I), wr) < 0)
			return -1;
	}
	return 0;
}

/* matmul as the same GEMM: B's rows [K, N] are already contiguous over n, so the lanes read B
 * directly (no packing) when OB divides N: lanes of 64/32/16 (8 or 4 for N a multiple of 8 or
 * 4 only); 0: no lane width divides N (the row form then) */
static int64_t
mm_lanes(int64_t N)
{
	for (int64_t v = 64; v >= 4; v /= 2)
		if (N % v == 0 && (v >= 16 || N % 16))
			return v;
	return 0;
}

/* blocks of R rows of one batch: parallel over (batch, m block, n block); the m rows past
 * the last full block in a second loop with fewer accumulators */
static int
mm_gemm(Lower *L)
{
	const Node *r = L->root;
	const Type *at = lw_type(L, r->in[0]), *bt = lw_type(L, r->in[1]);
	KNode *idx[3], *bidx[IR_MAXRANK];
	Gemm g;

	memset(&g, 0, sizeof g);
	g.yt = lw_type(L, r->out[0]);
	int nb = g.yt->rank - 2;
	int64_t M = g.yt->dims[nb], nbatch = 1;
	for (int d = 0; d < nb; d++)
		nbatch *= g.yt->dims[d];
	g.O = g.yt->dims[nb + 1];
	g.I = at->dims[at->rank - 1];
	g.rows = nbatch * M;
	epilogue_bufs(L);
	g.xb = lw_buf(L, r->in[0]);
	g.wb = lw_buf(L, r->in[1]);
	g.bb = -1;
	g.OB = mm_lanes(g.O);
	if (!g.OB || lin_overlaps(L, g.xb) || lin_overlaps(L, g.wb))
		return mm(L);
	gemm_accbuf(L, &g);
	g.nob = g.O / g.OB;
	g.R = gemm_rows(g.OB);
	g.ws = g.O;

	int64_t nfull = M / g.R, tail = M % g.R;
	for (int pass = 0; pass < 2; pass++) {
		int64_t nr = pass ? tail : g.R;
		if (!(pass ? tail : nfull))
			continue;
		int64_t dims[3] = {nbatch, pass ? 1 : nfull, g.nob};
		KNode *body = lw_nest(L, dims, 3, 0, idx);
		lw_unflatten(L, body, idx[0], g.yt->dims, nb, bidx);
		KNode *m0 =
		    pass ? ix_c(L, nfull * g.R) : lw_let(L, body, "m0", ix_mul(L, idx[1], g.R));
		KNode *r0 = lw_let(L, body, "r0", ix_add(L, ix_mul(L, idx[0], M), m0));
		KNode *xr = ix_add(L, lw_batch_off(L, bidx, g.yt, at), ix_mul(L, m0, g.I));
		KNode *wr = ix_add(L, lw_batch_off(L, bidx, g.yt, bt), ix_mul(L, idx[2], g.OB));
		xr = lw_let(L, body, "ar", xr);
		wr = lw_let(L, body, "br", wr);
		if (gemm_block(L, &g, body, r0, idx[2], nr, xr, wr) < 0)
			return -1;
	}
	return 0;
}

/* root: linear or matmul (both operands of rank >= 2 for matmul) */
int
tmpl_matmul(Lower *L)
{
	if (L->root->op == OP_linear) {
		const Type *yt = lw_type(L, L->root->out[0]);
		int64_t rows = type_numel(yt) / yt->dims[yt->rank - 1];
		int64_t O = yt->dims[yt->rank - 1],
		        I = lw_type(L, L->root->in[0])->dims[yt->rank - 1];
		/* 1..3 outputs of long rows: vector dot products beat 4-lane blocks (O = 1,
		 * I = 128: 3x) */
		int dot = rows < LIN_MINROWS || (O <= 3 && I >= 48);
		if (L->p->gpu || dot || cg_knob("SEGC_LINEAR_DOT"))
			return lin(L);
		return lin_gemm(L);
	}
	if (lw_type(L, L->root->in[0])->rank < 2 || lw_type(L, L->root->in[1])->rank < 2)
		return lw_fail(L, "matmul of a rank-1 operand is not supported");
	if (L->p->gpu || cg_knob("SEGC_MATMUL_ROW"))
		return mm(L);
	return mm_gemm(L);
}
