/* import.c -- Kubernetes objects, as `kubectl get ... -o json` prints them, to a mapping file. */
#include "svcmapd/import.h"
#include "svcmapd/file.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "svcmapd/config.h"
#include "svcmapd/load.h"

/*
 * The rules (README, "Importing from Kubernetes"):
 *
 * - An ExternalName Service becomes its host name, or its address when it
 *   holds an IP; its selector, which kubectl's generator adds and
 *   Kubernetes ignores for ExternalName, does not matter.
 * - A Service with a selector is Kubernetes's to serve: skipped.
 * - A Service without a selector becomes the ready addresses of its
 *   EndpointSlices (IPv4 and IPv6; FQDN slices are deprecated and
 *   skipped), or of its Endpoints when it has no such slice: Endpoints is
 *   deprecated since Kubernetes 1.33, and a cluster that has both mirrors
 *   one into the other, so they are never merged.
 * - One port per service: the first of the Service's ports, as the
 *   endpoint port of the same name and protocol; `srv=_NAME._PROTO` when
 *   it has a name. A comment names the ports left out.
 * - Everything that cannot be served is a `;` comment naming the object
 *   and why, in the place the service would have had.
 *
 * Whether a line can be served is finally up to config.c and zone.c: the
 * text is parsed and compiled as `svcmapd -t` would, and a service they
 * reject (a name over 255 bytes, an SRV answer over 64 KiB...) becomes a
 * comment with their message, until the whole text passes. The checks
 * made here first are those of Kubernetes semantics, and those that keep
 * untrusted strings from changing the structure of the text.
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

static const struct {
    const char *name;
    const char *list;        /* the typed list the API server returns */
    const char *versions[3]; /* accepted apiVersion values */
} kinds[KIND_COUNT] = {
    [KIND_SERVICE] = {"Service", "ServiceList", {"v1", NULL, NULL}},
    [KIND_ENDPOINTS] = {"Endpoints", "EndpointsList", {"v1", NULL, NULL}},
    [KIND_SLICE] = {"EndpointSlice",
                    "EndpointSliceList",
                    {"discovery.k8s.io/v1", "discovery.k8s.io/v1beta1", NULL}},
};

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

__attribute__((format(printf, 2, 3))) static void text_printf(struct text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            for (const char *c = t->p + t->len; (c = strchr(c, '\n')) != NULL; c++)
                t->lines++;
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* ---- jansson's memory ---- */

/*
 * jansson builds the whole document, and its values cost far more than
 * their text: `[{},{},...]` takes some 70 bytes per input byte. Its
 * allocator hooks are process-wide and take no context, so the running
 * total is per thread, of the parse running on it.
 */
union json_block {
    size_t size;
    max_align_t align;
};

static _Thread_local size_t json_used;
static _Thread_local bool json_refused; /* jansson does not always say why it failed */

static void *json_budget_malloc(size_t size)
{
    size_t need = size + sizeof(union json_block);
    if (need < size || need > IMPORT_MAX_MEMORY - json_used) {
        json_refused = true;
        return NULL;
    }
    union json_block *b = malloc(need);
    if (!b)
        return NULL;
    b->size = need;
    json_used += need;
    return b + 1;
}

static void json_budget_free(void *p)
{
    if (!p)
        return;
    union json_block *b = (union json_block *)p - 1;
    json_used -= b->size;
    free(b);
}

/* ---- strings ---- */

/* `s` for a message or a comment, in `out` (CLEAN_MAX bytes): printable
 * ASCII as it is, other bytes as \xNN, at most 64 characters of it; a
 * longer one ends in "...". */
static const char *clean(char *out, const char *s)
{
    size_t o = 0;
    size_t i = 0;
    for (; s[i] && i < 64; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, CLEAN_MAX - o, "\\x%02x", c);
    }
    if (s[i])
        o += (size_t)snprintf(out + o, CLEAN_MAX - o, "...");
    out[o] = '\0';
    return out;
}

/*
 * Appends the comment `; KIND NS/NAME: WHY` to `t` (`; KIND NS: WHY` when
 * `name` is NULL). When it is longer than MAX_LINE characters, WHY goes on
 * the lines below, indented. The strings are clean() already.
 */
static void put_comment(struct text *t, const char *kind, const char *ns, const char *name,
                        const char *why)
{
    char head[2 * CLEAN_MAX + 32];
    if (name)
        snprintf(head, sizeof(head), "; %s %s/%s:", kind, ns, name);
    else
        snprintf(head, sizeof(head), "; %s %s:", kind, ns);
    size_t hl = strlen(head), wl = strlen(why);
    if (hl + 1 + wl <= MAX_LINE) {
        text_printf(t, "%s %s\n", head, why);
        return;
    }
    if (hl > MAX_LINE)
        memcpy(head + MAX_LINE - 3, "...", 4);
    text_printf(t, "%s\n", head);
    /* then `why` in lines of DEFAULT_WRAP columns, at spaces where it can */
    while (*why) {
        size_t n = strlen(why);
        if (4 + n > DEFAULT_WRAP) {
            n = DEFAULT_WRAP - 4;
            while (n > DEFAULT_WRAP / 2 && why[n] != ' ')
                n--;
            if (why[n] != ' ')
                n = DEFAULT_WRAP - 4;
        }
        text_printf(t, ";   %.*s\n", (int)n, why);
        why += n;
        while (*why == ' ')
            why++;
    }
}

/* A DNS-1123 label as Kubernetes means it: 1 to 63 of a-z, 0-9 and '-',
 * no '-' at either end (config.c also folds upper case; Kubernetes never
 * has any). */
