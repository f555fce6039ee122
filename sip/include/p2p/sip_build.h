/*
 * sip_build.h: building SIP messages from parsed ones.
 *
 * A proxy forwards by splicing: the bytes of the received request are copied as
 * they are, except for the places RFC 3261 16.6 changes (Request-URI, a new top
 * Via, Record-Route, Max-Forwards, the top Route).  Responses, CANCEL and ACK are
 * built from the request's own header lines (copied verbatim).  Output is
 * appended to a caller's struct p2p_buf, whose cap bounds the result; on any error
 * the buffer is restored to its length before the call.
 */
#ifndef P2P_SIP_BUILD_H
#define P2P_SIP_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/buf.h"
#include "p2p/sip_msg.h"
#include "p2p/slice.h"

/*
 * Where the request came from, for the server transport's Via rules (see
 * sip_via_fix()).  host empty: leave the top Via as it is.
 */
struct sip_src {
    struct p2p_slice host; /* the packet's source address, numeric: IPv4 dotted or
                              IPv6 without brackets or zone (as inet_ntop writes it) */
    uint16_t port;         /* the packet's source port; 0: rport is not filled in */
};

/*
 * What the server transport adds to the top Via of a request it received.
 * received= carries src->host as given (it replaces any received= already in the
 * Via); rport= carries src->port.
 */
struct sip_via_fix {
    bool received; /* add received=src->host */
    bool rport;    /* fill the valueless rport with src->port */
};

/*
 * The one place of the rule (RFC 3261 18.2.1, RFC 3581 4): received when the
 * sent-by host is a name, or an IP address other than src->host (compared as
 * addresses: "::1" and "0:0:0:0:0:0:0:1" or "[::1]" are the same host, and an
 * IPv4-mapped IPv6 source equals its IPv4 address), and always when the Via has
 * rport; rport filled when the Via has rport without a value and src->port != 0.
 * sip_build_forward() and sip_build_response() apply it through their src field;
 * a transport that writes the Via itself calls it directly.
 * Returns 0 and writes *out (both false when src->host is empty), or -EINVAL when
 * src->host is not a numeric IPv4 or IPv6 address.
 */
int sip_via_fix(const struct sip_via *via, const struct sip_src *src, struct sip_via_fix *out);

struct sip_fwd {
    struct p2p_slice ruri;         /* new Request-URI, empty: keep (RFC 3261 16.6 step 2) */
    struct p2p_slice via;          /* value of the new top Via, empty: none (16.6 step 8) */
    struct p2p_slice record_route; /* value of a Record-Route to add on top, e.g.
                                      "<sip:192.0.2.1:5062;lr>", empty: none (step 4) */
    unsigned pop_routes;           /* drop the first Route values, ours (16.4 / step 6;
                                      two after a double Record-Route, RFC 5658) */
    struct sip_src src;            /* received/rport on the previous top Via */
};

/*
 * Appends req forwarded as f says (RFC 3261 16.6): Max-Forwards decremented,
 * or "Max-Forwards: 70" added when absent (step 3); every other byte of the
 * original kept.  Content-Length is written when the request had none (stream
 * transports need it).  req must come from a successful sip_msg_parse().
 * Returns 0, -EINVAL when req is not a whole parsed request, when a value of f
 * holds CR or LF or f->src.host is not a numeric address, or when its
 * Max-Forwards is 0 or malformed (the proxy answers 483 first, 16.3 step 3),
 * -EBADMSG for a malformed top Via/Route, -EMSGSIZE/-ENOMEM from the buffer.
 */
int sip_build_forward(const struct sip_msg *req, const struct sip_fwd *f, struct p2p_buf *out);

/*
 * Appends m with its body replaced by body: every header line kept as it was, but
 * the Content-Length value (or a Content-Length line added at the end of the head
 * when there was none).  m must come from a successful sip_msg_parse().  Returns 0,
 * -EINVAL, -EMSGSIZE/-ENOMEM; on error out is as before.
 */
int sip_build_replace_body(const struct sip_msg *m, struct p2p_slice body, struct p2p_buf *out);

struct sip_resp {
    unsigned status;               /* 100..699 */
    struct p2p_slice reason;       /* empty: sip_reason_phrase(status) */
    struct p2p_slice to_tag;       /* added to To when it has no tag and status > 100 */
    struct sip_src src;            /* received/rport on the top Via, see struct sip_src */
    struct p2p_slice extra;        /* extra header lines, each ending in CRLF, copied as is
                                      (Contact, WWW-Authenticate, Min-Expires, Retry-After...) */
    struct p2p_slice content_type; /* with a body */
    struct p2p_slice body;
};

/*
 * Appends a response to req (RFC 3261 8.2.6.2, 16.7): status line, every Via
 * header line in order, From, To (plus ";tag=" as above), Call-ID, CSeq, then
 * extra, Content-Type and Content-Length, an empty line and the body.  Works on a
 * request that failed validation as long as sip_msg_answerable() says so.
 * Returns 0, -EINVAL (bad status, not a request, header missing, src->host not
 * a numeric address), -EBADMSG (top Via unparseable while src asks to change it),
 * -EMSGSIZE/-ENOMEM.
 */
int sip_build_response(const struct sip_msg *req, const struct sip_resp *r, struct p2p_buf *out);

/*
 * Appends the CANCEL for the client request req (RFC 3261 9.1): same
 * Request-URI, top Via only, Route headers, From, To, Call-ID, CSeq number with
 * method CANCEL, Max-Forwards 70, Content-Length 0.  Returns 0, -EINVAL when req
 * is not a request or lacks one of these, or a buffer error.
 */
int sip_build_cancel(const struct sip_msg *req, struct p2p_buf *out);

/*
 * Appends the ACK for a non-2xx final response resp to the INVITE req (RFC 3261
 * 17.1.1.3): Request-URI, top Via, Route, From, Call-ID and CSeq number from req,
 * To from resp (with its tag), method ACK, Max-Forwards 70, Content-Length 0.
 * Returns 0, -EINVAL (not an INVITE / not a final non-2xx / header missing), or
 * a buffer error.
 */
int sip_build_ack(const struct sip_msg *req, const struct sip_msg *resp, struct p2p_buf *out);

/*
 * Writes a new RFC 3261 8.1.1.7 branch, "z9hG4bK" + 22 characters (128 random
 * bits from libsodium, base64url without padding), NUL-terminated.  Returns the
 * length (29) or -ENOSPC when size < 30.
 */
#define SIP_BRANCH_LEN 29
int sip_branch_new(char *dst, size_t size);

/* Default reason phrase for a status code (RFC 3261 21), "Unknown" otherwise. */
const char *sip_reason_phrase(unsigned status);

#endif
