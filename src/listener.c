/* listener.c -- TCP listeners that pause, instead of spinning, when accept() fails. */
#include "svcmapd/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svcmapd/log.h"
#include "svcmapd/metrics.h"

#define PAUSE_FIRST_MS 100
#define PAUSE_MAX_MS   1000

struct listener {
    int fd;
    struct event *ready; /* the socket is readable: a connection waits */
    struct event *resume;
    uint32_t pause_ms; /* the last pause; 0 since the last accepted connection */
    bool held;         /* listener_hold(): not until released */
    listener_cb cb;
    void *arg;
    _Atomic uint64_t *errors;
    struct log_limit *limit;
    char what[96];
};

/* accept() failed with anything but EINTR, EAGAIN or ECONNABORTED: every
 * such error would come back at once (the connection is still queued),
 * so each pauses the listener. */
static void on_error(struct listener *l, int err)
{
    metrics_inc(l->errors, 1);
    l->pause_ms = l->pause_ms ? l->pause_ms * 2 : PAUSE_FIRST_MS;
    if (l->pause_ms > PAUSE_MAX_MS)
        l->pause_ms = PAUSE_MAX_MS;
    event_del(l->ready);
    struct timeval tv = {(time_t)(l->pause_ms / 1000), (suseconds_t)(l->pause_ms % 1000) * 1000};
    evtimer_add(l->resume, &tv);

    uint64_t more;
    if (log_limit_pass(l->limit, &more)) {
        char also[96] = "";
        if (more)
            snprintf(also, sizeof(also), " (and %llu more failed accepts since the last such line)",
                     (unsigned long long)more);
        log_warning("%s: accept: %s; not accepting for %u ms%s", l->what, strerror(err),
                    l->pause_ms, also);
    }
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    (void)what;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int conn = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK);
    if (conn < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            on_error(l, errno);
        return;
    }
    l->pause_ms = 0;
    l->cb(conn, (struct sockaddr *)&ss, len, l->arg);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    (void)fd;
    (void)what;
    if (!l->held)
        event_add(l->ready, NULL);
}

struct listener *listener_new(struct event_base *base, int fd, const char *what, listener_cb cb,
                              void *arg, _Atomic uint64_t *errors, struct log_limit *limit)
{
    struct listener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return NULL;
    }
    l->fd = fd;
    l->cb = cb;
    l->arg = arg;
    l->errors = errors;
    l->limit = limit;
    snprintf(l->what, sizeof(l->what), "%s", what);
    /* accept() must not block when the connection it was woken for has
     * gone meanwhile */
    evutil_make_socket_nonblocking(fd);
    l->resume = evtimer_new(base, on_resume, l);
    l->ready = event_new(base, fd, EV_READ | EV_PERSIST, on_ready, l);
    if (!l->resume || !l->ready || event_add(l->ready, NULL) < 0) {
        listener_free(l);
        return NULL;
    }
    return l;
}

int listener_fd(const struct listener *l)
{
    return l->fd;
}

void listener_hold(struct listener *l, bool held)
{
    l->held = held;
    if (held) {
        event_del(l->ready);
        evtimer_del(l->resume);
    } else {
        on_resume(-1, 0, l);
    }
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    if (l->ready)
        event_free(l->ready);
    if (l->resume)
        event_free(l->resume);
    close(l->fd);
    free(l);
}
