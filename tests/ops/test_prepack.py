#!/usr/bin/env python3
"""tests/ops/test_prepack.py -- load-time weight packing (codegen/prepack.c, --prepack=on|off).

Each case is a small graph whose templates re-lay a weight out: the Winograd filter transform
(wino_u), the direct conv's packed panels (wpack), the channels-last conv's packed lanes, the
matmul's packed B.  For each, against PyTorch (CPU, float32) within TOL (relative to max|ref|):
  - `--emit=kernels` of the default build lists the packing loop in a prepack kernel (the
    buffer's name inside a `<kernel>_pack` kernel, after the "; prepack kernels" header), and
    the engine's manifest has a `packed <bytes>` record; with --prepack=off neither; with
    --prepack=lean the packs larger than their weights (Winograd transforms, channels-last
    lanes padded to 16) stay in the run and the others move;
  - both engines match PyTorch, and each other bit for bit (the same loops, run earlier);
  - the arena of the packed engine is no larger than the other's;
  - weights reloaded through the ABI (tests/cuda/segc_api.py): weights A, run; weights B from
    a file, run (= PyTorch with B: a packed copy left from A fails this); A again from memory.
Also: --prepack and SEGC_PREPACK with a bad value are one-line usage errors (exit 2).
The ASan pass (SEGC_TEST_QUICK) runs every other case's packed engine through `segc run` (A,
then B, each a fresh engine), since an ASan engine does not load into this process.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "cuda"))
import common as cm  # noqa: E402
import segc_api  # noqa: E402

TOL = 1e-4


def conv_case(name, cin, cout, size, packed, k=3, s=1, ndhwc=False, env=None):
    def make(rng):
        x = rng.standard_normal((1, cin) + tuple(size)).astype(np.float32)
        w = (rng.standard_normal((cout, cin, k, k, k)) / np.sqrt(cin * k ** 3)).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        with torch.no_grad():
            y = F.conv3d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), s, k // 2)
        if ndhwc:
            x, y = x.transpose(0, 2, 3, 4, 1), y.permute(0, 2, 3, 4, 1)
        return np.ascontiguousarray(x), {"conv.weight": w, "conv.bias": b}, y.numpy()
    op = "conv3d_ndhwc" if ndhwc else "conv3d"
    body = [{"name": "conv", "op": op, "in": ["x"],
             "attrs": {"cout": cout, "kernel": k, "stride": s, "pad": k // 2, "bias": True}}]
    shape = (1,) + tuple(size) + (cin,) if ndhwc else (1, cin) + tuple(size)
    return name, shape, body, make, packed, env or {}


def linear_case(name, rows, cin, cout, packed):
    def make(rng):
        x = rng.standard_normal((1, rows, cin)).astype(np.float32)
        w = (rng.standard_normal((cout, cin)) / np.sqrt(cin)).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        y = F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))
        return x, {"fc.weight": w, "fc.bias": b}, y.numpy()
    body = [{"name": "fc", "op": "linear", "in": ["x"], "attrs": {"out": cout, "bias": True}}]
    return name, (1, rows, cin), body, make, packed, {}


DIRECT = {"SEGC_WINOGRAD": "0"}


def cases():
    return [
        conv_case("conv3d winograd c16->32 16^3", 16, 32, (16, 16, 16), "wino_u"),
        # rows of >= 32: the packed-panel form of the direct template
        conv_case("conv3d direct c16->24 4x5x36", 16, 24, (4, 5, 36), "wpack", env=DIRECT),
        conv_case("conv3d_ndhwc direct c20->36", 20, 36, (5, 6, 7), "wpack", ndhwc=True,
                  env=DIRECT),
        conv_case("conv3d_ndhwc winograd c16->32", 16, 32, (6, 6, 6), "clw_u", ndhwc=True),
        linear_case("linear 300x64->96", 300, 64, 96, "wpack"),
    ]


def emit_kernels(graph, extra, env):
    p = subprocess.run([cm.segc_path(), graph, "--emit=kernels"] + extra,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=120, env=dict(os.environ, **env))
    if p.returncode != 0:
        raise RuntimeError("--emit=kernels failed: " + p.stdout[-300:])
    return p.stdout


def pack_kernels(text):
    """the prepack kernels' text: everything after the header line"""
    at = text.find("; prepack kernels")
    return "" if at < 0 else text[at:]


