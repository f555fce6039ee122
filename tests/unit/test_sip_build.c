/*
 * test_sip_build.c: forwarding by splicing (RFC 3261 16.6), responses (8.2.6,
 * 16.7), the received/rport rule (18.2.1, RFC 3581 4), CANCEL (9.1), ACK for a non-2xx (17.1.1.3),
 * branch ids. Outputs are compared byte for byte with the message the RFC calls for.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"

static struct sip_msg req, resp, back;

#define INVITE_HEAD                                                                                \
    "INVITE sip:bob@example.org SIP/2.0\r\n"                                                       \
    "v: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnashds8;rport\r\n"                                 \
    "Route: <sip:p1.example.org;lr>, <sip:p2.example.org;lr>\r\n"                                  \
    "Route: <sip:p3.example.org;lr>\r\n"                                                           \
    "Max-Forwards:  0069\r\n"                                                                      \
    "To: Bob <sip:bob@example.org>\r\n"                                                            \
    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"                                       \
    "Call-ID: a84b4c76e66710\r\n"                                                                  \
    "CSeq: 314159 INVITE\r\n"                                                                      \
    "Subject: folded\r\n"                                                                          \
    "  line\r\n"                                                                                   \
    "Contact: <sip:alice@10.0.0.5>\r\n"

static void parse(struct sip_msg *m, const char *s)
{
    int rc = sip_msg_parse(m, s, strlen(s), SIP_MSG_DGRAM, NULL);
    if (rc <= 0)
        fail_msg("parse: %d", rc);
}

/* p2p_buf holds no NUL: search within its length */
static bool contains(const struct p2p_buf *b, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= b->len; i++) {
        if (memcmp(b->data + i, needle, n) == 0)
            return true;
    }
    return false;
}

static void assert_out(const struct p2p_buf *b, const char *want)
{
    if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
        fail_msg("got:\n%.*s\nwant:\n%s", (int)b->len, b->data, want);
}

static void test_forward_all(void **state)
{
    (void)state;
    const char *in = INVITE_HEAD "Content-Length: 4\r\n\r\nbody";
    struct p2p_buf out;
    struct sip_fwd f = {
        .ruri = P2P_SLICE_LIT("sip:bob@192.0.2.7:5062"),
        .via = P2P_SLICE_LIT("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKp1"),
        .record_route = P2P_SLICE_LIT("<sip:192.0.2.1:5062;lr>"),
        .pop_routes = 1,
        .src = {P2P_SLICE_LIT("198.51.100.9"), 40000},
    };

    parse(&req, in);
    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_build_forward(&req, &f, &out), 0);
    assert_out(&out, "INVITE sip:bob@192.0.2.7:5062 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKp1\r\n"
                     "Record-Route: <sip:192.0.2.1:5062;lr>\r\n"
                     "v: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnashds8;rport=40000"
                     ";received=198.51.100.9\r\n"
                     "Route: <sip:p2.example.org;lr>\r\n"
                     "Route: <sip:p3.example.org;lr>\r\n"
                     "Max-Forwards:  68\r\n"
                     "To: Bob <sip:bob@example.org>\r\n"
                     "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
                     "Call-ID: a84b4c76e66710\r\n"
                     "CSeq: 314159 INVITE\r\n"
                     "Subject: folded\r\n"
                     "  line\r\n"
                     "Contact: <sip:alice@10.0.0.5>\r\n"
                     "Content-Length: 4\r\n\r\nbody");
    /* the output parses back and validates */
    assert_int_equal(sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL), (int)out.len);
    assert_int_equal(sip_msg_validate(&back, NULL), 0);
    p2p_buf_free(&out);
}

