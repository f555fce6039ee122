/*
 * build.c: forwarding by splicing, responses, CANCEL, ACK, branch ids.
 *
 * Design: a forwarded request is the received bytes plus a short, sorted list
 * of edits (insert / delete / replace at a position in the original head).  The
 * emitter copies the bytes between edits unchanged, so everything a proxy does
 * not touch goes out byte for byte as it came in (RFC 3261 16.6: "the proxy
 * copies the request"), including header order, compact names and folding.
 * Responses, CANCEL and ACK are assembled from whole header lines of the request.
 *
 * Invariants: at most MAX_EDITS edits per message; edits never overlap; output
 * only through p2p_buf (capped); on failure the buffer length is restored.  The
 * received/rport rule exists once, in sip_via_fix(); overlay's transport and every
 * response and forward built here use it.
 * RFC 3261 8.2.6, 9.1, 16.4, 16.6, 16.7, 17.1.1.3, 18.2.1, 18.2.2; RFC 3581 4.
 */
#include "p2p/sip_build.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "hdr_priv.h"

#define MAX_EDITS 16

struct edit {
    const char *at;  /* position in the original bytes */
    size_t del;      /* bytes of the original dropped from at */
    const char *ins; /* inserted before the rest */
    size_t ins_len;
    char num[24]; /* storage when ins is a formatted number */
};

struct edits {
    struct edit e[MAX_EDITS];
    size_t n;
    bool overflow;
};

static struct edit *edit_add(struct edits *ed, const char *at, size_t del, const char *ins,
                             size_t ins_len)
{
    struct edit *e;

    if (ed->n == MAX_EDITS) {
        ed->overflow = true;
        return NULL;
    }
    e = &ed->e[ed->n++];
    e->at = at;
    e->del = del;
    e->ins = ins;
    e->ins_len = ins_len;
    return e;
}

static struct edit *edit_num(struct edits *ed, const char *at, size_t del, const char *prefix,
                             unsigned long v)
{
    struct edit *e = edit_add(ed, at, del, NULL, 0);
    if (e == NULL)
        return NULL;
    int l = snprintf(e->num, sizeof(e->num), "%s%lu", prefix, v);
    e->ins = e->num;
    e->ins_len = (size_t)l;
    return e;
}

/* Emits [from, to) of the original with the edits inside it applied, in
 * position order (insertion order kept for equal positions). */
static int emit(struct p2p_buf *out, const char *from, const char *to, const struct edits *ed)
{
    unsigned char order[MAX_EDITS];
    const char *cur = from;
    int rc;

    if (ed->overflow)
        return -EINVAL;
    for (size_t i = 0; i < ed->n; i++) {
        size_t j = i;
        while (j > 0 && ed->e[order[j - 1]].at > ed->e[i].at) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (unsigned char)i;
    }
    for (size_t i = 0; i < ed->n; i++) {
        const struct edit *e = &ed->e[order[i]];
        if (e->at < cur || e->at + e->del > to)
            return -EINVAL; /* overlapping edits: refuse rather than corrupt */
        if ((rc = p2p_buf_append(out, cur, (size_t)(e->at - cur))) != 0 ||
            (rc = p2p_buf_append(out, e->ins, e->ins_len)) != 0)
            return rc;
        cur = e->at + e->del;
    }
    return p2p_buf_append(out, cur, (size_t)(to - cur));
}

static bool has_crlf(struct p2p_slice s)
{
    if (s.len == 0)
        return false;
    return memchr(s.p, '\r', s.len) != NULL || memchr(s.p, '\n', s.len) != NULL;
}

/* First value of the first header of id, and the header's index. */
static bool first_value(const struct sip_msg *m, enum sip_hdr_id id, struct p2p_slice *v,
                        struct p2p_slice *rest, size_t *idx)
{
    struct sip_hdr_iter it;

    sip_hdr_iter_init(&it, m, id);
    if (!sip_hdr_iter_next(&it, v))
        return false;
    if (rest != NULL)
        *rest = it.rest;
    if (idx != NULL)
        *idx = it.hdr;
    return true;
}

