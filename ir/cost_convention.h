/* ir/cost_convention.h -- MAC counts the way a paper's FLOP tool counts them, next to segc's
 * exact count (ir/cost.c).  Used by `segc info` (docs/cli.md, docs/models/m4fuse.md).
 *
 * A convention is a table (ir/cost_convention.c): which ops count their MACs, and a per-element
 * cost for norms.  Counted on the graph as written (before canon rewrites composite ops). */
#ifndef SEGC_COST_CONVENTION_H
#define SEGC_COST_CONVENTION_H
#include "ir.h"

/* Names of the known conventions, NULL-terminated: "fvcore" (M4Fuse's tables). */
extern const char *const ir_cost_conventions[];

/* MACs of node n under convention conv; -1 for an unknown convention. */
double ir_node_macs_convention(const Module *m, const Node *n, const char *conv);
/* Sum over the live non-source nodes of m; -1 for an unknown convention. */
double ir_macs_convention(const Module *m, const char *conv);

#endif
