/* tests/unit/test_emit_cuda.c -- the CUDA emitter without a GPU.
 *
 * Builds small Programs by hand with the kir builder and runs cg_emit_cuda with --emit=cuda
 * output captured: checks the kernel signature, the grid-stride loop, __ldg on read-only
 * buffers, the math calls and the launch schedule; block-mapped kernels (shared tiles,
 * __syncthreads, the tensor-core helpers, the SEGC_BLOCK_RUN wrapper, their schedule line);
 * warp shuffles (segc_shfl_xor as a let's value), row-major A tiles (segc_frag_ar_t), vector
 * stores to shared tiles and bf16 pass-through variables (segc_vst8/4, raw bf16), 16-byte bf16
 * vector loads (segc_vload8, raw or widened); that a
 * LOOP_BLOCK loop without a thread loop, mma at fp32 or outside a block-mapped kernel, a
 * shuffle inside an expression or in a grid-stride kernel, and bad targets are refused with a
 * diagnostic; and, where NVRTC loads, that the host object is written (else that the error
 * says NVRTC cannot be loaded); the value ranges behind the 32-bit divisions
 * (codegen/cuda_range.c).  Exits non-zero on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"

static int failures;

#define CHECK(c, ...)                                                                              \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			failures++;                                                                \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

static void
freeprog(Program *p)
{
	arena_free(p->arena);
	free(p);
}

static Program *
newprog(void)
{
	Program *p = calloc(1, sizeof *p);
	p->arena = arena_new();
	p->manifest = "segc-manifest 1\ngraph test\ntarget cpu\narena 0\nend\n";
	return p;
}

static int
addbuf(Program *p, Kernel *k, uint32_t slot, int64_t offset, int dtype, int64_t numel, int w)
{
	KBuf *b = ARENA_PUSH(p->arena, k->bufs, k->nbufs, k->capbufs);
	memset(b, 0, sizeof *b);
	b->slot = slot;
	b->offset = offset;
	b->dtype = (uint8_t)dtype;
	b->numel = numel;
	b->written = (uint8_t)w;
	b->name = arena_printf(p->arena, "b%u", k->nbufs - 1);
	return (int)k->nbufs - 1;
}

/* kernel name: out[i] = exp(x[i]) * 2 + min(x[i], 0.5) for i in [0, 100), parallel */
static Program *
prog_elt_named(LoopAnn ann, const char *name)
{
	Program *p = newprog();
	Kernel *k = kir_kernel(p, name, loc_none);
	int x = addbuf(p, k, 1, 0, DT_F32, 100, 0);
	int o = addbuf(p, k, 2, 64, DT_F32, 100, 1);
	int iv = kir_var(p, k, KT_I64, "i");
	KNode *l = kir_loop(p, iv, kir_i64(p, 0), kir_i64(p, 100), 1, ann);
	kir_append(p, k->body, l);
	KNode *xv = kir_load(p, k, x, kir_ref(p, k, iv));
	KNode *v = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_un(p, KU_EXP, xv), kir_f32(p, 2)),
	                   kir_bin(p, KB_MIN, xv, kir_f32(p, 0.5)));
	kir_append(p, l->body, kir_store(p, o, kir_ref(p, k, iv), v));
	return p;
}

static Program *
prog_elt(LoopAnn ann)
{
	return prog_elt_named(ann, "k0");
}

/* A block-mapped kernel (docs/cuda.md): 4 blocks of 64 threads; thread th stages x into the
 * shared A and B tiles, barrier, warp MMA into accumulator 0, store to the shared C tile,
 * barrier, out[blk*64 + th] = C[th].  precision: the tile dtype (bf16 tiles for KP_BF16).
 * run: two more MMAs after the first (acc1 += A*B', acc0 += A*B'), a run of three that
 * shares the A fragment and B' (emit_cuda.c's cuda_mma_run); run 2: C stored over A
 * (kir_shared_over: one shared byte pool), after a barrier, and B also by cp_async (cpn
 * elements: 4 is 16 bytes) and cp_wait. */
static Program *
prog_mma(int precision, int run, int cpn)
{
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "k0", loc_none);
	int tdt = precision == KP_BF16 ? DT_BF16 : DT_F32;
	p->precision = precision;
	int x = addbuf(p, k, 1, 0, DT_F32, 256, 0);
	int o = addbuf(p, k, 2, 0, DT_F32, 256, 1);
	int as = kir_shared(p, k, tdt, 16 * 24, 24, "As");
	int bs = kir_shared(p, k, tdt, 16 * 24, 24, "Bs");
	int cs = run == 2 ? kir_shared_over(p, k, DT_F32, 16 * 24, 24, "Cs", as)
	                  : kir_shared(p, k, DT_F32, 16 * 24, 24, "Cs");
	int bv = kir_var(p, k, KT_I64, "blk"), tv = kir_var(p, k, KT_I64, "th");
	KNode *bl = kir_loop(p, bv, kir_i64(p, 0), kir_i64(p, 4), 1, LOOP_BLOCK);
	KNode *tl = kir_loop(p, tv, kir_i64(p, 0), kir_i64(p, 64), 1, LOOP_THREAD);
	kir_append(p, k->body, bl);
	kir_append(p, bl->body, tl);
	KNode *g = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, bv), kir_i64(p, 64)),
	                   kir_ref(p, k, tv));
	kir_append(p, tl->body, kir_store(p, as, kir_ref(p, k, tv), kir_load(p, k, x, g)));
	kir_append(p, tl->body, kir_store(p, bs, kir_ref(p, k, tv), kir_load(p, k, x, g)));
	if (run == 2) {
		KNode *ok = kir_bin(p, KB_LT, kir_ref(p, k, tv), kir_i64(p, 32));
		kir_append(p, tl->body, kir_cp_async(p, bs, kir_i64(p, 64), x, g, cpn, ok));
		kir_append(p, tl->body, kir_cp_wait(p));
	}
	kir_append(p, tl->body, kir_barrier(p));
	kir_append(p, tl->body, kir_mma_zero(p, 0));
	kir_append(p, tl->body, kir_mma(p, 0, as, kir_i64(p, 0), bs, kir_i64(p, 0)));
	if (run == 2)
		kir_append(p, tl->body, kir_barrier(p));
	if (run == 1) {
		kir_append(p, tl->body, kir_mma(p, 1, as, kir_i64(p, 0), bs, kir_i64(p, 8)));
		kir_append(p, tl->body, kir_mma(p, 0, as, kir_i64(p, 0), bs, kir_i64(p, 8)));
	}
	kir_append(p, tl->body, kir_mma_store(p, 0, cs, kir_i64(p, 0)));
	kir_append(p, tl->body, kir_barrier(p));
	kir_append(p, tl->body, kir_store(p, o, g, kir_load(p, k, cs, kir_ref(p, k, tv))));
	return p;
}

