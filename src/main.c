/* main.c -- the command line (SPEC §5): check, version, or serve until told to stop. */
#include <event2/event.h>
#include <event2/thread.h>
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
#include "svcmapd/budget.h"
#include "svcmapd/config.h"
#include "svcmapd/control.h"
#include "svcmapd/diag.h"
#include "svcmapd/dnsnotify.h"
#include "svcmapd/handover.h"
#include "svcmapd/health.h"
#include "svcmapd/http.h"
#include "svcmapd/import.h"
#include "svcmapd/inherit.h"
#include "svcmapd/load.h"
#include "svcmapd/log.h"
#include "svcmapd/notify.h"
#include "svcmapd/print.h"
#include "svcmapd/reload.h"
#include "svcmapd/server.h"
#include "svcmapd/state.h"
#include "svcmapd/upstream.h"
#include "svcmapd/zone.h"
#include "svcmapd/zone_ref.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_BAD_CONFIG = 1,
    EXIT_USAGE = 2,
    EXIT_RUNTIME = 3,
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: svcmapd [-c FILE] [--state-dir DIR] [--replace] [-t] [-V] [-h]\n"
            "       svcmapd [-c FILE] --print FORM SERVER\n"
            "       svcmapd --list-options\n"
            "       svcmapd import [--zone ZONE] [FILE|-]\n"
            "Authoritative DNS for <service>.<namespace>.svc.<zone> names, mapped in an INI file.\n"
            "\n"
            "  -c, --config FILE  the mapping file (default %s)\n"
            "      --state-dir DIR\n"
            "                     keep the last good mapping in DIR, and start on it when\n"
            "                     the file cannot be read or has an error (instead of the\n"
            "                     file's [server] state-dir, which a broken file may not give)\n"
            "      --replace      take over from the svcmapd running with the file's\n"
            "                     [control] socket: its UDP and TCP sockets are handed over\n"
            "                     and it exits once drained; a file with an error is exit 1,\n"
            "                     and the running one serves on\n"
            "  -t, --check        check the file and exit: 0 if valid, 1 if not\n"
            "  -p, --print FORM SERVER\n"
            "                     print what to paste to send the mapped names to svcmapd at\n"
            "                     SERVER (IP[:PORT]), and exit; FORM is corefile-names,\n"
            "                     corefile-namespaces, corefile-zone or stubdomains\n"
            "      --list-options print every key of the mapping file, one per line: section,\n"
            "                     key, type, default, bounds or choices and help, separated\n"
            "                     by tabs, and exit\n"
            "  -V, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n"
            "\n"
            "import reads Kubernetes Services, Endpoints and EndpointSlices, as\n"
            "  kubectl get services,endpoints,endpointslices -A -o json\n"
            "prints them, from FILE or standard input (-), and prints the mapping file\n"
            "that serves them; --zone ZONE sets its zone (default cluster.local).\n"
            "\n"
            "Runs in the foreground and logs to stderr. SIGHUP reloads the mapping file;\n"
            "SIGTERM and SIGINT stop. Exit status: 0 ok, 1 bad config or input, 2 bad\n"
            "usage, 3 runtime failure (e.g. a listen address that cannot be bound).\n",
            SVCMAPD_DEFAULT_CONFIG);
}

/* `svcmapd -t`: every diagnostic on stderr, a summary on stdout. */
static int check(const char *path)
{
    struct load l;
    load_init(&l, path);
    struct zone_stats st;
    bool ok = load_parse(&l, NULL, 0) && load_verify(&l, time(NULL), &st);
    load_report(&l.diag, stderr);
    if (ok)
        printf("%s: ok, zone %s, %zu services, %zu records\n", path, l.cfg->zone, st.services,
               st.records);
    load_finish(&l);
    return ok ? EXIT_OK : EXIT_BAD_CONFIG;
}

/* The user and group of `spec` (a user name, or UID[:GID]). -1 if there
 * is no such user (logged). */
