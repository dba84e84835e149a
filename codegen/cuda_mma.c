/* codegen/cuda_mma.c -- the tensor-core statements of the CUDA emitter (kir.def K_mma_zero,
 * K_mma, K_mma_store, K_mmar; docs/cuda.md "Pipeline"): wmma fragments loaded from shared tiles
 * (cuda_mma, cuda_mma_run) and the register-fragment MMA (cuda_mmar: mma.sync m16n8k16 on
 * values the lanes hold), whose kernels keep their accumulators as the lanes' registers
 * (CudaEmit.racc: float segc_racc[n][8], in mma.sync's accumulator layout). */
#include "emit_cuda.h"

#include <stdlib.h>
#include <string.h>

static int
mma_check(CudaEmit *e, const KNode *n, int buf)
{
	const KBuf *kb = &e->k->bufs[buf];
	if (!e->inblock)
		return cg_unsupported(e->d, e->k, "cuda", "mma outside a block-mapped kernel");
	/* (wmma: ld a multiple of 16 bytes: 8 bf16, 4 f32) */
	if (!kb->shared || kb->ld <= 0 || kb->ld * cuda_elemsize(kb->dtype) % 16)
		return cg_unsupported(e->d, e->k, "cuda",
		                      "mma on a buffer that is not a shared tile");
	(void)n;
	return 0;
}

int
cuda_mma_zero(CudaEmit *e, const KNode *n)
{
	if (!e->inblock)
		return cg_unsupported(e->d, e->k, "cuda", "mma outside a block-mapped kernel");
	cuda_line(e);
	out(e, "segc_mma_zero(segc_%s[%lld]);\n", e->racc ? "racc" : "acc", (long long)n->ival);
	return 0;
}

static int
mma_check2(CudaEmit *e, const KNode *n)
{
	int dt = e->p->precision == KP_BF16 ? DT_BF16 : DT_F32;
	if (mma_check(e, n, n->buf) < 0 || mma_check(e, n, n->var) < 0)
		return -1;
	if (e->p->precision == KP_FP32 || e->k->bufs[n->buf].dtype != dt ||
	    e->k->bufs[n->var].dtype != dt)
		return cg_unsupported(e->d, e->k, "cuda", "mma tiles of the wrong precision");
	return 0;
}

int
cuda_mma(CudaEmit *e, const KNode *n)
{
	int bf = e->p->precision == KP_BF16;
	if (e->racc)
		return cg_unsupported(e->d, e->k, "cuda", "wmma and register-fragment MMAs mixed");
	if (mma_check2(e, n) < 0)
		return -1;
	cuda_line(e);
	out(e, "segc_mma_%s(segc_acc[%lld], b%d + (", bf ? "bf16" : "tf32", (long long)n->ival,
	    n->buf);
	if (cuda_node(e, n->a) < 0)
		return -1;
	out(e, "), %d, b%d + (", e->k->bufs[n->buf].ld, n->var);
	if (cuda_node(e, n->b) < 0)
		return -1;
	out(e, "), %d);\n", e->k->bufs[n->var].ld);
	return 0;
}

int
cuda_mma_store(CudaEmit *e, const KNode *n)
{
	/* (register accumulators are stored element by element: any ld) */
	if (e->racc && (!e->inblock || !e->k->bufs[n->buf].shared || e->k->bufs[n->buf].ld <= 0))
		return cg_unsupported(e->d, e->k, "cuda", "mma_store to a buffer that is not a "
		                                          "shared tile");
	if (!e->racc && mma_check(e, n, n->buf) < 0)
		return -1;
	if (e->k->bufs[n->buf].dtype != DT_F32)
		return cg_unsupported(e->d, e->k, "cuda", "mma_store to a tile that is not f32");
	if (n->op && !e->racc)
		return cg_unsupported(e->d, e->k, "cuda", "mma_store rows of a wmma accumulator");
	cuda_line(e);
	out(e, "segc_mma_store(b%d + (", n->buf);
	if (cuda_node(e, n->a) < 0)
		return -1;
	if (e->racc) /* the lane's values at rows (m % 8)*op + m / 8 */
		out(e, "), segc_racc[%lld], %d, %d);\n", (long long)n->ival,
		    e->k->bufs[n->buf].ld, n->op ? n->op : -1);
	else
		out(e, "), segc_acc[%lld], %d);\n", (long long)n->ival, e->k->bufs[n->buf].ld);
	return 0;
}

/* consecutive K_mma statements (a warp's accumulators at one k sub-step): each distinct A and
 * B tile (the same buffer and the same emitted offset) is loaded into a fragment (and rounded
 * to tf32) once, all before the MMAs: per k sub-step a 2 x 2 warp tile rounds 2 + 2
 * fragments instead of 4 + 4.  (Loading each fragment at its first use instead: more
 * spills under ptxas 12.x on the 128 x 32 tiles.) */
enum { MMA_RUN = 16 };

