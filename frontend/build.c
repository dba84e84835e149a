/* frontend/build.c -- one op node of a graph file -> IR nodes through ir/builder.c.
 *
 *   node = {"op": name, "name"?: str, "in"?: [ref...], "attrs"?: {key: value}, ...}
 *
 * Attributes are checked against optab[op].schema (ops.def): i f b s, iN (a scalar is
 * broadcast), i* f* lists, optional "?" and defaults; an unknown key is an error.  Operands
 * follow optab[op].opspec: data operands come from "in", parameters (%w) are created here as
 * weight nodes named <instance path>.<node name>.<w>.  The builder runs the shape rule, so
 * shape errors arrive located at this node. */
#include "fe.h"

#include <stdlib.h>
#include <string.h>

/* ---- the weight name set (hash set of strings, open addressing) ---- */

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

int
fe_weight_name_add(FeCtx *fx, const char *name, Loc at)
{
	if (!fe_valid_name(name))
		return diag_error(fx->d, at,
		                  "bad weight name \"%.100s\", expected letters, digits, '_' "
		                  "and '.'",
		                  name);
	if (2 * (fx->wn + 1) > fx->wcap) {
		uint32_t cap = fx->wcap ? 2 * fx->wcap : 256;
		const char **t = arena_zalloc(fx->a, cap * sizeof *t);
		for (uint32_t i = 0; i < fx->wcap; i++) {
			if (!fx->wset[i])
				continue;
			uint32_t h = hash(fx->wset[i]) & (cap - 1);
			while (t[h])
				h = (h + 1) & (cap - 1);
			t[h] = fx->wset[i];
		}
		fx->wset = t;
		fx->wcap = cap;
	}
	uint32_t h = hash(name) & (fx->wcap - 1);
	for (; fx->wset[h]; h = (h + 1) & (fx->wcap - 1))
		if (!strcmp(fx->wset[h], name))
			return diag_error(fx->d, at,
			                  "duplicate weight name '%.100s', expected unique node "
			                  "names",
			                  name);
	fx->wset[h] = name;
	fx->wn++;
	return 0;
}

/* ---- attributes ---- */

static const char *
schema_keys(FeCtx *fx, int op)
{
	const OpInfo *oi = &optab[op];
	char buf[400];
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; i < oi->nattrs && k < sizeof buf; i++)
		k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? ", " : "",
		                      oi->schema[i].key);
	return arena_strdup(fx->a, buf);
}

static const char *
want_text(FeCtx *fx, int type, int count)
{
	switch (type) {
	case AT_INT:
		return "an integer";
	case AT_FLOAT:
		return "a number";
	case AT_BOOL:
		return "a bool";
	case AT_STR:
		return "a string";
	case AT_INTS:
		return count ? arena_printf(fx->a, "%d integers", count) : "a list of integers";
	default:
		return count ? arena_printf(fx->a, "%d numbers", count) : "a list of numbers";
	}
}

/* one scalar of an attribute: ints want FV_INT, floats accept ints */
static int
scalar(FeCtx *fx, const FeVal *v, int isint, Loc at, int64_t *i, double *f)
{
	if (v->kind == FV_INT) {
		*i = v->i;
		*f = (double)v->i;
		return 0;
	}
	if (v->kind == FV_FLOAT && !isint) {
		*f = v->f;
		*i = (int64_t)(v->f > -9e18 && v->f < 9e18 ? v->f : 0);
		return 0;
	}
	return diag_error(fx->d, at, "expected %s, got %s", isint ? "an integer" : "a number",
	                  fe_val_describe(fx->a, v));
}

/* JSON value j -> attribute a of spec sp */
static int
convert(FeCtx *fx, const AttrSpec *sp, const cJSON *j, const FeScope *s, Loc at, Attr *a)
{
	FeVal v;
	const char *want = want_text(fx, sp->type, sp->count);
	a->type = sp->type;
	a->present = 1;
	if (sp->type == AT_STR) {
		if (!cJSON_IsString(j))
			return diag_error(fx->d, at, "expected a string, got %s",
			                  fe_json_describe(fx->a, j));
		a->s = arena_strdup(fx->m->arena, j->valuestring);
		return 0;
	}
	if (fe_value(fx, j, s, at, want, &v) < 0)
		return -1;
	switch (sp->type) {
	case AT_INT:
	case AT_FLOAT:
		if (v.kind == FV_LIST || v.kind == FV_BOOL)
			return diag_error(fx->d, at, "expected %s, got %s", want,
			                  fe_val_describe(fx->a, &v));
		return scalar(fx, &v, sp->type == AT_INT, at, &a->i, &a->f);
	case AT_BOOL:
		if (v.kind == FV_BOOL || (v.kind == FV_INT && (v.i == 0 || v.i == 1))) {
			a->i = v.i;
			return 0;
		}
		return diag_error(fx->d, at, "expected a bool, got %s", fe_val_describe(fx->a, &v));
	}
	/* lists */
	int isint = sp->type == AT_INTS;
	FeVal one = v;
	const FeVal *items = &one;
	uint32_t n = 1;
	if (v.kind == FV_BOOL)
		return diag_error(fx->d, at, "expected %s, got %s", want,
		                  fe_val_describe(fx->a, &v));
	if (v.kind == FV_LIST) {
		items = v.items;
		n = v.n;
		if (sp->count && n != sp->count)
			return diag_error(fx->d, at, "expected %s, got %s", want,
			                  fe_val_describe(fx->a, &v));
	} else if (sp->count) {
		n = sp->count; /* a scalar is broadcast */
	}
	a->n = (uint16_t)n;
	a->ints = arena_zalloc(fx->m->arena, (n + 1) * sizeof *a->ints);
	a->floats = arena_zalloc(fx->m->arena, (n + 1) * sizeof *a->floats);
	for (uint32_t i = 0; i < n; i++) {
		const FeVal *x = v.kind == FV_LIST ? &items[i] : &one;
		Loc el = at;
		if (v.kind == FV_LIST && cJSON_IsArray(j))
			el.ptr = fe_ptri(fx->m->arena, at.ptr, (int)i);
		if (scalar(fx, x, isint, el, &a->ints[i], &a->floats[i]) < 0)
			return -1;
	}
	return 0;
}

