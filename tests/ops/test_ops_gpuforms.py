#!/usr/bin/env python3
"""tests/ops/test_ops_gpuforms.py -- the edges of the GPU forms of codegen/tmpl_gpu_conv.c.

conv3d, conv_transpose3d, linear and matmul cases chosen for the register tiles of the GPU
forms (docs/cuda.md, "GPU forms: convolution"): output channels not divisible by the channel
tile (partial blocks), output rows not divisible by the row tile, depthwise and grouped,
stride 2, dilation 2, 1^3, 5^3 and 7^3 kernels, tiny spatial sizes (1x1x1), batch 2, rows and
columns of a GEMM not divisible by its tile, batch broadcasting, and fused epilogues after
each form; conv3d followed by an instance or group norm, whose statistics the conv computes
from its threads' outputs where whole warps share one (n, od, channel block, oh tile) (the
source must have the warp-merged means, "_smu =", exactly there) and else runs as the
moments' own loops.  Every case is compiled with SEGC_GPU_FILL=1 (the forms keep their largest tiles
on these small shapes) and the cases marked "fill" once more with the default (tiles shrunk,
or conv3d's input channels split in chunks, to fill the GPU).  On the CPU (the normal suite)
they are ordinary op cases; through tests/cuda/segc_cuda.py they run the GPU forms in the
CUDA C emulation:

    SEGC_REAL=build/segc SEGC=tests/cuda/segc_cuda.py tests/ops/test_ops_gpuforms.py --engine-only

Each case is compiled and run (`segc run`) and run through `segc interp`; both must match
PyTorch within max rel err 1e-4.  Options as tests/ops/test_ops.py.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_ops as base  # noqa: E402  (Case, one, run_case, the driver)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def conv_cases(rng):
    out = []
    # cin, cout, kernel, stride, pad, dilation, groups, bias, N, spatial, tail
    specs = [
        (3, 11, 3, 1, 1, 1, 1, True, 1, (4, 11, 9), None),       # 8 + 3 channels, 8 + 3 rows
        (6, 9, 3, 2, 1, 1, 3, True, 1, (5, 9, 10), None),        # groups, stride 2
        (6, 6, 3, 1, 1, 1, 6, True, 1, (3, 10, 6), "relu"),      # depthwise
        (4, 16, 3, 1, 2, 2, 1, False, 1, (5, 9, 7), None),       # dilation 2, two blocks
        (4, 6, 5, 1, 2, 1, 1, True, 1, (5, 6, 7), None),         # 5^3
        (8, 12, 1, 1, 0, 1, 1, True, 1, (3, 5, 17), "gate"),     # 1^3
        (8, 20, 1, 2, 0, 1, 1, False, 1, (5, 6, 7), None),       # 1^3 stride 2
        (5, 7, 3, 1, 1, 1, 1, True, 1, (1, 1, 1), None),         # one voxel
        (5, 7, 3, 1, 1, 1, 1, True, 1, (2, 1, 3), "relu"),
        (4, 5, (1, 3, 2), (1, 2, 1), (0, 1, 1), (1, 2, 1), 1, True, 1, (3, 12, 5), None),
        (4, 18, 3, (2, 1, 2), 1, 1, 2, False, 2, (5, 10, 6), "res"),   # cog 9: 8 + 1
        (4, 4, 7, 1, 3, 1, 4, True, 1, (3, 9, 8), None),         # 7^3 depthwise
        (3, 8, 3, 2, 1, 1, 1, True, 1, (4, 19, 6), None),        # 17 input rows per thread
        (3, 5, 3, 1, 2, 1, 1, True, 1, (3, 4, 5), None),         # pad 2: output > input
        (16, 32, 3, 1, 1, 1, 1, True, 1, (6, 12, 5), "fill"),
        # default fill: the ci reduction split in chunks (37 = 4 x 10 - 3), then summed
        (37, 12, 3, 1, 1, 1, 1, True, 1, (3, 4, 5), "relu,fill"),
        (32, 10, 3, 2, 1, 1, 2, False, 2, (3, 5, 4), "res,fill"),
        (24, 9, 1, 1, 0, 1, 1, True, 1, (2, 3, 3), "fill"),
        # a norm after the conv: its statistics from the threads (32 partials per channel of
        # 8 rows x 32 ow; group norm: 2 channels a group, batch 2; an epilogue before the
        # norm), or (ow not a multiple of 32; a partial channel block) the moments' loops
        (4, 8, 3, 1, 1, 1, 1, True, 1, (32, 8, 32), "in,fill"),
        (6, 8, 3, 1, 1, 1, 1, False, 2, (16, 16, 32), "gn4"),
        (4, 16, 3, 1, 1, 1, 1, True, 1, (32, 8, 32), "relu-in"),
        (4, 8, 3, 1, 1, 1, 1, True, 1, (4, 6, 20), "in"),
        (4, 11, 3, 1, 1, 1, 1, True, 1, (32, 8, 32), "in"),
    ]
    for i, (ci, co, k, s, p, d, g, b, n, sp, tail) in enumerate(specs):
        m = nn.Conv3d(ci, co, k, stride=s, padding=p, dilation=d, groups=g, bias=b)
        w = base.state("op", m, rng)
        x = base.randn(rng, (n, ci) + sp)
        with torch.no_grad():
            y = m(t(x))
        attrs = {"cout": co, "kernel": k, "stride": s, "pad": p, "dilation": d, "groups": g,
                 "bias": b}
        label = "c%d ci%d co%d k%s s%s p%s d%s g%d %s" % (i, ci, co, k, s, p, d, g, sp)
        out += with_tail("conv3d", label, x, attrs, y, w, tail, rng)
    return out


def with_tail(op, label, x, attrs, y, w, tail, rng):
    """the case, with an elementwise epilogue after the op when tail says so (relu, gate,
    res); a tail with "fill" also runs the case with the default SEGC_GPU_FILL"""
    c = tail_case(op, label, x, attrs, y, w, (tail or "").replace("fill", "").strip(","), rng)
    c.fill = "fill" in (tail or "")
    return [c]


def tail_case(op, label, x, attrs, y, w, tail, rng):
    node = {"name": "op", "op": op, "in": ["x"], "attrs": attrs}
    y = y.numpy() if hasattr(y, "numpy") else y
    if not tail:
        return base.one(op, label, x, attrs, y, w)
    if tail == "relu":
        body = [node, {"name": "r", "op": "relu", "in": ["op"]}]
        return base.Case(op, label + " +relu", [("x", x)], body, ["r"], w, [np.maximum(y, 0)])
    if tail in ("in", "gn4", "relu-in"):  # [leaky_relu ->] instance / group norm -> lrelu
        co = y.shape[1]
        gam, bet = 1 + 0.2 * base.randn(rng, (co,)), 0.2 * base.randn(rng, (co,))
        h = t(y)
        body = [node]
        if tail == "relu-in":
            h = torch.nn.functional.leaky_relu(h, 0.01)
            body.append({"name": "a0", "op": "leaky_relu", "attrs": {"slope": 0.01}})
        if tail == "gn4":
            h = torch.nn.functional.group_norm(h, 4, weight=t(gam), bias=t(bet))
            body.append({"name": "norm", "op": "group_norm", "attrs": {"groups": 4,
                                                                         "affine": True}})
        else:
            h = torch.nn.functional.instance_norm(h, weight=t(gam), bias=t(bet))
            body.append({"name": "norm", "op": "instance_norm", "attrs": {"affine": True}})
        body.append({"name": "r", "op": "leaky_relu", "attrs": {"slope": 0.01}})
        ref = torch.nn.functional.leaky_relu(h, 0.01).numpy()
        ws = dict(w, **{"norm.weight": gam, "norm.bias": bet})
        c = base.Case(op, label + " +" + tail, [("x", x)], body, ["r"], ws, [ref])
        # statistics from the threads: ow % 32 == 0 and whole channel blocks (tmpl_gpu_conv.c
        # pick_cob: all channels up to 8, else a divisor in 8 .. 4)
        c.stats = y.shape[-1] % 32 == 0 and (co <= 8 or any(co % b == 0 for b in range(4, 9)))
        return c
    if tail == "gate":  # y * sigmoid(y)
        body = [node, {"name": "s", "op": "sigmoid", "in": ["op"]},
                {"name": "r", "op": "mul", "in": ["op", "s"]}]
        ref = (t(y) * torch.sigmoid(t(y))).numpy()
        return base.Case(op, label + " +gate", [("x", x)], body, ["r"], w, [ref])
    assert tail == "res", tail
    # + a residual input of the output's shape, and the raw op output kept too
    r = base.randn(rng, y.shape)
    body = [node, {"name": "r", "op": "add", "in": ["op", "res"]}]
    return base.Case(op, label + " +res", [("x", x), ("res", r)], body, ["op", "r"], w,
                     [y, y + r])


def convt_cases(rng):
    out = []
    # cin, cout, kernel, stride, pad, output_padding, dilation, groups, bias, N, spatial, tail
    specs = [
        (8, 11, 2, 2, 0, 0, 1, 1, True, 2, (2, 11, 3), None),     # 8 + 3 channels, 8 + 3 rows
        (4, 6, 2, 2, 0, 0, 1, 2, True, 1, (3, 4, 5), "relu"),
        (6, 4, (1, 2, 3), (1, 2, 3), 0, 0, 1, 1, False, 1, (3, 5, 2), None),
        (16, 32, 2, 2, 0, 0, 1, 1, True, 1, (3, 9, 4), "fill"),
        (4, 10, 3, 2, 1, 1, 1, 2, True, 1, (3, 4, 5), "res"),    # gather, cog 5
        (5, 5, 3, 1, 1, 0, 2, 5, True, 1, (4, 5, 6), None),      # gather, depthwise, dil 2
        (3, 9, (3, 2, 3), (2, 3, 1), (1, 0, 2), (1, 2, 0), 1, 1, False, 1, (2, 3, 5), None),
        (3, 20, 3, 2, 1, 0, 1, 1, True, 1, (1, 1, 1), None),     # one voxel, 8 + 8 + 4
    ]
    for i, (ci, co, k, s, p, op_, d, g, b, n, sp, tail) in enumerate(specs):
        m = nn.ConvTranspose3d(ci, co, k, stride=s, padding=p, output_padding=op_, groups=g,
                               bias=b, dilation=d)
        w = base.state("op", m, rng)
        x = base.randn(rng, (n, ci) + sp)
        with torch.no_grad():
            y = m(t(x))
        attrs = {"cout": co, "kernel": k, "stride": s, "pad": p, "output_padding": op_,
                 "dilation": d, "groups": g, "bias": b}
        label = "c%d ci%d co%d k%s s%s p%s op%s g%d %s" % (i, ci, co, k, s, p, op_, g, sp)
        out += with_tail("conv_transpose3d", label, x, attrs, y, w, tail, rng)
    return out


def linear_cases(rng):
    out = []
    # x shape, out features, bias, tail
    specs = [((3, 37), 45, True, None), ((2, 19, 24), 70, False, "res"),
             ((1, 4, 5, 16), 8, True, "gate"), ((100, 64), 128, True, "fill"),
             ((33, 5), 3, True, None), ((2, 1, 9, 12), 40, True, "relu")]
    for i, (shape, o, b, tail) in enumerate(specs):
        m = nn.Linear(shape[-1], o, bias=b)
        w = base.state("op", m, rng)
        x = base.randn(rng, shape)
        with torch.no_grad():
            y = m(t(x))
        out += with_tail("linear", "c%d %s out=%d bias=%d" % (i, shape, o, b), x,
                         {"out": o, "bias": b}, y, w, tail, rng)
    return out


def matmul_cases(rng):
    out = []
    specs = [((37, 19), (19, 45)), ((2, 3, 20, 7), (7, 33)), ((3, 1, 17, 5), (2, 5, 40)),
             ((1, 64), (64, 3)), ((70, 16), (2, 16, 70)), ((2, 40, 24), (2, 24, 96))]
    for i, (sa, sb) in enumerate(specs):
        a = base.randn(rng, sa)
        b = base.randn(rng, sb)
        ref = torch.matmul(t(a), t(b)).numpy()
        c = base.Case("matmul", "c%d %s @ %s" % (i, sa, sb), [("a", a), ("b", b)],
                      [{"name": "op", "op": "matmul", "in": ["a", "b"]}], ["op"], {}, [ref])
        c.fill = i == len(specs) - 1
        out.append(c)
    return out


def all_cases():
    rng = np.random.default_rng(6006)
    torch.manual_seed(66)
    cs = conv_cases(rng) + convt_cases(rng) + linear_cases(rng) + matmul_cases(rng)
    # the "fill" cases once more with the default fill (tiles shrunk for small launches)
    again = []
    for c in cs:
        if getattr(c, "fill", False):
            d = base.Case(c.op, c.label + " default-fill", c.inputs, c.body, c.outputs,
                          c.weights, c.ref)
            d.default_fill = True
            if hasattr(c, "stats"):
                d.stats = c.stats
            again.append(d)
    return cs + again


def run_case(c, d, interp, engine):
    """base.run_case with SEGC_GPU_FILL=1 unless the case asks for the default; through the
    CUDA emulation, a norm's statistics from the conv's threads exactly where expected"""
    old = os.environ.pop("SEGC_GPU_FILL", None)
    if not getattr(c, "default_fill", False):
        os.environ["SEGC_GPU_FILL"] = "1"
    try:
        ok, msg = _run_case(c, d, interp, engine)
        src = os.path.join(d, "engine.so.emu.cu")
        want = getattr(c, "stats", None)
        if ok and want is not None and engine and os.path.exists(src):
            got = "_smu =" in open(src).read()
            ok = got == want
            msg += ", statistics %s the threads" % ("from" if got else "not from")
        return ok, msg
    finally:
        os.environ.pop("SEGC_GPU_FILL", None)
        if old is not None:
            os.environ["SEGC_GPU_FILL"] = old


_run_case = base.run_case


if __name__ == "__main__":
    base.all_cases = all_cases
    base.run_case = run_case
    sys.exit(base.main())
