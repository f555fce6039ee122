/*
 * test_sip_msg.c: the SIP message parser and the typed header parsers.
 *
 * Covers framing in both modes (RFC 3261 18.3), the caps on incomplete input,
 * compact names, folding, whitespace before the colon, comma-separated values
 * across headers, quoted strings, every typed parser, validation verdicts and
 * the 400 reason phrases.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/sip_msg.h"

static struct sip_msg msg;

#define REG                                                                                        \
    "REGISTER sip:example.org SIP/2.0\r\n"                                                         \
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"                           \
    "Max-Forwards: 70\r\n"                                                                         \
    "To: Alice <sip:alice@example.org>\r\n"                                                        \
    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"                                       \
    "Call-ID: a84b4c76e66710@pc33.example.org\r\n"                                                 \
    "CSeq: 314159 REGISTER\r\n"                                                                    \
    "Contact: <sip:alice@192.0.2.10:5060>;expires=3600\r\n"                                        \
    "Content-Length: 0\r\n"                                                                        \
    "\r\n"

static int parse(const char *s, enum sip_msg_mode mode)
{
    return sip_msg_parse(&msg, s, strlen(s), mode, NULL);
}

static bool sl_is(struct p2p_slice s, const char *want)
{
    return p2p_slice_eq(s, p2p_slice_cstr(want));
}

static void test_register_both_modes(void **state)
{
    (void)state;
    size_t n = strlen(REG);

    assert_int_equal(parse(REG, SIP_MSG_DGRAM), (int)n);
    assert_true(msg.is_request);
    assert_true(sl_is(msg.method, "REGISTER"));
    assert_true(sl_is(msg.ruri, "sip:example.org"));
    assert_true(sl_is(msg.version, "SIP/2.0"));
    assert_int_equal(msg.nhdrs, 8);
    assert_int_equal(msg.content_length, 0);
    assert_int_equal(msg.body.len, 0);
    assert_int_equal(msg.head.len, n);
    assert_true(
        sl_is(sip_msg_hdr(&msg, SIP_HDR_CALL_ID)->value, "a84b4c76e66710@pc33.example.org"));
    assert_int_equal(sip_msg_validate(&msg, NULL), 0);
    assert_int_equal(parse(REG, SIP_MSG_STREAM), (int)n);
    /* every strict prefix is incomplete on a stream, and malformed as a datagram */
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(sip_msg_parse(&msg, REG, k, SIP_MSG_STREAM, NULL), -EAGAIN);
        assert_int_equal(sip_msg_parse(&msg, REG, k, SIP_MSG_DGRAM, NULL), -EBADMSG);
    }
}

static void test_stream_framing(void **state)
{
    (void)state;
    const char *two = "\r\n\r\n"
                      "MESSAGE sip:b@example.org SIP/2.0\r\nl: 5\r\n\r\nhello"
                      "OPTIONS sip:c@example.org SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    size_t n = strlen(two);
    struct sip_parse_err err;

    /* RFC 5626 3.5.1 keep-alives before the message are consumed with it */
    assert_int_equal(sip_msg_leading_crlf(two, n), 4);
    int rc = sip_msg_parse(&msg, two, n, SIP_MSG_STREAM, NULL);
    assert_int_equal(rc, (int)(strstr(two, "OPTIONS") - two));
    assert_true(sl_is(msg.body, "hello"));
    rc = sip_msg_parse(&msg, two + rc, n - (size_t)rc, SIP_MSG_STREAM, NULL);
    assert_true(rc > 0);
    assert_true(sl_is(msg.method, "OPTIONS"));
    /* only CRLFs: wait */
    assert_int_equal(sip_msg_parse(&msg, "\r\n\r\n", 4, SIP_MSG_STREAM, NULL), -EAGAIN);
    /* body not all there yet */
    assert_int_equal(parse("MESSAGE sip:b@x SIP/2.0\r\nl: 5\r\n\r\nhel", SIP_MSG_STREAM), -EAGAIN);
    /* RFC 3261 18.3: a stream message needs Content-Length */
    const char *nocl = "OPTIONS sip:x SIP/2.0\r\nTo: <sip:x>\r\n\r\n";
    assert_int_equal(sip_msg_parse(&msg, nocl, strlen(nocl), SIP_MSG_STREAM, &err), -EBADMSG);
    assert_int_equal(err.hdr, SIP_HDR_CONTENT_LENGTH);
    assert_string_equal(err.phrase, "Bad Request - missing Content-Length");
}

