/*
 * overlay_secure.h: the node-to-node secure channel, as pure functions (no I/O, no clock).
 *
 * Every datagram two p2psip nodes exchange is one frame of docs/OVERLAY-WIRE.md:
 *
 *   HS1, HS2, HS3   the three messages of a Noise_XXpsk0_25519_ChaChaPoly_SHA256 handshake
 *                   (Noise Protocol Framework, rev. 34), all primitives from libsodium:
 *                   X25519 (crypto_scalarmult), ChaCha20-Poly1305 IETF
 *                   (crypto_aead_chacha20poly1305_ietf), SHA-256 and HMAC-SHA-256
 *                   (crypto_hash_sha256, crypto_auth_hmacsha256) for HASH and HKDF;
 *   DATA            one AEAD-sealed message of an established session;
 *   DISCOVER        a LAN multicast announcement, in clear but MACed with the overlay key.
 *
 * The clear fields of each handshake frame (header, session indexes) are hashed into the
 * Noise transcript before the message's tokens, so each message's tag covers every byte
 * of its frame.  A frame that is refused leaves the handshake or session exactly as it
 * was: a forgery cannot spoil the exchange the genuine frame would complete.
 *
 * Static keys are the nodes' Ed25519 identity keys converted to X25519
 * (crypto_sign_ed25519_pk_to_curve25519 / _sk_to_curve25519).  Each side sends its
 * Ed25519 public key in its handshake payload; the peer checks that it converts to the
 * static key the handshake proved possession of, so the node ID (BLAKE2b-160 of the
 * Ed25519 key, dht_id.h) is authenticated by the handshake itself.
 *
 * The overlay secret (optional, a file named in the configuration) becomes the Noise
 * PSK, mixed in at the start (psk0): a node without it cannot produce a valid HS1, and
 * gets no answer at all.  Without a secret the PSK is a fixed public value, so all
 * secret-less nodes form one overlay and any secret makes a separate one.
 *
 * Sessions: after the handshake each direction has its own key.  DATA frames carry an
 * explicit 64-bit counter (the AEAD nonce), checked against a sliding replay window of
 * OVL_REPLAY_WINDOW counters (RFC 6479 style), and keys are rotated every
 * OVL_REKEY_EVERY messages with Noise's REKEY (both sides derive the key of a counter's
 * epoch, so loss and reordering across a rotation do not matter).  A fresh handshake
 * (new ephemeral keys, forward secrecy) is the caller's policy, by time.
 *
 * Errors: functions return a length or 0 on success, a negative errno otherwise, and
 * write their outputs only on success.  Input from the network never aborts: a frame
 * that does not parse or authenticate gives -EBADMSG.  Secrets are wiped
 * (sodium_memzero) when a handshake or session is wiped.
 */
#ifndef P2P_OVERLAY_SECURE_H
#define P2P_OVERLAY_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"

#define OVL_MAGIC 0xB5
#define OVL_VERSION 1
#define OVL_HDR_LEN 4 /* magic, version, type, flags (0) */

enum ovl_type {
    OVL_T_HS1 = 1,
    OVL_T_HS2 = 2,
    OVL_T_HS3 = 3,
    OVL_T_DATA = 4,
    OVL_T_DISCOVER = 5,
};

#define OVL_KEY_LEN 32
#define OVL_TAG_LEN 16
#define OVL_HS_PAYLOAD_MAX 128 /* caller's bytes in HS2/HS3 besides the Ed25519 key */
#define OVL_DATA_HDR_LEN (OVL_HDR_LEN + 4 + 8) /* + receiver index + counter */
#define OVL_DATA_OVERHEAD (OVL_DATA_HDR_LEN + OVL_TAG_LEN)
#define OVL_FRAME_MAX 65507    /* largest UDP payload over IPv4 */
#define OVL_REPLAY_WINDOW 1024 /* bits in the replay bitmap (ovl_session.window) */
/* How far below the highest accepted counter a frame is still accepted: RFC 6479 keeps
 * one 64-bit block of the bitmap as the one it clears while the window slides. */
#define OVL_REPLAY_SPAN (OVL_REPLAY_WINDOW - 64)
#define OVL_REKEY_EVERY (1ull << 20)   /* messages per key epoch */
#define OVL_COUNTER_LIMIT (1ull << 60) /* a session refuses to send past this */

