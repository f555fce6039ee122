/*
 * overlay_media.h: media anchoring: RTP and RTCP relayed between two nodes over the
 * pipe between them, for phones that cannot reach each other (one that offers
 * 127.0.0.1, one behind NAT), as rtpengine does for kamailio.
 *
 * A stream is one m= line of one call: a pair of UDP sockets on 127.0.0.1 (RTP on an
 * even port, RTCP on the next), the address the phone on this host sends from and
 * listens on (its SDP, or what it sends from first), and the node at the other end.
 * What the phone sends to the pair goes to that node as a pipe datagram of service
 * OVERLAY_SVC_MEDIA; what arrives from that node goes to the phone, from the pair,
 * so a phone that latches onto its peer's source address (symmetric RTP) is served.
 * The SIP side (p2psipd) decides when to anchor and rewrites the SDP; this module
 * only moves packets.
 *
 * Bounds: at most max_streams streams (a new one beyond: -ENOSPC); a stream silent
 * for OVERLAY_MEDIA_IDLE_MS is freed, so are a call's streams when it ends; a packet
 * is at most OVERLAY_MEDIA_PKT_MAX bytes.  Packets for an unknown stream, or from a
 * node that is not the stream's peer, are dropped and counted.
 */
#ifndef P2P_OVERLAY_MEDIA_H
#define P2P_OVERLAY_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "p2p/dht_id.h"

struct overlay_node;
struct overlay_media;
struct p2p_log;

#define OVERLAY_SVC_MEDIA 4 /* pipe service: call 8, stream 1, rtcp 1, packet */
#define OVERLAY_MEDIA_CALL_LEN 8
#define OVERLAY_MEDIA_PKT_MAX 2048
#define OVERLAY_MEDIA_IDLE_MS 60000

struct overlay_media_stats {
    uint64_t streams_opened, streams_closed;
    uint64_t to_peer, to_phone; /* packets relayed each way */
    uint64_t dropped;           /* unknown stream, wrong peer, no phone yet, too large */
};

/* Creates the relay on loop, sending through node.  0, -EINVAL, -ENOMEM. */
int overlay_media_new(struct overlay_media **out, uv_loop_t *loop, struct overlay_node *node,
                      unsigned max_streams, struct p2p_log *log);

/*
 * The stream `index` of call `call` (created with its socket pair when new); *port
 * gets its RTP port on 127.0.0.1.  0, -ENOSPC (max_streams), or a libuv error.
 */
int overlay_media_stream(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN],
                         unsigned index, uint16_t *port);

/* Where the phone of this host receives the stream's RTP (RTCP: port + 1). */
void overlay_media_set_phone(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN],
                             unsigned index, const struct sockaddr_storage *rtp);

/* The node at the other end of the stream, and the super-node that relays to it when
 * it is a client behind NAT (via NULL: none). */
void overlay_media_set_peer(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN],
                            unsigned index, const struct dht_id *peer, const struct dht_id *via);

/* The call ended: its streams are freed. */
void overlay_media_end(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN]);

/* A pipe datagram of service OVERLAY_SVC_MEDIA from node `from`. */
void overlay_media_recv(struct overlay_media *m, const struct dht_id *from, const uint8_t *buf,
                        size_t len);

void overlay_media_get_stats(const struct overlay_media *m, struct overlay_media_stats *out);
size_t overlay_media_streams(const struct overlay_media *m);

/* Closes every socket; the memory goes once libuv has closed them.  NULL: no-op. */
void overlay_media_close(struct overlay_media *m);

#endif
