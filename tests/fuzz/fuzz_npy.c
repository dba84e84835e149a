/* tests/fuzz/fuzz_npy.c -- libFuzzer harness for the .npy reader (runtime/npy.c).
 *
 * Parses the input as a .npy image from memory, checks the result's invariants, frees.
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iruntime \
 *       tests/fuzz/fuzz_npy.c runtime/npy.c runtime/util.c -o fuzz_npy
 *   ./fuzz_npy -max_total_time=60 tests/fuzz/corpus/npy */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_npy.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	RtNpy a;
	char err[512];
	volatile uint8_t sink = 0;

	err[0] = 0;
	if (rt_npy_parse("fuzz", data, size, &a, err, sizeof err) != SEGC_OK) {
		if (!err[0] || a.data != NULL)
			abort();
		return 0;
	}
	if (a.rank < 0 || a.rank > SEGC_MAX_RANK || a.numel < 0 ||
	    a.nbytes != (size_t)a.numel * (size_t)rt_npy_dtype_size(a.dtype) || !a.data)
		abort();
	if (a.nbytes)
		sink ^= ((uint8_t *)a.data)[a.nbytes - 1];
	(void)sink;
	rt_npy_free(&a);
	return 0;
}
