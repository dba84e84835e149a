/* passes/memplan.c -- give every materialised value a slot and an offset.
 *
 * Slots (the engine ABI, runtime/rt_gen.h): 0 = the activation arena, then 1+i for input i
 * (m->inputs order), then the outputs (m->outputs order), then the weights in the order of
 * the weight nodes in m->nodes (codegen writes the manifest in that same order).
 *   inputs ST_INPUT, outputs ST_OUTPUT (a group writes straight into the caller's buffer),
 *   weights ST_WEIGHT, constants ST_CONST (inlined), reshape results ST_VIEW with alias = the
 *   root of the reshape chain and the root's slot and offset, results internal to a group
 *   ST_NONE, every other group result ST_ARENA at a 64-byte aligned offset in slot 0.
 * Arena offsets come from liveness over the group order: a value is live from the group that
 * produces it to the last group that reads it (also through views).  Values are placed in
 * production order at the best-fitting gap among the values whose intervals overlap theirs.
 * An elementwise group may write in place over an operand of its result's type whose last
 * reader it is, when every read of that operand's storage in the group has the result's type
 * (so element i is read before element i is written).  m->arena_bytes is the peak;
 * m->naive_bytes the sum of all arena values (aligned), for the report.
 *
 * requires:  m->groups (fuse), nodes in topological order
 * preserves: the IR; sets Value.storage/slot/offset/alias, arena_bytes, naive_bytes
 *
 *   before:  k0: %2 = relu %1    k1: %3 = exp %2    k2: %4 = conv3d %3   output %4
 *   after:   %2 arena@0  %3 arena@0 (in place over %2)  %4 output slot 2
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

enum { ALIGN = 64 };

typedef struct {
	int64_t start, end; /* first and last group index that touch the value */
	int64_t size, off;  /* aligned bytes; offset once placed (-1: not yet) */
} Live;

typedef struct {
	int64_t off, size;
} Range;

/* the value whose bytes v reads: v itself unless v is a reshape (chain) */
static ValueId
root_of(const Module *m, ValueId v)
{
	while (v && ir_def(m, v)->op == OP_reshape)
		v = ir_def(m, v)->in[0];
	return v;
}

static int
by_off(const void *a, const void *b)
{
	const Range *x = a, *y = b;
	return (x->off > y->off) - (x->off < y->off);
}

/* sources and views; 0, or -1 if a computing node is in no group (fuse has not run) */
static int
assign_fixed(Module *m, const uint8_t *grouped, Diag *d)
{
	uint32_t slot = 1 + m->ninputs + m->noutputs;

	for (uint32_t i = 0; i < m->ninputs; i++) {
		m->values[m->inputs[i]].storage = ST_INPUT;
		m->values[m->inputs[i]].slot = 1 + i;
	}
	for (uint32_t i = 0; i < m->noutputs; i++) {
		Value *v = &m->values[m->outputs[i]];
		const Node *def = ir_def(m, m->outputs[i]);
		if (v->storage != ST_NONE || !grouped[v->def])
			return diag_error(d, def->loc,
			                  "output '%s' is not written by a kernel of its "
			                  "own, expected the fuse pass before memplan",
			                  m->output_names[i]);
		v->storage = ST_OUTPUT;
		v->slot = 1 + m->ninputs + i;
	}
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		Value *v = &m->values[n->out[0]];
		if (n->dead)
			continue;
		if (n->op == OP_weight) {
			v->storage = ST_WEIGHT;
			v->slot = slot++;
		} else if (n->op == OP_constant) {
			v->storage = ST_CONST;
		} else if (n->op == OP_reshape) {
			v->storage = ST_VIEW;
			v->alias = root_of(m, n->in[0]);
		} else if (optab[n->op].cls != FUSE_SRC && !grouped[i]) {
			return diag_error(d, n->loc,
			                  "node %s is in no kernel, expected the fuse pass "
			                  "before memplan",
			                  optab[n->op].name);
		}
	}
	return 0;
}

