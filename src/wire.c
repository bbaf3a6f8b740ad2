/* wire.c -- DNS wire form: skipping names, names in a zone, records as libldns reads them. */
#include "svcmapd/wire.h"

#include <ldns/ldns.h>
#include <string.h>

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
    static const ldns_pkt_section sections[] = {LDNS_SECTION_QUESTION, LDNS_SECTION_ANSWER,
                                                LDNS_SECTION_AUTHORITY, LDNS_SECTION_ADDITIONAL};
    if (len < LDNS_HEADER_SIZE)
        return -1;
    size_t pos = LDNS_HEADER_SIZE;
    int count = 0;
    for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
        for (unsigned n = ldns_read_uint16(m + 4 + 2 * s); n > 0; n--) {
            ldns_rr *rr = NULL;
            if (ldns_wire2rr(&rr, m, len, &pos, sections[s]) != LDNS_STATUS_OK)
                return -1;
            if (sections[s] != LDNS_SECTION_QUESTION && ldns_rr_get_type(rr) == type)
                count++;
            ldns_rr_free(rr);
        }
    }
    return count;
}
