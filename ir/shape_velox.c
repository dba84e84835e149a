/* ir/shape_velox.c -- shape and cost rules of the VeloxSeg ops (ir/ops_velox.def), and the
 * paired-window geometry (ir/velox.h).
 *
 * PWA shapes follow VeloxSeg's MultiModal_Paired_Windows_Attention: every window pair must
 * tile the stage grid and every big window must be a multiple of its small window, else the
 * node is rejected with a one-line error naming the attribute (the public code fails there). */
#include "velox.h"

#include <string.h>

#define TS 160

static const char *
opname(const Node *n)
{
	return optab[n->op].name;
}

static const Type *
tin(const Module *m, const Node *n, int i)
{
	return &m->values[n->in[i]].type;
}

static int
isfloat(int dt)
{
	return dt == DT_F32 || dt == DT_F16 || dt == DT_BF16;
}

/* every required attribute present, every data operand typed, floating point, rank lo..hi */
static int
check_node(const Module *m, const Node *n, Diag *d, int lo, int hi)
{
	const OpInfo *oi = &optab[n->op];

	for (int i = 0; i < oi->nattrs; i++) {
		const Attr *a = &n->attrs[i];
		if (!a->present && !oi->schema[i].optional)
			return diag_error(d, n->loc, "%s: attribute '%s' is missing", opname(n),
			                  oi->schema[i].key);
		if (a->present && oi->schema[i].count && a->n != oi->schema[i].count)
			return diag_error(d, n->loc,
			                  "%s: attribute '%s' has %d values, expected %d",
			                  opname(n), oi->schema[i].key, a->n, oi->schema[i].count);
	}
	if (n->nin < 1 || (n->nin != oi->noperands && !oi->opspec[oi->noperands - 1].variadic))
		return diag_error(d, n->loc, "%s: got %d operands, expected %d", opname(n), n->nin,
		                  oi->noperands);
	for (int i = 0; i < n->nin; i++) {
		if (oi->opspec[i < oi->noperands ? i : oi->noperands - 1].param)
			continue;
		ValueId v = n->in[i];
		if (!v || v >= m->nvalues || m->values[v].type.rank < 0)
			return diag_error(d, n->loc, "%s: operand %d has no type, expected a value",
			                  opname(n), i);
		const Type *t = &m->values[v].type;
		if (!isfloat(t->dtype))
			return diag_error(d, n->loc,
			                  "%s: operand %d is %s, expected a float tensor",
			                  opname(n), i, dtype_name(t->dtype));
		if (t->rank < lo || t->rank > hi)
			return diag_error(d, n->loc, "%s: operand %d has rank %d, expected %d",
			                  opname(n), i, t->rank, lo);
	}
	return 0;
}

static const char *
v3(char *b, size_t sz, const int64_t *v)
{
	snprintf(b, sz, "[%lld,%lld,%lld]", (long long)v[0], (long long)v[1], (long long)v[2]);
	return b;
}

