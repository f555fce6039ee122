/*
 * test_sip_proxy.c: the stateful proxy (RFC 3261 16) fed real SIP text through
 * the real parser and transaction layer.  Only the network edge (the send
 * callback, which records every message with its destination) and the clock are
 * replaced; the locator is a test double whose lookups complete when the test
 * says so, or the real local locator over a real registrar.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/sip_build.h"
#include "p2p/sip_locator.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_proxy.h"
#include "p2p/sip_registrar.h"
#include "p2p/sip_tsx.h"

/* test locator results, test resolver */
#define PROXY_FIXTURE_EXTRA                                                                        \
    int lk_status;                                                                                 \
    struct sip_binding lk_b[4];                                                                    \
    size_t lk_n;                                                                                   \
    sip_proxy_resolve_cb rs_cb;                                                                    \
    void *rs_arg;                                                                                  \
    char rs_uri[SIP_CONTACT_MAX];
#include "proxy_fixture.h"

/* Completes the pending lookup with what the test set up. */
static void lookup_complete(struct fixture *f)
{
    sip_locator_lookup_cb cb = f->lk_cb;
    assert_non_null(cb);
    f->lk_cb = NULL;
    cb(f->lk_status, f->lk_b, f->lk_n, f->lk_arg);
}

static void add_binding(struct fixture *f, const char *contact, uint16_t q)
{
    struct sip_binding *b = &f->lk_b[f->lk_n++];
    memset(b, 0, sizeof(*b));
    strcpy(b->aor, "sip:bob@example.org");
    snprintf(b->contact, sizeof(b->contact), "%s", contact);
    b->q = q;
    b->expires_ms = 3600000;
}

static uint32_t fx_keepalive_ms; /* set by the keep-alive test only */

static int fake_resolve(void *ctx, const char *uri, sip_proxy_resolve_cb cb, void *arg)
{
    struct fixture *f = ctx;
    assert_null(f->rs_cb);
    f->rs_cb = cb;
    f->rs_arg = arg;
    snprintf(f->rs_uri, sizeof(f->rs_uri), "%s", uri);
    return 0;
}

static void fx_start(struct fixture *f, enum sip_proxy_foreign foreign, bool real_registrar)
{
    struct sip_proxy_config cfg;

    fx_config(f, &cfg);
    assert_int_equal(sip_self_add_addr(&f->self, "127.0.0.1", 5062), 0);
    cfg.foreign = foreign;
    cfg.keepalive_ms = fx_keepalive_ms;
    cfg.resolver.resolve = fake_resolve;
    cfg.resolver.ctx = f;
    cfg.keepalive_remove = true;
    fx_proxy_new(f, &cfg, real_registrar);
}

/* Answers the sent request at index i with status, from the address it went to. */
static void answer_extra(struct fixture *f, int i, unsigned status, const char *to_tag,
                         const char *extra)
{
    struct sent *s = &f->sent[i];
    struct sip_resp r;
    struct p2p_buf out;
    char ip[64];
    struct sip_src src;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.to_tag = p2p_slice_cstr(to_tag);
    if (status >= 200 && status < 300 && s->m.is_request &&
        p2p_slice_eq(s->m.method, P2P_SLICE_LIT("INVITE")))
        r.extra = P2P_SLICE_LIT("Contact: <sip:bob@127.0.0.1:6001>\r\n");
    if (extra)
        r.extra = p2p_slice_cstr(extra);
    p2p_buf_init(&out, 65536);
    assert_int_equal(sip_build_response(&s->m, &r, &out), 0);
    assert_int_equal(sip_tsx_dest_src(&s->dest, ip, sizeof(ip), &src), 0);
    assert_int_equal(sip_proxy_recv(f->proxy, out.data, out.len, &s->dest, f->now), 0);
    p2p_buf_free(&out);
}

static void answer(struct fixture *f, int i, unsigned status, const char *to_tag)
{
    answer_extra(f, i, status, to_tag, NULL);
}

static const char *invite_bob = "INVITE sip:bob@example.org SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-inv1;rport\r\n"
                                "Max-Forwards: 70\r\n"
                                "From: <sip:alice@example.org>;tag=a1\r\n"
                                "To: <sip:bob@example.org>\r\n"
                                "Call-ID: call-1\r\n"
                                "CSeq: 1 INVITE\r\n"
                                "Contact: <sip:alice@127.0.0.1:5070>\r\n"
                                "Content-Length: 0\r\n\r\n";

