/* frontend/load.c -- read a graph file, parse it with cJSON, load includes, run the phases.
 *
 * First stop of the pipeline: text -> cJSON trees (syntax errors as file:line:col, duplicate
 * keys, number literals marked int or float) -> params -> modules -> Module (expand.c).
 * The cJSON trees of the graph and of its includes are created here and deleted here. */
#include "fe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- small helpers shared by the other files ---- */

char *
fe_ptr(Arena *a, const char *base, const char *key)
{
	size_t n = strlen(base), k = strlen(key), j = n + 1;
	char *s = arena_alloc(a, n + 2 * k + 2);
	memcpy(s, base, n);
	s[n] = '/';
	for (size_t i = 0; i < k; i++) {
		if (key[i] == '~' || key[i] == '/') {
			s[j++] = '~';
			s[j++] = key[i] == '~' ? '0' : '1';
		} else {
			s[j++] = key[i];
		}
	}
	s[j] = 0;
	return s;
}

char *
fe_ptri(Arena *a, const char *base, int i)
{
	return arena_printf(a, "%s/%d", base, i);
}

Loc
fe_loc(FeCtx *fx, const char *file, const char *ptr, const char *via)
{
	Loc l = {file, ptr, via};
	return l;
}

const char *
fe_json_describe(Arena *a, const cJSON *j)
{
	if (!j)
		return "nothing";
	if (cJSON_IsString(j)) {
		size_t n = strlen(j->valuestring);
		return arena_printf(a, "string \"%.60s%s\"", j->valuestring, n > 60 ? "..." : "");
	}
	if (cJSON_IsBool(j))
		return cJSON_IsTrue(j) ? "bool true" : "bool false";
	if (cJSON_IsNull(j))
		return "null";
	if (cJSON_IsObject(j))
		return "an object";
	if (cJSON_IsArray(j))
		return arena_printf(a, "a list of %d", cJSON_GetArraySize(j));
	if (cJSON_IsNumber(j)) {
		FeVal v = {.kind = FV_FLOAT, .f = j->valuedouble};
		if (!(j->type & FE_JSON_FLOAT) && j->valuedouble >= -9e18 &&
		    j->valuedouble <= 9e18 && (double)(int64_t)j->valuedouble == j->valuedouble) {
			v.kind = FV_INT;
			v.i = (int64_t)j->valuedouble;
		}
		return fe_val_describe(a, &v);
	}
	return "an invalid value";
}

int
fe_check_keys(FeCtx *fx, const cJSON *j, const char *file, const char *ptr, const char *via,
              const char *what, const char *const *known)
{
	if (!cJSON_IsObject(j))
		return diag_error(fx->d, fe_loc(fx, file, ptr, via),
		                  "expected %s (an object), got %s", what,
		                  fe_json_describe(fx->a, j));
	for (const cJSON *c = j->child; c; c = c->next) {
		int ok = 0;
		for (int i = 0; known[i] && !ok; i++)
			ok = !strcmp(c->string, known[i]);
		if (ok)
			continue;
		char list[300];
		size_t k = 0;
		list[0] = 0;
		for (int i = 0; known[i] && k < sizeof list; i++)
			k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "",
			                      known[i]);
		return diag_error(
		    fx->d, fe_loc(fx, file, fe_ptr(fx->m->arena, ptr, c->string), via),
		    "unknown key \"%.60s\" in %s, expected one of %s", c->string, what, list);
	}
	return 0;
}

