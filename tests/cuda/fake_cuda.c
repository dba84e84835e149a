/* tests/cuda/fake_cuda.c -- a stand-in libcuda.so.1 that runs a CUDA engine on the host, so that
 * runtime/cuda.c (driver calls, device memory, staging copies, kernel parameter packing, the
 * launch loop, CUDA graphs) is tested without a GPU (tests/cuda/fake_run.py).
 *
 * "Device memory" is host memory (cuMemAlloc = malloc, every allocation tracked); the cubin is
 * ignored and the kernels come from the emulation library that tests/cuda/segc_cuda.py builds
 * from the same generated CUDA C ($SEGC_FAKE_CUDA_EMU, an ENGINE.emu.so; unset: the engine's
 * own, found at cuModuleLoadData from where the cubin lives, so that one process may open
 * several engines, each module with its own emulation and schedule).  The launch schedule
 * ($SEGC_FAKE_CUDA_SCHED, the ENGINE.emu.txt) gives each kernel's parameter count, and every
 * kernel run is checked against its schedule line (the "launch" lines in a cycle, the "pack"
 * lines of the prepack kernels in theirs): same kernel, grid, block and trip count `n`
 * (read through the kernel parameter array as a real driver does), the dynamic shared memory
 * of its "smem=" field (0 without; over 48 KiB only after cuFuncSetAttribute raised the
 * function's limit to it, within the device's $SEGC_FAKE_CUDA_SMEM_OPTIN, default 232448 as
 * an H100), every buffer pointer inside one live allocation at the time the kernel runs.  A mismatch fails with
 * CUDA_ERROR_ILLEGAL_ADDRESS and a line on stderr.  Each kernel runs the real grid: every block
 * and thread, in reverse order.
 *
 * Graphs as the real driver has them: cuGraphAddKernelNode copies the parameter VALUES (a
 * runtime that changes its pointer arrays afterwards without cuGraphExecKernelNodeSetParams
 * runs stale pointers), an instantiated graph is a snapshot, each node must depend on exactly
 * the node added before it (the runtime's chain; nodes run in that order at cuGraphLaunch).
 * Events (cuEventRecord: the host clock, kernels having run at their launch) for SEGC_PROFILE.
 * Built with -DFAKE_NO_GRAPHS the library lacks every cuGraph* and cuEvent* symbol (an old
 * driver).
 * Test hooks: segc_fake_cuda_stats() (counters, below); $SEGC_FAKE_CUDA_FAIL = "instantiate"
 * (cuGraphInstantiateWithFlags fails, not sticky) or "kernel:K" (the K-th kernel run, from 1,
 * faults: reported, as on a GPU, by the next synchronisation, and sticky: every call after it
 * fails the same way). */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ILLEGAL_ADDRESS = 700, INVALID_VALUE = 1, MAXARGS = 64, MAXALLOC = 4096 };

/* counters read by fake_run.py through segc_fake_cuda_stats */
enum {
	ST_LAUNCH,       /* cuLaunchKernel calls */
	ST_GRAPH_LAUNCH, /* cuGraphLaunch calls */
	ST_KERNELS,      /* kernels run (plain or graph nodes) */
	ST_INSTANTIATE,  /* graphs instantiated */
	ST_SETPARAMS,    /* cuGraphExecKernelNodeSetParams calls */
	ST_NODES,        /* kernel nodes added */
	ST_EVENTS,       /* events recorded */
	ST_COUNT
};

typedef struct {
	void (*fn)(void);
	const void *mod; /* its Mod */
	char name[256];
	int nbufs;
	int maxdyn; /* cuFuncSetAttribute's MAX_DYNAMIC_SHARED_SIZE_BYTES (default 48 KiB) */
} Func;

typedef struct {
	char name[256];
	long long n, grid, block;
	int nbufs;
	unsigned smem; /* the "smem=" field */
} Line;

/* the optional " smem=BYTES" after a schedule line's buffers */
static unsigned
line_smem(const char *buf)
{
	const char *s = strstr(buf, " smem=");
	return s ? (unsigned)strtoul(s + 6, NULL, 10) : 0;
}

