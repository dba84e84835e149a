/* codegen/tmpl_gpu_mma_row.c -- the row gather of tmpl_gpu_mma's tap-major convs (default;
 * $SEGC_MMA_XROW=0 off; docs/cuda.md "Tensor cores: row gathers").
 *
 * The implicit GEMM's A[m, k] = x[b, ci, id, ih, iw]: for 8 consecutive output voxels m (one
 * octet of an output row: OW % 8 == 0) and one channel and (kd, kh) row of taps, the kw taps
 * read one window of an input row: with stride sw (1 or 2; sw*OW == W) and dilation dw along W,
 * tap w of voxel ow0 + j reads x[sw*ow0 - p + w*dw + sw*j].  sw 16-byte loads of x[sw*ow0 .. +
 * 8*sw) (bf16 activations, 16-byte aligned rows) and p + q single loads at its edges (window
 * slots [0, p) and [p + 8*sw, p + 8*sw + q)) give all kw * 8 A elements, where the element
 * gather loads each one; tap w's run is slots w*dw + sw*j.  K is ordered k = ((r*CQ + cq)*KW +
 * kw)*16 + c (r = kd*KH + kh, ci = 16*cq + c; the tap-major copy of w, mma_row_wt, follows it),
 * a K step is G such (r, cq) groups (bk = 16*KW*G; G = 2 for 1x1x1 convs, else 1), and a
 * thread's jobs in a step are (octet, channel) windows whose kw shifted 8-element runs are
 * 16-byte stores into the column-major A tile (As[kk*lda + mm]).  Requires: bf16 precision and
 * a bf16 x, no load prologue, Ci % 16 == 0, x's offsets in i32, tiles of 64 or 128 rows. */
#include "tmpl.h"

#include <stdlib.h>

/* 0 <= a < n, a i32 */
static KNode *
in32(Lower *L, KNode *a, int64_t n)
{
	Program *p = L->p;
	return kir_bin(p, KB_AND, kir_bin(p, KB_GE, a, i32_c(L, 0)),
	               kir_bin(p, KB_LT, a, i32_c(L, n)));
}

int
mma_row_fits(Lower *L, MmaRow *r, int64_t bm, int64_t nt, int64_t bn)
{
	const Conv *cv = &r->cv;
	const char *e = getenv("SEGC_MMA_XROW");
	if ((e && *e && atoi(e) == 0) || L->p->precision != KP_BF16 || lw_has_prologue(L))
		return 0;
	int xb = lw_buf(L, cv->x);
	const KBuf *xk = &L->k->bufs[xb];
	int64_t kw = cv->k[2], sw = cv->s[2], pw = cv->p[2], span = (kw - 1) * cv->dl[2];
	int64_t qw = span - pw - sw + 1; /* the right edge: the last tap's last element's slot */
	if (cv->groups != 1 || cv->Ci % 16 || xk->dtype != DT_BF16 || xk->shared ||
	    xk->offset % 16 || sw < 1 || sw > 2 || sw * cv->OW != cv->W || pw > 8 || qw > 8 ||
	    cv->OW % 8 || (bm != 64 && bm != 128) ||
	    (nt != 128 && nt != 256) || 16 % (nt / (bm / 8)) ||
	    type_numel(lw_type(L, cv->x)) >= ((int64_t)1 << 31) - 16)
		return 0;
	r->xb = xb;
	r->sw = sw, r->pw = pw, r->qw = qw > 0 ? qw : 0;
	r->G = kw == 1 ? 2 : 1;
	r->bk = 16 * kw * r->G;
	r->CQ = cv->Ci / 16;
	r->ngroups = cv->k[0] * cv->k[1] * r->CQ;
	r->bm = bm, r->nt = nt, r->bn = bn;
	r->jobs = r->G * 16 * (bm / 8) / nt;
	return r->jobs <= MMA_ROW_JOBS;
}

KNode *
mma_row_wt(Lower *L, const MmaRow *r, KNode *ci, KNode *tap)
{
	int64_t kw = r->cv.k[2];
	KNode *rr = kir_bin(L->p, KB_DIV, tap, ix_c(L, kw));
	KNode *w = kir_bin(L->p, KB_REM, tap, ix_c(L, kw));
	KNode *k = ix_add(L, ix_mul(L, rr, r->CQ * kw * 16),
	                  ix_mul(L, kir_bin(L->p, KB_DIV, ci, ix_c(L, 16)), kw * 16));
	return ix_add(L, k, ix_add(L, ix_mul(L, w, 16), kir_bin(L->p, KB_REM, ci, ix_c(L, 16))));
}

