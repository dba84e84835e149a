/* tests/unit/test_runtime.c -- the runtime alone: engine ABI, manifest, safetensors, .npy, pool.
 *
 * Links libsegc_rt and plays the generated code itself: segc_gen_manifest describes one input
 * x f32[2,3], one output y f32[2,3] and one weight b f32[3]; segc_gen_run computes
 * y = x + b (broadcast over rows) in two parallel loops through the arena.
 * Exits non-zero on the first failed check's file:line (all checks run, failures counted). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rt_gen.h"
#include "rt_manifest.h"
#include "rt_npy.h"
#include "rt_pool.h"
#include "rt_weights.h"
#include "segc_engine.h"

static int nfail, ncheck;

#define CHECK(c)                      check((c), #c, __FILE__, __LINE__)
#define CHECK_ERR(st, want, msg, sub) check_err((st), (want), (msg), (sub), __FILE__, __LINE__)

static void
check(int ok, const char *what, const char *file, int line)
{
	ncheck++;
	if (!ok) {
		nfail++;
		fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	}
}

static void
check_err(segc_status st, segc_status want, const char *msg, const char *sub, const char *file,
          int line)
{
	ncheck++;
	if (st != want || !msg || !strstr(msg, sub)) {
		nfail++;
		fprintf(stderr, "%s:%d: expected %s containing \"%s\", got %s: \"%s\"\n", file,
		        line, segc_status_name(want), sub, segc_status_name(st),
		        msg ? msg : "(null)");
	}
}

/* ---- the fake generated code ---- */

const char segc_gen_manifest[] = "segc-manifest 1\n"
                                 "graph fake\n"
                                 "segc 0.1.0\n"
                                 "target cpu\n"
                                 "arena 96\n"
                                 "param scale [0.5,0.7]\n"
                                 "input x f32 2,3\n"
                                 "output y f32 2,3\n"
                                 "weight b f32 3\n"
                                 "macs 0\n"
                                 "flops 6\n"
                                 "kernels 2\n"
                                 "end\n";

static void
k_add(void *const *slots, int64_t lo, int64_t hi)
{
	float *arena = slots[0];
	const float *x = slots[1], *b = slots[3];
	int64_t i;

	for (i = lo; i < hi; i++)
		arena[i] = x[i] + b[i % 3];
}

static void
k_copy(void *const *slots, int64_t lo, int64_t hi)
{
	const float *arena = slots[0];
	float *y = slots[2];
	int64_t i;

	for (i = lo; i < hi; i++)
		y[i] = arena[i];
}

int
segc_gen_run(void *const *slots, void *pool)
{
	segc_rt_parallel_for(pool, k_add, slots, 6);
	segc_rt_parallel_for(pool, k_copy, slots, 6);
	return 0;
}

/* ---- helpers ---- */

static char tmpdir[256];

static const char *
tmppath(const char *name)
{
	static char buf[8][512];
	static int k;

	k = (k + 1) % 8;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
	return buf[k];
}

/* an image: u64 length of hdr, hdr, ndata zero bytes */
static uint8_t *
image(const char *hdr, size_t ndata, size_t *size)
{
	size_t n = strlen(hdr), i;
	uint8_t *p = calloc(1, 8 + n + ndata + 1);

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)n >> (8 * i));
	memcpy(p + 8, hdr, n);
	*size = 8 + n + ndata;
	return p;
}

static segc_status
load_hdr(const segc_api *api, segc_engine_t *e, const char *hdr, size_t ndata)
{
	size_t size;
	uint8_t *p = image(hdr, ndata, &size);
	segc_status st = api->load_weights_memory(e, p, size);

	free(p);
	return st;
}

static segc_status
parse_hdr(const char *hdr, size_t ndata, char *err, size_t errlen)
{
	RtTensorList l;
	size_t size;
	uint8_t *p = image(hdr, ndata, &size);
	segc_status st = rt_safetensors_parse("t.safetensors", p, size, &l, err, errlen);

	rt_tensor_list_free(&l);
	free(p);
	return st;
}

static int
run_check(const segc_api *api, segc_engine_t *e, const float *b, float base)
{
	float x[6], y[6];
	const void *in[1] = {x};
	void *out[1] = {y};
	int i;

	for (i = 0; i < 6; i++)
		x[i] = base + (float)i;
	if (api->run(e, in, out) != SEGC_OK)
		return 0;
	for (i = 0; i < 6; i++)
		if (y[i] != x[i] + b[i % 3])
			return 0;
	return 1;
}

