/* tests/fuzz/fuzz_nifti.c -- libFuzzer harness for the NIfTI reader (runtime/case/nifti.c).
 *
 * Every input goes through rt_nifti_check from memory; an input that passes (or starts like a
 * gzip stream) is also written to a private temporary file and read with rt_nifti_read, which
 * streams it through zlib and hands it to libnifti2.  A rejected input must come with a
 * message; an accepted one must hold the voxels its header promises.
 *   make fuzz && build-fuzz/fuzz/fuzz_nifti -max_total_time=60 tests/fuzz/corpus/nifti */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_case.h"

static char path[2][64];

static void
cleanup(void)
{
	unlink(path[0]);
	unlink(path[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t need = 0;
	int version = 0, gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
	char err[512] = "";
	segc_status st;
	RtVolume v;
	FILE *f;

	st = rt_nifti_check("fuzz", data, size, (int64_t)size, &need, &version, err, sizeof err);
	if (st != SEGC_OK && !err[0])
		abort();
	if (st == SEGC_OK && (need > (int64_t)size || (version != 1 && version != 2)))
		abort();
	if ((st != SEGC_OK && !gz) || size > (1u << 20))
		return 0;
	if (!path[0][0]) {
		snprintf(path[0], sizeof path[0], "/tmp/segc-fuzz-nifti-%d.nii", (int)getpid());
		snprintf(path[1], sizeof path[1], "/tmp/segc-fuzz-nifti-%d.nii.gz", (int)getpid());
		atexit(cleanup);
	}
	f = fopen(path[gz], "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	err[0] = 0;
	if (rt_nifti_read(path[gz], &v, err, sizeof err) != SEGC_OK) {
		if (!err[0] || v.data)
			abort();
		return 0;
	}
	int64_t n = v.dim[0] * v.dim[1] * v.dim[2] * v.dim[3];
	if (n < 1 || !v.data || !v.hdr)
		abort();
	volatile float sink = v.data[n - 1];
	(void)sink;
	rt_volume_free(&v);
	return 0;
}
