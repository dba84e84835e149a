#!/usr/bin/env python3
"""tests/ops/test_ops_home.py -- the Mamba-HoME ops (ir/ops_home.def) against PyTorch.

pad_tokens (zero padding of token groups, -FLT_MAX masking of logit rows) and segment_mean
(group means over padded groups, the level-2 consecutive-token means), alone and inside a small
chain that exercises the template and the canon rewrite under fusion (a masked softmax); then
op 27 of the spec, the whole HoME layer (graphs/lib/home_blocks.json `home_layer`), against
the reference HoME of tests/reference/mamba_home.py.
Each case is compiled and run (`segc run`) and run through `segc interp`; both must match an
independent PyTorch implementation within max rel err 1e-4.

    tests/ops/test_ops_home.py [--only OP[,OP...]] [--interp-only] [--engine-only] [--keep] [-v]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
SEGC_TARGET (e.g. cuda:sm_90) compiles the engines for that target.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_ops as base  # noqa: E402  (Case, one, run_case, the driver)
import common  # noqa: E402  (on the path through test_ops)
import mamba_home as ref  # noqa: E402  (tests/reference/mamba_home.py)

LIB = os.path.join(HERE, "..", "..", "graphs", "lib", "home_blocks.json")

FLT_MAX = float(np.finfo(np.float32).max)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def ref_pad(x, axis, k, value):
    """torch: pad axis of x up to ceil(n/k)*k with value"""
    x = t(x)
    n = x.shape[axis]
    g = -(-n // k)
    shape = list(x.shape)
    shape[axis] = g * k - n
    return torch.cat([x, torch.full(shape, value, dtype=x.dtype)], dim=axis).numpy()


def ref_segmean(x, axis, s):
    x = t(x)
    ax = axis % x.dim()
    shape = list(x.shape)
    shape[ax:ax + 1] = [shape[ax] // s, s]
    return x.reshape(shape).mean(dim=ax + 1).numpy()


def cases_pad_tokens(rng):
    out = []
    specs = [((1, 6, 8), 1, 4, 0.0), ((2, 5, 3, 4), 2, 2, 0.0), ((1, 8, 5), 1, 4, 0.0),
             ((2, 7, 3), -1, 5, -FLT_MAX), ((1, 9, 4), 1, 16, 0.0), ((3, 1, 2), 0, 2, 1.5)]
    for i, (shape, ax, k, v) in enumerate(specs):
        x = base.randn(rng, shape)
        out.append(base.one("pad_tokens", "c%d %s axis=%d K=%d value=%g" % (i, shape, ax, k, v),
                            x, {"axis": ax, "group_size": k, "value": v},
                            ref_pad(x, ax, k, v)))
    return out


def cases_segment_mean(rng):
    out = []
    specs = [((1, 12, 5), 1, 3), ((2, 3, 8, 4), -2, 4), ((1, 6, 7), 1, 1), ((2, 10), 1, 10)]
    for i, (shape, ax, s) in enumerate(specs):
        x = base.randn(rng, shape)
        out.append(base.one("segment_mean", "c%d %s axis=%d segment=%d" % (i, shape, ax, s), x,
                            {"axis": ax, "segment": s}, ref_segmean(x, ax, s)))
    return out


def cases_chains(rng):
    """HoME's grouping: pad to groups, group mean (pads count), masked per-token softmax"""
    out = []
    n, k, d, m = 10, 4, 6, 3
    x = base.randn(rng, (1, n, d))
    keys = base.randn(rng, (1, 3, m, d))
    g = -(-n // k)
    xp = ref_pad(x, 1, k, 0.0)
    mu = ref_segmean(xp, 1, k)                                      # [1, g, d]
    lg = torch.matmul(t(xp).reshape(1, g, k, d), t(keys).transpose(-1, -2))  # [1,g,k,m]
    lg = lg.reshape(1, g * k, m)
    lg[:, n:, :] = -FLT_MAX
    a = lg.softmax(dim=-1).reshape(1, g, k, m)
    body = [{"name": "xp", "op": "pad_tokens", "in": ["x"], "attrs": {"group_size": k}},
            {"name": "mu", "op": "segment_mean", "in": ["xp"], "attrs": {"segment": k}},
            {"name": "xg", "op": "reshape", "in": ["xp"], "attrs": {"shape": [1, g, k, d]}},
            {"name": "kt", "op": "permute", "in": ["keys"], "attrs": {"perm": [0, 1, 3, 2]}},
            {"name": "lg", "op": "matmul", "in": ["xg", "kt"]},
            {"name": "lf", "op": "reshape", "attrs": {"shape": [1, g * k, m]}},
            {"name": "lc", "op": "slice", "attrs": {"axis": 1, "start": 0, "end": n}},
            {"name": "lm", "op": "pad_tokens", "attrs": {"group_size": k, "value": -FLT_MAX}},
            {"name": "l4", "op": "reshape", "attrs": {"shape": [1, g, k, m]}},
            {"name": "a", "op": "softmax", "attrs": {"axis": -1}},
            {"name": "mu2", "op": "mul", "in": ["mu", 2.0]}]
    out.append(base.Case("chain", "pad+group mean+masked softmax N=10 K=4",
                         [("x", x), ("keys", keys)], body, ["a", "mu2"], {},
                         [a.numpy(), mu * 2.0]))
    return out


def cases_home_layer(rng):
    """op 27 home_layer: the module of graphs/lib/home_blocks.json against the reference HoME
    (tests/reference/mamba_home.py) in float64, random weights under the public keys"""
    out = []
    # N, d, K, E, E2, S: padded groups, several groups, one full group, one padded group
    specs = [(10, 8, 4, 2, 4, 2), (37, 12, 8, 3, 6, 2), (16, 8, 16, 2, 4, 4), (5, 6, 8, 1, 2, 2)]
    for i, (n, d, k, e, e2, s) in enumerate(specs):
        torch.manual_seed(100 + i)
        m = ref.HoME(d, k, e, e2, s, 2)
        with torch.no_grad():
            for name, v in m.public_state("").items():
                if name.endswith("gamma") or name == "expert_gates":
                    v.copy_(t(base.randn(rng, tuple(v.shape), 0.5, 1.5)))
        x = base.randn(rng, (1, n, d))
        with torch.no_grad():
            want = m.double()(t(x).double()).numpy()
        w = {"mlp." + k2: v.detach().float().numpy().copy() for k2, v in
             m.public_state("").items()}
        body = [{"name": "mlp", "module": "home_layer", "in": ["x"],
                 "args": {"N": n, "d": d, "K": k, "E": e, "E2": e2, "S": s,
                          "h": int(d * 2 * 2 / 3)}}]
        out.append(base.Case("home_layer", "c%d N=%d d=%d K=%d E=%d E2=%d S=%d" %
                             (i, n, d, k, e, e2, s), [("x", x)], body, ["mlp"], w, [want]))
    return out


def graph_json(name, inputs, body, outputs):
    """common.graph_json, plus the HoME blocks library for module calls"""
    doc = _graph_json(name, inputs, body, outputs)
    if any("module" in n for n in body):
        doc["include"] = [os.path.abspath(LIB)]
    return doc


_graph_json = common.graph_json


def all_cases():
    rng = np.random.default_rng(4004)
    return (cases_pad_tokens(rng) + cases_segment_mean(rng) + cases_chains(rng) +
            cases_home_layer(rng))


def _compile_graph(graph, engine, extra=(), timeout=300):
    """common.compile_graph, plus --target=$SEGC_TARGET when set (e.g. cuda:sm_90)"""
    tgt = os.environ.get("SEGC_TARGET")
    return _compile(graph, engine, list(extra) + (["--target=" + tgt] if tgt else []), timeout)


_compile = common.compile_graph


if __name__ == "__main__":
    base.all_cases = all_cases
    common.graph_json = graph_json
    common.compile_graph = _compile_graph
    sys.exit(base.main())
