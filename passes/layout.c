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
 * channels-last (on CUDA too: tmpl_gpu_mma.c and tmpl_gpu_conv.c have conv3d_ndhwc forms);
 * auto (the default) is ncdhw on the CPU (measured in docs/performance.md, "Layouts") and
 * leaves a CUDA module unchanged (its engines stay as they were measured on a GPU until a GPU
 * session measures the layouts there).
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
#include "layout.h"

#include <stdlib.h>
#include <string.h>

/* ---- rules ---- */

/* permute: a relabelling, no node */
static int
rule_permute(Lw *w, const Node *n)
{
	const Attr *q = ir_attr(n, "perm");
	Held *hx = lay_held(w, n->in[0]);
	Hold h = {hx->h.r, {0}};
	int8_t qinv[IR_MAXRANK];

	for (int i = 0; i < q->n; i++)
		qinv[q->ints[i]] = (int8_t)i;
	for (int i = 0; i < h.r; i++)
		h.p[i] = qinv[hx->h.p[i]];
	lay_set_held(w, n->out[0], lay_phys(w, n->in[0]), &h);
	return 1;
}

/* reshape of a held x: the groups of dims it merges or splits must each stay together and
 * in order in P(x) */
static int
rule_reshape(Lw *w, const Node *n)
{
	ValueId x = n->in[0];
	Held *hx = lay_held(w, x);
	const Type *s = lay_ty(w, x), *t = lay_ty(w, n->out[0]);
	int8_t gs[IR_MAXRANK], gt[IR_MAXRANK], ng = 0, i = 0, j = 0;
	int8_t seen[IR_MAXRANK * 2] = {0};
	int64_t pd[IR_MAXRANK];
	Hold h = {t->rank, {0}};
	int k = 0;

	if (!hx->phys || lay_hold_id(&hx->h))
		return 0;
	while (i < s->rank || j < t->rank) { /* cut where the running products agree */
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
	for (int g = 0; g < ng; g++) /* groups of size-1 dims only x lacks */
		if (!seen[g])
			for (int e = 0; e < t->rank; e++)
				if (gt[e] == g)
					h.p[k++] = (int8_t)e;
	if (k != t->rank)
		return 0;
	for (int e = 0; e < t->rank; e++)
		pd[e] = t->dims[h.p[e]];
	lay_set_held(w, n->out[0], lay_reshape(w, lay_phys(w, x), pd, t->rank), &h);
	return 1;
}

/* an elementwise node in the hold of most of its full-rank operands */
static int
rule_elt(Lw *w, const Node *n)
{
	const Type *t = lay_ty(w, n->out[0]);
	ValueId in[8];
	Hold h;

	if (n->nin > 8 || n->nout != 1 || t->rank < 2 || !lay_pick_hold(w, n, t->rank, &h))
		return 0;
	for (int j = 0; j < n->nin; j++)
		in[j] = n->in[j] ? lay_adapt(w, n->in[j], &h) : 0;
	lay_set_held(w, n->out[0], lay_emit(w, n->op, in, n->nin, n->attrs), &h);
	return 1;
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
	Held *hx = lay_held(w, n->in[0]);
	Hold h = hx->h, ho = {0, {0}};
	int ia = op_attr_index(n->op, "axes"), ik = op_attr_index(n->op, "keepdim");
	int keep = n->op == OP_moments || (ik >= 0 && n->attrs[ik].i);
	const Attr *ax = &n->attrs[ia];
	int64_t axes[IR_MAXRANK] = {0};
	int8_t red[IR_MAXRANK] = {0}, newid[IR_MAXRANK];
	Attr a[8];
	ValueId x;

	if (!hx->phys || lay_hold_id(&h) || ax->n == 0 || ax->n > h.r)
		return 0;
	for (int i = 0; i < ax->n; i++) {
		int64_t d = ax->ints[i] < 0 ? ax->ints[i] + h.r : ax->ints[i];
		if (d < 0 || d >= h.r || red[d])
			return 0;
		red[d] = 1;
		axes[i] = lay_pos_of(&h, d);
	}
	/* the reduction templates want the reduced dims of P(x) as one trailing run, or the last
	 * dim kept (their lane form); a group norm's moments on a channels-last x ([N,DHW,G,C/G]
	 * reducing DHW and C/G) are neither, and ran 10x slower than a permute + NCDHW moments */
	if (red[h.p[h.r - 1]]) {
		const Type *t = lay_ty(w, n->in[0]);
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
	x = lay_phys(w, n->in[0]);
	ValueId y = lay_emit(w, n->op, &x, 1, a);
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
		lay_set_held(w, n->out[r], ir_def(w->m, y)->out[r], &ho);
	return 1;
}

/* concat and slice: in the hold most operands have, the axis remapped */
static int
rule_axis(Lw *w, const Node *n)
{
	int ia = op_attr_index(n->op, "axis");
	int r = lay_ty(w, n->in[0])->rank;
	ValueId in[64];
	Attr a[8];
	int64_t axis = n->attrs[ia].i;
	Hold h;

	if (n->nin > 64 || !lay_pick_hold(w, n, r, &h))
		return 0;
	for (int j = 0; j < n->nin; j++)
		in[j] = lay_convert(w, n->in[j], &h);
	if (axis < 0)
		axis += r;
	memcpy(a, n->attrs, (size_t)optab[n->op].nattrs * sizeof *a);
	a[ia].i = lay_pos_of(&h, axis);
	lay_set_held(w, n->out[0], lay_emit(w, n->op, in, n->nin, a), &h);
	return 1;
}

/* linear over the last dim: any hold that keeps the last dim last */
static int
rule_linear(Lw *w, const Node *n)
{
	Held *hx = lay_held(w, n->in[0]);
	Hold h = hx->h;
	ValueId in[3] = {lay_phys(w, n->in[0]), n->in[1], n->nin > 2 ? n->in[2] : 0};

	if (!hx->phys || lay_hold_id(&h) || h.p[h.r - 1] != h.r - 1)
		return 0;
	lay_set_held(w, n->out[0], lay_emit(w, n->op, in, n->nin, n->attrs), &h);
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
	ValueId x = lay_held(w, n->in[0])->cl, y;
	const Type *wt = lay_ty(w, n->in[1]);
	int pointwise = all_ones(ir_attr(n, "kernel"), 1) && all_ones(ir_attr(n, "stride"), 1) &&
	                all_ones(ir_attr(n, "pad"), 0) && ir_attr_int(n, "groups") == 1;

	if (!x) {
		x = lay_convert(w, n->in[0], &lay_cl5);
		lay_held(w, n->in[0])->cl = x;
	}
	if (pointwise && !getenv("SEGC_LAYOUT_CONV1")) {
		int64_t wd[2] = {wt->dims[0], wt->dims[1]};
		Attr a[4];
		ir_attrs_default(OP_linear, a);
		a[op_attr_index(OP_linear, "out")].i = wt->dims[0];
		a[op_attr_index(OP_linear, "out")].present = 1;
		a[op_attr_index(OP_linear, "bias")].i = ir_attr_int(n, "bias");
		a[op_attr_index(OP_linear, "bias")].present = 1;
		ValueId in[3] = {x, lay_reshape(w, n->in[1], wd, 2), n->in[2]};
		y = lay_emit(w, OP_linear, in, 3, a);
	} else {
		ValueId in[3] = {x, n->in[1], n->in[2]};
		y = lay_emit(w, OP_conv3d_ndhwc, in, 3, n->attrs);
	}
	lay_set_held(w, n->out[0], y, &lay_cl5);
	return 1;
}

/* one node: 1 if it was replaced (its node dies), 0 if kept (operands in their own layout) */
static int
rewrite(Lw *w, NodeId i)
{
	Node copy = w->m->nodes[i]; /* appending nodes may move the array */
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
		if (w->target == 1 && lay_ty(w, n->in[0])->rank == 5 &&
		    lay_ty(w, n->in[0])->dtype == DT_F32)
			return rule_conv(w, n);
		return 0;
	default:
		return oi->cls == FUSE_ELT ? rule_elt(w, n) : 0;
	}
}

int
pass_layout(Module *m, PassCtx *cx)
{
	Lw w = {m, cx, NULL, 0, 0, cx->opt->layout == LAYOUT_NDHWC};
	uint32_t norig = m->nnodes, tail;
	uint32_t(*span)[2] = arena_zalloc(cx->scratch, (size_t)norig * sizeof *span);

	if (cx->opt->layout == LAYOUT_AUTO && cx->opt->gpu)
		return 0; /* the CUDA engines as measured: see the header */
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
					m->nodes[i].in[j] = lay_ident(&w, v);
			}
		}
		span[i][1] = m->nnodes;
	}
	tail = m->nnodes;
	w.at = norig ? norig - 1 : 0;
	for (uint32_t k = 0; k < m->noutputs; k++) {
		ValueId v = m->outputs[k];
		ValueId x = lay_ident(&w, v);
		if (x != v) {
			/* an engine output keeps its value id's name: copy into the original slot
			 */
			m->outputs[k] = x;
			cx->changed = 1;
		}
	}
	if (cx->changed)
		pass_place(m, norig, (const uint32_t(*)[2])span, tail);
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