/* The frame of the K_mmar programs: one block of 32 threads (th, blk), x (xdtype, 512) and out
 * (f32, 512) global, a 16 x 24 shared C tile; mmar_end appends acc 0 = 0, the MMA, (mix: a
 * wmma K_mma after it, refused), the store with rows 8 into C, a barrier and out[th] = C[th]
 * (+ variable rd where rd >= 0) */
typedef struct {
	Program *p;
	Kernel *k;
	int x, o, cs, tv;
	KNode *tl;
} MmarProg;

static MmarProg
mmar_begin(int precision, int xdtype)
{
	MmarProg m = {newprog()};
	Program *p = m.p;
	m.k = kir_kernel(p, "k0", loc_none);
	p->precision = precision;
	m.x = addbuf(p, m.k, 1, 0, xdtype, 512, 0);
	m.o = addbuf(p, m.k, 2, 0, DT_F32, 512, 1);
	m.cs = kir_shared(p, m.k, DT_F32, 16 * 24, 24, "Cs");
	m.tv = kir_var(p, m.k, KT_I64, "th");
	int bv = kir_var(p, m.k, KT_I64, "blk");
	KNode *bl = kir_loop(p, bv, kir_i64(p, 0), kir_i64(p, 1), 1, LOOP_BLOCK);
	m.tl = kir_loop(p, m.tv, kir_i64(p, 0), kir_i64(p, 32), 1, LOOP_THREAD);
	kir_append(p, m.k->body, bl);
	kir_append(p, bl->body, m.tl);
	return m;
}

static Program *
mmar_end(const MmarProg *m, KNode *mmar, int mix, int rd)
{
	Program *p = m->p;
	KNode *b = m->tl->body, *th = kir_ref(p, m->k, m->tv);
	kir_append(p, b, kir_mma_zero(p, 0));
	kir_append(p, b, mmar);
	if (mix)
		kir_append(p, b, kir_mma(p, 0, m->cs, kir_i64(p, 0), m->cs, kir_i64(p, 0)));
	kir_append(p, b, kir_mma_store_rows(p, 0, m->cs, kir_i64(p, 0), 8));
	kir_append(p, b, kir_barrier(p));
	KNode *st = kir_load(p, m->k, m->cs, th);
	if (rd >= 0)
		st = kir_bin(p, KB_ADD, st, kir_ref(p, m->k, rd));
	kir_append(p, b, kir_store(p, m->o, kir_ref(p, m->k, m->tv), st));
	return p;
}

/* A register-fragment MMA (K_mmar): A's eight values a lane holds are f32 variables loaded
 * from x (pair stride 2, row stride 1), B's eight the next ones (k8: tf32, 4 and 4 of them
 * used); mix: a wmma K_mma after it (refused) */
static Program *
prog_mmar(int precision, int mix, int k8)
{
	MmarProg m = mmar_begin(precision, DT_F32);
	Program *p = m.p;
	int v0 = 0;
	for (int i = 0; i < 16; i++) {
		int v = kir_var(p, m.k, KT_F32, "f");
		v0 = i ? v0 : v;
		KNode *at = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, m.k, m.tv),
		                                       kir_i64(p, 16)),
		                    kir_i64(p, i));
		kir_append(p, m.tl->body, kir_let(p, m.k, v, kir_load(p, m.k, m.x, at)));
	}
	return mmar_end(&m, kir_mmar(p, 0, v0, 2, 1, v0 + 8, k8), mix, -1);
}

/* K_mmar on word variables (cr_word_vars): A from one raw bf16 vload of x (vars a0..a7), B from
 * another (b0..b7); form 1: a0 is also stored (a read: the A variables are f32, widened, and
 * packed by segc_pk2; B's are still words); form 2: A from two vloads (a0..a15) with pair
 * stride 3, so that a pair's halves differ: (a0, a3), (a1, a4), (a6, a9), (a7, a10) */
static Program *
prog_mmar_words(int form)
{
	MmarProg m = mmar_begin(KP_BF16, DT_BF16);
	Program *p = m.p;
	int a0 = 0, b0 = 0, na = form == 2 ? 16 : 8;
	for (int i = 0; i < na + 8; i++) {
		int v = kir_var(p, m.k, KT_F32, i < na ? "a" : "b");
		a0 = i ? a0 : v;
		b0 = i == na ? v : b0;
	}
	KNode *th16 = kir_bin(p, KB_MUL, kir_ref(p, m.k, m.tv), kir_i64(p, 16));
	kir_append(p, m.tl->body, kir_vload(p, a0, 8, m.x, th16, NULL));
	if (form == 2)
		kir_append(p, m.tl->body, kir_vload(p, a0 + 8, 8, m.x, kir_ref(p, m.k, m.tv), NULL));
	kir_append(p, m.tl->body,
	           kir_vload(p, b0, 8, m.x, kir_bin(p, KB_ADD, th16, kir_i64(p, 8)), NULL));
	return mmar_end(&m, kir_mmar(p, 0, a0, form == 2 ? 3 : 2, 1, b0, 0), 0,
	                form == 1 ? a0 : -1);
}

/* A block-mapped warp sum: 2 blocks of 32 threads, s = x[blk*32 + th]; s += shfl(s, m) for
 * m = 16 .. 1; thread 0 stores s.  form 1: the shuffle inside the add (refused); form 2: the
 * same in a grid-stride loop (refused) */
