/* frontend/expand.c -- bodies, module calls, repeat and when; graph inputs and outputs.
 *
 *   node   = {"name"?, "op" | "module", "in"?, "attrs"?, "args"?, "out"?, "when"?, "repeat"?}
 *   module = {"params"?: {name: default | null}, "inputs": [name], "body": [node],
 *             "outputs": [name]}
 *
 * A body is walked in order with a table of value names (FeVals).  A module call expands the
 * module's body in a fresh table whose inputs are bound to the call's operands; its instance
 * path (caller path + name [+ "." index]) prefixes every weight name inside, so weight names
 * equal PyTorch state_dict keys.  Nodes in module bodies carry Loc.via = "<path>, <call site>". */
#include "fe.h"

#include <string.h>

typedef struct {
	const char *file;  /* file holding this body */
	const char *path;  /* instance path, "" at the top */
	const char *via;   /* "<path>, <call-site pointer>", NULL at the top */
	const FeScope *ps; /* params visible to expressions */
	FeVals vals;       /* value names */
	ValueId prev;      /* the previous node's (first) result */
} Body;

static int body(FeCtx *fx, Body *b, const cJSON *list, const char *ptr);

static void
bind(FeCtx *fx, Body *b, const char *name, ValueId v)
{
	FeBind *e = ARENA_PUSH(fx->a, b->vals.b, b->vals.n, b->vals.cap);
	e->name = name;
	e->v = v;
}

static ValueId
lookup(const Body *b, const char *name)
{
	for (uint32_t i = b->vals.n; i-- > 0;)
		if (!strcmp(b->vals.b[i].name, name))
			return b->vals.b[i].v;
	return 0;
}

static int
unknown_value(FeCtx *fx, const Body *b, const char *name, Loc at)
{
	char list[400];
	size_t k = 0;
	int count = 0;
	list[0] = 0;
	for (uint32_t i = 0; i < b->vals.n; i++) {
		const char *nm = b->vals.b[i].name;
		int dup = 0;
		for (uint32_t j = 0; j < i && !dup; j++)
			dup = !strcmp(b->vals.b[j].name, nm);
		if (dup)
			continue;
		if (k + strlen(nm) + 8 >= sizeof list) {
			snprintf(list + k, sizeof list - k, ", ...");
			break;
		}
		k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", count++ ? ", " : "", nm);
	}
	return diag_error(fx->d, at, "unknown value '%.60s' (defined names: %s)", name,
	                  count ? list : "none");
}

/* "in": a name, or a list of names and numbers (numbers become scalar constants).
 * Returns the operand count, or -1. */
static int
read_in(FeCtx *fx, Body *b, const cJSON *jin, Loc at, ValueId *in, int max)
{
	Arena *ma = fx->m->arena;
	if (cJSON_IsString(jin)) {
		if (!(in[0] = lookup(b, jin->valuestring)))
			return unknown_value(fx, b, jin->valuestring, at);
		return 1;
	}
	if (!cJSON_IsArray(jin))
		return diag_error(fx->d, at, "expected a list of value names, got %s",
		                  fe_json_describe(fx->a, jin));
	int n = 0;
	for (const cJSON *c = jin->child; c; c = c->next, n++) {
		Loc el = at;
		el.ptr = fe_ptri(ma, at.ptr, n);
		if (n >= max)
			return diag_error(fx->d, el, "too many inputs, expected at most %d", max);
		if (cJSON_IsString(c)) {
			if (!(in[n] = lookup(b, c->valuestring)))
				return unknown_value(fx, b, c->valuestring, el);
			continue;
		}
		if (!cJSON_IsNumber(c))
			return diag_error(fx->d, el, "expected a value name or a number, got %s",
			                  fe_json_describe(fx->a, c));
		Attr attrs[8];
		ir_attrs_default(OP_constant, attrs);
		Attr *v = &attrs[op_attr_index(OP_constant, "value")];
		v->present = 1;
		v->f = c->valuedouble;
		int64_t id = ir_add_node(fx->m, OP_constant, NULL, 0, attrs, NULL, el, fx->d);
		if (id < 0)
			return -1;
		in[n] = fx->m->nodes[id].out[0];
	}
	return n;
}

