/* runtime/case/nifti.c -- NIfTI-1 and NIfTI-2 volumes through Debian's libnifti2 and zlib.
 *
 * Reading: zlib streams the file once (plain or gzip) to check the header and that the file
 * holds all its image data (rt_nifti_check), so that a corrupted or truncated file gets a
 * located message instead of libnifti's stderr noise; libnifti then reads it and the voxels
 * are converted to f32 with scl_slope / scl_inter applied.  Writing: libnifti writes a
 * temporary file (nifti_image_write returns nothing), which is read back and compared byte for
 * byte before it is fsync'ed and renamed over the target.  libnifti keeps one global debug
 * level; it is set to 0 (silent) before each call. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nifti2_io.h>

#include "rt_case.h"
#include "rt_util.h"

#define MAX_VOXELS ((int64_t)1 << 32)

static int64_t
rd(const uint8_t *p, int size, int swap)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < size; i++)
		b[i] = swap ? p[size - 1 - i] : p[i];
	if (size == 2) {
		int16_t v;
		memcpy(&v, b, 2);
		return v;
	}
	if (size == 4) {
		int32_t v;
		memcpy(&v, b, 4);
		return v;
	}
	int64_t v;
	memcpy(&v, b, 8);
	return v;
}

static double
rdf(const uint8_t *p, int size, int swap)
{
	int64_t bits = rd(p, size, swap);
	if (size == 4) {
		int32_t i = (int32_t)bits;
		float f;
		memcpy(&f, &i, 4);
		return f;
	}
	double d;
	memcpy(&d, &bits, 8);
	return d;
}

/* bytes per voxel of the datatypes we convert to f32; 0 for the others */
static int
vox_bytes(int dt)
{
	switch (dt) {
	case NIFTI_TYPE_UINT8:
	case NIFTI_TYPE_INT8:
		return 1;
	case NIFTI_TYPE_INT16:
	case NIFTI_TYPE_UINT16:
		return 2;
	case NIFTI_TYPE_INT32:
	case NIFTI_TYPE_UINT32:
	case NIFTI_TYPE_FLOAT32:
		return 4;
	case NIFTI_TYPE_INT64:
	case NIFTI_TYPE_UINT64:
	case NIFTI_TYPE_FLOAT64:
		return 8;
	default:
		return 0;
	}
}

