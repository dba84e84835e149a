/* tools/tune.c -- segc tune: the fastest schedule knobs per kernel, measured (docs/tune.md).
 *
 *   segc tune GRAPH.json -o TUNE.json [-D k=v]... [--target T] [--precision P]
 *             [--variant SPEC]... [--repeat N] [--threads N] [--min-gain F]
 *             [--dir DIR] [--stage all|build|measure|choose] [--tol F]
 *
 * build: the graph compiled once per variant (a set of per-kernel knobs, SPEC "base" or
 * "NAME=V[,NAME=V]..."), each by a child segc with exactly the variant's knobs in its
 * environment (every other per-kernel knob removed), with --emit=keys for the kernels' keys;
 * random weights and input (segc synth).  measure: each variant's engine run --repeat times by
 * a child `segc run` with SEGC_PROFILE (per-kernel times: runtime/profile.c, on a GPU CUDA
 * events, runtime/cuda.c); outputs that differ from the base variant's by more than --tol
 * (max |a - b| / max |b|) drop the variant; per kernel key the fastest variant wins where it
 * beats the base by more than --min-gain (choose).  TUNE.json (segc-tune/1) lists every key
 * with its knobs, its time and the base's; with --stage all the tuned engine is compiled and
 * timed too.  The stages split where compiling and measuring happen on different machines (a
 * GPU lent for minutes: build here, measure there -- with bench/tune_measure.py where the
 * segc binary does not run --, choose here). */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cg.h"
#include "frontend.h"
#include "rt_manifest.h"
#include "rt_npy.h"
#include "tool.h"

#define MAXVAR  32
#define MAXDEFS 64

static const char *help_tune =
    "usage: segc tune GRAPH.json -o TUNE.json [options]\n"
    "Measure every kernel of a graph under a few schedule-knob variants and write, per kernel\n"
    "key, the fastest knobs to a segc-tune/1 file for `segc --tune` (docs/tune.md).\n"
    "  -D NAME=VALUE         graph params, as for compiling\n"
    "  --target=T --precision=P  as for compiling (default cpu, fp32)\n"
    "  --variant SPEC        a variant: base or NAME=V[,NAME=V]... (repeatable; default: the\n"
    "                        target's list, docs/tune.md)\n"
    "  --repeat N            runs per variant and round (default 5; the first is left out)\n"
    "  --rounds N            the variants in turn N times, the fastest round per kernel\n"
    "                        (default 2)\n"
    "  --threads N           CPU engines' threads (default: all)\n"
    "  --min-gain F          a variant wins a kernel if faster than base by more than F\n"
    "                        (default 0.03)\n"
    "  --tol F               outputs must agree with base's within F (default 1e-3; bf16 5e-2)\n"
    "  --dir DIR             keep the engines and profiles in DIR (needed to split stages)\n"
    "  --stage all|build|measure|choose  build: compile the variants into DIR; measure: run\n"
    "                        them (DIR/vK.prof, vK.err); choose: write TUNE.json from those;\n"
    "                        all (default): the three, then time the tuned engine\n";

static const char *const cpu_variants[] = {
    "base", "SEGC_WINOGRAD=0", "SEGC_WINOGRAD=1", "SEGC_CONV_NOCL=1", "SEGC_CONV_KHLOOP=1", NULL};
/* (in the order a GPU measures them: the newest forms first, so that a session's deadline
 * loses the older A/Bs) */
static const char *const cuda_variants[] = {
    "base",
    "SEGC_MMA_FRAG=0",
    "SEGC_MMA_MINB=4",
    "SEGC_MMA_FRAG_UNROLL=2",
    "SEGC_MMA_FRAG_UNROLL=3",
    "SEGC_MMA_FRAG48=0",
    "SEGC_MMA_FRAG=0,SEGC_MMA_XROW=0",
    "SEGC_MMA_FRAG=0,SEGC_MMA_XROW=0,SEGC_MMA_T64=1",
    "SEGC_MMA_SPLITK=1",
    "SEGC_MMA_FRAG=0,SEGC_CUDA_SMEM=100000",
    "SEGC_MMA_HALO=1",
    "SEGC_MMA_HALO=1,SEGC_HALO_RB=4",
    "SEGC_MMA_HALO=1,SEGC_HALO_RB=2",
    "SEGC_MMA_HALO=1,SEGC_HALO_RB=4,SEGC_CUDA_SMEM=100000",
    "SEGC_CUDA_VEC=2",
    "SEGC_CUDA_GRID=4224",
    "SEGC_MMA_FRAG=0,SEGC_MMA_TILE=64x64",
    "SEGC_MMA_FRAG=0,SEGC_MMA_TILE=128x64",
    "SEGC_MMA_FRAG=0,SEGC_MMA_TILE=128x128",
    NULL,
};

