#!/usr/bin/python3
"""bench/gpu_profile.py -- where a CUDA engine's time goes, kernel by kernel, on the GPU.

    python3 bench/gpu_profile.py [--out FILE] [--runs N] [--top K] ENGINE.so ...

For each engine (compiled for cuda:sm_XX, e.g. build/gpu-cases/bench/unet3d.so from
`make gpu-prep`): random weights (uniform, small) and a random input on the GPU, a warm-up run,
then N runs through run_device inside torch.profiler (CUDA activities: CUPTI records every
kernel launched in the process, the engine's own included, as long as it shares the primary
context, which runtime/cuda.c does).  Prints the top K kernels by total GPU time (name, calls,
total and mean ms, share, GFLOP/s and GB/s from the engine's kernel table, and the share of
the roofline: the time at the device's peak compute for the engine's precision -- tensor cores
for conv/matmul in tf32/bf16 -- or at its HBM bandwidth, whichever binds, over the measured
time), the roofline share per kernel class and in all, and the totals per kernel class (the op in the kernel's name:
k12_conv3d_t0 -> conv3d; the CPU-side names come from the launch schedule).  CUDA graphs are
turned off (SEGC_CUDA_GRAPHS=0) so that each launch is one record.  Timing numbers from the
profiler include its own overhead: use bench/bench_gpu.py for latency.

--once runs each engine once (weights, input, one run_device) and nothing else: the program to
run under Nsight Compute, e.g.
    ncu --clock-control none --kernel-name regex:'k3_conv3d_t0' --launch-count 1 \
        --section SpeedOfLight --section WarpStateStats python3 bench/gpu_profile.py --once E.so
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


# dense peaks per device (NVIDIA's data sheets, SXM parts): fp32 FMA, tf32 and bf16 tensor
# cores (no sparsity), TFLOP/s; HBM bandwidth, TB/s
PEAKS = {"H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "bw": 3.35},
         "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "bw": 4.8},
         "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "bw": 2.04}}


def device_peaks():
    import torch
    name = torch.cuda.get_device_name(0)
    for key, pk in PEAKS.items():
        if key in name:
            return name, pk
    return name, None


def kernel_table(path):
    """{kernel name: (class, flops, bytes)} from the engine's segc_gen_kinfo text (both
    emitters embed it verbatim: "name\tclass\tflops\tbytes\n" per kernel)"""
    data = open(path, "rb").read()
    rows = re.findall(rb"(k\d+_\w+)\t(\w+)\t(\d+)\t(\d+)\n", data)
    return {n.decode(): (c.decode(), float(f), float(b)) for n, c, f, b in rows}


def precision_of(path):
    """fp32, or the <p> of an engine named NAME.<p>.so (tests/cuda/gpu_prep.py)"""
    m = re.search(r"\.(tf32|bf16)\.so$", path)
    return m.group(1) if m else "fp32"


def roofline_ms(cls, flops, nbytes, prec, pk):
    """the kernel's time at the roofline: compute at the precision's peak (tensor cores for
    conv/matmul kernels in tf32/bf16, else fp32) or its bytes at the HBM bandwidth"""
    peak = pk[prec] if cls in ("conv", "matmul") else pk["fp32"]
    return max(flops / (peak * 1e12), nbytes / (pk["bw"] * 1e12)) * 1e3


def kclass(name):
    m = re.match(r"k\d+_(.+?)(_t\d+)?$", name)
    return m.group(1) if m else "other"


def profile_engine(path, runs, top, out, once=False):
    import numpy as np
    import torch
    import segc_api

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
    if once:
        eng.close()
        return
    from torch.profiler import ProfilerActivity, profile
    w0 = time.time()
    for _ in range(runs):
        eng.run_device(ip, op)
    torch.cuda.synchronize()
    wall = (time.time() - w0) * 1e3 / runs
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            eng.run_device(ip, op)
        torch.cuda.synchronize()
    table = kernel_table(path)
    prec = precision_of(path)
    dev, pk = device_peaks()
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
    title = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    report(title, rows, runs, wall, time.time() - t0, table, prec, dev, pk, top, out)
    eng.close()


def report(title, rows, runs, wall, secs, table, prec, dev, pk, top, out):
    """print one engine's profile: rows = {CUPTI kernel name: [launches, ms]} over runs"""
    total = sum(v[1] for v in rows.values()) or 1e-9
    p = lambda s: print(s, file=out, flush=True)
    p("== %s: %d kernels, %.2f ms GPU per run (profiled), %.2f ms wall per run (unprofiled), "
      "%.0f s" % (title, len(rows), total / runs, wall, secs))
    # Kernels with the same kernel IR share one compiled function (kernel_signature), so the
    # profiler's k3_conv3d_t1 may stand for several kernels: n = its launches per run.  A row
    # gets its kernel's flops and bytes times n over the time of all loops of that function;
    # the per-class roofline sums the whole kernel table (each kernel runs once per run).
    kern = {}
    for name, (calls, ms) in rows.items():
        m = re.match(r"(k\d+_.+?)(_t\d+)?$", name)
        if m and m.group(1) in table:
            kern[m.group(1)] = kern.get(m.group(1), 0.0) + ms / runs
    p("%-40s %6s %10s %9s %6s %9s %8s %6s" % ("kernel", "calls", "ms/run", "ms/call", "share",
                                              "GFLOP/s", "GB/s", "roof"))
    for name, (calls, ms) in sorted(rows.items(), key=lambda kv: -kv[1][1])[:top]:
        m = re.match(r"(k\d+_.+?)(_t\d+)?$", name)
        extra = ""
        if m and m.group(1) in table and kern.get(m.group(1)):
            c, fl, nb = table[m.group(1)]
            n = max(calls // runs, 1)
            kms = kern[m.group(1)]
            extra = " %9.0f %8.0f" % (n * fl / kms * 1e-6, n * nb / kms * 1e-6)
            if pk:
                extra += " %5.0f%%" % (100 * n * roofline_ms(c, fl, nb, prec, pk) / kms)
        p("%-40s %6d %10.3f %9.4f %5.1f%%%s" % (name[:40], calls // runs, ms / runs,
                                                ms / max(calls, 1), 100 * ms / total, extra))
    if pk and table:
        by_op = {}   # op name -> class, from the table (k12_conv3d -> conv3d -> conv)
        for kn, (c, _, _) in table.items():
            by_op[kclass(kn)] = c
        roof = {}
        for kn, (c, fl, nb) in table.items():
            r = roof.setdefault(c, [0.0, 0.0, 0.0])
            r[1] += roofline_ms(c, fl, nb, prec, pk)
            r[2] += fl
        for name, (calls, ms) in rows.items():
            c = by_op.get(kclass(name))
            if c:
                roof.setdefault(c, [0.0, 0.0, 0.0])[0] += ms / runs
        p("roofline (%s, %s; conv/matmul at the %s peak %.0f TFLOP/s, others fp32 %.0f, "
          "HBM %.2f TB/s): time at roofline / measured" % (dev, prec, prec, pk[prec],
                                                            pk["fp32"], pk["bw"]))
        for c, (ms, rms, fl) in sorted(roof.items(), key=lambda kv: -kv[1][0]):
            if ms > 0:
                p("  %-12s %9.3f ms  roofline %8.3f ms  %5.1f%%  %8.1f TFLOP/s" %
                  (c, ms, rms, 100 * rms / ms, fl / ms * 1e-9))
        tms = sum(v[0] for v in roof.values())
        trms = sum(v[1] for v in roof.values())
        if tms > 0:
            p("  %-12s %9.3f ms  roofline %8.3f ms  %5.1f%%" % ("all", tms, trms,
                                                               100 * trms / tms))
    cls = {}
    for name, (calls, ms) in rows.items():
        c = cls.setdefault(kclass(name), [0, 0.0])
        c[0] += calls // runs
        c[1] += ms / runs
    p("per class:")
    for c, (calls, ms) in sorted(cls.items(), key=lambda kv: -kv[1][1]):
        p("  %-24s %5d launches %9.3f ms %5.1f%%" % (c, calls, ms, 100 * ms * runs / total))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("engines", nargs="+")
    ap.add_argument("--out", help="also write the report here")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--once", action="store_true", help="one run per engine, no profiler")
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
            profile_engine(path, a.runs, a.top, out, a.once)
        except Exception as e:  # one bad engine must not lose the others
            print("== %s: FAILED: %s" % (path, e), file=out, flush=True)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
