/*
 * test_sip_proxy_lifetime.c: when the proxy frees a request context (sip_proxy.h,
 * proxy.c "Lifetime invariants").
 *
 * A proxied request's context goes as soon as it has nothing left to do (final
 * response forwarded upstream, every branch final): the transactions then linger
 * alone (RFC 3261 17.2.1/17.2.2 Timers J and H, RFC 6026 Timers L and M) and
 * absorb retransmissions, and a 2xx retransmitted by the UAS still reaches the
 * caller (RFC 6026 7.2, forwarded statelessly by the next Via).  This is what
 * keeps the proxy's request cap from filling with 32 s of finished calls.
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
#include "p2p/sip_tsx.h"

#define PROXY_FIXTURE_MAX_SENT 32
#define PROXY_FIXTURE_SENT_BYTES 4096
#include "proxy_fixture.h"

/* Completes the pending lookup: bob at 127.0.0.1:6001, or unknown. */
static void lookup_complete(struct fixture *f, bool known)
{
    struct sip_binding b;
    sip_locator_lookup_cb cb = f->lk_cb;

    assert_non_null(cb);
    f->lk_cb = NULL;
    memset(&b, 0, sizeof(b));
    strcpy(b.aor, "sip:bob@example.org");
    strcpy(b.contact, "sip:bob@127.0.0.1:6001");
    b.q = 1000;
    b.expires_ms = 3600000;
    cb(known ? 0 : -ENOENT, &b, known ? 1 : 0, f->lk_arg);
}

static void fx_start(struct fixture *f)
{
    struct sip_proxy_config cfg;

    fx_config(f, &cfg);
    fx_proxy_new(f, &cfg, false);
}

static int last_sent(struct fixture *f, const char *method, unsigned status, uint16_t port)
{
    for (size_t i = f->nsent; i-- > 0;) {
        struct sent *s = &f->sent[i];
        if (port_of(&s->dest) != port)
            continue;
        if (method ? (s->m.is_request && p2p_slice_eq(s->m.method, p2p_slice_cstr(method)))
                   : (!s->m.is_request && s->m.status == status))
            return (int)i;
    }
    return -1;
}

/* The UAS at the address sent[i] went to answers it. */
static void answer(struct fixture *f, int i, unsigned status)
{
    struct sent *s = &f->sent[i];
    struct sip_resp r;
    struct p2p_buf out;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.to_tag = P2P_SLICE_LIT("b1");
    if (status >= 200 && status < 300 && p2p_slice_eq(s->m.method, P2P_SLICE_LIT("INVITE")))
        r.extra = P2P_SLICE_LIT("Contact: <sip:bob@127.0.0.1:6001>\r\n");
    p2p_buf_init(&out, 65536);
    assert_int_equal(sip_build_response(&s->m, &r, &out), 0);
    assert_int_equal(sip_proxy_recv(f->proxy, out.data, out.len, &s->dest, f->now), 0);
    p2p_buf_free(&out);
}

static const char *invite_bob = "INVITE sip:bob@example.org SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-life1;rport\r\n"
                                "Max-Forwards: 70\r\n"
                                "From: <sip:alice@example.org>;tag=a1\r\n"
                                "To: <sip:bob@example.org>\r\n"
                                "Call-ID: life-1\r\n"
                                "CSeq: 1 INVITE\r\n"
                                "Contact: <sip:alice@127.0.0.1:5070>\r\n"
                                "Content-Length: 0\r\n\r\n";

static const char *bye_bob = "BYE sip:bob@127.0.0.1:6001 SIP/2.0\r\n"
                             "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-life2;rport\r\n"
                             "Max-Forwards: 70\r\n"
                             "Route: <sip:10.0.0.1:5062;lr>\r\n"
                             "From: <sip:alice@example.org>;tag=a1\r\n"
                             "To: <sip:bob@example.org>;tag=b1\r\n"
                             "Call-ID: life-1\r\n"
                             "CSeq: 2 BYE\r\n"
                             "Content-Length: 0\r\n\r\n";

