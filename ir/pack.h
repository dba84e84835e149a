/* ir/pack.h -- placing buffers in one arena: two-dimensional first fit (bytes x time).
 *
 * A buffer is a set of rectangles: bytes [off, off + size) relative to the buffer, live over
 * the kernels [start, end].  Buffers are placed one after the other, each at the lowest
 * offset where none of its rectangles meets a rectangle already placed (both the byte and the
 * time intervals overlapping).  passes/memplan.c decides what the buffers are and the order. */
#ifndef SEGC_PACK_H
#define SEGC_PACK_H
#include <stdint.h>

#include "arena.h"

typedef struct {
	int64_t off, size;  /* bytes, relative to the buffer */
	int64_t start, end; /* first and last kernel that touch them */
} PackRect;

/* Buffer i has rects[first[i] .. first[i + 1]).  Places the buffers in order 0..n-1; at[i]
 * receives buffer i's offset.  Returns the peak (highest end of a placed byte range).
 * Temporaries come from scratch. */
int64_t pack_place(const PackRect *rects, const uint32_t *first, uint32_t n, int64_t *at,
                   Arena *scratch);

#endif
