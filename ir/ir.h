/* ir/ir.h -- the SSA tensor IR: types, values, nodes, attributes, the op table, the module.
 *
 * The bottom layer of the compiler: includes nothing from frontend/, passes/ or codegen/.
 * Invariants (checked by ir_verify):
 *   - values[0] is the null value; ValueId 0 means "no value" (an absent optional operand);
 *   - nodes are in topological order: every operand is defined by an earlier node;
 *   - every value has exactly one defining node (nodes[v.def], result v.defidx);
 *   - ids are stable: passes mark nodes dead and call ir_sweep(), they never renumber values.
 * Everything is allocated from m->arena and dies with the module. */
#ifndef SEGC_IR_H
#define SEGC_IR_H
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "diag.h"

typedef uint32_t ValueId;
typedef uint32_t NodeId;

#define IR_MAXRANK 8

typedef enum { DT_F32, DT_F16, DT_BF16, DT_I32, DT_I64, DT_U8, DT_COUNT } DType;

typedef struct {
	uint8_t dtype;          /* DType */
	int8_t rank;            /* -1: not known yet (a parameter before its consumer typed it) */
	int64_t dims[IR_MAXRANK];
} Type;

/* Where a value's bytes live at run time; set by passes/memplan.c. */
typedef enum {
	ST_NONE,                /* not materialised: lives only inside a fused kernel (or dead) */
	ST_ARENA,               /* the planned activation arena: slot 0, at Value.offset */
	ST_INPUT,               /* an engine input: its own slot */
	ST_OUTPUT,              /* an engine output: its own slot */
	ST_WEIGHT,              /* a weight: its own slot */
	ST_CONST,               /* a constant: never stored, inlined as an immediate */
	ST_VIEW,                /* the bytes of Value.alias, same layout (reshape of dense data) */
} Storage;

typedef struct {
	Type type;
	NodeId def;             /* defining node */
	uint8_t defidx;         /* which result of def */
	uint8_t storage;        /* Storage */
	const char *name;       /* input name or weight name (state_dict key); NULL otherwise */
	uint32_t nuses;         /* operand uses + module outputs; recomputed by ir_count_uses */
	uint32_t slot;          /* runtime slot index (memplan) */
	int64_t offset;         /* byte offset within the slot (memplan) */
	ValueId alias;          /* ST_VIEW: the value whose storage this is */
	uint8_t bf16;           /* an f32 value stored as bf16 (memplan, PassOptions.act_bf16) */
} Value;

typedef enum { AT_NONE, AT_INT, AT_FLOAT, AT_BOOL, AT_STR, AT_INTS, AT_FLOATS } AttrType;

/* One attribute, stored in schema order: node->attrs[i] belongs to optab[op].schema[i]. */
typedef struct {
	uint8_t type;           /* AttrType of the schema entry */
	uint8_t present;        /* 0: absent (optional without default) */
	uint16_t n;             /* number of values for AT_INTS / AT_FLOATS */
	int64_t i;              /* AT_INT, AT_BOOL */
	double f;               /* AT_FLOAT */
	const char *s;          /* AT_STR */
	int64_t *ints;          /* AT_INTS */
	double *floats;         /* AT_FLOATS */
} Attr;

typedef enum {
#define OP(name, operands, nout, cls, attrs, shape, cost) OP_##name,
#include "ops.def"
	OP_COUNT
} OpKind;

typedef enum { FUSE_SRC, FUSE_ELT, FUSE_INJ, FUSE_RED, FUSE_ROOT, FUSE_OPAQUE } FuseClass;

typedef struct {
	uint8_t op;             /* OpKind */
	uint8_t nin, nout;
	uint8_t dead;           /* marked by a pass, removed by ir_sweep */
	ValueId *in;            /* operands; 0 = absent optional parameter */
	ValueId *out;
	Attr *attrs;            /* optab[op].nattrs entries, schema order */
	const char *name;       /* instance path of the node ("enc.0.conv1"), NULL if none */
	Loc loc;
} Node;

/* Attribute schema entry, parsed once from ops.def by op_init(). */
typedef struct {
	const char *key;
	uint8_t type;           /* AttrType */
	uint8_t count;          /* N for iN / fN, 0 for lists and scalars */
	uint8_t optional;       /* "?" */
	uint8_t has_default;
	Attr def;               /* the default, when has_default */
} AttrSpec;

