/* health.c -- the prober: probes checked targets on a thread of its own, writes what it finds into
 * the zone. */
#include "svcmapd/health.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config-build.h"
#include "svcmapd/log.h"
#include "svcmapd/zone.h"
#include "svcmapd/zone_ref.h"

/*
 * One `struct target` per zone_probe of the current zone, sorted as the
 * zone sorts them, so that a new zone is taken by walking both lists side
 * by side (sync()): a target whose address, port and check stay keeps its
 * counters and its schedule; a new one starts up and is first probed at a
 * point of the interval its key chooses, so that a reload that adds many
 * targets spreads their probes instead of sending them all at once.
 *
 * Each target has a timer for its next probe. At most `cap` probes run at
 * once (health_probe_cap()); a target due while they do waits in a queue,
 * first come first served. A probe is a non-blocking connect() (check=tcp: that is
 * all), then for check=http a GET and the first 12 bytes of the response,
 * "HTTP/1.1 200", all within `timeout`. A probe that passed closes with a
 * FIN, as a polite client would (the TIME_WAIT is ours: 10,000 targets
 * every 5 s keep about 120,000 sockets there, which hold no descriptor);
 * one that failed is reset.
 *
 * The zone is read only between zone_ref_enter() and zone_ref_leave() of
 * the prober's slot, around each result and each sync, so reloads never
 * wait for it. Zones are told apart by zone_id(), not by address.
 */

#define MS_PER_S 1000ULL

/* Where a probe is; also where a timeout struck (HEALTH_ERR_TIMEOUT). */
enum phase {
    PHASE_IDLE,
    PHASE_CONNECTING,
    PHASE_SENDING,
    PHASE_READING,
    PHASE_WAITING, /* due, in the queue */
};

#define STATUS_LINE 12 /* "HTTP/1.1 200": enough to judge */

struct target {
    struct health *h;
    struct zone_probe_key key; /* its path is `path` */
    char *path;
    size_t index; /* in the probes of the zone synced */
    bool removed; /* gone from the zone while its result was being recorded */
    /* what the probes found */
    bool up;
    uint32_t fails, oks; /* in a row */
    uint32_t error;      /* the last failure */
    uint64_t since;      /* wall clock, ms */
    uint64_t transitions;
    /* its schedule */
    struct event *timer;
    uint64_t due; /* monotonic ms */
    /* its probe in flight */
    enum phase phase;
    int fd;
    struct event *io; /* made once, assigned to each probe's socket */
    uint64_t started; /* monotonic µs */
    uint64_t deadline;
    char *request; /* check=http: the GET, built once */
    size_t request_len, sent;
    char status[STATUS_LINE];
    size_t got;
    struct target *next_waiting;
};

/* A checked service's target, for the log lines of transitions: every
 * service target that uses each probe of the zone synced. */
struct use {
    struct zone_checked *svc;
    size_t k;
};

struct health {
    struct zone_ref *zones;
    size_t slot;
    struct event_base *base;
    struct event *wake, *stop;
    pthread_t thread;
    bool started;

    /* the prober's thread only */
    uint64_t synced;          /* zone_id() of the zone taken, 0: none */
    struct zone_health set;   /* its [health] */
    struct target **targets;  /* sorted by key, as the zone's probes */
    struct target *recording; /* whose result record() is writing */
    size_t ntargets;
    size_t *use_at; /* per target, where its uses start in `uses` (ntargets + 1) */
    struct use *uses;
    size_t inflight, cap;
    struct target *waiting, *waiting_last;
    bool draining;   /* drain_queue() runs: a probe it starts may end at once */
    size_t nchecked; /* of the zone synced, for its log line */
    struct log_limit local_log;

    struct health_stats stats;
};

const double health_bucket_le[HEALTH_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / 1000000;
}

