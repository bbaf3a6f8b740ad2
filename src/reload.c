/* reload.c -- SIGHUP: compile a new zone beside the old, publish it, retire the old. */
#include "svcmapd/reload.h"

#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcmapd/clock.h"
#include "svcmapd/load.h"
#include "svcmapd/log.h"
#include "svcmapd/notify.h"
#include "svcmapd/zone_ref.h"

enum reload_verdict reload_decide(const struct config *cfg, const struct zone *z,
                                  const struct zone *old)
{
    if (!z)
        return RELOAD_REJECT;
    if (!old)
        return RELOAD_APPLY;
    size_t running = zone_stats(old)->services;
    size_t removed = zone_stats(z)->removed;
    /* A prefix of a file being written removes what its missing tail
     * held: most of the services, while the writer is early on. */
    if (removed <= RELOAD_REMOVAL_FLOOR || removed * 100 <= (size_t)cfg->max_removal * running)
        return RELOAD_APPLY;
    /* an exact count: a torn copy of the confirming file removes more */
    return removed == cfg->confirm_removal ? RELOAD_APPLY : RELOAD_HOLD;
}

/* As the log names them, by bit of enum reload_restart. */
static const char *const restart_names[] = {"'listen'", "'workers'",        "'user'",
                                            "[http]",   "[control] socket", "'state-dir'"};