/* give the node's results their names: "out" (a name or a list), else "name" */
static int
bind_results(FeCtx *fx, Body *b, const cJSON *j, const ValueId *res, int nres, Loc at)
{
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "out");
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
	Loc oat = at;
	oat.ptr = fe_ptr(fx->m->arena, at.ptr, "out");
	if (nres > 0)
		b->prev = res[0];
	if (!out) {
		if (name && nres > 0)
			bind(fx, b, name->valuestring, res[0]);
		return 0;
	}
	if (cJSON_IsString(out)) {
		if (nres != 1)
			return diag_error(fx->d, oat,
			                  "the node has %d results, expected a list of %d names",
			                  nres, nres);
		bind(fx, b, out->valuestring, res[0]);
		return 0;
	}
	if (!cJSON_IsArray(out) || cJSON_GetArraySize(out) != nres)
		return diag_error(fx->d, oat, "expected %s%d name%s for the results, got %s",
		                  nres == 1 ? "" : "a list of ", nres, nres == 1 ? "" : "s",
		                  fe_json_describe(fx->a, out));
	int i = 0;
	for (const cJSON *c = out->child; c; c = c->next, i++) {
		if (!cJSON_IsString(c) || !c->valuestring[0])
			return diag_error(
			    fx->d, fe_loc(fx, at.file, fe_ptri(fx->m->arena, oat.ptr, i), at.via),
			    "expected a value name, got %s", fe_json_describe(fx->a, c));
		bind(fx, b, c->valuestring, res[i]);
	}
	return 0;
}

static const FeModDef *
find_module(FeCtx *fx, const char *name)
{
	for (uint32_t i = 0; i < fx->nmods; i++)
		if (!strcmp(fx->mods[i].name, name))
			return &fx->mods[i];
	return NULL;
}

static const char *
module_names(FeCtx *fx)
{
	char buf[400];
	size_t k = 0;
	buf[0] = 0;
	for (uint32_t i = 0; i < fx->nmods && k < sizeof buf; i++)
		k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? ", " : "",
		                      fx->mods[i].name);
	return fx->nmods ? arena_strdup(fx->a, buf) : "none";
}

/* module params of one instance: args (caller's scope, with index) or defaults */
static int
instance_params(FeCtx *fx, const FeModDef *md, const cJSON *args, const FeScope *argsc, Loc at,
                Loc mat, FeScope *msc)
{
	Arena *ma = fx->m->arena;
	const cJSON *ps = cJSON_GetObjectItemCaseSensitive(md->def, "params");
	for (const cJSON *p = ps ? ps->child : NULL; p; p = p->next) {
		const cJSON *a = args ? cJSON_GetObjectItemCaseSensitive(args, p->string) : NULL;
		FeVal v;
		if (a) {
			Loc aat = at;
			aat.ptr = fe_ptr(ma, fe_ptr(ma, at.ptr, "args"), p->string);
			if (fe_value(fx, a, argsc, aat, "a value", &v) < 0)
				return -1;
		} else if (cJSON_IsNull(p)) {
			return diag_error(fx->d, at,
			                  "missing param '%s' of module '%s', expected it in "
			                  "\"args\"",
			                  p->string, md->name);
		} else {
			Loc dat = mat;
			dat.ptr = fe_ptr(ma, fe_ptr(ma, md->ptr, "params"), p->string);
			if (fe_value(fx, p, msc, dat, "a value", &v) < 0)
				return -1;
		}
		fe_scope_set(fx->a, msc, p->string, v);
	}
	return 0;
}

