#!/usr/bin/python3
"""tests/cuda/gpu_prep.py -- everything the GPU machine needs, prepared where segc builds.

The GPU machine need not run segc (it may lack LLVM 14, cJSON, ...), so the CUDA engines are
compiled here and carried; there only Python, numpy and torch run (tests/cuda/test_gpu.py,
bench/bench_gpu.py, through tests/cuda/segc_api.py).  Writes build/gpu-cases/:

  ops/<file>/<i>/    every case of tests/ops/test_ops*.py and tests/cuda/test_conv_cl.py, and
                     tests/cuda/test_mma.py's halo-tile conv cases (tf32 and bf16 engines
                     compiled with SEGC_MMA_HALO=1; ops/test_mma_halo) and its tap-major
                     conv cases with the column-major A tile (SEGC_MMA_AROW=0; ops/test_mma_arow0)
                     and its row-gather cases (relu -> conv on bf16 activations;
                     ops/test_mma_xrow) and register-fragment cases (SEGC_MMA_FRAG=1;
                     ops/test_mma_frag):
                     engine.so (--target cuda:$ARCH),
                     w.safetensors, in_<k>.npy, ref_<k>.npy (PyTorch, CPU), meta.json; for
                     conv3d(_ndhwc), conv_transpose3d, linear, matmul also engine.tf32.so and
                     engine.bf16.so (--precision) where segc builds them (meta.json
                     "precisions": precision -> null, or why it did not build)
  models/<name>/     every case of tests/models/test_models.py: engine.so, weights, x.npy,
                     ref.npy (the PyTorch oracle in float64), meta.json (module, params, seed)
  bench/<name>.so    bench/bench_gpu.py's graphs at 128^3 (--bench-size), and
  bench/<name>.<p>.so  in tf32 and bf16 where segc builds them (with --tune
                       bench/tune/<name>-<p>.json where that file is: docs/tune.md); meta.json

and packs it into build/gpu-cases.tar.xz (one xz stream: the engines share the runtime, so
the archive stays small enough to carry).  When segc refuses a precision for a tiny graph
(`no tensor-core templates yet`), that precision is skipped everywhere with that note.
The op and model cases are compiled with SEGC_CUDA_ILP_MIN=1, so their small loops take the
lanes (docs/cuda.md) that the 128^3 engines' loops take: the GPU tests run the production
form of the elementwise kernels, not only the one-element-per-thread form of small shapes.
Env: SEGC (default build/segc), ARCH (sm_90; --arch overrides; `cpu` builds CPU engines for
the scripts' dry run: test_gpu.py/bench_gpu.py --device cpu).

    tests/cuda/gpu_prep.py [--no-ops] [--no-models] [--no-bench] [--only-file NAME] [--max-ops N]
                           [--arch sm_90|sm_80|cpu] [--out DIR] [--bench-size S] [--no-tar]
"""
import argparse
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import common  # noqa: E402

OUT = os.path.join(ROOT, "build", "gpu-cases")


def segc():
    b = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def arch():
    return os.environ.get("ARCH", "sm_90")


PREC_OPS = ("conv3d", "conv3d_ndhwc", "conv_transpose3d", "linear", "matmul")
PRECISIONS = ("tf32", "bf16")
REFUSED = {}          # precision -> why segc refuses it for every graph (probed once)


def target():
    return "cpu" if arch() == "cpu" else "cuda:" + arch()


def compile_engine(graph, engine, defines=(), precision="fp32", lanes=True):
    """lanes: a test case, compiled with the lanes of large loops (SEGC_CUDA_ILP_MIN=1)"""
    if precision in REFUSED:
        return REFUSED[precision]
    cmd = [segc(), graph, "-o", engine, "--target", target(), "-q"] + list(defines)
    if precision != "fp32":
        cmd.append("--precision=" + precision)
    env = dict(os.environ)
    if lanes:
        env.setdefault("SEGC_CUDA_ILP_MIN", "1")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=600, env=env)
    if p.returncode != 0:
        return (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1][:300]
    return None


