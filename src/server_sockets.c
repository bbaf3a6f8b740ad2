/* server_sockets.c -- the workers' listening sockets: bound here or given, shared out, listed for a
 * hand-over. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_impl.h"
#include "svcmapd/inherit.h"
#include "svcmapd/listener.h"

/*
 * Where the sockets of a listen address come from, for each of UDP and
 * TCP:
 *   - bound here: one per worker, in one SO_REUSEPORT group when there
 *     are several workers (the kernel spreads queries and connections
 *     over them), after probe_exclusive();
 *   - given (inherit.h): by systemd, one socket; by the svcmapd this one
 *     replaces, as many as it had, each with the queries and connections
 *     already queued in it.
 * Given sockets are never closed while this process runs: a socket of a
 * SO_REUSEPORT group that closes drops what its queue holds, and the
 * kernel goes on sending it its share until then. So every one of them
 * is read: with more sockets than workers, a worker reads several; with
 * fewer, the group is joined by new sockets of the same group when it is
 * one (same address, same user, SO_REUSEPORT) and otherwise the workers
 * share the sockets there are, each reading its own duplicate of one
 * (epoll and accept() wake one reader or another; each datagram and each
 * connection is taken once).
 */

/* A socket, for `type`, bound to `l` (listening, for TCP), or a negative
 * errno. `shared` sets SO_REUSEPORT, so that every worker can bind the
 * same address. Says nothing: the caller logs. */
static int open_socket(const struct config_addr *l, int type, bool shared)
{
    int fd = socket(l->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
        (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) ||
        (l->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0) ||
        bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0 ||
        (type == SOCK_STREAM && listen(fd, TCP_BACKLOG) < 0)) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static const char *proto(int type)
{
    return type == SOCK_DGRAM ? "udp" : "tcp";
}

/* open_socket(), a failure logged. */
static int bind_socket(const struct config_addr *l, int type, bool shared)
{
    int fd = open_socket(l, type, shared);
    if (fd < 0)
        log_error("cannot listen on %s (%s): %s", l->text, proto(type), strerror(-fd));
    return fd;
}

/* SO_REUSEPORT would let a second svcmapd (a stale one, say) share the
 * port and take half the queries. Binding once without it first proves
 * that nobody else holds the address. */
static int probe_exclusive(const struct config_addr *l, int type)
{
    int fd = bind_socket(l, type, false);
    if (fd >= 0)
        close(fd);
    return fd < 0 ? fd : 0;
}

/* A socket for one worker: where it listens, and whether another worker
 * reads the same socket through a descriptor of its own. */
struct placed {
    size_t worker;
    size_t index; /* of the listen address */
    int type;
    int fd;
    bool copy; /* a duplicate: the socket is handed over once, by the other */
};

struct plan {
    struct placed *p;
    size_t n, cap;
    int err;
};

static void place(struct plan *pl, size_t worker, size_t index, int type, int fd, bool copy)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 16;
        struct placed *more = realloc(pl->p, cap * sizeof(*more));
        if (!more) {
            close(fd);
            pl->err = -ENOMEM;
            return;
        }
        pl->p = more;
        pl->cap = cap;
    }
    pl->p[pl->n++] = (struct placed){worker, index, type, fd, copy};
}

/* Whether `fd` was bound with SO_REUSEPORT. */
static bool reuses_port(int fd)
{
    int on = 0;
    socklen_t len = sizeof(on);
    return getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, &len) == 0 && on;
}

