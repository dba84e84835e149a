#!/bin/sh
# tests/cuda/run.sh -- the CUDA backend without a GPU (a stage of tests/run_all.sh).
#   1. every shipped graph (graphs/*.json, default params) compiles for sm_80 and sm_90 through
#      NVRTC; the cubin embedded in engine.so is a valid EM_CUDA ELF for that sm with every
#      scheduled kernel (tests/cuda/cubin.py); nvcc, when present, compiles the sm_90 source;
#   2. a CUDA engine opened without a driver fails with a clear message; --precision=fp16 and a
#      missing NVRTC are clear compile errors;
#   3. runtime/cuda.c against a fake libcuda.so.1 (tests/cuda/fake_run.py), three model graphs
#      and the range records of run / run_device (--ranges);
#   4. tensor cores: the benchmark graphs with --precision tf32 (sm_90) and bf16 (sm_80) through
#      NVRTC; tests/cuda/test_mma.py: the tensor-core GEMM kernels emulated (exact, and with the
#      precision's rounding), with the gemm op cases and the tiny models at 2e-3 / 2e-2, and
#      the halo-tile and register-fragment convs' cases (unet3d with the latter through NVRTC
#      for both archs);
#   5. op cases of tests/ops/test_*.py (and three small model cases): compiled for sm_90 and
#      sm_80, the generated CUDA C run on the host (emulation, tests/cuda/segc_cuda.py) against
#      PyTorch at 1e-4; with them the load prologue cases (tests/ops/test_fusion_prologue.py);
#   6. the channels-last conv3d_ndhwc forms (tests/cuda/test_conv_cl.py --suite: tensor-core
#      and SIMT, fp32 / tf32 / bf16, emulated against PyTorch).
# Skipped, with a message, when /usr/local/cuda (or $CUDA_HOME) has no NVRTC.
# Env: SEGC (default build/segc), CUDA_OPS=0 skips the emulated runs of parts 4 and 5.
# Ends with "N passed, M failed".
cd "$(dirname "$0")/../.." || exit 2
SEGC=${SEGC:-build/segc}
case $SEGC in /*) ;; *) SEGC=$(pwd)/$SEGC ;; esac
CUDA=${CUDA_HOME:-/usr/local/cuda}
PY=/usr/bin/python3
if ! ls "$CUDA"/lib64/libnvrtc.so* >/dev/null 2>&1; then
	echo "cuda: skipped: no NVRTC under $CUDA (install the CUDA toolkit to test the CUDA backend)"
	echo "0 passed, 0 failed"
	exit 0
fi
export LD_LIBRARY_PATH="$CUDA/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
# add the last "N passed, M failed" line of a test program's output $1 to the totals and print
# it after label $2 (with the output's FAIL lines); without one, a failure named $3
t_last=$(date +%s)
tally() {
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	grep -E '^FAIL' "$1" | head -n 10
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed*}
		pass=$((pass + p))
		fail=$((fail + f))
		echo "$2: $line ($(($(date +%s) - t_last))s)"
	else
		bad "$3: $(tail -n 2 "$1" | tr '\n' ' ')"
	fi
	t_last=$(date +%s)
}

# the compile of "$tmp/$1" (compile_bg) for arch $2 succeeded and its cubin holds every
# scheduled kernel (sets $kernels); else a failure named $3, status 1
compiled_ok() {
	if [ "$(cat "$tmp/$1.rc")" != 0 ]; then
		bad "$3: $(head -c 300 "$tmp/$1.err")"
		return 1
	fi
	kernels=$(sed -n 's/^\(launch\|pack\) \([^ ]*\) .*/\2/p' "$tmp/$1.cu")
	# shellcheck disable=SC2086
	msg=$($PY tests/cuda/cubin.py "$tmp/$1.so" $2 $kernels) || { bad "$msg"; return 1; }
}

# compile "$tmp/$1" for arch $2 with the flags after: $1.so, $1.cu (--emit=cuda), $1.err and
# $1.rc (segc's status), in the background, on one thread (no --split-compile); CI has two
# cores: callers start two and wait_bg (not `wait`: the tensor-core runs below are in the
# background too)
cpids=
compile_bg() {
	(o=$1 a=$2
	shift 2
	SEGC_COMPILE_THREADS=1 "$SEGC" "$@" --target cuda:"$a" --emit=cuda -o "$tmp/$o.so" \
		>"$tmp/$o.cu" 2>"$tmp/$o.err"
	echo $? >"$tmp/$o.rc") &
	cpids="$cpids $!"
}
wait_bg() {
	# shellcheck disable=SC2086
	wait $cpids
	cpids=
}

