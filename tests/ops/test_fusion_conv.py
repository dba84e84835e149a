#!/usr/bin/env python3
"""tests/ops/test_fusion_conv.py -- conv3d templates with fused epilogues: the fused engine,
the unfused one (--no-fuse) and PyTorch must agree.

Covers every form of the conv3d micro-kernel template (codegen/tmpl_conv.c): the plane form
(unit stride in h, w), the row form (strides), the pointwise form (1^3, flattened and tiled),
groups, depthwise, dilation, odd sizes, partial lane blocks and channel counts no block size
divides, strides served by wide masked loads (2, 3) and by gathers (5), small volumes walked
whole, channel lanes (rows of 8..16); each followed by the seed models' epilogues (bias,
instance norm + leaky ReLU + residual, sigmoid gate, per-channel affine); conv_transpose3d
k2 s2 in both phase forms (convt_phase, convt_mk); and load prologues ("pro" cases: instance
norm + leaky ReLU before the conv, applied while loading x, compiled with SEGC_PROLOGUE=1 in
the micro-kernel (by a first loop into scratch; with SEGC_PRO_PERLOAD=1 per loaded x, except
SiLU), the blocked (SEGC_CONV_OLD=1) and the scalar (SEGC_CONV_SCALAR=1) form;
`segc info` must count one kernel fewer than with SEGC_PROLOGUE=0).  Arguments: run the cases
whose name holds one of them.  Prints one line per case and ends with `N passed, M failed`;
exit 1 on a failure.
"""
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import common as cm  # noqa: E402

TOL = 1e-4


