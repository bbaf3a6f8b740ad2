/* edns.h -- EDNS (RFC 6891) and DNS cookies (RFC 7873): a query's OPT read, a reply's written. */
#ifndef SVCMAPD_EDNS_H
#define SVCMAPD_EDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * The answer path's EDNS: what a query's OPT record asks, and the OPT of
 * its reply, with a server cookie (RFC 9018) when the query brought a
 * client cookie. Per query, like answer.c: bounds-checked, no allocation.
 */

#define EDNS_DO 0x8000 /* DNSSEC OK, in the flags (RFC 3225) */

#define EDNS_OPT_LEN       11 /* an OPT record without options */
#define EDNS_CLIENT_COOKIE 8
#define EDNS_SERVER_COOKIE 16 /* RFC 9018 §4: version, reserved, timestamp, hash */
#define EDNS_COOKIE_LEN    (4 + EDNS_CLIENT_COOKIE + EDNS_SERVER_COOKIE) /* the option */

/* What a query's OPT record says. */
struct edns {
    bool present; /* the query has one */
    uint8_t version;
    uint16_t udp_size;     /* the client's UDP payload size */
    uint16_t flags;        /* EDNS_DO */
    const uint8_t *cookie; /* the client cookie, 8 bytes in the query; NULL: none */
    bool bad_cookie;       /* a malformed COOKIE option: FORMERR (RFC 7873 §5.2.2) */
};

/* A query without an OPT record, before its additional section is read. */
static inline void edns_clear(struct edns *e)
{
    e->present = false;
    e->cookie = NULL;
    e->bad_cookie = false;
}

/*
 * Reads an OPT record of a query's additional section into `e`: `rr` is
 * the record after its owner name (type, class, TTL, RDLENGTH), followed
 * by `rdlen` bytes of RDATA that the caller has checked are there; `root`
 * says whether the owner is the root. False when the message is malformed
 * for it: a second OPT, an owner other than the root (RFC 6891 §6.1.1),
 * options that overrun the RDATA (§6.1.2). A COOKIE option of a wrong
 * length is not malformed here: it sets e->bad_cookie.
 */
bool edns_read(struct edns *e, const uint8_t *rr, size_t rdlen, bool root);

/* The bytes of the OPT record of the reply to a query with `e`: none
 * without one in the query. */
static inline size_t edns_reply_len(const struct edns *e)
{
    return e->present ? EDNS_OPT_LEN + (e->cookie ? EDNS_COOKIE_LEN : 0) : 0;
}

/*
 * Writes the OPT record of the reply (whose header starts at `out`) at
 * out+pos, for a query with an OPT (`e`), and adds it to ARCOUNT: the UDP
 * size we accept, `udp_max` (RFC 6891 §6.2.5), the upper bits of `rcode`
 * (extended: BADVERS is 16), version 0, DO copied (RFC 3225 §3), and for a
 * client cookie the COOKIE option: it, and a server cookie made with
 * `secret` for `peer`'s address (may be NULL). Returns the position after
 * it: pos + edns_reply_len(e).
 */
size_t edns_write(const struct edns *e, uint8_t *out, size_t pos, uint8_t rcode, uint16_t udp_max,
                  const uint8_t secret[16], const struct sockaddr *peer);

/* SipHash-2-4 (Aumasson, Bernstein) of `len` bytes at `m` under `key`: the
 * hash RFC 9018 names for server cookies. */
uint64_t edns_siphash24(const uint8_t key[16], const uint8_t *m, size_t len);

#endif
