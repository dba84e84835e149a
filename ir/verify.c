/* ir/verify.c -- the IR verifier: structural invariants, then the shape rules again.
 *
 * Checks the invariants listed at the top of ir/ir.h (operand ids in range and defined by an
 * earlier live node, one definition per value, def/defidx consistent, operand counts and
 * parameter presence against the op table, required attributes present), the module's
 * inputs, outputs and groups, then re-runs every shape rule on a copy of the value table and
 * compares the types.  It reports through diag_error and returns -1; the caller decides
 * whether that is a user error or a bug (after a pass it is a bug).  Changes nothing. */
#include "ir.h"

#include <string.h>

#define TS 160

static Loc
mloc(const Module *m)
{
	Loc l = { m->file, NULL, NULL };
	return l;
}

/* structural checks of node i; ndef[v] counts the live definitions of v */
static int
check_node(const Module *m, uint32_t i, uint32_t *ndef, Diag *d)
{
	const Node *n = &m->nodes[i];
	int rc = 0;

	if (n->op >= OP_COUNT)
		return diag_error(d, n->loc, "verify: node %u has op %d, expected an op of ops.def",
		                  i, n->op);
	const OpInfo *oi = &optab[n->op];
	int variadic = oi->noperands && oi->opspec[oi->noperands - 1].variadic;
	if (variadic ? n->nin < oi->noperands : n->nin != oi->noperands)
		rc = diag_error(d, n->loc, "verify: %s node %u has %d operands, expected %s%d",
		                oi->name, i, n->nin, variadic ? "at least " : "", oi->noperands);
	if (n->nout != oi->nout)
		rc = diag_error(d, n->loc, "verify: %s node %u has %d results, expected %d",
		                oi->name, i, n->nout, oi->nout);
	for (int j = 0; j < oi->nattrs; j++) {
		const AttrSpec *s = &oi->schema[j];
		const Attr *a = &n->attrs[j];
		if (a->type != s->type)
			rc = diag_error(d, n->loc,
			                "verify: %s attribute '%s' has type %d, expected %d",
			                oi->name, s->key, a->type, s->type);
		else if (!a->present && !s->optional)
			rc = diag_error(d, n->loc, "verify: %s attribute '%s' is missing", oi->name,
			                s->key);
		else if (a->present && s->count && a->n != s->count)
			rc = diag_error(d, n->loc,
			                "verify: %s attribute '%s' has %d values, expected %d",
			                oi->name, s->key, a->n, s->count);
	}
	for (int j = 0; j < n->nin && rc == 0; j++) {
		const OperandSpec *s = &oi->opspec[j < oi->noperands ? j : oi->noperands - 1];
		ValueId v = n->in[j];
		if (v == 0) {
			int want = !s->param || s->when < 0 || n->attrs[s->when].i;
			if (want)
				rc = diag_error(d, n->loc,
				                "verify: %s operand '%s' is absent, expected a "
				                "value",
				                oi->name, s->name);
			continue;
		}
		if (v >= m->nvalues) {
			rc = diag_error(d, n->loc,
			                "verify: %s operand '%s' is %%%u, expected an id below "
			                "%u",
			                oi->name, s->name, v, m->nvalues);
			continue;
		}
		const Value *val = &m->values[v];
		if (val->def >= i || m->nodes[val->def].dead ||
		    val->defidx >= m->nodes[val->def].nout ||
		    m->nodes[val->def].out[val->defidx] != v)
			rc = diag_error(d, n->loc,
			                "verify: %s operand '%s' (%%%u) is not defined by an "
			                "earlier live node",
			                oi->name, s->name, v);
	}
	for (int j = 0; j < n->nout && j < oi->nout; j++) {
		ValueId v = n->out[j];
		if (v == 0 || v >= m->nvalues) {
			rc = diag_error(d, n->loc,
			                "verify: %s result %d is %%%u, expected an id in "
			                "1..%u",
			                oi->name, j, v, m->nvalues - 1);
			continue;
		}
		if (ndef[v]++)
			rc = diag_error(d, n->loc, "verify: %%%u is defined more than once", v);
		if (m->values[v].def != i || m->values[v].defidx != j)
			rc = diag_error(d, n->loc,
			                "verify: %%%u has def %u/%u, expected node %u result %d", v,
			                m->values[v].def, m->values[v].defidx, i, j);
	}
	if ((n->op == OP_input || n->op == OP_weight) && rc == 0 &&
	    (!m->values[n->out[0]].name || strcmp(m->values[n->out[0]].name, n->attrs[0].s)))
		rc = diag_error(d, n->loc, "verify: %s '%s': value name differs from the node's",
		                oi->name, n->attrs[0].s ? n->attrs[0].s : "");
	return rc;
}

static int
group_error(Diag *d, const Group *gr, uint32_t g, const char *what)
{
	return diag_error(d, gr->loc, "verify: group %u ('%s') %s", g, gr->name ? gr->name : "?",
	                  what);
}

