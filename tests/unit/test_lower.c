/* tests/unit/test_lower.c -- codegen/lower.c and the templates, without the LLVM emitter.
 *
 * Each case builds a small module with the IR builder, makes the groups and the storage by
 * hand (what passes/fuse.c and passes/memplan.c would do), lowers it with cg_lower(), runs
 * the kernel IR with the small interpreter below on real buffers and compares every engine
 * output with ir_interp() (the reference interpreter).  The kernel-IR interpreter runs the
 * iterations of top-level parallel loops in reverse order, checks every load and store
 * against its buffer's bounds, and checks that a variable is defined before it is read.
 * Exit status 0: all cases passed.  -v prints the kernels; SEGC_TEST_EMIT=1 also runs
 * cg_emit_llvm on every program. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"

static int verbose, nfail, ncase;

/* ---- a kernel-IR interpreter ---- */

typedef union {
	double f;
	int64_t i;
} KVal;

typedef struct {
	const Kernel *k;
	char **slots;            /* base pointer per slot */
	KVal *vars;
	uint8_t *defined;
	int err;
} KRun;

static void
kfail(KRun *r, const char *what, long long a)
{
	if (!r->err)
		fprintf(stderr, "  kir interp: %s: %s (%lld)\n", r->k->name, what, a);
	r->err = 1;
}

static float *
kaddr(KRun *r, int b, int64_t idx)
{
	const KBuf *kb = &r->k->bufs[b];
	if (idx < 0 || idx >= kb->numel) {
		kfail(r, "index out of bounds", (long long)idx);
		idx = 0;
	}
	return (float *)(r->slots[kb->slot] + kb->offset) + idx;
}

static KVal
keval(KRun *r, const KNode *n)
{
	KVal v = { 0 }, a, b;
	switch (n->kind) {
	case K_const:
		if (n->type == KT_F32)
			v.f = (float)n->fval;
		else
			v.i = n->ival;
		return v;
	case K_var:
		if (!r->defined[n->var])
			kfail(r, "variable read before definition", n->var);
		return r->vars[n->var];
	case K_load:
		a = keval(r, n->a);
		v.f = *kaddr(r, n->buf, a.i);
		return v;
	case K_cast:
		a = keval(r, n->a);
		if (n->type == KT_F32)
			v.f = n->a->type == KT_F32 ? a.f : (float)a.i;
		else
			v.i = n->a->type == KT_F32 ? (int64_t)a.f : a.i;
		return v;
	case K_select:
		a = keval(r, n->a);
		return a.i ? keval(r, n->b) : keval(r, n->c);
	case K_unop:
		a = keval(r, n->a);
		if (n->a->type != KT_F32) {
			switch (n->op) {
			case KU_NEG: v.i = -a.i; break;
			case KU_ABS: v.i = a.i < 0 ? -a.i : a.i; break;
			case KU_NOT: v.i = !a.i; break;
			default: v.i = a.i; break;
			}
			return v;
		}
		switch (n->op) {
		case KU_NEG: v.f = -a.f; break;
		case KU_ABS: v.f = fabsf((float)a.f); break;
		case KU_EXP: v.f = expf((float)a.f); break;
		case KU_LOG: v.f = logf((float)a.f); break;
		case KU_SQRT: v.f = sqrtf((float)a.f); break;
		case KU_RSQRT: v.f = 1.0f / sqrtf((float)a.f); break;
		case KU_TANH: v.f = tanhf((float)a.f); break;
		case KU_ERF: v.f = erff((float)a.f); break;
		case KU_FLOOR: v.f = floorf((float)a.f); break;
		case KU_CEIL: v.f = ceilf((float)a.f); break;
		default: kfail(r, "bad f32 unop", n->op);
		}
		v.f = (float)v.f;
		return v;
	case K_binop:
		a = keval(r, n->a);
		b = keval(r, n->b);
		if (n->a->type == KT_F32) {
			float x = (float)a.f, y = (float)b.f;
			switch (n->op) {
			case KB_ADD: v.f = x + y; break;
			case KB_SUB: v.f = x - y; break;
			case KB_MUL: v.f = x * y; break;
			case KB_DIV: v.f = x / y; break;
			case KB_MIN: v.f = fminf(x, y); break;
			case KB_MAX: v.f = fmaxf(x, y); break;
			case KB_POW: v.f = powf(x, y); break;
			case KB_LT: v.i = x < y; break;
			case KB_LE: v.i = x <= y; break;
			case KB_GT: v.i = x > y; break;
			case KB_GE: v.i = x >= y; break;
			case KB_EQ: v.i = x == y; break;
			case KB_NE: v.i = x != y; break;
			default: kfail(r, "bad f32 binop", n->op);
			}
			if (n->type == KT_F32)
				v.f = (float)v.f;
			return v;
		}
		switch (n->op) {
		case KB_ADD: v.i = a.i + b.i; break;
		case KB_SUB: v.i = a.i - b.i; break;
		case KB_MUL: v.i = a.i * b.i; break;
		case KB_DIV:
		case KB_REM:
			if (b.i == 0) {
				kfail(r, "integer division by zero", 0);
				return v;
			}
			v.i = n->op == KB_DIV ? a.i / b.i : a.i % b.i;
			break;
		case KB_MIN: v.i = a.i < b.i ? a.i : b.i; break;
		case KB_MAX: v.i = a.i > b.i ? a.i : b.i; break;
		case KB_LT: v.i = a.i < b.i; break;
		case KB_LE: v.i = a.i <= b.i; break;
		case KB_GT: v.i = a.i > b.i; break;
		case KB_GE: v.i = a.i >= b.i; break;
		case KB_EQ: v.i = a.i == b.i; break;
		case KB_NE: v.i = a.i != b.i; break;
		case KB_AND: v.i = a.i && b.i; break;
		case KB_OR: v.i = a.i || b.i; break;
		default: kfail(r, "bad integer binop", n->op);
		}
		return v;
	default:
		kfail(r, "statement used as an expression", n->kind);
		return v;
	}
}

