/* frontend/expr.c -- the expression language of graph files.
 *
 * Strings in attributes, args, input shapes, repeat and when are expressions over params:
 *
 *   expr    = or ['?' expr ':' expr]
 *   or      = and {'or' and}
 *   and     = not {'and' not}
 *   not     = 'not' not | cmp
 *   cmp     = add [('==' | '!=' | '<' | '<=' | '>' | '>=') add]
 *   add     = mul {('+' | '-') mul}
 *   mul     = unary {('*' | '/' | '//' | '%') unary}
 *   unary   = ('-' | '+') unary | pow
 *   pow     = postfix ['**' unary]
 *   postfix = primary {'[' expr ']'}
 *   primary = int | float | 'true' | 'false' | name | func '(' expr {',' expr} ')'
 *           | '(' expr ')' | '[' [expr {',' expr}] ']'
 *
 * Python semantics: int op int stays int (+ - * // % **, overflow is an error), '/' gives an
 * int only when it divides exactly, anything with a float is a float; bools count as 0/1.
 * The evaluator parses and evaluates in one pass; the branch not taken by '?:', 'and', 'or'
 * is parsed "dead" (no lookups, no errors but syntax errors). */
#include "fe.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	Arena *a;
	const char *src, *p;
	const FeScope *scope;
	int live; /* 0: parsing a branch that is not taken */
	int depth;
	int status; /* FE_EXPR_* of the first error */
	char *err;
	size_t nerr;
} Ex;

static const char *const funcs[] = {"min", "max", "abs", "int", "float", "len", NULL};
static const char *const reserved[] = {"true", "false", "and", "or", "not", "index", NULL};

int
fe_is_ident(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

int
fe_is_reserved(const char *s)
{
	for (int i = 0; reserved[i]; i++)
		if (!strcmp(s, reserved[i]))
			return 1;
	for (int i = 0; funcs[i]; i++)
		if (!strcmp(s, funcs[i]))
			return 1;
	return 0;
}

/* ---- scopes ---- */

void
fe_scope_set(Arena *a, FeScope *s, const char *name, FeVal v)
{
	for (uint32_t i = 0; i < s->n; i++) {
		if (!strcmp(s->names[i], name)) {
			s->vals[i] = v;
			return;
		}
	}
	uint32_t cap = s->cap, n = s->n;
	s->names = arena_grow(a, s->names, sizeof *s->names, n, &cap);
	s->vals = arena_grow(a, s->vals, sizeof *s->vals, n, &s->cap);
	s->names[n] = arena_strdup(a, name);
	s->vals[n] = v;
	s->n++;
}

const FeVal *
fe_scope_get(const FeScope *s, const char *name)
{
	for (; s; s = s->parent)
		for (uint32_t i = 0; i < s->n; i++)
			if (!strcmp(s->names[i], name))
				return &s->vals[i];
	return NULL;
}

const char *
fe_scope_names(Arena *a, const FeScope *s)
{
	char buf[400];
	size_t k = 0;
	int count = 0;
	buf[0] = 0;
	for (const FeScope *f = s; f; f = f->parent) {
		for (uint32_t i = 0; i < f->n; i++) {
			const char *nm = f->names[i];
			int seen = 0;
			for (const FeScope *g = s; g != f && !seen; g = g->parent)
				for (uint32_t j = 0; j < g->n && !seen; j++)
					seen = !strcmp(g->names[j], nm);
			if (seen)
				continue;
			if (k + strlen(nm) + 8 >= sizeof buf) {
				snprintf(buf + k, sizeof buf - k, ", ...");
				return arena_strdup(a, buf);
			}
			k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", count++ ? ", " : "",
			                      nm);
		}
	}
	return arena_strdup(a, count ? buf : "(none)");
}

/* ---- values as text ---- */

static void
float_text(double f, char *buf, size_t n)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	if (!strpbrk(buf, ".eEni"))
		snprintf(buf + strlen(buf), n - strlen(buf), ".0");
}

