/* listener.h -- TCP listeners that pause, instead of spinning, when accept() fails. */
#ifndef SVCMAPD_LISTENER_H
#define SVCMAPD_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * A listening socket stays readable while a connection waits in its
 * queue, so a listener whose accept() fails for want of a descriptor
 * (EMFILE, ENFILE) or of memory (ENOBUFS, ENOMEM) is woken again at once,
 * fails again, and runs a core flat out while it logs each failure. These
 * stop listening for a while instead: 100 ms after the first failure,
 * twice as long after each next one, 1 s at most, back to 100 ms once a
 * connection is accepted. Each failure is counted; they are logged at
 * most once per LOG_LIMIT_PERIOD (log.h). And they accept one connection
 * per turn of the event loop, as NSD does: the socket stays readable
 * while more wait, so those come at the next turn, after what is ready
 * has been read, and no accept() is made only to learn that none waits.
 */

struct event_base;
struct listener;
struct log_limit;

/* Called with each accepted connection, which it owns from then on. */
typedef void (*listener_cb)(int fd, const struct sockaddr *peer, socklen_t len, void *arg);

/*
 * Accepts connections on `fd` (bound, listening, non-blocking; the
 * listener owns it from now on, even when this fails) in the thread that
 * runs `base`, and hands each to cb(fd, peer, len, arg). A failed accept()
 * adds one to *errors (a counter of this thread's, metrics.h) and is
 * logged through `limit`, which several listeners may share, as
 * "WHAT: accept: ERROR". NULL when out of memory.
 */
struct listener *listener_new(struct event_base *base, int fd, const char *what, listener_cb cb,
                              void *arg, _Atomic uint64_t *errors, struct log_limit *limit);

/* The listening socket. */
int listener_fd(const struct listener *l);

/* Stops accepting until released (held false): connections wait in the
 * socket's queue meanwhile, for whoever accepts next. For a socket being
 * handed to another process, which accepts them if it takes over. */
void listener_hold(struct listener *l, bool held);

/* Stops listening and closes the socket. NULL is a no-op. */
void listener_free(struct listener *l);

#endif
