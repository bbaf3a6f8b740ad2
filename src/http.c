/* http.c -- /health, /ready and /metrics over HTTP, as CoreDNS serves them. */
#include "svcmapd/http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "svcmapd/clock.h"
#include "svcmapd/inherit.h"
#include "svcmapd/health.h"
#include "svcmapd/listener.h"
#include "svcmapd/log.h"
#include "svcmapd/metrics_render.h"
#include "svcmapd/reload.h"
#include "svcmapd/zone_ref.h"

/*
 * CoreDNS's conventions, which probes and dashboards already expect:
 * /health answers 200 "OK" as long as the process runs (and through the
 * lameduck period); /ready answers 200 "OK" once the mapping is loaded and
 * the sockets are bound, 503 before and after SIGTERM; /metrics is the
 * Prometheus text format with CoreDNS's metric names and labels.
 *
 * All of it runs in the main thread; the workers' counters are read with
 * relaxed loads (metrics.h) and summed here, so counting costs the answer
 * path nothing more than the increments.
 *
 * The HTTP/1.1 server is our own (RFC 9112), for three GET pages: libevent's
 * evhttp has no cap on connections, no deadline for a whole request, keeps
 * reading while it writes a response, and buffers a chunk-size line
 * without end. Here every connection holds at most HTTP_HEAD_MAX bytes of
 * input and one response; a request must be complete and answered within
 * HTTP_DEADLINE seconds, so one byte a second holds nothing for long; a
 * body is refused unless it is tiny, before it is read; at the connection
 * cap the oldest connection gives way to the new one, so a client that
 * holds many cannot lock the probes out.
 */

#define HTTP_HEAD_MAX 8192 /* bytes: the request line and all headers together */
#define HTTP_BODY_MAX 1024 /* bytes of a request body, read and dropped; more: 413 */
#define HTTP_DEADLINE                                                                              \
    5 /* seconds for an exchange, from the connection's start or the                               \
         end of the previous response to the end of this one */

/* Connections the kernel queues for accept(): a burst that overflows it has
 * its SYNs dropped and retried a second later, probes included, so as deep
 * as the DNS listener's. */
#define HTTP_BACKLOG 1024

#define TEXT "text/plain; charset=utf-8"

/* Why a request or a connection was refused: the `reason` label. */
enum refusal {
    REFUSED_HEADER,      /* a head over HTTP_HEAD_MAX: 431 */
    REFUSED_BODY,        /* a body over HTTP_BODY_MAX, or chunked: 413 */
    REFUSED_MALFORMED,   /* not HTTP/1.x: 400, 505 */
    REFUSED_TIMEOUT,     /* no complete request within HTTP_DEADLINE: closed */
    REFUSED_CONNECTIONS, /* the oldest at HTTP_MAX_CONNECTIONS: closed */
    REFUSALS,
};

static const char *const refusal_names[REFUSALS] = {"header", "body", "malformed", "timeout",
                                                    "connections"};

struct http;

struct endpoint {
    struct http *h;
    struct listener *l;
    bool health, ready, metrics;
    char text[64];
};

enum page { PAGE_NONE, PAGE_HEALTH, PAGE_READY, PAGE_METRICS, PAGE_HEALTH_TARGETS };

/* What a request asks, once its head is read. */
struct ask {
    int status; /* 0: `page`; otherwise this error */
    enum page page;
    bool head;     /* HEAD: the headers alone */
    bool close;    /* HTTP/1.0, Connection: close, or an error */
    uint64_t body; /* Content-Length, to read and drop before answering */
};

enum conn_state { READING_HEAD, READING_BODY, WRITING };

struct conn {
    struct http *h;
    struct endpoint *ep;
    struct bufferevent *bev;
    struct conn *older, *newer; /* h's list, by `since` */
    uint64_t since;             /* ms: accepted, or the previous response written */
    enum conn_state state;
    size_t scanned; /* bytes of input searched for the end of the head */
    struct ask ask;
    unsigned answered;
    struct sockaddr_storage peer;
};

struct http {
    struct event_base *base;
    struct endpoint eps[3]; /* one per distinct address */
    size_t neps;
    bool ready;
    char why[64];
    struct server *srv;
    struct zone_ref *zones;
    struct reloader *reloader;
    const struct control *control;  /* NULL: none */
    const struct state *state;      /* NULL: no state-dir */
    const struct health *health;    /* the prober, for its histogram */
    const struct dnsnotify *notify; /* NULL: none */