static size_t
scalar_text(const FeVal *v, char *buf, size_t n)
{
	switch (v->kind) {
	case FV_INT:
		snprintf(buf, n, "%lld", (long long)v->i);
		break;
	case FV_FLOAT:
		float_text(v->f, buf, n);
		break;
	case FV_BOOL:
		snprintf(buf, n, "%s", v->i ? "true" : "false");
		break;
	default:
		snprintf(buf, n, "[...]");
		break;
	}
	return strlen(buf);
}

const char *
fe_val_str(Arena *a, const FeVal *v)
{
	char tmp[64];
	if (v->kind != FV_LIST) {
		scalar_text(v, tmp, sizeof tmp);
		return arena_strdup(a, tmp);
	}
	size_t cap = 2 + (size_t)v->n * 26, k = 0;
	char *buf = arena_alloc(a, cap + 1);
	buf[k++] = '[';
	for (uint32_t i = 0; i < v->n; i++) {
		size_t l = scalar_text(&v->items[i], tmp, sizeof tmp);
		if (i)
			buf[k++] = ',';
		memcpy(buf + k, tmp, l);
		k += l;
	}
	buf[k++] = ']';
	buf[k] = 0;
	return buf;
}

const char *
fe_val_describe(Arena *a, const FeVal *v)
{
	static const char *const kinds[] = {"integer", "float", "bool", "list"};
	const char *s = fe_val_str(a, v);
	if (strlen(s) > 60)
		return arena_printf(a, "%s %.56s...", kinds[v->kind], s);
	return arena_printf(a, "%s %s", kinds[v->kind], s);
}

/* ---- errors ---- */

static void
syntax(Ex *e, const char *what)
{
	if (e->status)
		return;
	e->status = FE_EXPR_SYNTAX;
	if (!*e->p)
		snprintf(e->err, e->nerr, "%s at the end", what);
	else
		snprintf(e->err, e->nerr, "%s at column %d", what, (int)(e->p - e->src) + 1);
}

static void
unexpected(Ex *e)
{
	char what[64];
	if (!*e->p) {
		syntax(e, "expected an operand");
		return;
	}
	int n = 1;
	if (isalnum((unsigned char)*e->p) || *e->p == '_')
		while (isalnum((unsigned char)e->p[n]) || e->p[n] == '_')
			n++;
	if (n > 30)
		n = 30;
	snprintf(what, sizeof what, "unexpected '%.*s'", n, e->p);
	syntax(e, what);
}

static void
evalerr(Ex *e, const char *what)
{
	if (e->status || !e->live)
		return;
	e->status = FE_EXPR_EVAL;
	snprintf(e->err, e->nerr, "%s in \"%.200s\"", what, e->src);
}

/* ---- lexing ---- */

static void
skipws(Ex *e)
{
	while (*e->p == ' ' || *e->p == '\t' || *e->p == '\n' || *e->p == '\r')
		e->p++;
}

/* consume operator s if it is next (and not the prefix of a longer operator) */
static int
accept(Ex *e, const char *s)
{
	skipws(e);
	size_t n = strlen(s);
	if (strncmp(e->p, s, n))
		return 0;
	if (isalpha((unsigned char)s[0]) && (isalnum((unsigned char)e->p[n]) || e->p[n] == '_'))
		return 0;
	if (!strcmp(s, "*") && e->p[1] == '*')
		return 0;
	if (!strcmp(s, "/") && e->p[1] == '/')
		return 0;
	if ((!strcmp(s, "<") || !strcmp(s, ">")) && e->p[1] == '=')
		return 0;
	e->p += n;
	return 1;
}

static void
expect(Ex *e, const char *s)
{
	char what[48];
	if (!accept(e, s)) {
		snprintf(what, sizeof what, "expected '%s'", s);
		if (*e->p) {
			char got[40];
			snprintf(got, sizeof got, ", got '%c'", *e->p);
			strncat(what, got, sizeof what - strlen(what) - 1);
		}
		syntax(e, what);
	}
}

/* ---- value helpers ---- */

static FeVal
mkint(int64_t i)
{
	FeVal v = {.kind = FV_INT, .i = i};
	return v;
}

