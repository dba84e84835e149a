/* passes/layout_hold.c -- the holds of passes/layout.c: each value's physical form P(v), the
 * conversions between holds (a reshape when only size-1 dims move, a rebuilt constant, else a
 * permute node), and the choice of an elementwise op's hold.  See passes/layout.c. */
#include "layout.h"

#include <string.h>

const Hold lay_cl5 = {5, {0, 2, 3, 4, 1}};

int
lay_hold_id(const Hold *h)
{
	for (int i = 0; i < h->r; i++)
		if (h->p[i] != i)
			return 0;
	return 1;
}

int
lay_hold_eq(const Hold *a, const Hold *b)
{
	return a->r == b->r && !memcmp(a->p, b->p, (size_t)a->r);
}

Hold
lay_hold_ident(int r)
{
	Hold h = {(int8_t)r, {0}};
	for (int i = 0; i < r; i++)
		h.p[i] = (int8_t)i;
	return h;
}

Held *
lay_held(Lw *w, ValueId v)
{
	if (w->nhv < w->m->nvalues) {
		uint32_t n = 2 * w->m->nvalues + 256;
		Held *hv = arena_zalloc(w->cx->scratch, n * sizeof *hv);
		if (w->nhv)
			memcpy(hv, w->hv, w->nhv * sizeof *hv);
		w->hv = hv;
		w->nhv = n;
	}
	Held *h = &w->hv[v];
	if (!h->h.r && !h->phys) {
		int r = w->m->values[v].type.rank;
		h->h = lay_hold_ident(r > 0 ? r : 0);
	}
	return h;
}

ValueId
lay_phys(Lw *w, ValueId v)
{
	Held *h = lay_held(w, v);
	return h->phys ? h->phys : v;
}

const Type *
lay_ty(Lw *w, ValueId v)
{
	return &w->m->values[v].type;
}

ValueId
lay_emit(Lw *w, int op, const ValueId *in, int nin, const Attr *a)
{
	const Node *at = &w->m->nodes[w->at];
	int64_t id = ir_add_node(w->m, op, in, nin, a, at->name, at->loc, w->cx->diag);
	if (id < 0)
		diag_internal(__FILE__, __LINE__, "layout built an ill-typed %s", optab[op].name);
	w->cx->changed = 1;
	return w->m->nodes[id].out[0];
}

ValueId
lay_reshape(Lw *w, ValueId x, const int64_t *dims, int r)
{
	int64_t shape[IR_MAXRANK] = {0};
	Attr a[2];
	Type t = type_make(lay_ty(w, x)->dtype, r, dims);

	if (type_equal(lay_ty(w, x), &t))
		return x;
	while (ir_def(w->m, x)->op == OP_reshape) /* a view of a view: of the source */
		x = ir_def(w->m, x)->in[0];
	if (type_equal(lay_ty(w, x), &t))
		return x;
	memcpy(shape, dims, (size_t)r * sizeof *dims);
	ir_attrs_default(OP_reshape, a);
	a[0].present = 1;
	a[0].n = (uint16_t)r;
	a[0].ints = shape;
	return lay_emit(w, OP_reshape, &x, 1, a);
}

static ValueId
permute_by(Lw *w, ValueId x, const int8_t *perm, int r)
{
	int64_t p[IR_MAXRANK] = {0};
	Attr a[2];

	for (int i = 0; i < r; i++)
		p[i] = perm[i];
	ir_attrs_default(OP_permute, a);
	a[0].present = 1;
	a[0].n = (uint16_t)r;
	a[0].ints = p;
	return lay_emit(w, OP_permute, &x, 1, a);
}

/* the splat constant c in shape dims[0..r) */
static ValueId
const_as(Lw *w, ValueId c, const int64_t *dims, int r)
{
	const Node *def = ir_def(w->m, c);
	int is = op_attr_index(OP_constant, "shape");
	int64_t shape[IR_MAXRANK] = {0};
	Attr a[4];

	memcpy(a, def->attrs, (size_t)optab[OP_constant].nattrs * sizeof *a);
	memcpy(shape, dims, (size_t)r * sizeof *dims);
	a[is].present = 1;
	a[is].n = (uint16_t)r;
	a[is].ints = shape;
	return lay_emit(w, OP_constant, NULL, 0, a);
}

/* The value whose dims are dim to[i] = logical dim h->p[i] of v (v of rank h->r; v held as
 * cur); a reshape when only size-1 dims change places, else a permute of P(v). */
