/* ir/parse.c -- read the text form written by ir/print.c back into a Module.
 *
 *   file    = header line*
 *   header  = "; segc-ir/1" name          (rest of the line ignored; comment lines before it too)
 *   line    = [param | output | node] [";" comment]     (blank lines and comments skipped)
 *   param   = "param" string string
 *   output  = "output" string value
 *   node    = result {"," result} "=" op [operand {"," operand}] ["{" {key "=" attr} "}"]
 *   result  = value ":" type         type = dtype "[" [dim {"," dim} | "?"] "]"
 *   operand = value | "_"            value = "%" digits
 *   attr    = int | float | "true" | "false" | string | "[" [number {"," number}] "]"
 *
 * Nodes go through the builder, so every shape rule runs and the types written in the text
 * are checked against the inferred ones.  Errors are "file:line:col: error: ..." (Loc.ptr is
 * "line:col"); the first error stops the parse. */
#include "ir.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TS 160

typedef struct {
	const char *s;   /* the text */
	const char *p;   /* cursor */
	const char *bol; /* beginning of the current line */
	int line;
	const char *file;
	Module *m;
	Diag *d;
	ValueId *map; /* display number -> ValueId (0: not defined) */
	uint32_t nmap;
} Parser;

static Loc
here(Parser *ps, const char *at)
{
	Loc l = { ps->file, NULL, NULL };
	l.ptr = arena_printf(ps->m->arena, "%d:%d", ps->line, (int)(at - ps->bol) + 1);
	return l;
}

#define perr(ps, at, ...) diag_error((ps)->d, here((ps), (at)), __VA_ARGS__)

static void
skip_ws(Parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r')
		ps->p++;
}

/* at the end of the line: skips a trailing comment, stays before the newline */
static int
at_eol(Parser *ps)
{
	skip_ws(ps);
	if (*ps->p == ';')
		while (*ps->p && *ps->p != '\n')
			ps->p++;
	return *ps->p == '\n' || *ps->p == 0;
}

static int
expect(Parser *ps, char c)
{
	skip_ws(ps);
	if (*ps->p != c)
		return perr(ps, ps->p, "expected '%c'", c);
	ps->p++;
	return 0;
}

static int
isword(int c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '-';
}

/* a bare word into the arena; NULL (after an error) if there is none */
static char *
word(Parser *ps, const char *what)
{
	skip_ws(ps);
	const char *b = ps->p;
	while (isword((unsigned char)*ps->p))
		ps->p++;
	if (ps->p == b) {
		perr(ps, b, "expected %s", what);
		return NULL;
	}
	return arena_strndup(ps->m->arena, b, (size_t)(ps->p - b));
}

static int
hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* "..." with \" \\ \n \t \xHH into the arena */
static char *
string(Parser *ps)
{
	skip_ws(ps);
	if (*ps->p != '"') {
		perr(ps, ps->p, "expected a string in double quotes");
		return NULL;
	}
	const char *start = ps->p++;
	size_t n = 0, cap = 16;
	char *buf = arena_alloc(ps->m->arena, cap);
	for (;;) {
		int c = (unsigned char)*ps->p;
		if (c == 0 || c == '\n') {
			perr(ps, start, "unterminated string");
			return NULL;
		}
		ps->p++;
		if (c == '"')
			break;
		if (c == '\\') {
			int e = (unsigned char)*ps->p++;
			if (e == 'n')
				c = '\n';
			else if (e == 't')
				c = '\t';
			else if (e == '"' || e == '\\')
				c = e;
			else if (e == 'x' && isxdigit((unsigned char)ps->p[0]) &&
			         isxdigit((unsigned char)ps->p[1]) &&
			         (ps->p[0] != '0' || ps->p[1] != '0')) {
				c = hexval((unsigned char)ps->p[0]) * 16 +
				    hexval((unsigned char)ps->p[1]);
				ps->p += 2;
			} else {
				perr(ps, ps->p - 2,
				     "bad escape in string, expected \\\" \\\\ \\n \\t or \\xHH");
				return NULL;
			}
		}
		if (n + 1 >= cap) {
			char *nb = arena_alloc(ps->m->arena, cap * 2);
			memcpy(nb, buf, n);
			buf = nb;
			cap *= 2;
		}
		buf[n++] = (char)c;
	}
	buf[n] = 0;
	return buf;
}

static int
integer(Parser *ps, int64_t *out)
{
	skip_ws(ps);
	char *end;
	errno = 0;
	long long v = strtoll(ps->p, &end, 10);
	if (end == ps->p || errno || *end == '.' || *end == 'e' || *end == 'E')
		return perr(ps, ps->p, "expected an integer");
	ps->p = end;
	*out = v;
	return 0;
}

