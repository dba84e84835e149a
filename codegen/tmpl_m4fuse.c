/* codegen/tmpl_m4fuse.c -- select_by_index: out[n, ...] = x{index[n]}[n, ...].
 *
 * Loops over the output (parallel over the outer dims, vector over the last);
 * at each element the label of sample n is loaded (i64) and a select chain
 * picks the candidate: v = x{M-1}; for k = M-2 .. 1: v = lab == k ? xk : v;  v
 * = lab <= 0 ? x0 : v so a label outside [0, M) is clamped, never an
 * out-of-bounds read.  The engine rejects such labels before running (manifest
 * "range" record); the clamp keeps memory safe when an application bypasses
 * that check. */
#include "tmpl.h"

int tmpl_select_by_index(Lower *L) {
  const Node *r = L->root;
  const Type *ot = lw_type(L, r->out[0]);
  int M = r->nin - 1;
  KNode *idx[IR_MAXRANK];
  Coord c;

  KNode *body = lw_nest(L, ot->dims, ot->rank, 1, idx);
  coord_full(&c, ot, idx);
  KNode *lab =
      lw_simple(L, body, kir_load(L->p, L->k, lw_buf(L, r->in[0]), idx[0]));
  KNode *at = lw_simple(L, body, lw_index(L, &c, ot));
  KNode *v = kir_load(L->p, L->k, lw_buf(L, r->in[M]), at);
  for (int k = M - 2; k >= 0; k--) {
    KNode *cond = k == 0 ? kir_bin(L->p, KB_LE, lab, ix_c(L, 0))
                         : kir_bin(L->p, KB_EQ, lab, ix_c(L, k));
    KNode *xk = kir_load(L->p, L->k, lw_buf(L, r->in[1 + k]), at);
    v = kir_select(L->p, cond, xk, v);
  }
  return lw_output(L, body, &c, v);
}
