/* ir/interp_m4fuse.c -- reference kernels of the M4Fuse ops
 * (ir/ops_m4fuse.def).
 *
 * conv3d_w and layer_norm_w run the core kernels on their view node
 * (ir/ir_m4fuse.h). select_by_index copies sample n of candidate index[n]; an
 * index outside [0, M) is an error naming the index value (the engine input)
 * and the sample. */
#include "interp.h"
#include "ir_m4fuse.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int
interp_conv3d_w(Interp *ip, const Node *n)
{
	M4View v;
	if (m4_view(n, &v) < 0)
		return ip_fail(ip, n, "not a conv3d_w node");
	return interp_conv3d(ip, &v.node);
}

int
interp_layer_norm_w(Interp *ip, const Node *n)
{
	M4View v;
	if (m4_view(n, &v) < 0)
		return ip_fail(ip, n, "not a layer_norm_w node");
	return interp_layer_norm(ip, &v.node);
}

int
interp_select_by_index(Interp *ip, const Node *n)
{
	const Type *t = ip_type(ip, n->out[0]);
	const Type *it = ip_type(ip, n->in[0]);
	int64_t M = n->nin - 1, N = t->dims[0];
	int64_t per = N ? type_numel(t) / N : 0;
	const int64_t *idx = (const int64_t *)(const void *)ip_in(ip, n, 0);
	const char *iname = ip->m->values[n->in[0]].name;

	if (it->dtype != DT_I64)
		return ip_fail(ip, n, "index is not i64, expected i64");
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t s = 0; s < N; s++) {
		int64_t k = idx[s];
		if (k < 0 || k >= M) {
			char b[200];
			snprintf(b, sizeof b,
			         "index '%s' is %" PRId64 " for sample %" PRId64
			         ", expected a label in [0, %" PRId64 ")",
			         iname ? iname : "(computed)", k, s, M);
			return ip_fail(ip, n, b);
		}
		memcpy(y + s * per, ip_in(ip, n, 1 + (int)k) + s * per, (size_t)per * sizeof *y);
	}
	return 0;
}

/* fold: y[n*G + g, l, j] = x[n, l, g*d + j]; unfold the inverse */
static int
fold(Interp *ip, const Node *n, int unfold)
{
	const Type *t = ip_type(ip, unfold ? n->out[0] : n->in[0]); /* [N, L, C] */
	int64_t G = ir_attr_int(n, "groups"), N = t->dims[0], L = t->dims[1], C = t->dims[2];
	int64_t dd = C / G;
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t b = 0; b < N; b++)
		for (int64_t g = 0; g < G; g++)
			for (int64_t l = 0; l < L; l++) {
				int64_t wide = (b * L + l) * C + g * dd;
				int64_t narrow = ((b * G + g) * L + l) * dd;
				if (unfold)
					memcpy(y + wide, x + narrow, (size_t)dd * sizeof *y);
				else
					memcpy(y + narrow, x + wide, (size_t)dd * sizeof *y);
			}
	return 0;
}

int
interp_group_fold(Interp *ip, const Node *n)
{
	return fold(ip, n, 0);
}

int
interp_group_unfold(Interp *ip, const Node *n)
{
	return fold(ip, n, 1);
}
