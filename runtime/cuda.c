/* runtime/cuda.c -- the device side of a CUDA engine: driver API, device memory, launches.
 *
 * The driver is opened with dlopen("libcuda.so.1") when a CUDA engine opens (engine.so links
 * no CUDA library, so CPU engines run anywhere).  The engine uses device $SEGC_CUDA_DEVICE
 * (default 0) through its primary context, pushed around every call, and one stream created
 * at open (a blocking stream: it orders with the legacy default stream of other libraries).
 * The launch schedule (docs/cuda.md) is parsed at open; each launch keeps its parameter
 * array, built once.  Its device pointers (slot base + offset) are refilled only for the
 * slots whose base moved since the last run (run <-> run_device, other caller pointers, a
 * weight reload).  The launches run as one CUDA graph (a chain of kernel nodes built
 * explicitly by load_weights, then replayed by cuGraphLaunch; a moved slot updates the
 * nodes that use it with cuGraphExecKernelNodeSetParams) unless $SEGC_CUDA_GRAPHS=0, the
 * driver lacks the graph entry points or building the graph fails: then plain launches
 * ($SEGC_CUDA_GRAPHS=2, for tests: graphs or an error, never a silent fallback).
 * Device memory: the arena, one staging buffer per input and output (host-pointer runs),
 * all weights in one buffer laid out like the host buffer engine.c fills, and the packed slot,
 * which the schedule's "pack" launches fill from the weights once per load_weights.  A sticky
 * driver error (a kernel fault) marks the engine lost: every later call says so.  With
 * $SEGC_PROFILE the launches are plain, each between two CUDA events, and the kernels' GPU
 * times go to the profile (runtime/profile.c; the launch lines' "k=" field names the kernel).
 * No global state:
 * the library handle and every function pointer live on the RtCuda.  libcuda is never
 * dlclosed (unloading the driver under a live process is not supported by NVIDIA). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cuda.h"
#include "rt_prof.h"
#include "rt_util.h"

typedef int CUresult; /* CUDA_SUCCESS = 0 */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphNode_st *CUgraphNode;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUevent_st *CUevent;

/* CUDA_KERNEL_NODE_PARAMS (the v1 layout of cuGraphAddKernelNode, CUDA >= 10) */
typedef struct {
	CUfunction func;
	unsigned grid_x, grid_y, grid_z;
	unsigned block_x, block_y, block_z;
	unsigned shared_bytes;
	void **params;
	void **extra;
} KernelNode;

enum { ATTR_CC_MAJOR = 75, ATTR_CC_MINOR = 76, MIN_ALLOC = 256 };
/* CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN; CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_
 * SIZE_BYTES */
enum { ATTR_SMEM_OPTIN = 97, FATTR_MAX_DYN_SMEM = 8 };
enum { SMEM_STATIC = 48 * 1024 }; /* past it, a launch needs the function's limit raised */

/* generated code (codegen/emit_cuda.c); absent (NULL) in CPU engines */
extern const char segc_gen_cuda_schedule[] __attribute__((weak, visibility("hidden")));
extern const unsigned char segc_gen_cuda_cubin[] __attribute__((weak, visibility("hidden")));
extern const uint64_t segc_gen_cuda_cubin_size __attribute__((weak, visibility("hidden")));

typedef struct {
	void *so;
	CUresult (*Init)(unsigned);
	CUresult (*DeviceGetCount)(int *);
	CUresult (*DeviceGet)(CUdevice *, int);
	CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*DeviceGetName)(char *, int, CUdevice);
	CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*DevicePrimaryCtxRelease)(CUdevice);
	CUresult (*CtxPushCurrent)(CUcontext);
	CUresult (*CtxPopCurrent)(CUcontext *);
	CUresult (*ModuleLoadData)(CUmodule *, const void *);
	CUresult (*ModuleUnload)(CUmodule);
	CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*FuncSetAttribute)(CUfunction, int, int);
	CUresult (*MemAlloc)(CUdeviceptr *, size_t);
	CUresult (*MemFree)(CUdeviceptr);
	CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
	CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
	CUresult (*StreamCreate)(CUstream *, unsigned);
	CUresult (*StreamDestroy)(CUstream);
	CUresult (*StreamSynchronize)(CUstream);
	CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
	                         unsigned, unsigned, CUstream, void **, void **);
	CUresult (*GetErrorName)(CUresult, const char **);
	CUresult (*GetErrorString)(CUresult, const char **);
	/* optional: CUDA graphs (all or none; NULL: plain launches) */
	CUresult (*GraphCreate)(CUgraph *, unsigned);
	CUresult (*GraphAddKernelNode)(CUgraphNode *, CUgraph, const CUgraphNode *, size_t,
	                               const KernelNode *);
	CUresult (*GraphInstantiateWithFlags)(CUgraphExec *, CUgraph, unsigned long long);
	CUresult (*GraphLaunch)(CUgraphExec, CUstream);
	CUresult (*GraphExecKernelNodeSetParams)(CUgraphExec, CUgraphNode, const KernelNode *);
	CUresult (*GraphExecDestroy)(CUgraphExec);
	CUresult (*GraphDestroy)(CUgraph);
	/* optional: events (SEGC_PROFILE; NULL: the profile syncs around each kernel) */
	CUresult (*EventCreate)(CUevent *, unsigned);
	CUresult (*EventRecord)(CUevent, CUstream);
	CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
	CUresult (*EventDestroy)(CUevent);
} Driver;

typedef struct {
	CUfunction fn;
	char *name;
	long long n;
	unsigned grid, block;
	unsigned smem; /* dynamic shared memory bytes ("smem=" field; 0: none) */
	int nbufs;
	uint32_t *slots;
	int64_t *offsets;
	CUdeviceptr *ptrs; /* nbufs device pointers, then n is passed from &n */
	void **params;     /* nbufs + 1: &ptrs[0..nbufs-1], &n (set once parsing is done) */
	CUgraphNode node;  /* its kernel node in the graph (NULL: no graph) */
	int k;             /* its kernel's index in the kernel table ("k=" field; -1: none) */
} Launch;