static int resolve_user(const char *spec, uid_t *uid, gid_t *gid)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(spec, &end, 10);
    if (end != spec && (*end == '\0' || *end == ':') && errno == 0) {
        *uid = (uid_t)n;
        const struct passwd *pw = getpwuid(*uid);
        *gid = *end == ':' ? (gid_t)strtoul(end + 1, NULL, 10) : pw ? pw->pw_gid : (gid_t)*uid;
        return 0;
    }
    const struct passwd *pw = getpwnam(spec);
    if (!pw) {
        log_error("user '%s': no such user", spec);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
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
    if (resolve_user(spec, &uid, &gid) < 0)
        return -1;
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

/* --print: the file must be valid; the snippet goes to stdout. */
static int print_form(const char *path, const char *form, const char *server)
{
    struct load l;
    load_init(&l, path);
    load_text(&l, NULL, 0, NULL, NULL, time(NULL));
    load_report(&l.diag, stderr);
    int rc = EXIT_BAD_CONFIG;
    if (l.zone)
        rc = print_snippet(stdout, l.cfg, form, server) == 0 ? EXIT_OK : EXIT_USAGE;
    load_finish(&l);
    return rc;
}

/*
 * `svcmapd import [--zone ZONE] [FILE|-]` (SPEC §8): Kubernetes objects in,
 * a mapping file out. The file is built whole before any of it is written,
 * so a failure leaves stdout empty. Bad input is exit 1, as a bad config
 * is; a failed write (a full disk), no memory or a bug of import's is a
 * runtime failure, exit 3.
 */
static int import_command(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"zone", required_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *zone = "cluster.local";
    int opt;
    opterr = 0; /* getopt would name "import" as the program */
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'z':
            zone = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            fprintf(stderr, "svcmapd import: %s '%s'\n",
                    optopt == 'z' ? "missing ZONE after" : "unknown option", argv[optind - 1]);
            fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "svcmapd import: one FILE at most, got '%s' too\n", argv[optind + 1]);
        fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
        return EXIT_USAGE;
    }
    const char *path = optind < argc ? argv[optind] : "-";

    struct diag d;
    diag_init(&d, "--zone");
    if (import_check_zone(zone, &d) < 0) {
        load_report(&d, stderr);
        diag_finish(&d);
        return EXIT_USAGE;
    }
    diag_finish(&d);
    diag_init(&d, strcmp(path, "-") == 0 ? "stdin" : path);
    size_t len = 0, out_len = 0;
    char *out = NULL;
    char *json = import_read(path, &len, &d);
    int r = json ? import_convert(json, len, zone, &d, &out, &out_len) : -EINVAL;
    int rc = r == 0 ? EXIT_OK : r == -EINVAL ? EXIT_BAD_CONFIG : EXIT_RUNTIME;
    free(json);
    load_report(&d, stderr);
    diag_finish(&d);
    if (rc == EXIT_OK && (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0)) {
        fprintf(stderr, "svcmapd import: cannot write the mapping: %s\n", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(out);
    return rc;
}

struct daemon {
    const char *path;
    const char *state_dir; /* --state-dir; NULL: the file's */
    bool replace;          /* --replace: take over from the svcmapd running */
    struct event_base *base;
    struct load load; /* its config until the reloader takes it, its zone until published */
    char *text;       /* the bytes it was parsed from, for the state-dir; NULL: none kept */
    size_t len;
    struct state *state; /* the state-dir; NULL: none */
    bool last_good;      /* the load is the state-dir's copy: the file is broken */
    bool file_read;      /* and the file could be read, its bytes hashing to: */
    uint64_t file_hash;
    struct inherit *given;    /* sockets given, until the workers have theirs; NULL: none */
    struct control *control;  /* NULL: no control socket */
    struct dnsnotify *notify; /* NOTIFYs to [transfer] notify */
    struct http *http;
    struct zone_ref *ref;
    struct server *srv;
    struct health *health; /* the prober of checked targets */
    size_t health_cap;     /* its probes in flight, as the open files allow */
    struct reloader *reloader;
    struct event *sig[3];
    struct event *loaded; /* activated by the loader thread */
    struct event *lameduck;
    pthread_t loader;
    bool loading;
    size_t max_lookups; /* per worker, as the open files limit allows */
    sigset_t sigs;
    int rc;
    bool stopping;
};

/* Ends the main loop: everything it waits on goes. The workers stop, or,
 * once their sockets are another svcmapd's (`handed_over`), finish their
 * connections and end. */
static void end_main(struct daemon *dm, bool handed_over)
{
    for (size_t i = 0; i < 3; i++)
        if (dm->sig[i])
            event_del(dm->sig[i]);
    if (dm->lameduck)
        event_del(dm->lameduck);
    reload_stop(dm->reloader);
    http_free(dm->http);
    dm->http = NULL;
    control_stop(dm->control);
    dnsnotify_stop(dm->notify);
    if (dm->srv && handed_over)
        server_release(dm->srv);
    else if (dm->srv)
        server_stop(dm->srv); /* workers end once queued TCP replies are out */
    health_stop(dm->health);  /* nothing more to answer: nothing more to probe */
    notify("STOPPING=1");
}

static void shutdown_main(struct daemon *dm)
{
    end_main(dm, false);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *dm = arg;
    (void)sig;
    (void)what;
    if (!dm->reloader) {
        log_warning("SIGHUP: still loading the mapping file; not reloading");
        return;
    }
    if (!dm->stopping)
        reload_run(dm->reloader);
}

static void on_lameduck_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    shutdown_main(arg);
}

