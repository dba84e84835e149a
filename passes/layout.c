/* passes/layout.c -- one layout for the whole network: channels-last where asked, and every
 * permute an index map (a relabelling of dims) instead of a copy where its consumers allow.
 *
 * Each value v gets a physical form: a value P(v) holding v's elements with its dims in the
 * order hold(v): dim i of P(v) is dim hold(v)[i] of v (identity: P(v) = v).  Walking the
 * nodes in order:
 *   - permute y = x.perm(q): no node; P(y) = P(x) with hold(y)[i] = q^-1[hold(x)[i]];
 *   - reshape: when the dims that hold(x) reorders are whole groups of the reshape (the
 *     segmamba flatten [N,C,D,H,W] -> [N,C,L] of an NDHWC x), a reshape of P(x) with the
 *     groups in the same order; else x is materialised first;
 *   - elementwise ops run in the hold most of their full-rank operands have (ties: the
 *     target layout's); the other operands are brought to it (a reshape when only size-1 dims
 *     move, as with per-channel weights; a constant is rebuilt in the new shape; else a permute);
 *   - moments and reductions run on P(x) over the remapped axes; concat and slice on the
 *     remapped axis when every operand has the same hold; linear when the hold keeps the
 *     last dim last;
 *   - conv3d, with --layout=ndhwc: conv3d_ndhwc on P(x) held [0,2,3,4,1] (a permute of x when
 *     it is held otherwise, e.g. the input volume); a 1x1x1 conv with stride 1, no padding and
 *     one group there is a linear over the channels (the weight viewed as [Co, Ci]);
 *   - every other op, and every engine output, reads its operands in their own layout: a
 *     held operand is materialised once by a permute node (the only copies this pass makes).
 * The layout: --layout=ncdhw keeps PyTorch's (only permutes move); ndhwc turns convs
 * channels-last; auto (the default) is ncdhw on the CPU (measured in docs/performance.md,
 * "Layouts": its NCDHW convs have the Winograd form) and leaves a CUDA module unchanged (its
 * engines stay as they were measured on a GPU until a GPU session measures the relabelling).
 *
 * requires:  typed, canonical module (canon), dce and cse done
 * preserves: engine inputs, weights and outputs (names, types); the values of rewritten nodes
 *            are replaced (their nodes die, new ones are placed where they stood)
 *
 *   before:  %5 = reshape %4 {shape=[1,48,-1]}   %6 = permute %5 {perm=[0,2,1]}
 *            %7 = layer_norm-ish elementwise on %6 ...  %9 = permute %8 {perm=[0,2,1]}
 *   after:   (ndhwc, %4 held [0,2,3,4,1]) %10 = reshape %4' {shape=[1,4096,48]}: %6 is %10,
 *            no copy; %9 is %8 held [0,2,1]
 */
#include "pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	int8_t r;               /* rank; 0 for scalars */
	int8_t p[IR_MAXRANK];   /* physical dim i is logical dim p[i] */
} Hold;

typedef struct {
	ValueId phys;           /* P(v); 0: v itself, identity */
	Hold h;
	ValueId ident;          /* v materialised in its own layout (0: not yet) */
	ValueId cl;             /* v brought to the channels-last hold (0: not yet) */
} Held;

typedef struct {
	Module *m;
	PassCtx *cx;
	Held *hv;               /* per value; grows with m->nvalues */
	uint32_t nhv;
	NodeId at;              /* the node being rewritten: new nodes take its name and Loc */
	int target;             /* LAYOUT_NCDHW or LAYOUT_NDHWC */
	int ncopies;            /* permutes materialised */
} Lw;

static const Hold cl5 = {5, {0, 2, 3, 4, 1}};

static int
hold_id(const Hold *h)
{
	for (int i = 0; i < h->r; i++)
		if (h->p[i] != i)
			return 0;
	return 1;
}

static int
hold_eq(const Hold *a, const Hold *b)
{
	return a->r == b->r && !memcmp(a->p, b->p, (size_t)a->r);
}

static Hold
hold_ident(int r)
{
	Hold h = {(int8_t)r, {0}};
	for (int i = 0; i < r; i++)
		h.p[i] = (int8_t)i;
	return h;
}