struct RtCuda {
	Driver d;
	const RtManifest *m;
	CUdevice dev;
	CUcontext ctx;
	int have_ctx;
	CUmodule mod;
	CUstream stream;
	Launch *launches;
	int nlaunches;
	Launch *packs; /* the prepack launches ("pack" lines): once per load_weights */
	int npacks;
	int nslots;
	CUdeviceptr *dslots;
	CUdeviceptr arena, weights, packed;
	CUdeviceptr *io;    /* staging: inputs then outputs */
	uint64_t *iosize;   /* bytes of each */
	uint64_t bytes;     /* device memory held */
	uint64_t wbytes;    /* of which weights */
	CUdeviceptr *bound; /* the slot bases the launches' ptrs (and graph nodes) hold */
	uint8_t *moved;     /* per slot, scratch of bind_slots */
	int bound_ok;       /* bound[] is valid (0 until the first run, and after a failure) */
	int graphs;         /* use a CUDA graph: $SEGC_CUDA_GRAPHS, symbols, no failure yet */
	int strict;         /* $SEGC_CUDA_GRAPHS=2: a graph failure is an error, not a fallback */
	CUgraph graph;
	CUgraphExec exec;
	CUresult lost; /* a sticky error: the context is unusable (0: none) */
	RtProf *prof;   /* $SEGC_PROFILE: kernel times (NULL: none) */
	CUevent *ev;    /* nlaunches + 1 events around the launches (profile), or NULL */
	double *evsecs; /* the profile without events: each launch's seconds, synchronised */
	void *hostcopy; /* run_device: the ranged inputs copied back for their check */
	uint64_t hostcopy_bytes;
	char name[256];
};

/* errors after which the context is unusable: the driver's documentation of each says "the
 * process must be terminated and relaunched" (illegal address, launch timeout, hardware stack
 * error, illegal instruction, misaligned address, invalid address space, invalid PC, launch
 * failed) */
static int
sticky(CUresult r)
{
	return r == 700 || r == 702 || (r >= 714 && r <= 719);
}

/* "cuDeviceGet: CUDA_ERROR_INVALID_DEVICE (invalid device ordinal)" into err; a sticky error
 * marks the engine lost and says so */
static segc_status
drv_err(RtCuda *c, CUresult r, const char *what, char *err, size_t errlen)
{
	const char *name = NULL, *text = NULL;
	if (c->d.GetErrorName)
		c->d.GetErrorName(r, &name);
	if (c->d.GetErrorString)
		c->d.GetErrorString(r, &text);
	if (sticky(r) && !c->lost)
		c->lost = r;
	return rt_errf(SEGC_ERR_DEVICE, err, errlen, "%s: %s (%s)%s", what,
	               name ? name : "CUDA error", text ? text : "no message",
	               sticky(r) ? "; the GPU context is lost: this engine cannot run again "
	                           "(close it; CUDA needs a new process)"
	                         : "");
}

/* the refusal of every call after a sticky error */
static segc_status
lost_err(RtCuda *c, const char *what, char *err, size_t errlen)
{
	const char *name = NULL;
	if (c->d.GetErrorName)
		c->d.GetErrorName(c->lost, &name);
	return rt_errf(SEGC_ERR_DEVICE, err, errlen,
	               "%s: the engine is unusable after an earlier GPU error (%s): close it "
	               "(CUDA needs a new process)",
	               what, name ? name : "CUDA error");
}

int
rt_cuda_is_target(const char *target)
{
	return target && strncmp(target, "cuda:", 5) == 0;
}

static segc_status
load_driver(Driver *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof *d);
	d->so = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!d->so)
		return rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,
		               "open: this engine was compiled for CUDA but the NVIDIA driver "
		               "(libcuda.so.1) cannot be loaded: %s",
		               dlerror());