static void test_forward_minimal(void **state)
{
    (void)state;
    /* no Max-Forwards, no Content-Length (UDP), a single Route value popped */
    const char *in = "OPTIONS sip:bob@example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP h.example.org;branch=z9hG4bK1\r\n"
                     "Route: <sip:me.example.org;lr>\r\n"
                     "To: <sip:bob@example.org>\r\n\r\nxyz";
    struct p2p_buf out;
    struct sip_fwd f = {.pop_routes = 1};

    parse(&req, in);
    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_build_forward(&req, &f, &out), 0);
    assert_out(&out, "OPTIONS sip:bob@example.org SIP/2.0\r\n"
                     "Max-Forwards: 70\r\n"
                     "Via: SIP/2.0/UDP h.example.org;branch=z9hG4bK1\r\n"
                     "To: <sip:bob@example.org>\r\n"
                     "Content-Length: 3\r\n\r\nxyz");
    /* RFC 3261 18.2.1: a host name in sent-by always gets received= */
    p2p_buf_reset(&out);
    f.pop_routes = 0;
    f.src.host = P2P_SLICE_LIT("192.0.2.9");
    f.src.port = 5060;
    assert_int_equal(sip_build_forward(&req, &f, &out), 0);
    assert_true(
        contains(&out, "Via: SIP/2.0/UDP h.example.org;branch=z9hG4bK1;received=192.0.2.9\r\n"));
    /* the source must be the packet's numeric address, never a name */
    struct sip_fwd named = {.src = {P2P_SLICE_LIT("h.example.org"), 5060}};
    assert_int_equal(sip_build_forward(&req, &named, &out), -EINVAL);
    /* a cap too small: an error and the buffer as it was */
    struct p2p_buf small;
    p2p_buf_init(&small, 40);
    assert_int_equal(p2p_buf_append(&small, "keep", 4), 0);
    assert_int_equal(sip_build_forward(&req, &f, &small), -EMSGSIZE);
    assert_int_equal(small.len, 4);
    p2p_buf_free(&small);
    /* header injection through the proxy's own values is refused */
    f.via = P2P_SLICE_LIT("SIP/2.0/UDP x\r\nEvil: 1");
    assert_int_equal(sip_build_forward(&req, &f, &out), -EINVAL);
    /* popping a Route that is not there */
    struct sip_fwd g = {.pop_routes = 1};
    parse(&req, "OPTIONS sip:b@c SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n");
    assert_int_equal(sip_build_forward(&req, &g, &out), -EBADMSG);
    /* Max-Forwards 0: the proxy answers 483 instead (16.3 step 3) */
    parse(&req, "OPTIONS sip:b@c SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nMax-Forwards: 0\r\n\r\n");
    struct sip_fwd h = {0};
    assert_int_equal(sip_build_forward(&req, &h, &out), -EINVAL);
    p2p_buf_free(&out);
}

/*
 * 16.4 / step 6 with several values of ours on top (two after a double
 * Record-Route, RFC 5658): pop_routes values go, wherever the header lines
 * split them.  routes sits right after the start line (first) or further down;
 * the whole output is compared, so every other byte must come out as it came in.
 */
static void check_pop(const char *routes, unsigned n, const char *left, bool first)
{
    char in[1024], want[1024];
    const char *ins = first ? "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKp2\r\n"
                              "Record-Route: <sip:n.node.invalid;lr>, <sip:192.0.2.1:5062;lr>\r\n"
                            : "";
    struct sip_fwd f = {.pop_routes = n};
    struct p2p_buf out;
    int rc;

    if (first) {
        f.via = P2P_SLICE_LIT("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKp2");
        f.record_route = P2P_SLICE_LIT("<sip:n.node.invalid;lr>, <sip:192.0.2.1:5062;lr>");
    }
    snprintf(in, sizeof(in),
             "BYE sip:bob@192.0.2.7:5060 SIP/2.0\r\n%s"
             "Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKpop\r\n"
             "Max-Forwards: 10\r\n%s"
             "From: <sip:alice@example.org>;tag=1\r\n"
             "To: <sip:bob@example.org>;tag=2\r\n"
             "Call-ID: pop\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
             first ? routes : "", first ? "" : routes);
    snprintf(want, sizeof(want),
             "BYE sip:bob@192.0.2.7:5060 SIP/2.0\r\n%s%s"
             "Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKpop\r\n"
             "Max-Forwards: 9\r\n%s"
             "From: <sip:alice@example.org>;tag=1\r\n"
             "To: <sip:bob@example.org>;tag=2\r\n"
             "Call-ID: pop\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
             ins, first ? left : "", first ? "" : left);
    parse(&req, in);
    p2p_buf_init(&out, 4096);
    assert_int_equal(p2p_buf_append(&out, "keep", 4), 0);
    rc = sip_build_forward(&req, &f, &out);
    if (left == NULL) {
        /* more values than there are: an error, and the buffer as it was */
        assert_int_equal(rc, -EBADMSG);
        assert_int_equal(out.len, 4);
    } else {
        assert_int_equal(rc, 0);
        assert_memory_equal(out.data, "keep", 4);
        out.len -= 4;
        memmove(out.data, out.data + 4, out.len);
        assert_out(&out, want);
        assert_int_equal(sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL),
                         (int)out.len);
    }
    p2p_buf_free(&out);
}

