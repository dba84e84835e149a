/* codegen/emit_llvm_vec.c -- outer-loop vectorization of LOOP_VECTOR loops (CPU emitter).
 *
 * LLVM's loop vectorizer only vectorizes innermost loops.  A LOOP_VECTOR loop with a constant
 * trip count of 4..64 (a power of two) whose body contains loops is emitted here instead:
 * its iterations become the lanes of LLVM vectors and the body is emitted once.  Every
 * expression is classified (an_expr) as
 *   uniform  the same in every lane: a scalar, emitted by the scalar emitter (llvm_expr);
 *   affine   base + stride * lane with a uniform base and a constant stride (integers);
 *   vector   anything else: an LLVM vector of `lanes` elements.
 * Variables get the class of their definitions (a fixed point over the body): uniform ones
 * stay scalar allocas, affine ones keep their base in their scalar alloca, vector ones get a
 * vector alloca (mem2reg turns them into registers, so accumulators stay in vector registers
 * across the inner reduction loops).  Loads at an affine index of stride 1 are vector loads,
 * of stride 2..4 one wider masked load and a shuffle, other indices gathers; stores likewise
 * (a shuffle and one wider masked store; scatters in lane order, so the last lane wins as in
 * the scalar loop).  An `if` on a lane-dependent condition is predicated: its body runs with
 * the lanes' mask, loads and stores under a mask are masked, assignments merge with a
 * select.  Inner loops must have uniform
 * bounds.  Not widened (the scalar loop is emitted and LLVM's vectorizer may try): a variable
 * from outside assigned inside, pow on lane-dependent values, lane-dependent inner loop bounds.
 * exp, log, tanh and erf are the emitter's inline polynomials on vectors (llvm_math).  The kernel
 * IR keeps its scalar meaning (emit_cuda.c runs the loop). */
#include "emit_llvm.h"

#include <stdlib.h>
#include <string.h>

enum { VC_UNI, VC_AFF, VC_VEC };

typedef struct {
	LlvmEmit *e;
	int lanes;
	uint8_t *cls;     /* per variable: VC_* */
	int64_t *str;     /* per variable: stride when affine */
	uint16_t *ndef;   /* per variable: lets + assigns inside the loop */
	uint8_t *inside;  /* per variable: declared inside the loop */
	LLVMValueRef *va; /* per vector variable: its vector alloca */
	int changed, bad;
} Widen;

typedef struct {
	int cls;
	int64_t str;    /* affine stride */
	LLVMValueRef s; /* uniform value, affine base */
	LLVMValueRef v; /* vector */
} VV;

/* ---- analysis ---- */

static int
isint(int t)
{
	return t == KT_I32 || t == KT_I64;
}

static int
an_expr(Widen *W, const KNode *n, int masked, int64_t *str)
{
	int64_t sa = 0, sb = 0, c;
	int ca, cb, cc;
	*str = 0;
	switch ((KKind)n->kind) {
	case K_const:
		return VC_UNI;
	case K_var:
		*str = W->str[n->var];
		return W->cls[n->var];
	case K_load:
		ca = an_expr(W, n->a, masked, &sa);
		return ca == VC_UNI && !masked ? VC_UNI : VC_VEC;
	case K_binop:
		ca = an_expr(W, n->a, masked, &sa);
		cb = an_expr(W, n->b, masked, &sb);
		if (ca == VC_UNI && cb == VC_UNI)
			return VC_UNI;
		if (n->op == KB_POW)
			W->bad = 1;
		if (ca == VC_VEC || cb == VC_VEC || !isint(n->type))
			return VC_VEC;
		if (n->op == KB_ADD || n->op == KB_SUB) {
			*str = n->op == KB_ADD ? sa + sb : sa - sb;
			return VC_AFF;
		}
		if (n->op == KB_MUL && (kir_const_i64(n->a, &c) || kir_const_i64(n->b, &c))) {
			*str = (ca == VC_AFF ? sa : sb) * c;
			return VC_AFF;
		}
		return VC_VEC;
	case K_unop:
		ca = an_expr(W, n->a, masked, &sa);
		if (ca == VC_UNI)
			return VC_UNI;
		if (ca == VC_AFF && n->op == KU_NEG) {
			*str = -sa;
			return VC_AFF;
		}
		return VC_VEC;
	case K_select:
		ca = an_expr(W, n->a, masked, &sa);
		cb = an_expr(W, n->b, masked, &sb);
		cc = an_expr(W, n->c, masked, &sa);
		return ca == VC_UNI && cb == VC_UNI && cc == VC_UNI ? VC_UNI : VC_VEC;
	case K_cast:
		return an_expr(W, n->a, masked, &sa) == VC_UNI ? VC_UNI : VC_VEC;
	default:
		break;
	}
	W->bad = 1;
	return VC_VEC;
}

