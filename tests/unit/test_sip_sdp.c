/*
 * test_sip_sdp.c: the SDP reader and rewriter used for media anchoring (sip_sdp.h,
 * RFC 4566 5.7 "c=", 5.14 "m=", RFC 3605 "a=rtcp") and sip_build_replace_body().
 *
 * Parsing: session and media level c= (IPv4, IPv6, a multicast ttl suffix), m= ports
 * (0, "port/count"), the anchor attribute, CRLF and LF line ends, a last line with no
 * terminator, every malformed case -EBADMSG, every prefix of a valid body parsed or
 * refused (never read past its end: each prefix sits in an exact-size allocation).
 * Rewriting and body replacement: whole outputs compared byte for byte with the
 * message the change calls for, and the output on error as it was before.
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

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_sdp.h"

/* An offer with every feature the parser reads (CRLF line ends). */
#define OFFER                                                                                      \
    "v=0\r\n"                                                                                      \
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"                                          \
    "s=-\r\n"                                                                                      \
    "c=IN IP4 192.0.2.10\r\n"                                                                      \
    "t=0 0\r\n"                                                                                    \
    "a=x-p2psip-anchor:0123abcd\r\n"                                                               \
    "m=audio 49170 RTP/AVP 0 8 101\r\n"                                                            \
    "a=rtpmap:101 telephone-event/8000\r\n"                                                        \
    "a=rtcp:49171\r\n"                                                                             \
    "m=video 0 RTP/AVP 31\r\n"                                                                     \
    "m=video 49172/2 RTP/AVP 31\r\n"                                                               \
    "c=IN IP6 2001:db8::1\r\n"                                                                     \
    "a=rtcp:49175 IN IP6 2001:db8::1\r\n"

/* Copies s into an exact-size allocation, so ASan sees any read past its end. */
static char *exact(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

/* s with every CRLF turned into LF (static storage, one at a time). */
static const char *lf_only(const char *s)
{
    static char out[SIP_SDP_MAX + 64];
    size_t n = 0;

    for (; *s != '\0'; s++) {
        if (s[0] == '\r' && s[1] == '\n')
            continue;
        assert_true(n < sizeof(out) - 1);
        out[n++] = *s;
    }
    out[n] = '\0';
    return out;
}

static void assert_slice(struct p2p_slice s, const char *want)
{
    if (s.len != strlen(want) || (s.len > 0 && memcmp(s.p, want, s.len) != 0))
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.p ? s.p : "", want);
}

/* The slice lies in body at this offset: the parser hands out slices, not copies. */
static void assert_at(struct p2p_slice s, const char *body, const char *want)
{
    assert_slice(s, want);
    const char *hit = strstr(body, want);
    assert_non_null(hit);
    assert_ptr_equal(s.p, hit);
}

static int parse_str(const char *s, struct sip_sdp *out)
{
    return sip_sdp_parse(s, strlen(s), out);
}

static void check_offer(const char *body)
{
    struct sip_sdp sdp;

    assert_int_equal(parse_str(body, &sdp), 0);
    /* session level c= (the o= line's address is not a c=) */
    assert_slice(sdp.c_addr, "192.0.2.10");
    assert_ptr_equal(sdp.c_addr.p, strstr(body, "c=IN IP4 ") + 9);
    assert_false(sdp.c_ip6);
    assert_int_equal(sdp.n_media, 3);
    assert_int_equal(sdp.media[0].port, 49170);
    assert_int_equal(sdp.media[0].c_addr.len, 0);
    assert_int_equal(sdp.media[1].port, 0); /* disabled stream (RFC 3264 5.1) */
    assert_int_equal(sdp.media[1].c_addr.len, 0);
    assert_int_equal(sdp.media[2].port, 49172); /* "49172/2": the first of two ports */
    assert_ptr_equal(sdp.media[2].c_addr.p, strstr(body, "c=IN IP6 ") + 9);
    assert_slice(sdp.media[2].c_addr, "2001:db8::1");
    assert_at(sdp.anchor, body, "0123abcd");
    /* the media address falls back to the session's */
    assert_ptr_equal(sip_sdp_media_addr(&sdp, 0).p, sdp.c_addr.p);
    assert_slice(sip_sdp_media_addr(&sdp, 0), "192.0.2.10");
    assert_slice(sip_sdp_media_addr(&sdp, 1), "192.0.2.10");
    assert_ptr_equal(sip_sdp_media_addr(&sdp, 2).p, sdp.media[2].c_addr.p);
    assert_slice(sip_sdp_media_addr(&sdp, 2), "2001:db8::1");
    /* an index past the media: the session's address */
    assert_slice(sip_sdp_media_addr(&sdp, 3), "192.0.2.10");
    assert_slice(sip_sdp_media_addr(&sdp, SIP_SDP_MEDIA_MAX + 5), "192.0.2.10");
}