static void store(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

const char *health_error_text(uint32_t error, char *out, size_t cap)
{
    uint32_t detail = error & 0xffff;
    switch (error >> 16) {
    case HEALTH_ERR_NONE:
        snprintf(out, cap, "none");
        break;
    case HEALTH_ERR_ERRNO:
        snprintf(out, cap, "%s", strerror((int)detail));
        out[0] = (char)tolower((unsigned char)out[0]); /* "connection refused" */
        break;
    case HEALTH_ERR_TIMEOUT:
        snprintf(out, cap, "timeout %s",
                 detail == PHASE_CONNECTING ? "connecting"
                 : detail == PHASE_SENDING  ? "sending the request"
                                            : "waiting for the response");
        break;
    case HEALTH_ERR_STATUS:
        snprintf(out, cap, "HTTP %u", detail);
        break;
    case HEALTH_ERR_RESPONSE:
        snprintf(out, cap, "not an HTTP/1.x response");
        break;
    default:
        snprintf(out, cap, "connection closed before a response");
        break;
    }
    return out;
}

bool health_error_valid(uint32_t error)
{
    uint32_t detail = error & 0xffff;
    switch (error >> 16) {
    case HEALTH_ERR_ERRNO:
        return detail > 0 && detail < 4096;
    case HEALTH_ERR_TIMEOUT:
        return detail >= PHASE_CONNECTING && detail <= PHASE_READING;
    case HEALTH_ERR_STATUS:
        return detail <= 999; /* three digits, not 2xx */
    case HEALTH_ERR_NONE:
    case HEALTH_ERR_RESPONSE:
    case HEALTH_ERR_CLOSED:
        return detail == 0;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------------- */
/* The zone.                                                               */

/* The probe of `t` in the zone synced, which the caller has entered. */
static struct zone_probe *probe_of(const struct zone *z, const struct target *t)
{
    size_t n;
    struct zone_probe *p = zone_probes(z, &n);
    return t->index < n ? &p[t->index] : NULL;
}

/* Writes what `t` has found into its probe of `z`, and its state into
 * the word of every service that uses it, which queries read. The
 * prober's thread is the only writer of both. */
static void publish(const struct health *h, const struct zone *z, const struct target *t)
{
    struct zone_probe *p = probe_of(z, t);
    if (!p || zone_id(z) != h->synced)
        return; /* a zone not taken (out of memory): t->index is not of it */
    atomic_store_explicit(&p->error, t->error, memory_order_relaxed);
    store(&p->since, t->since);
    store(&p->transitions, t->transitions);
    uint32_t streak = t->up ? t->fails : t->oks; /* at most fall or rise: 100 */
    atomic_store_explicit(&p->streak, (uint8_t)(streak < UINT8_MAX ? streak : UINT8_MAX),
                          memory_order_relaxed);
    atomic_store_explicit(&p->up, t->up ? 1 : 0, memory_order_relaxed);
    for (size_t u = h->uses ? h->use_at[t->index] : 0; h->uses && u < h->use_at[t->index + 1];
         u++) {
        const struct use *use = &h->uses[u];
        uint64_t bit = 1ULL << use->k;
        uint64_t was = atomic_load_explicit(&use->svc->up, memory_order_relaxed);
        uint64_t now = t->up ? was | bit : was & ~bit;
        if (now != was)
            store(&use->svc->up, now);
    }
}

static void sync_zone(struct health *h, const struct zone *z);
static void target_free(struct target *t);

/* The current zone, entered, taken first if it is new. Leave with
 * zone_ref_leave(). */
static const struct zone *enter(struct health *h)
{
    const struct zone *z = zone_ref_enter(h->zones, h->slot);
    if (zone_id(z) != h->synced)
        sync_zone(h, z);
    return z;
}

/* ---------------------------------------------------------------------- */
/* Results.                                                                */

static void start_probe(struct target *t);
static void drain_queue(struct health *h);

/* Arms `t`'s timer for t->due. */
static void schedule(struct target *t, uint64_t now_ms)
{
    uint64_t wait = t->due > now_ms ? t->due - now_ms : 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(t->timer, &tv);
}

/* Logs a transition of `t` once for every service target that uses it:
 * `health: mysql.prod 192.168.1.10:3306 down: 3 failures, last:
 * connection refused` (SPEC §6). */
static void log_transition(const struct health *h, const struct target *t, size_t index)
{
    char why[96], what[160];
    if (t->up)
        snprintf(what, sizeof(what), "up: %u success%s", t->oks, t->oks == 1 ? "" : "es");
    else
        snprintf(what, sizeof(what), "down: %u failure%s, last: %s", t->fails,
                 t->fails == 1 ? "" : "s", health_error_text(t->error, why, sizeof(why)));
    for (size_t u = h->uses ? h->use_at[index] : 0; h->uses && u < h->use_at[index + 1]; u++) {
        char target[64];
        const struct use *use = &h->uses[u];
        zone_target_text(use->svc, use->k, target, sizeof(target));
        if (t->up)
            log_info("health: %s.%s %s %s", use->svc->name, use->svc->ns, target, what);
        else
            log_warning("health: %s.%s %s %s", use->svc->name, use->svc->ns, target, what);
    }
}

/* A probe's result: `error` 0 for a success. Counts it towards `fall` or
 * `rise` (SPEC §6) and, at a transition, tells the zone and the log.
 * Returns false if `t` is gone: the zone it came from was replaced by one
 * without it, and it is freed. */
static bool record(struct target *t, uint32_t error)
{
    struct health *h = t->h;
    uint64_t took = mono_us() - t->started;
    bool http = t->key.kind == CONFIG_CHECK_HTTP;
    size_t b = 0;
    while (b < HEALTH_BUCKETS && (double)took / 1e6 > health_bucket_le[b])
        b++;
    store(&h->stats.count[http][b],
          atomic_load_explicit(&h->stats.count[http][b], memory_order_relaxed) + 1);
    store(&h->stats.sum_us[http],
          atomic_load_explicit(&h->stats.sum_us[http], memory_order_relaxed) + took);

    bool was = t->up;
    if (error == 0) {
        t->fails = 0;
        if (!t->up && ++t->oks >= h->set.rise)
            t->up = true;
    } else {
        t->oks = 0;
        t->error = error;
        if (t->up && ++t->fails >= h->set.fall)
            t->up = false;
    }
    if (t->up != was) {
        t->transitions++;
        t->since = wall_ms();
    }
    /* the zone may have changed while the probe ran: enter() takes it */
    h->recording = t;
    const struct zone *z = enter(h);
    h->recording = NULL;
    if (!t->removed) {
        publish(h, z, t);
        if (t->up != was)
            log_transition(h, t, t->index);
    }
    zone_ref_leave(h->zones, h->slot);
    if (t->removed) {
        target_free(t);
        drain_queue(h); /* its place in flight is free */
        return false;
    }
    return true;
}

/* Starts the probes waiting for a place in flight, first come first
 * served, as places are free. A probe may end as it starts (a connection
 * refused at once) and call this again: that call leaves the work to this
 * one, so a long queue of such targets is a loop, not a deep recursion. */
static void drain_queue(struct health *h)
{
    if (h->draining)
        return;
    h->draining = true;
    while (h->waiting && h->inflight < h->cap) {
        struct target *w = h->waiting;
        h->waiting = w->next_waiting;
        if (!h->waiting)
            h->waiting_last = NULL;
        w->next_waiting = NULL;
        w->phase = PHASE_IDLE;
        start_probe(w);
    }
    h->draining = false;
}

/* Ends the probe in flight, if any, closing its socket: with a FIN after a
 * success, which servers take as a client that changed its mind
 * (PostgreSQL logs nothing); reset after a failure, so that a target that
 * does not answer holds nothing of ours in FIN_WAIT. */
static void end_probe(struct target *t, bool reset)
{
    if (t->io)
        event_del(t->io);
    if (t->fd >= 0) {
        struct linger now = {1, 0};
        if (reset)
            setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
        close(t->fd);
        t->fd = -1;
    }
    if (t->phase != PHASE_IDLE && t->phase != PHASE_WAITING)
        t->h->inflight--;
    t->phase = PHASE_IDLE;
}

/* The probe of `t` is over (a result recorded, or none to record): its
 * socket closes (`reset` after a failure), the next one is due an interval
 * after this one was, and a queued target takes the place in flight. */
static void next_probe(struct target *t, bool reset)
{
    struct health *h = t->h;
    end_probe(t, reset);
    uint64_t now = mono_us() / 1000;
    t->due += h->set.interval;
    if (t->due < now)
        t->due = now; /* it waited in the queue longer than an interval */
    schedule(t, now);
    drain_queue(h);
}

/* ---------------------------------------------------------------------- */
/* Probes.                                                                 */

static void on_io(evutil_socket_t fd, short what, void *arg);

/* Waits for `what` on the probe's socket until its deadline. */
static void await(struct target *t, short what)
{
    uint64_t now = mono_us();
    uint64_t left = t->deadline > now ? t->deadline - now : 0;
    struct timeval tv = {(time_t)(left / 1000000), (suseconds_t)(left % 1000000)};
    event_assign(t->io, t->h->base, t->fd, what, on_io, t); /* not pending: it fired */
    event_add(t->io, &tv);
}

/* The probe is over: `error` (0: it succeeded) is recorded, the next is
 * scheduled. */
static void finish(struct target *t, uint32_t error)
{
    if (record(t, error))
        next_probe(t, error != 0);
}

/* The status line read: any 2xx is a success (SPEC §6). */
static void judge(struct target *t)
{
    const char *s = t->status;
    bool line = t->got == STATUS_LINE && memcmp(s, "HTTP/1.", 7) == 0 &&
                isdigit((unsigned char)s[7]) && s[8] == ' ' && isdigit((unsigned char)s[9]) &&
                isdigit((unsigned char)s[10]) && isdigit((unsigned char)s[11]);
    if (!line) {
        finish(t, HEALTH_ERROR(t->got < STATUS_LINE &&
                                       memcmp(s, "HTTP/1.", t->got < 7 ? t->got : 7) == 0
                                   ? HEALTH_ERR_CLOSED
                                   : HEALTH_ERR_RESPONSE,
                               0));
        return;
    }
    unsigned status =
        (unsigned)(s[9] - '0') * 100 + (unsigned)(s[10] - '0') * 10 + (unsigned)(s[11] - '0');
    if (status < 200 || status > 299) {
        finish(t, HEALTH_ERROR(HEALTH_ERR_STATUS, status));
        return;
    }
    finish(t, 0);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct target *t = arg;
    if (what & EV_TIMEOUT) {
        finish(t, HEALTH_ERROR(HEALTH_ERR_TIMEOUT, t->phase));
        return;
    }
    if (t->phase == PHASE_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            finish(t, HEALTH_ERROR(HEALTH_ERR_ERRNO, err));
            return;
        }
        if (t->key.kind == CONFIG_CHECK_TCP) {
            finish(t, 0); /* connected: that is all check=tcp asks */
            return;
        }
        t->phase = PHASE_SENDING;
    }
    if (t->phase == PHASE_SENDING) {
        ssize_t n = send(fd, t->request + t->sent, t->request_len - t->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            finish(t, HEALTH_ERROR(HEALTH_ERR_ERRNO, errno));
            return;
        }
        t->sent += n > 0 ? (size_t)n : 0;
        if (t->sent < t->request_len) {
            await(t, EV_WRITE);
            return;
        }
        t->phase = PHASE_READING;
        await(t, EV_READ);
        return;
    }
    ssize_t n = recv(fd, t->status + t->got, STATUS_LINE - t->got, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        await(t, EV_READ);
        return;
    }
    if (n < 0) {
        finish(t, HEALTH_ERROR(HEALTH_ERR_ERRNO, errno));
        return;
    }
    t->got += (size_t)n;
    if (n > 0 && t->got < STATUS_LINE) {
        await(t, EV_READ);
        return;
    }
    judge(t);
}

/* A failure of this machine, not of the target (no descriptor, no port,
 * no memory): nothing is recorded, the target is probed again at its next
 * turn, and the log says so, at most once per 10 s. */
static void local_failure(struct target *t, const char *what, int err)
{
    struct health *h = t->h;
    uint64_t more;
    if (log_limit_pass(&h->local_log, &more)) {
        char addr[INET6_ADDRSTRLEN];
        inet_ntop(t->key.family, t->key.addr, addr, sizeof(addr));
        log_warning("health: cannot probe %s port %u: %s: %s; it keeps its state until the "
                    "next probe%s",
                    addr, t->key.port, what, strerror(err), more ? " (and more like it)" : "");
    }
    next_probe(t, true);
}

static void start_probe(struct target *t)
{
    struct health *h = t->h;
    if (h->inflight >= h->cap) {
        t->phase = PHASE_WAITING;
        if (h->waiting_last)
            h->waiting_last->next_waiting = t;
        else
            h->waiting = t;
        h->waiting_last = t;
        return;
    }
    h->inflight++;
    t->phase = PHASE_CONNECTING;
    t->started = mono_us();
    t->deadline = t->started + (uint64_t)h->set.timeout * 1000;
    t->sent = 0;
    t->got = 0;

    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (t->key.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(t->key.port);
        memcpy(&sin->sin_addr, t->key.addr, 4);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(t->key.port);
        memcpy(&sin6->sin6_addr, t->key.addr, 16);
        len = sizeof(*sin6);
    }
    t->fd = socket(t->key.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0) {
        local_failure(t, "socket", errno);
        return;
    }
    if (connect(t->fd, (const struct sockaddr *)&ss, len) == 0 || errno == EINPROGRESS) {
        await(t, EV_WRITE);
        return;
    }
    int err = errno;
    if (err == EADDRNOTAVAIL || err == ENOBUFS || err == ENOMEM || err == EAGAIN)
        local_failure(t, "connect", err);
    else
        finish(t, HEALTH_ERROR(HEALTH_ERR_ERRNO, err));
}

static void on_due(evutil_socket_t fd, short what, void *arg)
{
    struct target *t = arg;
    (void)fd;
    (void)what;
    if (t->phase == PHASE_IDLE)
        start_probe(t);
}

/* ---------------------------------------------------------------------- */
/* Taking a zone.                                                          */

static void target_free(struct target *t)
{
    if (!t)
        return;
    if (t->phase == PHASE_WAITING) {
        struct health *h = t->h;
        struct target **p = &h->waiting;
        while (*p && *p != t)
            p = &(*p)->next_waiting;
        if (*p)
            *p = t->next_waiting;
        h->waiting_last = NULL;
        for (struct target *w = h->waiting; w; w = w->next_waiting)
            h->waiting_last = w;
        t->phase = PHASE_IDLE;
    }
    end_probe(t, true);
    if (t->timer)
        event_free(t->timer);
    if (t->io)
        event_free(t->io);
    free(t->request);
    free(t->path);
    free(t);
}

/* Where in the interval `key` is probed: a hash of it, the same for the
 * same key, so that new targets spread over the interval. */
static uint64_t phase_of(const struct zone_probe_key *key, uint32_t interval)
{
    uint64_t x = 1469598103934665603ULL;
    uint8_t b[20];
    memcpy(b, key->addr, 16);
    b[16] = key->family;
    b[17] = key->kind;
    b[18] = (uint8_t)(key->port >> 8);
    b[19] = (uint8_t)key->port;
    for (size_t i = 0; i < sizeof(b); i++)
        x = (x ^ b[i]) * 1099511628211ULL;
    for (const char *c = key->path; c && *c; c++)
        x = (x ^ (uint8_t)*c) * 1099511628211ULL;
    return x % interval;
}

/* A target for `p`, as the zone compiled it (up, unless a reload carried
 * its state from the zone before). NULL when out of memory. */
static struct target *target_new(struct health *h, const struct zone_probe *p, uint64_t now)
{
    struct target *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->h = h;
    t->fd = -1;
    t->key = p->key;
    t->key.path = t->path = p->key.path ? strdup(p->key.path) : NULL;
    t->up = atomic_load_explicit(&p->up, memory_order_relaxed);
    t->error = atomic_load_explicit(&p->error, memory_order_relaxed);
    t->since = atomic_load_explicit(&p->since, memory_order_relaxed);
    t->transitions = atomic_load_explicit(&p->transitions, memory_order_relaxed);
    /* the counting toward `fall` or `rise` a replaced svcmapd had begun */
    uint8_t streak = atomic_load_explicit(&p->streak, memory_order_relaxed);
    if (t->up)
        t->fails = streak;
    else
        t->oks = streak;
    t->timer = evtimer_new(h->base, on_due, t);
    t->io = event_new(h->base, -1, 0, on_io, t); /* its socket's, assigned per probe */
    if (!t->timer || !t->io || (p->key.path && !t->path)) {
        target_free(t);
        return NULL;
    }
    if (p->key.kind == CONFIG_CHECK_HTTP) {
        /* RFC 9112 §3.2: Host is the authority, the port when not 80 */
        char addr[INET6_ADDRSTRLEN], host[INET6_ADDRSTRLEN + 8];
        inet_ntop(p->key.family, p->key.addr, addr, sizeof(addr));
        snprintf(host, sizeof(host), p->key.family == AF_INET6 ? "[%s]" : "%s", addr);
        if (p->key.port != 80)
            snprintf(host + strlen(host), sizeof(host) - strlen(host), ":%u", p->key.port);
        int n = asprintf(&t->request,
                         "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: svcmapd/%s\r\n"
                         "Accept: */*\r\nConnection: close\r\n\r\n",
                         p->key.path, host, SVCMAPD_VERSION);
        if (n < 0) {
            t->request = NULL;
            target_free(t);
            return NULL;
        }
        t->request_len = (size_t)n;
    }
    t->due = now + phase_of(&p->key, h->set.interval);
    schedule(t, now);
    return t;
}

/* Who uses each probe of `z`: the service targets of its log lines. */
static bool index_uses(struct health *h, const struct zone *z, const struct zone_probe *probes)
{
    size_t ns, total = 0;
    struct zone_checked *const *svc = zone_checked_services(z, &ns);
    for (size_t i = 0; i < ns; i++)
        total += svc[i]->ntargets;
    size_t *at = calloc(h->ntargets + 1, sizeof(*at));
    struct use *uses = malloc((total ? total : 1) * sizeof(*uses));
    if (!at || !uses) {
        free(at);
        free(uses);
        return false;
    }
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < svc[i]->ntargets; k++)
            at[svc[i]->t[k].probe - probes + 1]++;
    for (size_t i = 0; i < h->ntargets; i++)
        at[i + 1] += at[i];
    size_t *fill = calloc(h->ntargets + 1, sizeof(*fill));
    if (!fill) {
        free(at);
        free(uses);
        return false;
    }
    memcpy(fill, at, (h->ntargets + 1) * sizeof(*fill));
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < svc[i]->ntargets; k++)
            uses[fill[svc[i]->t[k].probe - probes]++] = (struct use){svc[i], k};
    free(fill);
    free(h->use_at);
    free(h->uses);
    h->use_at = at;
    h->uses = uses;
    h->nchecked = ns;
    return true;
}

