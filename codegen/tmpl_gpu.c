/* codegen/tmpl_gpu.c -- which GPU form lowers a root when the program is lowered for CUDA.
 *
 * The generic templates are correct on a GPU (emit_cuda.c maps each parallel iteration to a
 * thread) but are shaped for a CPU core: few, long iterations.  The GPU forms give a thread
 * (or a block) little work each.  Each returns 1 when it has no form for the root; the
 * generic template then lowers it (docs/cuda.md). */
#include "tmpl.h"

int
tmpl_gpu(Lower *L)
{
	int rc = 1;

	switch (L->root->op) {
	case OP_conv3d:
	case OP_conv_transpose3d:
	case OP_linear:
	case OP_matmul:
		if (L->p->precision != KP_FP32)
			rc = tmpl_gpu_mma(L);
		if (rc == 1)
			rc = tmpl_gpu_conv(L);
		return rc;
	case OP_max_pool3d:
	case OP_avg_pool3d:
		return tmpl_gpu_conv(L);
	case OP_reduce_sum:
	case OP_reduce_mean:
	case OP_reduce_max:
	case OP_moments:
		return tmpl_gpu_reduce(L);
	case OP_selective_scan:
	case OP_causal_conv1d:
		return tmpl_gpu_scan(L);
	default:
		return 1;
	}
}