#define RA "<sip:a.example;lr>"
#define RB "<sip:b.example;lr>"
#define RC "<sip:c.example;lr>"
#define RD "<sip:d.example;lr>"

static void test_forward_pop_routes(void **state)
{
    (void)state;
    for (int first = 0; first < 2; first++) {
        /* three values on one line */
        const char *one = "Route: " RA ", " RB ", " RC "\r\n";
        check_pop(one, 1, "Route: " RB ", " RC "\r\n", first);
        check_pop(one, 2, "Route: " RC "\r\n", first);
        check_pop(one, 3, "", first);
        check_pop(one, 4, NULL, first);
        /* one value a line */
        const char *sep = "Route: " RA "\r\nRoute: " RB "\r\nRoute: " RC "\r\n";
        check_pop(sep, 1, "Route: " RB "\r\nRoute: " RC "\r\n", first);
        check_pop(sep, 2, "Route: " RC "\r\n", first);
        check_pop(sep, 3, "", first);
        check_pop(sep, 4, NULL, first);
        /* two lines of two: the first wholly popped, the second partly */
        const char *mix = "Route: " RA ", " RB "\r\nRoute: " RC ", " RD "\r\n";
        check_pop(mix, 1, "Route: " RB "\r\nRoute: " RC ", " RD "\r\n", first);
        check_pop(mix, 2, "Route: " RC ", " RD "\r\n", first);
        check_pop(mix, 3, "Route: " RD "\r\n", first);
        check_pop(mix, 4, "", first);
        check_pop(mix, 5, NULL, first);
        /* one value, then two: the second line partly */
        const char *mix2 = "Route: " RA "\r\nRoute: " RB ", " RC "\r\n";
        check_pop(mix2, 2, "Route: " RC "\r\n", first);
    }
    /* spelling the parser accepts: no space, tabs and spaces around commas, a
     * quoted comma in a display name, parameters, a lower-case name, a folded
     * line, another header between the Route lines */
    const char *odd = "Route:" RA " ,\t" RB "\r\n"
                      "Subject: between\r\n"
                      "route: \"x, y\" " RC ";p=1 , " RD "\r\n";
    check_pop(odd, 1, "Route:" RB "\r\nSubject: between\r\nroute: \"x, y\" " RC ";p=1 , " RD "\r\n",
              false);
    check_pop(odd, 2, "Subject: between\r\nroute: \"x, y\" " RC ";p=1 , " RD "\r\n", false);
    check_pop(odd, 3, "Subject: between\r\nroute: " RD "\r\n", false);
    check_pop(odd, 4, "Subject: between\r\n", false);
    check_pop(odd, 5, NULL, false);
    const char *folded = "Route: " RA ",\r\n " RB ",\r\n\t" RC "\r\n";
    check_pop(folded, 1, "Route: " RB ",\r\n\t" RC "\r\n", false);
    check_pop(folded, 2, "Route: " RC "\r\n", false);
    check_pop(folded, 3, "", false);
}