    struct conn *oldest, *newest; /* every connection, the oldest exchange first */
    size_t nconns;
    struct event *deadline; /* for the oldest */
    struct evbuffer *body;  /* a response's, being built */
    char head[HTTP_HEAD_MAX + 1];

    /* main thread only; _Atomic for metrics_inc() and listener.h */
    _Atomic uint64_t accept_errors;
    uint64_t refused[REFUSALS];
    struct log_limit refuse_log, accept_log;
};

/* ---------------------------------------------------------------------- */
/* Connections                                                             */

static void unlink_conn(struct conn *c)
{
    struct http *h = c->h;
    if (c->older)
        c->older->newer = c->newer;
    else
        h->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        h->newest = c->older;
    c->older = c->newer = NULL;
}

/* The list is in the order of `since`: a connection whose exchange starts
 * now goes last, and the deadline timer waits for the first. */
static void append_conn(struct conn *c)
{
    struct http *h = c->h;
    c->since = clock_ns() / 1000000;
    c->older = h->newest;
    if (h->newest)
        h->newest->newer = c;
    else
        h->oldest = c;
    h->newest = c;
}

static void arm_deadline(struct http *h)
{
    if (!h->oldest) {
        evtimer_del(h->deadline);
        return;
    }
    uint64_t due = h->oldest->since + HTTP_DEADLINE * 1000ULL, now = clock_ns() / 1000000;
    uint64_t left = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(h->deadline, &tv);
}

static void conn_close(struct conn *c)
{
    struct http *h = c->h;
    unlink_conn(c);
    h->nconns--;
    bufferevent_free(c->bev);
    free(c);
    arm_deadline(h);
}

/* Counts a refusal and logs it, at most once per LOG_LIMIT_PERIOD. */
__attribute__((format(printf, 3, 4))) static void refuse(struct conn *c, enum refusal why,
                                                         const char *fmt, ...)
{
    struct http *h = c->h;
    h->refused[why]++;
    uint64_t more;
    if (!log_limit_pass(&h->refuse_log, &more))
        return;
    char what[160], peer[64], also[96] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    log_addr((const struct sockaddr *)&c->peer, peer, sizeof(peer));
    if (more)
        snprintf(also, sizeof(also), " (and %llu more refused since the last such line)",
                 (unsigned long long)more);
    log_warning("http %s: %s: %s%s", c->ep->text, peer, what, also);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct http *h = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_ns() / 1000000;
    while (h->oldest && h->oldest->since + HTTP_DEADLINE * 1000ULL <= now) {
        struct conn *c = h->oldest;
        /* an idle connection that has been answered is not refused: it
         * is only closed, as a keep-alive timeout */
        if (c->answered == 0 || c->state != READING_HEAD ||
            evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            refuse(c, REFUSED_TIMEOUT, "no complete request and response within %d s: closed",
                   HTTP_DEADLINE);
        conn_close(c);
    }
    arm_deadline(h);
}

/* ---------------------------------------------------------------------- */
/* Requests (RFC 9112)                                                     */

/* The length of the request head at the start of `p` (`n` bytes): up to
 * and with the empty line that ends it; 0 while it is not complete. Bytes
 * before `from` were searched already. A line ends with LF, CRLF too. */
static size_t head_end(const char *p, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i >= 1 && p[i - 1] == '\n')
            return i + 1;
        if (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')
            return i + 1;
    }
    return 0;
}

/* The next line of the head at *pos, without its line end. */
static bool head_line(const char *p, size_t n, size_t *pos, const char **line, size_t *len)
{
    const char *nl = *pos < n ? memchr(p + *pos, '\n', n - *pos) : NULL;
    if (!nl)
        return false;
    *line = p + *pos;
    *len = (size_t)(nl - *line);
    if (*len && (*line)[*len - 1] == '\r')
        (*len)--;
    *pos = (size_t)(nl - p) + 1;
    return true;
}

/* RFC 9110 §5.6.2 */
static bool is_tchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token_len(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_tchar(s[i]))
        i++;
    return i;
}

/* Header names and connection options are case-insensitive (RFC 9110
 * §5.1, §7.6.1); methods and paths are not. */
