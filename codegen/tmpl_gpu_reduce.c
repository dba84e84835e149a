/* codegen/tmpl_gpu_reduce.c -- GPU form of reduce_sum, reduce_mean, reduce_max and moments
 * (called by tmpl_gpu.c when the program is lowered for CUDA; docs/cuda.md).
 *
 * A reduction with a large reduced extent R and few outputs O (instance norm at 128^3: O = C,
 * R = 2M) is split: P lanes per output, lane l reading the reduced elements l, l+P, l+2P, ...
 * When the innermost input dim is reduced, the lanes of one output are consecutive threads (a
 * warp reads 32 consecutive floats at each step) and the lanes are combined in registers,
 * block-mapped (warp shuffles, then the warps' results through shared memory):
 *   loop 1  blocks over O*G, T threads  T lanes each -> one partial per block -> [O][G]
 *   loop 2  blocks over O, T2 threads   the G partials -> the output (lw_output)
 * (G = 1: loop 1 writes the output.)  Otherwise consecutive outputs are consecutive threads
 * (and addresses), and the partials go through global scratch (grid-stride loops):
 *   loop 1  parallel over O*P (lanes)   a partial per lane -> scratch [O][P]
 *   loop 2  parallel over O*P/64        64 partials -> one (only when P >= 128) -> [O][P/64]
 *   loop 3  parallel over O             the remaining partials -> the output (lw_output)
 * moments keeps, per lane, a sum and a sum of squares shifted by the lane's first element,
 * turned into (mean, M2) and merged with Chan's formula, so neither long fp32 sums nor
 * E[x^2] - E[x]^2 cancellation lose the variance.  Returns 1 (the generic thread-per-output
 * template of tmpl_reduce.c) when R is small or O alone fills the GPU. */
#include "tmpl.h"

#include <math.h>
#include <stdlib.h>

enum {
	RED_THREADS = 1 << 17, /* loop-1 iterations aimed at: a few waves on 132 SMs */
	RED_MINPER = 64,       /* at least this many elements per lane */
	RED_MIN = 256,         /* below this reduced extent: thread per output */
	RED_GROUP = 64,        /* partials combined by one loop-2 iteration */
	RED_MAXGROUPS = 256,   /* lanes per output <= this many groups: loop 3 combines <= 256 */
	RED_BLOCK = 256,       /* threads per block of the block-mapped form */
	WARP = 32,
};

typedef enum { RK_SUM, RK_MAX, RK_MOM } RedKind;

typedef struct {
	int nruns;                                   /* runs of adjacent reduced dims */
	int64_t ext[IR_MAXRANK], stride[IR_MAXRANK]; /* per run, slowest first */
	int nk;                                      /* kept dims */
	int kd[IR_MAXRANK];
	int64_t kdims[IR_MAXRANK];
	uint8_t red[IR_MAXRANK];
	int64_t R, O, P;    /* reduced, outputs, lanes per output */
	int64_t nfull, rem; /* R = nfull*P + rem */
	int lane_fast;      /* lanes of one output are consecutive */
	RedKind kind;
	int xb;        /* input buffer */
	int64_t group; /* RED_GROUP, or $SEGC_GPU_RED_GROUP */
	int64_t T, G;  /* block-mapped: threads per block (lanes per partial), blocks per output */
} Red;

static KNode *
bin(Lower *L, KBinOp op, KNode *a, KNode *b)
{
	return kir_bin(L->p, op, a, b);
}

static KNode *
f32c(Lower *L, double v)
{
	return kir_f32(L->p, v);
}

static void
assign(Lower *L, KNode *block, KNode *var, KNode *val)
{
	kir_append(L->p, block, kir_assign(L->p, var->var, val));
}

static KNode *
par_loop(Lower *L, const char *name, int64_t n, KNode **ref)
{
	return lw_loop(L, L->k->body, name, ix_c(L, 0), ix_c(L, n), LOOP_PARALLEL, ref)->body;
}

