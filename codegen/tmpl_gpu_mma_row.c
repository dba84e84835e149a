/* codegen/tmpl_gpu_mma_row.c -- the row gather of tmpl_gpu_mma's tap-major convs (default;
 * $SEGC_MMA_XROW=0 off; docs/cuda.md "Tensor cores: row gathers").
 *
 * The implicit GEMM's A[m, k] = x[b, ci, id, ih, iw]: for 8 consecutive output voxels m (one
 * octet of an output row: OW % 8 == 0) and one channel and (kd, kh) row of taps, the kw taps
 * read one window of an input row: with stride sw (1 or 2; sw*OW == W) and dilation dw along W,
 * tap w of voxel ow0 + j reads x[sw*ow0 - p + w*dw + sw*j].  Vector loads of x[sw*ow0 .. +
 * 8*sw) (16 bytes each: 8 bf16 or 4 f32; 16-byte aligned rows) and p + q single loads at its
 * edges (window slots [0, p) and [p + 8*sw, p + 8*sw + q)) give all kw * 8 A elements, where
 * the element gather loads each one; tap w's run is slots w*dw + sw*j.  K is ordered by groups:
 * a group is one (kd, kh) row r of gc channels (gc the largest power of two dividing Ci, at
 * most kf, the MMA's k: 16 at bf16, 8 at tf32), k = (r*CQ + cq)*KP + w*gc + c (ci = gc*cq +
 * c, KP = kw*gc rounded up to kf: padding 0 in B, zeroed in A per tile); the copy of w,
 * mma_row_wt, follows it.  A K
 * step is G groups (bk = KP*G >= 2*kf: 32 at bf16, 16 at tf32, whose f32 tiles take twice the
 * bytes), and a thread's jobs in a step are (octet, channel) windows whose kw runs are 16-byte
 * stores into the column-major A tile (As[kk*lda + mm]; a run of 8 f32: two).  Requires: bf16
 * or tf32 precision, x bf16 or f32, no load prologue, at most a quarter of a group's k
 * padding (4, 8, or 12 channels at kw 3; but Ci 1 and 2: the first convs, whose MMAs are few
 * and gather is all), x's offsets in i32, tiles of 64 or 128 rows.  Its register-fragment
 * form (mma_frag_*, at the end; the bf16 and tf32 default, $SEGC_MMA_FRAG=0: not) feeds
 * the same windows to mma.sync without an A tile. */
#include "tmpl.h"

#include <stdlib.h>

/* what the row gather needs of the conv whatever the tile: its windows' shape and the group
 * of channels (fills the form's K order); 0 where it does not apply (r->frag set: the
 * register-fragment form's, which pads a small Cin's groups by rows, not by k) */
static int
row_conv_fits(Lower *L, MmaRow *r)
{
	const Conv *cv = &r->cv;
	int bf = L->p->precision == KP_BF16;
	if ((!bf && L->p->precision != KP_TF32) || lw_has_prologue(L))
		return 0;
	int xb = lw_buf(L, cv->x);
	const KBuf *xk = &L->k->bufs[xb];
	int64_t kw = cv->k[2], sw = cv->s[2], pw = cv->p[2], span = (kw - 1) * cv->dl[2];
	int64_t qw = span - pw - sw + 1; /* the right edge: the last tap's last element's slot */
	int64_t kf = bf ? 16 : 8, gc;
	for (gc = kf; cv->Ci % gc; gc /= 2) /* the largest power of two <= kf dividing Ci */
		;
	int64_t kp = (kw * gc + kf - 1) / kf * kf;
	/* (the row form: at most a quarter of a group's k padding, but for Ci 1 and 2) */
	int pad = !r->frag && (gc > 2 || gc < cv->Ci) && 4 * kw * gc < 3 * kp;
	if (cv->groups != 1 || (xk->dtype != DT_BF16 && xk->dtype != DT_F32) ||
	    xk->shared || xk->offset % 16 || sw < 1 || sw > 2 || sw * cv->OW != cv->W || pw > 8 ||
	    qw > 8 || cv->OW % 8 || pad ||
	    type_numel(lw_type(L, cv->x)) >= ((int64_t)1 << 31) - 16)
		return 0;
	r->xb = xb;
	r->vn = xk->dtype == DT_BF16 ? 8 : 4;
	r->sw = sw, r->pw = pw, r->qw = qw > 0 ? qw : 0;
	r->gc = gc, r->KP = kp;
	r->tv = bf ? 8 : 4;
	r->G = kp >= 2 * kf ? 1 : 2 * kf / kp; /* K steps of 2*kf or more */
	r->bk = kp * r->G;
	r->CQ = cv->Ci / gc;
	r->ngroups = cv->k[0] * cv->k[1] * r->CQ;
	r->rows = 1;
	return 1;
}

