/*
 * fuzz_sip_proxy.c: libFuzzer entry for the proxy core and the registrar behind it.
 *
 * The input is a script of records: an op byte, a 16-bit little-endian length and
 * that many payload bytes.  Ops: bytes received from a phone (UDP or TCP) or from
 * a downstream element; a response with a chosen status to one of the requests the
 * proxy sent (so forwarding, forking, CANCEL and best-response code run deep);
 * completing the pending locator lookups with 0..3 bindings, -ENOENT or an error;
 * time moving on.  The proxy runs with a real registrar and the local locator for
 * REGISTERs, and a scripted locator for lookups.
 *
 * Checked: every message the proxy sends parses; at the end, once every lookup has
 * completed and time has run far ahead, no request context and no transaction is
 * left (with ASan: nothing leaked).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_locator.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_proxy.h"
#include "p2p/sip_registrar.h"
#include "p2p/sip_tsx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SENT_KEEP 8
#define LOOKUPS_MAX 16

struct state {
    struct sip_self self;
    struct sip_proxy *proxy;
    struct sip_registrar *reg;
    struct sip_locator_local *loc;
    uint64_t now;
    /* the last requests sent, to answer them */
    char sent[SENT_KEEP][4096];
    size_t sent_len[SENT_KEEP];
    struct sip_tsx_dest sent_dest[SENT_KEEP];
    size_t nsent;
    /* pending scripted lookups */
    sip_locator_lookup_cb lk_cb[LOOKUPS_MAX];
    void *lk_arg[LOOKUPS_MAX];
    size_t nlk;
};

static void check(int cond)
{
    if (!cond)
        abort();
}

static int on_send(const char *bytes, size_t len, const struct sip_tsx_dest *dest, void *arg)
{
    struct state *s = arg;
    struct sip_msg m;

    check(sip_msg_parse(&m, bytes, len, SIP_MSG_DGRAM, NULL) > 0);
    if (m.is_request && len < sizeof(s->sent[0])) {
        size_t i = s->nsent++ % SENT_KEEP;
        memcpy(s->sent[i], bytes, len);
        s->sent_len[i] = len;
        s->sent_dest[i] = *dest;
    }
    return 0;
}

static int lookup(void *ctx, const char *aor, sip_locator_lookup_cb cb, void *arg)
{
    struct state *s = ctx;

    (void)aor;
    if (s->nlk == LOOKUPS_MAX)
        return -EAGAIN;
    s->lk_cb[s->nlk] = cb;
    s->lk_arg[s->nlk] = arg;
    s->nlk++;
    return 0;
}

static int publish(void *ctx, const struct sip_binding_change *c, size_t n,
                   sip_locator_publish_cb cb, void *arg)
{
    struct state *s = ctx;
    struct sip_locator l = sip_locator_local_get(s->loc);
    return l.ops->publish(l.ctx, c, n, cb, arg);
}

static const struct sip_locator_ops ops = {.lookup = lookup, .publish = publish};

static void complete_lookups(struct state *s, uint8_t how)
{
    struct sip_binding b[3];
    size_t n = how % 4;

    memset(b, 0, sizeof(b));
    for (size_t i = 0; i < n; i++) {
        strcpy(b[i].aor, "sip:bob@example.org");
        b[i].contact[0] = '\0';
        memcpy(b[i].contact, "sip:bob@127.0.0.1:600", 21);
        b[i].contact[21] = (char)('1' + i);
        b[i].contact[22] = '\0';
        b[i].q = (uint16_t)((how >> 2) & 1 ? 1000 - 100 * i : 1000);
        b[i].expires_ms = s->now + 60000;
        if ((how >> 3) & 1) {
            strcpy(b[i].path.host, "127.0.0.1");
            b[i].path.port = (uint16_t)(6001 + i);
            strcpy(b[i].path.transport, (how >> 4) & 1 ? "TCP" : "UDP");
        }
    }
    while (s->nlk > 0) {
        s->nlk--;
        int status = how >= 0xf0 ? -ENOENT : how >= 0xe0 ? -ETIMEDOUT : 0;
        s->lk_cb[s->nlk](status, b, status ? 0 : n, s->lk_arg[s->nlk]);
    }
}

