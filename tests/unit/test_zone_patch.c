/* test_zone_patch.c -- a reload that patches the zone serves exactly what a whole compile would. */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdint.h>
#include <stdlib.h>

#include "svcmapd/zone.h"
#include "svcmapd/zone_walk.h"
#include "tap.h"
#include "unit_zone.h"

/*
 * A random mapping goes through rounds of edits: services changed, added
 * and removed, namespaces added and removed, now and then a health check,
 * a CNAME into the zone or a new [server] ttl, which a patch leaves to a
 * whole compile. Each round's file is compiled as the reload of the zone
 * before (a patch, or a patch of a patch, most of the time) and whole, as
 * the reload of the whole zone before, and the two must agree on every record of the zone, on the
 * answer to every name either zone or the one before knew (and to the
 * names above them, up to the apex), on every PTR of every address, and
 * on the counts and digest.
 */

#define ROUNDS     60
#define NS_MAX     12
#define SVC_MAX    48
#define VALUE_SIZE 160

struct svc {
    bool used;
    char value[VALUE_SIZE];
};

struct mapping {
    bool ns_used[NS_MAX];
    struct svc svc[NS_MAX][SVC_MAX];
    uint32_t ttl;
};

static uint64_t rng_state = 20261206;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33) % n;
}

/* A value of any shape a service takes; `rare` allows those a patch
 * cannot take (a check, a CNAME into the zone). */
static void random_value(const struct mapping *m, char *out, bool rare)
{
    unsigned a = rnd(40), b = rnd(250) + 1;
    switch (rnd(rare ? 11 : 9)) {
    case 0:
    case 1:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u", a, b);
        break;
    case 2:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u, 10.%u.1.%u, 10.1.0.%u", a, b, a, b, rnd(4) + 1);
        break;
    case 3:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u:%u", a, b, 1000 + rnd(3));
        break;
    case 4:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u:80, [fd00::%x]:80 srv=_web._udp", a, b, b);
        break;
    case 5:
        snprintf(out, VALUE_SIZE, "fd00::%x, 10.1.0.%u ttl=%u", b, rnd(4) + 1, 5 + rnd(3));
        break;
    case 6:
        snprintf(out, VALUE_SIZE, "host-%u.example.net", rnd(5));
        break;
    case 7:
        snprintf(out, VALUE_SIZE, "host-%u.example.net resolve=no", rnd(5));
        break;
    case 8:
        snprintf(out, VALUE_SIZE, "10.2.0.%u", rnd(3) + 1); /* shared with others */
        break;
    case 9:
        snprintf(out, VALUE_SIZE, "10.3.0.%u:5432, 10.3.1.%u:5432 check=tcp", b, b);
        break;
    default:
        for (int i = 0; i < NS_MAX; i++)
            for (int j = 0; j < SVC_MAX; j++)
                if (m->ns_used[i] && m->svc[i][j].used && strchr(m->svc[i][j].value, ',') &&
                    !strstr(m->svc[i][j].value, "check")) {
                    snprintf(out, VALUE_SIZE, "s%d.n%d.svc.cluster.local", j, i);
                    return;
                }
        snprintf(out, VALUE_SIZE, "10.4.0.%u", b);
    }
}

static void text_of(const struct mapping *m, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap,
                                "[server]\nzone = cluster.local\nttl = %u\n"
                                "reverse = 10.0.0.0/8\nmax-removal = 100\n"
                                "[upstream]\nservers = 127.0.0.1:9\n",
                                m->ttl);
    for (int i = 0; i < NS_MAX; i++) {
        if (!m->ns_used[i])
            continue;
        n += (size_t)snprintf(out + n, cap - n, "[namespace n%d]\n", i);
        for (int j = 0; j < SVC_MAX; j++)
            if (m->svc[i][j].used)
                n += (size_t)snprintf(out + n, cap - n, "s%d = %s\n", j, m->svc[i][j].value);
    }
}

static void edit(struct mapping *m, bool rare)
{
    int edits = 1 + (int)rnd(6);
    for (int e = 0; e < edits; e++) {
        int i = (int)rnd(NS_MAX), j = (int)rnd(SVC_MAX);
        unsigned what = rnd(20);
        if (what == 0) {
            m->ns_used[i] = !m->ns_used[i];
        } else if (!m->ns_used[i]) {
            m->ns_used[i] = true;
        } else if (what < 7 && m->svc[i][j].used) {
            m->svc[i][j].used = false;
        } else {
            m->svc[i][j].used = true;
            random_value(m, m->svc[i][j].value, rare);
        }
    }
    if (rare && rnd(10) == 0)
        m->ttl = 30 + rnd(2);
}

