#!/usr/bin/env python3
"""tests/ops/test_ops_m4fuse.py -- the M4Fuse ops and blocks against independent PyTorch code.

Ops (ir/ops_m4fuse.def): select_by_index (per-sample expert choice by an i64 label input),
conv3d_w (a conv whose weight is shared by several calls), layer_norm_w (a layer norm applied
twice with the same weights), group_fold / group_unfold (channel groups <-> batch).
Blocks (graphs/lib/m4fuse_blocks.json): petalo (PetaloMixer), peu (shared + routed experts,
both routes in one batch), cs_bridge (CSBridge over five scales).  Each case runs the compiled
engine (`segc run`) AND the reference interpreter (`segc interp`) and compares both with the
float64 PyTorch result of tests/reference/m4fuse.py or inline torch code: max rel err <= 1e-4.
Bad labels: a label outside [0, M) makes `segc run` and `segc interp` exit 1 with one line
that names the input.

    tests/ops/test_ops_m4fuse.py [--only SUBSTRING] [--keep]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import common  # noqa: E402
import m4fuse as ref  # noqa: E402

TOL = 1e-4


def segc():
    b = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def doc(name, inputs, body, outputs):
    """inputs: [(name, shape, dtype)]"""
    return {"format": "segc-graph/1", "name": name, "include": ["m4fuse_blocks.json"],
            "inputs": [{"name": n, "dtype": dt, "shape": list(s)} for n, s, dt in inputs],
            "body": body, "outputs": list(outputs)}


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600,
                          universal_newlines=True)


def check(work, name, g, weights, inputs, want):
    """Compile + run + interp; inputs / weights: name -> array; want: list of arrays."""
    gp = os.path.join(work, name + ".json")
    with open(gp, "w") as f:
        json.dump(g, f)
    wp = os.path.join(work, name + ".safetensors")
    common.write_safetensors(wp, {k: np.ascontiguousarray(v, dtype=np.float32)
                                  for k, v in weights.items()})
    ins = []
    for k, v in inputs.items():
        p = os.path.join(work, "%s_%s.npy" % (name, k))
        common.write_npy(p, v)
        ins += ["--input", "%s=%s" % (k, p)]
    outs = [os.path.join(work, "%s_out%d.npy" % (name, i)) for i in range(len(want))]
    outi = [os.path.join(work, "%s_iout%d.npy" % (name, i)) for i in range(len(want))]
    eng = os.path.join(work, name + ".so")
    p = run([segc(), gp, "-o", eng])
    if p.returncode:
        return False, "compile: " + p.stderr.strip()[-300:]
    names = [o if isinstance(o, str) else o["name"] for o in g["outputs"]]
    oargs = sum((["--output", "%s=%s" % (n, o)] for n, o in zip(names, outs)), [])
    p = run([segc(), "run", eng, "--weights", wp] + ins + oargs)
    if p.returncode:
        return False, "run: " + p.stderr.strip()[-300:]
    oargs = sum((["--output", "%s=%s" % (n, o)] for n, o in zip(names, outi)), [])
    p = run([segc(), "interp", gp, "--weights", wp] + ins + oargs)
    if p.returncode:
        return False, "interp: " + p.stderr.strip()[-300:]
    e1 = max(common.max_rel_err(common.read_npy(o), w) for o, w in zip(outs, want))
    e2 = max(common.max_rel_err(common.read_npy(o), w) for o, w in zip(outi, want))
    return e1 <= TOL and e2 <= TOL, "engine %.2e, interp %.2e" % (e1, e2)


def bad_label(work, name, g, weights, inputs, label_input):
    """inputs hold an out-of-range label: run and interp must exit 1 with one line naming it."""
    gp = os.path.join(work, name + ".json")
    with open(gp, "w") as f:
        json.dump(g, f)
    wp = os.path.join(work, name + ".safetensors")
    common.write_safetensors(wp, {k: np.ascontiguousarray(v, dtype=np.float32)
                                  for k, v in weights.items()})
    ins = []
    for k, v in inputs.items():
        p = os.path.join(work, "%s_%s.npy" % (name, k))
        common.write_npy(p, v)
        ins += ["--input", "%s=%s" % (k, p)]
    eng = os.path.join(work, name + ".so")
    p = run([segc(), gp, "-o", eng])
    if p.returncode:
        return False, "compile: " + p.stderr.strip()[-300:]
    out = ["--output", os.path.join(work, name + "_o.npy")]
    msgs = []
    for cmd in ([segc(), "run", eng, "--weights", wp], [segc(), "interp", gp, "--weights", wp]):
        p = run(cmd + ins + out)
        lines = p.stderr.strip().splitlines()
        if p.returncode != 1 or len(lines) != 1 or ("'%s'" % label_input) not in lines[0]:
            return False, "%s: exit %d, stderr %r" % (cmd[1], p.returncode, p.stderr[-300:])
        msgs.append(lines[0])
    return True, " | ".join(msgs)


def t64(a):
    return torch.from_numpy(np.asarray(a)).double()


# ---- cases ----

def case_select(rng, M, N, shape, route):
    xs = [rng.standard_normal((N,) + shape).astype(np.float32) for _ in range(M)]
    r = np.array(route, dtype=np.int64)
    inputs = [("route", (N,), "i64")] + [("x%d" % i, (N,) + shape, "f32") for i in range(M)]
    body = [{"name": "sel", "op": "select_by_index", "in": ["route"] + ["x%d" % i for i in range(M)]},
            {"name": "y", "op": "add", "in": ["sel", 0.5]}]
    want = np.stack(xs)[r, np.arange(N)] + 0.5
    ins = {"route": r}
    ins.update({"x%d" % i: x for i, x in enumerate(xs)})
    return doc("sel", inputs, body, ["y"]), {}, ins, [want]


def case_conv_w(rng):
    a = rng.standard_normal((2, 2, 9, 8, 7)).astype(np.float32)
    b = rng.standard_normal((2, 2, 5, 6, 4)).astype(np.float32)
    w = rng.standard_normal((1, 2, 7, 7, 7)).astype(np.float32) * 0.1
    body = [{"name": "w", "op": "weight", "attrs": {"shape": [1, 2, 7, 7, 7]}},
            {"name": "ca", "op": "conv3d_w", "in": ["a", "w"], "attrs": {"cout": 1, "kernel": 7, "pad": 3}},
            {"name": "sa", "op": "sigmoid"},
            {"name": "cb", "op": "conv3d_w", "in": ["b", "w"], "attrs": {"cout": 1, "kernel": 7, "pad": 3}}]
    wa = torch.sigmoid(F.conv3d(t64(a), t64(w), padding=3)).numpy()
    wb = F.conv3d(t64(b), t64(w), padding=3).numpy()
    g = doc("convw", [("a", a.shape, "f32"), ("b", b.shape, "f32")], body, ["sa", "cb"])
    return g, {"w": w}, {"a": a, "b": b}, [wa, wb]


def case_ln_w(rng):
    x = rng.standard_normal((2, 11, 12)).astype(np.float32)
    w = (1 + 0.3 * rng.standard_normal(12)).astype(np.float32)
    bb = (0.3 * rng.standard_normal(12)).astype(np.float32)
    body = [{"name": "norm.weight", "op": "weight", "attrs": {"shape": [12]}},
            {"name": "norm.bias", "op": "weight", "attrs": {"shape": [12]}},
            {"name": "l1", "op": "layer_norm_w", "in": ["x", "norm.weight", "norm.bias"]},
            {"name": "s", "op": "mul", "in": ["l1", 3.0]},
            {"name": "l2", "op": "layer_norm_w", "in": ["s", "norm.weight", "norm.bias"]}]
    y1 = F.layer_norm(t64(x), (12,), t64(w), t64(bb), 1e-5)
    y2 = F.layer_norm(3 * y1, (12,), t64(w), t64(bb), 1e-5)
    g = doc("lnw", [("x", x.shape, "f32")], body, ["l1", "l2"])
    return g, {"norm.weight": w, "norm.bias": bb}, {"x": x}, [y1.numpy(), y2.numpy()]


def case_fold(rng):
    x = rng.standard_normal((2, 10, 12)).astype(np.float32)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    body = [{"name": "f", "op": "group_fold", "in": ["x"], "attrs": {"groups": 4}},
            {"name": "lin", "op": "linear", "attrs": {"out": 5, "bias": False}},
            {"name": "u", "op": "group_unfold", "attrs": {"groups": 4}}]
    parts = torch.chunk(t64(x), 4, dim=2)
    y = torch.cat([p @ t64(w).T for p in parts], dim=2)
    f = torch.cat([p for p in parts], 0)  # not the fold order; fold is checked through y
    del f
    g = doc("fold", [("x", x.shape, "f32")], body, ["u"])
    return g, {"lin.weight": w}, {"x": x}, [y.numpy()]


def sd_np(mod):
    return {k: v.float().numpy() for k, v in mod.state_dict().items()}


def case_petalo(seed, cin, cout, N, dhw):
    gen = torch.Generator().manual_seed(seed)
    mod = ref.randomize(ref.PetaloMixer(cin, cout), gen).double()
    x = torch.randn((N, cin) + dhw, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = mod(x).numpy()
    body = [{"name": "mix", "module": "petalo", "in": ["x"],
             "args": {"cin": cin, "cout": cout, "N": N, "D": dhw[0], "H": dhw[1], "W": dhw[2]}}]
    w = {"mix." + k: v for k, v in sd_np(mod).items()}
    g = doc("petalo", [("x", (N, cin) + dhw, "f32")], body, ["mix"])
    return g, w, {"x": x.float().numpy()}, [y]


def case_peu(seed, cin, cout, M, route, dhw):
    gen = torch.Generator().manual_seed(seed)
    mod = ref.randomize(ref.PEU(cin, cout, M), gen).double()
    N = len(route)
    x = torch.randn((N, cin) + dhw, generator=gen, dtype=torch.float64)
    r = np.array(route, dtype=np.int64)
    with torch.no_grad():
        y = mod(x, torch.from_numpy(r)).numpy()
    body = [{"name": "ex", "module": "peu", "in": ["x", "route"],
             "args": {"cin": cin, "cout": cout, "M": M, "N": N, "D": dhw[0], "H": dhw[1],
                      "W": dhw[2]}}]
    w = {"ex." + k: v for k, v in sd_np(mod).items()}
    g = doc("peu", [("x", (N, cin) + dhw, "f32"), ("route", (N,), "i64")], body, ["ex"])
    return g, w, {"x": x.float().numpy(), "route": r}, [y]


def case_bridge(seed, cs, N, sizes):
    gen = torch.Generator().manual_seed(seed)
    mod = ref.randomize(ref.CSBridge(cs), gen).double()
    ts = [torch.randn((N, c) + s, generator=gen, dtype=torch.float64) for c, s in zip(cs, sizes)]
    with torch.no_grad():
        ys = [y.numpy() for y in mod(ts)]
    args = {"C%d" % (i + 1): c for i, c in enumerate(cs)}
    args["N"] = N
    body = [{"name": "fbb", "module": "cs_bridge", "in": ["t%d" % (i + 1) for i in range(5)],
             "args": args, "out": ["o1", "o2", "o3", "o4", "o5"]}]
    w = {"fbb." + k: v for k, v in sd_np(mod).items()}
    inputs = [("t%d" % (i + 1), (N, c) + s, "f32") for i, (c, s) in enumerate(zip(cs, sizes))]
    g = doc("bridge", inputs, body, ["o1", "o2", "o3", "o4", "o5"])
    return g, w, {"t%d" % (i + 1): t.float().numpy() for i, t in enumerate(ts)}, ys


def case_list(rng):
    """(label, maker): maker() -> (graph, weights, inputs, wanted outputs); rng drawn in order"""
    return [
        ("select_by_index M=1", lambda: case_select(rng, 1, 2, (3, 4, 5), [0, 0])),
        ("select_by_index M=2 both routes", lambda: case_select(rng, 2, 3, (5, 3, 4, 7), [1, 0, 1])),
        ("select_by_index M=3 [N,1]-free rank 2", lambda: case_select(rng, 3, 4, (9,), [2, 0, 1, 2])),
        ("conv3d_w shared by two calls", lambda: case_conv_w(rng)),
        ("layer_norm_w applied twice", lambda: case_ln_w(rng)),
        ("group_fold + linear + group_unfold", lambda: case_fold(rng)),
        ("petalo 16->24 N=2 3x4x5", lambda: case_petalo(11, 16, 24, 2, (3, 4, 5))),
        ("petalo 8->8 N=1 2x2x3", lambda: case_petalo(12, 8, 8, 1, (2, 2, 3))),
        ("peu M=2 routes [1,0]", lambda: case_peu(13, 8, 12, 2, [1, 0], (2, 3, 2))),
        ("peu M=4 routes [3,1,0]", lambda: case_peu(14, 8, 8, 4, [3, 1, 0], (2, 2, 2))),
        ("cs_bridge 5 scales", lambda: case_bridge(15, [4, 8, 12, 16, 24], 2,
                                                   [(16, 12, 8), (8, 6, 4), (4, 3, 2), (2, 2, 1), (1, 1, 1)])),
    ]


def cases():
    """The compiled cases as test_ops.Case objects, for tests/cuda/gpu_prep.py (`make test-gpu`):
    each carries its own graph document (`doc`: i64 inputs, the blocks' include by absolute
    path), which the common graph_json could not write."""
    import test_ops as base  # Case; imported here, main() does not need it
    rng = np.random.default_rng(7)
    out = []
    for name, make in case_list(rng):
        g, w, ins, want = make()
        g = dict(g, include=[os.path.join(ROOT, "graphs", "lib", f) for f in g["include"]])
        inputs = [(i["name"], ins[i["name"]]) for i in g["inputs"]]
        outs = [o if isinstance(o, str) else o["name"] for o in g["outputs"]]
        wts = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()}
        c = base.Case(name.split()[0], name, inputs, g["body"], outs, wts, want)
        c.doc = g
        out.append(c)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    work = tempfile.mkdtemp(prefix="segc-ops-m4fuse-")
    os.makedirs(os.path.join(work, "lib"))
    for f in os.listdir(os.path.join(ROOT, "graphs", "lib")):
        shutil.copy(os.path.join(ROOT, "graphs", "lib", f), os.path.join(work, "lib", f))
    cases = case_list(rng)
    npass = nfail = 0
    try:
        for name, make in cases:
            if args.only and args.only not in name:
                continue
            try:
                g, w, ins, want = make()
                ok, msg = check(work, name.split()[0], g, w, ins, want)
            except Exception as e:  # noqa: BLE001
                ok, msg = False, "%s: %s" % (type(e).__name__, e)
            print("%s %s: %s" % ("ok  " if ok else "FAIL", name, msg), flush=True)
            npass += ok
            nfail += not ok
        # bad labels
        for name, label, M in (("bad label 2 of M=2", 2, 2), ("bad label -1 of M=1", -1, 1)):
            if args.only and args.only not in name:
                continue
            g, w, ins, _ = case_select(rng, M, 2, (3,), [0, 0])
            ins["route"] = np.array([0, label], dtype=np.int64)
            try:
                ok, msg = bad_label(work, "bad%d" % M, g, w, ins, "route")
            except Exception as e:  # noqa: BLE001
                ok, msg = False, "%s: %s" % (type(e).__name__, e)
            print("%s %s: %s" % ("ok  " if ok else "FAIL", name, msg), flush=True)
            npass += ok
            nfail += not ok
    finally:
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