/* variable v is defined by a value of class c (stride s) */
static void
an_def(Widen *W, int v, int c, int64_t s)
{
	if (c == VC_AFF && W->ndef[v] > 1)
		c = VC_VEC;
	if (c == VC_AFF && W->cls[v] == VC_AFF && W->str[v] != s)
		c = VC_VEC;
	if (c > W->cls[v] || (c == VC_AFF && W->cls[v] == VC_AFF && W->str[v] != s)) {
		W->cls[v] = (uint8_t)c;
		W->str[v] = c == VC_AFF ? s : 0;
		W->changed = 1;
	}
}

/* count: definitions per variable, which are declared inside; 1 if the body has a loop */
static int
an_count(Widen *W, const KNode *n)
{
	int loops = 0;
	switch ((KKind)n->kind) {
	case K_block:
		for (uint32_t i = 0; i < n->nkids; i++)
			loops |= an_count(W, n->kids[i]);
		return loops;
	case K_loop:
		W->inside[n->var] = 1;
		an_count(W, n->body);
		return 1;
	case K_if:
		loops = an_count(W, n->body);
		return n->c ? loops | an_count(W, n->c) : loops;
	case K_let:
		W->inside[n->var] = 1;
		W->ndef[n->var]++;
		return 0;
	case K_assign:
		W->ndef[n->var]++;
		return 0;
	default:
		return 0;
	}
}

static void
an_stmt(Widen *W, const KNode *n, int masked)
{
	int64_t s;
	int c;
	switch ((KKind)n->kind) {
	case K_block:
		for (uint32_t i = 0; i < n->nkids; i++)
			an_stmt(W, n->kids[i], masked);
		return;
	case K_loop:
		if (an_expr(W, n->a, masked, &s) != VC_UNI ||
		    an_expr(W, n->b, masked, &s) != VC_UNI)
			W->bad = 1;
		an_stmt(W, n->body, masked);
		return;
	case K_if:
		c = an_expr(W, n->a, masked, &s);
		an_stmt(W, n->body, masked || c != VC_UNI);
		if (n->c)
			an_stmt(W, n->c, masked || c != VC_UNI);
		return;
	case K_let:
		c = an_expr(W, n->a, masked, &s);
		an_def(W, n->var, c, s);
		return;
	case K_assign:
		if (!W->inside[n->var])
			W->bad = 1;
		c = an_expr(W, n->a, masked, &s);
		an_def(W, n->var, masked ? VC_VEC : c, s);
		return;
	case K_store:
		an_expr(W, n->a, masked, &s);
		an_expr(W, n->b, masked, &s);
		return;
	case K_barrier:
		return;
	default:
		W->bad = 1;
		return;
	}
}

/* ---- emission helpers ---- */

static LLVMValueRef
vci32(LlvmEmit *e, int64_t v)
{
	return LLVMConstInt(e->t_i32, (unsigned long long)v, 1);
}

