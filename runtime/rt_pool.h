/* runtime/rt_pool.h -- the persistent thread pool behind segc_rt_parallel_for (rt_gen.h).
 *
 * A pool of nthreads threads counts the calling thread: rt_pool_new(4) starts 3 workers and
 * the thread that calls segc_rt_parallel_for is the fourth.  One pool serves one engine, and
 * one parallel_for at a time (an engine runs one forward pass at a time). */
#ifndef SEGC_RT_POOL_H
#define SEGC_RT_POOL_H
#include <stdint.h>

typedef struct RtPool RtPool;

#define RT_POOL_MAX_THREADS 1024

/* A pool of nthreads (1 .. RT_POOL_MAX_THREADS; 1 starts no thread).  NULL when memory or
 * threads cannot be had; *errnum (if not NULL) then holds the errno. */
RtPool *rt_pool_new(int nthreads, int *errnum);
/* Stop and join the workers, free the pool.  p may be NULL. */
void rt_pool_free(RtPool *p);
int rt_pool_threads(const RtPool *p);
/* the pool's SEGC_PROFILE state (rt_prof.h), NULL when not profiling or pool is NULL */
struct RtProf *rt_pool_prof(void *pool);

/* How many threads an engine uses for num_threads: n > 0 is n, 0 reads $SEGC_NUM_THREADS
 * (a positive integer) and falls back to the online CPUs.  -1 when the value is invalid. */
int rt_pool_resolve_threads(int num_threads);

#endif
