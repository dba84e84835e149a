/* codegen/tmpl_conv.c -- conv3d (direct) and conv_transpose3d (phase form / gather), NCDHW.
 *
 * conv3d, the fast form (conv_mk): a register-resident micro-kernel.  A block of VL output
 * positions x COB output channels is one LOOP_VECTOR loop of constant trip count VL whose
 * body holds the whole reduction (ci, kd, [kh,] unrolled taps); the CPU emitter widens it
 * (emit_llvm_vec.c), so the COB accumulators stay in vector registers, each x vector (a
 * masked load at the borders) is loaded once per tap for the COB channels and the weights
 * are broadcast scalars.  The sums are stored once, then the epilogue runs over the tile.
 *   for (n, od, tile, co block) parallel: for blk: for lane in [0, VL) vector:
 *     acc[j] = bias; for ci, kd (if id valid), [kh,] taps: acc[j] += w * x (masked)
 *     out[co0 + j, p] = acc[j]
 *   for j: for p in tile vector: out = epilogue(out)
 * Rows of 8..16 with >= 16 input channels use channel lanes instead (mk_block_cl: the lanes
 * are 16 output channels, the accumulators a row's positions, so border taps are left out
 * per position; the sums go through a transpose tile in scratch); they and the plane form's
 * rows of >= 32 (16 x 16 blocks) read the weights packed into scratch by a first loop
 * (mk_pack: a tap's 16 weights in one cache line).
 * Load prologue (docs/codegen.md): the micro-kernel applies the chain once per element of X
 * by a first parallel loop into scratch (pro_prepass) and reads that; per loaded x instead
 * (SEGC_PRO_PERLOAD=1, cheap chains) and in the blocked and scalar forms, each x element
 * loaded from inside the input goes through lw_prologue (the chain's per-(n, c) operands
 * hoisted to the ci loop); masked-out and skipped border taps stay 0 either way, the
 * padding of the prologue's output.
 * The previous blocked form (conv_blocked: accumulation in the output buffer) remains for
 * A/B measurements (SEGC_CONV_OLD=1).  When the output buffer may overlap a buffer the group
 * reads (in-place planning), the scalar form keeps the accumulator in a register instead.
 * conv_transpose3d with kernel == stride: s^3 pointwise GEMMs, one per output phase
 * (convt_mk, the micro-kernel, from 48 input channels per group; convt_phase below that);
 * otherwise it gathers: out[o] = sum over taps k where (o + p - k*d) is a
 * multiple of the stride s and (o + p - k*d) / s is inside the input. */
#include "tmpl.h"

#include <stdlib.h>
#include <string.h>


static KNode *
band(Lower *L, KNode *a, KNode *b)
{
	return a ? kir_bin(L->p, KB_AND, a, b) : b;
}


static int64_t
floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* the outer parallel loop over (n, co, od) and the oh loop; sets the indices */
static KNode *
conv_rows(Lower *L, const Conv *cv, KNode **n, KNode **co, KNode **od, KNode **oh)
{
	int64_t dims[3] = {cv->N, cv->Co, cv->OD};
	KNode *idx[3];
	KNode *body = lw_nest(L, dims, 3, 0, idx);
	*n = idx[0], *co = idx[1], *od = idx[2];
	KNode *loop = lw_loop(L, body, "oh", ix_c(L, 0), ix_c(L, cv->OH), LOOP_SERIAL, oh);
	return loop->body;
}

/* the value whose buffer accumulates the root's sums: a group output of the root's shape */
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

/* register every buffer the group reads, so that aliasing can be checked up front */
static void
touch_inputs(Lower *L)
{
	for (uint32_t i = 0; i < L->g->nnodes; i++) {
		const Node *n = &L->m->nodes[L->g->nodes[i]];
		for (int j = 0; j < n->nin; j++) {
			ValueId v = n->in[j];
			const Value *val = &L->m->values[v];
			if (!v || val->storage == ST_CONST || val->storage == ST_NONE)
				continue;
			if (L->m->nodes[val->def].op == OP_constant)
				continue;
			lw_buf(L, v);
		}
	}
	for (uint32_t i = 0; i < L->g->npro; i++) { /* the load prologue's source and operands */
		const Node *n = &L->m->nodes[L->g->pro[i]];
		for (int j = 0; j < n->nin; j++) {
			ValueId v = n->in[j];
			int chain = 0;
			for (uint32_t k = 0; k < L->g->npro; k++)
				chain |= L->m->nodes[L->g->pro[k]].out[0] == v;
			if (!v || chain || L->m->values[v].storage == ST_CONST ||
			    L->m->values[v].storage == ST_NONE ||
			    L->m->nodes[L->m->values[v].def].op == OP_constant)
				continue;
			lw_buf(L, v);
		}
	}
}

/* ---- the register-blocked form ----
 * COB output channels x CIB input channels x a set of kernel taps are applied in one vector
 * loop over the output positions of a row: the x values are loaded once and shared by the
 * COB output rows, the COB*CIB*taps weights are loop-invariant scalars (broadcasts), and each
 * output row's sum is split in two FMA chains to hide the FMA latency.  The rows accumulate in
 * the group's output buffer (L1-resident).  Taps valid on part of the row only use
 * predicated loads (masked vector loads), so every row is vectorized whole.
 *   row form:   a row is (od, oh) x ow; taps: the KW taps of (kd, kh)
 *   plane form: unit stride in h and w with OW == W: a row is (od) x (oh, ow) flattened, the
 *               x index is affine in it; taps: the KH*KW taps of kd (fewer, longer loops)
 *   pointwise:  1^3, unit stride, no padding: (od, oh, ow) flattened, cut into tiles */

enum { CONV_FMAS = 24, CONV_TAPS = 40, ROW_TILE = 1024, MAXB = 256 };

typedef struct {
	int64_t off;                /* x offset of the tap from the row's x base */
	int64_t wlo, whi, hlo, hhi; /* valid for ow in [wlo, whi), oh in [hlo, hhi) */
} Tap;

typedef struct {
	int ob, xb, wb;
	int64_t cob, cib;  /* output / input channel block */
	int64_t ostr, xcs; /* output channel row stride; input channel stride */
	int64_t wos, wcs;  /* weight strides: per output channel, per input channel */
	int64_t sw;        /* x step per row position */
	int64_t OW, OH;    /* plane form: row position p = oh*OW + ow */
	int plane;
	KNode *n, *cin; /* batch and first input channel of the block (load prologue) */
} Blk;

/* largest divisor of n that is <= lim (>= 1) */
static int64_t
divisor_le(int64_t n, int64_t lim)
{
	for (int64_t d = lim < n ? lim : n; d > 1; d--)
		if (n % d == 0)
			return d;
	return 1;
}

/* lo <= i < hi for the bounds that can fail, or NULL */
static KNode *
cond_range(Lower *L, KNode *c, KNode *i, int64_t lo, int64_t hi, int64_t n)
{
	if (lo > 0)
		c = band(L, c, kir_bin(L->p, KB_GE, i, ix_c(L, lo)));
	if (hi < n)
		c = band(L, c, kir_bin(L->p, KB_LT, i, ix_c(L, hi)));
	return c;
}

/* One vector loop over row positions p in [lo, hi):
 *   out[row_j + p] += sum over c, t of wv[(j*cib + c)*nt + t] * x[xr + c*xcs + p*sw + off_t] */
static void
blk_loop(Lower *L, const Blk *bk, KNode *block, KNode *row, KNode *xr, KNode **wv, const Tap *tp,
         int nt, KNode *lo, KNode *hi)
{
	KNode *p, *xv[MAXB], *ov[MAXB], *oi[MAXB], *ow, *oh = NULL;
	KNode *il = lw_loop(L, block, "p", lo, hi, LOOP_VECTOR, &p);
	KNode *b = il->body;

	ow = p;
	if (bk->plane) {
		ow = lw_let(L, b, "ow", kir_bin(L->p, KB_REM, p, ix_c(L, bk->OW)));
		oh = lw_let(L, b, "oh", kir_bin(L->p, KB_DIV, p, ix_c(L, bk->OW)));
	}
	KNode *xo = lw_let(L, b, "xo", ix_add(L, xr, ix_mul(L, p, bk->sw)));
	for (int t = 0; t < nt; t++) {
		KNode *cond = cond_range(L, NULL, ow, tp[t].wlo, tp[t].whi, bk->OW);
		if (oh)
			cond = cond_range(L, cond, oh, tp[t].hlo, tp[t].hhi, bk->OH);
		for (int64_t c = 0; c < bk->cib; c++) {
			KNode *xi = ix_add(L, xo, ix_c(L, c * bk->xcs + tp[t].off));
			KNode *ld = kir_load(L->p, L->k, bk->xb, xi);
			KNode *ci = ix_add(L, bk->cin, ix_c(L, c));
			if (!cond) {
				ld = lw_prologue(L, b, bk->n, ci, ld);
				xv[c * nt + t] = lw_let(L, b, "xv", ld);
				continue;
			}
			/* a predicated load: the vectorizer makes it a masked load; the prologue
			 * applies to the elements inside the input only (padding stays 0) */
			int v = kir_var(L->p, L->k, KT_F32, "xv");
			kir_append(L->p, b, kir_let(L->p, L->k, v, kir_f32(L->p, 0)));
			KNode *ifl = kir_if(L->p, cond);
			kir_append(L->p, b, ifl);
			ld = lw_prologue(L, ifl->body, bk->n, ci, ld);
			kir_append(L->p, ifl->body, kir_assign(L->p, v, ld));
			xv[c * nt + t] = kir_ref(L->p, L->k, v);
		}
	}
	KNode *oo = lw_let(L, b, "oo", ix_add(L, row, p));
	for (int64_t j = 0; j < bk->cob; j++) {
		oi[j] = ix_add(L, oo, ix_c(L, j * bk->ostr));
		ov[j] = kir_load(L->p, L->k, bk->ob, oi[j]);
	}
	for (int64_t j = 0; j < bk->cob; j++) {
		KNode *s[2] = {ov[j], NULL};
		int n = 0;
		for (int64_t c = 0; c < bk->cib; c++)
			for (int t = 0; t < nt; t++, n++) {
				KNode *m = kir_bin(L->p, KB_MUL, wv[(j * bk->cib + c) * nt + t],
				                   xv[c * nt + t]);
				s[n & 1] = s[n & 1] ? kir_bin(L->p, KB_ADD, s[n & 1], m) : m;
			}
		ov[j] = lw_let(L, b, "acc", s[1] ? kir_bin(L->p, KB_ADD, s[0], s[1]) : s[0]);
	}
	for (int64_t j = 0; j < bk->cob; j++)
		kir_append(L->p, b, kir_store(L->p, bk->ob, oi[j], ov[j]));
}

