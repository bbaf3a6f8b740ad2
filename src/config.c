/* config.c -- the mapping file: INI text to plain settings with line numbers. */
#include "svcmapd/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "svcmapd/arena.h"

/*
 * Debian's libinih is built with the default limits: it hands the handler no
 * line number, reads at most INI_MAX_LINE (200) bytes of a line and cuts
 * section names at 50. So the reader below feeds it one physical line at a
 * time, counts lines itself, reports what inih would silently drop or cut
 * (overlong lines, broken section headers, lines that are not key = value),
 * and keeps the full section and key names; inih splits keys from values and
 * strips comments and whitespace.
 */

#define MAX_TARGETS 1024 /* per service: keeps every answer under 64 KiB */

const struct config_option config_options[CONFIG_OPTION_COUNT] = {
    [CONFIG_ZONE] = {.section = "server",
                     .name = "zone",
                     .type = CONFIG_TYPE_DOMAIN,
                     .default_value = "cluster.local",
                     .min = 0,
                     .max = 0,
                     .offset = offsetof(struct config, zone),
                     .help = "names answered: <service>.<namespace>.svc.<zone>"},
    [CONFIG_LISTEN] = {.section = "server",
                       .name = "listen",
                       .type = CONFIG_TYPE_LISTEN,
                       .default_value = "127.0.0.1:5353",
                       .min = 0,
                       .max = 0,
                       .offset = offsetof(struct config, listen),
                       .help = "comma-separated addresses, UDP and TCP on each; [::1]:53 for IPv6"},
    [CONFIG_TTL] = {.section = "server",
                    .name = "ttl",
                    .type = CONFIG_TYPE_UINT,
                    .default_value = "5",
                    .min = 0,
                    .max = 3600,
                    .offset = offsetof(struct config, ttl),
                    .help = "TTL of mapped records, seconds (CoreDNS's default is 5)"},
    [CONFIG_TCP_IDLE_TIMEOUT] = {.section = "server",
                                 .name = "tcp-idle-timeout",
                                 .type = CONFIG_TYPE_UINT,
                                 .default_value = "10",
                                 .min = 1,
                                 .max = 3600,
                                 .offset = offsetof(struct config, tcp_idle_timeout),
                                 .help =
                                     "seconds a TCP connection may stay idle before it is closed"},
    [CONFIG_TCP_MAX_CONNECTIONS] = {.section = "server",
                                    .name = "tcp-max-connections",
                                    .type = CONFIG_TYPE_UINT,
                                    .default_value = "1024",
                                    .min = 1,
                                    .max = 65535,
                                    .offset = offsetof(struct config, tcp_max_connections),
                                    .help = "open TCP connections; more are closed at once"},
    [CONFIG_WORKERS] = {.section = "server",
                        .name = "workers",
                        .type = CONFIG_TYPE_UINT_AUTO,
                        .default_value = "auto",
                        .min = 1,
                        .max = 256,
                        .offset = offsetof(struct config, workers),
                        .help =
                            "threads answering queries, each with its own sockets; auto: one per "
                            "online CPU"},
    [CONFIG_RELOAD] = {.section = "server",
                       .name = "reload",
                       .type = CONFIG_TYPE_DURATION,
                       .default_value = "off",
                       .min = 1,
                       .max = 86400,
                       .offset = offsetof(struct config, reload),
                       .help =
                           "how often to look for a changed mapping file (30s, 2m...); off: only "
                           "on SIGHUP"},
    [CONFIG_TCP_MESSAGE_TIMEOUT] = {.section = "server",
                                    .name = "tcp-message-timeout",
                                    .type = CONFIG_TYPE_UINT,
                                    .default_value = "2",
                                    .min = 1,
                                    .max = 60,
                                    .offset = offsetof(struct config, tcp_message_timeout),
                                    .help =
                                        "seconds to receive the rest of a TCP message once it has "
                                        "begun"},
    [CONFIG_TCP_PIPELINE] = {.section = "server",
                             .name = "tcp-pipeline",
                             .type = CONFIG_TYPE_UINT,
                             .default_value = "100",
                             .min = 1,
                             .max = 1000,
                             .offset = offsetof(struct config, tcp_pipeline),
                             .help =
                                 "queries of one TCP connection answered per turn, and waiting for "
                                 "upstream lookups at once"},
    [CONFIG_UDP_MAX_SIZE] = {.section = "server",
                             .name = "udp-max-size",
                             .type = CONFIG_TYPE_UINT,
                             .default_value = "1232",
                             .min = 512,
                             .max = 4096,
                             .offset = offsetof(struct config, udp_max_size),
                             .help = "largest UDP reply, whatever the client's EDNS buffer size"},
    [CONFIG_USER] = {.section = "server",
                     .name = "user",
                     .type = CONFIG_TYPE_USER,
                     .default_value = "",
                     .min = 0,
                     .max = 0,
                     .offset = offsetof(struct config, user),
                     .help = "after binding, run as this user (name or UID[:GID]); empty: stay"},
    [CONFIG_REVERSE] = {.section = "server",
                        .name = "reverse",
                        .type = CONFIG_TYPE_REVERSE,
                        .default_value = "",
                        .min = 0,
                        .max = 0,
                        .offset = offsetof(struct config, reverse),
                        .help = "reverse zones answered whole, as ADDRESS/PREFIX (192.168.0.0/16, "
                                "2001:db8::/32); default none"},
    [CONFIG_MAX_REMOVAL] = {.section = "server",
                            .name = "max-removal",
                            .type = CONFIG_TYPE_UINT,
                            .default_value = "50",
                            .min = 0,
                            .max = 100,
                            .offset = offsetof(struct config, max_removal),
                            .help = "percent of the running services one reload may remove; more "
                                    "is held until confirmed; 100: no limit"},
    [CONFIG_CONFIRM_REMOVAL] = {.section = "server",
                                .name = "confirm-removal",
                                .type = CONFIG_TYPE_UINT,
                                .default_value = "0",
                                .min = 0,
                                .max = 10000000,
                                .offset = offsetof(struct config, confirm_removal),
                                .help = "apply a held reload that removes exactly this many "
                                        "services (the count its log line gives)"},
    [CONFIG_UPSTREAM_SERVERS] = {.section = "upstream",
                                 .name = "servers",
                                 .type = CONFIG_TYPE_SERVERS,
                                 .default_value = "/etc/resolv.conf",
                                 .min = 0,
                                 .max = 0,
                                 .offset = offsetof(struct config, upstream),
                                 .help =
                                     "resolvers for hostname targets outside the zone: addresses, "
                                     "a resolv.conf file (its nameservers), or none"},
    [CONFIG_UPSTREAM_TIMEOUT] = {.section = "upstream",
                                 .name = "timeout",
                                 .type = CONFIG_TYPE_UINT,
                                 .default_value = "2",
                                 .min = 1,
                                 .max = 30,
                                 .offset = offsetof(struct config, upstream_timeout),
                                 .help = "seconds per lookup; then the CNAME alone"},
    [CONFIG_UPSTREAM_CACHE_SIZE] =
        {.section = "upstream",
         .name = "cache-size",
         .type = CONFIG_TYPE_UINT,
         .default_value = "10000",
         .min = 16,
         .max = 10000000,
         .offset = offsetof(struct config, cache_size),
         .help = "answers cached per worker; the least recently used go first"},
    [CONFIG_UPSTREAM_MAX_STALE] = {.section = "upstream",
                                   .name = "max-stale",
                                   .type = CONFIG_TYPE_UINT,
                                   .default_value = "3600",
                                   .min = 0,
                                   .max = 259200,
                                   .offset = offsetof(struct config, max_stale),
                                   .help =
                                       "seconds an expired answer may still be served while the "
                                       "upstream fails (RFC 8767)"},
    [CONFIG_UPSTREAM_NEGATIVE_TTL] =
        {.section = "upstream",
         .name = "negative-ttl",
         .type = CONFIG_TYPE_UINT,
         .default_value = "5",
         .min = 0,
         .max = 300,
         .offset = offsetof(struct config, negative_ttl),
         .help = "seconds NXDOMAIN, NODATA and failures are cached, at most"},
    [CONFIG_HTTP_HEALTH] = {.section = "http",
                            .name = "health",
                            .type = CONFIG_TYPE_ENDPOINT,
                            .default_value = "off",
                            .min = 0,
                            .max = 0,
                            .offset = offsetof(struct config, http),
                            .help =
                                "address:port for /health (200 OK while the process runs); off"},
    [CONFIG_HTTP_READY] = {.section = "http",
                           .name = "ready",
                           .type = CONFIG_TYPE_ENDPOINT,
                           .default_value = "off",
                           .min = 0,
                           .max = 0,
                           .offset = offsetof(struct config, http),
                           .help = "address:port for /ready (200 once serving, 503 before and in "
                                   "lameduck); off"},
    [CONFIG_HTTP_METRICS] =
        {.section = "http",
         .name = "metrics",
         .type = CONFIG_TYPE_ENDPOINT,
         .default_value = "off",
         .min = 0,
         .max = 0,
         .offset = offsetof(struct config, http),
         .help = "address:port for /metrics (Prometheus text, CoreDNS's names); off"},
    [CONFIG_HTTP_LAMEDUCK] = {.section = "http",
                              .name = "lameduck",
                              .type = CONFIG_TYPE_UINT,
                              .default_value = "0",
                              .min = 0,
                              .max = 60,
                              .offset = offsetof(struct config, lameduck),
                              .help =
                                  "seconds svcmapd keeps answering after SIGTERM, /ready failing"},
    [CONFIG_LOG_LEVEL] = {.section = "log",
                          .name = "level",
                          .type = CONFIG_TYPE_CHOICE,
                          .default_value = "info",
                          .min = 0,
                          .max = 0,
                          .offset = offsetof(struct config, log_level),
                          .help = "least severe level logged: debug, info, warning or error",
                          .choices =
                              (const char *const[]){"debug", "info", "warning", "error", NULL}},
    [CONFIG_LOG_FORMAT] = {.section = "log",
                           .name = "format",
                           .type = CONFIG_TYPE_CHOICE,
                           .default_value = "text",
                           .min = 0,
                           .max = 0,
                           .offset = offsetof(struct config, log_format),
                           .help = "text (CoreDNS-like lines) or json (one object per line)",
                           .choices = (const char *const[]){"text", "json", NULL}},
    [CONFIG_LOG_QUERIES] = {.section = "log",
                            .name = "queries",
                            .type = CONFIG_TYPE_CHOICE,
                            .default_value = "no",
                            .min = 0,
                            .max = 0,
                            .offset = offsetof(struct config, log_queries),
                            .help = "yes: one line per query, in CoreDNS's log plugin format",
                            .choices = (const char *const[]){"no", "yes", NULL}},
};

