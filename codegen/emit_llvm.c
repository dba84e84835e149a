/* codegen/emit_llvm.c -- kernel IR -> LLVM IR -> object file (the CPU emitter).
 *
 * For every Kernel and every top-level loop i of its body we emit an internal task function
 *     void <kernel>_t<i>(i8 **bufs, i64 lo, i64 hi)
 * that runs iterations [lo, hi) of that loop over the kernel's buffers bufs[0..nbufs), and one
 * hidden entry point
 *     i32 segc_gen_run(i8 **slots, i8 *pool)
 * that, for each kernel in order, fills a buffer table (slots[slot] + offset per buffer) and
 * calls the tasks: segc_rt_parallel_for(pool, fn, table, n) for LOOP_PARALLEL loops,
 * fn(table, 0, n) otherwise (runtime/rt_gen.h).  segc_gen_prepack(slots, pool) does the same
 * for the prepack kernels (codegen/prepack.c), which the runtime runs once per load_weights,
 * calling segc_rt_release(base, bytes) after the last reader of a weight only they read.
 * segc_gen_manifest holds the manifest.
 * Because tasks see buffers only through the table, kernels whose kernel IR is the same (the
 * same block repeated at the same shapes) share one set of task functions: LLVM optimises
 * each distinct kernel once, which is most of the compile time.
 * Compiling in parallel: the distinct task functions are spread over up to 8 modules (one per
 * CPU, balanced by kernel IR size), each in its own LLVMContext; module 0 also holds
 * segc_gen_run, segc_gen_manifest and segc_gen_kinfo (the profiler's kernel table) and calls
 * the other modules' tasks, which are hidden external functions.  Each module is optimised
 * and written on its own thread with its own TargetMachine; `ld -r` (cg_merge_objects) makes
 * the one object.  LLVM errors are kept per module and reported after the join.
 * segc_gen_prof_hook (null unless the runtime profiles, runtime/profile.c) is called around
 * every kernel when set.
 * Variables are allocas (mem2reg promotes them); buffer bases are loaded once per task.
 * exp, tanh and erf are inline polynomials (no calls), so loops using them vectorize.
 * A LOOP_VECTOR loop of constant trip count whose body holds loops (the conv micro-kernel) is
 * widened into SIMD lanes by emit_llvm_vec.c (outer-loop vectorization), which shares the
 * emitter state and these helpers through emit_llvm.h.
 * Mirror image of emit_cuda.c: same helpers, same order, same suffixes (STYLE.md 3.9).
 * One LLVMContextRef per module, created and disposed here (STYLE.md 3.7). */
#include "emit_llvm.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/DebugInfo.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

/* ---- small helpers ---- */

LLVMTypeRef
llvm_ktype(LlvmEmit *e, int t)
{
	switch ((KType)t) {
	case KT_VOID:
		return e->t_void;
	case KT_BOOL:
		return e->t_i1;
	case KT_I32:
		return e->t_i32;
	case KT_I64:
		return e->t_i64;
	case KT_F32:
		return e->t_f32;
	}
	SEGC_ASSERT(!"bad KType");
	return NULL;
}

/* LLVM type of a buffer element in memory (u8 is widened to i32 on load) */
LLVMTypeRef
llvm_elemtype(LlvmEmit *e, int dtype)
{
	switch (dtype) {
	case DT_F32:
		return e->t_f32;
	case DT_I32:
		return e->t_i32;
	case DT_I64:
		return e->t_i64;
	case DT_U8:
		return e->t_i8;
	default:
		return NULL;
	}
}

unsigned
llvm_elemsize(int dtype)
{
	return dtype == DT_U8 ? 1 : dtype == DT_I64 ? 8 : 4;
}

LLVMValueRef
llvm_expr(LlvmEmit *e, const KNode *n)
{
	LLVMValueRef v = NULL;
	int rc = llvm_node(e, n, &v);
	SEGC_ASSERT(rc == 0 && v != NULL);
	return v;
}

LLVMValueRef
llvm_cf32(LlvmEmit *e, double v)
{
	return LLVMConstReal(e->t_f32, v);
}

static LLVMValueRef
ci32(LlvmEmit *e, int64_t v)
{
	return LLVMConstInt(e->t_i32, (unsigned long long)v, 1);
}

/* a call to the intrinsic name overloaded on its first argument's type (f32 or a vector) */
LLVMValueRef
llvm_intrinsic(LlvmEmit *e, const char *name, LLVMValueRef *args, unsigned nargs)
{
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	SEGC_ASSERT(id != 0);
	LLVMTypeRef over = LLVMTypeOf(args[0]);
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(e->mod, id, &over, 1);
	LLVMTypeRef ft = LLVMIntrinsicGetType(e->cx, id, &over, 1);
	return LLVMBuildCall2(e->b, ft, f, args, nargs, "");
}

/* KU_TF32 of a scalar or a vector: the bits + 0x1000 (half an ulp of tf32: to nearest, ties
 * away from zero, the magnitude's carry into the exponent as it should), the 13 low bits
 * cleared; NaN as it is */
LLVMValueRef
llvm_tf32(LlvmEmit *e, LLVMValueRef a)
{
	LLVMTypeRef ft = LLVMTypeOf(a), it = e->t_i32;
	unsigned n = LLVMGetTypeKind(ft) == LLVMVectorTypeKind ? LLVMGetVectorSize(ft) : 0;
	LLVMValueRef half = ci32(e, 0x1000), mask = ci32(e, (int32_t)0xffffe000u);
	if (n) {
		LLVMValueRef hs[64], ms[64];
		SEGC_ASSERT(n <= 64);
		for (unsigned i = 0; i < n; i++)
			hs[i] = half, ms[i] = mask;
		it = LLVMVectorType(it, n);
		half = LLVMConstVector(hs, n), mask = LLVMConstVector(ms, n);
	}
	LLVMValueRef bits = LLVMBuildBitCast(e->b, a, it, "");
	bits = LLVMBuildAnd(e->b, LLVMBuildAdd(e->b, bits, half, ""), mask, "");
	LLVMValueRef r = LLVMBuildBitCast(e->b, bits, ft, "");
	return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, LLVMRealUNO, a, a, ""), a, r, "");
}

static LLVMValueRef
intrinsic1(LlvmEmit *e, const char *name, LLVMValueRef a)
{
	return llvm_intrinsic(e, name, &a, 1);
}

static LLVMValueRef
fsel(LlvmEmit *e, LLVMRealPredicate pr, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
     LLVMValueRef f)
{
	return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, pr, a, b, ""), t, f, "");
}

/* ---- vectorizable transcendental functions (max rel. error < 1e-6, see the unit test) ----
 * Written once for scalars and vectors: e->mlanes (0: scalar) gives the shape of the
 * constants and integer types they make (llvm_math sets it for the widening emitter). */

static LLVMTypeRef
mty(LlvmEmit *e, LLVMTypeRef t)
{
	return e->mlanes ? LLVMVectorType(t, e->mlanes) : t;
}

static LLVMValueRef
msplat(LlvmEmit *e, LLVMValueRef s)
{
	LLVMValueRef el[64];
	if (!e->mlanes)
		return s;
	SEGC_ASSERT(e->mlanes <= 64);
	for (unsigned i = 0; i < e->mlanes; i++)
		el[i] = s;
	return LLVMConstVector(el, e->mlanes);
}

static LLVMValueRef
mcf(LlvmEmit *e, double v)
{
	return msplat(e, llvm_cf32(e, v));
}

static LLVMValueRef
mci(LlvmEmit *e, int64_t v)
{
	return msplat(e, ci32(e, v));
}

/* Horner: c[0] + x*(c[1] + x*(c[2] + ...)), each step a fused multiply-add */
static LLVMValueRef
poly(LlvmEmit *e, LLVMValueRef x, const double *c, int n)
{
	LLVMValueRef r = mcf(e, c[n - 1]);
	for (int i = n - 2; i >= 0; i--) {
		LLVMValueRef args[3] = {r, x, mcf(e, c[i])};
		r = llvm_intrinsic(e, "llvm.fmuladd", args,
		                   3); /* an FMA where the target has one */
	}
	return r;
}

/* 2^k for integer k (i32) in [-126, 127], as a float */
static LLVMValueRef
pow2i(LlvmEmit *e, LLVMValueRef k)
{
	LLVMValueRef biased = LLVMBuildAdd(e->b, k, mci(e, 127), "");
	LLVMValueRef bits = LLVMBuildShl(e->b, biased, mci(e, 23), "");
	return LLVMBuildBitCast(e->b, bits, mty(e, e->t_f32), "");
}