static bool same(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

static bool exact(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* Whether the comma-separated list `v` holds `word` (RFC 9110 §5.6.1). */
static bool list_has(const char *v, size_t len, const char *word)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t t = token_len(v + i, len - i);
        if (same(v + i, t, word))
            return true;
        while (i < len && v[i] != ',')
            i++;
    }
    return false;
}

/* The page of the request-target `t`: its path (origin-form, or the
 * absolute-form a proxy sends), the query cut off, compared exactly. */
static enum page route(const struct endpoint *ep, const char *t, size_t len, bool *bad)
{
    if (len >= 7 && strncasecmp(t, "http://", 7) == 0) {
        size_t skip = 7;
        while (skip < len && t[skip] != '/' && t[skip] != '?' && t[skip] != '#')
            skip++;
        t += skip;
        len -= skip;
    } else if (len == 0 || t[0] != '/') {
        *bad = true;
        return PAGE_NONE;
    }
    size_t plen = 0;
    while (plen < len && t[plen] != '?' && t[plen] != '#')
        plen++;
    if (ep->health && exact(t, plen, "/health"))
        return PAGE_HEALTH;
    if (ep->health && exact(t, plen, "/health/targets"))
        return PAGE_HEALTH_TARGETS;
    if (ep->ready && exact(t, plen, "/ready"))
        return PAGE_READY;
    if (ep->metrics && exact(t, plen, "/metrics"))
        return PAGE_METRICS;
    return PAGE_NONE;
}

/* The request line (RFC 9112 §3). */
struct request_line {
    const char *method, *target;
    size_t mlen, tlen;
    char major, minor; /* of the HTTP version */
};

/* Reads `line` (`len` bytes): method SP request-target SP HTTP-version.
 * False if it is malformed. */
static bool parse_request_line(const char *line, size_t len, struct request_line *r)
{
    r->method = line;
    r->mlen = token_len(line, len);
    if (r->mlen == 0 || r->mlen == len || line[r->mlen] != ' ')
        return false;
    r->target = line + r->mlen + 1;
    r->tlen = 0;
    while (r->mlen + 1 + r->tlen < len && r->target[r->tlen] > ' ' && r->target[r->tlen] < 0x7f)
        r->tlen++;
    const char *version = r->target + r->tlen + 1;
    if (r->tlen == 0 || r->mlen + 1 + r->tlen + 1 + 8 != len || r->target[r->tlen] != ' ' ||
        memcmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' ||
        version[6] != '.' || version[7] < '0' || version[7] > '9')
        return false;
    r->major = version[5];
    r->minor = version[7];
    return true;
}

/* Reads the header fields (§5) of the head `p` (`n` bytes) from *pos to
 * its empty line into *a: Content-Length, Connection: close, and in
 * *coded whether a Transfer-Encoding is given. False if one is
 * malformed. */
static bool parse_fields(const char *p, size_t n, size_t *pos, struct ask *a, bool *coded)
{
    const char *line;
    size_t len;
    bool length_seen = false;
    /* field-name ":" OWS field-value OWS */
    while (head_line(p, n, pos, &line, &len) && len > 0) {
        size_t k = token_len(line, len);
        if (k == 0 || k == len || line[k] != ':')
            return false; /* obs-fold and space before the colon too (§5.1, §5.2) */
        const char *v = line + k + 1;
        size_t vlen = len - k - 1;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        for (size_t i = 0; i < vlen; i++)
            if ((unsigned char)v[i] < ' ' && v[i] != '\t')
                return false;
        if (same(line, k, "content-length")) {
            /* §6.3: digits; two different values are an error. Counted
             * no further than past the limit. */
            uint64_t cl = 0;
            if (vlen == 0)
                return false;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return false;
                if (cl <= HTTP_BODY_MAX)
                    cl = cl * 10 + (uint64_t)(v[i] - '0');
            }
            if (length_seen && cl != a->body)
                return false;
            length_seen = true;
            a->body = cl;
        } else if (same(line, k, "transfer-encoding")) {
            *coded = true;
        } else if (same(line, k, "connection") && list_has(v, vlen, "close")) {
            a->close = true;
        }
    }
    return true;
}

/* Reads the head `p` (`n` bytes, through its empty line) into *a. A
 * refusal is counted and logged here. */
