/*
 * media_glue.c: when and how a node anchors media (overlay_media.h does the relaying).
 *
 * Design.  Every SIP message the node sends passes p2psipd__media_filter() first.  A
 * call's media is anchored when the phone that makes an offer or answer cannot be
 * reached from another host: its SDP address is a loopback one, or this node is a
 * client behind NAT.  Then:
 *   - toward the other node (a pipe destination), the node opens a relay stream per
 *     m= line, remembers where its phone listens, and adds
 *     "a=x-p2psip-anchor:<node id>[.<super-node id>]" to the SDP;
 *   - toward its own phone, an SDP that carries that attribute is rewritten to the
 *     node's relay ports on 127.0.0.1 (c=, m= ports; a=rtcp and the attribute
 *     dropped), and the streams' far end is the node the attribute names.
 * Otherwise the SDP goes untouched and media flows phone to phone.  A BYE or CANCEL,
 * or a failure response to an INVITE, ends the call's streams; silent streams end by
 * themselves (OVERLAY_MEDIA_IDLE_MS).  A call is named by BLAKE2b-64 of its Call-ID.
 */
#include "p2psipd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "locator_dht.h"
#include "p2p/overlay_media.h"
#include "p2p/overlay_node.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_sdp.h"

static bool is_loopback(struct p2p_slice a)
{
    return (a.len >= 4 && memcmp(a.p, "127.", 4) == 0) ||
           (a.len == 3 && memcmp(a.p, "::1", 3) == 0) ||
           (a.len == 7 && memcmp(a.p, "0.0.0.0", 7) == 0);
}

static bool has_sdp(const struct sip_msg *m)
{
    const struct sip_hdr *ct = sip_msg_hdr(m, SIP_HDR_CONTENT_TYPE);
    struct p2p_slice v;

    if (ct == NULL || m->body.len == 0)
        return false;
    v = p2p_slice_trim(ct->value);
    return v.len >= 15 &&
           p2p_slice_caseeq((struct p2p_slice){v.p, 15}, P2P_SLICE_LIT("application/sdp"));
}

/* "<hex>" or "<hex>.<hex>": the node that asked to anchor, and its super-node. */
static int parse_anchor(struct p2p_slice a, struct dht_id *node, struct dht_id *via, bool *has_via)
{
    *has_via = false;
    if (a.len != DHT_ID_HEX_LEN && a.len != 2 * DHT_ID_HEX_LEN + 1)
        return -EINVAL;
    if (dht_id_from_hex(node, a.p, DHT_ID_HEX_LEN) != 0)
        return -EINVAL;
    if (a.len == DHT_ID_HEX_LEN)
        return 0;
    if (a.p[DHT_ID_HEX_LEN] != '.' ||
        dht_id_from_hex(via, a.p + DHT_ID_HEX_LEN + 1, DHT_ID_HEX_LEN) != 0)
        return -EINVAL;
    *has_via = true;
    return 0;
}

static void call_key(const struct sip_msg *m, uint8_t key[OVERLAY_MEDIA_CALL_LEN])
{
    const struct sip_hdr *h = sip_msg_hdr(m, SIP_HDR_CALL_ID);
    struct p2p_slice v = h ? p2p_slice_trim(h->value) : (struct p2p_slice){NULL, 0};

    crypto_generichash(key, OVERLAY_MEDIA_CALL_LEN, (const uint8_t *)v.p, v.len, NULL, 0);
}

static bool ends_call(const struct sip_msg *m)
{
    struct sip_cseq cs;
    const struct sip_hdr *h;

    if (m->is_request)
        return p2p_slice_eq(m->method, P2P_SLICE_LIT("BYE")) ||
               p2p_slice_eq(m->method, P2P_SLICE_LIT("CANCEL"));
    h = sip_msg_hdr(m, SIP_HDR_CSEQ);
    return m->status >= 300 && h != NULL && sip_cseq_parse(h->value, &cs) == 0 &&
           p2p_slice_eq(cs.method, P2P_SLICE_LIT("INVITE"));
}

/* m with its SDP rewritten by rw into out: 1, or 0 to send m as it is. */
static int replace_sdp(const struct sip_msg *m, const struct sip_sdp_rewrite *rw,
                       struct p2p_buf *out)
{
    struct p2p_buf body;
    int rc;

    p2p_buf_init(&body, SIP_SDP_MAX + 256);
    rc = sip_sdp_rewrite(m->body.p, m->body.len, rw, &body);
    if (rc == 0)
        rc = sip_build_replace_body(m, (struct p2p_slice){body.data, body.len}, out);
    p2p_buf_free(&body);
    return rc == 0 ? 1 : 0;
}

/* Toward another node: anchor when our phone cannot be reached from there. */
static int to_overlay(struct p2psipd *d, const struct sip_msg *m, const struct sip_sdp *sdp,
                      struct p2p_buf *out)
{
    struct sip_sdp_rewrite rw;
    uint8_t key[OVERLAY_MEDIA_CALL_LEN];
    char anchor[2 * DHT_ID_HEX_LEN + 2];
    struct dht_peer sp;
    bool need = overlay_node_role(d->overlay) == OVERLAY_ROLE_CLIENT;

