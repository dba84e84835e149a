/* runtime/safetensors.c -- a strict safetensors reader and a writer.
 *
 * Layout: u64 LE header length N, N bytes of UTF-8 JSON, then the data section.  The header
 * is parsed by a small recursive-descent parser for exactly the subset safetensors uses
 * (objects, strings with escapes, integers, arrays), driven by the schema: a top-level object
 * of tensors {"dtype": s, "shape": [ints], "data_offsets": [begin, end]} plus an optional
 * "__metadata__" object of strings.  Anything else (floats, true, nesting beyond the schema,
 * duplicate keys, trailing garbage) is an error with the byte offset in the file.  Then the
 * data section is checked: every tensor's size matches its shape, and the tensors tile the
 * section exactly (sorted by begin: the first at 0, no gap, no overlap, the last at the end).
 * Nothing is copied here; the engine copies what it keeps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_util.h"
#include "rt_weights.h"

#define MAX_HEADER 100000000ull /* what the safetensors reference implementation allows */

static const char *const st_names[RT_ST_COUNT] = {
    "F32", "F16", "BF16", "I32", "I64", "U8",      "BOOL",    "I8",
    "I16", "U16", "U32",  "U64", "F64", "F8_E4M3", "F8_E5M2",
};
static const int st_sizes[RT_ST_COUNT] = {4, 2, 2, 4, 8, 1, 1, 1, 2, 2, 4, 8, 8, 1, 1};

const char *
rt_st_dtype_name(int dt)
{
	return dt >= 0 && dt < RT_ST_COUNT ? st_names[dt] : NULL;
}

int
rt_st_dtype_size(int dt)
{
	return dt >= 0 && dt < RT_ST_COUNT ? st_sizes[dt] : 0;
}

/* ---- the header parser ---- */

typedef struct {
	const char *label;
	const uint8_t *s; /* header bytes */
	size_t n, pos;    /* pos: offset within the header; file offset = 8 + pos */
	char *err;
	size_t errlen;
	segc_status st; /* SEGC_OK until the first error */
	RtTensorList *out;
	int cap;
} Js;

static int
jfail(Js *j, size_t pos, const char *fmt, const char *a, const char *b)
{
	char what[200];

	if (j->st != SEGC_OK)
		return -1;
	snprintf(what, sizeof what, fmt, a ? a : "", b ? b : "");
	rt_errf(SEGC_ERR_FORMAT, j->err, j->errlen, "%s: bad header at byte %zu: %s", j->label,
	        pos + 8, what);
	j->st = SEGC_ERR_FORMAT;
	return -1;
}

static int
jnomem(Js *j)
{
	if (j->st == SEGC_OK)
		rt_errf(SEGC_ERR_NO_MEMORY, j->err, j->errlen, "%s: out of memory", j->label);
	j->st = SEGC_ERR_NO_MEMORY;
	return -1;
}

