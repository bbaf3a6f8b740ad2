/* tcpshort.c -- the benchmark's short-lived TCP client: one query per connection.
 *
 * usage: tcpshort ADDRESS PORT QUERYFILE SECONDS CONCURRENCY
 *
 * Keeps CONCURRENCY connections to ADDRESS:PORT in flight for SECONDS:
 * each connects, sends one query of QUERYFILE (dnsperf's format, "NAME
 * TYPE" per line, taken in turn), reads its reply (RFC 7766 framing),
 * and closes with a FIN, as a stub resolver that falls back to TCP does.
 * dnsperf has `-O num-queries-per-conn=1`, but it waits about 100 ms
 * before each new connection, so it measures its own pause, not a server.
 *
 * Prints what tests/bench/run reads, in dnsperf's words: "Queries sent",
 * "Queries completed" (a whole reply with our id), "Queries lost" (no
 * reply within 5 s, a refused or reset connection, a reply cut short),
 * "Queries per second", "Average Latency (s)" (connect to reply).
 *
 * The source addresses go round 127.0.0.1 to 127.0.0.16, so that the
 * client's TIME_WAIT sockets (hundreds of thousands in a run) never use
 * up the ephemeral ports of one address; connect() picks the port
 * (IP_BIND_ADDRESS_NO_PORT), and may reuse a TIME_WAIT one on loopback. Loopback only; for
 * tests/bench/run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC    1024
#define MAX_QUERIES 200000
#define SOURCES     16
#define TIMEOUT_NS  5000000000ULL

struct query {
    uint8_t wire[2 + 512]; /* length prefix, then the message */
    size_t len;            /* with the prefix */
};

struct conn {
    int fd;
    uint16_t id;
    bool sent;
    uint64_t start;
    uint8_t buf[2 + 65535];
    size_t got;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int qtype_of(const char *t)
{
    static const struct {
        const char *name;
        int type;
    } types[] = {{"A", 1},    {"NS", 2},   {"CNAME", 5}, {"SOA", 6},
                 {"PTR", 12}, {"TXT", 16}, {"AAAA", 28}, {"SRV", 33}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(t, types[i].name) == 0)
            return types[i].type;
    return -1;
}

/* "NAME TYPE" as a query with RD=0 in q->wire; false if it is not one. */
static bool make_query(const char *line, struct query *q)
{
    char name[256], type[16];
    if (sscanf(line, "%255s %15s", name, type) != 2 || qtype_of(type) < 0)
        return false;
    uint8_t *m = q->wire + 2;
    memset(m, 0, 12);
    m[5] = 1; /* QDCOUNT */
    size_t pos = 12;
    for (char *label = strtok(name, "."); label; label = strtok(NULL, ".")) {
        size_t l = strlen(label);
        if (l == 0 || l > 63 || pos + 1 + l + 5 > 512)
            return false;
        m[pos++] = (uint8_t)l;
        memcpy(m + pos, label, l);
        pos += l;
    }
    m[pos++] = 0;
    int t = qtype_of(type);
    m[pos++] = (uint8_t)(t >> 8);
    m[pos++] = (uint8_t)t;
    m[pos++] = 0;
    m[pos++] = 1; /* IN */
    q->wire[0] = (uint8_t)(pos >> 8);
    q->wire[1] = (uint8_t)pos;
    q->len = pos + 2;
    return true;
}

static struct query *read_queries(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return NULL;
    }
    struct query *v = calloc(MAX_QUERIES, sizeof(*v));
    char line[512];
    *n = 0;
    while (v && *n < MAX_QUERIES && fgets(line, sizeof(line), f))
        if (make_query(line, &v[*n]))
            (*n)++;
    fclose(f);
    return v;
}

struct run {
    int ep;
    struct sockaddr_in server;
    const struct query *queries;
    size_t nqueries, next;
    unsigned source;
    uint64_t sent, completed, lost, latency_ns;
};

