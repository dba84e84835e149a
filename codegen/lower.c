/* codegen/lower.c -- fused groups to kernel IR, and the helpers every template shares.
 *
 * requires: Module.groups from passes/fuse.c and storage from passes/memplan.c.
 * cg_lower() makes one Kernel per Group, in group order, and lowers the group's root through
 * its template (tmpl_*.c).  Templates compute the root's value at an output coordinate and
 * call lw_output(), which applies the group's elementwise epilogue (the nodes after the root)
 * and stores the group's outputs.  See docs/codegen.md. */
#include "tmpl.h"

#include <stdlib.h>
#include <string.h>

/* ---- buffers ---- */

const Type *
lw_type(Lower *L, ValueId v)
{
	return &L->m->values[v].type;
}

int
lw_fail(Lower *L, const char *what)
{
	return diag_error(L->d, L->g->loc, "kernel %s: %s", L->k->name, what);
}

int
lw_buf(Lower *L, ValueId v)
{
	const Value *st;
	int b;

	/* a root operand 0 with a load prologue has no buffer: a template that does not apply
	 * the prologue reads its source, and lower_root() rejects the kernel (!pro_applied) */
	if (L->g->npro && v == L->root->in[0])
		v = L->g->pro_src;
	st = &L->m->values[v];

	/* a view's bytes are its alias's (a chain of reshapes ends at a materialised value) */
	for (int i = 0; st->storage == ST_VIEW && st->alias && i < 64; i++)
		st = &L->m->values[st->alias];
	if (st->storage == ST_NONE || st->storage == ST_CONST)
		diag_internal(__FILE__, __LINE__, "kernel %s reads %%%u, which is not materialised",
		              L->k->name, v);
	b = kir_buf(L->p, L->k, L->m, v);
	L->k->bufs[b].slot = st->slot;
	L->k->bufs[b].offset = st->offset;
	return b;
}

int
lw_outbuf(Lower *L, ValueId v)
{
	int b = lw_buf(L, v);
	L->k->bufs[b].written = 1;
	return b;
}

int
lw_out_aliases_input(Lower *L)
{
	const Kernel *k = L->k;
	for (uint32_t i = 0; i < L->g->nouts; i++) {
		const Value *o = &L->m->values[L->g->outs[i]];
		int64_t olo = o->offset, ohi = o->offset + value_bytes(o);
		for (uint32_t j = 0; j < k->nbufs; j++) {
			const KBuf *b = &k->bufs[j];
			int64_t blo = b->offset, bhi = b->offset + b->numel * dtype_size(b->dtype);
			if (b->written || b->slot != o->slot)
				continue;
			if (blo < ohi && olo < bhi)
				return 1;
		}
	}
	return 0;
}

/* ---- index arithmetic (i64), folding constants so dumps stay readable ---- */

KNode *
ix_c(Lower *L, int64_t c)
{
	return kir_i64(L->p, c);
}

KNode *
ix_add(Lower *L, KNode *a, KNode *b)
{
	if (a->kind == K_const && b->kind == K_const)
		return ix_c(L, a->ival + b->ival);
	if (a->kind == K_const && a->ival == 0)
		return b;
	if (b->kind == K_const && b->ival == 0)
		return a;
	return kir_bin(L->p, KB_ADD, a, b);
}

KNode *
ix_mul(Lower *L, KNode *a, int64_t c)
{
	if (c == 0)
		return ix_c(L, 0);
	if (a->kind == K_const)
		return ix_c(L, a->ival * c);
	if (c == 1)
		return a;
	return kir_bin(L->p, KB_MUL, a, ix_c(L, c));
}

KNode *
i32_c(Lower *L, int64_t c)
{
	return kir_cast(L->p, KT_I32, ix_c(L, c));
}

KNode *
i32_of(Lower *L, KNode *a)
{
	return kir_cast(L->p, KT_I32, a);
}

KNode *
i32_add(Lower *L, KNode *a, KNode *b)
{
	return kir_bin(L->p, KB_ADD, a, b);
}

KNode *
i32_mul(Lower *L, KNode *a, int64_t c)
{
	return kir_bin(L->p, KB_MUL, a, i32_c(L, c));
}

KNode *
i32_in(Lower *L, KNode *a, int64_t n)
{
	return kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, a, i32_c(L, 0)),
	               kir_bin(L->p, KB_LT, a, i32_c(L, n)));
}

