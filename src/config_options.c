/* config_options.c -- the option table, and the setters of its values. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "config_impl.h"
#include "svcmapd/arena.h"

/* One row per option: section, key, type, default (parsed exactly like a
 * value in the file), bounds (CONFIG_TYPE_UINT, CONFIG_TYPE_UINT_AUTO and
 * CONFIG_TYPE_DURATION), the field it sets, a line of help, and the
 * choices of a CONFIG_TYPE_CHOICE. */
#define AT(field)    offsetof(struct config, field)
#define CHOICES(...) ((const char *const[]){__VA_ARGS__, NULL})

const struct config_option config_options[CONFIG_OPTION_COUNT] = {
    [CONFIG_ZONE] = {"server", "zone", CONFIG_TYPE_DOMAIN, "cluster.local", 0, 0, AT(zone),
                     "names answered: <service>.<namespace>.svc.<zone>"},
    [CONFIG_LISTEN] = {"server", "listen", CONFIG_TYPE_LISTEN, "127.0.0.1:5353", 0, 0, AT(listen),
                       "comma-separated addresses, UDP and TCP on each; [::1]:53 for IPv6"},
    [CONFIG_TTL] = {"server", "ttl", CONFIG_TYPE_UINT, "5", 0, 3600, AT(ttl),
                    "TTL of mapped records, seconds (CoreDNS's default is 5)"},
    [CONFIG_TCP_IDLE_TIMEOUT] = {"server", "tcp-idle-timeout", CONFIG_TYPE_UINT, "10", 1, 3600,
                                 AT(tcp_idle_timeout),
                                 "seconds a TCP connection may stay idle before it is closed"},
    [CONFIG_TCP_MAX_CONNECTIONS] = {"server", "tcp-max-connections", CONFIG_TYPE_UINT, "1024", 1,
                                    65535, AT(tcp_max_connections),
                                    "open TCP connections; more are closed at once"},
    [CONFIG_WORKERS] =
        {"server", "workers", CONFIG_TYPE_UINT_AUTO, "auto", 1, 256, AT(workers),
         "threads answering queries, each with its own sockets; auto: one per online CPU"},
    [CONFIG_RELOAD] =
        {"server", "reload", CONFIG_TYPE_DURATION, "off", 1, 86400, AT(reload),
         "how often to look for a changed mapping file (30s, 2m...); off: only on SIGHUP"},
    [CONFIG_TCP_MESSAGE_TIMEOUT] =
        {"server", "tcp-message-timeout", CONFIG_TYPE_UINT, "2", 1, 60, AT(tcp_message_timeout),
         "seconds to receive the rest of a TCP message once it has begun"},
    [CONFIG_TCP_PIPELINE] = {"server", "tcp-pipeline", CONFIG_TYPE_UINT, "100", 1, 1000,
                             AT(tcp_pipeline),
                             "queries of one TCP connection answered per turn, and waiting for "
                             "upstream lookups at once"},
    [CONFIG_UDP_MAX_SIZE] = {"server", "udp-max-size", CONFIG_TYPE_UINT, "1232", 512, 4096,
                             AT(udp_max_size),
                             "largest UDP reply, whatever the client's EDNS buffer size"},
    [CONFIG_USER] = {"server", "user", CONFIG_TYPE_USER, "", 0, 0, AT(user),
                     "after binding, run as this user (name or UID[:GID]); empty: stay"},
    [CONFIG_REVERSE] = {"server", "reverse", CONFIG_TYPE_REVERSE, "", 0, 0, AT(reverse),
                        "reverse zones answered whole, as ADDRESS/PREFIX (192.168.0.0/16, "
                        "2001:db8::/32); default none"},
    [CONFIG_MAX_REMOVAL] = {"server", "max-removal", CONFIG_TYPE_UINT, "50", 0, 100,
                            AT(max_removal),
                            "percent of the running services one reload may remove; more is held "
                            "until confirmed; 100: no limit"},
    [CONFIG_CONFIRM_REMOVAL] = {"server", "confirm-removal", CONFIG_TYPE_UINT, "0", 0, 10000000,
                                AT(confirm_removal),
                                "apply a held reload that removes exactly this many services (the "
                                "count its log line gives)"},
    [CONFIG_STATE_DIR] = {"server", "state-dir", CONFIG_TYPE_PATH, "off", 0, 1024, AT(state_dir),
                          "a directory where the last good mapping is kept, to start on when "
                          "the file is broken; off"},
    [CONFIG_UPSTREAM_SERVERS] = {"upstream", "servers", CONFIG_TYPE_SERVERS, "/etc/resolv.conf", 0,
                                 0, AT(upstream),
                                 "resolvers for hostname targets outside the zone: addresses, a "
                                 "resolv.conf file (its nameservers), or none"},
    [CONFIG_UPSTREAM_TIMEOUT] = {"upstream", "timeout", CONFIG_TYPE_UINT, "2", 1, 30,
                                 AT(upstream_timeout), "seconds per lookup; then the CNAME alone"},
    [CONFIG_UPSTREAM_CACHE_SIZE] = {"upstream", "cache-size", CONFIG_TYPE_UINT, "10000", 16,
                                    10000000, AT(cache_size),
                                    "answers cached per worker; the least recently used go first"},
    [CONFIG_UPSTREAM_MAX_STALE] =
        {"upstream", "max-stale", CONFIG_TYPE_UINT, "3600", 0, 259200, AT(max_stale),
         "seconds an expired answer may still be served while the upstream fails (RFC 8767)"},
    [CONFIG_UPSTREAM_NEGATIVE_TTL] = {"upstream", "negative-ttl", CONFIG_TYPE_UINT, "5", 0, 300,
                                      AT(negative_ttl),
                                      "seconds NXDOMAIN, NODATA and failures are cached, at most"},
    [CONFIG_HTTP_HEALTH] = {"http", "health", CONFIG_TYPE_ENDPOINT, "off", 0, 0, AT(http),
                            "address:port for /health (200 OK while the process runs); off"},
    [CONFIG_HTTP_READY] =
        {"http", "ready", CONFIG_TYPE_ENDPOINT, "off", 0, 0, AT(http),
         "address:port for /ready (200 once serving, 503 before and in lameduck); off"},
    [CONFIG_HTTP_METRICS] = {"http", "metrics", CONFIG_TYPE_ENDPOINT, "off", 0, 0, AT(http),
                             "address:port for /metrics (Prometheus text, CoreDNS's names); off"},
    [CONFIG_HTTP_LAMEDUCK] = {"http", "lameduck", CONFIG_TYPE_UINT, "0", 0, 60, AT(lameduck),
                              "seconds svcmapd keeps answering after SIGTERM, /ready failing"},
    [CONFIG_LOG_LEVEL] = {"log", "level", CONFIG_TYPE_CHOICE, "info", 0, 0, AT(log_level),
                          "least severe level logged: debug, info, warning or error",
                          CHOICES("debug", "info", "warning", "error")},
    [CONFIG_LOG_FORMAT] = {"log", "format", CONFIG_TYPE_CHOICE, "text", 0, 0, AT(log_format),
                           "text (CoreDNS-like lines) or json (one object per line)",
                           CHOICES("text", "json")},
    [CONFIG_LOG_QUERIES] = {"log", "queries", CONFIG_TYPE_CHOICE, "no", 0, 0, AT(log_queries),
                            "yes: one line per query, in CoreDNS's log plugin format",
                            CHOICES("no", "yes")},
    /* a unix socket's path fits sockaddr_un's 108 bytes with its NUL */
    [CONFIG_CONTROL_SOCKET] = {"control", "socket", CONFIG_TYPE_PATH, "off", 0, 107,
                               AT(control_socket),
                               "the unix socket svcmapctl talks to (mode 0600); off"},
    [CONFIG_HEALTH_INTERVAL] = {"health", "interval", CONFIG_TYPE_MSEC, "5s", 1000, 3600000,
                                AT(health_interval),
                                "time between two probes of one checked target (1s to 1h)"},
    [CONFIG_HEALTH_TIMEOUT] = {"health", "timeout", CONFIG_TYPE_MSEC, "2s", 100, 3600000,
                               AT(health_timeout),
                               "time one probe may take (500ms, 2s...); must be below interval"},
    [CONFIG_HEALTH_FALL] = {"health", "fall", CONFIG_TYPE_UINT, "3", 1, 100, AT(health_fall),
                            "failed probes in a row that take an up target down"},
    [CONFIG_HEALTH_RISE] = {"health", "rise", CONFIG_TYPE_UINT, "2", 1, 100, AT(health_rise),
                            "successful probes in a row that bring a down target up"},
    [CONFIG_TRANSFER_ALLOW] = {"transfer", "allow", CONFIG_TYPE_NETWORKS, "", 0, 0,
                               AT(transfer_allow),
                               "clients that may transfer the zone (AXFR, IXFR over TCP), as "
                               "ADDRESS[/PREFIX]; default none"},
    [CONFIG_TRANSFER_NOTIFY] = {"transfer", "notify", CONFIG_TYPE_PEERS, "", 0, 0, AT(notify),
                                "secondaries sent NOTIFY when the serial changes, as "
                                "ADDRESS[:PORT] (port 53); default none"},
};

