/* tests/cuda/emu_shim.h -- lets g++ compile segc's generated CUDA C for the host, so that the
 * kernels can be checked on a machine without a GPU (tests/cuda/segc_cuda.py, mode emu).
 * Included before the generated source (g++ -include).  Threads are run one after another
 * by the caller, which sets blockIdx/threadIdx/blockDim/gridDim through segc_emu_set(): the
 * generated grid-stride kernels' iterations are independent, so any order gives the GPU's
 * result.
 *
 * Block-mapped kernels (docs/cuda.md: shared tiles, __syncthreads, tensor-core MMA) need all
 * threads of a block at once: their __global__ wraps the body in SEGC_BLOCK_RUN(T, body,
 * args).  Here, the call for thread 0 of a block runs the block's T threads as cooperative
 * fibers (ucontext) that switch at __syncthreads(), round robin (in thread order and in
 * reverse order by turns: a race shows whichever thread writes), so every thread reaches a
 * barrier before any passes it; the calls for the other threads return at once.  A barrier
 * not reached by every thread (divergence: a hang or undefined on a GPU) aborts.  Shared
 * arrays are statics (one block runs at a time).  The warp-level MMA helpers compute the
 * whole 16x16 tile in every thread (all lanes hold the same result; the GPU spreads it over
 * the lanes), with the precision's rounding of the inputs: tf32 = round to nearest (ties
 * away, as cvt.rna.tf32.f32) to 10 mantissa bits, bf16 = round to nearest even to 7 bits,
 * products exact and summed in f32.  cp.async copies (segc_cp_async) are queued per thread and
 * done at its segc_cp_wait, so reading a tile before the wait shows stale data here too.  A
 * warp shuffle (segc_shfl_xor) is two block barriers around the exchange: the generated
 * kernels shuffle where every thread of the block does (kir.def), and a thread whose partner
 * is at another shuffle (divergence) aborts. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define SEGC_EMU 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define SEGC_SHARED static

struct segc_emu_dim3 {
	unsigned x, y, z;
};
static segc_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

extern "C" void
segc_emu_set(unsigned block, unsigned thread, unsigned nblock, unsigned nthread)
{
	blockIdx.x = block;
	threadIdx.x = thread;
	gridDim.x = nblock;
	blockDim.x = nthread;
	blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
	gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;
}

template <typename T>
static inline T
__ldg(const T *p)
{
	return *p;
}

static inline float
__int_as_float(int i)
{
	float f;
	memcpy(&f, &i, sizeof f);
	return f;
}

/* ---- block-mapped kernels: the threads of one block as fibers ---- */

enum { SEGC_EMU_MAXT = 1024, SEGC_EMU_STACK = 128 * 1024 };
static ucontext_t segc_emu_main, segc_emu_fib[SEGC_EMU_MAXT];
static unsigned char segc_emu_done[SEGC_EMU_MAXT];
static unsigned segc_emu_cur;
static char *segc_emu_stacks;
static void (*segc_emu_call)(void *);
static void *segc_emu_arg;
/* warp shuffles (segc_shfl_xor): each thread's value and how many shuffles it has done */
static float segc_emu_shv[SEGC_EMU_MAXT];
static unsigned segc_emu_shn[SEGC_EMU_MAXT];

static void
segc_emu_entry(void)
{
	segc_emu_call(segc_emu_arg);
	segc_emu_done[segc_emu_cur] = 1; /* then uc_link: back to the scheduler */
}

static void
__syncthreads(void)
{
	swapcontext(&segc_emu_fib[segc_emu_cur], &segc_emu_main);
}

template <typename F>
static void
segc_emu_trampoline(void *f)
{
	(*(F *)f)();
}

static unsigned segc_emu_ncp_pending(unsigned t);