/* SIGTERM, SIGINT or `svcmapctl stop` (`why`). */
static void stop_daemon(struct daemon *dm, const char *why)
{
    if (dm->loading) {
        log_info("%s: stopping once the mapping file is loaded", why);
        dm->stopping = true;
        return;
    }
    uint32_t lameduck = dm->reloader ? reload_config(dm->reloader)->lameduck : 0;
    if (lameduck && !dm->stopping) {
        /* CoreDNS's lameduck: keep answering DNS and /health while /ready
         * fails, so that load balancers stop sending first. */
        dm->stopping = true;
        reload_stop(dm->reloader); /* a reload under way is dropped */
        log_info("%s: going into lameduck mode for %us", why, lameduck);
        if (dm->http)
            http_set_ready(dm->http, false, "lameduck");
        if (dm->control)
            control_set_state(dm->control, "lameduck");
        notify("STOPPING=1");
        struct timeval tv = {lameduck, 0};
        evtimer_add(dm->lameduck, &tv);
        return;
    }
    log_info("%s: stopping", why);
    dm->stopping = true;
    shutdown_main(dm);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    stop_daemon(arg, strsignal(sig));
}

static void on_control_stop(void *arg)
{
    stop_daemon(arg, "svcmapctl stop");
}

static void log_cannot_start(const struct daemon *dm)
{
    unsigned errors = dm->load.diag.errors;
    log_error("cannot %s: %u error%s in %s%s", dm->replace ? "replace" : "start", errors,
              errors == 1 ? "" : "s", dm->path,
              dm->replace ? "; the running svcmapd was not touched and serves on" : "");
}

/* The loader thread: the second step of the load, parsed on the main
 * thread before the loop started. */
static void *load_zone(void *arg)
{
    struct daemon *dm = arg;
    dm->load.drop_mapping = true; /* the zone has what it needs */
    load_compile(&dm->load, NULL, NULL, time(NULL));
    /* the serial goes on from the one served before the restart; the
     * state was read before this thread started, and is not written
     * until it has ended */
    const struct state_saved *saved = dm->state ? state_saved(dm->state) : NULL;
    if (dm->load.zone && saved && saved->found)
        zone_continue_serial(dm->load.zone, saved->serial, saved->digest);
    event_active(dm->loaded, 0, 0);
    return NULL;
}

/* The zone served now, to the secondaries of [transfer] notify that have
 * not had its serial (SPEC §8): at start, and after every reload applied. */
