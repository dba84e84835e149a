/* tools/cases.c -- `segc run` over whole cases: NIfTI in and out, sliding windows through the
 * engine ABI (window_run, postprocess), batches over a directory with shards, a progress bar
 * and a journal that lets an interrupted run resume (docs/cases.md).
 *
 *   segc run ENGINE.so --weights W (--input CASE | --input-dir D) (--output OUT | --output-dir O)
 *
 * Axis order: the engine's [N, C, D, H, W] takes a NIfTI volume (x, y, z, t) as C = t and,
 * with --axes zyx (the default, no copy), D = z, H = y, W = x; with --axes xyz (the order of
 * nibabel / MONAI arrays) D = x, H = y, W = z.  The order used is written into each output's
 * descrip field.  Errors of one case in a batch are reported and the batch goes on. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cases.h"
#include "rt_case.h"
#include "rt_manifest.h"
#include "rt_npy.h"
#include "segc_engine.h"
#include "tool.h"

#define MAXCH  16
#define MAXREG 16
#define ERRLEN 1024

typedef struct {
	const char *engine, *weights, *input, *output, *input_dir, *output_dir, *ext;
	int threads, shard_i, shard_n, xyz, save_probs, progress, sliding_npy;
	segc_window_options wo;
	int activation, act_set; /* -1: from the graph params, else none */
	int32_t labels[256];
	int nlabels;
	int32_t reg_ch[MAXREG], reg_label[MAXREG];
	float reg_thr[MAXREG];
	int nregions;
	double threshold;
	char optstr[512]; /* the options that change outputs, for the journal */
} CaseArgs;

typedef struct {
	void *so;
	const segc_api *api;
	segc_engine_t *e;
	segc_tensor_info in, out;
} Eng;

static const char *help_cases =
    "usage: segc run ENGINE.so --weights W.safetensors --input CASE --output OUT [options]\n"
    "       segc run ENGINE.so --weights W.safetensors --input-dir D --output-dir O [options]\n"
    "Segment whole cases with sliding windows of the engine's input size (docs/cases.md).\n"
    "  --input A.nii.gz[,B.nii.gz...]  a 4-D file (t = channels) or one 3-D file per channel\n"
    "  --input X.npy --sliding-window  a [C, D, H, W] array; the output .npy holds the scores\n"
    "  --output OUT.nii[.gz]           labels (or --save probabilities: f32, t = classes)\n"
    "  --input-dir D --output-dir O    every case in D: CASE_0000.nii.gz, CASE_0001.nii.gz ...\n"
    "                                  (nnU-Net names, one file per channel) or CASE.nii.gz\n"
    "  --shard I/N                     only the cases k with k mod N = I (sorted by name)\n"
    "  --output-ext .nii|.nii.gz       extension of batch outputs (default .nii.gz)\n"
    "  --axes zyx|xyz                  engine D,H,W = NIfTI z,y,x (default) or x,y,z\n"
    "  --overlap F                     window overlap in [0, 1) (default 0.5)\n"
    "  --blend constant|gaussian       (gaussian: MONAI's map, --sigma-scale, default 0.125)\n"
    "  --positions monai|nnunet        window positions (default monai)\n"
    "  --mirror AXES                   test-time mirroring over engine axes: d, h, w, dhw, none\n"
    "  --normalize none|zscore|nonzero per-channel z-score (nonzero: BraTS, zeros stay 0)\n"
    "  --activation none|softmax|sigmoid  (default: the graph's post_activation param, else\n"
    "                                  softmax)\n"
    "  --labels L0,L1,...              argmax class k -> label Lk (e.g. 0,1,2,4)\n"
    "  --regions CH:LABEL[:THR],...    sigmoid regions, applied in order (later ones win)\n"
    "  --threshold F                   region threshold when a region names none (0.5)\n"
    "  --brats | --brats=123           sigmoid TC,WT,ET channels -> labels 1/2/4 (or 1/2/3)\n"
    "  --save labels|probabilities     what to write (default labels)\n"
    "  --progress | --no-progress      progress bar (default: when stderr is a terminal)\n"
    "  --threads N                     worker threads of the engine\n";

/* ---- arguments ---- */

static int
is_nifti(const char *s)
{
	return tool_ends_with(s, ".nii") || tool_ends_with(s, ".nii.gz");
}

int
cases_wanted(int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i];
		if (!strncmp(s, "--input-dir", 11) || !strcmp(s, "--sliding-window"))
			return 1;
		if (s[0] != '-' && i > 2 && (strstr(s, ".nii,") || is_nifti(s)))
			return 1;
		if (!strncmp(s, "--input=", 8) && (strstr(s, ".nii,") || is_nifti(s)))
			return 1;
	}
	return 0;
}

static const char *
val(int argc, char **argv, int *i, const char *flag)
{
	return tool_optval("segc run", argc, argv, i, flag);
}

