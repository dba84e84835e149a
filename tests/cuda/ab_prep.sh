#!/bin/sh
# tests/cuda/ab_prep.sh -- engines for an A/B comparison of compile-time variants on the GPU.
#   VARIANTS="name:ENV=VALUE[,ENV=VALUE][:PREC[+PREC]] ..." (default: "base:")
#   GRAPHS="unet3d ..." PRECS="bf16 fp32" (for variants that name none) SIZE=128
#   KEEP=1: add to the engines of an earlier run (other variants or graphs) instead of
#   starting afresh
#   sh tests/cuda/ab_prep.sh
# writes build/gpu-ab/<variant>/<graph>[.<precision>].so (bench/bench_gpu.py's -D overrides at
# SIZE^3) and build/gpu-ab.tar.xz to carry to the device machine, where
#   python3 bench/gpu_profile.py build/gpu-ab/*/*.so
# prints each engine's GPU time per run and its per-kernel roofline shares.
cd "$(dirname "$0")/../.." || exit 2
SEGC=${SEGC:-build/segc}
VARIANTS=${VARIANTS:-base:}
GRAPHS=${GRAPHS:-unet3d basicunet segresnet segmamba_v2}
PRECS=${PRECS:-bf16}
SIZE=${SIZE:-128}
OUT=build/gpu-ab
[ -n "$KEEP" ] || rm -rf "$OUT"
rm -f "$OUT.tar.xz"
for v in $VARIANTS; do
	name=${v%%:*}
	rest=${v#*:}
	envs=$(echo "${rest%%:*}" | tr ',' ' ')
	precs=$PRECS
	case $rest in *:*) precs=$(echo "${rest#*:}" | tr '+' ' ') ;; esac
	mkdir -p "$OUT/$name"
	for g in $GRAPHS; do
		defs=$(/usr/bin/python3 -c "import sys; sys.path.insert(0, 'bench'); import bench_gpu
print(bench_gpu.defs_line('$g', $SIZE))")
		[ -n "$defs" ] || { echo "ab_prep: no bench graph $g"; exit 2; }
		for p in $precs; do
			suf=$([ "$p" = fp32 ] && echo .so || echo ".$p.so")
			# shellcheck disable=SC2086
			if env $envs "$SEGC" $defs --target cuda:sm_90 --precision=$p \
				-o "$OUT/$name/$g$suf" >/dev/null 2>"$OUT/err.txt"; then
				echo "ab_prep: $name/$g$suf"
			else
				echo "ab_prep: $name/$g$suf FAILED: $(head -n 1 "$OUT/err.txt")"
			fi
		done
	done
done
rm -f "$OUT/err.txt"
tar -cJf "$OUT.tar.xz" -C build gpu-ab && ls -la "$OUT.tar.xz"
