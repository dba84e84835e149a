#!/usr/bin/env python3
"""tests/ops/test_ops_gpured.py -- cases aimed at the edges of the GPU forms of reductions,
norms' statistics, the selective scan and causal_conv1d (codegen/tmpl_gpu_reduce.c,
codegen/tmpl_gpu_scan.c) against PyTorch (float64 references, compared at 1e-4).

The shapes are small in every dim but the reduced / scanned one, which is long enough that the
GPU forms split it: several lanes per output with a ragged last round, the two-level combine of
partials, non-contiguous reduced axes, lanes ordered by output (kept innermost dim), a large mean
offset for the variance; scans of a few thousand tokens in many chunks with a ragged last chunk,
every order kind, odd d_state, one output only, no softplus; causal_conv1d over long orders.
On the CPU (the default SEGC) they check the generic templates at the same shapes; through the
CUDA emulation they check the GPU forms:

    SEGC_REAL=build/segc SEGC=tests/cuda/segc_cuda.py tests/ops/test_ops_gpured.py --engine-only

    tests/ops/test_ops_gpured.py [--only OP[,OP...]] [--interp-only] [--engine-only] [--keep] [-v]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.  The harness
(graph writing, running, comparing) is tests/ops/test_ops_mamba.py's.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_ops_mamba as M  # noqa: E402

R = M.R
Case = M.Case
np32 = M.np32
torch.set_num_threads(1)


def one(op, label, x, attrs, refs, outs=None, extra=()):
    """one node on input x; refs: list of arrays (one per output)"""
    outs = outs or ["y"]
    node = {"name": "op", "op": op, "in": ["x"] + [n for n, _ in extra], "attrs": attrs,
            "out": outs if len(outs) > 1 else outs[0]}
    return Case(op, label, [("x", x)] + list(extra), [node], outs, {}, refs)


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# ---- reductions ----

def cases_reduce(g):
    cs = []
    # (shape, axes): ragged lanes (R % P != 0), the two-level combine (R >= 8192), lanes
    # ordered by output (the innermost dim kept), non-adjacent reduced axes, everything reduced;
    # the block-mapped form's second loop (the last two: G = 4 blocks per output at 256
    # threads; at SEGC_GPU_RED_BLOCK=32, G = 32 and G = 64, two partials per thread)
    specs = [((1, 3, 17, 16, 15), [2, 3, 4]), ((1, 2, 21, 20, 23), [2, 3, 4]),
             ((2, 5000, 3), [1]), ((30, 4, 150), [0, 2]), ((40, 53), [0, 1]), ((3, 4100), [-1]),
             ((1, 2, 40, 40, 41), [2, 3, 4]), ((1, 1, 64, 64, 33), [2, 3, 4])]
    for i, (shape, axes) in enumerate(specs):
        x = randn(g, *shape) * 2 + 0.7
        keep = i % 2 == 1
        for op in ("reduce_sum", "reduce_mean", "reduce_max"):
            if op == "reduce_sum":
                ref = x.sum(dim=axes, keepdim=keep)
            elif op == "reduce_mean":
                ref = x.mean(dim=axes, keepdim=keep)
            else:
                ref = x.amax(dim=axes, keepdim=keep)
            cs.append(one(op, "%s axes=%s keep=%d" % (shape, axes, keep), np32(x),
                          {"axes": axes, "keepdim": keep}, [np32(ref)]))
    # moments: offset data (mean 100, std 1 and 0.05) checks the variance's numerics
    for i, (shape, axes, scale, off) in enumerate([((1, 3, 17, 16, 15), [2, 3, 4], 1, 100),
                                                   ((1, 2, 21, 20, 23), [2, 3, 4], 0.05, 30),
                                                   ((30, 4, 150), [0, 2], 2, -3),
                                                   ((2, 3, 5000), [1, 2], 1, 0),
                                                   ((2, 4000, 3), [1], 3, 5),
                                                   ((2, 5, 4, 5, 29), [2, 3, 4], 1, 2),
                                                   ((1, 2, 40, 40, 41), [2, 3, 4], 0.5, 7),
                                                   ((1, 1, 64, 64, 33), [2, 3, 4], 1, -2)]):
        x = torch.from_numpy(np32(randn(g, *shape) * scale + off)).double()
        eps = 1e-5
        mean = x.mean(dim=axes, keepdim=True)
        var = x.var(dim=axes, unbiased=False, keepdim=True)
        cs.append(one("moments", "%s axes=%s x*%g%+g" % (shape, axes, scale, off), np32(x),
                      {"axes": axes, "eps": eps},
                      [np32(mean), np32(1 / torch.sqrt(var + eps))], outs=["mean", "rstd"]))
    return cs


def cases_norms(g):
    """the norms canon turns into moments / reductions, at long reduced extents"""
    cs = []
    x = randn(g, 1, 2, 16, 16, 17) * 3 + 2
    ref = F.instance_norm(x, eps=1e-5)
    cs.append(one("instance_norm", "[1,2,16,16,17]", np32(x), {"eps": 1e-5, "affine": False},
                  [np32(ref)]))
    x = randn(g, 1, 4, 8, 16, 16) - 4
    ref = F.group_norm(x, 2, eps=1e-5)
    cs.append(one("group_norm", "[1,4,8,16,16] G=2", np32(x),
                  {"groups": 2, "eps": 1e-5, "affine": False}, [np32(ref)]))
    x = randn(g, 3, 1500) + 1
    ref = F.layer_norm(x, (1500,), eps=1e-5)
    cs.append(one("layer_norm", "[3,1500]", np32(x), {"dims": 1, "eps": 1e-5, "affine": False},
                  [np32(ref)]))
    for shape, ax in (((2, 3000), -1), ((2, 2500, 3), 1)):
        x = randn(g, *shape) * 4
        cs.append(one("softmax", "%s axis=%d" % (shape, ax), np32(x), {"axis": ax},
                      [np32(F.softmax(x, dim=ax))]))
    x = randn(g, 1, 3, 2000) * 2
    w = torch.randn(2000, generator=g)
    cs.append(Case("rms_norm", "[1,3,2000]", [("x", np32(x))],
                   [{"name": "n", "op": "rms_norm", "in": ["x"]}], ["n"], {"n.weight": np32(w)},
                   [np32(R.rms_norm_ref(x.float(), w))]))
    return cs


# ---- selective scan ----

def orders(L):
    """label -> (attrs, pos) for long sequences (L = 2000)"""
    return {
        "fwd": ({}, R.order_forward(L)),
        "flip": ({"flip": True}, R.order_flip(L)),
        "slices8": ({"nslices": 8}, R.order_interleave(L, 8)),
        "p3flip": ({"dims": [10, 10, 20], "perm": [2, 1, 0], "flip": True},
                   R.tri_orders(10, 10, 20)[2].flip(0)),
    }


def scan_case(g, label, nb, L, di, ns, attrs, pos, outs=("yg", "y"), softplus=True):
    u = torch.randn(nb, L, di, generator=g)
    dlt = 0.5 * torch.randn(nb, L, di, generator=g)
    if not softplus:
        dlt = 0.05 * torch.rand(nb, L, di, generator=g)
    bm = torch.randn(nb, L, ns, generator=g)
    cm = torch.randn(nb, L, ns, generator=g)
    z = torch.randn(nb, L, di, generator=g)
    alog = torch.log(torch.arange(1, ns + 1).float()).repeat(di, 1) + \
        0.1 * torch.randn(di, ns, generator=g)
    dd = 1 + 0.2 * torch.randn(di, generator=g)
    # dt from 1e-3 to 1e-1 (spec 1.4): states that last hundreds of steps, across many chunks
    dt = torch.exp(torch.rand(di, generator=g) * 4.6 - 6.9)
    db = dt + torch.log(-torch.expm1(-dt)) if softplus else 0.01 * torch.rand(di, generator=g)
    tr = lambda a: a[:, pos].transpose(1, 2)  # noqa: E731
    back = lambda a: R.from_order(a.transpose(1, 2), pos)  # noqa: E731
    refs = {"yg": R.selective_scan_ref(tr(u), tr(dlt), -torch.exp(alog), tr(bm), tr(cm), dd,
                                       tr(z), db, softplus),
            "y": R.selective_scan_ref(tr(u), tr(dlt), -torch.exp(alog), tr(bm), tr(cm), dd, None,
                                      db, softplus)}
    attrs = dict(attrs, softplus=softplus)
    body = [M.W("A_log", (di, ns)), M.W("D", (di,)), M.W("dbias", (di,)),
            {"name": "scan", "op": "selective_scan",
             "in": ["u", "delta", "A_log", "B", "C", "D", "dbias", "z"], "attrs": attrs,
             "out": ["yg", "y"]}]
    return Case("selective_scan", "%s B=%d L=%d di=%d N=%d%s%s" % (
        label, nb, L, di, ns, "" if softplus else " no-softplus",
        "" if len(outs) == 2 else " out=" + outs[0]),
        [("u", np32(u)), ("delta", np32(dlt)), ("B", np32(bm)), ("C", np32(cm)), ("z", np32(z))],
        body, list(outs), {"A_log": np32(alog), "D": np32(dd), "dbias": np32(db)},
        [np32(back(refs[o])) for o in outs])


def cases_scan(g):
    cs = []
    # L = 3001: 334 chunks of 9 steps, the last of 4
    cs.append(scan_case(g, "fwd", 2, 3001, 4, 16, {}, R.order_forward(3001)))
    for label, (attrs, pos) in orders(2000).items():
        cs.append(scan_case(g, label, 1, 2000, 3, 5, attrs, pos))
    cs.append(scan_case(g, "fwd", 1, 1000, 5, 16, {}, R.order_forward(1000), outs=("yg",)))
    cs.append(scan_case(g, "flip", 1, 1000, 5, 3, {"flip": True}, R.order_flip(1000),
                        outs=("y",), softplus=False))
    # short: two chunks (L = 17 at 8 steps per chunk: 9 + 8)
    cs.append(scan_case(g, "fwd", 1, 17, 2, 4, {}, R.order_forward(17)))
    return cs


def cases_conv1d(g):
    cs = []
    L, c = 2000, 5
    for label, (attrs, pos) in orders(L).items():
        for k, act in ((4, True), (3, False), (1, True)):
            if label != "fwd" and k != 4:
                continue
            x = torch.randn(2, L, c, generator=g)
            w = torch.randn(c, 1, k, generator=g)
            b = torch.randn(c, generator=g)
            ref = R.causal_conv1d_ref(x[:, pos].transpose(1, 2).double(), w.double(), b.double(),
                                      act)
            ref = R.from_order(ref.transpose(1, 2), pos)
            body = [M.W("w", (c, 1, k)), M.W("b", (c,)),
                    {"op": "causal_conv1d", "in": ["x", "w", "b"],
                     "attrs": dict(attrs, silu=act), "out": "y"}]
            cs.append(Case("causal_conv1d", "%s L=%d k=%d silu=%d" % (label, L, k, act),
                           [("x", np32(x))], body, ["y"], {"w": np32(w), "b": np32(b)},
                           [np32(ref)]))
    # with an elementwise epilogue (a residual add) fused after it
    x = torch.randn(1, 1500, 6, generator=g)
    w = torch.randn(6, 1, 4, generator=g)
    b = torch.randn(6, generator=g)
    ref = R.causal_conv1d_ref(x.transpose(1, 2).double(), w.double(), b.double(), True)
    ref = ref.transpose(1, 2) + x.double()
    body = [M.W("w", (6, 1, 4)), M.W("b", (6,)),
            {"op": "causal_conv1d", "in": ["x", "w", "b"], "out": "cv"},
            {"op": "add", "in": ["cv", "x"], "out": "y"}]
    cs.append(Case("causal_conv1d", "fwd L=1500 + residual", [("x", np32(x))], body, ["y"],
                   {"w": np32(w), "b": np32(b)}, [np32(ref)]))
    return cs


def all_cases():
    g = torch.Generator().manual_seed(20261126)
    return cases_reduce(g) + cases_norms(g) + cases_scan(g) + cases_conv1d(g)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated op names")
    ap.add_argument("--interp-only", action="store_true")
    ap.add_argument("--engine-only", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("-v", action="store_true", help="print the folder of each case")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    cases = [c for c in all_cases() if only is None or c.op in only]
    npass = nfail = 0
    t0 = time.time()
    for c in cases:
        d = tempfile.mkdtemp(prefix="segc-gpured-")
        try:
            ok, msg = M.run_case(c, d, not args.engine_only, not args.interp_only)
        except Exception as e:  # noqa: BLE001
            ok, msg = False, "harness: %s" % e
        print("%s %-16s %-44s %s%s" % ("ok  " if ok else "FAIL", c.op, c.label, msg,
                                       ("  [%s]" % d) if args.v or args.keep else ""))
        sys.stdout.flush()
        npass, nfail = npass + ok, nfail + (not ok)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    print("(%.1fs)" % (time.time() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
