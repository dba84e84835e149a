# segc -- the README's two commands are `make demo` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PY ?= /usr/bin/python3

.PHONY: all segc demo test test-asan fuzz bench clean deps gpu-prep test-gpu bench-gpu

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
	# NVRTC keeps allocations of its own that LeakSanitizer would report: the sanitized run
	# tests the CUDA emitter without it (the normal run compiles with NVRTC)
	SEGC_NVRTC=/nonexistent SEGC=build-asan/segc tests/run_all.sh --quick

fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSEGC_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS)

# CUDA (docs/cuda.md): gpu-prep compiles the CUDA engines and test cases where segc builds
# (build/gpu-cases.tar.xz); test-gpu and bench-gpu need only Python + torch on the GPU machine
gpu-prep: segc
	$(PY) tests/cuda/gpu_prep.py

test-gpu:
	python3 tests/cuda/test_gpu.py

bench-gpu:
	python3 bench/bench_gpu.py --out bench/results-gpu.json

bench: segc
	$(PY) bench/run.py

clean:
	rm -rf $(BUILD) build-asan build-fuzz
