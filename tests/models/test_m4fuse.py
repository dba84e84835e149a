#!/usr/bin/env python3
"""tests/models/test_m4fuse.py -- graphs/m4fuse.json against tests/reference/m4fuse.py.

1. Counts: `segc info --json` params for T/S/B/L with 1 and 2 experts equal the spec's exact
   figures, and `gmacs_fvcore` at 128^3 equals the paper's 51.45 / 110.38 / 191.97 / 423.19
   (to 0.01 G), independent of the number of experts.
2. Fidelity: for each case, random weights (through safetensors) and a random input, the
   compiled engine (`segc run`) matches the float64 PyTorch reference, max rel err <= 1e-4;
   batch 2 with different labels so that both expert routes run in one forward pass.
   --interp also runs `segc interp` on the first case.
3. Bad labels: a route outside [0, M) makes `segc run` exit 1 with one line naming the
   input 'route'.  Bad -D values (experts 0/5, size X/2, base 18, D 8) make `segc info`
   exit 1 with one line naming the param or the failing node.

    tests/models/test_m4fuse.py [--only NAME] [--interp] [--keep]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import common  # noqa: E402
import m4fuse as ref  # noqa: E402

GRAPH = os.path.join(ROOT, "graphs", "m4fuse.json")
TOL = 1e-4

PARAMS = {("T", 1): 290078, ("S", 1): 633438, ("B", 1): 1108094, ("L", 1): 2455614,
          ("T", 2): 324169, ("S", 2): 705405, ("B", 2): 1231409, ("L", 2): 2723577}
FVCORE = {"T": 51.45, "S": 110.38, "B": 191.97, "L": 423.19}

# name, size, experts, (D, H, W), route, seed
CASES = [
    ("T-M1", "T", 1, (16, 16, 16), [0, 0], 1),
    ("T-M2", "T", 2, (16, 16, 16), [1, 0], 2),
    ("S-M2-odd", "S", 2, (17, 20, 18), [0, 1], 3),
    ("B-M2", "B", 2, (16, 16, 16), [1, 0], 4),
]


def segc():
    b = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def run(cmd, timeout=900):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          universal_newlines=True)


def defs(size, experts, dhw=None, batch=None):
    d = ["-D", "size=" + size, "-D", "experts=%d" % experts]
    if dhw:
        d += ["-D", "D=%d" % dhw[0], "-D", "H=%d" % dhw[1], "-D", "W=%d" % dhw[2]]
    if batch:
        d += ["-D", "batch=%d" % batch]
    return d


def info(d):
    p = run([segc(), "info", GRAPH, "--json"] + d)
    if p.returncode:
        raise RuntimeError("segc info: " + p.stderr.strip())
    return json.loads(p.stdout)


def count_cases():
    out = []
    for size in "TSBL":
        for m in (1, 2):
            i = info(defs(size, m, (128, 128, 128)))
            ok = i["params"] == PARAMS[(size, m)] and \
                abs(i["gmacs_fvcore"] - FVCORE[size]) < 0.005
            out.append(("count %s M=%d" % (size, m), ok,
                        "params %d (spec %d), fvcore %.4f G (paper %.2f), segc exact %.3f G"
                        % (i["params"], PARAMS[(size, m)], i["gmacs_fvcore"], FVCORE[size],
                           i["gmacs"])))
    return out


def fidelity(case, work, interp):
    name, size, experts, dhw, route, seed = case
    N = len(route)
    gen = torch.Generator().manual_seed(seed)
    model = ref.randomize(ref.M4Fuse(size, experts), gen).double().eval()
    sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
    d = defs(size, experts, dhw, N)
    i = info(d)
    got = {w["name"]: tuple(w["shape"]) for w in i["weights"]}
    want = {k: tuple(v.shape) for k, v in sd.items()}
    if got != want:
        miss = [k for k in want if k not in got][:3]
        extra = [k for k in got if k not in want][:3]
        return False, "weights differ: missing %s extra %s" % (miss, extra)
    x = torch.randn((N, 4) + dhw, generator=gen, dtype=torch.float64)
    r = torch.tensor(route, dtype=torch.int64)
    with torch.no_grad():
        y = model(x, r).numpy()
    wp, xp, rp, yp = (os.path.join(work, name + s) for s in (".st", "_x.npy", "_r.npy", "_y.npy"))
    common.write_safetensors(wp, sd)
    common.write_npy(xp, x.float().numpy())
    common.write_npy(rp, np.array(route, dtype=np.int64))
    eng = os.path.join(work, name + ".so")
    t0 = time.time()
    p = run([segc(), GRAPH, "-o", eng] + d)
    if p.returncode:
        return False, "compile: " + p.stderr.strip()[-300:]
    tc = time.time() - t0
    p = run([segc(), "run", eng, "--weights", wp, "--input", "x=" + xp, "--input",
             "route=" + rp, "--output", yp, "--repeat", "5"])
    if p.returncode:
        return False, "run: " + p.stderr.strip()[-300:]
    err = common.max_rel_err(common.read_npy(yp), y)
    lat = [ln for ln in p.stderr.splitlines() if ln.startswith("latency_ms")]
    msg = "max rel err %.2e, compile %.1f s%s" % (err, tc, (", " + lat[-1]) if lat else "")
    ok = err <= TOL
    if interp:
        ip = os.path.join(work, name + "_yi.npy")
        p = run([segc(), "interp", GRAPH, "--weights", wp, "--input", "x=" + xp, "--input",
                 "route=" + rp, "--output", ip] + d)
        if p.returncode:
            return False, "interp: " + p.stderr.strip()[-300:]
        e2 = common.max_rel_err(common.read_npy(ip), y)
        ok = ok and e2 <= TOL
        msg += ", interp %.2e" % e2
    # a label outside [0, M): one located line, exit 1
    bad = os.path.join(work, name + "_bad.npy")
    common.write_npy(bad, np.array([0, experts] + [0] * (N - 2), dtype=np.int64))
    p = run([segc(), "run", eng, "--weights", wp, "--input", "x=" + xp, "--input",
             "route=" + bad, "--output", yp])
    lines = p.stderr.strip().splitlines()
    if p.returncode != 1 or len(lines) != 1 or "route" not in lines[0]:
        return False, "bad label: exit %d, stderr %r" % (p.returncode, p.stderr[-300:])
    return ok, msg


# bad -D values: exit 1 with one line naming the param (or the node whose shape rule fails)
BAD_DEFINES = [
    (["-D", "experts=0"], "/params/experts: error: experts = 0: expected 1 to 4"),
    (["-D", "experts=5"], "/params/experts: error: experts = 5: expected 1 to 4"),
    (["-D", "size=X"], "/params/size: error: -D size=X is not one of T, S, B, L"),
    (["-D", "size=2"], "/params/size: error: -D size=2 is not one of T, S, B, L"),
    (["-D", "base=18"], "/params/base: error: base = 18: expected a positive multiple of 4"),
    (["-D", "D=8"], "max_pool3d"),
]


def bad_define_cases():
    out = []
    for d, want in BAD_DEFINES:
        p = run([segc(), "info", GRAPH] + d)
        lines = p.stderr.strip().splitlines()
        ok = p.returncode == 1 and len(lines) == 1 and want in lines[0]
        out.append(("bad %s" % " ".join(d[1:]), ok, lines[0] if lines else "(no message)"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    ap.add_argument("--interp", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="segc-m4fuse-")
    npass = nfail = 0
    try:
        results = []
        if not args.only or "count" in args.only:
            results += count_cases()
        if not args.only or "bad" in args.only:
            results += bad_define_cases()
        for k, c in enumerate(CASES):
            if args.only and args.only not in c[0]:
                continue
            t0 = time.time()
            try:
                ok, msg = fidelity(c, work, args.interp and k == 0)
            except Exception as e:  # noqa: BLE001
                ok, msg = False, "%s: %s" % (type(e).__name__, e)
            results.append(("m4fuse %s" % c[0], ok, "%s (%.1f s)" % (msg, time.time() - t0)))
            print("%s %s: %s" % ("ok  " if ok else "FAIL", results[-1][0], results[-1][2]),
                  flush=True)
        for n, ok, msg in results:
            if n.startswith("count") or n.startswith("bad"):
                print("%s %s: %s" % ("ok  " if ok else "FAIL", n, msg))
        npass = sum(1 for r in results if r[1])
        nfail = len(results) - npass
    finally:
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
