/* codegen/tmpl.h -- what the op templates (codegen/tmpl_*.c) share with codegen/lower.c.
 *
 * A template turns the root node of one Group into top-level loops of the Kernel L->k.  At
 * every output element it calls lw_output() with the root's value at a known output
 * coordinate; lw_output() applies the group's elementwise epilogue and stores the result.
 * Root operands are always materialised buffers (or inlined constants): read them with
 * lw_buf()/lw_operand().  Internal to codegen/. */
#ifndef SEGC_TMPL_H
#define SEGC_TMPL_H
#include "cg.h"

typedef struct {
	Program *p;
	Kernel *k;
	const Module *m;
	const Group *g;
	const Node *root;
	Diag *d;
	int64_t scratch_used; /* bytes of scratch this kernel has taken (lw_scratch) */
	int pro_applied;      /* lw_prologue was called (a prologue no template applied fails);
	                       * -1: it met an op cg_elt_expr does not support */
	KNode **pro_ops;      /* lw_prologue_hoist: the chain's operands, let-bound; or NULL */
	/* lw_prologue_hoist: the chain's first pro_naff nodes folded into (x - pro_c) * pro_s +
	 * pro_t (each NULL when absent) */
	uint32_t pro_naff;
	KNode *pro_c, *pro_s, *pro_t;
	KNode *nest_flat;     /* lw_nest: its loop variable where the nest is one flat loop */
	int stats_done;       /* the template computed the group's statistics (Group.stats) */
	int want_val;         /* set by a template: lw_output leaves ... */
	KNode *out_val;       /* ... the group result's value, let-bound, here */
} Lower;

/* Coordinates of one output element.  Loop dim j has index idx[j] and covers the dims
 * [first[j], last[j]] of shape t (row-major, flattened); templates other than the
 * elementwise one use one loop dim per output dim (coord_full). */
typedef struct {
	const Type *t;
	int n;
	KNode *idx[IR_MAXRANK];
	int8_t first[IR_MAXRANK], last[IR_MAXRANK];
	/* the row-major flat index of the element in t where a template knows it (the GPU's
	 * one-loop elementwise nest), else NULL: lw_index gives it to operands of t's shape */
	KNode *flat;
} Coord;

/* ---- lower.c: buffers, index arithmetic, loops, epilogue ---- */
int lw_buf(Lower *L, ValueId v);                      /* KBuf of a value; views resolved */
int lw_outbuf(Lower *L, ValueId v);                   /* same, marked written */
KNode *ix_c(Lower *L, int64_t c);                     /* i64 constant */
KNode *ix_add(Lower *L, KNode *a, KNode *b);          /* i64 a + b, constants folded */
KNode *ix_mul(Lower *L, KNode *a, int64_t c);         /* i64 a * c, constants folded */
KNode *lw_inrange(Lower *L, KNode *i, int64_t n);     /* 0 <= i < n (i64 i) */
/* i32 arithmetic (offsets the GPU computes in 32 bits), not folded: constant c, a cast to
 * i32, a + b, a * c, 0 <= a < n */
KNode *i32_c(Lower *L, int64_t c);
KNode *i32_of(Lower *L, KNode *a);
KNode *i32_add(Lower *L, KNode *a, KNode *b);
KNode *i32_mul(Lower *L, KNode *a, int64_t c);
KNode *i32_in(Lower *L, KNode *a, int64_t n);
KNode *lw_clampi(Lower *L, KNode *i, int64_t n);      /* i clamped to [0, n) */
KNode *lw_let(Lower *L, KNode *block, const char *name, KNode *init);  /* a var ref bound to init */
KNode *lw_simple(Lower *L, KNode *block, KNode *e);   /* e, let-bound unless a var or constant */
/* Append "for var in [lo, hi)" to block; returns the loop (its body is loop->body). */
KNode *lw_loop(Lower *L, KNode *block, const char *name, KNode *lo, KNode *hi, LoopAnn ann,
               KNode **ref);
/* CUDA: a top-level block loop over [0, n) (*it) whose body is a thread loop over [0, T)
 * (*th); returns the thread loop (its op: blocks per SM asked; its body: the threads') */
KNode *lw_block_loop(Lower *L, const char *name, int64_t n, int64_t T, KNode **it, KNode **th);
int lw_all_f32(Lower *L); /* the root's inputs and output are all f32 */
/* Top-level loop nest over dims[0..n): the outer dims flattened into one parallel loop, the
 * last dim innermost (a vector loop when vec; chunked for parallelism when long).  Fills
 * idx[0..n) and returns the innermost block.  n may be 0 (one iteration). */