/* INVITE: context freed with the 2xx forwarded; retransmissions both ways still
 * handled by the lingering transactions. */
static void test_invite_context_freed_at_2xx(void **state)
{
    static struct fixture f;
    int inv, ok;
    (void)state;

    fx_start(&f);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    lookup_complete(&f, true);
    inv = last_sent(&f, "INVITE", 0, 6001);
    assert_true(inv > 0);
    answer(&f, inv, 180);
    assert_int_equal(sip_proxy_requests(f.proxy), 1); /* still waiting for a final */
    answer(&f, inv, 200);
    assert_int_equal(count_sent(&f, NULL, 200, 5070), 1);
    /* Nothing left to do: the context is gone, the transactions are not
     * (server in Accepted, client in Accepted: RFC 6026 Timers L and M). */
    assert_int_equal(sip_proxy_requests(f.proxy), 0);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 2);

    /* The caller retransmits its INVITE: absorbed by the server transaction, not
     * forwarded again and no new context. */
    f.now += 500;
    feed(&f, "127.0.0.1", 5070, invite_bob);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 1);
    assert_int_equal(sip_proxy_requests(f.proxy), 0);

    /* The UAS retransmits its 2xx (the first copy upstream was lost): forwarded
     * upstream without our Via, though the context is gone. */
    answer(&f, inv, 200);
    assert_int_equal(count_sent(&f, NULL, 200, 5070), 2);
    ok = last_sent(&f, NULL, 200, 5070);
    assert_int_equal(sip_msg_hdr_count(&f.sent[ok].m, SIP_HDR_VIA), 1);
    assert_false(has(&f.sent[ok], "10.0.0.1:5062"));
    assert_true(has(&f.sent[ok], "tag=b1"));

    /* Both transactions end 64*T1 after the 2xx. */
    advance(&f, f.now + 64 * 500 + 1);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 0);
    fx_stop(&f);
}

/* Non-INVITE: context freed with the final response; the server transaction
 * in Completed (Timer J) re-sends it to a retransmitted request. */
static void test_bye_context_freed_at_final(void **state)
{
    static struct fixture f;
    int bye;
    (void)state;

    fx_start(&f);
    feed(&f, "127.0.0.1", 5070, bye_bob);
    bye = last_sent(&f, "BYE", 0, 6001);
    assert_true(bye >= 0);
    assert_int_equal(sip_proxy_requests(f.proxy), 1);
    answer(&f, bye, 200);
    assert_int_equal(count_sent(&f, NULL, 200, 5070), 1);
    assert_int_equal(sip_proxy_requests(f.proxy), 0);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 2);

    f.now += 500;
    feed(&f, "127.0.0.1", 5070, bye_bob);
    assert_int_equal(count_sent(&f, NULL, 200, 5070), 2); /* 17.2.2: the final again */
    assert_int_equal(count_sent(&f, "BYE", 0, 6001), 1);  /* not forwarded again */
    assert_int_equal(sip_proxy_requests(f.proxy), 0);

    /* Timer K (T4) ends the client, Timer J (64*T1) the server. */
    advance(&f, f.now + 5000);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 1);
    advance(&f, f.now + 64 * 500);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 0);
    fx_stop(&f);
}

/* A request answered by the proxy itself (unknown AoR) keeps no context. */
static void test_own_answer_frees_context(void **state)
{
    static struct fixture f;
    (void)state;

    fx_start(&f);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    assert_int_equal(sip_proxy_requests(f.proxy), 1); /* lookup pending */
    lookup_complete(&f, false);
    assert_int_equal(count_sent(&f, NULL, 404, 5070), 1);
    assert_int_equal(sip_proxy_requests(f.proxy), 0);
    /* The server transaction still waits for the ACK of its 404 (17.2.1). */
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 1);
    advance(&f, f.now + 64 * 500 + 1);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 0);
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invite_context_freed_at_2xx),
        cmocka_unit_test(test_bye_context_freed_at_final),
        cmocka_unit_test(test_own_answer_frees_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
