/* config_service.c -- the service-line grammar of [namespace NAME]. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"
#include "svcmapd/arena.h"

#define MAX_TARGETS 1024 /* per service: keeps every answer under 64 KiB */

/* ---- [namespace] services ---- */

/* One address, whatever the port: an address is one A or AAAA record and
 * one endpoint name, so a service holds it once (RFC 2181 §5: an RRset
 * has no duplicate records). */
static bool same_address(const struct config_target *a, const struct config_target *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

enum service_option {
    OPT_TTL = 1,
    OPT_SRV = 2,
    OPT_RESOLVE = 4,
    OPT_CHECK = 8,
    OPT_POLICY = 16,
};

/* The options of one service line, as they are read: check= and policy=
 * make sense only together with its targets, once all are read. */
struct line_options {
    unsigned seen; /* enum service_option */
    struct config_check check;
    int check_line, policy_line;
};

/* A character of an HTTP request-target's path and query (RFC 3986 §3.3,
 * §3.4: pchar, '/', '?'); '%' must start an escape. */
static bool path_char(const char *s)
{
    if (*s == '%')
        return isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2]);
    return isalnum((unsigned char)*s) || (*s && strchr("-._~!$&'()*+,;=:@/?", *s));
}

/* check=tcp, check=tcp:PORT or check=http:PORT/PATH into o->check. */
static void parse_check(struct parser *p, const char *v, int line, struct line_options *o)
{
    const char *colon = strchr(v, ':');
    size_t kind = colon ? (size_t)(colon - v) : strlen(v);
    char port[8];
    if (kind == 3 && strncmp(v, "tcp", 3) == 0) {
        o->check.kind = CONFIG_CHECK_TCP;
        if (!colon)
            return; /* each target's own port */
        if (strlen(colon + 1) >= sizeof(port) || strchr(colon + 1, '/')) {
            diag_error(p->d, line, "check=%s: expected check=tcp or check=tcp:PORT", v);
            return;
        }
        parse_port(p, colon + 1, line, &o->check.port);
        return;
    }
    if (kind != 4 || strncmp(v, "http", 4) != 0) {
        diag_error(p->d, line,
                   "check=%s: unknown check (expected check=tcp, check=tcp:PORT or "
                   "check=http:PORT/PATH)",
                   v);
        return;
    }
    o->check.kind = CONFIG_CHECK_HTTP;
    const char *slash = colon ? strchr(colon, '/') : NULL;
    size_t plen = slash ? (size_t)(slash - colon - 1) : 0;
    if (!slash || plen == 0 || plen >= sizeof(port)) {
        diag_error(p->d, line,
                   "check=%s: expected check=http:PORT/PATH, like check=http:8080/healthz", v);
        return;
    }
    memcpy(port, colon + 1, plen);
    port[plen] = '\0';
    if (!parse_port(p, port, line, &o->check.port))
        return;
    for (const char *c = slash; *c; c++) {
        if (!path_char(c)) {
            diag_error(p->d, line, "check=%s: the path cannot carry '%c' (write it %%%02X)", v, *c,
                       (unsigned char)*c);
            return;
        }
    }
    o->check.path = arena_strndup(p->m, slash, strlen(slash));
    if (!o->check.path)
        parser_oom(p);
}

/* One `key=value` option of a service line: ttl=, srv=, resolve=, check=
 * or policy=. */