static double
num(const char *flag, const char *v, double lo, double hi)
{
	return tool_num("segc run", flag, v, lo, hi);
}

static int
pick(const char *flag, const char *v, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v, names[i]))
			return i;
	tool_usage("segc run", "%s: unknown value '%s'", flag, v);
}

static void
set_brats(CaseArgs *a, int et)
{
	/* channels TC, WT, ET (MONAI's ConvertToMultiChannelBasedOnBratsClasses order): WT
	 * gives edema (2), TC inside it the necrotic core (1), ET inside that enhancing (et) */
	static const int32_t ch[3] = {1, 0, 2};
	a->activation = SEGC_ACT_SIGMOID;
	a->act_set = 1;
	a->nregions = 3;
	for (int r = 0; r < 3; r++) {
		a->reg_ch[r] = ch[r];
		a->reg_label[r] = r == 0 ? 2 : r == 1 ? 1 : et;
		a->reg_thr[r] = NAN;
	}
}

static void
parse_regions(CaseArgs *a, const char *v)
{
	char *s = strdup(v), *save = NULL;
	a->nregions = 0;
	for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int ch, lab, n = 0;
		float thr = NAN;
		if (a->nregions >= MAXREG)
			tool_usage("segc run", "--regions: at most %d regions", MAXREG);
		if (sscanf(t, "%d:%d%n", &ch, &lab, &n) != 2 ||
		    (t[n] && (t[n] != ':' || sscanf(t + n + 1, "%f", &thr) != 1)))
			tool_usage("segc run",
			           "--regions expects CH:LABEL[:THRESHOLD],..., got '%s'", t);
		a->reg_ch[a->nregions] = ch;
		a->reg_label[a->nregions] = lab;
		a->reg_thr[a->nregions++] = thr;
	}
	free(s);
}

