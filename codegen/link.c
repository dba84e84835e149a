/* codegen/link.c -- the last step: object file + libsegc_rt.a -> engine.so; and ld -r, which
 * combines the objects of a parallel compilation (cg_merge_objects, codegen/emit_llvm.c).
 *
 * Runs the system C compiler driver ($CC, else cc) through fork/execvp (no shell):
 *     cc -shared -o <out>.tmpXXXXXX <obj> -Wl,--undefined=segc_engine_api <libsegc_rt.a>
 *        -lm -lpthread -ldl
 * --undefined pulls engine.o out of the archive (nothing in the object refers to it).  Only
 * segc_engine_api is exported: the runtime is compiled with -fvisibility=hidden and the
 * generated symbols are hidden.  (Not --exclude-libs,ALL: it would hide segc_engine_api.)  The
 * library is written to a temporary file beside the output and renamed into place, so a
 * failed link never leaves a partial engine.  The driver's stderr goes into the diagnostic. */
#include "cg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* libsegc_rt.a next to the running binary (build/segc and build/libsegc_rt.a) */
static int
find_runtime(const CgOptions *o, char *path, size_t size, Diag *d)
{
	if (o && o->runtime_lib) {
		if (access(o->runtime_lib, R_OK) != 0)
			return diag_error(d, loc_none, "runtime library %s: %s", o->runtime_lib,
			                  strerror(errno));
		snprintf(path, size, "%s", o->runtime_lib);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n < 0)
		return diag_error(d, loc_none, "cannot find the segc binary: /proc/self/exe: %s",
		                  strerror(errno));
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	if (snprintf(path, size, "%s/libsegc_rt.a", slash ? exe : ".") >= (int)size)
		return diag_error(d, loc_none, "%s: path too long", exe);
	if (access(path, R_OK) != 0)
		return diag_error(d, loc_none, "runtime library libsegc_rt.a not found next to %s",
		                  slash ? exe : ".");
	return 0;
}

/* run argv, stderr into errbuf; the exit status (or -1) */
static int
run_driver(char *const *argv, char *errbuf, size_t errsize, Diag *d)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return diag_error(d, loc_none, "cannot run %s: pipe: %s", argv[0], strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return diag_error(d, loc_none, "cannot run %s: fork: %s", argv[0], strerror(errno));
	}
	if (pid == 0) {
		dup2(pfd[1], 2);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execvp(argv[0], argv);
		dprintf(2, "cannot execute %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	size_t len = 0;
	char buf[512];
	ssize_t r;
	while ((r = read(pfd[0], buf, sizeof buf)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (ssize_t i = 0; i < r; i++)
			if (len + 1 < errsize)
				errbuf[len++] = buf[i] == '\n' ? ' ' : buf[i]; /* one line */
	}
	errbuf[len] = 0;
	while (len > 0 && errbuf[len - 1] == ' ')
		errbuf[--len] = 0;
	close(pfd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return diag_error(d, loc_none, "cannot run %s: waitpid: %s", argv[0],
			                  strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int
cg_link(const char *obj_path, const CgOptions *o, const char *out_path, Diag *d)
{
	char rt[PATH_MAX + 16], tmp[PATH_MAX + 16], errbuf[2048];
	const char *cc = getenv("CC");

	if (!cc || !*cc)
		cc = "cc";
	if (find_runtime(o, rt, sizeof rt, d) < 0)
		return -1;
	/* a unique name in the output's directory, so that rename() stays in one filesystem */
	if (snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", out_path) >= (int)sizeof tmp)
		return diag_error(d, loc_none, "%s: path too long", out_path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return diag_error(d, loc_none, "%s: cannot create a temporary file: %s", out_path,
		                  strerror(errno));
	close(fd);

	char *argv[] = {
	    (char *)cc,
	    "-shared",
	    "-o",
	    tmp,
	    (char *)obj_path,
	    "-Wl,--undefined=segc_engine_api",
	    rt,
	    "-lm",
	    "-lpthread",
	    "-ldl",
	    NULL,
	};
	int st = run_driver(argv, errbuf, sizeof errbuf, d);
	if (st != 0) {
		unlink(tmp);
		if (st < 0)
			return -1;
		return diag_error(d, loc_none, "linking %s failed (%s exited with %d)%s%s",
		                  out_path, cc, st, errbuf[0] ? ": " : "", errbuf);
	}
	/* mkstemp made it 0600; an engine is an ordinary shared library */
	mode_t mask = umask(0);
	umask(mask);
	chmod(tmp, 0755 & ~mask);
	if (rename(tmp, out_path) != 0) {
		int err = errno;
		unlink(tmp);
		return diag_error(d, loc_none, "%s: cannot rename %s into place: %s", out_path, tmp,
		                  strerror(err));
	}
	return 0;
}

int
cg_compile_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	const char *s = getenv("SEGC_COMPILE_THREADS");
	if (s && atoi(s) > 0)
		n = atoi(s);
	return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

int
cg_merge_objects(const char *const *objs, int n, const char *out_path, Diag *d)
{
	char errbuf[2048];
	const char *ld = getenv("LD");
	char **argv = calloc((size_t)n + 5, sizeof *argv);

	if (!argv)
		return diag_error(d, loc_none, "%s: out of memory", out_path);
	if (!ld || !*ld)
		ld = "ld";
	argv[0] = (char *)ld;
	argv[1] = "-r";
	argv[2] = "-o";
	argv[3] = (char *)out_path;
	for (int i = 0; i < n; i++)
		argv[4 + i] = (char *)objs[i];
	int st = run_driver(argv, errbuf, sizeof errbuf, d);
	free(argv);
	if (st > 0)
		return diag_error(d, loc_none,
		                  "combining the objects into %s failed (%s exited with "
		                  "%d)%s%s",
		                  out_path, ld, st, errbuf[0] ? ": " : "", errbuf);
	return st < 0 ? -1 : 0;
}
