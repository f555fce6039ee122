/*
 * test_sip_proxy_overlay.c: the proxy between phones and the P2P overlay.
 *
 * A binding found through the DHT names a first hop, another node
 * ("sip:<node-id>.node.invalid;lr"), which the node_dest hook maps to a
 * destination reached over the overlay (dest.overlay).  Across that boundary the
 * proxy is known by two names, addrs[0] to its phones and node_host to other
 * nodes, so it Record-Routes twice (RFC 5658 4.1), the name facing the next hop
 * on top, and pops every leading Route value of its own in the dialog's later
 * requests (RFC 3261 16.4), the stateless ACK to a 2xx included (16.11).
 * Completions that arrive late (a lookup, a resolution, a publish) read cfg.clock,
 * so the timers they arm start then and not at the last message.  And an
 * R-URI sip:user@<our host>:<our port> is the AoR sip:user@<our host>.
 *
 * Same scaffolding as test_sip_proxy.c (proxy_fixture.h): the real parser,
 * transaction layer and proxy; the send callback, the clock (f->now), the
 * locator, the resolver and the node_dest hook are test doubles.
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

/* test locator results, node_dest hook, resolver */
#define PROXY_FIXTURE_EXTRA                                                                        \
    struct sip_binding lk_b[4];                                                                    \
    size_t lk_n;                                                                                   \
    int nd_calls;                                                                                  \
    char nd_host[128];                                                                             \
    int clock_calls;                                                                               \
    sip_proxy_resolve_cb rs_cb;                                                                    \
    void *rs_arg;
#include "proxy_fixture.h"

/* This node's name on the overlay, and another node's. */
#define NODE_US "0123456789abcdef0123456789abcdef01234567.node.invalid"
#define NODE_B "fedcba9876543210fedcba9876543210fedcba98.node.invalid"
#define NODE_C "5555555555555555555555555555555555555555.node.invalid"
/* Where the node_dest hook says NODE_B and NODE_C are: overlay set, and a pipe's
 * connection id, which is what the daemon's send callback routes by. */
#define NODE_B_IP "192.0.2.77"
#define NODE_B_PORT 7000
#define NODE_B_CONN 0x10007u
#define NODE_C_PORT 7001
#define NODE_C_CONN 0x20008u
/* Our phone-facing address: addrs[0], which every node of a host shares. */
#define US "127.0.0.1:5062"
/* The start of the Via we put on top (the branch is random). */
#define OUR_VIA "Via: SIP/2.0/UDP " US ";branch=z9hG4bK"
/* Toward another node our Via names us by our node name (a 2xx retransmission
 * forwarded statelessly by it goes back over the overlay). */
#define OUR_NODE_VIA "Via: SIP/2.0/UDP " NODE_US ";branch=z9hG4bK"

enum {
    FX_NODE = 1,      /* self.node_host = NODE_US (also one of addrs) */
    FX_CLOCK = 2,     /* cfg.clock reads f->now */
    FX_FORWARD = 4,   /* foreign domains forwarded (else 404) */
    FX_REGISTRAR = 8, /* real registrar + local locator instead of the fake one */
};

static int fake_node_dest(void *ctx, struct p2p_slice host, struct sip_tsx_dest *out)
{
    struct fixture *f = ctx;

    f->nd_calls++;
    assert_int_equal(p2p_slice_copy(host, f->nd_host, sizeof(f->nd_host)), 0);
    if (p2p_slice_caseeq_cstr(host, NODE_B)) {
        *out = dest_of(NODE_B_IP, NODE_B_PORT, SIP_TSX_UDP);
        out->conn_id = NODE_B_CONN;
    } else if (p2p_slice_caseeq_cstr(host, NODE_C)) {
        *out = dest_of(NODE_B_IP, NODE_C_PORT, SIP_TSX_UDP);
        out->conn_id = NODE_C_CONN;
    } else {
        return -ENOENT; /* not a node we know: the resolver's */
    }
    out->overlay = true;
    return 0;
}

