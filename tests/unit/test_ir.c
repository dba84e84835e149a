/* tests/unit/test_ir.c -- the IR layer: op table, shape rules, costs, verifier, text form.
 *
 * usage: test_ir [DIR]   DIR holds *.ir files that must round-trip byte for byte
 *                        (default: tests/ir next to this source file)
 * Expected shapes for the window ops were taken from PyTorch 1.13 (torch.nn.functional).
 * Exits non-zero on the first failing group, printing every failed check. */
#include "ir.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
			failures++; \
		} \
	} while (0)

/* attrs from "key=value ..." text: ints, [lists], true/false, floats, bare strings */
static Attr *
attrs_from(Module *m, int op, const char *text)
{
	const OpInfo *oi = &optab[op];
	Attr *a = arena_zalloc(m->arena, (oi->nattrs + 1) * sizeof *a);
	char buf[512];

	ir_attrs_default(op, a);
	snprintf(buf, sizeof buf, "%s", text ? text : "");
	for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
		char *eq = strchr(w, '=');
		SEGC_ASSERT(eq);
		*eq = 0;
		int k = op_attr_index(op, w);
		if (k < 0) {
			fprintf(stderr, "test: %s has no attribute %s\n", oi->name, w);
			exit(2);
		}
		Attr *x = &a[k];
		const char *v = eq + 1;
		x->present = 1;
		switch (x->type) {
		case AT_INT:
			x->i = strtoll(v, NULL, 10);
			break;
		case AT_BOOL:
			x->i = !strcmp(v, "true") || !strcmp(v, "1");
			break;
		case AT_FLOAT:
			x->f = strtod(v, NULL);
			break;
		case AT_STR:
			x->s = arena_strdup(m->arena, v);
			break;
		default: {
			x->ints = arena_zalloc(m->arena, 16 * sizeof *x->ints);
			x->floats = arena_zalloc(m->arena, 16 * sizeof *x->floats);
			x->n = 0;
			const char *p = v + (v[0] == '[');
			while (*p && *p != ']') {
				char *end;
				double f = strtod(p, &end);
				x->floats[x->n] = f;
				x->ints[x->n++] = (int64_t)f;
				p = *end == ',' ? end + 1 : end;
				if (v[0] != '[')
					break;
			}
			/* a scalar fills every slot, as in graph files */
			uint8_t want = oi->schema[k].count;
			while (v[0] != '[' && x->n < want) {
				x->floats[x->n] = x->floats[0];
				x->ints[x->n] = x->ints[0];
				x->n++;
			}
		}
		}
	}
	return a;
}

static Type
ty(const char *s)
{
	Type t;
	memset(&t, 0, sizeof t);
	if (!strncmp(s, "i64", 3))
		t.dtype = DT_I64;
	const char *p = strchr(s, '[') + 1;
	if (*p == '?') {
		t.rank = -1;
		return t;
	}
	while (*p && *p != ']') {
		char *end;
		t.dims[t.rank++] = strtoll(p, &end, 10);
		p = *end == ',' ? end + 1 : end;
	}
	return t;
}

static Diag diag;
static int64_t last_node;

/* add a node; returns its first result or 0 on failure (message in diag.first) */
static ValueId
add(Module *m, const char *opname, const ValueId *in, int nin, const char *attrs)
{
	int op = op_lookup(opname);
	SEGC_ASSERT(op >= 0);
	diag_init(&diag, NULL);
	Loc loc = { "t.json", "/body/0", NULL };
	last_node = ir_add_node(m, op, in, nin, attrs_from(m, op, attrs), "n", loc, &diag);
	return last_node < 0 ? 0 : m->nodes[last_node].out[0];
}

static int
is_type(const Module *m, ValueId v, const char *want)
{
	char b[160];
	type_str(&m->values[v].type, b, sizeof b);
	if (strcmp(b, want)) {
		fprintf(stderr, "  type %s, expected %s\n", b, want);
		return 0;
	}
	return 1;
}

static int
failed_with(ValueId v, const char *want)
{
	if (v != 0) {
		fprintf(stderr, "  expected an error containing '%s', got none\n", want);
		return 0;
	}
	if (!strstr(diag.first, want)) {
		fprintf(stderr, "  error '%s', expected it to contain '%s'\n", diag.first, want);
		return 0;
	}
	return 1;
}

static ValueId
in_(Module *m, const char *t)
{
	static int k;
	char name[32];
	snprintf(name, sizeof name, "x%d", k++);
	return ir_add_input(m, name, ty(t), loc_none);
}

static ValueId
w_(Module *m, const char *name, const char *t)
{
	return ir_add_weight(m, name, ty(t), loc_none);
}

