/* runtime/pool.c -- a persistent pthread pool: segc_rt_parallel_for (rt_gen.h).
 *
 * A call splits [0, n) into about 4 chunks per thread and publishes the job as a new
 * generation of the pool's state word.  Workers watch the generation (spinning briefly, since
 * kernels follow each other closely, then sleeping on a condition variable), join the job
 * with a CAS and claim chunks through an atomic counter; the caller claims chunks too.  Once
 * every chunk is claimed the caller closes the job (late workers no longer join) and waits
 * only for the workers that joined, never for sleeping ones: a tiny loop costs the caller
 * little more than running it alone.
 * No global state: everything lives in the RtPool (the SEGC_PROFILE profile, rt_prof.h, too). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_gen.h"
#include "rt_pool.h"
#include "rt_prof.h"

#define SPIN_ITERS 2000 /* polls before sleeping */

/* state = generation << 32 | CLOSED | joined workers */
#define ST_GEN(s)    ((uint32_t)((s) >> 32))
#define ST_CLOSED    ((uint64_t)1 << 31)
#define ST_JOINED(s) ((s) & (ST_CLOSED - 1))

struct RtPool {
	int nthreads; /* counting the caller */
	int nworkers;
	pthread_t *threads;
	pthread_mutex_t mu;
	pthread_cond_t cv_work; /* a new generation or stop */
	pthread_cond_t cv_done; /* the last joined worker left a closed job */
	int nsleeping;          /* workers waiting on cv_work (under mu) */
	int caller_sleeping;    /* the caller waits on cv_done (under mu) */
	atomic_uint_fast64_t state;
	atomic_int stop;

	/* the current job: written by the caller before it publishes a new generation, read
	 * only by workers that joined that generation (the caller waits for them to leave) */
	segc_rt_task fn;
	void *const *slots;
	int64_t n, chunk, nchunks;
	atomic_int_fast64_t next; /* next chunk to claim */
	RtProf *prof;             /* SEGC_PROFILE (profile.c), else NULL */
};

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* claim and run chunks of the current job until none is left */
static void
run_chunks(RtPool *p)
{
	int64_t c, lo, hi;

	for (;;) {
		c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
		if (c >= p->nchunks)
			return;
		lo = c * p->chunk;
		hi = lo + p->chunk < p->n ? lo + p->chunk : p->n;
		p->fn(p->slots, lo, hi);
	}
}

/* join generation g unless the caller closed it already; 1 when joined */
static int
join(RtPool *p, uint32_t g)
{
	uint64_t s = atomic_load_explicit(&p->state, memory_order_relaxed);

	while (ST_GEN(s) == g && !(s & ST_CLOSED)) {
		if (atomic_compare_exchange_weak_explicit(
		        &p->state, &s, s + 1, memory_order_acquire, memory_order_relaxed))
			return 1;
	}
	return 0;
}