static void test_parse_offer(void **state)
{
    (void)state;
    check_offer(OFFER);
    check_offer(lf_only(OFFER));
}

static void test_parse_ip6_and_ttl(void **state)
{
    (void)state;
    struct sip_sdp sdp;
    const char *ip6 = "v=0\r\nc=IN IP6 ::1\r\nm=audio 4000 RTP/AVP 0\r\n";
    const char *mc = "v=0\r\n"
                     "c=IN IP4 224.2.1.1/127\r\n"
                     "m=audio 4000 RTP/AVP 0\r\n"
                     "c=IN IP4 224.2.1.2/127/3\r\n"
                     "m=video 4002 RTP/AVP 31\r\n"
                     "c=IN IP6 FF15::101/3\r\n";

    assert_int_equal(parse_str(ip6, &sdp), 0);
    assert_true(sdp.c_ip6);
    assert_slice(sdp.c_addr, "::1");
    assert_int_equal(sdp.n_media, 1);
    assert_int_equal(sdp.media[0].port, 4000);
    assert_slice(sip_sdp_media_addr(&sdp, 0), "::1");

    /* RFC 4566 5.7: "<base multicast address>[/<ttl>]/<number of addresses>" */
    assert_int_equal(parse_str(mc, &sdp), 0);
    assert_false(sdp.c_ip6);
    assert_slice(sdp.c_addr, "224.2.1.1");
    assert_int_equal(sdp.n_media, 2);
    assert_slice(sdp.media[0].c_addr, "224.2.1.2");
    assert_slice(sdp.media[1].c_addr, "FF15::101");
    assert_int_equal(sdp.anchor.len, 0);

    /* no c= anywhere: every media address is empty */
    assert_int_equal(parse_str("v=0\nm=audio 4000 RTP/AVP 0\n", &sdp), 0);
    assert_int_equal(sdp.c_addr.len, 0);
    assert_int_equal(sip_sdp_media_addr(&sdp, 0).len, 0);
    /* a bare v= line is an SDP without media */
    assert_int_equal(parse_str("v=0", &sdp), 0);
    assert_int_equal(sdp.n_media, 0);
}

static void test_parse_no_terminator(void **state)
{
    (void)state;
    struct sip_sdp sdp;
    const char *s;
    char *b;

    /* the last line has no line end: each kind of line still counts */
    s = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0";
    b = exact(s, strlen(s));
    assert_int_equal(sip_sdp_parse(b, strlen(s), &sdp), 0);
    assert_int_equal(sdp.n_media, 1);
    assert_int_equal(sdp.media[0].port, 5004);
    free(b);

    s = "v=0\nm=audio 5004 RTP/AVP 0\nc=IN IP4 10.0.0.2";
    b = exact(s, strlen(s));
    assert_int_equal(sip_sdp_parse(b, strlen(s), &sdp), 0);
    assert_slice(sdp.media[0].c_addr, "10.0.0.2");
    assert_ptr_equal(sdp.media[0].c_addr.p, b + 36);
    free(b);

    s = "v=0\r\na=x-p2psip-anchor:beef";
    b = exact(s, strlen(s));
    assert_int_equal(sip_sdp_parse(b, strlen(s), &sdp), 0);
    assert_slice(sdp.anchor, "beef");
    free(b);

    /* the CR before a LF is not part of the anchor; an anchor with no value is empty */
    assert_int_equal(parse_str("v=0\r\na=x-p2psip-anchor:ab\r\n", &sdp), 0);
    assert_slice(sdp.anchor, "ab");
    assert_int_equal(parse_str("v=0\r\na=x-p2psip-anchor:\r\n", &sdp), 0);
    assert_int_equal(sdp.anchor.len, 0);
    /* an attribute that only starts like ours is not ours */
    assert_int_equal(parse_str("v=0\r\na=x-p2psip-anchored\r\n", &sdp), 0);
    assert_int_equal(sdp.anchor.len, 0);
}

static void test_parse_ports(void **state)
{
    (void)state;
    struct sip_sdp sdp;

    assert_int_equal(parse_str("v=0\r\nm=audio 65535 RTP/AVP 0\r\n", &sdp), 0);
    assert_int_equal(sdp.media[0].port, 65535);
    assert_int_equal(parse_str("v=0\r\nm=audio 00049170 RTP/AVP 0\r\n", &sdp), 0);
    assert_int_equal(sdp.media[0].port, 49170);
    assert_int_equal(parse_str("v=0\r\nm=video 49170/2 RTP/AVP 31\r\n", &sdp), 0);
    assert_int_equal(sdp.media[0].port, 49170);
    assert_int_equal(parse_str("v=0\r\nm=audio 0 RTP/AVP 0\r\n", &sdp), 0);
    assert_int_equal(sdp.media[0].port, 0);
}