/* ---- comparing two zones ---- */

static int cmp_rec(const void *a, const void *b)
{
    const uint8_t *x = *(uint8_t *const *)a, *y = *(uint8_t *const *)b;
    size_t lx = (size_t)x[0] << 8 | x[1], ly = (size_t)y[0] << 8 | y[1];
    int c = memcmp(x + 2, y + 2, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* Every record of a walk of `z`, each as two bytes of length and the
 * record, sorted; `*n` of them. */
static uint8_t **walk(const struct zone *z, size_t *n)
{
    struct zone_walk w;
    uint8_t out[ZONE_RECORD_MAX];
    size_t cap = 64;
    uint8_t **v = malloc(cap * sizeof(*v));
    *n = 0;
    zone_walk_start(&w);
    for (size_t len; (len = zone_walk_next(z, &w, out)) > 0;) {
        if (*n == cap)
            v = realloc(v, (cap *= 2) * sizeof(*v));
        v[*n] = malloc(len + 2);
        v[*n][0] = (uint8_t)(len >> 8);
        v[*n][1] = (uint8_t)len;
        memcpy(v[*n] + 2, out, len);
        (*n)++;
    }
    qsort(v, *n, sizeof(*v), cmp_rec);
    return v;
}

static void walk_free(uint8_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* What a query of `name` and `type` finds in `z`, as bytes: the rcode,
 * the sets' counts and answer records, the PTR targets, the record. */
static size_t found_text(const struct zone *z, const uint8_t *name, size_t len, uint16_t type,
                         uint8_t *out)
{
    struct zone_found f;
    zone_find(z, name, len, type, &f);
    size_t n = 0;
    out[n++] = f.plan->rcode;
    for (int s = 0; s < ZONE_SECTIONS; s++)
        out[n++] = f.plan->nsets[s];
    out[n++] = f.plan->has_external;
    for (uint8_t s = 0; s < f.plan->nsets[ZONE_ANSWER]; s++) {
        const struct zone_rrset *r = f.plan->sets[s];
        memcpy(out + n, zone_rrset_data(r), r->len);
        n += r->len;
    }
    for (size_t i = 0; i < f.nptr; i++) {
        memcpy(out + n, f.ptr[i].target, f.ptr[i].target_len);
        n += f.ptr[i].target_len;
        memcpy(out + n, &f.ptr[i].ttl, 4);
        n += 4;
    }
    memcpy(out + n, f.rr ? f.rr : (const uint8_t *)"", f.rrlen);
    return n + f.rrlen;
}

static int mismatches;

/* What `z` answers, as TAP comments: its rcode, sets and PTR targets. */
static void print_found(const char *what, const struct zone *z, const uint8_t *name, size_t len,
                        uint16_t type)
{
    struct zone_found f;
    zone_find(z, name, len, type, &f);
    printf("#   %s: rcode %u, sets %u/%u/%u, %zu PTR:", what, f.plan->rcode,
           f.plan->nsets[ZONE_ANSWER], f.plan->nsets[ZONE_AUTHORITY],
           f.plan->nsets[ZONE_ADDITIONAL], f.nptr);
    for (size_t i = 0; i < f.nptr; i++) {
        const uint8_t *t = f.ptr[i].target;
        printf(" ");
        for (size_t p = 0; t[p] && p < f.ptr[i].target_len; p += (size_t)t[p] + 1)
            printf("%.*s.", t[p], (const char *)t + p + 1);
        printf("(%u)", f.ptr[i].ttl);
    }
    printf("\n");
}

/* Asks both zones `name` and its parents, up to the root, for the usual
 * types; reports the first difference. */
static void ask_both(const struct zone *a, const struct zone *b, const uint8_t *name, size_t len,
                     int round)
{
    static const uint16_t types[] = {LDNS_RR_TYPE_A,   LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_SRV,
                                     LDNS_RR_TYPE_TXT, LDNS_RR_TYPE_ANY,  LDNS_RR_TYPE_PTR};
    static uint8_t x[1 << 16], y[1 << 16];
    for (size_t at = 0; at < len && mismatches < 5; at += (size_t)name[at] + 1) {
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
            size_t nx = found_text(a, name + at, len - at, types[t], x);
            size_t ny = found_text(b, name + at, len - at, types[t], y);
            if (nx != ny || memcmp(x, y, nx) != 0) {
                char text[LDNS_MAX_DOMAINLEN * 4 + 1];
                size_t k = 0;
                for (size_t p = at; name[p] && k < sizeof(text) - 70; p += (size_t)name[p] + 1)
                    k += (size_t)snprintf(text + k, sizeof(text) - k, "%.*s.", name[p],
                                          (const char *)name + p + 1);
                ok(0, "round %d: %s type %u answers alike", round, text, types[t]);
                print_found("patch", a, name + at, len - at, types[t]);
                print_found("whole", b, name + at, len - at, types[t]);
                mismatches++;
            }
        }
    }
}

/* The owner of a walked record, and for A and AAAA the reverse name of
 * its address, asked of both zones. */
static void ask_records(const struct zone *a, const struct zone *b, uint8_t **v, size_t n,
                        int round)
{
    for (size_t i = 0; i < n && mismatches < 5; i++) {
        const uint8_t *rr = v[i] + 2;
        size_t len = 0;
        while (rr[len])
            len += (size_t)rr[len] + 1;
        len++;
        ask_both(a, b, rr, len, round);
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
            memcpy(rev + r,
                   "\x07in-addr\x04"
                   "arpa",
                   14);
            ask_both(a, b, rev, r + 14, round);
        } else if (type == LDNS_RR_TYPE_AAAA) {
            for (int k = 31; k >= 0; k--) {
                rev[r++] = 1;
                rev[r++] = (uint8_t) "0123456789abcdef"[(addr[k / 2] >> (k % 2 ? 0 : 4)) & 15];
            }
            memcpy(rev + r,
                   "\x03ip6\x04"
                   "arpa",
                   10);
            ask_both(a, b, rev, r + 10, round);
        }
    }
}

/* `patched` and `whole`, compiled from one text, serve alike; `before`
 * (the zone the patch replaced) adds the names it had. */
static void compare(const struct zone *patched, const struct zone *whole, const struct zone *before,
                    int round)
{
    const struct zone_stats *p = zone_stats(patched), *w = zone_stats(whole);
    is_int(p->services, w->services, "round %d: services", round);
    is_int(p->records, w->records, "round %d: records", round);
    is_int(p->names, w->names, "round %d: names", round);
    ok(p->digest == w->digest, "round %d: digest", round);
    size_t np, nw, nb;
    uint8_t **vp = walk(patched, &np), **vw = walk(whole, &nw), **vb = walk(before, &nb);
    bool same = np == nw;
    for (size_t i = 0; same && i < np; i++)
        same = cmp_rec(&vp[i], &vw[i]) == 0;
    ok(same, "round %d: a transfer has the same %zu records (patch: %zu)", round, nw, np);
    ask_records(patched, whole, vw, nw, round);
    ask_records(patched, whole, vp, np, round);
    ask_records(patched, whole, vb, nb, round);
    walk_free(vp, np);
    walk_free(vw, nw);
    walk_free(vb, nb);
}

static void test_rounds(void)
{
    static struct mapping m;
    static char text[NS_MAX * SVC_MAX * (VALUE_SIZE + 16) + 512];
    m.ttl = 30;
    for (int i = 0; i < NS_MAX / 2; i++) {
        m.ns_used[i] = true;
        for (int j = 0; j < SVC_MAX / 2; j++) {
            m.svc[i][j].used = true;
            random_value(&m, m.svc[i][j].value, false);
        }
    }
    text_of(&m, text, sizeof(text));
    time_t now = 1700000000;
    struct zone *running = zone_of_text("p.ini", text, NULL, now);
    struct zone *reference = zone_of_text("p.ini", text, NULL, now);
    ok(running && reference, "the first mapping compiles");
    int patches = 0, of_patches = 0;
    for (int round = 1; running && reference && round <= ROUNDS && mismatches < 5; round++) {
        edit(&m, round % 4 == 0);
        text_of(&m, text, sizeof(text));
        now += 60;
        struct zone *patched = zone_of_text("p.ini", text, running, now);
        struct zone *whole = zone_of_text_as("p.ini", text, reference, now, true);
        ok((patched == NULL) == (whole == NULL), "round %d: both compile, or neither", round);
        if (!patched || !whole) {
            zone_free(patched);
            zone_free(whole);
            continue;
        }
        const struct zone_stats *ps = zone_stats(patched);
        if (ps->compiled < ps->services) {
            patches++;
            of_patches += zone_stats(running)->compiled < zone_stats(running)->services;
        }
        compare(patched, whole, running, round);
        ok(ps->serial > zone_stats(running)->serial || (ps->digest == zone_stats(running)->digest &&
                                                        ps->serial == zone_stats(running)->serial),
           "round %d: the serial moves with the answers", round);
        zone_free(reference);
        zone_free(running);
        reference = whole;
        running = patched;
    }
    zone_free(reference);
    ok(patches > ROUNDS / 2, "most rounds were patches (%d of %d)", patches, ROUNDS);
    ok(of_patches > ROUNDS / 4, "many patched a patch (%d)", of_patches);
    zone_free(running);
}

/* A reload that changes nothing keeps the serial, and compiles nothing. */
static void test_nothing_changed(void)
{
    const char *text = "[server]\nzone = cluster.local\n[upstream]\nservers = none\n"
                       "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2, 10.0.0.3\n";
    struct zone *a = zone_of_text("p.ini", text, NULL, 1700000000);
    struct zone *b = zone_of_text("p.ini", text, a, 1700000100);
    ok(a && b, "both compile");
    if (a && b) {
        is_int(zone_stats(b)->serial, zone_stats(a)->serial, "the serial stays");
        is_int(zone_stats(b)->compiled, 0, "nothing is compiled");
        is_int(zone_stats(b)->services, 2, "two services");
    }
    zone_free(a);
    zone_free(b);
}

/* What a patch leaves to a whole compile: the reload of `before` by
 * `after` compiles every service. */
static void whole_when(const char *why, const char *before, const char *after)
{
    char a[1024], b[1024];
#define HEAD                                                                                       \
    "[server]\nzone = cluster.local\n%s[upstream]\nservers = none\n"                               \
    "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2:80, 10.0.0.3:80\n%s"
    bool ttl = strncmp(after, "ttl", 3) == 0;
    snprintf(a, sizeof(a), HEAD, "", before);
    snprintf(b, sizeof(b), HEAD, ttl ? after : "", ttl ? "" : after);
#undef HEAD
    struct zone *za = zone_of_text("p.ini", a, NULL, 1700000000);
    struct zone *zb = zone_of_text("p.ini", b, za, 1700000100);
    ok(za && zb, "%s: both compile", why);
    if (za && zb)
        is_int(zone_stats(zb)->compiled, zone_stats(zb)->services, "%s: compiled whole", why);
    zone_free(za);
    zone_free(zb);
}

static void test_whole(void)
{
    whole_when("another ttl", "", "ttl = 7\n");
    whole_when("a checked service changes", "c = 10.0.1.1:80, 10.0.1.9:80 check=tcp\n",
               "c = 10.0.1.2:80, 10.0.1.9:80 check=tcp\n");
    whole_when("a checked service comes", "", "c = 10.0.1.1:80, 10.0.1.9:80 check=tcp\n");
    whole_when("a checked service goes", "c = 10.0.1.1:80, 10.0.1.9:80 check=tcp\n", "");
    whole_when("a CNAME into the zone comes", "", "c = x.a.svc.cluster.local\n");
    whole_when("what a CNAME's chain holds changes", "c = z.a.svc.cluster.local\nz = 10.1.0.1\n",
               "c = z.a.svc.cluster.local\nz = 10.1.0.2\n");
    whole_when("the service of an endpoint a CNAME points at changes",
               "c = 10-0-0-5.w.a.svc.cluster.local\nw = 10.0.0.5, 10.0.0.6\n",
               "c = 10-0-0-5.w.a.svc.cluster.local\nw = 10.0.0.5, 10.0.0.7\n");
    whole_when("the service of an SRV name a CNAME points at goes",
               "c = _w._tcp.w.a.svc.cluster.local\nw = 10.0.0.5:80\n", "c = 10.0.0.9\n");

    /* and what it takes: a checked service left as it is */
    const char *text = "[server]\nzone = cluster.local\n[upstream]\nservers = none\n"
                       "[namespace a]\nc = 10.0.1.1:80, 10.0.1.9:80 check=tcp\nx = 10.0.0.1\n";
    struct zone *a = zone_of_text("p.ini", text, NULL, 1700000000);
    char changed[512];
    snprintf(changed, sizeof(changed), "%sy = 10.0.0.2\n", text);
    struct zone *b = zone_of_text("p.ini", changed, a, 1700000100);
    ok(a && b, "a checked service and another: both compile");
    if (a && b) {
        is_int(zone_stats(b)->compiled, 1, "one service added beside a checked one: a patch");
        size_t na, nb;
        zone_probes(a, &na);
        zone_probes(b, &nb);
        ok(na == 2 && zone_probes(a, &na) == zone_probes(b, &nb), "the patch shares the probes");
    }
    zone_free(a);
    zone_free(b);
}

int main(void)
{
    test_nothing_changed();
    test_whole();
    test_rounds();
    return done_testing();
}