static void *
worker_main(void *arg)
{
	RtPool *p = arg;
	uint32_t seen = 0, g;
	uint64_t s;
	int i;

	for (;;) {
		/* wait for a generation other than seen: spin, then sleep */
		g = ST_GEN(atomic_load_explicit(&p->state, memory_order_relaxed));
		for (i = 0; g == seen && i < SPIN_ITERS; i++) {
			if (atomic_load_explicit(&p->stop, memory_order_relaxed))
				return NULL;
			cpu_relax();
			g = ST_GEN(atomic_load_explicit(&p->state, memory_order_relaxed));
		}
		if (g == seen) {
			pthread_mutex_lock(&p->mu);
			p->nsleeping++;
			while ((g = ST_GEN(atomic_load(&p->state))) == seen &&
			       !atomic_load(&p->stop))
				pthread_cond_wait(&p->cv_work, &p->mu);
			p->nsleeping--;
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->stop))
			return NULL;
		seen = g;
		if (!join(p, g))
			continue; /* the caller finished it alone */
		run_chunks(p);
		s = atomic_fetch_sub_explicit(&p->state, 1, memory_order_release) - 1;
		if ((s & ST_CLOSED) && ST_JOINED(s) == 0) {
			pthread_mutex_lock(&p->mu);
			if (p->caller_sleeping)
				pthread_cond_signal(&p->cv_done);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

RtPool *
rt_pool_new(int nthreads, int *errnum)
{
	RtPool *p;
	int i, rc;

	if (errnum)
		*errnum = 0;
	if (nthreads < 1 || nthreads > RT_POOL_MAX_THREADS) {
		if (errnum)
			*errnum = EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (!p) {
		if (errnum)
			*errnum = ENOMEM;
		return NULL;
	}
	p->nthreads = nthreads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv_work, NULL);
	pthread_cond_init(&p->cv_done, NULL);
	atomic_init(&p->state, ST_CLOSED); /* generation 0, closed: nothing to join */
	atomic_init(&p->stop, 0);
	atomic_init(&p->next, 0);
	p->prof = rt_prof_new();
	if (nthreads == 1)
		return p;
	p->threads = calloc((size_t)nthreads - 1, sizeof *p->threads);
	if (!p->threads) {
		rt_pool_free(p);
		if (errnum)
			*errnum = ENOMEM;
		return NULL;
	}
	for (i = 0; i < nthreads - 1; i++) {
		rc = pthread_create(&p->threads[i], NULL, worker_main, p);
		if (rc != 0) {
			rt_pool_free(p);
			if (errnum)
				*errnum = rc;
			return NULL;
		}
		p->nworkers++;
	}
	return p;
}

void
rt_pool_free(RtPool *p)
{
	int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&p->cv_work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nworkers; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	rt_prof_free(p->prof);
	pthread_cond_destroy(&p->cv_done);
	pthread_cond_destroy(&p->cv_work);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

RtProf *
rt_pool_prof(void *pool)
{
	return pool ? ((RtPool *)pool)->prof : NULL;
}

int
rt_pool_threads(const RtPool *p)
{
	return p ? p->nthreads : 1;
}

int
rt_pool_resolve_threads(int num_threads)
{
	const char *s;
	char *end;
	long v;

	if (num_threads < 0 || num_threads > RT_POOL_MAX_THREADS)
		return -1;
	if (num_threads > 0)
		return num_threads;
	s = getenv("SEGC_NUM_THREADS");
	if (s && *s) {
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || *end || v < 1 || v > RT_POOL_MAX_THREADS)
			return -1;
		return (int)v;
	}
	v = sysconf(_SC_NPROCESSORS_ONLN);
	if (v < 1)
		return 1;
	return v > RT_POOL_MAX_THREADS ? RT_POOL_MAX_THREADS : (int)v;
}

void
segc_rt_parallel_for(void *pool, segc_rt_task fn, void *const *slots, int64_t n)
{
	RtPool *p = pool;
	int64_t nchunks;
	uint64_t s;
	uint32_t g;
	int i;

	if (n <= 0)
		return;
	if (!p || p->nworkers == 0 || n == 1) {
		fn(slots, 0, n);
		return;
	}
	nchunks = (int64_t)p->nthreads * 4;
	if (nchunks > n)
		nchunks = n;
	p->fn = fn;
	p->slots = slots;
	p->n = n;
	p->chunk = (n + nchunks - 1) / nchunks;
	p->nchunks = (n + p->chunk - 1) / p->chunk;
	atomic_store_explicit(&p->next, 0, memory_order_relaxed);

	/* publish: a new generation, open, nobody joined */
	pthread_mutex_lock(&p->mu);
	g = ST_GEN(atomic_load_explicit(&p->state, memory_order_relaxed)) + 1;
	atomic_store_explicit(&p->state, (uint64_t)g << 32, memory_order_release);
	if (p->nsleeping > 0)
		pthread_cond_broadcast(&p->cv_work);
	pthread_mutex_unlock(&p->mu);

	run_chunks(p);

	/* every chunk is claimed: close the job to late workers, wait for those inside */
	s = atomic_fetch_or_explicit(&p->state, ST_CLOSED, memory_order_acq_rel) | ST_CLOSED;
	for (i = 0; ST_JOINED(s) != 0 && i < SPIN_ITERS; i++) {
		cpu_relax();
		s = atomic_load_explicit(&p->state, memory_order_acquire);
	}
	if (ST_JOINED(s) == 0)
		return;
	pthread_mutex_lock(&p->mu);
	p->caller_sleeping = 1;
	while (ST_JOINED(atomic_load_explicit(&p->state, memory_order_acquire)) != 0)
		pthread_cond_wait(&p->cv_done, &p->mu);
	p->caller_sleeping = 0;
	pthread_mutex_unlock(&p->mu);
}
