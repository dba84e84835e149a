#!/usr/bin/env python3
"""tests/ops/test_bad_input.py -- `segc run` on bad inputs and weights: exit 1, one stderr line.

A small engine (conv3d + relu) is compiled once; then `segc run` gets inputs (.npy) and weights
(.safetensors) that are wrong in one way each: wrong shape, wrong dtype, truncated, garbage,
a header length past the end of the file, a missing / extra / misshapen / mistyped tensor, ...
and a batch of seeded random corruptions (truncations, byte flips, header edits).  Every
deterministic case must exit with status 1 and print exactly one line on stderr; a random
corruption may also succeed (exit 0: it only changed data bytes), but never crash (negative
return code = killed by a signal) or exit with anything but 0 or 1.

    tests/ops/test_bad_input.py [--only SUBSTRING] [--keep] [--random N]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import common  # noqa: E402

XSHAPE = (1, 2, 5, 5, 5)


def graph_doc():
    body = [{"name": "op", "op": "conv3d", "in": ["x"],
             "attrs": {"cout": 3, "kernel": 3, "pad": 1, "bias": True}},
            {"name": "act", "op": "relu"}]
    return common.graph_json("bad_input", [("x", XSHAPE)], body, ["act"])


def good_weights(rng):
    return {"op.weight": rng.standard_normal((3, 2, 3, 3, 3)).astype(np.float32),
            "op.bias": rng.standard_normal((3,)).astype(np.float32)}


def npy_bytes(a):
    import io
    b = io.BytesIO()
    np.save(b, a, allow_pickle=False)
    return b.getvalue()


def st_raw(header, data):
    """a safetensors file from an explicit header dict and data bytes"""
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def deterministic_cases(rng, w):
    """(label, kind 'x' or 'w', bytes or None for a missing file)"""
    x = rng.standard_normal(XSHAPE).astype(np.float32)
    gx = npy_bytes(x)
    gw = common.safetensors_bytes(w)
    hl = struct.unpack("<Q", gw[:8])[0]
    cs = [
        ("npy wrong shape", "x", npy_bytes(np.zeros((1, 2, 5, 5, 4), np.float32))),
        ("npy wrong rank", "x", npy_bytes(x.reshape(2, 5, 5, 5))),
        ("npy wrong dtype f64", "x", npy_bytes(x.astype(np.float64))),
        ("npy wrong dtype i64", "x", npy_bytes(np.zeros(XSHAPE, np.int64))),
        ("npy big-endian", "x", npy_bytes(x.astype(">f4"))),
        ("npy fortran order", "x", npy_bytes(np.asfortranarray(x))),
        ("npy truncated data", "x", gx[:len(gx) - 37]),
        ("npy truncated header", "x", gx[:20]),
        ("npy empty file", "x", b""),
        ("npy garbage", "x", bytes(rng.integers(0, 256, 300, dtype=np.uint8))),
        ("npy header length past end", "x", gx[:8] + b"\xff\xff" + gx[10:]),
        ("npy missing file", "x", None),
        ("st missing tensor", "w", common.safetensors_bytes({"op.weight": w["op.weight"]})),
        ("st extra tensor", "w", common.safetensors_bytes(dict(w, extra=np.zeros(4, np.float32)))),
        ("st wrong shape", "w", common.safetensors_bytes(
            {"op.weight": w["op.weight"].reshape(3, 2, 27), "op.bias": w["op.bias"]})),
        ("st wrong shape 2", "w", common.safetensors_bytes(
            {"op.weight": rng.standard_normal((3, 2, 3, 3, 2)).astype(np.float32),
             "op.bias": w["op.bias"]})),
        ("st wrong dtype", "w", common.safetensors_bytes(
            {"op.weight": w["op.weight"].astype(np.float64), "op.bias": w["op.bias"]})),
        ("st truncated data", "w", gw[:len(gw) - 5]),
        ("st truncated header", "w", gw[:8 + hl // 2]),
        ("st header length past end", "w", struct.pack("<Q", len(gw) + 100) + gw[8:]),
        ("st header length huge", "w", struct.pack("<Q", 1 << 62) + gw[8:]),
        ("st shorter than 8 bytes", "w", gw[:5]),
        ("st empty file", "w", b""),
        ("st header not json", "w", struct.pack("<Q", 16) + b"{not json at all" + gw[8 + hl:]),
        ("st header not an object", "w", st_raw([1, 2, 3], b"")),
        ("st offsets past end", "w", st_raw(
            {"op.weight": {"dtype": "F32", "shape": [3, 2, 3, 3, 3], "data_offsets": [0, 648]},
             "op.bias": {"dtype": "F32", "shape": [3], "data_offsets": [648, 100000]}},
            w["op.weight"].tobytes() + w["op.bias"].tobytes())),
        ("st offsets size mismatch", "w", st_raw(
            {"op.weight": {"dtype": "F32", "shape": [3, 2, 3, 3, 3], "data_offsets": [0, 640]},
             "op.bias": {"dtype": "F32", "shape": [3], "data_offsets": [640, 652]}},
            w["op.weight"].tobytes() + w["op.bias"].tobytes())),
        ("st offsets reversed", "w", st_raw(
            {"op.weight": {"dtype": "F32", "shape": [3, 2, 3, 3, 3], "data_offsets": [648, 0]},
             "op.bias": {"dtype": "F32", "shape": [3], "data_offsets": [648, 660]}},
            w["op.weight"].tobytes() + w["op.bias"].tobytes())),
        ("st unknown dtype", "w", st_raw(
            {"op.weight": {"dtype": "Q7", "shape": [3, 2, 3, 3, 3], "data_offsets": [0, 648]},
             "op.bias": {"dtype": "F32", "shape": [3], "data_offsets": [648, 660]}},
            w["op.weight"].tobytes() + w["op.bias"].tobytes())),
        ("st negative shape", "w", st_raw(
            {"op.weight": {"dtype": "F32", "shape": [3, 2, 3, 3, -3], "data_offsets": [0, 648]},
             "op.bias": {"dtype": "F32", "shape": [3], "data_offsets": [648, 660]}},
            w["op.weight"].tobytes() + w["op.bias"].tobytes())),
        ("st missing file", "w", None),
    ]
    return gx, gw, cs


def mutate(rng, good):
    """one random corruption of good (bytes)"""
    b = bytearray(good)
    kind = int(rng.integers(0, 5))
    if kind == 0:    # truncate anywhere
        return bytes(b[:int(rng.integers(0, len(b)))]), True
    if kind == 1:    # flip a few bytes in the first 128 (the header)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, min(128, len(b))))
            b[i] = int(rng.integers(0, 256))
        return bytes(b), False
    if kind == 2:    # random length field
        b[0:8] = struct.pack("<Q", int(rng.integers(0, 1 << 40)))
        return bytes(b), False
    if kind == 3:    # append junk
        junk = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8)
        return bytes(b) + bytes(junk), False
    # flip bytes anywhere
    for _ in range(int(rng.integers(1, 8))):
        b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
    return bytes(b), False


def check(p, must_fail):
    """(ok, why) for a finished segc run"""
    err = p.stderr.decode(errors="replace").strip()
    lines = err.splitlines()
    if p.returncode < 0:
        return False, "killed by signal %d" % -p.returncode
    if p.returncode not in (0, 1):
        return False, "exit %d: %s" % (p.returncode, err[-300:])
    if p.returncode == 0:
        return (not must_fail), ("exit 0" if must_fail else "accepted (exit 0)")
    if len(lines) != 1:
        return False, "exit 1 with %d stderr lines: %r" % (len(lines), err[-300:])
    return True, "exit 1: %s" % lines[0][:110]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run the cases whose label contains this")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--random", type=int, default=24, help="random corruptions of each file")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    d = tempfile.mkdtemp(prefix="segc-bad-")
    npass = nfail = 0
    try:
        graph = os.path.join(d, "graph.json")
        with open(graph, "w") as f:
            json.dump(graph_doc(), f)
        w = good_weights(rng)
        gx, gw, cs = deterministic_cases(rng, w)
        wpath, xpath = os.path.join(d, "w.safetensors"), os.path.join(d, "x.npy")
        with open(wpath, "wb") as f:
            f.write(gw)
        with open(xpath, "wb") as f:
            f.write(gx)
        eng = os.path.join(d, "engine.so")
        try:
            common.compile_graph(graph, eng)
            common.run_engine(eng, wpath, xpath, os.path.join(d, "y.npy"))
        except Exception as e:  # noqa: BLE001
            print("FAIL setup: cannot compile and run the good case: %s" % e)
            print("0 passed, 1 failed")
            return 1
        for i in range(args.random):
            for kind, good in (("x", gx), ("w", gw)):
                data, must = mutate(rng, good)
                cs.append(("random %s %d" % ("npy" if kind == "x" else "st", i), kind, data, must))
        for c in cs:
            label, kind, data = c[0], c[1], c[2]
            must_fail = c[3] if len(c) > 3 else True
            if args.only and args.only not in label:
                continue
            bad = os.path.join(d, "bad_%s" % ("x.npy" if kind == "x" else "w.safetensors"))
            if os.path.exists(bad):
                os.unlink(bad)
            if data is not None:
                with open(bad, "wb") as f:
                    f.write(data)
            else:
                bad = os.path.join(d, "does-not-exist")
            out = os.path.join(d, "y_bad.npy")
            cmd = [common.segc_path(), "run", eng, "--weights", bad if kind == "w" else wpath,
                   "--input", bad if kind == "x" else xpath, "--output", out]
            try:
                p = common.run_cmd(cmd, timeout=60)
                ok, why = check(p, must_fail)
            except Exception as e:  # noqa: BLE001 -- a timeout is a failure
                ok, why = False, "harness: %s" % e
            print("%s %-30s %s" % ("ok  " if ok else "FAIL", label, why))
            sys.stdout.flush()
            if ok:
                npass += 1
            else:
                nfail += 1
    finally:
        if args.keep:
            print("kept %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
