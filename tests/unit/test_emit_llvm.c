/* tests/unit/test_emit_llvm.c -- the CPU emitter and the linker, end to end.
 *
 * Builds small Programs by hand with the kir builder, emits an object with cg_emit_llvm,
 * links it with cg_link into a .so together with a test-only object (given as runtime_lib)
 * that exports test_run() -> segc_gen_run() and defines a serial segc_rt_parallel_for which
 * splits [0, n) into uneven chunks, dlopens it and checks the results against C.
 * exp, log, tanh and erf are compared with libm (max relative error 1e-6), incl. inf/nan/denormals.
 * Exits non-zero on failure. */
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"
#include "segc_engine.h"

static int failures;

#define CHECK(c, ...) \
	do { \
		if (!(c)) { \
			failures++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

static const char wrapper_src[] =
	"#include <stdint.h>\n"
	"typedef void (*task)(void *const *, int64_t, int64_t);\n"
	"extern const char segc_gen_manifest[];\n"
	"int segc_gen_run(void *const *slots, void *pool);\n"
	"__attribute__((visibility(\"hidden\")))\n"
	"void segc_rt_parallel_for(void *pool, task fn, void *const *slots, int64_t n)\n"
	"{\n"
	"	int64_t cut1 = n / 3, cut2 = n - n / 5;\n"
	"	if (pool) ++*(int *)pool;\n"
	"	fn(slots, 0, cut1);\n"
	"	fn(slots, cut1, cut2);\n"
	"	fn(slots, cut2, n);\n"
	"}\n"
	"int test_run(void *const *slots, void *pool) { return segc_gen_run(slots, pool); }\n"
	"const char *test_manifest(void) { return segc_gen_manifest; }\n";

static char tmpdir[] = "/tmp/segc_test_emit_XXXXXX";
static int opt_level = 3;

/* ---- building kernels ---- */

static Program *
newprog(void)
{
	Program *p = calloc(1, sizeof *p);
	p->arena = arena_new();
	p->manifest = "segc-manifest 1\ngraph test\nend\n";
	return p;
}

static int
addbuf(Program *p, Kernel *k, uint32_t slot, int64_t offset, int dtype, int64_t numel)
{
	KBuf *b = ARENA_PUSH(p->arena, k->bufs, k->nbufs, k->capbufs);
	memset(b, 0, sizeof *b);
	b->slot = slot;
	b->offset = offset;
	b->dtype = (uint8_t)dtype;
	b->numel = numel;
	b->name = arena_printf(p->arena, "b%u", k->nbufs - 1);
	return (int)k->nbufs - 1;
}

/* a top-level loop over [lo, hi) with a fresh i64 variable; *iv gets the variable */
static KNode *
toploop(Program *p, Kernel *k, int64_t lo, int64_t hi, int64_t step, LoopAnn ann, int *iv)
{
	*iv = kir_var(p, k, KT_I64, "i");
	KNode *l = kir_loop(p, *iv, kir_i64(p, lo), kir_i64(p, hi), step, ann);
	kir_append(p, k->body, l);
	return l;
}

/* ---- compiling and running ---- */

typedef int (*run_fn)(void *const *, void *);

static void *
build(Program *p, const char *name, run_fn *run, FILE *llvm_out)
{
	char obj[512], so[512], wrap[512], cmd[2048];
	Diag d;
	diag_init(&d, stderr);
	snprintf(obj, sizeof obj, "%s/%s_O%d.o", tmpdir, name, opt_level);
	snprintf(so, sizeof so, "%s/%s_O%d.so", tmpdir, name, opt_level);   /* a new dlopen */
	snprintf(wrap, sizeof wrap, "%s/wrapper.o", tmpdir);
	CgOptions o = { .opt_level = opt_level, .runtime_lib = wrap, .emit_llvm = llvm_out };
	if (cg_emit_llvm(p, &o, obj, &d) != 0) {
		CHECK(0, "%s: cg_emit_llvm failed: %s", name, d.first);
		return NULL;
	}
	if (cg_link(obj, &o, so, &d) != 0) {
		CHECK(0, "%s: cg_link failed: %s", name, d.first);
		return NULL;
	}
	/* only the wrapper's functions are exported */
	snprintf(cmd, sizeof cmd, "nm -D --defined-only %s", so);
	FILE *f = popen(cmd, "r");
	char line[512];
	int saw_run = 0;
	while (f && fgets(line, sizeof line, f)) {
		CHECK(!strstr(line, "segc_gen") && !strstr(line, "segc_rt") && !strstr(line, "_t0"),
		      "%s exports %s", name, line);
		saw_run |= strstr(line, "test_run") != NULL;
	}
	if (f)
		pclose(f);
	CHECK(saw_run, "%s does not export test_run", name);
	void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		CHECK(0, "dlopen %s: %s", so, dlerror());
		return NULL;
	}
	*run = (run_fn)(uintptr_t)dlsym(h, "test_run");
	const char *(*man)(void) = (const char *(*)(void))(uintptr_t)dlsym(h, "test_manifest");
	CHECK(man && strcmp(man(), p->manifest) == 0, "manifest differs");
	return h;
}

static int
close_rel(double got, double want, double rel)
{
	if (isnan(want))
		return isnan(got);
	if (isinf(want))
		return got == want;
	return fabs(got - want) <= rel * fabs(want) + 3e-45;
}

/* ---- 1. elementwise with FMA, offsets into the arena, parallel and vector loops ---- */

static void
test_elementwise(void)
{
	enum { N = 1003 };
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "ew", loc_none);
	int a = addbuf(p, k, 1, 0, DT_F32, N), b = addbuf(p, k, 2, 0, DT_F32, N);
	int c = addbuf(p, k, 3, 4, DT_F32, N);                 /* offset 4 bytes: element 1 */
	int out = addbuf(p, k, 0, 256, DT_F32, N), out2 = addbuf(p, k, 0, 8192, DT_F32, N);
	int i;
	KNode *l = toploop(p, k, 0, N, 1, LOOP_PARALLEL, &i);
#define LD(bf) kir_load(p, k, bf, kir_ref(p, k, i))
	KNode *ab = kir_bin(p, KB_MUL, LD(a), LD(b));
	kir_append(p, l->body, kir_store(p, out, kir_ref(p, k, i), kir_bin(p, KB_ADD, ab, LD(c))));
	l = toploop(p, k, 0, N, 1, LOOP_VECTOR, &i);
	ab = kir_bin(p, KB_MUL, LD(a), LD(b));
	kir_append(p, l->body, kir_store(p, out2, kir_ref(p, k, i), kir_bin(p, KB_SUB, ab, LD(c))));
#undef LD

	run_fn run;
	void *h = build(p, "ew", &run, NULL);
	if (!h)
		return;
	float *arena = calloc(4096, sizeof(float)), *A = malloc(N * 4), *B = malloc(N * 4);
	float *C = malloc((N + 1) * 4);
	for (int j = 0; j < N; j++) {
		A[j] = (float)j * 0.5f - 100;
		B[j] = (float)(j % 17) - 8.25f;
		C[j + 1] = (float)j / 7.0f;
	}
	void *slots[4] = { arena, A, B, C };
	int calls = 0;
	CHECK(run(slots, &calls) == 0, "segc_gen_run returned non-zero");
	CHECK(calls == 1, "parallel_for called %d times, want 1", calls);
	for (int j = 0; j < N; j++) {
		double want = (double)A[j] * B[j] + C[j + 1];
		double want2 = (double)A[j] * B[j] - C[j + 1];
		CHECK(close_rel(arena[64 + j], want, 1e-6), "ew[%d] = %g, want %g", j,
		      arena[64 + j], want);
		CHECK(close_rel(arena[2048 + j], want2, 1e-6), "ew2[%d] = %g, want %g", j,
		      arena[2048 + j], want2);
	}
	CHECK(arena[63] == 0 && arena[64 + N] == 0, "ew wrote outside its buffer");
	run(slots, NULL);                      /* pool may be NULL */
	dlclose(h);
	free(arena), free(A), free(B), free(C);
	arena_free(p->arena), free(p);
}