/* Starts connection `c`: a non-blocking connect from the next source. */
static void conn_open(struct run *r, struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->sent = false;
    c->got = 0;
    c->start = now_ns();
    if (c->fd < 0) {
        perror("tcpshort: socket");
        exit(1);
    }
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001 + r->source++ % SOURCES);
    int one = 1;
    /* the port is chosen by connect(), for the whole 4-tuple: a bind() to
     * port 0 would search past every TIME_WAIT socket of the address */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
        (connect(c->fd, (struct sockaddr *)&r->server, sizeof(r->server)) < 0 &&
         errno != EINPROGRESS)) {
        r->lost++;
        close(c->fd);
        c->fd = -1;
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_close(struct run *r, struct conn *c, bool ok)
{
    if (ok) {
        r->completed++;
        r->latency_ns += now_ns() - c->start;
    } else {
        r->lost++;
    }
    close(c->fd); /* a FIN: the reply is read whole */
    c->fd = -1;
}

/* Sends the query once connected, reads the reply; true when `c` is done. */
static bool conn_step(struct run *r, struct conn *c, uint32_t events)
{
    if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
        conn_close(r, c, false);
        return true;
    }
    if (!c->sent && (events & EPOLLOUT)) {
        const struct query *q = &r->queries[r->next++ % r->nqueries];
        c->id = (uint16_t)(r->sent * 2654435761u >> 16);
        uint8_t wire[sizeof(q->wire)];
        memcpy(wire, q->wire, q->len);
        wire[2] = (uint8_t)(c->id >> 8);
        wire[3] = (uint8_t)c->id;
        if (send(c->fd, wire, q->len, MSG_NOSIGNAL) != (ssize_t)q->len) {
            conn_close(r, c, false);
            return true;
        }
        r->sent++;
        c->sent = true;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
        return false;
    }
    if (!(events & EPOLLIN))
        return false;
    ssize_t n = recv(c->fd, c->buf + c->got, sizeof(c->buf) - c->got, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (n <= 0) {
        conn_close(r, c, false);
        return true;
    }
    c->got += (size_t)n;
    if (c->got < 2)
        return false;
    size_t want = 2 + ((size_t)c->buf[0] << 8 | c->buf[1]);
    if (c->got < want)
        return false;
    bool ok = want >= 14 && (c->buf[2] << 8 | c->buf[3]) == c->id && (c->buf[4] & 0x80);
    conn_close(r, c, ok);
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: tcpshort ADDRESS PORT QUERYFILE SECONDS CONCURRENCY\n");
        return 2;
    }
    struct run r = {.server = {.sin_family = AF_INET}};
    long port = strtol(argv[2], NULL, 10);
    double seconds = strtod(argv[4], NULL);
    long conc = strtol(argv[5], NULL, 10);
    if (inet_pton(AF_INET, argv[1], &r.server.sin_addr) != 1 || port < 1 || port > 65535 ||
        seconds <= 0 || conc < 1 || conc > MAX_CONC) {
        fprintf(stderr, "tcpshort: bad arguments\n");
        return 2;
    }
    r.server.sin_port = htons((uint16_t)port);
    struct query *queries = read_queries(argv[3], &r.nqueries);
    r.queries = queries;
    if (!queries || r.nqueries == 0) {
        fprintf(stderr, "tcpshort: no queries in %s\n", argv[3]);
        free(queries);
        return 1;
    }
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    static struct conn conns[MAX_CONC];
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    for (long i = 0; i < conc; i++)
        conn_open(&r, &conns[i]);
    for (;;) {
        struct epoll_event ev[64];
        int n = epoll_wait(r.ep, ev, 64, 100);
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (c->fd >= 0 && conn_step(&r, c, ev[i].events) && now < end)
                conn_open(&r, c);
        }
        size_t open = 0;
        for (long i = 0; i < conc; i++) {
            struct conn *c = &conns[i];
            /* c->start may be after `now`: opened again in the loop above */
            if (c->fd >= 0 && c->start + TIMEOUT_NS < now)
                conn_close(&r, c, false);
            if (c->fd < 0 && now < end)
                conn_open(&r, c); /* one that failed or timed out */
            open += c->fd >= 0;
        }
        if (open == 0 && now >= end)
            break;
    }
    double run = (double)(now_ns() - t0) / 1e9;
    printf("  Queries sent:         %llu\n", (unsigned long long)r.sent);
    printf("  Queries completed:    %llu\n", (unsigned long long)r.completed);
    printf("  Queries lost:         %llu\n", (unsigned long long)r.lost);
    printf("  Run time (s):         %.6f\n", run);
    printf("  Queries per second:   %.6f\n", (double)r.completed / run);
    printf("  Average Latency (s):  %.6f\n",
           r.completed ? (double)r.latency_ns / 1e9 / (double)r.completed : 0.0);
    close(r.ep);
    free(queries); /* a leak fails the run under LeakSanitizer, which the suite builds */
    return 0;
}
