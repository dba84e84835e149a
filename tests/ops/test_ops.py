#!/usr/bin/env python3
"""tests/ops/test_ops.py -- every op in ir/ops.def against PyTorch (float32, CPU).

Each case is a tiny graph (one node, or a few) written as segc-graph/1 JSON in a temporary
folder, random odd shapes and random weights from a seeded RNG; weights come from the matching
torch module (nn.Conv3d, ...), whose state_dict keys are the graph's weight names ("op.weight").
The case is compiled (`segc GRAPH -o ENGINE.so`) and run (`segc run`), and also run through the
reference interpreter (`segc interp`); both must match PyTorch within
max|a - b| / max(max|ref|, 1e-6) <= 1e-4.

    tests/ops/test_ops.py [--only OP[,OP...]] [--interp-only] [--engine-only] [--keep] [-v]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
SEGC picks the segc binary (default build/segc); SEGC_INTERP another binary for `interp` only.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import common  # noqa: E402

torch.set_num_threads(1)


class Case:
    """inputs: [(name, array)]; body: graph nodes; outputs: value names; weights: name -> array;
    ref: the expected outputs (list of arrays, same order as outputs)."""

    def __init__(self, op, label, inputs, body, outputs, weights, ref):
        self.op, self.label = op, label
        self.inputs, self.body, self.outputs = inputs, body, outputs
        self.weights, self.ref = weights, ref


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def randn(rng, shape, lo=None, hi=None):
    if lo is not None:
        return rng.uniform(lo, hi, size=shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def state(prefix, module, rng):
    """The module's state_dict with every float tensor randomised, keys prefixed."""
    out = {}
    for k, v in module.state_dict().items():
        if v.dtype == torch.float32:
            if k.endswith("running_var"):
                v = torch.from_numpy(randn(rng, tuple(v.shape), 0.5, 2.0))
            else:
                v = torch.from_numpy(randn(rng, tuple(v.shape)) * 0.5)
            module.state_dict()[k].copy_(v)
        out[prefix + "." + k] = module.state_dict()[k].detach().clone().numpy()
    return out


def one(op, label, x, attrs, ref, weights=None, name="op", extra_inputs=()):
    """A one-node case on input x (and extra named inputs)."""
    ins = [("x", x)] + list(extra_inputs)
    node = {"name": name, "op": op, "in": [n for n, _ in ins], "attrs": attrs}
    return Case(op, label, ins, [node], [name], weights or {}, [ref])


# ---- case generators: each returns a list of Case ----

def cases_conv3d(rng):
    out = []
    # cin, cout, kernel, stride, pad, dilation, groups, bias, N, spatial
    specs = [
        (3, 5, 3, 1, 1, 1, 1, True, 1, (7, 9, 8)),
        (4, 6, 3, 2, 0, 1, 2, False, 2, (9, 7, 10)),
        (6, 6, 3, 1, 2, 2, 6, True, 1, (8, 9, 7)),
        (5, 4, (1, 3, 2), (1, 2, 1), (0, 1, 1), 1, 1, True, 1, (5, 11, 6)),
        (4, 8, 1, 1, 0, 1, 4, True, 1, (5, 6, 7)),
        # unit trailing dims: the pointwise form flattens (D,H,W) and must keep their strides
        (8, 4, 1, 1, 0, 1, 1, True, 1, (2, 2, 1)),
        (6, 5, 3, 1, 1, 1, 1, True, 1, (3, 1, 1)),
        (16, 12, 3, 1, 1, 1, 1, False, 1, (6, 7, 9)),
        (12, 16, 5, 1, 2, 1, 1, True, 1, (5, 6, 7)),
    ]
    for i, (ci, co, k, s, p, d, g, b, n, sp) in enumerate(specs):
        m = nn.Conv3d(ci, co, k, stride=s, padding=p, dilation=d, groups=g, bias=b)
        w = state("op", m, rng)
        x = randn(rng, (n, ci) + sp)
        with torch.no_grad():
            ref = m(t(x)).numpy()
        attrs = {"cout": co, "kernel": k, "stride": s, "pad": p, "dilation": d, "groups": g,
                 "bias": b}
        out.append(one("conv3d", "c%d k%s s%s p%s d%s g%d b%d" % (i, k, s, p, d, g, b), x, attrs,
                       ref, w))
    return out