static int
number(Parser *ps, double *out)
{
	skip_ws(ps);
	char *end;
	double v = strtod(ps->p, &end);
	if (end == ps->p)
		return perr(ps, ps->p, "expected a number");
	ps->p = end;
	*out = v;
	return 0;
}

/* "%N" -> N */
static int
display_id(Parser *ps, uint32_t *out)
{
	skip_ws(ps);
	const char *at = ps->p;
	if (*ps->p != '%' || !isdigit((unsigned char)ps->p[1]))
		return perr(ps, at, "expected a value %%N");
	ps->p++;
	int64_t v;
	if (integer(ps, &v) < 0 || v < 1 || v > 100000000)
		return perr(ps, at, "value number out of range, expected 1..100000000");
	*out = (uint32_t)v;
	return 0;
}

/* a use of %N: must be defined above */
static int
use(Parser *ps, ValueId *out)
{
	skip_ws(ps);
	const char *at = ps->p;
	uint32_t k;
	if (display_id(ps, &k) < 0)
		return -1;
	if (k >= ps->nmap || !ps->map[k])
		return perr(ps, at, "%%%u is not defined above, expected a defined value", k);
	*out = ps->map[k];
	return 0;
}

static int
define(Parser *ps, const char *at, uint32_t k, ValueId v)
{
	if (k >= ps->nmap) {
		uint32_t nn = ps->nmap ? ps->nmap : 64;
		while (nn <= k)
			nn *= 2;
		ValueId *nm = arena_zalloc(ps->m->arena, nn * sizeof *nm);
		if (ps->nmap)
			memcpy(nm, ps->map, ps->nmap * sizeof *nm);
		ps->map = nm;
		ps->nmap = nn;
	}
	if (ps->map[k])
		return perr(ps, at, "%%%u is defined twice, expected one definition", k);
	ps->map[k] = v;
	return 0;
}

static int
type(Parser *ps, Type *t)
{
	skip_ws(ps);
	const char *at = ps->p;
	char *dt = word(ps, "a dtype");
	if (!dt)
		return -1;
	int k = dtype_lookup(dt);
	if (k < 0)
		return perr(ps, at, "unknown dtype '%s', expected f32, f16, bf16, i32, i64 or u8",
		            dt);
	memset(t, 0, sizeof *t);
	t->dtype = (uint8_t)k;
	if (*ps->p != '[')
		return perr(ps, ps->p, "expected '[' after the dtype");
	ps->p++;
	if (*ps->p == '?') {
		ps->p++;
		t->rank = -1;
		return expect(ps, ']');
	}
	skip_ws(ps);
	if (*ps->p == ']') {
		ps->p++;
		return 0;
	}
	int64_t numel = 1;
	for (;;) {
		int64_t v;
		if (t->rank == IR_MAXRANK)
			return perr(ps, ps->p, "too many dims, expected at most %d", IR_MAXRANK);
		if (integer(ps, &v) < 0)
			return -1;
		if (v < 0 || v > ((int64_t)1 << 31))
			return perr(ps, ps->p, "dim %lld out of range, expected 0..2^31",
			            (long long)v);
		t->dims[t->rank++] = v;
		numel *= v ? v : 1;
		if (numel > ((int64_t)1 << 50))
			return perr(ps, ps->p, "type too large, expected fewer than 2^50 elements");
		skip_ws(ps);
		if (*ps->p == ']') {
			ps->p++;
			return 0;
		}
		if (expect(ps, ',') < 0)
			return -1;
	}
}

