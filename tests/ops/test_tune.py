#!/usr/bin/env python3
"""tests/ops/test_tune.py -- tuning files and `segc tune` (docs/tune.md) on the CPU.

A graph of two 3^3 convs (16 -> 16 with bias + ReLU, 16 -> 24 with a residual-free sigmoid
gate) and an elementwise tail, compared with PyTorch (F.conv3d, relu, sigmoid) within TOL:
  keys       `--emit=keys`: one line per kernel, name, 16 hex digits, key; the two convs' keys
             differ, a second copy of the first conv (same shapes, same fused ops) shares its
             key; the keys are the same under other knobs, the fingerprints of the convs not
  perkernel  a tuning file forcing Winograd on conv 1 and off on conv 2: --emit=kernels shows
             the Winograd scratch (wino_v) in conv 1's kernel only; the same with
             SEGC_WINOGRAD=0 in the environment (the file's entry wins for its kernel) and with
             SEGC_WINOGRAD=1 (conv 2's entry turns it off); the engine matches PyTorch
  otherkeys  a tuning file whose keys are another graph's: the kernels are the untuned ones
  tune       `segc tune` with three variants, --min-gain 0 (a variant wins where it is faster
             at all): the file loads, has every key once, only knobs of the variants, and the
             engine compiled with it matches PyTorch; --min-gain 0.9: every entry keeps base
  staged     --stage build, bench/tune_measure.py (the engine ABI from Python), --stage choose:
             the same keys; --stage measure then choose on the same folder agree in form; a
             variant whose code is base's is left out at build
  usage      refusals: a graph-wide knob in --variant, a value out of a knob's range, a first
             variant other than base, --stage choose without --dir, a missing tuning file
             (exit 1, one line)
Prints one line per case and ends with `N passed, M failed`; exit 1 on a failure.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import common as cm  # noqa: E402

TOL = 1e-4
PY = sys.executable


def build(d, copy=False):
    """the graph (conv1 -> relu -> conv2 -> sigmoid gate; copy: a second conv1 on the input,
    added to the output), its weights, an input and PyTorch's output"""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 16, 16, 16, 16)).astype(np.float32)
    w1 = (rng.standard_normal((16, 16, 3, 3, 3)) / np.sqrt(16 * 27)).astype(np.float32)
    b1 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((24, 16, 3, 3, 3)) / np.sqrt(16 * 27)).astype(np.float32)
    body = [{"name": "c1", "op": "conv3d", "in": ["x"],
             "attrs": {"cout": 16, "kernel": 3, "stride": 1, "pad": 1, "bias": True}},
            {"name": "r1", "op": "relu", "in": ["c1"]},
            {"name": "c2", "op": "conv3d", "in": ["r1"],
             "attrs": {"cout": 24, "kernel": 3, "stride": 1, "pad": 1, "bias": False}},
            {"name": "g", "op": "sigmoid", "in": ["c2"]},
            {"name": "y", "op": "mul", "in": ["g", "c2"]}]
    weights = {"c1.weight": w1, "c1.bias": b1, "c2.weight": w2}
    t = torch.from_numpy
    with torch.no_grad():
        c2 = F.conv3d(F.relu(F.conv3d(t(x), t(w1), t(b1), 1, 1)), t(w2), None, 1, 1)
        y = torch.sigmoid(c2) * c2
    if copy:
        body += [{"name": "c1b", "op": "conv3d", "in": ["x"],
                  "attrs": {"cout": 16, "kernel": 3, "stride": 1, "pad": 1, "bias": True}},
                 {"name": "r1b", "op": "relu", "in": ["c1b"]}]
        weights.update({"c1b.weight": w1, "c1b.bias": b1})
    g = cm.graph_json("tune", [("x", x.shape)], body, ["y"] + (["r1b"] if copy else []))
    gp = os.path.join(d, "g%s.json" % ("copy" if copy else ""))
    with open(gp, "w") as f:
        json.dump(g, f)
    if not copy:
        cm.write_safetensors(os.path.join(d, "w.safetensors"), weights)
        cm.write_npy(os.path.join(d, "x.npy"), x)
    return gp, y.numpy()


