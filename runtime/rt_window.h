/* runtime/rt_window.h -- whole-case inference behind the engine ABI's window_* and postprocess
 * members (window.c): sliding windows with MONAI's (or nnU-Net's) positions and blending,
 * mirroring, per-case normalisation, activation and labels.
 *
 * Internal to libsegc_rt (hidden).  window.c reaches the engine only through the public
 * function table (api), so it knows nothing of engine.c's internals; engine.c wraps these
 * functions with the engine's error buffer.  Nothing here prints or keeps global state. */
#ifndef SEGC_RT_WINDOW_H
#define SEGC_RT_WINDOW_H
#include <stddef.h>
#include <stdint.h>

#include "segc_engine.h"

void rt_window_defaults(segc_window_options *o);

/* Window start positions along one axis of (padded) size n >= roi; writes at most n values
 * into pos and returns their count.  nnunet != 0: nnU-Net's evenly spread steps. */
int64_t rt_window_positions(int64_t n, int64_t roi, double overlap, int nnunet, int64_t *pos);

int64_t rt_window_count(const segc_api *api, const segc_engine_t *e, const segc_window_options *o,
                        const int64_t shape[3]);

/* See segc_engine.h window_run.  On an engine failure the engine's own message stays in
 * last_error; other failures are written into err. */
segc_status rt_window_run(const segc_api *api, segc_engine_t *e, const segc_window_options *o,
                          const float *image, const int64_t shape[3], float *out, char *err,
                          size_t errlen);

/* See segc_engine.h postprocess. */
segc_status rt_postprocess(const segc_post_options *p, float *scores, int64_t nvox, int32_t *labels,
                           char *err, size_t errlen);

#endif
