/*
 * record.c: signing, verification and the version-1 binary encoding of DHT records
 * (see dht_record.h for the byte layouts).
 *
 * The signed string and the encoding are built by the same field writers, so the
 * two cannot drift apart.  The decoder checks the length before every read, and
 * rejects what the encoder can never produce (unknown version or flag bits, an
 * oversized value, a tombstone with a value), so every accepted input re-encodes to
 * the same bytes.
 */
#include "p2p/dht_record.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#define SIGN_DOMAIN "p2psip-record-v1"
#define SIGN_DOMAIN_LEN (sizeof(SIGN_DOMAIN) - 1)
/* domain || key || value_id || seq || expiry || flags || owner || value_len */
#define SIGN_FIXED_LEN (SIGN_DOMAIN_LEN + 2 * DHT_ID_LEN + 8 + 8 + 1 + DHT_RECORD_OWNER_LEN + 2)
#define SIGN_MAX (SIGN_FIXED_LEN + DHT_RECORD_VALUE_MAX)

_Static_assert(DHT_RECORD_OWNER_LEN == crypto_sign_PUBLICKEYBYTES, "owner is an Ed25519 key");
_Static_assert(DHT_RECORD_SECRET_LEN == crypto_sign_SECRETKEYBYTES, "Ed25519 secret key");
_Static_assert(DHT_RECORD_SIG_LEN == crypto_sign_BYTES, "Ed25519 signature");
_Static_assert(DHT_RECORD_HEADER_LEN ==
                   1 + 1 + 2 * DHT_ID_LEN + 8 + 8 + DHT_RECORD_OWNER_LEN + DHT_RECORD_SIG_LEN + 2,
               "encoded header layout");
_Static_assert(DHT_RECORD_VALUE_MAX <= UINT16_MAX, "value_len is 16 bits on the wire");

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
    return p + 8;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n > 0)
        memcpy(p, src, n);
    return p + n;
}

int dht_record_check(const struct dht_record *rec)
{
    if (rec->value_len > DHT_RECORD_VALUE_MAX)
        return -EINVAL;
    if (rec->value_len > 0 && rec->value == NULL)
        return -EINVAL;
    if (rec->tombstone && rec->value_len != 0)
        return -EINVAL;
    return 0;
}

static uint8_t record_flags(const struct dht_record *rec)
{
    return (uint8_t)((rec->tombstone ? DHT_RECORD_FLAG_TOMBSTONE : 0) |
                     (rec->mailbox ? DHT_RECORD_FLAG_MAILBOX : 0));
}

void dht_mailbox_key(const uint8_t owner[DHT_RECORD_OWNER_LEN], struct dht_id *out)
{
    static const char label[] = "p2psip-mailbox";
    uint8_t buf[sizeof(label) - 1 + DHT_RECORD_OWNER_LEN];

    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, owner, DHT_RECORD_OWNER_LEN);
    dht_id_hash(out, buf, sizeof(buf));
}

/* The canonical signed string; buf holds SIGN_MAX bytes.  Returns its length. */
static size_t signed_string(const struct dht_record *rec, uint8_t *buf)
{
    uint8_t *p = buf;

    p = put_bytes(p, SIGN_DOMAIN, SIGN_DOMAIN_LEN);
    p = put_bytes(p, rec->key.b, DHT_ID_LEN);
    p = put_bytes(p, rec->value_id.b, DHT_ID_LEN);
    p = put_u64(p, rec->seq);
    p = put_u64(p, rec->expiry_ms);
    *p++ = record_flags(rec);
    p = put_bytes(p, rec->owner, DHT_RECORD_OWNER_LEN);
    *p++ = (uint8_t)(rec->value_len >> 8);
    *p++ = (uint8_t)(rec->value_len & 0xff);
    p = put_bytes(p, rec->value, rec->value_len);
    return (size_t)(p - buf);
}

int dht_record_sign(struct dht_record *rec, const uint8_t sk[DHT_RECORD_SECRET_LEN])
{
    uint8_t msg[SIGN_MAX];
    uint8_t owner[DHT_RECORD_OWNER_LEN];
    size_t n;
    int rc;

    rc = dht_record_check(rec);
    if (rc < 0)
        return rc;
    /* libsodium's secret key is seed || public key. */
    if (crypto_sign_ed25519_sk_to_pk(owner, sk) != 0)
        return -EINVAL;
    memcpy(rec->owner, owner, sizeof(owner));
    n = signed_string(rec, msg);
    crypto_sign_detached(rec->sig, NULL, msg, n, sk);
    return 0;
}