static LLVMValueRef
splat(Widen *W, LLVMValueRef s)
{
	LlvmEmit *e = W->e;
	LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)W->lanes);
	LLVMValueRef v = LLVMBuildInsertElement(e->b, LLVMGetUndef(vt), s, vci32(e, 0), "");
	LLVMValueRef zero = LLVMConstNull(LLVMVectorType(e->t_i32, (unsigned)W->lanes));
	return LLVMBuildShuffleVector(e->b, v, LLVMGetUndef(vt), zero, "");
}

/* the constant vector <0, s, 2s, ...> of integer type t */
static LLVMValueRef
steps(Widen *W, LLVMTypeRef t, int64_t s, int n)
{
	LLVMValueRef c[256];
	for (int i = 0; i < n; i++)
		c[i] = LLVMConstInt(t, (unsigned long long)(s * i), 1);
	return LLVMConstVector(c, (unsigned)n);
}

/* vv as a vector of kernel type kt */
static LLVMValueRef
mat(Widen *W, VV vv)
{
	LlvmEmit *e = W->e;
	if (vv.cls == VC_VEC)
		return vv.v;
	LLVMValueRef v = splat(W, vv.s);
	if (vv.cls == VC_AFF && vv.str != 0)
		v = LLVMBuildAdd(e->b, v, steps(W, LLVMTypeOf(vv.s), vv.str, W->lanes), "");
	return v;
}

static VV
uni(LLVMValueRef s)
{
	VV r = {VC_UNI, 0, s, NULL};
	return r;
}

static VV
vec(LLVMValueRef v)
{
	VV r = {VC_VEC, 0, NULL, v};
	return r;
}

static LLVMValueRef
call_intr(Widen *W, const char *name, LLVMTypeRef *over, unsigned nover, LLVMValueRef *args,
          unsigned nargs)
{
	LlvmEmit *e = W->e;
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	SEGC_ASSERT(id != 0);
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(e->mod, id, over, nover);
	LLVMTypeRef ft = LLVMIntrinsicGetType(e->cx, id, over, nover);
	return LLVMBuildCall2(e->b, ft, f, args, nargs, "");
}

static LLVMValueRef
alltrue(Widen *W, int n)
{
	LLVMValueRef c[256];
	for (int i = 0; i < n; i++)
		c[i] = LLVMConstInt(W->e->t_i1, 1, 0);
	return LLVMConstVector(c, (unsigned)n);
}

static VV vx(Widen *W, const KNode *n, LLVMValueRef mask);

/* an i64 base index (sign-extended from i32) */
static LLVMValueRef
idx64(Widen *W, LLVMValueRef i)
{
	LlvmEmit *e = W->e;
	LLVMTypeRef t = LLVMTypeOf(i);
	if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) {
		if (LLVMGetElementType(t) != e->t_i64)
			i = LLVMBuildSExt(e->b, i, LLVMVectorType(e->t_i64, (unsigned)W->lanes),
			                  "");
		return i;
	}
	return t == e->t_i64 ? i : LLVMBuildSExt(e->b, i, e->t_i64, "");
}

/* the vector of lane pointers of buffer b at index vv */
static LLVMValueRef
lane_ptrs(Widen *W, int b, VV vv)
{
	LlvmEmit *e = W->e;
	LLVMTypeRef et = llvm_elemtype(e, e->k->bufs[b].dtype);
	LLVMValueRef vi = idx64(W, mat(W, vv));
	return LLVMBuildInBoundsGEP2(e->b, et, e->bases[b], &vi, 1, "");
}

