/*
 * fuzz_sip_sdp.c: libFuzzer entry for the SDP reader and rewriter (sip_sdp.h) and
 * sip_build_replace_body(), the path media anchoring takes (p2psipd/media_glue.c).
 *
 * The input is read two ways.  As an SDP body: parsed; when it parses, rewritten
 * with nothing asked (must give the input back byte for byte), with only an anchor
 * added (the input with one line inserted), and with every replacement at once
 * (address, a port for every media, a=rtcp and anchor dropped, an anchor added);
 * that last rewrite must parse again with the same media, the new ports and
 * address, no a=rtcp and our anchor, and must fail cleanly one byte short of room.
 * The input is also put as the body of fixed SIP messages, which must parse back
 * with exactly that body.  As a SIP message: when it parses and its body is an SDP,
 * the body is rewritten and put back as media_glue.c does, and the result re-parsed.
 * Every check is a contract of these functions, so a violation aborts like a
 * sanitizer report would: it is a finding.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_sdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NEW_ADDR "127.0.0.1"
#define NEW_ANCHOR                                                                                 \
    "0123456789abcdef0123456789abcdef01234567.fedcba9876543210fedcba9876543210fedcba98"
#define ANCHOR_LINE "a=" SIP_SDP_ANCHOR_ATTR ":" NEW_ANCHOR "\r\n"

static void check(int cond)
{
    if (!cond)
        abort();
}

static void in_input(struct p2p_slice s, const char *buf, size_t len)
{
    if (s.len == 0)
        return;
    check(s.p >= buf && s.p + s.len <= buf + len);
}

static bool slice_is(struct p2p_slice s, const char *want)
{
    size_t n = strlen(want);
    return s.len == n && memcmp(s.p, want, n) == 0;
}

/* No line of b starts with "a=rtcp:" (lines end in LF, as the parser splits them). */
static bool no_rtcp(const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((i == 0 || b[i - 1] == '\n') && len - i >= 7 && memcmp(b + i, "a=rtcp:", 7) == 0)
            return false;
    }
    return true;
}

/* Lines of b with nothing before their LF but an optional CR. */
static size_t empty_lines(const char *b, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if ((i == 0 || b[i - 1] == '\n') &&
            (b[i] == '\n' || (b[i] == '\r' && i + 1 < len && b[i + 1] == '\n')))
            n++;
    }
    return n;
}

static size_t count_cr(const char *b, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += b[i] == '\r';
    return n;
}

/* Every replacement at once, as a node does for its phone and for the other node. */
static void rewrite_all(const char *buf, size_t size, const struct sip_sdp *sdp)
{
    struct sip_sdp_rewrite rw;
    struct sip_sdp again;
    struct p2p_buf out, small;
    int rc;

    memset(&rw, 0, sizeof(rw));
    rw.addr = NEW_ADDR;
    for (size_t i = 0; i < SIP_SDP_MEDIA_MAX; i++)
        rw.ports[i] = (uint16_t)(40000 + 2 * i);
    rw.drop_rtcp = true;
    rw.drop_anchor = true;
    rw.add_anchor = NEW_ANCHOR;
    /* a c= line grows by less than its own length, an m= line by at most 4 bytes */
    p2p_buf_init(&out, 2 * size + sizeof(ANCHOR_LINE) + 2 + 4 * SIP_SDP_MEDIA_MAX);
    rc = sip_sdp_rewrite(buf, size, &rw, &out);
    check(rc == 0);
    /* lines are replaced, dropped or added whole, each keeping its own line end:
     * no empty line appears, and an LF-only body gets CRs only around our line */
    check(empty_lines(out.data, out.len) == empty_lines(buf, size));
    if (count_cr(buf, size) == 0) {
        static const char tail[] = "\r\n" ANCHOR_LINE;
        size_t crs = count_cr(out.data, out.len);
        check(crs == 1 ||
              (crs == 2 && out.len >= sizeof(tail) - 1 &&
               memcmp(out.data + out.len - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0));
    }
    if (out.len <= SIP_SDP_MAX) {
        check(sip_sdp_parse(out.data, out.len, &again) == 0);
        check(again.n_media == sdp->n_media);
        for (size_t i = 0; i < again.n_media; i++) {
            check(again.media[i].port == rw.ports[i]);
            /* every c= line was replaced: where there was an address there is ours */
            if (sip_sdp_media_addr(sdp, i).len > 0)
                check(slice_is(sip_sdp_media_addr(&again, i), NEW_ADDR));
            else
                check(sip_sdp_media_addr(&again, i).len == 0);
        }
        check(sdp->c_addr.len == 0 ? again.c_addr.len == 0
                                   : slice_is(again.c_addr, NEW_ADDR) && !again.c_ip6);
        check(slice_is(again.anchor, NEW_ANCHOR));
        check(no_rtcp(out.data, out.len));
    }
    /* one byte short of room: -EMSGSIZE, and the buffer as it was */
    p2p_buf_init(&small, out.len);
    check(p2p_buf_append(&small, "H", 1) == 0);
    check(sip_sdp_rewrite(buf, size, &rw, &small) == -EMSGSIZE);
    check(small.len == 1 && small.data[0] == 'H');
    p2p_buf_free(&small);
    p2p_buf_free(&out);
}

/* Nothing asked gives the input back; an added anchor is one line inserted. */
static void rewrite_min(const char *buf, size_t size)
{
    static const char line[] = ANCHOR_LINE;
    const size_t n = sizeof(line) - 1;
    struct sip_sdp_rewrite rw;
    struct p2p_buf out;

    memset(&rw, 0, sizeof(rw));
    p2p_buf_init(&out, size + n + 2);
    check(sip_sdp_rewrite(buf, size, &rw, &out) == 0);
    check(out.len == size && memcmp(out.data, buf, size) == 0);

    p2p_buf_reset(&out);
    rw.add_anchor = NEW_ANCHOR;
    check(sip_sdp_rewrite(buf, size, &rw, &out) == 0);
    if (out.len == size + n + 2) {
        /* after a last line with no terminator, which gets one */
        check(buf[size - 1] != '\n' && memcmp(out.data, buf, size) == 0 &&
              memcmp(out.data + size, "\r\n", 2) == 0 && memcmp(out.data + size + 2, line, n) == 0);
    } else {
        /* before the first m= line (found here line by line), or at the end */
        size_t at = 0;
        while (at < size && !((at == 0 || buf[at - 1] == '\n') && size - at >= 2 &&
                              memcmp(buf + at, "m=", 2) == 0))
            at++;
        check(out.len == size + n && memcmp(out.data, buf, at) == 0 &&
              memcmp(out.data + at, line, n) == 0 &&
              memcmp(out.data + at + n, buf + at, size - at) == 0);
    }
    p2p_buf_free(&out);
}

/* body into the fixed message m (parsed once): parses back with exactly that body. */
static void replace_in(const struct sip_msg *m, const char *body, size_t size)
{
    static struct sip_msg back;
    struct p2p_buf out;
    int rc;

    p2p_buf_init(&out, size + 1024);
    check(sip_build_replace_body(m, (struct p2p_slice){body, size}, &out) == 0);
    rc = sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL);
    check(out.len <= SIP_MSG_MAX_SIZE ? rc == (int)out.len : rc == -EMSGSIZE);
    if (rc > 0) {
        check(back.body.len == size && memcmp(back.body.p, body, size) == 0);
        check(back.nhdrs == m->nhdrs + (m->content_length < 0 ? 1 : 0));
    }
    p2p_buf_free(&out);
}