/* ---- tests ---- */

static void
test_api(void)
{
	const segc_api *api = segc_engine_api(SEGC_ABI_VERSION);
	segc_engine_t *e = NULL;
	segc_options o = {sizeof o, 3};
	segc_tensor_info ti;
	char err[512];

	CHECK(api != NULL);
	CHECK(segc_engine_api(2) == NULL);
	CHECK(segc_engine_api(0) == NULL);
	CHECK(api->abi_version == 1 && api->size == sizeof(segc_api));
	CHECK(strcmp(segc_status_name(SEGC_ERR_MISMATCH), "SEGC_ERR_MISMATCH") == 0);
	CHECK(strcmp(segc_status_name((segc_status)99), "SEGC_ERR_UNKNOWN") == 0);

	o.num_threads = -1;
	CHECK_ERR(api->open(&o, &e, err, sizeof err), SEGC_ERR_INVALID_ARGUMENT, err,
	          "num_threads -1");
	CHECK(e == NULL);
	o.num_threads = 0;
	setenv("SEGC_NUM_THREADS", "lots", 1);
	CHECK_ERR(api->open(&o, &e, err, sizeof err), SEGC_ERR_INVALID_ARGUMENT, err,
	          "SEGC_NUM_THREADS='lots'");
	setenv("SEGC_NUM_THREADS", "2", 1);
	CHECK(api->open(&o, &e, err, sizeof err) == SEGC_OK);
	api->close(e);
	unsetenv("SEGC_NUM_THREADS");
	CHECK(api->open(NULL, &e, err, sizeof err) == SEGC_OK);
	api->close(e);
	api->close(NULL);

	o.num_threads = 3;
	CHECK(api->open(&o, &e, err, sizeof err) == SEGC_OK);
	CHECK(strcmp(api->last_error(e), "") == 0);
	CHECK(api->num_inputs(e) == 1 && api->num_outputs(e) == 1 && api->num_weights(e) == 1);
	CHECK(api->input_info(e, 0, &ti) == SEGC_OK);
	CHECK(strcmp(ti.name, "x") == 0 && ti.dtype == SEGC_F32 && ti.rank == 2 &&
	      ti.shape[0] == 2 && ti.shape[1] == 3);
	CHECK(api->output_info(e, 0, &ti) == SEGC_OK && strcmp(ti.name, "y") == 0);
	CHECK(api->weight_info(e, 0, &ti) == SEGC_OK && strcmp(ti.name, "b") == 0 && ti.rank == 1 &&
	      ti.shape[0] == 3);
	CHECK(api->input_info(e, 1, &ti) == SEGC_ERR_INVALID_ARGUMENT);
	CHECK(api->weight_info(e, -1, &ti) == SEGC_ERR_INVALID_ARGUMENT);
	CHECK(api->output_info(e, 0, NULL) == SEGC_ERR_INVALID_ARGUMENT);
	CHECK(api->arena_bytes(e) == 96);
	CHECK(strcmp(api->manifest(e), segc_gen_manifest) == 0);
	{
		float x[6] = {0}, y[6];
		const void *in[1] = {x};
		void *out[1] = {y};
		CHECK_ERR(api->run(e, in, out), SEGC_ERR_STATE, api->last_error(e),
		          "no weights loaded");
	}
	CHECK_ERR(api->load_weights(e, tmppath("nonexistent.safetensors")), SEGC_ERR_IO,
	          api->last_error(e), "cannot open");
	CHECK(api->load_weights(e, NULL) == SEGC_ERR_INVALID_ARGUMENT);
	api->close(e);
}