static void parse_service_option(struct parser *p, struct config_service *svc, const char *tok,
                                 int line, struct line_options *o)
{
    const char *eq = strchr(tok, '=');
    size_t klen = (size_t)(eq - tok);
    const char *v = eq + 1;
    unsigned bit = klen == 3 && strncmp(tok, "ttl", 3) == 0       ? OPT_TTL
                   : klen == 3 && strncmp(tok, "srv", 3) == 0     ? OPT_SRV
                   : klen == 7 && strncmp(tok, "resolve", 7) == 0 ? OPT_RESOLVE
                   : klen == 5 && strncmp(tok, "check", 5) == 0   ? OPT_CHECK
                   : klen == 6 && strncmp(tok, "policy", 6) == 0  ? OPT_POLICY
                                                                  : 0;
    if (bit == 0) {
        diag_error(p->d, line,
                   "unknown option '%.*s=' (known: srv=, ttl=, resolve=, check=, policy=)",
                   (int)klen, tok);
        return;
    }
    if (o->seen & bit) {
        diag_error(p->d, line, "%.*s= is given twice", (int)klen, tok);
        return;
    }
    o->seen |= bit;

    if (bit == OPT_TTL) {
        uint32_t x;
        if (!parse_u32(v, &x) || x > 3600)
            diag_error(p->d, line, "ttl=%s: expected a number of seconds, 0 to 3600", v);
        else
            svc->ttl = (int32_t)x;
        return;
    }
    if (bit == OPT_RESOLVE) {
        if (strcmp(v, "no") == 0)
            svc->no_resolve = true;
        else if (strcmp(v, "yes") != 0)
            diag_error(p->d, line, "resolve=%s: expected resolve=yes or resolve=no", v);
        return;
    }
    if (bit == OPT_CHECK) {
        o->check_line = line;
        parse_check(p, v, line, o);
        return;
    }
    if (bit == OPT_POLICY) {
        o->policy_line = line;
        if (strcmp(v, "failover") == 0)
            o->check.policy = CONFIG_POLICY_FAILOVER;
        else if (strcmp(v, "all") != 0)
            diag_error(p->d, line, "policy=%s: expected policy=all or policy=failover", v);
        return;
    }

    /* srv=_NAME._PROTO: the SRV owner is _NAME._PROTO.<svc>.<ns>.svc.<zone> */
    char name[64], proto[8];
    const char *dot = strchr(v, '.');
    if (v[0] != '_' || !dot || dot[1] != '_' || (size_t)(dot - v) < 2 ||
        (size_t)(dot - v) > sizeof(name) || strlen(dot + 2) >= sizeof(proto)) {
        diag_error(p->d, line, "srv=%s: expected srv=_NAME._PROTO, like srv=_ldap._tcp", v);
        return;
    }
    size_t nlen = (size_t)(dot - v) - 1;
    memcpy(name, v + 1, nlen);
    name[nlen] = '\0';
    strcpy(proto, dot + 2);
    for (char *c = proto; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 && strcmp(proto, "sctp") != 0) {
        diag_error(p->d, line, "srv=%s: protocol must be _tcp, _udp or _sctp", v);
        return;
    }
    const char *lname = check_dns1123(p, name, line, "srv= port");
    if (!lname)
        return;
    svc->srv_name = lname;
    svc->srv_proto = arena_strndup(p->m, proto, strlen(proto));
    if (!svc->srv_proto)
        parser_oom(p);
}

/* What the targets of one service line are, for the checks of their mix. */
struct mix {
    size_t nhost, naddr, nport, n4;
    const struct config_target *host; /* the last hostname */
};

/* Reads `tok` as a hostname or an address into targets[count], after the
 * `count` targets read before it. True if it is one; false after
 * reporting why not. */
static bool read_target(struct parser *p, const char *rawname, const struct token *tok,
                        struct config_target *targets, uint32_t count, struct mix *mix)
{
    const char *s = tok->text;
    struct config_target *t = &targets[count];
    int r = parse_address(p, s, tok->line, t);
    if (r < 0)
        return false;
    if (r == 0 && strchr(s, ':')) {
        diag_error(p->d, tok->line,
                   "'%s': a hostname cannot carry a port (a CNAME has none; write IP:PORT "
                   "to publish the port in SRV)",
                   s);
        return false;
    }
    if (r == 0) {
        size_t len = check_domain(p, s, tok->line, "hostname");
        if (len == 0)
            return false;
        t->kind = CONFIG_TARGET_HOSTNAME;
        t->line = tok->line;
        t->hostname = arena_strndup(p->m, s, len);
        if (!t->hostname) {
            parser_oom(p);
            return false;
        }
        if (mix->nhost++ == 1)
            diag_error(p->d, tok->line,
                       "service '%s' has more than one hostname ('%s' and '%s'); a CNAME has "
                       "exactly one target",
                       rawname, mix->host->hostname, t->hostname);
        mix->host = t;
        return true;
    }
    for (uint32_t j = 0; j < count; j++) {
        if (targets[j].kind == CONFIG_TARGET_ADDRESS && same_address(&targets[j], t)) {
            if (targets[j].port == t->port)
                diag_error(p->d, tok->line, "address '%s' is given twice for service '%s'", s,
                           rawname);
            else
                diag_error(p->d, tok->line,
                           "address '%s' is given twice for service '%s', with ports %u and %u: "
                           "an address is one A or AAAA record, with one port; map the other "
                           "port as another service",
                           s, rawname, targets[j].port, t->port);
            return false;
        }
    }
    mix->naddr++;
    mix->n4 += t->family == AF_INET;
    if (t->port)
        mix->nport++;
    return true;
}