/* Two optional strings differ. */
static bool differ(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

unsigned reload_restart_changes(const struct config *running, const struct config *next)
{
    const struct config *a = next, *b = running;
    unsigned bits = 0;
    if (!config_same_listen(a, b))
        bits |= RELOAD_RESTART_LISTEN;
    if (a->workers != b->workers)
        bits |= RELOAD_RESTART_WORKERS;
    if (differ(a->user, b->user))
        bits |= RELOAD_RESTART_USER;
    for (int i = 0; i < 3; i++)
        if (a->http_on[i] != b->http_on[i] ||
            (a->http_on[i] && strcmp(a->http[i].text, b->http[i].text) != 0))
            bits |= RELOAD_RESTART_HTTP;
    if (differ(a->control_socket, b->control_socket))
        bits |= RELOAD_RESTART_CONTROL;
    if (differ(a->state_dir, b->state_dir))
        bits |= RELOAD_RESTART_STATE_DIR;
    return bits;
}

/* One reload: the file read, parsed and compiled off the main thread. */
struct reload_job {
    uint64_t seq;
    pthread_t thread;
    bool threaded;
    bool keep_text; /* text stays for the outcome */
    char *text;     /* the file's bytes; NULL: read them on the thread */
    size_t len;
    const struct zone *old; /* only the main thread retires zones: it stays */
    time_t now;
    uint64_t t0;      /* clock_ns() */
    struct load load; /* the results, for the main thread */
};

struct reloader {
    struct event_base *base;
    const char *path;
    struct config *boot; /* the settings the process started with */
    struct config *cfg;  /* of the zone now served; boot until a reload */
    struct zone_ref *ref;
    void (*outcome)(void *arg, struct reload_outcome *o); /* after every reload */
    void *outcome_arg;
    bool keep_text;
    uint64_t seq;                    /* of the last job started */
    char last_line[RELOAD_LINE_MAX]; /* its summary, once it ended */
    struct event *collect;           /* retries freeing zones still held */
    struct event *done;              /* the job's thread activates it */
    struct reload_stats stats;

    struct reload_job job;
    bool running; /* a job is under way */
    bool held;    /* reload_hold(): none starts until released */
    bool again;   /* asked for while one ran or they were held: one more follows */
    bool stopped;
    unsigned restart; /* settings that differ from boot: enum reload_restart */

    /* auto reload (`reload = INTERVAL`): the file is looked at on a timer */
    struct event *watch;
    uint32_t interval;     /* seconds; 0: off */
    uint64_t seen_hash;    /* of the bytes last loaded or tried */
    uint64_t pending_hash; /* a change seen once, to be seen again */
    unsigned read_fails;   /* looks in a row that could not read the file */
};

const struct reload_stats *reload_stats(const struct reloader *r)
{
    return &r->stats;
}

const struct config *reload_config(const struct reloader *r)
{
    return r->cfg;
}

const char *reload_last_line(const struct reloader *r)
{
    return r->last_line;
}

void reload_on_outcome(struct reloader *r, void (*outcome)(void *arg, struct reload_outcome *o),
                       void *arg, bool keep_text)
{
    r->outcome = outcome;
    r->outcome_arg = arg;
    r->keep_text = keep_text;
}

void reload_serving_last_good(struct reloader *r, bool read, uint64_t hash)
{
    r->stats.last_good = true;
    if (read)
        r->seen_hash = hash; /* its errors were logged at start */
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

static void on_watch(evutil_socket_t fd, short what, void *arg);
static void on_done(evutil_socket_t fd, short what, void *arg);

struct reloader *reload_new(struct event_base *base, const char *path, struct config *cfg,
                            struct zone_ref *ref)
{
    struct reloader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = base;
    r->path = path;
    r->boot = cfg;
    r->cfg = cfg;
    r->ref = ref;
    r->stats.last_ok = time(NULL);
    r->collect = evtimer_new(base, on_collect, r);
    r->watch = evtimer_new(base, on_watch, r);
    r->done = event_new(base, -1, 0, on_done, r);
    r->seen_hash = cfg->hash; /* what was loaded: a later change is taken at the first look */
    if (!r->collect || !r->watch || !r->done) {
        if (r->collect)
            event_free(r->collect);
        if (r->watch)
            event_free(r->watch);
        free(r);
        return NULL;
    }
    return r;
}

static void job_finish(struct reload_job *j)
{
    free(j->text);
    load_finish(&j->load);
    memset(j, 0, sizeof(*j));
}

void reload_free(struct reloader *r)
{
    if (!r)
        return;
    if (r->running && r->job.threaded)
        pthread_join(r->job.thread, NULL); /* one compile at most */
    if (r->running)
        job_finish(&r->job);
    event_free(r->collect);
    event_free(r->watch);
    event_free(r->done);
    if (r->cfg != r->boot)
        config_free(r->cfg);
    config_free(r->boot);
    free(r);
}

/* The job's thread: everything slow, touching nothing the main thread
 * uses but the old zone, which cannot go while the job runs. */
static void *run_job(void *arg)
{
    struct reloader *r = arg;
    struct reload_job *j = &r->job;
    if (j->keep_text && !j->text) /* NULL: why is in the diagnostics */
        j->text = config_read(r->path, &j->len, &j->load.diag);
    if (j->text || !j->keep_text)
        load_text(&j->load, j->text, j->len, j->old, NULL, j->now);
    if (!j->keep_text) {
        free(j->text);
        j->text = NULL;
    }
    event_active(r->done, 0, 0);
    return NULL;
}

/* Starts a job on `text` (taking it; NULL: the file is read by the job),
 * or, while one runs, asks for one more after it. Returns the number of
 * the job that reads the file after this call, 0 when none will. */
static uint64_t start(struct reloader *r, char *text, size_t len)
{
    if (r->stopped) {
        free(text);
        return 0;
    }
    if (r->running || r->held) {
        if (!r->again)
            log_info("reload: asked for while %s; one more follows it",
                     r->running ? "one is under way" : "the sockets are being handed over");
        r->again = true;
        free(text);
        return r->seq + 1;
    }
    struct reload_job *j = &r->job;
    *j = (struct reload_job){
        .seq = ++r->seq, .keep_text = r->keep_text, .text = text, .len = len, .now = time(NULL)};
    j->old = zone_ref_current(r->ref);
    j->t0 = clock_ns();
    load_init(&j->load, r->path);
    j->load.drop_mapping = true; /* the zone has what it needs */
    notify_reloading();
    r->running = true;
    /* the signals stay with the main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    j->threaded = pthread_create(&j->thread, NULL, run_job, r) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!j->threaded)
        run_job(r); /* no thread to be had: here, as before */
    return j->seq;
}

/* A reload not applied: the old zone serves on. */
static void keep_old(struct reloader *r, enum reload_verdict v, const struct load *l,
                     const struct zone *old)
{
    uint32_t old_serial = zone_stats(old)->serial;
    const char *copy = r->stats.last_good ? " (the last good copy)" : "";
    if (v == RELOAD_REJECT) {
        r->stats.failed++;
        notify("READY=1\nSTATUS=reload failed, serving the previous mapping");
        snprintf(r->last_line, sizeof(r->last_line),
                 "reload: failed (%u error%s in %s), still serving serial %u%s", l->diag.errors,
                 l->diag.errors == 1 ? "" : "s", r->path, old_serial, copy);
        log_error("%s", r->last_line);
    } else {
        size_t removed = zone_stats(l->zone)->removed;
        r->stats.held++;
        notify("READY=1\nSTATUS=reload held, serving the previous mapping");
        snprintf(r->last_line, sizeof(r->last_line),
                 "reload: held: would remove %zu of %zu services (more than max-removal = %u%%), "
                 "still serving serial %u%s; if that is meant, add confirm-removal = %zu to "
                 "[server] and reload",
                 removed, zone_stats(old)->services, l->cfg->max_removal, old_serial, copy,
                 removed);
        log_warning("%s", r->last_line);
    }
    reload_watch(r); /* keep looking: the next good file is taken */
}

/* Says which settings bound at start `cfg` changes (a warning each), and
 * which it brings back to what runs. */
static void warn_restart(struct reloader *r, const struct config *cfg)
{
    unsigned restart = reload_restart_changes(r->boot, cfg);
    for (unsigned i = 0; i < sizeof(restart_names) / sizeof(restart_names[0]); i++) {
        if (restart & (1u << i))
            log_warning("reload: %s changed; it takes effect only after a restart",
                        restart_names[i]);
        else if (r->restart & (1u << i))
            log_info("reload: %s matches what is running again; no restart needed",
                     restart_names[i]);
    }
    r->restart = restart;
}

/* A reload applied: its zone published, its config the current one. */
static void apply(struct reloader *r, struct reload_job *j)
{
    struct config *cfg = j->load.cfg;
    struct zone *z = j->load.zone;
    j->load.cfg = NULL;
    j->load.zone = NULL;
    const struct zone_stats *st = zone_stats(z);
    bool changed = st->serial != zone_stats(zone_ref_current(r->ref))->serial;

    /*
     * What a reload changes takes effect here, at once: the zone, which
     * carries every setting the workers read (zone_settings()), and the
     * [log] settings. Those stay process-wide, outside the zone: every
     * thread writes the log, the main thread and the loader too, at any
     * moment and outside any zone hold, and a log line must not wait for
     * a zone, nor a zone be kept alive for a log line.
     */
    log_configure(cfg);
    zone_ref_publish(r->ref, z);
    notify("READY=1\nSTATUS=serving"); /* after: READY means the new answers */
    warn_restart(r, cfg);              /* in the new [log] format */
    r->stats.ok++;
    r->stats.last_ok = time(NULL);
    if (r->cfg != r->boot)
        config_free(r->cfg);
    r->cfg = cfg;
    reload_watch(r);

    if (zone_ref_collect(r->ref) > 0) {
        struct timeval tv = {0, 20000};
        event_add(r->collect, &tv);
    }
    snprintf(r->last_line, sizeof(r->last_line),
             "reload: ok, %zu services, %zu records, %zu added, %zu removed, %zu changed, serial "
             "%u%s, %zu compiled, %.1f ms",
             st->services, st->records, st->added, st->removed, st->changed, st->serial,
             changed ? "" : " (unchanged)", st->compiled, (double)(clock_ns() - j->t0) / 1e6);
    log_info("%s", r->last_line);
    if (r->stats.last_good) {
        r->stats.last_good = false;
        log_info("reload: %s is served again; the last good copy is no longer in use", r->path);
    }
}

/* The job's results, on the main thread: applied, held or rejected. */
static void conclude_job(struct reloader *r, struct reload_job *j)
{
    const struct zone *old = zone_ref_current(r->ref);
    if (j->load.read)
        r->seen_hash = j->load.hash; /* tried, even if bad or held */
    load_report(&j->load.diag, NULL);
    enum reload_verdict v = reload_decide(j->load.cfg, j->load.zone, old);
    if (v == RELOAD_APPLY)
        apply(r, j);
    else
        keep_old(r, v, &j->load, old);
    if (!r->outcome)
        return;
    const struct zone_stats *st = zone_stats(zone_ref_current(r->ref));
    struct reload_outcome o = {
        .seq = j->seq,
        .verdict = v,
        .line = r->last_line,
        .diag = &j->load.diag,
        .text = v == RELOAD_APPLY ? j->text : NULL,
        .len = j->len,
        .serial = st->serial,
        .digest = st->digest,
    };
    r->outcome(r->outcome_arg, &o);
    if (v == RELOAD_APPLY)
        j->text = o.text; /* NULL if it was taken */
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct reloader *r = arg;
    (void)fd;
    (void)what;
    if (r->job.threaded)
        pthread_join(r->job.thread, NULL);
    if (!r->stopped)
        conclude_job(r, &r->job);
    job_finish(&r->job);
    load_give_back();
    r->running = false;
    if (r->again) {
        r->again = false;
        start(r, NULL, 0);
    }
}

uint64_t reload_run(struct reloader *r)
{
    return start(r, NULL, 0);
}

bool reload_running(const struct reloader *r)
{
    return r->running;
}

void reload_hold(struct reloader *r, bool held)
{
    r->held = held;
    if (!held && !r->running && r->again) {
        r->again = false;
        start(r, NULL, 0);
    }
}

void reload_stop(struct reloader *r)
{
    if (!r)
        return;
    r->stopped = true; /* a job under way is joined by reload_free(), its result dropped */
    r->again = false;
    event_del(r->watch);
}

static void arm_watch(struct reloader *r, uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(r->watch, &tv);
}

#define FIRST_MAX 1024 /* as long as diag_each() makes a line */

/* Keeps the first line of a diag in `arg`, FIRST_MAX bytes. */
static void keep_first(const struct diag_entry *e, void *arg)
{
    char *first = arg;
    if (!first[0])
        snprintf(first, FIRST_MAX, "%s", e->text);
}

/* A look that could not read the file. The moment of a ConfigMap swap or
 * an editor's save can miss it: a second look a second later that fails
 * too is reported, once, until the file can be read again. */
static uint32_t watch_failed(struct reloader *r, const struct diag *d, uint32_t next)
{
    if (r->stats.read_failing)
        return next; /* said already */
    if (r->read_fails++ == 0)
        return 1000;
    r->stats.read_failing = true;
    r->stats.read_failures++;
    char why[FIRST_MAX] = "";
    diag_each(d, keep_first, why);
    log_error("reload: %s; still serving serial %u, looking again every %us", why,
              zone_stats(zone_ref_current(r->ref))->serial, r->interval);
    return next;
}

/* Auto reload. Kubernetes updates a mounted ConfigMap by swapping the
 * `..data` symlink, editors write a new file and rename it: both change
 * the bytes read at the path, which is all that is compared, so symlinks,
 * renames and inode changes need no special care. A changed file must read
 * the same twice, a second apart, before it is loaded: a file being copied
 * in place is not loaded half-written (unless its writer pauses: the
 * removal guard of reload_decide() catches the early part of that). A
 * file that cannot be read is looked at again later, never taken as
 * empty. A look while a reload runs is skipped: that reload reads the
 * file, and the next look sees what changed after it. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct reloader *r = arg;
    (void)fd;
    (void)what;
    uint32_t next = r->interval * 1000;
    next = next - next / 10 + (uint32_t)(random() % (next / 5 + 1)); /* +-10% jitter */
    if (r->running) {
        arm_watch(r, next);
        return;
    }
    struct diag d;
    diag_init(&d, r->path);
    size_t len;
    char *text = config_read(r->path, &len, &d);
    if (!text) {
        arm_watch(r, watch_failed(r, &d, next));
        diag_finish(&d);
        return;
    }
    diag_finish(&d);
    r->read_fails = 0;
    if (r->stats.read_failing) {
        r->stats.read_failing = false;
        log_info("reload: %s can be read again", r->path);
    }
    uint64_t h = config_hash(text, len);
    if (h == r->seen_hash) {
        r->pending_hash = 0;
    } else if (h != r->pending_hash) {
        r->pending_hash = h; /* changed: it must hold still for a second */
        next = 1000;
    } else {
        r->pending_hash = 0;
        log_info("reload: %s changed", r->path);
        start(r, text, len); /* the watch is armed again when it is done */
        return;
    }
    free(text);
    arm_watch(r, next);
}

void reload_watch(struct reloader *r)
{
    if (r->stopped)
        return;
    uint32_t interval = r->cfg->reload;
    if (interval == r->interval && (interval == 0 || event_pending(r->watch, EV_TIMEOUT, NULL)))
        return;
    if (interval != r->interval && interval)
        log_info("reload: looking at %s every %us", r->path, interval);
    else if (interval != r->interval)
        log_info("reload: %s is reloaded on SIGHUP only", r->path);
    r->interval = interval;
    event_del(r->watch);
    if (interval)
        arm_watch(r, interval * 1000);
}