static bool is_label(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 63 && s[0] != '-' && s[n - 1] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* Only what a domain name in the mapping file may hold (config.c says
 * what else is wrong with it): no separator, comment or '=' can come
 * through and change what the line means. */
static bool is_host_text(const char *s)
{
    size_t n = strlen(s);
    return n > 0 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n;
}

/* ---- reading the objects ---- */

static const char *const type_names[] = {
    [JSON_OBJECT] = "an object",   [JSON_ARRAY] = "an array",     [JSON_STRING] = "a string",
    [JSON_INTEGER] = "an integer", [JSON_REAL] = "a real number", [JSON_TRUE] = "true",
    [JSON_FALSE] = "false",        [JSON_NULL] = "null",
};

/* An error about the object being read: `items[N] (KIND NS/NAME): ...`. */
__attribute__((format(printf, 2, 3))) static void object_error(struct import *im, const char *fmt,
                                                               ...)
{
    char msg[400], a[CLEAN_MAX], b[CLEAN_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const struct object *o = im->cur;
    if (o)
        diag_error(im->d, 0, "items[%zu] (%s %s/%s): %s", o->index, kinds[o->kind].name,
                   clean(a, o->ns), clean(b, o->name), msg);
    else
        diag_error(im->d, 0, "items[%zu]: %s", im->cur_index, msg);
}

/*
 * obj[key] if it is of `type` (JSON_TRUE: a boolean); NULL when `obj` is
 * NULL, or the key is absent or null (Kubernetes leaves out or nulls what
 * is not set), and when it has another type, after reporting that at
 * `path`.`key`.
 */
static json_t *member(struct import *im, json_t *obj, const char *path, const char *key,
                      json_type type)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v))
        return NULL;
    if (json_typeof(v) == type || (type == JSON_TRUE && json_is_boolean(v)))
        return v;
    char k[CLEAN_MAX];
    object_error(im, "%s%s%s: expected %s, not %s", path, *path ? "." : "", clean(k, key),
                 type == JSON_TRUE ? "a boolean" : type_names[type], type_names[json_typeof(v)]);
    return NULL;
}

/* The string obj[key], `fallback` when it is absent (or after reporting
 * that it is no string). */
static const char *member_string(struct import *im, json_t *obj, const char *path, const char *key,
                                 const char *fallback)
{
    json_t *v = member(im, obj, path, key, JSON_STRING);
    return v ? json_string_value(v) : fallback;
}

/* The port number obj[key]: 1 to 65535, 0 when absent or bad (reported). */
static uint16_t member_port(struct import *im, json_t *obj, const char *path, const char *key)
{
    json_t *v = member(im, obj, path, key, JSON_INTEGER);
    if (!v)
        return 0;
    json_int_t n = json_integer_value(v);
    if (n < 1 || n > 65535) {
        object_error(im, "%s.%s: %lld is not a port (1 to 65535)", path, key, (long long)n);
        return 0;
    }
    return (uint16_t)n;
}

static bool version_ok(enum kind k, const char *version)
{
    for (size_t i = 0; kinds[k].versions[i]; i++)
        if (strcmp(kinds[k].versions[i], version) == 0)
            return true;
    return false;
}

/* Reads items[i]; adds it to its kind's list. */
static void read_item(struct import *im, json_t *item, size_t i, int list_kind)
{
    im->cur = NULL;
    im->cur_index = i;
    if (!json_is_object(item)) {
        object_error(im, "expected an object, not %s", type_names[json_typeof(item)]);
        return;
    }
    const char *kind = member_string(im, item, "", "kind", NULL);
    int k = list_kind;
    if (kind) {
        for (k = 0; k < KIND_COUNT && strcmp(kinds[k].name, kind) != 0; k++)
            ;
    } else if (k < 0) {
        object_error(im, "no kind");
        return;
    }
    json_t *meta = member(im, item, "", "metadata", JSON_OBJECT);
    const char *ns = member_string(im, meta, "metadata", "namespace", NULL);
    const char *name = member_string(im, meta, "metadata", "name", NULL);
    const char *version = member_string(im, item, "", "apiVersion", NULL);
    char a[CLEAN_MAX], b[CLEAN_MAX], c[CLEAN_MAX], v[CLEAN_MAX], head[4 * CLEAN_MAX];
    snprintf(head, sizeof(head), "items[%zu] (%s %s/%s)", i,
             clean(a, k < KIND_COUNT ? kinds[k].name : kind), clean(b, ns ? ns : "?"),
             clean(c, name ? name : "?"));
    bool ok = false;
    if (k == KIND_COUNT || (list_kind >= 0 && k != list_kind))
        diag_error(im->d, 0,
                   "%s: svcmapd import reads Services, Endpoints and EndpointSlices, as kubectl "
                   "get services,endpoints,endpointslices -A -o json prints them",
                   head);
    else if (version && !version_ok((enum kind)k, version))
        diag_error(im->d, 0, "%s: apiVersion %s, which svcmapd import does not read", head,
                   clean(v, version));
    else if (!name || !ns)
        diag_error(im->d, 0, "%s: no metadata.%s (kubectl get -A prints it for every object)", head,
                   name ? "namespace" : "name");
    else
        ok = true;
    if (!ok)
        return;

    struct object o = {(enum kind)k, i, ns, name, name, item};
    im->cur = &o;
    if (k == KIND_SLICE) {
        json_t *labels = member(im, meta, "metadata", "labels", JSON_OBJECT);
        o.service =
            member_string(im, labels, "metadata.labels", "kubernetes.io/service-name", NULL);
    }
    im->cur = NULL;
    size_t n = im->nobjs[k];
    if ((n & (n - 1)) == 0) { /* full at 0 and at each power of two */
        struct object *list = realloc(im->objs[k], (n ? 2 * n : 1) * sizeof(*list));
        if (!list) {
            im->oom = true;
            return;
        }
        im->objs[k] = list;
    }
    im->objs[k][im->nobjs[k]++] = o;
}

/* By namespace and name, then by place in the input. */
static int cmp_name(const void *pa, const void *pb)
{
    const struct object *a = pa, *b = pb;
    int c = strcmp(a->ns, b->ns);
    if (c == 0)
        c = strcmp(a->name, b->name);
    return c != 0 ? c : a->index < b->index ? -1 : a->index > b->index;
}

/* By namespace and the Service they belong to (find_objects()). */
static int cmp_object(const void *pa, const void *pb)
{
    const struct object *a = pa, *b = pb;
    int c = strcmp(a->ns, b->ns);
    if (c == 0)
        c = strcmp(a->service ? a->service : "", b->service ? b->service : "");
    if (c == 0)
        c = strcmp(a->name, b->name);
    return c != 0 ? c : a->index < b->index ? -1 : a->index > b->index;
}

