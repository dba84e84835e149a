/* frontend/tune.c -- a segc-tune/1 file (docs/tune.md) into a TuneTable (ir/tune.h).
 *
 *   {"format": "segc-tune/1", "target": "cuda:sm_90", "precision": "bf16",
 *    "device": "NVIDIA H100 80GB HBM3",
 *    "kernels": [{"key": "conv3d(...)->...{...} +add", "knobs": {"SEGC_MMA_HALO": "1"},
 *                 "kernel": "k3_conv3d", "graph": "graphs/unet3d.json",
 *                 "ms": 0.41, "base_ms": 0.58}]}
 *
 * The file is untrusted input: every member is checked, the first error is one line with the
 * file and a JSON pointer (tests/diag/tune_*, tests/fuzz/fuzz_tune.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"

enum {
	TUNE_MAX_ENTRIES = 10000,
	TUNE_MAX_KNOBS = 32, /* knobs of one entry */
	TUNE_MAX_KEY = 4096, /* characters of a key */
	TUNE_MAX_VALUE = 64, /* characters of a knob value */
};

typedef struct {
	Arena *a;
	Diag *d;
	const char *file;
} TuneCtx;

static int
err_at(TuneCtx *c, const char *ptr, const char *msg)
{
	Loc l = {c->file, ptr, NULL};
	return diag_error(c->d, l, "%s", msg);
}

/* printable ASCII without control characters; 1 if s[0..n) is */
static int
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || (unsigned char)*s > 126)
			return 0;
	return 1;
}

/* a knob value: [A-Za-z0-9_.,x:+-]{1,64} */
static int
value_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > TUNE_MAX_VALUE)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.,:+-", *s)))
			return 0;
	return 1;
}

/* member name of object j that is not in the NULL-terminated list ok, or NULL */
static const cJSON *
unknown_member(const cJSON *j, const char *const *ok)
{
	for (const cJSON *m = j->child; m; m = m->next) {
		int found = 0;
		for (int i = 0; ok[i] && !found; i++)
			found = !strcmp(m->string, ok[i]);
		if (!found)
			return m;
	}
	return NULL;
}

static int
entry(TuneCtx *c, const cJSON *j, const char *ptr, const char *target, FeKnobCheck check,
      TuneEntry *e)
{
	static const char *const members[] = {"key",     "knobs", "kernel",  "graph",
	                                      "variant", "ms",    "base_ms", NULL};
	const cJSON *m;

	if (!cJSON_IsObject(j))
		return err_at(c, ptr,
		              arena_printf(c->a,
		                           "%s, expected an object with \"key\" and \"knobs\"",
		                           fe_json_describe(c->a, j)));
	if ((m = unknown_member(j, members)))
		return err_at(c, fe_ptr(c->a, ptr, m->string),
		              "unknown member, expected key, knobs, kernel, graph, variant, ms or "
		              "base_ms");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
	const char *kp = fe_ptr(c->a, ptr, "key");
	if (!key)
		return err_at(c, ptr, "no \"key\", expected the kernel's key (segc --emit=keys)");
	if (!cJSON_IsString(key) || !key->valuestring[0] ||
	    strlen(key->valuestring) > TUNE_MAX_KEY || !printable(key->valuestring))
		return err_at(c, kp,
		              arena_printf(c->a,
		                           "%s, expected a kernel key: one line of at most %d "
		                           "printable characters",
		                           fe_json_describe(c->a, key), TUNE_MAX_KEY));
	e->key = arena_strdup(c->a, key->valuestring);
	for (const char *const *s = (const char *const[]){"kernel", "graph", "variant", NULL}; *s;
	     s++) {
		m = cJSON_GetObjectItemCaseSensitive(j, *s);
		if (m && (!cJSON_IsString(m) || strlen(m->valuestring) > TUNE_MAX_KEY))
			return err_at(
			    c, fe_ptr(c->a, ptr, *s),
			    arena_printf(c->a, "%s, expected a string", fe_json_describe(c->a, m)));
	}
	for (const char *const *s = (const char *const[]){"ms", "base_ms", NULL}; *s; s++) {
		m = cJSON_GetObjectItemCaseSensitive(j, *s);
		if (m && (!cJSON_IsNumber(m) || !(m->valuedouble >= 0) || m->valuedouble > 1e12))
			return err_at(c, fe_ptr(c->a, ptr, *s),
			              arena_printf(c->a,
			                           "%s, expected milliseconds (a number >= 0)",
			                           fe_json_describe(c->a, m)));
	}
	const cJSON *knobs = cJSON_GetObjectItemCaseSensitive(j, "knobs");
	const char *np = fe_ptr(c->a, ptr, "knobs");
	if (!knobs)
		return err_at(c, ptr, "no \"knobs\", expected an object of knob names and values");
	if (!cJSON_IsObject(knobs))
		return err_at(c, np,
		              arena_printf(c->a, "%s, expected an object of knob names and values",
		                           fe_json_describe(c->a, knobs)));
	int n = cJSON_GetArraySize(knobs);
	if (n > TUNE_MAX_KNOBS)
		return err_at(
		    c, np, arena_printf(c->a, "%d knobs, expected at most %d", n, TUNE_MAX_KNOBS));
	TuneKnob *k = arena_zalloc(c->a, ((size_t)n + 1) * sizeof *k);
	int i = 0;
	for (m = knobs->child; m; m = m->next, i++) {
		const char *mp = fe_ptr(c->a, np, m->string);
		if (check && check(m->string, NULL, target))
			return err_at(c, mp,
			              arena_printf(c->a,
			                           "\"%.60s\" is not a per-kernel knob for %s, "
			                           "expected one of the knobs docs/tune.md lists",
			                           m->string, target));
		if (!cJSON_IsString(m) || !value_ok(m->valuestring))
			return err_at(c, mp,
			              arena_printf(c->a,
			                           "%s, expected a knob value: a string of 1 to %d "
			                           "letters, digits or _.,:+-, such as \"1\"",
			                           fe_json_describe(c->a, m), TUNE_MAX_VALUE));
		const char *want = check ? check(m->string, m->valuestring, target) : NULL;
		if (want)
			return err_at(c, mp,
			              arena_printf(c->a, "%s, expected %s",
			                           fe_json_describe(c->a, m), want));
		k[i].name = arena_strdup(c->a, m->string);
		k[i].value = arena_strdup(c->a, m->valuestring);
	}
	e->knobs = k;
	e->nknobs = n;
	return 0;
}

