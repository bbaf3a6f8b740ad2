/* control.c -- the control socket: svcmapctl's commands to a running svcmapd (SPEC §7). */
#include "svcmapd/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config-build.h"
#include "svcmapd/config.h"
#include "svcmapd/diag.h"
#include "svcmapd/handover.h"
#include "svcmapd/inherit.h"
#include "svcmapd/listener.h"
#include "svcmapd/log.h"
#include "svcmapd/reload.h"
#include "svcmapd/zone.h"
#include "svcmapd/zone_ref.h"

const char *const control_command_names[CONTROL_COMMANDS] = {"status", "reload", "health", "stop",
                                                             "replace"};

const char *const control_refusal_names[CONTROL_REFUSALS] = {"malformed", "too_long", "timeout",
                                                             "clients"};

/* The exit statuses a reply ends with (svcmapctl exits with them). */
enum {
    EXIT_DONE = 0,
    EXIT_REJECTED = 1, /* a reload rejected or held, or not possible yet */
    EXIT_BAD_COMMAND = 2,
    EXIT_NOT_RUN = 3, /* svcmapd is going away */
};

/* Blanks around the command word. */
static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

enum control_parse_result control_parse(const char *buf, size_t len, struct control_line *out)
{
    out->used = 0;
    out->error[0] = '\0';
    size_t scan = len < CONTROL_LINE_MAX ? len : CONTROL_LINE_MAX;
    const char *nl = memchr(buf, '\n', scan);
    size_t end = nl ? (size_t)(nl - buf) : scan; /* the line without its newline */
    /* Bytes that no command line holds refuse it at once, without waiting
     * for the newline: a client sending binary is told now. '\r' only
     * before the newline (or last, so far). */
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)buf[i];
        if ((c >= 0x20 && c < 0x7f) || c == '\t' || (c == '\r' && i + 1 == end))
            continue;
        snprintf(out->error, sizeof(out->error),
                 "error: not a command line: byte %zu is 0x%02x; a command is a word of "
                 "printable ASCII and a newline",
                 i + 1, c);
        return CONTROL_MALFORMED;
    }
    if (!nl) {
        if (scan < CONTROL_LINE_MAX)
            return CONTROL_INCOMPLETE;
        snprintf(out->error, sizeof(out->error),
                 "error: no newline within %d bytes: a command line is shorter", CONTROL_LINE_MAX);
        return CONTROL_TOO_LONG;
    }
    out->used = end + 1;
    if (end && buf[end - 1] == '\r')
        end--;
    size_t w = 0;
    while (w < end && blank(buf[w]))
        w++;
    size_t wend = w;
    while (wend < end && !blank(buf[wend]))
        wend++;
    size_t rest = wend;
    while (rest < end && blank(buf[rest]))
        rest++;
    int wlen = (int)(wend - w);
    if (wlen == 0) {
        snprintf(out->error, sizeof(out->error), "error: an empty line is no command");
        return CONTROL_MALFORMED;
    }
    for (int i = 0; i < CONTROL_COMMANDS; i++) {
        if (strlen(control_command_names[i]) != (size_t)wlen ||
            memcmp(control_command_names[i], buf + w, (size_t)wlen) != 0)
            continue;
        if (rest < end) {
            snprintf(out->error, sizeof(out->error), "error: '%s' takes no argument",
                     control_command_names[i]);
            return CONTROL_MALFORMED;
        }
        out->cmd = (enum control_command)i;
        return CONTROL_PARSED;
    }
    char known[64] = "";
    for (int i = 0; i < CONTROL_COMMANDS; i++)
        snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s", i ? ", " : "",
                 control_command_names[i]);
    snprintf(out->error, sizeof(out->error), "error: unknown command '%.*s' (commands: %s)", wlen,
             buf + w, known);
    return CONTROL_UNKNOWN;
}

/* ---------------------------------------------------------------------- */
/* The server                                                              */

enum client_state {
    READING, /* its command line, within CONTROL_DEADLINE */
    WAITING, /* for a reload numbered `ticket` or later */
    WRITING, /* its reply, then closed; within CONTROL_DEADLINE */
    HANDING, /* a new svcmapd, given the sockets: for `answering`, within HANDOVER_DEADLINE */
};

