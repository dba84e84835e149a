/* tests/unit/test_passes.c -- the passes on small modules built with ir/builder.c.
 *
 * Checks what the golden IR files cannot show at a glance: group counts and membership,
 * storage classes and slots, that no two arena values live at the same time share bytes
 * (a checker that recomputes liveness from m->groups on its own), in-place and liveness
 * reuse, arena_bytes <= naive_bytes.  Exits 1 on the first failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "pass.h"

static int failures;

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			failures++; \
		} \
	} while (0)

static Diag diag;
static const Type untyped = { DT_F32, -1, { 0 } };

static Type
f32(int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4)
{
	int64_t d[5] = { d0, d1, d2, d3, d4 };
	return type_make(DT_F32, rank, d);
}

static Attr *
attrs(int op)
{
	static Attr a[16];
	ir_attrs_default(op, a);
	return a;
}

static void
set_i(Attr *a, int op, const char *key, int64_t v)
{
	int i = op_attr_index(op, key);
	a[i].i = v;
	a[i].present = 1;
}

static void
set_f(Attr *a, int op, const char *key, double v)
{
	int i = op_attr_index(op, key);
	a[i].f = v;
	a[i].present = 1;
}

static void
set_ints(Attr *a, int op, const char *key, int n, const int64_t *v)
{
	static int64_t store[16][8];
	static int next;
	int i = op_attr_index(op, key);
	int64_t *s = store[next++ % 16];
	memcpy(s, v, (size_t)n * sizeof *v);
	a[i].ints = s;
	a[i].n = (uint16_t)n;
	a[i].present = 1;
}

static ValueId
node(Module *m, int op, ValueId a, ValueId b, ValueId c, const Attr *at)
{
	ValueId in[3] = { a, b, c };
	int64_t id = ir_add_node(m, op, in, optab[op].noperands, at, NULL, loc_none, &diag);
	if (id < 0) {
		fprintf(stderr, "building %s failed: %s\n", optab[op].name, diag.first);
		exit(1);
	}
	return m->nodes[id].out[0];
}

static ValueId
weight(Module *m, const char *name)
{
	return ir_add_weight(m, name, untyped, loc_none);
}

static ValueId
conv(Module *m, ValueId x, int cout, const char *name)
{
	char wn[64];
	Attr *a = attrs(OP_conv3d);
	int64_t k[3] = { 3, 3, 3 }, p[3] = { 1, 1, 1 };
	set_i(a, OP_conv3d, "cout", cout);
	set_ints(a, OP_conv3d, "kernel", 3, k);
	set_ints(a, OP_conv3d, "pad", 3, p);
	set_i(a, OP_conv3d, "bias", 0);
	snprintf(wn, sizeof wn, "%s.weight", name);
	return node(m, OP_conv3d, x, weight(m, wn), 0, a);
}

static ValueId
scalar(Module *m, double v)
{
	Attr *a = attrs(OP_constant);
	set_f(a, OP_constant, "value", v);
	return node(m, OP_constant, 0, 0, 0, a);
}

static void
run_opts(Module *m, int no_fuse, int gpu)
{
	PassOptions o = { 0 };
	o.verify_each = 1;
	o.no_fuse = no_fuse;
	o.gpu = o.stats = o.act_bf16 = gpu; /* what tools/segc.c sets for cuda bf16 */
	o.dump_after = getenv("TEST_PASSES_DUMP");     /* e.g. =all, to see what happened */
	if (pass_run_pipeline(m, &o, &diag) < 0) {
		fprintf(stderr, "pipeline failed: %s\n", diag.first);
		exit(1);
	}
}

static void
run(Module *m, int no_fuse)
{
	run_opts(m, no_fuse, 0);
}

static int
count_op(const Module *m, int op)
{
	int k = 0;
	for (uint32_t i = 0; i < m->nnodes; i++)
		k += !m->nodes[i].dead && m->nodes[i].op == op;
	return k;
}

static const Group *
group_of(const Module *m, ValueId v)
{
	for (uint32_t g = 0; g < m->ngroups; g++)
		for (uint32_t k = 0; k < m->groups[g].nnodes; k++)
			if (m->groups[g].nodes[k] == m->values[v].def)
				return &m->groups[g];
	return NULL;
}

/* x lies inside the bytes of c, a concat that is x's last reader and reads x as the chunk
 * at x's offset within c (memplan places such inputs in the concat's buffer) */
static int
concat_chunk(const Module *m, ValueId x, ValueId c, int64_t xlast, int64_t cfirst)
{
	const Node *n = ir_def(m, c);
	const Value *a = &m->values[x], *b = &m->values[c];
	int64_t off = 0;

	if (n->op != OP_concat || xlast != cfirst)
		return 0;
	for (int j = 0; j < n->nin; off += value_bytes(&m->values[n->in[j]]), j++) {
		ValueId u = n->in[j];
		while (u && m->values[u].storage == ST_VIEW)
			u = m->values[u].alias;
		if (u == x)
			return a->offset == b->offset + off;
	}
	return 0;
}