/* Operand spec entry, parsed once from ops.def by op_init(). */
typedef struct {
	const char *name;       /* "x", "weight", ... */
	uint8_t param;          /* a weight operand ("%name") */
	uint8_t variadic;       /* "name*" */
	int8_t when;            /* index of the bool attribute that enables it, -1: always */
} OperandSpec;

typedef struct Module Module;

typedef struct {
	double macs;            /* multiply-accumulates (conv, matmul, linear) */
	double flops;           /* all arithmetic: 2 x macs + everything else */
} Cost;

typedef struct {
	const char *name;
	const char *operands;   /* raw strings from ops.def */
	const char *attrs;
	uint8_t nout;
	uint8_t cls;            /* FuseClass */
	/* sets result types (and parameter types); -1 + diag on error */
	int (*shape)(Module *, Node *, Diag *);
	Cost (*cost)(const Module *, const Node *);
	/* parsed by op_init() */
	uint8_t nattrs, noperands;
	AttrSpec *schema;
	OperandSpec *opspec;
} OpInfo;

extern OpInfo optab[OP_COUNT];

/* Parse every schema in ops.def.  Returns 0, or -1 after printing what is malformed (a bug).
 * Idempotent and cheap; every entry point of the compiler calls it once. */
int op_init(void);
int op_lookup(const char *name);                 /* OpKind, or -1 */
int op_attr_index(int op, const char *key);      /* schema index, or -1 */

/* A fused kernel: decided by passes/fuse.c, ordered by the schedule, lowered by codegen. */
typedef struct {
	NodeId root;            /* node whose template drives the loop nest */
	NodeId *nodes;          /* members in topological order, root first; nnodes >= 1 */
	uint32_t nnodes;
	ValueId *outs;          /* materialised results of the group */
	uint32_t nouts;
	const char *name;       /* "k3_conv3d" */
	Loc loc;                /* the root's */
	/* schedule (passes/schedule.c), read by codegen */
	int32_t vector;         /* vector width in elements, 0: emitter's choice */
	int32_t tile[4];        /* template-specific tile sizes, 0: template default */
	/* load prologue (passes/fuse.c, docs/codegen.md): elementwise nodes, in topological
	 * order, that the root applies to its operand 0 while loading it; they start from the
	 * materialised value pro_src, and the last one's result is root->in[0] (not stored) */
	NodeId *pro;
	uint32_t npro;
	ValueId pro_src;
	/* statistics (passes/fuse.c, GPU targets): a moments node (per batch and channel, over
	 * every spatial dim) of the group's result, or (per batch and channel group) of its view
	 * as [N, G, C/G, D, H, W], or 0; its results are outs[1], outs[2].  A
	 * template may compute them from its output tiles (codegen/tmpl_gpu_mma.c), else
	 * codegen lowers the node as a loop of its own in the same kernel */
	NodeId stats;
} Group;

typedef struct {
	const char *name;
	const char *value;      /* the resolved value, as text ("32", "true", "[0.5, 0.7]") */
} ParamVal;

struct Module {
	Arena *arena;
	const char *name;       /* graph name */
	const char *file;       /* graph file, for diagnostics */
	const char *description;

	Node *nodes;            /* topological order */
	uint32_t nnodes, capnodes;
	Value *values;          /* values[0] is null */
	uint32_t nvalues, capvalues;

	ValueId *inputs;        /* engine inputs, in declaration order */
	uint32_t ninputs, capinputs;
	ValueId *outputs;       /* engine outputs, in declaration order */
	const char **output_names;
	uint32_t noutputs, capoutputs;

	ParamVal *params;       /* resolved graph params, recorded in the manifest */
	uint32_t nparams, capparams;

	/* filled by passes */
	Group *groups;          /* kernel order (passes/fuse.c, passes/schedule.c) */
	uint32_t ngroups, capgroups;
	int64_t arena_bytes;    /* planned activation arena (passes/memplan.c) */
	int64_t naive_bytes;    /* sum of all materialised activations, for the report */
};

/* ---- module and builder (ir/builder.c) ----
 * The builder appends nodes in order and runs each node's shape rule as it is added, so
 * a shape error is reported at the node that caused it. */
