/*
 * dht_msg.h: the DHT wire codec (version 1).  Full table in dht/msg.c and
 * docs/DHT-WIRE.md.
 *
 * A message is a 30-byte header (version, type, flags, hop count, transaction id,
 * sender node ID, total length) followed by TLV attributes (u16 code, u16 length, value).  The
 * decoder takes (buf, len), never reads past it, checks every length, skips unknown
 * attributes and caps every count; a decoded message points into buf (peers and
 * records are copied out into fixed arrays, record values stay slices into buf).
 * The encoder writes the same struct back.
 *
 * Peers carry an opaque transport address of up to DHT_ADDR_MAX bytes that only the
 * overlay understands (the simulator uses a 4-byte integer).
 */
#ifndef P2P_DHT_MSG_H
#define P2P_DHT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"
#include "p2p/dht_record.h"

#define DHT_MSG_VERSION 1
#define DHT_MSG_HEADER_LEN 30
#define DHT_MSG_MAX 65535     /* hard cap on one encoded message */
#define DHT_MSG_ATTRS_MAX 64  /* attributes in one message, known or not */
#define DHT_MSG_PEERS_MAX 48  /* peers in one PEERS attribute */
#define DHT_MSG_RECORDS_MAX 8 /* RECORD attributes in one message */
#define DHT_MSG_IDENTS_MAX 64 /* record identities in one IDENTS attribute */
#define DHT_MSG_SUMMARY_MAX 64
#define DHT_MSG_AVOID_MAX 6 /* node IDs in one AVOID attribute */
#define DHT_MSG_PATH_MAX 12 /* hops in one PATH attribute */
#define DHT_PATH_RTT_UNKNOWN 0xffff
#define DHT_ADDR_MAX 18 /* IPv6 + port fits */
#define DHT_PUBKEY_LEN 32
#define DHT_IDENT_WIRE_LEN 49 /* key 20, value id 20, seq 8, flags 1 */

/* An opaque transport address; only the overlay (or simulator) interprets it. */
struct dht_addr {
    uint8_t len;
    uint8_t b[DHT_ADDR_MAX];
};

/* A node as the DHT knows it: its ID and where to reach it. */
struct dht_peer {
    struct dht_id id;
    struct dht_addr addr;
};

enum dht_msg_type {
    DHT_MSG_PING = 1,         /* liveness probe; answered by ACK */
    DHT_MSG_ACK = 2,          /* per-hop acknowledgement of txid (+ STATUS) */
    DHT_MSG_JOIN = 3,         /* routed to the joiner's ID */
    DHT_MSG_JOIN_REPLY = 4,   /* root -> joiner: ROOT + PEERS (leaf set) */
    DHT_MSG_ROWS = 5,         /* routing-table entries (join path, ROW_REQ answer) */
    DHT_MSG_ROW_REQ = 6,      /* "send me your row LEVEL" */
    DHT_MSG_LEAFSET = 7,      /* leaf-set push; flags WANT_REPLY, ANNOUNCE */
    DHT_MSG_LOOKUP = 8,       /* routed: find the root of KEY */
    DHT_MSG_LOOKUP_REPLY = 9, /* root -> origin: ROOT */
    DHT_MSG_PUT = 10,         /* routed: RECORD */
    DHT_MSG_PUT_REPLY = 11,   /* root -> origin: STATUS, COUNT (replica acks) */
    DHT_MSG_GET = 12,         /* routed: KEY */
    DHT_MSG_GET_REPLY = 13,   /* root or replica -> origin: STATUS, RECORDs */
    DHT_MSG_REPLICATE = 14,   /* RECORDs to store; the ACK carries the STATUS */
    DHT_MSG_SYNC = 15,        /* anti-entropy: LO, HI, SUMMARY */
    DHT_MSG_SYNC_REPLY = 16,  /* IDENTS the responder holds in [LO, HI] */
    DHT_MSG_FETCH = 17,       /* IDENTS wanted; answered by REPLICATE */
    DHT_MSG_TYPE_MAX = 17,
};

/* Header flags. */
#define DHT_FLAG_ACK_REQ 0x01    /* the receiver acknowledges txid */
#define DHT_FLAG_WANT_REPLY 0x02 /* LEAFSET: answer with your leaf set */
#define DHT_FLAG_ANNOUNCE 0x04   /* LEAFSET: a joiner announcing itself */
#define DHT_FLAG_CLIENT 0x08     /* client traffic (not maintenance), for accounting */
#define DHT_FLAG_MAINT 0x10      /* routed lookup made by maintenance (global tuning) */
#define DHT_FLAG_PASSED 0x20     /* GET passed by a root holding nothing to a replica */
#define DHT_FLAG_TRACE 0x40      /* LOOKUP: every hop adds itself to PATH */