/* ---- 2. reduction with let accumulators (sum and max) in a vectorized inner loop ---- */

static void
test_reduction(void)
{
	enum { R = 7, C = 301 };
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "red", loc_none);
	int x = addbuf(p, k, 1, 0, DT_F32, R * C), out = addbuf(p, k, 0, 64, DT_F32, 2 * R);
	int r;
	KNode *l = toploop(p, k, 0, R, 1, LOOP_PARALLEL, &r);
	int acc = kir_var(p, k, KT_F32, "acc"), mx = kir_var(p, k, KT_F32, "mx");
	int j = kir_var(p, k, KT_I64, "j");
	kir_append(p, l->body, kir_let(p, k, acc, kir_f32(p, 0)));
	kir_append(p, l->body, kir_let(p, k, mx, kir_f32(p, -INFINITY)));
	KNode *in = kir_loop(p, j, kir_i64(p, 0), kir_i64(p, C), 1, LOOP_VECTOR);
	kir_append(p, l->body, in);
	KNode *idx = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, r), kir_i64(p, C)),
	                     kir_ref(p, k, j));
	kir_append(p, in->body, kir_assign(p, acc, kir_bin(p, KB_ADD, kir_ref(p, k, acc),
	                                                     kir_load(p, k, x, idx))));
	kir_append(p, in->body, kir_assign(p, mx, kir_bin(p, KB_MAX, kir_ref(p, k, mx),
	                                                    kir_load(p, k, x, idx))));
	kir_append(p, l->body, kir_store(p, out, kir_ref(p, k, r), kir_ref(p, k, acc)));
	KNode *rr = kir_bin(p, KB_ADD, kir_ref(p, k, r), kir_i64(p, R));
	kir_append(p, l->body, kir_store(p, out, rr, kir_ref(p, k, mx)));
	/* a sum alone: a forced-vector loop may reorder the additions, so it vectorizes */
	Kernel *k2 = kir_kernel(p, "red2", loc_none);
	int x2 = addbuf(p, k2, 1, 0, DT_F32, R * C), out2 = addbuf(p, k2, 0, 64, DT_F32, 3 * R);
	l = toploop(p, k2, 0, R, 1, LOOP_PARALLEL, &r);
	acc = kir_var(p, k2, KT_F32, "acc");
	j = kir_var(p, k2, KT_I64, "j");
	kir_append(p, l->body, kir_let(p, k2, acc, kir_f32(p, 0)));
	in = kir_loop(p, j, kir_i64(p, 0), kir_i64(p, C), 1, LOOP_VECTOR);
	kir_append(p, l->body, in);
	idx = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k2, r), kir_i64(p, C)),
	              kir_ref(p, k2, j));
	kir_append(p, in->body, kir_assign(p, acc, kir_bin(p, KB_ADD, kir_ref(p, k2, acc),
	                                                     kir_load(p, k2, x2, idx))));
	rr = kir_bin(p, KB_ADD, kir_ref(p, k2, r), kir_i64(p, 2 * R));
	kir_append(p, l->body, kir_store(p, out2, rr, kir_ref(p, k2, acc)));

	run_fn run;
	char *ir = NULL;
	size_t irlen = 0;
	FILE *irf = open_memstream(&ir, &irlen);
	void *h = build(p, "red", &run, irf);
	fclose(irf);
	const char *fs = strstr(ir, "@red2_t0(");
	const char *vs = fs ? strstr(fs, " x float>") : NULL;
	const char *fe = fs ? strstr(fs, "\n}\n") : NULL;
	CHECK(vs && vs < fe, "sum reduction not vectorized");
	free(ir);
	if (!h)
		return;
	float *arena = calloc(64, sizeof(float)), *X = malloc(R * C * 4);
	for (int e = 0; e < R * C; e++)
		X[e] = sinf((float)e * 0.37f) * 3 + (float)(e % 5);
	void *slots[2] = { arena, X };
	run(slots, NULL);
	for (int rr = 0; rr < R; rr++) {
		double s = 0, m = -INFINITY;
		for (int jj = 0; jj < C; jj++) {
			s += X[rr * C + jj];
			m = fmax(m, X[rr * C + jj]);
		}
		CHECK(fabs(arena[16 + rr] - s) <= 1e-5 * fabs(s) + 1e-4, "sum[%d] = %g, want %g",
		      rr, arena[16 + rr], s);
		CHECK(arena[16 + R + rr] == m, "max[%d] = %g, want %g", rr, arena[16 + R + rr], m);
		CHECK(fabs(arena[16 + 2 * R + rr] - s) <= 1e-5 * fabs(s) + 1e-4,
		      "sum2[%d] = %g, want %g", rr, arena[16 + 2 * R + rr], s);
	}
	dlclose(h);
	free(arena), free(X);
	arena_free(p->arena), free(p);
}

