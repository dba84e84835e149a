/* codegen/kir.c -- kernel IR builder and printer (--emit=kernels). */
#include "kir.h"

#include <stdlib.h>
#include <string.h>

static const char *kindnames[] = {
#define K(name) #name,
#include "kir.def"
};
static const char *binnames[KB_COUNT] = {"+",  "-", "*",  "/",  "%",  "min", "max", "<",
                                         "<=", ">", ">=", "==", "!=", "&&",  "||",  "pow"};
static const char *unnames[KU_COUNT] = {"neg",  "abs", "exp",   "log",  "sqrt", "rsqrt",
                                        "tanh", "erf", "floor", "ceil", "not", "tf32"};
static const char *typenames[] = {"void", "bool", "i32", "i64", "f32"};
static const char *annnames[] = {"serial", "parallel", "vector", "unroll", "block", "thread"};

const char *
kir_kind_name(int kind)
{
	return kind >= 0 && kind < K_COUNT ? kindnames[kind] : "?";
}

const char *
kir_binop_name(int op)
{
	return op >= 0 && op < KB_COUNT ? binnames[op] : "?";
}

const char *
kir_unop_name(int op)
{
	return op >= 0 && op < KU_COUNT ? unnames[op] : "?";
}

static KNode *
node(Program *p, int kind, int type)
{
	KNode *n = arena_zalloc(p->arena, sizeof *n);
	n->kind = (uint8_t)kind;
	n->type = (uint8_t)type;
	return n;
}

KType
kir_dtype(int dtype)
{
	switch (dtype) {
	case DT_F32:
		return KT_F32;
	case DT_I32:
		return KT_I32;
	case DT_I64:
		return KT_I64;
	case DT_U8:
		return KT_I32;
	default:
		return KT_F32;
	}
}

Kernel *
kir_kernel(Program *p, const char *name, Loc loc)
{
	Kernel *k = ARENA_PUSH(p->arena, p->kernels, p->nkernels, p->capkernels);
	memset(k, 0, sizeof *k);
	k->name = arena_strdup(p->arena, name);
	k->loc = loc;
	k->body = kir_block(p);
	k->group = -1;
	return k;
}

int
kir_buf(Program *p, Kernel *k, const Module *m, ValueId v)
{
	const Value *val = &m->values[v];
	/* a view's bytes are its alias's: one buffer entry per storage, not per value */
	for (uint32_t i = 0; i < k->nbufs; i++)
		if (k->bufs[i].value == v)
			return (int)i;
	KBuf *b = ARENA_PUSH(p->arena, k->bufs, k->nbufs, k->capbufs);
	memset(b, 0, sizeof *b);
	b->value = v;
	b->slot = val->slot;
	b->offset = val->offset;
	b->dtype = (uint8_t)value_dtype(val);
	b->numel = type_numel(&val->type);
	b->name = val->name ? val->name : arena_printf(p->arena, "%%%u", v);
	return (int)k->nbufs - 1;
}

int
kir_scratch(Program *p, Kernel *k, int64_t base, int dtype, int64_t numel, const char *name)
{
	KBuf *b = ARENA_PUSH(p->arena, k->bufs, k->nbufs, k->capbufs);
	memset(b, 0, sizeof *b);
	b->slot = 0;
	b->offset = base;
	b->dtype = (uint8_t)dtype;
	b->numel = numel;
	b->name = arena_strdup(p->arena, name);
	return (int)k->nbufs - 1;
}

int
kir_shared(Program *p, Kernel *k, int dtype, int64_t numel, int ld, const char *name)
{
	int b = kir_scratch(p, k, 0, dtype, numel, name);
	k->bufs[b].shared = 1;
	k->bufs[b].written = 1;
	k->bufs[b].ld = ld;
	return b;
}

int
kir_shared_over(Program *p, Kernel *k, int dtype, int64_t numel, int ld, const char *name, int over)
{
	SEGC_ASSERT(over >= 0 && (uint32_t)over < k->nbufs && k->bufs[over].shared &&
	            !k->bufs[over].over);
	int b = kir_shared(p, k, dtype, numel, ld, name);
	k->bufs[b].over = over + 1;
	return b;
}

