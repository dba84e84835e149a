#!/usr/bin/env python3
"""bench/bench_gpu.py -- segc's CUDA engines against PyTorch eager (cuDNN) and torch.compile.

For every shipped graph at 128^3 (bench_list; engines compiled beforehand by
tests/cuda/gpu_prep.py, since the GPU machine need not run segc): the PyTorch reference module
(tests/reference/<module>.py) with random weights on the GPU, and segc's engines with the same
weights (load_weights_memory) through run_device on torch CUDA tensors (no host copies), in
every precision gpu_prep built (fp32, tf32, bf16).  PyTorch: eager fp32 with the library's
defaults (cuDNN may use TF32 for convolutions: torch.backends.cudnn.allow_tf32 is True by
default; matmuls stay fp32), eager bf16 autocast, torch.compile fp32 and bf16.  The references'
Mamba scans loop step by step in Python, so PyTorch runs them as a parallel scan in torch ops
(bench/benchutil.py patch_scans; mamba_ssm is not installed).

Latency: median of --repeat (10) runs after a warm-up run, wall clock around
torch.cuda.synchronize(); fewer runs when one run is slower than --budget / repeat.  Peak
memory: torch.cuda.max_memory_allocated for PyTorch (weights, input and activations); the
engine's device_bytes plus its input and output tensors for segc.  Accuracy: each segc output,
eager bf16's and torch.compile's against eager fp32, max|a - b| / max|b| (a non-finite PyTorch
output is noted as n/a with the reason).

Robustness: each graph runs in its own process (a crash or an out-of-memory loses that graph
only) with a time limit; pass 1 measures segc and eager for every graph, pass 2 torch.compile
with what is left of --total (--compile-budget seconds per graph).  Results are written after
every measurement: --out FILE.json and FILE.md (a markdown table).  --device cpu is the dry
run without a GPU (CPU engines from gpu_prep.py --arch cpu --bench-size 32, torch on the CPU).

    bench/bench_gpu.py [--cases build/gpu-cases] [--repeat 10] [--total 240] [--out F.json]
                       [--only NAME] [--no-compile] [--compile-budget 90] [--device cuda|cpu]
"""
import argparse
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cuda"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
PRECS = ("fp32", "tf32", "bf16")


