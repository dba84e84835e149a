/* ir/cost_velox.c -- the VeloxSeg paper's counting convention: thop 0.1.1 (post2209072238),
 * as VeloxSeg's speed_test.py runs it (profile() in eval mode, batch 1); spec
 * m4fuse-veloxseg.md §3.8.  Counted on the graph as written (before canon).
 *
 *   conv3d, conv_transpose3d  output elements x (C_in / groups) x k^3, no bias (for a
 *                             transposed conv that is 8x its real MACs at k2 s2, as thop has it)
 *   linear                    in_features x output elements
 *   instance/group/layer/batch_norm   2 per input element, 4 when affine (nn.*Norm modules;
 *                             VeloxSeg's own channels-first LayerNorm is a custom module that
 *                             thop skips: in the graph it is moments + elementwise, counted 0)
 *   softmax                   rows x (3n - 1)
 *   everything else (matmul/einsum, GELU, interpolation, pooling, adds, pixel shuffle): 0.
 * Params the thop way: only the weights of those registered module types (conv, linear,
 * norms); bare weights (custom LayerNorm affine, relative position tables) are not counted. */
#include "velox.h"

#include <string.h>

static double
numel(const Module *m, ValueId v)
{
	const Type *t = &m->values[v].type;
	return v && t->rank >= 0 ? (double)type_numel(t) : 0;
}

static int
is_norm(int op)
{
	return op == OP_instance_norm || op == OP_group_norm || op == OP_layer_norm ||
	       op == OP_batch_norm;
}

static double
node_thop(const Module *m, const Node *n)
{
	switch (n->op) {
	case OP_conv3d:
	case OP_conv3d_ndhwc:
	case OP_conv_transpose3d: {
		const Type *w = &m->values[n->in[1]].type;
		int cax = n->op == OP_conv3d_ndhwc ? 4 : 1;     /* the input's channel axis */
		if (w->rank != 5)
			return 0;
		double k = (double)(w->dims[2] * w->dims[3] * w->dims[4]);
		const Type *x = &m->values[n->in[0]].type;
		double cin = numel(m, n->in[0]) > 0 ? (double)x->dims[cax] : 0;
		return numel(m, n->out[0]) * cin / (double)ir_attr_int(n, "groups") * k;
	}
	case OP_linear: {
		const Type *x = &m->values[n->in[0]].type;
		return x->rank > 0 ? numel(m, n->out[0]) * (double)x->dims[x->rank - 1] : 0;
	}
	case OP_softmax: {
		const Type *x = &m->values[n->in[0]].type;
		int64_t ax = ir_attr_int(n, "axis");
		if (x->rank <= 0)
			return 0;
		if (ax < 0)
			ax += x->rank;
		double len = (double)x->dims[ax];
		return len > 0 ? numel(m, n->in[0]) / len * (3 * len - 1) : 0;
	}
	default:
		if (is_norm(n->op))
			return (ir_attr_int(n, "affine") ? 4 : 2) * numel(m, n->in[0]);
		return 0;
	}
}

double
velox_macs_thop(const Module *m)
{
	double s = 0;
	for (uint32_t i = 0; i < m->nnodes; i++)
		if (!m->nodes[i].dead)
			s += node_thop(m, &m->nodes[i]);
	return s;
}

int64_t
velox_params_thop(const Module *m)
{
	int64_t s = 0;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		int op = n->op;
		if (n->dead || !(op == OP_conv3d || op == OP_conv_transpose3d || op == OP_linear ||
		                 is_norm(op)))
			continue;
		for (int k = 1; k < n->nin && k < 3; k++) /* weight, bias (not BN running stats) */
			if (n->in[k] && m->values[n->in[k]].type.dtype == DT_F32)
				s += (int64_t)numel(m, n->in[k]);
	}
	return s;
}