static int
smem_optin(void)
{
	const char *e = getenv("SEGC_FAKE_CUDA_SMEM_OPTIN");
	return e && *e ? atoi(e) : 232448;
}

/* a loaded module: one engine's emulation library and schedule */
typedef struct {
	void *emu;
	void (*set)(unsigned, unsigned, unsigned, unsigned);
	Line *lines;
	int nlines, next;
	Line *packs; /* the schedule's "pack" lines (load_weights), their own cycle */
	int npacks, pnext;
} Mod;

enum { MAXMOD = 64 };

static struct {
	Mod mods[MAXMOD]; /* one per cuModuleLoadData (engines of one process) */
	int nmods;
	struct {
		char *p;
		size_t n;
	} alloc[MAXALLOC];
	long long stats[ST_COUNT];
	long long fail_kernel; /* $SEGC_FAKE_CUDA_FAIL=kernel:K */
	int fail_instantiate;
	int pending; /* an error the next synchronisation reports */
	int lost;    /* a sticky error: every call fails with it */
} F;

void
segc_fake_cuda_stats(long long *out)
{
	memcpy(out, F.stats, sizeof F.stats);
}

typedef void (*Kfn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

static int
fail(const char *msg, const char *arg)
{
	fprintf(stderr, "fake libcuda: %s%s\n", msg, arg ? arg : "");
	return ILLEGAL_ADDRESS;
}

/* the emulation library and the schedule into m; 0, or an error */
static int
load_emu(Mod *m, const char *emu, const char *sched)
{
	char buf[1 << 16];
	FILE *f;
	if (!emu || !sched || !(f = fopen(sched, "r")))
		return fail("no launch schedule: set SEGC_FAKE_CUDA_EMU and SEGC_FAKE_CUDA_SCHED, or "
		            "keep ENGINE.so.emu.so and .emu.txt next to the engine: ",
		            sched ? sched : "");
	m->emu = dlopen(emu, RTLD_NOW | RTLD_LOCAL);
	if (!m->emu) {
		fclose(f);
		return fail("cannot open the emulation library: ", dlerror());
	}
	*(void **)&m->set = dlsym(m->emu, "segc_emu_set");
	while (fgets(buf, sizeof buf, f)) {
		Line l;
		l.smem = line_smem(buf);
		if (sscanf(buf, "launch %255s %lld %lld %lld %d", l.name, &l.n, &l.grid, &l.block,
		           &l.nbufs) == 5) {
			m->lines = realloc(m->lines, (size_t)(m->nlines + 1) * sizeof *m->lines);
			m->lines[m->nlines++] = l;
		} else if (sscanf(buf, "pack %255s %lld %lld %lld %d", l.name, &l.n, &l.grid,
		                  &l.block, &l.nbufs) == 5) {
			m->packs = realloc(m->packs, (size_t)(m->npacks + 1) * sizeof *m->packs);
			m->packs[m->npacks++] = l;
		}
	}
	fclose(f);
	return m->set && m->nlines > 0 ? 0 : fail("no launches in the schedule", NULL);
}

int
cuInit(unsigned flags)
{
	(void)flags;
	const char *fl = getenv("SEGC_FAKE_CUDA_FAIL");
	if (fl && !strcmp(fl, "instantiate"))
		F.fail_instantiate = 1;
	else if (fl && *fl && sscanf(fl, "kernel:%lld", &F.fail_kernel) != 1)
		return fail("bad SEGC_FAKE_CUDA_FAIL: ", fl);
	return 0; /* the emulation: at cuModuleLoadData */
}

int
cuDeviceGetCount(int *n)
{
	*n = 1;
	return 0;
}

int
cuDeviceGet(int *d, int i)
{
	*d = i;
	return i == 0 ? 0 : INVALID_VALUE;
}

int
cuDeviceGetAttribute(int *v, int attr, int d)
{
	(void)d;
	*v = attr == 75 ? 9 : attr == 97 ? smem_optin() : 0; /* compute capability 9.0 */
	return 0;
}

int
cuDeviceGetName(char *s, int len, int d)
{
	(void)d;
	snprintf(s, (size_t)len, "segc fake GPU");
	return 0;
}

int
cuDevicePrimaryCtxRetain(void **ctx, int d)
{
	(void)d;
	*ctx = &F;
	return 0;
}

int
cuDevicePrimaryCtxRelease_v2(int d)
{
	(void)d;
	return 0;
}

int
cuCtxPushCurrent_v2(void *ctx)
{
	(void)ctx;
	return 0;
}

int
cuCtxPopCurrent_v2(void **ctx)
{
	*ctx = &F;
	return 0;
}

int
cuModuleLoadData(void **mod, const void *image)
{
	Dl_info info;
	char emu[4096], sched[4096];
	if (F.nmods >= MAXMOD)
		return fail("too many modules", NULL);
	Mod *m = &F.mods[F.nmods];
	memset(m, 0, sizeof *m);
	*mod = m;
	/* $SEGC_FAKE_CUDA_EMU and _SCHED, else ENGINE.so.emu.so and .emu.txt beside the engine
	 * whose cubin this is */
	if (getenv("SEGC_FAKE_CUDA_EMU")) {
		snprintf(emu, sizeof emu, "%s", getenv("SEGC_FAKE_CUDA_EMU"));
		snprintf(sched, sizeof sched, "%s",
		         getenv("SEGC_FAKE_CUDA_SCHED") ? getenv("SEGC_FAKE_CUDA_SCHED") : "");
	} else if (!dladdr(image, &info) || !info.dli_fname) {
		return fail("cannot tell which engine holds the cubin", NULL);
	} else {
		snprintf(emu, sizeof emu, "%s.emu.so", info.dli_fname);
		snprintf(sched, sizeof sched, "%s.emu.txt", info.dli_fname);
	}
	int rc = load_emu(m, emu, sched);
	F.nmods += rc == 0;
	return rc;
}

int
cuModuleUnload(void *mod)
{
	(void)mod;
	return 0;
}

int
cuModuleGetFunction(void **out, void *mod, const char *name)
{
	Func *fn = calloc(1, sizeof *fn);
	Mod *m = mod;
	*(void **)&fn->fn = dlsym(m->emu, name);
	fn->mod = m;
	snprintf(fn->name, sizeof fn->name, "%s", name);
	fn->nbufs = -1;
	fn->maxdyn = 48 * 1024;
	for (int i = 0; i < m->nlines + m->npacks; i++) {
		const Line *l = i < m->nlines ? &m->lines[i] : &m->packs[i - m->nlines];
		if (!strcmp(l->name, name))
			fn->nbufs = l->nbufs;
	}
	if (!fn->fn || fn->nbufs < 0 || fn->nbufs >= MAXARGS) {
		free(fn);
		return fail("no kernel ", name);
	}
	*out = fn; /* leaked: a test process */
	return 0;
}

/* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8) only, within the device's opt-in */
int
cuFuncSetAttribute(void *f, int attr, int v)
{
	Func *fn = f;
	if (F.lost)
		return F.lost;
	if (attr != 8 || v < 0 || v > smem_optin())
		return INVALID_VALUE;
	fn->maxdyn = v;
	return 0;
}

int
cuMemAlloc_v2(uint64_t *p, size_t n)
{
	for (int i = 0; i < MAXALLOC; i++)
		if (!F.alloc[i].p) {
			F.alloc[i].p = calloc(1, n);
			F.alloc[i].n = n;
			*p = (uint64_t)(uintptr_t)F.alloc[i].p;
			return F.alloc[i].p ? 0 : 2; /* CUDA_ERROR_OUT_OF_MEMORY */
		}
	return 2;
}

int
cuMemFree_v2(uint64_t p)
{
	for (int i = 0; i < MAXALLOC; i++)
		if (F.alloc[i].p && (uint64_t)(uintptr_t)F.alloc[i].p == p) {
			/* poisoned and never reused (a test process): a pointer kept past its
			 * cuMemFree is outside device memory for good, and a new allocation
			 * always moves, as it may on a GPU */
			memset(F.alloc[i].p, 0xa5, F.alloc[i].n);
			F.alloc[i].p = NULL;
			return 0;
		}
	return fail("cuMemFree of an address that was not allocated", NULL);
}

/* bytes of device memory from p to the end of its allocation; 0 if p is in none */
static size_t
room(uint64_t p)
{
	for (int i = 0; i < MAXALLOC; i++) {
		uint64_t a = (uint64_t)(uintptr_t)F.alloc[i].p;
		if (F.alloc[i].p && p >= a && p < a + F.alloc[i].n)
			return (size_t)(a + F.alloc[i].n - p);
	}
	return 0;
}

int
cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t n, void *s)
{
	(void)s;
	if (F.lost)
		return F.lost;
	if (room(dst) < n)
		return fail("cuMemcpyHtoD past the end of a device allocation", NULL);
	memcpy((void *)(uintptr_t)dst, src, n);
	return 0;
}

