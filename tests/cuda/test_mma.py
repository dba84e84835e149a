#!/usr/bin/python3
"""tests/cuda/test_mma.py -- the tensor-core GEMM kernels (codegen/tmpl_gpu_mma.c) without a GPU.

Compiles conv3d / conv_transpose3d / linear / matmul cases with --precision tf32 or bf16 for
cuda:sm_90 through tests/cuda/segc_cuda.py (the generated CUDA C runs on the host, block
threads as fibers, the MMAs emulated with the precision's rounding: tests/cuda/emu_shim.h)
and compares with PyTorch (fp32, CPU):
  max|a - b| / max|ref| <= 2e-3 (tf32) or 2e-2 (bf16), and <= 1e-4 with --exact
  (SEGC_EMU_EXACT=1: the emulated MMAs do not round, so any indexing mistake shows).
The own cases (--cases, default) are sized so the tensor-core form is taken (ragged M, N, K
tiles, strides, dilation, batches, a fused epilogue, batch broadcasting, load prologues: instance
norm + leaky ReLU applied in the conv's A gather, tap-major and tap-table, compiled with
SEGC_PROLOGUE=1 and checked to make fewer kernels than SEGC_PROLOGUE=0) or, for a grouped conv and a GEMM with M < 16, is not: the
generated source must (not) call segc_mma_*.  --ops also runs the conv3d, conv_transpose3d,
linear and matmul cases of tests/ops/test_ops.py; --models the tiny model cases (with --frag:
unet3d) of tests/models/test_models.py, at the precision's tolerance.  The tiling follows $SEGC_MMA /
$SEGC_MMA_TILE / $SEGC_MMA_BK / $SEGC_MMA_SPLITK (codegen/tmpl_gpu_mma.c); --tilings runs the own
cases under each main loop and tile (the cases are too small for the default to pick the large
tiles), with split-K off and forced to 3 (which must split exactly the conv and linear cases
with more than one K step).  --arow runs the tap-major conv cases with the row-major A tile
(SEGC_MMA_AROW=1: each thread's run of k stored by 16-byte vstores, bf16 activations as they
are) under six tilings (AROW: every case with the default, half of them under each other),
checking that the form is taken exactly where it applies.  --xrow runs the row gather's cases
(codegen/tmpl_gpu_mma_row.c, SEGC_MMA_XROW=1; bf16, or tf32 with or without --exact); --frag
the register-fragment form's (SEGC_MMA_FRAG=1; bf16 rounded only: its bf16 copy of w in global
memory does not fit the exact emulation's 4-byte bf16; tf32 rounded or exact).

    tests/cuda/test_mma.py [--precision tf32|bf16] [--exact] [--cases] [--ops] [--models]
                           [--tilings] [--halo] [--arow] [--xrow] [--frag] [--only SUBSTR]...

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
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
import common  # noqa: E402
import test_ops as T  # noqa: E402

TOLS = {"tf32": 2e-3, "bf16": 2e-2}
# --arow: SEGC_MMA_AROW=1 (the row-major A tile of tap-major convs, 16-byte vstores) with the
# default tiling, 256 threads (each thread's k run in one half of a K step), K step 16 (runs of
# 8 with 64 x 64), the single-buffered loop (tf32 without cp.async), split-K forced to 3, and
# the 128 x 64 tile (256 threads; 128 x 96: the case that forces it, under the default)
AROW = [{}, {"SEGC_MMA_TILE": "128x128"}, {"SEGC_MMA_BK": "16"}, {"SEGC_MMA": "0"},
        {"SEGC_MMA_SPLITK": "3"}, {"SEGC_MMA_TILE": "128x64"}]
# --tilings: every main loop and tile of codegen/tmpl_gpu_mma.c (pick_tiling), forced
TILINGS = [{"SEGC_MMA": "0"}, {"SEGC_MMA": "2"}, {"SEGC_MMA_TILE": "128x128"},
           {"SEGC_MMA_TILE": "256x64"}, {"SEGC_MMA_TILE": "128x128", "SEGC_MMA_BK": "16"},
           {"SEGC_MMA_TILE": "128x32", "SEGC_MMA_BK": "16"}, {"SEGC_MMA_TILE": "128x16"},
           {"SEGC_MMA_TILE": "128x48"}, {"SEGC_MMA_TILE": "128x64"},
           {"SEGC_MMA_SPLITK": "1"}, {"SEGC_MMA_SPLITK": "3"}]


def conv(rng, label, ci, co, k, s, p, d, g, b, n, sp, mma, chain=False):
    m = nn.Conv3d(ci, co, k, stride=s, padding=p, dilation=d, groups=g, bias=b)
    w = T.state("op", m, rng)
    x = T.randn(rng, (n, ci) + sp)
    attrs = {"cout": co, "kernel": k, "stride": s, "pad": p, "dilation": d, "groups": g,
             "bias": b}
    with torch.no_grad():
        ref = m(T.t(x))
        if chain:  # conv -> leaky_relu -> + x: the epilogue runs on the accumulators
            ref = torch.nn.functional.leaky_relu(ref, 0.01) + T.t(x)
    kk = (k,) * 3 if isinstance(k, int) else k
    if not chain:
        c = T.one("conv3d", label, x, attrs, ref.numpy(), w)
    else:
        body = [{"name": "op", "op": "conv3d", "in": ["x"], "attrs": attrs},
                {"name": "act", "op": "leaky_relu", "attrs": {"slope": 0.01}},
                {"name": "out", "op": "add", "in": ["act", "x"]}]
        c = T.Case("conv3d", label, [("x", x)], body, ["out"], w, [ref.numpy()])
    c.K = ci // g * int(np.prod(kk))
    c.tapk = g == 1 and ci % 16 == 0
    return c, mma


def rowconv(rng, label, ci, co, k, p, n, sp, want, s=1, d=1, chain=False):
    """x -> relu -> conv3d (+ leaky ReLU + the relu's output with chain): at bf16 the relu's
    output is a bf16 activation in memory, what the row gather (SEGC_MMA_XROW=1) reads; want:
    whether it applies"""
    m = nn.Conv3d(ci, co, k, stride=s, padding=p, dilation=d, bias=True)
    w = T.state("op", m, rng)
    x = T.randn(rng, (n, ci) + sp)
    attrs = {"cout": co, "kernel": k, "stride": s, "pad": p, "dilation": d, "groups": 1,
             "bias": True}
    body = [{"name": "act", "op": "relu", "in": ["x"]},
            {"name": "op", "op": "conv3d", "in": ["act"], "attrs": attrs}]
    with torch.no_grad():
        a = torch.relu(T.t(x))
        ref = m(a)
        if chain:
            ref = torch.nn.functional.leaky_relu(ref, 0.01) + a
            body += [{"name": "lr", "op": "leaky_relu", "in": ["op"], "attrs": {"slope": 0.01}},
                     {"name": "out", "op": "add", "in": ["lr", "act"]}]
    c = T.Case("conv3d", label, [("x", x)], body, [body[-1]["name"]], w, [ref.numpy()])
    kk = (k,) * 3 if isinstance(k, int) else k
    c.K = ci * int(np.prod(kk))
    c.tapk = ci % 16 == 0
    c.xrow = want
    return c, True


def convt(rng, label, ci, co, k, b, sp, mma, n=1):
    m = nn.ConvTranspose3d(ci, co, k, stride=k, bias=b)
    w = T.state("op", m, rng)
    x = T.randn(rng, (n, ci) + sp)
    with torch.no_grad():
        ref = m(T.t(x)).numpy()
    attrs = {"cout": co, "kernel": k, "stride": k, "pad": 0, "output_padding": 0, "dilation": 1,
             "groups": 1, "bias": b}
    return T.one("conv_transpose3d", label, x, attrs, ref, w), mma


def linear(rng, label, shape, o, b, mma):
    m = nn.Linear(shape[-1], o, bias=b)
    w = T.state("op", m, rng)
    x = T.randn(rng, shape)
    with torch.no_grad():
        ref = m(T.t(x)).numpy()
    c = T.one("linear", label, x, {"out": o, "bias": b}, ref, w)
    c.K = shape[-1]
    return c, mma


def matmul(rng, label, sa, sb, mma):
    a, b = T.randn(rng, sa), T.randn(rng, sb)
    ref = torch.matmul(T.t(a), T.t(b)).numpy()
    return T.Case("matmul", label, [("a", a), ("b", b)],
                  [{"name": "op", "op": "matmul", "in": ["a", "b"]}], ["op"], {}, [ref]), mma


def prologue(rng, label, ci, co, k, s, p, n, sp):
    """x -> instance_norm (affine) -> leaky_relu -> conv3d: the normalize and activation are a
    load prologue of the conv (passes/fuse.c), applied by the tensor-core gather"""
    w = T.randn(rng, (co, ci, k, k, k)) / np.sqrt(ci * k ** 3)
    b = 0.1 * T.randn(rng, (co,))
    gam, bet = 1 + 0.2 * T.randn(rng, (ci,)), 0.2 * T.randn(rng, (ci,))
    x = T.randn(rng, (n, ci) + sp) * 2 + 0.5
    with torch.no_grad():
        h = torch.nn.functional.instance_norm(T.t(x), weight=T.t(gam), bias=T.t(bet))
        h = torch.nn.functional.leaky_relu(h, 0.01)
        ref = torch.nn.functional.conv3d(h, T.t(w), T.t(b), s, p)
    body = [{"name": "norm", "op": "instance_norm", "in": ["x"], "attrs": {"affine": True}},
            {"name": "act", "op": "leaky_relu", "attrs": {"slope": 0.01}},
            {"name": "op", "op": "conv3d", "in": ["act"],
             "attrs": {"cout": co, "kernel": k, "stride": s, "pad": p, "bias": True}}]
    weights = {"norm.weight": gam, "norm.bias": bet, "op.weight": w, "op.bias": b}
    c = T.Case("conv3d", label, [("x", x)], body, ["op"], weights, [ref.numpy()])
    c.prologue, c.K, c.tapk = True, ci * k ** 3, ci % 16 == 0
    return c, True


def stats(rng, label, ci, co, n, sp, fused, chain=False, groups=0):
    """x -> conv3d (-> leaky_relu, with chain) -> instance_norm (group_norm with groups)
    (affine) -> leaky_relu: the norm's moments join the conv's kernel (passes/fuse.c, Group.stats); where every output tile
    lies in one batch element and there are >= 32 per element the tensor-core epilogue computes
    them from its tiles (fused: the source has their "smu" means), else the kernel runs the
    moments as loops of their own"""
    w = T.randn(rng, (co, ci, 3, 3, 3)) / np.sqrt(ci * 27)
    b = 0.5 + 0.1 * T.randn(rng, (co,))
    gam, bet = 1 + 0.2 * T.randn(rng, (co,)), 0.2 * T.randn(rng, (co,))
    x = T.randn(rng, (n, ci) + sp)
    with torch.no_grad():
        h = torch.nn.functional.conv3d(T.t(x), T.t(w), T.t(b), 1, 1)
        if chain:
            h = torch.nn.functional.leaky_relu(h, 0.01)
        if groups:
            h = torch.nn.functional.group_norm(h, groups, weight=T.t(gam), bias=T.t(bet))
        else:
            h = torch.nn.functional.instance_norm(h, weight=T.t(gam), bias=T.t(bet))
        ref = torch.nn.functional.leaky_relu(h, 0.01)
    body = [{"name": "conv", "op": "conv3d", "in": ["x"],
             "attrs": {"cout": co, "kernel": 3, "stride": 1, "pad": 1, "bias": True}}]
    if chain:
        body.append({"name": "act0", "op": "leaky_relu", "attrs": {"slope": 0.01}})
    norm = ({"name": "norm", "op": "group_norm", "attrs": {"groups": groups, "affine": True}}
            if groups else {"name": "norm", "op": "instance_norm", "attrs": {"affine": True}})
    body += [norm,
             {"name": "op", "op": "leaky_relu", "attrs": {"slope": 0.01}}]
    weights = {"conv.weight": w, "conv.bias": b, "norm.weight": gam, "norm.bias": bet}
    c = T.Case("conv3d", label, [("x", x)], body, ["op"], weights, [ref.numpy()])
    c.stats, c.K, c.tapk = fused, ci * 27, ci % 16 == 0
    return c, True


def saturate(rng, label):
    """x -> relu -> permute, x up to FLT_MAX: relu's result is an activation in the arena (bf16
    at --precision bf16), which must saturate at bf16's largest finite value (rounded, FLT_MAX
    is inf in bf16): within 0.4% of the reference, not inf"""
    x = T.randn(rng, (1, 8, 8, 8, 8)).astype(np.float64)
    # the largest element 3.4028e38 (FLT_MAX is 3.40282e38), the negative tail clipped
    x = np.maximum(x / x.max() * 3.4028e38, -3.4e38).astype(np.float32)
    body = [{"name": "act", "op": "relu", "in": ["x"]},
            {"name": "op", "op": "permute", "attrs": {"perm": [0, 1, 2, 4, 3]}}]
    ref = np.ascontiguousarray(np.maximum(x, 0).transpose(0, 1, 2, 4, 3))
    return T.Case("permute", label, [("x", x)], body, ["op"], {}, [ref]), None


def own_cases():
    rng = np.random.default_rng(7)
    torch.manual_seed(7)
    return [
        conv(rng, "conv k3 p1 ragged M", 8, 16, 3, 1, 1, 1, 1, True, 2, (5, 6, 7), True),
        conv(rng, "conv k3 s2 no bias", 16, 24, 3, 2, 1, 1, 1, False, 1, (7, 9, 8), True),
        conv(rng, "conv k(1,3,2) d2 N=70 K=72", 12, 70, (1, 3, 2), 1, (0, 2, 1), 2, 1, True, 1,
             (4, 8, 7), True),
        conv(rng, "conv 1x1 K=40", 40, 8, 1, 1, 0, 1, 1, True, 1, (4, 4, 5), True),
        conv(rng, "conv+lrelu+residual", 16, 16, 3, 1, 1, 1, 1, True, 1, (5, 4, 6), True,
             chain=True),
        conv(rng, "conv groups=2 (SIMT form)", 16, 16, 3, 1, 1, 1, 2, True, 1, (4, 4, 4), False),
        convt(rng, "convT k2 s2", 16, 8, 2, True, (3, 5, 4), True),
        convt(rng, "convT k(2,1,3) N=30", 8, 5, (2, 1, 3), False, (4, 3, 5), True),
        linear(rng, "linear (3,37,24)->40", (3, 37, 24), 40, True, True),
        linear(rng, "linear (70,16)->8", (70, 16), 8, False, True),
        matmul(rng, "matmul (2,3,40,24)@(3,24,20)", (2, 3, 40, 24), (3, 24, 20), True),
        matmul(rng, "matmul (33,17)@(17,9)", (33, 17), (17, 9), True),
        conv(rng, "conv 1x1 batch 3 N=130 K=12", 12, 130, 1, 1, 0, 1, 1, True, 3, (3, 4, 5),
             True),
        convt(rng, "convT k2 batch 2 N=72", 24, 9, 2, True, (2, 3, 3), True, n=2),
        matmul(rng, "matmul (2,3,20,24)@(24,40)", (2, 3, 20, 24), (24, 40), True),
        linear(rng, "linear (12,16)->8: M < 16 (SIMT form)", (12, 16), 8, True, False),
        # K = 160: 5 or 10 K steps, split under SEGC_MMA_SPLITK (rank-3 rows, bias)
        linear(rng, "linear (2,40,160)->24 K=160", (2, 40, 160), 24, True, True),
        # Ci % 16 == 0: K ordered tap-major (one tap per half K step), 64 x 64 and 128 x 32
        conv(rng, "conv tap-major Ci=32 d2 N=70 b2", 32, 70, 3, 1, 2, 2, 1, True, 2, (5, 6, 7),
             True),
        conv(rng, "conv tap-major Ci=48 k(2,3,1) s(2,1,1)", 48, 20, (2, 3, 1), (2, 1, 1),
             (1, 0, 0), 1, 1, False, 1, (5, 4, 6), True),
        # load prologues (instance norm + leaky ReLU applied in the A gather; padding stays 0)
        prologue(rng, "prologue tap-major Ci=16 k3 p1 b2", 16, 24, 3, 1, 1, 2, (5, 6, 7)),
        prologue(rng, "prologue tap-major Ci=32 k3 s2", 32, 70, 3, 2, 1, 1, (7, 6, 9)),
        prologue(rng, "prologue k-table Ci=6 k3 p1", 6, 10, 3, 1, 1, 1, (5, 4, 6)),
        prologue(rng, "prologue 1x1 Ci=16", 16, 40, 1, 1, 0, 1, (4, 5, 6)),
        # instance-norm statistics from the conv's tiles (Group.stats): 128 x 16 (8 threads a
        # column), 128 x 32 with N ragged (4), 64 x 64 with 48 tiles per batch element (a
        # ragged round of the merge) and batch 2, an epilogue before the norm; the moments as
        # the kernel's own loops where tiles would straddle batch elements
        stats(rng, "stats 128x16 Ci=8", 8, 16, 1, (16, 16, 16), True),
        stats(rng, "stats 128x32 N=24 chain", 16, 24, 1, (8, 16, 32), True, chain=True),
        stats(rng, "stats 64x64 N=40 b2 G=48", 4, 40, 2, (8, 16, 24), True),
        stats(rng, "stats straddling (own loops)", 8, 16, 2, (5, 6, 7), False),
        stats(rng, "stats group norm 4 groups b2", 8, 16, 2, (8, 16, 32), True, groups=4),
        # 48-column tiles of tap-major convs (t48, warps of 32 x 48): 128 x 48 (32 < N <= 48)
        # with N ragged; with statistics (two threads a column, the last warp idle); 128 x 96
        # (forced: by default only with >= 264 tiles; 256 threads, two column chunks of 48)
        # with statistics (four threads a column, two warps idle), N ragged
        conv(rng, "conv tap-major Ci=16 N=40 (128x48)", 16, 40, 3, 1, 1, 1, 1, True, 1,
             (5, 6, 7), True),
        stats(rng, "stats 128x48 N=40 tap-major", 16, 40, 1, (8, 16, 32), True),
        with_env(stats(rng, "stats 128x96 N=72 tap-major", 16, 72, 1, (8, 16, 32), True),
                 SEGC_MMA_TILE="128x96"),
        saturate(rng, "activation near FLT_MAX"),
    ]


def xrow_cases():
    """the row gather (codegen/tmpl_gpu_mma_row.c, SEGC_MMA_XROW=1) on a bf16 activation
    (relu -> conv; at tf32 an f32 one, groups of 8 channels) or the f32 input: kernels 3 (one window edge each side), (1,3,3), (3,3,1)
    and 1 (K steps of two (kd, kh, channel chunk) groups, an odd number of groups: the last
    step half empty), 5 (two edges a side; in 64 x 64 tiles where 128 x 32 does not fit), 3
    dilated 2 (taps 2 apart in the window); Ci 16, 32 (two channel chunks), 48, and 4 and 8
    (one group a (kd, kh) row of all channels, padded to 16 k; f32 x: 4-element loads; 64-row
    tiles: half the threads gather); ragged M tiles (W 8: an octet per row), batch 2; stride
    2 and dilation 2 in D and H; N 16, 24, 40 (128 x 48), 70 (64 x 64, two N tiles); the
    256 x 64 and 128 x 128 tiles as 128 x 64 (256 threads), 128 x 96, 128 x 128 in dynamic
    shared memory (SEGC_CUDA_SMEM=65536: 54 or 58 KiB); split-K; a fused
    epilogue; stride 2 along W (k3 and 1x1: two 16-byte loads a window, runs of every other
    slot); Cin 1 (3 or 7 of a group's 16 k: a stem, k7 stride 2); Cin 40 and 24 at bf16, 12 at
    tf32 (an odd multiple of half the MMA's k: groups of that many channels); and where it does
    not apply
    (W % 8 != 0, stride 2 with OW % 8 != 0, stride 3, Cin 3)"""
    rng = np.random.default_rng(13)
    torch.manual_seed(13)
    return [
        rowconv(rng, "xrow k3 Ci=16 Co=16 b2", 16, 16, 3, 1, 2, (4, 6, 16), True),
        rowconv(rng, "xrow k3 Ci=40 Co=40 (groups of 8 channels)", 40, 40, 3, 1, 1, (4, 5, 16),
                True),
        rowconv(rng, "xrow k5 p2 Ci=24 Co=16 b2 (groups of 8)", 24, 16, 5, 2, 2, (4, 5, 16), True),
        rowconv(rng, "xrow k3 Ci=12 Co=16 (tf32: groups of 4)", 12, 16, 3, 1, 1, (4, 5, 16), True),
        rowconv(rng, "xrow k3 Ci=48 ragged M W=8", 48, 24, 3, 1, 1, (5, 3, 8), True),
        rowconv(rng, "xrow k3 Ci=32 Co=40 s(2,2,1)", 32, 40, 3, 1, 1, (6, 5, 16), True,
                s=(2, 2, 1)),
        rowconv(rng, "xrow k3 d(2,2,1) Co=70", 16, 70, 3, (2, 2, 1), 1, (5, 6, 16), True,
                d=(2, 2, 1)),
        rowconv(rng, "xrow k(3,3,1) Ci=16 (odd groups)", 16, 24, (3, 3, 1), (1, 1, 0), 1,
                (4, 5, 16), True),
        rowconv(rng, "xrow 1x1 Ci=48", 48, 16, 1, 0, 1, (3, 4, 16), True),
        rowconv(rng, "xrow k(1,3,3) Ci=16", 16, 16, (1, 3, 3), (0, 1, 1), 1, (4, 5, 16), True),
        rowconv(rng, "xrow k5 p2 Ci=16 Co=8", 16, 8, 5, 2, 1, (4, 5, 16), True),
        rowconv(rng, "xrow k5 Co=24 (64x64: 128x32 too big)", 16, 24, 5, 2, 1, (4, 5, 16), True),
        rowconv(rng, "xrow k3 d2 p2 Ci=32 (taps 2 apart)", 32, 16, 3, 2, 1, (5, 6, 16), True,
                d=2),
        rowconv(rng, "xrow k3 +lrelu+residual", 16, 16, 3, 1, 1, (4, 6, 16), True,
                chain=True),
        with_env(rowconv(rng, "xrow k3 256x64 -> 128x64", 16, 40, 3, 1, 1, (4, 4, 32), True),
                 SEGC_MMA_TILE="256x64"),
        with_env(rowconv(rng, "xrow k3 128x96 Co=72", 32, 72, 3, 1, 1, (3, 4, 16), True),
                 SEGC_MMA_TILE="128x96"),
        with_env(rowconv(rng, "xrow k3 128x128 -> 128x64 Co=72", 32, 72, 3, 1, 1, (3, 4, 16),
                         True), SEGC_MMA_TILE="128x128"),
        with_env(rowconv(rng, "xrow k3 split-K 3", 32, 16, 3, 1, 1, (4, 4, 16), True),
                 SEGC_MMA_SPLITK="3"),
        dsmem(with_env(rowconv(rng, "xrow k3 128x128 in dynamic shared memory", 32, 72, 3, 1,
                               1, (3, 4, 16), True),
                       SEGC_MMA_TILE="128x128", SEGC_CUDA_SMEM="65536")),
        rowconv(rng, "xrow not: W=12", 16, 16, 3, 1, 1, (4, 8, 12), False),
        rowconv(rng, "xrow k3 s2 Ci=16 Co=32 (two loads a window)", 16, 32, 3, 1, 1, (4, 6, 16),
                True, s=2),
        rowconv(rng, "xrow 1x1 s2 Ci=32 b2", 32, 16, 1, 0, 2, (4, 4, 32), True, s=2),
        rowconv(rng, "xrow not: stride 2, OW=12", 16, 16, 3, 1, 1, (4, 6, 24), False, s=2),
        # Cin < 16: a (kd, kh) row of all channels is a group (kw*Cin k padded to 16), f32 x
        # (the network's input: 16-byte loads of 4) or bf16
        xr(conv(rng, "xrow Cin=4 k3 f32 x b2", 4, 16, 3, 1, 1, 1, 1, True, 2, (4, 6, 16),
                True)),
        xr(conv(rng, "xrow Cin=8 k3 f32 x Co=24 (K step 32)", 8, 24, 3, 1, 1, 1, 1, False, 1,
                (3, 5, 16), True)),
        xr(conv(rng, "xrow Cin=4 k3 s2 f32 x", 4, 32, 3, 2, 1, 1, 1, True, 1, (4, 6, 32), True)),
        rowconv(rng, "xrow Cin=4 bf16 x", 4, 16, 3, 1, 1, (8, 8, 16), True),
        xr(conv(rng, "xrow Cin=4 Co=40 (64x64: half the threads gather)", 4, 40, 3, 1, 1, 1, 1,
                True, 1, (3, 4, 16), True)),
        xr(conv(rng, "xrow Cin=1 k3 (3 of 16 k)", 1, 16, 3, 1, 1, 1, 1, True, 1, (4, 6, 16),
                True)),
        xr(conv(rng, "xrow Cin=1 k7 s2 p3 (a stem)", 1, 16, 7, 2, 3, 1, 1, True, 1, (6, 8, 32),
                True)),
        xr(conv(rng, "xrow not: Cin=3", 3, 16, 3, 1, 1, 1, 1, True, 1, (4, 6, 16), True), False),
        rowconv(rng, "xrow not: stride 3 along W", 16, 16, 3, 1, 1, (6, 6, 48), False, s=3),
    ]


def frag_cases():
    """the register-fragment form (codegen/tmpl_gpu_mma_row.c, SEGC_MMA_FRAG=1: A from the
    lanes' windows straight into mma.sync, B from a copy of w in fragment order) at bf16 (and at
    tf32: groups of 8 k, a lane's channels t and t + 4, two m16n8k8 an MMA): Ci 16,
    32, 48 (one, two, three channel groups), Co 16 (256 x 16 tiles), 8 and 24 (ragged
    columns), 40 and 70 (two and three 32-column tiles); kernels 3, (3,3,1), (1,3,3), 1 and 5,
    dilation 2 along W (taps 2 apart in the window), stride 2 along W (rows g + 8 two slots on),
    strides and dilations in D and H; ragged M (W 8, 7 octets a row block), batch 2; a fused
    epilogue, split-K, the K loop unrolled 2 and 3 times (SEGC_MMA_FRAG_UNROLL: an odd number
    of groups; with split-K, run-time bounds), instance-norm statistics from the 256-row tiles,
    f32 x (the network's input: windows rounded when packed); a small Cin (1, 2, 4, 8: 16 / Cin
    (kd, kh) rows a group, rows past the kernel's 0), with stride 2 and dilation, f32 x and
    statistics; 48-column tiles (Co 48 with statistics in three C chunks and an epilogue, 96 in two
    tiles, split-K; SEGC_MMA_FRAG48=0 and Co 64: 32-column ones); Cin 24, 40, 12 and 3 (units
    of 8, 4 and 1 channels of a (kd, kh) row); and where it does not apply (Cin 2 with one row
    of taps, 8 a group; W 12)"""
    rng = np.random.default_rng(17)
    torch.manual_seed(17)
    return [
        fr(rowconv(rng, "frag k3 Ci=16 Co=16 b2", 16, 16, 3, 1, 2, (4, 6, 16), True)),
        fr(rowconv(rng, "frag k3 Ci=48 Co=24 ragged M W=8", 48, 24, 3, 1, 1, (5, 7, 8), True)),
        fr(rowconv(rng, "frag k3 Ci=32 Co=40 s(2,2,1)", 32, 40, 3, 1, 1, (6, 5, 16), True,
                   s=(2, 2, 1))),
        fr(rowconv(rng, "frag k3 d(2,2,1) Co=70", 16, 70, 3, (2, 2, 1), 1, (5, 6, 16), True,
                   d=(2, 2, 1))),
        fr(rowconv(rng, "frag k(3,3,1) Ci=16", 16, 24, (3, 3, 1), (1, 1, 0), 1, (4, 5, 16),
                   True)),
        fr(rowconv(rng, "frag 1x1 Ci=48 Co=16", 48, 16, 1, 0, 1, (3, 4, 32), True)),
        fr(rowconv(rng, "frag k(1,3,3) Ci=16 Co=32", 16, 32, (1, 3, 3), (0, 1, 1), 1, (4, 5, 16),
                   True)),
        fr(rowconv(rng, "frag k5 p2 Ci=16 Co=8", 16, 8, 5, 2, 1, (4, 5, 16), True)),
        fr(rowconv(rng, "frag k3 d2 p2 Ci=32 (taps 2 apart)", 32, 16, 3, 2, 1, (5, 6, 16), True,
                   d=2)),
        fr(rowconv(rng, "frag k3 s2 Ci=16 Co=32", 16, 32, 3, 1, 1, (4, 6, 32), True, s=2)),
        fr(rowconv(rng, "frag k3 +lrelu+residual", 16, 16, 3, 1, 1, (4, 6, 16), True,
                   chain=True)),
        fr(with_env(rowconv(rng, "frag k3 split-K 3", 32, 16, 3, 1, 1, (4, 4, 16), True),
                    SEGC_MMA_SPLITK="3")),
        fr(with_env(rowconv(rng, "frag k3 Ci=48 unrolled 2 (27 groups)", 48, 16, 3, 1, 1,
                            (4, 5, 16), True), SEGC_MMA_FRAG_UNROLL="2")),
        fr(with_env(rowconv(rng, "frag k3 unrolled 3, split-K 2", 32, 16, 3, 1, 1, (4, 4, 16),
                            True), SEGC_MMA_FRAG_UNROLL="3", SEGC_MMA_SPLITK="2")),
        fr(stats(rng, "frag stats 256x16 f32 x", 16, 16, 1, (8, 16, 64), True)),
        fr(stats(rng, "frag stats 256x32 N=24 chain", 16, 24, 1, (8, 16, 64), True,
                 chain=True)),
        fr(rowconv(rng, "frag Ci=4 Co=16 (4 rows a group)", 4, 16, 3, 1, 1, (8, 8, 16), True)),
        fr(rowconv(rng, "frag Ci=8 Co=32 b2 (2 rows a group)", 8, 32, 3, 1, 2, (4, 6, 16), True)),
        fr(rowconv(rng, "frag Ci=1 Co=16 (16 rows a group, 7 zero)", 1, 16, 3, 1, 1, (5, 6, 16),
                   True)),
        fr(rowconv(rng, "frag Ci=2 k5 p2 Co=24 (8 rows, 4 groups)", 2, 24, 5, 2, 1, (5, 6, 16),
                   True)),
        fr(rowconv(rng, "frag Ci=4 k3 s2 d(2,1,1) Co=40", 4, 40, 3, (2, 1, 1), 1, (6, 5, 32),
                   True, s=2, d=(2, 1, 1))),
        fr(stats(rng, "frag stats Ci=4 f32 x Co=32 (a first conv)", 4, 32, 1, (8, 16, 64), True)),
        racc(fr(stats(rng, "frag stats Co=48 chain (256 x 48: three C chunks)", 16, 48, 1,
                      (8, 16, 64), True, chain=True)), 12),
        racc(fr(rowconv(rng, "frag Co=96 b2 (two 48-column tiles)", 16, 96, 3, 1, 2, (4, 5, 16),
                        True)), 12),
        racc(fr(with_env(rowconv(rng, "frag Co=48 split-K 2", 32, 48, 3, 1, 1, (4, 4, 16),
                                 True), SEGC_MMA_SPLITK="2")), 12),
        racc(fr(with_env(rowconv(rng, "frag Co=48 FRAG48=0 (two 32-column tiles)", 16, 48, 3,
                                 1, 1, (4, 5, 16), True), SEGC_MMA_FRAG48="0")), 8),
        racc(fr(rowconv(rng, "frag Co=64 (two 32-column tiles, not 48)", 16, 64, 3, 1, 1,
                        (4, 5, 16), True)), 8),
        fr(rowconv(rng, "frag Ci=24 Co=24 (units of 8 channels, 2 a group)", 24, 24, 3, 1, 1,
                   (4, 5, 16), True)),
        racc(fr(rowconv(rng, "frag Ci=40 Co=40 b2 (segmamba_v2 C=40's width)", 40, 40, 3, 1, 2,
                        (4, 4, 16), True)), 12),
        fr(rowconv(rng, "frag Ci=12 k5 p2 Co=16 (units of 4)", 12, 16, 5, 2, 1, (5, 6, 16),
                   True)),
        fr(stats(rng, "frag stats Ci=3 f32 x (units of 1: 27 in 2 groups)", 3, 8, 1,
                 (8, 16, 64), True)),
        fr((rowconv(rng, "frag not: Ci=2 k(1,1,3) (1 row of 8; SIMT)", 2, 16, (1, 1, 3),
                    (0, 0, 1), 1, (4, 5, 16), True)[0], False), False),
        fr(rowconv(rng, "frag not: W=12", 16, 16, 3, 1, 1, (4, 8, 12), False), False),
    ]


def racc(cm, n):
    """a register-fragment case whose kernel must hold n accumulators of 16 x 16 a lane (4 x bn /
    16: 4, 8 or 12 for 16-, 32- and 48-column tiles)"""
    cm[0].racc = n
    return cm


def fr(cm, want=True):
    """a case of the register-fragment form's: want, whether it applies"""
    cm[0].frag = want
    return cm


def xr(cm, want=True):
    """a conv case of the row gather's: want, whether it applies"""
    cm[0].xrow = want
    return cm


def dsmem(cm):
    """a case whose kernel must take dynamic shared memory (over 48 KiB: SEGC_CUDA_SMEM)"""
    cm[0].dsmem = True
    return cm


def with_env(cm, **env):
    """a (case, mma) pair compiled with extra environment variables"""
    cm[0].env = env
    return cm


def rows(cm, r, want=True, **env):
    """a halo case compiled with SEGC_HALO_RB=r (row blocks) and env; want: whether they are
    taken (an A fragment of a later halo row serves output row 0)"""
    cm[0].env = dict(env, SEGC_HALO_RB=str(r))
    cm[0].rows = want
    return cm


def row_blocks(text):
    """MMAs of accumulator 0 (a warp's output row 0) with an A fragment other than the run's
    first, in the runs of row-major (halo) A fragments: the row blocks (elsewhere a warp's
    accumulator 0 takes A fragment 0 only)"""
    n, ar = 0, False
    for line in text.splitlines():
        if "segc_frag_ar_t " in line:
            ar = True
        elif "segc_frag_a_t " in line:
            ar = False
        elif ar and re.search(r"segc_mma_ab\(segc_acc\[0\], segc_fa[1-9],", line):
            n += 1
    return n


def halo_cases():
    """the halo-tile form (codegen/tmpl_gpu_halo.c, SEGC_MMA_HALO=1): tile widths 16, 32, 64
    and 128 (SEGC_HALO_TW=128; by default OW = 128 takes two rows of 64), ragged output rows
    (OH % TH != 0) and N tiles (Co 24, 48, 70: bn 32, 48, 48 x 2), several input-channel
    chunks and ragged ones (Ci 4, 20), kernels 3, (1,3,3), 1 and 5 (rows narrowed to fit),
    a 3 dilated 2, with and without padding, batch 2, a fused epilogue, load prologues (one
    with a ragged channel chunk and batch 2: the per-channel operands of channels past Ci
    clamped, their elements 0), conv statistics from the tiles; with row blocks
    (SEGC_HALO_RB=4 and 2: ragged rows and channel chunks, statistics from the tiles (256
    voxels at 4), the halo staged by 16-byte vectors, at tf32 by cp.async or registers,
    Co 48 and 70 (4 narrowed to 2), (1,3,3), dilated, a prologue, an epilogue, OW 128, and
    a 5^3 that does not fit and takes the row form)"""
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    return [
        conv(rng, "halo TW16 ragged OH b2", 16, 16, 3, 1, 1, 1, 1, True, 2, (2, 9, 16), "halo"),
        # conv statistics from the halo tiles: 4 x 32 voxels (bn 32, 4 threads a column, 32
        # tiles per batch element, batch 2, an epilogue before the norm), a group norm (bn 16,
        # 8 threads a column) and the conv's value itself (bn 32)
        (stats(rng, "halo stats TW32 Co=24 b2 chain", 16, 24, 2, (4, 32, 32), True,
               chain=True)[0], "halo"),
        (stats(rng, "halo stats TW64 group norm", 8, 16, 1, (4, 16, 64), True, groups=2)[0],
         "halo"),
        (stats(rng, "halo stats TW64 Co=32", 8, 32, 1, (4, 16, 64), True)[0], "halo"),
        conv(rng, "halo TW32 Ci=32 Co=24", 32, 24, 3, 1, 1, 1, 1, False, 1, (2, 5, 32), "halo"),
        conv(rng, "halo Ci=48 Co=48 (bn 48)", 48, 48, 3, 1, 1, 1, 1, True, 1, (2, 2, 16),
             "halo"),
        conv(rng, "halo TW64 k(1,3,3) Co=70", 16, 70, (1, 3, 3), 1, (0, 1, 1), 1, 1, True, 1,
             (2, 3, 64), "halo"),
        conv(rng, "halo OW128 (TW 64 x 2 rows)", 16, 16, 3, 1, 1, 1, 1, True, 1, (1, 2, 128),
             "halo"),
        with_env(conv(rng, "halo TW128 (SEGC_HALO_TW=128)", 16, 16, 3, 1, 1, 1, 1, True, 1,
                      (1, 2, 128), "halo"), SEGC_HALO_TW="128"),
        conv(rng, "halo valid k3 p0", 16, 8, 3, 1, 0, 1, 1, True, 1, (3, 4, 18), "halo"),
        conv(rng, "halo 1x1 Ci=48", 48, 16, 1, 1, 0, 1, 1, True, 1, (2, 2, 16), "halo"),
        conv(rng, "halo +lrelu+residual", 16, 16, 3, 1, 1, 1, 1, True, 1, (2, 3, 16), "halo",
             chain=True),
        (prologue(rng, "halo prologue k3 p1", 16, 24, 3, 1, 1, 1, (3, 4, 16))[0], "halo"),
        (prologue(rng, "halo prologue Ci=20 b2", 20, 16, 3, 1, 1, 2, (2, 3, 32))[0], "halo"),
        conv(rng, "halo Ci=4 (one ragged chunk)", 4, 16, 3, 1, 1, 1, 1, True, 1, (2, 3, 32),
             "halo"),
        conv(rng, "halo Ci=20 (a ragged second chunk)", 20, 8, 3, 1, 1, 1, 1, False, 1,
             (2, 2, 16), "halo"),
        conv(rng, "halo k5 p2 Ci=16 Co=24", 16, 24, 5, 1, 2, 1, 1, True, 1, (3, 9, 32), "halo"),
        conv(rng, "halo k3 d2 p2 Ci=32", 32, 16, 3, 1, 2, 2, 1, True, 1, (3, 5, 16), "halo"),
        rows(conv(rng, "halo rows4 ragged OH b2", 16, 16, 3, 1, 1, 1, 1, True, 2, (2, 9, 16),
                  "halo"), 4),
        rows(conv(rng, "halo rows4 Ci=20 (a ragged second chunk) OW48", 20, 8, 3, 1, 1, 1, 1,
                  False, 1, (2, 5, 48), "halo"), 4),
        rows(conv(rng, "halo rows2 Ci=4 b2 (tf32 through registers)", 4, 16, 3, 1, 1, 1, 1,
                  True, 2, (2, 3, 32), "halo"), 2, SEGC_MMA_CPASYNC="0"),
        rows((stats(rng, "halo rows2 stats Co=24 b2 chain", 16, 24, 2, (4, 32, 32), True,
                    chain=True)[0], "halo"), 2),
        rows((stats(rng, "halo rows4 stats group norm", 8, 16, 1, (4, 64, 32), True,
                    groups=2)[0], "halo"), 4),
        rows(conv(rng, "halo rows4 Ci=48 Co=48 (2 rows)", 48, 48, 3, 1, 1, 1, 1, True, 1,
                  (2, 4, 16), "halo"), 4),
        rows(conv(rng, "halo rows4 k(1,3,3) Co=70", 16, 70, (1, 3, 3), 1, (0, 1, 1), 1, 1,
                  True, 1, (2, 6, 32), "halo"), 4),
        rows(conv(rng, "halo rows4 k3 d2 p2", 32, 16, 3, 1, 2, 2, 1, True, 1, (3, 9, 16),
                  "halo"), 4),
        rows(conv(rng, "halo rows4 k5 (the row form)", 16, 24, 5, 1, 2, 1, 1, True, 1,
                  (3, 9, 32), "halo"), 4, False),
        rows(dsmem(conv(rng, "halo rows4 k5 Co=48 (2 rows) in dynamic shared memory", 16, 48,
                        5, 1, 2, 1, 1, True, 1, (2, 8, 16), "halo")), 4, SEGC_CUDA_SMEM="100000"),
        rows((prologue(rng, "halo rows4 prologue Ci=20 b2", 20, 16, 3, 1, 1, 2, (2, 3, 32))[0],
              "halo"), 4),
        rows((prologue(rng, "halo rows2 prologue k3 p1 Co=24", 16, 24, 3, 1, 1, 1,
                       (3, 4, 16))[0], "halo"), 2),
        rows(conv(rng, "halo rows4 +lrelu+residual OW128", 16, 16, 3, 1, 1, 1, 1, True, 1,
                  (2, 5, 128), "halo", chain=True), 4),
    ]


def run(c, mma, tol):
    d = tempfile.mkdtemp(prefix="segc_mma_")
    pro = getattr(c, "prologue", False)
    saved = os.environ.get("SEGC_PROLOGUE")
    cenv = getattr(c, "env", {})
    csaved = {k: os.environ.get(k) for k in cenv}
    os.environ.update(cenv)
    try:
        common.TOL = tol
        if pro:  # prologues are off by default (tools/segc.c): these cases turn them on
            os.environ["SEGC_PROLOGUE"] = "1"
        ok, msg = T.run_case(c, d, False, True)
        if mma is not None:
            src = os.path.join(d, "engine.so.emu.cu")
            used = os.path.exists(src) and "segc_mma_" in open(src).read()
            halo = False
            if mma == "halo":  # the halo form: its row-major A fragments
                halo = used and "segc_frag_ar_t segc_fa" in open(src).read()
                if not halo:
                    ok = False
                    msg += ", halo form not taken"
                msg += ", halo form" if halo else ""
                rw = getattr(c, "rows", None)
                got = halo and row_blocks(open(src).read()) > 0
                if rw is not None and got != rw:
                    ok = False
                    msg += ", row blocks %s" % ("taken" if got else "not taken")
                elif got:
                    msg += ", row blocks"
                used, mma = halo, True
            if used != mma:
                ok = False
                msg += ", tensor-core form %s" % ("taken" if used else "not taken")
            else:
                msg += ", %s" % ("tensor cores" if used else "SIMT form")
            # the row gather (on by default; its 16-byte loads of x) into the column-major A
            # tile; the xrow cases check that it is taken exactly where it applies
            xr = getattr(c, "xrow", None)
            text = open(src).read() if used else ""
            xrow = c.op == "conv3d" and re.search(r"segc_vload[48]w?<", text) is not None
            if xrow and "segc_frag_ar_t segc_fa" in text:
                ok = False
                msg += ", row gather with a row-major A tile"
            elif xr is not None and os.environ.get("SEGC_MMA_XROW") == "1" and xrow != xr:
                ok = False
                msg += ", row gather %s" % ("taken" if xrow else "not taken")
            elif xrow:
                msg += ", row gather"
            fw = getattr(c, "frag", None)
            got = re.search(r"segc_mmar8?\(segc_racc", text) is not None
            if fw is not None and os.environ.get("SEGC_MMA_FRAG") == "1" and got != fw:
                ok = False
                msg += ", register fragments %s" % ("taken" if got else "not taken")
            elif got:
                msg += ", register fragments"
                fu = getattr(c, "env", {}).get("SEGC_MMA_FRAG_UNROLL")
                if fu and "#pragma unroll %s\n" % fu not in text:
                    ok = False
                    msg += ", K loop not unrolled %s times" % fu
                elif fu:
                    msg += ", K loop unrolled %s times" % fu
                rn = getattr(c, "racc", None)
                if rn and "float segc_racc[%d][8]" % rn not in text:
                    ok = False
                    msg += ", not %d accumulators" % rn
                elif rn:
                    msg += ", 256 x %d tiles" % (rn * 4)
            if getattr(c, "dsmem", False):  # the pool as dynamic shared memory, its bytes
                sched = open(os.path.join(d, "engine.so.emu.txt")).read()
                if "extern __shared__" not in text or " smem=" not in sched:
                    ok = False
                    msg += ", no dynamic shared memory"
                else:
                    msg += ", dynamic shared memory"
            if used and not halo and not xrow:
                # the row-major A tile (the default; SEGC_MMA_AROW=0: never): tap-major convs
                # whose A goes through registers (bf16, a prologue, or tf32 without cp.async:
                # the single-buffered loop)
                want = getattr(c, "tapk", False) and (
                    os.environ["SEGC_PRECISION"] == "bf16" or pro or
                    os.environ.get("SEGC_MMA") == "0") and \
                    os.environ.get("SEGC_MMA_AROW") != "0"
                got = re.search(r"segc_vst[48]\(b", text) is not None
                if got != want:
                    ok = False
                msg += ", A row-major" if got else ""
            sk = os.environ.get("SEGC_MMA_SPLITK")
            kk = getattr(c, "K", 0)
            if used and sk and not 16 < kk <= 32:
                # forced split-K: taken exactly where K has 2 steps or more (K > the K step,
                # 16 or 32 by the tiling: not checked in between)
                split = "_kbeg =" in open(src).read()
                if split != (int(sk) > 1 and kk > 32):
                    ok = False
                    msg += ", split-K %s" % ("taken" if split else "not taken")
                elif split:
                    msg += ", split-K"
        if ok and pro:  # fused: fewer kernels than without prologues
            ok, msg = fused_check(d, open(src).read(), msg)
        st = getattr(c, "stats", None)
        # (a tiling forced by the run, not by the case itself: the statistics may not fit)
        forced = any(k in os.environ and k not in getattr(c, "env", {})
                     for k in ("SEGC_MMA_TILE", "SEGC_MMA_SPLITK"))
        if ok and st is not None and used and not forced:  # the statistics from the tiles
            tiles = "_smu =" in open(src).read()
            if tiles != st:
                ok = False
            msg += ", statistics %s the tiles" % ("from" if tiles else "not from")
        return ok, msg
    finally:
        if saved is None:
            os.environ.pop("SEGC_PROLOGUE", None)
        else:
            os.environ["SEGC_PROLOGUE"] = saved
        for k, v in csaved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(d, ignore_errors=True)


def kernel_count(src):
    return src.count('extern "C" __global__')


def fused_check(d, src, msg):
    """the engine's source has fewer kernels than the same graph compiled without prologues"""
    env = dict(os.environ, SEGC_PROLOGUE="0")
    p = subprocess.run([os.environ["SEGC_REAL"], os.path.join(d, "graph.json"), "-o",
                        os.path.join(d, "nopro.so"), "--target", "cuda:sm_90", "--precision",
                        os.environ["SEGC_PRECISION"], "--emit=cuda"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, env=env)
    k1, k0 = kernel_count(src), kernel_count(p.stdout)
    if p.returncode != 0 or k1 >= k0:
        return False, msg + ", prologue not fused (%d kernels, %d without)" % (k1, k0)
    return True, msg + ", prologue fused (%d kernels, %d without)" % (k1, k0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="tf32", choices=sorted(TOLS))
    ap.add_argument("--exact", action="store_true", help="no rounding in the emulated MMAs")
    ap.add_argument("--cases", action="store_true", help="this file's cases (default)")
    ap.add_argument("--ops", action="store_true", help="tests/ops/test_ops.py gemm cases")
    ap.add_argument("--models", action="store_true", help="tiny model cases")
    ap.add_argument("--tilings", action="store_true",
                    help="also run the own tensor-core cases under the forced tilings (TILINGS; "
                    "each tiling a seventh of them, split-K a quarter, rotating)")
    ap.add_argument("--all-tilings", action="store_true",
                    help="with --tilings: every tensor-core case under every tiling")
    ap.add_argument("--arow", action="store_true",
                    help="the tensor-core cases under SEGC_MMA_AROW=1 (AROW tilings)")
    ap.add_argument("--halo", action="store_true",
                    help="the halo-tile form's cases, under SEGC_MMA_HALO=1")
    ap.add_argument("--xrow", action="store_true",
                    help="the row gather's cases, under SEGC_MMA_XROW=1 (bf16)")
    ap.add_argument("--frag", action="store_true",
                    help="the register-fragment form's cases, under SEGC_MMA_FRAG=1")
    ap.add_argument("--only", action="append", default=[],
                    help="run only the cases whose label holds this (repeatable)")
    a = ap.parse_args()
    if not (a.cases or a.ops or a.models or a.halo or a.arow or a.xrow or a.frag):
        a.cases = True
    tol = 1e-4 if a.exact else TOLS[a.precision]
    os.environ["SEGC"] = os.path.join(HERE, "segc_cuda.py")
    os.environ.setdefault("SEGC_REAL", os.path.join(ROOT, "build", "segc"))
    os.environ["SEGC_PRECISION"] = a.precision
    os.environ["SEGC_EMU_EXACT"] = "1" if a.exact else "0"
    if a.exact and a.precision == "bf16":
        # the exact emulation's bf16 is an f32 (4 bytes): no bf16 buffers in global memory, so
        # B stays in registers (the cp.async form is checked exact at tf32, rounded at bf16)
        os.environ["SEGC_MMA_CPASYNC"] = "0"
    tag = "%s%s tol %g" % (a.precision, " exact" if a.exact else "", tol)
    npass = nfail = 0
    # (the own, halo, row-gather, row-major-A and tiling runs check the wmma forms, under
    # SEGC_MMA_FRAG=0: at bf16 the register-fragment form, the default where it applies,
    # would take their convs; the op cases run under the default)
    runs = []
    if a.cases:
        runs.append(({"SEGC_MMA_FRAG": "0"}, own_cases()))
    if a.ops:
        runs.append(({}, [(c, None) for c in T.all_cases()
                          if c.op in ("conv3d", "conv_transpose3d", "linear", "matmul")]))
    if a.halo:
        runs.append(({"SEGC_MMA_HALO": "1", "SEGC_MMA_FRAG": "0"}, halo_cases()))
    if a.xrow:
        runs.append(({"SEGC_MMA_XROW": "1", "SEGC_MMA_FRAG": "0"}, xrow_cases()))
    if a.frag:
        runs.append(({"SEGC_MMA_FRAG": "1"}, frag_cases()))
    if a.arow:  # the tap-major cases (and a column-major one) under each AROW tiling
        cs = [(c, mma) for c, mma in own_cases()
              if mma and (getattr(c, "tapk", False) or c.label.startswith("conv k3 p1"))]
        # every case with the default tiling, half of them (alternating) under each other
        # (--all-tilings: every case under every tiling)
        runs += [(dict(env, SEGC_MMA_AROW="1", SEGC_MMA_FRAG="0"),
                  [cm for j, cm in enumerate(cs) if a.all_tilings or i == 0 or
                   ((i + j) % 2 == 0 and not getattr(cm[0], "env", None))])
                 for i, env in enumerate(AROW)]
    if a.tilings:
        # every forced tiling runs a seventh of the tensor-core cases (rotating: each case
        # under one of the 7 tile and main-loop tilings; the two split-K tilings a quarter,
        # which puts conv, linear, epilogue, prologue and batch-2 cases with several K steps
        # under the forced split) (--all-tilings: every case under every tiling)
        # (128 x 48 and 128 x 64: a quarter of the tap-major cases; 128 x 96: the case that
        # forces it; a case that forces its own tiling keeps it, so runs under the default only)
        for i, env in enumerate(TILINGS):
            t48 = env.get("SEGC_MMA_TILE") in ("128x48", "128x64")
            mod = 4 if "SEGC_MMA_SPLITK" in env or t48 else 7
            cs = [(c, mma) for j, (c, mma) in enumerate(own_cases())
                  if mma and not getattr(c, "env", None) and
                  (getattr(c, "tapk", False) or not t48) and
                  (a.all_tilings or (i + j) % mod == 0)]
            runs.append((dict(env, SEGC_MMA_FRAG="0"), cs))
    for env, cases in runs:
        if a.only:
            cases = [(c, mma) for c, mma in cases if any(o in c.label for o in a.only)]
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        etag = tag + "".join(" %s=%s" % kv for kv in sorted(env.items()))
        for c, mma in cases:
            ok, msg = run(c, mma, tol)
            print("%s %-16s %-34s %s: %s" % ("ok  " if ok else "FAIL", c.op, c.label, etag,
                                             msg))
            sys.stdout.flush()
            npass += ok
            nfail += not ok
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if a.models:
        import test_models
        test_models.TOL = tol
        # (--frag: unet3d, whose convs of 16 channels and more take the form under
        # SEGC_MMA_FRAG=1 in the environment)
        names = ["unet3d"] if a.frag else ["tiny", "tiny-odd"]
        sys.argv = ["test_models.py"] + [x for n in names for x in ("--only", n)]
        # every parallel loop with the lanes of a 128^3 engine's (at bf16: 4 in the
        # elementwise kernels that write bf16 activations)
        os.environ.setdefault("SEGC_CUDA_ILP_MIN", "1")
        try:
            rc = test_models.main()
        except SystemExit as e:
            rc = e.code
        print("%s models %s %s" % ("ok  " if not rc else "FAIL", ", ".join(names), tag))
        npass += not rc
        nfail += bool(rc)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
