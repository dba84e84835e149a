/* runtime/npy.c -- read and write NumPy .npy files.
 *
 * A file is: "\x93NUMPY", major, minor (1.0: u16 header length; 2.0, 3.0: u32), then the
 * header, a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ending in a newline, then exactly numel * itemsize bytes of data.
 * The dict is parsed strictly: exactly those three keys, once each, any order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_npy.h"
#include "rt_util.h"

static const char *const descrs[RT_NPY_COUNT] = {"<f4", "<f8", "<i8", "<i4", "|u1", "|b1"};
static const int sizes[RT_NPY_COUNT] = {4, 8, 8, 4, 1, 1};

const char *
rt_npy_descr(int dtype)
{
	return dtype >= 0 && dtype < RT_NPY_COUNT ? descrs[dtype] : NULL;
}

int
rt_npy_dtype_size(int dtype)
{
	return dtype >= 0 && dtype < RT_NPY_COUNT ? sizes[dtype] : 0;
}

void
rt_npy_free(RtNpy *a)
{
	if (!a)
		return;
	free(a->data);
	memset(a, 0, sizeof *a);
}

typedef struct {
	const char *label;
	const uint8_t *s;
	size_t n, pos, base; /* base: file offset of s[0] */
	char *err;
	size_t errlen;
} Hdr;

static segc_status
hfail(Hdr *h, const char *what)
{
	return rt_errf(SEGC_ERR_FORMAT, h->err, h->errlen, "%s: bad header at byte %zu: %s",
	               h->label, h->base + h->pos, what);
}

static void
hws(Hdr *h)
{
	while (h->pos < h->n && (h->s[h->pos] == ' ' || h->s[h->pos] == '\n'))
		h->pos++;
}

static int
hpeek(Hdr *h)
{
	hws(h);
	return h->pos < h->n ? h->s[h->pos] : -1;
}

/* a quoted Python string ('...' or "...") without escapes into buf */
static int
hstring(Hdr *h, char *buf, size_t len)
{
	size_t k = 0;
	int q = hpeek(h);

	if (q != '\'' && q != '"')
		return 0;
	h->pos++;
	while (h->pos < h->n && h->s[h->pos] != q) {
		if (h->s[h->pos] == '\\' || h->s[h->pos] < 0x20 || h->s[h->pos] >= 0x7f ||
		    k + 1 >= len)
			return 0;
		buf[k++] = (char)h->s[h->pos++];
	}
	if (h->pos >= h->n)
		return 0;
	h->pos++;
	buf[k] = 0;
	return 1;
}

static int
hword(Hdr *h, const char *w)
{
	size_t len = strlen(w);

	hws(h);
	if (h->n - h->pos < len || memcmp(h->s + h->pos, w, len) != 0)
		return 0;
	h->pos += len;
	return 1;
}

/* (d0, d1, ...) with an optional trailing comma; (d0,) for rank 1; () for rank 0 */
static segc_status
hshape(Hdr *h, RtNpy *a)
{
	int64_t v;
	int c;

	if (hpeek(h) != '(')
		return hfail(h, "expected a shape tuple");
	h->pos++;
	a->rank = 0;
	for (;;) {
		c = hpeek(h);
		if (c == ')') {
			h->pos++;
			break;
		}
		if (c < '0' || c > '9')
			return hfail(h, "expected a dimension");
		if (a->rank == SEGC_MAX_RANK)
			return hfail(h, "more than 8 dimensions");
		if (c == '0' && h->pos + 1 < h->n && h->s[h->pos + 1] >= '0' &&
		    h->s[h->pos + 1] <= '9')
			return hfail(h, "leading zero in a dimension");
		v = 0;
		while (h->pos < h->n && h->s[h->pos] >= '0' && h->s[h->pos] <= '9') {
			if (__builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, h->s[h->pos] - '0', &v))
				return hfail(h, "dimension out of range");
			h->pos++;
		}
		if (h->pos < h->n && h->s[h->pos] == 'L') /* Python 2 long */
			h->pos++;
		a->shape[a->rank++] = v;
		c = hpeek(h);
		if (c == ',') {
			h->pos++;
			continue;
		}
		if (c != ')')
			return hfail(h, "expected ',' or ')' in the shape");
		if (a->rank == 1)
			return hfail(h, "a 1-element shape tuple needs a trailing comma");
		h->pos++;
		break;
	}
	return SEGC_OK;
}