/* ---- 3. every f32 unop, one vectorized top-level loop each, against libm ---- */

static double
ref_unop(int op, float x)
{
	switch (op) {
	case KU_NEG: return -x;
	case KU_ABS: return fabsf(x);
	case KU_EXP: return expf(x);
	case KU_LOG: return logf(x);
	case KU_SQRT: return sqrtf(x);
	case KU_RSQRT: return 1.0f / sqrtf(x);
	case KU_TANH: return tanhf(x);
	case KU_ERF: return erff(x);
	case KU_FLOOR: return floorf(x);
	case KU_CEIL: return ceilf(x);
	case KU_TF32: { /* 11 significant bits, halves away from zero (subnormals: checked apart) */
		int ex;
		if (!isfinite(x) || fabsf(x) < FLT_MIN)
			return x;
		double m = frexp(x, &ex);
		return (float)ldexp(round(m * 2048.0) / 2048.0, ex); /* (FLT_MAX: inf) */
	}
	}
	return NAN;
}

/* test_unops' slot u: the f32 unops KU_NEG .. KU_CEIL, then KU_TF32 */
static int
unop_of(int u)
{
	return u <= KU_CEIL ? u : KU_TF32;
}

static void
test_unops(void)
{
	enum { NU = KU_CEIL + 2 };
	static const float special[] = { 0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f,
	                                 FLT_MIN, FLT_MAX, -FLT_MAX, 88.72283172607422f,
	                                 88.72283935546875f, 88.7f, -87.3f, -103.0f, -103.9f,
	                                 -104.0f, -150.0f, 1e-30f, -1e-8f, 0.625f, -0.625f,
	                                 0.99999f, 1.0f, -1.0f, 3.9f, 4.0f, 4.1f, 9.0f, -9.0f, 0.5f,
	                                 2.0f };
	int ns = (int)countof(special), M = ns + 40000;
	float *X = malloc((size_t)M * 4);
	memcpy(X, special, sizeof special);
	for (int i = ns; i < M; i++) {
		double t = (double)(i - ns) / (M - ns - 1);
		if (i % 2)
			X[i] = (float)(-110 + 220 * t);               /* the whole range */
		else
			X[i] = (float)(-5 + 10 * t);                  /* where the branches meet */
	}
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "un", loc_none);
	int in = addbuf(p, k, 1, 0, DT_F32, M), out = addbuf(p, k, 2, 0, DT_F32, (int64_t)NU * M);
	char *ir = NULL;
	size_t irlen = 0;
	FILE *irf = open_memstream(&ir, &irlen);
	for (int u = 0; u < NU; u++) {
		int i, op = unop_of(u);
		/* serial tasks are inlined into segc_gen_run; parallel ones stay functions */
		int par = (op % 2 && op != KU_TF32) || op == KU_EXP || op == KU_LOG ||
		          op == KU_TANH || op == KU_ERF; /* (tf32: widened, emit_llvm_vec.c) */
		KNode *l = toploop(p, k, 0, M, 1, par ? LOOP_PARALLEL : LOOP_VECTOR, &i);
		KNode *idx = kir_bin(p, KB_ADD, kir_ref(p, k, i), kir_i64(p, (int64_t)u * M));
		KNode *x = kir_load(p, k, in, kir_ref(p, k, i));
		kir_append(p, l->body, kir_store(p, out, idx, kir_un(p, op, x)));
	}
	run_fn run;
	void *h = build(p, "un", &run, irf);
	fclose(irf);
	if (getenv("SEGC_TEST_DUMP")) {
		FILE *df = fopen(getenv("SEGC_TEST_DUMP"), "w");
		fputs(ir, df);
		fclose(df);
	}
	if (!h)
		return;
	/* the loops with exp, log, tanh and erf have no calls, so they were vectorized */
	for (int op = KU_EXP; op <= KU_ERF; op++) {
		if (op != KU_EXP && op != KU_LOG && op != KU_TANH && op != KU_ERF)
			continue;
		char fname[64];
		snprintf(fname, sizeof fname, "@un_t%d(", op);
		const char *fs = strstr(ir, fname);
		const char *fe = fs ? strstr(fs, "\n}\n") : NULL;
		int vec = 0;
		for (const char *s = fs; s && s < fe; s++)
			if (!strncmp(s, " x float>", 9)) {
				vec = 1;
				break;
			}
		CHECK(vec, "%s loop not vectorized", kir_unop_name(op));
	}
	free(ir);
	float *Y = malloc((size_t)NU * M * 4);
	void *slots[3] = { NULL, X, Y };
	run(slots, NULL);
	double worst[NU] = { 0 };
	for (int u = 0, op = 0; u < NU; op = unop_of(++u))
		for (int i = 0; i < M; i++) {
			double got = Y[(size_t)u * M + i], want = ref_unop(op, X[i]);
			if (op == KU_TF32 && X[i] != 0 && fabsf(X[i]) < FLT_MIN)
				continue; /* (below) */
			double rel = op == KU_EXP || op == KU_LOG || op == KU_TANH || op == KU_ERF
			                 ? 1e-6
			                 : 2e-7;
			if (!close_rel(got, want, rel)) {
				CHECK(0, "%s(%.9g) = %.9g, want %.9g", kir_unop_name(op), X[i], got,
				      want);
				break;
			}
			if (isfinite(want) && fabs(want) > FLT_MIN) {
				double e = fabs(got - want) / fabs(want);
				worst[u] = e > worst[u] ? e : worst[u];
			}
		}
	/* tf32 of subnormals: the 13 low bits rounded off as for normal numbers (1e-40: 0x116c2
	 * -> 0x12000), of a tie away from zero (0x1000 -> 0x2000, -0x1000 -> -0x2000), of -0 */
	float tf[4] = {1e-40f, 0, 0, -0.0f}, tw[4];
	uint32_t bits[4] = {0x116c2u, 0x1000u, 0x80001000u, 0x80000000u}, wbits[4] = {0x12000u,
	                    0x2000u, 0x80002000u, 0x80000000u};
	for (int j = 1; j < 3; j++)
		memcpy(&tf[j], &bits[j], 4);
	for (int j = 0; j < 4; j++)
		memcpy(&tw[j], &wbits[j], 4);
	Program *q = newprog();
	Kernel *kq = kir_kernel(q, "tf", loc_none);
	int qi = addbuf(q, kq, 1, 0, DT_F32, 4), qo = addbuf(q, kq, 2, 0, DT_F32, 4), iq;
	KNode *lq = toploop(q, kq, 0, 4, 1, LOOP_SERIAL, &iq);
	kir_append(q, lq->body, kir_store(q, qo, kir_ref(q, kq, iq),
	                                  kir_un(q, KU_TF32, kir_load(q, kq, qi, kir_ref(q, kq, iq)))));
	run_fn runq;
	void *hq = build(q, "tf", &runq, NULL);
	if (hq) {
		float got[4];
		void *qs[3] = { NULL, tf, got };
		runq(qs, NULL);
		for (int j = 0; j < 4; j++)
			CHECK(!memcmp(&got[j], &tw[j], 4), "tf32 of bits 0x%x: %a, want %a", bits[j],
			      got[j], tw[j]);
		dlclose(hq);
	}
	arena_free(q->arena), free(q);
	printf("max rel error: exp %.2g log %.2g tanh %.2g erf %.2g\n", worst[KU_EXP],
	       worst[KU_LOG], worst[KU_TANH], worst[KU_ERF]);
	CHECK(signbit(Y[(size_t)KU_TANH * M + 1]), "tanh(-0) = %g", Y[(size_t)KU_TANH * M + 1]);
	CHECK(signbit(Y[(size_t)KU_ERF * M + 1]), "erf(-0) = %g", Y[(size_t)KU_ERF * M + 1]);
	dlclose(h);
	free(X), free(Y);
	arena_free(p->arena), free(p);
}