/* exp(x): x = n ln2 + r, |r| <= ln2/2 (Cody-Waite), e^r by the Cephes expf polynomial,
 * scaled by 2^n in two steps so that results down to the smallest denormal are right. */
static LLVMValueRef
math_exp(LlvmEmit *e, LLVMValueRef x)
{
	static const double c[] = {5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2,
	                           8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4};
	LLVMBuilderRef b = e->b;
	LLVMValueRef xc = fsel(e, LLVMRealOGT, x, mcf(e, 88.8), mcf(e, 88.8), x);
	xc = fsel(e, LLVMRealOLT, xc, mcf(e, -104.0), mcf(e, -104.0), xc);
	xc = fsel(e, LLVMRealUNO, x, x, mcf(e, 0.0), xc); /* NaN: any finite value */
	LLVMValueRef fn =
	    intrinsic1(e, "llvm.rint", LLVMBuildFMul(b, xc, mcf(e, 1.44269504088896341), ""));
	LLVMValueRef r = LLVMBuildFSub(b, xc, LLVMBuildFMul(b, fn, mcf(e, 0.693359375), ""), "");
	r = LLVMBuildFSub(b, r, LLVMBuildFMul(b, fn, mcf(e, -2.12194440e-4), ""), "");
	LLVMValueRef r2 = LLVMBuildFMul(b, r, r, "");
	LLVMValueRef y = LLVMBuildFMul(b, poly(e, r, c, 6), r2, "");
	y = LLVMBuildFAdd(b, LLVMBuildFAdd(b, y, r, ""), mcf(e, 1.0), "");
	LLVMValueRef n = LLVMBuildFPToSI(b, fn, mty(e, e->t_i32), "");
	LLVMValueRef n1 = LLVMBuildAShr(b, n, mci(e, 1), "");
	LLVMValueRef n2 = LLVMBuildSub(b, n, n1, "");
	y = LLVMBuildFMul(b, LLVMBuildFMul(b, y, pow2i(e, n1), ""), pow2i(e, n2), "");
	y = fsel(e, LLVMRealOGT, x, mcf(e, 88.72283935546875), mcf(e, INFINITY), y);
	y = fsel(e, LLVMRealOLT, x, mcf(e, -103.972084), mcf(e, 0.0), y);
	return fsel(e, LLVMRealUNO, x, x, x, y);
}

/* log(x): x = m 2^k with m in [sqrt(1/2), sqrt(2)) (denormals scaled by 2^25 first), log(m)
 * = f - f^2/2 + f^3 P(f) with f = m - 1 (the Cephes logf polynomial), plus k ln2 in two parts;
 * log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN. */
static LLVMValueRef
math_log(LlvmEmit *e, LLVMValueRef x)
{
	static const double c[] = {3.3333331174e-1,  -2.4999993993e-1, 2.0000714765e-1,
	                           -1.6668057665e-1, 1.4249322787e-1,  -1.2420140846e-1,
	                           1.1676998740e-1,  -1.1514610310e-1, 7.0376836292e-2};
	LLVMBuilderRef b = e->b;
	LLVMTypeRef ti = mty(e, e->t_i32), tf = mty(e, e->t_f32);
	LLVMValueRef tiny = LLVMBuildFCmp(b, LLVMRealOLT, x, mcf(e, 1.17549435e-38), "");
	LLVMValueRef xs =
	    LLVMBuildSelect(b, tiny, LLVMBuildFMul(b, x, mcf(e, 33554432.0), ""), x, "");
	LLVMValueRef bits = LLVMBuildBitCast(b, xs, ti, "");
	LLVMValueRef k = LLVMBuildSub(b, LLVMBuildLShr(b, bits, mci(e, 23), ""), mci(e, 126), "");
	k = LLVMBuildSelect(b, tiny, LLVMBuildSub(b, k, mci(e, 25), ""), k, "");
	/* m in [0.5, 1) */
	LLVMValueRef mb =
	    LLVMBuildOr(b, LLVMBuildAnd(b, bits, mci(e, 0x007fffff), ""), mci(e, 0x3f000000), "");
	LLVMValueRef m = LLVMBuildBitCast(b, mb, tf, "");
	LLVMValueRef lo = LLVMBuildFCmp(b, LLVMRealOLT, m, mcf(e, 0.707106781186547524), "");
	k = LLVMBuildSelect(b, lo, LLVMBuildSub(b, k, mci(e, 1), ""), k, "");
	LLVMValueRef f = LLVMBuildFSub(b, LLVMBuildSelect(b, lo, LLVMBuildFAdd(b, m, m, ""), m, ""),
	                               mcf(e, 1.0), "");
	LLVMValueRef fk = LLVMBuildSIToFP(b, k, tf, "");
	LLVMValueRef z = LLVMBuildFMul(b, f, f, "");
	LLVMValueRef y = LLVMBuildFMul(b, LLVMBuildFMul(b, poly(e, f, c, 9), f, ""), z, "");
	y = LLVMBuildFAdd(b, y, LLVMBuildFMul(b, fk, mcf(e, -2.12194440e-4), ""), "");
	y = LLVMBuildFSub(b, y, LLVMBuildFMul(b, z, mcf(e, 0.5), ""), "");
	y = LLVMBuildFAdd(b, LLVMBuildFAdd(b, f, y, ""),
	                  LLVMBuildFMul(b, fk, mcf(e, 0.693359375), ""), "");
	y = fsel(e, LLVMRealOEQ, x, mcf(e, INFINITY), x, y);
	y = fsel(e, LLVMRealOEQ, x, mcf(e, 0.0), mcf(e, -INFINITY), y);
	return fsel(e, LLVMRealULT, x, mcf(e, 0.0), mcf(e, NAN), y); /* x < 0 or NaN */
}

/* tanh(x): |x| + |x|^3 P(x^2) for |x| < 0.625 (Cephes tanhf), else 1 - 2/(e^{2|x|} + 1);
 * the sign of x last */
static LLVMValueRef
math_tanh(LlvmEmit *e, LLVMValueRef x)
{
	static const double c[] = {-3.33332819422e-1, 1.33314422036e-1, -5.37397155531e-2,
	                           2.06390887954e-2, -5.70498872745e-3};
	LLVMBuilderRef b = e->b;
	LLVMValueRef ax = intrinsic1(e, "llvm.fabs", x);
	LLVMValueRef z = LLVMBuildFMul(b, x, x, "");
	LLVMValueRef small = LLVMBuildFMul(b, LLVMBuildFMul(b, poly(e, z, c, 5), z, ""), ax, "");
	small = LLVMBuildFAdd(b, small, ax, "");
	LLVMValueRef ex = math_exp(e, LLVMBuildFMul(b, ax, mcf(e, 2.0), ""));
	LLVMValueRef big = LLVMBuildFSub(
	    b, mcf(e, 1.0),
	    LLVMBuildFDiv(b, mcf(e, 2.0), LLVMBuildFAdd(b, ex, mcf(e, 1.0), ""), ""), "");
	LLVMValueRef args[2] = {fsel(e, LLVMRealOLT, ax, mcf(e, 0.625), small, big), x};
	return llvm_intrinsic(e, "llvm.copysign", args, 2); /* tanh(-0) = -0 */
}

/* erf(x): x P(x^2) for |x| < 1; 1 - e^{-x^2} Q(|x|) for 1 <= |x| < 4 (erfc(x) e^{x^2} is
 * smooth there); +-1 beyond.  Coefficients: least-squares fits in double (see the test). */