void
mma_row_prep(Lower *L, MmaRow *r, KNode *block, KNode *th, KNode *m0, int64_t M, int64_t lda,
             int as)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t hw = cv->H * cv->W, dhw = cv->D * hw, oct = r->bm / 8;
	r->lda = lda, r->as = as;
	KNode *o = lw_let(L, block, "oc", kir_bin(p, KB_REM, th, ix_c(L, oct)));
	KNode *cth = lw_let(L, block, "cth", kir_bin(p, KB_DIV, th, ix_c(L, oct)));
	KNode *m8 = lw_let(L, block, "m8", ix_add(L, m0, ix_mul(L, o, 8)));
	r->mok = lw_let(L, block, "mok", kir_bin(p, KB_LT, m8, ix_c(L, M)));
	/* m8's output coordinate (batch, od, oh, ow0), in i32: M < 2^31 (x's elements are) */
	KNode *m32 = lw_let(L, block, "m32", i32_of(L, m8));
	KNode *ow0 = lw_let(L, block, "ow0", kir_bin(p, KB_REM, m32, i32_c(L, cv->OW)));
	KNode *q = kir_bin(p, KB_DIV, m32, i32_c(L, cv->OW));
	KNode *oh = kir_bin(p, KB_REM, q, i32_c(L, cv->OH));
	q = lw_let(L, block, "q", kir_bin(p, KB_DIV, q, i32_c(L, cv->OH)));
	KNode *od = kir_bin(p, KB_REM, q, i32_c(L, cv->OD));
	KNode *b = kir_bin(p, KB_DIV, q, i32_c(L, cv->OD));
	r->p0 = lw_let(L, block, "p0", i32_add(L, i32_mul(L, od, cv->s[0]), i32_c(L, -cv->p[0])));
	r->p1 = lw_let(L, block, "p1", i32_add(L, i32_mul(L, oh, cv->s[1]), i32_c(L, -cv->p[1])));
	/* x of (b, cth, p0, p1, ow0): the thread's first channel; a job's adds 16*cq + its own */
	KNode *xo = i32_add(L, i32_mul(L, b, cv->Ci * dhw), i32_mul(L, i32_of(L, cth), dhw));
	xo = i32_add(L, xo, i32_add(L, i32_mul(L, r->p0, hw), i32_mul(L, r->p1, cv->W)));
	r->xrb = lw_let(L, block, "xrb", i32_add(L, xo, i32_mul(L, ow0, r->sw)));
	r->lok = lw_let(L, block, "lok", kir_bin(p, KB_GT, ow0, i32_c(L, 0)));
	r->rok = lw_let(L, block, "rok", kir_bin(p, KB_LT, ow0, i32_c(L, cv->OW - 8)));
	/* where the thread's runs go in a tile half: column kk = cth + .., rows 8*oc .. +8 */
	r->sto = lw_let(L, block, "sto", ix_add(L, ix_mul(L, cth, lda), ix_mul(L, o, 8)));
	int64_t win = r->pw + 8 * r->sw + r->qw;
	for (int j = 0; j < r->jobs; j++)
		for (int64_t i = 0; i < win; i++) {
			int v = kir_var(p, L->k, KT_F32, "xw");
			if (i == 0)
				r->win[j] = v;
			SEGC_ASSERT(v == r->win[j] + i);
		}
}

/* group q of the K (its (r, cq) row of taps; once per step and group): *ok, whether the row
 * lies in x (and q < ngroups), *off, x at (b, 16*cq + cth, id, ih, ow0) */