static Held *
held(Lw *w, ValueId v)
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
		h->h = hold_ident(r > 0 ? r : 0);
	}
	return h;
}

static ValueId
phys_of(Lw *w, ValueId v)
{
	Held *h = held(w, v);
	return h->phys ? h->phys : v;
}

static const Type *
ty(Lw *w, ValueId v)
{
	return &w->m->values[v].type;
}

static ValueId
emit(Lw *w, int op, const ValueId *in, int nin, const Attr *a)
{
	const Node *at = &w->m->nodes[w->at];
	int64_t id = ir_add_node(w->m, op, in, nin, a, at->name, at->loc, w->cx->diag);
	if (id < 0)
		diag_internal(__FILE__, __LINE__, "layout built an ill-typed %s", optab[op].name);
	w->cx->changed = 1;
	return w->m->nodes[id].out[0];
}

static ValueId
reshape_to(Lw *w, ValueId x, const int64_t *dims, int r)
{
	int64_t shape[IR_MAXRANK] = {0};
	Attr a[2];
	Type t = type_make(ty(w, x)->dtype, r, dims);

	if (type_equal(ty(w, x), &t))
		return x;
	while (ir_def(w->m, x)->op == OP_reshape)      /* a view of a view: of the source */
		x = ir_def(w->m, x)->in[0];
	if (type_equal(ty(w, x), &t))
		return x;
	memcpy(shape, dims, (size_t)r * sizeof *dims);
	ir_attrs_default(OP_reshape, a);
	a[0].present = 1;
	a[0].n = (uint16_t)r;
	a[0].ints = shape;
	return emit(w, OP_reshape, &x, 1, a);
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
	w->ncopies++;
	return emit(w, OP_permute, &x, 1, a);
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
	return emit(w, OP_constant, NULL, 0, a);
}

/* The value whose dims are dim to[i] = logical dim h->p[i] of v (v of rank h->r; v held as
 * cur); a reshape when only size-1 dims change places, else a permute of P(v). */
static ValueId
convert(Lw *w, ValueId v, const Hold *to)
{
	Held *hv = held(w, v);
	const Type *t = ty(w, v);
	Hold cur = hv->h;
	ValueId pv = hv->phys ? hv->phys : v;
	int8_t inv[IR_MAXRANK], perm[IR_MAXRANK];
	int64_t dims[IR_MAXRANK];
	int last = -1, sorted = 1;

	if (hold_eq(&cur, to))
		return pv;
	for (int i = 0; i < cur.r; i++)
		inv[cur.p[i]] = (int8_t)i;
	for (int i = 0; i < to->r; i++) {
		perm[i] = inv[to->p[i]];         /* dim i of the result is dim perm[i] of P(v) */
		dims[i] = t->dims[to->p[i]];
		if (dims[i] != 1) {
			sorted &= perm[i] > last;
			last = perm[i];
		}
	}
	if (ir_def(w->m, v)->op == OP_constant)
		return const_as(w, v, dims, to->r);
	if (sorted)
		return reshape_to(w, pv, dims, to->r);
	return permute_by(w, pv, perm, to->r);
}

/* v in its own layout, materialised once */
static ValueId
ident(Lw *w, ValueId v)
{
	Held *hv = held(w, v);
	Hold id;

	if (!hv->phys || hold_id(&hv->h))
		return hv->phys ? hv->phys : v;
	if (!hv->ident) {
		id = hold_ident(hv->h.r);
		ValueId x = convert(w, v, &id);
		held(w, v)->ident = x;
	}
	return held(w, v)->ident;
}

/* v (rank <= r, numpy-aligned to the right) in hold h of rank r, for an elementwise op */
static ValueId
adapt(Lw *w, ValueId v, const Hold *h)
{
	const Type *t = ty(w, v);
	Held *hv = held(w, v);
	Hold full;
	int r = h->r, off;

	if (t->rank == r)
		return hold_eq(&hv->h, h) ? phys_of(w, v) : convert(w, v, h);
	if (t->rank == 0)
		return v;
	/* a lower-rank operand: its own layout, then viewed at rank r (leading 1s) and moved */
	ValueId x = ident(w, v);
	int64_t dims[IR_MAXRANK];
	off = r - t->rank;
	for (int i = 0; i < r; i++)
		dims[i] = i < off ? 1 : t->dims[i - off];
	if (ir_def(w->m, v)->op != OP_constant)
		x = reshape_to(w, x, dims, r);
	else
		x = const_as(w, v, dims, r);
	/* x is rank r in its own layout now */
	full = hold_ident(r);
	held(w, x)->h = full;
	held(w, x)->phys = 0;
	return convert(w, x, h);
}