KNode *
lw_inrange(Lower *L, KNode *i, int64_t n)
{
	return kir_bin(L->p, KB_AND, kir_bin(L->p, KB_GE, i, ix_c(L, 0)),
	               kir_bin(L->p, KB_LT, i, ix_c(L, n)));
}

KNode *
lw_clampi(Lower *L, KNode *i, int64_t n)
{
	return kir_bin(L->p, KB_MIN, kir_bin(L->p, KB_MAX, i, ix_c(L, 0)), ix_c(L, n - 1));
}

KNode *
lw_let(Lower *L, KNode *block, const char *name, KNode *init)
{
	int v = kir_var(L->p, L->k, (KType)init->type, name);
	kir_append(L->p, block, kir_let(L->p, L->k, v, init));
	return kir_ref(L->p, L->k, v);
}

KNode *
lw_simple(Lower *L, KNode *block, KNode *e)
{
	if (e->kind == K_var || e->kind == K_const)
		return e;
	return lw_let(L, block, "t", e);
}

KNode *
lw_loop(Lower *L, KNode *block, const char *name, KNode *lo, KNode *hi, LoopAnn ann, KNode **ref)
{
	int v = kir_var(L->p, L->k, KT_I64, name);
	KNode *loop = kir_loop(L->p, v, lo, hi, 1, ann);
	kir_append(L->p, block, loop);
	*ref = kir_ref(L->p, L->k, v);
	return loop;
}

KNode *
lw_block_loop(Lower *L, const char *name, int64_t n, int64_t T, KNode **it, KNode **th)
{
	KNode *bl = lw_loop(L, L->k->body, name, ix_c(L, 0), ix_c(L, n), LOOP_BLOCK, it);
	return lw_loop(L, bl->body, "th", ix_c(L, 0), ix_c(L, T), LOOP_THREAD, th);
}

int
lw_all_f32(Lower *L)
{
	const Node *r = L->root;
	for (int i = 0; i < r->nin; i++)
		if (r->in[i] && lw_type(L, r->in[i])->dtype != DT_F32)
			return 0;
	return lw_type(L, r->out[0])->dtype == DT_F32;
}

/* Split the flat index o over dims[0..n) (row-major) into idx[], with lets in block. */
void
lw_unflatten(Lower *L, KNode *block, KNode *o, const int64_t *dims, int n, KNode **idx)
{
	int64_t stride = 1;
	for (int d = n - 1; d >= 0; d--) {
		KNode *q = stride == 1 ? o : kir_bin(L->p, KB_DIV, o, ix_c(L, stride));
		if (dims[d] == 1)
			idx[d] = ix_c(L, 0);
		else if (d == 0)
			idx[d] = lw_simple(L, block, q);
		else
			idx[d] = lw_let(L, block, "i", kir_bin(L->p, KB_REM, q, ix_c(L, dims[d])));
		stride *= dims[d];
	}
}

enum { CHUNK = 4096, CHUNK_MIN = 16384 };

KNode *
lw_nest(Lower *L, const int64_t *dims, int n, int vec, KNode **idx)
{
	KNode *t, *loop;
	int64_t outer = 1, inner, nch = 1;

	L->nest_flat = NULL;
	if (n == 0) {
		loop = lw_loop(L, L->k->body, "p", ix_c(L, 0), ix_c(L, 1), LOOP_PARALLEL, &t);
		return loop->body;
	}
	/* on a GPU every element is a thread: the whole nest is one parallel loop */
	if (!vec || L->p->gpu) {
		for (int d = 0; d < n; d++)
			outer *= dims[d];
		loop = lw_loop(L, L->k->body, "p", ix_c(L, 0), ix_c(L, outer), LOOP_PARALLEL, &t);
		lw_unflatten(L, loop->body, t, dims, n, idx);
		L->nest_flat = t;
		return loop->body;
	}
	for (int d = 0; d < n - 1; d++)
		outer *= dims[d];
	inner = dims[n - 1];
	/* a long innermost dim with few outer iterations is chunked so threads have work */
	if (inner >= CHUNK_MIN && outer < 64)
		nch = (inner + CHUNK - 1) / CHUNK;
	loop = lw_loop(L, L->k->body, "p", ix_c(L, 0), ix_c(L, outer * nch), LOOP_PARALLEL, &t);
	KNode *body = loop->body, *lo = ix_c(L, 0), *hi = ix_c(L, inner), *o = t;
	if (nch > 1) {
		KNode *ch = lw_let(L, body, "ch", kir_bin(L->p, KB_REM, t, ix_c(L, nch)));
		o = lw_let(L, body, "o", kir_bin(L->p, KB_DIV, t, ix_c(L, nch)));
		lo = lw_let(L, body, "lo", ix_mul(L, ch, CHUNK));
		hi = kir_bin(L->p, KB_MIN, ix_add(L, lo, ix_c(L, CHUNK)), ix_c(L, inner));
	}
	lw_unflatten(L, body, o, dims, n - 1, idx);
	loop = lw_loop(L, body, "x", lo, hi, LOOP_VECTOR, &idx[n - 1]);
	return loop->body;
}

