/* ir/diag.h -- every message a user sees goes through here.
 *
 * Format, one line:  <file>:<ptr> (in <via>): error: <what went wrong>, expected <what>
 * <ptr> is an RFC 6901 JSON pointer into the graph file; <via> names the module
 * instance (and its call site) when the node came from a module body.
 * diag_error() returns -1 so that callers can write  return diag_error(...);
 * Errors accumulate up to Diag.max (20), then diag_full() tells the phase to stop.
 * User errors never abort; internal errors (bugs in segc) do, through SEGC_ASSERT. */
#ifndef SEGC_DIAG_H
#define SEGC_DIAG_H
#include <stdio.h>

#define SEGC_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Where a node or value came from.  Strings are owned by the module arena (or static). */
typedef struct {
	const char *file;       /* graph file path, NULL: none */
	const char *ptr;        /* JSON pointer, e.g. "/modules/res/body/3/attrs/kernel" */
	const char *via;        /* module instance + call site, e.g. "enc.1, /body/4"; NULL: none */
} Loc;

typedef struct {
	FILE *out;              /* where messages are printed as they come; NULL: silent */
	int nerrors;
	int max;                /* stop after this many (0: 20) */
	char first[1024];       /* the first error, for callers that need the text */
} Diag;

void diag_init(Diag *d, FILE *out);
int diag_error(Diag *d, Loc loc, const char *fmt, ...) SEGC_PRINTF(3, 4);
void diag_note(Diag *d, Loc loc, const char *fmt, ...) SEGC_PRINTF(3, 4);
int diag_full(const Diag *d);            /* true once max errors were reported */
_Noreturn void diag_internal(const char *file, int line, const char *fmt, ...) SEGC_PRINTF(3, 4);
#define SEGC_ASSERT(c) ((c) ? (void)0 : diag_internal(__FILE__, __LINE__, "%s", #c))

extern const Loc loc_none;

#endif
