/* codegen/prepack.c -- move the weight-only loops of the kernels to load time.
 *
 * Many templates re-lay a weight out before using it: the direct conv's packed panels
 * (wpack), the Winograd transform of the filters (wino_u, clw_u), the matmul's packed B, the
 * GPU conv's tap-major copy (wt, wT).  Each is a top-level loop that reads only weights and
 * writes a kernel-private scratch buffer, so its result is the same on every run.  With
 * Program.prepack set, cg_prepack moves every such loop out of its kernel into a prepack
 * kernel that the runtime runs once per load_weights (segc_gen_prepack on the CPU, the
 * schedule's "pack" launches on CUDA), and gives the scratch buffers it writes a home in the
 * packed slot: persistent memory after the weights, p->packed_bytes in all (the manifest's
 * `packed` record).  A loop qualifies when
 *   - it is a parallel or serial top-level loop (not a block-mapped CUDA loop),
 *   - every buffer it loads from is a weight, a buffer packed before it, or a scratch buffer
 *     it writes itself,
 *   - every buffer it stores to is kernel-private scratch that no other loop of the kernel
 *     stores to,
 *   - with PREPACK_LEAN (--prepack=lean), it writes no more bytes than the weights it reads
 *     (so the Winograd filter transforms, 64/27 of their weights, stay in the run).
 * Loops are visited in order, so a loop that reads what an earlier hoisted loop packed (a
 * transpose, then a conversion) moves too.  A kernel's remaining scratch buffers are laid
 * out again from the scratch base, in their old order, so the arena's scratch shrinks to
 * what the run still needs.  The prepack kernels are appended after the run kernels
 * (Program.npack of them, in the order of their kernels), each holding only the buffers its
 * loops use, and a kernel that lost loops drops the buffers only they used; a loop's code is
 * not changed (but for its buffer indices), only which kernel holds it.  A weight that only
 * prepack kernels read is listed in the last of them (Kernel.release): the CPU runtime gives
 * its pages back after that kernel, so the packed copy replaces the original instead of
 * doubling it (segc_rt_release, runtime/rt_gen.h). */
#include "cg.h"

#include <string.h>

typedef struct {
	uint8_t *rd, *wr; /* per buffer of the kernel: loaded, stored */
	int bad;          /* block-mapped statements (MMA, cp.async) */
} Use;

static void
use_buf(KNode *n, int32_t *buf, int store, void *ctx)
{
	Use *u = ctx;
	if (n->kind != K_load && n->kind != K_store)
		u->bad = 1;
	(store ? u->wr : u->rd)[*buf] = 1;
}

static Use
use_alloc(Program *p, const Kernel *k)
{
	return (Use){arena_zalloc(p->arena, k->nbufs + 1), arena_zalloc(p->arena, k->nbufs + 1),
	             0};
}

/* u = the buffers n loads and stores */
static void
uses(KNode *n, const Kernel *k, Use *u)
{
	memset(u->rd, 0, k->nbufs);
	memset(u->wr, 0, k->nbufs);
	u->bad = 0;
	kir_each_buf(n, use_buf, u);
}

/* Buffer renumbering: a node reachable twice (an expression that two statements share) is
 * renumbered once, so each buffer field's address goes into a set as it is rewritten */
typedef struct {
	const int *map;
	int32_t **seen; /* open addressing, cap a power of two >= 2 x the fields */
	uint32_t cap, n;
} Renum;

static void
count_buf(KNode *n, int32_t *buf, int store, void *ctx)
{
	(void)n, (void)buf, (void)store;
	((Renum *)ctx)->n++;
}

static void
renumber_buf(KNode *n, int32_t *buf, int store, void *ctx)
{
	Renum *r = ctx;
	uint32_t h = (uint32_t)(((uintptr_t)buf >> 2) * 2654435761u) & (r->cap - 1);
	(void)n, (void)store;
	while (r->seen[h] && r->seen[h] != buf)
		h = (h + 1) & (r->cap - 1);
	if (r->seen[h])
		return;
	r->seen[h] = buf;
	*buf = r->map[*buf];
}