/* ---- a small string set, for duplicate sections and services ---- */

struct strset_entry {
    const char *key;
    int line;
};

struct strset {
    struct strset_entry *slots;
    size_t cap;
    size_t count;
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: fine for trusted file keys */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static void strset_clear(struct strset *set)
{
    if (set->cap > 4096) {
        free(set->slots); /* a big namespace before: start small again */
        set->slots = NULL;
        set->cap = 0;
    } else if (set->slots) {
        memset(set->slots, 0, set->cap * sizeof(*set->slots));
    }
    set->count = 0;
}

/* Inserts `key` (owned by the caller's arena). Returns 0 if it was new, or
 * the line of the earlier entry; -1 when out of memory. */
static int strset_add(struct strset *set, const char *key, int line)
{
    if ((set->count + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        struct strset_entry *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slots[i].key)
                continue;
            size_t j = str_hash(set->slots[i].key) & (cap - 1);
            while (slots[j].key)
                j = (j + 1) & (cap - 1);
            slots[j] = set->slots[i];
        }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t j = str_hash(key) & (set->cap - 1);
    while (set->slots[j].key) {
        if (strcmp(set->slots[j].key, key) == 0)
            return set->slots[j].line;
        j = (j + 1) & (set->cap - 1);
    }
    set->slots[j].key = key;
    set->slots[j].line = line;
    set->count++;
    return 0;
}

/* ---- parser state ---- */

enum section_kind {
    SECTION_NONE,    /* before the first section */
    SECTION_INVALID, /* a bad header: its keys are skipped, the header was reported */
    SECTION_OPTIONS, /* [server], [upstream], [http]: keys of config_options[] */
    SECTION_NAMESPACE,
};

enum line_kind {
    LINE_BLANK,
    LINE_SECTION,
    LINE_KEY,
    LINE_CONTINUATION,
};

struct token {
    const char *text; /* NUL-terminated, in the arena */
    int line;
};

struct parser {
    struct config *cfg;
    struct diag *d;
    struct arena *a; /* settings */
    struct arena *m; /* the mapping: namespaces, services, targets */

