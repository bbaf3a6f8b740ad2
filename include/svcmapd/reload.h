/* reload.h -- SIGHUP: compile a new zone beside the old, publish it, retire the old. */
#ifndef SVCMAPD_RELOAD_H
#define SVCMAPD_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "svcmapd/config.h"
#include "svcmapd/zone.h"

struct event_base;
struct zone_ref;

/* What SIGHUP runs. */
struct reloader;

struct reload_stats {
    uint64_t ok, failed;
    uint64_t held;          /* not applied: they removed too many services */
    uint64_t read_failures; /* times `reload =` found the file unreadable */
    bool read_failing;      /* and it still is */
    bool last_good;         /* the zone served is the state-dir's last good copy */
    time_t last_ok;         /* Unix time of the last good load, the first included */
};

/* `cfg` is the config the running zone came from; the reloader takes it,
 * and keeps its listen, workers, user and [http] as what the process
 * runs with. A good reload publishes its zone in `ref`, which carries
 * every setting the workers read (zone_settings()), and applies its [log]
 * settings at the same moment: the reloader knows nothing of the server. */
struct reloader *reload_new(struct event_base *base, const char *path, struct config *cfg,
                            struct zone_ref *ref);

/* Waits for a reload under way (one compile at most), then frees. */
void reload_free(struct reloader *r);

/* The config of the zone now served (main thread). */
const struct config *reload_config(const struct reloader *r);

/* Starts (or changes, or stops) looking at the file every `reload`
 * seconds of the current config; a file that changed is reloaded as by
 * SIGHUP. Called after start-up and after each reload. */
void reload_watch(struct reloader *r);

/* Shutting down: no more looks at the file, no more reloads, and the
 * result of one under way is dropped. NULL is a no-op. */
void reload_stop(struct reloader *r);

/* Counts of reloads, for the metrics endpoint (main thread). */
const struct reload_stats *reload_stats(const struct reloader *r);

/* Reloads of fewer removed services than this are never held. */
#define RELOAD_REMOVAL_FLOOR 10

enum reload_verdict {
    RELOAD_APPLY,
    RELOAD_HOLD,  /* it compiled, but removes too many services */
    RELOAD_REJECT /* it did not compile (z is NULL) */
};

/* What a reload does with `z`, compiled from `cfg` against `old`, the
 * zone served (NULL at start: always applied). Held when it removes more
 * than RELOAD_REMOVAL_FLOOR services and more than `max-removal` percent
 * of old's, unless exactly `confirm-removal` of them. No side effects. */
enum reload_verdict reload_decide(const struct config *cfg, const struct zone *z,
                                  const struct zone *old);

/* Settings bound at start: sockets, threads, the user, the HTTP endpoints,
 * the control socket, the state directory. A reload that changes one says
 * it takes effect only after a restart. */
enum reload_restart {
    RELOAD_RESTART_LISTEN = 1u << 0,
    RELOAD_RESTART_WORKERS = 1u << 1,
    RELOAD_RESTART_USER = 1u << 2,
    RELOAD_RESTART_HTTP = 1u << 3, /* any of [http] health, ready, metrics */
    RELOAD_RESTART_CONTROL = 1u << 4,
    RELOAD_RESTART_STATE_DIR = 1u << 5,
};

/* Which of them `next` changes against `running`: enum reload_restart
 * bits, 0 for none (the order of listen addresses does not count). The
 * one comparison of restart-only settings. No side effects. */
unsigned reload_restart_changes(const struct config *running, const struct config *next);

/* Re-reads the mapping file: read, parsed and compiled on a thread of its
 * own while the main loop goes on, then applied on the main thread (the
 * new zone published), held (reload_decide()) or rejected, the old zone
 * serving on; one summary line either way, with every error's FILE:LINE.
 * Asked for while a reload runs, it makes one more follow that one, however
 * often it is asked. Returns the number of the reload that will read the
 * file after this call (the outcome gives it back: see reload_outcome),
 * or 0 when none will: the reloader was stopped. */
uint64_t reload_run(struct reloader *r);

/* Whether a reload is under way (main thread). */
bool reload_running(const struct reloader *r);

/* While held, no reload starts: one asked for (SIGHUP, `reload =`,
 * svcmapctl) waits, and runs once they are released. For a hand-over of
 * the sockets (svcmapd --replace), during which the serial and the
 * state-dir must stay what the new process was told. */
void reload_hold(struct reloader *r, bool held);

/* The longest summary line of a reload. */
#define RELOAD_LINE_MAX 512

/* How a reload ended, as the outcome callback gets it. */
struct reload_outcome {
    uint64_t seq; /* the reload's number, as reload_run() gave it: 1, 2, ... */
    enum reload_verdict verdict;
    const char *line;        /* the summary line, as logged ("reload: ok, ...") */
    const struct diag *diag; /* every diagnostic of the file read */
    /* RELOAD_APPLY with keep_text: the bytes the zone was compiled from,
     * which the callback may take (setting it to NULL; free() it); and
     * the serial and digest of the zone now served */
    char *text;
    size_t len;
    uint32_t serial;
    uint64_t digest;
};

/* After every reload, once it is applied, held or rejected and logged,
 * `outcome(arg, o)` is called on the main thread (reloads dropped by
 * reload_stop() have none). With `keep_text` the bytes of each file read
 * are kept until then, for o->text. What the reloader knows nothing of
 * (a client waiting for the answer, the state-dir) hangs on it. */
void reload_on_outcome(struct reloader *r, void (*outcome)(void *arg, struct reload_outcome *o),
                       void *arg, bool keep_text);

/* The summary line of the last reload that ended; "" before the first. */
const char *reload_last_line(const struct reloader *r);

/* Says that the zone served (the running one at reload_new()) is the
 * state-dir's last good copy, because the mapping file is broken: the
 * file whose bytes hash to `hash` (`read`: it could be read at all) is
 * not tried again by `reload =` until it changes; the next reload
 * applied ends it (reload_stats.last_good). */
void reload_serving_last_good(struct reloader *r, bool read, uint64_t hash);

#endif
