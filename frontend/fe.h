/* frontend/fe.h -- what the frontend's files share (not a public header).
 *
 *   load.c    read the file, parse JSON, syntax errors as line:col, duplicate keys, includes
 *   expr.c    the expression language of attributes, args, shapes, repeat and when
 *   params.c  graph params, -D overrides, JSON values -> FeVal
 *   expand.c  bodies, module calls, repeat, when, value names, outputs
 *   build.c   op nodes: attribute schema checks, operands, weights -> ir_add_node
 *
 * Every cJSON tree is owned by fe_load_text() (FeCtx.trees) and deleted there; every string
 * that outlives the load is copied into m->arena; scratch data lives in FeCtx.a. */
#ifndef SEGC_FE_H
#define SEGC_FE_H
#include <cjson/cJSON.h>

#include "frontend.h"

/* a cJSON type bit (above cJSON's own flags): a number literal written with '.', 'e' or 'E' */
#define FE_JSON_FLOAT (1 << 12)

enum {
	FE_MAX_REPEAT = 10000,     /* repeat count of one call */
	FE_MAX_NODES = 1000000,    /* IR nodes in one module */
	FE_MAX_STEPS = 4000000,    /* body entries visited during expansion */
	FE_MAX_EXPR = 4096,        /* characters in one expression */
	FE_MAX_EXPR_DEPTH = 64,    /* nesting in one expression */
	FE_MAX_CALL_DEPTH = 64,    /* nested module calls */
	FE_MAX_INCLUDE_DEPTH = 16, /* nested includes */
	FE_MAX_LIST = 1024,        /* elements of a list value */
};

typedef enum { FV_INT, FV_FLOAT, FV_BOOL, FV_LIST } FeKind;

/* A value of the expression language.  Lists hold scalars only. */
typedef struct FeVal {
	uint8_t kind; /* FeKind */
	int64_t i;    /* FV_INT, FV_BOOL */
	double f;     /* FV_FLOAT */
	uint32_t n;   /* FV_LIST */
	struct FeVal *items;
} FeVal;

/* Named values visible to expressions: a chain of frames, innermost first. */
typedef struct FeScope {
	const char **names;
	FeVal *vals;
	uint32_t n, cap;
	const struct FeScope *parent;
} FeScope;

void fe_scope_set(Arena *a, FeScope *s, const char *name, FeVal v);
const FeVal *fe_scope_get(const FeScope *s, const char *name);
/* "C, in_ch, size" (innermost frame first, no duplicates), "(none)" when empty */
const char *fe_scope_names(Arena *a, const FeScope *s);

enum { FE_EXPR_OK = 0, FE_EXPR_SYNTAX = -1, FE_EXPR_EVAL = -2 };
/* Evaluate src.  Returns FE_EXPR_OK, or FE_EXPR_SYNTAX / FE_EXPR_EVAL with a message in err
 * (syntax: "unexpected ')' at column 3"; evaluation: a whole sentence naming src).
 * List items are allocated in a. */
int fe_expr_eval(Arena *a, const char *src, const FeScope *s, FeVal *out, char *err, size_t nerr);
int fe_is_ident(const char *s);    /* [A-Za-z_][A-Za-z0-9_]* */
int fe_is_reserved(const char *s); /* true false and or not index + function names */

/* "3", "2.5", "true", "[0.5,0.7]": no spaces (the manifest's param text) */
const char *fe_val_str(Arena *a, const FeVal *v);
/* "float 2.5", "bool true", "list [1,2]" */
const char *fe_val_describe(Arena *a, const FeVal *v);

typedef struct {
	const char *name;
	const cJSON *def;
	const char *file; /* file it was defined in (include or main) */
	const char *ptr;  /* "/modules/<name>" */
} FeModDef;

typedef struct {
	const char *name;
	ValueId v;
} FeBind;

/* value names of one body (module inputs, node results); later bindings shadow earlier ones */
typedef struct {
	FeBind *b;
	uint32_t n, cap;
} FeVals;

typedef struct {
	Module *m;
	Diag *d;
	Arena *a;         /* scratch, freed at the end of the load */
	const char *file; /* the main graph file */
	const char *dir;  /* its folder */
	const char *lib_dir;
	FeScope gparams;
	FeModDef *mods;
	uint32_t nmods, capmods;
	cJSON **trees; /* main tree and includes, deleted by fe_load_text() */
	uint32_t ntrees, captrees;
	const char **incfiles; /* include files loaded so far (resolved paths) */
	uint32_t nincfiles, capincfiles;
	const char *incstack[FE_MAX_INCLUDE_DEPTH + 1];
	int incdepth;
	const char *stack[FE_MAX_CALL_DEPTH + 1]; /* module names being expanded */
	int depth;
	uint64_t steps;
	const char **wset; /* hash set of weight names */
	uint32_t wcap, wn;
} FeCtx;

/* load.c */
char *fe_ptr(Arena *a, const char *base, const char *key); /* base + "/" + escaped key */
char *fe_ptri(Arena *a, const char *base, int i);
/* a regular file of at most 256 MiB, NUL-terminated (malloc'd), or NULL with errno set */
char *fe_read_file(const char *path, size_t *len);
/* text -> a cJSON tree (numbers written as floats marked FE_JSON_FLOAT), or NULL after one
 * diagnostic: a syntax error as file:line:col, a duplicate key as its pointer */
cJSON *fe_json_parse(Arena *a, Diag *d, const char *text, size_t len, const char *file);
const char *fe_json_describe(Arena *a, const cJSON *j); /* string "3x3", float 2.5 */
Loc fe_loc(FeCtx *fx, const char *file, const char *ptr, const char *via);
/* j must be an object whose keys are all in known[] (NULL-terminated) */
int fe_check_keys(FeCtx *fx, const cJSON *j, const char *file, const char *ptr, const char *via,
                  const char *what, const char *const *known);
int fe_valid_name(const char *s); /* [A-Za-z0-9_.]+ */

/* params.c */
int fe_params(FeCtx *fx, const cJSON *params, const FeOptions *o);
/* JSON literal or expression string -> value; "what" names the expected value for messages
 * ("an integer", "3 integers").  Returns 0, or -1 after a diagnostic at `at`. */
int fe_value(FeCtx *fx, const cJSON *j, const FeScope *s, Loc at, const char *what, FeVal *out);
/* the graph's "checks" (a list of {expr, param, message}), after fe_params() */
int fe_checks(FeCtx *fx, const cJSON *checks, const cJSON *params);

/* expand.c */
int fe_graph(FeCtx *fx, const cJSON *root);

/* build.c */
/* Build the op node j (already key-checked) with data operands in[0..nin).  Results go to
 * out[] (optab[op].nout entries).  prefix: instance path + "." or "". */
int fe_build_op(FeCtx *fx, const cJSON *j, int op, const ValueId *in, int nin, const char *prefix,
                const FeScope *s, Loc at, ValueId *out);
/* the bare parameter node {"op": "weight", "attrs": {"shape": [...], "dtype": "f32"}} */
int fe_build_weight(FeCtx *fx, const cJSON *j, const char *prefix, const FeScope *s, Loc at,
                    ValueId *out);
int fe_weight_name_add(FeCtx *fx, const char *name, Loc at);

#endif