static void test_fork_200_cancels_other(void **state)
{
    static struct fixture f;
    int i1, i2, k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    /* 100 Trying at once (16.2); the lookup is pending, nothing forwarded yet. */
    assert_int_equal(f.nsent, 1);
    assert_int_equal(f.sent[0].m.status, 100);
    assert_string_equal(f.lk_aor, "sip:bob@example.org");
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    add_binding(&f, "sip:bob@127.0.0.1:6002", 1000);
    lookup_complete(&f);
    i1 = find_sent(&f, 0, "INVITE", 0, 6001);
    i2 = find_sent(&f, 0, "INVITE", 0, 6002);
    assert_true(i1 > 0 && i2 > 0);
    /* 16.6: Request-URI is the contact, Max-Forwards 69, Record-Route, our Via on
     * top with a z9hG4bK branch, the phone's Via got received/rport (RFC 3581). */
    assert_true(p2p_slice_eq(f.sent[i1].m.ruri, P2P_SLICE_LIT("sip:bob@127.0.0.1:6001")));
    assert_true(has(&f.sent[i1], "Max-Forwards: 69\r\n"));
    assert_true(has(&f.sent[i1], "Record-Route: <sip:10.0.0.1:5062;lr>\r\n"));
    assert_true(has(&f.sent[i1], "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK"));
    assert_true(has(&f.sent[i1], "rport=5070"));
    /* 180 from the first: forwarded upstream without our Via. */
    answer(&f, i1, 180, "b1");
    k = find_sent(&f, 0, NULL, 180, 5070);
    assert_true(k > 0);
    assert_false(has(&f.sent[k], "10.0.0.1:5062"));
    assert_int_equal(sip_msg_hdr_count(&f.sent[k].m, SIP_HDR_VIA), 1);
    /* 200 from the second: forwarded at once, and the first branch is CANCELled. */
    answer(&f, i2, 200, "b2");
    k = find_sent(&f, 0, NULL, 200, 5070);
    assert_true(k > 0);
    assert_true(has(&f.sent[k], "tag=b2"));
    k = find_sent(&f, 0, "CANCEL", 0, 6001);
    assert_true(k > 0);
    assert_int_equal(find_sent(&f, 0, "CANCEL", 0, 6002), -1);
    /* The first branch answers 487: acknowledged hop by hop, not forwarded. */
    answer(&f, i1, 487, "b1");
    assert_int_equal(count_sent(&f, NULL, 487, 5070), 0);
    assert_true(find_sent(&f, 0, "ACK", 0, 6001) > 0);
    /* Everything ends and is freed once the transactions are gone. */
    advance(&f, f.now + 64 * 500 + 6000);
    assert_int_equal(sip_proxy_requests(f.proxy), 0);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 0);
    fx_stop(&f);
}

static void test_best_response_6xx(void **state)
{
    static struct fixture f;
    int i1, i2, k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    add_binding(&f, "sip:bob@127.0.0.1:6002", 1000);
    lookup_complete(&f);
    i1 = find_sent(&f, 0, "INVITE", 0, 6001);
    i2 = find_sent(&f, 0, "INVITE", 0, 6002);
    answer(&f, i1, 486, "b1");
    /* one branch still pending: nothing final upstream yet */
    assert_int_equal(count_sent(&f, NULL, 486, 5070), 0);
    answer(&f, i2, 603, "b2");
    /* 16.7 step 6: a 6xx beats a 4xx */
    assert_int_equal(count_sent(&f, NULL, 486, 5070), 0);
    k = find_sent(&f, 0, NULL, 603, 5070);
    assert_true(k > 0);
    assert_true(has(&f.sent[k], "tag=b2"));
    fx_stop(&f);
}

static void test_best_response_4xx_and_503(void **state)
{
    static struct fixture f;
    int i1, i2;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    add_binding(&f, "sip:bob@127.0.0.1:6002", 1000);
    lookup_complete(&f);
    i1 = find_sent(&f, 0, "INVITE", 0, 6001);
    i2 = find_sent(&f, 0, "INVITE", 0, 6002);
    answer(&f, i1, 503, "b1");
    answer(&f, i2, 486, "b2");
    /* the lowest class wins: 486, not 503 */
    assert_int_equal(count_sent(&f, NULL, 486, 5070), 1);
    assert_int_equal(count_sent(&f, NULL, 503, 5070), 0);
    fx_stop(&f);

    /* a lone 503 goes upstream as 500 (16.7 step 6) */
    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    answer(&f, find_sent(&f, 0, "INVITE", 0, 6001), 503, "b1");
    assert_int_equal(count_sent(&f, NULL, 503, 5070), 0);
    assert_int_equal(count_sent(&f, NULL, 500, 5070), 1);
    fx_stop(&f);
}

static void test_q_groups_sequential(void **state)
{
    static struct fixture f;
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6003", 500);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    /* highest q first, alone */
    assert_true(find_sent(&f, 0, "INVITE", 0, 6001) > 0);
    assert_int_equal(find_sent(&f, 0, "INVITE", 0, 6003), -1);
    answer(&f, find_sent(&f, 0, "INVITE", 0, 6001), 480, "b1");
    /* it failed: the next q group is tried, nothing final upstream yet */
    assert_int_equal(count_sent(&f, NULL, 480, 5070), 0);
    k = find_sent(&f, 0, "INVITE", 0, 6003);
    assert_true(k > 0);
    answer(&f, k, 200, "b3");
    assert_int_equal(count_sent(&f, NULL, 200, 5070), 1);
    /* a 2xx retransmitted by the second phone still goes upstream (RFC 6026),
     * although the first group's transaction lingered in Completed meanwhile */
    advance(&f, 20000);
    answer(&f, k, 200, "b3");
    assert_int_equal(count_sent(&f, NULL, 200, 5070), 2);
    /* every transaction ends, and with them the request */
    advance(&f, 60000);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 0);
    assert_int_equal(sip_proxy_requests(f.proxy), 0);
    fx_stop(&f);
}

static void test_all_timeout_408(void **state)
{
    static struct fixture f;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    add_binding(&f, "sip:bob@127.0.0.1:6002", 1000);
    lookup_complete(&f);
    advance(&f, 31000);
    assert_int_equal(count_sent(&f, NULL, 408, 5070), 0);
    /* Timer B (64*T1 = 32 s) on both branches: 408 upstream */
    advance(&f, 32400);
    /* (later copies are the server transaction's Timer G retransmissions) */
    assert_int_equal(count_sent(&f, NULL, 408, 5070), 1);
    /* retransmissions went out meanwhile (Timer A) */
    assert_true(count_sent(&f, "INVITE", 0, 6001) > 3);
    fx_stop(&f);
}