static void test_datagram_body(void **state)
{
    (void)state;
    const char *m = "MESSAGE sip:b@example.org SIP/2.0\r\nContent-Length: 3\r\n\r\nhello";
    struct sip_parse_err err;

    /* RFC 3261 18.3: a shorter Content-Length truncates the body */
    int rc = parse(m, SIP_MSG_DGRAM);
    assert_int_equal(rc, (int)strlen(m) - 2);
    assert_true(sl_is(msg.body, "hel"));
    /* no Content-Length: the rest of the datagram */
    m = "MESSAGE sip:b@example.org SIP/2.0\r\nTo: <sip:b@example.org>\r\n\r\nhello";
    assert_int_equal(parse(m, SIP_MSG_DGRAM), (int)strlen(m));
    assert_true(sl_is(msg.body, "hello"));
    assert_int_equal(msg.content_length, -1);
    /* larger: an error (400 for a request) */
    m = "MESSAGE sip:b@example.org SIP/2.0\r\nContent-Length: 30\r\n\r\nhello";
    assert_int_equal(sip_msg_parse(&msg, m, strlen(m), SIP_MSG_DGRAM, &err), -EBADMSG);
    assert_int_equal(err.hdr, SIP_HDR_CONTENT_LENGTH);
    assert_int_equal(sip_msg_parse(&msg, "", 0, SIP_MSG_DGRAM, NULL), -EBADMSG);
    /* after any error, msg describes this input, never the previous one */
    assert_true(parse(REG, SIP_MSG_DGRAM) > 0);
    assert_true(sip_msg_answerable(&msg));
    static char huge[SIP_MSG_MAX_SIZE + 1];
    memcpy(huge, REG, strlen(REG));
    assert_int_equal(sip_msg_parse(&msg, huge, sizeof(huge), SIP_MSG_DGRAM, NULL), -EMSGSIZE);
    assert_int_equal(msg.nhdrs, 0);
    assert_false(sip_msg_answerable(&msg));
    assert_null(sip_msg_hdr(&msg, SIP_HDR_VIA));
}