int
kir_var(Program *p, Kernel *k, KType t, const char *name)
{
	uint32_t cap = k->capvars;
	uint8_t *vt = ARENA_PUSH(p->arena, k->vartypes, k->nvars, k->capvars);
	*vt = (uint8_t)t;
	k->varnames = arena_grow(p->arena, k->varnames, sizeof *k->varnames, k->nvars - 1, &cap);
	k->varnames[k->nvars - 1] = arena_strdup(p->arena, name ? name : "t");
	return (int)k->nvars - 1;
}

KNode *
kir_block(Program *p)
{
	return node(p, K_block, KT_VOID);
}

void
kir_append(Program *p, KNode *block, KNode *stmt)
{
	SEGC_ASSERT(block->kind == K_block);
	*ARENA_PUSH(p->arena, block->kids, block->nkids, block->capkids) = stmt;
}

KNode *
kir_loop(Program *p, int var, KNode *lo, KNode *hi, int64_t step, LoopAnn ann)
{
	KNode *n = node(p, K_loop, KT_VOID);
	n->var = var;
	n->a = lo;
	n->b = hi;
	n->ival = step;
	n->ann = (uint8_t)ann;
	n->body = kir_block(p);
	return n;
}

KNode *
kir_if(Program *p, KNode *cond)
{
	KNode *n = node(p, K_if, KT_VOID);
	n->a = cond;
	n->body = kir_block(p);
	return n;
}

KNode *
kir_let(Program *p, Kernel *k, int var, KNode *init)
{
	KNode *n = node(p, K_let, k->vartypes[var]);
	n->var = var;
	n->a = init;
	return n;
}

KNode *
kir_assign(Program *p, int var, KNode *val)
{
	KNode *n = node(p, K_assign, KT_VOID);
	n->var = var;
	n->a = val;
	return n;
}

KNode *
kir_store(Program *p, int buf, KNode *idx, KNode *val)
{
	KNode *n = node(p, K_store, KT_VOID);
	n->buf = buf;
	n->a = idx;
	n->b = val;
	return n;
}

KNode *
kir_barrier(Program *p)
{
	return node(p, K_barrier, KT_VOID);
}

KNode *
kir_mma_zero(Program *p, int acc)
{
	KNode *n = node(p, K_mma_zero, KT_VOID);
	n->ival = acc;
	return n;
}

KNode *
kir_mma(Program *p, int acc, int abuf, KNode *aoff, int bbuf, KNode *boff)
{
	KNode *n = node(p, K_mma, KT_VOID);
	n->ival = acc;
	n->buf = abuf;
	n->a = aoff;
	n->var = bbuf;
	n->b = boff;
	return n;
}

KNode *
kir_mma_store(Program *p, int acc, int cbuf, KNode *coff)
{
	KNode *n = node(p, K_mma_store, KT_VOID);
	n->ival = acc;
	n->buf = cbuf;
	n->a = coff;
	return n;
}

KNode *
kir_mma_store_rows(Program *p, int acc, int cbuf, KNode *coff, int rows)
{
	KNode *n = kir_mma_store(p, acc, cbuf, coff);
	SEGC_ASSERT(rows > 0 && rows < 256);
	n->op = (uint8_t)rows;
	return n;
}

KNode *
kir_mmar(Program *p, int acc, int avar, int ps, int rs, int bvar, int k8)
{
	KNode *n = node(p, K_mmar, k8 ? KT_F32 : KT_VOID);
	SEGC_ASSERT(ps > 0 && ps < 256 && rs > 0 && rs < 256);
	n->ival = acc;
	n->var = avar;
	n->op = (uint8_t)ps;
	n->ann = (uint8_t)rs;
	n->buf = bvar;
	return n;
}

KNode *
kir_cp_async(Program *p, int dst, KNode *doff, int src, KNode *soff, int n, KNode *pred)
{
	KNode *c = node(p, K_cp_async, KT_VOID);
	c->ival = n;
	c->buf = dst;
	c->a = doff;
	c->var = src;
	c->b = soff;
	c->c = pred;
	return c;
}

