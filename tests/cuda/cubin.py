#!/usr/bin/env python3
"""tests/cuda/cubin.py -- check the cubin a CUDA engine.so embeds, without a GPU.

Finds the hidden symbols segc_gen_cuda_cubin and segc_gen_cuda_cubin_size in the engine's
ELF symbol table, extracts the cubin and checks that it is a 64-bit ELF for EM_CUDA (190)
built for the expected sm_XX, and that its symbol table defines every kernel the launch
schedule names.  (cuobjdump and nvdisasm are not part of the toolkit on the build machine;
this is what they would check first.)

    tests/cuda/cubin.py ENGINE.so sm_90 [KERNEL...]      exit 0 when the cubin is valid
"""
import struct
import sys

EM_CUDA = 190


def _sections(data):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = []
    for i in range(shnum):
        name, typ, flags, addr, off, size, link, info, align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + i * shentsize)
        secs.append(dict(name=name, type=typ, addr=addr, off=off, size=size, link=link,
                         entsize=entsize))
    strtab = secs[shstrndx]
    for s in secs:
        s["sname"] = _cstr(data, strtab["off"] + s["name"])
    return secs


def _cstr(data, off):
    end = data.index(b"\0", off)
    return data[off:end].decode(errors="replace")


def symbols(data):
    """name -> (value, size, section index, type) from .symtab (and .dynsym)"""
    secs = _sections(data)
    out = {}
    for s in secs:
        if s["type"] not in (2, 11) or not s["entsize"]:  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strtab = secs[s["link"]]
        for k in range(s["size"] // s["entsize"]):
            name, info, other, shndx, value, size = struct.unpack_from(
                "<IBBHQQ", data, s["off"] + k * s["entsize"])
            out[_cstr(data, strtab["off"] + name)] = (value, size, shndx, info & 0xF)
    return out, secs


def _file_offset(secs, shndx, value):
    s = secs[shndx]
    return s["off"] + (value - s["addr"])


def extract(engine):
    data = open(engine, "rb").read()
    syms, secs = symbols(data)
    if "segc_gen_cuda_cubin" not in syms or "segc_gen_cuda_cubin_size" not in syms:
        raise ValueError("no segc_gen_cuda_cubin in the symbol table (not a CUDA engine?)")
    v, size, shndx, _ = syms["segc_gen_cuda_cubin_size"]
    (n,) = struct.unpack_from("<Q", data, _file_offset(secs, shndx, v))
    v, size, shndx, _ = syms["segc_gen_cuda_cubin"]
    if size != n:
        raise ValueError("cubin symbol is %d bytes, cubin_size says %d" % (size, n))
    off = _file_offset(secs, shndx, v)
    return data[off:off + n]


def sm_of(cubin):
    """the sm number in the cubin's e_flags (both the old and the CUDA 12.8+ layouts)"""
    (flags,) = struct.unpack_from("<I", cubin, 0x30)
    old = flags & 0xFF
    new = (flags >> 8) & 0xFF
    return old, new, flags


def check_cubin(cubin, arch, kernels):
    """None when valid, else the problem as text"""
    if cubin[:4] != b"\x7fELF" or cubin[4] != 2:
        return "the cubin is not a 64-bit ELF file"
    (machine,) = struct.unpack_from("<H", cubin, 0x12)
    if machine != EM_CUDA:
        return "the cubin's e_machine is %d, not EM_CUDA (190)" % machine
    want = int(arch[3:])
    old, new, flags = sm_of(cubin)
    if want not in (old, new):
        return "the cubin is for e_flags 0x%x, not %s" % (flags, arch)
    syms, _ = symbols(cubin)
    missing = [k for k in kernels if k not in syms or syms[k][3] != 2]  # STT_FUNC
    if missing:
        return "kernels missing from the cubin: %s" % " ".join(missing[:5])
    return None


def check_engine(engine, arch, kernels):
    try:
        return check_cubin(extract(engine), arch, kernels)
    except (ValueError, OSError, struct.error) as e:
        return str(e)


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    problem = check_engine(argv[0], argv[1], argv[2:])
    if problem:
        print("%s: %s" % (argv[0], problem))
        return 1
    print("%s: valid %s cubin, %d kernels checked" % (argv[0], argv[1], len(argv) - 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
