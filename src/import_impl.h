/* import_impl.h -- the state of `svcmapd import`, shared by the files that read, decide and write.
 */
#ifndef SVCMAPD_IMPORT_IMPL_H
#define SVCMAPD_IMPORT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "svcmapd/diag.h"
#include "svcmapd/import.h"

/*
 * Private to the import: main.c sees only svcmapd/import.h. The import is
 * split by concern, in the order import_convert() takes the steps:
 *   import.c          the public entry points and the driver;
 *   import_objects.c  the JSON (jansson, within its memory budget), the
 *                     List, its objects, and the parts of them that are
 *                     read while mapping: ports and ready addresses;
 *   import_rules.c    what each Service maps to, or why it is left out
 *                     (README, "Importing from Kubernetes", the rules), and
 *                     the hostname targets inside the zone;
 *   import_text.c     the mapping text: its order, namespaces, comments and
 *                     wrapped lines, and svcmapd's own check of it.
 * Only the import library links jansson (meson.build).
 */

#define DEFAULT_WRAP 100 /* columns of a value line before it continues */
#define MAX_LINE     198 /* what Debian's inih reads of a line (config.c) */
#define CLEAN_MAX    (64 * 4 + 4)

enum kind {
    KIND_SERVICE,
    KIND_ENDPOINTS,
    KIND_SLICE,
    KIND_COUNT,
};

struct kind_info {
    const char *name;
    const char *list;        /* the typed list the API server returns */
    const char *versions[3]; /* accepted apiVersion values */
};

extern const struct kind_info imp_kinds[KIND_COUNT];

/* One Service, Endpoints or EndpointSlice of the input. */
struct object {
    enum kind kind;
    size_t index;        /* in items[] */
    const char *ns;      /* metadata.namespace */
    const char *name;    /* metadata.name */
    const char *service; /* the Service it belongs to: its own name, a slice's label, or NULL */
    json_t *json;
};

/* A growing text. */
struct text {
    char *p;
    size_t len, cap;
    int lines;
    bool oom;
};

/* One piece of the output: a mapped service line, or the comment that
 * says why an object is not one. */
struct entry {
    const char *ns, *name; /* of the Service: the sort key */
    enum kind kind;        /* of the object it speaks of */
    const char *objname;   /* that object's own name */
    struct text notes;     /* comment lines before it */
    char *value;           /* the targets and options, or NULL */
    char *skip;            /* why it is not mapped, or NULL */
    const char *host;      /* a hostname target inside the zone, as written */
    char *target_ns;       /* ... naming the service target_svc.target_ns */
    char *target_svc;
    int first, last; /* its lines in the last text rendered; 0 for comments */
};

struct import {
    struct diag *d;
    const char *zone;         /* lower case, no trailing dot */
    const struct object *cur; /* being read, for messages */
    size_t cur_index;
    struct object *objs[KIND_COUNT];
    size_t nobjs[KIND_COUNT];
    struct entry *entries;
    size_t nentries, cap;
    bool oom;
};

static inline bool mapped(const struct entry *e)
{
    return e->value && !e->skip;
}

struct target {
    int family;
    uint8_t addr[16];
    uint16_t port;
};

struct targets {
    struct target *t;
    size_t n, cap;
    unsigned not_ready;
    unsigned portless; /* ready addresses without the Service's port */
    const char *bad;   /* an address that is none */
};

/* The Service port mapped: the first of spec.ports. */
struct port {
    bool any;          /* the Service has ports */
    const char *name;  /* "" when it has none */
    const char *proto; /* TCP, UDP or SCTP */
};

/* A hostname target inside the zone and the service it names. */
struct ref {
    size_t target, source; /* entries */
};

/* ---- import_objects.c: reading ---- */

/* The JSON read, within the limits of IMPORT_MAX_INPUT and
 * IMPORT_MAX_MEMORY (the caller json_decref()s it). NULL after reporting
 * why, `*rc` -EINVAL or -ENOMEM. */
json_t *imp_read_json(const char *json, size_t len, struct diag *d, int *rc);

/* Reads the List into im->objs[], each kind's list sorted by namespace and
 * the Service they belong to; false after reporting why it is not one. */