static uint64_t fake_clock(void *arg)
{
    struct fixture *f = arg;
    f->clock_calls++;
    return f->now;
}

static int fake_resolve(void *ctx, const char *uri, sip_proxy_resolve_cb cb, void *arg)
{
    struct fixture *f = ctx;
    (void)uri;
    assert_null(f->rs_cb);
    f->rs_cb = cb;
    f->rs_arg = arg;
    return 0;
}

static void fx_start(struct fixture *f, unsigned flags)
{
    struct sip_proxy_config cfg;

    fx_config(f, &cfg);
    /* self: 127.0.0.1:5062 first (what phones see), NODE_US with our port */
    memset(&f->self, 0, sizeof(f->self));
    f->self.default_port = 5062;
    assert_int_equal(sip_self_add_addr(&f->self, "127.0.0.1", 5062), 0);
    if (flags & FX_NODE) {
        assert_int_equal(sip_self_add_addr(&f->self, NODE_US, 5062), 0);
        snprintf(f->self.node_host, sizeof(f->self.node_host), "%s", NODE_US);
    }
    assert_int_equal(sip_self_add_domain(&f->self, "example.org"), 0);
    cfg.nodes.node_dest = fake_node_dest;
    cfg.nodes.ctx = f;
    cfg.resolver.resolve = fake_resolve;
    cfg.resolver.ctx = f;
    if (flags & FX_CLOCK) {
        cfg.clock = fake_clock;
        cfg.clock_arg = f;
    }
    cfg.foreign = (flags & FX_FORWARD) ? SIP_PROXY_FOREIGN_FORWARD : SIP_PROXY_FOREIGN_404;
    fx_proxy_new(f, &cfg, flags & FX_REGISTRAR);
}

/* A binding of bob@example.org: contact, and hop (NULL: a local phone). */
static void add_binding(struct fixture *f, const char *contact, const char *hop)
{
    struct sip_binding *b = &f->lk_b[f->lk_n++];
    memset(b, 0, sizeof(*b));
    strcpy(b->aor, "sip:bob@example.org");
    snprintf(b->contact, sizeof(b->contact), "%s", contact);
    if (hop)
        snprintf(b->hop, sizeof(b->hop), "%s", hop);
    b->q = 1000;
    b->expires_ms = 3600000;
}

/* Completes the pending lookup with the bindings set up. */
static void lookup_complete(struct fixture *f)
{
    sip_locator_lookup_cb cb = f->lk_cb;
    assert_non_null(cb);
    f->lk_cb = NULL;
    cb(0, f->lk_b, f->lk_n, f->lk_arg);
}

/* The proxy receives text from another node, over the overlay. */
static void feed_overlay(struct fixture *f, const char *text)
{
    struct sip_tsx_dest src = dest_of(NODE_B_IP, NODE_B_PORT, SIP_TSX_UDP);
    src.overlay = true;
    src.conn_id = NODE_B_CONN;
    assert_int_equal(sip_proxy_recv(f->proxy, text, strlen(text), &src, f->now), 0);
}

/* The value of the one header line with this id of a sent message (it must
 * have exactly one). */
static void assert_one_hdr(const struct sent *s, enum sip_hdr_id id, const char *value)
{
    const struct sip_hdr *h = sip_msg_hdr(&s->m, id);
    assert_int_equal(sip_msg_hdr_count(&s->m, id), 1);
    assert_non_null(h);
    if (!p2p_slice_eq(h->value, p2p_slice_cstr(value)))
        fail_msg("header value:\n%.*s\nwant:\n%s", (int)h->value.len, h->value.p, value);
}

/* A sent message compared whole: head (its start line and the start of our Via,
 * up to the random branch), the rest of that Via line, then rest byte for byte. */