/* ---- 4. binops (f32 and i64), compares, and/or, select, casts ---- */

static double
ref_fbin(int op, float a, float b)
{
	switch (op) {
	case KB_ADD: return a + b;
	case KB_SUB: return a - b;
	case KB_MUL: return a * b;
	case KB_DIV: return a / b;
	case KB_REM: return fmodf(a, b);
	case KB_MIN: return a < b ? a : b;
	case KB_MAX: return a > b ? a : b;
	case KB_LT: return a < b;
	case KB_LE: return a <= b;
	case KB_GT: return a > b;
	case KB_GE: return a >= b;
	case KB_EQ: return a == b;
	case KB_NE: return a != b;
	case KB_POW: return powf(a, b);
	}
	return NAN;
}

static int64_t
ref_ibin(int op, int64_t a, int64_t b)
{
	switch (op) {
	/* wrapping, as the generated code computes (no nsw) */
	case KB_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
	case KB_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
	case KB_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
	case KB_DIV: return a / b;
	case KB_REM: return a % b;
	case KB_MIN: return a < b ? a : b;
	case KB_MAX: return a > b ? a : b;
	case KB_LT: return a < b;
	case KB_LE: return a <= b;
	case KB_GT: return a > b;
	case KB_GE: return a >= b;
	case KB_EQ: return a == b;
	case KB_NE: return a != b;
	case KB_AND: return (a > 0) && (b > 0);
	case KB_OR: return (a > 0) || (b > 0);
	}
	return 0;
}

enum { NCAST = 7 };

static void
test_binops(void)
{
	enum { M = 257 };
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "bin", loc_none);
	int fa = addbuf(p, k, 1, 0, DT_F32, M), fb = addbuf(p, k, 2, 0, DT_F32, M);
	int ia = addbuf(p, k, 3, 0, DT_I64, M), ib = addbuf(p, k, 4, 0, DT_I64, M);
	int fo = addbuf(p, k, 5, 0, DT_F32, (int64_t)KB_COUNT * M);
	int io = addbuf(p, k, 6, 0, DT_I64, (int64_t)(KB_COUNT + NCAST) * M);
	int i;
	KNode *l = toploop(p, k, 0, M, 1, LOOP_PARALLEL, &i);
#define I(v) kir_ref(p, k, v)
#define AT(base) kir_bin(p, KB_ADD, I(i), kir_i64(p, (int64_t)(base) * M))
	for (int op = 0; op < KB_COUNT; op++) {
		KNode *a = kir_load(p, k, fa, I(i)), *b = kir_load(p, k, fb, I(i));
		if (op != KB_AND && op != KB_OR) {
			KNode *v = kir_bin(p, op, a, b);
			if (v->type == KT_BOOL)
				v = kir_cast(p, KT_F32, v);
			kir_append(p, l->body, kir_store(p, fo, AT(op), v));
		}
		a = kir_load(p, k, ia, I(i));
		b = kir_load(p, k, ib, I(i));
		if (op == KB_POW)
			continue;
		if (op == KB_AND || op == KB_OR) {
			a = kir_bin(p, KB_GT, a, kir_i64(p, 0));
			b = kir_bin(p, KB_GT, b, kir_i64(p, 0));
		}
		KNode *v = kir_bin(p, op, a, b);
		if (v->type == KT_BOOL)
			v = kir_cast(p, KT_I64, v);
		kir_append(p, l->body, kir_store(p, io, AT(op), v));
	}
	/* casts and select, into io rows KB_COUNT.. */
	KNode *casts[NCAST] = {
		kir_cast(p, KT_I64, kir_load(p, k, fa, I(i))),                        /* fptosi */
		kir_cast(p, KT_I64, kir_cast(p, KT_I32, kir_load(p, k, ia, I(i)))),    /* trunc */
		kir_cast(p, KT_I64, kir_cast(p, KT_F32, kir_load(p, k, ia, I(i)))),    /* sitofp */
		kir_cast(p, KT_I64, kir_cast(p, KT_BOOL, kir_load(p, k, fa, I(i)))),   /* != 0 */
		kir_cast(p, KT_I64, kir_cast(p, KT_I32, kir_cast(p, KT_BOOL,
		                                                 kir_load(p, k, ia, I(i))))),
		kir_select(p, kir_bin(p, KB_LT, kir_load(p, k, fa, I(i)), kir_load(p, k, fb, I(i))),
		           kir_load(p, k, ia, I(i)), kir_load(p, k, ib, I(i))),
		kir_cast(p, KT_I64, kir_un(p, KU_NOT, kir_bin(p, KB_EQ, kir_load(p, k, ia, I(i)),
		                                              kir_un(p, KU_ABS, kir_un(p, KU_NEG,
		                                                     kir_load(p, k, ia, I(i))))))),
	};
	for (int c = 0; c < NCAST; c++)
		kir_append(p, l->body, kir_store(p, io, AT(KB_COUNT + c), casts[c]));