int
mma_row_fits(Lower *L, MmaRow *r, int64_t bm, int64_t nt, int64_t bn)
{
	const char *e = cg_knob("SEGC_MMA_XROW");
	int64_t per = nt / (bm / 8);
	if ((e && *e && atoi(e) == 0) || (bm != 64 && bm != 128) || (nt != 128 && nt != 256) ||
	    16 % per || !row_conv_fits(L, r) || (per % r->gc && r->gc % per))
		return 0;
	r->bm = bm, r->nt = nt, r->bn = bn;
	int64_t wins = r->G * r->gc * (bm / 8); /* windows a step */
	r->jobs = wins >= nt ? wins / nt : 1;
	r->act = wins < nt ? wins : 0;
	return (wins >= nt ? wins % nt == 0 : nt % wins == 0) && r->jobs <= MMA_ROW_JOBS;
}

void
mma_row_wt(Lower *L, const MmaRow *r, int wt, int wb, int64_t N)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t kw = cv->k[2], kvol = cv->k[0] * cv->k[1] * kw, real = kw * r->gc;
	int64_t dims[3] = {N, r->ngroups, r->KP};
	KNode *ix[3];
	KNode *pb = lw_nest(L, dims, 3, 0, ix);
	KNode *kk = real < r->KP ? kir_bin(p, KB_MIN, ix[2], ix_c(L, real - 1)) : ix[2];
	KNode *rr = kir_bin(p, KB_DIV, ix[1], ix_c(L, r->CQ));
	KNode *ci = ix_add(L, ix_mul(L, kir_bin(p, KB_REM, ix[1], ix_c(L, r->CQ)), r->gc),
	                   kir_bin(p, KB_REM, kk, ix_c(L, r->gc)));
	KNode *tap = ix_add(L, ix_mul(L, rr, kw), kir_bin(p, KB_DIV, kk, ix_c(L, r->gc)));
	KNode *wi = ix_add(L, ix_mul(L, ix[0], cv->Ci * kvol), ix_add(L, ix_mul(L, ci, kvol), tap));
	KNode *v = kir_load(p, L->k, wb, wi);
	if (real < r->KP) /* the group's padding: 0 */
		v = kir_select(p, kir_bin(p, KB_LT, ix[2], ix_c(L, real)), v, kir_f32(p, 0));
	KNode *ti = ix_add(L, ix_mul(L, ix[0], r->ngroups * r->KP),
	                   ix_add(L, ix_mul(L, ix[1], r->KP), ix[2]));
	kir_append(p, pb, kir_store(p, wt, ti, v));
}

/* the group's padding columns [kw*gc, KP) of both tile halves (atile elements apart) = 0, by
 * 16-byte stores spread over the threads: the K loop never writes them, and the C tile of
 * the previous tile lay over them */