static void test_parse_media_max(void **state)
{
    (void)state;
    char body[1024];
    struct sip_sdp sdp;
    size_t n = (size_t)snprintf(body, sizeof(body), "v=0\r\nc=IN IP4 10.0.0.1\r\n");

    for (unsigned i = 0; i < SIP_SDP_MEDIA_MAX; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "m=audio %u RTP/AVP 0\r\n", 4000 + 2 * i);
    assert_int_equal(sip_sdp_parse(body, n, &sdp), 0);
    assert_int_equal(sdp.n_media, SIP_SDP_MEDIA_MAX);
    assert_int_equal(sdp.media[SIP_SDP_MEDIA_MAX - 1].port, 4000 + 2 * (SIP_SDP_MEDIA_MAX - 1));
    /* one more is refused, even a disabled one */
    n += (size_t)snprintf(body + n, sizeof(body) - n, "m=audio 0 RTP/AVP 0\r\n");
    memset(&sdp, 0x5a, sizeof(sdp));
    assert_int_equal(sip_sdp_parse(body, n, &sdp), -EBADMSG);
    assert_int_equal(sdp.n_media, 0x5a5a5a5a5a5a5a5aull); /* output written only on success */
}

static void test_parse_size_cap(void **state)
{
    (void)state;
    static char body[SIP_SDP_MAX + 1];
    struct sip_sdp sdp;
    const char *head = "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=x:";

    /* exactly SIP_SDP_MAX bytes: one long attribute line */
    memset(body, 'y', sizeof(body));
    memcpy(body, head, strlen(head));
    body[SIP_SDP_MAX - 2] = '\r';
    body[SIP_SDP_MAX - 1] = '\n';
    assert_int_equal(sip_sdp_parse(body, SIP_SDP_MAX, &sdp), 0);
    assert_int_equal(sdp.n_media, 1);
    /* one byte more */
    body[SIP_SDP_MAX - 2] = 'y';
    body[SIP_SDP_MAX - 1] = 'y';
    body[SIP_SDP_MAX] = '\n';
    assert_int_equal(sip_sdp_parse(body, SIP_SDP_MAX + 1, &sdp), -EBADMSG);
    assert_int_equal(sip_sdp_parse(body, SIZE_MAX, &sdp), -EBADMSG);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "\r\n",
        "\r\nv=0\r\n",
        "o=- 1 1 IN IP4 10.0.0.1\r\nv=0\r\n", /* RFC 4566 5: v= first */
        " v=0\r\n",
        "V=0\r\n",
        /* c=: only IN IP4 / IN IP6 with an address */
        "v=0\r\nc=ATM NSAP 47.0005.80.ffe100.0000.f21a.01a7.0000.0020.4800.0001.00\r\n",
        "v=0\r\nc=IN IP5 10.0.0.1\r\n",
        "v=0\r\nc=IN  IP4 10.0.0.1\r\n",
        "v=0\r\nc=IN ip4 10.0.0.1\r\n",
        "v=0\r\nc=IN IP4 \r\n",
        "v=0\r\nc=IN IP4 /127\r\n",
        "v=0\r\nc=IN IP4",
        "v=0\r\nc=\r\n",
        "v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=TN RFC2543 555-1234\r\n", /* media level too */
        /* m=: a media name, a port 0..65535, then a space or "/" */
        "v=0\r\nm=audio RTP/AVP 0\r\n",
        "v=0\r\nm=audio\r\n",
        "v=0\r\nm=audio \r\n",
        "v=0\r\nm=\r\n",
        "v=0\r\nm= 4000 RTP/AVP 0\r\n",
        "v=0\r\nm=audio 65536 RTP/AVP 0\r\n",
        "v=0\r\nm=audio 99999999999999999999999 RTP/AVP 0\r\n",
        "v=0\r\nm=audio 4000\r\n",
        "v=0\r\nm=audio 4000",
        "v=0\r\nm=audio 4000x RTP/AVP 0\r\n",
        "v=0\r\nm=audio -1 RTP/AVP 0\r\n",
        "v=0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 70000/2 RTP/AVP 31\r\n",
    };
    struct sip_sdp sdp;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i]);
        char *b = exact(bad[i], len);
        int rc = sip_sdp_parse(b, len, &sdp);
        if (rc != -EBADMSG)
            fail_msg("bad[%zu] \"%s\": %d, want -EBADMSG", i, bad[i], rc);
        free(b);
    }
}

