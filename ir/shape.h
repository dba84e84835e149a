/* ir/shape.h -- what the shape-rule files (ir/shape.c, ir/shape_<family>.c) share. */
#ifndef SEGC_SHAPE_H
#define SEGC_SHAPE_H
#include "ir.h"

/* The checks every shape rule starts with (operand count and ids, parameters present exactly
 * when enabled, data operands typed and not too large, required attributes and list lengths);
 * untyped_weights: accept a named weight of rank -1 as a data operand, for the rule to type.
 * 0, or -1 after a diagnostic at the node. */
int shape_prelude(Module *m, Node *n, Diag *d, int untyped_weights);

#endif