static void
test_conv(void)
{
	Module *m = ir_module_new("conv");
	ValueId x = in_(m, "f32[1,4,8,8,8]");
	ValueId w = w_(m, "enc.conv.weight", "f32[?]"), b = w_(m, "enc.conv.bias", "f32[?]");
	ValueId y = add(m, "conv3d", (ValueId[]){ x, w, b }, 3, "cout=16 kernel=3 pad=1");
	CHECK(y && is_type(m, y, "f32[1,16,8,8,8]"));
	CHECK(is_type(m, w, "f32[16,4,3,3,3]") && is_type(m, b, "f32[16]"));
	Cost c = ir_node_cost(m, &m->nodes[last_node]);
	CHECK(c.macs == 1.0 * 16 * 512 * 4 * 27);
	CHECK(c.flops == 2.0 * 16 * 512 * 4 * 27 + 16 * 512);
	CHECK(ir_param_count(m) == 16 * 4 * 27 + 16);

	/* odd sizes, stride, dilation, groups, no bias (torch: [2,9,2,5,3]) */
	ValueId x2 = in_(m, "f32[2,6,7,9,5]"), w2 = w_(m, "g.weight", "f32[?]");
	ValueId y2 =
	        add(m, "conv3d", (ValueId[]){ x2, w2, 0 }, 3,
	            "cout=9 kernel=[3,2,3] stride=2 pad=[0,1,2] dilation=2 groups=3 bias=false");
	CHECK(y2 && is_type(m, y2, "f32[2,9,2,5,3]") && is_type(m, w2, "f32[9,2,3,2,3]"));
	c = ir_node_cost(m, &m->nodes[last_node]);
	CHECK(c.macs == 2.0 * 9 * 2 * 5 * 3 * 2 * 18 && c.flops == 2 * c.macs);

	/* a weight typed by an earlier consumer is checked */
	ValueId y3 = add(m, "conv3d", (ValueId[]){ x, w, b }, 3, "cout=16 kernel=3");
	CHECK(y3 && is_type(m, y3, "f32[1,16,6,6,6]"));
	ValueId x5 = in_(m, "f32[1,3,8,8,8]");
	CHECK(failed_with(add(m, "conv3d", (ValueId[]){ x5, w, b }, 3, "cout=16 kernel=3"),
	                  "weight 'enc.conv.weight' has shape f32[16,4,3,3,3], expected "
	                  "f32[16,3,3,3,3]"));
	CHECK(!strncmp(diag.first, "t.json:/body/0: error: ", 23));
	ValueId w4 = w_(m, "h.weight", "f32[?]"), b4 = w_(m, "h.bias", "f32[?]");
	CHECK(failed_with(
	        add(m, "conv3d", (ValueId[]){ x5, w4, b4 }, 3, "cout=16 kernel=3 groups=2"),
	        "3 input channels not divisible by groups=2"));
	CHECK(failed_with(add(m, "conv3d", (ValueId[]){ x, w4, b4 }, 3, "cout=6 kernel=3 groups=4"),
	                  "cout=6 not divisible by groups=4"));
	CHECK(failed_with(
	        add(m, "conv3d", (ValueId[]){ x, w4, b4 }, 3, "cout=6 kernel=5 dilation=2"),
	        "output size along spatial axis 0 is 0"));
	CHECK(failed_with(add(m, "conv3d", (ValueId[]){ x, w4, 0 }, 3, "cout=6 kernel=3"),
	                  "parameter 'bias' is missing"));
	CHECK(failed_with(
	        add(m, "conv3d", (ValueId[]){ x, w4, b4 }, 3, "cout=6 kernel=3 bias=false"),
	        "parameter 'bias' given but 'bias' is false"));
	ValueId x4d = in_(m, "f32[1,4,8,8]");
	CHECK(failed_with(add(m, "conv3d", (ValueId[]){ x4d, w4, b4 }, 3, "cout=6 kernel=3"),
	                  "expected rank 5"));
	CHECK(failed_with(add(m, "conv3d", (ValueId[]){ x, w4, b4 }, 3, "cout=6 kernel=3 stride=0"),
	                  "stride[0] is 0, expected >= 1"));
	CHECK(failed_with(add(m, "conv3d", (ValueId[]){ x, w4 }, 2, "cout=6 kernel=3"),
	                  "got 2 operands, expected 3"));
	CHECK(failed_with(add(m, "conv3d", (ValueId[]){ x, w4, b4 }, 3, "kernel=3"),
	                  "attribute 'cout' is missing"));
	ir_module_free(m);
}

