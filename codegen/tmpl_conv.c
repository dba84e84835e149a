/* codegen/tmpl_conv.c -- conv3d (direct) and conv_transpose3d (gather), NCDHW.
 *
 * conv3d, the fast form: one parallel iteration per output row (n, co, od) x oh; the row of
 * OW outputs is accumulated in place in the group's output buffer by vector loops over ow,
 * one per kernel tap kw, whose valid ow range is computed at compile time (padding costs
 * nothing inside the loops); then the epilogue runs over the row.
 *   for p in [0, N*Cout*OD) parallel: for oh: out[row] = bias
 *     for ci, kd (if id valid), kh (if ih valid), kw (unrolled): wv = w[..]
 *       for ow in [lo_kw, hi_kw) vector: out[row + ow] += wv * x[.. + ow*sw + kw*dw - pw]
 *     for ow vector: out[row + ow] = epilogue(out[row + ow])
 * When the output buffer may overlap a buffer the group reads (in-place planning), the
 * scalar form keeps the accumulator in a register instead.
 * conv_transpose3d gathers: out[o] = sum over taps k where (o + p - k*d) is a multiple of the
 * stride s and (o + p - k*d) / s is inside the input. */
#include "tmpl.h"

#include <string.h>

typedef struct {
	int64_t N, Ci, D, H, W;          /* input */
	int64_t Co, OD, OH, OW;          /* output */
	int64_t k[3], s[3], p[3], dl[3], op[3];
	int64_t groups, cig, cog;        /* channels per group, in and out */
	ValueId x, w, b, out;
} Conv;

static void
conv_params(Lower *L, Conv *cv)
{
	const Node *n = L->root;
	const Type *it = lw_type(L, n->in[0]), *ot = lw_type(L, n->out[0]);
	int tr = n->op == OP_conv_transpose3d;

	memset(cv, 0, sizeof *cv);
	cv->N = it->dims[0], cv->Ci = it->dims[1];
	cv->D = it->dims[2], cv->H = it->dims[3], cv->W = it->dims[4];
	cv->Co = ot->dims[1], cv->OD = ot->dims[2], cv->OH = ot->dims[3], cv->OW = ot->dims[4];
	for (int i = 0; i < 3; i++) {
		cv->k[i] = ir_attr(n, "kernel")->ints[i];
		cv->s[i] = ir_attr(n, "stride")->ints[i];
		cv->p[i] = ir_attr(n, "pad")->ints[i];
		cv->dl[i] = ir_attr(n, "dilation")->ints[i];
		if (tr)
			cv->op[i] = ir_attr(n, "output_padding")->ints[i];
	}
	cv->groups = ir_attr_int(n, "groups");
	cv->cig = cv->Ci / cv->groups;
	cv->cog = cv->Co / cv->groups;
	cv->x = n->in[0];
	cv->w = n->in[1];
	cv->b = n->nin > 2 ? n->in[2] : 0;
	cv->out = n->out[0];
}

static KNode *
band(Lower *L, KNode *a, KNode *b)
{
	return a ? kir_bin(L->p, KB_AND, a, b) : b;
}

/* 0 <= i < n */
static KNode *
inrange(Lower *L, KNode *i, int64_t n)
{
	return kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, i, ix_c(L, 0)),
	               kir_bin(L->p, KB_LT, i, ix_c(L, n)));
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
	int64_t dims[3] = { cv->N, cv->Co, cv->OD };
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
}

/* out[row + ow] += wv * x[xr + ow*sw + off] for ow in [lo, hi) */
static void
tap_loop(Lower *L, const Conv *cv, KNode *block, int ob, KNode *row, int xb, KNode *xr,
         KNode *wv, int64_t off, int64_t lo, int64_t hi)
{
	KNode *ow;
	if (lo >= hi)
		return;
	KNode *il = lw_loop(L, block, "ow", ix_c(L, lo), ix_c(L, hi), LOOP_VECTOR, &ow);
	KNode *oi = ix_add(L, row, ow);
	KNode *xi = ix_add(L, ix_add(L, xr, ix_mul(L, ow, cv->s[2])), ix_c(L, off));
	KNode *v = kir_bin(L->p, KB_ADD, kir_load(L->p, L->k, ob, oi),
	                   kir_bin(L->p, KB_MUL, wv, kir_load(L->p, L->k, xb, xi)));
	kir_append(L->p, il->body, kir_store(L->p, ob, oi, v));
}

/* The kw taps of one input row.  Tap kw is valid for ow in [lo_kw, hi_kw) (compile-time
 * constants: 0 <= ow*sw - pw + kw*dw < W).  Where all taps are valid, one vector loop
 * applies them all (one load and store of the output per KW multiply-adds); the borders get
 * one loop per tap. */