template <typename F>
static void
segc_emu_block(unsigned T, F f)
{
	if (threadIdx.x != 0)
		return;
	if (T > SEGC_EMU_MAXT || (segc_emu_call && segc_emu_arg)) {
		fprintf(stderr, "emu_shim: bad block of %u threads\n", T);
		abort();
	}
	if (!segc_emu_stacks && !(segc_emu_stacks = (char *)malloc((size_t)SEGC_EMU_MAXT *
	                                                           SEGC_EMU_STACK)))
		abort();
	unsigned saved = blockDim.x;
	segc_emu_call = segc_emu_trampoline<F>;
	segc_emu_arg = &f;
	blockDim.x = T;
	for (unsigned i = 0; i < T; i++) {
		getcontext(&segc_emu_fib[i]);
		segc_emu_fib[i].uc_stack.ss_sp = segc_emu_stacks + (size_t)i * SEGC_EMU_STACK;
		segc_emu_fib[i].uc_stack.ss_size = SEGC_EMU_STACK;
		segc_emu_fib[i].uc_link = &segc_emu_main;
		makecontext(&segc_emu_fib[i], segc_emu_entry, 0);
		segc_emu_done[i] = 0;
		segc_emu_shn[i] = 0;
	}
	for (unsigned left = T, round = 0; left; round++) {
		/* one round: every live thread runs to its next barrier or to its end, in thread
		 * order and in reverse order by turns, so a shared-memory race (a read of what
		 * another thread writes before the same barrier) reads the stale value whichever
		 * thread writes: a K loop's phases recur, so both orders meet each race */
		for (unsigned j = 0; j < T; j++) {
			unsigned i = round & 1 ? T - 1 - j : j;
			if (segc_emu_done[i])
				continue;
			segc_emu_cur = i;
			threadIdx.x = i;
			swapcontext(&segc_emu_main, &segc_emu_fib[i]);
		}
		unsigned d = 0;
		for (unsigned i = 0; i < T; i++)
			d += segc_emu_done[i];
		if (d != 0 && d != T) {
			fprintf(stderr, "emu_shim: divergent __syncthreads: %u of %u ended\n", d,
			        T);
			abort();
		}
		left = T - d;
	}
	for (unsigned i = 0; i < T; i++)
		if (segc_emu_ncp_pending(i)) {
			fprintf(stderr, "emu_shim: thread %u ended with cp_async not waited for\n", i);
			abort();
		}
	segc_emu_call = NULL;
	segc_emu_arg = NULL;
	blockDim.x = saved;
	threadIdx.x = 0;
}

#define SEGC_BLOCK_RUN(T, f, args) segc_emu_block(T, [&]() { f args; })

/* ---- bf16 and the tensor-core helpers (the generated source's prelude_mma, emulated) ---- */

#ifdef SEGC_EMU_EXACT
/* SEGC_EMU_EXACT (tests/cuda/segc_cuda.py, $SEGC_EMU_EXACT=1): no rounding to tf32/bf16, so
 * the tensor-core kernels' indexing can be checked against PyTorch at the fp32 tolerance */
struct __nv_bfloat16 {
	float f;
};

static inline __nv_bfloat16
__float2bfloat16(float f)
{
	__nv_bfloat16 b;
	b.f = f;
	return b;
}

static inline float
__bfloat162float(__nv_bfloat16 b)
{
	return b.f;
}

static inline float
segc_emu_tf32(float f)
{
	return f;
}
#else
struct __nv_bfloat16 {
	unsigned short x;
};

static inline __nv_bfloat16
__float2bfloat16(float f)
{
	uint32_t u;
	__nv_bfloat16 b;
	memcpy(&u, &f, 4);
	if (isnan(f))
		u = 0x7fc00000u;
	else
		u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
	b.x = (unsigned short)(u >> 16);
	return b;
}