def segc(*args, env=None, check=True):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("SEGC_") and k not in ("SEGC_NUM_THREADS",):
            e.pop(k)
    e.update(env or {})
    p = subprocess.run([cm.segc_path()] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, env=e, timeout=300)
    if check and p.returncode != 0:
        raise RuntimeError("segc %s: exit %d: %s" % (" ".join(args[:2]), p.returncode,
                                                    p.stderr.strip()[-600:]))
    return p


def keys(gp, env=None):
    """[(name, fingerprint, key)] of `segc --emit=keys`"""
    out = []
    for line in segc(gp, "--emit=keys", env=env).stdout.splitlines():
        f = line.split("\t")
        if len(f) != 3 or not re.fullmatch(r"[0-9a-f]{16}", f[1]) or not f[2]:
            raise AssertionError("--emit=keys line %r" % line)
        out.append(tuple(f))
    return out


def conv_key(ks, cout):
    return [k for n, _, k in ks if n.endswith("conv3d") and "cout=%d " % cout in k][0]


def tune_file(path, entries, target="cpu"):
    with open(path, "w") as f:
        json.dump({"format": "segc-tune/1", "target": target, "precision": "fp32",
                   "kernels": [{"key": k, "knobs": v} for k, v in entries]}, f)


def wino_kernels(gp, extra=(), env=None):
    """the kernel names whose kernel IR has the Winograd scratch"""
    out = segc(gp, "--emit=kernels", *extra, env=env).stdout
    names, cur = set(), None
    for line in out.splitlines():
        m = re.match(r"kernel (\S+)", line)
        if m:
            cur = m.group(1)
        if "wino_v" in line and cur:
            names.add(cur)
    return names


def run(d, gp, ref, extra=()):
    eng, yp = os.path.join(d, "e.so"), os.path.join(d, "y.npy")
    segc(gp, "-o", eng, *extra)
    cm.run_engine(eng, os.path.join(d, "w.safetensors"), os.path.join(d, "x.npy"), yp,
                  ["--threads", "2"])
    err = cm.max_rel_err(cm.read_npy(yp), ref)
    if not err <= TOL:
        raise AssertionError("max rel err %.2e against PyTorch" % err)
    return err


def case_keys(d):
    gp, _ = build(d)
    ks = keys(gp)
    names = [n for n, _, _ in ks]
    if len(set(k for _, _, k in ks)) != len(ks):
        raise AssertionError("two kernels share a key: %s" % ks)
    gc, _ = build(d, copy=True)
    kc = keys(gc)
    k1 = conv_key(ks, 16)
    same = [n for n, _, k in kc if k == k1]
    if len(same) != 2:
        raise AssertionError("the copy of conv 1 does not share its key: %s" % kc)
    k0 = keys(gp, env={"SEGC_WINOGRAD": "0"})
    if [k for _, _, k in k0] != [k for _, _, k in ks]:
        raise AssertionError("keys changed with SEGC_WINOGRAD=0")
    fp = {n: f for n, f, _ in ks}
    moved = [n for n, f, _ in k0 if f != fp[n]]
    if not moved or not all(n.endswith("conv3d") for n in moved):
        raise AssertionError("fingerprints under SEGC_WINOGRAD=0 moved for %s" % moved)
    return "%d kernels (%s), copy shares the key, conv fingerprints move" % (
        len(ks), " ".join(names))


def case_perkernel(d, ref_gp):
    gp, ref = ref_gp
    ks = keys(gp)
    k1, k2 = conv_key(ks, 16), conv_key(ks, 24)
    n1 = [n for n, _, k in ks if k == k1][0]
    tf = os.path.join(d, "t.json")
    tune_file(tf, [(k1, {"SEGC_WINOGRAD": "1"}), (k2, {"SEGC_WINOGRAD": "0"})])
    for env in ({}, {"SEGC_WINOGRAD": "0"}, {"SEGC_WINOGRAD": "1"}):
        got = wino_kernels(gp, ["--tune", tf], env)
        if got != {n1}:
            raise AssertionError("Winograd in %s with %s, expected %s" % (got, env, n1))
    if wino_kernels(gp, env={"SEGC_WINOGRAD": "1"}) != {n for n, _, k in ks
                                                          if k in (k1, k2)}:
        raise AssertionError("SEGC_WINOGRAD=1 without the file does not take both convs")
    err = run(d, gp, ref, ["--tune", tf])
    return "Winograd in %s only (env 0, 1, unset); err %.1e" % (n1, err)