static int
call(FeCtx *fx, Body *b, const cJSON *j, const char *modname, const ValueId *in, int nin, Loc at,
     ValueId *res, int *nres)
{
	Arena *ma = fx->m->arena;
	const FeModDef *md = find_module(fx, modname);
	Loc mat = at;
	mat.ptr = fe_ptr(ma, at.ptr, "module");
	if (!md)
		return diag_error(fx->d, mat, "unknown module '%.60s', expected one of %s", modname,
		                  module_names(fx));
	const cJSON *jname = cJSON_GetObjectItemCaseSensitive(j, "name");
	if (!jname)
		return diag_error(fx->d, at,
		                  "a module call needs a \"name\", expected the instance name");
	const cJSON *minputs = cJSON_GetObjectItemCaseSensitive(md->def, "inputs");
	const cJSON *moutputs = cJSON_GetObjectItemCaseSensitive(md->def, "outputs");
	const cJSON *mbody = cJSON_GetObjectItemCaseSensitive(md->def, "body");
	const cJSON *ps = cJSON_GetObjectItemCaseSensitive(md->def, "params");
	int mnin = cJSON_GetArraySize(minputs), mnout = cJSON_GetArraySize(moutputs);
	if (nin != mnin)
		return diag_error(fx->d, at, "module '%s' takes %d input%s, got %d", md->name, mnin,
		                  mnin == 1 ? "" : "s", nin);
	if (mnout > 255)
		return diag_error(fx->d, at, "module '%s' has %d outputs, expected at most 255",
		                  md->name, mnout);
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "args");
	if (args && !cJSON_IsObject(args))
		return diag_error(fx->d, fe_loc(fx, at.file, fe_ptr(ma, at.ptr, "args"), at.via),
		                  "expected an object of args, got %s",
		                  fe_json_describe(fx->a, args));
	for (const cJSON *a = args ? args->child : NULL; a; a = a->next) {
		if (ps && cJSON_GetObjectItemCaseSensitive(ps, a->string))
			continue;
		char list[300];
		size_t k = 0;
		list[0] = 0;
		for (const cJSON *p = ps ? ps->child : NULL; p && k < sizeof list; p = p->next)
			k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? ", " : "",
			                      p->string);
		return diag_error(
		    fx->d,
		    fe_loc(fx, at.file, fe_ptr(ma, fe_ptr(ma, at.ptr, "args"), a->string), at.via),
		    "unknown param '%.60s' of module '%s', expected %s%s", a->string, md->name,
		    k ? "one of " : "none: it has no params", list);
	}
	const cJSON *jrep = cJSON_GetObjectItemCaseSensitive(j, "repeat");
	int64_t count = 1;
	if (jrep) {
		Loc rat = at;
		rat.ptr = fe_ptr(ma, at.ptr, "repeat");
		FeVal v;
		if (fe_value(fx, jrep, b->ps, rat, "an integer", &v) < 0)
			return -1;
		if (v.kind != FV_INT || v.i < 0 || v.i > FE_MAX_REPEAT)
			return diag_error(fx->d, rat, "expected an integer from 0 to %d, got %s",
			                  FE_MAX_REPEAT, fe_val_describe(fx->a, &v));
		count = v.i;
		if (mnout != mnin)
			return diag_error(fx->d, rat,
			                  "repeat chains instances, expected module '%s' to "
			                  "have as many outputs as inputs (%d, %d)",
			                  md->name, mnout, mnin);
	}
	for (int k = 0; k < fx->depth; k++) {
		if (!strcmp(fx->stack[k], md->name)) {
			char chain[300];
			size_t n = 0;
			for (int i = k; i < fx->depth && n < sizeof chain; i++)
				n += (size_t)snprintf(chain + n, sizeof chain - n, "%s -> ",
				                      fx->stack[i]);
			return diag_error(fx->d, mat,
			                  "module cycle: %s%s, expected modules that do not call "
			                  "themselves",
			                  chain, md->name);
		}
	}
	if (fx->depth >= FE_MAX_CALL_DEPTH)
		return diag_error(fx->d, mat, "module calls nested more than %d deep",
		                  FE_MAX_CALL_DEPTH);
	fx->stack[fx->depth++] = md->name;

	ValueId cur[256];
	memcpy(cur, in, (size_t)nin * sizeof *in);
	*nres = count ? mnout : nin;
	for (int64_t k = 0; k < count; k++) {
		const char *path = b->path[0]
		                       ? arena_printf(ma, "%s.%s", b->path, jname->valuestring)
		                       : jname->valuestring;
		if (jrep)
			path = arena_printf(ma, "%s.%lld", path, (long long)k);
		FeScope argsc = {.parent = b->ps}, msc = {.parent = &fx->gparams};
		if (jrep)
			fe_scope_set(fx->a, &argsc, "index", (FeVal){.kind = FV_INT, .i = k});
		Body sb = {.file = md->file, .path = path, .ps = &msc};
		sb.via = arena_printf(ma, "%s, %s", path, at.ptr);
		Loc inner = {md->file, md->ptr, sb.via};
		if (instance_params(fx, md, args, &argsc, at, inner, &msc) < 0)
			return -1;
		int i = 0;
		for (const cJSON *c = minputs->child; c; c = c->next, i++)
			bind(fx, &sb, c->valuestring, cur[i]);
		sb.prev = mnin ? cur[0] : 0;
		if (body(fx, &sb, mbody, fe_ptr(ma, md->ptr, "body")) < 0)
			return -1;
		i = 0;
		for (const cJSON *c = moutputs->child; c; c = c->next, i++) {
			if (!(res[i] = lookup(&sb, c->valuestring))) {
				Loc oat = {md->file, fe_ptri(ma, fe_ptr(ma, md->ptr, "outputs"), i),
				           sb.via};
				return unknown_value(fx, &sb, c->valuestring, oat);
			}
		}
		memcpy(cur, res, (size_t)mnout * sizeof *res);
	}
	if (!count)
		memcpy(res, in, (size_t)nin * sizeof *in);
	fx->depth--;
	return 0;
}