static void assert_sent_is(const struct sent *s, const char *head, const char *rest)
{
    size_t hl = strlen(head), rl = strlen(rest);
    const char *eol;

    if (s->len < hl || memcmp(s->bytes, head, hl) != 0)
        fail_msg("sent:\n%.*s\nwant a head of:\n%s", (int)s->len, s->bytes, head);
    eol = memchr(s->bytes + hl, '\n', s->len - hl);
    assert_non_null(eol);
    eol++;
    if ((size_t)(s->bytes + s->len - eol) != rl || memcmp(eol, rest, rl) != 0)
        fail_msg("sent:\n%.*s\nwant after our Via:\n%s", (int)s->len, s->bytes, rest);
}

static const char *invite_bob = "INVITE sip:bob@example.org SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ov1;rport\r\n"
                                "Max-Forwards: 70\r\n"
                                "From: <sip:alice@example.org>;tag=a1\r\n"
                                "To: <sip:bob@example.org>\r\n"
                                "Call-ID: ov-1\r\n"
                                "CSeq: 1 INVITE\r\n"
                                "Contact: <sip:alice@127.0.0.1:5070>\r\n"
                                "Content-Length: 0\r\n\r\n";

/*
 * A binding behind another node: sent to where node_dest says, Request-URI the
 * AoR, and one Record-Route line with two values, our node name on top (facing
 * the next hop, another node) and our phone-facing address under it.  A local
 * binding of the same lookup gets our phone-facing address alone.
 */
static void test_binding_through_node_double_rr(void **state)
{
    static struct fixture f;
    int k, l;
    (void)state;

    fx_start(&f, FX_NODE);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    assert_string_equal(f.lk_aor, "sip:bob@example.org");
    add_binding(&f, "sip:bob@example.org", "sip:" NODE_B ";lr");
    add_binding(&f, "sip:bob@127.0.0.1:6001", NULL);
    lookup_complete(&f);
    /* the hook was asked about the hop's host, once (the local one is numeric) */
    assert_int_equal(f.nd_calls, 1);
    assert_string_equal(f.nd_host, NODE_B);
    k = find_sent(&f, 0, "INVITE", 0, NODE_B_PORT);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, NODE_B_CONN);
    assert_int_equal(count_sent(&f, "INVITE", 0, NODE_B_PORT), 1);
    /* 16.6 step 2: the target is the contact, which is the AoR itself */
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@example.org")));
    assert_one_hdr(&f.sent[k], SIP_HDR_RECORD_ROUTE, "<sip:" NODE_US ";lr>, <sip:" US ";lr>");
    assert_true(has(&f.sent[k], "\r\nRecord-Route: <sip:" NODE_US ";lr>, <sip:" US ";lr>\r\n"));
    assert_true(has(&f.sent[k], "Max-Forwards: 69\r\n"));
    /* the local phone: a copy with one Record-Route value, not via the overlay */
    l = find_sent(&f, 0, "INVITE", 0, 6001);
    assert_true(l >= 0);
    assert_int_equal(f.sent[l].dest.conn_id, 0);
    assert_true(p2p_slice_eq(f.sent[l].m.ruri, P2P_SLICE_LIT("sip:bob@127.0.0.1:6001")));
    assert_one_hdr(&f.sent[l], SIP_HDR_RECORD_ROUTE, "<sip:" US ";lr>");
    fx_stop(&f);

    /* without node_host: one value, our address, as before the overlay */
    fx_start(&f, 0);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@example.org", "sip:" NODE_B ";lr");
    lookup_complete(&f);
    k = find_sent(&f, 0, "INVITE", 0, NODE_B_PORT);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, NODE_B_CONN);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@example.org")));
    assert_one_hdr(&f.sent[k], SIP_HDR_RECORD_ROUTE, "<sip:" US ";lr>");
    fx_stop(&f);

    /* a hop whose host no node has, and no DNS answer: 503 for the branch, 500
     * upstream (16.7 step 6); the hook was asked first */
    fx_start(&f, FX_NODE);
    feed(&f, "127.0.0.1", 5070, invite_bob);
    add_binding(&f, "sip:bob@example.org",
                "sip:0000000000000000000000000000000000000000"
                ".node.invalid;lr");
    lookup_complete(&f);
    assert_int_equal(f.nd_calls, 1);
    assert_non_null(f.rs_cb); /* the resolver's turn */
    sip_proxy_resolve_cb cb = f.rs_cb;
    f.rs_cb = NULL;
    cb(-EHOSTUNREACH, NULL, f.rs_arg);
    assert_int_equal(count_sent(&f, "INVITE", 0, 0), 0);
    assert_int_equal(count_sent(&f, NULL, 500, 5070), 1);
    fx_stop(&f);
}