static void
ws(Js *j)
{
	while (j->pos < j->n && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' ||
	                         j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
		j->pos++;
}

/* skip white space, then require c */
static int
expect(Js *j, char c)
{
	char want[2] = {c, 0};

	ws(j);
	if (j->pos >= j->n)
		return jfail(j, j->pos, "expected '%s', found the end of the header", want, NULL);
	if (j->s[j->pos] != (uint8_t)c)
		return jfail(j, j->pos, "expected '%s'%s", want, NULL);
	j->pos++;
	return 0;
}

/* skip white space and peek; -1 at the end */
static int
peek(Js *j)
{
	ws(j);
	return j->pos < j->n ? j->s[j->pos] : -1;
}

/* the length of the valid UTF-8 sequence at s[0..n), 0 if invalid */
static size_t
utf8_len(const uint8_t *s, size_t n)
{
	uint32_t c;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

static int
hex4(const uint8_t *s, uint32_t *out)
{
	uint32_t v = 0;
	int i, d;

	for (i = 0; i < 4; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return 0;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 1;
}

/* a JSON string at pos (after white space) into a malloc'd NUL-terminated *out */
static int
jstring(Js *j, char **out)
{
	size_t start, cap, len = 0, k;
	uint32_t c, lo;
	char *b;

	*out = NULL;
	if (peek(j) != '"')
		return jfail(j, j->pos, "expected a string%s%s", NULL, NULL);
	start = j->pos++;
	/* the decoded text is never longer than the raw text */
	for (k = j->pos; k < j->n && j->s[k] != '"'; k++)
		if (j->s[k] == '\\')
			k++;
	cap = (k < j->n ? k : j->n) - j->pos + 1;
	b = malloc(cap);
	if (!b)
		return jnomem(j);
	for (;;) {
		if (j->pos >= j->n) {
			free(b);
			return jfail(j, start, "unterminated string%s%s", NULL, NULL);
		}
		c = j->s[j->pos];
		if (c == '"') {
			j->pos++;
			break;
		}
		if (c < 0x20) {
			free(b);
			return jfail(j, j->pos, "control character in a string%s%s", NULL, NULL);
		}
		if (c != '\\') {
			/* the whole header was checked to be UTF-8 already */
			b[len++] = (char)c;
			j->pos++;
			continue;
		}
		if (j->pos + 1 >= j->n) {
			free(b);
			return jfail(j, start, "unterminated string%s%s", NULL, NULL);
		}
		c = j->s[j->pos + 1];
		j->pos += 2;
		switch (c) {
		case '"':
			b[len++] = '"';
			continue;
		case '\\':
			b[len++] = '\\';
			continue;
		case '/':
			b[len++] = '/';
			continue;
		case 'b':
			b[len++] = '\b';
			continue;
		case 'f':
			b[len++] = '\f';
			continue;
		case 'n':
			b[len++] = '\n';
			continue;
		case 'r':
			b[len++] = '\r';
			continue;
		case 't':
			b[len++] = '\t';
			continue;
		case 'u':
			break;
		default:
			free(b);
			return jfail(j, j->pos - 2, "bad escape in a string%s%s", NULL, NULL);
		}
		if (j->pos + 4 > j->n || !hex4(j->s + j->pos, &c)) {
			free(b);
			return jfail(j, j->pos - 2, "bad \\u escape%s%s", NULL, NULL);
		}
		j->pos += 4;
		if (c >= 0xdc00 && c <= 0xdfff) {
			free(b);
			return jfail(j, j->pos - 6, "lone low surrogate%s%s", NULL, NULL);
		}
		if (c >= 0xd800 && c <= 0xdbff) {
			if (j->pos + 6 > j->n || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u' ||
			    !hex4(j->s + j->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
				free(b);
				return jfail(j, j->pos - 6, "lone high surrogate%s%s", NULL, NULL);
			}
			j->pos += 6;
			c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
		}
		if (c == 0) {
			free(b);
			return jfail(j, j->pos - 6, "NUL character in a string%s%s", NULL, NULL);
		}
		/* an escape takes 6 or 12 raw bytes and decodes to at most 4 */
		if (c < 0x80) {
			b[len++] = (char)c;
		} else if (c < 0x800) {
			b[len++] = (char)(0xc0 | c >> 6);
			b[len++] = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x10000) {
			b[len++] = (char)(0xe0 | c >> 12);
			b[len++] = (char)(0x80 | (c >> 6 & 0x3f));
			b[len++] = (char)(0x80 | (c & 0x3f));
		} else {
			b[len++] = (char)(0xf0 | c >> 18);
			b[len++] = (char)(0x80 | (c >> 12 & 0x3f));
			b[len++] = (char)(0x80 | (c >> 6 & 0x3f));
			b[len++] = (char)(0x80 | (c & 0x3f));
		}
	}
	b[len] = 0;
	*out = b;
	return 0;
}

/* a JSON integer (no fraction, no exponent, no leading zeros) fitting in int64 */
static int
jint(Js *j, int64_t *out)
{
	size_t start;
	int neg = 0, c;
	int64_t v = 0;

	c = peek(j);
	start = j->pos;
	if (c == '-') {
		neg = 1;
		j->pos++;
	}
	if (j->pos >= j->n || j->s[j->pos] < '0' || j->s[j->pos] > '9')
		return jfail(j, start, "expected an integer%s%s", NULL, NULL);
	if (j->s[j->pos] == '0' && j->pos + 1 < j->n && j->s[j->pos + 1] >= '0' &&
	    j->s[j->pos + 1] <= '9')
		return jfail(j, start, "leading zero in an integer%s%s", NULL, NULL);
	while (j->pos < j->n && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, j->s[j->pos] - '0', &v))
			return jfail(j, start, "integer out of range%s%s", NULL, NULL);
		j->pos++;
	}
	if (j->pos < j->n && (j->s[j->pos] == '.' || j->s[j->pos] == 'e' || j->s[j->pos] == 'E'))
		return jfail(j, start, "expected an integer, found a fraction%s%s", NULL, NULL);
	*out = neg ? -v : v;
	return 0;
}

/* "__metadata__": {"key": "value", ...} -- checked and dropped */
static int
jmetadata(Js *j)
{
	char **keys = NULL, *k, *v, **nk;
	int nkeys = 0, i, rc = -1;
	size_t kpos;

	if (expect(j, '{'))
		return -1;
	if (peek(j) == '}') {
		j->pos++;
		return 0;
	}
	for (;;) {
		kpos = j->pos;
		if (jstring(j, &k))
			goto out;
		for (i = 0; i < nkeys; i++)
			if (strcmp(keys[i], k) == 0)
				break;
		nk = i < nkeys ? NULL : realloc(keys, (size_t)(nkeys + 1) * sizeof *keys);
		if (!nk) {
			if (i < nkeys)
				jfail(j, kpos, "duplicate key '%s' in __metadata__%s", k, NULL);
			else
				jnomem(j);
			free(k);
			goto out;
		}
		keys = nk;
		keys[nkeys++] = k;
		if (expect(j, ':'))
			goto out;
		if (peek(j) != '"') {
			jfail(j, j->pos, "__metadata__ value for '%s' is not a string%s", k, NULL);
			goto out;
		}
		if (jstring(j, &v))
			goto out;
		free(v);
		if (peek(j) == ',') {
			j->pos++;
			continue;
		}
		if (expect(j, '}'))
			goto out;
		break;
	}
	rc = 0;
out:
	for (i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	return rc;
}

/* [int, ...] with at most max elements; *count gets the number */
static int
jints(Js *j, const char *tname, const char *field, int64_t *vals, int max, int *count)
{
	int n = 0;

	if (peek(j) != '[')
		return jfail(j, j->pos, "tensor '%s': %s must be an array of integers", tname,
		             field);
	j->pos++;
	if (peek(j) == ']') {
		j->pos++;
		*count = 0;
		return 0;
	}
	for (;;) {
		if (n == max)
			return jfail(j, j->pos, "tensor '%s': %s has too many elements", tname,
			             field);
		if (jint(j, &vals[n]))
			return -1;
		n++;
		if (peek(j) == ',') {
			j->pos++;
			continue;
		}
		if (expect(j, ']'))
			return -1;
		break;
	}
	*count = n;
	return 0;
}

/* one tensor entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]} */
static int
jtensor(Js *j, RtTensor *t)
{
	int have_dtype = 0, have_shape = 0, have_off = 0, i, cnt;
	int64_t offs[3];
	size_t kpos;
	char *k, *s;

	if (peek(j) != '{')
		return jfail(j, j->pos, "tensor '%s': expected an object%s", t->name, NULL);
	j->pos++;
	if (peek(j) == '}')
		return jfail(j, j->pos, "tensor '%s': missing dtype%s", t->name, NULL);
	for (;;) {
		kpos = j->pos;
		if (jstring(j, &k))
			return -1;
		if (expect(j, ':')) {
			free(k);
			return -1;
		}
		if (strcmp(k, "dtype") == 0) {
			free(k);
			if (have_dtype++)
				return jfail(j, kpos, "tensor '%s': duplicate key 'dtype'%s",
				             t->name, NULL);
			kpos = j->pos;
			if (peek(j) != '"')
				return jfail(j, j->pos, "tensor '%s': dtype must be a string%s",
				             t->name, NULL);
			if (jstring(j, &s))
				return -1;
			for (i = 0; i < RT_ST_COUNT; i++)
				if (strcmp(s, st_names[i]) == 0)
					break;
			if (i == RT_ST_COUNT) {
				ws(j);
				jfail(j, kpos, "tensor '%s': unknown dtype '%s'", t->name, s);
				free(s);
				return -1;
			}
			free(s);
			t->dtype = i;
		} else if (strcmp(k, "shape") == 0) {
			free(k);
			if (have_shape++)
				return jfail(j, kpos, "tensor '%s': duplicate key 'shape'%s",
				             t->name, NULL);
			kpos = j->pos;
			if (jints(j, t->name, "shape", t->shape, SEGC_MAX_RANK, &cnt))
				return -1;
			t->rank = cnt;
			for (i = 0; i < cnt; i++)
				if (t->shape[i] < 0)
					return jfail(j, kpos,
					             "tensor '%s': negative dimension in shape%s",
					             t->name, NULL);
		} else if (strcmp(k, "data_offsets") == 0) {
			free(k);
			if (have_off++)
				return jfail(j, kpos, "tensor '%s': duplicate key 'data_offsets'%s",
				             t->name, NULL);
			kpos = j->pos;
			if (jints(j, t->name, "data_offsets", offs, 3, &cnt))
				return -1;
			if (cnt != 2)
				return jfail(j, kpos,
				             "tensor '%s': data_offsets must be [begin, end]%s",
				             t->name, NULL);
			if (offs[0] < 0 || offs[1] < 0)
				return jfail(j, kpos, "tensor '%s': negative data offset%s",
				             t->name, NULL);
			if (offs[0] > offs[1])
				return jfail(j, kpos, "tensor '%s': data_offsets begin > end%s",
				             t->name, NULL);
			t->begin = (uint64_t)offs[0];
			t->end = (uint64_t)offs[1];
		} else {
			jfail(j, kpos, "tensor '%s': unknown key '%s'", t->name, k);
			free(k);
			return -1;
		}
		if (peek(j) == ',') {
			j->pos++;
			continue;
		}
		if (expect(j, '}'))
			return -1;
		break;
	}
	if (!have_dtype)
		return jfail(j, j->pos - 1, "tensor '%s': missing dtype%s", t->name, NULL);
	if (!have_shape)
		return jfail(j, j->pos - 1, "tensor '%s': missing shape%s", t->name, NULL);
	if (!have_off)
		return jfail(j, j->pos - 1, "tensor '%s': missing data_offsets%s", t->name, NULL);
	return 0;
}

/* the whole header: { "__metadata__"?: {...}, "<name>": tensor, ... } then only white space */
static int
jheader(Js *j)
{
	RtTensorList *l = j->out;
	RtTensor *t;
	int have_meta = 0;
	size_t kpos;
	char *k;

	if (expect(j, '{'))
		return -1;
	if (peek(j) == '}') {
		j->pos++;
	} else {
		for (;;) {
			kpos = j->pos;
			if (jstring(j, &k))
				return -1;
			if (expect(j, ':')) {
				free(k);
				return -1;
			}
			if (strcmp(k, "__metadata__") == 0) {
				free(k);
				if (have_meta++)
					return jfail(j, kpos, "duplicate key '__metadata__'%s%s",
					             NULL, NULL);
				if (jmetadata(j))
					return -1;
			} else {
				if (l->n == j->cap) {
					int nc = j->cap ? j->cap * 2 : 16;
					RtTensor *nt = realloc(l->tensors, (size_t)nc * sizeof *nt);
					if (!nt) {
						free(k);
						return jnomem(j);
					}
					l->tensors = nt;
					j->cap = nc;
				}
				t = &l->tensors[l->n++];
				memset(t, 0, sizeof *t);
				t->name = k;
				t->key_at = kpos + 8;
				if (jtensor(j, t))
					return -1;
			}
			if (peek(j) == ',') {
				j->pos++;
				continue;
			}
			if (expect(j, '}'))
				return -1;
			break;
		}
	}
	ws(j);
	if (j->pos != j->n)
		return jfail(j, j->pos, "trailing characters after the header object%s%s", NULL,
		             NULL);
	return 0;
}

/* ---- the tensor list ---- */

void
rt_tensor_list_free(RtTensorList *l)
{
	int i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		free(l->tensors[i].name);
	free(l->tensors);
	memset(l, 0, sizeof *l);
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(((const RtTensor *)a)->name, ((const RtTensor *)b)->name);
}

static int
cmp_begin(const void *a, const void *b)
{
	const RtTensor *x = *(const RtTensor *const *)a, *y = *(const RtTensor *const *)b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

const RtTensor *
rt_tensor_list_find(const RtTensorList *l, const char *name)
{
	int lo = 0, hi = l->n - 1, mid, c;

	while (lo <= hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(name, l->tensors[mid].name);
		if (c == 0)
			return &l->tensors[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* sizes and the tiling of the data section; then the tensors' data pointers */
static segc_status
check_layout(const char *label, RtTensorList *l, const uint8_t *base, char *err, size_t errlen)
{
	RtTensor **order, *t, *p;
	uint64_t numel, nbytes, prev_end = 0;
	size_t hpos;
	int i, d;
	segc_status st = SEGC_OK;

	for (i = 0; i < l->n; i++) {
		t = &l->tensors[i];
		hpos = t->key_at;
		numel = 1;
		for (d = 0; d < t->rank; d++)
			if (!rt_mul_u64(numel, (uint64_t)t->shape[d], &numel))
				break;
		if (d < t->rank || !rt_mul_u64(numel, (uint64_t)st_sizes[t->dtype], &nbytes))
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "%s: tensor '%s' at byte %zu: shape too large", label,
			               t->name, hpos);
		if (t->end > l->data_size)
			return rt_errf(
			    SEGC_ERR_FORMAT, err, errlen,
			    "%s: tensor '%s' at byte %zu: data_offsets end %llu is beyond "
			    "the data section (%llu bytes, file truncated?)",
			    label, t->name, hpos, (unsigned long long)t->end,
			    (unsigned long long)l->data_size);
		if (t->end - t->begin != nbytes)
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "%s: tensor '%s' at byte %zu: data_offsets [%llu,%llu] hold "
			               "%llu bytes, its dtype and shape need %llu",
			               label, t->name, hpos, (unsigned long long)t->begin,
			               (unsigned long long)t->end,
			               (unsigned long long)(t->end - t->begin),
			               (unsigned long long)nbytes);
	}
	if (l->n == 0) {
		if (l->data_size != 0)
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "%s: %llu bytes of data at byte %llu but no tensor", label,
			               (unsigned long long)l->data_size,
			               (unsigned long long)(8 + l->header_len));
		return SEGC_OK;
	}
	order = malloc((size_t)l->n * sizeof *order);
	if (!order)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "%s: out of memory", label);
	for (i = 0; i < l->n; i++)
		order[i] = &l->tensors[i];
	qsort(order, (size_t)l->n, sizeof *order, cmp_begin);
	for (i = 0; i < l->n && st == SEGC_OK; i++) {
		t = order[i];
		p = i > 0 ? order[i - 1] : NULL;
		if (t->begin < prev_end)
			st = rt_errf(SEGC_ERR_FORMAT, err, errlen,
			             "%s: tensor '%s' data_offsets [%llu,%llu] overlap tensor '%s' "
			             "[%llu,%llu]",
			             label, t->name, (unsigned long long)t->begin,
			             (unsigned long long)t->end, p->name,
			             (unsigned long long)p->begin, (unsigned long long)p->end);
		else if (t->begin > prev_end && p)
			st = rt_errf(
			    SEGC_ERR_FORMAT, err, errlen,
			    "%s: gap of %llu bytes at byte %llu between tensor '%s' (ends at "
			    "%llu) and tensor '%s' (begins at %llu)",
			    label, (unsigned long long)(t->begin - prev_end),
			    (unsigned long long)(8 + l->header_len + prev_end), p->name,
			    (unsigned long long)prev_end, t->name, (unsigned long long)t->begin);
		else if (t->begin > prev_end)
			st = rt_errf(SEGC_ERR_FORMAT, err, errlen,
			             "%s: the first tensor '%s' begins at data offset %llu, not 0",
			             label, t->name, (unsigned long long)t->begin);
		prev_end = t->end;
	}
	if (st == SEGC_OK && prev_end != l->data_size)
		st = rt_errf(SEGC_ERR_FORMAT, err, errlen,
		             "%s: %llu bytes at byte %llu after the last tensor '%s' belong to no "
		             "tensor",
		             label, (unsigned long long)(l->data_size - prev_end),
		             (unsigned long long)(8 + l->header_len + prev_end),
		             order[l->n - 1]->name);
	free(order);
	if (st != SEGC_OK)
		return st;
	for (i = 0; i < l->n; i++)
		l->tensors[i].data = base + l->tensors[i].begin;
	return SEGC_OK;
}

segc_status
rt_safetensors_parse(const char *label, const uint8_t *data, size_t size, RtTensorList *out,
                     char *err, size_t errlen)
{
	uint64_t n = 0;
	size_t i, k;
	Js j;
	segc_status st;
	int t;

	memset(out, 0, sizeof *out);
	if (!label)
		label = "<memory>";
	if (!data && size)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "%s: no data", label);
	if (size < 8)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: file is %zu bytes, too short for the 8-byte header length",
		               label, size);
	for (i = 0; i < 8; i++)
		n |= (uint64_t)data[i] << (8 * i);
	if (n < 2)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: header length %llu at byte 0 is too small (at least 2)", label,
		               (unsigned long long)n);
	if (n > MAX_HEADER)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: header length %llu at byte 0 exceeds the limit of %llu bytes",
		               label, (unsigned long long)n, MAX_HEADER);
	if (n > size - 8)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: header length %llu at byte 0 exceeds the file size %zu", label,
		               (unsigned long long)n, size);
	for (i = 0; i < n; i += k) {
		k = utf8_len(data + 8 + i, (size_t)n - i);
		if (k == 0)
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "%s: bad header at byte %zu: invalid UTF-8", label, i + 8);
	}
	memset(&j, 0, sizeof j);
	j.label = label;
	j.s = data + 8;
	j.n = (size_t)n;
	j.err = err;
	j.errlen = errlen;
	j.out = out;
	out->header_len = n;
	out->data_size = size - 8 - n;
	if (jheader(&j)) {
		rt_tensor_list_free(out);
		return j.st;
	}
	if (out->n > 1)
		qsort(out->tensors, (size_t)out->n, sizeof *out->tensors, cmp_name);
	for (t = 1; t < out->n; t++) {
		if (strcmp(out->tensors[t - 1].name, out->tensors[t].name) == 0) {
			size_t a = out->tensors[t - 1].key_at, b = out->tensors[t].key_at;
			rt_errf(SEGC_ERR_FORMAT, err, errlen,
			        "%s: bad header at byte %zu: duplicate key '%s'", label,
			        a > b ? a : b, out->tensors[t].name);
			rt_tensor_list_free(out);
			return SEGC_ERR_FORMAT;
		}
	}
	st = check_layout(label, out, data + 8 + n, err, errlen);
	if (st != SEGC_OK)
		rt_tensor_list_free(out);
	return st;
}