static void
kexec(KRun *r, const KNode *n, int top)
{
	KVal v;
	if (r->err)
		return;
	switch (n->kind) {
	case K_block:
		for (uint32_t i = 0; i < n->nkids; i++)
			kexec(r, n->kids[i], 0);
		return;
	case K_loop: {
		int64_t lo = keval(r, n->a).i, hi = keval(r, n->b).i;
		if (top) {
			/* a top-level loop sees only its own variables; parallel ones run
			 * backwards */
			memset(r->defined, 0, r->k->nvars);
			if (n->ann == LOOP_PARALLEL && (lo != 0 || n->ival != 1))
				kfail(r, "parallel loop not over [0, n)", lo);
		}
		r->defined[n->var] = 1;
		if (top && n->ann == LOOP_PARALLEL) {
			for (int64_t i = hi - 1; i >= lo && !r->err; i--) {
				r->vars[n->var].i = i;
				kexec(r, n->body, 0);
			}
			return;
		}
		for (int64_t i = lo; i < hi && !r->err; i += n->ival) {
			r->vars[n->var].i = i;
			kexec(r, n->body, 0);
		}
		return;
	}
	case K_if:
		if (keval(r, n->a).i)
			kexec(r, n->body, 0);
		else if (n->c)
			kexec(r, n->c, 0);
		return;
	case K_let:
	case K_assign:
		v = keval(r, n->a);
		if (n->kind == K_assign && !r->defined[n->var])
			kfail(r, "assignment before let", n->var);
		r->vars[n->var] = v;
		r->defined[n->var] = 1;
		return;
	case K_store:
		v = keval(r, n->b);
		if (!r->k->bufs[n->buf].written)
			kfail(r, "store to a buffer not marked written", n->buf);
		*kaddr(r, n->buf, keval(r, n->a).i) = (float)v.f;
		return;
	case K_barrier:
		return;
	default:
		kfail(r, "expression used as a statement", n->kind);
	}
}

static int
krun(const Kernel *k, char **slots)
{
	KRun r = { k, slots, calloc(k->nvars + 1, sizeof(KVal)), calloc(k->nvars + 1, 1), 0 };
	for (uint32_t i = 0; i < k->body->nkids; i++) {
		if (k->body->kids[i]->kind != K_loop)
			kfail(&r, "top-level statement is not a loop", 0);
		kexec(&r, k->body->kids[i], 1);
	}
	free(r.vars);
	free(r.defined);
	return r.err ? -1 : 0;
}

/* ---- building test modules ---- */

static Module *M;
static Diag D;
static uint32_t seed = 12345;

