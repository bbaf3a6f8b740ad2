/* handover.c -- svcmapd --replace: a running svcmapd's sockets and facts, handed to its successor
 * over the control socket. */
#include "svcmapd/handover.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "svcmapd/clock.h"
#include "svcmapd/inherit.h"
#include "svcmapd/log.h"

#define LINE_MAX_LEN HANDOVER_LINE_MAX /* a label is a type and an address or a socket's path */
#define FDS_AT_ONCE  16 /* descriptors one read may bring: one, as Linux reads them */

/* Waits until `fd` is ready for `events`, at most until `deadline`
 * (clock_ms()). 0, or -ETIMEDOUT, or a negative errno. */
static int wait_for(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = clock_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

/* ---------------------------------------------------------------------- */
/* The running svcmapd                                                     */

void handover_offer_init(struct handover_offer *o)
{
    memset(o, 0, sizeof(*o));
}

void handover_offer_add(struct handover_offer *o, int fd, const char *label)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct handover_socket *more = realloc(o->socks, cap * sizeof(*more));
        if (!more) {
            o->failed = true;
            return;
        }
        o->socks = more;
        o->cap = cap;
    }
    o->socks[o->n].fd = fd;
    snprintf(o->socks[o->n].label, sizeof(o->socks[o->n].label), "%s", label);
    o->n++;
}

void handover_offer_fact(struct handover_offer *o, const char *fact)
{
    size_t n = strlen(fact) + 6; /* "fact " and the newline */
    if (n >= LINE_MAX_LEN || strchr(fact, '\n')) {
        log_warning("replace: a fact too long for a line is not offered: %.60s...", fact);
        return;
    }
    if (o->len + n > o->room) {
        size_t room = o->room ? o->room * 2 : 4096;
        while (room < o->len + n)
            room *= 2;
        char *more = realloc(o->lines, room);
        if (!more) {
            o->failed = true;
            return;
        }
        o->lines = more;
        o->room = room;
    }
    memcpy(o->lines + o->len, "fact ", 5);
    memcpy(o->lines + o->len + 5, fact, n - 6);
    o->lines[o->len + n - 1] = '\n';
    o->len += n;
}

void handover_offer_finish(struct handover_offer *o)
{
    free(o->socks);
    free(o->lines);
    memset(o, 0, sizeof(*o));
}

/* Writes the `len` bytes of `line` to `fd`, with the descriptor `pass`
 * (-1: none), which travels with the first byte. */
