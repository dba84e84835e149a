/* codegen/kir.h -- the kernel (loop) IR: what templates produce and both emitters consume.
 *
 * A Kernel is one fused group lowered to loops over buffers.  Its body is a K_block whose
 * statements are all loops; each top-level loop annotated LOOP_PARALLEL is split across the
 * runtime's thread pool (CPU) or across blocks (CUDA): iterations of such a loop must be
 * independent, and a top-level loop may only use variables it declares itself.
 * Indices are i64 element offsets from the buffer's start; buffers are typed by DType.
 * Everything lives in the Program's arena. */
#ifndef SEGC_KIR_H
#define SEGC_KIR_H
#include <stdint.h>
#include <stdio.h>

#include "ir.h"
#include "tune.h"

typedef enum {
#define K(name) K_##name,
#include "kir.def"
	K_COUNT
} KKind;

typedef enum { KT_VOID, KT_BOOL, KT_I32, KT_I64, KT_F32 } KType;

typedef enum {
	KB_ADD, KB_SUB, KB_MUL, KB_DIV,      /* integer DIV truncates toward zero, like C */
	KB_REM,                              /* integer remainder, C semantics */
	KB_MIN, KB_MAX,
	KB_LT, KB_LE, KB_GT, KB_GE, KB_EQ, KB_NE,   /* result KT_BOOL */
	KB_AND, KB_OR,                       /* on KT_BOOL */
	KB_POW,                              /* f32 only */
	KB_COUNT
} KBinOp;

typedef enum {
	KU_NEG, KU_ABS, KU_EXP, KU_LOG, KU_SQRT, KU_RSQRT, KU_TANH, KU_ERF, KU_FLOOR, KU_CEIL,
	KU_NOT,                              /* KT_BOOL */
	KU_TF32, /* f32 rounded to tf32 (10 mantissa bits; to nearest, ties away; NaN kept) */
	KU_COUNT
} KUnOp;

/* LOOP_BLOCK (CUDA only): a top-level loop whose iterations are thread blocks; its body is
 * one LOOP_THREAD loop over [0, T) (T constant, <= 1024): the block's T threads run that body
 * together (var = threadIdx.x), so it may hold K_barrier, shared buffers and K_mma*.  The
 * LOOP_THREAD loop's op, when not 0, asks for that many blocks per multiprocessor (CUDA
 * __launch_bounds__(T, op): registers capped to fit).  A LOOP_UNROLL loop's op, when not 0,
 * is the unroll count (CUDA `#pragma unroll op`, LLVM llvm.loop.unroll.count; else unrolling
 * is asked, full where the trip count allows). */
typedef enum {
	LOOP_SERIAL, LOOP_PARALLEL, LOOP_VECTOR, LOOP_UNROLL, LOOP_BLOCK, LOOP_THREAD
} LoopAnn;

typedef struct KNode KNode;
struct KNode {
	uint8_t kind;           /* KKind */
	uint8_t type;           /* KType of an expression; of the variable for let */
	uint8_t op;             /* KBinOp / KUnOp */
	uint8_t ann;            /* LoopAnn */
	int32_t var;            /* loop / let / assign / var: variable id */
	int32_t buf;            /* load / store: index into Kernel.bufs */
	int64_t ival;           /* const (ints, bools); loop: step (>= 1) */
	double fval;            /* const (floats) */
	KNode *a, *b, *c;       /* operands; loop: a = lo, b = hi; if: c = else block or NULL */
	KNode *body;            /* loop, if: a K_block */
	KNode **kids;           /* block: statements */
	uint32_t nkids, capkids;
};

typedef struct {
	ValueId value;          /* the IR value this buffer holds */
	uint32_t slot;          /* runtime slot (0: the arena) */
	int64_t offset;         /* byte offset within the slot */
	uint8_t dtype;          /* DType of the elements */
	uint8_t written;        /* the kernel stores to it */
	int64_t numel;          /* elements, for bounds in debug builds */
	const char *name;       /* for printing: weight/input name or "%12" */
	/* CUDA block-shared array (kir_shared): not a kernel parameter; one per thread block,
	 * valid while the block runs; dtype f32 or bf16 (stores round to nearest) */
	uint8_t shared;
	int32_t ld;             /* shared: leading dimension of the tile, for K_mma* */
	/* shared: 0, or 1 + the index of the shared buffer whose storage this one reuses (from
	 * its start, possibly past its end: the emitter lays the other shared buffers out in
	 * one pool, in order); for a tile used only after the other's last use (kir_shared_over) */
	int32_t over;
	/* shared: 1 when K_mma reads it as A row-major, a[m*ld + k] (else column-major) */
	uint8_t arow;
} KBuf;