static int
table(TuneCtx *c, const cJSON *j, FeKnobCheck check, TuneTable *t)
{
	static const char *const members[] = {"format", "target",  "precision", "device",
	                                      "note",   "kernels", NULL};
	static const char *const targets[] = {"cpu", "cuda:sm_90", "cuda:sm_80", NULL};
	static const char *const precisions[] = {"fp32", "tf32", "bf16", NULL};
	const cJSON *m;

	if (!cJSON_IsObject(j))
		return err_at(c, "",
		              arena_printf(c->a, "%s, expected a segc-tune/1 object",
		                           fe_json_describe(c->a, j)));
	if ((m = unknown_member(j, members)))
		return err_at(c, fe_ptr(c->a, "", m->string),
		              "unknown member, expected format, target, precision, device, note or "
		              "kernels");
	m = cJSON_GetObjectItemCaseSensitive(j, "format");
	if (!m || !cJSON_IsString(m) || strcmp(m->valuestring, "segc-tune/1"))
		return err_at(c, m ? "/format" : "",
		              arena_printf(c->a, "%s, expected \"format\": \"segc-tune/1\"",
		                           m ? fe_json_describe(c->a, m) : "no format"));
	const char *const *lists[] = {targets, precisions};
	const char *names[] = {"target", "precision"};
	const char **out[] = {&t->target, &t->precision};
	for (int f = 0; f < 2; f++) {
		m = cJSON_GetObjectItemCaseSensitive(j, names[f]);
		int ok = 0;
		for (int i = 0; m && cJSON_IsString(m) && lists[f][i] && !ok; i++)
			ok = !strcmp(m->valuestring, lists[f][i]);
		if (!ok)
			return err_at(
			    c, m ? fe_ptr(c->a, "", names[f]) : "",
			    arena_printf(c->a, "%s, expected \"%s\": %s",
			                 m ? fe_json_describe(c->a, m)
			                   : arena_printf(c->a, "no %s", names[f]),
			                 names[f],
			                 f ? "\"fp32\", \"tf32\" or \"bf16\""
			                   : "\"cpu\", \"cuda:sm_90\" or \"cuda:sm_80\""));
		*out[f] = arena_strdup(c->a, m->valuestring);
	}
	for (const char *const *s = (const char *const[]){"device", "note", NULL}; *s; s++) {
		m = cJSON_GetObjectItemCaseSensitive(j, *s);
		if (m && !cJSON_IsString(m))
			return err_at(
			    c, fe_ptr(c->a, "", *s),
			    arena_printf(c->a, "%s, expected a string", fe_json_describe(c->a, m)));
	}
	const cJSON *ks = cJSON_GetObjectItemCaseSensitive(j, "kernels");
	if (!ks || !cJSON_IsArray(ks))
		return err_at(c, ks ? "/kernels" : "",
		              arena_printf(c->a, "%s, expected \"kernels\": an array of entries",
		                           ks ? fe_json_describe(c->a, ks) : "no kernels"));
	int n = cJSON_GetArraySize(ks);
	if (n > TUNE_MAX_ENTRIES)
		return err_at(
		    c, "/kernels",
		    arena_printf(c->a, "%d entries, expected at most %d", n, TUNE_MAX_ENTRIES));
	TuneEntry *e = arena_zalloc(c->a, ((size_t)n + 1) * sizeof *e);
	int i = 0;
	for (m = ks->child; m; m = m->next, i++) {
		const char *ptr = fe_ptri(c->a, "/kernels", i);
		if (entry(c, m, ptr, t->target, check, &e[i]) < 0)
			return -1;
		for (int k = 0; k < i; k++)
			if (!strcmp(e[k].key, e[i].key))
				return err_at(
				    c, fe_ptr(c->a, ptr, "key"),
				    arena_printf(c->a,
				                 "the key of /kernels/%d again, expected each "
				                 "kernel key once",
				                 k));
	}
	t->e = e;
	t->n = n;
	return 0;
}

int
fe_tune_load_text(const char *text, size_t len, const char *path, Arena *a, FeKnobCheck check,
                  TuneTable *t, Diag *d)
{
	TuneCtx c = {a, d, path};
	memset(t, 0, sizeof *t);
	cJSON *j = fe_json_parse(a, d, text, len, path);
	if (!j)
		return -1;
	int rc = table(&c, j, check, t);
	cJSON_Delete(j);
	if (rc < 0)
		memset(t, 0, sizeof *t);
	return rc;
}

int
fe_tune_load(const char *path, Arena *a, FeKnobCheck check, TuneTable *t, Diag *d)
{
	size_t len = 0;
	char *text = fe_read_file(path, &len);
	if (!text) {
		Loc l = {path, NULL, NULL};
		memset(t, 0, sizeof *t);
		return diag_error(d, l,
		                  "cannot read the tuning file: %s, expected a segc-tune/1 file",
		                  strerror(errno));
	}
	int rc = fe_tune_load_text(text, len, path, a, check, t, d);
	free(text);
	return rc;
}