/* ---- the writer ---- */

typedef struct {
	char *s;
	size_t len, cap;
	int oom;
} Buf;

static void
bput(Buf *b, const char *s, size_t n)
{
	char *ns;
	size_t nc;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		nc = b->cap ? b->cap : 256;
		while (nc < b->len + n + 1)
			nc *= 2;
		ns = realloc(b->s, nc);
		if (!ns) {
			b->oom = 1;
			return;
		}
		b->s = ns;
		b->cap = nc;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}

static void
bstr(Buf *b, const char *s)
{
	bput(b, s, strlen(s));
}

static void
bjson(Buf *b, const char *s)
{
	char e[8];

	bput(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			e[0] = '\\';
			e[1] = *s;
			bput(b, e, 2);
		} else if ((unsigned char)*s < 0x20) {
			snprintf(e, sizeof e, "\\u%04x", (unsigned char)*s);
			bput(b, e, 6);
		} else {
			bput(b, s, 1);
		}
	}
	bput(b, "\"", 1);
}

typedef struct {
	const char *name;
	int idx;
} NameIdx;

static int
cmp_nameidx(const void *a, const void *b)
{
	return strcmp(((const NameIdx *)a)->name, ((const NameIdx *)b)->name);
}

/* the 8-byte length + padded header into *hdr; the tensors' order into *order (malloc'd) */
static segc_status
build_header(int n, const char *const names[], const segc_dtype dtypes[], const int ranks[],
             const int64_t *const shapes[], Buf *hdr, NameIdx **order, uint64_t *sizes, char *err,
             size_t errlen)
{
	NameIdx *o;
	Buf b = {0};
	uint64_t off = 0, nb, len;
	char num[64];
	int i, d, x;
	size_t k, u;

	*order = NULL;
	if (n < 0 || (n > 0 && (!names || !dtypes || !ranks || !shapes)))
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "safetensors: bad arguments");
	o = malloc((size_t)(n ? n : 1) * sizeof *o);
	if (!o)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "safetensors: out of memory");
	for (i = 0; i < n; i++) {
		x = (int)dtypes[i];
		if (!names[i] || !*names[i] || strcmp(names[i], "__metadata__") == 0 || x < 0 ||
		    x > SEGC_U8 || ranks[i] < 0 || ranks[i] > SEGC_MAX_RANK ||
		    (ranks[i] > 0 && !shapes[i])) {
			free(o);
			return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			               "safetensors: bad tensor %d ('%s')", i,
			               names[i] ? names[i] : "(null)");
		}
		for (k = 0; names[i][k]; k += u) {
			u = utf8_len((const uint8_t *)names[i] + k, strlen(names[i] + k));
			if (!u) {
				free(o);
				return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
				               "safetensors: tensor name %d is not UTF-8", i);
			}
		}
		o[i].name = names[i];
		o[i].idx = i;
	}
	if (n > 1)
		qsort(o, (size_t)n, sizeof *o, cmp_nameidx);
	for (i = 1; i < n; i++) {
		if (strcmp(o[i - 1].name, o[i].name) == 0) {
			rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			        "safetensors: duplicate tensor name '%s'", o[i].name);
			free(o);
			return SEGC_ERR_INVALID_ARGUMENT;
		}
	}
	bput(&b, "\0\0\0\0\0\0\0\0", 8);
	bstr(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
	for (i = 0; i < n; i++) {
		x = o[i].idx;
		nb = (uint64_t)st_sizes[dtypes[x]];
		for (d = 0; d < ranks[x]; d++) {
			if (shapes[x][d] < 0 || !rt_mul_u64(nb, (uint64_t)shapes[x][d], &nb)) {
				free(o);
				free(b.s);
				return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
				               "safetensors: tensor '%s' has a bad shape",
				               names[x]);
			}
		}
		sizes[x] = nb;
		bstr(&b, ",");
		bjson(&b, names[x]);
		bstr(&b, ":{\"dtype\":\"");
		bstr(&b, st_names[dtypes[x]]);
		bstr(&b, "\",\"shape\":[");
		for (d = 0; d < ranks[x]; d++) {
			snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)shapes[x][d]);
			bstr(&b, num);
		}
		snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}",
		         (unsigned long long)off, (unsigned long long)(off + nb));
		bstr(&b, num);
		off += nb;
	}
	bstr(&b, "}");
	while (b.len % 8)
		bstr(&b, " ");
	if (b.oom) {
		free(o);
		free(b.s);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "safetensors: out of memory");
	}
	len = b.len - 8;
	for (i = 0; i < 8; i++)
		b.s[i] = (char)(len >> (8 * i) & 0xff);
	*hdr = b;
	*order = o;
	return SEGC_OK;
}