static void
test_weights_file(void)
{
	const segc_api *api = segc_engine_api(1);
	segc_engine_t *e;
	float b[3] = {10, 20, 30}, b2[3] = {-1, -2, -3};
	const char *names[2] = {"b", "foo"};
	segc_dtype dts[2] = {SEGC_F32, SEGC_F32};
	int ranks[2] = {1, 1};
	int64_t s3[1] = {3}, s4[1] = {4};
	const int64_t *shapes[2] = {s3, s3};
	const void *datas[2] = {b, b};
	char err[512];
	const char *w = tmppath("w.safetensors");
	uint8_t *img;
	size_t size;
	FILE *f;

	CHECK(rt_safetensors_write(w, 1, names, dts, ranks, shapes, datas, err, sizeof err) ==
	      SEGC_OK);
	CHECK(api->open(NULL, &e, err, sizeof err) == SEGC_OK);
	CHECK(api->load_weights(e, w) == SEGC_OK);
	CHECK(strcmp(api->last_error(e), "") == 0);
	CHECK(run_check(api, e, b, 1.0f));
	CHECK(run_check(api, e, b, -7.5f));

	/* reload from memory with other values */
	datas[0] = b2;
	CHECK(rt_safetensors_build(1, names, dts, ranks, shapes, datas, &img, &size, err,
	                           sizeof err) == SEGC_OK);
	CHECK((size - 12) % 8 == 0);
	CHECK(api->load_weights_memory(e, img, size) == SEGC_OK);
	CHECK(run_check(api, e, b2, 3.0f));

	/* a failed load keeps the weights loaded before */
	CHECK(api->load_weights_memory(e, img, size - 4) == SEGC_ERR_FORMAT);
	CHECK(run_check(api, e, b2, 3.0f));
	free(img);

	/* mismatches through files, as a user meets them */
	CHECK(rt_safetensors_write(w, 2, names, dts, ranks, shapes, datas, err, sizeof err) ==
	      SEGC_OK);
	CHECK_ERR(api->load_weights(e, w), SEGC_ERR_MISMATCH, api->last_error(e),
	          "w.safetensors holds 'foo', which the engine does not use");
	CHECK(rt_safetensors_write(w, 1, names + 1, dts, ranks, shapes, datas, err, sizeof err) ==
	      SEGC_OK);
	CHECK_ERR(api->load_weights(e, w), SEGC_ERR_MISMATCH, api->last_error(e),
	          "weight 'b' is missing from ");
	CHECK_ERR(api->load_weights(e, w), SEGC_ERR_MISMATCH, api->last_error(e), "w.safetensors");
	shapes[0] = s4;
	{
		float b4[4] = {0};
		datas[0] = b4;
		CHECK(rt_safetensors_write(w, 1, names, dts, ranks, shapes, datas, err,
		                           sizeof err) == SEGC_OK);
	}
	CHECK_ERR(api->load_weights(e, w), SEGC_ERR_MISMATCH, api->last_error(e),
	          "weight 'b': shape [4] in the file, engine expects [3]");
	shapes[0] = s3;
	dts[0] = SEGC_F16;
	datas[0] = b;
	CHECK(rt_safetensors_write(w, 1, names, dts, ranks, shapes, datas, err, sizeof err) ==
	      SEGC_OK);
	CHECK_ERR(api->load_weights(e, w), SEGC_ERR_MISMATCH, api->last_error(e),
	          "weight 'b': dtype F16 in the file, engine expects F32");
	dts[0] = SEGC_F32;
	ranks[0] = 2;
	{
		int64_t s13[2] = {1, 3};
		shapes[0] = s13;
		CHECK(rt_safetensors_write(w, 1, names, dts, ranks, shapes, datas, err,
		                           sizeof err) == SEGC_OK);
		CHECK_ERR(api->load_weights(e, w), SEGC_ERR_MISMATCH, api->last_error(e),
		          "shape [1,3] in the file, engine expects [3]");
	}
	ranks[0] = 1;
	shapes[0] = s3;

	/* truncated file */
	CHECK(rt_safetensors_write(w, 1, names, dts, ranks, shapes, datas, err, sizeof err) ==
	      SEGC_OK);
	f = fopen(w, "rb");
	if (f) {
		fseek(f, 0, SEEK_END);
		size = (size_t)ftell(f);
		fclose(f);
		CHECK(truncate(w, (off_t)size - 4) == 0);
		CHECK_ERR(api->load_weights(e, w), SEGC_ERR_FORMAT, api->last_error(e),
		          "beyond the data section");
	}
	/* writer argument checks */
	names[1] = "b";
	CHECK_ERR(rt_safetensors_write(w, 2, names, dts, ranks, shapes, datas, err, sizeof err),
	          SEGC_ERR_INVALID_ARGUMENT, err, "duplicate tensor name 'b'");
	CHECK_ERR(rt_safetensors_write(tmppath("no/such/dir/w.safetensors"), 1, names, dts, ranks,
	                               shapes, datas, err, sizeof err),
	          SEGC_ERR_IO, err, "cannot create");
	api->close(e);
}

