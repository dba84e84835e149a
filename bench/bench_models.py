#!/usr/bin/env python3
"""bench/bench_models.py -- the shipped graphs: segc's engine against the PyTorch reference.

A benchmark, not a test.  For each model: compile the graph, time `segc run --repeat N
--threads T` (its `latency_ms median=.. min=.. runs=..` line), and time the reference nn.Module
(tests/reference/) with torch.set_num_threads(T) under no_grad, median after warm-up, in a
separate process.  Memory: segc's planned arena + weight bytes (`segc info --json`) and the
measured ru_maxrss of the `segc run` process; torch: the worker's ru_maxrss and its growth over
the baseline after `import torch`.  Prints a table and updates bench/results.{json,md}.

    bench/bench_models.py [--size S] [--repeat N] [--threads T] [--only MODEL] [--quick]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchutil as bu  # noqa: E402

MIB = 1024.0 * 1024.0


# Bench-size parameter overrides per graph (-D k=v); "size" is --size.  A graph not listed here
# runs at its reference module's BENCH_PARAMS (if any) or its defaults.
BENCH_PARAMS = {
    "unet3d": {"size": "SIZE"},
    # small enough that `make bench` runs in minutes on 2 cores
    "basicunet": {"size": [32, 32, 32]},
    "segresnet": {"size": [32, 32, 32]},
    "segmamba": {"size": 32},
    "segmamba_v2": {"size": 32},
    "veloxseg": {"size": [64, 64, 64], "win1": [2, 2, 2], "win2": [2, 2, 2], "win3": [2, 2, 2],
                 "win4": [2, 2, 2]},
}


def models(size):
    """(label, graph, reference module, -D overrides) for every graphs/*.json that has a
    reference module tests/reference/<stem>.py with DEFAULTS, build and input_shape; the others
    are listed with the reason they are skipped."""
    import glob
    import importlib
    out = []
    for g in sorted(glob.glob(os.path.join(bu.ROOT, "graphs", "*.json"))):
        stem = os.path.splitext(os.path.basename(g))[0]
        refpath = os.path.join(bu.ROOT, "tests", "reference", stem + ".py")
        if not os.path.exists(refpath):
            print("skip %-12s no reference module tests/reference/%s.py" % (stem, stem))
            continue
        try:
            ref = importlib.import_module(stem)
        except Exception as e:  # a half-written reference is skipped, not fatal
            print("skip %-12s reference does not import: %s" % (stem, e))
            continue
        if not all(hasattr(ref, a) for a in ("DEFAULTS", "build", "input_shape")):
            print("skip %-12s reference lacks DEFAULTS/build/input_shape" % stem)
            continue
        over = dict(getattr(ref, "BENCH_PARAMS", {}))
        over.update(BENCH_PARAMS.get(stem, {}))
        over = {k: (size if v == "SIZE" else v) for k, v in over.items()}
        out.append((stem, os.path.relpath(g, bu.ROOT), stem, over))
    return out


def torch_worker(refmod, params_json, npz, xpath, ypath, repeat, threads):
    """Runs in its own process; prints one JSON line with timings and memory."""
    import torch
    torch.set_num_threads(threads)
    rss0 = bu.peak_rss()
    import importlib
    ref = importlib.import_module(refmod)
    params = json.loads(params_json)
    model = ref.build(params).eval()
    w = np.load(npz)
    model.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
    x = torch.from_numpy(np.load(xpath))
    with torch.no_grad():
        med, mn = bu.torch_time(lambda: model(x), repeat)
        y = model(x).numpy()
    np.save(ypath, y)
    rss = bu.peak_rss()
    print(json.dumps({"median_ms": med, "min_ms": mn, "maxrss": rss, "rss0": rss0}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32, help="unet3d input size (default 32)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", action="append")
    ap.add_argument("--quick", action="store_true", help="3 runs each")
    ap.add_argument("--torch-worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.repeat = 3
    if args.torch_worker:
        torch_worker(*args.torch_worker, args.repeat, args.threads)
        return 0

    import torch
    from test_models import randomise
    write_st = bu.writer()
    work = tempfile.mkdtemp(prefix="segc-bench-models-")
    print("machine: %s; torch %s, %d threads for both" % (bu.machine(), torch.__version__,
                                                           args.threads))
    rows = []
    for label, graph, refmod, over in models(args.size):
        if args.only and label not in args.only:
            continue
        import importlib
        ref = importlib.import_module(refmod)
        params = dict(ref.DEFAULTS)
        params.update(over)
        torch.manual_seed(0)
        model = ref.build(params)
        sd = randomise(model, 0)
        shape = ref.input_shape(params)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        row = {"model": label, "input": "x".join(str(d) for d in shape), "params": over}
        wp, npz, xp, yp, tp = (os.path.join(work, label + s) for s in (
            ".safetensors", ".npz", ".x.npy", ".y.npy", ".torch.npy"))
        write_st(wp, sd)
        np.savez(npz, **sd)
        np.save(xp, x)
        defs = []
        for k, v in over.items():
            v = ",".join(str(e) for e in v) if isinstance(v, (list, tuple)) else v
            defs += ["-D", "%s=%s" % (k, v)]
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--repeat", str(args.repeat),
                            "--threads", str(args.threads), "--torch-worker", refmod,
                            json.dumps(params), npz, xp, tp],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode == 0:
            t = json.loads(p.stdout.strip().splitlines()[-1])
            row.update(torch_ms=t["median_ms"], torch_min_ms=t["min_ms"],
                       torch_maxrss_mib=t["maxrss"] / MIB,
                       torch_delta_mib=(t["maxrss"] - t["rss0"]) / MIB)
        else:
            row["error"] = "torch worker: " + p.stderr.strip()[-300:]
        try:
            info = json.loads(bu.check([bu.segc_bin(), "info", os.path.join(bu.ROOT, graph),
                                        "--json"] + defs))
            wbytes = sum(4 * int(np.prod(w["shape"])) for w in info["weights"])
            row.update(gflop=float(info.get("gflops", 0.0)), nparams=info.get("params"),
                       arena_mib=info.get("arena_bytes", 0) / MIB,
                       segc_planned_mib=(info.get("arena_bytes", 0) + wbytes) / MIB)
            eng = os.path.join(work, label + ".so")
            bu.check([bu.segc_bin(), os.path.join(bu.ROOT, graph), "-o", eng] + defs)
            smed, smin, runs, rss = bu.segc_run_timed(eng, wp, xp, yp, args.repeat, args.threads)
            row.update(segc_ms=smed, segc_min_ms=smin, segc_runs=runs, segc_maxrss_mib=rss / MIB)
            if "torch_ms" in row:
                row["speedup"] = row["torch_ms"] / smed
                row["lat_ratio"] = smed / row["torch_ms"]
                row["mem_ratio"] = row["segc_maxrss_mib"] / row["torch_maxrss_mib"]
                a, b = np.load(yp), np.load(tp)
                row["relerr"] = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        except Exception as e:  # a benchmark reports and goes on
            row["error"] = (row.get("error", "") + " segc: " + str(e)).strip()
        rows.append(row)
        print("%-8s %-16s GFLOP=%s segc=%s ms torch=%s ms segc/torch=%s planned=%s MiB "
              "segc_rss=%s MiB torch_rss=%s MiB (delta %s)%s" % (
                  label, row["input"], bu._f(row.get("gflop")), bu._f(row.get("segc_ms")),
                  bu._f(row.get("torch_ms")), bu._f(row.get("lat_ratio")),
                  bu._f(row.get("segc_planned_mib"), "%.1f"),
                  bu._f(row.get("segc_maxrss_mib"), "%.1f"),
                  bu._f(row.get("torch_maxrss_mib"), "%.1f"),
                  bu._f(row.get("torch_delta_mib"), "%.1f"),
                  ("  error: " + row["error"]) if row.get("error") else ""))
    shutil.rmtree(work, ignore_errors=True)
    bu.save_results("models", rows, {"threads": args.threads, "repeat": args.repeat,
                                     "size": args.size})
    print("results: %s, %s" % (os.path.relpath(bu.RESULTS_MD), os.path.relpath(bu.RESULTS_JSON)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
