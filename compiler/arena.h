/*
 * Per-compile bump allocator.  One arena owns the AST, the resolved policy
 * and the IR of one compile, so a compile is freed in one call and no stage
 * has to track ownership of the structures it shares with the next.
 */
#ifndef SN_ARENA_H
#define SN_ARENA_H

#include <stddef.h>

struct sn_arena_chunk;

struct sn_arena {
	struct sn_arena_chunk *head;
	size_t allocated; /* bytes handed out, for capacity reporting */
};

void sn_arena_init(struct sn_arena *a);
void sn_arena_free(struct sn_arena *a);

/* Zeroed memory aligned for any type; NULL only when out of memory. */
void *sn_arena_alloc(struct sn_arena *a, size_t size);
void *sn_arena_calloc(struct sn_arena *a, size_t n, size_t size);
char *sn_arena_strdup(struct sn_arena *a, const char *s);
char *sn_arena_strndup(struct sn_arena *a, const char *s, size_t n);
/* printf into the arena. */
char *sn_arena_printf(struct sn_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