static void
parse_case_args(int argc, char **argv, CaseArgs *a, Eng *en)
{
	static const char *blends[] = {"constant", "gaussian"}, *poss[] = {"monai", "nnunet"},
	                  *norms[] = {"none", "zscore", "nonzero"},
	                  *acts[] = {"none", "softmax", "sigmoid"}, *axes[] = {"zyx", "xyz"},
	                  *saves[] = {"labels", "probabilities"};
	memset(a, 0, sizeof *a);
	a->wo.size = sizeof a->wo;
	a->wo.overlap = 0.5;
	a->wo.sigma_scale = 0.125;
	a->threshold = 0.5;
	a->ext = ".nii.gz";
	a->progress = isatty(2);
	a->activation = SEGC_ACT_SOFTMAX;
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i], *v;
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(help_cases, stdout);
			exit(0);
		} else if ((v = val(argc, argv, &i, "--weights"))) {
			a->weights = v;
		} else if ((v = val(argc, argv, &i, "--input-dir"))) {
			a->input_dir = v;
		} else if ((v = val(argc, argv, &i, "--output-dir"))) {
			a->output_dir = v;
		} else if ((v = val(argc, argv, &i, "--input"))) {
			if (a->input)
				tool_usage("segc run",
				           "run: give one --input (channels as A.nii.gz,B.nii.gz)");
			a->input = v;
		} else if ((v = val(argc, argv, &i, "--output"))) {
			a->output = v;
		} else if ((v = val(argc, argv, &i, "--output-ext"))) {
			if (strcmp(v, ".nii") && strcmp(v, ".nii.gz"))
				tool_usage("segc run",
				           "--output-ext expects .nii or .nii.gz, got '%s'", v);
			a->ext = v;
		} else if ((v = val(argc, argv, &i, "--threads"))) {
			a->threads = (int)num("--threads", v, 0, 1024);
		} else if ((v = val(argc, argv, &i, "--shard"))) {
			char *end;
			a->shard_i = (int)strtol(v, &end, 10);
			if (*end != '/' || (a->shard_n = (int)strtol(end + 1, &end, 10)) < 1 ||
			    *end || a->shard_i < 0 || a->shard_i >= a->shard_n)
				tool_usage("segc run",
				           "--shard expects I/N with 0 <= I < N, got '%s'", v);
		} else if ((v = val(argc, argv, &i, "--axes"))) {
			a->xyz = pick("--axes", v, axes, 2);
		} else if ((v = val(argc, argv, &i, "--overlap"))) {
			a->wo.overlap = num("--overlap", v, 0, 0.999);
		} else if ((v = val(argc, argv, &i, "--blend"))) {
			a->wo.blend = pick("--blend", v, blends, 2);
		} else if ((v = val(argc, argv, &i, "--sigma-scale"))) {
			a->wo.sigma_scale = num("--sigma-scale", v, 1e-3, 100);
		} else if ((v = val(argc, argv, &i, "--positions"))) {
			a->wo.positions = pick("--positions", v, poss, 2);
		} else if ((v = val(argc, argv, &i, "--normalize"))) {
			a->wo.normalize = pick("--normalize", v, norms, 3);
		} else if ((v = val(argc, argv, &i, "--mirror"))) {
			a->wo.mirror_axes = 0;
			if (strcmp(v, "none") && strcmp(v, "all")) {
				for (const char *p = v; *p; p++) {
					const char *q = strchr("dhw", *p);
					if (!q || !*p)
						tool_usage(
						    "segc run",
						    "--mirror expects axes among d, h, w (or "
						    "all, none), got '%s'",
						    v);
					a->wo.mirror_axes |= 1u << (q - "dhw");
				}
			} else if (!strcmp(v, "all")) {
				a->wo.mirror_axes = 7;
			}
		} else if ((v = val(argc, argv, &i, "--activation"))) {
			a->activation = pick("--activation", v, acts, 3);
			a->act_set = 1;
		} else if ((v = val(argc, argv, &i, "--labels"))) {
			char *s2 = strdup(v), *save = NULL;
			a->nlabels = 0;
			for (char *t = strtok_r(s2, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				if (a->nlabels >= 256)
					tool_usage("segc run", "--labels: at most 256 labels");
				a->labels[a->nlabels++] =
				    (int32_t)num("--labels", t, -32768, 32767);
			}
			free(s2);
		} else if ((v = val(argc, argv, &i, "--regions"))) {
			parse_regions(a, v);
			if (!a->act_set)
				a->activation = SEGC_ACT_SIGMOID;
			a->act_set = 1;
		} else if ((v = val(argc, argv, &i, "--threshold"))) {
			a->threshold = num("--threshold", v, -1e30, 1e30);
		} else if (!strcmp(s, "--brats") || !strcmp(s, "--brats=124")) {
			set_brats(a, 4);
		} else if (!strcmp(s, "--brats=123")) {
			set_brats(a, 3);
		} else if ((v = val(argc, argv, &i, "--save"))) {
			a->save_probs = pick("--save", v, saves, 2);
		} else if (!strcmp(s, "--progress")) {
			a->progress = 1;
		} else if (!strcmp(s, "--no-progress")) {
			a->progress = 0;
		} else if (!strcmp(s, "--sliding-window")) {
			a->sliding_npy = 1;
		} else if (s[0] == '-' && s[1]) {
			tool_usage("segc run", "run: unknown option '%s'", s);
		} else if (!a->engine) {
			a->engine = s;
		} else {
			tool_usage("segc run", "run: unexpected argument '%s'", s);
		}
	}
	(void)en;
	if (!a->engine)
		tool_usage("segc run", "run: no engine given");
	if (!a->input == !a->input_dir)
		tool_usage("segc run", "run: give either --input or --input-dir");
	if (a->input_dir && !a->output_dir)
		tool_usage("segc run", "run: --input-dir needs --output-dir");
	if (a->input && !a->output)
		tool_usage("segc run", "run: --input needs --output");
	if (a->shard_n && !a->input_dir)
		tool_usage("segc run", "run: --shard needs --input-dir");
	for (int r = 0; r < a->nregions; r++)
		if (isnan(a->reg_thr[r]))
			a->reg_thr[r] = (float)a->threshold;
}

/* ---- the engine and the graph's declared post-processing ---- */

static void
open_engine(Eng *en, const CaseArgs *a)
{
	ToolEngine t;
	tool_engine_open(&t, a->engine, a->threads);
	en->so = t.so, en->api = t.api, en->e = t.e;
	if (en->api->size < offsetof(segc_api, postprocess) + sizeof en->api->postprocess)
		tool_die("%s was built before whole-case inference (window_run); recompile it",
		         a->engine);
	if (a->weights) {
		if (en->api->load_weights(en->e, a->weights) != SEGC_OK)
			tool_die("%s", en->api->last_error(en->e));
	} else if (en->api->num_weights(en->e) > 0) {
		tool_usage("segc run",
		           "run: the engine has %d weights: give --weights W.safetensors",
		           en->api->num_weights(en->e));
	}
	if (en->api->num_inputs(en->e) != 1 || en->api->input_info(en->e, 0, &en->in) ||
	    en->api->output_info(en->e, 0, &en->out) || en->in.rank != 5 || en->out.rank != 5)
		tool_die(
		    "%s: sliding windows need one input [N, C, D, H, W] and an output [N, K, D, H, "
		    "W]",
		    a->engine);
}

/* a graph param recorded in the manifest ("param NAME VALUE"); NULL when absent */
static const char *
manifest_param(const Eng *en, const char *name, char *buf, size_t len)
{
	const char *m = en->api->manifest(en->e);
	size_t l = strlen(name);
	for (const char *p = m; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, "param ", 6) && !strncmp(p + 6, name, l) && p[6 + l] == ' ') {
			const char *v = p + 7 + l;
			size_t n = strcspn(v, "\n");
			snprintf(buf, len, "%.*s", (int)n, v);
			return buf;
		}
	return NULL;
}

