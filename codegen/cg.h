/* codegen/cg.h -- from a planned module to an engine: lowering, emitters, linking.
 *
 * cg_lower() turns each Group of the module (in order) into a Kernel through the op templates
 * (codegen/tmpl_*.c) and writes the manifest; cg_emit_llvm() turns the Program into an object
 * file; cg_link() links it with the runtime archive into engine.so.  Errors go to the Diag with
 * the root node's Loc; an op or feature a backend lacks is refused with cg_unsupported(). */
#ifndef SEGC_CG_H
#define SEGC_CG_H
#include "kir.h"

typedef struct {
	const char *target;      /* "cpu" (default) or "cuda:sm_90" */
	const char *cpu;         /* LLVM CPU name; NULL: the host's */
	int opt_level;           /* 0..3 */
	FILE *emit_llvm;         /* if set: print the optimised LLVM IR here */
	FILE *emit_kernels;      /* if set: print the kernel IR here */
	const char *runtime_lib; /* path of libsegc_rt.a to link; NULL: next to the segc binary */
	int keep_temps;
	FILE *emit_cuda;         /* if set: print the CUDA C source here (cuda targets) */
	const char *precision;   /* cuda: "fp32" (default), "tf32", "bf16" */
} CgOptions;

/* Lower every group into p (p->arena must be set; p->gpu and p->precision chosen).  0, or -1
 * after diagnostics. */
int cg_lower(const Module *m, Program *p, Diag *d);
/* Manifest text for m (docs/abi.md), allocated from arena; the arena record is the module's
 * planned arena plus scratch_bytes; a packed record when packed_bytes > 0. */
const char *cg_manifest(const Module *m, int64_t scratch_bytes, int64_t packed_bytes,
                        Arena *arena);
/* Move the loops that read only weights into prepack kernels when p->prepack is set
 * (codegen/prepack.c); sets p->packslot, p->npack, p->packed_bytes, p->scratch_bytes. */
void cg_prepack(Program *p, const Module *m);
/* The kernel table both emitters embed as segc_gen_kinfo: "name\tclass\tflops\tbytes\n" per
 * kernel in order (runtime/profile.c, bench/gpu_profile.py); allocated from p->arena. */
const char *cg_kernel_table(const Program *p);
/* The profile class of a kernel from its root op (fuse.c names kernels "k12_<op>"): "conv",
 * "matmul", "scan", "norm", "move" or "elementwise". */
const char *cg_kernel_class(const char *name);
/* --emit=kernels: every kernel's kernel IR, the prepack kernels after a header line */
void cg_print_kernels(const Program *p, FILE *f);
/* Program.gpu and Program.precision for a target ("cpu", "cuda:sm_90") and a precision
 * ("fp32", "tf32", "bf16"; NULL: fp32); 0, or -1 if either is not one of those. */
int cg_target(Program *p, const char *target, const char *precision);
/* A block's static shared memory on NVIDIA GPUs: past it, dynamic shared memory (an attribute
 * raised at open, the bytes passed at every launch) */
enum { CG_SMEM_STATIC = 48 * 1024 };
/* The shared memory a block-mapped CUDA kernel may use, in bytes: CG_SMEM_STATIC, or
 * $SEGC_CUDA_SMEM (opt-in; at most the architecture's 163 KiB (sm_80) or 227
 * KiB (sm_90); the pool then is dynamic shared memory, docs/cuda.md). */
int64_t cg_gpu_smem(const Program *p);
/* Schedule knobs (codegen/knob.c, docs/tune.md): $NAME, or the current kernel's tuning entry's
 * value for NAME where it sets one */
const char *cg_knob(const char *name);
/* make e the current kernel's entry (NULL: none) on this thread; returns the one before */
const TuneEntry *cg_knob_enter(const TuneEntry *e);
/* NULL if a tuning file for target may set knob name (value NULL) or set it to value, else what
 * it expects ("an integer in [0, 4]"; a per-thread buffer) */
const char *cg_knob_check(const char *name, const char *value, const char *target);
/* the i-th per-kernel knob (NULL past the last), its target ("cpu", "cuda") and what it chooses */
const char *cg_knob_name(int i, const char **target, const char **what);
/* 16 hex digits that differ between two kernels only if their code may differ: their kernel IR
 * and, before a CUDA emitter filled Program.code_fp, the knobs the emitters read for them,
 * after it the code it wrote (segc --emit=keys; segc tune measures a variant of a kernel only
 * where its fingerprint is not the base's) */