#undef AT
#undef I
	run_fn run;
	void *h = build(p, "bin", &run, NULL);
	if (!h)
		return;
	float FA[M], FB[M], FO[KB_COUNT * M];
	int64_t IA[M], IB[M], IO[(KB_COUNT + NCAST) * M];
	for (int j = 0; j < M; j++) {
		FA[j] = (float)(j - 128) * 0.37f;
		FB[j] = j % 7 == 0 ? FA[j] : (float)((j * 13) % 19) * 0.5f + 0.25f;
		IA[j] = (j - 128) * 1000003LL + (j % 3 ? 0 : (1LL << 33));
		IB[j] = j % 11 == 0 ? IA[j] : (j % 5) - 2 == 0 ? 7 : (j % 5) - 2;
	}
	void *slots[7] = { NULL, FA, FB, IA, IB, FO, IO };
	run(slots, NULL);
	for (int op = 0; op < KB_COUNT; op++)
		for (int j = 0; j < M; j++) {
			if (op != KB_AND && op != KB_OR) {
				double want = ref_fbin(op, FA[j], FB[j]), got = FO[op * M + j];
				if (!close_rel(got, want, op == KB_POW ? 2e-7 : 0)) {
					CHECK(0, "f32 %s(%g, %g) = %g, want %g", kir_binop_name(op),
					      FA[j], FB[j], got, want);
					break;
				}
			}
			if (op == KB_POW)
				continue;
			int64_t want = ref_ibin(op, IA[j], IB[j]), got = IO[op * M + j];
			if (got != want) {
				CHECK(0, "i64 %s(%lld, %lld) = %lld, want %lld", kir_binop_name(op),
				      (long long)IA[j], (long long)IB[j], (long long)got,
				      (long long)want);
				break;
			}
		}
	for (int j = 0; j < M; j++) {
		int64_t want[NCAST] = {
			(int64_t)FA[j], (int64_t)(int32_t)IA[j], (int64_t)(float)IA[j], FA[j] != 0,
			IA[j] != 0, FA[j] < FB[j] ? IA[j] : IB[j], IA[j] != llabs(IA[j]),
		};
		for (int c = 0; c < NCAST; c++)
			CHECK(IO[(KB_COUNT + c) * M + j] == want[c],
			      "cast %d at %d: %lld, want %lld", c, j,
			      (long long)IO[(KB_COUNT + c) * M + j], (long long)want[c]);
	}
	dlclose(h);
	arena_free(p->arena), free(p);
}

/* ---- 5. nested loops (one unrolled by a count), if/else, run-time trip counts, steps, i32
 * loop vars, u8 ---- */

