/* codegen/tmpl_gpu_scan.c -- GPU forms of selective_scan and causal_conv1d (called by
 * tmpl_gpu.c when the program is lowered for CUDA; docs/cuda.md).  Same semantics as
 * tmpl_scan.c: scan orders are index maps (step q of the walk visits token pos(q), computed
 * from q's mixed-radix digits, ir/mamba.h), results are written back at pos(q).
 *
 * selective_scan, chunked over the walk (nc chunks of T steps, the last ragged), so that
 * B*di*nc threads work instead of B*di:
 *   loop 1  parallel over (b, chunk, c)  scan the chunk from h = 0: the end state h_n and the
 *                                       decay product prod_n = prod of exp(dt a_n) (a product
 *                                       of per-step decays: never exp of a long sum)
 *                                       -> scratch [b][chunk][n][c]
 *   loop 2  parallel over (b, n, c)      s = 0; per chunk: init = s; s = prod*s + end; the
 *                                       initial states replace the end states (many chunks:
 *                                       two levels, groups of ~sqrt(nc) chunks, see carry())
 *   loop 3  parallel over (b, chunk, c)  rescan the chunk from its initial state: y, outputs
 * c is the fastest index everywhere: a warp reads 32 consecutive channels of a token (u, delta,
 * z, y coalesced; B and C of the token are one broadcast address).
 * causal_conv1d: one thread per output element (b, q, c), c fastest; the k-1 earlier steps of
 * the walk are loaded through pos() (zero before the start).
 * Each returns 1 (the generic template) for shapes where the form gains nothing. */
#include "tmpl.h"
#include "mamba.h"

enum {
	SCAN_THREADS = 1 << 17, /* loop-1/3 iterations aimed at: ~30 warps per SM */
	SCAN_MINCHUNK = 8,      /* steps per chunk, at least */
};

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

/* the token visited at step q (0 <= q < len) of order o, let-bound */
static KNode *
pos(Lower *L, KNode *block, const ScanOrder *o, KNode *q)
{
	KNode *qq = o->flip ? bin(L, KB_SUB, ix_c(L, o->len - 1), q) : q;
	KNode *t = ix_c(L, 0);
	int64_t div = 1;

	qq = lw_simple(L, block, qq);
	for (int j = o->n - 1; j >= 0; j--) {
		KNode *d = div == 1 ? qq : bin(L, KB_DIV, qq, ix_c(L, div));
		if (o->ext[j] == 1)
			continue;
		if (j > 0)
			d = bin(L, KB_REM, d, ix_c(L, o->ext[j]));
		t = ix_add(L, t, ix_mul(L, d, o->stride[j]));
		div *= o->ext[j];
	}
	return lw_simple(L, block, t);
}

/* a parallel loop over n iterations split as [outer][mid][inner] (inner fastest) */
static KNode *
par3(Lower *L, int64_t mid, int64_t inner, int64_t n, KNode **a, KNode **b, KNode **c)
{
	KNode *p;
	KNode *body = lw_loop(L, L->k->body, "p", ix_c(L, 0), ix_c(L, n), LOOP_PARALLEL, &p)->body;
	*c = lw_let(L, body, "c", bin(L, KB_REM, p, ix_c(L, inner)));
	KNode *t = lw_let(L, body, "t", bin(L, KB_DIV, p, ix_c(L, inner)));
	*b = lw_let(L, body, "m", bin(L, KB_REM, t, ix_c(L, mid)));
	*a = lw_let(L, body, "b", bin(L, KB_DIV, t, ix_c(L, mid)));
	return body;
}

/* ---- selective_scan ---- */

typedef struct {
	int64_t nb, len, di, ns, nc, T;
	ScanOrder o;
	int bu, bd, ba, bb, bc, bD, bdb, bz;
	int hs, ps; /* scratch: chunk end (then initial) states, decay products */
} Scan;

/* scratch index of (b, chunk k, state n, channel c) */
static KNode *
sidx(Lower *L, const Scan *s, KNode *b, KNode *k, int64_t n, KNode *c)
{
	KNode *bk = ix_add(L, ix_mul(L, b, s->nc), k);
	return ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, bk, s->ns), ix_c(L, n)), s->di), c);
}