static FeVal
mkfloat(double f)
{
	FeVal v = {.kind = FV_FLOAT, .f = f};
	return v;
}

static FeVal
mkbool(int b)
{
	FeVal v = {.kind = FV_BOOL, .i = b != 0};
	return v;
}

static double
num(const FeVal *v)
{
	return v->kind == FV_FLOAT ? v->f : (double)v->i;
}

/* both operands must be scalars; returns 0 and reports otherwise */
static int
scalars(Ex *e, const FeVal *a, const FeVal *b, const char *op)
{
	char msg[160];
	if (a->kind == FV_LIST || (b && b->kind == FV_LIST)) {
		snprintf(msg, sizeof msg, "operator '%s' needs numbers, got a list", op);
		evalerr(e, msg);
		return 0;
	}
	return 1;
}

static int
truth(Ex *e, const FeVal *v)
{
	if (v->kind == FV_LIST) {
		evalerr(e, "a list is not a condition");
		return 0;
	}
	return v->kind == FV_FLOAT ? v->f != 0 : v->i != 0;
}

static FeVal
checkf(Ex *e, double f)
{
	if (!isfinite(f)) {
		evalerr(e, "result is not a finite number");
		return mkint(0);
	}
	return mkfloat(f);
}

static FeVal
ipow(Ex *e, int64_t b, int64_t x)
{
	int64_t r = 1;
	while (x > 0) {
		if (x & 1) {
			if (__builtin_mul_overflow(r, b, &r))
				goto over;
		}
		x >>= 1;
		if (x && __builtin_mul_overflow(b, b, &b))
			goto over;
	}
	return mkint(r);
over:
	evalerr(e, "integer overflow");
	return mkint(0);
}

static FeVal
arith(Ex *e, char op, int dbl, FeVal a, FeVal b)
{
	char name[3] = {op, dbl ? op : 0, 0};
	int64_t r;
	if (!e->live || e->status)
		return mkint(0);
	if (!scalars(e, &a, &b, name))
		return mkint(0);
	if (a.kind != FV_FLOAT && b.kind != FV_FLOAT) {
		int64_t x = a.i, y = b.i;
		switch (op) {
		case '+':
			if (__builtin_add_overflow(x, y, &r))
				break;
			return mkint(r);
		case '-':
			if (__builtin_sub_overflow(x, y, &r))
				break;
			return mkint(r);
		case '*':
			if (dbl)
				return y < 0 ? checkf(e, pow((double)x, (double)y)) : ipow(e, x, y);
			if (__builtin_mul_overflow(x, y, &r))
				break;
			return mkint(r);
		case '/':
		case '%':
			if (y == 0) {
				evalerr(e, "division by zero");
				return mkint(0);
			}
			if (x == INT64_MIN && y == -1)
				break;
			if (op == '/' && !dbl)
				return x % y == 0 ? mkint(x / y) : mkfloat((double)x / (double)y);
			r = x % y;
			if (op == '%')
				return mkint(r != 0 && (r < 0) != (y < 0) ? r + y : r);
			return mkint(x / y - (r != 0 && (r < 0) != (y < 0)));
		}
		evalerr(e, "integer overflow");
		return mkint(0);
	}
	double x = num(&a), y = num(&b);
	switch (op) {
	case '+':
		return checkf(e, x + y);
	case '-':
		return checkf(e, x - y);
	case '*':
		return checkf(e, dbl ? pow(x, y) : x * y);
	default:
		if (y == 0) {
			evalerr(e, "division by zero");
			return mkint(0);
		}
		if (op == '/')
			return checkf(e, dbl ? floor(x / y) : x / y);
		double m = fmod(x, y);
		if (m != 0 && (m < 0) != (y < 0))
			m += y;
		return checkf(e, m);
	}
}