    const char *text; /* the whole file */
    size_t len;
    size_t pos;
    int lineno;
    enum line_kind kind; /* of the line inih is handling now */
    bool have_key;       /* mirrors inih's prev_name: continuation lines allowed */
    bool skipping;       /* drop continuation lines of a line that was rejected */

    enum section_kind section;
    const char *section_name; /* of SECTION_OPTIONS */
    int section_line;
    size_t ns; /* index of the current namespace */

    /* The key being read: its value may continue on following lines, so it
     * is processed when the next key, section or the end of file arrives. */
    const char *key;
    int key_line;
    struct token *tokens;
    size_t ntokens, tokcap;
    bool key_open;

    struct strset names;    /* "n:<ns>" and "section:<name>", keys in `keys` */
    struct strset services; /* of the current namespace */
    struct arena *keys;     /* freed when parsing ends */
    struct arena *scratch;  /* the tokens of the key being read */
    bool oom;
};

static void parser_oom(struct parser *p)
{
    if (!p->oom)
        diag_error(p->d, 0, "out of memory");
    p->oom = true;
}

static bool is_label_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* DNS-1123 label: 1-63 of a-z0-9-, no leading or trailing '-'. Upper case
 * is accepted and folded, since matching is case-insensitive anyway. */
static const char *check_dns1123(struct parser *p, const char *s, int line, const char *what)
{
    size_t n = strlen(s);
    char buf[64];
    if (n == 0 || n > 63) {
        diag_error(p->d, line, "%s name '%s' must be 1 to 63 characters", what, s);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int c = tolower((unsigned char)s[i]);
        if (!is_label_char(c)) {
            diag_error(p->d, line,
                       "%s name '%s' is not a DNS-1123 label (only a-z, 0-9 and '-' are allowed)",
                       what, s);
            return NULL;
        }
        buf[i] = (char)c;
    }
    if (buf[0] == '-' || buf[n - 1] == '-') {
        diag_error(p->d, line, "%s name '%s' must not start or end with '-'", what, s);
        return NULL;
    }
    return arena_strndup(p->m, buf, n);
}

/* A domain name in text: labels of letters, digits, '-' and '_', 1-63 long,
 * at most 253 characters, optional trailing dot. Returns the length without
 * the trailing dot, or 0 after reporting what is wrong. */
static size_t check_domain(struct parser *p, const char *s, int line, const char *what)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    if (n == 0 || (n == 1 && s[0] == '.')) {
        diag_error(p->d, line, "%s '%s' is empty or the root", what, s);
        return 0;
    }
    if (n > 253) {
        diag_error(p->d, line, "%s '%.40s...' is longer than 253 characters", what, s);
        return 0;
    }
    size_t start = 0;
    bool last_numeric = true;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!isalnum((unsigned char)c) && c != '-' && c != '_') {
                diag_error(p->d, line, "%s '%s' has a bad character '%c'", what, s, c);
                return 0;
            }
            continue;
        }
        size_t l = i - start;
        if (l == 0 || l > 63) {
            diag_error(p->d, line, "%s '%s' has a label of %zu characters (1 to 63 allowed)", what,
                       s, l);
            return 0;
        }
        if (s[start] == '-' || s[i - 1] == '-') {
            diag_error(p->d, line, "%s '%s' has a label that starts or ends with '-'", what, s);
            return 0;
        }
        last_numeric = strspn(s + start, "0123456789") >= l;
        start = i + 1;
    }
    if (last_numeric) {
        /* "192.168.1.300" is a typo for an address, not a host name: no
         * top-level domain is numeric. */
        diag_error(p->d, line, "'%s' is not a valid IP address", s);
        return 0;
    }
    return n;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Port: 1-65535, decimal. Reports and returns false if bad. */
static bool parse_port(struct parser *p, const char *s, int line, uint16_t *port)
{
    uint32_t v;
    if (!parse_u32(s, &v)) {
        diag_error(p->d, line, "bad port '%s'", s);
        return false;
    }
    if (v < 1 || v > 65535) {
        diag_error(p->d, line, "port %s out of range (1-65535)", s);
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

/* IPv4 in strict dotted-quad form: leading zeros are refused, because some
 * tools read them as octal. */
static bool parse_ipv4(const char *s, uint8_t out[4])
{
    const char *q = s;
    for (int i = 0; i < 4; i++) {
        if (!isdigit((unsigned char)*q))
            return false;
        if (q[0] == '0' && isdigit((unsigned char)q[1]))
            return false;
        unsigned v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*q) && digits < 4) {
            v = v * 10 + (unsigned)(*q++ - '0');
            digits++;
        }
        if (v > 255 || digits > 3)
            return false;
        out[i] = (uint8_t)v;
        if (i < 3 && *q++ != '.')
            return false;
    }
    return *q == '\0';
}

/*
 * An address with an optional port: 1.2.3.4, 1.2.3.4:53, 2001:db8::1,
 * [2001:db8::1], [2001:db8::1]:53. Returns 1 if `s` parsed, 0 if it is not
 * an address at all (maybe a hostname), -1 if it is a bad address (reported).
 */
