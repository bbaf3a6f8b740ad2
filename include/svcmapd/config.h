/* config.h -- the mapping file: INI text to plain settings with line numbers. */
#ifndef SVCMAPD_CONFIG_H
#define SVCMAPD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "svcmapd/diag.h"

struct arena;

/*
 * config.c (with config_*.c) knows INI syntax, value grammar and line
 * numbers, and nothing of DNS wire format: zone.c compiles what it produces.
 * Everything here is allocated from the config's arena and freed by
 * config_free().
 */

/* An IP address with a port: one of `listen`, an upstream server, an
 * HTTP endpoint. */
struct config_addr {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char text[64]; /* "127.0.0.1:5353", "[::1]:5353" */
    int line;
};

#define CONFIG_MAX_UPSTREAMS 8

/* A reverse zone svcmapd is authoritative for ([server] reverse). */
#define CONFIG_MAX_REVERSE 64
struct config_reverse {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order, zero past the prefix */
    uint8_t bits;     /* the prefix: 8, 16, 24 or 32; for IPv6 a multiple of 4 */
    int line;
    char zone[80]; /* its name, no trailing dot: "168.192.in-addr.arpa" */
};

/* Who may transfer the zone ([transfer] allow): an address and how many
 * of its leading bits must match (32 or 128 for one address). */
#define CONFIG_MAX_TRANSFER_ALLOW 64
struct config_prefix {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order, zero past the prefix */
    uint8_t bits;
    int line;
};

/* Secondaries told of a new serial ([transfer] notify). */
#define CONFIG_MAX_NOTIFY 16

enum config_http {
    CONFIG_HTTP_HEALTH_EP,
    CONFIG_HTTP_READY_EP,
    CONFIG_HTTP_METRICS_EP,
};

enum config_target_kind {

    CONFIG_TARGET_ADDRESS,
    CONFIG_TARGET_HOSTNAME,
};

struct config_target {
    enum config_target_kind kind;
    int line;
    int family;           /* AF_INET or AF_INET6, for addresses */
    uint8_t addr[16];     /* network order: 4 or 16 bytes */
    uint16_t port;        /* 0: no port given */
    const char *hostname; /* for hostnames: as written, no trailing dot */
};

/* A checked service's targets (SPEC §6): what is probed, what is answered. */
#define CONFIG_MAX_CHECKED 64 /* targets of a checked service */

enum config_check_kind {
    CONFIG_CHECK_TCP = 1, /* a TCP connect */
    CONFIG_CHECK_HTTP,    /* an HTTP/1.1 GET; any 2xx succeeds */
};

enum config_policy {
    CONFIG_POLICY_ALL,      /* every healthy target */
    CONFIG_POLICY_FAILOVER, /* the first healthy one, in file order */
};

struct config_check {
    uint8_t kind;     /* enum config_check_kind */
    uint8_t policy;   /* enum config_policy */
    uint16_t port;    /* the port probed; 0: each target's own (check=tcp) */
    const char *path; /* check=http: the request target, from its '/' */
};

struct config_service {
    const char *name; /* a DNS-1123 label, lower case */
    /* What its line says: a hash of the name and of the value's tokens as
     * they are split (commas, whitespace, an inline comment and
     * continuation lines make no difference), for every service parsed.
     * Equal for two lines that mean the same; the namespace is not in it. */
    uint64_t text_fp;
    struct config_target *targets;
    const char *srv_name;             /* "ldap" of srv=_ldap._tcp; NULL: the service name */
    const char *srv_proto;            /* "tcp", "udp" or "sctp"; NULL: tcp */
    const struct config_check *check; /* check=; NULL: not checked (or no effect) */
    int line;
    uint32_t ntargets;
    int32_t ttl;     /* ttl=N, or -1 for the server's ttl */
    bool invalid;    /* had errors: kept by name only, no targets */
    bool no_resolve; /* resolve=no: a hostname gets its CNAME alone */
    bool warned;     /* its line gave a warning: see struct config_skip */
};