KNode *lw_nest(Lower *L, const int64_t *dims, int n, int vec, KNode **idx);
/* split the flat index o over dims[0..n) (row-major) into idx[], with lets in block */
void lw_unflatten(Lower *L, KNode *block, KNode *o, const int64_t *dims, int n, KNode **idx);
void coord_full(Coord *c, const Type *t, KNode *const *idx);
int64_t lw_stride(const Type *t, int d);              /* row-major stride of dim d */
/* Flat element index of value type vt at c, with numpy broadcasting of vt onto c->t. */
KNode *lw_index(Lower *L, const Coord *c, const Type *vt);
/* Operand v at c: an f32 immediate for a constant, else a broadcasting load. */
KNode *lw_operand(Lower *L, const Coord *c, ValueId v);
int lw_is_out(Lower *L, ValueId v);                   /* v is stored by this group */
/* Store val as value v at c (v's own shape, which equals c->t). */
void lw_store(Lower *L, KNode *block, const Coord *c, ValueId v, KNode *val);
/* The root's value val at c: apply the group's epilogue nodes and store every group output.
 * Returns 0, or -1 after a diagnostic. */
int lw_output(Lower *L, KNode *block, const Coord *c, KNode *val);
int lw_fail(Lower *L, const char *what);              /* diagnostic at the root; -1 */
/* The group's statistics (Group.stats): its moments node, or NULL.  A template that computes
 * them (the mean and rstd per batch and channel of the group's result, over every spatial
 * dim; with L->want_val, lw_output leaves the result's value in L->out_val) sets
 * L->stats_done; otherwise
 * lower.c lowers the node after the template, as loops of their own. */
const Node *lw_stats(Lower *L);
/* ---- the load prologue (docs/codegen.md) ----
 * 1 when the root's operand 0 has a load prologue (then lw_buf(L, root->in[0]) is NOT a
 * buffer: load from lw_prologue_src(L) instead and pass each in-bounds element through
 * lw_prologue) */
int lw_has_prologue(Lower *L);
ValueId lw_prologue_src(Lower *L);     /* the materialised tensor X the chain starts from */
/* the chain applied to val = X[n, c, ...] (f32); nidx, cidx: i64 batch and channel index
 * expressions; emits lets into block; per-(n,c) operand loads are hoistable */
KNode *lw_prologue(Lower *L, KNode *block, KNode *nidx, KNode *cidx, KNode *val);
/* Load the chain's per-(n, c) operands once, into lets in block (e.g. the body of an input
 * channel loop, outside the tap loops); lw_prologue calls nested in block then reuse them
 * (their nidx, cidx are ignored for the operands) until lw_prologue_unhoist.  A leading
 * affine part of the chain (sub, then add/sub/mul/div by per-channel values, as a normalize
 * is) is folded there into (x - c) * s + t: two operations per element. */
void lw_prologue_hoist(Lower *L, KNode *block, KNode *nidx, KNode *cidx);
void lw_prologue_unhoist(Lower *L);
/* One channel's hoisted operands, kept while another's are hoisted: keep takes the current
 * hoist into h, use makes h's current again (a thread staging several channels at once) */
typedef struct {
	KNode **ops, *c, *s, *t;
	uint32_t naff;
} LwHoist;
void lw_prologue_keep(const Lower *L, LwHoist *h);
void lw_prologue_use(Lower *L, const LwHoist *h);
/* A kernel-private scratch buffer of numel elements (docs/codegen.md): slot-0 bytes after
 * the planned arena, valid only while this kernel runs; returns its buffer index. */
int lw_scratch(Lower *L, int dtype, int64_t numel, const char *name);
const Type *lw_type(Lower *L, ValueId v);
/* true if the output buffers of the group may overlap a buffer it reads (then templates that
 * accumulate in the output buffer fall back to register accumulators) */
int lw_out_aliases_input(Lower *L);
/* Offset of output batch element idx[0..y->rank-2) of a matmul-like root y into operand vt
 * (rank >= 2), with numpy broadcasting of the batch dims. */
KNode *lw_batch_off(Lower *L, KNode *const *idx, const Type *y, const Type *vt);

/* The shape and attributes of a conv3d / conv_transpose3d root (NCDHW), read once. */
typedef struct {
	int64_t N, Ci, D, H, W; /* input */
	int64_t Co, OD, OH, OW; /* output */
	int64_t k[3], s[3], p[3], dl[3], op[3];
	int64_t groups, cig, cog; /* channels per group, in and out */
	ValueId x, w, b, out;
} Conv;
void lw_conv_shape(Lower *L, Conv *cv);

