/* runtime/rt_npy.h -- .npy arrays: read (versions 1.0, 2.0, 3.0) and write (version 1.0).
 *
 * Used by the segc tool for `segc run` / `segc interp` inputs and outputs and by tests.
 * Only little-endian C-order arrays of the dtypes below; everything else is an error that
 * names the file and the byte offset. */
#ifndef SEGC_RT_NPY_H
#define SEGC_RT_NPY_H
#include <stddef.h>
#include <stdint.h>

#include "segc_engine.h"

typedef enum {
	RT_NPY_F32,  /* '<f4' */
	RT_NPY_F64,  /* '<f8' */
	RT_NPY_I64,  /* '<i8' */
	RT_NPY_I32,  /* '<i4' */
	RT_NPY_U8,   /* '|u1' */
	RT_NPY_BOOL, /* '|b1' */
	RT_NPY_COUNT
} RtNpyDtype;

typedef struct {
	int dtype; /* RtNpyDtype */
	int rank;  /* 0 .. SEGC_MAX_RANK */
	int64_t shape[SEGC_MAX_RANK];
	int64_t numel;
	size_t nbytes; /* numel * element size */
	void *data;    /* malloc'd (at least 1 byte), owned; free with rt_npy_free */
} RtNpy;

const char *rt_npy_descr(int dtype); /* "<f4"; NULL when out of range */
int rt_npy_dtype_size(int dtype);

/* Read path into *out.  SEGC_ERR_IO when the file cannot be read, SEGC_ERR_FORMAT when it is
 * malformed (message: "PATH: ... at byte N"), SEGC_ERR_NO_MEMORY.  *out is zeroed on error. */
segc_status rt_npy_read(const char *path, RtNpy *out, char *err, size_t errlen);
/* The same from memory; label names the image in messages. */
segc_status rt_npy_parse(const char *label, const uint8_t *buf, size_t size, RtNpy *out, char *err,
                         size_t errlen);
void rt_npy_free(RtNpy *a);

/* Write a version 1.0 file (header padded with spaces to a multiple of 64 bytes, ending in
 * a newline) to a temporary file in path's directory, fsync, rename. */
segc_status rt_npy_write(const char *path, int dtype, int rank, const int64_t *shape,
                         const void *data, char *err, size_t errlen);

#endif