KNode *
kir_cp_wait(Program *p)
{
	return node(p, K_cp_wait, KT_VOID);
}

KNode *
kir_vload(Program *p, int var, int n, int buf, KNode *idx, KNode *pred)
{
	SEGC_ASSERT(n == 4 || n == 8);
	KNode *v = node(p, K_vload, KT_VOID);
	v->var = var;
	v->ival = n;
	v->buf = buf;
	v->a = idx;
	v->c = pred;
	return v;
}

KNode *
kir_vstore(Program *p, int buf, KNode *idx, int var, int n, int vs)
{
	SEGC_ASSERT((n == 4 || n == 8) && vs >= 1 && vs < 256);
	KNode *v = node(p, K_vstore, KT_VOID);
	v->op = (uint8_t)vs;
	v->var = var;
	v->ival = n;
	v->buf = buf;
	v->a = idx;
	return v;
}

KNode *
kir_i64(Program *p, int64_t v)
{
	KNode *n = node(p, K_const, KT_I64);
	n->ival = v;
	return n;
}

KNode *
kir_f32(Program *p, double v)
{
	KNode *n = node(p, K_const, KT_F32);
	n->fval = v;
	return n;
}

KNode *
kir_bool(Program *p, int v)
{
	KNode *n = node(p, K_const, KT_BOOL);
	n->ival = v != 0;
	return n;
}

KNode *
kir_ref(Program *p, const Kernel *k, int var)
{
	KNode *n = node(p, K_var, k->vartypes[var]);
	n->var = var;
	return n;
}

KNode *
kir_load(Program *p, const Kernel *k, int buf, KNode *idx)
{
	KNode *n = node(p, K_load, kir_dtype(k->bufs[buf].dtype));
	n->buf = buf;
	n->a = idx;
	return n;
}

KNode *
kir_bin(Program *p, KBinOp op, KNode *a, KNode *b)
{
	int t = a->type;
	if (op >= KB_LT && op <= KB_NE)
		t = KT_BOOL;
	SEGC_ASSERT(a->type == b->type);
	KNode *n = node(p, K_binop, t);
	n->op = (uint8_t)op;
	n->a = a;
	n->b = b;
	return n;
}

KNode *
kir_un(Program *p, KUnOp op, KNode *a)
{
	KNode *n = node(p, K_unop, a->type);
	n->op = (uint8_t)op;
	n->a = a;
	return n;
}

KNode *
kir_select(Program *p, KNode *c, KNode *a, KNode *b)
{
	SEGC_ASSERT(c->type == KT_BOOL && a->type == b->type);
	KNode *n = node(p, K_select, a->type);
	n->a = c;
	n->b = a;
	n->c = b;
	return n;
}

KNode *
kir_cast(Program *p, KType t, KNode *a)
{
	KNode *n = node(p, K_cast, t);
	n->a = a;
	return n;
}

KNode *
kir_shfl(Program *p, KNode *a, int lanemask)
{
	SEGC_ASSERT(a->type == KT_F32 && lanemask >= 1 && lanemask < 32);
	KNode *n = node(p, K_shfl, KT_F32);
	n->a = a;
	n->ival = lanemask;
	return n;
}

/* ---- printer ---- */