/* Takes the probes of `z` (entered): those it shares with the zone taken
 * before keep their targets, others come and go; then every state goes
 * into `z`, which from now on is the zone written. */
static void sync_zone(struct health *h, const struct zone *z)
{
    size_t n;
    struct zone_probe *probes = zone_probes(z, &n);
    struct target **next = calloc(n ? n : 1, sizeof(*next));
    uint64_t now = mono_us() / 1000;
    if (!next) {
        log_error("health: out of memory taking the probes of a new zone; still probing the "
                  "old ones");
        return;
    }
    const struct zone_health *set = zone_health(z);
    bool retimed = set->interval != h->set.interval;
    size_t before = h->ntargets, kept = 0;
    h->set = *set;
    size_t i = 0, j = 0;
    while (i < h->ntargets || j < n) {
        if (i < h->ntargets && !h->targets[i]) {
            i++; /* one that memory ran out for */
            continue;
        }
        int r = i == h->ntargets ? 1
                : j == n         ? -1
                                 : zone_probe_key_cmp(&h->targets[i]->key, &probes[j].key);
        if (r < 0) {
            struct target *gone = h->targets[i++]; /* no longer in the mapping */
            if (gone == h->recording)
                gone->removed = true; /* record() frees it */
            else
                target_free(gone);
            continue;
        }
        if (r == 0) {
            next[j] = h->targets[i++];
            kept++;
            if (retimed && next[j]->phase == PHASE_IDLE) {
                next[j]->due = now + phase_of(&probes[j].key, set->interval);
                schedule(next[j], now);
            }
        } else {
            next[j] = target_new(h, &probes[j], now);
        }
        if (next[j])
            next[j]->index = j;
        j++;
    }
    free(h->targets);
    h->targets = next;
    h->ntargets = n;
    h->synced = zone_id(z);
    if (!index_uses(h, z, probes)) {
        /* no log lines, and queries read what the zone was compiled with,
         * until the next zone: better than nothing for lack of memory */
        log_error("health: out of memory indexing the checked services of a new zone");
        free(h->use_at);
        free(h->uses);
        h->use_at = NULL;
        h->uses = NULL;
    }
    for (size_t k = 0; k < n; k++) {
        if (next[k]) {
            publish(h, z, next[k]);
            continue;
        }
        /* out of memory: this one is not probed, and answered */
        atomic_store_explicit(&probes[k].up, 1, memory_order_relaxed);
    }
    if (n != before || kept != n) {
        char every[24];
        log_info("health: probing %zu target%s of %zu service%s every %s (%zu new, %zu gone)", n,
                 n == 1 ? "" : "s", h->nchecked, h->nchecked == 1 ? "" : "s",
                 config_msec_text(set->interval, every, sizeof(every)), n - kept, before - kept);
        if (n > h->cap && h->cap < HEALTH_MAX_PROBES)
            log_warning("health: at most %zu probes at once, as the open files at start were "
                        "shared out for the checks of the mapping then; restart to run up to %d",
                        h->cap, HEALTH_MAX_PROBES);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct health *h = arg;
    (void)fd;
    (void)what;
    enter(h);
    zone_ref_leave(h->zones, h->slot);
    drain_queue(h); /* the places of the probes a new zone dropped */
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct health *h = arg;
    (void)fd;
    (void)what;
    event_base_loopbreak(h->base);
}

/* ---------------------------------------------------------------------- */

size_t health_probe_cap(const struct config *cfg)
{
    size_t targets = 0;
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        for (size_t j = 0; j < cfg->namespaces[i].nservices; j++)
            if (cfg->namespaces[i].services[j].check)
                targets += cfg->namespaces[i].services[j].ntargets;
    return targets < HEALTH_MIN_PROBES   ? HEALTH_MIN_PROBES
           : targets > HEALTH_MAX_PROBES ? HEALTH_MAX_PROBES
                                         : targets;
}

struct health *health_new(struct zone_ref *zones, size_t slot, size_t cap)
{
    struct health *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->zones = zones;
    h->slot = slot;
    h->cap = cap;
    h->base = event_base_new();
    h->wake = h->base ? event_new(h->base, -1, 0, on_wake, h) : NULL;
    h->stop = h->base ? event_new(h->base, -1, 0, on_stop, h) : NULL;
    if (!h->wake || !h->stop) {
        health_free(h);
        return NULL;
    }
    return h;
}

static void *run(void *arg)
{
    struct health *h = arg;
    on_wake(-1, 0, h);
    event_base_loop(h->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int health_start(struct health *h)
{
    int r = pthread_create(&h->thread, NULL, run, h);
    if (r)
        return -r;
    pthread_setname_np(h->thread, "svcmapd-health"); /* for top -H, and the benchmark */
    h->started = true;
    return 0;
}

void health_wake(struct health *h)
{
    if (h && h->started)
        event_active(h->wake, 0, 0);
}

void health_stop(struct health *h)
{
    if (!h || !h->started)
        return;
    event_active(h->stop, 0, 0);
    pthread_join(h->thread, NULL);
    h->started = false;
}

void health_free(struct health *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->ntargets; i++)
        target_free(h->targets[i]);
    free(h->targets);
    free(h->use_at);
    free(h->uses);
    if (h->wake)
        event_free(h->wake);
    if (h->stop)
        event_free(h->stop);
    if (h->base)
        event_base_free(h->base);
    free(h);
}

const struct health_stats *health_stats(const struct health *h)
{
    return h ? &h->stats : NULL;
}
