/* codegen/cuda_range.c -- value ranges of the integer variables of one generated CUDA function,
 * so that emit_cuda.c can divide in 32 bits (with $SEGC_CUDA_DIV32=1 only: measured on an H100
 * at 128^3, the 32-bit form made the fp32 engines 3-8% slower and left the tensor-core engines
 * as they were; docs/cuda.md).
 *
 * Index arithmetic in the kernel IR is i64.  A GPU has no 64-bit integer divider: a 64-bit
 * division or remainder by a constant compiles to a chain of wide multiplies (a power of two
 * to shifts with sign fix-ups), a 32-bit unsigned one to a multiply-high and a shift.  The
 * emitter asks cr_u32 whether a dividend provably lies in [0, 2^32) and then writes
 * (long long)((unsigned)(a) / cu).  The ranges are conservative by construction:
 *   - a variable gets a range only when the function defines it once: a loop's variable (its
 *     bounds' ranges, widened by one step for the value it leaves with) or a let's (its
 *     expression's); an assigned variable has none;
 *   - a let inside a loop runs many times, each time from operands within their ranges;
 *   - expressions: constants, variables, +, -, * (small factors), / and % by positive
 *     constants of non-negative operands, min, max, select, integer casts; anything else,
 *     and any bound beyond 2^62, is unknown.
 * With them, the other per-variable analysis of a block-mapped function: the bf16
 * pass-through variables (cr_raw_vars). */
#include "cg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BIG ((int64_t)1 << 62)

static CRange
unknown(void)
{
	return (CRange){1, 0};
}

static int
known(CRange r)
{
	return r.lo <= r.hi && r.lo > -BIG && r.hi < BIG;
}

/* ndef[var]: its definitions, counted to 2 (a vload's variables: 2, they get no range; a
 * vstore reads its variables) */
static void
count_def(const KNode *n, int var, void *ctx)
{
	uint8_t *ndef = ctx;
	if (n->kind == K_vload)
		ndef[var] = 2;
	else if (n->kind != K_var && n->kind != K_vstore && ndef[var] < 2)
		ndef[var]++;
}

void
cr_begin(CudaRanges *r, Arena *a, const Kernel *k, const KNode *top)
{
	const char *on = cg_knob("SEGC_CUDA_DIV32"); /* unset: every range unknown */
	r->var = NULL;
	if (!on || atoi(on) != 1)
		return;
	r->var = arena_zalloc(a, (k->nvars + 1) * sizeof *r->var);
	r->ndef = arena_zalloc(a, k->nvars + 1);
	for (uint32_t v = 0; v < k->nvars; v++)
		r->var[v] = unknown();
	kir_each_var(top, count_def, r->ndef);
}

void
cr_set(CudaRanges *r, int var, CRange v)
{
	if (r->var && r->ndef[var] == 1)
		r->var[var] = known(v) ? v : unknown();
}

CRange
cr_loop(const CudaRanges *r, const KNode *n)
{
	CRange lo = cr_expr(r, n->a), hi = cr_expr(r, n->b);
	if (!known(lo) || !known(hi))
		return unknown();
	return (CRange){lo.lo, (hi.hi > lo.hi ? hi.hi : lo.hi) + n->ival};
}

static CRange
binop(CRange a, CRange b, const KNode *n)
{
	int64_t c = b.lo;
	if (!known(a) || !known(b))
		return unknown();
	switch (n->op) {
	case KB_ADD:
		return (CRange){a.lo + b.lo, a.hi + b.hi};
	case KB_SUB:
		return (CRange){a.lo - b.hi, a.hi - b.lo};
	case KB_MUL: {
		int64_t m = (int64_t)1 << 30;
		if (a.lo < -m || a.hi > m || b.lo < -m || b.hi > m)
			return unknown();
		int64_t p[4] = {a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi};
		return (CRange){min64(min64(p[0], p[1]), min64(p[2], p[3])),
		                max64(max64(p[0], p[1]), max64(p[2], p[3]))};
	}
	case KB_DIV:
		if (b.lo != b.hi || c <= 0 || a.lo < 0)
			return unknown();
		return (CRange){a.lo / c, a.hi / c};
	case KB_REM:
		if (b.lo != b.hi || c <= 0 || a.lo < 0)
			return unknown();
		return a.hi < c ? a : (CRange){0, c - 1};
	case KB_MIN:
		return (CRange){min64(a.lo, b.lo), min64(a.hi, b.hi)};
	case KB_MAX:
		return (CRange){max64(a.lo, b.lo), max64(a.hi, b.hi)};
	default:
		return unknown();
	}
}