static LLVMValueRef
math_erf(LlvmEmit *e, LLVMValueRef x)
{
	static const double p[] = {
	    1.128379066606759,     -0.37612228121157493,  0.11279737272850482,
	    -0.026703729052471415, 0.0049124876580949189, -0.00056219559735231955,
	};
	static const double q[] = {
	    0.99191864268789021,     -1.0805750109854411,    0.87068464563165437,
	    -0.5383872175990998,     0.25512312088781597,    -0.091257873397395425,
	    0.024065307656342603,    -0.0045152120763698473, 0.00056843954888293141,
	    -4.2948662340991355e-05, 1.469579962711686e-06,
	};
	LLVMBuilderRef b = e->b;
	LLVMValueRef ax = intrinsic1(e, "llvm.fabs", x);
	LLVMValueRef z = LLVMBuildFMul(b, x, x, "");
	LLVMValueRef small = LLVMBuildFMul(b, x, poly(e, z, p, (int)countof(p)), "");
	LLVMValueRef axc = fsel(e, LLVMRealOGT, ax, mcf(e, 4.0), mcf(e, 4.0), ax);
	LLVMValueRef ez = math_exp(e, LLVMBuildFNeg(b, LLVMBuildFMul(b, axc, axc, ""), ""));
	LLVMValueRef big = LLVMBuildFSub(
	    b, mcf(e, 1.0), LLVMBuildFMul(b, ez, poly(e, axc, q, (int)countof(q)), ""), "");
	big = fsel(e, LLVMRealOGE, ax, mcf(e, 4.0), mcf(e, 1.0), big);
	LLVMValueRef args[2] = {big, x};
	big = llvm_intrinsic(e, "llvm.copysign", args, 2);
	return fsel(e, LLVMRealOLT, ax, mcf(e, 1.0), small, big);
}

/* exp, log, tanh or erf of a (a scalar or a vector of lanes floats) */
LLVMValueRef
llvm_math(LlvmEmit *e, int op, LLVMValueRef a)
{
	LLVMTypeRef t = LLVMTypeOf(a);
	unsigned saved = e->mlanes;
	e->mlanes = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetVectorSize(t) : 0;
	LLVMValueRef r = op == KU_EXP    ? math_exp(e, a)
	                 : op == KU_LOG  ? math_log(e, a)
	                 : op == KU_TANH ? math_tanh(e, a)
	                                 : math_erf(e, a);
	e->mlanes = saved;
	return r;
}

/* ---- loop metadata ---- */

/* !llvm.loop !{self, !{!"name", i1 true}} (count > 0: i32 count) on the latch branch.  A
 * vector loop also gets !{!"llvm.loop.unroll.disable"}: otherwise loop peeling (part of the
 * unroller) splits off the first iterations of a loop whose body tests the induction
 * variable (the predicated border taps of tmpl_conv.c) and leaves the vectorizer a trip
 * count that is no multiple of the vector width, i.e. a scalar remainder.
 * A loop without a hint (name NULL) gets !{!"llvm.loop.unroll.runtime.disable"}: runtime
 * unrolling (copies of the body plus a remainder loop, for loops whose trip count is not a
 * constant) was over half the compile time of the mamba graphs (mamba_home 14.5 -> 6.7 s
 * CPU) and bought nothing measurable (unet3d 75 vs 74 ms); constant-trip loops are still
 * fully unrolled where LLVM finds it worth it. */
static void
loop_hint(LlvmEmit *e, LLVMValueRef br, const char *name, unsigned count)
{
	static const char nounroll[] = "llvm.loop.unroll.disable";
	static const char noruntime[] = "llvm.loop.unroll.runtime.disable";
	LLVMMetadataRef prop[2] = {
	    LLVMMDStringInContext2(e->cx, name ? name : "", name ? strlen(name) : 0),
	    LLVMValueAsMetadata(count ? LLVMConstInt(LLVMInt32TypeInContext(e->cx), count, 0)
	                              : LLVMConstInt(e->t_i1, 1, 0)),
	};
	LLVMMetadataRef nu = LLVMMDStringInContext2(e->cx, nounroll, sizeof nounroll - 1);
	LLVMMetadataRef nr = LLVMMDStringInContext2(e->cx, noruntime, sizeof noruntime - 1);
	int vec = name && strcmp(name, "llvm.loop.vectorize.enable") == 0;
	LLVMMetadataRef tmp = LLVMTemporaryMDNode(e->cx, NULL, 0);
	LLVMMetadataRef ops[3] = {
	    tmp, name ? LLVMMDNodeInContext2(e->cx, prop, 2) : LLVMMDNodeInContext2(e->cx, &nr, 1),
	    LLVMMDNodeInContext2(e->cx, &nu, 1)};
	LLVMMetadataRef id = LLVMMDNodeInContext2(e->cx, ops, vec ? 3 : 2);
	LLVMMetadataReplaceAllUsesWith(tmp, id); /* makes id self-referential; frees tmp */
	LLVMSetMetadata(br, e->md_loop, LLVMMetadataAsValue(e->cx, id));
}

void
llvm_loop_hint(LlvmEmit *e, LLVMValueRef br, const KNode *n, int vec)
{
	if (vec && n->ann == LOOP_VECTOR)
		loop_hint(e, br, "llvm.loop.vectorize.enable", 0);
	else if (n->ann == LOOP_UNROLL && n->op) /* (kir.h: the unroll count) */
		loop_hint(e, br, "llvm.loop.unroll.count", n->op);
	else if (n->ann == LOOP_UNROLL)
		loop_hint(e, br, "llvm.loop.unroll.enable", 0);
	else
		loop_hint(e, br, NULL, 0);
}

LLVMBasicBlockRef
llvm_newblock(LlvmEmit *e, const char *name)
{
	return LLVMAppendBasicBlockInContext(e->cx, e->fn, name);
}

/* for (var = lo; var < hi; var += step) body, lo and hi already evaluated */
static int
loop_range(LlvmEmit *e, const KNode *n, LLVMValueRef lo, LLVMValueRef hi)
{
	LLVMBuilderRef b = e->b;
	LLVMValueRef var = e->vars[n->var];
	LLVMTypeRef vt = llvm_ktype(e, e->k->vartypes[n->var]);
	LLVMBasicBlockRef head = llvm_newblock(e, "loop"), body = llvm_newblock(e, "body");
	LLVMBasicBlockRef latch = llvm_newblock(e, "latch"), exit = llvm_newblock(e, "done");

	LLVMBuildStore(b, lo, var);
	LLVMBuildBr(b, head);
	LLVMPositionBuilderAtEnd(b, head);
	LLVMValueRef iv = LLVMBuildLoad2(b, vt, var, "");
	LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, iv, hi, ""), body, exit);
	LLVMPositionBuilderAtEnd(b, body);
	LLVMValueRef dummy;
	if (llvm_node(e, n->body, &dummy) < 0)
		return -1;
	LLVMBuildBr(b, latch);
	LLVMPositionBuilderAtEnd(b, latch);
	iv = LLVMBuildLoad2(b, vt, var, "");
	LLVMValueRef step = LLVMConstInt(vt, (unsigned long long)n->ival, 1);
	LLVMBuildStore(b, LLVMBuildNSWAdd(b, iv, step, ""), var);
	LLVMValueRef br = LLVMBuildBr(b, head);
	llvm_loop_hint(e, br, n, 1);
	LLVMPositionBuilderAtEnd(b, exit);
	return 0;
}

/* ---- one helper per KKind, in the order of kir.def ---- */

static int
llvm_block(LlvmEmit *e, const KNode *n)
{
	LLVMValueRef dummy;
	for (uint32_t i = 0; i < n->nkids; i++)
		if (llvm_node(e, n->kids[i], &dummy) < 0)
			return -1;
	return 0;
}

static int
llvm_loop(LlvmEmit *e, const KNode *n)
{
	if (n->ann == LOOP_BLOCK || n->ann == LOOP_THREAD)
		return cg_unsupported(e->d, e->k, "cpu", "gpu block/thread loops");
	SEGC_ASSERT(n->ival >= 1);
	if (n->ann == LOOP_VECTOR) { /* outer-loop vectorization (emit_llvm_vec.c) */
		int rc = llvm_widen(e, n);
		if (rc <= 0)
			return rc;
	}
	LLVMValueRef lo = llvm_expr(e, n->a), hi = llvm_expr(e, n->b);
	return loop_range(e, n, lo, hi);
}

static int
llvm_if(LlvmEmit *e, const KNode *n)
{
	LLVMBuilderRef b = e->b;
	LLVMBasicBlockRef then = llvm_newblock(e, "then"), els = llvm_newblock(e, "else");
	LLVMBasicBlockRef join = llvm_newblock(e, "endif");
	LLVMValueRef dummy;

	LLVMBuildCondBr(b, llvm_expr(e, n->a), then, els);
	LLVMPositionBuilderAtEnd(b, then);
	if (llvm_node(e, n->body, &dummy) < 0)
		return -1;
	LLVMBuildBr(b, join);
	LLVMPositionBuilderAtEnd(b, els);
	if (n->c && llvm_node(e, n->c, &dummy) < 0)
		return -1;
	LLVMBuildBr(b, join);
	LLVMPositionBuilderAtEnd(b, join);
	return 0;
}