/* ---- coordinates and broadcasting ---- */

void
coord_full(Coord *c, const Type *t, KNode *const *idx)
{
	memset(c, 0, sizeof *c);
	c->t = t;
	c->n = t->rank;
	for (int d = 0; d < t->rank; d++) {
		c->idx[d] = idx[d];
		c->first[d] = c->last[d] = (int8_t)d;
	}
}

int64_t
lw_stride(const Type *t, int d)
{
	int64_t s = 1;
	for (int i = d + 1; i < t->rank; i++)
		s *= t->dims[i];
	return s;
}

/* Stride of vt along dim d of the broadcast shape t (0 where vt is broadcast). */
static int64_t
bstride(const Type *vt, const Type *t, int d)
{
	int od = d - (t->rank - vt->rank);
	if (od < 0 || vt->dims[od] == 1)
		return 0;
	return lw_stride(vt, od);
}

/* Stride of vt along dim d of t, whether or not vt has size 1 there (0 only if vt lacks d). */
static int64_t
bstride1(const Type *vt, const Type *t, int d)
{
	int od = d - (t->rank - vt->rank);
	return od < 0 ? 0 : lw_stride(vt, od);
}

KNode *
lw_index(Lower *L, const Coord *c, const Type *vt)
{
	int same = c->flat && vt->rank == c->t->rank;
	for (int d = 0; same && d < vt->rank; d++)
		same = vt->dims[d] == c->t->dims[d];
	if (same) /* not broadcast: the flat index itself, not its coordinates re-flattened */
		return c->flat;
	KNode *e = ix_c(L, 0);
	for (int j = 0; j < c->n; j++) {
		/* a flattened coordinate (dims first..last) is broadcast only if vt has size 1 on
		 * all of them: a trailing 1 inside the range (e.g. [2,2,1]) must keep the stride */
		int64_t st = 0;
		for (int d = c->first[j]; d <= c->last[j] && !st; d++)
			st = bstride(vt, c->t, d);
		if (st)
			st = bstride1(vt, c->t, c->last[j]);
		e = ix_add(L, e, ix_mul(L, c->idx[j], st));
	}
	return e;
}

static const Node *
defnode(Lower *L, ValueId v)
{
	return &L->m->nodes[L->m->values[v].def];
}

KNode *
lw_operand(Lower *L, const Coord *c, ValueId v)
{
	const Node *n = defnode(L, v);
	if (n->op == OP_constant || L->m->values[v].storage == ST_CONST)
		return kir_f32(L->p, ir_attr_float(n, "value"));
	return kir_load(L->p, L->k, lw_buf(L, v), lw_index(L, c, lw_type(L, v)));
}

int
lw_is_out(Lower *L, ValueId v)
{
	for (uint32_t i = 0; i < L->g->nouts; i++)
		if (L->g->outs[i] == v)
			return 1;
	if (L->g->nouts == 0) {
		const Node *last = &L->m->nodes[L->g->nodes[L->g->nnodes - 1]];
		for (int i = 0; i < last->nout; i++)
			if (last->out[i] == v)
				return 1;
	}
	return 0;
}

void
lw_store(Lower *L, KNode *block, const Coord *c, ValueId v, KNode *val)
{
	int b = lw_outbuf(L, v);
	kir_append(L->p, block, kir_store(L->p, b, lw_index(L, c, lw_type(L, v)), val));
}