static void
taps_w(Lower *L, const Conv *cv, KNode *block, int wb, KNode *wr, int ob, KNode *row, int xb,
       KNode *xr)
{
	int64_t KW = cv->k[2], lo[64], hi[64], off[64], lo_all = 0, hi_all = cv->OW;
	KNode *wv[64];
	int fuse = KW <= 64;

	for (int64_t kw = 0; kw < KW; kw++) {
		int64_t o = kw * cv->dl[2] - cv->p[2];
		int64_t l = o >= 0 ? 0 : floordiv(-o + cv->s[2] - 1, cv->s[2]);
		int64_t h = floordiv(cv->W - 1 - o, cv->s[2]) + 1;
		if (h > cv->OW)
			h = cv->OW;
		KNode *w = kir_load(L->p, L->k, wb, ix_add(L, wr, ix_c(L, kw)));
		w = lw_let(L, block, "wv", w);
		if (!fuse) {
			tap_loop(L, cv, block, ob, row, xb, xr, w, o, l, h);
			continue;
		}
		lo[kw] = l, hi[kw] = h, off[kw] = o, wv[kw] = w;
		lo_all = l > lo_all ? l : lo_all;
		hi_all = h < hi_all ? h : hi_all;
	}
	if (!fuse)
		return;
	if (lo_all >= hi_all) {
		for (int64_t kw = 0; kw < KW; kw++)
			tap_loop(L, cv, block, ob, row, xb, xr, wv[kw], off[kw], lo[kw], hi[kw]);
		return;
	}
	for (int64_t kw = 0; kw < KW; kw++) {
		tap_loop(L, cv, block, ob, row, xb, xr, wv[kw], off[kw], lo[kw],
		         hi[kw] < lo_all ? hi[kw] : lo_all);
		tap_loop(L, cv, block, ob, row, xb, xr, wv[kw], off[kw],
		         lo[kw] > hi_all ? lo[kw] : hi_all, hi[kw]);
	}
	KNode *ow;
	KNode *il = lw_loop(L, block, "ow", ix_c(L, lo_all), ix_c(L, hi_all), LOOP_VECTOR, &ow);
	KNode *oi = ix_add(L, row, ow), *sum = kir_load(L->p, L->k, ob, oi);
	KNode *xo = lw_let(L, il->body, "xo", ix_add(L, xr, ix_mul(L, ow, cv->s[2])));
	for (int64_t kw = 0; kw < KW; kw++) {
		KNode *x = kir_load(L->p, L->k, xb, ix_add(L, xo, ix_c(L, off[kw])));
		sum = kir_bin(L->p, KB_ADD, sum, kir_bin(L->p, KB_MUL, wv[kw], x));
	}
	kir_append(L->p, il->body, kir_store(L->p, ob, oi, sum));
}

static int
conv_row(Lower *L, const Conv *cv, ValueId accv)
{
	KNode *n, *co, *od, *oh, *ow, *ci, *kd, *kh;
	const Type *ot = lw_type(L, cv->out);
	int ob = lw_outbuf(L, accv), xb = lw_buf(L, cv->x), wb = lw_buf(L, cv->w);
	KNode *body = conv_rows(L, cv, &n, &co, &od, &oh);

	/* row = ((n*Co + co)*OD + od)*OH*OW + oh*OW */
	KNode *nc = ix_add(L, ix_mul(L, n, cv->Co), co);
	KNode *row = ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, nc, cv->OD), od), cv->OH), oh);
	row = lw_let(L, body, "row", ix_mul(L, row, cv->OW));
	KNode *grp = lw_let(L, body, "g", kir_bin(L->p, KB_DIV, co, ix_c(L, cv->cog)));

	KNode *init = cv->b ? kir_load(L->p, L->k, lw_buf(L, cv->b), co) : kir_f32(L->p, 0);
	init = lw_simple(L, body, init);
	KNode *lp = lw_loop(L, body, "ow", ix_c(L, 0), ix_c(L, cv->OW), LOOP_VECTOR, &ow);
	kir_append(L->p, lp->body, kir_store(L->p, ob, ix_add(L, row, ow), init));

	KNode *cl = lw_loop(L, body, "ci", ix_c(L, 0), ix_c(L, cv->cig), LOOP_SERIAL, &ci);
	KNode *cin = ix_add(L, ix_mul(L, grp, cv->cig), ci);
	KNode *xc = lw_let(L, cl->body, "xc", ix_mul(L, ix_add(L, ix_mul(L, n, cv->Ci), cin),
	                                              cv->D * cv->H * cv->W));
	KNode *wc = lw_let(L, cl->body, "wc", ix_mul(L, ix_add(L, ix_mul(L, co, cv->cig), ci),
	                                              cv->k[0] * cv->k[1] * cv->k[2]));
	KNode *dl = lw_loop(L, cl->body, "kd", ix_c(L, 0), ix_c(L, cv->k[0]), LOOP_SERIAL, &kd);
	KNode *id = lw_let(L, dl->body, "id", ix_add(L, ix_add(L, ix_mul(L, od, cv->s[0]),
	                                                       ix_mul(L, kd, cv->dl[0])),
	                                              ix_c(L, -cv->p[0])));
	KNode *ifd = kir_if(L->p, inrange(L, id, cv->D));
	kir_append(L->p, dl->body, ifd);
	KNode *hl = lw_loop(L, ifd->body, "kh", ix_c(L, 0), ix_c(L, cv->k[1]), LOOP_SERIAL, &kh);
	KNode *ih = lw_let(L, hl->body, "ih", ix_add(L, ix_add(L, ix_mul(L, oh, cv->s[1]),
	                                                       ix_mul(L, kh, cv->dl[1])),
	                                              ix_c(L, -cv->p[1])));
	KNode *ifh = kir_if(L->p, inrange(L, ih, cv->H));
	kir_append(L->p, hl->body, ifh);
	KNode *xr = ix_add(L, xc, ix_mul(L, ix_add(L, ix_mul(L, id, cv->H), ih), cv->W));
	xr = lw_let(L, ifh->body, "xr", xr);
	KNode *wr = ix_add(L, wc, ix_mul(L, ix_add(L, ix_mul(L, kd, cv->k[1]), kh), cv->k[2]));
	wr = lw_let(L, ifh->body, "wr", wr);
	taps_w(L, cv, ifh->body, wb, wr, ob, row, xb, xr);

	/* the epilogue over the finished row */
	KNode *el = lw_loop(L, body, "ow", ix_c(L, 0), ix_c(L, cv->OW), LOOP_VECTOR, &ow);
	KNode *oidx[5] = { n, co, od, oh, ow };
	Coord c;
	coord_full(&c, ot, oidx);
	KNode *v = lw_let(L, el->body, "v", kir_load(L->p, L->k, ob, ix_add(L, row, ow)));
	return lw_output(L, el->body, &c, v);
}