static int
llvm_let(LlvmEmit *e, const KNode *n)
{
	LLVMBuildStore(e->b, llvm_expr(e, n->a), e->vars[n->var]);
	return 0;
}

static int
llvm_assign(LlvmEmit *e, const KNode *n)
{
	LLVMBuildStore(e->b, llvm_expr(e, n->a), e->vars[n->var]);
	return 0;
}

static LLVMValueRef
index64(LlvmEmit *e, const KNode *idx)
{
	LLVMValueRef i = llvm_expr(e, idx);
	if (idx->type == KT_I32)
		i = LLVMBuildSExt(e->b, i, e->t_i64, "");
	SEGC_ASSERT(idx->type == KT_I32 || idx->type == KT_I64);
	return i;
}

static int
llvm_store(LlvmEmit *e, const KNode *n)
{
	const KBuf *kb = &e->k->bufs[n->buf];
	LLVMTypeRef et = llvm_elemtype(e, kb->dtype);
	LLVMValueRef idx = index64(e, n->a);
	LLVMValueRef v = llvm_expr(e, n->b);
	if (kb->dtype == DT_U8)
		v = LLVMBuildTrunc(e->b, v, e->t_i8, "");
	LLVMValueRef ptr = LLVMBuildInBoundsGEP2(e->b, et, e->bases[n->buf], &idx, 1, "");
	LLVMSetAlignment(LLVMBuildStore(e->b, v, ptr), llvm_elemsize(kb->dtype));
	return 0;
}

static LLVMValueRef
llvm_const(LlvmEmit *e, const KNode *n)
{
	if (n->type == KT_F32)
		return llvm_cf32(e, n->fval);
	if (n->type == KT_BOOL)
		return LLVMConstInt(e->t_i1, n->ival != 0, 0);
	return LLVMConstInt(llvm_ktype(e, n->type), (unsigned long long)n->ival, 1);
}

static LLVMValueRef
llvm_var(LlvmEmit *e, const KNode *n)
{
	return LLVMBuildLoad2(e->b, llvm_ktype(e, e->k->vartypes[n->var]), e->vars[n->var], "");
}

static LLVMValueRef
llvm_load(LlvmEmit *e, const KNode *n)
{
	const KBuf *kb = &e->k->bufs[n->buf];
	LLVMTypeRef et = llvm_elemtype(e, kb->dtype);
	LLVMValueRef idx = index64(e, n->a);
	LLVMValueRef ptr = LLVMBuildInBoundsGEP2(e->b, et, e->bases[n->buf], &idx, 1, "");
	LLVMValueRef v = LLVMBuildLoad2(e->b, et, ptr, "");
	LLVMSetAlignment(v, llvm_elemsize(kb->dtype));
	if (kb->dtype == DT_U8)
		v = LLVMBuildZExt(e->b, v, e->t_i32, "");
	return v;
}

LLVMValueRef
llvm_fbinop(LlvmEmit *e, const KNode *n, LLVMValueRef a, LLVMValueRef c)
{
	LLVMBuilderRef b = e->b;
	LLVMValueRef args[2] = {a, c};
	switch ((KBinOp)n->op) {
	case KB_ADD:
		return LLVMBuildFAdd(b, a, c, "");
	case KB_SUB:
		return LLVMBuildFSub(b, a, c, "");
	case KB_MUL:
		return LLVMBuildFMul(b, a, c, "");
	case KB_DIV:
		return LLVMBuildFDiv(b, a, c, "");
	case KB_REM:
		return LLVMBuildFRem(b, a, c, "");
	case KB_MIN:
		return fsel(e, LLVMRealOLT, a, c, a, c);
	case KB_MAX:
		return fsel(e, LLVMRealOGT, a, c, a, c);
	case KB_LT:
		return LLVMBuildFCmp(b, LLVMRealOLT, a, c, "");
	case KB_LE:
		return LLVMBuildFCmp(b, LLVMRealOLE, a, c, "");
	case KB_GT:
		return LLVMBuildFCmp(b, LLVMRealOGT, a, c, "");
	case KB_GE:
		return LLVMBuildFCmp(b, LLVMRealOGE, a, c, "");
	case KB_EQ:
		return LLVMBuildFCmp(b, LLVMRealOEQ, a, c, "");
	case KB_NE:
		return LLVMBuildFCmp(b, LLVMRealUNE, a, c, "");
	case KB_POW:
		return llvm_intrinsic(e, "llvm.pow", args, 2);
	case KB_AND:
	case KB_OR:
	case KB_COUNT:
		break;
	}
	SEGC_ASSERT(!"bad f32 binop");
	return NULL;
}

LLVMValueRef
llvm_ibinop(LlvmEmit *e, const KNode *n, LLVMValueRef a, LLVMValueRef c)
{
	LLVMBuilderRef b = e->b;
	switch ((KBinOp)n->op) {
	case KB_ADD:
		return LLVMBuildAdd(b, a, c, "");
	case KB_SUB:
		return LLVMBuildSub(b, a, c, "");
	case KB_MUL:
		return LLVMBuildMul(b, a, c, "");
	case KB_DIV:
		return LLVMBuildSDiv(b, a, c, "");
	case KB_REM:
		return LLVMBuildSRem(b, a, c, "");
	case KB_MIN:
		return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, a, c, ""), a, c, "");
	case KB_MAX:
		return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, a, c, ""), a, c, "");
	case KB_LT:
		return LLVMBuildICmp(b, LLVMIntSLT, a, c, "");
	case KB_LE:
		return LLVMBuildICmp(b, LLVMIntSLE, a, c, "");
	case KB_GT:
		return LLVMBuildICmp(b, LLVMIntSGT, a, c, "");
	case KB_GE:
		return LLVMBuildICmp(b, LLVMIntSGE, a, c, "");
	case KB_EQ:
		return LLVMBuildICmp(b, LLVMIntEQ, a, c, "");
	case KB_NE:
		return LLVMBuildICmp(b, LLVMIntNE, a, c, "");
	case KB_AND:
		return LLVMBuildAnd(b, a, c, "");
	case KB_OR:
		return LLVMBuildOr(b, a, c, "");
	case KB_POW:
	case KB_COUNT:
		break;
	}
	SEGC_ASSERT(!"bad integer binop");
	return NULL;
}

static int
isfmul(const KNode *n)
{
	return n->kind == K_binop && n->op == KB_MUL && n->type == KT_F32;
}

/* a*b + c and a*b - c become llvm.fmuladd, which the backend contracts to an FMA
 * (what clang does with -ffp-contract=on; the LLVM 14 C API has no fast-math flags) */
static LLVMValueRef
llvm_binop(LlvmEmit *e, const KNode *n)
{
	if (n->a->type == KT_F32 && (n->op == KB_ADD || n->op == KB_SUB)) {
		const KNode *m = isfmul(n->a) ? n->a : NULL;
		if (!m && n->op == KB_ADD && isfmul(n->b))
			m = n->b;
		if (m) {
			const KNode *other = m == n->a ? n->b : n->a;
			LLVMValueRef c = llvm_expr(e, other);
			if (n->op == KB_SUB)
				c = LLVMBuildFNeg(e->b, c, "");
			LLVMValueRef args[3] = {llvm_expr(e, m->a), llvm_expr(e, m->b), c};
			return llvm_intrinsic(e, "llvm.fmuladd", args, 3);
		}
	}
	LLVMValueRef a = llvm_expr(e, n->a), c = llvm_expr(e, n->b);
	SEGC_ASSERT(n->a->type == n->b->type);
	return n->a->type == KT_F32 ? llvm_fbinop(e, n, a, c) : llvm_ibinop(e, n, a, c);
}