/* ---- the setters, one per type of option ---- */

/* An option's value, as set_option() hands it to the setter of its type. */
struct value {
    enum config_option_id id;
    const struct config_option *o;
    void *field;             /* in the config, at o->offset */
    const struct token *tok; /* n of them; exactly one unless the type takes a list */
    size_t n;
    int line; /* of the key; 0 for a default */
};

/* Addresses with ports (53 when not given), for `listen`, `servers` and `notify`. */
static bool set_addresses(struct parser *p, const struct token *tok, size_t n,
                          enum config_option_id id)
{
    struct config *cfg = p->cfg;
    const char *what = config_options[id].name;
    struct config_addr *list = arena_zalloc(p->a, (n ? n : 1) * sizeof(*list));
    if (!list) {
        parser_oom(p);
        return false;
    }
    bool ok = true;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        struct config_target t = {0};
        int r = parse_address(p, tok[i].text, tok[i].line, &t);
        if (r == 0) {
            diag_error(p->d, tok[i].line,
                       "%s: '%s' is not an IP address (host names are not resolved)", what,
                       tok[i].text);
            ok = false;
            continue;
        }
        if (r < 0) {
            ok = false;
            continue;
        }
        struct config_addr *l = &list[count];
        if (!t.port)
            t.port = 53;
        target_sockaddr(&t, l);
        l->line = tok[i].line;
        for (size_t j = 0; j < count; j++) {
            if (strcmp(list[j].text, l->text) == 0) {
                diag_error(p->d, tok[i].line, "%s: %s is given twice", what, l->text);
                ok = false;
                count--;
                break;
            }
        }
        count++;
    }
    if (ok && id == CONFIG_UPSTREAM_SERVERS && count > CONFIG_MAX_UPSTREAMS) {
        diag_error(p->d, tok[0].line, "%s: at most %d servers", what, CONFIG_MAX_UPSTREAMS);
        ok = false;
    }
    if (ok && id == CONFIG_TRANSFER_NOTIFY && count > CONFIG_MAX_NOTIFY) {
        diag_error(p->d, tok[0].line, "%s: at most %d secondaries", what, CONFIG_MAX_NOTIFY);
        ok = false;
    }
    if (ok && count == 0) {
        diag_error(p->d, n ? tok[0].line : p->key_line, "%s: no address given", what);
        ok = false;
    }
    if (!ok)
        return false;
    if (id == CONFIG_LISTEN) {
        cfg->listen = list;
        cfg->nlisten = count;
    } else if (id == CONFIG_TRANSFER_NOTIFY) {
        cfg->notify = list;
        cfg->nnotify = count;
    } else {
        cfg->upstream = list;
        cfg->nupstream = count;
    }
    return true;
}

