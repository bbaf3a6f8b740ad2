/* import.h -- Kubernetes objects, as `kubectl get ... -o json` prints them, to a mapping file. */
#ifndef SVCMAPD_IMPORT_H
#define SVCMAPD_IMPORT_H

#include <stddef.h>

#include "svcmapd/diag.h"

/*
 * SPEC §8: `svcmapd import` reads a Kubernetes List of Services, Endpoints
 * and EndpointSlices and writes the mapping file that serves the ones
 * Kubernetes leaves to hand-kept data (README, "Importing from Kubernetes",
 * has every rule). import_*.c know the Kubernetes API shapes and the text of
 * the mapping file; whether that text is valid, it asks config.c and zone.c,
 * so the output passes `svcmapd -t` by construction.
 */

/* The largest input read: beyond it, the JSON is refused before parsing.
 * Parsing takes about four times the input in memory, and at most
 * IMPORT_MAX_MEMORY whatever the JSON holds. */
#define IMPORT_MAX_INPUT  (64u << 20)
#define IMPORT_MAX_MEMORY (1024u << 20)

/* The bytes of the file at `path` ("-": standard input), malloc'ed, `*len`
 * of them; NULL after adding why to `d` (unreadable, or larger than
 * IMPORT_MAX_INPUT, which is noticed without reading the rest). */
char *import_read(const char *path, size_t *len, struct diag *d);

/* 0 if `zone` can be the zone of a mapping file (`[server] zone`), else -1
 * after adding why to `d`. */
int import_check_zone(const char *zone, struct diag *d);

/*
 * Converts the JSON `json` (`len` bytes, not NUL-terminated) into a whole
 * mapping file for `zone` (checked with import_check_zone() first). On
 * success returns 0 and sets `*out` to the text (malloc'ed, NUL-terminated,
 * `*out_len` bytes, the caller frees it), which config_parse() and
 * zone_compile() accept without an error. Otherwise `*out` is NULL, every
 * reason is in `d`, and it returns
 *   -EINVAL  bad input: not JSON, not a List of Services, Endpoints and
 *            EndpointSlices, objects of the wrong shape, or JSON that
 *            would take more than IMPORT_MAX_MEMORY to read;
 *   -ENOMEM  out of memory;
 *   -EPROTO  a bug: a text svcmapd's own check refuses in a way no
 *            service can be left out for.
 * Objects svcmapd cannot serve are no error: each becomes a `;` comment in
 * the text that names it and says why.
 */
int import_convert(const char *json, size_t len, const char *zone, struct diag *d, char **out,
                   size_t *out_len);

#endif
