/* tools/segc.c -- the segc command: compile, info, run, interp, synth.
 *
 *   segc GRAPH.json -o ENGINE.so [-D k=v]... [--emit=ir|kernels|llvm] [--dump-after=PASS]
 *   segc info GRAPH.json [-D k=v]... [--json]
 *   segc run ENGINE.so --weights W.safetensors --input X.npy --output Y.npy [--threads N] [--repeat
 * N] segc interp GRAPH.json [-D k=v]... --weights W --input X.npy --output Y.npy segc synth
 * ENGINE.so --weights W.safetensors [--input X.npy] [--seed N]
 *
 * The only file that calls exit(): 0 success, 1 a user error (one line on stderr), 2 bad usage. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cases.h"
#include "cg.h"
#include "cost_convention.h"
#include "velox.h" /* velox_macs_thop: the VeloxSeg paper's count */
#include "frontend.h"
#include "ir.h"
#include "pass.h"
#include "rt_manifest.h"
#include "rt_npy.h"
#include "rt_util.h"
#include "rt_weights.h"
#include "segc_engine.h"
#include "tool.h"

#ifndef SEGC_VERSION
#define SEGC_VERSION "0.0.0"
#endif

#define MAXDEF 64
#define MAXIO  16

/* load prologues (docs/codegen.md), 1 on, 0 off, per target; measured slower or no faster
 * on each so far (the CPU's first-loop form ties the unfused graph; on an H100 the extra
 * work in the GPU convs' loads costs more than the normalize pass it saves) */
#define PROLOGUE_CPU       0
#define PROLOGUE_CUDA_FP32 0
#define PROLOGUE_CUDA_TC   0 /* tf32, bf16 */

typedef struct {
	const char *graph, *out, *emit, *dump_after, *weights, *engine;
	FeDefine defs[MAXDEF];
	int ndefs;
	const char *in_names[MAXIO], *in_paths[MAXIO];
	int nin;
	const char *out_names[MAXIO], *out_paths[MAXIO];
	int nout;
	int json, no_fuse, opt, verify_each, time_passes, threads, repeat, seed, quiet;
	const char *target, *input_out, *precision, *layout, *prepack, *tune;
} Args;

static const char *help_compile =
    "usage: segc GRAPH.json -o ENGINE.so [options]\n"
    "Compile a segc-graph/1 file into a self-contained engine (a shared library).\n"
    "  -o PATH               the engine to write (written to a temporary file, then renamed)\n"
    "  -D NAME=VALUE         override a graph param (repeatable): -D C=32 -D prune=0.5,0.7\n"
    "  --emit=ir|kernels|llvm  print the IR after the pipeline, the kernel IR, or the LLVM IR\n"
    "                        (with --emit and no -o nothing is written)\n"
    "  --target=cpu|cuda:sm_90|cuda:sm_80  what to compile for (default cpu; cuda: docs/cuda.md)\n"
    "  --emit=cuda           print the CUDA C source, launch schedule and manifest (cuda)\n"
    "  --emit=keys           print each kernel's name, code fingerprint and tuning key\n"
    "  --tune=FILE           per-kernel knobs from a segc-tune/1 file (segc tune writes one)\n"
    "  --precision=fp32|tf32|bf16  cuda: conv/matmul inputs rounded to tf32/bf16 on tensor cores\n"
    "  --dump-after=PASS|all print the IR after a pass to stderr (passes: see --list-passes)\n"
    "  --list-passes         print the pipeline\n"
    "  --no-fuse             one kernel per op (the reference for fusion tests)\n"
    "  --layout=auto|ncdhw|ndhwc  the network's activation layout (default auto: ncdhw;\n"
    "                        ndhwc: channels-last convs; docs/passes.md)\n"
    "  --prepack=on|lean|off re-lay weights out once at load time, not on every run\n"
    "                        (default on; lean: only where it costs no memory; docs/codegen.md)\n"
    "  -O0 .. -O3            LLVM optimisation level (default -O3)\n"
    "  --verify-each         verify the IR after every pass\n"
    "  --time-passes         print each pass's time\n"
    "other commands: segc info | run | interp | synth | tune  (segc COMMAND --help)\n";

static const char *help_info =
    "usage: segc info GRAPH.json [-D NAME=VALUE]... [--json]\n"
    "Print parameters, MACs, GFLOPs (= 2 x MACs), planned activation memory, the same per\n"
    "top-level module, the kernels and the list of weights (name, shape, dtype).\n";

static const char *help_run =
    "usage: segc run ENGINE.so --weights W.safetensors --input X.npy --output Y.npy [options]\n"
    "Run one forward pass of an engine over the whole input.\n"
    "  --input [NAME=]X.npy  an input (repeat for several, in the engine's order or by name)\n"
    "  --output [NAME=]Y.npy where to write an output (written to a temporary file, then renamed)\n"
    "  --threads N           worker threads (default: all CPUs, or $SEGC_NUM_THREADS)\n"
    "  --repeat N            run N times and report latencies (median, min)\n";

static const char *help_interp =
    "usage: segc interp GRAPH.json [-D NAME=VALUE]... --weights W.safetensors --input X.npy "
    "--output Y.npy\n"
    "Run the graph in segc's reference interpreter (slow, plain loops; for testing).\n";

static const char *help_synth =
    "usage: segc synth ENGINE.so --weights W.safetensors [--input X.npy] [--seed N]\n"
    "Write random weights for an engine (PyTorch-style uniform init, norm weights 1 and biases 0)\n"
    "and, with --input, a synthetic phantom volume of the engine's input shape (spheres of\n"
    "different intensity per channel plus noise).\n";

/* a copy of s[0..n) that lives until exit (no leak for LeakSanitizer to report) */
static const char *
keep_name(const char *s, size_t n)
{
	static char pool[MAXDEF + 2 * MAXIO][256];
	static int used;
	if (used >= (int)countof(pool) || n >= sizeof pool[0])
		tool_usage("segc", "too many or too long NAME=VALUE arguments");
	memcpy(pool[used], s, n);
	pool[used][n] = 0;
	return pool[used++];
}

