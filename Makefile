# segc -- the README's two commands are `make demo` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PY ?= /usr/bin/python3

.PHONY: all segc demo test test-asan fuzz bench clean deps

all: segc

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

segc: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

deps:
	scripts/install-deps

# installs what is missing, builds, compiles a shipped graph, runs it on a synthetic volume
demo: deps
	$(MAKE) segc
	scripts/demo

# the whole suite: unit, golden, diagnostics, ops and models against PyTorch, ASan, fuzz
test: segc
	tests/run_all.sh

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSEGC_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	SEGC=build-asan/segc tests/run_all.sh --quick

fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSEGC_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS)

bench: segc
	$(PY) bench/run.py

clean:
	rm -rf $(BUILD) build-asan build-fuzz
