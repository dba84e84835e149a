/* runtime/segc_engine.h -- the engine's C ABI.  This header is all an application needs.
 *
 * An engine.so exports one symbol, segc_engine_api(), which returns a table of functions
 * for the ABI version the caller was built against (NULL if the engine cannot serve it):
 *
 *     void *so = dlopen("engine.so", RTLD_NOW | RTLD_LOCAL);
 *     segc_engine_api_fn get = (segc_engine_api_fn)dlsym(so, "segc_engine_api");
 *     const segc_api *api = get(SEGC_ABI_VERSION);
 *     segc_engine_t *e;
 *     char err[512];
 *     if (api->open(NULL, &e, err, sizeof err) != SEGC_OK) { puts(err); ... }
 *     if (api->load_weights(e, "w.safetensors") != SEGC_OK) { puts(api->last_error(e)); ... }
 *     api->run(e, inputs, outputs);          // host pointers, dense row-major, manifest dtypes
 *     api->close(e);
 *
 * No global state: any number of engines may be open, and different engines may run in
 * different threads at the same time.  One engine runs one forward pass at a time.
 * The library never prints and never aborts; every failure is a status code plus a message
 * kept on the engine (last_error).  All allocation happens in open and load_weights. */
#ifndef SEGC_ENGINE_H
#define SEGC_ENGINE_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SEGC_ABI_VERSION 1
#define SEGC_MAX_RANK 8

typedef enum {
	SEGC_OK = 0,
	SEGC_ERR_INVALID_ARGUMENT = 1,  /* a NULL pointer, an index out of range, bad options */
	SEGC_ERR_IO = 2,                /* a file could not be opened or read */
	SEGC_ERR_FORMAT = 3,            /* a weight file is malformed */
	SEGC_ERR_MISMATCH = 4,          /* weights do not match the manifest (name, shape, dtype) */
	SEGC_ERR_NO_MEMORY = 5,
	SEGC_ERR_STATE = 6,             /* e.g. run before load_weights */
	SEGC_ERR_UNSUPPORTED = 7,       /* ABI version, target or feature not available */
	SEGC_ERR_DEVICE = 8,            /* a GPU driver error */
} segc_status;

typedef enum {
	SEGC_F32 = 0, SEGC_F16 = 1, SEGC_BF16 = 2, SEGC_I32 = 3, SEGC_I64 = 4, SEGC_U8 = 5,
} segc_dtype;

typedef struct {
	const char *name;               /* owned by the engine, valid until close */
	segc_dtype dtype;
	int32_t rank;
	int64_t shape[SEGC_MAX_RANK];
} segc_tensor_info;

typedef struct {
	uint32_t size;                  /* sizeof(segc_options), for forward compatibility */
	int32_t num_threads;            /* 0: $SEGC_NUM_THREADS or all CPUs; 1: no threads */
} segc_options;

/* Whole cases (the window_* and postprocess members; docs/embedding.md, docs/cases.md). */
typedef enum { SEGC_BLEND_CONSTANT = 0, SEGC_BLEND_GAUSSIAN = 1 } segc_blend;
typedef enum { SEGC_POSITIONS_MONAI = 0, SEGC_POSITIONS_NNUNET = 1 } segc_positions;
typedef enum {
	SEGC_NORM_NONE = 0,
	SEGC_NORM_ZSCORE = 1,         /* per channel, mean and std over all voxels */
	SEGC_NORM_ZSCORE_NONZERO = 2, /* per channel over the non-zero voxels; zeros stay 0 */
} segc_norm;
/* done and total count forward passes; a non-zero return cancels window_run */
typedef int (*segc_progress_fn)(void *user, int64_t done, int64_t total);
typedef struct {
	uint32_t size;             /* sizeof(segc_window_options); window_defaults sets it */
	double overlap;            /* share of the ROI neighbouring windows overlap, [0, 1) */
	int32_t blend;             /* segc_blend */
	double sigma_scale;        /* Gaussian blending: sigma = sigma_scale * ROI, per axis */
	int32_t positions;         /* segc_positions */
	uint32_t mirror_axes;      /* bit 0 D, 1 H, 2 W: average over every subset (<= 8 flips) */
	int32_t normalize;         /* segc_norm */
	segc_progress_fn progress; /* may be NULL */
	void *user;
} segc_window_options;
typedef enum { SEGC_ACT_NONE = 0, SEGC_ACT_SOFTMAX = 1, SEGC_ACT_SIGMOID = 2 } segc_activation;
typedef struct {
	uint32_t size;             /* sizeof(segc_post_options) */
	int32_t activation;        /* segc_activation, applied over the K channels */
	int32_t nclasses;          /* K */
	const int32_t *label_map;  /* softmax: label of the argmax class k (NULL: k) */
	int32_t nregions;          /* sigmoid: regions in order; where channel >= threshold,*/
	const int32_t *region_channel; /* the label becomes region_label (later regions win) */
	const int32_t *region_label;
	const float *region_threshold;
} segc_post_options;