static void notify_secondaries(struct daemon *dm)
{
    const struct config *cfg = reload_config(dm->reloader);
    dnsnotify_zone(dm->notify, zone_ref_current(dm->ref), cfg->notify, cfg->nnotify);
}

/* A reload ended: the prober takes its probes from the zone now published,
 * the secondaries hear of a new serial, a control client may wait for the
 * outcome, and the state-dir keeps the mapping applied. */
static void on_outcome(void *arg, struct reload_outcome *o)
{
    struct daemon *dm = arg;
    if (o->verdict == RELOAD_APPLY) {
        health_wake(dm->health);
        notify_secondaries(dm);
    }
    if (dm->control)
        control_reload_done(dm->control, o);
    if (dm->state && o->text) {
        state_save(dm->state, o->text, o->len, o->serial, o->digest);
        o->text = NULL;
    }
}

/* `svcmapctl health`: the checked targets of the zone served. */
static void list_health(void *arg, void (*put)(void *ctx, const char *line), void *ctx)
{
    struct daemon *dm = arg;
    health_report_lines(zone_ref_current(dm->ref), put, ctx);
}

/* Serves the loaded zone: binds, drops privileges, starts the workers and
 * the reloader. False on a failure (logged where it happened). */
static bool start_serving(struct daemon *dm)
{
    struct config *cfg = dm->load.cfg;
    /* a reader slot per worker, and the prober's */
    size_t workers = server_worker_count(cfg);
    dm->ref = zone_ref_new(dm->load.zone, workers + 1);
    if (!dm->ref)
        return false;
    dm->load.zone = NULL; /* the ref's now */
    dm->srv = server_new(cfg, dm->ref, dm->max_lookups);
    if (!dm->srv || server_start(dm->srv, dm->given) < 0)
        return false;
    inherit_free(dm->given); /* what nobody listens on, said and closed */
    dm->given = NULL;
    /* Sockets are bound: the rest needs no privilege. */
    if (cfg->user && drop_privileges(cfg->user) < 0)
        return false;
    if (!cfg->user && geteuid() == 0)
        log_warning("running as root: set [server] user = to drop privileges after binding");
    dm->health = health_new(dm->ref, workers, dm->health_cap);
    if (!dm->health) {
        log_error("out of memory");
        return false;
    }
    /* workers and the prober are created with the signals blocked: only
     * main gets them */
    pthread_sigmask(SIG_BLOCK, &dm->sigs, NULL);
    int r = server_run(dm->srv);
    int hr = r < 0 ? 0 : health_start(dm->health);
    pthread_sigmask(SIG_UNBLOCK, &dm->sigs, NULL);
    if (hr < 0)
        log_error("cannot start the prober's thread: %s", strerror(-hr));
    if (r < 0 || hr < 0)
        return false;
    dm->reloader = reload_new(dm->base, dm->path, cfg, dm->ref);
    if (!dm->reloader)
        return false;
    dm->load.cfg = NULL; /* the reloader's now */
    reload_on_outcome(dm->reloader, on_outcome, dm, dm->state != NULL);
    if (dm->last_good)
        reload_serving_last_good(dm->reloader, dm->file_read, dm->file_hash);
    reload_watch(dm->reloader);
    for (size_t i = 0; i < cfg->nlisten; i++)
        log_info("listening on %s (udp, tcp), %zu worker%s", cfg->listen[i].text,
                 server_workers(dm->srv), server_workers(dm->srv) == 1 ? "" : "s");
    dm->notify = dnsnotify_new(dm->base);
    if (!dm->notify)
        return false;
    if (dm->http) {
        http_set_sources(dm->http, dm->srv, dm->ref, dm->reloader);
        http_set_notify(dm->http, dm->notify);
        http_set_control_state(dm->http, dm->control, dm->state);
        http_set_health(dm->http, dm->health);
        http_set_ready(dm->http, true, NULL); /* from the last good copy too: it answers */
    }
    if (dm->control) {
        const struct control_sources src = {dm->ref, dm->reloader, dm->path,
                                            dm->state ? state_copy_path(dm->state) : NULL};
        control_set_sources(dm->control, &src);
        control_set_health(dm->control, list_health, dm);
        control_set_state(dm->control, "serving");
    }
    return true;
}