static void
group_terms(Lower *L, const MmaRow *r, KNode *block, KNode *q, KNode **ok, KNode **off)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t hw = cv->H * cv->W, dhw = cv->D * hw;
	KNode *qg = lw_let(L, block, "xq", q);
	KNode *rr = kir_bin(p, KB_DIV, qg, i32_c(L, r->CQ));
	KNode *cq = kir_bin(p, KB_REM, qg, i32_c(L, r->CQ));
	KNode *kd = lw_let(L, block, "xkd", kir_bin(p, KB_DIV, rr, i32_c(L, cv->k[1])));
	KNode *kh = lw_let(L, block, "xkh", kir_bin(p, KB_REM, rr, i32_c(L, cv->k[1])));
	KNode *id = i32_add(L, r->p0, i32_mul(L, kd, cv->dl[0]));
	KNode *ih = i32_add(L, r->p1, i32_mul(L, kh, cv->dl[1]));
	KNode *v = kir_bin(p, KB_AND, r->mok,
	                   kir_bin(p, KB_AND, in32(L, id, cv->D), in32(L, ih, cv->H)));
	if (r->ngroups % r->G) /* A is 0 past K (B is: 0 * a NaN of x is not) */
		v = kir_bin(p, KB_AND, v, kir_bin(p, KB_LT, qg, i32_c(L, r->ngroups)));
	*ok = lw_let(L, block, "xok", v);
	KNode *o = i32_add(L, r->xrb, i32_mul(L, cq, 16 * dhw));
	o = i32_add(L, o,
	            i32_add(L, i32_mul(L, kd, cv->dl[0] * hw), i32_mul(L, kh, cv->dl[1] * cv->W)));
	*off = lw_let(L, block, "xo", o);
}

/* job j: group g = j*per / 16 of the step, channel (j*per) % 16 + cth of the group's chunk
 * (per = nt / octets a tile, cth < per) */
void
mma_row_load(Lower *L, const MmaRow *r, KNode *block, KNode *kbase)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t dhw = cv->D * cv->H * cv->W, per = r->nt / (r->bm / 8);
	int64_t pw = r->pw, qw = r->qw, v8 = 8 * r->sw;
	KNode *ok[2] = {0}, *off[2] = {0};
	KNode *s = lw_let(L, block, "xs",
	                  i32_of(L, kir_bin(p, KB_DIV, kbase, ix_c(L, r->bk / r->G))));
	for (int j = 0; j < r->jobs; j++) {
		int64_t g = j * per / 16, cc = j * per % 16;
		if (!ok[g])
			group_terms(L, r, block, i32_add(L, s, i32_c(L, g)), &ok[g], &off[g]);
		KNode *at = lw_let(L, block, "xa", i32_add(L, off[g], i32_c(L, cc * dhw)));
		for (int64_t v = 0; v < v8; v += 8) {
			KNode *av = v ? i32_add(L, at, i32_c(L, v)) : at;
			kir_append(p, block,
			           kir_vload(p, r->win[j] + (int)(pw + v), 8, r->xb, av, ok[g]));
		}
		for (int64_t i = 0; i < pw + qw; i++) { /* the edges: 0 past the row */
			int64_t e = i < pw ? i : v8 + i; /* its slot; x at at + e - pw */
			int v = r->win[j] + (int)e;
			kir_append(p, block, kir_let(p, L->k, v, kir_f32(p, 0)));
			KNode *iff = kir_if(p, kir_bin(p, KB_AND, ok[g], i < pw ? r->lok : r->rok));
			kir_append(p, block, iff);
			KNode *ld = kir_load(p, L->k, r->xb, i32_add(L, at, i32_c(L, e - pw)));
			kir_append(p, iff->body, kir_assign(p, v, ld));
		}
	}
}

void
mma_row_store(Lower *L, const MmaRow *r, KNode *block, KNode *ao)
{
	Program *p = L->p;
	int64_t kw = r->cv.k[2], dw = r->cv.dl[2], per = r->nt / (r->bm / 8);
	KNode *base = ix_add(L, ao, r->sto);
	for (int j = 0; j < r->jobs; j++) {
		int64_t g = j * per / 16, cc = j * per % 16;
		for (int64_t w = 0; w < kw; w++) { /* A[8*oc + i, (g*kw + w)*16 + cc + cth] */
			KNode *at = ix_add(L, base, ix_c(L, ((g * kw + w) * 16 + cc) * r->lda));
			kir_append(p, block, kir_vstore(p, r->as, at, r->win[j] + (int)(w * dw), 8,
			                                (int)r->sw));
		}
	}
}
