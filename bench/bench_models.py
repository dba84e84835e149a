#!/usr/bin/env python3
"""bench/bench_models.py -- the shipped graphs: segc's engine against the PyTorch reference.

A benchmark, not a test.  For each model: compile the graph, time `segc run --repeat N
--threads T` (its `latency_ms median=.. min=.. runs=..` line), and time the reference nn.Module
(tests/reference/) with torch.set_num_threads(T) under no_grad, median after warm-up, in a
separate process (its Mamba scans: benchutil.patch_scans, a parallel scan in torch ops, unless
--loop-scan).  Memory: segc's planned arena (the engine's, as `segc run` prints it: memplan's
activations + the largest kernel scratch) + its packed weights (--prepack: the weights'
load-time forms) + weight bytes (`segc info --json`) and the
measured ru_maxrss of the `segc run` process; torch: the worker's ru_maxrss and its growth over
the baseline after `import torch`.  Prints a table and updates bench/results.{json,md}.

Per kernel class (conv, scan, norm + elementwise) GFLOP/s come from the same timed segc run
with SEGC_PROFILE=FILE (runtime/profile.c; the first run is left out as warm-up).

    bench/bench_models.py [--size S] [--repeat N] [--threads T] [--only MODEL] [--quick]
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchutil as bu  # noqa: E402

MIB = 1024.0 * 1024.0


# Bench-size parameter overrides per graph (-D k=v); "SIZE" is --size.  A graph not listed here
# runs at its reference module's BENCH_CONFIGS (a list of (label suffix, overrides)) or
# BENCH_PARAMS (one set of overrides), else at its defaults.
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
    reference module tests/reference/<stem>.py with DEFAULTS, build and input_shape (hooks the
    module may add: BENCH_CONFIGS, BENCH_PARAMS, bench_weights(model, seed) for weights under
    the graph's names, bench_load(model, sd), bench_inputs(params, x) for inputs after x); the
    others are listed with the reason they are skipped."""
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
        if stem in BENCH_PARAMS:
            configs = [("", BENCH_PARAMS[stem])]
        elif hasattr(ref, "BENCH_CONFIGS"):
            configs = list(ref.BENCH_CONFIGS)
        else:
            configs = [("", dict(getattr(ref, "BENCH_PARAMS", {})))]
        for suffix, over in configs:
            over = {k: (size if v == "SIZE" else v) for k, v in over.items()}
            out.append((stem + suffix, os.path.relpath(g, bu.ROOT), stem, over))
    return out


def model_inputs(ref, params, seed=0):
    """[(name, numpy array)] in the graph's input order: x, then the module's extra inputs"""
    shape = ref.input_shape(params)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    extra = ref.bench_inputs(params, x) if hasattr(ref, "bench_inputs") else []
    return [("x", x)] + list(extra)


