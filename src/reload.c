/* reload.c -- SIGHUP: compile a new zone beside the old, publish it, retire the old. */
#include "svcmapd/reload.h"

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcmapd/log.h"
#include "svcmapd/notify.h"

#include "svcmapd/server.h"

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

/* ---------------------------------------------------------------------- */

struct reloader {
    struct event_base *base;
    const char *path;
    struct config *cfg;
    struct zone_ref *ref;
    struct server *srv;
    struct event *collect; /* retries freeing zones still held */
    struct reload_stats stats;
};

const struct reload_stats *reload_stats(const struct reloader *r)
{
    return &r->stats;
}

const struct config *reload_config(const struct reloader *r)
{
    return r->cfg;
}

static void on_collect(evutil_socket_t fd, short what, void *arg)
{
    struct reloader *r = arg;
    (void)fd;
    (void)what;
    if (zone_ref_collect(r->ref) > 0) {
        struct timeval tv = {0, 20000};
        event_add(r->collect, &tv);
    }
}

struct reloader *reload_new(struct event_base *base, const char *path, struct config *cfg,
                            struct zone_ref *ref, struct server *srv)
{
    struct reloader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = base;
    r->path = path;
    r->cfg = cfg;
    r->ref = ref;
    r->srv = srv;
    r->stats.last_ok = time(NULL);
    r->collect = evtimer_new(base, on_collect, r);
    if (!r->collect) {
        free(r);
        return NULL;
    }
    return r;
}

void reload_free(struct reloader *r)
{
    if (!r)
        return;
    event_free(r->collect);
    config_free(r->cfg);
    free(r);
}

static void log_diag_line(const char *line, void *arg)
{
    (void)arg;
    if (strstr(line, ": warning: "))
        log_warning("%s", line);
    else
        log_error("%s", line);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

int reload_run(struct reloader *r)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    notify_reloading();
    const struct zone *old = zone_ref_current(r->ref);
    uint32_t old_serial = zone_stats(old)->serial;

    struct diag d;
    diag_init(&d, r->path);
    struct config *cfg = config_load(r->path, &d);
    /* compiled even when the config has errors, to report the zone's too */
    struct zone *z = cfg ? zone_compile(cfg, old, time(NULL), &d) : NULL;
    diag_each(&d, log_diag_line, NULL);
    if (!z) {
        r->stats.failed++;
        notify("READY=1\nSTATUS=reload failed, serving the previous mapping");
        log_error("reload: failed (%u error%s in %s), still serving serial %u", d.errors,
                  d.errors == 1 ? "" : "s", r->path, old_serial);
        diag_finish(&d);
        config_free(cfg);
        return -EINVAL;
    }
    diag_finish(&d);

    if (!config_same_listen(cfg, r->cfg))
        log_warning("reload: 'listen' changed; it takes effect only after a restart");
    if (cfg->workers != r->cfg->workers)
        log_warning("reload: 'workers' changed; it takes effect only after a restart");

    const struct zone_stats *st = zone_stats(z);
    bool changed = st->serial != old_serial;
    r->stats.ok++;
    notify("READY=1\nSTATUS=serving");
    r->stats.last_ok = time(NULL);
    config_drop_mapping(cfg); /* the zone has what it needs */
    zone_ref_publish(r->ref, z);
    if (r->srv)
        server_apply_limits(r->srv, cfg);
    config_free(r->cfg);
    r->cfg = cfg;

    if (zone_ref_collect(r->ref) > 0) {
        struct timeval tv = {0, 20000};
        event_add(r->collect, &tv);
    }
    log_info("reload: ok, %zu services, %zu records, %zu added, %zu removed, %zu changed, serial "
             "%u%s, %.1f ms",
             st->services, st->records, st->added, st->removed, st->changed, st->serial,
             changed ? "" : " (unchanged)", ms_since(&t0));
    return 0;
}