bool imp_read_list(struct import *im, json_t *root);

/* The first object of kind `k` that belongs to Service ns/name, and how
 * many follow it (`*count`); NULL when there is none. */
struct object *imp_find_objects(struct import *im, enum kind k, const char *ns, const char *name,
                                size_t *count);

/* obj[key] if it is of `type` (JSON_TRUE: a boolean); NULL when it is
 * absent or null, and when it has another type, after reporting that about
 * im->cur at `path`.`key`. */
json_t *imp_member(struct import *im, json_t *obj, const char *path, const char *key,
                   json_type type);

/* The string obj[key], `fallback` when it is absent (or after reporting
 * that it is no string). */
const char *imp_member_string(struct import *im, json_t *obj, const char *path, const char *key,
                              const char *fallback);

/* ports[i] (`path`[i]): its name, protocol and number; false after
 * reporting that it is no object. */
bool imp_port_at(struct import *im, json_t *ports, size_t i, const char *path, const char **name,
                 const char **proto, uint16_t *number);

/* `s` as an IPv4 or IPv6 address in `t` (family and addr); false if it is
 * neither. */
bool imp_parse_ip(const char *s, struct target *t);

/* The ready addresses of an Endpoints object, or of an IPv4 or IPv6
 * EndpointSlice, with the endpoint port of the Service port `want`, added
 * to `ts` (which counts what is left out). */
void imp_endpoints_targets(struct import *im, struct object *ep, const struct port *want,
                           struct targets *ts);
void imp_slice_targets(struct import *im, struct object *sl, const struct port *want,
                       struct targets *ts);

/* ---- import_rules.c: deciding ---- */

/* Whether `s` holds only what a domain name in the mapping file may. */
bool imp_is_host_text(const char *s);

/* One entry for each Service, mapped or skipped, then one for each
 * Endpoints and EndpointSlice without a Service. */
void imp_make_entries(struct import *im);

/* Marks `e` as not mapped, for the reason given (kept: the first). */
__attribute__((format(printf, 3, 4))) void imp_skip(struct import *im, struct entry *e,
                                                    const char *fmt, ...);

/* The services that the in-zone hostname targets of the sorted entries
 * name, sorted by target (`*count` of them, malloc'ed; NULL and 0 when
 * there are none); those that name none, or themselves, are skipped. */
struct ref *imp_link_targets(struct import *im, size_t *count);

/* Skips every hostname service whose in-zone target is not mapped, along
 * the chains of them. */
void imp_settle_targets(struct import *im, const struct ref *refs, size_t nrefs);

/* ---- import_text.c: writing ---- */

/* Appends to `t`; on failure sets t->oom, and later calls do nothing. */
__attribute__((format(printf, 2, 3))) void imp_text_printf(struct text *t, const char *fmt, ...);

/* `s` for a message or a comment, in `out` (CLEAN_MAX bytes); returns `out`. */
const char *imp_clean(char *out, const char *s);

/* Appends the comment `; KIND NS/NAME: WHY` to `t`, wrapped below
 * MAX_LINE characters. */
void imp_put_comment(struct text *t, const char *kind, const char *ns, const char *name,
                     const char *why);

/* `key = targets options`, wrapped: malloc'ed, NULL when out of memory. */
char *imp_service_value(const char *key, const struct targets *ts, const char *srv);

/* The order of the entries in the output: by namespace and Service. */
int imp_cmp_entry(const void *pa, const void *pb);

/* An error of svcmapd's check on one line of the text. */
struct check_error {
    int line;
    const char *msg; /* valid during the call */
};

/* Checks `text` as `svcmapd -t` does, calling `fn` for each error on a
 * line. Returns the number of errors, or -ENOMEM. */
int imp_check_text(const char *text, size_t len,
                   void (*fn)(void *arg, const struct check_error *err), void *arg);

/* The mapping written into `t` and checked, round after round, until it
 * passes: 0, -EINVAL or -EPROTO. */
int imp_render_checked(struct import *im, const struct ref *refs, size_t nrefs, struct text *t);

#endif