/* the dict: keys descr, fortran_order, shape, once each */
static segc_status
hdict(Hdr *h, RtNpy *a)
{
	int have_descr = 0, have_fortran = 0, have_shape = 0, i;
	char key[32], val[32];
	size_t at;
	segc_status st;

	if (hpeek(h) != '{')
		return hfail(h, "expected '{'");
	h->pos++;
	for (;;) {
		if (hpeek(h) == '}') {
			h->pos++;
			break;
		}
		at = h->pos;
		if (!hstring(h, key, sizeof key))
			return hfail(h, "expected a quoted key");
		if (hpeek(h) != ':')
			return hfail(h, "expected ':'");
		h->pos++;
		if (strcmp(key, "descr") == 0) {
			if (have_descr++) {
				h->pos = at;
				return hfail(h, "duplicate key 'descr'");
			}
			at = h->pos;
			hws(h);
			if (!hstring(h, val, sizeof val))
				return hfail(h, "expected a quoted descr");
			for (i = 0; i < RT_NPY_COUNT; i++)
				if (strcmp(val, descrs[i]) == 0)
					break;
			if (i == RT_NPY_COUNT) {
				char m[96];
				h->pos = at;
				hws(h);
				snprintf(m, sizeof m,
				         "unsupported dtype '%s' (want <f4 <f8 <i8 <i4 |u1 "
				         "|b1)",
				         val);
				return hfail(h, m);
			}
			a->dtype = i;
		} else if (strcmp(key, "fortran_order") == 0) {
			if (have_fortran++) {
				h->pos = at;
				return hfail(h, "duplicate key 'fortran_order'");
			}
			if (hword(h, "True")) {
				h->pos -= 4;
				return hfail(h, "fortran_order True is not supported");
			}
			if (!hword(h, "False"))
				return hfail(h, "expected False");
		} else if (strcmp(key, "shape") == 0) {
			if (have_shape++) {
				h->pos = at;
				return hfail(h, "duplicate key 'shape'");
			}
			st = hshape(h, a);
			if (st != SEGC_OK)
				return st;
		} else {
			h->pos = at;
			hws(h);
			return hfail(h, "unknown key");
		}
		if (hpeek(h) == ',') {
			h->pos++;
			continue;
		}
		if (hpeek(h) != '}')
			return hfail(h, "expected ',' or '}'");
		h->pos++;
		break;
	}
	if (!have_descr || !have_fortran || !have_shape)
		return hfail(h, !have_descr     ? "missing 'descr'"
		                : !have_fortran ? "missing 'fortran_order'"
		                                : "missing 'shape'");
	hws(h);
	if (h->pos != h->n)
		return hfail(h, "trailing characters after the header dict");
	if (h->n == 0 || h->s[h->n - 1] != '\n') {
		h->pos = h->n;
		return hfail(h, "the header does not end with a newline");
	}
	return SEGC_OK;
}

