#!/usr/bin/env python3
"""tests/ops/test_conv_cl_winograd.py -- conv3d_ndhwc 3^3 by Winograd F(2x2x2, 3x3x3) on the CPU
(codegen/tmpl_conv_cl_wino.c): the Winograd form forced on (SEGC_WINOGRAD=1) and the unfused
engine (--no-fuse, Winograd forced) must agree with PyTorch's F.conv3d on the permuted tensors
within TOL (relative to max|ref|); the direct channels-last conv has its own cases
(tests/ops/test_conv_ndhwc.py).

Each case also states whether the form must be used: `segc --emit=kernels` must name its
scratch buffer (clw_v) when forced on, never with SEGC_WINOGRAD=0 nor where the form does not
apply (stride 2, k5, pad 0, groups, fewer than 16 channels), and by default where the case
expects it, so the comparison cannot pass with the direct conv alone.
Covers 4^3, 5^3 (odd: the second outputs of the last tiles skipped), 8^3, 16^3, 7x9x12
(ragged), 16, 32, 48 channels, 20 -> 36 and 36 -> 20 (channel tails: overlapping last blocks,
masked output lanes), batch 2, bias on and off, a fused epilogue (ReLU + the add of a
residual of the output's NDHWC shape), the default's limits (few tiles, U too large for its
tiles: on only when forced), tile counts that are not a multiple of the block (the
last block's repeated tiles) and convs split over output channel groups (small volumes).
Arguments: run the cases whose name holds one of them.  Prints one line per case and ends
with `N passed, M failed`; exit 1 on a failure.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import common as cm  # noqa: E402

TOL = 1e-4


def case(name, cin, cout, size, wino, n=1, k=3, s=1, p=1, g=1, bias=True,
         tail=None, rng=None):
    """wino: 1 when the form must apply when forced on, 0 when it must not; by default it
    must apply where it does forced, with >= 24 tiles (CW_MINTILES in tmpl_conv_cl_wino.c)
    and U (64 cin cout floats) at most 256 KiB per tile (CW_UPERTILE) and 16 MiB (CW_MAXU)"""
    ntiles = n * int(np.prod([(e + 1) // 2 for e in size]))
    ubytes = 64 * cin * cout * 4
    dflt = wino and ntiles >= 24 and ubytes <= ntiles * (256 << 10) and ubytes <= 16 << 20
    x = rng.standard_normal((n,) + tuple(size) + (cin,)).astype(np.float32)
    w = (rng.standard_normal((cout, cin // g, k, k, k)) /
         np.sqrt(cin // g * k ** 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) * 0.1
    weights = {"conv.weight": w}
    if bias:
        weights["conv.bias"] = b
    attrs = {"cout": cout, "kernel": k, "stride": s, "pad": p, "groups": g, "bias": bias}
    body = [{"name": "conv", "op": "conv3d_ndhwc", "in": ["x"], "attrs": attrs}]
    inputs = [("x", x)]
    with torch.no_grad():
        y = F.conv3d(torch.from_numpy(x).permute(0, 4, 1, 2, 3), torch.from_numpy(w),
                     torch.from_numpy(b) if bias else None, s, p, 1, g)
        y = y.permute(0, 2, 3, 4, 1).contiguous()
        if tail == "relu_res":  # ReLU + residual add, fused into the conv's output
            res = rng.standard_normal(tuple(y.shape)).astype(np.float32)
            body += [{"name": "act", "op": "relu", "in": ["conv"]},
                     {"name": "out", "op": "add", "in": ["act", "res"]}]
            inputs.append(("res", res))
            y = F.relu(y) + torch.from_numpy(res)
    return name, inputs, weights, body, body[-1]["name"], y.numpy(), (wino, dflt)


def cases():
    rng = np.random.default_rng(13)
    return [
        case("4^3 c16", 16, 16, (4, 4, 4), 1, rng=rng),
        case("4^3 c32 n2 relu+res", 32, 32, (4, 4, 4), 1, n=2, tail="relu_res", rng=rng),
        case("5^3 odd c16->32", 16, 32, (5, 5, 5), 1, rng=rng),
        case("5^3 odd c48 no bias", 48, 48, (5, 5, 5), 1, bias=False, rng=rng),
        case("8^3 c32", 32, 32, (8, 8, 8), 1, rng=rng),
        case("8^3 c48 n2 relu+res", 48, 48, (8, 8, 8), 1, n=2, tail="relu_res", rng=rng),
        case("16^3 c16", 16, 16, (16, 16, 16), 1, rng=rng),
        case("16^3 c32 relu+res", 32, 32, (16, 16, 16), 1, tail="relu_res", rng=rng),
        case("16^3 c48->16 no bias", 48, 16, (16, 16, 16), 1, bias=False, rng=rng),
        case("7x9x12 ragged c16", 16, 16, (7, 9, 12), 1, rng=rng),
        case("7x9x12 c20->36 tails", 20, 36, (7, 9, 12), 1, tail="relu_res", rng=rng),
        case("7x9x12 c36->20 n2 tails", 36, 20, (7, 9, 12), 1, n=2, rng=rng),
        case("5x6x7 c20->36 no bias", 20, 36, (5, 6, 7), 1, bias=False, rng=rng),
        case("3x2x9 c64->152 groups", 64, 152, (3, 2, 9), 1, tail="relu_res", rng=rng),
        case("6^3 c256 U too large", 256, 256, (6, 6, 6), 1, rng=rng),
        # must not apply: stride, kernel, padding, groups, few channels
        case("not s2", 16, 16, (8, 8, 8), 0, s=2, rng=rng),
        case("not k5", 16, 16, (6, 6, 6), 0, k=5, p=2, rng=rng),
        case("not pad 0", 16, 16, (6, 6, 6), 0, p=0, rng=rng),
        case("not groups 2", 32, 32, (6, 6, 6), 0, g=2, rng=rng),
        case("not c8", 8, 16, (8, 8, 8), 0, rng=rng),
    ]


def uses_wino(graph, env):
    """1 when `segc --emit=kernels` under env shows the form's scratch buffer"""
    out = subprocess.run([cm.segc_path(), graph, "--emit=kernels"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True,
                         env=dict(os.environ, **env), timeout=120).stdout
    if "kernel " not in out or "conv3d_ndhwc" not in out:
        raise RuntimeError("segc --emit=kernels printed no conv3d_ndhwc kernel: " + out[-300:])
    return int("clw_v" in out)


def main():
    npass = nfail = 0
    with tempfile.TemporaryDirectory(prefix="segc-clwino-") as d:
        gp, wp = os.path.join(d, "g.json"), os.path.join(d, "w.safetensors")
        for i, (name, inputs, weights, body, outname, ref, (wino, dflt)) in enumerate(cases()):
            if sys.argv[1:] and not any(a in name for a in sys.argv[1:]):
                continue  # arguments: run the cases whose name holds one of them
            if cm.QUICK and i % 3:
                continue  # the ASan pass: every third case
            g = cm.graph_json("clwino", [(nm, a.shape) for nm, a in inputs], body, [outname])
            with open(gp, "w") as f:
                json.dump(g, f)
            cm.write_safetensors(wp, weights)
            xs = {}
            for nm, a in inputs:
                xs[nm] = os.path.join(d, nm + ".npy")
                cm.write_npy(xs[nm], a)
            # (the direct form's own cases are tests/ops/test_conv_ndhwc.py)
            runs = [("winograd", [], {"SEGC_WINOGRAD": "1"}),
                    ("unfused", ["--no-fuse"], {"SEGC_WINOGRAD": "1"})]
            if cm.QUICK:  # the ASan pass: the Winograd build only
                runs = runs[:1]
            try:
                if uses_wino(gp, {"SEGC_WINOGRAD": "1"}) != wino:
                    raise RuntimeError("the Winograd form was %s" %
                                       ("not used" if wino else "used"))
                if not cm.QUICK and uses_wino(gp, {"SEGC_WINOGRAD": ""}) != dflt:
                    raise RuntimeError("by default the Winograd form was %s" %
                                       ("not used" if dflt else "used"))
                if not cm.QUICK and uses_wino(gp, {"SEGC_WINOGRAD": "0"}):
                    raise RuntimeError("SEGC_WINOGRAD=0 did not turn the Winograd form off")
                errs = []
                for tag, extra, env in runs:
                    eng, yp = os.path.join(d, tag + ".so"), os.path.join(d, tag + ".npy")
                    cm.compile_graph(gp, eng, extra, env=env)
                    cm.run_engine(eng, wp, xs, yp, ["--threads", "2"])
                    errs.append(cm.max_rel_err(cm.read_npy(yp), ref))
                ok = all(e <= TOL for e in errs)
                msg = "err " + ", ".join("%s %.2e" % (r[0], e) for r, e in zip(runs, errs))
            except Exception as e:  # report and go on
                ok, msg = False, str(e)[-500:]
            print("%-4s %-26s %s" % ("ok" if ok else "FAIL", name, msg))
            npass += ok
            nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