static void parse_head(struct conn *c, const char *p, size_t n, struct ask *a)
{
    *a = (struct ask){.page = PAGE_NONE};
    const char *line;
    size_t len, pos = 0;
    struct request_line r;
    if (!head_line(p, n, &pos, &line, &len) || memchr(p, '\0', n) ||
        !parse_request_line(line, len, &r))
        goto malformed;
    if (r.major != '1') {
        refuse(c, REFUSED_MALFORMED, "HTTP version %c.%c: 505", r.major, r.minor);
        *a = (struct ask){.status = 505, .close = true};
        return;
    }
    a->close = r.minor == '0'; /* HTTP/1.0: no keep-alive here */
    bool coded = false;
    if (!parse_fields(p, n, &pos, a, &coded))
        goto malformed;

    /* a body is refused before it is read, and the connection closed */
    if (coded) {
        refuse(c, REFUSED_BODY, "request body with a transfer coding: 413");
        *a = (struct ask){.status = 413, .close = true};
        return;
    }
    if (a->body > HTTP_BODY_MAX) {
        refuse(c, REFUSED_BODY, "request body over %d bytes: 413", HTTP_BODY_MAX);
        *a = (struct ask){.status = 413, .close = true};
        return;
    }
    bool bad = false;
    a->page = route(c->ep, r.target, r.tlen, &bad);
    if (bad)
        goto malformed;
    a->head = exact(r.method, r.mlen, "HEAD");
    if (!a->head && !exact(r.method, r.mlen, "GET"))
        a->status = 405; /* an answer, not a refusal: any body is read first */
    return;

malformed:
    refuse(c, REFUSED_MALFORMED, "malformed request: 400");
    *a = (struct ask){.status = 400, .close = true};
}

/* ---------------------------------------------------------------------- */
/* Responses                                                               */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "HTTP Version Not Supported"; /* 505 */
    }
}

/* Queues the response with h->body as its body (taken), then reads
 * nothing more until it is written. */
static void respond(struct conn *c, int status, const char *type)
{
    struct http *h = c->h;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char date[64];
    struct tm tm;
    time_t t = time(NULL);
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    size_t len = evbuffer_get_length(h->body);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                        "Content-Length: %zu\r\n%s%s\r\n",
                        status, reason(status), date, type, len,
                        status == 405 ? "Allow: GET, HEAD\r\n" : "",
                        c->ask.close ? "Connection: close\r\n" : "");
    if (c->ask.head)
        evbuffer_drain(h->body, len);
    else
        evbuffer_add_buffer(out, h->body);
    c->state = WRITING;
    c->answered++;
    bufferevent_disable(c->bev, EV_READ);
}

static void respond_text(struct conn *c, int status, const char *text)
{
    evbuffer_add(c->h->body, text, strlen(text));
    respond(c, status, TEXT);
}

/* /metrics into h->body: what the server, the zone, the reloader and this
 * HTTP server count (metrics_render.c renders it). */
static void render_metrics(struct http *h)
{
    struct metrics_sources src = {
        .srv = h->srv,
        .zone = zone_ref_current(h->zones),
        .reload = reload_stats(h->reloader),
        .http =
            {
                .accept_errors = atomic_load_explicit(&h->accept_errors, memory_order_relaxed),
                .connections = h->nconns,
                .refused = h->refused,
                .reasons = refusal_names,
                .nreasons = REFUSALS,
            },
        .control = h->control,
        .state = h->state,
        .health = h->health,
        .notify = h->notify,
    };
    metrics_render(h->body, &src);
}

/* /health/targets: what the prober found of each checked target (SPEC
 * §6), as JSON; the control socket's `health` command says the same. */
static void answer_targets(struct conn *c)
{
    struct http *h = c->h;
    if (!h->zones) {
        respond_text(c, 503, "starting\n");
        return;
    }
    health_report_json(h->body, zone_ref_current(h->zones));
    respond(c, 200, "application/json");
}

