/* inherit.h -- listening sockets given to this process instead of bound by it: by systemd, or by
 * the svcmapd it replaces. */
#ifndef SVCMAPD_INHERIT_H
#define SVCMAPD_INHERIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/*
 * Two ways a process is handed sockets that are already bound and
 * listening (SPEC §7): systemd's socket activation ($LISTEN_FDS), and
 * `svcmapd --replace`, which receives the running svcmapd's (handover.h).
 * Either way the sockets go into one set, and each part of svcmapd takes
 * out the ones it listens on, matched by what the socket itself says
 * (its type and getsockname()), never by a name: the DNS workers their UDP
 * and TCP sockets per `listen` address (server.h), the HTTP endpoints
 * theirs, the control socket its unix path. What nobody takes is closed
 * and logged; an address nothing was given for is bound as usual.
 */

struct inherit;

/* Who gave the sockets: what the log says, and whether the socket file
 * of a unix socket becomes ours to remove at exit. */
enum inherit_origin {
    INHERIT_SYSTEMD,  /* socket activation: the file is systemd's */
    INHERIT_HANDOVER, /* the svcmapd replaced: its file is ours now */
};

/* An empty set. NULL when out of memory (logged). */
struct inherit *inherit_new(enum inherit_origin origin);

/* Adds `fd` (taken: closed here when it cannot be used) with `label`, a
 * name for the log (copied; NULL: none). Reads its type and address, and
 * makes it non-blocking and close-on-exec. Returns 0, or -1 (logged) for
 * a descriptor that is not a socket, or a stream socket that does not
 * listen. */
int inherit_add(struct inherit *in, int fd, const char *label);

/*
 * The sockets systemd passed, as sd_listen_fds(3) reads them without
 * libsystemd: $LISTEN_PID must be this process, $LISTEN_FDS says how
 * many, from descriptor 3 on, and $LISTEN_FDNAMES may name them (for the
 * log: FileDescriptorName= is not needed). The three variables are
 * removed from the environment. Returns the set, or NULL when none were
 * passed (or when out of memory, logged).
 */
struct inherit *inherit_systemd(void);

/* The number of sockets in the set that nobody has taken yet. */
size_t inherit_left(const struct inherit *in);

/* Takes out of `in` (NULL: an empty set) the next socket of `type`
 * (SOCK_DGRAM or SOCK_STREAM, a listening one) bound to `addr`, and
 * returns its descriptor, the caller's from now on; -1 when none is left.
 * A set holds several for one address when the svcmapd it came from had
 * a socket per worker (SO_REUSEPORT). */
int inherit_take(struct inherit *in, int type, const struct sockaddr_storage *addr);

/* Takes the listening unix stream socket bound to `path`; -1 if none.
 * *remove says whether its file is the taker's to remove at exit: the
 * replaced svcmapd's is, systemd's is not. */
int inherit_take_unix(struct inherit *in, const char *path, bool *remove);

/* Closes every socket nobody took, one log line each (a warning for
 * systemd's: the unit and the file disagree), and frees. NULL is a
 * no-op. */
void inherit_free(struct inherit *in);

#endif