static void test_caps_on_incomplete_input(void **state)
{
    (void)state;
    size_t n = SIP_MSG_MAX_LINE + 200;
    char *buf = malloc(SIP_MSG_MAX_SIZE + 100);
    assert_non_null(buf);

    /* an over-long header line that never ends: -EMSGSIZE, not -EAGAIN */
    size_t off = (size_t)snprintf(buf, 200, "INVITE sip:a@b SIP/2.0\r\nSubject: ");
    memset(buf + off, 'x', n - off);
    assert_int_equal(sip_msg_parse(&msg, buf, n, SIP_MSG_STREAM, NULL), -EMSGSIZE);
    /* the same while still short of the cap: wait */
    assert_int_equal(sip_msg_parse(&msg, buf, off + 100, SIP_MSG_STREAM, NULL), -EAGAIN);
    /* a folded header counts as one line for the cap */
    off = (size_t)snprintf(buf, 200, "INVITE sip:a@b SIP/2.0\r\nSubject: a");
    while (off < n) {
        memcpy(buf + off, "\r\n xxxxxxxx", 11);
        off += 11;
    }
    assert_int_equal(sip_msg_parse(&msg, buf, off, SIP_MSG_STREAM, NULL), -EMSGSIZE);
    /* an over-long start line */
    memset(buf, 'A', n);
    assert_int_equal(sip_msg_parse(&msg, buf, n, SIP_MSG_STREAM, NULL), -EMSGSIZE);
    /* too many headers, before the head is complete */
    off = (size_t)snprintf(buf, 200, "INVITE sip:a@b SIP/2.0\r\n");
    for (unsigned k = 0; k <= SIP_MSG_MAX_HDRS; k++)
        off += (size_t)snprintf(buf + off, 40, "X-H%u: v\r\n", k);
    assert_int_equal(sip_msg_parse(&msg, buf, off, SIP_MSG_STREAM, NULL), -EMSGSIZE);
    assert_int_equal(sip_msg_parse(&msg, buf, off, SIP_MSG_DGRAM, NULL), -EMSGSIZE);
    /* exactly the cap is fine */
    off = (size_t)snprintf(buf, 200, "INVITE sip:a@b SIP/2.0\r\n");
    for (unsigned k = 0; k < SIP_MSG_MAX_HDRS; k++)
        off += (size_t)snprintf(buf + off, 40, "X-H%u: v\r\n", k);
    off += (size_t)snprintf(buf + off, 10, "\r\n");
    assert_int_equal(sip_msg_parse(&msg, buf, off, SIP_MSG_DGRAM, NULL), (int)off);
    assert_int_equal(msg.nhdrs, SIP_MSG_MAX_HDRS);
    /* a message as big as the cap never completes: -EMSGSIZE on a stream */
    off = (size_t)snprintf(buf, 200, "INVITE sip:a@b SIP/2.0\r\n");
    while (off + 12 < SIP_MSG_MAX_SIZE + 50)
        off += (size_t)snprintf(buf + off, 20, "X-A: %05u\r\n", (unsigned)(off % 99999));
    assert_int_equal(sip_msg_parse(&msg, buf, off, SIP_MSG_STREAM, NULL), -EMSGSIZE);
    /* a Content-Length past the cap is refused as soon as the head is read */
    const char *big = "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\nx";
    assert_int_equal(parse(big, SIP_MSG_STREAM), -EMSGSIZE);
    free(buf);
}

