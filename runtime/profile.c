/* runtime/profile.c -- SEGC_PROFILE per-kernel timing (rt_prof.h).
 *
 * Kernel k's time is the caller thread's wall clock from mark(k) to the next mark: the whole
 * parallel loop, workers included.  With more than one run the first (warm-up) run is left
 * out.  flops come from the IR cost rules; bytes count every buffer of a kernel once (a lower
 * bound of its memory traffic).  CUDA engines time their kernels with events and add them
 * (rt_prof_add, runtime/cuda.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_pool.h"
#include "rt_prof.h"
#include "rt_util.h"

/* from the generated object; weak because CUDA engines carry neither */
extern void (*segc_gen_prof_hook)(void *, int32_t) __attribute__((weak, visibility("hidden")));
extern const char segc_gen_kinfo[] __attribute__((weak, visibility("hidden")));

typedef struct {
	char name[64];
	char cls[16];
	double flops, bytes;
	double first, rest; /* seconds in the first run, in the others */
} RtProfKernel;

struct RtProf {
	RtProfKernel *k;
	int n;
	int cur;        /* the kernel running, -1 between runs */
	long runs;      /* completed runs */
	double t;       /* time of the last mark */
	char path[512]; /* "" : stderr */
};

/* a profile of the kernel table segc_gen_kinfo, or NULL (SEGC_PROFILE unset or "0", no table) */
static RtProf *
prof_new(void)
{
	const char *env = getenv("SEGC_PROFILE");
	const char *s, *nl;
	RtProf *pr;
	int n = 0;

	if (!env || !*env || !strcmp(env, "0") || !segc_gen_kinfo)
		return NULL;
	for (s = segc_gen_kinfo; *s; s++)
		n += *s == '\n';
	pr = calloc(1, sizeof *pr);
	if (!pr)
		return NULL;
	pr->k = calloc((size_t)n + 1, sizeof *pr->k);
	if (!pr->k) {
		free(pr);
		return NULL;
	}
	for (s = segc_gen_kinfo; *s && pr->n < n; s = nl + 1) {
		RtProfKernel *k = &pr->k[pr->n++];
		nl = strchr(s, '\n');
		if (sscanf(s, "%63[^\t]\t%15[^\t]\t%lf\t%lf", k->name, k->cls, &k->flops,
		           &k->bytes) != 4)
			snprintf(k->name, sizeof k->name, "?");
	}
	pr->cur = -1;
	if (strcmp(env, "1") != 0)
		snprintf(pr->path, sizeof pr->path, "%s", env);
	return pr;
}

RtProf *
rt_prof_new(void)
{
	RtProf *pr = &segc_gen_prof_hook ? prof_new() : NULL;
	if (pr)
		segc_gen_prof_hook = rt_prof_mark;
	return pr;
}

RtProf *
rt_prof_new_timed(void)
{
	return prof_new();
}

void
rt_prof_add(RtProf *pr, int k, double secs)
{
	if (!pr || k < 0 || k >= pr->n)
		return;
	if (pr->runs == 0)
		pr->k[k].first += secs;
	else
		pr->k[k].rest += secs;
}

void
rt_prof_run_end(RtProf *pr)
{
	if (pr)
		pr->runs++;
}

void
rt_prof_mark(void *pool, int32_t k)
{
	RtProf *pr = rt_pool_prof(pool);
	double t;

	if (!pr)
		return;
	t = rt_now();
	if (pr->cur >= 0 && pr->cur < pr->n) {
		if (pr->runs == 0)
			pr->k[pr->cur].first += t - pr->t;
		else
			pr->k[pr->cur].rest += t - pr->t;
	}
	if (k >= pr->n) {
		pr->runs++;
		pr->cur = -1;
	} else {
		pr->cur = k;
	}
	pr->t = rt_now();
}

static int
by_time(const void *a, const void *b)
{
	const RtProfKernel *x = *(RtProfKernel *const *)a, *y = *(RtProfKernel *const *)b;
	double tx = x->rest + x->first, ty = y->rest + y->first;
	return tx < ty ? 1 : tx > ty ? -1 : 0;
}

static void
row(FILE *f, const char *name, const char *cls, double secs, double total, double flops,
    double bytes)
{
	fprintf(f, "%-28s %-11s %10.3f %6.1f%% %9.2f %8.2f\n", name, cls, secs * 1e3,
	        total > 0 ? 100.0 * secs / total : 0.0, secs > 0 ? flops / secs * 1e-9 : 0.0,
	        secs > 0 ? bytes / secs * 1e-9 : 0.0);
}

static void
report(RtProf *pr, FILE *f, int all)
{
	static const char *const classes[] = {"conv", "scan",        "matmul",
	                                      "norm", "elementwise", "move"};
	RtProfKernel **order = calloc((size_t)pr->n + 1, sizeof *order);
	long runs = pr->runs > 1 ? pr->runs - 1 : pr->runs;
	double total = 0;
	int i, c;

	if (!order || runs == 0) {
		free(order);
		return;
	}
	for (i = 0; i < pr->n; i++) {
		RtProfKernel *k = &pr->k[i];
		k->rest = (pr->runs > 1 ? k->rest : k->first) / (double)runs; /* per run */
		k->first = 0;
		total += k->rest;
		order[i] = k;
	}
	qsort(order, (size_t)pr->n, sizeof *order, by_time);
	fprintf(f, "segc profile: %d kernels, %ld run%s%s, %.3f ms per run\n", pr->n, runs,
	        runs == 1 ? "" : "s", pr->runs > 1 ? " (after 1 warm-up)" : "", total * 1e3);
	fprintf(f, "%-28s %-11s %10s %7s %9s %8s\n", "kernel", "class", "ms/run", "share",
	        "GFLOP/s", "GB/s");
	for (i = 0; i < pr->n && (all || i < 30); i++)
		row(f, order[i]->name, order[i]->cls, order[i]->rest, total, order[i]->flops,
		    order[i]->bytes);
	if (i < pr->n)
		fprintf(f, "... %d more kernels (SEGC_PROFILE=FILE lists all)\n", pr->n - i);
	fprintf(f, "%-28s %-11s %10s %7s %9s %8s\n", "per class", "kernels", "ms/run", "share",
	        "GFLOP/s", "GB/s");
	for (c = 0; c < (int)(sizeof classes / sizeof *classes); c++) {
		double secs = 0, flops = 0, bytes = 0;
		int cnt = 0;
		char nk[16];
		for (i = 0; i < pr->n; i++)
			if (!strcmp(pr->k[i].cls, classes[c])) {
				secs += pr->k[i].rest;
				flops += pr->k[i].flops;
				bytes += pr->k[i].bytes;
				cnt++;
			}
		if (!cnt)
			continue;
		snprintf(nk, sizeof nk, "%d", cnt);
		row(f, classes[c], nk, secs, total, flops, bytes);
	}
	free(order);
}

void
rt_prof_free(RtProf *pr)
{
	FILE *f;

	if (!pr)
		return;
	if (&segc_gen_prof_hook && segc_gen_prof_hook == rt_prof_mark)
		segc_gen_prof_hook = NULL;
	f = pr->path[0] ? fopen(pr->path, "w") : stderr;
	if (!f)
		fprintf(stderr, "segc profile: cannot write %s\n", pr->path);
	else {
		report(pr, f, pr->path[0] != 0);
		if (f != stderr)
			fclose(f);
	}
	free(pr->k);
	free(pr);
}
