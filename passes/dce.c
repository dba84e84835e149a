/* passes/dce.c -- remove nodes whose results reach no module output.
 *
 * Engine outputs keep their values live; a live node keeps its operands live.  Sources are
 * removed like any node when unused (an unused constant disappears) EXCEPT
 *   - weight nodes, which always stay: the engine's manifest must list every weight the
 *     checkpoint contains (batch_norm's num_batches_tracked loses its only use in canon, yet
 *     a state_dict has it and the weight loader checks the two lists against each other);
 *   - input nodes, which are the engine's ABI (m->inputs) whether or not they are read.
 *
 * requires:  nodes in topological order (ir_verify)
 * preserves: value ids, types and order of the nodes it keeps
 *
 *   before:  %3 = silu %2          after:  (gone, if %3 had no user)
 */
#include "pass.h"

/* true if any result of n is used by a live node or is an output */
static int
anylive(const Node *n, const uint8_t *live)
{
	for (int i = 0; i < n->nout; i++)
		if (live[n->out[i]])
			return 1;
	return 0;
}

int
pass_dce(Module *m, PassCtx *cx)
{
	uint8_t *live = arena_zalloc(cx->scratch, m->nvalues);

	for (uint32_t i = 0; i < m->noutputs; i++)
		live[m->outputs[i]] = 1;
	/* walking backwards over a topological order sees every user
	 * before its producer, so one sweep is enough */
	for (uint32_t i = m->nnodes; i-- > 0;) {
		Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		if (n->op != OP_weight && n->op != OP_input && !anylive(n, live)) {
			n->dead = 1;
			continue;
		}
		for (int j = 0; j < n->nin; j++)
			live[n->in[j]] = 1;
	}
	ir_sweep(m, &cx->changed);
	ir_count_uses(m);
	return 0;
}