Module *ir_module_new(const char *name);
void ir_module_free(Module *m);                  /* m may be NULL */
ValueId ir_new_value(Module *m, Type t);
/* Append a node of kind op.  in[] has optab[op].noperands entries (variadic: nin given),
 * attrs has optab[op].nattrs entries in schema order (NULL: all defaults).  Creates the
 * results, runs the shape rule and returns the node id, or -1 after a diagnostic (the node
 * stays in the module, dead).  Copies in[] and attrs into the arena. */
int64_t ir_add_node(Module *m, int op, const ValueId *in, int nin, const Attr *attrs,
                    const char *name, Loc loc, Diag *d);
ValueId ir_add_input(Module *m, const char *name, Type t, Loc loc);
/* t.rank -1: typed by its consumer's shape rule */
ValueId ir_add_weight(Module *m, const char *name, Type t, Loc loc);
void ir_add_output(Module *m, ValueId v, const char *name);
void ir_add_param(Module *m, const char *name, const char *value);
void ir_attrs_default(int op, Attr *attrs);      /* fill attrs[] with the schema defaults */
Node *ir_def(const Module *m, ValueId v);         /* defining node */
void ir_count_uses(Module *m);                    /* recompute Value.nuses */
int ir_sweep(Module *m, int *changed);            /* drop dead nodes, keep ids; returns 0 */
/* Replace every use of old (operands and outputs) by new. */
void ir_replace_uses(Module *m, ValueId old, ValueId new_);

/* attribute access by key (asserts the key is in the op's schema) */
const Attr *ir_attr(const Node *n, const char *key);
int64_t ir_attr_int(const Node *n, const char *key);
double ir_attr_float(const Node *n, const char *key);
const char *ir_attr_str(const Node *n, const char *key);

/* ---- types (ir/type.c) ---- */
int64_t type_numel(const Type *t);
int64_t type_bytes(const Type *t);
/* a value's stored element type and bytes: its type's, or bf16 where Value.bf16 is set */
int value_dtype(const Value *v);
int64_t value_bytes(const Value *v);
int type_equal(const Type *a, const Type *b);
int dtype_size(int dt);
const char *dtype_name(int dt);                   /* "f32" */
int dtype_lookup(const char *name);               /* DType or -1 */
/* "f32[1,4,32,32,32]" into buf; returns buf */
char *type_str(const Type *t, char *buf, size_t n);
Type type_make(int dt, int rank, const int64_t *dims);

/* ---- shape rules (ir/shape.c) and cost rules (ir/cost.c), named in ops.def ---- */
#define OP(name, operands, nout, cls, attrs, shape, cost) \
	int shape_##shape(Module *, Node *, Diag *); \
	Cost cost_##cost(const Module *, const Node *);
#include "ops.def"
Cost ir_node_cost(const Module *m, const Node *n);
int64_t ir_param_count(const Module *m);          /* elements of all weights (f32 and others) */

/* ---- verifier (ir/verify.c): structural invariants + re-running shape rules ---- */
int ir_verify(Module *m, Diag *d);

/* ---- text form (ir/print.c, ir/parse.c): print(parse(x)) == x ---- */
void ir_print(const Module *m, FILE *f);
/* ir_print with options (flags or'ed): IR_PRINT_LOC appends "; <ptr> (<via>)" to node lines */
#define IR_PRINT_LOC 1u
void ir_print_ex(const Module *m, FILE *f, unsigned flags);
/* Parse the text form.  Returns a new module, or NULL after diagnostics whose Loc names
 * file:line:col in ptr. */
Module *ir_parse(const char *text, const char *file, Diag *d);

/* ---- reference interpreter (ir/interp.c) ----
 * Runs the module node by node with plain loops, f32 everywhere but i64 where a value is
 * i64.  inputs[i] points to the data of m->inputs[i]; weights are looked up by name through
 * the callback; outputs[i] receives m->outputs[i] (caller-allocated).  Returns 0 or -1 + diag. */
typedef const void *(*IrWeightFn)(void *ctx, const char *name, const Type *t);
int ir_interp(const Module *m, const void *const *inputs, IrWeightFn weight, void *ctx,
              void *const *outputs, Diag *d);

#endif