/* The sockets of listen address i for `type`, placed on the workers. */
static void plan_address(struct server *srv, struct inherit *given, size_t i, int type,
                         struct plan *pl)
{
    const struct config_addr *l = &srv->listen[i];
    size_t workers = srv->nworkers, first = pl->n, n = 0;
    for (int fd; (fd = inherit_take(given, type, &l->addr)) >= 0; n++)
        place(pl, n % workers, i, type, fd, false);
    if (n == 0) {
        int r = workers > 1 ? probe_exclusive(l, type) : 0;
        for (size_t k = 0; k < workers && r == 0 && pl->err == 0; k++) {
            int fd = bind_socket(l, type, workers > 1);
            if (fd >= 0)
                place(pl, k, i, type, fd, false);
            else
                r = fd;
        }
        if (r < 0 && pl->err == 0)
            pl->err = r;
        return;
    }
    size_t got = n, joined = 0, shared = 0;
    bool group = reuses_port(pl->p[first].fd);
    for (; n < workers && pl->err == 0; n++) {
        int fd = group ? open_socket(l, type, true) : -1;
        bool copy = fd < 0;
        if (copy) /* the same socket, read by one more worker */
            fd = fcntl(pl->p[first + n % got].fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            pl->err = -errno;
            log_error("%s (%s): cannot share a socket: %s", l->text, proto(type), strerror(errno));
            return;
        }
        place(pl, n, i, type, fd, copy);
        joined += !copy;
        shared += copy;
    }
    char more[96] = "";
    if (joined)
        snprintf(more, sizeof(more), ", and %zu more bound in their SO_REUSEPORT group", joined);
    else if (shared)
        snprintf(more, sizeof(more), ": the workers share %s", got == 1 ? "it" : "them");
    else if (got > workers)
        snprintf(more, sizeof(more), ": a worker reads several");
    log_info("%s (%s): %zu socket%s given, for %zu worker%s%s", l->text, proto(type), got,
             got == 1 ? "" : "s", workers, workers == 1 ? "" : "s", more);
}

/* Gives worker w the slots its placed sockets need. */
static int make_room(struct worker *w, const struct plan *pl)
{
    size_t nudp = 0, ntcp = 0;
    for (size_t k = 0; k < pl->n; k++) {
        if (pl->p[k].worker != w->slot)
            continue;
        nudp += pl->p[k].type == SOCK_DGRAM;
        ntcp += pl->p[k].type == SOCK_STREAM;
    }
    w->udps = calloc(nudp ? nudp : 1, sizeof(*w->udps));
    w->tcps = calloc(ntcp ? ntcp : 1, sizeof(*w->tcps));
    for (size_t k = 0; w->udps && k < nudp; k++)
        w->udps[k].fd = -1;
    return w->udps && w->tcps ? 0 : -ENOMEM;
}

int server_open_sockets(struct server *srv, struct inherit *given)
{
    struct plan pl = {0};
    for (size_t i = 0; i < srv->nlisten && pl.err == 0; i++) {
        plan_address(srv, given, i, SOCK_DGRAM, &pl);
        if (pl.err == 0)
            plan_address(srv, given, i, SOCK_STREAM, &pl);
    }
    for (size_t k = 0; k < srv->nworkers && pl.err == 0; k++)
        pl.err = make_room(srv->workers[k], &pl);
    size_t started = 0;
    for (; started < pl.n && pl.err == 0; started++) {
        const struct placed *p = &pl.p[started];
        struct worker *w = srv->workers[p->worker];
        const struct config_addr *l = &srv->listen[p->index];
        if (p->type == SOCK_DGRAM) {
            struct udp_sock *u = &w->udps[w->nudps++];
            u->copy = p->copy;
            pl.err = udp_start(w, l, u, p->fd);
        } else {
            struct tcp_listener *t = &w->tcps[w->ntcps++];
            t->copy = p->copy;
            pl.err = tcp_start(w, l, t, p->fd);
        }
    }
    if (pl.err == -ENOMEM)
        log_error("out of memory");
    for (size_t k = started; k < pl.n; k++) /* never handed to a worker */
        close(pl.p[k].fd);
    free(pl.p);
    return pl.err;
}

void server_listening(const struct server *srv, void (*put)(void *arg, int fd, const char *label),
                      void *arg)
{
    char label[96];
    for (size_t k = 0; k < srv->nworkers; k++) {
        const struct worker *w = srv->workers[k];
        for (size_t i = 0; i < w->nudps; i++) {
            if (w->udps[i].copy || w->udps[i].fd < 0)
                continue;
            snprintf(label, sizeof(label), "udp %s", srv->listen[w->udps[i].index].text);
            put(arg, w->udps[i].fd, label);
        }
        for (size_t i = 0; i < w->ntcps; i++) {
            if (w->tcps[i].copy || !w->tcps[i].l)
                continue;
            snprintf(label, sizeof(label), "tcp %s", srv->listen[w->tcps[i].index].text);
            put(arg, listener_fd(w->tcps[i].l), label);
        }
    }
}
