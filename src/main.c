/* main.c -- the command line (SPEC §5): check, version, or serve until told to stop. */
#include <event2/event.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config-build.h"
#include "svcmapd/config.h"
#include "svcmapd/diag.h"
#include "svcmapd/log.h"
#include "svcmapd/reload.h"
#include "svcmapd/server.h"
#include "svcmapd/zone.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_BAD_CONFIG = 1,
    EXIT_USAGE = 2,
    EXIT_RUNTIME = 3,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: svcmapd [-c FILE] [-t] [-V] [-h]\n"
            "Authoritative DNS for <service>.<namespace>.svc.<zone> names, mapped in an INI file.\n"
            "\n"
            "  -c, --config FILE  the mapping file (default %s)\n"
            "  -t, --check        check the file and exit: 0 if valid, 1 if not\n"
            "  -V, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n"
            "\n"
            "Runs in the foreground and logs to stderr. SIGHUP reloads the mapping file;\n"
            "SIGTERM and SIGINT stop. Exit status: 0 ok, 1 bad config, 2 bad usage,\n"
            "3 runtime failure (e.g. a listen address that cannot be bound).\n",
            SVCMAPD_DEFAULT_CONFIG);
}

static void print_line(const char *line, void *arg)
{
    fprintf(arg, "%s\n", line);
}

static void log_line(const char *line, void *arg)
{
    (void)arg;
    if (strstr(line, ": warning: "))
        log_warning("%s", line);
    else
        log_error("%s", line);
}

/* Reads and compiles the mapping file; diagnostics go to `out` (or the log
 * when `out` is NULL). */
static struct zone *load(const char *path, struct config **cfg_out, FILE *out)
{
    struct diag d;
    diag_init(&d, path);
    struct config *cfg = config_load(path, &d);
    /* compiled even when the config has errors, to report the zone's too */
    struct zone *z = cfg ? zone_compile(cfg, NULL, time(NULL), &d) : NULL;
    if (out)
        diag_each(&d, print_line, out);
    else
        diag_each(&d, log_line, NULL);
    if (!z) {
        config_free(cfg);
        cfg = NULL;
        if (!out)
            log_error("cannot start: %u error%s in %s", d.errors, d.errors == 1 ? "" : "s", path);
    }
    diag_finish(&d);
    *cfg_out = cfg;
    return z;
}

static int check(const char *path)
{
    struct config *cfg;
    struct zone *z = load(path, &cfg, stderr);
    if (!z)
        return EXIT_BAD_CONFIG;
    const struct zone_stats *st = zone_stats(z);
    printf("%s: ok, zone %s, %zu services, %zu records\n", path, cfg->zone, st->services,
           st->records);
    zone_free(z);
    config_free(cfg);
    return EXIT_OK;
}

/*
 * Runs as `spec` (a user name, or UID[:GID]) from now on: supplementary
 * groups, then the group, then the user, in that order (a process that has
 * dropped its user can no longer change its group), and proves root cannot
 * be had back. Any failure is fatal: a DNS server facing the network must
 * not go on with more rights than it was told to keep.
 */