#define SYM(f, name)                                                                               \
	do {                                                                                       \
		*(void **)&d->f = dlsym(d->so, name);                                              \
		if (!d->f)                                                                         \
			return rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,                          \
			               "open: the NVIDIA driver lacks %s", name);                  \
	} while (0)
	SYM(Init, "cuInit");
	SYM(DeviceGetCount, "cuDeviceGetCount");
	SYM(DeviceGet, "cuDeviceGet");
	SYM(DeviceGetAttribute, "cuDeviceGetAttribute");
	SYM(DeviceGetName, "cuDeviceGetName");
	SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
	SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
	SYM(CtxPushCurrent, "cuCtxPushCurrent_v2");
	SYM(CtxPopCurrent, "cuCtxPopCurrent_v2");
	SYM(ModuleLoadData, "cuModuleLoadData");
	SYM(ModuleUnload, "cuModuleUnload");
	SYM(ModuleGetFunction, "cuModuleGetFunction");
	SYM(FuncSetAttribute, "cuFuncSetAttribute");
	SYM(MemAlloc, "cuMemAlloc_v2");
	SYM(MemFree, "cuMemFree_v2");
	SYM(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
	SYM(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
	SYM(StreamCreate, "cuStreamCreate");
	SYM(StreamDestroy, "cuStreamDestroy_v2");
	SYM(StreamSynchronize, "cuStreamSynchronize");
	SYM(LaunchKernel, "cuLaunchKernel");
	SYM(GetErrorName, "cuGetErrorName");
	SYM(GetErrorString, "cuGetErrorString");
#undef SYM
	/* graphs are optional: the v1 kernel-node entry points (every driver since CUDA 10
	 * exports them) and cuGraphInstantiateWithFlags (CUDA 11.4) */
	*(void **)&d->GraphCreate = dlsym(d->so, "cuGraphCreate");
	*(void **)&d->GraphAddKernelNode = dlsym(d->so, "cuGraphAddKernelNode");
	*(void **)&d->GraphInstantiateWithFlags = dlsym(d->so, "cuGraphInstantiateWithFlags");
	*(void **)&d->GraphLaunch = dlsym(d->so, "cuGraphLaunch");
	*(void **)&d->GraphExecKernelNodeSetParams = dlsym(d->so, "cuGraphExecKernelNodeSetParams");
	*(void **)&d->GraphExecDestroy = dlsym(d->so, "cuGraphExecDestroy");
	*(void **)&d->GraphDestroy = dlsym(d->so, "cuGraphDestroy");
	*(void **)&d->EventCreate = dlsym(d->so, "cuEventCreate");
	*(void **)&d->EventRecord = dlsym(d->so, "cuEventRecord");
	*(void **)&d->EventElapsedTime = dlsym(d->so, "cuEventElapsedTime_v2");
	if (!d->EventElapsedTime)
		*(void **)&d->EventElapsedTime = dlsym(d->so, "cuEventElapsedTime");
	*(void **)&d->EventDestroy = dlsym(d->so, "cuEventDestroy_v2");
	return SEGC_OK;
}

/* all the graph entry points are there */
static int
have_graphs(const Driver *d)
{
	return d->GraphCreate && d->GraphAddKernelNode && d->GraphInstantiateWithFlags &&
	       d->GraphLaunch && d->GraphExecKernelNodeSetParams && d->GraphExecDestroy &&
	       d->GraphDestroy;
}

/* ---- the schedule: "segc-cuda 1" / "arch sm_XX" / "launch NAME n grid block nbufs s:o..
 * [smem=BYTES]" ... / "pack NAME ..." ... (the same fields) / "end" ---- */

/* the lines starting with key ("launch " or "pack ") from *pp into *ls, *nl */
static segc_status
parse_launches(RtCuda *c, const char **pp, int *lineno, const char *key, Launch **ls, int *nl,
               char *err, size_t errlen)
{
	int cap = 0, used;
	const char *p = *pp;
	char word[256];
	size_t klen = strlen(key);

	while (strncmp(p, key, klen) == 0) {
		Launch *l;
		long long n, grid, block;
		int nbufs;
		if (*nl == cap) {
			cap = cap ? 2 * cap : 16;
			Launch *grown = realloc(*ls, (size_t)cap * sizeof *grown);
			if (!grown)
				return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen,
				               "open: out of memory");
			*ls = grown;
		}
		l = &(*ls)[*nl];
		memset(l, 0, sizeof *l);
		if (sscanf(p + klen, "%255s %lld %lld %lld %d%n", word, &n, &grid, &block, &nbufs,
		           &used) != 5 ||
		    n < 1 || grid < 1 || grid > 0x7fffffff || block < 1 || block > 1024 ||
		    nbufs < 0 || nbufs > 4096)
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "open: CUDA launch schedule line %d is malformed", *lineno);
		(*nl)++;
		p += klen + (size_t)used;
		l->name = strdup(word);
		l->n = n;
		l->grid = (unsigned)grid;
		l->block = (unsigned)block;
		l->nbufs = nbufs;
		l->slots = calloc((size_t)nbufs + 1, sizeof *l->slots);
		l->offsets = calloc((size_t)nbufs + 1, sizeof *l->offsets);
		l->ptrs = calloc((size_t)nbufs + 1, sizeof *l->ptrs);
		l->params = calloc((size_t)nbufs + 1, sizeof *l->params);
		if (!l->name || !l->slots || !l->offsets || !l->ptrs || !l->params)
			return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
		for (int b = 0; b < nbufs; b++) {
			unsigned slot;
			long long off;
			if (sscanf(p, " %u:%lld%n", &slot, &off, &used) != 2 ||
			    (int)slot >= c->nslots || off < 0)
				return rt_errf(SEGC_ERR_FORMAT, err, errlen,
				               "open: CUDA launch schedule line %d: bad buffer %d",
				               *lineno, b);
			p += used;
			l->slots[b] = slot;
			l->offsets[b] = off;
			l->params[b] = &l->ptrs[b];
		}
		unsigned smem;
		if (sscanf(p, " smem=%u%n", &smem, &used) == 1) {
			if (smem > (1u << 20))
				return rt_errf(SEGC_ERR_FORMAT, err, errlen,
				               "open: CUDA launch schedule line %d: bad smem",
				               *lineno);
			l->smem = smem;
			p += used;
		}
		int k;
		l->k = -1;
		if (sscanf(p, " k=%d%n", &k, &used) == 1) {
			if (k < 0 || k > (1 << 24))
				return rt_errf(SEGC_ERR_FORMAT, err, errlen,
				               "open: CUDA launch schedule line %d: bad k",
				               *lineno);
			l->k = k;
			p += used;
		}
		if (*p != '\n')
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "open: CUDA launch schedule line %d has extra fields",
			               *lineno);
		p++;
		(*lineno)++;
	}
	/* the trip count is passed from &l->n, inside the array: only now, when the array
	 * has stopped growing (realloc moves it), are those addresses final.  Taking them in the
	 * loop above left every launch before the last realloc (engines of more than 16
	 * launches) reading n from freed memory: garbage trip counts, CUDA_ERROR_ILLEGAL_ADDRESS */
	for (int i = 0; i < *nl; i++)
		(*ls)[i].params[(*ls)[i].nbufs] = &(*ls)[i].n;
	*pp = p;
	return SEGC_OK;
}

