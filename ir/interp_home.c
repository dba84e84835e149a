/* ir/interp_home.c -- reference kernels of the Mamba-HoME ops (ir/ops_home.def): plain loops,
 * sums in double. */
#include "interp.h"

#include <string.h>

/* outer x len x inner view of x around axis ax */
static void
split(const Type *t, int ax, int64_t *outer, int64_t *inner)
{
	*outer = 1;
	*inner = 1;
	for (int k = 0; k < ax; k++)
		*outer *= t->dims[k];
	for (int k = ax + 1; k < t->rank; k++)
		*inner *= t->dims[k];
}

int
interp_pad_tokens(Interp *ip, const Node *n)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *ti = ip_type(ip, n->in[0]), *to = ip_type(ip, n->out[0]);
	int ax = ip_normaxis(ir_attr_int(n, "axis"), ti->rank);
	if (ax < 0 || ax >= ti->rank || to->rank != ti->rank || to->dims[ax] < ti->dims[ax])
		return ip_fail(ip, n, "bad axis or result shape");
	float v = (float)ir_attr_float(n, "value");
	int64_t outer, inner, li = ti->dims[ax], lo = to->dims[ax];
	split(ti, ax, &outer, &inner);
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t o = 0; o < outer; o++) {
		memcpy(y + o * lo * inner, x + o * li * inner, (size_t)(li * inner) * sizeof *y);
		for (int64_t j = li * inner; j < lo * inner; j++)
			y[o * lo * inner + j] = v;
	}
	return 0;
}

int
interp_segment_mean(Interp *ip, const Node *n)
{
	if (ip_need_f32(ip, n) < 0)
		return -1;
	const Type *ti = ip_type(ip, n->in[0]), *to = ip_type(ip, n->out[0]);
	int ax = ip_normaxis(ir_attr_int(n, "axis"), ti->rank);
	int64_t s = ir_attr_int(n, "segment");
	if (ax < 0 || ax >= ti->rank || s < 1 || to->dims[ax] * s != ti->dims[ax])
		return ip_fail(ip, n, "bad axis, segment or result shape");
	int64_t outer, inner, nseg = to->dims[ax];
	split(ti, ax, &outer, &inner);
	const float *x = ip_in(ip, n, 0);
	float *y = ip_result(ip, n, 0);
	if (!y)
		return -1;
	for (int64_t o = 0; o < outer; o++)
		for (int64_t g = 0; g < nseg; g++)
			for (int64_t i = 0; i < inner; i++) {
				double acc = 0;
				for (int64_t k = 0; k < s; k++)
					acc += x[((o * nseg + g) * s + k) * inner + i];
				y[(o * nseg + g) * inner + i] = (float)(acc / (double)s);
			}
	return 0;
}
