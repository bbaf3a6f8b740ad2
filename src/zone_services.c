/* zone_services.c -- compiles the services: addresses, endpoints, SRV, hostnames' CNAMEs. */
#include <arpa/inet.h>
#include <ctype.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/arena.h"
#include "zone_compile.h"

#define MAX_CHAIN 10 /* CNAMEs followed, as CoreDNS's maxCnameChainLength */

/* ---------------------------------------------------------------------- */
/* Services.                                                               */

uint64_t service_fp(const struct config_service *s)
{
    /* a line that gave a warning never matches its own: it is parsed
     * again on every reload, and warns again (struct config_skip) */
    return s->warned ? ~s->text_fp : s->text_fp;
}

/* The address records of one name, with `o` as owner. */
static const struct zone_rrset *service_addresses(struct compiler *c, const struct info *in,
                                                  const struct owner *o, uint16_t type)
{
    int family = type == LDNS_RR_TYPE_A ? AF_INET : AF_INET6;
    size_t size = family == AF_INET ? 4 : 16;
    uint8_t buf[1024 * 16];
    size_t n = 0;

    if (in->kind == INFO_ENDPOINT) {
        if (in->u.target->family == family) {
            memcpy(buf, in->u.target->addr, size);
            n = 1;
        }
    } else if (in->kind == INFO_ADDRESS) {
        for (uint32_t i = 0; i < in->u.svc->ntargets && n < 1024; i++)
            if (in->u.svc->targets[i].family == family)
                memcpy(buf + n++ * size, in->u.svc->targets[i].addr, size);
    } else if (in->kind == INFO_NSDNS) {
        if (family == AF_INET)
            return c->nns4 ? build_addresses(c, o, type, c->cfg->ttl, c->ns4[0], 4, c->nns4) : NULL;
        return c->nns6 ? build_addresses(c, o, type, c->cfg->ttl, c->ns6[0], 16, c->nns6) : NULL;
    }
    if (n == 0)
        return NULL;
    return build_addresses(c, o, type, in->ttl, buf, size, n);
}

/* The CNAME of hostname service `in`, owned by `o`: to its target in the
 * zone, written as labels before the apex in the question, or to a
 * hostname outside it as written (resolve_host_target()). The one builder
 * of the CNAME a query for the service gets, and of the one a chain
 * through it shows. NULL when out of memory. */
static const struct zone_rrset *build_cname(struct compiler *c, struct info *in,
                                            const struct owner *o)
{
    struct builder *b = c->b;
    b_reset(b);
    b_rr_begin(b, o, LDNS_RR_TYPE_CNAME, in->ttl);
    if (extra_of(c, in)->host_node) {
        struct owner t = rel_owner(c, extra_of(c, in)->host_node);
        b_name(b, &t);
    } else {
        b_bytes(b, extra_of(c, in)->host, extra_of(c, in)->host_len);
    }
    b_rr_end(b);
    return b_finish(c->z, b, false);
}

/* The A, AAAA or CNAME RRset of `n` with its own name as owner: for CNAME
 * chains and additional sections. NULL if it has none. */
static const struct zone_rrset *named_rrset(struct compiler *c, struct znode *n, enum named which)
{
    struct info *in = info_of(c, n);
    if (extra_of(c, in)->named_built[which])
        return extra_of(c, in)->named[which];
    extra_of(c, in)->named_built[which] = true;

    struct owner o = rel_owner(c, n);
    if (which == NAMED_CNAME) {
        if (in->kind != INFO_HOST)
            return NULL;
        extra_of(c, in)->named[NAMED_CNAME] = build_cname(c, in, &o);
    } else {
        extra_of(c, in)->named[which] =
            service_addresses(c, in, &o, which == NAMED_A ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA);
    }
    return extra_of(c, in)->named[which];
}

static size_t service_rel(const struct config_namespace *ns, const struct config_service *s,
                          uint8_t *out)
{
    size_t n = put_label(out, 0, s->name, strlen(s->name));
    n = put_label(out, n, ns->name, strlen(ns->name));
    return put_label(out, n, "svc", 3);
}

