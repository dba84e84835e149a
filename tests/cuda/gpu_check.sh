#!/bin/sh
# tests/cuda/gpu_check.sh -- every GPU check in one run on the device machine (<= 420 s).
#   1. what the GPU is (nvidia-smi, torch)                                   ($OUT/device.txt)
#   2. test-gpu: tests/cuda/test_gpu.py, every op case (fp32, and tf32/bf16 where built) and
#      model case on the GPU against PyTorch, run_device against run, an engine for another
#      architecture; 30 s per case, 165 s in all      ($OUT/test-gpu.txt, $OUT/test-gpu.json)
#   3. gpu-profile (PROFILE=1, the default on a GPU): bench/gpu_profile.py, per-kernel
#      GPU time and roofline share of the fp32 and bf16 bench engines of unet3d, basicunet,
#      segresnet and segmamba_v2; 100 s                                  ($OUT/gpu-profile.txt)
#      or, with TUNE=1, in its place: bench/tune_measure.py on the folders of
#      tests/cuda/tune_prep.sh (carried as build/gpu-tune.tar.xz), every variant's kernels
#      timed by CUDA events, bf16 folders first, PROFILE_S s
#                                                        ($OUT/tune.tar.xz, $OUT/tune.txt)
#   4. bench-gpu: bench/bench_gpu.py, segc vs PyTorch eager and torch.compile at 128^3, with
#      the time left (~140 s after a full test and profile; more when they end early)
#                                 ($OUT/bench-gpu.txt, $OUT/bench-gpu.json, $OUT/bench-gpu.md)
# Each stage has its own time limit and writes as it goes, so $OUT always holds what was done.
# It writes 7 files under $OUT (the device tool brings back at most 8: one is left for the
# caller's log); the profile's own log goes to build/gpu-profile.log, its errors into the report.
# The engines are compiled beforehand where segc builds (`make gpu-prep` writes
# build/gpu-cases.tar.xz): carry that file with the working tree.
# Env: OUT (default build/gpu-out), PY (python3), LIMIT (420: seconds for everything),
# SKIP_TEST=1 (the benchmark gets all the time), PROFILE=0 (no profile: the benchmark gets its
# time), PROFILE_ENGINES="build/gpu-ab/*/*.so" and PROFILE_S=S (profile these engines in S s
# instead: an A/B run from tests/cuda/ab_prep.sh, carried as build/gpu-ab.tar.xz), BENCH_ARGS (more bench_gpu.py options, e.g. "--only unet3d --only segmamba"),
# TUNE=1 (the tuning measurements in the profile's place and time),
# DEVICE=cpu and CASES=DIR: the dry run without a GPU.
cd "$(dirname "$0")/../.." || exit 2
OUT=${OUT:-$(pwd)/build/gpu-out}
LIMIT=${LIMIT:-420}
mkdir -p "$OUT"
PY=${PY:-python3}
t0=$(date +%s)
left() { echo $((LIMIT - ($(date +%s) - t0))); }
{
	timeout 20 nvidia-smi 2>&1 | head -n 15
	timeout 60 $PY -c "import torch; print('torch', torch.__version__,
		torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))"
} >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
DEVICE=${DEVICE:-cuda}
CASES=${CASES:-build/gpu-cases}
# the carried archive wins over a folder left by an earlier call on a warm machine
if [ -f "$CASES.tar.xz" ]; then
	rm -rf "$CASES"
	timeout 90 tar -xJf "$CASES.tar.xz" -C "$(dirname "$CASES")" || echo "unpacking failed"
fi
if [ ! -d "$CASES" ]; then
	echo "no build/gpu-cases(.tar.xz): run 'make gpu-prep' where segc builds and carry" \
		"build/gpu-cases.tar.xz" | tee "$OUT/test-gpu.txt"
	exit 1
fi
echo "prepared: $(ls "$CASES"/ops/*/ 2>/dev/null | grep -c '^[0-9]') op cases;" \
	"$(cat "$CASES/arch.txt" 2>/dev/null); $(($(date +%s) - t0)) s so far"
