/* passes/layout.h -- the physical forms of passes/layout.c (its rules) and passes/layout_hold.c
 * (holds, conversions).  Internal to those two files. */
#ifndef SEGC_LAYOUT_H
#define SEGC_LAYOUT_H
#include "pass.h"

typedef struct {
	int8_t r;             /* rank; 0 for scalars */
	int8_t p[IR_MAXRANK]; /* physical dim i is logical dim p[i] */
} Hold;

typedef struct {
	ValueId phys; /* P(v); 0: v itself, identity */
	Hold h;
	ValueId ident; /* v materialised in its own layout (0: not yet) */
	ValueId cl;    /* v brought to the channels-last hold (0: not yet) */
} Held;

typedef struct {
	Module *m;
	PassCtx *cx;
	Held *hv; /* per value; grows with m->nvalues */
	uint32_t nhv;
	NodeId at;   /* the node being rewritten: new nodes take its name and Loc */
	int target;  /* 1: --layout=ndhwc (convs channels-last); 0: ncdhw */
} Lw;

extern const Hold lay_cl5; /* channels-last at rank 5: [0, 2, 3, 4, 1] */

int lay_hold_id(const Hold *h);
int lay_hold_eq(const Hold *a, const Hold *b);
Hold lay_hold_ident(int r);
Held *lay_held(Lw *w, ValueId v);   /* v's entry (identity until set) */
ValueId lay_phys(Lw *w, ValueId v); /* P(v) */
const Type *lay_ty(Lw *w, ValueId v);
/* a new node op(in) named and located like the node being rewritten */
ValueId lay_emit(Lw *w, int op, const ValueId *in, int nin, const Attr *a);
ValueId lay_reshape(Lw *w, ValueId x, const int64_t *dims, int r); /* x itself if same */
ValueId lay_convert(Lw *w, ValueId v, const Hold *to);             /* v's elements in hold `to` */
ValueId lay_ident(Lw *w, ValueId v);                /* v in its own layout, materialised once */
ValueId lay_adapt(Lw *w, ValueId v, const Hold *h); /* an elementwise operand, in hold h */
void lay_set_held(Lw *w, ValueId v, ValueId pv, const Hold *h);
int lay_is_target(const Lw *w, const Hold *h);
int lay_pick_hold(Lw *w, const Node *n, int r, Hold *h);
int lay_pos_of(const Hold *h, int64_t d);

#endif