static void
pexpr(const Kernel *k, const KNode *n, FILE *f)
{
	switch (n->kind) {
	case K_const:
		if (n->type == KT_F32)
			fprintf(f, "%.9g", n->fval);
		else
			fprintf(f, "%lld", (long long)n->ival);
		return;
	case K_var:
		fprintf(f, "%s%d", k->varnames[n->var], n->var);
		return;
	case K_load:
		fprintf(f, "b%d[", n->buf);
		pexpr(k, n->a, f);
		fputc(']', f);
		return;
	case K_binop:
		if (n->op == KB_MIN || n->op == KB_MAX || n->op == KB_POW) {
			fprintf(f, "%s(", binnames[n->op]);
			pexpr(k, n->a, f);
			fputs(", ", f);
			pexpr(k, n->b, f);
			fputc(')', f);
			return;
		}
		fputc('(', f);
		pexpr(k, n->a, f);
		fprintf(f, " %s ", binnames[n->op]);
		pexpr(k, n->b, f);
		fputc(')', f);
		return;
	case K_unop:
		fprintf(f, "%s(", unnames[n->op]);
		pexpr(k, n->a, f);
		fputc(')', f);
		return;
	case K_select:
		fputc('(', f);
		pexpr(k, n->a, f);
		fputs(" ? ", f);
		pexpr(k, n->b, f);
		fputs(" : ", f);
		pexpr(k, n->c, f);
		fputc(')', f);
		return;
	case K_cast:
		fprintf(f, "%s(", typenames[n->type]);
		pexpr(k, n->a, f);
		fputc(')', f);
		return;
	case K_shfl:
		fputs("shfl(", f);
		pexpr(k, n->a, f);
		fprintf(f, ", lane ^ %lld)", (long long)n->ival);
		return;
	default:
		fprintf(f, "<%s>", kindnames[n->kind]);
	}
}

/* the end of a predicated copy or load: "]", " if <c>" when it has a predicate, newline */
static void
pred_end(const Kernel *k, const KNode *n, FILE *f)
{
	fputs("]", f);
	if (n->c) {
		fputs(" if ", f);
		pexpr(k, n->c, f);
	}
	fputc('\n', f);
}

static void
pstmt(const Kernel *k, const KNode *n, FILE *f, int depth)
{
	if (n->kind == K_block) {
		for (uint32_t i = 0; i < n->nkids; i++)
			pstmt(k, n->kids[i], f, depth);
		return;
	}
	fprintf(f, "%*s", 2 * depth, "");
	switch (n->kind) {
	case K_loop:
		fprintf(f, "for %s%d in [", k->varnames[n->var], n->var);
		pexpr(k, n->a, f);
		fputs(", ", f);
		pexpr(k, n->b, f);
		fprintf(f, ")");
		if (n->ival != 1)
			fprintf(f, " step %lld", (long long)n->ival);
		if (n->ann != LOOP_SERIAL)
			fprintf(f, " %s", annnames[n->ann]);
		if (n->ann == LOOP_THREAD && n->op)
			fprintf(f, " minblocks %d", n->op);
		if (n->ann == LOOP_UNROLL && n->op)
			fprintf(f, " by %d", n->op);
		fputs(" {\n", f);
		pstmt(k, n->body, f, depth + 1);
		fprintf(f, "%*s}\n", 2 * depth, "");
		return;
	case K_if:
		fputs("if ", f);
		pexpr(k, n->a, f);
		fputs(" {\n", f);
		pstmt(k, n->body, f, depth + 1);
		if (n->c) {
			fprintf(f, "%*s} else {\n", 2 * depth, "");
			pstmt(k, n->c, f, depth + 1);
		}
		fprintf(f, "%*s}\n", 2 * depth, "");
		return;
	case K_let:
		fprintf(f, "%s %s%d = ", typenames[n->type], k->varnames[n->var], n->var);
		pexpr(k, n->a, f);
		fputc('\n', f);
		return;
	case K_assign:
		fprintf(f, "%s%d = ", k->varnames[n->var], n->var);
		pexpr(k, n->a, f);
		fputc('\n', f);
		return;
	case K_store:
		fprintf(f, "b%d[", n->buf);
		pexpr(k, n->a, f);
		fputs("] = ", f);
		pexpr(k, n->b, f);
		fputc('\n', f);
		return;
	case K_barrier:
		fputs("barrier\n", f);
		return;
	case K_mma_zero:
		fprintf(f, "mma_zero acc%lld\n", (long long)n->ival);
		return;
	case K_mma:
		fprintf(f, "mma acc%lld += b%d[", (long long)n->ival, n->buf);
		pexpr(k, n->a, f);
		fprintf(f, "] * b%d[", n->var);
		pexpr(k, n->b, f);
		fputs("]\n", f);
		return;
	case K_mma_store:
		fprintf(f, "mma_store b%d[", n->buf);
		pexpr(k, n->a, f);
		fprintf(f, "] = acc%lld", (long long)n->ival);
		if (n->op)
			fprintf(f, " rows %d", n->op);
		fputc('\n', f);
		return;
	case K_mmar:
		fprintf(f, "mmar%s acc%lld += %s%d.. pairs %d rows %d * %s%d..\n",
		        n->type == KT_F32 ? " k8" : "", (long long)n->ival, k->varnames[n->var],
		        n->var, n->op, n->ann, k->varnames[n->buf], n->buf);
		return;
	case K_vload:
		fprintf(f, "vload%lld %s%d.. = b%d[", (long long)n->ival, k->varnames[n->var],
		        n->var, n->buf);
		pexpr(k, n->a, f);
		pred_end(k, n, f);
		return;
	case K_vstore:
		fprintf(f, "vstore%lld b%d[", (long long)n->ival, n->buf);
		pexpr(k, n->a, f);
		if (n->op > 1)
			fprintf(f, "] = %s%d.. step %d\n", k->varnames[n->var], n->var, n->op);
		else
			fprintf(f, "] = %s%d..\n", k->varnames[n->var], n->var);
		return;
	case K_cp_async:
		fprintf(f, "cp_async%lld b%d[", (long long)n->ival, n->buf);
		pexpr(k, n->a, f);
		fprintf(f, "] <- b%d[", n->var);
		pexpr(k, n->b, f);
		pred_end(k, n, f);
		return;
	case K_cp_wait:
		fputs("cp_wait\n", f);
		return;
	default:
		pexpr(k, n, f);
		fputc('\n', f);
	}
}

