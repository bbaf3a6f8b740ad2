/* reply_check.c -- the rules every reply of answer_query() keeps, and what the fuzz targets share.
 */
#include "fuzz.h"

#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "svcmapd/config.h"
#include "svcmapd/load.h"
#include "svcmapd/wire.h"
#include "svcmapd/xfr.h"
#include "svcmapd/zone.h"

/*
 * A fuzz target finds only what it checks: ASan and UBSan catch memory and
 * arithmetic errors, these checks catch replies that are wrong on the wire.
 * ldns is the independent decoder, as in the unit tests. A failed check
 * prints what broke and abort()s, which libFuzzer saves as a crash input.
 */

#define HDR 12

#define FAIL(...) fuzz_fail("reply check failed: " __VA_ARGS__)

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* One IPv4 address, a link-local IPv6 one (never given out) and another. */
static const uint8_t host4[][4] = {{192, 0, 2, 53}};
static const uint8_t host6[][16] = {{0xfe, 0x80, [15] = 1}, {0x20, 0x01, 0x0d, 0xb8, [15] = 0x53}};
const struct zone_host fuzz_host = {host4, 1, host6, 2};

struct zone *fuzz_fixed_zone(const char *text, size_t len)
{
    struct load l;
    load_init(&l, "fixed zone");
    if (!load_text(&l, text, len, NULL, &fuzz_host, 1700000000) || l.diag.errors || l.diag.warnings)
        fuzz_fail("the fixed zone does not compile cleanly:\n%.*s", (int)l.diag.len,
                  l.diag.text ? l.diag.text : "");
    struct zone *z = l.zone;
    l.zone = NULL;
    load_finish(&l);
    return z;
}

int fuzz_memory_file(const void *data, size_t size)
{
    int fd = memfd_create("fuzz.ini", MFD_CLOEXEC);
    if (fd < 0)
        fuzz_fail("memfd_create failed");
    for (size_t done = 0; done < size;) {
        ssize_t w = write(fd, (const uint8_t *)data + done, size - done);
        if (w <= 0)
            fuzz_fail("cannot write the memory file");
        done += (size_t)w;
    }
    return fd;
}

