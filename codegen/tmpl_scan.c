/* codegen/tmpl_scan.c -- templates of the SegMamba-family ops: selective_scan, causal_conv1d,
 * token_prune and token_unpool (ir/ops_mamba.def; rms_norm, dyt, token_score are rewritten by
 * passes/canon_mamba.c).
 *
 * Scan orders are index maps, never copies: a walk is a nest of serial loops over the order's
 * axes (ScanOrder, ir/mamba.h), slowest first, each counting down when the order is flipped; the
 * token visited is sum(digit_j * stride_j), and every load and store goes through it.
 *
 *   selective_scan u[B,L,di] ...:
 *     for p in [0, B*di) parallel {               b = p / di, c = p % di
 *       a_n = -exp(A_log[c,n]); h_n = 0            (N lets each, N = d_state <= 64, unrolled)
 *       for walk axes (serial) { t = token;  dt = softplus(delta[b,t,c] + bias[c])
 *         h_n = exp(dt a_n) h_n + dt B[b,t,n] u[b,t,c];  y = sum_n C[b,t,n] h_n + D[c] u[b,t,c]
 *         out1[b,t,c] = y; out0[b,t,c] = y * silu(z[b,t,c]) } }
 *   causal_conv1d: the same walk per (b, c) with the last k-1 inputs in lets (a sliding window).
 *   token_prune, per batch element (parallel over B): the k-th largest score T by bisection on
 *     the value (count(s >= mid) >= k), ties below T resolved by raster index (a cut index), then
 *     the kept rows in walk order and the dropped tokens' mean (or score-weighted mean) last.
 *   token_unpool, per batch element: the summary row broadcast to every token, then every kept
 *     row stored at its token; both through lw_output so an epilogue (the residual) fuses. */
#include "tmpl.h"
#include "mamba.h"

#include <stdlib.h>
#include <string.h>

static KNode *
f32c(Lower *L, double v)
{
	return kir_f32(L->p, v);
}

static KNode *
bin(Lower *L, KBinOp op, KNode *a, KNode *b)
{
	return kir_bin(L->p, op, a, b);
}

static KNode *
ld(Lower *L, int buf, KNode *i)
{
	return kir_load(L->p, L->k, buf, i);
}

static void
assign(Lower *L, KNode *block, KNode *var, KNode *val)
{
	kir_append(L->p, block, kir_assign(L->p, var->var, val));
}

/* a fresh variable of type t initialised to init; returns its ref */
static KNode *
var(Lower *L, KNode *block, const char *name, KNode *init)
{
	return lw_let(L, block, name, init);
}

/* x / (1 + exp(-x)) */
KNode *
scan_silu(Lower *L, KNode *block, KNode *x)
{
	x = lw_simple(L, block, x);
	return bin(L, KB_DIV, x,
	           bin(L, KB_ADD, f32c(L, 1), kir_un(L->p, KU_EXP, kir_un(L->p, KU_NEG, x))));
}

/* softplus with threshold 20: x > 20 ? x : log1p(exp(x)), log1p(e) = log(u) * e / (u - 1) with
 * u = 1 + e (exact where 1 + e rounds, and e itself when u == 1) */
KNode *
scan_softplus20(Lower *L, KNode *block, KNode *x)
{
	x = lw_simple(L, block, x);
	KNode *e = lw_let(L, block, "e", kir_un(L->p, KU_EXP, x));
	KNode *u = lw_let(L, block, "u1", bin(L, KB_ADD, f32c(L, 1), e));
	KNode *lg = bin(L, KB_DIV, bin(L, KB_MUL, kir_un(L->p, KU_LOG, u), e),
	                bin(L, KB_SUB, u, f32c(L, 1)));
	KNode *l1p = kir_select(L->p, bin(L, KB_EQ, u, f32c(L, 1)), e, lg);
	return kir_select(L->p, bin(L, KB_GT, x, f32c(L, 20)), x, l1p);
}

/* Serial loops walking the order o inside block; returns the innermost block and sets *tok to
 * the token index (within one sequence) visited. */
