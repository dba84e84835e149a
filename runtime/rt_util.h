/* runtime/rt_util.h -- small helpers shared by the runtime's files: error text, file I/O.
 *
 * Internal to libsegc_rt (hidden).  Nothing here prints, aborts or keeps global state: errors
 * are written into a caller's buffer and returned as segc_status. */
#ifndef SEGC_RT_UTIL_H
#define SEGC_RT_UTIL_H
#include <stddef.h>
#include <stdint.h>

#include "segc_engine.h"

#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Format a one-line message into err (if err != NULL and errlen > 0); returns st. */
segc_status rt_errf(segc_status st, char *err, size_t errlen, const char *fmt, ...) RT_PRINTF(4, 5);

/* Monotonic seconds (profiles). */
double rt_now(void);

/* The text of errno value en (thread-safe). */
const char *rt_strerror(int en, char *buf, size_t len);

/* A read-only view of a whole file: mmap'd when possible. */
typedef struct {
	const uint8_t *data;
	size_t size;
	void *map; /* mmap base, NULL when size == 0 */
} RtFile;

/* Map path read-only into *f.  SEGC_ERR_IO with "cannot open PATH: reason" on failure. */
segc_status rt_file_map(const char *path, RtFile *f, char *err, size_t errlen);
void rt_file_unmap(RtFile *f);

/* One piece of a file to be written. */
typedef struct {
	const void *data;
	size_t size;
} RtPiece;

/* Write the pieces, in order, to a temporary file in path's directory, fsync it and rename it
 * over path, so that readers never see a half-written file.  SEGC_ERR_IO on failure (the
 * temporary file is removed). */
segc_status rt_file_write_atomic(const char *path, const RtPiece *pieces, int npieces, char *err,
                                 size_t errlen);

/* a * b into *out; returns 0 on overflow. */
int rt_mul_u64(uint64_t a, uint64_t b, uint64_t *out);

#endif
