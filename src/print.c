/* print.c -- what to paste into CoreDNS or kube-dns to send names to svcmapd. */
#include "svcmapd/print.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/*
 * CoreDNS sends a query to the server block with the longest matching
 * zone, so a block per mapped name overrides exactly those names and
 * leaves the rest of cluster.local to the kubernetes plugin. Bigger blocks
 * are shorter to write but take every name below them, real Services
 * included. `forward` is given an IP: CoreDNS resolves host names only once
 * at start (see README, "Wiring it into CoreDNS").
 */

/* `server` as `forward` and stubDomains write it: IP, IP:PORT, [IPv6]:PORT
 * (the port only when not 53). Returns false if it is no IP address. */
static bool forward_target(const char *server, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN + 2];
    unsigned port = 53;
    const char *p = server;
    size_t n;
    uint8_t addr[16];
    bool v6;

    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (!close || (close[1] && close[1] != ':'))
            return false;
        n = (size_t)(close - p - 1);
        if (n >= sizeof(host))
            return false;
        memcpy(host, p + 1, n);
        host[n] = '\0';
        p = close[1] ? close + 2 : close + 1;
        v6 = true;
    } else {
        const char *colon = strchr(p, ':');
        v6 = colon && strchr(colon + 1, ':');
        n = v6 || !colon ? strlen(p) : (size_t)(colon - p);
        if (n >= sizeof(host))
            return false;
        memcpy(host, p, n);
        host[n] = '\0';
        p = v6 || !colon ? "" : colon + 1;
    }
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
        return false;
    if (*p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (*end || v < 1 || v > 65535)
            return false;
        port = (unsigned)v;
    }
    if (port == 53)
        snprintf(out, cap, "%s", host);
    else
        snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", host, port);
    return true;
}

static void block(FILE *out, const char *zone, uint32_t ttl, const char *target)
{
    fprintf(out, "%s:53 {\n    errors\n", zone);
    if (ttl)
        fprintf(out, "    cache %u\n", ttl);
    fprintf(out, "    forward . %s\n}\n", target);
}

/* A server block for each reverse zone of [server] reverse, after the
 * forward ones. Being longer, each wins over the kubernetes plugin's
 * in-addr.arpa and ip6.arpa for the names in it (and takes them all). */
static void reverse_blocks(FILE *out, const struct config *cfg, const char *target)
{
    if (cfg->nreverse == 0)
        return;
    fprintf(out,
            "# And one for each reverse zone of [server] reverse: PTR for the mapped addresses,\n"
            "# NXDOMAIN for the others. Each takes every reverse name in it from the\n"
            "# kubernetes plugin: give only ranges that hold no Service or Pod of the cluster.\n");
    for (size_t i = 0; i < cfg->nreverse; i++)
        block(out, cfg->reverse[i].zone, cfg->ttl, target);
}

/* corefile-names: a server block per mapped service name. */
static void print_names(FILE *out, const struct config *cfg, const char *target)
{
    char name[300];
    fprintf(out,
            "# svcmapd: a CoreDNS server block for each of the %zu names mapped in %s.\n"
            "# Add them to the Corefile of the coredns ConfigMap (namespace kube-system);\n"
            "# the kubernetes plugin keeps answering every other name.\n",
            cfg->nservices, cfg->path);
    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        const struct config_namespace *ns = &cfg->namespaces[i];
        for (size_t j = 0; j < ns->nservices; j++) {
            snprintf(name, sizeof(name), "%s.%s.svc.%s", ns->services[j].name, ns->name, cfg->zone);
            block(out, name, cfg->ttl, target);
        }
    }
    reverse_blocks(out, cfg, target);
}

