/* server.h -- UDP and TCP sockets on every listen address: bytes in, bytes out. */
#ifndef SVCMAPD_SERVER_H
#define SVCMAPD_SERVER_H

#include "svcmapd/config.h"
#include "svcmapd/zone_ref.h" /* the workers read the zone through it */

struct metrics;
struct upstream_stats;

/*
 * The server moves bytes and never looks inside a DNS message: each query
 * goes to answer_query() with the zone of the moment, each reply back out.
 * It runs `workers` threads (config), each with its own sockets.
 */
struct server;

/* How many workers `cfg` asks for: `workers`, or one per online CPU. */
size_t server_worker_count(const struct config *cfg);

/* The file descriptors the workers of a server for `cfg` hold, their TCP
 * connections and upstream lookups aside: sockets and event bases. */
size_t server_fds(const struct config *cfg);

/* A server for the listen addresses and workers of `cfg` (copied),
 * answering from `zones`, which needs one reader slot per worker, each
 * worker with at most `max_lookups` upstream lookups in flight (a socket
 * each). Opens nothing yet. NULL when out of memory. */
struct server *server_new(const struct config *cfg, struct zone_ref *zones, size_t max_lookups);

/* The number of worker threads. */
size_t server_workers(const struct server *srv);

/* For the metrics endpoint (main thread, once started): worker k's
 * counters, its upstream counters, the open TCP connections, and the
 * listen addresses (the `server` label). */
const struct metrics *server_metrics(const struct server *srv, size_t k);
const struct upstream_stats *server_upstream_stats(const struct server *srv, size_t k);
uint32_t server_tcp_open(const struct server *srv);
const struct config_addr *server_listen(const struct server *srv, size_t *n);

/* Binds UDP and TCP on every listen address for every worker (privileged
 * ports need root or CAP_NET_BIND_SERVICE here). Logs the address that
 * failed; returns 0 or a negative errno (then call server_free, which
 * closes what was opened). */
int server_start(struct server *srv);

/* Starts the worker threads on the bound sockets (privileges may have been
 * dropped in between). Returns 0 or a negative errno. */
int server_run(struct server *srv);

/* Asks every worker to stop taking queries: listening sockets close, TCP
 * replies already queued drain (at most a few seconds). Any thread;
 * returns at once. */
void server_stop(struct server *srv);

/* Waits until every worker has stopped. */
void server_wait(struct server *srv);

/* Frees a server whose workers have stopped (or never started). NULL is a
 * no-op. */
void server_free(struct server *srv);

#endif