/* the taps (kh in khs, every kw) with their weight lets; wb0: weight index of
 * (co0, ci0, kd, kh0, 0) */
static void
blk_taps(Lower *L, const Conv *cv, const Blk *bk, KNode *block, KNode *row, KNode *xr, KNode *wb0,
         int nkh, KNode *t0, KNode *t1)
{
	int64_t KW = cv->k[2];
	Tap tp[MAXB];
	KNode *wv[MAXB];
	int nt = 0;

	for (int kh = 0; kh < nkh; kh++)
		for (int64_t kw = 0; kw < KW; kw++, nt++) {
			Tap *t = &tp[nt];
			int64_t ow_ = kw * cv->dl[2] - cv->p[2], oh_ = kh * cv->dl[1] - cv->p[1];
			t->wlo = ow_ >= 0 ? 0 : floordiv(-ow_ + cv->s[2] - 1, cv->s[2]);
			t->whi = floordiv(cv->W - 1 - ow_, cv->s[2]) + 1;
			t->whi = t->whi > cv->OW ? cv->OW : t->whi;
			t->hlo = oh_ >= 0 ? 0 : -oh_;
			t->hhi = cv->H - oh_ < cv->OH ? cv->H - oh_ : cv->OH;
			t->off = ow_ + (bk->plane ? oh_ * cv->W : 0);
		}
	for (int64_t j = 0; j < bk->cob; j++)
		for (int64_t c = 0; c < bk->cib; c++)
			for (int t = 0; t < nt; t++) {
				int64_t kh = t / KW, kw = t % KW;
				KNode *wi = ix_add(
				    L, wb0, ix_c(L, j * bk->wos + c * bk->wcs + kh * KW + kw));
				wv[(j * bk->cib + c) * nt + t] =
				    lw_let(L, block, "wv", kir_load(L->p, L->k, bk->wb, wi));
			}
	blk_loop(L, bk, block, row, xr, wv, tp, nt, t0, t1);
}

/* every epilogue operand is either full or broadcast over all of dims [from, 5), so those
 * dims can be read as one flattened dim */
static int
flat_ok(Lower *L, const Type *ot, int from)
{
	for (uint32_t i = 1; i < L->g->nnodes; i++) {
		const Node *nd = &L->m->nodes[L->g->nodes[i]];
		for (int j = 0; j < nd->nin; j++) {
			const Type *vt = lw_type(L, nd->in[j]);
			int full = 1, one = 1;
			for (int d = from; d < 5; d++) {
				int vd = d - (ot->rank - vt->rank);
				int64_t e = vd < 0 ? 1 : vt->dims[vd];
				full &= e == ot->dims[d];
				one &= e == 1;
			}
			if (!full && !one)
				return 0;
		}
	}
	return 1;
}

/* conv3d, blocked.  Parallel over (n, od, tile, co block). */
static int
conv_blocked(Lower *L, const Conv *cv0, ValueId accv)
{
	Conv cvv = *cv0, *cv = &cvv;
	const Type *ot = lw_type(L, cv->out);
	int pw = 1, plane, flat;
	for (int a = 0; a < 3; a++)
		pw &= cv->k[a] == 1 && cv->s[a] == 1 && cv->p[a] == 0;
	pw = pw && flat_ok(L, ot, 2);
	if (pw) { /* [D, H, W] -> [1, 1, D*H*W] */
		cv->W = cv->OW = cv->D * cv->H * cv->W;
		cv->D = cv->H = cv->OD = cv->OH = 1;
	}
	plane = !pw && cv->s[1] == 1 && cv->s[2] == 1 && cv->OW == cv->W &&
	        cv->k[1] * cv->k[2] <= CONV_TAPS && flat_ok(L, ot, 3);
	flat = pw || plane;
	int64_t K3 = cv->k[0] * cv->k[1] * cv->k[2], KW = cv->k[2];
	int64_t taps = plane ? cv->k[1] * KW : KW;
	Blk bk = {0};
	bk.ob = lw_outbuf(L, accv), bk.xb = lw_buf(L, cv->x), bk.wb = lw_buf(L, cv->w);
	bk.cob = divisor_le(
	    cv->cog, taps >= CONV_TAPS / 4 ? (CONV_TAPS / taps > 0 ? CONV_TAPS / taps : 1) : 4);
	bk.cib =
	    divisor_le(cv->cig, CONV_FMAS / (bk.cob * taps) > 0 ? CONV_FMAS / (bk.cob * taps) : 1);
	bk.ostr = cv->OD * cv->OH * cv->OW;
	bk.xcs = cv->D * cv->H * cv->W;
	bk.wos = cv->cig * K3, bk.wcs = K3;
	bk.sw = cv->s[2];
	bk.plane = plane;
	bk.OW = cv->OW, bk.OH = cv->OH;
	int64_t rowlen = plane ? cv->OH * cv->OW : cv->OW, ntile = 1;
	if ((pw || plane) && rowlen > ROW_TILE && !(plane && ROW_TILE % cv->OW))
		ntile = (rowlen + ROW_TILE - 1) / ROW_TILE;
	int64_t dims[4] = {cv->N, cv->OD, ntile, cv->Co / bk.cob};
	KNode *idx[4], *oh, *cb, *kd, *kh;
	KNode *body = lw_nest(L, dims, 4, 0, idx);
	KNode *n = idx[0], *od = idx[1], *co0 = lw_let(L, body, "co0", ix_mul(L, idx[3], bk.cob));
	KNode *t0 = ix_c(L, 0), *t1 = ix_c(L, rowlen);
	if (ntile > 1) {
		t0 = lw_let(L, body, "t0", ix_mul(L, idx[2], ROW_TILE));
		t1 = lw_let(
		    L, body, "t1",
		    kir_bin(L->p, KB_MIN, ix_add(L, t0, ix_c(L, ROW_TILE)), ix_c(L, rowlen)));
	}
	KNode *grp = lw_let(L, body, "g", kir_bin(L->p, KB_DIV, co0, ix_c(L, cv->cog)));
	KNode *ohl =
	    lw_loop(L, body, "oh", ix_c(L, 0), ix_c(L, plane ? 1 : cv->OH), LOOP_SERIAL, &oh);
	body = ohl->body;

	/* row = ((n*Co + co0)*OD + od)*OH*OW + oh*OW */
	KNode *nc = ix_add(L, ix_mul(L, n, cv->Co), co0);
	KNode *row = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, nc, cv->OD), od), cv->OH), oh);
	row = lw_let(L, body, "row", ix_mul(L, row, cv->OW));

	KNode *ow, *bias[64];
	for (int64_t j = 0; j < bk.cob; j++) {
		KNode *co = ix_add(L, co0, ix_c(L, j));
		bias[j] = cv->b ? lw_let(L, body, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), co))
		                : kir_f32(L->p, 0);
	}
	KNode *lp = lw_loop(L, body, "p", t0, t1, LOOP_VECTOR, &ow);
	for (int64_t j = 0; j < bk.cob; j++)
		kir_append(L->p, lp->body,
		           kir_store(L->p, bk.ob,
		                     ix_add(L, ix_add(L, row, ow), ix_c(L, j * bk.ostr)), bias[j]));

	KNode *cl = lw_loop(L, body, "cb", ix_c(L, 0), ix_c(L, cv->cig / bk.cib), LOOP_SERIAL, &cb);
	KNode *ci = lw_let(L, cl->body, "ci", ix_mul(L, cb, bk.cib));
	KNode *cin = ix_add(L, ix_mul(L, grp, cv->cig), ci);
	KNode *xc =
	    lw_let(L, cl->body, "xc", ix_mul(L, ix_add(L, ix_mul(L, n, cv->Ci), cin), bk.xcs));
	bk.n = n, bk.cin = lw_let(L, cl->body, "cin", cin);
	KNode *wc =
	    lw_let(L, cl->body, "wc", ix_mul(L, ix_add(L, ix_mul(L, co0, cv->cig), ci), K3));
	KNode *dl = lw_loop(L, cl->body, "kd", ix_c(L, 0), ix_c(L, cv->k[0]), LOOP_SERIAL, &kd);
	KNode *id = lw_let(L, dl->body, "id",
	                   ix_add(L, ix_add(L, ix_mul(L, od, cv->s[0]), ix_mul(L, kd, cv->dl[0])),
	                          ix_c(L, -cv->p[0])));
	KNode *ifd = kir_if(L->p, lw_inrange(L, id, cv->D));
	kir_append(L->p, dl->body, ifd);
	if (plane) {
		KNode *xr = lw_let(L, ifd->body, "xr", ix_add(L, xc, ix_mul(L, id, cv->H * cv->W)));
		KNode *wr = lw_let(L, ifd->body, "wr", ix_add(L, wc, ix_mul(L, kd, cv->k[1] * KW)));
		blk_taps(L, cv, &bk, ifd->body, row, xr, wr, (int)cv->k[1], t0, t1);
	} else {
		KNode *hl =
		    lw_loop(L, ifd->body, "kh", ix_c(L, 0), ix_c(L, cv->k[1]), LOOP_SERIAL, &kh);
		KNode *ih =
		    lw_let(L, hl->body, "ih",
		           ix_add(L, ix_add(L, ix_mul(L, oh, cv->s[1]), ix_mul(L, kh, cv->dl[1])),
		                  ix_c(L, -cv->p[1])));
		KNode *ifh = kir_if(L->p, lw_inrange(L, ih, cv->H));
		kir_append(L->p, hl->body, ifh);
		KNode *xr = ix_add(L, xc, ix_mul(L, ix_add(L, ix_mul(L, id, cv->H), ih), cv->W));
		xr = lw_let(L, ifh->body, "xr", xr);
		KNode *wr = ix_add(L, wc, ix_mul(L, ix_add(L, ix_mul(L, kd, cv->k[1]), kh), KW));
		wr = lw_let(L, ifh->body, "wr", wr);
		blk_taps(L, cv, &bk, ifh->body, row, xr, wr, 1, t0, t1);
	}

	/* the epilogue over the finished rows */
	for (int64_t j = 0; j < bk.cob; j++) {
		KNode *el = lw_loop(L, body, "p", t0, t1, LOOP_VECTOR, &ow);
		KNode *co = lw_let(L, el->body, "co", ix_add(L, co0, ix_c(L, j)));
		KNode *oi = ix_add(L, ix_add(L, row, ow), ix_c(L, j * bk.ostr));
		KNode *v = lw_let(L, el->body, "v", kir_load(L->p, L->k, bk.ob, oi));
		Coord c;
		if (flat) { /* (n, co, od?, flattened rest) */
			int f = pw ? 2 : 3;
			memset(&c, 0, sizeof c);
			c.t = ot;
			c.idx[c.n] = n, c.first[c.n] = c.last[c.n] = 0, c.n++;
			c.idx[c.n] = co, c.first[c.n] = c.last[c.n] = 1, c.n++;
			if (!pw)
				c.idx[c.n] = od, c.first[c.n] = c.last[c.n] = 2, c.n++;
			c.idx[c.n] = ow, c.first[c.n] = (int8_t)f, c.last[c.n] = 4, c.n++;
		} else {
			KNode *oidx[5] = {n, co, od, oh, ow};
			coord_full(&c, ot, oidx);
		}
		if (lw_output(L, el->body, &c, v) < 0)
			return -1;
	}
	return 0;
}