static segc_status
parse_schedule(RtCuda *c, const char *text, char *err, size_t errlen)
{
	const char *p = text;
	char word[256];
	int lineno = 3, used;
	segc_status st;

	if (sscanf(p, "segc-cuda 1\narch %255s\n%n", word, &used) != 1)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "open: bad CUDA launch schedule header");
	p += used;
	st = parse_launches(c, &p, &lineno, "launch ", &c->launches, &c->nlaunches, err, errlen);
	if (st == SEGC_OK)
		st = parse_launches(c, &p, &lineno, "pack ", &c->packs, &c->npacks, err, errlen);
	if (st == SEGC_OK && strcmp(p, "end\n") != 0)
		st = rt_errf(SEGC_ERR_FORMAT, err, errlen,
		             "open: CUDA launch schedule line %d: expected launch, pack or end",
		             lineno);
	return st;
}

static segc_status
device_alloc(RtCuda *c, CUdeviceptr *p, uint64_t bytes, const char *what, char *err, size_t errlen)
{
	CUresult r = c->d.MemAlloc(p, (size_t)(bytes < MIN_ALLOC ? MIN_ALLOC : bytes));
	if (r != 0) {
		char msg[128];
		*p = 0;
		snprintf(msg, sizeof msg, "cuMemAlloc of %llu bytes for the %s",
		         (unsigned long long)bytes, what);
		return drv_err(c, r, msg, err, errlen);
	}
	c->bytes += bytes < MIN_ALLOC ? MIN_ALLOC : bytes;
	return SEGC_OK;
}

static uint64_t
tensor_bytes(const segc_tensor_info *t)
{
	int64_t n = rt_numel(t->rank, t->shape);
	return n < 0 ? 0 : (uint64_t)n * (uint64_t)rt_dtype_size(t->dtype);
}

/* a kernel of more than 48 KiB of shared memory (SEGC_CUDA_SMEM at compile time): the GPU
 * must allow it per block, and the function's limit is raised to it */
static segc_status
dyn_smem(RtCuda *c, const Launch *l, char *err, size_t errlen)
{
	int optin = 0;
	CUresult r = c->d.DeviceGetAttribute(&optin, ATTR_SMEM_OPTIN, c->dev);
	if (r != 0)
		return drv_err(c, r, "open: cuDeviceGetAttribute (shared memory per block)", err,
		               errlen);
	if ((unsigned)optin < l->smem)
		return rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,
		               "open: kernel %s needs %u bytes of shared memory per block, the GPU "
		               "allows %d (compile with a lower SEGC_CUDA_SMEM)",
		               l->name, l->smem, optin);
	if ((r = c->d.FuncSetAttribute(l->fn, FATTR_MAX_DYN_SMEM, (int)l->smem)) != 0) {
		char msg[320];
		snprintf(msg, sizeof msg, "open: cuFuncSetAttribute(%s, %u bytes of shared memory)",
		         l->name, l->smem);
		return drv_err(c, r, msg, err, errlen);
	}
	return SEGC_OK;
}

/* everything of open after the driver is loaded; the context is current */
static segc_status
open_device(RtCuda *c, char *err, size_t errlen)
{
	const RtManifest *m = c->m;
	int nio = m->ninputs + m->noutputs;
	segc_status st;
	CUresult r;

	if ((r = c->d.ModuleLoadData(&c->mod, segc_gen_cuda_cubin)) != 0)
		return drv_err(c, r, "open: cuModuleLoadData (the engine's cubin)", err, errlen);
	if ((r = c->d.StreamCreate(&c->stream, 0)) != 0)
		return drv_err(c, r, "open: cuStreamCreate", err, errlen);
	st = parse_schedule(c, segc_gen_cuda_schedule, err, errlen);
	if (st != SEGC_OK)
		return st;
	for (int i = 0; i < c->nlaunches + c->npacks; i++) {
		Launch *l = i < c->nlaunches ? &c->launches[i] : &c->packs[i - c->nlaunches];
		if ((r = c->d.ModuleGetFunction(&l->fn, c->mod, l->name)) != 0) {
			char msg[320];
			snprintf(msg, sizeof msg, "open: cuModuleGetFunction(%s)", l->name);
			return drv_err(c, r, msg, err, errlen);
		}
		if (l->smem > SMEM_STATIC && (st = dyn_smem(c, l, err, errlen)) != SEGC_OK)
			return st;
	}
	if ((st = device_alloc(c, &c->arena, m->arena, "arena", err, errlen)) != SEGC_OK)
		return st;
	c->dslots[0] = c->arena;
	if (m->packed > 0) {
		st = device_alloc(c, &c->packed, m->packed, "packed weights", err, errlen);
		if (st != SEGC_OK)
			return st;
		c->dslots[c->nslots - 1] = c->packed;
	}
	c->io = calloc((size_t)nio + 1, sizeof *c->io);
	c->iosize = calloc((size_t)nio + 1, sizeof *c->iosize);
	if (!c->io || !c->iosize)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
	for (int i = 0; i < nio; i++) {
		const segc_tensor_info *t =
		    i < m->ninputs ? &m->inputs[i] : &m->outputs[i - m->ninputs];
		c->iosize[i] = tensor_bytes(t);
		st = device_alloc(c, &c->io[i], c->iosize[i], t->name, err, errlen);
		if (st != SEGC_OK)
			return st;
	}
	return SEGC_OK;
}