segc_status
rt_nifti_check(const char *label, const uint8_t *h, size_t n, int64_t file_bytes, int64_t *need,
               int *version, char *err, size_t errlen)
{
	int64_t sz, dims[8], nvox = 1, off;
	int swap, v2, i, dt, bitpix, nb;
	double voff, slope;

	if (n < 348)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: %zu bytes, too short for a NIfTI header (348 or 540 bytes)",
		               label, n);
	sz = rd(h, 4, 0);
	swap = 0;
	if (sz != 348 && sz != 540) {
		sz = rd(h, 4, 1);
		swap = 1;
	}
	if (sz != 348 && sz != 540)
		return rt_errf(
		    SEGC_ERR_FORMAT, err, errlen,
		    "%s: not a NIfTI file: sizeof_hdr at byte 0 is %lld, expected 348 or 540",
		    label, (long long)rd(h, 4, 0));
	v2 = sz == 540;
	if (v2 && n < 540)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: %zu bytes, too short for a NIfTI-2 header (540 bytes)", label,
		               n);
	if (!v2 && memcmp(h + 344, "n+1", 4) != 0)
		return rt_errf(
		    SEGC_ERR_FORMAT, err, errlen,
		    "%s: magic at byte 344 is not \"n+1\" (a single-file NIfTI-1 image)%s", label,
		    memcmp(h + 344, "ni1", 4) == 0 ? "; .hdr/.img pairs are not supported" : "");
	if (v2 && memcmp(h + 4, "n+2\0\r\n\032\n", 8) != 0)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: magic at byte 4 is not \"n+2\" (a single-file NIfTI-2 image)",
		               label);
	for (i = 0; i < 8; i++)
		dims[i] = v2 ? rd(h + 16 + 8 * i, 8, swap) : rd(h + 40 + 2 * i, 2, swap);
	dt = (int)(v2 ? rd(h + 12, 2, swap) : rd(h + 70, 2, swap));
	bitpix = (int)(v2 ? rd(h + 14, 2, swap) : rd(h + 72, 2, swap));
	voff = v2 ? (double)rd(h + 168, 8, swap) : rdf(h + 108, 4, swap);
	slope = v2 ? rdf(h + 176, 8, swap) : rdf(h + 112, 4, swap);
	if (dims[0] < 1 || dims[0] > 7)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: dim[0] is %lld, expected 1 .. 7 dimensions", label,
		               (long long)dims[0]);
	for (i = 1; i <= dims[0]; i++) {
		if (dims[i] < 1 || dims[i] > ((int64_t)1 << 31))
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "%s: dim[%d] is %lld, expected a size >= 1", label, i,
			               (long long)dims[i]);
		if (i > 4 && dims[i] != 1)
			return rt_errf(SEGC_ERR_FORMAT, err, errlen,
			               "%s: dim[%d] is %lld: images of more than 4 dimensions are "
			               "not supported",
			               label, i, (long long)dims[i]);
		nvox *= dims[i];
		if (nvox > MAX_VOXELS)
			return rt_errf(SEGC_ERR_FORMAT, err, errlen, "%s: more than 2^32 voxels",
			               label);
	}
	nb = vox_bytes(dt);
	if (!nb)
		return rt_errf(
		    SEGC_ERR_FORMAT, err, errlen,
		    "%s: datatype %d (%s) is not supported, expected an integer or float "
		    "type",
		    label, dt, nifti_datatype_string(dt));
	if (bitpix != 8 * nb)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: bitpix is %d, expected %d for datatype %s", label, bitpix,
		               8 * nb, nifti_datatype_string(dt));
	if (!(voff >= (double)sz && voff < 1e15) || voff != floor(voff))
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: vox_offset is %g, expected a whole number >= %lld", label, voff,
		               (long long)sz);
	if (isinf(slope))
		return rt_errf(SEGC_ERR_FORMAT, err, errlen, "%s: scl_slope is infinite", label);
	off = (int64_t)voff;
	*need = off + nvox * nb;
	*version = v2 ? 2 : 1;
	if (file_bytes >= 0 && file_bytes < *need)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: truncated: %lld bytes, expected %lld (vox_offset %lld + %lld "
		               "voxels x %d bytes)",
		               label, (long long)file_bytes, (long long)*need, (long long)off,
		               (long long)nvox, nb);
	return SEGC_OK;
}

/* stream the whole (decompressed) file: its first bytes into hdr and its size */
static segc_status
scan_file(const char *path, uint8_t *hdr, size_t hsize, size_t *got, int64_t *total, char *err,
          size_t errlen)
{
	char eb[128];
	uint8_t buf[1 << 16];
	gzFile f;
	int r;

	*got = 0;
	*total = 0;
	f = gzopen(path, "rb");
	if (!f)
		return rt_errf(SEGC_ERR_IO, err, errlen, "cannot open %s: %s", path,
		               rt_strerror(errno ? errno : ENOMEM, eb, sizeof eb));
	while ((r = gzread(f, buf, sizeof buf)) > 0) {
		if (*got < hsize) {
			size_t k = hsize - *got < (size_t)r ? hsize - *got : (size_t)r;
			memcpy(hdr + *got, buf, k);
			*got += k;
		}
		*total += r;
	}
	if (r < 0) {
		int en;
		const char *m = gzerror(f, &en);
		segc_status st = rt_errf(
		    SEGC_ERR_FORMAT, err, errlen, "%s: corrupt gzip data after %lld bytes: %s",
		    path, (long long)*total, en == Z_ERRNO ? rt_strerror(errno, eb, sizeof eb) : m);
		gzclose(f);
		return st;
	}
	if (gzclose(f) != Z_OK && *total > 0)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: truncated gzip stream after %lld bytes", path,
		               (long long)*total);
	return SEGC_OK;
}

