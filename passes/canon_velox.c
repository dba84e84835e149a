/* passes/canon_velox.c -- canon rewrites of the VeloxSeg ops into index maps, pooling and
 * resampling (called from passes/canon.c for each pwa_gather, pwa_scatter, pixel_shuffle3d).
 *
 *   pixel_shuffle3d  reshape [N,C,r,r,r,D,H,W] -> permute [0,1,5,2,6,3,7,4] -> reshape
 *   pwa_gather       per modality m and window pair i: slice pair i's channels ->
 *                    max_pool3d(S_i) (skipped when S_i = 1) -> reshape
 *                    [N*h, dim, Nw0, n0, Nw1, n1, Nw2, n2] -> permute to windows-major
 *                    [N*h, Nw0, Nw1, Nw2, n0, n1, n2, dim] -> reshape [N, h, Nw_i, l, dim];
 *                    concat the pairs on the window axis, the modalities on the token axis
 *   pwa_scatter      slice the modality's tokens, then per pair: slice its windows -> permute
 *                    to [N*h, dim, windows, n] -> upsample trilinear align_corners to B_i
 *                    (skipped when S_i = 1) -> permute windows back into the grid; concat
 *                    the pairs on the channel axis
 * pwa_rel_bias is a codegen template (codegen/tmpl_velox.c), not rewritten here.
 * New nodes take the replaced node's name and Loc; passes/canon.c places them. */
#include "pass.h"
#include "velox.h"

#include <string.h>

typedef struct {
	Module *m;
	const Node *at;
	Diag *d;
} Vx;

static ValueId
emitn(Vx *w, int op, const ValueId *in, int nin, const Attr *attrs)
{
	int64_t id = ir_add_node(w->m, op, in, nin, attrs, w->at->name, w->at->loc, w->d);
	if (id < 0)
		diag_internal(__FILE__, __LINE__, "canon_velox built an ill-typed %s",
		              optab[op].name);
	return w->m->nodes[id].out[0];
}

static Attr *
attrs_of(Vx *w, int op)
{
	Attr *a = arena_zalloc(w->m->arena, (size_t)(optab[op].nattrs + 1) * sizeof *a);
	ir_attrs_default(op, a);
	return a;
}

static void
set_ints(Vx *w, Attr *a, int op, const char *key, const int64_t *v, int n)
{
	int k = op_attr_index(op, key);
	int64_t *c = arena_alloc(w->m->arena, (size_t)(n ? n : 1) * sizeof *c);
	memcpy(c, v, (size_t)n * sizeof *v);
	a[k].present = 1;
	a[k].n = (uint16_t)n;
	a[k].ints = c;
}

static void
set_int(Attr *a, int op, const char *key, int64_t v)
{
	int k = op_attr_index(op, key);
	a[k].present = 1;
	a[k].i = v;
}

static ValueId
reshape(Vx *w, ValueId x, const int64_t *dims, int rank)
{
	Type to = type_make(w->m->values[x].type.dtype, rank, dims);
	if (type_equal(&w->m->values[x].type, &to))
		return x;
	Attr *a = attrs_of(w, OP_reshape);
	set_ints(w, a, OP_reshape, "shape", dims, rank);
	return emitn(w, OP_reshape, &x, 1, a);
}

static ValueId
permute(Vx *w, ValueId x, const int64_t *perm, int rank)
{
	Attr *a = attrs_of(w, OP_permute);
	set_ints(w, a, OP_permute, "perm", perm, rank);
	return emitn(w, OP_permute, &x, 1, a);
}

static ValueId
slice(Vx *w, ValueId x, int64_t axis, int64_t start, int64_t end)
{
	if (start == 0 && end == w->m->values[x].type.dims[axis])
		return x;
	Attr *a = attrs_of(w, OP_slice);
	set_int(a, OP_slice, "axis", axis);
	set_int(a, OP_slice, "start", start);
	set_int(a, OP_slice, "end", end);
	return emitn(w, OP_slice, &x, 1, a);
}

static ValueId
concat(Vx *w, const ValueId *xs, int n, int64_t axis)
{
	if (n == 1)
		return xs[0];
	Attr *a = attrs_of(w, OP_concat);
	set_int(a, OP_concat, "axis", axis);
	return emitn(w, OP_concat, xs, n, a);
}

static ValueId
pixel_shuffle(Vx *w, const Node *n)
{
	const Type t = w->m->values[n->in[0]].type;
	int64_t r = ir_attr_int(n, "r"), C = t.dims[1] / (r * r * r);
	int64_t d8[8] = {t.dims[0], C, r, r, r, t.dims[2], t.dims[3], t.dims[4]};
	int64_t perm[8] = {0, 1, 5, 2, 6, 3, 7, 4};
	int64_t d5[5] = {t.dims[0], C, t.dims[2] * r, t.dims[3] * r, t.dims[4] * r};
	return reshape(w, permute(w, reshape(w, n->in[0], d8, 8), perm, 8), d5, 5);
}