static void
zero_pad(Lower *L, const MmaRow *r, KNode *block, KNode *th, int64_t atile)
{
	Program *p = L->p;
	int64_t real = r->cv.k[2] * r->gc, pc = r->KP - real, oct = r->bm / 8;
	int64_t cols = r->G * pc, total = 2 * cols * oct;
	int z = kir_var(p, L->k, KT_F32, "xz");
	for (int i = 0; i < 8; i++) {
		int v = i ? kir_var(p, L->k, KT_F32, "xz") : z;
		SEGC_ASSERT(v == z + i);
		kir_append(p, block, kir_let(p, L->k, v, kir_f32(p, 0)));
	}
	for (int64_t i = 0; i * r->nt < total; i++) {
		KNode *e = lw_let(L, block, "ze", ix_add(L, th, ix_c(L, i * r->nt)));
		KNode *iff = kir_if(p, kir_bin(p, KB_LT, e, ix_c(L, total)));
		kir_append(p, block, iff);
		KNode *b = iff->body;
		KNode *rest = lw_let(L, b, "zr", kir_bin(p, KB_DIV, e, ix_c(L, oct)));
		KNode *c = kir_bin(p, KB_REM, rest, ix_c(L, cols));
		KNode *col = ix_add(L, ix_mul(L, kir_bin(p, KB_DIV, c, ix_c(L, pc)), r->KP),
		                    ix_add(L, kir_bin(p, KB_REM, c, ix_c(L, pc)), ix_c(L, real)));
		KNode *at = ix_add(L, ix_mul(L, kir_bin(p, KB_DIV, rest, ix_c(L, cols)), atile),
		                   ix_add(L, ix_mul(L, col, r->lda),
		                          ix_mul(L, kir_bin(p, KB_REM, e, ix_c(L, oct)), 8)));
		for (int64_t i = 0; i < 8; i += r->tv)
			kir_append(p, b, kir_vstore(p, r->as, ix_add(L, at, ix_c(L, i)), z + (int)i,
			                            (int)r->tv, 1));
	}
}

/* octet o of the tile (voxels m0 + 8*o ..) and the thread's first channel tc: whether it lies
 * in M, its output coordinates, x at (b, tc, p0, p1, sw*ow0), the edges' predicates */
static void
octet_terms(Lower *L, MmaRow *r, KNode *block, KNode *o, KNode *tc, KNode *m0, int64_t M)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t hw = cv->H * cv->W, dhw = cv->D * hw;
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
	/* x of (b, tc, p0, p1, ow0): the thread's first channel; a job's adds gc*cq + its own */
	KNode *xo = i32_add(L, i32_mul(L, b, cv->Ci * dhw), i32_mul(L, i32_of(L, tc), dhw));
	xo = i32_add(L, xo, i32_add(L, i32_mul(L, r->p0, hw), i32_mul(L, r->p1, cv->W)));
	r->xrb = lw_let(L, block, "xrb", i32_add(L, xo, i32_mul(L, ow0, r->sw)));
	if (r->pw) /* the window's left and right edges lie in x */
		r->lok = lw_let(L, block, "lok", kir_bin(p, KB_GT, ow0, i32_c(L, 0)));
	if (r->qw)
		r->rok = lw_let(L, block, "rok", kir_bin(p, KB_LT, ow0, i32_c(L, cv->OW - 8)));
}

/* each job's window: pw + 8*sw + qw consecutive variables, the jobs' one after another */
static void
windows(Lower *L, MmaRow *r)
{
	int64_t win = r->pw + 8 * r->sw + r->qw;
	for (int j = 0; j < r->jobs; j++)
		for (int64_t i = 0; i < win; i++) {
			int v = kir_var(L->p, L->k, KT_F32, "xw");
			if (i == 0)
				r->win[j] = v;
			SEGC_ASSERT(v == r->win[j] + i);
		}
}

void
mma_row_prep(Lower *L, MmaRow *r, KNode *block, KNode *th, KNode *m0, int64_t M, int64_t lda,
             int as, int64_t atile)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t oct = r->bm / 8, per = r->nt / oct;
	r->lda = lda, r->as = as;
	KNode *o = lw_let(L, block, "oc", kir_bin(p, KB_REM, th, ix_c(L, oct)));
	KNode *cth = lw_let(L, block, "cth", kir_bin(p, KB_DIV, th, ix_c(L, oct)));
	/* the thread's group (of a job's) and channel in it: cth / gc, cth % gc where a job's
	 * per = nt / oct channel rows span groups (small Cin), else 0, cth */
	KNode *tg = per > r->gc ? lw_let(L, block, "tg", kir_bin(p, KB_DIV, cth, ix_c(L, r->gc)))
	                        : ix_c(L, 0);
	KNode *tc = per > r->gc ? lw_let(L, block, "tc", kir_bin(p, KB_REM, cth, ix_c(L, r->gc)))
	                        : cth;
	r->tg = per > r->gc ? lw_let(L, block, "tg32", i32_of(L, tg)) : NULL;
	r->actv = r->act ? lw_let(L, block, "xact", kir_bin(p, KB_LT, th, ix_c(L, r->act))) : NULL;
	octet_terms(L, r, block, o, tc, m0, M);
	/* where the thread's runs go in a tile half: column tg*KP + tc + .., rows 8*oc .. +8 */
	KNode *col = ix_add(L, ix_mul(L, tg, r->KP), tc);
	r->sto = lw_let(L, block, "sto", ix_add(L, ix_mul(L, col, lda), ix_mul(L, o, 8)));
	if (r->KP > cv->k[2] * r->gc)
		zero_pad(L, r, block, th, atile);
	windows(L, r);
}

