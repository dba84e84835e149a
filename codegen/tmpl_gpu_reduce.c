/* codegen/tmpl_gpu_reduce.c -- GPU form of reduce_sum, reduce_mean, reduce_max and moments
 * (called by tmpl_gpu.c when the program is lowered for CUDA; docs/cuda.md).
 *
 * A reduction with a large reduced extent R and few outputs O (instance norm at 128^3: O = C,
 * R = 2M) is split: P lanes per output, lane l reading the reduced elements l, l+P, l+2P, ...
 *   loop 1  parallel over O*P (lanes)   a partial per lane -> scratch [O][P]
 *   loop 2  parallel over O*P/64        64 partials -> one (only when P >= 128) -> [O][P/64]
 *   loop 3  parallel over O             the remaining partials -> the output (lw_output)
 * Lane order: when the innermost input dim is reduced, the lanes of one output are consecutive
 * iterations, so a warp reads 32 consecutive floats at each step; otherwise the outputs are,
 * and consecutive outputs are consecutive addresses.  moments keeps, per lane, a sum and a sum
 * of squares shifted by the lane's first element, turned into (mean, M2) and merged with Chan's
 * formula, so neither long fp32 sums nor E[x^2] - E[x]^2 cancellation lose the variance.
 * Returns 1 (the generic thread-per-output template of tmpl_reduce.c) when R is small or O
 * alone fills the GPU. */
#include "tmpl.h"

#include <math.h>
#include <stdlib.h>

