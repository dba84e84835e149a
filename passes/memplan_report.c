/* passes/memplan_report.c -- SEGC_MEMPLAN_REPORT=1: what fills the planned arena.
 *
 * A debugging aid for pass_memplan (which calls it after planning): recomputes every arena
 * value's live range [first, last group] from m->groups, finds the group where the most
 * arena bytes are occupied (overlapping values counted once) and the first group where the
 * arena's top is reached, and lists the values live there, largest first, with offset,
 * producing op, node name and live range.
 */
#include "pass.h"

#include <stdio.h>
#include <stdlib.h>

void memplan_report(const Module *m, FILE *f);

typedef struct {
	int64_t start, end, size, off;
} Live;

typedef struct {
	int64_t off, size;
} Range;

static Live *
live_ranges(const Module *m)
{
	Live *lv = calloc(m->nvalues ? m->nvalues : 1, sizeof *lv);

	if (!lv)
		return NULL;
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nouts; k++) {
			ValueId v = gr->outs[k];
			int64_t b = value_bytes(&m->values[v]);
			lv[v] = (Live){g, g, (b + 63) / 64 * 64, m->values[v].offset};
		}
		for (uint32_t k = 0; k < gr->nnodes + gr->npro; k++) { /* with the load prologue */
			const Node *n =
			    &m->nodes[k < gr->nnodes ? gr->nodes[k] : gr->pro[k - gr->nnodes]];
			for (int j = 0; j < n->nin; j++) {
				ValueId u = n->in[j];
				while (u && m->values[u].storage == ST_VIEW)
					u = m->values[u].alias;
				if (u && m->values[u].storage == ST_ARENA && lv[u].end < g)
					lv[u].end = g;
			}
		}
	}
	return lv;
}

static int
by_size_desc(const void *a, const void *b)
{
	const Range *x = a, *y = b;
	return (x->size < y->size) - (x->size > y->size);
}

static int
by_off(const void *a, const void *b)
{
	const Range *x = a, *y = b;
	return (x->off > y->off) - (x->off < y->off);
}

/* the bytes that the arena values live at group g occupy (overlaps counted once), and the
 * top of the highest one; r: scratch for nvalues ranges */
static int64_t
occupied(const Module *m, const Live *lv, int64_t g, Range *r, int64_t *top)
{
	uint32_t n = 0;
	int64_t sum = 0, hi = 0;

	*top = 0;
	for (uint32_t v = 1; v < m->nvalues; v++)
		if (m->values[v].storage == ST_ARENA && lv[v].start <= g && lv[v].end >= g)
			r[n++] = (Range){lv[v].off, lv[v].size};
	qsort(r, n, sizeof *r, by_off);
	for (uint32_t i = 0; i < n; i++) {
		int64_t lo = r[i].off > hi ? r[i].off : hi, e = r[i].off + r[i].size;
		if (e > lo)
			sum += e - lo;
		if (e > hi)
			hi = e;
	}
	*top = hi;
	return sum;
}

/* SEGC_MEMPLAN_REPORT=1 (a debugging aid, to stderr): the group where the most arena bytes
 * are occupied, the first group that reaches the arena's top, and the values live at the
 * latter, largest first, with the op that produces them and their live range */
void
memplan_report(const Module *m, FILE *f)
{
	Live *lv = live_ranges(m);
	int64_t peak = -1, peakbytes = 0, topg = -1, top;
	Range *r = malloc((size_t)m->nvalues * sizeof *r);
	uint32_t n = 0;

	if (!r || !lv) {
		free(r);
		free(lv);
		return;
	}
	for (uint32_t g = 0; g < m->ngroups; g++) {
		int64_t occ = occupied(m, lv, g, r, &top);
		if (occ > peakbytes) {
			peakbytes = occ;
			peak = g;
		}
		if (topg < 0 && top == m->arena_bytes)
			topg = g;
	}
	fprintf(f,
	        "; memplan: arena %.2f MiB, naive %.2f MiB, most occupied %.2f MiB at %s, "
	        "top reached at %s (group %lld of %u)\n",
	        m->arena_bytes / 1048576.0, m->naive_bytes / 1048576.0, peakbytes / 1048576.0,
	        peak >= 0 ? m->groups[peak].name : "-", topg >= 0 ? m->groups[topg].name : "-",
	        (long long)topg, m->ngroups);
	for (uint32_t v = 1; v < m->nvalues; v++)
		if (m->values[v].storage == ST_ARENA && lv[v].start <= topg && lv[v].end >= topg)
			r[n++] = (Range){v, lv[v].size};
	qsort(r, n, sizeof *r, by_size_desc);
	for (uint32_t i = 0; i < n; i++) {
		ValueId v = (ValueId)r[i].off;
		const Node *d = ir_def(m, v);
		fprintf(f, ";   %%%u %9.3f MiB @%-10lld %-14s %-40s groups %lld..%lld (%s..%s)\n",
		        v, r[i].size / 1048576.0, (long long)lv[v].off, optab[d->op].name,
		        d->name ? d->name : "", (long long)lv[v].start, (long long)lv[v].end,
		        m->groups[lv[v].start].name, m->groups[lv[v].end].name);
	}
	free(r);
	free(lv);
}