/* The memory plan checker: recompute [first, last] group of every arena value from the
 * groups alone; two values live at once must not share bytes, except an in-place pair
 * (the donor's last group produces the other, at the same offset and size). */
static void
check_plan(const Module *m)
{
	int64_t *first = calloc(m->nvalues, sizeof *first), *last = calloc(m->nvalues, sizeof *last);
	ValueId v, u;

	for (v = 0; v < m->nvalues; v++)
		first[v] = last[v] = -1;
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		for (uint32_t k = 0; k < gr->nouts; k++)
			first[gr->outs[k]] = last[gr->outs[k]] = g;
		for (uint32_t k = 0; k < gr->nnodes; k++) {
			const Node *n = &m->nodes[gr->nodes[k]];
			for (int j = 0; j < n->nin; j++) {
				u = n->in[j];
				while (u && m->values[u].storage == ST_VIEW)
					u = m->values[u].alias;
				if (u && m->values[u].storage == ST_ARENA)
					last[u] = g;
			}
		}
	}
	for (v = 1; v < m->nvalues; v++) {
		const Value *a = &m->values[v];
		if (a->storage != ST_ARENA)
			continue;
		CHECK(a->offset % 64 == 0);
		CHECK(a->offset + value_bytes(a) <= m->arena_bytes);
		CHECK(first[v] >= 0);
		for (u = v + 1; u < m->nvalues; u++) {
			const Value *b = &m->values[u];
			if (b->storage != ST_ARENA)
				continue;
			int overlap_t = first[v] <= last[u] && first[u] <= last[v];
			int overlap_b = a->offset < b->offset + value_bytes(b) &&
			                b->offset < a->offset + value_bytes(a);
			int inplace = (a->offset == b->offset &&
			               (last[v] == first[u] || last[u] == first[v])) ||
			              concat_chunk(m, v, u, last[v], first[u]) ||
			              concat_chunk(m, u, v, last[u], first[v]);
			if (overlap_t && overlap_b && !inplace)
				fprintf(stderr, "values %u and %u share bytes while both live\n", v, u);
			CHECK(!(overlap_t && overlap_b && !inplace));
		}
	}
	CHECK(m->arena_bytes <= m->naive_bytes);
	free(first);
	free(last);
}

/* conv + instance_norm + relu + residual add: four kernels */
static void
test_conv_block(void)
{
	Module *m = ir_module_new("block");
	ValueId x = ir_add_input(m, "x", f32(5, 1, 4, 6, 6, 6), loc_none);
	Attr *a;
	ValueId c1 = conv(m, x, 8, "c1"), n, r, c2, y;

	a = attrs(OP_instance_norm);
	set_i(a, OP_instance_norm, "affine", 1);
	n = node(m, OP_instance_norm, c1, weight(m, "n.weight"), weight(m, "n.bias"), a);
	r = node(m, OP_relu, n, 0, 0, NULL);
	c2 = conv(m, r, 8, "c2");
	y = node(m, OP_add, c2, r, 0, NULL);
	ir_add_output(m, y, "y");
	run(m, 0);

	CHECK(count_op(m, OP_instance_norm) == 0);
	CHECK(count_op(m, OP_moments) == 1);
	/* k0 conv, k1 moments, k2 sub..relu, k3 conv + add */
	CHECK(m->ngroups == 4);
	CHECK(m->groups[0].nnodes == 1 && m->nodes[m->groups[0].root].op == OP_conv3d);
	CHECK(m->nodes[m->groups[1].root].op == OP_moments && m->groups[1].nouts == 2);
	CHECK(m->nodes[m->groups[2].root].op == OP_sub && m->groups[2].nnodes == 5);
	CHECK(m->nodes[m->groups[3].root].op == OP_conv3d && m->groups[3].nnodes == 2);
	CHECK(!strcmp(m->groups[3].name, "k3_conv3d"));
	CHECK(m->groups[0].vector == 8);

	y = m->outputs[0];
	CHECK(m->values[x].storage == ST_INPUT && m->values[x].slot == 1);
	CHECK(m->values[y].storage == ST_OUTPUT && m->values[y].slot == 2);
	for (uint32_t i = 0, j = 0; i < m->nnodes; i++) {
		const Node *nd = &m->nodes[i];
		const Value *v = &m->values[nd->out[0]];
		if (nd->op == OP_weight) {
			CHECK(v->storage == ST_WEIGHT && v->slot == 3 + j);
			j++;
		}
		if (nd->op == OP_reshape) {
			CHECK(v->storage == ST_VIEW);
			CHECK(m->values[v->alias].storage == ST_WEIGHT);
			CHECK(v->slot == m->values[v->alias].slot);
		}
	}
	/* the normalised values inside k2 are not materialised */
	for (uint32_t k = 0; k + 1 < m->groups[2].nnodes; k++)
		CHECK(m->values[m->nodes[m->groups[2].nodes[k]].out[0]].storage == ST_NONE);
	CHECK(m->values[m->groups[2].outs[0]].storage == ST_ARENA);
	check_plan(m);
	ir_module_free(m);
}

