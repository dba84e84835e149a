#!/usr/bin/python3
"""tests/cuda/fake_run.py -- a CUDA engine run through runtime/cuda.c without a GPU.

Builds tests/cuda/fake_cuda.c as a libcuda.so.1 (host memory; kernels from the emulation
library of tests/cuda/segc_cuda.py, the same generated CUDA C compiled for the host), and a
second one without the cuGraph* entry points (-DFAKE_NO_GRAPHS, an old driver).  Opens the real
CUDA engine.so through the ABI (tests/cuda/segc_api.py) in child processes whose
LD_LIBRARY_PATH finds a fake driver, and checks every output against the CPU engine of the same
graph at 1e-4, and the fake's counters (segc_fake_cuda_stats) against what runtime/cuda.c must
have done.  The scenarios, one child each:

  graphs     run x3 (one graph built, then replayed: no parameter update, no plain launch);
             run_device with two sets of device pointers, A, B, A (the graph's kernel nodes
             updated; B's run leaves A's output alone); run again (back to staging); weights
             reloaded, run again; other weights loaded (the prepack launches run again: the
             output matches the CPU engine with those weights), then the first ones again
  nographs   SEGC_CUDA_GRAPHS=0: run, run_device A, B: plain launches only
  olddriver  the driver without graph symbols: run, plain launches
  instfail   cuGraphInstantiateWithFlags fails: the run falls back to plain launches
  sticky     the 2nd kernel faults: SEGC_ERR_DEVICE naming CUDA_ERROR_ILLEGAL_ADDRESS and saying
             the engine cannot run again; the next run and run_device refuse clearly
  badenv     SEGC_CUDA_GRAPHS=yes: open refuses with SEGC_ERR_INVALID_ARGUMENT
  strict     SEGC_CUDA_GRAPHS=2 and cuGraphInstantiateWithFlags fails: load_weights refuses
             with SEGC_ERR_DEVICE (no silent fallback)
  strictold  SEGC_CUDA_GRAPHS=2 and the driver without graph symbols: open refuses with
             SEGC_ERR_UNSUPPORTED
  profile    SEGC_PROFILE=FILE: run x3, plain launches between events (no graph), and at close
             a report in FILE naming every launched kernel (the "k=" fields) with its time
  profileold the same on the driver without events (and graphs): synchronised launches
  real       the --real mode below (its child, SEGC_CUDA_GRAPHS=2), on the fake driver
  smemcap    (engines with dynamic shared memory, "smem=" launches: SEGC_CUDA_SMEM) a GPU of
             40000 bytes of shared memory a block: open refuses with SEGC_ERR_UNSUPPORTED
             naming the bytes; every other scenario checks that each such launch passes its
             bytes and that cuFuncSetAttribute raised the function's limit first

  fake_run.py GRAPH.json [-D k=v ...]    (one case; prints "ok ..." or "FAIL ...", exit 1;
                                          $SEGC_FAKE_ONLY="graphs smemcap": those scenarios)

Range records (docs/abi.md): `fake_run.py --ranges` compiles a graph whose i64 input `route`
selects per sample between two branches (select_by_index, so the manifest has `range route 0
2`) and checks, on the fake driver, that run and run_device accept labels in [0, 2) (outputs
against numpy) and refuse -1 and 2 with SEGC_ERR_INVALID_ARGUMENT naming the element, before
any kernel runs (the fake's kernel counter does not move), the engine still usable after.
Env: SEGC (the real segc, default build/segc).

`fake_run.py --tune` runs `segc tune` for cuda:sm_90 tf32 on the fake driver (each engine's
emulation found beside it; the variants compiled through tests/cuda/segc_cuda.py, named by
$SEGC_TUNE_COMPILE): every variant's kernels timed between events (SEGC_PROFILE through
runtime/cuda.c), outputs compared, the file written with every kernel key of the graph, a
variant's knobs only where its code differs from base's (the fingerprints of --emit=keys), and
the tuned engine compiled and run; then bench/tune_measure.py measures the same folder (what a
GPU machine without segc runs: several engines in one process) and `--stage choose` reads it.

On a GPU machine (no segc needed; numpy), the same checks on the real driver for
prepared model cases (tests/cuda/gpu_prep.py: build/gpu-cases/models/<name>/ with engine.so,
w.safetensors, x.npy, ref.npy), one child per mode SEGC_CUDA_GRAPHS=2 (graphs or an error),
0 (plain launches) and unset (the default): run x3 and run_device on device buffers A, B, A
(cuMemAlloc through ctypes) against ref.npy at 1e-4, B leaving A's output alone, then the median latency of run_device
and run over 20 runs; prints one line per mode and the speedup of graphs over plain launches:

  fake_run.py --real build/gpu-cases/models/tiny [DIR ...]
"""
import ctypes
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, HERE)