static int parse_address(struct parser *p, const char *s, int line, struct config_target *t)
{
    char buf[128];
    size_t n = strlen(s);
    const char *port = NULL;

    if (n >= sizeof(buf)) {
        if (strchr(s, ':') || s[0] == '[') {
            diag_error(p->d, line, "bad address '%.40s...'", s);
            return -1;
        }
        return 0;
    }
    memcpy(buf, s, n + 1);
    t->port = 0;

    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close) {
            diag_error(p->d, line, "bad address '%s': missing ']'", s);
            return -1;
        }
        *close = '\0';
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0') {
            diag_error(p->d, line, "bad address '%s': expected ':PORT' after ']'", s);
            return -1;
        }
        if (inet_pton(AF_INET6, buf + 1, t->addr) != 1) {
            diag_error(p->d, line, "bad IPv6 address '%s'", buf + 1);
            return -1;
        }
        t->family = AF_INET6;
    } else if (strchr(buf, ':')) {
        char *colon = strchr(buf, ':');
        if (strchr(colon + 1, ':') == NULL && strspn(buf, "0123456789.") == (size_t)(colon - buf)) {
            /* a.b.c.d:port */
            *colon = '\0';
            port = colon + 1;
            if (!parse_ipv4(buf, t->addr)) {
                diag_error(p->d, line, "bad IPv4 address '%s'", buf);
                return -1;
            }
            t->family = AF_INET;
        } else if (inet_pton(AF_INET6, buf, t->addr) == 1) {
            t->family = AF_INET6;
        } else if (strchr(colon + 1, ':') == NULL) {
            return 0; /* name:port: not an address; the caller says why */
        } else {
            diag_error(p->d, line,
                       "bad address '%s' (write an IPv6 address with a port as [ADDR]:PORT)", s);
            return -1;
        }
    } else if (strspn(buf, "0123456789.") == n) {
        if (!parse_ipv4(buf, t->addr)) {
            diag_error(p->d, line, "bad IPv4 address '%s'", s);
            return -1;
        }
        t->family = AF_INET;
    } else {
        return 0;
    }

    if (port && !parse_port(p, port, line, &t->port))
        return -1;
    t->kind = CONFIG_TARGET_ADDRESS;
    t->line = line;
    return 1;
}

/* ---- [server] options ---- */