CRange
cr_expr(const CudaRanges *r, const KNode *n)
{
	if (!r->var || !n || n->type == KT_F32)
		return unknown();
	switch (n->kind) {
	case K_const:
		return (CRange){n->ival, n->ival};
	case K_var:
		return r->var[n->var];
	case K_cast:
		if (n->a->type == KT_F32)
			return unknown();
		if (n->a->type == KT_BOOL)
			return (CRange){0, 1};
		{
			CRange a = cr_expr(r, n->a);
			int64_t lim = (int64_t)1 << 31;
			if (n->type == KT_I32 && known(a) && (a.lo < -lim || a.hi >= lim))
				return unknown();
			return a;
		}
	case K_binop:
		if (n->type == KT_BOOL)
			return (CRange){0, 1};
		return binop(cr_expr(r, n->a), cr_expr(r, n->b), n);
	case K_select: {
		CRange a = cr_expr(r, n->b), b = cr_expr(r, n->c);
		if (!known(a) || !known(b))
			return unknown();
		return (CRange){min64(a.lo, b.lo), max64(a.hi, b.hi)};
	}
	default:
		return unknown();
	}
}

int
cr_u32(const CudaRanges *r, const KNode *n)
{
	/* (every binop is asked: the ranges only for an i64 division or remainder) */
	if (n->type != KT_I64 || (n->op != KB_DIV && n->op != KB_REM))
		return 0;
	CRange a = cr_expr(r, n->a), b = cr_expr(r, n->b);
	return known(a) && a.lo >= 0 && a.hi <= (int64_t)UINT32_MAX && b.lo == b.hi && b.lo > 0 &&
	       b.lo <= (int64_t)UINT32_MAX;
}

/* bf16 pass-through variables (cr_raw_vars): an f32 variable whose every definition is the
 * constant +0 or a load of a bf16 buffer and whose every use is a vstore into a bf16 tile or a
 * K_mmar (the tensor-core gather of bf16 activations; a bf16 vload's variables count as such
 * loads) is
 * declared __nv_bfloat16 and keeps the bits as they are: no conversion to f32 and back, and
 * two of them fill one 32-bit register of a packed store by bit moves.  A vstore or vload
 * whose variables are not all raw makes none of them raw (segc_vst8 and segc_vload8 take one
 * type); so does a K_mmar pair (segc_pk2). */
typedef struct {
	const Kernel *k;
	uint8_t *bad, *used;
} RawScan;

static void
raw_scan(const KNode *n, int var, void *ctx)
{
	RawScan *r = ctx;
	const KNode *a = n->a;
	if (r->k->vartypes[var] != KT_F32)
		r->bad[var] = 1;
	else if (n->kind == K_let || n->kind == K_assign)
		r->bad[var] |= !((a->kind == K_const && a->fval == 0.0 && !signbit(a->fval)) ||
		                 (a->kind == K_load && r->k->bufs[a->buf].dtype == DT_BF16));
	else if (n->kind == K_vstore && r->k->bufs[n->buf].dtype == DT_BF16)
		r->used[var] = 1;
	else if (n->kind == K_vload && r->k->bufs[n->buf].dtype == DT_BF16)
		r->used[var] = 1; /* the bits as they are (also where nothing reads them: a
		                   * strided row gather's other elements) */
	else if (n->kind == K_mmar) /* packed as they are (segc_pk2) */
		r->used[var] = 1;
	else /* a read (K_var), an f32 vload's definition, a vstore to an f32 tile */
		r->bad[var] = 1;
}

/* 1 when some vstore or vload under n mixes raw and other variables (marking them all bad:
 * the helpers take one type) */
static int
raw_mixed(const KNode *n, uint8_t *bad)
{
	int changed = 0, any = 0;
	if (!n)
		return 0;
	int vec = n->kind == K_vstore || n->kind == K_vload;
	for (int i = 0; vec && i < n->ival; i++)
		any |= bad[kir_vec_var(n, i)];
	for (int i = 0; vec && any && i < n->ival; i++)
		if (!bad[kir_vec_var(n, i)])
			bad[kir_vec_var(n, i)] = 1, changed = 1;
	for (int i = 0; n->kind == K_mmar && n->type != KT_F32 && i < 16; i += 2) { /* each pair
	                                                                           * of one type */
		int a = kir_mmar_var(n, i), b = kir_mmar_var(n, i + 1);
		if (bad[a] != bad[b])
			bad[a] = bad[b] = 1, changed = 1;
	}
	changed |= raw_mixed(n->a, bad) | raw_mixed(n->b, bad) | raw_mixed(n->c, bad) |
	           raw_mixed(n->body, bad);
	for (uint32_t i = 0; i < n->nkids; i++)
		changed |= raw_mixed(n->kids[i], bad);
	return changed;
}

