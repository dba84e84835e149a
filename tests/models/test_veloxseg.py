#!/usr/bin/env python3
"""tests/models/test_veloxseg.py -- graphs/veloxseg.json against tests/reference/veloxseg.py.

Both modality variants: AutoPET <CT,PET> (in_ch [1,1], two transformer streams, cross-modal
attention) and VeloxSeg-C (in_ch [4], early fusion), on 64^3 inputs with 2^3 windows on the
small stage grids (16/8/4/2: 4/3/2/1 window pairs), and an anisotropic 64x64x32 case, random weights through safetensors, engine and `segc interp`,
max rel err <= 1e-4.  Also checks the parameter counts of the published configurations
(`segc info`: 1,669,185 AutoPET, 1,469,393 VeloxSeg-C; spec m4fuse-veloxseg.md §3.8).
Uses the harness of tests/models/test_models.py.

    tests/models/test_veloxseg.py [--only NAME] [--no-interp] [--threads N]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_models as tm  # noqa: E402

SMALL = {"size": "64,64,64", "win1": "2,2,2", "win2": "2,2,2", "win3": "2,2,2", "win4": "2,2,2"}
CASES = [
    ("veloxseg-autopet-64", "graphs/veloxseg.json", "veloxseg", dict(SMALL), 11),
    ("veloxseg-c-64", "graphs/veloxseg.json", "veloxseg",
     dict(SMALL, in_ch="4", classes=4), 12),
    ("veloxseg-autopet-64x64x32", "graphs/veloxseg.json", "veloxseg",
     dict(SMALL, size="64,64,32", win1="2,2,1", win2="2,2,1", win3="2,2,1", win4="2,2,1"), 13),
]
DEFAULT = ("veloxseg-autopet-64", "veloxseg-c-64")
# graph, -D overrides, exact parameter count of the inference graph (spec §3.6/§3.8)
COUNTS = [
    ("graphs/veloxseg.json", {}, 1669185),
    ("graphs/veloxseg.json", {"in_ch": "4", "classes": 4}, 1469393),
    ("graphs/veloxseg.json", {"size": "128,128,64", "win1": "4,4,2", "win2": "8,8,4",
                              "win3": "4,4,2", "win4": "4,4,2"}, 1669827),
]


def run_cases(cases, counts, interp, threads):
    args = argparse.Namespace(interp=interp, threads=threads)
    work = tempfile.mkdtemp(prefix="segc-velox-")
    write_st = tm._writer()
    npass = nfail = 0
    for graph, over, want in counts:
        info = json.loads(tm.run([tm.segc_bin(), "info", os.path.join(tm.ROOT, graph), "--json"]
                                 + tm.defines(over)))
        ok = int(info["params"]) == want
        print("%s params %s%s: %s (expected %d)" % ("PASS" if ok else "FAIL", graph,
              "".join(" -D %s=%s" % kv for kv in over.items()), info["params"], want))
        npass, nfail = npass + ok, nfail + (not ok)
    for case in cases:
        label = "%s%s" % (case[0], "".join(" -D %s=%s" % kv for kv in case[3].items()))
        try:
            info, results, notes = tm.one_case(case, work, args, write_st)
        except Exception as e:  # noqa: BLE001 -- one line per failing case
            print("FAIL %s: %s" % (label, str(e).replace("\n", " ")))
            nfail += 1
            continue
        ok = all(err <= tm.TOL for _, err, _ in results)
        errs = " ".join("%s_relerr=%.2e (%.1fs)" % (m, e, t) for m, e, t in results)
        print("%s %s: %s params=%s" % ("PASS" if ok else "FAIL", label, errs,
                                       info.get("params", "?")))
        npass, nfail = npass + ok, nfail + (not ok)
    shutil.rmtree(work, ignore_errors=True)
    return npass, nfail


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append")
    ap.add_argument("--no-interp", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--all", action="store_true", help="also the slower anisotropic case")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    cases = [c for c in CASES if (not a.only and (a.all or c[0] in DEFAULT)) or
             (a.only and c[0] in a.only)]
    npass, nfail = run_cases(cases, COUNTS if not a.only else [], not a.no_interp, a.threads)
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
