/* tests/unit/test_frontend.c -- the graph frontend: expansion, weight names, params,
 * expressions, and one located error line per bad input.  Exits non-zero on failure. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend.h"
#include "../../frontend/fe.h" /* the expression evaluator is internal */

static int failures;

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* the common head of a small graph, with input x:[1,4,8,8,8] */
#define HEAD                                                                                       \
	"\"format\": \"segc-graph/1\", \"name\": \"t\", "                                          \
	"\"inputs\": [{\"name\": \"x\", \"shape\": [1, 4, 8, 8, 8]}], "

static Module *
load_d(const char *text, const FeDefine *defs, int ndefs, const char *lib, Diag *d)
{
	FeOptions o = {defs, ndefs, lib};
	diag_init(d, NULL);
	return fe_load_text(text, strlen(text), "t.json", &o, d);
}

static Module *
load(const char *text)
{
	Diag d;
	Module *m = load_d(text, NULL, 0, NULL, &d);
	if (!m)
		fprintf(stderr, "unexpected error: %s\n", d.first);
	return m;
}

/* the module has a weight named name (with rank `rank`, or any rank when -2) */
static int
has_weight(const Module *m, const char *name)
{
	for (uint32_t i = 0; i < m->nnodes; i++)
		if (m->nodes[i].op == OP_weight && !strcmp(m->nodes[i].attrs[0].s, name))
			return 1;
	return 0;
}

static int
count_op(const Module *m, int op)
{
	int n = 0;
	for (uint32_t i = 0; i < m->nnodes; i++)
		n += m->nodes[i].op == op && !m->nodes[i].dead;
	return n;
}

static const char *
param(const Module *m, const char *name)
{
	for (uint32_t i = 0; i < m->nparams; i++)
		if (!strcmp(m->params[i].name, name))
			return m->params[i].value;
	return NULL;
}

/* text must fail with exactly one error whose line contains every needle */
static void
expect_error_d(int line, const char *text, const FeDefine *defs, int ndefs, const char *needle,
               const char *needle2)
{
	Diag d;
	Module *m = load_d(text, defs, ndefs, "/nonexistent-lib", &d);
	int ok = !m && d.nerrors == 1 && strstr(d.first, needle) &&
	         (!needle2 || strstr(d.first, needle2));
	if (!ok) {
		fprintf(stderr, "%s:%d: expected one error with '%s'%s%s, got %d: %s\n", __FILE__,
		        line, needle, needle2 ? " and " : "", needle2 ? needle2 : "", d.nerrors,
		        d.first);
		failures++;
	}
	ir_module_free(m);
}
#define EXPECT_ERR(text, n1, n2) expect_error_d(__LINE__, text, NULL, 0, n1, n2)

/* ---- expressions ---- */

static void
expr_case(int line, const char *src, const char *want)
{
	Arena *a = arena_new();
	FeScope s = {0};
	char err[600];
	FeVal v, l = {.kind = FV_LIST, .n = 2};
	FeVal items[2] = {{.kind = FV_FLOAT, .f = 0.5}, {.kind = FV_FLOAT, .f = 0.75}};
	l.items = items;
	fe_scope_set(a, &s, "C", (FeVal){.kind = FV_INT, .i = 16});
	fe_scope_set(a, &s, "flag", (FeVal){.kind = FV_BOOL, .i = 1});
	fe_scope_set(a, &s, "rates", l);
	int rc = fe_expr_eval(a, src, &s, &v, err, sizeof err);
	const char *got = rc == FE_EXPR_OK ? fe_val_str(a, &v) : err;
	if (rc == FE_EXPR_SYNTAX)
		got = arena_printf(a, "syntax: %s", err);
	else if (rc == FE_EXPR_EVAL)
		got = arena_printf(a, "eval: %s", err);
	if (!strstr(got, want) || (rc == FE_EXPR_OK && strcmp(got, want))) {
		fprintf(stderr, "%s:%d: \"%s\" gave '%s', expected '%s'\n", __FILE__, line, src,
		        got, want);
		failures++;
	}
	arena_free(a);
}
#define EXPR(src, want) expr_case(__LINE__, src, want)

