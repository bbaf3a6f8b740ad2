/* answerbench.c -- the benchmark's measure of what check= costs answer_query(), alone.
 *
 * usage: answerbench [SERVICES [ROUNDS [QUERIES]]]
 *
 * Compiles one mapping of SERVICES services of two IPv4 targets with ports
 * (default 1000) in five renderings, and answers the same A and SRV
 * queries (QUERIES per round, default 200000, three A to one SRV, names at
 * random) against each in turn, ROUNDS times (default 15), timing each
 * batch with the thread's CPU clock:
 *
 *   unchecked          no check=
 *   all, both up       check=tcp: the plan as compiled (the common case)
 *   all, one down      check=tcp, the second target down: a copy of one record
 *   failover           check=tcp policy=failover, both up: the first target
 *   failover, all down every target, in the order of the file: a copy of all
 *
 * The probes' states are set here, as the prober would set them; nothing is
 * probed, nothing is sent. Prints one line per rendering: the median ns per
 * query over the rounds, and its ratio to unchecked's in the same rounds.
 * What a real query costs besides (the kernel's UDP path, some 2-3 µs on
 * the development VM) is tests/bench/run's to measure.
 */

#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcmapd/answer.h"
#include "svcmapd/load.h"

enum { UNCHECKED, ALL_UP, ALL_ONE_DOWN, FAILOVER, FAILOVER_DOWN, RENDERINGS };

static const char *const names[RENDERINGS] = {
    "unchecked", "all, both up", "all, one down", "failover", "failover, all down",
};

static struct zone *compile(size_t n, const char *check)
{
    size_t cap = 128 + n * 96;
    char *text = malloc(cap);
    size_t len = (size_t)snprintf(text, cap, "[upstream]\nservers = none\n[namespace b]\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "s%zu = 127.20.%zu.%zu:5432, 127.21.%zu.%zu:5432%s\n", i, i / 250,
                                i % 250 + 1, i / 250, i % 250 + 1, check);
    struct load l;
    load_init(&l, "answerbench.ini");
    load_text(&l, text, len, NULL, NULL, time(NULL));
    struct zone *z = l.zone;
    if (!z)
        fprintf(stderr, "%s", l.diag.text ? l.diag.text : "no zone\n");
    l.zone = NULL;
    load_finish(&l);
    free(text);
    return z;
}

/* Every probe of `z` of the addresses 127.`net`.x.y: up or down. */
static void set_net(struct zone *z, int net, int up)
{
    size_t n;
    struct zone_probe *p = zone_probes(z, &n);
    for (size_t i = 0; i < n; i++)
        if (p[i].key.addr[0] == 127 && p[i].key.addr[1] == net)
            zone_probe_set_up(z, &p[i], up);
}

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 15;
    size_t nq = argc > 3 ? strtoul(argv[3], NULL, 10) : 200000;
    if (n < 1 || n > 60000 || rounds < 1 || nq < 1) {
        fprintf(stderr, "usage: answerbench [SERVICES [ROUNDS [QUERIES]]]\n");
        return 2;
    }
    struct zone *z[RENDERINGS] = {
        compile(n, ""),
        compile(n, " check=tcp"),
        compile(n, " check=tcp"),
        compile(n, " check=tcp policy=failover"),
        compile(n, " check=tcp policy=failover"),
    };
    for (int r = 0; r < RENDERINGS; r++)
        if (!z[r])
            return 1;
    set_net(z[ALL_ONE_DOWN], 21, 0);
    set_net(z[FAILOVER_DOWN], 20, 0);
    set_net(z[FAILOVER_DOWN], 21, 0);

    /* the queries, in wire form: three A to one SRV, names at random */
    uint8_t(*wire)[300] = malloc(nq * sizeof(*wire));
    size_t *wlen = malloc(nq * sizeof(*wlen));
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t q = 0; q < nq; q++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        char name[80];
        snprintf(name, sizeof(name), "s%llu.b.svc.cluster.local.", (unsigned long long)(x % n));
        ldns_pkt *p =
            ldns_pkt_query_new(ldns_dname_new_frm_str(name),
                               q % 4 == 3 ? LDNS_RR_TYPE_SRV : LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
        uint8_t *w;
        ldns_pkt2wire(&w, p, &wlen[q]);
        memcpy(wire[q], w, wlen[q]);
        free(w);
        ldns_pkt_free(p);
    }

    static struct answer_ctx ctx;
    static uint8_t reply[ANSWER_UDP_MAX];
    answer_init(&ctx);
    ctx.no_wait = true;
    double *ns = calloc(RENDERINGS * rounds, sizeof(*ns));
    size_t bytes[RENDERINGS] = {0};
    for (size_t k = 0; k < rounds; k++) {
        for (int r = 0; r < RENDERINGS; r++) {
            struct answer_info info;
            size_t sum = 0;
            double t0 = cpu_ns();
            for (size_t q = 0; q < nq; q++)
                sum += answer_query(&ctx, z[r], wire[q], wlen[q], false, NULL, reply, sizeof(reply),
                                    &info) == ANSWER_REPLY
                           ? info.len
                           : 0;
            ns[r * rounds + k] = (cpu_ns() - t0) / (double)nq;
            bytes[r] = sum / nq;
        }
    }
    printf("# answer_query() alone, %zu services of 2 targets, %zu rounds of %zu queries "
           "(3 A : 1 SRV), medians\n",
           n, rounds, nq);
    double base[64];
    for (size_t k = 0; k < rounds && k < 64; k++)
        base[k] = ns[UNCHECKED * rounds + k];
    for (int r = 0; r < RENDERINGS; r++) {
        double ratios[64];
        for (size_t k = 0; k < rounds && k < 64; k++)
            ratios[k] = ns[r * rounds + k] / base[k];
        qsort(ratios, rounds < 64 ? rounds : 64, sizeof(double), cmp);
        qsort(ns + r * rounds, rounds, sizeof(double), cmp);
        printf("%s\t%.1f\t%.3f\t%zu\n", names[r], ns[r * rounds + rounds / 2],
               ratios[(rounds < 64 ? rounds : 64) / 2], bytes[r]);
    }
    for (int r = 0; r < RENDERINGS; r++)
        zone_free(z[r]);
    free(ns);
    free(wire);
    free(wlen);
    return 0;
}
