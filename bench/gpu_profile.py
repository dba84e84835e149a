#!/usr/bin/python3
"""bench/gpu_profile.py -- where a CUDA engine's time goes, kernel by kernel, on the GPU.

    python3 bench/gpu_profile.py [--out FILE] [--runs N] [--top K] ENGINE.so ...

For each engine (compiled for cuda:sm_XX, e.g. build/gpu-cases/bench/unet3d.so from
`make gpu-prep`): random weights (uniform, small) and a random input on the GPU, a warm-up run,
then N runs through run_device inside torch.profiler (CUDA activities: CUPTI records every
kernel launched in the process, the engine's own included, as long as it shares the primary
context, which runtime/cuda.c does).  Prints the top K kernels by total GPU time (name, calls,
total and mean ms, share) and the totals per kernel class (the op in the kernel's name:
k12_conv3d_t0 -> conv3d; the CPU-side names come from the launch schedule).  CUDA graphs are
turned off (SEGC_CUDA_GRAPHS=0) so that each launch is one record.  Timing numbers from the
profiler include its own overhead: use bench/bench_gpu.py for latency.
"""
import argparse
import json
import os
import re
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cuda"))

ST_DTYPE = {"float32": "F32", "int64": "I64", "int32": "I32", "float16": "F16", "uint8": "U8"}


def random_weights(eng, rng):
    """safetensors bytes for every weight of eng: uniform(-a, a), a = 1/sqrt(fan_in)"""
    import numpy as np
    n = eng.api.num_weights(eng.e)
    header, blobs, off = {}, [], 0
    for i in range(n):
        name, dt, shape = eng._info(eng.api.weight_info, i)
        if np.dtype(dt) == np.float32:
            fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            a = 1.0 / max(fan, 1) ** 0.5
            arr = rng.uniform(-a, a, size=shape).astype(np.float32)
            if len(shape) == 1 and re.search(r"(weight|alpha|D)$", name):
                arr = np.ones(shape, np.float32)
        else:
            arr = np.zeros(shape, dtype=dt)
        b = arr.tobytes()
        header[name] = {"dtype": ST_DTYPE[np.dtype(dt).name], "shape": list(shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def kclass(name):
    m = re.match(r"k\d+_(.+?)(_t\d+)?$", name)
    return m.group(1) if m else "other"


def profile_engine(path, runs, top, out):
    import numpy as np
    import torch
    import segc_api
    from torch.profiler import ProfilerActivity, profile

    t0 = time.time()
    eng = segc_api.Engine(path)
    rng = np.random.default_rng(0)
    eng.load_weights(random_weights(eng, rng))
    ins = []
    for _, dt, shape in eng.inputs:
        if np.dtype(dt) == np.float32:
            ins.append(torch.randn(shape, device="cuda"))
        else:
            ins.append(torch.zeros(shape, dtype=torch.int64, device="cuda"))
    outs = [torch.empty(shape, device="cuda", dtype=torch.float32) for _, _, shape in eng.outputs]
    ip = [t.data_ptr() for t in ins]
    op = [t.data_ptr() for t in outs]
    eng.run_device(ip, op)
    torch.cuda.synchronize()
    w0 = time.time()
    for _ in range(runs):
        eng.run_device(ip, op)
    torch.cuda.synchronize()
    wall = (time.time() - w0) * 1e3 / runs
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            eng.run_device(ip, op)
        torch.cuda.synchronize()
    rows = {}
    for ev in prof.events():
        dev_us = getattr(ev, "device_time", None)
        if dev_us is None:
            dev_us = getattr(ev, "cuda_time", 0)
        if not dev_us or ev.name.startswith("Memcpy") or ev.name.startswith("Memset"):
            continue
        r = rows.setdefault(ev.name, [0, 0.0])
        r[0] += 1
        r[1] += dev_us / 1e3
    total = sum(v[1] for v in rows.values()) or 1e-9
    p = lambda s: print(s, file=out, flush=True)
    p("== %s: %d kernels, %.2f ms GPU per run (profiled), %.2f ms wall per run (unprofiled), "
      "%.0f s" % (os.path.basename(path), len(rows), total / runs, wall, time.time() - t0))
    p("%-40s %6s %10s %9s %6s" % ("kernel", "calls", "ms/run", "ms/call", "share"))
    for name, (calls, ms) in sorted(rows.items(), key=lambda kv: -kv[1][1])[:top]:
        p("%-40s %6d %10.3f %9.4f %5.1f%%" % (name[:40], calls // runs, ms / runs,
                                              ms / max(calls, 1), 100 * ms / total))
    cls = {}
    for name, (calls, ms) in rows.items():
        c = cls.setdefault(kclass(name), [0, 0.0])
        c[0] += calls // runs
        c[1] += ms / runs
    p("per class:")
    for c, (calls, ms) in sorted(cls.items(), key=lambda kv: -kv[1][1]):
        p("  %-24s %5d launches %9.3f ms %5.1f%%" % (c, calls, ms, 100 * ms * runs / total))
    eng.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("engines", nargs="+")
    ap.add_argument("--out", help="also write the report here")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    os.environ.setdefault("SEGC_CUDA_GRAPHS", "0")

    class Tee:
        def __init__(self, f):
            self.f = f

        def write(self, s):
            sys.stdout.write(s)
            if self.f:
                self.f.write(s)

        def flush(self):
            sys.stdout.flush()
            if self.f:
                self.f.flush()

    f = open(a.out, "w") if a.out else None
    out = Tee(f)
    rc = 0
    for path in a.engines:
        try:
            profile_engine(path, a.runs, a.top, out)
        except Exception as e:  # one bad engine must not lose the others
            print("== %s: FAILED: %s" % (path, e), file=out, flush=True)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
