"""bench/benchutil.py -- helpers shared by the benchmarks (not tests: nothing here asserts).

Paths, the machine's name, running `segc` with its latency line, the safetensors writer, and
bench/results.{json,md} (each benchmark updates its own section, then the markdown is rebuilt).
"""
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
RESULTS_JSON = os.path.join(ROOT, "bench", "results.json")
RESULTS_MD = os.path.join(ROOT, "bench", "results.md")
LAT_RE = re.compile(r"^latency_ms\s+(.*)$", re.M)       # latency_ms median=x min=y ... runs=n


def segc_bin():
    b = os.environ.get("SEGC", os.path.join(ROOT, "build", "segc"))
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %s, %d CPUs" % (platform.platform(), cpu, os.cpu_count() or 0)


def writer():
    from common import write_safetensors
    return write_safetensors


def check(cmd, timeout=1800):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       universal_newlines=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd[:2]), p.returncode,
                           (p.stderr.strip() or p.stdout.strip())[-400:]))
    return p.stdout


def segc_run_timed(engine, weights, inp, out, repeat, threads, profile=None, info=None):
    """Runs `segc run --repeat`; returns (median_ms, min_ms, runs, maxrss_bytes).  inp: a path
    or a list of `name=path`; profile: a file for SEGC_PROFILE's per-kernel report; info: a
    dict that gets the engine's arena_mib (planned activations + the largest kernel scratch)
    and packed_mib (the weights' load-time forms, codegen/prepack.c)."""
    inps = [inp] if isinstance(inp, str) else list(inp)
    env = dict(os.environ)
    if profile:
        env["SEGC_PROFILE"] = profile
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        cmd = [segc_bin(), "run", engine, "--weights", weights]
        for i in inps:
            cmd += ["--input", i]
        cmd += ["--output", out, "--repeat", str(repeat), "--threads", str(threads)]
        # Linux carries ru_maxrss across fork+exec (a child starts at its parent's RSS), so a
        # child of this process (torch and the models loaded) would report our size; GNU time
        # forks segc from a small process and prints segc's own peak
        if os.path.exists("/usr/bin/time"):
            cmd = ["/usr/bin/time", "-f", "SEGC_MAXRSS_KB=%M"] + cmd
        p = subprocess.Popen(cmd, stdout=so, stderr=se, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
            else (status >> 8)
        so.seek(0)
        se.seek(0)
        text = so.read() + "\n" + se.read()
    if p.returncode != 0:
        raise RuntimeError("segc run failed (%d): %s" % (p.returncode, text.strip()[-400:]))
    m = LAT_RE.search(text)
    kv = dict(w.split("=", 1) for w in m.group(1).split() if "=" in w) if m else {}
    if not all(k in kv for k in ("median", "min", "runs")):
        raise RuntimeError("no `latency_ms median=.. min=.. runs=..` line in segc run output")
    mr = re.search(r"SEGC_MAXRSS_KB=(\d+)", text)
    rss = int(mr.group(1)) * 1024 if mr else ru.ru_maxrss * 1024
    ma = re.search(r"arena_mib ([0-9.]+)", text)
    if info is not None and ma:
        info["arena_mib"] = float(ma.group(1))
    mp = re.search(r"packed_mib ([0-9.]+)", text)
    if info is not None and mp:
        info["packed_mib"] = float(mp.group(1))
    return float(kv["median"]), float(kv["min"]), int(kv["runs"]), rss


def peak_rss():
    """This process's peak resident set (VmHWM: per address space, so exact after exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def torch_time(fn, repeat, warmup=2):
    """Median and min wall time in ms of fn() after warm-up runs."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2], ts[0]


def load_results():
    try:
        with open(RESULTS_JSON) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_results(section, rows, extra=None):
    res = load_results()
    res[section] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "rows": rows}
    if extra:
        res[section].update(extra)
    with open(RESULTS_JSON, "w") as f:
        json.dump(res, f, indent=1)
    write_md(res)


def _f(v, fmt="%.2f"):
    return "-" if v is None else fmt % v