/* Frame sizes (docs/OVERLAY-WIRE.md); plen is the caller's handshake payload. */
#define OVL_HS1_LEN (OVL_HDR_LEN + 4 + 32 + OVL_TAG_LEN)
#define OVL_HS2_LEN(plen) (OVL_HDR_LEN + 8 + 32 + 48 + 32 + (plen) + OVL_TAG_LEN)
#define OVL_HS3_LEN(plen) (OVL_HDR_LEN + 4 + 48 + 32 + (plen) + OVL_TAG_LEN)
#define OVL_HS_FRAME_MAX OVL_HS2_LEN(OVL_HS_PAYLOAD_MAX) /* the largest handshake frame */
#define OVL_DISCOVER_LEN (OVL_HDR_LEN + DHT_ID_LEN + 2 + 1 + 8 + OVL_TAG_LEN)

/* A node's identity: Ed25519 key pair, its X25519 form, and its node ID. */
struct ovl_identity {
    uint8_t ed_pk[32];
    uint8_t ed_sk[64]; /* libsodium layout: seed || public key */
    uint8_t x_pk[32];
    uint8_t x_sk[32];
    struct dht_id id; /* BLAKE2b-160(ed_pk) */
};

/* Fills out from an Ed25519 secret key.  0, or -EINVAL when sk is not a valid key. */
int ovl_identity_from_secret(struct ovl_identity *out, const uint8_t ed_sk[64]);

/* A new random identity.  0, or -EIO when libsodium fails. */
int ovl_identity_generate(struct ovl_identity *out);

/* Wipes the secret parts. */
void ovl_identity_wipe(struct ovl_identity *id);

/*
 * The Noise PSK for an overlay secret (any bytes, len may be 0 for "no secret"):
 * BLAKE2b-256 keyed with the label "p2psip-overlay-psk-v1".  Distinct secrets give
 * distinct PSKs; no secret gives a fixed public PSK.
 */
void ovl_psk_from_secret(uint8_t psk[OVL_KEY_LEN], const uint8_t *secret, size_t len);

/* What the header of a received frame says (nothing is authenticated yet). */
struct ovl_frame_info {
    uint8_t type;            /* enum ovl_type */
    uint32_t sender_index;   /* HS1, HS2: the sender's session index */
    uint32_t receiver_index; /* HS2, HS3, DATA: our session index */
    uint64_t counter;        /* DATA */
};

/*
 * Checks magic, version, flags, a known type and the length of that type (exact for HS1
 * and DISCOVER, between the bounds of OVL_HS2_LEN/OVL_HS3_LEN for HS2 and HS3, at least
 * OVL_DATA_OVERHEAD for DATA, never over OVL_FRAME_MAX), and reads the indexes.  Returns
 * 0, -EBADMSG (not ours or malformed), -EPROTONOSUPPORT (our magic with another version).
 */
int ovl_frame_peek(const uint8_t *buf, size_t len, struct ovl_frame_info *out);

/* The peer as a completed handshake authenticated it. */
struct ovl_peer_info {
    uint8_t ed_pk[32];
    struct dht_id id;                    /* BLAKE2b-160(ed_pk) */
    uint8_t payload[OVL_HS_PAYLOAD_MAX]; /* the caller-level payload it sent */
    size_t payload_len;
};

/* One handshake in progress (initiator or responder).  Plain data: no allocation. */
struct ovl_hs {
    uint8_t ck[32], h[32], k[32];
    uint64_t n;
    bool has_k;
    bool initiator;
    uint8_t step; /* messages processed so far */
    uint8_t e_pk[32], e_sk[32];
    uint8_t re[32], rs[32];
    uint32_t local_index, remote_index;
    const struct ovl_identity *me; /* borrowed: must outlive the handshake */
};

/*
 * Initiator, message 1 (-> e, psk0).  Writes HS1 to out and returns its length;
 * -ENOSPC when cap is too small.
 */
int ovl_hs_initiate(struct ovl_hs *hs, const struct ovl_identity *me,
                    const uint8_t psk[OVL_KEY_LEN], uint32_t local_index, uint8_t *out, size_t cap);

/*
 * Responder: reads HS1 and writes HS2 (<- e, ee, s, es) carrying payload (at most
 * OVL_HS_PAYLOAD_MAX bytes).  Returns HS2's length; -EBADMSG when HS1 is malformed or
 * was made with another PSK (the caller then sends nothing at all), -ENOSPC, -EINVAL.
 */
int ovl_hs_respond(struct ovl_hs *hs, const struct ovl_identity *me, const uint8_t psk[OVL_KEY_LEN],
                   uint32_t local_index, const uint8_t *hs1, size_t len, const uint8_t *payload,
                   size_t plen, uint8_t *out, size_t cap);

