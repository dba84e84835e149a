/* codegen/tmpl_home.c -- template of the Mamba-HoME op pad_tokens (ir/ops_home.def).
 *
 * Two top-level loop nests, like a two-operand concat whose second operand is a constant:
 * the first copies x into the leading n entries of the padded axis, the second writes
 * `value` into the ceil(n/K)*K - n trailing ones (absent when n % K == 0).  Both end in
 * lw_output(), so an elementwise epilogue fuses (a -FLT_MAX logit mask, ...). */
#include "tmpl.h"

int
tmpl_pad_tokens(Lower *L)
{
	const Type *t = lw_type(L, L->root->out[0]), *it = lw_type(L, L->root->in[0]);
	int64_t axis = ir_attr_int(L->root, "axis"), dims[IR_MAXRANK];
	KNode *idx[IR_MAXRANK], *oidx[IR_MAXRANK];
	Coord c, ic;

	if (axis < 0)
		axis += t->rank;
	if (axis < 0 || axis >= t->rank || it->rank != t->rank)
		return lw_fail(L, "pad_tokens: bad axis");
	/* the copy of x */
	KNode *body = lw_nest(L, it->dims, it->rank, 1, idx);
	coord_full(&ic, it, idx);
	coord_full(&c, t, idx);
	KNode *v = kir_load(L->p, L->k, lw_buf(L, L->root->in[0]), lw_index(L, &ic, it));
	if (lw_output(L, body, &c, v) < 0)
		return -1;
	/* the padding */
	int64_t n = it->dims[axis], pad = t->dims[axis] - n;
	if (pad <= 0)
		return 0;
	for (int d = 0; d < t->rank; d++)
		dims[d] = d == axis ? pad : t->dims[d];
	body = lw_nest(L, dims, t->rank, 1, idx);
	for (int d = 0; d < t->rank; d++)
		oidx[d] = d == axis ? ix_add(L, idx[d], ix_c(L, n)) : idx[d];
	coord_full(&c, t, oidx);
	return lw_output(L, body, &c, kir_f32(L->p, ir_attr_float(L->root, "value")));
}