/* Reads the List; false after reporting why it is not one. */
static bool read_list(struct import *im, json_t *root)
{
    const char *what = "not a Kubernetes List (kubectl get services,endpoints,endpointslices -A "
                       "-o json prints one)";
    if (!json_is_object(root)) {
        diag_error(im->d, 0, "%s, but %s", what, type_names[json_typeof(root)]);
        return false;
    }
    json_t *kind = json_object_get(root, "kind");
    int list_kind = -2;
    if (json_is_string(kind)) {
        if (strcmp(json_string_value(kind), "List") == 0)
            list_kind = -1;
        for (int k = 0; k < KIND_COUNT; k++)
            if (strcmp(json_string_value(kind), kinds[k].list) == 0)
                list_kind = k;
    }
    if (list_kind == -2) {
        char a[CLEAN_MAX];
        if (json_is_string(kind))
            diag_error(im->d, 0, "%s, but a %s", what, clean(a, json_string_value(kind)));
        else
            diag_error(im->d, 0, "%s: no kind", what);
        return false;
    }
    json_t *items = json_object_get(root, "items");
    if (items && !json_is_array(items) && !json_is_null(items)) {
        diag_error(im->d, 0, "the List's items: expected an array, not %s",
                   type_names[json_typeof(items)]);
        return false;
    }
    for (size_t i = 0; i < json_array_size(items) && !im->oom; i++)
        read_item(im, json_array_get(items, i), i, list_kind);

    /* The same object twice is two inputs run together: which is meant? */
    for (int k = 0; k < KIND_COUNT; k++) {
        struct object *o = im->objs[k];
        size_t n = im->nobjs[k];
        if (n == 0)
            continue; /* and no qsort() of NULL */
        qsort(o, n, sizeof(*o), cmp_name);
        for (size_t i = 1; i < n; i++) {
            if (strcmp(o[i].ns, o[i - 1].ns) == 0 && strcmp(o[i].name, o[i - 1].name) == 0) {
                im->cur = &o[i];
                object_error(im, "the same %s as items[%zu]", kinds[k].name, o[i - 1].index);
            }
        }
        im->cur = NULL;
        if (k == KIND_SLICE) /* Services and Endpoints: the same order */
            qsort(o, n, sizeof(*o), cmp_object);
    }
    return im->d->errors == 0;
}

/* The first object of kind `k` that belongs to Service ns/name, and how
 * many follow it; its list is sorted by namespace and Service. */
static struct object *find_objects(struct import *im, enum kind k, const char *ns, const char *name,
                                   size_t *count)
{
    struct object *o = im->objs[k];
    size_t lo = 0, hi = im->nobjs[k];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(o[mid].ns, ns);
        if (c == 0)
            c = strcmp(o[mid].service ? o[mid].service : "", name);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < im->nobjs[k] && strcmp(o[end].ns, ns) == 0 && o[end].service &&
           strcmp(o[end].service, name) == 0)
        end++;
    *count = end - lo;
    return end > lo ? &o[lo] : NULL;
}

/* ---- one Service ---- */

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

static bool parse_ip(const char *s, struct target *t)
{
    if (inet_pton(AF_INET, s, t->addr) == 1)
        t->family = AF_INET;
    else if (inet_pton(AF_INET6, s, t->addr) == 1)
        t->family = AF_INET6;
    else
        return false;
    return true;
}

static void add_target(struct import *im, struct targets *ts, const char *ip, uint16_t port)
{
    struct target t = {.port = port};
    if (!parse_ip(ip, &t)) {
        if (!ts->bad)
            ts->bad = ip;
        return;
    }
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? 2 * ts->cap : 8;
        struct target *n = realloc(ts->t, cap * sizeof(*n));
        if (!n) {
            im->oom = true;
            return;
        }
        ts->t = n;
        ts->cap = cap;
    }
    ts->t[ts->n++] = t;
}

static int cmp_target(const void *pa, const void *pb)
{
    const struct target *a = pa, *b = pb;
    if (a->family != b->family)
        return a->family == AF_INET ? -1 : 1;
    int c = memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16);
    return c != 0 ? c : (int)a->port - (int)b->port;
}

/* arr[i] if it is an object, its path `name`[i] written to `at` (`cap`
 * bytes); NULL after reporting what it is instead. */
static json_t *object_at(struct import *im, json_t *arr, size_t i, const char *name, char *at,
                         size_t cap)
{
    json_t *o = json_array_get(arr, i);
    snprintf(at, cap, "%s[%zu]", name, i);
    if (json_is_object(o))
        return o;
    object_error(im, "%s: expected an object, not %s", at, type_names[json_typeof(o)]);
    return NULL;
}

/*
 * ports[i] (`path`[i]) of a Service, an Endpoints subset or an
 * EndpointSlice: its name ("" when it has none), protocol (TCP when not
 * given) and number (0 when not given). False after reporting that it is
 * no object.
 */
static bool port_at(struct import *im, json_t *ports, size_t i, const char *path, const char **name,
                    const char **proto, uint16_t *number)
{
    char at[64];
    json_t *p = object_at(im, ports, i, path, at, sizeof(at));
    if (!p)
        return false;
    *name = member_string(im, p, at, "name", "");
    *proto = member_string(im, p, at, "protocol", "TCP");
    *number = member_port(im, p, at, "port");
    return true;
}

/*
 * The endpoint port that serves the Service port `want`, in `ports` (of an
 * EndpointSlice or an Endpoints subset): the one of the same name and
 * protocol, as kube-proxy matches them. 0 if there is none, or it has no
 * number (a slice's "all ports").
 */
static uint16_t endpoint_port(struct import *im, json_t *ports, const char *path,
                              const struct port *want)
{
    for (size_t i = 0; i < json_array_size(ports); i++) {
        const char *name, *proto;
        uint16_t port;
        if (port_at(im, ports, i, path, &name, &proto, &port) && strcmp(name, want->name) == 0 &&
            strcmp(proto, want->proto) == 0)
            return port;
    }
    return 0;
}