/* fill attrs[] (schema order) from the node's "attrs" object */
static int
read_attrs(FeCtx *fx, const cJSON *j, int op, const FeScope *s, Loc at, Attr *attrs)
{
	const OpInfo *oi = &optab[op];
	const cJSON *ja = cJSON_GetObjectItemCaseSensitive(j, "attrs");
	Loc aat = at;
	aat.ptr = fe_ptr(fx->m->arena, at.ptr, "attrs");
	ir_attrs_default(op, attrs);
	if (ja && !cJSON_IsObject(ja))
		return diag_error(fx->d, aat, "expected an object of attributes, got %s",
		                  fe_json_describe(fx->a, ja));
	for (const cJSON *c = ja ? ja->child : NULL; c; c = c->next) {
		if (op_attr_index(op, c->string) >= 0)
			continue;
		Loc kat = aat;
		kat.ptr = fe_ptr(fx->m->arena, aat.ptr, c->string);
		if (!oi->nattrs)
			return diag_error(fx->d, kat,
			                  "unknown attribute '%.60s': %s has no attributes",
			                  c->string, oi->name);
		return diag_error(fx->d, kat, "unknown attribute '%.60s' of %s, expected one of %s",
		                  c->string, oi->name, schema_keys(fx, op));
	}
	for (int i = 0; i < oi->nattrs; i++) {
		const AttrSpec *sp = &oi->schema[i];
		const cJSON *v = ja ? cJSON_GetObjectItemCaseSensitive(ja, sp->key) : NULL;
		if (!v || cJSON_IsNull(v)) {
			if (sp->has_default || sp->optional)
				continue;
			Loc where = v ? aat : at;
			if (v)
				where.ptr = fe_ptr(fx->m->arena, aat.ptr, sp->key);
			return diag_error(fx->d, where, "missing attribute '%s' of %s, expected %s",
			                  sp->key, oi->name, want_text(fx, sp->type, sp->count));
		}
		Loc kat = aat;
		kat.ptr = fe_ptr(fx->m->arena, aat.ptr, sp->key);
		if (convert(fx, sp, v, s, kat, &attrs[i]) < 0)
			return -1;
	}
	return 0;
}

static const char *
node_name(FeCtx *fx, const cJSON *j)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "name");
	return cJSON_IsString(n) ? n->valuestring : NULL;
}

/* the operand names of op, "x, weight" */
static const char *
operand_list(FeCtx *fx, int op, int params)
{
	const OpInfo *oi = &optab[op];
	char buf[200];
	size_t k = 0;
	buf[0] = 0;
	for (int i = 0; i < oi->noperands && k < sizeof buf; i++)
		if (oi->opspec[i].param == params)
			k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s%s", k ? ", " : "",
			                      oi->opspec[i].name,
			                      oi->opspec[i].variadic ? "..." : "");
	return arena_strdup(fx->a, buf);
}