struct client {
    struct control *c;
    struct client *prev, *next;
    struct bufferevent *bev;
    struct event *deadline;
    enum client_state state;
    uint64_t ticket;
    struct ucred cred; /* who it is: for the log */
};

struct control {
    struct event_base *base;
    char *path;
    dev_t dev; /* of the socket file made: removed at the end only if still ours */
    ino_t ino;
    bool made;
    struct listener *l;
    struct client *clients;
    struct timespec started;
    struct control_sources src;
    char state[32];
    void (*stop)(void *arg);
    void *stop_arg;
    struct event *stop_ev; /* calls stop() a turn after the reply is queued */
    void (*health)(void *arg, void (*put)(void *ctx, const char *line), void *ctx);
    void *health_arg;
    struct control_replace replace;
    struct client *handing; /* the new svcmapd a hand-over waits for; NULL: none */
    struct control_stats stats;
    struct log_limit accept_log, refuse_log;
};

size_t control_fds(const struct config *cfg)
{
    return cfg->control_socket ? 1 + CONTROL_MAX_CLIENTS : 0;
}

/* "pid 1234 uid 0", for the log. */
static void who(const struct client *cl, char *out, size_t cap)
{
    snprintf(out, cap, "pid %ld uid %ld", (long)cl->cred.pid, (long)cl->cred.uid);
}

static void abandon_handover(struct control *c);

static void client_free(struct client *cl)
{
    struct control *c = cl->c;
    if (c->handing == cl)
        abandon_handover(c); /* it went away (or timed out) before it answered */
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        c->clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    c->stats.clients--;
    event_free(cl->deadline);
    bufferevent_free(cl->bev);
    free(cl);
}

static void arm(struct client *cl)
{
    struct timeval tv = {CONTROL_DEADLINE, 0};
    evtimer_add(cl->deadline, &tv);
}

/* One reply line; bytes that would break the protocol (a control byte in
 * a diagnostic that quotes the file) become '?'. */
static void put_line(void *ctx, const char *line)
{
    struct client *cl = ctx;
    struct evbuffer *out = bufferevent_get_output(cl->bev);
    char buf[1100];
    size_t n = strlen(line);
    if (n > sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)line[i] < 0x20 && line[i] != '\t' ? '?' : line[i];
    buf[n] = '\n';
    evbuffer_add(out, buf, n + 1);
}

__attribute__((format(printf, 2, 3))) static void put(struct client *cl, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    put_line(cl, line);
}

/* Ends the reply with its exit status: the client is closed once it has
 * read it, or after CONTROL_DEADLINE. */
static void finish(struct client *cl, int status)
{
    put(cl, "exit %d", status);
    cl->state = WRITING;
    bufferevent_disable(cl->bev, EV_READ);
    arm(cl);
}

/* Counts and logs (at most once per LOG_LIMIT_PERIOD) a client refused. */
static void refuse(struct control *c, const struct client *cl, enum control_refusal why,
                   const char *what)
{
    c->stats.refused[why]++;
    uint64_t more;
    if (!log_limit_pass(&c->refuse_log, &more))
        return;
    char peer[64] = "", also[96] = "";
    if (cl)
        who(cl, peer, sizeof(peer));
    if (more)
        snprintf(also, sizeof(also), " (and %llu more refused since the last such line)",
                 (unsigned long long)more);
    log_warning("control: %s%s%s%s", peer, cl ? ": " : "", what, also);
}

static void status(struct control *c, struct client *cl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    put(cl, "version: %s", SVCMAPD_VERSION);
    put(cl, "pid: %ld", (long)getpid());
    put(cl, "uptime: %lld s", (long long)(now.tv_sec - c->started.tv_sec));
    put(cl, "state: %s", c->state);
    if (!c->src.zones || !c->src.reloader)
        return;
    const struct reload_stats *rs = reload_stats(c->src.reloader);
    put(cl, "mapping: %s", c->src.path);
    if (!c->src.copy)
        put(cl, "last good copy: off (no state-dir)");
    else if (rs->last_good)
        put(cl,
            "last good copy: IN USE: %s could not be loaded at start; serving %s until a "
            "reload succeeds",
            c->src.path, c->src.copy);
    else
        put(cl, "last good copy: not in use (%s)", c->src.copy);
    const struct zone *z = zone_ref_current(c->src.zones);
    const struct zone_stats *st = zone_stats(z);
    put(cl, "zone: %s", zone_name(z));
    put(cl, "serial: %u", st->serial);
    put(cl, "services: %zu", st->services);
    put(cl, "records: %zu", st->records);
    const char *last = reload_last_line(c->src.reloader);
    put(cl, "last reload: %s", last[0] ? last : "none since start");
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct control *c = arg;
    (void)fd;
    (void)what;
    if (c->stop)
        c->stop(c->stop_arg);
}