static KNode *
walk(Lower *L, KNode *block, const ScanOrder *o, KNode **tok)
{
	KNode *t = ix_c(L, 0), *i;
	for (int j = 0; j < o->n; j++) {
		KNode *loop =
		    lw_loop(L, block, "q", ix_c(L, 0), ix_c(L, o->ext[j]), LOOP_SERIAL, &i);
		KNode *dig = o->flip ? bin(L, KB_SUB, ix_c(L, o->ext[j] - 1), i) : i;
		t = ix_add(L, t, ix_mul(L, dig, o->stride[j]));
		block = loop->body;
	}
	*tok = lw_simple(L, block, t);
	return block;
}

/* Channel lanes on the CPU: the largest of 16, 8, 4 that divides c (0: none, or a GPU target,
 * which has its own scan forms; SEGC_SCAN_SCALAR=1 for A/B). */
static int64_t
scan_lanes(Lower *L, int64_t c)
{
	if (L->p->gpu || cg_knob("SEGC_SCAN_SCALAR"))
		return 0;
	for (int64_t v = 16; v >= 4; v /= 2)
		if (c % v == 0)
			return v;
	return 0;
}

/* Parallel loop over B*C with b and c split out.  With lanes, the parallel loop runs over
 * (b, channel block) and a LOOP_VECTOR loop of `lanes` channels holds the walk: the CPU
 * emitter widens it (emit_llvm_vec.c), so one walk advances `lanes` channels at once --
 * their per-token operands are contiguous (channels are the last axis), the per-token B and
 * C rows are shared by every lane (broadcasts) and the states are vector registers. */
static KNode *
par_bc(Lower *L, int64_t nb, int64_t c, int64_t lanes, KNode **b, KNode **ch)
{
	int64_t dims[2] = {nb, lanes ? c / lanes : c};
	KNode *idx[2], *v;
	KNode *body = lw_nest(L, dims, 2, 0, idx);
	*b = idx[0];
	*ch = idx[1];
	if (!lanes)
		return body;
	KNode *vl = lw_loop(L, body, "lane", ix_c(L, 0), ix_c(L, lanes), LOOP_VECTOR, &v);
	*ch = lw_simple(L, vl->body, ix_add(L, ix_mul(L, *ch, lanes), v));
	return vl->body;
}

static int
materialised(Lower *L, ValueId v)
{
	return lw_is_out(L, v) && L->m->values[v].storage != ST_NONE;
}

/* ---- selective_scan ---- */