# tensor cores through the emulation (tests/cuda/test_mma.py: block threads as fibers, the MMAs
# with tf32/bf16 rounding): its own GEMM cases exact at tf32 (indexing at 1e-4) and rounded
# at bf16, the conv3d, conv_transpose3d, linear, matmul op cases at 2e-3 (tf32) and the tiny
# models at 2e-3 and 2e-2 (bf16) of max|ref|; the exact cases under the forced tilings (SEGC_MMA=0/1/2, each tile
# size, split-K off and forced; a seventh of the cases per tiling, rotating); the halo-tile
# conv's cases (SEGC_MMA_HALO=1, codegen/tmpl_gpu_halo.c; opt-in, measured slower) rounded at
# bf16 (exact at tf32 by hand: test_mma.py --precision tf32 --exact --halo);
# the row-major A tile (the default; 16-byte vstores, bf16 activations packed as they are)
# exact at bf16 under six tilings (split-K among them), its tap-major cases at tf32 (f32
# tiles: 4-float vstores; taken with a prologue or the single-buffered loop), and the
# column-major tile it replaced (SEGC_MMA_AROW=0) exact at bf16 on the tap-major cases; the
# row gather (the default where it applies) rounded at bf16 and exact at tf32; the
# register-fragment form (the default at bf16 and tf32 where it applies; test_mma.py runs the
# others with SEGC_MMA_FRAG=0) rounded at bf16, its cases and unet3d, and exact at tf32; the
# model runs with the vectors on every loop that takes them (SEGC_CUDA_ILP_MIN=1: at bf16 the
# 8-wide bf16 loads and stores of the normalize passes).  They start in the background, beside
# every part below (mostly one thread each: two cores); the foreground takes what is left of
# them after its op sets, and they are tallied at the end.
# One run per line: the environment, then test_mma.py's arguments
mma_runs="SEGC_CUDA_ILP_MIN=65536 --precision tf32 --exact --cases --tilings
SEGC_CUDA_ILP_MIN=1 --precision bf16 --cases --models --halo
SEGC_CUDA_ILP_MIN=65536 --precision bf16 --exact --arow
SEGC_CUDA_ILP_MIN=65536 --precision tf32 --exact --arow --only tap-major
SEGC_CUDA_ILP_MIN=65536 --precision tf32 --exact --xrow
SEGC_CUDA_ILP_MIN=65536 --precision bf16 --xrow
SEGC_MMA_FRAG=1 SEGC_CUDA_ILP_MIN=65536 --precision bf16 --frag --models
SEGC_CUDA_ILP_MIN=65536 --precision tf32 --exact --frag
SEGC_MMA_AROW=0 --precision bf16 --exact --cases --only tap-major
SEGC_CUDA_ILP_MIN=1 --precision tf32 --ops --models"
# run the runs not yet claimed (mkdir claims one: the background worker and, once the op sets
# are done, the foreground share the queue; longest first)
mma_work() {
	i=0
	while IFS= read -r run; do
		i=$((i + 1))
		mkdir "$tmp/claim.$i" 2>/dev/null || continue
		t0=$(date +%s)
		# shellcheck disable=SC2086
		env ${run%% --*} SEGC_REAL="$SEGC" $PY tests/cuda/test_mma.py --${run#* --} \
			>"$tmp/mma.$i.out" 2>&1
		echo $(($(date +%s) - t0)) >"$tmp/mma.$i.s"
	done <<EOF
$mma_runs
EOF
}
mma_pid=
if [ "${CUDA_OPS:-1}" != 0 ]; then
	mma_work &
	mma_pid=$!
fi


for g in graphs/*.json; do
	name=$(basename "$g" .json)
	compile_bg "$name.sm_80" sm_80 "$g"
	compile_bg "$name.sm_90" sm_90 "$g"
	wait_bg
	cp "$tmp/$name.sm_90.so" "$tmp/$name.so" 2>/dev/null
	for arch in sm_80 sm_90; do
		if [ "$(cat "$tmp/$name.$arch.rc")" != 0 ]; then
			if ! "$SEGC" "$g" -o "$tmp/cpu.so" >/dev/null 2>&1; then
				echo "skip $name: does not compile for the CPU either:" \
					"$(head -c 200 "$tmp/$name.$arch.err")"
				break
			fi
			bad "$name $arch: $(head -c 300 "$tmp/$name.$arch.err")"
			continue
		fi
		cp "$tmp/$name.$arch.cu" "$tmp/$name.cu"
		kernels=$(sed -n 's/^\(launch\|pack\) \([^ ]*\) .*/\2/p' "$tmp/$name.cu")
		# shellcheck disable=SC2086
		msg=$($PY tests/cuda/cubin.py "$tmp/$name.$arch.so" $arch $kernels) || { bad "$msg"; continue; }
		# nvcc as a second, independent compiler (small graphs only: it is slow)
		# (sm_90 only: NVRTC and ptxas check both archs, nvcc checks the source once)
		if [ "$arch" = sm_90 ] && [ -x "$CUDA/bin/nvcc" ] &&
			[ "$(wc -c <"$tmp/$name.cu")" -lt 300000 ]; then
			if ! "$CUDA/bin/nvcc" -cubin -arch=$arch -o "$tmp/$name.nvcc.cubin" -x cu "$tmp/$name.cu" 2>"$tmp/err"; then
				bad "$name $arch: nvcc rejects the source: $(head -c 300 "$tmp/err")"
				continue
			fi
		fi
		ok "$name $arch: $(echo "$kernels" | wc -w) kernels, cubin $(wc -c <"$tmp/$name.$arch.so") bytes engine"
	done
done

# clear errors
if [ ! -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ] && [ -f "$tmp/tiny.so" ]; then
	if "$SEGC" synth "$tmp/tiny.so" --weights "$tmp/w.st" 2>"$tmp/err"; then
		bad "a CUDA engine opened without a driver"
	elif grep -q "compiled for CUDA but the NVIDIA driver" "$tmp/err"; then
		ok "no driver: $(head -c 120 "$tmp/err")..."
	else
		bad "no driver: unexpected message: $(cat "$tmp/err")"
	fi
fi
"$SEGC" graphs/tiny.json --target cuda:sm_90 --precision=fp16 -o "$tmp/x.so" 2>"$tmp/err"
if [ $? -ne 0 ] && grep -q "fp16" "$tmp/err"; then ok "fp16 refused"; else bad "fp16: $(cat "$tmp/err")"; fi
SEGC_NVRTC=/nonexistent/libnvrtc.so "$SEGC" graphs/tiny.json --target cuda:sm_90 -o "$tmp/x.so" 2>"$tmp/err"
if [ $? -eq 1 ] && grep -q "cannot load NVRTC" "$tmp/err"; then ok "no NVRTC: clear error"; else bad "no NVRTC: $(cat "$tmp/err")"; fi

# runtime/cuda.c on a fake driver (tests/cuda/fake_cuda.c: host memory, the emulated kernels,
# every launch's grid, block, n and buffers checked against the schedule): tiny, and segresnet
# at 8^3 (177 launches: issue #6, launches before the last realloc of the schedule read n from freed
# memory, CUDA_ERROR_ILLEGAL_ADDRESS on the H200), and tiny with 16 channels at tf32, whose
# tensor-core conv's weight copy is a prepack launch (codegen/prepack.c: run by load_weights,
# again for other weights), compiled with 4 lanes per thread (SEGC_CUDA_ILP: the grids the
# schedule gives, the full grid run); SEGC_EMU_EXACT: the emulated MMAs do not round; and
# tiny at tf32 whose two 16-channel convs are forced into 128 x 96 tiles of the row gather
# (SEGC_MMA_FRAG=0: not the register fragments; an empty knob is the default),
# 50,688 bytes of shared memory: with SEGC_CUDA_SMEM=65536 dynamic shared memory (the launches
# and graph nodes pass the bytes, open raises the function's limit, a GPU with less is refused);
# and tiny at tf32 through the halo-tile convs with row blocks (their weight copies prepack
# launches; the graph scenario)
for case in "graphs/tiny.json" "graphs/segresnet.json -D size=8,8,8" \
	"tf32 graphs/tiny.json -D C=16 -D size=8" "grid graphs/tiny.json -D C=4 -D size=12" \
	"smem graphs/tiny.json -D in_ch=16 -D C=16 -D size=8" \
	"halo graphs/tiny.json -D in_ch=16 -D C=16 -D size=16"; do
	prec=fp32 ilp=1 grid= smem= tile= only= halo= rb= frag=
	case $case in tf32\ *) prec=tf32 ilp=4 case=${case#tf32 } ;; esac
	# (its 256-thread tiles are slow to emulate: the scenarios of launches and graph nodes)
	case $case in smem\ *) prec=tf32 smem=65536 tile=128x96 only="graphs nographs smemcap"
		frag=0 case=${case#smem } ;; esac
	case $case in halo\ *) prec=tf32 halo=1 rb=4 only=graphs case=${case#halo } ;; esac
	# (SEGC_CUDA_GRID=3: three blocks stride over every elementwise loop)
	case $case in grid\ *) grid=3 case=${case#grid } ;; esac
	# shellcheck disable=SC2086
	SEGC_PRECISION=$prec SEGC_EMU_EXACT=1 SEGC_CUDA_ILP=$ilp SEGC_CUDA_ILP_MIN=1 \
		SEGC_CUDA_GRID=$grid SEGC_CUDA_SMEM=$smem SEGC_MMA_TILE=$tile SEGC_FAKE_ONLY=$only \
		SEGC_MMA_HALO=$halo SEGC_HALO_RB=$rb SEGC_MMA_FRAG=$frag SEGC=$SEGC \
		$PY tests/cuda/fake_run.py $case >"$tmp/fake.out" 2>&1
	msg=$(grep -E '^(ok|FAIL) ' "$tmp/fake.out" | head -n 1)
	case $smem/$msg in
	?*/*"dynamic shared memory"*) ;;
	?*/"ok "*) msg="FAIL no dynamic shared memory: $msg" ;;
	esac
	case $msg in
	"ok "*) ok "${msg#ok   }" ;;
	*) bad "fake driver: $case: ${msg:-$(tail -n 3 "$tmp/fake.out" | tr '\n' ' ')}" ;;
	esac