/* The GPU options (stats, act_bf16): conv -> instance norm (group norm) -> relu -> conv: the
 * norm's moments join the first conv's kernel (Group.stats), and the activations of 4096
 * elements are bf16 in the arena, the statistics f32 */
static void
test_conv_stats(void)
{
	for (int gn = 0; gn < 2; gn++) {
		Module *m = ir_module_new("stats");
		ValueId x = ir_add_input(m, "x", f32(5, 1, 4, 8, 8, 8), loc_none);
		ValueId c1 = conv(m, x, 8, "c1"), n, r, c2;
		Attr *a = attrs(gn ? OP_group_norm : OP_instance_norm);
		set_i(a, gn ? OP_group_norm : OP_instance_norm, "affine", 0);
		if (gn)
			set_i(a, OP_group_norm, "groups", 2);
		n = node(m, gn ? OP_group_norm : OP_instance_norm, c1, 0, 0, a);
		r = node(m, OP_relu, n, 0, 0, NULL);
		c2 = conv(m, r, 8, "c2");
		ir_add_output(m, c2, "y");
		run_opts(m, 0, 1);

		/* k0 conv + stats, k1 sub..relu, k2 conv (the group norm: two small mul kernels
		 * first, the group statistics per channel) */
		CHECK(m->ngroups == (gn ? 5u : 3u));
		const Group *g = &m->groups[0];
		CHECK(m->nodes[g->root].op == OP_conv3d && g->nouts == 3 && g->stats);
		CHECK(g->stats && m->nodes[g->stats].op == OP_moments);
		CHECK(g->nouts == 3 && g->outs[0] == c1);
		CHECK(g->stats && g->outs[1] == m->nodes[g->stats].out[0] &&
		      g->outs[2] == m->nodes[g->stats].out[1]);
		for (uint32_t k = 1; k < m->ngroups; k++) {
			CHECK(m->nodes[m->groups[k].root].op != OP_moments);
			if (m->nodes[m->groups[k].root].op == OP_sub) /* the normalized activation */
				CHECK(m->values[m->groups[k].outs[0]].bf16);
		}
		CHECK(m->values[c1].storage == ST_ARENA && m->values[c1].bf16);
		CHECK(value_bytes(&m->values[c1]) == 4096 * 2);
		CHECK(m->values[g->outs[1]].storage == ST_ARENA && !m->values[g->outs[1]].bf16);
		CHECK(m->values[x].storage == ST_INPUT && !m->values[x].bf16);
		check_plan(m);
		ir_module_free(m);
	}
}

/* conv -> sigmoid(y) * y -> conv: the gate kernel writes over y in place */
static void
test_inplace(void)
{
	Module *m = ir_module_new("inplace");
	ValueId x = ir_add_input(m, "x", f32(5, 1, 2, 4, 4, 4), loc_none);
	ValueId y = conv(m, x, 4, "a");
	ValueId s = node(m, OP_sigmoid, y, 0, 0, NULL);
	ValueId g = node(m, OP_mul, y, s, 0, NULL);
	ValueId z = conv(m, g, 4, "b");

	ir_add_output(m, z, "z");
	run(m, 0);
	CHECK(m->ngroups == 3);
	CHECK(group_of(m, s) == group_of(m, g) && group_of(m, s)->nnodes == 2);
	CHECK(m->values[y].storage == ST_ARENA && m->values[g].storage == ST_ARENA);
	CHECK(m->values[s].storage == ST_NONE);
	CHECK(m->values[g].offset == m->values[y].offset);
	CHECK(m->arena_bytes == 4 * 64 * 4);
	check_plan(m);
	ir_module_free(m);
}

/* a chain of four convs: the third reuses the first one's bytes */
static void
test_liveness(void)
{
	Module *m = ir_module_new("chain");
	ValueId x = ir_add_input(m, "x", f32(5, 1, 2, 4, 4, 4), loc_none);
	ValueId a1 = conv(m, x, 2, "c1"), a2 = conv(m, a1, 2, "c2");
	ValueId a3 = conv(m, a2, 2, "c3"), a4 = conv(m, a3, 2, "c4");

	ir_add_output(m, a4, "y");
	run(m, 0);
	CHECK(m->ngroups == 4);
	CHECK(m->values[a3].offset == m->values[a1].offset);
	CHECK(m->values[a2].offset != m->values[a1].offset);
	CHECK(m->arena_bytes == 2 * 512);
	CHECK(m->naive_bytes == 3 * 512);
	check_plan(m);
	ir_module_free(m);
}