/* one attribute value of schema type s->type into a */
static int
attr_value(Parser *ps, const AttrSpec *s, Attr *a)
{
	skip_ws(ps);
	const char *at = ps->p;
	a->type = s->type;
	a->present = 1;
	switch (s->type) {
	case AT_INT:
		return integer(ps, &a->i);
	case AT_FLOAT:
		return number(ps, &a->f);
	case AT_BOOL: {
		char *w = word(ps, "true or false");
		if (!w)
			return -1;
		if (strcmp(w, "true") && strcmp(w, "false"))
			return perr(ps, at, "'%s' for bool attribute '%s', expected true or false",
			            w, s->key);
		a->i = !strcmp(w, "true");
		return 0;
	}
	case AT_STR:
		a->s = string(ps);
		return a->s ? 0 : -1;
	case AT_INTS:
	case AT_FLOATS: {
		uint32_t cap = 8;
		a->n = 0;
		a->ints = arena_zalloc(ps->m->arena, (cap + 1) * sizeof *a->ints);
		a->floats = arena_zalloc(ps->m->arena, (cap + 1) * sizeof *a->floats);
		if (expect(ps, '[') < 0)
			return -1;
		skip_ws(ps);
		if (*ps->p == ']') {
			ps->p++;
			break;
		}
		for (;;) {
			if (a->n == 1000)
				return perr(ps, ps->p,
				            "list too long, expected at most 1000 values");
			if (a->n + 1u >= cap) {
				int64_t *ni =
				        arena_zalloc(ps->m->arena, (2 * cap + 1) * sizeof *ni);
				double *nf = arena_zalloc(ps->m->arena, (2 * cap + 1) * sizeof *nf);
				memcpy(ni, a->ints, a->n * sizeof *ni);
				memcpy(nf, a->floats, a->n * sizeof *nf);
				a->ints = ni;
				a->floats = nf;
				cap *= 2;
			}
			if (s->type == AT_INTS) {
				if (integer(ps, &a->ints[a->n]) < 0)
					return -1;
				a->floats[a->n] = (double)a->ints[a->n];
			} else {
				if (number(ps, &a->floats[a->n]) < 0)
					return -1;
				a->ints[a->n] = (int64_t)a->floats[a->n];
			}
			a->n++;
			skip_ws(ps);
			if (*ps->p == ']') {
				ps->p++;
				break;
			}
			if (expect(ps, ',') < 0)
				return -1;
		}
		if (s->type == AT_INTS)
			a->floats = NULL;
		else
			a->ints = NULL;
		if (s->count && a->n != s->count)
			return perr(ps, at, "attribute '%s' has %d values, expected %d", s->key,
			            a->n, s->count);
		return 0;
	}
	}
	return 0;
}

/* "{key=value ...}" into attrs (already holding the defaults) */
static int
attr_block(Parser *ps, int op, Attr *attrs)
{
	const OpInfo *oi = &optab[op];
	uint8_t seen[64] = { 0 };

	skip_ws(ps);
	if (*ps->p != '{')
		return 0;
	ps->p++;
	for (;;) {
		skip_ws(ps);
		if (*ps->p == '}') {
			ps->p++;
			return 0;
		}
		const char *at = ps->p;
		char *key = word(ps, "an attribute name or '}'");
		if (!key)
			return -1;
		int k = op_attr_index(op, key);
		if (k < 0)
			return perr(ps, at, "%s has no attribute '%s'", oi->name, key);
		if (seen[k]++)
			return perr(ps, at, "attribute '%s' given twice, expected once", key);
		if (expect(ps, '=') < 0 || attr_value(ps, &oi->schema[k], &attrs[k]) < 0)
			return -1;
	}
}

static int
param_line(Parser *ps)
{
	char *name = string(ps), *value = name ? string(ps) : NULL;
	if (!value)
		return -1;
	ir_add_param(ps->m, name, value);
	return 0;
}

static int
output_line(Parser *ps)
{
	char *name = string(ps);
	ValueId v;
	if (!name || use(ps, &v) < 0)
		return -1;
	ir_add_output(ps->m, v, name);
	return 0;
}

