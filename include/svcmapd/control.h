/* control.h -- the control socket: svcmapctl's commands to a running svcmapd (SPEC §7). */
#ifndef SVCMAPD_CONTROL_H
#define SVCMAPD_CONTROL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * `[control] socket = PATH` is a unix stream socket of mode 0600, owned by
 * the user svcmapd runs as: whoever may connect may also signal the
 * process. The protocol is lines of text, so that socat can speak it:
 *
 *   client: one command line, `COMMAND\n` (status, reload, health, stop;
 *           and replace, the first line of a hand-over: handover.h)
 *   server: reply lines, then `exit N` (the status svcmapctl exits with:
 *           0 done or applied, 1 rejected or held, 2 not a command, 3 not
 *           run), then it closes the connection.
 *
 * Every client is bounded: CONTROL_LINE_MAX bytes for its line, which must
 * arrive within CONTROL_DEADLINE seconds; CONTROL_MAX_CLIENTS at once. A
 * line that is too long, not printable ASCII, or names no command gets an
 * `error: ...` line and `exit 2`, and changes nothing; each refusal is
 * counted and logged at most once per LOG_LIMIT_PERIOD.
 *
 * Extending it: a command is a row of control_command_names[] and a case
 * of run_command() in control.c. A command whose answer comes later (as
 * reload's does) keeps its client waiting; replace's reply carries file
 * descriptors (SCM_RIGHTS), written by handover_send() on the client's
 * socket, and waits for a second line from the client.
 */

struct config;
struct event_base;
struct inherit;
struct reload_outcome;
struct reloader;
struct zone_ref;
struct control;

#define CONTROL_LINE_MAX    256 /* bytes of a command line, its newline included */
#define CONTROL_DEADLINE    5   /* seconds to send the line, and to read the reply */
#define CONTROL_MAX_CLIENTS 8   /* connected at once; more are refused */

enum control_command {
    CONTROL_STATUS,
    CONTROL_RELOAD,
    CONTROL_HEALTH,
    CONTROL_STOP,
    CONTROL_REPLACE, /* svcmapd --replace's, not svcmapctl's: handover.h */
    CONTROL_COMMANDS,
};

/* "status", "reload", "health", "stop", "replace", by enum control_command. */
extern const char *const control_command_names[CONTROL_COMMANDS];

enum control_parse_result {
    CONTROL_PARSED,     /* a command */
    CONTROL_INCOMPLETE, /* no newline yet, and room for one */
    CONTROL_TOO_LONG,   /* no newline within CONTROL_LINE_MAX bytes */
    CONTROL_MALFORMED,  /* a byte that is not printable ASCII, an argument, no word */
    CONTROL_UNKNOWN,    /* a word that names no command */
};

struct control_line {
    enum control_command cmd;          /* CONTROL_PARSED */
    size_t used;                       /* the line's bytes, newline included */
    char error[CONTROL_LINE_MAX + 96]; /* otherwise: what the reply says, "error: ..." */
};

/* Reads the command line at the start of `buf`, `len` bytes received so
 * far: a word of control_command_names[], maybe between blanks, ending in
 * "\n" or "\r\n". Pure: no I/O, no allocation (the fuzzer's target). */
enum control_parse_result control_parse(const char *buf, size_t len, struct control_line *out);

/* What `status` and `reload` read, once there is a zone: until then,
 * status says the mapping is loading and reload that it cannot run. */
struct control_sources {
    struct zone_ref *zones;
    struct reloader *reloader;
    const char *path; /* the mapping file */
    const char *copy; /* the state-dir's last good copy; NULL: no state-dir */
};

/* Counts, for /metrics. */
enum control_refusal {
    CONTROL_REFUSED_MALFORMED, /* not a command line, or an unknown command */
    CONTROL_REFUSED_TOO_LONG,
    CONTROL_REFUSED_TIMEOUT, /* no line in time, or a reply not read in time */
    CONTROL_REFUSED_CLIENTS, /* past CONTROL_MAX_CLIENTS */
    CONTROL_REFUSALS,
};

extern const char *const control_refusal_names[CONTROL_REFUSALS];

struct control_stats {
    uint64_t commands[CONTROL_COMMANDS];
    uint64_t refused[CONTROL_REFUSALS];
    size_t clients;                 /* connected now */
    _Atomic uint64_t accept_errors; /* failed accept()s (listener.h) */
};

/* The file descriptors the control socket of `cfg` holds at most: the
 * listening socket and CONTROL_MAX_CLIENTS. */
size_t control_fds(const struct config *cfg);

/* Listens on the unix socket `path` on `base` (the main thread's): made
 * with mode 0600 and, unless `uid` is (uid_t)-1, given to uid:gid (the
 * user svcmapd drops to). A socket file already there is replaced only if
 * nothing answers on it (a svcmapd that died); another file, or a socket
 * that answers, is an error. When `given` (inherit.h; NULL: none) holds a
 * socket listening on `path`, that one is taken instead: a replaced
 * svcmapd's becomes ours (given to uid:gid, removed at exit); systemd's
 * stays systemd's. Logs and returns NULL on a failure. */
struct control *control_new(struct event_base *base, const char *path, uid_t uid, gid_t gid,
                            struct inherit *given);

/* What status and reload read; `src` is copied, its strings are not. */
void control_set_sources(struct control *c, const struct control_sources *src);

/* What status says the process does: "loading", "serving", "lameduck". */
void control_set_state(struct control *c, const char *state);

/* `stop`: stop(arg) is called on a later turn of the loop, as SIGTERM
 * (lameduck included), after the client has its reply queued. */
void control_set_stop(struct control *c, void (*stop)(void *arg), void *arg);

/* `health`: list(arg, put, ctx) writes one line per checked target with
 * put(ctx, line) (SPEC §6). Without it, health answers "no checked
 * targets". For the health checks to hang on. */
void control_set_health(struct control *c,
                        void (*list)(void *arg, void (*put)(void *ctx, const char *line),
                                     void *ctx),
                        void *arg);

struct handover_offer;

/* svcmapd --replace (handover.h), the running side. offer() fills the
 * offer with the facts and the listening sockets of everything but the
 * control socket, which control.c adds itself; false, with `why` (a
 * line), when a hand-over cannot run now. From then until done() or
 * abort(), nothing may change what was offered (reloads are held). done():
 * the new process answers on the sockets; this one stops reading them
 * and drains (control_stop() included), with the control socket's file
 * the new process's. abort(): it went away before that; serve on. */
struct control_replace {
    bool (*offer)(void *arg, struct handover_offer *o, char *why, size_t cap);
    void (*done)(void *arg);
    void (*abort)(void *arg);
    void *arg;
};

/* Enables `replace` (without it, replace is refused). */
void control_set_replace(struct control *c, const struct control_replace *r);

/* A reload ended (main thread): the clients waiting for one that started
 * after they asked get its diagnostics, its line and its exit status. */
void control_reload_done(struct control *c, const struct reload_outcome *o);

/* Shutting down: stops listening and removes the socket; a client waiting
 * for a reload is told it will not run; replies being written are
 * finished (within CONTROL_DEADLINE). NULL is a no-op. */
void control_stop(struct control *c);

/* Counts, for /metrics. */
const struct control_stats *control_stats(const struct control *c);

/* Closes everything and frees; removes the socket if it is still ours.
 * NULL is a no-op. */
void control_free(struct control *c);

#endif
