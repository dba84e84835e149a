#!/bin/sh
# tests/cuda/tune_prep.sh -- `segc tune --stage build` folders of the benchmark graphs for the
# GPU machine, where bench/tune_measure.py times each variant kernel by kernel (docs/tune.md).
#   GRAPHS="unet3d basicunet segresnet segmamba_v2" PRECS="bf16" SIZE=128
#   VARIANTS="base SEGC_MMA_HALO=1,SEGC_HALO_RB=4 ..." (default: segc tune's list for cuda)
#   sh tests/cuda/tune_prep.sh
# writes build/gpu-tune/<graph>-<precision>/ (plan, vK.so, vK.keys; not the weights and input,
# which tune_measure.py makes there) and build/gpu-tune.tar.xz to carry.  On the GPU machine
#   python3 bench/tune_measure.py build/gpu-tune/* --pack $OUT/tune.tar.xz
# (tests/cuda/gpu_check.sh does it with TUNE=1); back here, after unpacking that archive,
#   build/segc tune --stage choose --dir build/gpu-tune/unet3d-bf16 -o bench/tune/....json
cd "$(dirname "$0")/../.." || exit 2
SEGC=${SEGC:-build/segc}
GRAPHS=${GRAPHS:-unet3d basicunet segresnet segmamba_v2}
PRECS=${PRECS:-bf16}
SIZE=${SIZE:-128}
OUT=build/gpu-tune
rm -rf "$OUT" "$OUT.tar.xz"
mkdir -p "$OUT"
vargs=""
for v in $VARIANTS; do vargs="$vargs --variant $v"; done
for g in $GRAPHS; do
	defs=$(/usr/bin/python3 -c "import sys; sys.path.insert(0, 'bench'); import bench_gpu
print(bench_gpu.defs_line('$g', $SIZE))")
	[ -n "$defs" ] || { echo "tune_prep: no bench graph $g"; exit 2; }
	for p in $PRECS; do
		d=$OUT/$g-$p
		# shellcheck disable=SC2086
		if ! "$SEGC" tune $defs --target cuda:sm_90 --precision "$p" --stage build \
			--dir "$d" $vargs; then
			echo "tune_prep: $g $p failed"
			exit 1
		fi
		rm -f "$d/w.safetensors" "$d/x.npy" "$d"/*.log "$d"/synth.*
	done
done
tar -cJf "$OUT.tar.xz" "$OUT"
echo "tune_prep: $(ls "$OUT"/*/v*.so | grep -c "/v[0-9]*\.so$") engines in $(ls -d "$OUT"/*/ | wc -l) folders," \
	"$OUT.tar.xz $(du -k "$OUT.tar.xz" | cut -f1) KiB"
