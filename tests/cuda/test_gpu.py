#!/usr/bin/env python3
"""tests/cuda/test_gpu.py -- the CUDA engines on a GPU against PyTorch (what `make test-gpu` runs).

Needs the cases tests/cuda/gpu_prep.py compiled where segc builds (build/gpu-cases, or its
.tar.xz, unpacked here when the folder is missing); needs only Python, numpy and torch here.
  ops/    every op case of tests/ops/test_ops*.py: the engine's output (host-pointer run)
          against the PyTorch result stored with the case; conv3d / conv_transpose3d / linear /
          matmul cases also with their tf32 and bf16 engines where segc built them;
  models/ every tests/models/test_models.py case: the engine against the PyTorch oracle in
          float64 (stored), against the same module run by PyTorch on this GPU in float32,
          and run_device on torch CUDA tensors must give the host run's result bit for bit;
  arch/   an engine built for another GPU architecture must refuse to open, naming the fix.
Tolerances, max|a - b| / max|ref| (ref: PyTorch in fp32 or fp64): fp32 1e-4; tf32 2e-3 (10-bit
mantissa inputs, fp32 accumulation); bf16 2e-2 (8-bit mantissa inputs, fp32 accumulation).

Robustness: the cases run in a worker process (one CUDA context, engines opened and closed in
turn); the parent gives each case --case-timeout seconds and the whole run --total seconds.
A case that hangs or crashes the worker (a signal, an abort in the driver) is reported as
FAIL and the next worker resumes after it (so does a case that ends in a CUDA error: those
are sticky, the context is unusable); the cases left when time is up are `not run`.
One line per case, then `N passed, M failed`; --json writes every result (rewritten after each
case, so a killed run leaves what it had); exit status 1 when any case fails.
--device cpu runs the same logic on CPU engines (gpu_prep.py --arch cpu) and torch on the CPU:
the dry run of this script where there is no GPU.

    tests/cuda/test_gpu.py [--cases DIR] [--only SUBSTRING] [--precision fp32,tf32,bf16]
                           [--case-timeout 30] [--total 190] [--json FILE] [--device cuda|cpu]
                           [--self-test]
"""
import argparse
import glob
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

TOL = {"fp32": 1e-4, "tf32": 2e-3, "bf16": 2e-2}
MARK = "@@case "


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


def engine_name(prec):
    return "engine.so" if prec == "fp32" else "engine.%s.so" % prec


def collect(cases, only, precisions):
    """[(kind, dir, precision)] in the order they run"""
    out = []
    for d in sorted(glob.glob(os.path.join(cases, "ops", "*", "*"))):
        try:
            meta = json.load(open(os.path.join(d, "meta.json")))
        except (OSError, ValueError):
            meta = {}
        for prec in precisions:
            if prec == "fp32" or (prec in meta.get("precisions", {}) and
                                  meta["precisions"][prec] is None):
                out.append(("op", d, prec))
    out += [("model", d, "fp32") for d in sorted(glob.glob(os.path.join(cases, "models", "*")))]
    out += [("arch", p, "fp32") for p in sorted(glob.glob(os.path.join(cases, "arch", "*.so")))]
    if only:
        out = [c for c in out if only in c[1]]
    return out


# ---- the worker: runs cases [start:] and prints one MARK line (JSON) per finished case ----

def op_case(d, prec, dev):
    import segc_api
    meta = json.load(open(os.path.join(d, "meta.json")))
    label = "%s %s" % (meta["op"], meta["label"])
    err = meta.get("error") if prec == "fp32" else meta.get("precisions", {}).get(prec)
    if err:
        return None, label, "did not compile: %s" % err
    eng = segc_api.Engine(os.path.join(d, engine_name(prec)))
    try:
        eng.load_weights(os.path.join(d, "w.safetensors"))
        ins = [np.load(os.path.join(d, "in_%d.npy" % k)) for k in range(len(meta["inputs"]))]
        outs = eng.run(ins)
    finally:
        eng.close()
    e = max([rel_err(o, np.load(os.path.join(d, "ref_%d.npy" % k)))
             for k, o in enumerate(outs)] or [0.0])
    return e <= TOL[prec], label, "err %.2e (tol %.0e)" % (e, TOL[prec])