def case_otherkeys(d, ref_gp):
    gp, _ = ref_gp
    other = os.path.join(ROOT, "graphs", "tiny.json")
    tf = os.path.join(d, "o.json")
    tune_file(tf, [(k, {"SEGC_WINOGRAD": "1"}) for k in sorted(set(k for _, _, k in keys(other)))])
    a = segc(gp, "--emit=kernels").stdout
    b = segc(gp, "--emit=kernels", "--tune", tf).stdout
    if a != b:
        raise AssertionError("another graph's tuning file changed the kernels")
    return "kernels unchanged"


def check_file(path, ks, variants):
    t = json.load(open(path))
    if t["format"] != "segc-tune/1" or t["target"] != "cpu":
        raise AssertionError("%s: header %s" % (path, {k: t[k] for k in t if k != "kernels"}))
    got = [e["key"] for e in t["kernels"]]
    if sorted(got) != sorted(set(k for _, _, k in ks)):
        raise AssertionError("%s: keys %s" % (path, got))
    allowed = [dict(kv.split("=") for kv in v.split(",")) if v != "base" else {}
               for v in variants]
    for e in t["kernels"]:
        if e["knobs"] not in allowed or not e["ms"] >= 0 or not e["base_ms"] >= 0:
            raise AssertionError("%s: entry %s" % (path, e))
    return t


def case_tune(d, ref_gp):
    gp, ref = ref_gp
    ks = keys(gp)
    variants = ["base", "SEGC_WINOGRAD=1", "SEGC_WINOGRAD=0"]
    tf = os.path.join(d, "tuned.json")
    va = sum((["--variant", v] for v in variants), [])
    p = segc("tune", gp, "-o", tf, "--repeat", "3", "--threads", "2", "--min-gain", "0", *va)
    if "output agrees with base's" not in p.stderr or "tuned engine" not in p.stderr:
        raise AssertionError("segc tune said: %s" % p.stderr[-800:])
    t = check_file(tf, ks, variants)
    err = run(d, gp, ref, ["--tune", tf])
    wins = sum(1 for e in t["kernels"] if e["knobs"])
    tf2 = os.path.join(d, "none.json")
    segc("tune", gp, "-o", tf2, "--repeat", "2", "--threads", "2", "--min-gain", "0.9", *va)
    t2 = check_file(tf2, ks, variants)
    if any(e["knobs"] for e in t2["kernels"]):
        raise AssertionError("--min-gain 0.9 let a variant win: %s" % t2["kernels"])
    return "%d of %d keys tuned; tuned engine err %.1e; --min-gain 0.9: none" % (
        wins, len(t["kernels"]), err)