void
kir_print(const Kernel *k, FILE *f)
{
	fprintf(f, "kernel %s", k->name);
	if (k->loc.ptr)
		fprintf(f, "  ; %s", k->loc.ptr);
	fputc('\n', f);
	for (uint32_t i = 0; i < k->nbufs; i++) {
		const KBuf *b = &k->bufs[i];
		if (b->shared) {
			fprintf(f, "  b%u: %s %s shared [%lld] ld %d", i, dtype_name(b->dtype),
			        b->name, (long long)b->numel, b->ld);
			if (b->over)
				fprintf(f, " over b%d", b->over - 1);
			if (b->arow)
				fputs(" arow", f);
			fputc('\n', f);
			continue;
		}
		fprintf(f, "  b%u: %s %s slot %u +%lld [%lld]%s\n", i, dtype_name(b->dtype),
		        b->name, b->slot, (long long)b->offset, (long long)b->numel,
		        b->written ? " w" : "");
	}
	fputs("{\n", f);
	pstmt(k, k->body, f, 1);
	fputs("}\n", f);
}

/* What makes two kernels share generated functions: their kernel IR (loops, indices, constants)
 * and their buffers' dtypes and written flags, but not where the buffers live (slot, offset).
 * extra is appended (an emitter's own per-buffer choices).  Allocated from the program arena. */
const char *
kir_signature(const Program *p, const Kernel *k, const char *extra)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	SEGC_ASSERT(f);
	for (uint32_t i = 0; i < k->nbufs; i++) {
		fprintf(f, "%s%s", dtype_name(k->bufs[i].dtype), k->bufs[i].written ? "w" : "");
		if (k->bufs[i].shared) /* shared tiles: their size and ld are part of the code */
			fprintf(f, "s%lld/%d/%d/%d", (long long)k->bufs[i].numel, k->bufs[i].ld,
			        k->bufs[i].over, k->bufs[i].arow);
		fputc(' ', f);
	}
	fprintf(f, "%s\n", extra ? extra : "");
	Kernel body = *k; /* the loops only: no name, location or buffer addresses */
	body.name = "";
	body.loc = loc_none;
	body.nbufs = 0;
	kir_print(&body, f);
	fclose(f);
	const char *sig = arena_strdup(p->arena, text);
	free(text);
	return sig;
}