def run_case(d, tag0, name, shape, body, make, packed, env):
    g = cm.graph_json("prepack", [("x", shape)], body, [body[-1]["name"]])
    gp = os.path.join(d, "g.json")
    with open(gp, "w") as f:
        json.dump(g, f)
    xa, wa, ya = make(np.random.default_rng(1))
    _, wb, _ = make(np.random.default_rng(2))
    # B's reference on A's input (make draws x first, so rebuild it from B's weights)
    with torch.no_grad():
        yb = reference(body, xa, wb)
    pa, pb = os.path.join(d, "a.safetensors"), os.path.join(d, "b.safetensors")
    cm.write_safetensors(pa, wa)
    cm.write_safetensors(pb, wb)
    on = pack_kernels(emit_kernels(gp, [], env))
    if packed not in on or "_pack " not in on:
        raise RuntimeError("no prepack kernel writing %s: %s" % (packed, on[:300] or "none"))
    if pack_kernels(emit_kernels(gp, ["--prepack=off"], env)):
        raise RuntimeError("--prepack=off still has prepack kernels")
    # lean: only packs no larger than their weights (a Winograd transform is 64/27 of them,
    # the channels-last lanes of 36 channels are padded to 48)
    grows = packed in ("wino_u", "clw_u") or "ndhwc" in name
    if (packed in pack_kernels(emit_kernels(gp, ["--prepack=lean"], env))) == grows:
        raise RuntimeError("--prepack=lean: %s %s" % (packed, "packed" if grows else "missing"))
    outs, arenas = {}, {}
    builds = (("on", []), ("off", ["--prepack=off"]))
    for tag, extra in builds[:1] if cm.QUICK else builds:
        eng = os.path.join(d, "%s-%s.so" % (tag0, tag))  # dlopen caches by path
        cm.compile_graph(gp, eng, extra, env=env)
        if cm.QUICK:  # the ASan pass: `segc run` (an ASan engine does not load into python)
            outs[tag], got_b = (segc_run(d, eng, w, xa) for w in (pa, pb))
            got_a = outs[tag]
        else:
            outs[tag], got_b, got_a, arenas[tag] = abi_runs(eng, tag, xa, pa, pb)
        for what, got, ref in (("A", outs[tag], ya), ("B after A", got_b, yb),
                               ("A again from memory", got_a, ya)):
            err = cm.max_rel_err(got, ref)
            if not err <= TOL:
                raise RuntimeError("%s, weights %s: max rel err %.2e > %g" % (tag, what, err, TOL))
    if cm.QUICK:
        return "segc run only (packed engine)"
    if not np.array_equal(outs["on"], outs["off"]):
        raise RuntimeError("packed and unpacked engines differ")
    if arenas["on"] > arenas["off"]:
        raise RuntimeError("arena grew with prepack: %d > %d" % (arenas["on"], arenas["off"]))
    return "arena %d -> %d bytes" % (arenas["off"], arenas["on"])


def abi_runs(eng, tag, xa, pa, pb):
    """through the ABI: the manifest's packed record, then weights A, B, A again (from
    memory) on one engine; (out A, out B, out A again, arena bytes)"""
    e = segc_api.Engine(eng)
    try:
        manifest = e.api.manifest(e.e).decode()
        if ("\npacked " in manifest) != (tag == "on"):
            raise RuntimeError("%s: manifest packed record wrong:\n%s" % (tag, manifest))
        e.load_weights(pa)
        ya = e.run([xa])[0]
        e.load_weights(pb)
        yb = e.run([xa])[0]
        with open(pa, "rb") as f:
            e.load_weights(f.read())
        return ya, yb, e.run([xa])[0], e.arena_bytes()
    finally:
        e.close()


def segc_run(d, eng, weights, x):
    xp, yp = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
    cm.write_npy(xp, x)
    cm.run_engine(eng, weights, xp, yp)
    return cm.read_npy(yp)


def reference(body, x, w):
    n = body[0]
    if n["op"] == "linear":
        return F.linear(torch.from_numpy(x), torch.from_numpy(w["fc.weight"]),
                        torch.from_numpy(w["fc.bias"])).numpy()
    a = n["attrs"]
    xt = torch.from_numpy(x)
    if n["op"] == "conv3d_ndhwc":
        xt = xt.permute(0, 4, 1, 2, 3)
    y = F.conv3d(xt, torch.from_numpy(w["conv.weight"]), torch.from_numpy(w["conv.bias"]),
                 a["stride"], a["pad"])
    if n["op"] == "conv3d_ndhwc":
        y = y.permute(0, 2, 3, 4, 1)
    return y.contiguous().numpy()


def bad_flags(d):
    """one-line usage errors for a bad --prepack or SEGC_PREPACK"""
    g = os.path.join(d, "g.json")
    with open(g, "w") as f:
        json.dump(cm.graph_json("p", [("x", (2, 3))], [{"name": "y", "op": "relu", "in": ["x"]}],
                                ["y"]), f)
    for extra, env, want in ((["--prepack=maybe"], {}, "--prepack expects on, lean or off"),
                             ([], {"SEGC_PREPACK": "1"}, "SEGC_PREPACK expects on, lean or off")):
        p = subprocess.run([cm.segc_path(), g, "-o", os.path.join(d, "p.so")] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=dict(os.environ, **env), timeout=60)
        if p.returncode != 2 or want not in p.stderr or p.stderr.count("\n") > 2:
            raise RuntimeError("%s %s: exit %d, %r" % (extra, env, p.returncode, p.stderr))


def main():
    npass = nfail = 0
    with tempfile.TemporaryDirectory(prefix="segc-prepack-") as d:
        for i, c in enumerate(cases()):
            if sys.argv[1:] and not any(a in c[0] for a in sys.argv[1:]):
                continue
            if cm.QUICK and i % 2:
                continue  # the ASan pass: every other case
            try:
                info = run_case(d, "c%d" % i, *c)
                print("PASS %-34s %s" % (c[0], info))
                npass += 1
            except Exception as ex:  # noqa: BLE001 -- report and go on
                print("FAIL %-34s %s" % (c[0], ex))
                nfail += 1
        try:
            bad_flags(d)
            print("PASS bad --prepack / SEGC_PREPACK values")
            npass += 1
        except Exception as ex:  # noqa: BLE001
            print("FAIL bad flags: %s" % ex)
            nfail += 1
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
