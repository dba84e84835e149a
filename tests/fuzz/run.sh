#!/bin/sh
# tests/fuzz/run.sh -- build the libFuzzer harnesses (clang, ASan+UBSan) and run each briefly
# over its seed corpus.  New inputs go to a temporary directory, never into the tracked corpus.
# Usage: tests/fuzz/run.sh [SECONDS per harness, default 20]
set -u
cd "$(dirname "$0")/../.."
secs=${1:-20}
B=build-fuzz
CC=clang cmake -S . -B $B -DCMAKE_BUILD_TYPE=Debug -DSEGC_FUZZ=ON >/dev/null || exit 1
pass=0 fail=0
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	corpus=tests/fuzz/corpus/${name#fuzz_}
	if ! cmake --build $B --target "$name" -j 2 >/tmp/segc-fuzz-build.log 2>&1; then
		tail -n 20 /tmp/segc-fuzz-build.log
		echo "FAIL $name: does not build"
		fail=$((fail + 1))
		continue
	fi
	work=$(mktemp -d)
	if ASAN_OPTIONS=detect_leaks=1 "$B/fuzz/$name" -max_total_time="$secs" -rss_limit_mb=2048 \
		-timeout=10 -artifact_prefix="$work/" "$work" "$corpus" >"$work/log" 2>&1; then
		echo "ok   $name ($(grep -c . "$work/log") log lines, $secs s)"
		pass=$((pass + 1))
	else
		tail -n 30 "$work/log"
		echo "FAIL $name: crash or leak, artifacts in $work"
		fail=$((fail + 1))
		continue
	fi
	rm -rf "$work"
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