/* ---------------------------------------------------------------------- */
/* svcmapd --replace: the sockets handed to a new svcmapd (handover.h)     */

static void handover_answered(struct control *c, struct client *cl);

/* A line from a client in HANDING: `answering`, or the end of it. */
static void on_handing_read(struct control *c, struct client *cl, struct evbuffer *in)
{
    char line[CONTROL_LINE_MAX];
    size_t n = evbuffer_get_length(in);
    if (n > sizeof(line) - 1)
        n = sizeof(line) - 1;
    evbuffer_copyout(in, line, n);
    line[n] = '\0';
    char *nl = strchr(line, '\n');
    if (!nl && n < sizeof(line) - 1)
        return;
    if (nl && strncmp(line, "answering", (size_t)(nl - line)) == 0 && nl - line == 9) {
        evbuffer_drain(in, (size_t)(nl - line) + 1);
        handover_answered(c, cl);
        return;
    }
    refuse(c, cl, CONTROL_REFUSED_MALFORMED, "replace: not `answering` after the sockets");
    client_free(cl); /* abandoned */
}

/* `replace` from cl: the facts and every listening socket are sent, the
 * control socket's among them, which stops accepting meanwhile (clients
 * wait in its queue for whoever accepts next); then cl says `answering`
 * (handover_answered()) or goes away (abandon_handover()). */
static void offer_handover(struct control *c, struct client *cl)
{
    char why[256] = "replace is not possible here";
    if (c->handing)
        snprintf(why, sizeof(why), "another replace is under way");
    struct handover_offer o;
    handover_offer_init(&o);
    if (c->handing || !c->replace.offer ||
        !c->replace.offer(c->replace.arg, &o, why, sizeof(why))) {
        handover_offer_finish(&o);
        put(cl, "error: replace: %s", why);
        finish(cl, EXIT_REJECTED);
        return;
    }
    char label[CONTROL_LINE_MAX + 16];
    snprintf(label, sizeof(label), "control %s", c->path);
    handover_offer_add(&o, listener_fd(c->l), label);
    listener_hold(c->l, true);
    c->handing = cl;
    cl->state = HANDING;
    int r = handover_send(bufferevent_getfd(cl->bev), &o);
    size_t n = o.n;
    handover_offer_finish(&o);
    if (r < 0) {
        log_warning("replace: the sockets could not be sent (%s): serving on", strerror(-r));
        client_free(cl); /* abandoned */
        return;
    }
    log_info("replace: %zu sockets sent; waiting for the new svcmapd to answer on them", n);
    struct timeval tv = {HANDOVER_DEADLINE, 0};
    evtimer_add(cl->deadline, &tv);
    struct evbuffer *in = bufferevent_get_input(cl->bev);
    if (evbuffer_get_length(in)) /* what came with `replace`: read now, not at the next byte */
        on_handing_read(c, cl, in);
}

/* The new svcmapd answers: this one lets go. */
static void handover_answered(struct control *c, struct client *cl)
{
    c->handing = NULL;
    evtimer_del(cl->deadline);
    listener_free(c->l); /* the new svcmapd accepts on it now */
    c->l = NULL;
    c->made = false; /* and its file is the new svcmapd's: not removed here */
    log_info("replace: the new svcmapd answers on the sockets: draining, then exiting");
    /* the reply is written once done() has returned: the state-dir is let
     * go by then (and control_stop() leaves a client that writes alone) */
    put(cl, "replaced: pid %ld drains and exits", (long)getpid());
    finish(cl, EXIT_DONE);
    if (c->replace.done)
        c->replace.done(c->replace.arg);
}

/* The new svcmapd went away, or said something else, or nothing in time:
 * this one never stopped reading, and serves on. */
