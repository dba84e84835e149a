/* passes/pass.h -- the pass manager's interface and every pass's entry point.
 *
 * A pass is one file passes/<name>.c with one exported function pass_<name>(Module *, PassCtx *).
 * It reports change through cx->changed, allocates temporaries from cx->scratch (freed when it
 * returns), reports user errors through cx->diag and returns -1 on error.  It does not print
 * (the manager dumps), does not call other passes, and includes no other pass's header.
 * The default order is the table in passes/pipeline.c. */
#ifndef SEGC_PASS_H
#define SEGC_PASS_H
#include "ir.h"

typedef struct {
	const char *dump_after;  /* pass name or "all": print the IR after it to dump (stderr) */
	FILE *dump;              /* NULL: stderr */
	int verify_each;         /* run ir_verify after every pass */
	int time_passes;         /* print each pass's time to stderr */
	int no_fuse;             /* one kernel per node (the -O0 reference for fusion tests) */
	int prologue;            /* 1: load prologues into conv kernels (fuse.c); 0: none */
	int stats;               /* 1: a conv's instance-norm moments join its group (fuse.c) */
	int act_bf16;            /* 1: activations in the arena stored as bf16 (memplan.c) */
	int opt_level;           /* 0..3 (default 3) */
	int num_threads;         /* schedule hint; 0: decided at run time */
	int layout;              /* LAYOUT_*: passes/layout.c */
	int gpu;                 /* compiling for the cuda target */
} PassOptions;

enum { LAYOUT_AUTO, LAYOUT_NCDHW, LAYOUT_NDHWC };

typedef struct {
	Diag *diag;
	const PassOptions *opt;
	Arena *scratch;
	int changed;
} PassCtx;

typedef struct {
	const char *name;
	int (*run)(Module *, PassCtx *);
	const char *what;        /* one line for --help and docs/passes.md */
} Pass;

#define PASS(name, what) int pass_##name(Module *, PassCtx *);
#include "passes.def"

/* Run the default pipeline (passes.def order).  Returns 0, or -1 after diagnostics. */
int pass_run_pipeline(Module *m, const PassOptions *o, Diag *d);
/* Run one named pass; -1 with a diagnostic if the name is unknown. */
int pass_run_one(Module *m, const char *name, const PassOptions *o, Diag *d);
const Pass *pass_list(int *n);

/* canon rewrites of op families (passes/canon_<family>.c): the replacement of node at's
 * result, built with ir_add_node (pass_canon places the new nodes) */
ValueId canon_m4fuse(Module *m, NodeId at, Diag *d);
ValueId canon_velox(Module *m, const Node *n, Diag *d);   /* n: a copy; 0 after a diag */

/* After a pass appended replacement nodes (passes/pipeline.c): the nodes appended for node i
 * (span[i] = [lo, hi)) go right before it, those from index tail on go last; dead nodes are
 * dropped and definitions renumbered.  canon and layout use it. */
void pass_place(Module *m, uint32_t norig, const uint32_t (*span)[2], uint32_t tail);

/* Dump the module (ir_print) with a header naming the pass. */
void pass_dump(const Module *m, FILE *f, const char *pass, int changed);

/* canon rewrite of a Mamba-HoME op (passes/canon_home.c): appends the replacement of node
 * `at` (with its name and Loc) and returns the value that replaces its result */
ValueId canon_home(Module *m, NodeId at, Diag *d);
/* canon rewrite of rms_norm, rms_norm_l2, dyt, token_score (passes/canon_mamba.c) */
ValueId canon_mamba(Module *m, NodeId at, Diag *d);

#endif
