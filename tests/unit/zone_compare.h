/* zone_compare.h -- whether two zones serve alike: for the patch test and the reload fuzzer. */
#ifndef SVCMAPD_ZONE_COMPARE_H
#define SVCMAPD_ZONE_COMPARE_H

#include <ldns/ldns.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/zone.h"
#include "svcmapd/zone_walk.h"

/*
 * zone_compare() holds a zone patched by a reload against the zone
 * compiled whole from the same file: the same counts and digest, the same
 * records in a transfer, and the same answer to every name either has, or
 * `before` (the zone the reload replaced) had, to the names above them up
 * to the root, and to the reverse name of every address, for the usual
 * types. The SOA serial is not compared. Each difference goes to
 * `report` with a line that says what differs; it returns how many (it
 * stops after a few).
 */

typedef void zone_compare_report(void *arg, const char *what);

struct zone_compare {
    const struct zone *a, *b; /* the patched zone, the whole one */
    zone_compare_report *report;
    void *arg;
    int differences;
};

#define ZONE_COMPARE_MAX 5 /* differences reported */

static void zone_compare_say(struct zone_compare *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void zone_compare_say(struct zone_compare *c, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->differences++;
    c->report(c->arg, line);
}

static int zone_compare_rec(const void *a, const void *b)
{
    const uint8_t *x = *(uint8_t *const *)a, *y = *(uint8_t *const *)b;
    size_t lx = (size_t)x[0] << 8 | x[1], ly = (size_t)y[0] << 8 | y[1];
    int c = memcmp(x + 2, y + 2, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* Every record of a walk of `z`, each as two bytes of length and the
 * record, sorted; `*n` of them. */
static uint8_t **zone_compare_walk(const struct zone *z, size_t *n)
{
    struct zone_walk w;
    uint8_t out[ZONE_RECORD_MAX];
    size_t cap = 64;
    uint8_t **v = malloc(cap * sizeof(*v));
    *n = 0;
    zone_walk_start(&w);
    for (size_t len; v && (len = zone_walk_next(z, &w, out)) > 0;) {
        if (*n == cap) {
            uint8_t **more = realloc(v, (cap *= 2) * sizeof(*v));
            if (!more)
                abort();
            v = more;
        }
        if (!(v[*n] = malloc(len + 2)))
            abort();
        v[*n][0] = (uint8_t)(len >> 8);
        v[*n][1] = (uint8_t)len;
        memcpy(v[*n] + 2, out, len);
        (*n)++;
    }
    if (!v)
        abort();
    qsort(v, *n, sizeof(*v), zone_compare_rec);
    return v;
}

static void zone_compare_walk_free(uint8_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* What a query of `name` and `type` finds in `z`, as bytes at `out` (64
 * KiB at least): the rcode, the sets' counts and answer records, the PTR
 * targets with their TTLs, the record. */
static size_t zone_compare_found(const struct zone *z, const uint8_t *name, size_t len,
                                 uint16_t type, uint8_t *out)
{
    struct zone_found f;
    zone_find(z, name, len, type, &f);
    size_t n = 0;
    out[n++] = f.plan->rcode;
    for (int s = 0; s < ZONE_SECTIONS; s++)
        out[n++] = f.plan->nsets[s];
    out[n++] = f.plan->has_external;
    for (uint8_t s = 0; s < f.plan->nsets[ZONE_ANSWER] && n < 60000; s++) {
        const struct zone_rrset *r = f.plan->sets[s];
        memcpy(out + n, zone_rrset_data(r), r->len < 4096 ? r->len : 4096);
        n += r->len < 4096 ? r->len : 4096;
    }
    for (size_t i = 0; i < f.nptr && n < 60000; i++) {
        memcpy(out + n, f.ptr[i].target, f.ptr[i].target_len);
        n += f.ptr[i].target_len;
        memcpy(out + n, &f.ptr[i].ttl, 4);
        n += 4;
    }
    if (f.rr && f.rrlen < 1024) {
        memcpy(out + n, f.rr, f.rrlen);
        n += f.rrlen;
    }
    return n;
}

/* `name` (wire form) as text, in `out`. */
static const char *zone_compare_name(const uint8_t *name, size_t len, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = '\0';
    for (size_t p = 0; p < len && name[p] && k + 70 < cap; p += (size_t)name[p] + 1)
        k += (size_t)snprintf(out + k, cap - k, "%.*s.", name[p], (const char *)name + p + 1);
    return out;
}

/* Asks both zones `name` and the names above it for the usual types. */
static void zone_compare_ask(struct zone_compare *c, const uint8_t *name, size_t len)
{
    static const uint16_t types[] = {LDNS_RR_TYPE_A,   LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_SRV,
                                     LDNS_RR_TYPE_TXT, LDNS_RR_TYPE_ANY,  LDNS_RR_TYPE_PTR};
    static uint8_t x[1 << 16], y[1 << 16];
    for (size_t at = 0; at < len && c->differences < ZONE_COMPARE_MAX; at += (size_t)name[at] + 1) {
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
            size_t nx = zone_compare_found(c->a, name + at, len - at, types[t], x);
            size_t ny = zone_compare_found(c->b, name + at, len - at, types[t], y);
            if (nx != ny || memcmp(x, y, nx) != 0) {
                char text[LDNS_MAX_DOMAINLEN * 4 + 1];
                zone_compare_say(c,
                                 "%s type %u is answered otherwise (rcode %u, %zu bytes; whole: "
                                 "rcode %u, %zu bytes)",
                                 zone_compare_name(name + at, len - at, text, sizeof(text)),
                                 types[t], x[0], nx, y[0], ny);
            }
        }
    }
}

/* The owner of each walked record, and for A and AAAA the reverse name of
 * its address, asked of both zones. */
static void zone_compare_records(struct zone_compare *c, uint8_t **v, size_t n)
{
    static const uint8_t in_addr_arpa[] = "\x07in-addr\x04"
                                          "arpa";
    static const uint8_t ip6_arpa[] = "\x03ip6\x04"
                                      "arpa";
    for (size_t i = 0; i < n && c->differences < ZONE_COMPARE_MAX; i++) {
        const uint8_t *rr = v[i] + 2;
        size_t len = 0;
        while (rr[len])
            len += (size_t)rr[len] + 1;
        len++;
        zone_compare_ask(c, rr, len);
        uint16_t type = (uint16_t)(rr[len] << 8 | rr[len + 1]);
        const uint8_t *addr = rr + len + 10;
        uint8_t rev[80];
        size_t r = 0;
        if (type == LDNS_RR_TYPE_A) {
            for (int k = 3; k >= 0; k--) {
                int l = snprintf((char *)rev + r + 1, 4, "%u", addr[k]);
                rev[r] = (uint8_t)l;
                r += (size_t)l + 1;
            }
            memcpy(rev + r, in_addr_arpa, sizeof(in_addr_arpa));
            zone_compare_ask(c, rev, r + sizeof(in_addr_arpa));
        } else if (type == LDNS_RR_TYPE_AAAA) {
            for (int k = 31; k >= 0; k--) {
                rev[r++] = 1;
                rev[r++] = (uint8_t) "0123456789abcdef"[(addr[k / 2] >> (k % 2 ? 0 : 4)) & 15];
            }
            memcpy(rev + r, ip6_arpa, sizeof(ip6_arpa));
            zone_compare_ask(c, rev, r + sizeof(ip6_arpa));
        }
    }
}

static int zone_compare(const struct zone *patched, const struct zone *whole,
                        const struct zone *before, zone_compare_report *report, void *arg)
{
    struct zone_compare c = {patched, whole, report, arg, 0};
    const struct zone_stats *p = zone_stats(patched), *w = zone_stats(whole);
    if (p->services != w->services || p->records != w->records || p->names != w->names ||
        p->added != w->added || p->removed != w->removed || p->changed != w->changed)
        zone_compare_say(&c,
                         "counts differ: %zu/%zu/%zu services/records/names, %zu/%zu/%zu "
                         "added/removed/changed; whole: %zu/%zu/%zu, %zu/%zu/%zu",
                         p->services, p->records, p->names, p->added, p->removed, p->changed,
                         w->services, w->records, w->names, w->added, w->removed, w->changed);
    if (p->digest != w->digest)
        zone_compare_say(&c, "the digests differ");
    size_t np, nw, nb = 0;
    uint8_t **vp = zone_compare_walk(patched, &np), **vw = zone_compare_walk(whole, &nw);
    uint8_t **vb = before ? zone_compare_walk(before, &nb) : NULL;
    bool same = np == nw;
    for (size_t i = 0; same && i < np; i++)
        same = zone_compare_rec(&vp[i], &vw[i]) == 0;
    if (!same)
        zone_compare_say(&c, "a transfer differs: %zu records, whole %zu", np, nw);
    zone_compare_records(&c, vw, nw);
    zone_compare_records(&c, vp, np);
    zone_compare_records(&c, vb, nb);
    zone_compare_walk_free(vp, np);
    zone_compare_walk_free(vw, nw);
    if (vb)
        zone_compare_walk_free(vb, nb);
    return c.differences;
}

#endif