/*
 * Initiator: reads HS2, authenticates the responder (peer), and writes HS3 (-> s, se)
 * carrying payload.  Returns HS3's length; -EBADMSG when HS2 does not authenticate or
 * its Ed25519 key does not match its static key; -ENOSPC, -EINVAL.
 */
int ovl_hs_finish(struct ovl_hs *hs, const uint8_t *hs2, size_t len, const uint8_t *payload,
                  size_t plen, uint8_t *out, size_t cap, struct ovl_peer_info *peer);

/*
 * Responder: reads HS3 and authenticates the initiator.  0; -EBADMSG; -EINVAL when hs is
 * not a responder waiting for HS3.
 */
int ovl_hs_complete(struct ovl_hs *hs, const uint8_t *hs3, size_t len, struct ovl_peer_info *peer);

/* Wipes a handshake's secrets (also after a failure). */
void ovl_hs_wipe(struct ovl_hs *hs);

/* An established session: one key per direction, counters, replay window. */
struct ovl_session {
    uint32_t local_index, remote_index;
    bool initiator;
    uint8_t send_key[32];
    uint64_t send_epoch; /* send_key is the key of this epoch */
    uint64_t send_next;  /* next counter to send */
    uint8_t recv_key[32], recv_prev_key[32];
    uint64_t recv_epoch; /* recv_key's epoch; recv_prev_key is epoch - 1 (when > 0) */
    uint64_t recv_max;   /* highest counter accepted; replay window below it */
    bool recv_any;
    uint64_t window[OVL_REPLAY_WINDOW / 64];
};

/*
 * After ovl_hs_finish (initiator) or ovl_hs_complete (responder): derives the session
 * (Noise Split) and wipes the handshake.  Returns 0, -EINVAL when the handshake is not
 * complete.
 */
int ovl_hs_split(struct ovl_hs *hs, struct ovl_session *out);

/*
 * Seals plaintext pt (len bytes) into a DATA frame in out.  Returns the frame length
 * (len + OVL_DATA_OVERHEAD); -EMSGSIZE when the frame would pass OVL_FRAME_MAX,
 * -ENOSPC when cap is too small, -ESTALE when the counter reached OVL_COUNTER_LIMIT
 * (the caller must handshake again).  pt may be out + OVL_DATA_HDR_LEN (sealing in
 * place); no other overlap.
 */
int ovl_seal(struct ovl_session *s, const uint8_t *pt, size_t len, uint8_t *out, size_t cap);

/*
 * Opens a DATA frame addressed to this session (the caller found it by the receiver
 * index).  Returns the plaintext length written to out; -EBADMSG when it does not
 * authenticate (or is malformed), -EALREADY when its counter was already accepted or
 * is older than the replay window (a replay), -ENOSPC.  Only an authentic frame moves
 * the window, and out is written only on success.  out may be frame + OVL_DATA_HDR_LEN
 * (opening in place); no other overlap.
 */
int ovl_open(struct ovl_session *s, const uint8_t *frame, size_t len, uint8_t *out, size_t cap);

/* Wipes a session's keys. */
void ovl_session_wipe(struct ovl_session *s);

/* A LAN discovery announcement (multicast, in clear, MACed with the PSK). */
#define OVL_DISCOVER_ADDRS_MAX 4
struct ovl_discover {
    struct dht_id id; /* the announcing node */
    uint16_t port;    /* its P2P (UDP) port */
    uint8_t flags;    /* OVL_DISC_* */
    uint8_t nonce[8]; /* random per announcement */
};
#define OVL_DISC_QUERY 0x01  /* "who is there?": members answer (rate-limited) */
#define OVL_DISC_MEMBER 0x02 /* the sender is a ring member (can be joined through) */

/*
 * Encodes an announcement with its MAC (HMAC-SHA-256 keyed by a key derived from psk,
 * truncated to 16 bytes).  Returns the length; -ENOSPC.
 */
int ovl_discover_encode(const uint8_t psk[OVL_KEY_LEN], const struct ovl_discover *d, uint8_t *out,
                        size_t cap);

/* Decodes and checks the MAC.  0; -EBADMSG (malformed, or another overlay's PSK). */
int ovl_discover_decode(const uint8_t psk[OVL_KEY_LEN], const uint8_t *buf, size_t len,
                        struct ovl_discover *out);

#endif
