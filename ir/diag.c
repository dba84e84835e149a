/* ir/diag.c -- located one-line diagnostics. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const Loc loc_none = {0};

void
diag_init(Diag *d, FILE *out)
{
	memset(d, 0, sizeof *d);
	d->out = out;
	d->max = 20;
}

static void
emit(Diag *d, Loc loc, const char *kind, const char *fmt, va_list ap)
{
	char msg[768], line[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (loc.file && loc.ptr && loc.via)
		snprintf(line, sizeof line, "%s:%s (in %s): %s: %s", loc.file,
		         loc.ptr[0] ? loc.ptr : "/", loc.via, kind, msg);
	else if (loc.file && loc.ptr)
		snprintf(line, sizeof line, "%s:%s: %s: %s", loc.file, loc.ptr[0] ? loc.ptr : "/",
		         kind, msg);
	else if (loc.file)
		snprintf(line, sizeof line, "%s: %s: %s", loc.file, kind, msg);
	else
		snprintf(line, sizeof line, "segc: %s: %s", kind, msg);
	/* one line, always: a message must never spill over */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (d->out)
		fprintf(d->out, "%s\n", line);
	if (!strcmp(kind, "error") && d->nerrors == 0)
		snprintf(d->first, sizeof d->first, "%s", line);
}

int
diag_error(Diag *d, Loc loc, const char *fmt, ...)
{
	va_list ap;
	if (d->nerrors < (d->max ? d->max : 20)) {
		va_start(ap, fmt);
		emit(d, loc, "error", fmt, ap);
		va_end(ap);
	}
	d->nerrors++;
	return -1;
}

void
diag_note(Diag *d, Loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(d, loc, "note", fmt, ap);
	va_end(ap);
}

int
diag_full(const Diag *d)
{
	return d->nerrors >= (d->max ? d->max : 20);
}

_Noreturn void
diag_internal(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "segc: internal error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (%s:%d)\n", file, line);
	abort();
}