STATS = ["launch", "graph_launch", "kernels", "instantiate", "setparams", "nodes", "events"]
SCENARIOS = ["graphs", "nographs", "olddriver", "instfail", "sticky", "badenv", "strict",
             "strictold", "profile", "profileold", "real"]


class Child:
    """the engine on the fake driver, and the checks of one scenario"""

    def __init__(self, engine, weights, inp, ref):
        import common
        import segc_api
        self.common, self.api = common, segc_api
        self.engine, self.weights = engine, weights
        self.x = common.read_npy(inp)
        self.ref = common.read_npy(ref)
        self.e = None
        self.drv = None

    def open(self):
        self.e = self.api.Engine(self.engine)
        self.loads = 0
        self.load(self.weights)
        self.drv = ctypes.CDLL("libcuda.so.1")  # the fake the engine loaded
        sched = open(os.environ["SEGC_FAKE_CUDA_SCHED"]).read().splitlines()
        self.nlaunch = sum(1 for l in sched if l.startswith("launch "))
        self.npack = sum(1 for l in sched if l.startswith("pack "))

    def load(self, weights):
        self.e.load_weights(weights)
        self.loads += 1

    def stats(self, raw=False):
        """the fake's counters; unless raw, less the prepack launches (plain launches, one
        set per load_weights), so that the expectations count the run's kernels"""
        out = (ctypes.c_longlong * 8)()
        self.drv.segc_fake_cuda_stats(out)
        s = dict(zip(STATS, out))
        if not raw:
            s["launch"] -= self.npack * self.loads
            s["kernels"] -= self.npack * self.loads
        return s

    def expect(self, what, raw=False, **want):
        got = self.stats(raw)
        bad = ["%s=%d (expected %s)" % (k, got[k], v) for k, v in want.items()
               if not (v(got[k]) if callable(v) else got[k] == v)]
        if bad:
            raise AssertionError("%s: fake driver counters %s" % (what, ", ".join(bad)))

    def check(self, what, out, ref=None):
        err = self.common.max_rel_err(out, self.ref if ref is None else ref)
        if not err <= 1e-4:
            raise AssertionError("%s: max rel err %.2e against the CPU engine" % (what, err))

    def run(self, what):
        self.check(what, self.e.run([self.x])[0])

    def devset(self):
        """device buffers for every input and output; input 0 holds x, outputs are NaN"""
        import numpy as np
        bufs = []
        for i, (_, dt, shape) in enumerate(self.e.inputs + self.e.outputs):
            n = int(np.prod(shape)) * np.dtype(dt).itemsize
            p = ctypes.c_uint64()
            if self.drv.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(max(n, 1))) != 0:
                raise AssertionError("cuMemAlloc failed")
            if i == 0:
                src = np.ascontiguousarray(self.x, dtype=dt)
                ctypes.memmove(p.value, src.ctypes.data, n)
            else:
                ctypes.memset(p.value, 0xff, n)
            bufs.append((p.value, dt, shape, n))
        ni = len(self.e.inputs)
        return bufs[:ni], bufs[ni:]

    def fetch(self, buf):
        import numpy as np
        p, dt, shape, n = buf
        out = np.empty(shape, dtype=dt)
        ctypes.memmove(out.ctypes.data, p, n)
        return out

    def run_device(self, what, ins, outs):
        self.e.run_device([b[0] for b in ins], [b[0] for b in outs])
        self.check(what, self.fetch(outs[0]))

    def refused(self, what, fn, status, *words):
        try:
            fn()
        except self.api.SegcError as ex:
            msg = str(ex)
            if "status %d:" % status not in msg or any(w not in msg for w in words):
                raise AssertionError("%s: expected status %d naming %s, got: %s"
                                     % (what, status, " and ".join(words), msg))
            return
        raise AssertionError("%s: succeeded, expected status %d" % (what, status))

    def graphs(self):
        L = self.nlaunch
        for i in range(3):
            self.run("run %d" % (i + 1))
        self.expect("run x3", instantiate=1, graph_launch=3, launch=0, kernels=3 * L,
                    setparams=0, nodes=L)
        ia, oa = self.devset()
        ib, ob = self.devset()
        self.run_device("run_device A", ia, oa)
        ctypes.memset(oa[0][0], 0xff, oa[0][3])
        self.run_device("run_device B", ib, ob)
        if not (self.fetch(oa[0]).view("u1") == 0xff).all():
            raise AssertionError("run_device B wrote into A's output")
        self.run_device("run_device A again", ia, oa)
        self.expect("run_device A, B, A", instantiate=1, graph_launch=6, launch=0,
                    setparams=lambda n: n >= 3)
        self.refused("run_device at a pointer off 16 bytes",
                      lambda: self.e.run_device([b[0] + 4 for b in ia], [b[0] for b in oa]),
                      1, "16-byte aligned")
        self.run("run after run_device")
        updates = self.stats()["setparams"]
        self.load(self.weights)  # the fake never reuses an address: weights move
        self.run("run after load_weights again")
        self.expect("all", instantiate=1, graph_launch=8, launch=0, kernels=8 * L,
                    setparams=lambda n: n > updates)
        # other weights: the prepack launches must run again (a stale packed copy would
        # keep the first weights' results), then the first weights once more
        self.load(os.environ["SEGC_FAKE_W2"])
        ref2 = self.common.read_npy(os.environ["SEGC_FAKE_REF2"])
        self.check("run with other weights", self.e.run([self.x])[0], ref2)
        self.load(self.weights)
        self.run("run with the first weights again")
        self.expect("prepack launches", launch=self.npack * self.loads, raw=True)

    def nographs(self):
        L = self.nlaunch
        self.run("run")
        ia, oa = self.devset()
        ib, ob = self.devset()
        self.run_device("run_device A", ia, oa)
        self.run_device("run_device B", ib, ob)
        self.expect("SEGC_CUDA_GRAPHS=0", instantiate=0, graph_launch=0, nodes=0,
                    launch=3 * L, kernels=3 * L)

    def olddriver(self):
        L = self.nlaunch
        if hasattr(self.drv, "cuGraphLaunch"):
            raise AssertionError("the old-driver fake has cuGraphLaunch")
        self.run("run")
        self.expect("no graph symbols", launch=L, kernels=L)

    def instfail(self):
        L = self.nlaunch
        self.run("run 1")
        self.run("run 2")
        self.expect("instantiate fails", instantiate=0, graph_launch=0, nodes=L, launch=2 * L,
                    kernels=2 * L)

    def profile(self, events=True):
        L = self.nlaunch
        for i in range(3):
            self.run("run %d (SEGC_PROFILE)" % (i + 1))
        self.expect("SEGC_PROFILE", graph_launch=0, instantiate=0, launch=3 * L,
                    events=3 * (L + 1) if events else 0)
        self.e.close()
        sched = open(os.environ["SEGC_FAKE_CUDA_SCHED"]).read().splitlines()
        ks = {int(f[2:]) for l in sched if l.startswith("launch ") for f in l.split()
              if f.startswith("k=")}
        if len(ks) == 0:
            raise AssertionError("no launch line has a k= field")
        text = open(os.environ["SEGC_PROFILE"]).read().splitlines()
        if not text or "2 runs (after 1 warm-up)" not in text[0]:
            raise AssertionError("SEGC_PROFILE report: %r" % (text[:1],))
        rows = [l.split() for l in text[2:] if l and not l.startswith(("per class", "..."))]
        rows = rows[:[i for i, r in enumerate(rows) if r[0] == "per"][0]] \
            if any(r[0] == "per" for r in rows) else rows
        timed = [r for r in rows if float(r[2]) > 0]
        if len(timed) < len(ks):
            raise AssertionError("SEGC_PROFILE report: %d kernels timed, %d launched" %
                                 (len(timed), len(ks)))

    def profileold(self):
        if hasattr(self.drv, "cuEventRecord"):
            raise AssertionError("the old-driver fake has cuEventRecord")
        self.profile(events=False)

    def sticky(self):
        ins, outs = self.devset()
        self.refused("run with a faulting kernel", lambda: self.e.run([self.x]), 8,
                     "CUDA_ERROR_ILLEGAL_ADDRESS", "cannot run again")
        self.refused("the next run", lambda: self.e.run([self.x]), 8, "unusable",
                     "CUDA_ERROR_ILLEGAL_ADDRESS")
        self.refused("run_device after it",
                     lambda: self.e.run_device([b[0] for b in ins], [b[0] for b in outs]),
                     8, "unusable")
        self.refused("load_weights after it", lambda: self.e.load_weights(self.weights), 8,
                     "unusable")