def cases_conv_transpose3d(rng):
    out = []
    # cin, cout, kernel, stride, pad, output_padding, dilation, groups, bias, spatial
    specs = [
        (4, 3, 3, 2, 1, 1, 1, 1, True, (5, 6, 7)),
        (4, 6, 2, 2, 0, 0, 1, 2, False, (4, 5, 3)),
        (6, 4, 3, 2, 1, (1, 0, 1), 1, 2, True, (3, 4, 5)),
        (3, 5, 3, 1, 1, 0, 2, 1, True, (4, 6, 5)),
        # kernel == stride: the phase form (codegen/tmpl_conv.c convt_phase)
        (16, 16, 2, 2, 0, 0, 1, 1, True, (3, 5, 7)),
        (32, 16, 2, 2, 0, 0, 1, 1, False, (4, 4, 4)),
        (48, 24, 2, 2, 0, 0, 1, 1, True, (2, 3, 5)),
        (32, 32, 2, 2, 0, 0, 1, 2, True, (3, 3, 4)),
        (6, 4, (2, 1, 3), (2, 1, 3), 0, 0, 1, 1, True, (3, 4, 2)),
    ]
    for i, (ci, co, k, s, p, op_, d, g, b, sp) in enumerate(specs):
        m = nn.ConvTranspose3d(ci, co, k, stride=s, padding=p, output_padding=op_, groups=g,
                               bias=b, dilation=d)
        w = state("op", m, rng)
        x = randn(rng, (1, ci) + sp)
        with torch.no_grad():
            ref = m(t(x)).numpy()
        attrs = {"cout": co, "kernel": k, "stride": s, "pad": p, "output_padding": op_,
                 "dilation": d, "groups": g, "bias": b}
        out.append(one("conv_transpose3d", "c%d k%s s%s p%s op%s g%d b%d" % (i, k, s, p, op_, g, b),
                       x, attrs, ref, w))
    return out


def cases_instance_norm(rng):
    out = []
    specs = [(3, (5, 7, 6), True, 1e-5), (4, (3, 4, 9), False, 1e-5), (5, (6, 5, 4), True, 1e-3)]
    for i, (c, sp, affine, eps) in enumerate(specs):
        m = nn.InstanceNorm3d(c, eps=eps, affine=affine)
        w = state("op", m, rng)
        x = randn(rng, (2, c) + sp) * 2 + 0.5
        with torch.no_grad():
            ref = m(t(x)).numpy()
        out.append(one("instance_norm", "c%d affine=%d eps=%g" % (i, affine, eps), x,
                       {"eps": eps, "affine": affine}, ref, w))
    return out


def cases_group_norm(rng):
    out = []
    for i, (g, c, sp, affine, eps) in enumerate([(2, 6, (5, 4, 7), True, 1e-5),
                                                 (3, 9, (3, 5, 4), False, 1e-5),
                                                 (1, 4, (4, 3, 5), True, 1e-4),
                                                 (4, 4, (5, 5, 3), True, 1e-5)]):
        m = nn.GroupNorm(g, c, eps=eps, affine=affine)
        w = state("op", m, rng)
        x = randn(rng, (2, c) + sp) * 3 - 1
        with torch.no_grad():
            ref = m(t(x)).numpy()
        out.append(one("group_norm", "c%d G=%d affine=%d" % (i, g, affine), x,
                       {"groups": g, "eps": eps, "affine": affine}, ref, w))
    return out


def cases_layer_norm(rng):
    out = []
    for i, (shape, dims, affine) in enumerate([((2, 5, 7), 1, True), ((2, 3, 4, 5), 2, True),
                                               ((3, 9), 1, False), ((1, 2, 3, 4, 5), 3, True)]):
        m = nn.LayerNorm(shape[-dims:], eps=1e-5, elementwise_affine=affine)
        w = state("op", m, rng)
        x = randn(rng, shape) + 1
        with torch.no_grad():
            ref = m(t(x)).numpy()
        out.append(one("layer_norm", "c%d %s dims=%d affine=%d" % (i, shape, dims, affine), x,
                       {"dims": dims, "eps": 1e-5, "affine": affine}, ref, w))
    return out