typedef struct {
	const char *name;       /* unique symbol-safe name: "k3_conv3d" */
	Loc loc;                /* the root node's */
	KBuf *bufs;
	uint32_t nbufs, capbufs;
	uint8_t *vartypes;      /* KType per variable id */
	const char **varnames;  /* for printing ("n", "c", "acc") */
	uint32_t nvars, capvars;
	KNode *body;            /* K_block of top-level loops */
	Cost cost;              /* of the group, for per-kernel GFLOP/s */
	int group;              /* index into Module.groups */
	/* a prepack kernel (codegen/prepack.c): the buffers it reads that are weights no later
	 * kernel reads, whose memory the runtime may release once it has run */
	const int32_t *release;
	uint32_t nrelease;
	/* tuning (ir/tune.h, codegen/knob.c): the group's key and the table's entry for it, whose
	 * knobs apply while this kernel is lowered and emitted (NULL: none) */
	const char *key;
	const TuneEntry *tune;
} Kernel;

/* What codegen produces for one module: the kernels in execution order and the manifest. */
typedef struct {
	Arena *arena;
	Kernel *kernels;
	uint32_t nkernels, capkernels;
	uint32_t nslots;        /* 1 (arena) + inputs + outputs + weights */
	const char *manifest;   /* text, see docs/abi.md */
	/* set before cg_lower: */
	int gpu;                /* 0: CPU; else the CUDA sm (80, 90): templates pick GPU forms */
	int precision;          /* KPrecision: what GPU matmul/conv forms may round inputs to */
	/* scratch (lw_scratch): slot-0 bytes after the module's planned arena that a kernel may
	 * use while it runs (kernels run one at a time); the manifest's arena includes them */
	int64_t scratch_bytes;
	/* load-time packing (codegen/prepack.c): prepack (KPrepack) is set before cg_lower; then
	 * the last npack kernels are prepack kernels, run once per load_weights, whose loops read
	 * only weights and write the packed slot (packslot = 1 + inputs + outputs + weights),
	 * packed_bytes in all */
	int prepack;
	uint32_t npack;
	uint32_t packslot;
	int64_t packed_bytes;
	/* set before cg_lower: a tuning table (segc --tune), or NULL */
	const TuneTable *tune;
	/* set before emitting, or NULL: per kernel, a hash of the code the CUDA emitter wrote for
	 * it (its functions and launch shapes: segc --emit=keys with -o, docs/tune.md) */
	uint64_t *code_fp;
} Program;

typedef enum { KP_FP32, KP_TF32, KP_BF16 } KPrecision;
/* --prepack: off; on (every weight-only loop); lean (only those whose output is no larger than
 * the weights they read: the packed copy replaces the weights, memory stays as it was) */
typedef enum { PREPACK_OFF, PREPACK_ON, PREPACK_LEAN } KPrepack;

/* ---- builder (codegen/kir.c); all nodes from the program arena ---- */
Kernel *kir_kernel(Program *p, const char *name, Loc loc);
/* buffer index of v in k; the same value gives the same index */
int kir_buf(Program *p, Kernel *k, const Module *m, ValueId v);
int kir_var(Program *p, Kernel *k, KType t, const char *name);    /* new variable id */
KNode *kir_block(Program *p);
void kir_append(Program *p, KNode *block, KNode *stmt);
/* body: an empty block to append to */
KNode *kir_loop(Program *p, int var, KNode *lo, KNode *hi, int64_t step, LoopAnn ann);
KNode *kir_if(Program *p, KNode *cond);                             /* body: empty block */
KNode *kir_let(Program *p, Kernel *k, int var, KNode *init);
KNode *kir_assign(Program *p, int var, KNode *val);
KNode *kir_store(Program *p, int buf, KNode *idx, KNode *val);
KNode *kir_barrier(Program *p);
KNode *kir_i64(Program *p, int64_t v);
KNode *kir_f32(Program *p, double v);
KNode *kir_bool(Program *p, int v);
KNode *kir_ref(Program *p, const Kernel *k, int var);               /* K_var */
KNode *kir_load(Program *p, const Kernel *k, int buf, KNode *idx);  /* typed by the buffer */
/* typed by a (bool for compares) */
KNode *kir_bin(Program *p, KBinOp op, KNode *a, KNode *b);
KNode *kir_un(Program *p, KUnOp op, KNode *a);
KNode *kir_select(Program *p, KNode *c, KNode *a, KNode *b);
KNode *kir_cast(Program *p, KType t, KNode *a);
KNode *kir_shfl(Program *p, KNode *a, int lanemask);               /* f32 a of lane ^ lanemask */
KType kir_dtype(int dtype);                                         /* DT_F32 -> KT_F32 ... */

/* A buffer of numel elements of dtype at slot 0, byte offset base (64-byte aligned by the
 * caller), named name, not backed by an IR value (value 0): kernel-private scratch. */
int kir_scratch(Program *p, Kernel *k, int64_t base, int dtype, int64_t numel, const char *name);

/* A block-shared array of numel elements (f32 or bf16) with leading dimension ld, for kernels
 * whose top-level loop is LOOP_BLOCK (docs/cuda.md); its buffer index. */