static LLVMValueRef
llvm_unop(LlvmEmit *e, const KNode *n)
{
	LLVMBuilderRef b = e->b;
	LLVMValueRef a = llvm_expr(e, n->a);
	if (n->a->type != KT_F32) {
		LLVMValueRef zero = LLVMConstInt(LLVMTypeOf(a), 0, 0);
		switch (n->op) {
		case KU_NEG:
			return LLVMBuildSub(b, zero, a, "");
		case KU_ABS:
			return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, a, zero, ""),
			                       LLVMBuildSub(b, zero, a, ""), a, "");
		case KU_NOT:
			return LLVMBuildXor(b, a, LLVMConstInt(LLVMTypeOf(a), 1, 0), "");
		default:
			break;
		}
		SEGC_ASSERT(!"float unop on an integer");
	}
	switch ((KUnOp)n->op) {
	case KU_NEG:
		return LLVMBuildFNeg(b, a, "");
	case KU_ABS:
		return intrinsic1(e, "llvm.fabs", a);
	case KU_EXP:
	case KU_LOG:
		return llvm_math(e, n->op, a);
	case KU_SQRT:
		return intrinsic1(e, "llvm.sqrt", a);
	case KU_RSQRT:
		return LLVMBuildFDiv(b, llvm_cf32(e, 1.0), intrinsic1(e, "llvm.sqrt", a), "");
	case KU_TANH:
	case KU_ERF:
		return llvm_math(e, n->op, a);
	case KU_FLOOR:
		return intrinsic1(e, "llvm.floor", a);
	case KU_CEIL:
		return intrinsic1(e, "llvm.ceil", a);
	case KU_TF32:
		return llvm_tf32(e, a);
	case KU_NOT:
	case KU_COUNT:
		break;
	}
	SEGC_ASSERT(!"bad f32 unop");
	return NULL;
}

static LLVMValueRef
llvm_select(LlvmEmit *e, const KNode *n)
{
	LLVMValueRef c = llvm_expr(e, n->a), t = llvm_expr(e, n->b), f = llvm_expr(e, n->c);
	return LLVMBuildSelect(e->b, c, t, f, "");
}

static LLVMValueRef
llvm_cast(LlvmEmit *e, const KNode *n)
{
	LLVMBuilderRef b = e->b;
	LLVMValueRef a = llvm_expr(e, n->a);
	int from = n->a->type, to = n->type;
	LLVMTypeRef tt = llvm_ktype(e, to);

	if (from == to)
		return a;
	if (to == KT_BOOL && from == KT_F32)
		return LLVMBuildFCmp(b, LLVMRealUNE, a, llvm_cf32(e, 0.0), "");
	if (to == KT_BOOL)
		return LLVMBuildICmp(b, LLVMIntNE, a, LLVMConstInt(LLVMTypeOf(a), 0, 0), "");
	if (from == KT_BOOL)
		return to == KT_F32 ? LLVMBuildUIToFP(b, a, tt, "") : LLVMBuildZExt(b, a, tt, "");
	if (from == KT_F32)
		return LLVMBuildFPToSI(b, a, tt, "");
	if (to == KT_F32)
		return LLVMBuildSIToFP(b, a, tt, "");
	return to == KT_I64 ? LLVMBuildSExt(b, a, tt, "") : LLVMBuildTrunc(b, a, tt, "");
}

/* the one dispatch over every kind (STYLE.md 3.9); expressions set *out */
int
llvm_node(LlvmEmit *e, const KNode *n, LLVMValueRef *out)
{
	*out = NULL;
	switch ((KKind)n->kind) {
	case K_block:
		return llvm_block(e, n);
	case K_loop:
		return llvm_loop(e, n);
	case K_if:
		return llvm_if(e, n);
	case K_let:
		return llvm_let(e, n);
	case K_assign:
		return llvm_assign(e, n);
	case K_store:
		return llvm_store(e, n);
	case K_barrier:
		return 0; /* one CPU task runs its iterations in order */
	case K_mma_zero:
	case K_mma:
	case K_mma_store:
	case K_mmar:
		return cg_unsupported(e->d, e->k, "cpu", "tensor-core (mma) statements");
	case K_cp_async:
	case K_cp_wait:
		return cg_unsupported(e->d, e->k, "cpu", "asynchronous copies (cp_async)");
	case K_vload:
		return cg_unsupported(e->d, e->k, "cpu", "vector loads (vload)");
	case K_vstore:
		return cg_unsupported(e->d, e->k, "cpu", "vector stores to shared tiles (vstore)");
	case K_shfl:
		return cg_unsupported(e->d, e->k, "cpu", "warp shuffles (shfl)");
	case K_const:
		*out = llvm_const(e, n);
		return 0;
	case K_var:
		*out = llvm_var(e, n);
		return 0;
	case K_load:
		*out = llvm_load(e, n);
		return 0;
	case K_binop:
		*out = llvm_binop(e, n);
		return 0;
	case K_unop:
		*out = llvm_unop(e, n);
		return 0;
	case K_select:
		*out = llvm_select(e, n);
		return 0;
	case K_cast:
		*out = llvm_cast(e, n);
		return 0;
	case K_COUNT:
		break;
	}
	SEGC_ASSERT(!"unknown kernel node");
	return -1;
}

/* ---- functions ---- */

/* The first buffer of k with buffer i's storage (slot, byte offset, dtype), or i.  An
 * in-place elementwise kernel reads and writes one buffer through two entries; giving both
 * one LLVM pointer lets the vectorizer see that element i is read and written by the same
 * iteration (with two opaque pointers its runtime overlap check fails and the scalar
 * fallback loop runs).  Part of the kernel's signature (alias_sig): code is shared only
 * between kernels with the same aliasing. */
static uint32_t
buf_alias(const Kernel *k, uint32_t i)
{
	const KBuf *a = &k->bufs[i];
	for (uint32_t j = 0; j < i; j++) {
		const KBuf *b = &k->bufs[j];
		if (!a->shared && !b->shared && a->slot == b->slot && a->offset == b->offset &&
		    a->dtype == b->dtype)
			return j;
	}
	return i;
}

/* "i=j " for every buffer i that buf_alias() maps to an earlier j */
static const char *
alias_sig(const Program *p, const Kernel *k)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	SEGC_ASSERT(f);
	for (uint32_t i = 0; i < k->nbufs; i++)
		if (buf_alias(k, i) != i)
			fprintf(f, "%u=%u ", i, buf_alias(k, i));
	fclose(f);
	const char *t = arena_strdup(p->arena, text);
	free(text);
	return t;
}

/* typed base pointers of every buffer from a task's table: bufs[i] (one pointer per
 * storage, buf_alias) */
static void
load_table(LlvmEmit *e, LLVMValueRef bufs)
{
	const Kernel *k = e->k;
	for (uint32_t i = 0; i < k->nbufs; i++) {
		uint32_t j = buf_alias(k, i);
		if (j != i) {
			e->bases[i] = e->bases[j];
			continue;
		}
		LLVMValueRef ii = LLVMConstInt(e->t_i64, i, 0);
		LLVMValueRef bp = LLVMBuildInBoundsGEP2(e->b, e->t_ptr, bufs, &ii, 1, "");
		LLVMValueRef base = LLVMBuildLoad2(e->b, e->t_ptr, bp, "");
		LLVMTypeRef pt = LLVMPointerType(llvm_elemtype(e, k->bufs[i].dtype), 0);
		e->bases[i] = LLVMBuildBitCast(e->b, base, pt, "");
	}
}

/* typed base pointers of every buffer: slots[slot] + offset bytes */
static void
load_bases(LlvmEmit *e, LLVMValueRef slots)
{
	const Kernel *k = e->k;
	for (uint32_t i = 0; i < k->nbufs; i++) {
		LLVMValueRef si = LLVMConstInt(e->t_i64, k->bufs[i].slot, 0);
		LLVMValueRef sp = LLVMBuildInBoundsGEP2(e->b, e->t_ptr, slots, &si, 1, "");
		LLVMValueRef base = LLVMBuildLoad2(e->b, e->t_ptr, sp, k->bufs[i].name);
		LLVMValueRef off = LLVMConstInt(e->t_i64, (unsigned long long)k->bufs[i].offset, 1);
		base = LLVMBuildInBoundsGEP2(e->b, e->t_i8, base, &off, 1, "");
		LLVMTypeRef pt = LLVMPointerType(llvm_elemtype(e, k->bufs[i].dtype), 0);
		e->bases[i] = LLVMBuildBitCast(e->b, base, pt, "");
	}
}

