/* ir/ir_m4fuse.h -- helpers of the M4Fuse op family (ir/shape_m4fuse.c), shared by its
 * shape/cost rules, interpreter kernels (ir/interp_m4fuse.c) and canon rewrites
 * (passes/canon_m4fuse.c).
 *
 * conv3d_w and layer_norm_w are conv3d / layer_norm whose weights are data operands.  Their
 * rules are the core op's rules run on a "view" node: the same results, location and name,
 * the core op's attributes (copied by key, the rest at their defaults) and operands. */
#ifndef SEGC_IR_M4FUSE_H
#define SEGC_IR_M4FUSE_H
#include "ir.h"

typedef struct {
	Node node; /* the core-op view of the family node */
	ValueId in[4];
	Attr attrs[16];
} M4View;

/* conv3d_w -> conv3d {x, w, -} with bias=false; layer_norm_w -> layer_norm {x, w, b} with
 * affine=true.  Returns 0, or -1 when n is neither (a bug). */
int m4_view(const Node *n, M4View *v);

#endif