def cases_batch_norm(rng):
    out = []
    for i, (shape, affine, eps) in enumerate([((2, 4, 5, 6, 3), True, 1e-5),
                                              ((1, 3, 7, 5, 4), False, 1e-5),
                                              ((5, 6), True, 1e-3)]):
        c = shape[1]
        m = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm3d)(c, eps=eps, affine=affine)
        w = state("op", m, rng)
        m.eval()
        x = randn(rng, shape)
        with torch.no_grad():
            ref = m(t(x)).numpy()
        out.append(one("batch_norm", "c%d %s affine=%d" % (i, shape, affine), x,
                       {"eps": eps, "affine": affine}, ref, w))
    return out


UNARY = {
    "identity": (lambda x: x, {}, None),
    "relu": (F.relu, {}, None),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.13), {"slope": 0.13}, None),
    "gelu": (F.gelu, {}, None),
    "silu": (F.silu, {}, None),
    "sigmoid": (torch.sigmoid, {}, None),
    "tanh": (torch.tanh, {}, None),
    "exp": (torch.exp, {}, None),
    "log": (torch.log, {}, (0.05, 5.0)),
    "sqrt": (torch.sqrt, {}, (0.0, 5.0)),
    "rsqrt": (torch.rsqrt, {}, (0.1, 5.0)),
    "neg": (torch.neg, {}, None),
    "abs": (torch.abs, {}, None),
    "erf": (torch.erf, {}, None),
    "softplus": (F.softplus, {}, None),
    "clamp": (lambda x: torch.clamp(x, -0.5, 0.7), {"min": -0.5, "max": 0.7}, None),
}
SHAPES = [(3, 5, 7), (1, 2, 5, 4, 3), (11,), (2, 3, 4, 5)]


def unary_cases(op, rng):
    fn, attrs, rangep = UNARY[op]
    out = []
    for i, shape in enumerate(SHAPES[:3]):
        x = randn(rng, shape, *rangep) if rangep else randn(rng, shape) * 2
        with torch.no_grad():
            ref = fn(t(x)).numpy()
        out.append(one(op, "c%d %s" % (i, shape), x, attrs, ref))
    return out


def extra_unary(rng):
    """variants with attributes: gelu tanh, softplus beta/threshold, clamp one-sided"""
    out = []
    x = randn(rng, (3, 4, 5)) * 3
    out.append(one("gelu", "tanh", x, {"approximate": "tanh"},
                   F.gelu(t(x), approximate="tanh").numpy()))
    x = randn(rng, (2, 7, 3)) * 4
    out.append(one("softplus", "beta=2 threshold=3", x, {"beta": 2.0, "threshold": 3.0},
                   F.softplus(t(x), beta=2.0, threshold=3.0).numpy()))
    out.append(one("clamp", "min only", x, {"min": 0.25}, torch.clamp(t(x), min=0.25).numpy()))
    out.append(one("clamp", "max only", x, {"max": -0.3}, torch.clamp(t(x), max=-0.3).numpy()))
    out.append(one("leaky_relu", "default slope", x, {}, F.leaky_relu(t(x)).numpy()))
    return out


BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow,
}
BSHAPES = [((2, 3, 4, 5), (3, 1, 5)), ((4, 1, 6), (1, 5, 1)), ((7,), (3, 7)),
           ((2, 3, 5, 4, 3), (2, 3, 5, 4, 3)), ((1, 4, 3, 3, 3), (1, 4, 1, 1, 1))]


def binary_cases(op, rng):
    out = []
    for i, (sa, sb) in enumerate(BSHAPES[:4] if op != "add" else BSHAPES):
        a = randn(rng, sa)
        b = randn(rng, sb)
        if op == "div":
            b = np.sign(b) * (np.abs(b) + 0.5)
        if op == "pow":
            a = randn(rng, sa, 0.1, 3.0)
            b = randn(rng, sb, -2.0, 2.0)
        ref = BINARY[op](t(a), t(b)).numpy()
        out.append(Case(op, "c%d %s %s" % (i, sa, sb), [("a", a), ("b", b)],
                        [{"name": "op", "op": op, "in": ["a", "b"]}], ["op"], {}, [ref]))
    return out


