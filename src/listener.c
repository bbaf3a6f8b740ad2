/* listener.c -- TCP listeners that pause, instead of spinning, when accept() fails. */
#include "svcmapd/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svcmapd/log.h"
#include "svcmapd/metrics.h"

#define PAUSE_FIRST_MS 100
#define PAUSE_MAX_MS   1000
#define ACCEPT_BATCH   16 /* connections accepted before the loop takes a turn */

struct listener {
    struct evconnlistener *lev;
    struct event *resume;
    uint32_t pause_ms; /* the last pause; 0 since the last accepted connection */
    unsigned accepted; /* since the last pause */
    bool held;         /* listener_hold(): not until released */
    listener_cb cb;
    void *arg;
    _Atomic uint64_t *errors;
    struct log_limit *limit;
    char what[96];
};

static void on_connection(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    struct listener *l = arg;
    l->pause_ms = 0;
    if (++l->accepted == ACCEPT_BATCH) {
        /* libevent would accept all that wait at once; a pause of no time
         * lets the loop first read those just accepted (a connection cap
         * that closes the oldest must not close them unread) */
        evconnlistener_disable(lev);
        struct timeval now = {0, 0};
        evtimer_add(l->resume, &now);
    }
    l->cb(fd, sa, (socklen_t)salen, l->arg);
}

/* libevent calls it when accept() fails with anything but EINTR, EAGAIN
 * or ECONNABORTED, with errno still as accept() left it. Every such error
 * would come back at once (the connection is still queued), so each
 * pauses the listener. */
static void on_error(struct evconnlistener *lev, void *arg)
{
    struct listener *l = arg;
    int err = errno;
    metrics_inc(l->errors, 1);
    l->pause_ms = l->pause_ms ? l->pause_ms * 2 : PAUSE_FIRST_MS;
    if (l->pause_ms > PAUSE_MAX_MS)
        l->pause_ms = PAUSE_MAX_MS;
    evconnlistener_disable(lev);
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

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    (void)fd;
    (void)what;
    l->accepted = 0;
    if (!l->held)
        evconnlistener_enable(l->lev);
}

struct listener *listener_new(struct event_base *base, int fd, const char *what, listener_cb cb,
                              void *arg, _Atomic uint64_t *errors, struct log_limit *limit)
{
    struct listener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return NULL;
    }
    l->cb = cb;
    l->arg = arg;
    l->errors = errors;
    l->limit = limit;
    snprintf(l->what, sizeof(l->what), "%s", what);
    l->resume = evtimer_new(base, on_resume, l);
    l->lev = l->resume ? evconnlistener_new(base, on_connection, l, LEV_OPT_CLOSE_ON_FREE, -1, fd)
                       : NULL;
    if (!l->lev) {
        close(fd);
        listener_free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->lev, on_error);
    return l;
}

int listener_fd(const struct listener *l)
{
    return evconnlistener_get_fd(l->lev);
}

void listener_hold(struct listener *l, bool held)
{
    l->held = held;
    if (held) {
        evconnlistener_disable(l->lev);
        evtimer_del(l->resume);
    } else {
        on_resume(-1, 0, l);
    }
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    if (l->lev)
        evconnlistener_free(l->lev);
    if (l->resume)
        event_free(l->resume);
    free(l);
}