static void test_compact_fold_ws_multivalue(void **state)
{
    (void)state;
    const char *m = "INVITE sip:bob@example.org SIP/2.0\r\n"
                    "v: SIP/2.0/UDP a.example.org;branch=z9hG4bK1, SIP/2.0/TCP\r\n"
                    "   b.example.org:5070 ;branch=z9hG4bK2\r\n"
                    "VIA   :SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK3;received=192.0.2.1\r\n"
                    "f: \"Bob, \\\"the\\\" <builder>\" <sip:bob@example.org>;tag=x1\r\n"
                    "t: sip:carol@example.org\r\n"
                    "i: abc@def\r\n"
                    "CSEQ: 1 INVITE\r\n"
                    "m: <sip:a@b>;q=0.5, \"x,y\" <sip:c@d;lr>;expires=60\r\n"
                    "k: 100rel, timer\r\n"
                    "k: path\r\n"
                    "Unknown-Header: kept, as it is\r\n"
                    "e: gzip\r\n"
                    "c: application/sdp\r\n"
                    "l: 0\r\n"
                    "\r\n";
    struct sip_hdr_iter it;
    struct p2p_slice v;
    struct sip_via via;
    struct sip_addr a;
    struct sip_contact c;
    char buf[64];

    assert_int_equal(parse(m, SIP_MSG_STREAM), (int)strlen(m));
    assert_int_equal(sip_msg_validate(&msg, NULL), 0);
    assert_int_equal(sip_msg_hdr_count(&msg, SIP_HDR_VIA), 2);
    assert_true(sl_is(msg.hdrs[0].name, "v"));
    assert_true(sl_is(msg.hdrs[1].name, "VIA"));
    assert_int_equal(msg.hdrs[10].id, SIP_HDR_CONTENT_ENCODING);
    assert_int_equal(msg.hdrs[11].id, SIP_HDR_CONTENT_TYPE);

    sip_hdr_iter_init(&it, &msg, SIP_HDR_VIA);
    assert_true(sip_hdr_iter_next(&it, &v));
    assert_int_equal(sip_via_parse(v, &via), 0);
    assert_true(sl_is(via.host, "a.example.org"));
    assert_int_equal(via.port, 0);
    assert_true(sip_hdr_iter_next(&it, &v));
    assert_int_equal(it.hdr, 0);
    assert_int_equal(sip_via_parse(v, &via), 0);
    assert_true(sl_is(via.transport, "TCP"));
    assert_true(sl_is(via.host, "b.example.org"));
    assert_int_equal(via.port, 5070);
    assert_true(sl_is(via.branch, "z9hG4bK2"));
    assert_true(sip_hdr_iter_next(&it, &v));
    assert_int_equal(it.hdr, 1);
    assert_int_equal(sip_via_parse(v, &via), 0);
    assert_true(sl_is(via.host, "[2001:db8::1]"));
    assert_int_equal(via.port, 5062);
    assert_true(sl_is(via.received, "192.0.2.1"));
    assert_false(via.rport);
    assert_false(sip_hdr_iter_next(&it, &v));

    /* From is not a list: the comma in the quoted display name stays */
    assert_int_equal(sip_addr_parse(sip_msg_hdr(&msg, SIP_HDR_FROM)->value, &a), 0);
    assert_true(a.display_quoted);
    assert_int_equal(sip_unquote(a.display, buf, sizeof(buf)), 20);
    assert_string_equal(buf, "Bob, \"the\" <builder>");
    assert_true(sl_is(a.uri, "sip:bob@example.org"));
    assert_true(sl_is(a.tag, "x1"));
    assert_int_equal(sip_addr_parse(sip_msg_hdr(&msg, SIP_HDR_TO)->value, &a), 0);
    assert_false(a.angle);
    assert_null(a.tag.p);

    sip_hdr_iter_init(&it, &msg, SIP_HDR_CONTACT);
    assert_true(sip_hdr_iter_next(&it, &v));
    assert_int_equal(sip_contact_parse(v, &c), 0);
    assert_true(c.has_q && c.q == 500 && !c.has_expires);
    assert_true(sip_hdr_iter_next(&it, &v));
    assert_int_equal(sip_contact_parse(v, &c), 0);
    assert_true(sl_is(c.addr.display, "x,y"));
    assert_true(sl_is(c.addr.uri, "sip:c@d;lr"));
    assert_true(c.has_expires && c.expires == 60 && !c.has_q);
    assert_false(sip_hdr_iter_next(&it, &v));

    assert_true(sip_msg_has_token(&msg, SIP_HDR_SUPPORTED, "TIMER"));
    assert_true(sip_msg_has_token(&msg, SIP_HDR_SUPPORTED, "path"));
    assert_false(sip_msg_has_token(&msg, SIP_HDR_SUPPORTED, "gruu"));
    /* an unknown header is one value, commas and all */
    const struct sip_hdr *u = sip_msg_hdr_by_name(&msg, P2P_SLICE_LIT("unknown-header"));
    assert_non_null(u);
    assert_int_equal(u->id, SIP_HDR_OTHER);
    assert_true(sl_is(u->value, "kept, as it is"));
}