/* record that result v of a rewritten node is the value pv held as h */
static void
set_held(Lw *w, ValueId v, ValueId pv, const Hold *h)
{
	Held *hv = held(w, v);
	hv->phys = pv;
	hv->h = *h;
	hv->ident = hold_id(h) ? pv : 0;
	hv->cl = 0;
}

/* ---- rules ---- */

/* permute: a relabelling, no node */
static int
rule_permute(Lw *w, const Node *n)
{
	const Attr *q = ir_attr(n, "perm");
	Held *hx = held(w, n->in[0]);
	Hold h = {hx->h.r, {0}};
	int8_t qinv[IR_MAXRANK];

	for (int i = 0; i < q->n; i++)
		qinv[q->ints[i]] = (int8_t)i;
	for (int i = 0; i < h.r; i++)
		h.p[i] = qinv[hx->h.p[i]];
	set_held(w, n->out[0], phys_of(w, n->in[0]), &h);
	return 1;
}

/* reshape of a held x: the groups of dims it merges or splits must each stay together and
 * in order in P(x) */
static int
rule_reshape(Lw *w, const Node *n)
{
	ValueId x = n->in[0];
	Held *hx = held(w, x);
	const Type *s = ty(w, x), *t = ty(w, n->out[0]);
	int8_t gs[IR_MAXRANK], gt[IR_MAXRANK], ng = 0, i = 0, j = 0;
	int8_t seen[IR_MAXRANK * 2] = {0};
	int64_t pd[IR_MAXRANK];
	Hold h = {t->rank, {0}};
	int k = 0;

	if (!hx->phys || hold_id(&hx->h))
		return 0;
	while (i < s->rank || j < t->rank) {    /* cut where the running products agree */
		int64_t ps = 1, pt = 1;
		if (i < s->rank) {
			gs[i] = ng;
			ps *= s->dims[i++];
		}
		if (j < t->rank) {
			gt[j] = ng;
			pt *= t->dims[j++];
		}
		while (ps != pt) {
			if (ps < pt && i < s->rank) {
				gs[i] = ng;
				ps *= s->dims[i++];
			} else if (pt < ps && j < t->rank) {
				gt[j] = ng;
				pt *= t->dims[j++];
			} else {
				return 0;
			}
		}
		if (ps == 0)
			return 0;
		ng++;
	}
	/* walk P(x): each group's dims consecutive and in order */
	for (int p = 0; p < hx->h.r; p++) {
		int d = hx->h.p[p], g = gs[d];
		if (p > 0 && gs[hx->h.p[p - 1]] == g) {
			if (hx->h.p[p - 1] != d - 1)
				return 0;
			continue;
		}
		if (seen[g] || (d > 0 && gs[d - 1] == g))
			return 0;
		seen[g] = 1;
		for (int e = 0; e < t->rank; e++)
			if (gt[e] == g)
				h.p[k++] = (int8_t)e;
	}
	for (int g = 0; g < ng; g++)            /* groups of size-1 dims only x lacks */
		if (!seen[g])
			for (int e = 0; e < t->rank; e++)
				if (gt[e] == g)
					h.p[k++] = (int8_t)e;
	if (k != t->rank)
		return 0;
	for (int e = 0; e < t->rank; e++)
		pd[e] = t->dims[h.p[e]];
	set_held(w, n->out[0], reshape_to(w, phys_of(w, x), pd, t->rank), &h);
	return 1;
}

/* h is the layout the pass aims at (identity for ncdhw; for ndhwc, channels-last at rank 5) */
static int
is_target(const Lw *w, const Hold *h)
{
	return w->target == 1 && h->r == 5 ? hold_eq(h, &cl5) : hold_id(h);
}

