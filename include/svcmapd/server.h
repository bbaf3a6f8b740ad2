/* server.h -- UDP and TCP sockets on every listen address: bytes in, bytes out. */
#ifndef SVCMAPD_SERVER_H
#define SVCMAPD_SERVER_H

#include "svcmapd/config.h"
#include "svcmapd/zone_ref.h" /* the workers read the zone through it */

struct inherit;
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

/* Gives every worker UDP and TCP sockets on every listen address: the
 * ones `given` holds for it (inherit.h; NULL: none), which are taken out
 * of it, and bound here for the others (privileged ports need root or
 * CAP_NET_BIND_SERVICE here). Every given socket is read, however many
 * workers there are. Logs the address that failed; returns 0 or a
 * negative errno (then call server_free, which closes what was opened). */
int server_start(struct server *srv, struct inherit *given);

/* Starts the worker threads on the bound sockets (privileges may have been
 * dropped in between). Returns 0 or a negative errno. */
int server_run(struct server *srv);

/* Asks every worker to stop taking queries: listening sockets close, TCP
 * replies already queued drain (at most a few seconds). Any thread;
 * returns at once. */
void server_stop(struct server *srv);

/* Each of the listening sockets, distinct ones only, for a hand-over:
 * put(arg, fd, label), the label "udp ADDRESS" or "tcp ADDRESS". Main
 * thread, while the workers serve. */
void server_listening(const struct server *srv, void (*put)(void *arg, int fd, const char *label),
                      void *arg);

/* The sockets were handed to another process, which reads them now:
 * every worker stops reading them and closes its copies (the sockets and
 * their queues live on in the other process), answers what its TCP
 * connections still send, without waiting for upstream lookups, closes
 * each with a FIN once it has nothing left to answer (a few seconds at
 * most), and ends. Any thread; returns at once: server_wait(). */
void server_release(struct server *srv);

/* Waits until every worker has stopped. */
void server_wait(struct server *srv);

/* Frees a server whose workers have stopped (or never started). NULL is a
 * no-op. */
void server_free(struct server *srv);

#endif