/* The ready addresses of an Endpoints object. */
static void endpoints_targets(struct import *im, struct object *ep, const struct port *want,
                              struct targets *ts)
{
    im->cur = ep;
    json_t *subsets = member(im, ep->json, "", "subsets", JSON_ARRAY);
    char at[64], ad[96], list[80];
    for (size_t i = 0; i < json_array_size(subsets); i++) {
        json_t *s = object_at(im, subsets, i, "subsets", at, sizeof(at));
        if (!s)
            continue;
        snprintf(ad, sizeof(ad), "%s.ports", at);
        uint16_t port =
            want->any ? endpoint_port(im, member(im, s, at, "ports", JSON_ARRAY), ad, want) : 0;
        json_t *addrs = member(im, s, at, "addresses", JSON_ARRAY);
        json_t *notready = member(im, s, at, "notReadyAddresses", JSON_ARRAY);
        ts->not_ready += (unsigned)json_array_size(notready);
        snprintf(list, sizeof(list), "%s.addresses", at);
        for (size_t j = 0; j < json_array_size(addrs); j++) {
            json_t *a = object_at(im, addrs, j, list, ad, sizeof(ad));
            if (!a)
                continue;
            unsigned errors = im->d->errors;
            const char *ip = member_string(im, a, ad, "ip", NULL);
            if (!ip) {
                if (im->d->errors == errors)
                    object_error(im, "%s: no ip", ad);
            } else if (want->any && !port) {
                ts->portless++;
            } else {
                add_target(im, ts, ip, port);
            }
        }
    }
    im->cur = NULL;
}

/* The ready addresses of an IPv4 or IPv6 EndpointSlice. */
static void slice_targets(struct import *im, struct object *sl, const struct port *want,
                          struct targets *ts)
{
    im->cur = sl;
    uint16_t port =
        want->any ? endpoint_port(im, member(im, sl->json, "", "ports", JSON_ARRAY), "ports", want)
                  : 0;
    json_t *eps = member(im, sl->json, "", "endpoints", JSON_ARRAY);
    char at[64];
    for (size_t i = 0; i < json_array_size(eps); i++) {
        json_t *e = object_at(im, eps, i, "endpoints", at, sizeof(at));
        if (!e)
            continue;
        unsigned errors = im->d->errors;
        json_t *addrs = member(im, e, at, "addresses", JSON_ARRAY);
        json_t *cond = member(im, e, at, "conditions", JSON_OBJECT);
        char cat[96];
        snprintf(cat, sizeof(cat), "%s.conditions", at);
        json_t *ready = member(im, cond, cat, "ready", JSON_TRUE);
        /* The API: only the first address has a meaning (kube-proxy reads
         * no other); a ready condition that is not set means ready. */
        json_t *first = json_array_get(addrs, 0);
        if (!json_is_string(first)) {
            if (im->d->errors == errors)
                object_error(im, "%s.addresses: expected an array of strings", at);
            continue;
        }
        if (ready && json_is_false(ready))
            ts->not_ready++;
        else if (want->any && !port)
            ts->portless++;
        else
            add_target(im, ts, json_string_value(first), port);
    }
    im->cur = NULL;
}

/* Appends a comment line about `e`'s object to its notes. */
__attribute__((format(printf, 4, 5))) static void
note(struct import *im, struct entry *e, const struct object *about, const char *fmt, ...)
{
    char msg[400], a[CLEAN_MAX], b[CLEAN_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    put_comment(&e->notes, kinds[about->kind].name, clean(a, about->ns), clean(b, about->name),
                msg);
    im->oom |= e->notes.oom;
}

/* Marks `e` as not mapped, for the reason given (kept: the first). */
__attribute__((format(printf, 3, 4))) static void skip(struct import *im, struct entry *e,
                                                       const char *fmt, ...)
{
    if (e->skip)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&e->skip, fmt, ap) < 0) {
        e->skip = NULL;
        im->oom = true;
    }
    va_end(ap);
}

/* `key = targets options`, continued on indented lines past DEFAULT_WRAP
 * columns (a line of the file holds at most MAX_LINE characters). */
static char *service_value(const char *key, const struct targets *ts, const char *srv)
{
    struct text t = {0};
    size_t col = strlen(key) + 3;
    char tok[INET6_ADDRSTRLEN + 16];
    size_t n = ts->n;
    for (size_t i = 0; i <= n; i++) {
        const char *word = tok;
        if (i == n && !srv)
            break;
        if (i == n) {
            word = srv;
        } else {
            const struct target *x = &ts->t[i];
            char ip[INET6_ADDRSTRLEN];
            inet_ntop(x->family, x->addr, ip, sizeof(ip));
            if (!x->port)
                snprintf(tok, sizeof(tok), "%s", ip);
            else
                snprintf(tok, sizeof(tok), x->family == AF_INET ? "%s:%u" : "[%s]:%u", ip, x->port);
        }
        const char *sep = i == 0 ? "" : i == n ? " " : ", ";
        if (i > 0 && col + strlen(sep) + strlen(word) > DEFAULT_WRAP) {
            text_printf(&t, "%s\n    %s", i == n ? "" : ",", word);
            col = 4 + strlen(word);
        } else {
            text_printf(&t, "%s%s", sep, word);
            col += strlen(sep) + strlen(word);
        }
    }
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

/* The hostname target `host` (an ExternalName), for `e`: inside the zone
 * it must name a service of the mapping, which settle_targets() checks
 * once every service is known. */
static void host_target(struct import *im, struct entry *e, const char *host)
{
    char low[256], a[CLEAN_MAX];
    size_t n = strlen(host);
    if (n > 1 && host[n - 1] == '.')
        n--;
    if (n >= sizeof(low) || strlen(e->name) + 3 + n > MAX_LINE) {
        skip(im, e, "externalName '%s' is longer than a line of the mapping file holds",
             clean(a, host));
        return;
    }
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)host[i]);
    low[n] = '\0';
    e->value = strndup(host, n);
    if (!e->value) {
        im->oom = true;
        return;
    }

    size_t zl = strlen(im->zone);
    if (n < zl || strcmp(low + n - zl, im->zone) != 0 || (n > zl && low[n - zl - 1] != '.'))
        return; /* outside the zone: resolved upstream */
    /* <service>.<namespace>.svc.<zone>: the only names inside the zone
     * that this file maps */
    char *svc = low, *ns = NULL, *label = NULL;
    if (n > zl + 5 && strncmp(low + n - zl - 5, ".svc.", 5) == 0) {
        low[n - zl - 5] = '\0';
        ns = strchr(low, '.');
        if (ns && !strchr(ns + 1, '.')) {
            *ns++ = '\0';
            label = svc;
        }
    }
    e->host = host;
    if (!label) {
        skip(im, e,
             "externalName '%s' is inside zone %s but names no service "
             "(<service>.<namespace>.svc.%s)",
             clean(a, host), im->zone, im->zone);
        return;
    }
    e->target_ns = strdup(ns);
    e->target_svc = strdup(svc);
    if (!e->target_ns || !e->target_svc)
        im->oom = true;
}