static void test_header_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum sip_hdr_id id;
    } t[] = {
        {"a", SIP_HDR_ACCEPT_CONTACT},
        {"b", SIP_HDR_REFERRED_BY},
        {"c", SIP_HDR_CONTENT_TYPE},
        {"e", SIP_HDR_CONTENT_ENCODING},
        {"f", SIP_HDR_FROM},
        {"i", SIP_HDR_CALL_ID},
        {"k", SIP_HDR_SUPPORTED},
        {"l", SIP_HDR_CONTENT_LENGTH},
        {"m", SIP_HDR_CONTACT},
        {"o", SIP_HDR_EVENT},
        {"r", SIP_HDR_REFER_TO},
        {"s", SIP_HDR_SUBJECT},
        {"t", SIP_HDR_TO},
        {"u", SIP_HDR_ALLOW_EVENTS},
        {"v", SIP_HDR_VIA},
        {"x", SIP_HDR_SESSION_EXPIRES},
        {"y", SIP_HDR_IDENTITY},
        {"V", SIP_HDR_VIA},
        {"q", SIP_HDR_OTHER},
        {"call-id", SIP_HDR_CALL_ID},
        {"CSeq", SIP_HDR_CSEQ},
        {"www-AUTHENTICATE", SIP_HDR_WWW_AUTHENTICATE},
        {"Vias", SIP_HDR_OTHER},
        {"Record-Route", SIP_HDR_RECORD_ROUTE},
        {"Call\rID", SIP_HDR_OTHER},
    };
    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++)
        assert_int_equal(sip_hdr_lookup(t[k].name, strlen(t[k].name)), t[k].id);
    assert_string_equal(sip_hdr_name(SIP_HDR_MAX_FORWARDS), "Max-Forwards");
    assert_null(sip_hdr_name(SIP_HDR_OTHER));
}

static void test_responses(void **state)
{
    (void)state;
    const char *m = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nl: 0\r\n\r\n";
    assert_true(parse(m, SIP_MSG_STREAM) > 0);
    assert_false(msg.is_request);
    assert_int_equal(msg.status, 180);
    assert_true(sl_is(msg.reason, "Ringing"));
    assert_true(parse("SIP/2.0 200\r\nl: 0\r\n\r\n", SIP_MSG_STREAM) > 0);
    assert_int_equal(msg.reason.len, 0);
    assert_int_equal(parse("SIP/2.0 99 Low\r\nl: 0\r\n\r\n", SIP_MSG_STREAM), -EBADMSG);
    assert_int_equal(parse("SIP/2.0 2000 Big\r\nl: 0\r\n\r\n", SIP_MSG_STREAM), -EBADMSG);
    assert_int_equal(parse("SIP/2.0 20 Small\r\nl: 0\r\n\r\n", SIP_MSG_STREAM), -EBADMSG);
    assert_false(sip_msg_answerable(&msg));
}

static void test_bad_lines(void **state)
{
    (void)state;
    static const char *bad[] = {
        "INVITE  sip:a@b SIP/2.0\r\nl: 0\r\n\r\n",       /* two SPs */
        "INVITE sip:a@b SIP/2.0 \r\nl: 0\r\n\r\n",       /* trailing SP */
        "INVITE <sip:a@b> SIP/2.0\r\nl: 0\r\n\r\n",      /* <> */
        "INVITE sip:a@b SIP/2\r\nl: 0\r\n\r\n",          /* version */
        "INVITE sip:a@b SIP/2.0\r\n: x\r\nl: 0\r\n\r\n", /* empty name */
        "INVITE sip:a@b SIP/2.0\r\nNoColon\r\nl: 0\r\n\r\n",
        "INVITE sip:a@b SIP/2.0\r\n folded-first: x\r\nl: 0\r\n\r\n",
        "INVITE sip:a@b SIP/2.0\r\nX: a\rb\r\nl: 0\r\n\r\n", /* bare CR */
        "INVITE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n",           /* RFC 4475 3.1.2.3 */
        "INVITE sip:a@b SIP/2.0\r\nl: 0\r\nl: 0\r\n\r\n",    /* RFC 4475 3.3.9 */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        if (parse(bad[k], SIP_MSG_STREAM) != -EBADMSG)
            fail_msg("accepted: %s", bad[k]);
    }
    /* a NUL inside a value is a byte like another; in a quoted-pair it is legal */
    static const char nul[] = "OPTIONS sip:a@b SIP/2.0\r\nSubject: a\0b\r\nl: 0\r\n\r\n";
    assert_int_equal(sip_msg_parse(&msg, nul, sizeof(nul) - 1, SIP_MSG_STREAM, NULL),
                     (int)sizeof(nul) - 1);
    /* a bad request line: the head is still read, so the 400 can be built */
    const char *bl = "INVITE  sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
                     "CSeq: 1 INVITE\r\nl: 0\r\n\r\n";
    struct sip_parse_err err;
    assert_int_equal(sip_msg_parse(&msg, bl, strlen(bl) - 2, SIP_MSG_STREAM, NULL), -EAGAIN);
    assert_int_equal(sip_msg_parse(&msg, bl, strlen(bl), SIP_MSG_STREAM, &err), -EBADMSG);
    assert_string_equal(err.phrase, "Bad Request - malformed Request-Line");
    assert_int_equal(msg.nhdrs, 3);
    assert_true(sip_msg_answerable(&msg));
    /* LF-only line ends are accepted */
    assert_true(parse("OPTIONS sip:a@b SIP/2.0\nl: 0\n\n", SIP_MSG_STREAM) > 0);
}