static const char *path_copy(struct parser *p, const char *path)
{
    const char *copy = arena_strndup(p->a, path, strlen(path));
    if (!copy)
        parser_oom(p);
    return copy ? copy : "";
}

/* The nameservers of /etc/resolv.conf, the default upstream (in a pod: the
 * cluster's DNS). Problems are warnings: resolution is then off. */
static bool resolv_conf_servers(struct parser *p, const char *path, int line)
{
    struct token tok[8];
    char addrs[8][INET6_ADDRSTRLEN + 4];
    size_t n = 0;
    char buf[512];

    /* No servers is no error: only hostname targets outside the zone need
     * them, and zone.c warns if there are any. */
    p->cfg->upstream = NULL;
    p->cfg->nupstream = 0;
    struct config_resolv *why = &p->cfg->resolv;
    *why = (struct config_resolv){CONFIG_RESOLV_OK, 0, NULL};
    FILE *f = fopen(path, "r");
    if (!f) {
        *why = (struct config_resolv){CONFIG_RESOLV_UNREADABLE, errno, path_copy(p, path)};
        return true;
    }
    while (n < 8 && fgets(buf, sizeof(buf), f)) {
        char *save = NULL;
        char *key = strtok_r(buf, " \t\r\n", &save);
        char *val = key ? strtok_r(NULL, " \t\r\n", &save) : NULL;
        if (!key || !val || strcmp(key, "nameserver") != 0)
            continue;
        char *zone_index = strchr(val, '%');
        if (zone_index)
            *zone_index = '\0';
        snprintf(addrs[n], sizeof(addrs[n]), strchr(val, ':') ? "[%s]" : "%s", val);
        tok[n] = (struct token){.text = addrs[n], .line = line};
        n++;
    }
    fclose(f);
    if (n == 0) {
        *why = (struct config_resolv){CONFIG_RESOLV_NO_NAMESERVER, 0, path_copy(p, path)};
        return true;
    }
    return set_addresses(p, tok, n, CONFIG_UPSTREAM_SERVERS);
}

