/* arena.h -- bump allocation for data that lives and dies together. */
#ifndef SVCMAPD_ARENA_H
#define SVCMAPD_ARENA_H

#include <stddef.h>

/*
 * A compiled zone or a parsed config is millions of small objects that are
 * all freed at once; an arena makes that one free per chunk instead of one
 * per object, and keeps them close together in memory.
 */
struct arena;

/* Returns a new empty arena, or NULL when out of memory. */
struct arena *arena_new(void);

/* Frees every allocation made from `a`, then `a` itself. NULL is a no-op. */
void arena_free(struct arena *a);

/* Returns `size` bytes aligned to 8 (enough for every type but long
 * double), or NULL when out of memory. The memory belongs to the arena. */
void *arena_alloc(struct arena *a, size_t size);

/* Like arena_alloc, zero-filled. */
void *arena_zalloc(struct arena *a, size_t size);

/* Copies `len` bytes of `src` into the arena. */
void *arena_memdup(struct arena *a, const void *src, size_t len);

/* Copies the first `len` bytes of `s` into the arena as a C string. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Frees every allocation at once but keeps memory for the next ones. */
void arena_reset(struct arena *a);

/* Bytes requested from the system so far (for the reload log). */
size_t arena_size(const struct arena *a);

#endif
