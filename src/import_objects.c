/* import_objects.c -- the JSON List read: its Services, Endpoints and EndpointSlices. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import_impl.h"

const struct kind_info imp_kinds[KIND_COUNT] = {
    [KIND_SERVICE] = {"Service", "ServiceList", {"v1", NULL, NULL}},
    [KIND_ENDPOINTS] = {"Endpoints", "EndpointsList", {"v1", NULL, NULL}},
    [KIND_SLICE] = {"EndpointSlice",
                    "EndpointSliceList",
                    {"discovery.k8s.io/v1", "discovery.k8s.io/v1beta1", NULL}},
};

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

/* The JSON read, within the limits of IMPORT_MAX_INPUT and
 * IMPORT_MAX_MEMORY. NULL after reporting why, `*rc` -EINVAL or -ENOMEM. */
json_t *imp_read_json(const char *json, size_t len, struct diag *d, int *rc)
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
                   imp_clean(a, jerr.text), jerr.column);
    }
    return NULL;
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
        diag_error(im->d, 0, "items[%zu] (%s %s/%s): %s", o->index, imp_kinds[o->kind].name,
                   imp_clean(a, o->ns), imp_clean(b, o->name), msg);
    else
        diag_error(im->d, 0, "items[%zu]: %s", im->cur_index, msg);
}

/*
 * obj[key] if it is of `type` (JSON_TRUE: a boolean); NULL when `obj` is
 * NULL, or the key is absent or null (Kubernetes leaves out or nulls what
 * is not set), and when it has another type, after reporting that at
 * `path`.`key`.
 */
json_t *imp_member(struct import *im, json_t *obj, const char *path, const char *key,
                   json_type type)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v))
        return NULL;
    if (json_typeof(v) == type || (type == JSON_TRUE && json_is_boolean(v)))
        return v;
    char k[CLEAN_MAX];
    object_error(im, "%s%s%s: expected %s, not %s", path, *path ? "." : "", imp_clean(k, key),
                 type == JSON_TRUE ? "a boolean" : type_names[type], type_names[json_typeof(v)]);
    return NULL;
}

/* The string obj[key], `fallback` when it is absent (or after reporting
 * that it is no string). */
const char *imp_member_string(struct import *im, json_t *obj, const char *path, const char *key,
                              const char *fallback)
{
    json_t *v = imp_member(im, obj, path, key, JSON_STRING);
    return v ? json_string_value(v) : fallback;
}