/* ---- templates: each lowers L->root (and calls lw_output); 0 or -1 + diagnostic ---- */
KNode *cg_elt_expr(Lower *L, KNode *block, const Node *n, KNode **x);  /* NULL: unsupported */
int tmpl_eltwise(Lower *L);
int tmpl_inj(Lower *L);
int tmpl_reduce(Lower *L);
int tmpl_conv(Lower *L);
/* tmpl_conv_wino.c: conv3d 3^3 by Winograd F(2x2x2, 3x3x3) on the CPU; 0 done, -1 after a
 * diagnostic, 1 not applicable (the direct forms lower the root) */
int tmpl_conv_wino(Lower *L, const Conv *cv, ValueId accv);
/* its transforms, shared with tmpl_conv_cl_wino.c: one 1-D transform of in[] into out[]
 * (let-bound in blk; returns the outputs' count), and one over the axes of an n^3 cube (or,
 * with plane, the (h, w) axes of an n x n square), v[] in place */
enum { WINO_BT, WINO_G, WINO_AT }; /* B^T (input), G (weights), A^T (output) */
int lw_wino_1d(Lower *L, KNode *blk, int kind, KNode **in, KNode **out);
void lw_wino_apply(Lower *L, KNode *blk, int kind, KNode **v, int64_t n, int plane);
/* tmpl_conv_cl_wino.c: conv3d_ndhwc 3^3 by Winograd F(2x2x2, 3x3x3) on the CPU; 0 done, -1
 * after a diagnostic, 1 not applicable (tmpl_conv_ndhwc's direct form lowers the root) */
int tmpl_conv_cl_wino(Lower *L);
int tmpl_conv_ndhwc(Lower *L); /* tmpl_conv_cl.c: conv3d_ndhwc (channels last) */
int tmpl_conv_transpose(Lower *L);
int tmpl_matmul(Lower *L);
int tmpl_pool(Lower *L);
int tmpl_resize(Lower *L);
int tmpl_scan(Lower *L), tmpl_conv1d(Lower *L);               /* tmpl_scan.c */
int tmpl_token_prune(Lower *L), tmpl_token_unpool(Lower *L);   /* tmpl_scan.c */
/* the scan's activations in the CPU engine's exact formulas, for both scan templates
 * (tmpl_scan.c): x / (1 + exp(-x)); softplus with threshold 20 */
KNode *scan_silu(Lower *L, KNode *block, KNode *x);
KNode *scan_softplus20(Lower *L, KNode *block, KNode *x);
int tmpl_select_by_index(Lower *L);                   /* tmpl_m4fuse.c */
int tmpl_velox_rel_bias(Lower *L);                    /* tmpl_velox.c */
int tmpl_pad_tokens(Lower *L);                        /* tmpl_home.c */

/* ---- GPU forms (L->p->gpu != 0): 0 done, -1 after a diagnostic, 1 no GPU form for this
 * root (the generic template above lowers it) ---- */
int tmpl_gpu(Lower *L);                               /* tmpl_gpu.c: the dispatcher */
int tmpl_gpu_conv(Lower *L);      /* tmpl_gpu_conv.c: conv3d, conv_transpose3d, matmul, pool */
int tmpl_gpu_mma(Lower *L);       /* tmpl_gpu_mma.c: tensor-core implicit GEMM */
int tmpl_gpu_halo(Lower *L);      /* tmpl_gpu_halo.c: halo-tile tensor-core conv3d */
int tmpl_gpu_reduce(Lower *L);    /* tmpl_gpu_reduce.c: reductions, moments */
/* A top-level block loop: moments node mom's outputs (lw_store; mom need not be the root) from
 * G >= 32 partials per output (batch, channel) of per elements each: their means in s0, M2 in
 * s1, at [output][G] (Chan's merge; the template's statistics, Group.stats) */
int tmpl_gpu_moments_merge(Lower *L, const Node *mom, int s0, int s1, int64_t G, int64_t per);
/* Conv statistics (Group.stats) from a GPU conv's output tiles (tmpl_gpu_reduce.c), where
 * each tile lies in one batch element and has `rows` valid voxels, G >= 32 tiles per batch
 * element. */
typedef struct {
	const Node *mom; /* lw_stats(L) */
	int64_t G;       /* tiles per batch element */
	int64_t rows;    /* voxels per tile */
	int64_t N;       /* output channels */
	int64_t cpg;     /* channels per output of mom: 1, or a group norm's C / G */
	int s0, s1;      /* scratch [batch][channel][G]: the tiles' means, M2 */
} TileStats;
/* fills ts (its scratch for `batch` elements) and sets L->want_val */
void tmpl_tile_stats_setup(Lower *L, TileStats *ts, int64_t G, int64_t rows, int64_t N,
                           int64_t batch);