done
# range records on the fake driver: run and run_device refuse a label out of range before any
# kernel reads a table out of bounds (run_device copies the device input to the host first)
SEGC=$SEGC $PY tests/cuda/fake_run.py --ranges >"$tmp/fake.out" 2>&1
msg=$(grep -E '^(ok|FAIL) ' "$tmp/fake.out" | head -n 1)
case $msg in
"ok "*) ok "fake driver: ${msg#ok   }" ;;
*) bad "fake driver: ranges: ${msg:-$(tail -n 3 "$tmp/fake.out" | tr '\n' ' ')}" ;;
esac
# segc tune for a CUDA target on the fake driver: per-kernel event times, the tuning file
SEGC=$SEGC $PY tests/cuda/fake_run.py --tune >"$tmp/fake.out" 2>&1
msg=$(grep -E '^(ok|FAIL) ' "$tmp/fake.out" | head -n 1)
case $msg in
"ok "*) ok "${msg#ok   }" ;;
*) bad "fake driver: tune: ${msg:-$(tail -n 3 "$tmp/fake.out" | tr '\n' ' ')}" ;;
esac

# tensor cores: the benchmark graphs with --precision tf32 (sm_90) and bf16 (sm_80) through NVRTC
# and the cubin check; the tensor-core kernels must be there, and at bf16 the bf16 activations
# (kernel parameters of type __nv_bfloat16 *); unet3d's and basicunet's concats of the decoder
# have both chunks in place (memplan's alias_concat), so no concat kernel, at either
# precision (at bf16 a 2-byte element's offsets once missed the second chunk: a self-copy) (every
# shipped graph compiles with both precisions for both archs too, but that takes minutes: not
# in this stage)
for g in graphs/tiny.json graphs/unet3d.json graphs/segresnet.json graphs/basicunet.json; do
	name=$(basename "$g" .json)
	compile_bg "$name.tf32" sm_90 "$g" --precision=tf32
	compile_bg "$name.bf16" sm_80 "$g" --precision=bf16
	wait_bg
	for pa in tf32:sm_90 bf16:sm_80; do
		prec=${pa%%:*}
		arch=${pa#*:}
		compiled_ok "$name.$prec" $arch "$name $prec $arch" || continue
		nblk=$(grep -c "SEGC_BLOCK_RUN([0-9]" "$tmp/$name.$prec.cu")
		if grep -q "conv3d\|linear\|matmul" "$g" && [ "$nblk" -eq 0 ]; then
			bad "$name $prec $arch: no tensor-core kernel"
			continue
		fi
		# bf16: the activations between kernels are bf16 buffers (memplan's act_bf16)
		nbf=$(grep -c "__nv_bfloat16 \*b[0-9]" "$tmp/$name.$prec.cu")
		if [ "$prec" = bf16 ] && [ "$nbf" -eq 0 ]; then
			bad "$name $prec $arch: no bf16 activation buffers"
			continue
		fi
		ncat=$(grep -c "^launch k[0-9]*_concat" "$tmp/$name.$prec.cu")
		case $name in unet3d | basicunet) if [ "$ncat" -ne 0 ]; then
			bad "$name $prec $arch: $ncat concat kernels (the chunks are in place)"
			continue
		fi ;; esac
		ok "$name $prec $arch: $nblk tensor-core kernels of $(echo "$kernels" | wc -w) launches," \
			"$nbf bf16 buffer parameters, $ncat concat kernels"
	done