typedef struct segc_engine segc_engine_t;

typedef struct {
	uint32_t abi_version;           /* SEGC_ABI_VERSION of the engine */
	uint32_t size;                  /* sizeof(segc_api) of the engine */

	/* Create an engine: allocates the planned arena and starts the thread pool.  opts may
	 * be NULL.  On failure *out is NULL and err (if not NULL) holds a one-line message. */
	segc_status (*open)(const segc_options *opts, segc_engine_t **out, char *err,
	                    size_t errlen);
	/* Load every weight the manifest lists from a safetensors file, strictly checked: a
	 * missing, extra, mistyped or misshapen tensor is SEGC_ERR_MISMATCH; a malformed file
	 * SEGC_ERR_FORMAT; the message names the tensor or the byte offset. */
	segc_status (*load_weights)(segc_engine_t *e, const char *path);
	segc_status (*load_weights_memory)(segc_engine_t *e, const void *data, size_t size);

	int32_t (*num_inputs)(const segc_engine_t *e);
	int32_t (*num_outputs)(const segc_engine_t *e);
	int32_t (*num_weights)(const segc_engine_t *e);
	segc_status (*input_info)(const segc_engine_t *e, int32_t i, segc_tensor_info *out);
	segc_status (*output_info)(const segc_engine_t *e, int32_t i, segc_tensor_info *out);
	segc_status (*weight_info)(const segc_engine_t *e, int32_t i, segc_tensor_info *out);
	uint64_t (*arena_bytes)(const segc_engine_t *e);   /* planned activation memory */
	const char *(*manifest)(const segc_engine_t *e);   /* the manifest text (docs/abi.md) */

	/* One forward pass.  inputs[i] / outputs[i] point to dense row-major host buffers of
	 * the shapes and dtypes input_info / output_info give.  Allocates nothing. */
	segc_status (*run)(segc_engine_t *e, const void *const *inputs, void *const *outputs);

	void (*close)(segc_engine_t *e);                   /* e may be NULL */
	const char *(*last_error)(const segc_engine_t *e); /* "" when none; never NULL */

	/* Members are only ever appended below; `size` tells a caller which ones an engine has. */
	/* ---- devices (CUDA engines) ---- */
	/* "cpu", or the GPU a CUDA engine runs on: "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)". */
	const char *(*device)(const segc_engine_t *e);
	/* run with inputs and outputs in device memory (CUdeviceptr values cast to pointers) of
	 * the engine's GPU, 16-byte aligned (else SEGC_ERR_INVALID_ARGUMENT), in the engine's
	 * stream, which is blocking (it orders with the legacy default stream); returns when the
	 * outputs are written.  CPU engines:
	 * SEGC_ERR_UNSUPPORTED.  (run takes host pointers and copies through device buffers.) */
	segc_status (*run_device)(segc_engine_t *e, const void *const *inputs,
	                          void *const *outputs);
	void *(*stream)(const segc_engine_t *e);           /* the CUstream; NULL on the CPU */
	uint64_t (*device_bytes)(const segc_engine_t *e);  /* device memory held; 0 on the CPU */
	/* ---- whole cases: sliding-window inference, test-time mirroring ---- */
	/* Defaults: overlap 0.5, constant blending, sigma scale 0.125, MONAI positions, no
	 * mirroring, no normalisation, no progress callback. */
	void (*window_defaults)(segc_window_options *o);
	/* Forward passes window_run makes for a volume of spatial shape {D, H, W}; -1 if bad. */
	int64_t (*window_count)(const segc_engine_t *e, const segc_window_options *o,
	                        const int64_t shape[3]);
	/* Segment a whole volume: image is dense f32 [C, D, H, W] (C = channels of the engine's
	 * input [N, C, rd, rh, rw]), out dense f32 [K, D, H, W] (K = channels of output 0).
	 * Windows of the ROI {rd, rh, rw} slide over the volume (padded with zeros where it is
	 * smaller than the ROI, after normalisation), N windows per forward pass; outputs are
	 * blended and averaged over the mirrorings.  Unlike run, allocates its work buffers
	 * (D*H*W + a few ROIs of floats) and frees them before returning. */
	segc_status (*window_run)(segc_engine_t *e, const segc_window_options *o,
	                          const float *image, const int64_t shape[3], float *out);
	/* Activation over K channels of scores [K, nvox], in place, then (labels != NULL) the
	 * label of each voxel: argmax + label_map (softmax, none) or the regions (sigmoid). */
	segc_status (*postprocess)(segc_engine_t *e, const segc_post_options *p, float *scores,
	                           int64_t nvox, int32_t *labels);
} segc_api;

typedef const segc_api *(*segc_engine_api_fn)(uint32_t abi_version);
const segc_api *segc_engine_api(uint32_t abi_version);

const char *segc_status_name(segc_status s);

#ifdef __cplusplus
}
#endif
#endif
