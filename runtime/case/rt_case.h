/* runtime/case/rt_case.h -- NIfTI volumes for whole-case segmentation (libsegc_case.a).
 *
 * NIfTI I/O lives in its own small library, not in libsegc_rt: every engine.so links
 * libsegc_rt, and an engine must not depend on libnifti2 or zlib.  The segc tool and
 * applications (examples/embed.c) link libsegc_case.a, libnifti2 and zlib; the algorithm
 * (sliding windows, mirroring, labels) stays in the engine, behind the C ABI.
 *
 * Axis order: NIfTI stores voxel (i, j, k, t) at i + nx * (j + ny * (k + nz * t)), x fastest.
 * RtVolume keeps that order.  Nothing here prints, aborts or keeps state. */
#ifndef SEGC_RT_CASE_H
#define SEGC_RT_CASE_H
#include <stddef.h>
#include <stdint.h>

#include "segc_engine.h"

typedef struct {
	int64_t dim[4];   /* nx, ny, nz, nt (nt = 1 for a 3-D image) */
	float *data;      /* nx*ny*nz*nt f32, x fastest, after scl_slope / scl_inter */
	void *hdr;        /* the libnifti header (a nifti_image without data): the geometry */
	int version;      /* 1 or 2 (NIfTI-1 or NIfTI-2) */
	int datatype;     /* the file's NIFTI_TYPE_* code */
	double pixdim[4]; /* voxel sizes dx, dy, dz, dt */
	int qform_code, sform_code;
} RtVolume;

/* The checks made before libnifti sees a file: hdr holds the first n bytes of the
 * (decompressed) file and file_bytes its whole decompressed size.  A malformed header is
 * SEGC_ERR_FORMAT with "LABEL: what, expected what"; on success *need is the number of bytes
 * the file must hold (vox_offset + image data) and *version 1 or 2. */
segc_status rt_nifti_check(const char *label, const uint8_t *hdr, size_t n, int64_t file_bytes,
                           int64_t *need, int *version, char *err, size_t errlen);

/* Read a .nii or .nii.gz file (NIfTI-1 or NIfTI-2, 1 to 4 dimensions, integer or float
 * voxels) through libnifti2 after rt_nifti_check.  *v is zeroed on error. */
segc_status rt_nifti_read(const char *path, RtVolume *v, char *err, size_t errlen);
void rt_volume_free(RtVolume *v);

/* 0 when a and b have the same nx, ny, nz and the same qform/sform and voxel sizes (to 1e-4);
 * otherwise -1 with the difference in why. */
int rt_nifti_same_grid(const RtVolume *a, const RtVolume *b, char *why, size_t len);

enum { RT_VOX_U8, RT_VOX_I16, RT_VOX_F32 };

/* Write nt volumes (x fastest) of the grid of geom as vox (RT_VOX_*) to path (.nii or
 * .nii.gz; NIfTI-1 or -2 as geom), with qform, sform, voxel sizes and units copied unchanged
 * from geom and descrip (<= 79 chars) in the header.  libnifti's writer reports nothing, so
 * the file is written under a temporary name in path's directory, read back and compared
 * (header geometry and every data byte), fsync'ed and renamed: path is either the complete,
 * verified file or untouched. */
segc_status rt_nifti_write(const char *path, const RtVolume *geom, int64_t nt, int vox,
                           const void *data, int is_label, const char *descrip, char *err,
                           size_t errlen);

#endif