/* module inputs, outputs and fusion groups */
static int
check_module(const Module *m, const uint32_t *ndef, Diag *d)
{
	int rc = 0;
	for (uint32_t i = 0; i < m->ninputs; i++) {
		ValueId v = m->inputs[i];
		if (v == 0 || v >= m->nvalues || !ndef[v] || ir_def(m, v)->op != OP_input)
			rc = diag_error(d, mloc(m),
			                "verify: input %u is %%%u, expected a live input node", i,
			                v);
	}
	for (uint32_t i = 0; i < m->noutputs; i++) {
		ValueId v = m->outputs[i];
		if (v == 0 || v >= m->nvalues || !ndef[v])
			rc = diag_error(
			        d, mloc(m), "verify: output '%s' is %%%u, expected a live value",
			        m->output_names && m->output_names[i] ? m->output_names[i] : "?",
			        v);
	}
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		int ok = gr->nnodes >= 1 && gr->nodes && gr->nodes[0] == gr->root;
		for (uint32_t k = 0; ok && k < gr->nnodes; k++)
			ok = gr->nodes[k] < m->nnodes && !m->nodes[gr->nodes[k]].dead &&
			     (k == 0 || gr->nodes[k] > gr->nodes[k - 1]);
		for (uint32_t k = 0; ok && k < gr->nouts; k++)
			ok = gr->outs[k] && gr->outs[k] < m->nvalues && ndef[gr->outs[k]];
		if (!ok)
			rc = group_error(d, gr, g,
			                 "is malformed, expected live nodes in order, root first");
		/* a load prologue: live nodes in order before the root, the last one's result the
		 * root's operand 0, starting from a live value */
		ok = !gr->npro ||
		     (gr->pro && gr->pro_src && gr->pro_src < m->nvalues && ndef[gr->pro_src]);
		for (uint32_t k = 0; ok && k < gr->npro; k++) {
			NodeId id = gr->pro[k];
			ok = id < m->nnodes && !m->nodes[id].dead && id < gr->root &&
			     (k == 0 || id > gr->pro[k - 1]);
		}
		if (ok && gr->npro && gr->root < m->nnodes)
			ok = m->nodes[gr->pro[gr->npro - 1]].out[0] == m->nodes[gr->root].in[0];
		if (!ok)
			rc = group_error(d, gr, g,
			                 "has a malformed load prologue, expected live nodes in "
			                 "order before the root, ending at its operand 0");
		/* statistics: a live moments node of the group's result (or of a view of it), its
		 * results outs[1, 2] */
		const Node *sn = gr->stats && gr->stats < m->nnodes ? &m->nodes[gr->stats] : NULL;
		ValueId so = sn && sn->op == OP_moments ? sn->in[0] : 0;
		if (so && so < m->nvalues && ir_def(m, so)->op == OP_reshape)
			so = ir_def(m, so)->in[0];
		ok = !gr->stats || (sn && !sn->dead && so && gr->nouts == 3 && so == gr->outs[0] &&
		                    sn->out[0] == gr->outs[1] && sn->out[1] == gr->outs[2]);
		if (!ok)
			rc = group_error(d, gr, g,
			                 "has malformed statistics, expected a moments node of its "
			                 "result whose results are its outs 1 and 2");
	}
	return rc;
}

/* Re-run every shape rule on a copy of the value table and compare the result types. */
static int
check_types(Module *m, Diag *d)
{
	char b1[TS], b2[TS];
	Arena *scratch = arena_new();
	Module c = *m;
	int rc = 0;

	c.values = arena_memdup(scratch, m->values, m->nvalues * sizeof *m->values);
	for (uint32_t i = 0; i < m->nnodes && rc == 0; i++) {
		Node *n = &m->nodes[i];
		if (n->dead || n->op == OP_input || n->op == OP_weight)
			continue;
		for (int j = 0; j < n->nout; j++)
			c.values[n->out[j]].type.rank = -1;
		if (optab[n->op].shape(&c, n, d) < 0) {
			rc = -1;
			break;
		}
		for (int j = 0; j < n->nout; j++) {
			const Type *want = &c.values[n->out[j]].type,
			           *got = &m->values[n->out[j]].type;
			if (!type_equal(want, got))
				rc = diag_error(
				        d, n->loc,
				        "verify: %s result %%%u has type %s, its shape rule "
				        "gives %s",
				        optab[n->op].name, n->out[j], type_str(got, b1, sizeof b1),
				        type_str(want, b2, sizeof b2));
		}
	}
	/* a parameter the module left untyped but a consumer types now */
	for (uint32_t v = 1; v < m->nvalues && rc == 0; v++)
		if (m->values[v].type.rank < 0 && c.values[v].type.rank >= 0)
			rc = diag_error(d, ir_def(m, v)->loc,
			                "verify: weight '%s' has no type, its "
			                "consumer gives %s",
			                m->values[v].name ? m->values[v].name : "?",
			                type_str(&c.values[v].type, b1, sizeof b1));
	arena_free(scratch);
	return rc;
}

int
ir_verify(Module *m, Diag *d)
{
	Arena *scratch = arena_new();
	uint32_t *ndef = arena_zalloc(scratch, (m->nvalues + 1) * sizeof *ndef);
	int rc = 0;

	if (m->nvalues == 0)
		rc = diag_error(d, mloc(m), "verify: no null value, expected values[0]");
	for (uint32_t i = 0; i < m->nnodes && rc == 0; i++) {
		if (m->nodes[i].dead)
			continue;
		if (check_node(m, i, ndef, d) < 0)
			rc = -1;
	}
	if (rc == 0)
		rc = check_module(m, ndef, d);
	arena_free(scratch);
	if (rc == 0)
		rc = check_types(m, d);
	return rc;
}