/* the GPU must be of the architecture the cubin was built for (same major, minor >= ours) */
static segc_status
check_arch(RtCuda *c, int ordinal, char *err, size_t errlen)
{
	int tmaj, tmin, maj = 0, min = 0;
	const char *sm = c->m->target + strlen("cuda:sm_");
	CUresult r;

	if (strlen(sm) != 2 || sm[0] < '0' || sm[0] > '9' || sm[1] < '0' || sm[1] > '9')
		return rt_errf(SEGC_ERR_FORMAT, err, errlen, "open: bad target %s", c->m->target);
	tmaj = sm[0] - '0';
	tmin = sm[1] - '0';
	if ((r = c->d.DeviceGetAttribute(&maj, ATTR_CC_MAJOR, c->dev)) != 0 ||
	    (r = c->d.DeviceGetAttribute(&min, ATTR_CC_MINOR, c->dev)) != 0)
		return drv_err(c, r, "open: cuDeviceGetAttribute", err, errlen);
	if (c->d.DeviceGetName(c->name, 200, c->dev) != 0)
		snprintf(c->name, 200, "%s", "unknown GPU");
	if (maj != tmaj || min < tmin)
		return rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,
		               "open: this engine was compiled for %s but GPU %d (%s) is sm_%d%d; "
		               "recompile with --target cuda:sm_%d%d",
		               c->m->target + 5, ordinal, c->name, maj, min, maj, min);
	char tmp[256];
	snprintf(tmp, sizeof tmp, "cuda:%d %.200s (sm_%d%d)", ordinal, c->name, maj, min);
	snprintf(c->name, sizeof c->name, "%s", tmp);
	return SEGC_OK;
}

static segc_status prof_open(RtCuda *c, char *err, size_t errlen);

segc_status
rt_cuda_open(RtCuda **out, const RtManifest *m, char *err, size_t errlen)
{
	RtCuda *c;
	CUresult r;
	CUcontext dummy;
	segc_status st;
	int ordinal = 0, count = 0;
	const char *env = getenv("SEGC_CUDA_DEVICE");
	const char *genv = getenv("SEGC_CUDA_GRAPHS");

	*out = NULL;
	if (!segc_gen_cuda_schedule || !segc_gen_cuda_cubin || !&segc_gen_cuda_cubin_size)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "open: the manifest says %s but the engine holds no cubin",
		               m->target);
	if (env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end || v < 0 || v > 1024)
			return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			               "open: SEGC_CUDA_DEVICE='%s' is not a device number", env);
		ordinal = (int)v;
	}
	if (genv && *genv && strcmp(genv, "0") != 0 && strcmp(genv, "1") != 0 &&
	    strcmp(genv, "2") != 0)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "open: SEGC_CUDA_GRAPHS='%s', expected 0 (plain launches), 1 (CUDA "
		               "graphs where the driver has them, the default) or 2 (CUDA graphs "
		               "or an error)",
		               genv);
	c = calloc(1, sizeof *c);
	if (!c)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
	c->m = m;
	c->nslots = 1 + m->ninputs + m->noutputs + m->nweights + 1; /* + the packed slot */
	c->dslots = calloc((size_t)c->nslots, sizeof *c->dslots);
	c->bound = calloc((size_t)c->nslots, sizeof *c->bound);
	c->moved = calloc((size_t)c->nslots, sizeof *c->moved);
	if (!c->dslots || !c->bound || !c->moved) {
		st = rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
		goto fail;
	}
	if ((st = load_driver(&c->d, err, errlen)) != SEGC_OK)
		goto fail;
	c->strict = genv && strcmp(genv, "2") == 0;
	c->graphs = have_graphs(&c->d) && !(genv && strcmp(genv, "0") == 0);
	if (c->strict && !c->graphs) {
		st = rt_errf(
		    SEGC_ERR_UNSUPPORTED, err, errlen,
		    "open: SEGC_CUDA_GRAPHS=2 but the NVIDIA driver lacks the CUDA graph "
		    "entry points (cuGraphAddKernelNode, cuGraphInstantiateWithFlags, ...)");
		goto fail;
	}
	if ((r = c->d.Init(0)) != 0) {
		drv_err(c, r, "open: no usable GPU: cuInit", err, errlen);
		st = SEGC_ERR_UNSUPPORTED;
		goto fail;
	}
	if ((r = c->d.DeviceGetCount(&count)) != 0 || ordinal >= count) {
		st = r ? drv_err(c, r, "open: cuDeviceGetCount", err, errlen)
		       : rt_errf(SEGC_ERR_UNSUPPORTED, err, errlen,
		                 "open: no CUDA device %d (the machine has %d)", ordinal, count);
		goto fail;
	}
	if ((r = c->d.DeviceGet(&c->dev, ordinal)) != 0) {
		st = drv_err(c, r, "open: cuDeviceGet", err, errlen);
		goto fail;
	}
	if ((st = check_arch(c, ordinal, err, errlen)) != SEGC_OK)
		goto fail;
	if ((r = c->d.DevicePrimaryCtxRetain(&c->ctx, c->dev)) != 0) {
		st = drv_err(c, r, "open: cuDevicePrimaryCtxRetain", err, errlen);
		goto fail;
	}
	c->have_ctx = 1;
	if ((r = c->d.CtxPushCurrent(c->ctx)) != 0) {
		st = drv_err(c, r, "open: cuCtxPushCurrent", err, errlen);
		goto fail;
	}
	st = open_device(c, err, errlen);
	if (st == SEGC_OK)
		st = prof_open(c, err, errlen);
	c->d.CtxPopCurrent(&dummy);
	if (st != SEGC_OK)
		goto fail;
	*out = c;
	return SEGC_OK;
fail:
	rt_cuda_close(c);
	return st;
}

/* ---- the profile ($SEGC_PROFILE): plain launches between events ---- */

static segc_status
prof_open(RtCuda *c, char *err, size_t errlen)
{
	CUresult r;
	if (!(c->prof = rt_prof_new_timed()))
		return SEGC_OK;
	c->graphs = c->strict = 0; /* one record per kernel */
	if (!c->d.EventCreate || !c->d.EventRecord || !c->d.EventElapsedTime ||
	    !c->d.EventDestroy) {
		c->evsecs = calloc((size_t)c->nlaunches + 1, sizeof *c->evsecs);
		return c->evsecs ? SEGC_OK
		                 : rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
	}
	c->ev = calloc((size_t)c->nlaunches + 1, sizeof *c->ev);
	if (!c->ev)
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "open: out of memory");
	for (int i = 0; i <= c->nlaunches; i++)
		if ((r = c->d.EventCreate(&c->ev[i], 0)) != 0)
			return drv_err(c, r, "open: cuEventCreate (SEGC_PROFILE)", err, errlen);
	return SEGC_OK;
}

