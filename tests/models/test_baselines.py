#!/usr/bin/env python3
"""tests/models/test_baselines.py -- graphs/segresnet.json and graphs/basicunet.json against
tests/reference/{segresnet,basicunet}.py.

The published configurations (SegResNet init_filters 32, blocks [1,2,2,4]/[1,1,1]; BasicUNet
features (32,32,64,128,256,32)) on small inputs (16^3 / 32^3), engine only (their interpreter
runs are slow), plus narrow variants engine + `segc interp`; random weights through
safetensors, max rel err <= 1e-4.  Also checks the exact parameter counts against the papers
(spec m4fuse-veloxseg.md §4: SegResNet 18,798,660; BasicUNet 5,752,068 in 4 / 5,750,274 in 2).
Uses the harness of tests/models/test_models.py and tests/models/test_veloxseg.py.

    tests/models/test_baselines.py [--only NAME] [--threads N]
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_veloxseg as tv  # noqa: E402

# name, graph, reference, -D overrides, seed, also interp
CASES = [
    ("segresnet-16", "graphs/segresnet.json", "segresnet", {"size": "16,16,16"}, 21, False),
    ("segresnet-F8-16x16x32", "graphs/segresnet.json", "segresnet",
     {"size": "16,16,32", "F": 8, "in_ch": 2, "classes": 3}, 22, True),
    ("basicunet-32", "graphs/basicunet.json", "basicunet", {"size": "32,32,32"}, 23, False),
    ("basicunet-narrow-32", "graphs/basicunet.json", "basicunet",
     {"size": "32,32,48", "features": "8,8,16,16,32,8", "in_ch": 2, "classes": 2}, 24, True),
]
COUNTS = [
    ("graphs/segresnet.json", {}, 18798660),
    ("graphs/basicunet.json", {}, 5752068),
    ("graphs/basicunet.json", {"in_ch": 2, "classes": 2}, 5750274),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    npass = nfail = 0
    counts = COUNTS if not a.only else []
    for c in CASES:
        if a.only and c[0] not in a.only:
            continue
        p, f = tv.run_cases([c[:5]], counts, c[5], a.threads)
        npass, nfail, counts = npass + p, nfail + f, []
    if counts:
        p, f = tv.run_cases([], counts, False, a.threads)
        npass, nfail = npass + p, nfail + f
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
