#!/usr/bin/python3
"""tests/cuda/segc_cuda.py -- a stand-in for the segc binary that compiles for CUDA.

Point SEGC at this file and the ordinary PyTorch tests (tests/ops/test_*.py --engine-only,
tests/models/test_*.py) check the CUDA backend, unchanged:

  segc GRAPH -o ENGINE.so ...  ->  $SEGC_REAL GRAPH -o ENGINE.so ... --target cuda:$SEGC_CUDA_ARCH
                                   (NVRTC compiles the kernels; the engine embeds the cubin)
  segc run ENGINE.so ...       ->  gpu mode: $SEGC_REAL run (the engine runs on the GPU)
                                   emu mode: the generated CUDA C, compiled for the host with
                                   g++ and tests/cuda/emu_shim.h, runs the launch schedule
                                   (grid-stride loops over 2 blocks x 3 threads, in reverse)
  segc info | interp | synth   ->  $SEGC_REAL, unchanged

Environment: SEGC_REAL (the real binary, default build/segc), SEGC_CUDA_MODE (emu | gpu,
default emu), SEGC_CUDA_ARCH (sm_90 default, or sm_80), SEGC_CUDA_ALSO (more archs to compile
the same graph for, e.g. "sm_80": checks NVRTC and the cubin for them too), SEGC_PRECISION
(fp32 | tf32 | bf16: --precision), SEGC_EMU_EXACT=1 (the emulated tensor-core MMAs do not round
their inputs to tf32/bf16: checks the kernels' indexing at the fp32 tolerance).
In emu mode each compile also checks the embedded cubin (tests/cuda/cubin.py).
Block-mapped kernels (shared tiles, barriers, MMA) run each block's threads as fibers
(tests/cuda/emu_shim.h).
"""
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, HERE)

SUBCOMMANDS = ("info", "run", "interp", "synth")


