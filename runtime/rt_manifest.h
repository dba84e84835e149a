/* runtime/rt_manifest.h -- the parsed engine manifest (format in docs/abi.md).
 *
 * rt_manifest_parse() copies the text once; every name points into that copy. */
#ifndef SEGC_RT_MANIFEST_H
#define SEGC_RT_MANIFEST_H
#include <stddef.h>
#include <stdint.h>

#include "segc_engine.h"

typedef struct {
	const char *name;
	const char *value; /* text as written, no spaces */
} RtParam;

typedef struct {
	char *text; /* the tokenized copy that names point into */
	const char *graph;
	const char *segc_version;
	const char *target;
	uint64_t arena;
	uint64_t packed; /* "packed <bytes>" (optional, default 0): the packed slot's size */
	double macs, flops;
	int64_t nkernels;
	int nparams, ninputs, noutputs, nweights;
	RtParam *params;
	segc_tensor_info *inputs, *outputs, *weights;
	/* "range <input> <lo> <hi>": every element of that integer input must lie in [lo, hi)
	 * (e.g. M4Fuse's per-sample expert label); run checks it before any kernel */
	struct RtRange {
		int input;  /* index into inputs */
		int64_t lo, hi;
	} *ranges;
	int nranges;
} RtManifest;

/* Parse and validate manifest text.  On failure SEGC_ERR_FORMAT (or SEGC_ERR_NO_MEMORY) with
 * "manifest line N: ..." in err; *m is then empty and needs no free. */
segc_status rt_manifest_parse(const char *text, RtManifest *m, char *err, size_t errlen);
void rt_manifest_free(RtManifest *m);

/* Check range record r against its input's elements at host address data: SEGC_OK, or
 * SEGC_ERR_INVALID_ARGUMENT with "<what>: input 'route' element 1 is 2, expected a value in
 * [0, 2)" in err. */
segc_status rt_check_range(const RtManifest *m, const struct RtRange *r, const void *data,
                           const char *what, char *err, size_t errlen);

/* "f32", "f16", "bf16", "i32", "i64", "u8" <-> segc_dtype; -1 / NULL when unknown. */
int rt_dtype_lookup(const char *name);
const char *rt_dtype_name(int dt);
int rt_dtype_size(int dt);

/* Elements of a tensor; -1 on overflow. */
int64_t rt_numel(int rank, const int64_t *shape);

#endif
