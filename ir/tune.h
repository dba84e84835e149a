/* ir/tune.h -- a tuning table: schedule knobs per kernel (docs/tune.md).
 *
 * `segc tune` measures each kernel of a graph under a few knob settings and writes the fastest
 * per kernel key to a segc-tune/1 file; `segc --tune FILE` reads it (frontend/tune.c) and
 * codegen applies an entry's knobs while it lowers and emits the kernels with that key
 * (codegen/knob.c).  A key names a kernel by what it computes, not by its place in a graph:
 * the root op with its operand and result types and attributes, then the fused ops
 * (ir_group_key), so one file serves every graph with the same layers.  Data only; strings
 * live in the arena of whoever built the table. */
#ifndef SEGC_TUNE_H
#define SEGC_TUNE_H
#include "ir.h"

typedef struct {
	const char *name;  /* "SEGC_MMA_HALO" */
	const char *value; /* "1" */
} TuneKnob;

typedef struct {
	const char *key;
	const TuneKnob *knobs;
	int nknobs;
} TuneEntry;

typedef struct {
	const char *target;    /* "cpu", "cuda:sm_90" */
	const char *precision; /* "fp32", "tf32", "bf16" */
	const TuneEntry *e;
	int n;
} TuneTable;

/* the entry for key, or NULL (t may be NULL) */
const TuneEntry *tune_find(const TuneTable *t, const char *key);
/* group g's key: "conv3d(f32[1,16,32,32,32],f32[16,16,3,3,3],f32[16])->f32[1,16,32,32,32]
 * {cout=16 kernel=[3,3,3] ...}" then " <" and the load prologue's ops, " +" and each fused
 * op, " +stats" (one line, no tabs) */
const char *ir_group_key(const Module *m, const Group *g, Arena *a);

#endif