static void abandon_handover(struct control *c)
{
    c->handing = NULL;
    if (c->l)
        listener_hold(c->l, false);
    log_warning("replace: the new svcmapd did not take over: serving on");
    if (c->replace.abort)
        c->replace.abort(c->replace.arg);
}

static void run_command(struct control *c, struct client *cl, enum control_command cmd)
{
    char peer[64];
    who(cl, peer, sizeof(peer));
    c->stats.commands[cmd]++;
    switch (cmd) {
    case CONTROL_STATUS:
        log_debug("control: %s: status", peer);
        status(c, cl);
        finish(cl, EXIT_DONE);
        return;
    case CONTROL_HEALTH:
        log_debug("control: %s: health", peer);
        if (c->health)
            c->health(c->health_arg, put_line, cl);
        else
            put(cl, "no checked targets");
        finish(cl, EXIT_DONE);
        return;
    case CONTROL_RELOAD:
        log_info("control: %s: reload", peer);
        if (!c->src.reloader) {
            put(cl, "reload: not run: the mapping file is still being loaded");
            finish(cl, EXIT_REJECTED);
            return;
        }
        cl->ticket = reload_run(c->src.reloader);
        if (cl->ticket == 0) {
            put(cl, "reload: not run: svcmapd is stopping");
            finish(cl, EXIT_NOT_RUN);
            return;
        }
        cl->state = WAITING; /* no deadline: svcmapctl has its own */
        evtimer_del(cl->deadline);
        bufferevent_disable(cl->bev, EV_READ);
        return;
    case CONTROL_STOP:
        log_info("control: %s: stop", peer);
        put(cl, "stopping");
        finish(cl, EXIT_DONE);
        event_active(c->stop_ev, 0, 0);
        return;
    case CONTROL_REPLACE:
        log_info("control: %s: replace", peer);
        offer_handover(c, cl);
        return;
    case CONTROL_COMMANDS:
        break;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    struct control *c = cl->c;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (cl->state == HANDING) {
        on_handing_read(c, cl, in);
        return;
    }
    if (cl->state != READING)
        return;
    size_t n = evbuffer_get_length(in);
    if (n > CONTROL_LINE_MAX)
        n = CONTROL_LINE_MAX;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    struct control_line line;
    enum control_parse_result r = p ? control_parse(p, n, &line) : CONTROL_INCOMPLETE;
    switch (r) {
    case CONTROL_INCOMPLETE:
        return;
    case CONTROL_PARSED:
        evbuffer_drain(in, line.used);
        run_command(c, cl, line.cmd);
        return;
    case CONTROL_TOO_LONG:
        refuse(c, cl, CONTROL_REFUSED_TOO_LONG, line.error + 7);
        break;
    case CONTROL_MALFORMED:
    case CONTROL_UNKNOWN:
        refuse(c, cl, CONTROL_REFUSED_MALFORMED, line.error + 7);
        break;
    }
    put_line(cl, line.error);
    finish(cl, EXIT_BAD_COMMAND);
}

/* The reply is out: the exchange is over. */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    (void)bev;
    if (cl->state == WRITING)
        client_free(cl);
}

/* EOF or an error: a client that goes away before its reply (or while it
 * waits for a reload) only goes; the reload runs on. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    client_free(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd;
    (void)what;
    if (cl->state == READING) {
        char why[64];
        snprintf(why, sizeof(why), "no command line within %d s", CONTROL_DEADLINE);
        refuse(cl->c, cl, CONTROL_REFUSED_TIMEOUT, why);
        put(cl, "error: %s", why);
        finish(cl, EXIT_BAD_COMMAND); /* one more chance to read that */
        return;
    }
    if (cl->state == WRITING && evbuffer_get_length(bufferevent_get_output(cl->bev)))
        refuse(cl->c, cl, CONTROL_REFUSED_TIMEOUT, "reply not read in time: closed");
    if (cl->state == HANDING)
        refuse(cl->c, cl, CONTROL_REFUSED_TIMEOUT,
               "replace: the new svcmapd did not answer on the sockets in time");
    client_free(cl);
}

/* Frees the clients that have left without their end being seen yet: a
 * burst of clients that connect and leave is accepted before the loop
 * reads their ends, and would hold every place from the next one. As
 * their end of file would (on_event). */
