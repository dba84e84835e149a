/* runtime/util.c -- error formatting and whole-file I/O for the runtime.
 *
 * Files are read through a read-only mmap (rt_file_map) and written atomically: a temporary
 * file next to the target, fsync, rename (rt_file_write_atomic).  Every failure is a status
 * and a one-line message naming the file; nothing is printed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rt_gen.h"
#include "rt_util.h"

segc_status
rt_errf(segc_status st, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return st;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return st;
}

const char *
rt_strerror(int en, char *buf, size_t len)
{
	/* the GNU strerror_r returns a pointer that may or may not be buf */
	return strerror_r(en, buf, len);
}

int
rt_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

segc_status
rt_file_map(const char *path, RtFile *f, char *err, size_t errlen)
{
	char eb[128];
	struct stat st;
	int fd, en;
	void *p;

	memset(f, 0, sizeof *f);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		en = errno;
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot open %s: %s", path,
		               rt_strerror(en, eb, sizeof eb));
	}
	if (fstat(fd, &st) != 0) {
		en = errno;
		close(fd);
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot stat %s: %s", path,
		               rt_strerror(en, eb, sizeof eb));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot read %s: not a regular file",
		               path);
	}
	if (st.st_size == 0) {
		close(fd);
		f->data = (const uint8_t *)"";
		return SEGC_OK;
	}
	if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
		close(fd);
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot read %s: file too large", path);
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	en = errno;
	close(fd);
	if (p == MAP_FAILED)
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot map %s: %s", path,
		               rt_strerror(en, eb, sizeof eb));
	f->map = p;
	f->data = p;
	f->size = (size_t)st.st_size;
	return SEGC_OK;
}

void
rt_file_unmap(RtFile *f)
{
	if (f->map)
		munmap(f->map, f->size);
	memset(f, 0, sizeof *f);
}

/* write all of buf to fd, retrying on short writes and EINTR; 0 or errno */
static int
write_all(int fd, const void *buf, size_t size)
{
	const uint8_t *p = buf;
	ssize_t k;

	while (size > 0) {
		k = write(fd, p, size > (1u << 30) ? (1u << 30) : size);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += k;
		size -= (size_t)k;
	}
	return 0;
}

segc_status
rt_file_write_atomic(const char *path, const RtPiece *pieces, int npieces, char *err, size_t errlen)
{
	char eb[128];
	char *tmp;
	size_t len;
	int fd, en = 0, i;

	len = strlen(path);
	tmp = malloc(len + 16);
	if (!tmp)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "%s: out of memory", path);
	memcpy(tmp, path, len);
	memcpy(tmp + len, ".tmp.XXXXXX", 12);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		en = errno;
		free(tmp);
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot create %s: %s", path,
		               rt_strerror(en, eb, sizeof eb));
	}
	if (fchmod(fd, 0644) != 0)
		en = errno;
	for (i = 0; i < npieces && !en; i++)
		en = write_all(fd, pieces[i].data, pieces[i].size);
	if (!en && fsync(fd) != 0)
		en = errno;
	if (close(fd) != 0 && !en)
		en = errno;
	if (!en && rename(tmp, path) != 0)
		en = errno;
	if (en) {
		unlink(tmp);
		free(tmp);
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot write %s: %s", path,
		               rt_strerror(en, eb, sizeof eb));
	}
	free(tmp);
	return SEGC_OK;
}

/* rt_gen.h: the whole pages inside [p, p + bytes) go back to the system; the range stays
 * mapped (reads give zeros), so the buffer holding it is freed as before */
void
segc_rt_release(void *p, int64_t bytes)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t lo, hi;

	if (pg <= 0 || bytes <= 0)
		return;
	lo = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	hi = ((uintptr_t)p + (uintptr_t)bytes) & ~((uintptr_t)pg - 1);
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

double
rt_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