const char *cg_kernel_fingerprint(const Program *p, const Kernel *k);
/* h extended by the n bytes at s (FNV-1a, starting from CG_HASH_INIT; sched: skipping a launch
 * schedule's " slot:offset" fields): kernel signatures, fingerprints, Program.code_fp */
#define CG_HASH_INIT 1469598103934665603ull
uint64_t cg_code_hash(uint64_t h, const char *s, size_t n, int sched);
/* Emit an object file at obj_path for the CPU.  0, or -1 after diagnostics. */
int cg_emit_llvm(const Program *p, const CgOptions *o, const char *obj_path, Diag *d);
/* Link obj with the runtime archive into a shared library at out_path (written to a temporary
 * file and renamed).  0, or -1 after diagnostics. */
int cg_link(const char *obj_path, const CgOptions *o, const char *out_path, Diag *d);
/* Combine n object files into one relocatable object at out_path (ld -r; $LD, else ld).
 * 0, or -1 after diagnostics. */
int cg_merge_objects(const char *const *objs, int n, const char *out_path, Diag *d);
int cg_unsupported(Diag *d, const Kernel *k, const char *backend, const char *what);
/* Threads a compile may use: the online CPUs, or $SEGC_COMPILE_THREADS; at most 8. */
int cg_compile_threads(void);
/* Emit the host object for o->target "cuda:sm_90" or "cuda:sm_80": CUDA C from the kernels
 * (printed to o->emit_cuda if set), compiled by NVRTC, with the manifest and the launch
 * schedule (codegen/emit_cuda.c, docs/cuda.md).  0, or -1 after diagnostics. */
int cg_emit_cuda(const Program *p, const CgOptions *o, const char *obj_path, Diag *d);
/* The host object of a CUDA engine at obj_path (codegen/cuda_host.c): the manifest, the launch
 * schedule, the kernel table and the cubin.  0, or -1 after diagnostics. */
int cg_cuda_host_object(const Program *p, const char *manifest, const char *sched,
                        const void *cubin, size_t ncubin, const char *obj_path, Diag *d);
/* Value ranges of one generated CUDA function's integer variables (codegen/cuda_range.c):
 * where a 64-bit division or remainder by a constant has a dividend in [0, 2^32), emit_cuda.c
 * divides in 32 bits.  A range with lo > hi is unknown. */
typedef struct {
	int64_t lo, hi;
} CRange;
typedef struct {
	CRange *var;   /* per variable; set while the function is emitted, in order */
	uint8_t *ndef; /* per variable: its definitions in the function (2: two or more) */
} CudaRanges;
void cr_begin(CudaRanges *r, Arena *a, const Kernel *k, const KNode *top);
void cr_set(CudaRanges *r, int var, CRange v); /* only for a variable defined once */
CRange cr_expr(const CudaRanges *r, const KNode *n);
CRange cr_loop(const CudaRanges *r, const KNode *n); /* a loop's variable, exit value too */
int cr_u32(const CudaRanges *r, const KNode *n);     /* binop n may divide in 32 bits */
/* bf16 pass-through variables of block-mapped function top (codegen/cuda_range.c, docs/cuda.md):
 * per variable, 1 where it may be declared __nv_bfloat16 and hold the bits as they are */
uint8_t *cr_raw_vars(Arena *a, const Kernel *k, const KNode *top);
/* word variables of top (cuda_range.c): half[v] -1 (not one) or the half of its 32-bit word that
 * holds raw bf16 variable v; mate[v] the variable that is always the word's other half, or -1 */
typedef struct {
	int8_t *half;
	int32_t *mate;
} CrWords;
CrWords cr_word_vars(Arena *a, const Kernel *k, const KNode *top, const uint8_t *raw);
/* The text every generated CUDA source starts with, and the block-mapped kernels' helpers
 * (segc_mma_*, segc_cp_async, segc_vload4) after "#define SEGC_KF 8|16" (cuda_prelude.c). */
extern const char cg_cuda_prelude[], cg_cuda_prelude_mma[];
/* Compile CUDA C src for arch ("sm_90") with NVRTC, loaded with dlopen (codegen/nvrtc.c);
 * *cubin is malloc'd (the caller frees).  0, or -1 after diagnostics. */
int cg_nvrtc_compile(const char *src, const char *name, const char *arch, void **cubin,
                     size_t *size, Diag *d);

#endif
