#!/bin/sh
# tests/run_golden.sh -- golden IR after a pass (cproc's runtests, STYLE.md 3.10).
#
# For every tests/golden/<pass>/<case>.json, runs
#     $SEGC --emit=ir --verify-each --dump-after=<pass> <case>.json
# and diffs the dump (written to stderr) with <case>.<pass>.ir next to it; a <case>.flags file
# next to it adds options (e.g. --layout=ndhwc).
#   SEGC=path    the compiler (default build/segc)
#   UPDATE=1     rewrite the expected files instead of comparing (read the diff before
#                committing it)
# Prints each failure with its diff, then "N passed, M failed"; exits 1 if any failed.
cd "$(dirname "$0")/.." || exit 2
SEGC=${SEGC:-build/segc}
case $SEGC in /*) ;; *) SEGC=$PWD/$SEGC ;; esac
if [ ! -x "$SEGC" ]; then
	echo "run_golden.sh: no compiler at $SEGC (build it with make, or set SEGC)" >&2
	exit 2
fi

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
pass=0
fail=0

for case in tests/golden/*/*.json; do
	[ -e "$case" ] || continue
	p=$(basename "$(dirname "$case")")
	want=${case%.json}.$p.ir
	got=$tmp/got.ir
	# the dump goes to stderr, the final IR to stdout (not compared here)
	# <case>.flags, when present: more segc options for that case (one line)
	flags=
	[ -f "${case%.json}.flags" ] && flags=$(cat "${case%.json}.flags")
	# shellcheck disable=SC2086
	"$SEGC" --emit=ir --verify-each --dump-after="$p" $flags "$case" 2>"$got" >/dev/null
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "FAIL $case: segc exited $rc"
		sed 's/^/    /' "$got"
		fail=$((fail + 1))
		continue
	fi
	if [ -n "$UPDATE" ]; then
		cp "$got" "$want"
		echo "updated $want"
		pass=$((pass + 1))
	elif [ ! -f "$want" ]; then
		echo "FAIL $case: no expected file $want (run with UPDATE=1)"
		fail=$((fail + 1))
	elif diff -u "$want" "$got" >"$tmp/diff"; then
		pass=$((pass + 1))
	else
		echo "FAIL $case"
		cat "$tmp/diff"
		fail=$((fail + 1))
	fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