class Driver:
    """device buffers through the driver API (ctypes; the primary context of device 0 stays
    current in this process), so that --real needs no torch and runs on the fake too"""

    def __init__(self):
        self.cu = ctypes.CDLL("libcuda.so.1")
        dev, ctx = ctypes.c_int(), ctypes.c_void_p()
        for what, rc in (("cuInit", lambda: self.cu.cuInit(0)),
                         ("cuDeviceGet", lambda: self.cu.cuDeviceGet(ctypes.byref(dev), 0)),
                         ("cuDevicePrimaryCtxRetain",
                          lambda: self.cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev)),
                         ("cuCtxPushCurrent", lambda: self.cu.cuCtxPushCurrent_v2(ctx))):
            if rc() != 0:
                raise AssertionError("%s failed" % what)

    def alloc(self, a, fill=None):
        """a device copy of numpy array a (fill: every byte set to it instead)"""
        p = ctypes.c_uint64()
        n = ctypes.c_size_t(a.nbytes)
        if self.cu.cuMemAlloc_v2(ctypes.byref(p), n) != 0:
            raise AssertionError("cuMemAlloc failed")
        rc = (self.cu.cuMemsetD8_v2(p, ctypes.c_ubyte(fill), n) if fill is not None else
              self.cu.cuMemcpyHtoD_v2(p, ctypes.c_void_p(a.ctypes.data), n))
        if rc != 0:
            raise AssertionError("cuMemcpyHtoD / cuMemsetD8 failed")
        return p.value, a.shape, a.dtype, a.nbytes

    def fill(self, buf, byte):
        if self.cu.cuMemsetD8_v2(ctypes.c_uint64(buf[0]), ctypes.c_ubyte(byte),
                                 ctypes.c_size_t(buf[3])) != 0:
            raise AssertionError("cuMemsetD8 failed")

    def fetch(self, buf):
        import numpy as np
        out = np.empty(buf[1], dtype=buf[2])
        if self.cu.cuMemcpyDtoH_v2(ctypes.c_void_p(out.ctypes.data), ctypes.c_uint64(buf[0]),
                                   ctypes.c_size_t(buf[3])) != 0:
            raise AssertionError("cuMemcpyDtoH failed")
        return out


