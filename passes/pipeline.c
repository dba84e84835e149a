/* passes/pipeline.c -- the pass manager: the default pipeline, dumps, verification, timing.
 *
 * The table is generated from passes/passes.def, so the order there is the order here.
 * Each pass runs with a fresh scratch arena, freed when it returns.  After a pass:
 *   --verify-each  ir_verify(); a failure is an internal error that names the pass;
 *   --time-passes  one line per pass on stderr: "   0.12 ms  fuse";
 *   --dump-after   ir_print() output after "; after <pass>" (" (unchanged)" if it changed
 *                  nothing), to opt->dump or stderr, for one pass name or "all".
 * Adding a pass: one file passes/<name>.c, one line in passes.def, tests/golden/<name>/. */
#include "pass.h"

#include <string.h>
#include <time.h>

static const Pass passes[] = {
#define PASS(name, what) {#name, pass_##name, what},
#include "passes.def"
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const Pass *
find_pass(const char *name)
{
	for (size_t i = 0; i < countof(passes); i++)
		if (!strcmp(passes[i].name, name))
			return &passes[i];
	return NULL;
}

/* "infer, canon, ..." into buf, for messages that list the valid names */
static const char *
pass_names(char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = 0;
	for (size_t i = 0; i < countof(passes) && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", passes[i].name);
	return buf;
}

static int
check_dump_name(const PassOptions *o, Diag *d)
{
	char names[256];

	if (!o->dump_after || !strcmp(o->dump_after, "all") || find_pass(o->dump_after))
		return 0;
	return diag_error(d, loc_none, "unknown pass '%s' for --dump-after, expected all, %s",
	                  o->dump_after, pass_names(names, sizeof names));
}

static int
run_pass(Module *m, const Pass *p, const PassOptions *o, Diag *d)
{
	PassCtx cx = {.diag = d, .opt = o, .scratch = arena_new(), .changed = 0};
	double t0 = now();
	int rc = p->run(m, &cx);

	arena_free(cx.scratch);
	if (rc < 0)
		return -1;
	if (o->verify_each && ir_verify(m, d) < 0) /* QBE: ssacheck() between passes */
		diag_internal(__FILE__, __LINE__, "IR invalid after pass '%s': %s", p->name,
		              d->first);
	if (o->time_passes)
		fprintf(stderr, "%8.2f ms  %s\n", 1e3 * (now() - t0), p->name);
	if (o->dump_after && (!strcmp(o->dump_after, "all") || !strcmp(o->dump_after, p->name)))
		pass_dump(m, o->dump ? o->dump : stderr, p->name, cx.changed);
	return 0;
}

/* Run the default pipeline (passes.def order).  Returns 0, or -1 after diagnostics
 * (an unknown --dump-after name is reported before any pass runs). */
int
pass_run_pipeline(Module *m, const PassOptions *o, Diag *d)
{
	if (check_dump_name(o, d) < 0)
		return -1;
	for (size_t i = 0; i < countof(passes); i++)
		if (run_pass(m, &passes[i], o, d) < 0)
			return -1;
	return 0;
}

/* Run one named pass with the same verification, timing and dumping as the pipeline.
 * Returns -1 with a diagnostic listing the pass names if the name is unknown. */
int
pass_run_one(Module *m, const char *name, const PassOptions *o, Diag *d)
{
	char names[256];
	const Pass *p = find_pass(name);

	if (!p)
		return diag_error(d, loc_none, "unknown pass '%s', expected one of %s", name,
		                  pass_names(names, sizeof names));
	if (check_dump_name(o, d) < 0)
		return -1;
	return run_pass(m, p, o, d);
}

/* The default pipeline in order; *n receives its length.  The table is static. */
const Pass *
pass_list(int *n)
{
	*n = (int)countof(passes);
	return passes;
}

void
pass_dump(const Module *m, FILE *f, const char *pass, int changed)
{
	fprintf(f, "; after %s%s\n", pass, changed ? "" : " (unchanged)");
	ir_print(m, f);
	fflush(f);
}

/* After a pass appended replacement nodes: put the nodes appended for node i (indices
 * span[i][0] .. span[i][1]) right before it, the ones from tail on at the end, drop dead
 * nodes and renumber the definitions (the node array stays in topological order). */
void
pass_place(Module *m, uint32_t norig, const uint32_t (*span)[2], uint32_t tail)
{
	uint32_t cap = m->nnodes, k = 0;
	Node *nodes = arena_alloc(m->arena, (size_t)cap * sizeof *nodes);

	for (uint32_t i = 0; i < norig; i++) {
		for (uint32_t j = span[i][0]; j < span[i][1]; j++)
			nodes[k++] = m->nodes[j];
		if (!m->nodes[i].dead)
			nodes[k++] = m->nodes[i];
	}
	for (uint32_t j = tail; j < m->nnodes; j++)
		nodes[k++] = m->nodes[j];
	m->nodes = nodes;
	m->nnodes = k;
	m->capnodes = cap;
	for (uint32_t i = 0; i < k; i++)
		for (int j = 0; j < nodes[i].nout; j++)
			m->values[nodes[i].out[j]].def = i;
}