/* input offset of output o's first element; fills kidx[] (the kept coordinates) */
static KNode *
out_base(Lower *L, KNode *block, const Red *r, const Type *it, KNode *o, KNode **kidx)
{
	KNode *base = ix_c(L, 0);
	int64_t div = 1;
	for (int j = r->nk - 1; j >= 0; j--) {
		KNode *q = div == 1 ? o : bin(L, KB_DIV, o, ix_c(L, div));
		if (r->kdims[j] == 1)
			kidx[j] = ix_c(L, 0);
		else if (j == 0)
			kidx[j] = lw_simple(L, block, q);
		else
			kidx[j] = lw_let(L, block, "i", bin(L, KB_REM, q, ix_c(L, r->kdims[j])));
		div *= r->kdims[j];
		base = ix_add(L, base, ix_mul(L, kidx[j], lw_stride(it, r->kd[j])));
	}
	return lw_simple(L, block, base);
}

/* input index of reduced element e (flat over the runs) of the output at base */
static KNode *
elem_index(Lower *L, KNode *block, const Red *r, KNode *base, KNode *e)
{
	KNode *x = base;
	int64_t div = 1;
	if (r->nruns == 1)
		return ix_add(L, base, ix_mul(L, e, r->stride[0]));
	e = lw_simple(L, block, e);
	for (int j = r->nruns - 1; j >= 0; j--) {
		KNode *q = div == 1 ? e : bin(L, KB_DIV, e, ix_c(L, div));
		if (j > 0)
			q = bin(L, KB_REM, q, ix_c(L, r->ext[j]));
		x = ix_add(L, x, ix_mul(L, q, r->stride[j]));
		div *= r->ext[j];
	}
	return x;
}

/* fold element x into the lane's accumulators (acc; or s1, s2 shifted by k for moments) */
static void
fold(Lower *L, KNode *block, const Red *r, KNode *x, KNode *acc, KNode *s2, KNode *k)
{
	if (r->kind == RK_MOM) {
		KNode *d = lw_let(L, block, "d", bin(L, KB_SUB, x, k));
		assign(L, block, acc, bin(L, KB_ADD, acc, d));
		assign(L, block, s2, bin(L, KB_ADD, s2, bin(L, KB_MUL, d, d)));
		return;
	}
	assign(L, block, acc, bin(L, r->kind == RK_MAX ? KB_MAX : KB_ADD, acc, x));
}

/* Chan's merge of a partial (nb elements, mean mb, M2 Mb) into (na, ma, Ma); nb >= 1 */
static void
chan(Lower *L, KNode *block, KNode *na, KNode *ma, KNode *Ma, KNode *nb, KNode *mb, KNode *Mb)
{
	KNode *n = lw_let(L, block, "n", bin(L, KB_ADD, na, nb));
	KNode *d = lw_let(L, block, "d", bin(L, KB_SUB, mb, ma));
	KNode *f = lw_let(L, block, "f", bin(L, KB_DIV, nb, n));
	assign(L, block, ma, bin(L, KB_ADD, ma, bin(L, KB_MUL, d, f)));
	assign(L, block, Ma,
	       bin(L, KB_ADD, bin(L, KB_ADD, Ma, Mb),
	           bin(L, KB_MUL, bin(L, KB_MUL, d, d), bin(L, KB_MUL, na, f))));
	assign(L, block, na, n);
}

/* a partial (variables): the value (moments: the mean), moments' element count and M2 */
typedef struct {
	KNode *v, *n, *M2;
} Part;