uint8_t *
cr_raw_vars(Arena *a, const Kernel *k, const KNode *top)
{
	RawScan r = {k, arena_zalloc(a, k->nvars + 1), arena_zalloc(a, k->nvars + 1)};
	const char *env = cg_knob("SEGC_CUDA_RAWBF16"); /* 0: off (A/B) */
	if (env && strcmp(env, "0") == 0)
		return r.used; /* none */
	kir_each_var(top, raw_scan, &r);
	while (raw_mixed(top, r.bad))
		;
	for (uint32_t v = 0; v < k->nvars; v++)
		r.used[v] = r.used[v] && !r.bad[v];
	return r.used;
}

/* Word variables (docs/cuda.md "Register fragments"): raw bf16 variables that only K_mmar pairs
 * read, declared segc_w2 (a 32-bit word) holding the 16-byte load's whole word with the value
 * in a known half -- element i of a vload in half i % 2, a bf16 load's in half 0 -- so that a
 * pair of them packs into an MMA register by one byte permutation (PRMT), where unpacking and
 * repacking bf16 values took two or three instructions.  half[v]: -1 (not a word variable), 0
 * or 1; mate[v] = w where v and w are always elements 2j and 2j + 1 of the same vloads (the
 * pair is the word itself, B's), else -1. */
typedef struct {
	const Kernel *k;
	const uint8_t *raw;
	int8_t *half; /* -2 unseen, -1 not, 0, 1, 2 only zero so far */
	int32_t *ndef, *nvl, *cand;
} WordScan;

static void
set_half(WordScan *w, int var, int h)
{
	if (w->half[var] == -2 || w->half[var] == 2)
		w->half[var] = (int8_t)h;
	else if (h != 2 && w->half[var] != h)
		w->half[var] = -1;
}

static void
word_scan(const KNode *n, int var, void *ctx)
{
	WordScan *w = ctx;
	if (!w->raw[var]) {
		w->half[var] = -1;
	} else if (n->kind == K_vload && w->k->bufs[n->buf].dtype == DT_BF16 && n->ival == 8) {
		int i = var - n->var, m = n->var + (i ^ 1); /* the other half of its word */
		set_half(w, var, i & 1);
		w->ndef[var]++, w->nvl[var]++;
		if (w->cand[var] == -2)
			w->cand[var] = m;
		else if (w->cand[var] != m)
			w->cand[var] = -1;
	} else if (n->kind == K_let || n->kind == K_assign) {
		const KNode *a = n->a;
		w->ndef[var]++;
		if (a->kind == K_const)
			set_half(w, var, 2);
		else if (a->kind == K_load && w->k->bufs[a->buf].dtype == DT_BF16)
			set_half(w, var, 0);
		else
			w->half[var] = -1;
	} else if (n->kind != K_mmar || n->type == KT_F32) { /* a read, a vstore, a loop's
	                                                      * variable, a tf32 MMA's */
		w->half[var] = -1;
	}
}

CrWords
cr_word_vars(Arena *a, const Kernel *k, const KNode *top, const uint8_t *raw)
{
	uint32_t nv = k->nvars + 1;
	WordScan w = {k, raw, arena_alloc(a, nv), arena_zalloc(a, nv * sizeof(int32_t)),
	              arena_zalloc(a, nv * sizeof(int32_t)), arena_alloc(a, nv * sizeof(int32_t))};
	CrWords r = {w.half, arena_alloc(a, nv * sizeof(int32_t))};
	const char *env = cg_knob("SEGC_CUDA_WORDS"); /* 0: off (A/B) */
	memset(w.half, -2, nv);
	for (uint32_t v = 0; v < nv; v++)
		w.cand[v] = -2, r.mate[v] = -1;
	if (!(env && strcmp(env, "0") == 0) && kir_contains(top, K_mmar))
		kir_each_var(top, word_scan, &w);
	/* a vload or K_mmar pair with a variable that is not a word makes none of them words
	 * (raw_mixed's rule, on "not a word" as bad) */
	uint8_t *notw = arena_zalloc(a, nv);
	for (uint32_t v = 0; v < nv; v++) {
		w.half[v] = w.half[v] == -2 ? -1 : w.half[v] == 2 ? 0 : w.half[v];
		notw[v] = w.half[v] < 0;
	}
	while (raw_mixed(top, notw))
		;
	for (uint32_t v = 0; v < nv; v++)
		w.half[v] = notw[v] ? -1 : w.half[v];
	for (uint32_t v = 0; v < k->nvars; v++) {
		int m = w.cand[v];
		if (w.half[v] == 0 && m >= 0 && w.half[m] == 1 && w.cand[m] == (int)v &&
		    w.ndef[v] == w.nvl[v] && w.ndef[m] == w.nvl[m] && w.nvl[v] == w.nvl[m])
			r.mate[v] = m;
	}
	return r;
}
