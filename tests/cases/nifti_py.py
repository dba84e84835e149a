"""tests/cases/nifti_py.py -- minimal NIfTI-1 / NIfTI-2 writer and reader in plain Python, written
from the format's published header layout (nifti1.h, nifti2.h), so that the tests check segc's
libnifti2 path against an independent implementation.  Arrays are in NIfTI axis order
(nx, ny, nz[, nt]), x fastest on disk (Fortran order)."""
import gzip
import struct

import numpy as np

DT = {np.dtype(np.uint8): (2, 8), np.dtype(np.int16): (4, 16), np.dtype(np.int32): (8, 32),
      np.dtype(np.float32): (16, 32), np.dtype(np.float64): (64, 64),
      np.dtype(np.int8): (256, 8), np.dtype(np.uint16): (512, 16)}
NP = {v[0]: k for k, v in DT.items()}


def header(data, version=1, pixdim=(1.0, 1.0, 1.0), qform=None, sform=None,
           slope=0.0, inter=0.0, qcode=1, scode=1, units=10):
    """header bytes (with the 4-byte extension flag) for data; qform = (b, c, d, qx, qy, qz,
    qfac), sform = 3x4 rows"""
    dt, bitpix = DT[data.dtype]
    dims = [data.ndim] + list(data.shape) + [1] * (7 - data.ndim)
    qform = qform or (0.0, 0.0, 0.0, -10.0, 20.5, -3.0, 1.0)
    sform = sform or [[pixdim[0], 0, 0, -10.0], [0, pixdim[1], 0, 20.5], [0, 0, pixdim[2], -3.0]]
    pd = [qform[6], pixdim[0], pixdim[1], pixdim[2], 1.0, 1.0, 1.0, 1.0]
    if version == 1:
        h = bytearray(348)
        struct.pack_into("<i", h, 0, 348)
        struct.pack_into("<8h", h, 40, *dims)
        struct.pack_into("<hh", h, 70, dt, bitpix)
        struct.pack_into("<8f", h, 76, *pd)
        struct.pack_into("<fff", h, 108, 352.0, slope, inter)
        h[123] = units
        struct.pack_into("<hh", h, 252, qcode, scode)
        struct.pack_into("<6f", h, 256, *qform[:6])
        for r in range(3):
            struct.pack_into("<4f", h, 280 + 16 * r, *sform[r])
        h[344:348] = b"n+1\0"
    else:
        h = bytearray(540)
        struct.pack_into("<i", h, 0, 540)
        h[4:12] = b"n+2\0\r\n\x1a\n"
        struct.pack_into("<hh", h, 12, dt, bitpix)
        struct.pack_into("<8q", h, 16, *dims)
        struct.pack_into("<8d", h, 104, *pd)
        struct.pack_into("<q", h, 168, 544)
        struct.pack_into("<dd", h, 176, slope, inter)
        struct.pack_into("<ii", h, 344, qcode, scode)
        struct.pack_into("<6d", h, 352, *qform[:6])
        for r in range(3):
            struct.pack_into("<4d", h, 400 + 32 * r, *sform[r])
        struct.pack_into("<i", h, 500, units)
    return bytes(h) + b"\0\0\0\0"


def write(path, data, **kw):
    raw = header(data, **kw) + np.asarray(data).tobytes(order="F")
    if path.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    with open(path, "wb") as f:
        f.write(raw)


def read(path):
    """(fields, data) where fields holds version, dims, datatype, pixdim, qform/sform codes,
    quatern + offsets, srows, descrip, intent_code"""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    (sz,) = struct.unpack_from("<i", raw, 0)
    h = {}
    if sz == 348:
        h["version"] = 1
        dims = struct.unpack_from("<8h", raw, 40)
        h["intent_code"], h["datatype"], _ = struct.unpack_from("<hhh", raw, 68)
        h["pixdim"] = struct.unpack_from("<8f", raw, 76)
        off = int(struct.unpack_from("<f", raw, 108)[0])
        h["codes"] = struct.unpack_from("<hh", raw, 252)
        h["quatern"] = struct.unpack_from("<6f", raw, 256)
        h["srow"] = struct.unpack_from("<12f", raw, 280)
        h["descrip"] = raw[148:228].split(b"\0")[0].decode()
        h["units"] = raw[123]
    else:
        h["version"] = 2
        h["datatype"] = struct.unpack_from("<h", raw, 12)[0]
        dims = struct.unpack_from("<8q", raw, 16)
        h["pixdim"] = struct.unpack_from("<8d", raw, 104)
        off = struct.unpack_from("<q", raw, 168)[0]
        h["codes"] = struct.unpack_from("<ii", raw, 344)
        h["quatern"] = struct.unpack_from("<6d", raw, 352)
        h["srow"] = struct.unpack_from("<12d", raw, 400)
        h["descrip"] = raw[240:320].split(b"\0")[0].decode()
        h["units"] = struct.unpack_from("<i", raw, 500)[0]
        h["intent_code"] = struct.unpack_from("<i", raw, 504)[0]
    shape = tuple(dims[1:1 + dims[0]])
    h["dims"] = shape
    dt = NP[h["datatype"]]
    n = int(np.prod(shape))
    data = np.frombuffer(raw, dtype=dt, count=n, offset=off).reshape(shape, order="F")
    return h, data
