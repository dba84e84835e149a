#!/usr/bin/env python3
"""tests/ops/test_ops_velox.py -- the VeloxSeg ops (ir/ops_velox.def) against PyTorch.

pwa_gather, pwa_scatter, pwa_rel_bias and pixel_shuffle3d, plus a PWA attention chain
(gather -> QK^T -> + bias -> softmax -> AV -> scatter), each as a tiny graph compiled
(`segc GRAPH -o ENGINE.so` + `segc run`) and run through `segc interp`; both must match an
independent PyTorch implementation (written from the VeloxSeg spec, m4fuse-veloxseg.md §3.3)
within max rel err 1e-4.  Uses the harness of tests/ops/test_ops.py.

    tests/ops/test_ops_velox.py [--only OP[,OP...]] [--keep]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
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
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from test_ops import Case, run_case, randn, t  # noqa: E402

torch.set_num_threads(1)


def pairs(grid, window, small, r):
    """[(B_i, S_i)] while any axis of B_i <= grid (VeloxSeg's window loop)."""
    out, B, S = [], list(window), list(small)
    while any(b <= g for b, g in zip(B, grid)):
        out.append((tuple(B), tuple(S)))
        B, S = [b * r for b in B], [s * r for s in S]
    return out


def ref_gather(xs, heads, window, small, r):
    """(N, heads, sum N_i, M*l, dim): max over each small window, windows of every pair."""
    N, C = xs[0].shape[:2]
    grid = xs[0].shape[2:]
    ps = pairs(grid, window, small, r)
    dim = C // (len(ps) * heads)
    n = [w // s for w, s in zip(window, small)]
    mods = []
    for x in xs:
        per = []
        for i, (B, S) in enumerate(ps):
            xi = x[:, i * heads * dim:(i + 1) * heads * dim]
            xi = F.max_pool3d(xi, S, S) if max(S) > 1 else xi
            Nw = [g // b for g, b in zip(grid, B)]
            xi = xi.reshape(N, heads, dim, Nw[0], n[0], Nw[1], n[1], Nw[2], n[2])
            xi = xi.permute(0, 1, 3, 5, 7, 4, 6, 8, 2)
            per.append(xi.reshape(N, heads, -1, n[0] * n[1] * n[2], dim))
        mods.append(torch.cat(per, 2))
    return torch.cat(mods, 3)


def ref_scatter(a, grid, window, small, r, modality):
    """inverse of ref_gather for one modality: per-window trilinear (align_corners) upsample"""
    N, heads, _, _, dim = a.shape
    ps = pairs(grid, window, small, r)
    n = [w // s for w, s in zip(window, small)]
    l = n[0] * n[1] * n[2]
    a = a[:, :, :, modality * l:(modality + 1) * l]
    out, off = [], 0
    for B, S in ps:
        Nw = [g // b for g, b in zip(grid, B)]
        k = Nw[0] * Nw[1] * Nw[2]
        w = a[:, :, off:off + k].reshape(N, heads, k, n[0], n[1], n[2], dim)
        off += k
        w = w.permute(0, 1, 6, 2, 3, 4, 5).reshape(-1, 1, n[0], n[1], n[2])
        if list(B) != n:
            w = F.interpolate(w, size=B, mode="trilinear", align_corners=True)
        w = w.reshape(N, heads * dim, Nw[0], Nw[1], Nw[2], B[0], B[1], B[2])
        w = w.permute(0, 1, 2, 5, 3, 6, 4, 7).reshape(N, heads * dim, *grid)
        out.append(w)
    return torch.cat(out, 1)


def rel_index(n):
    """(l, l) relative position index as in Swin/VeloxSeg's relative_position_index"""
    c = torch.stack(torch.meshgrid([torch.arange(k) for k in n], indexing="ij")).flatten(1)
    d = c[:, :, None] - c[:, None, :]
    for k in range(3):
        d[k] += n[k] - 1
    return (d[0] * (2 * n[1] - 1) + d[1]) * (2 * n[2] - 1) + d[2]


def ref_bias(table, n, heads, reps):
    b = table[rel_index(n).reshape(-1)].reshape(rel_index(n).shape + (heads,))
    b = b.permute(2, 0, 1)
    return b.repeat(1, reps, reps).unsqueeze(1)


def pwa_attrs(heads, window, small, r):
    return {"heads": heads, "window": list(window), "small": list(small), "r": r}


def cases_gather(rng):
    out = []
    for (N, C, grid, heads, window, small, M) in [
            (1, 12, (8, 8, 8), 1, (2, 2, 2), (1, 1, 1), 1),
            (1, 24, (12, 12, 12), 2, (3, 3, 3), (1, 1, 1), 2),
            (2, 12, (4, 4, 4), 3, (2, 2, 2), (1, 1, 1), 1),
            (1, 8, (8, 8, 4), 2, (4, 4, 2), (2, 2, 1), 2),
            (1, 16, (16, 16, 8), 2, (2, 2, 1), (1, 1, 1), 2),
            (1, 64, (2, 2, 1), 4, (2, 2, 1), (1, 1, 1), 2)]:
        xs = [randn(rng, (N, C) + grid) for _ in range(M)]
        ref = ref_gather([t(x) for x in xs], heads, window, small, 2).numpy()
        names = ["x%d" % i for i in range(M)]
        node = {"name": "g", "op": "pwa_gather", "in": names,
                "attrs": pwa_attrs(heads, window, small, 2)}
        out.append(Case("pwa_gather", "N%d C%d %s h%d w%s M%d" % (N, C, grid, heads, window, M),
                        list(zip(names, xs)), [node], ["g"], {}, [ref]))
    return out


def cases_scatter(rng):
    out = []
    for (N, heads, dim, grid, window, small, M, mod) in [
            (1, 1, 4, (8, 8, 8), (2, 2, 2), (1, 1, 1), 1, 0),
            (1, 2, 3, (12, 12, 12), (3, 3, 3), (1, 1, 1), 2, 1),
            (2, 2, 2, (4, 4, 4), (2, 2, 2), (1, 1, 1), 2, 0),
            (1, 1, 2, (8, 8, 4), (4, 4, 2), (2, 2, 1), 1, 0),
            (1, 2, 2, (16, 16, 8), (2, 2, 1), (1, 1, 1), 2, 1),
            (1, 4, 32, (2, 2, 1), (2, 2, 1), (1, 1, 1), 2, 1)]:
        ps = pairs(grid, window, small, 2)
        n = [w // s for w, s in zip(window, small)]
        l = n[0] * n[1] * n[2]
        nw = sum((grid[0] // B[0]) * (grid[1] // B[1]) * (grid[2] // B[2]) for B, _ in ps)
        a = randn(rng, (N, heads, nw, M * l, dim))
        ref = ref_scatter(t(a), grid, window, small, 2, mod).numpy()
        attrs = pwa_attrs(heads, window, small, 2)
        del attrs["heads"]
        attrs.update({"grid": list(grid), "modality": mod})
        node = {"name": "s", "op": "pwa_scatter", "in": ["x"], "attrs": attrs}
        out.append(Case("pwa_scatter", "N%d h%d d%d %s w%s M%d m%d" % (N, heads, dim, grid,
                        window, M, mod), [("x", a)], [node], ["s"], {}, [ref]))
    return out


def cases_rel_bias(rng):
    out = []
    for (heads, window, small, reps) in [(1, (3, 3, 3), (1, 1, 1), 2), (2, (4, 4, 2), (1, 1, 1), 1),
                                         (4, (2, 3, 2), (1, 1, 1), 3), (2, (2, 2, 1), (1, 1, 1), 2)]:
        n = [w // s for w, s in zip(window, small)]
        R = (2 * n[0] - 1) * (2 * n[1] - 1) * (2 * n[2] - 1)
        l = n[0] * n[1] * n[2]
        table = randn(rng, (R, heads))
        x = randn(rng, (heads, 1, reps * l, reps * l))
        ref = (t(x) + ref_bias(t(table), n, heads, reps)).numpy()
        body = [{"name": "pe", "op": "pwa_rel_bias", "in": [],
                 "attrs": {"heads": heads, "window": list(window), "small": list(small),
                           "reps": reps}},
                {"name": "y", "op": "add", "in": ["x", "pe"]}]
        out.append(Case("pwa_rel_bias", "h%d w%s reps%d" % (heads, window, reps), [("x", x)],
                        body, ["y"], {"pe.relative_position_bias_table": table}, [ref]))
    return out


def cases_pixel_shuffle(rng):
    out = []
    for (N, C, r, sp) in [(1, 2, 2, (3, 4, 5)), (2, 3, 4, (2, 2, 3)), (1, 5, 1, (2, 3, 2))]:
        x = randn(rng, (N, C * r ** 3) + sp)
        ref = t(x).reshape(N, C, r, r, r, *sp).permute(0, 1, 5, 2, 6, 3, 7, 4)
        ref = ref.reshape(N, C, sp[0] * r, sp[1] * r, sp[2] * r).numpy()
        node = {"name": "ps", "op": "pixel_shuffle3d", "in": ["x"], "attrs": {"r": r}}
        out.append(Case("pixel_shuffle3d", "N%d C%d r%d %s" % (N, C, r, sp), [("x", x)], [node],
                        ["ps"], {}, [ref]))
    return out


def cases_attention(rng):
    """gather(q,k,v of 2 modalities) -> softmax(q k^T * s + bias) v -> scatter, both modalities"""
    out = []
    for (C, grid, heads, window, dqk) in [(12, (8, 8, 8), 1, (2, 2, 2), 4),
                                          (24, (12, 12, 12), 2, (3, 3, 3), 8)]:
        M = 2
        ps = pairs(grid, window, (1, 1, 1), 2)
        n = list(window)
        R = (2 * n[0] - 1) * (2 * n[1] - 1) * (2 * n[2] - 1)
        cqk = len(ps) * heads * dqk
        qs = [randn(rng, (1, cqk) + grid) for _ in range(M)]
        ks = [randn(rng, (1, cqk) + grid) for _ in range(M)]
        vs = [randn(rng, (1, C) + grid) for _ in range(M)]
        table = randn(rng, (R, heads))
        att = pwa_attrs(heads, window, (1, 1, 1), 2)
        Q = ref_gather([t(a) for a in qs], heads, window, (1, 1, 1), 2)
        K = ref_gather([t(a) for a in ks], heads, window, (1, 1, 1), 2)
        V = ref_gather([t(a) for a in vs], heads, window, (1, 1, 1), 2)
        s = Q @ K.transpose(-1, -2) * dqk ** -0.5 + ref_bias(t(table), n, heads, M)
        A = torch.softmax(s, -1) @ V
        refs = [ref_scatter(A, grid, window, (1, 1, 1), 2, m).numpy() for m in range(M)]
        sg = {"grid": list(grid), "window": list(window), "small": [1, 1, 1], "r": 2}
        body = [
            {"name": "q", "op": "pwa_gather", "in": ["q0", "q1"], "attrs": att},
            {"name": "k", "op": "pwa_gather", "in": ["k0", "k1"], "attrs": att},
            {"name": "v", "op": "pwa_gather", "in": ["v0", "v1"], "attrs": att},
            {"name": "kt", "op": "permute", "in": ["k"], "attrs": {"perm": [0, 1, 2, 4, 3]}},
            {"name": "s", "op": "matmul", "in": ["q", "kt"]},
            {"name": "s2", "op": "mul", "in": ["s", dqk ** -0.5]},
            {"name": "pe", "op": "pwa_rel_bias", "in": [],
             "attrs": {"heads": heads, "window": list(window), "reps": M}},
            {"name": "s3", "op": "add", "in": ["s2", "pe"]},
            {"name": "p", "op": "softmax", "in": ["s3"], "attrs": {"axis": -1}},
            {"name": "a", "op": "matmul", "in": ["p", "v"]},
            {"name": "y0", "op": "pwa_scatter", "in": ["a"], "attrs": dict(sg, modality=0)},
            {"name": "y1", "op": "pwa_scatter", "in": ["a"], "attrs": dict(sg, modality=1)},
        ]
        ins = [("q0", qs[0]), ("q1", qs[1]), ("k0", ks[0]), ("k1", ks[1]), ("v0", vs[0]),
               ("v1", vs[1])]
        out.append(Case("pwa_attention", "C%d %s h%d w%s" % (C, grid, heads, window), ins, body,
                        ["y0", "y1"], {"pe.relative_position_bias_table": table}, refs))
    return out


def all_cases():
    rng = np.random.default_rng(4)
    cs = []
    for f in (cases_gather, cases_scatter, cases_rel_bias, cases_pixel_shuffle,
              cases_attention):
        cs += f(rng)
    return cs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated op names")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    npass = nfail = 0
    t0 = time.time()
    for c in all_cases():
        if only and c.op not in only:
            continue
        d = tempfile.mkdtemp(prefix="segc-velox-op-")
        try:
            ok, msg = run_case(c, d, True, True)
        except Exception as e:  # noqa: BLE001 -- reported as a failed case
            ok, msg = False, "harness: %s" % e
        print("%s %-16s %-44s %s" % ("ok  " if ok else "FAIL", c.op, c.label, msg))
        sys.stdout.flush()
        npass, nfail = npass + ok, nfail + (not ok)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print("  kept %s" % d)
    print("(%.1fs)" % (time.time() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