/*
 * Parses a numeric IPv4 or IPv6 address into the 16-byte IPv6 form, IPv4 as an
 * IPv4-mapped address (RFC 4291 2.5.5.2), so that one memcmp compares two
 * addresses whatever their text: "::1", "0:0:0:0:0:0:0:1", "[::1]" (brackets only
 * when brackets is set: an IPv6reference in sent-by, RFC 3261 25.1).  Returns
 * false for anything else, a host name included.
 */
static bool ip_parse(struct p2p_slice s, bool brackets, unsigned char out[16])
{
    char text[INET6_ADDRSTRLEN];
    struct in_addr v4;

    if (brackets && s.len >= 2 && s.p[0] == '[' && s.p[s.len - 1] == ']') {
        s.p++;
        s.len -= 2;
    }
    /* inet_pton stops at a NUL: one inside the slice would hide what follows */
    if (s.len == 0 || memchr(s.p, '\0', s.len) != NULL ||
        p2p_slice_copy(s, text, sizeof(text)) != 0)
        return false;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, text, out) == 1;
}

int sip_via_fix(const struct sip_via *via, const struct sip_src *src, struct sip_via_fix *out)
{
    unsigned char from[16], sent_by[16];
    struct sip_via_fix f = {.received = false, .rport = false};

    if (src->host.len > 0) {
        /* RFC 3261 25.1: received carries an IPv4address or IPv6address, no name
         * and no brackets; anything else here is the caller's bug */
        if (!ip_parse(src->host, false, from))
            return -EINVAL;
        /* RFC 3581 4: an rport without a value is filled with the source port */
        f.rport = via->rport && via->rport_value == 0 && src->port != 0;
        /* RFC 3261 18.2.1: received when sent-by is a domain name or an address
         * other than the source; RFC 3581 4: always when rport is present */
        f.received = via->rport || !ip_parse(via->host, true, sent_by) ||
                     memcmp(from, sent_by, sizeof(from)) != 0;
    }
    *out = f;
    return 0;
}

/* Applies sip_via_fix() to the top Via of m: the edits that write rport and
 * received (replacing a received already there). */
static int via_src_edits(const struct sip_msg *m, const struct sip_src *src, struct edits *ed)
{
    struct p2p_slice top;
    struct sip_via via;
    struct sip_via_fix fix;
    struct edit *e;
    int rc;

    if (src == NULL || src->host.len == 0)
        return 0;
    if (!first_value(m, SIP_HDR_VIA, &top, NULL, NULL) || sip_via_parse(top, &via) != 0)
        return -EBADMSG;
    if ((rc = sip_via_fix(&via, src, &fix)) != 0)
        return rc;
    if (fix.rport && edit_num(ed, via.rport_p.p, via.rport_p.len, "rport=", src->port) == NULL)
        return -EINVAL;
    if (!fix.received)
        return 0;
    if (via.received.p != NULL) {
        e = edit_add(ed, via.received.p, via.received.len, src->host.p, src->host.len);
    } else {
        e = edit_add(ed, top.p + top.len, 0, ";received=", 10);
        if (e != NULL)
            e = edit_add(ed, top.p + top.len, 0, src->host.p, src->host.len);
    }
    return e != NULL ? 0 : -EINVAL;
}

/* Where the empty line that ends the head starts. */
static const char *head_end(const struct sip_msg *m)
{
    const char *end = m->head.p + m->head.len;
    return (m->head.len >= 2 && end[-2] == '\r') ? end - 2 : end - 1;
}

/* Where the first header line starts (just past the start line). */
static const char *headers_start(const struct sip_msg *m)
{
    return m->nhdrs > 0 ? m->hdrs[0].line.p : head_end(m);
}

