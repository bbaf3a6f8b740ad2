/* log.c -- leveled, format-checked log lines on stderr. */
#include "svcmapd/log.h"

#include "svcmapd/clock.h"
#include "svcmapd/config.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int min_level = LOG_LEVEL_INFO;
static _Atomic int format = LOG_FORMAT_TEXT;
static _Atomic bool queries = false;

static const char *const level_names[] = {
    [LOG_LEVEL_DEBUG] = "DEBUG",
    [LOG_LEVEL_INFO] = "INFO",
    [LOG_LEVEL_WARNING] = "WARNING",
    [LOG_LEVEL_ERROR] = "ERROR",
};

static const char *const json_levels[] = {
    [LOG_LEVEL_DEBUG] = "debug",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_ERROR] = "error",
};

void log_set_level(enum log_level level)
{
    atomic_store(&min_level, (int)level);
}

void log_set_format(enum log_format f)
{
    atomic_store(&format, (int)f);
}

void log_set_queries(bool on)
{
    atomic_store(&queries, on);
}

void log_configure(const struct config *cfg)
{
    log_set_level((enum log_level)cfg->log_level);
    log_set_format((enum log_format)cfg->log_format);
    log_set_queries(cfg->log_queries != 0);
}

bool log_queries(void)
{
    return atomic_load_explicit(&queries, memory_order_relaxed);
}

/* A line being built: bounded, never overflowing, truncated if need be. */
struct line {
    char buf[2048];
    size_t n;
};

__attribute__((format(printf, 2, 3))) static void add(struct line *l, const char *fmt, ...)
{
    if (l->n >= sizeof(l->buf))
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(l->buf + l->n, sizeof(l->buf) - l->n, fmt, ap);
    va_end(ap);
    if (m > 0)
        l->n += (size_t)m < sizeof(l->buf) - l->n ? (size_t)m : sizeof(l->buf) - l->n - 1;
}

/* Adds `s` as the inside of a JSON string (RFC 8259 §7). */
static void add_json(struct line *l, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            add(l, "\\%c", c);
        else if (c < 0x20)
            add(l, "\\u%04x", c);
        else
            add(l, "%c", c);
    }
}

static void add_time(struct line *l, bool json)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char t[32];
    strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
    if (json)
        add(l, "{\"time\":\"%s.%03ldZ\"", t, ts.tv_nsec / 1000000);
    else
        add(l, "%sZ ", t);
}

/* One write per line; a short write to a full pipe loses the tail of a
 * log line, never the server. */
static void emit(struct line *l)
{
    if (l->n > sizeof(l->buf) - 2)
        l->n = sizeof(l->buf) - 2;
    l->buf[l->n++] = '\n';
    ssize_t w = write(STDERR_FILENO, l->buf, l->n);
    (void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        return;

    struct line l = {.n = 0};
    if (atomic_load_explicit(&format, memory_order_relaxed) == LOG_FORMAT_JSON) {
        add_time(&l, true);
        add(&l, ",\"level\":\"%s\",\"msg\":\"", json_levels[level]);
        add_json(&l, msg);
        add(&l, "\"}");
    } else {
        add_time(&l, false);
        add(&l, "[%s] %s", level_names[level], msg);
    }
    emit(&l);
}

/* The address of `sa` in `host` ("-" for another family), and its port. */
static unsigned addr_parts(const struct sockaddr *sa, char *host, size_t cap)
{
    snprintf(host, cap, "-");
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)cap);
        return ntohs(sin->sin_port);
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, (socklen_t)cap);
        return ntohs(sin6->sin6_port);
    }
    return 0;
}