/* lane l of output o: its partial, in lets of body */
static Part
lane_partial(Lower *L, KNode *body, const Red *r, const Type *it, KNode *o, KNode *l)
{
	KNode *kidx[IR_MAXRANK], *j;
	KNode *base = out_base(L, body, r, it, o, kidx);
	double init = r->kind == RK_MAX ? -INFINITY : 0;
	KNode *acc = lw_let(L, body, "acc", f32c(L, init)), *s2 = NULL, *k = NULL;
	if (r->kind == RK_MOM) {
		s2 = lw_let(L, body, "s2", f32c(L, 0));
		/* the shift: the lane's first element (P <= R, so every lane has one) */
		k = lw_let(L, body, "k",
		           kir_load(L->p, L->k, r->xb, elem_index(L, body, r, base, l)));
	}
	KNode *loop = lw_loop(L, body, "j", ix_c(L, 0), ix_c(L, r->nfull), LOOP_SERIAL, &j);
	KNode *e = ix_add(L, l, ix_mul(L, j, r->P));
	KNode *x = kir_load(L->p, L->k, r->xb, elem_index(L, loop->body, r, base, e));
	fold(L, loop->body, r, x, acc, s2, k);
	if (r->rem) { /* the ragged last round: lanes below rem have one more element */
		KNode *iff = kir_if(L->p, bin(L, KB_LT, l, ix_c(L, r->rem)));
		kir_append(L->p, body, iff);
		e = ix_add(L, l, ix_c(L, r->nfull * r->P));
		x = kir_load(L->p, L->k, r->xb, elem_index(L, iff->body, r, base, e));
		fold(L, iff->body, r, x, acc, s2, k);
	}
	Part pt = {acc, NULL, NULL};
	if (r->kind != RK_MOM)
		return pt;
	KNode *cnt = r->rem ? kir_select(L->p, bin(L, KB_LT, l, ix_c(L, r->rem)),
	                                 f32c(L, (double)(r->nfull + 1)), f32c(L, (double)r->nfull))
	                    : f32c(L, (double)r->nfull);
	pt.n = lw_let(L, body, "cnt", cnt);
	KNode *m1 = lw_let(L, body, "m1", bin(L, KB_DIV, acc, pt.n));
	pt.v = lw_let(L, body, "mean", bin(L, KB_ADD, k, m1));
	KNode *M2 = bin(L, KB_SUB, s2, bin(L, KB_MUL, acc, m1));
	pt.M2 = lw_let(L, body, "m2", bin(L, KB_MAX, M2, f32c(L, 0)));
	return pt;
}

/* grid-stride loop 1: one partial per (output, lane) into s0 (and s1: M2) at o*P + l */
static void
lanes(Lower *L, const Red *r, const Type *it, int s0, int s1)
{
	KNode *p;
	KNode *body = par_loop(L, "p", r->O * r->P, &p);
	KNode *o, *l;
	if (r->lane_fast) {
		o = lw_let(L, body, "o", bin(L, KB_DIV, p, ix_c(L, r->P)));
		l = lw_let(L, body, "l", bin(L, KB_REM, p, ix_c(L, r->P)));
	} else {
		l = lw_let(L, body, "l", bin(L, KB_DIV, p, ix_c(L, r->O)));
		o = lw_let(L, body, "o", bin(L, KB_REM, p, ix_c(L, r->O)));
	}
	Part pt = lane_partial(L, body, r, it, o, l);
	KNode *at = ix_add(L, ix_mul(L, o, r->P), l);
	kir_append(L->p, body, kir_store(L->p, s0, at, pt.v));
	if (r->kind == RK_MOM)
		kir_append(L->p, body, kir_store(L->p, s1, at, pt.M2));
}

/* elements that lanes [lo, lo + cnt) of one output hold (as an f32 expression) */
static KNode *
lane_count(Lower *L, const Red *r, KNode *lo, int64_t cnt)
{
	/* cnt*nfull + the lanes below rem: clamp(rem - lo, 0, cnt) */
	KNode *extra =
	    bin(L, KB_MIN, bin(L, KB_MAX, bin(L, KB_SUB, ix_c(L, r->rem), lo), ix_c(L, 0)),
	        ix_c(L, cnt));
	return kir_cast(L->p, KT_F32, ix_add(L, ix_c(L, cnt * r->nfull), extra));
}

/* Combine partials first + i*stride (i < cnt) of buffers s0 (s1) into lets; for moments the
 * i-th holds the elements of lanes [lane0 + i*stride*per, lane0 + (i*stride + 1)*per). */
static Part
combine(Lower *L, KNode *block, const Red *r, int s0, int s1, KNode *first, int64_t cnt,
        int64_t stride, KNode *lane0, int64_t per)
{
	KNode *i;
	double init = r->kind == RK_MAX ? -INFINITY : 0;
	KNode *acc = lw_let(L, block, "acc", f32c(L, init));
	KNode *na = NULL, *Ma = NULL;
	if (r->kind == RK_MOM) {
		na = lw_let(L, block, "na", f32c(L, 0));
		Ma = lw_let(L, block, "ma2", f32c(L, 0));
	}
	KNode *loop = lw_loop(L, block, "i", ix_c(L, 0), ix_c(L, cnt), LOOP_SERIAL, &i);
	KNode *at = lw_let(L, loop->body, "at", ix_add(L, first, ix_mul(L, i, stride)));
	KNode *v = kir_load(L->p, L->k, s0, at);
	Part pt = {acc, na, Ma};
	if (r->kind != RK_MOM) {
		assign(L, loop->body, acc, bin(L, r->kind == RK_MAX ? KB_MAX : KB_ADD, acc, v));
		return pt;
	}
	KNode *mb = lw_let(L, loop->body, "mb", v);
	KNode *Mb = lw_let(L, loop->body, "mb2", kir_load(L->p, L->k, s1, at));
	KNode *lo = ix_add(L, lane0, ix_mul(L, i, stride * per));
	KNode *nb = lw_let(L, loop->body, "nb", lane_count(L, r, lo, per));
	chan(L, loop->body, na, acc, Ma, nb, mb, Mb);
	return pt;
}