typedef struct {
	const char *graph, *out, *target, *precision, *dir, *stage;
	const char *defs[MAXDEFS];
	int ndefs;
	const char *variants[MAXVAR];
	int nvariants, repeat, threads, rounds;
	double min_gain, tol;
} TuneArgs;

/* one kernel of a variant's engine: name, key, measured ms per run */
typedef struct {
	char *name, *fp, *key; /* fp: the code's fingerprint (cg_kernel_fingerprint) */
	double ms;
} TKernel;

typedef struct {
	const char *spec;
	TKernel *k;
	int nk;
	double total; /* ms per run, all kernels */
	int ok;       /* measured, output within tol */
	int idx;      /* build: its index among the variants */
} Variant;

static char self[PATH_MAX];

/* a variant's knobs: "base" (none) or NAME=V[,NAME=V]..., split */
typedef struct {
	char buf[1024];
	const char *name[32], *value[32];
	int n;
} Spec;

/* 0, or -1 when spec is neither base nor NAME=V[,NAME=V]... (at most 32, 1023 characters) */
static int
spec_split(const char *spec, Spec *sp)
{
	sp->n = 0;
	if (!strcmp(spec, "base"))
		return 0;
	if (strlen(spec) >= sizeof sp->buf)
		return -1;
	snprintf(sp->buf, sizeof sp->buf, "%s", spec);
	for (char *s = strtok(sp->buf, ","); s; s = strtok(NULL, ",")) {
		char *eq = strchr(s, '=');
		if (!eq || eq == s || !eq[1] || sp->n == 32)
			return -1;
		*eq = 0;
		sp->name[sp->n] = s;
		sp->value[sp->n++] = eq + 1;
	}
	return sp->n > 0 ? 0 : -1;
}

/* ---- children ---- */

/* run segc with argv (argv[0] ignored) under variant spec's knobs (every other per-kernel
 * knob removed from the environment; extra: one more NAME=VALUE or NULL), stdout to out and
 * stderr to errp (NULL: inherited); the exit status, or -1 */
