/*
 * fuzz_sip_tsx.c: libFuzzer entry for the transaction layer.
 *
 * The input is a script of records, each an op byte, a 16-bit little-endian length
 * and that many payload bytes.  Ops: a message received over UDP or TCP (parsed and
 * validated first, as the proxy does), time moving on, a response built for one of
 * the live server transactions with a chosen status, raw bytes given as a response,
 * a client transaction from the payload, a CANCEL lookup.  A layer with a small cap
 * (8) makes the cap paths reachable.
 *
 * Checked: the transaction count always equals the transactions seen created and not
 * yet terminated, never passes the cap; on_terminated comes once per transaction;
 * deadlines handed out are never in the past after advance(); and at the end, once
 * every server transaction has been answered and time has run far ahead, nothing is
 * left (no leak, valgrind/ASan see no lost memory).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_tsx.h"

#define CAP 8
#define LIVE_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
    struct sip_tsx *live[LIVE_MAX];
    size_t nlive;
};

static void check(int cond)
{
    if (!cond)
        abort();
}

static void live_add(struct state *s, struct sip_tsx *t)
{
    for (size_t i = 0; i < s->nlive; i++)
        check(s->live[i] != t);
    check(s->nlive < LIVE_MAX);
    s->live[s->nlive++] = t;
}

static int on_send(const char *bytes, size_t len, const struct sip_tsx_dest *dest, void *arg)
{
    (void)arg;
    (void)dest;
    check(len > 0 && bytes != NULL);
    return 0;
}

static void on_request(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                       const struct sip_tsx_dest *src, void *arg)
{
    (void)msg;
    (void)raw;
    (void)src;
    if (t != NULL) {
        check(!sip_tsx_is_client(t));
        live_add(arg, t);
    }
}

static void on_response(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                        const struct sip_tsx_dest *src, void *arg)
{
    (void)raw;
    (void)src;
    (void)arg;
    check(msg->status >= 100 && msg->status <= 699);
    if (t != NULL)
        check(sip_tsx_is_client(t));
}

static void on_terminated(struct sip_tsx *t, void *arg)
{
    struct state *s = arg;
    for (size_t i = 0; i < s->nlive; i++) {
        if (s->live[i] == t) {
            s->live[i] = s->live[--s->nlive];
            return;
        }
    }
    abort(); /* terminated twice, or never seen created */
}

static struct sip_tsx_dest dest_of(enum sip_tsx_transport tr)
{
    struct sip_tsx_dest d;
    struct sockaddr_in *sin = (struct sockaddr_in *)&d.addr;
    memset(&d, 0, sizeof(d));
    d.transport = tr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(5070);
    sin->sin_addr.s_addr = htonl(0x7f000001);
    d.conn_id = tr == SIP_TSX_UDP ? 0 : 1;
    return d;
}

static void respond_status(struct sip_tsx *t, unsigned status, uint64_t now)
{
    struct sip_msg req;
    struct p2p_slice r = sip_tsx_request(t);
    struct sip_resp resp = {.status = status, .to_tag = P2P_SLICE_LIT("ft")};
    struct p2p_buf b;

    if (sip_msg_parse(&req, r.p, r.len, SIP_MSG_DGRAM, NULL) <= 0)
        return;
    p2p_buf_init(&b, SIP_MSG_MAX_SIZE);
    if (sip_build_response(&req, &resp, &b) == 0)
        (void)sip_tsx_server_respond(t, b.data, b.len, now);
    p2p_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sip_msg msg;
    struct state s = {.nlive = 0};
    struct sip_tsx_config cfg;
    struct sip_tsx_ops ops = {on_send, on_request, on_response, NULL, NULL, on_terminated, &s};
    struct sip_tsx_layer *l;
    uint64_t now = 1000;
    size_t off = 0;

    sip_tsx_config_default(&cfg);
    cfg.max_tsx = CAP;
    cfg.timer_c_ms = 181000; /* else a client INVITE in Proceeding waits for its TU */
    if (sip_tsx_layer_new(&l, &cfg, &ops) != 0)
        abort();
    while (off + 3 <= size) {
        uint8_t op = data[off];
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off)
            len = size - off;
        const char *p = (const char *)data + off;
        off += len;

        switch (op % 7) {
        case 0:
        case 1: {
            struct sip_tsx_dest src = dest_of(op % 7 == 0 ? SIP_TSX_UDP : SIP_TSX_TCP);
            if (sip_msg_parse(&msg, p, len, SIP_MSG_DGRAM, NULL) > 0 &&
                sip_msg_validate(&msg, NULL) == 0) {
                int rc = sip_tsx_layer_recv(l, &msg, (struct p2p_slice){p, len}, &src, now);
                check(rc == 0 || rc == -ENOBUFS || rc == -EBADMSG || rc == -EMSGSIZE);
            }
            break;
        }
        case 2: {
            uint64_t step = len >= 2 ? ((uint64_t)(uint8_t)p[0] | (uint64_t)(uint8_t)p[1] << 8) : 0;
            now += step * 10;
            sip_tsx_layer_advance(l, now);
            check(sip_tsx_layer_next_deadline(l) > now); /* everything due has run */
            break;
        }
        case 3:
            if (s.nlive > 0 && len >= 3) {
                struct sip_tsx *t = s.live[(uint8_t)p[0] % s.nlive];
                unsigned status =
                    100 + ((unsigned)(uint8_t)p[1] | (unsigned)(uint8_t)p[2] << 8) % 600;
                if (!sip_tsx_is_client(t))
                    respond_status(t, status, now);
            }
            break;
        case 4:
            if (s.nlive > 0 && len >= 1) {
                struct sip_tsx *t = s.live[(uint8_t)p[0] % s.nlive];
                if (!sip_tsx_is_client(t))
                    (void)sip_tsx_server_respond(t, p + 1, len - 1, now);
            }
            break;
        case 5: {
            struct sip_tsx *t = NULL;
            struct sip_tsx_dest d = dest_of(len % 2 ? SIP_TSX_UDP : SIP_TSX_TCP);
            if (sip_tsx_client_new(l, &t, p, len, &d, NULL, now) == 0)
                live_add(&s, t);
            break;
        }
        case 6: {
            struct sip_tsx *t = NULL;
            if (sip_msg_parse(&msg, p, len, SIP_MSG_DGRAM, NULL) > 0 &&
                sip_msg_validate(&msg, NULL) == 0 && sip_tsx_layer_match_cancel(l, &msg, &t) == 0)
                check(t != NULL && !sip_tsx_is_client(t) && sip_tsx_is_invite(t));
            break;
        }
        }
        check(sip_tsx_layer_count(l) == s.nlive);
        check(sip_tsx_layer_count(l) <= CAP);
    }

    /* Answer what the TU still owes, then let every timer run out. */
    for (size_t i = 0; i < s.nlive; i++) {
        enum sip_tsx_state st = sip_tsx_state(s.live[i]);
        if (!sip_tsx_is_client(s.live[i]) && (st == SIP_TSX_TRYING || st == SIP_TSX_PROCEEDING))
            respond_status(s.live[i], 500, now);
    }
    for (int i = 0; i < 4; i++) {
        now += 10u * 1000 * 1000;
        sip_tsx_layer_advance(l, now);
    }
    check(sip_tsx_layer_count(l) == 0);
    check(s.nlive == 0);
    check(sip_tsx_layer_next_deadline(l) == UINT64_MAX);
    sip_tsx_layer_free(l);
    return 0;
}