/* the arena value group g may overwrite with its result r, or 0 */
static ValueId
donor(const Module *m, const Group *g, int64_t gi, ValueId r, const Live *lv)
{
	const Type *t = &m->values[r].type;
	ValueId best = 0;

	if (optab[m->nodes[g->root].op].cls != FUSE_ELT || g->nouts != 1)
		return 0;
	for (uint32_t k = 0; k < g->nnodes && !best; k++) {
		const Node *n = &m->nodes[g->nodes[k]];
		for (int j = 0; j < n->nin && !best; j++) {
			ValueId u = root_of(m, n->in[j]);
			if (u && m->values[u].storage == ST_ARENA && lv[u].end == gi &&
			    lv[u].size == lv[r].size && type_equal(&m->values[n->in[j]].type, t))
				best = u;
		}
	}
	/* every read of the donor's bytes in this group must be elementwise at the same index */
	for (uint32_t k = 0; k < g->nnodes && best; k++) {
		const Node *n = &m->nodes[g->nodes[k]];
		for (int j = 0; j < n->nin; j++)
			if (root_of(m, n->in[j]) == best &&
			    !type_equal(&m->values[n->in[j]].type, t))
				return 0;
	}
	return best;
}

/* best-fit offset for v among the placed values live at the same time */
static int64_t
best_fit(const Live *lv, const ValueId *placed, uint32_t nplaced, ValueId v, Range *tmp)
{
	uint32_t n = 0;
	int64_t cursor = 0, best = -1, bestgap = 0;

	for (uint32_t i = 0; i < nplaced; i++) {
		const Live *p = &lv[placed[i]];
		if (p->end >= lv[v].start && p->start <= lv[v].end)
			tmp[n++] = (Range){p->off, p->size};
	}
	qsort(tmp, n, sizeof *tmp, by_off);
	for (uint32_t i = 0; i < n; i++) {
		int64_t gap = tmp[i].off - cursor;
		if (gap >= lv[v].size && (best < 0 || gap < bestgap)) {
			best = cursor;
			bestgap = gap;
		}
		if (tmp[i].off + tmp[i].size > cursor)
			cursor = tmp[i].off + tmp[i].size;
	}
	return best >= 0 ? best : cursor;
}

int
pass_memplan(Module *m, PassCtx *cx)
{
	uint8_t *grouped = arena_zalloc(cx->scratch, m->nnodes + 1);
	Live *lv = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *lv);
	ValueId *placed = arena_alloc(cx->scratch, (size_t)m->nvalues * sizeof *placed);
	Range *tmp = arena_alloc(cx->scratch, (size_t)m->nvalues * sizeof *tmp);
	uint32_t nplaced = 0;

	for (uint32_t v = 0; v < m->nvalues; v++) {
		Value *x = &m->values[v];
		x->storage = ST_NONE;
		x->slot = 0;
		x->offset = 0;
		x->alias = 0;
	}
	for (uint32_t g = 0; g < m->ngroups; g++)
		for (uint32_t k = 0; k < m->groups[g].nnodes; k++)
			grouped[m->groups[g].nodes[k]] = 1;
	if (assign_fixed(m, grouped, cx->diag) < 0)
		return -1;
	m->naive_bytes = 0;

	/* group results that are not engine outputs live in the arena */
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nouts; k++) {
			ValueId v = gr->outs[k];
			int64_t b = type_bytes(&m->values[v].type);
			if (m->values[v].storage == ST_OUTPUT)
				continue;
			m->values[v].storage = ST_ARENA;
			lv[v] = (Live){g, g, b > 0 ? (b + ALIGN - 1) / ALIGN * ALIGN : ALIGN, -1};
			m->naive_bytes += lv[v].size;
		}
	}
	/* a value lives until the last group that reads it, directly or through views */
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nnodes; k++) {
			const Node *n = &m->nodes[gr->nodes[k]];
			for (int j = 0; j < n->nin; j++) {
				ValueId u = root_of(m, n->in[j]);
				if (u && m->values[u].storage == ST_ARENA && lv[u].end < g)
					lv[u].end = g;
			}
		}
	}

	m->arena_bytes = 0;
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nouts; k++) {
			ValueId v = gr->outs[k], d;
			if (m->values[v].storage != ST_ARENA)
				continue;
			d = donor(m, gr, g, v, lv);
			lv[v].off = d ? lv[d].off : best_fit(lv, placed, nplaced, v, tmp);
			placed[nplaced++] = v;
			m->values[v].offset = lv[v].off;
			if (lv[v].off + lv[v].size > m->arena_bytes)
				m->arena_bytes = lv[v].off + lv[v].size;
		}
	}
	/* views share their root's slot and offset */
	for (uint32_t v = 1; v < m->nvalues; v++) {
		Value *x = &m->values[v];
		if (x->storage == ST_VIEW) {
			x->slot = m->values[x->alias].slot;
			x->offset = m->values[x->alias].offset;
		}
	}
	cx->changed = 1;
	return 0;
}