done
# the halo-tile convs (SEGC_MMA_HALO=1, codegen/tmpl_gpu_halo.c): unet3d both ways, the cubin
# checked, row-major A fragments in the source; at bf16 with row blocks (SEGC_HALO_RB=4: a
# warp's MMA of output row 0 with the A fragment of a later halo row)
export SEGC_MMA_HALO=1
compile_bg unet3d.halo.tf32 sm_90 graphs/unet3d.json --precision=tf32
export SEGC_HALO_RB=4
compile_bg unet3d.halo.bf16 sm_80 graphs/unet3d.json --precision=bf16
wait_bg
unset SEGC_MMA_HALO SEGC_HALO_RB
for pa in tf32:sm_90 bf16:sm_80; do
	prec=${pa%%:*}
	arch=${pa#*:}
	o=unet3d.halo.$prec
	compiled_ok "$o" $arch "unet3d halo $prec $arch" || continue
	nh=$(grep -c "segc_frag_ar_t segc_fa0" "$tmp/$o.cu")
	# (in runs of row-major A fragments: test_mma.py's row_blocks)
	nr=$(awk '/segc_frag_ar_t / { ar = 1 } /segc_frag_a_t / { ar = 0 }
		ar && /segc_mma_ab\(segc_acc\[0\], segc_fa[1-9],/ { n++ } END { print n + 0 }' "$tmp/$o.cu")
	if [ "$nh" -eq 0 ]; then
		bad "unet3d halo $prec $arch: no halo-tile conv"
		continue
	fi
	if [ "$prec" = bf16 ] && [ "$nr" -eq 0 ]; then
		bad "unet3d halo $prec $arch: no row blocks (SEGC_HALO_RB=4)"
		continue
	fi
	ok "unet3d halo $prec $arch: $nh halo-tile tap steps ($nr with row blocks), cubin ok"
done
# the register-fragment convs (the default; inline mma.sync PTX) through NVRTC and ptxas for
# both archs, the cubin checked: unet3d at bf16 (its convs of 16 channels and more), and at
# tf32 for sm_80 (m16n8k8; sm_90's tf32 engines are the benchmark graphs' above)
compile_bg unet3d.frag.sm_80 sm_80 graphs/unet3d.json --precision=bf16
compile_bg unet3d.frag.sm_90 sm_90 graphs/unet3d.json --precision=bf16
compile_bg unet3d.frag.tf32.sm_80 sm_80 graphs/unet3d.json --precision=tf32
wait_bg
for ap in sm_80:bf16 sm_90:bf16 sm_80:tf32; do
	arch=${ap%%:*} prec=${ap#*:}
	o=unet3d.frag.$arch
	[ "$prec" = tf32 ] && o=unet3d.frag.tf32.$arch
	compiled_ok "$o" $arch "unet3d frag $prec $arch" || continue
	nf=$(grep -c "float segc_racc" "$tmp/$o.cu")
	if [ "$nf" -eq 0 ]; then
		bad "unet3d frag $prec $arch: no register-fragment conv"
		continue
	fi
	ok "unet3d frag $prec $arch: $nf register-fragment convs, cubin ok"
done
# SEGC_HALO_MAXCO=N keeps convs of more than N output channels off the halo form: tiny's two
# 16-channel convs at 64^3 take it, with N = 8 neither, with N = 16 both
nh=
for m in "" 8 16; do
	nh="$nh $(SEGC_MMA_HALO=1 SEGC_HALO_MAXCO=$m $SEGC graphs/tiny.json -D in_ch=16 -D C=16 \
		-D size=64 --target cuda:sm_90 --precision=bf16 --emit=kernels 2>&1 | grep -c 'Hs shared')"
done
if [ "$nh" = " 2 0 2" ]; then ok "SEGC_HALO_MAXCO: halo-tile convs$nh"; else
	bad "SEGC_HALO_MAXCO unset, 8, 16: halo-tile convs$nh, expected 2 0 2"; fi
# bench/ptx_loops.py (static counts through nvcc's PTX) on the row blocks: R = 4 rows of a
# 16-column tile load 6 A and 3 B fragments for 12 MMAs a (kd, kw) group, a stage of three
# groups 27 for 36
if [ -x "$CUDA/bin/nvcc" ] && [ -f "$tmp/unet3d.halo.bf16.cu" ]; then
	pl=$($PY bench/ptx_loops.py "$tmp/unet3d.halo.bf16.cu" 'k[0-9]*_conv3d_t0$' 2>&1)
	case $pl in
	*"mma 36 frag 27 "*"0.75 fragment loads a 16x16x16 MMA"*)
		ok "ptx_loops: row blocks at 0.75 fragment loads an MMA" ;;
	*) bad "ptx_loops: no loop of 36 MMAs and 27 fragment loads: $(echo "$pl" | head -n 4 | tr '\n' ' ')" ;;
	esac
fi
# its MMA work in 16 x 16 x 16 units, whatever the instruction's shape
mu=$($PY -c "import sys; sys.path.insert(0, 'bench'); import ptx_loops as p
print(*[p.mma_units(s) for s in ('mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {',
      'wmma.mma.sync.aligned.col.col.m16n16k16.f32.bf16.bf16.f32 {',
      'wmma.mma.sync.aligned.col.col.m16n16k8.f32.tf32.tf32.f32 {', 'ld.global.nc.v4.u32')])")
if [ "$mu" = "0.5 1.0 0.5 0.0" ]; then ok "ptx_loops: MMA units $mu"; else
	bad "ptx_loops: MMA units $mu, expected 0.5 1.0 0.5 0.0"; fi
# --sass: nvdisasm's loops (a synthetic listing: the tool is optional, scripts/get-nvdisasm)
sl=$($PY - <<'PYEOF'
import sys
sys.path.insert(0, 'bench')
import ptx_loops as p
t = """//---- .text.k
.text.k:
        /*0000*/                   MOV R1, R2 ;
.L_x_7:
        /*0010*/               @P1 LDG.E.128.CONSTANT R4, [R8.64] ;
        /*0020*/                   HMMA.16816.F32.BF16 R40, R24, R20, R40 ;
        /*0030*/                   HMMA.1688.F32.TF32 R44, R24, R20, R44 ;
        /*0040*/                   LDSM.16.M88.4 R20, [R3] ;
        /*0050*/                   NOP ;
        /*0060*/              @!P1 BRA `(.L_x_7) ;
//----"""
(a, n, c, inner, u), = p.sass_loops(p.sass_entries(t)['k'])
print(n, c['mma'], c['ld.global'], c['frag'], inner, u)
PYEOF
)
if [ "$sl" = "5 2 1 1 True 0.75" ]; then ok "ptx_loops --sass: a loop's counts $sl"; else
	bad "ptx_loops --sass: a loop's counts '$sl', expected 5 2 1 1 True 0.75"; fi

# the N tile of a tap-major conv (codegen/tmpl_gpu_mma.c pick_tiling): tiny's conv2 (C -> C at
# 48^3 bf16: 864 tiles of 128 voxels) takes 128 x 32, 128 x 48, 256 x 64 and 128 x 96 for C
# 32, 48, 64, 96 (the Bs tile, two stages of bn rows of 40, says bn); SEGC_MMA_T48=0: 256 x 64
# for 48, 128 x 128 for 96; SEGC_MMA_T64=1: 128 x 64 for 64, its A tile row-major (all with
# SEGC_MMA_XROW=0: the row gather's K step of 48 changes the tiles' shapes; all with
# SEGC_MMA_FRAG=0: the register fragments take these convs at bf16); with the row
# gather (the default), C 48 takes 128 x 48 at K step 48 (As 2 x 48 rows of 136, Bs 2 x 48 of
# 56) and C 96 with SEGC_MMA_T48=0 128 x 64 of 256 threads (128 x 128 does not fit 48 KiB);
# at tf32, C 32 takes 128 x 32 at K step 24 and C 96 128 x 64 (128 x 96 does not fit)
t64=$(SEGC_MMA_FRAG=0 SEGC_MMA_XROW=0 SEGC_MMA_T64=1 $SEGC graphs/tiny.json -D in_ch=16 -D C=64 -D size=48 --target cuda:sm_90 \
	--precision=bf16 --emit=kernels 2>&1 | awk '/^kernel/ { k = $0 } /As shared/ && k ~ /body\/3/')
case $t64 in
*"[10240] ld 40 arow"*) ok "conv tile: Co 64 -> 128 x 64, A row-major (SEGC_MMA_T64=1)" ;;
*) bad "conv tile: Co 64 with SEGC_MMA_T64=1: $t64, expected 128 x 64 row-major" ;;
esac
# C, SEGC_MMA_T48, SEGC_MMA_XROW, the precision, what the tiles must hold (Bs: 2 x bn rows of
# BK + 8; at tf32 the row gather's K step is 24: 8 channels x 3 taps, 128 x 24 f32 A tiles)
while read -r c t48 xrow prec want; do
	tl=$(SEGC_MMA_FRAG=0 SEGC_MMA_XROW=$xrow SEGC_MMA_T48=$t48 $SEGC graphs/tiny.json -D in_ch=16 -D C=$c \
		-D size=48 --target cuda:sm_90 --precision=$prec --emit=kernels 2>&1 |
		awk '/^kernel/ { k = $0 } /[AB]s shared/ && k ~ /body\/3/ { printf " %s %s", $3, $5 }')
	case "$tl" in
	*"$want"*) ok "conv tile: Co $c $prec (SEGC_MMA_T48=$t48, SEGC_MMA_XROW=$xrow):$tl" ;;
	*) bad "conv tile: Co $c $prec (SEGC_MMA_T48=$t48, SEGC_MMA_XROW=$xrow):$tl, expected $want" ;;
	esac