/* the strict header rules, one malformed image each */
static void
test_weights_format(void)
{
	const segc_api *api = segc_engine_api(1);
	segc_engine_t *e;
	char err[512];
	segc_status st;
	size_t size;
	uint8_t *p;
	const char *ok = "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";

	CHECK(api->open(NULL, &e, err, sizeof err) == SEGC_OK);
	CHECK(load_hdr(api, e, ok, 12) == SEGC_OK);
	CHECK(load_hdr(api, e,
	               "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"shape\":[3],"
	               "\"dtype\":\"F32\",\"data_offsets\":[0,12]}}   \n",
	               12) == SEGC_OK);
	CHECK(load_hdr(api, e,
	               "{\"\\u0062\":{\"dtype\":\"F32\",\"shape\":[3],"
	               "\"data_offsets\":[0,12]}}",
	               12) == SEGC_OK);

	/* lengths */
	p = image(ok, 12, &size);
	CHECK_ERR(api->load_weights_memory(e, p, 7), SEGC_ERR_FORMAT, api->last_error(e),
	          "<memory>: file is 7 bytes");
	p[4] = 1; /* 2^32 + len */
	CHECK_ERR(api->load_weights_memory(e, p, size), SEGC_ERR_FORMAT, api->last_error(e),
	          "exceeds the limit");
	memset(p, 0, 8);
	p[0] = 0x40;
	p[1] = 0x1; /* 320 > size */
	CHECK_ERR(api->load_weights_memory(e, p, size), SEGC_ERR_FORMAT, api->last_error(e),
	          "header length 320 at byte 0 exceeds the file size 75");
	memset(p, 0, 8);
	CHECK_ERR(api->load_weights_memory(e, p, size), SEGC_ERR_FORMAT, api->last_error(e),
	          "header length 0 at byte 0 is too small");
	free(p);
	CHECK_ERR(api->load_weights_memory(e, NULL, 0), SEGC_ERR_FORMAT, api->last_error(e),
	          "file is 0 bytes");

	/* JSON syntax */
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[0,12]}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e),
	          "bad header at byte 62: expected '}', found the end");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[0,12]}}x",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e),
	          "bad header at byte 63: trailing characters");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3.0],\"data_offsets\":"
	                   "[0,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "found a fraction");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[03],\"data_offsets\":"
	                   "[0,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "leading zero");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":"
	                   "[12,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "bad header at byte 63: duplicate key 'b'");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[3],"
	                   "\"data_offsets\":[0,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "duplicate key 'dtype'");
	CHECK_ERR(load_hdr(api, e, "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0),
	          SEGC_ERR_FORMAT, api->last_error(e), "duplicate key 'a' in __metadata__");
	CHECK_ERR(load_hdr(api, e, "{\"__metadata__\":{\"a\":1}}", 0), SEGC_ERR_FORMAT,
	          api->last_error(e), "is not a string");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F33\",\"shape\":[3],\"data_offsets\":"
	                   "[0,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e),
	          "bad header at byte 22: tensor 'b': unknown dtype 'F33'");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[0,12],\"x\":{}}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "tensor 'b': unknown key 'x'");
	CHECK_ERR(load_hdr(api, e, "{\"b\":{\"dtype\":\"F32\",\"shape\":[3]}}", 0), SEGC_ERR_FORMAT,
	          api->last_error(e), "tensor 'b': missing data_offsets");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,3],"
	                   "\"data_offsets\":[0,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "shape has too many elements");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[-3],\"data_offsets\":"
	                   "[0,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "negative dimension");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[12,0]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "begin > end");
	CHECK_ERR(load_hdr(api, e, "{\"b\":true}", 0), SEGC_ERR_FORMAT, api->last_error(e),
	          "tensor 'b': expected an object");
	CHECK_ERR(load_hdr(api, e, "{\"b\\q\":{}}", 0), SEGC_ERR_FORMAT, api->last_error(e),
	          "bad escape");
	CHECK_ERR(load_hdr(api, e, "{\"\\ud800\":{}}", 0), SEGC_ERR_FORMAT, api->last_error(e),
	          "lone high surrogate");
	CHECK_ERR(load_hdr(api, e, "{\"b\xff\":{}}", 0), SEGC_ERR_FORMAT, api->last_error(e),
	          "bad header at byte 11: invalid UTF-8");
	CHECK_ERR(load_hdr(api, e, "[]", 0), SEGC_ERR_FORMAT, api->last_error(e),
	          "bad header at byte 8: expected '{'");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[99999999999,"
	                   "99999999999,99999999999],\"data_offsets\":[0,12]}}",
	                   12),
	          SEGC_ERR_FORMAT, api->last_error(e), "shape too large");

	/* the data section */
	CHECK_ERR(load_hdr(api, e, ok, 8), SEGC_ERR_FORMAT, api->last_error(e),
	          "data_offsets end 12 is beyond the data section (8 bytes");
	CHECK_ERR(load_hdr(api, e, ok, 16), SEGC_ERR_FORMAT, api->last_error(e),
	          "4 bytes at byte 75 after the last tensor 'b' belong to no tensor");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[0,16]}}",
	                   16),
	          SEGC_ERR_FORMAT, api->last_error(e),
	          "[0,16] hold 16 bytes, its dtype and shape need 12");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[4,16]}}",
	                   16),
	          SEGC_ERR_FORMAT, api->last_error(e),
	          "the first tensor 'b' begins at data offset 4, not 0");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[0,12]},\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[8,20]}}",
	                   20),
	          SEGC_ERR_FORMAT, api->last_error(e),
	          "tensor 'a' data_offsets [8,20] overlap tensor 'b' [0,12]");
	CHECK_ERR(load_hdr(api, e,
	                   "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[0,12]},\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	                   "[16,28]}}",
	                   28),
	          SEGC_ERR_FORMAT, api->last_error(e), "gap of 4 bytes");
	CHECK_ERR(load_hdr(api, e, "{}", 4), SEGC_ERR_FORMAT, api->last_error(e), "but no tensor");
	/* well-formed but other tensors: a mismatch, not a format error */
	CHECK_ERR(load_hdr(api, e, "{}", 0), SEGC_ERR_MISMATCH, api->last_error(e),
	          "weight 'b' is missing from <memory>");
	st = load_hdr(api, e,
	              "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":"
	              "[0,12]},\"a\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":"
	              "[12,12]}}",
	              12);
	CHECK_ERR(st, SEGC_ERR_MISMATCH, api->last_error(e),
	          "<memory> holds 'a', which the engine does not use");
	CHECK(parse_hdr("{\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, err,
	                sizeof err) == SEGC_OK);
	CHECK_ERR(parse_hdr("{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}"
	                    "}",
	                    12, err, sizeof err),
	          SEGC_OK, "", "");
	api->close(e);
}

