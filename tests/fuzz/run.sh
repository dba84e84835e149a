#!/bin/sh
# tests/fuzz/run.sh -- build the libFuzzer harnesses (clang, ASan+UBSan) and run each briefly
# over its seed corpus, two at a time (each harness is one process on one core: CI has two).
# New inputs go to a temporary directory, never into the tracked corpus.
# Usage: tests/fuzz/run.sh [SECONDS per harness, default 20]
set -u
cd "$(dirname "$0")/../.."
secs=${1:-20}
B=build-fuzz
CC=clang cmake -S . -B $B -DCMAKE_BUILD_TYPE=Debug -DSEGC_FUZZ=ON >/dev/null || exit 1
pass=0 fail=0
res=$(mktemp -d)

# harness $1: "ok ..." or "FAIL ..." (with the log's tail) into $res/$1
fuzz_one() {
	name=$1
	corpus=tests/fuzz/corpus/${name#fuzz_}
	work=$(mktemp -d)
	if ASAN_OPTIONS=detect_leaks=1 "$B/fuzz/$name" -max_total_time="$secs" -rss_limit_mb=2048 \
		-timeout=10 -artifact_prefix="$work/" "$work" "$corpus" >"$work/log" 2>&1; then
		echo "ok   $name ($(grep -c . "$work/log") log lines, $secs s)" >"$res/$name"
		rm -rf "$work"
	else
		{ tail -n 30 "$work/log"; echo "FAIL $name: crash or leak, artifacts in $work"; } \
			>"$res/$name"
	fi
}

running=0
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	if ! cmake --build $B --target "$name" -j 2 >/tmp/segc-fuzz-build.log 2>&1; then
		tail -n 20 /tmp/segc-fuzz-build.log
		echo "FAIL $name: does not build" >"$res/$name"
		continue
	fi
	fuzz_one "$name" &
	running=$((running + 1))
	if [ $running -eq 2 ]; then
		wait
		running=0
	fi
done
wait
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	cat "$res/$name"
	case $(tail -n 1 "$res/$name") in
	ok*) pass=$((pass + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
done
rm -rf "$res"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