static void external_name(struct import *im, struct entry *e, json_t *spec)
{
    char a[CLEAN_MAX];
    const char *ext = member_string(im, spec, "spec", "externalName", "");
    struct target t;
    if (!*ext) {
        skip(im, e, "an ExternalName without externalName");
    } else if (parse_ip(ext, &t)) {
        /* what CoreDNS answers NXDOMAIN (coredns#2324) */
        char ip[INET6_ADDRSTRLEN];
        e->value = strdup(inet_ntop(t.family, t.addr, ip, sizeof(ip)));
        im->oom |= !e->value;
    } else if (!is_host_text(ext)) {
        skip(im, e, "externalName '%s' is neither an IP address nor a host name", clean(a, ext));
    } else {
        host_target(im, e, ext);
    }
}

/* The Service port to map (the first), with a note naming the others. */
static bool service_port(struct import *im, struct entry *e, struct object *svc, json_t *spec,
                         struct port *p)
{
    json_t *ports = member(im, spec, "spec", "ports", JSON_ARRAY);
    char a[CLEAN_MAX], first[CLEAN_MAX + 16];
    struct text others = {0};
    *p = (struct port){false, "", "TCP"};
    im->cur = svc;
    for (size_t i = 0; i < json_array_size(ports); i++) {
        const char *name, *proto;
        uint16_t number;
        if (!port_at(im, ports, i, "spec.ports", &name, &proto, &number))
            continue;
        char label[CLEAN_MAX + 16];
        if (*name) /* else by its number */
            clean(label, name);
        else
            snprintf(label, sizeof(label), "%u/%s", number, clean(a, proto));
        if (i == 0) {
            *p = (struct port){true, name, proto};
            memcpy(first, label, sizeof(label));
        } else {
            text_printf(&others, "%s%s", others.len ? ", " : "", label);
        }
    }
    if (others.len)
        note(im, e, svc, "svcmapd maps one port per service: the first, %s; left out: %s", first,
             others.p);
    free(others.p);
    im->oom |= others.oom;
    if (!p->any)
        return true;
    if (strcmp(p->proto, "TCP") != 0 && strcmp(p->proto, "UDP") != 0 &&
        strcmp(p->proto, "SCTP") != 0) {
        skip(im, e, "port protocol %s (SRV records know TCP, UDP and SCTP)", clean(a, p->proto));
        return false;
    }
    if (*p->name && !is_label(p->name)) {
        skip(im, e, "port name '%s' is not a DNS-1123 label", clean(a, p->name));
        return false;
    }
    return true;
}

/* The ready addresses of a Service without a selector: its IPv4 and IPv6
 * EndpointSlices, or its Endpoints if it has none. */
