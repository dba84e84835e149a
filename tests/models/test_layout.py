#!/usr/bin/env python3
"""tests/models/test_layout.py -- every shipped graph compiled channels-last against PyTorch.

passes/layout.c with --layout=ndhwc rewrites a whole network channels-last (conv3d_ndhwc,
norm statistics and elementwise work on NDHWC tensors, the Mamba flatten to tokens a view,
permutes only around ops that have no channels-last form).  This runs a small case of each
shipped graph's own model test (its independent PyTorch reference, random weights through
safetensors, the tolerance that test states) with SEGC_LAYOUT=ndhwc in the environment, which
segc reads when --layout is not given.  First it checks that the variable really changes the
compile: each graph's IR must hold conv3d_ndhwc nodes (so the cases cannot pass by running the
default layout).

    tests/models/test_layout.py [--only GRAPH]

One line per case, then `N passed, M failed`; exit status 1 when any case fails.
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# graph, its model test and the arguments that pick a small case
CASES = [
    ("tiny", "test_models.py", ["--only", "tiny-odd"]),
    ("unet3d", "test_models.py", ["--only", "unet3d-C8-s24"]),
    ("segresnet", "test_baselines.py", ["--only", "segresnet-16"]),
    ("basicunet", "test_baselines.py", ["--only", "basicunet-32"]),
    ("segmamba", "test_segmamba.py", ["--only", "v1-C16-s32"]),
    ("segmamba_v2", "test_segmamba.py", ["--only", "v2-C32-s32-reloc-prune"]),
    ("m4fuse", "test_m4fuse.py", ["--only", "T-M2"]),
    ("veloxseg", "test_veloxseg.py", ["--only", "veloxseg-autopet-64", "--no-interp"]),
    ("mamba_home", "test_mamba_home.py", ["--no-interp"]),
]
SMALL = {"segmamba": ["-D", "C=16", "-D", "size=32"], "segmamba_v2": ["-D", "size=32"],
         "mamba_home": ["-D", "D=16", "-D", "H=16", "-D", "W=32"]}


def segc_bin():
    b = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def ir_has_ndhwc(graph):
    cmd = [segc_bin(), os.path.join(ROOT, "graphs", graph + ".json"), "--emit=ir"]
    cmd += SMALL.get(graph, [])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300,
                       env=dict(os.environ, SEGC_LAYOUT="ndhwc"))
    if p.returncode != 0:
        return "segc --emit=ir failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    if "= conv3d_ndhwc " not in p.stdout:
        return "SEGC_LAYOUT=ndhwc left no conv3d_ndhwc in the IR"
    return None


# bad values: exit status 2 (usage) with one line naming what was expected
BAD = [
    (["--layout=nhwc"], {}, 2, "--layout expects auto, ncdhw or ndhwc, got 'nhwc'"),
    ([], {"SEGC_LAYOUT": "channels_last"}, 2,
     "SEGC_LAYOUT expects auto, ncdhw or ndhwc, got 'channels_last'"),
]


def bad_flags():
    """the usage errors; returns (passed, failed)"""
    ok = bad = 0
    graph = os.path.join(ROOT, "graphs", "tiny.json")
    for flags, env, want_rc, want in BAD:
        p = subprocess.run([segc_bin(), graph, "--emit=ir"] + flags, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
                           env=dict(os.environ, **env))
        err = p.stderr.strip().splitlines()
        if p.returncode == want_rc and err and want in err[0]:
            ok += 1
            print("ok   bad %s %s: %s" % (" ".join(flags), env, err[0]))
        else:
            bad += 1
            print("FAIL bad %s %s: exit %d, stderr %r, expected exit %d and %r" %
                  (" ".join(flags), env, p.returncode, err[:2], want_rc, want))
    return ok, bad


def cuda_compiles():
    """unet3d channels-last for sm_90 at tf32 through NVRTC: every conv a conv3d_ndhwc on
    tensor cores (tests/cuda/test_conv_cl.py runs those forms); (passed, failed), (0, 0)
    without NVRTC"""
    lib = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "lib64")
    if not os.path.isdir(lib) or not any(f.startswith("libnvrtc.so") for f in os.listdir(lib)):
        print("skip cuda: no NVRTC under %s" % lib)
        return 0, 0
    cmd = [segc_bin(), os.path.join(ROOT, "graphs", "unet3d.json"), "--target=cuda:sm_90",
           "--precision=tf32", "--layout=ndhwc", "--emit=cuda"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    n = p.stdout.count("_conv3d_ndhwc")
    if p.returncode == 0 and n > 0 and "mma" in p.stdout:
        print("ok   cuda unet3d --layout=ndhwc tf32: %d conv3d_ndhwc mentions, tensor cores" % n)
        return 1, 0
    print("FAIL cuda unet3d --layout=ndhwc tf32: exit %d, %d conv3d_ndhwc kernels: %s" % (
        p.returncode, n, (p.stderr.strip().splitlines() or [""])[0]))
    return 0, 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="run only these graphs")
    a = ap.parse_args()
    npass, nfail = bad_flags() if not a.only else (0, 0)
    if not a.only:
        p, f = cuda_compiles()
        npass, nfail = npass + p, nfail + f
    for graph, test, args in CASES:
        if a.only and graph not in a.only:
            continue
        t0 = time.time()
        why = ir_has_ndhwc(graph)
        if not why:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "models", test)] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=900,
                               env=dict(os.environ, SEGC_LAYOUT="ndhwc"))
            lines = p.stdout.strip().splitlines()
            if p.returncode != 0 or not lines or " 0 failed" not in lines[-1] or \
                    lines[-1].startswith("0 passed"):
                why = "\n    ".join(lines[-6:]) or "exit %d" % p.returncode
        if why:
            nfail += 1
            print("FAIL layout=ndhwc %s (%s %s): %s" % (graph, test, " ".join(args), why))
        else:
            npass += 1
            print("ok   layout=ndhwc %s (%s %s): %s (%.1fs)" % (graph, test, " ".join(args),
                                                          lines[-1], time.time() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