segc_status
rt_safetensors_write(const char *path, int n, const char *const names[], const segc_dtype dtypes[],
                     const int ranks[], const int64_t *const shapes[], const void *const datas[],
                     char *err, size_t errlen)
{
	RtPiece *pieces;
	uint64_t *sizes;
	NameIdx *order;
	Buf hdr;
	segc_status st;
	int i;

	if (!path || (n > 0 && !datas))
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "safetensors: bad arguments");
	sizes = calloc((size_t)(n > 0 ? n : 1), sizeof *sizes);
	pieces = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof *pieces);
	if (!sizes || !pieces) {
		free(sizes);
		free(pieces);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "%s: out of memory", path);
	}
	st = build_header(n, names, dtypes, ranks, shapes, &hdr, &order, sizes, err, errlen);
	if (st == SEGC_OK) {
		pieces[0].data = hdr.s;
		pieces[0].size = hdr.len;
		for (i = 0; i < n; i++) {
			pieces[i + 1].data = datas[order[i].idx];
			pieces[i + 1].size = (size_t)sizes[order[i].idx];
			if (pieces[i + 1].size && !pieces[i + 1].data) {
				st = rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
				             "safetensors: tensor '%s' has no data", order[i].name);
				break;
			}
		}
		if (st == SEGC_OK)
			st = rt_file_write_atomic(path, pieces, n + 1, err, errlen);
		free(hdr.s);
		free(order);
	}
	free(sizes);
	free(pieces);
	return st;
}