/* <kernel>_t<i>(slots, lo, hi): iterations [lo, hi) of top-level loop n */
static LLVMValueRef
task_fn(LlvmEmit *e, const KNode *n, int i)
{
	const Kernel *k = e->k;
	char name[256];
	snprintf(name, sizeof name, "%s_t%d", k->name, i);
	LLVMValueRef fn = LLVMAddFunction(e->mod, name, e->t_task);
	if (e->exported)
		LLVMSetVisibility(fn, LLVMHiddenVisibility);
	else
		LLVMSetLinkage(fn, LLVMInternalLinkage);
	unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
	                        LLVMCreateEnumAttribute(e->cx, nounwind, 0));
	e->fn = fn;
	LLVMPositionBuilderAtEnd(e->b, llvm_newblock(e, "entry"));
	for (uint32_t v = 0; v < k->nvars; v++)
		e->vars[v] = LLVMBuildAlloca(e->b, llvm_ktype(e, k->vartypes[v]), k->varnames[v]);
	load_table(e, LLVMGetParam(fn, 0));

	/* var = lo_expr + t*step for t in [lo, hi) */
	LLVMTypeRef vt = llvm_ktype(e, k->vartypes[n->var]);
	LLVMValueRef lo = llvm_expr(e, n->a);
	LLVMValueRef step = LLVMConstInt(vt, (unsigned long long)n->ival, 1);
	LLVMValueRef tlo = LLVMGetParam(fn, 1), thi = LLVMGetParam(fn, 2);
	if (vt != e->t_i64) {
		tlo = LLVMBuildTrunc(e->b, tlo, vt, "");
		thi = LLVMBuildTrunc(e->b, thi, vt, "");
	}
	LLVMValueRef vlo = LLVMBuildNSWAdd(e->b, lo, LLVMBuildNSWMul(e->b, tlo, step, ""), "");
	LLVMValueRef vhi = LLVMBuildNSWAdd(e->b, lo, LLVMBuildNSWMul(e->b, thi, step, ""), "");
	if (loop_range(e, n, vlo, vhi) < 0)
		return NULL;
	LLVMBuildRetVoid(e->b);
	return fn;
}

/* trip count of top-level loop n as an i64, evaluated in segc_gen_run */
static LLVMValueRef
trip_count(LlvmEmit *e, const KNode *n)
{
	int64_t lo, hi;
	if (kir_const_i64(n->a, &lo) && kir_const_i64(n->b, &hi))
		return LLVMConstInt(e->t_i64,
		                    hi > lo ? (uint64_t)((hi - lo + n->ival - 1) / n->ival) : 0, 0);
	LLVMBuilderRef b = e->b;
	LLVMValueRef l = llvm_expr(e, n->a), h = llvm_expr(e, n->b);
	if (n->a->type == KT_I32) {
		l = LLVMBuildSExt(b, l, e->t_i64, "");
		h = LLVMBuildSExt(b, h, e->t_i64, "");
	}
	LLVMValueRef span = LLVMBuildSub(b, h, l, "");
	LLVMValueRef t = LLVMBuildSDiv(
	    b,
	    LLVMBuildAdd(b, span, LLVMConstInt(e->t_i64, (unsigned long long)(n->ival - 1), 0), ""),
	    LLVMConstInt(e->t_i64, (unsigned long long)n->ival, 0), "");
	LLVMValueRef pos = LLVMBuildICmp(b, LLVMIntSGT, span, LLVMConstInt(e->t_i64, 0, 0), "");
	return LLVMBuildSelect(b, pos, t, LLVMConstInt(e->t_i64, 0, 0), "");
}

static int
check_kernel(LlvmEmit *e, const Kernel *k)
{
	for (uint32_t i = 0; i < k->nbufs; i++)
		if (k->bufs[i].dtype != DT_F32 && k->bufs[i].dtype != DT_I32 &&
		    k->bufs[i].dtype != DT_I64 && k->bufs[i].dtype != DT_U8)
			return cg_unsupported(
			    e->d, k, "cpu",
			    arena_printf(e->p->arena, "%s buffers", dtype_name(k->bufs[i].dtype)));
	for (uint32_t i = 0; i < k->body->nkids; i++)
		SEGC_ASSERT(k->body->kids[i]->kind == K_loop);
	return 0;
}

/* ---- the modules ---- */

/* a hidden constant string global */
static void
add_string(LlvmEmit *e, const char *name, const char *text)
{
	LLVMValueRef init = LLVMConstStringInContext(e->cx, text, (unsigned)strlen(text), 0);
	LLVMValueRef g = LLVMAddGlobal(e->mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetVisibility(g, LLVMHiddenVisibility);
}

/* the task functions of the distinct kernels this module owns (owner[ki] == index) */
static int
emit_tasks(LlvmEmit *e, const int *rep, const int *owner, int index)
{
	const Program *p = e->p;
	for (uint32_t ki = 0; ki < p->nkernels; ki++) {
		const Kernel *k = &p->kernels[ki];
		if (rep[ki] != (int)ki || owner[ki] != index)
			continue;
		e->k = k;
		e->bases = arena_zalloc(p->arena, (k->nbufs + 1) * sizeof *e->bases);
		e->vars = arena_zalloc(p->arena, (k->nvars + 1) * sizeof *e->vars);
		const TuneEntry *was = cg_knob_enter(k->tune);
		for (uint32_t i = 0; i < k->body->nkids; i++)
			if (!task_fn(e, k->body->kids[i], (int)i)) {
				cg_knob_enter(was);
				return -1;
			}
		cg_knob_enter(was);
	}
	return 0;
}

/* the calls of kernel ki in segc_gen_run or segc_gen_prepack: fill the buffer table, call
 * the tasks of its representative (defined here or declared: another module defines it) */
static void
kernel_calls(LlvmEmit *e, const int *rep, uint32_t ki, LLVMValueRef slots, LLVMValueRef pool,
             LLVMValueRef table, LLVMValueRef pfor, LLVMTypeRef pft)
{
	const Program *p = e->p;
	const Kernel *k = &p->kernels[ki];
	const Kernel *r = &p->kernels[rep[ki]];
	e->k = k;
	e->bases = arena_zalloc(p->arena, (k->nbufs + 1) * sizeof *e->bases);
	load_bases(e, slots);
	for (uint32_t i = 0; i < k->nbufs; i++) {
		LLVMValueRef ii = LLVMConstInt(e->t_i64, i, 0);
		LLVMValueRef at = LLVMBuildInBoundsGEP2(e->b, e->t_ptr, table, &ii, 1, "");
		LLVMBuildStore(e->b, LLVMBuildBitCast(e->b, e->bases[i], e->t_ptr, ""), at);
	}
	for (uint32_t i = 0; i < k->body->nkids; i++) {
		const KNode *n = k->body->kids[i];
		char name[256];
		snprintf(name, sizeof name, "%s_t%u", r->name, i);
		LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name);
		if (!fn) {
			fn = LLVMAddFunction(e->mod, name, e->t_task);
			LLVMSetVisibility(fn, LLVMHiddenVisibility);
		}
		LLVMValueRef cnt = trip_count(e, n);
		if (n->ann == LOOP_PARALLEL) {
			LLVMValueRef args[4] = {pool, fn, table, cnt};
			LLVMBuildCall2(e->b, pft, pfor, args, 4, "");
		} else {
			LLVMValueRef args[3] = {table, LLVMConstInt(e->t_i64, 0, 0), cnt};
			LLVMBuildCall2(e->b, e->t_task, fn, args, 3, "");
		}
	}
}

/* a hidden i32 (i8 **slots, i8 *pool) function: straight-line calls (thousands for a big
 * graph); optimising them buys nothing at run time and was a large share of the compile
 * time.  Its entry block holds one buffer table (an alloca) for every kernel; *table */
static LLVMValueRef
schedule_fn(LlvmEmit *e, const char *name, uint32_t lo, uint32_t hi, LLVMValueRef *table)
{
	const Program *p = e->p;
	LLVMTypeRef rargs[2] = {e->t_slots, e->t_ptr};
	LLVMTypeRef rft = LLVMFunctionType(e->t_i32, rargs, 2, 0);
	LLVMValueRef fn = LLVMAddFunction(e->mod, name, rft);
	LLVMSetVisibility(fn, LLVMHiddenVisibility);
	const char *attrs[] = {"optnone", "noinline"};
	for (int i = 0; i < 2; i++) {
		unsigned kind = LLVMGetEnumAttributeKindForName(attrs[i], strlen(attrs[i]));
		LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
		                        LLVMCreateEnumAttribute(e->cx, kind, 0));
	}
	e->fn = fn;
	uint32_t maxbufs = 1;
	for (uint32_t ki = lo; ki < hi; ki++)
		maxbufs = p->kernels[ki].nbufs > maxbufs ? p->kernels[ki].nbufs : maxbufs;
	LLVMPositionBuilderAtEnd(e->b, llvm_newblock(e, "entry"));
	*table = LLVMBuildArrayAlloca(e->b, e->t_ptr, LLVMConstInt(e->t_i32, maxbufs, 0), "bufs");
	return fn;
}

