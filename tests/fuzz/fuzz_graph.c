/* tests/fuzz/fuzz_graph.c -- libFuzzer harness for the graph frontend (fe_load_text).
 *
 * Any input must give a Module or diagnostics, never a crash, a leak or a sanitizer report.
 * Includes are looked up in a folder that does not exist, so runs do not touch the disk. */
#include <stddef.h>
#include <stdint.h>

#include "frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static const FeDefine defs[] = {{"C", "8"}};
	if (!ready) {
		if (op_init() < 0)
			return 0;
		ready = 1;
	}
	FeOptions o = {defs, size % 2 ? 1 : 0, "/nonexistent-segc-lib"};
	Diag d;
	diag_init(&d, NULL);
	Module *m = fe_load_text((const char *)data, size, "fuzz.json", &o, &d);
	ir_module_free(m);
	return 0;
}