static void test_unknown_and_unavailable(void **state)
{
    static struct fixture f;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    f.lk_status = -ENOENT;
    feed(&f, "127.0.0.1", 5070, invite_bob);
    lookup_complete(&f);
    assert_int_equal(count_sent(&f, NULL, 404, 5070), 1);
    fx_stop(&f);

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob); /* known AoR, no binding */
    lookup_complete(&f);
    assert_int_equal(count_sent(&f, NULL, 480, 5070), 1);
    fx_stop(&f);
}

/* An INVITE for user@example.org from 127.0.0.1:port (Call-ID and branch from port). */
static void feed_invite(struct fixture *f, const char *user, uint16_t port)
{
    char text[1024];
    int n = snprintf(text, sizeof(text),
                     "INVITE sip:%s@example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bK-inv%u;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:alice@example.org>;tag=a1\r\n"
                     "To: <sip:%s@example.org>\r\n"
                     "Call-ID: call-%u\r\n"
                     "CSeq: 1 INVITE\r\n"
                     "Contact: <sip:alice@127.0.0.1:%u>\r\n"
                     "Content-Length: 0\r\n\r\n",
                     user, port, port, user, port, port);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    feed(f, "127.0.0.1", port, text);
    assert_int_equal(sip_locator_local_run(f->loc, f->now), 1); /* the lookup */
}

/* bob REGISTERs over UDP from 127.0.0.1:6001 (Call-ID reg-1) at f->now: 200. */
static void register_bob(struct fixture *f, unsigned cseq, const char *expires)
{
    char text[1024];
    int before = count_sent(f, NULL, 200, 6001);
    int n = snprintf(text, sizeof(text),
                     "REGISTER sip:example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-reg%u;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:bob@example.org>;tag=r1\r\n"
                     "To: <sip:bob@example.org>\r\n"
                     "Call-ID: reg-1\r\nCSeq: %u REGISTER\r\n"
                     "Contact: <sip:bob@127.0.0.1:6001>\r\n"
                     "Expires: %s\r\n"
                     "Content-Length: 0\r\n\r\n",
                     cseq, cseq, expires);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    feed(f, "127.0.0.1", 6001, text);
    assert_int_equal(sip_locator_local_run(f->loc, f->now), 1); /* the publish */
    assert_int_equal(count_sent(f, NULL, 200, 6001), before + 1);
}

static const char *message_bob = "MESSAGE sip:bob@example.org SIP/2.0\r\n"
                                 "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-msg1;rport\r\n"
                                 "Max-Forwards: 70\r\n"
                                 "From: <sip:alice@example.org>;tag=a1\r\n"
                                 "To: <sip:bob@example.org>\r\n"
                                 "Call-ID: msg-1\r\n"
                                 "CSeq: 1 MESSAGE\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 5\r\n\r\nhello";

/* A phone's MESSAGE to an AoR with no live binding goes to the locator's keep:
 * 202 when kept, 404/513/480 as keep says; an INVITE is never kept. */
static void test_message_kept_offline(void **state)
{
    static struct fixture f;
    static const struct {
        int lk_status, kp_status;
        unsigned want;
    } cases[] = {
        {-ENOENT, 0, 202},   {0, 0, 202},          {-ENOENT, -ENOENT, 404},
        {0, -EMSGSIZE, 513}, {0, -ETIMEDOUT, 480},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fx_start(&f, SIP_PROXY_FOREIGN_404, false);
        f.keep_on = true;
        f.lk_status = cases[i].lk_status;
        feed(&f, "127.0.0.1", 5070, message_bob);
        lookup_complete(&f);
        assert_non_null(f.kp_cb);
        assert_string_equal(f.kp_aor, "sip:bob@example.org");
        assert_int_equal(f.kp_len, strlen(message_bob));
        assert_int_equal(count_sent(&f, NULL, 0, 5070), 0); /* nothing until kept */
        f.kp_cb(cases[i].kp_status, f.kp_arg);
        f.kp_cb = NULL;
        assert_int_equal(count_sent(&f, NULL, cases[i].want, 5070), 1);
        fx_stop(&f);
    }
    /* An INVITE is not kept; nor is a MESSAGE when the locator cannot keep it. */
    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    f.keep_on = true;
    f.lk_status = -ENOENT;
    feed(&f, "127.0.0.1", 5070, invite_bob);
    lookup_complete(&f);
    assert_null(f.kp_cb);
    assert_int_equal(count_sent(&f, NULL, 404, 5070), 1);
    fx_stop(&f);
    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    f.lk_status = -ENOENT;
    feed(&f, "127.0.0.1", 5070, message_bob);
    lookup_complete(&f);
    assert_int_equal(count_sent(&f, NULL, 404, 5070), 1);
    fx_stop(&f);
    /* A MESSAGE with live targets is forwarded, not kept. */
    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    f.keep_on = true;
    feed(&f, "127.0.0.1", 5070, message_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    assert_null(f.kp_cb);
    assert_true(find_sent(&f, 0, "MESSAGE", 0, 6001) >= 0);
    fx_stop(&f);
}

struct dlv_result {
    int status;
    unsigned calls;
};

static void on_delivered(int status, void *arg)
{
    struct dlv_result *d = arg;
    d->status = status;
    d->calls++;
}

/* sip_proxy_deliver_message: a MESSAGE to each binding of the AoR, the best final
 * status back; 408 when no phone answers; -ENOENT without a binding. */
static void test_deliver_message(void **state)
{
    static struct fixture f;
    struct dlv_result d = {0};
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, true);
    assert_int_equal(sip_proxy_deliver_message(f.proxy, "sip:bob@example.org",
                                               "<sip:alice@example.org>", "text/plain",
                                               (const uint8_t *)"hi", 2, on_delivered, &d, f.now),
                     -ENOENT);
    register_bob(&f, 1, "60");
    assert_int_equal(sip_proxy_deliver_message(
                         f.proxy, "sip:bob@example.org", "\"Alice\" <sip:alice@example.org>",
                         "text/plain", (const uint8_t *)"hello bob", 9, on_delivered, &d, f.now),
                     0);
    k = find_sent(&f, 0, "MESSAGE", 0, 6001);
    assert_true(k >= 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@127.0.0.1:6001")));
    assert_true(has(&f.sent[k], "From: \"Alice\" <sip:alice@example.org>;tag="));
    assert_true(has(&f.sent[k], "To: <sip:bob@example.org>\r\n"));
    assert_true(has(&f.sent[k], "Content-Type: text/plain\r\n"));
    assert_true(has(&f.sent[k], "\r\n\r\nhello bob"));
    assert_int_equal(d.calls, 0);
    answer(&f, k, 200, "b1");
    advance(&f, f.now + 10000); /* Timer K ends the transaction */
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 200);

    /* No answer: 408 once the transaction times out. */
    memset(&d, 0, sizeof(d));
    assert_int_equal(sip_proxy_deliver_message(
                         f.proxy, "sip:bob@example.org", "<sip:alice@example.org>", "text/plain",
                         (const uint8_t *)"again", 5, on_delivered, &d, f.now),
                     0);
    advance(&f, f.now + 40000);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 408);

    /* Cancelled: its callback never runs; freed with the proxy. */
    memset(&d, 0, sizeof(d));
    assert_int_equal(sip_proxy_deliver_message(f.proxy, "sip:bob@example.org",
                                               "<sip:alice@example.org>", "text/plain",
                                               (const uint8_t *)"late", 4, on_delivered, &d, f.now),
                     0);
    sip_proxy_deliver_cancel(f.proxy, &d);
    advance(&f, f.now + 40000);
    assert_int_equal(d.calls, 0);
    fx_stop(&f);
}