/* Number of complete "m=" lines (at line start) in s[0, len). */
static size_t count_media(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if ((i == 0 || s[i - 1] == '\n') && s[i] == 'm' && s[i + 1] == '=')
            n++;
    }
    return n;
}

static void check_prefixes(const char *body)
{
    size_t len = strlen(body);
    struct sip_sdp full, sdp;

    assert_int_equal(sip_sdp_parse(body, len, &full), 0);
    for (size_t n = 0; n <= len; n++) {
        char *b = exact(body, n);
        int rc = sip_sdp_parse(b, n, &sdp);
        if (n < 2) {
            assert_int_equal(rc, -EBADMSG); /* not even "v=" */
        } else if (body[n - 1] == '\n') {
            /* cut at a line end: a valid SDP with the media read so far */
            assert_int_equal(rc, 0);
            assert_int_equal(sdp.n_media, count_media(body, n));
        }
        if (rc == 0) {
            assert_true(sdp.n_media <= full.n_media);
            for (size_t i = 0; i + 1 < sdp.n_media; i++)
                assert_int_equal(sdp.media[i].port, full.media[i].port);
            assert_true(sdp.c_addr.len == 0 ||
                        (sdp.c_addr.p >= b && sdp.c_addr.p + sdp.c_addr.len <= b + n));
            assert_true(sdp.anchor.len == 0 ||
                        (sdp.anchor.p >= b && sdp.anchor.p + sdp.anchor.len <= b + n));
        } else if (rc != -EBADMSG) {
            fail_msg("prefix %zu: %d", n, rc);
        }
        free(b);
    }
}

static void test_parse_prefixes(void **state)
{
    (void)state;
    check_prefixes(OFFER);
    check_prefixes(lf_only(OFFER));
    check_prefixes("v=0\r\nc=IN IP4 224.2.1.1/127\r\nm=audio 65535 RTP/AVP 0\r\n");
}

/* ---- rewrite ---- */

static void assert_out(const struct p2p_buf *b, size_t from, const char *want)
{
    if (b->len - from != strlen(want) || memcmp(b->data + from, want, b->len - from) != 0)
        fail_msg("got:\n%.*s\nwant:\n%s", (int)(b->len - from), b->data + from, want);
}

/* Rewrites body (an exact-size copy) into a fresh buffer and compares. */
static void check_rewrite(const char *body, const struct sip_sdp_rewrite *rw, const char *want)
{
    size_t len = strlen(body);
    char *b = exact(body, len);
    struct p2p_buf out;

    p2p_buf_init(&out, 4 * SIP_SDP_MAX);
    assert_int_equal(sip_sdp_rewrite(b, len, rw, &out), 0);
    assert_out(&out, 0, want);
    p2p_buf_free(&out);
    free(b);
}

static void test_rewrite_anchoring(void **state)
{
    (void)state;
    /* what a node does toward its phone (media_glue.c to_phone) */
    struct sip_sdp_rewrite rw = {
        .addr = "127.0.0.1",
        .ports = {40000, 0, 40002},
        .drop_rtcp = true,
        .drop_anchor = true,
    };
    check_rewrite(OFFER, &rw,
                  "v=0\r\n"
                  "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
                  "s=-\r\n"
                  "c=IN IP4 127.0.0.1\r\n"
                  "t=0 0\r\n"
                  "m=audio 40000 RTP/AVP 0 8 101\r\n"
                  "a=rtpmap:101 telephone-event/8000\r\n"
                  "m=video 0 RTP/AVP 31\r\n"
                  "m=video 40002/2 RTP/AVP 31\r\n"
                  "c=IN IP4 127.0.0.1\r\n");
    /* the same with LF line ends: the lines keep theirs */
    check_rewrite(lf_only(OFFER), &rw,
                  "v=0\n"
                  "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\n"
                  "s=-\n"
                  "c=IN IP4 127.0.0.1\n"
                  "t=0 0\n"
                  "m=audio 40000 RTP/AVP 0 8 101\n"
                  "a=rtpmap:101 telephone-event/8000\n"
                  "m=video 0 RTP/AVP 31\n"
                  "m=video 40002/2 RTP/AVP 31\n"
                  "c=IN IP4 127.0.0.1\n");

    /* what a node does toward the other node (to_overlay) */
    struct sip_sdp_rewrite mark = {.drop_anchor = true, .add_anchor = "ffee.0011"};
    check_rewrite(OFFER, &mark,
                  "v=0\r\n"
                  "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
                  "s=-\r\n"
                  "c=IN IP4 192.0.2.10\r\n"
                  "t=0 0\r\n"
                  "a=x-p2psip-anchor:ffee.0011\r\n"
                  "m=audio 49170 RTP/AVP 0 8 101\r\n"
                  "a=rtpmap:101 telephone-event/8000\r\n"
                  "a=rtcp:49171\r\n"
                  "m=video 0 RTP/AVP 31\r\n"
                  "m=video 49172/2 RTP/AVP 31\r\n"
                  "c=IN IP6 2001:db8::1\r\n"
                  "a=rtcp:49175 IN IP6 2001:db8::1\r\n");
}