static int
node_line(Parser *ps)
{
	char b1[TS], b2[TS];
	const char *start = ps->p, *ids_at[8];
	uint32_t ids[8];
	Type types[8];
	int nres = 0;

	for (;;) {
		if (nres == 8)
			return perr(ps, ps->p, "too many results, expected at most 8");
		skip_ws(ps);
		ids_at[nres] = ps->p;
		if (display_id(ps, &ids[nres]) < 0 || expect(ps, ':') < 0 ||
		    type(ps, &types[nres]) < 0)
			return -1;
		nres++;
		skip_ws(ps);
		if (*ps->p != ',')
			break;
		ps->p++;
	}
	if (expect(ps, '=') < 0)
		return -1;
	skip_ws(ps);
	const char *opat = ps->p;
	char *opn = word(ps, "an op name");
	if (!opn)
		return -1;
	int op = op_lookup(opn);
	if (op < 0)
		return perr(ps, opat, "unknown op '%s'", opn);
	const OpInfo *oi = &optab[op];
	if (nres != oi->nout)
		return perr(ps, start, "%s has %d results, expected %d", oi->name, nres, oi->nout);

	/* operands: up to '{', a comment or the end of the line */
	ValueId in[256];
	int nin = 0;
	skip_ws(ps);
	if (*ps->p == '%' || *ps->p == '_') {
		for (;;) {
			if (nin == 255)
				return perr(ps, ps->p, "too many operands, expected at most 255");
			skip_ws(ps);
			if (*ps->p == '_') {
				ps->p++;
				in[nin++] = 0;
			} else if (use(ps, &in[nin++]) < 0) {
				return -1;
			}
			skip_ws(ps);
			if (*ps->p != ',')
				break;
			ps->p++;
		}
	}
	Attr *attrs = arena_zalloc(ps->m->arena, (oi->nattrs + 1) * sizeof *attrs);
	ir_attrs_default(op, attrs);
	if (attr_block(ps, op, attrs) < 0)
		return -1;
	if (!at_eol(ps))
		return perr(ps, ps->p,
		            "unexpected text after the node, expected the end of the line");

	Loc loc = here(ps, start);
	ValueId v;
	if (op == OP_input || op == OP_weight) {
		if (nin)
			return perr(ps, start, "%s takes no operands", oi->name);
		if (!attrs[0].present || !attrs[0].s || !attrs[0].s[0])
			return perr(ps, start, "%s without a name, expected {name=\"...\"}",
			            oi->name);
		if (types[0].rank < 0 && op == OP_input)
			return perr(ps, start, "input '%s' has no shape, expected a static shape",
			            attrs[0].s);
		v = op == OP_input ? ir_add_input(ps->m, attrs[0].s, types[0], loc)
		                   : ir_add_weight(ps->m, attrs[0].s, types[0], loc);
		return define(ps, ids_at[0], ids[0], v);
	}
	int64_t id = ir_add_node(ps->m, op, in, nin, attrs, NULL, loc, ps->d);
	if (id < 0)
		return -1;
	const Node *n = &ps->m->nodes[id];
	for (int j = 0; j < nres; j++) {
		const Type *got = &ps->m->values[n->out[j]].type;
		if (!type_equal(got, &types[j]))
			return perr(ps, ids_at[j], "%%%u is written as %s, but %s gives %s", ids[j],
			            type_str(&types[j], b1, sizeof b1), oi->name,
			            type_str(got, b2, sizeof b2));
		if (define(ps, ids_at[j], ids[j], n->out[j]) < 0)
			return -1;
	}
	return 0;
}

/* "; segc-ir/1 name ..." */
static int
header(Parser *ps)
{
	static const char magic[] = "; segc-ir/1";
	/* comment lines before it ("; after canon" from --dump-after) are skipped */
	while (*ps->p == ';' && strncmp(ps->p, magic, sizeof magic - 1)) {
		while (*ps->p && *ps->p != '\n')
			ps->p++;
		if (*ps->p == '\n') {
			ps->p++;
			ps->line++;
			ps->bol = ps->p;
		}
	}
	if (strncmp(ps->p, magic, sizeof magic - 1))
		return perr(ps, ps->p, "expected the header '%s <name>'", magic);
	ps->p += sizeof magic - 1;
	skip_ws(ps);
	char *name = *ps->p == '"' ? string(ps) : word(ps, "the module name");
	if (!name)
		return -1;
	ps->m->name = name;
	at_eol(ps);
	while (*ps->p && *ps->p != '\n') /* the rest of the header is free text */
		ps->p++;
	return 0;
}

Module *
ir_parse(const char *text, const char *file, Diag *d)
{
	Parser ps = { 0 };
	int rc;

	if (op_init() < 0)
		return NULL;
	ps.m = ir_module_new(NULL);
	ps.file = ps.m->file = arena_strdup(ps.m->arena, file ? file : "<ir>");
	ps.s = ps.p = ps.bol = text;
	ps.line = 1;
	ps.d = d;
	rc = header(&ps);
	while (rc == 0 && *ps.p) {
		if (*ps.p == '\n') {
			ps.p++;
			ps.line++;
			ps.bol = ps.p;
			continue;
		}
		if (at_eol(&ps))
			continue;
		const char *at = ps.p;
		if (*ps.p == '%') {
			rc = node_line(&ps);
			continue;
		}
		char *kw = word(&ps, "a node, 'output' or 'param'");
		if (!kw)
			rc = -1;
		else if (!strcmp(kw, "output"))
			rc = output_line(&ps);
		else if (!strcmp(kw, "param"))
			rc = param_line(&ps);
		else
			rc = perr(&ps, at, "unexpected '%s', expected a node, 'output' or 'param'",
			          kw);
		if (rc == 0 && !at_eol(&ps))
			rc = perr(&ps, ps.p, "unexpected text, expected the end of the line");
	}
	if (rc < 0) {
		ir_module_free(ps.m);
		return NULL;
	}
	return ps.m;
}