static void test_validate_and_phrases(void **state)
{
    (void)state;
    struct sip_parse_err err;
    static const struct {
        const char *hdrs;
        const char *phrase;
    } t[] = {
        {"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n"
         "Call-ID: x\r\nCSeq: 1 INVITE\r\n",
         NULL},
        {"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n",
         "Bad Request - missing Via"},
        {"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n",
         "Bad Request - missing From"},
        {"Via: SIP/2.0/UDP h;;\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 1 INVITE\r\n",
         "Bad Request - malformed Via"},
        {"Via: SIP/2.0/UDP h:99999\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 1 INVITE\r\n",
         "Bad Request - malformed Via"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 1 BYE\r\n",
         "Bad Request - CSeq method does not match"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 2147483648 INVITE\r\n",
         "Bad Request - malformed CSeq"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 1 INVITE\r\nMax-Forwards: 256\r\n",
         "Bad Request - malformed Max-Forwards"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x y\r\n"
         "CSeq: 1 INVITE\r\n",
         "Bad Request - malformed Call-ID"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nTo: <sip:c@b>\r\n"
         "Call-ID: x\r\nCSeq: 1 INVITE\r\n",
         "Bad Request - multiple To"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 1 INVITE\r\nRoute: sip:a@b;lr\r\n",
         "Bad Request - malformed Route"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 1 INVITE\r\nContact: <sip:a@b>;q=2\r\n",
         "Bad Request - malformed Contact"},
        {"Via: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: < sip:a@b>\r\nCall-ID: x\r\n"
         "CSeq: 1 INVITE\r\n",
         "Bad Request - malformed To"},
    };
    char buf[512];

    for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        int n = snprintf(buf, sizeof(buf), "INVITE sip:a@b SIP/2.0\r\n%sl: 0\r\n\r\n", t[k].hdrs);
        assert_int_equal(sip_msg_parse(&msg, buf, (size_t)n, SIP_MSG_STREAM, NULL), n);
        int rc = sip_msg_validate(&msg, &err);
        if (t[k].phrase == NULL) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -EBADMSG);
            if (strcmp(err.phrase, t[k].phrase) != 0)
                fail_msg("case %zu: \"%s\", want \"%s\"", k, err.phrase, t[k].phrase);
        }
    }
    /* answerable needs Via and CSeq */
    const char *nv = "INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
    assert_int_equal(parse(nv, SIP_MSG_STREAM), (int)strlen(nv));
    assert_false(sip_msg_answerable(&msg));
    assert_int_equal(sip_msg_validate(&msg, &err), -EBADMSG);
    assert_string_equal(err.phrase, "Bad Request - missing Via");
}