int sip_build_forward(const struct sip_msg *req, const struct sip_fwd *f, struct p2p_buf *out)
{
    const size_t orig = out->len;
    struct edits ed;
    const struct sip_hdr *mf = sip_msg_hdr(req, SIP_HDR_MAX_FORWARDS);
    const char *hs;
    char clbuf[40];
    int rc;

    ed.n = 0;
    ed.overflow = false;
    /* only a message that parsed whole can be spliced */
    if (!req->is_request || req->head.len < 2 || has_crlf(f->ruri) || has_crlf(f->via) ||
        has_crlf(f->record_route))
        return -EINVAL;
    hs = headers_start(req);

    /* RFC 3261 16.6 step 2: the Request-URI */
    if (f->ruri.len > 0)
        edit_add(&ed, req->ruri.p, req->ruri.len, f->ruri.p, f->ruri.len);
    /* step 8: our Via on top of the others */
    if (f->via.len > 0) {
        edit_add(&ed, hs, 0, "Via: ", 5);
        edit_add(&ed, hs, 0, f->via.p, f->via.len);
        edit_add(&ed, hs, 0, "\r\n", 2);
    }
    /* step 4: Record-Route above any existing one */
    if (f->record_route.len > 0) {
        edit_add(&ed, hs, 0, "Record-Route: ", 14);
        edit_add(&ed, hs, 0, f->record_route.p, f->record_route.len);
        edit_add(&ed, hs, 0, "\r\n", 2);
    }
    /* step 3: Max-Forwards */
    if (mf == NULL) {
        edit_add(&ed, hs, 0, "Max-Forwards: 70\r\n", 18);
    } else {
        uint32_t v;
        if (sip_uint_parse(mf->value, 255, &v) != 0 || v == 0)
            return -EINVAL; /* 16.3 step 3: the proxy answers 483 instead */
        edit_num(&ed, mf->value.p, mf->value.len, "", v - 1);
    }
    /* 16.4 / step 6: pop the top Route values (strict routers aside): a line whose
     * values all go is dropped, else its leading values and their commas. */
    if (f->pop_routes > 0) {
        struct sip_hdr_iter it;
        struct p2p_slice v;
        size_t line = SIZE_MAX;
        const char *cut = NULL;
        unsigned left = f->pop_routes;
        sip_hdr_iter_init(&it, req, SIP_HDR_ROUTE);
        while (left > 0) {
            struct p2p_slice r2, next;
            if (!sip_hdr_iter_next(&it, &v))
                return -EBADMSG;
            if (it.hdr != line) {
                line = it.hdr;
                cut = v.p;
            }
            left--;
            r2 = it.rest;
            if (!sip_list_next(&r2, &next)) {
                const struct sip_hdr *h = &req->hdrs[line];
                edit_add(&ed, h->line.p, h->line.len, "", 0);
            } else if (left == 0) {
                edit_add(&ed, cut, (size_t)(next.p - cut), "", 0);
            }
        }
    }
    /* 18.2.1 / RFC 3581: received and rport on the previous hop's Via */
    if ((rc = via_src_edits(req, &f->src, &ed)) != 0)
        return rc;
    /* 18.3: a stream needs Content-Length; a datagram may have had none */
    if (req->content_length < 0) {
        int l = snprintf(clbuf, sizeof(clbuf), "Content-Length: %zu\r\n", req->body.len);
        edit_add(&ed, head_end(req), 0, clbuf, (size_t)l);
    }
    rc = emit(out, req->head.p, req->head.p + req->head.len, &ed);
    if (rc == 0)
        rc = p2p_buf_append(out, req->body.p, req->body.len);
    if (rc != 0)
        out->len = orig;
    return rc;
}

static int append_line(struct p2p_buf *out, const struct sip_msg *m, enum sip_hdr_id id)
{
    const struct sip_hdr *h = sip_msg_hdr(m, id);
    return h != NULL ? p2p_buf_append(out, h->line.p, h->line.len) : 0;
}

/* Appends every header line with this id, in order. */
static int append_lines(struct p2p_buf *out, const struct sip_msg *m, enum sip_hdr_id id)
{
    int rc = 0;
    for (size_t i = 0; i < m->nhdrs && rc == 0; i++) {
        if (m->hdrs[i].id == id)
            rc = p2p_buf_append(out, m->hdrs[i].line.p, m->hdrs[i].line.len);
    }
    return rc;
}

