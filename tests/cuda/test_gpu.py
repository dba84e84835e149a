#!/usr/bin/env python3
"""tests/cuda/test_gpu.py -- the CUDA engines on a GPU against PyTorch (what `make test-gpu` runs).

Needs the cases tests/cuda/gpu_prep.py compiled where segc builds (build/gpu-cases, or its
.tar.xz, unpacked here when the folder is missing); needs only Python, numpy and torch here.
  ops/    every op case of tests/ops/test_ops*.py: the engine's output (host-pointer run)
          against the PyTorch result stored with the case;
  models/ every tests/models/test_models.py case: the engine against the PyTorch oracle in
          float64 (stored), against the same module run by PyTorch on this GPU in float32,
          and run_device on torch CUDA tensors must give the host run's result bit for bit.
Tolerance: max|a - b| / max|ref| <= 1e-4 (fp32; --tol for tf32 ~5e-3, bf16 ~3e-2).
One line per case, then `N passed, M failed`; exit status 1 when any case fails.

    tests/cuda/test_gpu.py [--cases DIR] [--tol 1e-4] [--only SUBSTRING]
"""
import argparse
import glob
import importlib
import json
import os
import sys
import tarfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import segc_api  # noqa: E402


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if np.isnan(a).any() or np.isnan(b).any():
        return 0.0 if (np.isnan(a) == np.isnan(b)).all() and np.allclose(
            a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=1e-4 * max(
                float(np.abs(b[~np.isnan(b)]).max(initial=0)), 1e-6)) else float("inf")
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-6))


def op_case(d, tol):
    meta = json.load(open(os.path.join(d, "meta.json")))
    label = "%s %s" % (meta["op"], meta["label"])
    if meta.get("error"):
        return None, label, "did not compile: %s" % meta["error"]
    eng = segc_api.Engine(os.path.join(d, "engine.so"))
    try:
        eng.load_weights(os.path.join(d, "w.safetensors"))
        ins = [np.load(os.path.join(d, "in_%d.npy" % k)) for k in range(len(meta["inputs"]))]
        outs = eng.run(ins)
    finally:
        eng.close()
    err = max(rel_err(o, np.load(os.path.join(d, "ref_%d.npy" % k)))
              for k, o in enumerate(outs))
    return err <= tol, label, "err %.2e" % err


def model_case(d, tol):
    import torch
    import common
    meta = json.load(open(os.path.join(d, "meta.json")))
    label = "model %s" % os.path.basename(d)
    if meta.get("error"):
        return None, label, "did not compile: %s" % meta["error"]
    x = np.load(os.path.join(d, "x.npy"))
    want = np.load(os.path.join(d, "ref.npy"))
    eng = segc_api.Engine(os.path.join(d, "engine.so"))
    try:
        eng.load_weights(os.path.join(d, "w.safetensors"))
        t0 = time.time()
        got = eng.run([x])[0]
        dt = time.time() - t0
        xd = torch.from_numpy(x).cuda()
        yd = torch.empty(want.shape, device="cuda", dtype=torch.float32)
        torch.cuda.synchronize()
        eng.run_device([xd.data_ptr()], [yd.data_ptr()])
        same = np.array_equal(yd.cpu().numpy(), got)
        dev = eng.device()
    finally:
        eng.close()
    ref = importlib.import_module(meta["module"])
    torch.manual_seed(meta["seed"])
    model = ref.build(meta["params"])
    sd = common.read_safetensors(os.path.join(d, "w.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    model = model.float().eval().cuda()
    with torch.no_grad():
        tg = model(torch.from_numpy(x).cuda()).float().cpu().numpy()
    e64, egpu = rel_err(got, want), rel_err(got, tg)
    ok = e64 <= tol and egpu <= max(tol, 2 * rel_err(tg, want)) and same
    return ok, label, "err vs fp64 oracle %.2e, vs torch fp32 on GPU %.2e (torch itself %.2e), " \
        "run_device %s, %.3fs on %s" % (e64, egpu, rel_err(tg, want),
                                        "identical" if same else "DIFFERS", dt, dev)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=os.path.join(ROOT, "build", "gpu-cases"))
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--only")
    args = ap.parse_args()
    if not os.path.isdir(args.cases) and os.path.exists(args.cases + ".tar.xz"):
        with tarfile.open(args.cases + ".tar.xz") as t:
            t.extractall(os.path.dirname(args.cases))
    if not os.path.isdir(args.cases):
        print("no cases in %s: run tests/cuda/gpu_prep.py where segc builds" % args.cases)
        print("0 passed, 1 failed")
        return 1
    npass = nfail = nskip = 0
    t0 = time.time()
    dirs = sorted(glob.glob(os.path.join(args.cases, "ops", "*", "*")))
    dirs += sorted(glob.glob(os.path.join(args.cases, "models", "*")))
    for d in dirs:
        if args.only and args.only not in d:
            continue
        try:
            fn = model_case if "/models/" in d else op_case
            ok, label, msg = fn(d, args.tol)
        except Exception as e:  # noqa: BLE001 -- a failing case is reported, not fatal
            ok, label, msg = False, os.path.relpath(d, args.cases), "error: %s" % e
        tag = "skip" if ok is None else "ok  " if ok else "FAIL"
        print("%s %-60s %s" % (tag, label[:60], msg))
        sys.stdout.flush()
        if ok is None:
            nskip += 1
        elif ok:
            npass += 1
        else:
            nfail += 1
    for path in glob.glob(os.path.join(args.cases, "arch", "*.so")):
        try:
            segc_api.Engine(path).close()
            ok, msg = False, "opened an engine built for another GPU architecture"
        except segc_api.SegcError as e:
            ok, msg = "recompile with" in str(e), str(e)
        print("%s %-60s %s" % ("ok  " if ok else "FAIL", "wrong arch " + os.path.basename(path),
                               msg))
        npass += ok
        nfail += not ok
    print("(%.1fs, %d skipped: did not compile for the CPU either or not at all)" %
          (time.time() - t0, nskip))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
