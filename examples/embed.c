/* examples/embed.c -- an application that segments a NIfTI case with a segc engine.
 *
 *   embed ENGINE.so WEIGHTS.safetensors CASE.nii.gz SEG.nii.gz [--mirror] [--gaussian]
 *
 * The whole program an application needs (docs/embedding.md): open the engine through its one
 * exported symbol, load the weights, read the case with libsegc_case (NIfTI through libnifti2),
 * slide the engine's window over the volume (window_run: MONAI's positions, blending,
 * mirroring), turn scores into labels (postprocess: softmax + argmax), write the labels with the
 * input's geometry.  Built by CMake as build/examples/embed; run by tests/cases/test_cases.py.
 *
 * Axis order: a NIfTI volume is stored x fastest, which is exactly a C array [t][z][y][x], so
 * with D = z, H = y, W = x the image is the engine's [C, D, H, W] without a copy. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_case.h"
#include "segc_engine.h"

static int
fail(const char *what, const char *msg)
{
	fprintf(stderr, "embed: %s: %s\n", what, msg);
	return 1;
}

static int
progress(void *user, int64_t done, int64_t total)
{
	(void)user;
	if (done == total)
		printf("embed: %lld forward passes\n", (long long)total);
	return 0; /* non-zero would cancel */
}

int
main(int argc, char **argv)
{
	const segc_api *api;
	segc_engine_t *e = NULL;
	segc_tensor_info in, out;
	segc_window_options wo;
	RtVolume vol;
	char err[1024];
	int rc = 1;

	if (argc < 5)
		return fail("usage", "embed ENGINE.so W.safetensors CASE.nii.gz SEG.nii.gz "
		                     "[--mirror] [--gaussian]");
	/* 1. the engine: one symbol, a versioned table of functions */
	void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!so)
		return fail(argv[1], dlerror());
	segc_engine_api_fn get = (segc_engine_api_fn)dlsym(so, "segc_engine_api");
	api = get ? get(SEGC_ABI_VERSION) : NULL;
	if (!api || api->size < offsetof(segc_api, postprocess) + sizeof api->postprocess)
		return fail(argv[1], "not a segc engine with whole-case inference");
	if (api->open(NULL, &e, err, sizeof err) != SEGC_OK)
		return fail(argv[1], err);
	if (api->load_weights(e, argv[2]) != SEGC_OK) {
		fail(argv[2], api->last_error(e));
		goto out;
	}
	api->input_info(e, 0, &in);   /* [N, C, rd, rh, rw]: the ROI */
	api->output_info(e, 0, &out); /* [N, K, rd, rh, rw] */

	/* 2. the case: a 4-D NIfTI file, t = channels */
	if (rt_nifti_read(argv[3], &vol, err, sizeof err) != SEGC_OK) {
		fail(argv[3], err);
		goto out;
	}
	if (vol.dim[3] != in.shape[1]) {
		snprintf(err, sizeof err, "%lld channels, the engine wants %lld",
		         (long long)vol.dim[3], (long long)in.shape[1]);
		fail(argv[3], err);
		goto free_vol;
	}
	int64_t shape[3] = {vol.dim[2], vol.dim[1], vol.dim[0]}; /* D, H, W = z, y, x */
	int64_t V = shape[0] * shape[1] * shape[2], K = out.shape[1];
	float *scores = malloc((size_t)(K * V) * sizeof *scores);
	int32_t *labels = malloc((size_t)V * sizeof *labels);
	uint8_t *seg = malloc((size_t)V);
	if (!scores || !labels || !seg) {
		fail(argv[3], "out of memory");
		goto free_all;
	}

	/* 3. sliding windows through the ABI */
	api->window_defaults(&wo); /* overlap 0.5, constant blending, MONAI positions */
	wo.progress = progress;
	for (int i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "--mirror"))
			wo.mirror_axes = 7; /* all 8 flips of D, H, W */
		if (!strcmp(argv[i], "--gaussian"))
			wo.blend = SEGC_BLEND_GAUSSIAN;
	}
	printf("embed: %lldx%lldx%lld voxels, ROI %lldx%lldx%lld, %lld windows\n",
	       (long long)vol.dim[0], (long long)vol.dim[1], (long long)vol.dim[2],
	       (long long)in.shape[4], (long long)in.shape[3], (long long)in.shape[2],
	       (long long)api->window_count(e, &wo, shape));
	if (api->window_run(e, &wo, vol.data, shape, scores) != SEGC_OK) {
		fail("window_run", api->last_error(e));
		goto free_all;
	}

	/* 4. softmax + argmax, then the labels with the input's geometry */
	segc_post_options po = {sizeof po, SEGC_ACT_SOFTMAX, (int32_t)K, NULL, 0, NULL, NULL, NULL};
	if (api->postprocess(e, &po, scores, V, labels) != SEGC_OK) {
		fail("postprocess", api->last_error(e));
		goto free_all;
	}
	for (int64_t v = 0; v < V; v++)
		seg[v] = (uint8_t)labels[v];
	if (rt_nifti_write(argv[4], &vol, 1, RT_VOX_U8, seg, 1, "segc axes=zyx labels", err,
	                   sizeof err) != SEGC_OK) {
		fail(argv[4], err);
		goto free_all;
	}
	printf("embed: wrote %s\n", argv[4]);
	rc = 0;
free_all:
	free(seg);
	free(labels);
	free(scores);
free_vol:
	rt_volume_free(&vol);
out:
	api->close(e);
	dlclose(so);
	return rc;
}
