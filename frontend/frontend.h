/* frontend/frontend.h -- graph.json (segc-graph/1) to a Module.
 *
 * fe_load() reads the file, applies -D overrides to params, expands modules, repeat and when,
 * evaluates attribute expressions, composes weight names from instance paths, and builds the
 * IR through ir/builder.c (which runs shape rules as nodes are added).  Every error is one line
 * with the file and a JSON pointer; nothing is built past the first phase with errors. */
#ifndef SEGC_FRONTEND_H
#define SEGC_FRONTEND_H
#include "ir.h"
#include "tune.h"

typedef struct {
	const char *name;
	const char *value;       /* text as given on the command line: "32", "true", "0.5,0.7" */
} FeDefine;

typedef struct {
	const FeDefine *defines;
	int ndefines;
	const char *lib_dir;     /* where "include" paths are looked up; NULL: <graph dir>/lib */
} FeOptions;

/* Returns a new module (caller frees with ir_module_free), or NULL after diagnostics. */
Module *fe_load(const char *path, const FeOptions *o, Diag *d);
/* Same, from text in memory (for tests and fuzzing); path is used in messages only. */
Module *fe_load_text(const char *text, size_t len, const char *path, const FeOptions *o, Diag *d);

/* A tuning table (ir/tune.h; the segc-tune/1 format: docs/tune.md) read into t, its strings in
 * a.  check(name, value, target): NULL when an entry for the file's target may set knob name
 * (value NULL) or set it to value, else what is expected (check NULL: anything goes).  0, or -1
 * after one diagnostic: the file and a JSON pointer, what was expected. */
typedef const char *(*FeKnobCheck)(const char *name, const char *value, const char *target);
int fe_tune_load(const char *path, Arena *a, FeKnobCheck check, TuneTable *t, Diag *d);
/* Same, from text in memory (tests and fuzzing); path is used in messages only. */
int fe_tune_load_text(const char *text, size_t len, const char *path, Arena *a,
                      FeKnobCheck check, TuneTable *t, Diag *d);

#endif