static int send_line(int fd, const char *line, size_t len, int pass, uint64_t deadline)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    size_t off = 0;
    while (off < len) {
        struct iovec iov = {(void *)(uintptr_t)(line + off), len - off};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (pass >= 0 && off == 0) {
            memset(&ctl, 0, sizeof(ctl));
            m.msg_control = ctl.buf;
            m.msg_controllen = sizeof(ctl.buf);
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass, sizeof(int));
        }
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int r = wait_for(fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

__attribute__((format(printf, 3, 4))) static int sendf(int fd, uint64_t deadline, const char *fmt,
                                                       ...)
{
    char line[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return send_line(fd, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1, -1, deadline);
}

int handover_send(int fd, const struct handover_offer *o)
{
    if (o->failed)
        return -ENOMEM;
    uint64_t deadline = clock_ms() + HANDOVER_DEADLINE * 1000ULL;
    const struct handover_facts *f = &o->facts;
    int r = sendf(fd, deadline, "replace: pid %ld, svcmapd %s\n", f->pid, f->version);
    if (r == 0 && f->has_serial)
        r = sendf(fd, deadline, "fact serial %" PRIu32 "\nfact digest %016" PRIx64 "\n", f->serial,
                  f->digest);
    if (r == 0 && o->len)
        r = send_line(fd, o->lines, o->len, -1, deadline);
    for (size_t i = 0; r == 0 && i < o->n; i++) {
        char line[LINE_MAX_LEN];
        int n = snprintf(line, sizeof(line), "socket %s\n", o->socks[i].label);
        r = send_line(fd, line, (size_t)n, o->socks[i].fd, deadline);
    }
    if (r == 0)
        r = sendf(fd, deadline, "sockets %zu\n", o->n);
    return r;
}

/* ---------------------------------------------------------------------- */
/* The new svcmapd                                                         */

/* Lines, and the descriptors that came with them, from the old svcmapd. */
struct reader {
    int fd;
    uint64_t deadline;
    char buf[4 * LINE_MAX_LEN];
    size_t len;
    int fds[FDS_AT_ONCE * 2];
    size_t nfds;            /* received, not yet taken by a `socket` line */
    handover_fact_fn *more; /* the facts handover.c does not know */
    void *more_arg;
    size_t facts; /* passed to more() */
};

/* Receives more bytes, and the descriptors with them. NULL, or why not. */
static const char *receive(struct reader *r)
{
    if (wait_for(r->fd, POLLIN, r->deadline) < 0)
        return "no reply in time";
    union {
        char buf[CMSG_SPACE(FDS_AT_ONCE * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {r->buf + r->len, sizeof(r->buf) - r->len};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(r->fd, &m, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return errno == EINTR ? NULL : strerror(errno);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (r->nfds < sizeof(r->fds) / sizeof(r->fds[0]))
                r->fds[r->nfds++] = fd;
            else
                close(fd);
        }
    }
    if (m.msg_flags & MSG_CTRUNC)
        return "descriptors were lost on the way (out of descriptors?)";
    if (n == 0)
        return "the connection closed";
    r->len += (size_t)n;
    return NULL;
}

/* The next line, without its newline, into out. NULL, or why not. */
static const char *read_line(struct reader *r, char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            size_t n = (size_t)(nl - r->buf);
            if (n >= cap)
                return "a line too long";
            memcpy(out, r->buf, n);
            out[n] = '\0';
            r->len -= n + 1;
            memmove(r->buf, nl + 1, r->len);
            return NULL;
        }
        if (r->len == sizeof(r->buf))
            return "a line too long";
        const char *why = receive(r);
        if (why)
            return why;
    }
}

/* The descriptor that came with the line just read, taken. -1: none. */
static int take_fd(struct reader *r)
{
    if (r->nfds == 0)
        return -1;
    int fd = r->fds[0];
    memmove(r->fds, r->fds + 1, --r->nfds * sizeof(r->fds[0]));
    return fd;
}

static void reader_close(struct reader *r)
{
    for (size_t i = 0; i < r->nfds; i++)
        close(r->fds[i]);
    r->nfds = 0;
}

/* Logs the reply of an old svcmapd that refuses, `first` line included,
 * up to its `exit N`. */
static void log_refusal(struct reader *r, const char *path, const char *first)
{
    char line[LINE_MAX_LEN];
    log_error("replace: the svcmapd at %s does not hand over: %s", path, first);
    while (!read_line(r, line, sizeof(line)) && strncmp(line, "exit ", 5) != 0)
        log_error("replace: %s", line);
}

/* A fact for r->more(), HANDOVER_MAX_FACTS at most. True if it was read. */
static bool more_fact(struct reader *r, const char *fact)
{
    if (!r->more || r->facts > HANDOVER_MAX_FACTS)
        return false;
    if (r->facts++ == HANDOVER_MAX_FACTS) {
        log_warning("replace: more than %d facts: the rest are skipped", HANDOVER_MAX_FACTS);
        return false;
    }
    return r->more(r->more_arg, fact);
}

/* Whether `line` is `key` and one number in `base`, up to `max`, and
 * nothing else (no sign, no blank, no trailing byte): into *v. */
static bool line_number(const char *line, const char *key, int base, unsigned long long max,
                        unsigned long long *v)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0 || line[k] != ' ' || !isxdigit((unsigned char)line[k + 1]))
        return false;
    char *end;
    errno = 0;
    *v = strtoull(line + k + 1, &end, base);
    return errno == 0 && *end == '\0' && *v <= max;
}