static void endpoint_targets(struct import *im, struct entry *e, struct object *svc, json_t *spec)
{
    struct port port;
    if (!service_port(im, e, svc, spec, &port))
        return;
    size_t nslices = 0, neps = 0, used = 0;
    struct object *slices = find_objects(im, KIND_SLICE, svc->ns, svc->name, &nslices);
    struct object *eps = find_objects(im, KIND_ENDPOINTS, svc->ns, svc->name, &neps);
    struct targets ts = {0};
    char a[CLEAN_MAX];
    for (size_t i = 0; i < nslices; i++) {
        im->cur = &slices[i];
        const char *type = member_string(im, slices[i].json, "", "addressType", "");
        im->cur = NULL;
        if (strcmp(type, "IPv4") == 0 || strcmp(type, "IPv6") == 0) {
            slice_targets(im, &slices[i], &port, &ts);
            used++;
        } else if (strcmp(type, "FQDN") == 0) {
            note(im, e, &slices[i], "addressType FQDN is deprecated; not imported");
        } else {
            note(im, e, &slices[i], "addressType '%s' is unknown; not imported", clean(a, type));
        }
    }
    if (!used && neps)
        endpoints_targets(im, eps, &port, &ts);

    if (ts.bad) {
        skip(im, e, "address '%s' is not an IP address", clean(a, ts.bad));
    } else if (!used && !neps) {
        skip(im, e, "no Endpoints, no IPv4 or IPv6 EndpointSlice");
    } else if (ts.n == 0) {
        char with[CLEAN_MAX + 16] = "", unready[32] = "";
        if (ts.portless)
            snprintf(with, sizeof(with), " with port %s",
                     *port.name ? clean(a, port.name) : "(unnamed)");
        if (ts.not_ready)
            snprintf(unready, sizeof(unready), " (%u not ready)", ts.not_ready);
        skip(im, e, "no ready address%s%s", with, unready);
    } else {
        if (ts.not_ready)
            note(im, e, svc, "%u address%s not ready, left out", ts.not_ready,
                 ts.not_ready == 1 ? "" : "es");
        if (ts.portless)
            note(im, e, svc, "%u ready address%s without port %s, left out", ts.portless,
                 ts.portless == 1 ? "" : "es", *port.name ? clean(a, port.name) : "(unnamed)");
        qsort(ts.t, ts.n, sizeof(*ts.t), cmp_target);
        size_t n = 0;
        for (size_t i = 0; i < ts.n; i++)
            if (n == 0 || cmp_target(&ts.t[n - 1], &ts.t[i]) != 0)
                ts.t[n++] = ts.t[i];
        ts.n = n;
        /* srv=_NAME._PROTO for a named port; svcmapd's default is
         * _<service>._tcp, so an unnamed one of another protocol says its own */
        char srv[80] = "";
        char proto[8];
        snprintf(proto, sizeof(proto), "%s", port.proto); /* TCP, UDP or SCTP */
        for (char *c = proto; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (ts.t[0].port && *port.name)
            snprintf(srv, sizeof(srv), "srv=_%s._%s", port.name, proto);
        else if (ts.t[0].port && strcmp(proto, "tcp") != 0)
            snprintf(srv, sizeof(srv), "srv=_%s._%s", svc->name, proto);
        e->value = service_value(svc->name, &ts, *srv ? srv : NULL);
        im->oom |= !e->value;
    }
    free(ts.t);
}

static void map_service(struct import *im, struct object *svc, struct entry *e)
{
    char a[CLEAN_MAX];
    if (!is_label(svc->ns)) {
        skip(im, e, "the namespace name is not a DNS-1123 label");
        return;
    }
    if (!is_label(svc->name)) {
        skip(im, e, "the name is not a DNS-1123 label");
        return;
    }
    if (strcmp(svc->ns, "default") == 0 && strcmp(svc->name, "kubernetes") == 0) {
        skip(im, e, "the API server's own Service, kept by Kubernetes");
        return;
    }
    im->cur = svc;
    json_t *spec = member(im, svc->json, "", "spec", JSON_OBJECT);
    const char *type = member_string(im, spec, "spec", "type", "ClusterIP");
    json_t *selector = member(im, spec, "spec", "selector", JSON_OBJECT);
    im->cur = NULL;
    if (strcmp(type, "ExternalName") == 0) {
        /* kubectl create service externalname adds a selector, which
         * Kubernetes ignores for this type */
        im->cur = svc;
        external_name(im, e, spec);
        im->cur = NULL;
    } else if (json_object_size(selector) > 0) {
        skip(im, e, "%s with a selector: Kubernetes keeps its endpoints and CoreDNS answers it",
             clean(a, type));
    } else {
        im->cur = svc;
        endpoint_targets(im, e, svc, spec);
        im->cur = NULL;
    }
}

/* ---- the entries of the output ---- */

static struct entry *new_entry(struct import *im, const char *ns, const char *name, enum kind kind,
                               const char *objname)
{
    if (im->nentries == im->cap) {
        size_t cap = im->cap ? 2 * im->cap : 64;
        struct entry *list = realloc(im->entries, cap * sizeof(*list));
        if (!list) {
            im->oom = true;
            return NULL;
        }
        im->entries = list;
        im->cap = cap;
    }
    struct entry *e = &im->entries[im->nentries++];
    *e = (struct entry){.ns = ns, .name = name, .kind = kind, .objname = objname};
    return e;
}

/* A Services's entry, then one for each Endpoints and EndpointSlice that
 * has no Service: what they hold is not served, and the comment says so. */
static void make_entries(struct import *im)
{
    for (size_t i = 0; i < im->nobjs[KIND_SERVICE] && !im->oom; i++) {
        struct object *s = &im->objs[KIND_SERVICE][i];
        struct entry *e = new_entry(im, s->ns, s->name, KIND_SERVICE, s->name);
        if (e)
            map_service(im, s, e);
    }
    for (int k = KIND_ENDPOINTS; k <= KIND_SLICE && !im->oom; k++) {
        for (size_t i = 0; i < im->nobjs[k] && !im->oom; i++) {
            struct object *o = &im->objs[k][i];
            size_t n;
            if (o->service && find_objects(im, KIND_SERVICE, o->ns, o->service, &n))
                continue;
            char a[CLEAN_MAX];
            struct entry *e =
                new_entry(im, o->ns, o->service ? o->service : o->name, (enum kind)k, o->name);
            if (!e)
                break;
            if (!o->service)
                skip(im, e, "no label kubernetes.io/service-name: no Service");
            else if (k == KIND_SLICE)
                skip(im, e, "no Service %s in the input", clean(a, o->service));
            else
                skip(im, e, "no Service of that name in the input");
        }
    }
}

static int cmp_entry(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    int c = strcmp(a->ns, b->ns);
    if (c == 0)
        c = strcmp(a->name, b->name);
    if (c == 0)
        c = (int)a->kind - (int)b->kind;
    return c != 0 ? c : strcmp(a->objname, b->objname);
}

static bool mapped(const struct entry *e)
{
    return e->value && !e->skip;
}

/* A hostname target inside the zone and the service it names. */
struct ref {
    size_t target, source; /* entries */
};

static int cmp_ref(const void *pa, const void *pb)
{
    const struct ref *a = pa, *b = pb;
    return a->target < b->target ? -1 : a->target > b->target;
}

/* Finds the service each in-zone hostname target names; those that name
 * none, or themselves, are skipped. Returns the references, sorted by
 * target (`*count` of them; NULL and 0 when there are none). */
static struct ref *link_targets(struct import *im, size_t *count)
{
    struct ref *refs = NULL;
    size_t n = 0;
    char a[CLEAN_MAX], b[CLEAN_MAX], c[CLEAN_MAX];
    for (size_t i = 0; i < im->nentries; i++) {
        struct entry *e = &im->entries[i];
        if (!e->target_ns || !mapped(e))
            continue;
        struct entry key = {.ns = e->target_ns,
                            .name = e->target_svc,
                            .kind = KIND_SERVICE,
                            .objname = e->target_svc};
        struct entry *t = bsearch(&key, im->entries, im->nentries, sizeof(key), cmp_entry);
        if (t == e) {
            skip(im, e, "externalName '%s' is the Service's own name", clean(a, e->host));
        } else if (!t) {
            skip(im, e, "externalName '%s' names %s/%s, which this mapping does not serve",
                 clean(a, e->host), clean(b, e->target_ns), clean(c, e->target_svc));
        } else {
            if ((n & (n - 1)) == 0) { /* as the objects grow */
                struct ref *r = realloc(refs, (n ? 2 * n : 1) * sizeof(*r));
                if (!r) {
                    im->oom = true;
                    break;
                }
                refs = r;
            }
            refs[n++] = (struct ref){(size_t)(t - im->entries), i};
        }
    }
    if (n)
        qsort(refs, n, sizeof(*refs), cmp_ref);
    *count = n;
    return refs;
}

/* Skips every hostname service whose in-zone target is not mapped, along
 * the chains of them: a CNAME to a name svcmapd does not serve would be a
 * dangling target (zone.c refuses them). */
static void settle_targets(struct import *im, const struct ref *refs, size_t nrefs)
{
    if (!nrefs)
        return;
    size_t *stack = malloc(im->nentries * sizeof(*stack));
    if (!stack) {
        im->oom = true;
        return;
    }
    size_t top = 0;
    for (size_t i = 0; i < im->nentries; i++)
        if (im->entries[i].kind == KIND_SERVICE && !mapped(&im->entries[i]))
            stack[top++] = i;
    char a[CLEAN_MAX], b[CLEAN_MAX], c[CLEAN_MAX];
    while (top) {
        size_t t = stack[--top];
        size_t lo = 0, hi = nrefs;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (refs[mid].target < t)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < nrefs && refs[lo].target == t; lo++) {
            struct entry *e = &im->entries[refs[lo].source];
            if (!mapped(e))
                continue;
            skip(im, e, "externalName '%s' names %s/%s, which this mapping does not serve",
                 clean(a, e->host), clean(b, e->target_ns), clean(c, e->target_svc));
            stack[top++] = refs[lo].source;
        }
    }
    free(stack);
}

