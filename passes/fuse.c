/* passes/fuse.c -- group nodes into kernels: a root op and its elementwise epilogue.
 *
 * First, every engine output that is an input, a weight, a constant, a reshape (a view) or
 * a repeat of an earlier output gets an `identity` copy node, appended at the end (its
 * operand is defined earlier, so the order stays topological); the output then names the
 * copy.  After that every engine output is the result of some group.
 *
 * Then, walking the nodes in topological order:
 *   - sources (input, weight, constant) are in no group; reshape is in no group either: it is
 *     a view of its operand's bytes (memplan gives it ST_VIEW);
 *   - an ELT node joins the group whose current result it reads, when that result has
 *     exactly one use (this node; an engine output counts as a use), the group's root has a
 *     single result, and the node's result has the same type as that result.  Its other
 *     operands are materialised values or constants, read with numpy broadcasting;
 *   - any other node (ROOT, RED, INJ, or an ELT node that joins nothing) starts a group.
 * A group's members are in topological order, root first (codegen lowers them in the order
 * of Group.nodes), but need not be contiguous in m->nodes: another group's nodes may lie in
 * between.  Groups are ordered by their last member's position, a valid execution order:
 * every value a group reads from another group was produced by that group's last member,
 * which comes earlier.  Group.outs = the last member's result (all results of a
 * multi-result root such as moments, which takes no epilogue).  Names are "k<i>_<rootop>".
 * With opt->no_fuse every non-source node other than a reshape is a group of its own.
 *
 * requires:  no composite ops left (canon), uses counted or countable; dce first
 * preserves: values and their ids; adds identity copies for outputs; sets m->groups
 *
 *   before:  %2 = conv3d %x, %w   %3 = relu %2   %4 = add %3, %x    output %4
 *   after:   kernel k0_conv3d { %2 = conv3d ...  %3 = relu %2  %4 = add %3, %x }
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	NodeId *nodes;
	uint32_t n, cap;
	uint32_t last;          /* position of the last member in m->nodes */
} Build;

static int
is_view(const Module *m, ValueId v)
{
	return ir_def(m, v)->op == OP_reshape;
}

/* identity copies for outputs that no group would otherwise write */
static int
copy_outputs(Module *m, PassCtx *cx)
{
	for (uint32_t i = 0; i < m->noutputs; i++) {
		ValueId v = m->outputs[i];
		const Node *def = ir_def(m, v);
		int dup = 0;
		int64_t id;

		for (uint32_t j = 0; j < i; j++)
			dup |= m->outputs[j] == v;
		if (!dup && optab[def->op].cls != FUSE_SRC && !is_view(m, v))
			continue;
		id = ir_add_node(m, OP_identity, &v, 1, NULL, m->output_names[i], def->loc,
		                 cx->diag);
		if (id < 0)
			return -1;
		m->outputs[i] = m->nodes[id].out[0];
		cx->changed = 1;
	}
	ir_count_uses(m);
	return 0;
}

/* the group n can join as an epilogue, or -1 */
static int64_t
join_target(const Module *m, const Node *n, const int64_t *open, const Build *b)
{
	if (optab[n->op].cls != FUSE_ELT || n->nout != 1)
		return -1;
	for (int j = 0; j < n->nin; j++) {
		ValueId v = n->in[j];
		const Build *g;

		if (!v || open[v] < 0 || m->values[v].nuses != 1)
			continue;
		g = &b[open[v]];
		if (m->nodes[g->nodes[0]].nout != 1)
			continue;
		if (type_equal(&m->values[v].type, &m->values[n->out[0]].type))
			return open[v];
	}
	return -1;
}

static int
by_last(const void *a, const void *b)
{
	const Build *x = a, *y = b;
	return (x->last > y->last) - (x->last < y->last);
}

/* copy the built groups into m->groups, in execution order */
static void
emit_groups(Module *m, Build *b, uint32_t nb)
{
	qsort(b, nb, sizeof *b, by_last);
	m->groups = arena_zalloc(m->arena, (size_t)(nb + 1) * sizeof *m->groups);
	m->ngroups = m->capgroups = nb;
	for (uint32_t i = 0; i < nb; i++) {
		Group *g = &m->groups[i];
		const Node *root = &m->nodes[b[i].nodes[0]];
		const Node *last = &m->nodes[b[i].nodes[b[i].n - 1]];

		g->root = b[i].nodes[0];
		g->nnodes = b[i].n;
		g->nodes = arena_memdup(m->arena, b[i].nodes, (size_t)b[i].n * sizeof *g->nodes);
		g->nouts = last->nout;
		g->outs = arena_memdup(m->arena, last->out, (size_t)last->nout * sizeof *g->outs);
		g->name = arena_printf(m->arena, "k%u_%s", i, optab[root->op].name);
		g->loc = root->loc;
	}
}

int
pass_fuse(Module *m, PassCtx *cx)
{
	int64_t *open;          /* value -> group whose current result it is, or -1 */
	Build *b;
	uint32_t nb = 0;

	if (copy_outputs(m, cx) < 0)
		return -1;
	open = arena_alloc(cx->scratch, (size_t)m->nvalues * sizeof *open);
	b = arena_zalloc(cx->scratch, (size_t)(m->nnodes + 1) * sizeof *b);
	for (uint32_t v = 0; v < m->nvalues; v++)
		open[v] = -1;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		int64_t g = -1;
		Build *gb;

		if (n->dead || optab[n->op].cls == FUSE_SRC || n->op == OP_reshape)
			continue;
		if (!cx->opt->no_fuse)
			g = join_target(m, n, open, b);
		if (g >= 0) {
			open[m->nodes[b[g].nodes[b[g].n - 1]].out[0]] = -1;
		} else {
			g = nb++;
		}
		gb = &b[g];
		*ARENA_PUSH(cx->scratch, gb->nodes, gb->n, gb->cap) = i;
		gb->last = i;
		for (int j = 0; j < n->nout; j++)
			open[n->out[j]] = g;
	}
	emit_groups(m, b, nb);
	cx->changed = 1;
	return 0;
}