/*
 * A request from another node (src.overlay) for a phone of ours: the double
 * Record-Route the other way round, the phone-facing address on top.  From a
 * node to a node (a transit hop), our node name alone.  (Transaction layer
 * destinations carry the pipe's conn_id, which the daemon routes by; the
 * overlay flag itself is not kept by sip_tsx, so it is not asserted there.)
 */
static void test_from_overlay_double_rr(void **state)
{
    static struct fixture f;
    const char *from_node = "INVITE sip:bob@example.org SIP/2.0\r\n"
                            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-nodeb1;rport\r\n"
                            "Record-Route: <sip:" NODE_B ";lr>, <sip:" US ";lr>\r\n"
                            "Max-Forwards: 69\r\n"
                            "From: <sip:alice@example.org>;tag=a1\r\n"
                            "To: <sip:bob@example.org>\r\n"
                            "Call-ID: ov-2\r\n"
                            "CSeq: 1 INVITE\r\n"
                            "Contact: <sip:alice@127.0.0.1:5070>\r\n"
                            "Content-Length: 0\r\n\r\n";
    int k;
    (void)state;

    fx_start(&f, FX_NODE);
    feed_overlay(&f, from_node);
    /* 100 Trying back to the node, over the overlay */
    k = find_sent(&f, 0, NULL, 100, NODE_B_PORT);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, NODE_B_CONN);
    assert_string_equal(f.lk_aor, "sip:bob@example.org");
    add_binding(&f, "sip:bob@127.0.0.1:6001", NULL);
    lookup_complete(&f);
    k = find_sent(&f, 0, "INVITE", 0, 6001);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@127.0.0.1:6001")));
    /* ours on top, as a new line above the other node's (16.6 step 4) */
    assert_true(has(&f.sent[k], "\r\nRecord-Route: <sip:" US ";lr>, <sip:" NODE_US ";lr>\r\n"
                                /* no received/rport: the other node is a pipe,
                                 * not a socket address */
                                "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-nodeb1;rport\r\n"
                                "Record-Route: <sip:" NODE_B ";lr>, <sip:" US ";lr>\r\n"));
    assert_int_equal(sip_msg_hdr_count(&f.sent[k].m, SIP_HDR_RECORD_ROUTE), 2);
    fx_stop(&f);

    /* from a node to a node (a transit hop, by the Route another node put there):
     * our node name only, both sides know us by it */
    fx_start(&f, FX_NODE);
    feed_overlay(&f, "INVITE sip:bob@example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-nodeb3;rport\r\n"
                     "Max-Forwards: 69\r\n"
                     "Route: <sip:" NODE_US ";lr>, <sip:" NODE_C ";lr>\r\n"
                     "From: <sip:alice@example.org>;tag=a1\r\n"
                     "To: <sip:bob@example.org>\r\n"
                     "Call-ID: ov-2t\r\n"
                     "CSeq: 1 INVITE\r\n"
                     "Contact: <sip:alice@127.0.0.1:5070>\r\n"
                     "Content-Length: 0\r\n\r\n");
    assert_null(f.lk_cb);
    assert_string_equal(f.nd_host, NODE_C);
    k = find_sent(&f, 0, "INVITE", 0, NODE_C_PORT);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, NODE_C_CONN);
    assert_one_hdr(&f.sent[k], SIP_HDR_RECORD_ROUTE, "<sip:" NODE_US ";lr>");
    assert_one_hdr(&f.sent[k], SIP_HDR_ROUTE, "<sip:" NODE_C ";lr>");
    fx_stop(&f);
}

