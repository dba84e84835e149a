/* codegen/cuda_host.c -- the host object of a CUDA engine (codegen/emit_cuda.c): the manifest,
 * the launch schedule, the kernel table and the cubin as constant globals, built with the LLVM C
 * API for the host's triple; linked with the runtime like a CPU engine's object (docs/cuda.md).
 * One LLVMContextRef per call, created and disposed here (STYLE.md 3.7). */
#include "cg.h"

#include <stdio.h>
#include <string.h>

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

static LLVMValueRef
global(LLVMModuleRef mod, LLVMValueRef init, const char *name)
{
	LLVMValueRef g = LLVMAddGlobal(mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetVisibility(g, LLVMHiddenVisibility);
	LLVMSetAlignment(g, 16);
	return g;
}

/* the host object: segc_gen_manifest, segc_gen_cuda_{schedule,cubin,cubin_size} and a
 * segc_gen_run that the runtime never calls for a CUDA engine (it answers 1) */
int
cg_cuda_host_object(const Program *p, const char *manifest, const char *sched, const void *cubin,
                    size_t ncubin, const char *obj_path, Diag *d)
{
	LLVMInitializeNativeTarget();
	LLVMInitializeNativeAsmPrinter();
	LLVMContextRef cx = LLVMContextCreate();
	LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("engine", cx);
	LLVMBuilderRef b = LLVMCreateBuilderInContext(cx);
	LLVMTypeRef t_i8 = LLVMInt8TypeInContext(cx), t_i32 = LLVMInt32TypeInContext(cx);
	LLVMTypeRef t_ptr = LLVMPointerType(t_i8, 0);
	int rc = -1;

	global(mod, LLVMConstStringInContext(cx, manifest, (unsigned)strlen(manifest), 0),
	       "segc_gen_manifest");
	global(mod, LLVMConstStringInContext(cx, sched, (unsigned)strlen(sched), 0),
	       "segc_gen_cuda_schedule");
	const char *kinfo = cg_kernel_table(p);
	global(mod, LLVMConstStringInContext(cx, kinfo, (unsigned)strlen(kinfo), 0),
	       "segc_gen_kinfo");
	global(mod, LLVMConstStringInContext(cx, cubin, (unsigned)ncubin, 1),
	       "segc_gen_cuda_cubin");
	global(mod, LLVMConstInt(LLVMInt64TypeInContext(cx), ncubin, 0),
	       "segc_gen_cuda_cubin_size");
	LLVMTypeRef rargs[2] = {LLVMPointerType(t_ptr, 0), t_ptr};
	LLVMValueRef run =
	    LLVMAddFunction(mod, "segc_gen_run", LLVMFunctionType(t_i32, rargs, 2, 0));
	LLVMSetVisibility(run, LLVMHiddenVisibility);
	LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(cx, run, "entry"));
	LLVMBuildRet(b, LLVMConstInt(t_i32, 1, 0));

	char *triple = LLVMGetDefaultTargetTriple(), *err = NULL;
	LLVMTargetRef target;
	if (LLVMGetTargetFromTriple(triple, &target, &err)) {
		diag_error(d, loc_none, "LLVM has no target for %s: %s", triple, err);
		LLVMDisposeMessage(err);
	} else {
		LLVMTargetMachineRef tm =
		    LLVMCreateTargetMachine(target, triple, "generic", "", LLVMCodeGenLevelNone,
		                            LLVMRelocPIC, LLVMCodeModelDefault);
		char path[4096];
		snprintf(path, sizeof path, "%s", obj_path);
		LLVMSetTarget(mod, triple);
		if (LLVMTargetMachineEmitToFile(tm, mod, path, LLVMObjectFile, &err)) {
			diag_error(d, loc_none, "%s: cannot write object file: %s", obj_path,
			           err);
			LLVMDisposeMessage(err);
		} else {
			rc = 0;
		}
		LLVMDisposeTargetMachine(tm);
	}
	LLVMDisposeMessage(triple);
	LLVMDisposeBuilder(b);
	LLVMDisposeModule(mod);
	LLVMContextDispose(cx);
	return rc;
}