/* Keeps the PTR of address `t` to `target` for compile_ptrs(). */
static void queue_ptr(struct compiler *c, const struct config_target *t, const uint8_t *target,
                      size_t target_len, uint32_t ttl)
{
    struct ptr_list *l = &c->ptrs[t->family == AF_INET ? 0 : 1];
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct zone_ptr *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            oom(c);
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    struct zone_ptr *p = &l->v[l->n++];
    memset(p->addr, 0, sizeof(p->addr));
    memcpy(p->addr, t->addr, t->family == AF_INET ? 4 : 16);
    p->target = target;
    p->target_len = (uint8_t)target_len;
    p->ttl = ttl;
}

/* <dashed address>.<svc>.<ns>.svc.<zone> in `name`; its length, or 0 if
 * longer than 255 bytes. */
static size_t endpoint_name(const struct znode *service, const struct config_target *t,
                            uint8_t *name)
{
    char label[INET6_ADDRSTRLEN + 2];
    size_t l = dashed_label(t, label);
    size_t rl = put_label(name, 0, label, l);
    if (rl + service->len > LDNS_MAX_DOMAINLEN)
        return 0;
    memcpy(name + rl, node_name(service), service->len);
    return rl + service->len;
}

/* A and AAAA at a service of addresses. False if they do not fit in one
 * DNS message (reported). */
static bool compile_addresses(struct compiler *c, const struct config_service *s,
                              struct znode *node)
{
    struct info *in = info_of(c, node);
    const struct owner q = {OWNER_QNAME, NULL, 0};
    size_t n4 = 0, n6 = 0;
    for (uint32_t i = 0; i < s->ntargets; i++) {
        if (s->targets[i].family == AF_INET)
            n4++;
        else
            n6++;
    }

    const struct zone_rrset *a = n4 ? service_addresses(c, in, &q, LDNS_RR_TYPE_A) : NULL;
    const struct zone_rrset *aaaa = n6 ? service_addresses(c, in, &q, LDNS_RR_TYPE_AAAA) : NULL;
    if ((n4 && !a) || (n6 && !aaaa)) {
        diag_error(c->d, s->line, "service '%s': too many addresses for one DNS message", s->name);
        return false;
    }
    static const enum check_which checked_a[] = {CHECK_A}, checked_aaaa[] = {CHECK_AAAA};
    if (a)
        add_plan(c, node, LDNS_RR_TYPE_A,
                 checked_plan(c, node, answer_plan(c, &a, 1, NULL, 0), checked_a));
    if (aaaa)
        add_plan(c, node, LDNS_RR_TYPE_AAAA,
                 checked_plan(c, node, answer_plan(c, &aaaa, 1, NULL, 0), checked_aaaa));
    c->z->stats.records += s->ntargets;
    return true;
}

/* Several addresses: each gets an endpoint name (Kubernetes DNS spec
 * §2.4, headless services), the target of its SRV record and of its PTR.
 * The names are not nodes of the zone: zone_find() answers them from
 * the service's own A and AAAA records, which already hold everything
 * (a third of the names of a large mapping, and most of its memory).
 * `targets[i]` becomes the name of address i: its endpoint's, or with one
 * address the service's own. Queues the PTR of every address. */
static void compile_endpoints(struct compiler *c, const struct config_namespace *ns,
                              const struct config_service *s, struct znode *node,
                              struct owner *targets)
{
    struct zone *z = c->z;
    uint32_t ttl = info_of(c, node)->ttl;
    if (s->ntargets > 1)
        node->flags |= NODE_ENDPOINTS;
    for (uint32_t i = 0; i < s->ntargets; i++) {
        const struct config_target *t = &s->targets[i];
        targets[i] = rel_owner(c, node);
        if (s->ntargets > 1) {
            uint8_t name[LDNS_MAX_DOMAINLEN + 1];
            size_t len = endpoint_name(node, t, name);
            const uint8_t *copy = len ? arena_memdup(z->arena, name, len) : NULL;
            if (len == 0) {
                char label[INET6_ADDRSTRLEN + 2];
                dashed_label(t, label);
                diag_error(c->d, t->line, "endpoint name '%s.%s.%s.svc.%s' is too long", label,
                           s->name, ns->name, c->cfg->zone);
                continue;
            }
            if (!copy) {
                oom(c);
                break;
            }
            targets[i] = (struct owner){OWNER_REL, copy, len - z->apex_len};
            z->stats.names++;
            z->stats.records++;
        }
        queue_ptr(c, t, targets[i].wire, targets[i].len + z->apex_len, ttl);
        z->stats.records++;
    }
}

