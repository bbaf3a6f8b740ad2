/* test_zone_ref.c -- publishing zones: readers keep what they hold, retired zones are freed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "svcmapd/load.h"
#include "svcmapd/zone.h"
#include "svcmapd/zone_ref.h"
#include "tap.h"
#include "unit_zone.h"

static struct zone *make(const char *ip, time_t now)
{
    char text[128];
    snprintf(text, sizeof(text), "[namespace a]\nx = %s\n", ip);
    return zone_of_text("r.ini", text, NULL, now);
}

static void test_hazards(void)
{
    struct zone_ref *ref = zone_ref_new(make("10.0.0.1", 1), 2);
    const struct zone *held = zone_ref_enter(ref, 0);
    is_int(zone_stats(held)->serial, 1, "reader 0 holds the first zone");

    zone_ref_publish(ref, make("10.0.0.2", 2));
    is_int(zone_stats(zone_ref_current(ref))->serial, 2, "the new zone is current");
    is_int(zone_stats(held)->serial, 1, "the held zone is still readable (ASan would object)");
    is_int(zone_ref_collect(ref), 1, "the held zone waits");

    const struct zone *other = zone_ref_enter(ref, 1);
    is_int(zone_stats(other)->serial, 2, "a new reader gets the new zone");
    zone_ref_leave(ref, 1);

    zone_ref_leave(ref, 0);
    is_int(zone_ref_collect(ref), 0, "released: freed");

    zone_ref_publish(ref, make("10.0.0.3", 3));
    is_int(zone_ref_collect(ref), 0, "nobody inside: freed at once");
    zone_ref_free(ref);
}

/* A hold keeps a zone past the reader's leave, until released; holds
 * count. */
static void test_holds(void)
{
    struct zone_ref *ref = zone_ref_new(make("10.0.0.1", 1), 1);
    const struct zone *held = zone_ref_enter(ref, 0);
    is_int(zone_ref_hold(ref, held), 0, "a reader holds the zone it is inside");
    is_int(zone_ref_hold(ref, held), 0, "twice");
    zone_ref_leave(ref, 0);

    zone_ref_publish(ref, make("10.0.0.2", 2));
    is_int(zone_ref_collect(ref), 1, "held, the retired zone waits after its reader left");
    is_int(zone_stats(held)->serial, 1, "and is still readable (ASan would object)");
    zone_ref_release(ref, held);
    is_int(zone_ref_collect(ref), 1, "one hold of two released: it still waits");
    zone_ref_release(ref, held);
    is_int(zone_ref_collect(ref), 0, "the last released: freed");

    /* more retired zones than the list first had room for, all held */
    const struct zone *many[70];
    for (int i = 0; i < 70; i++) {
        many[i] = zone_ref_enter(ref, 0);
        zone_ref_hold(ref, many[i]);
        zone_ref_leave(ref, 0);
        zone_ref_publish(ref, make(i % 2 ? "10.0.0.1" : "10.0.0.2", i + 3));
    }
    is_int(zone_ref_collect(ref), 70,
           "70 held zones wait (more than the 64 the list once had room for), and publishing never "
           "did");
    for (int i = 0; i < 70; i++)
        zone_ref_release(ref, many[i]);
    is_int(zone_ref_collect(ref), 0, "released, all freed");
    zone_ref_free(ref);
}

struct race {
    struct zone_ref *ref;
    atomic_bool stop;
    atomic_long reads;
    atomic_long bad;
};

static void *reader(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(&r->stop)) {
        const struct zone *z = zone_ref_enter(r->ref, 0);
        /* touch the zone: a freed one would be caught by ASan, or read as garbage */
        const struct zone_stats *st = zone_stats(z);
        if (st->services != 1)
            atomic_fetch_add(&r->bad, 1);
        zone_ref_leave(r->ref, 0);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void test_race(void)
{
    struct race r = {.ref = zone_ref_new(make("10.0.0.1", 1), 1)};
    atomic_init(&r.stop, false);
    atomic_init(&r.reads, 0);
    atomic_init(&r.bad, 0);
    pthread_t t;
    pthread_create(&t, NULL, reader, &r);
    while (atomic_load(&r.reads) == 0)
        ; /* let the reader start */
    for (int i = 0; i < 300; i++) {
        zone_ref_publish(r.ref, make(i % 2 ? "10.0.0.1" : "10.0.0.2", i + 2));
        zone_ref_collect(r.ref);
    }
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    ok(atomic_load(&r.reads) > 0, "the reader read while 300 zones were published");
    is_int(atomic_load(&r.bad), 0, "it never saw a freed or mixed zone");
    is_int(zone_ref_collect(r.ref), 0, "all retired zones freed at the end");
    zone_ref_free(r.ref);
}

int main(void)
{
    test_hazards();
    test_holds();
    test_race();
    return done_testing();
}