/* ---- the register-resident micro-kernel (emit_llvm_vec.c widens its lane loop) ----
 * A block of VL consecutive output positions x COB output channels: the COB*VL/16
 * accumulator vectors are variables of a LOOP_VECTOR "lane" loop of constant trip count VL
 * whose body holds the whole reduction (ci, kd, [kh,] taps), so the CPU emitter keeps them
 * in vector registers; each x vector (masked at the borders) is loaded once per tap and used
 * by the COB channels, the weights are uniform scalar loads (broadcasts).  The raw sums are
 * stored once; the epilogue then runs over the finished rows (L1-resident).  Forms as in
 * conv_blocked: plane (the lanes walk the flattened (oh, ow) plane; unit stride in h and w,
 * OW == W), volume (a plane-form conv of <= 16 positions: the lanes walk (od, oh, ow), kd's
 * validity is a lane mask), pointwise (1^3: the flattened volume) and row (the lanes walk ow
 * in blocks of VL; strides and dilation; x loads of stride sw). */

/* MK_CLTILE: at most this many bytes of transpose tiles (the cl form's scratch) */
enum { MK_ACC = 16, MK_PAR = 24, MK_TAPS = 9, MK_TILE = 1024, MK_CLTILE = 4 << 20 };

typedef struct {
	const Conv *cv;
	int plane, pw, vol; /* vol: the lanes walk the whole (od, oh, ow) volume (plane too) */
	int cl;             /* channel lanes (mk_block_cl) */
	int64_t VL, cob, rowlen, K3, ostr, xcs;
	int64_t ts; /* weight tap stride: cob when packed (wpack), else 1 */
	int ob, xb, wb;
	int pro;     /* apply the load prologue to each x loaded (0: none, or xb holds it) */
	int tb;      /* cl: the transpose tile buffer (0: store the sums with a scatter) */
	KNode *tofs; /* cl: this iteration's tile, [R][COB] */
	KNode *n, *od, *co0, *grp;
} Mk;

/* the reduction of one block of positions p0 + [0, VL) of the row at out index row */
static void
mk_block(Lower *L, const Mk *m, KNode *block, KNode *row, KNode *p0, KNode *oh, KNode **bias)
{
	const Conv *cv = m->cv;
	int64_t KH = cv->k[1], KW = cv->k[2];
	KNode *l, *ci, *kd, *kh, *p, *ow, *ohv = oh;
	int acc[64];
	KNode *ll = lw_loop(L, block, "lane", ix_c(L, 0), ix_c(L, m->VL), LOOP_VECTOR, &l);
	KNode *b = ll->body;
	p = lw_let(L, b, "pos", ix_add(L, p0, l));
	/* the masks' lane arithmetic in i32: half the vector registers of i64 */
	ow = lw_let(L, b, "p32", kir_cast(L->p, KT_I32, p));
	KNode *odv = NULL;
	if (m->vol)
		odv = lw_let(L, b, "od", kir_bin(L->p, KB_DIV, ow, i32_c(L, cv->OH * cv->OW)));
	if (m->plane) {
		ohv = kir_bin(L->p, KB_DIV, ow, i32_c(L, cv->OW));
		ohv = lw_let(L, b, "oh",
		             m->vol ? kir_bin(L->p, KB_REM, ohv, i32_c(L, cv->OH)) : ohv);
		ow = lw_let(L, b, "ow", kir_bin(L->p, KB_REM, ow, i32_c(L, cv->OW)));
	}
	KNode *valid = NULL, *ohf = NULL, *ohl = NULL;
	int64_t lim = m->plane || m->pw ? m->rowlen : cv->OW;
	if (m->plane && !m->vol) { /* the block's first and last row */
		ohf = lw_let(L, b, "ohf", kir_bin(L->p, KB_DIV, p0, ix_c(L, cv->OW)));
		KNode *pl =
		    kir_bin(L->p, KB_MIN, ix_add(L, p0, ix_c(L, m->VL - 1)), ix_c(L, lim - 1));
		ohl = lw_let(L, b, "ohl", kir_bin(L->p, KB_DIV, pl, ix_c(L, cv->OW)));
	}
	if (lim % m->VL)
		valid = lw_let(L, b, "valid",
		               kir_bin(L->p, KB_LT, kir_cast(L->p, KT_I32, p), i32_c(L, lim)));
	for (int64_t j = 0; j < m->cob; j++) {
		acc[j] = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, b, kir_let(L->p, L->k, acc[j], bias[j]));
	}
	KNode *cl = lw_loop(L, b, "ci", ix_c(L, 0), ix_c(L, cv->cig), LOOP_SERIAL, &ci);
	KNode *cin = lw_let(L, cl->body, "cin", ix_add(L, ix_mul(L, m->grp, cv->cig), ci));
	KNode *xc =
	    lw_let(L, cl->body, "xc", ix_mul(L, ix_add(L, ix_mul(L, m->n, cv->Ci), cin), m->xcs));
	KNode *wc =
	    lw_let(L, cl->body, "wc",
	           ix_add(L, ix_mul(L, m->co0, cv->cig * m->K3), ix_mul(L, ci, m->K3 * m->ts)));
	if (m->pro) /* the channel's chain operands, once */
		lw_prologue_hoist(L, cl->body, m->n, cin);
	KNode *dl, *id, *tb, *xr, *wr, *hcond = NULL, *dcond = NULL, *ihb = NULL;
	if (m->vol) { /* kd valid for some od; which lanes: dcond */
		int64_t klo = -floordiv(cv->OD - 1 - cv->p[0], cv->dl[0]);
		int64_t khi = floordiv(cv->D - 1 + cv->p[0], cv->dl[0]) + 1;
		klo = klo < 0 ? 0 : klo, khi = khi > cv->k[0] ? cv->k[0] : khi;
		dl = lw_loop(L, cl->body, "kd", ix_c(L, klo), ix_c(L, khi), LOOP_SERIAL, &kd);
		tb = dl->body;
		id = lw_let(L, tb, "dd", ix_add(L, ix_mul(L, kd, cv->dl[0]), ix_c(L, -cv->p[0])));
		KNode *idv = kir_bin(L->p, KB_ADD, odv, kir_cast(L->p, KT_I32, id));
		dcond = lw_let(L, tb, "dok",
		               kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, idv, i32_c(L, 0)),
		                       kir_bin(L->p, KB_LT, idv, i32_c(L, cv->D))));
	} else {
		dl = lw_loop(L, cl->body, "kd", ix_c(L, 0), ix_c(L, cv->k[0]), LOOP_SERIAL, &kd);
		id = lw_let(L, dl->body, "id",
		            ix_add(L,
		                   ix_add(L, ix_mul(L, m->od, cv->s[0]), ix_mul(L, kd, cv->dl[0])),
		                   ix_c(L, -cv->p[0])));
		KNode *ifd = kir_if(L->p, lw_inrange(L, id, cv->D));
		kir_append(L->p, dl->body, ifd);
		tb = ifd->body;
	}
	int nkh = (int)KH;
	if (m->plane || m->pw) {
		xr = lw_let(L, tb, "xr", ix_add(L, xc, ix_mul(L, id, cv->H * cv->W)));
		wr = lw_let(L, tb, "wr", ix_add(L, wc, ix_mul(L, kd, KH * KW * m->ts)));
		if (m->plane && KH * KW > MK_TAPS) { /* a kh loop: smaller bodies, fewer spills */
			/* only the kh that are valid for some oh (small planes, large pads) */
			int64_t klo = -floordiv(cv->OH - 1 - cv->p[1], cv->dl[1]);
			int64_t khi = floordiv(cv->H - 1 + cv->p[1], cv->dl[1]) + 1;
			klo = klo < 0 ? 0 : klo, khi = khi > KH ? KH : khi;
			KNode *lo = ix_c(L, klo), *hi = ix_c(L, khi);
			if (cv->dl[1] == 1 && ohl) { /* and for some oh of the block's rows */
				lo = kir_bin(L->p, KB_MAX, lo,
				             ix_add(L, ix_c(L, cv->p[1]), ix_mul(L, ohl, -1)));
				hi = kir_bin(
				    L->p, KB_MIN, hi,
				    ix_add(L, ix_c(L, cv->H + cv->p[1]), ix_mul(L, ohf, -1)));
			}
			KNode *hl = lw_loop(L, tb, "kh", lo, hi, LOOP_SERIAL, &kh);
			tb = hl->body;
			KNode *dh = lw_let(L, tb, "dh",
			                   ix_add(L, ix_mul(L, kh, cv->dl[1]), ix_c(L, -cv->p[1])));
			KNode *ih = kir_bin(L->p, KB_ADD, ohv, kir_cast(L->p, KT_I32, dh));
			hcond = kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, ih, i32_c(L, 0)),
			                kir_bin(L->p, KB_LT, ih, i32_c(L, cv->H)));
			hcond = lw_let(L, tb, "hok", hcond);
			xr = lw_let(L, tb, "xh", ix_add(L, xr, ix_mul(L, dh, cv->W)));
			wr = lw_let(L, tb, "wh", ix_add(L, wr, ix_mul(L, kh, KW * m->ts)));
			nkh = 1;
		}
	} else if (KH * KW <= MK_TAPS && !cg_knob("SEGC_CONV_KHLOOP")) {
		/* row form, small kernels: kh unrolled too (oh is uniform: each kh's validity is
		 * a branch, not a mask), so one body holds up to 9 taps */
		ihb = lw_let(L, tb, "ihb", ix_add(L, ix_mul(L, oh, cv->s[1]), ix_c(L, -cv->p[1])));
		xr = lw_let(L, tb, "xr",
		            ix_add(L, xc, ix_mul(L, ix_add(L, ix_mul(L, id, cv->H), ihb), cv->W)));
		wr = lw_let(L, tb, "wr", ix_add(L, wc, ix_mul(L, kd, KH * KW * m->ts)));
	} else {
		KNode *hl = lw_loop(L, tb, "kh", ix_c(L, 0), ix_c(L, KH), LOOP_SERIAL, &kh);
		KNode *ih =
		    lw_let(L, hl->body, "ih",
		           ix_add(L, ix_add(L, ix_mul(L, oh, cv->s[1]), ix_mul(L, kh, cv->dl[1])),
		                  ix_c(L, -cv->p[1])));
		KNode *ifh = kir_if(L->p, lw_inrange(L, ih, cv->H));
		kir_append(L->p, hl->body, ifh);
		tb = ifh->body;
		xr = lw_let(L, tb, "xr",
		            ix_add(L, xc, ix_mul(L, ix_add(L, ix_mul(L, id, cv->H), ih), cv->W)));
		wr = lw_let(L, tb, "wr",
		            ix_add(L, wc, ix_mul(L, ix_add(L, ix_mul(L, kd, KH), kh), KW * m->ts)));
		nkh = 1;
	}
	KNode *tb0 = tb;
	for (int kh_ = 0; kh_ < nkh; kh_++)
		for (int64_t kw = 0; kw < KW; kw++) {
			if (ihb && kw == 0) { /* this kh's taps run when ih is inside */
				KNode *ih = ix_add(L, ihb, ix_c(L, kh_ * cv->dl[1]));
				KNode *ifh = kir_if(L->p, lw_inrange(L, ih, cv->H));
				kir_append(L->p, tb0, ifh);
				tb = ifh->body;
			}
			int64_t ow_ = kw * cv->dl[2] - cv->p[2], oh_ = kh_ * cv->dl[1] - cv->p[1];
			int64_t wlo = ow_ >= 0 ? 0 : floordiv(-ow_ + cv->s[2] - 1, cv->s[2]);
			int64_t whi = floordiv(cv->W - 1 - ow_, cv->s[2]) + 1;
			KNode *cond = dcond ? band(L, valid, dcond) : valid;
			if (wlo > 0)
				cond = band(L, cond, kir_bin(L->p, KB_GE, ow, i32_c(L, wlo)));
			if (whi < cv->OW)
				cond = band(L, cond, kir_bin(L->p, KB_LT, ow, i32_c(L, whi)));
			int64_t off = ow_;
			if (wlo >= whi ||
			    (m->plane && !hcond && (oh_ + cv->OH <= 0 || oh_ >= cv->H)))
				continue; /* never inside the input: contributes nothing */
			if (hcond) {
				cond = band(L, cond, hcond);
			} else if (m->plane) {
				int64_t hlo = oh_ >= 0 ? 0 : -oh_, hhi = cv->H - oh_;
				if (hlo > 0)
					cond =
					    band(L, cond, kir_bin(L->p, KB_GE, ohv, i32_c(L, hlo)));
				if (hhi < cv->OH)
					cond =
					    band(L, cond, kir_bin(L->p, KB_LT, ohv, i32_c(L, hhi)));
				off += oh_ * cv->W;
			} else if (ihb) {
				off += kh_ * cv->dl[1] * cv->W;
			}
			KNode *xi = ix_add(L, ix_add(L, xr, ix_mul(L, p, cv->s[2])), ix_c(L, off));
			KNode *ld = kir_load(L->p, L->k, m->xb, xi), *xv;
			if (cond) { /* a masked load; the prologue on the elements inside only */
				int v = kir_var(L->p, L->k, KT_F32, "xv");
				kir_append(L->p, tb, kir_let(L->p, L->k, v, kir_f32(L->p, 0)));
				KNode *ifl = kir_if(L->p, cond);
				kir_append(L->p, tb, ifl);
				ld = m->pro ? lw_prologue(L, ifl->body, m->n, cin, ld) : ld;
				kir_append(L->p, ifl->body, kir_assign(L->p, v, ld));
				xv = kir_ref(L->p, L->k, v);
			} else {
				ld = m->pro ? lw_prologue(L, tb, m->n, cin, ld) : ld;
				xv = lw_let(L, tb, "xv", ld);
			}
			for (int64_t j = 0; j < m->cob; j++) {
				KNode *wi = ix_add(L, wr,
				                   ix_c(L, (m->ts > 1 ? j : j * cv->cig * m->K3) +
				                               (kh_ * KW + kw) * m->ts));
				KNode *w = kir_load(L->p, L->k, m->wb, wi);
				KNode *s = kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc[j]),
				                   kir_bin(L->p, KB_MUL, w, xv));
				kir_append(L->p, tb, kir_assign(L->p, acc[j], s));
			}
		}
	lw_prologue_unhoist(L);
	KNode *sb = b;
	if (valid) {
		KNode *ifv = kir_if(L->p, valid);
		kir_append(L->p, b, ifv);
		sb = ifv->body;
	}
	for (int64_t j = 0; j < m->cob; j++)
		kir_append(L->p, sb,
		           kir_store(L->p, m->ob,
		                     ix_add(L, ix_add(L, row, p), ix_c(L, j * m->ostr)),
		                     kir_ref(L->p, L->k, acc[j])));
}