ValueId
lay_convert(Lw *w, ValueId v, const Hold *to)
{
	Held *hv = lay_held(w, v);
	const Type *t = lay_ty(w, v);
	Hold cur = hv->h;
	ValueId pv = hv->phys ? hv->phys : v;
	int8_t inv[IR_MAXRANK], perm[IR_MAXRANK];
	int64_t dims[IR_MAXRANK];
	int last = -1, sorted = 1;

	if (lay_hold_eq(&cur, to))
		return pv;
	for (int i = 0; i < cur.r; i++)
		inv[cur.p[i]] = (int8_t)i;
	for (int i = 0; i < to->r; i++) {
		perm[i] = inv[to->p[i]]; /* dim i of the result is dim perm[i] of P(v) */
		dims[i] = t->dims[to->p[i]];
		if (dims[i] != 1) {
			sorted &= perm[i] > last;
			last = perm[i];
		}
	}
	if (ir_def(w->m, v)->op == OP_constant)
		return const_as(w, v, dims, to->r);
	if (sorted)
		return lay_reshape(w, pv, dims, to->r);
	return permute_by(w, pv, perm, to->r);
}

/* v in its own layout, materialised once */
ValueId
lay_ident(Lw *w, ValueId v)
{
	Held *hv = lay_held(w, v);
	Hold id;

	if (!hv->phys || lay_hold_id(&hv->h))
		return hv->phys ? hv->phys : v;
	if (!hv->ident) {
		id = lay_hold_ident(hv->h.r);
		ValueId x = lay_convert(w, v, &id);
		lay_held(w, v)->ident = x;
	}
	return lay_held(w, v)->ident;
}

/* v (rank <= r, numpy-aligned to the right) in hold h of rank r, for an elementwise op */
ValueId
lay_adapt(Lw *w, ValueId v, const Hold *h)
{
	const Type *t = lay_ty(w, v);
	Held *hv = lay_held(w, v);
	Hold full;
	int r = h->r, off;

	if (t->rank == r)
		return lay_hold_eq(&hv->h, h) ? lay_phys(w, v) : lay_convert(w, v, h);
	if (t->rank == 0)
		return v;
	/* a lower-rank operand: its own layout, then viewed at rank r (leading 1s) and moved */
	ValueId x = lay_ident(w, v);
	int64_t dims[IR_MAXRANK];
	off = r - t->rank;
	for (int i = 0; i < r; i++)
		dims[i] = i < off ? 1 : t->dims[i - off];
	if (ir_def(w->m, v)->op != OP_constant)
		x = lay_reshape(w, x, dims, r);
	else
		x = const_as(w, v, dims, r);
	/* x is rank r in its own layout now */
	full = lay_hold_ident(r);
	lay_held(w, x)->h = full;
	lay_held(w, x)->phys = 0;
	return lay_convert(w, x, h);
}

/* record that result v of a rewritten node is the value pv held as h */
void
lay_set_held(Lw *w, ValueId v, ValueId pv, const Hold *h)
{
	Held *hv = lay_held(w, v);
	hv->phys = pv;
	hv->h = *h;
	hv->ident = lay_hold_id(h) ? pv : 0;
	hv->cl = 0;
}

/* h is the layout the pass aims at (identity for ncdhw; for ndhwc, channels-last at rank 5) */
int
lay_is_target(const Lw *w, const Hold *h)
{
	return w->target == 1 && h->r == 5 ? lay_hold_eq(h, &lay_cl5) : lay_hold_id(h);
}

/* The hold most of n's operands of rank r have (ties: the target layout's) in *h; 0 when
 * that is the identity. */
int
lay_pick_hold(Lw *w, const Node *n, int r, Hold *h)
{
	Hold cand[8];
	int votes[8] = {0}, nc = 0, best = -1;

	for (int j = 0; j < n->nin; j++) {
		ValueId v = n->in[j];
		if (!v || lay_ty(w, v)->rank != r)
			continue;
		Hold hj = lay_held(w, v)->h;
		int c = 0;
		/* a value held otherwise than the target with more uses is materialised once
		 * anyway: running this op in its hold would only make a second copy later */
		int occ = 0;
		for (int k = 0; k < n->nin; k++)
			occ += n->in[k] == v;
		if (w->m->values[v].nuses > (uint32_t)occ && !lay_is_target(w, &hj))
			hj = lay_hold_ident(hj.r);
		while (c < nc && !lay_hold_eq(&cand[c], &hj))
			c++;
		if (c == nc && nc == 8)
			return 0;
		if (c == nc)
			cand[nc++] = hj;
		votes[c] += 2;
		if (lay_is_target(w, &hj))
			votes[c]++; /* ties go to the target layout */
	}
	for (int c = 0; c < nc; c++)
		if (best < 0 || votes[c] > votes[best])
			best = c;
	if (best < 0 || lay_hold_id(&cand[best]))
		return 0;
	*h = cand[best];
	return 1;
}

/* the position of logical dim d in hold h */
int
lay_pos_of(const Hold *h, int64_t d)
{
	for (int i = 0; i < h->r; i++)
		if (h->p[i] == d)
			return i;
	return -1;
}