static void
to_f32(float *dst, const void *src, int dt, int64_t n, double slope, double inter)
{
	int64_t i;
	int scale = slope != 0 && !isnan(slope) && !(slope == 1 && inter == 0);

#define CONV(T)                                                                                    \
	for (i = 0; i < n; i++)                                                                    \
		dst[i] = (float)((const T *)src)[i];                                               \
	break
	switch (dt) {
	case NIFTI_TYPE_UINT8:
		CONV(uint8_t);
	case NIFTI_TYPE_INT8:
		CONV(int8_t);
	case NIFTI_TYPE_INT16:
		CONV(int16_t);
	case NIFTI_TYPE_UINT16:
		CONV(uint16_t);
	case NIFTI_TYPE_INT32:
		CONV(int32_t);
	case NIFTI_TYPE_UINT32:
		CONV(uint32_t);
	case NIFTI_TYPE_INT64:
		CONV(int64_t);
	case NIFTI_TYPE_UINT64:
		CONV(uint64_t);
	case NIFTI_TYPE_FLOAT32:
		CONV(float);
	case NIFTI_TYPE_FLOAT64:
		CONV(double);
	}
#undef CONV
	if (scale)
		for (i = 0; i < n; i++)
			dst[i] = (float)(dst[i] * slope + inter);
}

void
rt_volume_free(RtVolume *v)
{
	if (!v)
		return;
	free(v->data);
	if (v->hdr)
		nifti_image_free(v->hdr);
	memset(v, 0, sizeof *v);
}

segc_status
rt_nifti_read(const char *path, RtVolume *v, char *err, size_t errlen)
{
	uint8_t hdr[540];
	size_t got;
	int64_t total, need, nvox;
	nifti_image *nim;
	segc_status st;
	int version;

	memset(v, 0, sizeof *v);
	st = scan_file(path, hdr, sizeof hdr, &got, &total, err, errlen);
	if (st != SEGC_OK)
		return st;
	st = rt_nifti_check(path, hdr, got, total, &need, &version, err, errlen);
	if (st != SEGC_OK)
		return st;
	nifti_set_debug_level(0);
	nim = nifti_image_read(path, 1);
	if (!nim || !nim->data)
		return rt_errf(SEGC_ERR_FORMAT, err, errlen, "%s: libnifti2 cannot read the image",
		               path);
	nvox = nim->nx * nim->ny * nim->nz * nim->nt;
	if (nim->nvox != nvox || nim->nu * nim->nv * nim->nw != 1 || !vox_bytes(nim->datatype)) {
		nifti_image_free(nim);
		return rt_errf(SEGC_ERR_FORMAT, err, errlen,
		               "%s: libnifti2 read a different image than the header describes",
		               path);
	}
	v->data = malloc((size_t)nvox * sizeof *v->data);
	if (!v->data) {
		nifti_image_free(nim);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "%s: out of memory", path);
	}
	to_f32(v->data, nim->data, nim->datatype, nvox, nim->scl_slope, nim->scl_inter);
	free(nim->data);
	nim->data = NULL;
	v->hdr = nim;
	v->dim[0] = nim->nx;
	v->dim[1] = nim->ny;
	v->dim[2] = nim->nz;
	v->dim[3] = nim->nt;
	v->version = version;
	v->datatype = nim->datatype;
	v->pixdim[0] = nim->dx;
	v->pixdim[1] = nim->dy;
	v->pixdim[2] = nim->dz;
	v->pixdim[3] = nim->dt;
	v->qform_code = nim->qform_code;
	v->sform_code = nim->sform_code;
	return SEGC_OK;
}

static int
mat_differs(const nifti_dmat44 *a, const nifti_dmat44 *b, double tol)
{
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			if (!(fabs(a->m[i][j] - b->m[i][j]) <= tol))
				return 1;
	return 0;
}

int
rt_nifti_same_grid(const RtVolume *a, const RtVolume *b, char *why, size_t len)
{
	const nifti_image *x = a->hdr, *y = b->hdr;

	if (a->dim[0] != b->dim[0] || a->dim[1] != b->dim[1] || a->dim[2] != b->dim[2]) {
		snprintf(why, len, "grid %lldx%lldx%lld, expected %lldx%lldx%lld",
		         (long long)b->dim[0], (long long)b->dim[1], (long long)b->dim[2],
		         (long long)a->dim[0], (long long)a->dim[1], (long long)a->dim[2]);
		return -1;
	}
	if (x->qform_code != y->qform_code || x->sform_code != y->sform_code ||
	    (x->qform_code > 0 && mat_differs(&x->qto_xyz, &y->qto_xyz, 1e-4)) ||
	    (x->sform_code > 0 && mat_differs(&x->sto_xyz, &y->sto_xyz, 1e-4))) {
		snprintf(why, len, "a different qform/sform (voxel-to-world transform)");
		return -1;
	}
	for (int i = 0; i < 3; i++)
		if (!(fabs(a->pixdim[i] - b->pixdim[i]) <= 1e-4)) {
			snprintf(why, len, "voxel size %g along axis %d, expected %g", b->pixdim[i],
			         i, a->pixdim[i]);
			return -1;
		}
	return 0;
}