int
cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t n, void *s)
{
	(void)s;
	if (F.lost)
		return F.lost;
	if (room(src) < n)
		return fail("cuMemcpyDtoH past the end of a device allocation", NULL);
	memcpy(dst, (void *)(uintptr_t)src, n);
	return 0;
}

int
cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t n)
{
	return cuMemcpyHtoDAsync_v2(dst, src, n, NULL);
}

int
cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t n)
{
	return cuMemcpyDtoHAsync_v2(dst, src, n, NULL);
}

int
cuMemsetD8_v2(uint64_t dst, unsigned char v, size_t n)
{
	if (F.lost)
		return F.lost;
	if (room(dst) < n)
		return fail("cuMemsetD8 past the end of a device allocation", NULL);
	memset((void *)(uintptr_t)dst, v, n);
	return 0;
}

int
cuStreamCreate(void **s, unsigned flags)
{
	(void)flags;
	*s = &F;
	return 0;
}

int
cuStreamDestroy_v2(void *s)
{
	(void)s;
	return 0;
}

int
cuStreamSynchronize(void *s)
{
	(void)s;
	if (F.pending) {
		F.lost = F.pending;
		F.pending = 0;
	}
	return F.lost;
}

#ifndef FAKE_NO_GRAPHS
/* events: kernels run when launched, so an event's time is the host clock when recorded */
typedef struct {
	double t;
} Event;

