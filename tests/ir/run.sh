#!/bin/sh
# tests/ir/run.sh -- round trip of the IR text form: for every tests/ir/*.ir,
# parse -> verify -> print must give the file back byte for byte.
# The check runs inside build/tests/test_ir (the segc CLI has no "parse IR" mode yet);
# BUILD=dir selects another build directory.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-$here/../../build}
bin=$build/tests/test_ir
if [ ! -x "$bin" ]; then
	echo "tests/ir/run.sh: $bin not built (cmake --build $build --target test_ir)" >&2
	exit 2
fi
exec "$bin" "$here"