/*
 * Issue 3, through the real registrar and local locator: a never-registered AoR
 * gets 404; an AoR whose binding was removed (Expires: 0) or expired gets 480
 * (RFC 3261 21.4.18) while the registrar remembers it (max_expires_s, 86400 s by
 * default), and 404 again once that time has passed.
 */
static void test_known_aor_480_unknown_404(void **state)
{
    static struct fixture f;
    const uint64_t keep = 86400u * 1000u;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, true);
    feed_invite(&f, "carol", 5071); /* never registered */
    assert_true(find_sent(&f, 0, NULL, 404, 5071) >= 0);

    register_bob(&f, 1, "60");
    register_bob(&f, 2, "0"); /* removed */
    feed_invite(&f, "bob", 5072);
    assert_true(find_sent(&f, 0, NULL, 480, 5072) >= 0);
    assert_int_equal(find_sent(&f, 0, NULL, 404, 5072), -1);

    register_bob(&f, 3, "60");
    f.now = 60000; /* the daemon advances the registrar on its deadline */
    assert_int_equal(sip_registrar_next_deadline(f.reg), 60000);
    assert_int_equal(sip_registrar_advance(f.reg, f.now), 1);
    feed_invite(&f, "bob", 5073);
    assert_true(find_sent(&f, 0, NULL, 480, 5073) >= 0);
    assert_int_equal(find_sent(&f, 0, NULL, 404, 5073), -1);
    feed_invite(&f, "carol", 5074);
    assert_true(find_sent(&f, 0, NULL, 404, 5074) >= 0);

    /* The remembering ends max_expires_s after the expiry was seen: 404. */
    f.now = 60000 + keep;
    assert_int_equal(sip_registrar_next_deadline(f.reg), f.now);
    assert_int_equal(sip_registrar_advance(f.reg, f.now), 0);
    assert_int_equal(sip_registrar_aor_count(f.reg), 0);
    feed_invite(&f, "bob", 5075);
    assert_true(find_sent(&f, 0, NULL, 404, 5075) >= 0);
    assert_int_equal(find_sent(&f, 0, NULL, 480, 5075), -1);
    fx_stop(&f);
}