static void
test_conv_transpose(void)
{
	Module *m = ir_module_new("convt");
	ValueId x = in_(m, "f32[1,4,5,6,7]");
	ValueId w = w_(m, "up.weight", "f32[?]"), b = w_(m, "up.bias", "f32[?]");
	ValueId y = add(m, "conv_transpose3d", (ValueId[]){ x, w, b }, 3,
	                "cout=6 kernel=[3,2,3] stride=[2,3,1] pad=[1,0,1] output_padding=[1,2,0] "
	                "dilation=[1,1,2] groups=2");
	CHECK(y && is_type(m, y, "f32[1,6,10,19,9]") && is_type(m, w, "f32[4,3,3,2,3]"));
	Cost c = ir_node_cost(m, &m->nodes[last_node]);
	CHECK(c.macs == 4.0 * 5 * 6 * 7 * 3 * 18 && c.flops == 2 * c.macs + 6 * 10 * 19 * 9);
	ValueId w2 = w_(m, "up2.weight", "f32[?]");
	CHECK(failed_with(add(m, "conv_transpose3d", (ValueId[]){ x, w2, 0 }, 3,
	                      "cout=4 kernel=3 stride=2 output_padding=2 bias=false"),
	                  "output_padding[0] is 2, expected >= 0 and smaller than stride"));
	/* output_padding may reach the stride when the dilation is larger */
	ValueId y2 = add(m, "conv_transpose3d", (ValueId[]){ x, w2, 0 }, 3,
	                 "cout=4 kernel=2 stride=2 output_padding=2 dilation=3 bias=false");
	CHECK(y2 && is_type(m, y2, "f32[1,4,14,16,18]"));
	ir_module_free(m);
}

static void
test_linear_matmul(void)
{
	Module *m = ir_module_new("lin");
	ValueId x = in_(m, "f32[2,5,7]");
	ValueId w = w_(m, "fc.weight", "f32[?]"), b = w_(m, "fc.bias", "f32[?]");
	ValueId y = add(m, "linear", (ValueId[]){ x, w, b }, 3, "out=3");
	CHECK(y && is_type(m, y, "f32[2,5,3]") && is_type(m, w, "f32[3,7]") &&
	      is_type(m, b, "f32[3]"));
	Cost c = ir_node_cost(m, &m->nodes[last_node]);
	CHECK(c.macs == 2 * 5 * 3 * 7 && c.flops == 2 * c.macs + 30);
	ValueId x2 = in_(m, "f32[4,6]");
	CHECK(failed_with(add(m, "linear", (ValueId[]){ x2, w, b }, 3, "out=3"),
	                  "weight 'fc.weight' has shape f32[3,7], expected f32[3,6]"));

	ValueId a = in_(m, "f32[2,1,3,4]"), bb = in_(m, "f32[5,4,6]");
	ValueId mm = add(m, "matmul", (ValueId[]){ a, bb }, 2, NULL);
	CHECK(mm && is_type(m, mm, "f32[2,5,3,6]"));
	c = ir_node_cost(m, &m->nodes[last_node]);
	CHECK(c.macs == 2 * 5 * 3 * 6 * 4 && c.flops == 2 * c.macs);
	CHECK(failed_with(add(m, "matmul", (ValueId[]){ a, a }, 2, NULL), "cannot multiply"));
	ValueId v1 = in_(m, "f32[4]");
	CHECK(failed_with(add(m, "matmul", (ValueId[]){ v1, bb }, 2, NULL), "expected rank >= 2"));
	ValueId c3 = in_(m, "f32[3,3,4]");
	CHECK(failed_with(add(m, "matmul", (ValueId[]){ c3, bb }, 2, NULL), "do not broadcast"));
	ir_module_free(m);
}

