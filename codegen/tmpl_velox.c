/* codegen/tmpl_velox.c -- templates of the VeloxSeg ops that canon does not rewrite.
 *
 * pwa_rel_bias: out[h, 0, p, q] = table[idx(p mod l, q mod l), h], the relative position
 * index computed from the token coordinates (ir/velox.h velox_relidx) instead of loaded from
 * the public code's relative_position_index buffer (the same integers). */
#include "tmpl.h"
#include "velox.h"

static KNode *
ix_bin(Lower *L, KBinOp op, KNode *a, int64_t c)
{
	return kir_bin(L->p, op, a, ix_c(L, c));
}

/* the three token coordinates of token index t (row-major over n) */
static void
coords(Lower *L, KNode *block, KNode *t, const int64_t *n, KNode **a)
{
	a[0] = lw_simple(L, block, ix_bin(L, KB_DIV, t, n[1] * n[2]));
	a[1] = lw_simple(L, block, ix_bin(L, KB_REM, ix_bin(L, KB_DIV, t, n[2]), n[1]));
	a[2] = lw_simple(L, block, ix_bin(L, KB_REM, t, n[2]));
}

int
tmpl_velox_rel_bias(Lower *L)
{
	const Type *t = lw_type(L, L->root->out[0]);
	KNode *idx[IR_MAXRANK], *a[3], *b[3];
	PwaGeom g;
	Coord c;

	if (t->rank != 4 || velox_geom(L->root, NULL, &g, L->d) < 0)
		return lw_fail(L, "pwa_rel_bias: bad result type");
	KNode *body = lw_nest(L, t->dims, t->rank, 0, idx);
	KNode *p = lw_simple(L, body, ix_bin(L, KB_REM, idx[2], g.l));
	KNode *q = lw_simple(L, body, ix_bin(L, KB_REM, idx[3], g.l));
	coords(L, body, p, g.n, a);
	coords(L, body, q, g.n, b);
	KNode *r = ix_c(L, 0);
	for (int k = 0; k < 3; k++) {
		KNode *dk = kir_bin(L->p, KB_SUB, a[k], b[k]);
		r = ix_add(L, ix_mul(L, r, 2 * g.n[k] - 1), ix_add(L, dk, ix_c(L, g.n[k] - 1)));
	}
	KNode *off = ix_add(L, ix_mul(L, r, t->dims[0]), idx[0]);
	coord_full(&c, t, idx);
	KNode *v = kir_load(L->p, L->k, lw_buf(L, L->root->in[0]), off);
	return lw_output(L, body, &c, v);
}