/* loop 2: groups of r->group partials of s0/s1 into t0/t1 ([O][P/group]) */
static void
groups(Lower *L, const Red *r, int s0, int s1, int t0, int t1)
{
	int64_t ng = r->P / r->group;
	KNode *q;
	KNode *body = par_loop(L, "q", r->O * ng, &q);
	KNode *o = lw_let(L, body, "o", bin(L, KB_DIV, q, ix_c(L, ng)));
	KNode *g = lw_let(L, body, "g", bin(L, KB_REM, q, ix_c(L, ng)));
	KNode *lane0 = lw_let(L, body, "lane0", ix_mul(L, g, r->group));
	KNode *first = ix_add(L, ix_mul(L, o, r->P), lane0);
	Part v = combine(L, body, r, s0, s1, first, r->group, 1, lane0, 1);
	kir_append(L->p, body, kir_store(L->p, t0, q, v.v));
	if (r->kind == RK_MOM)
		kir_append(L->p, body, kir_store(L->p, t1, q, v.M2));
}

/* the root's outputs at output o from its combined partial v */
static int
output(Lower *L, KNode *body, const Red *r, const Type *it, KNode *o, Part pv)
{
	const Node *n = L->root;
	KNode *kidx[IR_MAXRANK], *oidx[IR_MAXRANK], *v = pv.v, *M2 = pv.M2;
	Coord c;

	out_base(L, body, r, it, o, kidx);
	for (int d = 0, j = 0, e = 0; d < it->rank; d++) {
		if (!r->red[d])
			oidx[e++] = kidx[j++];
		else if (n->op == OP_moments || ir_attr_int(n, "keepdim"))
			oidx[e++] = ix_c(L, 0);
	}
	coord_full(&c, lw_type(L, n->out[0]), oidx);
	switch (n->op) {
	case OP_reduce_sum:
	case OP_reduce_max:
		return lw_output(L, body, &c, v);
	case OP_reduce_mean:
		return lw_output(L, body, &c, bin(L, KB_MUL, v, f32c(L, 1.0 / (double)r->R)));
	default:
		break;
	}
	KNode *var = bin(L, KB_MUL, M2, f32c(L, 1.0 / (double)r->R));
	KNode *sd = kir_un(L->p, KU_SQRT, bin(L, KB_ADD, var, f32c(L, ir_attr_float(n, "eps"))));
	if (lw_is_out(L, n->out[0]))
		lw_store(L, body, &c, n->out[0], v);
	if (lw_is_out(L, n->out[1]))
		lw_store(L, body, &c, n->out[1], bin(L, KB_DIV, f32c(L, 1), sd));
	return 0;
}

/* grid-stride loop 3: per output, the cnt partials of s0/s1 (each of per lanes) -> the root */
static int
finish(Lower *L, const Red *r, const Type *it, int s0, int s1, int64_t cnt, int64_t per)
{
	KNode *o;
	KNode *body = par_loop(L, "o", r->O, &o);
	Part v = combine(L, body, r, s0, s1, ix_mul(L, o, cnt), cnt, 1, ix_c(L, 0), per);
	return output(L, body, r, it, o, v);
}

/* ---- block-mapped form (lanes of one output in one block) ---- */

/* the partials p of the lanes combined over groups of width consecutive lanes of each warp
 * (a power of two <= 32) by shuffles: the first lane of each group then holds the group's */
