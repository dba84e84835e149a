#!/usr/bin/python3
"""bench/ptx_loops.py -- static counts of a CUDA engine's loops, for a machine without a GPU.

    segc GRAPH --target cuda:sm_90 --precision bf16 --emit=cuda -o e.so > e.cu
    bench/ptx_loops.py e.cu [KERNEL_REGEX] [--arch sm_90] [--regs]

    bench/ptx_loops.py e.cu [KERNEL_REGEX] --sass    (the machine code: see below)

compiles the generated CUDA C to PTX with the toolkit's nvcc and prints, for each kernel whose
name matches (default: conv), every loop (a backward branch) that holds tensor-core MMAs,
global loads, shared stores or cp.async copies: its PTX instructions per iteration and the
mix (wmma.mma, fragment loads, ld.global, st.shared, cp.async, bar), and for innermost MMA
loops the instructions and fragment loads per 16 x 16 x 16 MMA of work (a bf16 wmma.mma is
one, an mma.sync m16n8k16 half of one, a tf32 wmma.mma m16n16k8 half; static counts: an
outer loop's include its inner loops' bodies once).  --regs adds ptxas's registers and spills per
kernel.  A count, not a timing: what docs/cuda.md quotes as "by the PTX".

--sass counts the machine code instead (what docs/cuda.md quotes as "by the SASS"): nvcc
compiles a cubin, and nvdisasm -- $NVDISASM, else build/tools/bin/nvdisasm, which
scripts/get-nvdisasm unpacks from Debian's CUDA 11.8 toolkit -- disassembles it (its header
rewritten to the ELF ABI that nvdisasm 11.8 reads; the code sections are unchanged): the same
loops with HMMA (HMMA.16816 half a 16x16x16 MMA, HMMA.1688 a quarter), LDG, LDS/LDSM, STS,
LDGSTS and BAR.  ptxas schedules, folds and moves registers, so this is the count that issue
slots see; PTX counts can be off either way (ptxas may merge a mask into a PRMT, or add the
register moves that an MMA's operand quad needs).
"""
import argparse
import os
import re
import struct
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


SASS_KEYS = (("mma", ("HMMA",)), ("frag", ("LDSM", "LDS")), ("ld.global", ("LDG.",)),
             ("st.shared", ("STS",)), ("cp.async", ("LDGSTS",)), ("bar", ("BAR.",)))


def sass_units(ins):
    """an instruction's work in 16 x 16 x 16 MMAs: HMMA.16816 0.5, HMMA.1688 0.25"""
    m = re.match(r"(?:@!?U?P\w+\s+)?HMMA\.(\d\d)(\d)(\d+)", ins)
    return int(m.group(1)) * int(m.group(2)) * int(m.group(3)) / 4096.0 if m else 0.0


def nvdisasm_path():
    p = os.environ.get("NVDISASM") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build", "tools", "bin", "nvdisasm")
    if not os.access(p, os.X_OK):
        sys.exit("ptx_loops: no nvdisasm at %s (scripts/get-nvdisasm fetches one, or set "
                 "NVDISASM)" % p)
    return p


def old_abi(cubin, arch):
    """the cubin with the ELF header of CUDA 11 (OS/ABI 0x33, ABI version 7, e_flags sm | 0x500 |
    sm << 16), which nvdisasm 11.8 reads; toolkits from 12.8 on write OS/ABI 0x41, version 8"""
    b = bytearray(open(cubin, "rb").read())
    if b[:4] != b"\x7fELF" or b[4] != 2:
        sys.exit("ptx_loops: %s is not a 64-bit ELF file" % cubin)
    sm = int(arch.split("_")[1])
    b[7], b[8] = 0x33, 7
    struct.pack_into("<I", b, 48, sm | 0x500 | sm << 16)
    out = cubin + ".v7"
    open(out, "wb").write(b)
    return out


def sass_entries(text):
    """{kernel: its lines} of nvdisasm -c output"""
    out, cur = {}, None
    for line in text.split("\n"):
        m = re.match(r"^\.text\.(\w+):", line)
        if m:
            cur = out.setdefault(m.group(1), [])
            continue
        if line.startswith("//----"):
            cur = None
        elif cur is not None:
            cur.append(line)
    return out


def sass_loops(body):
    """loops() for SASS: labels .L_x_N:, backward BRA `(.L_x_N)"""
    labels, spans, lines = {}, [], []
    for line in body:
        m = re.match(r"^\s*(\.L_x_\d+):", line)
        if m:
            labels[m.group(1)] = len(lines)
            continue
        m = re.match(r"^\s*/\*[0-9a-f]+\*/\s+(.*?)\s*;", line)
        if m:
            lines.append(m.group(1))
    for n, ins in enumerate(lines):
        m = re.search(r"\bBRA\b.*\((\.L_x_\d+)\)", ins)
        if m and m.group(1) in labels and labels[m.group(1)] <= n:
            spans.append((labels[m.group(1)], n + 1))
    res = []
    for a, n in spans:
        inner = not any(a <= a2 and n2 <= n and (a2, n2) != (a, n) for a2, n2 in spans)
        ins = [x for x in lines[a:n] if not re.match(r"^NOP\b", x)]
        cnt = {k: sum(any(re.search(r"(^|\s)" + re.escape(p), x) for p in pats) for x in ins)
               for k, pats in SASS_KEYS}
        if any(cnt[k] for k in ("mma", "ld.global", "st.shared", "cp.async")):
            res.append((a, len(ins), cnt, inner, sum(sass_units(x) for x in ins)))
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
    ap.add_argument("--sass", action="store_true", help="count nvdisasm's SASS, not PTX")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="ptx_loops_")
    src = os.path.join(d, "e.cu")
    with open(src, "w") as f:
        f.write(source(args.source))
    regs, cubin = {}, os.path.join(d, "e.cubin")
    if args.regs or args.sass:
        regs = registers(nvcc(src, args.arch, cubin, ["-cubin", "-Xptxas", "-v"]))
    if args.sass:
        r = subprocess.run([nvdisasm_path(), "-c", old_abi(cubin, args.arch)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        if r.returncode != 0:
            sys.exit("ptx_loops: nvdisasm failed: %s" % r.stderr[-2000:])
        funcs, find = sass_entries(r.stdout), sass_loops
    else:
        nvcc(src, args.arch, os.path.join(d, "e.ptx"), ["-ptx"])
        funcs, find = entries(open(os.path.join(d, "e.ptx")).read()), loops
    pat = re.compile(args.kernels)
    for name, body in funcs.items():
        if not pat.search(name):
            continue
        r = " (%d registers, %d bytes spilled)" % regs[name] if name in regs else ""
        print("%s%s" % (name, r))
        for a, n, c, inner, u in find(body):
            mix = " ".join("%s %d" % (k, c[k]) for k, _ in KEYS if c[k])
            per = "" if inner else ", loops inside"
            if c["mma"] and inner:  # (per 16 x 16 x 16 of MMA work, whatever the shape)
                per = ": %.1f instructions, %.2f fragment loads a 16x16x16 MMA" % (
                    n / u, c["frag"] / u)
            print("  loop at %s %d: %d instructions (%s)%s" % (
                "instruction" if args.sass else "line", a, n, mix, per))
    return 0


if __name__ == "__main__":
    sys.exit(main())