bool fuzz_opens_device(const uint8_t *data, size_t size)
{
    static const char *const bad[] = {"/dev", "/proc", "/sys", "/run"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (memmem(data, size, bad[i], strlen(bad[i])))
            return true;
    return false;
}

void fuzz_check_diag(const struct diag *d, const char *file)
{
    size_t flen = strlen(file);
    size_t lines = 0;
    for (size_t pos = 0; pos < d->len;) {
        const char *line = d->text + pos;
        const char *nl = memchr(line, '\n', d->len - pos);
        if (!nl)
            fuzz_fail("diagnostics do not end in a newline");
        if ((size_t)(nl - line) <= flen || memcmp(line, file, flen) != 0 || line[flen] != ':')
            fuzz_fail("diagnostic line %zu does not start with '%s:': %.*s", lines + 1, file,
                      (int)(nl - line), line);
        lines++;
        pos = (size_t)(nl - d->text) + 1;
    }
    /* diag.c keeps the first DIAG_MAX_STORED and counts the rest */
    if (lines + d->dropped != d->errors + d->warnings)
        fuzz_fail("%zu lines and %u dropped for %u errors and %u warnings", lines, d->dropped,
                  d->errors, d->warnings);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Length of the question at `m`+HDR (an uncompressed name, type, class),
 * or 0 if it does not fit in `len` bytes. */
static size_t question_len(const uint8_t *m, size_t len)
{
    size_t pos = HDR;
    for (;;) {
        if (pos >= len || m[pos] > 63)
            return 0;
        uint8_t l = m[pos];
        pos += (size_t)l + 1;
        if (l == 0)
            break;
    }
    return pos + 4 <= len ? pos + 4 - HDR : 0;
}

static void check_parsed(const uint8_t *query, size_t qlen, const uint8_t *reply, size_t n,
                         bool tcp, const struct zone *z)
{
    ldns_pkt *qp = NULL, *rp = NULL;
    bool must_parse = get16(reply + 4) == 0; /* no question: every byte is ours */
    /* Not a query with two TSIG records, nor one we cannot walk: libldns
     * can leak a TSIG record there (wire.h). */
    int tsigs = wire_count_type(query, qlen, LDNS_RR_TYPE_TSIG);
    if (tsigs >= 0 && tsigs <= 1 && ldns_wire2pkt(&qp, query, qlen) == LDNS_STATUS_OK &&
        ldns_pkt_qdcount(qp) == 1)
        must_parse = true;

    ldns_status st = ldns_wire2pkt(&rp, reply, n);
    if (st != LDNS_STATUS_OK) {
        if (must_parse)
            FAIL("ldns cannot parse the reply (%zu bytes): %s", n, ldns_get_errorstr_by_id(st));
        goto done;
    }
    /* Without an OPT, a UDP reply fits 512 bytes (RFC 1035 §4.2.1). */
    if (!tcp && !ldns_pkt_edns(rp) && n > ANSWER_UDP_PLAIN)
        FAIL("UDP reply of %zu bytes without EDNS", n);
    /* With one, at most what the client offered, capped at ours
     * (RFC 6891 §6.2.5), never under 512. */
    if (!tcp && qp && ldns_pkt_edns(qp) && ldns_pkt_edns(rp)) {
        size_t limit = ldns_pkt_edns_udp_size(qp);
        if (limit > zone_settings(z)->udp_max)
            limit = zone_settings(z)->udp_max;
        if (limit < ANSWER_UDP_PLAIN)
            limit = ANSWER_UDP_PLAIN;
        if (n > limit)
            FAIL("UDP reply of %zu bytes, over the %zu the client and we allow", n, limit);
    }
done:
    ldns_pkt_free(qp);
    ldns_pkt_free(rp);
}

/*
 * A UDP reply with TC=1 (SPEC §3): as many whole answer records as fit, each
 * one of the full answer (the same query over TCP), the leading CNAMEs
 * those of the full answer in its order; nothing in authority or
 * additional but the OPT. ldns reads the records by their RDLENGTH, so a
 * record cut short fails to parse.
 */
static void check_truncated(struct answer_ctx *ctx, const struct zone *z, const uint8_t *query,
                            size_t qlen, const struct sockaddr *peer, const uint8_t *reply,
                            size_t n)
{
    ldns_pkt *tc = NULL, *all = NULL;
    uint8_t *full = malloc(ANSWER_TCP_MAX);
    if (!full)
        abort();
    if (ldns_wire2pkt(&tc, reply, n) != LDNS_STATUS_OK)
        goto done; /* check_parsed() has judged that */
    if (ldns_pkt_nscount(tc) || ldns_pkt_arcount(tc))
        FAIL("TC reply with %u authority and %u additional records", ldns_pkt_nscount(tc),
             ldns_pkt_arcount(tc));

    uint64_t rng = ctx->rng; /* the caller's shuffle stays as it was */
    struct answer_info info;
    answer_query(ctx, z, query, qlen, true, peer, full, ANSWER_TCP_MAX, &info);
    size_t fn = info.len;
    ctx->rng = rng;
    if (ldns_wire2pkt(&all, full, fn) != LDNS_STATUS_OK)
        FAIL("the full answer (over TCP) to a truncated one does not parse");
    if (ldns_pkt_get_rcode(all) != ldns_pkt_get_rcode(tc))
        FAIL("TC reply with rcode %d, the full answer %d", ldns_pkt_get_rcode(tc),
             ldns_pkt_get_rcode(all));

    const ldns_rr_list *part = ldns_pkt_answer(tc), *whole = ldns_pkt_answer(all);
    size_t np = ldns_rr_list_rr_count(part), nw = ldns_rr_list_rr_count(whole);
    /* all of them only when the authority section did not fit */
    if (np > nw || (np == nw && ldns_pkt_nscount(all) == 0 && !ldns_pkt_tc(all)))
        FAIL("TC reply with %zu of %zu answer records", np, nw);
    bool used[1024] = {false};
    bool leading = true; /* still in the full answer's leading CNAMEs */
    for (size_t i = 0; i < np && i < sizeof(used); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(part, i);
        leading = leading && ldns_rr_get_type(ldns_rr_list_rr(whole, i)) == LDNS_RR_TYPE_CNAME;
        if (leading && ldns_rr_compare(rr, ldns_rr_list_rr(whole, i)) != 0)
            FAIL("TC reply: record %zu is not the full answer's CNAME %zu", i, i);
        size_t k = 0;
        while (k < nw && k < sizeof(used) &&
               (used[k] || ldns_rr_compare(rr, ldns_rr_list_rr(whole, k)) != 0))
            k++;
        if (k == nw || k == sizeof(used))
            FAIL("TC reply: answer record %zu is not one of the full answer", i);
        used[k] = true;
    }
done:
    ldns_pkt_free(tc);
    ldns_pkt_free(all);
    free(full);
}

/* The zone's own reply to a TCP query for `owner` and `type`, parsed. */
static ldns_pkt *mapping_reply(const struct zone *z, const ldns_rdf *owner, ldns_rr_type type)
{
    ldns_rdf *name = ldns_rdf_clone(owner);
    ldns_pkt *q = name ? ldns_pkt_query_new(name, type, LDNS_RR_CLASS_IN, 0) : NULL;
    uint8_t *wire = NULL;
    size_t wlen = 0;
    if (!q || ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK)
        abort();
    ldns_pkt_free(q);
    struct answer_ctx ctx = {.up = NULL, .no_wait = true}; /* nothing to wait for */
    answer_init(&ctx);
    uint8_t *reply = malloc(ANSWER_TCP_MAX);
    if (!reply)
        abort();
    struct answer_info info;
    enum answer_result r =
        answer_query(&ctx, z, wire, wlen, true, NULL, reply, ANSWER_TCP_MAX, &info);
    ldns_pkt *p = NULL;
    if (r != ANSWER_REPLY || ldns_wire2pkt(&p, reply, info.len) != LDNS_STATUS_OK)
        FAIL("no reply of the zone's own to a query for one of its names");
    free(reply);
    free(wire);
    return p;
}

/* Whether `p` has `rr`, its TTL too, but for the TTL 0 of a CNAME that an
 * answer stops at. */
static bool holds(const ldns_pkt *p, const ldns_rr *rr)
{
    ldns_rr_list *l = ldns_pkt_all_noquestion(p);
    bool found = false;
    for (size_t i = 0; i < ldns_rr_list_rr_count(l) && !found; i++) {
        const ldns_rr *m = ldns_rr_list_rr(l, i);
        found = ldns_rr_compare(m, rr) == 0 &&
                (ldns_rr_ttl(m) == ldns_rr_ttl(rr) ||
                 (ldns_rr_ttl(rr) == 0 && ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME));
    }
    ldns_rr_list_deep_free(l);
    return found;
}

void fuzz_check_zone_records(const struct zone *z, const uint8_t *reply, size_t n)
{
    ldns_pkt *p = NULL;
    ldns_rdf *apex = ldns_dname_new_frm_str(zone_name(z));
    if (!apex || ldns_wire2pkt(&p, reply, n) != LDNS_STATUS_OK)
        FAIL("ldns cannot parse the reply (%zu bytes)", n);
    ldns_rr_list *all = ldns_pkt_all_noquestion(p);
    for (size_t i = 0; i < ldns_rr_list_rr_count(all); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(all, i);
        const ldns_rdf *owner = ldns_rr_owner(rr);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_OPT ||
            (ldns_dname_compare(owner, apex) != 0 && !ldns_dname_is_subdomain(owner, apex)))
            continue;
        ldns_pkt *m = mapping_reply(z, owner, ldns_rr_get_type(rr));
        if (!holds(m, rr)) {
            char *text = ldns_rr2str(rr);
            FAIL("a record of the zone that the mapping does not give: %s", text ? text : "?");
        }
        ldns_pkt_free(m);
    }
    ldns_rr_list_deep_free(all);
    ldns_pkt_free(p);
    ldns_rdf_deep_free(apex);
}

/* Whether `l` holds a record equal to `rr` (TTL too) before index `end`. */
static bool seen_before(const ldns_rr_list *l, size_t end, const ldns_rr *rr)
{
    for (size_t i = 0; i < end; i++)
        if (ldns_rr_compare(ldns_rr_list_rr(l, i), rr) == 0)
            return true;
    return false;
}

/* The last zone whose transfer was checked record by record, and the bytes
 * of its records as the messages carried them (every message's but the
 * first's header and question and the first's OPT). A transfer of the same
 * zone again (the fixed zone of fuzz_answer, asked with another ID, case
 * or OPT) must carry the same bytes: the question is the apex, always of
 * one length, so every compression pointer lands where it did. Then only
 * the headers are read: ldns read these bytes once. A zone may be freed and
 * another compiled at its address: its digest says whether it answers the
 * same. */
static struct {
    const struct zone *z;
    uint64_t digest;
    uint32_t serial;
    uint8_t *bytes;
    size_t len;
} checked;

/* Every record of a transfer (`all`, the SOA first and last) but the last
 * SOA once, and each what the zone answers for its name and type. */
static void check_records_once(const struct zone *z, const ldns_rr_list *all)
{
    /* A transfer carries every target of a checked service (SPEC §8), which
     * is what its answers hold when none is up (SPEC §6: never empty because
     * of checks): the probes go down for the check, then back as they were. */
    size_t nprobes;
    struct zone_probe *probes = zone_probes(z, &nprobes);
    bool *was = calloc(nprobes + 1, sizeof(*was));
    if (!was)
        abort();
    for (size_t i = 0; i < nprobes; i++) {
        was[i] = atomic_load(&probes[i].up);
        zone_probe_set_up(z, &probes[i], false);
    }
    size_t n = ldns_rr_list_rr_count(all);
    if (n < 2 || ldns_rr_get_type(ldns_rr_list_rr(all, 0)) != LDNS_RR_TYPE_SOA ||
        ldns_rr_compare(ldns_rr_list_rr(all, 0), ldns_rr_list_rr(all, n - 1)) != 0)
        FAIL("a transfer of %zu records without the SOA first and last", n);
    for (size_t i = 0; i + 1 < n; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(all, i);
        if ((i > 0 && ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA) || seen_before(all, i, rr)) {
            char *text = ldns_rr2str(rr);
            FAIL("a transfer has twice: %s", text ? text : "?");
        }
        ldns_pkt *m = mapping_reply(z, ldns_rr_owner(rr), ldns_rr_get_type(rr));
        if (!holds(m, rr)) {
            char *text = ldns_rr2str(rr);
            FAIL("a transferred record the zone does not answer: %s", text ? text : "?");
        }
        ldns_pkt_free(m);
    }
    for (size_t i = 0; i < nprobes; i++)
        zone_probe_set_up(z, &probes[i], was[i]);
    free(was);
}

void fuzz_check_transfer(const struct zone *z, const uint8_t *first, size_t len)
{
    struct xfr *x = xfr_new(z, first, len);
    size_t qlen = question_len(first, len);
    if (!x || qlen == 0)
        FAIL("no transfer of %zu bytes of first message", len);
    size_t opt = len - HDR - qlen;
    const struct zone_stats *st = zone_stats(z);
    bool known = checked.bytes && checked.z == z && checked.digest == st->digest &&
                 checked.serial == st->serial;
    uint8_t *out = malloc(ANSWER_TCP_MAX);
    ldns_rr_list *all = known ? NULL : ldns_rr_list_new();
    size_t cap = 1 << 16, used = 0;
    uint8_t *bytes = malloc(cap);
    if (!out || (!known && !all) || !bytes)
        abort();
    size_t messages = 0, records = 0;
    for (size_t n; (n = xfr_next(x, out, ANSWER_TCP_MAX)) > 0; messages++) {
        /* RFC 5936 §2.2: the query's ID, AA, NOERROR, its question in the first only */
        if (n < HDR || n > XFR_MESSAGE_FILL + HDR + qlen + opt || get16(out) != get16(first) ||
            !(out[2] & 0x80) || (out[2] & 0x78) || !(out[2] & 0x04) || (out[3] & 0x0f) ||
            get16(out + 4) != (messages == 0) || get16(out + 8) != 0 ||
            get16(out + 10) != (messages == 0 ? get16(first + 10) : 0))
            FAIL("transfer message %zu (%zu bytes): header %02x%02x, %u questions, %u authority, "
                 "%u additional",
                 messages, n, out[2], out[3], get16(out + 4), get16(out + 8), get16(out + 10));
        if (messages == 0 && (memcmp(out + HDR, first + HDR, qlen) != 0 ||
                              memcmp(out + n - opt, first + HDR + qlen, opt) != 0))
            FAIL("the first transfer message's question or OPT is not the query's");
        records += get16(out + 6);
        size_t from = messages == 0 ? HDR + qlen : HDR, to = messages == 0 ? n - opt : n;
        while (used + (to - from) > cap)
            bytes = realloc(bytes, cap *= 2);
        if (!bytes)
            abort();
        memcpy(bytes + used, out + from, to - from);
        used += to - from;
        if (known)
            continue;
        ldns_pkt *p = NULL;
        if (ldns_wire2pkt(&p, out, n) != LDNS_STATUS_OK)
            FAIL("transfer message %zu (%zu bytes) unreadable", messages, n);
        const ldns_rr_list *an = ldns_pkt_answer(p);
        for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++)
            ldns_rr_list_push_rr(all, ldns_rr_clone(ldns_rr_list_rr(an, i)));
        ldns_pkt_free(p);
    }
    if (known) {
        if (used != checked.len || memcmp(bytes, checked.bytes, used) != 0)
            FAIL("a transfer of the zone unlike its first (%zu bytes of records, then %zu)",
                 checked.len, used);
        free(bytes);
    } else {
        check_records_once(z, all);
        ldns_rr_list_deep_free(all);
        free(checked.bytes);
        checked.z = z;
        checked.digest = st->digest;
        checked.serial = st->serial;
        checked.bytes = bytes;
        checked.len = used;
    }
    if (xfr_progress(x)->records != records || xfr_progress(x)->messages != messages)
        FAIL("transfer progress: %llu records, %llu messages; sent %zu, %zu",
             (unsigned long long)xfr_progress(x)->records,
             (unsigned long long)xfr_progress(x)->messages, records, messages);
    free(out);
    xfr_free(x);
}

