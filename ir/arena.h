/* ir/arena.h -- bump allocator: every IR object lives in an arena and dies with it.
 *
 * Arenas never free single objects.  arena_alloc() aborts with "segc: out of memory"
 * (the compiler is a short-lived process); the runtime never uses arenas. */
#ifndef SEGC_ARENA_H
#define SEGC_ARENA_H
#include <stddef.h>
#include <stdint.h>

typedef struct Arena Arena;

Arena *arena_new(void);
void arena_free(Arena *a);                       /* frees every block; a may be NULL */
void *arena_alloc(Arena *a, size_t n);           /* 16-byte aligned, uninitialised */
void *arena_zalloc(Arena *a, size_t n);          /* zeroed */
char *arena_strdup(Arena *a, const char *s);     /* NULL stays NULL */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *arena_memdup(Arena *a, const void *p, size_t n);
size_t arena_used(const Arena *a);               /* bytes handed out so far */

/* Growable arrays that live in the arena: grow by doubling, copying into the arena.
 * The old storage is abandoned (never freed), which is fine for compiler-sized data. */
void *arena_grow(Arena *a, void *p, size_t elem, uint32_t n, uint32_t *cap);
#define ARENA_PUSH(a, arr, n, cap) \
	((arr) = arena_grow((a), (arr), sizeof *(arr), (n), &(cap)), &(arr)[(n)++])

#define countof(x) (sizeof(x) / sizeof((x)[0]))

static inline int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static inline int64_t
max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

#endif