/* The whole mapping file; each mapped entry learns its lines. */
static void render(struct import *im, struct text *t)
{
    size_t services = 0, nmapped = 0;
    for (size_t i = 0; i < im->nentries; i++) {
        services += im->entries[i].kind == KIND_SERVICE;
        nmapped += mapped(&im->entries[i]);
    }
    text_printf(
        t,
        "; A mapping file made by `svcmapd import` from Kubernetes objects:\n"
        ";     kubectl get services,endpoints,endpointslices -A -o json | svcmapd import -\n"
        "; %zu of %zu Services mapped; each object left out is a comment saying why.\n"
        "; Check it with svcmapd -t -c FILE; import again and diff to see what changed.\n"
        "\n"
        "[server]\n"
        "zone = %s\n",
        nmapped, services, im->zone);
    char a[CLEAN_MAX], b[CLEAN_MAX];
    for (size_t i = 0; i < im->nentries;) {
        size_t end = i;
        bool any = false;
        for (; end < im->nentries && strcmp(im->entries[end].ns, im->entries[i].ns) == 0; end++)
            any |= mapped(&im->entries[end]);
        /* a mapped service's namespace is a DNS-1123 label */
        if (any)
            text_printf(t, "\n[namespace %s]\n", im->entries[i].ns);
        else
            text_printf(t, "\n");
        if (!any)
            put_comment(t, "namespace", clean(a, im->entries[i].ns), NULL, "nothing mapped");
        for (; i < end; i++) {
            struct entry *e = &im->entries[i];
            if (e->notes.len)
                text_printf(t, "%s", e->notes.p);
            e->first = e->last = 0;
            if (mapped(e)) {
                e->first = t->lines + 1;
                text_printf(t, "%s = %s\n", e->name, e->value);
                e->last = t->lines;
            } else {
                put_comment(t, kinds[e->kind].name, clean(a, e->ns), clean(b, e->objname), e->skip);
            }
        }
    }
}

/* ---- svcmapd's own check ---- */

#define CHECK_FILE "import"

struct check_error {
    int line;
    const char *msg; /* valid during the call */
};

struct check_each {
    void (*fn)(void *arg, const struct check_error *err);
    void *arg;
};

/* The errors on a line of the text (those of the file as a whole, such as
 * running out of memory, are in the count check_text() returns). */
static void check_error_of(const struct diag_entry *e, void *arg)
{
    const struct check_each *each = arg;
    if (e->severity == DIAG_ERROR && e->line > 0)
        each->fn(each->arg, &(struct check_error){e->line, e->msg});
}

/*
 * Parses and compiles `text` as `svcmapd -t` does, with upstream
 * resolution off and no interface addresses (they change no error, and
 * the machine's resolv.conf and interfaces have no say), and calls `fn` with the line and message
 * of each error. Returns the number of errors, or -ENOMEM.
 */
static int check_text(const char *text, size_t len,
                      void (*fn)(void *arg, const struct check_error *err), void *arg)
{
    static const char tail[] = "\n[upstream]\nservers = none\n";
    char *all = malloc(len + sizeof(tail));
    if (!all)
        return -ENOMEM;
    memcpy(all, text, len);
    memcpy(all + len, tail, sizeof(tail));
    struct load l;
    load_init(&l, CHECK_FILE);
    static const struct zone_host no_host = {0};
    load_text(&l, all, len + sizeof(tail) - 1, NULL, &no_host, 1);
    int errors = !l.cfg && !l.diag.errors ? -ENOMEM : (int)l.diag.errors;
    free(all);
    struct check_each each = {fn, arg};
    diag_each(&l.diag, check_error_of, &each);
    load_finish(&l);
    return errors;
}

struct check_round {
    struct import *im;
    size_t skipped; /* entries this round */
    bool oom;
    const char *unplaced; /* the first error on no service's line */
    char unplaced_msg[400];
};

static void skip_failed(void *arg, const struct check_error *err)
{
    struct check_round *r = arg;
    struct import *im = r->im;
    for (size_t i = 0; i < im->nentries; i++) {
        struct entry *e = &im->entries[i];
        if (e->first && err->line >= e->first && err->line <= e->last) {
            if (!e->skip) {
                /* the message names the service: no need to clean it twice */
                skip(im, e, "svcmapd cannot serve it: %s", err->msg);
                r->skipped++;
            }
            return;
        }
    }
    if (strcmp(err->msg, "out of memory") == 0)
        r->oom = true;
    else if (!r->unplaced) {
        snprintf(r->unplaced_msg, sizeof(r->unplaced_msg), "line %d: %.300s", err->line, err->msg);
        r->unplaced = r->unplaced_msg;
    }
}

static void report_zone_error(void *arg, const struct check_error *err)
{
    diag_error(arg, 0, "%s", err->msg);
}

/* ---- the interface ---- */