int
lw_output(Lower *L, KNode *block, const Coord *c, KNode *val)
{
	ValueId cur = L->root->out[0];
	KNode *x[IR_MAXRANK];

	/* (want_val: each value let-bound before its store, so that the store and out_val share
	 * a variable, not an expression that is computed twice) */
	if (L->want_val)
		val = lw_simple(L, block, val);
	if (lw_is_out(L, cur))
		lw_store(L, block, c, cur, val);
	for (uint32_t i = 1; i < L->g->nnodes; i++) {
		const Node *n = &L->m->nodes[L->g->nodes[i]];
		if (optab[n->op].cls != FUSE_ELT || n->nout != 1)
			return lw_fail(L, "epilogue node is not elementwise");
		val = lw_simple(L, block, val);
		for (int j = 0; j < n->nin && j < IR_MAXRANK; j++)
			x[j] = n->in[j] == cur ? val
			                       : lw_simple(L, block, lw_operand(L, c, n->in[j]));
		val = cg_elt_expr(L, block, n, x);
		if (!val)
			return lw_fail(L, "epilogue op not supported");
		cur = n->out[0];
		if (L->want_val)
			val = lw_simple(L, block, val);
		if (lw_is_out(L, cur))
			lw_store(L, block, c, cur, val);
	}
	L->out_val = L->want_val ? val : NULL;
	return 0;
}

const Node *
lw_stats(Lower *L)
{
	return L->g->stats ? &L->m->nodes[L->g->stats] : NULL;
}

/* ---- the load prologue (passes/fuse.c puts it in Group.pro; docs/codegen.md) ---- */

int
lw_has_prologue(Lower *L)
{
	return L->g->npro > 0;
}

ValueId
lw_prologue_src(Lower *L)
{
	return L->g->npro ? L->g->pro_src : L->root->in[0];
}

/* v is the prologue's source or the result of one of its nodes */
static int
pro_chain(Lower *L, ValueId v)
{
	if (v == L->g->pro_src)
		return 1;
	for (uint32_t i = 0; i < L->g->npro; i++)
		if (L->m->nodes[L->g->pro[i]].out[0] == v)
			return 1;
	return 0;
}

/* The value of chain value v: the source (val), an earlier chain node's result, or NULL. */
static KNode *
pro_value(Lower *L, ValueId v, KNode *val, KNode **res)
{
	if (v == L->g->pro_src)
		return val;
	for (uint32_t i = 0; i < L->g->npro; i++)
		if (L->m->nodes[L->g->pro[i]].out[0] == v)
			return res[i];
	return NULL;
}

/* operand j of chain node i when it is not a chain value: broadcast per (n, c), so loaded
 * at (n, c, 0, 0, 0) */
static KNode *
pro_operand(Lower *L, KNode *block, KNode *nidx, KNode *cidx, ValueId v)
{
	const Type *t = lw_type(L, L->g->pro_src);
	KNode *idx[IR_MAXRANK];
	Coord c;

	for (int d = 0; d < t->rank; d++)
		idx[d] = d == 0 ? nidx : d == 1 ? cidx : ix_c(L, 0);
	coord_full(&c, t, idx);
	return lw_simple(L, block, lw_operand(L, &c, v));
}

/* Fold the chain's leading affine nodes into L->pro_c, pro_s, pro_t (lets in block): a first
 * sub(x, k) gives c; then add/sub k, mul k (either side), div by k give s and t. */
static void
pro_fold(Lower *L, KNode *block)
{
	ValueId cur = L->g->pro_src;
	KNode *c = NULL, *s = NULL, *t = NULL;
	uint32_t i;

	for (i = 0; i < L->g->npro; i++) {
		const Node *n = &L->m->nodes[L->g->pro[i]];
		int a, b;
		KNode *k;

		if (n->nin != 2 || (i > 0 && L->m->values[cur].nuses != 1))
			break;
		a = n->in[0] == cur;
		b = n->in[1] == cur;
		if (a == b || pro_chain(L, n->in[a ? 1 : 0]))
			break;
		k = L->pro_ops[i * IR_MAXRANK + (a ? 1 : 0)];
		if (n->op == OP_sub && a && i == 0)
			c = k;
		else if (n->op == OP_add)
			t = t ? kir_bin(L->p, KB_ADD, t, k) : k;
		else if (n->op == OP_sub && a)
			t = t ? kir_bin(L->p, KB_SUB, t, k) : kir_un(L->p, KU_NEG, k);
		else if (n->op == OP_mul || (n->op == OP_div && a)) {
			KBinOp op = n->op == OP_mul ? KB_MUL : KB_DIV;
			s = s              ? kir_bin(L->p, op, s, k)
			    : op == KB_MUL ? k
			                   : kir_bin(L->p, KB_DIV, kir_f32(L->p, 1), k);
			t = t ? kir_bin(L->p, op, t, k) : NULL;
		} else
			break;
		cur = n->out[0];
	}
	L->pro_naff = i;
	L->pro_c = c;
	L->pro_s = s ? lw_simple(L, block, s) : NULL;
	L->pro_t = t ? lw_simple(L, block, t) : NULL;
}