def bench_list(s=128):
    """(name, graph, reference module, -D overrides) at input size s (128: 1 x C x 128^3)"""
    g = [s // 4, s // 8, s // 16, s // 32]          # veloxseg's token grids
    win = [min(4, e) for e in g[:3]] + [g[3]]        # windows that tile them (the last: all)
    return [
        ("unet3d", "graphs/unet3d.json", "unet3d", {"size": s}),
        ("basicunet", "graphs/basicunet.json", "basicunet", {"size": [s, s, s]}),
        ("segresnet", "graphs/segresnet.json", "segresnet", {"size": [s, s, s]}),
        ("segmamba", "graphs/segmamba.json", "segmamba", {"size": s}),
        ("segmamba_v2", "graphs/segmamba_v2.json", "segmamba_v2", {"size": s}),
        ("m4fuse", "graphs/m4fuse.json", "m4fuse", {"D": s, "H": s, "W": s}),
        ("m4fuse-half", "graphs/m4fuse.json", "m4fuse", {"D": s // 2, "H": s, "W": s}),
        ("veloxseg", "graphs/veloxseg.json", "veloxseg",
         {"size": [s, s, s], "win1": [win[0]] * 3, "win2": [win[1]] * 3, "win3": [win[2]] * 3,
          "win4": [win[3]] * 3}),
        ("mamba_home", "graphs/mamba_home.json", "mamba_home", {"D": s, "H": s, "W": s}),
        ("tiny", "graphs/tiny.json", "tiny", {"size": s}),
    ]


def defs_line(name, s=128):
    """'GRAPH -D k=v ...' of bench_list's graph name at size s (the shell scripts' compiles),
    or '' where there is none"""
    for n, graph, _, over in bench_list(s):
        if n == name:
            return " ".join([graph] + ["-D %s=%s" % (k, ",".join(map(str, v))
                                                     if isinstance(v, (list, tuple)) else v)
                                       for k, v in over.items()])
    return ""


# ---- one graph, in its own process ----

class Dev:
    """cuda or cpu: synchronisation and peak memory"""

    def __init__(self, name):
        import torch
        self.name, self.torch = name, torch

    def sync(self):
        if self.name == "cuda":
            self.torch.cuda.synchronize()

    def reset_peak(self):
        if self.name == "cuda":
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_mib(self):
        if self.name == "cuda":
            return self.torch.cuda.max_memory_allocated() / 1048576.0
        return None


def timed(dev, fn, repeat, budget_s):
    """median and min latency in ms of fn() (synchronised) after one warm-up; fewer runs when
    one run is slower than budget_s / repeat"""
    dev.sync()
    t0 = time.perf_counter()
    fn()
    dev.sync()
    first = time.perf_counter() - t0
    n = max(3, min(repeat, int(budget_s / max(first, 1e-6))))
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        dev.sync()
        ts.append(time.perf_counter() - t0)
    return {"median_ms": 1e3 * statistics.median(ts), "min_ms": 1e3 * min(ts), "runs": n,
            "first_ms": 1e3 * first}


def rel_errs(outs, refs):
    return max(float((o.float() - t.float()).abs().max() / t.float().abs().max().clamp_min(1e-12))
               for o, t in zip(outs, refs))


def torch_measure(dev, model, ins, prec, compiled, repeat, budget, refs=None):
    import torch
    dev.reset_peak()
    m = model
    if compiled:
        if not hasattr(torch, "compile"):
            raise RuntimeError("this torch has no torch.compile")
        m = torch.compile(model)

    def fwd():
        with torch.no_grad(), torch.autocast(dev.name, dtype=torch.bfloat16,
                                             enabled=prec == "bf16"):
            return m(*ins)
    t0 = time.time()
    r = timed(dev, fwd, repeat, budget)
    r["peak_mib"] = dev.peak_mib()
    if compiled:
        r["compile_s"] = round(time.time() - t0 - r["median_ms"] * r["runs"] * 1e-3, 1)
    if refs is not None:                    # bf16 / compiled against eager fp32
        y = fwd()
        outs = [y] if torch.is_tensor(y) else list(y)
        if all(bool(torch.isfinite(o).all()) for o in outs):
            r["max_rel_err_vs_eager_fp32"] = rel_errs(outs, refs)
        else:
            r["note"] = "n/a: non-finite output in %s (overflow)" % prec
    return r


def segc_measure(dev, path, sd_bytes, ins, refs, repeat, budget):
    import torch
    import segc_api
    dev.reset_peak()
    eng = segc_api.Engine(path)
    try:
        eng.load_weights(sd_bytes)
        outs = [torch.full(tuple(t.shape), float("nan"), device=dev.name, dtype=torch.float32)
                for t in refs]
        xs = [t.contiguous() for t in ins]
        ip, op = [t.data_ptr() for t in xs], [o.data_ptr() for o in outs]
        r = timed(dev, lambda: eng.run_ptrs(ip, op, device=dev.name == "cuda"), repeat, budget)
        io = sum(t.numel() * t.element_size() for t in xs + outs)
        mem = eng.device_bytes() if dev.name == "cuda" else eng.arena_bytes()
        r.update(device=eng.device(), peak_mib=(mem + io) / 1048576.0,
                 max_rel_err_vs_eager_fp32=rel_errs(outs, refs))
        return r
    finally:
        eng.close()


def one_graph(args):
    """measures one graph (args.graph); writes its result JSON to args.partial after each step"""
    import torch
    dev = Dev(args.device)
    meta = {m["name"]: m for m in json.load(open(os.path.join(args.cases, "bench", "meta.json")))}
    m = meta[args.graph]
    r = {"name": m["name"], "graph": m["graph"], "params": m["over"]}
    if m.get("tune"):  # engines compiled with tuning files (tests/cuda/gpu_prep.py)
        r["notes"] = ["tuned %s: %s" % (p, f) for p, f in sorted(m["tune"].items())]
    if args.compile_only and os.path.exists(args.partial):      # pass 1's results
        r = json.load(open(args.partial))
    if dev.name == "cpu":
        torch.set_num_threads(2)

    def save():
        with open(args.partial + ".tmp", "w") as f:
            json.dump(r, f)
        os.replace(args.partial + ".tmp", args.partial)

    lost = []                   # a CUDA launch error is sticky: the context is unusable

    def step(key, fn):
        if lost:
            r[key] = {"error": "not run: the CUDA context was lost in " + lost[0]}
            save()
            return
        try:
            r[key] = fn()
        except Exception as e:  # noqa: BLE001 -- reported, the next measurement goes on
            msg = str(e).strip().splitlines()
            r[key] = {"error": (msg[0] if msg else repr(e))[:300]}
            if ("CUDA_ERROR" in str(e) or "illegal memory access" in str(e)) and \
                    "OUT_OF_MEMORY" not in str(e):
                lost.append(key)
            elif dev.name == "cuda":
                torch.cuda.empty_cache()
        save()
        print("  %s %s: %s" % (args.graph, key, fmt(r[key])), flush=True)

    try:
        return measure_graph(args, dev, m, r, save, step)
    except Exception as e:  # noqa: BLE001 -- the graph's setup failed: say where
        msg = str(e).strip().splitlines()
        r["error"] = "setup: %s" % (msg[-1] if msg else repr(e))[:300]
        save()
        raise


def measure_graph(args, dev, m, r, save, step):
    import numpy as np
    import torch
    import benchutil as bu
    import bench_models as bm
    import common
    r["scan"] = bu.patch_scans()
    ref = importlib.import_module(m["module"])
    params = dict(ref.DEFAULTS)
    params.update(m["over"])
    torch.manual_seed(0)
    model = ref.build(params)
    sd = bm.model_weights(ref, model, 0)
    sd_bytes = common.safetensors_bytes(sd)
    del sd
    model = model.float().eval().to(dev.name)
    ins = [torch.from_numpy(np.ascontiguousarray(a)).to(dev.name)
           for _, a in bm.model_inputs(ref, params, 0)]
    r["input"] = "x".join(str(d) for d in ins[0].shape)
    # the reference output in strict fp32 (cuDNN's TF32 off): what segc fp32 must match
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        y = model(*ins)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    refs = [y] if torch.is_tensor(y) else list(y)
    save()
    if not args.compile_only:
        for prec in ("fp32", "bf16"):               # first: a segc failure cannot cost them
            step("eager_" + prec, lambda: torch_measure(dev, model, ins, prec, False,
                                                        args.repeat, args.budget,
                                                        refs if prec == "bf16" else None))
        for prec in PRECS:
            path = os.path.join(args.cases, "bench", m["name"] + (
                ".so" if prec == "fp32" else ".%s.so" % prec))
            err = m.get("precisions", {}).get(prec, m.get("error") if prec == "fp32" else
                                              "not built")
            if err or not os.path.exists(path):
                r["segc_" + prec] = {"error": "not built: %s" % (err or "no engine")}
                continue
            step("segc_" + prec, lambda: segc_measure(dev, path, sd_bytes, ins, refs,
                                                      args.repeat, args.budget))
    else:
        prec = args.compile_only
        step("compile_" + prec, lambda: torch_measure(dev, model, ins, prec, True,
                                                      args.repeat, args.budget, refs))
    return 0


# ---- the parent: one process per graph, time limits, the tables ----

def fmt(v):
    if isinstance(v, dict) and "median_ms" in v:
        s = "%.2f ms" % v["median_ms"]
        if v.get("peak_mib") is not None:
            s += " %.0f MiB" % v["peak_mib"]
        if "max_rel_err_vs_eager_fp32" in v:
            s += " err %.1e" % v["max_rel_err_vs_eager_fp32"]
        if "compile_s" in v:
            s += " (compile %.0f s)" % v["compile_s"]
        if v.get("note"):
            s += " [%s]" % v["note"]
        return s
    if isinstance(v, dict):
        return "error: %s" % v.get("error")
    return str(v)


def ms(r, k):
    v = r.get(k)
    return v["median_ms"] if isinstance(v, dict) and "median_ms" in v else None


def ratios(r):
    out = {}
    for a, b in (("segc_fp32", "eager_fp32"), ("segc_fp32", "compile_fp32"),
                 ("segc_tf32", "eager_fp32"), ("segc_tf32", "compile_fp32"),
                 ("segc_bf16", "eager_bf16"), ("segc_bf16", "compile_bf16")):
        if ms(r, a) and ms(r, b):
            out["%s/%s" % (a, b)] = ms(r, a) / ms(r, b)
    best = [ms(r, "segc_" + p) for p in PRECS if ms(r, "segc_" + p)]
    for b in ("eager_fp32", "compile_fp32"):
        if best and ms(r, b):
            out["best_segc/%s" % b] = min(best) / ms(r, b)
    return out


def write_tables(path, doc):
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(path + ".tmp", path)
    md = os.path.splitext(path)[0] + ".md"
    f2 = lambda v, p="%.2f": "-" if v is None else p % v  # noqa: E731
    lines = ["# segc on the GPU (%s)" % doc["date"], "",
             "Device: %s; torch %s; %s.  Median ms of up to %d runs after a warm-up run; "
             "eager fp32 = PyTorch defaults (cudnn.allow_tf32 %s, cuda.matmul.allow_tf32 %s); "
             "errors are max |y - ref| / max |ref| against PyTorch in strict fp32 (TF32 off); "
             "bf16 = torch.autocast; PyTorch's Mamba scans: a parallel scan in torch ops "
             "(benchutil.patch_scans).  Targets: segc <= 0.5x eager, <= 0.8x torch.compile."
             % (doc["device"], doc["torch"], doc["mode"], doc["repeat"],
                doc.get("cudnn_tf32"), doc.get("matmul_tf32")), "",
             "| graph | input | segc fp32 | segc tf32 | segc bf16 | eager fp32 | eager bf16 "
             "| compile fp32 | compile bf16 | segc fp32 / eager | segc fp32 / compile "
             "| best segc / eager | best segc / compile | segc bf16 / eager bf16 "
             "| segc MiB | eager fp32 MiB | segc err fp32 / tf32 / bf16 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["results"]:
        q = r.get("ratios", {})
        errs = " / ".join(f2((r.get("segc_" + p) or {}).get("max_rel_err_vs_eager_fp32"),
                             "%.1e") for p in PRECS)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                     "| %s | %s | %s |" % (
                         r["name"], r.get("input", "-"),
                         *[f2(ms(r, k)) for k in ("segc_fp32", "segc_tf32", "segc_bf16",
                                                  "eager_fp32", "eager_bf16", "compile_fp32",
                                                  "compile_bf16")],
                         f2(q.get("segc_fp32/eager_fp32")), f2(q.get("segc_fp32/compile_fp32")),
                         f2(q.get("best_segc/eager_fp32")), f2(q.get("best_segc/compile_fp32")),
                         f2(q.get("segc_bf16/eager_bf16")),
                         f2((r.get("segc_fp32") or {}).get("peak_mib"), "%.0f"),
                         f2((r.get("eager_fp32") or {}).get("peak_mib"), "%.0f"), errs))
        notes = ["%s: %s" % (k, v["error"]) for k, v in sorted(r.items())
                 if isinstance(v, dict) and "error" in v]
        notes += ["%s: %s" % (k, v["note"]) for k, v in sorted(r.items())
                  if isinstance(v, dict) and v.get("note")]
        notes += ["%s" % r[k] for k in ("skipped", "error") if r.get(k)] + r.get("notes", [])
        if notes:
            lines.append("| ^ %s |%s" % ("; ".join(notes).replace("|", "/")[:600], " |" * 16))
    lines.append("")
    with open(md, "w") as f:
        f.write("\n".join(lines))


def run_child(args, name, compile_only, limit, partial):
    """one graph's process (its process group is killed after `limit` seconds: torch.compile's
    worker processes too); returns what it wrote to `partial`"""
    cmd = [sys.executable, os.path.abspath(__file__), "--graph", name, "--partial", partial,
           "--cases", args.cases, "--device", args.device, "--repeat", str(args.repeat),
           "--budget", str(args.budget)] + (["--compile-only", compile_only]
                                            if compile_only else [])
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=max(limit, 1))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        rc = "killed after %.0f s" % limit
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    try:
        got = json.load(open(partial))
    except (OSError, ValueError):
        got = {}
    got.setdefault("name", name)
    if rc != 0:
        tail = [ln for ln in out.strip().splitlines() if ln.strip()][-1:]
        got.setdefault("notes", []).append("%s process: %s %s" % (
            "compile " + compile_only if compile_only else "segc/eager",
            rc if isinstance(rc, str) else
            "exit %d" % rc, tail[0][:200] if tail else ""))
    got["wall_s_" + ("compile_" + compile_only if compile_only else "main")] = \
        round(time.time() - t0, 1)
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=os.path.join(ROOT, "build", "gpu-cases"))
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--budget", type=float, default=6.0,
                    help="seconds of timed runs per measurement (fewer runs when slow)")
    ap.add_argument("--total", type=float, default=240.0, help="seconds for everything")
    ap.add_argument("--graph-limit", type=float, default=75.0,
                    help="seconds per graph for segc and eager")
    ap.add_argument("--compile-budget", type=float, default=90.0,
                    help="seconds per graph for torch.compile (fp32 and bf16)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results-gpu.json"))
    ap.add_argument("--only", action="append")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--graph", help=argparse.SUPPRESS)
    ap.add_argument("--partial", help=argparse.SUPPRESS)
    ap.add_argument("--compile-only", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.graph:
        return one_graph(args)
    # a SIGTERM (timeout(1)) unwinds, so the worker processes are killed on the way out
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    t_start = time.time()
    import tarfile
    if not os.path.isdir(args.cases) and os.path.exists(args.cases + ".tar.xz"):
        with tarfile.open(args.cases + ".tar.xz") as t:
            t.extractall(os.path.dirname(args.cases))
    import torch
    if args.device == "cuda":
        devname = torch.cuda.get_device_name(0)
    else:
        import benchutil as bu
        devname = "CPU dry run: " + bu.machine()
    metas = json.load(open(os.path.join(args.cases, "bench", "meta.json")))
    doc = {"device": devname, "torch": torch.__version__, "repeat": args.repeat,
           "mode": args.device, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "cudnn_tf32": torch.backends.cudnn.allow_tf32,
           "matmul_tf32": torch.backends.cuda.matmul.allow_tf32, "results": []}
    print("device: %s, torch %s; %d graphs; %.0f s in all" % (devname, torch.__version__,
                                                             len(metas), args.total), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    part = os.path.abspath(args.out) + ".part"
    todo = [m for m in metas if not args.only or m["name"] in args.only]
    res = {}
    for m in todo:                                  # pass 1: segc and eager
        left = args.total - (time.time() - t_start)
        if left < 10:
            res[m["name"]] = {"name": m["name"], "skipped": "not run: out of time"}
        else:
            if os.path.exists(part):
                os.unlink(part)
            res[m["name"]] = run_child(args, m["name"], False, min(args.graph_limit, left),
                                       part)
        doc["results"] = [res[x["name"]] for x in todo if x["name"] in res]
        for r in doc["results"]:
            r["ratios"] = ratios(r)
        write_tables(args.out, doc)
    for prec in () if args.no_compile else ("fp32", "bf16"):   # pass 2: torch.compile
        for m in todo:
            r = res[m["name"]]
            left = args.total - (time.time() - t_start)
            if "input" not in r or "error" in r:
                continue
            if left < 30:
                r["compile_" + prec] = {"error": "not run: out of time"}
                continue
            with open(part, "w") as f:
                json.dump(r, f)
            res[m["name"]] = run_child(args, m["name"], prec, min(args.compile_budget, left),
                                       part)
            doc["results"] = [res[x["name"]] for x in todo]
            for x in doc["results"]:
                x["ratios"] = ratios(x)
            write_tables(args.out, doc)
    if os.path.exists(part):
        os.unlink(part)
    for r in doc["results"]:
        line = "%-12s" % r["name"]
        for k in ("segc_fp32", "segc_tf32", "segc_bf16", "eager_fp32", "eager_bf16",
                  "compile_fp32", "compile_bf16"):
            if k in r:
                line += "  %s %s" % (k, fmt(r[k]) if "median_ms" in r[k] else "-")
        for k, v in sorted(r.get("ratios", {}).items()):
            line += "  %s=%.2f" % (k, v)
        for n in r.get("notes", []) + [r[k] for k in ("skipped",) if k in r]:
            line += "  [%s]" % n
        print(line)
    print("wrote %s and %s (%.0f s)" % (args.out, os.path.splitext(args.out)[0] + ".md",
                                        time.time() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