/* The KW taps of one (kd, kh) of mk_block_cl: acc[r] += wpack[wr + kw*COB] * x[xr + iw],
 * iw = (ow0 + r)*sw + kw*dw - pw, inside the input only.  In x order: the KW weight vectors
 * first, then each x element once (one broadcast) for every (r, kw) that reads it; in tap
 * order LLVM shared the broadcasts across taps itself and ran out of registers (copies and
 * spills in the k3 body). */
static void
mk_cl_taps(Lower *L, const Mk *m, KNode *tb, KNode *xr, KNode *wr, const int *acc, int64_t ow0,
           int64_t R, KNode *cin)
{
	const Conv *cv = m->cv;
	int64_t KW = cv->k[2], s = cv->s[2], d = cv->dl[2], pw = cv->p[2];
	KNode *wv[64] = {0};
	int64_t lo = cv->W, hi = -1;
	for (int64_t kw = 0; kw < KW; kw++)
		for (int64_t r = 0; r < R; r++) {
			int64_t iw = (ow0 + r) * s + kw * d - pw;
			if (iw < 0 || iw >= cv->W)
				continue; /* outside the input: contributes nothing */
			if (!wv[kw])
				wv[kw] = lw_let(L, tb, "wv",
				                kir_load(L->p, L->k, m->wb,
				                         ix_add(L, wr, ix_c(L, kw * m->cob))));
			lo = iw < lo ? iw : lo, hi = iw > hi ? iw : hi;
		}
	for (int64_t iw = lo; iw <= hi; iw++) {
		KNode *xv = NULL;
		for (int64_t kw = 0; kw < KW; kw++) {
			int64_t t = iw + pw - kw * d, r = t / s - ow0;
			if (t < 0 || t % s || r < 0 || r >= R)
				continue;
			if (!xv) { /* a uniform scalar (a broadcast), through the prologue */
				KNode *ld = kir_load(L->p, L->k, m->xb, ix_add(L, xr, ix_c(L, iw)));
				ld = m->pro ? lw_prologue(L, tb, m->n, cin, ld) : ld;
				xv = lw_let(L, tb, "xv", ld);
			}
			KNode *sum = kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc[r]),
			                     kir_bin(L->p, KB_MUL, wv[kw], xv));
			kir_append(L->p, tb, kir_assign(L->p, acc[r], sum));
		}
	}
}

/* The channel-lane block (cl): the lanes are COB = 16 output channels co0 + lane, the
 * accumulators the R positions ow0 + r of a row, ow0 a constant, so whether a tap is inside
 * the input is known here: border taps are left out, not masked.  The weights are packed
 * (mk_pack: one vector load per tap), x is a broadcast scalar (mk_cl_taps); the sums are
 * stored to the iteration's transpose tile as [R][16] (contiguous vector stores; the
 * epilogue reads it transposed), or without a tile at a stride of the channel plane
 * (scatters: 10% of the strided k3 conv's time).
 *   for lane: acc[r] = bias; for ci, kd (if id inside), kh (if ih inside), kw:
 *     wv = wpack[.., t, lane]; acc[r] += wv * x[.., (ow0 + r)*sw + kw*dw - pw]  (inside only)
 *   tile[r*16 + lane] = acc[r] */