static int
child(const char *prog, char *const *argv, const char *spec, const char *extra, const char *out,
      const char *errp)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		const char *name;
		for (int i = 0; (name = cg_knob_name(i, NULL, NULL)); i++)
			unsetenv(name);
		Spec sp;
		if (spec_split(spec, &sp) == 0) /* (checked when the variant was read) */
			for (int i = 0; i < sp.n; i++)
				setenv(sp.name[i], sp.value[i], 1);
		const char *eq = extra ? strchr(extra, '=') : NULL;
		if (eq) {
			char nm[64];
			snprintf(nm, sizeof nm, "%.*s", (int)(eq - extra), extra);
			setenv(nm, eq + 1, 1);
		}
		if (out && !freopen(out, "w", stdout))
			_exit(126);
		if (errp && !freopen(errp, "w", stderr))
			_exit(126);
		execv(prog, argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* the first line of a child's stderr log, for messages */
static const char *
first_line(const char *path)
{
	static char line[512];
	FILE *f = fopen(path, "r");
	line[0] = 0;
	if (f) {
		if (!fgets(line, sizeof line, f))
			line[0] = 0;
		fclose(f);
	}
	line[strcspn(line, "\n")] = 0;
	return line;
}

/* ---- arguments ---- */

static const char *
val(int argc, char **argv, int *i, const char *flag)
{
	return tool_optval("segc tune", argc, argv, i, flag);
}

static double
num(const char *flag, const char *v, double lo, double hi)
{
	return tool_num("segc tune", flag, v, lo, hi);
}

/* a variant: "base" or NAME=V[,NAME=V]... of per-kernel knobs for target */
static void
check_variant(const char *spec, const char *target)
{
	Spec sp;
	if (spec_split(spec, &sp) < 0)
		tool_usage("segc tune",
		           "--variant expects base or NAME=V[,NAME=V]... (at most 32 knobs, 1023 "
		           "characters), got '%.60s'",
		           spec);
	for (int i = 0; i < sp.n; i++) {
		if (cg_knob_check(sp.name[i], NULL, target))
			tool_usage("segc tune",
			           "--variant: %s is not a per-kernel knob for %s (docs/tune.md "
			           "lists them)",
			           sp.name[i], target);
		const char *want = cg_knob_check(sp.name[i], sp.value[i], target);
		if (want)
			tool_usage("segc tune", "--variant: %s=%s, expected %s", sp.name[i],
			           sp.value[i], want);
	}
}

static void
parse(int argc, char **argv, TuneArgs *a)
{
	memset(a, 0, sizeof *a);
	a->target = "cpu";
	a->stage = "all";
	a->repeat = 5;
	a->rounds = 2;
	a->min_gain = 0.03;
	a->tol = -1;
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i], *v;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(help_tune, stdout);
			exit(0);
		} else if (!strncmp(s, "-D", 2)) {
			v = s[2] ? s + 2 : (i + 1 < argc ? argv[++i] : "");
			if (!strchr(v, '=') || v[0] == '=')
				tool_usage("segc tune", "-D expects NAME=VALUE, got '%s'", v);
			if (a->ndefs >= MAXDEFS)
				tool_usage("segc tune", "too many -D options (at most %d)",
				           MAXDEFS);
			a->defs[a->ndefs++] = v;
		} else if ((v = val(argc, argv, &i, "-o"))) {
			a->out = v;
		} else if ((v = val(argc, argv, &i, "--target"))) {
			if (strcmp(v, "cpu") && strcmp(v, "cuda:sm_90") && strcmp(v, "cuda:sm_80"))
				tool_usage(
				    "segc tune",
				    "--target expects cpu, cuda:sm_90 or cuda:sm_80, got '%s'", v);
			a->target = v;
		} else if ((v = val(argc, argv, &i, "--precision"))) {
			if (strcmp(v, "fp32") && strcmp(v, "tf32") && strcmp(v, "bf16"))
				tool_usage("segc tune",
				           "--precision expects fp32, tf32 or bf16, got '%s'", v);
			a->precision = v;
		} else if ((v = val(argc, argv, &i, "--variant"))) {
			if (a->nvariants >= MAXVAR)
				tool_usage("segc tune", "too many --variant options (at most %d)",
				           MAXVAR);
			a->variants[a->nvariants++] = v;
		} else if ((v = val(argc, argv, &i, "--repeat"))) {
			a->repeat = (int)num("--repeat", v, 2, 1000);
		} else if ((v = val(argc, argv, &i, "--rounds"))) {
			a->rounds = (int)num("--rounds", v, 1, 64);
		} else if ((v = val(argc, argv, &i, "--threads"))) {
			a->threads = (int)num("--threads", v, 1, 1024);
		} else if ((v = val(argc, argv, &i, "--min-gain"))) {
			a->min_gain = num("--min-gain", v, 0, 0.9);
		} else if ((v = val(argc, argv, &i, "--tol"))) {
			a->tol = num("--tol", v, 0, 1);
		} else if ((v = val(argc, argv, &i, "--dir"))) {
			a->dir = v;
		} else if ((v = val(argc, argv, &i, "--stage"))) {
			if (strcmp(v, "all") && strcmp(v, "build") && strcmp(v, "measure") &&
			    strcmp(v, "choose"))
				tool_usage(
				    "segc tune",
				    "--stage expects all, build, measure or choose, got '%s'", v);
			a->stage = v;
		} else if (s[0] == '-' && s[1]) {
			tool_usage("segc tune", "unknown option '%s'", s);
		} else if (!a->graph) {
			a->graph = s;
		} else {
			tool_usage("segc tune", "unexpected argument '%s'", s);
		}
	}
	int all = !strcmp(a->stage, "all");
	if ((all || !strcmp(a->stage, "build")) && !a->graph)
		tool_usage("segc tune", "no graph file given");
	if ((all || !strcmp(a->stage, "choose")) && !a->out)
		tool_usage("segc tune", "no output: give -o TUNE.json");
	if (strcmp(a->stage, "all") && !a->dir)
		tool_usage("segc tune", "--stage %s needs --dir DIR", a->stage);
	if (a->precision && !strcmp(a->target, "cpu") && strcmp(a->precision, "fp32"))
		tool_usage("segc tune", "--precision %s needs a cuda target", a->precision);
	if (!a->nvariants)
		for (const char *const *v = strcmp(a->target, "cpu") ? cuda_variants : cpu_variants;
		     *v; v++)
			a->variants[a->nvariants++] = *v;
	if (strcmp(a->variants[0], "base"))
		tool_usage("segc tune", "the first --variant must be base (what the others beat)");
	for (int i = 0; i < a->nvariants; i++)
		check_variant(a->variants[i], a->target);
}

/* ---- build ---- */

/* DIR/NAME with NAME = fmt % i; the strings live until cmd_tune returns (paths_free) */
static char *paths[4096];
static int npaths;

static const char *
path_in(const char *dir, const char *fmt, int i)
{
	char name[64], *p = malloc(PATH_MAX);
	if (!p || npaths >= (int)(sizeof paths / sizeof *paths))
		tool_die("tune: out of memory");
	snprintf(name, sizeof name, fmt, i);
	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return paths[npaths++] = p;
}

static void
paths_free(void)
{
	while (npaths > 0)
		free(paths[--npaths]);
}