/* The checks of a service line whose every target was good: a hostname
 * alone, or addresses that all have a port or none. */
static void check_mix(struct parser *p, const struct config_service *svc, const char *rawname,
                      int line, const struct mix *mix)
{
    if (svc->ntargets == 0) {
        diag_error(p->d, line, "service '%s' has no target (expected a hostname or addresses)",
                   rawname);
    } else if (mix->nhost && mix->naddr) {
        diag_error(p->d, mix->host->line,
                   "service '%s': hostname '%s' cannot be mixed with addresses (a CNAME "
                   "cannot have other records)",
                   rawname, mix->host->hostname);
    } else if (mix->nport && mix->nport != mix->naddr) {
        diag_error(p->d, line,
                   "service '%s': either every address has a port or none has (%zu of %zu "
                   "have one)",
                   rawname, mix->nport, mix->naddr);
    } else if (svc->srv_name && mix->nport == 0) {
        /* SPEC §1's own example has srv= on portless addresses: valid,
         * but the operator should know no SRV record comes of it. */
        diag_warning(p->d, line,
                     "service '%s': srv= has no effect without ports (write IP:PORT to "
                     "publish SRV records)",
                     rawname);
    }
}

/* check= and policy= of a service line whose targets are good (SPEC §6):
 * a check is kept when there are targets to choose between and it can
 * probe them. */
static void finish_check(struct parser *p, struct config_service *svc, const char *rawname,
                         const struct mix *mix, const struct line_options *o)
{
    if (!(o->seen & OPT_CHECK))
        return;
    int line = o->check_line;
    if (mix->nhost) {
        diag_warning(p->d, line,
                     "service '%s': check= on a hostname has no effect (a CNAME has one target: "
                     "nothing to choose between)",
                     rawname);
        return;
    }
    if (svc->ntargets == 1) {
        diag_warning(p->d, line,
                     "service '%s': check= on a single target has no effect (nothing to choose "
                     "between: it is always answered)",
                     rawname);
        return;
    }
    if (svc->ntargets > CONFIG_MAX_CHECKED) {
        diag_error(p->d, line, "service '%s': check= takes at most %d targets, it has %u", rawname,
                   CONFIG_MAX_CHECKED, svc->ntargets);
        return;
    }
    if (o->check.kind == CONFIG_CHECK_TCP && o->check.port == 0 && mix->nport == 0) {
        diag_error(p->d, line,
                   "service '%s': check=tcp needs a port, and its targets have none (write "
                   "check=tcp:PORT)",
                   rawname);
        return;
    }
    if (o->check.policy == CONFIG_POLICY_FAILOVER && mix->n4 && mix->n4 != mix->naddr)
        diag_warning(p->d, o->policy_line,
                     "service '%s': policy=failover with IPv4 and IPv6 targets: A and AAAA "
                     "answers each take their own first healthy target",
                     rawname);
    struct config_check *check = arena_alloc(p->m, sizeof(*check));
    if (!check) {
        parser_oom(p);
        return;
    }
    *check = o->check;
    svc->check = check;
}