static void
test_pool_upsample(void)
{
	Module *m = ir_module_new("pool");
	ValueId x = in_(m, "f32[1,2,5,5,5]");
	ValueId y = add(m, "max_pool3d", &x, 1, "kernel=2");
	CHECK(y && is_type(m, y, "f32[1,2,2,2,2]"));
	CHECK(ir_node_cost(m, &m->nodes[last_node]).flops == 8 * 16);
	y = add(m, "max_pool3d", &x, 1, "kernel=2 ceil_mode=true");
	CHECK(y && is_type(m, y, "f32[1,2,3,3,3]"));
	/* the last window would start in the right padding: dropped */
	y = add(m, "max_pool3d", &x, 1, "kernel=2 stride=2 pad=1 ceil_mode=true");
	CHECK(y && is_type(m, y, "f32[1,2,3,3,3]"));
	ValueId x2 = in_(m, "f32[1,1,7,8,9]");
	y = add(m, "max_pool3d", &x2, 1,
	        "kernel=3 stride=[2,2,3] pad=1 dilation=[2,1,1] ceil_mode=true");
	CHECK(y && is_type(m, y, "f32[1,1,3,5,4]"));
	y = add(m, "avg_pool3d", &x2, 1,
	        "kernel=[3,2,3] stride=[2,1,2] pad=[1,1,0] ceil_mode=true");
	CHECK(y && is_type(m, y, "f32[1,1,4,9,4]"));
	CHECK(failed_with(add(m, "max_pool3d", &x, 1, "kernel=2 pad=2"),
	                  "pad[0] is 2, expected at most half the kernel (1)"));
	CHECK(failed_with(add(m, "avg_pool3d", &x, 1, "kernel=7"), "output size"));

	ValueId u = in_(m, "f32[1,1,5,4,3]");
	y = add(m, "upsample", &u, 1, "scale=[1.5,2,0.7]");
	CHECK(y && is_type(m, y, "f32[1,1,7,8,2]"));
	CHECK(ir_node_cost(m, &m->nodes[last_node]).flops == 0);
	y = add(m, "upsample", &u, 1, "scale=2 mode=trilinear");
	CHECK(y && is_type(m, y, "f32[1,1,10,8,6]"));
	CHECK(ir_node_cost(m, &m->nodes[last_node]).flops == 14.0 * 480);
	y = add(m, "upsample", &u, 1, "size=[3,4,5] mode=trilinear align_corners=true");
	CHECK(y && is_type(m, y, "f32[1,1,3,4,5]"));
	CHECK(failed_with(add(m, "upsample", &u, 1, "scale=2 size=3"),
	                  "exactly one of scale and size"));
	CHECK(failed_with(add(m, "upsample", &u, 1, ""), "neither scale nor size"));
	CHECK(failed_with(add(m, "upsample", &u, 1, "scale=2 mode=bilinear"),
	                  "mode is 'bilinear', expected 'nearest' or 'trilinear'"));
	CHECK(failed_with(add(m, "upsample", &u, 1, "scale=0.1"), "output size"));
	ir_module_free(m);
}

static void
test_elementwise_index(void)
{
	Module *m = ir_module_new("elt");
	ValueId a = in_(m, "f32[2,1,4]"), b = in_(m, "f32[3,1]");
	ValueId y = add(m, "add", (ValueId[]){ a, b }, 2, NULL);
	CHECK(y && is_type(m, y, "f32[2,3,4]"));
	CHECK(ir_node_cost(m, &m->nodes[last_node]).flops == 24);
	ValueId c = in_(m, "f32[2,3]"), e = in_(m, "f32[4]");
	CHECK(failed_with(add(m, "mul", (ValueId[]){ c, e }, 2, NULL),
	                  "cannot broadcast f32[2,3] with f32[4]"));
	y = add(m, "silu", &c, 1, NULL);
	CHECK(y && is_type(m, y, "f32[2,3]") && ir_node_cost(m, &m->nodes[last_node]).flops == 24);
	CHECK(failed_with(add(m, "gelu", &c, 1, "approximate=fast"), "approximate is 'fast'"));
	CHECK(failed_with(add(m, "softmax", &c, 1, "axis=2"), "axis 2 out of range"));
	y = add(m, "softmax", &c, 1, "axis=-2");
	CHECK(y && is_type(m, y, "f32[2,3]"));

	ValueId x = in_(m, "f32[2,3,4]");
	y = add(m, "reshape", &x, 1, "shape=[-1,4]");
	CHECK(y && is_type(m, y, "f32[6,4]"));
	CHECK(failed_with(add(m, "reshape", &x, 1, "shape=[-1,-1]"), "more than one -1"));
	CHECK(failed_with(add(m, "reshape", &x, 1, "shape=[5,5]"), "has 24 elements"));
	CHECK(failed_with(add(m, "reshape", &x, 1, "shape=[-1,5]"), "cannot infer -1"));
	y = add(m, "permute", &x, 1, "perm=[2,0,1]");
	CHECK(y && is_type(m, y, "f32[4,2,3]"));
	y = add(m, "permute", &x, 1, "perm=[-1,0,1]");
	CHECK(y && is_type(m, y, "f32[4,2,3]"));
	CHECK(failed_with(add(m, "permute", &x, 1, "perm=[0,0,1]"), "not a permutation"));
	CHECK(failed_with(add(m, "permute", &x, 1, "perm=[0,1]"), "expected 3 (the rank)"));

	ValueId s = in_(m, "f32[3,10]");
	y = add(m, "slice", &s, 1, "axis=-1 start=1 end=-1 step=3");
	CHECK(y && is_type(m, y, "f32[3,3]"));
	y = add(m, "slice", &s, 1, "axis=1 start=-3 end=100");
	CHECK(y && is_type(m, y, "f32[3,3]"));
	y = add(m, "slice", &s, 1, "axis=0 start=-100 end=2");
	CHECK(y && is_type(m, y, "f32[2,10]"));
	CHECK(failed_with(add(m, "slice", &s, 1, "axis=1 start=5 end=2"), "is empty"));
	CHECK(failed_with(add(m, "slice", &s, 1, "axis=1 start=0 end=2 step=0"), "step is 0"));
	CHECK(failed_with(add(m, "slice", &s, 1, "axis=2 start=0 end=2"), "axis 2 out of range"));

	ValueId p = in_(m, "f32[2,3,4]"), q = in_(m, "f32[2,3,1]");
	y = add(m, "concat", (ValueId[]){ p, q, p }, 3, "axis=-1");
	CHECK(y && is_type(m, y, "f32[2,3,9]"));
	y = add(m, "concat", &p, 1, "axis=0");
	CHECK(y && is_type(m, y, "f32[2,3,4]"));
	CHECK(failed_with(add(m, "concat", (ValueId[]){ p, q }, 2, "axis=1"),
	                  "operand 1 has type"));

	ValueId r = in_(m, "f32[2,3,4,5]");
	y = add(m, "reduce_sum", &r, 1, "axes=[1,-1]");
	CHECK(y && is_type(m, y, "f32[2,4]"));
	CHECK(ir_node_cost(m, &m->nodes[last_node]).flops == 120);
	y = add(m, "reduce_max", &r, 1, "axes=[1,-1] keepdim=true");
	CHECK(y && is_type(m, y, "f32[2,1,4,1]"));
	CHECK(failed_with(add(m, "reduce_mean", &r, 1, "axes=[1,-3]"), "given twice"));
	CHECK(failed_with(add(m, "reduce_mean", &r, 1, "axes=[4]"), "axis 4 out of range"));
	CHECK(failed_with(add(m, "reduce_mean", &r, 1, "axes=[]"), "expected at least one"));
	y = add(m, "moments", &r, 1, "axes=[2,3]");
	CHECK(y && is_type(m, y, "f32[2,3,1,1]") &&
	      is_type(m, m->nodes[last_node].out[1], "f32[2,3,1,1]"));
	CHECK(ir_node_cost(m, &m->nodes[last_node]).flops == 360);

	y = add(m, "constant", NULL, 0, "value=0.5 shape=[2,3]");
	CHECK(y && is_type(m, y, "f32[2,3]"));
	y = add(m, "constant", NULL, 0, "value=2");
	CHECK(y && is_type(m, y, "f32[]"));
	CHECK(failed_with(add(m, "constant", NULL, 0, "value=2 dtype=f99"), "unknown dtype 'f99'"));
	ValueId wu = w_(m, "untyped.weight", "f32[?]");
	CHECK(failed_with(add(m, "relu", &wu, 1, NULL), "has no type yet"));
	ir_module_free(m);
}