/* the compile command for graph into engine (NULL: keys only), with --tune where tune */
static int
compile(const TuneArgs *a, const char *engine, const char *spec, const char *tune, const char *keys,
        const char *log)
{
	char *argv[2 * MAXDEFS + 20];
	int n = 0;
	argv[n++] = "segc";
	argv[n++] = (char *)a->graph;
	for (int i = 0; i < a->ndefs; i++) {
		argv[n++] = "-D";
		argv[n++] = (char *)a->defs[i];
	}
	argv[n++] = "--target";
	argv[n++] = (char *)a->target;
	if (a->precision) {
		argv[n++] = "--precision";
		argv[n++] = (char *)a->precision;
	}
	argv[n++] = "--emit=keys";
	argv[n++] = "-o";
	argv[n++] = (char *)engine;
	if (tune) {
		argv[n++] = "--tune";
		argv[n++] = (char *)tune;
	}
	argv[n] = NULL;
	/* $SEGC_TUNE_COMPILE: a program that stands in for segc's compiles (the tests' CUDA
	 * emulation wrapper, tests/cuda/segc_cuda.py) */
	const char *cc = getenv("SEGC_TUNE_COMPILE");
	return child(cc && *cc ? cc : self, argv, spec, NULL, keys, log);
}

static int synth(const char *dir);
static int same_code(const Variant *kept, int nkept, const Variant *y);
static void read_keys(Variant *v, const char *path);
static void free_keys(Variant *v);

static void
build(const TuneArgs *a, const char *dir)
{
	FILE *f = fopen(path_in(dir, "plan", 0), "w");
	if (!f)
		tool_die("tune: cannot write %s: %s", path_in(dir, "plan", 0), strerror(errno));
	fprintf(f, "segc-tune-plan 1\ntarget %s\nprecision %s\n", a->target,
	        a->precision ? a->precision : "fp32");
	fprintf(f, "graph %s\n", a->graph);
	for (int i = 0; i < a->ndefs; i++)
		fprintf(f, "define %s\n", a->defs[i]);
	for (int v = 0; v < a->nvariants; v++)
		fprintf(f, "variant %s\n", a->variants[v]);
	fclose(f);
	Variant kept[MAXVAR] = {{0}}; /* the keys of the variants built and kept, base first */
	int nkept = 0, same;
	for (int v = 0; v < a->nvariants; v++) {
		double t0 = tool_now();
		const char *log = path_in(dir, "v%d.log", v);
		int rc = compile(a, path_in(dir, "v%d.so", v), a->variants[v], NULL,
		                 path_in(dir, "v%d.keys", v), log);
		if (rc != 0 && v == 0)
			tool_die("tune: compiling the graph failed: %s", first_line(log));
		if (rc != 0) { /* (measure and choose leave it out) */
			unlink(path_in(dir, "v%d.so", v));
			fprintf(stderr, "segc tune: variant %d (%s) left out: %s\n", v,
			        a->variants[v], first_line(log));
			continue;
		}
		/* nothing new to time: a bf16 knob at tf32, a knob that acts on no kernel of
		 * this graph next to another */
		Variant *y = &kept[nkept];
		read_keys(y, path_in(dir, "v%d.keys", v));
		if ((same = same_code(kept, nkept, y)) >= 0) {
			free_keys(y);
			unlink(path_in(dir, "v%d.so", v));
			fprintf(stderr, "segc tune: variant %d (%s) left out: its code is %s's\n",
			        v, a->variants[v], a->variants[same]);
			continue;
		}
		y->idx = v, nkept++;
		fprintf(stderr, "segc tune: built variant %d (%s) in %.1f s\n", v, a->variants[v],
		        tool_now() - t0);
	}
	for (int i = 0; i < nkept; i++)
		free_keys(&kept[i]);
	/* (a CUDA engine opens only where a driver is: then the measure stage makes them) */
	if (synth(dir) != 0)
		fprintf(stderr,
		        "segc tune: no weights and input yet (%s): the measure stage makes "
		        "them\n",
		        first_line(path_in(dir, "synth.log", 0)));
}

/* random weights and a phantom input for the engines of dir (segc synth); its exit status */
static int
synth(const char *dir)
{
	char *argv[] = {"segc",
	                "synth",
	                (char *)path_in(dir, "v%d.so", 0),
	                "--weights",
	                (char *)path_in(dir, "w.safetensors", 0),
	                "--input",
	                (char *)path_in(dir, "x.npy", 0),
	                NULL};
	return child(self, argv, "base", NULL, path_in(dir, "synth.out", 0),
	             path_in(dir, "synth.log", 0));
}

/* ---- measure ---- */

