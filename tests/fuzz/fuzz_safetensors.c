/* tests/fuzz/fuzz_safetensors.c -- libFuzzer harness for the safetensors reader.
 *
 * Parses the input as a whole safetensors image (runtime/safetensors.c), touches every
 * tensor's bytes so that an out-of-bounds data pointer shows under ASan, then frees.
 * Any crash, leak, sanitizer report or message without text is a bug.
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iruntime \
 *       tests/fuzz/fuzz_safetensors.c runtime/safetensors.c runtime/util.c -o fuzz_safetensors
 *   ./fuzz_safetensors -max_total_time=60 tests/fuzz/corpus/safetensors */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rt_weights.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	RtTensorList l;
	char err[512];
	volatile uint8_t sink = 0;
	uint64_t k;
	int i;

	err[0] = 0;
	if (rt_safetensors_parse("fuzz", data, size, &l, err, sizeof err) != SEGC_OK) {
		if (!err[0] || l.n != 0 || l.tensors != NULL)
			abort();
		return 0;
	}
	for (i = 0; i < l.n; i++) {
		if (l.tensors[i].end - l.tensors[i].begin > 0) {
			k = l.tensors[i].end - l.tensors[i].begin;
			sink ^= l.tensors[i].data[0];
			sink ^= l.tensors[i].data[k - 1];
		}
		if (rt_tensor_list_find(&l, l.tensors[i].name) != &l.tensors[i])
			abort();
	}
	(void)sink;
	rt_tensor_list_free(&l);
	return 0;
}