def cases_constant(rng):
    x = randn(rng, (2, 3, 4))
    body = [{"name": "c", "op": "constant", "attrs": {"value": 0.75, "shape": [3, 1]}},
            {"name": "op", "op": "mul", "in": ["x", "c"]}]
    return [Case("constant", "mul by const [3,1]", [("x", x)], body, ["op"], {},
                 [(t(x) * 0.75).numpy()])]


def cases_reshape(rng):
    out = []
    for i, (shape, new) in enumerate([((2, 3, 4, 5), (6, -1)), ((1, 4, 3, 5, 2), (4, 30)),
                                      ((7, 6), (3, 2, 7))]):
        x = randn(rng, shape)
        out.append(one("reshape", "c%d %s->%s" % (i, shape, new), x, {"shape": list(new)},
                       x.reshape(new)))
    return out


def cases_permute(rng):
    out = []
    specs = [((2, 3, 4, 5), (0, 2, 3, 1)), ((1, 4, 3, 5, 2), (0, 4, 2, 3, 1)),
             ((7, 6), (1, 0)), ((3, 2, 5), (2, 0, 1))]
    for i, (shape, perm) in enumerate(specs):
        x = randn(rng, shape)
        out.append(one("permute", "c%d %s %s" % (i, shape, perm), x, {"perm": list(perm)},
                       t(x).permute(*perm).contiguous().numpy()))
    return out


def cases_slice(rng):
    out = []
    specs = [((2, 9, 4), 1, 2, 7, 1), ((3, 5, 11), -1, 1, 100, 3), ((8, 3), 0, -5, -1, 2),
             ((1, 4, 7, 6, 5), 2, 0, 7, 2), ((6, 4), 1, -3, 4, 1)]
    for i, (shape, ax, s, e, st) in enumerate(specs):
        x = randn(rng, shape)
        sl = [slice(None)] * len(shape)
        sl[ax] = slice(s, e, st)
        out.append(one("slice", "c%d %s axis=%d [%d:%d:%d]" % (i, shape, ax, s, e, st), x,
                       {"axis": ax, "start": s, "end": e, "step": st}, x[tuple(sl)].copy()))
    return out


def cases_concat(rng):
    out = []
    specs = [([(1, 3, 4, 5, 2), (1, 2, 4, 5, 2)], 1), ([(2, 3), (2, 5), (2, 1)], -1),
             ([(3, 4, 2), (1, 4, 2)], 0)]
    for i, (shapes, ax) in enumerate(specs):
        arrs = [randn(rng, s) for s in shapes]
        names = ["x%d" % k for k in range(len(arrs))]
        ref = np.concatenate(arrs, axis=ax)
        out.append(Case("concat", "c%d %s axis=%d" % (i, shapes, ax), list(zip(names, arrs)),
                        [{"name": "op", "op": "concat", "in": names, "attrs": {"axis": ax}}],
                        ["op"], {}, [ref]))
    return out


def reduce_cases(op, rng):
    out = []
    specs = [((2, 3, 4, 5), [1], False), ((2, 3, 4, 5), [2, 3], True), ((3, 7, 5), [-1], False),
             ((1, 4, 3, 5, 6), [2, 3, 4], True), ((4, 6), [0, 1], False),
             # the last dim kept: the CPU's lane form (tmpl_reduce.c) with 8, 32 and 4 lanes
             ((2, 5, 3, 4, 8), [1], True), ((2, 3, 4, 32), [1, 2], False),
             ((2, 6, 3, 12), [0, 2], False)]
    for i, (shape, axes, keep) in enumerate(specs[:4] + specs[5:]):
        x = randn(rng, shape) + 0.3
        tx = t(x)
        if op == "reduce_sum":
            ref = torch.sum(tx, dim=axes, keepdim=keep)
        elif op == "reduce_mean":
            ref = torch.mean(tx, dim=axes, keepdim=keep)
        else:
            ref = tx
            for a in sorted([a % len(shape) for a in axes], reverse=True):
                ref = torch.max(ref, dim=a, keepdim=keep).values
        out.append(one(op, "c%d %s axes=%s keep=%d" % (i, shape, axes, keep), x,
                       {"axes": axes, "keepdim": keep}, ref.numpy()))
    return out