static void test_response(void **state)
{
    (void)state;
    const char *in = "REGISTER sip:example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr1;rport\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKr0\r\n"
                     "To: <sip:alice@example.org>\r\n"
                     "From: <sip:alice@example.org>;tag=aa\r\n"
                     "Call-ID: reg1\r\n"
                     "CSeq: 2 REGISTER\r\n"
                     "Contact: <sip:alice@10.0.0.5>\r\n"
                     "Content-Length: 0\r\n\r\n";
    struct p2p_buf out;
    struct sip_resp r = {
        .status = 200,
        .to_tag = P2P_SLICE_LIT("srv1"),
        .src = {P2P_SLICE_LIT("10.0.0.5"), 5060},
        .extra = P2P_SLICE_LIT("Contact: <sip:alice@10.0.0.5>;expires=3600\r\n"),
    };

    parse(&req, in);
    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_build_response(&req, &r, &out), 0);
    /* RFC 3581 4: with rport, received= even when the host matches */
    assert_out(&out, "SIP/2.0 200 OK\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr1;rport=5060"
                     ";received=10.0.0.5\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKr0\r\n"
                     "From: <sip:alice@example.org>;tag=aa\r\n"
                     "To: <sip:alice@example.org>;tag=srv1\r\n"
                     "Call-ID: reg1\r\n"
                     "CSeq: 2 REGISTER\r\n"
                     "Contact: <sip:alice@10.0.0.5>;expires=3600\r\n"
                     "Content-Length: 0\r\n\r\n");

    /* 100 Trying gets no tag; a reason and a body */
    p2p_buf_reset(&out);
    struct sip_resp t = {.status = 100, .to_tag = P2P_SLICE_LIT("x")};
    assert_int_equal(sip_build_response(&req, &t, &out), 0);
    assert_false(contains(&out, "tag=x"));
    p2p_buf_reset(&out);
    struct sip_resp b = {.status = 488,
                         .reason = P2P_SLICE_LIT("Not Here"),
                         .content_type = P2P_SLICE_LIT("text/plain"),
                         .body = P2P_SLICE_LIT("no")};
    assert_int_equal(sip_build_response(&req, &b, &out), 0);
    assert_int_equal(sip_msg_parse(&resp, out.data, out.len, SIP_MSG_STREAM, NULL), (int)out.len);
    assert_int_equal(resp.status, 488);
    assert_true(p2p_slice_eq(resp.reason, P2P_SLICE_LIT("Not Here")));
    assert_true(p2p_slice_eq(resp.body, P2P_SLICE_LIT("no")));
    assert_true(
        p2p_slice_eq(sip_msg_hdr(&resp, SIP_HDR_CONTENT_TYPE)->value, P2P_SLICE_LIT("text/plain")));
    /* an existing To tag is kept, not doubled */
    parse(&req, "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\n"
                "To: <sip:a@b>;tag=old\r\nFrom: <sip:c@d>;tag=f\r\nCall-ID: c\r\n"
                "CSeq: 3 BYE\r\n\r\n");
    p2p_buf_reset(&out);
    assert_int_equal(sip_build_response(&req, &r, &out), 0);
    assert_true(contains(&out, "To: <sip:a@b>;tag=old\r\n"));
    assert_false(contains(&out, "srv1"));
    /* a received= already there is replaced; no rport: added only when differing */
    parse(&req, "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;received=1.2.3.4;branch=z9hG4bKb\r\n"
                "CSeq: 3 BYE\r\n\r\n");
    p2p_buf_reset(&out);
    struct sip_resp s = {.status = 400, .src = {P2P_SLICE_LIT("5.6.7.8"), 1}};
    assert_int_equal(sip_build_response(&req, &s, &out), 0);
    assert_out(&out, "SIP/2.0 400 Bad Request\r\n"
                     "Via: SIP/2.0/UDP h;received=5.6.7.8;branch=z9hG4bKb\r\n"
                     "CSeq: 3 BYE\r\n"
                     "Content-Length: 0\r\n\r\n");
    /* bad status */
    struct sip_resp bad = {.status = 700};
    assert_int_equal(sip_build_response(&req, &bad, &out), -EINVAL);
    p2p_buf_free(&out);
}

static struct sip_via via_of(const char *value)
{
    struct sip_via via;
    assert_int_equal(sip_via_parse(p2p_slice_cstr(value), &via), 0);
    return via;
}

/* The decision alone: sip_via_fix(via, {host, port}) -> {received, rport}. */
static void expect_fix(const char *via_value, const char *host, uint16_t port, bool received,
                       bool rport)
{
    struct sip_via via = via_of(via_value);
    struct sip_src src = {p2p_slice_cstr(host), port};
    struct sip_via_fix fix = {.received = !received, .rport = !rport};

    assert_int_equal(sip_via_fix(&via, &src, &fix), 0);
    if (fix.received != received || fix.rport != rport)
        fail_msg("%s from %s:%u: received %d rport %d, want %d %d", via_value, host, port,
                 fix.received, fix.rport, received, rport);
}