/* post_activation (0 none, 1 softmax, 2 sigmoid), post_labels [..], post_regions [ch,label,
 * ...] and post_threshold in the graph's params, unless the command line says otherwise */
static void
graph_post(const Eng *en, CaseArgs *a)
{
	char b[1024];
	int n = 0;
	if (!a->act_set && manifest_param(en, "post_activation", b, sizeof b)) {
		a->activation = atoi(b);
		if (a->activation < 0 || a->activation > 2)
			tool_die("%s: graph param post_activation=%s, expected 0, 1 or 2",
			         a->engine, b);
		a->act_set = 1;
	}
	if (!a->nlabels && manifest_param(en, "post_labels", b, sizeof b))
		for (char *p = b + 1; *p && *p != ']' && a->nlabels < 256; p += n + (p[n] == ','))
			if (sscanf(p, "%d%n", &a->labels[a->nlabels++], &n) != 1)
				tool_die("%s: graph param post_labels=%s is not a list of integers",
				         a->engine, b);
	if (manifest_param(en, "post_threshold", b, sizeof b))
		a->threshold = atof(b);
	if (!a->nregions && manifest_param(en, "post_regions", b, sizeof b)) {
		int v[2 * MAXREG], k = 0;
		for (char *p = b + 1; *p && *p != ']' && k < 2 * MAXREG; p += n + (p[n] == ','))
			if (sscanf(p, "%d%n", &v[k++], &n) != 1)
				tool_die(
				    "%s: graph param post_regions=%s is not a list of integers",
				    a->engine, b);
		for (int r = 0; r + 1 < k; r += 2) {
			a->reg_ch[a->nregions] = v[r];
			a->reg_label[a->nregions] = v[r + 1];
			a->reg_thr[a->nregions++] = (float)a->threshold;
		}
	}
	if (a->nlabels && a->nlabels != en->out.shape[1])
		tool_die("%d labels given for the engine's %lld output channels", a->nlabels,
		         (long long)en->out.shape[1]);
}

/* ---- one case ---- */

typedef struct {
	const char *name;
	char *paths[MAXCH];
	int nch;
	char out[PATH_MAX];
} Case;

typedef struct {
	int on;
	double t0, last;
	int ncases, idx; /* cases to run, this one */
	int64_t done, total;
	const char *name;
} Progress;

