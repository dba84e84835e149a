/* tools/tool.c -- helpers shared by the segc command's files (tools/tool.h). */
#include "tool.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

_Noreturn void
tool_die(const char *fmt, ...)
{
	va_list ap;
	fputs("segc: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

_Noreturn void
tool_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("segc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", cmd);
	exit(2);
}

double
tool_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
tool_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

void
tool_engine_open(ToolEngine *t, const char *path, int threads)
{
	char buf[PATH_MAX + 2], err[512];
	struct stat st;
	memset(t, 0, sizeof *t);
	if (stat(path, &st) != 0)
		tool_die("cannot open engine %s: %s", path, strerror(errno));
	/* dlopen searches the library path for a name without a slash */
	snprintf(buf, sizeof buf, "%s%s", strchr(path, '/') ? "" : "./", path);
	t->so = dlopen(buf, RTLD_NOW | RTLD_LOCAL);
	if (!t->so)
		tool_die("cannot load engine %s: %s", path, dlerror());
	segc_engine_api_fn get = (segc_engine_api_fn)dlsym(t->so, "segc_engine_api");
	if (!get)
		tool_die("%s is not a segc engine (no segc_engine_api symbol)", path);
	t->api = get(SEGC_ABI_VERSION);
	if (!t->api)
		tool_die("%s does not support engine ABI version %d", path, SEGC_ABI_VERSION);
	segc_options o = {sizeof o, threads};
	if (t->api->open(&o, &t->e, err, sizeof err) != SEGC_OK)
		tool_die("%s: %s", path, err);
}

void
tool_engine_close(ToolEngine *t)
{
	if (t->api)
		t->api->close(t->e);
	/* the engine's threads are joined by close; unloading is then safe */
	if (t->so)
		dlclose(t->so);
	memset(t, 0, sizeof *t);
}

const char *
tool_optval(const char *cmd, int argc, char **argv, int *i, const char *flag)
{
	size_t l = strlen(flag);
	if (!strncmp(argv[*i], flag, l) && argv[*i][l] == '=')
		return argv[*i] + l + 1;
	if (!strcmp(argv[*i], flag)) {
		if (*i + 1 >= argc)
			tool_usage(cmd, "%s needs a value", flag);
		return argv[++*i];
	}
	return NULL;
}

double
tool_num(const char *cmd, const char *flag, const char *v, double lo, double hi)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || *end || end == v || !(x >= lo && x <= hi))
		tool_usage(cmd, "%s expects a number in [%g, %g], got '%s'", flag, lo, hi, v);
	return x;
}

void
tool_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}