static void
test_manifest(void)
{
	static const struct {
		const char *text, *sub;
	} bad[] = {
	    {"segc-manifest 2\nend\n", "line 1: unsupported manifest version '2'"},
	    {"hello\n", "line 1: expected 'segc-manifest 1'"},
	    {"segc-manifest 1\ngraph g\nsegc 1\ntarget cuda\n", "line 4: unknown target 'cuda'"},
	    {"segc-manifest 1\ngraph g\nfoo bar\n", "line 3: unknown record 'foo'"},
	    {"segc-manifest 1\ngraph g\ngraph h\n", "line 3: duplicate record 'graph'"},
	    {"segc-manifest 1\ngraph  g\n", "line 2: empty field"},
	    {"segc-manifest 1\ninput x f32 2,,3\n", "line 2: bad dims '2,,3'"},
	    {"segc-manifest 1\ninput x f32 1,2,3,4,5,6,7,8,9\n", "line 2: bad dims"},
	    {"segc-manifest 1\ninput x q8 2\n", "line 2: unknown dtype 'q8'"},
	    {"segc-manifest 1\nweight w f32 2\nweight w f32 2\n", "line 3: duplicate weight 'w'"},
	    {"segc-manifest 1\narena -5\n", "line 2: bad arena size '-5'"},
	    {"segc-manifest 1\npacked 12x\n", "line 2: expected 'packed <bytes>'"},
	    {"segc-manifest 1\npacked 64\npacked 64\n", "line 3: duplicate record 'packed'"},
	    {"segc-manifest 1\ngraph g\r\n", "line 2: control character"},
	    {"segc-manifest 1\ngraph g\nsegc 1\ntarget cpu\narena 0\nmacs 0\nflops 0\n"
	     "kernels 0\n",
	     "line 8: missing 'end'"},
	    {"segc-manifest 1\ngraph g\nsegc 1\ntarget cpu\nmacs 0\nflops 0\nkernels 0\nend\n",
	     "line 8: missing record 'arena'"},
	    {"segc-manifest 1\ngraph g\nsegc 1\ntarget cpu\narena 0\nmacs 0\nflops 0\n"
	     "kernels 0\nend\ngraph x\n",
	     "line 10: text after 'end'"},
	    {"", "line 1"},
	};
	RtManifest m;
	char err[512];
	size_t i;

	CHECK(rt_manifest_parse(segc_gen_manifest, &m, err, sizeof err) == SEGC_OK);
	CHECK(strcmp(m.graph, "fake") == 0 && m.arena == 96 && m.nparams == 1 &&
	      strcmp(m.params[0].value, "[0.5,0.7]") == 0 && m.nkernels == 2 && m.flops == 6);
	rt_manifest_free(&m);
	CHECK(rt_manifest_parse("segc-manifest 1\ngraph g\nsegc 1\ntarget cpu\narena 0\n"
	                        "input s f32 -\nmacs 1.5e9\nflops 3e9\nkernels 0\nend",
	                        &m, err, sizeof err) == SEGC_OK);
	CHECK(m.ninputs == 1 && m.inputs[0].rank == 0 && m.macs == 1.5e9 && m.packed == 0);
	rt_manifest_free(&m);
	CHECK(rt_manifest_parse("segc-manifest 1\ngraph g\nsegc 1\ntarget cpu\narena 0\n"
	                        "packed 4096\nmacs 0\nflops 0\nkernels 0\nend",
	                        &m, err, sizeof err) == SEGC_OK);
	CHECK(m.packed == 4096);
	rt_manifest_free(&m);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_ERR(rt_manifest_parse(bad[i].text, &m, err, sizeof err), SEGC_ERR_FORMAT, err,
		          bad[i].sub);
}