enum {
	RED_THREADS = 1 << 17, /* loop-1 iterations aimed at: a few waves on 132 SMs */
	RED_MINPER = 64,       /* at least this many elements per lane */
	RED_MIN = 256,         /* below this reduced extent: thread per output */
	RED_GROUP = 64,        /* partials combined by one loop-2 iteration */
	RED_MAXGROUPS = 256,   /* lanes per output <= this many groups: loop 3 combines <= 256 */
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

/* loop 1: one partial per (output, lane) into s0 (and s1: M2) at o*P + l */
static void
lanes(Lower *L, const Red *r, const Type *it, int s0, int s1)
{
	KNode *p, *kidx[IR_MAXRANK], *j;
	KNode *body = par_loop(L, "p", r->O * r->P, &p);
	KNode *o, *l;
	if (r->lane_fast) {
		o = lw_let(L, body, "o", bin(L, KB_DIV, p, ix_c(L, r->P)));
		l = lw_let(L, body, "l", bin(L, KB_REM, p, ix_c(L, r->P)));
	} else {
		l = lw_let(L, body, "l", bin(L, KB_DIV, p, ix_c(L, r->O)));
		o = lw_let(L, body, "o", bin(L, KB_REM, p, ix_c(L, r->O)));
	}
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
	KNode *at = ix_add(L, ix_mul(L, o, r->P), l);
	if (r->kind != RK_MOM) {
		kir_append(L->p, body, kir_store(L->p, s0, at, acc));
		return;
	}
	KNode *cnt = r->rem ? kir_select(L->p, bin(L, KB_LT, l, ix_c(L, r->rem)),
	                                 f32c(L, (double)(r->nfull + 1)), f32c(L, (double)r->nfull))
	                    : f32c(L, (double)r->nfull);
	KNode *n = lw_let(L, body, "cnt", cnt);
	KNode *m1 = lw_let(L, body, "m1", bin(L, KB_DIV, acc, n));
	kir_append(L->p, body, kir_store(L->p, s0, at, bin(L, KB_ADD, k, m1)));
	KNode *M2 = bin(L, KB_SUB, s2, bin(L, KB_MUL, acc, m1));
	kir_append(L->p, body, kir_store(L->p, s1, at, bin(L, KB_MAX, M2, f32c(L, 0))));
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

/* Combine partials [first, first + cnt) of buffers s0 (s1) into lets; for moments the i-th
 * partial holds the elements of lanes [i*per, (i+1)*per).  Returns the combined value (sum,
 * max; moments: the mean) and sets *M2 for moments. */
static KNode *
combine(Lower *L, KNode *block, const Red *r, int s0, int s1, KNode *first, int64_t cnt,
        KNode *lane0, int64_t per, KNode **M2)
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
	KNode *at = lw_let(L, loop->body, "at", ix_add(L, first, i));
	KNode *v = kir_load(L->p, L->k, s0, at);
	if (r->kind != RK_MOM) {
		assign(L, loop->body, acc, bin(L, r->kind == RK_MAX ? KB_MAX : KB_ADD, acc, v));
		return acc;
	}
	KNode *mb = lw_let(L, loop->body, "mb", v);
	KNode *Mb = lw_let(L, loop->body, "mb2", kir_load(L->p, L->k, s1, at));
	KNode *lo = ix_add(L, lane0, ix_mul(L, i, per));
	KNode *nb = lw_let(L, loop->body, "nb", lane_count(L, r, lo, per));
	chan(L, loop->body, na, acc, Ma, nb, mb, Mb);
	*M2 = Ma;
	return acc;
}

/* loop 2: groups of r->group partials of s0/s1 into t0/t1 ([O][P/group]) */
static void
groups(Lower *L, const Red *r, int s0, int s1, int t0, int t1)
{
	int64_t ng = r->P / r->group;
	KNode *q, *M2 = NULL;
	KNode *body = par_loop(L, "q", r->O * ng, &q);
	KNode *o = lw_let(L, body, "o", bin(L, KB_DIV, q, ix_c(L, ng)));
	KNode *g = lw_let(L, body, "g", bin(L, KB_REM, q, ix_c(L, ng)));
	KNode *lane0 = lw_let(L, body, "lane0", ix_mul(L, g, r->group));
	KNode *first = ix_add(L, ix_mul(L, o, r->P), lane0);
	KNode *v = combine(L, body, r, s0, s1, first, r->group, lane0, 1, &M2);
	kir_append(L->p, body, kir_store(L->p, t0, q, v));
	if (r->kind == RK_MOM)
		kir_append(L->p, body, kir_store(L->p, t1, q, M2));
}

/* loop 3: per output, the cnt partials of s0/s1 (each of per lanes) -> the root's value */
static int
finish(Lower *L, const Red *r, const Type *it, int s0, int s1, int64_t cnt, int64_t per)
{
	const Node *n = L->root;
	KNode *o, *kidx[IR_MAXRANK], *oidx[IR_MAXRANK], *M2 = NULL;
	Coord c;
	KNode *body = par_loop(L, "o", r->O, &o);

	out_base(L, body, r, it, o, kidx);
	for (int d = 0, j = 0, e = 0; d < it->rank; d++) {
		if (!r->red[d])
			oidx[e++] = kidx[j++];
		else if (n->op == OP_moments || ir_attr_int(n, "keepdim"))
			oidx[e++] = ix_c(L, 0);
	}
	coord_full(&c, lw_type(L, n->out[0]), oidx);
	KNode *v = combine(L, body, r, s0, s1, ix_mul(L, o, cnt), cnt, ix_c(L, 0), per, &M2);
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

int
tmpl_gpu_reduce(Lower *L)
{
	const Node *n = L->root;
	const Type *it = lw_type(L, n->in[0]);
	const Attr *axes = ir_attr(n, "axes");
	Red r = {0};

	if (n->op == OP_moments && L->g->nnodes > 1)
		return 1; /* the generic template reports it */
	for (int i = 0; i < axes->n; i++) {
		int64_t a = axes->ints[i] < 0 ? axes->ints[i] + it->rank : axes->ints[i];
		if (a < 0 || a >= it->rank)
			return 1;
		r.red[a] = 1;
	}
	r.R = r.O = 1;
	for (int d = 0; d < it->rank; d++) {
		if (!r.red[d]) {
			r.kd[r.nk] = d;
			r.kdims[r.nk++] = it->dims[d];
			r.O *= it->dims[d];
			continue;
		}
		r.R *= it->dims[d];
		if (d > 0 && r.red[d - 1] && r.nruns > 0) {
			r.ext[r.nruns - 1] *= it->dims[d];
			r.stride[r.nruns - 1] = lw_stride(it, d);
			continue;
		}
		r.ext[r.nruns] = it->dims[d];
		r.stride[r.nruns++] = lw_stride(it, d);
	}
	if (r.R < RED_MIN || r.O < 1)
		return 1;
	/* $SEGC_GPU_RED_THREADS, $SEGC_GPU_RED_GROUP (read when segc compiles; A/B runs): the
	 * loop-1 iterations aimed at, the partials per loop-2 iteration */
	const char *te = getenv("SEGC_GPU_RED_THREADS"), *ge = getenv("SEGC_GPU_RED_GROUP");
	int64_t threads = te && atoll(te) >= 1024 ? atoll(te) : RED_THREADS;
	r.group = ge && atoll(ge) >= 2 && atoll(ge) <= 4096 ? atoll(ge) : RED_GROUP;
	r.P = threads / r.O;
	if (r.P > r.R / RED_MINPER)
		r.P = r.R / RED_MINPER;
	if (r.P > RED_MAXGROUPS * r.group)
		r.P = RED_MAXGROUPS * r.group;
	if (r.P < 4)
		return 1;
	if (r.P >= 2 * r.group)
		r.P = r.P / r.group * r.group;
	r.nfull = r.R / r.P;
	r.rem = r.R % r.P;
	r.lane_fast = it->rank > 0 && r.red[it->rank - 1];
	r.kind = n->op == OP_moments ? RK_MOM : n->op == OP_reduce_max ? RK_MAX : RK_SUM;
	r.xb = lw_buf(L, n->in[0]);

	int mom = r.kind == RK_MOM;
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
