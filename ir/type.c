/* ir/type.c -- dtypes and static tensor types. */
#include "ir.h"

#include <string.h>

static const struct {
	const char *name;
	int size;
} dtypes[DT_COUNT] = {
	[DT_F32] = { "f32", 4 }, [DT_F16] = { "f16", 2 }, [DT_BF16] = { "bf16", 2 },
	[DT_I32] = { "i32", 4 }, [DT_I64] = { "i64", 8 }, [DT_U8] = { "u8", 1 },
};

int
dtype_size(int dt)
{
	SEGC_ASSERT(dt >= 0 && dt < DT_COUNT);
	return dtypes[dt].size;
}

const char *
dtype_name(int dt)
{
	return dt >= 0 && dt < DT_COUNT ? dtypes[dt].name : "?";
}

int
dtype_lookup(const char *name)
{
	for (int i = 0; i < DT_COUNT; i++)
		if (!strcmp(dtypes[i].name, name))
			return i;
	return -1;
}

int64_t
type_numel(const Type *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->dims[i];
	return n;
}

int64_t
type_bytes(const Type *t)
{
	return type_numel(t) * dtype_size(t->dtype);
}

int
value_dtype(const Value *v)
{
	return v->bf16 ? DT_BF16 : v->type.dtype;
}

int64_t
value_bytes(const Value *v)
{
	return type_numel(&v->type) * dtype_size(value_dtype(v));
}

int
type_equal(const Type *a, const Type *b)
{
	if (a->dtype != b->dtype || a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->dims[i] != b->dims[i])
			return 0;
	return 1;
}

char *
type_str(const Type *t, char *buf, size_t n)
{
	size_t k = (size_t)snprintf(buf, n, "%s[", dtype_name(t->dtype));
	if (t->rank < 0) {
		snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, "?]");
		return buf;
	}
	for (int i = 0; i < t->rank && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->dims[i]);
	if (k < n)
		snprintf(buf + k, n - k, "]");
	return buf;
}

Type
type_make(int dt, int rank, const int64_t *dims)
{
	Type t;
	memset(&t, 0, sizeof t);
	t.dtype = (uint8_t)dt;
	t.rank = (int8_t)rank;
	for (int i = 0; i < rank && i < IR_MAXRANK; i++)
		t.dims[i] = dims[i];
	return t;
}
