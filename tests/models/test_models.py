#!/usr/bin/env python3
"""tests/models/test_models.py -- each shipped graph against its independent PyTorch oracle.

For every case: build the reference module (tests/reference/<graph>.py) with a fixed seed,
randomise every parameter (norm affine weights and biases too, so a mistake in the affine
handling shows), write the state_dict as safetensors and a random input as .npy, compile the
graph with `segc GRAPH -o ENGINE.so -D ...`, run it with `segc run`, and compare with the
reference computed in float64: max|a - b| / max|ref| <= 1e-4.  The graph's weight list
(`segc info --json`) must equal the state_dict keys and shapes.

    tests/models/test_models.py [--only NAME] [--interp] [--keep] [--threads N]

--interp also runs each case through `segc interp` (the reference interpreter).  SEGC in the
environment picks the binary (default build/segc).  One line per case, then `N passed, M failed`;
exit status 1 when any case fails.
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TOL = 1e-4

# name, graph, reference module, -D overrides, seed
CASES = [
    ("tiny", "graphs/tiny.json", "tiny", {}, 1),
    ("tiny-odd", "graphs/tiny.json", "tiny", {"C": 5, "size": 11, "in_ch": 3, "classes": 2}, 2),
    ("unet3d", "graphs/unet3d.json", "unet3d", {}, 3),
    ("unet3d-C8-s24", "graphs/unet3d.json", "unet3d", {"C": 8, "size": 24}, 4),
]


def _writer():
    """The safetensors writer of tests/reference/common.py."""
    from common import write_safetensors
    return write_safetensors


def segc_bin():
    b = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def run(cmd, timeout=900):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       universal_newlines=True)
    if p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
        raise RuntimeError("%s exited %d: %s" % (os.path.basename(cmd[0]) + " " + cmd[1],
                           p.returncode, msg[-1] if msg else "(no output)"))
    return p.stdout


def randomise(model, seed):
    """Deterministic random parameters: conv weights ~ U(+-sqrt(3/fan)), norm weights in
    [0.5, 1.5], biases ~ N(0, 0.2).  Returns an ordered dict name -> float32 numpy array."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, t in model.state_dict().items():
        if t.dim() > 1:
            fan = int(np.prod(t.shape[1:]))
            v = (torch.rand(t.shape, generator=g) * 2 - 1) * (3.0 / fan) ** 0.5
        elif name.endswith(".weight"):
            v = 0.5 + torch.rand(t.shape, generator=g)
        else:
            v = 0.2 * torch.randn(t.shape, generator=g)
        sd[name] = v.to(torch.float32).numpy()
    return sd


def conv_macs(model, x):
    """MACs of the model's convolutions on input x (forward hooks), for a note next to
    `segc info`'s macs (which may also count norms and elementwise ops)."""
    total = [0]

    def hook(mod, inp, out):
        k = int(np.prod(mod.kernel_size))
        if isinstance(mod, torch.nn.ConvTranspose3d):
            total[0] += inp[0][0].numel() * mod.out_channels // mod.groups * k
        else:
            total[0] += out.numel() * mod.in_channels // mod.groups * k

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    with torch.no_grad():
        y = model(x)
    for h in hs:
        h.remove()
    return y, total[0]


def defines(over):
    out = []
    for k, v in over.items():
        out += ["-D", "%s=%s" % (k, v)]
    return out


def check_weights(graph, over, sd):
    info = json.loads(run([segc_bin(), "info", os.path.join(ROOT, graph), "--json"] +
                          defines(over)))
    got = [(w["name"], tuple(w["shape"])) for w in info["weights"]]
    want = [(k, tuple(v.shape)) for k, v in sd.items()]
    if dict(got) != dict(want) or len(got) != len(want):
        gd, wd = dict(got), dict(want)
        missing = [k for k in wd if k not in gd]
        extra = [k for k in gd if k not in wd]
        shape = ["%s %s!=%s" % (k, gd[k], wd[k]) for k in wd if k in gd and gd[k] != wd[k]]
        raise RuntimeError("weights differ: missing %s extra %s shape %s" %
                           (missing[:4], extra[:4], shape[:4]))
    for w in info["weights"]:
        if w.get("dtype", "f32") != "f32":
            raise RuntimeError("weight %s has dtype %s" % (w["name"], w["dtype"]))
    nparams = sum(int(v.size) for v in sd.values())
    if "params" in info and int(info["params"]) != nparams:
        raise RuntimeError("info params %s, state_dict has %d" % (info["params"], nparams))
    return info, got == want