int sip_build_response(const struct sip_msg *req, const struct sip_resp *r, struct p2p_buf *out)
{
    const size_t orig = out->len;
    const struct sip_hdr *to = sip_msg_hdr(req, SIP_HDR_TO);
    struct edits ed;
    int rc;

    if (!req->is_request || r->status < 100 || r->status > 699 || has_crlf(r->reason) ||
        has_crlf(r->to_tag) || has_crlf(r->content_type) || sip_msg_hdr(req, SIP_HDR_VIA) == NULL ||
        sip_msg_hdr(req, SIP_HDR_CSEQ) == NULL)
        return -EINVAL;
    ed.n = 0;
    ed.overflow = false;
    if ((rc = via_src_edits(req, &r->src, &ed)) != 0)
        return rc;

    /* RFC 3261 8.2.6.2 / 16.7: status line, Via (all, in order), From, To,
     * Call-ID, CSeq */
    if (r->reason.len > 0)
        rc = p2p_buf_printf(out, "SIP/2.0 %u %.*s\r\n", r->status, (int)r->reason.len, r->reason.p);
    else
        rc = p2p_buf_printf(out, "SIP/2.0 %u %s\r\n", r->status, sip_reason_phrase(r->status));
    for (size_t i = 0; i < req->nhdrs && rc == 0; i++) {
        const struct sip_hdr *h = &req->hdrs[i];
        if (h->id != SIP_HDR_VIA)
            continue;
        /* the edits all lie in the first Via line */
        if (h == sip_msg_hdr(req, SIP_HDR_VIA))
            rc = emit(out, h->line.p, h->line.p + h->line.len, &ed);
        else
            rc = p2p_buf_append(out, h->line.p, h->line.len);
    }
    if (rc == 0)
        rc = append_line(out, req, SIP_HDR_FROM);
    if (rc == 0 && to != NULL) {
        struct sip_addr a;
        /* 8.2.6.2: a To tag on every response but 100 */
        if (r->status > 100 && r->to_tag.len > 0 && sip_addr_parse(to->value, &a) == 0 &&
            a.tag.p == NULL) {
            struct edits te = {.n = 0, .overflow = false};
            const char *at = to->value.p + to->value.len;
            edit_add(&te, at, 0, ";tag=", 5);
            edit_add(&te, at, 0, r->to_tag.p, r->to_tag.len);
            rc = emit(out, to->line.p, to->line.p + to->line.len, &te);
        } else {
            rc = p2p_buf_append(out, to->line.p, to->line.len);
        }
    }
    if (rc == 0)
        rc = append_line(out, req, SIP_HDR_CALL_ID);
    if (rc == 0)
        rc = append_line(out, req, SIP_HDR_CSEQ);
    if (rc == 0)
        rc = p2p_buf_append(out, r->extra.p, r->extra.len);
    if (rc == 0 && r->body.len > 0 && r->content_type.len > 0)
        rc = p2p_buf_printf(out, "Content-Type: %.*s\r\n", (int)r->content_type.len,
                            r->content_type.p);
    if (rc == 0)
        rc = p2p_buf_printf(out, "Content-Length: %zu\r\n\r\n", r->body.len);
    if (rc == 0)
        rc = p2p_buf_append(out, r->body.p, r->body.len);
    if (rc != 0)
        out->len = orig;
    return rc;
}