/* corefile-namespaces: a server block per namespace. */
static void print_namespaces(FILE *out, const struct config *cfg, const char *target)
{
    char name[300];
    fprintf(out,
            "# svcmapd: a CoreDNS server block for each namespace mapped in %s.\n"
            "# Careful: a block takes EVERY name of its namespace, the namespace's own\n"
            "# Services too, which svcmapd answers NXDOMAIN. Use it only for namespaces\n"
            "# that hold nothing but external mappings; else use corefile-names.\n",
            cfg->path);
    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        snprintf(name, sizeof(name), "%s.svc.%s", cfg->namespaces[i].name, cfg->zone);
        block(out, name, cfg->ttl, target);
    }
    reverse_blocks(out, cfg, target);
}

/* corefile-zone: one server block for the whole zone. */
static void print_zone(FILE *out, const struct config *cfg, const char *target)
{
    fprintf(out, "# svcmapd: one CoreDNS server block for the zone of %s.\n", cfg->path);
    if (strcmp(cfg->zone, "cluster.local") == 0)
        fprintf(out,
                "# Careful: cluster.local is the cluster's own domain; this block would take\n"
                "# it from the kubernetes plugin. Use corefile-names, or a zone of its own.\n");
    block(out, cfg->zone, cfg->ttl, target);
    reverse_blocks(out, cfg, target);
}

/* stubdomains: the kube-dns ConfigMap NodeLocal DNSCache reads. It turns
 * each stub domain into a server block of its own; names under
 * cluster.local reach CoreDNS anyway. */
static void print_stubdomains(FILE *out, const struct config *cfg, const char *target)
{
    bool cluster = strcmp(cfg->zone, "cluster.local") == 0;
    fprintf(out, "# svcmapd: the kube-dns ConfigMap, which NodeLocal DNSCache (node-local-dns)\n"
                 "# reads to forward stub domains; merge with an existing one (kubectl -n\n"
                 "# kube-system get configmap kube-dns -o yaml).\n");
    if (cluster)
        fprintf(out, "# The zone is cluster.local: one stub domain per mapped name.\n");
    if (cfg->nreverse)
        fprintf(out,
                "# The reverse zones of [server] reverse are stub domains too: node-local-dns\n"
                "# sends their names to svcmapd instead of CoreDNS.\n");
    fprintf(out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-dns\n"
                 "  namespace: kube-system\ndata:\n  stubDomains: |\n    {");
    bool first = true;
    if (cluster) {
        for (size_t i = 0; i < cfg->nnamespaces; i++) {
            const struct config_namespace *ns = &cfg->namespaces[i];
            for (size_t j = 0; j < ns->nservices; j++) {
                fprintf(out, "%s\"%s.%s.svc.%s\": [\"%s\"]", first ? "" : ", ",
                        ns->services[j].name, ns->name, cfg->zone, target);
                first = false;
            }
        }
    } else {
        fprintf(out, "\"%s\": [\"%s\"]", cfg->zone, target);
        first = false;
    }
    for (size_t i = 0; i < cfg->nreverse; i++) {
        fprintf(out, "%s\"%s\": [\"%s\"]", first ? "" : ", ", cfg->reverse[i].zone, target);
        first = false;
    }
    fprintf(out, "}\n");
}

/* The forms, in the order usage messages list them. */
static const struct {
    const char *name;
    void (*print)(FILE *out, const struct config *cfg, const char *target);
} forms[] = {
    {"corefile-names", print_names},
    {"corefile-namespaces", print_namespaces},
    {"corefile-zone", print_zone},
    {"stubdomains", print_stubdomains},
};

int print_snippet(FILE *out, const struct config *cfg, const char *form, const char *server)
{
    char target[INET6_ADDRSTRLEN + 10];
    if (!forward_target(server, target, sizeof(target))) {
        fprintf(stderr, "svcmapd: --print: '%s' is not an IP address with an optional port\n",
                server);
        return -1;
    }
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        if (strcmp(form, forms[i].name) == 0) {
            forms[i].print(out, cfg, target);
            return 0;
        }
    }
    fprintf(stderr, "svcmapd: --print: unknown form '%s' (known:", form);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        fprintf(stderr, " %s", forms[i].name);
    fprintf(stderr, ")\n");
    return -1;
}
