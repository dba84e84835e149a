/* codegen/emit_llvm.h -- what the CPU emitter's files share (emit_llvm.c, emit_llvm_vec.c).
 * Internal to codegen/: the emitter state and the scalar helpers the widening emitter reuses. */
#ifndef SEGC_EMIT_LLVM_H
#define SEGC_EMIT_LLVM_H
#include "cg.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

typedef struct {
	LLVMContextRef cx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	const Program *p;
	const Kernel *k;
	Diag *d;
	LLVMTypeRef t_void, t_i1, t_i8, t_i32, t_i64, t_f32, t_ptr, t_slots, t_task;
	LLVMValueRef fn;     /* the function being emitted */
	LLVMValueRef *bases; /* per Kernel.bufs: typed base pointer */
	LLVMValueRef *vars;  /* per variable id: its alloca */
	unsigned md_loop;    /* kind id of !llvm.loop */
	int exported;        /* task functions: hidden external (other modules call them) */
	unsigned mlanes;     /* the math functions' shape: 0 scalar, else vector lanes */
	/* one module's compilation, run on its own thread (emit_part) */
	LLVMTargetMachineRef tm;
	const CgOptions *o;
	char path[4096]; /* its object file */
	char *err;       /* the first LLVM error (malloc'd), reported after the join */
	int rc;
} LlvmEmit;

/* ---- emit_llvm.c ---- */
LLVMTypeRef llvm_ktype(LlvmEmit *e, int t);
LLVMTypeRef llvm_elemtype(LlvmEmit *e, int dtype); /* of a buffer element in memory */
unsigned llvm_elemsize(int dtype);
int llvm_node(LlvmEmit *e, const KNode *n, LLVMValueRef *out);
LLVMValueRef llvm_expr(LlvmEmit *e, const KNode *n); /* a scalar expression */
LLVMValueRef llvm_cf32(LlvmEmit *e, double v);
/* exp, log, tanh or erf (KU_*) of a scalar or a vector: inline polynomials, no calls */
LLVMValueRef llvm_math(LlvmEmit *e, int op, LLVMValueRef a);
/* KU_TF32 of a scalar or a vector (round to nearest, ties away; NaN kept) */
LLVMValueRef llvm_tf32(LlvmEmit *e, LLVMValueRef a);
/* a call to the intrinsic name overloaded on the first argument's type */
LLVMValueRef llvm_intrinsic(LlvmEmit *e, const char *name, LLVMValueRef *args, unsigned nargs);
/* loop n's metadata on its latch br, from its annotation: vectorize (LOOP_VECTOR, where
 * vec), unroll (LOOP_UNROLL; by its op where not 0), else no runtime unrolling */
void llvm_loop_hint(LlvmEmit *e, LLVMValueRef br, const KNode *n, int vec);
LLVMBasicBlockRef llvm_newblock(LlvmEmit *e, const char *name);
/* a op c for f32 / integer operands (scalars or vectors of the same shape) */
LLVMValueRef llvm_fbinop(LlvmEmit *e, const KNode *n, LLVMValueRef a, LLVMValueRef c);
LLVMValueRef llvm_ibinop(LlvmEmit *e, const KNode *n, LLVMValueRef a, LLVMValueRef c);

/* ---- emit_llvm_vec.c ---- */
/* LOOP_VECTOR loop n as SIMD lanes (outer-loop vectorization): 0 done, -1 after a
 * diagnostic, 1 not widenable (the caller emits the scalar loop) */
int llvm_widen(LlvmEmit *e, const KNode *n);

#endif
