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
 * Last, load prologues (docs/codegen.md): a group of elementwise nodes whose result has
 * exactly one use, operand 0 of a conv3d root, and whose operands from outside the group
 * are one materialised value X of the result's type, constants, and values that broadcast
 * per (batch, channel) (size 1 on every spatial dim: instance norm statistics, affine
 * weights) leaves the list of groups and becomes that conv group's Group.pro, with
 * pro_src = X: the conv applies the chain to each x element it loads, and the chain's values
 * are no longer materialised.  Only with opt->prologue, never with opt->no_fuse.
 *
 * Then, with opt->stats (GPU targets), conv statistics: a moments group over axes [2, 3, 4]
 * of a conv3d group's result (an instance norm's), or over axes [2 .. 5] of its view as [N, G,
 * C/G, D, H, W] (a group norm's), leaves the list and becomes that group's Group.stats; the
 * group's outs are then its result, the mean and the rstd.
 *
 * requires:  no composite ops left (canon), uses counted or countable; dce first
 * preserves: values and their ids; adds identity copies for outputs; sets m->groups
 *
 *   before:  %2 = conv3d %x, %w   %3 = relu %2   %4 = add %3, %x    output %4
 *   after:   kernel k0_conv3d { %2 = conv3d ...  %3 = relu %2  %4 = add %3, %x }
 *
 *   before:  %5 = sub %1, %mean  %6 = mul %5, %rstd  %7 = relu %6  %8 = conv3d %7, %w
 *   after:   kernel k1_conv3d { prologue from %1 [%5 %6 %7]  %8 = conv3d ... }
 *
 *   before:  %2 = conv3d %x, %w   %3, %4 = moments %2 {axes=[2,3,4]}
 *   after:   kernel k0_conv3d { %2 = conv3d ...  stats %3, %4 = moments %2 }
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	NodeId *nodes;
	uint32_t n, cap;
	uint32_t last;          /* position of the last member in m->nodes */
	int dropped;            /* moved into a conv group as its load prologue */
	NodeId *pro;            /* the load prologue (a conv root's), see prologues() */
	uint32_t npro;
	ValueId pro_src;
	NodeId stats;           /* moments of the group's result, see conv_stats() */
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

/* v broadcasts onto t with size 1 on every spatial dim (d >= 2 of t): per (n, c) */
static int
per_nc(const Type *v, const Type *t)
{
	if (v->rank > t->rank)
		return 0;
	for (int d = 0; d < v->rank; d++) {
		int td = d + t->rank - v->rank;
		if (v->dims[d] != 1 && (td >= 2 || v->dims[d] != t->dims[td]))
			return 0;
	}
	return 1;
}

/* The source X of group c as a load prologue for its one reader (a conv's operand 0), or 0:
 * every member elementwise with the result's type, every operand from outside the group
 * either X (one materialised value of the result's type) or a constant or a per-(n, c)
 * value. */
static ValueId
chain_source(const Module *m, const Build *c, const int64_t *owner, int64_t ci)
{
	const Node *last = &m->nodes[c->nodes[c->n - 1]];
	const Type *t = &m->values[last->out[0]].type;
	ValueId x = 0;

	if (t->rank != 5)
		return 0;
	for (uint32_t k = 0; k < c->n; k++) {
		const Node *n = &m->nodes[c->nodes[k]];
		if (optab[n->op].cls != FUSE_ELT || n->nout != 1 ||
		    !type_equal(&m->values[n->out[0]].type, t))
			return 0;
		for (int j = 0; j < n->nin; j++) {
			ValueId v = n->in[j];
			const Node *def;
			if (!v)
				return 0;
			def = ir_def(m, v);
			if (owner[m->values[v].def] == ci)
				continue;
			if (def->op == OP_constant)
				continue; /* inlined as an immediate */
			if (type_equal(&m->values[v].type, t) && (!x || x == v)) {
				x = v;
				continue;
			}
			if (!per_nc(&m->values[v].type, t))
				return 0;
		}
	}
	return x;
}

/* node -> the group (index into b) it is a member of, or -1 */
static int64_t *
owners(const Module *m, const Build *b, uint32_t nb, Arena *scratch)
{
	int64_t *owner = arena_alloc(scratch, (size_t)(m->nnodes + 1) * sizeof *owner);

	for (uint32_t i = 0; i < m->nnodes; i++)
		owner[i] = -1;
	for (uint32_t g = 0; g < nb; g++)
		for (uint32_t k = 0; k < b[g].n; k++)
			owner[b[g].nodes[k]] = g;
	return owner;
}

/* Move each elementwise group whose one use is operand 0 of a conv3d root into that conv's
 * group as its load prologue (docs/codegen.md "load prologue"). */
static void
prologues(Module *m, Build *b, uint32_t nb, Arena *scratch)
{
	int64_t *owner = owners(m, b, nb, scratch);

	for (uint32_t g = 0; g < nb; g++) {
		const Node *root = &m->nodes[b[g].nodes[0]];
		ValueId v = root->op == OP_conv3d ? root->in[0] : 0;
		int64_t ci = v ? owner[m->values[v].def] : -1;
		Build *c = ci >= 0 ? &b[ci] : NULL;
		ValueId x;

		if (!c || ci == g || c->dropped || c->npro || m->values[v].nuses != 1 ||
		    m->nodes[c->nodes[c->n - 1]].out[0] != v)
			continue;
		x = chain_source(m, c, owner, ci);
		if (!x)
			continue;
		b[g].pro = c->nodes;
		b[g].npro = c->n;
		b[g].pro_src = x;
		c->dropped = 1;
	}
}

/* The rank-5 y whose statistics moments node n computes, or 0: n over axes [2, 3, 4] of y
 * (an instance norm's), or over axes [2 .. 5] of a view of y as [N, G, C/G, D, H, W] (a group
 * norm's, after canon) */
static ValueId
stats_operand(const Module *m, const Node *n)
{
	const Attr *ax = n->op == OP_moments ? ir_attr(n, "axes") : NULL;
	const Type *t = &m->values[n->in[0]].type;
	uint8_t seen[6] = {0};
	if (!ax || (t->rank != 5 && t->rank != 6) || ax->n != t->rank - 2)
		return 0;
	for (int i = 0; i < ax->n; i++) {
		int64_t a = ax->ints[i] < 0 ? ax->ints[i] + t->rank : ax->ints[i];
		if (a < 2 || a >= t->rank || seen[a]++)
			return 0;
	}
	if (t->rank == 5)
		return n->in[0];
	const Node *v = ir_def(m, n->in[0]);
	const Type *yt = v->op == OP_reshape ? &m->values[v->in[0]].type : NULL;
	if (!yt || yt->rank != 5 || yt->dims[0] != t->dims[0] ||
	    yt->dims[1] != t->dims[1] * t->dims[2])
		return 0;
	for (int d = 2; d < 5; d++)
		if (yt->dims[d] != t->dims[d + 1])
			return 0;
	return v->in[0];
}

/* Move each instance- or group-norm moments group whose operand is the result of a conv3d
 * group (or its channel-group view) into that group as its statistics (Group.stats): the conv
 * may compute them from its output tiles (docs/codegen.md).  Only with opt->stats, never with
 * opt->no_fuse. */
static void
conv_stats(Module *m, Build *b, uint32_t nb, Arena *scratch)
{
	int64_t *owner = owners(m, b, nb, scratch);

	for (uint32_t g = 0; g < nb; g++) {
		const Node *n = &m->nodes[b[g].nodes[0]];
		ValueId y = b[g].n == 1 ? stats_operand(m, n) : 0;
		int64_t ci = y ? owner[m->values[y].def] : -1;
		Build *c = ci >= 0 ? &b[ci] : NULL;
		if (!c || c->dropped || c->stats || m->nodes[c->nodes[0]].op != OP_conv3d ||
		    m->nodes[c->nodes[c->n - 1]].nout != 1 ||
		    m->nodes[c->nodes[c->n - 1]].out[0] != y)
			continue;
		c->stats = b[g].nodes[0];
		b[g].dropped = 1;
	}
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
	uint32_t ng = 0;

	qsort(b, nb, sizeof *b, by_last);
	m->groups = arena_zalloc(m->arena, (size_t)(nb + 1) * sizeof *m->groups);
	for (uint32_t i = 0; i < nb; i++) {
		Group *g;
		const Node *root = &m->nodes[b[i].nodes[0]];
		const Node *last = &m->nodes[b[i].nodes[b[i].n - 1]];

		if (b[i].dropped)
			continue;
		g = &m->groups[ng];
		if (b[i].npro) {
			g->pro =
			    arena_memdup(m->arena, b[i].pro, (size_t)b[i].npro * sizeof *g->pro);
			g->npro = b[i].npro;
			g->pro_src = b[i].pro_src;
		}

		g->root = b[i].nodes[0];
		g->nnodes = b[i].n;
		g->nodes = arena_memdup(m->arena, b[i].nodes, (size_t)b[i].n * sizeof *g->nodes);
		g->nouts = last->nout;
		g->outs = arena_memdup(m->arena, last->out, (size_t)last->nout * sizeof *g->outs);
		if (b[i].stats) { /* outs: the result, then the moments' mean and rstd */
			const Node *st = &m->nodes[b[i].stats];
			ValueId *o = arena_alloc(m->arena, 3 * sizeof *o);
			o[0] = g->outs[0], o[1] = st->out[0], o[2] = st->out[1];
			g->outs = o;
			g->nouts = 3;
			g->stats = b[i].stats;
		}
		g->name = arena_printf(m->arena, "k%u_%s", ng, optab[root->op].name);
		g->loc = root->loc;
		ng++;
	}
	m->ngroups = m->capgroups = ng;
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
	if (!cx->opt->no_fuse && cx->opt->prologue)
		prologues(m, b, nb, cx->scratch);
	if (!cx->opt->no_fuse && cx->opt->stats)
		conv_stats(m, b, nb, cx->scratch);
	emit_groups(m, b, nb);
	cx->changed = 1;
	return 0;
}