static void
test_control(void)
{
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "nest", loc_none);
	int out = addbuf(p, k, 1, 0, DT_I64, 20);
	int i, j = kir_var(p, k, KT_I64, "j");
	KNode *l = toploop(p, k, 0, 4, 1, LOOP_PARALLEL, &i);
	KNode *in = kir_loop(p, j, kir_i64(p, 0), kir_i64(p, 5), 1, LOOP_UNROLL);
	in->op = 2; /* unrolled twice (llvm.loop.unroll.count): a remainder of one */
	kir_append(p, l->body, in);
	KNode *even = kir_bin(p, KB_EQ, kir_bin(p, KB_REM, kir_ref(p, k, j), kir_i64(p, 2)),
	                      kir_i64(p, 0));
	KNode *ifn = kir_if(p, even);
	KNode *idx = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, i), kir_i64(p, 5)),
	                     kir_ref(p, k, j));
	kir_append(p, ifn->body, kir_store(p, out, idx, kir_bin(p, KB_ADD, kir_bin(p, KB_MUL,
	                         kir_ref(p, k, i), kir_i64(p, 10)), kir_ref(p, k, j))));
	ifn->c = kir_block(p);
	kir_append(p, ifn->c, kir_store(p, out, idx, kir_i64(p, -1)));
	kir_append(p, in->body, ifn);

	/* second kernel: for i in [1, n[0]) step 2 with n read at run time; u8 data; i32 var */
	Kernel *k2 = kir_kernel(p, "dyn", loc_none);
	int nb = addbuf(p, k2, 2, 0, DT_I64, 1), o32 = addbuf(p, k2, 3, 0, DT_I32, 16);
	int u8in = addbuf(p, k2, 4, 0, DT_U8, 32), u8out = addbuf(p, k2, 4, 32, DT_U8, 32);
	int v = kir_var(p, k2, KT_I64, "i");
	l = kir_loop(p, v, kir_i64(p, 1), kir_load(p, k2, nb, kir_i64(p, 0)), 2, LOOP_PARALLEL);
	kir_append(p, k2->body, l);
	kir_append(p, l->body, kir_store(p, o32, kir_ref(p, k2, v),
	                                 kir_bin(p, KB_MUL, kir_cast(p, KT_I32, kir_ref(p, k2, v)),
	                                         kir_load(p, k2, o32, kir_ref(p, k2, v)))));
	toploop(p, k2, 3, 20, 4, LOOP_PARALLEL, &v);
	l = k2->body->kids[1];
	KNode *sum = kir_bin(p, KB_ADD, kir_load(p, k2, u8in, kir_ref(p, k2, v)),
	                     kir_load(p, k2, o32, kir_i64(p, 0)));
	kir_append(p, l->body, kir_store(p, u8out, kir_ref(p, k2, v), sum));
	int w = kir_var(p, k2, KT_I32, "w");
	l = kir_loop(p, w, kir_cast(p, KT_I32, kir_i64(p, 2)), kir_cast(p, KT_I32, kir_i64(p, 12)),
	             3, LOOP_SERIAL);
	kir_append(p, k2->body, l);
	kir_append(p, l->body, kir_store(p, u8out, kir_ref(p, k2, w), kir_cast(p, KT_I32,
	                                 kir_i64(p, 200))));
	/* a loop with an empty range */
	toploop(p, k2, 5, 5, 1, LOOP_PARALLEL, &v);
	kir_append(p, k2->body->kids[3]->body, kir_store(p, o32, kir_i64(p, 0), kir_cast(p, KT_I32,
	                                                  kir_i64(p, 99))));
	run_fn run;
	char *ir = NULL;
	size_t irlen = 0;
	FILE *irf = open_memstream(&ir, &irlen);
	void *h = build(p, "ctl", &run, irf);
	fclose(irf);
	/* (at -O0 the IR keeps the loop's metadata; at -O3 the unroller has consumed it) */
	CHECK(opt_level != 0 || (ir && strstr(ir, "!\"llvm.loop.unroll.count\", i32 2}")),
	      "the unroll count is not in the IR");
	free(ir);
	if (!h)
		return;
	int64_t O[20], N[1] = { 8 };
	int32_t O32[16];
	uint8_t U8[64];
	for (int e = 0; e < 16; e++)
		O32[e] = 100 + e;
	for (int e = 0; e < 64; e++)
		U8[e] = (uint8_t)(e * 7);
	void *slots[5] = { NULL, O, N, O32, U8 };
	int calls = 0;
	run(slots, &calls);
	CHECK(calls == 4, "parallel_for called %d times, want 4", calls);
	for (int a = 0; a < 4; a++)
		for (int b = 0; b < 5; b++)
			CHECK(O[a * 5 + b] == (b % 2 ? -1 : a * 10 + b), "nest[%d][%d] = %lld", a,
			      b, (long long)O[a * 5 + b]);
	for (int e = 0; e < 16; e++) {
		int32_t want = e >= 1 && e < 8 && e % 2 == 1 ? e * (100 + e) : 100 + e;
		CHECK(O32[e] == want, "dyn[%d] = %d, want %d", e, O32[e], want);
	}
	for (int e = 0; e < 32; e++) {
		uint8_t want = (uint8_t)((32 + e) * 7);
		if (e >= 3 && e < 20 && (e - 3) % 4 == 0)
			want = (uint8_t)(e * 7 + 100);
		if (e >= 2 && e < 12 && (e - 2) % 3 == 0)
			want = 200;
		CHECK(U8[32 + e] == want, "u8[%d] = %d, want %d", e, U8[32 + e], want);
	}
	dlclose(h);
	arena_free(p->arena), free(p);
}

/* ---- 6. refusals and output options ---- */

static void
test_refusal(void)
{
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "gpu", loc_none);
	int out = addbuf(p, k, 1, 0, DT_F32, 4), i;
	KNode *l = toploop(p, k, 0, 4, 1, LOOP_BLOCK, &i);
	kir_append(p, l->body, kir_store(p, out, kir_ref(p, k, i), kir_f32(p, 1)));
	Diag d;
	diag_init(&d, NULL);
	char obj[512];
	snprintf(obj, sizeof obj, "%s/gpu.o", tmpdir);
	char *kt = NULL;
	size_t ktlen = 0;
	FILE *kf = open_memstream(&kt, &ktlen);
	CgOptions o = { .opt_level = 3, .emit_kernels = kf };
	CHECK(cg_emit_llvm(p, &o, obj, &d) == -1, "block loop accepted by the cpu emitter");
	fclose(kf);
	CHECK(d.nerrors == 1 && strstr(d.first, "gpu block/thread loops"), "message: %s", d.first);
	CHECK(kt && strstr(kt, "kernel gpu"), "--emit=kernels printed nothing");
	CHECK(access(obj, F_OK) != 0, "object written after an error");
	free(kt);
	arena_free(p->arena), free(p);

	/* a warp shuffle (CUDA block-mapped kernels only) in a CPU loop */
	p = newprog();
	k = kir_kernel(p, "shfl", loc_none);
	out = addbuf(p, k, 1, 0, DT_F32, 4);
	l = toploop(p, k, 0, 4, 1, LOOP_PARALLEL, &i);
	kir_append(p, l->body, kir_store(p, out, kir_ref(p, k, i), kir_shfl(p, kir_f32(p, 1), 1)));
	diag_init(&d, NULL);
	CgOptions o1 = { .opt_level = 3 };
	CHECK(cg_emit_llvm(p, &o1, obj, &d) == -1 && strstr(d.first, "warp shuffles (shfl)"),
	      "shuffle on the cpu: %s", d.first);
	CHECK(access(obj, F_OK) != 0, "object written after an error");

	/* a missing runtime library is a located error, and leaves no file behind */
	char so[512];
	snprintf(so, sizeof so, "%s/none.so", tmpdir);
	diag_init(&d, NULL);
	CgOptions o2 = { .runtime_lib = "/nonexistent/libsegc_rt.a" };
	CHECK(cg_link(obj, &o2, so, &d) == -1 && strstr(d.first, "/nonexistent/libsegc_rt.a"),
	      "cg_link with a missing runtime: %s", d.first);
	/* a failing link reports the driver's message */
	char wrap[512];
	snprintf(wrap, sizeof wrap, "%s/wrapper.o", tmpdir);
	diag_init(&d, NULL);
	o2.runtime_lib = wrap;
	CHECK(cg_link("/nonexistent.o", &o2, so, &d) == -1 && strstr(d.first, "nonexistent.o"),
	      "cg_link of a missing object: %s", d.first);
	CHECK(access(so, F_OK) != 0, "partial output left behind");
	arena_free(p->arena), free(p);
}

