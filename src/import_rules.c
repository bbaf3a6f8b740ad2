/* import_rules.c -- what each Service maps to, or why it is left out. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import_impl.h"

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

/* ---- names ---- */

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
bool imp_is_host_text(const char *s)
{
    size_t n = strlen(s);
    return n > 0 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n;
}

/* ---- one Service ---- */

static int cmp_target(const void *pa, const void *pb)
{
    const struct target *a = pa, *b = pb;
    if (a->family != b->family)
        return a->family == AF_INET ? -1 : 1;
    int c = memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16);
    return c != 0 ? c : (int)a->port - (int)b->port;
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
    imp_put_comment(&e->notes, imp_kinds[about->kind].name, imp_clean(a, about->ns),
                    imp_clean(b, about->name), msg);
    im->oom |= e->notes.oom;
}

/* Marks `e` as not mapped, for the reason given (kept: the first). */
__attribute__((format(printf, 3, 4))) void imp_skip(struct import *im, struct entry *e,
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

/* The hostname target `host` (an ExternalName), for `e`: inside the zone
 * it must name a service of the mapping, which imp_settle_targets() checks
 * once every service is known. */
static void host_target(struct import *im, struct entry *e, const char *host)
{
    char low[256], a[CLEAN_MAX];
    size_t n = strlen(host);
    if (n > 1 && host[n - 1] == '.')
        n--;
    if (n >= sizeof(low) || strlen(e->name) + 3 + n > MAX_LINE) {
        imp_skip(im, e, "externalName '%s' is longer than a line of the mapping file holds",
                 imp_clean(a, host));
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
        imp_skip(im, e,
                 "externalName '%s' is inside zone %s but names no service "
                 "(<service>.<namespace>.svc.%s)",
                 imp_clean(a, host), im->zone, im->zone);
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
    const char *ext = imp_member_string(im, spec, "spec", "externalName", "");
    struct target t;
    if (!*ext) {
        imp_skip(im, e, "an ExternalName without externalName");
    } else if (imp_parse_ip(ext, &t)) {
        /* what CoreDNS answers NXDOMAIN (coredns#2324) */
        char ip[INET6_ADDRSTRLEN];
        e->value = strdup(inet_ntop(t.family, t.addr, ip, sizeof(ip)));
        im->oom |= !e->value;
    } else if (!imp_is_host_text(ext)) {
        imp_skip(im, e, "externalName '%s' is neither an IP address nor a host name",
                 imp_clean(a, ext));
    } else {
        host_target(im, e, ext);
    }
}

/* The Service port to map (the first), with a note naming the others. */
static bool service_port(struct import *im, struct entry *e, struct object *svc, json_t *spec,
                         struct port *p)
{
    json_t *ports = imp_member(im, spec, "spec", "ports", JSON_ARRAY);
    char a[CLEAN_MAX], first[CLEAN_MAX + 16];
    struct text others = {0};
    *p = (struct port){false, "", "TCP"};
    im->cur = svc;
    for (size_t i = 0; i < json_array_size(ports); i++) {
        const char *name, *proto;
        uint16_t number;
        if (!imp_port_at(im, ports, i, "spec.ports", &name, &proto, &number))
            continue;
        char label[CLEAN_MAX + 16];
        if (*name) /* else by its number */
            imp_clean(label, name);
        else
            snprintf(label, sizeof(label), "%u/%s", number, imp_clean(a, proto));
        if (i == 0) {
            *p = (struct port){true, name, proto};
            memcpy(first, label, sizeof(label));
        } else {
            imp_text_printf(&others, "%s%s", others.len ? ", " : "", label);
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
        imp_skip(im, e, "port protocol %s (SRV records know TCP, UDP and SCTP)",
                 imp_clean(a, p->proto));
        return false;
    }
    if (*p->name && !is_label(p->name)) {
        imp_skip(im, e, "port name '%s' is not a DNS-1123 label", imp_clean(a, p->name));
        return false;
    }
    return true;
}

/* The ready addresses of `svc`'s IPv4 and IPv6 EndpointSlices, or of its
 * Endpoints if it has no such slice, into `ts`; a slice of another type
 * is a note of `e`'s. False when it has neither. */
static bool collect_targets(struct import *im, struct entry *e, struct object *svc,
                            const struct port *port, struct targets *ts)
{
    size_t nslices = 0, neps = 0, used = 0;
    struct object *slices = imp_find_objects(im, KIND_SLICE, svc->ns, svc->name, &nslices);
    struct object *eps = imp_find_objects(im, KIND_ENDPOINTS, svc->ns, svc->name, &neps);
    char a[CLEAN_MAX];
    for (size_t i = 0; i < nslices; i++) {
        im->cur = &slices[i];
        const char *type = imp_member_string(im, slices[i].json, "", "addressType", "");
        im->cur = NULL;
        if (strcmp(type, "IPv4") == 0 || strcmp(type, "IPv6") == 0) {
            imp_slice_targets(im, &slices[i], port, ts);
            used++;
        } else if (strcmp(type, "FQDN") == 0) {
            note(im, e, &slices[i], "addressType FQDN is deprecated; not imported");
        } else {
            note(im, e, &slices[i], "addressType '%s' is unknown; not imported",
                 imp_clean(a, type));
        }
    }
    if (!used && neps)
        imp_endpoints_targets(im, eps, port, ts);
    return used || neps;
}

/* `ts` sorted, each address once, with its lowest port (a mapping holds an
 * address once: one A or AAAA record); the count of the other ports left
 * out. */
static size_t unique_targets(struct targets *ts)
{
    qsort(ts->t, ts->n, sizeof(*ts->t), cmp_target);
    size_t n = 0, ports = 0;
    for (size_t i = 0; i < ts->n; i++) {
        const struct target *last = n ? &ts->t[n - 1] : NULL;
        if (last && last->family == ts->t[i].family &&
            memcmp(last->addr, ts->t[i].addr, last->family == AF_INET ? 4 : 16) == 0) {
            ports += last->port != ts->t[i].port;
            continue;
        }
        ts->t[n++] = ts->t[i];
    }
    ts->n = n;
    return ports;
}

/*
 * In `srv` (`cap` bytes), the srv= option of Service `service` mapped to
 * `port`, whose targets carry a port number when `has_port` ("" when they
 * do not, or when none is needed): srv=_NAME._PROTO for a named port;
 * svcmapd's default is _<service>._tcp, so an unnamed one of another
 * protocol says its own.
 */
static void srv_option(char *srv, size_t cap, const char *service, const struct port *port,
                       bool has_port)
{
    char proto[8];
    snprintf(proto, sizeof(proto), "%s", port->proto); /* TCP, UDP or SCTP */
    for (char *c = proto; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *srv = '\0';
    if (has_port && *port->name)
        snprintf(srv, cap, "srv=_%s._%s", port->name, proto);
    else if (has_port && strcmp(proto, "tcp") != 0)
        snprintf(srv, cap, "srv=_%s._%s", service, proto);
}

/* The ready addresses of a Service without a selector: its IPv4 and IPv6
 * EndpointSlices, or its Endpoints if it has none. */
static void endpoint_targets(struct import *im, struct entry *e, struct object *svc, json_t *spec)
{
    struct port port;
    if (!service_port(im, e, svc, spec, &port))
        return;
    struct targets ts = {0};
    bool found = collect_targets(im, e, svc, &port, &ts);
    char a[CLEAN_MAX];
    if (ts.bad) {
        imp_skip(im, e, "address '%s' is not an IP address", imp_clean(a, ts.bad));
    } else if (!found) {
        imp_skip(im, e, "no Endpoints, no IPv4 or IPv6 EndpointSlice");
    } else if (ts.n == 0) {
        char with[CLEAN_MAX + 16] = "", unready[32] = "";
        if (ts.portless)
            snprintf(with, sizeof(with), " with port %s",
                     *port.name ? imp_clean(a, port.name) : "(unnamed)");
        if (ts.not_ready)
            snprintf(unready, sizeof(unready), " (%u not ready)", ts.not_ready);
        imp_skip(im, e, "no ready address%s%s", with, unready);
    } else {
        if (ts.not_ready)
            note(im, e, svc, "%u address%s not ready, left out", ts.not_ready,
                 ts.not_ready == 1 ? "" : "es");
        if (ts.portless)
            note(im, e, svc, "%u ready address%s without port %s, left out", ts.portless,
                 ts.portless == 1 ? "" : "es", *port.name ? imp_clean(a, port.name) : "(unnamed)");
        size_t ports = unique_targets(&ts);
        if (ports)
            note(im, e, svc,
                 "%zu address%s with another port as well, left out: an address is mapped once, "
                 "with its lowest port",
                 ports, ports == 1 ? "" : "es");
        char srv[80];
        srv_option(srv, sizeof(srv), svc->name, &port, ts.t[0].port != 0);
        e->value = imp_service_value(svc->name, &ts, *srv ? srv : NULL);
        im->oom |= !e->value;
    }
    free(ts.t);
}

static void map_service(struct import *im, struct object *svc, struct entry *e)
{
    char a[CLEAN_MAX];
    if (!is_label(svc->ns)) {
        imp_skip(im, e, "the namespace name is not a DNS-1123 label");
        return;
    }
    if (!is_label(svc->name)) {
        imp_skip(im, e, "the name is not a DNS-1123 label");
        return;
    }
    if (strcmp(svc->ns, "default") == 0 && strcmp(svc->name, "kubernetes") == 0) {
        imp_skip(im, e, "the API server's own Service, kept by Kubernetes");
        return;
    }
    im->cur = svc;
    json_t *spec = imp_member(im, svc->json, "", "spec", JSON_OBJECT);
    const char *type = imp_member_string(im, spec, "spec", "type", "ClusterIP");
    json_t *selector = imp_member(im, spec, "spec", "selector", JSON_OBJECT);
    im->cur = NULL;
    if (strcmp(type, "ExternalName") == 0) {
        /* kubectl create service externalname adds a selector, which
         * Kubernetes ignores for this type */
        im->cur = svc;
        external_name(im, e, spec);
        im->cur = NULL;
    } else if (json_object_size(selector) > 0) {
        imp_skip(im, e, "%s with a selector: Kubernetes keeps its endpoints and CoreDNS answers it",
                 imp_clean(a, type));
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
void imp_make_entries(struct import *im)
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
            if (o->service && imp_find_objects(im, KIND_SERVICE, o->ns, o->service, &n))
                continue;
            char a[CLEAN_MAX];
            struct entry *e =
                new_entry(im, o->ns, o->service ? o->service : o->name, (enum kind)k, o->name);
            if (!e)
                break;
            if (!o->service)
                imp_skip(im, e, "no label kubernetes.io/service-name: no Service");
            else if (k == KIND_SLICE)
                imp_skip(im, e, "no Service %s in the input", imp_clean(a, o->service));
            else
                imp_skip(im, e, "no Service of that name in the input");
        }
    }
}

static int cmp_ref(const void *pa, const void *pb)
{
    const struct ref *a = pa, *b = pb;
    return a->target < b->target ? -1 : a->target > b->target;
}

/* Finds the service each in-zone hostname target names; those that name
 * none, or themselves, are skipped. Returns the references, sorted by
 * target (`*count` of them; NULL and 0 when there are none). */
struct ref *imp_link_targets(struct import *im, size_t *count)
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
        struct entry *t = bsearch(&key, im->entries, im->nentries, sizeof(key), imp_cmp_entry);
        if (t == e) {
            imp_skip(im, e, "externalName '%s' is the Service's own name", imp_clean(a, e->host));
        } else if (!t) {
            imp_skip(im, e, "externalName '%s' names %s/%s, which this mapping does not serve",
                     imp_clean(a, e->host), imp_clean(b, e->target_ns),
                     imp_clean(c, e->target_svc));
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
void imp_settle_targets(struct import *im, const struct ref *refs, size_t nrefs)
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
            imp_skip(im, e, "externalName '%s' names %s/%s, which this mapping does not serve",
                     imp_clean(a, e->host), imp_clean(b, e->target_ns),
                     imp_clean(c, e->target_svc));
            stack[top++] = refs[lo].source;
        }
    }
    free(stack);
}