static void
test_npy(void)
{
	float a[6] = {1, 2, 3, 4, 5, 6.5f};
	int64_t s23[2] = {2, 3}, s6[1] = {6}, big[1] = {1000};
	int64_t li[6] = {-1, 2, -3, 4, 1LL << 40, 6};
	uint8_t u[6] = {0, 1, 2, 3, 254, 255};
	const char *p = tmppath("a.npy");
	char err[512], hdr[256];
	RtNpy r;
	FILE *f;
	long size;
	uint8_t buf[512];
	size_t n;

	CHECK(rt_npy_write(p, RT_NPY_F32, 2, s23, a, err, sizeof err) == SEGC_OK);
	CHECK(rt_npy_read(p, &r, err, sizeof err) == SEGC_OK);
	CHECK(r.dtype == RT_NPY_F32 && r.rank == 2 && r.shape[0] == 2 && r.shape[1] == 3 &&
	      r.numel == 6 && r.nbytes == 24 && memcmp(r.data, a, 24) == 0);
	rt_npy_free(&r);
	f = fopen(p, "rb");
	n = f ? fread(buf, 1, sizeof buf, f) : 0;
	if (f)
		fclose(f);
	CHECK(n == 128 + 24 && buf[127] == '\n' && buf[8] == 118);
	CHECK(rt_npy_write(p, RT_NPY_I64, 1, s6, li, err, sizeof err) == SEGC_OK);
	CHECK(rt_npy_read(p, &r, err, sizeof err) == SEGC_OK);
	CHECK(r.dtype == RT_NPY_I64 && r.rank == 1 && r.shape[0] == 6 &&
	      memcmp(r.data, li, 48) == 0);
	rt_npy_free(&r);
	CHECK(rt_npy_write(p, RT_NPY_U8, 0, NULL, u, err, sizeof err) == SEGC_OK);
	CHECK(rt_npy_read(p, &r, err, sizeof err) == SEGC_OK);
	CHECK(r.dtype == RT_NPY_U8 && r.rank == 0 && r.numel == 1 && ((uint8_t *)r.data)[0] == 0);
	rt_npy_free(&r);

	/* truncated */
	CHECK(rt_npy_write(p, RT_NPY_F32, 1, big, NULL, err, sizeof err) ==
	      SEGC_ERR_INVALID_ARGUMENT);
	CHECK(rt_npy_write(p, RT_NPY_F32, 2, s23, a, err, sizeof err) == SEGC_OK);
	f = fopen(p, "rb");
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fclose(f);
	CHECK(truncate(p, size - 1) == 0);
	CHECK_ERR(rt_npy_read(p, &r, err, sizeof err), SEGC_ERR_FORMAT, err,
	          "a.npy: data truncated: 24 bytes expected at byte 128, the file has 23");
	CHECK(r.data == NULL);
	CHECK_ERR(rt_npy_read(tmppath("missing.npy"), &r, err, sizeof err), SEGC_ERR_IO, err,
	          "cannot open");

	/* malformed headers, from memory */
	{
		static const struct {
			int ver;
			const char *dict, *sub;
			size_t ndata;
		} cases[] = {
		    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "", 24},
		    {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", "", 24},
		    {3, "{\"shape\": (), \"fortran_order\": False, \"descr\": \"|b1\"}", "", 1},
		    {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
		     "at byte 44: fortran_order True is not supported", 24},
		    {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
		     "at byte 20: unsupported dtype '>f4'", 24},
		    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }",
		     "expected ',' or ')' in the shape", 24},
		    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }",
		     "needs a trailing comma", 24},
		    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }",
		     "expected a dimension", 24},
		    {1, "{'descr': '<f4', 'fortran_order': False}", "missing 'shape'", 0},
		    {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (), }",
		     "duplicate key 'descr'", 4},
		    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}",
		     "unknown key", 4},
		    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x",
		     "trailing characters", 24},
		    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
		     "trailing bytes at byte", 28},
		};
		size_t i, pre, hl;
		uint8_t img[512];

		for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			pre = cases[i].ver == 1 ? 10 : 12;
			hl = (size_t)snprintf(hdr, sizeof hdr, "%s", cases[i].dict);
			while ((pre + hl + 1) % 16)
				hdr[hl++] = ' ';
			hdr[hl++] = '\n';
			memset(img, 0, sizeof img);
			memcpy(img, "\x93NUMPY", 6);
			img[6] = (uint8_t)cases[i].ver;
			img[8] = (uint8_t)hl;
			memcpy(img + pre, hdr, hl);
			if (!*cases[i].sub) {
				CHECK(rt_npy_parse("m.npy", img, pre + hl + cases[i].ndata, &r, err,
				                   sizeof err) == SEGC_OK);
				CHECK(r.numel * rt_npy_dtype_size(r.dtype) ==
				      (int64_t)cases[i].ndata);
				rt_npy_free(&r);
			} else {
				CHECK_ERR(rt_npy_parse("m.npy", img, pre + hl + cases[i].ndata, &r,
				                       err, sizeof err),
				          SEGC_ERR_FORMAT, err, cases[i].sub);
			}
		}
		CHECK_ERR(rt_npy_parse("m.npy", (const uint8_t *)"PK\3\4abcdefgh", 12, &r, err,
		                       sizeof err),
		          SEGC_ERR_FORMAT, err, "not a .npy file");
		memcpy(img, "\x93NUMPY\x01\x00\xff\x00", 10);
		CHECK_ERR(rt_npy_parse("m.npy", img, 20, &r, err, sizeof err), SEGC_ERR_FORMAT, err,
		          "header length 255 at byte 8 exceeds the file size 20");
		img[6] = 4;
		CHECK_ERR(rt_npy_parse("m.npy", img, 20, &r, err, sizeof err), SEGC_ERR_FORMAT, err,
		          "unsupported .npy version 4.0");
	}
}

