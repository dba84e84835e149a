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

# case C (its expected line in NAME.err): `$SEGC ARGS...` must exit 1 with that line first on
# stderr, where F (a path) is written FILE and the folder tests/diag DIR
check() {
	c=$1 name=$2 f=$3
	shift 3
	got=$("$SEGC" "$@" 2>&1 >/dev/null | head -n 1 | sed "s#$f#FILE#g; s#$dir#DIR#g")
	"$SEGC" "$@" >/dev/null 2>&1
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
}

for c in $dir/*.json $dir/*.graph; do
	[ -f "$c" ] || continue
	f=$c
	[ "${c%.graph}" != "$c" ] && f=$(head -n 1 "$c")
	args=
	[ -f "$c.args" ] && args=$(cat "$c.args")
	# shellcheck disable=SC2086
	check "$c" "${c%.*}" "$f" --emit=ir $args "$f"
done
# tuning files (docs/tune.md): tests/diag/tune/NAME.json must make
#   $SEGC graphs/tiny.json --emit=keys --tune NAME.json [ARGS from NAME.json.args]
# exit 1 with the first stderr line in NAME.err (the tuning file's path written FILE)
for c in $dir/tune/*.json; do
	[ -f "$c" ] || continue
	args=
	[ -f "$c.args" ] && args=$(cat "$c.args")
	# shellcheck disable=SC2086
	check "$c" "${c%.json}" "$c" graphs/tiny.json --emit=keys --tune "$c" $args
done
echo "diag: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