static void
test_norms(void)
{
	Module *m = ir_module_new("norm");
	ValueId x = in_(m, "f32[2,4,3,5,6]");
	ValueId w = w_(m, "in.weight", "f32[?]"), b = w_(m, "in.bias", "f32[?]");
	ValueId y = add(m, "instance_norm", (ValueId[]){ x, w, b }, 3, "affine=true");
	CHECK(y && is_type(m, y, "f32[2,4,3,5,6]") && is_type(m, w, "f32[4]") &&
	      is_type(m, b, "f32[4]"));
	CHECK(ir_node_cost(m, &m->nodes[last_node]).flops == 7.0 * 720);
	y = add(m, "instance_norm", (ValueId[]){ x, 0, 0 }, 3, NULL);
	CHECK(y && is_type(m, y, "f32[2,4,3,5,6]"));
	ValueId x2 = in_(m, "f32[2,4]");
	CHECK(failed_with(add(m, "instance_norm", (ValueId[]){ x2, 0, 0 }, 3, NULL),
	                  "expected rank 3 or more"));
	ValueId gw = w_(m, "gn.weight", "f32[?]"), gb = w_(m, "gn.bias", "f32[?]");
	y = add(m, "group_norm", (ValueId[]){ x, gw, gb }, 3, "groups=2");
	CHECK(y && is_type(m, gw, "f32[4]"));
	CHECK(failed_with(add(m, "group_norm", (ValueId[]){ x, gw, gb }, 3, "groups=3"),
	                  "not divisible by groups=3"));
	ValueId lw = w_(m, "ln.weight", "f32[?]"), lb = w_(m, "ln.bias", "f32[?]");
	y = add(m, "layer_norm", (ValueId[]){ x, lw, lb }, 3, "dims=2");
	CHECK(y && is_type(m, lw, "f32[5,6]") && is_type(m, lb, "f32[5,6]"));
	CHECK(failed_with(add(m, "layer_norm", (ValueId[]){ x2, 0, 0 }, 3, "dims=3 affine=false"),
	                  "dims is 3"));
	ValueId bw = w_(m, "bn.weight", "f32[?]"), bb = w_(m, "bn.bias", "f32[?]");
	ValueId rm = w_(m, "bn.running_mean", "f32[?]"), rv = w_(m, "bn.running_var", "f32[?]");
	ValueId nb = w_(m, "bn.num_batches_tracked", "f32[?]");
	y = add(m, "batch_norm", (ValueId[]){ x, bw, bb, rm, rv, nb }, 6, NULL);
	CHECK(y && is_type(m, rm, "f32[4]") && is_type(m, nb, "i64[]"));
	CHECK(ir_param_count(m) == 4 + 4 + 4 + 4 + 30 + 30 + 4 * 4 + 1);
	ValueId x3 = in_(m, "f32[2,5,3]");
	CHECK(failed_with(add(m, "batch_norm", (ValueId[]){ x3, bw, bb, rm, rv, nb }, 6, NULL),
	                  "weight 'bn.weight' has shape f32[4], expected f32[5]"));
	ir_module_free(m);
}