static void
add_io(const char *arg, const char **names, const char **paths, int *n, const char *what)
{
	if (*n >= MAXIO)
		tool_usage("segc", "too many %s files (at most %d)", what, MAXIO);
	const char *eq = strchr(arg, '=');
	/* NAME=PATH, unless the '=' is inside a path */
	if (eq && eq != arg && !memchr(arg, '/', (size_t)(eq - arg))) {
		names[*n] = keep_name(arg, (size_t)(eq - arg));
		paths[*n] = eq + 1;
	} else {
		names[*n] = NULL;
		paths[*n] = arg;
	}
	(*n)++;
}

/* value of --flag=VALUE or --flag VALUE */
static const char *
optval(int argc, char **argv, int *i, const char *flag)
{
	return tool_optval("segc", argc, argv, i, flag);
}

static int
int_arg(const char *flag, const char *v, int lo, int hi)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || *end || end == v || x < lo || x > hi)
		tool_usage("segc", "%s expects an integer in [%d, %d], got '%s'", flag, lo, hi, v);
	return (int)x;
}

static void
parse_args(int argc, char **argv, int first, Args *a, const char *help)
{
	memset(a, 0, sizeof *a);
	a->opt = 3;
	a->repeat = 1;
	a->seed = 1;
	for (int i = first; i < argc; i++) {
		const char *s = argv[i], *v;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(help, stdout);
			exit(0);
		} else if (!strcmp(s, "--list-passes")) {
			int n;
			const Pass *p = pass_list(&n);
			for (int j = 0; j < n; j++)
				printf("%-10s %s\n", p[j].name, p[j].what);
			exit(0);
		} else if (!strcmp(s, "-D") || !strncmp(s, "-D", 2)) {
			const char *kv = s[2] ? s + 2 : (i + 1 < argc ? argv[++i] : NULL);
			const char *eq = kv ? strchr(kv, '=') : NULL;
			if (!eq || eq == kv)
				tool_usage("segc", "-D expects NAME=VALUE, got '%s'", kv ? kv : "");
			if (a->ndefs >= MAXDEF)
				tool_usage("segc", "too many -D options (at most %d)", MAXDEF);
			a->defs[a->ndefs].name = keep_name(kv, (size_t)(eq - kv));
			a->defs[a->ndefs].value = eq + 1;
			a->ndefs++;
		} else if ((v = optval(argc, argv, &i, "-o"))) {
			a->out = v;
		} else if ((v = optval(argc, argv, &i, "--emit"))) {
			if (strcmp(v, "ir") && strcmp(v, "kernels") && strcmp(v, "llvm") &&
			    strcmp(v, "cuda") && strcmp(v, "keys"))
				tool_usage("segc",
				           "--emit expects ir, kernels, llvm, cuda or keys, "
				           "got '%s'",
				           v);
			a->emit = v;
		} else if ((v = optval(argc, argv, &i, "--tune"))) {
			a->tune = v;
		} else if ((v = optval(argc, argv, &i, "--dump-after"))) {
			a->dump_after = v;
		} else if ((v = optval(argc, argv, &i, "--weights"))) {
			a->weights = v;
		} else if ((v = optval(argc, argv, &i, "--input"))) {
			add_io(v, a->in_names, a->in_paths, &a->nin, "--input");
		} else if ((v = optval(argc, argv, &i, "--output"))) {
			add_io(v, a->out_names, a->out_paths, &a->nout, "--output");
		} else if ((v = optval(argc, argv, &i, "--threads"))) {
			a->threads = int_arg("--threads", v, 0, 1024);
		} else if ((v = optval(argc, argv, &i, "--repeat"))) {
			a->repeat = int_arg("--repeat", v, 1, 100000);
		} else if ((v = optval(argc, argv, &i, "--seed"))) {
			a->seed = int_arg("--seed", v, 0, INT_MAX);
		} else if ((v = optval(argc, argv, &i, "--target"))) {
			if (strcmp(v, "cpu") && strcmp(v, "cuda:sm_90") && strcmp(v, "cuda:sm_80"))
				tool_usage("segc",
				           "--target expects cpu, cuda:sm_90 or cuda:sm_80, got "
				           "'%s'",
				           v);
			a->target = v;
		} else if ((v = optval(argc, argv, &i, "--layout"))) {
			if (strcmp(v, "auto") && strcmp(v, "ncdhw") && strcmp(v, "ndhwc"))
				tool_usage("segc",
				           "--layout expects auto, ncdhw or ndhwc, got '%s'", v);
			a->layout = v;
		} else if ((v = optval(argc, argv, &i, "--prepack"))) {
			if (strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "lean"))
				tool_usage("segc", "--prepack expects on, lean or off, got '%s'",
				           v);
			a->prepack = v;
		} else if ((v = optval(argc, argv, &i, "--precision"))) {
			if (strcmp(v, "fp32") && strcmp(v, "tf32") && strcmp(v, "bf16"))
				tool_usage("segc",
				           "--precision expects fp32, tf32 or bf16, got '%s'", v);
			a->precision = v;
		} else if (!strcmp(s, "--json")) {
			a->json = 1;
		} else if (!strcmp(s, "--no-fuse")) {
			a->no_fuse = 1;
		} else if (!strcmp(s, "--verify-each")) {
			a->verify_each = 1;
		} else if (!strcmp(s, "--time-passes")) {
			a->time_passes = 1;
		} else if (!strcmp(s, "--quiet") || !strcmp(s, "-q")) {
			a->quiet = 1;
		} else if (s[0] == '-' && s[1] == 'O' && s[2] >= '0' && s[2] <= '3' && !s[3]) {
			a->opt = s[2] - '0';
		} else if (s[0] == '-' && s[1]) {
			tool_usage("segc", "unknown option '%s'", s);
		} else if (!a->graph) {
			a->graph = s;
		} else {
			tool_usage("segc", "unexpected argument '%s'", s);
		}
	}
}