/* Loop 1 (final = 0) or loop 3 (final = 1) over (b, chunk, c). */
static int
chunk_pass(Lower *L, const Scan *s, int final)
{
	const Node *n = L->root;
	KNode *b, *k, *c, *q, *a[64], *h[64], *pr[64];
	Coord co;

	KNode *body = par3(L, s->nc, s->di, s->nb * s->nc * s->di, &b, &k, &c);
	for (int64_t j = 0; j < s->ns; j++) {
		KNode *al = ld(L, s->ba, ix_add(L, ix_mul(L, c, s->ns), ix_c(L, j)));
		a[j] = lw_let(L, body, "a", kir_un(L->p, KU_NEG, kir_un(L->p, KU_EXP, al)));
		if (final) {
			h[j] = lw_let(L, body, "h", ld(L, s->hs, sidx(L, s, b, k, j, c)));
		} else {
			h[j] = lw_let(L, body, "h", f32c(L, 0));
			pr[j] = lw_let(L, body, "pr", f32c(L, 1));
		}
	}
	KNode *dd = final ? lw_let(L, body, "dskip", ld(L, s->bD, c)) : NULL;
	KNode *db = lw_let(L, body, "dbias", ld(L, s->bdb, c));
	KNode *base = lw_let(L, body, "base", ix_mul(L, b, s->len));
	KNode *lo = lw_let(L, body, "lo", ix_mul(L, k, s->T));
	KNode *hi = bin(L, KB_MIN, ix_add(L, lo, ix_c(L, s->T)), ix_c(L, s->len));
	KNode *in = lw_loop(L, body, "q", lo, hi, LOOP_SERIAL, &q)->body;
	KNode *tok = pos(L, in, &s->o, q);
	KNode *tk = lw_let(L, in, "tk", ix_add(L, base, tok));
	KNode *xi = lw_let(L, in, "xi", ix_add(L, ix_mul(L, tk, s->di), c));
	KNode *si = lw_let(L, in, "si", ix_mul(L, tk, s->ns));
	KNode *uu = lw_let(L, in, "uu", ld(L, s->bu, xi));
	KNode *dt = bin(L, KB_ADD, ld(L, s->bd, xi), db);
	if (ir_attr_int(n, "softplus"))
		dt = scan_softplus20(L, in, dt);
	dt = lw_let(L, in, "dt", dt);
	KNode *du = lw_let(L, in, "du", bin(L, KB_MUL, dt, uu));
	KNode *acc = final ? lw_let(L, in, "y", f32c(L, 0)) : NULL;
	for (int64_t j = 0; j < s->ns; j++) {
		KNode *bi = ix_add(L, si, ix_c(L, j));
		KNode *dA = lw_let(L, in, "dA", kir_un(L->p, KU_EXP, bin(L, KB_MUL, dt, a[j])));
		assign(
		    L, in, h[j],
		    bin(L, KB_ADD, bin(L, KB_MUL, dA, h[j]), bin(L, KB_MUL, du, ld(L, s->bb, bi))));
		if (final)
			assign(L, in, acc,
			       bin(L, KB_ADD, acc, bin(L, KB_MUL, ld(L, s->bc, bi), h[j])));
		else
			assign(L, in, pr[j], bin(L, KB_MUL, pr[j], dA));
	}
	if (!final) {
		for (int64_t j = 0; j < s->ns; j++) {
			kir_append(L->p, body,
			           kir_store(L->p, s->hs, sidx(L, s, b, k, j, c), h[j]));
			kir_append(L->p, body,
			           kir_store(L->p, s->ps, sidx(L, s, b, k, j, c), pr[j]));
		}
		return 0;
	}
	KNode *y = lw_let(L, in, "yd", bin(L, KB_ADD, acc, bin(L, KB_MUL, dd, uu)));
	KNode *ci[3] = {b, tok, c};
	coord_full(&co, lw_type(L, n->in[0]), ci);
	if (lw_is_out(L, n->out[1]) && L->m->values[n->out[1]].storage != ST_NONE)
		lw_store(L, in, &co, n->out[1], y);
	if (lw_is_out(L, n->out[0]) && L->m->values[n->out[0]].storage != ST_NONE)
		lw_store(L, in, &co, n->out[0],
		         bin(L, KB_MUL, y, scan_silu(L, in, ld(L, s->bz, xi))));
	return 0;
}

/* A carry chain over the items [k0, k1) at base + k*stride of buffers hb (end states) and pb
 * (decays): st = pk*st + he per item, pr *= pk (when pr); when write, each item's initial state
 * (st before it) replaces its end state. */
static void
chain(Lower *L, KNode *block, int hb, int pb, KNode *base, int64_t stride, KNode *k0, KNode *k1,
      KNode *st, KNode *pr, int write)
{
	KNode *k;
	KNode *in = lw_loop(L, block, "k", k0, k1, LOOP_SERIAL, &k)->body;
	KNode *i = lw_let(L, in, "i", ix_add(L, base, ix_mul(L, k, stride)));
	KNode *he = lw_let(L, in, "he", ld(L, hb, i));
	KNode *pk = lw_let(L, in, "pk", ld(L, pb, i));
	if (write)
		kir_append(L->p, in, kir_store(L->p, hb, i, st));
	assign(L, in, st, bin(L, KB_ADD, bin(L, KB_MUL, pk, st), he));
	if (pr)
		assign(L, in, pr, bin(L, KB_MUL, pr, pk));
}