#define MAXMOD 64

static ValueId
gather(Vx *w, const Node *n)
{
	const Type t = w->m->values[n->in[0]].type;
	const Type ty = w->m->values[n->out[0]].type;
	int64_t N = t.dims[0], H = ty.dims[1], dim = ty.dims[4];
	ValueId mods[MAXMOD], pairs[PWA_MAXPAIRS];
	PwaGeom g;

	if (n->nin > MAXMOD) {
		diag_error(w->d, n->loc, "pwa_gather: %d modalities, expected at most %d", n->nin,
		           MAXMOD);
		return 0;
	}
	if (velox_geom(n, t.dims + 2, &g, w->d) < 0)
		return 0;
	for (int m = 0; m < n->nin; m++) {
		for (int i = 0; i < g.npairs; i++) {
			ValueId x = slice(w, n->in[m], 1, i * H * dim, (i + 1) * H * dim);
			if (g.S[i][0] * g.S[i][1] * g.S[i][2] > 1) {
				Attr *a = attrs_of(w, OP_max_pool3d);
				set_ints(w, a, OP_max_pool3d, "kernel", g.S[i], 3);
				set_ints(w, a, OP_max_pool3d, "stride", g.S[i], 3);
				x = emitn(w, OP_max_pool3d, &x, 1, a);
			}
			int64_t Nw[3];
			for (int k = 0; k < 3; k++)
				Nw[k] = t.dims[2 + k] / g.B[i][k];
			int64_t d8[8] = {N * H, dim, Nw[0], g.n[0], Nw[1], g.n[1], Nw[2], g.n[2]};
			int64_t perm[8] = {0, 2, 4, 6, 3, 5, 7, 1};
			int64_t d5[5] = {N, H, g.nw[i], g.l, dim};
			pairs[i] = reshape(w, permute(w, reshape(w, x, d8, 8), perm, 8), d5, 5);
		}
		mods[m] = concat(w, pairs, g.npairs, 2);
	}
	return concat(w, mods, n->nin, 3);
}

static ValueId
scatter(Vx *w, const Node *n)
{
	const Type t = w->m->values[n->in[0]].type;
	const int64_t *G = ir_attr(n, "grid")->ints;
	int64_t N = t.dims[0], H = t.dims[1], dim = t.dims[4], mod = ir_attr_int(n, "modality");
	ValueId pairs[PWA_MAXPAIRS];
	PwaGeom g;

	if (velox_geom(n, G, &g, w->d) < 0)
		return 0;
	ValueId xm = slice(w, n->in[0], 3, mod * g.l, (mod + 1) * g.l);
	for (int i = 0; i < g.npairs; i++) {
		int64_t Nw[3];
		for (int k = 0; k < 3; k++)
			Nw[k] = G[k] / g.B[i][k];
		ValueId x = slice(w, xm, 2, g.off[i], g.off[i] + g.nw[i]);
		int64_t d8[8] = {N * H, Nw[0], Nw[1], Nw[2], g.n[0], g.n[1], g.n[2], dim};
		int64_t d5[5] = {N, H * dim, G[0], G[1], G[2]};
		x = reshape(w, x, d8, 8);
		if (g.S[i][0] * g.S[i][1] * g.S[i][2] == 1) {
			int64_t perm[8] = {0, 7, 1, 4, 2, 5, 3, 6};
			pairs[i] = reshape(w, permute(w, x, perm, 8), d5, 5);
			continue;
		}
		int64_t perm[8] = {0, 7, 1, 2, 3, 4, 5, 6};
		int64_t u5[5] = {1, N * H * dim * g.nw[i], g.n[0], g.n[1], g.n[2]};
		x = reshape(w, permute(w, x, perm, 8), u5, 5);
		Attr *a = attrs_of(w, OP_upsample);
		int km = op_attr_index(OP_upsample, "mode");
		a[km].present = 1;
		a[km].s = "trilinear";
		set_ints(w, a, OP_upsample, "size", g.B[i], 3);
		set_int(a, OP_upsample, "align_corners", 1);
		x = emitn(w, OP_upsample, &x, 1, a);
		int64_t d7[7] = {N * H * dim, Nw[0], Nw[1], Nw[2], g.B[i][0], g.B[i][1], g.B[i][2]};
		int64_t perm7[7] = {0, 1, 4, 2, 5, 3, 6};
		pairs[i] = reshape(w, permute(w, reshape(w, x, d7, 7), perm7, 7), d5, 5);
	}
	return concat(w, pairs, g.npairs, 1);
}

ValueId
canon_velox(Module *m, const Node *n, Diag *d)
{
	Vx w = {m, n, d};

	switch (n->op) {
	case OP_pixel_shuffle3d:
		return pixel_shuffle(&w, n);
	case OP_pwa_gather:
		return gather(&w, n);
	case OP_pwa_scatter:
		return scatter(&w, n);
	default:
		return 0;
	}
}