/* ---- two engines, two threads ---- */

typedef struct {
	float bias;
	int ok;
} Job;

static void *
engine_thread(void *arg)
{
	Job *j = arg;
	const segc_api *api = segc_engine_api(1);
	segc_options o = {sizeof o, 2};
	segc_engine_t *e;
	float b[3] = {j->bias, j->bias * 2, j->bias * 3};
	const char *names[1] = {"b"};
	segc_dtype dts[1] = {SEGC_F32};
	int ranks[1] = {1};
	int64_t s3[1] = {3};
	const int64_t *shapes[1] = {s3};
	const void *datas[1] = {b};
	char err[512];
	uint8_t *img;
	size_t size;
	int i;

	j->ok = 0;
	if (api->open(&o, &e, err, sizeof err) != SEGC_OK)
		return NULL;
	if (rt_safetensors_build(1, names, dts, ranks, shapes, datas, &img, &size, err,
	                         sizeof err) != SEGC_OK ||
	    api->load_weights_memory(e, img, size) != SEGC_OK) {
		api->close(e);
		return NULL;
	}
	free(img);
	j->ok = 1;
	for (i = 0; i < 300; i++)
		if (!run_check(api, e, b, (float)i))
			j->ok = 0;
	api->close(e);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t t[2];
	Job jobs[2] = {{1.0f, 0}, {100.0f, 0}};
	int i;

	for (i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, engine_thread, &jobs[i]) == 0);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(jobs[0].ok && jobs[1].ok);
}