/* ---- 6b. outer-loop vectorization (emit_llvm_vec.c): a LOOP_VECTOR loop of 32 lanes with
 * an inner reduction loop; affine loads of stride 1 (masked), 2 (wide masked load + shuffle),
 * 5 (gather); a uniform weight load; a lane-dependent if/else; masked and scattered stores; a
 * uniform-index store (the last lane wins); a second loop with exp, log, tanh and erf of lane
 * values (the inline polynomials on vectors) ---- */

static int
file_has(FILE *f, const char *what)
{
	char line[4096];
	int found = 0;
	rewind(f);
	while (fgets(line, sizeof line, f))
		found |= strstr(line, what) != NULL;
	return found;
}

static void
test_widen(void)
{
	enum { R = 5, V = 32, J = 5, N = R * V * 2 + 2 * J + 8, M = V * 5 + J };
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "wid", loc_none);
	int x = addbuf(p, k, 1, 0, DT_F32, N), w = addbuf(p, k, 2, 0, DT_F32, J);
	int x3 = addbuf(p, k, 3, 0, DT_F32, M);
	int out = addbuf(p, k, 0, 0, DT_F32, R * V), out2 = addbuf(p, k, 0, 4096, DT_F32, R * V * 3);
	int out3 = addbuf(p, k, 0, 8192, DT_F32, R), out4 = addbuf(p, k, 0, 12288, DT_F32, R * V);
	int r, l, j;
	KNode *rl = toploop(p, k, 0, R, 1, LOOP_PARALLEL, &r);
	for (int pass = 0; pass < 2; pass++) {
		l = kir_var(p, k, KT_I64, "l");
		KNode *ll = kir_loop(p, l, kir_i64(p, 0), kir_i64(p, V), 1, LOOP_VECTOR);
		kir_append(p, rl->body, ll);
		KNode *b = ll->body;
		int pv = kir_var(p, k, KT_I64, "p"), acc = kir_var(p, k, KT_F32, "acc");
		KNode *pe = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, r), kir_i64(p, V)),
		                    kir_ref(p, k, l));
		kir_append(p, b, kir_let(p, k, pv, pe));
		kir_append(p, b, kir_let(p, k, acc, kir_f32(p, 0)));
		j = kir_var(p, k, KT_I64, "j");
		KNode *jl = kir_loop(p, j, kir_i64(p, 0), kir_i64(p, J), 1, LOOP_SERIAL);
		kir_append(p, b, jl);
		int xv = kir_var(p, k, KT_F32, "xv");
		kir_append(p, jl->body, kir_let(p, k, xv, kir_f32(p, 0)));
		KNode *P = kir_ref(p, k, pv), *Jr = kir_ref(p, k, j);
		KNode *cond = kir_bin(p, KB_NE, kir_bin(p, KB_REM, P, kir_i64(p, 7)), kir_i64(p, 3));
		KNode *ifc = kir_if(p, cond);
		ifc->c = kir_block(p);
		kir_append(p, jl->body, ifc);
		kir_append(p, ifc->body, kir_assign(p, xv, kir_load(p, k, x, kir_bin(p, KB_ADD, P, Jr))));
		KNode *i2 = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, P, kir_i64(p, 2)), Jr);
		kir_append(p, ifc->c, kir_assign(p, xv, kir_load(p, k, x, i2)));
		KNode *t = kir_bin(p, KB_MUL, kir_load(p, k, w, Jr), kir_ref(p, k, xv));
		if (pass == 1) {
			KNode *t1 = kir_bin(p, KB_MUL, t, kir_f32(p, 0.01));
			KNode *sq = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, t1, t1), kir_f32(p, 2));
			t = kir_bin(p, KB_ADD, kir_un(p, KU_EXP, t1), kir_un(p, KU_LOG, sq));
			t = kir_bin(p, KB_ADD, t, kir_un(p, KU_TANH, kir_bin(p, KB_MUL, t1, kir_f32(p, 30))));
			t = kir_bin(p, KB_ADD, t, kir_un(p, KU_ERF, kir_bin(p, KB_MUL, t1, kir_f32(p, 20))));
		}
		KNode *g = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, l), kir_i64(p, 5)), Jr);
		t = kir_bin(p, KB_ADD, t, kir_bin(p, KB_MUL, kir_load(p, k, x3, g), kir_f32(p, 0.5)));
		kir_append(p, jl->body,
		           kir_assign(p, acc, kir_bin(p, KB_ADD, kir_ref(p, k, acc), t)));
		KNode *A = kir_ref(p, k, acc);
		if (pass == 1) {
			kir_append(p, b, kir_store(p, out4, P, A));
			continue;
		}
		KNode *ifs = kir_if(p, kir_bin(p, KB_LT, kir_ref(p, k, l), kir_i64(p, 29)));
		kir_append(p, b, ifs);
		kir_append(p, ifs->body, kir_store(p, out, P, A));
		KNode *si = kir_bin(p, KB_MUL, P, kir_i64(p, 3));
		kir_append(p, b, kir_store(p, out2, si, kir_bin(p, KB_ADD, A, kir_f32(p, 1))));
		kir_append(p, b, kir_store(p, out3, kir_ref(p, k, r),
		                           kir_cast(p, KT_F32, kir_ref(p, k, l))));
	}

	FILE *ll = tmpfile();
	run_fn run;
	void *h = build(p, "wid", &run, ll);
	if (!h)
		return;
	if (opt_level > 0) {
		CHECK(file_has(ll, "llvm.masked.load"), "widen: no masked load");
		CHECK(file_has(ll, "llvm.masked.gather"), "widen: no gather");
		CHECK(file_has(ll, "llvm.masked.scatter"), "widen: no scatter");
		CHECK(file_has(ll, "llvm.masked.store"), "widen: no masked store");
	}
	fclose(ll);
	float *arena = calloc(4 * 4096, sizeof(float)), X[N], Wt[J], X3[M];
	for (int i = 0; i < N; i++)
		X[i] = (float)((i * 37) % 23) * 0.25f - 2;
	for (int i = 0; i < J; i++)
		Wt[i] = 0.5f + (float)i;
	for (int i = 0; i < M; i++)
		X3[i] = (float)(i % 13) - 6;
	void *slots[4] = {arena, X, Wt, X3};
	CHECK(run(slots, NULL) == 0, "widen: run failed");
	for (int ri = 0; ri < R; ri++) {
		CHECK(arena[2048 + ri] == V - 1, "widen: out3[%d] = %g, want %d", ri,
		      arena[2048 + ri], V - 1);
		for (int li = 0; li < V; li++) {
			int pi = ri * V + li;
			double a = 0, a2 = 0;
			for (int ji = 0; ji < J; ji++) {
				float xv = pi % 7 != 3 ? X[pi + ji] : X[pi * 2 + ji];
				a += (double)Wt[ji] * xv + X3[li * 5 + ji] * 0.5;
				double t1 = (double)Wt[ji] * xv * 0.01;
				a2 += exp(t1) + log(t1 * t1 + 2) + tanh(t1 * 30) + erf(t1 * 20) +
				      X3[li * 5 + ji] * 0.5;
			}
			double o = li < 29 ? a : 0;
			CHECK(close_rel(arena[pi], o, 1e-5), "widen: out[%d] = %g, want %g", pi,
			      arena[pi], o);
			CHECK(close_rel(arena[1024 + pi * 3], a + 1, 1e-5), "widen: out2[%d] = %g",
			      pi, arena[1024 + pi * 3]);
			CHECK(arena[1024 + pi * 3 + 1] == 0, "widen: scatter wrote between lanes");
			CHECK(close_rel(arena[3072 + pi], a2, 1e-5), "widen: out4[%d] = %g, want %g",
			      pi, arena[3072 + pi], a2);
		}
	}
	dlclose(h);
	free(arena);
	arena_free(p->arena), free(p);
}

