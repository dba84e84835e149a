/* runtime/rt_prof.h -- SEGC_PROFILE: per-kernel wall-clock times of a CPU engine.
 *
 * With SEGC_PROFILE set in the environment when an engine is opened, its pool owns an RtProf
 * and the generated segc_gen_prof_hook points at rt_prof_mark, which segc_gen_run calls
 * before every kernel and after the last (codegen/emit_llvm.c).  When the pool is freed (the
 * engine closed) the report goes to stderr (SEGC_PROFILE=1) or to the file SEGC_PROFILE
 * names: kernels by time, then totals per kernel class, with GFLOP/s and GB/s from the
 * kernel table the generated code carries (segc_gen_kinfo).  CUDA engines: rt_prof_new_timed
 * and rt_prof_add with the kernels' GPU times (runtime/cuda.c).  docs/performance.md. */
#ifndef SEGC_RT_PROF_H
#define SEGC_RT_PROF_H
#include <stdint.h>

typedef struct RtProf RtProf;

/* NULL unless SEGC_PROFILE is set (and not "0") and the engine has a kernel table */
RtProf *rt_prof_new(void);
/* the same profile for a runtime that times kernels itself (CUDA events: runtime/cuda.c):
 * NULL unless SEGC_PROFILE is set and the engine has a kernel table; no hook */
RtProf *rt_prof_new_timed(void);
/* kernel k (its index in the kernel table) took secs in the current run */
void rt_prof_add(RtProf *pr, int k, double secs);
/* the current run ended */
void rt_prof_run_end(RtProf *pr);
/* write the report and free; pr may be NULL */
void rt_prof_free(RtProf *pr);
/* the hook: kernel k of the pool's engine starts (k == nkernels: the run ended) */
void rt_prof_mark(void *pool, int32_t k);

#endif
