/* codegen/nvrtc.c -- CUDA C source -> cubin through NVRTC, loaded at run time.
 *
 * segc links no CUDA library: libnvrtc is opened with dlopen() when a CUDA target is
 * compiled, so segc builds and runs on machines without the CUDA toolkit and says so only
 * when asked for cuda.  Search order: $SEGC_NVRTC, the library path (libnvrtc.so,
 * libnvrtc.so.13, libnvrtc.so.12), $CUDA_HOME/lib64, /usr/local/cuda/lib64.  The library
 * and the program are created and disposed in cg_nvrtc_compile (STYLE.md 3.7); the library is
 * opened RTLD_NODELETE, because --split-compile's worker threads may still be winding down
 * inside it when nvrtcCompileProgram has returned (unmapping it under them crashed 22 of 40
 * compiles on a loaded 2-core machine; 0 of 140 with the flag). */
#include "cg.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef int nvrtcResult; /* NVRTC_SUCCESS = 0 */
enum { NVRTC_ERROR_INVALID_OPTION = 5 };
typedef struct _nvrtcProgram *nvrtcProgram;

typedef struct {
	void *so;
	const char *(*GetErrorString)(nvrtcResult);
	nvrtcResult (*Version)(int *, int *);
	nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int,
	                             const char *const *, const char *const *);
	nvrtcResult (*DestroyProgram)(nvrtcProgram *);
	nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
	nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
	nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
	nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
	nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
} Nvrtc;

static void *
open_lib(char *tried, size_t len)
{
	static const char *const names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"};
	const char *env = getenv("SEGC_NVRTC"), *home = getenv("CUDA_HOME");
	char path[1024];
	void *so;

	snprintf(tried, len, "%s", "");
	if (env && *env) {
		snprintf(tried, len, "%s", env);
		return dlopen(env, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	}
	for (size_t i = 0; i < countof(names); i++)
		if ((so = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)))
			return so;
	if (home && *home) {
		snprintf(path, sizeof path, "%s/lib64/libnvrtc.so", home);
		if ((so = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)))
			return so;
	}
	snprintf(tried, len, "%s", "/usr/local/cuda/lib64/libnvrtc.so");
	return dlopen(tried, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
}