static void
test_expr(void)
{
	EXPR("1 + 2 * 3", "7");
	EXPR("(1 + 2) * 3", "9");
	EXPR("C / 2", "8");
	EXPR("C / 3", "5.333333333333333");
	EXPR("C // 3", "5");
	EXPR("-7 // 2", "-4");
	EXPR("-7 % 3", "2");
	EXPR("7.5 % 2", "1.5");
	EXPR("2 ** 10", "1024");
	EXPR("2 ** -1", "0.5");
	EXPR("-2 ** 2", "-4");
	EXPR("2 ** 3 ** 2", "512");
	EXPR("C * 1.0", "16.0");
	EXPR("C > 8 and flag", "true");
	EXPR("not flag or C == 16", "true");
	EXPR("C < 8 ? 1 : 2", "2");
	EXPR("C >= 16 ? 1 : 1 / 0", "1");
	EXPR("false and 1 / 0 == 1", "false");
	EXPR("rates[1]", "0.75");
	EXPR("rates[-1]", "0.75");
	EXPR("len(rates)", "2");
	EXPR("min(3, C, 7)", "3");
	EXPR("max(rates)", "0.75");
	EXPR("abs(-3)", "3");
	EXPR("int(7.9)", "7");
	EXPR("float(3)", "3.0");
	EXPR("[1, C, 2]", "[1,16,2]");
	EXPR("1e-5", "1e-05");
	EXPR("true", "true");
	EXPR("1 / 0", "eval: division by zero");
	EXPR("K * 2", "eval: unknown name 'K' in \"K * 2\", expected one of C, flag, rates");
	EXPR("C *", "syntax: expected an operand at the end");
	EXPR("3x3", "syntax: unexpected 'x3' at column 2");
	EXPR("(1", "syntax: expected ')' at the end");
	EXPR("rates[2]", "eval: index 2 out of range");
	EXPR("9223372036854775807 + 1", "eval: integer overflow");
	EXPR("2 ** 100", "eval: integer overflow");
	EXPR("99999999999999999999", "syntax: integer literal too large");
	EXPR("((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1",
	     "nested too deeply");
	EXPR("len(3)", "eval: len() needs a list");
	EXPR("rates + 1", "eval: operator '+' needs numbers");
	EXPR("[24, 32, 48, 64][C // 8]", "48");
	EXPR("[24, 32, 48, 64][-1]", "64");
	EXPR("min(rates) > 0 and max(rates) <= 1", "true");
	EXPR("len(rates) <= 2", "true");
}

/* ---- graphs ---- */

static void
test_basic(void)
{
	Module *m = load("{" HEAD "\"description\": \"d\", \"body\": ["
	                 "{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 8, "
	                 "\"kernel\": 3, \"pad\": 1}},"
	                 "{\"op\": \"relu\", \"out\": \"r\"},"
	                 "{\"op\": \"add\", \"in\": [\"r\", \"c\"]},"
	                 "{\"op\": \"mul\", \"in\": [\"r\", 0.5]}],"
	                 "\"outputs\": [\"r\", {\"name\": \"y\", \"value\": \"r\"}]}");
	CHECK(m);
	if (!m)
		return;
	CHECK(!strcmp(m->name, "t"));
	CHECK(!strcmp(m->file, "t.json"));
	CHECK(m->description && !strcmp(m->description, "d"));
	CHECK(has_weight(m, "c.weight") && has_weight(m, "c.bias"));
	CHECK(count_op(m, OP_conv3d) == 1 && count_op(m, OP_constant) == 1);
	CHECK(m->ninputs == 1 && m->noutputs == 2 && !strcmp(m->output_names[1], "y"));
	const Node *c = NULL;
	for (uint32_t i = 0; i < m->nnodes; i++)
		if (m->nodes[i].op == OP_conv3d)
			c = &m->nodes[i];
	CHECK(c && !strcmp(c->loc.ptr, "/body/0") && !c->loc.via && !strcmp(c->name, "c"));
	CHECK(c && m->values[c->out[0]].type.dims[1] == 8);
	ir_module_free(m);
}

