/* zone_ref.c -- the current zone, published to reader threads with hazard pointers. */
#include "svcmapd/zone_ref.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "svcmapd/zone.h"

/*
 * Reclamation: hazard pointers, one slot per reader thread.
 *
 * A reader announces the zone it is about to use by storing it in its own
 * slot, then checks the current pointer again: if it still matches, the
 * publisher cannot have missed the announcement, because both sides use
 * sequentially consistent operations (the reader: store slot, load current;
 * the publisher: exchange current, load slots). A retired zone is freed as
 * soon as no slot holds it. Readers enter once per batch of queries, so the
 * cost is one store and one load per batch, and a reader idle in epoll_wait
 * holds nothing: reloads never wait for traffic, as an epoch scheme would.
 *
 * A reader that goes on reading a zone after it has left (a zone transfer,
 * written over many turns of its loop) holds it first, from inside: a count
 * per zone, under a mutex that only holds, releases and the collector take.
 * The hold is made while the reader's slot still has the zone, so the
 * collector sees the one or the other. Holds last as long as their
 * transfer, and more reloads than expected may come meanwhile: the list
 * of retired zones grows as needed instead of making the publisher wait.
 */

struct hold {
    const struct zone *z;
    size_t n;
};

struct zone_ref {
    _Atomic(struct zone *) current;
    size_t nslots;
    struct zone **retired;
    size_t nretired, cap;
    pthread_mutex_t lock; /* the holds */
    struct hold *holds;
    size_t nholds, holdcap;
    _Atomic(struct zone *) slots[]; /* one per reader */
};

struct zone_ref *zone_ref_new(struct zone *initial, size_t readers)
{
    struct zone_ref *ref = calloc(1, sizeof(*ref) + readers * sizeof(ref->slots[0]));
    if (!ref)
        return NULL;
    if (pthread_mutex_init(&ref->lock, NULL) != 0) {
        free(ref);
        return NULL;
    }
    atomic_init(&ref->current, initial);
    ref->nslots = readers;
    for (size_t i = 0; i < readers; i++)
        atomic_init(&ref->slots[i], NULL);
    return ref;
}

void zone_ref_free(struct zone_ref *ref)
{
    if (!ref)
        return;
    zone_free(atomic_load(&ref->current));
    for (size_t i = 0; i < ref->nretired; i++)
        zone_free(ref->retired[i]);
    free(ref->retired);
    free(ref->holds);
    pthread_mutex_destroy(&ref->lock);
    free(ref);
}

const struct zone *zone_ref_enter(struct zone_ref *ref, size_t slot)
{
    struct zone *z = atomic_load(&ref->current);
    for (;;) {
        atomic_store(&ref->slots[slot], z);
        struct zone *again = atomic_load(&ref->current);
        if (again == z)
            return z;
        z = again;
    }
}

void zone_ref_leave(struct zone_ref *ref, size_t slot)
{
    atomic_store_explicit(&ref->slots[slot], NULL, memory_order_release);
}

const struct zone *zone_ref_current(struct zone_ref *ref)
{
    return atomic_load(&ref->current);
}

/* The entry of `z` among the holds, or NULL. Under the lock. */
static struct hold *find_hold(struct zone_ref *ref, const struct zone *z)
{
    for (size_t i = 0; i < ref->nholds; i++)
        if (ref->holds[i].z == z)
            return &ref->holds[i];
    return NULL;
}

int zone_ref_hold(struct zone_ref *ref, const struct zone *z)
{
    int r = 0;
    pthread_mutex_lock(&ref->lock);
    struct hold *h = find_hold(ref, z);
    if (!h && ref->nholds == ref->holdcap) {
        size_t cap = ref->holdcap ? ref->holdcap * 2 : 4;
        struct hold *v = realloc(ref->holds, cap * sizeof(*v));
        if (v) {
            ref->holds = v;
            ref->holdcap = cap;
        }
    }
    if (!h && ref->nholds < ref->holdcap) {
        h = &ref->holds[ref->nholds++];
        *h = (struct hold){z, 0};
    }
    if (h)
        h->n++;
    else
        r = -ENOMEM;
    pthread_mutex_unlock(&ref->lock);
    return r;
}

void zone_ref_release(struct zone_ref *ref, const struct zone *z)
{
    pthread_mutex_lock(&ref->lock);
    struct hold *h = find_hold(ref, z);
    if (h && --h->n == 0)
        *h = ref->holds[--ref->nholds];
    pthread_mutex_unlock(&ref->lock);
}

size_t zone_ref_collect(struct zone_ref *ref)
{
    size_t kept = 0;
    pthread_mutex_lock(&ref->lock);
    for (size_t i = 0; i < ref->nretired; i++) {
        struct zone *z = ref->retired[i];
        bool held = find_hold(ref, z) != NULL;
        for (size_t s = 0; s < ref->nslots && !held; s++)
            held = atomic_load(&ref->slots[s]) == z;
        if (held)
            ref->retired[kept++] = z;
        else
            zone_free(z);
    }
    pthread_mutex_unlock(&ref->lock);
    ref->nretired = kept;
    return kept;
}

void zone_ref_publish(struct zone_ref *ref, struct zone *z)
{
    struct zone *old = atomic_exchange(&ref->current, z);
    while (ref->nretired == ref->cap) {
        size_t cap = ref->cap ? ref->cap * 2 : 8;
        struct zone **v = realloc(ref->retired, cap * sizeof(*v));
        if (v) {
            ref->retired = v;
            ref->cap = cap;
            break;
        }
        /* No memory for the list: wait for a reader to let a zone go
         * rather than free what it reads. */
        if (zone_ref_collect(ref) == ref->cap) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    ref->retired[ref->nretired++] = old;
    zone_ref_collect(ref);
}