/* the plan's variants (build's), into a->variants; target and precision checked */
static void
read_plan(TuneArgs *a, const char *dir)
{
	static char specs[MAXVAR][1024], graph[1024], defs[MAXDEFS][256];
	char line[1100], t[64] = "", p[16] = "";
	FILE *f = fopen(path_in(dir, "plan", 0), "r");
	if (!f)
		tool_die("tune: %s: %s (run --stage build first)", path_in(dir, "plan", 0),
		         strerror(errno));
	a->nvariants = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "target ", 7))
			snprintf(t, sizeof t, "%.63s", line + 7);
		else if (!strncmp(line, "precision ", 10))
			snprintf(p, sizeof p, "%.15s", line + 10);
		else if (!strncmp(line, "graph ", 6) && !a->graph) {
			snprintf(graph, sizeof graph, "%.1023s", line + 6);
			a->graph = graph;
		} else if (!strncmp(line, "define ", 7) && a->ndefs < MAXDEFS &&
		           a->graph == graph) {
			snprintf(defs[a->ndefs], sizeof defs[0], "%.255s", line + 7);
			a->defs[a->ndefs] = defs[a->ndefs];
			a->ndefs++;
		} else if (!strncmp(line, "variant ", 8) && a->nvariants < MAXVAR) {
			snprintf(specs[a->nvariants], sizeof specs[0], "%.1023s", line + 8);
			check_variant(specs[a->nvariants], t);
			a->variants[a->nvariants] = specs[a->nvariants];
			a->nvariants++;
		}
	}
	fclose(f);
	if (!t[0] || !p[0] || !a->nvariants)
		tool_die("tune: %s is not a plan of segc tune --stage build",
		         path_in(dir, "plan", 0));
	a->target = strdup(t);
	a->precision = strdup(p);
}

/* "name\tfingerprint\tkey" lines (segc --emit=keys) into v */
static void
read_keys(Variant *v, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	if (!f)
		tool_die("tune: %s: %s", path, strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = 0;
		char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (!t2)
			continue;
		*t1 = *t2 = 0;
		v->k = realloc(v->k, (size_t)(v->nk + 1) * sizeof *v->k);
		if (!v->k)
			tool_die("out of memory");
		v->k[v->nk].name = strdup(line);
		v->k[v->nk].fp = strdup(t1 + 1);
		v->k[v->nk].key = strdup(t2 + 1);
		v->k[v->nk].ms = 0;
		v->nk++;
	}
	free(line);
	fclose(f);
}

/* the first of the kept variants whose kernels have y's names and code fingerprints, in
 * order: its index among the variants, or -1 */
static int
same_code(const Variant *kept, int nkept, const Variant *y)
{
	for (int u = 0; u < nkept; u++) {
		int same = kept[u].nk == y->nk;
		for (int i = 0; same && i < y->nk; i++)
			same = !strcmp(kept[u].k[i].name, y->k[i].name) &&
			       !strcmp(kept[u].k[i].fp, y->k[i].fp);
		if (same)
			return kept[u].idx;
	}
	return -1;
}

/* what read_keys allocated */
static void
free_keys(Variant *v)
{
	for (int i = 0; i < v->nk; i++)
		free(v->k[i].name), free(v->k[i].fp), free(v->k[i].key);
	free(v->k);
	v->k = NULL;
	v->nk = 0;
}

/* SEGC_PROFILE's file (runtime/profile.c): per-kernel ms per run into v; 0, or -1 */
static int
read_profile(Variant *v, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512], name[128], cls[32];
	double ms;
	int rows = 0;
	if (!f)
		return -1;
	for (int i = 0; i < v->nk; i++)
		v->k[i].ms = 0;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "per class", 9))
			break;
		if (sscanf(line, "%127s %31s %lf", name, cls, &ms) != 3)
			continue;
		for (int i = 0; i < v->nk; i++)
			if (!strcmp(v->k[i].name, name)) {
				v->k[i].ms += ms;
				rows++;
			}
	}
	fclose(f);
	v->total = 0;
	for (int i = 0; i < v->nk; i++)
		v->total += v->k[i].ms;
	return rows > 0 ? 0 : -1;
}

/* round r's profile of variant k: DIR/vK.prof, then vK.prof.1, ... */
static char *
prof_path(char *buf, size_t n, const char *dir, int k, int r)
{
	if (r)
		snprintf(buf, n, "%s/v%d.prof.%d", dir, k, r);
	else
		snprintf(buf, n, "%s/v%d.prof", dir, k);
	return buf;
}

/* variant k's profiles (measure's rounds: DIR/vK.prof, vK.prof.1, ...) into v: per kernel the
 * least of the rounds' ms per run (a round that ran while the machine was busy loses); 0, or
 * -1 without a first */