static void test_rewrite_identity(void **state)
{
    (void)state;
    struct sip_sdp_rewrite none;
    static const char *const bodies[] = {
        OFFER,
        "v=0",
        "v=0\r\nc=IN IP4 10.0.0.1/1\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:4001",
        "v=0\n\n\r\nx\r\r\nm=audio 4000/3 RTP/AVP 0\na=x-p2psip-anchor:\n",
    };

    /* nothing asked: every byte comes out as it went in */
    memset(&none, 0, sizeof(none));
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        check_rewrite(bodies[i], &none, bodies[i]);
        check_rewrite(lf_only(bodies[i]), &none, lf_only(bodies[i]));
    }
}

static void test_rewrite_each(void **state)
{
    (void)state;
    const char *body = "v=0\r\n"
                       "c=IN IP4 224.2.1.1/127\r\n"
                       "m=audio 5004 RTP/AVP 0\r\n"
                       "a=rtcp:5005\r\n"
                       "a=x-p2psip-anchor:00\r\n"
                       "m=audio 0 RTP/AVP 0\r\n"
                       "a=rtcp:9\r\n";
    struct sip_sdp_rewrite rw;

    /* the address alone; a ttl belongs to a multicast address (RFC 4566 5.7) and
     * goes with it */
    memset(&rw, 0, sizeof(rw));
    rw.addr = "192.0.2.1";
    check_rewrite(body, &rw,
                  "v=0\r\n"
                  "c=IN IP4 192.0.2.1\r\n"
                  "m=audio 5004 RTP/AVP 0\r\n"
                  "a=rtcp:5005\r\n"
                  "a=x-p2psip-anchor:00\r\n"
                  "m=audio 0 RTP/AVP 0\r\n"
                  "a=rtcp:9\r\n");
    /* ports alone, the second one on a disabled stream; a=rtcp kept unless asked */
    memset(&rw, 0, sizeof(rw));
    rw.ports[0] = 7;
    rw.ports[1] = 65535;
    check_rewrite(body, &rw,
                  "v=0\r\n"
                  "c=IN IP4 224.2.1.1/127\r\n"
                  "m=audio 7 RTP/AVP 0\r\n"
                  "a=rtcp:5005\r\n"
                  "a=x-p2psip-anchor:00\r\n"
                  "m=audio 65535 RTP/AVP 0\r\n"
                  "a=rtcp:9\r\n");
    /* a=rtcp alone, at both levels */
    memset(&rw, 0, sizeof(rw));
    rw.drop_rtcp = true;
    check_rewrite(body, &rw,
                  "v=0\r\n"
                  "c=IN IP4 224.2.1.1/127\r\n"
                  "m=audio 5004 RTP/AVP 0\r\n"
                  "a=x-p2psip-anchor:00\r\n"
                  "m=audio 0 RTP/AVP 0\r\n");
    /* the anchor alone, wherever it is */
    memset(&rw, 0, sizeof(rw));
    rw.drop_anchor = true;
    check_rewrite(body, &rw,
                  "v=0\r\n"
                  "c=IN IP4 224.2.1.1/127\r\n"
                  "m=audio 5004 RTP/AVP 0\r\n"
                  "a=rtcp:5005\r\n"
                  "m=audio 0 RTP/AVP 0\r\n"
                  "a=rtcp:9\r\n");
    /* added without dropping: the old one stays where it was */
    memset(&rw, 0, sizeof(rw));
    rw.add_anchor = "11";
    check_rewrite(body, &rw,
                  "v=0\r\n"
                  "c=IN IP4 224.2.1.1/127\r\n"
                  "a=x-p2psip-anchor:11\r\n"
                  "m=audio 5004 RTP/AVP 0\r\n"
                  "a=rtcp:5005\r\n"
                  "a=x-p2psip-anchor:00\r\n"
                  "m=audio 0 RTP/AVP 0\r\n"
                  "a=rtcp:9\r\n");
    /* "a=rtcp-mux" and "a=rtcp-fb" are other attributes */
    memset(&rw, 0, sizeof(rw));
    rw.drop_rtcp = true;
    check_rewrite("v=0\r\nm=audio 4 RTP/AVP 0\r\na=rtcp-mux\r\na=rtcp-fb:* nack\r\na=rtcp:5\r\n",
                  &rw, "v=0\r\nm=audio 4 RTP/AVP 0\r\na=rtcp-mux\r\na=rtcp-fb:* nack\r\n");
}

