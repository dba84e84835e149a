#!/bin/sh
# tests/diag/run.sh -- golden diagnostics: every tests/diag/NAME.json must make
#   $SEGC --emit=ir [ARGS from NAME.json.args] NAME.json
# exit with status 1 and print, as its first stderr line, the line in NAME.err, where the
# graph's path is written FILE and its folder DIR (included files live in DIR/lib/).
# A case NAME.graph (one line: the path of a graph such as graphs/segmamba.json) runs that
# graph instead, with NAME.graph.args; FILE then stands for that path (the graphs' "checks").
# Tuning files: tests/diag/tune/NAME.json (below).
# UPDATE=1 rewrites the .err files from the current output (review the diff).
cd "$(dirname "$0")/../.." || exit 2
SEGC=${SEGC:-build/segc}
dir=tests/diag
pass=0
fail=0
for c in $dir/*.json $dir/*.graph; do
	[ -f "$c" ] || continue
	name=${c%.*}
	f=$c
	[ "${c%.graph}" != "$c" ] && f=$(head -n 1 "$c")
	args=
	[ -f "$c.args" ] && args=$(cat "$c.args")
	# shellcheck disable=SC2086
	got=$("$SEGC" --emit=ir $args "$f" 2>&1 >/dev/null | head -n 1 | sed "s#$f#FILE#g; s#$dir#DIR#g")
	"$SEGC" --emit=ir $args "$f" >/dev/null 2>&1
	rc=$?
	if [ -n "$UPDATE" ]; then
		printf '%s\n' "$got" >"$name.err"
	fi
	want=$(head -n 1 "$name.err" 2>/dev/null)
	if [ "$rc" -eq 1 ] && [ "$got" = "$want" ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL $c (exit $rc)"
		echo "  want: $want"
		echo "  got:  $got"
	fi
done
# tuning files (docs/tune.md): tests/diag/tune/NAME.json must make
#   $SEGC graphs/tiny.json --emit=keys --tune NAME.json
# exit 1 with the first stderr line in NAME.err (the tuning file's path written FILE)
for c in $dir/tune/*.json; do
	[ -f "$c" ] || continue
	name=${c%.json}
	got=$("$SEGC" graphs/tiny.json --emit=keys --tune "$c" 2>&1 >/dev/null | head -n 1 |
		sed "s#$c#FILE#g")
	"$SEGC" graphs/tiny.json --emit=keys --tune "$c" >/dev/null 2>&1
	rc=$?
	[ -n "$UPDATE" ] && printf '%s\n' "$got" >"$name.err"
	want=$(head -n 1 "$name.err" 2>/dev/null)
	if [ "$rc" -eq 1 ] && [ "$got" = "$want" ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL $c (exit $rc)"
		echo "  want: $want"
		echo "  got:  $got"
	fi
done
echo "diag: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
