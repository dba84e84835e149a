#!/usr/bin/env python3
"""bench/bench_linear.py -- one linear or matmul: segc's engine against PyTorch.

A benchmark, not a test: it asserts nothing about speed.  For each shape (the seed models'
linears: segmamba at 1x4x32^3, mamba_home and segmamba_v2 widths; their batched matmuls:
mamba_home, veloxseg's attention) it writes a one-node graph, compiles it twice with `segc`
-- the default (the register-blocked GEMM forms of codegen/tmpl_matmul.c) and the form before
them (SEGC_LINEAR_DOT=1: dot products; SEGC_MATMUL_ROW=1: rows accumulated in memory), column
"old" -- and times both engines (`segc run --repeat N --threads T`, the engine's median) and
F.linear / torch.matmul (torch.set_num_threads(T), median of N calls after warm-up),
interleaved over --rounds rounds (0.5 s after PyTorch's calls: its OpenMP workers spin and
would take a core from segc's threads); each side's best median is reported with GFLOP/s and
ratio = torch / segc (> 1: segc faster).  The outputs are checked against PyTorch.  Prints
only; bench/results.* are not touched.

    bench/bench_linear.py [--repeat N] [--threads T] [--rounds R] [--only CASE] [--quick]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchutil as bu  # noqa: E402

# name, rows, in, out, bias
SHAPES = [
    ("sm_in_proj", 4096, 48, 192, False),    # segmamba 1x4x32^3
    ("sm_x_proj", 4096, 96, 35, False),
    ("sm_dt_proj", 4096, 3, 96, True),
    ("sm_out_proj", 4096, 96, 48, False),
    ("home_512x96_384", 512, 96, 384, False),  # mamba_home at 32^3
    ("home_512x192_96", 512, 192, 96, False),
    ("home_512x192_38", 512, 192, 38, False),
    ("home_512x6_192", 512, 6, 192, True),
    ("home_64x192_768", 64, 192, 768, False),
    ("home_64x384_192", 64, 384, 192, False),
    ("ffn_4096x384_768", 4096, 384, 768, True),  # hidden FFNs at larger volumes
    ("ffn_4096x768_384", 4096, 768, 384, True),
    ("m4_2048x64_34", 2048, 64, 34, True),    # m4fuse (4 x 512 tokens)
    ("small_32x128_36", 32, 128, 36, True),
]

# name, a shape, b shape (batched matmul)
MM_SHAPES = [
    ("mm_1024x32_96", (1, 1, 1024, 32), (1, 1, 32, 96)),          # mamba_home at 32^3
    ("mm_1024x96_32", (1, 1, 1024, 96), (1, 1, 96, 32)),
    ("mm_256x384_64", (1, 1, 256, 384), (1, 1, 384, 64)),
    ("mm_2x2048x48_16", (1, 2, 2048, 48), (1, 2, 48, 16)),
    ("mm_18x432x8_432", (1, 2, 9, 432, 8), (1, 2, 9, 8, 432)),     # veloxseg attention
    ("mm_18x432x432_8", (1, 2, 9, 432, 432), (1, 2, 9, 432, 8)),
    ("mm_585x54x54_4", (1, 1, 585, 54, 54), (1, 1, 585, 54, 4)),
]


def graph_json(rows, i, o, bias):
    return {
        "format": "segc-graph/1",
        "name": "bench_linear",
        "inputs": [{"name": "x", "dtype": "f32", "shape": [1, rows, i]}],
        "body": [{"name": "fc", "op": "linear", "in": ["x"], "attrs": {"out": o, "bias": bias}}],
        "outputs": [{"name": "y", "value": "fc"}],
    }


def mm_graph_json(ashape, bshape):
    return {
        "format": "segc-graph/1",
        "name": "bench_matmul",
        "inputs": [{"name": "a", "dtype": "f32", "shape": list(ashape)},
                   {"name": "b", "dtype": "f32", "shape": list(bshape)}],
        "body": [{"name": "mm", "op": "matmul", "in": ["a", "b"]}],
        "outputs": [{"name": "y", "value": "mm"}],
    }


def compile_engine(g, eng, old_form):
    env = dict(os.environ)
    if old_form:
        env["SEGC_LINEAR_DOT"] = "1"
        env["SEGC_MATMUL_ROW"] = "1"
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        bu.check([bu.segc_bin(), g, "-o", eng])
    finally:
        os.environ.clear()
        os.environ.update(old)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", action="append")
    ap.add_argument("--quick", action="store_true", help="5 runs, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.rounds = 5, 1
    torch.set_num_threads(args.threads)
    write_st = bu.writer()
    work = tempfile.mkdtemp(prefix="segc-bench-linear-")
    print("machine: %s" % bu.machine())
    print("timing: %d threads, median of %d runs, best of %d interleaved rounds" % (
        args.threads, args.repeat, args.rounds))
    print("%-18s %7s %8s %8s %8s %8s %8s %8s %6s" % (
        "case", "MFLOP", "segc_ms", "old_ms", "torch_ms", "segc_GF", "old_GF", "torch_GF",
        "ratio"))
    jobs = [(name, "linear", (rows, i, o, bias)) for name, rows, i, o, bias in SHAPES]
    jobs += [(name, "matmul", (a, b)) for name, a, b in MM_SHAPES]
    for name, op, shp in jobs:
        if args.only and not any(a in name for a in args.only):
            continue
        rng = np.random.default_rng(0)
        g = os.path.join(work, name + ".json")
        wp, xp = os.path.join(work, name + ".safetensors"), os.path.join(work, "x.npy")
        bp = os.path.join(work, "b.npy")
        if op == "linear":
            rows, i, o, bias = shp
            mflop = 2.0 * rows * i * o / 1e6
            x = rng.standard_normal((1, rows, i)).astype(np.float32)
            w = (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)
            b = rng.standard_normal(o).astype(np.float32)
            xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

            def tfn():
                return F.linear(xt, wt, bt if bias else None)
            gj, inputs = graph_json(rows, i, o, bias), xp
            write_st(wp, {"fc.weight": w, "fc.bias": b} if bias else {"fc.weight": w})
        else:
            ashape, bshape = shp
            x = rng.standard_normal(ashape).astype(np.float32)
            b = (rng.standard_normal(bshape) / np.sqrt(ashape[-1])).astype(np.float32)
            nb = int(np.prod(np.broadcast_shapes(ashape[:-2], bshape[:-2])))
            mflop = 2.0 * nb * ashape[-2] * ashape[-1] * bshape[-1] / 1e6
            at, bt2 = torch.from_numpy(x), torch.from_numpy(b)

            def tfn():
                return torch.matmul(at, bt2)
            gj, inputs = mm_graph_json(ashape, bshape), ["a=" + xp, "b=" + bp]
            write_st(wp, {})
            np.save(bp, b)
        try:
            with open(g, "w") as f:
                json.dump(gj, f)
            np.save(xp, x)
            engs = {}
            for tag, old in (("segc", 0), ("old", 1)):
                engs[tag] = os.path.join(work, "%s_%s.so" % (name, tag))
                compile_engine(g, engs[tag], old)
            best = {"segc": 1e30, "old": 1e30, "torch": 1e30}
            with torch.no_grad():
                ref = tfn().numpy()
                for _ in range(args.rounds):
                    for tag in ("segc", "old"):
                        yp = os.path.join(work, tag + ".npy")
                        med = bu.segc_run_timed(engs[tag], wp, inputs, yp, args.repeat,
                                                args.threads)[0]
                        best[tag] = min(best[tag], med)
                        err = float(np.max(np.abs(np.load(yp) - ref)) / np.max(np.abs(ref)))
                        if err > 1e-4:
                            raise RuntimeError("%s engine: relative error %.1e" % (tag, err))
                    best["torch"] = min(best["torch"], bu.torch_time(tfn, args.repeat)[0])
                    # torch's OpenMP workers spin for a while after the last call; segc's
                    # second thread would share a core with them (measured: 1-thread times)
                    time.sleep(0.5)
            gf = {k: mflop / v for k, v in best.items()}  # MFLOP/ms = GFLOP/s
            print("%-18s %7.1f %8.3f %8.3f %8.3f %8.1f %8.1f %8.1f %6.2f" % (
                name, mflop, best["segc"], best["old"], best["torch"], gf["segc"], gf["old"],
                gf["torch"], best["torch"] / best["segc"]))
        except Exception as e:  # a benchmark reports and goes on
            print("%-18s %7.1f  error: %s" % (name, mflop, e))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
