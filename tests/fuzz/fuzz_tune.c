/* tests/fuzz/fuzz_tune.c -- libFuzzer harness for the tuning-file reader (fe_tune_load_text).
 *
 * Any input must give a table or one diagnostic, never a crash, a leak or a sanitizer report;
 * a table's entries must hold what the reader promises (non-empty keys, knobs and values the
 * check accepts). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a stand-in for codegen's cg_knob_check: SEGC_WINOGRAD ("0" or "1") and SEGC_MMA_HALO, the
 * latter for cuda targets only */
static const char *
check(const char *name, const char *value, const char *target)
{
	if (strcmp(name, "SEGC_WINOGRAD") &&
	    (strcmp(name, "SEGC_MMA_HALO") || strncmp(target, "cuda", 4)))
		return "a known knob";
	return !value || !strcmp(value, "0") || !strcmp(value, "1") ? NULL : "0 or 1";
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Arena *a = arena_new();
	Diag d;
	TuneTable t;
	diag_init(&d, NULL);
	if (fe_tune_load_text((const char *)data, size, "fuzz.json", a, check, &t, &d) == 0) {
		for (int i = 0; i < t.n; i++) {
			if (!t.e[i].key[0])
				abort();
			for (int k = 0; k < t.e[i].nknobs; k++)
				if (check(t.e[i].knobs[k].name, t.e[i].knobs[k].value, t.target))
					abort();
		}
	} else if (d.nerrors != 1) {
		abort();
	}
	arena_free(a);
	return 0;
}