def load_module(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def probe_precisions():
    """a precision that segc refuses for graphs/tiny.json is skipped everywhere"""
    for prec in PRECISIONS:
        if arch() == "cpu":
            REFUSED[prec] = "not for the CPU target"
            continue
        tmp = os.path.join(OUT, "probe.so")
        err = compile_engine(os.path.join(ROOT, "graphs", "tiny.json"), tmp, (), prec)
        if err:
            REFUSED[prec] = err
        print("precision %s: %s" % (prec, "segc builds it" if not err else
                                    "skipped, segc refuses it: " + err))
        for f in glob.glob(tmp + "*"):
            os.unlink(f)


def lib_includes(body):
    """the graphs/lib files (absolute paths) that define the modules `body` calls: a test file
    that adds its include itself (test_ops_mamba.py's run_case) has no graph_json to say so"""
    called = {n["module"] for n in body if "module" in n}
    incs = []
    for f in sorted(glob.glob(os.path.join(ROOT, "graphs", "lib", "*.json"))):
        with open(f) as fh:
            mods = json.load(fh).get("modules", {})
        names = set(mods) if isinstance(mods, dict) else {m.get("name") for m in mods}
        if called & names:
            incs.append(f)
            called -= names
    return incs


# test_mma.py's case sets (ops/test_mma_<name>): the cases taken from the module, and the
# environment of their tf32/bf16 engines
MMA_SETS = {
    "halo": (lambda mod: [c for c, _ in mod.halo_cases()], {"SEGC_MMA_HALO": "1"}),
    "arow0": (lambda mod: [c for c, mma in mod.own_cases() if mma and getattr(c, "tapk", False)],
              {"SEGC_MMA_AROW": "0", "SEGC_MMA_FRAG": "0"}),
    "xrow": (lambda mod: [c for c, _ in mod.xrow_cases()], {"SEGC_MMA_FRAG": "0"}),
    "frag": (lambda mod: [c for c, _ in mod.frag_cases()], {"SEGC_MMA_FRAG": "1"}),
}


def op_sets():
    """(name, module, cases, env for the tf32/bf16 engines): every tests/ops/test_ops*.py, the
    channels-last conv cases (tests/cuda/test_conv_cl.py: its tensor-core forms with the
    16-byte copies, vector loads and split-K), test_mma.py's halo-tile conv cases
    (SEGC_MMA_HALO=1), its tap-major conv cases with the column-major A tile (SEGC_MMA_AROW=0,
    the form the default row-major one replaced), its row-gather cases (the default form
    where a conv reads a bf16 activation) and its register-fragment cases (SEGC_MMA_FRAG=1:
    mma.sync on the documented fragment layout, which only a GPU checks)"""
    paths = sorted(glob.glob(os.path.join(ROOT, "tests", "ops", "test_ops*.py")))
    for path in paths + [os.path.join(HERE, "test_conv_cl.py")] + sorted(MMA_SETS):
        fname = "test_mma_" + path if path in MMA_SETS else \
            os.path.splitext(os.path.basename(path))[0]
        try:
            if path in MMA_SETS:
                mod = load_module(os.path.join(HERE, "test_mma.py"))
                pick, env = MMA_SETS[path]
                yield fname, mod, pick(mod), env
                continue
            mod = load_module(path)
            cases = mod.all_cases() if hasattr(mod, "all_cases") else mod.cases()
        except Exception as e:  # noqa: BLE001 -- a broken test file is reported, not fatal
            print("skip %s: %s" % (fname, e))
            continue
        yield fname, mod, cases, {}


def prep_ops(only, max_ops):
    n = bad = 0
    for fname, mod, cases, penv in op_sets():
        if only and fname != only:
            continue
        gj = getattr(mod, "graph_json", common.graph_json)
        for i, c in enumerate(cases):
            if max_ops and i >= max_ops:
                break
            d = os.path.join(OUT, "ops", fname, "%03d" % i)
            os.makedirs(d, exist_ok=True)
            # a case may carry its own document (test_ops_m4fuse.py: i64 inputs, an include)
            doc = getattr(c, "doc", None) or \
                gj("op_" + c.op, [(k, a.shape) for k, a in c.inputs], c.body, c.outputs)
            if "include" not in doc and lib_includes(c.body):
                doc["include"] = lib_includes(c.body)
            with open(os.path.join(d, "graph.json"), "w") as f:
                json.dump(doc, f)
            common.write_safetensors(os.path.join(d, "w.safetensors"), c.weights)
            for k, (name, a) in enumerate(c.inputs):
                common.write_npy(os.path.join(d, "in_%d.npy" % k), a)
            for k, r in enumerate(c.ref):
                common.write_npy(os.path.join(d, "ref_%d.npy" % k), np.asarray(r))
            err = compile_engine(os.path.join(d, "graph.json"), os.path.join(d, "engine.so"))
            meta = {"op": c.op, "label": c.label, "inputs": [k for k, _ in c.inputs],
                    "outputs": list(c.outputs), "error": err}
            if c.op in PREC_OPS and err is None:
                # the set's environment, with the case's own (test_mma.py: SEGC_HALO_TW,
                # SEGC_HALO_RB, the prologues' SEGC_PROLOGUE=1)
                cenv = dict(penv, **getattr(c, "env", {}))
                if getattr(c, "prologue", False):
                    cenv["SEGC_PROLOGUE"] = "1"
                saved = {k: os.environ.get(k) for k in cenv}
                os.environ.update(cenv)
                meta["precisions"] = {
                    p: compile_engine(os.path.join(d, "graph.json"),
                                      os.path.join(d, "engine.%s.so" % p), (), p)
                    for p in PRECISIONS}
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            with open(os.path.join(d, "meta.json"), "w") as f:
                json.dump(meta, f)
            n += 1
            bad += err is not None
    print("ops: %d cases, %d did not compile" % (n, bad))


def prep_models():
    import test_models as tm
    for name, graph, refmod, over, seed in tm.CASES:
        d = os.path.join(OUT, "models", name)
        os.makedirs(d, exist_ok=True)
        ref = importlib.import_module(refmod)
        params = dict(ref.DEFAULTS)
        params.update(over)
        torch.manual_seed(seed)
        model = ref.build(params)
        sd = tm.randomise(model, seed)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
        model = model.double().eval()
        x = np.random.default_rng(seed).standard_normal(ref.input_shape(params)).astype(np.float32)
        with torch.no_grad():
            y = model(torch.from_numpy(x).double()).numpy()
        common.write_safetensors(os.path.join(d, "w.safetensors"), sd)
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "ref.npy"), y)
        err = compile_engine(os.path.join(ROOT, graph), os.path.join(d, "engine.so"),
                             tm.defines(over))
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump({"graph": graph, "module": refmod, "params": params, "seed": seed,
                       "error": err}, f)
        print("model %s: %s" % (name, err or "ok"))