static LLVMValueRef
vload(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	const KBuf *kb = &e->k->bufs[n->buf];
	LLVMTypeRef et = llvm_elemtype(e, kb->dtype);
	unsigned al = llvm_elemsize(kb->dtype), L = (unsigned)W->lanes;
	LLVMTypeRef vt = LLVMVectorType(et, L);
	VV ix = vx(W, n->a, mask);
	LLVMValueRef v, args[4];

	if (ix.cls == VC_AFF && ix.str >= 1 && ix.str <= 4) {
		unsigned s = (unsigned)ix.str, wn = L * s;
		LLVMValueRef base = idx64(W, ix.s);
		LLVMValueRef ptr = LLVMBuildInBoundsGEP2(e->b, et, e->bases[n->buf], &base, 1, "");
		LLVMTypeRef wt = LLVMVectorType(et, wn);
		LLVMValueRef m = mask;
		if (s > 1) { /* element j of the wide load is lane j/s when j % s == 0 */
			LLVMValueRef pick[256], pat[256];
			for (unsigned j = 0; j < wn; j++) {
				pick[j] = vci32(e, j / s);
				pat[j] = LLVMConstInt(e->t_i1, j % s == 0, 0);
			}
			LLVMValueRef pv = LLVMConstVector(pat, wn);
			m = mask ? LLVMBuildAnd(e->b,
			                        LLVMBuildShuffleVector(
			                            e->b, mask, LLVMGetUndef(LLVMTypeOf(mask)),
			                            LLVMConstVector(pick, wn), ""),
			                        pv, "")
			         : pv;
		}
		LLVMValueRef vp = LLVMBuildBitCast(e->b, ptr, LLVMPointerType(wt, 0), "");
		if (m) {
			LLVMTypeRef over[2] = {wt, LLVMPointerType(wt, 0)};
			args[0] = vp, args[1] = vci32(e, al), args[2] = m,
			args[3] = LLVMConstNull(wt);
			v = call_intr(W, "llvm.masked.load", over, 2, args, 4);
		} else {
			v = LLVMBuildLoad2(e->b, wt, vp, "");
			LLVMSetAlignment(v, al);
		}
		if (s > 1) {
			LLVMValueRef take[64];
			for (unsigned i = 0; i < L; i++)
				take[i] = vci32(e, i * s);
			v = LLVMBuildShuffleVector(e->b, v, LLVMGetUndef(wt),
			                           LLVMConstVector(take, L), "");
		}
	} else {
		LLVMValueRef ptrs = lane_ptrs(W, n->buf, ix);
		LLVMTypeRef over[2] = {vt, LLVMTypeOf(ptrs)};
		args[0] = ptrs, args[1] = vci32(e, al);
		args[2] = mask ? mask : alltrue(W, W->lanes), args[3] = LLVMConstNull(vt);
		v = call_intr(W, "llvm.masked.gather", over, 2, args, 4);
	}
	if (kb->dtype == DT_U8)
		v = LLVMBuildZExt(e->b, v, LLVMVectorType(e->t_i32, L), "");
	return v;
}

