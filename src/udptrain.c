/* udptrain.c -- group a batch of UDP replies for segmentation offload. */
#include "svcmapd/udptrain.h"

#include <assert.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <string.h>

static bool same_train(const struct udptrain_reply *a, const struct udptrain_reply *b)
{
    return a->len == b->len && a->peerlen == b->peerlen && a->ctllen == b->ctllen &&
           memcmp(a->peer, b->peer, a->peerlen) == 0 &&
           (a->ctllen == 0 || memcmp(a->ctl, b->ctl, a->ctllen) == 0);
}

size_t udptrain_plan(const struct udptrain_reply *r, size_t n, bool gso, size_t *order,
                     struct udptrain *trains)
{
    /* A batch is a few dozen replies: the quadratic scan costs a few
     * hundred length compares, less than sorting would. */
    assert(n <= UDPTRAIN_BATCH_MAX);
    uint64_t taken = 0;
    size_t norder = 0, ntrains = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].len == 0 || (taken >> i) & 1)
            continue;
        struct udptrain *t = &trains[ntrains++];
        *t = (struct udptrain){.first = norder, .count = 1};
        order[norder++] = i;
        if (!gso || r[i].len > UDPTRAIN_SEGMENT_MAX)
            continue;
        for (size_t j = i + 1; j < n; j++) {
            if ((taken >> j) & 1 || !same_train(&r[i], &r[j]))
                continue;
            taken |= UINT64_C(1) << j;
            order[norder++] = j;
            t->count++;
        }
    }
    return ntrains;
}

void udptrain_message(const struct udptrain_reply *r, const size_t *order, const struct udptrain *t,
                      struct iovec *iov, struct msghdr *m, union udptrain_ctl *ctl)
{
    const struct udptrain_reply *first = &r[order[t->first]];
    for (size_t k = 0; k < t->count; k++) {
        const struct udptrain_reply *one = &r[order[t->first + k]];
        iov[t->first + k] = (struct iovec){(void *)(uintptr_t)one->data, one->len};
    }
    *m = (struct msghdr){
        .msg_name = (void *)(uintptr_t)first->peer,
        .msg_namelen = first->peerlen,
        .msg_iov = &iov[t->first],
        .msg_iovlen = t->count,
    };
    size_t cl = first->ctllen;
    assert(cl <= CMSG_SPACE(sizeof(struct in6_pktinfo)));
    if (cl) /* a reply without packet info has no ctl at all: memcpy wants a pointer */
        memcpy(ctl->buf, first->ctl, cl);
#ifdef UDP_SEGMENT
    if (t->count > 1) {
        struct cmsghdr *c = (struct cmsghdr *)(void *)(ctl->buf + cl);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t size = (uint16_t)first->len;
        memcpy(CMSG_DATA(c), &size, sizeof(size));
        cl += CMSG_SPACE(sizeof(uint16_t));
    }
#endif
    if (cl) {
        m->msg_control = ctl->buf;
        m->msg_controllen = cl;
    }
}