def conv_case(name, cin, cout, size, k, s=1, p=None, d=1, g=1, bias=True, tail="inorm_res",
              rng=None, tr=False, pre=False):
    """tr: conv_transpose3d (pad p, no output padding) instead of conv3d; pre: the conv reads
    leaky_relu(instance_norm(x)) (pre="silu": silu(x)), a load prologue (fused with
    SEGC_PROLOGUE=1)"""
    p = d * (k // 2) if p is None else p
    x = rng.standard_normal((1, cin) + tuple(size)).astype(np.float32)
    wshape = (cin, cout // g, k, k, k) if tr else (cout, cin // g, k, k, k)
    w = (rng.standard_normal(wshape) / np.sqrt(cin // g * k ** 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) * 0.1
    gam = (1 + 0.1 * rng.standard_normal(cout)).astype(np.float32)
    bet = (0.1 * rng.standard_normal(cout)).astype(np.float32)
    weights = {"conv.weight": w}
    if bias:
        weights["conv.bias"] = b
    body, xin = [], torch.from_numpy(x)
    if pre == "silu":
        body.append({"name": "pact", "op": "silu", "in": ["x"]})
        xin = F.silu(xin)
    elif pre:
        pg = (1 + 0.2 * rng.standard_normal(cin)).astype(np.float32)
        pb = (0.2 * rng.standard_normal(cin)).astype(np.float32)
        weights["pnorm.weight"], weights["pnorm.bias"] = pg, pb
        body += [{"name": "pnorm", "op": "instance_norm", "in": ["x"], "attrs": {"affine": True}},
                 {"name": "pact", "op": "leaky_relu", "attrs": {"slope": 0.01}}]
        xin = F.leaky_relu(F.instance_norm(xin, weight=torch.from_numpy(pg),
                                           bias=torch.from_numpy(pb)), 0.01)
    body.append({"name": "conv", "op": "conv_transpose3d" if tr else "conv3d",
                 "in": ["pact" if pre else "x"],
                 "attrs": {"cout": cout, "kernel": k, "stride": s, "pad": p, "dilation": d,
                           "groups": g, "bias": bias}})
    with torch.no_grad():
        if tr:
            y = F.conv_transpose3d(xin, torch.from_numpy(w),
                                   torch.from_numpy(b) if bias else None, s, p, 0, g, d)
        else:
            y = F.conv3d(xin, torch.from_numpy(w), torch.from_numpy(b) if bias else None, s, p,
                         d, g)
        res_ok = y.shape == (1, cin) + tuple(size) and cin == cout
        if tail == "inorm_res":
            body += [{"name": "norm", "op": "instance_norm", "attrs": {"affine": True}},
                     {"name": "act", "op": "leaky_relu", "attrs": {"slope": 0.01}}]
            weights["norm.weight"], weights["norm.bias"] = gam, bet
            y = F.leaky_relu(F.instance_norm(y, weight=torch.from_numpy(gam),
                                             bias=torch.from_numpy(bet)), 0.01)
            if res_ok:
                body.append({"name": "out", "op": "add", "in": ["act", "x"]})
                y = y + torch.from_numpy(x)
        elif tail == "gate":       # sigmoid(conv) * conv, then + x (pointwise projections)
            body += [{"name": "sg", "op": "sigmoid", "in": ["conv"]},
                     {"name": "gt", "op": "mul", "in": ["sg", "conv"]},
                     {"name": "out", "op": "relu", "in": ["gt"]}]
            y = F.relu(torch.sigmoid(y) * y)
        elif tail == "bn_res":     # batch norm (per-channel broadcasts) + relu + residual
            rm = (0.1 * rng.standard_normal(cout)).astype(np.float32)
            rv = (1 + 0.2 * rng.random(cout)).astype(np.float32)
            body += [{"name": "norm", "op": "batch_norm", "attrs": {"affine": True}},
                     {"name": "act", "op": "relu"}]
            weights.update({"norm.weight": gam, "norm.bias": bet, "norm.running_mean": rm,
                            "norm.running_var": rv,
                            "norm.num_batches_tracked": np.array(0, dtype=np.int64)})
            y = F.relu(F.batch_norm(y, torch.from_numpy(rm), torch.from_numpy(rv),
                                    torch.from_numpy(gam), torch.from_numpy(bet), False, 0.0,
                                    1e-5))
            if res_ok:
                body.append({"name": "out", "op": "add", "in": ["act", "x"]})
                y = y + torch.from_numpy(x)
        elif tail == "relu":
            body.append({"name": "out", "op": "relu", "in": ["conv"]})
            y = F.relu(y)
    outname = body[-1]["name"]
    return name, x, weights, body, outname, y.numpy()


def cases():
    rng = np.random.default_rng(7)
    return [
        conv_case("plane k3 c8", 8, 8, (6, 8, 16), 3, rng=rng),
        conv_case("plane k3 c6->10 odd", 6, 10, (5, 7, 9), 3, rng=rng),
        conv_case("plane k5 c4", 4, 4, (6, 6, 12), 5, rng=rng),
        conv_case("plane k3 dil2", 4, 4, (7, 8, 8), 3, d=2, rng=rng),
        conv_case("plane tiled 40x40", 3, 4, (3, 40, 40), 3, rng=rng, tail="relu"),
        conv_case("row k3 s2", 4, 8, (8, 8, 8), 3, s=2, rng=rng),
        conv_case("row k3 s2 odd", 3, 5, (7, 9, 11), 3, s=2, rng=rng, tail="relu"),
        conv_case("row k3 pad0", 4, 4, (6, 6, 10), 3, p=0, rng=rng),
        conv_case("pw 1^3", 8, 12, (4, 8, 8), 1, rng=rng, tail="gate"),
        conv_case("pw 1^3 tiled", 6, 6, (8, 12, 16), 1, rng=rng),
        conv_case("pw 1^3 s2", 8, 4, (6, 6, 6), 1, s=2, rng=rng, tail="relu"),
        conv_case("grouped g2", 8, 8, (5, 6, 8), 3, g=2, rng=rng),
        conv_case("depthwise", 6, 6, (5, 6, 10), 3, g=6, rng=rng),
        conv_case("no bias", 5, 5, (4, 5, 6), 3, bias=False, rng=rng),
        conv_case("plane bn+relu+res", 8, 8, (5, 8, 8), 3, rng=rng, tail="bn_res"),
        conv_case("pw bn+relu+res", 8, 8, (4, 8, 24), 1, rng=rng, tail="bn_res"),
        conv_case("row s2 bn+relu", 4, 8, (8, 8, 8), 3, s=2, rng=rng, tail="bn_res"),
        conv_case("depthwise bn+res", 6, 6, (4, 6, 8), 3, g=6, rng=rng, tail="bn_res"),
        # the register-resident micro-kernel (tmpl_conv.c conv_mk): lane blocks of 8/16/32/64
        # with a masked partial last block, channel counts that no block size divides, the
        # k5 kh loop, strides 2/3 (wide masked loads) and 5 (gathers), many output blocks
        conv_case("mk plane c24->20 partial", 24, 20, (3, 9, 11), 3, rng=rng),
        conv_case("mk plane k5 kh-loop", 10, 6, (5, 10, 13), 5, rng=rng, tail="relu"),
        conv_case("mk plane k5 dil2", 3, 5, (5, 12, 12), 5, d=2, rng=rng),
        conv_case("mk row s3", 5, 7, (7, 10, 20), 3, s=3, rng=rng),
        conv_case("mk row s2 long", 4, 6, (4, 4, 80), 3, s=2, rng=rng, tail="bn_res"),
        conv_case("mk row s5 gather", 3, 4, (6, 11, 41), 3, s=5, rng=rng),
        conv_case("mk depthwise VL64", 4, 4, (3, 9, 20), 3, g=4, rng=rng, tail="bn_res"),
        conv_case("mk pw VL8", 16, 12, (1, 2, 3), 1, rng=rng, tail="gate"),
        conv_case("mk pw c40->24 tiles", 40, 24, (3, 20, 35), 1, rng=rng),
        conv_case("mk stem 4->48", 4, 48, (6, 7, 9), 3, rng=rng),
        conv_case("mk grouped g3", 12, 9, (4, 5, 7), 3, g=3, rng=rng, tail="gate"),
        # planes smaller than the kernel: taps and kh never inside the input are skipped
        conv_case("mk k5 at 2^3", 8, 8, (2, 2, 2), 5, rng=rng),
        conv_case("mk k5 at 3x1x2", 6, 4, (3, 1, 2), 5, rng=rng, tail="relu"),
        conv_case("mk k3 at 1^3", 5, 5, (1, 1, 1), 3, rng=rng, tail="relu"),
        # volumes of <= 16 positions: the lanes walk (od, oh, ow), kd validity is a lane mask
        conv_case("mk vol k3 2x2x4", 24, 16, (2, 2, 4), 3, rng=rng),
        conv_case("mk vol k3 2x3x2", 8, 12, (2, 3, 2), 3, rng=rng, tail="bn_res"),
        conv_case("mk vol k5 d2", 6, 6, (2, 2, 3), 5, d=2, rng=rng, tail="relu"),
        conv_case("mk vol depthwise", 8, 8, (2, 2, 2), 3, g=8, rng=rng, tail="bn_res"),
        conv_case("mk 4^3 per plane", 24, 16, (4, 4, 4), 3, rng=rng),
        # channel lanes (mk_block_cl: rows of 8..16, >= 16 input channels per group, 16
        # output channels per block): border taps left out per position, packed weights
        conv_case("mk cl k3 c16->32", 16, 32, (4, 5, 12), 3, rng=rng),
        conv_case("mk cl k5 c24->16", 24, 16, (3, 6, 16), 5, rng=rng, tail="relu"),
        conv_case("mk cl s2 c16->32", 16, 32, (5, 6, 20), 3, s=2, rng=rng, tail="bn_res"),
        conv_case("mk cl grouped g2", 32, 32, (3, 4, 9), 3, g=2, rng=rng, tail="gate"),
        conv_case("mk cl dil2 no bias", 16, 16, (4, 5, 8), 3, d=2, bias=False, rng=rng),
        # the strided shape (k3 s2 -> twice the channels): the sums go through the transpose
        # tile (one [R][16] tile per parallel iteration, read back transposed by the epilogue)
        conv_case("mk cl s2 tile 24->48", 24, 48, (6, 7, 32), 3, s=2, rng=rng, tail="bn_res"),
        conv_case("mk cl s2 tile R9 inorm", 16, 32, (5, 4, 17), 3, s=2, rng=rng),
        conv_case("mk cl s2 tile k5 gate", 16, 16, (4, 6, 24), 5, s=2, bias=False, rng=rng,
                  tail="gate"),
        # conv_transpose3d k2 s2: the phase form, epilogue at the strided output coordinates
        conv_case("tconv k2s2 bn+relu", 16, 8, (3, 5, 7), 2, s=2, p=0, rng=rng, tr=True,
                  tail="bn_res"),
        conv_case("tconv k2s2 g2 gate", 8, 8, (4, 3, 5), 2, s=2, p=0, g=2, bias=False,
                  rng=rng, tr=True, tail="gate"),
        conv_case("tconv k2s2 inorm", 32, 16, (4, 4, 6), 2, s=2, p=0, rng=rng, tr=True),
        # the phase GEMMs as a micro-kernel (>= 48 input channels per group): partial lane
        # blocks, groups, a 2x2x2 input (4-lane blocks), per-dim strides (S2 = 3)
        conv_case("tconv mk 64->32 odd", 64, 32, (3, 5, 7), 2, s=2, p=0, rng=rng, tr=True,
                  tail="bn_res"),
        conv_case("tconv mk g2 gate", 96, 40, (2, 6, 6), 2, s=2, p=0, g=2, rng=rng, tr=True,
                  tail="gate"),
        conv_case("tconv mk 2^3", 48, 24, (2, 2, 2), 2, s=2, p=0, rng=rng, tr=True),
        # load prologues (instance norm + leaky ReLU applied by the conv to the x it loads,
        # padding left 0) in every conv3d form: the micro-kernel's first loop into scratch
        # and per loaded x (SEGC_PRO_PERLOAD=1), the blocked (SEGC_CONV_OLD=1) and the scalar
        # form (SEGC_CONV_SCALAR=1)
        conv_case("pro plane k3", 8, 8, (5, 8, 8), 3, rng=rng, pre=True),
        conv_case("pro plane packed 32", 4, 16, (3, 5, 32), 3, rng=rng, pre=True, tail="relu"),
        conv_case("pro plane k5 kh-loop", 6, 6, (4, 10, 13), 5, rng=rng, pre=True),
        conv_case("pro vol 2x2x4", 8, 8, (2, 2, 4), 3, rng=rng, pre=True, tail="bn_res"),
        conv_case("pro pw 1^3", 8, 12, (4, 6, 8), 1, rng=rng, pre=True, tail="gate"),
        conv_case("pro row s2", 4, 8, (8, 8, 8), 3, s=2, rng=rng, pre=True),
        conv_case("pro row s2 long", 4, 6, (4, 4, 80), 3, s=2, rng=rng, pre=True),
        conv_case("pro cl k3 c16->32", 16, 32, (4, 5, 12), 3, rng=rng, pre=True),
        conv_case("pro cl s2 tile", 24, 48, (6, 7, 32), 3, s=2, rng=rng, pre=True),
        conv_case("pro depthwise", 6, 6, (5, 6, 10), 3, g=6, rng=rng, pre=True),
        conv_case("pro grouped cl g2", 32, 32, (3, 4, 9), 3, g=2, rng=rng, pre=True),
        # a SiLU prologue (exp, division): always the first loop into scratch (also with
        # SEGC_PRO_PERLOAD=1), in the cl, plane and pointwise forms
        conv_case("pro silu cl", 16, 32, (4, 5, 12), 3, rng=rng, pre="silu"),
        conv_case("pro silu plane", 6, 8, (4, 6, 8), 3, rng=rng, pre="silu", tail="relu"),
        conv_case("pro silu pw", 8, 12, (4, 6, 8), 1, rng=rng, pre="silu", tail="gate"),
    ]


def main():
    npass = nfail = 0
    with tempfile.TemporaryDirectory(prefix="segc-fusion-") as d:
        for i, (name, x, weights, body, outname, ref) in enumerate(cases()):
            pre = name.startswith("pro ")
            if sys.argv[1:] and not any(a in name for a in sys.argv[1:]):
                continue  # arguments: run the cases whose name holds one of them
            if cm.QUICK and i % 2:
                continue  # the ASan pass: every other case (the full set runs without it)
            g = cm.graph_json("fusion", [("x", x.shape)], body, [outname])
            gp, wp, xp = (os.path.join(d, f) for f in ("g.json", "w.safetensors", "x.npy"))
            import json
            with open(gp, "w") as f:
                json.dump(g, f)
            cm.write_safetensors(wp, weights)
            cm.write_npy(xp, x)
            errs = []
            try:
                runs = [("fused", [], {}), ("nofuse", ["--no-fuse"], {})]
                if pre:  # with the prologue: the micro-kernel, the blocked and scalar forms
                    if cm.kernel_count(gp, 1) != cm.kernel_count(gp, 0) - 1:
                        raise RuntimeError("the normalize + leaky ReLU did not become a "
                                           "load prologue")
                    runs = [("fused", [], {"SEGC_PROLOGUE": "1"}), runs[1],
                            ("blocked", [], {"SEGC_PROLOGUE": "1", "SEGC_CONV_OLD": "1"}),
                            ("scalar", [], {"SEGC_PROLOGUE": "1", "SEGC_CONV_SCALAR": "1"}),
                            ("perload", [], {"SEGC_PROLOGUE": "1", "SEGC_PRO_PERLOAD": "1"})]
                for tag, extra, env in runs:
                    eng, yp = os.path.join(d, tag + ".so"), os.path.join(d, tag + ".npy")
                    cm.compile_graph(gp, eng, extra, env=env)
                    cm.run_engine(eng, wp, xp, yp)
                    errs.append(cm.max_rel_err(cm.read_npy(yp), ref))
                a = cm.read_npy(os.path.join(d, "fused.npy"))
                b = cm.read_npy(os.path.join(d, "nofuse.npy"))
                errs.insert(2, cm.max_rel_err(a, b))
                ok = all(e <= TOL for e in errs)
                msg = "fused err %.2e, unfused err %.2e, fused vs unfused %.2e" % tuple(errs[:3])
                if pre:
                    msg += ", blocked / scalar / per-load err %.2e / %.2e / %.2e" % tuple(
                        errs[3:6])
            except Exception as e:  # report and go on
                ok, msg = False, str(e)[-500:]
            print("%-4s %-24s %s" % ("ok" if ok else "FAIL", name, msg))
            npass += ok
            nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