static void
butterfly(Lower *L, KNode *block, const Red *r, int64_t width, Part *p)
{
	for (int64_t m = width / 2; m >= 1; m /= 2) {
		KNode *v = lw_let(L, block, "sv", kir_shfl(L->p, p->v, (int)m));
		if (r->kind != RK_MOM) {
			KBinOp op = r->kind == RK_MAX ? KB_MAX : KB_ADD;
			assign(L, block, p->v, bin(L, op, p->v, v));
			continue;
		}
		KNode *n = lw_let(L, block, "sn", kir_shfl(L->p, p->n, (int)m));
		KNode *M2 = lw_let(L, block, "sm2", kir_shfl(L->p, p->M2, (int)m));
		chan(L, block, p->n, p->v, p->M2, n, v, M2);
	}
}

/* the partials of the T threads (th) combined into thread 0's: in each warp over its width
 * first lanes (>= 32: all), then the warps' results through shared memory, shuffled again.
 * Every thread runs every statement (the shuffles need the whole warp) */
static void
block_combine(Lower *L, KNode *body, const Red *r, KNode *th, int64_t T, int64_t width, Part *p)
{
	Program *pg = L->p;
	int64_t W = T / WARP;
	butterfly(L, body, r, width < WARP ? width : WARP, p);
	if (W <= 1)
		return;
	int mom = r->kind == RK_MOM;
	int sv = kir_shared(pg, L->k, DT_F32, W, 0, "wv");
	int sn = mom ? kir_shared(pg, L->k, DT_F32, W, 0, "wn") : -1;
	int sm = mom ? kir_shared(pg, L->k, DT_F32, W, 0, "wm2") : -1;
	KNode *lane = lw_let(L, body, "lane", bin(L, KB_REM, th, ix_c(L, WARP)));
	KNode *iff = kir_if(pg, bin(L, KB_EQ, lane, ix_c(L, 0)));
	kir_append(pg, body, iff);
	KNode *w = bin(L, KB_DIV, th, ix_c(L, WARP));
	kir_append(pg, iff->body, kir_store(pg, sv, w, p->v));
	if (mom) {
		kir_append(pg, iff->body, kir_store(pg, sn, w, p->n));
		kir_append(pg, iff->body, kir_store(pg, sm, w, p->M2));
	}
	kir_append(pg, body, kir_barrier(pg));
	KNode *src = lw_let(L, body, "src", bin(L, KB_REM, lane, ix_c(L, W)));
	assign(L, body, p->v, kir_load(pg, L->k, sv, src));
	if (mom) {
		assign(L, body, p->n, kir_load(pg, L->k, sn, src));
		assign(L, body, p->M2, kir_load(pg, L->k, sm, src));
	}
	kir_append(pg, body, kir_barrier(pg)); /* the block's next iteration stores after this */
	butterfly(L, body, r, W, p);
}

/* loop 1: block q = o*G + g, thread th = lane g*T + th of output o; thread 0 stores the
 * block's partial to s0 (s1: M2) at q, or (G = 1) the root's outputs */
static int
block_lanes(Lower *L, const Red *r, const Type *it, int s0, int s1)
{
	Program *pg = L->p;
	KNode *q, *th;
	KNode *body = lw_block_loop(L, "q", r->O * r->G, r->T, &q, &th)->body;
	KNode *o = q, *g = ix_c(L, 0);
	if (r->G > 1) {
		o = lw_let(L, body, "o", bin(L, KB_DIV, q, ix_c(L, r->G)));
		g = lw_let(L, body, "g", bin(L, KB_REM, q, ix_c(L, r->G)));
	}
	KNode *l = lw_let(L, body, "l", ix_add(L, ix_mul(L, g, r->T), th));
	Part pt = lane_partial(L, body, r, it, o, l);
	block_combine(L, body, r, th, r->T, r->T, &pt);
	KNode *iff = kir_if(pg, bin(L, KB_EQ, th, ix_c(L, 0)));
	kir_append(pg, body, iff);
	if (r->G == 1)
		return output(L, iff->body, r, it, o, pt);
	kir_append(pg, iff->body, kir_store(pg, s0, q, pt.v));
	if (r->kind == RK_MOM)
		kir_append(pg, iff->body, kir_store(pg, s1, q, pt.M2));
	return 0;
}

/* loop 2: block o, T2 threads: thread th combines partials th, th + T2, ... of output o (G <
 * T2: partial th % G), then the block combines the threads' -> the root's outputs */