int
velox_geom(const Node *n, const int64_t grid[3], PwaGeom *g, Diag *d)
{
	const Attr *win = ir_attr(n, "window"), *sm = ir_attr(n, "small");
	int64_t r = ir_attr_int(n, "r");
	char b1[72], b2[72], b3[72];

	memset(g, 0, sizeof *g);
	if (!win->present || win->n != 3 || !sm->present || sm->n != 3)
		return d ? diag_error(d, n->loc, "%s: window and small need 3 values each",
		                      opname(n))
		         : -1;
	if (r < 2 || r > 64)
		return d ? diag_error(d, n->loc, "%s: attribute 'r' is %lld, expected 2..64",
		                      opname(n), (long long)r)
		         : -1;
	for (int a = 0; a < 3; a++) {
		if (win->ints[a] < 1 || sm->ints[a] < 1 || (grid && grid[a] < 1))
			return d ? diag_error(d, n->loc,
			                      "%s: attribute 'window' %s / 'small' %s, expected "
			                      "positive sizes",
			                      opname(n), v3(b1, sizeof b1, win->ints),
			                      v3(b2, sizeof b2, sm->ints))
			         : -1;
		if (win->ints[a] % sm->ints[a])
			return d ? diag_error(d, n->loc,
			                      "%s: attribute 'window' %s is not a multiple of "
			                      "'small' %s along axis %d, expected a multiple",
			                      opname(n), v3(b1, sizeof b1, win->ints),
			                      v3(b2, sizeof b2, sm->ints), a)
			         : -1;
		g->n[a] = win->ints[a] / sm->ints[a];
	}
	g->l = g->n[0] * g->n[1] * g->n[2];
	if (!grid)
		return 0;
	int64_t B[3] = {win->ints[0], win->ints[1], win->ints[2]};
	int64_t S[3] = {sm->ints[0], sm->ints[1], sm->ints[2]};
	while (B[0] <= grid[0] || B[1] <= grid[1] || B[2] <= grid[2]) {
		int i = g->npairs;
		if (i == PWA_MAXPAIRS)
			return d ? diag_error(d, n->loc,
			                      "%s: attribute 'window' %s gives more than %d window "
			                      "pairs on grid %s, expected fewer",
			                      opname(n), v3(b1, sizeof b1, win->ints), PWA_MAXPAIRS,
			                      v3(b2, sizeof b2, grid))
			         : -1;
		g->nw[i] = 1;
		for (int a = 0; a < 3; a++)
			if (grid[a] % B[a])
				return d ? diag_error(
				               d, n->loc,
				               "%s: attribute 'window' %s does not tile the "
				               "stage grid %s: pair %d window %s does not "
				               "divide axis %d, expected window*r^i to divide "
				               "the grid",
				               opname(n), v3(b1, sizeof b1, win->ints),
				               v3(b2, sizeof b2, grid), i, v3(b3, sizeof b3, B), a)
				         : -1;
		for (int a = 0; a < 3; a++) {
			g->B[i][a] = B[a];
			g->S[i][a] = S[a];
			g->nw[i] *= grid[a] / B[a];
			B[a] *= r;
			S[a] *= r;
		}
		g->off[i] = g->nwin;
		g->nwin += g->nw[i];
		g->npairs++;
	}
	if (!g->npairs)
		return d ? diag_error(d, n->loc,
		                      "%s: attribute 'window' %s is larger than the stage grid "
		                      "%s on every axis, expected at least one window pair",
		                      opname(n), v3(b1, sizeof b1, win->ints),
		                      v3(b2, sizeof b2, grid))
		         : -1;
	return 0;
}