int dht_record_verify(const struct dht_record *rec)
{
    uint8_t msg[SIGN_MAX];
    size_t n;
    int rc;

    rc = dht_record_check(rec);
    if (rc < 0)
        return rc;
    n = signed_string(rec, msg);
    if (crypto_sign_verify_detached(rec->sig, msg, n, rec->owner) != 0)
        return -EBADMSG;
    return 0;
}

bool dht_record_equal(const struct dht_record *a, const struct dht_record *b)
{
    if (!dht_id_eq(&a->key, &b->key) || !dht_id_eq(&a->value_id, &b->value_id))
        return false;
    if (a->seq != b->seq || a->expiry_ms != b->expiry_ms || a->tombstone != b->tombstone ||
        a->mailbox != b->mailbox)
        return false;
    if (memcmp(a->owner, b->owner, DHT_RECORD_OWNER_LEN) != 0 ||
        memcmp(a->sig, b->sig, DHT_RECORD_SIG_LEN) != 0)
        return false;
    if (a->value_len != b->value_len)
        return false;
    return a->value_len == 0 || memcmp(a->value, b->value, a->value_len) == 0;
}

void dht_record_ident_of(const struct dht_record *rec, struct dht_record_ident *out)
{
    out->key = rec->key;
    out->value_id = rec->value_id;
    out->seq = rec->seq;
    out->tombstone = rec->tombstone;
}

size_t dht_record_encoded_len(const struct dht_record *rec)
{
    return DHT_RECORD_HEADER_LEN + rec->value_len;
}

int dht_record_encode(const struct dht_record *rec, uint8_t *buf, size_t cap)
{
    uint8_t *p = buf;
    int rc;

    rc = dht_record_check(rec);
    if (rc < 0)
        return rc;
    if (cap < dht_record_encoded_len(rec))
        return -ENOSPC;
    *p++ = DHT_RECORD_VERSION;
    *p++ = record_flags(rec);
    p = put_bytes(p, rec->key.b, DHT_ID_LEN);
    p = put_bytes(p, rec->value_id.b, DHT_ID_LEN);
    p = put_u64(p, rec->seq);
    p = put_u64(p, rec->expiry_ms);
    p = put_bytes(p, rec->owner, DHT_RECORD_OWNER_LEN);
    p = put_bytes(p, rec->sig, DHT_RECORD_SIG_LEN);
    *p++ = (uint8_t)(rec->value_len >> 8);
    *p++ = (uint8_t)(rec->value_len & 0xff);
    p = put_bytes(p, rec->value, rec->value_len);
    return (int)(p - buf);
}

int dht_record_decode(struct dht_record *out, const uint8_t *buf, size_t len)
{
    struct dht_record r;
    const uint8_t *p = buf;
    size_t value_len;

    /* Version and flags are judged as soon as they are there, so garbage is
     * refused early rather than reported as "need more bytes". */
    if (len < 1)
        return -EAGAIN;
    if (buf[0] != DHT_RECORD_VERSION)
        return -EBADMSG;
    if (len < 2)
        return -EAGAIN;
    if ((buf[1] & ~(DHT_RECORD_FLAG_TOMBSTONE | DHT_RECORD_FLAG_MAILBOX)) != 0)
        return -EBADMSG;
    if (len < DHT_RECORD_HEADER_LEN)
        return -EAGAIN;

    memset(&r, 0, sizeof(r));
    r.tombstone = (buf[1] & DHT_RECORD_FLAG_TOMBSTONE) != 0;
    r.mailbox = (buf[1] & DHT_RECORD_FLAG_MAILBOX) != 0;
    p += 2;
    memcpy(r.key.b, p, DHT_ID_LEN);
    p += DHT_ID_LEN;
    memcpy(r.value_id.b, p, DHT_ID_LEN);
    p += DHT_ID_LEN;
    r.seq = get_u64(p);
    p += 8;
    r.expiry_ms = get_u64(p);
    p += 8;
    memcpy(r.owner, p, DHT_RECORD_OWNER_LEN);
    p += DHT_RECORD_OWNER_LEN;
    memcpy(r.sig, p, DHT_RECORD_SIG_LEN);
    p += DHT_RECORD_SIG_LEN;
    value_len = ((size_t)p[0] << 8) | p[1];
    p += 2;
    if (value_len > DHT_RECORD_VALUE_MAX)
        return -EBADMSG;
    if (r.tombstone && value_len != 0)
        return -EBADMSG;
    if (len - DHT_RECORD_HEADER_LEN < value_len)
        return -EAGAIN;
    r.value = value_len > 0 ? p : NULL;
    r.value_len = value_len;
    *out = r;
    return (int)(DHT_RECORD_HEADER_LEN + value_len);
}
