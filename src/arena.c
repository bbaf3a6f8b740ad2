/* arena.c -- bump allocation for data that lives and dies together. */
#include "svcmapd/arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_CHUNK (1024 * 1024)
#define ARENA_ALIGN 8

struct chunk {
    struct chunk *next;
    size_t size;
    size_t used;
    alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
    struct chunk *head;
    size_t total;
};

/* Past this much, an arena's new chunks are filled in at once. */
#define ARENA_POPULATE (4 * ARENA_CHUNK)

/* Chunks come straight from mmap: freeing a zone of half a gigabyte must
 * give the memory back to the system at once, which malloc's heap (after
 * glibc raises its mmap threshold) does not promise. An arena that has
 * grown large (`populate`) is filled on: its chunks get their pages in
 * one call (MAP_POPULATE) instead of one page fault per page, which a VM
 * charges 1-9 us each; small arenas keep their untouched pages unbacked. */
static struct chunk *chunk_new(size_t size, bool populate)
{
    void *p = mmap(NULL, sizeof(struct chunk) + size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct chunk *c = p;
    c->size = size;
    c->used = 0;
    return c;
}

static void chunk_free(struct chunk *c)
{
    munmap(c, sizeof(*c) + c->size);
}

struct arena *arena_new(void)
{
    return calloc(1, sizeof(struct arena));
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    struct chunk *c = a->head;
    while (c) {
        struct chunk *next = c->next;
        chunk_free(c);
        c = next;
    }
    free(a);
}

void *arena_alloc(struct arena *a, size_t size)
{
    /* 8, not max_align_t's 16: nothing here holds a long double, and
     * millions of small objects each save a few bytes */
    const size_t align = ARENA_ALIGN;
    size = (size + align - 1) & ~(align - 1);
    if (size == 0)
        size = align;

    struct chunk *c = a->head;
    if (!c || c->size - c->used < size) {
        /* Objects larger than a chunk get a chunk of their own, placed
         * behind the current one so its free space is not wasted. */
        size_t csize = size > ARENA_CHUNK / 4 ? size : ARENA_CHUNK;
        struct chunk *n = chunk_new(csize, a->total >= ARENA_POPULATE);
        if (!n)
            return NULL;
        a->total += sizeof(*n) + csize;
        if (c && csize != ARENA_CHUNK) {
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            a->head = n;
        }
        c = n;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

void *arena_zalloc(struct arena *a, size_t size)
{
    void *p = arena_alloc(a, size);
    if (p)
        memset(p, 0, size);
    return p;
}

void *arena_memdup(struct arena *a, const void *src, size_t len)
{
    void *p = arena_alloc(a, len);
    if (p && len)
        memcpy(p, src, len);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void arena_reset(struct arena *a)
{
    /* keep the newest chunk for what comes next; free the others */
    struct chunk *keep = a->head;
    if (!keep)
        return;
    struct chunk *c = keep->next;
    while (c) {
        struct chunk *next = c->next;
        a->total -= sizeof(*c) + c->size;
        chunk_free(c);
        c = next;
    }
    keep->next = NULL;
    keep->used = 0;
}

size_t arena_size(const struct arena *a)
{
    return a->total;
}