/* Attribute codes. */
enum dht_attr {
    DHT_ATTR_KEY = 1,         /* 20: target key */
    DHT_ATTR_ORIGIN = 2,      /* peer: where replies go */
    DHT_ATTR_REQ_ID = 3,      /* u32: origin's request id */
    DHT_ATTR_PEERS = 4,       /* u8 count, peers */
    DHT_ATTR_LEVEL = 5,       /* u8 */
    DHT_ATTR_ROOT = 6,        /* peer */
    DHT_ATTR_RECORD = 7,      /* one encoded dht_record; repeats */
    DHT_ATTR_STATUS = 8,      /* i16: 0 or -errno */
    DHT_ATTR_LO = 9,          /* 20 */
    DHT_ATTR_HI = 10,         /* 20 */
    DHT_ATTR_SUMMARY = 11,    /* opaque, <= DHT_MSG_SUMMARY_MAX */
    DHT_ATTR_IDENTS = 12,     /* u8 count, 49-byte identities */
    DHT_ATTR_SENDER_KEY = 13, /* 32: Ed25519 key of the writer: H(key) = ORIGIN id in routed
                                 messages, = sender id otherwise */
    DHT_ATTR_COUNT = 14,      /* u32 */
    DHT_ATTR_AVOID = 15,      /* u8 count (1..6), node IDs that failed this routed message */
    DHT_ATTR_PATH = 16,       /* u8 count (1..12), (node ID, u16 ms) per hop of a traced LOOKUP */
};

/* Which attributes a decoded message holds (bit = 1 << code). */
#define DHT_HAVE(code) (1u << (code))

struct dht_msg {
    uint8_t version;
    uint8_t type;
    uint8_t flags;
    uint8_t hops;
    uint32_t txid;
    struct dht_id sender;

    uint32_t have; /* DHT_HAVE() bits */
    struct dht_id key;
    struct dht_peer origin;
    uint32_t req_id;
    uint8_t level;
    struct dht_peer root;
    int16_t status;
    struct dht_id lo, hi;
    uint32_t count;
    uint8_t sender_key[DHT_PUBKEY_LEN];
    uint8_t summary_len;
    uint8_t summary[DHT_MSG_SUMMARY_MAX];
    uint8_t n_avoid;
    struct dht_id avoid[DHT_MSG_AVOID_MAX];
    uint8_t n_path;
    struct dht_path_hop {
        struct dht_id id;
        uint16_t rtt_ms; /* the hop's smoothed RTT to the next hop; 0 for the root;
                            DHT_PATH_RTT_UNKNOWN: not measured yet */
    } path[DHT_MSG_PATH_MAX];

    size_t n_peers;
    struct dht_peer peers[DHT_MSG_PEERS_MAX];
    size_t n_records;
    struct dht_record records[DHT_MSG_RECORDS_MAX]; /* values point into the buffer */
    size_t n_idents;
    struct dht_record_ident idents[DHT_MSG_IDENTS_MAX];
};

/* Clears m and sets version, type and sender; attributes are then set by hand. */
void dht_msg_init(struct dht_msg *m, enum dht_msg_type type, const struct dht_id *sender);

/*
 * Decodes buf[0..len) into *out.  Returns 0; -EBADMSG for a wrong version, a length
 * that runs past len, a known attribute of the wrong size, a count over its cap, a
 * malformed record or a duplicate single-valued attribute; -EMSGSIZE when len >
 * DHT_MSG_MAX.  Unknown attribute codes and unknown types are skipped / passed up
 * (the caller counts unknown types).  *out is only meaningful on success.
 */
int dht_msg_decode(struct dht_msg *out, const uint8_t *buf, size_t len);

/*
 * Encodes m (attributes in m->have, plus peers/records/idents when their counts are
 * non-zero) into buf.  Returns the length, -ENOSPC when cap is too small, -EINVAL
 * when a count exceeds its cap or a record is malformed.
 */
int dht_msg_encode(const struct dht_msg *m, uint8_t *buf, size_t cap);

/* Bytes one peer takes inside a PEERS attribute. */
size_t dht_msg_peer_wire_len(const struct dht_peer *p);

/* A short name for a message type ("PING", "ACK", ...), "?" when unknown. */
const char *dht_msg_type_name(unsigned type);

/* Offsets of header fields patched in place when forwarding a routed message. */
#define DHT_MSG_OFF_FLAGS 2
#define DHT_MSG_OFF_HOPS 3
#define DHT_MSG_OFF_TXID 4
#define DHT_MSG_OFF_SENDER 8
#define DHT_MSG_OFF_LEN 28

#endif
