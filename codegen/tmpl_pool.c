/* codegen/tmpl_pool.c -- max_pool3d and avg_pool3d, NCDHW, PyTorch semantics.
 *
 * Loops over the output (parallel over N*C*OD*OH, vector over OW).  max: padding is -inf, so
 * taps outside the input are skipped (with dilation; ceil_mode windows are clipped).  avg:
 * the window [o*s - p, min(o*s - p + k, in + p)) is summed over its part inside the input;
 * the divisor is the padded window size when count_include_pad, else the clipped one.
 *   max:  acc = -inf; for kd: if id valid: for kh: if ih valid: for kw: if iw valid:
 *           acc = max(acc, x) */
#include "tmpl.h"

#include <math.h>

static KNode *
imin(Lower *L, KNode *a, int64_t b)
{
	return kir_bin(L->p, KB_MIN, a, ix_c(L, b));
}

static KNode *
imax(Lower *L, KNode *a, int64_t b)
{
	return kir_bin(L->p, KB_MAX, a, ix_c(L, b));
}

/* root: max_pool3d or avg_pool3d */
int
tmpl_pool(Lower *L)
{
	const Node *r = L->root;
	const Type *it = lw_type(L, r->in[0]), *ot = lw_type(L, r->out[0]);
	const Attr *sa = ir_attr(r, "stride");
	int avg = r->op == OP_avg_pool3d;
	int64_t k[3], s[3], p[3], dl[3] = { 1, 1, 1 }, in[3];
	KNode *idx[5], *o[3], *kv[3], *iv[3];
	const char *kn[3] = { "kd", "kh", "kw" };
	Coord c;

	for (int a = 0; a < 3; a++) {
		k[a] = ir_attr(r, "kernel")->ints[a];
		s[a] = sa->present ? sa->ints[a] : k[a];
		p[a] = ir_attr(r, "pad")->ints[a];
		if (!avg)
			dl[a] = ir_attr(r, "dilation")->ints[a];
		in[a] = it->dims[2 + a];
	}
	int64_t xs[3] = { in[1] * in[2], in[2], 1 };       /* input strides of d, h, w */
	KNode *body = lw_nest(L, ot->dims, 5, 1, idx);
	coord_full(&c, ot, idx);
	o[0] = idx[2], o[1] = idx[3], o[2] = idx[4];
	int xb = lw_buf(L, r->in[0]);
	KNode *nc = ix_add(L, ix_mul(L, idx[0], it->dims[1]), idx[1]);
	KNode *xbase = lw_simple(L, body, ix_mul(L, nc, in[0] * in[1] * in[2]));
	int acc = kir_var(L->p, L->k, KT_F32, "acc");
	kir_append(L->p, body, kir_let(L->p, L->k, acc, kir_f32(L->p, avg ? 0 : -INFINITY)));
	KNode *blk = body, *xi = xbase;

	if (!avg) {
		for (int a = 0; a < 3; a++) {
			KNode *kl = lw_loop(L, blk, kn[a], ix_c(L, 0), ix_c(L, k[a]), LOOP_SERIAL,
			                    &kv[a]);
			KNode *e = ix_add(L, ix_mul(L, o[a], s[a]), ix_mul(L, kv[a], dl[a]));
			iv[a] = lw_let(L, kl->body, "i", ix_add(L, e, ix_c(L, -p[a])));
			KNode *ok = kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, iv[a], ix_c(L, 0)),
			                    kir_bin(L->p, KB_LT, iv[a], ix_c(L, in[a])));
			KNode *ifn = kir_if(L->p, ok);
			kir_append(L->p, kl->body, ifn);
			blk = ifn->body;
			xi = ix_add(L, xi, ix_mul(L, iv[a], xs[a]));
		}
		KNode *x = kir_load(L->p, L->k, xb, xi);
		kir_append(L->p, blk, kir_assign(L->p, acc, kir_bin(L->p, KB_MAX,
		                                                  kir_ref(L->p, L->k, acc), x)));
		return lw_output(L, body, &c, kir_ref(L->p, L->k, acc));
	}

	KNode *size = NULL, *csize = NULL, *s0[3], *e0[3];
	for (int a = 0; a < 3; a++) {
		KNode *st = lw_let(L, body, "st", ix_add(L, ix_mul(L, o[a], s[a]), ix_c(L, -p[a])));
		KNode *en = imin(L, ix_add(L, st, ix_c(L, k[a])), in[a] + p[a]);
		en = lw_let(L, body, "en", en);
		KNode *n = kir_bin(L->p, KB_SUB, en, st);
		size = size ? kir_bin(L->p, KB_MUL, size, n) : n;
		s0[a] = lw_let(L, body, "s0", imax(L, st, 0));
		e0[a] = lw_let(L, body, "e0", imin(L, en, in[a]));
		n = kir_bin(L->p, KB_SUB, e0[a], s0[a]);
		csize = csize ? kir_bin(L->p, KB_MUL, csize, n) : n;
	}
	for (int a = 0; a < 3; a++) {
		KNode *kl = lw_loop(L, blk, kn[a], s0[a], e0[a], LOOP_SERIAL, &iv[a]);
		blk = kl->body;
		xi = ix_add(L, xi, ix_mul(L, iv[a], xs[a]));
	}
	KNode *x = kir_load(L->p, L->k, xb, xi);
	kir_append(L->p, blk, kir_assign(L->p, acc, kir_bin(L->p, KB_ADD,
	                                                  kir_ref(L->p, L->k, acc), x)));
	KNode *div = ir_attr_int(r, "count_include_pad") ? size : csize;
	KNode *v = kir_bin(L->p, KB_DIV, kir_ref(L->p, L->k, acc), kir_cast(L->p, KT_F32, div));
	return lw_output(L, body, &c, v);
}
