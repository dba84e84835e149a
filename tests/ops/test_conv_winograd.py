#!/usr/bin/env python3
"""tests/ops/test_conv_winograd.py -- conv3d 3^3 by Winograd F(2x2x2, 3x3x3) on the CPU
(codegen/tmpl_conv_wino.c): the default engine, the direct conv (SEGC_WINOGRAD=0, set at
compile time), the Winograd form forced on (SEGC_WINOGRAD=1) and the unfused one (--no-fuse)
must all agree with PyTorch's F.conv3d within TOL (relative to max|ref|).

Each case also states whether the Winograd form must be used: `segc --emit=kernels` must
name its scratch buffer (wino_v) when forced on (SEGC_WINOGRAD=1) and by default where the
case expects it (small volumes keep the direct conv by default), and never with
SEGC_WINOGRAD=0 or where it does not apply (stride 2, k5, few channels, rows no lane width
fits), so the comparison cannot pass with the direct conv alone.
Covers 16..48 channels at 16^3 and 32^3, Ci != Co, batch 2, a non-cubic volume, odd output
sizes (masked second outputs of the last tiles; an odd tile-row count, one row per GEMM),
small volumes (forced on only), bias / no bias, a fused epilogue (bias +
ReLU + residual add) and a sigmoid gate.  Arguments: run the cases whose name holds one of
them.  Prints one line per case and ends with `N passed, M failed`; exit 1 on a failure.
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


def case(name, cin, cout, size, wino, n=1, k=3, s=1, bias=True, tail=None, rng=None):
    """wino: 1 when the Winograd form must apply when forced on (SEGC_WINOGRAD=1), 0 when it
    must not; by default it must apply where it does forced and the conv has enough work
    (positions x cin x cout >= 2^19, WN_MINWORK in tmpl_conv_wino.c; rows of 4 tiles from
    cin x cout >= 8192, WN_MINCH4)"""
    dflt = wino and n * int(np.prod(size)) * cin * cout >= 1 << 19
    dflt = dflt and ((size[2] + 1) // 2 != 4 or cin * cout >= 8192)
    x = rng.standard_normal((n, cin) + tuple(size)).astype(np.float32)
    w = (rng.standard_normal((cout, cin, k, k, k)) / np.sqrt(cin * k ** 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) * 0.1
    weights = {"conv.weight": w}
    if bias:
        weights["conv.bias"] = b
    body = [{"name": "conv", "op": "conv3d", "in": ["x"],
             "attrs": {"cout": cout, "kernel": k, "stride": s, "pad": k // 2, "bias": bias}}]
    with torch.no_grad():
        y = F.conv3d(torch.from_numpy(x), torch.from_numpy(w),
                     torch.from_numpy(b) if bias else None, s, k // 2)
        if tail == "relu_res":  # bias + ReLU + residual add, fused into the conv's output
            body += [{"name": "act", "op": "relu", "in": ["conv"]},
                     {"name": "out", "op": "add", "in": ["act", "x"]}]
            y = F.relu(y) + torch.from_numpy(x)
        elif tail == "gate":
            body += [{"name": "sg", "op": "sigmoid", "in": ["conv"]},
                     {"name": "out", "op": "mul", "in": ["sg", "conv"]}]
            y = torch.sigmoid(y) * y
    return name, x, weights, body, body[-1]["name"], y.numpy(), (wino, dflt)


def cases():
    rng = np.random.default_rng(11)
    return [
        case("c16 16^3", 16, 16, (16, 16, 16), 1, rng=rng),
        case("c32 16^3", 32, 32, (16, 16, 16), 1, rng=rng),
        case("c48 16^3 no bias", 48, 48, (16, 16, 16), 1, bias=False, rng=rng),
        case("c16 32^3", 16, 16, (32, 32, 32), 1, rng=rng),
        case("c32 32^3 relu+res", 32, 32, (32, 32, 32), 1, tail="relu_res", rng=rng),
        case("c16->48 16^3", 16, 48, (16, 16, 16), 1, rng=rng),
        case("c48->32 16^3 gate", 48, 32, (16, 16, 16), 1, tail="gate", rng=rng),
        case("c24->20 16^3 cob10", 24, 20, (8, 16, 16), 1, rng=rng),
        case("batch 2 c16", 16, 16, (8, 16, 16), 1, n=2, tail="relu_res", rng=rng),
        case("non-cubic 8x16x32", 16, 32, (8, 16, 32), 1, rng=rng),
        case("wide row 4x4x64", 16, 16, (4, 4, 64), 1, rng=rng),
        case("odd 15x15x15", 16, 16, (15, 15, 15), 1, tail="relu_res", rng=rng),
        case("odd 15x16x31", 16, 32, (15, 16, 31), 1, rng=rng),
        case("odd 7x9x16 no bias", 16, 16, (7, 9, 16), 1, bias=False, rng=rng),
        case("odd rows 14x13x16", 16, 16, (14, 13, 16), 1, tail="relu_res", rng=rng),
        # rows of 4 tiles (8^3: 4 rows of 4-lane transforms per 16-lane GEMM; 3 rows: one
        # 4-lane GEMM per row) and of 24 tiles (three blocks of 8 lanes)
        case("8^3 c96 rows of 4", 96, 96, (8, 8, 8), 1, tail="relu_res", rng=rng),
        case("8x6x8 c16 4-lane GEMM", 16, 16, (8, 6, 8), 1, rng=rng),
        case("row 48 c32 3 blocks", 32, 32, (4, 8, 48), 1, tail="gate", rng=rng),
        # small volumes: only when forced on (the default keeps the direct conv)
        case("small 4x16x16 c16", 16, 16, (4, 16, 16), 1, tail="relu_res", rng=rng),
        case("small 2x3x16 c32", 32, 16, (2, 3, 16), 1, rng=rng),
        # must not apply: strides, other kernels, few channels, rows no lane width fits
        case("not s2", 16, 16, (16, 16, 16), 0, s=2, rng=rng),
        case("not k5", 16, 16, (8, 8, 16), 0, k=5, rng=rng),
        case("not c8", 8, 16, (8, 16, 16), 0, rng=rng),
        case("not row 24", 16, 16, (8, 8, 24), 0, rng=rng),
    ]


def uses_wino(graph, env):
    """1 when `segc --emit=kernels` under env shows the Winograd form's scratch buffer"""
    out = subprocess.run([cm.segc_path(), graph, "--emit=kernels"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True,
                         env=dict(os.environ, **env), timeout=120).stdout
    if "kernel " not in out:
        raise RuntimeError("segc --emit=kernels printed no kernel: " + out[-300:])
    return int("wino_v" in out)


def main():
    npass = nfail = 0
    with tempfile.TemporaryDirectory(prefix="segc-wino-") as d:
        for name, x, weights, body, outname, ref, (wino, dflt) in cases():
            if sys.argv[1:] and not any(a in name for a in sys.argv[1:]):
                continue  # arguments: run the cases whose name holds one of them
            g = cm.graph_json("wino", [("x", x.shape)], body, [outname])
            gp, wp, xp = (os.path.join(d, f) for f in ("g.json", "w.safetensors", "x.npy"))
            with open(gp, "w") as f:
                json.dump(g, f)
            cm.write_safetensors(wp, weights)
            cm.write_npy(xp, x)
            runs = [("default", [], {}), ("winograd", [], {"SEGC_WINOGRAD": "1"}),
                    ("direct", [], {"SEGC_WINOGRAD": "0"}), ("unfused", ["--no-fuse"], {})]
            if cm.QUICK:  # the ASan pass: the Winograd build (the others are other tests')
                runs = runs[1:2]
            try:
                if uses_wino(gp, {"SEGC_WINOGRAD": "1"}) != wino:
                    raise RuntimeError("the Winograd form was %s" %
                                       ("not used" if wino else "used"))
                # (the ASan pass: the form choice is the normal pass's to check)
                if not cm.QUICK and uses_wino(gp, {}) != dflt:
                    raise RuntimeError("by default the Winograd form was %s" %
                                       ("not used" if dflt else "used"))
                if not cm.QUICK and uses_wino(gp, {"SEGC_WINOGRAD": "0"}):
                    raise RuntimeError("SEGC_WINOGRAD=0 did not turn the Winograd form off")
                errs = []
                for tag, extra, env in runs:
                    eng, yp = os.path.join(d, tag + ".so"), os.path.join(d, tag + ".npy")
                    cm.compile_graph(gp, eng, extra, env=env)
                    cm.run_engine(eng, wp, xp, yp, ["--threads", "2"])
                    errs.append(cm.max_rel_err(cm.read_npy(yp), ref))
                ok = all(e <= TOL for e in errs)
                msg = "err " + ", ".join("%s %.2e" % (r[0], e) for r, e in zip(runs, errs))
            except Exception as e:  # report and go on
                ok, msg = False, str(e)[-500:]
            print("%-4s %-22s %s" % ("ok" if ok else "FAIL", name, msg))
            npass += ok
            nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