def model_case(d, prec, dev):
    import torch
    import common
    import segc_api
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
        xd = torch.from_numpy(x).to(dev)
        yd = torch.full(want.shape, float("nan"), device=dev, dtype=torch.float32)
        if dev == "cuda":
            torch.cuda.synchronize()
        eng.run_ptrs([xd.data_ptr()], [yd.data_ptr()], device=dev == "cuda")
        same = np.array_equal(yd.cpu().numpy(), got)
        where = eng.device()
    finally:
        eng.close()
    ref = importlib.import_module(meta["module"])
    torch.manual_seed(meta["seed"])
    model = ref.build(meta["params"])
    sd = common.read_safetensors(os.path.join(d, "w.safetensors"))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    model = model.float().eval().to(dev)
    with torch.no_grad():
        tg = model(torch.from_numpy(x).to(dev)).float().cpu().numpy()
    e64, egpu, et = rel_err(got, want), rel_err(got, tg), rel_err(tg, want)
    ok = e64 <= TOL[prec] and egpu <= max(TOL[prec], 2 * et) and same
    return ok, label, "err vs fp64 oracle %.2e, vs torch fp32 on %s %.2e (torch itself %.2e), " \
        "run_device %s, %.3fs on %s" % (e64, dev, egpu, et, "identical" if same else "DIFFERS",
                                        dt, where)


def arch_case(path, prec, dev):
    import segc_api
    label = "wrong arch " + os.path.basename(path)
    try:
        segc_api.Engine(path).close()
        return False, label, "opened an engine built for another GPU architecture"
    except segc_api.SegcError as e:
        return "recompile with" in str(e), label, str(e)


def worker(listfile, start, dev):
    keep = None
    if dev == "cuda":
        # the one context: the device's primary context, held by torch for the whole worker
        # (a tensor on the device makes the runtime create and retain it); each engine retains
        # and releases it too, so opening and closing engines never recreates it
        import torch
        keep = torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
    cases = json.load(open(listfile))
    # the parent's crash and time-limit handling is tested by making chosen cases misbehave:
    # SEGC_TEST_GPU_INJECT="crash:3,hang:5,cudaerr:7" (case indices)
    inject = dict(w.split(":")[::-1] for w in os.environ.get("SEGC_TEST_GPU_INJECT", "").split(",")
                  if ":" in w)
    for i in range(start, len(cases)):
        kind, d, prec = cases[i]
        print("%sbegin %d" % (MARK, i), flush=True)
        if inject.get(str(i)) == "crash":
            os.abort()
        if inject.get(str(i)) == "hang":
            time.sleep(1e6)
        t0 = time.time()
        try:
            if inject.get(str(i)) == "cudaerr":
                raise RuntimeError("run: CUDA_ERROR_ILLEGAL_ADDRESS (injected)")
            ok, label, msg = {"op": op_case, "model": model_case, "arch": arch_case}[kind](
                d, prec, dev)
        except Exception as e:  # noqa: BLE001 -- a failing case is reported, not fatal
            ok, label, msg = False, "%s %s" % (kind, "/".join(d.split(os.sep)[-3:])), \
                "error: %s" % str(e)[:500]
        r = {"i": i, "ok": ok, "label": label, "msg": msg, "s": round(time.time() - t0, 3)}
        print(MARK + json.dumps(r), flush=True)
        if ok is False and "CUDA_ERROR" in msg and kind != "arch":
            # a launch error (illegal address, ...) is sticky: the context is unusable now,
            # so the next case starts in a fresh worker
            print("%srestart" % MARK, flush=True)
            return 3
    print("%sdone" % MARK, flush=True)
    del keep
    return 0


# ---- the parent: starts workers, enforces the time limits, collects the results ----