/* ---- this svcmapd replaced by a new one (control.h, handover.h) ---- */

static void offer_socket(void *arg, int fd, const char *label)
{
    handover_offer_add(arg, fd, label);
}

static void offer_fact(void *arg, const char *fact)
{
    handover_offer_fact(arg, fact);
}

/* A new svcmapd asks for the sockets: the facts (the serial, the state of
 * every probe), and every listening socket but the control socket's
 * (control.c adds it). Reloads wait until it has taken over or gone: the
 * serial and the state-dir it is told of must stay. */
static bool on_replace_offer(void *arg, struct handover_offer *o, char *why, size_t cap)
{
    struct daemon *dm = arg;
    if (dm->stopping || !dm->reloader) {
        snprintf(why, cap, "svcmapd is %s",
                 dm->stopping ? "stopping" : "still loading the mapping");
        return false;
    }
    if (reload_running(dm->reloader)) {
        snprintf(why, cap, "a reload is under way; try again once it has ended");
        return false;
    }
    const struct zone *z = zone_ref_current(dm->ref);
    const struct zone_stats *st = zone_stats(z);
    o->facts.pid = (long)getpid();
    snprintf(o->facts.version, sizeof(o->facts.version), "%s", SVCMAPD_VERSION);
    o->facts.has_serial = true;
    o->facts.serial = st->serial;
    o->facts.digest = st->digest;
    health_report_facts(z, offer_fact, o);
    server_listening(dm->srv, offer_socket, o);
    if (dm->http)
        http_listening(dm->http, offer_socket, o);
    reload_hold(dm->reloader, true);
    return true;
}

/* The new svcmapd answers on the sockets: this one stops reading them,
 * lets go of the state-dir, finishes its connections, and exits 0. */
static void on_replaced(void *arg)
{
    struct daemon *dm = arg;
    dm->stopping = true;
    state_release(dm->state);
    end_main(dm, true);
}

/* It went away before it answered: this one serves on. */
static void on_replace_abandoned(void *arg)
{
    struct daemon *dm = arg;
    if (dm->reloader)
        reload_hold(dm->reloader, false);
}

/* The control socket, if there is one: made before privileges are
 * dropped (its directory may be root's), and given to the user svcmapd
 * drops to. False on a failure. */
static bool start_control(struct daemon *dm)
{
    const struct config *cfg = dm->load.cfg;
    if (!cfg->control_socket)
        return true;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    if (cfg->user && geteuid() == 0 && resolve_user(cfg->user, &uid, &gid) < 0)
        return false;
    dm->control = control_new(dm->base, cfg->control_socket, uid, gid, dm->given);
    if (dm->control) {
        control_set_stop(dm->control, on_control_stop, dm);
        const struct control_replace hooks = {on_replace_offer, on_replaced, on_replace_abandoned,
                                              dm};
        control_set_replace(dm->control, &hooks);
    }
    return dm->control != NULL;
}

/* What is about to be served. */
static void log_zone(const struct daemon *dm)
{
    const struct zone_stats *st = zone_stats(dm->load.zone);
    log_info("svcmapd %s: zone %s from %s: %zu services, %zu records, serial %u", SVCMAPD_VERSION,
             dm->load.cfg->zone, dm->load.diag.file, st->services, st->records, st->serial);
}

static bool start_fresh(struct daemon *dm)
{
    log_zone(dm);
    return start_serving(dm);
}

/*
 * svcmapd --replace, once the mapping is compiled (SPEC §7): the running
 * svcmapd hands over its sockets through its control socket (handover.h);
 * this one answers on them, with the serial and the state of the checked
 * targets carried on, then tells it to let go, and takes the state-dir.
 * False on a failure (logged): closing the connection leaves the old one
 * serving, its sockets never closed.
 */
