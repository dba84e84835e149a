/* codegen/tmpl_matmul.c -- linear (y = x W^T + b over the last axis) and batched matmul.
 *
 * linear: one parallel iteration per output element (rows x out features); a dot product of
 * two contiguous rows of length in, as a vector reduction loop:
 *   for p in [0, R*O) parallel { acc = b[o]; for k in [0, I) vector { acc += x[r,k] * W[o,k] } }
 * matmul: one parallel iteration per output row (batch, m); the row is accumulated in the
 * output buffer with the k loop outside a contiguous vector loop over the columns:
 *   y[b,m,:] = 0; for k { av = a[b,m,k]; for n vector { y[b,m,n] += av * b[b,k,n] } }
 * then the epilogue runs over the row.  If the output may overlap an operand (in-place
 * planning), a register accumulator with the k loop innermost is used instead. */
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
	kir_append(L->p, kl->body, kir_assign(L->p, acc, kir_bin(L->p, KB_ADD,
	                                                       kir_ref(L->p, L->k, acc),
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
	for (uint32_t i = 1; i < L->g->nnodes; i++) {    /* register epilogue operands first */
		const Node *n = &L->m->nodes[L->g->nodes[i]];
		for (int j = 0; j < n->nin; j++) {
			const Value *v = &L->m->values[n->in[j]];
			if (v->storage != ST_NONE && v->storage != ST_CONST &&
			    L->m->nodes[v->def].op != OP_constant)
				lw_buf(L, n->in[j]);
		}
	}
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

/* root: linear or matmul (both operands of rank >= 2 for matmul) */
int
tmpl_matmul(Lower *L)
{
	if (L->root->op == OP_linear)
		return lin(L);
	if (lw_type(L, L->root->in[0])->rank < 2 || lw_type(L, L->root->in[1])->rank < 2)
		return lw_fail(L, "matmul of a rank-1 operand is not supported");
	return mm(L);
}
