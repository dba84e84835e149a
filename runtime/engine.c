/* runtime/engine.c -- the engine ABI (segc_engine.h) over the generated code (rt_gen.h).
 *
 * open parses the manifest the generated object carries (segc_gen_manifest), allocates the
 * arena and the slot array, and starts the thread pool; load_weights validates a safetensors
 * image (safetensors.c), matches it against the manifest and copies every weight into one
 * engine-owned, 64-byte aligned buffer and runs the prepack kernels (segc_gen_prepack) into the
 * packed slot; run fills the slots and calls segc_gen_run.  All
 * state lives on the engine; run allocates nothing.  segc_engine_api is the only symbol an
 * engine.so exports. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_cuda.h"
#include "rt_gen.h"
#include "rt_manifest.h"
#include "rt_pool.h"
#include "rt_util.h"
#include "rt_weights.h"
#include "rt_window.h"

#define ERRLEN 512
#define ALIGN  64

struct segc_engine {
	RtManifest m;
	void *arena;
	RtPool *pool;
	void **slots; /* 1 + inputs + outputs + weights + the packed slot */
	int nslots;
	void *packed; /* the prepack kernels' output (manifest "packed"; CPU), else NULL */
	void *wbuf;   /* all weights, NULL until load_weights succeeds */
	RtCuda *cuda; /* CUDA engines (manifest target cuda:sm_XX): the device side, cuda.c */
	char err[ERRLEN];
};

static segc_status set_err(segc_engine_t *e, segc_status st, const char *fmt, ...) RT_PRINTF(3, 4);

static segc_status
set_err(segc_engine_t *e, segc_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->err, sizeof e->err, fmt, ap);
	va_end(ap);
	return st;
}

static void *
alloc_aligned(uint64_t size)
{
	void *p = NULL;

	if (size < ALIGN)
		size = ALIGN;
	if (size > SIZE_MAX - ALIGN)
		return NULL;
	size = (size + ALIGN - 1) / ALIGN * ALIGN;
	if (posix_memalign(&p, ALIGN, (size_t)size) != 0)
		return NULL;
	return p;
}

static void
engine_close(segc_engine_t *e)
{
	if (!e)
		return;
	rt_pool_free(e->pool);
	rt_cuda_close(e->cuda);
	free(e->arena);
	free(e->packed);
	free(e->wbuf);
	free(e->slots);
	rt_manifest_free(&e->m);
	free(e);
}

static segc_status
engine_open(const segc_options *opts, segc_engine_t **out, char *err, size_t errlen)
{
	segc_engine_t *e;
	segc_status st;
	int nthreads = 0, errnum = 0;
	char eb[128];

	if (err && errlen)
		err[0] = 0;
	if (!out)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "open: out is NULL");
	*out = NULL;
	if (opts) {
		if (opts->size < sizeof(uint32_t))
			return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			               "open: options size %u is too small", opts->size);
		if (opts->size >= offsetof(segc_options, num_threads) + sizeof opts->num_threads)
			nthreads = opts->num_threads;
	}
	if (nthreads < 0 || nthreads > RT_POOL_MAX_THREADS)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "open: num_threads %d is out of range (0 .. %d)", nthreads,
		               RT_POOL_MAX_THREADS);
	nthreads = rt_pool_resolve_threads(nthreads);
	if (nthreads < 0)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "open: SEGC_NUM_THREADS='%s' is not a thread count (1 .. %d)",
		               getenv("SEGC_NUM_THREADS"), RT_POOL_MAX_THREADS);
	e = calloc(1, sizeof *e);
	if (!e)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
	st = rt_manifest_parse(segc_gen_manifest, &e->m, err, errlen);
	if (st != SEGC_OK) {
		free(e);
		return st;
	}
	if (rt_cuda_is_target(e->m.target)) {
		/* the arena lives on the GPU; slot 0 stays NULL on the host */
		st = rt_cuda_open(&e->cuda, &e->m, err, errlen);
		if (st != SEGC_OK) {
			engine_close(e);
			return st;
		}
	}
	e->arena = e->cuda ? NULL : alloc_aligned(e->m.arena);
	if (!e->arena && !e->cuda) {
		unsigned long long bytes = (unsigned long long)e->m.arena;
		engine_close(e);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen,
		               "open: cannot allocate the %llu-byte arena", bytes);
	}
	if (!e->cuda && e->m.packed > 0 && !(e->packed = alloc_aligned(e->m.packed))) {
		unsigned long long bytes = (unsigned long long)e->m.packed;
		engine_close(e);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen,
		               "open: cannot allocate the %llu bytes of packed weights", bytes);
	}
	e->nslots = 1 + e->m.ninputs + e->m.noutputs + e->m.nweights + 1;
	e->slots = calloc((size_t)e->nslots, sizeof *e->slots);
	if (!e->slots) {
		engine_close(e);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
	}
	e->slots[0] = e->arena;
	e->slots[e->nslots - 1] = e->packed;
	e->pool = rt_pool_new(nthreads, &errnum);
	if (!e->pool) {
		engine_close(e);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: cannot start %d threads: %s",
		               nthreads, rt_strerror(errnum, eb, sizeof eb));
	}
	*out = e;
	return SEGC_OK;
}