static Program *
prog_shfl(int form)
{
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "k0_reduce_sum", loc_none);
	int x = addbuf(p, k, 1, 0, DT_F32, 64, 0);
	int o = addbuf(p, k, 2, 0, DT_F32, 2, 1);
	int bv = kir_var(p, k, KT_I64, "blk"), tv = kir_var(p, k, KT_I64, "th");
	int sv = kir_var(p, k, KT_F32, "s");
	KNode *bl = kir_loop(p, bv, kir_i64(p, 0), kir_i64(p, 2), 1,
	                     form == 2 ? LOOP_PARALLEL : LOOP_BLOCK);
	KNode *tl = kir_loop(p, tv, kir_i64(p, 0), kir_i64(p, 32), 1,
	                     form == 2 ? LOOP_SERIAL : LOOP_THREAD);
	kir_append(p, k->body, bl);
	kir_append(p, bl->body, tl);
	KNode *g = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, bv), kir_i64(p, 32)),
	                   kir_ref(p, k, tv));
	kir_append(p, tl->body, kir_let(p, k, sv, kir_load(p, k, x, g)));
	for (int m = 16; m >= 1; m /= 2) {
		KNode *sh = kir_shfl(p, kir_ref(p, k, sv), m);
		if (form == 1) {
			kir_append(p, tl->body,
			           kir_assign(p, sv, kir_bin(p, KB_ADD, kir_ref(p, k, sv), sh)));
			continue;
		}
		int t = kir_var(p, k, KT_F32, "o");
		kir_append(p, tl->body, kir_let(p, k, t, sh));
		kir_append(p, tl->body,
		           kir_assign(p, sv, kir_bin(p, KB_ADD, kir_ref(p, k, sv), kir_ref(p, k, t))));
	}
	KNode *iff = kir_if(p, kir_bin(p, KB_EQ, kir_ref(p, k, tv), kir_i64(p, 0)));
	kir_append(p, tl->body, iff);
	kir_append(p, iff->body, kir_store(p, o, kir_ref(p, k, bv), kir_ref(p, k, sv)));
	return p;
}

/* A block-mapped vector store (K_vstore): 2 blocks of 32 threads, each loads 8 (tile f32: 4)
 * consecutive x elements into r0.. (0 past 400: zero, then an if), stores them to the shared
 * tile T at th*8 by one vstore, barrier, out[blk*256 + th] = T[th].  xdt: x's dtype (bf16:
 * the r's are bf16 pass-through variables); tdt: the tile's; mixed: r0 is also read by an
 * add (then none of the vstore's variables is pass-through). */
/* 32 threads stage vn elements each of x (dtype xdt; 0 past 400) into the shared tile (tdt) by
 * one vstore, then each stores one tile element (+ its first register where mixed); vl: the
 * registers come from one bf16 vload (predicated: the block's first half) instead */
static Program *
prog_vstore(int xdt, int tdt, int mixed, int vl)
{
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "k0_conv3d", loc_none);
	int vn = tdt == DT_BF16 ? 8 : 4;
	p->precision = KP_BF16;
	int x = addbuf(p, k, 1, 0, xdt, 512, 0);
	int o = addbuf(p, k, 2, 0, DT_F32, 512, 1);
	int ts = kir_shared(p, k, tdt, 32 * 8, 8, "T");
	int bv = kir_var(p, k, KT_I64, "blk"), tv = kir_var(p, k, KT_I64, "th");
	int r0 = kir_var(p, k, KT_F32, "r");
	for (int i = 1; i < vn; i++)
		kir_var(p, k, KT_F32, "r");
	KNode *bl = kir_loop(p, bv, kir_i64(p, 0), kir_i64(p, 2), 1, LOOP_BLOCK);
	KNode *tl = kir_loop(p, tv, kir_i64(p, 0), kir_i64(p, 32), 1, LOOP_THREAD);
	kir_append(p, k->body, bl);
	kir_append(p, bl->body, tl);
	KNode *g = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, bv), kir_i64(p, 256)),
	                   kir_bin(p, KB_MUL, kir_ref(p, k, tv), kir_i64(p, 8)));
	if (vl)
		kir_append(p, tl->body, kir_vload(p, r0, vn, x, g,
		                                  kir_bin(p, KB_LT, g, kir_i64(p, 256))));
	for (int i = 0; !vl && i < vn; i++) {
		KNode *gi = kir_bin(p, KB_ADD, g, kir_i64(p, i));
		kir_append(p, tl->body, kir_let(p, k, r0 + i, kir_f32(p, 0)));
		KNode *iff = kir_if(p, kir_bin(p, KB_LT, gi, kir_i64(p, 400)));
		kir_append(p, tl->body, iff);
		kir_append(p, iff->body, kir_assign(p, r0 + i, kir_load(p, k, x, gi)));
	}
	KNode *th8 = kir_bin(p, KB_MUL, kir_ref(p, k, tv), kir_i64(p, 8));
	kir_append(p, tl->body, kir_vstore(p, ts, th8, r0, vn, 1));
	kir_append(p, tl->body, kir_barrier(p));
	KNode *v = kir_load(p, k, ts, kir_ref(p, k, tv));
	if (mixed)
		v = kir_bin(p, KB_ADD, v, kir_ref(p, k, r0));
	KNode *oi = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, bv), kir_i64(p, 256)),
	                    kir_ref(p, k, tv));
	kir_append(p, tl->body, kir_store(p, o, oi, v));
	return p;
}

/* run cg_emit_cuda; the --emit=cuda text into *src (malloc'd) */
/* A streaming loop for the vectors (codegen/cuda_vec.c): p in [0, cnt), c = p / S,
 * out[p] = x[ix] * scale[c] with x and out of dtype dt, out at byte offset off, and ix by form:
 * 0 p; 1 c * S + p % S (the same, recomposed); 2 p / 2 (a gather); 3 p * 1 + S; and with x[p]
 * not a let's value: 4 in the store's value, 5 under a select (c > 0 ? x[p] : 0) */