size_t fuzz_answer_checked(struct answer_ctx *ctx, const struct zone *z, const uint8_t *query,
                           size_t qlen, bool tcp, const struct sockaddr *peer)
{
    /* Exactly the buffer the server gives: ASan then sees one byte over. */
    size_t cap = tcp ? ANSWER_TCP_MAX : ANSWER_UDP_MAX;
    uint8_t *reply = malloc(cap);
    if (!reply)
        abort();
    struct answer_info info;
    enum answer_result r = answer_query(ctx, z, query, qlen, tcp, peer, reply, cap, &info);
    size_t n = info.len;

    /* No upstream in the context: nothing may wait for a lookup. */
    if (r == ANSWER_DEFERRED)
        FAIL("deferred without an upstream");
    /* answer.h: nothing is sent exactly for a short message or a response,
     * and a reply is never empty. */
    bool silent = qlen < HDR || (query[2] & 0x80);
    if (silent != (r == ANSWER_NONE) || (r != ANSWER_NONE) != (n > 0))
        FAIL("%zu-byte reply (result %d) to a %zu-byte message with QR=%d", n, (int)r, qlen,
             qlen >= 3 ? query[2] >> 7 : -1);
    if (n == 0)
        goto done;

    if (n > cap)
        FAIL("reply of %zu bytes in a %zu-byte buffer", n, cap);
    if (!tcp && n > zone_settings(z)->udp_max)
        FAIL("UDP reply of %zu bytes, over udp-max-size %u", n, zone_settings(z)->udp_max);
    if (n < HDR)
        FAIL("reply of %zu bytes, shorter than a header", n);
    if (get16(reply) != get16(query))
        FAIL("reply ID %u, query ID %u", get16(reply), get16(query));
    if (!(reply[2] & 0x80))
        FAIL("reply without QR");
    if ((reply[2] & 0x78) != (query[2] & 0x78))
        FAIL("reply opcode %u, query opcode %u", (reply[2] >> 3) & 15, (query[2] >> 3) & 15);
    if (tcp && (reply[2] & 0x02))
        FAIL("TC=1 over TCP");

    uint16_t qd = get16(reply + 4);
    if (qd > 1)
        FAIL("QDCOUNT %u", qd);
    if (qd == 1) {
        /* the query's own question, byte for byte (0x20 case included) */
        size_t rq = question_len(reply, n);
        if (rq == 0)
            FAIL("QDCOUNT 1 but no whole question in the reply");
        if (get16(query + 4) != 1 || qlen < HDR + rq || memcmp(reply + HDR, query + HDR, rq) != 0)
            FAIL("the reply's question is not the query's");
    }

    check_parsed(query, qlen, reply, n, tcp, z);
    if (reply[2] & 0x02)
        check_truncated(ctx, z, query, qlen, peer, reply, n);
    if (r == ANSWER_TRANSFER) {
        /* SPEC §8: over TCP, to a client [transfer] allow names, of the apex */
        uint16_t qtype = get16(reply + HDR + question_len(reply, n) - 4);
        if (!tcp || !xfr_allowed(zone_settings(z), peer) ||
            (qtype != LDNS_RR_TYPE_AXFR && qtype != LDNS_RR_TYPE_IXFR) || get16(reply + 6) ||
            (reply[3] & 0x0f))
            FAIL("a transfer of type %u (tcp %d) begins, its frame rcode %u with %u answers", qtype,
                 tcp, reply[3] & 0x0f, get16(reply + 6));
        fuzz_check_transfer(z, reply, n);
    }
done:
    free(reply);
    return n;
}
