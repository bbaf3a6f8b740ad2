/* test_reload.c -- publishing zones: readers keep what they hold, retired zones are freed;
 * which reloads are applied, held or rejected. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "svcmapd/reload.h"
#include "tap.h"

static struct zone *make(const char *ip, time_t now)
{
    char text[128];
    snprintf(text, sizeof(text), "[namespace a]\nx = %s\n", ip);
    struct diag d;
    diag_init(&d, "r.ini");
    struct config *cfg = config_parse(text, strlen(text), &d);
    struct zone *z = cfg ? zone_compile(cfg, NULL, now, &d) : NULL;
    config_free(cfg);
    diag_finish(&d);
    return z;
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

/* A mapping of services s1..sN (s`first`.. on), with `server` lines. */
struct mapping {
    struct config *cfg;
    struct zone *zone;
};

static struct mapping mapping(int first, int n, const char *server, const struct zone *old)
{
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof(text), "[server]\n%s\n[namespace a]\n", server);
    for (int i = first; i < first + n; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "s%d = 10.0.%d.%d\n", i, i / 250,
                                i % 250 + 1);
    struct diag d;
    diag_init(&d, "r.ini");
    struct mapping m = {.cfg = config_parse(text, len, &d)};
    m.zone = m.cfg ? zone_compile(m.cfg, old, 1, &d) : NULL;
    diag_finish(&d);
    return m;
}

static void mapping_free(struct mapping *m)
{
    zone_free(m->zone);
    config_free(m->cfg);
}

/* The verdict on going from `running` services to s1..s`keep` with `server`. */
static enum reload_verdict verdict(int running, int keep, const char *server)
{
    struct mapping old = mapping(1, running, "", NULL);
    struct mapping new = mapping(1, keep, server, old.zone);
    enum reload_verdict v = reload_decide(new.cfg, new.zone, old.zone);
    mapping_free(&new);
    mapping_free(&old);
    return v;
}

static void test_decide(void)
{
    struct mapping m = mapping(1, 3, "", NULL);
    is_int(reload_decide(m.cfg, NULL, m.zone), RELOAD_REJECT, "no zone: rejected");
    is_int(reload_decide(m.cfg, m.zone, NULL), RELOAD_APPLY, "nothing running: applied");
    mapping_free(&m);

    is_int(verdict(3, 1, ""), RELOAD_APPLY, "2 of 3 removed: under the floor");
    is_int(verdict(12, 2, ""), RELOAD_APPLY, "10 of 12 removed: at the floor");
    is_int(verdict(12, 1, ""), RELOAD_HOLD, "11 of 12 removed: held");
    is_int(verdict(100, 50, ""), RELOAD_APPLY, "50 of 100 removed: 50%% is allowed");
    is_int(verdict(100, 49, ""), RELOAD_HOLD, "51 of 100 removed: held");
    is_int(verdict(41, 1, "confirm-removal = 40"), RELOAD_APPLY, "40 removed, 40 confirmed");
    is_int(verdict(41, 1, "confirm-removal = 39"), RELOAD_HOLD, "40 removed, 39 confirmed");
    is_int(verdict(41, 0, "confirm-removal = 40"), RELOAD_HOLD,
           "a torn copy of the confirming file removes 41: held");
    is_int(verdict(100, 0, "max-removal = 100"), RELOAD_APPLY, "max-removal = 100: no guard");
    is_int(verdict(100, 89, "max-removal = 0"), RELOAD_HOLD, "max-removal = 0: 11 removed held");
    is_int(verdict(100, 90, "max-removal = 0"), RELOAD_APPLY, "max-removal = 0: the floor stays");

    /* all replaced by new names: every running service counts as removed */
    struct mapping old = mapping(1, 20, "", NULL);
    struct mapping new = mapping(100, 20, "", old.zone);
    is_int(reload_decide(new.cfg, new.zone, old.zone), RELOAD_HOLD, "20 renamed: 20 removed");
    mapping_free(&new);
    mapping_free(&old);
}

int main(void)
{
    test_hazards();
    test_race();
    test_decide();
    return done_testing();
}