done <<EOF
32 1 0 bf16 Bs [2560]
48 1 0 bf16 Bs [3840]
64 1 0 bf16 Bs [5120]
96 1 0 bf16 Bs [7680]
48 0 0 bf16 Bs [5120]
96 0 0 bf16 Bs [10240]
48 1 1 bf16 As [13056] Bs [5376]
96 0 1 bf16 As [13056] Bs [7168]
32 1 1 tf32 As [6528] Bs [2048]
96 1 1 tf32 As [6528] Bs [4096]
EOF

# an elementwise kernel's operands and result of the output's shape are indexed by the flat
# loop variable, not by its coordinates flattened again (lw_index, Coord.flat): tiny's
# normalize pass (k1_sub) reads b0[p0] and stores b5[p0]
kl=$($SEGC graphs/tiny.json --target cuda:sm_90 --emit=kernels 2>&1 | awk '/^kernel k1_sub/,/^}/')
case $kl in
*"= b0[p0]"*"b5[p0] = "*) ok "elementwise kernel indexed by its flat loop variable" ;;
*) bad "elementwise kernel k1_sub: no flat index: $(echo "$kl" | grep -E 'b[05]\[' | head -n 2)" ;;
esac

# ops through the CUDA C emulation: by default one case group per template family, sm_90
# only (the whole set, both archs: CUDA_OPS=all; about 10 minutes on 2 cores), with the 32-bit
# divisions (SEGC_CUDA_DIV32=1, off by default: every other CUDA stage runs the default form)
# and the vectors (codegen/cuda_vec.c) on every loop that takes them, however short
# (SEGC_CUDA_ILP_MIN=1; by default loops of 2^16 iterations and more)
emu_sets="tests/ops/test_ops.py:conv3d,conv_transpose3d,instance_norm,group_norm,softmax,linear,matmul,max_pool3d,avg_pool3d,upsample,concat,permute,gelu,add
tests/ops/test_ops_mamba.py:selective_scan,causal_conv1d,token_prune,token_unpool
tests/ops/test_ops_gpured.py
tests/ops/test_ops_gpuforms.py"
also=
if [ "${CUDA_OPS:-1}" = all ]; then
	emu_sets="$(ls tests/ops/test_ops*.py) tests/ops/test_fusion_prologue.py"
	also=sm_80
