/* wire.c -- walking a DNS message's records without building them. */
#include "svcmapd/wire.h"

#include <ldns/ldns.h>

size_t wire_skip_name(const uint8_t *m, size_t len, size_t pos, bool *root)
{
    size_t total = 0;
    if (root)
        *root = pos < len && m[pos] == 0;
    for (;;) {
        if (pos >= len)
            return 0;
        uint8_t l = m[pos];
        if ((l & 0xc0) == 0xc0)
            return pos + 2 <= len ? pos + 2 : 0; /* a pointer ends the name */
        if (l > 63)
            return 0; /* extended label types: not a name we can skip */
        total += (size_t)l + 1;
        if (total > LDNS_MAX_DOMAINLEN || pos + 1 + l > len)
            return 0;
        pos += (size_t)l + 1;
        if (l == 0)
            return pos;
    }
}

int wire_count_type(const uint8_t *m, size_t len, uint16_t type)
{
    if (len < LDNS_HEADER_SIZE)
        return -1;
    size_t pos = LDNS_HEADER_SIZE;
    for (unsigned q = ldns_read_uint16(m + 4); q > 0; q--) {
        pos = wire_skip_name(m, len, pos, NULL);
        if (pos == 0 || len - pos < 4)
            return -1;
        pos += 4; /* type, class */
    }
    unsigned rrs =
        (unsigned)ldns_read_uint16(m + 6) + ldns_read_uint16(m + 8) + ldns_read_uint16(m + 10);
    int count = 0;
    for (; rrs > 0; rrs--) {
        pos = wire_skip_name(m, len, pos, NULL);
        if (pos == 0 || len - pos < 10)
            return -1;
        if (ldns_read_uint16(m + pos) == type)
            count++;
        size_t rdlen = ldns_read_uint16(m + pos + 8);
        pos += 10;
        if (len - pos < rdlen)
            return -1;
        pos += rdlen;
    }
    return count;
}