# the profile needs a GPU: off by default in the dry run (PROFILE=1 there checks the plumbing)
[ "$DEVICE" = cuda ] && PROFILE=${PROFILE:-1}
PROFILE=${PROFILE:-0}
PROF_S=0
[ "$PROFILE" = 1 ] && PROF_S=${PROFILE_S:-105}
# test-gpu: at most 175 s (its own limit 165 s), leaving the profile its PROF_S - 5 s (+5 to kill it)
# and >= 120 s for the benchmark
t=$(left)
t=$((t - 120 - PROF_S))
[ $t -gt 175 ] && t=175
[ $t -lt 60 ] && t=60
if [ -z "$SKIP_TEST" ]; then
	timeout -k 5 $t $PY tests/cuda/test_gpu.py --total $((t - 10)) --case-timeout 30 \
		--cases "$CASES" --device "$DEVICE" --json "$OUT/test-gpu.json" \
		>"$OUT/test-gpu.txt" 2>&1
	echo "test-gpu exit $?" >>"$OUT/test-gpu.txt"
	grep -v '^ok' "$OUT/test-gpu.txt" | tail -n 40
fi
# gpu-profile: the fp32 and bf16 bench engines (or PROFILE_ENGINES), PROF_S - 5 s; its report is
# written as it goes
if [ "$PROFILE" = 1 ] && [ -n "$TUNE" ]; then
	tn=build/gpu-tune
	if [ -f "$tn.tar.xz" ]; then
		rm -rf "$tn"
		timeout 60 tar -xJf "$tn.tar.xz" || echo "unpacking $tn.tar.xz failed"
	fi
	timeout -k 5 $((PROF_S - 5)) $PY bench/tune_measure.py --budget $((PROF_S - 25)) \
		--pack "$OUT/tune.tar.xz" $(ls -d $tn/*-bf16/ $tn/*-tf32/ $tn/*-fp32/ 2>/dev/null) \
		>"$OUT/tune.txt" 2>&1
	echo "tune_measure exit $?" >>"$OUT/tune.txt"
	tail -n 5 "$OUT/tune.txt"
	PROFILE=0
fi
if [ "$PROFILE" = 1 ] && [ -n "$PROFILE_ENGINES" ]; then
	ab=build/gpu-ab
	if [ -f "$ab.tar.xz" ]; then
		rm -rf "$ab"
		timeout 60 tar -xJf "$ab.tar.xz" -C build || echo "unpacking $ab.tar.xz failed"
	fi
	# shellcheck disable=SC2086
	engs=$(ls $PROFILE_ENGINES 2>/dev/null)
elif [ "$PROFILE" = 1 ]; then
	engs=""
	for g in unet3d basicunet segresnet segmamba_v2; do
		for e in "$CASES/bench/$g.so" "$CASES/bench/$g.bf16.so"; do
			[ -f "$e" ] && engs="$engs $e"
		done
	done
fi
if [ "$PROFILE" = 1 ]; then
	if [ ! -f bench/gpu_profile.py ]; then
		echo "gpu-profile: no bench/gpu_profile.py" | tee "$OUT/gpu-profile.txt"
	elif [ -z "$engs" ]; then
		echo "gpu-profile: no engines (${PROFILE_ENGINES:-$CASES/bench})" | tee "$OUT/gpu-profile.txt"
	else
		# shellcheck disable=SC2086
		timeout -k 5 $((PROF_S - 5)) $PY bench/gpu_profile.py --top 8 \
			--out "$OUT/gpu-profile.txt" $engs >build/gpu-profile.log 2>&1
		rc=$?
		# what the report does not hold already (a traceback, a driver message)
		[ $rc -ne 0 ] && grep -v '^== ' build/gpu-profile.log | tail -n 5 \
			>>"$OUT/gpu-profile.txt"
		echo "gpu-profile exit $rc$([ $rc -eq 124 ] && echo " (killed at $((PROF_S - 5)) s)")" \
			>>"$OUT/gpu-profile.txt"
		grep -E '^(== |gpu-profile)' "$OUT/gpu-profile.txt"
	fi
fi
# bench-gpu: what is left, less 10 s to copy out
t=$(($(left) - 10))
[ $t -lt 30 ] && t=30
# shellcheck disable=SC2086
timeout -k 5 $t $PY bench/bench_gpu.py --out "$OUT/bench-gpu.json" --total $((t - 15)) \
	--cases "$CASES" --device "$DEVICE" $BENCH_ARGS >"$OUT/bench-gpu.txt" 2>&1
echo "bench-gpu exit $?" >>"$OUT/bench-gpu.txt"
grep -v '^  ' "$OUT/bench-gpu.txt" | tail -n 30
echo "gpu_check: $(($(date +%s) - t0)) s"