static Program *
prog_vec(int dt, int64_t S, int64_t cnt, int64_t off, int form)
{
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "k0_sub", loc_none);
	int x = addbuf(p, k, 1, 0, dt, cnt + S, 0);
	int sc = addbuf(p, k, 2, 0, DT_F32, cnt / S + 1, 0);
	int o = addbuf(p, k, 3, off, dt, cnt, 1);
	int pv = kir_var(p, k, KT_I64, "p"), cv = kir_var(p, k, KT_I64, "c");
	int xv = kir_var(p, k, KT_F32, "x");
	KNode *l = kir_loop(p, pv, kir_i64(p, 0), kir_i64(p, cnt), 1, LOOP_PARALLEL);
	kir_append(p, k->body, l);
	KNode *pr = kir_ref(p, k, pv), *ix = pr;
	kir_append(p, l->body, kir_let(p, k, cv, kir_bin(p, KB_DIV, pr, kir_i64(p, S))));
	if (form == 1)
		ix = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, kir_ref(p, k, cv), kir_i64(p, S)),
		             kir_bin(p, KB_REM, pr, kir_i64(p, S)));
	else if (form == 2)
		ix = kir_bin(p, KB_DIV, pr, kir_i64(p, 2));
	else if (form == 3)
		ix = kir_bin(p, KB_ADD, kir_bin(p, KB_MUL, pr, kir_i64(p, 1)), kir_i64(p, S));
	KNode *xl = kir_load(p, k, x, ix);
	if (form == 5)
		xl = kir_select(p, kir_bin(p, KB_GT, kir_ref(p, k, cv), kir_i64(p, 0)), xl,
		                kir_f32(p, 0));
	if (form < 4)
		kir_append(p, l->body, kir_let(p, k, xv, xl));
	KNode *v = kir_bin(p, KB_MUL, form < 4 ? kir_ref(p, k, xv) : xl,
	                   kir_load(p, k, sc, kir_ref(p, k, cv)));
	kir_append(p, l->body, kir_store(p, o, pr, v));
	return p;
}

static int
emit(Program *p, const char *target, char **src, Diag *d, const char *obj)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	CgOptions o = {.target = target, .emit_cuda = f};
	diag_init(d, stderr);
	int rc = cg_emit_cuda(p, &o, obj, d);
	fclose(f);
	*src = buf;
	return rc;
}

/* p must be refused for cuda:sm_90 with a first diagnostic holding words; frees p */
static void
refused(Program *p, const char *words, const char *what)
{
	char *src;
	Diag d;
	int rc = emit(p, "cuda:sm_90", &src, &d, NULL);
	CHECK(rc < 0 && strstr(d.first, words), "%s: %s", what, d.first);
	free(src);
	freeprog(p);
}

/* codegen/cuda_range.c: a parallel loop i in [0, 5000000) with lets q = i / 1000, r = i % 7,
 * big = i * 1000000 (overflows 32 bits), s = q - 10 (may be negative), and a variable
 * assigned twice: with SEGC_CUDA_DIV32=1, 32 bits exactly where the dividend lies in
 * [0, 2^32); without it, never */
static void
test_ranges(void)
{
	setenv("SEGC_CUDA_DIV32", "1", 1);
	Program *p = newprog();
	Kernel *k = kir_kernel(p, "k0", loc_none);
	int i = kir_var(p, k, KT_I64, "i"), q = kir_var(p, k, KT_I64, "q");
	int big = kir_var(p, k, KT_I64, "big"), s = kir_var(p, k, KT_I64, "s");
	int twice = kir_var(p, k, KT_I64, "w");
	KNode *lp = kir_loop(p, i, kir_i64(p, 0), kir_i64(p, 5000000), 1, LOOP_PARALLEL);
	kir_append(p, k->body, lp);
	KNode *iv = kir_ref(p, k, i);
	KNode *lq = kir_let(p, k, q, kir_bin(p, KB_DIV, iv, kir_i64(p, 1000)));
	KNode *lb = kir_let(p, k, big, kir_bin(p, KB_MUL, iv, kir_i64(p, 1000000)));
	KNode *ls = kir_let(p, k, s, kir_bin(p, KB_SUB, kir_ref(p, k, q), kir_i64(p, 10)));
	KNode *lw = kir_let(p, k, twice, kir_i64(p, 3));
	KNode *aw = kir_assign(p, twice, kir_bin(p, KB_MUL, iv, kir_i64(p, 1 << 20)));
	KNode *stmts[] = {lq, lb, ls, lw, aw};
	for (int j = 0; j < 5; j++)
		kir_append(p, lp->body, stmts[j]);
	CudaRanges r;
	cr_begin(&r, p->arena, k, lp);
	cr_set(&r, i, cr_loop(&r, lp));
	for (int j = 0; j < 4; j++)
		cr_set(&r, stmts[j]->var, cr_expr(&r, stmts[j]->a));
	CRange rq = cr_expr(&r, kir_ref(p, k, q));
	CHECK(rq.lo == 0 && rq.hi == 5000, "i / 1000: [%lld, %lld]", (long long)rq.lo,
	      (long long)rq.hi);
	KNode *c7 = kir_i64(p, 7);
	CHECK(cr_u32(&r, kir_bin(p, KB_REM, iv, c7)), "i %% 7 in 32 bits");
	CRange r7 = cr_expr(&r, kir_bin(p, KB_REM, iv, c7));
	CHECK(r7.lo == 0 && r7.hi == 6, "i %% 7: [%lld, %lld]", (long long)r7.lo, (long long)r7.hi);
	CHECK(!cr_u32(&r, kir_bin(p, KB_DIV, kir_ref(p, k, big), c7)), "i * 10^6 may exceed 2^32");
	CHECK(!cr_u32(&r, kir_bin(p, KB_DIV, kir_ref(p, k, s), c7)), "q - 10 may be negative");
	CHECK(!cr_u32(&r, kir_bin(p, KB_DIV, kir_ref(p, k, twice), c7)), "an assigned variable");
	CHECK(!cr_u32(&r, kir_bin(p, KB_DIV, iv, kir_ref(p, k, q))), "a variable divisor");
	/* the default (SEGC_CUDA_DIV32 unset): every division stays 64-bit */
	unsetenv("SEGC_CUDA_DIV32");
	cr_begin(&r, p->arena, k, lp);
	cr_set(&r, i, cr_loop(&r, lp));
	CHECK(!cr_u32(&r, kir_bin(p, KB_REM, iv, c7)), "i %% 7 in 64 bits by default");
	freeprog(p);
}

