/* zone_ref.c -- the current zone, published to reader threads with hazard pointers. */
#include "svcmapd/zone_ref.h"

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
 */

#define MAX_RETIRED 64

struct zone_ref {
    _Atomic(struct zone *) current;
    size_t nslots;
    struct zone *retired[MAX_RETIRED];
    size_t nretired;
    _Atomic(struct zone *) slots[]; /* one per reader */
};

struct zone_ref *zone_ref_new(struct zone *initial, size_t readers)
{
    struct zone_ref *ref = calloc(1, sizeof(*ref) + readers * sizeof(ref->slots[0]));
    if (!ref)
        return NULL;
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

size_t zone_ref_collect(struct zone_ref *ref)
{
    size_t kept = 0;
    for (size_t i = 0; i < ref->nretired; i++) {
        struct zone *z = ref->retired[i];
        bool held = false;
        for (size_t s = 0; s < ref->nslots && !held; s++)
            held = atomic_load(&ref->slots[s]) == z;
        if (held)
            ref->retired[kept++] = z;
        else
            zone_free(z);
    }
    ref->nretired = kept;
    return kept;
}

void zone_ref_publish(struct zone_ref *ref, struct zone *z)
{
    struct zone *old = atomic_exchange(&ref->current, z);
    if (ref->nretired == MAX_RETIRED) {
        /* Readers hold a zone for one batch of queries; 64 reloads inside
         * one batch means a reader is stuck. Wait for it rather than free
         * what it reads. */
        while (zone_ref_collect(ref) == MAX_RETIRED) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    ref->retired[ref->nretired++] = old;
    zone_ref_collect(ref);
}
