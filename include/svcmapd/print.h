/* print.h -- what to paste into CoreDNS or kube-dns to send names to svcmapd. */
#ifndef SVCMAPD_PRINT_H
#define SVCMAPD_PRINT_H

#include <stdio.h>

#include "svcmapd/config.h"

/*
 * Writes to `out` the snippet `form` for sending the names of `cfg` to
 * svcmapd at `server` (an IP address, with an optional port: 10.96.0.53,
 * 10.96.0.53:5353, [fd00::53]:53):
 *   corefile-names       a CoreDNS server block per mapped service name
 *   corefile-namespaces  a server block per namespace
 *   corefile-zone        one server block for the whole zone
 *   stubdomains          the kube-dns ConfigMap NodeLocal DNSCache reads
 * Returns 0, or -1 with a message on stderr if `form` or `server` is bad.
 */
int print_snippet(FILE *out, const struct config *cfg, const char *form, const char *server);

#endif
