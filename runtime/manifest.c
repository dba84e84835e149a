/* runtime/manifest.c -- parse and validate the engine manifest (docs/abi.md).
 *
 *   segc-manifest 1
 *   graph <name> / segc <version> / target cpu / arena <bytes> / [packed <bytes>]
 *   param <name> <value>                           (any number)
 *   input|output|weight <name> <dtype> <d0,d1,...> (rank 0: "-")
 *   macs <n> / flops <n> / kernels <n>
 *   end
 *
 * Strict: one record per line, fields separated by single spaces, every singleton record
 * exactly once (packed at most once), "end" last, no duplicate names within inputs, outputs,
 * weights or params.
 * Every error names the line.  The text is copied once and tokenized in place. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_manifest.h"
#include "rt_util.h"

#define MAXFIELDS 4

static const char *const dtype_names[] = {"f32", "f16", "bf16", "i32", "i64", "u8"};
static const int dtype_sizes[] = {4, 2, 2, 4, 8, 1};

int
rt_dtype_lookup(const char *name)
{
	int i;

	for (i = 0; i < (int)(sizeof dtype_names / sizeof dtype_names[0]); i++)
		if (strcmp(name, dtype_names[i]) == 0)
			return i;
	return -1;
}

const char *
rt_dtype_name(int dt)
{
	if (dt < 0 || dt >= (int)(sizeof dtype_names / sizeof dtype_names[0]))
		return NULL;
	return dtype_names[dt];
}

int
rt_dtype_size(int dt)
{
	if (dt < 0 || dt >= (int)(sizeof dtype_sizes / sizeof dtype_sizes[0]))
		return 0;
	return dtype_sizes[dt];
}

int64_t
rt_numel(int rank, const int64_t *shape)
{
	int64_t n = 1;
	int i;

	for (i = 0; i < rank; i++) {
		if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n))
			return -1;
	}
	return n;
}

/* a decimal integer without sign or leading zeros, fitting in 63 bits; 0 on error */
static int
parse_u63(const char *s, int64_t *out)
{
	int64_t v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *s - '0', &v))
			return 0;
	}
	*out = v;
	return 1;
}

/* a finite non-negative number ("1234", "1.5e9") */
static int
parse_number(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return 0;
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno == ERANGE || !isfinite(v) || v < 0)
		return 0;
	*out = v;
	return 1;
}

static int
parse_dims(const char *s, segc_tensor_info *t)
{
	char buf[32];
	const char *p = s, *q;
	size_t len;
	int64_t v;

	t->rank = 0;
	if (strcmp(s, "-") == 0)
		return 1;
	for (;;) {
		q = strchr(p, ',');
		len = q ? (size_t)(q - p) : strlen(p);
		if (len == 0 || len >= sizeof buf || t->rank == SEGC_MAX_RANK)
			return 0;
		memcpy(buf, p, len);
		buf[len] = 0;
		if (!parse_u63(buf, &v))
			return 0;
		t->shape[t->rank++] = v;
		if (!q)
			return 1;
		p = q + 1;
	}
}

void
rt_manifest_free(RtManifest *m)
{
	free(m->text);
	free(m->params);
	free(m->inputs);
	free(m->outputs);
	free(m->weights);
	free(m->ranges);
	memset(m, 0, sizeof *m);
}

static segc_status
fail(RtManifest *m, char *err, size_t errlen, int line, const char *what, const char *arg)
{
	rt_errf(SEGC_ERR_FORMAT, err, errlen, "manifest line %d: %s%s%s%s", line, what,
	        arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
	rt_manifest_free(m);
	return SEGC_ERR_FORMAT;
}

static int
has_name(const segc_tensor_info *ts, int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(ts[i].name, name) == 0)
			return 1;
	return 0;
}

/* the singleton records, in the order they must appear at most once */
enum { R_GRAPH, R_SEGC, R_TARGET, R_ARENA, R_MACS, R_FLOPS, R_KERNELS, R_COUNT };
static const char *const singles[R_COUNT] = {"graph", "segc",  "target", "arena",
                                             "macs",  "flops", "kernels"};