/* The fixed messages: Content-Length replaced, in compact form, added. */
static const char *const fixed_src[] = {
    "INVITE sip:bob@example.org SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKfz\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.org>;tag=1\r\n"
    "To: <sip:bob@example.org>\r\n"
    "Call-ID: fz\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n",
    "SIP/2.0 200 OK\nv: SIP/2.0/UDP h;branch=z9hG4bK1\nl :  007 \nc: application/sdp\n\nv=0\r\ns=",
    "ACK sip:bob@example.org SIP/2.0\r\nCSeq: 1 ACK\r\n\r\n",
};
#define N_FIXED (sizeof(fixed_src) / sizeof(fixed_src[0]))

/* The input as a SIP message carrying an SDP: what media_glue.c does with it. */
static void as_message(const char *buf, size_t size)
{
    static struct sip_msg m, back;
    struct sip_sdp_rewrite rw;
    struct sip_sdp sdp;
    struct p2p_buf body, out;
    int rc;

    if (sip_msg_parse(&m, buf, size, SIP_MSG_DGRAM, NULL) <= 0 ||
        sip_sdp_parse(m.body.p, m.body.len, &sdp) != 0)
        return;
    memset(&rw, 0, sizeof(rw));
    rw.addr = NEW_ADDR;
    rw.ports[0] = 40000;
    rw.drop_rtcp = true;
    rw.drop_anchor = true;
    rw.add_anchor = NEW_ANCHOR;
    p2p_buf_init(&body, SIP_SDP_MAX + 256);
    p2p_buf_init(&out, 2 * SIP_MSG_MAX_SIZE);
    if (sip_sdp_rewrite(m.body.p, m.body.len, &rw, &body) == 0) {
        check(sip_build_replace_body(&m, (struct p2p_slice){body.data, body.len}, &out) == 0);
        rc = sip_msg_parse(&back, out.data, out.len, SIP_MSG_STREAM, NULL);
        check(rc == (int)out.len || rc == -EMSGSIZE);
        if (rc > 0) {
            check(back.body.len == body.len && memcmp(back.body.p, body.data, body.len) == 0);
            check(back.nhdrs == m.nhdrs + (m.content_length < 0 ? 1 : 0));
            check(sip_sdp_parse(back.body.p, back.body.len, &sdp) == 0);
        }
    }
    p2p_buf_free(&body);
    p2p_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct sip_sdp sdp;
    int rc;

    rc = sip_sdp_parse(buf, size, &sdp);
    check(rc == 0 || rc == -EBADMSG);
    if (rc == 0) {
        check(size >= 2 && size <= SIP_SDP_MAX && memcmp(buf, "v=", 2) == 0);
        check(sdp.n_media <= SIP_SDP_MEDIA_MAX);
        in_input(sdp.c_addr, buf, size);
        in_input(sdp.anchor, buf, size);
        for (size_t i = 0; i < sdp.n_media; i++)
            in_input(sdp.media[i].c_addr, buf, size);
        rewrite_min(buf, size);
        rewrite_all(buf, size, &sdp);
    } else {
        /* a body that does not parse is not rewritten */
        struct sip_sdp_rewrite rw;
        struct p2p_buf out;
        memset(&rw, 0, sizeof(rw));
        p2p_buf_init(&out, 64);
        check(sip_sdp_rewrite(buf, size, &rw, &out) == -EBADMSG && out.len == 0);
        p2p_buf_free(&out);
    }

    /* any bytes as the body of a message */
    static struct sip_msg fixed[N_FIXED];
    static bool parsed;
    if (!parsed) {
        for (size_t i = 0; i < N_FIXED; i++)
            check(sip_msg_parse(&fixed[i], fixed_src[i], strlen(fixed_src[i]), SIP_MSG_DGRAM,
                                NULL) > 0);
        parsed = true;
    }
    for (size_t i = 0; i < N_FIXED; i++)
        replace_in(&fixed[i], buf, size);

    as_message(buf, size);
    return 0;
}