static void
draw(Progress *p, int final)
{
	double t = tool_now(), frac, left;
	char bar[31];
	if (!p->on || (!final && t - p->last < 0.1))
		return;
	p->last = t;
	frac = p->ncases ? (p->idx + (p->total ? (double)p->done / p->total : 0)) / p->ncases : 1;
	left = frac > 0 ? (t - p->t0) * (1 - frac) / frac : 0;
	for (int i = 0; i < 30; i++)
		bar[i] = i < (int)(frac * 30) ? '#' : '-';
	bar[30] = 0;
	fprintf(stderr, "\r[%s] cases %d/%d  windows %lld/%lld  left %d:%02d  %-24.24s", bar,
	        p->idx + final, p->ncases, (long long)p->done, (long long)p->total, (int)left / 60,
	        (int)left % 60, p->name ? p->name : "");
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static int
on_progress(void *user, int64_t done, int64_t total)
{
	Progress *p = user;
	p->done = done;
	p->total = total;
	draw(p, 0);
	return 0;
}

/* NIfTI (x fastest) <-> engine [D, H, W]: with xyz, D = x and W = z */
static void
to_engine(float *dst, const float *src, const int64_t d[3], int xyz)
{
	int64_t nx = d[0], ny = d[1], nz = d[2];
	if (!xyz) {
		memcpy(dst, src, (size_t)(nx * ny * nz) * sizeof *dst);
		return;
	}
	for (int64_t x = 0; x < nx; x++)
		for (int64_t y = 0; y < ny; y++)
			for (int64_t z = 0; z < nz; z++)
				dst[(x * ny + y) * nz + z] = src[x + nx * (y + ny * z)];
}

static void
from_engine(void *dst, const void *src, int esize, const int64_t d[3], int xyz)
{
	int64_t nx = d[0], ny = d[1], nz = d[2];
	if (!xyz) {
		memcpy(dst, src, (size_t)(nx * ny * nz) * (size_t)esize);
		return;
	}
	for (int64_t x = 0; x < nx; x++)
		for (int64_t y = 0; y < ny; y++)
			for (int64_t z = 0; z < nz; z++)
				memcpy((char *)dst + (x + nx * (y + ny * z)) * esize,
				       (const char *)src + ((x * ny + y) * nz + z) * esize,
				       (size_t)esize);
}

/* read the channels of a case into image [C, D, H, W] (engine order); geometry in *g */
static int
load_case(const Case *c, const Eng *en, int xyz, RtVolume *g, float **image, int64_t shape[3],
          char *err, size_t len)
{
	int64_t C = en->in.shape[1], V, have = 0;
	RtVolume v;
	char why[256] = "";
	*image = NULL;
	memset(g, 0, sizeof *g);
	for (int i = 0; i < c->nch; i++) {
		if (rt_nifti_read(c->paths[i], &v, err, len) != SEGC_OK)
			goto fail;
		if (i == 0) {
			*g = v;
			v.data = NULL;
			V = g->dim[0] * g->dim[1] * g->dim[2];
			int64_t nt = c->nch == 1 ? g->dim[3] : c->nch;
			if (nt != C) {
				snprintf(err, len,
				         "%s: %lld channel(s), the engine's input '%s' has %lld",
				         c->paths[0], (long long)nt, en->in.name, (long long)C);
				goto fail;
			}
			*image = malloc((size_t)(C * V) * sizeof **image);
			if (!*image) {
				snprintf(err, len, "%s: out of memory", c->paths[0]);
				goto fail;
			}
			for (int64_t t = 0; t < g->dim[3] && t < C; t++)
				to_engine(*image + t * V, g->data + t * V, g->dim, xyz);
			have = g->dim[3];
			free(g->data);
			g->data = NULL;
			continue;
		}
		if (v.dim[3] != 1)
			snprintf(err, len, "%s: a 4-D image; give one 3-D image per channel",
			         c->paths[i]);
		else if (rt_nifti_same_grid(g, &v, why, sizeof why) != 0)
			snprintf(err, len, "%s: %s (as %s)", c->paths[i], why, c->paths[0]);
		if (v.dim[3] != 1 || why[0]) {
			rt_volume_free(&v);
			goto fail;
		}
		to_engine(*image + have * V, v.data, v.dim, xyz);
		have++;
		rt_volume_free(&v);
	}
	shape[0] = xyz ? g->dim[0] : g->dim[2];
	shape[1] = g->dim[1];
	shape[2] = xyz ? g->dim[2] : g->dim[0];
	return 0;
fail:
	free(*image);
	*image = NULL;
	rt_volume_free(g);
	return -1;
}

/* segment one case and write c->out; -1 with err on failure */
static int
run_case(const Case *c, Eng *en, const CaseArgs *a, Progress *pr, char *err, size_t len)
{
	RtVolume g;
	float *image, *scores = NULL;
	int32_t *labels = NULL;
	void *outbuf = NULL;
	int64_t shape[3], K = en->out.shape[1], V;
	int rc = -1, vox;
	char desc[80];
	segc_window_options wo = a->wo;

	if (load_case(c, en, a->xyz, &g, &image, shape, err, len) < 0)
		return -1;
	V = shape[0] * shape[1] * shape[2];
	scores = malloc((size_t)(K * V) * sizeof *scores);
	labels = malloc((size_t)V * sizeof *labels);
	outbuf = malloc((size_t)(K * V) * sizeof(float));
	if (!scores || !labels || !outbuf) {
		snprintf(err, len, "%s: out of memory", c->name);
		goto done;
	}
	wo.progress = on_progress;
	wo.user = pr;
	pr->name = c->name;
	if (en->api->window_run(en->e, &wo, image, shape, scores) != SEGC_OK) {
		snprintf(err, len, "%s", en->api->last_error(en->e));
		goto done;
	}
	segc_post_options po = {
	    sizeof po,   a->activation, (int32_t)K,   a->nlabels ? a->labels : NULL,
	    a->nregions, a->reg_ch,     a->reg_label, a->reg_thr};
	if (en->api->postprocess(en->e, &po, scores, V, a->save_probs ? NULL : labels) != SEGC_OK) {
		snprintf(err, len, "%s", en->api->last_error(en->e));
		goto done;
	}
	snprintf(desc, sizeof desc, "segc axes=%s %s", a->xyz ? "xyz" : "zyx",
	         a->save_probs ? "probabilities" : "labels");
	if (a->save_probs) {
		for (int64_t k = 0; k < K; k++)
			from_engine((float *)outbuf + k * V, scores + k * V, 4, g.dim, a->xyz);
		vox = RT_VOX_F32;
	} else {
		int32_t lo = 0, hi = 0;
		for (int64_t v = 0; v < V; v++) {
			lo = labels[v] < lo ? labels[v] : lo;
			hi = labels[v] > hi ? labels[v] : hi;
		}
		vox = lo >= 0 && hi <= 255 ? RT_VOX_U8 : RT_VOX_I16;
		for (int64_t v = 0; v < V; v++) {
			if (vox == RT_VOX_U8)
				((uint8_t *)scores)[v] = (uint8_t)labels[v];
			else
				((int16_t *)scores)[v] = (int16_t)labels[v];
		}
		from_engine(outbuf, scores, vox == RT_VOX_U8 ? 1 : 2, g.dim, a->xyz);
	}
	if (rt_nifti_write(c->out, &g, a->save_probs ? K : 1, vox, outbuf, !a->save_probs, desc,
	                   err, len) != SEGC_OK)
		goto done;
	rc = 0;
done:
	free(outbuf);
	free(labels);
	free(scores);
	free(image);
	rt_volume_free(&g);
	return rc;
}

/* --sliding-window over a .npy [C, D, H, W] (or [1, C, D, H, W]): raw or post-processed */
static int
run_npy(Eng *en, const CaseArgs *a)
{
	RtNpy x;
	char err[ERRLEN];
	int64_t shape[3], K = en->out.shape[1], V, oshape[4];
	if (rt_npy_read(a->input, &x, err, sizeof err) != SEGC_OK)
		tool_die("%s", err);
	int off = x.rank == 5 && x.shape[0] == 1;
	if (x.dtype != RT_NPY_F32 || x.rank - off != 4 || x.shape[off] != en->in.shape[1])
		tool_die("%s: expected f32 [%lld, D, H, W]", a->input, (long long)en->in.shape[1]);
	memcpy(shape, x.shape + off + 1, sizeof shape);
	V = shape[0] * shape[1] * shape[2];
	float *out = malloc((size_t)(K * V) * sizeof *out);
	int32_t *lab = malloc((size_t)V * sizeof *lab);
	if (!out || !lab)
		tool_die("out of memory");
	Progress pr = {a->progress, tool_now(), 0, 1, 0, 0, 0, a->input};
	segc_window_options wo = a->wo;
	wo.progress = on_progress;
	wo.user = &pr;
	if (en->api->window_run(en->e, &wo, x.data, shape, out) != SEGC_OK)
		tool_die("%s", en->api->last_error(en->e));
	draw(&pr, 1);
	oshape[0] = K;
	memcpy(oshape + 1, shape, sizeof shape);
	if (a->act_set || a->save_probs || a->nlabels) {
		segc_post_options po = {
		    sizeof po,   a->activation, (int32_t)K,   a->nlabels ? a->labels : NULL,
		    a->nregions, a->reg_ch,     a->reg_label, a->reg_thr};
		if (en->api->postprocess(en->e, &po, out, V, a->save_probs ? NULL : lab))
			tool_die("%s", en->api->last_error(en->e));
		if (!a->save_probs) {
			if (rt_npy_write(a->output, RT_NPY_I32, 3, shape, lab, err, sizeof err))
				tool_die("%s", err);
			goto done;
		}
	}
	if (rt_npy_write(a->output, RT_NPY_F32, 4, oshape, out, err, sizeof err) != SEGC_OK)
		tool_die("%s", err);
done:
	free(out);
	free(lab);
	rt_npy_free(&x);
	return 0;
}

/* ---- batches ---- */

static int
cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static int
cmp_case(const void *x, const void *y)
{
	return strcmp(((const Case *)x)->name, ((const Case *)y)->name);
}

/* strip .nii / .nii.gz; *ch = the channel of an nnU-Net name CASE_0003, else -1 */
static char *
case_name(const char *file, int *ch)
{
	size_t n = strlen(file) - (tool_ends_with(file, ".gz") ? 7 : 4);
	char *s = strndup(file, n);
	*ch = -1;
	if (n > 5 && s[n - 5] == '_' && strspn(s + n - 4, "0123456789") == 4) {
		*ch = atoi(s + n - 4);
		s[n - 5] = 0;
	}
	return s;
}

/* the cases of a directory, sorted by name; nnU-Net channel files grouped */
static Case *
find_cases(const char *dir, int *ncases)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **files = NULL;
	int nf = 0, cap = 0, n = 0;
	Case *cs;
	if (!d)
		tool_die("cannot open --input-dir %s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !is_nifti(de->d_name))
			continue;
		if (nf == cap) {
			cap = cap ? 2 * cap : 64;
			files = realloc(files, (size_t)cap * sizeof *files);
		}
		files[nf++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(files, (size_t)nf, sizeof *files, cmp_str);
	cs = calloc((size_t)nf + 1, sizeof *cs);
	for (int i = 0; i < nf; i++) {
		int ch;
		char *name = case_name(files[i], &ch), path[PATH_MAX];
		Case *c = n > 0 && !strcmp(cs[n - 1].name, name) ? &cs[n - 1] : &cs[n++];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (c->name)
			free(name);
		else
			c->name = name;
		if (ch < 0 && c->nch > 0)
			tool_die("%s: both %s and channel files of case '%s'", dir, files[i],
			         c->name);
		if (ch >= MAXCH || (ch >= 0 && ch != c->nch))
			tool_die("%s: channel files of case '%s' must be numbered _0000 .. _%04d "
			         "without "
			         "gaps; found %s",
			         dir, c->name, MAXCH - 1, files[i]);
		c->paths[c->nch++] = strdup(path);
		free(files[i]);
	}
	free(files);
	qsort(cs, (size_t)n, sizeof *cs, cmp_case);
	*ncases = n;
	return cs;
}

/* crc32 of a file's bytes; -1 when it cannot be read */
static int64_t
file_crc(const char *path, int64_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char buf[1 << 16];
	uLong crc = crc32(0, Z_NULL, 0);
	size_t r;
	*size = 0;
	if (!f)
		return -1;
	while ((r = fread(buf, 1, sizeof buf, f)) > 0) {
		crc = crc32(crc, buf, (uInt)r);
		*size += (int64_t)r;
	}
	int bad = ferror(f);
	fclose(f);
	return bad ? -1 : (int64_t)crc;
}

/* what makes outputs differ: the engine and weights bytes, the options */
static void
config_key(const CaseArgs *a, char *key, size_t len)
{
	int64_t s1, s2;
	int64_t c1 = file_crc(a->engine, &s1), c2 = a->weights ? file_crc(a->weights, &s2) : 0;
	snprintf(key, len, "%08llx-%08llx-%08lx", (long long)c1 & 0xffffffff,
	         (long long)c2 & 0xffffffff,
	         (unsigned long)crc32(0, (const Bytef *)a->optstr, (uInt)strlen(a->optstr)));
}

typedef struct {
	char *name;
	int64_t size, crc;
} JEntry;

/* the journal's finished cases, if it was written for the same configuration */
static JEntry *
journal_load(const char *path, const char *key, int *n)
{
	FILE *f = fopen(path, "r");
	char line[PATH_MAX + 128], name[PATH_MAX], k[128];
	JEntry *e = NULL;
	int cap = 0;
	long long size, crc;
	*n = 0;
	if (!f)
		return NULL;
	if (!fgets(line, sizeof line, f) || sscanf(line, "segc-journal 1 %127s", k) != 1 ||
	    strcmp(k, key)) {
		fclose(f);
		fprintf(stderr,
		        "segc: %s was written for another engine, weights or options: "
		        "starting over\n",
		        path);
		return NULL;
	}
	while (fgets(line, sizeof line, f)) {
		/* a line cut by a crash has no newline: ignore it */
		if (!strchr(line, '\n') ||
		    sscanf(line, "done %4095s %lld %llx", name, &size, &crc) != 3)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			e = realloc(e, (size_t)cap * sizeof *e);
		}
		e[*n].name = strdup(name);
		e[*n].size = size;
		e[(*n)++].crc = crc;
	}
	fclose(f);
	return e;
}

/* remove temporary files a killed run left for the outputs of these cases */
static void
clean_temps(const char *dir, const Case *cs, int n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];
	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *s = de->d_name, *t = strstr(s, ".tmp");
		if (s[0] != '.' || !t || !is_nifti(s))
			continue;
		for (int i = 0; i < n; i++) {
			const char *base = strrchr(cs[i].out, '/') + 1;
			if ((size_t)(t - s - 1) == strlen(base) &&
			    !strncmp(s + 1, base, strlen(base))) {
				snprintf(path, sizeof path, "%s/%s", dir, s);
				unlink(path);
			}
		}
	}
	closedir(d);
}