static bool take_over(struct daemon *dm)
{
    const struct config *cfg = dm->load.cfg;
    struct handover_facts facts;
    struct health_seed seed; /* before the first answer: a target down is left out */
    health_seed_init(&seed, dm->load.zone);
    dm->given = inherit_new(INHERIT_HANDOVER);
    int conn = dm->given ? handover_request(cfg->control_socket, &facts, dm->given,
                                            health_seed_fact, &seed)
                         : -1;
    health_seed_finish(&seed, conn >= 0);
    if (conn < 0)
        return false;
    if (facts.has_serial) /* it never goes back (SPEC §2.2) */
        zone_continue_serial(dm->load.zone, facts.serial, facts.digest);
    log_zone(dm);
    dm->http = http_new(dm->base, cfg, dm->given);
    if (!dm->http || !start_control(dm) || !start_serving(dm)) {
        close(conn);
        return false;
    }
    if (!handover_confirm(conn))
        return false;
    log_info("replace: took over from svcmapd pid %ld", facts.pid);
    if (dm->state)
        state_claim(dm->state); /* the old one has let go of it */
    return true;
}

/* The mapping is compiled (main thread): serve it, or stop. */
static void on_loaded(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *dm = arg;
    (void)fd;
    (void)what;
    pthread_join(dm->loader, NULL);
    dm->loading = false;
    load_report(&dm->load.diag, NULL);
    if (!dm->load.zone) {
        log_cannot_start(dm);
        dm->rc = EXIT_BAD_CONFIG;
        shutdown_main(dm);
        return;
    }
    if (dm->stopping) {
        dm->rc = EXIT_OK;
        shutdown_main(dm);
        return;
    }
    dm->rc = EXIT_RUNTIME;
    if (!(dm->replace ? take_over(dm) : start_fresh(dm))) {
        shutdown_main(dm);
        return;
    }
    dm->rc = EXIT_OK;
    load_give_back(); /* the parsed mapping and the compiler's tables */
    notify_secondaries(dm);
    const struct zone_stats *st = zone_stats(zone_ref_current(dm->ref));
    if (dm->last_good) {
        log_error("serving the LAST GOOD COPY %s, serial %u: %s could not be loaded (see the "
                  "errors above); fix it and reload",
                  state_copy_path(dm->state), st->serial, dm->path);
        notify("READY=1\nSTATUS=serving the last good copy: the mapping file has errors");
        return;
    }
    if (dm->state && dm->text) /* the last good copy from now on */
        state_save(dm->state, dm->text, dm->len, st->serial, st->digest);
    dm->text = NULL;
    notify("READY=1\nSTATUS=serving");
}

/* The state-dir `dir`: its copy, what the copy says. False when out of
 * memory. */
static bool open_state(struct daemon *dm, const char *dir)
{
    dm->state = state_new(dm->base, dir);
    if (!dm->state)
        log_error("out of memory");
    else if (!dm->replace) /* the replaced svcmapd's until it lets go */
        state_claim(dm->state);
    return dm->state != NULL;
}

/* The mapping file cannot be read or has errors (reported): the state-dir's
 * last good copy `dir` is parsed instead. False if there is none, or it
 * cannot be used either (reported). */
static bool read_last_good(struct daemon *dm, const char *dir)
{
    struct load *l = &dm->load;
    unsigned errors = l->diag.errors;
    dm->file_read = l->read;
    dm->file_hash = l->hash;
    if (!open_state(dm, dir))
        return false;
    const char *copy = state_copy_path(dm->state);
    load_finish(l);
    load_init(l, copy);
    size_t len = 0;
    char *text = config_read(copy, &len, &l->diag);
    bool ok = text && load_parse(l, text, len) && !l->diag.errors;
    free(text);
    if (!ok) {
        load_report(&l->diag, NULL);
        log_error("cannot start: %u error%s in %s, and no last good copy to start on in %s", errors,
                  errors == 1 ? "" : "s", dm->path, dir);
        return false;
    }
    log_configure(l->cfg);
    log_error("%u error%s in %s: starting on the last good copy %s instead", errors,
              errors == 1 ? "" : "s", dm->path, copy);
    dm->last_good = true;
    return true;
}