/* ---- compile and info ---- */

static Module *
load_graph(const Args *a, Diag *d)
{
	FeOptions fo = {a->defs, a->ndefs, NULL};
	Module *m = fe_load(a->graph, &fo, d);
	if (!m)
		exit(1);
	return m;
}

static void
run_pipeline(Module *m, const Args *a, Diag *d)
{
	PassOptions po = {0};
	po.dump_after = a->dump_after;
	po.verify_each = a->verify_each;
	po.time_passes = a->time_passes;
	po.no_fuse = a->no_fuse;
	/* load prologues: as PROLOGUE_* above say; SEGC_PROLOGUE=0/1 overrides (A/B) */
	if (!a->target || strncmp(a->target, "cuda", 4))
		po.prologue = PROLOGUE_CPU;
	else if (!a->precision || !strcmp(a->precision, "fp32"))
		po.prologue = PROLOGUE_CUDA_FP32;
	else
		po.prologue = PROLOGUE_CUDA_TC;
	if (getenv("SEGC_PROLOGUE"))
		po.prologue = strcmp(getenv("SEGC_PROLOGUE"), "0") != 0;
	po.opt_level = a->opt;
	po.gpu = a->target && !strncmp(a->target, "cuda", 4);
	/* conv statistics (fuse.c) on the GPU; SEGC_NORM_STATS=0 turns them off (A/B) */
	const char *nse = getenv("SEGC_NORM_STATS");
	po.stats = po.gpu && (!nse || strcmp(nse, "0"));
	/* bf16 activations (memplan.c) with cuda bf16; SEGC_ACT_BF16=0 keeps them f32 (A/B) */
	const char *abe = getenv("SEGC_ACT_BF16");
	po.act_bf16 = po.gpu && a->precision && !strcmp(a->precision, "bf16") &&
	              (!abe || strcmp(abe, "0"));
	/* --layout; SEGC_LAYOUT=auto|ncdhw|ndhwc when the flag is absent (tests run whole model
	 * suites channels-last with it) */
	const char *lay = a->layout ? a->layout : getenv("SEGC_LAYOUT");
	if (lay && strcmp(lay, "auto") && strcmp(lay, "ncdhw") && strcmp(lay, "ndhwc"))
		tool_usage("segc", "SEGC_LAYOUT expects auto, ncdhw or ndhwc, got '%s'", lay);
	po.layout = !lay || !strcmp(lay, "auto") ? LAYOUT_AUTO
	            : !strcmp(lay, "ncdhw")      ? LAYOUT_NCDHW
	                                         : LAYOUT_NDHWC;
	if (pass_run_pipeline(m, &po, d) < 0) {
		ir_module_free(m);
		exit(1);
	}
}

/* --emit=keys: "name\tfingerprint\tkey" per kernel of the run; the fingerprint covers the
 * kernel IR and the emitters' knobs, and, once a CUDA emitter ran, the code it wrote */
static void
print_keys(const Program *p)
{
	for (uint32_t i = 0; i + p->npack < p->nkernels; i++)
		printf("%s\t%s\t%s\n", p->kernels[i].name, cg_kernel_fingerprint(p, &p->kernels[i]),
		       p->kernels[i].key);
}

/* the tuning table at path (fe_tune_load), for this target and precision; 0, or -1 after a
 * diagnostic */
static int
load_tune(const char *path, const char *target, const char *precision, Arena *a, TuneTable *t,
          Diag *d)
{
	if (fe_tune_load(path, a, cg_knob_check, t, d) < 0)
		return -1;
	const char *prec = precision ? precision : "fp32";
	if (strcmp(t->target, target)) {
		Loc l = {path, "/target", NULL};
		return diag_error(d, l, "a table for %s, expected one for --target %s", t->target,
		                  target);
	}
	if (strcmp(t->precision, prec)) {
		Loc l = {path, "/precision", NULL};
		return diag_error(d, l, "a table for %s, expected one for --precision %s",
		                  t->precision, prec);
	}
	return 0;
}

