/* test_edns.c -- OPT records read and written, and the server cookie's SipHash (edns.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "svcmapd/edns.h"
#include "tap.h"

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* SipHash-2-4 against the reference vectors of its paper (key 00..0f,
 * message 00..len-1). */
static void test_siphash(void)
{
    uint8_t key[16], m[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        m[i] = (uint8_t)i;
    ok(edns_siphash24(key, m, 0) == 0x726fdb47dd0e0e31ULL, "siphash of nothing");
    ok(edns_siphash24(key, m, 8) == 0x93f5f5799a932462ULL, "siphash of one word");
    ok(edns_siphash24(key, m, 15) == 0xa129ca6149be45e5ULL, "siphash of 15 bytes (the paper's)");
    ok(edns_siphash24(key, m, 63) == 0x958a324ceb064572ULL, "siphash of 63 bytes");
}

/* An OPT record after its owner: type, class (the UDP size), TTL, RDLENGTH,
 * then `rdlen` bytes of options copied from `opts`. */
static size_t opt_rr(uint8_t *rr, uint16_t size, uint8_t version, uint16_t flags,
                     const uint8_t *opts, size_t rdlen)
{
    const uint8_t head[10] = {0,
                              41,
                              (uint8_t)(size >> 8),
                              (uint8_t)size,
                              0,
                              version,
                              (uint8_t)(flags >> 8),
                              (uint8_t)flags,
                              (uint8_t)(rdlen >> 8),
                              (uint8_t)rdlen};
    memcpy(rr, head, 10);
    if (rdlen)
        memcpy(rr + 10, opts, rdlen); /* opts may be NULL then */
    return 10 + rdlen;
}

/* A COOKIE option of `len` bytes of data (1, 2, 3...) at `o`. */
static size_t cookie_opt(uint8_t *o, size_t len)
{
    o[0] = 0;
    o[1] = 10;
    o[2] = (uint8_t)(len >> 8);
    o[3] = (uint8_t)len;
    for (size_t i = 0; i < len; i++)
        o[4 + i] = (uint8_t)(i + 1);
    return 4 + len;
}

/* edns_read() on an OPT with these options: its result, and `e` (which
 * points into the record until the next call). */
static bool read_opt(struct edns *e, const uint8_t *opts, size_t n, bool root)
{
    static uint8_t rr[512];
    opt_rr(rr, 1232, 0, EDNS_DO, opts, n);
    edns_clear(e);
    return edns_read(e, rr, n, root);
}

static void test_read(void)
{
    struct edns e;
    uint8_t rr[64], o[128];
    opt_rr(rr, 4096, 1, 0x8000, NULL, 0);
    edns_clear(&e);
    ok(edns_read(&e, rr, 0, true) && e.present, "an OPT without options");
    is_int(e.udp_size, 4096, "its UDP size, from the class");
    is_int(e.version, 1, "its version, from the TTL");
    is_int(e.flags, EDNS_DO, "its flags: DO");
    ok(!e.cookie && !e.bad_cookie, "no cookie");
    ok(!edns_read(&e, rr, 0, true), "a second OPT is malformed (RFC 6891 §6.1.1)");
    edns_clear(&e);
    ok(!edns_read(&e, rr, 0, false), "an OPT not owned by the root is malformed");

    size_t n = cookie_opt(o, 8);
    ok(read_opt(&e, o, n, true) && e.cookie && !e.bad_cookie, "a client cookie");
    ok(e.cookie && e.cookie[0] == 1 && e.cookie[7] == 8, "the cookie points at its 8 bytes");
    n = cookie_opt(o, 8 + 16);
    ok(read_opt(&e, o, n, true) && e.cookie && !e.bad_cookie, "with a server cookie of 16");
    n = cookie_opt(o, 40);
    ok(read_opt(&e, o, n, true) && e.cookie && !e.bad_cookie, "with a server cookie of 32");
    static const size_t bad[] = {0, 7, 9, 15, 41};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = cookie_opt(o, bad[i]);
        ok(read_opt(&e, o, n, true) && !e.cookie && e.bad_cookie,
           "a cookie of %zu bytes is bad (RFC 7873 §5.2.2), the OPT readable", bad[i]);
    }
    n = cookie_opt(o, 8);
    n += cookie_opt(o + n, 8);
    ok(read_opt(&e, o, n, true) && e.bad_cookie, "two cookies are bad");

    static const uint8_t other[] = {0, 8, 0, 2, 0, 1, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    ok(read_opt(&e, other, sizeof(other), true) && e.cookie, "another option is skipped");
    ok(!read_opt(&e, other, 3, true), "an option header cut short is malformed");
    ok(!read_opt(&e, other, 5, true), "an option overrunning its RDATA is malformed");
}

static void test_write(void)
{
    uint8_t out[128] = {0}, secret[16] = {7};
    struct edns e;
    edns_clear(&e);
    e.present = true;
    e.flags = EDNS_DO | 0x4000; /* an unknown flag is not copied */
    ok(edns_reply_len(&e) == EDNS_OPT_LEN, "an OPT without a cookie: 11 bytes");
    size_t end = edns_write(&e, out, 20, 16, 1232, secret, NULL);
    is_int(end, 20 + EDNS_OPT_LEN, "written at the position given");
    is_int(get16(out + 10), 1, "ARCOUNT counts it");
    ok(out[20] == 0 && get16(out + 21) == 41, "owner root, type OPT");
    is_int(get16(out + 23), 1232, "the UDP size we accept (RFC 6891 §6.2.5)");
    is_int(out[25], 1, "BADVERS's upper bits in the extended RCODE");
    is_int(out[26], 0, "version 0");
    is_int(get16(out + 27), EDNS_DO, "DO copied, nothing else (RFC 3225 §3)");
    is_int(get16(out + 29), 0, "no options");

    uint8_t cookie[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    e.cookie = cookie;
    struct sockaddr_in a = {.sin_family = AF_INET}, b = a;
    inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
    inet_pton(AF_INET, "192.0.2.2", &b.sin_addr);
    uint8_t one[128], two[128], three[128];
    time_t t0, t1;
    size_t n1;
    do { /* within one second: the cookie holds the time */
        memset(one, 0, sizeof(one));
        memset(two, 0, sizeof(two));
        memset(three, 0, sizeof(three));
        t0 = time(NULL);
        n1 = edns_write(&e, one, 12, 0, 1232, secret, (const struct sockaddr *)&a);
        edns_write(&e, two, 12, 0, 1232, secret, (const struct sockaddr *)&a);
        edns_write(&e, three, 12, 0, 1232, secret, (const struct sockaddr *)&b);
        t1 = time(NULL);
    } while (t0 != t1);
    is_int(n1, 12 + edns_reply_len(&e), "an OPT with a cookie: as long as said");
    is_int(edns_reply_len(&e), EDNS_OPT_LEN + EDNS_COOKIE_LEN, "11 bytes and the option");
    const uint8_t *o = one + 12 + EDNS_OPT_LEN;
    ok(get16(one + 12 + 9) == EDNS_COOKIE_LEN && get16(o) == 10 && get16(o + 2) == 24,
       "one COOKIE option of 24 bytes");
    ok(memcmp(o + 4, cookie, 8) == 0, "the client cookie echoed");
    ok(o[12] == 1 && o[13] == 0 && o[14] == 0 && o[15] == 0, "server cookie version 1 (RFC 9018)");
    uint32_t ts = (uint32_t)(o[16] << 24 | o[17] << 16 | o[18] << 8 | o[19]);
    is_int(ts, (uint32_t)t0, "its timestamp is now");
    ok(memcmp(one, two, sizeof(one)) == 0, "the same client gets the same cookie");
    ok(memcmp(o + 20, three + 12 + EDNS_OPT_LEN + 20, 8) != 0, "another address gets another hash");
    ok(memcmp(o, three + 12 + EDNS_OPT_LEN, 20) == 0, "and the same rest");
}

int main(void)
{
    test_siphash();
    test_read();
    test_write();
    return done_testing();
}
