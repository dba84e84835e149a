/* ir/arena.c -- bump allocator with a list of blocks. */
#include "arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Block Block;
struct Block {
	Block *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

struct Arena {
	Block *head;
	size_t total;
};

static _Noreturn void
oom(void)
{
	fputs("segc: out of memory\n", stderr);
	abort();
}

Arena *
arena_new(void)
{
	Arena *a = calloc(1, sizeof *a);
	if (!a)
		oom();
	return a;
}

void
arena_free(Arena *a)
{
	if (!a)
		return;
	for (Block *b = a->head, *nx; b; b = nx) {
		nx = b->next;
		free(b);
	}
	free(a);
}

void *
arena_alloc(Arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	Block *b = a->head;
	if (!b || b->size - b->used < n) {
		size_t sz = n > 65536 ? n : 65536;
		b = malloc(sizeof *b + sz);
		if (!b)
			oom();
		b->size = sz;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *p = b->data + b->used;
	b->used += n;
	a->total += n;
	return p;
}

void *
arena_zalloc(Arena *a, size_t n)
{
	void *p = arena_alloc(a, n);
	memset(p, 0, n);
	return p;
}

char *
arena_strndup(Arena *a, const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *
arena_strdup(Arena *a, const char *s)
{
	return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *
arena_printf(Arena *a, const char *fmt, ...)
{
	va_list ap, aq;
	va_start(ap, fmt);
	va_copy(aq, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *p = arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
	vsnprintf(p, (size_t)n + 1, fmt, aq);
	va_end(aq);
	return p;
}

void *
arena_memdup(Arena *a, const void *p, size_t n)
{
	void *q = arena_alloc(a, n);
	if (n)
		memcpy(q, p, n);
	return q;
}

size_t
arena_used(const Arena *a)
{
	return a->total;
}

void *
arena_grow(Arena *a, void *p, size_t elem, uint32_t n, uint32_t *cap)
{
	if (n < *cap)
		return p;
	uint32_t nc = *cap ? *cap * 2 : 8;
	void *q = arena_alloc(a, elem * nc);
	if (n)
		memcpy(q, p, elem * n);
	*cap = nc;
	return q;
}