int
tmpl_scan(Lower *L)
{
	const Node *n = L->root;
	const Type *ut = lw_type(L, n->in[0]);
	int64_t nb = ut->dims[0], len = ut->dims[1], di = ut->dims[2];
	int64_t ns = lw_type(L, n->in[3])->dims[2];
	ScanOrder o;
	KNode *b, *c, *tok, *a[64], *h[64];
	Coord co;

	if (L->g->nnodes > 1)
		return lw_fail(L, "selective_scan takes no epilogue");
	if (ns > 64 || mamba_order(n, len, &o, L->d) < 0)
		return lw_fail(L, "selective_scan: bad d_state or order");
	int bu = lw_buf(L, n->in[0]), bd = lw_buf(L, n->in[1]), ba = lw_buf(L, n->in[2]);
	int bb = lw_buf(L, n->in[3]), bc = lw_buf(L, n->in[4]), bD = lw_buf(L, n->in[5]);
	int bdb = lw_buf(L, n->in[6]), bz = lw_buf(L, n->in[7]);
	KNode *body = par_bc(L, nb, di, scan_lanes(L, di), &b, &c);
	for (int64_t k = 0; k < ns; k++) {
		KNode *al = ld(L, ba, ix_add(L, ix_mul(L, c, ns), ix_c(L, k)));
		a[k] = lw_let(L, body, "a", kir_un(L->p, KU_NEG, kir_un(L->p, KU_EXP, al)));
		h[k] = var(L, body, "h", f32c(L, 0));
	}
	KNode *dd = lw_let(L, body, "dskip", ld(L, bD, c));
	KNode *db = lw_let(L, body, "dbias", ld(L, bdb, c));
	KNode *base = lw_let(L, body, "base", ix_mul(L, b, len));
	KNode *in = walk(L, body, &o, &tok);
	KNode *tk = lw_let(L, in, "tk", ix_add(L, base, tok));
	KNode *xi = lw_let(L, in, "xi", ix_add(L, ix_mul(L, tk, di), c));
	KNode *si = lw_let(L, in, "si", ix_mul(L, tk, ns));
	KNode *uu = lw_let(L, in, "uu", ld(L, bu, xi));
	KNode *dt = bin(L, KB_ADD, ld(L, bd, xi), db);
	if (ir_attr_int(n, "softplus"))
		dt = scan_softplus20(L, in, dt);
	dt = lw_let(L, in, "dt", dt);
	KNode *du = lw_let(L, in, "du", bin(L, KB_MUL, dt, uu));
	KNode *term[64];
	for (int64_t k = 0; k < ns; k++) {
		KNode *bi = ix_add(L, si, ix_c(L, k));
		KNode *dA = kir_un(L->p, KU_EXP, bin(L, KB_MUL, dt, a[k]));
		assign(L, in, h[k],
		       bin(L, KB_ADD, bin(L, KB_MUL, dA, h[k]), bin(L, KB_MUL, du, ld(L, bb, bi))));
		term[k] = bin(L, KB_MUL, ld(L, bc, bi), h[k]);
	}
	/* y = sum_n C_n h_n as a pairwise tree: a chain of ns dependent adds was the walk's
	 * critical path (ns x the add latency per token) */
	for (int64_t m = ns; m > 1; m = m / 2 + m % 2) {
		for (int64_t k = 0; k < m / 2; k++)
			term[k] = bin(L, KB_ADD, term[2 * k], term[2 * k + 1]);
		if (m % 2)
			term[m / 2] = term[m - 1];
	}
	KNode *y = lw_let(L, in, "yd", bin(L, KB_ADD, term[0], bin(L, KB_MUL, dd, uu)));
	KNode *ci[3] = {b, tok, c};
	coord_full(&co, ut, ci);
	if (materialised(L, n->out[1]))
		lw_store(L, in, &co, n->out[1], y);
	if (materialised(L, n->out[0]))
		lw_store(L, in, &co, n->out[0], bin(L, KB_MUL, y, scan_silu(L, in, ld(L, bz, xi))));
	return 0;
}

/* ---- causal_conv1d ---- */

int
tmpl_conv1d(Lower *L)
{
	const Node *n = L->root;
	const Type *xt = lw_type(L, n->in[0]);
	int64_t nb = xt->dims[0], len = xt->dims[1], ch = xt->dims[2];
	int64_t k = lw_type(L, n->in[1])->dims[2];
	ScanOrder o;
	KNode *b, *c, *tok, *w[16], *win[16];
	Coord co;

	if (k < 1 || k > 16 || mamba_order(n, len, &o, L->d) < 0)
		return lw_fail(L, "causal_conv1d: bad kernel or order");
	int bx = lw_buf(L, n->in[0]), bw = lw_buf(L, n->in[1]), bbias = lw_buf(L, n->in[2]);
	KNode *body = par_bc(L, nb, ch, scan_lanes(L, ch), &b, &c);
	for (int64_t j = 0; j < k; j++)
		w[j] = lw_let(L, body, "w", ld(L, bw, ix_add(L, ix_mul(L, c, k), ix_c(L, j))));
	for (int64_t j = 0; j < k - 1; j++)
		win[j] = var(L, body, "win", f32c(L, 0));
	KNode *bias = lw_let(L, body, "bias", ld(L, bbias, c));
	KNode *base = lw_let(L, body, "base", ix_mul(L, b, len));
	KNode *in = walk(L, body, &o, &tok);
	KNode *xi = ix_add(L, ix_mul(L, ix_add(L, base, tok), ch), c);
	KNode *xv = lw_let(L, in, "xv", ld(L, bx, xi));
	KNode *acc = bias;
	for (int64_t j = 0; j < k - 1; j++)
		acc = bin(L, KB_ADD, acc, bin(L, KB_MUL, w[j], win[j]));
	acc = lw_let(L, in, "acc", bin(L, KB_ADD, acc, bin(L, KB_MUL, w[k - 1], xv)));
	for (int64_t j = 0; j + 1 < k - 1; j++)
		assign(L, in, win[j], win[j + 1]);
	if (k > 1)
		assign(L, in, win[k - 2], xv);
	KNode *val = ir_attr_int(n, "silu") ? scan_silu(L, in, acc) : acc;
	KNode *ci[3] = {b, tok, c};
	coord_full(&co, xt, ci);
	return lw_output(L, in, &co, val);
}