/* ---- 7. with the real runtime: engine.so through the public ABI, threads on ---- */

static void
test_engine(void)
{
	enum { N = 100003 };
	char exe[512], rt[600], obj[512], so[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return;
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(rt, sizeof rt, "%s/../libsegc_rt.a", exe);   /* build/tests/.. = build/ */
	if (access(rt, R_OK) != 0) {
		printf("test_emit_llvm: %s not built, engine test skipped\n", rt);
		return;
	}
	Program *p = newprog();
	p->manifest = "segc-manifest 1\ngraph t\nsegc 0.1.0\ntarget cpu\narena 64\n"
	              "input x f32 100003\noutput y f32 100003\nmacs 0\nflops 0\nkernels 1\nend\n";
	Kernel *k = kir_kernel(p, "k0_exp", loc_none);
	int x = addbuf(p, k, 1, 0, DT_F32, N), y = addbuf(p, k, 2, 0, DT_F32, N), i;
	KNode *l = toploop(p, k, 0, N, 1, LOOP_PARALLEL, &i);
	KNode *v = kir_un(p, KU_EXP, kir_load(p, k, x, kir_ref(p, k, i)));
	kir_append(p, l->body, kir_store(p, y, kir_ref(p, k, i), v));
	Diag d;
	diag_init(&d, stderr);
	snprintf(obj, sizeof obj, "%s/engine.o", tmpdir);
	snprintf(so, sizeof so, "%s/engine.so", tmpdir);
	CgOptions o = { .opt_level = 3 };
	CHECK(cg_emit_llvm(p, &o, obj, &d) == 0, "engine: emit: %s", d.first);
	/* without runtime_lib the archive is looked for next to this binary: not there */
	Diag d2;
	diag_init(&d2, NULL);
	CHECK(cg_link(obj, &o, so, &d2) == -1 && strstr(d2.first, "libsegc_rt.a not found next to"),
	      "engine: default runtime lookup: %s", d2.first);
	o.runtime_lib = rt;
	if (cg_link(obj, &o, so, &d) != 0) {
		CHECK(0, "engine: link: %s", d.first);
		return;
	}
	void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL, "dlopen engine: %s", dlerror());
	if (!h)
		return;
	segc_engine_api_fn get = (segc_engine_api_fn)(uintptr_t)dlsym(h, "segc_engine_api");
	CHECK(get && !dlsym(h, "segc_gen_run") && !dlsym(h, "segc_rt_parallel_for"),
	      "engine exports the wrong symbols");
	const segc_api *api = get ? get(SEGC_ABI_VERSION) : NULL;
	CHECK(api != NULL, "segc_engine_api returned NULL");
	if (!api)
		return;
	segc_engine_t *e = NULL;
	char err[256] = "";
	segc_options opts = { sizeof opts, 4 };
	CHECK(api->open(&opts, &e, err, sizeof err) == SEGC_OK, "open: %s", err);
	float *X = malloc(N * 4), *Y = calloc(N, 4);
	for (int j = 0; j < N; j++)
		X[j] = (float)(j - N / 2) * 1e-3f;
	const void *ins[1] = { X };
	void *outs[1] = { Y };
	if (e) {
		CHECK(api->run(e, ins, outs) == SEGC_OK, "run: %s", api->last_error(e));
		for (int j = 0; j < N; j++)
			if (!close_rel(Y[j], expf(X[j]), 1e-6)) {
				CHECK(0, "engine exp(%g) = %g", X[j], Y[j]);
				break;
			}
		api->close(e);
	}
	free(X), free(Y);
	dlclose(h);
	arena_free(p->arena), free(p);
}

int
main(void)
{
	char cmd[1024];
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof cmd, "%s/wrapper.c", tmpdir);
	FILE *f = fopen(cmd, "w");
	fputs(wrapper_src, f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "cc -c -fPIC -O1 -o %s/wrapper.o %s/wrapper.c", tmpdir, tmpdir);
	if (system(cmd) != 0) {
		fprintf(stderr, "FAIL: cannot compile the wrapper\n");
		return 1;
	}
	test_elementwise();
	test_reduction();
	test_unops();
	test_binops();
	test_control();
	test_refusal();
	test_widen();
	test_engine();
	opt_level = 0;                         /* default<O0>: same results, nothing vectorized */
	test_elementwise();
	test_control();
	test_widen();
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (failures == 0 && system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", tmpdir);
	if (failures) {
		fprintf(stderr, "test_emit_llvm: %d failures (files kept in %s)\n", failures,
		        tmpdir);
		return 1;
	}
	printf("test_emit_llvm: ok\n");
	return 0;
}