static int
read_rounds(Variant *v, const char *dir, int k)
{
	double *best = calloc((size_t)v->nk + 1, sizeof *best);
	char path[PATH_MAX + 32];
	int n = 0;
	if (!best)
		tool_die("out of memory");
	for (;; n++) {
		prof_path(path, sizeof path, dir, k, n);
		if (access(path, R_OK) != 0 || read_profile(v, path) < 0)
			break;
		for (int i = 0; i < v->nk; i++)
			best[i] = n ? fmin(best[i], v->k[i].ms) : v->k[i].ms;
	}
	v->total = 0;
	for (int i = 0; i < v->nk; i++)
		v->total += v->k[i].ms = best[i];
	free(best);
	return n > 0 ? 0 : -1;
}

/* max |a - b| / max |b| over every output (float32 .npy files) */
static double
out_err(const char *pa, const char *pb)
{
	RtNpy x, y;
	char err[512];
	memset(&x, 0, sizeof x);
	memset(&y, 0, sizeof y);
	if (rt_npy_read(pa, &x, err, sizeof err) != SEGC_OK)
		return INFINITY;
	if (rt_npy_read(pb, &y, err, sizeof err) != SEGC_OK) {
		rt_npy_free(&x);
		return INFINITY;
	}
	double num = 0, den = 0;
	int64_t n = rt_numel(x.rank, x.shape);
	if (x.dtype != y.dtype || x.rank != y.rank || n != rt_numel(y.rank, y.shape) ||
	    x.dtype != RT_NPY_F32)
		num = INFINITY, den = 1;
	else
		for (int64_t i = 0; i < n; i++) {
			double a = ((const float *)x.data)[i], b = ((const float *)y.data)[i];
			num = fmax(num, fabs(a - b));
			den = fmax(den, fabs(b));
			if (isnan(a) != isnan(b))
				num = INFINITY;
		}
	rt_npy_free(&x);
	rt_npy_free(&y);
	return den > 0 ? num / den : num;
}

/* run engine --repeat times with SEGC_PROFILE=prof, output to y; the exit status */
static int
run_profiled(const TuneArgs *a, const char *engine, const char *prof, const char *y,
             const char *log, const char *dir)
{
	char rep[16], thr[16], env[PATH_MAX + 16];
	snprintf(rep, sizeof rep, "%d", a->repeat);
	snprintf(thr, sizeof thr, "%d", a->threads);
	snprintf(env, sizeof env, "SEGC_PROFILE=%s", prof);
	char *argv[] = {"segc",
	                "run",
	                (char *)engine,
	                "--weights",
	                (char *)path_in(dir, "w.safetensors", 0),
	                "--input",
	                (char *)path_in(dir, "x.npy", 0),
	                "--output",
	                (char *)y,
	                "--repeat",
	                rep,
	                a->threads ? "--threads" : NULL,
	                thr,
	                NULL};
	return child(self, argv, "base", env, NULL, log);
}


/* the variant's knobs as a JSON object */
static void
json_knobs(FILE *f, const char *spec)
{
	Spec sp;
	fputc('{', f);
	for (int i = 0; spec_split(spec, &sp) == 0 && i < sp.n; i++) {
		fputs(i ? ", " : "", f);
		tool_json_str(f, sp.name[i]);
		fputs(": ", f);
		tool_json_str(f, sp.value[i]);
	}
	fputc('}', f);
}

