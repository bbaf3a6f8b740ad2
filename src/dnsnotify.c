/* dnsnotify.c -- DNS NOTIFY (RFC 1996) to the secondaries, when the zone's serial changes. */
#include "svcmapd/dnsnotify.h"

#include <errno.h>
#include <event2/event.h>
#include <ldns/ldns.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svcmapd/clock.h"
#include "svcmapd/log.h"
#include "svcmapd/wire.h"
#include "svcmapd/zone.h"
#include "svcmapd/zone_walk.h"

#define HDR 12

/* One secondary, and the NOTIFY under way to it, if any. */
struct target {
    struct dnsnotify *n;
    struct config_addr addr;
    struct dnsnotify_stats stats;
    bool has_serial;
    uint32_t serial; /* the last one sent to it */
    /* the NOTIFY under way: fd -1 when none */
    int fd;
    struct event *read, *timer;
    unsigned tries;
    uint32_t wait_ms;
    uint64_t t0; /* ms */
    char zone[LDNS_MAX_DOMAINLEN + 1];
    uint8_t msg[HDR + LDNS_MAX_DOMAINLEN + 1 + 4 + ZONE_RECORD_MAX];
    size_t len;
};

struct dnsnotify {
    struct event_base *base;
    struct target *targets[CONFIG_MAX_NOTIFY];
    size_t ntargets;
};

struct dnsnotify *dnsnotify_new(struct event_base *base)
{
    struct dnsnotify *n = calloc(1, sizeof(*n));
    if (n)
        n->base = base;
    return n;
}

/* Ends the NOTIFY under way to `t`, if any. */
static void finish(struct target *t)
{
    if (t->read)
        event_free(t->read);
    if (t->timer)
        event_free(t->timer);
    if (t->fd >= 0)
        close(t->fd);
    t->read = t->timer = NULL;
    t->fd = -1;
}

static void target_free(struct target *t)
{
    if (!t)
        return;
    finish(t);
    free(t);
}

void dnsnotify_stop(struct dnsnotify *n)
{
    for (size_t i = 0; n && i < n->ntargets; i++)
        finish(n->targets[i]);
}

void dnsnotify_free(struct dnsnotify *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->ntargets; i++)
        target_free(n->targets[i]);
    free(n);
}

/* Sends the NOTIFY again (or the first time), and waits for the answer. */
static void send_again(struct target *t)
{
    /* an error of a connected UDP socket (a port unreachable) is the
     * answer to an earlier try: the secondary may be starting, go on */
    if (send(t->fd, t->msg, t->len, 0) == (ssize_t)t->len)
        t->stats.sent++;
    t->tries++;
    struct timeval tv = {(time_t)(t->wait_ms / 1000), (suseconds_t)(t->wait_ms % 1000) * 1000};
    evtimer_add(t->timer, &tv);
    t->wait_ms = t->wait_ms * 2 < DNSNOTIFY_MAX_WAIT_MS ? t->wait_ms * 2 : DNSNOTIFY_MAX_WAIT_MS;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct target *t = arg;
    (void)fd;
    (void)what;
    if (t->tries < DNSNOTIFY_TRIES) {
        send_again(t);
        return;
    }
    t->stats.failures++;
    log_warning("notify: %s serial %u to %s: no answer to %u tries in %.0f s; given up, the "
                "secondary refreshes when its SOA refresh timer says so",
                t->zone, t->serial, t->addr.text, t->tries, (double)(clock_ms() - t->t0) / 1000.0);
    finish(t);
}

/* An answer: the same ID, QR, opcode NOTIFY (RFC 1996 §4.7); anything else
 * on the socket is not one, and is dropped. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct target *t = arg;
    (void)what;
    uint8_t buf[512];
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r < HDR || memcmp(buf, t->msg, 2) != 0 || !(buf[2] & 0x80) ||
        ((buf[2] >> 3) & 0x0f) != LDNS_PACKET_NOTIFY)
        return;
    uint8_t rcode = buf[3] & 0x0f;
    double ms = (double)(clock_ms() - t->t0);
    if (rcode == LDNS_RCODE_NOERROR) {
        t->stats.acknowledged++;
        log_info("notify: %s serial %u to %s: answered after %u %s, %.0f ms", t->zone, t->serial,
                 t->addr.text, t->tries, t->tries == 1 ? "try" : "tries", ms);
    } else {
        /* it answered: asking again would get the same */
        t->stats.failures++;
        char *name = ldns_pkt_rcode2str(rcode);
        log_warning("notify: %s serial %u to %s: answered %s; is the zone configured there, "
                    "with svcmapd as its primary, allowed to notify?",
                    t->zone, t->serial, t->addr.text, name ? name : "an error");
        free(name);
    }
    finish(t);
}