static void reap_departed(struct control *c)
{
    struct client *next;
    for (struct client *cl = c->clients; cl; cl = next) {
        next = cl->next;
        char byte;
        if (recv(bufferevent_getfd(cl->bev), &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
            client_free(cl);
    }
}

static void on_accept(int fd, const struct sockaddr *sa, socklen_t len, void *arg)
{
    struct control *c = arg;
    (void)sa;
    (void)len;
    struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
    socklen_t clen = sizeof(cred);
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
    if (c->stats.clients >= CONTROL_MAX_CLIENTS)
        reap_departed(c);
    if (c->stats.clients >= CONTROL_MAX_CLIENTS) {
        static const char busy[] = "error: too many control clients at once; try again\nexit 3\n";
        ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        close(fd);
        struct client tmp = {.cred = cred};
        char what[96];
        snprintf(what, sizeof(what), "%d clients connected: refused", CONTROL_MAX_CLIENTS);
        refuse(c, &tmp, CONTROL_REFUSED_CLIENTS, what);
        return;
    }
    struct client *cl = calloc(1, sizeof(*cl));
    struct bufferevent *bev =
        cl ? bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    struct event *deadline = bev ? evtimer_new(c->base, on_deadline, cl) : NULL;
    if (!deadline) {
        if (bev)
            bufferevent_free(bev);
        else
            close(fd);
        free(cl);
        log_error("control: out of memory");
        return;
    }
    *cl = (struct client){.c = c, .next = c->clients, .bev = bev, .deadline = deadline};
    cl->cred = cred;
    if (c->clients)
        c->clients->prev = cl;
    c->clients = cl;
    c->stats.clients++;
    arm(cl);
    /* never more than a line held: a client that sends a megabyte makes
     * it read no further than CONTROL_LINE_MAX */
    bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_LINE_MAX);
    bufferevent_setcb(bev, on_read, on_write, on_event, cl);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void put_diag(const struct diag_entry *e, void *arg)
{
    put_line(arg, e->text);
}

void control_reload_done(struct control *c, const struct reload_outcome *o)
{
    for (struct client *cl = c->clients; cl; cl = cl->next) {
        if (cl->state != WAITING || cl->ticket > o->seq)
            continue;
        diag_each(o->diag, put_diag, cl); /* warnings too: what the log says */
        put_line(cl, o->line);
        finish(cl, o->verdict == RELOAD_APPLY ? EXIT_DONE : EXIT_REJECTED);
    }
}

/* ---------------------------------------------------------------------- */
/* The socket                                                              */

/* Whether a process answers on the unix socket at `sun`. */
static bool answers(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; /* cannot tell: leave it */
    int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int err = errno;
    close(fd);
    return r == 0 || (err != ECONNREFUSED && err != ENOENT);
}

/* Binds `fd` to `sun`, replacing a socket file nobody answers on. */
static int bind_socket(int fd, const struct sockaddr_un *sun)
{
    if (bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
        return 0;
    if (errno != EADDRINUSE)
        return -1;
    struct stat st;
    if (lstat(sun->sun_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        log_error("control: %s exists and is not a socket: not replaced", sun->sun_path);
        return -2;
    }
    if (answers(sun)) {
        log_error("control: %s: another process (a svcmapd still running?) answers on it",
                  sun->sun_path);
        return -2;
    }
    log_info("control: %s: removing a socket nothing answers on (left by a svcmapd that died)",
             sun->sun_path);
    if (unlink(sun->sun_path) < 0 && errno != ENOENT)
        return -1;
    return bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
}

/* The inode of the socket file at c->path: removed at the end only if it
 * is still this one. */
static int remember_file(struct control *c)
{
    struct stat st;
    if (lstat(c->path, &st) < 0)
        return -1;
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    return 0;
}

/* Makes the socket file at `sun`, mode 0600, given to uid:gid: into
 * c->made and its inode. Returns the listening socket, or -1 (logged). */
static int make_socket(struct control *c, const struct sockaddr_un *sun, uid_t uid, gid_t gid)
{
    const char *path = sun->sun_path;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* No moment with a wider mode: the file is made under this umask.
     * (Start-up is single-threaded here: the umask is the process's.) */
    mode_t old = umask(0177);
    int r = fd < 0 ? -1 : bind_socket(fd, sun);
    int err = errno;
    umask(old);
    if (r == 0) {
        c->made = true;
        if (chmod(path, 0600) < 0 || (uid != (uid_t)-1 && lchown(path, uid, gid) < 0) ||
            listen(fd, CONTROL_MAX_CLIENTS) < 0 || remember_file(c) < 0)
            r = -1, err = errno;
    }
    if (r < 0) {
        if (r == -1)
            log_error("control: cannot listen on %s: %s", path, strerror(err));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* The listening socket `fd` given for c->path (inherit.h): its file is
 * ours to remove at exit (`ours`: the replaced svcmapd's), and given to
 * uid:gid, or systemd's. Returns fd, or -1 (logged, fd closed). */
static int adopt_socket(struct control *c, int fd, bool ours, uid_t uid, gid_t gid)
{
    if (ours && ((uid != (uid_t)-1 && lchown(c->path, uid, gid) < 0) || remember_file(c) < 0)) {
        log_error("control: cannot take over %s: %s", c->path, strerror(errno));
        close(fd);
        return -1;
    }
    c->made = ours;
    return fd;
}

struct control *control_new(struct event_base *base, const char *path, uid_t uid, gid_t gid,
                            struct inherit *given)
{
    struct control *c = calloc(1, sizeof(*c));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (!c || !(c->path = strdup(path)) || !(c->stop_ev = event_new(base, -1, 0, on_stop, c))) {
        log_error("control: out of memory");
        control_free(c);
        return NULL;
    }
    c->base = base;
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    snprintf(c->state, sizeof(c->state), "loading");
    if (strlen(path) >= sizeof(sun.sun_path)) { /* the config checks it: a programming error */
        log_error("control: %s: path too long for a unix socket", path);
        control_free(c);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path));

    bool ours = true;
    int fd = inherit_take_unix(given, path, &ours);
    fd = fd >= 0 ? adopt_socket(c, fd, ours, uid, gid) : make_socket(c, &sun, uid, gid);
    if (fd < 0) {
        control_free(c);
        return NULL;
    }
    c->l = listener_new(base, fd, "control", on_accept, c, &c->stats.accept_errors, &c->accept_log);
    if (!c->l) {
        log_error("control: out of memory");
        control_free(c);
        return NULL;
    }
    log_info("control: listening on %s", path);
    return c;
}

void control_set_sources(struct control *c, const struct control_sources *src)
{
    c->src = *src;
}

void control_set_state(struct control *c, const char *state)
{
    snprintf(c->state, sizeof(c->state), "%s", state);
}

void control_set_stop(struct control *c, void (*stop)(void *arg), void *arg)
{
    c->stop = stop;
    c->stop_arg = arg;
}

void control_set_replace(struct control *c, const struct control_replace *r)
{
    c->replace = *r;
}

void control_set_health(struct control *c,
                        void (*list)(void *arg, void (*put)(void *ctx, const char *line),
                                     void *ctx),
                        void *arg)
{
    c->health = list;
    c->health_arg = arg;
}

const struct control_stats *control_stats(const struct control *c)
{
    return &c->stats;
}

/* Removes the socket file if it is still the one made here (a process
 * that took over may have made its own at the path). */
static void remove_socket(struct control *c)
{
    struct stat st;
    if (c->made && lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino &&
        unlink(c->path) < 0)
        log_debug("control: cannot remove %s: %s", c->path, strerror(errno));
    c->made = false;
}

void control_stop(struct control *c)
{
    if (!c)
        return;
    listener_free(c->l);
    c->l = NULL;
    remove_socket(c);
    c->stop = NULL;
    c->replace = (struct control_replace){0}; /* a hand-over under way is abandoned */
    event_del(c->stop_ev);
    for (struct client *cl = c->clients, *next; cl; cl = next) {
        next = cl->next;
        if (cl->state == READING || cl->state == HANDING) {
            client_free(cl);
        } else if (cl->state == WAITING) { /* a reload under way is dropped */
            put(cl, "reload: not applied: svcmapd is stopping");
            finish(cl, EXIT_NOT_RUN);
        }
    }
}

void control_free(struct control *c)
{
    if (!c)
        return;
    c->replace = (struct control_replace){0};
    while (c->clients)
        client_free(c->clients);
    listener_free(c->l);
    remove_socket(c);
    if (c->stop_ev)
        event_free(c->stop_ev);
    free(c->path);
    free(c);
}
