#!/bin/sh
# tests/cases/run.sh -- whole cases (issue 7): sliding windows, mirroring and post-processing
# against tests/reference/sliding_window.py, NIfTI round trips and corrupt files, the embedding
# example, batches killed with SIGKILL and resumed.  Needs $SEGC (default build/segc) and
# $BUILD/examples/embed.  Prints "N passed, M failed".
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
p=0 f=0
for t in tests/cases/test_cases.py tests/cases/test_batch.py; do
	out=$($PY "$t" 2>&1)
	rc=$?
	echo "$out" | grep -E '^(ok|FAIL) ' | cut -c1-160
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$out" | tail -n 15
		echo "FAIL $t: no summary (exit $rc)"
		f=$((f + 1))
		continue
	fi
	p=$((p + ${line%% passed*}))
	f=$((f + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
	[ $rc -ne 0 ] && [ "$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')" -eq 0 ] && f=$((f + 1))
done
echo "$p passed, $f failed"
[ $f -eq 0 ]