int
cuEventCreate(void **e, unsigned flags)
{
	(void)flags;
	*e = calloc(1, sizeof(Event));
	return *e ? 0 : 2; /* CUDA_ERROR_OUT_OF_MEMORY */
}

int
cuEventRecord(void *e, void *stream)
{
	struct timespec ts;
	(void)stream;
	if (F.lost)
		return F.lost;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	((Event *)e)->t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
	F.stats[ST_EVENTS]++;
	return 0;
}

int
cuEventElapsedTime_v2(float *ms, void *a, void *b)
{
	*ms = (float)(1e3 * (((Event *)b)->t - ((Event *)a)->t));
	return F.lost;
}

int
cuEventDestroy_v2(void *e)
{
	free(e);
	return 0;
}
#endif

/* run kernel fn <<<gx, bx>>> with the argument values a[0..nbufs-1] and trip count n, after
 * checking them against the next schedule line */
static int
run_kernel(const Func *fn, unsigned gx, unsigned bx, unsigned shmem, uint64_t *a, long long n)
{
	Mod *m = (Mod *)fn->mod;
	int pack = m->npacks > 0 && strstr(fn->name, "_pack_t") != NULL; /* prepack kernels */
	const Line *l = pack ? &m->packs[m->pnext] : &m->lines[m->next];
	char msg[1024];
	if (pack)
		m->pnext = (m->pnext + 1) % m->npacks;
	else
		m->next = (m->next + 1) % m->nlines;
	if (strcmp(fn->name, l->name) || gx != l->grid || bx != l->block) {
		snprintf(msg, sizeof msg,
		         "launch of %s <<<%u, %u>>> where the schedule says %s "
		         "<<<%lld, %lld>>>",
		         fn->name, gx, bx, l->name, l->grid, l->block);
		return fail(msg, NULL);
	}
	if (shmem != l->smem) {
		snprintf(msg, sizeof msg, "launch of %s with %u bytes of dynamic shared memory "
		         "where the schedule says %u", fn->name, shmem, l->smem);
		return fail(msg, NULL);
	}
	if ((int)shmem > fn->maxdyn) /* a real driver: CUDA_ERROR_INVALID_VALUE */
		return fail("dynamic shared memory over the function's limit (no "
		            "cuFuncSetAttribute): ", fn->name);
	for (int b = 0; b < fn->nbufs; b++)
		if (!room(a[b]))
			return fail("a buffer parameter outside device memory: ", fn->name);
	if (n != l->n) {
		snprintf(msg, sizeof msg, "%s: parameter n = %lld, the schedule says %lld",
		         fn->name, n, l->n);
		return fail(msg, NULL);
	}
	if (++F.stats[ST_KERNELS] == F.fail_kernel) {
		F.pending = ILLEGAL_ADDRESS; /* asynchronous, as on a GPU */
		return 0;
	}
	a[fn->nbufs] = (uint64_t)n;
	for (unsigned bi = gx; bi-- > 0;)
		for (unsigned ti = bx; ti-- > 0;) {
			m->set(bi, ti, gx, bx);
			((Kfn)(void (*)(void))fn->fn)(
			    a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10],
			    a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20],
			    a[21], a[22], a[23], a[24], a[25], a[26], a[27], a[28], a[29], a[30],
			    a[31], a[32], a[33], a[34], a[35], a[36], a[37], a[38], a[39], a[40],
			    a[41], a[42], a[43], a[44], a[45], a[46], a[47], a[48], a[49], a[50],
			    a[51], a[52], a[53], a[54], a[55], a[56], a[57], a[58], a[59], a[60],
			    a[61], a[62], a[63]);
		}
	return 0;
}

