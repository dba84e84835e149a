/* tests/fuzz/fuzz_tune.c -- libFuzzer harness for the tuning-file reader (fe_tune_load_text).
 *
 * Any input must give a table or one diagnostic, never a crash, a leak or a sanitizer report;
 * a table's entries must hold what the reader promises (non-empty keys, known knob names,
 * values of 1 to 64 characters). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a stand-in for codegen's cg_knob_known: SEGC_WINOGRAD and SEGC_MMA_HALO, the latter for
 * cuda targets only */
static int
known(const char *name, const char *target)
{
	if (!strcmp(name, "SEGC_WINOGRAD"))
		return 1;
	return !strcmp(name, "SEGC_MMA_HALO") && !strncmp(target, "cuda", 4);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Arena *a = arena_new();
	Diag d;
	TuneTable t;
	diag_init(&d, NULL);
	if (fe_tune_load_text((const char *)data, size, "fuzz.json", a, known, &t, &d) == 0) {
		for (int i = 0; i < t.n; i++) {
			if (!t.e[i].key[0])
				abort();
			for (int k = 0; k < t.e[i].nknobs; k++)
				if (!known(t.e[i].knobs[k].name, t.target) ||
				    !t.e[i].knobs[k].value[0] || strlen(t.e[i].knobs[k].value) > 64)
					abort();
		}
	} else if (d.nerrors != 1) {
		abort();
	}
	arena_free(a);
	return 0;
}