fi
t_last=$(date +%s)
if [ "${CUDA_OPS:-1}" != 0 ]; then
	for set in $emu_sets; do
		t=${set%%:*}
		[ -f "$t" ] || continue
		only=
		grep -q -- "--engine-only" "$t" && only=--engine-only
		case $set in *:*) only="$only --only ${set#*:}" ;; esac
		SEGC_CUDA_DIV32=1 SEGC_CUDA_ILP_MIN=1 SEGC_REAL=$SEGC SEGC=$(pwd)/tests/cuda/segc_cuda.py \
			SEGC_CUDA_ALSO=$also \
			$PY "$t" $only >"$tmp/ops.out" 2>&1
		tally "$tmp/ops.out" "ops $(basename "$t")" "$(basename "$t")"
	done
	# the reductions' other forms (codegen/tmpl_gpu_reduce.c): blocks of 32 threads (more
	# blocks per output: up to two partials per thread in the second loop) and the grid-stride
	# form (SEGC_GPU_RED_BLOCK=0), against PyTorch as above
	for rb in 32 0; do
		SEGC_GPU_RED_BLOCK=$rb SEGC_REAL=$SEGC SEGC=$(pwd)/tests/cuda/segc_cuda.py \
			$PY tests/ops/test_ops_gpured.py --engine-only --only moments \
			>"$tmp/ops.out" 2>&1
		tally "$tmp/ops.out" "ops reductions (SEGC_GPU_RED_BLOCK=$rb)" "test_ops_gpured.py $rb"
	done
	# the memory-bound families with 4 lanes per thread (SEGC_CUDA_ILP; every loop that
	# fits, however short, the vectors off; the default, 2 in elementwise kernels, is the same
	# code with 2: which kernels take it is tests/unit/test_emit_cuda.c's), against PyTorch
	for ilp in 4; do
		SEGC_CUDA_VEC=0 SEGC_CUDA_ILP=$([ $ilp = 4 ] && echo 4) SEGC_CUDA_ILP_MIN=1 SEGC_REAL=$SEGC \
			SEGC=$(pwd)/tests/cuda/segc_cuda.py $PY tests/ops/test_ops.py --engine-only \
			--only instance_norm,group_norm,upsample >"$tmp/ops.out" 2>&1
		tally "$tmp/ops.out" "ops lanes (SEGC_CUDA_ILP=$ilp)" "test_ops.py lanes $ilp"
	done
	# the vectors with gathers per lane (SEGC_CUDA_VEC=2, opt-in): the upsample, permute, pad
	# and slice cases
	SEGC_CUDA_VEC=2 SEGC_CUDA_ILP_MIN=1 SEGC_REAL=$SEGC SEGC=$(pwd)/tests/cuda/segc_cuda.py \
		$PY tests/ops/test_ops.py --engine-only --only upsample,permute,pad,slice \
		>"$tmp/ops.out" 2>&1
	tally "$tmp/ops.out" "ops vectors with gathers (SEGC_CUDA_VEC=2)" "test_ops.py vec 2"