void
lw_prologue_hoist(Lower *L, KNode *block, KNode *nidx, KNode *cidx)
{
	L->pro_ops = NULL;
	L->pro_naff = 0;
	if (!L->g->npro)
		return;
	L->pro_ops = arena_zalloc(L->p->arena, (size_t)L->g->npro * IR_MAXRANK * sizeof(KNode *));
	for (uint32_t i = 0; i < L->g->npro; i++) {
		const Node *n = &L->m->nodes[L->g->pro[i]];
		for (int j = 0; j < n->nin && j < IR_MAXRANK; j++)
			if (!pro_chain(L, n->in[j]))
				L->pro_ops[i * IR_MAXRANK + j] =
				    pro_operand(L, block, nidx, cidx, n->in[j]);
	}
	pro_fold(L, block);
}

void
lw_prologue_unhoist(Lower *L)
{
	L->pro_ops = NULL;
	L->pro_naff = 0;
}

void
lw_prologue_keep(const Lower *L, LwHoist *h)
{
	h->ops = L->pro_ops, h->naff = L->pro_naff;
	h->c = L->pro_c, h->s = L->pro_s, h->t = L->pro_t;
}

void
lw_prologue_use(Lower *L, const LwHoist *h)
{
	L->pro_ops = h->ops, L->pro_naff = h->naff;
	L->pro_c = h->c, L->pro_s = h->s, L->pro_t = h->t;
}

KNode *
lw_prologue(Lower *L, KNode *block, KNode *nidx, KNode *cidx, KNode *val)
{
	KNode *x[IR_MAXRANK], **res;

	if (!L->g->npro)
		return val;
	if (!L->pro_applied)
		L->pro_applied = 1;
	res = arena_zalloc(L->p->arena, (size_t)L->g->npro * sizeof *res);
	val = lw_simple(L, block, val);
	if (L->pro_ops && L->pro_naff) { /* the folded affine part: (x - c) * s + t */
		KNode *v = val;
		if (L->pro_c)
			v = kir_bin(L->p, KB_SUB, v, L->pro_c);
		if (L->pro_s)
			v = kir_bin(L->p, KB_MUL, v, L->pro_s);
		if (L->pro_t)
			v = kir_bin(L->p, KB_ADD, v, L->pro_t);
		res[L->pro_naff - 1] = lw_simple(L, block, v);
	}
	for (uint32_t i = L->pro_ops ? L->pro_naff : 0; i < L->g->npro; i++) {
		const Node *n = &L->m->nodes[L->g->pro[i]];
		for (int j = 0; j < n->nin && j < IR_MAXRANK; j++) {
			x[j] = pro_value(L, n->in[j], val, res);
			if (!x[j] && L->pro_ops)
				x[j] = L->pro_ops[i * IR_MAXRANK + j];
			if (!x[j])
				x[j] = pro_operand(L, block, nidx, cidx, n->in[j]);
		}
		res[i] = cg_elt_expr(L, block, n, x);
		if (!res[i]) { /* lower_root fails the kernel */
			L->pro_applied = -1;
			return kir_f32(L->p, 0);
		}
		res[i] = lw_simple(L, block, res[i]);
	}
	return res[L->g->npro - 1];
}

int
lw_scratch(Lower *L, int dtype, int64_t numel, const char *name)
{
	int64_t base = (L->m->arena_bytes + 63) & ~(int64_t)63;
	int64_t bytes = numel * (int64_t)dtype_size(dtype);
	int b = kir_scratch(L->p, L->k, base + L->scratch_used, dtype, numel, name);
	L->k->bufs[b].written = 1;
	L->scratch_used += (bytes + 63) & ~(int64_t)63;
	if (L->scratch_used > L->p->scratch_bytes)
		L->p->scratch_bytes = L->scratch_used;
	return b;
}