/*
 * The dialog's route set after both nodes double Record-Routed, as alice's phone
 * on this node holds it.  Its BYE carries our two values on top: both are
 * popped, and only they; the request goes to the other node.  The ACK to the 2xx
 * (stateless, 16.11) takes the same way.  From the other node the other way,
 * with our two values left: both popped, and the Request-URI is the target.
 */
#define ROUTE_SET "<sip:" US ";lr>, <sip:" NODE_US ";lr>, <sip:" NODE_B ";lr>, <sip:" US ";lr>"

static void test_in_dialog_double_route(void **state)
{
    static struct fixture f;
    int k;
    (void)state;

    fx_start(&f, FX_NODE);
    feed(&f, "127.0.0.1", 5070,
         "BYE sip:bob@127.0.0.1:6001 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ovbye1;rport\r\n"
         "Max-Forwards: 70\r\n"
         "Route: " ROUTE_SET "\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>;tag=b2\r\n"
         "Call-ID: ov-3\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n");
    assert_null(f.lk_cb); /* loose routing: no lookup */
    assert_int_equal(count_sent(&f, "BYE", 0, 6001), 0);
    assert_string_equal(f.nd_host, NODE_B);
    k = find_sent(&f, 0, "BYE", 0, NODE_B_PORT);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, NODE_B_CONN);
    /* every byte but our Via, Max-Forwards, received/rport and the two popped
     * values as received; no Record-Route on a BYE */
    assert_sent_is(&f.sent[k], "BYE sip:bob@127.0.0.1:6001 SIP/2.0\r\n" OUR_NODE_VIA,
                   "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ovbye1;"
                   "rport=5070;received=127.0.0.1\r\n"
                   "Max-Forwards: 69\r\n"
                   "Route: <sip:" NODE_B ";lr>, <sip:" US ";lr>\r\n"
                   "From: <sip:alice@example.org>;tag=a1\r\n"
                   "To: <sip:bob@example.org>;tag=b2\r\n"
                   "Call-ID: ov-3\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n");

    /* the ACK to the 2xx: forwarded statelessly through node_dest, same pops */
    f.nd_host[0] = '\0';
    feed(&f, "127.0.0.1", 5070,
         "ACK sip:bob@127.0.0.1:6001 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ovack1;rport\r\n"
         "Max-Forwards: 70\r\n"
         "Route: " ROUTE_SET "\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>;tag=b2\r\n"
         "Call-ID: ov-3\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
    assert_string_equal(f.nd_host, NODE_B);
    assert_int_equal(count_sent(&f, "ACK", 0, 6001), 0);
    k = find_sent(&f, 0, "ACK", 0, NODE_B_PORT);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, NODE_B_CONN);
    assert_true(f.sent[k].dest.overlay); /* as node_dest gave it: sent without sip_tsx */
    assert_sent_is(&f.sent[k], "ACK sip:bob@127.0.0.1:6001 SIP/2.0\r\n" OUR_VIA,
                   "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ovack1;"
                   "rport=5070;received=127.0.0.1\r\n"
                   "Max-Forwards: 69\r\n"
                   "Route: <sip:" NODE_B ";lr>, <sip:" US ";lr>\r\n"
                   "From: <sip:alice@example.org>;tag=a1\r\n"
                   "To: <sip:bob@example.org>;tag=b2\r\n"
                   "Call-ID: ov-3\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");

    /* the same route set on separate lines (a phone may split it) */
    feed(&f, "127.0.0.1", 5070,
         "INFO sip:bob@127.0.0.1:6001 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ovinfo1\r\n"
         "Max-Forwards: 70\r\n"
         "Route: <sip:" US ";lr>\r\n"
         "Route: <sip:" NODE_US ";lr>, <sip:" NODE_B ";lr>\r\n"
         "Route: <sip:" US ";lr>\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:bob@example.org>;tag=b2\r\n"
         "Call-ID: ov-3\r\nCSeq: 3 INFO\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, "INFO", 0, NODE_B_PORT);
    assert_true(k >= 0);
    assert_sent_is(&f.sent[k], "INFO sip:bob@127.0.0.1:6001 SIP/2.0\r\n" OUR_NODE_VIA,
                   "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ovinfo1\r\n"
                   "Max-Forwards: 69\r\n"
                   "Route: <sip:" NODE_B ";lr>\r\n"
                   "Route: <sip:" US ";lr>\r\n"
                   "From: <sip:alice@example.org>;tag=a1\r\n"
                   "To: <sip:bob@example.org>;tag=b2\r\n"
                   "Call-ID: ov-3\r\nCSeq: 3 INFO\r\nContent-Length: 0\r\n\r\n");

    /* bob's BYE from the other node: our node name and address, both popped;
     * nothing left, so the Request-URI (alice's contact) is the target */
    feed_overlay(&f, "BYE sip:alice@127.0.0.1:5070 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-nodeb2;rport\r\n"
                     "Max-Forwards: 69\r\n"
                     "Route: <sip:" NODE_US ";lr>, <sip:" US ";lr>\r\n"
                     "From: <sip:bob@example.org>;tag=b2\r\n"
                     "To: <sip:alice@example.org>;tag=a1\r\n"
                     "Call-ID: ov-3\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, "BYE", 0, 5070);
    assert_true(k >= 0);
    assert_int_equal(f.sent[k].dest.conn_id, 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:alice@127.0.0.1:5070")));
    assert_null(sip_msg_hdr(&f.sent[k].m, SIP_HDR_ROUTE));
    assert_true(has(&f.sent[k], "Max-Forwards: 68\r\n"));
    /* and its ACK to alice's 2xx the same way, statelessly */
    feed_overlay(&f, "ACK sip:alice@127.0.0.1:5070 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-nodeb3;rport\r\n"
                     "Max-Forwards: 69\r\n"
                     "Route: <sip:" NODE_US ";lr>, <sip:" US ";lr>\r\n"
                     "From: <sip:bob@example.org>;tag=b2\r\n"
                     "To: <sip:alice@example.org>;tag=a1\r\n"
                     "Call-ID: ov-3b\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
    k = find_sent(&f, 0, "ACK", 0, 5070);
    assert_true(k >= 0);
    assert_false(f.sent[k].dest.overlay);
    assert_int_equal(f.sent[k].dest.conn_id, 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:alice@127.0.0.1:5070")));
    assert_null(sip_msg_hdr(&f.sent[k].m, SIP_HDR_ROUTE));
    fx_stop(&f);
}

/*
 * A lookup that completes 5 s after the INVITE arrived: the client transaction
 * starts then (cfg.clock), so Timer A first fires T1 after the completion and
 * Timer B 64*T1 after it.  Without cfg.clock the documented fallback: the time
 * of the last call into the proxy.
 */
static void test_late_lookup_timers_from_completion(void **state)
{
    static struct fixture f;
    const uint64_t t0 = 1000, done = t0 + 5000, t1 = 500;
    (void)state;

    fx_start(&f, FX_CLOCK);
    f.now = t0;
    feed(&f, "127.0.0.1", 5070, invite_bob);
    assert_int_equal(count_sent(&f, NULL, 100, 5070), 1);
    assert_int_equal(sip_proxy_next_deadline(f.proxy), UINT64_MAX); /* nothing armed */
    f.now = done; /* the loop's clock moved on while the DHT was asked */
    add_binding(&f, "sip:bob@127.0.0.1:6001", NULL);
    f.clock_calls = 0;
    lookup_complete(&f);
    assert_true(f.clock_calls > 0);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 1);
    assert_int_equal(sip_proxy_next_deadline(f.proxy), done + t1);
    /* not at once, nor T1 after the INVITE came: T1 after the completion */
    sip_proxy_advance(f.proxy, done);
    sip_proxy_advance(f.proxy, done + t1 - 1);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 1);
    sip_proxy_advance(f.proxy, done + t1);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 2);
    assert_int_equal(sip_proxy_next_deadline(f.proxy), done + 3 * t1); /* doubled */
    /* Timer B: 64*T1 after the completion, retransmissions at 1, 3, 7, 15, 31
     * and 63 T1 meanwhile */
    advance(&f, done + 64 * t1 - 1);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 7);
    assert_int_equal(count_sent(&f, NULL, 408, 5070), 0);
    assert_int_equal(sip_proxy_requests(f.proxy), 1);
    advance(&f, done + 64 * t1);
    assert_int_equal(count_sent(&f, NULL, 408, 5070), 1);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 7);
    fx_stop(&f);

    /* no clock: the timers start from the last sip_proxy_recv (the INVITE) */
    fx_start(&f, 0);
    f.now = t0;
    feed(&f, "127.0.0.1", 5070, invite_bob);
    f.now = done;
    add_binding(&f, "sip:bob@127.0.0.1:6001", NULL);
    lookup_complete(&f);
    assert_int_equal(sip_proxy_next_deadline(f.proxy), t0 + t1);
    fx_stop(&f);
}