static FeVal
compare(Ex *e, const char *op, FeVal a, FeVal b)
{
	if (!e->live || e->status)
		return mkbool(0);
	if (!scalars(e, &a, &b, op))
		return mkbool(0);
	int c;
	if (a.kind != FV_FLOAT && b.kind != FV_FLOAT)
		c = a.i < b.i ? -1 : a.i > b.i;
	else
		c = num(&a) < num(&b) ? -1 : num(&a) > num(&b);
	if (!strcmp(op, "=="))
		return mkbool(c == 0);
	if (!strcmp(op, "!="))
		return mkbool(c != 0);
	if (!strcmp(op, "<"))
		return mkbool(c < 0);
	if (!strcmp(op, "<="))
		return mkbool(c <= 0);
	if (!strcmp(op, ">"))
		return mkbool(c > 0);
	return mkbool(c >= 0);
}

/* ---- the parser-evaluator ---- */

static FeVal expr(Ex *e);

static int
enter(Ex *e)
{
	if (++e->depth > FE_MAX_EXPR_DEPTH) {
		syntax(e, "expression nested too deeply");
		return 0;
	}
	return 1;
}

static FeVal
number(Ex *e)
{
	const char *s = e->p;
	int isf = 0;
	while (isdigit((unsigned char)*e->p))
		e->p++;
	if (*e->p == '.' && isdigit((unsigned char)e->p[1])) {
		isf = 1;
		for (e->p++; isdigit((unsigned char)*e->p); e->p++)
			;
	}
	if (*e->p == 'e' || *e->p == 'E') {
		const char *q = e->p + 1;
		if (*q == '+' || *q == '-')
			q++;
		if (isdigit((unsigned char)*q)) {
			isf = 1;
			for (e->p = q; isdigit((unsigned char)*e->p); e->p++)
				;
		}
	}
	char buf[64];
	size_t n = (size_t)(e->p - s);
	if (n >= sizeof buf) {
		e->p = s;
		syntax(e, "number literal too long");
		return mkint(0);
	}
	memcpy(buf, s, n);
	buf[n] = 0;
	errno = 0;
	if (isf) {
		double f = strtod(buf, NULL);
		if (!isfinite(f)) {
			e->p = s;
			syntax(e, "float literal out of range");
		}
		return mkfloat(f);
	}
	long long i = strtoll(buf, NULL, 10);
	if (errno == ERANGE) {
		e->p = s;
		syntax(e, "integer literal too large");
	}
	return mkint(i);
}

static FeVal
call(Ex *e, const char *fn)
{
	FeVal args[16], r = mkint(0);
	int n = 0;
	char msg[96];
	if (!accept(e, ")")) {
		do {
			FeVal v = expr(e);
			if (e->status)
				return r;
			if (n == (int)countof(args)) {
				syntax(e, "too many arguments");
				return r;
			}
			args[n++] = v;
		} while (accept(e, ","));
		expect(e, ")");
	}
	if (e->status || !e->live)
		return r;
	if (!strcmp(fn, "min") || !strcmp(fn, "max")) {
		FeVal *xs = args;
		int nx = n;
		if (n == 1 && args[0].kind == FV_LIST) {
			xs = args[0].items;
			nx = (int)args[0].n;
		}
		if (nx == 0) {
			snprintf(msg, sizeof msg, "%s() of nothing", fn);
			evalerr(e, msg);
			return r;
		}
		r = xs[0];
		for (int i = 1; i < nx; i++) {
			FeVal c = compare(e, fn[1] == 'i' ? "<" : ">", xs[i], r);
			if (c.i)
				r = xs[i];
		}
		if (r.kind == FV_LIST)
			evalerr(e, "min()/max() of nested lists");
		return r;
	}
	if (n != 1) {
		snprintf(msg, sizeof msg, "%s() takes 1 argument, got %d", fn, n);
		evalerr(e, msg);
		return r;
	}
	FeVal x = args[0];
	if (!strcmp(fn, "len")) {
		if (x.kind != FV_LIST) {
			evalerr(e, "len() needs a list");
			return r;
		}
		return mkint(x.n);
	}
	if (!scalars(e, &x, NULL, fn))
		return r;
	if (!strcmp(fn, "abs")) {
		if (x.kind == FV_FLOAT)
			return mkfloat(fabs(x.f));
		if (x.i == INT64_MIN) {
			evalerr(e, "integer overflow");
			return r;
		}
		return mkint(x.i < 0 ? -x.i : x.i);
	}
	if (!strcmp(fn, "float"))
		return mkfloat(num(&x));
	/* int(): truncation, like Python */
	if (x.kind != FV_FLOAT)
		return mkint(x.i);
	if (!(x.f > -9.2e18 && x.f < 9.2e18)) {
		evalerr(e, "int() of a float out of range");
		return r;
	}
	return mkint((int64_t)x.f);
}