def cases_moments(rng):
    out = []
    for i, (shape, axes, eps) in enumerate([((2, 3, 4, 5, 6), [2, 3, 4], 1e-5),
                                            ((2, 6, 5), [-1], 1e-3), ((3, 4, 5), [0, 2], 1e-5),
                                            ((2, 5, 3, 4, 16), [1], 1e-5)]):
        x = randn(rng, shape) * 2 + 1
        tx = t(x).double()
        mean = tx.mean(dim=axes, keepdim=True)
        var = tx.var(dim=axes, unbiased=False, keepdim=True)
        rstd = 1.0 / torch.sqrt(var + eps)
        body = [{"name": "op", "op": "moments", "in": ["x"], "attrs": {"axes": axes, "eps": eps},
                 "out": ["mean", "rstd"]}]
        out.append(Case("moments", "c%d %s axes=%s" % (i, shape, axes), [("x", x)], body,
                        ["mean", "rstd"], {}, [mean.float().numpy(), rstd.float().numpy()]))
    return out


def cases_softmax(rng):
    out = []
    specs = [((2, 5, 7), -1), ((2, 6, 3, 4), 1), ((9,), 0), ((3, 4, 5), 0)]
    for i, (shape, ax) in enumerate(specs):
        x = randn(rng, shape) * 3
        out.append(one("softmax", "c%d %s axis=%d" % (i, shape, ax), x, {"axis": ax},
                       F.softmax(t(x), dim=ax).numpy()))
    return out


def cases_linear(rng):
    out = []
    for i, (shape, o, b) in enumerate([((2, 7), 5, True), ((2, 3, 9), 4, False),
                                       ((1, 5, 4, 6), 11, True)]):
        m = nn.Linear(shape[-1], o, bias=b)
        w = state("op", m, rng)
        x = randn(rng, shape)
        with torch.no_grad():
            ref = m(t(x)).numpy()
        out.append(one("linear", "c%d %s out=%d bias=%d" % (i, shape, o, b), x,
                       {"out": o, "bias": b}, ref, w))
    return out


def cases_matmul(rng):
    out = []
    specs = [((5, 7), (7, 3)), ((2, 4, 6), (2, 6, 5)), ((3, 1, 4, 5), (2, 5, 6)),
             ((4, 3), (2, 3, 5))]
    for i, (sa, sb) in enumerate(specs):
        a = randn(rng, sa)
        b = randn(rng, sb)
        ref = torch.matmul(t(a), t(b)).numpy()
        out.append(Case("matmul", "c%d %s @ %s" % (i, sa, sb), [("a", a), ("b", b)],
                        [{"name": "op", "op": "matmul", "in": ["a", "b"]}], ["op"], {}, [ref]))
    return out


def cases_max_pool3d(rng):
    out = []
    # kernel, stride, pad, dilation, ceil, spatial
    specs = [(2, None, 0, 1, False, (8, 6, 10)), (3, 2, 1, 1, True, (7, 9, 8)),
             (3, 2, 1, 2, False, (9, 8, 11)), ((2, 3, 1), (2, 1, 1), (1, 1, 0), 1, True, (5, 7, 6)),
             (2, 2, 0, 1, True, (7, 5, 9))]
    for i, (k, s, p, d, c, sp) in enumerate(specs):
        x = randn(rng, (2, 3) + sp)
        ref = F.max_pool3d(t(x), k, stride=s, padding=p, dilation=d, ceil_mode=c).numpy()
        attrs = {"kernel": k, "pad": p, "dilation": d, "ceil_mode": c}
        if s is not None:
            attrs["stride"] = s
        out.append(one("max_pool3d", "c%d k%s s%s p%s d%s ceil=%d" % (i, k, s, p, d, c), x, attrs,
                       ref))
    return out