static void answer(struct state *s, const uint8_t *p, size_t len)
{
    struct sip_msg m;
    struct sip_resp r;
    struct p2p_buf out;
    size_t i;
    static const unsigned codes[] = {100, 180, 183, 200, 202, 301, 401, 404,
                                     407, 408, 480, 486, 487, 500, 503, 603};

    if (len < 2 || s->nsent == 0)
        return;
    i = (s->nsent - 1 - p[0] % (s->nsent < SENT_KEEP ? s->nsent : SENT_KEEP)) % SENT_KEEP;
    if (sip_msg_parse(&m, s->sent[i], s->sent_len[i], SIP_MSG_DGRAM, NULL) <= 0)
        return;
    memset(&r, 0, sizeof(r));
    r.status = codes[p[1] % 16];
    r.to_tag = P2P_SLICE_LIT("fz");
    if (r.status == 401)
        r.extra = P2P_SLICE_LIT("WWW-Authenticate: Digest realm=\"a\", nonce=\"b\"\r\n");
    if (r.status == 407)
        r.extra = P2P_SLICE_LIT("Proxy-Authenticate: Digest realm=\"c\", nonce=\"d\"\r\n");
    p2p_buf_init(&out, 65536);
    if (sip_build_response(&m, &r, &out) == 0)
        (void)sip_proxy_recv(s->proxy, out.data, out.len, &s->sent_dest[i], s->now);
    p2p_buf_free(&out);
}

static struct sip_tsx_dest from(uint8_t which, bool tcp)
{
    struct sip_tsx_dest d;
    const char *ip = which ? "192.0.2.9" : "127.0.0.1";
    uint16_t port = which ? 5060 : 5070;

    (void)sip_proxy_numeric_dest(p2p_slice_cstr(ip), port,
                                 tcp ? P2P_SLICE_LIT("tcp") : P2P_SLICE_LIT("udp"), tcp ? 7 : 0,
                                 &d);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct state s;
    struct sip_proxy_config pc;
    struct sip_registrar_config rc;
    size_t pos = 0;

    memset(&s, 0, sizeof(s));
    s.self.default_port = 5062;
    check(sip_self_add_addr(&s.self, "10.0.0.1", 5062) == 0);
    check(sip_self_add_domain(&s.self, "example.org") == 0);
    check(sip_locator_local_new(&s.loc, 8) == 0);
    sip_proxy_config_default(&pc);
    pc.self = &s.self;
    pc.send = on_send;
    pc.send_arg = &s;
    pc.locator.ops = &ops;
    pc.locator.ctx = &s;
    pc.foreign = size > 0 ? (enum sip_proxy_foreign)(data[0] % 3) : SIP_PROXY_FOREIGN_404;
    pc.keepalive_ms = 20000;
    pc.keepalive_remove = true;
    pc.max_requests = 16;
    pc.tsx.max_tsx = 64;
    check(sip_proxy_new(&s.proxy, &pc) == 0);
    sip_registrar_config_default(&rc);
    rc.locator.ops = &ops;
    rc.locator.ctx = &s;
    rc.self = &s.self;
    rc.reply = sip_proxy_registrar_reply;
    rc.reply_arg = s.proxy;
    rc.max_aors = 4;
    rc.max_contacts = 3;
    check(sip_registrar_new(&s.reg, &rc) == 0);
    sip_locator_local_attach(s.loc, s.reg);
    sip_proxy_set_registrar(s.proxy, s.reg);

    while (pos + 3 <= size) {
        uint8_t op = data[pos];
        size_t len = (size_t)data[pos + 1] | ((size_t)data[pos + 2] << 8);
        const uint8_t *p = data + pos + 3;
        struct sip_tsx_dest d;

        pos += 3;
        if (len > size - pos)
            len = size - pos;
        pos += len;
        switch (op % 6) {
        case 0: /* from the phone */
        case 1: /* from downstream */
            d = from(op % 6, (op >> 3) & 1);
            (void)sip_proxy_recv(s.proxy, (const char *)p, len, &d, s.now);
            break;
        case 2:
            answer(&s, p, len);
            break;
        case 3:
            complete_lookups(&s, len ? p[0] : 0);
            break;
        case 4:
            (void)sip_locator_local_run(s.loc, s.now);
            break;
        case 5: {
            uint64_t dt = len ? (uint64_t)p[0] * 1000u : 500;
            s.now += dt;
            sip_proxy_advance(s.proxy, s.now);
            sip_registrar_advance(s.reg, s.now);
            break;
        }
        }
    }
    /* drain: every lookup and publish completes, time runs far ahead */
    complete_lookups(&s, 0xf0);
    (void)sip_locator_local_run(s.loc, s.now);
    for (int i = 0; i < 400; i++) {
        s.now += 1000;
        sip_proxy_advance(s.proxy, s.now);
        complete_lookups(&s, 0xf0);
        (void)sip_locator_local_run(s.loc, s.now);
    }
    /* what is left: INVITE server transactions waiting for an ACK that never comes
     * end by Timer H; nothing may remain after 400 s */
    check(sip_proxy_requests(s.proxy) == 0);
    sip_locator_local_free(s.loc);
    sip_proxy_free(s.proxy);
    sip_registrar_free(s.reg);
    return 0;
}