static void test_validation(void **state)
{
    static struct fixture f;
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070,
         "MESSAGE sip:bob@example.org SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-m0\r\n"
         "Max-Forwards: 0\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>\r\n"
         "Call-ID: m0\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(count_sent(&f, NULL, 483, 5070), 1);
    feed(&f, "127.0.0.1", 5070,
         "OPTIONS sip:bob@example.org SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-m1\r\n"
         "Max-Forwards: 10\r\n"
         "Proxy-Require: foo, bar\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>\r\n"
         "Call-ID: m1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, NULL, 420, 5070);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "Unsupported: foo, bar\r\n"));
    /* a request for the proxy itself */
    feed(&f, "127.0.0.1", 5070,
         "OPTIONS sip:10.0.0.1:5062 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-m2\r\n"
         "Max-Forwards: 10\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:10.0.0.1:5062>\r\n"
         "Call-ID: m2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, NULL, 200, 5070);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "Allow: "));
    /* a domain that is not ours, foreign = 404 */
    feed(&f, "127.0.0.1", 5070,
         "MESSAGE sip:carol@other.net SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-m3\r\n"
         "Max-Forwards: 10\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:carol@other.net>\r\n"
         "Call-ID: m3\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(count_sent(&f, NULL, 404, 5070), 1);
    assert_null(f.lk_cb); /* no lookup for it */
    /* garbage that can be answered: a stateless 400 */
    const char *bad = "MESSAGE sip:bob@example.org SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-m4\r\n"
                      "Max-Forwards: 10\r\n"
                      "From: <sip:alice@example.org>;tag=a1\r\n"
                      "To: <sip:bob@example.org>\r\n"
                      "Call-ID: m4\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    struct sip_tsx_dest src = dest_of("127.0.0.1", 5070, SIP_TSX_UDP);
    assert_int_equal(sip_proxy_recv(f.proxy, bad, strlen(bad), &src, 0), -EBADMSG);
    assert_int_equal(count_sent(&f, NULL, 400, 5070), 1);
    /* RFC 4475 3.1.2.1 (badinv01): a top Via that does not parse cannot take
     * received/rport; the 400 still goes, to the source, with the Via as it was */
    const char *badvia = "INVITE sip:bob@example.org SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"
                         "Max-Forwards: 10\r\n"
                         "From: <sip:alice@example.org>;tag=a1\r\n"
                         "To: <sip:bob@example.org>\r\n"
                         "Call-ID: m5\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    src = dest_of("127.0.0.1", 5071, SIP_TSX_UDP);
    assert_int_equal(sip_proxy_recv(f.proxy, badvia, strlen(badvia), &src, 0), -EBADMSG);
    k = find_sent(&f, 0, NULL, 400, 5071);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n"));
    assert_true(has(&f.sent[k], "Call-ID: m5\r\n"));
    fx_stop(&f);
}

static void test_loop_482(void **state)
{
    static struct fixture f;
    int k;
    char again[8192];
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_FORWARD, false);
    feed(&f, "127.0.0.1", 5070,
         "MESSAGE sip:carol@192.0.2.9:5060 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-l1\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:carol@192.0.2.9>\r\n"
         "Call-ID: l1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n");
    /* not our domain, forwarding on: sent to the Request-URI's host */
    k = find_sent(&f, 0, "MESSAGE", 0, 5060);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "Max-Forwards: 69"));
    /* the same request comes back to us: a loop (16.3 step 4), not a spiral */
    memcpy(again, f.sent[k].bytes, f.sent[k].len);
    again[f.sent[k].len] = '\0';
    feed(&f, "192.0.2.9", 5060, again);
    assert_int_equal(count_sent(&f, NULL, 482, 5060), 1);
    fx_stop(&f);
}

static void test_route_popped_and_loose_routing(void **state)
{
    static struct fixture f;
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    /* our own Route (host AND port) is popped, the next one is the hop; the
     * Request-URI stays; no lookup */
    feed(&f, "127.0.0.1", 5070,
         "INVITE sip:bob@example.org SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-r1\r\n"
         "Max-Forwards: 70\r\n"
         "Route: <sip:10.0.0.1:5062;lr>, <sip:192.0.2.20:5080;lr>\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>\r\n"
         "Call-ID: r1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    assert_null(f.lk_cb);
    k = find_sent(&f, 0, "INVITE", 0, 5080);
    assert_true(k >= 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@example.org")));
    assert_false(has(&f.sent[k], "<sip:10.0.0.1:5062;lr>,"));
    assert_true(has(&f.sent[k], "Route: <sip:192.0.2.20:5080;lr>"));
    /* same host, another port: not us, not popped */
    feed(&f, "127.0.0.1", 5070,
         "MESSAGE sip:bob@example.org SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-r2\r\n"
         "Max-Forwards: 70\r\n"
         "Route: <sip:10.0.0.1:5070;lr>\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>\r\n"
         "Call-ID: r2\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, "MESSAGE", 0, 5070);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "Route: <sip:10.0.0.1:5070;lr>"));
    fx_stop(&f);
}

static void test_in_dialog_bye(void **state)
{
    static struct fixture f;
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    /* the last hop of a route set: our Route popped, none left, the Request-URI
     * (bob's contact) is the target, whatever the foreign-domain policy */
    feed(&f, "127.0.0.1", 5070,
         "BYE sip:bob@127.0.0.1:6001 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bye1\r\n"
         "Max-Forwards: 70\r\n"
         "Route: <sip:10.0.0.1:5062;lr>\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>;tag=b2\r\n"
         "Call-ID: call-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n");
    assert_null(f.lk_cb);
    k = find_sent(&f, 0, "BYE", 0, 6001);
    assert_true(k >= 0);
    assert_null(sip_msg_hdr(&f.sent[k].m, SIP_HDR_ROUTE));
    assert_null(sip_msg_hdr(&f.sent[k].m, SIP_HDR_RECORD_ROUTE)); /* not dialog-creating */
    answer(&f, k, 200, "b2");
    assert_int_equal(count_sent(&f, NULL, 200, 5070), 1);
    /* an in-dialog request that does not carry our Route, for an address that is
     * not ours: refused like any relay attempt (foreign = 404) */
    feed(&f, "127.0.0.1", 5070,
         "BYE sip:mallory@192.0.2.66:5060 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bye2\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>;tag=b2\r\n"
         "Call-ID: call-2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(count_sent(&f, "BYE", 0, 5060), 0);
    assert_int_equal(count_sent(&f, NULL, 404, 5070), 1);
    /* ACK to a 2xx with a Route: forwarded statelessly (16.11) */
    feed(&f, "127.0.0.1", 5070,
         "ACK sip:bob@127.0.0.1:6001 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ack1\r\n"
         "Max-Forwards: 70\r\n"
         "Route: <sip:10.0.0.1:5062;lr>\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>;tag=b2\r\n"
         "Call-ID: call-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, "ACK", 0, 6001);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK"));
    assert_null(sip_msg_hdr(&f.sent[k].m, SIP_HDR_ROUTE));
    fx_stop(&f);
}

static const char *cancel_bob = "CANCEL sip:bob@example.org SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-inv1;rport\r\n"
                                "Max-Forwards: 70\r\n"
                                "From: <sip:alice@example.org>;tag=a1\r\n"
                                "To: <sip:bob@example.org>\r\n"
                                "Call-ID: call-1\r\n"
                                "CSeq: 1 CANCEL\r\n"
                                "Content-Length: 0\r\n\r\n";

static void test_cancel_before_answer(void **state)
{
    static struct fixture f;
    int i1, k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    i1 = find_sent(&f, 0, "INVITE", 0, 6001);
    answer(&f, i1, 180, "b1");
    feed(&f, "127.0.0.1", 5070, cancel_bob);
    /* 16.10: 200 to the CANCEL, a CANCEL downstream */
    k = find_sent(&f, 0, NULL, 200, 5070);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "CSeq: 1 CANCEL"));
    k = find_sent(&f, 0, "CANCEL", 0, 6001);
    assert_true(k >= 0);
    answer(&f, k, 200, "b1");
    /* the downstream 487 goes upstream */
    answer(&f, i1, 487, "b1");
    k = find_sent(&f, 0, NULL, 487, 5070);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "CSeq: 1 INVITE"));
    fx_stop(&f);

    /* CANCEL while the lookup is pending: 487 from us, nothing forwarded later */
    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    feed(&f, "127.0.0.1", 5070, cancel_bob);
    assert_int_equal(count_sent(&f, NULL, 487, 5070), 1);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 0);
    /* CANCEL of nothing: 481 */
    feed(&f, "127.0.0.1", 5070,
         "CANCEL sip:bob@example.org SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-none\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>\r\n"
         "Call-ID: call-x\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(count_sent(&f, NULL, 481, 5070), 1);
    fx_stop(&f);
}

