#!/usr/bin/python3
"""bench/ptx_loops.py -- static counts of a CUDA engine's loops, for a machine without a GPU.

    segc GRAPH --target cuda:sm_90 --precision bf16 --emit=cuda -o e.so > e.cu
    bench/ptx_loops.py e.cu [KERNEL_REGEX] [--arch sm_90] [--regs]

compiles the generated CUDA C to PTX with the toolkit's nvcc and prints, for each kernel whose
name matches (default: conv), every loop (a backward branch) that holds tensor-core MMAs,
global loads, shared stores or cp.async copies: its PTX instructions per iteration and the
mix (wmma.mma, fragment loads, ld.global, st.shared, cp.async, bar), and for innermost MMA
loops the instructions and fragment loads per 16 x 16 x 16 MMA of work (a bf16 wmma.mma is
one, an mma.sync m16n8k16 half of one, a tf32 wmma.mma m16n16k8 half; static counts: an
outer loop's include its inner loops' bodies once).  --regs adds ptxas's registers and spills per
kernel.  A count, not a timing: what docs/cuda.md quotes as "by the PTX".
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

CUDA = os.environ.get("CUDA_HOME", "/usr/local/cuda")
KEYS = (("mma", ("wmma.mma", "mma.sync")), ("frag", ("wmma.load", "ldmatrix")),
        ("ld.global", ("ld.global",)), ("st.shared", ("st.shared",)),
        ("cp.async", ("cp.async.ca", "cp.async.cg")), ("bar", ("bar.sync", "barrier")))


def source(path):
    """the CUDA C of `segc --emit=cuda` output, without its schedule and manifest comments"""
    s = open(path).read()
    i = s.find("/* launch schedule:")
    return s if i < 0 else s[:i]


def nvcc(src, arch, out, extra=()):
    r = subprocess.run([os.path.join(CUDA, "bin", "nvcc"), "-arch=" + arch, "-w"] +
                       list(extra) + ["-x", "cu", src, "-o", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        sys.exit("ptx_loops: nvcc failed: %s" % r.stderr[-2000:])
    return r.stderr


def entries(ptx):
    """{kernel: its lines}"""
    out = {}
    for m in re.finditer(r"\.entry (\w+)\(", ptx):
        end = ptx.find("// .globl", m.end())
        out[m.group(1)] = ptx[m.start():end if end >= 0 else len(ptx)].split("\n")
    return out


def mma_units(line):
    """an MMA instruction's work in 16 x 16 x 16 MMAs (wmma m16n16k16 1, m16n16k8 0.5; mma.sync
    m16n8k16 0.5, m16n8k8 0.25), 0 for any other line"""
    m = re.search(r"\bw?mma\.sync\.aligned\.(?:\w+\.)*m(\d+)n(\d+)k(\d+)", line)
    return int(m.group(1)) * int(m.group(2)) * int(m.group(3)) / 4096.0 if m else 0.0


def loops(body):
    """(first line, instructions, {key: count}, inner, 16x16x16 MMAs) of each loop with a
    backward branch (inner: no loop inside it)"""
    labels = {}
    for n, line in enumerate(body):
        m = re.match(r"^\$(\w+):", line.strip())
        if m:
            labels[m.group(1)] = n
    spans = []
    for n, line in enumerate(body):
        m = re.search(r"bra(?:\.uni)?\s+\$(\w+);", line)
        if m and m.group(1) in labels and labels[m.group(1)] < n:
            spans.append((labels[m.group(1)], n))
    res = []
    for a, n in spans:
        inner = not any(a <= a2 and n2 < n and (a2, n2) != (a, n) for a2, n2 in spans)
        ins = [x.strip() for x in body[a:n] if x.strip() and
               not x.strip().startswith(("$", "//", ".", "{", "}"))]
        cnt = {k: sum(any(p in x for p in pats) for x in ins) for k, pats in KEYS}
        if any(cnt[k] for k in ("mma", "ld.global", "st.shared", "cp.async")):
            res.append((a, len(ins), cnt, inner, sum(mma_units(x) for x in ins)))
    return res


def registers(log):
    """{kernel: (registers, spill store bytes)} from ptxas -v"""
    out, cur = {}, None
    for line in log.splitlines():
        m = re.search(r"entry function '(\w+)'", line)
        if m:
            cur = m.group(1)
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            out[cur] = (int(m.group(1)), out.get(cur, (0, 0))[1])
        m = re.search(r"(\d+) bytes spill stores", line)
        if m and cur:
            out[cur] = (out.get(cur, (0, 0))[0], int(m.group(1)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source")
    ap.add_argument("kernels", nargs="?", default="conv")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--regs", action="store_true")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="ptx_loops_")
    src = os.path.join(d, "e.cu")
    with open(src, "w") as f:
        f.write(source(args.source))
    nvcc(src, args.arch, os.path.join(d, "e.ptx"), ["-ptx"])
    regs = {}
    if args.regs:
        regs = registers(nvcc(src, args.arch, os.path.join(d, "e.cubin"),
                              ["-cubin", "-Xptxas", "-v"]))
    pat = re.compile(args.kernels)
    for name, body in entries(open(os.path.join(d, "e.ptx")).read()).items():
        if not pat.search(name):
            continue
        r = " (%d registers, %d bytes spilled)" % regs[name] if name in regs else ""
        print("%s%s" % (name, r))
        for a, n, c, inner, u in loops(body):
            mix = " ".join("%s %d" % (k, c[k]) for k, _ in KEYS if c[k])
            per = "" if inner else ", loops inside"
            if c["mma"] and inner:  # (per 16 x 16 x 16 of MMA work, whatever the shape)
                per = ": %.1f instructions, %.2f fragment loads a 16x16x16 MMA" % (
                    n / u, c["frag"] / u)
            print("  loop at line %d: %d instructions (%s)%s" % (a, n, mix, per))
    return 0


if __name__ == "__main__":
    sys.exit(main())