def cases_avg_pool3d(rng):
    out = []
    # kernel, stride, pad, ceil, count_include_pad, spatial
    specs = [(2, None, 0, False, True, (8, 6, 10)), (3, 2, 1, True, True, (7, 9, 8)),
             (3, 2, 1, True, False, (7, 9, 8)),
             ((2, 3, 3), (2, 1, 2), (1, 1, 0), False, False, (5, 7, 6)),
             (2, 2, 1, True, True, (5, 6, 7))]
    for i, (k, s, p, c, cip, sp) in enumerate(specs):
        x = randn(rng, (1, 4) + sp)
        ref = F.avg_pool3d(t(x), k, stride=s, padding=p, ceil_mode=c,
                           count_include_pad=cip).numpy()
        attrs = {"kernel": k, "pad": p, "ceil_mode": c, "count_include_pad": cip}
        if s is not None:
            attrs["stride"] = s
        out.append(one("avg_pool3d", "c%d k%s s%s p%s ceil=%d cip=%d" % (i, k, s, p, c, cip), x,
                       attrs, ref))
    return out


def cases_upsample(rng):
    out = []
    # mode, scale, size, align_corners, spatial
    specs = [("nearest", 2.0, None, False, (3, 4, 5)),
             ("nearest", (1.5, 2.0, 3.0), None, False, (4, 3, 3)),
             ("nearest", None, (7, 5, 9), False, (3, 4, 5)),
             ("nearest", None, (3, 2, 4), False, (5, 5, 7)),
             ("trilinear", 2.0, None, False, (3, 4, 5)),
             ("trilinear", 2.0, None, True, (3, 4, 5)),
             ("trilinear", None, (7, 6, 9), False, (4, 3, 5)),
             ("trilinear", None, (7, 6, 9), True, (4, 3, 5)),
             ("trilinear", (1.5, 2.5, 1.0), None, False, (4, 3, 5)),
             ("trilinear", None, (2, 3, 2), False, (5, 4, 6)),
             # non-integer out = in * scale: PyTorch indexes with 1/scale, not in/out
             ("nearest", (1.3, 1.7, 2.5), None, False, (5, 3, 5)),
             ("trilinear", (1.3, 1.7, 2.5), None, False, (5, 3, 5)),
             ("nearest", (0.6, 0.5, 0.7), None, False, (7, 6, 9)),
             # trilinear on the CPU is separable; the w blend runs 16 / 16 / 4 lanes here
             ("trilinear", 2.0, None, False, (3, 4, 8)),
             ("trilinear", 2.0, None, True, (2, 3, 16)),
             ("trilinear", None, (5, 6, 12), True, (3, 4, 6)),
             # exactly 2 on every axis (a GPU form of its own: 2 x 2 x 2 outputs a thread),
             # a size-1 axis, by size
             ("trilinear", 2.0, None, False, (4, 1, 7)),
             ("trilinear", None, (6, 10, 4), False, (3, 5, 2))]
    for i, (mode, sc, sz, ac, sp) in enumerate(specs):
        x = randn(rng, (1, 3) + sp)
        kw = {"mode": mode}
        if mode == "trilinear":
            kw["align_corners"] = ac
        if sc is not None:
            ref = F.interpolate(t(x), scale_factor=sc, **kw)
        else:
            ref = F.interpolate(t(x), size=sz, **kw)
        attrs = {"mode": mode, "align_corners": ac}
        if sc is not None:
            attrs["scale"] = sc
        else:
            attrs["size"] = list(sz)
        out.append(one("upsample", "c%d %s scale=%s size=%s ac=%d" % (i, mode, sc, sz, ac), x,
                       attrs, ref.numpy()))
    return out


def cases_chain(rng):
    """a few-node graph: conv3d -> instance_norm -> leaky_relu -> add residual"""
    m1 = nn.Conv3d(4, 4, 3, padding=1, bias=False)
    m2 = nn.InstanceNorm3d(4, affine=True)
    w = state("conv", m1, rng)
    w.update(state("norm", m2, rng))
    x = randn(rng, (1, 4, 6, 5, 7))
    with torch.no_grad():
        ref = (F.leaky_relu(m2(m1(t(x))), 0.01) + t(x)).numpy()
    body = [{"name": "conv", "op": "conv3d", "in": ["x"],
             "attrs": {"cout": 4, "kernel": 3, "pad": 1, "bias": False}},
            {"name": "norm", "op": "instance_norm", "attrs": {"affine": True}},
            {"name": "act", "op": "leaky_relu", "attrs": {"slope": 0.01}},
            {"name": "op", "op": "add", "in": ["act", "x"]}]
    return [Case("chain", "conv+inorm+lrelu+res", [("x", x)], body, ["op"], w, [ref])]


