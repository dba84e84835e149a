/* frontend/params.c -- graph params, -D overrides, and JSON values as expression values.
 *
 *   params = {name: int | float | bool | [number, ...] | "expression over earlier params"}
 *
 * A -D override is parsed according to the type of the default: int, float, bool
 * (true/false/1/0) or list ("0.5,0.7" or "[0.5,0.7]", ints when the default holds ints).
 * A choice param {"choices": ["T", "S"], "default": "T"} takes one of the names (-D size=S);
 * its value in expressions is the index of the name.
 * Every resolved param is recorded with ir_add_param() as text without spaces (a choice param
 * as its name).
 *
 *   checks = [{"expr": "condition over params", "param": name, "message": "what is expected"}]
 *
 * are evaluated after the params, before any node is built; a false one is an error at
 * /params/<param>: "prune = [0.5, 1.5]: keep rates must be in (0, 1]". */
#include "fe.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static FeVal
json_number(const cJSON *j)
{
	FeVal v = {.kind = FV_FLOAT, .f = j->valuedouble};
	if (!(j->type & FE_JSON_FLOAT) && j->valuedouble >= -9e18 && j->valuedouble <= 9e18 &&
	    (double)(int64_t)j->valuedouble == j->valuedouble) {
		v.kind = FV_INT;
		v.i = (int64_t)j->valuedouble;
	}
	return v;
}

int
fe_value(FeCtx *fx, const cJSON *j, const FeScope *s, Loc at, const char *what, FeVal *out)
{
	char err[600];
	memset(out, 0, sizeof *out);
	if (cJSON_IsNumber(j)) {
		*out = json_number(j);
		return 0;
	}
	if (cJSON_IsBool(j)) {
		out->kind = FV_BOOL;
		out->i = cJSON_IsTrue(j);
		return 0;
	}
	if (cJSON_IsString(j)) {
		int rc = fe_expr_eval(fx->a, j->valuestring, s, out, err, sizeof err);
		if (rc == FE_EXPR_SYNTAX)
			return diag_error(fx->d, at, "expected %s, got %s (not an expression: %s)",
			                  what, fe_json_describe(fx->a, j), err);
		if (rc == FE_EXPR_EVAL)
			return diag_error(fx->d, at, "%s", err);
		return 0;
	}
	if (cJSON_IsArray(j)) {
		int n = cJSON_GetArraySize(j), i = 0;
		if (n > FE_MAX_LIST)
			return diag_error(fx->d, at, "a list of %d values, expected at most %d", n,
			                  FE_MAX_LIST);
		out->kind = FV_LIST;
		out->n = (uint32_t)n;
		out->items = arena_zalloc(fx->a, ((size_t)n + 1) * sizeof *out->items);
		for (const cJSON *c = j->child; c; c = c->next, i++) {
			Loc el = at;
			el.ptr = fe_ptri(fx->m->arena, at.ptr ? at.ptr : "", i);
			if (cJSON_IsArray(c) || cJSON_IsObject(c) || cJSON_IsNull(c))
				return diag_error(fx->d, el, "expected a number, got %s",
				                  fe_json_describe(fx->a, c));
			if (fe_value(fx, c, s, el, "a number", &out->items[i]) < 0)
				return -1;
			if (out->items[i].kind == FV_LIST)
				return diag_error(fx->d, el, "expected a number, got %s",
				                  fe_val_describe(fx->a, &out->items[i]));
		}
		return 0;
	}
	return diag_error(fx->d, at, "expected %s, got %s", what, fe_json_describe(fx->a, j));
}

/* ---- -D values ---- */

static int
parse_int(const char *s, int64_t *out)
{
	char *end;
	if (!*s)
		return -1;
	long long v = strtoll(s, &end, 10);
	if (*end || end == s)
		return -1;
	*out = v;
	return (v == LLONG_MAX || v == LLONG_MIN) ? -1 : 0;
}