static int
vstore(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	const KBuf *kb = &e->k->bufs[n->buf];
	LLVMTypeRef et = llvm_elemtype(e, kb->dtype);
	unsigned al = llvm_elemsize(kb->dtype), L = (unsigned)W->lanes;
	LLVMTypeRef vt = LLVMVectorType(et, L);
	int64_t s;
	if (!mask && an_expr(W, n->a, 0, &s) == VC_UNI && an_expr(W, n->b, 0, &s) == VC_UNI) {
		LLVMValueRef dummy;
		return llvm_node(e, n, &dummy);
	}
	VV ix = vx(W, n->a, mask);
	LLVMValueRef v = mat(W, vx(W, n->b, mask)), args[4];
	if (kb->dtype == DT_U8)
		v = LLVMBuildTrunc(e->b, v, vt, "");
	if (ix.cls == VC_AFF && ix.str == 1) {
		LLVMValueRef base = idx64(W, ix.s);
		LLVMValueRef ptr = LLVMBuildInBoundsGEP2(e->b, et, e->bases[n->buf], &base, 1, "");
		LLVMValueRef vp = LLVMBuildBitCast(e->b, ptr, LLVMPointerType(vt, 0), "");
		if (!mask) {
			LLVMSetAlignment(LLVMBuildStore(e->b, v, vp), al);
			return 0;
		}
		LLVMTypeRef over[2] = {vt, LLVMPointerType(vt, 0)};
		args[0] = v, args[1] = vp, args[2] = vci32(e, al), args[3] = mask;
		call_intr(W, "llvm.masked.store", over, 2, args, 4);
		return 0;
	}
	if (ix.cls == VC_AFF && ix.str >= 2 && ix.str <= 4) {
		/* one wide masked store: lane i at element i*s, the others untouched */
		unsigned s = (unsigned)ix.str, wn = L * s;
		LLVMValueRef pick[256], pat[256], mp[256];
		for (unsigned j = 0; j < wn; j++) {
			pick[j] = j % s == 0 ? vci32(e, j / s) : vci32(e, 0);
			mp[j] = vci32(e, j / s);
			pat[j] = LLVMConstInt(e->t_i1, j % s == 0, 0);
		}
		LLVMValueRef pv = LLVMConstVector(pat, wn);
		LLVMValueRef m = mask ? LLVMBuildAnd(e->b,
		                                     LLVMBuildShuffleVector(
		                                         e->b, mask, LLVMGetUndef(LLVMTypeOf(mask)),
		                                         LLVMConstVector(mp, wn), ""),
		                                     pv, "")
		                      : pv;
		LLVMValueRef wv = LLVMBuildShuffleVector(e->b, v, LLVMGetUndef(vt),
		                                         LLVMConstVector(pick, wn), "");
		LLVMTypeRef wt = LLVMVectorType(et, wn);
		LLVMValueRef base = idx64(W, ix.s);
		LLVMValueRef ptr = LLVMBuildInBoundsGEP2(e->b, et, e->bases[n->buf], &base, 1, "");
		LLVMValueRef vp = LLVMBuildBitCast(e->b, ptr, LLVMPointerType(wt, 0), "");
		LLVMTypeRef over[2] = {wt, LLVMPointerType(wt, 0)};
		args[0] = wv, args[1] = vp, args[2] = vci32(e, al), args[3] = m;
		call_intr(W, "llvm.masked.store", over, 2, args, 4);
		return 0;
	}
	LLVMValueRef ptrs = lane_ptrs(W, n->buf, ix);
	LLVMTypeRef over[2] = {vt, LLVMTypeOf(ptrs)};
	args[0] = v, args[1] = ptrs, args[2] = vci32(e, al);
	args[3] = mask ? mask : alltrue(W, W->lanes);
	call_intr(W, "llvm.masked.scatter", over, 2, args, 4);
	return 0;
}

static int
isfmul(const KNode *n)
{
	return n->kind == K_binop && n->op == KB_MUL && n->type == KT_F32;
}

static LLVMValueRef
vbinop(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	if (n->a->type == KT_F32 && (n->op == KB_ADD || n->op == KB_SUB)) {
		const KNode *m = isfmul(n->a) ? n->a : NULL;
		if (!m && n->op == KB_ADD && isfmul(n->b))
			m = n->b;
		if (m) { /* a*b + c: llvm.fmuladd, as in the scalar emitter */
			const KNode *other = m == n->a ? n->b : n->a;
			LLVMValueRef c = mat(W, vx(W, other, mask));
			if (n->op == KB_SUB)
				c = LLVMBuildFNeg(e->b, c, "");
			LLVMValueRef args[3] = {mat(W, vx(W, m->a, mask)),
			                        mat(W, vx(W, m->b, mask)), c};
			return llvm_intrinsic(e, "llvm.fmuladd", args, 3);
		}
	}
	LLVMValueRef a = mat(W, vx(W, n->a, mask)), c = mat(W, vx(W, n->b, mask));
	return n->a->type == KT_F32 ? llvm_fbinop(e, n, a, c) : llvm_ibinop(e, n, a, c);
}