/* after a run's synchronisation: each kernel's time into the profile */
static segc_status
prof_run(RtCuda *c, char *err, size_t errlen)
{
	for (int i = 0; c->prof && i < c->nlaunches; i++) {
		float ms = 0;
		CUresult r = c->ev ? c->d.EventElapsedTime(&ms, c->ev[i], c->ev[i + 1]) : 0;
		if (r != 0)
			return drv_err(c, r, "run: cuEventElapsedTime (SEGC_PROFILE)", err, errlen);
		rt_prof_add(c->prof, c->launches[i].k, c->ev ? 1e-3 * ms : c->evsecs[i]);
	}
	rt_prof_run_end(c->prof);
	return SEGC_OK;
}

/* ---- launches: parameters, the graph, plain launches; the context is current ---- */

static void
graph_drop(RtCuda *c)
{
	if (c->exec)
		c->d.GraphExecDestroy(c->exec);
	if (c->graph)
		c->d.GraphDestroy(c->graph);
	c->exec = NULL;
	c->graph = NULL;
	for (int i = 0; i < c->nlaunches; i++)
		c->launches[i].node = NULL;
}

static KernelNode
kernel_node(const Launch *l)
{
	KernelNode k = {l->fn, l->grid, 1, 1, l->block, 1, 1, l->smem, l->params, NULL};
	return k;
}

/* A failure of the graph machinery: plain launches from now on (the engine stays correct,
 * only slower) and 0, unless r is sticky or graphs are strict: then r (the call fails; a
 * strict engine tries a new graph at the next run). */
static CUresult
graph_failed(RtCuda *c, CUresult r)
{
	graph_drop(c);
	c->graphs = c->strict;
	return sticky(r) || c->strict ? r : 0;
}

/* Refill the device pointers of the launches that use a slot whose base moved since the
 * last run, and update their graph nodes.  Nothing to do when no slot moved (run after run,
 * run_device with the same pointers): the parameter arrays are built once. */
static CUresult
bind_slots(RtCuda *c)
{
	int any = 0;
	CUresult r;

	for (int s = 0; s < c->nslots; s++) {
		c->moved[s] = !c->bound_ok || c->bound[s] != c->dslots[s];
		any |= c->moved[s];
		c->bound[s] = c->dslots[s];
	}
	if (!any)
		return 0;
	c->bound_ok = 0; /* until every launch agrees with bound[] */
	for (int i = 0; i < c->nlaunches; i++) {
		Launch *l = &c->launches[i];
		int stale = 0;
		for (int b = 0; b < l->nbufs; b++)
			if (c->moved[l->slots[b]]) {
				l->ptrs[b] = c->dslots[l->slots[b]] + (CUdeviceptr)l->offsets[b];
				stale = 1;
			}
		if (stale && c->exec) {
			KernelNode k = kernel_node(l);
			r = c->d.GraphExecKernelNodeSetParams(c->exec, l->node, &k);
			if (r != 0 && (r = graph_failed(c, r)) != 0)
				return r;
		}
	}
	c->bound_ok = 1;
	return 0;
}

/* the launches as a chain of kernel nodes (each depends on the one before: the stream
 * order), instantiated; the driver copies the parameter values, so moved slots need
 * bind_slots' updates */
static CUresult
graph_build(RtCuda *c)
{
	CUgraphNode prev = NULL;
	CUgraph g = NULL;
	CUgraphExec x = NULL;
	CUresult r;

	/* handles are kept only from calls that succeeded (graph_drop destroys them) */
	if ((r = c->d.GraphCreate(&g, 0)) != 0)
		return r;
	c->graph = g;
	for (int i = 0; i < c->nlaunches; i++) {
		Launch *l = &c->launches[i];
		KernelNode k = kernel_node(l);
		r = c->d.GraphAddKernelNode(&l->node, c->graph, prev ? &prev : NULL, prev ? 1 : 0,
		                            &k);
		if (r != 0)
			return r;
		prev = l->node;
	}
	if ((r = c->d.GraphInstantiateWithFlags(&x, c->graph, 0)) != 0)
		return r;
	c->exec = x;
	return 0;
}

/* every kernel in order on the engine's stream, one cuLaunchKernel each */
static segc_status
launch_all(RtCuda *c, const char *what, char *err, size_t errlen)
{
	for (int i = 0; i < c->nlaunches; i++) {
		Launch *l = &c->launches[i];
		double t0 = 0;
		CUresult r = 0;
		if (c->ev)
			r = c->d.EventRecord(c->ev[i], c->stream);
		else if (c->evsecs && (r = c->d.StreamSynchronize(c->stream)) == 0)
			t0 = rt_now();
		if (r == 0)
			r = c->d.LaunchKernel(l->fn, l->grid, 1, 1, l->block, 1, 1, l->smem,
			                      c->stream, l->params, NULL);
		if (r == 0 && c->evsecs && (r = c->d.StreamSynchronize(c->stream)) == 0)
			c->evsecs[i] = rt_now() - t0;
		if (r == 0 && c->ev && i == c->nlaunches - 1)
			r = c->d.EventRecord(c->ev[i + 1], c->stream);
		if (r != 0) {
			char msg[320];
			snprintf(msg, sizeof msg, "%s: launching %s", what, l->name);
			return drv_err(c, r, msg, err, errlen);
		}
	}
	return SEGC_OK;
}

/* the graph (built by load_weights, or here for an engine without weights) or plain
 * launches */
