/* test_udptrain.c -- which replies of a batch travel together. */
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <string.h>

#include "svcmapd/udptrain.h"
#include "tap.h"

static struct sockaddr_in peers[3];
static const char ctl_a[8] = "ctl-a", ctl_b[8] = "ctl-b";

static struct udptrain_reply reply(size_t len, int peer, const char *ctl)
{
    return (struct udptrain_reply){
        .len = len,
        .peer = &peers[peer],
        .peerlen = sizeof(peers[peer]),
        .ctl = ctl,
        .ctllen = ctl ? sizeof(ctl_a) : 0,
    };
}

/* The plan as text: trains in brackets, "[0 2][1]". */
static const char *plan(const struct udptrain_reply *r, size_t n, bool gso)
{
    static char out[512];
    size_t order[UDPTRAIN_BATCH_MAX];
    struct udptrain trains[UDPTRAIN_BATCH_MAX];
    size_t nt = udptrain_plan(r, n, gso, order, trains);
    size_t used = 0;
    out[0] = '\0';
    for (size_t t = 0; t < nt; t++) {
        used += (size_t)snprintf(out + used, sizeof(out) - used, "[");
        for (size_t k = 0; k < trains[t].count; k++)
            used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%zu", k ? " " : "",
                                     order[trains[t].first + k]);
        used += (size_t)snprintf(out + used, sizeof(out) - used, "]");
    }
    return out;
}

int main(void)
{
    for (int i = 0; i < 3; i++) {
        peers[i].sin_family = AF_INET;
        peers[i].sin_port = htons((uint16_t)(5300 + i));
        peers[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }

    struct udptrain_reply same[] = {reply(60, 0, NULL), reply(60, 0, NULL), reply(60, 0, NULL)};
    is_str(plan(same, 3, true), "[0 1 2]", "one size, one client: one train");
    is_str(plan(same, 3, false), "[0][1][2]", "without offload every reply alone");

    struct udptrain_reply mixed[] = {reply(60, 0, NULL), reply(72, 0, NULL), reply(60, 0, NULL),
                                     reply(72, 0, NULL), reply(90, 0, NULL)};
    is_str(plan(mixed, 5, true), "[0 2][1 3][4]", "one train per size, in the batch's order");

    struct udptrain_reply clients[] = {reply(60, 0, NULL), reply(60, 1, NULL), reply(60, 0, NULL),
                                       reply(60, 2, NULL), reply(60, 1, NULL)};
    is_str(plan(clients, 5, true), "[0 2][1 4][3]", "never across clients");

    struct udptrain_reply sources[] = {reply(60, 0, ctl_a), reply(60, 0, ctl_b),
                                       reply(60, 0, ctl_a), reply(60, 0, NULL)};
    is_str(plan(sources, 4, true), "[0 2][1][3]",
           "never across source addresses (wildcard sockets)");

    struct udptrain_reply gaps[] = {reply(0, 0, NULL), reply(60, 0, NULL), reply(0, 0, NULL),
                                    reply(60, 0, NULL)};
    is_str(plan(gaps, 4, true), "[1 3]", "queries without a reply are left out");
    struct udptrain_reply none[] = {reply(0, 0, NULL), reply(0, 0, NULL)};
    is_str(plan(none, 2, true), "", "no replies, no trains");

    struct udptrain_reply big[] = {
        reply(UDPTRAIN_SEGMENT_MAX, 0, NULL), reply(UDPTRAIN_SEGMENT_MAX, 0, NULL),
        reply(UDPTRAIN_SEGMENT_MAX + 1, 0, NULL), reply(UDPTRAIN_SEGMENT_MAX + 1, 0, NULL)};
    is_str(plan(big, 4, true), "[0 1][2][3]", "replies over the segment limit travel alone");

    struct udptrain_reply full[UDPTRAIN_BATCH_MAX];
    for (size_t i = 0; i < UDPTRAIN_BATCH_MAX; i++)
        full[i] = reply(i % 2 ? 60 : 61, 0, NULL);
    size_t order[UDPTRAIN_BATCH_MAX];
    struct udptrain trains[UDPTRAIN_BATCH_MAX];
    size_t nt = udptrain_plan(full, UDPTRAIN_BATCH_MAX, true, order, trains);
    is_int(nt, 2, "a full batch of two sizes: two trains");
    bool seen[UDPTRAIN_BATCH_MAX] = {false};
    size_t total = 0, twice = 0;
    for (size_t t = 0; t < nt; t++) {
        for (size_t k = 0; k < trains[t].count; k++) {
            size_t i = order[trains[t].first + k];
            twice += seen[i];
            seen[i] = true;
            total++;
        }
    }
    is_int(total, UDPTRAIN_BATCH_MAX, "every reply in a train");
    is_int(twice, 0, "none twice");
    is_int(trains[0].count, UDPTRAIN_BATCH_MAX / 2, "32 in the first train");

    /* The message of a train: its replies in order, the reply's source
     * address, the segment size only when there is more than one. */
    static const char data[4][4] = {"r0", "r1", "r2", "r3"};
    union {
        char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } src = {0};
    src.align = (struct cmsghdr){.cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo)),
                                 .cmsg_level = IPPROTO_IP,
                                 .cmsg_type = IP_PKTINFO};
    struct udptrain_reply msgs[] = {reply(60, 1, NULL), reply(72, 1, NULL), reply(60, 1, NULL),
                                    reply(60, 2, NULL)};
    for (size_t i = 0; i < 4; i++) {
        msgs[i].data = data[i];
        msgs[i].ctl = i < 3 ? src.buf : NULL;
        msgs[i].ctllen = i < 3 ? sizeof(src.buf) : 0;
    }
    nt = udptrain_plan(msgs, 4, true, order, trains);
    struct iovec iov[4];
    struct msghdr m;
    union udptrain_ctl ctl;
    udptrain_message(msgs, order, &trains[0], iov, &m, &ctl);
    ok(m.msg_iovlen == 2 && m.msg_iov[0].iov_base == data[0] && m.msg_iov[1].iov_base == data[2] &&
           m.msg_iov[1].iov_len == 60,
       "a train's iovecs are its replies, in order");
    ok(m.msg_name == &peers[1] && m.msg_namelen == sizeof(peers[1]), "sent to their client");
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    ok(c && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO,
       "with their source address first");
    c = c ? CMSG_NXTHDR(&m, c) : NULL;
    uint16_t size = 0;
    if (c && c->cmsg_level == SOL_UDP)
        memcpy(&size, CMSG_DATA(c), sizeof(size));
    is_int(size, 60, "then the segment size");
    ok(c && !CMSG_NXTHDR(&m, c), "and nothing else");

    udptrain_message(msgs, order, &trains[2], iov, &m, &ctl);
    ok(m.msg_iovlen == 1 && m.msg_iov[0].iov_base == data[3] && !m.msg_control &&
           m.msg_controllen == 0,
       "a lone reply without control data: no control message at all");
    return done_testing();
}