static LLVMValueRef
vunop(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	LLVMValueRef a = mat(W, vx(W, n->a, mask));
	LLVMTypeRef t = LLVMTypeOf(a);
	if (n->a->type != KT_F32) {
		LLVMValueRef zero = LLVMConstNull(t);
		if (n->op == KU_NEG)
			return LLVMBuildSub(e->b, zero, a, "");
		if (n->op == KU_ABS)
			return LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, a, zero, ""),
			                       LLVMBuildSub(e->b, zero, a, ""), a, "");
		SEGC_ASSERT(n->op == KU_NOT);
		return LLVMBuildNot(e->b, a, "");
	}
	switch (n->op) {
	case KU_NEG:
		return LLVMBuildFNeg(e->b, a, "");
	case KU_ABS:
		return llvm_intrinsic(e, "llvm.fabs", &a, 1);
	case KU_SQRT:
		return llvm_intrinsic(e, "llvm.sqrt", &a, 1);
	case KU_RSQRT:
		return LLVMBuildFDiv(e->b, splat(W, llvm_cf32(e, 1.0)),
		                     llvm_intrinsic(e, "llvm.sqrt", &a, 1), "");
	case KU_FLOOR:
		return llvm_intrinsic(e, "llvm.floor", &a, 1);
	case KU_CEIL:
		return llvm_intrinsic(e, "llvm.ceil", &a, 1);
	case KU_TF32:
		return llvm_tf32(e, a);
	case KU_EXP:
	case KU_LOG:
	case KU_TANH:
	case KU_ERF:
		return llvm_math(e, n->op, a);
	default:
		break;
	}
	SEGC_ASSERT(!"unop not widened");
	return NULL;
}

static LLVMValueRef
vcast(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	LLVMBuilderRef b = e->b;
	LLVMValueRef a = mat(W, vx(W, n->a, mask));
	int from = n->a->type, to = n->type;
	LLVMTypeRef tt = LLVMVectorType(llvm_ktype(e, to), (unsigned)W->lanes);
	if (from == to)
		return a;
	if (to == KT_BOOL && from == KT_F32)
		return LLVMBuildFCmp(b, LLVMRealUNE, a, LLVMConstNull(LLVMTypeOf(a)), "");
	if (to == KT_BOOL)
		return LLVMBuildICmp(b, LLVMIntNE, a, LLVMConstNull(LLVMTypeOf(a)), "");
	if (from == KT_BOOL)
		return to == KT_F32 ? LLVMBuildUIToFP(b, a, tt, "") : LLVMBuildZExt(b, a, tt, "");
	if (from == KT_F32)
		return LLVMBuildFPToSI(b, a, tt, "");
	if (to == KT_F32)
		return LLVMBuildSIToFP(b, a, tt, "");
	return to == KT_I64 ? LLVMBuildSExt(b, a, tt, "") : LLVMBuildTrunc(b, a, tt, "");
}

/* expression n under mask (NULL: every lane) */
static VV
vx(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	int64_t st;
	int c = an_expr(W, n, mask != NULL, &st);
	if (c == VC_UNI)
		return uni(llvm_expr(e, n));
	switch ((KKind)n->kind) {
	case K_var: {
		LLVMTypeRef t = llvm_ktype(e, e->k->vartypes[n->var]);
		if (c == VC_AFF) {
			VV r = {VC_AFF, st, LLVMBuildLoad2(e->b, t, e->vars[n->var], ""), NULL};
			return r;
		}
		LLVMTypeRef vt = LLVMVectorType(t, (unsigned)W->lanes);
		return vec(LLVMBuildLoad2(e->b, vt, W->va[n->var], ""));
	}
	case K_load:
		return vec(vload(W, n, mask));
	case K_binop:
		if (c == VC_AFF) {
			VV a = vx(W, n->a, mask), b = vx(W, n->b, mask);
			VV r = {VC_AFF, st, llvm_ibinop(e, n, a.s, b.s), NULL};
			return r;
		}
		return vec(vbinop(W, n, mask));
	case K_unop:
		if (c == VC_AFF) {
			VV a = vx(W, n->a, mask);
			VV r = {VC_AFF, st, LLVMBuildNeg(e->b, a.s, ""), NULL};
			return r;
		}
		return vec(vunop(W, n, mask));
	case K_select: {
		VV cv = vx(W, n->a, mask);
		LLVMValueRef cnd = cv.cls == VC_UNI ? cv.s : mat(W, cv);
		LLVMValueRef t = mat(W, vx(W, n->b, mask)), f = mat(W, vx(W, n->c, mask));
		return vec(LLVMBuildSelect(e->b, cnd, t, f, ""));
	}
	case K_cast:
		return vec(vcast(W, n, mask));
	default:
		break;
	}
	SEGC_ASSERT(!"not a widened expression");
	return uni(NULL);
}