static int
parse_float(const char *s, double *out)
{
	char *end;
	if (!*s)
		return -1;
	double v = strtod(s, &end);
	if (*end || end == s || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* text -> value of the same type as def; returns 0, or -1 with the expected thing in *want */
static int
parse_define(FeCtx *fx, const char *text, const FeVal *def, FeVal *out, const char **want)
{
	memset(out, 0, sizeof *out);
	out->kind = def->kind;
	switch (def->kind) {
	case FV_INT:
		*want = "an integer";
		return parse_int(text, &out->i);
	case FV_FLOAT:
		*want = "a number";
		return parse_float(text, &out->f);
	case FV_BOOL:
		*want = "true, false, 1 or 0";
		if (!strcmp(text, "true") || !strcmp(text, "1"))
			out->i = 1;
		else if (!strcmp(text, "false") || !strcmp(text, "0"))
			out->i = 0;
		else
			return -1;
		return 0;
	}
	/* lists: "0.5,0.7" or "[0.5,0.7]" */
	int ints = def->n > 0;
	for (uint32_t i = 0; i < def->n; i++)
		ints &= def->items[i].kind == FV_INT;
	*want = ints ? "a list of integers like 1,2 or [1,2]" : "a list of numbers like 0.5,0.7";
	size_t len = strlen(text);
	char *buf = arena_strdup(fx->a, text);
	if (len >= 2 && buf[0] == '[' && buf[len - 1] == ']') {
		buf[len - 1] = 0;
		buf++;
	}
	FeVal *items = NULL;
	uint32_t n = 0, cap = 0;
	if (*buf) {
		for (char *p = buf;;) {
			char *comma = strchr(p, ',');
			if (comma)
				*comma = 0;
			while (*p == ' ')
				p++;
			size_t l = strlen(p);
			while (l && p[l - 1] == ' ')
				p[--l] = 0;
			FeVal v = {.kind = FV_INT};
			if (parse_int(p, &v.i) < 0) {
				v.kind = FV_FLOAT;
				if (ints || parse_float(p, &v.f) < 0)
					return -1;
			}
			if (n >= FE_MAX_LIST)
				return -1;
			*ARENA_PUSH(fx->a, items, n, cap) = v;
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	out->n = n;
	out->items = items;
	return 0;
}

static const char *
describe_text(FeCtx *fx, const char *text)
{
	double f;
	int64_t i;
	if (parse_int(text, &i) == 0)
		return arena_printf(fx->a, "integer %s", text);
	if (parse_float(text, &f) == 0) {
		FeVal v = {.kind = FV_FLOAT, .f = f};
		return fe_val_describe(fx->a, &v);
	}
	return arena_printf(fx->a, "\"%.60s\"", text);
}

static const FeDefine *
find_define(const FeOptions *o, const char *name)
{
	const FeDefine *df = NULL;
	for (int k = 0; k < o->ndefines; k++)
		if (o->defines[k].name && !strcmp(o->defines[k].name, name))
			df = &o->defines[k];
	return df;
}

/* {"choices": ["T", "S", ...], "default": "T"}: the value is the index of the chosen name, the
 * recorded text is the name */
static int
choice_param(FeCtx *fx, const cJSON *c, const FeOptions *o, Loc at)
{
	static const char *const keys[] = {"choices", "default", NULL};
	Arena *ma = fx->m->arena;
	const cJSON *ch = cJSON_GetObjectItemCaseSensitive(c, "choices");
	const cJSON *def = cJSON_GetObjectItemCaseSensitive(c, "default");
	Loc cat = {at.file, fe_ptr(ma, at.ptr, "choices"), NULL};
	if (!ch)
		return diag_error(fx->d, at,
		                  "expected an integer, float, bool, list of numbers or "
		                  "{\"choices\": [names], \"default\": name}, got an object "
		                  "without \"choices\"");
	if (fe_check_keys(fx, c, at.file, at.ptr, NULL, "a choice param", keys) < 0)
		return -1;
	int n = cJSON_GetArraySize(ch);
	if (!cJSON_IsArray(ch) || n == 0 || n > FE_MAX_LIST)
		return diag_error(fx->d, cat, "expected a list of 1 to %d names, got %s",
		                  FE_MAX_LIST, fe_json_describe(fx->a, ch));
	const char **names = arena_zalloc(fx->a, (size_t)n * sizeof *names);
	char list[400];
	size_t k = 0;
	list[0] = 0;
	int i = 0;
	for (const cJSON *e = ch->child; e; e = e->next, i++) {
		Loc el = {at.file, fe_ptri(ma, cat.ptr, i), NULL};
		if (!cJSON_IsString(e) || !fe_valid_name(e->valuestring))
			return diag_error(fx->d, el,
			                  "expected a name of letters, digits, '_' and '.', got %s",
			                  fe_json_describe(fx->a, e));
		for (int j = 0; j < i; j++)
			if (!strcmp(names[j], e->valuestring))
				return diag_error(fx->d, el,
				                  "choice \"%.60s\" is listed twice, expected "
				                  "distinct names",
				                  e->valuestring);
		names[i] = e->valuestring;
		if (k < sizeof list)
			k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "",
			                      e->valuestring);
	}
	int pick = 0;
	if (def) {
		pick = -1;
		for (int j = 0; j < n && cJSON_IsString(def); j++)
			if (!strcmp(names[j], def->valuestring))
				pick = j;
		if (pick < 0)
			return diag_error(fx->d,
			                  (Loc){at.file, fe_ptr(ma, at.ptr, "default"), NULL},
			                  "default %s is not a choice, expected one of %s",
			                  fe_json_describe(fx->a, def), list);
	}
	const FeDefine *df = find_define(o, c->string);
	if (df) {
		const char *text = df->value ? df->value : "";
		pick = -1;
		for (int j = 0; j < n; j++)
			if (!strcmp(names[j], text))
				pick = j;
		if (pick < 0)
			return diag_error(fx->d, at, "-D %s=%.60s is not one of %s", c->string,
			                  text, list);
	}
	FeVal v = {.kind = FV_INT, .i = pick};
	fe_scope_set(fx->a, &fx->gparams, c->string, v);
	ir_add_param(fx->m, c->string, names[pick]);
	return 0;
}

int
fe_params(FeCtx *fx, const cJSON *params, const FeOptions *o)
{
	Arena *ma = fx->m->arena;
	Loc at = {fx->file, "/params", NULL};
	if (params && !cJSON_IsObject(params))
		return diag_error(fx->d, at, "expected an object of params, got %s",
		                  fe_json_describe(fx->a, params));
	/* every -D must name a param */
	for (int k = 0; k < o->ndefines; k++) {
		const FeDefine *df = &o->defines[k];
		if (params && df->name && cJSON_GetObjectItemCaseSensitive(params, df->name))
			continue;
		char list[400];
		size_t n = 0;
		list[0] = 0;
		for (const cJSON *c = params ? params->child : NULL; c && n < sizeof list;
		     c = c->next)
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
			                      c->string);
		if (!params)
			at.ptr = "";
		return diag_error(
		    fx->d, at, "unknown param '%.60s' in -D %.60s=%.60s, expected %s%s",
		    df->name ? df->name : "", df->name ? df->name : "", df->value ? df->value : "",
		    n ? "one of " : "no -D: the graph has no params", list);
	}
	for (const cJSON *c = params ? params->child : NULL; c; c = c->next) {
		at.ptr = fe_ptr(ma, "/params", c->string);
		if (!fe_is_ident(c->string) || fe_is_reserved(c->string))
			return diag_error(fx->d, at,
			                  "bad param name \"%.60s\", expected an identifier that "
			                  "is not a reserved word",
			                  c->string);
		FeVal v;
		if (cJSON_IsObject(c)) {
			if (choice_param(fx, c, o, at) < 0)
				return -1;
			continue;
		}
		if (cJSON_IsNull(c))
			return diag_error(fx->d, at,
			                  "expected an integer, float, bool, list of numbers or "
			                  "{\"choices\": [names], \"default\": name}, got %s",
			                  fe_json_describe(fx->a, c));
		if (fe_value(fx, c, &fx->gparams, at, "an integer, float, bool or list of numbers",
		             &v) < 0)
			return -1;
		const FeDefine *df = find_define(o, c->string);
		if (df) {
			const char *want = "";
			FeVal nv;
			const char *text = df->value ? df->value : "";
			if (parse_define(fx, text, &v, &nv, &want) < 0)
				return diag_error(fx->d, at, "-D %.60s=%.60s: expected %s, got %s",
				                  c->string, text, want, describe_text(fx, text));
			v = nv;
		}
		fe_scope_set(fx->a, &fx->gparams, c->string, v);
		ir_add_param(fx->m, c->string, fe_val_str(fx->a, &v));
	}
	return 0;
}

/* the recorded text of param name, lists with ", " between items */
static const char *
param_text(FeCtx *fx, const char *name)
{
	const char *t = "";
	for (uint32_t i = 0; i < fx->m->nparams; i++)
		if (!strcmp(fx->m->params[i].name, name))
			t = fx->m->params[i].value;
	size_t n = strlen(t), k = 0;
	char *buf = arena_alloc(fx->a, 2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		buf[k++] = t[i];
		if (t[i] == ',')
			buf[k++] = ' ';
	}
	buf[k] = 0;
	return buf;
}

int
fe_checks(FeCtx *fx, const cJSON *checks, const cJSON *params)
{
	static const char *const keys[] = {"expr", "param", "message", NULL};
	Arena *ma = fx->m->arena;
	if (!checks)
		return 0;
	if (!cJSON_IsArray(checks))
		return diag_error(fx->d, (Loc){fx->file, "/checks", NULL},
		                  "expected a list of checks, got %s",
		                  fe_json_describe(fx->a, checks));
	int i = 0;
	for (const cJSON *c = checks->child; c; c = c->next, i++) {
		const char *ptr = fe_ptri(ma, "/checks", i);
		if (fe_check_keys(fx, c, fx->file, ptr, NULL, "a check {expr, param, message}",
		                  keys) < 0)
			return -1;
		const cJSON *f[3];
		for (int k = 0; k < 3; k++) {
			f[k] = cJSON_GetObjectItemCaseSensitive(c, keys[k]);
			if (!f[k])
				return diag_error(fx->d, (Loc){fx->file, ptr, NULL},
				                  "check without \"%s\", expected a string",
				                  keys[k]);
			if (!cJSON_IsString(f[k]))
				return diag_error(
				    fx->d, (Loc){fx->file, fe_ptr(ma, ptr, keys[k]), NULL},
				    "expected a string, got %s", fe_json_describe(fx->a, f[k]));
		}
		const char *pname = f[1]->valuestring;
		if (!params || !cJSON_GetObjectItemCaseSensitive(params, pname))
			return diag_error(fx->d, (Loc){fx->file, fe_ptr(ma, ptr, "param"), NULL},
			                  "unknown param '%.60s', expected a graph param", pname);
		Loc eat = {fx->file, fe_ptr(ma, ptr, "expr"), NULL};
		char err[600];
		FeVal v;
		int rc = fe_expr_eval(fx->a, f[0]->valuestring, &fx->gparams, &v, err, sizeof err);
		if (rc == FE_EXPR_SYNTAX)
			return diag_error(fx->d, eat,
			                  "expected a condition, got %s (not an "
			                  "expression: %s)",
			                  fe_json_describe(fx->a, f[0]), err);
		if (rc == FE_EXPR_EVAL)
			return diag_error(fx->d, eat, "%s", err);
		if (v.kind == FV_LIST)
			return diag_error(fx->d, eat, "expected a condition, got %s",
			                  fe_val_describe(fx->a, &v));
		if (v.kind == FV_FLOAT ? v.f != 0 : v.i != 0)
			continue;
		return diag_error(fx->d, (Loc){fx->file, fe_ptr(ma, "/params", pname), NULL},
		                  "%s = %s: %s", pname, param_text(fx, pname), f[2]->valuestring);
	}
	return 0;
}