/* ((b*nb1 + j)*di + c): the index of item 0 of (b, n = j, c) in a [B][nb1/ns][ns][di] array */
static KNode *
chain_base(Lower *L, const Scan *s, KNode *block, KNode *b, int64_t nb1, KNode *j, KNode *c)
{
	return lw_let(L, block, "base",
	              ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, b, nb1), j), s->di), c));
}

/* 2a (final = 0) or 2c (final = 1), parallel over (b, group, n, c): the chain over the G
 * chunks of one group, from 0 recording the group's end state and decay into ge/gp, or from
 * the group's initial state (ge after 2b) writing its chunks' initial states. */
static void
group_pass(Lower *L, const Scan *s, int64_t G, int64_t ng, int ge, int gp, int final)
{
	int64_t per = s->ns * s->di;
	KNode *bg, *j, *c;
	KNode *body = par3(L, s->ns, s->di, s->nb * ng * per, &bg, &j, &c);
	KNode *g = lw_let(L, body, "g", bin(L, KB_REM, bg, ix_c(L, ng)));
	KNode *b = lw_let(L, body, "bb", bin(L, KB_DIV, bg, ix_c(L, ng)));
	KNode *gi = chain_base(L, s, body, bg, s->ns, j, c); /* [B*ng][ns][di] */
	KNode *k0 = lw_let(L, body, "k0", ix_mul(L, g, G));
	KNode *k1 = bin(L, KB_MIN, ix_add(L, k0, ix_c(L, G)), ix_c(L, s->nc));
	KNode *base = chain_base(L, s, body, b, s->nc * s->ns, j, c);
	if (final) {
		KNode *st = lw_let(L, body, "s", ld(L, ge, gi));
		chain(L, body, s->hs, s->ps, base, per, k0, k1, st, NULL, 1);
		return;
	}
	KNode *st = lw_let(L, body, "s", f32c(L, 0));
	KNode *pr = lw_let(L, body, "pr", f32c(L, 1));
	chain(L, body, s->hs, s->ps, base, per, k0, k1, st, pr, 0);
	kir_append(L->p, body, kir_store(L->p, ge, gi, st));
	kir_append(L->p, body, kir_store(L->p, gp, gi, pr));
}

/* Loop 2: the chunks' initial states, in place of their end states.  With few chunks one
 * chain per (b, n, c) over all of them; with many, groups of G ~ sqrt(nc) chunks: 2a each
 * group's end state and decay, 2b per (b, n, c) the groups' initial states in sequence, 2c
 * each group's chunks from its initial state; no thread walks more than ~sqrt(nc) items. */
static void
carry(Lower *L, const Scan *s)
{
	int64_t per = s->ns * s->di, G = 1, ng;
	KNode *b, *j, *c;

	if (s->nc <= 64) {
		KNode *body = par3(L, s->ns, s->di, s->nb * per, &b, &j, &c);
		KNode *st = lw_let(L, body, "s", f32c(L, 0));
		KNode *base = chain_base(L, s, body, b, s->nc * s->ns, j, c);
		chain(L, body, s->hs, s->ps, base, per, ix_c(L, 0), ix_c(L, s->nc), st, NULL, 1);
		return;
	}
	while (G * G < s->nc)
		G++;
	ng = (s->nc + G - 1) / G;
	int ge = lw_scratch(L, DT_F32, s->nb * ng * per, "scan_gh");
	int gp = lw_scratch(L, DT_F32, s->nb * ng * per, "scan_gdecay");
	group_pass(L, s, G, ng, ge, gp, 0);
	KNode *body = par3(L, s->ns, s->di, s->nb * per, &b, &j, &c);
	KNode *st = lw_let(L, body, "s", f32c(L, 0));
	KNode *base = chain_base(L, s, body, b, ng * s->ns, j, c);
	chain(L, body, ge, gp, base, per, ix_c(L, 0), ix_c(L, ng), st, NULL, 1);
	group_pass(L, s, G, ng, ge, gp, 1);
}