/* The hold most of n's operands of rank r have (ties: the target layout's) in *h; 0 when
 * that is the identity. */
static int
pick_hold(Lw *w, const Node *n, int r, Hold *h)
{
	Hold cand[8];
	int votes[8] = {0}, nc = 0, best = -1;

	for (int j = 0; j < n->nin; j++) {
		ValueId v = n->in[j];
		if (!v || ty(w, v)->rank != r)
			continue;
		Hold hj = held(w, v)->h;
		int c = 0;
		/* a value held otherwise than the target with more uses is materialised once
		 * anyway: running this op in its hold would only make a second copy later */
		int occ = 0;
		for (int k = 0; k < n->nin; k++)
			occ += n->in[k] == v;
		if (w->m->values[v].nuses > (uint32_t)occ && !is_target(w, &hj))
			hj = hold_ident(hj.r);
		while (c < nc && !hold_eq(&cand[c], &hj))
			c++;
		if (c == nc && nc == 8)
			return 0;
		if (c == nc)
			cand[nc++] = hj;
		votes[c] += 2;
		if (is_target(w, &hj))
			votes[c]++;             /* ties go to the target layout */
	}
	for (int c = 0; c < nc; c++)
		if (best < 0 || votes[c] > votes[best])
			best = c;
	if (best < 0 || hold_id(&cand[best]))
		return 0;
	*h = cand[best];
	return 1;
}

/* an elementwise node in the hold of most of its full-rank operands */
static int
rule_elt(Lw *w, const Node *n)
{
	const Type *t = ty(w, n->out[0]);
	ValueId in[8];
	Hold h;

	if (n->nin > 8 || n->nout != 1 || t->rank < 2 || !pick_hold(w, n, t->rank, &h))
		return 0;
	for (int j = 0; j < n->nin; j++)
		in[j] = n->in[j] ? adapt(w, n->in[j], &h) : 0;
	set_held(w, n->out[0], emit(w, n->op, in, n->nin, n->attrs), &h);
	return 1;
}