static int
cmd_compile(int argc, char **argv)
{
	Args a;
	Diag d;
	parse_args(argc, argv, 1, &a, help_compile);
	if (!a.graph)
		tool_usage("segc", "no graph file given");
	if (!a.out && !a.emit)
		tool_usage("segc", "no output: give -o ENGINE.so or --emit=...");
	diag_init(&d, stderr);
	double t0 = tool_now();
	Module *m = load_graph(&a, &d);
	run_pipeline(m, &a, &d);
	if (a.emit && !strcmp(a.emit, "ir"))
		ir_print(m, stdout);
	if (!a.out && a.emit && !strcmp(a.emit, "ir")) {
		ir_module_free(m);
		return 0;
	}
	Program p = {0};
	p.arena = arena_new();
	CgOptions co = {0};
	co.target = a.target ? a.target : "cpu";
	co.precision = a.precision;
	co.opt_level = a.opt;
	if (a.emit && !strcmp(a.emit, "cuda"))
		co.emit_cuda = stdout;
	if (a.emit && !strcmp(a.emit, "kernels"))
		co.emit_kernels = stdout;
	if (a.emit && !strcmp(a.emit, "llvm"))
		co.emit_llvm = stdout;
	cg_target(&p, co.target, co.precision); /* both validated with the flags */
	/* --prepack; SEGC_PREPACK=on|lean|off when the flag is absent (A/B runs of suites) */
	const char *pk = a.prepack ? a.prepack : getenv("SEGC_PREPACK");
	if (pk && strcmp(pk, "on") && strcmp(pk, "off") && strcmp(pk, "lean"))
		tool_usage("segc", "SEGC_PREPACK expects on, lean or off, got '%s'", pk);
	p.prepack = !pk || !strcmp(pk, "on") ? PREPACK_ON
	            : !strcmp(pk, "lean")    ? PREPACK_LEAN
	                                     : PREPACK_OFF;
	TuneTable tune;
	if (a.tune) {
		if (load_tune(a.tune, co.target, co.precision, p.arena, &tune, &d) < 0) {
			arena_free(p.arena);
			ir_module_free(m);
			return 1;
		}
		p.tune = &tune;
	}
	int rc = cg_lower(m, &p, &d);
	int keys = a.emit && !strcmp(a.emit, "keys");
	if (rc == 0 && keys && !a.out) {
		print_keys(&p);
		arena_free(p.arena);
		ir_module_free(m);
		return 0;
	}
	if (rc == 0 && keys) /* (CUDA: the emitted code's hashes join the fingerprints) */
		p.code_fp = arena_zalloc(p.arena, (p.nkernels + 1) * sizeof *p.code_fp);
	char obj[PATH_MAX] = "";
	if (rc == 0) {
		snprintf(obj, sizeof obj, "%s/segc-%d-XXXXXX",
		         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
		int fd = mkstemp(obj);
		if (fd < 0)
			rc = diag_error(&d, loc_none, "cannot create a temporary file in %s: %s",
			                obj, strerror(errno));
		else
			close(fd);
	}
	if (rc == 0)
		rc = strncmp(co.target, "cuda:", 5) ? cg_emit_llvm(&p, &co, obj, &d)
		                                    : cg_emit_cuda(&p, &co, obj, &d);
	if (rc == 0 && a.out)
		rc = cg_link(obj, &co, a.out, &d);
	if (rc == 0 && keys)
		print_keys(&p);
	if (obj[0])
		unlink(obj);
	if (rc == 0 && a.out && !a.quiet && !a.emit)
		fprintf(stderr,
		        "segc: wrote %s (%u kernels, arena %.2f MiB, packed weights %.2f MiB, %.2f "
		        "s)\n",
		        a.out, p.nkernels - p.npack, m->arena_bytes / 1048576.0,
		        p.packed_bytes / 1048576.0, tool_now() - t0);
	arena_free(p.arena);
	ir_module_free(m);
	return rc < 0 ? 1 : 0;
}

typedef struct {
	const char *name;
	double macs, flops;
	int64_t params;
	int nodes;
} ModStat;

static int
mod_index(ModStat *ms, int *n, const char *path, Arena *ar)
{
	char top[256];
	if (!path || !path[0])
		path = "(graph)";
	size_t l = strcspn(path, ".");
	snprintf(top, sizeof top, "%.*s", (int)(l < 255 ? l : 255), path);
	for (int i = 0; i < *n; i++)
		if (!strcmp(ms[i].name, top))
			return i;
	if (*n >= 256)
		return *n - 1;
	memset(&ms[*n], 0, sizeof ms[*n]);
	ms[*n].name = arena_strdup(ar, top);
	return (*n)++;
}


static void
print_dims(FILE *f, const Type *t, int json)
{
	fputc('[', f);
	for (int i = 0; i < t->rank; i++)
		fprintf(f, i ? (json ? ", %lld" : ",%lld") : "%lld", (long long)t->dims[i]);
	fputc(']', f);
}

static int
cmd_info(int argc, char **argv)
{
	Args a;
	Diag d;
	parse_args(argc, argv, 2, &a, help_info);
	if (!a.graph)
		tool_usage("segc", "info: no graph file given");
	diag_init(&d, stderr);
	Module *m = load_graph(&a, &d);

	/* costs on the graph as written (before canon rewrites composite ops) */
	ModStat ms[256];
	int nms = 0;
	double macs = 0, flops = 0;
	int64_t params = 0;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		if (n->op == OP_weight) {
			const Value *v = &m->values[n->out[0]];
			int k = mod_index(ms, &nms, v->name, m->arena);
			int64_t e = v->type.rank >= 0 ? type_numel(&v->type) : 0;
			/* num_batches_tracked is a counter, not a parameter (as PyTorch counts) */
			if (v->type.dtype == DT_F32) {
				ms[k].params += e;
				params += e;
			}
			continue;
		}
		if (optab[n->op].cls == FUSE_SRC)
			continue;
		Cost c = ir_node_cost(m, n);
		int k = mod_index(ms, &nms, n->name, m->arena);
		ms[k].macs += c.macs;
		ms[k].flops += c.flops;
		ms[k].nodes++;
		macs += c.macs;
		flops += c.flops;
	}
	double macs_fvcore = ir_macs_convention(m, "fvcore"); /* the M4Fuse paper's count */
	double macs_thop = velox_macs_thop(m);                /* the VeloxSeg paper's */
	int64_t params_thop = velox_params_thop(m);
	run_pipeline(m, &a, &d);

	FILE *f = stdout;
	if (a.json) {
		fprintf(f, "{\n  \"graph\": ");
		tool_json_str(f, m->name);
		fprintf(f,
		        ",\n  \"params\": %lld,\n  \"macs\": %.0f,\n  \"gmacs\": %.6f,\n  "
		        "\"gflops\": %.6f,\n",
		        (long long)params, macs, macs / 1e9, 2 * macs / 1e9);
		fprintf(f, "  \"macs_fvcore\": %.0f,\n  \"gmacs_fvcore\": %.6f,\n", macs_fvcore,
		        macs_fvcore / 1e9);
		fprintf(f, "  \"macs_thop\": %.0f,\n  \"gmacs_thop\": %.6f,\n", macs_thop,
		        macs_thop / 1e9);
		fprintf(f, "  \"params_thop\": %lld,\n", (long long)params_thop);
		fprintf(f,
		        "  \"flops_all\": %.0f,\n  \"arena_bytes\": %lld,\n  \"unplanned_bytes\": "
		        "%lld,\n",
		        flops, (long long)m->arena_bytes, (long long)m->naive_bytes);
		fprintf(f, "  \"kernels\": %u,\n  \"graph_params\": {", m->ngroups);
		for (uint32_t i = 0; i < m->nparams; i++) {
			fprintf(f, i ? ", " : "");
			tool_json_str(f, m->params[i].name);
			fputs(": ", f);
			tool_json_str(f, m->params[i].value);
		}
		fprintf(f, "},\n  \"inputs\": [");
		for (uint32_t i = 0; i < m->ninputs; i++) {
			const Value *v = &m->values[m->inputs[i]];
			fprintf(f, "%s{\"name\": ", i ? ", " : "");
			tool_json_str(f, v->name);
			fprintf(f, ", \"dtype\": \"%s\", \"shape\": ", dtype_name(v->type.dtype));
			print_dims(f, &v->type, 1);
			fputc('}', f);
		}
		fprintf(f, "],\n  \"outputs\": [");
		for (uint32_t i = 0; i < m->noutputs; i++) {
			const Value *v = &m->values[m->outputs[i]];
			fprintf(f, "%s{\"name\": ", i ? ", " : "");
			tool_json_str(f, m->output_names[i]);
			fprintf(f, ", \"dtype\": \"%s\", \"shape\": ", dtype_name(v->type.dtype));
			print_dims(f, &v->type, 1);
			fputc('}', f);
		}
		fprintf(f, "],\n  \"modules\": [");
		for (int i = 0; i < nms; i++) {
			fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
			tool_json_str(f, ms[i].name);
			fprintf(f, ", \"params\": %lld, \"macs\": %.0f, \"gflops\": %.6f}",
			        (long long)ms[i].params, ms[i].macs, 2 * ms[i].macs / 1e9);
		}
		fprintf(f, "\n  ],\n  \"weights\": [");
		int first = 1;
		for (uint32_t i = 0; i < m->nnodes; i++) {
			const Node *n = &m->nodes[i];
			if (n->dead || n->op != OP_weight)
				continue;
			const Value *v = &m->values[n->out[0]];
			fprintf(f, "%s\n    {\"name\": ", first ? "" : ",");
			tool_json_str(f, v->name);
			fprintf(f, ", \"dtype\": \"%s\", \"shape\": ", dtype_name(v->type.dtype));
			print_dims(f, &v->type, 1);
			fputc('}', f);
			first = 0;
		}
		fprintf(f, "\n  ]\n}\n");
	} else {
		fprintf(f, "graph       %s\n", m->name);
		for (uint32_t i = 0; i < m->nparams; i++)
			fprintf(f, "  -D %s=%s\n", m->params[i].name, m->params[i].value);
		for (uint32_t i = 0; i < m->ninputs; i++) {
			const Value *v = &m->values[m->inputs[i]];
			char b[128];
			fprintf(f, "input       %s %s\n", v->name, type_str(&v->type, b, sizeof b));
		}
		for (uint32_t i = 0; i < m->noutputs; i++) {
			char b[128];
			fprintf(f, "output      %s %s\n", m->output_names[i],
			        type_str(&m->values[m->outputs[i]].type, b, sizeof b));
		}
		fprintf(f, "parameters  %lld (%.3f M)\n", (long long)params, params / 1e6);
		fprintf(f, "MACs        %.0f (%.3f G)\n", macs, macs / 1e9);
		fprintf(f, "MACs fvcore %.0f (%.3f G; the M4Fuse paper's convention)\n",
		        macs_fvcore, macs_fvcore / 1e9);
		fprintf(f, "MACs thop   %.0f (%.3f G; the VeloxSeg paper's, params %lld)\n",
		        macs_thop, macs_thop / 1e9, (long long)params_thop);
		fprintf(f, "GFLOPs      %.3f (2 x MACs); all arithmetic %.3f GFLOP\n",
		        2 * macs / 1e9, flops / 1e9);
		fprintf(f,
		        "activations %.2f MiB planned arena (%.2f MiB without reuse), %u kernels\n",
		        m->arena_bytes / 1048576.0, m->naive_bytes / 1048576.0, m->ngroups);
		fprintf(f, "\n%-24s %14s %12s %10s\n", "module", "params", "GMACs", "GFLOPs");
		for (int i = 0; i < nms; i++)
			fprintf(f, "%-24s %14lld %12.4f %10.4f\n", ms[i].name,
			        (long long)ms[i].params, ms[i].macs / 1e9, 2 * ms[i].macs / 1e9);
		fprintf(f, "\nweights:\n");
		for (uint32_t i = 0; i < m->nnodes; i++) {
			const Node *n = &m->nodes[i];
			if (n->dead || n->op != OP_weight)
				continue;
			const Value *v = &m->values[n->out[0]];
			char b[128];
			fprintf(f, "  %-48s %s\n", v->name, type_str(&v->type, b, sizeof b));
		}
	}
	ir_module_free(m);
	return 0;
}

