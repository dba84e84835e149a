/* ir/mamba.h -- scan orders of the SegMamba-family ops (ir/ops_mamba.def), shared by the shape
 * rules, the interpreter and the codegen templates.
 *
 * An order walks the L tokens of a sequence as a row-major volume `dims` (product L), axis by
 * axis in the order `perm` (slowest first), optionally reversed (`flip`).  Step q visits
 * token pos(q) = sum_j digit_j(q') * stride[j] where q' = flip ? L-1-q : q and digit_j are the
 * mixed-radix digits of q' over ext[] (slowest first).  Reversing the whole walk is the same as
 * reversing every digit, which is how templates emit it (nested loops counting down). */
#ifndef SEGC_MAMBA_H
#define SEGC_MAMBA_H
#include "ir.h"

typedef struct {
	int n;                      /* walk axes, >= 1 */
	int64_t ext[IR_MAXRANK];    /* extent of walk axis j (slowest first) */
	int64_t stride[IR_MAXRANK]; /* token stride of walk axis j */
	int flip;                   /* walk reversed */
	int64_t len;                /* L */
} ScanOrder;

/* Resolve the order attributes (dims, perm, flip, nslices) of n for a sequence of length len.
 * Returns 0, or -1 after a diagnostic at n's Loc naming the attribute. */
int mamba_order(const Node *n, int64_t len, ScanOrder *o, Diag *d);
/* token index visited at step q */
int64_t mamba_pos(const ScanOrder *o, int64_t q);
/* kept tokens of token_prune: k = clamp(floor(keep * L), 1, L) in double; rows = k + (k < L) */
int64_t mamba_keep_count(double keep, int64_t len);

#endif