/* read the parameter values through the array, as the driver does at launch (and at
 * cuGraphAddKernelNode): nbufs pointers, then long long n */
static void
read_params(const Func *fn, void **params, uint64_t *a, long long *n)
{
	memset(a, 0, MAXARGS * sizeof *a);
	for (int b = 0; b < fn->nbufs; b++)
		memcpy(&a[b], params[b], sizeof a[b]);
	memcpy(n, params[fn->nbufs], sizeof *n);
}

int
cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
               unsigned bz, unsigned shmem, void *s, void **params, void **extra)
{
	const Func *fn = f;
	uint64_t a[MAXARGS];
	long long n;
	(void)s;
	if (F.lost)
		return F.lost;
	F.stats[ST_LAUNCH]++;
	if (gy != 1 || gz != 1 || by != 1 || bz != 1 || extra || !params)
		return fail("a launch that is not <<<(g,1,1), (b,1,1)>>> with kernelParams: ",
		            fn->name);
	read_params(fn, params, a, &n);
	return run_kernel(fn, gx, bx, shmem, a, n);
}

#ifndef FAKE_NO_GRAPHS
/* CUDA_KERNEL_NODE_PARAMS, v1 */
typedef struct {
	void *func;
	unsigned gx, gy, gz, bx, by, bz, shmem;
	void **params;
	void **extra;
} KernelNode;

typedef struct Node {
	const Func *fn;
	unsigned gx, bx, shmem;
	uint64_t a[MAXARGS];
	long long n;
	int index; /* in its graph */
} Node;

typedef struct {
	Node **nodes;
	int n;
} Graph;

typedef struct {
	const Graph *g; /* whose node handles SetParams takes */
	Node *nodes;    /* the snapshot, by index */
	int n;
} Exec;

