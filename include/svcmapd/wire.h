/* wire.h -- DNS wire form: skipping names, names in a zone, records as libldns reads them. */
#ifndef SVCMAPD_WIRE_H
#define SVCMAPD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Skips the name at m[pos] (`len` bytes in all), which may end in a
 * compression pointer; the pointer is not followed. Returns the offset
 * after the name, or 0 if it is malformed or runs off the end. *root:
 * whether it is the root name (a single zero byte); NULL if not wanted. */
size_t wire_skip_name(const uint8_t *m, size_t len, size_t pos, bool *root);

/* Whether `name` (`len` bytes) is `apex` (`apex_len` bytes) or below it,
 * both uncompressed wire form in the same letter case. */
static inline bool wire_name_in(const uint8_t *name, size_t len, const uint8_t *apex,
                                size_t apex_len)
{
    if (apex_len == 0 || len < apex_len || memcmp(name + len - apex_len, apex, apex_len) != 0)
        return false;
    size_t pos = 0;
    while (pos < len - apex_len)
        pos += (size_t)name[pos] + 1;
    return pos == len - apex_len; /* the apex starts at a label */
}

/* The number of records of `type` in the answer, authority and additional
 * sections of the message `m` (`len` bytes, header included), each read
 * as ldns_wire2pkt() reads it; -1 if libldns cannot read one of them. All
 * the records the header counts are read: ldns_wire2pkt() stops one short
 * for each TSIG it meets, so it never sees more than are counted here.
 *
 * Used before ldns_wire2pkt(), which keeps the last TSIG record of a
 * message and leaks any before it. Its walk is not one by RDLENGTH: when
 * a record's fields end before its RDLENGTH does (a CNAME target of one
 * byte in twelve), it reads the rest as the next record. So a TSIG can
 * hide inside another record's rdata, and only libldns's own reading of
 * each record (ldns_wire2rr()) counts what ldns_wire2pkt() will see. */
int wire_count_type(const uint8_t *m, size_t len, uint16_t type);

#endif