static FeVal
list(Ex *e)
{
	FeVal r = {.kind = FV_LIST};
	FeVal *tmp = NULL;
	uint32_t n = 0, cap = 0;
	if (!accept(e, "]")) {
		do {
			FeVal v = expr(e);
			if (e->status)
				return r;
			if (v.kind == FV_LIST && e->live) {
				evalerr(e, "lists of lists are not supported");
				return r;
			}
			if (n == FE_MAX_LIST) {
				syntax(e, "list too long");
				return r;
			}
			*ARENA_PUSH(e->a, tmp, n, cap) = v;
		} while (accept(e, ","));
		expect(e, "]");
	}
	r.n = n;
	r.items = tmp;
	return r;
}

static FeVal
primary(Ex *e)
{
	skipws(e);
	const char *s = e->p;
	if (isdigit((unsigned char)*s))
		return number(e);
	if (accept(e, "(")) {
		FeVal v = expr(e);
		expect(e, ")");
		return v;
	}
	if (accept(e, "["))
		return list(e);
	if (!(isalpha((unsigned char)*s) || *s == '_')) {
		unexpected(e);
		return mkint(0);
	}
	char name[64];
	size_t n = 0;
	while (isalnum((unsigned char)e->p[n]) || e->p[n] == '_')
		n++;
	if (n >= sizeof name) {
		syntax(e, "name too long");
		return mkint(0);
	}
	memcpy(name, s, n);
	name[n] = 0;
	if (!strcmp(name, "and") || !strcmp(name, "or") || !strcmp(name, "not")) {
		unexpected(e);
		return mkint(0);
	}
	e->p += n;
	if (!strcmp(name, "true") || !strcmp(name, "false"))
		return mkbool(name[0] == 't');
	for (int i = 0; funcs[i]; i++)
		if (!strcmp(name, funcs[i]) && accept(e, "("))
			return call(e, name);
	if (!e->live)
		return mkint(0);
	const FeVal *v = fe_scope_get(e->scope, name);
	if (!v) {
		char msg[560];
		if (e->status)
			return mkint(0);
		e->status = FE_EXPR_EVAL;
		snprintf(msg, sizeof msg, "unknown name '%s' in \"%.60s\", expected one of %s",
		         name, e->src, fe_scope_names(e->a, e->scope));
		snprintf(e->err, e->nerr, "%s", msg);
		return mkint(0);
	}
	return *v;
}

static FeVal
postfix(Ex *e)
{
	FeVal v = primary(e);
	while (!e->status && accept(e, "[")) {
		FeVal ix = expr(e);
		expect(e, "]");
		if (e->status || !e->live)
			continue;
		if (v.kind != FV_LIST) {
			evalerr(e, "indexing something that is not a list");
			return v;
		}
		if (ix.kind != FV_INT) {
			evalerr(e, "a list index must be an integer");
			return v;
		}
		int64_t i = ix.i < 0 ? ix.i + (int64_t)v.n : ix.i;
		if (i < 0 || i >= (int64_t)v.n) {
			char msg[80];
			snprintf(msg, sizeof msg, "index %lld out of range for a list of %u",
			         (long long)ix.i, v.n);
			evalerr(e, msg);
			return v;
		}
		v = v.items[i];
	}
	return v;
}

static FeVal unary(Ex *e);