/* The first step of the load, on the main thread: the file read and
 * parsed, the log set up as it says, the state-dir opened. A bad file is
 * reported whole (its zone's errors too) before anything starts; then
 * the last good copy is read instead if there is a state-dir. False when
 * there is nothing to start on. */
static bool read_mapping(struct daemon *dm)
{
    struct load *l = &dm->load;
    char *text = config_read(dm->path, &dm->len, &l->diag);
    if (text && load_parse(l, text, dm->len) && !l->diag.errors) {
        log_configure(l->cfg);
        const char *dir = dm->state_dir ? dm->state_dir : l->cfg->state_dir;
        if (dir && !open_state(dm, dir)) {
            free(text);
            return false;
        }
        if (dm->state)
            dm->text = text; /* saved once serving */
        else
            free(text);
        return true;
    }
    free(text);
    if (l->cfg)
        load_compile(l, NULL, NULL, time(NULL)); /* for its errors */
    load_report(&l->diag, NULL);
    /* The file's own state-dir, when its line could be read. A replace
     * never starts on the copy: the running svcmapd serves on instead. */
    const char *dir = dm->state_dir ? dm->state_dir : l->cfg ? l->cfg->state_dir : NULL;
    if (dir && !dm->replace) {
        char *copy = strdup(dir); /* l->cfg goes */
        bool ok = copy && read_last_good(dm, copy);
        free(copy);
        return ok;
    }
    log_cannot_start(dm);
    return false;
}

/* The loop's events, the HTTP endpoints, and the loader thread that
 * compiles the mapping meanwhile. False on a failure. */
static bool start_loop(struct daemon *dm)
{
    dm->sig[0] = evsignal_new(dm->base, SIGHUP, on_hup, dm);
    dm->sig[1] = evsignal_new(dm->base, SIGTERM, on_stop_signal, dm);
    dm->sig[2] = evsignal_new(dm->base, SIGINT, on_stop_signal, dm);
    dm->loaded = event_new(dm->base, -1, 0, on_loaded, dm);
    dm->lameduck = evtimer_new(dm->base, on_lameduck_over, dm);
    for (size_t i = 0; i < 3; i++)
        if (!dm->sig[i] || event_add(dm->sig[i], NULL) < 0)
            return false;
    if (!dm->loaded || !dm->lameduck)
        return false;

    /* /health and /ready answer while the mapping compiles (a million
     * services take a moment): 200 and 503. So does the control socket.
     * A replace takes theirs from the running svcmapd, once compiled. */
    if (!dm->replace) {
        dm->http = http_new(dm->base, dm->load.cfg, dm->given);
        if (!dm->http || !start_control(dm))
            return false;
    }
    if (pthread_create(&dm->loader, NULL, load_zone, dm) != 0) {
        log_error("cannot start the loader thread");
        return false;
    }
    dm->loading = true; /* only a thread that was started is joined */
    return true;
}

static void daemon_finish(struct daemon *dm)
{
    if (dm->loading)
        pthread_join(dm->loader, NULL);
    for (size_t i = 0; i < 3; i++)
        if (dm->sig[i])
            event_free(dm->sig[i]);
    if (dm->loaded)
        event_free(dm->loaded);
    if (dm->lameduck)
        event_free(dm->lameduck);
    http_free(dm->http);
    control_free(dm->control);
    dnsnotify_free(dm->notify);
    inherit_free(dm->given);
    reload_free(dm->reloader);
    health_stop(dm->health); /* it holds a reader slot: before the zones go */
    health_free(dm->health);
    state_free(dm->state); /* after the reloader: a copy it asked for is written */
    server_free(dm->srv);
    zone_ref_free(dm->ref);
    load_finish(&dm->load);
    free(dm->text);
    if (dm->base)
        event_base_free(dm->base);
}

