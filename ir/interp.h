/* ir/interp.h -- internal to the reference interpreter: its state, helpers, and one kernel per op.
 *
 * ir/interp.c holds the core ops and the dispatch table generated from ops.def; the kernels of
 * op families added later live in ir/interp_<family>.c and use the helpers declared here. */
#ifndef SEGC_INTERP_H
#define SEGC_INTERP_H
#include "ir.h"

typedef struct {
	const void *data;       /* the value's elements (row-major) */
	void *owned;            /* malloc'd by us (== data), or NULL: caller's input or weight */
} Buf;

typedef struct {
	const Module *m;
	const void *const *inputs;
	IrWeightFn weight;
	void *ctx;
	Diag *d;
	Buf *buf;               /* one per value */
} Interp;

typedef int (*InterpFn)(Interp *, const Node *);

/* one kernel per op: interp_<name>(), 0 or -1 after a diagnostic */
#define OP(name, operands, nout, cls, attrs, shape, cost) int interp_##name(Interp *, const Node *);
#include "ops.def"

const Type *ip_type(const Interp *ip, ValueId v);
const float *ip_in(const Interp *ip, const Node *n, int k);   /* data of operand k */
void *ip_result(Interp *ip, const Node *n, int k);            /* zeroed result k; NULL + diag */
int ip_fail(Interp *ip, const Node *n, const char *what);      /* diag, returns -1 */
int ip_need_f32(Interp *ip, const Node *n);                    /* every operand/result f32 */
int ip_has3(const Attr *a);                                    /* a well-formed iN with N >= 3 */
int ip_normaxis(int64_t ax, int rank);                         /* negative axes from the end */

#endif