segc_status
rt_safetensors_build(int n, const char *const names[], const segc_dtype dtypes[], const int ranks[],
                     const int64_t *const shapes[], const void *const datas[], uint8_t **out,
                     size_t *outsize, char *err, size_t errlen)
{
	uint64_t *sizes, total;
	NameIdx *order;
	uint8_t *img;
	Buf hdr;
	segc_status st;
	int i;

	*out = NULL;
	*outsize = 0;
	if (n > 0 && !datas)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "safetensors: bad arguments");
	sizes = calloc((size_t)(n > 0 ? n : 1), sizeof *sizes);
	if (!sizes)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "safetensors: out of memory");
	st = build_header(n, names, dtypes, ranks, shapes, &hdr, &order, sizes, err, errlen);
	if (st != SEGC_OK) {
		free(sizes);
		return st;
	}
	total = hdr.len;
	for (i = 0; i < n; i++)
		total += sizes[i];
	img = total <= SIZE_MAX ? malloc((size_t)total) : NULL;
	if (!img) {
		st = rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "safetensors: out of memory");
	} else {
		memcpy(img, hdr.s, hdr.len);
		total = hdr.len;
		for (i = 0; i < n; i++) {
			if (sizes[order[i].idx] == 0)
				continue;
			if (!datas[order[i].idx]) {
				free(img);
				img = NULL;
				st = rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
				             "safetensors: tensor '%s' has no data", order[i].name);
				break;
			}
			memcpy(img + total, datas[order[i].idx], (size_t)sizes[order[i].idx]);
			total += sizes[order[i].idx];
		}
		*out = img;
		*outsize = img ? (size_t)total : 0;
	}
	free(hdr.s);
	free(order);
	free(sizes);
	return st;
}