static const char *modgraph =
    "{" HEAD "\"params\": {\"C\": 8, \"n\": 2, \"deep\": false, \"eps\": 1e-5, \"scale\": 2.0,"
    "  \"rates\": [0.5, 0.7], \"C2\": \"C * 2\"},"
    "\"modules\": {"
    " \"block\": {\"params\": {\"cout\": null, \"k\": 3, \"pad\": \"k // 2\"}, \"inputs\": [\"x\"],"
    "  \"body\": [{\"name\": \"conv\", \"op\": \"conv3d\", \"attrs\": {\"cout\": \"cout\", "
    "\"kernel\": \"k\", \"pad\": \"pad\"}},"
    "            {\"name\": \"norm\", \"op\": \"group_norm\", \"attrs\": {\"groups\": 2, \"eps\": "
    "\"eps\"}, \"when\": \"deep\"},"
    "            {\"op\": \"silu\", \"out\": \"y\"}],"
    "  \"outputs\": [\"y\"]},"
    " \"stage\": {\"params\": {\"c\": null}, \"inputs\": [\"x\"],"
    "  \"body\": [{\"name\": \"blocks\", \"module\": \"block\", \"repeat\": \"n\","
    "             \"args\": {\"cout\": \"c\", \"k\": \"index == 0 ? 3 : 1\"}},"
    "            {\"name\": \"A_log\", \"op\": \"weight\", \"attrs\": {\"shape\": [\"c\", 16]}}],"
    "  \"outputs\": [\"blocks\"]}},"
    "\"body\": [{\"name\": \"enc\", \"module\": \"stage\", \"args\": {\"c\": \"C\"}},"
    "          {\"name\": \"stem\", \"op\": \"conv3d\", \"in\": \"x\", \"attrs\": {\"cout\": "
    "\"C2\", \"kernel\": 1}}],"
    "\"outputs\": [\"enc\", \"stem\"]}";

static void
test_modules(void)
{
	Module *m = load(modgraph);
	CHECK(m);
	if (!m)
		return;
	CHECK(has_weight(m, "enc.blocks.0.conv.weight"));
	CHECK(has_weight(m, "enc.blocks.1.conv.bias"));
	CHECK(!has_weight(m, "enc.blocks.2.conv.weight"));
	CHECK(has_weight(m, "enc.A_log"));
	CHECK(!has_weight(m, "enc.blocks.0.norm.weight")); /* when: false */
	CHECK(count_op(m, OP_group_norm) == 0 && count_op(m, OP_silu) == 2);
	CHECK(!strcmp(param(m, "eps"), "1e-05"));
	CHECK(!strcmp(param(m, "scale"), "2.0"));
	CHECK(!strcmp(param(m, "C2"), "16"));
	CHECK(!strcmp(param(m, "rates"), "[0.5,0.7]"));
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->op == OP_conv3d && n->name && !strcmp(n->name, "enc.blocks.1.conv")) {
			CHECK(n->attrs[op_attr_index(OP_conv3d, "kernel")].ints[0] == 1);
			CHECK(n->attrs[op_attr_index(OP_conv3d, "pad")].ints[2] == 0);
			CHECK(!strcmp(n->loc.ptr, "/modules/block/body/0"));
			CHECK(n->loc.via &&
			      !strcmp(n->loc.via, "enc.blocks.1, /modules/stage/body/0"));
		}
		if (n->op == OP_weight && !strcmp(n->attrs[0].s, "enc.A_log")) {
			const Type *t = &m->values[n->out[0]].type;
			CHECK(t->rank == 2 && t->dims[0] == 8 && t->dims[1] == 16);
		}
	}
	ir_module_free(m);

	/* -D overrides */
	FeDefine defs[] = {
	    {"deep", "true"}, {"n", "3"}, {"rates", "[0.1,0.2,0.3]"}, {"scale", "3"}, {"C", "4"}};
	Diag d;
	m = load_d(modgraph, defs, 5, NULL, &d);
	CHECK(m);
	if (!m) {
		fprintf(stderr, "%s\n", d.first);
		return;
	}
	CHECK(has_weight(m, "enc.blocks.2.conv.weight"));
	CHECK(has_weight(m, "enc.blocks.0.norm.weight"));
	CHECK(count_op(m, OP_group_norm) == 3);
	CHECK(!strcmp(param(m, "deep"), "true"));
	CHECK(!strcmp(param(m, "rates"), "[0.1,0.2,0.3]"));
	CHECK(!strcmp(param(m, "scale"), "3.0"));
	CHECK(!strcmp(param(m, "C2"), "8"));
	ir_module_free(m);
}

