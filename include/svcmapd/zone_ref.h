/* zone_ref.h -- the current zone, published to reader threads with hazard pointers. */
#ifndef SVCMAPD_ZONE_REF_H
#define SVCMAPD_ZONE_REF_H

#include <stddef.h>

struct zone;

/*
 * The current zone, shared by every thread that answers queries.
 * Readers bracket their use with zone_ref_enter()/zone_ref_leave(); a
 * published zone replaces the old one atomically, and the old one is freed
 * once no reader can still hold it (see zone_ref.c for the scheme). One
 * thread publishes and collects; any number of readers, one slot each.
 */
struct zone_ref;

/* Takes ownership of `initial`. `readers` is the number of reader slots,
 * one per thread that calls zone_ref_enter(). NULL when out of memory. */
struct zone_ref *zone_ref_new(struct zone *initial, size_t readers);

/* Frees the current zone and every retired one. No reader may be inside,
 * nor hold one.
 * NULL is a no-op. */
void zone_ref_free(struct zone_ref *ref);

/* Returns the current zone for reader `slot`, valid until zone_ref_leave(). */
const struct zone *zone_ref_enter(struct zone_ref *ref, size_t slot);
void zone_ref_leave(struct zone_ref *ref, size_t slot);

/* Keeps `z`, the zone a reader is inside (between its zone_ref_enter(),
 * which returned `z`, and zone_ref_leave()), from being freed after it
 * leaves, until zone_ref_release(): for a reader that reads one zone over
 * many turns of its loop (a zone transfer is one version of the zone, SPEC
 * §8). Holds count: each needs its release, which any thread may do.
 * Returns 0, or -ENOMEM (then `z` is not held). */
int zone_ref_hold(struct zone_ref *ref, const struct zone *z);
void zone_ref_release(struct zone_ref *ref, const struct zone *z);

/* The current zone, for the thread that publishes (no slot needed). */
const struct zone *zone_ref_current(struct zone_ref *ref);

/* Makes `z` current (taking ownership) and retires the previous zone. */
void zone_ref_publish(struct zone_ref *ref, struct zone *z);

/* Frees retired zones that no reader holds. Returns how many still wait. */
size_t zone_ref_collect(struct zone_ref *ref);

#endif