/* print into a malloc'ed string */
static char *
print_str(const Module *m, unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ir_print_ex(m, f, flags);
	fclose(f);
	return buf;
}

/* print -> parse -> print gives the same text; returns the text (caller frees) */
static char *
round_trip(const Module *m)
{
	char *t1 = print_str(m, 0);
	Diag d;
	diag_init(&d, stderr);
	Module *p = ir_parse(t1, "rt.ir", &d);
	CHECK(p != NULL);
	if (!p) {
		fprintf(stderr, "%s", t1);
		return t1;
	}
	CHECK(ir_verify(p, &d) == 0);
	char *t2 = print_str(p, 0);
	if (strcmp(t1, t2))
		fprintf(stderr, "round trip differs:\n%s---\n%s", t1, t2);
	CHECK(!strcmp(t1, t2));
	free(t2);
	ir_module_free(p);
	return t1;
}

static Module *
small_unet(void)
{
	Module *m = ir_module_new("small-unet");
	ir_add_param(m, "C", "8");
	ir_add_param(m, "prune", "[0.5,0.7]");
	Loc l = { "g.json", "/body/0", "enc.0, /body/4" };
	ValueId x = ir_add_input(m, "x", ty("f32[1,2,8,8,8]"), l);
	ValueId w = w_(m, "enc.conv.weight", "f32[?]"), b = w_(m, "enc.conv.bias", "f32[?]");
	ValueId y = add(m, "conv3d", (ValueId[]){ x, w, b }, 3, "cout=8 kernel=3 pad=1");
	ValueId gw = w_(m, "enc.norm.weight", "f32[?]"), gb = w_(m, "enc.norm.bias", "f32[?]");
	y = add(m, "group_norm", (ValueId[]){ y, gw, gb }, 3, "groups=4 eps=1e-05");
	y = add(m, "leaky_relu", &y, 1, "slope=0.1");
	ValueId p = add(m, "max_pool3d", &y, 1, "kernel=2 ceil_mode=true");
	ValueId u = add(m, "upsample", &p, 1, "scale=[2,2,2] mode=trilinear");
	ValueId cat = add(m, "concat", (ValueId[]){ y, u }, 2, "axis=1");
	ValueId k = add(m, "constant", NULL, 0, "value=0.1 shape=[1]");
	ValueId s = add(m, "mul", (ValueId[]){ cat, k }, 2, NULL);
	ValueId mo = add(m, "moments", &s, 1, "axes=[2,3,4] eps=0.30000000000000004");
	ValueId cl = add(m, "clamp", &mo, 1, "max=1e300");
	ValueId r = add(m, "reshape", &s, 1, "shape=[1,16,-1]");
	ValueId t = add(m, "permute", &r, 1, "perm=[0,2,1]");
	ValueId fw = w_(m, "head.weight", "f32[?]");
	ValueId o = add(m, "linear", (ValueId[]){ t, fw, 0 }, 3, "out=3 bias=false");
	ValueId g = add(m, "gelu", &o, 1, "approximate=tanh");
	w_(m, "unused.weight", "f32[?]");
	ir_add_output(m, g, "logits");
	ir_add_output(m, cl, "stats \"quoted\"");
	ir_count_uses(m);
	return m;
}