int
shape_pwa_gather(Module *m, Node *n, Diag *d)
{
	PwaGeom g;
	char b1[TS], b2[TS];

	if (check_node(m, n, d, 5, 5) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	for (int i = 1; i < n->nin; i++)
		if (!type_equal(tin(m, n, i), x))
			return diag_error(d, n->loc,
			                  "pwa_gather: modality %d is %s, expected %s like "
			                  "modality 0",
			                  i, type_str(tin(m, n, i), b1, sizeof b1),
			                  type_str(x, b2, sizeof b2));
	if (velox_geom(n, x->dims + 2, &g, d) < 0)
		return -1;
	int64_t heads = ir_attr_int(n, "heads"), per = heads * g.npairs;
	if (heads < 1 || x->dims[1] % per)
		return diag_error(d, n->loc,
		                  "pwa_gather: %lld channels not divisible by %d window pairs x "
		                  "'heads' %lld, expected a multiple of %lld",
		                  (long long)x->dims[1], g.npairs, (long long)heads,
		                  (long long)(per > 0 ? per : 1));
	int64_t dims[5] = {x->dims[0], heads, g.nwin, n->nin * g.l, x->dims[1] / per};
	m->values[n->out[0]].type = type_make(x->dtype, 5, dims);
	return 0;
}

int
shape_pwa_scatter(Module *m, Node *n, Diag *d)
{
	PwaGeom g;
	char b1[TS];

	if (check_node(m, n, d, 5, 5) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	const Attr *grid = ir_attr(n, "grid");
	if (velox_geom(n, grid->ints, &g, d) < 0)
		return -1;
	int64_t mod = ir_attr_int(n, "modality");
	if (x->dims[2] != g.nwin || x->dims[3] % g.l)
		return diag_error(d, n->loc,
		                  "pwa_scatter: input is %s, expected %lld windows of a multiple "
		                  "of %lld tokens",
		                  type_str(x, b1, sizeof b1), (long long)g.nwin, (long long)g.l);
	if (mod < 0 || mod >= x->dims[3] / g.l)
		return diag_error(d, n->loc,
		                  "pwa_scatter: attribute 'modality' is %lld, expected 0..%lld",
		                  (long long)mod, (long long)(x->dims[3] / g.l - 1));
	int64_t dims[5] = {x->dims[0], g.npairs * x->dims[1] * x->dims[4], grid->ints[0],
	                   grid->ints[1], grid->ints[2]};
	m->values[n->out[0]].type = type_make(x->dtype, 5, dims);
	return 0;
}

int
shape_pwa_rel_bias(Module *m, Node *n, Diag *d)
{
	char b1[TS], b2[TS];
	PwaGeom g;

	if (velox_geom(n, NULL, &g, d) < 0) /* the token grid n only */
		return -1;
	int64_t heads = ir_attr_int(n, "heads"), reps = ir_attr_int(n, "reps");
	if (heads < 1 || reps < 1)
		return diag_error(d, n->loc,
		                  "pwa_rel_bias: 'heads' %lld and 'reps' %lld, expected >= 1",
		                  (long long)heads, (long long)reps);
	int64_t R = (2 * g.n[0] - 1) * (2 * g.n[1] - 1) * (2 * g.n[2] - 1);
	int64_t td[2] = {R, heads};
	Type want = type_make(DT_F32, 2, td);
	ValueId v = n->nin == 1 ? n->in[0] : 0;
	if (!v || v >= m->nvalues)
		return diag_error(d, n->loc,
		                  "pwa_rel_bias: parameter 'relative_position_bias_table' is "
		                  "missing");
	Type *t = &m->values[v].type;
	if (t->rank < 0)
		*t = want;
	else if (!type_equal(t, &want))
		return diag_error(d, n->loc, "weight '%s' has shape %s, expected %s",
		                  m->values[v].name ? m->values[v].name : "(unnamed)",
		                  type_str(t, b1, sizeof b1), type_str(&want, b2, sizeof b2));
	int64_t dims[4] = {heads, 1, reps * g.l, reps * g.l};
	m->values[n->out[0]].type = type_make(DT_F32, 4, dims);
	return 0;
}

int
shape_pixel_shuffle3d(Module *m, Node *n, Diag *d)
{
	if (check_node(m, n, d, 5, 5) < 0)
		return -1;
	const Type *x = tin(m, n, 0);
	int64_t r = ir_attr_int(n, "r");
	if (r < 1 || r > 64 || x->dims[1] % (r * r * r))
		return diag_error(d, n->loc,
		                  "pixel_shuffle3d: %lld channels with 'r' %lld, expected r in "
		                  "1..64 and channels a multiple of r^3",
		                  (long long)x->dims[1], (long long)r);
	Type t = *x;
	t.dims[1] = x->dims[1] / (r * r * r);
	for (int a = 2; a < 5; a++)
		t.dims[a] = x->dims[a] * r;
	m->values[n->out[0]].type = t;
	return 0;
}

/* ---- cost rules ---- */

static double
numel(const Module *m, ValueId v)
{
	const Type *t = &m->values[v].type;
	return v && t->rank >= 0 ? (double)type_numel(t) : 0;
}

/* one compare per input element (the max over each small window) */
Cost
cost_pwa_gather(const Module *m, const Node *n)
{
	Cost c = {0, 0};
	for (int i = 0; i < n->nin; i++)
		c.flops += numel(m, n->in[i]);
	return c;
}

/* trilinear as in cost_upsample (14 flops per output element) for the pairs whose small
 * window is > 1; pair 0 with small 1 is a copy */
Cost
cost_pwa_scatter(const Module *m, const Node *n)
{
	Cost c = {0, 0};
	PwaGeom g;
	const Type *t = &m->values[n->out[0]].type;

	if (t->rank != 5 || velox_geom(n, ir_attr(n, "grid")->ints, &g, NULL) < 0)
		return c;
	for (int i = 0; i < g.npairs; i++)
		if (g.S[i][0] * g.S[i][1] * g.S[i][2] > 1)
			c.flops += 14.0 * (double)type_numel(t) / g.npairs;
	return c;
}
