"""tests/cases/test_batch.py -- batches of cases: `segc run --input-dir --output-dir`.

  * a batch killed with SIGKILL in the middle and resumed gives byte-identical outputs to an
    uninterrupted batch, redoes no finished case (the journal), and neither trusts a
    half-written output nor leaves temporary files;
  * a failing (corrupt) case is reported and skipped, the others are written, exit status 1;
  * --shard 0/2 + --shard 1/2 together give the same outputs;
  * the progress bar shows cases, windows and the time left.
Prints one line per check and "N passed, M failed"."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
sys.path.insert(0, HERE)
import common  # noqa: E402
import nifti_py  # noqa: E402
import tiny  # noqa: E402

SEGC = common.segc_path()
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    print("%s %s%s" % ("ok  " if ok else "FAIL", name, (": " + detail) if detail else ""))
    passed, failed = passed + bool(ok), failed + (not ok)


def outputs(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))
            if not f.startswith(".")}


def main():
    tmp = tempfile.mkdtemp(prefix="segc-batch-")
    T = lambda *n: os.path.join(tmp, *n)  # noqa: E731
    torch.manual_seed(0)
    net = tiny.build(dict(tiny.DEFAULTS, size=8))
    common.write_safetensors(T("w.safetensors"), net.state_dict())
    subprocess.run([SEGC, os.path.join(common.ROOT, "graphs", "tiny.json"), "-D", "size=8",
                    "-o", T("e.so")], check=True, capture_output=True)
    os.mkdir(T("in"))
    rng = np.random.default_rng(3)
    ncase = 6
    for i in range(ncase):  # nnU-Net names: one file per channel
        for c in range(2):
            v = rng.standard_normal((30 + i, 28, 26)).astype(np.float32)
            nifti_py.write(T("in", "case%d_%04d.nii.gz" % (i, c)), v, pixdim=(1, 1, 1.5))
    base = [SEGC, "run", T("e.so"), "--weights", T("w.safetensors"), "--input-dir", T("in"),
            "--mirror", "dhw", "--blend", "gaussian", "--threads", "1"]

    t0 = time.time()
    p = subprocess.run(base + ["--output-dir", T("A"), "--progress"], capture_output=True,
                       text=True)
    ta = time.time() - t0
    A = outputs(T("A"))
    check("uninterrupted batch: %d outputs in %.1f s" % (len(A), ta),
          p.returncode == 0 and len(A) == ncase, p.stderr[-300:])
    check("progress bar shows cases, windows, time left",
          "cases 6/6" in p.stderr and "windows" in p.stderr and "left" in p.stderr)

    # kill -9 after two cases are in the journal
    os.mkdir(T("B"))
    q = subprocess.Popen(base + ["--output-dir", T("B"), "--no-progress"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = T("B", ".segc-journal")
    deadline = time.time() + 60
    while time.time() < deadline and q.poll() is None:
        if os.path.exists(journal) and open(journal).read().count("\ndone ") >= 2:
            break
        time.sleep(0.005)
    q.send_signal(signal.SIGKILL)
    q.wait()
    done_before = open(journal).read().count("\ndone ")
    check("killed with SIGKILL after %d finished case(s)" % done_before,
          q.returncode == -signal.SIGKILL and 2 <= done_before < ncase)
    # what a crash can leave: a half-written output under its final name, a temporary file
    open(T("B", "case5.nii.gz"), "wb").write(b"\x1f\x8b\x08half-written")
    open(T("B", ".case4.nii.gz.tmpXyZ123.nii.gz"), "wb").write(b"partial")
    p = subprocess.run(base + ["--output-dir", T("B"), "--no-progress"], capture_output=True,
                       text=True)
    B = outputs(T("B"))
    left = [f for f in os.listdir(T("B")) if ".tmp" in f]
    check("resumed batch = uninterrupted batch, byte for byte", p.returncode == 0 and A == B,
          p.stderr[-300:])
    check("resume redid no finished case",
          "%d done earlier" % done_before in p.stderr, p.stderr.strip().splitlines()[-1])
    check("no temporary files left", not left, str(left))

    # a corrupt case is reported and skipped
    shutil.copytree(T("in"), T("in2"))
    open(T("in2", "case2_0001.nii.gz"), "wb").write(b"not a nifti file at all")
    p = subprocess.run(base[:6] + [T("in2")] + base[7:] + ["--output-dir", T("C"),
                                                           "--no-progress"],
                       capture_output=True, text=True)
    C = outputs(T("C"))
    check("failing case reported, the others written, exit 1",
          p.returncode == 1 and "case case2: error:" in p.stderr and len(C) == ncase - 1 and
          all(C[f] == A[f] for f in C), p.stderr.strip().splitlines()[-1])

    # shards
    for i in range(2):
        subprocess.run(base + ["--output-dir", T("D"), "--shard", "%d/2" % i, "--no-progress"],
                       check=True, capture_output=True)
    check("--shard 0/2 + 1/2 = the whole batch", outputs(T("D")) == A)

    print("%d passed, %d failed" % (passed, failed))
    if failed == 0:
        shutil.rmtree(tmp)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