static int serve(const char *path, const char *state_dir, bool replace)
{
    struct daemon dm = {
        .path = path, .state_dir = state_dir, .replace = replace, .rc = EXIT_RUNTIME};

    /* Until the event loop handles them, SIGHUP and SIGTERM wait (a SIGHUP
     * sent right after start-up must not kill). Threads are created while
     * they are blocked, so only the main thread ever receives them. */
    sigemptyset(&dm.sigs);
    sigaddset(&dm.sigs, SIGHUP);
    sigaddset(&dm.sigs, SIGTERM);
    sigaddset(&dm.sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &dm.sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        log_error("libevent has no thread support");
        return EXIT_RUNTIME;
    }

    dm.base = event_base_new();
    if (!dm.base) {
        log_error("out of memory");
        return EXIT_RUNTIME;
    }
    /* systemd's sockets, if it passed any (socket activation): used
     * instead of binding those addresses. A replace takes the running
     * svcmapd's instead. */
    dm.given = inherit_systemd();
    if (replace && dm.given) {
        log_warning("replace: the sockets systemd passed are not used: the running svcmapd's are");
        inherit_free(dm.given);
        dm.given = NULL;
    }
    load_init(&dm.load, path);
    if (!read_mapping(&dm)) {
        dm.rc = EXIT_BAD_CONFIG;
        daemon_finish(&dm);
        return dm.rc;
    }
    if (replace && !dm.load.cfg->control_socket) {
        log_error("--replace: %s names no [control] socket, through which the running svcmapd "
                  "hands its sockets over",
                  path);
        dm.rc = EXIT_USAGE;
        daemon_finish(&dm);
        return dm.rc;
    }
    dm.health_cap = health_probe_cap(dm.load.cfg);
    dm.max_lookups = budget_files(dm.load.cfg, dm.health_cap);
    if (start_loop(&dm)) {
        pthread_sigmask(SIG_UNBLOCK, &dm.sigs, NULL);
        event_base_dispatch(dm.base);
        if (dm.srv)
            server_wait(dm.srv);
        if (dm.rc == EXIT_OK)
            log_info("stopped");
    }
    daemon_finish(&dm);
    return dm.rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 't'},
        {"print", required_argument, NULL, 'p'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"list-options", no_argument, NULL, 'L'},
        {"state-dir", required_argument, NULL, 'S'},
        {"replace", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    const char *path = SVCMAPD_DEFAULT_CONFIG;
    bool replace = false;
    const char *state_dir = NULL;
    bool check_only = false;
    const char *form = NULL;
    int opt;

    if (argc > 1 && strcmp(argv[1], "import") == 0)
        return import_command(argc - 1, argv + 1);

    while ((opt = getopt_long(argc, argv, "c:tp:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'p':
            form = optarg;
            break;
        case 'V':
            printf("svcmapd %s\n", SVCMAPD_VERSION);
            return EXIT_OK;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'L':
            return config_list_options(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
        case 'S':
            state_dir = optarg;
            break;
        case 'R':
            replace = true;
            break;
        default:
            fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (replace && (check_only || form)) {
        fprintf(stderr, "svcmapd: --replace starts a server: not with %s\n",
                check_only ? "-t" : "--print");
        fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
        return EXIT_USAGE;
    }
    if (form) {
        if (optind + 1 != argc) {
            fprintf(stderr, "svcmapd: --print %s needs one SERVER (IP[:PORT])\n", form);
            fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
            return EXIT_USAGE;
        }
        return print_form(path, form, argv[optind]);
    }
    if (optind < argc) {
        fprintf(stderr, "svcmapd: unexpected argument '%s'\n", argv[optind]);
        fprintf(stderr, "Try 'svcmapd --help' for more information.\n");
        return EXIT_USAGE;
    }
    return check_only ? check(path) : serve(path, state_dir, replace);
}
