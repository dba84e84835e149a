/* runtime/rt_cuda.h -- the device side of a CUDA engine (runtime/cuda.c), used by engine.c.
 *
 * An engine whose manifest says "target cuda:sm_XX" carries, besides segc_gen_manifest, the
 * cubin and the launch schedule codegen/emit_cuda.c wrote (docs/cuda.md).  rt_cuda_open loads
 * the driver (dlopen libcuda.so.1), checks the GPU's architecture, loads the cubin, creates
 * the engine's stream and allocates the arena and the I/O staging buffers in device memory;
 * rt_cuda_weights copies the loaded weights to the device; rt_cuda_run fills the slots and
 * runs every kernel in order: one CUDA graph replayed per run (built by rt_cuda_weights;
 * kernel nodes updated when a slot base moves), or plain launches with $SEGC_CUDA_GRAPHS=0 or
 * a driver without graphs.  No global state; driver errors are SEGC_ERR_DEVICE with the
 * driver's own message; after a sticky one (a kernel fault) every call refuses with
 * SEGC_ERR_DEVICE, saying the engine is unusable.  Internal to libsegc_rt (hidden). */
#ifndef SEGC_RT_CUDA_H
#define SEGC_RT_CUDA_H
#include <stddef.h>
#include <stdint.h>

#include "rt_manifest.h"

typedef struct RtCuda RtCuda;

/* true if a manifest target names a CUDA architecture ("cuda:sm_90") */
int rt_cuda_is_target(const char *target);
/* The device side for manifest m (which must outlive it).  On failure *out is NULL and err
 * holds "open: ..." (SEGC_ERR_UNSUPPORTED: no driver, no GPU or another architecture;
 * SEGC_ERR_INVALID_ARGUMENT: $SEGC_CUDA_DEVICE or $SEGC_CUDA_GRAPHS malformed). */
segc_status rt_cuda_open(RtCuda **out, const RtManifest *m, char *err, size_t errlen);
/* Copy the host weight buffer buf (weight i at wslots[i], manifest order) to the device, and
 * build (or update) the launches' parameters and the CUDA graph. */
segc_status rt_cuda_weights(RtCuda *c, const void *buf, void *const *wslots, char *err,
                            size_t errlen);
/* One forward pass.  Host pointers are copied through staging buffers; with device != 0 the
 * pointers are device addresses used in place.  Returns when the outputs are written (also
 * on failure: nothing is in flight).  Allocates nothing once weights are loaded. */
segc_status rt_cuda_run(RtCuda *c, const void *const *inputs, void *const *outputs, int device,
                        char *err, size_t errlen);
const char *rt_cuda_device(const RtCuda *c); /* "cuda:0 NVIDIA H100 ... (sm_90)" */
void *rt_cuda_stream(const RtCuda *c);       /* the CUstream */
uint64_t rt_cuda_bytes(const RtCuda *c);     /* device memory held */
void rt_cuda_close(RtCuda *c);               /* c may be NULL */

#endif
