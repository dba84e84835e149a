/* passes/schedule.c -- pick each kernel's vector width and tiles.
 *
 * The CPU target has 256-bit vectors (AVX2): a group's vector width is 32 bytes over the
 * element size of its root's first result (8 for f32).  Tiles stay 0, which lets each
 * codegen template choose its own defaults; a tuning log would set them here.
 *
 * requires:  m->groups (fuse)
 * preserves: everything but Group.vector and Group.tile
 *
 *   before:  kernel k0_conv3d (vector 0)        after:  kernel k0_conv3d (vector 8)
 */
#include "pass.h"

#include <string.h>

enum { VECTOR_BYTES = 32 };     /* the CPU target's vector register */

int
pass_schedule(Module *m, PassCtx *cx)
{
	for (uint32_t i = 0; i < m->ngroups; i++) {
		Group *g = &m->groups[i];
		const Value *v = &m->values[m->nodes[g->root].out[0]];
		int32_t vector = VECTOR_BYTES / dtype_size(v->type.dtype);

		if (g->vector != vector)
			cx->changed = 1;
		g->vector = vector;
		memset(g->tile, 0, sizeof g->tile);
	}
	return 0;
}