segc_status
rt_manifest_parse(const char *text, RtManifest *m, char *err, size_t errlen)
{
	char *line, *next, *f[MAXFIELDS + 1];
	int seen[R_COUNT] = {0};
	int lineno = 0, nf, i, ended = 0, cap = 0, k, packed_seen = 0;
	segc_tensor_info *t;
	size_t len;
	int64_t v;

	memset(m, 0, sizeof *m);
	if (!text)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen, "manifest line 1: no manifest");
	len = strlen(text);
	m->text = malloc(len + 1);
	if (!m->text)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "manifest: out of memory");
	memcpy(m->text, text, len + 1);
	for (i = 0; text[i]; i++)
		cap += text[i] == '\n';
	cap += 1;
	m->params = calloc((size_t)cap, sizeof *m->params);
	m->inputs = calloc((size_t)cap, sizeof *m->inputs);
	m->outputs = calloc((size_t)cap, sizeof *m->outputs);
	m->weights = calloc((size_t)cap, sizeof *m->weights);
	if (!m->params || !m->inputs || !m->outputs || !m->weights) {
		rt_manifest_free(m);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "manifest: out of memory");
	}

	for (line = m->text; *line; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		if (ended)
			return fail(m, err, errlen, lineno, "text after 'end'", NULL);
		if (strpbrk(line, "\t\r\v\f"))
			return fail(m, err, errlen, lineno, "control character in the line", NULL);
		/* split on single spaces */
		nf = 0;
		f[nf++] = line;
		for (i = 0; line[i]; i++) {
			if (line[i] != ' ')
				continue;
			line[i] = 0;
			if (nf == MAXFIELDS + 1)
				return fail(m, err, errlen, lineno, "too many fields", NULL);
			f[nf++] = line + i + 1;
		}
		for (i = 0; i < nf; i++)
			if (!*f[i])
				return fail(m, err, errlen, lineno, "empty field (double space?)",
				            NULL);

		if (lineno == 1) {
			if (nf != 2 || strcmp(f[0], "segc-manifest") != 0)
				return fail(m, err, errlen, lineno, "expected 'segc-manifest 1'",
				            NULL);
			if (strcmp(f[1], "1") != 0)
				return fail(m, err, errlen, lineno, "unsupported manifest version",
				            f[1]);
			continue;
		}
		if (strcmp(f[0], "end") == 0) {
			if (nf != 1)
				return fail(m, err, errlen, lineno, "'end' takes no fields", NULL);
			ended = 1;
			continue;
		}
		for (k = 0; k < R_COUNT; k++)
			if (strcmp(f[0], singles[k]) == 0)
				break;
		if (k < R_COUNT) {
			if (nf != 2)
				return fail(m, err, errlen, lineno, "expected one field after",
				            f[0]);
			if (seen[k]++)
				return fail(m, err, errlen, lineno, "duplicate record", f[0]);
			switch (k) {
			case R_GRAPH:
				m->graph = f[1];
				break;
			case R_SEGC:
				m->segc_version = f[1];
				break;
			case R_TARGET:
				m->target = f[1];
				if (strcmp(f[1], "cpu") != 0 && strcmp(f[1], "cuda:sm_90") != 0 &&
				    strcmp(f[1], "cuda:sm_80") != 0)
					return fail(m, err, errlen, lineno, "unknown target", f[1]);
				break;
			case R_ARENA:
				if (!parse_u63(f[1], &v))
					return fail(m, err, errlen, lineno, "bad arena size", f[1]);
				m->arena = (uint64_t)v;
				break;
			case R_MACS:
				if (!parse_number(f[1], &m->macs))
					return fail(m, err, errlen, lineno, "bad number", f[1]);
				break;
			case R_FLOPS:
				if (!parse_number(f[1], &m->flops))
					return fail(m, err, errlen, lineno, "bad number", f[1]);
				break;
			case R_KERNELS:
				if (!parse_u63(f[1], &m->nkernels))
					return fail(m, err, errlen, lineno, "bad kernel count",
					            f[1]);
				break;
			}
			continue;
		}
		if (strcmp(f[0], "packed") == 0) { /* optional: the prepack kernels' output */
			if (nf != 2 || !parse_u63(f[1], &v))
				return fail(m, err, errlen, lineno, "expected 'packed <bytes>'",
				            NULL);
			if (packed_seen++)
				return fail(m, err, errlen, lineno, "duplicate record", f[0]);
			m->packed = (uint64_t)v;
			continue;
		}
		if (strcmp(f[0], "param") == 0) {
			if (nf != 3)
				return fail(m, err, errlen, lineno,
				            "expected 'param <name> <value>'", NULL);
			for (i = 0; i < m->nparams; i++)
				if (strcmp(m->params[i].name, f[1]) == 0)
					return fail(m, err, errlen, lineno, "duplicate param",
					            f[1]);
			m->params[m->nparams].name = f[1];
			m->params[m->nparams].value = f[2];
			m->nparams++;
			continue;
		}
		if (strcmp(f[0], "range") == 0) {
			/* range <input> <lo> <hi>: after that input's record; lo, hi >= 0 */
			int64_t lo, hi;
			for (i = 0; i < m->ninputs && strcmp(m->inputs[i].name, f[1]) != 0; i++)
				;
			if (nf != 4 || i == m->ninputs || !parse_u63(f[2], &lo) ||
			    !parse_u63(f[3], &hi) || lo >= hi ||
			    (m->inputs[i].dtype != SEGC_I64 && m->inputs[i].dtype != SEGC_I32))
				return fail(m, err, errlen, lineno,
				            "expected 'range <integer input> <lo> <hi>', lo < hi",
				            NULL);
			if (!m->ranges && !(m->ranges = calloc((size_t)cap, sizeof *m->ranges))) {
				rt_manifest_free(m);
				return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen,
				               "manifest: out of memory");
			}
			m->ranges[m->nranges].input = i;
			m->ranges[m->nranges].lo = lo;
			m->ranges[m->nranges].hi = hi;
			m->nranges++;
			continue;
		}
		if (strcmp(f[0], "input") == 0)
			t = &m->inputs[m->ninputs];
		else if (strcmp(f[0], "output") == 0)
			t = &m->outputs[m->noutputs];
		else if (strcmp(f[0], "weight") == 0)
			t = &m->weights[m->nweights];
		else
			return fail(m, err, errlen, lineno, "unknown record", f[0]);
		if (nf != 4)
			return fail(m, err, errlen, lineno,
			            "expected '<name> <dtype> <dims>' after", f[0]);
		k = rt_dtype_lookup(f[2]);
		if (k < 0)
			return fail(m, err, errlen, lineno, "unknown dtype", f[2]);
		if (!parse_dims(f[3], t))
			return fail(m, err, errlen, lineno, "bad dims", f[3]);
		if (rt_numel(t->rank, t->shape) < 0 ||
		    !rt_mul_u64((uint64_t)rt_numel(t->rank, t->shape), (uint64_t)rt_dtype_size(k),
		                &(uint64_t){0}))
			return fail(m, err, errlen, lineno, "tensor too large", f[1]);
		t->dtype = (segc_dtype)k;
		t->name = f[1];
		if (f[0][0] == 'i') {
			if (has_name(m->inputs, m->ninputs, f[1]))
				return fail(m, err, errlen, lineno, "duplicate input", f[1]);
			m->ninputs++;
		} else if (f[0][0] == 'o') {
			if (has_name(m->outputs, m->noutputs, f[1]))
				return fail(m, err, errlen, lineno, "duplicate output", f[1]);
			m->noutputs++;
		} else {
			if (has_name(m->weights, m->nweights, f[1]))
				return fail(m, err, errlen, lineno, "duplicate weight", f[1]);
			m->nweights++;
		}
	}
	if (lineno == 0)
		return fail(m, err, errlen, 1, "empty manifest", NULL);
	for (k = 0; k < R_COUNT; k++)
		if (!seen[k])
			return fail(m, err, errlen, lineno, "missing record", singles[k]);
	if (!ended)
		return fail(m, err, errlen, lineno, "missing 'end'", NULL);
	return SEGC_OK;
}

segc_status
rt_check_range(const RtManifest *m, const struct RtRange *r, const void *data, const char *what,
               char *err, size_t errlen)
{
	const segc_tensor_info *t = &m->inputs[r->input];
	int64_t k, n = rt_numel(t->rank, t->shape), v;

	for (k = 0; k < n; k++) {
		v = t->dtype == SEGC_I64 ? ((const int64_t *)data)[k] : ((const int32_t *)data)[k];
		if (v < r->lo || v >= r->hi)
			return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			               "%s: input '%s' element %lld is %lld, expected a value in "
			               "[%lld, %lld)",
			               what, t->name, (long long)k, (long long)v, (long long)r->lo,
			               (long long)r->hi);
	}
	return SEGC_OK;
}
