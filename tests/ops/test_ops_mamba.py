#!/usr/bin/env python3
"""tests/ops/test_ops_mamba.py -- the SegMamba-family ops (ir/ops_mamba.def) and the modules of
graphs/lib/mamba.json against the PyTorch oracles of tests/reference/mamba_ref.py.

Each case is a tiny graph in a temporary folder (with lib/ linked to graphs/lib so that
"include": ["mamba.json"] resolves), random inputs and weights from a seeded generator (b_dt drawn
as spec 1.4 recommends so the recurrence is exercised), compiled and run (`segc run`) and run
through `segc interp`; both must match PyTorch within max|a-b| / max|ref| <= 1e-4.

    tests/ops/test_ops_mamba.py [--only OP[,OP...]] [--interp-only] [--engine-only] [--keep] [-v]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import common  # noqa: E402
import mamba_ref as R  # noqa: E402

torch.set_num_threads(1)
LIB = os.path.join(common.ROOT, "graphs", "lib")


class Case:
    def __init__(self, op, label, inputs, body, outputs, weights, ref, params=None, args=()):
        self.op, self.label = op, label
        self.inputs, self.body, self.outputs = inputs, body, outputs
        self.weights, self.ref, self.params, self.args = weights, ref, params, list(args)


def np32(t):
    return t.detach().numpy().astype(np.float32)


def W(name, shape):
    return {"name": name, "op": "weight", "attrs": {"shape": list(shape)}}


ORDERS = {  # label -> (attrs over a (2,3,4) volume, pos function)
    "fwd": ({}, lambda L: R.order_forward(L)),
    "flip": ({"flip": True}, lambda L: R.order_flip(L)),
    "slices3": ({"nslices": 3}, lambda L: R.order_interleave(L, 3)),
    "p2": ({"dims": [2, 3, 4], "perm": [1, 0, 2]}, lambda L: R.tri_orders(2, 3, 4)[1]),
    "p3": ({"dims": [2, 3, 4], "perm": [2, 1, 0]}, lambda L: R.tri_orders(2, 3, 4)[2]),
    "p3flip": ({"dims": [2, 3, 4], "perm": [2, 1, 0], "flip": True},
               lambda L: R.tri_orders(2, 3, 4)[2].flip(0)),
}


def cases_scan(g):
    cs = []
    nb, L = 2, 24
    # di: 8, 32 and 12 run 8, 16 and 4 channel lanes on the CPU (tmpl_scan.c), 6 the scalar walk
    for label, (attrs, posf) in ORDERS.items():
        for ns, di in ([(16, 8), (5, 8), (16, 32), (5, 12), (16, 6)] if label in ("fwd", "p3flip")
                       else [(16, 8)]):
            u = torch.randn(nb, L, di, generator=g)
            dlt = 0.5 * torch.randn(nb, L, di, generator=g)
            bm = torch.randn(nb, L, ns, generator=g)
            cm = torch.randn(nb, L, ns, generator=g)
            z = torch.randn(nb, L, di, generator=g)
            alog = torch.log(torch.arange(1, ns + 1).float()).repeat(di, 1) + \
                0.1 * torch.randn(di, ns, generator=g)
            dd = 1 + 0.2 * torch.randn(di, generator=g)
            dt = torch.exp(torch.rand(di, generator=g) * 4.6 - 6.9)
            db = dt + torch.log(-torch.expm1(-dt))
            pos = posf(L)
            tr = lambda a: a[:, pos].transpose(1, 2)  # noqa: E731 token-major -> [B, C, L] in order
            yg = R.selective_scan_ref(tr(u), tr(dlt), -torch.exp(alog), tr(bm), tr(cm), dd,
                                      tr(z), db)
            y = R.selective_scan_ref(tr(u), tr(dlt), -torch.exp(alog), tr(bm), tr(cm), dd, None,
                                     db)
            back = lambda a: R.from_order(a.transpose(1, 2), pos)  # noqa: E731
            body = [W("A_log", (di, ns)), W("D", (di,)), W("dbias", (di,)),
                    {"name": "scan", "op": "selective_scan",
                     "in": ["u", "delta", "A_log", "B", "C", "D", "dbias", "z"], "attrs": attrs,
                     "out": ["yg", "y"]}]
            cs.append(Case("selective_scan", "%s N=%d di=%d" % (label, ns, di),
                           [("u", np32(u)), ("delta", np32(dlt)), ("B", np32(bm)), ("C", np32(cm)),
                            ("z", np32(z))], body, ["yg", "y"],
                           {"A_log": np32(alog), "D": np32(dd), "dbias": np32(db)},
                           [np32(back(yg)), np32(back(y))]))
    return cs


def cases_conv1d(g):
    cs = []
    nb, L = 2, 24
    # c: 6 is the scalar walk, 16 and 20 run 16 and 4 channel lanes on the CPU
    for label, (attrs, posf) in ORDERS.items():
        for act, c in ([(True, 6), (False, 6), (True, 16), (False, 20)] if label in ("fwd", "p2")
                       else [(True, 6), (True, 16)]):
            x = torch.randn(nb, L, c, generator=g)
            w = torch.randn(c, 1, 4, generator=g)
            b = torch.randn(c, generator=g)
            pos = posf(L)
            ref = R.causal_conv1d_ref(x[:, pos].transpose(1, 2), w, b, act)
            ref = R.from_order(ref.transpose(1, 2), pos)
            body = [W("w", (c, 1, 4)), W("b", (c,)),
                    {"op": "causal_conv1d", "in": ["x", "w", "b"], "attrs": dict(attrs, silu=act),
                     "out": "y"}]
            cs.append(Case("causal_conv1d", "%s silu=%d c=%d" % (label, act, c),
                           [("x", np32(x))], body, ["y"], {"w": np32(w), "b": np32(b)}, [np32(ref)]))
    return cs


def cases_norms(g):
    cs = []
    x = torch.randn(2, 7, 24, generator=g) * 3
    w = torch.randn(24, generator=g)
    cs.append(Case("rms_norm", "[2,7,24]", [("x", np32(x))],
                   [{"name": "n", "op": "rms_norm", "in": ["x"]}], ["n"], {"n.weight": np32(w)},
                   [np32(R.rms_norm_ref(x, w))]))
    cs.append(Case("rms_norm_l2", "[2,7,24]", [("x", np32(x))],
                   [{"name": "n", "op": "rms_norm_l2", "in": ["x"]}], ["n"], {"n.gamma": np32(w)},
                   [np32(R.rms_norm_l2_ref(x, w))]))
    for alpha, clamp in ((0.7, True), (3.0, True), (0.01, True), (3.0, False)):
        a = torch.tensor([alpha])
        b = torch.randn(24, generator=g)
        cs.append(Case("dyt", "alpha=%g clamp=%d" % (alpha, clamp), [("x", np32(x))],
                       [{"name": "n", "op": "dyt", "in": ["x"], "attrs": {"clamp": clamp}}], ["n"],
                       {"n.alpha": np32(a), "n.weight": np32(w), "n.bias": np32(b)},
                       [np32(R.dyt_ref(x, a, w, b, clamp))]))
    return cs


def separated_tokens(g, nb, L, c):
    """tokens whose l2 norms are well separated (distinct scale per token), so that no
    reduction-order rounding can flip the top-k set"""
    x = torch.randn(nb, L, c, generator=g)
    x = x / x.norm(dim=-1, keepdim=True)
    scale = torch.stack([torch.randperm(L, generator=g) for _ in range(nb)]).float() / L + 1
    return x * scale[..., None]


def cases_prune(g):
    cs = []
    nb, L, c = 2, 24, 5
    x = separated_tokens(g, nb, L, c)
    cs.append(Case("token_score", "[2,24,5]", [("x", np32(x))],
                   [{"op": "token_score", "in": ["x"], "out": "s"}], ["s"], {},
                   [np32(R.token_score_ref(x))]))
    for label in ("fwd", "p2", "p3", "slices3", "flip"):
        attrs, posf = ORDERS[label]
        for keep, summ in ((0.5, "mean"), (0.7, "mean"), (0.3, "score"), (1.0, "mean"),
                           (0.01, "mean")):
            if label != "fwd" and keep not in (0.5, 0.7):
                continue
            rows, idx = R.token_prune_ref(x, keep, posf(L), summ)
            body = [{"op": "token_score", "in": ["x"], "out": "s"},
                    {"op": "token_prune", "in": ["x", "s"],
                     "attrs": dict(attrs, keep=keep, summary=summ), "out": ["rows", "idx"]}]
            cs.append(Case("token_prune", "%s keep=%g %s" % (label, keep, summ),
                           [("x", np32(x))], body, ["rows", "idx"], {},
                           [np32(rows), np32(idx)]))
    # ties: equal norms everywhere, lower raster index wins
    xt = torch.ones(1, 10, 3)
    xt[0, 7] *= 2
    rows, idx = R.token_prune_ref(xt, 0.5)
    cs.append(Case("token_prune", "ties keep=0.5", [("x", np32(xt))],
                   [{"op": "token_score", "in": ["x"], "out": "s"},
                    {"op": "token_prune", "in": ["x", "s"], "attrs": {"keep": 0.5},
                     "out": ["rows", "idx"]}], ["rows", "idx"], {}, [np32(rows), np32(idx)]))
    for keep in (0.5, 1.0):
        rows, idx = R.token_prune_ref(x, keep, R.tri_orders(2, 3, 4)[1])
        y = torch.randn(rows.shape, generator=g)
        ref = R.token_unpool_ref(y, idx, L)
        body = [{"op": "token_score", "in": ["x"], "out": "s"},
                {"op": "token_prune", "in": ["x", "s"],
                 "attrs": {"keep": keep, "dims": [2, 3, 4], "perm": [1, 0, 2]},
                 "out": ["rows", "idx"]},
                {"op": "token_unpool", "in": ["y", "idx", "x"], "out": "o"}]
        cs.append(Case("token_unpool", "p2 keep=%g" % keep, [("x", np32(x)), ("y", np32(y))],
                       body, ["o"], {}, [np32(ref)]))
    return cs


def module_case(g, label, module, call, x, ref_fn, args, prefix="mamba"):
    sd = R.random_mamba_state(module, g)
    with torch.no_grad():
        ref = ref_fn(x)
    weights = {prefix + "." + k: np32(v) for k, v in sd.items()}
    body = [dict({"name": prefix, "module": call, "args": args})]
    return Case(call, label, [("x", np32(x))], body, [prefix], weights, [np32(ref)])


def cases_modules(g):
    cs = []
    x = torch.randn(1, 40, 32, generator=g)
    m = R.Mamba(32)
    cs.append(module_case(g, "tokens [1,40,32]", m, "mamba", x, m, {"d_model": 32}))
    m = R.Mamba(32)
    xv = torch.randn(1, 24, 32, generator=g)
    pos = R.tri_orders(2, 3, 4)[2]
    cs.append(module_case(g, "[1,24,32] order P3", m, "mamba", xv, lambda a: m(a, pos),
                          {"d_model": 32, "dims": [2, 3, 4], "perm": [2, 1, 0]}))
    m = R.Mamba(24)
    xt = torch.randn(2, 24, 24, generator=g)
    cs.append(module_case(g, "TriMamba [2,24,24] vol (2,3,4)", m, "mamba_tri", xt,
                          lambda a: R.tri_mamba(m, a, (2, 3, 4)),
                          {"d_model": 24, "vol": [2, 3, 4]}))
    m = R.MambaV3(32, nslices=4)
    cs.append(module_case(g, "v3 [1,40,32] nslices=4", m, "mamba_v3", x, m,
                          {"d_model": 32, "nslices": 4}))
    # pre-gate module with the caller's own in_proj/out_proj, orders P1 + P2 summed
    m = R.Mamba(16)
    sd = R.random_mamba_state(m, g)
    xp = torch.randn(1, 24, 16, generator=g)
    with torch.no_grad():
        ref = m(xp) + m(xp, R.tri_orders(2, 3, 4)[1])
    # one call per order needs its own weights: give the second call a copy under "mb"
    weights = {}
    for p in ("mamba", "mb"):
        weights.update({p + "." + k: np32(v) for k, v in sd.items()
                        if not k.startswith(("in_proj", "out_proj"))})
    weights["mamba.in_proj.weight"] = np32(sd["in_proj.weight"])
    weights["mamba.out_proj.weight"] = np32(sd["out_proj.weight"])
    body = [{"name": "mamba.in_proj", "op": "linear", "in": ["x"],
             "attrs": {"out": 64, "bias": False}},
            {"op": "slice", "in": ["mamba.in_proj"], "attrs": {"axis": 2, "start": 0, "end": 32},
             "out": "xs"},
            {"op": "slice", "in": ["mamba.in_proj"], "attrs": {"axis": 2, "start": 32, "end": 64},
             "out": "zs"},
            {"name": "mamba", "module": "mamba_pregate", "in": ["xs", "zs"],
             "args": {"d_model": 16}},
            {"name": "mb", "module": "mamba_pregate", "in": ["xs", "zs"],
             "args": {"d_model": 16, "dims": [2, 3, 4], "perm": [1, 0, 2]}},
            {"op": "add", "in": ["mamba", "mb"], "out": "ys"},
            {"op": "silu", "in": ["zs"], "out": "g"},
            {"op": "mul", "in": ["ys", "g"], "out": "yg"},
            {"name": "mamba.out_proj", "op": "linear", "in": ["yg"],
             "attrs": {"out": 16, "bias": False}, "out": "y"}]
    cs.append(Case("mamba_pregate", "P1+P2 summed [1,24,16]", [("x", np32(xp))], body, ["y"],
                   weights, [np32(ref)]))
    # whole V2 MambaLayer, NCDHW, unpruned and pruned (well separated token norms)
    vol = (2, 3, 4)
    tok = separated_tokens(g, 2, 24, 16)
    xv = tok.transpose(1, 2).reshape(2, 16, *vol)
    for keep in (None, 0.5, 0.7, 1.0):
        m = R.TriMambaLayer(16, keep)
        call = "trimamba" if keep is None else "trimamba_pruned"
        args = {"d_model": 16, "vol": list(vol)}
        if keep is not None:
            args["keep"] = keep
        cs.append(module_case(g, "[2,16,2,3,4] keep=%s" % keep, m, call, xv, m, args,
                              prefix="layer"))
    return cs


def all_cases():
    g = torch.Generator().manual_seed(1234)
    return cases_scan(g) + cases_conv1d(g) + cases_norms(g) + cases_prune(g) + cases_modules(g)


def run_case(c, d, interp, engine):
    graph = os.path.join(d, "graph.json")
    os.symlink(LIB, os.path.join(d, "lib"))
    doc = common.graph_json("op_" + c.op, [(n, a.shape) for n, a in c.inputs], c.body, c.outputs)
    doc["include"] = ["mamba.json"]
    with open(graph, "w") as f:
        json.dump(doc, f, indent=1)
    weights = os.path.join(d, "w.safetensors")
    common.write_safetensors(weights, c.weights if c.weights else {})
    inputs = {}
    for n, a in c.inputs:
        inputs[n] = os.path.join(d, "in_%s.npy" % n)
        common.write_npy(inputs[n], a)
    msgs, ok = [], True
    for how in (["interp"] if interp else []) + (["engine"] if engine else []):
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
            worst = max(worst, common.max_rel_err(common.read_npy(outs[n]), ref))
        if not worst <= common.TOL:
            ok = False
        msgs.append("%s err %.2e" % (how, worst))
    return ok, ", ".join(msgs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated op or module names")
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
        d = tempfile.mkdtemp(prefix="segc-mamba-")
        try:
            ok, msg = run_case(c, d, not args.engine_only, not args.interp_only)
        except Exception as e:  # noqa: BLE001
            ok, msg = False, "harness: %s" % e
        print("%s %-16s %-34s %s%s" % ("ok  " if ok else "FAIL", c.op, c.label, msg,
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