struct config_namespace {
    const char *name; /* a DNS-1123 label, lower case */
    int line;
    struct config_service *services;
    size_t nservices;
    size_t cap;
    size_t nkept; /* services skipped as unchanged (struct config_skip): not stored */
};

/* Index of each option in config_options[] (and in config.line[]). */
enum config_option_id {
    CONFIG_ZONE,
    CONFIG_LISTEN,
    CONFIG_TTL,
    CONFIG_TCP_IDLE_TIMEOUT,
    CONFIG_TCP_MAX_CONNECTIONS,
    CONFIG_WORKERS,
    CONFIG_RELOAD,
    CONFIG_TCP_MESSAGE_TIMEOUT,
    CONFIG_TCP_PIPELINE,
    CONFIG_UDP_MAX_SIZE,
    CONFIG_USER,
    CONFIG_REVERSE,
    CONFIG_MAX_REMOVAL,
    CONFIG_CONFIRM_REMOVAL,
    CONFIG_STATE_DIR,
    CONFIG_UPSTREAM_SERVERS,
    CONFIG_UPSTREAM_TIMEOUT,
    CONFIG_UPSTREAM_CACHE_SIZE,
    CONFIG_UPSTREAM_MAX_STALE,
    CONFIG_UPSTREAM_NEGATIVE_TTL,
    CONFIG_HTTP_HEALTH,
    CONFIG_HTTP_READY,
    CONFIG_HTTP_METRICS,
    CONFIG_HTTP_LAMEDUCK,
    CONFIG_LOG_LEVEL,
    CONFIG_LOG_FORMAT,
    CONFIG_LOG_QUERIES,
    CONFIG_CONTROL_SOCKET,
    CONFIG_HEALTH_INTERVAL,
    CONFIG_HEALTH_TIMEOUT,
    CONFIG_HEALTH_FALL,
    CONFIG_HEALTH_RISE,
    CONFIG_TRANSFER_ALLOW,
    CONFIG_TRANSFER_NOTIFY,
    CONFIG_OPTION_COUNT,
};

/* Why a resolv.conf named by `servers` gave no upstream servers: data, so
 * that the warning about it is written where it is given (zone.c). */
enum config_resolv_problem {
    CONFIG_RESOLV_OK,            /* servers were found, or none were asked of a file */
    CONFIG_RESOLV_UNREADABLE,    /* the file cannot be read: `error` says why */
    CONFIG_RESOLV_NO_NAMESERVER, /* it was read, and names no nameserver */
};

struct config_resolv {
    enum config_resolv_problem problem;
    int error;        /* CONFIG_RESOLV_UNREADABLE: the errno of opening it */
    const char *path; /* the file, unless CONFIG_RESOLV_OK */
};

struct config {
    const char *path;
    uint64_t hash; /* config_hash() of the text it was parsed from */

    /* [server] */
    const char *zone; /* lower case, no trailing dot */
    struct config_addr *listen;
    size_t nlisten;
    uint32_t ttl;
    uint32_t tcp_idle_timeout; /* seconds */
    uint32_t tcp_max_connections;
    uint32_t workers;               /* threads answering queries; 0: one per online CPU */
    uint32_t reload;                /* seconds between looks at the file; 0: off */
    uint32_t tcp_message_timeout;   /* seconds to receive the rest of a started message */
    uint32_t tcp_pipeline;          /* queries of one connection per turn, or waiting */
    uint32_t udp_max_size;          /* largest UDP reply, bytes */
    const char *user;               /* drop to this user after binding; NULL: stay */
    struct config_reverse *reverse; /* reverse zones answered, none nested in another */
    size_t nreverse;
    uint32_t max_removal;     /* percent of the running services a reload may remove */
    uint32_t confirm_removal; /* a reload removing exactly this many is applied; 0: none */
    const char *state_dir;    /* where the last good mapping is kept; NULL: off */

