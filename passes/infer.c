/* passes/infer.c -- verify the module and re-run every shape rule.
 *
 * The builder already ran each shape rule as the frontend added nodes; this pass checks the
 * structural invariants (ir_verify: operands defined earlier, one definition per value, ...)
 * and then re-runs optab[op].shape on every live node in topological order, so a module that
 * came from elsewhere (ir_parse, a test) gets the same types the frontend would give it.
 * Parameters still typed rank -1 are typed by their consumer's rule here.
 *
 * requires:  nothing (this is the first pass)
 * preserves: nodes, ids and order; changes only types that were missing or stale
 *
 *   before:  %2:f32[?] = relu %1           after:  %2:f32[1,4,8,8,8] = relu %1
 */
#include "pass.h"

int
pass_infer(Module *m, PassCtx *cx)
{
	Type *before = arena_alloc(cx->scratch, (size_t)m->nvalues * sizeof *before);

	if (ir_verify(m, cx->diag) < 0)
		return -1;
	for (uint32_t v = 0; v < m->nvalues; v++)
		before[v] = m->values[v].type;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		Node *n = &m->nodes[i];
		/* input and weight types come from the graph and from consumers */
		if (n->dead || n->op == OP_input || n->op == OP_weight)
			continue;
		if (optab[n->op].shape(m, n, cx->diag) < 0)
			return -1;
	}
	for (uint32_t v = 1; v < m->nvalues; v++)
		if (!type_equal(&before[v], &m->values[v].type))
			cx->changed = 1;
	ir_count_uses(m);
	return 0;
}