static void test_via_fix(void **state)
{
    struct sip_via via = via_of("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1");
    struct sip_via_fix fix = {.received = true, .rport = true};
    struct sip_src src;

    (void)state;
    /* RFC 3261 18.2.1, IPv4: the same address -> nothing, another -> received */
    expect_fix("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1", "192.0.2.7", 40000, false, false);
    expect_fix("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1", "192.0.2.7", 40000, true, false);
    /* a host name in sent-by always gets received, even one that looks numeric */
    expect_fix("SIP/2.0/UDP pc.example.org:5060;branch=z9hG4bK1", "192.0.2.7", 40000, true, false);
    expect_fix("SIP/2.0/UDP 192.0.2.7.example.org;branch=z9hG4bK1", "192.0.2.7", 1, true, false);
    /* IPv6: compared as addresses, not as text; brackets in sent-by only */
    expect_fix("SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1", "0:0:0:0:0:0:0:1", 5070, false, false);
    expect_fix("SIP/2.0/TCP [2001:DB8:0::1]:5070;branch=z9hG4bK1", "2001:db8::1", 5070, false,
               false);
    expect_fix("SIP/2.0/TCP [2001:db8::2]:5070;branch=z9hG4bK1", "2001:db8::1", 5070, true, false);
    /* a dual-stack socket reports an IPv4 peer as IPv4-mapped: the same host */
    expect_fix("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1", "::ffff:192.0.2.7", 5060, false, false);
    expect_fix("SIP/2.0/UDP 192.0.2.8;branch=z9hG4bK1", "::ffff:192.0.2.7", 5060, true, false);
    /* RFC 3581 4: rport without a value -> filled, and received even when equal */
    expect_fix("SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bK1", "192.0.2.7", 40000, true, true);
    expect_fix("SIP/2.0/UDP [::1];rport;branch=z9hG4bK1", "::1", 40000, true, true);
    /* an rport that has a value is left alone; received still added */
    expect_fix("SIP/2.0/UDP 192.0.2.7;rport=1234;branch=z9hG4bK1", "192.0.2.7", 40000, true, false);
    /* no source port known: nothing to fill rport with */
    expect_fix("SIP/2.0/UDP 192.0.2.7;rport;branch=z9hG4bK1", "192.0.2.7", 0, true, false);

    /* no source: nothing, and *out written */
    src = (struct sip_src){P2P_SLICE_LIT(""), 5060};
    assert_int_equal(sip_via_fix(&via, &src, &fix), 0);
    assert_false(fix.received);
    assert_false(fix.rport);
    /* the source must be a numeric address without brackets; *out untouched */
    const char *bad[] = {"pc.example.org", "[::1]", "192.0.2", "fe80::1%eth0", "1.2.3.4 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        src = (struct sip_src){p2p_slice_cstr(bad[i]), 5060};
        fix = (struct sip_via_fix){.received = true, .rport = true};
        assert_int_equal(sip_via_fix(&via, &src, &fix), -EINVAL);
        assert_true(fix.received && fix.rport);
    }
    src = (struct sip_src){{"192.0.2.7\0x", 11}, 5060}; /* a NUL inside the slice */
    assert_int_equal(sip_via_fix(&via, &src, &fix), -EINVAL);
}

/* The builder applies that rule: IPv6 in another textual form leaves the Via as it
 * came, byte for byte; a name gets received= (without brackets for IPv6). */
static void test_response_via_ipv6(void **state)
{
    struct p2p_buf out;
    struct sip_resp r = {.status = 200, .src = {P2P_SLICE_LIT("2001:db8::1"), 5062}};

    (void)state;
    parse(&req,
          "OPTIONS sip:b@c SIP/2.0\r\nVia: SIP/2.0/UDP [2001:DB8:0:0::1]:5062;branch=z9hG4bK6\r\n"
          "CSeq: 1 OPTIONS\r\n\r\n");
    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_build_response(&req, &r, &out), 0);
    assert_out(&out, "SIP/2.0 200 OK\r\n"
                     "Via: SIP/2.0/UDP [2001:DB8:0:0::1]:5062;branch=z9hG4bK6\r\n"
                     "CSeq: 1 OPTIONS\r\n"
                     "Content-Length: 0\r\n\r\n");
    parse(&req,
          "OPTIONS sip:b@c SIP/2.0\r\nVia: SIP/2.0/UDP pc.example.org;branch=z9hG4bK6;rport\r\n"
          "CSeq: 1 OPTIONS\r\n\r\n");
    p2p_buf_reset(&out);
    assert_int_equal(sip_build_response(&req, &r, &out), 0);
    assert_out(&out, "SIP/2.0 200 OK\r\n"
                     "Via: SIP/2.0/UDP pc.example.org;branch=z9hG4bK6;rport=5062"
                     ";received=2001:db8::1\r\n"
                     "CSeq: 1 OPTIONS\r\n"
                     "Content-Length: 0\r\n\r\n");
    /* a source that is not an address: refused, the buffer as it was */
    r.src.host = P2P_SLICE_LIT("[2001:db8::1]");
    p2p_buf_reset(&out);
    assert_int_equal(sip_build_response(&req, &r, &out), -EINVAL);
    assert_int_equal(out.len, 0);
    p2p_buf_free(&out);
}