    /* [upstream]: resolving hostname targets outside the zone (at most
     * CONFIG_MAX_UPSTREAMS servers) */
    struct config_addr *upstream; /* servers; NULL: resolution is off */
    size_t nupstream;
    uint32_t upstream_timeout; /* seconds per lookup */
    uint32_t cache_size;       /* entries per worker */
    uint32_t max_stale;        /* seconds an expired answer may serve (RFC 8767) */
    uint32_t negative_ttl;     /* at most this long for NXDOMAIN, NODATA, failures */
    /* why `servers = /PATH` gave none, for zone.c's warning */
    struct config_resolv resolv;

    /* [http]: endpoints, each off unless given an address */
    struct config_addr http[3]; /* by enum config_http */
    bool http_on[3];
    uint32_t lameduck; /* seconds of answering on after SIGTERM */

    /* [log] */
    uint32_t log_level;   /* enum log_level */
    uint32_t log_format;  /* enum log_format */
    uint32_t log_queries; /* 1: one line per query */

    /* [control] */
    const char *control_socket; /* the unix socket svcmapctl talks to; NULL: off */
    /* [health]: the probes of checked services (SPEC §6) */
    uint32_t health_interval; /* ms between two probes of one target */
    uint32_t health_timeout;  /* ms one probe may take; below the interval */
    uint32_t health_fall;     /* failures in a row that take an up target down */
    uint32_t health_rise;     /* successes in a row that bring a down target up */

    /* [transfer] (SPEC §8): the clients that may AXFR the zone, and the
     * secondaries sent NOTIFY when the serial changes; none by default */
    struct config_prefix *transfer_allow;
    size_t ntransfer_allow;
    struct config_addr *notify;
    size_t nnotify;

    int line[CONFIG_OPTION_COUNT]; /* where each option was set; 0: default */

    struct config_namespace *namespaces;
    size_t nnamespaces;
    size_t nservices; /* stored in the namespaces */
    size_t nkept;     /* skipped as unchanged, over all namespaces: not stored */

    struct arena *arena; /* the settings */
    struct arena *map;   /* namespaces and services: config_drop_mapping() */
};

enum config_option_type {
    CONFIG_TYPE_DOMAIN,
    CONFIG_TYPE_LISTEN,
    CONFIG_TYPE_UINT,
    CONFIG_TYPE_UINT_AUTO, /* a number, or "auto" for 0 */
    CONFIG_TYPE_SERVERS,   /* addresses, "none", or a resolv.conf path */
    CONFIG_TYPE_USER,      /* a user name or UID[:GID] that exists */
    CONFIG_TYPE_ENDPOINT,  /* one address with a port, or "off" */
    CONFIG_TYPE_CHOICE,    /* one of `choices`, stored as its index */
    CONFIG_TYPE_DURATION,  /* seconds: N, Ns, Nm, Nh, or off (0) */
    CONFIG_TYPE_REVERSE,   /* ADDRESS/PREFIX, ... on octet or nibble boundaries */
    CONFIG_TYPE_PATH,      /* an absolute path of at most `max` bytes, or off (NULL) */
    CONFIG_TYPE_MSEC,      /* milliseconds: N (seconds), Nms, Ns, Nm, Nh; never off */
    CONFIG_TYPE_NETWORKS,  /* ADDRESS[/PREFIX], ...; empty: none */
    CONFIG_TYPE_PEERS,     /* ADDRESS[:PORT], ... (port 53 by default); empty: none */
    CONFIG_TYPE_COUNT,
};

/* One row per setting: the parser, `-t`, the docs test and the README table
 * all read this list. */