int
fe_build_op(FeCtx *fx, const cJSON *j, int op, const ValueId *in, int nin, const char *prefix,
            const FeScope *s, Loc at, ValueId *out)
{
	const OpInfo *oi = &optab[op];
	Attr attrs[40];
	ValueId full[256];
	int ndata = 0, variadic = 0, nfull = 0;

	SEGC_ASSERT(oi->nattrs < countof(attrs));
	for (int i = 0; i < oi->noperands; i++) {
		if (oi->opspec[i].variadic)
			variadic = 1;
		else if (!oi->opspec[i].param)
			ndata++;
	}
	if (variadic ? nin < ndata + 1 : nin != ndata) {
		Loc iat = at;
		if (cJSON_GetObjectItemCaseSensitive(j, "in"))
			iat.ptr = fe_ptr(fx->m->arena, at.ptr, "in");
		if (variadic)
			return diag_error(fx->d, iat, "%s takes at least %d input%s (%s), got %d",
			                  oi->name, ndata + 1, ndata ? "s" : "",
			                  operand_list(fx, op, 0), nin);
		return diag_error(fx->d, iat, "%s takes %d input%s%s%s%s, got %d", oi->name, ndata,
		                  ndata == 1 ? "" : "s", ndata ? " (" : "", operand_list(fx, op, 0),
		                  ndata ? ")" : "", nin);
	}
	if (read_attrs(fx, j, op, s, at, attrs) < 0)
		return -1;
	const char *name = node_name(fx, j);
	int k = 0;
	for (int i = 0; i < oi->noperands; i++) {
		const OperandSpec *sp = &oi->opspec[i];
		if (sp->variadic) {
			while (k < nin)
				full[nfull++] = in[k++];
			continue;
		}
		if (!sp->param) {
			full[nfull++] = in[k++];
			continue;
		}
		if (sp->when >= 0 && !attrs[sp->when].i) {
			full[nfull++] = 0;
			continue;
		}
		if (!name)
			return diag_error(fx->d, at,
			                  "%s has parameters (%s), expected a \"name\" for them",
			                  oi->name, operand_list(fx, op, 1));
		const char *wn = arena_printf(fx->m->arena, "%s%s.%s", prefix, name, sp->name);
		if (fe_weight_name_add(fx, wn, at) < 0)
			return -1;
		Type t = {.dtype = DT_F32, .rank = -1};
		full[nfull++] = ir_add_weight(fx->m, wn, t, at);
	}
	const char *inst = name ? arena_printf(fx->m->arena, "%s%s", prefix, name) : NULL;
	int errs = fx->d->nerrors;
	int64_t id = ir_add_node(fx->m, op, full, nfull, attrs, inst, at, fx->d);
	if (id < 0) {
		if (fx->d->nerrors == errs)
			diag_error(fx->d, at, "%s: invalid operand shapes", oi->name);
		return -1;
	}
	const Node *n = &fx->m->nodes[id];
	for (int i = 0; i < n->nout; i++)
		out[i] = n->out[i];
	return 0;
}

int
fe_build_weight(FeCtx *fx, const cJSON *j, const char *prefix, const FeScope *s, Loc at,
                ValueId *out)
{
	static const char *const keys[] = {"shape", "dtype", NULL};
	const cJSON *ja = cJSON_GetObjectItemCaseSensitive(j, "attrs");
	Loc aat = at;
	aat.ptr = fe_ptr(fx->m->arena, at.ptr, "attrs");
	if (!ja)
		return diag_error(fx->d, at,
		                  "missing \"attrs\" of weight, expected {\"shape\": [...]}");
	if (fe_check_keys(fx, ja, at.file, aat.ptr, at.via, "the attributes of weight", keys) < 0)
		return -1;
	const cJSON *js = cJSON_GetObjectItemCaseSensitive(ja, "shape");
	const cJSON *jd = cJSON_GetObjectItemCaseSensitive(ja, "dtype");
	if (!js)
		return diag_error(fx->d, aat,
		                  "missing attribute 'shape' of weight, expected a list of "
		                  "integers");
	AttrSpec sp = {.key = "shape", .type = AT_INTS};
	Attr a;
	Loc sat = aat;
	sat.ptr = fe_ptr(fx->m->arena, aat.ptr, "shape");
	if (convert(fx, &sp, js, s, sat, &a) < 0)
		return -1;
	if (a.n > IR_MAXRANK)
		return diag_error(fx->d, sat, "a shape of rank %d, expected at most %d dimensions",
		                  a.n, IR_MAXRANK);
	for (int i = 0; i < a.n; i++)
		if (a.ints[i] < 1)
			return diag_error(fx->d, sat,
			                  "dimension %d is %lld, expected a positive integer", i,
			                  (long long)a.ints[i]);
	int dt = DT_F32;
	if (jd) {
		Loc dat = aat;
		dat.ptr = fe_ptr(fx->m->arena, aat.ptr, "dtype");
		if (!cJSON_IsString(jd) || (dt = dtype_lookup(jd->valuestring)) < 0)
			return diag_error(fx->d, dat,
			                  "unknown dtype %s, expected one of f32, f16, bf16, i32, "
			                  "i64, u8",
			                  fe_json_describe(fx->a, jd));
	}
	const char *name = node_name(fx, j);
	if (!name)
		return diag_error(fx->d, at,
		                  "weight needs a \"name\", expected the parameter's name");
	const char *wn = arena_printf(fx->m->arena, "%s%s", prefix, name);
	if (fe_weight_name_add(fx, wn, at) < 0)
		return -1;
	*out = ir_add_weight(fx->m, wn, type_make(dt, a.n, a.ints), at);
	return 0;
}