def write_md(res):
    out = ["# segc benchmarks", "",
           "Generated by bench/bench_conv.py and bench/bench_models.py; numbers are medians "
           "after warm-up, 2 threads for both segc and PyTorch. Ratio = segc GFLOP/s / torch "
           "GFLOP/s (above 1: segc faster); segc/torch latency = segc ms / torch ms (below 1: segc "
           "faster; target <= 0.5). Memory: segc planned = the engine's arena (the activations "
           "memplan placed, `segc info` arena_bytes, plus the largest kernel scratch) + the packed "
           "weights (load-time forms, --prepack) + weight bytes; segc maxrss = the whole `segc run` process "
           "(the segc tool also maps libLLVM, so an application that loads engine.so alone is "
           "smaller); torch maxrss = the worker process, delta = its growth after `import torch` "
           "(weights, activations, allocator caches). On a shared machine the timings are noisy: "
           "compare ratios from the same run only.", ""]
    if "conv" in res:
        c = res["conv"]
        out += ["## Single conv3d (%s)" % c["date"], "", "Machine: %s" % c["machine"], "",
                "GFLOP/s count the direct convolution's FLOPs on both sides (2 x MACs), so for "
                "the 3^3 stride-1 cases, which segc runs by Winograd F(2x2x2, 3x3x3) (64 "
                "multiplies per 2x2x2 tile and input channel instead of 216), segc's is an "
                "effective rate: the same work in less time (docs/performance.md).", "",
                "| case | GFLOP | segc ms | torch ms | segc GFLOP/s | torch GFLOP/s | ratio |",
                "|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            out.append("| %s | %.3f | %s | %s | %s | %s | %s |" % (
                r["case"], r["gflop"], _f(r.get("segc_ms")), _f(r.get("torch_ms")),
                _f(r.get("segc_gflops")), _f(r.get("torch_gflops")), _f(r.get("ratio"))))
            if r.get("error"):
                out.append("| ^ error: %s | | | | | | |" % r["error"].replace("|", "/")[:200])
        out.append("")
    titles = {"models": "",
              "models_ndhwc": ", segc compiled --layout=ndhwc (channels-last; PyTorch as above)",
              "models_prepack_lean": ", segc compiled --prepack=lean (only the packs no larger "
                                     "than their weights at load time)",
              "models_prepack_off": ", segc compiled --prepack=off (every weight pack in every "
                                    "run)"}
    for sec in titles:
        if sec not in res:
            continue
        c = res[sec]
        out += ["## Whole models%s (%s)" % (titles[sec], c["date"]), "",
                "Machine: %s; %s threads for segc and PyTorch, median of %s runs after warm-up; "
                "PyTorch's Mamba scans: %s." % (
                    c["machine"], c.get("threads", "?"), c.get("repeat", "?"),
                    "the references' step-by-step loop (--loop-scan)"
                    if c.get("torch_scan") == "loop" else "a parallel scan in torch ops "
                    "(benchutil.patch_scans; the references loop step by step)"), "",
                "segc GFLOP/s per kernel class: SEGC_PROFILE of the timed run (conv = conv3d "
                "and conv_transpose3d, scan = selective scan and causal conv1d, n+e = norms, "
                "reductions, pooling and elementwise; matmul = linear/matmul is in the JSON; "
                "FLOPs are the direct convolution's, so conv GFLOP/s of graphs whose 3^3 convs "
                "run by Winograd are effective rates). "
                "rel err = max|segc - torch| / max|torch| of the same run.  The ratio of the "
                "two fastest runs is less sensitive to other users' load than the medians'.  "
                "Rows rerun with --only keep the others' rows; each row's date and runs are in "
                "the JSON.", "",
                "| model | input | GFLOP | segc ms | torch ms | segc/torch latency (of the mins) "
                "| segc planned MiB (arena+packed+weights) | segc maxrss MiB | torch maxrss MiB (delta) "
                "| segc/torch maxrss | segc GFLOP/s | conv GFLOP/s | scan GFLOP/s | n+e GFLOP/s "
                "| threads | rel err |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            cl = r.get("classes") or {}
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                       "| %s | %s |" % (
                           r["model"], r["input"], _f(r.get("gflop"), "%.2f"),
                           _f(r.get("segc_ms")), _f(r.get("torch_ms")),
                           "%s (%s)" % (_f(r.get("lat_ratio")), _f(r.get("lat_ratio_min"))),
                           _f(r.get("segc_planned_mib"), "%.1f"),
                           _f(r.get("segc_maxrss_mib"), "%.1f"),
                           "%s (%s)" % (_f(r.get("torch_maxrss_mib"), "%.1f"),
                                        _f(r.get("torch_delta_mib"), "%.1f")),
                           _f(r.get("mem_ratio")), _f(r.get("segc_gflops"), "%.1f"),
                           _f(cl.get("conv", {}).get("gflops"), "%.1f"),
                           _f(cl.get("scan", {}).get("gflops"), "%.1f"),
                           _f(cl.get("normelt", {}).get("gflops"), "%.1f"),
                           r.get("threads", c.get("threads", "-")),
                           _f(r.get("relerr"), "%.1e")))
            if r.get("error"):
                out.append("| ^ error: %s |%s" % (r["error"].replace("|", "/")[:200], " |" * 15))
        out.append("")
    with open(RESULTS_MD, "w") as f:
        f.write("\n".join(out))