segc_status
rt_npy_parse(const char *label, const uint8_t *buf, size_t size, RtNpy *out, char *err,
             size_t errlen)
{
	uint64_t hlen, numel = 1, nbytes, pre;
	Hdr h;
	segc_status st;
	int i;

	memset(out, 0, sizeof *out);
	if (!label)
		label = "<memory>";
	if (size < 8 || memcmp(buf, "\x93NUMPY", 6) != 0)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: not a .npy file (no \\x93NUMPY magic at byte 0)", label);
	if (buf[6] < 1 || buf[6] > 3 || buf[7] != 0)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: unsupported .npy version %d.%d at byte 6", label, buf[6],
		               buf[7]);
	if (buf[6] == 1) {
		if (size < 10)
			return rt_errf(
			    SEGC_ERR_FORMAT, err, errlen,
			    "%s: file is %zu bytes, truncated in the header length at byte 8",
			    label, size);
		hlen = (uint64_t)buf[8] | (uint64_t)buf[9] << 8;
		pre = 10;
	} else {
		if (size < 12)
			return rt_errf(
			    SEGC_ERR_FORMAT, err, errlen,
			    "%s: file is %zu bytes, truncated in the header length at byte 8",
			    label, size);
		hlen = (uint64_t)buf[8] | (uint64_t)buf[9] << 8 | (uint64_t)buf[10] << 16 |
		       (uint64_t)buf[11] << 24;
		pre = 12;
	}
	if (hlen > size - pre)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: header length %llu at byte 8 exceeds the file size %zu", label,
		               (unsigned long long)hlen, size);
	h.label = label;
	h.s = buf + pre;
	h.n = (size_t)hlen;
	h.pos = 0;
	h.base = (size_t)pre;
	h.err = err;
	h.errlen = errlen;
	st = hdict(&h, out);
	if (st != SEGC_OK) {
		memset(out, 0, sizeof *out);
		return st;
	}
	for (i = 0; i < out->rank; i++)
		if (!rt_mul_u64(numel, (uint64_t)out->shape[i], &numel))
			break;
	if (i < out->rank || numel > INT64_MAX ||
	    !rt_mul_u64(numel, (uint64_t)sizes[out->dtype], &nbytes) || nbytes > SIZE_MAX) {
		memset(out, 0, sizeof *out);
		return rt_errf(SEGC_ERR_FORMAT, err, errlen, "%s: shape too large at byte %llu",
		               label, (unsigned long long)pre);
	}
	if (nbytes > size - pre - hlen) {
		memset(out, 0, sizeof *out);
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: data truncated: %llu bytes expected at byte %llu, the file has "
		               "%llu",
		               label, (unsigned long long)nbytes, (unsigned long long)(pre + hlen),
		               (unsigned long long)(size - pre - hlen));
	}
	if (nbytes < size - pre - hlen) {
		memset(out, 0, sizeof *out);
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: %llu trailing bytes at byte %llu after the data", label,
		               (unsigned long long)(size - pre - hlen - nbytes),
		               (unsigned long long)(pre + hlen + nbytes));
	}
	out->numel = (int64_t)numel;
	out->nbytes = (size_t)nbytes;
	out->data = malloc(nbytes ? (size_t)nbytes : 1);
	if (!out->data) {
		memset(out, 0, sizeof *out);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "%s: out of memory", label);
	}
	if (nbytes)
		memcpy(out->data, buf + pre + hlen, (size_t)nbytes);
	return SEGC_OK;
}

segc_status
rt_npy_read(const char *path, RtNpy *out, char *err, size_t errlen)
{
	RtFile f;
	segc_status st;

	memset(out, 0, sizeof *out);
	st = rt_file_map(path, &f, err, errlen);
	if (st != SEGC_OK)
		return st;
	st = rt_npy_parse(path, f.data, f.size, out, err, errlen);
	rt_file_unmap(&f);
	return st;
}

segc_status
rt_npy_write(const char *path, int dtype, int rank, const int64_t *shape, const void *data,
             char *err, size_t errlen)
{
	char hdr[512];
	uint64_t nbytes;
	RtPiece pieces[2];
	size_t len;
	int i;

	if (!path || dtype < 0 || dtype >= RT_NPY_COUNT || rank < 0 || rank > SEGC_MAX_RANK ||
	    (rank > 0 && !shape))
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "%s: bad arguments",
		               path ? path : "npy");
	nbytes = (uint64_t)sizes[dtype];
	memcpy(hdr, "\x93NUMPY\x01\x00\x00\x00", 10);
	len = 10;
	len +=
	    (size_t)snprintf(hdr + len, sizeof hdr - len,
	                     "{'descr': '%s', 'fortran_order': False, 'shape': (", descrs[dtype]);
	for (i = 0; i < rank; i++) {
		if (shape[i] < 0 || !rt_mul_u64(nbytes, (uint64_t)shape[i], &nbytes) ||
		    nbytes > SIZE_MAX)
			return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "%s: bad shape",
			               path);
		len += (size_t)snprintf(hdr + len, sizeof hdr - len, "%s%lld", i ? ", " : "",
		                        (long long)shape[i]);
	}
	len += (size_t)snprintf(hdr + len, sizeof hdr - len, "%s), }", rank == 1 ? "," : "");
	while ((len + 1) % 64)
		hdr[len++] = ' ';
	hdr[len++] = '\n';
	hdr[8] = (char)((len - 10) & 0xff);
	hdr[9] = (char)((len - 10) >> 8);
	if (nbytes && !data)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "%s: no data", path);
	pieces[0].data = hdr;
	pieces[0].size = len;
	pieces[1].data = data;
	pieces[1].size = (size_t)nbytes;
	return rt_file_write_atomic(path, pieces, 2, err, errlen);
}
