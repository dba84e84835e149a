#!/usr/bin/env python3
"""tests/ops/test_fusion_prologue.py -- load prologues: a normalize + activation chain fused
into the conv3d that reads it (passes/fuse.c, docs/codegen.md "load prologue").

Each case is a graph  x -> [norm] -> activation -> conv3d -> [tail]  (x an input, or a conv
result), compiled fused with load prologues (SEGC_PROLOGUE=1 whatever tools/segc.c's defaults
are, unless the environment sets SEGC_PROLOGUE) and with --no-fuse, and compared with PyTorch
and with each other at 1e-4 (max error over max|ref|).  The compiler must also really make the
prologue: `segc info` with SEGC_PROLOGUE=1 reports `drop` fewer kernels than with
SEGC_PROLOGUE=0 (0 for the chain with two uses, which must not fuse).

Covers instance norm (affine or not) + leaky ReLU / ReLU / a sigmoid gate / clamp + GELU (ops
the affine fold of lw_prologue_hoist does not take; a chain reading its source twice), batch
norm (inference) + ReLU, group norm (per-channel statistics after canon) + ReLU, padding 1 and
2, stride 2, dilation, groups, depthwise, 1^3 and 5^3 kernels, odd sizes, batch 2, a conv ->
norm -> conv pair, and the CUDA SIMT conv's split reduction, largest tiles and the generic
conv it leaves huge dilations to.

Arguments: run the cases whose name holds one of them (_ stands for a space).  Prints one line
per case, the time and `N passed, M failed`; exit 1 on a failure.  Under tests/cuda/segc_cuda.py
(SEGC) the engines are the CUDA ones, emulated; SEGC_PRECISION=tf32/bf16 loosens the tolerance
to 2e-3 / 2e-2.
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import common as cm  # noqa: E402

TOL = {"tf32": 2e-3, "bf16": 2e-2}.get(os.environ.get("SEGC_PRECISION", ""), 1e-4)


def t(a):
    return torch.from_numpy(a)


def case(name, cin, cout, size, k=3, s=1, p=None, d=1, g=1, n=1, norm="inorm", act="leaky",
         affine=True, stem=False, twouse=False, fill=None, rng=None):
    """norm: inorm | bn | gn | none; act: leaky | relu | gate (x sigmoid(x)) | clamp_gelu;
    stem: x -> conv1 -> chain -> conv;
    twouse: the activation also feeds the output (the chain must not fuse); fill: the CUDA
    SIMT conv's SEGC_GPU_FILL (1: its largest register tiles, partial at the edges)"""
    p = d * (k // 2) if p is None else p
    x = rng.standard_normal((n, cin) + tuple(size)).astype(np.float32) * 2 + 0.5
    w = (rng.standard_normal((cout, cin // g, k, k, k)) / np.sqrt(cin // g * k ** 3))
    w = w.astype(np.float32)
    b = (0.1 * rng.standard_normal(cout)).astype(np.float32)
    gam = (1 + 0.2 * rng.standard_normal(cin)).astype(np.float32)
    bet = (0.2 * rng.standard_normal(cin)).astype(np.float32)
    weights, body = {"conv.weight": w, "conv.bias": b}, []
    h = t(x)
    src = "x"
    if stem:
        w0 = (rng.standard_normal((cin, cin, 3, 3, 3)) / np.sqrt(cin * 27)).astype(np.float32)
        weights["stem.weight"] = w0
        body.append({"name": "stem", "op": "conv3d", "in": ["x"],
                     "attrs": {"cout": cin, "kernel": 3, "pad": 1, "bias": False}})
        h = F.conv3d(h, t(w0), None, 1, 1)
        src = "stem"
    if norm == "inorm":
        body.append({"name": "norm", "op": "instance_norm", "in": [src],
                     "attrs": {"affine": affine}})
        if affine:
            weights["norm.weight"], weights["norm.bias"] = gam, bet
        h = F.instance_norm(h, weight=t(gam) if affine else None, bias=t(bet) if affine
                            else None)
    elif norm == "bn":
        rm = (0.3 * rng.standard_normal(cin)).astype(np.float32)
        rv = (1 + 0.5 * rng.random(cin)).astype(np.float32)
        body.append({"name": "norm", "op": "batch_norm", "in": [src], "attrs": {"affine": True}})
        weights.update({"norm.weight": gam, "norm.bias": bet, "norm.running_mean": rm,
                        "norm.running_var": rv,
                        "norm.num_batches_tracked": np.array(0, dtype=np.int64)})
        h = F.batch_norm(h, t(rm), t(rv), t(gam), t(bet), False, 0.0, 1e-5)
    elif norm == "gn":
        body.append({"name": "norm", "op": "group_norm", "in": [src], "attrs": {"groups": 2}})
        weights["norm.weight"], weights["norm.bias"] = gam, bet
        h = F.group_norm(h, 2, t(gam), t(bet))
    if act == "gate":  # x * sigmoid(x): the chain reads its source twice
        last = body[-1]["name"] if body else src
        body += [{"name": "sg", "op": "sigmoid", "in": [last]},
                 {"name": "act", "op": "mul", "in": [last, "sg"]}]
        h = h * torch.sigmoid(h)
    elif act == "clamp_gelu":  # ops the affine fold does not take
        body += [{"name": "cl", "op": "clamp", "attrs": {"min": -0.5, "max": 1.5}},
                 {"name": "act", "op": "gelu"}]
        h = F.gelu(torch.clamp(h, -0.5, 1.5))
    elif act == "leaky":
        body.append({"name": "act", "op": "leaky_relu", "attrs": {"slope": 0.01}})
        h = F.leaky_relu(h, 0.01)
    else:
        body.append({"name": "act", "op": "relu"})
        h = F.relu(h)
    body.append({"name": "conv", "op": "conv3d", "in": ["act"],
                 "attrs": {"cout": cout, "kernel": k, "stride": s, "pad": p, "dilation": d,
                           "groups": g, "bias": True}})
    y = F.conv3d(h, t(w), t(b), s, p, d, g)
    out = "conv"
    if twouse:  # act is read by the conv and by the output: it stays materialised
        body.append({"name": "out", "op": "add", "in": ["conv", "act"]})
        y = y + h
        out = "out"
    drop = 0 if twouse else 1
    return name, x, weights, body, out, y.numpy(), drop, fill


def cases():
    rng = np.random.default_rng(11)
    return [
        case("inorm affine leaky k3 p1", 4, 8, (6, 7, 8), rng=rng),
        case("inorm relu k3 p1 no affine", 3, 5, (5, 6, 7), act="relu", affine=False, rng=rng),
        case("inorm leaky k3 p2", 4, 4, (5, 6, 6), p=2, rng=rng),
        case("inorm leaky k3 s2", 4, 8, (8, 8, 8), s=2, rng=rng),
        case("inorm leaky k3 s2 odd", 3, 6, (7, 9, 5), s=2, rng=rng),
        case("inorm leaky k3 dil2", 4, 4, (7, 8, 8), d=2, rng=rng),
        case("inorm leaky k1 p0", 8, 6, (4, 5, 6), k=1, rng=rng),
        case("inorm leaky k5 p2", 3, 4, (6, 6, 7), k=5, rng=rng),
        case("inorm leaky depthwise", 6, 6, (5, 6, 7), g=6, rng=rng),
        case("inorm leaky grouped g2", 8, 8, (4, 5, 6), g=2, rng=rng),
        case("inorm leaky batch 2", 4, 6, (5, 5, 6), n=2, rng=rng),
        case("inorm leaky odd 3x5x7", 5, 7, (3, 5, 7), rng=rng),
        case("bn relu 1^3 input", 4, 4, (1, 1, 1), norm="bn", act="relu", rng=rng),
        case("conv inorm leaky conv", 8, 8, (6, 6, 6), stem=True, rng=rng),
        case("conv inorm leaky conv b2 s2", 6, 12, (6, 7, 8), s=2, n=2, stem=True, rng=rng),
        case("bn relu k3", 4, 8, (5, 6, 7), norm="bn", act="relu", rng=rng),
        case("bn relu depthwise b2", 4, 4, (4, 5, 6), norm="bn", act="relu", g=4, n=2, rng=rng),
        case("gn relu k3", 4, 6, (4, 5, 6), norm="gn", act="relu", n=2, rng=rng),
        case("relu only k3", 4, 4, (4, 5, 6), norm="none", act="relu", rng=rng),
        case("silu gate k3 s2", 4, 6, (5, 6, 7), s=2, norm="none", act="gate", rng=rng),
        case("inorm silu gate k3", 4, 4, (4, 5, 6), act="gate", rng=rng),
        case("inorm clamp gelu k3 p2", 3, 5, (4, 5, 6), p=2, act="clamp_gelu", rng=rng),
        case("two uses: not fused", 4, 4, (4, 5, 6), twouse=True, rng=rng),
        # the CUDA SIMT conv's split reduction (>= 16 input channels, few threads) and its
        # largest tiles (8 channels x 8 rows, partial channel blocks and row tiles)
        case("inorm leaky c16 split", 16, 8, (3, 6, 8), rng=rng),
        case("inorm leaky fill1 c4->11", 4, 11, (3, 11, 9), fill="1", rng=rng),
        case("bn relu fill1 s2 dil2", 5, 10, (5, 13, 11), s=2, d=2, norm="bn", act="relu",
             fill="1", rng=rng),
        # input rows per thread > 64: the CUDA SIMT form declines, the generic conv lowers it
        case("inorm leaky dil33 generic", 2, 2, (2, 68, 4), d=33, rng=rng),
    ]


def main():
    npass = nfail = 0
    t0 = time.time()
    pro = os.environ.setdefault("SEGC_PROLOGUE", "1")  # the fused engines (--no-fuse: none)
    with tempfile.TemporaryDirectory(prefix="segc-prologue-") as d:
        for name, x, weights, body, outname, ref, drop, fill in cases():
            if sys.argv[1:] and not any(a.replace("_", " ") in name for a in sys.argv[1:]):
                continue
            g = cm.graph_json("prologue", [("x", x.shape)], body, [outname])
            gp, wp, xp = (os.path.join(d, f) for f in ("g.json", "w.safetensors", "x.npy"))
            with open(gp, "w") as f:
                json.dump(g, f)
            cm.write_safetensors(wp, weights)
            cm.write_npy(xp, x)
            try:
                k1, k0 = cm.kernel_count(gp, 1), cm.kernel_count(gp, 0)
                errs = []
                for tag, extra in (("fused", []), ("nofuse", ["--no-fuse"])):
                    eng, yp = os.path.join(d, tag + ".so"), os.path.join(d, tag + ".npy")
                    old = os.environ.pop("SEGC_GPU_FILL", None)
                    if fill:
                        os.environ["SEGC_GPU_FILL"] = fill
                    try:
                        cm.compile_graph(gp, eng, extra)
                    finally:
                        os.environ.pop("SEGC_GPU_FILL", None)
                        if old is not None:
                            os.environ["SEGC_GPU_FILL"] = old
                    cm.run_engine(eng, wp, xp, yp)
                    errs.append(cm.max_rel_err(cm.read_npy(yp), ref))
                errs.append(cm.max_rel_err(cm.read_npy(os.path.join(d, "fused.npy")),
                                           cm.read_npy(os.path.join(d, "nofuse.npy"))))
                ok = all(e <= TOL for e in errs) and k0 - k1 == drop
                msg = "kernels %d -> %d (prologue %s), fused err %.2e, unfused err %.2e, " \
                      "fused vs unfused %.2e" % ((k0, k1, pro) + tuple(errs))
                if k0 - k1 != drop:
                    msg += "; expected %d kernel(s) fewer with prologues" % drop
            except Exception as e:  # report and go on
                ok, msg = False, str(e)[-500:]
            print("%-4s %-30s %s" % ("ok" if ok else "FAIL", name, msg))
            npass += ok
            nfail += not ok
    print("%.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
