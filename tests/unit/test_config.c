/* test_config.c -- the INI grammar of SPEC §1, its defaults and its error messages. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "svcmapd/config.h"
#include "tap.h"

static struct diag d;

/* Parses `text` as file "t.ini"; the diagnostics stay in `d` until the next call. */
static struct config *parse(const char *text)
{
    diag_finish(&d);
    diag_init(&d, "t.ini");
    struct config *cfg = config_parse(text, strlen(text), &d);
    if (cfg && d.errors) {
        /* what was read is returned for zone_compile's checks, not to use */
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* True if parsing `text` fails and the diagnostics contain `want`. */
static int fails_with(const char *text, const char *want)
{
    struct config *cfg = parse(text);
    int found = d.text && strstr(d.text, want) != NULL;
    if (!found || cfg)
        printf("#   diagnostics: %s", d.text ? d.text : "(none)\n");
    config_free(cfg);
    return !cfg && found;
}

static const struct config_service *find(const struct config *cfg, const char *ns, const char *svc)
{
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        for (size_t j = 0; j < cfg->namespaces[i].nservices; j++)
            if (strcmp(cfg->namespaces[i].name, ns) == 0 &&
                strcmp(cfg->namespaces[i].services[j].name, svc) == 0)
                return &cfg->namespaces[i].services[j];
    return NULL;
}

static void test_defaults(void)
{
    struct config *cfg = parse("[server]\n");
    ok(cfg != NULL, "an empty [server] is valid");
    if (!cfg)
        return;
    is_str(cfg->zone, "cluster.local", "zone defaults to cluster.local");
    is_int(cfg->ttl, 5, "ttl defaults to 5, as CoreDNS");
    is_int(cfg->nlisten, 1, "one default listen address");
    is_str(cfg->listen[0].text, "127.0.0.1:5353", "listen defaults to 127.0.0.1:5353");
    is_int(cfg->tcp_idle_timeout, 10, "tcp-idle-timeout defaults to 10 s");
    is_int(cfg->tcp_max_connections, 1024, "tcp-max-connections defaults to 1024");
    config_free(cfg);

    for (int i = 0; i < CONFIG_OPTION_COUNT; i++)
        ok(config_options[i].name && config_options[i].help && config_options[i].default_value,
           "option %d has a name, a default and a help line", i);
}

static void test_spec_example(void)
{
    struct config *cfg = parse("[server]\n"
                               "zone   = Cluster.Local.          ; names answered\n"
                               "listen = 127.0.0.1:5353, [::1]:5353\n"
                               "ttl    = 30\n"
                               "\n"
                               "[namespace test-1]\n"
                               "mysql  = mysql.test-1.example.com\n"
                               "\n"
                               "# full-line comment\n"
                               "[namespace test-2]\n"
                               "mysql  = 192.168.1.10\n"
                               "redis  = 192.168.1.20, 192.168.1.21\n"
                               "pg     = 192.168.1.30:5433\n"
                               "ldap   = 10.0.0.5 2001:db8::5 ttl=30 # inline hash comment\n"
                               "LDAPS  = [2001:db8::6]:636 10.0.0.6:636 srv=_ldaps._TCP\n");
    ok(cfg != NULL, "the SPEC §1 example parses");
    if (!cfg) {
        printf("# %s", d.text);
        return;
    }
    is_str(cfg->zone, "cluster.local", "zone is folded to lower case, trailing dot dropped");
    is_int(cfg->ttl, 30, "ttl = 30");
    is_int(cfg->nlisten, 2, "two listen addresses");
    is_str(cfg->listen[1].text, "[::1]:5353", "IPv6 listen in brackets");
    is_int(cfg->nnamespaces, 2, "two namespaces");
    is_int(cfg->nservices, 6, "six services");

    const struct config_service *s = find(cfg, "test-1", "mysql");
    ok(s && s->ntargets == 1 && s->targets[0].kind == CONFIG_TARGET_HOSTNAME,
       "test-1/mysql is a hostname");
    if (s)
        is_str(s->targets[0].hostname, "mysql.test-1.example.com", "hostname as written");

    s = find(cfg, "test-2", "mysql");
    ok(s && s->targets[0].kind == CONFIG_TARGET_ADDRESS && s->targets[0].family == AF_INET,
       "test-2/mysql is an IPv4 address");
    s = find(cfg, "test-2", "redis");
    is_int(s ? s->ntargets : 0, 2, "redis has two addresses");
    s = find(cfg, "test-2", "pg");
    is_int(s ? s->targets[0].port : 0, 5433, "pg has port 5433");
    s = find(cfg, "test-2", "ldap");
    ok(s && s->ntargets == 2 && s->targets[1].family == AF_INET6 && s->ttl == 30,
       "ldap: IPv4 and IPv6, ttl=30, the # comment ignored");
    s = find(cfg, "test-2", "ldaps");
    ok(s != NULL, "service names are folded to lower case");
    if (s) {
        is_int(s->targets[0].port, 636, "[IPv6]:PORT");
        is_str(s->srv_name, "ldaps", "srv=_NAME");
        is_str(s->srv_proto, "tcp", "srv=._PROTO folded to lower case");
        is_int(s->ttl, -1, "no ttl= means the server's");
    }
    config_free(cfg);
}

static void test_continuation(void)
{
    char text[4096] = "[namespace big]\nmany = 10.0.0.1";
    for (int line = 0; line < 6; line++) {
        strcat(text, line ? "\n   " : "");
        for (int i = 0; i < 10; i++) {
            char a[32];
            snprintf(a, sizeof(a), "%s10.0.%d.%d", (line == 0 && i == 0) ? ", " : ", ", line,
                     i + 2);
            strcat(text, a);
        }
    }
    strcat(text, "\n   ttl=7\nother = 10.9.9.9\n");
    struct config *cfg = parse(text);
    ok(cfg != NULL, "a value continues on indented lines");
    const struct config_service *s = cfg ? find(cfg, "big", "many") : NULL;
    is_int(s ? s->ntargets : 0, 61, "61 addresses over 7 lines");
    is_int(s ? s->ttl : 0, 7, "an option on a continuation line");
    ok(s && s->targets[60].line == 7, "targets keep their own line numbers");
    ok(cfg && find(cfg, "big", "other"), "the next key starts a new service");
    config_free(cfg);

    cfg = parse(
        "[namespace a]\nx = 10.0.0.1, ; first\n    10.0.0.2 ; second\n    10.0.0.3 # third\n");
    s = cfg ? find(cfg, "a", "x") : NULL;
    is_int(s ? s->ntargets : 0, 3, "comments on continuation lines are comments too");
    config_free(cfg);

    ok(fails_with("[namespace a]\nx = 1.2.3.4\n  y = 1.2.3.5\n",

                  "t.ini:3: error: indented line continues the value of 'x'"),
       "an indented key = value line is reported, not taken as targets");
}

static void test_errors(void)
{
    ok(fails_with("[namespace a]\nx = 1.2.3.4\nx = 1.2.3.5\n",
                  "t.ini:3: error: duplicate service 'x' in namespace 'a' (first defined on line "
                  "2)"),
       "duplicate service");
    ok(fails_with("[namespace a]\nx = 1.2.3.400\n", "t.ini:2: error: bad IPv4 address '1.2.3.400'"),
       "bad IPv4 address");
    ok(fails_with("[namespace a]\nx = 1.2.3\n", "t.ini:2: error: bad IPv4 address '1.2.3'"),
       "digits and dots are a bad address, not a hostname");
    ok(fails_with("[namespace a]\nx = db.123\n",
                  "t.ini:2: error: 'db.123' is not a valid IP address"),
       "a numeric top-level label is not a hostname");
    ok(fails_with("[namespace a]\nx = db.example.com:3306\n", "a hostname cannot carry a port"),
       "hostname:port explains that ports need addresses");
    ok(fails_with("[namespace a]\nx = 010.1.1.1\n", "bad IPv4 address '010.1.1.1'"),
       "leading zeros are refused (octal ambiguity)");
    ok(fails_with("[namespace a]\nx = 2001:db8::zz\n", "t.ini:2: error: bad address"),
       "bad IPv6 address");
    ok(fails_with("[namespace a]\nx = 1.2.3.4:70000\n",
                  "t.ini:2: error: port 70000 out of range (1-65535)"),
       "port out of range");
    ok(fails_with("[namespace a]\nx = 1.2.3.4:0\n", "port 0 out of range"), "port 0");
    ok(fails_with("[namespace a]\nx = db.example.com, 1.2.3.4\n",
                  "t.ini:2: error: service 'x': hostname 'db.example.com' cannot be mixed with "
                  "addresses"),
       "hostname mixed with addresses");
    ok(fails_with("[namespace a]\nx = a.example.com b.example.com\n", "more than one hostname"),
       "two hostnames");
    ok(fails_with("[namespace a]\nx = 1.2.3.4:80 1.2.3.5\n",
                  "either every address has a port or none has"),
       "ports on some addresses only");
    {
        struct config *cfg = parse("[namespace a]\nx = 1.2.3.4 srv=_http._tcp\n");
        ok(cfg && d.warnings == 1 &&
               strstr(d.text, "t.ini:2: warning: service 'x': srv= has no effect"),
           "srv= without ports: valid (SPEC's own example), with a warning");
        config_free(cfg);
    }
    ok(fails_with("[namespace a]\nx = 1.2.3.4:80 srv=_http._xtp\n", "protocol must be _tcp"),
       "srv= with a bad protocol");
    ok(fails_with("[namespace a]\nx = 1.2.3.4:80 srv=http\n", "expected srv=_NAME._PROTO"),
       "srv= without underscores");
    ok(fails_with("[namespace a]\nx = 1.2.3.4 ttl=3601\n", "ttl=3601: expected a number"),
       "ttl= out of range");
    ok(fails_with("[namespace a]\nx = 1.2.3.4 weight=3\n", "unknown option 'weight='"),
       "unknown service option");
    ok(fails_with("[namespace a]\nx = 1.2.3.4 1.2.3.4\n", "address '1.2.3.4' is given twice"),
       "duplicate address");
    ok(fails_with("[namespace a]\nx =\n", "service 'x' has no target"), "empty value");
    ok(fails_with("[namespace a]\nBad_Name = 1.2.3.4\n", "is not a DNS-1123 label"),
       "service name with an underscore");
    ok(fails_with("[namespace a]\n-x = 1.2.3.4\n", "must not start or end with '-'"),
       "service name with a leading '-'");
    ok(fails_with("[namespace "
                  "a234567890123456789012345678901234567890123456789012345678901234]\n",
                  "must be 1 to 63 characters"),
       "a 64-character namespace name (inih would cut it at 50 silently)");
    ok(fails_with("[namespace a]\nx = bad..name\n", "has a label of 0 characters"),
       "hostname with an empty label");
    ok(fails_with("[namespace a]\nx = -bad.example.com\n", "starts or ends with '-'"),
       "hostname label with a leading '-'");

    ok(fails_with("[server]\nzone = a.b\nzone = c.d\n",
                  "t.ini:3: error: 'zone' is given twice in [server] (first on line 2)"),
       "duplicate server key");
    ok(fails_with("[server]\nport = 53\n", "t.ini:2: error: unknown key 'port' in [server]"),
       "unknown server key");
    ok(fails_with("[server]\nttl = 3601\n", "t.ini:2: error: ttl: 3601 out of range (0-3600)"),
       "ttl out of range");
    ok(fails_with("[server]\nttl = five\n", "ttl: 'five' is not a number"), "ttl not a number");
    ok(fails_with("[server]\ntcp-idle-timeout = 0\n", "tcp-idle-timeout: 0 out of range (1-3600)"),
       "idle timeout out of range");
    ok(fails_with("[server]\nlisten = localhost:53\n",
                  "listen: 'localhost:53' is not an IP address"),
       "listen with a host name");
    ok(fails_with("[server]\nlisten = 127.0.0.1:53, 127.0.0.1:53\n", "127.0.0.1:53 is given twice"),
       "listen twice");
    ok(fails_with("[server]\nzone = .\n", "is empty or the root"), "root zone");
    ok(fails_with("[upstreams]\n", "t.ini:1: error: unknown section '[upstreams]'"),
       "unknown section");
    ok(fails_with("[namespace]\n", "expected [namespace NAME]"), "namespace without a name");
    ok(fails_with("[namespace a]\n[namespace a]\n", "t.ini:2: error: [namespace a] is given twice"),
       "duplicate namespace section");
    ok(fails_with("[server]\n[server]\n", "[server] is given twice"), "duplicate [server]");
    ok(fails_with("x = 1.2.3.4\n", "t.ini:1: error: 'x' is outside any section"),
       "key before any section");
    ok(fails_with("[namespace a\n", "t.ini:1: error: section header without ']'"),
       "section without ']'");
    ok(fails_with("[namespace a]\njust words\n",
                  "t.ini:2: error: expected 'key = value', a [section] or a comment"),
       "a line that is not key = value");

    char longline[400] = "[namespace a]\nx = 10.0.0.1";
    for (int i = 2; i < 30; i++) {
        char a[20];
        snprintf(a, sizeof(a), ", 10.0.0.%d", i);
        strcat(longline, a);
    }
    strcat(longline, "\ny = 10.1.1.1\n");
    ok(fails_with(longline, "t.ini:2: error: line is too long"),
       "a line inih would cut is reported, not split");
}

static void test_all_errors_reported(void)
{
    struct config *cfg = parse("[server]\n"
                               "ttl = 9999\n"
                               "bogus = 1\n"
                               "[namespace a]\n"
                               "x = 1.2.3.999\n"
                               "y = 1.2.3.4:99999\n"
                               "[nonsense]\n"
                               "z = 1.2.3.4\n");
    ok(cfg == NULL, "a file with five errors is invalid");
    is_int(d.errors, 5, "five errors; the keys of the unknown section are not reported again");
    ok(d.text && strstr(d.text, "t.ini:2:") && strstr(d.text, "t.ini:3:") &&
           strstr(d.text, "t.ini:5:") && strstr(d.text, "t.ini:6:") && strstr(d.text, "t.ini:7:"),
       "each error carries its own line");
    config_free(cfg);

    cfg = parse("\xEF\xBB\xBF[server]\r\nzone = example.org\r\n");
    ok(cfg && strcmp(cfg->zone, "example.org") == 0, "UTF-8 BOM and CRLF line ends");
    config_free(cfg);
}

static void test_upstream(void)
{
    struct config *cfg =
        parse("[upstream]\nservers = 10.96.0.10, [fd00::10]:5353\ntimeout = 3\n"
              "cache-size = 100\nmax-stale = 60\nnegative-ttl = 2\n"
              "[namespace a]\nx = db.example.com resolve=no\ny = db.example.com\n");
    ok(cfg != NULL, "[upstream] parses");
    if (cfg) {
        is_int(cfg->nupstream, 2, "two servers");
        is_str(cfg->upstream[0].text, "10.96.0.10:53", "port 53 by default");
        is_str(cfg->upstream[1].text, "[fd00::10]:5353", "IPv6 server with a port");
        ok(cfg->upstream_timeout == 3 && cfg->cache_size == 100 && cfg->max_stale == 60 &&
               cfg->negative_ttl == 2,
           "timeout, cache-size, max-stale, negative-ttl");
        ok(find(cfg, "a", "x")->no_resolve && !find(cfg, "a", "y")->no_resolve, "resolve=no");
    }
    config_free(cfg);

    cfg = parse("[upstream]\nservers = none\n");
    ok(cfg && cfg->nupstream == 0 && cfg->resolv.problem == CONFIG_RESOLV_OK,
       "servers = none: off, no note");
    config_free(cfg);

    cfg = parse("[server]\n");
    ok(cfg && cfg->upstream_timeout == 2 && cfg->cache_size == 10000 && cfg->max_stale == 3600 &&
           cfg->negative_ttl == 5,
       "upstream defaults");
    config_free(cfg);

    ok(fails_with("[upstream]\nservers = resolver.example\n",
                  "t.ini:2: error: servers: 'resolver.example' is not an IP address"),
       "a host name as server");
    ok(fails_with("[upstream]\nservers = 1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 "
                  "1.1.1.8 1.1.1.9\n",
                  "servers: at most 8 servers"),
       "nine servers");
    ok(fails_with("[upstream]\ntimeout = 0\n", "timeout: 0 out of range (1-30)"), "timeout 0");
    ok(fails_with("[upstream]\nretries = 3\n", "unknown key 'retries' in [upstream]"),
       "unknown upstream key");
    ok(fails_with("[upstream]\n[upstream]\n", "[upstream] is given twice"), "two [upstream]");
    ok(fails_with("[namespace a]\nx = db.example.com resolve=maybe\n", "resolve=maybe: expected"),
       "resolve= takes yes or no");
}

/* [server] state-dir and [control] socket: absolute paths or off. */
static void test_paths(void)
{
    struct config *cfg = parse("[server]\n");
    ok(cfg && !cfg->state_dir && !cfg->control_socket, "both are off by default");
    config_free(cfg);
    cfg = parse("[server]\nstate-dir = /var/lib/svcmapd\n[control]\nsocket = /run/s/c.sock\n");
    ok(cfg && cfg->state_dir && strcmp(cfg->state_dir, "/var/lib/svcmapd") == 0 &&
           cfg->control_socket && strcmp(cfg->control_socket, "/run/s/c.sock") == 0,
       "absolute paths are taken as written");
    config_free(cfg);
    cfg = parse("[server]\nstate-dir = off\n[control]\nsocket = off\n");
    ok(cfg && !cfg->state_dir && !cfg->control_socket, "off is off");
    config_free(cfg);
    ok(fails_with("[server]\nstate-dir = var/lib\n",
                  "t.ini:2: error: state-dir: 'var/lib' is not an absolute path, or off"),
       "a relative path");
    char text[256];
    snprintf(text, sizeof(text), "[control]\nsocket = /%0107d\n", 0);
    ok(fails_with(text, "t.ini:2: error: socket: a path of at most 107 bytes, not 108"),
       "a socket path that sockaddr_un cannot hold");
    snprintf(text, sizeof(text), "[control]\nsocket = /%0106d\n", 0);
    cfg = parse(text);
    ok(cfg != NULL, "a socket path of 107 bytes fits");
    config_free(cfg);
    ok(fails_with("[control]\nsocket = /a /b\n", "socket: expected one value, got 2"), "two paths");
    ok(fails_with("[control]\nport = 1\n", "unknown key 'port' in [control] (known: socket)"),
       "[control] has its keys");
}

static void test_same_listen(void)
{
    struct config *a = parse("[server]\nlisten = 127.0.0.1:53, [::1]:53\n");
    struct config *b = parse("[server]\nlisten = [::1]:53, 127.0.0.1:53\n");
    struct config *c = parse("[server]\nlisten = 127.0.0.1:54\n");
    ok(a && b && c, "three listen configs parse");
    if (a && b && c) {
        ok(config_same_listen(a, b), "same sockets in another order");
        ok(!config_same_listen(a, c), "different sockets");
    }
    config_free(a);
    config_free(b);
    config_free(c);
}

/* --list-options: one line per row of config_options[], six fields. */
static void test_list_options(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ok(f && config_list_options(f) == 0, "config_list_options writes the list");
    if (f)
        fclose(f);
    if (!text)
        return;

    int lines = 0, good = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
        const struct config_option *o = &config_options[lines < CONFIG_OPTION_COUNT ? lines : 0];
        char head[128];
        snprintf(head, sizeof(head), "%s\t%s\t", o->section, o->name);
        int tabs = 0;
        for (char *c = line; c < nl; c++)
            tabs += *c == '\t';
        good += tabs == 5 && strncmp(line, head, strlen(head)) == 0;
    }
    is_int(lines, CONFIG_OPTION_COUNT, "one line per option");
    is_int(good, CONFIG_OPTION_COUNT, "each with six fields, its section and key first, in order");
    ok(strstr(text, "server\tttl\tnumber\t5\t0-3600\tTTL of mapped records, seconds "
                    "(CoreDNS's default is 5)\n") != NULL,
       "a number: its default and bounds");
    ok(strstr(text, "server\treload\tduration\toff\t1-86400\t") != NULL,
       "a duration: bounds in seconds");
    ok(strstr(text, "health\ttimeout\tduration-ms\t2s\t100-3600000\t") != NULL,
       "a duration-ms: bounds in milliseconds");
    ok(strstr(text, "log\tlevel\tchoice\tinfo\tdebug|info|warning|error\t") != NULL,
       "a choice: the choices");
    ok(strstr(text, "server\tuser\tuser\t\t\tafter binding") != NULL,
       "no default, no bounds: empty fields");
    free(text);

    f = fopen("/dev/full", "w");
    if (f) {
        ok(config_list_options(f) == -EIO, "a failed write is reported");
        fclose(f);
    }
}

/* [health] and check=, policy= (SPEC §6): what each form sets. */
static void test_health(void)
{
    struct config *cfg = parse("[namespace p]\n"
                               "db = 10.0.0.1:5432, 10.0.0.2:5432 check=tcp policy=failover\n"
                               "web = 10.0.0.5, 10.0.0.6 check=http:8080/healthz?full=1\n"
                               "cache = 10.0.0.7:6379 10.0.0.8:6379 check=tcp:6380 policy=all\n"
                               "plain = 10.0.0.9, 10.0.0.10\n"
                               "one = 10.0.0.11:80 check=tcp\n");
    ok(cfg != NULL, "the checks of SPEC §6 are valid");
    if (!cfg)
        return;
    is_int(cfg->health_interval, 5000, "interval defaults to 5 s");
    is_int(cfg->health_timeout, 2000, "timeout defaults to 2 s");
    is_int(cfg->health_fall, 3, "fall defaults to 3");
    is_int(cfg->health_rise, 2, "rise defaults to 2");
    const struct config_service *s = find(cfg, "p", "db");
    ok(s && s->check && s->check->kind == CONFIG_CHECK_TCP && s->check->port == 0 &&
           s->check->policy == CONFIG_POLICY_FAILOVER && !s->check->path,
       "check=tcp policy=failover: each target's port, failover");
    s = find(cfg, "p", "web");
    ok(s && s->check && s->check->kind == CONFIG_CHECK_HTTP && s->check->port == 8080 &&
           s->check->policy == CONFIG_POLICY_ALL && s->check->path &&
           strcmp(s->check->path, "/healthz?full=1") == 0,
       "check=http:PORT/PATH: port and path, policy all by default");
    s = find(cfg, "p", "cache");
    ok(s && s->check && s->check->kind == CONFIG_CHECK_TCP && s->check->port == 6380,
       "check=tcp:PORT: that port");
    s = find(cfg, "p", "plain");
    ok(s && !s->check, "no check=: not checked");
    s = find(cfg, "p", "one");
    ok(s && !s->check && d.warnings == 1, "one target: a warning, and the check has no effect");
    config_free(cfg);

    cfg = parse("[health]\ninterval = 1s\ntimeout = 500ms\nfall = 1\nrise = 100\n");
    ok(cfg && cfg->health_interval == 1000 && cfg->health_timeout == 500 && cfg->health_fall == 1 &&
           cfg->health_rise == 100,
       "[health]: 1s, 500ms and the bounds of fall and rise");
    config_free(cfg);
    cfg = parse("[health]\ninterval = 1h\ntimeout = 59m\n");
    ok(cfg && cfg->health_interval == 3600000 && cfg->health_timeout == 3540000, "1h and 59m");
    config_free(cfg);
    cfg = parse("[health]\ninterval = 90\ntimeout = 10\n");
    ok(cfg && cfg->health_interval == 90000 && cfg->health_timeout == 10000,
       "a bare number is seconds, as everywhere else");
    config_free(cfg);
    ok(fails_with("[health]\ninterval = 1s\n",
                  "t.ini:2: error: timeout: 2s must be below interval (1s)"),
       "the default timeout is not below a 1 s interval: the interval's line says so");
    ok(fails_with("[health]\ninterval = 61m\n", "interval: '61m' is not a duration from 1s to 1h"),
       "an interval over an hour");
    ok(fails_with("[health]\ntimeout = 99ms\n",
                  "timeout: '99ms' is not a duration from 100ms to 1h"),
       "a timeout under 100 ms");
    ok(fails_with("[health]\ninterval = off\n", "interval: 'off' is not a duration"),
       "a check interval is never off");
    ok(fails_with("[health]\ninterval = 4294967296ms\n", "is not a duration"),
       "a number past 32 bits");
}

int main(void)
{
    test_defaults();
    test_spec_example();
    test_continuation();
    test_errors();
    test_all_errors_reported();
    test_paths();
    test_same_listen();
    test_upstream();
    test_list_options();
    test_health();

    diag_finish(&d);
    return done_testing();
}