static void test_typed_parsers(void **state)
{
    (void)state;
    struct sip_via via;
    struct sip_cseq cs;
    struct sip_contact c;
    struct sip_media_type mt;
    uint32_t u;

    /* RFC 3581: rport with and without a value */
    assert_int_equal(sip_via_parse(P2P_SLICE_LIT("SIP/2.0/UDP h;rport;branch=z9hG4bKx"), &via), 0);
    assert_true(via.rport);
    assert_int_equal(via.rport_value, 0);
    assert_true(sl_is(via.rport_p, "rport"));
    assert_int_equal(
        sip_via_parse(
            P2P_SLICE_LIT("SIP / 2.0 / TLS h:5061 ; rport = 5070 ; ttl=16 ; maddr=224.0.1.75"),
            &via),
        0);
    assert_true(via.rport);
    assert_int_equal(via.rport_value, 5070);
    assert_true(sl_is(via.protocol, "SIP"));
    assert_true(sl_is(via.version, "2.0"));
    assert_true(sl_is(via.ttl, "16"));
    assert_true(sl_is(via.maddr, "224.0.1.75"));
    /* RFC 5118 4.5: received with and without brackets */
    assert_int_equal(
        sip_via_parse(P2P_SLICE_LIT("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255]"),
                      &via),
        0);
    assert_true(sl_is(via.received, "[2001:db8::9:255]"));
    assert_int_equal(
        sip_via_parse(P2P_SLICE_LIT("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255"), &via),
        0);
    assert_int_equal(sip_via_parse(P2P_SLICE_LIT("SIP/2.0/UDP h;received=nothost"), &via),
                     -EBADMSG);
    assert_int_equal(sip_via_parse(P2P_SLICE_LIT("SIP/2.0/UDP"), &via), -EBADMSG);
    assert_int_equal(sip_via_parse(P2P_SLICE_LIT("SIP/2.0/UDP [::1"), &via), -EBADMSG);
    assert_int_equal(sip_via_parse(P2P_SLICE_LIT("SIP/2.0/UDP h;ttl=300"), &via), -EBADMSG);

    assert_int_equal(sip_cseq_parse(P2P_SLICE_LIT(" 0009\r\n  INVITE "), &cs), 0);
    assert_int_equal(cs.num, 9);
    assert_int_equal(sip_cseq_parse(P2P_SLICE_LIT("1INVITE"), &cs), -EBADMSG);
    assert_int_equal(sip_cseq_parse(P2P_SLICE_LIT("1 INVITE x"), &cs), -EBADMSG);

    assert_int_equal(sip_contact_parse(P2P_SLICE_LIT(" * "), &c), 0);
    assert_true(c.star);
    assert_int_equal(sip_contact_parse(P2P_SLICE_LIT("<sip:a@b>;expires=99999999999999"), &c), 0);
    assert_int_equal(c.expires, UINT32_MAX);
    assert_int_equal(sip_contact_parse(P2P_SLICE_LIT("<sip:a@b>;q=1.000"), &c), 0);
    assert_int_equal(c.q, 1000);
    assert_int_equal(sip_contact_parse(P2P_SLICE_LIT("<sip:a@b>;q=1.001"), &c), -EBADMSG);
    assert_int_equal(sip_contact_parse(P2P_SLICE_LIT("<sip:a@b>;expires=x"), &c), -EBADMSG);
    /* a bare addr-spec cannot carry '?' (RFC 4475 3.1.2.13) */
    assert_int_equal(sip_contact_parse(P2P_SLICE_LIT("sip:a@b?Route=x"), &c), -EBADMSG);
    assert_int_equal(sip_contact_parse(P2P_SLICE_LIT("\"unterminated <sip:a@b>"), &c), -EBADMSG);

    assert_int_equal(sip_media_type_parse(P2P_SLICE_LIT("multipart/mixed; boundary=\"x y\""), &mt),
                     0);
    assert_true(sl_is(mt.type, "multipart"));
    assert_true(sl_is(mt.subtype, "mixed"));
    struct p2p_slice b;
    assert_true(sip_param_find(mt.params, "BOUNDARY", &b));
    assert_true(sl_is(b, "x y"));

    assert_int_equal(sip_uint_parse(P2P_SLICE_LIT(" 0070 "), 255, &u), 0);
    assert_int_equal(u, 70);
    assert_int_equal(sip_uint_parse(P2P_SLICE_LIT("256"), 255, &u), -ERANGE);
    assert_int_equal(sip_uint_parse(P2P_SLICE_LIT("1e3"), 255, &u), -EBADMSG);
    assert_int_equal(sip_uint_parse(P2P_SLICE_LIT(""), 255, &u), -EBADMSG);
    assert_true(sip_is_token(P2P_SLICE_LIT("z9hG4bK-.!%*_+`'~")));
    assert_false(sip_is_token(P2P_SLICE_LIT("a b")));
}