/* The name of the reverse zone of `r` (RFC 1035 §3.5, RFC 3596 §2.5): its
 * octets or nibbles, last first, then in-addr.arpa or ip6.arpa. */
static void reverse_zone_name(struct config_reverse *r)
{
    size_t n = 0;
    if (r->family == AF_INET) {
        for (int i = r->bits / 8 - 1; i >= 0; i--)
            n += (size_t)snprintf(r->zone + n, sizeof(r->zone) - n, "%u.", r->addr[i]);
        snprintf(r->zone + n, sizeof(r->zone) - n, "in-addr.arpa");
        return;
    }
    for (int i = r->bits / 4 - 1; i >= 0; i--)
        n += (size_t)snprintf(r->zone + n, sizeof(r->zone) - n, "%x.",
                              i % 2 ? r->addr[i / 2] & 15 : r->addr[i / 2] >> 4);
    snprintf(r->zone + n, sizeof(r->zone) - n, "ip6.arpa");
}

/* ADDRESS[/PREFIX] of option `what`: the address in *family and addr[16]
 * (network order, zeros after it), the prefix in *bits, and whether there
 * is one in *prefixed. 1 if so; -1 for a bad address (reported); 0 for a
 * token of another form, which the caller reports as it wants it written. */
static int split_prefix(struct parser *p, const struct token *tok, const char *what, int *family,
                        uint8_t addr[16], uint32_t *bits, bool *prefixed)
{
    const char *slash = strchr(tok->text, '/');
    char text[INET6_ADDRSTRLEN + 1];
    size_t alen = slash ? (size_t)(slash - tok->text) : strlen(tok->text);
    *bits = 0;
    *prefixed = slash != NULL;
    if (alen == 0 || alen >= sizeof(text) || (slash && !parse_u32(slash + 1, bits)))
        return 0;
    memcpy(text, tok->text, alen);
    text[alen] = '\0';
    memset(addr, 0, 16);
    if (parse_ipv4(text, addr))
        *family = AF_INET;
    else if (inet_pton(AF_INET6, text, addr) == 1)
        *family = AF_INET6;
    else {
        diag_error(p->d, tok->line, "%s: bad address '%s'", what, text);
        return -1;
    }
    return 1;
}

/* Whether `addr` has no bit set past its first `bits` (a prefix says
 * nothing of them: 10.0.0.1/8 is a mistake); reported if it has. */
static bool no_host_bits(struct parser *p, const struct token *tok, const char *what, int family,
                         const uint8_t addr[16], uint32_t bits)
{
    uint8_t net[16];
    memcpy(net, addr, 16);
    if (bits % 8)
        net[bits / 8] &= (uint8_t)(0xff00 >> (bits % 8));
    memset(net + (bits + 7) / 8, 0, 16 - (bits + 7) / 8);
    if (memcmp(net, addr, 16) == 0)
        return true;
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, net, text, sizeof(text));
    diag_error(p->d, tok->line, "%s: '%s' has address bits past /%u (did you mean %s/%u?)", what,
               tok->text, bits, text, bits);
    return false;
}

/* One ADDRESS/PREFIX of `reverse`; reports and returns false if bad. */
static bool parse_reverse(struct parser *p, const struct token *tok, struct config_reverse *r)
{
    uint32_t bits;
    bool prefixed;
    memset(r, 0, sizeof(*r));
    int ok = strchr(tok->text, '/')
                 ? split_prefix(p, tok, "reverse", &r->family, r->addr, &bits, &prefixed)
                 : 0;
    if (ok == 0) {
        diag_error(p->d, tok->line, "reverse: '%s' is not ADDRESS/PREFIX (like 192.168.0.0/16)",
                   tok->text);
        return false;
    }
    if (ok < 0)
        return false;
    /* a reverse zone is cut at a label: an octet, or a nibble */
    bool v4 = r->family == AF_INET;
    unsigned step = v4 ? 8 : 4, max = v4 ? 32 : 128;
    if (bits < step || bits > max || bits % step) {
        diag_error(p->d, tok->line,
                   "reverse: '%s': an %s prefix must be %s (a reverse zone ends at %s)", tok->text,
                   v4 ? "IPv4" : "IPv6",
                   v4 ? "/8, /16, /24 or /32" : "a multiple of 4 from /4 to /128",
                   v4 ? "an octet" : "a nibble");
        return false;
    }
    r->bits = (uint8_t)bits;
    r->line = tok->line;
    if (!no_host_bits(p, tok, "reverse", r->family, r->addr, bits))
        return false;
    reverse_zone_name(r);
    return true;
}

/* True if prefix `a` holds `b` (or is it). */
static bool reverse_holds(const struct config_reverse *a, const struct config_reverse *b)
{
    if (a->family != b->family || a->bits > b->bits)
        return false;
    size_t whole = a->bits / 8;
    return memcmp(a->addr, b->addr, whole) == 0 &&
           (a->bits % 8 == 0 || (a->addr[whole] & 0xf0) == (b->addr[whole] & 0xf0));
}