/* Module 0's segc_gen_run: the calls of every run kernel in order.  When the runtime sets
 * segc_gen_prof_hook (SEGC_PROFILE, runtime/profile.c), hook(pool, k) is called before
 * kernel k and hook(pool, nrun) after the last: one load and branch per kernel if not.
 * segc_gen_prepack: the calls of the prepack kernels (codegen/prepack.c), no hook. */
static int
emit_run(LlvmEmit *e, const int *rep)
{
	const Program *p = e->p;
	uint32_t nrun = p->nkernels - p->npack;
	LLVMTypeRef pargs[4] = {e->t_ptr, LLVMPointerType(e->t_task, 0), e->t_slots, e->t_i64};
	LLVMTypeRef pft = LLVMFunctionType(e->t_void, pargs, 4, 0);
	LLVMValueRef pfor = LLVMAddFunction(e->mod, "segc_rt_parallel_for", pft);
	LLVMSetVisibility(pfor, LLVMHiddenVisibility);
	LLVMTypeRef hargs[2] = {e->t_ptr, e->t_i32};
	LLVMTypeRef hft = LLVMFunctionType(e->t_void, hargs, 2, 0);
	LLVMTypeRef hpt = LLVMPointerType(hft, 0);
	LLVMValueRef hook = LLVMAddGlobal(e->mod, hpt, "segc_gen_prof_hook");
	LLVMSetInitializer(hook, LLVMConstNull(hpt));
	LLVMSetVisibility(hook, LLVMHiddenVisibility);
	LLVMValueRef table;
	LLVMValueRef run = schedule_fn(e, "segc_gen_run", 0, nrun, &table);
	LLVMValueRef slots = LLVMGetParam(run, 0), pool = LLVMGetParam(run, 1);
	for (uint32_t ki = 0; ki <= nrun; ki++) {
		LLVMValueRef h = LLVMBuildLoad2(e->b, hpt, hook, "");
		LLVMBasicBlockRef call = llvm_newblock(e, "prof"),
		                  next = llvm_newblock(e, "kernel");
		LLVMBuildCondBr(e->b, LLVMBuildIsNotNull(e->b, h, ""), call, next);
		LLVMPositionBuilderAtEnd(e->b, call);
		LLVMValueRef hv[2] = {pool, LLVMConstInt(e->t_i32, ki, 0)};
		LLVMBuildCall2(e->b, hft, h, hv, 2, "");
		LLVMBuildBr(e->b, next);
		LLVMPositionBuilderAtEnd(e->b, next);
		if (ki < nrun)
			kernel_calls(e, rep, ki, slots, pool, table, pfor, pft);
	}
	LLVMBuildRet(e->b, LLVMConstInt(e->t_i32, 0, 0));
	LLVMTypeRef relargs[2] = {e->t_ptr, e->t_i64};
	LLVMTypeRef relft = LLVMFunctionType(e->t_void, relargs, 2, 0);
	LLVMValueRef rel = NULL; /* declared when used: engines without packs need no runtime's */
	LLVMValueRef pack = schedule_fn(e, "segc_gen_prepack", nrun, p->nkernels, &table);
	for (uint32_t ki = nrun; ki < p->nkernels; ki++) {
		const Kernel *k = &p->kernels[ki];
		kernel_calls(e, rep, ki, LLVMGetParam(pack, 0), LLVMGetParam(pack, 1), table, pfor,
		             pft);
		for (uint32_t i = 0; i < k->nrelease; i++) { /* weights only packs read, done */
			const KBuf *b = &k->bufs[k->release[i]];
			if (!rel) {
				rel = LLVMAddFunction(e->mod, "segc_rt_release", relft);
				LLVMSetVisibility(rel, LLVMHiddenVisibility);
			}
			uint64_t bytes = (uint64_t)(b->numel * dtype_size(b->dtype));
			LLVMValueRef args[2] = {
			    LLVMBuildBitCast(e->b, e->bases[k->release[i]], e->t_ptr, ""),
			    LLVMConstInt(e->t_i64, bytes, 0)};
			LLVMBuildCall2(e->b, relft, rel, args, 2, "");
		}
	}
	LLVMBuildRet(e->b, LLVMConstInt(e->t_i32, 0, 0));
	add_string(e, "segc_gen_manifest", p->manifest ? p->manifest : "");
	add_string(e, "segc_gen_kinfo", cg_kernel_table(p));
	return 0;
}

/* the first LLVM error of a part, kept until the threads are joined */
static void
part_error(LlvmEmit *e, const char *what, const char *msg)
{
	if (e->err)
		return;
	size_t n = strlen(what) + strlen(msg) + 1;
	e->err = malloc(n);
	if (e->err)
		snprintf(e->err, n, "%s%s", what, msg);
}

/* LLVM's own messages: errors are kept for the Diag; remarks and warnings (e.g. "loop not
 * vectorized" for a hinted loop the vectorizer cannot handle) are not the user's business */
static void
llvm_diag(LLVMDiagnosticInfoRef info, void *ctx)
{
	LlvmEmit *e = ctx;
	if (LLVMGetDiagInfoSeverity(info) != LLVMDSError)
		return;
	char *msg = LLVMGetDiagInfoDescription(info);
	part_error(e, "LLVM: ", msg);
	LLVMDisposeMessage(msg);
}

static void
part_open(LlvmEmit *e, int index)
{
	char name[32];
	snprintf(name, sizeof name, "engine%d", index);
	e->cx = LLVMContextCreate();
	e->mod = LLVMModuleCreateWithNameInContext(name, e->cx);
	e->b = LLVMCreateBuilderInContext(e->cx);
	e->t_void = LLVMVoidTypeInContext(e->cx);
	e->t_i1 = LLVMInt1TypeInContext(e->cx);
	e->t_i8 = LLVMInt8TypeInContext(e->cx);
	e->t_i32 = LLVMInt32TypeInContext(e->cx);
	e->t_i64 = LLVMInt64TypeInContext(e->cx);
	e->t_f32 = LLVMFloatTypeInContext(e->cx);
	e->t_ptr = LLVMPointerType(e->t_i8, 0);
	e->t_slots = LLVMPointerType(e->t_ptr, 0);
	LLVMTypeRef targs[3] = {e->t_slots, e->t_i64, e->t_i64};
	e->t_task = LLVMFunctionType(e->t_void, targs, 3, 0);
	e->md_loop = LLVMGetMDKindIDInContext(e->cx, "llvm.loop", 9);
	LLVMContextSetDiagnosticHandler(e->cx, llvm_diag, e);
}

static void
part_close(LlvmEmit *e)
{
	if (e->tm)
		LLVMDisposeTargetMachine(e->tm);
	if (e->b)
		LLVMDisposeBuilder(e->b);
	if (e->mod)
		LLVMDisposeModule(e->mod);
	if (e->cx)
		LLVMContextDispose(e->cx);
	free(e->err);
}

/* one part's optimisation and object emission: runs on its own thread, touches only e */
static void *
part_compile(void *arg)
{
	LlvmEmit *e = arg;
	char *err = NULL;
	LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
	LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
	LLVMPassBuilderOptionsSetLoopInterleaving(po, 1);
	LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
	const char *pipe = e->o->opt_level <= 0 ? "default<O0>" : "default<O3>";
	LLVMErrorRef perr = LLVMRunPasses(e->mod, pipe, e->tm, po);
	LLVMDisposePassBuilderOptions(po);
	e->rc = -1;
	if (perr) {
		char *msg = LLVMGetErrorMessage(perr);
		part_error(e, "LLVM optimisation failed: ", msg);
		LLVMDisposeErrorMessage(msg);
		return NULL;
	}
	if (LLVMTargetMachineEmitToFile(e->tm, e->mod, e->path, LLVMObjectFile, &err)) {
		part_error(e, "cannot write object file: ", err);
		LLVMDisposeMessage(err);
		return NULL;
	}
	e->rc = e->err ? -1 : 0;
	return NULL;
}

