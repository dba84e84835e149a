/* ir/pack.c -- two-dimensional first fit for the memory planner (ir/pack.h). */
#include "pack.h"

#include <stdlib.h>

static int
cmp_i64(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;
	return (*x > *y) - (*x < *y);
}

static int
meets_time(const PackRect *a, const PackRect *b)
{
	return a->start <= b->end && b->start <= a->end;
}

/* lowest offset at which the rects mem[0..nm) fit among the placed rects */
static int64_t
first_fit(const PackRect *placed, uint32_t np, const PackRect *mem, uint32_t nm, PackRect *near,
          int64_t *cand)
{
	uint32_t nn = 0, nc = 0;

	/* only rects alive at the same time can collide */
	for (uint32_t i = 0; i < np; i++)
		for (uint32_t k = 0; k < nm; k++)
			if (meets_time(&placed[i], &mem[k])) {
				near[nn++] = placed[i];
				break;
			}
	/* the answer is 0 or puts some member right on top of some near rect */
	cand[nc++] = 0;
	for (uint32_t i = 0; i < nn; i++)
		for (uint32_t k = 0; k < nm; k++)
			if (meets_time(&near[i], &mem[k]) &&
			    near[i].off + near[i].size >= mem[k].off)
				cand[nc++] = near[i].off + near[i].size - mem[k].off;
	qsort(cand, nc, sizeof *cand, cmp_i64);
	for (uint32_t c = 0; c < nc; c++) {
		int ok = 1;
		for (uint32_t i = 0; i < nn && ok; i++)
			for (uint32_t k = 0; k < nm && ok; k++)
				ok = !(meets_time(&near[i], &mem[k]) &&
				       near[i].off < cand[c] + mem[k].off + mem[k].size &&
				       cand[c] + mem[k].off < near[i].off + near[i].size);
		if (ok)
			return cand[c];
	}
	return cand[nc - 1]; /* not reached: the top of every rect is free */
}

int64_t
pack_place(const PackRect *rects, const uint32_t *first, uint32_t n, int64_t *at, Arena *scratch)
{
	uint32_t total = first[n], maxm = 1, np = 0;
	PackRect *placed = arena_alloc(scratch, ((size_t)total + 1) * sizeof *placed);
	PackRect *near = arena_alloc(scratch, ((size_t)total + 1) * sizeof *near);
	int64_t peak = 0;

	for (uint32_t i = 0; i < n; i++)
		if (first[i + 1] - first[i] > maxm)
			maxm = first[i + 1] - first[i];
	int64_t *cand = arena_alloc(scratch, ((size_t)total * maxm + 1) * sizeof *cand);
	for (uint32_t i = 0; i < n; i++) {
		const PackRect *mem = rects + first[i];
		uint32_t nm = first[i + 1] - first[i];
		at[i] = first_fit(placed, np, mem, nm, near, cand);
		for (uint32_t k = 0; k < nm; k++) {
			placed[np] = mem[k];
			placed[np].off += at[i];
			if (placed[np].off + placed[np].size > peak)
				peak = placed[np].off + placed[np].size;
			np++;
		}
	}
	return peak;
}