/* the manifest's and the file's shapes as "[a,b,c]" */
static void
fmt_shape(char *buf, size_t len, int rank, const int64_t *shape)
{
	size_t k = 0;
	int i;

	k += (size_t)snprintf(buf + k, len - k, "[");
	for (i = 0; i < rank && k < len; i++)
		k +=
		    (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)shape[i]);
	if (k < len)
		snprintf(buf + k, len - k, "]");
}

/* Read n bytes at file offset off into dst.  The weights of a file are read, not copied out
 * of its mapping: touching the mapping maps the page cache's folios whole (large folios for a
 * file written in big chunks, as checkpoints are), so the file's pages and the engine's copy
 * were resident together (+42% peak for a 650 MiB file); only the header is read through the
 * mapping.  0, or an errno. */
static int
read_range(int fd, uint8_t *dst, uint64_t n, uint64_t off)
{
	while (n > 0) {
		size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
		ssize_t r = pread(fd, dst, chunk, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : EIO;
		dst += r;
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	return 0;
}

/* match the parsed file against the manifest and copy the weights into a new buffer;
 * fd >= 0: the image at base is a mapping of that file, whose tensor bytes are read with pread
 * (read_range) instead of through the mapping */
static segc_status
install_weights(segc_engine_t *e, const char *label, const RtTensorList *l, int fd,
                const uint8_t *base)
{
	const segc_tensor_info *w;
	const RtTensor *t;
	uint64_t total = 0, nb;
	char a[200], b[200];
	uint8_t *buf;
	int i, d;

	for (i = 0; i < e->m.nweights; i++) {
		w = &e->m.weights[i];
		t = rt_tensor_list_find(l, w->name);
		if (!t)
			return set_err(e, SEGC_ERR_MISMATCH, "weight '%s' is missing from %s",
			               w->name, label);
		if (t->dtype != (int)w->dtype)
			return set_err(e, SEGC_ERR_MISMATCH,
			               "weight '%s': dtype %s in the file, engine expects %s",
			               w->name, rt_st_dtype_name(t->dtype),
			               rt_st_dtype_name((int)w->dtype));
		for (d = 0; d < t->rank && t->rank == w->rank; d++)
			if (t->shape[d] != w->shape[d])
				break;
		if (t->rank != w->rank || d < t->rank) {
			fmt_shape(a, sizeof a, t->rank, t->shape);
			fmt_shape(b, sizeof b, w->rank, w->shape);
			return set_err(e, SEGC_ERR_MISMATCH,
			               "weight '%s': shape %s in the file, engine expects %s",
			               w->name, a, b);
		}
		nb = (t->end - t->begin + ALIGN - 1) / ALIGN * ALIGN;
		if (__builtin_add_overflow(total, nb, &total))
			return set_err(e, SEGC_ERR_NO_MEMORY, "%s: weights too large", label);
	}
	if (l->n > e->m.nweights) {
		/* names are unique on both sides: some file tensor is not in the manifest */
		for (i = 0; i < l->n; i++) {
			for (d = 0; d < e->m.nweights; d++)
				if (strcmp(l->tensors[i].name, e->m.weights[d].name) == 0)
					break;
			if (d == e->m.nweights)
				return set_err(e, SEGC_ERR_MISMATCH,
				               "%s holds '%s', which the engine does not use",
				               label, l->tensors[i].name);
		}
	}
	buf = alloc_aligned(total);
	if (!buf)
		return set_err(e, SEGC_ERR_NO_MEMORY, "%s: cannot allocate %llu bytes of weights",
		               label, (unsigned long long)total);
	total = 0;
	for (i = 0; i < e->m.nweights; i++) {
		t = rt_tensor_list_find(l, e->m.weights[i].name);
		nb = t->end - t->begin;
		if (nb && fd >= 0) {
			uint64_t off = (uint64_t)(t->data - base);
			int en = read_range(fd, buf + total, nb, off);
			if (en) {
				char eb[128];
				free(buf);
				return set_err(
				    e, SEGC_ERR_IO,
				    "%s: cannot read weight '%s' (%llu bytes at byte offset "
				    "%llu): %s",
				    label, t->name, (unsigned long long)nb, (unsigned long long)off,
				    rt_strerror(en, eb, sizeof eb));
			}
		} else if (nb) {
			memcpy(buf + total, t->data, (size_t)nb);
		}
		e->slots[1 + e->m.ninputs + e->m.noutputs + i] = buf + total;
		total += (nb + ALIGN - 1) / ALIGN * ALIGN;
	}
	free(e->wbuf);
	e->wbuf = buf;
	if (e->cuda) {
		void *const *ws = e->slots + 1 + e->m.ninputs + e->m.noutputs;
		segc_status st = rt_cuda_weights(e->cuda, buf, ws, e->err, sizeof e->err);
		if (st != SEGC_OK) {
			free(e->wbuf);
			e->wbuf = NULL;
			return st;
		}
	} else if (segc_gen_prepack) {
		/* the weights' load-time forms (codegen/prepack.c) into the packed slot */
		int rc = segc_gen_prepack(e->slots, e->pool);
		if (rc != 0)
			return set_err(e, SEGC_ERR_DEVICE,
			               "load_weights: the prepack code failed (status %d)", rc);
	}
	return SEGC_OK;
}

static segc_status
load_image(segc_engine_t *e, const char *label, const uint8_t *data, size_t size, int fd)
{
	RtTensorList l;
	segc_status st;

	st = rt_safetensors_parse(label, data, size, &l, e->err, sizeof e->err);
	if (st != SEGC_OK)
		return st;
	st = install_weights(e, label, &l, fd, data);
	rt_tensor_list_free(&l);
	return st;
}

static segc_status
engine_load_weights(segc_engine_t *e, const char *path)
{
	RtFile f;
	segc_status st;

	if (!e)
		return SEGC_ERR_INVALID_ARGUMENT;
	e->err[0] = 0;
	if (!path)
		return set_err(e, SEGC_ERR_INVALID_ARGUMENT, "load_weights: path is NULL");
	st = rt_file_map(path, &f, e->err, sizeof e->err);
	if (st != SEGC_OK)
		return st;
	/* the same file again, for reading the tensors (read_range); a file that cannot be
	 * opened twice falls back to copying from the mapping */
	int fd = f.map ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	st = load_image(e, path, f.data, f.size, fd);
	if (fd >= 0)
		close(fd);
	rt_file_unmap(&f);
	return st;
}

static segc_status
engine_load_weights_memory(segc_engine_t *e, const void *data, size_t size)
{
	if (!e)
		return SEGC_ERR_INVALID_ARGUMENT;
	e->err[0] = 0;
	if (!data && size)
		return set_err(e, SEGC_ERR_INVALID_ARGUMENT, "load_weights_memory: data is NULL");
	return load_image(e, "<memory>", data ? data : "", size, -1);
}

static int32_t
engine_num_inputs(const segc_engine_t *e)
{
	return e ? e->m.ninputs : 0;
}

static int32_t
engine_num_outputs(const segc_engine_t *e)
{
	return e ? e->m.noutputs : 0;
}

static int32_t
engine_num_weights(const segc_engine_t *e)
{
	return e ? e->m.nweights : 0;
}

static segc_status
info(const segc_tensor_info *ts, int n, int32_t i, segc_tensor_info *out)
{
	if (!out || i < 0 || i >= n)
		return SEGC_ERR_INVALID_ARGUMENT;
	*out = ts[i];
	return SEGC_OK;
}

static segc_status
engine_input_info(const segc_engine_t *e, int32_t i, segc_tensor_info *out)
{
	return e ? info(e->m.inputs, e->m.ninputs, i, out) : SEGC_ERR_INVALID_ARGUMENT;
}

static segc_status
engine_output_info(const segc_engine_t *e, int32_t i, segc_tensor_info *out)
{
	return e ? info(e->m.outputs, e->m.noutputs, i, out) : SEGC_ERR_INVALID_ARGUMENT;
}

static segc_status
engine_weight_info(const segc_engine_t *e, int32_t i, segc_tensor_info *out)
{
	return e ? info(e->m.weights, e->m.nweights, i, out) : SEGC_ERR_INVALID_ARGUMENT;
}

static uint64_t
engine_arena_bytes(const segc_engine_t *e)
{
	return e ? e->m.arena : 0;
}

static const char *
engine_manifest(const segc_engine_t *e)
{
	return segc_gen_manifest;
}

static segc_status
engine_run(segc_engine_t *e, const void *const *inputs, void *const *outputs)
{
	int i, rc;

	if (!e)
		return SEGC_ERR_INVALID_ARGUMENT;
	e->err[0] = 0;
	if (!e->wbuf && e->m.nweights > 0)
		return set_err(e, SEGC_ERR_STATE, "run: no weights loaded (call load_weights)");
	if ((!inputs && e->m.ninputs > 0) || (!outputs && e->m.noutputs > 0))
		return set_err(e, SEGC_ERR_INVALID_ARGUMENT, "run: inputs or outputs is NULL");
	for (i = 0; i < e->m.ninputs; i++) {
		if (!inputs[i])
			return set_err(e, SEGC_ERR_INVALID_ARGUMENT, "run: input %d ('%s') is NULL",
			               i, e->m.inputs[i].name);
		e->slots[1 + i] = (void *)inputs[i];
	}
	for (i = 0; i < e->m.noutputs; i++) {
		if (!outputs[i])
			return set_err(e, SEGC_ERR_INVALID_ARGUMENT,
			               "run: output %d ('%s') is NULL", i, e->m.outputs[i].name);
		e->slots[1 + e->m.ninputs + i] = outputs[i];
	}
	/* the integer inputs' ranges (labels that index tables), checked on the host for every
	 * engine: a CUDA engine's kernels would read out of bounds too (run_device: rt_cuda_run
	 * copies them to the host first) */
	for (i = 0; i < e->m.nranges; i++)
		if (rt_check_range(&e->m, &e->m.ranges[i], inputs[e->m.ranges[i].input], "run",
		                   e->err, sizeof e->err) != SEGC_OK)
			return SEGC_ERR_INVALID_ARGUMENT;
	if (e->cuda)
		return rt_cuda_run(e->cuda, inputs, outputs, 0, e->err, sizeof e->err);
	rc = segc_gen_run(e->slots, e->pool);
	if (rc != 0)
		return set_err(e, SEGC_ERR_DEVICE, "run: the generated code failed with status %d",
		               rc);
	return SEGC_OK;
}

/* devices (CUDA engines): run with device pointers, the device, its stream and memory */
static segc_status
engine_run_device(segc_engine_t *e, const void *const *inputs, void *const *outputs)
{
	int i;

	if (!e)
		return SEGC_ERR_INVALID_ARGUMENT;
	e->err[0] = 0;
	if (!e->cuda)
		return set_err(e, SEGC_ERR_UNSUPPORTED, "run_device: this engine runs on the CPU");
	if (!e->wbuf && e->m.nweights > 0)
		return set_err(e, SEGC_ERR_STATE,
		               "run_device: no weights loaded (call load_weights)");
	if ((!inputs && e->m.ninputs > 0) || (!outputs && e->m.noutputs > 0))
		return set_err(e, SEGC_ERR_INVALID_ARGUMENT,
		               "run_device: inputs or outputs is NULL");
	for (i = 0; i < e->m.ninputs + e->m.noutputs; i++)
		if (!(i < e->m.ninputs ? inputs[i] : outputs[i - e->m.ninputs]))
			return set_err(e, SEGC_ERR_INVALID_ARGUMENT, "run_device: %s %d is NULL",
			               i < e->m.ninputs ? "input" : "output",
			               i < e->m.ninputs ? i : i - e->m.ninputs);
	return rt_cuda_run(e->cuda, inputs, outputs, 1, e->err, sizeof e->err);
}

static const char *
engine_device(const segc_engine_t *e)
{
	return !e ? "" : e->cuda ? rt_cuda_device(e->cuda) : "cpu";
}

static void *
engine_stream(const segc_engine_t *e)
{
	return e && e->cuda ? rt_cuda_stream(e->cuda) : NULL;
}

static uint64_t
engine_device_bytes(const segc_engine_t *e)
{
	return e && e->cuda ? rt_cuda_bytes(e->cuda) : 0;
}

static const char *
engine_last_error(const segc_engine_t *e)
{
	return e ? e->err : "";
}

/* whole cases (window.c): the engine's error buffer around the algorithm */
static void
engine_window_defaults(segc_window_options *o)
{
	rt_window_defaults(o);
}

static int64_t
engine_window_count(const segc_engine_t *e, const segc_window_options *o, const int64_t shape[3])
{
	return rt_window_count(segc_engine_api(SEGC_ABI_VERSION), e, o, shape);
}

static segc_status
engine_window_run(segc_engine_t *e, const segc_window_options *o, const float *image,
                  const int64_t shape[3], float *out)
{
	if (!e)
		return SEGC_ERR_INVALID_ARGUMENT;
	e->err[0] = 0;
	return rt_window_run(segc_engine_api(SEGC_ABI_VERSION), e, o, image, shape, out, e->err,
	                     sizeof e->err);
}

static segc_status
engine_postprocess(segc_engine_t *e, const segc_post_options *p, float *scores, int64_t nvox,
                   int32_t *labels)
{
	if (!e)
		return SEGC_ERR_INVALID_ARGUMENT;
	e->err[0] = 0;
	return rt_postprocess(p, scores, nvox, labels, e->err, sizeof e->err);
}

static const segc_api api_v1 = {
    .abi_version = SEGC_ABI_VERSION,
    .size = sizeof(segc_api),
    .open = engine_open,
    .load_weights = engine_load_weights,
    .load_weights_memory = engine_load_weights_memory,
    .num_inputs = engine_num_inputs,
    .num_outputs = engine_num_outputs,
    .num_weights = engine_num_weights,
    .input_info = engine_input_info,
    .output_info = engine_output_info,
    .weight_info = engine_weight_info,
    .arena_bytes = engine_arena_bytes,
    .manifest = engine_manifest,
    .run = engine_run,
    .close = engine_close,
    .last_error = engine_last_error,
    .device = engine_device,
    .run_device = engine_run_device,
    .stream = engine_stream,
    .device_bytes = engine_device_bytes,
    .window_defaults = engine_window_defaults,
    .window_count = engine_window_count,
    .window_run = engine_window_run,
    .postprocess = engine_postprocess,
};

__attribute__((visibility("default"))) const segc_api *
segc_engine_api(uint32_t abi_version)
{
	return abi_version == 1 ? &api_v1 : NULL;
}