def case_staged(d, ref_gp):
    gp, _ = ref_gp
    ks = keys(gp)
    td = os.path.join(d, "stages")
    segc("tune", gp, "--stage", "build", "--dir", td)
    plan = open(os.path.join(td, "plan")).read()
    if "variant base" not in plan or "graph " not in plan:
        raise AssertionError("plan: %s" % plan)
    subprocess.check_call([PY, os.path.join(ROOT, "bench", "tune_measure.py"), td,
                           "--repeat", "2"], stdout=subprocess.DEVNULL,
                          env=dict(os.environ, SEGC_NUM_THREADS="2"))
    tf = os.path.join(d, "staged.json")
    segc("tune", "--stage", "choose", "--dir", td, "-o", tf)
    variants = [l[len("variant "):] for l in plan.splitlines() if l.startswith("variant ")]
    check_file(tf, ks, variants)
    segc("tune", "--stage", "measure", "--dir", td, "--repeat", "2", "--threads", "2")
    tf2 = os.path.join(d, "staged2.json")
    segc("tune", "--stage", "choose", "--dir", td, "-o", tf2)
    check_file(tf2, ks, variants)
    # a variant whose code is base's everywhere (a scan knob in a graph without scans), or
    # another kept variant's, is left out at build: nothing new to time; measure and choose
    # go on without it
    td2 = os.path.join(d, "stages2")
    p = segc("tune", gp, "--stage", "build", "--dir", td2, "--variant", "base", "--variant",
             "SEGC_SCAN_SCALAR=1", "--variant", "SEGC_WINOGRAD=0", "--variant",
             "SEGC_WINOGRAD=0,SEGC_SCAN_SCALAR=1")
    if "variant 1 (SEGC_SCAN_SCALAR=1) left out: its code is base's" not in p.stderr or \
            "variant 3 (SEGC_WINOGRAD=0,SEGC_SCAN_SCALAR=1) left out: its code is " \
            "SEGC_WINOGRAD=0's" not in p.stderr or \
            os.path.exists(os.path.join(td2, "v1.so")) or \
            os.path.exists(os.path.join(td2, "v3.so")) or \
            not os.path.exists(os.path.join(td2, "v2.so")):
        raise AssertionError("build with a no-op variant: %s" % p.stderr[-600:])
    segc("tune", "--stage", "measure", "--dir", td2, "--repeat", "2", "--threads", "2")
    tf3 = os.path.join(d, "staged3.json")
    segc("tune", "--stage", "choose", "--dir", td2, "-o", tf3)
    check_file(tf3, ks, ["base", "SEGC_WINOGRAD=0"])
    return "build, tune_measure.py, choose; measure, choose: %d variants; no-ops left out" % \
        len(variants)


def case_usage(d, ref_gp):
    gp, _ = ref_gp
    checks = [
        (["tune", gp, "-o", "x.json", "--variant", "base", "--variant", "SEGC_LAYOUT=ndhwc"],
         2, "SEGC_LAYOUT is not a per-kernel knob for cpu"),
        (["tune", gp, "-o", "x.json", "--variant", "SEGC_WINOGRAD=0"], 2,
         "the first --variant must be base"),
        (["tune", gp, "-o", "x.json", "--variant", "base", "--variant", "SEGC_WINOGRAD=5"], 2,
         "SEGC_WINOGRAD=5, expected an integer in [0, 1]"),
        (["tune", "--stage", "choose", "-o", "x.json"], 2, "--stage choose needs --dir"),
        (["tune", gp, "-o", "x.json", "--variant", "base", "--variant", "SEGC_MMA_HALO=1"],
         2, "SEGC_MMA_HALO is not a per-kernel knob for cpu"),
        ([gp, "--emit=keys", "--tune", os.path.join(d, "missing.json")], 1,
         "cannot read the tuning file"),
    ]
    for args, code, words in checks:
        p = segc(*args, check=False)
        first = p.stderr.strip().splitlines()[0] if p.stderr.strip() else ""
        if p.returncode != code or words not in first:
            raise AssertionError("segc %s: exit %d, %r (expected %d, %r)" % (
                " ".join(args[:4]), p.returncode, first, code, words))
    return "%d refusals" % len(checks)


def main():
    npass = nfail = 0
    with tempfile.TemporaryDirectory(prefix="segc-tune-test-") as d:
        ref_gp = build(d)
        cases = [("keys", lambda: case_keys(d)), ("perkernel", lambda: case_perkernel(d, ref_gp)),
                 ("otherkeys", lambda: case_otherkeys(d, ref_gp)),
                 ("tune", lambda: case_tune(d, ref_gp)), ("staged", lambda: case_staged(d, ref_gp)),
                 ("usage", lambda: case_usage(d, ref_gp))]
        if cm.QUICK:  # the ASan pass: the C paths (the tuner's children, the files' reader)
            cases = [c for c in cases if c[0] in ("perkernel", "tune", "usage")]
        for name, fn in cases:
            if sys.argv[1:] and name not in sys.argv[1:]:
                continue
            try:
                ok, msg = True, fn()
            except Exception as e:  # report and go on
                ok, msg = False, str(e)[-700:]
            print("%-4s %-10s %s" % ("ok" if ok else "FAIL", name, msg), flush=True)
            npass += ok
            nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