static void test_register_then_invite_tcp(void **state)
{
    static struct fixture f;
    struct sip_tsx_dest src;
    const char *reg = "REGISTER sip:example.org SIP/2.0\r\n"
                      "Via: SIP/2.0/TCP 127.0.0.1:6001;branch=z9hG4bK-reg1\r\n"
                      "Max-Forwards: 70\r\n"
                      "From: <sip:bob@example.org>;tag=r1\r\n"
                      "To: <sip:bob@example.org>\r\n"
                      "Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\n"
                      "Contact: <sip:bob@192.168.1.7:6001;transport=tcp>\r\n"
                      "Content-Length: 0\r\n\r\n";
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, true);
    src = dest_of("127.0.0.1", 6001, SIP_TSX_TCP);
    src.conn_id = 42;
    assert_int_equal(sip_proxy_recv(f.proxy, reg, strlen(reg), &src, 0), 0);
    assert_int_equal(f.nsent, 0); /* answered when the publish completes */
    assert_int_equal(sip_locator_local_run(f.loc, 0), 1);
    k = find_sent(&f, 0, NULL, 200, 6001);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "Contact: <sip:bob@192.168.1.7:6001;transport=tcp>;expires=3600"));
    /* INVITE for bob: looked up in the registrar's bindings, sent on bob's own
     * TCP connection (the path), not to the Contact's address */
    feed(&f, "127.0.0.1", 5070, invite_bob);
    assert_int_equal(sip_locator_local_run(f.loc, 0), 1);
    k = find_sent(&f, 0, "INVITE", 0, 6001);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.transport, SIP_TSX_TCP);
    assert_int_equal(f.sent[k].dest.conn_id, 42);
    assert_true(
        p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@192.168.1.7:6001;transport=tcp")));
    assert_true(has(&f.sent[k], "Via: SIP/2.0/TCP 10.0.0.1:5062;branch="));
    fx_stop(&f);
}

static void test_auth_aggregation(void **state)
{
    static struct fixture f;
    int i1, i2, k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    add_binding(&f, "sip:bob@127.0.0.1:6002", 1000);
    lookup_complete(&f);
    i1 = find_sent(&f, 0, "INVITE", 0, 6001);
    i2 = find_sent(&f, 0, "INVITE", 0, 6002);
    answer_extra(&f, i1, 401, "b1", "WWW-Authenticate: Digest realm=\"one\", nonce=\"n1\"\r\n");
    answer_extra(&f, i2, 407, "b2", "Proxy-Authenticate: Digest realm=\"two\", nonce=\"n2\"\r\n");
    /* 16.7 step 7: the chosen 401 carries the 407's challenge too */
    k = find_sent(&f, 0, NULL, 401, 5070);
    assert_true(k >= 0);
    assert_true(has(&f.sent[k], "WWW-Authenticate: Digest realm=\"one\", nonce=\"n1\"\r\n"));
    assert_true(has(&f.sent[k], "Proxy-Authenticate: Digest realm=\"two\", nonce=\"n2\"\r\n"));
    assert_int_equal(sip_msg_hdr_count(&f.sent[k].m, SIP_HDR_WWW_AUTHENTICATE), 1);
    assert_int_equal(count_sent(&f, NULL, 407, 5070), 0);
    fx_stop(&f);
}

static void test_timer_c_cancels(void **state)
{
    static struct fixture f;
    int i1, k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    i1 = find_sent(&f, 0, "INVITE", 0, 6001);
    answer(&f, i1, 180, "b1");
    advance(&f, 199000);
    assert_int_equal(count_sent(&f, "CANCEL", 0, 6001), 0);
    /* 16.8: Timer C (200 s) fires in Proceeding: the branch is CANCELled */
    advance(&f, 200500);
    k = find_sent(&f, 0, "CANCEL", 0, 6001);
    assert_true(k >= 0);
    answer(&f, i1, 487, "b1");
    assert_int_equal(count_sent(&f, NULL, 487, 5070), 1);
    fx_stop(&f);
}