KNode *
lw_batch_off(Lower *L, KNode *const *idx, const Type *y, const Type *vt)
{
	KNode *e = ix_c(L, 0);
	for (int d = 0; d < y->rank - 2; d++) {
		int od = d - (y->rank - vt->rank);
		if (od < 0 || vt->dims[od] == 1)
			continue;
		e = ix_add(L, e, ix_mul(L, idx[d], lw_stride(vt, od)));
	}
	return e;
}

void
lw_conv_shape(Lower *L, Conv *cv)
{
	const Node *n = L->root;
	const Type *it = lw_type(L, n->in[0]), *ot = lw_type(L, n->out[0]);

	memset(cv, 0, sizeof *cv);
	if (n->op == OP_conv3d_ndhwc) { /* x [N, D, H, W, Ci], y [N, OD, OH, OW, Co] */
		cv->N = it->dims[0], cv->D = it->dims[1], cv->H = it->dims[2], cv->W = it->dims[3];
		cv->Ci = it->dims[4];
		cv->OD = ot->dims[1], cv->OH = ot->dims[2], cv->OW = ot->dims[3];
		cv->Co = ot->dims[4];
	} else {
		cv->N = it->dims[0], cv->Ci = it->dims[1];
		cv->D = it->dims[2], cv->H = it->dims[3], cv->W = it->dims[4];
		cv->Co = ot->dims[1], cv->OD = ot->dims[2], cv->OH = ot->dims[3];
		cv->OW = ot->dims[4];
	}
	for (int i = 0; i < 3; i++) {
		cv->k[i] = ir_attr(n, "kernel")->ints[i];
		cv->s[i] = ir_attr(n, "stride")->ints[i];
		cv->p[i] = ir_attr(n, "pad")->ints[i];
		cv->dl[i] = ir_attr(n, "dilation")->ints[i];
		if (n->op == OP_conv_transpose3d)
			cv->op[i] = ir_attr(n, "output_padding")->ints[i];
	}
	cv->groups = ir_attr_int(n, "groups");
	cv->cig = cv->Ci / cv->groups;
	cv->cog = cv->Co / cv->groups;
	cv->x = n->in[0];
	cv->w = n->in[1];
	cv->b = n->nin > 2 ? n->in[2] : 0;
	cv->out = n->out[0];
}

/* ---- the driver ---- */

static int lower_form(Lower *L);

/* Lower the root; a load prologue that the template did not apply is an error, never
 * silently dropped. */
static int
lower_root(Lower *L)
{
	int rc = lower_form(L);
	if (rc == 0 && L->g->stats && !L->stats_done) {
		/* the statistics as the moments node's own loops, reading the stored result */
		Group sg = {.root = L->g->stats, .nodes = &sg.root, .nnodes = 1, .outs = L->g->outs,
		            .nouts = L->g->nouts, .name = L->g->name, .loc = L->g->loc};
		Lower S = {L->p, L->k, L->m, &sg, &L->m->nodes[sg.root], L->d};
		S.scratch_used = L->scratch_used;
		rc = lower_form(&S);
		L->scratch_used = S.scratch_used;
	}
	if (rc == 0 && L->pro_applied < 0)
		return lw_fail(L, "an op of the load prologue is not supported");
	if (rc == 0 && L->g->npro && !L->pro_applied)
		return lw_fail(L,
		               arena_printf(L->p->arena,
		                            "the %s form of %s does not apply the load "
		                            "prologue (SEGC_PROLOGUE=0 turns prologues off)",
		                            L->p->gpu ? "cuda" : "cpu", optab[L->root->op].name));
	return rc;
}

