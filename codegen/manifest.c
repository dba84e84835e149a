/* codegen/manifest.c -- the manifest text embedded in engine.so and parsed by the runtime.
 *
 * One record per line (docs/codegen.md, docs/abi.md):
 *   segc-manifest 1 / graph / segc / target / arena / [packed] / param* / input* / output* /
 *   weight* / macs / flops / kernels / end
 * Slots follow the order of the records: 0 the arena, then inputs, outputs, weights, then the
 * packed slot (codegen/prepack.c).
 * Also the profiler's kernel table (cg_kernel_table), which both emitters embed. */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SEGC_VERSION
#define SEGC_VERSION "0.1.0"
#endif

typedef struct {
	Arena *a;
	char *buf;
	size_t len, cap;
} Text;

static void
put(Text *t, const char *s)
{
	size_t n = strlen(s);
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *nb = arena_alloc(t->a, cap);
		if (t->len)
			memcpy(nb, t->buf, t->len);
		t->buf = nb;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, s, n + 1);
	t->len += n;
}

/* "<name> <dtype> <d0,d1,...>" ("-" for rank 0), no trailing newline */
static void
tensor(Text *t, const char *kind, const char *name, const Type *ty)
{
	put(t, arena_printf(t->a, "%s %s %s ", kind, name ? name : "?", dtype_name(ty->dtype)));
	if (ty->rank <= 0)
		put(t, "-");
	for (int d = 0; d < ty->rank; d++)
		put(t, arena_printf(t->a, d ? ",%lld" : "%lld", (long long)ty->dims[d]));
	put(t, "\n");
}

const char *
cg_manifest(const Module *m, int64_t scratch_bytes, int64_t packed_bytes, Arena *arena)
{
	Text t = { arena, NULL, 0, 0 };
	double macs = 0, flops = 0;

	put(&t, "segc-manifest 1\n");
	put(&t, arena_printf(arena, "graph %s\n", m->name ? m->name : "graph"));
	put(&t, "segc " SEGC_VERSION "\n");
	put(&t, "target cpu\n");
	put(&t, arena_printf(arena, "arena %lld\n", (long long)(m->arena_bytes + scratch_bytes)));
	if (packed_bytes > 0)
		put(&t, arena_printf(arena, "packed %lld\n", (long long)packed_bytes));
	for (uint32_t i = 0; i < m->nparams; i++) {
		/* values are written without spaces: "[0.5, 0.7]" -> "[0.5,0.7]" */
		const char *v = m->params[i].value ? m->params[i].value : "";
		char *nv = arena_strdup(arena, v), *o = nv;
		for (; *v; v++)
			if (*v != ' ' && *v != '\t')
				*o++ = *v;
		*o = 0;
		put(&t, arena_printf(arena, "param %s %s\n", m->params[i].name, nv));
	}
	for (uint32_t i = 0; i < m->ninputs; i++) {
		const Value *v = &m->values[m->inputs[i]];
		tensor(&t, "input", v->name, &v->type);
	}
	/* range records: an integer input used as the index of select_by_index must lie in
	 * [0, number of candidates) (the tightest over its uses); checked by the runtime */
	for (uint32_t i = 0; i < m->ninputs; i++) {
		int64_t hi = -1;
		for (uint32_t j = 0; j < m->nnodes; j++) {
			const Node *n = &m->nodes[j];
			if (!n->dead && n->op == OP_select_by_index && n->in[0] == m->inputs[i] &&
			    (hi < 0 || n->nin - 1 < hi))
				hi = n->nin - 1;
		}
		if (hi > 0)
			put(&t, arena_printf(arena, "range %s 0 %lld\n",
			                     m->values[m->inputs[i]].name, (long long)hi));
	}
	for (uint32_t i = 0; i < m->noutputs; i++) {
		const Value *v = &m->values[m->outputs[i]];
		tensor(&t, "output", m->output_names ? m->output_names[i] : v->name, &v->type);
	}
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		if (n->op == OP_weight) {
			const Value *v = &m->values[n->out[0]];
			tensor(&t, "weight", v->name, &v->type);
			continue;
		}
		Cost c = ir_node_cost(m, n);
		macs += c.macs;
		flops += c.flops;
	}
	put(&t, arena_printf(arena, "macs %.0f\n", macs));
	put(&t, arena_printf(arena, "flops %.0f\n", flops));
	put(&t, arena_printf(arena, "kernels %u\n", m->ngroups));
	put(&t, "end\n");
	return t.buf;
}

/* ---- the kernel table for the profiler (runtime/profile.c) ---- */

static int
in_list(const char *op, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(op, *list))
			return 1;
	return 0;
}

const char *
cg_kernel_class(const char *name)
{
	static const char *const conv[] = {"conv3d",   "conv3d_ndhwc",  "conv_transpose3d",
	                                   "conv3d_w", "causal_conv1d", NULL};
	static const char *const mm[] = {"linear", "matmul", NULL};
	static const char *const norm[] = {
	    "reduce_sum",    "reduce_mean", "reduce_max", "moments",      "softmax",
	    "instance_norm", "group_norm",  "layer_norm", "batch_norm",   "layer_norm_w",
	    "rms_norm",      "rms_norm_l2", "dyt",        "segment_mean", "token_score",
	    "max_pool3d",    "avg_pool3d",  NULL,
	};
	static const char *const move[] = {
	    "identity",   "reshape",      "permute",         "slice",
	    "concat",     "upsample",     "pad_tokens",      "select_by_index",
	    "group_fold", "group_unfold", "token_prune",     "token_unpool",
	    "pwa_gather", "pwa_scatter",  "pixel_shuffle3d", NULL,
	};
	const char *op = strchr(name, '_');
	op = op ? op + 1 : name;
	if (in_list(op, conv))
		return "conv";
	if (!strcmp(op, "selective_scan"))
		return "scan";
	if (in_list(op, mm))
		return "matmul";
	if (in_list(op, norm))
		return "norm";
	if (in_list(op, move))
		return "move";
	return "elementwise";
}

/* "name\tclass\tflops\tbytes\n" per kernel in order; bytes = every global buffer once (0 for
 * a kernel without loops: a concat whose inputs sit in place) */
const char *
cg_kernel_table(const Program *p)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	SEGC_ASSERT(f);
	for (uint32_t ki = 0; ki + p->npack < p->nkernels; ki++) { /* the run's kernels */
		const Kernel *k = &p->kernels[ki];
		double bytes = 0;
		for (uint32_t i = 0; i < k->nbufs && k->body->nkids; i++) /* none: no loops */
			if (!k->bufs[i].shared)
				bytes += (double)k->bufs[i].numel * dtype_size(k->bufs[i].dtype);
		fprintf(f, "%s\t%s\t%.0f\t%.0f\n", k->name, cg_kernel_class(k->name), k->cost.flops,
		        bytes);
	}
	fclose(f);
	const char *t = arena_strdup(p->arena, text);
	free(text);
	return t;
}

void
cg_print_kernels(const Program *p, FILE *f)
{
	for (uint32_t i = 0; i < p->nkernels; i++) {
		if (i == p->nkernels - p->npack)
			fprintf(f, "; prepack kernels: run once by load_weights, after the weights "
			           "are in place (%lld packed bytes)\n",
			        (long long)p->packed_bytes);
		kir_print(&p->kernels[i], f);
	}
}