/* a target machine per part (the host's CPU unless o->cpu) */
static int
make_machines(LlvmEmit *parts, int nparts, const CgOptions *o, Diag *d)
{
	char *triple = LLVMGetDefaultTargetTriple();
	char *err = NULL;
	LLVMTargetRef target;
	if (LLVMGetTargetFromTriple(triple, &target, &err)) {
		diag_error(d, loc_none, "LLVM has no target for %s: %s", triple, err);
		LLVMDisposeMessage(err);
		LLVMDisposeMessage(triple);
		return -1;
	}
	char *hostcpu = o->cpu ? NULL : LLVMGetHostCPUName();
	char *features = o->cpu ? NULL : LLVMGetHostCPUFeatures();
	LLVMCodeGenOptLevel level = o->opt_level <= 0   ? LLVMCodeGenLevelNone
	                            : o->opt_level == 1 ? LLVMCodeGenLevelLess
	                            : o->opt_level == 2 ? LLVMCodeGenLevelDefault
	                                                : LLVMCodeGenLevelAggressive;
	for (int i = 0; i < nparts; i++) {
		LlvmEmit *e = &parts[i];
		e->tm = LLVMCreateTargetMachine(target, triple, o->cpu ? o->cpu : hostcpu,
		                                features ? features : "", level, LLVMRelocPIC,
		                                LLVMCodeModelDefault);
		LLVMTargetDataRef td = LLVMCreateTargetDataLayout(e->tm);
		LLVMSetModuleDataLayout(e->mod, td);
		LLVMDisposeTargetData(td);
		LLVMSetTarget(e->mod, triple);
	}
	if (features)
		LLVMDisposeMessage(features);
	if (hostcpu)
		LLVMDisposeMessage(hostcpu);
	LLVMDisposeMessage(triple);
	return 0;
}

/* How many modules: cg_compile_threads(), at most one per distinct kernel. */
static int
count_parts(int ndistinct)
{
	int n = cg_compile_threads();
	return n > ndistinct ? (ndistinct < 1 ? 1 : ndistinct) : n;
}

typedef struct {
	double w;
	int k;
} Weighted;

static int
by_weight(const void *a, const void *b)
{
	const Weighted *x = a, *y = b;
	return x->w < y->w ? 1 : x->w > y->w ? -1 : x->k - y->k;
}

/* Kernels with the same signature share the task functions of the first one (rep[]); the
 * distinct ones go to nparts modules, largest first onto the least loaded (owner[]), the
 * size of a kernel's IR text standing for its compile time; module 0 also gets segc_gen_run,
 * whose size grows with the number of kernels and buffers. */
static int
plan_parts(const Program *p, int *rep, int *owner, int *nparts)
{
	const char **sigs = arena_zalloc(p->arena, (p->nkernels + 1) * sizeof *sigs);
	uint64_t *hash = arena_zalloc(p->arena, (p->nkernels + 1) * sizeof *hash);
	Weighted *w = arena_zalloc(p->arena, (p->nkernels + 1) * sizeof *w);
	int ndistinct = 0;
	double runw = 0;
	for (uint32_t ki = 0; ki < p->nkernels; ki++) {
		const Kernel *k = &p->kernels[ki];
		sigs[ki] = kir_signature(p, k, alias_sig(p, k));
		hash[ki] = cg_code_hash(CG_HASH_INIT, sigs[ki], strlen(sigs[ki]), 0);
		rep[ki] = (int)ki;
		for (uint32_t j = 0; j < ki; j++)
			if (rep[j] == (int)j && hash[j] == hash[ki] && !strcmp(sigs[j], sigs[ki])) {
				rep[ki] = (int)j;
				break;
			}
		if (rep[ki] == (int)ki)
			w[ndistinct++] = (Weighted){(double)strlen(sigs[ki]), (int)ki};
		runw += 15.0 * k->nbufs + 20.0 * k->body->nkids; /* optnone: fast isel */
	}
	*nparts = count_parts(ndistinct);
	if (getenv("SEGC_EMIT_STATS")) /* the distinct kernels and their IR sizes (compile time) */
		for (int i = 0; i < ndistinct; i++)
			fprintf(stderr, "distinct %s %.0f\n", p->kernels[w[i].k].name, w[i].w);
	qsort(w, (size_t)ndistinct, sizeof *w, by_weight);
	double load[8] = {runw};
	for (int i = 0; i < ndistinct; i++) {
		int best = 0;
		for (int m = 1; m < *nparts; m++)
			if (load[m] < load[best])
				best = m;
		owner[w[i].k] = best;
		load[best] += w[i].w;
	}
	return 0;
}

/* Build the modules, verify them, optimise and emit each on its own thread, combine the
 * objects (ld -r) into obj_path. */
static int
emit_parts(const Program *p, const CgOptions *o, const char *obj_path, Diag *d)
{
	int *rep = arena_zalloc(p->arena, (p->nkernels + 1) * sizeof *rep);
	int *owner = arena_zalloc(p->arena, (p->nkernels + 1) * sizeof *owner);
	int nparts = 1, rc = 0;
	LlvmEmit parts[8];
	pthread_t tids[8];
	int started[8] = {0};

	memset(parts, 0, sizeof parts);
	LlvmEmit chk = {.p = p, .d = d};
	for (uint32_t ki = 0; ki < p->nkernels; ki++) {
		const Kernel *k = &p->kernels[ki];
		if (check_kernel(&chk, k) < 0)
			return -1;
		for (uint32_t i = 0; i < k->body->nkids; i++)
			if (k->body->kids[i]->ann == LOOP_BLOCK ||
			    k->body->kids[i]->ann == LOOP_THREAD)
				return cg_unsupported(d, k, "cpu", "gpu block/thread loops");
		if (kir_contains(k->body, K_shfl)) /* (block-mapped only: caught above too) */
			return cg_unsupported(d, k, "cpu", "warp shuffles (shfl)");
	}
	plan_parts(p, rep, owner, &nparts);
	for (int m = 0; m < nparts && rc == 0; m++) {
		LlvmEmit *e = &parts[m];
		e->p = p;
		e->d = d;
		e->o = o;
		e->exported = m > 0;
		part_open(e, m);
		if (nparts == 1)
			snprintf(e->path, sizeof e->path, "%s", obj_path);
		else
			snprintf(e->path, sizeof e->path, "%s.part%d", obj_path, m);
		rc = emit_tasks(e, rep, owner, m);
		if (rc == 0 && m == 0)
			rc = emit_run(e, rep);
		char *msg = NULL;
		if (rc == 0 && LLVMVerifyModule(e->mod, LLVMReturnStatusAction, &msg)) {
			char *ir = LLVMPrintModuleToString(e->mod);
			fputs(ir, stderr);
			diag_internal(__FILE__, __LINE__, "invalid LLVM module: %s", msg);
		}
		LLVMDisposeMessage(msg);
	}
	if (rc == 0)
		rc = make_machines(parts, nparts, o, d);
	for (int m = 1; m < nparts && rc == 0; m++)
		started[m] = pthread_create(&tids[m], NULL, part_compile, &parts[m]) == 0;
	if (rc == 0)
		part_compile(&parts[0]);
	for (int m = 1; m < nparts && rc == 0; m++) {
		if (started[m])
			pthread_join(tids[m], NULL);
		else
			part_compile(&parts[m]); /* no thread to be had: here */
	}
	for (int m = 0; m < nparts && rc == 0; m++)
		if (parts[m].err || parts[m].rc)
			rc = diag_error(d, loc_none, "%s: %s", obj_path,
			                parts[m].err ? parts[m].err : "LLVM failed");
	/* module 0 (segc_gen_run, which declares the others' tasks) last: every task's definition
	 * is printed before any declaration of it */
	if (rc == 0 && o->emit_llvm)
		for (int m = nparts - 1; m >= 0; m--) {
			char *s = LLVMPrintModuleToString(parts[m].mod);
			fputs(s, o->emit_llvm);
			LLVMDisposeMessage(s);
		}
	if (rc == 0 && nparts > 1) {
		const char *objs[8];
		for (int m = 0; m < nparts; m++)
			objs[m] = parts[m].path;
		rc = cg_merge_objects(objs, nparts, obj_path, d);
	}
	for (int m = 0; m < nparts; m++) {
		if (nparts > 1 && parts[m].path[0])
			unlink(parts[m].path);
		part_close(&parts[m]);
	}
	return rc;
}

int
cg_emit_llvm(const Program *p, const CgOptions *o, const char *obj_path, Diag *d)
{
	static const CgOptions defaults = {.opt_level = 3};

	if (!o)
		o = &defaults;
	if (o->emit_kernels)
		cg_print_kernels(p, o->emit_kernels);
	LLVMInitializeNativeTarget(); /* once, before any thread */
	LLVMInitializeNativeAsmPrinter();
	return emit_parts(p, o, obj_path, d);
}