static void
renumber(Program *p, KNode *root, const int *map)
{
	Renum r = {map, NULL, 1, 0};
	kir_each_buf(root, count_buf, &r);
	while (r.cap < 2 * r.n + 2)
		r.cap *= 2;
	r.seen = arena_zalloc(p->arena, r.cap * sizeof *r.seen);
	kir_each_buf(root, renumber_buf, &r);
}

static int
is_scratch(const KBuf *b)
{
	return b->value == 0 && b->slot == 0 && !b->shared;
}

static int64_t
buf_bytes(const KBuf *b)
{
	return (b->numel * (int64_t)dtype_size(b->dtype) + 63) & ~(int64_t)63;
}

/* 1 if top-level loop i of k may run at load time (the rules above); nwr: per buffer, how many
 * of k's top-level loops store to it */
static int
hoistable(const Program *p, const Kernel *k, uint32_t i, uint32_t wfirst, Use *u,
          const uint32_t *nwr)
{
	KNode *n = k->body->kids[i];
	if (n->ann != LOOP_PARALLEL && n->ann != LOOP_SERIAL)
		return 0;
	uses(n, k, u);
	if (u->bad)
		return 0;
	int any = 0;
	int64_t in = 0, out = 0;
	for (uint32_t b = 0; b < k->nbufs; b++) {
		const KBuf *kb = &k->bufs[b];
		if (u->wr[b]) {
			if (!is_scratch(kb) || nwr[b] > 1)
				return 0;
			any = 1;
			out += buf_bytes(kb);
		} else if (u->rd[b] && !(kb->slot >= wfirst && kb->slot < p->nslots) &&
		           kb->slot != p->packslot) {
			return 0;
		} else if (u->rd[b]) {
			in += buf_bytes(kb);
		}
	}
	if (p->prepack == PREPACK_LEAN && out > in)
		return 0;
	return any;
}

/* the prepack kernel of k: its hoisted loops (in order) and only the buffers they use */
static void
add_pack(Program *p, uint32_t ki, KNode **loops, uint32_t n)
{
	Kernel *k = &p->kernels[ki];
	Use u = use_alloc(p, k);
	int *map = arena_zalloc(p->arena, (k->nbufs + 1) * sizeof *map);
	for (uint32_t i = 0; i < n; i++)
		kir_each_buf(loops[i], use_buf, &u);
	Kernel *pk = kir_kernel(p, arena_printf(p->arena, "%s_pack", k->name), k->loc);
	k = &p->kernels[ki]; /* kir_kernel may have moved the array */
	pk->group = k->group;
	pk->vartypes = k->vartypes;
	pk->varnames = k->varnames;
	pk->nvars = pk->capvars = k->nvars;
	for (uint32_t b = 0; b < k->nbufs; b++) {
		if (!u.rd[b] && !u.wr[b])
			continue;
		KBuf *nb = ARENA_PUSH(p->arena, pk->bufs, pk->nbufs, pk->capbufs);
		*nb = k->bufs[b];
		nb->written = u.wr[b];
		map[b] = (int)pk->nbufs - 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		renumber(p, loops[i], map);
		kir_append(p, pk->body, loops[i]);
	}
}

/* drop the buffers of k that its loops no longer use (the weights only its hoisted loops
 * read): no dead kernel parameters or table entries.  Shared tiles stay (KBuf.over refers to
 * them by index). */
static void
drop_unused(Program *p, Kernel *k)
{
	Use u = use_alloc(p, k);
	int *map = arena_zalloc(p->arena, (k->nbufs + 1) * sizeof *map);
	uint32_t nb = 0;
	kir_each_buf(k->body, use_buf, &u);
	for (uint32_t b = 0; b < k->nbufs; b++) {
		map[b] = -1;
		if (u.rd[b] || u.wr[b] || k->bufs[b].shared) {
			map[b] = (int)nb;
			k->bufs[nb++] = k->bufs[b];
		}
	}
	for (uint32_t b = 0; b < nb; b++)
		if (k->bufs[b].over)
			k->bufs[b].over = 1 + map[k->bufs[b].over - 1];
	k->nbufs = nb;
	renumber(p, k->body, map);
}