/* ---- engines: run and synth ---- */

static void
shape_str(char *b, size_t n, int rank, const int64_t *shape)
{
	size_t k = (size_t)snprintf(b, n, "[");
	for (int i = 0; i < rank && k < n; i++)
		k += (size_t)snprintf(b + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
	if (k < n)
		snprintf(b + k, n - k, "]");
}

/* segc_dtype <-> .npy dtype; -1 where there is no counterpart */
static int
npy_of(int dt)
{
	switch (dt) {
	case SEGC_F32:
		return RT_NPY_F32;
	case SEGC_I64:
		return RT_NPY_I64;
	case SEGC_I32:
		return RT_NPY_I32;
	case SEGC_U8:
		return RT_NPY_U8;
	default:
		return -1;
	}
}

static const char *
npy_dtype_text(int npy)
{
	static const char *names[RT_NPY_COUNT] = {"f32", "f64", "i64", "i32", "u8", "bool"};
	return npy >= 0 && npy < RT_NPY_COUNT ? names[npy] : "?";
}

static int
cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
summarize(const char *name, const segc_tensor_info *ti, const void *data)
{
	char sb[128];
	int64_t n = rt_numel(ti->rank, ti->shape);
	shape_str(sb, sizeof sb, ti->rank, ti->shape);
	if (ti->dtype != SEGC_F32 || n <= 0) {
		printf("output %s %s %s\n", name, rt_dtype_name(ti->dtype), sb);
		return;
	}
	const float *x = data;
	double mn = INFINITY, mx = -INFINITY, sum = 0;
	int64_t nan = 0;
	for (int64_t i = 0; i < n; i++) {
		if (isnan(x[i])) {
			nan++;
			continue;
		}
		mn = x[i] < mn ? x[i] : mn;
		mx = x[i] > mx ? x[i] : mx;
		sum += x[i];
	}
	printf("output %s f32 %s: min %.4g max %.4g mean %.4g%s\n", name, sb, mn, mx, sum / n,
	       nan ? " (contains NaN)" : "");
	if (ti->rank == 5 && ti->shape[1] > 1 && ti->shape[1] <= 64) {
		/* a segmentation: argmax over channels, voxels per label */
		int64_t C = ti->shape[1], S = ti->shape[2] * ti->shape[3] * ti->shape[4],
		        cnt[64] = {0};
		for (int64_t b = 0; b < ti->shape[0]; b++)
			for (int64_t s = 0; s < S; s++) {
				int best = 0;
				for (int64_t c = 1; c < C; c++)
					if (x[(b * C + c) * S + s] > x[(b * C + best) * S + s])
						best = (int)c;
				cnt[best]++;
			}
		printf("  argmax labels:");
		for (int64_t c = 0; c < C; c++)
			printf(" %lld:%lld", (long long)c, (long long)cnt[c]);
		printf(" voxels\n");
	}
}

static int
find_name(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], name))
			return i;
	return -1;
}