static void test_cancel_and_ack(void **state)
{
    (void)state;
    const char *in = INVITE_HEAD "Content-Length: 0\r\n\r\n";
    struct p2p_buf out;

    parse(&req, in);
    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_build_cancel(&req, &out), 0);
    assert_out(&out, "CANCEL sip:bob@example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnashds8;rport\r\n"
                     "Route: <sip:p1.example.org;lr>, <sip:p2.example.org;lr>\r\n"
                     "Route: <sip:p3.example.org;lr>\r\n"
                     "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
                     "To: Bob <sip:bob@example.org>\r\n"
                     "Call-ID: a84b4c76e66710\r\n"
                     "CSeq: 314159 CANCEL\r\n"
                     "Max-Forwards: 70\r\n"
                     "Content-Length: 0\r\n\r\n");

    parse(&resp, "SIP/2.0 486 Busy Here\r\n"
                 "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnashds8;rport=5060\r\n"
                 "To: Bob <sip:bob@example.org>;tag=b0b\r\n"
                 "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
                 "Call-ID: a84b4c76e66710\r\n"
                 "CSeq: 314159 INVITE\r\n"
                 "Content-Length: 0\r\n\r\n");
    p2p_buf_reset(&out);
    assert_int_equal(sip_build_ack(&req, &resp, &out), 0);
    assert_out(&out, "ACK sip:bob@example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnashds8;rport\r\n"
                     "Route: <sip:p1.example.org;lr>, <sip:p2.example.org;lr>\r\n"
                     "Route: <sip:p3.example.org;lr>\r\n"
                     "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
                     "To: Bob <sip:bob@example.org>;tag=b0b\r\n"
                     "Call-ID: a84b4c76e66710\r\n"
                     "CSeq: 314159 ACK\r\n"
                     "Max-Forwards: 70\r\n"
                     "Content-Length: 0\r\n\r\n");
    /* no ACK for a 2xx at this layer, none for a non-INVITE */
    resp.status = 200;
    assert_int_equal(sip_build_ack(&req, &resp, &out), -EINVAL);
    parse(&back, "ACK sip:b@c SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\n"
                 "Call-ID: x\r\nCSeq: 1 ACK\r\n\r\n");
    assert_int_equal(sip_build_cancel(&back, &out), -EINVAL);
    p2p_buf_free(&out);
}

static void test_branch(void **state)
{
    (void)state;
    char a[SIP_BRANCH_LEN + 1], b[64];

    assert_int_equal(sip_branch_new(a, sizeof(a)), SIP_BRANCH_LEN);
    assert_int_equal(strlen(a), SIP_BRANCH_LEN);
    assert_memory_equal(a, "z9hG4bK", 7);
    assert_true(sip_is_token(p2p_slice_cstr(a)));
    assert_int_equal(sip_branch_new(b, sizeof(b)), SIP_BRANCH_LEN);
    assert_string_not_equal(a, b);
    assert_int_equal(sip_branch_new(b, SIP_BRANCH_LEN), -ENOSPC);
    assert_string_equal(sip_reason_phrase(483), "Too Many Hops");
    assert_string_equal(sip_reason_phrase(299), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_all),
        cmocka_unit_test(test_forward_minimal),
        cmocka_unit_test(test_forward_pop_routes),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_via_fix),
        cmocka_unit_test(test_response_via_ipv6),
        cmocka_unit_test(test_cancel_and_ack),
        cmocka_unit_test(test_branch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