int
fe_valid_name(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

/* ---- JSON ---- */

/* Mark number nodes that were written as floats ("2.0", "1e-5"): cJSON keeps only the double,
 * but "scale": 2.0 must stay a float param.  Numbers appear in the text in the same order as
 * in a pre-order walk of the tree. */
static const char *
next_number(const char *p, const char *end, int *isf)
{
	while (p < end) {
		if (*p == '"') {
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\')
					p++;
			p++;
			continue;
		}
		if (*p == '-' || (*p >= '0' && *p <= '9')) {
			*isf = 0;
			while (p < end && (*p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
			                   *p == 'E' || (*p >= '0' && *p <= '9'))) {
				if (*p == '.' || *p == 'e' || *p == 'E')
					*isf = 1;
				p++;
			}
			return p;
		}
		p++;
	}
	return NULL;
}

static void
mark_floats(cJSON *j, const char **p, const char *end)
{
	for (; j; j = j->next) {
		if (cJSON_IsNumber(j) && *p) {
			int isf = 0;
			*p = next_number(*p, end, &isf);
			if (*p && isf)
				j->type |= FE_JSON_FLOAT;
		}
		if (j->child)
			mark_floats(j->child, p, end);
	}
}

/* first duplicate key in any object under j (at pointer ptr); returns its pointer or NULL */
static const char *
dup_key(Arena *a, const cJSON *j, const char *ptr, const char **key)
{
	int i = 0;
	if (cJSON_IsObject(j)) {
		for (const cJSON *c = j->child; c; c = c->next)
			for (const cJSON *e = j->child; e != c; e = e->next)
				if (!strcmp(c->string, e->string)) {
					*key = c->string;
					return fe_ptr(a, ptr, c->string);
				}
	}
	if (!cJSON_IsObject(j) && !cJSON_IsArray(j))
		return NULL;
	for (const cJSON *c = j->child; c; c = c->next, i++) {
		if (!cJSON_IsObject(c) && !cJSON_IsArray(c))
			continue;
		const char *r = dup_key(a, c,
		                        c->string && cJSON_IsObject(j) ? fe_ptr(a, ptr, c->string)
		                                                       : fe_ptri(a, ptr, i),
		                        key);
		if (r)
			return r;
	}
	return NULL;
}

/* Parse text into a tree, or NULL after one diagnostic (messages' pointers in a).  The caller
 * deletes the tree. */
cJSON *
fe_json_parse(Arena *a, Diag *d, const char *text, size_t len, const char *file)
{
	const char *end = NULL;
	Loc at = {file, NULL, NULL};
	const char *nul = memchr(text, 0, len);
	if (nul)
		len = (size_t)(nul - text);
	cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (j && end) {
		while (end < text + len &&
		       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
			end++;
		if (end < text + len) {
			cJSON_Delete(j);
			j = NULL;
		}
	}
	if (nul && j) {
		cJSON_Delete(j);
		j = NULL;
		end = nul;
	}
	if (!j) {
		if (!end || end < text || end > text + len)
			end = text + len;
		/* cJSON stops at or just past the offending byte: point at the last token before
		 * any whitespace, or at the end when only whitespace follows */
		const char *q = end;
		while (q < text + len && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
			q++;
		/* cJSON reports running out of text as the last byte */
		if (len > 0 && end == text + len - 1 && end != nul &&
		    ((*end >= '0' && *end <= '9') || (*end >= 'a' && *end <= 'z') || *end == '"'))
			q = text + len;
		if (q >= text + len && end != nul)
			end = text + len;
		else
			while (end > text &&
			       (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
				end--;
		int line = 1, col = 1;
		for (const char *p = text; p < end; p++) {
			if (*p == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		at.ptr = arena_printf(a, "%d:%d", line, col);
		if (end == nul)
			diag_error(d, at, "invalid JSON: a NUL byte, expected text");
		else if (end >= text + len)
			diag_error(
			    d, at,
			    "invalid JSON: unexpected end of file, expected a complete value");
		else if ((unsigned char)*end < 32 || (unsigned char)*end > 126)
			diag_error(d, at, "invalid JSON: unexpected byte 0x%02x",
			           (unsigned char)*end);
		else
			diag_error(d, at, "invalid JSON: unexpected '%c'", *end);
		return NULL;
	}
	const char *p = text;
	mark_floats(j, &p, text + len);
	const char *key = NULL, *dp = dup_key(a, j, "", &key);
	if (dp) {
		at.ptr = arena_strdup(a, dp);
		diag_error(d, at, "duplicate key \"%.60s\", expected each key once", key);
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* fe_json_parse, the tree owned by the load (FeCtx.trees) */
static cJSON *
parse_json(FeCtx *fx, const char *text, size_t len, const char *file)
{
	cJSON *j = fe_json_parse(fx->m->arena, fx->d, text, len, file);
	if (!j)
		return NULL;
	*ARENA_PUSH(fx->a, fx->trees, fx->ntrees, fx->captrees) = j;
	return j;
}

/* ---- includes ---- */

char *
fe_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	if (!f)
		return NULL;
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 28)) {
		fclose(f);
		errno = EINVAL;
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = 0;
	*len = n;
	return buf;
}

static const char *
dir_of(Arena *a, const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? arena_strndup(a, path, (size_t)(s - path)) : ".";
}

static int add_modules(FeCtx *fx, const cJSON *root, const char *file, const char *dir);

/* include = ["file.json", ...]: each file's modules join the graph's */
static int
load_includes(FeCtx *fx, const cJSON *inc, const char *file, const char *dir, const char *ptr)
{
	Arena *ma = fx->m->arena;
	Loc at = {file, ptr, NULL};
	if (!inc)
		return 0;
	if (!cJSON_IsArray(inc))
		return diag_error(fx->d, at, "expected a list of file names, got %s",
		                  fe_json_describe(fx->a, inc));
	int i = 0;
	for (const cJSON *c = inc->child; c; c = c->next, i++) {
		at.ptr = fe_ptri(ma, ptr, i);
		if (!cJSON_IsString(c) || !c->valuestring[0])
			return diag_error(fx->d, at, "expected a file name, got %s",
			                  fe_json_describe(fx->a, c));
		const char *name = c->valuestring, *path = NULL;
		char *text = NULL;
		size_t len = 0;
		if (name[0] == '/') {
			path = arena_strdup(ma, name);
			text = fe_read_file(path, &len);
		} else {
			path = arena_printf(ma, "%s/%s", fx->lib_dir, name);
			text = fe_read_file(path, &len);
			if (!text) {
				path = arena_printf(ma, "%s/%s", dir, name);
				text = fe_read_file(path, &len);
			}
		}
		if (!text)
			return diag_error(
			    fx->d, at,
			    "cannot read include \"%.100s\", expected a file in %s or %s", name,
			    fx->lib_dir, dir);
		char *real = realpath(path, NULL);
		const char *key = arena_strdup(fx->a, real ? real : path);
		free(real);
		for (int k = 0; k < fx->incdepth; k++) {
			if (!strcmp(fx->incstack[k], key)) {
				free(text);
				return diag_error(fx->d, at,
				                  "include cycle: \"%.100s\" includes itself, "
				                  "expected includes without cycles",
				                  name);
			}
		}
		int seen = 0;
		for (uint32_t k = 0; k < fx->nincfiles && !seen; k++)
			seen = !strcmp(fx->incfiles[k], key);
		if (seen) {
			free(text);
			continue;
		}
		if (fx->incdepth >= FE_MAX_INCLUDE_DEPTH) {
			free(text);
			return diag_error(fx->d, at, "includes nested more than %d deep",
			                  FE_MAX_INCLUDE_DEPTH);
		}
		*ARENA_PUSH(fx->a, fx->incfiles, fx->nincfiles, fx->capincfiles) = key;
		cJSON *root = parse_json(fx, text, len, path);
		free(text);
		if (!root)
			return -1;
		static const char *const keys[] = {"format", "description", "include", "modules",
		                                   NULL};
		if (fe_check_keys(fx, root, path, "", NULL, "an include file", keys) < 0)
			return -1;
		const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
		if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "segc-graph/1"))
			return diag_error(fx->d, fe_loc(fx, path, fmt ? "/format" : "", NULL),
			                  "unsupported format %s, expected \"segc-graph/1\"",
			                  fe_json_describe(fx->a, fmt));
		fx->incstack[fx->incdepth++] = key;
		int rc = add_modules(fx, root, path, dir_of(ma, path));
		fx->incdepth--;
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* modules = {name: {params?, inputs, body, outputs, description?}}; checked shallowly here,
 * so that an unused module with a typo is reported too */
static int
add_modules(FeCtx *fx, const cJSON *root, const char *file, const char *dir)
{
	Arena *ma = fx->m->arena;
	if (load_includes(fx, cJSON_GetObjectItemCaseSensitive(root, "include"), file, dir,
	                  "/include") < 0)
		return -1;
	const cJSON *mods = cJSON_GetObjectItemCaseSensitive(root, "modules");
	if (!mods)
		return 0;
	if (!cJSON_IsObject(mods))
		return diag_error(fx->d, fe_loc(fx, file, "/modules", NULL),
		                  "expected an object of modules, got %s",
		                  fe_json_describe(fx->a, mods));
	for (const cJSON *c = mods->child; c; c = c->next) {
		static const char *const keys[] = {"description", "params",  "inputs",
		                                   "body",        "outputs", NULL};
		const char *ptr = fe_ptr(ma, "/modules", c->string);
		Loc at = {file, ptr, NULL};
		if (!fe_is_ident(c->string))
			return diag_error(fx->d, at,
			                  "bad module name \"%.60s\", expected letters, digits "
			                  "and '_'",
			                  c->string);
		if (fe_check_keys(fx, c, file, ptr, NULL, "a module", keys) < 0)
			return -1;
		for (uint32_t k = 0; k < fx->nmods; k++)
			if (!strcmp(fx->mods[k].name, c->string))
				return diag_error(fx->d, at,
				                  "module '%s' is defined twice (also in %s), "
				                  "expected one definition",
				                  c->string, fx->mods[k].file);
		static const char *const need[] = {"inputs", "body", "outputs"};
		for (int k = 0; k < 3; k++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, need[k]);
			if (!v)
				return diag_error(fx->d, at,
				                  "module '%s' has no \"%s\", expected a list",
				                  c->string, need[k]);
			if (!cJSON_IsArray(v))
				return diag_error(
				    fx->d, fe_loc(fx, file, fe_ptr(ma, ptr, need[k]), NULL),
				    "expected a list, got %s", fe_json_describe(fx->a, v));
			if (k == 1)
				continue;
			int i = 0;
			for (const cJSON *s = v->child; s; s = s->next, i++)
				if (!cJSON_IsString(s) || !fe_is_ident(s->valuestring))
					return diag_error(
					    fx->d,
					    fe_loc(fx, file,
					           fe_ptri(ma, fe_ptr(ma, ptr, need[k]), i), NULL),
					    "expected a value name, got %s",
					    fe_json_describe(fx->a, s));
		}
		const cJSON *ps = cJSON_GetObjectItemCaseSensitive(c, "params");
		if (ps && !cJSON_IsObject(ps))
			return diag_error(fx->d, fe_loc(fx, file, fe_ptr(ma, ptr, "params"), NULL),
			                  "expected an object of params, got %s",
			                  fe_json_describe(fx->a, ps));
		for (const cJSON *p = ps ? ps->child : NULL; p; p = p->next)
			if (!fe_is_ident(p->string) || fe_is_reserved(p->string))
				return diag_error(
				    fx->d,
				    fe_loc(fx, file,
				           fe_ptr(ma, fe_ptr(ma, ptr, "params"), p->string), NULL),
				    "bad param name \"%.60s\", expected an "
				    "identifier that is not a reserved word",
				    p->string);
		FeModDef *md = ARENA_PUSH(fx->a, fx->mods, fx->nmods, fx->capmods);
		md->name = arena_strdup(ma, c->string);
		md->def = c;
		md->file = file;
		md->ptr = ptr;
	}
	return 0;
}

/* ---- entry points ---- */

static int
load_root(FeCtx *fx, cJSON *root, const FeOptions *o)
{
	static const char *const keys[] = {"format", "name",    "description", "include",
	                                   "params", "checks",  "inputs",      "modules",
	                                   "body",   "outputs", NULL};
	Module *m = fx->m;
	if (fe_check_keys(fx, root, fx->file, "", NULL, "a graph", keys) < 0)
		return -1;
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
	if (!fmt)
		return diag_error(fx->d, fe_loc(fx, fx->file, "", NULL),
		                  "missing key \"format\", expected \"segc-graph/1\"");
	if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "segc-graph/1"))
		return diag_error(fx->d, fe_loc(fx, fx->file, "/format", NULL),
		                  "unsupported format %s, expected \"segc-graph/1\"",
		                  fe_json_describe(fx->a, fmt));
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (!name)
		return diag_error(fx->d, fe_loc(fx, fx->file, "", NULL),
		                  "missing key \"name\", expected the graph's name");
	if (!cJSON_IsString(name) || !fe_valid_name(name->valuestring))
		return diag_error(fx->d, fe_loc(fx, fx->file, "/name", NULL),
		                  "expected a graph name of letters, digits, '_' and '.', got %s",
		                  fe_json_describe(fx->a, name));
	m->name = arena_strdup(m->arena, name->valuestring);
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(root, "description");
	if (desc && !cJSON_IsString(desc))
		return diag_error(fx->d, fe_loc(fx, fx->file, "/description", NULL),
		                  "expected a string, got %s", fe_json_describe(fx->a, desc));
	m->description = desc ? arena_strdup(m->arena, desc->valuestring) : NULL;
	char *real = realpath(fx->file, NULL);
	fx->incstack[fx->incdepth++] = arena_strdup(fx->a, real ? real : fx->file);
	free(real);
	if (add_modules(fx, root, fx->file, fx->dir) < 0)
		return -1;
	if (fe_params(fx, cJSON_GetObjectItemCaseSensitive(root, "params"), o) < 0)
		return -1;
	if (fe_checks(fx, cJSON_GetObjectItemCaseSensitive(root, "checks"),
	              cJSON_GetObjectItemCaseSensitive(root, "params")) < 0)
		return -1;
	return fe_graph(fx, root);
}

Module *
fe_load_text(const char *text, size_t len, const char *path, const FeOptions *o, Diag *d)
{
	static const FeOptions none;
	FeCtx fx;
	if (op_init() < 0)
		diag_internal(__FILE__, __LINE__, "op table is malformed");
	if (!o)
		o = &none;
	memset(&fx, 0, sizeof fx);
	fx.a = arena_new();
	fx.d = d;
	fx.m = ir_module_new("graph");
	fx.m->file = arena_strdup(fx.m->arena, path ? path : "<graph>");
	fx.file = fx.m->file;
	fx.dir = dir_of(fx.m->arena, fx.file);
	fx.lib_dir = o->lib_dir ? arena_strdup(fx.m->arena, o->lib_dir)
	                        : arena_printf(fx.m->arena, "%s/lib", fx.dir);
	int errs = d->nerrors;
	int rc = -1;
	cJSON *root = parse_json(&fx, text ? text : "", text ? len : 0, fx.file);
	if (root)
		rc = load_root(&fx, root, o);
	for (uint32_t i = fx.ntrees; i-- > 0;)
		cJSON_Delete(fx.trees[i]);
	arena_free(fx.a);
	if (rc < 0 || d->nerrors > errs) {
		ir_module_free(fx.m);
		return NULL;
	}
	return fx.m;
}

Module *
fe_load(const char *path, const FeOptions *o, Diag *d)
{
	size_t len = 0;
	char *text = fe_read_file(path, &len);
	if (!text) {
		Loc at = {path, NULL, NULL};
		diag_error(d, at, "cannot read the graph: %s", strerror(errno ? errno : EINVAL));
		return NULL;
	}
	Module *m = fe_load_text(text, len, path, o, d);
	free(text);
	return m;
}