static void test_rewrite_anchor_at_end(void **state)
{
    (void)state;
    struct sip_sdp_rewrite rw;

    memset(&rw, 0, sizeof(rw));
    rw.add_anchor = "ab";
    /* no m= line: at the end */
    check_rewrite("v=0\r\nc=IN IP4 10.0.0.1\r\n", &rw,
                  "v=0\r\nc=IN IP4 10.0.0.1\r\na=x-p2psip-anchor:ab\r\n");
    check_rewrite("v=0\ns=-\n", &rw, "v=0\ns=-\na=x-p2psip-anchor:ab\r\n");
    /* after a last line with no terminator: on a line of its own */
    check_rewrite("v=0", &rw, "v=0\r\na=x-p2psip-anchor:ab\r\n");
    check_rewrite("v=0\r\ns=-", &rw, "v=0\r\ns=-\r\na=x-p2psip-anchor:ab\r\n");
    /* the same when that last line is a rewritten c= ... */
    rw.addr = "127.0.0.1";
    check_rewrite("v=0\r\nc=IN IP4 10.0.0.1", &rw,
                  "v=0\r\nc=IN IP4 127.0.0.1\r\na=x-p2psip-anchor:ab\r\n");
    check_rewrite("v=0\r\nc=IN IP4 10.0.0.1\r\n", &rw,
                  "v=0\r\nc=IN IP4 127.0.0.1\r\na=x-p2psip-anchor:ab\r\n");
    /* ... or a dropped line: no empty line is left behind */
    rw.addr = NULL;
    rw.drop_anchor = true;
    rw.drop_rtcp = true;
    check_rewrite("v=0\r\ns=-\r\na=x-p2psip-anchor:00", &rw,
                  "v=0\r\ns=-\r\na=x-p2psip-anchor:ab\r\n");
    check_rewrite("v=0\ns=-\na=rtcp:9", &rw, "v=0\ns=-\na=x-p2psip-anchor:ab\r\n");
    /* with media, before the first m= line even when it is the last line */
    check_rewrite("v=0\r\nm=audio 4 RTP/AVP 0", &rw,
                  "v=0\r\na=x-p2psip-anchor:ab\r\nm=audio 4 RTP/AVP 0");
    /* and a last line without terminator that is not dropped stays open */
    memset(&rw, 0, sizeof(rw));
    rw.drop_rtcp = true;
    rw.ports[0] = 6;
    check_rewrite("v=0\r\nm=audio 4 RTP/AVP 0\r\na=rtcp:5", &rw, "v=0\r\nm=audio 6 RTP/AVP 0\r\n");
    check_rewrite("v=0\r\nm=audio 4 RTP/AVP 0", &rw, "v=0\r\nm=audio 6 RTP/AVP 0");
}

static void test_rewrite_errors(void **state)
{
    (void)state;
    struct sip_sdp_rewrite rw = {.addr = "127.0.0.1", .ports = {9}, .add_anchor = "ab"};
    const char *body = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4 RTP/AVP 0\r\n";
    const char *want =
        "v=0\r\nc=IN IP4 127.0.0.1\r\na=x-p2psip-anchor:ab\r\nm=audio 9 RTP/AVP 0\r\n";
    struct p2p_buf out;

    /* appended after what the buffer holds */
    p2p_buf_init(&out, 4096);
    assert_int_equal(p2p_buf_append(&out, "HEAD", 4), 0);
    assert_int_equal(sip_sdp_rewrite(body, strlen(body), &rw, &out), 0);
    assert_memory_equal(out.data, "HEAD", 4);
    assert_out(&out, 4, want);
    /* malformed: -EBADMSG and the buffer as it was */
    size_t before = out.len;
    assert_int_equal(sip_sdp_rewrite("v=0\r\nm=audio x RTP/AVP 0\r\n", 26, &rw, &out), -EBADMSG);
    assert_int_equal(sip_sdp_rewrite("s=-\r\n", 5, &rw, &out), -EBADMSG);
    assert_int_equal(out.len, before);
    assert_memory_equal(out.data, "HEAD", 4);
    assert_out(&out, 4, want);
    p2p_buf_free(&out);

    /* the cap: exactly enough works, one byte less fails at any point of the output */
    for (size_t cap = 4; cap <= 4 + strlen(want); cap++) {
        p2p_buf_init(&out, cap);
        assert_int_equal(p2p_buf_append(&out, "HEAD", 4), 0);
        int rc = sip_sdp_rewrite(body, strlen(body), &rw, &out);
        if (cap == 4 + strlen(want)) {
            assert_int_equal(rc, 0);
            assert_out(&out, 4, want);
        } else {
            assert_int_equal(rc, -EMSGSIZE);
            assert_int_equal(out.len, 4);
            assert_memory_equal(out.data, "HEAD", 4);
        }
        p2p_buf_free(&out);
    }
}

