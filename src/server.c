/* server.c -- the workers, their sockets, and the server's entry points: bytes in, bytes out. */
#include "svcmapd/server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_impl.h"
#include "svcmapd/listener.h"
#include "svcmapd/log.h"
#include "svcmapd/metrics.h"
#include "svcmapd/upstream.h"

/*
 * Workers: one thread per worker, each with its own event base and its own
 * UDP socket and TCP listener on every listen address (SO_REUSEPORT: the
 * kernel spreads queries and connections over them), or, with sockets
 * given by systemd or a replaced svcmapd, its share of those
 * (server_sockets.c). Workers share nothing but the zone pointer
 * (reload.c) and the count of open TCP connections, so they never wait for
 * each other. server_impl.h says which file does what.
 */

#define STOP_GRACE  5 /* seconds for queued TCP replies at shutdown */
#define MAX_WORKERS 256

/* ---------------------------------------------------------------------- */
/* Workers                                                                 */

static void close_sockets(struct worker *w)
{
    for (size_t i = 0; i < w->nudps; i++)
        udp_close(&w->udps[i]);
    for (size_t i = 0; i < w->ntcps; i++) {
        listener_free(w->tcps[i].l);
        w->tcps[i].l = NULL;
    }
}

static void worker_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tcp_close_all(arg);
}

/* The worker takes no more queries from its sockets, and its connections
 * end as `connections` says (returning whether some are left). */
static void worker_end(struct worker *w, bool (*connections)(struct worker *w))
{
    defer_answer_all(w);      /* queries that wait for lookups are answered now, without them */
    upstream_shutdown(w->up); /* nobody waits for them now */
    close_sockets(w);
    if (connections(w)) {
        /* they get a few seconds */
        struct timeval tv = {STOP_GRACE, 0};
        evtimer_add(w->deadline, &tv);
    }
    /* With no sockets, connections or timers left, the loop returns. */
}

/* Runs in the worker's thread when the main thread asks it to stop:
 * replies already queued go out. */
static void worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    w->stopping = true;
    worker_end(w, tcp_stop);
}

/* Runs in the worker's thread once its sockets are another process's,
 * which reads them now (svcmapd --replace): the queries its connections
 * send are still answered, without waiting for lookups, until each has
 * nothing left to answer. Its copies of the sockets close; the sockets
 * and what is queued in them do not. */
static void worker_on_release(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    w->released = true;
    worker_end(w, tcp_release);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static struct worker *worker_new(struct server *srv, size_t slot)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->srv = srv;
    w->slot = slot;
    w->base = event_base_new();
    w->udp = udp_batch_new();
    w->metrics = metrics_new(srv->nlisten);
    if (w->base) {
        w->stop_ev = event_new(w->base, -1, 0, worker_on_stop, w);
        w->release_ev = event_new(w->base, -1, 0, worker_on_release, w);
        w->deadline = evtimer_new(w->base, worker_on_deadline, w);
        w->up = upstream_new(w->base, srv->max_lookups);
    }
    if (!w->base || !w->udp || !w->stop_ev || !w->release_ev || !w->deadline || !w->up ||
        !w->metrics)
        return w; /* server_start sees the missing parts */
    w->actx.up = w->up;
    answer_init(&w->actx);
    return w;
}

static void worker_free(struct worker *w)
{
    if (!w)
        return;
    close_sockets(w);
    tcp_close_all(w);
    defer_drop_all(w);
    upstream_free(w->up);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->release_ev)
        event_free(w->release_ev);
    if (w->deadline)
        event_free(w->deadline);
    if (w->base)
        event_base_free(w->base);
    udp_batch_free(w->udp);
    free(w->udps);
    free(w->tcps);
    metrics_free(w->metrics);
    free(w);
}

/* ---------------------------------------------------------------------- */
size_t server_worker_count(const struct config *cfg)
{
    if (cfg->workers)
        return cfg->workers;
    /* the CPUs this process may run on (a container's cpuset), not all
     * the host has */
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                          : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (size_t)n;
}

/* A worker's descriptors besides its connections and lookups: its event
 * base's (epoll, the eventfd that wakes it, a signal pipe's two ends),
 * then a UDP socket and a TCP listener per listen address. */
#define WORKER_FDS(nlisten) (4 + 2 * (nlisten))

size_t server_fds(const struct config *cfg)
{
    return server_worker_count(cfg) * WORKER_FDS(cfg->nlisten);
}

struct server *server_new(const struct config *cfg, struct zone_ref *zones, size_t max_lookups)
{
    struct server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->zones = zones;
    srv->max_lookups = max_lookups;
    srv->nworkers = server_worker_count(cfg);
    srv->nlisten = cfg->nlisten;
    srv->listen = calloc(cfg->nlisten, sizeof(*srv->listen));
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    if (!srv->listen || !srv->workers) {
        server_free(srv);
        return NULL;
    }
    memcpy(srv->listen, cfg->listen, cfg->nlisten * sizeof(*srv->listen));
    atomic_init(&srv->tcp_open, 0);
    return srv;
}

size_t server_workers(const struct server *srv)
{
    return srv->nworkers;
}

const struct metrics *server_metrics(const struct server *srv, size_t k)
{
    return srv->workers[k]->metrics;
}

const struct upstream_stats *server_upstream_stats(const struct server *srv, size_t k)
{
    return upstream_stats(srv->workers[k]->up);
}

uint32_t server_tcp_open(const struct server *srv)
{
    return atomic_load_explicit(&srv->tcp_open, memory_order_relaxed);
}

const struct config_addr *server_listen(const struct server *srv, size_t *n)
{
    *n = srv->nlisten;
    return srv->listen;
}

int server_start(struct server *srv, struct inherit *given)
{
    static bool threads_ready;
    if (!threads_ready) {
        /* the main thread wakes workers' bases (event_active on stop_ev) */
        if (evthread_use_pthreads() < 0)
            return -ENOMEM;
        threads_ready = true;
    }

    for (size_t k = 0; k < srv->nworkers; k++) {
        struct worker *w = srv->workers[k] = worker_new(srv, k);
        if (!w || !w->base || !w->udp || !w->stop_ev || !w->release_ev || !w->deadline || !w->up ||
            !w->metrics) {
            log_error("out of memory");
            return -ENOMEM;
        }
    }
    return server_open_sockets(srv, given);
}

int server_run(struct server *srv)
{
    for (size_t k = 0; k < srv->nworkers; k++) {
        struct worker *w = srv->workers[k];
        int r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
            log_error("cannot start worker thread: %s", strerror(r));
            server_stop(srv);
            server_wait(srv);
            return -r;
        }
        w->running = true;
    }
    return 0;
}

void server_stop(struct server *srv)
{
    for (size_t k = 0; k < srv->nworkers; k++)
        if (srv->workers[k] && srv->workers[k]->running)
            event_active(srv->workers[k]->stop_ev, 0, 0);
}

void server_release(struct server *srv)
{
    for (size_t k = 0; k < srv->nworkers; k++)
        if (srv->workers[k] && srv->workers[k]->running)
            event_active(srv->workers[k]->release_ev, 0, 0);
}

void server_wait(struct server *srv)
{
    for (size_t k = 0; k < srv->nworkers; k++) {
        struct worker *w = srv->workers[k];
        if (w && w->running) {
            pthread_join(w->thread, NULL);
            w->running = false;
        }
    }
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    for (size_t k = 0; srv->workers && k < srv->nworkers; k++)
        worker_free(srv->workers[k]);
    free(srv->workers);
    free(srv->listen);
    free(srv);
}