/* _<port>._<proto>.<svc>.<ns>.svc.<zone>: the SRV name of a service,
 * answering `plan`. */
static void add_srv_name(struct compiler *c, const struct config_service *s, struct znode *node,
                         const struct zone_plan *plan)
{
    const char *pname = s->srv_name ? s->srv_name : s->name;
    char label[66];
    int pl = snprintf(label, sizeof(label), "_%s", pname);
    uint8_t name[LDNS_MAX_DOMAINLEN + 1];
    size_t rl = 0;
    size_t len = 0;
    if (pl <= 63) {
        rl = put_label(name, 0, label, (size_t)pl);
        snprintf(label, sizeof(label), "_%s", s->srv_proto ? s->srv_proto : "tcp");
        rl = put_label(name, rl, label, strlen(label));
        if (rl + node->len <= LDNS_MAX_DOMAINLEN) { /* the service's name may be 255 */
            memcpy(name + rl, node_name(node), node->len);
            len = rl + node->len;
        }
    }
    if (len == 0) {
        diag_error(c->d, s->line,
                   "service '%s': SRV name '_%s._%s.%s...' is too long; set a shorter "
                   "srv=_NAME._PROTO",
                   s->name, pname, s->srv_proto ? s->srv_proto : "tcp", s->name);
        return;
    }
    struct znode *port = add_node(c, name, len, INFO_PORT, NODE_IN_ZONE, 1);
    if (port)
        add_plan(c, port, LDNS_RR_TYPE_SRV, plan);
    /* _<proto>.<svc> is an empty non-terminal: a flag, not a node,
     * as there may be a million of them */
    const uint8_t *proto = name + 1 + name[0];
    node->flags |= proto_flag(proto + 2, (size_t)proto[0] - 1);
}

/* SRV (SPEC §2.4): priority 0, weights share 100, the targets' addresses
 * in ADDITIONAL; at the service's name and at its SRV name. */
static void compile_srv(struct compiler *c, const struct config_service *s, struct znode *node,
                        const struct owner *targets)
{
    struct zone *z = c->z;
    const struct owner q = {OWNER_QNAME, NULL, 0};
    uint32_t ttl = info_of(c, node)->ttl;
    struct builder *b = c->b;
    uint16_t weight = (uint16_t)(s->ntargets >= 100 ? 1 : 100 / s->ntargets);
    b_reset(b);
    for (uint32_t i = 0; i < s->ntargets; i++) {
        b_rr_begin(b, &q, LDNS_RR_TYPE_SRV, ttl);
        b_u16(b, 0);
        b_u16(b, weight);
        b_u16(b, s->targets[i].port);
        b_name(b, &targets[i]);
        b_rr_end(b);
    }
    const struct zone_rrset *srv = b_finish(z, b, false);
    z->stats.records += s->ntargets * 2; /* bare name and _port._proto */

    const struct zone_rrset *extra[2];
    size_t nextra = 0;
    if (s->ntargets == 1) {
        enum named which = s->targets[0].family == AF_INET ? NAMED_A : NAMED_AAAA;
        extra[nextra++] = named_rrset(c, node, which);
    } else {
        /* one record per endpoint, each its own name */
        b_reset(b);
        for (uint32_t i = 0; i < s->ntargets; i++) {
            const struct config_target *t = &s->targets[i];
            b_rr_begin(b, &targets[i], t->family == AF_INET ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA,
                       ttl);
            b_bytes(b, t->addr, t->family == AF_INET ? 4 : 16);
            b_rr_end(b);
        }
        extra[nextra++] = b_finish(z, b, false);
    }
    if (!srv || !extra[0]) {
        diag_error(c->d, s->line, "service '%s': its SRV answer is too large for one DNS message",
                   s->name);
        return;
    }
    static const enum check_which checked_srv[] = {CHECK_SRV, CHECK_SRV_ADD};
    const struct zone_plan *plan =
        checked_plan(c, node, answer_plan(c, &srv, 1, extra, nextra), checked_srv);
    add_plan(c, node, LDNS_RR_TYPE_SRV, plan);
    add_srv_name(c, s, node, plan);
}