void log_addr(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port = addr_parts(sa, host, sizeof(host));
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
        snprintf(out, cap, "-");
    else if (sa->sa_family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", host, port);
    else
        snprintf(out, cap, "%s:%u", host, port);
}

bool log_limit_pass(struct log_limit *l, uint64_t *suppressed)
{
    uint64_t now = clock_ms();
    uint64_t next = atomic_load_explicit(&l->next_ms, memory_order_relaxed);
    /* of the threads that see the period over, one wins the exchange */
    if (now < next ||
        !atomic_compare_exchange_strong(&l->next_ms, &next, now + LOG_LIMIT_PERIOD * 1000ULL)) {
        atomic_fetch_add_explicit(&l->suppressed, 1, memory_order_relaxed);
        return false;
    }
    *suppressed = atomic_exchange(&l->suppressed, 0);
    return true;
}

/* The query name as text, letter case kept, dots between labels and
 * unusual bytes escaped (\DDD), as dig shows it. */
static void name_text(const uint8_t *wire, char *out, size_t cap)
{
    size_t n = 0;
    if (!wire) {
        snprintf(out, cap, "-");
        return;
    }
    for (const uint8_t *p = wire; *p && n + 6 < cap;) {
        uint8_t len = *p++;
        for (uint8_t i = 0; i < len && n + 6 < cap; i++, p++) {
            uint8_t c = *p;
            if (c == '.' || c == '\\' || c == '"')
                n += (size_t)snprintf(out + n, cap - n, "\\%c", c);
            else if (c <= 0x20 || c >= 0x7f)
                n += (size_t)snprintf(out + n, cap - n, "\\%03u", c);
            else
                out[n++] = (char)c;
        }
        out[n++] = '.';
    }
    if (n == 0)
        out[n++] = '.';
    out[n] = '\0';
}

static const char *rcode_text(unsigned rcode, char *buf, size_t cap)
{
    static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                        "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                        "NXRRSET", "NOTAUTH", "NOTZONE"};
    if (rcode < sizeof(names) / sizeof(names[0]))
        return names[rcode];
    if (rcode == 16)
        return "BADVERS";
    snprintf(buf, cap, "RCODE%u", rcode);
    return buf;
}

/* Written whatever `level` is: `queries = yes` asks for these lines, and
 * `level = warning` for fewer event lines (CoreDNS's log plugin does not
 * depend on its error level either). */
void log_query(const struct log_query *q)
{
    char host[INET6_ADDRSTRLEN + 2];
    unsigned port = addr_parts(q->peer, host, sizeof(host));
    char name[1024];
    name_text(q->qname, name, sizeof(name));
    const ldns_rr_descriptor *d = ldns_rr_descript(q->qtype);
    char type[16], klass[16], rbuf[16];
    if (d && d->_name)
        snprintf(type, sizeof(type), "%s", d->_name);
    else
        snprintf(type, sizeof(type), "TYPE%u", q->qtype);
    const ldns_lookup_table *c = ldns_lookup_by_id(ldns_rr_classes, q->qclass);
    if (c && c->name)
        snprintf(klass, sizeof(klass), "%s", c->name);
    else
        snprintf(klass, sizeof(klass), "CLASS%u", q->qclass);
    char flags[40] = "";
    if (q->reply) {
        /* in the order CoreDNS prints them */
        static const struct {
            int byte, mask;
            const char *name;
        } bits[] = {{2, 0x80, "qr"}, {2, 0x04, "aa"}, {2, 0x02, "tc"}, {2, 0x01, "rd"},
                    {3, 0x80, "ra"}, {3, 0x20, "ad"}, {3, 0x10, "cd"}};
        for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
            if (q->reply[bits[i].byte] & bits[i].mask) {
                if (flags[0])
                    strcat(flags, ",");
                strcat(flags, bits[i].name);
            }
        }
    }
    const char *rcode = rcode_text(q->rcode, rbuf, sizeof(rbuf));
    double secs = (double)q->ns / 1e9;

    /* The CoreDNS line: all of a text line, and the JSON object's msg. */
    char msg[1400];
    bool v6 = strchr(host, ':') != NULL;
    snprintf(msg, sizeof(msg), "%s%s%s:%u - %u \"%s %s %s %s %zu %s %u\" %s %s %zu %.9fs",
             v6 ? "[" : "", host, v6 ? "]" : "", port, q->id, type, klass, name,
             q->tcp ? "tcp" : "udp", q->size, q->do_bit ? "true" : "false", q->bufsize, rcode,
             flags[0] ? flags : "-", q->rsize, secs);

    struct line l = {.n = 0};
    if (atomic_load_explicit(&format, memory_order_relaxed) == LOG_FORMAT_JSON) {
        add_time(&l, true);
        add(&l, ",\"level\":\"info\",\"msg\":\"");
        add_json(&l, msg);
        add(&l,
            "\",\"type\":\"query\",\"remote\":\"%s\",\"port\":%u,\"id\":%u,"
            "\"qtype\":\"%s\",\"qclass\":\"%s\",\"name\":\"",
            host, port, q->id, type, klass);
        add_json(&l, name);
        add(&l,
            "\",\"proto\":\"%s\",\"size\":%zu,\"do\":%s,\"bufsize\":%u,\"rcode\":\"%s\","
            "\"rflags\":\"%s\",\"rsize\":%zu,\"duration\":%.9f}",
            q->tcp ? "tcp" : "udp", q->size, q->do_bit ? "true" : "false", q->bufsize, rcode, flags,
            q->rsize, secs);
    } else {
        add_time(&l, false);
        add(&l, "[INFO] %s", msg);
    }
    emit(&l);
}