static int
gpu_scan(Lower *L)
{
	const Node *n = L->root;
	const Type *ut = lw_type(L, n->in[0]);
	Scan s = {0};

	s.nb = ut->dims[0], s.len = ut->dims[1], s.di = ut->dims[2];
	s.ns = lw_type(L, n->in[3])->dims[2];
	if (L->g->nnodes > 1 || s.ns > 64 || s.ns < 1 || s.nb * s.di < 1)
		return 1; /* the generic template reports these */
	s.nc = SCAN_THREADS / (s.nb * s.di);
	if (s.nc > s.len / SCAN_MINCHUNK)
		s.nc = s.len / SCAN_MINCHUNK;
	if (s.nc < 2)
		return 1;
	s.T = (s.len + s.nc - 1) / s.nc;
	s.nc = (s.len + s.T - 1) / s.T;
	if (mamba_order(n, s.len, &s.o, L->d) < 0)
		return lw_fail(L, "selective_scan: bad order");
	s.bu = lw_buf(L, n->in[0]), s.bd = lw_buf(L, n->in[1]), s.ba = lw_buf(L, n->in[2]);
	s.bb = lw_buf(L, n->in[3]), s.bc = lw_buf(L, n->in[4]), s.bD = lw_buf(L, n->in[5]);
	s.bdb = lw_buf(L, n->in[6]), s.bz = lw_buf(L, n->in[7]);
	if (lw_out_aliases_input(L)) /* (checked once the inputs are buffers of the kernel) */
		return 1;
	s.hs = lw_scratch(L, DT_F32, s.nb * s.nc * s.ns * s.di, "scan_h");
	s.ps = lw_scratch(L, DT_F32, s.nb * s.nc * s.ns * s.di, "scan_decay");
	if (chunk_pass(L, &s, 0) < 0)
		return -1;
	carry(L, &s);
	return chunk_pass(L, &s, 1);
}

/* ---- causal_conv1d ---- */

static int
gpu_conv1d(Lower *L)
{
	const Node *n = L->root;
	const Type *xt = lw_type(L, n->in[0]);
	int64_t nb = xt->dims[0], len = xt->dims[1], ch = xt->dims[2];
	int64_t k = lw_type(L, n->in[1])->dims[2];
	ScanOrder o;
	KNode *b, *q, *c;
	Coord co;

	if (k < 1 || k > 16 || nb * len * ch < 1)
		return 1;
	if (mamba_order(n, len, &o, L->d) < 0)
		return lw_fail(L, "causal_conv1d: bad order");
	int bx = lw_buf(L, n->in[0]), bw = lw_buf(L, n->in[1]), bbias = lw_buf(L, n->in[2]);
	/* an output over its input would be overwritten while neighbours still read it */
	if (lw_out_aliases_input(L))
		return 1;
	KNode *body = par3(L, len, ch, nb * len * ch, &b, &q, &c);
	KNode *base = lw_let(L, body, "base", ix_mul(L, b, len));
	KNode *tok = pos(L, body, &o, q);
	KNode *acc = ld(L, bbias, c);
	/* the generic template's order: bias, the window oldest first, then the current token */
	for (int64_t j = 0; j < k - 1; j++) {
		KNode *qj = lw_let(L, body, "qj", bin(L, KB_SUB, q, ix_c(L, k - 1 - j)));
		KNode *qc = bin(L, KB_MAX, qj, ix_c(L, 0));
		KNode *tj = pos(L, body, &o, qc);
		KNode *xv = ld(L, bx, ix_add(L, ix_mul(L, ix_add(L, base, tj), ch), c));
		KNode *wj = ld(L, bw, ix_add(L, ix_mul(L, c, k), ix_c(L, j)));
		KNode *v = kir_select(L->p, bin(L, KB_GE, qj, ix_c(L, 0)), xv, f32c(L, 0));
		acc = lw_let(L, body, "acc", bin(L, KB_ADD, acc, bin(L, KB_MUL, wj, v)));
	}
	KNode *xv = ld(L, bx, ix_add(L, ix_mul(L, ix_add(L, base, tok), ch), c));
	KNode *wl = ld(L, bw, ix_add(L, ix_mul(L, c, k), ix_c(L, k - 1)));
	acc = lw_let(L, body, "acc", bin(L, KB_ADD, acc, bin(L, KB_MUL, wl, xv)));
	KNode *val = ir_attr_int(n, "silu") ? scan_silu(L, body, acc) : acc;
	KNode *ci[3] = {b, tok, c};
	coord_full(&co, xt, ci);
	return lw_output(L, body, &co, val);
}

int
tmpl_gpu_scan(Lower *L)
{
	switch (L->root->op) {
	case OP_selective_scan:
		return gpu_scan(L);
	case OP_causal_conv1d:
		return gpu_conv1d(L);
	default:
		return 1;
	}
}
