#!/usr/bin/env python3
"""bench/bench_conv.py -- one conv3d: segc's engine against torch.nn.functional.conv3d.

A benchmark, not a test: it asserts nothing about speed.  For each shape it writes a one-node
graph, compiles it with `segc`, times `segc run --repeat N --threads T` (the engine prints
`latency_ms median=<x> min=<y> runs=<n>`), times F.conv3d with torch.set_num_threads(T) (median
of N runs after warm-up), prints GFLOP/s of both and the ratio, checks the outputs agree, and
updates bench/results.{json,md}.

    bench/bench_conv.py [--repeat N] [--threads T] [--only CASE] [--quick] [--cpu-time]

--cpu-time, for a machine shared with other work (where wall-clock medians of 2 threads are
noise): both sides run 1 thread and report the user CPU time per run instead, segc's as
(CPU time of `segc run --repeat N+2` - that of `--repeat 2`) / N, PyTorch's as the process
time of N calls after warm-up; best of --rounds interleaved rounds.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchutil as bu  # noqa: E402

# name, cin, size, cout, kernel, groups, stride, dilation  (shapes from the seed models:
# segmamba_v2's stem, 3^3/5^3 blocks, dilated and strided convs, 1^3 projections)
SHAPES = [
    ("c32_s32_k3", 32, 32, 32, 3, 1, 1, 1),
    ("c64_s16_k3", 64, 16, 64, 3, 1, 1, 1),
    ("c48_s32_k1_to96", 48, 32, 96, 1, 1, 1, 1),
    ("dw64_s32_k3", 64, 32, 64, 3, 64, 1, 1),
    ("c48_s32_k3", 48, 32, 48, 3, 1, 1, 1),
    ("c48_s16_k5", 48, 16, 48, 5, 1, 1, 1),
    ("c96_s8_k3", 96, 8, 96, 3, 1, 1, 1),
    ("c48_s16_k3_d2", 48, 16, 48, 3, 1, 1, 2),
    ("c48_s32_k3s2_to96", 48, 32, 96, 3, 1, 2, 1),
    ("c96_s16_k1_to48", 96, 16, 48, 1, 1, 1, 1),
    ("stem4_s32_k3_to48", 4, 32, 48, 3, 1, 1, 1),
]


def graph_json(cin, size, cout, k, groups, stride=1, dil=1):
    return {
        "format": "segc-graph/1",
        "name": "bench_conv",
        "inputs": [{"name": "x", "dtype": "f32", "shape": [1, cin, size, size, size]}],
        "body": [{"name": "conv", "op": "conv3d", "in": ["x"],
                  "attrs": {"cout": cout, "kernel": k, "stride": stride, "pad": k // 2 * dil,
                            "dilation": dil, "groups": groups, "bias": False}}],
        "outputs": [{"name": "y", "value": "conv"}],
    }


CPU_MIN_S = 0.3  # --cpu-time: at least this much CPU time per measurement (clock granularity)


def segc_cpu_ms(eng, wp, xp, yp, repeat):
    """user CPU ms per run of `segc run --threads 1` (the fixed costs of loading cancel); more
    runs than repeat when those take under CPU_MIN_S"""
    def utime(n):
        p = subprocess.Popen([bu.segc_bin(), "run", eng, "--weights", wp, "--input", xp,
                              "--output", yp, "--repeat", str(n), "--threads", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        if status != 0:
            raise RuntimeError("segc run failed: %s" % p.stderr.read().decode()[-300:])
        return ru.ru_utime
    base = utime(2)
    while True:
        d = utime(repeat + 2) - base
        if d >= CPU_MIN_S or repeat >= 100000:
            return d / repeat * 1e3
        repeat *= max(2, int(CPU_MIN_S / max(d, 1e-3)) + 1)


def torch_cpu_ms(fn, repeat):
    """process CPU ms per call (1 thread) after two warm-up calls; more calls than repeat
    when those take under CPU_MIN_S"""
    fn()
    fn()
    while True:
        t0 = time.process_time()
        for _ in range(repeat):
            fn()
        d = time.process_time() - t0
        if d >= CPU_MIN_S or repeat >= 100000:
            return d / repeat * 1e3
        repeat *= max(2, int(CPU_MIN_S / max(d, 1e-3)) + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", action="append")
    ap.add_argument("--quick", action="store_true", help="3 runs each")
    ap.add_argument("--no-save", action="store_true", help="do not update bench/results.*")
    ap.add_argument("--cpu-time", action="store_true",
                    help="1 thread each, user CPU time per run (a shared machine)")
    ap.add_argument("--rounds", type=int, default=3, help="--cpu-time: interleaved rounds")
    args = ap.parse_args()
    if args.quick:
        args.repeat = 3
    if args.cpu_time:
        args.threads = 1
    torch.set_num_threads(args.threads)
    write_st = bu.writer()
    work = tempfile.mkdtemp(prefix="segc-bench-conv-")
    print("machine: %s" % bu.machine())
    if args.cpu_time:
        print("timing: user CPU time per run, 1 thread each, best of %d rounds" % args.rounds)
    print("%-18s %8s %9s %9s %10s %10s %6s" % ("case", "GFLOP", "segc_ms", "torch_ms",
                                                 "segc_GF/s", "torch_GF/s", "ratio"))
    rows = []
    for name, cin, size, cout, k, groups, stride, dil in SHAPES:
        if args.only and name not in args.only:
            continue
        osz = (size - 1) // stride + 1
        macs = cout * (cin // groups) * k ** 3 * osz ** 3
        gflop = 2.0 * macs / 1e9
        row = {"case": name, "cin": cin, "size": size, "cout": cout, "kernel": k,
               "groups": groups, "stride": stride, "dilation": dil, "gflop": gflop}
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, cin, size, size, size)).astype(np.float32)
        w = (rng.standard_normal((cout, cin // groups, k, k, k)) /
             np.sqrt(cin // groups * k ** 3)).astype(np.float32)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        def tconv():
            return F.conv3d(xt, wt, None, stride, k // 2 * dil, dil, groups)
        with torch.no_grad():
            if not args.cpu_time:
                tmed, tmin = bu.torch_time(tconv, args.repeat)
                row.update(torch_ms=tmed, torch_min_ms=tmin, torch_gflops=gflop / tmed * 1e3)
            ref = tconv().numpy()
        try:
            g = os.path.join(work, name + ".json")
            with open(g, "w") as f:
                json.dump(graph_json(cin, size, cout, k, groups, stride, dil), f)
            eng = os.path.join(work, name + ".so")
            wp, xp, yp = (os.path.join(work, name + s) for s in (".safetensors", ".x.npy",
                                                                  ".y.npy"))
            write_st(wp, {"conv.weight": w})
            np.save(xp, x)
            bu.check([bu.segc_bin(), g, "-o", eng])
            if args.cpu_time:
                st, tt = [], []
                for _ in range(args.rounds):
                    st.append(segc_cpu_ms(eng, wp, xp, yp, args.repeat))
                    with torch.no_grad():
                        tt.append(torch_cpu_ms(tconv, args.repeat))
                smed = smin = min(st)
                tmed = min(tt)
                runs = args.repeat * args.rounds
                row.update(torch_ms=tmed, torch_min_ms=tmed, torch_gflops=gflop / tmed * 1e3,
                           timing="user CPU time per run, 1 thread, best of %d" % args.rounds)
            else:
                smed, smin, runs, rss = bu.segc_run_timed(eng, wp, xp, yp, args.repeat,
                                                          args.threads)
            y = np.load(yp)
            err = float(np.max(np.abs(y - ref)) / np.max(np.abs(ref)))
            row.update(segc_ms=smed, segc_min_ms=smin, segc_runs=runs,
                       segc_gflops=gflop / smed * 1e3, ratio=tmed / smed, relerr=err)
            print("%-18s %8.3f %9.2f %9.2f %10.1f %10.1f %6.2f  relerr=%.1e" % (
                name, gflop, smed, tmed, row["segc_gflops"], row["torch_gflops"], row["ratio"],
                err))
        except Exception as e:  # a benchmark reports and goes on
            row["error"] = str(e)
            print("%-18s %8.3f %9s %9.2f %10s %10.1f %6s  error: %s" % (
                name, gflop, "-", row.get("torch_ms", float("nan")), "-",
                row.get("torch_gflops", float("nan")), "-", e))
        rows.append(row)
    shutil.rmtree(work, ignore_errors=True)
    if args.no_save:
        return 0
    extra = {"threads": args.threads, "repeat": args.repeat}
    if args.cpu_time:
        extra["timing"] = "user CPU time per run, 1 thread each, best of %d rounds" % args.rounds
    bu.save_results("conv", rows, extra)
    print("results: %s, %s" % (os.path.relpath(bu.RESULTS_MD), os.path.relpath(bu.RESULTS_JSON)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
