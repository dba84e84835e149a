#!/usr/bin/env python3
"""bench/bench_gpu.py -- segc's CUDA engines against PyTorch eager (cuDNN) and torch.compile.

For each graph in BENCH at 128^3 (engines compiled beforehand by tests/cuda/gpu_prep.py, since
the GPU machine need not run segc): the PyTorch reference module (tests/reference/<module>.py)
with random weights on the GPU, in fp32 and bf16 (autocast), eager and torch.compile; segc's
engine with the same weights (load_weights_memory) through run_device on torch CUDA tensors
(no host copies), fp32 (the only precision segc implements on CUDA so far).  Latency: median
of --repeat runs after one warm-up, wall clock with torch.cuda.synchronize(); peak memory:
torch.cuda.max_memory_allocated for PyTorch, the engine's device_bytes plus its input and
output tensors for segc.  Everything runs in one process on one GPU, one graph at a time;
a failing or over-budget measurement is reported and skipped.

    bench/bench_gpu.py [--cases build/gpu-cases] [--repeat 5] [--budget 300] [--out F.json]
                       [--only NAME] [--no-compile]
"""
import argparse
import importlib
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name, graph, reference module, -D overrides (the 128^3 input)
BENCH = [
    ("unet3d", "graphs/unet3d.json", "unet3d", {"size": 128}),
    ("basicunet", "graphs/basicunet.json", "basicunet", {"size": [128, 128, 128]}),
    ("segresnet", "graphs/segresnet.json", "segresnet", {"size": [128, 128, 128]}),
    ("segmamba", "graphs/segmamba.json", "segmamba", {"size": 128}),
    ("segmamba_v2", "graphs/segmamba_v2.json", "segmamba_v2", {"size": 128}),
    ("veloxseg", "graphs/veloxseg.json", "veloxseg", {}),  # 96^3: its windows do not tile 128^3
    ("m4fuse", "graphs/m4fuse.json", "m4fuse", {}),
]


def timed(fn, repeat, budget_s):
    """median and min latency in ms of fn() (synchronised), one warm-up; fewer runs when slow"""
    import torch
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    n = max(1, min(repeat, int(budget_s / max(first, 1e-6))))
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts), 1e3 * min(ts), n


def bench_torch(model, x, dtype, compiled, repeat, budget):
    import torch
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    m = torch.compile(model) if compiled else model

    def fwd():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16,
                                             enabled=dtype == "bf16"):
            return m(x)
    med, mn, n = timed(fwd, repeat, budget)
    return {"median_ms": med, "min_ms": mn, "runs": n,
            "peak_mib": torch.cuda.max_memory_allocated() / 1048576.0}


def bench_segc(path, sd, x, out_shapes, repeat, budget):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "cuda"))
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import common
    import segc_api
    eng = segc_api.Engine(path)
    try:
        eng.load_weights(common.safetensors_bytes(sd))
        outs = [torch.empty(s, device="cuda", dtype=torch.float32) for s in out_shapes]
        xs = x.contiguous()
        med, mn, n = timed(lambda: eng.run_device([xs.data_ptr()], [o.data_ptr() for o in outs]),
                           repeat, budget)
        io = (xs.numel() + sum(o.numel() for o in outs)) * 4
        return {"median_ms": med, "min_ms": mn, "runs": n, "device": eng.device(),
                "peak_mib": (eng.device_bytes() + io) / 1048576.0}, outs
    finally:
        eng.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=os.path.join(ROOT, "build", "gpu-cases"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per measurement")
    ap.add_argument("--total", type=float, default=240.0, help="seconds for everything")
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", action="append")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = ap.parse_args()
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
    import test_models as tm
    t_start = time.time()
    results = []
    meta = {m["name"]: m for m in json.load(open(os.path.join(args.cases, "bench", "meta.json")))}
    print("device: %s, torch %s" % (torch.cuda.get_device_name(0), torch.__version__))
    for name, graph, refmod, over in BENCH:
        if args.only and name not in args.only:
            continue
        r = {"name": name, "graph": graph, "params": over}
        model = None
        results.append(r)
        if time.time() - t_start > args.total:
            r["skipped"] = "out of time"
            print("%-12s skipped: out of time" % name)
            continue
        try:
            ref = importlib.import_module(refmod)
            params = dict(ref.DEFAULTS)
            params.update(over)
            torch.manual_seed(0)
            model = ref.build(params)
            sd = tm.randomise(model, 0)
            model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
            model = model.float().eval().cuda()
            x = torch.randn(ref.input_shape(params), device="cuda")
            with torch.no_grad():
                y = model(x)
            ys = [y] if torch.is_tensor(y) else list(y)
            r["macs_note"] = "input %s" % (list(x.shape),)
            for prec in ("fp32", "bf16"):
                r["eager_" + prec] = bench_torch(model, x, prec, False, args.repeat, args.budget)
                if not args.no_compile and time.time() - t_start < args.total - 60:
                    try:
                        r["compile_" + prec] = bench_torch(model, x, prec, True, args.repeat,
                                                           args.budget)
                    except Exception as e:  # noqa: BLE001
                        r["compile_" + prec] = {"error": str(e).splitlines()[0][:200]}
            m = meta.get(name, {})
            if m.get("error") or not os.path.exists(os.path.join(args.cases, "bench", name + ".so")):
                r["segc_fp32"] = {"error": "not compiled: %s" % m.get("error")}
            else:
                torch.cuda.empty_cache()
                res, outs = bench_segc(os.path.join(args.cases, "bench", name + ".so"), sd, x,
                                       [tuple(t.shape) for t in ys], args.repeat, args.budget)
                err = max(float((o - t.float()).abs().max() / t.float().abs().max())
                          for o, t in zip(outs, ys))
                res["max_rel_err_vs_eager_fp32"] = err
                r["segc_fp32"] = res
        except Exception as e:  # noqa: BLE001 -- one line per failing graph, keep going
            r["error"] = str(e).splitlines()[0][:300] if str(e) else repr(e)
        line = "%-12s" % name
        for k in ("segc_fp32", "eager_fp32", "compile_fp32", "eager_bf16", "compile_bf16"):
            v = r.get(k)
            if isinstance(v, dict) and "median_ms" in v:
                line += "  %s %.2f ms %.0f MiB" % (k, v["median_ms"], v["peak_mib"])
            elif isinstance(v, dict):
                line += "  %s: %s" % (k, v.get("error"))
        if "error" in r:
            line += "  error: %s" % r["error"]
        print(line)
        sys.stdout.flush()
        del model
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
