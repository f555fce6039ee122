/*
 * sip_sdp.h: the few SDP fields (RFC 4566) a node needs to anchor media.
 *
 * When two phones cannot reach each other's media addresses (a phone that offers
 * 127.0.0.1, a phone behind NAT), the nodes relay RTP and RTCP over the pipe between
 * them.  For that a node reads, in an offer or answer (RFC 3264), the connection
 * address (session and media level c= lines) and each m= line's port, and rewrites
 * them to point the phone at a relay port of its own.  It also reads and writes one
 * attribute of its own, "a=x-p2psip-anchor:<node id hex>", by which the node of the
 * phone that made the SDP asks the other node to anchor.
 *
 * Pure: (buf, len) in, slices out, no allocation; lines end in CRLF or LF; at most
 * SIP_SDP_MEDIA_MAX media; anything malformed in the lines read is -EBADMSG.
 */
#ifndef P2P_SIP_SDP_H
#define P2P_SIP_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/buf.h"
#include "p2p/slice.h"

#define SIP_SDP_MEDIA_MAX 8
#define SIP_SDP_MAX 16384 /* a body larger than this is not read */
#define SIP_SDP_ANCHOR_ATTR "x-p2psip-anchor"

struct sip_sdp_media {
    uint16_t port;           /* the m= line's port (0: the stream is off) */
    struct p2p_slice c_addr; /* its own c= address, empty: the session's */
};

struct sip_sdp {
    struct p2p_slice c_addr; /* session-level c= address, may be empty */
    bool c_ip6;              /* session-level c= is IP6 */
    size_t n_media;
    struct sip_sdp_media media[SIP_SDP_MEDIA_MAX];
    struct p2p_slice anchor; /* value of a=x-p2psip-anchor, empty when absent */
};

/* Parses body.  Returns 0, -EBADMSG (no v= line first, a malformed c= or m=, too many
 * media, too large). */
int sip_sdp_parse(const char *body, size_t len, struct sip_sdp *out);

/* The connection address of media i (its own or the session's). */
struct p2p_slice sip_sdp_media_addr(const struct sip_sdp *sdp, size_t i);

struct sip_sdp_rewrite {
    const char *addr;                  /* new c= address (IPv4 text), NULL: keep */
    uint16_t ports[SIP_SDP_MEDIA_MAX]; /* new port per media, 0: keep */
    bool drop_rtcp;                    /* drop a=rtcp lines (ports changed: RTP + 1) */
    bool drop_anchor;                  /* drop a=x-p2psip-anchor lines */
    const char *add_anchor;            /* add "a=x-p2psip-anchor:<this>" at session level */
};

/*
 * Appends body rewritten as rw says (every other byte unchanged) to out.  Returns 0,
 * -EBADMSG (as sip_sdp_parse), or the p2p_buf error.  On error out is as before.
 */
int sip_sdp_rewrite(const char *body, size_t len, const struct sip_sdp_rewrite *rw,
                    struct p2p_buf *out);

#endif
