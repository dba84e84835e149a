#!/usr/bin/env python3
"""tests/ops/test_linear_forms.py -- the forms of linear (codegen/tmpl_matmul.c) with fused
epilogues: the fused engine, the unfused one (--no-fuse) and PyTorch must agree.

Covers the CPU's register-blocked GEMM form (lin_gemm: >= 16 rows; lanes of 4..64 output
features, packed weights, blocks of R rows and a tail block with fewer rows) and the
dot-product form (fewer rows, 1..3 outputs of rows >= 48 long, or SEGC_LINEAR_DOT=1: a third
engine for every case): the seed models' shape classes (segmamba's in_proj/x_proj/dt_proj/
out_proj, mamba_home's wider ones), odd O and I (1, 3, 17, 35), rows no block divides, bias and
no bias, batch dims (rank 2, 3, 4), epilogues (bias + SiLU, + residual, a gate, a softmax
after).  With an epilogue the GEMM form stores the raw sums in the group's output and runs the
epilogue over them; where that output may overlap an operand (in-place planning, which
passes/memplan.c does not do for linear groups today) they go through scratch: that path is
compiled as a fourth engine with SEGC_LINEAR_SCRATCH=1 for every case with an epilogue.
Arguments: run the cases whose name holds one of them.  Prints one line per case and ends
with `N passed, M failed`; exit 1 on a failure.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import common as cm  # noqa: E402

TOL = 1e-4  # max |err| / max |ref|, f32 sums of up to 768 products


def lin_case(name, xshape, o, bias=True, tail=None, rng=None):
    """tail: None, "silu", "res" (+ an input r of y's shape), "gate" (sigmoid(y) * y, then a
    per-feature scale), "softmax" (y + relu(r), then a softmax kernel)"""
    i = xshape[-1]
    x = rng.standard_normal(xshape).astype(np.float32)
    w = (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)
    b = (0.5 * rng.standard_normal(o)).astype(np.float32)
    yshape = tuple(xshape[:-1]) + (o,)
    weights = {"fc.weight": w}
    if bias:
        weights["fc.bias"] = b
    inputs = {"x": x}
    body = [{"name": "fc", "op": "linear", "in": ["x"], "attrs": {"out": o, "bias": bias}}]
    with torch.no_grad():
        y = F.linear(torch.from_numpy(x), torch.from_numpy(w),
                     torch.from_numpy(b) if bias else None)
        if tail == "silu":
            body.append({"name": "out", "op": "silu", "in": ["fc"]})
            y = F.silu(y)
        elif tail == "res":
            inputs["r"] = rng.standard_normal(yshape).astype(np.float32)
            body.append({"name": "out", "op": "add", "in": ["fc", "r"]})
            y = y + torch.from_numpy(inputs["r"])
        elif tail == "gate":
            s = (1 + 0.1 * rng.standard_normal(o)).astype(np.float32)
            inputs["s"] = s
            body += [{"name": "sg", "op": "sigmoid", "in": ["fc"]},
                     {"name": "gt", "op": "mul", "in": ["sg", "fc"]},
                     {"name": "out", "op": "mul", "in": ["gt", "s"]}]
            y = torch.sigmoid(y) * y * torch.from_numpy(s)
        elif tail == "softmax":
            inputs["r"] = rng.standard_normal(yshape).astype(np.float32)
            body += [{"name": "h", "op": "relu", "in": ["r"]},
                     {"name": "out", "op": "add", "in": ["fc", "h"]},
                     {"name": "out2", "op": "softmax", "in": ["out"], "attrs": {"axis": -1}}]
            y = F.softmax(y + F.relu(torch.from_numpy(inputs["r"])), dim=-1)
    return name, inputs, weights, body, body[-1]["name"], y.numpy()


def mm_case(name, ashape, bshape, tail=None, rng=None):
    """batched matmul a @ b (numpy broadcasting of the batch dims); tail as lin_case's"""
    a = rng.standard_normal(ashape).astype(np.float32)
    b = (rng.standard_normal(bshape) / np.sqrt(ashape[-1])).astype(np.float32)
    inputs = {"a": a, "b": b}
    body = [{"name": "mm", "op": "matmul", "in": ["a", "b"]}]
    with torch.no_grad():
        y = torch.matmul(torch.from_numpy(a), torch.from_numpy(b))
        if tail == "silu":
            body.append({"name": "out", "op": "silu", "in": ["mm"]})
            y = F.silu(y)
        elif tail == "res":
            inputs["r"] = rng.standard_normal(tuple(y.shape)).astype(np.float32)
            body.append({"name": "out", "op": "add", "in": ["mm", "r"]})
            y = y + torch.from_numpy(inputs["r"])
    return name, inputs, {}, body, body[-1]["name"], y.numpy()