static void test_relay_policy_and_outbound_route(void **state)
{
    static struct fixture f;
    const char *foreign = "MESSAGE sip:carol@other.net SIP/2.0\r\n"
                          "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-f1\r\n"
                          "Max-Forwards: 70\r\n"
                          "Route: <sip:192.0.2.20:5080;lr>\r\n"
                          "From: <sip:alice@example.org>;tag=a1\r\n"
                          "To: <sip:carol@other.net>\r\n"
                          "Call-ID: f1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
    (void)state;

    /* a Route that is not ours does not make us an open relay */
    fx_start(&f, SIP_PROXY_FOREIGN_403, false);
    feed(&f, "127.0.0.1", 5070, foreign);
    assert_int_equal(count_sent(&f, NULL, 403, 5070), 1);
    assert_int_equal(count_sent(&f, "MESSAGE", 0, 5080), 0);
    /* the phone's preloaded Route to us (outbound proxy) for a domain of ours:
     * popped, then looked up */
    feed(&f, "127.0.0.1", 5070,
         "MESSAGE sip:bob@example.org SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-f2\r\n"
         "Max-Forwards: 70\r\n"
         "Route: <sip:127.0.0.1:5062;lr>\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>\r\n"
         "Call-ID: f2\r\nCSeq: 1 MESSAGE\r\nContent-Length: 5\r\n\r\nhello");
    assert_string_equal(f.lk_aor, "sip:bob@example.org");
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    int k = find_sent(&f, 0, "MESSAGE", 0, 6001);
    assert_true(k >= 0);
    assert_null(sip_msg_hdr(&f.sent[k].m, SIP_HDR_ROUTE));
    assert_true(p2p_slice_eq(f.sent[k].m.body, P2P_SLICE_LIT("hello")));
    fx_stop(&f);

    /* the same foreign request with forwarding on goes by its Route */
    fx_start(&f, SIP_PROXY_FOREIGN_FORWARD, false);
    feed(&f, "127.0.0.1", 5070, foreign);
    assert_int_equal(count_sent(&f, "MESSAGE", 0, 5080), 1);
    fx_stop(&f);
}

static void test_keepalive_removes_silent_udp_contact(void **state)
{
    static struct fixture f;
    struct sip_binding b;
    struct sip_binding got[4];
    int k;
    (void)state;

    fx_keepalive_ms = 30000;
    fx_start(&f, SIP_PROXY_FOREIGN_404, true);
    fx_keepalive_ms = 0;
    memset(&b, 0, sizeof(b));
    strcpy(b.aor, "sip:bob@example.org");
    b.q = 1000;
    b.expires_ms = 3600000;
    strcpy(b.path.transport, "UDP");
    strcpy(b.path.host, "127.0.0.1");
    b.path.port = 6001;
    strcpy(b.contact, "sip:bob@127.0.0.1:6001");
    assert_int_equal(sip_registrar_restore(f.reg, &b, 0), 0);
    b.path.port = 6002;
    strcpy(b.contact, "sip:bob@127.0.0.1:6002");
    assert_int_equal(sip_registrar_restore(f.reg, &b, 0), 0);
    strcpy(b.path.transport, "TCP"); /* a TCP phone is not pinged */
    b.path.port = 6003;
    strcpy(b.contact, "sip:bob@127.0.0.1:6003;transport=tcp");
    assert_int_equal(sip_registrar_restore(f.reg, &b, 0), 0);
    advance(&f, 0);
    assert_int_equal(sip_proxy_next_deadline(f.proxy), 30000);
    advance(&f, 30000);
    assert_int_equal(count_sent(&f, "OPTIONS", 0, 6001), 1);
    k = find_sent(&f, 0, "OPTIONS", 0, 6002);
    assert_true(k >= 0);
    assert_int_equal(count_sent(&f, "OPTIONS", 0, 6003), 0);
    /* 6002 answers (405 is an answer too); 6001 stays silent past Timer F */
    answer(&f, k, 405, "x");
    advance(&f, 30000 + 32000);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:bob@example.org", f.now, got, 4), 2);
    for (int i = 0; i < 2; i++)
        assert_string_not_equal(got[i].contact, "sip:bob@127.0.0.1:6001");
    fx_stop(&f);
}