static int
block_finish(Lower *L, const Red *r, const Type *it, int s0, int s1)
{
	Program *pg = L->p;
	int64_t G = r->G, T2 = G < r->T ? G : r->T;
	T2 = T2 < WARP ? WARP : T2;
	KNode *o, *th;
	KNode *body = lw_block_loop(L, "o", r->O, T2, &o, &th)->body;
	KNode *i0 = G < T2 ? lw_let(L, body, "i0", bin(L, KB_REM, th, ix_c(L, G))) : th;
	KNode *first = ix_add(L, ix_mul(L, o, G), i0);
	Part pt =
	    combine(L, body, r, s0, s1, first, G < T2 ? 1 : G / T2, T2, ix_mul(L, i0, r->T), r->T);
	block_combine(L, body, r, th, T2, G < T2 ? G : T2, &pt);
	KNode *iff = kir_if(pg, bin(L, KB_EQ, th, ix_c(L, 0)));
	kir_append(pg, body, iff);
	return output(L, iff->body, r, it, o, pt);
}

static int64_t
pow2_floor(int64_t v)
{
	int64_t p = 1;
	while (p * 2 <= v)
		p *= 2;
	return p;
}

/* r's reduced and kept dims, R and O for node n (input type it); 0, or 1 for bad axes */
static int
red_shape(const Node *n, const Type *it, Red *r)
{
	const Attr *axes = ir_attr(n, "axes");
	for (int i = 0; i < axes->n; i++) {
		int64_t a = axes->ints[i] < 0 ? axes->ints[i] + it->rank : axes->ints[i];
		if (a < 0 || a >= it->rank)
			return 1;
		r->red[a] = 1;
	}
	r->R = r->O = 1;
	for (int d = 0; d < it->rank; d++) {
		if (!r->red[d]) {
			r->kd[r->nk] = d;
			r->kdims[r->nk++] = it->dims[d];
			r->O *= it->dims[d];
			continue;
		}
		r->R *= it->dims[d];
		if (d > 0 && r->red[d - 1] && r->nruns > 0) {
			r->ext[r->nruns - 1] *= it->dims[d];
			r->stride[r->nruns - 1] = lw_stride(it, d);
			continue;
		}
		r->ext[r->nruns] = it->dims[d];
		r->stride[r->nruns++] = lw_stride(it, d);
	}
	return 0;
}

int
tmpl_gpu_moments_merge(Lower *L, const Node *mom, int s0, int s1, int64_t G, int64_t per)
{
	const Type *it = lw_type(L, mom->in[0]);
	Red r = {0};
	Program *pg = L->p;
	SEGC_ASSERT(mom->op == OP_moments && G >= WARP);
	if (red_shape(mom, it, &r))
		return lw_fail(L, "moments: bad axes");
	SEGC_ASSERT(r.R == G * per);
	r.kind = RK_MOM;
	int64_t T = pow2_floor(G < 1024 ? G : 1024), rounds = (G + T - 1) / T;
	KNode *o, *th, *i;
	KNode *body = lw_block_loop(L, "o", r.O, T, &o, &th)->body;
	Part pt = {lw_let(L, body, "acc", f32c(L, 0)), lw_let(L, body, "na", f32c(L, 0)),
	           lw_let(L, body, "ma2", f32c(L, 0))};
	KNode *loop = lw_loop(L, body, "i", ix_c(L, 0), ix_c(L, rounds), LOOP_SERIAL, &i);
	KNode *t = lw_let(L, loop->body, "t", ix_add(L, ix_mul(L, i, T), th)), *lb = loop->body;
	if (G % T) {
		KNode *iff = kir_if(pg, bin(L, KB_LT, t, ix_c(L, G)));
		kir_append(pg, lb, iff);
		lb = iff->body;
	}
	KNode *at = lw_let(L, lb, "at", ix_add(L, ix_mul(L, o, G), t));
	KNode *mb = lw_let(L, lb, "mb", kir_load(pg, L->k, s0, at));
	KNode *Mb = lw_let(L, lb, "mb2", kir_load(pg, L->k, s1, at));
	chan(L, lb, pt.n, pt.v, pt.M2, f32c(L, (double)per), mb, Mb);
	block_combine(L, body, &r, th, T, T, &pt);
	KNode *iff = kir_if(pg, bin(L, KB_EQ, th, ix_c(L, 0)));
	kir_append(pg, body, iff);
	const Node *root = L->root;
	L->root = mom; /* output() reads the root's eps and results */
	int rc = output(L, iff->body, &r, it, o, pt);
	L->root = root;
	return rc;
}