/* A resolution that completes late: Timer E (non-INVITE, T1) from then. */
static void test_late_resolution_timers_from_completion(void **state)
{
    static struct fixture f;
    struct sip_tsx_dest d = dest_of("192.0.2.50", 5090, SIP_TSX_UDP);
    sip_proxy_resolve_cb cb;
    (void)state;

    fx_start(&f, FX_CLOCK | FX_FORWARD | FX_NODE);
    f.now = 2000;
    feed(&f, "127.0.0.1", 5070,
         "MESSAGE sip:carol@other.net SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ovres1\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:alice@example.org>;tag=a1\r\n"
         "To: <sip:carol@other.net>\r\n"
         "Call-ID: ov-4\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n");
    /* a host name that is no node of ours: the hook said no, the resolver asked */
    assert_int_equal(f.nd_calls, 1);
    assert_string_equal(f.nd_host, "other.net");
    assert_non_null(f.rs_cb);
    f.now = 2000 + 3000;
    cb = f.rs_cb;
    f.rs_cb = NULL;
    cb(0, &d, f.rs_arg);
    assert_int_equal(count_sent(&f, "MESSAGE", 0, 5090), 1);
    /* no Record-Route on a MESSAGE, whatever the overlay */
    assert_null(sip_msg_hdr(&f.sent[find_sent(&f, 0, "MESSAGE", 0, 5090)].m, SIP_HDR_RECORD_ROUTE));
    assert_int_equal(sip_proxy_next_deadline(f.proxy), 5000 + 500);
    sip_proxy_advance(f.proxy, 5499);
    assert_int_equal(count_sent(&f, "MESSAGE", 0, 5090), 1);
    sip_proxy_advance(f.proxy, 5500);
    assert_int_equal(count_sent(&f, "MESSAGE", 0, 5090), 2);
    fx_stop(&f);
}

