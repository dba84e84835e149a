/* ir/builder.c -- create modules, append nodes in topological order, edit uses.
 *
 * ir_add_node() runs the op's shape rule as the node is added, so that every shape error is
 * reported at the node (and graph location) that caused it. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

Module *
ir_module_new(const char *name)
{
	Arena *a = arena_new();
	Module *m = arena_zalloc(a, sizeof *m);
	m->arena = a;
	m->name = arena_strdup(a, name ? name : "graph");
	Value *v = ARENA_PUSH(a, m->values, m->nvalues, m->capvalues);   /* values[0]: null */
	memset(v, 0, sizeof *v);
	return m;
}

void
ir_module_free(Module *m)
{
	if (m)
		arena_free(m->arena);
}

ValueId
ir_new_value(Module *m, Type t)
{
	Value *v = ARENA_PUSH(m->arena, m->values, m->nvalues, m->capvalues);
	memset(v, 0, sizeof *v);
	v->type = t;
	return m->nvalues - 1;
}

void
ir_attrs_default(int op, Attr *attrs)
{
	const OpInfo *oi = &optab[op];
	for (int i = 0; i < oi->nattrs; i++) {
		if (oi->schema[i].has_default)
			attrs[i] = oi->schema[i].def;
		else {
			memset(&attrs[i], 0, sizeof attrs[i]);
			attrs[i].type = oi->schema[i].type;
		}
	}
}

static Attr *
copy_attrs(Module *m, int op, const Attr *src)
{
	const OpInfo *oi = &optab[op];
	Attr *a = arena_zalloc(m->arena, (oi->nattrs + 1) * sizeof *a);
	if (!src) {
		ir_attrs_default(op, a);
		src = a;
	}
	for (int i = 0; i < oi->nattrs; i++) {
		a[i] = src[i];
		a[i].type = oi->schema[i].type;
		if (src[i].s)
			a[i].s = arena_strdup(m->arena, src[i].s);
		/* one spare zeroed element, but read only the n the caller owns */
		if (src[i].ints) {
			a[i].ints = arena_zalloc(m->arena, (src[i].n + 1) * sizeof(int64_t));
			memcpy(a[i].ints, src[i].ints, src[i].n * sizeof(int64_t));
		}
		if (src[i].floats) {
			a[i].floats = arena_zalloc(m->arena, (src[i].n + 1) * sizeof(double));
			memcpy(a[i].floats, src[i].floats, src[i].n * sizeof(double));
		}
	}
	return a;
}

int64_t
ir_add_node(Module *m, int op, const ValueId *in, int nin, const Attr *attrs, const char *name,
            Loc loc, Diag *d)
{
	const OpInfo *oi = &optab[op];
	Node *n = ARENA_PUSH(m->arena, m->nodes, m->nnodes, m->capnodes);
	NodeId id = m->nnodes - 1;

	memset(n, 0, sizeof *n);
	n->op = (uint8_t)op;
	n->nin = (uint8_t)nin;
	n->nout = oi->nout;
	n->in = arena_zalloc(m->arena, (size_t)(nin + 1) * sizeof *in);   /* in: NULL if nin 0 */
	if (nin > 0)
		memcpy(n->in, in, (size_t)nin * sizeof *in);
	n->attrs = copy_attrs(m, op, attrs);
	n->name = arena_strdup(m->arena, name);
	n->loc = loc;
	n->out = arena_zalloc(m->arena, (size_t)(oi->nout + 1) * sizeof(ValueId));
	for (int i = 0; i < oi->nout; i++) {
		Type t = { .dtype = DT_F32, .rank = -1 };
		ValueId v = ir_new_value(m, t);
		n = &m->nodes[id];          /* values may have moved nothing, but keep it obvious */
		m->values[v].def = id;
		m->values[v].defidx = (uint8_t)i;
		n->out[i] = v;
	}
	if (oi->shape(m, &m->nodes[id], d) < 0) {
		m->nodes[id].dead = 1;
		return -1;
	}
	return id;
}

static ValueId
add_source(Module *m, int op, const char *name, Type t, Loc loc)
{
	Attr a[1];
	ir_attrs_default(op, a);
	a[0].present = 1;
	a[0].s = name;
	Diag quiet;
	diag_init(&quiet, NULL);
	int64_t id = ir_add_node(m, op, NULL, 0, a, NULL, loc, &quiet);
	SEGC_ASSERT(id >= 0);
	ValueId v = m->nodes[id].out[0];
	m->values[v].type = t;
	m->values[v].name = m->nodes[id].attrs[0].s;
	return v;
}

ValueId
ir_add_input(Module *m, const char *name, Type t, Loc loc)
{
	ValueId v = add_source(m, OP_input, name, t, loc);
	*ARENA_PUSH(m->arena, m->inputs, m->ninputs, m->capinputs) = v;
	return v;
}

ValueId
ir_add_weight(Module *m, const char *name, Type t, Loc loc)
{
	return add_source(m, OP_weight, name, t, loc);
}

void
ir_add_output(Module *m, ValueId v, const char *name)
{
	uint32_t cap = m->capoutputs, n = m->noutputs;
	*ARENA_PUSH(m->arena, m->outputs, m->noutputs, m->capoutputs) = v;
	m->output_names = arena_grow(m->arena, m->output_names, sizeof *m->output_names, n, &cap);
	m->output_names[n] = arena_strdup(m->arena, name);
}

void
ir_add_param(Module *m, const char *name, const char *value)
{
	ParamVal *p = ARENA_PUSH(m->arena, m->params, m->nparams, m->capparams);
	p->name = arena_strdup(m->arena, name);
	p->value = arena_strdup(m->arena, value);
}

Node *
ir_def(const Module *m, ValueId v)
{
	return &m->nodes[m->values[v].def];
}

void
ir_count_uses(Module *m)
{
	for (uint32_t v = 0; v < m->nvalues; v++)
		m->values[v].nuses = 0;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->nin; j++)
			if (n->in[j])
				m->values[n->in[j]].nuses++;
	}
	for (uint32_t i = 0; i < m->noutputs; i++)
		m->values[m->outputs[i]].nuses++;
}

int
ir_sweep(Module *m, int *changed)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < m->nnodes; i++) {
		if (m->nodes[i].dead) {
			if (changed)
				*changed = 1;
			continue;
		}
		m->nodes[k] = m->nodes[i];
		for (int j = 0; j < m->nodes[k].nout; j++)
			m->values[m->nodes[k].out[j]].def = k;
		k++;
	}
	m->nnodes = k;
	return 0;
}

void
ir_replace_uses(Module *m, ValueId old, ValueId new_)
{
	for (uint32_t i = 0; i < m->nnodes; i++) {
		Node *n = &m->nodes[i];
		for (int j = 0; j < n->nin; j++)
			if (n->in[j] == old)
				n->in[j] = new_;
	}
	for (uint32_t i = 0; i < m->noutputs; i++)
		if (m->outputs[i] == old)
			m->outputs[i] = new_;
}

const Attr *
ir_attr(const Node *n, const char *key)
{
	int i = op_attr_index(n->op, key);
	if (i < 0)
		diag_internal(__FILE__, __LINE__, "op %s has no attribute '%s'", optab[n->op].name,
		              key);
	return &n->attrs[i];
}

int64_t
ir_attr_int(const Node *n, const char *key)
{
	return ir_attr(n, key)->i;
}

double
ir_attr_float(const Node *n, const char *key)
{
	return ir_attr(n, key)->f;
}

const char *
ir_attr_str(const Node *n, const char *key)
{
	return ir_attr(n, key)->s;
}