int kir_shared(Program *p, Kernel *k, int dtype, int64_t numel, int ld, const char *name);
/* the same, stored over shared buffer over (KBuf.over): a barrier must separate the last use of
 * the buffers it overlaps from its first store */
int kir_shared_over(Program *p, Kernel *k, int dtype, int64_t numel, int ld, const char *name,
                    int over);
/* the tensor-core statements (kir.def): mma_zero, mma, mma_store */
KNode *kir_mma_zero(Program *p, int acc);
KNode *kir_mma(Program *p, int acc, int abuf, KNode *aoff, int bbuf, KNode *boff);
KNode *kir_mma_store(Program *p, int acc, int cbuf, KNode *coff);
/* the same for a register accumulator whose row m goes to coff + (m % 8)*rows + m / 8 */
KNode *kir_mma_store_rows(Program *p, int acc, int cbuf, KNode *coff, int rows);
/* K_mmar (kir.def): acc += A (variables from avar: pair stride ps, row stride rs) * B
 * (variables bvar .. bvar + 7); k8: tf32, 16 x 16 x 8 (A's k t and t + 4 ps apart, B's
 * bvar .. bvar + 3) */
KNode *kir_mmar(Program *p, int acc, int avar, int ps, int rs, int bvar, int k8);
/* a K_mmar's variables: 16 (bf16: A's 8 pairs' halves, B's 8), 8 (k8: A's 4, B's 4) */
static inline int
kir_mmar_nvars(const KNode *n)
{
	return n->type == KT_F32 ? 8 : 16;
}
/* variable e (< kir_mmar_nvars) of a K_mmar: A's first, then B's */
static inline int
kir_mmar_var(const KNode *n, int e)
{
	if (n->type == KT_F32) /* k8: A[g + 8 (e & 1), t + 4 (e >> 1)], B[.., e] */
		return e >= 4 ? n->buf + e - 4 : n->var + (e >> 1) * n->op + (e & 1) * n->ann;
	if (e >= 8)
		return n->buf + e - 8;
	return n->var + (e & 1) * n->op + ((e >> 1) & 1) * n->ann + (e >> 2) * 2 * n->op;
}
/* the asynchronous copies (kir.def): cp_async (pred NULL: always), cp_wait */
KNode *kir_cp_async(Program *p, int dst, KNode *doff, int src, KNode *soff, int n, KNode *pred);
KNode *kir_cp_wait(Program *p);
/* the vector load (kir.def): vars var .. var+n-1 = buf[idx .. idx+n) (n = 4, 8 bf16), 0 where
 * !pred */
KNode *kir_vload(Program *p, int var, int n, int buf, KNode *idx, KNode *pred);
/* the vector store (kir.def): shared buf[idx .. idx+n) = vars var + i*vs, i < n (n * the
 * element size = 16 bytes; vs >= 1, the variables' id stride) */
KNode *kir_vstore(Program *p, int buf, KNode *idx, int var, int n, int vs);
/* variable i of a vload or vstore */
static inline int
kir_vec_var(const KNode *n, int64_t i)
{
	return n->var + (int)i * (n->kind == K_vstore && n->op > 1 ? n->op : 1);
}

/* Call fn for every buffer reference under n, in tree order: the node, a pointer to the index
 * (fn may change it), and 1 for a store (K_store; the shared destinations of K_mma_store and
 * K_cp_async; K_vstore), 0 for a load (K_load; K_mma's A and B, K_cp_async's global source). */
typedef void (*KBufFn)(KNode *n, int32_t *buf, int store, void *ctx);
void kir_each_buf(KNode *n, KBufFn fn, void *ctx);
/* Call fn for every variable reference under n, in tree order: the node and the variable (a
 * loop, let or assign defines it, K_var reads it, K_vload defines its ival variables, K_vstore
 * reads its ival variables, K_mmar reads its 16 (kir_mmar_var); K_mma's and K_cp_async's var is
 * a buffer and is not visited). */
typedef void (*KVarFn)(const KNode *n, int var, void *ctx);
void kir_each_var(const KNode *n, KVarFn fn, void *ctx);
/* the highest tensor-core accumulator index (K_mma_zero, K_mma, K_mma_store) under n, plus one */
int kir_count_acc(const KNode *n);
/* 1 when a node of kind (KKind) is under n */
int kir_contains(const KNode *n, int kind);

/* 1 and *v = its value when integer expression n is a constant (loop bounds, trip counts) */
int kir_const_i64(const KNode *n, int64_t *v);

/* Signature of a kernel for sharing generated code between kernels that differ only in where
 * their buffers live (both emitters); extra: the emitter's own per-buffer choices. */
const char *kir_signature(const Program *p, const Kernel *k, const char *extra);

/* ---- text form for --emit=kernels (codegen/kir.c) ---- */
void kir_print(const Kernel *k, FILE *f);
const char *kir_kind_name(int kind);
const char *kir_binop_name(int op);
const char *kir_unop_name(int op);

#endif
