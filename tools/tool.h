/* tools/tool.h -- what the segc command's files share: fatal messages, time, engines.
 *
 * Only tools/ exits: tool_die() is a user error (exit 1, one line "segc: error: ..."),
 * tool_usage() bad usage (exit 2, with a pointer to --help). */
#ifndef SEGC_TOOLS_TOOL_H
#define SEGC_TOOLS_TOOL_H
#include <stdio.h>

#include "segc_engine.h"

_Noreturn void tool_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* cmd names the help to read: "segc" -> "(see segc --help)" */
_Noreturn void tool_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
double tool_now(void);                             /* monotonic seconds */
int tool_ends_with(const char *s, const char *suffix);

/* An engine opened through its shared library and the ABI table. */
typedef struct {
	void *so;
	const segc_api *api;
	segc_engine_t *e;
} ToolEngine;

/* dlopen path, check the ABI, open an engine with threads (0: default); dies on failure */
void tool_engine_open(ToolEngine *t, const char *path, int threads);
void tool_engine_close(ToolEngine *t);             /* closes, joins threads, unloads */

/* --flag=VALUE or --flag VALUE at argv[*i] (advancing *i), else NULL; cmd names the command in
 * the usage error of a missing value ("segc run") */
const char *tool_optval(const char *cmd, int argc, char **argv, int *i, const char *flag);
/* v as a number in [lo, hi], else a usage error naming flag */
double tool_num(const char *cmd, const char *flag, const char *v, double lo, double hi);

/* s as a JSON string, quoted and escaped */
void tool_json_str(FILE *f, const char *s);

/* segc tune (tools/tune.c) */
int cmd_tune(int argc, char **argv);

#endif
