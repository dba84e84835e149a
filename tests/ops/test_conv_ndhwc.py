#!/usr/bin/env python3
"""tests/ops/test_conv_ndhwc.py -- conv3d_ndhwc (channels-last conv3d, codegen/tmpl_conv_cl.c)
against PyTorch: y = conv3d(x.permute(0,4,1,2,3), w, b, ...).permute(0,2,3,4,1), within TOL
(relative to max|ref|), for the fused engine, the unfused one (--no-fuse) and, for the small
cases, the reference interpreter (segc interp).  The engines are built with SEGC_WINOGRAD=0,
so the 3^3 cases run the direct template too (tests/ops/test_conv_cl_winograd.py covers the
Winograd form, tests/cuda the CUDA forms).

Covers odd sizes, stride 2, dilation 2, pad 0/1/2, groups 2 (18 channels per group: a block
of 16 lanes and one of 2), depthwise (groups = Ci = Co, with a lane tail), k 1/3/5, bias
on and off, channels not a multiple of 16 (20, 36, 136), batch 2, both forms (row blocks
along ow: border blocks unrolled and an interior loop; planes of <= 64 positions in
blocks of whole rows), the weights packed by a first loop or, for small volumes with >= 8 channel
blocks, by each block's iteration (in 1..3 chunks of input channels, partial sums between
them), and a fused epilogue (ReLU, the add of a residual of the output's NDHWC
shape, the mul by a per-channel [Co] vector on the last dim).  Each case also checks that
`segc --emit=kernels` shows the template's packed weights (wpack) in a conv3d_ndhwc kernel.
Arguments: run the cases whose name holds one of them.  Prints one line per case, ends with
`N passed, M failed`; exit 1 on a failure.
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
INTERP_MAX_MACS = 3e6  # the interpreter (double loops) runs cases up to this size


def case(name, cin, cout, size, k=3, s=1, p=None, dl=1, g=1, n=1, bias=True, tail=None,
         rng=None):
    """size: (D, H, W) of the input; tail: None or "epi" (relu, + residual, * per-channel)"""
    p = k // 2 if p is None else p
    x = rng.standard_normal((n,) + tuple(size) + (cin,)).astype(np.float32)
    w = (rng.standard_normal((cout, cin // g, k, k, k)) /
         np.sqrt(cin // g * k ** 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) * 0.1
    weights = {"conv.weight": w}
    if bias:
        weights["conv.bias"] = b
    attrs = {"cout": cout, "kernel": k, "stride": s, "pad": p, "dilation": dl, "groups": g,
             "bias": bias}
    body = [{"name": "conv", "op": "conv3d_ndhwc", "in": ["x"], "attrs": attrs}]
    inputs = [("x", x)]
    with torch.no_grad():
        y = F.conv3d(torch.from_numpy(x).permute(0, 4, 1, 2, 3), torch.from_numpy(w),
                     torch.from_numpy(b) if bias else None, s, p, dl, g)
        y = y.permute(0, 2, 3, 4, 1).contiguous()
        if tail == "epi":
            res = rng.standard_normal(tuple(y.shape)).astype(np.float32)
            sc = rng.standard_normal(cout).astype(np.float32)
            body += [{"name": "act", "op": "relu", "in": ["conv"]},
                     {"name": "sum", "op": "add", "in": ["act", "res"]},
                     {"name": "out", "op": "mul", "in": ["sum", "sc"]}]
            inputs += [("res", res), ("sc", sc)]
            y = (F.relu(y) + torch.from_numpy(res)) * torch.from_numpy(sc)
    macs = y.numel() * (cin // g) * k ** 3
    return name, inputs, weights, body, body[-1]["name"], y.numpy(), macs


def cases():
    rng = np.random.default_rng(12)
    return [
        case("k3 c20->36 odd 7x9x11", 20, 36, (7, 9, 11), rng=rng),
        case("k3 s2 c16->32 9x10x11", 16, 32, (9, 10, 11), s=2, rng=rng),
        case("k3 dil2 pad2 c20 10x9x12", 20, 20, (10, 9, 12), dl=2, p=2, rng=rng),
        case("k3 dil2 pad2 rows 30 no bias", 16, 20, (3, 4, 30), dl=2, p=2, bias=False, rng=rng),
        case("k5 pad2 c16 6x8x20 rows", 16, 16, (6, 8, 20), k=5, rng=rng),
        case("k1 c36->48 5x6x33 rows", 36, 48, (5, 6, 33), k=1, rng=rng),
        case("k3 pad0 c16->20 n2 no bias", 16, 20, (6, 7, 9), p=0, n=2, bias=False, rng=rng),
        case("groups 2 c20->36", 20, 36, (5, 6, 10), g=2, rng=rng),
        case("depthwise c20 k3", 20, 20, (6, 7, 19), g=20, rng=rng),
        case("depthwise c48 k5 no bias", 48, 48, (5, 6, 8), k=5, g=48, bias=False, rng=rng),
        case("groups 8 c8->16 (2 per group)", 8, 16, (3, 4, 5), g=8, rng=rng),
        case("plane 4^3 c32->48", 32, 48, (4, 4, 4), n=2, rng=rng),
        case("plane 3x2x5 c20 pad2", 20, 16, (3, 2, 5), p=2, tail="epi", rng=rng),
        case("plane 8x8 4 blocks c20->36", 20, 36, (3, 8, 8), n=2, rng=rng),
        case("plane 5x6 3 blocks k5 c16", 16, 16, (4, 5, 6), k=5, tail="epi", rng=rng),
        case("plane local pack c24->136", 24, 136, (2, 4, 4), n=2, tail="epi", rng=rng),
        case("plane local pack dw c144", 144, 144, (3, 3, 4), g=144, rng=rng),
        case("plane local 3 chunks c160->128", 160, 128, (2, 3, 4), tail="epi", rng=rng),
        case("rows local 2 chunks c96->136", 96, 136, (2, 3, 20), tail="epi", rng=rng),
        case("rows local groups 8 c128 s2", 128, 128, (3, 5, 18), s=2, g=8, rng=rng),
        case("k1 s2 c16->32 downsample", 16, 32, (6, 8, 10), k=1, s=2, p=0, rng=rng),
        case("epilogue n2 c16->20 rows 40", 16, 20, (4, 5, 40), n=2, tail="epi", rng=rng),
        case("epilogue s2 pad1 c36 rows", 36, 36, (5, 6, 38), s=2, tail="epi", rng=rng),
    ]


DIRECT = {"SEGC_WINOGRAD": "0"}  # compile-time switch: the direct template for every case


def emit_kernels(graph, extra=()):
    p = subprocess.run([cm.segc_path(), graph, "--emit=kernels"] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120, env=dict(os.environ, **DIRECT))
    return p.returncode, p.stdout


def main():
    npass = nfail = 0
    with tempfile.TemporaryDirectory(prefix="segc-convcl-") as d:
        gp, wp = os.path.join(d, "g.json"), os.path.join(d, "w.safetensors")
        for i, (name, inputs, weights, body, outname, ref, macs) in enumerate(cases()):
            if sys.argv[1:] and not any(a in name for a in sys.argv[1:]):
                continue  # arguments: run the cases whose name holds one of them
            if cm.QUICK and i % 3:
                continue  # the ASan pass: every third case, fused only
            g = cm.graph_json("convcl", [(nm, a.shape) for nm, a in inputs], body, [outname])
            with open(gp, "w") as f:
                json.dump(g, f)
            cm.write_safetensors(wp, weights)
            xs = {}
            for nm, a in inputs:
                xs[nm] = os.path.join(d, nm + ".npy")
                cm.write_npy(xs[nm], a)
            runs = [("fused", []), ("unfused", ["--no-fuse"])]
            if cm.QUICK:
                runs = runs[:1]
            try:
                rc, out = emit_kernels(gp)
                if rc != 0 or "conv3d_ndhwc" not in out or "wpack" not in out:
                    raise RuntimeError("no conv3d_ndhwc kernel with packed weights: " +
                                       out[-300:])
                errs = []
                for tag, extra in runs:
                    eng, yp = os.path.join(d, tag + ".so"), os.path.join(d, tag + ".npy")
                    cm.compile_graph(gp, eng, extra, env=DIRECT)
                    cm.run_engine(eng, wp, xs, yp, ["--threads", "2"])
                    errs.append((tag, cm.max_rel_err(cm.read_npy(yp), ref)))
                if macs <= INTERP_MAX_MACS and not cm.QUICK:
                    yp = os.path.join(d, "interp.npy")
                    cm.run_interp(gp, wp, xs, yp)
                    errs.append(("interp", cm.max_rel_err(cm.read_npy(yp), ref)))
                ok = all(e <= TOL for _, e in errs)
                msg = "err " + ", ".join("%s %.2e" % te for te in errs)
            except Exception as e:  # report and go on
                ok, msg = False, str(e)[-500:]
            print("%-4s %-30s %s" % ("ok" if ok else "FAIL", name, msg))
            npass += ok
            nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
