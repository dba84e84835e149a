/* ir/print.c -- the text form of a module (docs/ir.md), read back by ir/parse.c.
 *
 *   ; segc-ir/1 tiny
 *   param "C" "16"
 *   %1:f32[1,4,8,8,8] = input {name="x"}
 *   %2:f32[16,4,3,3,3] = weight {name="enc.conv.weight"}
 *   %3:f32[1,16,8,8,8] = conv3d %1, %2, _ {cout=16 kernel=[3,3,3] ... bias=false}
 *   output "y" %3
 *
 * Values are renumbered in definition order (%1, %2, ...), live nodes only, attributes in
 * schema order (absent optional ones omitted), floats in the shortest form that reads back
 * exactly.  print(parse(text)) == text for every printed module.  Fusion groups and the
 * memory plan, when present, follow as comments (which the parser skips).  ir_group_key: a
 * kernel's key for tuning tables (tune.h). */
#include "ir.h"
#include "tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the shortest %.Ng text that strtod reads back as the same double (20, not 2e+01) */
static void
put_double(FILE *f, double x)
{
	char b[64], best[64] = "";
	if (isnan(x)) {
		fputs("nan", f);
		return;
	}
	if (isinf(x)) {
		fputs(x < 0 ? "-inf" : "inf", f);
		return;
	}
	for (int p = 1; p <= 17; p++) {
		snprintf(b, sizeof b, "%.*g", p, x);
		if (strtod(b, NULL) == x && (!best[0] || strlen(b) < strlen(best)))
			memcpy(best, b, sizeof b);
	}
	fputs(best, f);
}

static void
put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* a bare word if it is one ([A-Za-z0-9_.-]+), else a quoted string */
static void
put_word(FILE *f, const char *s)
{
	int bare = s[0] != 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			bare = 0;
	if (bare)
		fputs(s, f);
	else
		put_string(f, s);
}

static void
put_attr(FILE *f, const Attr *a)
{
	switch (a->type) {
	case AT_INT:
		fprintf(f, "%lld", (long long)a->i);
		break;
	case AT_BOOL:
		fputs(a->i ? "true" : "false", f);
		break;
	case AT_FLOAT:
		put_double(f, a->f);
		break;
	case AT_STR:
		put_string(f, a->s ? a->s : "");
		break;
	case AT_INTS:
		fputc('[', f);
		for (int i = 0; i < a->n; i++)
			fprintf(f, i ? ",%lld" : "%lld", (long long)a->ints[i]);
		fputc(']', f);
		break;
	case AT_FLOATS:
		fputc('[', f);
		for (int i = 0; i < a->n; i++) {
			if (i)
				fputc(',', f);
			put_double(f, a->floats[i]);
		}
		fputc(']', f);
		break;
	default:
		fputs("?", f);
		break;
	}
}

static void
put_value(FILE *f, const uint32_t *disp, ValueId v)
{
	if (!v)
		fputc('_', f);
	else if (disp[v])
		fprintf(f, "%%%u", disp[v]);
	else
		fprintf(f, "%%?%u", v); /* not defined by a live node: invalid IR, visible */
}

static void
put_node(const Module *m, FILE *f, const Node *n, const uint32_t *disp, unsigned flags)
{
	char b[160];
	const OpInfo *oi = &optab[n->op];

	for (int j = 0; j < n->nout; j++) {
		fputs(j ? ", " : "", f);
		put_value(f, disp, n->out[j]);
		fprintf(f, ":%s", type_str(&m->values[n->out[j]].type, b, sizeof b));
	}
	fprintf(f, " = %s", oi->name);
	for (int j = 0; j < n->nin; j++) {
		fputs(j ? ", " : " ", f);
		put_value(f, disp, n->in[j]);
	}
	int first = 1;
	for (int j = 0; j < oi->nattrs; j++) {
		if (!n->attrs[j].present)
			continue;
		fprintf(f, "%s%s=", first ? " {" : " ", oi->schema[j].key);
		put_attr(f, &n->attrs[j]);
		first = 0;
	}
	if (!first)
		fputc('}', f);
	if ((flags & IR_PRINT_LOC) && n->loc.ptr) {
		fprintf(f, "  ; %s", n->loc.ptr[0] ? n->loc.ptr : "/");
		if (n->loc.via)
			fprintf(f, " (%s)", n->loc.via);
	}
	fputc('\n', f);
}

/* ---- kernel keys (tune.h) ---- */

const char *
ir_group_key(const Module *m, const Group *g, Arena *a)
{
	const Node *n = &m->nodes[g->root];
	const OpInfo *oi = &optab[n->op];
	char b[160], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return "?";
	fprintf(f, "%s(", oi->name);
	for (int j = 0; j < n->nin; j++)
		fprintf(f, "%s%s", j ? "," : "",
		        n->in[j] ? type_str(&m->values[n->in[j]].type, b, sizeof b) : "_");
	fputs(")->", f);
	for (int j = 0; j < n->nout; j++)
		fprintf(f, "%s%s", j ? "," : "", type_str(&m->values[n->out[j]].type, b, sizeof b));
	int first = 1;
	for (int j = 0; j < oi->nattrs; j++) {
		if (!n->attrs[j].present)
			continue;
		fprintf(f, "%s%s=", first ? "{" : " ", oi->schema[j].key);
		put_attr(f, &n->attrs[j]);
		first = 0;
	}
	if (!first)
		fputc('}', f);
	for (uint32_t i = 0; i < g->npro; i++)
		fprintf(f, " <%s", optab[m->nodes[g->pro[i]].op].name);
	for (uint32_t i = 0; i < g->nnodes; i++)
		if (g->nodes[i] != g->root)
			fprintf(f, " +%s", optab[m->nodes[g->nodes[i]].op].name);
	if (g->stats)
		fputs(" +stats", f);
	fclose(f);
	for (char *c = buf; c && *c; c++) /* one line */
		if (*c == '\n' || *c == '\t')
			*c = ' ';
	const char *key = arena_strdup(a, buf ? buf : "?");
	free(buf);
	return key;
}

