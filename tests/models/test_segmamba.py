#!/usr/bin/env python3
"""tests/models/test_segmamba.py -- SegMamba v1 and SegMamba-V2 graphs against the spec and PyTorch.

Two kinds of case (spec: /work/shared/models/segmamba-home.md):
  count   `segc info --json` at the paper's input (4 x 128^3): the parameter count must equal the
          spec's exact integer (section 7.1); the MACs are printed next to the spec's figure.
  model   the graph's CPU engine (and with --interp `segc interp`) against the independent PyTorch
          oracle (tests/reference/segmamba.py, segmamba_v2.py) run in float64 on a small input,
          random weights through safetensors, max|a - b| / max|ref| <= 1e-4.  Mamba parameters are
          drawn as spec 1.4 recommends (b_dt = softplus^-1(dt), dt log-uniform in [1e-3, 0.1];
          A_log = log(U(1, 16))) so the recurrence is exercised.  Pruned cases also check that the
          reference's k-th and (k+1)-th token scores are well separated (a near-tie could flip
          the kept set under float32 rounding; spec 5.4 op 24).

    tests/models/test_segmamba.py [--only NAME] [--all] [--interp] [--no-engine] [--keep]
                                  [--threads N] [--repeat N]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
"""
import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, HERE)

from common import write_safetensors  # noqa: E402
import test_models as tm  # noqa: E402

TOL = 1e-4
MIN_MARGIN = 1e-5  # relative score gap at the pruning threshold

V1, V2 = "graphs/segmamba.json", "graphs/segmamba_v2.json"

# name, graph, -D overrides, exact parameter count (spec 7.1), spec MACs at 4 x 128^3 (7.2) or None
COUNTS = [
    ("v1", V1, {}, 67416196, 1468.7e9),
    ("v1-1to13", V1, {"in_ch": 1, "classes": 13}, 67363213, None),
    ("v2-C48", V2, {}, 138776824, 1864.6e9),
    ("v2-C40", V2, {"C": 40}, 96393114, 1296.5e9),
    ("v2-C32", V2, {"C": 32}, 61711100, 831.4e9),
    ("v2-C48-reloc", V2, {"relocate": "true"}, 136520056, 1896.4e9),
    ("v2-C40-reloc", V2, {"C": 40, "relocate": "true"}, 94812634, None),
    ("v2-C32-reloc", V2, {"C": 32, "relocate": "true"}, 60686588, 847.0e9),
    ("v2-C48-prune", V2, {"prune": "0.5,0.7"}, 138776824, None),
    ("v2-C32-reloc-prune", V2, {"C": 32, "relocate": "true", "prune": "0.5,0.7"}, 60686588, None),
]

# name, graph, reference module, -D overrides, seed
MODELS = [
    ("v1-C16-s32", V1, "segmamba", {"C": 16, "size": 32}, 11),
    ("v1-C16-s32-ns", V1, "segmamba", {"C": 16, "size": 32, "nslices": "8,4,2,2"}, 12),
    ("v2-C32-s32", V2, "segmamba_v2", {"C": 32, "size": 32}, 21),
    ("v2-C32-s32-reloc", V2, "segmamba_v2", {"C": 32, "size": 32, "relocate": "true"}, 22),
    ("v2-C32-s32-prune", V2, "segmamba_v2", {"C": 32, "size": 32, "prune": "0.5,0.7"}, 23),
    ("v2-C32-s32-reloc-prune", V2, "segmamba_v2",
     {"C": 32, "size": 32, "relocate": "true", "prune": "0.5,0.7"}, 24),
]
# slower cases, run with --all (the official width of v1 on a small input)
EXTRA = [
    ("v1-C48-s32", V1, "segmamba", {"size": 32}, 13),
]


def randomise(model, seed):
    """test_models.randomise, then the Mamba parameters as spec 1.4 recommends."""
    sd = tm.randomise(model, seed)
    g = np.random.default_rng(seed + 1000)
    for name, v in sd.items():
        base = name.rsplit(".", 1)[-1]
        if ".mamba." in name and base.startswith("A") and base.endswith("_log"):
            sd[name] = np.log(g.uniform(1.0, 16.0, v.shape)).astype(np.float32)
        elif ".mamba.dt_proj" in name and name.endswith(".bias"):
            dt = np.exp(g.uniform(np.log(1e-3), np.log(0.1), v.shape))
            dt = np.maximum(dt, 1e-4)
            sd[name] = (dt + np.log(-np.expm1(-dt))).astype(np.float32)
        elif ".mamba." in name and base.startswith("D"):
            sd[name] = g.uniform(0.5, 1.5, v.shape).astype(np.float32)
    return sd


def info(graph, over):
    return json.loads(tm.run([tm.segc_bin(), "info", os.path.join(ROOT, graph), "--json"] +
                             tm.defines(over)))


