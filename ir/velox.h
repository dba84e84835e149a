/* ir/velox.h -- VeloxSeg's paired-window geometry, shared by the pwa_* shape rules
 * (ir/shape_velox.c), interpreter kernels (ir/interp_velox.c), canon rewrites
 * (passes/canon_velox.c) and templates (codegen/tmpl_velox.c). */
#ifndef SEGC_VELOX_H
#define SEGC_VELOX_H
#include "ir.h"

#define PWA_MAXPAIRS 8

/* The window pairs of one PWA stage.  Pair i has big window B[i] = window * r^i and small
 * window S[i] = small * r^i, for i = 0.. while any axis of B[i] is <= the grid (VeloxSeg's
 * `while (bw <= input_size).any()`).  Every pair has the same token grid n = window / small,
 * l = n0*n1*n2 tokens, and nw[i] = prod(grid / B[i]) windows, starting at window off[i]. */
typedef struct {
	int npairs;
	int64_t n[3], l;
	int64_t B[PWA_MAXPAIRS][3], S[PWA_MAXPAIRS][3];
	int64_t nw[PWA_MAXPAIRS], off[PWA_MAXPAIRS], nwin; /* nwin = sum of nw */
} PwaGeom;

/* Fill g from the node's window/small/r attributes and the stage grid (NULL: n and l
 * only).  Returns 0, or -1 after a one-line diagnostic at the node naming the attribute at
 * fault (d may be NULL: then only the status). */
int velox_geom(const Node *n, const int64_t grid[3], PwaGeom *g, Diag *d);

/* relative position index of tokens t, u (row-major over n) into the (2n-1)^3 table */
static inline int64_t
velox_relidx(const int64_t n[3], int64_t t, int64_t u)
{
	int64_t a0 = t / (n[1] * n[2]), a1 = t / n[2] % n[1], a2 = t % n[2];
	int64_t b0 = u / (n[1] * n[2]), b1 = u / n[2] % n[1], b2 = u % n[2];
	return ((a0 - b0 + n[0] - 1) * (2 * n[1] - 1) + (a1 - b1 + n[1] - 1)) * (2 * n[2] - 1) +
	       (a2 - b2 + n[2] - 1);
}

/* The VeloxSeg paper's counts (thop 0.1.1 in eval mode, ir/cost_velox.c) on the graph as
 * written: its "FLOPs" (conv MACs with transposed convs at 8x, norms 2-4 per element, softmax)
 * and its params (weights of conv/linear/norm modules only). */
double velox_macs_thop(const Module *m);
int64_t velox_params_thop(const Module *m);

#endif
