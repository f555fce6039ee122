/*
 * proxy_priv.h: byte splicing the proxy needs beyond sip_build.h.
 *
 * Both helpers copy a parsed message into a bounded buffer, changing only the
 * bytes RFC 3261 says a proxy changes; on error the buffer is restored to its
 * length before the call.
 */
#ifndef P2P_SIP_PROXY_PRIV_H
#define P2P_SIP_PROXY_PRIV_H

#include "p2p/buf.h"
#include "p2p/sip_msg.h"

/*
 * RFC 3261 16.7 step 3: appends resp without its topmost Via value (a header
 * line holding only that value disappears; otherwise the value and its comma),
 * with the header lines in add (each ending in CRLF) inserted after the last
 * header.  Returns 0, -EINVAL (no Via), -EMSGSIZE / -ENOMEM.
 */
int sip__proxy_strip_via(const struct sip_msg *resp, struct p2p_slice add, struct p2p_buf *out);

/*
 * RFC 3261 16.4 (strict router before us): appends req without its last Route
 * value and writes that value's URI into *uri (a slice into req's buffer).
 * Returns 0, -ENOENT (no Route), -EBADMSG, -EMSGSIZE / -ENOMEM.
 */
int sip__proxy_pop_last_route(const struct sip_msg *req, struct p2p_slice *uri,
                              struct p2p_buf *out);

/* Appends every header line of msg with this id, as received, to out. */
int sip__proxy_copy_lines(const struct sip_msg *msg, enum sip_hdr_id id, struct p2p_buf *out);

#endif
