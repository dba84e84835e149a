"""tests/reference/common.py -- helpers shared by the PyTorch oracle tests.

safetensors and .npy I/O without extra packages, and thin wrappers around the segc command:
  compile(graph, engine)                       build/segc GRAPH -o ENGINE.so
  run_engine(engine, weights, inputs, outputs) segc run ENGINE --weights W --input .. --output ..
  run_interp(graph, weights, inputs, outputs)  segc interp GRAPH --weights W --input .. --output ..
  max_rel_err(a, b)                            max|a-b| / max(max|b|, 1e-6); tests pass at <= TOL

The segc binary is $SEGC, else build/segc in the repository.  $SEGC_INTERP, when set, names a
different binary used for `interp` only (a stand-alone interpreter driver, for testing
ir/interp.c before the whole compiler builds).
"""
import json
import os
import struct
import subprocess

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOL = 1e-4  # max relative error allowed between segc and PyTorch (float32 on the CPU)
# the ASan pass (tests/run_all.sh --quick): test files whose cases build several engines each
# may run fewer builds there (the sanitizer looks for memory errors, not numbers)
QUICK = os.environ.get("SEGC_TEST_QUICK") == "1"

_DTYPES = {"F32": np.float32, "I64": np.int64, "F16": np.float16, "I32": np.int32,
           "U8": np.uint8, "F64": np.float64}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def segc_path():
    return os.environ.get("SEGC") or os.path.join(ROOT, "build", "segc")


def interp_path():
    return os.environ.get("SEGC_INTERP") or segc_path()


def _contig(a):
    """a C-contiguous numpy array, keeping rank 0 (np.ascontiguousarray makes it rank 1)"""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


# ---- safetensors ----

def safetensors_bytes(tensors, metadata=None):
    """The bytes of a safetensors file holding tensors (name -> numpy array or torch tensor):
    8-byte little-endian header length, JSON header, padded with spaces to 8 bytes, data."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = tensors[name]
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        a = _contig(a)
        if a.dtype not in _NAMES:
            raise ValueError("safetensors: unsupported dtype %s for %s" % (a.dtype, name))
        raw = a.tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write_safetensors(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors, metadata))


def read_safetensors(path):
    """name -> numpy array (copies); raises ValueError on a malformed file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("safetensors: file shorter than its header length")
    (hl,) = struct.unpack("<Q", data[:8])
    if 8 + hl > len(data):
        raise ValueError("safetensors: header length %d past the end of the file" % hl)
    header = json.loads(data[8:8 + hl].decode())
    base, out = 8 + hl, {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        dt = np.dtype(_DTYPES[e["dtype"]])
        a = np.frombuffer(data[base + b:base + end], dtype=dt)
        out[name] = a.reshape(e["shape"]).copy()
    return out


# ---- .npy ----

def write_npy(path, a):
    np.save(path, _contig(a), allow_pickle=False)


def read_npy(path):
    return np.load(path, allow_pickle=False)


# ---- the segc command ----

class SegcError(Exception):
    def __init__(self, cmd, proc):
        self.cmd, self.returncode = cmd, proc.returncode
        self.stderr = proc.stderr.decode(errors="replace")
        Exception.__init__(self, "%s -> exit %d: %s" % (" ".join(cmd[:2]), proc.returncode,
                                                       self.stderr.strip()[-2000:]))


def run_cmd(cmd, timeout=120):
    """Run cmd; returns the CompletedProcess (stdout/stderr bytes).  Never raises on exit status."""
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def _check(cmd, timeout=120):
    p = run_cmd(cmd, timeout)
    if p.returncode != 0:
        raise SegcError(cmd, p)
    return p


def _io_args(flag, items):
    """items: a path, or a list of paths, or a dict name -> path."""
    if isinstance(items, str):
        return [flag, items]
    if isinstance(items, dict):
        return sum(([flag, "%s=%s" % (k, v)] for k, v in items.items()), [])
    return sum(([flag, v] for v in items), [])


def compile_graph(graph, engine, extra=(), timeout=120, env=None):
    """env: environment variables set for this compile only (the compile-time switches)"""
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return _check([segc_path(), graph, "-o", engine] + list(extra), timeout)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_engine(engine, weights, inputs, outputs, extra=(), timeout=120):
    cmd = [segc_path(), "run", engine, "--weights", weights]
    cmd += _io_args("--input", inputs) + _io_args("--output", outputs) + list(extra)
    return _check(cmd, timeout)


def run_interp(graph, weights, inputs, outputs, extra=(), timeout=300):
    cmd = [interp_path(), "interp", graph]
    if weights:
        cmd += ["--weights", weights]
    cmd += _io_args("--input", inputs) + _io_args("--output", outputs) + list(extra)
    return _check(cmd, timeout)


def kernel_count(graph, prologue):
    """the kernel count `segc info GRAPH` reports with SEGC_PROLOGUE=prologue (0 or 1)"""
    env = dict(os.environ, SEGC_PROLOGUE=str(prologue))
    out = subprocess.run([segc_path(), "info", graph], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                         timeout=120).stdout
    for line in out.splitlines():
        if line.rstrip().endswith(" kernels"):
            return int(line.split()[-2])
    raise RuntimeError("segc info printed no kernel count: " + out[-300:])


def max_rel_err(a, b):
    """max|a - b| / max(max|b|, 1e-6), b the reference; inf on a shape mismatch or a NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if np.isnan(a).any() != np.isnan(b).any() or (np.isnan(a) != np.isnan(b)).any():
        return float("inf")
    ok = ~np.isnan(b)
    if not ok.any():
        return 0.0
    denom = max(float(np.max(np.abs(b[ok]))), 1e-6)
    return float(np.max(np.abs(a[ok] - b[ok]))) / denom


def graph_json(name, inputs, body, outputs):
    """A segc-graph/1 document: inputs = [(name, shape)], body = node dicts, outputs = names."""
    return {"format": "segc-graph/1", "name": name,
            "inputs": [{"name": n, "dtype": "f32", "shape": list(s)} for n, s in inputs],
            "body": body, "outputs": list(outputs)}
