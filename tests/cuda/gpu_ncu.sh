#!/bin/sh
# tests/cuda/gpu_ncu.sh -- Nsight Compute on chosen kernels of a CUDA engine (device machine).
#   sh tests/cuda/gpu_ncu.sh ENGINE.so 'k(0|3)_conv3d_t0' [COUNT] > ncu.txt
# runs the engine once (bench/gpu_profile.py --once: random weights and input, plain launches)
# under ncu and reports the first COUNT (default 4) launches whose kernel matches the regex:
# speed of light (compute and memory throughput against peak), occupancy, warp stall reasons,
# memory and shared-memory traffic, instruction statistics.  Clocks are left alone
# (--clock-control none), as the benchmarks run them.  Env: PY (python3), NCU (ncu).
eng=$(realpath "$1" 2>/dev/null)
re=$2
count=${3:-4}
[ -f "$eng" ] && [ -n "$re" ] || { echo "usage: gpu_ncu.sh ENGINE.so REGEX [COUNT]"; exit 2; }
cd "$(dirname "$0")/../.." || exit 2
SEGC_CUDA_GRAPHS=0 ${NCU:-ncu} --clock-control none --kernel-name "regex:$re" \
	--launch-count "$count" --section SpeedOfLight --section Occupancy \
	--section WarpStateStats --section MemoryWorkloadAnalysis --section InstructionStats \
	--section LaunchStats ${PY:-python3} bench/gpu_profile.py --once "$eng"