/* The NOTIFY of `z`'s serial (RFC 1996 §3.7): opcode NOTIFY, AA, a random
 * ID, the question <zone> SOA, and the SOA in the answer section, its
 * owner a pointer to the question. Its length; 0 if the zone has no SOA. */
static size_t build(const struct zone *z, uint8_t *msg)
{
    uint8_t soa[ZONE_RECORD_MAX];
    size_t n = zone_walk_soa(z, soa);
    size_t owner = n ? wire_skip_name(soa, n, 0, NULL) : 0;
    if (owner == 0)
        return 0;
    uint16_t id;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        id = (uint16_t)clock_ns();
    memset(msg, 0, HDR);
    ldns_write_uint16(msg, id);
    msg[2] = (uint8_t)(LDNS_PACKET_NOTIFY << 3 | 0x04); /* opcode, AA */
    ldns_write_uint16(msg + 4, 1);
    ldns_write_uint16(msg + 6, 1);
    size_t pos = HDR;
    memcpy(msg + pos, soa, owner);
    pos += owner;
    ldns_write_uint16(msg + pos, LDNS_RR_TYPE_SOA);
    ldns_write_uint16(msg + pos + 2, LDNS_RR_CLASS_IN);
    pos += 4;
    ldns_write_uint16(msg + pos, 0xc000 | HDR);
    memcpy(msg + pos + 2, soa + owner, n - owner);
    return pos + 2 + n - owner;
}

/* Sends `t` the NOTIFY of `z`, instead of the one under way if any. */
static void start(struct target *t, const struct zone *z)
{
    finish(t);
    t->has_serial = true;
    t->serial = zone_stats(z)->serial;
    snprintf(t->zone, sizeof(t->zone), "%s", zone_name(z));
    t->len = build(z, t->msg);
    const struct sockaddr *sa = (const struct sockaddr *)&t->addr.addr;
    t->fd = t->len ? socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    if (t->fd >= 0 && connect(t->fd, sa, t->addr.addrlen) == 0) {
        t->read = event_new(t->n->base, t->fd, EV_READ | EV_PERSIST, on_read, t);
        t->timer = evtimer_new(t->n->base, on_timer, t);
    }
    if (!t->read || !t->timer || event_add(t->read, NULL) < 0) {
        t->stats.failures++;
        log_warning("notify: %s serial %u to %s: cannot send: %s", t->zone, t->serial, t->addr.text,
                    t->len ? strerror(errno) : "no SOA");
        finish(t);
        return;
    }
    t->tries = 0;
    t->wait_ms = DNSNOTIFY_WAIT_MS;
    t->t0 = clock_ms();
    send_again(t);
}

void dnsnotify_zone(struct dnsnotify *n, const struct zone *z, const struct config_addr *targets,
                    size_t ntargets)
{
    /* the targets given, with the counters of those known already */
    struct target *next[CONFIG_MAX_NOTIFY] = {NULL};
    size_t count = ntargets < CONFIG_MAX_NOTIFY ? ntargets : CONFIG_MAX_NOTIFY;
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < n->ntargets && !next[i]; k++) {
            if (n->targets[k] && strcmp(n->targets[k]->addr.text, targets[i].text) == 0) {
                next[i] = n->targets[k];
                n->targets[k] = NULL;
            }
        }
        if (!next[i]) {
            next[i] = calloc(1, sizeof(*next[i]));
            if (!next[i]) {
                log_error("notify: out of memory; %s is not notified", targets[i].text);
                continue;
            }
            next[i]->n = n;
            next[i]->fd = -1;
            next[i]->addr = targets[i];
            snprintf(next[i]->stats.target, sizeof(next[i]->stats.target), "%s", targets[i].text);
        }
    }
    for (size_t k = 0; k < n->ntargets; k++)
        target_free(n->targets[k]);
    n->ntargets = 0;
    uint32_t serial = zone_stats(z)->serial;
    for (size_t i = 0; i < count; i++) {
        if (!next[i])
            continue;
        n->targets[n->ntargets++] = next[i];
        if (!next[i]->has_serial || next[i]->serial != serial)
            start(next[i], z);
    }
}

size_t dnsnotify_targets(const struct dnsnotify *n)
{
    return n ? n->ntargets : 0;
}

const struct dnsnotify_stats *dnsnotify_stats(const struct dnsnotify *n, size_t i)
{
    return &n->targets[i]->stats;
}