static void test_digest(void **state)
{
    (void)state;
    struct sip_auth a;
    struct sip_param prm;
    char buf[64];
    const char *cred =
        "Digest username=\"bob\", realm=\"biloxi.com\",\r\n  nonce=\"dcd98b7102dd2f0e\","
        " uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\","
        " response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c\","
        " algorithm=MD5, x-ext=\"a\\\"b\"";

    assert_int_equal(sip_auth_parse(p2p_slice_cstr(cred), &a), 0);
    assert_true(sl_is(a.scheme, "Digest"));
    assert_true(sl_is(a.username, "bob"));
    assert_true(sl_is(a.realm, "biloxi.com"));
    assert_true(sl_is(a.nonce, "dcd98b7102dd2f0e"));
    assert_true(sl_is(a.uri, "sip:bob@biloxi.com"));
    assert_true(sl_is(a.qop, "auth"));
    assert_true(sl_is(a.nc, "00000001"));
    assert_true(sl_is(a.cnonce, "0a4f113b"));
    assert_true(sl_is(a.response, "6629fae49393a05397450978507c4ef1"));
    assert_true(sl_is(a.opaque, "5ccc069c"));
    assert_true(sl_is(a.algorithm, "MD5"));
    assert_null(a.stale.p);
    /* the unknown parameter is reachable through params */
    struct p2p_slice rest = a.params;
    bool seen = false;
    while (sip_auth_param_next(&rest, &prm) == 1) {
        if (sl_is(prm.name, "x-ext")) {
            seen = true;
            assert_int_equal(sip_unquote(prm.value, buf, sizeof(buf)), 3);
            assert_string_equal(buf, "a\"b");
        }
    }
    assert_true(seen);
    /* a challenge */
    assert_int_equal(
        sip_auth_parse(P2P_SLICE_LIT("Digest realm=\"r\", nonce=\"n\", "
                                     "algorithm=SHA-256, qop=\"auth,auth-int\", stale=FALSE"),
                       &a),
        0);
    assert_true(sl_is(a.qop, "auth,auth-int"));
    assert_true(sl_is(a.stale, "FALSE"));
    assert_true(sl_is(a.algorithm, "SHA-256"));
    /* duplicates and junk */
    assert_int_equal(sip_auth_parse(P2P_SLICE_LIT("Digest realm=\"a\", realm=\"b\""), &a),
                     -EBADMSG);
    assert_int_equal(sip_auth_parse(P2P_SLICE_LIT("Digest realm=\"a"), &a), -EBADMSG);
    assert_int_equal(sip_auth_parse(P2P_SLICE_LIT("Digest realm"), &a), -EBADMSG);
    assert_int_equal(sip_unquote(P2P_SLICE_LIT("abcdef"), buf, 4), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_both_modes),
        cmocka_unit_test(test_stream_framing),
        cmocka_unit_test(test_datagram_body),
        cmocka_unit_test(test_caps_on_incomplete_input),
        cmocka_unit_test(test_compact_fold_ws_multivalue),
        cmocka_unit_test(test_header_names),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_validate_and_phrases),
        cmocka_unit_test(test_typed_parsers),
        cmocka_unit_test(test_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