void
kir_each_buf(KNode *n, KBufFn fn, void *ctx)
{
	if (!n)
		return;
	switch ((KKind)n->kind) {
	case K_load:
		fn(n, &n->buf, 0, ctx);
		break;
	case K_store:
	case K_mma_store:
	case K_vstore:
		fn(n, &n->buf, 1, ctx);
		break;
	case K_mma:
		fn(n, &n->buf, 0, ctx);
		fn(n, &n->var, 0, ctx);
		break;
	case K_vload:
		fn(n, &n->buf, 0, ctx);
		break;
	case K_cp_async:
		fn(n, &n->var, 0, ctx);
		fn(n, &n->buf, 1, ctx);
		break;
	case K_block:
	case K_loop:
	case K_if:
	case K_let:
	case K_assign:
	case K_barrier:
	case K_mma_zero:
	case K_mmar: /* (buf: B's first variable) */
	case K_cp_wait:
	case K_const:
	case K_var:
	case K_binop:
	case K_unop:
	case K_select:
	case K_cast:
	case K_shfl:
	case K_COUNT:
		break;
	}
	kir_each_buf(n->a, fn, ctx);
	kir_each_buf(n->b, fn, ctx);
	kir_each_buf(n->c, fn, ctx);
	kir_each_buf(n->body, fn, ctx);
	for (uint32_t i = 0; i < n->nkids; i++)
		kir_each_buf(n->kids[i], fn, ctx);
}

void
kir_each_var(const KNode *n, KVarFn fn, void *ctx)
{
	if (!n)
		return;
	if (n->kind == K_loop || n->kind == K_let || n->kind == K_assign || n->kind == K_var)
		fn(n, n->var, ctx);
	for (int i = 0; (n->kind == K_vload || n->kind == K_vstore) && i < n->ival; i++)
		fn(n, kir_vec_var(n, i), ctx);
	for (int i = 0; n->kind == K_mmar && i < kir_mmar_nvars(n); i++)
		fn(n, kir_mmar_var(n, i), ctx);
	kir_each_var(n->a, fn, ctx);
	kir_each_var(n->b, fn, ctx);
	kir_each_var(n->c, fn, ctx);
	kir_each_var(n->body, fn, ctx);
	for (uint32_t i = 0; i < n->nkids; i++)
		kir_each_var(n->kids[i], fn, ctx);
}

int
kir_count_acc(const KNode *n)
{
	int m = 0, c;
	if (!n)
		return 0;
	if (n->kind == K_mma_zero || n->kind == K_mma || n->kind == K_mma_store ||
	    n->kind == K_mmar)
		m = (int)n->ival + 1;
	for (uint32_t i = 0; i < n->nkids; i++)
		if ((c = kir_count_acc(n->kids[i])) > m)
			m = c;
	if (n->kind == K_loop || n->kind == K_if) {
		if ((c = kir_count_acc(n->body)) > m)
			m = c;
		if (n->kind == K_if && (c = kir_count_acc(n->c)) > m)
			m = c;
	}
	return m;
}

int
kir_contains(const KNode *n, int kind)
{
	if (!n)
		return 0;
	if (n->kind == kind || kir_contains(n->a, kind) || kir_contains(n->b, kind) ||
	    kir_contains(n->c, kind) || kir_contains(n->body, kind))
		return 1;
	for (uint32_t i = 0; i < n->nkids; i++)
		if (kir_contains(n->kids[i], kind))
			return 1;
	return 0;
}

int
kir_const_i64(const KNode *n, int64_t *v)
{
	int64_t a, b;
	if (n->kind == K_const && n->type != KT_F32) {
		*v = n->ival;
		return 1;
	}
	if (n->kind == K_cast && n->type != KT_F32 && n->a->type != KT_F32)
		return kir_const_i64(n->a, v);
	if (n->kind != K_binop || !kir_const_i64(n->a, &a) || !kir_const_i64(n->b, &b))
		return 0;
	switch (n->op) {
	case KB_ADD:
		*v = a + b;
		return 1;
	case KB_SUB:
		*v = a - b;
		return 1;
	case KB_MUL:
		*v = a * b;
		return 1;
	case KB_DIV:
		if (b == 0)
			return 0;
		*v = a / b;
		return 1;
	case KB_MIN:
		*v = a < b ? a : b;
		return 1;
	case KB_MAX:
		*v = a > b ? a : b;
		return 1;
	default:
		return 0;
	}
}
