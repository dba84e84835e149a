/* runtime/rt_weights.h -- safetensors reading and writing.
 *
 * rt_safetensors_parse() validates a whole safetensors image in memory (header JSON and the
 * layout of the data section; rules in docs/abi.md) and lists its tensors without copying
 * their bytes.  The engine matches the list against its manifest (engine.c); the fuzz
 * harness calls the parser alone.  rt_safetensors_write() writes a file the parser accepts. */
#ifndef SEGC_RT_WEIGHTS_H
#define SEGC_RT_WEIGHTS_H
#include <stddef.h>
#include <stdint.h>

#include "segc_engine.h"

/* Every dtype safetensors defines.  The engine uses the first six (same order as segc_dtype). */
typedef enum {
	RT_ST_F32,
	RT_ST_F16,
	RT_ST_BF16,
	RT_ST_I32,
	RT_ST_I64,
	RT_ST_U8,
	RT_ST_BOOL,
	RT_ST_I8,
	RT_ST_I16,
	RT_ST_U16,
	RT_ST_U32,
	RT_ST_U64,
	RT_ST_F64,
	RT_ST_F8_E4M3,
	RT_ST_F8_E5M2,
	RT_ST_COUNT
} RtStDtype;

const char *rt_st_dtype_name(int dt); /* "F32"; NULL when out of range */
int rt_st_dtype_size(int dt);         /* bytes per element; 0 when out of range */

typedef struct {
	char *name; /* NUL-terminated, owned by the list */
	int dtype;  /* RtStDtype */
	int rank;
	int64_t shape[SEGC_MAX_RANK];
	uint64_t begin, end; /* data_offsets: byte range within the data section */
	const uint8_t *data; /* the tensor's bytes inside the parsed image (not owned) */
	size_t key_at;       /* file offset of the entry's name in the header */
} RtTensor;

typedef struct {
	int n;
	RtTensor *tensors;   /* sorted by name (strcmp) */
	uint64_t header_len; /* N */
	uint64_t data_size;  /* bytes after the header */
} RtTensorList;

/* Parse the image data[0..size).  label names it in messages (a path, "<memory>").  On success
 * *out lists the tensors (their data pointers point into data); on failure SEGC_ERR_FORMAT
 * (or SEGC_ERR_NO_MEMORY) with a one-line message giving the byte offset, and *out is empty. */
segc_status rt_safetensors_parse(const char *label, const uint8_t *data, size_t size,
                                 RtTensorList *out, char *err, size_t errlen);
void rt_tensor_list_free(RtTensorList *l);
/* The tensor named name, or NULL (binary search). */
const RtTensor *rt_tensor_list_find(const RtTensorList *l, const char *name);

/* Write n tensors (dense row-major bytes datas[i] of dtypes[i], shapes[i][0..ranks[i]))
 * to path: header JSON sorted by name with {"__metadata__":{"format":"pt"}}, padded with
 * spaces to a multiple of 8 bytes; temporary file + fsync + rename.  Duplicate names or bad
 * arguments are SEGC_ERR_INVALID_ARGUMENT, file errors SEGC_ERR_IO. */
segc_status rt_safetensors_write(const char *path, int n, const char *const names[],
                                 const segc_dtype dtypes[], const int ranks[],
                                 const int64_t *const shapes[], const void *const datas[],
                                 char *err, size_t errlen);

/* The same, building the image in memory: *out is malloc'd (free it), *outsize its size. */
segc_status rt_safetensors_build(int n, const char *const names[], const segc_dtype dtypes[],
                                 const int ranks[], const int64_t *const shapes[],
                                 const void *const datas[], uint8_t **out, size_t *outsize,
                                 char *err, size_t errlen);

#endif