static void
test_text(void)
{
	Module *m = small_unet();
	Diag d;
	diag_init(&d, stderr);
	CHECK(ir_verify(m, &d) == 0);
	char *t = round_trip(m);
	CHECK(strstr(t, "; segc-ir/1 small-unet\n") == t);
	CHECK(strstr(t, "%1:f32[1,2,8,8,8] = input {name=\"x\"}\n"));
	CHECK(strstr(t, "= conv3d %1, %2, %3 {cout=8 kernel=[3,3,3] stride=[1,1,1] pad=[1,1,1] "
	                "dilation=[1,1,1] groups=1 bias=true}\n"));
	CHECK(strstr(t, "= linear %18, %19, _ {out=3 bias=false}\n"));
	CHECK(strstr(t, "eps=0.30000000000000004}"));
	CHECK(strstr(t, "= clamp %14 {max=1e+300}\n"));
	CHECK(strstr(t, "%22:f32[?] = weight"));
	CHECK(strstr(t, "output \"stats \\\"quoted\\\"\" %16\n"));
	free(t);

	/* locations are an option; the parser skips them */
	t = print_str(m, IR_PRINT_LOC);
	CHECK(strstr(t, "= input {name=\"x\"}  ; /body/0 (enc.0, /body/4)\n"));
	Module *p = ir_parse(t, "loc.ir", &d);
	CHECK(p && p->nnodes == m->nnodes);
	ir_module_free(p);
	free(t);

	/* groups and the memory plan print as comments, which the parser skips */
	Group *gr = ARENA_PUSH(m->arena, m->groups, m->ngroups, m->capgroups);
	memset(gr, 0, sizeof *gr);
	gr->root = 3;
	gr->nodes = (NodeId[]){ 3, 6, 7 };
	gr->nnodes = 3;
	gr->name = "k0_conv3d";
	gr->vector = 8;
	m->values[m->nodes[7].out[0]].storage = ST_ARENA;
	m->values[m->nodes[7].out[0]].offset = 1024;
	m->values[1].storage = ST_INPUT;
	m->values[1].slot = 1;
	m->arena_bytes = 4096;
	m->naive_bytes = 8192;
	t = print_str(m, 0);
	CHECK(strstr(t, "; kernel k0_conv3d = [%4 %7 %8] vector=8\n"));
	CHECK(strstr(t, "; %1 input slot 1\n; %8 arena+1024\n"));
	CHECK(strstr(t, "; arena 4096 bytes (naive 8192)\n"));
	p = ir_parse(t, "plan.ir", &d);
	CHECK(p && p->ngroups == 0);
	ir_module_free(p);
	free(t);
	ir_module_free(m);
}

static void
parse_fails(const char *text, const char *want)
{
	Diag d;
	diag_init(&d, NULL);
	Module *p = ir_parse(text, "bad.ir", &d);
	CHECK(p == NULL);
	if (!strstr(d.first, want))
		fprintf(stderr, "  parse error '%s', expected '%s'\n", d.first, want);
	CHECK(strstr(d.first, want) != NULL);
	ir_module_free(p);
}

static void
test_parse_errors(void)
{
	const char *h = "; segc-ir/1 t\n%1:f32[1,2] = input {name=\"x\"}\n";
	char b[512];
	parse_fails("%1:f32[1] = input {name=\"x\"}\n", "bad.ir:1:1: error: expected the header");
	snprintf(b, sizeof b, "%s%%2:f32[1,3] = relu %%1\n", h);
	parse_fails(b, "bad.ir:3:1: error: %2 is written as f32[1,3], but relu gives f32[1,2]");
	snprintf(b, sizeof b, "%s%%2:f32[1,2] = frob %%1\n", h);
	parse_fails(b, "bad.ir:3:15: error: unknown op 'frob'");
	snprintf(b, sizeof b, "%s%%2:f32[1,2] = relu %%7\n", h);
	parse_fails(b, "bad.ir:3:20: error: %7 is not defined above");
	snprintf(b, sizeof b, "%s%%1:f32[1,2] = relu %%1\n", h);
	parse_fails(b, "bad.ir:3:1: error: %1 is defined twice");
	snprintf(b, sizeof b, "%s%%2:f32[1,2] = leaky_relu %%1 {slope=x}\n", h);
	parse_fails(b, "bad.ir:3:36: error: expected a number");
	snprintf(b, sizeof b, "%s%%2:f32[1,2] = leaky_relu %%1 {slop=1}\n", h);
	parse_fails(b, "leaky_relu has no attribute 'slop'");
	snprintf(b, sizeof b, "%s%%2:f32[2] = reduce_sum %%1 {axes=[5]}\n", h);
	parse_fails(b, "bad.ir:3:1: error: reduce_sum: axis 5 out of range");
	snprintf(b, sizeof b, "%soutput \"y\" %%1 junk\n", h);
	parse_fails(b, "bad.ir:3:15: error: unexpected text");
	snprintf(b, sizeof b, "%soutput \"y %%1\n", h);
	parse_fails(b, "unterminated string");
	snprintf(b, sizeof b, "; after canon\n;\n%s%%2:f32[1,2] = relu %%1 {}\n", h);
	Diag d;
	diag_init(&d, stderr);
	Module *p = ir_parse(b, "ok.ir", &d);
	CHECK(p != NULL);
	ir_module_free(p);
}