def prep_bench(size):
    import bench_gpu
    d = os.path.join(OUT, "bench")
    os.makedirs(d, exist_ok=True)
    meta = []
    for name, graph, refmod, over in bench_gpu.bench_list(size):
        defs = []
        for k, v in over.items():
            defs += ["-D", "%s=%s" % (k, ",".join(str(e) for e in v)
                                      if isinstance(v, (list, tuple)) else v)]
        m = {"name": name, "graph": graph, "module": refmod, "over": over, "size": size,
             "precisions": {}}
        m["tune"] = {}
        for prec in ("fp32",) + PRECISIONS:
            t0 = time.time()
            eng = os.path.join(d, name + (".so" if prec == "fp32" else ".%s.so" % prec))
            # a tuning file measured on a GPU (docs/tune.md) for this graph and precision
            tf = os.path.join(ROOT, "bench", "tune", "%s-%s.json" % (name, prec))
            tune = ["--tune", tf] if (size == 128 and target() == "cuda:sm_90" and
                                      os.path.exists(tf)) else []
            err = compile_engine(os.path.join(ROOT, graph), eng, defs + tune, prec, lanes=False)
            m["precisions"][prec] = err
            if tune:
                m["tune"][prec] = os.path.relpath(tf, ROOT)
            print("bench %s %s: %s (%.1fs)" % (name, prec, err or "ok", time.time() - t0))
            sys.stdout.flush()
        m["error"] = m["precisions"]["fp32"]
        meta.append(m)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-ops", action="store_true")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--only-file", help="one tests/ops file (e.g. test_ops)")
    ap.add_argument("--max-ops", type=int, default=0, help="at most N cases per ops file")
    ap.add_argument("--arch", help="sm_90, sm_80 or cpu (default $ARCH or sm_90)")
    ap.add_argument("--out", help="the cases folder (default build/gpu-cases)")
    ap.add_argument("--bench-size", type=int, default=128, help="bench input size (128)")
    ap.add_argument("--no-tar", action="store_true", help="do not pack the .tar.xz")
    args = ap.parse_args()
    global OUT
    if args.arch:
        os.environ["ARCH"] = args.arch
    if args.out:
        OUT = os.path.abspath(args.out)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    probe_precisions()
    with open(os.path.join(OUT, "arch.txt"), "w") as f:
        f.write(arch() + "\n")
    if not args.no_ops:
        prep_ops(args.only_file, args.max_ops)
    if not args.no_models:
        prep_models()
    # an engine for another architecture: opening it on the GPU must fail clearly
    if arch() != "cpu":
        other = "sm_80" if arch() != "sm_80" else "sm_90"
        os.makedirs(os.path.join(OUT, "arch"), exist_ok=True)
        p = subprocess.run([segc(), os.path.join(ROOT, "graphs", "tiny.json"), "-q", "-o",
                            os.path.join(OUT, "arch", "tiny_%s.so" % other), "--target",
                            "cuda:" + other])
        print("arch %s: %s" % (other, "ok" if p.returncode == 0 else "failed"))
    if not args.no_bench:
        prep_bench(args.bench_size)
    if args.no_tar:
        return 0
    tar = OUT + ".tar.xz"
    print("packing %s ..." % tar)
    sys.stdout.flush()
    with tarfile.open(tar + ".tmp", "w:xz", preset=9) as t:
        t.add(OUT, arcname="gpu-cases")
    os.replace(tar + ".tmp", tar)
    print("wrote %s (%.1f MiB)" % (tar, os.path.getsize(tar) / 1048576.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
