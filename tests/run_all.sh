#!/bin/sh
# tests/run_all.sh -- the whole suite (what `make test` runs).
#   unit programs, IR round trips, golden IR after passes, diagnostics, ops and models against
#   PyTorch, bad input, then the ASan+UBSan configuration and brief libFuzzer runs.
# Options: --quick (skip the ASan and fuzz stages; used by the ASan stage itself)
# Env: SEGC (the segc binary, default build/segc), FUZZ_SECONDS (default 10 per harness)
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SEGC=${SEGC:-$ROOT/build/segc}
BUILD=$(dirname "$SEGC")
export SEGC BUILD
PY=/usr/bin/python3
quick=0
[ "${1:-}" = "--quick" ] && quick=1
# test files that build several engines per case build fewer under --quick (the ASan pass)
[ $quick -eq 1 ] && export SEGC_TEST_QUICK=1
log=$(mktemp -d)
total_pass=0
total_fail=0
failed_stages=""

# run a stage; count its "N passed, M failed" line, or 1 pass / 1 fail by exit status
stage() {
	name=$1
	shift
	printf '== %s\n' "$name"
	t0=$(date +%s)
	"$@" >"$log/$name.out" 2>&1
	rc=$?
	tail -n 25 "$log/$name.out"
	line=$(grep -E '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed' "$log/$name.out" | tail -n 1)
	if [ -n "$line" ]; then
		p=$(echo "$line" | sed -E 's/^([A-Za-z_-]+: )?([0-9]+) passed.*/\2/')
		f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	elif [ $rc -eq 0 ]; then
		p=1 f=0
	else
		p=0 f=1
	fi
	[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	[ "$f" -ne 0 ] && failed_stages="$failed_stages $name"
	printf '   %s: %s passed, %s failed (%ss)\n' "$name" "$p" "$f" $(($(date +%s) - t0))
}

unit() {
	n=0 bad=0
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		n=$((n + 1))
		if (cd "$ROOT" && "$t"); then echo "ok   $(basename "$t")"; else echo "FAIL $(basename "$t")"; bad=$((bad + 1)); fi
	done
	echo "$((n - bad)) passed, $bad failed"
	[ $bad -eq 0 ]
}

stage unit unit
[ -x tests/run_golden.sh ] && stage golden tests/run_golden.sh
[ -x tests/diag/run.sh ] && stage diag tests/diag/run.sh
[ -x tests/ir/run.sh ] && stage ir_roundtrip tests/ir/run.sh
# every op family and every model has its own file: tests/ops/test_*.py, tests/models/test_*.py
# (the ASan pass, --quick, runs the small model tests only: the big graphs' numerics are the
# same code paths, and they would double the suite's time under the sanitizers)
for t in tests/ops/test_*.py tests/models/test_*.py; do
	[ -f "$t" ] || continue
	[ $quick -eq 1 ] && case $t in tests/models/*) [ "$t" = tests/models/test_models.py ] || continue ;; esac
	stage "$(basename "$(dirname "$t")")_$(basename "$t" .py | sed 's/^test_//')" $PY "$t"
done
# whole cases: NIfTI, sliding windows vs PyTorch, embed example, kill -9 and resume (issue 7)
[ -x tests/cases/run.sh ] && stage cases tests/cases/run.sh
# the CUDA backend without a GPU (skipped, with a message, where there is no CUDA toolkit)
[ $quick -eq 0 ] && [ -x tests/cuda/run.sh ] && stage cuda tests/cuda/run.sh
[ -x tests/check_size.sh ] && stage size tests/check_size.sh

if [ $quick -eq 0 ] && [ "${SEGC_SKIP_ASAN:-0}" != 1 ]; then
	stage asan sh -c 'make -s test-asan'
fi
if [ $quick -eq 0 ] && [ "${SEGC_SKIP_FUZZ:-0}" != 1 ] && [ -x tests/fuzz/run.sh ]; then
	stage fuzz tests/fuzz/run.sh "${FUZZ_SECONDS:-10}"
fi

rm -rf "$log"
[ -n "$failed_stages" ] && echo "failed stages:$failed_stages"
echo "$total_pass passed, $total_fail failed"
[ $total_fail -eq 0 ]