/* threads per column of tmpl_tile_stats: the largest power of two <= 32 with tpc * cols <=
 * nt and rows % tpc == 0; 0 where cols > nt (no statistics) */
int64_t tmpl_tile_stats_tpc(int64_t nt, int64_t cols, int64_t rows);
/* In block, every thread (th < nt): a barrier, then the statistics of one tile (index tile,
 * over all batch elements) whose cols columns, channels c0.., lie in the shared f32 array cs
 * (voxel r, column c at r + c*ldc; the epilogue stores L->out_val there): tpc threads per
 * column (tmpl_tile_stats_tpc), the tile's mean and M2 per channel < N to s0, s1. */
void tmpl_tile_stats(Lower *L, const TileStats *ts, KNode *block, KNode *th, int64_t nt,
                     int64_t cols, KNode *tile, KNode *c0, int cs, int64_t ldc);
/* the last loop: the partials merged into mom's outputs; sets L->stats_done */
int tmpl_tile_stats_merge(Lower *L, const TileStats *ts);
int tmpl_gpu_scan(Lower *L);      /* tmpl_gpu_scan.c: selective scan, causal conv1d */

/* tmpl_gpu_mma_row.c: the row gather of tmpl_gpu_mma's tap-major convs (its header comment).
 * The caller sets cv; mma_row_fits fills the K step and the jobs (0: the form does not
 * apply); mma_row_prep the thread's per-tile terms (once per tile, after m0); mma_row_load a
 * K step's windows into registers (returning the step's first group, an i32 let),
 * mma_row_store them into the A tile half at ao. */
enum { MMA_ROW_JOBS = 4 };
typedef struct {
	Conv cv;
	int xb, as;                   /* x's KBuf, the shared A tile */
	int64_t G, bk, CQ, ngroups;   /* (r, cq) groups a K step, the K step, Ci / gc, groups */
	int64_t bm, nt, bn, jobs, lda; /* the tile; windows per thread and step */
	int64_t sw, pw, qw;           /* stride along W; the window's left and right edges */
	int64_t gc, KP, vn, act;      /* channels and k a group; x's elements a vector load;
	                               * act: the threads with a window (0: all) */
	int64_t tv;                   /* the tile's elements a 16-byte store: 8 bf16, 4 f32 */
	KNode *tg, *actv;             /* the thread's group offset in a job (or NULL); th < act */
	KNode *mok, *p0, *p1, *xrb, *lok, *rok, *sto; /* mma_row_prep's lets */
	int win[MMA_ROW_JOBS];        /* each job's pw + 8*sw + qw consecutive variables */
	int frag;                     /* the register-fragment form (mma_frag_*) */
	int k8;                       /* frag at tf32: m16n8k8 (k 8 a group; jobs t + {0, 4}) */
	int64_t rows;                 /* frag: units ((kd, kh) row, gc channels) a group, kf / gc;
	                               * the row form: 1 */
	KNode *lane;                  /* frag: the thread's lane */
} MmaRow;
int mma_row_fits(Lower *L, MmaRow *r, int64_t bm, int64_t nt, int64_t bn);
/* the first loop: wt[n, k] = w in the form's K order (k = group*KP + tap*gc + c), 0 in a
 * group's padding; N rows */
void mma_row_wt(Lower *L, const MmaRow *r, int wt, int wb, int64_t N);
void mma_row_prep(Lower *L, MmaRow *r, KNode *block, KNode *th, KNode *m0, int64_t M,
                  int64_t lda, int as, int64_t atile);
KNode *mma_row_load(Lower *L, const MmaRow *r, KNode *block, KNode *kbase);
void mma_row_store(Lower *L, const MmaRow *r, KNode *block, KNode *ao);
/* The register-fragment form of the row gather (bf16 and tf32, the default;
 * tmpl_gpu_mma_row.c): fits sets 256 x bn tiles of 128 threads (warps of 64 x bn, 4 x bn/16
 * accumulators, K step one group); wt (bf16; tf32: f32) in fragment order, NJ 16-column tiles;
 * prep the lane's octet and channels; step one group's windows, B fragments and K_mmar of the
 * block's 16-column tiles j0.. */
int mma_frag_fits(Lower *L, MmaRow *r, int64_t N);
void mma_frag_wt(Lower *L, const MmaRow *r, int wt, int wb, int64_t N, int64_t NJ);
void mma_frag_prep(Lower *L, MmaRow *r, KNode *block, KNode *th, KNode *m0, int64_t M);
void mma_frag_step(Lower *L, const MmaRow *r, KNode *block, KNode *kbase, KNode *j0, int64_t NJ,
                   int wt);

#endif