static void listen_text(struct config_listen *l)
{
    char host[INET6_ADDRSTRLEN];
    if (l->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(l->text, sizeof(l->text), "%s:%u", host, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->addr;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(l->text, sizeof(l->text), "[%s]:%u", host, ntohs(sin6->sin6_port));
    }
}

/* The socket address (and its text) of an address target with a port. */
static void target_sockaddr(const struct config_target *t, struct config_listen *l)
{
    if (t->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&l->addr;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(t->port);
        memcpy(&sin->sin_addr, t->addr, 4);
        l->addrlen = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(t->port);
        memcpy(&sin6->sin6_addr, t->addr, 16);
        l->addrlen = sizeof(*sin6);
    }
    listen_text(l);
}

/* Addresses with ports (53 when not given), for `listen` and `servers`. */

static bool set_addresses(struct parser *p, const struct token *tok, size_t n,
                          enum config_option_id id)
{
    struct config *cfg = p->cfg;
    const char *what = config_options[id].name;
    struct config_listen *list = arena_zalloc(p->a, (n ? n : 1) * sizeof(*list));
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
        struct config_listen *l = &list[count];
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
    if (ok && count == 0) {
        diag_error(p->d, n ? tok[0].line : p->key_line, "%s: no address given", what);
        ok = false;
    }
    if (!ok)
        return false;
    if (id == CONFIG_LISTEN) {
        cfg->listen = list;
        cfg->nlisten = count;
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
        tok[n] = (struct token){addrs[n], line};
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

/* One ADDRESS/PREFIX of `reverse`; reports and returns false if bad. */
static bool parse_reverse(struct parser *p, const struct token *tok, struct config_reverse *r)
{
    const char *slash = strchr(tok->text, '/');
    char addr[INET6_ADDRSTRLEN + 1];
    size_t alen = slash ? (size_t)(slash - tok->text) : 0;
    uint32_t bits;
    if (!slash || alen == 0 || alen >= sizeof(addr) || !parse_u32(slash + 1, &bits)) {
        diag_error(p->d, tok->line, "reverse: '%s' is not ADDRESS/PREFIX (like 192.168.0.0/16)",
                   tok->text);
        return false;
    }
    memcpy(addr, tok->text, alen);
    addr[alen] = '\0';
    memset(r, 0, sizeof(*r));
    if (parse_ipv4(addr, r->addr))
        r->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, r->addr) == 1)
        r->family = AF_INET6;
    else {
        diag_error(p->d, tok->line, "reverse: bad address '%s'", addr);
        return false;
    }
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
    uint8_t net[16];
    memcpy(net, r->addr, 16);
    if (bits % 8)
        net[bits / 8] &= 0xf0; /* a nibble boundary */
    memset(net + (bits + 7) / 8, 0, 16 - (bits + 7) / 8);
    if (memcmp(net, r->addr, 16) != 0) {
        inet_ntop(r->family, net, addr, sizeof(addr));
        diag_error(p->d, tok->line, "reverse: '%s' has address bits past /%u (did you mean %s/%u?)",
                   tok->text, bits, addr, bits);
        return false;
    }
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
static bool set_reverse(struct parser *p, const struct token *tok, size_t n)
{
    struct config *cfg = p->cfg;
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

static bool set_option(struct parser *p, enum config_option_id id, const struct token *tok,
                       size_t n, int line)
{
    const struct config_option *o = &config_options[id];
    char *field = (char *)p->cfg + o->offset;

    if (o->type == CONFIG_TYPE_LISTEN)
        return set_addresses(p, tok, n, id);
    if (o->type == CONFIG_TYPE_REVERSE)
        return set_reverse(p, tok, n);
    if (o->type == CONFIG_TYPE_SERVERS) {
        p->cfg->resolv = (struct config_resolv){CONFIG_RESOLV_OK, 0, NULL};
        if (n == 1 && strcmp(tok[0].text, "none") == 0) {
            p->cfg->upstream = NULL;
            p->cfg->nupstream = 0;
            return true;
        }
        if (n == 1 && tok[0].text[0] == '/') /* as CoreDNS's forward . /etc/resolv.conf */
            return resolv_conf_servers(p, tok[0].text, line);
        return set_addresses(p, tok, n, id);
    }

    if (n != 1) {
        diag_error(p->d, n ? tok[1].line : line, "%s: expected one value, got %zu", o->name, n);
        return false;
    }
    const char *v = tok[0].text;

    if (o->type == CONFIG_TYPE_USER) {
        /* Checked now so that -t catches a user this machine lacks; the
         * switch itself happens after binding (main.c). */
        const char *user = NULL;
        if (*v) {
            uint32_t uid, gid;
            char num[24];
            const char *colon = strchr(v, ':');
            size_t ulen = colon ? (size_t)(colon - v) : strlen(v);
            bool numeric = false;
            if (ulen < sizeof(num)) {
                memcpy(num, v, ulen);
                num[ulen] = '\0';
                numeric = parse_u32(num, &uid) && (!colon || parse_u32(colon + 1, &gid));
            }

            if (!numeric && !getpwnam(v)) {
                diag_error(p->d, tok[0].line, "user: no user '%s' on this system", v);
                return false;
            }
            user = arena_strndup(p->a, v, strlen(v));
        }
        memcpy(field, &user, sizeof(user));
        return true;
    }
    if (o->type == CONFIG_TYPE_DURATION) {
        /* N, Ns, Nm or Nh; "off" is 0 */
        uint32_t x = 0, unit = 1;
        char num[16];
        size_t l = strlen(v);
        if (strcmp(v, "off") == 0) {
            memcpy(field, &x, sizeof(x));
            return true;
        }
        if (l > 1 && strchr("smh", v[l - 1])) {
            unit = v[l - 1] == 's' ? 1 : v[l - 1] == 'm' ? 60 : 3600;
            l--;
        }
        if (l == 0 || l >= sizeof(num)) {
            diag_error(p->d, tok[0].line, "%s: '%s' is not a duration (like 30s, 2m) or off",
                       o->name, v);
            return false;
        }
        memcpy(num, v, l);
        num[l] = '\0';
        if (!parse_u32(num, &x) || x > o->max / unit || x * unit < o->min) {
            diag_error(p->d, tok[0].line, "%s: '%s' is not a duration from %us to %uh, or off",
                       o->name, v, o->min, o->max / 3600);
            return false;
        }
        x *= unit;
        memcpy(field, &x, sizeof(x));
        return true;
    }
    if (o->type == CONFIG_TYPE_CHOICE) {
        char known[128] = "";
        for (uint32_t i = 0; o->choices[i]; i++) {
            if (strcmp(o->choices[i], v) == 0) {
                memcpy(field, &i, sizeof(i));
                return true;
            }
            if (i)
                strcat(known, ", ");
            strcat(known, o->choices[i]);
        }
        diag_error(p->d, tok[0].line, "%s: '%s' is not one of %s", o->name, v, known);
        return false;
    }
    if (o->type == CONFIG_TYPE_ENDPOINT) {
        size_t ep = (size_t)(id - CONFIG_HTTP_HEALTH);
        if (strcmp(v, "off") == 0) {
            p->cfg->http_on[ep] = false;
            return true;
        }
        struct config_target t = {0};
        int r = parse_address(p, v, tok[0].line, &t);
        if (r == 0 || (r > 0 && t.port == 0)) {
            diag_error(p->d, tok[0].line, "%s: expected ADDRESS:PORT (like 127.0.0.1:8080) or off",
                       o->name);
            return false;
        }
        if (r < 0)
            return false;
        struct config_listen *l = &p->cfg->http[ep];
        memset(l, 0, sizeof(*l));
        target_sockaddr(&t, l);
        l->line = tok[0].line;
        p->cfg->http_on[ep] = true;
        return true;
    }
    if (o->type == CONFIG_TYPE_UINT_AUTO && strcmp(v, "auto") == 0) {
        uint32_t zero = 0;
        memcpy(field, &zero, sizeof(zero));
        return true;
    }
    if (o->type == CONFIG_TYPE_UINT || o->type == CONFIG_TYPE_UINT_AUTO) {
        uint32_t x;
        if (!parse_u32(v, &x)) {
            diag_error(p->d, tok[0].line, "%s: '%s' is not a number%s", o->name, v,
                       o->type == CONFIG_TYPE_UINT_AUTO ? " or 'auto'" : "");
            return false;
        }
        if (x < o->min || x > o->max) {
            diag_error(p->d, tok[0].line, "%s: %s out of range (%u-%u)", o->name, v, o->min,
                       o->max);
            return false;
        }
        memcpy(field, &x, sizeof(x));
        return true;
    }

    /* CONFIG_TYPE_DOMAIN */
    size_t len = check_domain(p, v, tok[0].line, o->name);
    if (len == 0)
        return false;
    char *s = arena_strndup(p->a, v, len);
    if (!s) {
        parser_oom(p);
        return false;
    }
    for (char *c = s; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *cs = s;
    memcpy(field, &cs, sizeof(cs));
    return true;
}

/* ---- [namespace] services ---- */

static bool same_target(const struct config_target *a, const struct config_target *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

enum service_option {
    OPT_TTL = 1,
    OPT_SRV = 2,
    OPT_RESOLVE = 4,
};

/* One `key=value` option of a service line: ttl=, srv= or resolve=. */
static void parse_service_option(struct parser *p, struct config_service *svc, const char *tok,
                                 int line, unsigned *seen)
{
    const char *eq = strchr(tok, '=');
    size_t klen = (size_t)(eq - tok);
    const char *v = eq + 1;
    unsigned bit = klen == 3 && strncmp(tok, "ttl", 3) == 0       ? OPT_TTL
                   : klen == 3 && strncmp(tok, "srv", 3) == 0     ? OPT_SRV
                   : klen == 7 && strncmp(tok, "resolve", 7) == 0 ? OPT_RESOLVE
                                                                  : 0;
    if (bit == 0) {
        diag_error(p->d, line, "unknown option '%.*s=' (known: srv=, ttl=, resolve=)", (int)klen,
                   tok);
        return;
    }
    if (*seen & bit) {
        diag_error(p->d, line, "%.*s= is given twice", (int)klen, tok);
        return;
    }
    *seen |= bit;

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
}

static void add_service(struct parser *p, const char *rawname, int line, const struct token *tok,
                        size_t n)
{
    struct config_namespace *ns = &p->cfg->namespaces[p->ns];
    const char *name = check_dns1123(p, rawname, line, "service");
    bool ok = name != NULL;

    if (name) {
        /* the names of this namespace only: a small set, in cache */
        int prev = strset_add(&p->services, name, line);
        if (prev < 0) {
            parser_oom(p);
            return;
        }
        if (prev > 0) {
            diag_error(p->d, line,
                       "duplicate service '%s' in namespace '%s' (first defined on line %d)", name,
                       ns->name, prev);
            ok = false;
        }
    }

    struct config_service svc = {.name = name, .line = line, .ttl = -1};
    struct config_target *targets = arena_zalloc(p->m, (n ? n : 1) * sizeof(*targets));
    if (!targets) {
        parser_oom(p);
        return;
    }
    unsigned seen = 0;
    unsigned errors_before = p->d->errors;
    size_t nhost = 0, naddr = 0, nport = 0;
    const struct config_target *host = NULL;

    for (size_t i = 0; i < n; i++) {
        const char *s = tok[i].text;
        if (strchr(s, '=')) {
            parse_service_option(p, &svc, s, tok[i].line, &seen);
            continue;
        }
        struct config_target *t = &targets[svc.ntargets];
        int r = parse_address(p, s, tok[i].line, t);
        if (r < 0)
            continue;
        if (r == 0 && strchr(s, ':')) {
            diag_error(p->d, tok[i].line,
                       "'%s': a hostname cannot carry a port (a CNAME has none; write IP:PORT "
                       "to publish the port in SRV)",
                       s);
            continue;
        }
        if (r == 0) {
            size_t len = check_domain(p, s, tok[i].line, "hostname");
            if (len == 0)
                continue;
            t->kind = CONFIG_TARGET_HOSTNAME;
            t->line = tok[i].line;
            t->hostname = arena_strndup(p->m, s, len);
            if (nhost++ == 1)
                diag_error(p->d, tok[i].line,
                           "service '%s' has more than one hostname ('%s' and '%s'); a CNAME has "
                           "exactly one target",
                           rawname, host->hostname, t->hostname);
            host = t;
        } else {
            for (uint32_t j = 0; j < svc.ntargets; j++) {
                if (targets[j].kind == CONFIG_TARGET_ADDRESS && same_target(&targets[j], t)) {
                    diag_error(p->d, tok[i].line, "address '%s' is given twice for service '%s'", s,
                               rawname);
                    r = -1;
                    break;
                }
            }
            if (r < 0)
                continue;
            naddr++;
            if (t->port)
                nport++;
        }
        if (++svc.ntargets > MAX_TARGETS) {
            diag_error(p->d, tok[i].line, "service '%s' has more than %d targets", rawname,
                       MAX_TARGETS);
            return;
        }
    }

    if (p->d->errors == errors_before) {
        if (svc.ntargets == 0) {
            diag_error(p->d, line, "service '%s' has no target (expected a hostname or addresses)",
                       rawname);
        } else if (nhost && naddr) {
            diag_error(p->d, host->line,
                       "service '%s': hostname '%s' cannot be mixed with addresses (a CNAME "
                       "cannot have other records)",
                       rawname, host->hostname);
        } else if (nport && nport != naddr) {
            diag_error(p->d, line,
                       "service '%s': either every address has a port or none has (%zu of %zu "
                       "have one)",
                       rawname, nport, naddr);
        } else if (svc.srv_name && nport == 0) {
            /* SPEC §1's own example has srv= on portless addresses: valid,
             * but the operator should know no SRV record comes of it. */
            diag_warning(p->d, line,
                         "service '%s': srv= has no effect without ports (write IP:PORT to "
                         "publish SRV records)",
                         rawname);
        }
    }
    if (!ok)
        return;
    if (p->d->errors != errors_before) {
        /* Kept without targets, so that a CNAME to it is not reported as
         * dangling as well: one mistake, one message. */
        svc.ntargets = 0;
        svc.invalid = true;
    }

    svc.targets = targets;
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
    ns->services[ns->nservices++] = svc;
    p->cfg->nservices++;
}

/* ---- line handling ---- */

/* Splits a value into tokens at commas and whitespace; a ';' or '#' after
 * whitespace starts a comment (Debian's inih r55 strips inline comments
 * only from the first line of a value, not from continuation lines). */
static void add_tokens(struct parser *p, const char *value, int line)
{
    const char *s = value;
    while (*s) {
        while (*s == ',' || isspace((unsigned char)*s))
            s++;
        if (!*s || *s == '#' || *s == ';')
            break;

        const char *start = s;
        while (*s && *s != ',' && !isspace((unsigned char)*s))
            s++;
        if (p->ntokens == p->tokcap) {
            size_t cap = p->tokcap ? p->tokcap * 2 : 16;
            struct token *t = realloc(p->tokens, cap * sizeof(*t));
            if (!t) {
                parser_oom(p);
                return;
            }
            p->tokens = t;
            p->tokcap = cap;
        }
        p->tokens[p->ntokens].text = arena_strndup(p->scratch, start, (size_t)(s - start));
        p->tokens[p->ntokens].line = line;
        if (!p->tokens[p->ntokens].text) {
            parser_oom(p);
            return;
        }
        p->ntokens++;
    }
}

static void finish_key(struct parser *p)
{
    if (!p->key_open)
        return;
    p->key_open = false;

    if (p->section == SECTION_OPTIONS) {
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
    } else if (p->section == SECTION_NAMESPACE) {
        add_service(p, p->key, p->key_line, p->tokens, p->ntokens);
    }
}

/* "[server], [upstream], ... or [namespace NAME]", from the options table. */
static const char *section_list(char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const char *sec = config_options[i].section;
        if (i > 0 && strcmp(sec, config_options[i - 1].section) == 0)
            continue;
        n += (size_t)snprintf(out + n, cap - n, "[%s], ", sec);
    }
    if (n >= 2)
        out[n - 2] = '\0';
    snprintf(out + strlen(out), cap - strlen(out), " or [namespace NAME]");
    return out;
}

static void begin_section(struct parser *p, const char *hdr, size_t len, int line)
{
    finish_key(p);
    p->section = SECTION_INVALID;
    p->section_line = line;

    char buf[256], text[256];
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, hdr, len);
    buf[len] = '\0';
    memcpy(text, buf, len + 1); /* strtok_r cuts buf */

    char *save = NULL;
    char *kind = strtok_r(buf, " \t", &save);
    char *name = kind ? strtok_r(NULL, " \t", &save) : NULL;
    char *extra = name ? strtok_r(NULL, " \t", &save) : NULL;

    for (int i = 0; kind && !name && i < CONFIG_OPTION_COUNT; i++) {
        if (strcmp(config_options[i].section, kind) != 0)
            continue;
        char key[32];
        snprintf(key, sizeof(key), "section:%s", kind);
        char *k = arena_strndup(p->keys, key, strlen(key));
        int prev = k ? strset_add(&p->names, k, line) : -1;
        if (prev < 0) {
            parser_oom(p);
            return;
        }
        if (prev > 0) {
            diag_error(p->d, line, "[%s] is given twice (first on line %d)", kind, prev);
            return;
        }
        p->section = SECTION_OPTIONS;
        p->section_name = config_options[i].section;
        return;
    }

    if (kind && strcmp(kind, "namespace") == 0) {
        if (!name || extra) {
            diag_error(p->d, line, "expected [namespace NAME]");
            return;
        }
        const char *ns = check_dns1123(p, name, line, "namespace");
        if (!ns)
            return;
        char key[80];
        snprintf(key, sizeof(key), "n:%s", ns);
        char *k = arena_strndup(p->keys, key, strlen(key));
        int prev = k ? strset_add(&p->names, k, line) : -1;
        if (prev < 0) {
            parser_oom(p);
            return;
        }
        if (prev > 0) {
            diag_error(p->d, line, "[namespace %s] is given twice (first on line %d)", ns, prev);
            return;
        }
        struct config *cfg = p->cfg;
        struct config_namespace *list =
            realloc(cfg->namespaces, (cfg->nnamespaces + 1) * sizeof(*list));
        if (!list) {
            parser_oom(p);
            return;
        }
        cfg->namespaces = list;
        list[cfg->nnamespaces] = (struct config_namespace){.name = ns, .line = line};
        p->ns = cfg->nnamespaces++;
        p->section = SECTION_NAMESPACE;
        strset_clear(&p->services);
        return;
    }
    char known[128];
    diag_error(p->d, line, "unknown section '[%s]' (expected %s)", text,
               section_list(known, sizeof(known)));
}

/* inih calls this for every key = value line and every continuation line. */
static int on_value(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    (void)section; /* ours is not cut at 50 characters */

    if (p->kind == LINE_CONTINUATION) {
        if (p->key_open) {
            /* "  redis = 1.2.3.4" indented by mistake reads as a
             * continuation of the previous key: say so instead of
             * complaining about a hostname called '='. */
            const char *eq = strchr(value, '=');
            if (eq && eq > value && (eq[-1] == ' ' || eq[-1] == '\t' || eq[1] == ' ')) {
                diag_error(p->d, p->lineno,
                           "indented line continues the value of '%s'; remove the leading "
                           "whitespace to start a new key",
                           p->key);
                return 1;
            }
            add_tokens(p, value, p->lineno);
        }
        return 1;
    }

    finish_key(p);
    if (p->section == SECTION_NONE) {
        char known[128];
        diag_error(p->d, p->lineno,

                   "'%s' is outside any section (start with %s)", name,
                   section_list(known, sizeof(known)));
        return 1;
    }
    if (p->section == SECTION_INVALID)
        return 1; /* the section header was reported */
    if (*name == '\0') {
        diag_error(p->d, p->lineno, "missing key before '='");
        return 1;
    }
    /* the previous key is done with: its name and tokens go */
    arena_reset(p->scratch);
    p->key = arena_strndup(p->scratch, name, strlen(name));
    if (!p->key) {
        parser_oom(p);
        return 1;
    }
    p->key_line = p->lineno;
    p->key_open = true;
    p->ntokens = 0;
    add_tokens(p, value, p->lineno);
    return 1;
}

/* The position of the first of `chars` or of an inline ';' comment (a ';'
 * after whitespace), as inih finds it. */
static const char *find_chars_or_comment(const char *s, const char *end, const char *chars)
{
    bool was_space = false;
    char c0 = chars[0], c1 = chars[1] ? chars[1] : chars[0]; /* one or two chars */
    for (; s < end; s++) {
        if (*s == c0 || *s == c1)
            return s;
        if (was_space && *s == ';')
            return end;
        was_space = isspace((unsigned char)*s);
    }
    return end;
}

/* inih's reader: hands it one physical line, after checking what inih
 * would not report. A line it must not parse is replaced (or skipped) so
 * that inih's state, the "previous key" continuation lines attach to,
 * stays the same as ours. */
static char *read_line(char *str, int num, void *stream)
{
    struct parser *p = stream;
    for (;;) {
        if (p->pos >= p->len)
            return NULL;
        const char *line = p->text + p->pos;
        const char *nl = memchr(line, '\n', p->len - p->pos);
        const char *end = nl ? nl : p->text + p->len;
        p->pos = (size_t)(end - p->text) + (nl ? 1 : 0);
        p->lineno++;
        if (end > line && end[-1] == '\r')
            end--;
        if (p->lineno == 1 && end - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
            line += 3;

        size_t len = (size_t)(end - line);
        const char *s = line;
        while (s < end && isspace((unsigned char)*s))
            s++;
        if (s == end || *s == ';' || *s == '#')
            continue;

        bool continuation = p->have_key && s > line;
        if (continuation && p->skipping)
            continue;
        p->skipping = false;

        const char *bad = NULL;
        if (memchr(line, '\0', len))
            bad = "line contains a NUL byte";
        else if (len > (size_t)num - 2)
            bad = "line is too long for inih; continue a long value on the next line, indented";
        if (bad) {
            diag_error(p->d, p->lineno, "%s", bad);
            if (continuation) {
                p->key_open = false; /* its value is incomplete: drop it quietly */
            } else {
                finish_key(p);
                p->have_key = true; /* its own continuation lines are skipped too */
            }
            p->skipping = true;
            continue;
        }

        if (continuation) {
            p->kind = LINE_CONTINUATION;
        } else if (*s == '[') {
            const char *close = find_chars_or_comment(s + 1, end, "]");
            p->have_key = false;
            p->kind = LINE_SECTION;
            if (close == end) {
                diag_error(p->d, p->lineno, "section header without ']'");
                finish_key(p);
                p->section = SECTION_INVALID;
                strcpy(str, "[]\n"); /* resets inih's previous key as the header would */
                return str;
            }
            const char *after = close + 1;
            while (after < end && isspace((unsigned char)*after))
                after++;
            if (after < end && *after != ';' && *after != '#')
                diag_error(p->d, p->lineno, "unexpected text after ']'");
            begin_section(p, s + 1, (size_t)(close - s - 1), p->lineno);
        } else if (find_chars_or_comment(s, end, "=:") != end) {
            p->kind = LINE_KEY;
            p->have_key = true;
        } else {
            diag_error(p->d, p->lineno, "expected 'key = value', a [section] or a comment");
            finish_key(p);
            p->skipping = true;
            continue;
        }
        memcpy(str, line, len);
        str[len] = '\n';
        str[len + 1] = '\0';
        return str;
    }
}

static struct config *config_new(const char *path)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->arena = arena_new();
    cfg->map = arena_new();
    if (!cfg->arena || !cfg->map) {
        arena_free(cfg->arena);
        arena_free(cfg->map);
        free(cfg);
        return NULL;
    }
    cfg->path = arena_strndup(cfg->arena, path, strlen(path));
    return cfg;
}

void config_drop_mapping(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        free(cfg->namespaces[i].services);
    free(cfg->namespaces);
    cfg->namespaces = NULL;
    cfg->nnamespaces = 0;
    cfg->nservices = 0;
    arena_free(cfg->map);
    cfg->map = arena_new(); /* NULL when out of memory: nothing uses it now */
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        free(cfg->namespaces[i].services);
    free(cfg->namespaces);
    arena_free(cfg->arena);
    arena_free(cfg->map);
    free(cfg);
}

static void apply_defaults(struct parser *p)
{
    for (int i = 0; i < CONFIG_OPTION_COUNT; i++) {
        /* every default is a single token, and valid */
        struct token t = {config_options[i].default_value, 0};
        set_option(p, (enum config_option_id)i, &t, 1, 0);
    }
}

static struct config *parse_text(const char *text, size_t len, struct diag *d)
{
    struct config *cfg = config_new(d->file);
    if (!cfg) {
        diag_error(d, 0, "out of memory");
        return NULL;
    }
    struct parser p = {
        .cfg = cfg,
        .d = d,
        .a = cfg->arena,
        .m = cfg->map,
        .text = text,
        .len = len,
        .keys = arena_new(),
        .scratch = arena_new(),
    };
    if (!p.keys || !p.scratch) {
        arena_free(p.keys);
        arena_free(p.scratch);
        config_free(cfg);
        diag_error(d, 0, "out of memory");
        return NULL;
    }

    cfg->hash = config_hash(text, len);
    unsigned errors_before = d->errors;
    /* Defaults first: a bad value in the file then leaves the default,
     * and the rest of the file is still checked against sane settings. */
    apply_defaults(&p);
    /* inih's own return value only names the first bad line; read_line
     * has already reported every line inih would reject. */
    (void)ini_parse_stream(read_line, &p, on_value, &p);
    finish_key(&p);
    /* No section at all: nothing but blanks and comments, or no byte.
     * Never a mapping to serve: a file being rewritten in place (cp, a
     * shell's >) is empty for a moment. */
    if (p.section_line == 0 && d->errors == errors_before)
        diag_error(d, 0, "the file is empty (no [server] or [namespace] section)");

    free(p.tokens);
    free(p.names.slots);
    free(p.services.slots);
    arena_free(p.keys);
    arena_free(p.scratch);
    if (p.oom) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct config *config_parse(const char *text, size_t len, struct diag *d)
{
    return parse_text(text, len, d);
}

uint64_t config_hash(const char *p, size_t n)
{
    uint64_t h = 0x84222325cbf29ce4ULL ^ n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 31;
    }
    for (; n; p++, n--)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    return h;
}

static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode)   ? "a FIFO"
           : S_ISDIR(mode)  ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "a special file";
}

char *config_read(const char *path, size_t *lenp, struct diag *d)
{
    /* Non-blocking: opening a FIFO for reading waits for a writer
     * otherwise, and the main thread with it. Symlinks are followed: a
     * ConfigMap's file is one. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        diag_error(d, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    const size_t max = (size_t)CONFIG_MAX_MIB << 20;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        diag_error(d, 0, "cannot read: %s", strerror(errno));
        goto fail;
    }
    /* a device such as /dev/zero never ends: refused before any read */
    if (!S_ISREG(st.st_mode)) {
        diag_error(d, 0, "not a regular file (%s)", file_kind(st.st_mode));
        goto fail;
    }
    if ((uint64_t)st.st_size > max)
        goto too_big;
    /* One byte more than the file holds: a read that fills it means the
     * file grew, and it is read on, up to one byte over the limit. */
    size_t len = 0, cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        diag_error(d, 0, "out of memory");
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            diag_error(d, 0, "cannot read: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            goto too_big;
        if (len == cap) {
            cap = cap > max / 2 ? max + 1 : cap * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                diag_error(d, 0, "out of memory");
                goto fail;
            }
            buf = nb;
        }
    }
    close(fd);
    *lenp = len;
    return buf;

too_big:
    diag_error(d, 0, "larger than %d MiB, the most a mapping file may hold", CONFIG_MAX_MIB);
fail:
    free(buf);
    close(fd);
    return NULL;
}

struct config *config_load(const char *path, struct diag *d)
{
    size_t len;
    char *buf = config_read(path, &len, d);
    if (!buf)
        return NULL;
    struct config *cfg = parse_text(buf, len, d);
    free(buf);
    return cfg;
}

bool config_same_listen(const struct config *a, const struct config *b)
{
    if (a->nlisten != b->nlisten)
        return false;
    for (size_t i = 0; i < a->nlisten; i++) {
        bool found = false;
        for (size_t j = 0; j < b->nlisten && !found; j++)
            found = strcmp(a->listen[i].text, b->listen[j].text) == 0;
        if (!found)
            return false;
    }
    return true;
}
