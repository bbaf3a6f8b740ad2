/* server.h -- UDP and TCP sockets on every listen address: bytes in, bytes out. */
#ifndef SVCMAPD_SERVER_H
#define SVCMAPD_SERVER_H

#include "svcmapd/config.h"
#include "svcmapd/reload.h"

struct event_base;

/*
 * The server moves bytes and never looks inside a DNS message: each query
 * goes to answer_query() with the zone of the moment, each reply back out.
 */
struct server;

/* A server on `base` for the listen addresses and limits of `cfg` (copied),
 * answering from `zones`. Opens nothing yet. NULL when out of memory. */
struct server *server_new(struct event_base *base, const struct config *cfg,
                          struct zone_ref *zones);

/* Binds UDP and TCP on every listen address and starts serving. Logs the
 * address that failed; returns 0 or a negative errno. */
int server_start(struct server *srv);

/* Takes the TCP limits of a reloaded config (listen changes need a
 * restart and are ignored here). */
void server_apply_limits(struct server *srv, const struct config *cfg);

/* Stops taking queries: closes the listening sockets, lets TCP replies
 * already queued drain (for at most a few seconds), then holds no events,
 * so the event loop returns. */
void server_stop(struct server *srv);

/* Frees the server and closes what is still open. NULL is a no-op. */
void server_free(struct server *srv);

#endif