static void
mk_block_cl(Lower *L, const Mk *m, KNode *block, KNode *row, KNode *oh, int64_t ow0, int64_t R)
{
	const Conv *cv = m->cv;
	int64_t KH = cv->k[1], KW = cv->k[2];
	KNode *l, *ci, *kd, *kh;
	int acc[16];
	KNode *ll = lw_loop(L, block, "lane", ix_c(L, 0), ix_c(L, m->cob), LOOP_VECTOR, &l);
	KNode *b = ll->body, *bias = kir_f32(L->p, 0);
	if (cv->b)
		bias =
		    lw_let(L, b, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), ix_add(L, m->co0, l)));
	for (int64_t r = 0; r < R; r++) {
		acc[r] = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, b, kir_let(L->p, L->k, acc[r], bias));
	}
	KNode *cl = lw_loop(L, b, "ci", ix_c(L, 0), ix_c(L, cv->cig), LOOP_SERIAL, &ci);
	KNode *cin = lw_let(L, cl->body, "cin", ix_add(L, ix_mul(L, m->grp, cv->cig), ci));
	KNode *xc =
	    lw_let(L, cl->body, "xc", ix_mul(L, ix_add(L, ix_mul(L, m->n, cv->Ci), cin), m->xcs));
	KNode *wc =
	    lw_let(L, cl->body, "wc",
	           ix_add(L, ix_mul(L, m->co0, cv->cig * m->K3), ix_mul(L, ci, m->K3 * m->cob)));
	if (m->pro)
		lw_prologue_hoist(L, cl->body, m->n, cin);
	KNode *dl = lw_loop(L, cl->body, "kd", ix_c(L, 0), ix_c(L, cv->k[0]), LOOP_SERIAL, &kd);
	KNode *id =
	    lw_let(L, dl->body, "id",
	           ix_add(L, ix_add(L, ix_mul(L, m->od, cv->s[0]), ix_mul(L, kd, cv->dl[0])),
	                  ix_c(L, -cv->p[0])));
	KNode *ifd = kir_if(L->p, lw_inrange(L, id, cv->D));
	kir_append(L->p, dl->body, ifd);
	KNode *hl = lw_loop(L, ifd->body, "kh", ix_c(L, 0), ix_c(L, KH), LOOP_SERIAL, &kh);
	KNode *ih = lw_let(L, hl->body, "ih",
	                   ix_add(L, ix_add(L, ix_mul(L, oh, cv->s[1]), ix_mul(L, kh, cv->dl[1])),
	                          ix_c(L, -cv->p[1])));
	KNode *ifh = kir_if(L->p, lw_inrange(L, ih, cv->H));
	kir_append(L->p, hl->body, ifh);
	KNode *tb = ifh->body;
	KNode *xr = lw_let(L, tb, "xr",
	                   ix_add(L, xc, ix_mul(L, ix_add(L, ix_mul(L, id, cv->H), ih), cv->W)));
	KNode *wr = lw_let(
	    L, tb, "wr",
	    ix_add(L, ix_add(L, wc, ix_mul(L, ix_add(L, ix_mul(L, kd, KH), kh), KW * m->cob)), l));
	mk_cl_taps(L, m, tb, xr, wr, acc, ow0, R, cin);
	lw_prologue_unhoist(L);
	for (int64_t r = 0; r < R; r++) {
		KNode *oi =
		    m->tb ? ix_add(L, m->tofs, ix_add(L, l, ix_c(L, (ow0 + r) * m->cob)))
		          : ix_add(L, ix_add(L, row, ix_mul(L, l, m->ostr)), ix_c(L, ow0 + r));
		kir_append(L->p, b,
		           kir_store(L->p, m->tb ? m->tb : m->ob, oi, kir_ref(L->p, L->k, acc[r])));
	}
}

/* the epilogue over out[row + j*ostr + [t0, t1)] at output coordinate (n, co, od, oh, ow) */
static int
mk_epilogue(Lower *L, const Mk *m, KNode *block, KNode *row, KNode *oh, KNode *t0, KNode *t1)
{
	const Type *ot = lw_type(L, m->cv->out);
	KNode *ow, *j;
	/* one loop over the channels, not one copy per channel: the same work, a COB-th of the
	 * code for LLVM to vectorize (a large share of the compile time) */
	KNode *jl = lw_loop(L, block, "j", ix_c(L, 0), ix_c(L, m->cob), LOOP_SERIAL, &j);
	{
		KNode *el = lw_loop(L, jl->body, "p", t0, t1, LOOP_VECTOR, &ow);
		KNode *co = lw_let(L, el->body, "co", ix_add(L, m->co0, j));
		KNode *oi = ix_add(L, ix_add(L, row, ow), ix_mul(L, j, m->ostr));
		if (m->tb) /* the sums' transpose: a gather from the L1-resident tile */
			oi = ix_add(L, m->tofs, ix_add(L, ix_mul(L, ow, m->cob), j));
		KNode *v =
		    lw_let(L, el->body, "v", kir_load(L->p, L->k, m->tb ? m->tb : m->ob, oi));
		Coord c;
		if (m->plane || m->pw) { /* (n, co, od?, flattened rest) */
			memset(&c, 0, sizeof c);
			c.t = ot;
			c.idx[c.n] = m->n, c.first[c.n] = c.last[c.n] = 0, c.n++;
			c.idx[c.n] = co, c.first[c.n] = c.last[c.n] = 1, c.n++;
			if (!m->pw && !m->vol)
				c.idx[c.n] = m->od, c.first[c.n] = c.last[c.n] = 2, c.n++;
			c.idx[c.n] = ow, c.first[c.n] = (int8_t)(m->pw || m->vol ? 2 : 3),
			c.last[c.n] = 4, c.n++;
		} else {
			KNode *oidx[5] = {m->n, co, m->od, oh, ow};
			coord_full(&c, ot, oidx);
		}
		if (lw_output(L, el->body, &c, v) < 0)
			return -1;
	}
	return 0;
}

/* Packs the weights into scratch, a first parallel loop of the kernel, so that the COB
 * weights of one tap are adjacent and a block's reduction reads them sequentially:
 *   wpack[((co0*cig + ci)*K3 + t)*COB + j] = w[(co0 + j)*cig*K3 + ci*K3 + t]   (co0 = b*COB) */
static void
mk_pack(Lower *L, Mk *m)
{
	const Conv *cv = m->cv;
	int64_t per = cv->cig * m->K3;
	int pb = lw_scratch(L, DT_F32, cv->Co * per, "wpack");
	int64_t dims[2] = {cv->Co / m->cob, per};
	KNode *idx[2], *j;
	KNode *body = lw_nest(L, dims, 2, 0, idx);
	KNode *jl = lw_loop(L, body, "j", ix_c(L, 0), ix_c(L, m->cob), LOOP_VECTOR, &j);
	KNode *src = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, idx[0], m->cob), j), per), idx[1]);
	KNode *dst = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, idx[0], per), idx[1]), m->cob), j);
	kir_append(L->p, jl->body, kir_store(L->p, pb, dst, kir_load(L->p, L->k, m->wb, src)));
	m->wb = pb, m->ts = m->cob;
}

/* 1 when e has operations the micro-kernel cannot apply per loaded x cheaply: exp, log,
 * tanh, erf, pow, sqrt, division (SiLU, sigmoid, GELU ...): per tap they are scalar calls on
 * uniform x (channel lanes) or keep the lane loop from being widened at all (a SiLU
 * prologue at 16^3 measured 13x slower) */
static int
pro_expensive(const KNode *e)
{
	if (!e)
		return 0;
	if (e->kind == K_unop && e->op != KU_NEG && e->op != KU_ABS && e->op != KU_NOT)
		return 1;
	if (e->kind == K_binop && (e->op == KB_POW || (e->op == KB_DIV && e->type == KT_F32)))
		return 1;
	if (pro_expensive(e->a) || pro_expensive(e->b) || pro_expensive(e->c) ||
	    pro_expensive(e->body))
		return 1;
	for (uint32_t i = 0; e->kind == K_block && i < e->nkids; i++)
		if (pro_expensive(e->kids[i]))
			return 1;
	return 0;
}

/* How the micro-kernel applies the load prologue: 1, once per element by a first loop into
 * scratch (pro_prepass), the default; 0, to every x it loads, with SEGC_PRO_PERLOAD=1 for
 * cheap chains.  Per load, each x element goes through the chain once per tap and output
 * channel block (27 x Co/16 times for k3): the conv measured 18% slower (inorm + ReLU + conv
 * 32 -> 32 at 32^3, where the separate normalize pass is 1.3%), whole graphs 6-26%; with
 * the first loop they run as fast as unfused (docs/performance.md). */
static int
pro_prepass_wanted(Lower *L, int xb)
{
	if (!cg_knob("SEGC_PRO_PERLOAD"))
		return 1;
	KNode *scratch = kir_block(L->p); /* the chain on a dummy x, never emitted */
	KNode *v =
	    lw_prologue(L, scratch, ix_c(L, 0), ix_c(L, 0), kir_load(L->p, L->k, xb, ix_c(L, 0)));
	return pro_expensive(scratch) || pro_expensive(v);
}

/* The load prologue applied once to every element of X by a first parallel loop of the
 * kernel, into scratch (X's size); returns the buffer the micro-kernel reads instead of X.
 * Padding stays 0: the forms mask the taps outside the input as without a prologue. */
static int
pro_prepass(Lower *L, const Conv *cv)
{
	int64_t dhw = cv->D * cv->H * cv->W, dims[3] = {cv->N, cv->Ci, dhw};
	int sb = lw_scratch(L, DT_F32, cv->N * cv->Ci * dhw, "xpro");
	KNode *idx[3];
	KNode *body = lw_nest(L, dims, 3, 1, idx);
	KNode *i = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, idx[0], cv->Ci), idx[1]), dhw), idx[2]);
	i = lw_let(L, body, "i", i);
	KNode *v = lw_prologue(L, body, idx[0], idx[1], kir_load(L->p, L->k, lw_buf(L, cv->x), i));
	kir_append(L->p, body, kir_store(L->p, sb, i, v));
	return sb;
}