/* per key (first kernel with it, in base's order): the winning variant; writes a->out */
static void
choose(const TuneArgs *a, Variant *vs, int nv)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp%d", a->out, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f)
		tool_die("tune: cannot write %s: %s", tmp, strerror(errno));
	fprintf(f,
	        "{\n  \"format\": \"segc-tune/1\",\n  \"target\": \"%s\",\n  \"precision\": "
	        "\"%s\",\n  \"note\": ",
	        a->target, a->precision ? a->precision : "fp32");
	char note[2048];
	size_t nn = (size_t)snprintf(note, sizeof note, "segc tune %s", a->graph ? a->graph : "");
	for (int i = 0; i < a->ndefs && nn < sizeof note; i++)
		nn += (size_t)snprintf(note + nn, sizeof note - nn, " -D %s", a->defs[i]);
	tool_json_str(f, note);
	fputs(",\n  \"kernels\": [", f);
	const Variant *b = &vs[0];
	double pred = 0;
	int nent = 0, nwin = 0;
	fprintf(stderr, "%-22s %10s %10s  %s\n", "kernel", "base ms", "best ms", "variant");
	for (int i = 0; i < b->nk; i++) {
		int dup = 0;
		for (int j = 0; j < i && !dup; j++)
			dup = !strcmp(b->k[j].key, b->k[i].key);
		if (dup)
			continue;
		double base = 0, t[MAXVAR] = {0};
		int same[MAXVAR] = {0}; /* the variant's code for the key is base's */
		for (int v = 0; v < nv; v++) {
			same[v] = 1;
			for (int j = 0; j < vs[v].nk; j++)
				if (!strcmp(vs[v].k[j].key, b->k[i].key)) {
					t[v] += vs[v].k[j].ms;
					same[v] &= !strcmp(vs[v].k[j].fp, b->k[i].fp);
				}
		}
		base = t[0];
		int best = 0;
		for (int v = 1; v < nv; v++)
			if (vs[v].ok && !same[v] && t[v] < t[best])
				best = v;
		if (best && !(t[best] < base * (1 - a->min_gain)))
			best = 0;
		pred += t[best];
		nwin += best != 0;
		fprintf(stderr, "%-22s %10.3f %10.3f  %s\n", b->k[i].name, base, t[best],
		        vs[best].spec);
		fputs(nent++ ? ",\n    {\"key\": " : "\n    {\"key\": ", f);
		tool_json_str(f, b->k[i].key);
		fputs(", \"kernel\": ", f);
		tool_json_str(f, b->k[i].name);
		fputs(", \"variant\": ", f);
		tool_json_str(f, vs[best].spec);
		fprintf(f, ", \"ms\": %.4f, \"base_ms\": %.4f, \"knobs\": ", t[best], base);
		json_knobs(f, vs[best].spec);
		fputc('}', f);
	}
	fputs("\n  ]\n}\n", f);
	if (fclose(f) != 0 || rename(tmp, a->out) != 0) {
		unlink(tmp);
		tool_die("tune: cannot write %s: %s", a->out, strerror(errno));
	}
	fprintf(stderr,
	        "segc tune: wrote %s: %d of %d kernel keys take another variant; kernels %.3f ms "
	        "per run with base, %.3f with the winners\n",
	        a->out, nwin, nent, b->total, pred);
}

/* each variant run, profiled: DIR/vK.prof (SEGC_PROFILE's report) and DIR/vK.err (its
 * output's max |a - b| / max |b| against base's, or "failed: ..."); what bench/tune_measure.py
 * writes on a machine without the segc binary */
static void
measure(const TuneArgs *a, const char *dir)
{
	char prof[PATH_MAX + 32];
	if ((access(path_in(dir, "w.safetensors", 0), R_OK) != 0 ||
	     access(path_in(dir, "x.npy", 0), R_OK) != 0) &&
	    synth(dir) != 0)
		tool_die("tune: segc synth failed: %s", first_line(path_in(dir, "synth.log", 0)));
	for (int v = 0; v < a->nvariants; v++)
		for (int r = 0; r < 64; r++) { /* (an earlier measure's rounds) */
			unlink(prof_path(prof, sizeof prof, dir, v, r));
		}
	/* the variants in turn, round after round: a busy spell of the machine falls on all */
	for (int r = 0; r < a->rounds; r++)
		for (int v = 0; v < a->nvariants; v++) {
			const char *log = path_in(dir, "v%d.run", v);
			const char *eng = path_in(dir, "v%d.so", v);
			const char *y = path_in(dir, r ? "y%d.r.npy" : "y%d.npy", v);
			prof_path(prof, sizeof prof, dir, v, r);
			int built = access(eng, R_OK) == 0;
			int rc = built ? run_profiled(a, eng, prof, y, log, dir) : 1;
			if (r)
				continue;
			FILE *f = fopen(path_in(dir, "v%d.err", v), "w");
			if (!f)
				tool_die("tune: cannot write %s: %s", path_in(dir, "v%d.err", v),
				         strerror(errno));
			if (!built)
				fprintf(f, "failed: not built (%s)\n", path_in(dir, "v%d.log", v));
			else if (rc != 0)
				fprintf(f, "failed: %s\n", first_line(log));
			else
				fprintf(f, "%.6e\n",
				        v ? out_err(y, path_in(dir, "y%d.npy", 0)) : 0.0);
			fclose(f);
			if (v == 0 && rc != 0)
				tool_die("tune: running the base engine failed: %s",
				         first_line(log));
		}
}