static int vs(Widen *W, const KNode *n, LLVMValueRef mask);

/* an inner loop with uniform bounds: scalar induction variable, body under mask */
static int
vloop(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	LLVMBuilderRef b = e->b;
	LLVMValueRef var = e->vars[n->var];
	LLVMTypeRef vt = llvm_ktype(e, e->k->vartypes[n->var]);
	LLVMValueRef lo = llvm_expr(e, n->a), hi = llvm_expr(e, n->b);
	LLVMBasicBlockRef head = llvm_newblock(e, "vloop"), body = llvm_newblock(e, "vbody");
	LLVMBasicBlockRef latch = llvm_newblock(e, "vlatch"), exit = llvm_newblock(e, "vdone");

	LLVMBuildStore(b, lo, var);
	LLVMBuildBr(b, head);
	LLVMPositionBuilderAtEnd(b, head);
	LLVMValueRef iv = LLVMBuildLoad2(b, vt, var, "");
	LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, iv, hi, ""), body, exit);
	LLVMPositionBuilderAtEnd(b, body);
	if (vs(W, n->body, mask) < 0)
		return -1;
	LLVMBuildBr(b, latch);
	LLVMPositionBuilderAtEnd(b, latch);
	iv = LLVMBuildLoad2(b, vt, var, "");
	LLVMValueRef step = LLVMConstInt(vt, (unsigned long long)n->ival, 1);
	LLVMBuildStore(b, LLVMBuildNSWAdd(b, iv, step, ""), var);
	LLVMValueRef br = LLVMBuildBr(b, head);
	llvm_loop_hint(e, br, n, 0); /* (already vectorised: no vectorize hint) */
	LLVMPositionBuilderAtEnd(b, exit);
	return 0;
}

static int
vdef(Widen *W, const KNode *n, LLVMValueRef mask, int assign)
{
	LlvmEmit *e = W->e;
	int v = n->var;
	if (W->cls[v] == VC_UNI) {
		LLVMBuildStore(e->b, llvm_expr(e, n->a), e->vars[v]);
		return 0;
	}
	VV x = vx(W, n->a, mask);
	if (W->cls[v] == VC_AFF) {
		SEGC_ASSERT(x.cls == VC_AFF && x.str == W->str[v]);
		LLVMBuildStore(e->b, x.s, e->vars[v]);
		return 0;
	}
	LLVMValueRef val = mat(W, x);
	if (assign && mask) {
		LLVMTypeRef vt =
		    LLVMVectorType(llvm_ktype(e, e->k->vartypes[v]), (unsigned)W->lanes);
		LLVMValueRef old = LLVMBuildLoad2(e->b, vt, W->va[v], "");
		val = LLVMBuildSelect(e->b, mask, val, old, "");
	}
	LLVMBuildStore(e->b, val, W->va[v]);
	return 0;
}

