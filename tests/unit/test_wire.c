/* test_wire.c -- walking messages (wire.c): counting records as libldns does, names in a zone. */
#include <string.h>

#include "svcmapd/wire.h"
#include "tap.h"

/* A message under construction. */
struct msg {
    uint8_t b[512];
    size_t n;
};

static void put(struct msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void put16(struct msg *m, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(m, b, 2);
}

static void header(struct msg *m, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
    m->n = 0;
    put16(m, 0x1234);
    put16(m, 0x8400);
    put16(m, qd);
    put16(m, an);
    put16(m, ns);
    put16(m, ar);
}

static const uint8_t NAME[] = "\3svc\7cluster\5local"; /* with its final 0 */

static void question(struct msg *m)
{
    put(m, NAME, sizeof(NAME));
    put16(m, 1);
    put16(m, 1);
}

/* A record up to its RDLENGTH: owner a pointer to the question's name,
 * then type, class, TTL and `rdlen`; the rdata is the caller's. */
static void record_head(struct msg *m, unsigned type, unsigned rdlen)
{
    put16(m, 0xc00c);
    put16(m, type);
    put16(m, type == 250 ? 255 : 1);
    put16(m, 0);
    put16(m, 60);
    put16(m, rdlen);
}

/* A record with rdata of `rdlen` zero bytes. */
static void record(struct msg *m, unsigned type, unsigned rdlen)
{
    static const uint8_t zero[64];
    record_head(m, type, rdlen);
    put(m, zero, rdlen);
}

int main(void)
{
    struct msg m;

    header(&m, 1, 0, 0, 0);
    question(&m);
    is_int(wire_count_type(m.b, m.n, 250), 0, "a query: no TSIG");
    is_int(wire_count_type(m.b, m.n, 1), 0, "the question's type is not a record");

    header(&m, 1, 2, 0, 1);
    question(&m);
    record(&m, 1, 4);
    record(&m, 1, 4);
    record(&m, 41, 0);
    is_int(wire_count_type(m.b, m.n, 1), 2, "two A records in the answer");
    is_int(wire_count_type(m.b, m.n, 41), 1, "one OPT in the additional section");

    /* All-zero rdata that libldns reads to its end: a TSIG takes 17 bytes
     * (root algorithm, time, fudge, empty MAC, ID, error, empty other), an
     * SOA 22 (two root names, five numbers). */
    header(&m, 1, 1, 1, 2);
    question(&m);
    record(&m, 250, 17);
    record(&m, 6, 22);
    record(&m, 250, 17);
    record(&m, 250, 0);
    is_int(wire_count_type(m.b, m.n, 250), 3, "TSIG in every section is counted");

    /* an owner spelled out, not a pointer */
    header(&m, 0, 1, 0, 0);
    put(&m, NAME, sizeof(NAME));
    put16(&m, 250);
    put16(&m, 255);
    put16(&m, 0);
    put16(&m, 0);
    put16(&m, 0);
    is_int(wire_count_type(m.b, m.n, 250), 1, "an owner name in full");

    header(&m, 1, 1, 0, 0);
    question(&m);
    record(&m, 1, 4);
    is_int(wire_count_type(m.b, m.n - 1, 1), -1, "rdata cut short");
    is_int(wire_count_type(m.b, m.n - 8, 1), -1, "record header cut short");
    header(&m, 1, 1, 0, 0);
    question(&m);
    is_int(wire_count_type(m.b, m.n, 1), -1, "fewer records than the header counts");
    is_int(wire_count_type(m.b, 11, 1), -1, "shorter than a header");

    header(&m, 1, 0, 0, 0);
    put(&m, "\100abc", 4); /* a label type of 0x40 */
    is_int(wire_count_type(m.b, m.n, 1), -1, "extended label types are not skipped");
    header(&m, 1, 0, 0, 0);
    put(&m, "\3svc", 4);
    is_int(wire_count_type(m.b, m.n, 1), -1, "a name that does not end");
    header(&m, 1, 0, 0, 0);
    put(&m, "\300", 1);
    is_int(wire_count_type(m.b, m.n, 1), -1, "half a pointer");
    header(&m, 1, 0, 0, 0);
    put(&m, "\300\014", 2); /* a name that points at itself */
    put16(&m, 1);
    put16(&m, 1);
    is_int(wire_count_type(m.b, m.n, 1), -1, "a pointer loop");

    /* A CNAME of RDLENGTH 12 whose target, the root, takes one byte:
     * libldns reads the other eleven as a TSIG record of its own. With the
     * TSIG after it, ldns_wire2pkt() sees two and leaks one. */
    header(&m, 1, 0, 0, 4);
    question(&m);
    record_head(&m, 5, 12);
    /* the target, then a root owner, TSIG, ANY, TTL 0, RDLENGTH 0 */
    static const uint8_t hidden[12] = {0, 0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0};
    put(&m, hidden, sizeof(hidden));
    record(&m, 250, 0);
    record(&m, 1, 4);
    record(&m, 1, 4);
    is_int(wire_count_type(m.b, m.n, 250), 2, "a TSIG inside a CNAME's rdata is counted");
    is_int(wire_count_type(m.b, m.n, 1), 1, "four records read, the last A left over");

    /* wire_name_in(): the apex, or a name below it at a label boundary */
    static const uint8_t apex[] = "\7cluster\5local";
    static const uint8_t below[] = "\5mysql\6test-2\3svc\7cluster\5local";
    static const uint8_t glued[] = "\11xxcluster\5local";    /* "xxcluster.local" */
    static const uint8_t inside[] = "\7cluster\5local\3com"; /* cluster.local.com */
    ok(wire_name_in(apex, sizeof(apex), apex, sizeof(apex)), "the apex is in its zone");
    ok(wire_name_in(below, sizeof(below), apex, sizeof(apex)), "a name below the apex is");
    ok(!wire_name_in(glued, sizeof(glued), apex, sizeof(apex)), "a label that ends like it is not");
    ok(!wire_name_in(inside, sizeof(inside), apex, sizeof(apex)), "a name that holds it is not");
    ok(!wire_name_in(apex + 8, sizeof(apex) - 8, apex, sizeof(apex)), "its parent is not");
    ok(!wire_name_in(apex, sizeof(apex), apex, 0), "no zone holds nothing");
    return done_testing();
}