static segc_status
launch(RtCuda *c, const char *what, char *err, size_t errlen)
{
	char msg[64];
	CUresult r;

	if (c->graphs && !c->exec && c->nlaunches > 0) {
		snprintf(msg, sizeof msg, "%s: building the CUDA graph", what);
		if ((r = graph_build(c)) != 0 && (r = graph_failed(c, r)) != 0)
			return drv_err(c, r, msg, err, errlen);
	}
	if (c->exec) {
		if ((r = c->d.GraphLaunch(c->exec, c->stream)) == 0)
			return SEGC_OK;
		/* nothing was enqueued: unless the context is lost, launch one by one */
		snprintf(msg, sizeof msg, "%s: cuGraphLaunch", what);
		if ((r = graph_failed(c, r)) != 0)
			return drv_err(c, r, msg, err, errlen);
	}
	return launch_all(c, what, err, errlen);
}

/* after load_weights: the parameters for runs with host pointers (staging buffers), and the
 * graph, so that the first run costs what every run costs and allocates nothing */
static segc_status
prepare(RtCuda *c, char *err, size_t errlen)
{
	CUresult r;

	for (int i = 0; i < c->m->ninputs + c->m->noutputs; i++)
		c->dslots[1 + i] = c->io[i];
	if ((r = bind_slots(c)) != 0)
		return drv_err(c, r, "load_weights: updating the CUDA graph's kernel parameters",
		               err, errlen);
	if (c->graphs && !c->exec && c->nlaunches > 0) {
		if ((r = graph_build(c)) != 0 && (r = graph_failed(c, r)) != 0)
			return drv_err(c, r, "load_weights: building the CUDA graph", err, errlen);
	}
	return SEGC_OK;
}

/* the prepack launches (codegen/prepack.c) on the weights just copied: plain launches,
 * their pointers taken from the slots each time (they run once per load_weights) */
static segc_status
prepack(RtCuda *c, char *err, size_t errlen)
{
	CUresult r = 0;

	for (int i = 0; i < c->npacks && r == 0; i++) {
		Launch *l = &c->packs[i];
		for (int b = 0; b < l->nbufs; b++)
			l->ptrs[b] = c->dslots[l->slots[b]] + (CUdeviceptr)l->offsets[b];
		r = c->d.LaunchKernel(l->fn, l->grid, 1, 1, l->block, 1, 1, l->smem, c->stream,
		                      l->params, NULL);
		if (r != 0) {
			char msg[320];
			snprintf(msg, sizeof msg, "load_weights: launching %s", l->name);
			return drv_err(c, r, msg, err, errlen);
		}
	}
	if (c->npacks > 0 && (r = c->d.StreamSynchronize(c->stream)) != 0)
		return drv_err(c, r, "load_weights: packing the weights (cuStreamSynchronize)", err,
		               errlen);
	return SEGC_OK;
}

segc_status
rt_cuda_weights(RtCuda *c, const void *buf, void *const *wslots, char *err, size_t errlen)
{
	const RtManifest *m = c->m;
	uint64_t total = 0;
	CUcontext dummy;
	CUresult r;
	segc_status st = SEGC_OK;

	if (c->lost)
		return lost_err(c, "load_weights", err, errlen);
	for (int i = 0; i < m->nweights; i++) {
		uint64_t end = (uint64_t)((const char *)wslots[i] - (const char *)buf) +
		               tensor_bytes(&m->weights[i]);
		total = end > total ? end : total;
	}
	if ((r = c->d.CtxPushCurrent(c->ctx)) != 0)
		return drv_err(c, r, "load_weights: cuCtxPushCurrent", err, errlen);
	if (c->weights) {
		c->d.MemFree(c->weights);
		c->bytes -= c->wbytes;
		c->weights = 0;
		c->wbytes = 0;
	}
	st = device_alloc(c, &c->weights, total, "weights", err, errlen);
	if (st == SEGC_OK)
		c->wbytes = total < MIN_ALLOC ? MIN_ALLOC : total;
	if (st == SEGC_OK && total > 0) {
		r = c->d.MemcpyHtoDAsync(c->weights, buf, (size_t)total, c->stream);
		if (r == 0)
			r = c->d.StreamSynchronize(c->stream);
		if (r != 0)
			st = drv_err(c, r, "load_weights: copying the weights to the GPU", err,
			             errlen);
	}
	for (int i = 0; st == SEGC_OK && i < m->nweights; i++)
		c->dslots[1 + m->ninputs + m->noutputs + i] =
		    c->weights + (CUdeviceptr)((const char *)wslots[i] - (const char *)buf);
	if (st == SEGC_OK)
		st = prepack(c, err, errlen);
	if (st == SEGC_OK)
		st = prepare(c, err, errlen);
	c->d.CtxPopCurrent(&dummy);
	return st;
}

/* run_device: the inputs with range records (labels that index tables, a few elements) are
 * device memory; copy each to the host and check it there before any kernel reads it out of
 * bounds.  The context is current. */
static segc_status
check_device_ranges(RtCuda *c, const void *const *inputs, char *err, size_t errlen)
{
	const RtManifest *m = c->m;
	CUresult r;
	segc_status st;

	for (int i = 0; i < m->nranges; i++) {
		const segc_tensor_info *t = &m->inputs[m->ranges[i].input];
		uint64_t n = tensor_bytes(t);
		if (n > c->hostcopy_bytes) {
			void *p = realloc(c->hostcopy, (size_t)n);
			if (!p)
				return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen,
				               "run_device: out of memory");
			c->hostcopy = p;
			c->hostcopy_bytes = n;
		}
		r = c->d.MemcpyDtoHAsync(c->hostcopy,
		                         (CUdeviceptr)(uintptr_t)inputs[m->ranges[i].input],
		                         (size_t)n, c->stream);
		if (r == 0)
			r = c->d.StreamSynchronize(c->stream);
		if (r != 0) {
			char msg[128];
			snprintf(msg, sizeof msg, "run_device: copying input '%.40s' to the host "
			                          "for its range check", t->name);
			return drv_err(c, r, msg, err, errlen);
		}
		st = rt_check_range(m, &m->ranges[i], c->hostcopy, "run_device", err, errlen);
		if (st != SEGC_OK)
			return st;
	}
	return SEGC_OK;
}

