/* passes/memplan.c -- give every materialised value a slot and an offset.
 *
 * Slots (the engine ABI, runtime/rt_gen.h): 0 = the activation arena, then 1+i for input i
 * (m->inputs order), then the outputs (m->outputs order), then the weights in the order of
 * the weight nodes in m->nodes (codegen writes the manifest in that same order).
 *   inputs ST_INPUT, outputs ST_OUTPUT (a group writes straight into the caller's buffer),
 *   weights ST_WEIGHT, constants ST_CONST (inlined), reshape results ST_VIEW with alias = the
 *   root of the reshape chain and the root's slot and offset, results internal to a group
 *   ST_NONE (so are a load prologue's, Group.pro), every other group result ST_ARENA at a
 *   64-byte aligned offset in slot 0.
 * Arena offsets come from liveness over the group order: a value is live from the group that
 * produces it to the last group that reads it (also through views).  An elementwise group
 * may write in place over an operand of its result's type whose last reader it is, when every
 * read of that operand's storage in the group has the result's type (so element i is read
 * before element i is written).  An input of a concat group whose last reader it is lives in
 * the concat's buffer at its chunk (see alias_concat).  Buffers (in-place chains and concat
 * chunks) are placed whole at the lowest offset where no member meets a placed value, once
 * in order of first use and once largest first; the smaller peak wins.  m->arena_bytes is
 * the peak; m->naive_bytes the sum of all arena values (aligned), for the report.
 * SEGC_MEMPLAN_REPORT=1 prints what is live at the peak to stderr (a debugging aid).
 * With PassOptions.act_bf16 (cuda --precision=bf16) the larger f32 activations in the arena
 * are stored as bf16 (Value.bf16; act_bf16()): half the bytes, the kernels converting.
 *
 * requires:  m->groups (fuse), nodes in topological order
 * preserves: the IR; sets Value.storage/slot/offset/alias, arena_bytes, naive_bytes
 *
 *   before:  k0: %2 = relu %1    k1: %3 = exp %2    k2: %4 = conv3d %3   output %4
 *   after:   %2 arena@0  %3 arena@0 (in place over %2)  %4 output slot 2
 */
#include "pass.h"
#include "pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALIGN = 64 };

/* passes/memplan_report.c: what is live at the peak, to f (SEGC_MEMPLAN_REPORT=1) */
void memplan_report(const Module *m, FILE *f);

typedef struct {
	int64_t start, end; /* first and last group index that touch the value */
	int64_t size, off;  /* aligned bytes; offset once placed (-1: not yet) */
} Live;

/* the value whose bytes v reads: v itself unless v is a reshape (chain) */
static ValueId
root_of(const Module *m, ValueId v)
{
	while (v && ir_def(m, v)->op == OP_reshape)
		v = ir_def(m, v)->in[0];
	return v;
}

/* PassOptions.act_bf16: an arena value stored as bf16 (the kernels convert as they load and
 * store): an f32 activation of 4096 elements or more, not a moments result (per-channel
 * statistics stay f32, as small values do) */