/* `reverse`: the reverse zones svcmapd answers for. One may not hold
 * another: each name has one zone, one SOA. */
static bool set_reverse(struct parser *p, const struct value *v)
{
    struct config *cfg = p->cfg;
    const struct token *tok = v->tok;
    size_t n = v->n;
    cfg->reverse = NULL;
    cfg->nreverse = 0;
    if (n == 1 && tok[0].text[0] == '\0')
        return true; /* the default: none */
    if (n > CONFIG_MAX_REVERSE) {
        diag_error(p->d, tok[0].line, "reverse: at most %d prefixes", CONFIG_MAX_REVERSE);
        return false;
    }
    struct config_reverse *list = arena_zalloc(p->a, n * sizeof(*list));
    if (!list) {
        parser_oom(p);
        return false;
    }
    bool ok = true;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        struct config_reverse *r = &list[count];
        if (!parse_reverse(p, &tok[i], r)) {
            ok = false;
            continue;
        }
        bool clash = false;
        for (size_t j = 0; j < count && !clash; j++) {
            const struct config_reverse *o = &list[j];
            clash = reverse_holds(o, r) || reverse_holds(r, o);
            if (clash && o->bits == r->bits) {
                diag_error(p->d, tok[i].line, "reverse: %s is given twice", tok[i].text);
            } else if (clash) {
                /* nested zones would need a delegation between them */
                const struct config_reverse *inner = o->bits > r->bits ? o : r;
                const struct config_reverse *outer = inner == o ? r : o;
                char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
                inet_ntop(inner->family, inner->addr, a, sizeof(a));
                inet_ntop(outer->family, outer->addr, b, sizeof(b));
                diag_error(p->d, tok[i].line, "reverse: %s/%u is inside %s/%u; give one of them", a,
                           inner->bits, b, outer->bits);
            }
        }
        if (clash) {
            ok = false;
            continue;
        }
        count++;
    }
    if (!ok)
        return false;
    cfg->reverse = list;
    cfg->nreverse = count;
    return true;
}

/* One ADDRESS[/PREFIX] of `allow`: a prefix without host bits; an
 * address alone is itself (/32, /128). Reports and returns false if bad. */
static bool parse_network(struct parser *p, const struct token *tok, struct config_prefix *n)
{
    uint32_t bits;
    bool prefixed;
    memset(n, 0, sizeof(*n));
    int ok = split_prefix(p, tok, "allow", &n->family, n->addr, &bits, &prefixed);
    if (ok == 0)
        diag_error(p->d, tok->line, "allow: '%s' is not ADDRESS or ADDRESS/PREFIX", tok->text);
    if (ok <= 0)
        return false;
    unsigned max = n->family == AF_INET ? 32 : 128;
    if (!prefixed)
        bits = max;
    if (bits > max) {
        diag_error(p->d, tok->line, "allow: '%s': an %s prefix is /0 to /%u", tok->text,
                   n->family == AF_INET ? "IPv4" : "IPv6", max);
        return false;
    }
    n->bits = (uint8_t)bits;
    n->line = tok->line;
    return no_host_bits(p, tok, "allow", n->family, n->addr, bits);
}

/* `allow`: the clients that may transfer the zone. Empty (the default):
 * nobody. */