/* Scalar form, shared by conv3d (transpose = 0) and conv_transpose3d (gather). */
static int
conv_scalar(Lower *L, const Conv *cv, int transpose)
{
	KNode *n, *co, *od, *oh, *ow, *ci, *k[3];
	KNode *o[3], *i[3];
	int64_t in[3] = { cv->D, cv->H, cv->W };
	const char *kn[3] = { "kd", "kh", "kw" }, *in_n[3] = { "id", "ih", "iw" };
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
		KNode *kl = lw_loop(L, blk, kn[a], ix_c(L, 0), ix_c(L, cv->k[a]), LOOP_SERIAL,
		                    &k[a]);
		blk = kl->body;
		if (!transpose) {
			/* i = o*s - p + k*d */
			KNode *e = ix_add(L, ix_mul(L, o[a], cv->s[a]), ix_mul(L, k[a], cv->dl[a]));
			i[a] = lw_let(L, blk, in_n[a], ix_add(L, e, ix_c(L, -cv->p[a])));
			ok = band(L, ok, inrange(L, i[a], in[a]));
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
		wi = ix_add(L, ix_mul(L, co, cv->cig), ci);      /* w[co, ci, kd, kh, kw] */
	} else {
		cin = ix_add(L, ix_mul(L, grp, cv->cig), ci);     /* w[cin, co % cog, kd, kh, kw] */
		KNode *col = kir_bin(L->p, KB_REM, co, ix_c(L, cv->cog));
		wi = ix_add(L, ix_mul(L, cin, cv->cog), col);
	}
	for (int a = 0; a < 3; a++)
		wi = ix_add(L, ix_mul(L, wi, cv->k[a]), k[a]);
	KNode *xi = ix_add(L, ix_mul(L, n, cv->Ci), cin);
	for (int a = 0; a < 3; a++)
		xi = ix_add(L, ix_mul(L, xi, in[a]), i[a]);
	KNode *prod = kir_bin(L->p, KB_MUL, kir_load(L->p, L->k, xb, xi),
	                      kir_load(L->p, L->k, wb, wi));
	kir_append(L->p, ifk->body, kir_assign(L->p, acc, kir_bin(L->p, KB_ADD,
	                                                        kir_ref(L->p, L->k, acc), prod)));
	KNode *oidx[5] = { n, co, od, oh, ow };
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

	conv_params(L, &cv);
	touch_inputs(L);
	accv = acc_value(L);
	if (accv && !lw_out_aliases_input(L))
		return conv_row(L, &cv, accv);
	return conv_scalar(L, &cv, 0);
}

/* root: conv_transpose3d with stride, pad, output_padding, dilation, groups, bias */
int
tmpl_conv_transpose(Lower *L)
{
	Conv cv;

	conv_params(L, &cv);
	return conv_scalar(L, &cv, 1);
}