/* Reads one line of the offer into `facts` and `into`. 1 at its end, 0
 * for more, -1 when it is broken (*why). */
static int read_offer_line(struct reader *r, const char *line, struct handover_facts *facts,
                           struct inherit *into, size_t *got, const char **why)
{
    unsigned long long v;
    if (strncmp(line, "socket ", 7) == 0) {
        int fd = take_fd(r);
        if (fd < 0) {
            *why = "a socket came without its descriptor";
            return -1;
        }
        (*got)++;
        inherit_add(into, fd, line + 7); /* one it cannot use is said and closed */
    } else if (line_number(line, "fact serial", 10, UINT32_MAX, &v)) {
        facts->has_serial = true;
        facts->serial = (uint32_t)v;
    } else if (line_number(line, "fact digest", 16, UINT64_MAX, &v)) {
        facts->digest = v;
    } else if (line_number(line, "sockets", 10, SIZE_MAX, &v)) {
        if (v != *got) {
            *why = "fewer sockets came than were sent";
            return -1;
        }
        return 1;
    } else if (!(strncmp(line, "fact ", 5) == 0 && more_fact(r, line + 5))) {
        log_debug("replace: skipped: %s", line); /* a fact of a later svcmapd */
    }
    return 0;
}

int handover_request(const char *path, struct handover_facts *facts, struct inherit *into,
                     handover_fact_fn *more, void *arg)
{
    *facts = (struct handover_facts){0};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct reader r = {.fd = -1,
                       .deadline = clock_ms() + HANDOVER_DEADLINE * 1000ULL,
                       .more = more,
                       .more_arg = arg};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        log_error("replace: %s: too long for a unix socket", path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    r.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r.fd < 0 || connect(r.fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = errno;
        log_error("replace: no svcmapd to take over from at %s: %s%s", path, strerror(err),
                  err == ENOENT || err == ECONNREFUSED ? " (start it without --replace)" : "");
        goto fail;
    }
    int sent = send_line(r.fd, "replace\n", 8, -1, r.deadline);
    if (sent < 0) {
        log_error("replace: cannot ask the svcmapd at %s: %s", path, strerror(-sent));
        goto fail;
    }
    char line[LINE_MAX_LEN];
    const char *why = read_line(&r, line, sizeof(line));
    if (!why &&
        (sscanf(line, "replace: pid %ld, svcmapd %31s", &facts->pid, facts->version) != 2)) {
        log_refusal(&r, path, line);
        goto fail;
    }
    size_t got = 0;
    for (int end = 0; !why && !end;) {
        why = read_line(&r, line, sizeof(line));
        end = why ? -1 : read_offer_line(&r, line, facts, into, &got, &why);
    }
    if (why) {
        log_error("replace: the hand-over from %s broke: %s", path, why);
        goto fail;
    }
    reader_close(&r); /* none is left unless something is wrong */
    log_info("replace: svcmapd %s (pid %ld) handed over %zu socket%s, serial %" PRIu32,
             facts->version, facts->pid, got, got == 1 ? "" : "s", facts->serial);
    return r.fd;

fail:
    reader_close(&r);
    if (r.fd >= 0)
        close(r.fd);
    return -1;
}

bool handover_confirm(int fd)
{
    struct reader r = {.fd = fd, .deadline = clock_ms() + HANDOVER_DEADLINE * 1000ULL};
    const char *why = NULL;
    char line[LINE_MAX_LEN];
    bool done = false;
    int sent = send_line(fd, "answering\n", 10, -1, r.deadline);
    if (sent < 0)
        why = strerror(-sent);
    while (!why && !done) {
        why = read_line(&r, line, sizeof(line));
        if (why)
            break;
        if (strcmp(line, "exit 0") == 0)
            done = true;
        else if (strncmp(line, "exit ", 5) == 0)
            why = "it refused";
        else
            log_info("replace: the old svcmapd says: %s", line);
    }
    if (why)
        log_error("replace: the old svcmapd did not let go (%s): stopping; it serves on", why);
    reader_close(&r);
    close(fd);
    return done;
}