static int
node_fill(Node *nd, const KernelNode *k)
{
	if (!k->func || k->gy != 1 || k->gz != 1 || k->by != 1 || k->bz != 1 || k->extra ||
	    !k->params)
		return fail("a kernel node that is not <<<(g,1,1), (b,1,1)>>> with kernelParams",
		            NULL);
	nd->fn = k->func;
	nd->gx = k->gx;
	nd->bx = k->bx;
	nd->shmem = k->shmem;
	read_params(nd->fn, k->params, nd->a, &nd->n);
	return 0;
}

int
cuGraphCreate(void **g, unsigned flags)
{
	if (F.lost)
		return F.lost;
	*g = calloc(1, sizeof(Graph));
	return flags ? INVALID_VALUE : 0;
}

int
cuGraphAddKernelNode(void **out, void *graph, void *const *deps, size_t ndeps, const KernelNode *k)
{
	Graph *g = graph;
	Node *nd = calloc(1, sizeof *nd);
	int rc;
	if (F.lost)
		return F.lost;
	if (g->n == 0 ? ndeps != 0 : ndeps != 1 || deps[0] != g->nodes[g->n - 1])
		return fail("a kernel node that does not depend on exactly the node before it",
		            NULL);
	if ((rc = node_fill(nd, k)) != 0)
		return rc;
	nd->index = g->n;
	g->nodes = realloc(g->nodes, (size_t)(g->n + 1) * sizeof *g->nodes);
	g->nodes[g->n++] = nd;
	F.stats[ST_NODES]++;
	*out = nd;
	return 0;
}

int
cuGraphInstantiateWithFlags(void **out, void *graph, unsigned long long flags)
{
	const Graph *g = graph;
	Exec *x;
	if (F.lost)
		return F.lost;
	if (F.fail_instantiate || flags)
		return INVALID_VALUE;
	x = calloc(1, sizeof *x);
	x->g = g;
	x->n = g->n;
	x->nodes = calloc((size_t)g->n + 1, sizeof *x->nodes);
	for (int i = 0; i < g->n; i++)
		x->nodes[i] = *g->nodes[i];
	F.stats[ST_INSTANTIATE]++;
	*out = x;
	return 0;
}

int
cuGraphExecKernelNodeSetParams(void *exec, void *node, const KernelNode *k)
{
	Exec *x = exec;
	const Node *nd = node;
	if (F.lost)
		return F.lost;
	if (nd->index >= x->n || x->g->nodes[nd->index] != nd)
		return fail("cuGraphExecKernelNodeSetParams: a node of another graph", NULL);
	if (k->func != (const void *)nd->fn)
		return fail("cuGraphExecKernelNodeSetParams: another kernel", NULL);
	F.stats[ST_SETPARAMS]++;
	return node_fill(&x->nodes[nd->index], k);
}

int
cuGraphLaunch(void *exec, void *s)
{
	Exec *x = exec;
	int rc;
	(void)s;
	if (F.lost)
		return F.lost;
	F.stats[ST_GRAPH_LAUNCH]++;
	for (int i = 0; i < x->n; i++) {
		uint64_t a[MAXARGS];
		memcpy(a, x->nodes[i].a, sizeof a);
		if ((rc = run_kernel(x->nodes[i].fn, x->nodes[i].gx, x->nodes[i].bx,
		                     x->nodes[i].shmem, a, x->nodes[i].n)) != 0)
			return rc;
	}
	return 0;
}

int
cuGraphExecDestroy(void *exec)
{
	Exec *x = exec;
	free(x->nodes);
	free(x);
	return 0;
}

int
cuGraphDestroy(void *graph)
{
	Graph *g = graph;
	for (int i = 0; i < g->n; i++)
		free(g->nodes[i]);
	free(g->nodes);
	free(g);
	return 0;
}
#endif

int
cuGetErrorName(int r, const char **s)
{
	*s = r == ILLEGAL_ADDRESS ? "CUDA_ERROR_ILLEGAL_ADDRESS" : "CUDA_ERROR_FAKE";
	return 0;
}

int
cuGetErrorString(int r, const char **s)
{
	*s =
	    r == ILLEGAL_ADDRESS ? "an illegal memory access was encountered" : "fake driver error";
	return 0;
}