/* ---- token_prune ---- */

/* kept(t): s[t] > T, or s[t] == T and t <= cut */
static KNode *
kept(Lower *L, KNode *s, KNode *T, KNode *t, KNode *cut)
{
	return bin(L, KB_OR, bin(L, KB_GT, s, T),
	           bin(L, KB_AND, bin(L, KB_EQ, s, T), bin(L, KB_LE, t, cut)));
}

int
tmpl_token_prune(Lower *L)
{
	const Node *n = L->root;
	const Type *xt = lw_type(L, n->in[0]);
	int64_t nb = xt->dims[0], len = xt->dims[1], ch = xt->dims[2];
	int64_t k = mamba_keep_count(ir_attr_float(n, "keep"), len), rows = k + (k < len);
	int wscore = !strcmp(ir_attr_str(n, "summary"), "score");
	ScanOrder o;
	KNode *t, *tok, *it, *cc;

	if (L->g->nnodes > 1)
		return lw_fail(L, "token_prune takes no epilogue");
	if (mamba_order(n, len, &o, L->d) < 0)
		return lw_fail(L, "token_prune: bad order");
	int bx = lw_buf(L, n->in[0]), bs = lw_buf(L, n->in[1]);
	int by = lw_outbuf(L, n->out[0]), bi = lw_outbuf(L, n->out[1]);
	KNode *b, *bidx[1];
	int64_t dims[1] = {nb};
	KNode *body = lw_nest(L, dims, 1, 0, bidx);
	b = bidx[0];
	KNode *sb = lw_let(L, body, "sb", ix_mul(L, b, len));
	KNode *xb = lw_let(L, body, "xb", ix_mul(L, b, len * ch));
	KNode *yb = lw_let(L, body, "yb", ix_mul(L, b, rows * ch));
	KNode *ib = lw_let(L, body, "ib", ix_mul(L, b, rows));

	/* T = the k-th largest score: bisection keeps count(s >= lo) >= k > count(s >= hi) */
	KNode *lo = var(L, body, "lo", f32c(L, -1)), *hi = var(L, body, "hi", f32c(L, 2));
	KNode *loop = lw_loop(L, body, "it", ix_c(L, 0), ix_c(L, 200), LOOP_SERIAL, &it);
	KNode *mid =
	    lw_let(L, loop->body, "mid", bin(L, KB_MUL, bin(L, KB_ADD, lo, hi), f32c(L, 0.5)));
	KNode *iff = kir_if(L->p, bin(L, KB_AND, bin(L, KB_GT, mid, lo), bin(L, KB_LT, mid, hi)));
	kir_append(L->p, loop->body, iff);
	KNode *cnt = var(L, iff->body, "cnt", ix_c(L, 0));
	KNode *cl = lw_loop(L, iff->body, "t", ix_c(L, 0), ix_c(L, len), LOOP_SERIAL, &t);
	KNode *ge = bin(L, KB_GE, ld(L, bs, ix_add(L, sb, t)), mid);
	assign(L, cl->body, cnt, bin(L, KB_ADD, cnt, kir_select(L->p, ge, ix_c(L, 1), ix_c(L, 0))));
	KNode *enough = lw_let(L, iff->body, "enough", bin(L, KB_GE, cnt, ix_c(L, k)));
	assign(L, iff->body, lo, kir_select(L->p, enough, mid, lo));
	assign(L, iff->body, hi, kir_select(L->p, enough, hi, mid));
	/* T = the smallest score >= lo (a score of the sequence); ties at T cut by raster index */
	KNode *T = var(L, body, "T", f32c(L, 3));
	cl = lw_loop(L, body, "t", ix_c(L, 0), ix_c(L, len), LOOP_SERIAL, &t);
	KNode *sv = lw_let(L, cl->body, "s", ld(L, bs, ix_add(L, sb, t)));
	assign(L, cl->body, T, kir_select(L->p, bin(L, KB_GE, sv, lo), bin(L, KB_MIN, T, sv), T));
	KNode *gt = var(L, body, "gt", ix_c(L, 0));
	cl = lw_loop(L, body, "t", ix_c(L, 0), ix_c(L, len), LOOP_SERIAL, &t);
	sv = ld(L, bs, ix_add(L, sb, t));
	assign(L, cl->body, gt,
	       bin(L, KB_ADD, gt, kir_select(L->p, bin(L, KB_GT, sv, T), ix_c(L, 1), ix_c(L, 0))));
	KNode *need = lw_let(L, body, "need", bin(L, KB_SUB, ix_c(L, k), gt));
	KNode *seen = var(L, body, "seen", ix_c(L, 0)), *cut = var(L, body, "cut", ix_c(L, -1));
	cl = lw_loop(L, body, "t", ix_c(L, 0), ix_c(L, len), LOOP_SERIAL, &t);
	KNode *eq = lw_let(L, cl->body, "eq", bin(L, KB_EQ, ld(L, bs, ix_add(L, sb, t)), T));
	assign(L, cl->body, seen,
	       bin(L, KB_ADD, seen, kir_select(L->p, eq, ix_c(L, 1), ix_c(L, 0))));
	assign(L, cl->body, cut,
	       kir_select(L->p, bin(L, KB_AND, eq, bin(L, KB_EQ, seen, need)), t, cut));

	/* kept rows in walk order */
	KNode *r = var(L, body, "r", ix_c(L, 0));
	KNode *in = walk(L, body, &o, &tok);
	KNode *s = lw_let(L, in, "s", ld(L, bs, ix_add(L, sb, tok)));
	iff = kir_if(L->p, kept(L, s, T, tok, cut));
	kir_append(L->p, in, iff);
	KNode *xo = lw_let(L, iff->body, "xo", ix_add(L, xb, ix_mul(L, tok, ch)));
	KNode *yo = lw_let(L, iff->body, "yo", ix_add(L, yb, ix_mul(L, r, ch)));
	cl = lw_loop(L, iff->body, "c", ix_c(L, 0), ix_c(L, ch), LOOP_SERIAL, &cc);
	kir_append(L->p, cl->body,
	           kir_store(L->p, by, ix_add(L, yo, cc), ld(L, bx, ix_add(L, xo, cc))));
	kir_append(L->p, iff->body,
	           kir_store(L->p, bi, ix_add(L, ib, r), kir_cast(L->p, KT_F32, tok)));
	assign(L, iff->body, r, ix_add(L, r, ix_c(L, 1)));
	if (k == len)
		return 0;

	/* summary: mean (or score-weighted mean) of the dropped tokens, last */
	KNode *wsum = var(L, body, "wsum", f32c(L, 0));
	if (wscore) {
		cl = lw_loop(L, body, "t", ix_c(L, 0), ix_c(L, len), LOOP_SERIAL, &t);
		sv = lw_let(L, cl->body, "s", ld(L, bs, ix_add(L, sb, t)));
		assign(
		    L, cl->body, wsum,
		    bin(L, KB_ADD, wsum, kir_select(L->p, kept(L, sv, T, t, cut), f32c(L, 0), sv)));
		assign(L, body, wsum, bin(L, KB_MAX, wsum, f32c(L, 1e-6)));
	} else {
		assign(L, body, wsum, f32c(L, (double)(len - k)));
	}
	cl = lw_loop(L, body, "c", ix_c(L, 0), ix_c(L, ch), LOOP_SERIAL, &cc);
	KNode *acc = var(L, cl->body, "acc", f32c(L, 0));
	KNode *tl = lw_loop(L, cl->body, "t", ix_c(L, 0), ix_c(L, len), LOOP_SERIAL, &t);
	sv = lw_let(L, tl->body, "s", ld(L, bs, ix_add(L, sb, t)));
	KNode *xv = ld(L, bx, ix_add(L, ix_add(L, xb, ix_mul(L, t, ch)), cc));
	KNode *wv = wscore ? bin(L, KB_MUL, sv, xv) : xv;
	assign(L, tl->body, acc,
	       bin(L, KB_ADD, acc, kir_select(L->p, kept(L, sv, T, t, cut), f32c(L, 0), wv)));
	kir_append(L->p, cl->body,
	           kir_store(L->p, by, ix_add(L, ix_add(L, yb, ix_c(L, k * ch)), cc),
	                     bin(L, KB_DIV, acc, wsum)));
	kir_append(L->p, body, kir_store(L->p, bi, ix_add(L, ib, ix_c(L, k)), f32c(L, -1)));
	return 0;
}