static const char *
storage_name(int s)
{
	switch (s) {
	case ST_ARENA:
		return "arena";
	case ST_INPUT:
		return "input";
	case ST_OUTPUT:
		return "output";
	case ST_WEIGHT:
		return "weight";
	case ST_CONST:
		return "const";
	case ST_VIEW:
		return "view";
	default:
		return "none";
	}
}

/* fusion groups and the memory plan, as comments */
static void
put_plan(const Module *m, FILE *f, const uint32_t *disp)
{
	for (uint32_t g = 0; g < m->ngroups; g++) {
		const Group *gr = &m->groups[g];
		fprintf(f, "; kernel %s = [", gr->name ? gr->name : "?");
		for (uint32_t k = 0; k < gr->nnodes; k++) {
			fputs(k ? " " : "", f);
			put_value(f, disp,
			          gr->nodes[k] < m->nnodes ? m->nodes[gr->nodes[k]].out[0] : 0);
		}
		fputc(']', f);
		if (gr->npro) { /* the load prologue: its nodes' results, from pro_src */
			fputs(" prologue=[", f);
			for (uint32_t k = 0; k < gr->npro; k++) {
				fputs(k ? " " : "", f);
				put_value(f, disp,
				          gr->pro[k] < m->nnodes ? m->nodes[gr->pro[k]].out[0] : 0);
			}
			fputs("] from ", f);
			put_value(f, disp, gr->pro_src);
		}
		if (gr->stats && gr->stats < m->nnodes) { /* the moments of its result */
			fputs(" stats=[", f);
			put_value(f, disp, m->nodes[gr->stats].out[0]);
			fputc(' ', f);
			put_value(f, disp, m->nodes[gr->stats].out[1]);
			fputc(']', f);
		}
		if (gr->vector)
			fprintf(f, " vector=%d", gr->vector);
		if (gr->tile[0] || gr->tile[1] || gr->tile[2] || gr->tile[3])
			fprintf(f, " tile=[%d,%d,%d,%d]", gr->tile[0], gr->tile[1], gr->tile[2],
			        gr->tile[3]);
		fputc('\n', f);
	}
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->nout; j++) {
			const Value *v = &m->values[n->out[j]];
			if (v->storage == ST_NONE)
				continue;
			fputs("; ", f);
			put_value(f, disp, n->out[j]);
			if (v->storage == ST_ARENA)
				fprintf(f, " arena+%lld\n", (long long)v->offset);
			else if (v->storage == ST_VIEW) {
				fputs(" view of ", f);
				put_value(f, disp, v->alias);
				fputc('\n', f);
			} else if (v->storage == ST_CONST)
				fputs(" const\n", f);
			else
				fprintf(f, " %s slot %u\n", storage_name(v->storage), v->slot);
		}
	}
	if (m->arena_bytes)
		fprintf(f, "; arena %lld bytes (naive %lld)\n", (long long)m->arena_bytes,
		        (long long)m->naive_bytes);
}

void
ir_print_ex(const Module *m, FILE *f, unsigned flags)
{
	uint32_t *disp = calloc(m->nvalues + 1, sizeof *disp);
	uint32_t next = 1;

	SEGC_ASSERT(disp);
	for (uint32_t i = 0; i < m->nnodes; i++) {
		const Node *n = &m->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->nout; j++)
			if (n->out[j] && n->out[j] < m->nvalues)
				disp[n->out[j]] = next++;
	}
	fputs("; segc-ir/1 ", f);
	put_word(f, m->name ? m->name : "graph");
	fputc('\n', f);
	for (uint32_t i = 0; i < m->nparams; i++) {
		fputs("param ", f);
		put_string(f, m->params[i].name);
		fputc(' ', f);
		put_string(f, m->params[i].value ? m->params[i].value : "");
		fputc('\n', f);
	}
	for (uint32_t i = 0; i < m->nnodes; i++)
		if (!m->nodes[i].dead)
			put_node(m, f, &m->nodes[i], disp, flags);
	for (uint32_t i = 0; i < m->noutputs; i++) {
		fputs("output ", f);
		put_string(f, m->output_names && m->output_names[i] ? m->output_names[i] : "");
		fputc(' ', f);
		put_value(f, disp, m->outputs[i]);
		fputc('\n', f);
	}
	put_plan(m, f, disp);
	free(disp);
}

void
ir_print(const Module *m, FILE *f)
{
	ir_print_ex(m, f, 0);
}
