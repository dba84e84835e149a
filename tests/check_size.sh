#!/bin/sh
# tests/check_size.sh -- the size rules of STYLE.md 3.1/3.13: a file <= 1,500 lines, a pass
# <= 400 lines, lines <= 100 columns (tabs at 8).  Prints a report; fails on a violation.
cd "$(dirname "$0")/.."
bad=0 n=0
for f in frontend/*.[ch] ir/*.[ch] ir/*.def passes/*.[ch] passes/*.def codegen/*.[ch] codegen/*.def \
	runtime/*.[ch] tools/*.c; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	lines=$(wc -l <"$f")
	limit=1500
	case "$f" in passes/*.c) [ "$(basename "$f")" = pipeline.c ] || limit=400 ;; esac
	if [ "$lines" -gt $limit ]; then
		echo "FAIL $f: $lines lines (limit $limit)"
		bad=$((bad + 1))
	fi
	wide=$(expand -t 8 "$f" | awk 'length > 100 { c++ } END { print c + 0 }')
	case "$f" in ir/ops*.def) wide=0 ;; esac  # op tables are wide by design
	if [ "$wide" -gt 0 ]; then
		echo "FAIL $f: $wide lines over 100 columns"
		bad=$((bad + 1))
	fi
done
total=$(cat frontend/*.c ir/*.c passes/*.c codegen/*.c runtime/*.c tools/*.c 2>/dev/null | wc -l)
echo "size: $n files, $total lines of C"
echo "$((n - bad)) passed, $bad failed"
[ $bad -eq 0 ]
