#!/usr/bin/python3
"""bench/tune_measure.py -- `segc tune --stage measure` where the segc binary does not run.

    python3 bench/tune_measure.py [--repeat N] [--rounds R] [--pack OUT.tar.xz] [--budget S]
                                  DIR ...

Each DIR is a folder of `segc tune --stage build` (plan, v0.so ... vK.so, w.safetensors, x.npy;
without the last two -- too large to carry at 128^3 -- random weights, uniform within
1/sqrt(fan_in) as bench/gpu_profile.py makes them, and a normal random input, seeded, the same
for every variant). Every variant's engine is opened through the engine ABI
(tests/cuda/segc_api.py; a GPU machine needs only numpy and the driver), its weights loaded, and
run N times (default 5: the first is the warm-up the profile leaves out) with
SEGC_PROFILE=DIR/vK.prof, which the runtime writes when the engine closes (CUDA engines: each
kernel between two CUDA events), the variants in turn, R rounds (default 2: DIR/vK.prof,
vK.prof.1; segc tune keeps each kernel's fastest round); DIR/vK.err gets its output's max |a -
b| / max |b| against v0's, or "failed: ...". Those are the files `segc tune --stage choose --dir
DIR -o TUNE.json` reads. --pack writes every DIR's .prof and .err files (and plan) into one
archive, the one file a lent GPU machine sends back; --budget S stops starting variants after S
seconds (the ones not run are "failed: no time").
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cuda"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, HERE)


def variants(d):
    """the variant specs of DIR/plan, in order"""
    with open(os.path.join(d, "plan")) as f:
        lines = f.read().splitlines()
    if not lines or lines[0] != "segc-tune-plan 1":
        raise SystemExit("%s/plan: not a plan of segc tune --stage build" % d)
    return [l[len("variant "):] for l in lines if l.startswith("variant ")]


def max_rel(a, b):
    import numpy as np
    if a.shape != b.shape:
        return float("inf")
    den = float(np.max(np.abs(b))) if b.size else 0.0
    num = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
    if np.isnan(a).any() != np.isnan(b).any():
        return float("inf")
    return num / den if den > 0 else num


def inputs(d):
    """DIR/w.safetensors and DIR/x.npy, made where missing: random weights and input, seeded
    (in a child process: the engine it opens to read the weights' shapes is closed with it)"""
    wp, xp = os.path.join(d, "w.safetensors"), os.path.join(d, "x.npy")
    if os.path.exists(wp) and os.path.exists(xp):
        return
    subprocess.check_call([sys.executable, os.path.abspath(__file__), "--inputs", d])


def make_inputs(d):
    import numpy as np
    import segc_api
    import gpu_profile
    e = segc_api.Engine(os.path.join(d, "v0.so"))
    try:
        rng = np.random.default_rng(0)
        w = gpu_profile.random_weights(e, rng)
        (_, dt, shape), = e.inputs[:1]
        x = rng.standard_normal(shape).astype(np.float32) if np.dtype(dt) == np.float32 \
            else np.zeros(shape, dtype=dt)
    finally:
        e.close()
    with open(os.path.join(d, "w.safetensors.tmp"), "wb") as f:
        f.write(w)
    os.replace(os.path.join(d, "w.safetensors.tmp"), os.path.join(d, "w.safetensors"))
    np.save(os.path.join(d, "x.tmp.npy"), x)
    os.replace(os.path.join(d, "x.tmp.npy"), os.path.join(d, "x.npy"))


def run_variant(d, k, repeat, prof):
    """engine vK.so of DIR: its weights and input, repeat runs with SEGC_PROFILE=prof; its
    outputs"""
    import common
    import segc_api
    x = common.read_npy(os.path.join(d, "x.npy"))
    os.environ["SEGC_PROFILE"] = prof  # read when the engine opens
    try:
        e = segc_api.Engine(os.path.join(d, "v%d.so" % k))
        try:
            e.load_weights(os.path.join(d, "w.safetensors"))
            for _ in range(repeat):
                y = e.run([x])
        finally:
            e.close()  # writes the profile
    finally:
        os.environ.pop("SEGC_PROFILE", None)
    return y


def child(d, r, k0, repeat, deadline):
    """round r of DIR from variant k0 on, in this process; after a variant that failed (a GPU
    fault makes the process's context unusable) it writes DIR/.next and exits 4"""
    import numpy as np
    specs = variants(d)
    for k in range(k0, len(specs)):
        prof = os.path.join(d, "v%d.prof" % k + (".%d" % r if r else ""))
        errp = os.path.join(d, "v%d.err" % k)
        if r and (not os.path.exists(errp) or open(errp).read().startswith("failed")):
            continue
        t0 = time.time()
        if time.time() > deadline:
            msg = "failed: no time"
        elif not os.path.exists(os.path.join(d, "v%d.so" % k)):
            msg = "failed: not built (v%d.log)" % k
        else:
            try:
                y = run_variant(d, k, repeat, prof)
                if k == 0 and r == 0:
                    np.savez(os.path.join(d, "y0.npz"), *y)
                base = np.load(os.path.join(d, "y0.npz"))
                msg = "%.6e" % max(max_rel(a, base["arr_%d" % i]) for i, a in enumerate(y))
            except Exception as ex:  # noqa: BLE001 -- reported in vK.err
                msg = "failed: %s" % (str(ex).strip().splitlines() or ["?"])[0][:300]
        if r == 0:
            with open(errp, "w") as f:
                f.write(msg + "\n")
            print("%s v%d (%s): %s, %.1f s" % (d, k, specs[k], msg, time.time() - t0),
                  flush=True)
        # (a variant not built -- left out by the build stage -- ran nothing: no new process)
        if msg.startswith("failed") and k + 1 < len(specs) and msg != "failed: no time" and \
                not msg.startswith("failed: not built"):
            with open(os.path.join(d, ".next"), "w") as f:
                f.write("%d\n" % (k + 1))
            return 4
    return 0


def measure_dir(d, repeat, rounds, deadline):
    """the variants in turn, round after round (segc tune's measure): vK.prof, vK.prof.1, ...
    and vK.err from the first round; a child process per round, a new one after a failure"""
    inputs(d)
    specs = variants(d)
    for k in range(len(specs)):
        for name in os.listdir(d):
            if name == "v%d.prof" % k or name.startswith("v%d.prof." % k):
                os.unlink(os.path.join(d, name))
    for r in range(rounds):
        k = 0
        while k < len(specs):
            rc = subprocess.call([sys.executable, os.path.abspath(__file__), "--child", d,
                                  str(r), str(k), str(repeat), repr(deadline)])
            if rc != 4:
                break
            k = int(open(os.path.join(d, ".next")).read())
        errp = os.path.join(d, "v0.err")
        if not os.path.exists(errp) or open(errp).read().startswith("failed"):
            print("%s: the base variant failed; its other variants are not measured" % d)
            return


def main(argv):
    if argv[:1] == ["--inputs"]:
        return make_inputs(argv[1])
    if argv[:1] == ["--child"]:
        return child(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pack", help="archive of the results (.tar.xz)")
    ap.add_argument("--budget", type=float, default=1e9, help="seconds")
    a = ap.parse_args(argv)
    a.dirs = [os.path.normpath(d) for d in a.dirs]
    deadline = time.time() + a.budget
    for d in a.dirs:
        try:
            measure_dir(os.path.abspath(d), max(a.repeat, 2), max(a.rounds, 1), deadline)
        except Exception as ex:  # noqa: BLE001 -- one folder's failure, the next goes on
            print("%s: %s" % (d, ex))
    if a.pack:
        files = []
        for d in a.dirs:
            for name in sorted(os.listdir(d)):
                if name == "plan" or name.endswith(".err") or ".prof" in name:
                    files.append(os.path.join(d, name))
        subprocess.check_call(["tar", "-cJf", a.pack] + files)
        print("packed %d files into %s" % (len(files), a.pack))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