def real_child(d):
    """one model case on the driver, in the mode $SEGC_CUDA_GRAPHS says"""
    import time
    import numpy as np
    import common
    import segc_api
    x = np.ascontiguousarray(np.load(os.path.join(d, "x.npy")), dtype=np.float32)
    ref = np.load(os.path.join(d, "ref.npy"))
    e = segc_api.Engine(os.path.join(d, "engine.so"))
    e.load_weights(os.path.join(d, "w.safetensors"))
    drv = Driver()

    def check(what, out):
        err = common.max_rel_err(np.asarray(out), ref)
        if not err <= 1e-4:
            raise AssertionError("%s: max rel err %.2e against ref.npy" % (what, err))

    for i in range(3):
        check("run %d" % (i + 1), e.run([x])[0])
    y = np.empty(ref.shape, dtype=np.float32)
    sets = [(drv.alloc(x), drv.alloc(y, 0xff)) for _ in range(2)]
    for k, what in ((0, "run_device A"), (1, "run_device B"), (0, "run_device A again")):
        xi, yo = sets[k]
        if k == 1:
            drv.fill(sets[0][1], 0xff)
        e.run_device([xi[0]], [yo[0]])
        check(what, drv.fetch(yo))
        if k == 1 and not (drv.fetch(sets[0][1]).view("u1") == 0xff).all():
            raise AssertionError("run_device B wrote into A's output")
    check("run after run_device", e.run([x])[0])

    def median(fn, n=int(os.environ.get("SEGC_REAL_RUNS", "20"))):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(1e3 * (time.perf_counter() - t0))
        return sorted(ts)[n // 2]

    xi, yo = sets[0]
    dev = median(lambda: e.run_device([xi[0]], [yo[0]]))
    host = median(lambda: e.run([x]))
    print("timing run_device_ms=%.4f run_ms=%.4f device=%s" % (dev, host, e.device()))
    e.close()
    return 0


def real(dirs):
    """the --real mode: every dir in three modes; 1 if any check failed"""
    failed = 0
    for d in dirs:
        ms = {}
        for mode in ("2", "0", None):
            env = dict(os.environ)
            env.pop("SEGC_CUDA_GRAPHS", None)
            if mode is not None:
                env["SEGC_CUDA_GRAPHS"] = mode
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--real-child", d],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            name = "SEGC_CUDA_GRAPHS=%s" % (mode if mode is not None else "(unset)")
            t = [l for l in p.stdout.splitlines() if l.startswith("timing ")]
            if p.returncode != 0 or not t:
                print("FAIL %s %s: %s" % (os.path.basename(d), name, p.stdout.strip()[-1500:]))
                failed = 1
                continue
            ms[mode] = float(t[0].split()[1].split("=")[1])
            print("ok   %s %s: run x3, run_device A/B/A match ref.npy; %s"
                  % (os.path.basename(d), name, t[0][7:]))
        if "2" in ms and "0" in ms:
            print("     %s: run_device with graphs %.4f ms, plain launches %.4f ms (%.2fx)"
                  % (os.path.basename(d), ms["2"], ms["0"], ms["0"] / max(ms["2"], 1e-9)))
    return failed


RANGES_GRAPH = {
    "format": "segc-graph/1", "name": "ranges",
    "inputs": [{"name": "route", "dtype": "i64", "shape": [3]},
               {"name": "x", "shape": [3, 2, 4, 4, 4]}],
    "body": [{"name": "a", "op": "add", "in": ["x", 1.0]},
             {"name": "b", "op": "mul", "in": ["x", 3.0]},
             {"name": "sel", "op": "select_by_index", "in": ["route", "a", "b"]},
             {"name": "y", "op": "add", "in": ["sel", 0.5]}],
    "outputs": ["y"]}


def ranges_child(engine):
    """run and run_device with labels in and out of range (the --ranges mode's child)"""
    import numpy as np
    import segc_api
    e = segc_api.Engine(engine)
    drv = Driver()
    kernels = lambda: stats_of(drv.cu)["kernels"]
    x = np.random.default_rng(3).standard_normal((3, 2, 4, 4, 4)).astype(np.float32)

    def want(route):
        return np.where(np.asarray(route)[:, None, None, None, None] == 0, x + 1, 3 * x) + 0.5

    def check(what, out, route):
        err = float(np.abs(np.asarray(out) - want(route)).max())
        if not err <= 1e-5:
            raise AssertionError("%s: max abs err %.2e against numpy" % (what, err))

    def refused(what, fn, words):
        k = kernels()
        try:
            fn()
        except segc_api.SegcError as ex:
            if "status 1:" not in str(ex) or words not in str(ex):
                raise AssertionError("%s: expected status 1 naming '%s', got: %s"
                                     % (what, words, ex))
            if kernels() != k:
                raise AssertionError("%s: %d kernels ran before the refusal"
                                     % (what, kernels() - k))
            return
        raise AssertionError("%s: succeeded, expected SEGC_ERR_INVALID_ARGUMENT" % what)

    good, bad = np.array([1, 0, 1]), (np.array([0, 2, 1]), np.array([-1, 0, 0]))
    msgs = ("input 'route' element 1 is 2, expected a value in [0, 2)",
            "input 'route' element 0 is -1, expected a value in [0, 2)")
    check("run", e.run([good, x])[0], good)
    for r, m in zip(bad, msgs):
        refused("run with %s" % r.tolist(), lambda: e.run([r, x]), "run: " + m)
    y = np.empty((3, 2, 4, 4, 4), dtype=np.float32)
    xd, yd = drv.alloc(x), drv.alloc(y, 0xff)
    rd = [drv.alloc(np.ascontiguousarray(r, dtype=np.int64)) for r in (good,) + bad]
    e.run_device([rd[0][0], xd[0]], [yd[0]])
    check("run_device", drv.fetch(yd), good)
    for k, m in ((1, msgs[0]), (2, msgs[1])):
        drv.fill(yd, 0xff)
        refused("run_device with %s" % bad[k - 1].tolist(),
                lambda: e.run_device([rd[k][0], xd[0]], [yd[0]]), "run_device: " + m)
        if not (drv.fetch(yd).view("u1") == 0xff).all():
            raise AssertionError("a refused run_device wrote its output")
    e.run_device([rd[0][0], xd[0]], [yd[0]])
    check("run_device after the refusals", drv.fetch(yd), good)
    e.close()
    return 0


def stats_of(drv):
    out = (ctypes.c_longlong * 8)()
    drv.segc_fake_cuda_stats(out)
    return dict(zip(STATS, out))


def build_fakes(j, old=True):
    """the fake driver under j("lib"), and (old) one without the graph symbols under
    j("lib-old")"""
    for lib, flags in (("lib", []), ("lib-old", ["-DFAKE_NO_GRAPHS"]))[:2 if old else 1]:
        os.mkdir(j(lib))
        subprocess.check_call(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Werror"] + flags +
                              ["-o", j(lib, "libcuda.so.1"),
                               os.path.join(HERE, "fake_cuda.c"), "-ldl"])


def ranges(segc):
    """the --ranges mode: 0 when every check passed"""
    import json
    tmp = tempfile.mkdtemp(prefix="segc-fake-")
    j = lambda *p: os.path.join(tmp, *p)
    try:
        build_fakes(j, old=False)
        with open(j("ranges.json"), "w") as f:
            json.dump(RANGES_GRAPH, f)
        subprocess.check_call([sys.executable, os.path.join(HERE, "segc_cuda.py"),
                               j("ranges.json"), "-o", j("gpu.so")],
                              env=dict(os.environ, SEGC_REAL=segc))
        env = dict(os.environ, SEGC_FAKE_CUDA_EMU=j("gpu.so.emu.so"), MALLOC_PERTURB_="165",
                   SEGC_FAKE_CUDA_SCHED=j("gpu.so.emu.txt"),
                   LD_LIBRARY_PATH=j("lib") + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--ranges-child",
                            j("gpu.so")], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if p.returncode != 0:
            print("FAIL ranges: %s" % p.stdout.strip()[-1200:])
            return 1
        print("ok   ranges: run and run_device on the fake driver accept route in [0, 2) and "
              "refuse 2 and -1 naming the element, before any kernel")
        return 0
    finally:
        subprocess.call(["rm", "-rf", tmp])


def tune(segc):
    """segc tune on the fake driver (the --tune mode above)"""
    import json
    tmp = tempfile.mkdtemp(prefix="segc-fake-tune-")
    j = lambda *p: os.path.join(tmp, *p)
    try:
        build_fakes(j, old=False)
        cuda_lib = os.environ.get("LD_LIBRARY_PATH", "")
        with open(j("cc.sh"), "w") as f:  # compiles see no fake driver (NVRTC would load it)
            f.write("#!/bin/sh\nLD_LIBRARY_PATH='%s' exec %s %s \"$@\"\n" % (
                cuda_lib, sys.executable, os.path.join(HERE, "segc_cuda.py")))
        os.chmod(j("cc.sh"), 0o755)
        g = os.path.join(ROOT, "graphs", "tiny.json")
        defs = ["-D", "in_ch=16", "-D", "C=16", "-D", "size=16"]
        target = ["--target", "cuda:sm_90", "--precision", "tf32"]
        variants = ["base", "SEGC_MMA_HALO=1,SEGC_HALO_RB=4", "SEGC_CUDA_VEC=0"]
        env = dict(os.environ, LD_LIBRARY_PATH=j("lib") + ":" + cuda_lib,
                   SEGC_TUNE_COMPILE=j("cc.sh"), SEGC_REAL=segc, SEGC_EMU_EXACT="1")
        for k in ("SEGC_FAKE_CUDA_EMU", "SEGC_FAKE_CUDA_SCHED", "SEGC_PRECISION"):
            env.pop(k, None)
        p = subprocess.run([segc, "tune", g, "-o", j("tune.json"), "--dir", j("d"),
                            "--repeat", "2", "--min-gain", "0"] + defs + target +
                           sum((["--variant", v] for v in variants), []),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if p.returncode != 0 or p.stdout.count("output agrees with base's") != 2:
            print("FAIL segc tune on the fake driver: %s" % p.stdout[-1500:])
            return 1
        ks = [l.split("\t") for l in subprocess.check_output(
            [segc, g, "--emit=keys"] + defs + target, universal_newlines=True).splitlines()]
        t = json.load(open(j("tune.json")))
        got = sorted(e["key"] for e in t["kernels"])
        if got != sorted(set(k[2] for k in ks)):
            print("FAIL segc tune on the fake driver: keys %s" % got)
            return 1
        fps = [dict((l.split("\t")[2], l.split("\t")[1])
                    for l in open(j("d", "v%d.keys" % v)).read().splitlines())
               for v in range(len(variants))]
        # (the halo variant changes the convs' code, never the elementwise kernels')
        names = dict((l.split("\t")[2], l.split("\t")[0])
                     for l in open(j("d", "v0.keys")).read().splitlines())
        moved = sorted(names[k] for k in fps[0] if fps[1][k] != fps[0][k])
        if not moved or any("conv3d" not in n for n in moved):
            print("FAIL segc tune on the fake driver: the halo variant's fingerprints moved "
                  "for %s" % moved)
            return 1
        for e in t["kernels"]:
            v = variants.index(e["variant"])
            if v and fps[v][e["key"]] == fps[0][e["key"]]:
                print("FAIL segc tune on the fake driver: %s won %s with base's code" %
                      (e["variant"], e["kernel"]))
                return 1
        rows = [l for l in open(j("d", "v0.prof")).read().splitlines()[2:]
                if l.startswith("k") and float(l.split()[2]) > 0]
        if len(rows) < 3 or t["target"] != "cuda:sm_90" or t["precision"] != "tf32":
            print("FAIL segc tune on the fake driver: profile rows %s, header %s" %
                  (rows, t["target"]))
            return 1
        # the same folder measured by bench/tune_measure.py (several engines in one process,
        # each module with its own emulation), then chosen again
        q = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "tune_measure.py"),
                            j("d"), "--repeat", "2", "--pack", j("r.tar.xz")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        c = subprocess.run([segc, "tune", "--stage", "choose", "--dir", j("d"), "-o",
                            j("t2.json")], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if q.returncode != 0 or c.returncode != 0 or q.stdout.count("e-0") + \
                q.stdout.count("e+00") != len(variants) or sorted(
                    e["key"] for e in json.load(open(j("t2.json")))["kernels"]) != got:
            print("FAIL tune_measure.py on the fake driver: %s %s" % (q.stdout[-800:],
                                                                     c.stdout[-400:]))
            return 1
        wins = ["%s: %s" % (e["kernel"], e["variant"]) for e in t["kernels"] if e["knobs"]]
        print("ok   segc tune on the fake driver (cuda:sm_90 tf32, tiny 16^3, %d variants): "
              "kernels timed by events, %d keys, winners %s; tuned engine run; "
              "bench/tune_measure.py on the same engines, chosen again" %
              (len(variants), len(got), ", ".join(wins) or "none"))
        return 0
    finally:
        subprocess.call(["rm", "-rf", tmp])


def child(scenario, engine, weights, inp, ref):
    c = Child(engine, weights, inp, ref)
    if scenario == "badenv":
        c.refused("open with SEGC_CUDA_GRAPHS=yes", c.open, 1, "SEGC_CUDA_GRAPHS='yes'")
    elif scenario == "strict":
        c.refused("load_weights, SEGC_CUDA_GRAPHS=2, instantiate fails", c.open, 8,
                  "load_weights: building the CUDA graph", "CUDA_ERROR_FAKE")
    elif scenario == "strictold":
        c.refused("open, SEGC_CUDA_GRAPHS=2, no graph symbols", c.open, 7,
                  "SEGC_CUDA_GRAPHS=2", "lacks the CUDA graph")
    elif scenario == "smemcap":
        c.refused("open on a GPU of 40000 bytes of shared memory a block", c.open, 7,
                  "bytes of shared memory per block, the GPU allows 40000", "SEGC_CUDA_SMEM")
    else:
        c.open()
        getattr(c, scenario)()
        if not scenario.startswith("profile"):
            c.e.close()
    return 0


def scenario_env(name, j, npack):
    env = {"graphs": {}, "nographs": {"SEGC_CUDA_GRAPHS": "0"}, "olddriver": {},
           "instfail": {"SEGC_FAKE_CUDA_FAIL": "instantiate"},
           # the run's 2nd kernel (the prepack kernels run first, in load_weights)
           "sticky": {"SEGC_FAKE_CUDA_FAIL": "kernel:%d" % (npack + 2)},
           "badenv": {"SEGC_CUDA_GRAPHS": "yes"},
           "strict": {"SEGC_CUDA_GRAPHS": "2", "SEGC_FAKE_CUDA_FAIL": "instantiate"},
           "strictold": {"SEGC_CUDA_GRAPHS": "2"},
           "real": {"SEGC_CUDA_GRAPHS": "2", "SEGC_REAL_RUNS": "2"},
           "smemcap": {"SEGC_FAKE_CUDA_SMEM_OPTIN": "40000"},
           "profile": {"SEGC_PROFILE": j("profile.txt")},
           "profileold": {"SEGC_PROFILE": j("profileold.txt")}}[name]
    lib = j("lib-old") if name in ("olddriver", "strictold", "profileold") else j("lib")
    return dict(env, LD_LIBRARY_PATH=lib + ":" + os.environ.get("LD_LIBRARY_PATH", ""))


def main(argv):
    if argv and argv[0] == "--real":
        return real(argv[1:])
    children = {"--ranges-child": lambda: ranges_child(argv[1]),
                "--real-child": lambda: real_child(argv[1]),
                "--child": lambda: child(*argv[1:6])}
    if argv and argv[0] in children:
        try:
            return children[argv[0]]()
        except AssertionError as ex:
            print("error: %s" % ex)
            return 1
    import common
    segc = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    segc = segc if os.path.isabs(segc) else os.path.join(ROOT, segc)
    if argv and argv[0] == "--ranges":
        return ranges(segc)
    if argv and argv[0] == "--tune":
        return tune(segc)
    graph, extra = argv[0], argv[1:]
    label = " ".join([os.path.basename(graph)] + extra)
    tmp = tempfile.mkdtemp(prefix="segc-fake-")
    j = lambda *p: os.path.join(tmp, *p)
    try:
        build_fakes(j)
        env = dict(os.environ, SEGC_REAL=segc)
        subprocess.check_call([sys.executable, os.path.join(HERE, "segc_cuda.py"), graph, "-o",
                               j("gpu.so")] + extra, env=env)
        common.compile_graph(graph, j("cpu.so"), extra)
        subprocess.check_call([segc, "synth", j("cpu.so"), "--weights", j("w.st"), "--input",
                               j("x.npy")])
        common.run_engine(j("cpu.so"), j("w.st"), [j("x.npy")], [j("ref.npy")])
        subprocess.check_call([segc, "synth", j("cpu.so"), "--weights", j("w2.st"), "--input",
                               j("x2.npy"), "--seed", "7"])
        common.run_engine(j("cpu.so"), j("w2.st"), [j("x.npy")], [j("ref2.npy")])
        sched = open(j("gpu.so.emu.txt")).read().splitlines()
        launches = sum(1 for l in sched if l.startswith("launch "))
        npack = sum(1 for l in sched if l.startswith("pack "))
        os.mkdir(j("real"))  # a model case as tests/cuda/gpu_prep.py lays it out
        for src, dst in (("gpu.so", "engine.so"), ("w.st", "w.safetensors"), ("x.npy", "x.npy"),
                         ("ref.npy", "ref.npy")):
            os.symlink(j(src), j("real", dst))
        failed = []
        dyn = any(" smem=" in line for line in sched)
        only = os.environ.get("SEGC_FAKE_ONLY", "").split()  # (a subset: slow kernels)
        for name in SCENARIOS + (["smemcap"] if dyn else []):
            if only and name not in only:
                continue
            # MALLOC_PERTURB_: freed heap memory is overwritten, so a parameter read from
            # freed memory (the bug of issue #6: n behind a realloc'd array) is never right
            # by luck
            env = dict(os.environ, SEGC_FAKE_CUDA_EMU=j("gpu.so.emu.so"),
                       MALLOC_PERTURB_="165", SEGC_FAKE_CUDA_SCHED=j("gpu.so.emu.txt"),
                       SEGC_FAKE_W2=j("w2.st"), SEGC_FAKE_REF2=j("ref2.npy"))
            env.pop("SEGC_CUDA_GRAPHS", None)
            env.update(scenario_env(name, j, npack))
            args = (["--real-child", j("real")] if name == "real" else
                    ["--child", name, j("gpu.so"), j("w.st"), j("x.npy"), j("ref.npy")])
            p = subprocess.run([sys.executable, os.path.abspath(__file__)] + args, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            print("  - %-9s %s" % (name, "passed" if p.returncode == 0 else "FAILED"))
            if p.returncode != 0:
                failed.append("%s: %s" % (name, p.stdout.strip()[-1200:]))
        if failed:
            print("FAIL %s: %s" % (label, " | ".join(failed)))
            return 1
        what = ("graph replay, run_device parameter updates, weights reloaded (other weights: "
                "packed again), SEGC_CUDA_GRAPHS=0/2, no-graph driver, instantiate failure, "
                "sticky error, SEGC_PROFILE with and without events" if not only else
                "scenarios " + " ".join(only))
        print("ok   %s: runtime/cuda.c on the fake driver, %d launches + %d prepack: %s%s; "
              "outputs match the CPU engine at 1e-4"
              % (label, launches, npack, what,
                 ", dynamic shared memory (a GPU with too little refused)" if dyn else ""))
        return 0
    finally:
        subprocess.call(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