/*
 * The registrar answers a REGISTER from its publish completion, late: the
 * server transaction's Timer J (64*T1, it absorbs retransmissions) runs from
 * the answer, read from cfg.clock, not from the REGISTER's arrival.
 */
static void test_late_publish_answer_uses_clock(void **state)
{
    static struct fixture f;
    const char *reg = "REGISTER sip:example.org SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-ovreg1;rport\r\n"
                      "Max-Forwards: 70\r\n"
                      "From: <sip:bob@example.org>;tag=r1\r\n"
                      "To: <sip:bob@example.org>\r\n"
                      "Call-ID: ov-reg-1\r\nCSeq: 1 REGISTER\r\n"
                      "Contact: <sip:bob@127.0.0.1:6001>\r\n"
                      "Expires: 600\r\n"
                      "Content-Length: 0\r\n\r\n";
    const uint64_t t0 = 1000, done = 9000, j = 64 * 500;
    (void)state;

    fx_start(&f, FX_CLOCK | FX_REGISTRAR);
    f.now = t0;
    feed(&f, "127.0.0.1", 6001, reg);
    assert_int_equal(f.nsent, 0); /* answered when the publish completes */
    f.now = done;
    assert_int_equal(sip_locator_local_run(f.loc, f.now), 1);
    assert_int_equal(count_sent(&f, NULL, 200, 6001), 1);
    /* Timer J from the answer (from the REGISTER it would be t0 + j) */
    assert_int_equal(sip_proxy_next_deadline(f.proxy), done + j);
    advance(&f, done + j - 1);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 1);
    /* a retransmission meanwhile gets the same answer, no second publish */
    feed(&f, "127.0.0.1", 6001, reg);
    assert_int_equal(count_sent(&f, NULL, 200, 6001), 2);
    assert_int_equal(sip_locator_local_pending(f.loc), 0);
    advance(&f, done + j);
    assert_int_equal(sip_tsx_layer_count(sip_proxy_tsx(f.proxy)), 0);
    fx_stop(&f);
}

