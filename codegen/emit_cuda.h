/* codegen/emit_cuda.h -- what the CUDA emitter's files share (emit_cuda.c, cuda_vec.c, cuda_mma.c).
 * Internal to codegen/: the emitter state, the text helpers and the statement emitter. */
#ifndef SEGC_EMIT_CUDA_H
#define SEGC_EMIT_CUDA_H
#include "cg.h"

typedef struct {
	char *s;
	size_t len, cap;
} Text;

typedef struct {
	const Program *p;
	const Kernel *k;
	Diag *d;
	const char *arch; /* "sm_90" */
	Text src;         /* the CUDA C source */
	Text sched;       /* the launch schedule */
	int indent;
	uint8_t *ldg; /* per Kernel.bufs: read through the read-only cache */
	int mma;           /* the tensor-core prelude (and bf16) is emitted */
	int nlaunches;
	int inblock; /* emitting the body of a block-mapped (LOOP_BLOCK) kernel */
	int shfl_ok; /* emitting a let's or an assign's value in a block-mapped kernel */
	/* lanes (SEGC_CUDA_ILP, ilp_lanes): each thread runs `lanes` iterations of a parallel
	 * loop in lock step, statement by statement; a variable with lanevar set is an array
	 * indexed [u], every statement runs for the lanes whose guard array g<guard>[u] holds */
	int lanes;
	uint8_t *lanevar;
	int guard, nguards; /* guard -1: every lane (cuda_vec_fn) */
	int lane0; /* cuda_vec_fn: a uniform value from lane 0's variables ([0], no lane loop) */
	const struct CudaVec *vec; /* cuda_vec_fn: its plan (hoisted loads print vl<j>[u]) */
	CudaRanges rng; /* the function's integer ranges (cuda_range.c): 32-bit divisions */
	/* block-mapped functions: per variable, 1 where it holds bf16 bits as they are
	 * (cr_raw_vars) */
	uint8_t *raw;
	int rawload; /* emitting a raw variable's load: no conversion to f32 */
	CrWords words; /* raw variables held as 32-bit words (cr_word_vars; half NULL: none) */
	int racc;    /* the block-mapped function's accumulators are K_mmar's (registers) */
} CudaEmit;

/* 1 where variable v is a word variable of the function being emitted (CudaEmit.words) */
static inline int
cuda_word(const CudaEmit *e, int v)
{
	return e->words.half && e->words.half[v] >= 0;
}


/* ---- emit_cuda.c ---- */
void cuda_tput(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define out(e, ...) cuda_tput(&(e)->src, __VA_ARGS__)
void cuda_line(CudaEmit *e);                    /* the current indentation */
void cuda_varname(CudaEmit *e, int var);        /* v<id>_<name>, [u] / [0] in lanes */
void cuda_lane_head(CudaEmit *e);               /* "for (int u ..) [if (g<guard>[u])] " */
int cuda_loop_start(CudaEmit *e, const KNode *n); /* "var = lo + t * step;" of top loop n */
int cuda_node(CudaEmit *e, const KNode *n);     /* a statement or an expression */
unsigned cuda_elemsize(int dtype);

/* ---- cuda_mma.c: the tensor-core statements (kir.def K_mma*, K_mmar) ---- */
int cuda_mma_zero(CudaEmit *e, const KNode *n);
int cuda_mma(CudaEmit *e, const KNode *n);
int cuda_mma_store(CudaEmit *e, const KNode *n);
int cuda_mmar(CudaEmit *e, const KNode *n);
/* cnt consecutive K_mma statements, fragments loaded once */
int cuda_mma_run(CudaEmit *e, KNode *const *kids, uint32_t cnt);

/* ---- cuda_vec.c ---- */
/* Contiguous vectors of top-level parallel loop top with cnt iterations (codegen/cuda_vec.c,
 * docs/cuda.md "Vectors"): a thread runs `width` consecutive iterations (8 where a vector
 * access is bf16, else 4), its lets of uniform values once, its lets of loads at contiguous
 * indices as 16-byte loads, its stores as 16-byte stores.  cv_plan returns the width, or 0
 * where the loop does not take the plan ($SEGC_CUDA_VEC=0: never; 2: gathers too, per lane);
 * cuda_vec_fn emits it. */
enum { CV_ANY = 0, CV_SEQ = 1, CV_UNI = 2, CV_NN = 4, CV_MV = 8 };
typedef struct CudaVec {
	int width;
	uint8_t *var; /* per variable: its class (CV_ANY: varying, CV_UNI bit: uniform) */
	uint8_t *def; /* per variable: 0 not defined, 1 defined, 2 by a 16-byte load */
	/* the other loads at sequence indices: 16-byte loads into vl<j>[V] before statement
	 * hstmt[j] of the loop's body */
	const KNode **hoist;
	uint32_t *hstmt;
	uint32_t nhoist, caphoist, nhstmt, caphstmt;
} CudaVec;
int cv_plan(Arena *a, const Kernel *k, const KNode *top, int64_t cnt, CudaVec *cv);
int cuda_vec_fn(CudaEmit *e, const KNode *n, const CudaVec *cv);

#endif