/* the position of logical dim d in hold h */
static int
pos_of(const Hold *h, int64_t d)
{
	for (int i = 0; i < h->r; i++)
		if (h->p[i] == d)
			return i;
	return -1;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* moments and reduce_*: the axes remapped; a dropped dim leaves the hold */
static int
rule_reduce(Lw *w, const Node *n)
{
	Held *hx = held(w, n->in[0]);
	Hold h = hx->h, ho = {0, {0}};
	int ia = op_attr_index(n->op, "axes"), ik = op_attr_index(n->op, "keepdim");
	int keep = n->op == OP_moments || (ik >= 0 && n->attrs[ik].i);
	const Attr *ax = &n->attrs[ia];
	int64_t axes[IR_MAXRANK] = {0};
	int8_t red[IR_MAXRANK] = {0}, newid[IR_MAXRANK];
	Attr a[8];
	ValueId x;

	if (!hx->phys || hold_id(&h) || ax->n == 0 || ax->n > h.r)
		return 0;
	for (int i = 0; i < ax->n; i++) {
		int64_t d = ax->ints[i] < 0 ? ax->ints[i] + h.r : ax->ints[i];
		if (d < 0 || d >= h.r || red[d])
			return 0;
		red[d] = 1;
		axes[i] = pos_of(&h, d);
	}
	/* the reduction templates want the reduced dims of P(x) as one trailing run, or the last
	 * dim kept (their lane form); a group norm's moments on a channels-last x ([N,DHW,G,C/G]
	 * reducing DHW and C/G) are neither, and ran 10x slower than a permute + NCDHW moments */
	if (red[h.p[h.r - 1]]) {
		const Type *t = ty(w, n->in[0]);
		int seen_red = 0;
		for (int i = 0; i < h.r; i++) {
			int64_t sz = t->dims[h.p[i]];
			if (red[h.p[i]] && sz > 1)
				seen_red = 1;
			else if (!red[h.p[i]] && sz > 1 && seen_red)
				return 0;
		}
	}
	qsort(axes, ax->n, sizeof *axes, cmp_i64);
	memcpy(a, n->attrs, (size_t)optab[n->op].nattrs * sizeof *a);
	a[ia].ints = axes;
	x = phys_of(w, n->in[0]);
	ValueId y = emit(w, n->op, &x, 1, a);
	if (keep)
		ho = h;
	else {
		for (int d = 0, k = 0; d < h.r; d++)
			newid[d] = red[d] ? -1 : (int8_t)k++;
		for (int i = 0; i < h.r; i++)
			if (!red[h.p[i]])
				ho.p[ho.r++] = newid[h.p[i]];
	}
	for (int r = 0; r < n->nout; r++)
		set_held(w, n->out[r], ir_def(w->m, y)->out[r], &ho);
	return 1;
}

/* concat and slice: in the hold most operands have, the axis remapped */
static int
rule_axis(Lw *w, const Node *n)
{
	int ia = op_attr_index(n->op, "axis");
	int r = ty(w, n->in[0])->rank;
	ValueId in[64];
	Attr a[8];
	int64_t axis = n->attrs[ia].i;
	Hold h;

	if (n->nin > 64 || !pick_hold(w, n, r, &h))
		return 0;
	for (int j = 0; j < n->nin; j++)
		in[j] = convert(w, n->in[j], &h);
	if (axis < 0)
		axis += r;
	memcpy(a, n->attrs, (size_t)optab[n->op].nattrs * sizeof *a);
	a[ia].i = pos_of(&h, axis);
	set_held(w, n->out[0], emit(w, n->op, in, n->nin, a), &h);
	return 1;
}

/* linear over the last dim: any hold that keeps the last dim last */
static int
rule_linear(Lw *w, const Node *n)
{
	Held *hx = held(w, n->in[0]);
	Hold h = hx->h;
	ValueId in[3] = {phys_of(w, n->in[0]), n->in[1], n->nin > 2 ? n->in[2] : 0};

	if (!hx->phys || hold_id(&h) || h.p[h.r - 1] != h.r - 1)
		return 0;
	set_held(w, n->out[0], emit(w, n->op, in, n->nin, n->attrs), &h);
	return 1;
}

static int
all_ones(const Attr *a, int64_t v)
{
	for (int i = 0; i < a->n; i++)
		if (a->ints[i] != v)
			return 0;
	return 1;
}

/* conv3d channels-last: conv3d_ndhwc, or a linear for a plain 1x1x1 conv */
static int
rule_conv(Lw *w, const Node *n)
{
	ValueId x = held(w, n->in[0])->cl, y;
	const Type *wt = ty(w, n->in[1]);
	int pointwise = all_ones(ir_attr(n, "kernel"), 1) && all_ones(ir_attr(n, "stride"), 1) &&
	                all_ones(ir_attr(n, "pad"), 0) && ir_attr_int(n, "groups") == 1;

	if (!x) {
		x = convert(w, n->in[0], &cl5);
		held(w, n->in[0])->cl = x;
	}
	if (pointwise && !getenv("SEGC_LAYOUT_CONV1")) {
		int64_t wd[2] = {wt->dims[0], wt->dims[1]};
		Attr a[4];
		ir_attrs_default(OP_linear, a);
		a[op_attr_index(OP_linear, "out")].i = wt->dims[0];
		a[op_attr_index(OP_linear, "out")].present = 1;
		a[op_attr_index(OP_linear, "bias")].i = ir_attr_int(n, "bias");
		a[op_attr_index(OP_linear, "bias")].present = 1;
		ValueId in[3] = {x, reshape_to(w, n->in[1], wd, 2), n->in[2]};
		y = emit(w, OP_linear, in, 3, a);
	} else {
		ValueId in[3] = {x, n->in[1], n->in[2]};
		y = emit(w, OP_conv3d_ndhwc, in, 3, n->attrs);
	}
	set_held(w, n->out[0], y, &cl5);
	return 1;
}

/* one node: 1 if it was replaced (its node dies), 0 if kept (operands in their own layout) */
static int
rewrite(Lw *w, NodeId i)
{
	Node copy = w->m->nodes[i];     /* appending nodes may move the array */
	const Node *n = &copy;
	const OpInfo *oi = &optab[n->op];

	switch (n->op) {
	case OP_permute:
		return rule_permute(w, n);
	case OP_reshape:
		return rule_reshape(w, n);
	case OP_moments:
	case OP_reduce_sum:
	case OP_reduce_mean:
	case OP_reduce_max:
		return rule_reduce(w, n);
	case OP_concat:
	case OP_slice:
		return rule_axis(w, n);
	case OP_linear:
		return rule_linear(w, n);
	case OP_conv3d:
		if (w->target == 1 && ty(w, n->in[0])->rank == 5 && ty(w, n->in[0])->dtype == DT_F32)
			return rule_conv(w, n);
		return 0;
	default:
		return oi->cls == FUSE_ELT ? rule_elt(w, n) : 0;
	}
}

/* place the nodes appended for node i (span[i]) before it, the tail ones last */
static void
place(Module *m, uint32_t norig, const uint32_t (*span)[2], uint32_t tail)
{
	uint32_t cap = m->nnodes, k = 0;
	Node *nodes = arena_alloc(m->arena, (size_t)cap * sizeof *nodes);

	for (uint32_t i = 0; i < norig; i++) {
		for (uint32_t j = span[i][0]; j < span[i][1]; j++)
			nodes[k++] = m->nodes[j];
		if (!m->nodes[i].dead)
			nodes[k++] = m->nodes[i];
	}
	for (uint32_t j = tail; j < m->nnodes; j++)
		nodes[k++] = m->nodes[j];
	m->nodes = nodes;
	m->nnodes = k;
	m->capnodes = cap;
	for (uint32_t i = 0; i < k; i++)
		for (int j = 0; j < nodes[i].nout; j++)
			m->values[nodes[i].out[j]].def = i;
}

int
pass_layout(Module *m, PassCtx *cx)
{
	Lw w = {m, cx, NULL, 0, 0, cx->opt->layout == LAYOUT_NDHWC, 0};
	uint32_t norig = m->nnodes, tail;
	uint32_t (*span)[2] = arena_zalloc(cx->scratch, (size_t)norig * sizeof *span);

	if (cx->opt->layout == LAYOUT_AUTO && cx->opt->gpu)
		return 0;       /* the CUDA engines as measured: see the header */
	if (w.target && cx->opt->gpu)
		return diag_error(cx->diag, loc_none,
		                  "--layout=ndhwc: the cuda backend has no channels-last conv; "
		                  "expected --layout=ncdhw or auto");
	ir_count_uses(m);
	for (uint32_t i = 0; i < norig; i++) {
		Node *n = &m->nodes[i];
		if (n->dead || optab[n->op].cls == FUSE_SRC)
			continue;
		w.at = i;
		span[i][0] = m->nnodes;
		if (rewrite(&w, i)) {
			m->nodes[i].dead = 1;
		} else {
			/* kept: every data operand in its own layout */
			for (int j = 0; j < m->nodes[i].nin; j++) {
				ValueId v = m->nodes[i].in[j];
				if (v)
					m->nodes[i].in[j] = ident(&w, v);
			}
		}
		span[i][1] = m->nnodes;
	}
	tail = m->nnodes;
	w.at = norig ? norig - 1 : 0;
	for (uint32_t k = 0; k < m->noutputs; k++) {
		ValueId v = m->outputs[k];
		ValueId x = ident(&w, v);
		if (x != v) {
			/* an engine output keeps its value id's name: copy into the original slot */
			m->outputs[k] = x;
			cx->changed = 1;
		}
	}
	if (cx->changed)
		place(m, norig, (const uint32_t (*)[2])span, tail);
	ir_count_uses(m);
	/* the views and conversions nothing reads any more (last first: a chain dies whole) */
	for (uint32_t i = m->nnodes; i-- > 0;) {
		Node *n = &m->nodes[i];
		if (n->dead || optab[n->op].cls == FUSE_SRC || n->nout != 1 ||
		    m->values[n->out[0]].nuses)
			continue;
		n->dead = 1;
		for (int j = 0; j < n->nin; j++)
			if (n->in[j])
				m->values[n->in[j]].nuses--;
	}
	ir_sweep(m, &cx->changed);
	return 0;
}