/* the written file read back: the same grid, geometry, datatype and bytes */
static segc_status
verify(const char *path, const char *tmp, const nifti_image *w, size_t nbytes, char *err,
       size_t errlen)
{
	nifti_image *r;
	segc_status st = SEGC_OK;
	int i;

	nifti_set_debug_level(0);
	r = nifti_image_read(tmp, 1);
	if (!r || !r->data)
		st = rt_errf(SEGC_ERR_IO, err, errlen,
		             "%s: the written file cannot be read back (disk full?)", path);
	else if (r->nvox != w->nvox || r->datatype != w->datatype || r->nx != w->nx ||
	         r->ny != w->ny || r->nz != w->nz || r->nt != w->nt)
		st =
		    rt_errf(SEGC_ERR_IO, err, errlen,
		            "%s: the written file reads back with another shape or datatype", path);
	else if (r->qform_code != w->qform_code || r->sform_code != w->sform_code ||
	         mat_differs(&r->qto_xyz, &w->qto_xyz, 1e-5) ||
	         mat_differs(&r->sto_xyz, &w->sto_xyz, 1e-5))
		st = rt_errf(SEGC_ERR_IO, err, errlen,
		             "%s: the written file reads back with another qform/sform", path);
	else if (memcmp(r->data, w->data, nbytes) != 0)
		st = rt_errf(SEGC_ERR_IO, err, errlen,
		             "%s: the written file reads back with other voxel values", path);
	for (i = 1; st == SEGC_OK && i <= 4; i++)
		if (r->pixdim[i] != w->pixdim[i])
			st =
			    rt_errf(SEGC_ERR_IO, err, errlen,
			            "%s: the written file reads back with other voxel sizes", path);
	if (r)
		nifti_image_free(r);
	return st;
}