/* the variants' keys, profiles and errors (measure's files) into vs */
static void
load(const TuneArgs *a, const char *dir, Variant *vs)
{
	for (int v = 0; v < a->nvariants; v++) {
		Variant *x = &vs[v];
		char line[512] = "";
		x->spec = a->variants[v];
		read_keys(x, path_in(dir, "v%d.keys", v));
		FILE *f = fopen(path_in(dir, "v%d.err", v), "r");
		if (!f || !fgets(line, sizeof line, f))
			snprintf(line, sizeof line, "failed: no %s", path_in(dir, "v%d.err", v));
		if (f)
			fclose(f);
		line[strcspn(line, "\n")] = 0;
		char *end;
		double e = strtod(line, &end);
		const char *why = end == line ? line : "no SEGC_PROFILE report";
		if (end == line || read_rounds(x, dir, v) < 0) {
			if (v == 0)
				tool_die("tune: base variant: %s", why);
			fprintf(stderr, "segc tune: variant %s left out: %s\n", x->spec, why);
			continue;
		}
		x->ok = v == 0 || e <= a->tol;
		fprintf(stderr, "segc tune: variant %d (%s): %.3f ms per run in kernels%s", v,
		        x->spec, x->total, v ? "" : "\n");
		if (v)
			fprintf(stderr, ", output %s base's (%.1e)\n",
			        x->ok ? "agrees with" : "LEFT OUT: differs from", e);
	}
}

/* ms per run in the kernels of engine, profiled (the report's first line: "segc profile: N
 * kernels, R runs ..., T ms per run"); output to y; dies on failure */
static double
timed(const TuneArgs *a, const char *dir, const char *engine, const char *y)
{
	const char *prof = path_in(dir, "check.prof", 0), *log = path_in(dir, "check.log", 0);
	const char *at = NULL;
	double ms = -1;
	if (run_profiled(a, engine, prof, y, log, dir) == 0)
		at = strrchr(first_line(prof), ',');
	if (at)
		sscanf(at, ", %lf ms per run", &ms);
	if (!(ms >= 0))
		tool_die("tune: running %s failed: %s", engine, first_line(log));
	return ms;
}

/* the tuned engine compiled with a->out, timed against base in turns (the fastest of two runs
 * each: machine noise hits both alike), its output checked */
static void
check_tuned(const TuneArgs *a, const char *dir)
{
	const char *eng = path_in(dir, "tuned.so", 0), *log = path_in(dir, "tuned.log", 0);
	if (compile(a, eng, "base", a->out, path_in(dir, "tuned.keys", 0), log) != 0)
		tool_die("tune: compiling with %s failed: %s", a->out, first_line(log));
	double t = INFINITY, b = INFINITY;
	for (int r = 0; r < 2; r++) {
		t = fmin(t, timed(a, dir, eng, path_in(dir, "tuned.npy", 0)));
		b = fmin(b, timed(a, dir, path_in(dir, "v%d.so", 0), path_in(dir, "y%d.npy", 0)));
	}
	double e = out_err(path_in(dir, "tuned.npy", 0), path_in(dir, "y%d.npy", 0));
	fprintf(stderr,
	        "segc tune: tuned engine %.3f ms per run in kernels, base %.3f (%.2fx; the fastest "
	        "of 2 x %d runs each, in turns); output within %.1e of base's\n",
	        t, b, b > 0 ? t / b : 0.0, a->repeat, e);
	if (!(e <= a->tol))
		tool_die("tune: the tuned engine's output differs from base's by %.1e (--tol %.1e)",
		         e, a->tol);
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

int
cmd_tune(int argc, char **argv)
{
	TuneArgs a;
	char tmpdir[PATH_MAX] = "";
	parse(argc, argv, &a);
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		tool_die("tune: cannot find the segc binary (/proc/self/exe)");
	self[n] = 0;
	const char *dir = a.dir;
	if (!dir) {
		snprintf(tmpdir, sizeof tmpdir, "%s/segc-tune-XXXXXX",
		         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(tmpdir))
			tool_die("tune: cannot create a temporary folder: %s", strerror(errno));
		dir = tmpdir;
	} else if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		tool_die("tune: cannot create %s: %s", dir, strerror(errno));
	}
	int all = !strcmp(a.stage, "all");
	if (all || !strcmp(a.stage, "build"))
		build(&a, dir);
	if (!all && strcmp(a.stage, "build"))
		read_plan(&a, dir);
	if (a.tol < 0) /* (the plan's precision where the stage reads it) */
		a.tol = a.precision && !strcmp(a.precision, "bf16") ? 5e-2 : 1e-3;
	if (all || !strcmp(a.stage, "measure"))
		measure(&a, dir);
	if (!all && strcmp(a.stage, "choose"))
		return 0;
	Variant vs[MAXVAR];
	memset(vs, 0, sizeof vs);
	load(&a, dir, vs);
	choose(&a, vs, a.nvariants);
	if (!strcmp(a.stage, "all"))
		check_tuned(&a, dir);
	for (int v = 0; v < a.nvariants; v++) {
		for (int i = 0; i < vs[v].nk; i++)
			free(vs[v].k[i].name), free(vs[v].k[i].fp), free(vs[v].k[i].key);
		free(vs[v].k);
	}
	paths_free();
	if (tmpdir[0]) /* the temporary folder's files, then the folder */
		nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