def real():
    b = os.environ.get("SEGC_REAL", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def fail(msg, code=1):
    sys.stderr.write("segc: error: %s\n" % msg)
    sys.exit(code)


def passthrough(argv):
    os.execv(real(), [real()] + argv)


def split_source(text):
    """(CUDA source, schedule lines, manifest lines) of `segc --emit=cuda` output"""
    m = re.search(r"/\* launch schedule:\n(.*?)\*/\n/\* manifest:\n(.*?)\*/\n", text, re.S)
    if not m:
        fail("--emit=cuda printed no launch schedule")
    return text[:m.start()], m.group(1).splitlines(), m.group(2).splitlines()


def shim(flags):
    """the path to -include: a copy of emu_shim.h next to its precompiled header (g++ -x
    c++-header, built once per shim text and flags into a directory under the temporary
    directory; about 0.12 s less per compile), or the shim itself where that fails"""
    src = os.path.join(HERE, "emu_shim.h")
    key = hashlib.sha1(open(src, "rb").read() + " ".join(flags).encode()).hexdigest()[:16]
    d = os.path.join(tempfile.gettempdir(), "segc-emu-pch-%d-%s" % (os.getuid(), key))
    h = os.path.join(d, "emu_shim.h")
    if os.path.exists(h + ".gch"):
        return h
    tmp = tempfile.mkdtemp(prefix=os.path.basename(d) + ".", dir=os.path.dirname(d))
    shutil.copy(src, tmp)
    r = subprocess.run(["g++"] + flags + ["-x", "c++-header", os.path.join(tmp, "emu_shim.h"),
                        "-o", os.path.join(tmp, "emu_shim.h.gch")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if r.returncode == 0:
            os.rename(tmp, d)  # atomic; another process may have won: then it is there
    except OSError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    return h if os.path.exists(h + ".gch") else src


def compile_cmd(argv):
    arch = os.environ.get("SEGC_CUDA_ARCH", "sm_90")
    mode = os.environ.get("SEGC_CUDA_MODE", "emu")
    extra = ["--target", "cuda:" + arch]
    if os.environ.get("SEGC_PRECISION"):
        extra += ["--precision", os.environ["SEGC_PRECISION"]]
    if os.environ.get("SEGC_EMU_EXACT") == "1" and mode == "emu":
        # the exact emulation's bf16 is 4 bytes wide: the arena's bf16 activations (2 bytes
        # each in the plan) would overlap, so exact runs keep them f32
        os.environ["SEGC_ACT_BF16"] = "0"
    out = None
    for i, a in enumerate(argv):
        if a == "-o" and i + 1 < len(argv):
            out = argv[i + 1]
        elif a.startswith("-o") and len(a) > 2:
            out = a[2:]
    if mode == "gpu" or out is None or "--emit=cuda" in argv:
        os.execv(real(), [real()] + argv + extra)
    keys = "--emit=keys" in argv  # (segc tune): the keys on stdout, the emulation as always
    if keys:
        argv = [a for a in argv if a != "--emit=keys"]
        noout = [a for i, a in enumerate(argv) if a != "-o" and (i == 0 or argv[i - 1] != "-o")]
        q = subprocess.run([real()] + noout + extra + ["--emit=keys"])
        if q.returncode != 0:
            sys.exit(q.returncode)
    p = subprocess.run([real()] + argv + extra + ["--emit=cuda"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(p.returncode)
    src, sched, manifest = split_source(p.stdout)
    import cubin
    problem = cubin.check_engine(out, arch, [l.split()[1] for l in sched
                                             if l.startswith(("launch ", "pack "))])
    if problem:
        fail("%s: %s" % (out, problem))
    for other in os.environ.get("SEGC_CUDA_ALSO", "").split():
        noout = [a for i, a in enumerate(argv) if a != "-o" and (i == 0 or argv[i - 1] != "-o")]
        q = subprocess.run([real()] + noout + ["--target", "cuda:" + other, "--emit=cuda"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           universal_newlines=True)
        if q.returncode != 0:
            fail("compiling for %s: %s" % (other, q.stderr.strip()))
    cu = out + ".emu.cu"
    with open(cu, "w") as f:
        f.write(src)
    with open(out + ".emu.txt", "w") as f:
        f.write("\n".join(sched + manifest) + "\n")
    flags = ["-O1", "-fPIC", "-w"]
    flags += ["-DSEGC_EMU_EXACT"] if os.environ.get("SEGC_EMU_EXACT") == "1" else []
    q = subprocess.run(["g++", "-shared"] + flags + ["-include", shim(flags), "-x", "c++", cu,
                        "-o", out + ".emu.so"], stderr=subprocess.PIPE, universal_newlines=True)
    if q.returncode != 0:
        fail("g++ cannot compile the generated CUDA C for emulation: %s" % q.stderr[-2000:])
    return 0


# ---- emu run ----

DT = {"f32": "float32", "i32": "int32", "i64": "int64", "u8": "uint8", "f16": "float16"}


def parse_manifest(lines):
    m = {"input": [], "output": [], "weight": [], "arena": 0, "packed": 0, "range": {}}
    for l in lines:
        f = l.split()
        if not f:
            continue
        if f[0] == "range":  # range <input> <lo> <hi> (runtime/engine.c checks it on run)
            m["range"][f[1]] = (int(f[2]), int(f[3]))
        if f[0] in ("input", "output", "weight"):
            shape = [] if f[3] == "-" else [int(x) for x in f[3].split(",")]
            m[f[0]].append((f[1], f[2], shape))
        elif f[0] in ("arena", "packed"):
            m[f[0]] = int(f[1])
    return m


def io_pairs(values, specs):
    """--input/--output values (NAME=PATH or PATH, in order) -> {name: path}"""
    out = {}
    for i, v in enumerate(values):
        name, eq, path = v.partition("=")
        if eq and name in [s[0] for s in specs]:
            out[name] = path
        else:
            if i >= len(specs):
                fail("too many --input/--output values")
            out[specs[i][0]] = v
    return out


def emu_run(argv):
    import numpy as np
    import common
    eng, weights, ins, outs = None, None, [], []
    i = 1
    while i < len(argv):
        a = argv[i]
        v = argv[i + 1] if i + 1 < len(argv) else None
        if a in ("--weights", "--input", "--output", "--threads", "--repeat"):
            if a == "--weights":
                weights = v
            elif a == "--input":
                ins.append(v)
            elif a == "--output":
                outs.append(v)
            i += 2
            continue
        if a.split("=")[0] in ("--weights", "--input", "--output", "--threads", "--repeat"):
            k, _, v = a.partition("=")
            if k == "--weights":
                weights = v
            elif k == "--input":
                ins.append(v)
            elif k == "--output":
                outs.append(v)
        elif eng is None:
            eng = a
        i += 1
    if not os.path.exists(str(eng) + ".emu.so"):
        passthrough(argv)  # not compiled through this wrapper: a CPU engine
    lines = open(eng + ".emu.txt").read().splitlines()
    man = parse_manifest(lines)
    # the prepack launches (codegen/prepack.c: what load_weights runs), then the run's
    sched = ([l.split() for l in lines if l.startswith("pack ")] +
             [l.split() for l in lines if l.startswith("launch ")])
    slots = [np.zeros(max(man["arena"], 64) // 8 + 1, dtype=np.float64)]  # 8-byte aligned
    inmap = io_pairs(ins, man["input"])
    for name, dt, shape in man["input"]:
        a = common.read_npy(inmap[name])
        if list(a.shape) != shape or a.dtype != np.dtype(DT[dt]):
            fail("input %s: %s %s, engine expects %s %s" % (name, a.dtype, list(a.shape),
                                                              dt, shape))
        lo, hi = man["range"].get(name, (None, None))
        bad = np.flatnonzero((a < lo) | (a >= hi)) if lo is not None else []
        if len(bad):  # the runtime's message (runtime/engine.c)
            k = int(bad[0])
            fail("run: input '%s' element %d is %d, expected a value in [%d, %d)" %
                 (name, k, int(a.reshape(-1)[k]), lo, hi))
        slots.append(np.ascontiguousarray(a))
    for name, dt, shape in man["output"]:
        slots.append(np.zeros(shape, dtype=DT[dt]))
    w = common.read_safetensors(weights) if weights else {}
    for name, dt, shape in man["weight"]:
        if name not in w:
            fail("weight '%s' is missing from %s" % (name, weights))
        slots.append(np.ascontiguousarray(w[name]).astype(DT[dt], copy=False))
    slots.append(np.zeros(max(man["packed"], 64) // 8 + 1, dtype=np.float64))  # packed slot
    base = [a.ctypes.data for a in slots]
    lib = ctypes.CDLL(os.path.abspath(eng + ".emu.so"))
    lib.segc_emu_set.argtypes = [ctypes.c_uint] * 4
    for f in sched:
        name, n, grid, block, nbufs = f[1], int(f[2]), int(f[3]), int(f[4]), int(f[5])
        args = []
        for b in f[6:6 + nbufs]:
            s, o = b.split(":")
            args.append(ctypes.c_void_p(base[int(s)] + int(o)))
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p] * nbufs + [ctypes.c_longlong]
        fn.restype = None
        g, t = (2, 3) if block > 1 else (1, 1)
        for bi in reversed(range(g)):
            for ti in reversed(range(t)):
                lib.segc_emu_set(bi, ti, g, t)
                fn(*(args + [ctypes.c_longlong(n)]))
    outmap = io_pairs(outs, man["output"])
    k = 1 + len(man["input"])
    for j, (name, dt, shape) in enumerate(man["output"]):
        if name in outmap:
            common.write_npy(outmap[name], slots[k + j])
    return 0


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "--version", "--list-passes"):
        passthrough(argv)
    if argv[0] == "run" and os.environ.get("SEGC_CUDA_MODE", "emu") == "emu":
        return emu_run(argv)
    if argv[0] in SUBCOMMANDS:
        passthrough(argv)
    return compile_cmd(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