static int
run_batch(Eng *en, const CaseArgs *a)
{
	int n, nsel = 0, ndone = 0, nresumed = 0, nfailed = 0, nj = 0;
	Case *cs = find_cases(a->input_dir, &n), *sel;
	char jpath[PATH_MAX], key[128], err[ERRLEN];
	JEntry *je;
	FILE *jf;

	if (n == 0)
		tool_die("%s: no .nii or .nii.gz cases", a->input_dir);
	if (mkdir(a->output_dir, 0777) != 0 && errno != EEXIST)
		tool_die("cannot create --output-dir %s: %s", a->output_dir, strerror(errno));
	sel = calloc((size_t)n, sizeof *sel);
	for (int i = 0; i < n; i++)
		if (!a->shard_n || i % a->shard_n == a->shard_i) {
			sel[nsel] = cs[i];
			snprintf(sel[nsel].out, sizeof sel[nsel].out, "%s/%s%s", a->output_dir,
			         cs[i].name, a->ext);
			nsel++;
		}
	if (a->shard_n)
		snprintf(jpath, sizeof jpath, "%s/.segc-journal-%d-of-%d", a->output_dir,
		         a->shard_i, a->shard_n);
	else
		snprintf(jpath, sizeof jpath, "%s/.segc-journal", a->output_dir);
	config_key(a, key, sizeof key);
	je = journal_load(jpath, key, &nj);
	clean_temps(a->output_dir, sel, nsel);
	/* rewrite the journal with the entries that still hold, then append */
	char jtmp[PATH_MAX + 8];
	snprintf(jtmp, sizeof jtmp, "%s.new", jpath);
	jf = fopen(jtmp, "w");
	if (!jf)
		tool_die("cannot write the journal %s: %s", jtmp, strerror(errno));
	fprintf(jf, "segc-journal 1 %s\n", key);
	Progress pr = {a->progress, tool_now(), 0, nsel, 0, 0, 0, NULL};
	char *skip = calloc((size_t)nsel + 1, 1);
	for (int i = 0; i < nsel; i++)
		for (int j = 0; j < nj; j++) {
			int64_t size, crc;
			if (strcmp(je[j].name, sel[i].name))
				continue;
			crc = file_crc(sel[i].out, &size);
			if (crc == je[j].crc && size == je[j].size) {
				skip[i] = 1;
				fprintf(jf, "done %s %lld %llx\n", sel[i].name, (long long)size,
				        (long long)crc);
			}
		}
	if (fflush(jf) != 0 || fsync(fileno(jf)) != 0 || rename(jtmp, jpath) != 0)
		tool_die("cannot write the journal %s: %s", jpath, strerror(errno));
	for (int i = 0; i < nsel; i++) {
		Case *c = &sel[i];
		pr.idx = i;
		pr.done = pr.total = 0;
		if (skip[i]) {
			nresumed++;
			if (!pr.on)
				fprintf(stderr, "segc: %s: done in an earlier run (journal)\n",
				        c->name);
			continue;
		}
		double t0 = tool_now();
		if (run_case(c, en, a, &pr, err, sizeof err) < 0) {
			if (pr.on)
				fputc('\n', stderr);
			fprintf(stderr, "segc: case %s: error: %s\n", c->name, err);
			nfailed++;
			continue;
		}
		int64_t size, crc = file_crc(c->out, &size);
		fprintf(jf, "done %s %lld %llx\n", c->name, (long long)size, (long long)crc);
		if (fflush(jf) != 0 || fsync(fileno(jf)) != 0)
			tool_die("cannot write the journal %s: %s", jpath, strerror(errno));
		ndone++;
		if (!pr.on)
			fprintf(stderr, "segc: %s -> %s (%.2f s)\n", c->name, c->out,
			        tool_now() - t0);
	}
	pr.idx = nsel - 1;
	pr.name = "";
	draw(&pr, 1);
	fclose(jf);
	fprintf(stderr, "segc: %d case(s)%s: %d segmented, %d done earlier, %d failed (%.1f s)\n",
	        nsel, a->shard_n ? " in this shard" : "", ndone, nresumed, nfailed,
	        tool_now() - pr.t0);
	for (int j = 0; j < nj; j++)
		free(je[j].name);
	free(je);
	free(skip);
	free(sel);
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < cs[i].nch; k++)
			free(cs[i].paths[k]);
		free((char *)cs[i].name);
	}
	free(cs);
	return nfailed ? 1 : 0;
}