segc_status
rt_cuda_run(RtCuda *c, const void *const *inputs, void *const *outputs, int device, char *err,
            size_t errlen)
{
	const RtManifest *m = c->m;
	CUcontext dummy;
	CUresult r;
	segc_status st = SEGC_OK;
	const char *what = device ? "run_device" : "run";
	char msg[96];

	if (c->lost)
		return lost_err(c, what, err, errlen);
	snprintf(msg, sizeof msg, "%s: cuCtxPushCurrent", what);
	if ((r = c->d.CtxPushCurrent(c->ctx)) != 0)
		return drv_err(c, r, msg, err, errlen);
	/* the kernels access inputs and outputs 16 bytes at a time (vectors, tensor-core tiles) */
	for (int i = 0; device && i < m->ninputs + m->noutputs; i++) {
		const void *p = i < m->ninputs ? inputs[i] : outputs[i - m->ninputs];
		const segc_tensor_info *t =
		    i < m->ninputs ? &m->inputs[i] : &m->outputs[i - m->ninputs];
		if ((uintptr_t)p % 16) {
			st = rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
			             "run_device: %s '%.40s' at %p: expected a 16-byte aligned "
			             "device pointer (cuMemAlloc's are 256-byte aligned)",
			             i < m->ninputs ? "input" : "output", t->name, p);
			goto out;
		}
	}
	if (device && (st = check_device_ranges(c, inputs, err, errlen)) != SEGC_OK)
		goto out;
	for (int i = 0; i < m->ninputs + m->noutputs; i++) {
		const void *p = i < m->ninputs ? inputs[i] : outputs[i - m->ninputs];
		c->dslots[1 + i] = device ? (CUdeviceptr)(uintptr_t)p : c->io[i];
	}
	if ((r = bind_slots(c)) != 0) {
		snprintf(msg, sizeof msg, "%s: updating the CUDA graph's kernel parameters", what);
		st = drv_err(c, r, msg, err, errlen);
		goto out;
	}
	/* copies from (and to) the caller's pageable memory: the driver stages them through its
	 * own pinned buffers, pipelined; the only synchronisation is the one at the end */
	for (int i = 0; !device && i < m->ninputs; i++) {
		if (c->iosize[i] == 0)
			continue;
		r = c->d.MemcpyHtoDAsync(c->io[i], inputs[i], (size_t)c->iosize[i], c->stream);
		if (r != 0) {
			st = drv_err(c, r, "run: copying an input to the GPU", err, errlen);
			goto out;
		}
	}
	if ((st = launch(c, what, err, errlen)) != SEGC_OK)
		goto out;
	for (int i = 0; !device && i < m->noutputs; i++) {
		int k = m->ninputs + i;
		if (c->iosize[k] == 0)
			continue;
		r = c->d.MemcpyDtoHAsync(outputs[i], c->io[k], (size_t)c->iosize[k], c->stream);
		if (r != 0) {
			st = drv_err(c, r, "run: copying an output from the GPU", err, errlen);
			goto out;
		}
	}
	snprintf(msg, sizeof msg, "%s: cuStreamSynchronize (a kernel or a copy failed)", what);
	if ((r = c->d.StreamSynchronize(c->stream)) != 0)
		st = drv_err(c, r, msg, err, errlen);
	else if (c->prof)
		st = prof_run(c, err, errlen);
out:
	/* after a failure, wait for what was enqueued: nothing may touch the caller's buffers
	 * once run returns */
	if (st != SEGC_OK && !c->lost && (r = c->d.StreamSynchronize(c->stream)) != 0 && sticky(r))
		c->lost = r;
	c->d.CtxPopCurrent(&dummy);
	return st;
}

const char *
rt_cuda_device(const RtCuda *c)
{
	return c->name;
}

void *
rt_cuda_stream(const RtCuda *c)
{
	return c->stream;
}

uint64_t
rt_cuda_bytes(const RtCuda *c)
{
	return c->bytes;
}

void
rt_cuda_close(RtCuda *c)
{
	CUcontext dummy;
	if (!c)
		return;
	if (c->have_ctx && c->d.CtxPushCurrent(c->ctx) == 0) {
		for (int i = 0; c->io && i < c->m->ninputs + c->m->noutputs; i++)
			if (c->io[i])
				c->d.MemFree(c->io[i]);
		if (c->arena)
			c->d.MemFree(c->arena);
		if (c->weights)
			c->d.MemFree(c->weights);
		if (c->packed)
			c->d.MemFree(c->packed);
		graph_drop(c);
		for (int i = 0; c->ev && i <= c->nlaunches; i++)
			if (c->ev[i])
				c->d.EventDestroy(c->ev[i]);
		if (c->stream)
			c->d.StreamDestroy(c->stream);
		if (c->mod)
			c->d.ModuleUnload(c->mod);
		c->d.CtxPopCurrent(&dummy);
	}
	if (c->have_ctx)
		c->d.DevicePrimaryCtxRelease(c->dev);
	for (int i = 0; i < c->nlaunches + c->npacks; i++) {
		Launch *l = i < c->nlaunches ? &c->launches[i] : &c->packs[i - c->nlaunches];
		free(l->name);
		free(l->slots);
		free(l->offsets);
		free(l->ptrs);
		free(l->params);
	}
	free(c->launches);
	free(c->packs);
	free(c->io);
	free(c->iosize);
	free(c->dslots);
	free(c->bound);
	free(c->moved);
	free(c->hostcopy);
	rt_prof_free(c->prof);
	free(c->ev);
	free(c->evsecs);
	free(c);
}
