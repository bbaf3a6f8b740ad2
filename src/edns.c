/* edns.c -- EDNS (RFC 6891) and DNS cookies (RFC 7873): a query's OPT read, a reply's written. */
#include "svcmapd/edns.h"

#include <ldns/ldns.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#define OPT_COOKIE 10 /* the COOKIE option's code (RFC 7873 §4) */

/* Checks the OPT RDATA, a sequence of {code, length, data} (RFC 6891
 * §6.1.2), and finds a COOKIE option: 8 bytes of client cookie, optionally
 * followed by 8 to 32 of server cookie; any other length is malformed
 * (RFC 7873 §5.2.2), and so is a second one. Other options are ignored. */
static bool read_options(const uint8_t *p, size_t len, struct edns *e)
{
    size_t pos = 0;
    while (pos < len) {
        if (len - pos < 4)
            return false;
        uint16_t code = ldns_read_uint16(p + pos);
        size_t olen = ldns_read_uint16(p + pos + 2);
        if (len - pos - 4 < olen)
            return false;
        if (code == OPT_COOKIE) {
            if (e->cookie || olen < EDNS_CLIENT_COOKIE ||
                (olen > EDNS_CLIENT_COOKIE && olen < 16) || olen > 40)
                e->bad_cookie = true;
            else
                e->cookie = p + pos + 4;
        }
        pos += 4 + olen;
    }
    return true;
}

bool edns_read(struct edns *e, const uint8_t *rr, size_t rdlen, bool root)
{
    if (e->present || !root)
        return false; /* RFC 6891 §6.1.1: one OPT, owner "." */
    if (!read_options(rr + 10, rdlen, e))
        return false;
    e->present = true;
    e->udp_size = ldns_read_uint16(rr + 2); /* in the CLASS field */
    e->version = rr[5];                     /* TTL: extended RCODE, version, flags */
    e->flags = ldns_read_uint16(rr + 6);
    return true;
}

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

uint64_t edns_siphash24(const uint8_t key[16], const uint8_t *m, size_t len)
{
    uint64_t k0, k1;
    memcpy(&k0, key, 8);
    memcpy(&k1, key + 8, 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                                  \
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                                  \
    } while (0)
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--)
            w = w << 8 | m[i + (size_t)k];
        v3 ^= w;
        SIPROUND;
        SIPROUND;
        v0 ^= w;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t k = 0; i + k < len; k++)
        b |= (uint64_t)m[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
#undef SIPROUND
    return v0 ^ v1 ^ v2 ^ v3;
}

/* A server cookie for this client (RFC 9018 §4): version 1, reserved,
 * the time, and a hash of them with the client cookie and address. We
 * hand one out with every answer to a query that has a client cookie, and
 * never require one back, so no query is refused for its cookie. */
static void put_server_cookie(const uint8_t *cookie, const uint8_t secret[16],
                              const struct sockaddr *peer, uint8_t *out)
{
    uint8_t in[EDNS_CLIENT_COOKIE + 8 + 16];
    size_t n = 0;
    uint32_t now = (uint32_t)time(NULL);
    memcpy(in, cookie, EDNS_CLIENT_COOKIE);
    n += EDNS_CLIENT_COOKIE;
    in[n++] = 1; /* version */
    in[n++] = 0;
    in[n++] = 0;
    in[n++] = 0;
    in[n++] = (uint8_t)(now >> 24);
    in[n++] = (uint8_t)(now >> 16);
    in[n++] = (uint8_t)(now >> 8);
    in[n++] = (uint8_t)now;
    memcpy(out, in + EDNS_CLIENT_COOKIE, 8);
    if (peer && peer->sa_family == AF_INET6) {
        memcpy(in + n, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, 16);
        n += 16;
    } else if (peer && peer->sa_family == AF_INET) {
        memcpy(in + n, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
        n += 4;
    }
    uint64_t h = edns_siphash24(secret, in, n);
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(h >> (8 * i));
}

size_t edns_write(const struct edns *e, uint8_t *out, size_t pos, uint8_t rcode, uint16_t udp_max,
                  const uint8_t secret[16], const struct sockaddr *peer)
{
    out[pos] = 0; /* root owner */
    ldns_write_uint16(out + pos + 1, LDNS_RR_TYPE_OPT);
    ldns_write_uint16(out + pos + 3, udp_max); /* what we accept, RFC 6891 §6.2.5 */
    out[pos + 5] = (uint8_t)(rcode >> 4);      /* extended RCODE, upper bits */
    out[pos + 6] = 0;                          /* version 0 */
    ldns_write_uint16(out + pos + 7, (uint16_t)(e->flags & EDNS_DO)); /* RFC 3225 §3: copy DO */
    size_t rdlen = 0;
    if (e->cookie) {
        uint8_t *o = out + pos + EDNS_OPT_LEN;
        ldns_write_uint16(o, OPT_COOKIE);
        ldns_write_uint16(o + 2, EDNS_CLIENT_COOKIE + EDNS_SERVER_COOKIE);
        memcpy(o + 4, e->cookie, EDNS_CLIENT_COOKIE);
        put_server_cookie(e->cookie, secret, peer, o + 4 + EDNS_CLIENT_COOKIE);
        rdlen = EDNS_COOKIE_LEN;
    }
    ldns_write_uint16(out + pos + 9, (uint16_t)rdlen);
    ldns_write_uint16(out + 10, (uint16_t)(ldns_read_uint16(out + 10) + 1));
    return pos + EDNS_OPT_LEN + rdlen;
}