int
cases_run(int argc, char **argv)
{
	CaseArgs a;
	Eng en = {0};
	int rc;

	parse_case_args(argc, argv, &a, &en);
	open_engine(&en, &a);
	graph_post(&en, &a);
	snprintf(a.optstr, sizeof a.optstr,
	         "axes=%d ov=%.6g bl=%d sg=%.6g pos=%d mir=%u norm=%d act=%d save=%d nl=%d nr=%d "
	         "ext=%s",
	         a.xyz, a.wo.overlap, a.wo.blend, a.wo.sigma_scale, a.wo.positions,
	         a.wo.mirror_axes, a.wo.normalize, a.activation, a.save_probs, a.nlabels,
	         a.nregions, a.ext);
	for (int i = 0; i < a.nlabels; i++)
		snprintf(a.optstr + strlen(a.optstr), sizeof a.optstr - strlen(a.optstr), ",%d",
		         a.labels[i]);
	for (int r = 0; r < a.nregions; r++)
		snprintf(a.optstr + strlen(a.optstr), sizeof a.optstr - strlen(a.optstr),
		         " %d:%d:%g", a.reg_ch[r], a.reg_label[r], a.reg_thr[r]);
	if (a.sliding_npy || (a.input && tool_ends_with(a.input, ".npy"))) {
		rc = run_npy(&en, &a);
	} else if (a.input_dir) {
		rc = run_batch(&en, &a);
	} else {
		Case c = {a.output, {0}, 0, ""};
		char *s = strdup(a.input), *save = NULL, err[ERRLEN];
		for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (c.nch >= MAXCH)
				tool_usage("segc run", "run: at most %d channel files", MAXCH);
			c.paths[c.nch++] = t;
		}
		snprintf(c.out, sizeof c.out, "%s", a.output);
		Progress pr = {a.progress, tool_now(), 0, 1, 0, 0, 0, NULL};
		if (run_case(&c, &en, &a, &pr, err, sizeof err) < 0)
			tool_die("%s", err);
		draw(&pr, 1);
		fprintf(stderr, "segc: wrote %s (%.2f s)\n", a.output, tool_now() - pr.t0);
		free(s);
		rc = 0;
	}
	en.api->close(en.e);
	dlclose(en.so);
	return rc;
}