static int
conv_mk(Lower *L, const Conv *cv0, ValueId accv)
{
	Conv cvv = *cv0, *cv = &cvv;
	const Type *ot = lw_type(L, cv->out);
	Mk m = {0};
	int pw = 1;
	for (int a = 0; a < 3; a++)
		pw &= cv->k[a] == 1 && cv->s[a] == 1 && cv->p[a] == 0;
	m.pw = pw = pw && flat_ok(L, ot, 2);
	if (pw) { /* [D, H, W] -> [1, 1, D*H*W] */
		cv->W = cv->OW = cv->D * cv->H * cv->W;
		cv->D = cv->H = cv->OD = cv->OH = 1;
	}
	m.plane = !pw && cv->s[1] == 1 && cv->s[2] == 1 && cv->OW == cv->W && flat_ok(L, ot, 3);
	/* small "same" volumes (deep levels, weight-bound): every weight read once per co block
	 * (at 4^3 the per-plane form with 16 channels per block measured faster) */
	m.vol = m.plane && cv->s[0] == 1 && cv->OD == cv->D && cv->OH == cv->H && cv->OD > 1 &&
	        cv->OD * cv->OH * cv->OW <= 16 && flat_ok(L, ot, 2);
	/* channel lanes: rows of 8..16 (one block of R = OW), 16 channels per block, >= 16
	 * input channels per group (fewer: the scattered stores cost more than the skipped
	 * border taps save); measured slower than the plane form with rows of 32 */
	int64_t R = cv->OW;
	m.cl = !pw && !m.vol && cv->cog % 16 == 0 && cv->cig >= 16 && R >= 8 && R <= 16 &&
	       cv->k[2] <= 64 && !cg_knob("SEGC_CONV_NOCL");
	if (m.cl)
		m.plane = 0;
	m.cv = cv;
	m.rowlen = m.plane || pw ? cv->OH * cv->OW * (m.vol ? cv->OD : 1) : cv->OW;
	m.VL = m.rowlen <= 8 ? 8 : m.rowlen <= 16 ? 16 : 32;
	int64_t nv = m.VL > 16 ? m.VL / 16 : 1;
	if (m.plane && !m.vol && cv->k[1] * cv->k[2] > MK_TAPS && cv->OW <= 16 && m.rowlen >= 16)
		m.VL = 16, nv = 1; /* blocks of whole rows: the kh loop skips more border taps */
	/* rows of >= 32: blocks of 16 x 16 channels with packed weights (the 16 weights of a
	 * tap in one cache line) measured 2-10% faster than 32 x 8 */
	int pk = m.plane && !m.vol && cv->OW >= 32 && divisor_le(cv->cog, 16) >= 8 &&
	         !cg_knob("SEGC_CONV_NOPACK");
	if (pk)
		m.VL = 16, nv = 1;
	m.cob = m.cl ? 16 : divisor_le(cv->cog, MK_ACC / nv);
	if (m.cob * nv < 4 && m.rowlen >= 64)
		m.VL = 64, nv = 4;
	m.K3 = cv->k[0] * cv->k[1] * cv->k[2];
	m.ostr = cv->OD * cv->OH * cv->OW;
	m.xcs = cv->D * cv->H * cv->W;
	m.ob = lw_outbuf(L, accv), m.xb = lw_buf(L, cv->x), m.wb = lw_buf(L, cv->w);
	m.ts = 1;
	m.pro = lw_has_prologue(L);
	if (m.pro && pro_prepass_wanted(L, m.xb)) /* once per element, into scratch */
		m.xb = pro_prepass(L, cv), m.pro = 0;
	if (m.cl || pk)
		mk_pack(L, &m);
	int64_t nblk = (m.rowlen + m.VL - 1) / m.VL,
	        par = cv->N * (m.vol ? 1 : cv->OD) * (cv->Co / m.cob);
	int64_t ntile = 1, bpt;
	if ((m.plane || pw) && par < MK_PAR)
		ntile = (MK_PAR + par - 1) / par;
	if (pw && m.rowlen / MK_TILE > ntile) /* x tiles that stay in L2 across co blocks */
		ntile = m.rowlen / MK_TILE;
	ntile = ntile > nblk ? nblk : ntile;
	bpt = (nblk + ntile - 1) / ntile;
	ntile = (nblk + bpt - 1) / bpt;

	int64_t dims[4] = {cv->N, m.vol ? 1 : cv->OD, ntile, cv->Co / m.cob};
	KNode *idx[4], *bi, *oh;
	KNode *body = lw_nest(L, dims, 4, 0, idx);
	m.n = idx[0], m.od = idx[1];
	m.co0 = lw_let(L, body, "co0", ix_mul(L, idx[3], m.cob));
	if (m.cl && par * m.cob * R * 4 <= MK_CLTILE && !cg_knob("SEGC_CONV_NOTILE")) {
		/* one tile per parallel iteration: the sums of a row are stored as [R][COB]
		 * (contiguous vector stores) and the epilogue reads them transposed (gathers from
		 * L1), instead of scattering each accumulator across the COB channel planes
		 * (measured 10% of the strided k3 conv's time) */
		KNode *flat =
		    ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, m.n, dims[1]), m.od), dims[2]), idx[2]);
		flat = ix_add(L, ix_mul(L, flat, dims[3]), idx[3]);
		m.tb = lw_scratch(L, DT_F32, par * m.cob * R, "cltile");
		m.tofs = lw_let(L, body, "tofs", ix_mul(L, flat, m.cob * R));
	}
	m.grp = lw_let(L, body, "g", kir_bin(L->p, KB_DIV, m.co0, ix_c(L, cv->cog)));
	KNode *bias[MK_ACC];
	for (int64_t j = 0; j < m.cob; j++) {
		KNode *co = ix_add(L, m.co0, ix_c(L, j));
		bias[j] = cv->b ? lw_let(L, body, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), co))
		                : kir_f32(L->p, 0);
	}
	KNode *nc = ix_add(L, ix_mul(L, m.n, cv->Co), m.co0);
	KNode *row0 = lw_let(L, body, "row0",
	                     ix_mul(L, ix_add(L, ix_mul(L, nc, cv->OD), m.od), cv->OH * cv->OW));
	if (m.plane || pw) {
		KNode *t0 = lw_let(L, body, "t0", ix_mul(L, idx[2], bpt * m.VL));
		KNode *t1 = lw_let(
		    L, body, "t1",
		    kir_bin(L->p, KB_MIN, ix_add(L, t0, ix_c(L, bpt * m.VL)), ix_c(L, m.rowlen)));
		KNode *bl = lw_loop(L, body, "blk", ix_c(L, 0), ix_c(L, bpt), LOOP_SERIAL, &bi);
		KNode *p0 = lw_let(L, bl->body, "p0", ix_add(L, t0, ix_mul(L, bi, m.VL)));
		KNode *ifb = kir_if(L->p, kir_bin(L->p, KB_LT, p0, ix_c(L, m.rowlen)));
		kir_append(L->p, bl->body, ifb);
		mk_block(L, &m, ifb->body, row0, p0, NULL, bias);
		return mk_epilogue(L, &m, body, row0, NULL, t0, t1);
	}
	KNode *ohl = lw_loop(L, body, "oh", ix_c(L, 0), ix_c(L, cv->OH), LOOP_SERIAL, &oh);
	KNode *row = lw_let(L, ohl->body, "row", ix_add(L, row0, ix_mul(L, oh, cv->OW)));
	if (m.cl) {
		mk_block_cl(L, &m, ohl->body, row, oh, 0, R);
		return mk_epilogue(L, &m, ohl->body, row, oh, ix_c(L, 0), ix_c(L, cv->OW));
	}
	KNode *bl = lw_loop(L, ohl->body, "blk", ix_c(L, 0), ix_c(L, nblk), LOOP_SERIAL, &bi);
	mk_block(L, &m, bl->body, row, lw_let(L, bl->body, "p0", ix_mul(L, bi, m.VL)), oh, bias);
	return mk_epilogue(L, &m, ohl->body, row, oh, ix_c(L, 0), ix_c(L, cv->OW));
}

/* Scalar form, shared by conv3d (transpose = 0) and conv_transpose3d (gather). */
static int
conv_scalar(Lower *L, const Conv *cv, int transpose)
{
	KNode *n, *co, *od, *oh, *ow, *ci, *k[3];
	KNode *o[3], *i[3];
	int64_t in[3] = {cv->D, cv->H, cv->W};
	const char *kn[3] = {"kd", "kh", "kw"}, *in_n[3] = {"id", "ih", "iw"};
	int xb = lw_buf(L, cv->x), wb = lw_buf(L, cv->w);
	KNode *body = conv_rows(L, cv, &n, &co, &od, &oh);
	KNode *lp = lw_loop(L, body, "ow", ix_c(L, 0), ix_c(L, cv->OW), LOOP_SERIAL, &ow);
	body = lp->body;
	o[0] = od, o[1] = oh, o[2] = ow;

	KNode *grp = lw_let(L, body, "g", kir_bin(L->p, KB_DIV, co, ix_c(L, cv->cog)));
	int acc = kir_var(L->p, L->k, KT_F32, "acc");
	KNode *init = cv->b ? kir_load(L->p, L->k, lw_buf(L, cv->b), co) : kir_f32(L->p, 0);
	kir_append(L->p, body, kir_let(L->p, L->k, acc, init));

	KNode *cl = lw_loop(L, body, "ci", ix_c(L, 0), ix_c(L, cv->cig), LOOP_SERIAL, &ci);
	KNode *blk = cl->body, *ok = NULL;
	for (int a = 0; a < 3; a++) {
		KNode *kl =
		    lw_loop(L, blk, kn[a], ix_c(L, 0), ix_c(L, cv->k[a]), LOOP_SERIAL, &k[a]);
		blk = kl->body;
		if (!transpose) {
			/* i = o*s - p + k*d */
			KNode *e = ix_add(L, ix_mul(L, o[a], cv->s[a]), ix_mul(L, k[a], cv->dl[a]));
			i[a] = lw_let(L, blk, in_n[a], ix_add(L, e, ix_c(L, -cv->p[a])));
			ok = band(L, ok, lw_inrange(L, i[a], in[a]));
			continue;
		}
		/* t = o + p - k*d; i = t / s when t >= 0, t % s == 0, i < in */
		KNode *t = ix_add(L, o[a], ix_c(L, cv->p[a]));
		t = ix_add(L, t, ix_mul(L, k[a], -cv->dl[a]));
		t = lw_let(L, blk, "t", t);
		KNode *tok = kir_bin(L->p, KB_GE, t, ix_c(L, 0));
		KNode *tc = kir_select(L->p, tok, t, ix_c(L, 0));
		if (cv->s[a] > 1) {
			KNode *rem = kir_bin(L->p, KB_REM, tc, ix_c(L, cv->s[a]));
			tok = band(L, tok, kir_bin(L->p, KB_EQ, rem, ix_c(L, 0)));
			tc = kir_bin(L->p, KB_DIV, tc, ix_c(L, cv->s[a]));
		}
		i[a] = lw_let(L, blk, in_n[a], tc);
		ok = band(L, ok, band(L, tok, kir_bin(L->p, KB_LT, i[a], ix_c(L, in[a]))));
	}
	KNode *ifk = kir_if(L->p, ok);
	kir_append(L->p, blk, ifk);
	KNode *cin, *wi;
	if (!transpose) {
		cin = ix_add(L, ix_mul(L, grp, cv->cig), ci);
		wi = ix_add(L, ix_mul(L, co, cv->cig), ci); /* w[co, ci, kd, kh, kw] */
	} else {
		cin = ix_add(L, ix_mul(L, grp, cv->cig), ci); /* w[cin, co % cog, kd, kh, kw] */
		KNode *col = kir_bin(L->p, KB_REM, co, ix_c(L, cv->cog));
		wi = ix_add(L, ix_mul(L, cin, cv->cog), col);
	}
	for (int a = 0; a < 3; a++)
		wi = ix_add(L, ix_mul(L, wi, cv->k[a]), k[a]);
	KNode *xi = ix_add(L, ix_mul(L, n, cv->Ci), cin);
	for (int a = 0; a < 3; a++)
		xi = ix_add(L, ix_mul(L, xi, in[a]), i[a]);
	/* inside the input: the load prologue (if any) applies */
	KNode *xv = lw_prologue(L, ifk->body, n, cin, kir_load(L->p, L->k, xb, xi));
	KNode *prod = kir_bin(L->p, KB_MUL, xv, kir_load(L->p, L->k, wb, wi));
	kir_append(L->p, ifk->body,
	           kir_assign(L->p, acc, kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc), prod)));
	KNode *oidx[5] = {n, co, od, oh, ow};
	Coord c;
	coord_full(&c, lw_type(L, cv->out), oidx);
	return lw_output(L, body, &c, kir_ref(L->p, L->k, acc));
}