/* Appends `svc` to the current namespace. */
static void append_service(struct parser *p, const struct config_service *svc)
{
    struct config_namespace *ns = &p->cfg->namespaces[p->ns];
    if (ns->nservices == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 8;
        struct config_service *s = realloc(ns->services, cap * sizeof(*s));
        if (!s) {
            parser_oom(p);
            return;
        }
        ns->services = s;
        ns->cap = cap;
    }
    ns->services[ns->nservices++] = *svc;
    p->cfg->nservices++;
}

/* The checked name of the service `rawname` at `line`, recorded for the
 * duplicates of its namespace; NULL if it is bad or given before
 * (reported), `*dup` set for the latter. The name lives in p->m, or only
 * as long as the namespace is read when skipping: a skipped service keeps
 * nothing. */
static const char *service_name(struct parser *p, const char *rawname, int line, size_t *len,
                                bool *dup)
{
    char buf[64];
    *len = check_label(p, rawname, line, "service", buf);
    if (*len == 0)
        return NULL;
    char *name = arena_strndup(p->skip ? p->nsnames : p->m, buf, *len);
    /* the names of this namespace only: a small set, in cache */
    int prev = name ? strset_add(&p->services, name, line) : -1;
    if (prev < 0) {
        parser_oom(p);
        return NULL;
    }
    if (prev > 0) {
        const struct config_namespace *ns = &p->cfg->namespaces[p->ns];
        diag_error(p->d, line,
                   "duplicate service '%s' in namespace '%s' (first defined on line %d)", name,
                   ns->name, prev);
        *dup = true;
    }
    return name;
}

void add_service(struct parser *p, const char *rawname, int line, const struct token *tok, size_t n)
{
    struct config_namespace *ns = &p->cfg->namespaces[p->ns];
    size_t len = 0;
    bool dup = false;
    const char *name = service_name(p, rawname, line, &len, &dup);
    if (!name && p->oom)
        return;
    bool ok = name && !dup;
    /* p->text holds the name, lower case, and the tokens: what the line says */
    uint64_t fp = name ? config_hash(p->text, p->textlen) : 0;
    if (ok && p->skip && line != p->asked && p->skip->unchanged(p->skip->arg, ns->name, name, fp)) {
        ns->nkept++;
        p->cfg->nkept++;
        return;
    }
    if (ok && p->skip) {
        name = arena_strndup(p->m, name, len); /* kept, unlike the set's copy */
        if (!name) {
            parser_oom(p);
            return;
        }
    }

    struct config_service svc = {.name = name, .text_fp = fp, .line = line, .ttl = -1};
    struct config_target *targets = arena_zalloc(p->m, (n ? n : 1) * sizeof(*targets));
    if (!targets) {
        parser_oom(p);
        return;
    }
    struct line_options opts = {0};
    unsigned errors_before = p->d->errors, warnings_before = p->d->warnings;
    struct mix mix = {0};

    for (size_t i = 0; i < n; i++) {
        if (strchr(tok[i].text, '=')) {
            parse_service_option(p, &svc, tok[i].text, tok[i].line, &opts);
            continue;
        }
        if (!read_target(p, rawname, &tok[i], targets, svc.ntargets, &mix))
            continue;
        if (++svc.ntargets > MAX_TARGETS) {
            diag_error(p->d, tok[i].line, "service '%s' has more than %d targets", rawname,
                       MAX_TARGETS);
            return;
        }
    }

    if ((opts.seen & (OPT_POLICY | OPT_CHECK)) == OPT_POLICY)
        diag_error(p->d, opts.policy_line,
                   "service '%s': policy= needs check= (a policy chooses among the targets that "
                   "pass their checks)",
                   rawname);
    if (p->d->errors == errors_before)
        check_mix(p, &svc, rawname, line, &mix);
    if (p->d->errors == errors_before)
        finish_check(p, &svc, rawname, &mix, &opts);
    if (!ok)
        return;
    if (p->d->errors != errors_before) {
        /* Kept without targets, so that a CNAME to it is not reported as
         * dangling as well: one mistake, one message. */
        svc.ntargets = 0;
        svc.invalid = true;
    }
    svc.warned = p->d->warnings != warnings_before;
    svc.targets = targets;
    append_service(p, &svc);
}