static int
node(FeCtx *fx, Body *b, const cJSON *j, const char *ptr)
{
	static const char *const keys[] = {"name", "op",  "module", "in",     "attrs",
	                                   "args", "out", "when",   "repeat", NULL};
	Arena *ma = fx->m->arena;
	Loc at = {b->file, ptr, b->via};
	ValueId in[256], res[256];
	int nin = 0, nres = 0;

	if (++fx->steps > FE_MAX_STEPS || fx->m->nnodes > FE_MAX_NODES)
		return diag_error(fx->d, at,
		                  "the graph expands to too many nodes, expected at most %d",
		                  FE_MAX_NODES);
	if (fe_check_keys(fx, j, b->file, ptr, b->via, "a node", keys) < 0)
		return -1;
	const cJSON *jop = cJSON_GetObjectItemCaseSensitive(j, "op");
	const cJSON *jmod = cJSON_GetObjectItemCaseSensitive(j, "module");
	const cJSON *jname = cJSON_GetObjectItemCaseSensitive(j, "name");
	const cJSON *jin = cJSON_GetObjectItemCaseSensitive(j, "in");
	const cJSON *jwhen = cJSON_GetObjectItemCaseSensitive(j, "when");
	if (!jop == !jmod)
		return diag_error(fx->d, at, "a node needs exactly one of \"op\" and \"module\"");
	const cJSON *jkind = jop ? jop : jmod;
	if (!cJSON_IsString(jkind))
		return diag_error(
		    fx->d, fe_loc(fx, b->file, fe_ptr(ma, ptr, jop ? "op" : "module"), b->via),
		    "expected %s name, got %s", jop ? "an op" : "a module",
		    fe_json_describe(fx->a, jkind));
	if (jname && (!cJSON_IsString(jname) || !fe_valid_name(jname->valuestring)))
		return diag_error(fx->d, fe_loc(fx, b->file, fe_ptr(ma, ptr, "name"), b->via),
		                  "expected a name of letters, digits, '_' and '.', got %s",
		                  fe_json_describe(fx->a, jname));
	static const char *const opkeys[] = {"args", "repeat"}, *const modkeys[] = {"attrs"};
	for (int i = 0; i < (jop ? 2 : 1); i++) {
		const char *k = jop ? opkeys[i] : modkeys[i];
		if (cJSON_GetObjectItemCaseSensitive(j, k))
			return diag_error(fx->d, fe_loc(fx, b->file, fe_ptr(ma, ptr, k), b->via),
			                  "\"%s\" is not allowed on %s, expected it on %s", k,
			                  jop ? "an op node" : "a module call",
			                  jop ? "a module call" : "an op node");
	}

	/* what the node is, and how many data operands it wants */
	int op = -1, want = 0;
	const FeModDef *md = NULL;
	if (jop) {
		Loc oat = {b->file, fe_ptr(ma, ptr, "op"), b->via};
		const char *name = jop->valuestring;
		if (!strcmp(name, "input"))
			return diag_error(fx->d, oat,
			                  "op 'input' is not allowed in a body, expected graph "
			                  "inputs under /inputs");
		if (strcmp(name, "weight") && (op = op_lookup(name)) < 0)
			return diag_error(fx->d, oat,
			                  "unknown op '%.60s', expected an op of ir/ops.def "
			                  "(docs/ir.md)",
			                  name);
		for (int i = 0; op >= 0 && i < optab[op].noperands; i++)
			want += !optab[op].opspec[i].param;
	} else {
		md = find_module(fx, jmod->valuestring);
		want = md ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(md->def, "inputs"))
		          : 1;
	}
	Loc iat = {b->file, fe_ptr(ma, ptr, "in"), b->via};
	if (jin) {
		if ((nin = read_in(fx, b, jin, iat, in, 255)) < 0)
			return -1;
	} else if (want > 0) {
		if (!b->prev)
			return diag_error(fx->d, at,
			                  "no input: \"in\" is missing and there is no previous "
			                  "value, expected \"in\"");
		in[0] = b->prev;
		nin = 1;
	}
	if (jwhen) {
		FeVal v;
		Loc wat = {b->file, fe_ptr(ma, ptr, "when"), b->via};
		if (fe_value(fx, jwhen, b->ps, wat, "a bool", &v) < 0)
			return -1;
		if (v.kind == FV_LIST)
			return diag_error(fx->d, wat, "expected a bool, got %s",
			                  fe_val_describe(fx->a, &v));
		if (!(v.kind == FV_FLOAT ? v.f != 0 : v.i != 0)) {
			/* skipped: the node acts as identity on its first input */
			if (nin == 0)
				return 0;
			const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "out");
			ValueId same[256];
			int n = cJSON_IsArray(out) ? cJSON_GetArraySize(out) : 1;
			for (int i = 0; i < n && i < 256; i++)
				same[i] = in[0];
			return bind_results(fx, b, j, same, n < 256 ? n : 256, at);
		}
	}
	const char *prefix = b->path[0] ? arena_printf(ma, "%s.", b->path) : "";
	if (jop && op < 0) {
		if (jin && nin)
			return diag_error(fx->d, iat, "weight takes no inputs, got %d", nin);
		if (fe_build_weight(fx, j, prefix, b->ps, at, res) < 0)
			return -1;
		nres = 1;
	} else if (jop) {
		if (fe_build_op(fx, j, op, in, nin, prefix, b->ps, at, res) < 0)
			return -1;
		nres = optab[op].nout;
	} else {
		if (call(fx, b, j, jmod->valuestring, in, nin, at, res, &nres) < 0)
			return -1;
	}
	return bind_results(fx, b, j, res, nres, at);
}

