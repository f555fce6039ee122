/*
 * dht_record.h: signed DHT records and their binary encoding.
 *
 * A record is one value stored under a key: (key, value id, sequence number,
 * absolute expiry, tombstone flag, value bytes), signed by its owner's Ed25519 key.
 * Many values may live under one key; the value id tells them apart, and the
 * sequence number orders versions of the same (key, value id).  A removal is a
 * record with the tombstone flag set and no value bytes.
 *
 * Value id: 20 bytes chosen by the owner that name one value under the key and stay
 * the same across refreshes.  For a SIP binding it is BLAKE2b-160 (dht_id_hash) of
 * the contact's +sip.instance, or of the contact URI when there is none (RFC 5626
 * 4.1), so a re-REGISTER replaces its own binding and not another device's.
 *
 * Time: expiry_ms is absolute, in milliseconds, in the same time base as the now_ms
 * given to the store.  Across real nodes that is Unix time in ms (the seed used
 * absolute Unix seconds too, so clocks are assumed roughly synchronised); the
 * simulator uses its virtual clock.
 *
 * What is signed (Ed25519, crypto_sign_detached), a canonical byte string in which
 * every field but the last has a fixed length, so no two records share it:
 *
 *     "p2psip-record-v1" (16 bytes, no NUL) || key (20) || value_id (20)
 *     || seq (8, big-endian) || expiry_ms (8, big-endian)
 *     || flags (1: bit 0 tombstone, bit 1 mailbox)
 *     || owner public key (32) || value_len (2, big-endian) || value
 *
 * Encoding (version 1), used on the wire and in sqlite; integers big-endian:
 *
 *     offset  size  field
 *          0     1  version = 1
 *          1     1  flags: bit 0 = tombstone, bit 1 = mailbox; other bits must be 0
 *          2    20  key
 *         22    20  value id
 *         42     8  seq
 *         50     8  expiry_ms
 *         58    32  owner Ed25519 public key
 *         90    64  signature
 *        154     2  value_len (<= DHT_RECORD_VALUE_MAX; 0 for a tombstone)
 *        156     n  value
 *
 * Mailbox records (flag bit 1): a drop box that anyone may write to and only its
 * owner may empty.  The key of the mailbox of the Ed25519 key P is
 * dht_mailbox_key(P) = BLAKE2b-160("p2psip-mailbox" || P).  Under such a key many
 * writers may each store values (signed by their own keys; the store caps how many
 * per writer and in all), and a value may be replaced by its writer or removed by a
 * tombstone signed by P itself.  Nothing else about them differs; what goes into the
 * value (for p2psip, a message sealed to P) is the writer's business.
 *
 * Invariants of a well-formed record (dht_record_check): value_len <=
 * DHT_RECORD_VALUE_MAX, value != NULL when value_len > 0, and a tombstone carries no
 * value.  Decoding checks the form, never the signature: the store verifies that.
 */
#ifndef P2P_DHT_RECORD_H
#define P2P_DHT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"

#define DHT_RECORD_VERSION 1
#define DHT_RECORD_VALUE_MAX 4096 /* bytes of value per record */
#define DHT_RECORD_OWNER_LEN 32   /* crypto_sign_PUBLICKEYBYTES */
#define DHT_RECORD_SECRET_LEN 64  /* crypto_sign_SECRETKEYBYTES */
#define DHT_RECORD_SIG_LEN 64     /* crypto_sign_BYTES */
#define DHT_RECORD_HEADER_LEN 156 /* encoded size of everything but the value */
#define DHT_RECORD_ENCODED_MAX (DHT_RECORD_HEADER_LEN + DHT_RECORD_VALUE_MAX)
#define DHT_RECORD_FLAG_TOMBSTONE 0x01
#define DHT_RECORD_FLAG_MAILBOX 0x02

struct dht_record {
    struct dht_id key;
    struct dht_id value_id;
    uint64_t seq;       /* larger replaces smaller for the same (key, value_id) */
    uint64_t expiry_ms; /* absolute; the record is dead from this instant on */
    uint8_t owner[DHT_RECORD_OWNER_LEN];
    uint8_t sig[DHT_RECORD_SIG_LEN];
    bool tombstone;
    bool mailbox; /* a value in a mailbox (see above) */
    /* Not owned: points into the caller's buffer (decode) or the store's memory
     * (get/find: valid until the next call that modifies that store). */
    const uint8_t *value;
    size_t value_len;
};

/* The identity of a record version, as compared by anti-entropy. */
struct dht_record_ident {
    struct dht_id key;
    struct dht_id value_id;
    uint64_t seq;
    bool tombstone;
};

/* Checks the form (sizes, tombstone has no value).  Returns 0 or -EINVAL. */
int dht_record_check(const struct dht_record *rec);

/*
 * Signs rec with the Ed25519 secret key sk (libsodium layout: seed || public key):
 * sets rec->owner to sk's public key and rec->sig to the signature over the string
 * described above.  All other fields must already be set.  Returns 0, or -EINVAL
 * when rec is not well-formed (rec is then unchanged).
 */
int dht_record_sign(struct dht_record *rec, const uint8_t sk[DHT_RECORD_SECRET_LEN]);

/*
 * Verifies rec->sig against rec->owner over every field.  Returns 0 when it
 * verifies, -EINVAL when rec is not well-formed, -EBADMSG when the signature is
 * wrong (any field changed after signing, or another key signed it).
 */
int dht_record_verify(const struct dht_record *rec);

/* True when a and b are the same signed record: every field and the value bytes. */
/* The key of the mailbox of Ed25519 public key `owner`: BLAKE2b-160 of
 * "p2psip-mailbox" || owner. */
void dht_mailbox_key(const uint8_t owner[DHT_RECORD_OWNER_LEN], struct dht_id *out);

bool dht_record_equal(const struct dht_record *a, const struct dht_record *b);

/* The identity (key, value id, seq, tombstone) of rec. */
void dht_record_ident_of(const struct dht_record *rec, struct dht_record_ident *out);

/* Bytes dht_record_encode writes for rec: DHT_RECORD_HEADER_LEN + value_len. */
size_t dht_record_encoded_len(const struct dht_record *rec);

/*
 * Writes the version-1 encoding of rec into buf (cap bytes).  Returns the number of
 * bytes written, -EINVAL when rec is not well-formed, -ENOSPC when cap is too small
 * (nothing useful is written then).
 */
int dht_record_encode(const struct dht_record *rec, uint8_t *buf, size_t cap);

/*
 * Decodes one record from the start of buf (len bytes; no terminator assumed, never
 * reads past buf + len).  On success fills *out (out->value points into buf) and
 * returns the number of bytes consumed, which may be less than len (records can be
 * packed back to back).  Returns -EAGAIN when buf holds only a prefix of a record,
 * -EBADMSG for an unknown version, unknown flag bits, value_len over
 * DHT_RECORD_VALUE_MAX or a tombstone with a value.  *out is untouched on error.
 * The signature is not checked (dht_record_verify).
 */
int dht_record_decode(struct dht_record *out, const uint8_t *buf, size_t len);

#endif