static int
lower_form(Lower *L)
{
	/* a GPU form where one exists (1: none for this node; the generic template follows) */
	if (L->p->gpu) {
		int rc = tmpl_gpu(L);
		if (rc != 1)
			return rc;
	}
	switch (L->root->op) {
	case OP_permute:
	case OP_slice:
	case OP_concat:
	case OP_reshape:
		return tmpl_inj(L);
	case OP_reduce_sum:
	case OP_reduce_mean:
	case OP_reduce_max:
	case OP_moments:
		return tmpl_reduce(L);
	case OP_conv3d:
		return tmpl_conv(L);
	case OP_conv3d_ndhwc: return tmpl_conv_ndhwc(L);
	case OP_conv_transpose3d:
		return tmpl_conv_transpose(L);
	case OP_linear:
	case OP_matmul:
		return tmpl_matmul(L);
	case OP_max_pool3d:
	case OP_avg_pool3d:
		return tmpl_pool(L);
	case OP_upsample:
		return tmpl_resize(L);
	/* op families: one case line per op, calling the family's template (tmpl_<family>.c) */
	case OP_selective_scan: return tmpl_scan(L);
	case OP_causal_conv1d: return tmpl_conv1d(L);
	case OP_token_prune: return tmpl_token_prune(L);
	case OP_token_unpool: return tmpl_token_unpool(L);
	case OP_select_by_index: return tmpl_select_by_index(L);
	case OP_pwa_rel_bias:     return tmpl_velox_rel_bias(L);
	case OP_pad_tokens:       return tmpl_pad_tokens(L);
	default:
		break;
	}
	if (optab[L->root->op].cls == FUSE_ELT)
		return tmpl_eltwise(L);
	return cg_unsupported(L->d, L->k, "cpu", optab[L->root->op].name);
}

int
cg_unsupported(Diag *d, const Kernel *k, const char *backend, const char *what)
{
	return diag_error(d, k->loc, "kernel %s: %s is not supported by the %s backend", k->name,
	                  what, backend);
}

int
cg_lower(const Module *m, Program *p, Diag *d)
{
	int rc = 0;

	for (uint32_t gi = 0; gi < m->ngroups; gi++) {
		const Group *g = &m->groups[gi];
		const char *name = g->name ? g->name : arena_printf(p->arena, "k%u", gi);
		Kernel *k = kir_kernel(p, name, g->loc);
		Lower L = { p, k, m, g, &m->nodes[g->root], d };

		k->group = (int)gi;
		k->key = ir_group_key(m, g, p->arena);
		k->tune = tune_find(p->tune, k->key);
		const TuneEntry *was = cg_knob_enter(k->tune);
		for (uint32_t i = 0; i < g->nnodes + g->npro + (g->stats != 0); i++) {
			NodeId id = i < g->nnodes                ? g->nodes[i]
			            : i < g->nnodes + g->npro ? g->pro[i - g->nnodes]
			                                        : g->stats;
			Cost c = ir_node_cost(m, &m->nodes[id]);
			k->cost.macs += c.macs;
			k->cost.flops += c.flops;
		}
		if (lower_root(&L) < 0)
			rc = -1;
		cg_knob_enter(was);
		if (diag_full(d))
			break;
	}
	p->nslots = 1 + m->ninputs + m->noutputs;
	for (uint32_t i = 0; i < m->nnodes; i++)
		if (!m->nodes[i].dead && m->nodes[i].op == OP_weight)
			p->nslots++;
	cg_prepack(p, m);
	p->manifest = cg_manifest(m, p->scratch_bytes, p->packed_bytes, p->arena);
	return rc;
}

int
cg_target(Program *p, const char *target, const char *precision)
{
	p->gpu = 0;
	p->precision = KP_FP32;
	if (!target || !strcmp(target, "cpu"))
		p->gpu = 0;
	else if (!strcmp(target, "cuda:sm_90"))
		p->gpu = 90;
	else if (!strcmp(target, "cuda:sm_80"))
		p->gpu = 80;
	else
		return -1;
	if (!precision || !strcmp(precision, "fp32"))
		p->precision = KP_FP32;
	else if (!strcmp(precision, "tf32"))
		p->precision = KP_TF32;
	else if (!strcmp(precision, "bf16"))
		p->precision = KP_BF16;
	else
		return -1;
	return 0;
}

int64_t
cg_gpu_smem(const Program *p)
{
	const char *e = cg_knob("SEGC_CUDA_SMEM");
	int64_t max = p->gpu >= 90 ? 227 * 1024 : 163 * 1024, v = e && *e ? atoll(e) : 0;
	return v > CG_SMEM_STATIC ? (v < max ? v : max) : CG_SMEM_STATIC;
}