/* group q (+ the thread's tg) of the K (its (r, cq) row of taps; once per step and group;
 * frag with gc < 16: q counts units, the group's first plus the job's in it):
 * *ok, whether the row lies in x (and q < ngroups), *off, x at (b, gc*cq + tc, id, ih, ow0) */
static void
group_terms(Lower *L, const MmaRow *r, KNode *block, KNode *q, KNode **ok, KNode **off)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t hw = cv->H * cv->W, dhw = cv->D * hw;
	KNode *qg = lw_let(L, block, "xq", r->tg ? i32_add(L, q, r->tg) : q);
	KNode *rr = kir_bin(p, KB_DIV, qg, i32_c(L, r->CQ));
	KNode *cq = kir_bin(p, KB_REM, qg, i32_c(L, r->CQ));
	KNode *kd = lw_let(L, block, "xkd", kir_bin(p, KB_DIV, rr, i32_c(L, cv->k[1])));
	KNode *kh = lw_let(L, block, "xkh", kir_bin(p, KB_REM, rr, i32_c(L, cv->k[1])));
	KNode *id = i32_add(L, r->p0, i32_mul(L, kd, cv->dl[0]));
	KNode *ih = i32_add(L, r->p1, i32_mul(L, kh, cv->dl[1]));
	KNode *v = kir_bin(p, KB_AND, r->mok,
	                   kir_bin(p, KB_AND, i32_in(L, id, cv->D), i32_in(L, ih, cv->H)));
	int64_t units = cv->k[0] * cv->k[1] * r->CQ; /* (r, cq) rows of taps */
	if (r->ngroups % r->G || r->rows * r->ngroups > units) /* A is 0 past K (B is: 0 * a NaN
	                                                        * of x is not) */
		v = kir_bin(p, KB_AND, v, kir_bin(p, KB_LT, qg, i32_c(L, units)));
	if (r->actv) /* threads past the step's windows load nothing */
		v = kir_bin(p, KB_AND, v, r->actv);
	*ok = lw_let(L, block, "xok", v);
	KNode *o = i32_add(L, r->xrb, i32_mul(L, cq, r->gc * dhw));
	o = i32_add(L, o,
	            i32_add(L, i32_mul(L, kd, cv->dl[0] * hw), i32_mul(L, kh, cv->dl[1] * cv->W)));
	*off = lw_let(L, block, "xo", o);
}

/* job j's group of the step, g = (j*per) / gc (+ tg), and channel in it, cc = (j*per) % gc
 * (+ tc) (per = nt / octets a tile: the channel rows a job spans); frag: the job's k in the
 * group, f = 2t + {0, 1, 8, 9}[j], is unit f / gc and channel f % gc, the lane's 2t in tg,
 * tc */
static void
job(const MmaRow *r, int j, int64_t *g, int64_t *cc)
{
	static const int64_t fc[MMA_ROW_JOBS] = {0, 1, 8, 9}, f8[2] = {0, 4}; /* (tf32: t + ..) */
	int64_t per = r->nt / (r->bm / 8), f = r->k8 ? f8[j] : fc[j];
	*g = r->frag ? f / r->gc : j * per / r->gc;
	*cc = r->frag ? f % r->gc : per > r->gc ? 0 : j * per % r->gc;
	SEGC_ASSERT(*g < (r->frag ? 16 : 2));
}