char *import_read(const char *path, size_t *lenp, struct diag *d)
{
    bool std = strcmp(path, "-") == 0;
    int fd = std ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        diag_error(d, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    /* A regular file is judged by its size before any read; a pipe has
     * none, and is read to one byte over the limit, no further. */
    struct stat st;
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    int err = -EFBIG;
    char *buf = NULL;
    if (!regular || (uint64_t)st.st_size <= IMPORT_MAX_INPUT)
        buf = file_read_fd(fd, regular ? (size_t)st.st_size : 0, IMPORT_MAX_INPUT, lenp, &err);
    if (!std)
        close(fd);
    if (!buf && err == -EFBIG)
        diag_error(d, 0,
                   "larger than %u MiB, what svcmapd import reads; leave out what is not needed "
                   "(kubectl get services,endpointslices without endpoints, or -n NAMESPACE)",
                   IMPORT_MAX_INPUT >> 20);
    else if (!buf)
        diag_error(d, 0, "cannot read: %s", strerror(-err));
    return buf;
}

int import_check_zone(const char *zone, struct diag *d)
{
    char a[CLEAN_MAX];
    if (!is_host_text(zone) || strlen(zone) > 254) {
        diag_error(d, 0, "zone '%s' is not a domain name", clean(a, zone));
        return -1;
    }
    char text[300];
    int n = snprintf(text, sizeof(text), "[server]\nzone = %s\n", zone);
    int errors = check_text(text, (size_t)n, report_zone_error, d);
    if (errors < 0)
        diag_error(d, 0, "out of memory");
    return errors ? -1 : 0;
}

/* The JSON read, within the limits of IMPORT_MAX_INPUT and
 * IMPORT_MAX_MEMORY. NULL after reporting why, `*rc` -EINVAL or -ENOMEM. */
static json_t *read_json(const char *json, size_t len, struct diag *d, int *rc)
{
    *rc = -EINVAL;
    size_t blank = 0;
    while (blank < len && json[blank] && strchr(" \t\r\n", json[blank]))
        blank++;
    if (blank == len) {
        diag_error(d, 0,
                   "no input: expected the JSON List that kubectl get "
                   "services,endpoints,endpointslices -A -o json prints");
        return NULL;
    }
    if (len > IMPORT_MAX_INPUT) {
        diag_error(d, 0, "larger than %u MiB, what svcmapd import reads", IMPORT_MAX_INPUT >> 20);
        return NULL;
    }

    json_set_alloc_funcs(json_budget_malloc, json_budget_free);
    json_refused = false;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root)
        return root;
    char a[CLEAN_MAX];
    enum json_error_code code = json_error_code(&jerr);
    if (code == json_error_out_of_memory && !json_refused) {
        diag_error(d, 0, "out of memory");
        *rc = -ENOMEM;
    } else if (json_refused) {
        diag_error(d, 0, "reading this JSON takes more than %u MiB of memory",
                   IMPORT_MAX_MEMORY >> 20);
    } else if (code == json_error_null_character) {
        diag_error(d, jerr.line,
                   "a JSON string holds \\u0000, which no Kubernetes object has "
                   "(column %d)",
                   jerr.column);
    } else {
        diag_error(d, jerr.line, "%s: %s (column %d)",
                   code == json_error_premature_end_of_input ? "the JSON ends too early (cut off?)"
                   : code == json_error_stack_overflow       ? "the JSON is nested too deep"
                                                             : "not JSON",
                   clean(a, jerr.text), jerr.column);
    }
    return NULL;
}

/* The mapping written into `t` and checked as svcmapd checks it, round
 * after round: each round skips the services the check refused, at least
 * one, or ends. 0, -EINVAL (out of memory, or the check could not run:
 * the caller tells which) or -EPROTO (the check refused what no service
 * is to blame for: a bug of import's, reported). */
static int render_checked(struct import *im, const struct ref *refs, size_t nrefs, struct text *t)
{
    for (;;) {
        settle_targets(im, refs, nrefs);
        free(t->p);
        *t = (struct text){0};
        render(im, t);
        if (im->oom || t->oom)
            return -EINVAL;
        struct check_round r = {.im = im};
        int errors = check_text(t->p, t->len, skip_failed, &r);
        if (errors == 0)
            return 0;
        if (im->oom || errors < 0 || r.oom)
            return -EINVAL;
        if (r.skipped == 0) {
            diag_error(im->d, 0,
                       "internal error: the mapping made does not pass svcmapd's check: %s",
                       r.unplaced ? r.unplaced : "?");
            return -EPROTO;
        }
    }
}

static void import_finish(struct import *im)
{
    for (size_t i = 0; i < im->nentries; i++) {
        struct entry *e = &im->entries[i];
        free(e->notes.p);
        free(e->value);
        free(e->skip);
        free(e->target_ns);
        free(e->target_svc);
    }
    free(im->entries);
    for (int k = 0; k < KIND_COUNT; k++)
        free(im->objs[k]);
}

int import_convert(const char *json, size_t len, const char *zone, struct diag *d, char **out,
                   size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    char lzone[256];
    size_t zl = strlen(zone);
    if (zl > 1 && zone[zl - 1] == '.')
        zl--;
    if (zl >= sizeof(lzone)) {
        diag_error(d, 0, "the zone is too long");
        return -EINVAL;
    }
    for (size_t i = 0; i < zl; i++)
        lzone[i] = (char)tolower((unsigned char)zone[i]);
    lzone[zl] = '\0';
    struct import im = {.d = d, .zone = lzone};

    int rc;
    json_t *root = read_json(json, len, d, &rc);
    if (!root)
        return rc;

    struct text t = {0};
    struct ref *refs = NULL;
    size_t nrefs = 0;
    if (read_list(&im, root) && !im.oom) {
        make_entries(&im);
        if (!d->errors && !im.oom) {
            if (im.nentries)
                qsort(im.entries, im.nentries, sizeof(*im.entries), cmp_entry);
            refs = link_targets(&im, &nrefs);
            rc = render_checked(&im, refs, nrefs, &t);
        }
    }
    if (rc == 0) {
        *out = t.p;
        *out_len = t.len;
        t.p = NULL;
    }
    if (rc != 0 && rc != -EPROTO && (im.oom || t.oom || d->errors == 0)) {
        diag_error(d, 0, "out of memory");
        rc = -ENOMEM;
    }
    free(t.p);
    free(refs);
    import_finish(&im);
    json_decref(root);
    return rc;
}
