#!/usr/bin/env python3
"""bench/run.py -- `make bench`: the conv and whole-model benchmarks, results in bench/results.md."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
rc = 0
for script in ("bench_conv.py", "bench_models.py"):
    rc |= subprocess.call([sys.executable, os.path.join(HERE, script)] + sys.argv[1:])
sys.exit(rc)