static int
body(FeCtx *fx, Body *b, const cJSON *list, const char *ptr)
{
	int i = 0;
	for (const cJSON *c = list->child; c; c = c->next, i++)
		if (node(fx, b, c, fe_ptri(fx->m->arena, ptr, i)) < 0)
			return -1;
	return 0;
}

/* inputs = [{"name": str, "shape": [expr...], "dtype"?: str}] */
static int
graph_inputs(FeCtx *fx, Body *top, const cJSON *inputs)
{
	static const char *const keys[] = {"name", "shape", "dtype", NULL};
	Arena *ma = fx->m->arena;
	Loc at = {fx->file, "/inputs", NULL};
	if (!inputs)
		return diag_error(fx->d, fe_loc(fx, fx->file, "", NULL),
		                  "missing key \"inputs\", expected a list of graph inputs");
	if (!cJSON_IsArray(inputs))
		return diag_error(fx->d, at, "expected a list of graph inputs, got %s",
		                  fe_json_describe(fx->a, inputs));
	int i = 0;
	for (const cJSON *c = inputs->child; c; c = c->next, i++) {
		const char *ptr = fe_ptri(ma, "/inputs", i);
		at.ptr = ptr;
		if (fe_check_keys(fx, c, fx->file, ptr, NULL, "a graph input", keys) < 0)
			return -1;
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
		const cJSON *shape = cJSON_GetObjectItemCaseSensitive(c, "shape");
		const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(c, "dtype");
		if (!name || !shape)
			return diag_error(
			    fx->d, at, "missing key \"%s\" of a graph input, expected %s",
			    name ? "shape" : "name", name ? "a list of dimensions" : "a name");
		Loc nat = {fx->file, fe_ptr(ma, ptr, "name"), NULL};
		if (!cJSON_IsString(name) || !fe_valid_name(name->valuestring))
			return diag_error(fx->d, nat,
			                  "expected an input name of letters, digits, '_' and '.', "
			                  "got %s",
			                  fe_json_describe(fx->a, name));
		for (uint32_t k = 0; k < fx->m->ninputs; k++)
			if (!strcmp(fx->m->values[fx->m->inputs[k]].name, name->valuestring))
				return diag_error(
				    fx->d, nat, "duplicate input name '%s', expected unique names",
				    name->valuestring);
		Loc sat = {fx->file, fe_ptr(ma, ptr, "shape"), NULL};
		if (!cJSON_IsArray(shape))
			return diag_error(fx->d, sat, "expected a list of dimensions, got %s",
			                  fe_json_describe(fx->a, shape));
		int rank = cJSON_GetArraySize(shape), d = 0;
		if (rank > IR_MAXRANK)
			return diag_error(fx->d, sat,
			                  "a shape of rank %d, expected at most %d dimensions",
			                  rank, IR_MAXRANK);
		int64_t dims[IR_MAXRANK];
		for (const cJSON *s = shape->child; s; s = s->next, d++) {
			Loc dat = {fx->file, fe_ptri(ma, sat.ptr, d), NULL};
			FeVal v;
			if (fe_value(fx, s, &fx->gparams, dat, "a positive integer", &v) < 0)
				return -1;
			if (v.kind != FV_INT || v.i < 1)
				return diag_error(fx->d, dat, "expected a positive integer, got %s",
				                  fe_val_describe(fx->a, &v));
			dims[d] = v.i;
		}
		int dt = DT_F32;
		if (dtype &&
		    (!cJSON_IsString(dtype) || (dt = dtype_lookup(dtype->valuestring)) < 0))
			return diag_error(
			    fx->d, fe_loc(fx, fx->file, fe_ptr(ma, ptr, "dtype"), NULL),
			    "unknown dtype %s, expected one of f32, f16, bf16, i32, i64, u8",
			    fe_json_describe(fx->a, dtype));
		ValueId v = ir_add_input(fx->m, name->valuestring, type_make(dt, rank, dims), at);
		bind(fx, top, fx->m->values[v].name, v);
		if (!top->prev)
			top->prev = v;
	}
	return 0;
}

