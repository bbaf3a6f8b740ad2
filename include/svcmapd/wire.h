/* wire.h -- walking a DNS message's records without building them. */
#ifndef SVCMAPD_WIRE_H
#define SVCMAPD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Skips the name at m[pos] (`len` bytes in all), which may end in a
 * compression pointer; the pointer is not followed. Returns the offset
 * after the name, or 0 if it is malformed or runs off the end. *root:
 * whether it is the root name (a single zero byte); NULL if not wanted. */
size_t wire_skip_name(const uint8_t *m, size_t len, size_t pos, bool *root);

/* The number of records of `type` in all sections of the message `m`
 * (`len` bytes, header included), or -1 if the message ends before its
 * counts say it should. Names are skipped, never followed: no pointer is
 * dereferenced, so no loop can hold it.
 *
 * Used before ldns_wire2pkt(): libldns 1.8.3 leaks a TSIG record when a
 * message carries two and fails to parse after them, so a message with
 * TSIG records must not reach it. */
int wire_count_type(const uint8_t *m, size_t len, uint16_t type);

#endif
