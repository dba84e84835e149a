#!/usr/bin/python3
"""tests/cuda/fake_run.py -- a CUDA engine run through runtime/cuda.c without a GPU.

Builds tests/cuda/fake_cuda.c as a libcuda.so.1 (host memory; kernels from the emulation
library of tests/cuda/segc_cuda.py, the same generated CUDA C compiled for the host), opens the
real CUDA engine.so through the ABI (tests/cuda/segc_api.py) in a child process whose
LD_LIBRARY_PATH finds the fake driver, runs it with host pointers (staging copies, parameter
packing, every launch checked against its schedule line by the fake) and compares the output
with the CPU engine of the same graph at 1e-4.

  fake_run.py GRAPH.json [-D k=v ...]    (one case; prints "ok ..." or "FAIL ...", exit 1)
Env: SEGC (the real segc, default build/segc).
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, HERE)


def child(engine, weights, inp, outp):
    import numpy as np
    import common
    import segc_api
    e = segc_api.Engine(engine)
    e.load_weights(weights)
    out = e.run([common.read_npy(inp)])[0]
    e.close()
    common.write_npy(outp, np.asarray(out))
    return 0


def main(argv):
    if argv and argv[0] == "--child":
        return child(*argv[1:5])
    import common
    segc = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    segc = segc if os.path.isabs(segc) else os.path.join(ROOT, segc)
    graph, extra = argv[0], argv[1:]
    label = " ".join([os.path.basename(graph)] + extra)
    tmp = tempfile.mkdtemp(prefix="segc-fake-")
    j = lambda *p: os.path.join(tmp, *p)
    try:
        os.mkdir(j("lib"))
        subprocess.check_call(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Werror",
                               "-o", j("lib", "libcuda.so.1"),
                               os.path.join(HERE, "fake_cuda.c"), "-ldl"])
        env = dict(os.environ, SEGC_REAL=segc)
        subprocess.check_call([sys.executable, os.path.join(HERE, "segc_cuda.py"), graph, "-o",
                               j("gpu.so")] + extra, env=env)
        common.compile_graph(graph, j("cpu.so"), extra)
        subprocess.check_call([segc, "synth", j("cpu.so"), "--weights", j("w.st"), "--input",
                               j("x.npy")])
        common.run_engine(j("cpu.so"), j("w.st"), [j("x.npy")], [j("ref.npy")])
        # MALLOC_PERTURB_: freed heap memory is overwritten, so a parameter read from
        # freed memory (the bug of issue #6: n behind a realloc'd array) is never right by luck
        env = dict(os.environ, SEGC_FAKE_CUDA_EMU=j("gpu.so.emu.so"), MALLOC_PERTURB_="165",
                   SEGC_FAKE_CUDA_SCHED=j("gpu.so.emu.txt"),
                   LD_LIBRARY_PATH=j("lib") + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", j("gpu.so"),
                            j("w.st"), j("x.npy"), j("out.npy")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if p.returncode != 0:
            print("FAIL %s: %s" % (label, p.stdout.strip()[-1500:]))
            return 1
        err = common.max_rel_err(common.read_npy(j("out.npy")), common.read_npy(j("ref.npy")))
        launches = sum(1 for l in open(j("gpu.so.emu.txt")) if l.startswith("launch "))
        ok = err <= 1e-4
        print("%s %s: runtime/cuda.c on the fake driver, %d launches, max rel err %.2e "
              "against the CPU engine" % ("ok  " if ok else "FAIL", label, launches, err))
        return 0 if ok else 1
    finally:
        subprocess.call(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