/* The port number obj[key]: 1 to 65535, 0 when absent or bad (reported). */
static uint16_t member_port(struct import *im, json_t *obj, const char *path, const char *key)
{
    json_t *v = imp_member(im, obj, path, key, JSON_INTEGER);
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
    for (size_t i = 0; imp_kinds[k].versions[i]; i++)
        if (strcmp(imp_kinds[k].versions[i], version) == 0)
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
    const char *kind = imp_member_string(im, item, "", "kind", NULL);
    int k = list_kind;
    if (kind) {
        for (k = 0; k < KIND_COUNT && strcmp(imp_kinds[k].name, kind) != 0; k++)
            ;
    } else if (k < 0) {
        object_error(im, "no kind");
        return;
    }
    json_t *meta = imp_member(im, item, "", "metadata", JSON_OBJECT);
    const char *ns = imp_member_string(im, meta, "metadata", "namespace", NULL);
    const char *name = imp_member_string(im, meta, "metadata", "name", NULL);
    const char *version = imp_member_string(im, item, "", "apiVersion", NULL);
    char a[CLEAN_MAX], b[CLEAN_MAX], c[CLEAN_MAX], v[CLEAN_MAX], head[4 * CLEAN_MAX];
    snprintf(head, sizeof(head), "items[%zu] (%s %s/%s)", i,
             imp_clean(a, k < KIND_COUNT ? imp_kinds[k].name : kind), imp_clean(b, ns ? ns : "?"),
             imp_clean(c, name ? name : "?"));
    bool ok = false;
    if (k == KIND_COUNT || (list_kind >= 0 && k != list_kind))
        diag_error(im->d, 0,
                   "%s: svcmapd import reads Services, Endpoints and EndpointSlices, as kubectl "
                   "get services,endpoints,endpointslices -A -o json prints them",
                   head);
    else if (version && !version_ok((enum kind)k, version))
        diag_error(im->d, 0, "%s: apiVersion %s, which svcmapd import does not read", head,
                   imp_clean(v, version));
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
        json_t *labels = imp_member(im, meta, "metadata", "labels", JSON_OBJECT);
        o.service =
            imp_member_string(im, labels, "metadata.labels", "kubernetes.io/service-name", NULL);
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

/* By namespace and the Service they belong to (imp_find_objects()). */
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
bool imp_read_list(struct import *im, json_t *root)
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
            if (strcmp(json_string_value(kind), imp_kinds[k].list) == 0)
                list_kind = k;
    }
    if (list_kind == -2) {
        char a[CLEAN_MAX];
        if (json_is_string(kind))
            diag_error(im->d, 0, "%s, but a %s", what, imp_clean(a, json_string_value(kind)));
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
                object_error(im, "the same %s as items[%zu]", imp_kinds[k].name, o[i - 1].index);
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
struct object *imp_find_objects(struct import *im, enum kind k, const char *ns, const char *name,
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

/* ---- the parts read while mapping: ports and ready addresses ---- */

bool imp_parse_ip(const char *s, struct target *t)
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
    if (!imp_parse_ip(ip, &t)) {
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
bool imp_port_at(struct import *im, json_t *ports, size_t i, const char *path, const char **name,
                 const char **proto, uint16_t *number)
{
    char at[64];
    json_t *p = object_at(im, ports, i, path, at, sizeof(at));
    if (!p)
        return false;
    *name = imp_member_string(im, p, at, "name", "");
    *proto = imp_member_string(im, p, at, "protocol", "TCP");
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
        if (imp_port_at(im, ports, i, path, &name, &proto, &port) &&
            strcmp(name, want->name) == 0 && strcmp(proto, want->proto) == 0)
            return port;
    }
    return 0;
}

/* The ready addresses of an Endpoints object. */
void imp_endpoints_targets(struct import *im, struct object *ep, const struct port *want,
                           struct targets *ts)
{
    im->cur = ep;
    json_t *subsets = imp_member(im, ep->json, "", "subsets", JSON_ARRAY);
    char at[64], ad[96], list[80];
    for (size_t i = 0; i < json_array_size(subsets); i++) {
        json_t *s = object_at(im, subsets, i, "subsets", at, sizeof(at));
        if (!s)
            continue;
        snprintf(ad, sizeof(ad), "%s.ports", at);
        uint16_t port =
            want->any ? endpoint_port(im, imp_member(im, s, at, "ports", JSON_ARRAY), ad, want) : 0;
        json_t *addrs = imp_member(im, s, at, "addresses", JSON_ARRAY);
        json_t *notready = imp_member(im, s, at, "notReadyAddresses", JSON_ARRAY);
        ts->not_ready += (unsigned)json_array_size(notready);
        snprintf(list, sizeof(list), "%s.addresses", at);
        for (size_t j = 0; j < json_array_size(addrs); j++) {
            json_t *a = object_at(im, addrs, j, list, ad, sizeof(ad));
            if (!a)
                continue;
            unsigned errors = im->d->errors;
            const char *ip = imp_member_string(im, a, ad, "ip", NULL);
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
void imp_slice_targets(struct import *im, struct object *sl, const struct port *want,
                       struct targets *ts)
{
    im->cur = sl;
    uint16_t port = want->any ? endpoint_port(im, imp_member(im, sl->json, "", "ports", JSON_ARRAY),
                                              "ports", want)
                              : 0;
    json_t *eps = imp_member(im, sl->json, "", "endpoints", JSON_ARRAY);
    char at[64];
    for (size_t i = 0; i < json_array_size(eps); i++) {
        json_t *e = object_at(im, eps, i, "endpoints", at, sizeof(at));
        if (!e)
            continue;
        unsigned errors = im->d->errors;
        json_t *addrs = imp_member(im, e, at, "addresses", JSON_ARRAY);
        json_t *cond = imp_member(im, e, at, "conditions", JSON_OBJECT);
        char cat[96];
        snprintf(cat, sizeof(cat), "%s.conditions", at);
        json_t *ready = imp_member(im, cond, cat, "ready", JSON_TRUE);
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