    for (size_t i = 0; i < sdp->n_media && !need; i++)
        need = sdp->media[i].port != 0 && is_loopback(sip_sdp_media_addr(sdp, i));
    if (!need)
        return 0; /* reachable: media goes phone to phone */
    call_key(m, key);
    for (size_t i = 0; i < sdp->n_media; i++) {
        struct p2p_slice a = sip_sdp_media_addr(sdp, i);
        struct sockaddr_storage phone;
        char host[64];
        uint16_t port;
        if (sdp->media[i].port == 0 || p2p_slice_copy(a, host, sizeof(host)) != 0)
            continue;
        memset(&phone, 0, sizeof(phone));
        if (uv_ip4_addr(is_loopback(a) ? "127.0.0.1" : host, sdp->media[i].port,
                        (struct sockaddr_in *)&phone) != 0 &&
            uv_ip6_addr(host, sdp->media[i].port, (struct sockaddr_in6 *)&phone) != 0)
            continue;
        if (overlay_media_stream(d->media, key, (unsigned)i, &port) != 0)
            return 0; /* no relay port: send as is (media may not flow) */
        overlay_media_set_phone(d->media, key, (unsigned)i, &phone);
    }
    dht_id_to_hex(&d->identity.id, anchor);
    if (overlay_node_role(d->overlay) == OVERLAY_ROLE_CLIENT &&
        overlay_node_super(d->overlay, &sp) == 0) {
        anchor[DHT_ID_HEX_LEN] = '.';
        dht_id_to_hex(&sp.id, anchor + DHT_ID_HEX_LEN + 1);
    }
    memset(&rw, 0, sizeof(rw));
    rw.drop_anchor = true;
    rw.add_anchor = anchor;
    return replace_sdp(m, &rw, out);
}

/* Toward our phone: an SDP whose node asked to anchor points the phone at our relay. */
static int to_phone(struct p2psipd *d, const struct sip_msg *m, const struct sip_sdp *sdp,
                    struct p2p_buf *out)
{
    struct sip_sdp_rewrite rw;
    uint8_t key[OVERLAY_MEDIA_CALL_LEN];
    struct dht_id node, via;
    bool has_via;

    if (sdp->anchor.len == 0 || parse_anchor(sdp->anchor, &node, &via, &has_via) != 0 ||
        dht_id_eq(&node, &d->identity.id))
        return 0;
    call_key(m, key);
    memset(&rw, 0, sizeof(rw));
    for (size_t i = 0; i < sdp->n_media; i++) {
        uint16_t port;
        if (sdp->media[i].port == 0)
            continue;
        if (overlay_media_stream(d->media, key, (unsigned)i, &port) != 0)
            return 0;
        overlay_media_set_peer(d->media, key, (unsigned)i, &node, has_via ? &via : NULL);
        rw.ports[i] = port;
    }
    rw.addr = "127.0.0.1";
    rw.drop_rtcp = true;
    rw.drop_anchor = true;
    return replace_sdp(m, &rw, out);
}

/*
 * Worth a parse: a message that may carry SDP (application/sdp anywhere, any case),
 * or one that ends a call.  Runs on every message sent: the search jumps from '/'
 * to '/' (a few per message), not byte by byte.
 */
static bool worth_parsing(const char *bytes, size_t len)
{
    const struct p2p_slice sdp = P2P_SLICE_LIT("application/sdp");
    const size_t slash = sizeof("application") - 1;
    const char *end = bytes + len, *p;

    if ((len > 4 && memcmp(bytes, "BYE ", 4) == 0) || (len > 7 && memcmp(bytes, "CANCEL ", 7) == 0))
        return true;
    if (len > 9 && memcmp(bytes, "SIP/2.0 ", 8) == 0 && bytes[8] >= '3')
        return true;
    if (len < sdp.len)
        return false;
    for (p = memchr(bytes + slash, '/', len - slash);
         p != NULL && (size_t)(end - p) >= sdp.len - slash;
         p = memchr(p + 1, '/', (size_t)(end - p - 1)))
        if (p2p_slice_caseeq((struct p2p_slice){p - slash, sdp.len}, sdp))
            return true;
    return false;
}

int p2psipd__media_filter(struct p2psipd *d, const char *bytes, size_t len,
                          const struct sip_tsx_dest *dest, struct p2p_buf *out)
{
    struct sip_msg *m = d->scratch;
    struct sip_sdp sdp;

    if (d->media == NULL || d->overlay == NULL || !worth_parsing(bytes, len))
        return 0;
    if (sip_msg_parse(m, bytes, len, SIP_MSG_DGRAM, NULL) <= 0)
        return 0;
    if (ends_call(m)) {
        uint8_t key[OVERLAY_MEDIA_CALL_LEN];
        call_key(m, key);
        overlay_media_end(d->media, key);
        return 0;
    }
    if (!has_sdp(m) || sip_sdp_parse(m->body.p, m->body.len, &sdp) != 0)
        return 0;
    if (p2psipd__is_pipe_conn(dest->conn_id))
        return to_overlay(d, m, &sdp, out);
    return to_phone(d, m, &sdp, out);
}