/* ---- token_unpool ---- */

int
tmpl_token_unpool(Lower *L)
{
	const Node *n = L->root;
	const Type *yt = lw_type(L, n->in[0]), *ot = lw_type(L, n->out[0]);
	int64_t nb = yt->dims[0], rows = yt->dims[1], ch = yt->dims[2], len = ot->dims[1];
	KNode *t, *cc, *r, *bidx[1];
	Coord co;

	int by = lw_buf(L, n->in[0]), bi = lw_buf(L, n->in[1]);
	int64_t dims[1] = {nb};
	KNode *body = lw_nest(L, dims, 1, 0, bidx);
	KNode *b = bidx[0];
	KNode *yb = lw_let(L, body, "yb", ix_mul(L, b, rows * ch));
	KNode *ib = lw_let(L, body, "ib", ix_mul(L, b, rows));
	/* the summary row (idx < 0 in the last row) broadcast to every token */
	KNode *iff =
	    kir_if(L->p, bin(L, KB_LT, ld(L, bi, ix_add(L, ib, ix_c(L, rows - 1))), f32c(L, 0)));
	kir_append(L->p, body, iff);
	KNode *tl = lw_loop(L, iff->body, "t", ix_c(L, 0), ix_c(L, len), LOOP_SERIAL, &t);
	KNode *cl = lw_loop(L, tl->body, "c", ix_c(L, 0), ix_c(L, ch), LOOP_SERIAL, &cc);
	KNode *ci[3] = {b, t, cc};
	coord_full(&co, ot, ci);
	KNode *v = ld(L, by, ix_add(L, ix_add(L, yb, ix_c(L, (rows - 1) * ch)), cc));
	if (lw_output(L, cl->body, &co, v) < 0)
		return -1;
	/* every kept row at its token */
	KNode *rl = lw_loop(L, body, "r", ix_c(L, 0), ix_c(L, rows), LOOP_SERIAL, &r);
	KNode *f = lw_let(L, rl->body, "f", ld(L, bi, ix_add(L, ib, r)));
	iff = kir_if(L->p, bin(L, KB_GE, f, f32c(L, 0)));
	kir_append(L->p, rl->body, iff);
	KNode *tk = lw_let(L, iff->body, "tk", kir_cast(L->p, KT_I64, f));
	cl = lw_loop(L, iff->body, "c", ix_c(L, 0), ix_c(L, ch), LOOP_SERIAL, &cc);
	KNode *cj[3] = {b, tk, cc};
	coord_full(&co, ot, cj);
	v = ld(L, by, ix_add(L, ix_add(L, yb, ix_mul(L, r, ch)), cc));
	return lw_output(L, cl->body, &co, v);
}