/* The rewrite of a valid SDP parses again with the new values. */
static void test_rewrite_reparses(void **state)
{
    (void)state;
    struct sip_sdp_rewrite rw = {
        .addr = "127.0.0.1",
        .ports = {40000, 40002, 40004},
        .drop_rtcp = true,
        .drop_anchor = true,
        .add_anchor = "cafe",
    };
    struct sip_sdp sdp;
    struct p2p_buf out;

    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_sdp_rewrite(OFFER, strlen(OFFER), &rw, &out), 0);
    assert_int_equal(sip_sdp_parse(out.data, out.len, &sdp), 0);
    assert_int_equal(sdp.n_media, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(sdp.media[i].port, rw.ports[i]);
        assert_slice(sip_sdp_media_addr(&sdp, i), "127.0.0.1");
    }
    assert_false(sdp.c_ip6);
    assert_slice(sdp.anchor, "cafe");
    p2p_buf_free(&out);
}

/* ---- sip_build_replace_body ---- */

#define REQ_LINE "INVITE sip:bob@example.org SIP/2.0\r\n"
#define HDRS                                                                                       \
    "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnashds8\r\n"                                     \
    "Max-Forwards: 70\r\n"                                                                         \
    "To: Bob <sip:bob@example.org>\r\n"                                                            \
    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"                                       \
    "Call-ID: a84b4c76e66710\r\n"                                                                  \
    "CSeq: 314159 INVITE\r\n"                                                                      \
    "Content-Type: application/sdp\r\n"
#define INVITE_HEAD REQ_LINE HDRS

static struct sip_msg msg, back;

/* Replaces the body of in (parsed as a datagram) and checks the whole output, then
 * that it parses as a stream and as a datagram with exactly the new body. */
static void check_replace(const char *in, const char *body, const char *want)
{
    struct p2p_buf out;
    struct p2p_slice b = p2p_slice_cstr(body);

    assert_true(sip_msg_parse(&msg, in, strlen(in), SIP_MSG_DGRAM, NULL) > 0);
    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_build_replace_body(&msg, b, &out), 0);
    assert_out(&out, 0, want);
    assert_int_equal(sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL), (int)out.len);
    assert_int_equal(back.body.len, b.len);
    assert_memory_equal(back.body.p, body, b.len);
    assert_int_equal(back.content_length, (int64_t)b.len);
    assert_int_equal(sip_msg_parse(&back, out.data, out.len, SIP_MSG_DGRAM, NULL), (int)out.len);
    assert_int_equal(back.nhdrs, msg.nhdrs + (msg.content_length < 0 ? 1 : 0));
    assert_int_equal(back.body.len, b.len);
    p2p_buf_free(&out);
}

static void test_replace_body(void **state)
{
    (void)state;
    const char *sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0\r\n";

    /* the value replaced where it was; the header stays where it was */
    check_replace(REQ_LINE "Content-Length: 4\r\n" HDRS "\r\nbody", sdp,
                  REQ_LINE "Content-Length: 50\r\n" HDRS
                           "\r\nv=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0\r\n");
    /* compact form, odd spacing and leading zeros: only the digits change */
    check_replace(INVITE_HEAD "l :  0004  \r\nSubject: x\r\n\r\nbody", "12345678901",
                  INVITE_HEAD "l :  11  \r\nSubject: x\r\n\r\n12345678901");
    /* a shorter body, down to none */
    check_replace(INVITE_HEAD "Content-Length: 2\r\n\r\nxx", "",
                  INVITE_HEAD "Content-Length: 0\r\n\r\n");
    /* no Content-Length (a datagram may omit it): added at the end of the head */
    check_replace(INVITE_HEAD "\r\nold body", "new", INVITE_HEAD "Content-Length: 3\r\n\r\nnew");
    /* a head without header lines, and one with LF line ends */
    check_replace("OPTIONS sip:a SIP/2.0\r\n\r\n", "x",
                  "OPTIONS sip:a SIP/2.0\r\nContent-Length: 1\r\n\r\nx");
    check_replace("SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCSeq: 1 INVITE\n\nold", sdp,
                  "SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCSeq: 1 INVITE\n"
                  "Content-Length: 50\r\n\n"
                  "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0\r\n");
    check_replace("SIP/2.0 200 OK\nl: 3\n\nold", "four", "SIP/2.0 200 OK\nl: 4\n\nfour");
    /* bytes past Content-Length in a datagram are not part of the message */
    check_replace(INVITE_HEAD "Content-Length: 2\r\n\r\nabcdef", "xyz",
                  INVITE_HEAD "Content-Length: 3\r\n\r\nxyz");
    /* leading CRLFs are not part of the message either */
    check_replace("\r\n\r\nOPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n", "x",
                  "OPTIONS sip:a SIP/2.0\r\nl: 1\r\n\r\nx");
}