class Runner:
    def __init__(self, args, cases):
        self.args, self.cases = args, cases
        self.results = [None] * len(cases)
        self.workers = 0
        self.t0 = time.time()
        self.tmp = tempfile.mkdtemp(prefix="segc-test-gpu-")
        self.listfile = os.path.join(self.tmp, "cases.json")
        json.dump(cases, open(self.listfile, "w"))

    def record(self, i, ok, label, msg, secs):
        kind, d, prec = self.cases[i]
        label = "%s [%s]" % (label, prec) if prec != "fp32" else label
        self.results[i] = {"case": os.path.relpath(d, self.args.cases), "kind": kind,
                           "precision": prec, "label": label, "ok": ok, "msg": msg,
                           "seconds": secs, "tol": TOL[prec]}
        tag = "skip" if ok is None else "ok  " if ok else "FAIL"
        print("%s %-60s %s" % (tag, label[:60], msg), flush=True)
        self.save()

    def save(self, final=False):
        if not self.args.json:
            return
        done = [r for r in self.results if r]
        doc = {"device": self.args.device, "total_s": round(time.time() - self.t0, 1),
               "final": final, "tolerances": TOL, "passed": sum(r["ok"] is True for r in done),
               "failed": sum(r["ok"] is False for r in done),
               "skipped": sum(r["ok"] is None for r in done),
               "not_run": len(self.results) - len(done), "results": done}
        tmp = self.args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=0)
        os.replace(tmp, self.args.json)

    def run_from(self, start):
        """one worker from case `start`; returns the index to resume at (len: all done)"""
        self.workers += 1
        errf = open(os.path.join(self.tmp, "worker.err"), "w+")
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                              self.listfile, str(start), "--device", self.args.device,
                              "--cases", self.args.cases], stdout=subprocess.PIPE,
                             stderr=errf, universal_newlines=True, start_new_session=True)
        nxt = start                                 # the case that runs or runs next
        deadline = time.time() + self.args.case_timeout + 30       # + the worker's start
        try:
            while True:
                end = min(deadline, self.t0 + self.args.total)
                ready, _, _ = select.select([p.stdout], [], [], max(0.0, end - time.time()))
                if not ready:                               # a case over its time (or all)
                    if time.time() >= self.t0 + self.args.total:
                        return nxt                          # left as `not run`
                    self.record(nxt, False, self.label(nxt), "not finished in %.0f s: killed"
                                % self.args.case_timeout, None)
                    return nxt + 1
                line = p.stdout.readline()
                if not line:                                # the worker died
                    p.wait()
                    if nxt >= len(self.cases):
                        return nxt
                    errf.seek(0)
                    tail = " / ".join(errf.read().strip().splitlines()[-3:])[-400:]
                    self.record(nxt, False, self.label(nxt), "worker died (exit %s): %s" % (
                        p.returncode, tail), None)
                    return nxt + 1
                if not line.startswith(MARK):
                    continue
                body = line[len(MARK):].strip()
                if body == "done":
                    return len(self.cases)
                if body == "restart":                       # a sticky CUDA error
                    return nxt
                if body.startswith("begin "):
                    nxt = int(body.split()[1])
                    deadline = time.time() + self.args.case_timeout
                    continue
                r = json.loads(body)
                self.record(r["i"], r["ok"], r["label"], r["msg"], r["s"])
                nxt = r["i"] + 1
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            errf.close()

    def label(self, i):
        kind, d, prec = self.cases[i]
        return "%s %s" % (kind, os.path.relpath(d, self.args.cases))

    def run(self):
        i = 0
        while i < len(self.cases) and time.time() < self.t0 + self.args.total:
            i = self.run_from(i)
        notrun = sum(r is None for r in self.results)
        self.save(final=True)
        return notrun