int
cuda_mma_run(CudaEmit *e, KNode *const *kids, uint32_t cnt)
{
	char *ops[2][MMA_RUN];
	int nops[2] = {0, 0}, use[MMA_RUN][2], arow[MMA_RUN] = {0}, rc = 0;
	if (cnt > MMA_RUN) {
		if (cuda_mma_run(e, kids, MMA_RUN) < 0)
			return -1;
		return cuda_mma_run(e, kids + MMA_RUN, cnt - MMA_RUN);
	}
	for (uint32_t i = 0; i < cnt && rc == 0; i++) {
		const KNode *n = kids[i];
		if (e->racc) {
			rc = cg_unsupported(e->d, e->k, "cuda",
			                    "wmma and register-fragment MMAs mixed");
			break;
		}
		if (mma_check2(e, n) < 0) {
			rc = -1;
			break;
		}
		for (int side = 0; side < 2 && rc == 0; side++) {
			int buf = side ? n->var : n->buf;
			size_t at = e->src.len;
			out(e, "b%d + (", buf);
			if (cuda_node(e, side ? n->b : n->a) < 0) {
				rc = -1;
				break;
			}
			out(e, "), %d", e->k->bufs[buf].ld);
			const char *txt = e->src.s + at;
			int j = 0;
			while (j < nops[side] && strcmp(ops[side][j], txt) != 0)
				j++;
			if (j == nops[side]) {
				size_t len = strlen(txt) + 1;
				if (!side) /* (A's fragment type) */
					arow[j] = e->k->bufs[buf].arow;
				ops[side][j] = malloc(len);
				SEGC_ASSERT(ops[side][j] != NULL);
				memcpy(ops[side][j], txt, len);
				nops[side]++;
			}
			use[i][side] = j;
			e->src.len = at;
			e->src.s[at] = 0;
		}
	}
	if (rc == 0) {
		cuda_line(e);
		out(e, "{\n");
		e->indent++;
		for (int side = 0; side < 2; side++)
			for (int j = 0; j < nops[side]; j++) {
				cuda_line(e);
				out(e, "segc_frag_%s_t segc_f%c%d;\n",
				    side ? "b" : arow[j] ? "ar" : "a", "ab"[side], j);
				cuda_line(e);
				out(e, "segc_load_frag(segc_f%c%d, %s);\n", "ab"[side], j,
				    ops[side][j]);
			}
		for (uint32_t i = 0; i < cnt; i++) {
			cuda_line(e);
			out(e, "segc_mma_ab(segc_acc[%lld], segc_fa%d, segc_fb%d);\n",
			    (long long)kids[i]->ival, use[i][0], use[i][1]);
		}
		e->indent--;
		cuda_line(e);
		out(e, "}\n");
	}
	for (int side = 0; side < 2; side++)
		for (int j = 0; j < nops[side]; j++)
			free(ops[side][j]);
	return rc;
}

/* acc += A * B from the lanes' variables (kir.def K_mmar): bf16 pairs packed by segc_pk2 (raw
 * bf16 variables by bit moves, f32 ones rounded to nearest) or segc_pkw (word variables) into
 * mma.sync's registers; tf32 (k8) variables rounded one a register */
int
cuda_mmar(CudaEmit *e, const KNode *n)
{
	if (!e->inblock)
		return cg_unsupported(e->d, e->k, "cuda", "mma outside a block-mapped kernel");
	int k8 = n->type == KT_F32;
	if (e->p->precision != (k8 ? KP_TF32 : KP_BF16))
		return cg_unsupported(e->d, e->k, "cuda",
		                      "register-fragment MMAs of another precision");
	cuda_line(e);
	if (k8) { /* tf32: A's f32 variables rounded to nearest (segc_tf32), B's tf32 values
	           * (mma_frag_wt rounded them: KU_TF32) as they are */
		out(e, "segc_mmar8(segc_racc[%lld]", (long long)n->ival);
		for (int i = 0; i < 8; i++) {
			out(e, i < 4 ? ", segc_tf32(" : ", __float_as_uint(");
			cuda_varname(e, kir_mmar_var(n, i));
			out(e, ")");
		}
		out(e, ");\n");
		return 0;
	}
	out(e, "segc_mmar(segc_racc[%lld]", (long long)n->ival);
	for (int i = 0; i < 16; i += 2) {
		int a = kir_mmar_var(n, i), b = kir_mmar_var(n, i + 1), word = cuda_word(e, a);
		const int8_t *h = e->words.half;
		if (word && e->words.mate[a] == b) { /* the word is the pair */
			out(e, ", segc_w2v(");
			cuda_varname(e, a);
			out(e, ")");
			continue;
		}
		/* low half from a's half h[a], high from b's h[b]; A's registers 1 and 3 with the
		 * operands swapped: a value that is register 0 of one MMA and 1 of another (the
		 * taps' sliding windows) is then two PRMTs, each into its own operand quad, which
		 * ptxas does not merge into one and two register moves */
		int sw = word && i < 8 && (i >> 1) % 2;
		if (word) { /* the selector's bytes: __byte_perm numbers its second
		                       * operand's 4 .. 7 */
			int lo = 2 * h[a] + (sw ? 4 : 0), hi = 2 * h[b] + (sw ? 0 : 4);
			out(e, ", segc_pkw<0x%x>(", lo | (lo + 1) << 4 | hi << 8 | (hi + 1) << 12);
		} else {
			out(e, ", segc_pk2(");
		}
		cuda_varname(e, sw ? b : a);
		out(e, ", ");
		cuda_varname(e, sw ? a : b);
		out(e, ")");
	}
	out(e, ");\n");
	return 0;
}