static void compile_address_service(struct compiler *c, const struct config_namespace *ns,
                                    const struct config_service *s, struct znode *node)
{
    if (!compile_addresses(c, s, node))
        return;
    struct owner *targets = calloc(s->ntargets, sizeof(*targets));
    if (!targets) {
        oom(c);
        return;
    }
    compile_endpoints(c, ns, s, node, targets);
    if (s->targets[0].port)
        compile_srv(c, s, node, targets);
    free(targets);
}

void compile_services(struct compiler *c)
{
    struct zone *z = c->z;
    const struct config *cfg = c->cfg;
    size_t k = 0; /* the service's place in the config, for c->keep */
    z->namespaces = arena_alloc(z->arena, (cfg->nnamespaces + 1) * sizeof(*z->namespaces));
    if (!z->namespaces) {
        oom(c);
        return;
    }

    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        const struct config_namespace *ns = &cfg->namespaces[i];
        uint8_t name[LDNS_MAX_DOMAINLEN + 1];
        size_t rl = put_label(name, 0, ns->name, strlen(ns->name));
        rl = put_label(name, rl, "svc", 3);
        size_t len = with_apex(z, name, rl);
        if (len == 0) {
            diag_error(c->d, ns->line, "namespace name '%s.svc.%s' is too long", ns->name,
                       cfg->zone);
            continue;
        }
        struct znode *nsnode = add_node(c, name, len, INFO_EMPTY, NODE_IN_ZONE, 0);
        if (!nsnode)
            return;
        z->namespaces[z->nnamespaces++] = nsnode;

        for (size_t j = 0; j < ns->nservices; j++) {
            const struct config_service *s = &ns->services[j];
            if (c->keep && c->keep[k++])
                continue; /* the patch's base has it */
            rl = service_rel(ns, s, name);
            len = with_apex(z, name, rl);
            if (len == 0) {
                diag_error(c->d, s->line, "name '%s.%s.svc.%s' is longer than 255 bytes", s->name,
                           ns->name, cfg->zone);
                continue;
            }
            if (s->invalid) {
                /* reported by config.c; exists so references to it resolve */
                if (!add_node(c, name, len, INFO_BROKEN, NODE_IN_ZONE, 0))
                    return;
                continue;
            }
            bool host = s->targets[0].kind == CONFIG_TARGET_HOSTNAME;
            struct znode *node = add_node(c, name, len, host ? INFO_HOST : INFO_ADDRESS,
                                          NODE_IN_ZONE | NODE_SERVICE, host ? 4 : 3);
            if (!node)
                return;
            struct info *in = info_of(c, node);
            in->u.svc = s;
            in->ttl = s->ttl >= 0 ? (uint32_t)s->ttl : cfg->ttl;
            if (!host)
                check_service(c, ns, s, node); /* before its records: it caps the TTL */
            node->fp = service_fp(s);
            z->stats.services++;
            if (!host)
                compile_address_service(c, ns, s, node);
            if (c->oom)
                return;
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Hostname services: CNAME, chased inside the zone (SPEC §2.3).           */

/* The node of an endpoint name, made when a hostname service points at
 * one (endpoints are otherwise not nodes: see compile_address_service()).
 * NULL if `name` is no endpoint. */
static struct znode *endpoint_node(struct compiler *c, const uint8_t *name, size_t len)
{
    uint8_t addr[16];
    int size;
    struct znode *service = endpoint_service(c->z, name, len, addr, &size);
    if (!service)
        return NULL;
    struct info *sin = info_of(c, service);
    for (uint32_t i = 0; i < sin->u.svc->ntargets; i++) {
        const struct config_target *t = &sin->u.svc->targets[i];
        if (t->family != (size == 4 ? AF_INET : AF_INET6) || memcmp(t->addr, addr, (size_t)size))
            continue;
        struct znode *n = add_node(c, name, len, INFO_ENDPOINT, NODE_IN_ZONE, 1);
        if (!n)
            return NULL;
        struct info *in = info_of(c, n);
        in->u.target = t;
        in->ttl = sin->ttl;
        uint16_t type = t->family == AF_INET ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA;
        const struct owner q = {OWNER_QNAME, NULL, 0};
        const struct zone_rrset *r = service_addresses(c, in, &q, type);
        add_plan(c, n, type, answer_plan(c, &r, 1, NULL, 0));
        c->z->stats.names--; /* counted with its service */
        return n;
    }
    return NULL;
}

/* Marks `target`, and the service whose endpoint or SRV name it is, as
 * taken into a chain (NODE_TARGETED). */
static void mark_targeted(struct zone *z, struct znode *target)
{
    target->flags |= NODE_TARGETED;
    const uint8_t *name = node_name(target);
    size_t at = srv_shaped(name, target->len) ? srv_service_at(name) : (size_t)name[0] + 1;
    struct znode *service = at < target->len ? node_lookup(z, name + at, target->len - at) : NULL;
    if (service && (service->flags & NODE_SERVICE))
        service->flags |= NODE_TARGETED;
}

/* The hostname in wire form, and whether it is ours. Reports a target
 * that points into the zone at nothing, or at itself. */
static bool resolve_host_target(struct compiler *c, struct znode *node)
{
    struct info *in = info_of(c, node);
    const struct config_target *t = &in->u.svc->targets[0];
    struct zone *z = c->z;

    /* check_domain() let through labels of 1 to 63 letters, digits, '-'
     * and '_', 253 characters in all, no trailing dot: each label goes
     * as it is, escapes need no reading (ldns took 4% of a large load) */
    uint8_t name[LDNS_MAX_DOMAINLEN + 1];
    size_t len = 0;
    for (const char *p = t->hostname; *p;) {
        size_t l = strcspn(p, ".");
        len = put_label(name, len, p, l);
        p += l + (p[l] == '.');
    }
    name[len++] = 0;
    uint8_t *wire = arena_memdup(z->arena, name, len);
    if (!wire) {
        oom(c);
        return false;
    }
    extra_of(c, in)->host = wire;
    extra_of(c, in)->host_len = len;

    uint8_t low[LDNS_MAX_DOMAINLEN + 1];
    for (size_t i = 0; i < len; i++)
        low[i] = (uint8_t)tolower(wire[i]);

    if (!wire_name_in(low, len, z->apex, z->apex_len))
        return true;
    if (c->patch) {
        c->whole = true; /* its chain may pass through any name: compile whole */
        return false;
    }

    struct znode *target = node_lookup(z, low, len);
    if (!target)
        target = endpoint_node(c, low, len);
    if (target == node) {
        diag_error(c->d, t->line, "service '%s' points to itself ('%s')", in->u.svc->name,
                   t->hostname);
        return false;
    }
    if (!target || (target->flags & NODE_IN_ZONE) == 0 || info_of(c, target)->kind == INFO_EMPTY ||
        info_of(c, target)->kind == INFO_APEX) {
        diag_error(c->d, t->line,
                   "hostname '%s' is inside zone '%s' but names no service or endpoint of the "
                   "mapping",
                   t->hostname, c->cfg->zone);
        return false;
    }
    extra_of(c, in)->host_node = target;
    mark_targeted(z, target);
    return true;
}

/* The upstream lookup that completes an A or AAAA answer at a hostname
 * service whose target is outside the zone; NULL if none is wanted
 * (resolve=no, or no upstream servers). */
static const struct zone_external *external_of(struct compiler *c, struct znode *n)
{
    struct info *in = info_of(c, n);
    if (!c->z->settings.upstream || in->u.svc->no_resolve || extra_of(c, in)->host_node)
        return NULL;
    const uint8_t *host = extra_of(c, in)->host;
    size_t len = extra_of(c, in)->host_len;
    bool lower = true;
    for (size_t i = 0; i < len && lower; i++)
        lower = host[i] == (uint8_t)tolower(host[i]);
    struct zone_external *ext = arena_alloc(c->z->arena, sizeof(*ext));
    uint8_t *folded = lower ? NULL : arena_alloc(c->z->arena, len);
    if (!ext || (!lower && !folded)) {
        oom(c);
        return NULL;
    }
    for (size_t i = 0; folded && i < len; i++)
        folded[i] = (uint8_t)tolower(host[i]);
    ext->name = folded ? folded : host; /* the cache's key: lower case */
    ext->len = (uint8_t)len;
    return ext;
}

/* A plan like `p` that continues with the upstream's records. */
static const struct zone_plan *with_external(struct compiler *c, const struct zone_plan *p,
                                             const struct zone_external *ext)
{
    if (!p || !ext)
        return p;
    size_t nan = p->nsets[ZONE_ANSWER], nns = p->nsets[ZONE_AUTHORITY];
    size_t nar = p->nsets[ZONE_ADDITIONAL];
    return new_plan_ext(c->z, p->rcode, p->aa, p->sets, nan, p->sets + nan, nns,
                        p->sets + nan + nns, nar, ext);
}

/* The answer to `qtype` at a hostname service: its CNAME `first`, then the
 * chain through the zone, then the records of the last name. An in-zone
 * name without the type ends the chain with the SOA in AUTHORITY (RFC 2308
 * §2.2); a target outside the zone ends it with the CNAMEs, which for A and
 * AAAA the upstream's records complete (external_of()). */
static const struct zone_plan *chase(struct compiler *c, struct znode *node, uint16_t qtype,
                                     const struct zone_rrset *first)
{
    const struct zone_rrset *an[MAX_CHAIN + 1];
    const struct znode *seen[MAX_CHAIN + 1];
    size_t nan = 0, nseen = 0;
    an[nan++] = first;
    seen[nseen++] = node;

    struct znode *cur = extra_of(c, info_of(c, node))->host_node;
    const struct zone_rrset *ns = NULL;
    const struct zone_external *ext = NULL;
    struct znode *last = NULL; /* the name whose records end the chain */
    while (cur) {
        struct info *in = info_of(c, cur);
        if (in->kind == INFO_HOST) {
            bool loop = false;
            for (size_t i = 0; i < nseen; i++)
                loop |= seen[i] == cur;
            if (loop || nan >= MAX_CHAIN)
                break; /* loops and long chains end here, with NOERROR */
            an[nan++] = named_rrset(c, cur, NAMED_CNAME);
            seen[nseen++] = cur;
            if (!extra_of(c, in)->host_node &&
                (qtype == LDNS_RR_TYPE_A || qtype == LDNS_RR_TYPE_AAAA))
                ext = external_of(c, cur); /* the chain leaves the zone here */
            cur = extra_of(c, in)->host_node;
            continue;
        }
        const struct zone_rrset *r = NULL;
        if (qtype == LDNS_RR_TYPE_A)
            r = named_rrset(c, cur, NAMED_A);
        else if (qtype == LDNS_RR_TYPE_AAAA)
            r = named_rrset(c, cur, NAMED_AAAA);
        if (r) {
            an[nan++] = r;
            last = cur;
        } else {
            ns = c->soa;
        }
        break;
    }
    for (size_t i = 0; i < nan; i++)
        if (!an[i]) {
            oom(c);
            return NULL;
        }
    const struct zone_plan *p = new_plan_ext(c->z, LDNS_RCODE_NOERROR, true, an, nan,
                                             ns ? &ns : NULL, ns ? 1 : 0, NULL, 0, ext);
    if (!last)
        return p;
    /* A chain that ends at a checked service answers what a query for the
     * service would: the same targets (SPEC §6). */
    enum check_which which[MAX_CHAIN + 1];
    for (size_t i = 0; i + 1 < nan; i++)
        which[i] = CHECK_NONE;
    which[nan - 1] = qtype == LDNS_RR_TYPE_A ? CHECK_A : CHECK_AAAA;
    return checked_plan(c, last, p, which);
}

static void warn_loop(struct compiler *c, struct znode *node)
{
    const struct znode *cur = extra_of(c, info_of(c, node))->host_node;
    for (int i = 0; cur && i < MAX_CHAIN; i++) {
        struct info *in = info_of(c, cur);
        if (in->kind != INFO_HOST)
            return;
        if (cur == node) {
            diag_warning(c->d, info_of(c, node)->u.svc->targets[0].line,
                         "service '%s' is part of a CNAME loop; answers stop after one round",
                         info_of(c, node)->u.svc->name);
            return;
        }
        cur = extra_of(c, in)->host_node;
    }
}

size_t count_unresolved(struct compiler *c, int *first_line)
{
    if (c->z->settings.upstream || c->cfg->resolv.problem == CONFIG_RESOLV_OK)
        return 0; /* resolved, or asked not to be */
    size_t unresolved = 0;
    for (size_t i = 0; i < c->ninfo; i++) {
        struct info *in = &c->info[i];
        if (in->kind == INFO_HOST && !extra_of(c, in)->host_node && !in->u.svc->no_resolve) {
            if (unresolved++ == 0)
                *first_line = in->u.svc->line;
        }
    }
    return unresolved;
}

/* Without upstream servers, hostnames outside the zone get their CNAME
 * alone, which glibc and musl clients cannot use: say so, once. */
void warn_unresolved(struct compiler *c, size_t unresolved, int first_line)
{
    const struct config_resolv *rc = &c->cfg->resolv;
    if (!unresolved)
        return;
    char why[320];
    if (rc->problem == CONFIG_RESOLV_UNREADABLE)
        snprintf(why, sizeof(why), "cannot read %s: %s", rc->path, strerror(rc->error));
    else
        snprintf(why, sizeof(why), "no nameserver in %s", rc->path);
    diag_warning(c->d, first_line,
                 "%zu hostname target%s outside the zone will get the CNAME alone: no "
                 "upstream servers (%s); set [upstream] servers",
                 unresolved, unresolved == 1 ? "" : "s", why);
}

/* The plans of a hostname service whose target is resolved. False when out
 * of memory. */
static bool compile_host(struct compiler *c, struct info *in)
{
    const struct owner q = {OWNER_QNAME, NULL, 0};
    struct znode *node = in->node;
    const struct zone_rrset *cname = build_cname(c, in, &q);
    if (!cname) {
        oom(c);
        return false;
    }
    c->z->stats.records++;

    /* CNAME first: it also answers ANY (RFC 8482 §4.2). A, AAAA and TXT
     * follow the chain as CoreDNS does; SRV and other types are NODATA. */
    const struct zone_plan *alone = answer_plan(c, &cname, 1, NULL, 0);
    add_plan(c, node, LDNS_RR_TYPE_CNAME, alone);
    if (!extra_of(c, in)->host_node || in->u.svc->no_resolve) {
        /* Outside the zone: A and AAAA go on with the upstream's records
         * (SPEC §2.3); resolve=no gives the CNAME alone. */
        const struct zone_plan *resolved = with_external(c, alone, external_of(c, node));
        add_plan(c, node, LDNS_RR_TYPE_A, resolved); /* one plan: the query says the type */
        add_plan(c, node, LDNS_RR_TYPE_AAAA, resolved);
        add_plan(c, node, LDNS_RR_TYPE_TXT, alone);
        return true;
    }

    warn_loop(c, node);
    add_plan(c, node, LDNS_RR_TYPE_A, chase(c, node, LDNS_RR_TYPE_A, cname));
    add_plan(c, node, LDNS_RR_TYPE_AAAA, chase(c, node, LDNS_RR_TYPE_AAAA, cname));
    add_plan(c, node, LDNS_RR_TYPE_TXT, chase(c, node, LDNS_RR_TYPE_TXT, cname));
    return true;
}

void compile_hosts(struct compiler *c)
{
    /* the targets of hostname services are resolved (and endpoint nodes
     * added) first: a chain may pass through any of them */
    size_t count = c->ninfo;
    unsigned errors_before = c->d->errors;
    for (size_t i = 0; i < count; i++)
        if (c->info[i].kind == INFO_HOST)
            resolve_host_target(c, c->info[i].node);
    if (c->d->errors != errors_before || c->oom)
        return;

    if (!c->part) {
        int first_line = 0;
        size_t unresolved = count_unresolved(c, &first_line);
        warn_unresolved(c, unresolved, first_line);
    }
    for (size_t i = 0; i < count; i++)
        if (c->info[i].kind == INFO_HOST && !compile_host(c, &c->info[i]))
            return;
}