fi
# the load prologue cases (tests/ops/test_fusion_prologue.py), fp32 and bf16 (tolerances 1e-4,
# 2e-2; the tensor-core prologues at tf32: test_mma.py's own cases, exact): the cases the
# tensor-core form takes, and two SIMT ones (every case at tf32 and bf16: CUDA_OPS=all, fp32
# with the op sets above)
pro_cases="leaky_k3_p1 leaky_k3_s2 conv_inorm_leaky_conv bn_relu_k3 c16 fill1 gn two"
pro_precs="fp32 bf16"
[ "${CUDA_OPS:-1}" = all ] && pro_cases= pro_precs="tf32 bf16"
if [ "${CUDA_OPS:-1}" != 0 ]; then
	for prec in $pro_precs; do
		# shellcheck disable=SC2086
		SEGC_REAL=$SEGC SEGC=$(pwd)/tests/cuda/segc_cuda.py SEGC_PRECISION=$prec \
			$PY tests/ops/test_fusion_prologue.py $pro_cases >"$tmp/pro.out" 2>&1
		tally "$tmp/pro.out" "prologue $prec" "test_fusion_prologue.py $prec"
	done
fi
# the channels-last conv (conv3d_ndhwc): both CUDA forms, fp32 / tf32 / bf16, emulated
if [ "${CUDA_OPS:-1}" != 0 ]; then
	SEGC_REAL=$SEGC $PY tests/cuda/test_conv_cl.py --suite >"$tmp/cl.out" 2>&1
	tally "$tmp/cl.out" "conv3d_ndhwc" "test_conv_cl.py"
fi
# the tensor-core runs started above: the foreground runs those not yet started
if [ -n "$mma_pid" ]; then
	(mma_work)
	wait "$mma_pid"
	i=0
	while IFS= read -r run; do
		i=$((i + 1))
		t_last=$(($(date +%s) - $(cat "$tmp/mma.$i.s" 2>/dev/null || echo 0)))
		tally "$tmp/mma.$i.out" "mma $run" "test_mma.py $run"
	done <<EOF
$mma_runs
EOF
	t_last=$(date +%s)
fi
# small model cases, through the same emulation
if [ "${CUDA_OPS:-1}" != 0 ] && [ -f tests/models/test_models.py ]; then
	SEGC_REAL=$SEGC SEGC=$(pwd)/tests/cuda/segc_cuda.py $PY tests/models/test_models.py \
		--only tiny --only tiny-odd >"$tmp/models.out" 2>&1
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/models.out" | tail -n 1)
	grep -E '^(PASS|FAIL)' "$tmp/models.out"
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-1}))
fi
echo "cuda: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