static void test_replace_body_errors(void **state)
{
    (void)state;
    const char *in = INVITE_HEAD "Content-Length: 4\r\n\r\nbody";
    const char *want = INVITE_HEAD "Content-Length: 3\r\n\r\nnew";
    struct p2p_buf out;

    assert_true(sip_msg_parse(&msg, in, strlen(in), SIP_MSG_DGRAM, NULL) > 0);
    for (size_t cap = 4; cap <= 4 + strlen(want); cap++) {
        p2p_buf_init(&out, cap);
        assert_int_equal(p2p_buf_append(&out, "HEAD", 4), 0);
        int rc = sip_build_replace_body(&msg, P2P_SLICE_LIT("new"), &out);
        if (cap == 4 + strlen(want)) {
            assert_int_equal(rc, 0);
            assert_memory_equal(out.data, "HEAD", 4);
            assert_out(&out, 4, want);
        } else {
            assert_int_equal(rc, -EMSGSIZE);
            assert_int_equal(out.len, 4);
            assert_memory_equal(out.data, "HEAD", 4);
        }
        p2p_buf_free(&out);
    }
    /* a message that did not parse whole */
    struct sip_msg empty;
    memset(&empty, 0, sizeof(empty));
    p2p_buf_init(&out, 4096);
    assert_int_equal(sip_build_replace_body(&empty, P2P_SLICE_LIT("x"), &out), -EINVAL);
    assert_int_equal(out.len, 0);
    p2p_buf_free(&out);
}

/* The whole path of media_glue.c: SDP rewritten, then put into the message. */
static void test_rewrite_into_message(void **state)
{
    (void)state;
    char in[2048];
    struct sip_sdp_rewrite rw = {
        .addr = "127.0.0.1", .ports = {40000, 0, 40002}, .drop_rtcp = true, .drop_anchor = true};
    struct p2p_buf body, out;
    struct sip_sdp sdp;

    snprintf(in, sizeof(in), INVITE_HEAD "l: %zu\r\n\r\n%s", strlen(OFFER), OFFER);
    assert_int_equal(sip_msg_parse(&msg, in, strlen(in), SIP_MSG_STREAM, NULL), (int)strlen(in));
    p2p_buf_init(&body, SIP_SDP_MAX + 256);
    p2p_buf_init(&out, 8192);
    assert_int_equal(sip_sdp_rewrite(msg.body.p, msg.body.len, &rw, &body), 0);
    assert_int_equal(sip_build_replace_body(&msg, (struct p2p_slice){body.data, body.len}, &out),
                     0);
    assert_int_equal(sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL), (int)out.len);
    assert_int_equal(back.body.len, body.len);
    assert_memory_equal(back.body.p, body.data, body.len);
    assert_int_equal(sip_sdp_parse(back.body.p, back.body.len, &sdp), 0);
    assert_int_equal(sdp.n_media, 3);
    assert_int_equal(sdp.media[0].port, 40000);
    assert_int_equal(sdp.media[1].port, 0);
    assert_int_equal(sdp.media[2].port, 40002);
    assert_slice(sip_sdp_media_addr(&sdp, 2), "127.0.0.1");
    assert_int_equal(sdp.anchor.len, 0);
    p2p_buf_free(&body);
    p2p_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_offer),          cmocka_unit_test(test_parse_ip6_and_ttl),
        cmocka_unit_test(test_parse_no_terminator),  cmocka_unit_test(test_parse_ports),
        cmocka_unit_test(test_parse_media_max),      cmocka_unit_test(test_parse_size_cap),
        cmocka_unit_test(test_parse_malformed),      cmocka_unit_test(test_parse_prefixes),
        cmocka_unit_test(test_rewrite_anchoring),    cmocka_unit_test(test_rewrite_identity),
        cmocka_unit_test(test_rewrite_each),         cmocka_unit_test(test_rewrite_anchor_at_end),
        cmocka_unit_test(test_rewrite_errors),       cmocka_unit_test(test_rewrite_reparses),
        cmocka_unit_test(test_replace_body),         cmocka_unit_test(test_replace_body_errors),
        cmocka_unit_test(test_rewrite_into_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