/* statement n under mask */
static int
vs(Widen *W, const KNode *n, LLVMValueRef mask)
{
	LlvmEmit *e = W->e;
	LLVMValueRef dummy;
	int64_t st;
	switch ((KKind)n->kind) {
	case K_block:
		for (uint32_t i = 0; i < n->nkids; i++)
			if (vs(W, n->kids[i], mask) < 0)
				return -1;
		return 0;
	case K_loop:
		return vloop(W, n, mask);
	case K_if:
		if (an_expr(W, n->a, mask != NULL, &st) == VC_UNI) {
			LLVMBasicBlockRef then = llvm_newblock(e, "vthen"),
			                  els = llvm_newblock(e, "velse");
			LLVMBasicBlockRef join = llvm_newblock(e, "vendif");
			LLVMBuildCondBr(e->b, llvm_expr(e, n->a), then, els);
			LLVMPositionBuilderAtEnd(e->b, then);
			if (vs(W, n->body, mask) < 0)
				return -1;
			LLVMBuildBr(e->b, join);
			LLVMPositionBuilderAtEnd(e->b, els);
			if (n->c && vs(W, n->c, mask) < 0)
				return -1;
			LLVMBuildBr(e->b, join);
			LLVMPositionBuilderAtEnd(e->b, join);
			return 0;
		} else {
			LLVMValueRef c = mat(W, vx(W, n->a, mask));
			LLVMValueRef m1 = mask ? LLVMBuildAnd(e->b, mask, c, "") : c;
			if (vs(W, n->body, m1) < 0)
				return -1;
			if (!n->c)
				return 0;
			LLVMValueRef nc = LLVMBuildNot(e->b, c, "");
			return vs(W, n->c, mask ? LLVMBuildAnd(e->b, mask, nc, "") : nc);
		}
	case K_let:
		return vdef(W, n, mask, 0);
	case K_assign:
		return vdef(W, n, mask, 1);
	case K_store:
		return vstore(W, n, mask);
	case K_barrier:
		return 0;
	default:
		break;
	}
	return llvm_node(e, n, &dummy);
}

int
llvm_widen(LlvmEmit *e, const KNode *n)
{
	int64_t lo, hi;
	if (!kir_const_i64(n->a, &lo) || !kir_const_i64(n->b, &hi) || n->ival != 1)
		return 1;
	/* a power of two: other widths legalise badly (48 lanes ran 10x slower than 32) */
	if (hi - lo < 4 || hi - lo > 64 || ((hi - lo) & (hi - lo - 1)) || cg_knob("SEGC_NO_WIDEN"))
		return 1;
	uint32_t nv = e->k->nvars;
	Widen W = {0};
	W.e = e, W.lanes = (int)(hi - lo);
	W.cls = calloc(nv, 1);
	W.str = calloc(nv, sizeof *W.str);
	W.ndef = calloc(nv, sizeof *W.ndef);
	W.inside = calloc(nv, 1);
	W.va = calloc(nv, sizeof *W.va);
	SEGC_ASSERT(W.cls && W.str && W.ndef && W.inside && W.va);
	int rc = 1;
	if (!an_count(&W, n->body))
		goto done;
	W.cls[n->var] = VC_AFF, W.str[n->var] = 1, W.inside[n->var] = 1, W.ndef[n->var] = 1;
	for (int it = 0; it < 64; it++) {
		W.changed = 0;
		an_stmt(&W, n->body, 0);
		if (!W.changed || W.bad)
			break;
	}
	if (W.bad || W.changed)
		goto done;
	/* vector allocas at the function's entry, where mem2reg finds them */
	LLVMBuilderRef ab = LLVMCreateBuilderInContext(e->cx);
	LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(e->fn);
	LLVMPositionBuilderBefore(ab, LLVMGetFirstInstruction(entry));
	for (uint32_t v = 0; v < nv; v++)
		if (W.cls[v] == VC_VEC)
			W.va[v] = LLVMBuildAlloca(
			    ab, LLVMVectorType(llvm_ktype(e, e->k->vartypes[v]), (unsigned)W.lanes),
			    "");
	LLVMDisposeBuilder(ab);
	/* the lane variable is affine with base lo */
	LLVMBuildStore(e->b, LLVMConstInt(llvm_ktype(e, e->k->vartypes[n->var]), (uint64_t)lo, 1),
	               e->vars[n->var]);
	rc = vs(&W, n->body, NULL);
done:
	free(W.cls), free(W.str), free(W.ndef), free(W.inside), free(W.va);
	return rc;
}