static int
act_bf16(const Module *m, ValueId v)
{
	const Value *x = &m->values[v];
	return x->type.dtype == DT_F32 && type_numel(&x->type) >= 4096 &&
	       ir_def(m, v)->op != OP_moments;
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

/* Buffers: an in-place result shares its donor's buffer (same relative offset), and an input
 * of a channel concat (every dim before the axis 1, so each input is one contiguous chunk)
 * whose last reader is the concat lives inside the concat's buffer at its chunk's offset:
 * its producer writes there and the concat's copy of that chunk reads and writes the same
 * bytes.  A buffer is placed as a whole; its members are rectangles (bytes x groups). */
typedef struct {
	ValueId *rep;   /* value -> the buffer it belongs to (its first value) */
	int64_t *rel;   /* value -> offset within the buffer */
	int64_t *bsize; /* rep -> buffer bytes */
} Bufs;

/* the members of buffer r end no later than group gi */
static int
ends_by(const Module *m, const Bufs *b, const Live *lv, ValueId r, int64_t gi)
{
	for (uint32_t v = 1; v < m->nvalues; v++)
		if (b->rep[v] == r && lv[v].end > gi)
			return 0;
	return 1;
}

/* alias the chunks of a concat group gi's inputs into its result's buffer */
static void
alias_concat(const Module *m, const Group *g, int64_t gi, const Live *lv, Bufs *b)
{
	const Node *n = &m->nodes[g->root];
	ValueId c = g->outs[0];
	const Type *t = &m->values[c].type;
	int64_t axis, off = 0;

	if (n->op != OP_concat || g->nnodes != 1 || g->nouts != 1 ||
	    m->values[c].storage != ST_ARENA)
		return;
	axis = ir_attr_int(n, "axis");
	if (axis < 0)
		axis += t->rank;
	for (int64_t d = 0; d < axis; d++)
		if (t->dims[d] != 1)
			return;
	for (int j = 0; j < n->nin; off += value_bytes(&m->values[n->in[j]]), j++) {
		ValueId u = root_of(m, n->in[j]), r;
		if (!u || m->values[u].storage != ST_ARENA || lv[u].end != gi || off % ALIGN)
			continue;
		r = b->rep[u];
		if (r == b->rep[c] || b->rel[u] != 0 || b->bsize[r] != lv[u].size ||
		    value_bytes(&m->values[u]) != value_bytes(&m->values[n->in[j]]) ||
		    m->values[u].bf16 != m->values[c].bf16 || !ends_by(m, b, lv, r, gi))
			continue;
		for (uint32_t v = 1; v < m->nvalues; v++)
			if (b->rep[v] == r) {
				b->rep[v] = b->rep[c];
				b->rel[v] += off;
			}
		b->bsize[r] = 0;
	}
}

typedef struct {
	ValueId rep;
	int64_t start, size;
} Order;

static int
by_start(const void *a, const void *b)
{
	const Order *x = a, *y = b;
	if (x->start != y->start)
		return (x->start > y->start) - (x->start < y->start);
	return (x->rep > y->rep) - (x->rep < y->rep);
}

static int
by_size(const void *a, const void *b)
{
	const Order *x = a, *y = b;
	if (x->size != y->size)
		return (x->size < y->size) - (x->size > y->size);
	return by_start(a, b);
}

/* place the buffers in order ord[0..nb), each at its lowest fitting offset (ir/pack.c);
 * boff[rep] = the buffer's offset; returns the peak */
static int64_t
place(const Module *m, const Bufs *b, const Live *lv, const Order *ord, uint32_t nb, int64_t *boff,
      Arena *scratch)
{
	PackRect *rects = arena_alloc(scratch, ((size_t)m->nvalues + 1) * sizeof *rects);
	uint32_t *first = arena_alloc(scratch, ((size_t)nb + 1) * sizeof *first);
	int64_t *at = arena_alloc(scratch, ((size_t)nb + 1) * sizeof *at), peak;
	uint32_t nr = 0;

	for (uint32_t i = 0; i < nb; i++) {
		first[i] = nr;
		for (uint32_t v = 1; v < m->nvalues; v++)
			if (m->values[v].storage == ST_ARENA && b->rep[v] == ord[i].rep)
				rects[nr++] =
				    (PackRect){b->rel[v], lv[v].size, lv[v].start, lv[v].end};
	}
	first[nb] = nr;
	peak = pack_place(rects, first, nb, at, scratch);
	for (uint32_t i = 0; i < nb; i++) {
		boff[ord[i].rep] = at[i];
		/* a buffer may be larger than its members (a concat's chunks fill it) */
		if (at[i] + b->bsize[ord[i].rep] > peak)
			peak = at[i] + b->bsize[ord[i].rep];
	}
	return peak;
}

int
pass_memplan(Module *m, PassCtx *cx)
{
	uint8_t *grouped = arena_zalloc(cx->scratch, m->nnodes + 1);
	Live *lv = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *lv);
	Order *ord = arena_alloc(cx->scratch, (size_t)m->nvalues * sizeof *ord);
	int64_t *boff = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *boff);
	int64_t *boff2 = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *boff2);
	int64_t peak;
	uint32_t nb = 0;
	Bufs b;

	for (uint32_t v = 0; v < m->nvalues; v++) {
		Value *x = &m->values[v];
		x->storage = ST_NONE;
		x->slot = 0;
		x->offset = 0;
		x->alias = 0;
		x->bf16 = 0;
	}
	for (uint32_t g = 0; g < m->ngroups; g++) {
		for (uint32_t k = 0; k < m->groups[g].nnodes; k++)
			grouped[m->groups[g].nodes[k]] = 1;
		for (uint32_t k = 0; k < m->groups[g].npro; k++)
			grouped[m->groups[g].pro[k]] = 1;
		if (m->groups[g].stats)
			grouped[m->groups[g].stats] = 1;
	}
	if (assign_fixed(m, grouped, cx->diag) < 0)
		return -1;
	m->naive_bytes = 0;

	/* group results that are not engine outputs live in the arena (as bf16 where
	 * act_bf16 says so) */
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nouts; k++) {
			ValueId v = gr->outs[k];
			if (m->values[v].storage == ST_OUTPUT)
				continue;
			m->values[v].storage = ST_ARENA;
			m->values[v].bf16 = cx->opt->act_bf16 && act_bf16(m, v);
			int64_t b = value_bytes(&m->values[v]);
			lv[v] = (Live){g, g, b > 0 ? (b + ALIGN - 1) / ALIGN * ALIGN : ALIGN, -1};
			m->naive_bytes += lv[v].size;
		}
	}
	for (uint32_t v = 1; v < m->nvalues; v++) /* a view's elements are its root's */
		if (m->values[v].storage == ST_VIEW)
			m->values[v].bf16 = m->values[root_of(m, v)].bf16;
	/* a value lives until the last group that reads it, directly or through views (a load
	 * prologue's operands are read by the group whose root it feeds) */
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nnodes + gr->npro; k++) {
			const Node *n =
			    &m->nodes[k < gr->nnodes ? gr->nodes[k] : gr->pro[k - gr->nnodes]];
			for (int j = 0; j < n->nin; j++) {
				ValueId u = root_of(m, n->in[j]);
				if (u && m->values[u].storage == ST_ARENA && lv[u].end < g)
					lv[u].end = g;
			}
		}
	}

	/* buffers: in-place chains, then concat chunks; placed in two orders, the better kept */
	b.rep = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *b.rep);
	b.rel = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *b.rel);
	b.bsize = arena_zalloc(cx->scratch, (size_t)m->nvalues * sizeof *b.bsize);
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nouts; k++) {
			ValueId v = gr->outs[k], d;
			if (m->values[v].storage != ST_ARENA)
				continue;
			d = donor(m, gr, g, v, lv);
			b.rep[v] = d ? b.rep[d] : v;
			b.rel[v] = d ? b.rel[d] : 0;
			if (!d)
				b.bsize[v] = lv[v].size;
		}
	}
	for (uint32_t g = 0; g < m->ngroups; g++)
		alias_concat(m, &m->groups[g], g, lv, &b);
	for (uint32_t v = 1; v < m->nvalues; v++) {
		ValueId r = b.rep[v];
		if (m->values[v].storage != ST_ARENA)
			continue;
		if (r == v)
			ord[nb++] = (Order){v, lv[v].start, b.bsize[v]};
	}
	for (uint32_t i = 0; i < nb; i++)
		for (uint32_t v = 1; v < m->nvalues; v++)
			if (m->values[v].storage == ST_ARENA && b.rep[v] == ord[i].rep &&
			    lv[v].start < ord[i].start)
				ord[i].start = lv[v].start;
	qsort(ord, nb, sizeof *ord, by_start);
	m->arena_bytes = place(m, &b, lv, ord, nb, boff, cx->scratch);
	qsort(ord, nb, sizeof *ord, by_size);
	peak = place(m, &b, lv, ord, nb, boff2, cx->scratch);
	if (peak < m->arena_bytes) {
		m->arena_bytes = peak;
		memcpy(boff, boff2, (size_t)m->nvalues * sizeof *boff);
	}
	for (uint32_t v = 1; v < m->nvalues; v++)
		if (m->values[v].storage == ST_ARENA) {
			lv[v].off = boff[b.rep[v]] + b.rel[v];
			m->values[v].offset = lv[v].off;
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
	if (getenv("SEGC_MEMPLAN_REPORT"))
		memplan_report(m, stderr);
	return 0;
}