int
main(void)
{
	char obj[] = "/tmp/segc_test_emit_cuda_XXXXXX";
	int fd = mkstemp(obj);
	Diag d;
	char *src;
	close(fd);

	Program *p = prog_elt(LOOP_PARALLEL);
	int rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "extern \"C\" __global__ void __launch_bounds__(128)\nk0_t0("),
	      "kernel signature:\n%s", src);
	CHECK(strstr(src, "k0_t0(const float *b0, float *b1, long long n)"), "params:\n%s", src);
	CHECK(strstr(src, "t += (long long)gridDim.x * blockDim.x"), "grid-stride loop");
	CHECK(strstr(src, "__ldg(&b0[v0_i])"), "read-only load:\n%s", src);
	CHECK(strstr(src, "expf("), "expf");
	CHECK(strstr(src, "segc_min("), "min");
	CHECK(strstr(src, "launch k0_t0 100 1 128 2 1:0 2:64 k=0\n"), "schedule:\n%s", src);
	CHECK(strstr(src, "target cuda:sm_90\n"), "manifest target");
	if (rc == 0)
		printf("NVRTC compiled the program for sm_90\n");
	else
		CHECK(strstr(d.first, "cannot load NVRTC"), "unexpected error: %s", d.first);
	free(src);
	freeprog(p);

	/* lanes (ilp_lanes): by default 2 in elementwise kernels (4 where every buffer written is
	 * 16-bit, SEGC_CUDA_ILP16 sets those), none in the other classes; SEGC_CUDA_ILP sets every
	 * class's.  lanes: the count expected, 0 none */
	static const struct {
		const char *name, *ilp, *ilp16;
		int bf16, lanes;
	} lc[] = {{"k3_add", NULL, NULL, 0, 2},     {"k3_moments", NULL, NULL, 0, 0},
	          {"k3_upsample", NULL, NULL, 0, 0}, {"k3_add", "1", NULL, 0, 0},
	          {"k3_moments", "4", NULL, 0, 4},   {"k3_add", "x", NULL, 0, 2},
	          {"k3_moments", "", NULL, 0, 0},    {"k3_add", NULL, NULL, 1, 4},
	          {"k3_add", NULL, "8", 1, 8},       {"k3_add", NULL, "2", 1, 2},
	          {"k3_add", NULL, "8", 0, 2},       {"k3_moments", NULL, "8", 1, 0},
	          {"k3_add", "1", "8", 1, 0}};
	setenv("SEGC_CUDA_ILP_MIN", "1", 1);
	setenv("SEGC_CUDA_VEC", "0", 1); /* (the vectors below) */
	for (size_t i = 0; i < sizeof lc / sizeof lc[0]; i++) {
		if (lc[i].ilp)
			setenv("SEGC_CUDA_ILP", lc[i].ilp, 1);
		else
			unsetenv("SEGC_CUDA_ILP");
		if (lc[i].ilp16)
			setenv("SEGC_CUDA_ILP16", lc[i].ilp16, 1);
		else
			unsetenv("SEGC_CUDA_ILP16");
		p = prog_elt_named(LOOP_PARALLEL, lc[i].name);
		if (lc[i].bf16)
			p->kernels[0].bufs[1].dtype = DT_BF16;
		emit(p, "cuda:sm_90", &src, &d, obj);
		char arr[32];
		int got = 0;
		for (int l = 2; l <= 8 && !got; l++) {
			snprintf(arr, sizeof arr, "v0_i[%d]", l);
			got = strstr(src, arr) ? l : 0;
		}
		CHECK(got == lc[i].lanes, "%s%s, SEGC_CUDA_ILP=%s, SEGC_CUDA_ILP16=%s: %d lanes, "
		      "expected %d:\n%s", lc[i].name, lc[i].bf16 ? " (bf16 out)" : "",
		      lc[i].ilp ? lc[i].ilp : "(unset)", lc[i].ilp16 ? lc[i].ilp16 : "(unset)", got,
		      lc[i].lanes, src);
		free(src);
		freeprog(p);
	}
	unsetenv("SEGC_CUDA_ILP");
	unsetenv("SEGC_CUDA_ILP16");
	unsetenv("SEGC_CUDA_VEC");

	/* vectors (codegen/cuda_vec.c): width 8 for bf16 (16-byte loads and stores), 4 for f32,
	 * the per-channel scale loaded once from lane 0's c, a load inside the store's value
	 * hoisted; none for a gather, a count or a channel size the width does not divide (bf16 at
	 * 12: 8 does not divide it and bf16 takes no 4-wide vectors), a misaligned buffer, an
	 * index off by a non-multiple of V, a load under a select or SEGC_CUDA_VEC=0; with
	 * SEGC_CUDA_VEC=2 the gather and the select's load per lane.
	 * width: expected, 0 none */
	static const struct {
		int dt;
		int64_t S, cnt, off;
		int form, width;
		const char *env;
	} vc[] = {{DT_BF16, 64, 512, 0, 0, 8, NULL}, {DT_F32, 64, 512, 0, 0, 4, NULL},
	          {DT_BF16, 64, 512, 0, 1, 8, NULL}, {DT_F32, 12, 96, 0, 1, 4, NULL},
	          {DT_BF16, 12, 96, 0, 0, 0, NULL},  {DT_F32, 64, 512, 0, 2, 0, NULL},
	          {DT_BF16, 64, 500, 0, 0, 0, NULL}, {DT_F32, 64, 512, 8, 0, 0, NULL},
	          {DT_F32, 64, 512, 0, 3, 4, NULL},  {DT_F32, 6, 96, 0, 3, 0, NULL},
	          {DT_BF16, 64, 512, 0, 0, 0, "0"},  {DT_BF16, 64, 512, 0, 4, 8, NULL},
	          {DT_F32, 64, 512, 0, 5, 0, NULL},  {DT_F32, 64, 512, 0, 2, 4, "2"},
	          {DT_F32, 64, 512, 0, 5, 4, "2"}};
	for (size_t i = 0; i < sizeof vc / sizeof vc[0]; i++) {
		if (vc[i].env)
			setenv("SEGC_CUDA_VEC", vc[i].env, 1);
		else
			unsetenv("SEGC_CUDA_VEC");
		p = prog_vec(vc[i].dt, vc[i].S, vc[i].cnt, vc[i].off, vc[i].form);
		emit(p, "cuda:sm_90", &src, &d, obj);
		int got = strstr(src, "t0 < n / 8;") ? 8 : strstr(src, "t0 < n / 4;") ? 4 : 0;
		char want[160];
		CHECK(got == vc[i].width, "vectors %zu: width %d, expected %d:\n%s", i, got,
		      vc[i].width, src);
		if (got && vc[i].form == 0) {
			snprintf(want, sizeof want, "segc_vld<%d, 1>(b0 + (v0_p[0]), v2_x);", got);
			CHECK(strstr(src, want), "vectors %zu: no %s:\n%s", i, want, src);
			snprintf(want, sizeof want, "segc_vst<%d>(b2 + (v0_p[0]), vs);", got);
			CHECK(strstr(src, want), "vectors %zu: no %s:\n%s", i, want, src);
			snprintf(want, sizeof want, "v1_c = (v0_p[0] / %lldLL);", (long long)vc[i].S);
			CHECK(strstr(src, want) && strstr(src, "\tlong long v1_c;\n"),
			      "vectors %zu: c not uniform:\n%s", i, src);
			snprintf(want, sizeof want, "launch k0_sub_t0 %lld 1 128 3 1:0 2:0 3:0 k=0\n",
			         (long long)vc[i].cnt);
			CHECK(strstr(src, want), "vectors %zu: schedule:\n%s", i, src);
		}
		if (got && vc[i].form == 2) /* per lane */
			CHECK(strstr(src, "v2_x[u] = (__ldg(&b0[(v0_p[u] / 2LL)]));"),
			      "vectors %zu: gather per lane:\n%s", i, src);
		if (got && vc[i].form == 4) /* the load before the statement, a temporary */
			CHECK(strstr(src, "float vl0[8];") &&
			          strstr(src, "segc_vld<8, 1>(b0 + (v0_p[0]), vl0);") &&
			          strstr(src, "vs[u] = (vl0[u] * (__ldg(&b1[v1_c])));"),
			      "vectors %zu: hoisted load:\n%s", i, src);
		free(src);
		freeprog(p);
	}
	unsetenv("SEGC_CUDA_VEC");
	unsetenv("SEGC_CUDA_ILP_MIN");

	p = prog_elt(LOOP_SERIAL);
	emit(p, "cuda:sm_80", &src, &d, obj);
	CHECK(strstr(src, "if (blockIdx.x != 0 || threadIdx.x != 0)"), "serial loop: one thread");
	CHECK(strstr(src, "launch k0_t0 100 1 1 2"), "serial schedule:\n%s", src);
	free(src);
	freeprog(p);

	p = prog_elt(LOOP_BLOCK);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(rc < 0 && strstr(d.first, "not supported by the cuda backend"), "block loop: %s",
	      d.first);
	free(src);
	freeprog(p);

	/* block-mapped kernels: shared tiles, barriers, tensor-core MMA */
	p = prog_mma(KP_TF32, 0, 0);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src,
	             "static __device__ void\nk0_t0_body(const float *b0, float *b1, long long n)"),
	      "block body:\n%s", src);
	CHECK(strstr(src, "SEGC_SHARED __align__(32) float b2[384];"), "shared tile:\n%s", src);
	CHECK(strstr(src, "segc_acc_t segc_acc[1];"), "accumulators");
	CHECK(strstr(src, "for (long long t = blockIdx.x; t < n; t += gridDim.x)"), "block loop");
	CHECK(strstr(src, "v1_th = (long long)threadIdx.x;"), "thread index:\n%s", src);
	CHECK(strstr(src, "__syncthreads();"), "barrier");
	CHECK(strstr(src, "segc_mma_zero(segc_acc[0]);"), "mma_zero");
	CHECK(strstr(src, "segc_mma_tf32(segc_acc[0], b2 + (0LL), 24, b3 + (0LL), 24);"),
	      "mma:\n%s", src);
	CHECK(strstr(src, "segc_mma_store(b4 + (0LL), segc_acc[0], 24);"), "mma_store");
	CHECK(strstr(src, "#define SEGC_KF 8\n"), "tf32 fragments");
	CHECK(strstr(src, "SEGC_BLOCK_RUN(64, k0_t0_body, (b0, b1, n));"), "wrapper:\n%s", src);
	CHECK(strstr(src, "launch k0_t0 4 4 64 2 1:0 2:0 k=0\n"), "block schedule:\n%s", src);
	if (rc == 0)
		printf("NVRTC compiled the tensor-core program for sm_90\n");
	else
		CHECK(strstr(d.first, "cannot load NVRTC"), "unexpected error: %s", d.first);
	free(src);
	freeprog(p);

	/* a run of MMAs: each distinct A / B tile loaded into a fragment once */
	p = prog_mma(KP_TF32, 1, 0);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "segc_load_frag(segc_fa0, b2 + (0LL), 24);"), "A fragment:\n%s", src);
	CHECK(!strstr(src, "segc_fa1"), "one A fragment:\n%s", src);
	CHECK(strstr(src, "segc_load_frag(segc_fb1, b3 + (8LL), 24);"), "B fragments:\n%s", src);
	CHECK(!strstr(src, "segc_fb2") && !strstr(src, "segc_mma_tf32(segc_acc["), "run:\n%s", src);
	CHECK(strstr(src, "segc_mma_ab(segc_acc[0], segc_fa0, segc_fb0);\n") &&
	          strstr(src, "segc_mma_ab(segc_acc[1], segc_fa0, segc_fb1);\n") &&
	          strstr(src, "segc_mma_ab(segc_acc[0], segc_fa0, segc_fb1);\n"),
	      "run MMAs:\n%s", src);
	CHECK(strstr(src, "segc_acc_t segc_acc[2];"), "two accumulators");
	if (rc == 0)
		printf("NVRTC compiled the MMA run for sm_90\n");
	else
		CHECK(strstr(d.first, "cannot load NVRTC"), "unexpected error: %s", d.first);
	free(src);
	freeprog(p);

	/* C over A: the shared tiles as one pool, offsets from sizeof (the emulation's bf16) */
	p = prog_mma(KP_TF32, 2, 4);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "SEGC_SHARED __align__(128) unsigned char segc_smem[SEGC_MAX("),
	      "pool:\n%s", src);
	CHECK(strstr(src, "float *const b2 = (float *)(segc_smem + 0);") &&
	          strstr(src, "float *const b4 = (float *)(segc_smem + 0);"),
	      "C over A:\n%s", src);
	CHECK(strstr(src, "float *const b3 = (float *)(segc_smem + SEGC_AL128(0 + sizeof(float) * "
	                  "384));"),
	      "B after A:\n%s", src);
	CHECK(!strstr(src, "SEGC_SHARED __align__(32)"), "no separate tiles:\n%s", src);
	CHECK(strstr(src, "segc_cp_async<4>(b3 + (64LL), ((v1_th < 32LL)) ? b0 + (") &&
	          strstr(src, "segc_cp_wait();"),
	      "cp_async:\n%s", src);
	if (rc == 0)
		printf("NVRTC compiled the shared pool for sm_90\n");
	else
		CHECK(strstr(d.first, "cannot load NVRTC"), "unexpected error: %s", d.first);
	free(src);
	freeprog(p);

	p = prog_mma(KP_TF32, 2, 3); /* 12 bytes: no cp.async form */
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(rc < 0 && strstr(d.first, "cp_async other than 4, 8 or 16 bytes"), "cp_async 12: %s",
	      d.first);
	free(src);
	freeprog(p);

	/* a row-major A tile (KBuf.arow): loaded as segc_frag_ar_t, also by a lone MMA */
	p = prog_mma(KP_BF16, 0, 0);
	p->kernels[0].bufs[2].arow = 1;
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "segc_frag_ar_t segc_fa0;") &&
	          strstr(src, "segc_load_frag(segc_fa0, b2 + (0LL), 24);") &&
	          strstr(src, "segc_mma_ab(segc_acc[0], segc_fa0, segc_fb0);") &&
	          !strstr(src, "segc_mma_bf16(segc_acc[0]"),
	      "row-major A:\n%s", src);
	CHECK(strstr(src, "wmma::row_major> segc_frag_ar_t;"), "row-major fragment type");
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "row-major A: %s", d.first);
	free(src);
	freeprog(p);

	p = prog_mma(KP_BF16, 0, 0);
	rc = emit(p, "cuda:sm_80", &src, &d, obj);
	CHECK(strstr(src, "SEGC_SHARED __align__(32) __nv_bfloat16 b2[384];"), "bf16 tile");
	CHECK(strstr(src, "b2[v1_th] = __float2bfloat16("), "bf16 store:\n%s", src);
	CHECK(strstr(src, "segc_mma_bf16(segc_acc[0]"), "bf16 mma");
	CHECK(strstr(src, "#define SEGC_KF 16\n"), "bf16 fragments");
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "bf16: %s", d.first);
	free(src);
	freeprog(p);

	/* register-fragment MMAs: register accumulators, pairs packed, rows on the store */
	p = prog_mmar(KP_BF16, 0, 0);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "float segc_racc[1][8];") && !strstr(src, "segc_acc_t segc_acc"),
	      "register accumulators:\n%s", src);
	CHECK(strstr(src, "segc_mma_zero(segc_racc[0]);"), "mmar zero");
	CHECK(strstr(src, "segc_mmar(segc_racc[0], segc_pk2(v2_f, v4_f), segc_pk2(v3_f, v5_f), "
	                  "segc_pk2(v6_f, v8_f), segc_pk2(v7_f, v9_f), segc_pk2(v10_f, v11_f)"),
	      "mmar:\n%s", src);
	CHECK(strstr(src, "segc_mma_store(b2 + (0LL), segc_racc[0], 24, 8);"), "mmar store");
	CHECK(strstr(src, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), "mma.sync");
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "mmar: %s", d.first);
	free(src);
	freeprog(p);
	/* word variables: one PRMT a register (A's registers 1 and 3 with their operands
	 * swapped), B's words as they are, a predicated 16-byte load */
	p = prog_mmar_words(0);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "\tsegc_w2 v2_a;") && strstr(src, "\tsegc_w2 v17_b;"), "words:\n%s", src);
	CHECK(strstr(src, "segc_vload8w<1>(b0 + ((v0_th * 16LL)), true, v2_a, v3_a, v4_a, v5_a, "
	                  "v6_a, v7_a, v8_a, v9_a);"), "vload8w:\n%s", src);
	CHECK(strstr(src, "segc_mmar(segc_racc[0], segc_pkw<0x5410>(v2_a, v4_a), "
	                  "segc_pkw<0x3276>(v5_a, v3_a), segc_pkw<0x5410>(v6_a, v8_a), "
	                  "segc_pkw<0x3276>(v9_a, v7_a), segc_w2v(v10_b), segc_w2v(v12_b), "
	                  "segc_w2v(v14_b), segc_w2v(v16_b));"), "words' mmar:\n%s", src);
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "words: %s", d.first);
	free(src);
	freeprog(p);
	p = prog_mmar_words(1);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "\tfloat v2_a;") && strstr(src, "\tsegc_w2 v10_b;") &&
	          strstr(src, "segc_vload8<1>(b0 + ((v0_th * 16LL)), true, v2_a,") &&
	          strstr(src, "segc_mmar(segc_racc[0], segc_pk2(v2_a, v4_a), "
	                      "segc_pk2(v3_a, v5_a), segc_pk2(v6_a, v8_a), segc_pk2(v7_a, v9_a), "
	                      "segc_w2v(v10_b),"),
	      "a read variable's vload is not words:\n%s", src);
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "words, read: %s", d.first);
	free(src);
	freeprog(p);
	p = prog_mmar_words(2); /* halves (0, 1) and (1, 0): selectors 0x7610 and, swapped, 0x1076 */
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "segc_mmar(segc_racc[0], segc_pkw<0x7610>(v2_a, v5_a), "
	                  "segc_pkw<0x1076>(v6_a, v3_a), segc_pkw<0x7610>(v8_a, v11_a), "
	                  "segc_pkw<0x1076>(v12_a, v9_a), segc_w2v(v18_b),"),
	      "words of different halves:\n%s", src);
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "words, halves: %s", d.first);
	free(src);
	freeprog(p);
	refused(prog_mmar(KP_TF32, 0, 0), "register-fragment MMAs of another precision", "tf32 mmar");
	refused(prog_mmar(KP_BF16, 0, 1), "register-fragment MMAs of another precision", "bf16 k8");
	/* tf32 (k8): two m16n8k8, A's rows g, g + 8 and k t, t + 4, each operand rounded */
	p = prog_mmar(KP_TF32, 0, 1);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "segc_mmar8(segc_racc[0], segc_tf32(v2_f), segc_tf32(v3_f), "
	                  "segc_tf32(v4_f), segc_tf32(v5_f), __float_as_uint(v10_f), "
	                  "__float_as_uint(v11_f), __float_as_uint(v12_f), __float_as_uint(v13_f));"),
	      "mmar8:\n%s", src);
	CHECK(strstr(src, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"), "m16n8k8");
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "mmar8: %s", d.first);
	free(src);
	freeprog(p);
	refused(prog_mmar(KP_BF16, 1, 0), "wmma and register-fragment MMAs mixed", "mixed");

	p = prog_mma(KP_FP32, 0, 0); /* mma needs tf32 or bf16 */
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(rc < 0 && strstr(d.first, "mma tiles of the wrong precision"), "fp32 mma: %s",
	      d.first);
	free(src);
	freeprog(p);

	p = prog_elt(LOOP_PARALLEL);
	kir_append(p, p->kernels[0].body->kids[0]->body, kir_barrier(p));
	emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "/* barrier */") && !strstr(src, "__syncthreads"), "grid-stride barrier");
	free(src);
	kir_append(p, p->kernels[0].body->kids[0]->body, kir_mma_zero(p, 0));
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(rc < 0 && strstr(d.first, "mma outside a block-mapped kernel"), "mma: %s", d.first);
	free(src);
	freeprog(p);

	/* warp shuffles: a let's value in a block-mapped kernel; elsewhere refused */
	p = prog_shfl(0);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "v3_o = segc_shfl_xor(v2_s, 16);") &&
	          strstr(src, "v7_o = segc_shfl_xor(v2_s, 1);"),
	      "shuffles:\n%s", src);
	CHECK(strstr(src, "__shfl_xor_sync(0xffffffffu, v, m)"), "shuffle helper");
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "shuffles: %s", d.first);
	free(src);
	freeprog(p);
	for (int form = 1; form <= 2; form++) {
		p = prog_shfl(form);
		rc = emit(p, "cuda:sm_90", &src, &d, obj);
		CHECK(rc < 0 && strstr(d.first, "a warp shuffle outside a let or assign of a "
		                                "block-mapped kernel"),
		      "shuffle form %d: %s", form, d.first);
		free(src);
		freeprog(p);
	}

	/* vector stores to shared tiles; bf16 pass-through variables (codegen/cuda_range.c) */
	p = prog_vstore(DT_BF16, DT_BF16, 0, 0);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "\t__nv_bfloat16 v2_r;") && strstr(src, "\t__nv_bfloat16 v9_r;") &&
	          strstr(src, "v2_r = segc_bf16_zero();") &&
	          strstr(src, "v2_r = (__ldg(&b0[") && !strstr(src, "__bfloat162float(__ldg") &&
	          strstr(src, "segc_vst8(b2 + ((v1_th * 8LL)), v2_r, v3_r, v4_r, v5_r, v6_r, v7_r, "
	                      "v8_r, v9_r);"),
	      "bf16 pass-through vstore:\n%s", src);
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "vstore bf16: %s", d.first);
	free(src);
	setenv("SEGC_CUDA_RAWBF16", "0", 1);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "\tfloat v2_r;") && strstr(src, "__bfloat162float(__ldg(&b0[") &&
	          strstr(src, "segc_vst8(b2"),
	      "SEGC_CUDA_RAWBF16=0:\n%s", src);
	unsetenv("SEGC_CUDA_RAWBF16");
	free(src);
	freeprog(p);
	for (int form = 0; form < 2; form++) { /* x f32; r0 read elsewhere: rounded pairs */
		p = form ? prog_vstore(DT_BF16, DT_BF16, 1, 0) : prog_vstore(DT_F32, DT_BF16, 0, 0);
		rc = emit(p, "cuda:sm_80", &src, &d, obj);
		CHECK(strstr(src, "\tfloat v2_r;") && strstr(src, "\tfloat v9_r;") &&
		          strstr(src, "v2_r = 0.0f;") && strstr(src, "segc_vst8(b2") &&
		          strstr(src, "__floats2bfloat162_rn(a, b)"),
		      "vstore form %d:\n%s", form, src);
		CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "vstore %d: %s", form, d.first);
		free(src);
		freeprog(p);
	}
	/* a bf16 vload's registers: raw where every use is a bf16 vstore (the row gather), else
	 * f32 (widened); the same helper either way */
	for (int mixed = 0; mixed < 2; mixed++) {
		p = prog_vstore(DT_BF16, DT_BF16, mixed, 1);
		rc = emit(p, "cuda:sm_90", &src, &d, obj);
		CHECK(strstr(src, mixed ? "\tfloat v2_r;" : "\t__nv_bfloat16 v2_r;") &&
		          strstr(src, "segc_vload8<1>(b0 + (((v0_blk * 256LL) + (v1_th * 8LL))), "
		                      "(((v0_blk * 256LL) + (v1_th * 8LL)) < 256LL), v2_r, v3_r, v4_r, "
		                      "v5_r, v6_r, v7_r, v8_r, v9_r);") &&
		          strstr(src, "segc_vst8(b2"),
		      "bf16 vload (mixed %d):\n%s", mixed, src);
		CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "vload %d: %s", mixed,
		      d.first);
		free(src);
		freeprog(p);
	}
	p = prog_vstore(DT_F32, DT_F32, 0, 0);
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(strstr(src, "segc_vst4(b2 + ((v1_th * 8LL)), v2_r, v3_r, v4_r, v5_r);"),
	      "f32 vstore:\n%s", src);
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "vstore f32: %s", d.first);
	free(src);
	p->kernels[0].bufs[2].dtype = DT_BF16; /* 4 bf16: 8 bytes */
	rc = emit(p, "cuda:sm_90", &src, &d, obj);
	CHECK(rc < 0 && strstr(d.first, "vstore other than 16 bytes"), "vstore of 8 bytes: %s",
	      d.first);
	free(src);
	freeprog(p);

	/* bf16 activations (memplan's act_bf16) in an elementwise kernel: converted on load,
	 * saturated on store (segc_f2bf), the bf16 prelude emitted */
	p = prog_elt(LOOP_PARALLEL);
	p->kernels[0].bufs[0].dtype = p->kernels[0].bufs[1].dtype = DT_BF16;
	rc = emit(p, "cuda:sm_80", &src, &d, obj);
	CHECK(strstr(src, "__bfloat162float(") && strstr(src, "] = segc_f2bf(") &&
	          strstr(src, "#include <cuda_bf16.h>"),
	      "bf16 activations:\n%s", src);
	CHECK(rc == 0 || strstr(d.first, "cannot load NVRTC"), "bf16 activations: %s", d.first);
	free(src);
	freeprog(p);

	p = prog_elt(LOOP_PARALLEL);
	rc = emit(p, "cuda:sm_75", &src, &d, obj);
	CHECK(rc < 0 && strstr(d.first, "expected cuda:sm_90 or cuda:sm_80"), "target: %s",
	      d.first);
	free(src);
	freeprog(p);

	test_ranges();
	unlink(obj);
	if (failures)
		fprintf(stderr, "test_emit_cuda: %d failures\n", failures);
	else
		printf("test_emit_cuda: ok\n");
	return failures != 0;
}