struct config_option {
    const char *section;
    const char *name;
    enum config_option_type type;
    const char *default_value; /* parsed exactly like a value in the file */
    uint32_t min, max;         /* bounds: of a number, a duration's in seconds, a
                                * CONFIG_TYPE_MSEC's in milliseconds; a
                                * CONFIG_TYPE_PATH's length at most */
    size_t offset;             /* of the field in struct config */
    const char *help;
    const char *const *choices; /* CONFIG_TYPE_CHOICE: NULL-terminated */
};

extern const struct config_option config_options[CONFIG_OPTION_COUNT];

/* Writes one line per option of config_options[] to `out`, fields
 * separated by a tab: section, key, type, default (empty for none), what
 * it accepts (MIN-MAX for numbers, in seconds for durations; choices
 * separated by '|'; empty for the others), and a line of help
 * (`svcmapd --list-options`). Returns 0, or -EIO if writing failed. */
int config_list_options(FILE *out);

/* `ms` as the file may write it: "500ms", "2s", "5m", "1h". Returns `out`. */
const char *config_msec_text(uint32_t ms, char *out, size_t cap);

/* The largest mapping file read: a million services take about 35 MB. */
#define CONFIG_MAX_MIB 128

/* The bytes of the file at `path` (malloc'ed, `*len` of them), or NULL
 * after adding why to `d`. The path may be a symlink, but what it names
 * must be a regular file of at most CONFIG_MAX_MIB MiB: a FIFO, a device
 * or a directory is refused without blocking or reading. */
char *config_read(const char *path, size_t *len, struct diag *d);

/* Reads and checks the mapping file at `path`. Every problem is added to
 * `d` (which must have been diag_init'ed with the name to print). Returns
 * what could be read even when there were errors, so that zone_compile()
 * can report its own problems in the same pass: the file is valid only if
 * `d` got no error. NULL only if the file cannot be read or memory runs
 * out. Free with config_free(). */
struct config *config_load(const char *path, struct diag *d);

/* Same as config_load() for a text already in memory (tests, fuzzing). */
struct config *config_parse(const char *text, size_t len, struct diag *d);

/*
 * A reload parses only the services whose lines changed. unchanged() is
 * asked, during a parse, about each service whose name is a valid label
 * and not a duplicate in its namespace, before its value is parsed: true
 * if the caller already has that service compiled from a line whose
 * text_fp was `fp` (`ns` and `name` are the checked, lower-cased labels).
 * Then it is counted (config_namespace.nkept, config.nkept) and nothing
 * more is kept of it: no struct config_service, no targets, no strings.
 * Its value is still read by inih, but not parsed, so it gives no error
 * or warning: answer true only for a service compiled from a file without
 * errors and whose line gave no warning (config_service.warned), or its
 * warnings are not given again.
 */
struct config_skip {
    bool (*unchanged)(void *arg, const char *ns, const char *name, uint64_t fp);
    void *arg;
};

/* config_parse() and config_load(), asking `skip` (NULL: nothing is
 * skipped). config_load_skip() reads the file in chunks of a bounded
 * size, never the whole of it at once. */
struct config *config_parse_skip(const char *text, size_t len, const struct config_skip *skip,
                                 struct diag *d);
struct config *config_load_skip(const char *path, const struct config_skip *skip, struct diag *d);

/* A fingerprint of a file's bytes (not cryptographic: it only has to
 * notice that the file changed); struct config keeps the one it came from,
 * the same whether it was parsed from a text or read in chunks. */
uint64_t config_hash(const char *text, size_t len);

/* Frees the namespaces and services, keeping the settings: once compiled
 * into a zone, the mapping is not needed, and it is most of the memory. */
void config_drop_mapping(struct config *cfg);

/* Frees everything config_load() returned. NULL is a no-op. */
void config_free(struct config *cfg);

/* Writes l->text from l->addr (an IPv4 or IPv6 address with its port):
 * "127.0.0.1:53", "[::1]:53". */
void config_addr_text(struct config_addr *l);

/* True if `a` and `b` listen on the same sockets (order ignored). */
bool config_same_listen(const struct config *a, const struct config *b);

#endif