KNode *
mma_row_load(Lower *L, const MmaRow *r, KNode *block, KNode *kbase)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t dhw = cv->D * cv->H * cv->W, g, cc;
	int64_t pw = r->pw, qw = r->qw, v8 = 8 * r->sw;
	KNode *ok[16] = {0}, *off[16] = {0};
	KNode *s = lw_let(L, block, "xs",
	                  i32_of(L, kir_bin(p, KB_DIV, kbase, ix_c(L, r->bk / r->G))));
	for (int j = 0; j < r->jobs; j++) {
		job(r, j, &g, &cc);
		if (!ok[g]) { /* (frag, gc < 16: s counts groups of r->rows units) */
			KNode *q = r->rows > 1 ? i32_mul(L, s, r->rows) : s;
			group_terms(L, r, block, i32_add(L, q, i32_c(L, g)), &ok[g], &off[g]);
		}
		KNode *at = lw_let(L, block, "xa", i32_add(L, off[g], i32_c(L, cc * dhw)));
		for (int64_t v = 0; v < v8; v += r->vn) {
			KNode *av = v ? i32_add(L, at, i32_c(L, v)) : at;
			kir_append(p, block, kir_vload(p, r->win[j] + (int)(pw + v), (int)r->vn,
			                               r->xb, av, ok[g]));
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
	return s;
}

void
mma_row_store(Lower *L, const MmaRow *r, KNode *block, KNode *ao)
{
	Program *p = L->p;
	int64_t kw = r->cv.k[2], dw = r->cv.dl[2], g, cc;
	if (r->actv) { /* threads past the step's windows store nothing */
		KNode *iff = kir_if(p, r->actv);
		kir_append(p, block, iff);
		block = iff->body;
	}
	KNode *base = ix_add(L, ao, r->sto);
	for (int j = 0; j < r->jobs; j++) {
		job(r, j, &g, &cc);
		for (int64_t w = 0; w < kw; w++) { /* A[8*oc + i, g*KP + w*gc + cc (+ thread's)] */
			int64_t at = (g * r->KP + w * r->gc + cc) * r->lda;
			for (int64_t i = 0; i < 8; i += r->tv) { /* slots w*dw + sw*(i ..) */
				int v = r->win[j] + (int)(w * dw + r->sw * i);
				KNode *a = ix_add(L, base, ix_c(L, at + i));
				kir_append(p, block,
				           kir_vstore(p, r->as, a, v, (int)r->tv, (int)r->sw));
			}
		}
	}
}

/* ---- the register-fragment form (bf16 and tf32 by default since 2026-11-28, untimed;
 * $SEGC_MMA_FRAG=0: not) ----
 * A lane (g = lane / 4, t = lane % 4) of warp wp holds the windows of octet 8*wp + g of the
 * tile and channels 2t, 2t + 1, 2t + 8, 2t + 9 of the group: exactly the A elements mma.sync
 * m16n8k16 wants of it when the 16 rows of MMA i (of 4) are voxels 2i (row g) and 2i + 1 (row
 * g + 8) of the 8 octets and its 16 k the group's channels at one tap: A goes from x to the
 * tensor cores in registers, no shared tile, no barrier in the K loop.  B comes by one 16-byte
 * load per lane, tap and 16 columns from wt in fragment order.  The C tile's rows stay the
 * voxels in order (K_mma_store rows 8).  A Cin that 16 does not divide (gc, the largest power
 * of two dividing it: 1 .. 8) packs 16 / gc units -- a (kd, kh) row's gc channels, (r, cq) --
 * into a group, k = unit*gc + c: the job of k f = 2t + {0, 1, 8, 9}[j] is unit f / gc,
 * channel f % gc, so a lane still holds four windows of its own octet; units past the
 * kernel's are 0 in A and B (at most half of the group's MMAs: the first convs, Cin 1 .. 8,
 * and widths such as 24 or 40).  At tf32 (k8) an MMA of 16 columns is two m16n8k8, whose A
 * lane (g, t) holds k t and t + 4: a group is 8 k, the lane's windows channels t and t + 4
 * (jobs f = t + {0, 4}), B rounded to tf32 once, in wt (KU_TF32). */

int
mma_frag_fits(Lower *L, MmaRow *r, int64_t N)
{
	const char *e = cg_knob("SEGC_MMA_FRAG"); /* 0: not (the row gather where it applies) */
	int bf = L->p->precision == KP_BF16, kf = bf ? 16 : 8;
	if ((e && *e && atoi(e) == 0) || (!bf && L->p->precision != KP_TF32))
		return 0;
	r->frag = 1;
	if (!row_conv_fits(L, r)) {
		r->frag = 0;
		return 0;
	}
	/* units: (kd, kh) rows x channel groups of gc; kf / gc of them a group (at most half of
	 * them padding) */
	int64_t units = r->cv.k[0] * r->cv.k[1] * r->CQ, per = kf / r->gc;
	r->rows = per;
	r->ngroups = (units + per - 1) / per;
	if (2 * units < per * r->ngroups) {
		r->frag = 0;
		return 0;
	}
	r->KP = r->cv.k[2] * kf;
	/* 16 columns, or 32, or 48 where 48-column tiles take no more columns than 32-column
	 * ones (N in (32, 48], 80, 96, 144, ...: x read fewer times; $SEGC_MMA_FRAG48=0 not) */
	const char *e48 = cg_knob("SEGC_MMA_FRAG48");
	int64_t c32 = (N + 31) / 32 * 32, c48 = (N + 47) / 48 * 48;
	r->bn = N <= 16 ? 16 : c48 <= c32 && (!e48 || !*e48 || atoi(e48) != 0) ? 48 : 32;
	r->bm = 256, r->nt = 128;
	r->G = 1, r->bk = r->KP; /* one group (kf k: a row of kf channels, or kf / gc units) a
	                          * step */
	r->jobs = bf ? 4 : 2, r->act = 0, r->k8 = !bf;
	return 1;
}

void
mma_frag_wt(Lower *L, const MmaRow *r, int wt, int wb, int64_t N, int64_t NJ)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t kw = cv->k[2], kvol = cv->k[0] * cv->k[1] * kw, k8 = r->k8;
	int64_t dims[5] = {r->ngroups, kw, NJ, 32, k8 ? 4 : 8};
	KNode *ix[5];
	KNode *pb = lw_nest(L, dims, 5, 0, ix);
	/* lane ix[3] (g, t), element ix[4]: k = 2t + (e & 1) + 8 ((e >> 1) & 1), n = 16 J + g +
	 * 8 (e >> 2); tf32: k = t + 4 (e & 1), n = 16 J + g + 8 (e >> 1) */
	KNode *e = ix[4], *t = kir_bin(p, KB_REM, ix[3], ix_c(L, 4)), *c;
	if (k8)
		c = ix_add(L, t, ix_mul(L, kir_bin(p, KB_REM, e, ix_c(L, 2)), 4));
	else
		c = ix_add(L, ix_mul(L, t, 2),
		           ix_add(L, kir_bin(p, KB_REM, e, ix_c(L, 2)),
		                  ix_mul(L, kir_bin(p, KB_REM, kir_bin(p, KB_DIV, e, ix_c(L, 2)),
		                                    ix_c(L, 2)),
		                         8)));
	KNode *n = ix_add(L, ix_add(L, ix_mul(L, ix[2], 16), kir_bin(p, KB_DIV, ix[3], ix_c(L, 4))),
	                  ix_mul(L, kir_bin(p, KB_DIV, e, ix_c(L, k8 ? 2 : 4)), 8));
	KNode *nc = kir_bin(p, KB_MIN, n, ix_c(L, N - 1));
	KNode *rr, *ci, *rok = NULL;
	if (r->rows > 1) { /* k c: unit c / gc of the group's ((r, cq) = its / CQ, % CQ), channel
	                    * c % gc of its */
		int64_t units = cv->k[0] * cv->k[1] * r->CQ;
		KNode *u = ix_add(L, ix_mul(L, ix[0], r->rows),
		                  kir_bin(p, KB_DIV, c, ix_c(L, r->gc)));
		if (r->rows * r->ngroups > units) /* units past the kernel's: 0 */
			rok = kir_bin(p, KB_LT, u, ix_c(L, units)),
			u = kir_bin(p, KB_MIN, u, ix_c(L, units - 1));
		rr = kir_bin(p, KB_DIV, u, ix_c(L, r->CQ));
		ci = ix_add(L, ix_mul(L, kir_bin(p, KB_REM, u, ix_c(L, r->CQ)), r->gc),
		            kir_bin(p, KB_REM, c, ix_c(L, r->gc)));
	} else {
		rr = kir_bin(p, KB_DIV, ix[0], ix_c(L, r->CQ));
		ci = ix_add(L, ix_mul(L, kir_bin(p, KB_REM, ix[0], ix_c(L, r->CQ)), r->gc), c);
	}
	KNode *tap = ix_add(L, ix_mul(L, rr, kw), ix[1]);
	KNode *wi = ix_add(L, ix_mul(L, nc, cv->Ci * kvol), ix_add(L, ix_mul(L, ci, kvol), tap));
	KNode *v = kir_load(p, L->k, wb, wi);
	if (NJ * 16 > N) /* columns past N: 0 */
		v = kir_select(p, kir_bin(p, KB_LT, n, ix_c(L, N)), v, kir_f32(p, 0));
	if (rok)
		v = kir_select(p, rok, v, kir_f32(p, 0));
	if (k8) /* tf32 values: the K loop takes them as they are (no rounding per use) */
		v = kir_un(p, KU_TF32, v);
	KNode *ti = ix_c(L, 0);
	for (int i = 0; i < 5; i++)
		ti = ix_add(L, ix_mul(L, ti, dims[i]), ix[i]);
	kir_append(p, pb, kir_store(p, wt, ti, v));
}