/* ---- the pool ---- */

static void
k_count(void *const *slots, int64_t lo, int64_t hi)
{
	atomic_int *hits = slots[0];
	int64_t i;

	if (lo < 0 || hi < lo || hi > *(int64_t *)slots[1]) {
		atomic_fetch_add(&hits[0], 1000); /* a range outside [0, n) */
		return;
	}
	for (i = lo; i < hi; i++)
		atomic_fetch_add(&hits[i], 1);
}

/* a slow task that records which threads ran it */
static void
k_who(void *const *slots, int64_t lo, int64_t hi)
{
	pthread_t *who = slots[0];
	struct timespec ts = { 0, 1000000 };

	nanosleep(&ts, NULL);
	for (int64_t i = lo; i < hi; i++)
		who[i] = pthread_self();
}

/* the workers really take part: some chunk runs on a thread other than the caller */
static void
test_pool_workers(void)
{
	pthread_t who[64];
	void *slots[1] = { who };
	RtPool *p = rt_pool_new(4, NULL);
	int rep, i, others = 0;

	for (rep = 0; rep < 20 && !others; rep++) {
		segc_rt_parallel_for(p, k_who, slots, 64);
		for (i = 0; i < 64; i++)
			others += !pthread_equal(who[i], pthread_self());
	}
	CHECK(others > 0);
	rt_pool_free(p);
}

static void
test_pool(void)
{
	static const int threads[] = {1, 2, 3, 4, 7};
	static const int64_t ns[] = {0, 1, 2, 3, 5, 7, 8, 16, 31, 64, 100, 1000, 4097};
	atomic_int *hits = malloc(4097 * sizeof *hits);
	void *slots[2];
	int64_t n;
	size_t t, k;
	int rep, bad, i;
	RtPool *p;

	CHECK(rt_pool_new(0, NULL) == NULL);
	CHECK(rt_pool_resolve_threads(5) == 5 && rt_pool_resolve_threads(-1) == -1);
	for (t = 0; t < sizeof threads / sizeof threads[0]; t++) {
		p = rt_pool_new(threads[t], NULL);
		CHECK(p != NULL && rt_pool_threads(p) == threads[t]);
		for (k = 0; k < sizeof ns / sizeof ns[0]; k++) {
			for (rep = 0; rep < 20; rep++) {
				n = ns[k];
				for (i = 0; i < 4097; i++)
					atomic_init(&hits[i], 0);
				slots[0] = hits;
				slots[1] = &n;
				segc_rt_parallel_for(p, k_count, slots, n);
				bad = 0;
				for (i = 0; i < 4097; i++)
					bad += atomic_load(&hits[i]) != (i < n);
				if (bad)
					fprintf(stderr, "pool threads=%d n=%lld: %d bad indices\n",
					        threads[t], (long long)n, bad);
				CHECK(bad == 0);
			}
		}
		rt_pool_free(p);
	}
	/* NULL pool: serial */
	n = 10;
	for (i = 0; i < 10; i++)
		atomic_init(&hits[i], 0);
	slots[0] = hits;
	slots[1] = &n;
	segc_rt_parallel_for(NULL, k_count, slots, n);
	for (i = 0, bad = 0; i < 10; i++)
		bad += atomic_load(&hits[i]) != 1;
	CHECK(bad == 0);
	rt_pool_free(NULL);
	free(hits);
}

int
main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/segc_test_runtime.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_api();
	test_weights_file();
	test_weights_format();
	test_manifest();
	test_npy();
	test_threads();
	test_pool();
	test_pool_workers();
	{
		char cmd[512];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	printf("test_runtime: %d checks, %d failed\n", ncheck, nfail);
	return nfail != 0;
}