static bool set_networks(struct parser *p, const struct value *v)
{
    struct config *cfg = p->cfg;
    const struct token *tok = v->tok;
    size_t n = v->n;
    cfg->transfer_allow = NULL;
    cfg->ntransfer_allow = 0;
    if (n == 1 && tok[0].text[0] == '\0')
        return true;
    if (n > CONFIG_MAX_TRANSFER_ALLOW) {
        diag_error(p->d, tok[0].line, "allow: at most %d addresses or prefixes",
                   CONFIG_MAX_TRANSFER_ALLOW);
        return false;
    }
    struct config_prefix *list = arena_zalloc(p->a, n * sizeof(*list));
    if (!list) {
        parser_oom(p);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = parse_network(p, &tok[i], &list[i]) && ok;
    if (!ok)
        return false;
    cfg->transfer_allow = list;
    cfg->ntransfer_allow = n;
    return true;
}

/* `notify`: secondaries, ADDRESS[:PORT] as `listen` takes them. Empty (the
 * default): none. */
static bool set_peers(struct parser *p, const struct value *v)
{
    if (v->n == 1 && v->tok[0].text[0] == '\0') {
        p->cfg->notify = NULL;
        p->cfg->nnotify = 0;
        return true;
    }
    return set_addresses(p, v->tok, v->n, v->id);
}

/* `listen`: addresses to answer on. */
static bool set_listen(struct parser *p, const struct value *v)
{
    return set_addresses(p, v->tok, v->n, v->id);
}

/* `servers`: addresses, none, or the path of a resolv.conf. */
static bool set_servers(struct parser *p, const struct value *v)
{
    const struct token *tok = v->tok;
    p->cfg->resolv = (struct config_resolv){CONFIG_RESOLV_OK, 0, NULL};
    if (v->n == 1 && strcmp(tok[0].text, "none") == 0) {
        p->cfg->upstream = NULL;
        p->cfg->nupstream = 0;
        return true;
    }
    if (v->n == 1 && tok[0].text[0] == '/') /* as CoreDNS's forward . /etc/resolv.conf */
        return resolv_conf_servers(p, tok[0].text, v->line);
    return set_addresses(p, tok, v->n, v->id);
}

/* `user`: a user name or UID[:GID]. Checked now so that -t catches a user
 * this machine lacks; the switch itself happens after binding (main.c). */
static bool set_user(struct parser *p, const struct value *v)
{
    const char *s = v->tok[0].text;
    const char *user = NULL;
    if (*s) {
        uint32_t uid, gid;
        char num[24];
        const char *colon = strchr(s, ':');
        size_t ulen = colon ? (size_t)(colon - s) : strlen(s);
        bool numeric = false;
        if (ulen < sizeof(num)) {
            memcpy(num, s, ulen);
            num[ulen] = '\0';
            numeric = parse_u32(num, &uid) && (!colon || parse_u32(colon + 1, &gid));
        }

        if (!numeric && !getpwnam(s)) {
            diag_error(p->d, v->tok[0].line, "user: no user '%s' on this system", s);
            return false;
        }
        user = arena_strndup(p->a, s, strlen(s));
        if (!user) {
            parser_oom(p);
            return false;
        }
    }
    memcpy(v->field, &user, sizeof(user));
    return true;
}

/* A duration: N, Ns, Nm or Nh seconds within the row's bounds; off is 0. */
static bool set_duration(struct parser *p, const struct value *v)
{
    const struct config_option *o = v->o;
    const char *s = v->tok[0].text;
    uint32_t x = 0, unit = 1;
    char num[16];
    size_t l = strlen(s);
    if (strcmp(s, "off") == 0) {
        memcpy(v->field, &x, sizeof(x));
        return true;
    }
    if (l > 1 && strchr("smh", s[l - 1])) {
        unit = s[l - 1] == 's' ? 1 : s[l - 1] == 'm' ? 60 : 3600;
        l--;
    }
    if (l == 0 || l >= sizeof(num)) {
        diag_error(p->d, v->tok[0].line, "%s: '%s' is not a duration (like 30s, 2m) or off",
                   o->name, s);
        return false;
    }
    memcpy(num, s, l);
    num[l] = '\0';
    if (!parse_u32(num, &x) || x > o->max / unit || x * unit < o->min) {
        diag_error(p->d, v->tok[0].line, "%s: '%s' is not a duration from %us to %uh, or off",
                   o->name, s, o->min, o->max / 3600);
        return false;
    }
    x *= unit;
    memcpy(v->field, &x, sizeof(x));
    return true;
}

/* Milliseconds within the row's bounds: N or Ns seconds, Nms, Nm, Nh
 * (`timeout = 500ms`: a probe may take less than a second). */
static bool set_msec(struct parser *p, const struct value *v)
{
    const struct config_option *o = v->o;
    const char *s = v->tok[0].text;
    size_t l = strlen(s);
    uint32_t unit = 1000, x;
    char num[16];
    if (l > 2 && strcmp(s + l - 2, "ms") == 0) {
        unit = 1;
        l -= 2;
    } else if (l > 1 && strchr("smh", s[l - 1])) {
        unit = s[l - 1] == 's' ? 1000 : s[l - 1] == 'm' ? 60000 : 3600000;
        l--;
    }
    bool number = l > 0 && l < sizeof(num);
    if (number) {
        memcpy(num, s, l);
        num[l] = '\0';
        number = parse_u32(num, &x);
    }
    if (!number || x > o->max / unit || x * unit < o->min) {
        char lo[24], hi[24];
        diag_error(p->d, v->tok[0].line, "%s: '%s' is not a duration from %s to %s", o->name, s,
                   config_msec_text(o->min, lo, sizeof(lo)),
                   config_msec_text(o->max, hi, sizeof(hi)));
        return false;
    }
    x *= unit;
    memcpy(v->field, &x, sizeof(x));
    return true;
}

const char *config_msec_text(uint32_t ms, char *out, size_t cap)
{
    if (ms % 3600000 == 0)
        snprintf(out, cap, "%uh", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(out, cap, "%um", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(out, cap, "%us", ms / 1000);
    else
        snprintf(out, cap, "%ums", ms);
    return out;
}

/* One of the row's choices, stored as its index. */
static bool set_choice(struct parser *p, const struct value *v)
{
    const struct config_option *o = v->o;
    const char *s = v->tok[0].text;
    char known[128] = "";
    for (uint32_t i = 0; o->choices[i]; i++) {
        if (strcmp(o->choices[i], s) == 0) {
            memcpy(v->field, &i, sizeof(i));
            return true;
        }
        if (i)
            strcat(known, ", ");
        strcat(known, o->choices[i]);
    }
    diag_error(p->d, v->tok[0].line, "%s: '%s' is not one of %s", o->name, s, known);
    return false;
}

/* An HTTP endpoint: ADDRESS:PORT, or off. */
static bool set_endpoint(struct parser *p, const struct value *v)
{
    const char *s = v->tok[0].text;
    size_t ep = (size_t)(v->id - CONFIG_HTTP_HEALTH); /* enum config_http */
    if (strcmp(s, "off") == 0) {
        p->cfg->http_on[ep] = false;
        return true;
    }
    struct config_target t = {0};
    int r = parse_address(p, s, v->tok[0].line, &t);
    if (r == 0 || (r > 0 && t.port == 0)) {
        diag_error(p->d, v->tok[0].line, "%s: expected ADDRESS:PORT (like 127.0.0.1:8080) or off",
                   v->o->name);
        return false;
    }
    if (r < 0)
        return false;
    struct config_addr *l = &p->cfg->http[ep];
    memset(l, 0, sizeof(*l));
    target_sockaddr(&t, l);
    l->line = v->tok[0].line;
    p->cfg->http_on[ep] = true;
    return true;
}

/* An absolute path of at most o->max bytes, or off (NULL). Only its form
 * is checked here: what is there is found when it is used (`-t` opens
 * no sockets and writes nothing). */
static bool set_path(struct parser *p, const struct value *v)
{
    const char *s = v->tok[0].text;
    const char *path = NULL;
    if (strcmp(s, "off") != 0) {
        if (s[0] != '/') {
            diag_error(p->d, v->tok[0].line, "%s: '%s' is not an absolute path, or off", v->o->name,
                       s);
            return false;
        }
        if (strlen(s) > v->o->max) {
            diag_error(p->d, v->tok[0].line, "%s: a path of at most %u bytes, not %zu", v->o->name,
                       v->o->max, strlen(s));
            return false;
        }
        path = path_copy(p, s);
    }
    memcpy(v->field, &path, sizeof(path));
    return true;
}

/* A number within the row's bounds; `or` ends "is not a number". */
static bool set_number(struct parser *p, const struct value *v, const char * or)
{
    const struct config_option *o = v->o;
    const char *s = v->tok[0].text;
    uint32_t x;
    if (!parse_u32(s, &x)) {
        diag_error(p->d, v->tok[0].line, "%s: '%s' is not a number%s", o->name, s, or);
        return false;
    }
    if (x < o->min || x > o->max) {
        diag_error(p->d, v->tok[0].line, "%s: %s out of range (%u-%u)", o->name, s, o->min, o->max);
        return false;
    }
    memcpy(v->field, &x, sizeof(x));
    return true;
}

static bool set_uint(struct parser *p, const struct value *v)
{
    return set_number(p, v, "");
}

/* A number, or auto for 0. */
static bool set_uint_auto(struct parser *p, const struct value *v)
{
    if (strcmp(v->tok[0].text, "auto") == 0) {
        uint32_t zero = 0;
        memcpy(v->field, &zero, sizeof(zero));
        return true;
    }
    return set_number(p, v, " or 'auto'");
}

/* A domain name, folded to lower case, without its trailing dot. */
static bool set_domain(struct parser *p, const struct value *v)
{
    const char *text = v->tok[0].text;
    size_t len = check_domain(p, text, v->tok[0].line, v->o->name);
    if (len == 0)
        return false;
    char *s = arena_strndup(p->a, text, len);
    if (!s) {
        parser_oom(p);
        return false;
    }
    for (char *c = s; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *cs = s;
    memcpy(v->field, &cs, sizeof(cs));
    return true;
}

/* How each type of option is set: the row's type chooses the setter. */
static const struct {
    const char *name; /* as --list-options prints it */
    bool (*set)(struct parser *p, const struct value *v);
    bool list; /* takes a list of values; the others exactly one */
} types[] = {
    [CONFIG_TYPE_DOMAIN] = {"domain", set_domain, false},
    [CONFIG_TYPE_LISTEN] = {"addresses", set_listen, true},
    [CONFIG_TYPE_UINT] = {"number", set_uint, false},
    [CONFIG_TYPE_UINT_AUTO] = {"number-or-auto", set_uint_auto, false},
    [CONFIG_TYPE_SERVERS] = {"servers", set_servers, true},
    [CONFIG_TYPE_USER] = {"user", set_user, false},
    [CONFIG_TYPE_ENDPOINT] = {"endpoint", set_endpoint, false},
    [CONFIG_TYPE_CHOICE] = {"choice", set_choice, false},
    [CONFIG_TYPE_DURATION] = {"duration", set_duration, false},
    [CONFIG_TYPE_REVERSE] = {"prefixes", set_reverse, true},
    [CONFIG_TYPE_PATH] = {"path", set_path, false},
    [CONFIG_TYPE_MSEC] = {"duration-ms", set_msec, false},
    [CONFIG_TYPE_NETWORKS] = {"networks", set_networks, true},
    [CONFIG_TYPE_PEERS] = {"peers", set_peers, true},
};
_Static_assert(sizeof(types) / sizeof(types[0]) == CONFIG_TYPE_COUNT, "a setter for every type");

/* Sets option `id` from its value's `n` tokens; `line` is the key's, 0 for
 * a default. Reports and returns false if the value is bad. */
static bool set_option(struct parser *p, enum config_option_id id, const struct token *tok,
                       size_t n, int line)
{
    const struct config_option *o = &config_options[id];
    if (!types[o->type].list && n != 1) {
        diag_error(p->d, n ? tok[1].line : line, "%s: expected one value, got %zu", o->name, n);
        return false;
    }
    const struct value v = {id, o, (char *)p->cfg + o->offset, tok, n, line};
    return types[o->type].set(p, &v);
}

/* The key p->key of an options section, with the value p->tokens: one
 * the section has, given once, with a value. */
void set_option_key(struct parser *p)
{
    const char *section = p->section_name;
    int id = -1;
    char known[512] = "";
    for (int i = 0; i < CONFIG_OPTION_COUNT; i++) {
        if (strcmp(config_options[i].section, section) != 0)
            continue;
        if (strcmp(config_options[i].name, p->key) == 0)
            id = i;
        if (known[0])
            strcat(known, ", ");
        strcat(known, config_options[i].name);
    }
    if (id < 0) {
        diag_error(p->d, p->key_line, "unknown key '%s' in [%s] (known: %s)", p->key, section,
                   known);
        return;
    }
    if (p->cfg->line[id]) {
        diag_error(p->d, p->key_line, "'%s' is given twice in [%s] (first on line %d)", p->key,
                   section, p->cfg->line[id]);
        return;
    }
    if (p->ntokens == 0) {
        diag_error(p->d, p->key_line, "'%s' has no value", p->key);
        return;
    }
    /* marked as given even when bad, for the duplicate check */
    p->cfg->line[id] = p->key_line;
    set_option(p, (enum config_option_id)id, p->tokens, p->ntokens, p->key_line);
}

void apply_defaults(struct parser *p)
{
    for (int i = 0; i < CONFIG_OPTION_COUNT; i++) {
        /* every default is a single token, and valid */
        struct token t = {.text = config_options[i].default_value};
        set_option(p, (enum config_option_id)i, &t, 1, 0);
    }
}

void check_settings(struct parser *p)
{
    /* A probe must end before the next one of its target is due. */
    struct config *cfg = p->cfg;
    if (cfg->health_timeout < cfg->health_interval)
        return;
    char t[24], i[24];
    int line = cfg->line[CONFIG_HEALTH_TIMEOUT] ? cfg->line[CONFIG_HEALTH_TIMEOUT]
                                                : cfg->line[CONFIG_HEALTH_INTERVAL];
    diag_error(p->d, line, "timeout: %s must be below interval (%s)",
               config_msec_text(cfg->health_timeout, t, sizeof(t)),
               config_msec_text(cfg->health_interval, i, sizeof(i)));
}

int config_list_options(FILE *out)
{
    for (int i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        char values[128] = "";
        if (o->type == CONFIG_TYPE_UINT || o->type == CONFIG_TYPE_UINT_AUTO ||
            o->type == CONFIG_TYPE_DURATION || o->type == CONFIG_TYPE_MSEC)
            snprintf(values, sizeof(values), "%u-%u", o->min, o->max);
        for (size_t k = 0, n = 0; o->choices && o->choices[k]; k++)
            n += (size_t)snprintf(values + n, sizeof(values) - n, "%s%s", k ? "|" : "",
                                  o->choices[k]);
        fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\n", o->section, o->name, types[o->type].name,
                o->default_value, values, o->help);
    }
    return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}