static inline float
__bfloat162float(__nv_bfloat16 b)
{
	uint32_t u = (uint32_t)b.x << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline float
segc_emu_tf32(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	if (isfinite(f)) {
		u += 0x1000u; /* round to nearest, ties away from zero (on the magnitude) */
		u &= 0xffffe000u;
	}
	memcpy(&f, &u, 4);
	return f;
}
#endif

struct segc_acc_t {
	float v[256]; /* [m + 16 * n] */
};

/* wmma's loads and stores need 32-byte aligned addresses: checked */
static inline void
segc_emu_align32(const void *a, const char *what)
{
	if ((uintptr_t)a & 31) {
		fprintf(stderr, "emu_shim: %s at %p: not 32-byte aligned\n", what, a);
		abort();
	}
}

static inline void
segc_mma_zero(segc_acc_t &c)
{
	for (int i = 0; i < 256; i++)
		c.v[i] = 0.0f;
}

static inline void
segc_mma_tf32(segc_acc_t &c, const float *a, unsigned lda, const float *b, unsigned ldb)
{
	segc_emu_align32(a, "A tile"), segc_emu_align32(b, "B tile");
	for (int n = 0; n < 16; n++)
		for (int m = 0; m < 16; m++) {
			float s = c.v[m + 16 * n];
			for (int k = 0; k < 8; k++)
				s += segc_emu_tf32(a[m + k * lda]) * segc_emu_tf32(b[k + n * ldb]);
			c.v[m + 16 * n] = s;
		}
}

static inline void
segc_mma_bf16(segc_acc_t &c, const __nv_bfloat16 *a, unsigned lda, const __nv_bfloat16 *b,
              unsigned ldb)
{
	segc_emu_align32(a, "A tile"), segc_emu_align32(b, "B tile");
	for (int n = 0; n < 16; n++)
		for (int m = 0; m < 16; m++) {
			float s = c.v[m + 16 * n];
			for (int k = 0; k < 16; k++)
				s += __bfloat162float(a[m + k * lda]) *
				     __bfloat162float(b[k + n * ldb]);
			c.v[m + 16 * n] = s;
		}
}

/* fragments (emit_cuda.c's cuda_mma_run): the tile's values at load time, rounded like
 * segc_mma_tf32 / segc_mma_bf16, stored [fast + 16 * slow]: A (column-major a[m + k*lda]) as
 * [m + 16 k], B (column-major b[k + n*ldb]) as [k + 16 n]; kf: 8 (tf32) or 16 (bf16) */
struct segc_frag_a_t {
	float v[256];
	int kf;
};
struct segc_frag_b_t {
	float v[256];
	int kf;
};
struct segc_frag_ar_t { /* A row-major (a[m*lda + k]), stored as segc_frag_a_t */
	float v[256];
	int kf;
};

static inline float
segc_emu_frag_val(const float *a, size_t i)
{
	return segc_emu_tf32(a[i]);
}

static inline float
segc_emu_frag_val(const __nv_bfloat16 *a, size_t i)
{
	return __bfloat162float(a[i]);
}

/* K of a fragment from its tile's element type (not sizeof: SEGC_EMU_EXACT's bf16 is 4 bytes) */
static inline int
segc_emu_frag_kf(const float *)
{
	return 8;
}

static inline int
segc_emu_frag_kf(const __nv_bfloat16 *)
{
	return 16;
}

/* an A fragment (as [m + 16 k]) whose element (m, k) is a[m*sm + k*sk] */
template <typename T>
static inline int
segc_emu_load_a(float *v, const T *a, size_t sm, size_t sk, const char *what)
{
	segc_emu_align32(a, what);
	int kf = segc_emu_frag_kf(a);
	for (int k = 0; k < kf; k++)
		for (int m = 0; m < 16; m++)
			v[m + 16 * k] = segc_emu_frag_val(a, (size_t)m * sm + (size_t)k * sk);
	return kf;
}

template <typename T>
static inline void
segc_load_frag(segc_frag_ar_t &f, const T *a, unsigned ld)
{
	f.kf = segc_emu_load_a(f.v, a, ld, 1, "row-major A fragment");
}

template <typename T>
static inline void
segc_load_frag(segc_frag_a_t &f, const T *a, unsigned ld)
{
	f.kf = segc_emu_load_a(f.v, a, 1, ld, "A fragment");
}

template <typename T>
static inline void
segc_load_frag(segc_frag_b_t &f, const T *b, unsigned ld)
{
	segc_emu_align32(b, "B fragment");
	f.kf = segc_emu_frag_kf(b);
	for (int n = 0; n < 16; n++)
		for (int k = 0; k < f.kf; k++)
			f.v[k + 16 * n] = segc_emu_frag_val(b, (size_t)k + (size_t)n * ld);
}

static inline void
segc_mma_ab(segc_acc_t &c, const segc_frag_a_t &a, const segc_frag_b_t &b)
{
	for (int n = 0; n < 16; n++)
		for (int m = 0; m < 16; m++) {
			float s = c.v[m + 16 * n];
			for (int k = 0; k < a.kf; k++)
				s += a.v[m + 16 * k] * b.v[k + 16 * n];
			c.v[m + 16 * n] = s;
		}
}

static inline void
segc_mma_ab(segc_acc_t &c, const segc_frag_ar_t &a, const segc_frag_b_t &b)
{
	segc_frag_a_t t;
	memcpy(t.v, a.v, sizeof t.v);
	t.kf = a.kf;
	segc_mma_ab(c, t, b);
}

static inline void
segc_mma_store(float *o, const segc_acc_t &c, unsigned ld)
{
	segc_emu_align32(o, "accumulator store");
	for (int n = 0; n < 16; n++)
		for (int m = 0; m < 16; m++)
			o[m + n * ld] = c.v[m + 16 * n];
}

/* ---- asynchronous copies (cp.async): queued per thread, done at the thread's segc_cp_wait, so
 * a kernel that reads a destination before its wait (and barrier) sees stale data here too ---- */

enum { SEGC_EMU_MAXCP = 256 }; /* (the halo-tile conv's tf32 halo: up to 90 a thread) */
struct segc_emu_cp {
	void *d;
	const void *s; /* NULL: zero fill */
	size_t bytes;
};
static segc_emu_cp segc_emu_cps[SEGC_EMU_MAXT][SEGC_EMU_MAXCP];
static unsigned segc_emu_ncp[SEGC_EMU_MAXT];

template <int N, typename T>
static inline void
segc_cp_async(T *d, const T *s, bool p)
{
	unsigned t = segc_emu_cur, i = segc_emu_ncp[t]++;
	if (i >= SEGC_EMU_MAXCP || !segc_emu_call) {
		fprintf(stderr, "emu_shim: cp_async outside a block or more than %d in flight\n",
		        SEGC_EMU_MAXCP);
		abort();
	}
	segc_emu_cps[t][i].d = d;
	segc_emu_cps[t][i].s = p ? s : NULL;
	segc_emu_cps[t][i].bytes = N * sizeof(T);
}

static inline void
segc_cp_wait(void)
{
	unsigned t = segc_emu_cur;
	for (unsigned i = 0; i < segc_emu_ncp[t]; i++) {
		const segc_emu_cp *c = &segc_emu_cps[t][i];
		if (c->s)
			memcpy(c->d, c->s, c->bytes);
		else
			memset(c->d, 0, c->bytes);
	}
	segc_emu_ncp[t] = 0;
}

/* ---- the 16-byte vector load (K_vload): four f32, the address 16-byte aligned (checked) ---- */
template <int LDG>
static inline void
segc_vload4(const float *s, bool p, float &x, float &y, float &z, float &w)
{
	if (p && ((uintptr_t)s & 15)) {
		fprintf(stderr, "emu_shim: vload4 from %p: not 16-byte aligned\n", (const void *)s);
		abort();
	}
	x = p ? s[0] : 0.f;
	y = p ? s[1] : 0.f;
	z = p ? s[2] : 0.f;
	w = p ? s[3] : 0.f;
}

/* ---- a block's shared pool at its start (emit_cuda.c): NaN bytes, written by thread 0 before
 * any thread runs past its first barrier, so a tile element read before the block wrote it
 * is a NaN here (on a GPU: whatever the memory held) ---- */
static inline void
segc_emu_poison(void *p, size_t n)
{
	if (threadIdx.x == 0)
		memset(p, 0xff, n);
}

/* ---- the 16-byte vector load of 8 bf16 (K_vload): into raw bf16 variables or f32 ones
 * (widened), the address a multiple of 8 elements (checked; 16 bytes on the GPU) ---- */
static inline void
segc_emu_from_bf(__nv_bfloat16 &d, const __nv_bfloat16 *s, bool p)
{
	d = p ? *s : __float2bfloat16(0.0f);
}

static inline void
segc_emu_from_bf(float &d, const __nv_bfloat16 *s, bool p)
{
	d = p ? __bfloat162float(*s) : 0.0f;
}

static inline void segc_emu_vec_align(const void *d, size_t esz, int n);

template <int LDG, typename T>
static inline void
segc_vload8(const __nv_bfloat16 *s, bool p, T &a, T &b, T &c, T &d, T &e, T &f, T &g, T &h)
{
	if (p)
		segc_emu_vec_align(s, sizeof *s, 8);
	segc_emu_from_bf(a, s, p), segc_emu_from_bf(b, s + 1, p), segc_emu_from_bf(c, s + 2, p);
	segc_emu_from_bf(d, s + 3, p), segc_emu_from_bf(e, s + 4, p);
	segc_emu_from_bf(f, s + 5, p), segc_emu_from_bf(g, s + 6, p);
	segc_emu_from_bf(h, s + 7, p);
}

/* ---- the 16-byte vector stores to shared tiles (K_vstore), bf16 pass-through variables and
 * cuda_vec_fn's global vectors: the element offset a multiple of 4 (f32) / 8 (bf16), checked
 * as on the GPU (16 bytes), also where SEGC_EMU_EXACT's bf16 is 4 bytes ---- */
static inline void
segc_emu_vec_align(const void *d, size_t esz, int n)
{
	if (((uintptr_t)d / esz) % (size_t)n) {
		fprintf(stderr, "emu_shim: vector of %d at %p: not 16-byte aligned\n", n, d);
		abort();
	}
}

static inline __nv_bfloat16
segc_emu_bf(float v)
{
	return __float2bfloat16(v);
}

static inline __nv_bfloat16
segc_emu_bf(__nv_bfloat16 v)
{
	return v;
}

static inline __nv_bfloat16
segc_bf16_zero(void)
{
	return __float2bfloat16(0.0f);
}

template <typename T>
static inline void
segc_vst8(__nv_bfloat16 *d, T a, T b, T c, T e, T f, T g, T h, T i)
{
	segc_emu_vec_align(d, sizeof *d, 8);
	d[0] = segc_emu_bf(a), d[1] = segc_emu_bf(b), d[2] = segc_emu_bf(c);
	d[3] = segc_emu_bf(e), d[4] = segc_emu_bf(f), d[5] = segc_emu_bf(g);
	d[6] = segc_emu_bf(h), d[7] = segc_emu_bf(i);
}

static inline void
segc_vst4(float *d, float a, float b, float c, float e)
{
	segc_emu_vec_align(d, sizeof *d, 4);
	d[0] = a, d[1] = b, d[2] = c, d[3] = e;
}

/* ---- the vectors of cuda_vec_fn (docs/cuda.md "Vectors"), checked by segc_emu_vec_align
 * above; bf16 stores: cuda_prelude.c ---- */
template <int V, int LDG>
static inline void
segc_vld(const float *s, float *o)
{
	segc_emu_vec_align(s, sizeof *s, 4);
	for (int i = 0; i < V; i++)
		o[i] = s[i];
}

template <int V, int LDG>
static inline void
segc_vld(const __nv_bfloat16 *s, float *o)
{
	segc_emu_vec_align(s, sizeof *s, 8);
	for (int i = 0; i < V; i++)
		o[i] = __bfloat162float(s[i]);
}

template <int V>
static inline void
segc_vst(float *d, const float *s)
{
	segc_emu_vec_align(d, sizeof *d, 4);
	for (int i = 0; i < V; i++)
		d[i] = s[i];
}

static unsigned
segc_emu_ncp_pending(unsigned t)
{
	return segc_emu_ncp[t];
}

/* ---- the warp shuffle (K_shfl): v of lane ^ m; every thread of the block takes part ---- */
static inline float
segc_shfl_xor(float v, int m)
{
	unsigned t = segc_emu_cur, u = t ^ (unsigned)m;
	if (!segc_emu_call || m < 1 || m > 31 || u >= blockDim.x) {
		fprintf(stderr, "emu_shim: shfl_xor %d outside a block or past its threads\n", m);
		abort();
	}
	segc_emu_shv[t] = v;
	segc_emu_shn[t]++;
	__syncthreads();
	if (segc_emu_shn[u] != segc_emu_shn[t]) {
		fprintf(stderr, "emu_shim: divergent shfl_xor: thread %u at shuffle %u, %u at %u\n",
		        t, segc_emu_shn[t], u, segc_emu_shn[u]);
		abort();
	}
	float r = segc_emu_shv[u];
	__syncthreads();
	return r;
}

/* ---- the register-fragment MMA (K_mmar: mma.sync m16n8k16 twice, bf16): the lanes' fragments
 * exchanged like a shuffle's values (every thread of the block takes part), each lane's eight
 * accumulators in mma.sync's layout (g = lane / 4, t = lane % 4: rows g, g + 8, columns 2t,
 * 2t + 1, + 8) ---- */
struct segc_emu_b2 {
	float lo, hi;
};

static inline float
segc_emu_bfv(float v)
{
	return __bfloat162float(__float2bfloat16(v));
}

static inline float
segc_emu_bfv(__nv_bfloat16 v)
{
	return __bfloat162float(v);
}

template <typename T>
static inline segc_emu_b2
segc_pk2(T a, T b)
{
	segc_emu_b2 r = {segc_emu_bfv(a), segc_emu_bfv(b)};
	return r;
}

/* word variables (codegen/cuda_range.c cr_word_vars): a 32-bit word of two bf16, the variable's
 * value in a known half; segc_pkw<S> packs the halves that __byte_perm's selector S picks
 * (whole halves only, checked), segc_w2v a word as it is */
struct segc_w2 {
	__nv_bfloat16 h[2];
};

static inline segc_w2
segc_w2_zero(void)
{
	segc_w2 w = {{__float2bfloat16(0.0f), __float2bfloat16(0.0f)}};
	return w;
}

static inline segc_w2
segc_w2_ld(__nv_bfloat16 x)
{
	segc_w2 w = {{x, __float2bfloat16(0.0f)}};
	return w;
}

template <int LDG>
static inline void
segc_vload8w(const __nv_bfloat16 *s, bool p, segc_w2 &a, segc_w2 &b, segc_w2 &c, segc_w2 &d,
             segc_w2 &e, segc_w2 &f, segc_w2 &g, segc_w2 &h)
{
	__nv_bfloat16 v[8];
	segc_vload8<LDG>(s, p, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
	segc_w2 *o[8] = {&a, &b, &c, &d, &e, &f, &g, &h};
	for (int i = 0; i < 8; i++)
		o[i]->h[0] = v[i & ~1], o[i]->h[1] = v[i | 1];
}

static inline __nv_bfloat16
segc_emu_half(segc_w2 a, segc_w2 b, int n)
{
	if (n % 2) {
		fprintf(stderr, "emu_shim: segc_pkw: byte %d does not start a half\n", n);
		abort();
	}
	return n < 4 ? a.h[n / 2] : b.h[(n - 4) / 2];
}

template <int S>
static inline segc_emu_b2
segc_pkw(segc_w2 a, segc_w2 b)
{
	if (((S >> 4) & 15) != (S & 15) + 1 || ((S >> 12) & 15) != ((S >> 8) & 15) + 1) {
		fprintf(stderr, "emu_shim: segc_pkw<0x%x>: not two whole halves\n", S);
		abort();
	}
	segc_emu_b2 r = {segc_emu_bfv(segc_emu_half(a, b, S & 15)),
	                 segc_emu_bfv(segc_emu_half(a, b, (S >> 8) & 15))};
	return r;
}

static inline segc_emu_b2
segc_w2v(segc_w2 a)
{
	segc_emu_b2 r = {segc_emu_bfv(a.h[0]), segc_emu_bfv(a.h[1])};
	return r;
}

static float segc_emu_mr[SEGC_EMU_MAXT][16];
static unsigned segc_emu_mrn[SEGC_EMU_MAXT];

/* one warp's MMA of K_mmar: each lane publishes its operand values v[0..nv) (bf16: A's 8
 * registers, B's 8, two halves each; k8, tf32: A's 4 registers, B's 4), then c += A * B in
 * mma.sync's layouts (g = lane / 4, t = lane % 4): bf16 m16n8k16 A[r, k] lane (r % 8)*4 + (k %
 * 8)/2, register (r >= 8) + 2*(k >= 8), half k & 1; B[k, n] lane (n % 8)*4 + (k % 8)/2,
 * register 4 + (k >= 8) + 2*(n >= 8), half k & 1; tf32 m16n8k8 A[r, k] lane (r % 8)*4 + k % 4,
 * register (r >= 8) + 2*(k >= 4); B[k, n] lane (n % 8)*4 + k % 4, register 4 + (k >= 4) +
 * 2*(n >= 8) */
static inline void
segc_emu_mmar_run(float (&c)[8], const float *v, unsigned nv, bool k8)
{
	unsigned t = segc_emu_cur, l = t & 31u, w = t - l;
	if (!segc_emu_call || blockDim.x % 32) {
		fprintf(stderr, "emu_shim: mmar outside a block of whole warps\n");
		abort();
	}
	for (unsigned i = 0; i < nv; i++)
		segc_emu_mr[t][i] = v[i];
	segc_emu_mrn[t]++;
	__syncthreads();
	for (unsigned u = w; u < w + 32; u++)
		if (segc_emu_mrn[u] != segc_emu_mrn[t]) {
			fprintf(stderr, "emu_shim: divergent mmar: thread %u at %u, %u at %u\n", t,
			        segc_emu_mrn[t], u, segc_emu_mrn[u]);
			abort();
		}
	unsigned g = l >> 2, tt = l & 3u, kn = k8 ? 8 : 16;
	for (int i = 0; i < 8; i++) {
		unsigned r = g + 8 * ((i >> 1) & 1), n = 8 * (i >> 2) + 2 * tt + (i & 1);
		float s = c[i];
		for (unsigned k = 0; k < kn; k++) {
			unsigned kl = k8 ? k % 4 : (k % 8) / 2, kh = k8 ? k >= 4 : k >= 8;
			unsigned la = w + (r % 8) * 4 + kl, lb = w + (n % 8) * 4 + kl;
			unsigned ra = (r >= 8) + 2 * kh, rb = 4 + kh + 2 * (n >= 8);
			if (!k8) /* (two halves a register) */
				ra = 2 * ra + (k & 1), rb = 2 * rb + (k & 1);
			s += segc_emu_mr[la][ra] * segc_emu_mr[lb][rb];
		}
		c[i] = s;
	}
	__syncthreads();
}

static inline void
segc_mmar(float (&c)[8], segc_emu_b2 a0, segc_emu_b2 a1, segc_emu_b2 a2, segc_emu_b2 a3,
          segc_emu_b2 b0, segc_emu_b2 b1, segc_emu_b2 b2, segc_emu_b2 b3)
{
	const segc_emu_b2 in[8] = {a0, a1, a2, a3, b0, b1, b2, b3};
	float v[16];
	for (int i = 0; i < 8; i++)
		v[2 * i] = in[i].lo, v[2 * i + 1] = in[i].hi;
	segc_emu_mmar_run(c, v, 16, false);
}

/* K_mmar k8 (tf32): two mma.sync m16n8k8, A[r, k] of lane (r % 8)*4 + k % 4, register (r >= 8)
 * + 2*(k >= 4); B[k, n] of lane (n % 8)*4 + k % 4, register 4 + (k >= 4) + 2*(n >= 8); the
 * operands rounded to tf32 before (segc_tf32) */
static inline float
segc_tf32(float x) /* (to nearest, ties away: sm_80's cvt.rna; sm_90's cvt.rn differs at ties) */
{
	return segc_emu_tf32(x);
}

static inline float
segc_tf32f(float x) /* KU_TF32 */
{
	return segc_emu_tf32(x);
}

static inline float
__float_as_uint(float x) /* (segc_mmar8's B: tf32 values as they are) */
{
	return x;
}

static inline void
segc_mmar8(float (&c)[8], float a0, float a1, float a2, float a3, float b0, float b1, float b2,
           float b3)
{
	const float v[8] = {a0, a1, a2, a3, b0, b1, b2, b3};
	segc_emu_mmar_run(c, v, 8, true);
}

static inline void
segc_mma_zero(float (&c)[8])
{
	for (int i = 0; i < 8; i++)
		c[i] = 0.0f;
}

static inline void
segc_mma_store(float *o, const float (&c)[8], int ld, int R)
{
	int l = (int)(threadIdx.x & 31u), g = l >> 2, t = l & 3;
	for (int i = 0; i < 8; i++) {
		int r = g + 8 * ((i >> 1) & 1), col = 8 * (i >> 2) + 2 * t + (i & 1);
		o[(R < 0 ? r : (r & 7) * R + (r >> 3)) + col * ld] = c[i];
	}
}