# ---- a parallel selective scan for the PyTorch baselines ----
#
# The reference modules (tests/reference/) scan step by step in a Python loop (in float64 for
# mamba_home): exact, but at 128^3 (262144 tokens) one forward takes minutes and measures the
# interpreter, not PyTorch.  The benchmarks' PyTorch baseline replaces that loop by the same
# recurrence computed with log-depth tensor ops (Hillis-Steele over the sequence, float32):
# mamba_ssm's CUDA kernel is not installed where the benchmarks run.  bench_models.py --loop-scan
# keeps the reference's loop.

def parallel_scan(a, b, dim):
    """h_t = a_t * h_(t-1) + b_t along dim (h_(-1) = 0), in ceil(log2(L)) steps"""
    import torch
    L = a.shape[dim]
    s = 1
    while s < L:
        head_b, head_a = b.narrow(dim, 0, s), a.narrow(dim, 0, s)
        ta, tb = a.narrow(dim, s, L - s), b.narrow(dim, s, L - s)
        pa, pb = a.narrow(dim, 0, L - s), b.narrow(dim, 0, L - s)
        b = torch.cat([head_b, torch.addcmul(tb, ta, pb)], dim)
        a = torch.cat([head_a, ta * pa], dim)
        s *= 2
    return b


def _segmamba_scan(u, delta, A, Bm, Cm, D, delta_bias, z=None):
    """segmamba.selective_scan's contract: u, delta, z (B, di, L); A (di, N); Bm, Cm (B, N, L)"""
    import torch
    import torch.nn.functional as F
    # in float32 under autocast too, as mamba_ssm's kernel computes the scan
    u, delta, Bm, Cm = u.float(), delta.float(), Bm.float(), Cm.float()
    delta = F.softplus(delta + delta_bias.float()[None, :, None], beta=1, threshold=20)
    dA = torch.exp(delta.unsqueeze(-1) * A[None, :, None, :])               # (B, di, L, N)
    dBu = (delta * u).unsqueeze(-1) * Bm.transpose(1, 2)[:, None, :, :]
    h = parallel_scan(dA, dBu, 2)
    y = torch.einsum("bdln,bln->bdl", h, Cm.transpose(1, 2)) + D.float()[None, :, None] * u
    return y * F.silu(z.float()) if z is not None else y


def _mamba_forward(self, t):
    """upstream Mamba (m4fuse.Mamba, mamba_home.Mamba): t (B, L, d) -> (B, L, d)"""
    import torch
    import torch.nn.functional as F
    L = t.shape[1]
    N = getattr(self, "ns", None) or self.N
    xz = self.in_proj(t)
    x, z = xz[..., :self.di], xz[..., self.di:]
    u = F.silu(self.conv1d(x.transpose(1, 2))[..., :L]).transpose(1, 2)    # (B, L, di)
    dbc = self.x_proj(u)
    dlow, Bm, Cm = dbc[..., :self.R], dbc[..., self.R:self.R + N].float(), \
        dbc[..., self.R + N:].float()
    delta = F.softplus(self.dt_proj(dlow).float(), threshold=20)            # (B, L, di)
    u = u.float()
    A = -torch.exp(self.A_log.float())
    dA = torch.exp(delta.unsqueeze(-1) * A)                                # (B, L, di, N)
    dBu = (delta * u).unsqueeze(-1) * Bm.unsqueeze(2)
    h = parallel_scan(dA, dBu, 1)
    y = torch.einsum("bldn,bln->bld", h, Cm) + self.D.float() * u
    return self.out_proj((y * F.silu(z.float())).to(t.dtype))


def patch_scans():
    """points the reference modules' scans at the parallel scan (what is patched, as a list)"""
    import importlib
    done = []
    for mod, attr, fn in (("segmamba", "selective_scan", _segmamba_scan),
                          ("m4fuse", "Mamba.forward", _mamba_forward),
                          ("mamba_home", "Mamba.forward", _mamba_forward)):
        try:
            m = importlib.import_module(mod)
        except Exception:  # noqa: BLE001 -- a module that does not import is not patched
            continue
        if "." in attr:
            setattr(getattr(m, attr.split(".")[0]), attr.split(".")[1], fn)
        else:
            setattr(m, attr, fn)
        done.append("%s.%s" % (mod, attr))
    return done
