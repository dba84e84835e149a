/* ir/cost_convention.c -- papers' MAC-counting conventions (ir/cost_convention.h).
 *
 * fvcore (the M4Fuse paper's "GFLOPs", spec m4fuse-veloxseg.md 2.8; reproduces 51.45 / 110.38 /
 * 191.97 / 423.19 at 128^3):
 *   conv3d, conv3d_ndhwc, conv3d_w, conv_transpose3d, linear, matmul, causal_conv1d: their
 *   MACs, no bias;
 *   group_norm, layer_norm, layer_norm_w, instance_norm: 5 per input element when affine
 *   (layer_norm_w always is), 4 otherwise;
 *   everything else (the selective scan, elementwise ops, pooling, interpolation): 0.
 * Per-sample routing: a node whose results feed only the candidates of one select_by_index
 * with M candidates (an expert branch) counts 1/M: each sample runs exactly one of the M
 * experts, so the count does not depend on M, as the paper states (segc computes all M). */
#include "cost_convention.h"

#include <stdlib.h>
#include <string.h>

const char *const ir_cost_conventions[] = {"fvcore", NULL};

static double
numel_in(const Module *m, const Node *n)
{
	const Type *t = &m->values[n->in[0]].type;
	return t->rank < 0 ? 0 : (double)type_numel(t);
}

static double
fvcore(const Module *m, const Node *n)
{
	static const char *const macs_ops[] = {
	    "conv3d", "conv3d_ndhwc", "conv3d_w", "conv_transpose3d", "linear", "matmul",
	    "causal_conv1d", NULL,
	};
	const char *name = optab[n->op].name;
	for (int i = 0; macs_ops[i]; i++)
		if (!strcmp(name, macs_ops[i]))
			return ir_node_cost(m, n).macs;
	if (!strcmp(name, "layer_norm_w"))
		return 5 * numel_in(m, n);
	if (!strcmp(name, "group_norm") || !strcmp(name, "layer_norm") ||
	    !strcmp(name, "instance_norm"))
		return (ir_attr_int(n, "affine") ? 5 : 4) * numel_in(m, n);
	return 0;
}

double
ir_node_macs_convention(const Module *m, const Node *n, const char *conv)
{
	if (!strcmp(conv, "fvcore"))
		return fvcore(m, n);
	return -1;
}

/* share[i]: 1, or 1/M for node i when everything it computes only feeds the candidates of
 * select_by_index nodes with M candidates (M > 1); computed backwards over the uses */
static void
routed_share(const Module *m, double *share)
{
	uint32_t nn = m->nnodes;
	int64_t *excl = calloc(nn ? nn : 1, sizeof *excl); /* 0 unknown, -1 no, M yes */
	int *used = calloc(nn ? nn : 1, sizeof *used);
	if (!excl || !used) {
		for (uint32_t i = 0; i < nn; i++)
			share[i] = 1;
		free(excl);
		free(used);
		return;
	}
	for (uint32_t i = 0; i < m->noutputs; i++)
		excl[m->values[m->outputs[i]].def] = -1;
	for (uint32_t i = nn; i-- > 0;) {
		const Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		if (!used[i] && excl[i] == 0)
			excl[i] = -1;
		/* pass this node's verdict to its operands' definers */
		for (int k = 0; k < n->nin; k++) {
			if (!n->in[k])
				continue;
			uint32_t def = m->values[n->in[k]].def;
			int64_t want = -1;
			if (n->op == OP_select_by_index)
				want = k > 0 && n->nin > 2 ? n->nin - 1 : -1;
			else if (excl[i] > 0)
				want = excl[i];
			if (!used[def])
				excl[def] = want;
			else if (excl[def] != want)
				excl[def] = -1;
			used[def] = 1;
		}
	}
	for (uint32_t i = 0; i < nn; i++)
		share[i] = excl[i] > 0 ? 1.0 / (double)excl[i] : 1;
	free(excl);
	free(used);
}

double
ir_macs_convention(const Module *m, const char *conv)
{
	double s = 0;
	int known = 0;
	for (int i = 0; ir_cost_conventions[i]; i++)
		known |= !strcmp(conv, ir_cost_conventions[i]);
	if (!known)
		return -1;
	double *share = malloc((m->nnodes ? m->nnodes : 1) * sizeof *share);
	if (!share)
		return -1;
	routed_share(m, share);
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (!n->dead && optab[n->op].cls != FUSE_SRC)
			s += share[i] * ir_node_macs_convention(m, n, conv);
	}
	free(share);
	return s;
}
