/* codegen/tmpl_gpu.c -- which GPU form lowers a root when the program is lowered for CUDA.
 *
 * The generic templates are correct on a GPU (emit_cuda.c maps each parallel iteration to a
 * thread) but are shaped for a CPU core: few, long iterations.  The GPU forms give a thread
 * (or a block) little work each.  Each returns 1 when it has no form for the root; the
 * generic template then lowers it (docs/cuda.md; conv3d_ndhwc has no generic CUDA form:
 * its SIMT form, tmpl_gpu_conv.c, takes kernel widths up to 64).  A conv3d root with a load
 * prologue (Group.pro) goes to the tensor-core form only where that form applies the prologue. */
#include "tmpl.h"

/* The tensor-core forms (the halo-tile conv where $SEGC_MMA_HALO=1 and it applies, else the
 * implicit GEMM); where one lowered a root with a load prologue without applying it,
 * its statements are dropped and 1 is returned, so the SIMT form (which applies it) follows. */
static int
mma_or_back(Lower *L)
{
	uint32_t nkids = L->k->body->nkids, nbufs = L->k->nbufs;
	int64_t scratch = L->scratch_used;
	int rc = tmpl_gpu_halo(L);
	if (rc == 1)
		rc = tmpl_gpu_mma(L);

	if (rc != 0 || !lw_has_prologue(L) || L->pro_applied)
		return rc;
	L->k->body->nkids = nkids;
	L->k->nbufs = nbufs;
	L->scratch_used = scratch;
	L->stats_done = L->want_val = 0;
	return 1;
}

int
tmpl_gpu(Lower *L)
{
	int rc = 1;

	switch (L->root->op) {
	case OP_conv3d:
	case OP_conv3d_ndhwc:
	case OP_conv_transpose3d:
	case OP_linear:
	case OP_matmul:
		if (L->p->precision != KP_FP32)
			rc = mma_or_back(L);
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
