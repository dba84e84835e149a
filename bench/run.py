#!/usr/bin/env python3
"""bench/run.py -- `make bench`: the conv and whole-model benchmarks (the models twice: the default
layout, then compiled channels-last with --layout=ndhwc), results in bench/results.md."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
rc = 0
for script, extra in (("bench_conv.py", []), ("bench_models.py", []),
                      ("bench_models.py", ["--layout", "ndhwc"])):
    rc |= subprocess.call([sys.executable, os.path.join(HERE, script)] + extra + sys.argv[1:])
sys.exit(rc)