void
mma_frag_prep(Lower *L, MmaRow *r, KNode *block, KNode *th, KNode *m0, int64_t M)
{
	Program *p = L->p;
	r->lane = lw_let(L, block, "lane", kir_bin(p, KB_REM, th, ix_c(L, 32)));
	KNode *g = kir_bin(p, KB_DIV, r->lane, ix_c(L, 4));
	KNode *wp = kir_bin(p, KB_DIV, th, ix_c(L, 32));
	KNode *o = lw_let(L, block, "oc", ix_add(L, ix_mul(L, wp, 8), g));
	/* the lane's k 2t (tf32: t): channel 2t % gc, unit 2t / gc of the group (none where 2t <
	 * gc, 2t <= 6; tf32: t <= 3) */
	int k8 = r->k8;
	int64_t tmax = k8 ? 3 : 6;
	KNode *t2 = ix_mul(L, kir_bin(p, KB_REM, r->lane, ix_c(L, 4)), k8 ? 1 : 2);
	KNode *tc = (k8 ? 1 : 2) % r->gc == 0 /* every lane's t2 a multiple of gc */
	                ? ix_c(L, 0)
	                : lw_let(L, block, "tc",
	                         r->gc <= tmax ? kir_bin(p, KB_REM, t2, ix_c(L, r->gc)) : t2);
	r->tg = r->gc <= tmax ? lw_let(L, block, "tg32", i32_of(L, kir_bin(p, KB_DIV, t2,
	                                                                   ix_c(L, r->gc))))
	                      : NULL;
	octet_terms(L, r, block, o, tc, m0, M);
	windows(L, r);
}

