/*
 * proxy_splice.c: the proxy's edits of received messages (proxy_priv.h).
 *
 * Design: like sip_build.c, a message is copied as received, with cuts at the
 * byte ranges to remove, so every header we do not touch keeps its exact form.
 * Ranges come from the parser's slices, which all point into the message's head.
 */
#include "proxy_priv.h"

#include <errno.h>
#include <string.h>

#include "p2p/sip_msg.h"

/* Appends head[0..a) + insert + head[b..), then the rest as described by the
 * caller; restores out on error. */
static int cut(struct p2p_buf *out, struct p2p_slice whole, const char *a, const char *b)
{
    int rc = p2p_buf_append(out, whole.p, (size_t)(a - whole.p));
    if (rc == 0)
        rc = p2p_buf_append(out, b, (size_t)(whole.p + whole.len - b));
    return rc;
}

/*
 * Byte range [*from, *to) that removes the first value of a list header h
 * (the whole line when it is the only value).
 */
static int first_value_range(const struct sip_hdr *h, const char **from, const char **to)
{
    struct p2p_slice rest = h->value, first, second;

    if (!sip_list_next(&rest, &first))
        return -EBADMSG;
    if (!sip_list_next(&rest, &second)) {
        *from = h->line.p;
        *to = h->line.p + h->line.len;
    } else {
        *from = first.p;
        *to = second.p;
    }
    return 0;
}

int sip__proxy_strip_via(const struct sip_msg *resp, struct p2p_slice add, struct p2p_buf *out)
{
    size_t before = out->len;
    const struct sip_hdr *via = sip_msg_hdr(resp, SIP_HDR_VIA);
    const char *from, *to;
    struct p2p_slice head = resp->head;
    int rc;

    if (!via)
        return -EINVAL;
    rc = first_value_range(via, &from, &to);
    if (rc != 0)
        return rc;
    if (head.len < 2)
        return -EBADMSG;
    /* head ends with the empty line: insert add just before it. */
    rc = p2p_buf_append(out, head.p, (size_t)(from - head.p));
    if (rc == 0)
        rc = p2p_buf_append(out, to, (size_t)(head.p + head.len - 2 - to));
    if (rc == 0 && add.len)
        rc = p2p_buf_append(out, add.p, add.len);
    if (rc == 0)
        rc = p2p_buf_append(out, "\r\n", 2);
    if (rc == 0 && resp->body.len)
        rc = p2p_buf_append(out, resp->body.p, resp->body.len);
    if (rc != 0)
        out->len = before;
    return rc;
}

int sip__proxy_pop_last_route(const struct sip_msg *req, struct p2p_slice *uri, struct p2p_buf *out)
{
    size_t before = out->len;
    const struct sip_hdr *last = NULL;
    struct p2p_slice rest, v, prev = {0}, lastv = {0};
    struct sip_addr addr;
    const char *from, *to;
    int rc;

    for (size_t i = 0; i < req->nhdrs; i++) {
        if (req->hdrs[i].id == SIP_HDR_ROUTE)
            last = &req->hdrs[i];
    }
    if (!last)
        return -ENOENT;
    rest = last->value;
    while (sip_list_next(&rest, &v)) {
        prev = lastv;
        lastv = v;
    }
    if (!lastv.p || sip_addr_parse(lastv, &addr) != 0)
        return -EBADMSG;
    if (!prev.p) {
        from = last->line.p;
        to = last->line.p + last->line.len;
    } else {
        /* drop ", value": from the end of the previous value to the end of this one */
        from = prev.p + prev.len;
        to = lastv.p + lastv.len;
    }
    rc = cut(out, req->head, from, to);
    if (rc == 0 && req->body.len)
        rc = p2p_buf_append(out, req->body.p, req->body.len);
    if (rc != 0) {
        out->len = before;
        return rc;
    }
    *uri = addr.uri;
    return 0;
}

int sip__proxy_copy_lines(const struct sip_msg *msg, enum sip_hdr_id id, struct p2p_buf *out)
{
    size_t before = out->len;

    for (size_t i = 0; i < msg->nhdrs; i++) {
        if (msg->hdrs[i].id != id)
            continue;
        if (p2p_buf_append(out, msg->hdrs[i].line.p, msg->hdrs[i].line.len) != 0) {
            out->len = before;
            return -EMSGSIZE;
        }
    }
    return 0;
}
