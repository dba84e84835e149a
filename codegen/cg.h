/* codegen/cg.h -- from a planned module to an engine: lowering, emitters, linking.
 *
 * cg_lower() turns each Group of the module (in order) into a Kernel through the op templates
 * (codegen/tmpl_*.c) and writes the manifest; cg_emit_llvm() turns the Program into an object
 * file; cg_link() links it with the runtime archive into engine.so.  Errors go to the Diag with
 * the root node's Loc; an op or feature a backend lacks is refused with cg_unsupported(). */
#ifndef SEGC_CG_H
#define SEGC_CG_H
#include "kir.h"

typedef struct {
	const char *target;      /* "cpu" (default) or "cuda:sm_90" */
	const char *cpu;         /* LLVM CPU name; NULL: the host's */
	int opt_level;           /* 0..3 */
	FILE *emit_llvm;         /* if set: print the optimised LLVM IR here */
	FILE *emit_kernels;      /* if set: print the kernel IR here */
	const char *runtime_lib; /* path of libsegc_rt.a to link; NULL: next to the segc binary */
	int keep_temps;
} CgOptions;

/* Lower every group into p (p->arena must be set).  0, or -1 after diagnostics. */
int cg_lower(const Module *m, Program *p, Diag *d);
/* Manifest text for m (docs/abi.md), allocated from arena. */
const char *cg_manifest(const Module *m, Arena *arena);
/* Emit an object file at obj_path for the CPU.  0, or -1 after diagnostics. */
int cg_emit_llvm(const Program *p, const CgOptions *o, const char *obj_path, Diag *d);
/* Link obj with the runtime archive into a shared library at out_path (written to a temporary
 * file and renamed).  0, or -1 after diagnostics. */
int cg_link(const char *obj_path, const CgOptions *o, const char *out_path, Diag *d);
int cg_unsupported(Diag *d, const Kernel *k, const char *backend, const char *what);

#endif