static int
cmd_run(int argc, char **argv)
{
	Args a;
	int summary = 0;
	if (cases_wanted(argc, argv)) /* whole cases: NIfTI, sliding windows (cases.c) */
		return cases_run(argc, argv);
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--summary")) {
			summary = 1;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof *argv);
			argc--;
			i--;
		}
	parse_args(argc, argv, 2, &a, help_run);
	if (!a.graph)
		tool_usage("segc", "run: no engine given");
	ToolEngine en;
	tool_engine_open(&en, a.graph, a.threads);
	const segc_api *api = en.api;
	int ni = api->num_inputs(en.e), no = api->num_outputs(en.e);
	if (a.weights) {
		if (api->load_weights(en.e, a.weights) != SEGC_OK)
			tool_die("%s", api->last_error(en.e));
	} else if (api->num_weights(en.e) > 0) {
		tool_usage("segc", "run: the engine has %d weights: give --weights W.safetensors",
		           api->num_weights(en.e));
	}
	if (a.nin != ni)
		tool_usage("segc", "run: the engine has %d input(s), %d --input given", ni, a.nin);
	if (a.nout != no && !(a.nout == 0 && summary))
		tool_usage("segc", "run: the engine has %d output(s), %d --output given", no,
		           a.nout);

	const void *ins[MAXIO];
	void *outs[MAXIO];
	RtNpy arrs[MAXIO];
	segc_tensor_info oinfo[MAXIO];
	memset(arrs, 0, sizeof arrs);
	for (int i = 0; i < ni; i++) {
		segc_tensor_info ti;
		char err[512], s1[128], s2[128];
		api->input_info(en.e, i, &ti);
		int k = a.in_names[0] ? find_name(a.in_names, a.nin, ti.name) : i;
		if (k < 0)
			tool_usage("segc", "run: no --input %s=FILE for the engine's input '%s'",
			           ti.name, ti.name);
		if (rt_npy_read(a.in_paths[k], &arrs[i], err, sizeof err) != SEGC_OK)
			tool_die("%s", err);
		shape_str(s1, sizeof s1, arrs[i].rank, arrs[i].shape);
		shape_str(s2, sizeof s2, ti.rank, ti.shape);
		if (arrs[i].dtype != npy_of(ti.dtype))
			tool_die("%s: dtype %s, but the engine's input '%s' is %s", a.in_paths[k],
			         npy_dtype_text(arrs[i].dtype), ti.name, rt_dtype_name(ti.dtype));
		if (arrs[i].rank != ti.rank ||
		    memcmp(arrs[i].shape, ti.shape, ti.rank * sizeof(int64_t)))
			tool_die("%s: shape %s, but the engine's input '%s' is %s", a.in_paths[k],
			         s1, ti.name, s2);
		ins[i] = arrs[i].data;
	}
	for (int i = 0; i < no; i++) {
		api->output_info(en.e, i, &oinfo[i]);
		int64_t n = rt_numel(oinfo[i].rank, oinfo[i].shape);
		outs[i] = calloc((size_t)(n > 0 ? n : 1), (size_t)rt_dtype_size(oinfo[i].dtype));
		if (!outs[i])
			tool_die("out of memory for output '%s'", oinfo[i].name);
	}
	double *ms = calloc((size_t)a.repeat, sizeof *ms);
	for (int r = 0; r < a.repeat; r++) {
		double t0 = tool_now();
		if (api->run(en.e, ins, outs) != SEGC_OK)
			tool_die("%s", api->last_error(en.e));
		ms[r] = 1e3 * (tool_now() - t0);
	}
	double first = ms[0];
	/* a GPU engine's first run pays one-time costs (module load, caches): with --repeat N > 1
	 * its median and min are over runs 2..N */
	int skip = a.repeat > 1 && strcmp(api->device(en.e), "cpu") != 0;
	int nr = a.repeat - skip;
	qsort(ms + skip, (size_t)nr, sizeof *ms, cmpd);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "latency_ms median=%.3f min=%.3f first=%.3f runs=%d skipped=%d\n",
	        ms[skip + nr / 2], ms[skip], first, a.repeat, skip);
	const char *pk = strstr(api->manifest(en.e), "\npacked ");
	fprintf(stderr, "peak_rss_mib %.1f arena_mib %.1f packed_mib %.1f\n", ru.ru_maxrss / 1024.0,
	        api->arena_bytes(en.e) / 1048576.0, pk ? strtod(pk + 8, NULL) / 1048576.0 : 0.0);
	free(ms);
	for (int i = 0; i < no; i++) {
		int k = a.nout == 0      ? -1
		        : a.out_names[0] ? find_name(a.out_names, a.nout, oinfo[i].name)
		                         : i;
		if (summary)
			summarize(oinfo[i].name, &oinfo[i], outs[i]);
		if (k < 0) {
			if (a.nout)
				tool_usage("segc",
				           "run: no --output %s=FILE for the engine's output '%s'",
				           oinfo[i].name, oinfo[i].name);
			continue;
		}
		char err[512];
		if (rt_npy_write(a.out_paths[k], npy_of(oinfo[i].dtype), oinfo[i].rank,
		                 oinfo[i].shape, outs[i], err, sizeof err) != SEGC_OK)
			tool_die("%s", err);
	}
	for (int i = 0; i < ni; i++)
		rt_npy_free(&arrs[i]);
	for (int i = 0; i < no; i++)
		free(outs[i]);
	tool_engine_close(&en);
	return 0;
}