def model_weights(ref, model, seed=0):
    """the graph's weights (name -> float32 numpy), also loaded into model"""
    import torch
    if hasattr(ref, "bench_weights"):
        return ref.bench_weights(model, seed)
    from test_models import randomise
    sd = randomise(model, seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    return sd


def load_weights(ref, model, sd):
    import torch
    if hasattr(ref, "bench_load"):
        return ref.bench_load(model, sd)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    return model


def parse_profile(path):
    """per-class totals of a SEGC_PROFILE=FILE report: {class: (ms_per_run, GFLOP/s)} and the
    conv / scan / matmul / norm+elementwise summary used by the table"""
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return {}
    cls = {}
    on = False
    for ln in lines:
        if ln.startswith("per class"):
            on = True
            continue
        w = ln.split()
        if on and len(w) >= 6 and w[0] in ("conv", "scan", "matmul", "norm", "elementwise",
                                           "move"):
            try:
                cls[w[0]] = (float(w[2]), float(w[4]))
            except ValueError:
                pass
    out = {}
    for name, members in (("conv", ("conv",)), ("scan", ("scan",)), ("matmul", ("matmul",)),
                          ("normelt", ("norm", "elementwise"))):
        ms = sum(cls[c][0] for c in members if c in cls)
        gflop = sum(cls[c][0] * cls[c][1] for c in members if c in cls) * 1e-3
        if any(c in cls for c in members):
            out[name] = {"ms": ms, "gflops": gflop / (ms * 1e-3) if ms > 0 else 0.0}
    return out


def torch_worker(refmod, params_json, npz, xpath, ypath, repeat, threads, loop_scan):
    """Runs in its own process; prints one JSON line with timings and memory."""
    import torch
    torch.set_num_threads(threads)
    rss0 = bu.peak_rss()
    import importlib
    if not loop_scan:
        bu.patch_scans()
    ref = importlib.import_module(refmod)
    params = json.loads(params_json)
    torch.manual_seed(0)
    model = ref.build(params).eval()
    w = np.load(npz)
    load_weights(ref, model, {k: w[k] for k in w.files})
    xs = np.load(xpath)
    ins = [torch.from_numpy(xs[k]) for k in xs.files]
    with torch.no_grad():
        med, mn = bu.torch_time(lambda: model(*ins), repeat)
        y = model(*ins).float().numpy()
    np.save(ypath, y)
    rss = bu.peak_rss()
    print(json.dumps({"median_ms": med, "min_ms": mn, "maxrss": rss, "rss0": rss0}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32, help="unet3d input size (default 32)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", action="append", help="a model label or graph name (repeatable)")
    ap.add_argument("--quick", action="store_true", help="3 runs each")
    ap.add_argument("--loop-scan", action="store_true",
                    help="PyTorch runs the reference's step-by-step scan loop (default: the "
                    "parallel scan of benchutil.patch_scans)")
    ap.add_argument("--layout", choices=("auto", "ncdhw", "ndhwc"), default="auto",
                    help="segc --layout (ndhwc: its rows go to their own table)")
    ap.add_argument("--prepack", choices=("on", "lean", "off"), default="on",
                    help="segc --prepack (lean, off: their rows go to their own tables)")
    ap.add_argument("--torch-worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.repeat = 3
    if args.torch_worker:
        torch_worker(*args.torch_worker, args.repeat, args.threads, args.loop_scan)
        return 0

    import importlib
    import torch
    write_st = bu.writer()
    work = tempfile.mkdtemp(prefix="segc-bench-models-")
    print("machine: %s; torch %s, %d threads for both" % (bu.machine(), torch.__version__,
                                                           args.threads))
    rows = []
    section = "models_ndhwc" if args.layout == "ndhwc" else "models"
    if args.prepack != "on":
        section += "_prepack_" + args.prepack
    for label, graph, refmod, over in models(args.size):
        if args.only and label not in args.only and refmod not in args.only:
            continue
        ref = importlib.import_module(refmod)
        params = dict(ref.DEFAULTS)
        params.update(over)
        torch.manual_seed(0)
        model = ref.build(params)
        sd = model_weights(ref, model, 0)
        del model
        ins = model_inputs(ref, params, 0)
        row = {"model": label, "input": "x".join(str(d) for d in ins[0][1].shape),
               "params": over, "threads": args.threads, "repeat": args.repeat,
               "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        if len(ins) > 1:
            row["input"] += " " + " ".join("%s=%s" % (k, ",".join(str(e) for e in a.ravel()))
                                           for k, a in ins[1:])
        wp, npz, xz, yp, tp, prof = (os.path.join(work, label + s) for s in (
            ".safetensors", ".npz", ".x.npz", ".y.npy", ".torch.npy", ".prof"))
        write_st(wp, sd)
        np.savez(npz, **sd)
        del sd
        np.savez(xz, *[a for _, a in ins])
        inps = []
        for k, a in ins:
            ip = os.path.join(work, "%s.in_%s.npy" % (label, k))
            np.save(ip, a)
            inps.append("%s=%s" % (k, ip))
        defs = ["--layout=" + args.layout, "--prepack=" + args.prepack]
        for k, v in over.items():
            v = ",".join(str(e) for e in v) if isinstance(v, (list, tuple)) else v
            defs += ["-D", "%s=%s" % (k, v)]
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--repeat", str(args.repeat),
                            "--threads", str(args.threads)] +
                           (["--loop-scan"] if args.loop_scan else []) + ["--torch-worker", refmod,
                            json.dumps(params), npz, xz, tp],
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
            einfo = {}
            smed, smin, runs, rss = bu.segc_run_timed(eng, wp, inps, yp, args.repeat,
                                                      args.threads, profile=prof, info=einfo)
            if "arena_mib" in einfo:  # the engine's arena: memplan's + the kernel scratch
                row.update(arena_mib=einfo["arena_mib"], packed_mib=einfo.get("packed_mib", 0),
                           segc_planned_mib=einfo["arena_mib"] + einfo.get("packed_mib", 0) +
                           wbytes / MIB)
            row.update(segc_ms=smed, segc_min_ms=smin, segc_runs=runs, segc_maxrss_mib=rss / MIB,
                       classes=parse_profile(prof))
            if row.get("gflop"):
                row["segc_gflops"] = row["gflop"] / (smed * 1e-3)
            if "torch_ms" in row:
                row["speedup"] = row["torch_ms"] / smed
                row["lat_ratio"] = smed / row["torch_ms"]
                row["lat_ratio_min"] = smin / row["torch_min_ms"]
                row["mem_ratio"] = row["segc_maxrss_mib"] / row["torch_maxrss_mib"]
                a, b = np.load(yp), np.load(tp)
                row["relerr"] = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        except Exception as e:  # a benchmark reports and goes on
            row["error"] = (row.get("error", "") + " segc: " + str(e)).strip()
        rows.append(row)
        cl = row.get("classes", {})
        print("%-12s %-22s GFLOP=%s segc=%s ms torch=%s ms segc/torch=%s planned=%s MiB "
              "segc_rss=%s MiB torch_rss=%s MiB (delta %s) GFLOP/s conv=%s scan=%s "
              "norm+elt=%s relerr=%s%s" % (
                  label, row["input"], bu._f(row.get("gflop")), bu._f(row.get("segc_ms")),
                  bu._f(row.get("torch_ms")), bu._f(row.get("lat_ratio")),
                  bu._f(row.get("segc_planned_mib"), "%.1f"),
                  bu._f(row.get("segc_maxrss_mib"), "%.1f"),
                  bu._f(row.get("torch_maxrss_mib"), "%.1f"),
                  bu._f(row.get("torch_delta_mib"), "%.1f"),
                  bu._f(cl.get("conv", {}).get("gflops"), "%.1f"),
                  bu._f(cl.get("scan", {}).get("gflops"), "%.1f"),
                  bu._f(cl.get("normelt", {}).get("gflops"), "%.1f"),
                  bu._f(row.get("relerr"), "%.1e"),
                  ("  error: " + row["error"]) if row.get("error") else ""))
        sys.stdout.flush()
        for f in glob_rm(work, label):
            os.unlink(f)
    shutil.rmtree(work, ignore_errors=True)
    if args.only:  # a partial run updates its rows in the stored table, keeps the others
        old = bu.load_results().get(section, {}).get("rows", [])
        done = {r["model"] for r in rows}
        rows = [r for r in old if r["model"] not in done] + rows
        rows.sort(key=lambda r: r["model"])
    bu.save_results(section, rows, {"threads": args.threads, "repeat": args.repeat,
                                     "size": args.size,
                                     "torch_scan": "loop" if args.loop_scan else "parallel"})
    print("results: %s, %s" % (os.path.relpath(bu.RESULTS_MD), os.path.relpath(bu.RESULTS_JSON)))
    return 0


def glob_rm(work, label):
    """this model's files in the work directory (engines and weights can be large)"""
    import glob
    return [f for f in glob.glob(os.path.join(work, label + ".*")) if os.path.isfile(f)]


if __name__ == "__main__":
    sys.exit(main())