static FeVal
power(Ex *e)
{
	FeVal v = postfix(e);
	if (!e->status && accept(e, "**")) {
		if (!enter(e))
			return v;
		FeVal x = unary(e);
		e->depth--;
		v = arith(e, '*', 1, v, x);
	}
	return v;
}

static FeVal
unary(Ex *e)
{
	if (!enter(e))
		return mkint(0);
	FeVal v;
	if (accept(e, "-")) {
		v = unary(e);
		v = arith(e, '-', 0, mkint(0), v);
	} else if (accept(e, "+")) {
		v = unary(e);
		if (e->live && !e->status)
			scalars(e, &v, NULL, "+");
	} else {
		v = power(e);
	}
	e->depth--;
	return v;
}

static FeVal
mul(Ex *e)
{
	FeVal v = unary(e);
	while (!e->status) {
		if (accept(e, "*"))
			v = arith(e, '*', 0, v, unary(e));
		else if (accept(e, "//"))
			v = arith(e, '/', 1, v, unary(e));
		else if (accept(e, "/"))
			v = arith(e, '/', 0, v, unary(e));
		else if (accept(e, "%"))
			v = arith(e, '%', 0, v, unary(e));
		else
			break;
	}
	return v;
}

static FeVal
add(Ex *e)
{
	FeVal v = mul(e);
	while (!e->status) {
		if (accept(e, "+"))
			v = arith(e, '+', 0, v, mul(e));
		else if (accept(e, "-"))
			v = arith(e, '-', 0, v, mul(e));
		else
			break;
	}
	return v;
}

static FeVal
cmp(Ex *e)
{
	static const char *const ops[] = {"==", "!=", "<=", ">=", "<", ">", NULL};
	FeVal v = add(e);
	for (int i = 0; ops[i] && !e->status; i++)
		if (accept(e, ops[i]))
			return compare(e, ops[i], v, add(e));
	return v;
}

static FeVal
not_(Ex *e)
{
	if (accept(e, "not")) {
		if (!enter(e))
			return mkint(0);
		FeVal v = not_(e);
		e->depth--;
		return mkbool(e->live && !e->status ? !truth(e, &v) : 0);
	}
	return cmp(e);
}

static FeVal
and_(Ex *e)
{
	FeVal v = not_(e);
	while (!e->status && accept(e, "and")) {
		int l = e->live, t = l ? truth(e, &v) : 0;
		e->live = l && t;
		FeVal w = not_(e);
		e->live = l;
		v = mkbool(l && t ? truth(e, &w) : 0);
	}
	return v;
}

static FeVal
or_(Ex *e)
{
	FeVal v = and_(e);
	while (!e->status && accept(e, "or")) {
		int l = e->live, t = l ? truth(e, &v) : 1;
		e->live = l && !t;
		FeVal w = and_(e);
		e->live = l;
		v = mkbool(l && !t ? truth(e, &w) : t);
	}
	return v;
}

static FeVal
expr(Ex *e)
{
	if (!enter(e))
		return mkint(0);
	FeVal c = or_(e);
	if (!e->status && accept(e, "?")) {
		int l = e->live, t = l ? truth(e, &c) : 0;
		e->live = l && t;
		FeVal a = expr(e);
		e->live = l;
		expect(e, ":");
		e->live = l && !t;
		FeVal b = e->status ? a : expr(e);
		e->live = l;
		c = t ? a : b;
	}
	e->depth--;
	return c;
}

int
fe_expr_eval(Arena *a, const char *src, const FeScope *s, FeVal *out, char *err, size_t nerr)
{
	Ex e = {.a = a, .src = src, .p = src, .scope = s, .live = 1, .err = err, .nerr = nerr};
	*out = mkint(0);
	if (nerr)
		err[0] = 0;
	if (strlen(src) > FE_MAX_EXPR) {
		snprintf(err, nerr, "expression longer than %d characters", FE_MAX_EXPR);
		return FE_EXPR_SYNTAX;
	}
	FeVal v = expr(&e);
	skipws(&e);
	if (!e.status && *e.p)
		unexpected(&e);
	if (e.status)
		return e.status;
	*out = v;
	return FE_EXPR_OK;
}