/* splitmix64: small, seedable, good enough for test data */
static uint64_t
rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double
rnd_uniform(uint64_t *s)
{
	return (rnd_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double
rnd_normal(uint64_t *s)
{
	double u = rnd_uniform(s), v = rnd_uniform(s);
	return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* a phantom: a few ellipsoids with channel-dependent contrast, plus noise */
static void
phantom(float *x, const segc_tensor_info *ti, uint64_t *rs)
{
	int64_t n = rt_numel(ti->rank, ti->shape);
	if (ti->rank != 5) {
		for (int64_t i = 0; i < n; i++)
			x[i] = (float)rnd_normal(rs);
		return;
	}
	int64_t B = ti->shape[0], C = ti->shape[1], D = ti->shape[2], H = ti->shape[3],
	        W = ti->shape[4];
	double cz[3] = {0.5, 0.4, 0.62}, cy[3] = {0.5, 0.55, 0.42}, cx[3] = {0.5, 0.45, 0.6};
	double r[3] = {0.38, 0.18, 0.08};
	for (int64_t b = 0; b < B; b++)
		for (int64_t c = 0; c < C; c++)
			for (int64_t z = 0; z < D; z++)
				for (int64_t y = 0; y < H; y++)
					for (int64_t w = 0; w < W; w++) {
						double v = 0;
						for (int k = 0; k < 3; k++) {
							double dz = (z + 0.5) / D - cz[k],
							       dy = (y + 0.5) / H - cy[k];
							double dx = (w + 0.5) / W - cx[k];
							if (dz * dz + dy * dy + dx * dx <
							    r[k] * r[k])
								v = 1.0 +
								    k * (0.5 + 0.25 * (double)c);
						}
						x[(((b * C + c) * D + z) * H + y) * W + w] =
						    (float)(v + 0.1 * rnd_normal(rs));
					}
}

static int
cmd_synth(int argc, char **argv)
{
	Args a;
	parse_args(argc, argv, 2, &a, help_synth);
	if (!a.graph || !a.weights)
		tool_usage("segc", "synth: give ENGINE.so and --weights W.safetensors");
	ToolEngine en;
	tool_engine_open(&en, a.graph, 1);
	const segc_api *api = en.api;
	uint64_t rs = (uint64_t)a.seed * 7919u + 17u;
	int nw = api->num_weights(en.e);
	const char **names = calloc((size_t)nw + 1, sizeof *names);
	segc_dtype *dts = calloc((size_t)nw + 1, sizeof *dts);
	int *ranks = calloc((size_t)nw + 1, sizeof *ranks);
	const int64_t **shapes = calloc((size_t)nw + 1, sizeof *shapes);
	const void **datas = calloc((size_t)nw + 1, sizeof *datas);
	segc_tensor_info *wi = calloc((size_t)nw + 1, sizeof *wi);
	for (int i = 0; i < nw; i++) {
		api->weight_info(en.e, i, &wi[i]);
		int64_t n = rt_numel(wi[i].rank, wi[i].shape);
		void *buf = calloc((size_t)(n > 0 ? n : 1), (size_t)rt_dtype_size(wi[i].dtype));
		if (!buf)
			tool_die("out of memory for weight '%s'", wi[i].name);
		if (wi[i].dtype == SEGC_F32) {
			float *w = buf;
			int64_t fan_in = 1;
			for (int d = 1; d < wi[i].rank; d++)
				fan_in *= wi[i].shape[d];
			double bound = 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
			int is_norm = wi[i].rank == 1 && tool_ends_with(wi[i].name, ".weight");
			for (int64_t k = 0; k < n; k++) {
				if (tool_ends_with(wi[i].name, "running_var") || is_norm)
					w[k] = 1.0f;
				else if (tool_ends_with(wi[i].name, "running_mean"))
					w[k] = 0.0f;
				else if (wi[i].rank == 1)
					w[k] = (float)(0.02 * (2 * rnd_uniform(&rs) - 1));
				else
					w[k] = (float)(bound * (2 * rnd_uniform(&rs) - 1));
			}
		}
		names[i] = wi[i].name;
		dts[i] = wi[i].dtype;
		ranks[i] = wi[i].rank;
		shapes[i] = wi[i].shape;
		datas[i] = buf;
	}
	char err[512];
	if (rt_safetensors_write(a.weights, nw, names, dts, ranks, shapes, datas, err,
	                         sizeof err) != SEGC_OK)
		tool_die("%s", err);
	printf("wrote %s: %d tensors\n", a.weights, nw);
	for (int i = 0; i < nw; i++)
		free((void *)datas[i]);
	if (a.nin > 0) {
		int ni = api->num_inputs(en.e);
		if (a.nin != ni)
			tool_usage("segc", "synth: the engine has %d input(s), %d --input given",
			           ni, a.nin);
		for (int i = 0; i < ni; i++) {
			segc_tensor_info ti;
			api->input_info(en.e, i, &ti);
			if (ti.dtype != SEGC_F32)
				tool_die(
				    "synth: input '%s' is %s; only f32 inputs can be synthesised",
				    ti.name, rt_dtype_name(ti.dtype));
			int64_t n = rt_numel(ti.rank, ti.shape);
			float *x = calloc((size_t)(n > 0 ? n : 1), sizeof *x);
			if (!x)
				tool_die("out of memory for input '%s'", ti.name);
			phantom(x, &ti, &rs);
			if (rt_npy_write(a.in_paths[i], npy_of(ti.dtype), ti.rank, ti.shape, x, err,
			                 sizeof err) != SEGC_OK)
				tool_die("%s", err);
			char sb[128];
			shape_str(sb, sizeof sb, ti.rank, ti.shape);
			printf("wrote %s: input '%s' f32 %s (synthetic phantom)\n", a.in_paths[i],
			       ti.name, sb);
			free(x);
		}
	}
	free(names);
	free(dts);
	free(ranks);
	free(shapes);
	free(datas);
	free(wi);
	tool_engine_close(&en);
	return 0;
}

/* ---- the reference interpreter ---- */

typedef struct {
	RtTensorList *list;
	const char *path;
	char err[512];
} WeightCtx;

static const void *
interp_weight(void *ctx, const char *name, const Type *t)
{
	WeightCtx *w = ctx;
	const RtTensor *rt = rt_tensor_list_find(w->list, name);
	if (!rt) {
		snprintf(w->err, sizeof w->err, "weight '%s' is missing from %s", name, w->path);
		return NULL;
	}
	if (rt->rank != t->rank || memcmp(rt->shape, t->dims, (size_t)t->rank * sizeof(int64_t)) ||
	    rt->dtype != t->dtype) {
		snprintf(w->err, sizeof w->err,
		         "weight '%s' in %s does not have the graph's dtype and shape", name,
		         w->path);
		return NULL;
	}
	return rt->data;
}

static int
cmd_interp(int argc, char **argv)
{
	Args a;
	Diag d;
	parse_args(argc, argv, 2, &a, help_interp);
	if (!a.graph || !a.weights || a.nin < 1 || a.nout < 1)
		tool_usage("segc", "interp: give GRAPH.json, --weights, --input and --output");
	diag_init(&d, stderr);
	Module *m = load_graph(&a, &d);
	if ((uint32_t)a.nin != m->ninputs || (uint32_t)a.nout != m->noutputs)
		tool_usage("segc", "interp: the graph has %u input(s) and %u output(s)", m->ninputs,
		           m->noutputs);
	char err[512];
	RtFile wf;
	RtTensorList wl;
	if (rt_file_map(a.weights, &wf, err, sizeof err) != SEGC_OK ||
	    rt_safetensors_parse(a.weights, wf.data, wf.size, &wl, err, sizeof err) != SEGC_OK)
		tool_die("%s", err);
	RtNpy arrs[MAXIO];
	const void *ins[MAXIO];
	void *outs[MAXIO];
	for (uint32_t i = 0; i < m->ninputs; i++) {
		const Value *v = &m->values[m->inputs[i]];
		int k = a.in_names[0] ? find_name(a.in_names, a.nin, v->name) : (int)i;
		if (k < 0)
			tool_usage("segc", "interp: no --input %s=FILE", v->name);
		if (rt_npy_read(a.in_paths[k], &arrs[i], err, sizeof err) != SEGC_OK)
			tool_die("%s", err);
		if (arrs[i].rank != v->type.rank ||
		    memcmp(arrs[i].shape, v->type.dims, (size_t)v->type.rank * sizeof(int64_t)) ||
		    arrs[i].dtype != npy_of(v->type.dtype))
			tool_die("%s: dtype or shape does not match the graph's input '%s'",
			         a.in_paths[k], v->name);
		ins[i] = arrs[i].data;
	}
	for (uint32_t i = 0; i < m->noutputs; i++) {
		const Value *v = &m->values[m->outputs[i]];
		outs[i] =
		    calloc((size_t)type_numel(&v->type) + 1, (size_t)dtype_size(v->type.dtype));
	}
	WeightCtx wc = {&wl, a.weights, ""};
	if (ir_interp(m, ins, interp_weight, &wc, outs, &d) < 0) {
		if (wc.err[0])
			tool_die("%s", wc.err);
		exit(1);
	}
	for (uint32_t i = 0; i < m->noutputs; i++) {
		const Value *v = &m->values[m->outputs[i]];
		int k =
		    a.out_names[0] ? find_name(a.out_names, a.nout, m->output_names[i]) : (int)i;
		if (k < 0)
			tool_usage("segc", "interp: no --output %s=FILE", m->output_names[i]);
		if (rt_npy_write(a.out_paths[k], npy_of(v->type.dtype), v->type.rank, v->type.dims,
		                 outs[i], err, sizeof err) != SEGC_OK)
			tool_die("%s", err);
		free(outs[i]);
	}
	for (uint32_t i = 0; i < m->ninputs; i++)
		rt_npy_free(&arrs[i]);
	rt_tensor_list_free(&wl);
	rt_file_unmap(&wf);
	ir_module_free(m);
	return 0;
}

int
main(int argc, char **argv)
{
	if (op_init() < 0)
		return 3;
	if (argc < 2) {
		fputs(help_compile, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("segc %s\n", SEGC_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc, argv);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc, argv);
	if (!strcmp(argv[1], "interp"))
		return cmd_interp(argc, argv);
	if (!strcmp(argv[1], "synth"))
		return cmd_synth(argc, argv);
	if (!strcmp(argv[1], "tune"))
		return cmd_tune(argc, argv);
	if (!strcmp(argv[1], "compile"))
		return cmd_compile(argc - 1, argv + 1);
	return cmd_compile(argc, argv);
}