static void
test_include(void)
{
	char dir[] = "/tmp/segc_fe_XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	char path[300], lib[300];
	snprintf(path, sizeof path, "%s/blocks.json", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "{\"format\": \"segc-graph/1\", \"modules\": {\"act\": {\"inputs\": [\"x\"],"
	           " \"body\": [{\"op\": \"relu\", \"out\": \"y\"}], \"outputs\": [\"y\"]}}}");
	fclose(f);
	snprintf(path, sizeof path, "%s/a.json", dir);
	f = fopen(path, "w");
	fprintf(f, "{\"format\": \"segc-graph/1\", \"include\": [\"b.json\"], \"modules\": {}}");
	fclose(f);
	snprintf(path, sizeof path, "%s/b.json", dir);
	f = fopen(path, "w");
	fprintf(f, "{\"format\": \"segc-graph/1\", \"include\": [\"a.json\"], \"modules\": {}}");
	fclose(f);
	snprintf(lib, sizeof lib, "%s", dir);
	Diag d;
	Module *m = load_d("{" HEAD "\"include\": [\"blocks.json\"], \"body\": [{\"name\": \"a\", "
	                   "\"module\": \"act\"}], \"outputs\": [\"a\"]}",
	                   NULL, 0, lib, &d);
	CHECK(m && count_op(m, OP_relu) == 1);
	if (!m)
		fprintf(stderr, "%s\n", d.first);
	ir_module_free(m);
	m = load_d("{" HEAD "\"include\": [\"a.json\"], \"body\": [], \"outputs\": [\"x\"]}", NULL,
	           0, lib, &d);
	CHECK(!m && d.nerrors == 1 && strstr(d.first, "include cycle") &&
	      strstr(d.first, "b.json:/include/0"));
	ir_module_free(m);
	m = load_d("{" HEAD "\"include\": [\"nope.json\"], \"body\": [], \"outputs\": [\"x\"]}",
	           NULL, 0, lib, &d);
	CHECK(!m && d.nerrors == 1 && strstr(d.first, "t.json:/include/0: error: cannot read"));
	ir_module_free(m);
	const char *names[] = {"blocks.json", "a.json", "b.json"};
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* ---- choice params and graph checks ---- */

static const char *choicegraph =
    "{" HEAD "\"params\": {\"size\": {\"choices\": [\"T\", \"S\", \"B\", \"L\"], "
    "\"default\": \"S\"}, \"W\": \"[24, 32, 48, 64][size]\", \"big\": \"size >= 2\", "
    "\"rates\": [0.5]},"
    "\"checks\": [{\"expr\": \"len(rates) == 0 or (min(rates) > 0 and max(rates) <= 1)\", "
    "\"param\": \"rates\", \"message\": \"keep rates must be in (0, 1]\"},"
    "{\"expr\": \"size != 3\", \"param\": \"size\", \"message\": \"expected T, S or B\"}],"
    "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": \"W\", "
    "\"kernel\": 1}}], \"outputs\": [\"c\"]}";

static void
test_choices_checks(void)
{
	Diag d;
	Module *m = load(choicegraph);
	CHECK(m && !strcmp(param(m, "size"), "S") && !strcmp(param(m, "W"), "32"));
	CHECK(m && !strcmp(param(m, "big"), "false"));
	ir_module_free(m);
	FeDefine b[] = {{"size", "B"}, {"rates", "1,0.25"}};
	m = load_d(choicegraph, b, 2, NULL, &d);
	CHECK(m && !strcmp(param(m, "size"), "B") && !strcmp(param(m, "W"), "48"));
	CHECK(m && !strcmp(param(m, "big"), "true") && has_weight(m, "c.weight"));
	ir_module_free(m);
	/* the default is the first choice when "default" is omitted */
	m = load("{" HEAD
	         "\"params\": {\"mode\": {\"choices\": [\"a\", \"b\"]}, \"k\": \"mode + 1\"},"
	         "\"body\": [{\"op\": \"relu\", \"out\": \"y\"}], \"outputs\": [\"y\"]}");
	CHECK(m && !strcmp(param(m, "mode"), "a") && !strcmp(param(m, "k"), "1"));
	ir_module_free(m);
	/* bad -D values name the choices; checks fire before any node is built */
	FeDefine x[] = {{"size", "X"}}, i[] = {{"size", "1"}}, l[] = {{"size", "L"}},
	         r[] = {{"rates", "0.5,1.5"}}, z[] = {{"rates", "0"}};
	expect_error_d(__LINE__, choicegraph, x, 1,
	               "t.json:/params/size: error: -D size=X is not one of T, S, B, L", NULL);
	expect_error_d(__LINE__, choicegraph, i, 1, "-D size=1 is not one of T, S, B, L", NULL);
	expect_error_d(__LINE__, choicegraph, l, 1,
	               "t.json:/params/size: error: size = L: expected T, S or B", NULL);
	expect_error_d(__LINE__, choicegraph, r, 1,
	               "t.json:/params/rates: error: rates = [0.5, 1.5]: keep rates must be in "
	               "(0, 1]",
	               NULL);
	expect_error_d(__LINE__, choicegraph, z, 1, "rates = [0]: keep rates", NULL);
	EXPECT_ERR("{" HEAD "\"params\": {\"s\": {\"choices\": [\"a\"], \"default\": \"b\"}},"
	           "\"body\": [], \"outputs\": [\"x\"]}",
	           "/params/s/default: error: default string \"b\" is not a choice", "one of a");
	EXPECT_ERR("{" HEAD "\"params\": {\"s\": {\"choices\": [\"a\", \"a\"]}},"
	           "\"body\": [], \"outputs\": [\"x\"]}",
	           "/params/s/choices/1: error: choice \"a\" is listed twice", NULL);
	EXPECT_ERR("{" HEAD "\"params\": {\"s\": {\"values\": [\"a\"]}},"
	           "\"body\": [], \"outputs\": [\"x\"]}",
	           "/params/s: error: expected an integer", "without \"choices\"");
	EXPECT_ERR("{" HEAD "\"params\": {\"C\": 1}, \"checks\": [{\"expr\": \"C > 1\", "
	           "\"param\": \"D\", \"message\": \"m\"}], \"body\": [], \"outputs\": [\"x\"]}",
	           "/checks/0/param: error: unknown param 'D'", NULL);
	EXPECT_ERR("{" HEAD "\"params\": {\"C\": 1}, \"checks\": [{\"expr\": \"C >\", "
	           "\"param\": \"C\", \"message\": \"m\"}], \"body\": [], \"outputs\": [\"x\"]}",
	           "/checks/0/expr: error: expected a condition", "not an expression");
	EXPECT_ERR("{" HEAD "\"params\": {\"C\": 1}, \"checks\": [{\"expr\": \"C > 1\", "
	           "\"param\": \"C\"}], \"body\": [], \"outputs\": [\"x\"]}",
	           "/checks/0: error: check without \"message\"", NULL);
	/* a check that holds does not stop the graph; a false one comes before shape errors */
	EXPECT_ERR("{" HEAD "\"params\": {\"C\": 0}, \"checks\": [{\"expr\": \"C > 0\", "
	           "\"param\": \"C\", \"message\": \"expected C > 0\"}], \"body\": [{\"name\": "
	           "\"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": \"C\", \"kernel\": 1}}], "
	           "\"outputs\": [\"c\"]}",
	           "t.json:/params/C: error: C = 0: expected C > 0", NULL);
}

static void
test_errors(void)
{
	EXPECT_ERR("{\"format\": \"segc-graph/1\",\n  \"name\": }",
	           "t.json:2:11: error: invalid JSON", NULL);
	EXPECT_ERR("{\"format\": \"segc-graph/1\", \"format\": 1}",
	           "t.json:/format: error: duplicate key", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"op\": \"relu\", \"op\": \"silu\"}], \"outputs\": [\"x\"]}",
	           "/body/0/op: error: duplicate key \"op\"", NULL);
	EXPECT_ERR("{\"format\": \"segc-graph/2\"}", "/format: error: unsupported format", NULL);
	EXPECT_ERR("{" HEAD "\"bodi\": [], \"outputs\": [\"x\"]}",
	           "t.json:/bodi: error: unknown key", NULL);
	EXPECT_ERR("{" HEAD "\"body\": [{\"op\": \"conv4d\"}], \"outputs\": [\"x\"]}",
	           "/body/0/op: error: unknown op 'conv4d'", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"op\": \"relu\", \"in\": [\"h2\"]}], \"outputs\": [\"x\"]}",
	           "/body/0/in/0: error: unknown value 'h2' (defined names: x)", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 8, "
	           "\"kernel\": \"3x3\"}}], \"outputs\": [\"x\"]}",
	           "/body/0/attrs/kernel: error: expected 3 integers, got string \"3x3\"", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 2.5, "
	           "\"kernel\": 3}}], \"outputs\": [\"x\"]}",
	           "/body/0/attrs/cout: error: expected an integer, got float 2.5", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 8, "
	           "\"kernel\": [3, 3]}}], \"outputs\": [\"x\"]}",
	           "/body/0/attrs/kernel: error: expected 3 integers, got list [3,3]", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 8, "
	           "\"kernel\": [3, 3, true]}}], \"outputs\": [\"x\"]}",
	           "/body/0/attrs/kernel/2: error: expected an integer, got bool true", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"kernel\": 3}}],"
	           " \"outputs\": [\"x\"]}",
	           "/body/0: error: missing attribute 'cout' of conv3d", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 8, "
	           "\"kernal\": 3}}], \"outputs\": [\"x\"]}",
	           "/body/0/attrs/kernal: error: unknown attribute 'kernal' of conv3d", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"op\": \"conv3d\", \"attrs\": {\"cout\": 8, \"kernel\": 3}}],"
	           " \"outputs\": [\"x\"]}",
	           "/body/0: error: conv3d has parameters", NULL);
	EXPECT_ERR("{" HEAD "\"body\": [{\"op\": \"add\"}], \"outputs\": [\"x\"]}",
	           "/body/0: error: add takes 2 inputs (a, b), got 1", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"op\": \"relu\", \"in\": [\"x\", \"x\"]}], \"outputs\": [\"x\"]}",
	           "/body/0/in: error: relu takes 1 input (x), got 2", NULL);
	EXPECT_ERR("{" HEAD "\"body\": [{\"op\": \"relu\", \"bad\": 1}], \"outputs\": [\"x\"]}",
	           "/body/0/bad: error: unknown key \"bad\" in a node", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"op\": \"relu\", \"when\": \"K\"}], \"outputs\": [\"x\"]}",
	           "/body/0/when: error: unknown name 'K'", NULL);
	EXPECT_ERR("{" HEAD "\"body\": [], \"outputs\": [\"y\"]}",
	           "/outputs/0: error: unknown value 'y' (defined names: x)", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"module\": \"m\", \"name\": \"a\"}], \"outputs\": [\"x\"]}",
	           "/body/0/module: error: unknown module 'm', expected one of none", NULL);
	/* module cycles */
	EXPECT_ERR(
	    "{" HEAD "\"modules\": {\"a\": {\"inputs\": [\"x\"], \"body\": [{\"name\": \"b\", "
	    "\"module\": \"b\"}], \"outputs\": [\"b\"]}, \"b\": {\"inputs\": [\"x\"], \"body\": "
	    "[{\"name\": \"a\", \"module\": \"a\"}], \"outputs\": [\"a\"]}},"
	    "\"body\": [{\"name\": \"top\", \"module\": \"a\"}], \"outputs\": [\"x\"]}",
	    "/modules/b/body/0/module (in top.b, /modules/a/body/0): error: module cycle: "
	    "a -> b -> a",
	    NULL);
	/* errors inside module bodies carry the instance */
	const char *bad_in_module =
	    "{" HEAD
	    "\"modules\": {\"blk\": {\"params\": {\"k\": null}, \"inputs\": [\"x\"], \"body\": "
	    "[{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 4, \"kernel\": \"k\"}}], "
	    "\"outputs\": [\"c\"]}}, \"body\": [{\"name\": \"enc\", \"module\": \"blk\", "
	    "\"repeat\": 2, "
	    "\"args\": {\"k\": \"index == 1 ? 2.5 : 3\"}}], \"outputs\": [\"enc\"]}";
	EXPECT_ERR(bad_in_module,
	           "/modules/blk/body/0/attrs/kernel (in enc.1, /body/0): error: "
	           "expected an integer, got float 2.5",
	           NULL);
	EXPECT_ERR(
	    "{" HEAD "\"modules\": {\"blk\": {\"params\": {\"k\": null}, \"inputs\": [\"x\"], "
	    "\"body\": [], \"outputs\": [\"x\"]}}, \"body\": [{\"name\": \"e\", \"module\": "
	    "\"blk\", \"args\": {\"K\": 1}}], \"outputs\": [\"x\"]}",
	    "/body/0/args/K: error: unknown param 'K' of module 'blk', expected one of k", NULL);
	EXPECT_ERR("{" HEAD
	           "\"modules\": {\"blk\": {\"params\": {\"k\": null}, \"inputs\": [\"x\"], "
	           "\"body\": [], \"outputs\": [\"x\"]}}, \"body\": [{\"name\": \"e\", \"module\": "
	           "\"blk\"}], \"outputs\": [\"x\"]}",
	           "/body/0: error: missing param 'k' of module 'blk'", NULL);
	EXPECT_ERR(
	    "{" HEAD "\"modules\": {\"blk\": {\"inputs\": [\"x\"], \"body\": [], \"outputs\": "
	    "[\"x\"]}}, \"body\": [{\"name\": \"e\", \"module\": \"blk\", \"repeat\": 20000}], "
	    "\"outputs\": [\"x\"]}",
	    "/body/0/repeat: error: expected an integer from 0 to 10000", NULL);
	/* shape errors come from the shape rules, at the node */
	EXPECT_ERR(
	    "{\"format\": \"segc-graph/1\", \"name\": \"t\", \"inputs\": [{\"name\": \"a\", "
	    "\"shape\": [1, 2, 3]}, {\"name\": \"b\", \"shape\": [1, 4, 3]}], \"body\": [{\"op\": "
	    "\"add\", \"in\": [\"a\", \"b\"]}], \"outputs\": [\"a\"]}",
	    "t.json:/body/0: error:", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"c\", \"op\": \"conv3d\", \"attrs\": {\"cout\": 8, "
	           "\"kernel\": 3, \"groups\": 3}}], \"outputs\": [\"x\"]}",
	           "t.json:/body/0: error:", NULL);
	/* weights and names */
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"w\", \"op\": \"weight\", \"attrs\": {\"shape\": [2]}},"
	           "{\"name\": \"w\", \"op\": \"weight\", \"attrs\": {\"shape\": [2]}}], "
	           "\"outputs\": [\"x\"]}",
	           "/body/1: error: duplicate weight name 'w'", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"a b\", \"op\": \"relu\"}], \"outputs\": [\"x\"]}",
	           "/body/0/name: error: expected a name of letters", NULL);
	EXPECT_ERR("{" HEAD
	           "\"body\": [{\"name\": \"w\", \"op\": \"weight\", \"attrs\": {\"shape\": [2],"
	           "\"dtype\": \"f33\"}}], \"outputs\": [\"x\"]}",
	           "/body/0/attrs/dtype: error: unknown dtype string \"f33\"", NULL);
	/* -D */
	FeDefine k[] = {{"K", "3"}}, c[] = {{"C", "2.5"}}, b[] = {{"b", "yes"}},
	         l[] = {{"l", "1,x"}};
	const char *pg =
	    "{" HEAD "\"params\": {\"C\": 4, \"in_ch\": 2, \"b\": true, \"l\": [1, 2]}, "
	    "\"body\": [], \"outputs\": [\"x\"]}";
	expect_error_d(__LINE__, pg, k, 1,
	               "t.json:/params: error: unknown param 'K' in -D K=3, "
	               "expected one of C, in_ch, b, l",
	               NULL);
	expect_error_d(__LINE__, pg, c, 1,
	               "/params/C: error: -D C=2.5: expected an integer, got "
	               "float 2.5",
	               NULL);
	expect_error_d(__LINE__, pg, b, 1,
	               "/params/b: error: -D b=yes: expected true, false, 1 or 0", NULL);
	expect_error_d(__LINE__, pg, l, 1,
	               "/params/l: error: -D l=1,x: expected a list of integers", NULL);
	/* limits: deep nesting, huge expansion */
	char deep[5000];
	size_t n = 0;
	for (int i = 0; i < 1500; i++)
		deep[n++] = '[';
	deep[n] = 0;
	EXPECT_ERR(deep, "t.json:1:", "invalid JSON");
	EXPECT_ERR(
	    "{" HEAD "\"modules\": {\"a\": {\"inputs\": [\"x\"], \"body\": [{\"name\": \"r\", "
	    "\"module\": \"b\", \"repeat\": 10000}], \"outputs\": [\"r\"]}, \"b\": {\"inputs\": "
	    "[\"x\"], \"body\": [{\"name\": \"r\", \"module\": \"c\", \"repeat\": 10000}], "
	    "\"outputs\": [\"r\"]}, \"c\": {\"inputs\": [\"x\"], \"body\": [{\"op\": \"relu\"}], "
	    "\"outputs\": [\"x\"]}}, \"body\": [{\"name\": \"a\", \"module\": \"a\"}], "
	    "\"outputs\": [\"x\"]}",
	    "too many nodes", NULL);
}

int
main(void)
{
	if (op_init() < 0)
		return 1;
	test_expr();
	test_basic();
	test_modules();
	test_include();
	test_errors();
	test_choices_checks();
	if (failures) {
		fprintf(stderr, "test_frontend: %d failure%s\n", failures,
		        failures == 1 ? "" : "s");
		return 1;
	}
	printf("test_frontend: ok\n");
	return 0;
}
