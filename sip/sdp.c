/*
 * sdp.c: reading and rewriting the connection addresses and media ports of an SDP
 * body (sip_sdp.h; RFC 4566 5.7 "c=", 5.14 "m=", RFC 3605 "a=rtcp").
 *
 * Design.  One pass over the lines (each ends in LF, optionally preceded by CR; the
 * last may have no terminator).  Lines before the first m= are the session level,
 * each m= opens a media level.  The rewriter walks the same lines and copies every
 * byte it has no reason to change, so signatures, unknown attributes and the order
 * of lines survive.
 *
 * Invariants: never reads past len; at most SIP_SDP_MEDIA_MAX media and SIP_SDP_MAX
 * bytes; output written only on success.
 */
#include "p2p/sip_sdp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct line {
    struct p2p_slice text;  /* without its terminator */
    struct p2p_slice whole; /* with it */
};

static bool next_line(const char *body, size_t len, size_t *pos, struct line *l)
{
    const char *p, *nl;
    size_t rest;

    if (*pos >= len)
        return false;
    p = body + *pos;
    rest = len - *pos;
    nl = memchr(p, '\n', rest);
    l->whole.p = p;
    l->whole.len = nl ? (size_t)(nl - p) + 1 : rest;
    l->text = l->whole;
    if (nl) {
        l->text.len--;
        if (l->text.len > 0 && l->text.p[l->text.len - 1] == '\r')
            l->text.len--;
    }
    *pos += l->whole.len;
    return true;
}

static bool starts(struct p2p_slice s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.p, prefix, n) == 0;
}

/* "c=IN IP4 <addr>[/ttl[/n]]": the address and whether it is IPv6. */
static int parse_c(struct p2p_slice t, struct p2p_slice *addr, bool *ip6)
{
    const char *a, *end = t.p + t.len;

    if (starts(t, "c=IN IP4 "))
        *ip6 = false;
    else if (starts(t, "c=IN IP6 "))
        *ip6 = true;
    else
        return -EBADMSG;
    a = t.p + 9;
    addr->p = a;
    while (a < end && *a != '/' && *a != ' ')
        a++;
    addr->len = (size_t)(a - addr->p);
    return addr->len > 0 ? 0 : -EBADMSG;
}

/* "m=<media> <port>[/<n>] <proto> <fmt>...": the port digits. */
static int parse_m(struct p2p_slice t, struct p2p_slice *digits, uint16_t *port)
{
    const char *p = t.p + 2, *end = t.p + t.len;
    unsigned long v = 0;

    while (p < end && *p != ' ')
        p++;
    if (p == end || p == t.p + 2)
        return -EBADMSG;
    p++;
    digits->p = p;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535)
            return -EBADMSG;
        p++;
    }
    digits->len = (size_t)(p - digits->p);
    if (digits->len == 0 || p == end || (*p != ' ' && *p != '/'))
        return -EBADMSG;
    *port = (uint16_t)v;
    return 0;
}

int sip_sdp_parse(const char *body, size_t len, struct sip_sdp *out)
{
    struct sip_sdp s;
    struct line l;
    size_t pos = 0;
    bool first = true;
    static const char anchor[] = "a=" SIP_SDP_ANCHOR_ATTR ":";

    if (len > SIP_SDP_MAX)
        return -EBADMSG;
    memset(&s, 0, sizeof(s));
    while (next_line(body, len, &pos, &l)) {
        struct p2p_slice t = l.text;
        if (first) {
            if (!starts(t, "v="))
                return -EBADMSG; /* RFC 4566 5: v= comes first */
            first = false;
            continue;
        }
        if (starts(t, "m=")) {
            struct p2p_slice digits;
            if (s.n_media == SIP_SDP_MEDIA_MAX ||
                parse_m(t, &digits, &s.media[s.n_media].port) != 0)
                return -EBADMSG;
            s.n_media++;
        } else if (starts(t, "c=")) {
            struct p2p_slice a;
            bool ip6;
            if (parse_c(t, &a, &ip6) != 0)
                return -EBADMSG;
            if (s.n_media == 0) {
                s.c_addr = a;
                s.c_ip6 = ip6;
            } else {
                s.media[s.n_media - 1].c_addr = a;
            }
        } else if (starts(t, anchor)) {
            s.anchor.p = t.p + sizeof(anchor) - 1;
            s.anchor.len = t.len - (sizeof(anchor) - 1);
        }
    }
    if (first)
        return -EBADMSG;
    *out = s;
    return 0;
}

struct p2p_slice sip_sdp_media_addr(const struct sip_sdp *sdp, size_t i)
{
    if (i < sdp->n_media && sdp->media[i].c_addr.len > 0)
        return sdp->media[i].c_addr;
    return sdp->c_addr;
}

int sip_sdp_rewrite(const char *body, size_t len, const struct sip_sdp_rewrite *rw,
                    struct p2p_buf *out)
{
    struct sip_sdp check;
    size_t orig = out->len, pos = 0, m = 0;
    bool anchored = false, open_line = false;
    struct line l;
    int rc = sip_sdp_parse(body, len, &check);

    if (rc != 0)
        return rc;
    while (rc == 0 && next_line(body, len, &pos, &l)) {
        struct p2p_slice t = l.text;
        bool is_m = starts(t, "m=");
        open_line = l.whole.len == l.text.len; /* the last line, with no terminator */
        if (is_m && rw->add_anchor != NULL && !anchored) {
            rc = p2p_buf_printf(out, "a=%s:%s\r\n", SIP_SDP_ANCHOR_ATTR, rw->add_anchor);
            anchored = true;
        }
        if (rc != 0)
            break;
        if (starts(t, "c=") && rw->addr != NULL) {
            /* The line keeps its own terminator (CRLF, LF or none at the end): a
             * fixed CRLF turned an LF-only body into a mixed one, and after a last
             * line with none, made the anchor added below follow an empty line. */
            rc = p2p_buf_printf(out, "c=IN IP4 %s", rw->addr);
            if (rc == 0)
                rc = p2p_buf_append(out, l.text.p + l.text.len, l.whole.len - l.text.len);
        } else if (is_m) {
            struct p2p_slice digits;
            uint16_t port;
            if (parse_m(t, &digits, &port) != 0) {
                rc = -EBADMSG;
                break;
            }
            if (m < SIP_SDP_MEDIA_MAX && rw->ports[m] != 0) {
                rc = p2p_buf_append(out, t.p, (size_t)(digits.p - t.p));
                if (rc == 0)
                    rc = p2p_buf_printf(out, "%u", (unsigned)rw->ports[m]);
                if (rc == 0)
                    rc = p2p_buf_append(out, digits.p + digits.len,
                                        l.whole.len - (size_t)(digits.p + digits.len - t.p));
            } else {
                rc = p2p_buf_append(out, l.whole.p, l.whole.len);
            }
            m++;
        } else if ((rw->drop_rtcp && starts(t, "a=rtcp:")) ||
                   (rw->drop_anchor && starts(t, "a=" SIP_SDP_ANCHOR_ATTR ":"))) {
            /* Dropped: what was written last is the previous line, which ended in
             * LF (only the last line may lack one), so no line is left open. */
            open_line = false;
            continue;
        } else {
            rc = p2p_buf_append(out, l.whole.p, l.whole.len);
        }
    }
    if (rc == 0 && rw->add_anchor != NULL && !anchored)
        rc = p2p_buf_printf(out, "%sa=%s:%s\r\n", open_line ? "\r\n" : "", SIP_SDP_ANCHOR_ATTR,
                            rw->add_anchor);
    if (rc != 0)
        out->len = orig;
    return rc;
}