/* Answers the request read (its body too, if it had one). */
static void answer(struct conn *c)
{
    struct http *h = c->h;
    if (c->ask.status) {
        char text[64];
        snprintf(text, sizeof(text), "%s\n", reason(c->ask.status));
        respond_text(c, c->ask.status, text);
        return;
    }
    switch (c->ask.page) {
    case PAGE_HEALTH:
        respond_text(c, 200, "OK");
        return;
    case PAGE_READY:
        if (h->ready)
            respond_text(c, 200, "OK");
        else
            respond_text(c, 503, h->why);
        return;
    case PAGE_METRICS:
        if (!h->srv || !h->zones || !h->reloader) {
            respond_text(c, 503, "starting\n");
            return;
        }
        render_metrics(h);
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8");
        return;
    case PAGE_HEALTH_TARGETS:
        answer_targets(c);
        return;
    case PAGE_NONE:
        break;
    }
    respond_text(c, 404, "404 page not found\n"); /* Go's, as CoreDNS says it */
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct http *h = c->h;
    struct evbuffer *in = bufferevent_get_input(bev);

    if (c->state == READING_BODY) {
        size_t n = evbuffer_get_length(in);
        if (n > c->ask.body)
            n = (size_t)c->ask.body;
        evbuffer_drain(in, n);
        c->ask.body -= n;
        if (c->ask.body == 0)
            answer(c);
        return;
    }
    if (c->state != READING_HEAD)
        return;
    /* The read watermark keeps at most HTTP_HEAD_MAX bytes here. */
    size_t n = evbuffer_get_length(in);
    if (n > HTTP_HEAD_MAX)
        n = HTTP_HEAD_MAX;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    if (!p)
        return;
    /* RFC 9112 §2.2: empty lines before a request line are ignored */
    size_t skip = 0;
    while (skip < n &&
           (p[skip] == '\n' || (p[skip] == '\r' && skip + 1 < n && p[skip + 1] == '\n')))
        skip += p[skip] == '\r' ? 2 : 1;
    if (skip) {
        evbuffer_drain(in, skip);
        c->scanned = 0;
        n -= skip;
        if (!(p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n)))
            return;
    }
    size_t end = head_end(p, n, c->scanned);
    if (end == 0) {
        c->scanned = n;
        if (n == HTTP_HEAD_MAX) {
            refuse(c, REFUSED_HEADER, "request head over %d bytes: 431", HTTP_HEAD_MAX);
            c->ask = (struct ask){.status = 431, .close = true};
            answer(c);
        }
        return;
    }
    memcpy(h->head, p, end);
    evbuffer_drain(in, end);
    c->scanned = 0;
    parse_head(c, h->head, end, &c->ask);
    if (c->ask.body) {
        c->state = READING_BODY;
        on_read(bev, c);
        return;
    }
    answer(c);
}

/* The output has drained: the response is out. */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state != WRITING)
        return;
    if (c->ask.close) {
        conn_close(c);
        return;
    }
    /* the next exchange starts now, with a deadline of its own */
    unlink_conn(c);
    append_conn(c);
    arm_deadline(c->h);
    c->state = READING_HEAD;
    bufferevent_enable(bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(bev)))
        on_read(bev, c); /* a request sent before this answer came */
}

/* EOF, or an error: while reading that is the end of the connection, and
 * while writing (reading is off then) the response cannot go out. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    conn_close(arg);
}

static void endpoint_accept(int fd, const struct sockaddr *sa, socklen_t len, void *arg)
{
    struct endpoint *ep = arg;
    struct http *h = ep->h;
    if (h->nconns >= HTTP_MAX_CONNECTIONS) {
        /* The oldest exchange makes way: a client that opens many and
         * sends nothing holds none of them for long, so probes get in. */
        struct conn *old = h->oldest;
        refuse(old, REFUSED_CONNECTIONS, "%d connections open: closed the oldest",
               HTTP_MAX_CONNECTIONS);
        conn_close(old);
    }
    struct conn *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = c ? bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        close(fd);
        return;
    }
    c->h = h;
    c->ep = ep;
    c->bev = bev;
    if (len <= sizeof(c->peer))
        memcpy(&c->peer, sa, len);
    append_conn(c);
    h->nconns++;
    arm_deadline(h);
    bufferevent_setwatermark(bev, EV_READ, 0, HTTP_HEAD_MAX);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ---------------------------------------------------------------------- */