/* lay k's scratch buffers out again from base, in their order; the bytes they need */
static int64_t
compact_scratch(Kernel *k, int64_t base)
{
	int64_t at = base;
	for (;;) {
		int next = -1;
		for (uint32_t b = 0; b < k->nbufs; b++)
			if (is_scratch(&k->bufs[b]) && k->bufs[b].offset >= at &&
			    (next < 0 || k->bufs[b].offset < k->bufs[next].offset))
				next = (int)b;
		if (next < 0)
			return at - base;
		k->bufs[next].offset = at;
		at += buf_bytes(&k->bufs[next]);
	}
}

/* for every prepack kernel, the weights it reads that no later kernel (prepack or run) reads:
 * the runtime may release their memory after it (segc_rt_release) */
static void
mark_releases(Program *p, uint32_t wfirst)
{
	uint32_t nrun = p->nkernels - p->npack, nw = p->nslots - wfirst;
	uint8_t *later = arena_zalloc(p->arena, nw + 1); /* weight read by a kernel after */
	for (uint32_t ki = 0; ki < p->nkernels; ki++) {
		const Kernel *k = &p->kernels[ki];
		if (ki >= nrun)
			continue;
		Use u = use_alloc(p, k);
		kir_each_buf(k->body, use_buf, &u);
		for (uint32_t b = 0; b < k->nbufs; b++)
			if (u.rd[b] && k->bufs[b].slot >= wfirst && k->bufs[b].slot < p->nslots)
				later[k->bufs[b].slot - wfirst] = 1;
	}
	for (uint32_t ki = p->nkernels; ki-- > nrun;) {
		Kernel *k = &p->kernels[ki];
		int32_t *rel = arena_zalloc(p->arena, (k->nbufs + 1) * sizeof *rel);
		for (uint32_t b = 0; b < k->nbufs; b++) {
			uint32_t s = k->bufs[b].slot;
			if (s < wfirst || s >= p->nslots || k->bufs[b].written)
				continue;
			if (!later[s - wfirst])
				rel[k->nrelease++] = (int32_t)b;
			later[s - wfirst] = 1;
		}
		k->release = rel;
	}
}

void
cg_prepack(Program *p, const Module *m)
{
	uint32_t wfirst = 1 + m->ninputs + m->noutputs, nrun = p->nkernels;
	int64_t base = (m->arena_bytes + 63) & ~(int64_t)63, scratch = 0;

	p->packslot = p->nslots;
	p->npack = 0;
	p->packed_bytes = 0;
	if (!p->prepack)
		return;
	for (uint32_t ki = 0; ki < nrun; ki++) {
		Kernel *k = &p->kernels[ki];
		Use u = use_alloc(p, k);
		uint32_t *nwr = arena_zalloc(p->arena, (k->nbufs + 1) * sizeof *nwr);
		KNode **hoisted = arena_zalloc(p->arena, (k->body->nkids + 1) * sizeof *hoisted);
		uint32_t nh = 0, keep = 0;
		for (uint32_t i = 0; i < k->body->nkids; i++) {
			uses(k->body->kids[i], k, &u);
			for (uint32_t b = 0; b < k->nbufs; b++)
				nwr[b] += u.wr[b];
		}
		for (uint32_t i = 0; i < k->body->nkids; i++) {
			if (!hoistable(p, k, i, wfirst, &u, nwr))
				continue;
			for (uint32_t b = 0; b < k->nbufs; b++)
				if (u.wr[b]) {
					k->bufs[b].slot = p->packslot;
					k->bufs[b].offset = p->packed_bytes;
					p->packed_bytes += buf_bytes(&k->bufs[b]);
				}
			hoisted[nh++] = k->body->kids[i];
			k->body->kids[i] = NULL;
		}
		for (uint32_t i = 0; i < k->body->nkids; i++)
			if (k->body->kids[i])
				k->body->kids[keep++] = k->body->kids[i];
		k->body->nkids = keep;
		/* a packed buffer is only read by the loops that stayed */
		for (uint32_t b = 0; nh && b < k->nbufs; b++)
			if (k->bufs[b].slot == p->packslot)
				k->bufs[b].written = 0;
		int64_t need = compact_scratch(k, base);
		scratch = need > scratch ? need : scratch;
		if (nh) {
			add_pack(p, ki, hoisted, nh);
			p->npack++;
			drop_unused(p, &p->kernels[ki]);
		}
	}
	p->scratch_bytes = scratch;
	mark_releases(p, wfirst);
}