static void test_strict_router_before_us(void **state)
{
    static struct fixture f;
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    /* 16.4: a strict router put our Record-Route URI in the Request-URI and the
     * real one in the last Route */
    feed(&f, "192.0.2.40", 5060,
         "INFO sip:10.0.0.1:5062;lr SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 192.0.2.40:5060;branch=z9hG4bK-s1\r\n"
         "Max-Forwards: 70\r\n"
         "Route: <sip:bob@127.0.0.1:6001>\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>;tag=b2\r\n"
         "Call-ID: s1\r\nCSeq: 3 INFO\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, "INFO", 0, 6001);
    assert_true(k >= 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@127.0.0.1:6001")));
    assert_null(sip_msg_hdr(&f.sent[k].m, SIP_HDR_ROUTE));
    fx_stop(&f);
}

static void test_other_methods(void **state)
{
    static struct fixture f;
    static const char *methods[] = {"MESSAGE", "SUBSCRIBE", "REFER", "PUBLISH", "FOO"};
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char req[1024];
        int k;
        snprintf(req, sizeof(req),
                 "%s sip:bob@example.org SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-o%zu\r\n"
                 "Max-Forwards: 70\r\n"
                 "From: <sip:alice@example.org>;tag=a1\r\n"
                 "To: <sip:bob@example.org>\r\n"
                 "Call-ID: o%zu\r\nCSeq: 1 %s\r\nEvent: presence\r\nRefer-To: <sip:c@x.org>\r\n"
                 "Content-Length: 0\r\n\r\n",
                 methods[i], i, i, methods[i]);
        feed(&f, "127.0.0.1", 5070, req);
        f.lk_n = 0;
        add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
        lookup_complete(&f);
        k = find_sent(&f, 0, methods[i], 0, 6001);
        assert_true(k >= 0);
        /* Record-Route only on dialog-creating requests (16.6 step 4) */
        assert_int_equal(sip_msg_hdr(&f.sent[k].m, SIP_HDR_RECORD_ROUTE) != NULL, i == 1 || i == 2);
        answer(&f, k, 202, "b1");
        assert_true(find_sent(&f, 0, NULL, 202, 5070) >= 0);
        f.nsent = 0;
    }
    fx_stop(&f);
}

static void test_resolver_and_transport_error(void **state)
{
    static struct fixture f;
    struct sip_tsx_dest d;
    const char *msg = "MESSAGE sip:carol@other.net SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d1\r\n"
                      "Max-Forwards: 70\r\n"
                      "From: <sip:alice@example.org>;tag=a1\r\n"
                      "To: <sip:carol@other.net>\r\n"
                      "Call-ID: d1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
    sip_proxy_resolve_cb cb;
    int k;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_FORWARD, false);
    /* a host name: the daemon's RFC 3263 hook is asked, the request waits */
    feed(&f, "127.0.0.1", 5070, msg);
    assert_string_equal(f.rs_uri, "sip:carol@other.net");
    assert_int_equal(f.nsent, 0);
    d = dest_of("192.0.2.50", 5090, SIP_TSX_TCP);
    cb = f.rs_cb;
    f.rs_cb = NULL;
    cb(0, &d, f.rs_arg);
    k = find_sent(&f, 0, "MESSAGE", 0, 5090);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.transport, SIP_TSX_TCP);
    assert_true(has(&f.sent[k], "Via: SIP/2.0/TCP 10.0.0.1:5062;branch="));
    answer(&f, k, 202, "c1");
    assert_int_equal(count_sent(&f, NULL, 202, 5070), 1);
    fx_stop(&f);

    /* resolution fails: 503 for the branch, 500 upstream (16.7 step 6) */
    fx_start(&f, SIP_PROXY_FOREIGN_FORWARD, false);
    feed(&f, "127.0.0.1", 5070, msg);
    cb = f.rs_cb;
    f.rs_cb = NULL;
    cb(-EHOSTUNREACH, NULL, f.rs_arg);
    assert_int_equal(count_sent(&f, NULL, 500, 5070), 1);
    fx_stop(&f);

    /* the transport refuses to send to the only contact: 500 upstream */
    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    f.fail_port = 6001;
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@127.0.0.1:6001", 1000);
    lookup_complete(&f);
    assert_int_equal(count_sent(&f, NULL, 500, 5070), 1);
    advance(&f, 40000);
    assert_int_equal(sip_proxy_requests(f.proxy), 0);
    fx_stop(&f);
}

static void set_path(struct sip_binding *b, const char *host, uint16_t port, const char *tp)
{
    strcpy(b->path.host, host);
    b->path.port = port;
    strcpy(b->path.transport, tp);
}

static void test_contact_or_path(void **state)
{
    static struct fixture f;
    (void)state;

    fx_start(&f, SIP_PROXY_FOREIGN_404, false);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    /* behind NAT: a private Contact, REGISTER from another (public) address: the
     * request goes where the REGISTER came from (RFC 3581) */
    add_binding(&f, "sip:bob@192.168.1.7:5060", 1000);
    set_path(&f.lk_b[0], "198.51.100.5", 40000, "UDP");
    /* registered by a third party on this host: the Contact's own port */
    add_binding(&f, "sip:bob@127.0.0.1:5080", 1000);
    set_path(&f.lk_b[1], "127.0.0.1", 5071, "UDP");
    /* a public Contact registered from elsewhere: the Contact */
    add_binding(&f, "sip:bob@203.0.113.9:5060", 1000);
    set_path(&f.lk_b[2], "198.51.100.6", 5060, "UDP");
    lookup_complete(&f);
    assert_true(find_sent(&f, 0, "INVITE", 0, 40000) >= 0);
    assert_true(find_sent(&f, 0, "INVITE", 0, 5080) >= 0);
    assert_int_equal(find_sent(&f, 0, "INVITE", 0, 5071), -1);
    int k = find_sent(&f, 0, "INVITE", 0, 5060);
    assert_true(k >= 0);
    char ip[64];
    struct sip_src src;
    assert_int_equal(sip_tsx_dest_src(&f.sent[k].dest, ip, sizeof(ip), &src), 0);
    assert_string_equal(ip, "203.0.113.9");
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_200_cancels_other),
        cmocka_unit_test(test_best_response_6xx),
        cmocka_unit_test(test_best_response_4xx_and_503),
        cmocka_unit_test(test_q_groups_sequential),
        cmocka_unit_test(test_all_timeout_408),
        cmocka_unit_test(test_unknown_and_unavailable),
        cmocka_unit_test(test_message_kept_offline),
        cmocka_unit_test(test_deliver_message),
        cmocka_unit_test(test_known_aor_480_unknown_404),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_loop_482),
        cmocka_unit_test(test_route_popped_and_loose_routing),
        cmocka_unit_test(test_in_dialog_bye),
        cmocka_unit_test(test_cancel_before_answer),
        cmocka_unit_test(test_register_then_invite_tcp),
        cmocka_unit_test(test_auth_aggregation),
        cmocka_unit_test(test_timer_c_cancels),
        cmocka_unit_test(test_relay_policy_and_outbound_route),
        cmocka_unit_test(test_keepalive_removes_silent_udp_contact),
        cmocka_unit_test(test_strict_router_before_us),
        cmocka_unit_test(test_other_methods),
        cmocka_unit_test(test_resolver_and_transport_error),
        cmocka_unit_test(test_contact_or_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