void
mma_frag_step(Lower *L, const MmaRow *r, KNode *block, KNode *kbase, KNode *j0, int64_t NJ,
              int wt)
{
	Program *p = L->p;
	const Conv *cv = &r->cv;
	int64_t kw = cv->k[2], fn = r->bn / 16, wl = r->pw + 8 * r->sw + r->qw;
	int k8 = r->k8, nb = k8 ? 4 : 8; /* B's elements a lane and 16 columns: 16 bytes */
	KNode *s = kir_cast(p, KT_I64, mma_row_load(L, r, block, kbase)); /* (its group) */
	/* wt at (group s, tap 0, 16 columns j0, this lane) */
	KNode *bo = ix_mul(L, ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, s, kw * NJ), j0), 32),
	                             r->lane),
	                   nb);
	bo = lw_let(L, block, "fb", bo);
	for (int64_t w = 0; w < kw; w++) {
		int bv[3];
		for (int64_t j = 0; j < fn; j++) {
			bv[j] = kir_var(p, L->k, KT_F32, "fb");
			for (int i = 1; i < nb; i++)
				SEGC_ASSERT(kir_var(p, L->k, KT_F32, "fb") == bv[j] + i);
			KNode *at = ix_add(L, bo, ix_c(L, (w * NJ + j) * 32 * nb));
			kir_append(p, block, kir_vload(p, bv[j], nb, wt, at, NULL));
		}
		for (int i = 0; i < 4; i++) /* rows g, g + 8 of MMA i: voxels 2i, 2i + 1 */
			for (int64_t j = 0; j < fn; j++) {
				int av = r->win[0] + (int)(w * cv->dl[2] + 2 * r->sw * i);
				kir_append(p, block, kir_mmar(p, (int)(i * fn + j), av, (int)wl,
				                              (int)r->sw, bv[j], k8));
			}
	}
}
