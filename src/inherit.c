/* inherit.c -- listening sockets given to this process instead of bound by it: by systemd, or by
 * the svcmapd it replaces. */
#include "svcmapd/inherit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "svcmapd/config.h"
#include "svcmapd/log.h"

#define LISTEN_FDS_START 3    /* SD_LISTEN_FDS_START: systemd passes them from here */
#define LISTEN_FDS_MAX   8192 /* more is no svcmapd's unit */

/* One socket of the set. */
struct given {
    int fd; /* -1: taken */
    int type;
    struct config_addr where; /* where.text: the address, or a unix socket's path */
    char label[64];           /* systemd's FileDescriptorName=, the old svcmapd's label */
};

struct inherit {
    enum inherit_origin origin;
    struct given *socks;
    size_t n, cap;
    size_t left; /* not taken */
};

struct inherit *inherit_new(enum inherit_origin origin)
{
    struct inherit *in = calloc(1, sizeof(*in));
    if (!in)
        log_error("out of memory");
    else
        in->origin = origin;
    return in;
}

/* What the log calls the giver. */
static const char *giver(const struct inherit *in)
{
    return in->origin == INHERIT_SYSTEMD ? "socket activation" : "replace";
}

static const char *type_name(const struct given *g)
{
    return g->where.addr.ss_family == AF_UNIX ? "unix" : g->type == SOCK_DGRAM ? "udp" : "tcp";
}

/* Reads what `g->fd` is into g; NULL if it can be used, or why not. */
static const char *describe(struct given *g)
{
    int listening = 0;
    socklen_t len = sizeof(g->type);
    g->where.addrlen = sizeof(g->where.addr);
    if (getsockopt(g->fd, SOL_SOCKET, SO_TYPE, &g->type, &len) < 0 ||
        getsockname(g->fd, (struct sockaddr *)&g->where.addr, &g->where.addrlen) < 0)
        return strerror(errno);
    int family = g->where.addr.ss_family;
    if (family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&g->where.addr;
        size_t n = g->where.addrlen > offsetof(struct sockaddr_un, sun_path)
                       ? g->where.addrlen - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        snprintf(g->where.text, sizeof(g->where.text), "%.*s", (int)strnlen(sun->sun_path, n),
                 sun->sun_path);
    } else if (family == AF_INET || family == AF_INET6) {
        config_addr_text(&g->where);
    } else {
        return "not an IP or unix socket";
    }
    if (g->type != SOCK_DGRAM && g->type != SOCK_STREAM)
        return "neither a datagram nor a stream socket";
    if (family == AF_UNIX && g->type != SOCK_STREAM)
        return "a unix socket that is not a stream";
    len = sizeof(listening);
    if (g->type == SOCK_STREAM &&
        (getsockopt(g->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening))
        return "a stream socket that does not listen";
    int fl = fcntl(g->fd, F_GETFL);
    if (fl < 0 || fcntl(g->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(g->fd, F_SETFD, FD_CLOEXEC) < 0)
        return strerror(errno);
    return NULL;
}

int inherit_add(struct inherit *in, int fd, const char *label)
{
    struct given g = {.fd = fd};
    snprintf(g.label, sizeof(g.label), "%s", label ? label : "");
    const char *why = describe(&g);
    if (!why && in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        struct given *more = realloc(in->socks, cap * sizeof(*more));
        if (more) {
            in->socks = more;
            in->cap = cap;
        } else {
            why = "out of memory";
        }
    }
    if (why) {
        log_error("%s: descriptor %d%s%s%s cannot be listened on: %s", giver(in), fd,
                  g.label[0] ? " (" : "", g.label, g.label[0] ? ")" : "", why);
        close(fd);
        return -1;
    }
    in->socks[in->n++] = g;
    in->left++;
    log_debug("%s: given %s %s%s%s%s", giver(in), type_name(&g), g.where.text,
              g.label[0] ? " (" : "", g.label, g.label[0] ? ")" : "");
    return 0;
}

/* The next name of $LISTEN_FDNAMES at *names (moved past it), into out. */
static void next_name(const char **names, char *out, size_t cap)
{
    const char *p = *names ? *names : "";
    size_t n = strcspn(p, ":");
    snprintf(out, cap, "%.*s", (int)n, p);
    *names = p[n] == ':' ? p + n + 1 : NULL;
}

struct inherit *inherit_systemd(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    struct inherit *in = NULL;
    char *end;
    long owner = pid ? strtol(pid, &end, 10) : 0;
    /* "Is this for us?": a variable left by a parent is not */
    bool ours = pid && *end == '\0' && owner == (long)getpid() && fds;
    unsigned long n = ours ? strtoul(fds, &end, 10) : 0;
    if (ours && (*end != '\0' || n == 0 || n > LISTEN_FDS_MAX)) {
        log_error("socket activation: LISTEN_FDS=%s is not a number of sockets from 1 to %d: "
                  "binding the listen addresses instead",
                  fds, LISTEN_FDS_MAX);
        n = 0;
    }
    char *names = ours && getenv("LISTEN_FDNAMES") ? strdup(getenv("LISTEN_FDNAMES")) : NULL;
    if (n)
        in = inherit_new(INHERIT_SYSTEMD);
    const char *name = names;
    for (unsigned long i = 0; in && i < n; i++) {
        char label[64];
        next_name(&name, label, sizeof(label));
        inherit_add(in, LISTEN_FDS_START + (int)i, label);
    }
    if (in)
        log_info("socket activation: systemd passed %lu socket%s", n, n == 1 ? "" : "s");
    free(names);
    /* as sd_listen_fds(1) does: nothing this process starts sees them */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return in;
}

size_t inherit_left(const struct inherit *in)
{
    return in ? in->left : 0;
}

/* The same IP address and port. */
static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return a->ss_family == AF_INET6 && x->sin6_port == y->sin6_port &&
           x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* Takes socket i out of the set. */
static int take(struct inherit *in, size_t i)
{
    int fd = in->socks[i].fd;
    in->socks[i].fd = -1;
    in->left--;
    return fd;
}

int inherit_take(struct inherit *in, int type, const struct sockaddr_storage *addr)
{
    for (size_t i = 0; in && i < in->n; i++)
        if (in->socks[i].fd >= 0 && in->socks[i].type == type &&
            same_addr(&in->socks[i].where.addr, addr))
            return take(in, i);
    return -1;
}

int inherit_take_unix(struct inherit *in, const char *path, bool *remove)
{
    for (size_t i = 0; in && i < in->n; i++) {
        const struct given *g = &in->socks[i];
        if (g->fd >= 0 && g->where.addr.ss_family == AF_UNIX && strcmp(g->where.text, path) == 0) {
            *remove = in->origin == INHERIT_HANDOVER;
            return take(in, i);
        }
    }
    return -1;
}

void inherit_free(struct inherit *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->n; i++) {
        struct given *g = &in->socks[i];
        if (g->fd < 0)
            continue;
        if (in->origin == INHERIT_SYSTEMD)
            log_warning("socket activation: systemd passed %s %s%s%s%s, which the mapping file "
                        "does not listen on: closed (make the socket unit and `listen` agree)",
                        type_name(g), g->where.text, g->label[0] ? " (" : "", g->label,
                        g->label[0] ? ")" : "");
        else
            log_info("replace: %s %s is not in the mapping file: closed here, and by the old "
                     "svcmapd once it has drained",
                     type_name(g), g->where.text);
        close(g->fd);
    }
    free(in->socks);
    free(in);
}