int
tmpl_gpu_reduce(Lower *L)
{
	const Node *n = L->root;
	const Type *it = lw_type(L, n->in[0]);
	Red r = {0};

	if (n->op == OP_moments && L->g->nnodes > 1)
		return 1; /* the generic template reports it */
	if (red_shape(n, it, &r))
		return 1;
	if (r.R < RED_MIN || r.O < 1)
		return 1;
	/* $SEGC_GPU_RED_THREADS, $SEGC_GPU_RED_GROUP (read when segc compiles; A/B runs): the
	 * loop-1 iterations aimed at, the partials per loop-2 iteration */
	const char *te = cg_knob("SEGC_GPU_RED_THREADS"), *ge = cg_knob("SEGC_GPU_RED_GROUP");
	int64_t threads = te && atoll(te) >= 1024 ? atoll(te) : RED_THREADS;
	r.group = ge && atoll(ge) >= 2 && atoll(ge) <= 4096 ? atoll(ge) : RED_GROUP;
	/* $SEGC_GPU_RED_BLOCK: threads per block of the block-mapped form (a power of two, 32 ..
	 * 1024; 0: the grid-stride form everywhere) */
	const char *be = cg_knob("SEGC_GPU_RED_BLOCK");
	int64_t bt = be && *be ? atoll(be) : RED_BLOCK;
	if (bt != 0 && (bt < WARP || bt > 1024 || (bt & (bt - 1))))
		bt = RED_BLOCK;
	r.lane_fast = it->rank > 0 && r.red[it->rank - 1];
	r.P = threads / r.O;
	if (r.P > r.R / RED_MINPER)
		r.P = r.R / RED_MINPER;
	if (r.lane_fast && bt && r.P >= WARP) {
		r.T = pow2_floor(r.P < bt ? r.P : bt);
		r.G = pow2_floor(r.P / r.T);
		r.P = r.T * r.G;
	} else {
		if (r.P > RED_MAXGROUPS * r.group)
			r.P = RED_MAXGROUPS * r.group;
		if (r.P < 4)
			return 1;
		if (r.P >= 2 * r.group)
			r.P = r.P / r.group * r.group;
	}
	r.nfull = r.R / r.P;
	r.rem = r.R % r.P;
	r.kind = n->op == OP_moments ? RK_MOM : n->op == OP_reduce_max ? RK_MAX : RK_SUM;
	r.xb = lw_buf(L, n->in[0]);

	int mom = r.kind == RK_MOM;
	if (r.T) {
		int b0 = -1, b1 = -1, rc;
		if (r.G > 1) {
			b0 = lw_scratch(L, DT_F32, r.O * r.G, "part");
			b1 = mom ? lw_scratch(L, DT_F32, r.O * r.G, "part_m2") : -1;
		}
		if ((rc = block_lanes(L, &r, it, b0, b1)) != 0 || r.G == 1)
			return rc;
		return block_finish(L, &r, it, b0, b1);
	}
	int s0 = lw_scratch(L, DT_F32, r.O * r.P, "part");
	int s1 = mom ? lw_scratch(L, DT_F32, r.O * r.P, "part_m2") : -1;
	lanes(L, &r, it, s0, s1);
	if (r.P < 2 * r.group)
		return finish(L, &r, it, s0, s1, r.P, 1);
	int64_t ng = r.P / r.group;
	int t0 = lw_scratch(L, DT_F32, r.O * ng, "part2");
	int t1 = mom ? lw_scratch(L, DT_F32, r.O * ng, "part2_m2") : -1;
	groups(L, &r, s0, s1, t0, t1);
	return finish(L, &r, it, t0, t1, ng, r.group);
}

/* ---- conv statistics from output tiles (tmpl.h) ---- */

void
tmpl_tile_stats_setup(Lower *L, TileStats *ts, int64_t G, int64_t rows, int64_t N, int64_t batch)
{
	ts->mom = lw_stats(L);
	ts->G = G, ts->rows = rows, ts->N = N;
	const Type *mt = lw_type(L, ts->mom->in[0]);
	ts->cpg = mt->rank == 6 ? mt->dims[2] : 1; /* [N, G, C/G, D, H, W]: a group's partials */
	L->want_val = 1;
	ts->s0 = lw_scratch(L, DT_F32, batch * ts->N * ts->G, "smean");
	ts->s1 = lw_scratch(L, DT_F32, batch * ts->N * ts->G, "sm2");
}