/* root: conv3d with stride, pad, dilation, groups, optional bias */
int
tmpl_conv(Lower *L)
{
	Conv cv;
	ValueId accv;

	lw_conv_shape(L, &cv);
	touch_inputs(L);
	accv = acc_value(L);
	if (cg_knob("SEGC_CONV_SCALAR")) /* A/B and tests: the scalar form */
		return conv_scalar(L, &cv, 0);
	if (!L->p->gpu) { /* Winograd F(2x2x2, 3x3x3) where it applies */
		int rc = tmpl_conv_wino(L, &cv, accv);
		if (rc != 1)
			return rc;
	}
	if (accv && !lw_out_aliases_input(L) && !cg_knob("SEGC_CONV_OLD"))
		return conv_mk(L, &cv, accv);
	if (accv && !lw_out_aliases_input(L) && cv.k[2] <= 16)
		return conv_blocked(L, &cv, accv);
	return conv_scalar(L, &cv, 0);
}

/* ---- conv_transpose3d, kernel == stride (pad 0, dilation 1, output_padding 0) ----
 * Every output voxel gets exactly one tap: with (pd, ph, pw) the output phase,
 *   out[n, co, s*d+pd, s*h+ph, s*w+pw] = bias[co] + sum_ci w[ci, co, pd, ph, pw] x[n, ci, d, h, w]
 * i.e. s^3 pointwise GEMMs.  Parallel over (n, d, pd, ph, co block); per input row h one
 * vector loop over w computes the COB x SW outputs (every pw phase, so the stores at s*w+pw
 * form one interleaved group) with a chunk of CIC input channels reduced in registers: each x
 * vector is loaded once and used COB*SW times, the chunk's weights are lets outside the h
 * loop (broadcasts), each sum is split in two FMA chains.  With one chunk the epilogue is
 * applied right there, at the output coordinate (n, co, s*d+pd, s*h+ph, s*w+pw); with more,
 * the first chunk starts from the bias, the middle ones (a runtime loop) accumulate in the
 * group's output buffer and the last one applies the epilogue.  Reducing the whole cig in one
 * loop body instead made LLVM give up vectorizing at 256 channels (and compile for 39 s at
 * 768). */

enum { TCONV_CIC = 32, TCONV_MAXS = 16, TCONV_MKCIG = 48 };

static int
convt_phase_ok(Lower *L, const Conv *cv)
{
	for (int a = 0; a < 3; a++)
		if (cv->k[a] != cv->s[a] || cv->p[a] != 0 || cv->dl[a] != 1 || cv->op[a] != 0)
			return 0;
	return cv->s[2] <= TCONV_MAXS && !lw_out_aliases_input(L);
}

typedef struct {
	const Conv *cv;
	const Type *ot;
	int64_t cob, cic, S1, S2, K3;
	int xb, wb, ab; /* ab: the accumulation buffer (multi-chunk only) */
	KNode *n, *od, *ph, *co0, *xd, *wd, *bias[4];
} Tct;

/* One chunk of cic input channels starting at c0 (relative to the group's first): weights as
 * lets in block, then for h: vector loop over w.  first: start from the bias (else from the
 * accumulation buffer); last: apply the epilogue (else store the partial sums). */
static int
convt_chunk(Lower *L, const Tct *t, KNode *block, KNode *c0, int first, int last)
{
	const Conv *cv = t->cv;
	int64_t cob = t->cob, S2 = t->S2, dhw = cv->D * cv->H * cv->W;
	KNode *wv[4 * TCONV_MAXS * TCONV_CIC], *h, *w;
	int acc[2 * 4 * TCONV_MAXS];

	KNode *wc = lw_let(L, block, "wc", ix_add(L, t->wd, ix_mul(L, c0, cv->cog * t->K3)));
	KNode *xc = lw_let(L, block, "xc", ix_add(L, t->xd, ix_mul(L, c0, dhw)));
	for (int64_t c = 0; c < t->cic; c++)
		for (int64_t j = 0; j < cob; j++)
			for (int64_t q = 0; q < S2; q++) {
				KNode *wi = ix_add(L, wc, ix_c(L, (c * cv->cog + j) * t->K3 + q));
				wv[(c * cob + j) * S2 + q] =
				    lw_let(L, block, "wv", kir_load(L->p, L->k, t->wb, wi));
			}
	KNode *hl = lw_loop(L, block, "h", ix_c(L, 0), ix_c(L, cv->H), LOOP_SERIAL, &h);
	KNode *xr = lw_let(L, hl->body, "xr", ix_add(L, xc, ix_mul(L, h, cv->W)));
	KNode *oh = lw_let(L, hl->body, "oh", ix_add(L, ix_mul(L, h, t->S1), t->ph));
	KNode *vl = lw_loop(L, hl->body, "w", ix_c(L, 0), ix_c(L, cv->W), LOOP_VECTOR, &w);
	KNode *b = vl->body;

	Coord cd[4 * TCONV_MAXS];
	KNode *ai[4 * TCONV_MAXS];
	for (int64_t j = 0; j < cob; j++)
		for (int64_t q = 0; q < S2; q++) {
			int a = (int)(j * S2 + q);
			KNode *co = ix_add(L, t->co0, ix_c(L, j));
			KNode *ow = ix_add(L, ix_mul(L, w, S2), ix_c(L, q));
			KNode *oidx[5] = {t->n, co, t->od, oh, ow};
			coord_full(&cd[a], t->ot, oidx);
			ai[a] = NULL;
			KNode *init = first ? t->bias[j] : NULL;
			if (!first || !last)
				ai[a] = lw_let(L, b, "ai", lw_index(L, &cd[a], t->ot));
			if (!first)
				init = kir_load(L->p, L->k, t->ab, ai[a]);
			acc[2 * a] = kir_var(L->p, L->k, KT_F32, "acc");
			acc[2 * a + 1] = kir_var(L->p, L->k, KT_F32, "acc");
			kir_append(L->p, b, kir_let(L->p, L->k, acc[2 * a], init));
			kir_append(L->p, b, kir_let(L->p, L->k, acc[2 * a + 1], kir_f32(L->p, 0)));
		}
	KNode *xo = lw_let(L, b, "xo", ix_add(L, xr, w));
	for (int64_t c = 0; c < t->cic; c++) {
		KNode *xi = ix_add(L, xo, ix_c(L, c * dhw));
		KNode *xv = lw_let(L, b, "xv", kir_load(L->p, L->k, t->xb, xi));
		for (int64_t j = 0; j < cob; j++)
			for (int64_t q = 0; q < S2; q++) {
				int a = (int)((j * S2 + q) * 2 + (c & 1));
				KNode *m = kir_bin(L->p, KB_MUL, wv[(c * cob + j) * S2 + q], xv);
				KNode *r = kir_ref(L->p, L->k, acc[a]);
				kir_append(L->p, b,
				           kir_assign(L->p, acc[a], kir_bin(L->p, KB_ADD, r, m)));
			}
	}
	for (int a = 0; a < (int)(cob * S2); a++) {
		KNode *v = kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc[2 * a]),
		                   kir_ref(L->p, L->k, acc[2 * a + 1]));
		v = lw_let(L, b, "v", v);
		if (!last)
			kir_append(L->p, b, kir_store(L->p, t->ab, ai[a], v));
		else if (lw_output(L, b, &cd[a], v) < 0)
			return -1;
	}
	return 0;
}

/* The phase GEMMs as a micro-kernel (widened by the CPU emitter, like conv_mk): parallel over
 * (n, d, pd, ph, co block); the lanes walk the flattened (h, w) input plane in blocks of VL;
 * COB x S2 accumulator vectors (every pw phase of COB channels) reduce over all input
 * channels, one x vector load per channel; the sums are scattered to their output positions
 * (n, co, s*d+pd, s*h+ph, s*w+pw) once; then the epilogue runs over the output rows this
 * iteration wrote (oh = s*h + ph, every ow).  1: not applicable (S2 too large). */
