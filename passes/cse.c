/* passes/cse.c -- merge identical nodes: same op, same operands, same attributes.
 *
 * Nodes are visited in topological order; each node's operands are first rewritten through
 * the replacements made so far, then the node is looked up in a hash table keyed on
 * (op, operands, attributes).  A hit replaces every result of the later node by the earlier
 * node's and marks the later one dead.  Attributes are compared field by field (ints, floats
 * bit for bit, strings by content, lists element by element).  Inputs and weights are never
 * merged: two weights with equal types are still two checkpoint entries.  Constants are
 * merged (a constant is its attributes), which lets their users merge too.
 *
 * requires:  nodes in topological order
 * preserves: ids and order of the nodes it keeps; engine outputs are rewritten
 *
 *   before:  %3 = relu %1   %4 = relu %1   %5 = add %3, %4
 *   after:   %3 = relu %1                  %5 = add %3, %3
 */
#include "pass.h"

#include <string.h>

static uint64_t
mix(uint64_t h, uint64_t x)
{
	return (h ^ x) * 0x100000001b3ull;
}

/* only the fields that the attribute's type uses: the others may hold anything */
static uint64_t
hash_attr(uint64_t h, const Attr *a)
{
	uint64_t bits = 0;

	h = mix(h, a->type);
	h = mix(h, a->present);
	if (!a->present)
		return h;
	switch (a->type) {
	case AT_INT:
	case AT_BOOL:
		return mix(h, (uint64_t)a->i);
	case AT_FLOAT:
		memcpy(&bits, &a->f, sizeof bits);
		return mix(h, bits);
	case AT_STR:
		for (const char *s = a->s; s && *s; s++)
			h = mix(h, (uint8_t)*s);
		return h;
	case AT_INTS:
		for (int i = 0; a->ints && i < a->n; i++)
			h = mix(h, (uint64_t)a->ints[i]);
		return mix(h, a->n);
	case AT_FLOATS:
		for (int i = 0; a->floats && i < a->n; i++) {
			memcpy(&bits, &a->floats[i], sizeof bits);
			h = mix(h, bits);
		}
		return mix(h, a->n);
	}
	return h;
}

static uint64_t
hash_node(const Node *n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	h = mix(h, n->op);
	h = mix(h, n->nin);
	for (int i = 0; i < n->nin; i++)
		h = mix(h, n->in[i]);
	for (int i = 0; i < optab[n->op].nattrs; i++)
		h = hash_attr(h, &n->attrs[i]);
	return h;
}

static int
same_list(const void *a, const void *b, size_t bytes)
{
	if (bytes == 0)
		return 1;
	if (!a || !b)
		return a == b;
	return memcmp(a, b, bytes) == 0;
}

static int
same_attr(const Attr *a, const Attr *b)
{
	if (a->type != b->type || a->present != b->present)
		return 0;
	if (!a->present)
		return 1;               /* absent: the value fields mean nothing */
	switch (a->type) {
	case AT_INT:
	case AT_BOOL:
		return a->i == b->i;
	case AT_FLOAT:
		return memcmp(&a->f, &b->f, sizeof a->f) == 0;   /* bit for bit: -0 and NaN too */
	case AT_STR:
		return (!a->s && !b->s) || (a->s && b->s && !strcmp(a->s, b->s));
	case AT_INTS:
		return a->n == b->n && same_list(a->ints, b->ints, a->n * sizeof *a->ints);
	case AT_FLOATS:
		return a->n == b->n && same_list(a->floats, b->floats, a->n * sizeof *a->floats);
	}
	return 1;
}

static int
same_node(const Node *a, const Node *b)
{
	if (a->op != b->op || a->nin != b->nin)
		return 0;
	for (int i = 0; i < a->nin; i++)
		if (a->in[i] != b->in[i])
			return 0;
	for (int i = 0; i < optab[a->op].nattrs; i++)
		if (!same_attr(&a->attrs[i], &b->attrs[i]))
			return 0;
	return 1;
}

int
pass_cse(Module *m, PassCtx *cx)
{
	uint32_t size = 16;
	NodeId *table;                          /* node id + 1; 0: empty slot */
	ValueId *repl = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *repl);

	while (size < 2 * m->nnodes)
		size *= 2;
	table = arena_zalloc(cx->scratch, (size_t)size * sizeof *table);
	for (uint32_t i = 0; i < m->nnodes; i++) {
		Node *n = &m->nodes[i];
		uint32_t h;

		if (n->dead)
			continue;
		for (int j = 0; j < n->nin; j++)
			if (repl[n->in[j]])
				n->in[j] = repl[n->in[j]];
		if (n->op == OP_input || n->op == OP_weight)
			continue;
		for (h = (uint32_t)hash_node(n) & (size - 1); table[h]; h = (h + 1) & (size - 1))
			if (same_node(&m->nodes[table[h] - 1], n))
				break;
		if (!table[h]) {
			table[h] = i + 1;
			continue;
		}
		for (int j = 0; j < n->nout; j++)
			repl[n->out[j]] = m->nodes[table[h] - 1].out[j];
		n->dead = 1;
		cx->changed = 1;
	}
	for (uint32_t i = 0; i < m->noutputs; i++)
		if (repl[m->outputs[i]])
			m->outputs[i] = repl[m->outputs[i]];
	ir_sweep(m, &cx->changed);
	ir_count_uses(m);
	return 0;
}
