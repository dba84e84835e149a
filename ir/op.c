/* ir/op.c -- the op table generated from ops.def, and its schema parser.
 *
 * op_init() parses every operand and attribute schema string once; a malformed row is a
 * bug in segc and makes op_init() fail loudly (a unit test calls it). */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

OpInfo optab[OP_COUNT] = {
#define OP(nm, operands, nout_, cls_, attrs_, shp, cst)                                            \
	[OP_##nm] = {#nm, operands, attrs_, nout_, FUSE_##cls_, shape_##shp, cost_##cst,           \
	             0,   0,        0,      0},
#include "ops.def"
};

static int initialised;

static int
bad(const char *op, const char *what, const char *word)
{
	fprintf(stderr, "segc: internal error: ops.def row '%s': %s '%s'\n", op, what, word);
	return -1;
}

/* parse a default value text for spec s into s->def */
static int
parse_default(const char *op, AttrSpec *s, const char *txt)
{
	Attr *a = &s->def;
	char *end;
	a->type = s->type;
	a->present = 1;
	switch (s->type) {
	case AT_INT:
		a->i = strtoll(txt, &end, 10);
		return *end ? bad(op, "bad int default", txt) : 0;
	case AT_BOOL:
		if (!strcmp(txt, "1") || !strcmp(txt, "true"))
			a->i = 1;
		else if (!strcmp(txt, "0") || !strcmp(txt, "false"))
			a->i = 0;
		else
			return bad(op, "bad bool default", txt);
		return 0;
	case AT_FLOAT:
		a->f = strtod(txt, &end);
		return *end ? bad(op, "bad float default", txt) : 0;
	case AT_STR:
		a->s = strdup(txt);
		return 0;
	case AT_INTS:
	case AT_FLOATS: {
		int n = s->count;
		if (txt[0] == '[') {
			/* "[]" or "[1,2,3]" */
			n = 0;
			for (const char *p = txt + 1; *p && *p != ']'; p++)
				if (p == txt + 1 || *p == ',')
					n++;
		}
		a->n = (uint16_t)n;
		a->ints = calloc((size_t)n + 1, sizeof *a->ints);
		a->floats = calloc((size_t)n + 1, sizeof *a->floats);
		const char *p = txt[0] == '[' ? txt + 1 : txt;
		for (int i = 0; i < n; i++) {
			double v = strtod(p, &end);
			a->ints[i] = (int64_t)v;
			a->floats[i] = v;
			if (txt[0] == '[') {
				p = end;
				if (*p == ',')
					p++;
			}
		}
		return 0;
	}
	}
	return bad(op, "bad type", txt);
}

static int
parse_attrs(OpInfo *oi)
{
	char buf[512];
	int n = 0;
	AttrSpec tmp[32];

	snprintf(buf, sizeof buf, "%s", oi->attrs);
	for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
		AttrSpec *s = &tmp[n++];
		memset(s, 0, sizeof *s);
		char *colon = strchr(w, ':');
		if (!colon)
			return bad(oi->name, "attribute without type", w);
		*colon = 0;
		s->key = strdup(w);
		char *t = colon + 1, *eq = strchr(t, '=');
		if (eq)
			*eq = 0;
		size_t tl = strlen(t);
		if (tl && t[tl - 1] == '?') {
			s->optional = 1;
			t[--tl] = 0;
		}
		switch (t[0]) {
		case 'i':
			s->type = t[1] ? AT_INTS : AT_INT;
			break;
		case 'f':
			s->type = t[1] ? AT_FLOATS : AT_FLOAT;
			break;
		case 'b':
			s->type = AT_BOOL;
			break;
		case 's':
			s->type = AT_STR;
			break;
		default:
			return bad(oi->name, "unknown attribute type", t);
		}
		if (t[1] && t[1] != '*')
			s->count = (uint8_t)atoi(t + 1);
		if (eq) {
			s->has_default = 1;
			if (parse_default(oi->name, s, eq + 1) < 0)
				return -1;
		}
	}
	oi->nattrs = (uint8_t)n;
	oi->schema = calloc((size_t)n + 1, sizeof *oi->schema);
	memcpy(oi->schema, tmp, (size_t)n * sizeof *tmp);
	return 0;
}

static int
parse_operands(OpInfo *oi)
{
	char buf[512];
	int n = 0;
	OperandSpec tmp[16];

	snprintf(buf, sizeof buf, "%s", oi->operands);
	for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
		OperandSpec *s = &tmp[n++];
		memset(s, 0, sizeof *s);
		s->when = -1;
		if (*w == '%') {
			s->param = 1;
			w++;
		}
		char *q = strchr(w, '?');
		if (q) {
			*q = 0;
			int ai = -1;
			for (int i = 0; i < oi->nattrs; i++)
				if (!strcmp(oi->schema[i].key, q + 1))
					ai = i;
			if (ai < 0 || oi->schema[ai].type != AT_BOOL)
				return bad(oi->name, "operand condition is not a bool attribute",
				           q + 1);
			s->when = (int8_t)ai;
		}
		size_t l = strlen(w);
		if (l && w[l - 1] == '*') {
			s->variadic = 1;
			w[l - 1] = 0;
		}
		s->name = strdup(w);
	}
	for (int i = 0; i + 1 < n; i++)
		if (tmp[i].variadic)
			return bad(oi->name, "variadic operand not last", tmp[i].name);
	oi->noperands = (uint8_t)n;
	oi->opspec = calloc((size_t)n + 1, sizeof *oi->opspec);
	memcpy(oi->opspec, tmp, (size_t)n * sizeof *tmp);
	return 0;
}

int
op_init(void)
{
	if (initialised)
		return 0;
	for (int i = 0; i < OP_COUNT; i++) {
		if (parse_attrs(&optab[i]) < 0 || parse_operands(&optab[i]) < 0)
			return -1;
	}
	initialised = 1;
	return 0;
}

int
op_lookup(const char *name)
{
	for (int i = 0; i < OP_COUNT; i++)
		if (!strcmp(optab[i].name, name))
			return i;
	return -1;
}

int
op_attr_index(int op, const char *key)
{
	const OpInfo *oi = &optab[op];
	for (int i = 0; i < oi->nattrs; i++)
		if (!strcmp(oi->schema[i].key, key))
			return i;
	return -1;
}
