#!/usr/bin/python3
"""tests/cuda/test_conv_cl.py -- conv3d_ndhwc (channels last) on the CUDA backend, without a GPU.

Each case is a graph written with op conv3d_ndhwc (x [N, D, H, W, Ci], the PyTorch weight, y
[N, OD, OH, OW, Co]), compiled for cuda:sm_90 through tests/cuda/segc_cuda.py (NVRTC, the cubin
checked) and for sm_80 (NVRTC and its ptxas at the case's precision), its CUDA C run on the
host (the emulation) and compared with PyTorch: conv3d(x.permute(0, 4, 1, 2, 3)).permute(0, 2,
3, 4, 1), max|a - b| / max|ref| <= 1e-4 (fp32; tf32 --exact: the emulated MMAs do not round, so
any indexing mistake shows), 2e-3 (tf32), 2e-2 (bf16). The generated source must use the tensor
cores (segc_mma_) exactly where codegen/tmpl_gpu_mma.c has a channels-last form: tf32/bf16,
groups 1, Co >= 8 (else the SIMT form of codegen/tmpl_gpu_conv.c, which also runs every case at
fp32), and, for the cases marked so, the gather of x by 16-byte cp.async chunks (tf32, Ci % 4
== 0, x in the arena: a `pre` op in front of the conv puts it there) or by 4-byte ones, and at
bf16 by 16-byte vector loads (segc_vload4) exactly where the tf32 chunks are 16 bytes and x is
f32 in memory (a bf16 activation, 4096 elements or more, is gathered element by element). Covers
k 1/3/5 and (3, 2, 3), stride 2 and (1, 2, 1), dilation 2 and (2, 1, 2), pad 0/1/2, groups 2
and 4, depthwise, bias on/off, Ci/Co not multiples of 16 (Ci 1, 3, 4, 6, 12, 20, 48; Co 2..72),
batch 2, fused epilogues (ReLU + a residual + a per-channel scale), each channels-last tile (16
x 128, 32 x 128, 64 x 64, 128 x 64) and the SIMT split reduction. fp32 runs with
SEGC_GPU_FILL=1 (the largest SIMT tiles, their partial edges) and, for the cases marked fill,
also with the default.

    tests/cuda/test_conv_cl.py [--precision fp32|tf32|bf16] [--exact] [--suite] [--only SUBSTR]...

--suite (tests/cuda/run.sh): fp32 every case; tf32 --exact the tensor-core cases, each under
its forced variant (VARIANTS: registers instead of cp.async, each tile, the voxel table's rows
in registers) and a grouped one that must stay SIMT; bf16 every other tensor-core case, under
its variant's tile, and one without vector loads (SEGC_MMA_XVEC=0); one tf32 case without
split-K, which the default takes for the cases with 8 K steps or more (40 runs, about 35 s on 2
cores).

Env: SEGC_REAL (the segc binary; default build/segc).  Ends with "N passed, M failed".
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))
import common  # noqa: E402
import test_ops as T  # noqa: E402

TOLS = {"fp32": 1e-4, "tf32": 2e-3, "bf16": 2e-2}


def case(rng, label, ci, co, size, k=3, s=1, p=None, dl=1, g=1, n=1, bias=True, epi=False,
         pre=False, copy=None, fill=False, var=""):
    """size: (D, H, W); k, s, p, dl: ints or triples; pre: relu(x) before the conv (x in the
    arena); epi: relu, + residual, * per-channel scale after it; copy: "16" / "4": the tf32
    gather expected by cp.async of 16- / 4-byte chunks; var: the VARIANT of the tensor-core
    form --suite runs it under"""
    kk = (k,) * 3 if isinstance(k, int) else tuple(k)
    p = tuple(a // 2 for a in kk) if p is None else p
    x = rng.standard_normal((n,) + tuple(size) + (ci,)).astype(np.float32)
    w = (rng.standard_normal((co, ci // g) + kk) / np.sqrt(ci // g * np.prod(kk)))
    w = w.astype(np.float32)
    b = (0.1 * rng.standard_normal(co)).astype(np.float32)
    weights = {"conv.weight": w}
    if bias:
        weights["conv.bias"] = b
    attrs = {"cout": co, "kernel": k, "stride": s, "pad": p, "dilation": dl, "groups": g,
             "bias": bias}
    body, inputs = [], [("x", x)]
    if pre:
        body.append({"name": "pre", "op": "relu", "in": ["x"]})
    body.append({"name": "conv", "op": "conv3d_ndhwc", "in": ["pre" if pre else "x"],
                 "attrs": attrs})
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if pre:
            xt = F.relu(xt)
        y = F.conv3d(xt.permute(0, 4, 1, 2, 3), torch.from_numpy(w),
                     torch.from_numpy(b) if bias else None, s, p, dl, g)
        y = y.permute(0, 2, 3, 4, 1).contiguous()
        if epi:
            res = rng.standard_normal(tuple(y.shape)).astype(np.float32)
            sc = rng.standard_normal(co).astype(np.float32)
            body += [{"name": "act", "op": "relu", "in": ["conv"]},
                     {"name": "sum", "op": "add", "in": ["act", "res"]},
                     {"name": "out", "op": "mul", "in": ["sum", "sc"]}]
            inputs += [("res", res), ("sc", sc)]
            y = (F.relu(y) + torch.from_numpy(res)) * torch.from_numpy(sc)
    c = T.Case("conv3d_ndhwc", label, inputs, body, [body[-1]["name"]], weights, [y.numpy()])
    c.groups, c.co, c.copy, c.fill, c.var = g, co, copy, fill, var
    # x in the arena as bf16 at --precision bf16 (memplan's bf16 activations: 4096 elements or
    # more), gathered element by element
    c.xbf16 = pre and x.size >= 4096 and os.environ.get("SEGC_ACT_BF16") != "0"
    return c


def cases():
    rng = np.random.default_rng(21)
    return [
        case(rng, "k3 c20->36 odd 5x6x7", 20, 36, (5, 6, 7), pre=True, copy="16"),
        case(rng, "k3 s2 c16->24 7x9x8 no bias", 16, 24, (7, 9, 8), s=2, bias=False, pre=True,
             copy="16", fill=True, var="regs"),
        case(rng, "k(3,2,3) s(1,2,1) d(2,1,2) c12->40 n2", 12, 40, (5, 6, 7), k=(3, 2, 3),
             s=(1, 2, 1), dl=(2, 1, 2), p=(2, 0, 1), n=2, pre=True, copy="16", var="a-async"),
        case(rng, "k5 p2 c8->16", 8, 16, (4, 5, 6), k=5, pre=True, copy="16", var="64x64"),
        case(rng, "k1 c20->10 s1", 20, 10, (3, 4, 9), k=1, p=0, pre=True, copy="16",
             var="16x128"),
        case(rng, "k3 p0 c6->20 n2 input x", 6, 20, (5, 5, 6), p=0, n=2, copy="4",
             var="vrows"),
        case(rng, "k3 p1 Ci=3 Co=18", 3, 18, (4, 5, 6), pre=True, copy="4", var="128x64"),
        case(rng, "k3 p1 Ci=1 Co=8", 1, 8, (5, 6, 7), pre=True, copy="4", var="regs"),
        case(rng, "k3 Ci=4 Co=2 d2 s2", 4, 2, (6, 7, 8), s=2, dl=2, pre=True, copy="16"),
        case(rng, "groups 2 c20->36", 20, 36, (4, 5, 6), g=2),
        case(rng, "depthwise c20 k3 s2", 20, 20, (5, 6, 9), g=20, s=2),
        case(rng, "depthwise c12 k5 no bias", 12, 12, (4, 5, 6), k=5, g=12, bias=False),
        case(rng, "epilogue c16->20 n2", 16, 20, (3, 4, 10), n=2, epi=True, pre=True, copy="16",
             var="a-async"),
        case(rng, "epilogue c36->36 s2 k3", 36, 36, (5, 6, 7), s=2, epi=True, pre=True,
             copy="16", var="64x64"),
        case(rng, "groups 4 epilogue c8->12", 8, 12, (3, 4, 5), g=4, epi=True),
        case(rng, "k3 c12->72 epilogue 128x64", 12, 72, (3, 4, 9), epi=True, pre=True, copy="16",
             var="128x64"),
        # with the default fill: the SIMT form splits the ci reduction (6 chunks of 8)
        case(rng, "split ci c48->40 epilogue 3x4x5", 48, 40, (3, 4, 5), epi=True, bias=False,
             fill=True),
    ]


def sm80(d, prec):
    """compile the case's graph for sm_80 at prec (NVRTC to a cubin: ptxas); the error, or
    None (the embedded cubin is checked for sm_90, by segc_cuda.py)"""
    cmd = [os.environ["SEGC_REAL"], os.path.join(d, "graph.json"), "--target", "cuda:sm_80",
           "--emit=cuda"] + ([] if prec == "fp32" else ["--precision", prec])
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    return "sm_80: " + p.stderr.strip()[-300:] if p.returncode != 0 else None


def run(c, prec, tol):
    d = tempfile.mkdtemp(prefix="segc_convcl_")
    try:
        common.TOL = tol
        ok, msg = T.run_case(c, d, False, True)
        problem = sm80(d, prec)
        if problem:
            return False, msg + ", " + problem
        src = os.path.join(d, "engine.so.emu.cu")
        if not os.path.exists(src):
            return ok, msg
        text = open(src).read()
        used = "segc_mma_" in text
        want = prec != "fp32" and c.groups == 1 and c.co >= 8
        if used != want:
            return False, msg + ", tensor-core form %s" % ("taken" if used else "not taken")
        msg += ", " + ("tensor cores" if used else "SIMT form")
        if used and prec == "bf16" and c.copy:  # x by 16-byte vector loads where aligned f32
            want_v = c.copy == "16" and os.environ.get("SEGC_MMA_XVEC") != "0" and not c.xbf16
            if want_v != ("segc_vload4<" in text):
                return False, msg + ", x gather by vector loads %s" % (
                    "expected" if want_v else "not expected")
            msg += ", vload4" if want_v else ", x bf16" if c.xbf16 else ""
        if used and prec == "tf32" and c.copy and os.environ.get("SEGC_MMA_CPASYNC") is None:
            chunks = set(re.findall(r"segc_cp_async<(\d+)>", text))
            want_n = "4" if c.copy == "16" else "1"
            if want_n not in chunks:
                return False, msg + ", x gather by cp.async<%s> expected, found %s" % (
                    want_n, sorted(chunks))
            msg += ", cp.async<%s>" % want_n
        return ok, msg
    finally:
        shutil.rmtree(d, ignore_errors=True)


# forced variants of the tensor-core form (codegen/tmpl_gpu_mma.c) that --suite runs a case
# under (its var): the weights and the x gather in registers, the weights alone by cp.async,
# each tile, the voxel table's rows in registers
VARIANTS = {"": {}, "regs": {"SEGC_MMA_CPASYNC": "0"}, "a-async": {"SEGC_MMA_CPASYNC": "1"},
            "64x64": {"SEGC_MMA_TILE": "64x64"}, "16x128": {"SEGC_MMA_TILE": "16x128"},
            "128x64": {"SEGC_MMA_TILE": "128x64"}, "vrows": {"SEGC_MMA_CLVROWS": "1"},
            "novec": {"SEGC_MMA_XVEC": "0"}, "nosplit": {"SEGC_MMA_SPLITK": "1"}}
ENVS = ("SEGC_PRECISION", "SEGC_EMU_EXACT", "SEGC_GPU_FILL", "SEGC_MMA_CPASYNC", "SEGC_MMA_TILE",
        "SEGC_MMA_CLVROWS", "SEGC_MMA_XVEC", "SEGC_MMA_SPLITK")


def plan(prec, exact, suite):
    """[(env, case)]: every case at prec (fp32: also the fill cases with the default fill);
    --suite: fp32 every case, tf32 exact the tensor-core cases (each under its VARIANT)
    and a grouped one that must stay SIMT, bf16 every other tensor-core case (under its
    variant when that forces a tile)"""
    base = {"SEGC_GPU_FILL": "1"}
    if not suite:
        env = dict(base, SEGC_PRECISION=prec, SEGC_EMU_EXACT="1" if exact else "0")
        if exact and prec == "bf16":
            env["SEGC_MMA_CPASYNC"] = "0"  # the exact emulation has no bf16 global buffers
        out = [(env, c) for c in cases()]
        if prec == "fp32":
            out += [(dict(env, SEGC_GPU_FILL=None), c) for c in cases() if c.fill]
        return out
    fp = plan("fp32", False, False)
    tc = [c for c in cases() if c.groups == 1 and c.co >= 8]
    ex = dict(base, SEGC_PRECISION="tf32", SEGC_EMU_EXACT="1")
    out = fp + [(dict(ex, **VARIANTS[c.var]), c) for c in tc]
    out += [(ex, c) for c in cases() if c.label.startswith("groups 2")]
    # the small tests split K by default where K has 8 steps or more: one without
    out += [(dict(ex, **VARIANTS["nosplit"]), tc[0])]
    bf = dict(base, SEGC_PRECISION="bf16", SEGC_EMU_EXACT="0")
    tiles = {k: v for k, v in VARIANTS.items() if "SEGC_MMA_TILE" in v}
    out += [(dict(bf, **tiles.get(c.var, {})), c) for c in tc[::2]]
    # bf16's x gather element by element where it would be by vector loads (aligned x)
    return out + [(dict(bf, **VARIANTS["novec"]), tc[1])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="fp32", choices=sorted(TOLS))
    ap.add_argument("--exact", action="store_true", help="no rounding in the emulated MMAs")
    ap.add_argument("--suite", action="store_true",
                    help="the set tests/cuda/run.sh runs (every precision, variants)")
    ap.add_argument("--only", action="append", default=[],
                    help="run only the cases whose label holds this (repeatable)")
    a = ap.parse_args()
    os.environ["SEGC"] = os.path.join(HERE, "segc_cuda.py")
    os.environ.setdefault("SEGC_REAL", os.path.join(ROOT, "build", "segc"))
    os.environ.pop("SEGC_CUDA_ALSO", None)  # (it compiles at the default precision: sm80())
    npass = nfail = 0
    for env, c in plan(a.precision, a.exact, a.suite):
        if a.only and not any(o in c.label for o in a.only):
            continue
        for k in ENVS:
            if env.get(k) is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = env[k]
        prec, exact = env["SEGC_PRECISION"], env["SEGC_EMU_EXACT"] == "1"
        if prec == "fp32":
            os.environ.pop("SEGC_PRECISION")
        tol = 1e-4 if exact else TOLS[prec]
        tag = "%s%s tol %g%s" % (prec, " exact" if exact else "", tol, "".join(
            " %s=%s" % (k[5:], env[k]) for k in ENVS[3:] if env.get(k)))
        if env.get("SEGC_GPU_FILL") is None:
            tag += " fill default"
        ok, msg = run(c, prec, tol)
        print("%s %-38s %s: %s" % ("ok  " if ok else "FAIL", c.label, tag, msg))
        sys.stdout.flush()
        npass += ok
        nfail += not ok
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
