#include "arena.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SN_ARENA_CHUNK (64 * 1024)

struct sn_arena_chunk {
	struct sn_arena_chunk *next;
	size_t used;
	size_t size;
	max_align_t data[];
};

void sn_arena_init(struct sn_arena *a)
{
	a->head = NULL;
	a->allocated = 0;
}

void sn_arena_free(struct sn_arena *a)
{
	struct sn_arena_chunk *c = a->head;

	while (c) {
		struct sn_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->allocated = 0;
}

void *sn_arena_alloc(struct sn_arena *a, size_t size)
{
	const size_t align = _Alignof(max_align_t);
	struct sn_arena_chunk *c = a->head;
	size_t need;
	bool zeroed = false;

	if (size > SIZE_MAX - align)
		return NULL;
	need = (size + align - 1) & ~(align - 1);
	if (!c || c->size - c->used < need) {
		size_t sz = need > SN_ARENA_CHUNK ? need : SN_ARENA_CHUNK;

		if (sz > SIZE_MAX - sizeof(*c))
			return NULL;
		/* A one-off block (a big list's entries: tens of MB) comes
		 * from calloc, which gets fresh zero pages from the kernel
		 * without writing them: no memset pass over it, and pages
		 * the caller never touches cost no memory. */
		zeroed = need > SN_ARENA_CHUNK;
		c = zeroed ? calloc(1, sizeof(*c) + sz) : malloc(sizeof(*c) + sz);
		if (!c)
			return NULL;
		c->used = 0;
		c->size = sz;
		/* A large one-off block goes behind the current chunk so the
		 * space left in the current chunk is not wasted. */
		if (a->head && need > SN_ARENA_CHUNK) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	void *p = (char *)c->data + c->used;
	c->used += need;
	a->allocated += need;
	if (!zeroed)
		memset(p, 0, size);
	return p;
}

void *sn_arena_calloc(struct sn_arena *a, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return sn_arena_alloc(a, n * size);
}

char *sn_arena_strndup(struct sn_arena *a, const char *s, size_t n)
{
	char *p = sn_arena_alloc(a, n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

char *sn_arena_strdup(struct sn_arena *a, const char *s)
{
	return sn_arena_strndup(a, s, strlen(s));
}

char *sn_arena_printf(struct sn_arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = sn_arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}
