/* runtime/rt_gen.h -- the contract between generated code and the runtime inside engine.so.
 *
 * codegen/emit_llvm.c emits, into the engine's object file:
 *
 *   const char segc_gen_manifest[];            the manifest text, NUL-terminated (docs/abi.md)
 *   int segc_gen_run(void *const *slots, void *pool);
int segc_gen_prepack(void *const *slots, void *pool) __attribute__((weak, visibility("hidden")));
 *                                              runs every kernel in order; returns 0
 *   int segc_gen_prepack(void *const *slots, void *pool);
 *                                              runs the prepack kernels (codegen/prepack.c):
 *                                              once per load_weights, after the weights are in
 *                                              place; returns 0 (weak: CUDA objects lack it)
 *
 * slots[] holds one base pointer per slot, in manifest order: slot 0 is the activation
 * arena (manifest "arena" bytes, 64-byte aligned), then one slot per input, per output and
 * per weight, in the order the manifest lists them, then the packed slot (manifest "packed"
 * bytes, 64-byte aligned; NULL when there is none).  A tensor's address is
 * slots[slot] + offset.  For every top-level parallel loop the generated code calls
 *
 *   void segc_rt_parallel_for(void *pool, segc_rt_task fn, void *const *slots, int64_t n);
 *
 * which runs fn(slots, lo, hi) over disjoint ranges covering [0, n) on the pool's threads
 * and returns when all are done.  pool may be NULL (run serially on the caller's thread).
 * segc_gen_prepack calls segc_rt_release for each weight that only prepack kernels read,
 * after the last of them, so that a weight's packed form replaces it in memory.
 * All of these symbols are hidden inside engine.so; only segc_engine_api is exported.
 * This header is included by the runtime only: codegen refers to these names by string. */
#ifndef SEGC_RT_GEN_H
#define SEGC_RT_GEN_H
#include <stdint.h>

typedef void (*segc_rt_task)(void *const *slots, int64_t lo, int64_t hi);

extern const char segc_gen_manifest[];
int segc_gen_run(void *const *slots, void *pool);
int segc_gen_prepack(void *const *slots, void *pool) __attribute__((weak, visibility("hidden")));
void segc_rt_parallel_for(void *pool, segc_rt_task fn, void *const *slots, int64_t n);
/* segc_gen_prepack's: the weight at p (bytes long) is read by no later kernel, packed or run:
 * its whole pages go back to the system (their contents become zeros) */
void segc_rt_release(void *p, int64_t bytes);

#endif