def self_test(args, cases):
    """the parent's recovery, checked on real cases (--device cpu works): case 1 aborts the
    worker, case 3 hangs past a 4 s case limit, case 4 ends in a (sticky) CUDA error; every
    other case must still run and pass, each in a new worker, and
    a 0.05 s total must leave cases `not run`.  Returns the number of failed checks."""
    if len(cases) < 5:
        print("self-test: needs >= 5 cases, have %d" % len(cases))
        return 1
    cases = cases[:6]
    bad = 0
    os.environ["SEGC_TEST_GPU_INJECT"] = "crash:1,hang:3,cudaerr:4"
    args.case_timeout, args.total = 4.0, 120.0
    r = Runner(args, cases)
    r.run()
    res = r.results
    checks = [("crash recorded", res[1] and res[1]["ok"] is False and "died" in res[1]["msg"]),
              ("hang recorded", res[3] and res[3]["ok"] is False and
               "not finished" in res[3]["msg"]),
              ("a CUDA error recorded", res[4] and res[4]["ok"] is False and
               "CUDA_ERROR" in res[4]["msg"]),
              ("a new worker after each of the three", r.workers == 4),
              ("the others ran and passed", all(res[i] and res[i]["ok"] is not False
                                                for i in (0, 2, 5)))]
    if args.json:
        doc = json.load(open(args.json))
        checks.append(("json has every case", len(doc["results"]) == len(cases)))
    del os.environ["SEGC_TEST_GPU_INJECT"]
    args.total = 0.05
    r = Runner(args, cases)
    notrun = r.run()
    checks.append(("a short total leaves cases not run", notrun > 0))
    for name, ok in checks:
        print("self-test %s: %s" % ("ok  " if ok else "FAIL", name))
        bad += not ok
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=os.path.join(ROOT, "build", "gpu-cases"))
    ap.add_argument("--only", help="cases whose folder contains this substring")
    ap.add_argument("--precision", default="fp32,tf32,bf16")
    ap.add_argument("--case-timeout", type=float, default=30.0)
    ap.add_argument("--total", type=float, default=190.0, help="seconds for all cases")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--self-test", action="store_true",
                    help="check the crash/hang/time-limit handling on the first 6 cases")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), args.device)
    # a SIGTERM (timeout(1)) unwinds, so the worker processes are killed on the way out
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    if not os.path.isdir(args.cases) and os.path.exists(args.cases + ".tar.xz"):
        with tarfile.open(args.cases + ".tar.xz") as t:
            t.extractall(os.path.dirname(args.cases))
    if not os.path.isdir(args.cases):
        print("no cases in %s: run tests/cuda/gpu_prep.py where segc builds" % args.cases)
        print("0 passed, 1 failed")
        return 1
    cases = collect(args.cases, args.only, args.precision.split(","))
    if args.device == "cpu":
        cases = [c for c in cases if c[0] != "arch"]
    unbuilt = {}
    for d in glob.glob(os.path.join(args.cases, "ops", "*", "*")):
        try:
            for prec, why in json.load(open(os.path.join(d, "meta.json"))).get(
                    "precisions", {}).items():
                if why:
                    unbuilt.setdefault(prec, [0, why])[0] += 1
        except (OSError, ValueError):
            pass
    for prec, (n, why) in sorted(unbuilt.items()):
        print("note: %d %s op engines were not built: %s" % (n, prec, why))
    print("%d cases (%s), %.0f s per case, %.0f s in all; tolerances %s" % (
        len(cases), args.device, args.case_timeout, args.total,
        ", ".join("%s %.0e" % kv for kv in TOL.items())), flush=True)
    if args.self_test:
        return 1 if self_test(args, cases) else 0
    r = Runner(args, cases)
    notrun = r.run()
    res = [x for x in r.results if x]
    npass = sum(x["ok"] is True for x in res)
    nfail = sum(x["ok"] is False for x in res)
    nskip = sum(x["ok"] is None for x in res)
    byprec = {}
    for x in res:
        b = byprec.setdefault(x["precision"], [0, 0])
        b[0 if x["ok"] else 1] += x["ok"] is not None
    print("(%.1fs; %d skipped: did not compile; %d not run: out of time; %s)" % (
        time.time() - r.t0, nskip, notrun,
        ", ".join("%s %d/%d" % (k, v[0], v[0] + v[1]) for k, v in sorted(byprec.items()))))
    print("%d passed, %d failed" % (npass, nfail + notrun))
    return 1 if nfail or notrun else 0


if __name__ == "__main__":
    sys.exit(main())