/* The part of a CANCEL and an ACK that they share (RFC 3261 9.1, 17.1.1.3). */
static int build_cancel_ack(const struct sip_msg *req, const struct sip_msg *resp,
                            const char *method, struct p2p_buf *out)
{
    const size_t orig = out->len;
    struct p2p_slice top;
    struct sip_cseq cs;
    const struct sip_hdr *cseq = sip_msg_hdr(req, SIP_HDR_CSEQ);
    const struct sip_hdr *to = sip_msg_hdr(resp != NULL ? resp : req, SIP_HDR_TO);
    int rc;

    if (!req->is_request || cseq == NULL || sip_cseq_parse(cseq->value, &cs) != 0 ||
        !first_value(req, SIP_HDR_VIA, &top, NULL, NULL) || to == NULL ||
        sip_msg_hdr(req, SIP_HDR_FROM) == NULL || sip_msg_hdr(req, SIP_HDR_CALL_ID) == NULL)
        return -EINVAL;
    /* Request-URI as in the request; only the top Via, same branch */
    rc = p2p_buf_printf(out, "%s %.*s SIP/2.0\r\nVia: %.*s\r\n", method, (int)req->ruri.len,
                        req->ruri.p, (int)top.len, top.p);
    if (rc == 0)
        rc = append_lines(out, req, SIP_HDR_ROUTE);
    if (rc == 0)
        rc = append_line(out, req, SIP_HDR_FROM);
    if (rc == 0)
        rc = p2p_buf_append(out, to->line.p, to->line.len);
    if (rc == 0)
        rc = append_line(out, req, SIP_HDR_CALL_ID);
    if (rc == 0)
        rc = p2p_buf_printf(out, "CSeq: %lu %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                            (unsigned long)cs.num, method);
    if (rc != 0)
        out->len = orig;
    return rc;
}

int sip_build_cancel(const struct sip_msg *req, struct p2p_buf *out)
{
    /* 9.1: there is nothing to cancel in an ACK or a CANCEL */
    if (p2p_slice_eq(req->method, P2P_SLICE_LIT("ACK")) ||
        p2p_slice_eq(req->method, P2P_SLICE_LIT("CANCEL")))
        return -EINVAL;
    return build_cancel_ack(req, NULL, "CANCEL", out);
}

int sip_build_ack(const struct sip_msg *req, const struct sip_msg *resp, struct p2p_buf *out)
{
    /* 17.1.1.3: the client transaction's own ACK for a 300-699 to an INVITE */
    if (resp->is_request || resp->status < 300 ||
        !p2p_slice_eq(req->method, P2P_SLICE_LIT("INVITE")))
        return -EINVAL;
    return build_cancel_ack(req, resp, "ACK", out);
}

int sip_branch_new(char *dst, size_t size)
{
    unsigned char rnd[16];

    /* RFC 3261 8.1.1.7: the magic cookie, then enough randomness to be unique */
    if (size < SIP_BRANCH_LEN + 1)
        return -ENOSPC;
    if (sodium_init() < 0)
        return -EIO;
    randombytes_buf(rnd, sizeof(rnd));
    memcpy(dst, "z9hG4bK", 7);
    sodium_bin2base64(dst + 7, size - 7, rnd, sizeof(rnd),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return SIP_BRANCH_LEN;
}

const char *sip_reason_phrase(unsigned status)
{
    /* RFC 3261 21, plus the codes of RFC 3265, 4028, 4412, 5079, 5393, 6228 in use */
    switch (status) {
    case 100:
        return "Trying";
    case 180:
        return "Ringing";
    case 181:
        return "Call Is Being Forwarded";
    case 182:
        return "Queued";
    case 183:
        return "Session Progress";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Moved Temporarily";
    case 305:
        return "Use Proxy";
    case 380:
        return "Alternative Service";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 410:
        return "Gone";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request-URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Unsupported URI Scheme";
    case 420:
        return "Bad Extension";
    case 421:
        return "Extension Required";
    case 423:
        return "Interval Too Brief";
    case 480:
        return "Temporarily Unavailable";
    case 481:
        return "Call/Transaction Does Not Exist";
    case 482:
        return "Loop Detected";
    case 483:
        return "Too Many Hops";
    case 484:
        return "Address Incomplete";
    case 485:
        return "Ambiguous";
    case 486:
        return "Busy Here";
    case 487:
        return "Request Terminated";
    case 488:
        return "Not Acceptable Here";
    case 491:
        return "Request Pending";
    case 493:
        return "Undecipherable";
    case 500:
        return "Server Internal Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Server Time-out";
    case 505:
        return "Version Not Supported";
    case 513:
        return "Message Too Large";
    case 600:
        return "Busy Everywhere";
    case 603:
        return "Decline";
    case 604:
        return "Does Not Exist Anywhere";
    case 606:
        return "Not Acceptable";
    default:
        return "Unknown";
    }
}

int sip_build_replace_body(const struct sip_msg *m, struct p2p_slice body, struct p2p_buf *out)
{
    const struct sip_hdr *cl = sip_msg_hdr(m, SIP_HDR_CONTENT_LENGTH);
    size_t orig = out->len;
    struct edits ed;
    char clbuf[40];
    int rc;

    ed.n = 0;
    ed.overflow = false;
    if (m->head.len < 2)
        return -EINVAL;
    if (cl != NULL) {
        edit_num(&ed, cl->value.p, cl->value.len, "", (unsigned long)body.len);
    } else {
        int l = snprintf(clbuf, sizeof(clbuf), "Content-Length: %zu\r\n", body.len);
        edit_add(&ed, head_end(m), 0, clbuf, (size_t)l);
    }
    rc = emit(out, m->head.p, m->head.p + m->head.len, &ed);
    if (rc == 0)
        rc = p2p_buf_append(out, body.p, body.len);
    if (rc != 0)
        out->len = orig;
    return rc;
}