def one_case(case, work, args, write_st):
    name, graph, refmod, over, seed = case
    ref = importlib.import_module(refmod)
    params = dict(ref.DEFAULTS)
    params.update(over)
    torch.manual_seed(seed)
    model = ref.build(params)
    sd = randomise(model, seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    model = model.double().eval()

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(ref.input_shape(params)).astype(np.float32)
    want, cmacs = conv_macs(model, torch.from_numpy(x).double())
    want = want.numpy()

    wpath = os.path.join(work, name + ".safetensors")
    xpath = os.path.join(work, name + ".x.npy")
    write_st(wpath, sd)
    np.save(xpath, x)

    info, same_order = check_weights(graph, over, sd)
    notes = [] if same_order else ["weight order differs from state_dict"]
    if "macs" in info and int(info["macs"]) != cmacs:
        notes.append("info macs %s, conv macs %d" % (info["macs"], cmacs))

    results = []
    modes = ["engine"] + (["interp"] if args.interp else [])
    for mode in modes:
        ypath = os.path.join(work, "%s.%s.y.npy" % (name, mode))
        t0 = time.time()
        if mode == "engine":
            eng = os.path.join(work, name + ".so")
            run([segc_bin(), os.path.join(ROOT, graph), "-o", eng] + defines(over))
            run([segc_bin(), "run", eng, "--weights", wpath, "--input", xpath,
                 "--output", ypath, "--threads", str(args.threads)])
        else:
            run([segc_bin(), "interp", os.path.join(ROOT, graph)] + defines(over) +
                ["--weights", wpath, "--input", xpath, "--output", ypath])
        dt = time.time() - t0
        got = np.load(ypath)
        if got.shape != want.shape:
            raise RuntimeError("%s: output shape %s, expected %s" % (mode, got.shape, want.shape))
        if not np.all(np.isfinite(got)):
            raise RuntimeError("%s: output has non-finite values" % mode)
        err = float(np.max(np.abs(got.astype(np.float64) - want)) / np.max(np.abs(want)))
        results.append((mode, err, dt))
    return info, results, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="run only these case names")
    ap.add_argument("--interp", action="store_true", help="also check `segc interp`")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)

    if not os.path.exists(segc_bin()):
        print("segc binary not found: %s (run make)" % segc_bin())
        print("0 passed, 1 failed")
        return 1
    write_st = _writer()
    work = tempfile.mkdtemp(prefix="segc-models-")
    npass = nfail = 0
    for case in CASES:
        if args.only and case[0] not in args.only:
            continue
        label = "%s %s%s" % (case[0], case[1], "".join(" -D %s=%s" % kv for kv in case[3].items()))
        try:
            info, results, notes = one_case(case, work, args, write_st)
        except Exception as e:  # one line per failing case, keep going
            print("FAIL %s: %s" % (label, str(e).replace("\n", " ")))
            nfail += 1
            continue
        ok = all(err <= TOL for _, err, _ in results)
        errs = " ".join("%s_relerr=%.2e (%.1fs)" % (m, e, t) for m, e, t in results)
        extra = "" if not notes else " [" + "; ".join(notes) + "]"
        print("%s %s: %s params=%s%s" % ("PASS" if ok else "FAIL", label, errs,
                                         info.get("params", "?"), extra))
        if ok:
            npass += 1
        else:
            nfail += 1
    if args.keep or nfail:
        print("work directory: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