def cases():
    rng = np.random.default_rng(11)
    return [
        # segmamba at 1x4x32^3 (rows 4096 cut to 512: the same blocks, less time)
        lin_case("in_proj 512x48->192", (1, 512, 48), 192, bias=False, rng=rng),
        lin_case("x_proj 512x96->35", (1, 512, 96), 35, bias=False, rng=rng),
        lin_case("dt_proj 512x3->96 silu", (1, 512, 3), 96, rng=rng, tail="silu"),
        lin_case("out_proj 512x96->48 res", (1, 512, 96), 48, bias=False, rng=rng, tail="res"),
        # mamba_home / segmamba_v2 widths (lanes of 64 and 32, few row blocks)
        lin_case("home 64x192->768", (1, 64, 192), 768, rng=rng),
        lin_case("home 64x384->192 gate", (1, 64, 384), 192, rng=rng, tail="gate"),
        lin_case("home 512x6->192", (1, 512, 6), 192, rng=rng, tail="silu"),
        lin_case("home 512x192->38", (1, 512, 192), 38, rng=rng),
        lin_case("home 2x4x64->48 rank4", (2, 4, 4, 64), 48, rng=rng, tail="res"),
        # odd O and I, rows no block divides (the tail block)
        lin_case("O1 I17 rows37", (37, 17), 1, rng=rng),
        lin_case("O3 I35 rows19", (19, 35), 3, rng=rng, tail="silu"),
        lin_case("O17 I3 rows45", (45, 3), 17, bias=False, rng=rng),
        lin_case("O35 I17 rows50", (5, 10, 17), 35, rng=rng, tail="res"),
        lin_case("O5 I1 rows16", (2, 8, 1), 5, rng=rng),
        lin_case("O100 I9 rows23 gate", (23, 9), 100, bias=False, rng=rng, tail="gate"),
        lin_case("O64 I64 rows4 ax3", (1, 2, 2, 64), 64, rng=rng, tail="silu"),
        lin_case("O16 rows15 dot form", (3, 5, 20), 16, rng=rng, tail="res"),
        # batch dims: rank 3 and rank 4 x, an epilogue operand broadcast over them
        lin_case("rank3 3x7x24->40", (3, 7, 24), 40, rng=rng, tail="gate"),
        lin_case("rank4 2x3x5x12->24", (2, 3, 5, 12), 24, rng=rng, tail="silu"),
        # an epilogue operand from another kernel, a reduction after
        lin_case("softmax 40x24->24", (1, 40, 24), 24, rng=rng, tail="softmax"),
        lin_case("softmax 33x48->35", (33, 48), 35, bias=False, rng=rng, tail="softmax"),
        # 1..3 outputs of long rows: the dot-product form by choice
        lin_case("O1 I64 rows40 dot", (40, 64), 1, rng=rng, tail="silu"),
        lin_case("O3 I96 rows64 dot", (2, 32, 96), 3, bias=False, rng=rng),
        # batched matmul (mm_gemm: lanes over B's contiguous rows when 4..64 lanes divide N;
        # the row form otherwise): M no block divides, broadcast batch dims, epilogues
        mm_case("mm 2x40x24 @ 2x24x96 res", (2, 40, 24), (2, 24, 96), tail="res", rng=rng),
        mm_case("mm 432x8 @ 8x432", (432, 8), (8, 432), rng=rng),
        mm_case("mm 3x1x21x8 @ 2x8x16 bcast", (3, 1, 21, 8), (2, 8, 16), tail="silu", rng=rng),
        mm_case("mm 2x30x16 @ 16x4", (2, 30, 16), (16, 4), rng=rng),
        mm_case("mm 1x3x17x12 @ 2x3x12x32", (1, 3, 17, 12), (2, 3, 12, 32), tail="res",
                rng=rng),
        mm_case("mm 5x64x192 @ 192x8 silu", (5, 64, 192), (192, 8), tail="silu", rng=rng),
        mm_case("mm 9x54x8 @ 9x8x54 row form", (9, 54, 8), (9, 8, 54), tail="silu", rng=rng),
        mm_case("mm 7x3 @ 3x64", (7, 3), (3, 64), rng=rng),
    ]


def main():
    npass = nfail = 0
    with tempfile.TemporaryDirectory(prefix="segc-linear-") as d:
        for i, (name, inputs, weights, body, outname, ref) in enumerate(cases()):
            if cm.QUICK and i % 3:
                continue  # the ASan pass: every third case
            if sys.argv[1:] and not any(a in name for a in sys.argv[1:]):
                continue  # arguments: run the cases whose name holds one of them
            g = cm.graph_json("linear", [(k, v.shape) for k, v in inputs.items()], body,
                              [outname])
            gp, wp = os.path.join(d, "g.json"), os.path.join(d, "w.safetensors")
            with open(gp, "w") as f:
                json.dump(g, f)
            cm.write_safetensors(wp, weights)
            ins = {}
            for k, v in inputs.items():
                ins[k] = os.path.join(d, k + ".npy")
                cm.write_npy(ins[k], v)
            errs = []
            try:
                runs = [("fused", [], {}), ("nofuse", ["--no-fuse"], {}),
                        ("dot", [], {"SEGC_LINEAR_DOT": "1", "SEGC_MATMUL_ROW": "1"})]
                if len(body) > 1:
                    runs.append(("scratch", [], {"SEGC_LINEAR_SCRATCH": "1"}))
                for tag, extra, env in runs:
                    eng, yp = os.path.join(d, tag + ".so"), os.path.join(d, tag + ".npy")
                    cm.compile_graph(gp, eng, extra, env=env)
                    cm.run_engine(eng, wp, ins, yp)
                    errs.append(cm.max_rel_err(cm.read_npy(yp), ref))
                a = cm.read_npy(os.path.join(d, "fused.npy"))
                b = cm.read_npy(os.path.join(d, "nofuse.npy"))
                errs.insert(3, cm.max_rel_err(a, b))
                ok = all(e <= TOL for e in errs)
                msg = "fused %.2e, unfused %.2e, dot form %.2e, fused vs unfused %.2e" % tuple(
                    errs[:4])
                if len(errs) > 4:
                    msg += ", scratch %.2e" % errs[4]
            except Exception as e:  # report and go on
                ok, msg = False, str(e)[-500:]
            print("%-4s %-26s %s" % ("ok" if ok else "FAIL", name, msg))
            npass += ok
            nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
