#!/usr/bin/env python3
"""tests/models/test_mamba_home.py -- graphs/mamba_home.json against its PyTorch oracle.

1. counts: `segc info --json` of the default graph (1 -> 13 channels, the public inference
   configuration) reports 170,128,101 parameters, the spec's exact count (paper 170.5M; the
   paper's f_Linear is absent from the code), equal to the reference model's count, with the
   reference's public state_dict keys and shapes; and 170,181,084 with 4 -> 4 channels.
2. weights: for the small fidelity configuration the graph's weight list equals the public
   state_dict keys and shapes of tests/reference/mamba_home.py.
3. fidelity: small widths, expert counts and group sizes that force padding at every stage
   (N = 1024, 128, 16, 2 tokens with K = 48, 20, 3, 3), random weights through safetensors,
   random input: the compiled engine (`segc run`) and the interpreter (`segc interp`) match the reference
   (float64) within max|a - b| / max|ref| <= 1e-4.

    tests/models/test_mamba_home.py [--no-interp] [--keep] [--threads N]

One line per check, then `N passed, M failed`; exit status 1 when any check fails.
SEGC picks the binary (default build/segc); SEGC_TARGET (e.g. cuda:sm_90) the engine target.
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
import mamba_home as ref  # noqa: E402

GRAPH = os.path.join(ROOT, "graphs", "mamba_home.json")
TOL = 1e-4
SPEC_PARAMS = 170128101          # spec 7.1, Mamba-HoME 1 -> 13
SPEC_PARAMS_44 = 170181084       # 4 -> 4

# small fidelity configuration, input 16x16x32 (stages 8x8x16 .. 1x1x2): padding at every
# stage (N = 1024, 128, 16, 2 tokens with K = 48, 20, 3, 3)
SMALL = {"in_ch": 1, "classes": 3, "D": 16, "H": 16, "W": 32, "feat": [8, 16, 24, 32],
         "hidden": 40, "depths": [2, 1, 1, 1], "experts": [2, 2, 3, 2],
         "experts_second": [4, 4, 6, 4], "groups": [48, 20, 3, 3], "slots": 2,
         "expert_mult": 2}


def segc():
    b = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def run(cmd, timeout=900):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       universal_newlines=True)
    if p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
        raise RuntimeError("%s: exit %d: %s" % (os.path.basename(cmd[1]) if len(cmd) > 1 else
                                                cmd[0], p.returncode, msg[-1] if msg else ""))
    return p.stdout


def defines(over):
    out = []
    for k, v in over.items():
        if isinstance(v, list):
            v = ",".join(str(e) for e in v)
        out += ["-D", "%s=%s" % (k, v)]
    return out


def info(over):
    return json.loads(run([segc(), "info", GRAPH, "--json"] + defines(over)))


def ref_kwargs(p):
    return dict(in_ch=p["in_ch"], classes=p["classes"], feat=tuple(p["feat"]),
                depths=tuple(p["depths"]), hidden=p["hidden"], experts=tuple(p["experts"]),
                experts2=tuple(p["experts_second"]), groups=tuple(p["groups"]),
                slots=p["slots"], mult=p["expert_mult"])


def randomise(model, seed):
    """torch's default init for linears and convs; the parameters it initialises to constants
    get random values in ranges that keep the scan and the gates meaningful (spec 1.4)"""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.public_state().items():
            last = k.rsplit(".", 1)[-1]
            if last == "A_log":
                v.copy_(torch.log(torch.arange(1, v.shape[1] + 1.0)).repeat(v.shape[0], 1) +
                        0.1 * torch.randn(v.shape, generator=g))
            elif k.endswith("dt_proj.bias"):
                dt = torch.exp(torch.rand(v.shape, generator=g) * (np.log(0.1) - np.log(1e-3)) +
                               np.log(1e-3))
                v.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif last == "alpha":
                v.copy_(0.3 + 1.2 * torch.rand(v.shape, generator=g))
            elif last in ("gamma", "expert_gates", "D") or (
                    last == "weight" and (".norm." in k or "norm_moe" in k)):
                v.copy_(0.5 + torch.rand(v.shape, generator=g))
            elif last == "bias" and (".norm." in k or "norm_moe" in k):
                v.copy_(0.1 * torch.randn(v.shape, generator=g))
    return {k: v.detach().float().numpy().copy() for k, v in model.public_state().items()}


def check(name, fn, results):
    t0 = time.time()
    try:
        msg = fn()
        ok = True
    except Exception as e:  # noqa: BLE001 -- a failed check, reported
        ok, msg = False, str(e)
    print("%s %-28s %s (%.1fs)" % ("ok  " if ok else "FAIL", name, msg, time.time() - t0))
    sys.stdout.flush()
    results.append(ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-interp", action="store_true", help="skip `segc interp`")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    work = tempfile.mkdtemp(prefix="segc-home-")
    results = []

    def count_default():
        inf = info({})
        got = int(inf["params"])
        sd = ref.MambaHoME().public_state()
        want = sum(v.numel() for v in sd.values())
        if not got == want == SPEC_PARAMS:
            raise RuntimeError("segc %d, reference %d, spec %d" % (got, want, SPEC_PARAMS))
        names = {w["name"]: tuple(w["shape"]) for w in inf["weights"]}
        if names != {k: tuple(v.shape) for k, v in sd.items()}:
            raise RuntimeError("weight names or shapes differ from the public state_dict")
        return "params %d = spec %d (paper 170.5M), %d public keys" % (got, SPEC_PARAMS,
                                                                       len(names))

    def count_44():
        got = int(info({"in_ch": 4, "classes": 4})["params"])
        if got != SPEC_PARAMS_44:
            raise RuntimeError("segc %d, spec %d" % (got, SPEC_PARAMS_44))
        return "params %d = spec" % got

    state = {}

    def weights_small():
        torch.manual_seed(7)
        model = ref.MambaHoME(**ref_kwargs(SMALL))
        sd = randomise(model, 7)
        inf = info(SMALL)
        got = {w["name"]: tuple(w["shape"]) for w in inf["weights"]}
        want = {k: tuple(v.shape) for k, v in sd.items()}
        if got != want:
            missing = sorted(set(want) - set(got))[:3]
            extra = sorted(set(got) - set(want))[:3]
            shape = [k for k in want if k in got and got[k] != want[k]][:3]
            raise RuntimeError("missing %s extra %s shape %s" % (missing, extra, shape))
        state["model"], state["sd"] = model, sd
        return "%d weights, %d params match the public keys" % (len(got), inf["params"])

    def fidelity(mode):
        def go():
            if "sd" not in state:
                raise RuntimeError("no reference weights (previous check failed)")
            wpath = os.path.join(work, "w.safetensors")
            xpath = os.path.join(work, "x.npy")
            if "want" not in state:
                common.write_safetensors(wpath, state["sd"])
                rng = np.random.default_rng(11)
                x = rng.standard_normal((1, SMALL["in_ch"], SMALL["D"], SMALL["H"],
                                         SMALL["W"])).astype(np.float32)
                common.write_npy(xpath, x)
                with torch.no_grad():
                    state["want"] = state["model"].double()(torch.from_numpy(x).double()).numpy()
            ypath = os.path.join(work, "y_%s.npy" % mode)
            t0 = time.time()
            if mode == "engine":
                eng = os.path.join(work, "home.so")
                tgt = os.environ.get("SEGC_TARGET")
                run([segc(), GRAPH, "-o", eng] + defines(SMALL) +
                    (["--target=" + tgt] if tgt else []))
                tc = time.time() - t0
                t0 = time.time()
                run([segc(), "run", eng, "--weights", wpath, "--input", xpath, "--output", ypath,
                     "--threads", str(args.threads)])
                extra = "compile %.1fs, run %.2fs" % (tc, time.time() - t0)
            else:
                run([segc(), "interp", GRAPH] + defines(SMALL) +
                    ["--weights", wpath, "--input", xpath, "--output", ypath])
                extra = "interp %.2fs" % (time.time() - t0)
            got = np.load(ypath)
            want = state["want"]
            if got.shape != want.shape:
                raise RuntimeError("output %s, expected %s" % (got.shape, want.shape))
            err = common.max_rel_err(got, want)
            if not err <= TOL:
                raise RuntimeError("max rel err %.2e > %.0e (%s)" % (err, TOL, extra))
            return "max rel err %.2e, %s" % (err, extra)
        return go

    check("params default (1->13)", count_default, results)
    check("params 4->4", count_44, results)
    check("weights small config", weights_small, results)
    check("fidelity engine 1x1x16x16x32", fidelity("engine"), results)
    if not args.no_interp:
        check("fidelity interp 1x1x16x16x32", fidelity("interp"), results)
    if args.keep:
        print("work directory: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    npass = sum(results)
    print("%d passed, %d failed" % (npass, len(results) - npass))
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