/* fsync a file or directory by name */
static int
sync_path(const char *p, int dir)
{
	int fd = open(p, (dir ? O_DIRECTORY : 0) | O_RDONLY);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* libnifti2 2.1's nifti_image_write treats a one-file NIfTI-2 image as a header/image pair of
 * the same name and truncates the header away: build the header with libnifti, write the file
 * here.  Returns 0 or an errno value. */
static int
write_nifti2(nifti_image *nim, const char *tmp, int gz)
{
	nifti_2_header h;
	static const char ext[4] = {0, 0, 0, 0};
	const char *p = nim->data;
	size_t left = (size_t)nim->nvox * (size_t)nim->nbyper;
	gzFile f;

	if (sizeof h != 540 || nifti_convert_nim2n2hdr(nim, &h) != 0)
		return EINVAL;
	h.sizeof_hdr = 540;
	memcpy(h.magic, "n+2\0\r\n\032\n", 8);
	h.vox_offset = 544;
	f = gzopen(tmp, gz ? "wb6" : "wbT");
	if (!f)
		return errno ? errno : ENOMEM;
	int ok = gzwrite(f, &h, 540) == 540 && gzwrite(f, ext, 4) == 4;
	while (ok && left > 0) {
		unsigned k = left > (1u << 30) ? 1u << 30 : (unsigned)left;
		ok = gzwrite(f, p, k) == (int)k;
		p += k;
		left -= k;
	}
	int en = ok ? 0 : errno ? errno : EIO;
	if (gzclose(f) != Z_OK && !en)
		en = errno ? errno : EIO;
	return en;
}

segc_status
rt_nifti_write(const char *path, const RtVolume *geom, int64_t nt, int vox, const void *data,
               int is_label, const char *descrip, char *err, size_t errlen)
{
	static const int dts[] = {NIFTI_TYPE_UINT8, NIFTI_TYPE_INT16, NIFTI_TYPE_FLOAT32};
	static const int nbs[] = {1, 2, 4};
	char tmp[PATH_MAX], dir[PATH_MAX], eb[128];
	const char *base, *ext;
	nifti_image *nim;
	segc_status st;
	int fd, en = 0;
	size_t n;

	if (!geom || !geom->hdr || !data || nt < 1 || vox < RT_VOX_U8 || vox > RT_VOX_F32)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "%s: bad write request",
		               path);
	n = strlen(path);
	ext = n > 7 && !strcmp(path + n - 7, ".nii.gz") ? ".nii.gz"
	      : n > 4 && !strcmp(path + n - 4, ".nii")  ? ".nii"
	                                                : NULL;
	if (!ext)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen,
		               "%s: an output image must end in .nii or .nii.gz", path);
	base = strrchr(path, '/');
	snprintf(dir, sizeof dir, "%.*s", base ? (int)(base - path) : 1, base ? path : ".");
	if (base == path)
		snprintf(dir, sizeof dir, "/");
	if (snprintf(tmp, sizeof tmp, "%s/.%s.tmpXXXXXX%s", dir, base ? base + 1 : path, ext) >=
	    (int)sizeof tmp)
		return rt_errf(SEGC_ERR_INVALID_ARGUMENT, err, errlen, "%s: path too long", path);
	fd = mkstemps(tmp, (int)strlen(ext));
	if (fd < 0)
		return rt_errf(SEGC_ERR_IO, err, errlen, "%s: cannot create a temporary file: %s",
		               path, rt_strerror(errno, eb, sizeof eb));
	close(fd);

	nim = nifti_copy_nim_info(geom->hdr);
	if (!nim) {
		unlink(tmp);
		return rt_errf(SEGC_ERR_NO_MEMORY, err, errlen, "%s: out of memory", path);
	}
	nifti_free_extensions(nim);
	for (int i = 0; i < 8; i++)
		nim->dim[i] = 1;
	nim->dim[0] = nt > 1 ? 4 : 3;
	nim->dim[1] = geom->dim[0];
	nim->dim[2] = geom->dim[1];
	nim->dim[3] = geom->dim[2];
	nim->dim[4] = nt;
	nifti_update_dims_from_array(nim);
	nim->datatype = dts[vox];
	nim->nbyper = nbs[vox];
	nim->scl_slope = 0; /* no scaling */
	nim->scl_inter = 0;
	nim->cal_min = nim->cal_max = 0;
	nim->intent_code = is_label ? NIFTI_INTENT_LABEL : NIFTI_INTENT_NONE;
	memset(nim->intent_name, 0, sizeof nim->intent_name);
	memset(nim->descrip, 0, sizeof nim->descrip);
	snprintf(nim->descrip, sizeof nim->descrip, "%s", descrip ? descrip : "");
	/* keep NIfTI-2 for a NIfTI-2 input (nifti_set_filenames would pick the type from the
	 * name, which is the same for both) */
	if (nifti_set_filenames(nim, tmp, 0, 1) != 0) {
		nifti_image_free(nim);
		unlink(tmp);
		return rt_errf(SEGC_ERR_IO, err, errlen, "%s: libnifti2 rejects the file name",
		               path);
	}
	nim->nifti_type = geom->version == 2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
	nifti_set_iname_offset(nim, geom->version); /* else the data overwrites the header */
	nim->data = (void *)data;
	nifti_set_debug_level(0);
	errno = 0;
	if (geom->version == 2)
		en = write_nifti2(nim, tmp, !strcmp(ext, ".nii.gz"));
	else
		nifti_image_write(nim);
	en = en ? en : errno;
	st = verify(path, tmp, nim, (size_t)nim->nvox * (size_t)nim->nbyper, err, errlen);
	nim->data = NULL;
	nifti_image_free(nim);
	if (st == SEGC_OK && sync_path(tmp, 0) != 0)
		st = rt_errf(SEGC_ERR_IO, err, errlen, "%s: fsync: %s", path,
		             rt_strerror(errno, eb, sizeof eb));
	if (st == SEGC_OK)
		chmod(tmp, 0644); /* mkstemps made it 0600; an output is an ordinary file */
	if (st == SEGC_OK && rename(tmp, path) != 0)
		st = rt_errf(SEGC_ERR_IO, err, errlen, "%s: cannot rename the temporary file: %s",
		             path, rt_strerror(errno, eb, sizeof eb));
	if (st != SEGC_OK) {
		if (en && strstr(err, "cannot be read back"))
			rt_errf(SEGC_ERR_IO, err, errlen, "%s: writing failed: %s", path,
			        rt_strerror(en, eb, sizeof eb));
		unlink(tmp);
		return st;
	}
	sync_path(dir, 1);
	return SEGC_OK;
}