/* An INVITE for user@our-address:port from 127.0.0.1:5080. */
static void feed_invite_to(struct fixture *f, const char *ruri, const char *call_id)
{
    char text[1024];
    int n = snprintf(text, sizeof(text),
                     "INVITE %s SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-%s\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:alice@example.org>;tag=a1\r\n"
                     "To: <%s>\r\n"
                     "Call-ID: %s\r\n"
                     "CSeq: 1 INVITE\r\n"
                     "Content-Length: 0\r\n\r\n",
                     ruri, call_id, ruri, call_id);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    feed(f, "127.0.0.1", 5080, text);
}

/*
 * sip:bob@<our host>:<our port> (what sipp's uac sends) is the AoR
 * sip:bob@<our host>; the same host with another port is somebody else.
 */
static void test_ruri_our_host_and_port(void **state)
{
    static struct fixture f;
    int k;
    (void)state;

    fx_start(&f, FX_NODE);
    feed_invite_to(&f, "sip:bob@127.0.0.1:5062", "ov-5a");
    assert_non_null(f.lk_cb);
    assert_string_equal(f.lk_aor, "sip:bob@127.0.0.1");
    add_binding(&f, "sip:bob@127.0.0.1:6001", NULL);
    lookup_complete(&f);
    k = find_sent(&f, 0, "INVITE", 0, 6001);
    assert_true(k >= 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@127.0.0.1:6001")));
    /* without a port: the default port, ours too */
    feed_invite_to(&f, "sip:bob@127.0.0.1", "ov-5b");
    assert_string_equal(f.lk_aor, "sip:bob@127.0.0.1");
    lookup_complete(&f);
    assert_int_equal(count_sent(&f, "INVITE", 0, 6001), 2);
    /* our host, another port: not our domain, no lookup; foreign = 404 */
    f.lk_aor[0] = '\0';
    feed_invite_to(&f, "sip:bob@127.0.0.1:5070", "ov-5c");
    assert_null(f.lk_cb);
    assert_string_equal(f.lk_aor, "");
    assert_int_equal(count_sent(&f, NULL, 404, 5080), 1);
    assert_int_equal(count_sent(&f, "INVITE", 0, 5070), 0);
    fx_stop(&f);

    /* with forwarding on it goes to that address, Request-URI as it was */
    fx_start(&f, FX_NODE | FX_FORWARD);
    feed_invite_to(&f, "sip:bob@127.0.0.1:5070", "ov-5d");
    assert_null(f.lk_cb);
    k = find_sent(&f, 0, "INVITE", 0, 5070);
    assert_true(k >= 0);
    assert_true(p2p_slice_eq(f.sent[k].m.ruri, P2P_SLICE_LIT("sip:bob@127.0.0.1:5070")));
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding_through_node_double_rr),
        cmocka_unit_test(test_from_overlay_double_rr),
        cmocka_unit_test(test_in_dialog_double_route),
        cmocka_unit_test(test_late_lookup_timers_from_completion),
        cmocka_unit_test(test_late_resolution_timers_from_completion),
        cmocka_unit_test(test_late_publish_answer_uses_clock),
        cmocka_unit_test(test_ruri_our_host_and_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