int64_t
tmpl_tile_stats_tpc(int64_t nt, int64_t cols, int64_t rows)
{
	int64_t tpc = 1;
	while (tpc * 2 * cols <= nt && tpc * 2 <= WARP && rows % (tpc * 2) == 0)
		tpc *= 2;
	return tpc * cols <= nt ? tpc : 0;
}

/* tpc consecutive threads per column (tmpl_tile_stats_tpc), each summing every tpc-th row
 * (bank-conflict-free where tpc = 8), combined by shuffles; two passes (the mean, then the
 * squares about it, so no cancellation); the column's first thread stores them.  Where the
 * columns take fewer than nt threads (48 columns of 128 threads: 96), the threads past them
 * sum the last column again and store nothing (every thread shuffles: kir.def) */
void
tmpl_tile_stats(Lower *L, const TileStats *ts, KNode *block, KNode *th, int64_t nt, int64_t cols,
                KNode *tile, KNode *c0, int cs, int64_t ldc)
{
	Program *p = L->p;
	int64_t tpc = tmpl_tile_stats_tpc(nt, cols, ts->rows), rows = tpc ? ts->rows / tpc : 0;
	SEGC_ASSERT(tpc && rows * tpc == ts->rows);
	kir_append(p, block, kir_barrier(p));
	KNode *col = lw_let(L, block, "sc", bin(L, KB_DIV, th, ix_c(L, tpc)));
	KNode *j = lw_let(L, block, "sj", bin(L, KB_REM, th, ix_c(L, tpc)));
	KNode *rc = tpc * cols < nt ? kir_bin(p, KB_MIN, col, ix_c(L, cols - 1)) : col;
	KNode *base = lw_let(L, block, "sb", ix_add(L, j, ix_mul(L, rc, ldc)));
	KNode *mean = NULL, *a = NULL, *r;
	for (int pass = 0; pass < 2; pass++) {
		a = lw_let(L, block, pass ? "sq" : "ss", f32c(L, 0));
		KNode *lp = lw_loop(L, block, "sr", ix_c(L, 0), ix_c(L, rows), LOOP_SERIAL, &r);
		KNode *v = kir_load(p, L->k, cs, ix_add(L, base, ix_mul(L, r, tpc)));
		if (pass) {
			v = lw_let(L, lp->body, "sd", bin(L, KB_SUB, v, mean));
			v = bin(L, KB_MUL, v, v);
		}
		assign(L, lp->body, a, bin(L, KB_ADD, a, v));
		for (int64_t m = tpc / 2; m >= 1; m /= 2) {
			KNode *o = lw_let(L, block, "so", kir_shfl(p, a, (int)m));
			assign(L, block, a, bin(L, KB_ADD, a, o));
		}
		if (!pass)
			mean = lw_let(L, block, "smu", bin(L, KB_MUL, a, f32c(L, 1.0 / ts->rows)));
	}
	KNode *n = lw_let(L, block, "sn", ix_add(L, c0, col));
	KNode *ok = bin(L, KB_AND, bin(L, KB_EQ, j, ix_c(L, 0)), bin(L, KB_LT, n, ix_c(L, ts->N)));
	if (tpc * cols < nt)
		ok = bin(L, KB_AND, ok, bin(L, KB_LT, col, ix_c(L, cols)));
	KNode *iff = kir_if(p, ok);
	kir_append(p, block, iff);
	KNode *bt = bin(L, KB_DIV, tile, ix_c(L, ts->G));
	KNode *at = lw_let(L, iff->body, "sat",
	                   ix_add(L, ix_mul(L, ix_add(L, ix_mul(L, bt, ts->N), n), ts->G),
	                          bin(L, KB_REM, tile, ix_c(L, ts->G))));
	kir_append(p, iff->body, kir_store(p, ts->s0, at, mean));
	kir_append(p, iff->body, kir_store(p, ts->s1, at, a)); /* the M2 */
}

int
tmpl_tile_stats_merge(Lower *L, const TileStats *ts)
{
	L->stats_done = 1;
	return tmpl_gpu_moments_merge(L, ts->mom, ts->s0, ts->s1, ts->G * ts->cpg, ts->rows);
}