static float
rnd(void)
{
	seed = seed * 1664525u + 1013904223u;
	return (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static Type
ty(int rank, const int64_t *dims)
{
	return type_make(DT_F32, rank, dims);
}

static ValueId
input(const char *name, int rank, const int64_t *dims)
{
	return ir_add_input(M, name, ty(rank, dims), loc_none);
}

static Attr A[16];

static void
attrs(int op)
{
	memset(A, 0, sizeof A);
	ir_attrs_default(op, A);
}

static Attr *
at(int op, const char *key)
{
	int i = op_attr_index(op, key);
	if (i < 0) {
		fprintf(stderr, "no attribute %s\n", key);
		exit(2);
	}
	A[i].present = 1;
	return &A[i];
}

static void
aint(int op, const char *key, int64_t v)
{
	at(op, key)->i = v;
}

static void
aflt(int op, const char *key, double v)
{
	at(op, key)->f = v;
}

static void
astr(int op, const char *key, const char *s)
{
	at(op, key)->s = s;
}

static void
ints(int op, const char *key, int n, const int64_t *v)
{
	Attr *a = at(op, key);
	a->n = (uint16_t)n;
	a->ints = arena_memdup(M->arena, v, (size_t)n * sizeof *v);
}

static void
flts(int op, const char *key, int n, const double *v)
{
	Attr *a = at(op, key);
	a->n = (uint16_t)n;
	a->floats = arena_memdup(M->arena, v, (size_t)n * sizeof *v);
}

/* add a node with the attributes in A; returns its node id (exits on a shape error) */
static NodeId
node(int op, const ValueId *in, int nin, const char *name)
{
	int64_t id = ir_add_node(M, op, in, nin, A, name, loc_none, &D);
	if (id < 0) {
		fprintf(stderr, "building %s failed\n", optab[op].name);
		exit(2);
	}
	return (NodeId)id;
}

static ValueId
out0(NodeId n)
{
	return M->nodes[n].out[0];
}

static ValueId
constant(double v)
{
	attrs(OP_constant);
	aflt(OP_constant, "value", v);
	return out0(node(OP_constant, NULL, 0, NULL));
}

static ValueId
bin(int op, ValueId a, ValueId b)
{
	ValueId in[2] = { a, b };
	attrs(op);
	return out0(node(op, in, 2, NULL));
}

/* weight operands of a node are created with rank -1 and typed by the shape rule */
static ValueId
weight(const char *name)
{
	Type t = { .dtype = DT_F32, .rank = -1 };
	return ir_add_weight(M, name, t, loc_none);
}

static void
begin(const char *name)
{
	ir_module_free(M);
	M = ir_module_new(name);
	diag_init(&D, stderr);
	ncase++;
}

/* ---- groups and storage by hand ---- */

static uint8_t *ingroup;

/* one group of the listed nodes (root first); its outs are the results used elsewhere */
static void
group(int n, const NodeId *ids)
{
	Group *g = ARENA_PUSH(M->arena, M->groups, M->ngroups, M->capgroups);
	memset(g, 0, sizeof *g);
	g->root = ids[0];
	g->nodes = arena_memdup(M->arena, ids, n * sizeof *ids);
	g->nnodes = (uint32_t)n;
	g->loc = M->nodes[ids[0]].loc;
	g->name = arena_printf(M->arena, "k%u_%s", M->ngroups - 1, optab[M->nodes[ids[0]].op].name);
	g->outs = arena_zalloc(M->arena, 16 * sizeof(ValueId));
	for (int i = 0; i < n; i++) {
		const Node *nd = &M->nodes[ids[i]];
		for (int j = 0; j < nd->nout; j++) {
			ValueId v = nd->out[j];
			int used = 0;
			for (uint32_t o = 0; o < M->noutputs; o++)
				used |= M->outputs[o] == v;
			for (uint32_t u = 0; u < M->nnodes; u++) {
				const Node *un_ = &M->nodes[u];
				int inside = 0;
				for (int q = 0; q < n; q++)
					inside |= ids[q] == u;
				for (int q = 0; q < un_->nin && !inside; q++)
					used |= un_->in[q] == v;
			}
			if (used)
				g->outs[g->nouts++] = v;
		}
	}
}

/* every live non-source node in its own group (no fusion) */
static void
group_each(void)
{
	for (uint32_t i = 0; i < M->nnodes; i++) {
		int op = M->nodes[i].op;
		if (op == OP_input || op == OP_weight || op == OP_constant || ingroup[i])
			continue;
		group(1, &i);
	}
}

/* storage: inputs, weights and group outputs in their own slot (= value id), reshapes that
 * are in no group are views, constants are immediates */
static void
plan(void)
{
	uint8_t *grouped = calloc(M->nnodes + 1, 1);
	for (uint32_t g = 0; g < M->ngroups; g++)
		for (uint32_t i = 0; i < M->groups[g].nnodes; i++)
			grouped[M->groups[g].nodes[i]] = 1;
	for (uint32_t i = 0; i < M->nnodes; i++) {
		const Node *n = &M->nodes[i];
		Value *v = &M->values[n->out[0]];
		for (int j = 0; j < n->nout; j++)
			M->values[n->out[j]].slot = n->out[j];
		v->offset = 0;
		if (n->op == OP_input)
			v->storage = ST_INPUT;
		else if (n->op == OP_weight)
			v->storage = ST_WEIGHT;
		else if (n->op == OP_constant)
			v->storage = ST_CONST;
		else if (n->op == OP_reshape && !grouped[i]) {
			v->storage = ST_VIEW;
			v->alias = n->in[0];
			v->slot = 999;      /* lowering must follow the alias */
		}
	}
	for (uint32_t g = 0; g < M->ngroups; g++)
		for (uint32_t i = 0; i < M->groups[g].nouts; i++)
			M->values[M->groups[g].outs[i]].storage = ST_ARENA;
	free(grouped);
}

/* ---- running a case ---- */

typedef struct {
	const char *name;
	float *data;
} WData;

static WData wdata[64];
static int nw;
static int positive;      /* inputs in (0.1, 2.1) instead of (-1, 1) */

static const void *
getweight(void *ctx, const char *name, const Type *t)
{
	for (int i = 0; i < nw; i++)
		if (strcmp(wdata[i].name, name) == 0)
			return wdata[i].data;
	return NULL;
}

/* lower, run the kernels and ir_interp, compare the outputs; returns 0 on a match */
static int
check(const char *what, double tol)
{
	Program p = { .arena = arena_new() };
	char **slots = calloc(M->nvalues + 1000, sizeof *slots);
	const void **ins = calloc(M->ninputs + 1, sizeof *ins);
	void **outs = calloc(M->noutputs + 1, sizeof *outs);
	int rc = 0;

	nw = 0;
	if (cg_lower(M, &p, &D) < 0) {
		fprintf(stderr, "FAIL %s: cg_lower\n", what);
		nfail++;
		return -1;
	}
	for (uint32_t v = 1; v < M->nvalues; v++) {
		const Value *val = &M->values[v];
		int64_t n = type_numel(&val->type);
		if (val->storage == ST_NONE || val->storage == ST_CONST ||
		    val->storage == ST_VIEW || slots[val->slot])
			continue;
		float *b = calloc(n + 1, sizeof *b);
		for (int64_t i = 0; i < n; i++)
			b[i] = positive && val->storage == ST_INPUT ? 1.1f + rnd() : rnd();
		if (val->storage != ST_INPUT && val->storage != ST_WEIGHT)
			for (int64_t i = 0; i < n; i++)
				b[i] = NAN;
		slots[val->slot] = (char *)b;
		if (val->storage == ST_WEIGHT) {
			wdata[nw].name = val->name;
			wdata[nw++].data = b;
		}
	}
	/* kernel scratch (lw_scratch): slot-0 bytes after the arena */
	char *scratch = NULL;
	if (p.scratch_bytes > 0 && !slots[0])
		slots[0] = scratch = calloc((size_t)((M->arena_bytes + 63) & ~63) + p.scratch_bytes, 1);
	for (uint32_t i = 0; i < M->ninputs; i++)
		ins[i] = slots[M->values[M->inputs[i]].slot];
	for (uint32_t i = 0; i < M->noutputs; i++)
		outs[i] = calloc(type_numel(&M->values[M->outputs[i]].type) + 1, sizeof(float));
	if (ir_interp(M, (const void *const *)ins, getweight, NULL, outs, &D) < 0) {
		fprintf(stderr, "FAIL %s: ir_interp\n", what);
		rc = -1;
	}
	for (uint32_t i = 0; i < p.nkernels && rc == 0; i++) {
		if (verbose)
			kir_print(&p.kernels[i], stdout);
		if (krun(&p.kernels[i], slots) < 0) {
			kir_print(&p.kernels[i], stderr);
			rc = -1;
		}
	}
	if (getenv("SEGC_TEST_EMIT") && rc == 0) {
		/* optional: the LLVM emitter accepts what the templates produce */
		CgOptions o = { .target = "cpu", .opt_level = 2 };
		if (cg_emit_llvm(&p, &o, "/tmp/test_lower.o", &D) < 0) {
			fprintf(stderr, "FAIL %s: cg_emit_llvm\n", what);
			rc = -1;
		}
	}
	for (uint32_t i = 0; i < M->noutputs && rc == 0; i++) {
		const Value *v = &M->values[M->outputs[i]];
		const float *got = (const float *)(slots[v->slot] + v->offset), *want = outs[i];
		int64_t n = type_numel(&v->type);
		for (int64_t j = 0; j < n; j++) {
			double e = fabs((double)got[j] - want[j]);
			if (!(e <= tol * (1 + fabs(want[j])))) {
				fprintf(stderr, "FAIL %s: output %u [%lld]: got %.7g, want %.7g\n",
				        what, i, (long long)j, got[j], want[j]);
				for (uint32_t k = 0; k < p.nkernels && verbose; k++)
					kir_print(&p.kernels[k], stderr);
				rc = -1;
				break;
			}
		}
	}
	if (rc)
		nfail++;
	else if (verbose)
		printf("ok %s\n", what);
	for (uint32_t v = 1; v < M->nvalues; v++)
		if (slots[M->values[v].slot] && M->values[v].storage != ST_VIEW &&
		    M->values[v].storage != ST_CONST && M->values[v].storage != ST_NONE) {
			free(slots[M->values[v].slot]);
			slots[M->values[v].slot] = NULL;
		}
	for (uint32_t i = 0; i < M->noutputs; i++)
		free(outs[i]);
	free(scratch);
	free(slots);
	free(ins);
	free(outs);
	arena_free(p.arena);
	return rc;
}

/* plan with one group per node, and check */
static void
run_each(const char *what, double tol)
{
	free(ingroup);
	ingroup = calloc(M->nnodes + 1, 1);
	group_each();
	plan();
	check(what, tol);
}

/* ---- cases ---- */

static const int64_t S4[4] = { 2, 3, 4, 5 };

static void
t_unary(void)
{
	static const int ops[] = { OP_identity, OP_relu, OP_leaky_relu, OP_gelu, OP_gelu, OP_silu,
	                           OP_sigmoid, OP_tanh, OP_exp, OP_log, OP_sqrt, OP_rsqrt, OP_neg,
	                           OP_abs, OP_erf, OP_softplus, OP_clamp, OP_clamp };
	for (size_t i = 0; i < countof(ops); i++) {
		int op = ops[i];
		begin("unary");
		positive = op == OP_log || op == OP_sqrt || op == OP_rsqrt;
		ValueId x = input("x", 4, S4);
		attrs(op);
		if (op == OP_leaky_relu)
			aflt(op, "slope", 0.2);
		if (op == OP_gelu && i == 4)
			astr(op, "approximate", "tanh");
		if (op == OP_softplus) {
			aflt(op, "beta", 2);
			aflt(op, "threshold", 1);
		}
		if (op == OP_clamp) {
			aflt(op, "min", -0.3);
			if (i == 17)
				aflt(op, "max", 0.4);
		}
		ir_add_output(M, out0(node(op, &x, 1, NULL)), "y");
		run_each(optab[op].name, 1e-5);
		positive = 0;
	}
}

static void
t_binary(void)
{
	static const int ops[] = { OP_add, OP_sub, OP_mul, OP_div, OP_maximum, OP_minimum, OP_pow };
	static const int64_t sb[3] = { 3, 1, 5 }, s1[2] = { 4, 1 }, s5[5] = { 2, 1, 3, 4, 5 };
	for (size_t i = 0; i < countof(ops); i++) {
		begin("binary");
		positive = ops[i] == OP_pow || ops[i] == OP_div;
		ValueId x = input("x", 4, S4), y = input("y", 3, sb), z = input("z", 2, s1);
		ValueId w = input("w", 5, s5);
		ValueId a = bin(ops[i], x, y);
		ValueId b = bin(ops[i], z, a);
		ValueId c = bin(ops[i], b, constant(0.75));
		ir_add_output(M, bin(ops[i], w, c), "y");
		run_each(optab[ops[i]].name, 1e-5);
		positive = 0;
	}
}

/* add -> relu -> mul(const) -> sub(bias) as one group; a view operand */
static void
t_epilogue(void)
{
	static const int64_t s2[2] = { 2, 60 }, sc[3] = { 3, 1, 1 };
	begin("epilogue");
	ValueId x = input("x", 4, S4), f = input("f", 2, s2), b = input("b", 3, sc);
	attrs(OP_reshape);
	ints(OP_reshape, "shape", 4, S4);
	NodeId r = node(OP_reshape, &f, 1, NULL);              /* a view of f */
	ValueId in2[2] = { x, out0(r) };
	attrs(OP_add);
	NodeId n0 = node(OP_add, in2, 2, NULL);
	attrs(OP_relu);
	NodeId n1 = node(OP_relu, &M->nodes[n0].out[0], 1, NULL);
	ValueId c = constant(1.5);
	ValueId in3[2] = { c, out0(n1) };
	attrs(OP_mul);
	NodeId n2 = node(OP_mul, in3, 2, NULL);
	ValueId in4[2] = { out0(n2), b };
	attrs(OP_sub);
	NodeId n3 = node(OP_sub, in4, 2, NULL);
	ir_add_output(M, out0(n3), "y");
	NodeId ids[4] = { n0, n1, n2, n3 };
	group(4, ids);
	plan();
	check("elementwise epilogue chain + view", 1e-5);
}

static void
t_inj(void)
{
	static const int64_t perm[4] = { 2, 0, 3, 1 }, s7[4] = { 2, 7, 4, 5 };
	static const int64_t rs[3] = { 6, 4, 5 };
	begin("permute");
	ValueId x = input("x", 4, S4);
	attrs(OP_permute);
	ints(OP_permute, "perm", 4, perm);
	ir_add_output(M, out0(node(OP_permute, &x, 1, NULL)), "y");
	run_each("permute", 0);

	begin("slice");
	x = input("x", 4, s7);
	attrs(OP_slice);
	aint(OP_slice, "axis", 1);
	aint(OP_slice, "start", -6);
	aint(OP_slice, "end", 7);
	aint(OP_slice, "step", 2);
	ValueId s = out0(node(OP_slice, &x, 1, NULL));
	attrs(OP_slice);
	aint(OP_slice, "axis", -1);
	aint(OP_slice, "start", 1);
	aint(OP_slice, "end", 100);
	ir_add_output(M, out0(node(OP_slice, &s, 1, NULL)), "y");
	run_each("slice", 0);

	begin("concat");
	ValueId xs[3] = { input("a", 4, S4), input("b", 4, s7), input("c", 4, S4) };
	attrs(OP_concat);
	aint(OP_concat, "axis", 1);
	ir_add_output(M, out0(node(OP_concat, xs, 3, NULL)), "y");
	run_each("concat", 0);

	begin("reshape copy");
	x = input("x", 4, S4);
	attrs(OP_reshape);
	ints(OP_reshape, "shape", 3, rs);
	NodeId r = node(OP_reshape, &x, 1, NULL);
	ir_add_output(M, out0(r), "y");
	group(1, &r);
	plan();
	check("reshape (copy group)", 0);
}

static void
t_reduce(void)
{
	static const int64_t s5[5] = { 2, 3, 4, 5, 6 };
	static const int64_t ax23[2] = { 2, 3 }, ax1[1] = { 1 }, axm1[1] = { -1 };
	static const int64_t ax234[3] = { 2, 3, 4 }, axall[4] = { 0, 1, 2, 3 }, ax13[2] = { 1, 3 };
	static const struct { int op; int n; const int64_t *ax; int keep; } c[] = {
		{ OP_reduce_sum, 2, ax23, 1 }, { OP_reduce_mean, 1, ax1, 0 },
		{ OP_reduce_max, 1, axm1, 0 }, { OP_reduce_sum, 4, axall, 0 },
		{ OP_reduce_max, 2, ax13, 1 }, { OP_reduce_mean, 2, ax13, 0 },
	};
	for (size_t i = 0; i < countof(c); i++) {
		begin("reduce");
		ValueId x = input("x", 4, S4);
		attrs(c[i].op);
		ints(c[i].op, "axes", c[i].n, c[i].ax);
		aint(c[i].op, "keepdim", c[i].keep);
		ir_add_output(M, out0(node(c[i].op, &x, 1, NULL)), "y");
		run_each(optab[c[i].op].name, 1e-5);
	}
	/* moments: both results used (norm), and softmax-like reduce + epilogue */
	begin("moments");
	ValueId x = input("x", 5, s5);
	attrs(OP_moments);
	ints(OP_moments, "axes", 3, ax234);
	aflt(OP_moments, "eps", 1e-3);
	NodeId mo = node(OP_moments, &x, 1, NULL);
	ValueId d = bin(OP_sub, x, M->nodes[mo].out[0]);
	ir_add_output(M, bin(OP_mul, d, M->nodes[mo].out[1]), "y");
	run_each("moments + normalize", 1e-4);

	begin("reduce + epilogue");
	x = input("x", 5, s5);
	attrs(OP_reduce_max);
	ints(OP_reduce_max, "axes", 1, ax1);
	aint(OP_reduce_max, "keepdim", 1);
	NodeId r = node(OP_reduce_max, &x, 1, NULL);
	attrs(OP_exp);
	NodeId e = node(OP_exp, &M->nodes[r].out[0], 1, NULL);
	ir_add_output(M, out0(e), "y");
	NodeId ids[2] = { r, e };
	group(2, ids);
	plan();
	check("reduce_max + exp epilogue", 1e-5);
}

typedef struct {
	int64_t x[5];
	int64_t cout, k[3], s[3], p[3], d[3], op[3], groups;
	int bias;
} ConvCase;

static NodeId
conv_node(int op, const ConvCase *c, ValueId x)
{
	ValueId in[3] = { x, weight("conv.weight"), c->bias ? weight("conv.bias") : 0 };
	attrs(op);
	aint(op, "cout", c->cout);
	ints(op, "kernel", 3, c->k);
	ints(op, "stride", 3, c->s);
	ints(op, "pad", 3, c->p);
	ints(op, "dilation", 3, c->d);
	if (op == OP_conv_transpose3d)
		ints(op, "output_padding", 3, c->op);
	aint(op, "groups", c->groups);
	aint(op, "bias", c->bias);
	return node(op, in, 3, "conv");
}

static void
t_conv(void)
{
	static const ConvCase cs[] = {
		{ { 1, 3, 5, 6, 7 }, 4, { 3, 3, 3 }, { 1, 1, 1 },
		  { 1, 1, 1 }, { 1, 1, 1 }, { 0 }, 1, 1 },
		{ { 2, 4, 7, 6, 9 }, 6, { 3, 2, 3 }, { 2, 1, 2 },
		  { 1, 0, 2 }, { 2, 1, 2 }, { 0 }, 2, 0 },
		{ { 1, 2, 3, 4, 5 }, 2, { 1, 3, 5 }, { 1, 2, 3 },
		  { 0, 2, 2 }, { 1, 1, 1 }, { 0 }, 2, 1 },
		{ { 1, 4, 4, 4, 4 }, 4, { 1, 1, 1 }, { 1, 1, 1 },
		  { 0, 0, 0 }, { 1, 1, 1 }, { 0 }, 4, 1 },
	};
	for (size_t i = 0; i < countof(cs); i++) {
		begin("conv3d");
		ValueId x = input("x", 5, cs[i].x);
		ir_add_output(M, out0(conv_node(OP_conv3d, &cs[i], x)), "y");
		run_each("conv3d", 1e-4);
	}
	/* conv + silu + residual add, one group; then the same with the output planned in place
	 * of the residual (the scalar fallback) */
	for (int inplace = 0; inplace < 2; inplace++) {
		begin("conv epilogue");
		ValueId x = input("x", 5, cs[0].x);
		static const int64_t rs[5] = { 1, 4, 5, 6, 7 };
		ValueId res = input("res", 5, rs);
		attrs(OP_relu);
		NodeId pre = node(OP_relu, &res, 1, NULL);       /* residual computed by a group */
		NodeId c = conv_node(OP_conv3d, &cs[0], x);
		attrs(OP_silu);
		NodeId s = node(OP_silu, &M->nodes[c].out[0], 1, NULL);
		ValueId in[2] = { out0(s), out0(pre) };
		attrs(OP_add);
		NodeId a = node(OP_add, in, 2, NULL);
		ir_add_output(M, out0(a), "y");
		group(1, &pre);
		NodeId ids[3] = { c, s, a };
		group(3, ids);
		plan();
		if (inplace)
			M->values[out0(a)].slot = M->values[out0(pre)].slot;
		check(inplace ? "conv3d + epilogue, in place" : "conv3d + epilogue", 1e-4);
	}
	static const ConvCase ts[] = {
		{ { 1, 4, 3, 4, 5 }, 2, { 2, 2, 2 }, { 2, 2, 2 },
		  { 0, 0, 0 }, { 1, 1, 1 }, { 0, 0, 0 }, 1, 1 },
		{ { 2, 4, 3, 3, 4 }, 6, { 3, 3, 2 }, { 2, 1, 3 },
		  { 1, 1, 0 }, { 1, 2, 1 }, { 1, 0, 2 }, 2, 1 },
		{ { 1, 2, 2, 3, 2 }, 3, { 3, 1, 3 }, { 3, 1, 2 },
		  { 2, 0, 1 }, { 2, 1, 1 }, { 1, 0, 1 }, 1, 0 },
	};
	for (size_t i = 0; i < countof(ts); i++) {
		begin("conv_transpose3d");
		ValueId x = input("x", 5, ts[i].x);
		ir_add_output(M, out0(conv_node(OP_conv_transpose3d, &ts[i], x)), "y");
		run_each("conv_transpose3d", 1e-4);
	}
}

static void
t_matmul(void)
{
	static const int64_t sx[3] = { 2, 3, 8 }, sa[4] = { 2, 1, 4, 6 }, sb[3] = { 3, 6, 5 };
	static const int64_t sa2[2] = { 3, 6 };
	for (int bias = 0; bias < 2; bias++) {
		begin("linear");
		ValueId x = input("x", 3, sx);
		ValueId in[3] = { x, weight("fc.weight"), bias ? weight("fc.bias") : 0 };
		attrs(OP_linear);
		aint(OP_linear, "out", 5);
		aint(OP_linear, "bias", bias);
		NodeId l = node(OP_linear, in, 3, "fc");
		attrs(OP_gelu);
		NodeId g = node(OP_gelu, &M->nodes[l].out[0], 1, NULL);
		ir_add_output(M, out0(g), "y");
		NodeId ids[2] = { l, g };
		group(2, ids);
		plan();
		check("linear + gelu", 1e-5);
	}
	begin("matmul");
	ValueId a = input("a", 4, sa), b = input("b", 3, sb);
	ir_add_output(M, bin(OP_matmul, a, b), "y");
	run_each("matmul (batch broadcast)", 1e-5);
	for (int inplace = 0; inplace < 2; inplace++) {
		begin("matmul 2d + epilogue");
		a = input("a", 2, sa2);
		ValueId bb = input("b", 2, (const int64_t[2]){ 6, 6 });
		ValueId res = input("res", 2, sa2);
		attrs(OP_neg);
		NodeId pre = node(OP_neg, &res, 1, NULL);
		attrs(OP_matmul);
		ValueId in[2] = { a, bb };
		NodeId mmn = node(OP_matmul, in, 2, NULL);
		ValueId in2[2] = { out0(mmn), out0(pre) };
		attrs(OP_add);
		NodeId ad = node(OP_add, in2, 2, NULL);
		ir_add_output(M, out0(ad), "y");
		group(1, &pre);
		NodeId ids[2] = { mmn, ad };
		group(2, ids);
		plan();
		if (inplace)
			M->values[out0(ad)].slot = M->values[out0(pre)].slot;
		check(inplace ? "matmul + add, in place" : "matmul + add", 1e-5);
	}
}

static void
t_pool(void)
{
	static const int64_t sx[5] = { 1, 2, 7, 6, 9 };
	static const struct { int op; int64_t k[3], s[3], p[3], d[3]; int ceil, cip; } c[] = {
		{ OP_max_pool3d, { 2, 2, 2 }, { 2, 2, 2 }, { 0, 0, 0 }, { 1, 1, 1 }, 0, 1 },
		{ OP_max_pool3d, { 3, 3, 2 }, { 2, 1, 2 }, { 1, 1, 1 }, { 2, 1, 1 }, 1, 1 },
		{ OP_avg_pool3d, { 3, 3, 3 }, { 2, 2, 2 }, { 1, 1, 1 }, { 1, 1, 1 }, 0, 1 },
		{ OP_avg_pool3d, { 3, 3, 3 }, { 2, 2, 2 }, { 1, 1, 1 }, { 1, 1, 1 }, 1, 0 },
		{ OP_avg_pool3d, { 2, 3, 4 }, { 2, 2, 3 }, { 1, 0, 2 }, { 1, 1, 1 }, 1, 1 },
	};
	for (size_t i = 0; i < countof(c); i++) {
		begin("pool");
		ValueId x = input("x", 5, sx);
		attrs(c[i].op);
		ints(c[i].op, "kernel", 3, c[i].k);
		ints(c[i].op, "stride", 3, c[i].s);
		ints(c[i].op, "pad", 3, c[i].p);
		if (c[i].op == OP_max_pool3d)
			ints(c[i].op, "dilation", 3, c[i].d);
		else
			aint(c[i].op, "count_include_pad", c[i].cip);
		aint(c[i].op, "ceil_mode", c[i].ceil);
		ir_add_output(M, out0(node(c[i].op, &x, 1, NULL)), "y");
		run_each(optab[c[i].op].name, 1e-5);
	}
}

static void
t_resize(void)
{
	static const int64_t sx[5] = { 1, 2, 2, 3, 4 };
	static const double sc2[3] = { 2, 2, 2 }, sc3[3] = { 1.5, 2, 3 };
	static const int64_t sz[3] = { 5, 7, 3 };
	static const struct { const char *mode; const double *scale; int align; } c[] = {
		{ "nearest", sc2, 0 }, { "nearest", sc3, 0 }, { "nearest", NULL, 0 },
		{ "trilinear", sc2, 0 }, { "trilinear", sc3, 0 }, { "trilinear", NULL, 0 },
		{ "trilinear", NULL, 1 }, { "trilinear", sc2, 1 },
	};
	for (size_t i = 0; i < countof(c); i++) {
		begin("upsample");
		ValueId x = input("x", 5, sx);
		attrs(OP_upsample);
		astr(OP_upsample, "mode", c[i].mode);
		if (c[i].scale)
			flts(OP_upsample, "scale", 3, c[i].scale);
		else
			ints(OP_upsample, "size", 3, sz);
		aint(OP_upsample, "align_corners", c[i].align);
		ir_add_output(M, out0(node(OP_upsample, &x, 1, NULL)), "y");
		run_each(c[i].mode, 1e-5);
	}
}

/* the manifest of a tiny module */
static void
t_manifest(void)
{
	static const int64_t sx[2] = { 2, 8 };
	begin("tiny");
	ir_add_param(M, "C", "8");
	ir_add_param(M, "prune", "[0.5, 0.7]");
	ValueId x = input("x", 2, sx);
	ValueId in[3] = { x, weight("fc.weight"), weight("fc.bias") };
	attrs(OP_linear);
	aint(OP_linear, "out", 3);
	NodeId l = node(OP_linear, in, 3, "fc");
	ir_add_output(M, out0(l), "logits");
	M->arena_bytes = 128;
	const char *t = cg_manifest(M, 0, 0, M->arena);
	const char *want = "segc-manifest 1\ngraph tiny\nsegc 0.1.0\ntarget cpu\narena 128\n"
	                   "param C 8\nparam prune [0.5,0.7]\ninput x f32 2,8\n"
	                   "output logits f32 2,3\nweight fc.weight f32 3,8\n"
	                   "weight fc.bias f32 3\n";
	if (strncmp(t, want, strlen(want)) != 0 || !strstr(t, "\nkernels 0\nend\n") ||
	    !strstr(t, "\nmacs 48\n")) {
		fprintf(stderr, "FAIL manifest:\n%s", t);
		nfail++;
	}
}

int
main(int argc, char **argv)
{
	verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
	op_init();
	t_unary();
	t_binary();
	t_epilogue();
	t_inj();
	t_reduce();
	t_conv();
	t_matmul();
	t_pool();
	t_resize();
	t_manifest();
	ir_module_free(M);
	free(ingroup);
	printf("test_lower: %d cases, %d failed\n", ncase, nfail);
	return nfail != 0;
}