static int
load(Nvrtc *n, Diag *d)
{
	char tried[1024];
	memset(n, 0, sizeof *n);
	n->so = open_lib(tried, sizeof tried);
	if (!n->so)
		return diag_error(d, loc_none,
		                  "cannot load NVRTC (%s): %s; install the CUDA toolkit or set "
		                  "SEGC_NVRTC to libnvrtc.so",
		                  tried, dlerror());
#define SYM(f)                                                                                     \
	do {                                                                                       \
		*(void **)&n->f = dlsym(n->so, "nvrtc" #f);                                        \
		if (!n->f) {                                                                       \
			dlclose(n->so);                                                            \
			return diag_error(d, loc_none, "NVRTC library lacks nvrtc%s", #f);         \
		}                                                                                  \
	} while (0)
	SYM(GetErrorString);
	SYM(Version);
	SYM(CreateProgram);
	SYM(DestroyProgram);
	SYM(CompileProgram);
	SYM(GetProgramLogSize);
	SYM(GetProgramLog);
	SYM(GetCUBINSize);
	SYM(GetCUBIN);
#undef SYM
	return 0;
}

/* -I options for the CUDA headers, appended to opts[*nopts..] (at most 3) */
static void
include_dirs(Nvrtc *n, char inc[3][1100], const char **opts, int *nopts)
{
	Dl_info info;
	const char *home = getenv("CUDA_HOME");
	int k = 0;

	if (dladdr(*(void **)&n->Version, &info) && info.dli_fname) {
		const char *sl = strrchr(info.dli_fname, '/');
		if (sl && sl != info.dli_fname)
			snprintf(inc[k++], sizeof inc[0], "-I%.*s/../include",
			         (int)(sl - info.dli_fname), info.dli_fname);
	}
	if (home && *home)
		snprintf(inc[k++], sizeof inc[0], "-I%.1000s/include", home);
	snprintf(inc[k++], sizeof inc[0], "-I/usr/local/cuda/include");
	for (int i = 0; i < k; i++)
		opts[(*nopts)++] = inc[i];
}

/* the first lines of the compile log, on one line */
static const char *
log_text(Nvrtc *n, nvrtcProgram prog, char *buf, size_t len)
{
	size_t size = 0;
	buf[0] = 0;
	if (n->GetProgramLogSize(prog, &size) != 0 || size == 0)
		return buf;
	char *log = malloc(size + 1);
	if (!log)
		return buf;
	if (n->GetProgramLog(prog, log) == 0) {
		log[size] = 0;
		size_t k = 0;
		for (size_t i = 0; log[i] && k + 1 < len; i++)
			buf[k++] = log[i] == '\n' ? ' ' : log[i];
		buf[k] = 0;
	}
	free(log);
	return buf;
}

int
cg_nvrtc_compile(const char *src, const char *name, const char *arch, void **cubin, size_t *size,
                 Diag *d)
{
	Nvrtc n;
	nvrtcProgram prog = NULL;
	nvrtcResult r;
	char opt_arch[64], log[1024];
	int rc = -1;

	*cubin = NULL;
	*size = 0;
	if (load(&n, d) < 0)
		return -1;
	snprintf(opt_arch, sizeof opt_arch, "--gpu-architecture=%s", arch);
	/* the toolkit's headers (<mma.h>, <cuda_bf16.h> for the tensor-core kernels): next to
	 * the NVRTC library that was loaded (lib64/../include), $CUDA_HOME/include,
	 * /usr/local/cuda/include; NVRTC ignores directories that do not exist */
	char inc[3][1100], opt_split[32];
	const char *opts[7] = {opt_arch, "--std=c++17", "--fmad=true"};
	int nopts = 3, major = 0, minor = 0;
	include_dirs(&n, inc, opts, &nopts);
	/* NVRTC 12.1+ optimises the kernels on several threads (the cubin's code is the same;
	 * mamba_home sm_90: 13.0 -> 8.5 s on 2 cores); an NVRTC that rejects the option compiles
	 * without it */
	int split = cg_compile_threads();
	if (split > 1 && n.Version(&major, &minor) == 0 && major * 100 + minor >= 1201) {
		snprintf(opt_split, sizeof opt_split, "--split-compile=%d", split);
		opts[nopts++] = opt_split;
	}
	for (;;) {
		r = n.CreateProgram(&prog, src, name, 0, NULL, NULL);
		if (r != 0) {
			diag_error(d, loc_none, "NVRTC: cannot create a program: %s",
			           n.GetErrorString(r));
			goto out;
		}
		r = n.CompileProgram(prog, nopts, opts);
		if (r != NVRTC_ERROR_INVALID_OPTION || opts[nopts - 1] != opt_split)
			break;
		n.DestroyProgram(&prog);
		nopts--;
	}
	if (r != 0) {
		/* the source is generated: a compile error here is a bug in emit_cuda.c */
		diag_error(d, loc_none, "NVRTC failed for %s (%s): %s", arch, n.GetErrorString(r),
		           log_text(&n, prog, log, sizeof log));
		goto out;
	}
	if ((r = n.GetCUBINSize(prog, size)) != 0 || *size == 0 || !(*cubin = malloc(*size)) ||
	    (r = n.GetCUBIN(prog, *cubin)) != 0) {
		diag_error(d, loc_none, "NVRTC: no cubin for %s: %s", arch,
		           r ? n.GetErrorString(r) : "empty or out of memory");
		free(*cubin);
		*cubin = NULL;
		*size = 0;
		goto out;
	}
	rc = 0;
out:
	if (prog)
		n.DestroyProgram(&prog);
	dlclose(n.so);
	return rc;
}