/* outputs = [name | {"name": str, "value": name}] */
static int
graph_outputs(FeCtx *fx, Body *top, const cJSON *outputs)
{
	static const char *const keys[] = {"name", "value", NULL};
	Arena *ma = fx->m->arena;
	Loc at = {fx->file, "/outputs", NULL};
	if (!outputs)
		return diag_error(fx->d, fe_loc(fx, fx->file, "", NULL),
		                  "missing key \"outputs\", expected a list of graph outputs");
	if (!cJSON_IsArray(outputs) || !cJSON_GetArraySize(outputs))
		return diag_error(fx->d, at, "expected a list of at least one output, got %s",
		                  fe_json_describe(fx->a, outputs));
	int i = 0;
	for (const cJSON *c = outputs->child; c; c = c->next, i++) {
		const cJSON *name = c, *value = c;
		at.ptr = fe_ptri(ma, "/outputs", i);
		if (cJSON_IsObject(c)) {
			if (fe_check_keys(fx, c, fx->file, at.ptr, NULL, "a graph output", keys) <
			    0)
				return -1;
			name = cJSON_GetObjectItemCaseSensitive(c, "name");
			value = cJSON_GetObjectItemCaseSensitive(c, "value");
			if (!name || !value)
				return diag_error(
				    fx->d, at,
				    "missing key \"%s\" of a graph output, expected a "
				    "name",
				    name ? "value" : "name");
		}
		Loc nat = at, vat = at;
		if (c != name) {
			nat.ptr = fe_ptr(ma, at.ptr, "name");
			vat.ptr = fe_ptr(ma, at.ptr, "value");
		}
		if (!cJSON_IsString(name) || !fe_valid_name(name->valuestring))
			return diag_error(fx->d, nat,
			                  "expected an output name of letters, digits, '_' and "
			                  "'.', got %s",
			                  fe_json_describe(fx->a, name));
		if (!cJSON_IsString(value))
			return diag_error(fx->d, vat, "expected a value name, got %s",
			                  fe_json_describe(fx->a, value));
		for (uint32_t k = 0; k < fx->m->noutputs; k++)
			if (!strcmp(fx->m->output_names[k], name->valuestring))
				return diag_error(
				    fx->d, nat, "duplicate output name '%s', expected unique names",
				    name->valuestring);
		ValueId v = lookup(top, value->valuestring);
		if (!v)
			return unknown_value(fx, top, value->valuestring, vat);
		ir_add_output(fx->m, v, name->valuestring);
	}
	return 0;
}

int
fe_graph(FeCtx *fx, const cJSON *root)
{
	Body top = {.file = fx->file, .path = "", .ps = &fx->gparams};
	const cJSON *jbody = cJSON_GetObjectItemCaseSensitive(root, "body");
	if (graph_inputs(fx, &top, cJSON_GetObjectItemCaseSensitive(root, "inputs")) < 0)
		return -1;
	if (!jbody)
		return diag_error(fx->d, fe_loc(fx, fx->file, "", NULL),
		                  "missing key \"body\", expected a list of nodes");
	if (!cJSON_IsArray(jbody))
		return diag_error(fx->d, fe_loc(fx, fx->file, "/body", NULL),
		                  "expected a list of nodes, got %s",
		                  fe_json_describe(fx->a, jbody));
	if (body(fx, &top, jbody, "/body") < 0)
		return -1;
	return graph_outputs(fx, &top, cJSON_GetObjectItemCaseSensitive(root, "outputs"));
}