static int
convt_mk(Lower *L, const Conv *cv, ValueId accv)
{
	const Type *ot = lw_type(L, cv->out);
	int64_t S0 = cv->s[0], S1 = cv->s[1], S2 = cv->s[2], K3 = S0 * S1 * S2;
	int64_t plane = cv->H * cv->W, dhw = cv->D * plane, ostr = cv->OD * cv->OH * cv->OW;
	int64_t VL = plane <= 4 ? 4 : plane <= 8 ? 8 : plane <= 16 ? 16 : 32;
	int64_t nv = VL > 16 ? VL / 16 : 1;
	if (S2 * nv > MK_ACC)
		return 1;
	int64_t cob = divisor_le(cv->cog, MK_ACC / (S2 * nv)), nblk = (plane + VL - 1) / VL;
	int ob = lw_outbuf(L, accv), xb = lw_buf(L, cv->x), wb = lw_buf(L, cv->w);
	KNode *idx[5], *bi, *l, *c, *h, *ow, *bias[MK_ACC];
	int acc[MK_ACC];

	int64_t dims[5] = {cv->N, cv->D, S0, S1, cv->Co / cob};
	KNode *body = lw_nest(L, dims, 5, 0, idx);
	KNode *n = idx[0], *d = idx[1], *pd = idx[2], *ph = idx[3];
	KNode *co0 = lw_let(L, body, "co0", ix_mul(L, idx[4], cob));
	KNode *grp = lw_let(L, body, "g", kir_bin(L->p, KB_DIV, co0, ix_c(L, cv->cog)));
	KNode *col0 = lw_let(L, body, "col0", ix_add(L, co0, ix_mul(L, grp, -cv->cog)));
	KNode *od = lw_let(L, body, "od", ix_add(L, ix_mul(L, d, S0), pd));
	for (int64_t j = 0; j < cob; j++)
		bias[j] =
		    cv->b
		        ? lw_let(L, body, "b",
		                 kir_load(L->p, L->k, lw_buf(L, cv->b), ix_add(L, co0, ix_c(L, j))))
		        : kir_f32(L->p, 0);
	/* x[n, g*cig + c, d, h, w] = xd + c*dhw + h*W + w */
	KNode *xd = ix_add(L, ix_mul(L, n, cv->Ci), ix_mul(L, grp, cv->cig));
	xd = lw_let(L, body, "xd", ix_mul(L, ix_add(L, ix_mul(L, xd, cv->D), d), plane));
	/* w[g*cig + c, col0 + j, pd, ph, pw] = wd + (c*cog + j)*K3 + pw */
	KNode *wd = ix_add(L, ix_mul(L, ix_mul(L, grp, cv->cig), cv->cog), col0);
	wd = ix_add(L, ix_mul(L, wd, K3), ix_add(L, ix_mul(L, pd, S1 * S2), ix_mul(L, ph, S2)));
	wd = lw_let(L, body, "wd", wd);
	/* out[n, co0, od, ph, 0] */
	KNode *orow = ix_add(L, ix_mul(L, n, cv->Co), co0);
	orow = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, orow, cv->OD), od), cv->OH * cv->OW),
	              ix_mul(L, ph, cv->OW));
	orow = lw_let(L, body, "orow", orow);

	KNode *bl = lw_loop(L, body, "blk", ix_c(L, 0), ix_c(L, nblk), LOOP_SERIAL, &bi);
	KNode *q0 = lw_let(L, bl->body, "q0", ix_mul(L, bi, VL));
	KNode *ll = lw_loop(L, bl->body, "lane", ix_c(L, 0), ix_c(L, VL), LOOP_VECTOR, &l);
	KNode *b = ll->body, *valid = NULL;
	KNode *q = lw_let(L, b, "q", ix_add(L, q0, l));
	if (plane % VL)
		valid = lw_let(L, b, "valid", kir_bin(L->p, KB_LT, q, ix_c(L, plane)));
	for (int64_t a = 0; a < cob * S2; a++) {
		acc[a] = kir_var(L->p, L->k, KT_F32, "acc");
		kir_append(L->p, b, kir_let(L->p, L->k, acc[a], bias[a / S2]));
	}
	KNode *cl = lw_loop(L, b, "c", ix_c(L, 0), ix_c(L, cv->cig), LOOP_SERIAL, &c);
	KNode *ld = kir_load(L->p, L->k, xb, ix_add(L, ix_add(L, xd, ix_mul(L, c, dhw)), q)), *xv;
	if (valid) { /* a masked load */
		int v = kir_var(L->p, L->k, KT_F32, "xv");
		kir_append(L->p, cl->body, kir_let(L->p, L->k, v, kir_f32(L->p, 0)));
		KNode *ifl = kir_if(L->p, valid);
		kir_append(L->p, cl->body, ifl);
		kir_append(L->p, ifl->body, kir_assign(L->p, v, ld));
		xv = kir_ref(L->p, L->k, v);
	} else {
		xv = lw_let(L, cl->body, "xv", ld);
	}
	KNode *wc = lw_let(L, cl->body, "wc", ix_add(L, wd, ix_mul(L, c, cv->cog * K3)));
	for (int64_t a = 0; a < cob * S2; a++) {
		KNode *w = kir_load(L->p, L->k, wb, ix_add(L, wc, ix_c(L, (a / S2) * K3 + a % S2)));
		KNode *sum = kir_bin(L->p, KB_ADD, kir_ref(L->p, L->k, acc[a]),
		                     kir_bin(L->p, KB_MUL, w, xv));
		kir_append(L->p, cl->body, kir_assign(L->p, acc[a], sum));
	}
	KNode *st = b;
	if (valid) {
		KNode *ifv = kir_if(L->p, valid);
		kir_append(L->p, b, ifv);
		st = ifv->body;
	}
	/* out[orow + h*S1*OW + w*S2 + j*ostr + pw] */
	KNode *hh = kir_bin(L->p, KB_DIV, q, ix_c(L, cv->W));
	KNode *ww = kir_bin(L->p, KB_REM, q, ix_c(L, cv->W));
	KNode *oo = lw_let(
	    L, st, "oo", ix_add(L, orow, ix_add(L, ix_mul(L, hh, S1 * cv->OW), ix_mul(L, ww, S2))));
	for (int64_t a = 0; a < cob * S2; a++)
		kir_append(L->p, st,
		           kir_store(L->p, ob, ix_add(L, oo, ix_c(L, (a / S2) * ostr + a % S2)),
		                     kir_ref(L->p, L->k, acc[a])));
	/* the epilogue over the rows written: (co0 + j, od, S1*h + ph, every ow) */
	for (int64_t j = 0; j < cob; j++) {
		KNode *hl = lw_loop(L, body, "h", ix_c(L, 0), ix_c(L, cv->H), LOOP_SERIAL, &h);
		KNode *oh = lw_let(L, hl->body, "oh", ix_add(L, ix_mul(L, h, S1), ph));
		KNode *rr = lw_let(
		    L, hl->body, "rr",
		    ix_add(L, orow, ix_add(L, ix_mul(L, h, S1 * cv->OW), ix_c(L, j * ostr))));
		KNode *el =
		    lw_loop(L, hl->body, "ow", ix_c(L, 0), ix_c(L, cv->OW), LOOP_VECTOR, &ow);
		KNode *v = lw_let(L, el->body, "v", kir_load(L->p, L->k, ob, ix_add(L, rr, ow)));
		KNode *oidx[5] = {n, ix_add(L, co0, ix_c(L, j)), od, oh, ow};
		Coord cd;
		coord_full(&cd, ot, oidx);
		if (lw_output(L, el->body, &cd, v) < 0)
			return -1;
	}
	return 0;
}

static int
convt_phase(Lower *L, const Conv *cv, ValueId accv)
{
	Tct t = {0};
	int64_t S0 = cv->s[0];
	KNode *idx[5], *cc;

	t.cv = cv, t.ot = lw_type(L, cv->out);
	t.S1 = cv->s[1], t.S2 = cv->s[2], t.K3 = S0 * t.S1 * t.S2;
	t.cob = divisor_le(cv->cog, 4);
	t.cic = divisor_le(cv->cig, TCONV_CIC / t.S2 > 0 ? TCONV_CIC / t.S2 : 1);
	if (t.cic < cv->cig && (t.cic < 8 || !accv)) { /* no good split (or nowhere to keep sums) */
		if (cv->cig * t.S2 > 4 * TCONV_CIC)
			return conv_scalar(L, cv, 1);
		t.cic = cv->cig;
	}
	int64_t nch = cv->cig / t.cic;
	t.xb = lw_buf(L, cv->x), t.wb = lw_buf(L, cv->w);
	t.ab = nch > 1 ? lw_outbuf(L, accv) : 0;

	int64_t dims[5] = {cv->N, cv->D, S0, t.S1, cv->Co / t.cob};
	KNode *body = lw_nest(L, dims, 5, 0, idx);
	KNode *d = idx[1], *pd = idx[2];
	t.n = idx[0], t.ph = idx[3];
	t.co0 = lw_let(L, body, "co0", ix_mul(L, idx[4], t.cob));
	KNode *grp = lw_let(L, body, "g", kir_bin(L->p, KB_DIV, t.co0, ix_c(L, cv->cog)));
	KNode *col0 = lw_let(L, body, "col0", ix_add(L, t.co0, ix_mul(L, grp, -cv->cog)));
	t.od = lw_let(L, body, "od", ix_add(L, ix_mul(L, d, S0), pd));
	for (int64_t j = 0; j < t.cob; j++) {
		KNode *bi = ix_add(L, t.co0, ix_c(L, j));
		t.bias[j] = cv->b ? lw_let(L, body, "b", kir_load(L->p, L->k, lw_buf(L, cv->b), bi))
		                  : kir_f32(L->p, 0);
	}
	/* x[n, g*cig + c, d, h, w] = xd + c*dhw + h*W + w */
	KNode *xd = ix_add(L, ix_mul(L, t.n, cv->Ci), ix_mul(L, grp, cv->cig));
	t.xd = lw_let(L, body, "xd", ix_mul(L, ix_add(L, ix_mul(L, xd, cv->D), d), cv->H * cv->W));
	/* w[g*cig + c, col0 + j, pd, ph, pw] = wd + (c*cog + j)*K3 + pw */
	KNode *wd = ix_add(L, ix_mul(L, ix_mul(L, grp, cv->cig), cv->cog), col0);
	wd = ix_add(L, ix_mul(L, wd, t.K3),
	            ix_add(L, ix_mul(L, pd, t.S1 * t.S2), ix_mul(L, t.ph, t.S2)));
	t.wd = lw_let(L, body, "wd", wd);

	if (nch == 1)
		return convt_chunk(L, &t, body, ix_c(L, 0), 1, 1);
	if (convt_chunk(L, &t, body, ix_c(L, 0), 1, 0) < 0)
		return -1;
	if (nch > 2) {
		KNode *cl = lw_loop(L, body, "cc", ix_c(L, 1), ix_c(L, nch - 1), LOOP_SERIAL, &cc);
		KNode *c0 = lw_let(L, cl->body, "c0", ix_mul(L, cc, t.cic));
		if (convt_chunk(L, &t, cl->body, c0, 0, 0) < 0)
			return -1;
	}
	return convt_chunk(L, &t, body, ix_c(L, (nch - 1) * t.cic), 0, 1);
}

/* root: conv_transpose3d with stride, pad, output_padding, dilation, groups, bias */
int
tmpl_conv_transpose(Lower *L)
{
	Conv cv;

	lw_conv_shape(L, &cv);
	if (lw_has_prologue(L)) /* passes/fuse.c makes prologues for conv3d roots only */
		return lw_fail(L, "conv_transpose3d: no form applies a load prologue");
	touch_inputs(L);
	if (convt_phase_ok(L, &cv)) {
		ValueId accv = acc_value(L);
		/* few input channels: the scattered stores would cost more than the phase form's */
		int mk = accv && cv.cig >= TCONV_MKCIG && !cg_knob("SEGC_CONV_OLD");
		int rc = mk ? convt_mk(L, &cv, accv) : 1;
		return rc != 1 ? rc : convt_phase(L, &cv, accv);
	}
	return conv_scalar(L, &cv, 1);
}
