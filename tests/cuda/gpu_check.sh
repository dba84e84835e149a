#!/bin/sh
# tests/cuda/gpu_check.sh -- every GPU check in one run on the device machine (< 8 minutes).
#   1. what the GPU is (nvidia-smi, torch);
#   2. test-gpu: tests/cuda/test_gpu.py, every op case and model case on the GPU against
#      PyTorch (fp32, 1e-4), run_device against run, an engine for another architecture;
#   3. bench-gpu: bench/bench_gpu.py, segc vs PyTorch eager and torch.compile at 128^3.
# The engines are compiled beforehand where segc builds (`make gpu-prep` writes
# build/gpu-cases.tar.xz): carry that file (build/gpu-cases.tar.xz) with the working tree.
# Results go to $OUT (the device tool's output folder; default build/gpu-out).
cd "$(dirname "$0")/../.." || exit 2
OUT=${OUT:-$(pwd)/build/gpu-out}
mkdir -p "$OUT"
PY=${PY:-python3}
t0=$(date +%s)
{
	nvidia-smi 2>&1 | head -n 15
	$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))"
} >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
if [ ! -d build/gpu-cases ] && [ ! -f build/gpu-cases.tar.xz ]; then
	echo "no build/gpu-cases(.tar.xz): trying to build segc and prepare here"
	{ make segc JOBS=16 && /usr/bin/python3 tests/cuda/gpu_prep.py; } >"$OUT/prep.txt" 2>&1
	tail -n 5 "$OUT/prep.txt"
fi
timeout 200 $PY tests/cuda/test_gpu.py >"$OUT/test-gpu.txt" 2>&1
echo "test-gpu exit $?" >>"$OUT/test-gpu.txt"
grep -v '^ok' "$OUT/test-gpu.txt" | tail -n 30
left=$((420 - ($(date +%s) - t0)))
[ $left -lt 60 ] && left=60
timeout $left $PY bench/bench_gpu.py --out "$OUT/bench-gpu.json" --total $((left - 40)) \
	>"$OUT/bench-gpu.txt" 2>&1
echo "bench-gpu exit $?" >>"$OUT/bench-gpu.txt"
cat "$OUT/bench-gpu.txt"
echo "gpu_check: $(($(date +%s) - t0)) s"