/* fold, cse, dce; outputs that are inputs or repeats get identity copies */
static void
test_simplify(void)
{
	Module *m = ir_module_new("simplify");
	ValueId x = ir_add_input(m, "x", f32(2, 4, 8, 0, 0, 0), loc_none);
	ValueId k = node(m, OP_add, scalar(m, 2), scalar(m, 3), 0, NULL);   /* 5 */
	ValueId one = scalar(m, 1);
	ValueId r1 = node(m, OP_relu, x, 0, 0, NULL), r2 = node(m, OP_relu, x, 0, 0, NULL);
	ValueId p = node(m, OP_mul, node(m, OP_add, r1, r2, 0, NULL), one, 0, NULL);
	ValueId q = node(m, OP_mul, p, k, 0, NULL);

	node(m, OP_exp, x, 0, 0, NULL);                         /* dead */
	weight(m, "unused.weight");
	m->values[m->nvalues - 1].type = f32(1, 3, 0, 0, 0, 0);
	ir_add_output(m, q, "q");
	ir_add_output(m, q, "q2");
	ir_add_output(m, x, "x_again");
	run(m, 0);
	CHECK(count_op(m, OP_relu) == 1);
	CHECK(count_op(m, OP_exp) == 0);
	CHECK(count_op(m, OP_weight) == 1);
	CHECK(count_op(m, OP_identity) == 2);
	CHECK(count_op(m, OP_constant) == 1);
	for (uint32_t i = 0; i < m->nnodes; i++)
		if (m->nodes[i].op == OP_constant)
			CHECK(ir_attr_float(&m->nodes[i], "value") == 5);
	CHECK(count_op(m, OP_mul) == 1);
	CHECK(m->outputs[0] != m->outputs[1] && m->outputs[2] != x);
	for (uint32_t i = 0; i < 3; i++)
		CHECK(m->values[m->outputs[i]].storage == ST_OUTPUT &&
		      m->values[m->outputs[i]].slot == 2 + i);
	/* relu (read twice by add), add + mul, two copies */
	CHECK(m->ngroups == 4);
	check_plan(m);
	ir_module_free(m);
}

/* each composite op disappears; --no-fuse gives one kernel per computing node */
static void
test_canon_nofuse(void)
{
	Module *m = ir_module_new("canon");
	ValueId x = ir_add_input(m, "x", f32(5, 1, 4, 2, 2, 2), loc_none);
	Attr *a;
	ValueId y;
	int computing = 0;

	a = attrs(OP_group_norm);
	set_i(a, OP_group_norm, "groups", 2);
	y = node(m, OP_group_norm, x, weight(m, "g.weight"), weight(m, "g.bias"), a);
	a = attrs(OP_layer_norm);
	set_i(a, OP_layer_norm, "dims", 2);
	y = node(m, OP_layer_norm, y, weight(m, "l.weight"), weight(m, "l.bias"), a);
	y = node(m, OP_softmax, y, 0, 0, NULL);
	{
		ValueId in[6] = { y, weight(m, "b.weight"), weight(m, "b.bias"),
		                  weight(m, "b.running_mean"), weight(m, "b.running_var"),
		                  weight(m, "b.num_batches_tracked") };
		int64_t id = ir_add_node(m, OP_batch_norm, in, 6, NULL, "b", loc_none, &diag);
		CHECK(id >= 0);
		y = m->nodes[id].out[0];
	}
	ir_add_output(m, y, "y");
	run(m, 1);
	CHECK(count_op(m, OP_group_norm) + count_op(m, OP_layer_norm) + count_op(m, OP_softmax) +
	      count_op(m, OP_batch_norm) == 0);
	CHECK(count_op(m, OP_moments) == 2);
	CHECK(count_op(m, OP_weight) == 9);     /* num_batches_tracked stays */
	for (uint32_t i = 0; i < m->nnodes; i++)
		computing += optab[m->nodes[i].op].cls != FUSE_SRC && m->nodes[i].op != OP_reshape;
	CHECK((int)m->ngroups == computing);
	check_plan(m);
	ir_module_free(m);
}

int
main(void)
{
	if (op_init() < 0)
		return 1;
	diag_init(&diag, stderr);
	test_conv_block();
	test_conv_stats();
	test_inplace();
	test_liveness();
	test_simplify();
	test_canon_nofuse();
	if (failures) {
		fprintf(stderr, "test_passes: %d checks failed\n", failures);
		return 1;
	}
	printf("test_passes: ok\n");
	return 0;
}