def all_cases():
    rng = np.random.default_rng(20240611)
    torch.manual_seed(1234)
    cs = []
    cs += cases_conv3d(rng) + cases_conv_transpose3d(rng)
    cs += cases_instance_norm(rng) + cases_group_norm(rng) + cases_layer_norm(rng)
    cs += cases_batch_norm(rng)
    for op in UNARY:
        cs += unary_cases(op, rng)
    cs += extra_unary(rng)
    for op in BINARY:
        cs += binary_cases(op, rng)
    cs += cases_constant(rng)
    cs += cases_reshape(rng) + cases_permute(rng) + cases_slice(rng) + cases_concat(rng)
    for op in ("reduce_sum", "reduce_mean", "reduce_max"):
        cs += reduce_cases(op, rng)
    cs += cases_moments(rng) + cases_softmax(rng)
    cs += cases_linear(rng) + cases_matmul(rng)
    cs += cases_max_pool3d(rng) + cases_avg_pool3d(rng) + cases_upsample(rng)
    cs += cases_chain(rng)
    return cs


def run_case(c, d, interp, engine):
    """Returns (ok, message)."""
    graph = os.path.join(d, "graph.json")
    doc = common.graph_json("op_" + c.op, [(n, a.shape) for n, a in c.inputs], c.body, c.outputs)
    with open(graph, "w") as f:
        json.dump(doc, f, indent=1)
    weights = os.path.join(d, "w.safetensors")
    common.write_safetensors(weights, c.weights)
    inputs = {}
    for n, a in c.inputs:
        inputs[n] = os.path.join(d, "in_%s.npy" % n)
        common.write_npy(inputs[n], a)
    msgs, ok = [], True
    runs = []
    if interp:
        runs.append("interp")
    if engine:
        runs.append("engine")
    for how in runs:
        outs = {n: os.path.join(d, "%s_out_%s.npy" % (how, n)) for n in c.outputs}
        try:
            if how == "interp":
                common.run_interp(graph, weights, inputs, outs)
            else:
                eng = os.path.join(d, "engine.so")
                common.compile_graph(graph, eng)
                common.run_engine(eng, weights, inputs, outs)
        except Exception as e:  # noqa: BLE001 -- any failure is a failed case, reported
            ok = False
            msgs.append("%s: %s" % (how, str(e).strip().splitlines()[-1] if str(e).strip() else e))
            continue
        worst = 0.0
        for n, ref in zip(c.outputs, c.ref):
            got = common.read_npy(outs[n])
            worst = max(worst, common.max_rel_err(got, ref))
        if not worst <= common.TOL:
            ok = False
        msgs.append("%s err %.2e" % (how, worst))
    return ok, ", ".join(msgs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated op names (or case group names)")
    ap.add_argument("--interp-only", action="store_true", help="run the interpreter only")
    ap.add_argument("--engine-only", action="store_true", help="compile and run only")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("-v", action="store_true", help="print the folder of each case")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    interp, engine = not args.engine_only, not args.interp_only
    cases = [c for c in all_cases() if only is None or c.op in only]
    if os.environ.get("SEGC_TEST_QUICK") == "1":  # the ASan pass: every other case of an op
        seen = {}
        cases = [c for c in cases if seen.setdefault(c.op, []).append(c) or
                 len(seen[c.op]) % 2 == 1]
    if not cases:
        print("no case matches --only %s" % args.only)
        print("0 passed, 1 failed")
        return 1
    npass = nfail = 0
    t0 = time.time()
    failed = []
    for c in cases:
        d = tempfile.mkdtemp(prefix="segc-op-")
        try:
            ok, msg = run_case(c, d, interp, engine)
        except Exception as e:  # noqa: BLE001
            ok, msg = False, "harness: %s" % e
        print("%s %-16s %-44s %s%s" % ("ok  " if ok else "FAIL", c.op, c.label, msg,
                                       ("  [%s]" % d) if args.v or args.keep else ""))
        sys.stdout.flush()
        if ok:
            npass += 1
        else:
            nfail += 1
            failed.append(c.op)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    if failed:
        print("failing ops: %s" % " ".join(sorted(set(failed))))
    print("(%.1fs)" % (time.time() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