static void
test_verify(void)
{
	Module *m = small_unet();
	Diag d;
	diag_init(&d, NULL);
	CHECK(ir_verify(m, &d) == 0);
	/* a wrong result type (node 6 is the group_norm) */
	m->values[m->nodes[6].out[0]].type.dims[1] = 99;
	CHECK(ir_verify(m, &d) < 0 && strstr(d.first, "its shape rule gives"));
	m->values[m->nodes[6].out[0]].type.dims[1] = 8;
	/* an operand defined later */
	diag_init(&d, NULL);
	ValueId save = m->nodes[6].in[0];
	m->nodes[6].in[0] = m->nodes[8].out[0];
	CHECK(ir_verify(m, &d) < 0 && strstr(d.first, "not defined by an earlier live node"));
	m->nodes[6].in[0] = save;
	/* a dead producer (node 3 is the conv) */
	diag_init(&d, NULL);
	m->nodes[3].dead = 1;
	CHECK(ir_verify(m, &d) < 0);
	m->nodes[3].dead = 0;
	/* a second definition */
	diag_init(&d, NULL);
	ValueId o = m->nodes[7].out[0];
	m->nodes[7].out[0] = m->nodes[6].out[0];
	CHECK(ir_verify(m, &d) < 0 && strstr(d.first, "defined more than once"));
	m->nodes[7].out[0] = o;
	/* a missing required attribute */
	diag_init(&d, NULL);
	m->nodes[3].attrs[0].present = 0;
	CHECK(ir_verify(m, &d) < 0 && strstr(d.first, "attribute 'cout' is missing"));
	m->nodes[3].attrs[0].present = 1;
	/* a weight operand with the wrong layout */
	diag_init(&d, NULL);
	m->values[m->nodes[1].out[0]].type.dims[0] = 7;
	CHECK(ir_verify(m, &d) < 0 && strstr(d.first, "weight 'enc.conv.weight' has shape"));
	m->values[m->nodes[1].out[0]].type.dims[0] = 8;
	diag_init(&d, NULL);
	CHECK(ir_verify(m, &d) == 0);
	ir_module_free(m);
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	size_t got = fread(b, 1, (size_t)n, f);
	b[got] = 0;
	fclose(f);
	return b;
}

/* every .ir file in dir must parse, verify and print back byte for byte */
static void
test_files(const char *dir)
{
	DIR *dp = opendir(dir);
	int count = 0;
	struct dirent *e;

	if (!dp) {
		fprintf(stderr, "test_ir: cannot open %s\n", dir);
		failures++;
		return;
	}
	while ((e = readdir(dp))) {
		size_t l = strlen(e->d_name);
		if (l < 4 || strcmp(e->d_name + l - 3, ".ir"))
			continue;
		char path[8192];
		if (snprintf(path, sizeof path, "%s/%.255s", dir, e->d_name) >= (int)sizeof path)
			continue;
		char *text = read_file(path);
		Diag d;
		diag_init(&d, stderr);
		Module *m = text ? ir_parse(text, path, &d) : NULL;
		count++;
		if (!m || ir_verify(m, &d) < 0) {
			fprintf(stderr, "test_ir: %s does not parse or verify\n", path);
			failures++;
		} else {
			char *out = print_str(m, 0);
			if (strcmp(out, text)) {
				fprintf(stderr, "test_ir: %s does not round-trip; printed:\n%s",
				        path, out);
				failures++;
			}
			free(out);
		}
		ir_module_free(m);
		free(text);
	}
	closedir(dp);
	if (count == 0) {
		fprintf(stderr, "test_ir: no .ir files in %s\n", dir);
		failures++;
	}
	printf("test_ir: %d .ir files round-tripped from %s\n", count, dir);
}

int
main(int argc, char **argv)
{
	char dir[4096];

	if (op_init() < 0) {
		fprintf(stderr, "test_ir: op_init failed\n");
		return 1;
	}
	CHECK(op_lookup("conv3d") >= 0 && op_lookup("nope") < 0);
	CHECK(optab[OP_conv3d].noperands == 3 && optab[OP_conv3d].opspec[2].when >= 0);
	test_conv();
	test_conv_transpose();
	test_linear_matmul();
	test_pool_upsample();
	test_elementwise_index();
	test_norms();
	test_text();
	test_parse_errors();
	test_verify();
	if (argc > 1) {
		snprintf(dir, sizeof dir, "%s", argv[1]);
	} else {
		/* tests/ir next to this file's folder */
		snprintf(dir, sizeof dir, "%s", __FILE__);
		char *slash = strrchr(dir, '/');
		if (slash)
			snprintf(slash, sizeof dir - (size_t)(slash - dir), "/../ir");
		else
			snprintf(dir, sizeof dir, "tests/ir");
	}
	test_files(dir);
	if (failures) {
		fprintf(stderr, "test_ir: %d checks failed\n", failures);
		return 1;
	}
	printf("test_ir: ok\n");
	return 0;
}