def count_case(case):
    name, graph, over, want, macs = case
    inf = info(graph, over)
    got = int(inf["params"])
    msg = "params %d (spec %d)" % (got, want)
    if macs:
        msg += ", MACs %.1fG (spec %.1fG)" % (int(inf["macs"]) / 1e9, macs / 1e9)
    else:
        msg += ", MACs %.1fG" % (int(inf["macs"]) / 1e9)
    return got == want, msg


def model_case(case, work, args):
    name, graph, refmod, over, seed = case
    ref = importlib.import_module(refmod)
    params = dict(ref.DEFAULTS)
    params.update(over)
    torch.manual_seed(seed)
    model = ref.build(params)
    sd = randomise(model, seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    model = model.double().eval()
    x = np.random.default_rng(seed).standard_normal(ref.input_shape(params)).astype(np.float32)
    t0 = time.time()
    with torch.no_grad():
        want = model(torch.from_numpy(x).double()).numpy()
    tref = time.time() - t0
    notes = ["ref %.1fs" % tref]
    margin = model.prune_margin() if hasattr(model, "prune_margin") else None
    if margin is not None:
        notes.append("prune margin %.1e" % margin)
        if margin < MIN_MARGIN:
            raise RuntimeError("reference pruning near-tie (margin %.1e < %.0e): pick another seed"
                               % (margin, MIN_MARGIN))
    wpath = os.path.join(work, name + ".safetensors")
    xpath = os.path.join(work, name + ".x.npy")
    write_safetensors(wpath, sd)
    np.save(xpath, x)
    tm.check_weights(graph, over, sd)

    results = []
    modes = (["engine"] if not args.no_engine else []) + (["interp"] if args.interp else [])
    for mode in modes:
        ypath = os.path.join(work, "%s.%s.y.npy" % (name, mode))
        t0 = time.time()
        if mode == "engine":
            eng = os.path.join(work, name + ".so")
            tm.run([tm.segc_bin(), os.path.join(ROOT, graph), "-o", eng] + tm.defines(over))
            tc = time.time() - t0
            cmd = [tm.segc_bin(), "run", eng, "--weights", wpath, "--input", xpath,
                   "--output", ypath, "--threads", str(args.threads), "--repeat", str(args.repeat)]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900,
                               universal_newlines=True)
            if p.returncode != 0:
                raise RuntimeError("segc run exited %d: %s" % (p.returncode, p.stderr.strip()))
            notes.append("compile %.1fs" % tc)
            notes += [ln.strip() for ln in p.stderr.splitlines() if ln.startswith("latency_ms")]
        else:
            tm.run([tm.segc_bin(), "interp", os.path.join(ROOT, graph)] + tm.defines(over) +
                   ["--weights", wpath, "--input", xpath, "--output", ypath])
        dt = time.time() - t0
        got = np.load(ypath)
        if got.shape != want.shape:
            raise RuntimeError("%s: output shape %s, expected %s" % (mode, got.shape, want.shape))
        if not np.all(np.isfinite(got)):
            raise RuntimeError("%s: output has non-finite values" % mode)
        err = float(np.max(np.abs(got.astype(np.float64) - want)) / np.max(np.abs(want)))
        results.append((mode, err, dt))
    ok = all(e <= TOL for _, e, _ in results)
    errs = " ".join("%s_relerr=%.2e (%.1fs)" % r for r in results)
    return ok, "%s [%s]" % (errs, "; ".join(notes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="run only these case names")
    ap.add_argument("--interp", action="store_true", help="also check `segc interp`")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--all", action="store_true", help="also run the slower EXTRA cases")
    ap.add_argument("--no-engine", action="store_true", help="skip the compiled engine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="segc run --repeat (timing)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if not os.path.exists(tm.segc_bin()):
        print("segc binary not found: %s (run make)" % tm.segc_bin())
        print("0 passed, 1 failed")
        return 1
    work = tempfile.mkdtemp(prefix="segc-segmamba-")
    npass = nfail = 0
    models = MODELS + (EXTRA if args.all or args.only else [])
    cases = [("count", c) for c in COUNTS] + [("model", c) for c in models]
    for kind, case in cases:
        if args.only and case[0] not in args.only:
            continue
        over = case[2] if kind == "count" else case[3]
        label = "%s %s %s%s" % (kind, case[0], case[1],
                                "".join(" -D %s=%s" % kv for kv in over.items()))
        try:
            ok, msg = count_case(case) if kind == "count" else model_case(case, work, args)
        except Exception as e:  # one line per failing case, keep going
            ok, msg = False, str(e).replace("\n", " ")
        print("%s %s: %s" % ("PASS" if ok else "FAIL", label, msg))
        sys.stdout.flush()
        npass += ok
        nfail += not ok
    if args.keep or nfail:
        print("work directory: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