size_t http_fds(const struct config *cfg)
{
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        bool again = false;
        for (int k = 0; k < i; k++)
            again |= cfg->http_on[k] && strcmp(cfg->http[k].text, cfg->http[i].text) == 0;
        n += cfg->http_on[i] && !again;
    }
    return n ? n + HTTP_MAX_CONNECTIONS : 0;
}

/* A listening socket bound to `l`, or -1 with errno set. */
static int bind_endpoint(const struct config_addr *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
                    bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0 ||
                    listen(fd, HTTP_BACKLOG) < 0)) {
        int err = errno;
        close(fd);
        errno = err;
        fd = -1;
    }
    return fd;
}

struct http *http_new(struct event_base *base, const struct config *cfg, struct inherit *given)
{
    struct http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base = base;
    snprintf(h->why, sizeof(h->why), "svcmapd: starting\n");
    h->deadline = evtimer_new(base, on_deadline, h);
    h->body = evbuffer_new();
    if (!h->deadline || !h->body) {
        log_error("out of memory");
        http_free(h);
        return NULL;
    }

    for (int i = 0; i < 3; i++) {
        if (!cfg->http_on[i])
            continue;
        const struct config_addr *l = &cfg->http[i];
        struct endpoint *ep = NULL;
        for (size_t k = 0; k < h->neps && !ep; k++)
            if (strcmp(h->eps[k].text, l->text) == 0)
                ep = &h->eps[k];
        if (!ep) {
            ep = &h->eps[h->neps++];
            ep->h = h;
            snprintf(ep->text, sizeof(ep->text), "%s", l->text);
            int fd = inherit_take(given, SOCK_STREAM, &l->addr);
            if (fd < 0)
                fd = bind_endpoint(l);
            char what[80];
            snprintf(what, sizeof(what), "http %s", l->text);
            if (fd < 0 || !(ep->l = listener_new(base, fd, what, endpoint_accept, ep,
                                                 &h->accept_errors, &h->accept_log))) {
                log_error("cannot listen on %s (http): %s", l->text, strerror(errno));
                http_free(h);
                return NULL;
            }
        }
        ep->health |= i == CONFIG_HTTP_HEALTH_EP;
        ep->ready |= i == CONFIG_HTTP_READY_EP;
        ep->metrics |= i == CONFIG_HTTP_METRICS_EP;
        log_info("http: %s%s%s on %s", i == CONFIG_HTTP_HEALTH_EP ? "/health" : "",
                 i == CONFIG_HTTP_READY_EP ? "/ready" : "",
                 i == CONFIG_HTTP_METRICS_EP ? "/metrics" : "", l->text);
    }
    return h;
}

int http_adopt(struct http *h, int fd)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    if (h->neps == 0 || getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
        return -1;
    endpoint_accept(fd, (const struct sockaddr *)&peer, len, &h->eps[0]);
    return 0;
}

size_t http_connections(const struct http *h)
{
    return h->nconns;
}

void http_set_sources(struct http *h, struct server *srv, struct zone_ref *zones,
                      struct reloader *reloader)
{
    h->srv = srv;
    h->zones = zones;
    h->reloader = reloader;
}

void http_set_ready(struct http *h, bool ready, const char *why)
{
    h->ready = ready;
    snprintf(h->why, sizeof(h->why), "svcmapd: %s\n", why ? why : "not ready");
}

void http_free(struct http *h)
{
    if (!h)
        return;
    while (h->oldest) {
        struct conn *c = h->oldest;
        unlink_conn(c);
        bufferevent_free(c->bev);
        free(c);
    }
    for (size_t i = 0; i < h->neps; i++)
        listener_free(h->eps[i].l);
    if (h->deadline)
        event_free(h->deadline);
    if (h->body)
        evbuffer_free(h->body);
    free(h);
}

void http_set_notify(struct http *h, const struct dnsnotify *notify)
{
    h->notify = notify;
}

void http_listening(const struct http *h, void (*put)(void *arg, int fd, const char *label),
                    void *arg)
{
    char label[96];
    for (size_t i = 0; i < h->neps; i++) {
        snprintf(label, sizeof(label), "http %s", h->eps[i].text);
        put(arg, listener_fd(h->eps[i].l), label);
    }
}

void http_set_control_state(struct http *h, const struct control *control,
                            const struct state *state)
{
    h->control = control;
    h->state = state;
}

void http_set_health(struct http *h, const struct health *health)
{
    h->health = health;
}