static int drop_privileges(const char *spec)
{
    uid_t uid;
    gid_t gid;
    char *end;
    errno = 0;
    unsigned long n = strtoul(spec, &end, 10);
    if (end != spec && (*end == '\0' || *end == ':') && errno == 0) {
        uid = (uid_t)n;
        const struct passwd *pw = getpwuid(uid);
        gid = *end == ':' ? (gid_t)strtoul(end + 1, NULL, 10) : pw ? pw->pw_gid : (gid_t)uid;
    } else {
        const struct passwd *pw = getpwnam(spec);
        if (!pw) {
            log_error("user '%s': no such user", spec);
            return -1;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (getuid() == uid && geteuid() == uid && getgid() == gid)
        return 0; /* already there, e.g. started as that user with CAP_NET_BIND_SERVICE */

    if (setgroups(0, NULL) < 0) {
        log_error("user '%s': cannot drop supplementary groups: %s", spec, strerror(errno));
        return -1;
    }
    if (setgid(gid) < 0) {
        log_error("user '%s': cannot set group %u: %s", spec, (unsigned)gid, strerror(errno));
        return -1;
    }
    if (setuid(uid) < 0) {
        log_error("user '%s': cannot set user %u: %s", spec, (unsigned)uid, strerror(errno));
        return -1;
    }
    if (uid != 0 && setuid(0) == 0) {
        log_error("user '%s': root could be regained; refusing to run", spec);
        return -1;
    }
    log_info("running as user %s (uid %u, gid %u)", spec, (unsigned)uid, (unsigned)gid);
    return 0;
}

struct daemon {
    struct event_base *base;
    struct server *srv;
    struct reloader *reloader;
    struct event *sig[3];
};

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *dm = arg;
    (void)sig;
    (void)what;
    reload_run(dm->reloader);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *dm = arg;
    (void)what;
    log_info("%s: stopping", strsignal(sig));
    /* With its signal events gone the main loop returns; the workers end
     * once the last queued TCP reply is written, and main joins them. */
    for (size_t i = 0; i < 3; i++)
        event_del(dm->sig[i]);
    server_stop(dm->srv);
}

static int serve(const char *path)
{
    struct daemon dm = {0};
    struct config *cfg;
    struct zone_ref *ref = NULL;
    int rc = EXIT_RUNTIME;

    /* Until the event loop handles them, SIGHUP and SIGTERM wait (a SIGHUP
     * sent right after start-up must reload, not kill). Worker threads are
     * created while they are blocked, so they never receive them: only the
     * main thread does, once it unblocks them below. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct zone *z = load(path, &cfg, NULL);
    if (!z)
        return EXIT_BAD_CONFIG;
    const struct zone_stats *st = zone_stats(z);
    log_info("svcmapd %s: zone %s from %s: %zu services, %zu records, serial %u", SVCMAPD_VERSION,
             cfg->zone, path, st->services, st->records, st->serial);

    dm.base = event_base_new();
    ref = dm.base ? zone_ref_new(z, server_worker_count(cfg)) : NULL;
    if (!ref) {
        zone_free(z);
        config_free(cfg);
        log_error("out of memory");
        goto out;
    }
    dm.sig[0] = evsignal_new(dm.base, SIGHUP, on_hup, &dm);
    dm.sig[1] = evsignal_new(dm.base, SIGTERM, on_stop, &dm);
    dm.sig[2] = evsignal_new(dm.base, SIGINT, on_stop, &dm);
    for (size_t i = 0; i < 3; i++) {
        if (!dm.sig[i] || event_add(dm.sig[i], NULL) < 0) {
            config_free(cfg);
            goto out;
        }
    }
    dm.srv = server_new(cfg, ref);
    if (!dm.srv || server_start(dm.srv) < 0) {
        config_free(cfg);
        goto out;
    }
    /* Sockets are bound: the rest needs no privilege. */
    if (cfg->user && drop_privileges(cfg->user) < 0) {
        config_free(cfg);
        goto out;
    }
    if (!cfg->user && geteuid() == 0)
        log_warning("running as root: set [server] user = to drop privileges after binding");
    if (server_run(dm.srv) < 0) {
        config_free(cfg);
        goto out;
    }
    dm.reloader = reload_new(dm.base, path, cfg, ref, dm.srv);
    if (!dm.reloader) {
        config_free(cfg);
        goto out;
    }
    for (size_t i = 0; i < cfg->nlisten; i++)
        log_info("listening on %s (udp, tcp), %zu worker%s", cfg->listen[i].text,
                 server_workers(dm.srv), server_workers(dm.srv) == 1 ? "" : "s");

    /* The main thread handles signals and reloads; workers answer. */
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    if (event_base_dispatch(dm.base) < 0)
        goto out;
    server_wait(dm.srv);
    log_info("stopped");
    rc = EXIT_OK;

out:
    if (dm.srv && rc != EXIT_OK) {
        server_stop(dm.srv);
        server_wait(dm.srv);
    }
    for (size_t i = 0; i < 3; i++)
        if (dm.sig[i])
            event_free(dm.sig[i]);
    reload_free(dm.reloader);
    server_free(dm.srv);
    zone_ref_free(ref);
    if (dm.base)
        event_base_free(dm.base);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = SVCMAPD_DEFAULT_CONFIG;
    bool check_only = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'V':
            printf("svcmapd %s\n", SVCMAPD_VERSION);
            return EXIT_OK;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "svcmapd: unexpected argument '%s'\n", argv[optind]);
        fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
        return EXIT_USAGE;
    }
    return check_only ? check(path) : serve(path);
}
