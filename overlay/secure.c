/*
 * secure.c: the node-to-node secure channel (overlay_secure.h, docs/OVERLAY-WIRE.md).
 *
 * Design.  A handshake is Noise_XXpsk0_25519_ChaChaPoly_SHA256 (Noise Protocol
 * Framework, revision 34), written out message by message rather than driven by a
 * pattern interpreter: three messages are short enough to read next to section 7.5
 * (XX) and 9 (psk0), and a fixed sequence cannot be steered into another pattern.
 * Every primitive is libsodium's: X25519, ChaCha20-Poly1305 (IETF), SHA-256 and
 * HMAC-SHA-256 for HASH and HKDF.  Around each Noise message sits a clear frame header
 * (type, session indexes); those bytes are hashed into h before the message's tokens,
 * so the message's own AEAD tag covers them (a p2psip addition; with nothing bound the
 * functions are plain Noise, which the tests check against published vectors).  After
 * Split() a session seals DATA frames with an explicit 64-bit counter as the nonce and
 * the 16-byte clear header as associated data; keys turn over every OVL_REKEY_EVERY
 * counters with Noise's REKEY, and the receiver keeps the current and the previous
 * epoch's key so that reordering across a turnover costs nothing.
 *
 * Invariants.  Functions that read a frame work on a copy of the handshake or session
 * state and commit it only when the frame authenticated, so a forged or replayed
 * frame changes nothing (not h, not the replay window, not the key epoch).  Output
 * parameters are written only on success.  No length from the wire is used before it
 * was checked against the frame's fixed layout (ovl_frame_peek), and no read goes past
 * len.  Every secret on the stack is wiped with sodium_memzero before return; so are
 * handshakes and sessions when wiped, split or ended.  The replay window moves only
 * after the AEAD tag verified.  send_epoch == send_next / OVL_REKEY_EVERY after each
 * seal, and recv_epoch only grows.
 *
 * Noise rev. 34: 4.2 (ChaChaPoly nonce), 4.3 (HKDF), 5.1-5.3 (CipherState,
 * SymmetricState, HandshakeState), 7.5 (XX), 9.2-9.3 (psk modifiers, the e token's
 * MixKey), 11.3 (REKEY).  RFC 6479 (replay window without bit shifting).
 */
#include "p2p/overlay_secure.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "secure_int.h"

#define HASHLEN 32
#define DHLEN 32

static const char PROTOCOL_NAME[] = "Noise_XXpsk0_25519_ChaChaPoly_SHA256";
static const char PROLOGUE[] = "p2psip-overlay-v1";
static const char PSK_LABEL[] = "p2psip-overlay-psk-v1";
static const char DISCOVER_LABEL[] = "p2psip-discover-v1";

/* Clear bytes before the Noise message in each handshake frame. */
#define HS1_CLEAR (OVL_HDR_LEN + 4)          /* hdr, sender index */
#define HS2_CLEAR (OVL_HDR_LEN + 4 + 4)      /* hdr, sender index, receiver index */
#define HS3_CLEAR (OVL_HDR_LEN + 4)          /* hdr, receiver index */
#define ID_PAYLOAD (32 + OVL_HS_PAYLOAD_MAX) /* Ed25519 key + caller's bytes */

/* ---- wire integers (big-endian) ---- */

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

static void put_hdr(uint8_t *p, uint8_t type)
{
    p[0] = OVL_MAGIC;
    p[1] = OVL_VERSION;
    p[2] = type;
    p[3] = 0;
}

/* ---- Noise 4: crypto functions ---- */

/* Noise 4.2: ChaChaPoly's 96-bit nonce is 32 zero bits, then n little-endian. */
static void chachapoly_nonce(uint8_t nonce[12], uint64_t n)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

static void hmac(uint8_t out[HASHLEN], const uint8_t key[HASHLEN], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen)
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key, HASHLEN);
    crypto_auth_hmacsha256_update(&st, a, alen);
    if (blen > 0)
        crypto_auth_hmacsha256_update(&st, b, blen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

/* Noise 4.3: HKDF(chaining_key, input_key_material, num_outputs); o3 may be NULL. */
static void hkdf(const uint8_t ck[HASHLEN], const uint8_t *ikm, size_t len, uint8_t o1[HASHLEN],
                 uint8_t o2[HASHLEN], uint8_t *o3)
{
    static const uint8_t one = 1, two = 2, three = 3;
    uint8_t temp_key[HASHLEN];

    hmac(temp_key, ck, ikm, len, NULL, 0);
    hmac(o1, temp_key, &one, 1, NULL, 0);
    hmac(o2, temp_key, o1, HASHLEN, &two, 1);
    if (o3 != NULL)
        hmac(o3, temp_key, o2, HASHLEN, &three, 1);
    sodium_memzero(temp_key, sizeof(temp_key));
}

/* Noise 4.1 DH(): a peer key of small order makes the result all zero, which libsodium
 * refuses; so do we (the key agreement would be worth nothing). */
static int dh(uint8_t out[DHLEN], const uint8_t sk[DHLEN], const uint8_t pk[DHLEN])
{
    return crypto_scalarmult(out, sk, pk) == 0 ? 0 : -EBADMSG;
}

void ovl__rekey(uint8_t k[OVL_KEY_LEN])
{
    static const uint8_t zeros[OVL_KEY_LEN];
    uint8_t nonce[12], ct[OVL_KEY_LEN + OVL_TAG_LEN];

    /* Noise 11.3: REKEY(k) = ENCRYPT(k, maxnonce, zerolen, zeros), first 32 bytes */
    chachapoly_nonce(nonce, UINT64_MAX);
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, zeros, sizeof(zeros), NULL, 0, NULL, nonce,
                                              k);
    memcpy(k, ct, OVL_KEY_LEN);
    sodium_memzero(ct, sizeof(ct));
}

/* ---- Noise 5.2: SymmetricState (the CipherState's k and n live in ovl_hs) ---- */

static void mix_hash(struct ovl_hs *hs, const uint8_t *data, size_t len)
{
    crypto_hash_sha256_state st;

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, hs->h, HASHLEN);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, hs->h);
}

static void mix_key(struct ovl_hs *hs, const uint8_t *ikm, size_t len)
{
    hkdf(hs->ck, ikm, len, hs->ck, hs->k, NULL);
    hs->n = 0;
    hs->has_k = true;
}

static void mix_key_and_hash(struct ovl_hs *hs, const uint8_t *ikm, size_t len)
{
    uint8_t temp_h[HASHLEN];

    hkdf(hs->ck, ikm, len, hs->ck, temp_h, hs->k);
    mix_hash(hs, temp_h, HASHLEN);
    hs->n = 0;
    hs->has_k = true;
    sodium_memzero(temp_h, sizeof(temp_h));
}

/* EncryptAndHash: out receives len + 16 bytes (len without a key, never here). */
static size_t encrypt_and_hash(struct ovl_hs *hs, const uint8_t *pt, size_t len, uint8_t *out)
{
    uint8_t nonce[12];
    size_t clen = len;

    if (hs->has_k) {
        chachapoly_nonce(nonce, hs->n++);
        crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, len, hs->h, HASHLEN, NULL, nonce,
                                                  hs->k);
        clen = len + OVL_TAG_LEN;
    } else if (len > 0) {
        memmove(out, pt, len);
    }
    mix_hash(hs, out, clen);
    return clen;
}

/* DecryptAndHash: ct is len bytes; out receives len - 16.  -EBADMSG when the tag fails. */
static int decrypt_and_hash(struct ovl_hs *hs, const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t nonce[12];

    if (hs->has_k) {
        if (len < OVL_TAG_LEN)
            return -EBADMSG;
        chachapoly_nonce(nonce, hs->n);
        if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, hs->h, HASHLEN,
                                                      nonce, hs->k) != 0)
            return -EBADMSG;
        hs->n++;
    } else if (len > 0) {
        memmove(out, ct, len);
    }
    mix_hash(hs, ct, len);
    return 0;
}

/* ---- Noise 5.3 and 7.5: the three messages of XXpsk0 ---- */

void ovl__noise_init(struct ovl_hs *hs, bool initiator, const struct ovl_identity *me,
                     const uint8_t *prologue, size_t prologue_len)
{
    size_t nlen = sizeof(PROTOCOL_NAME) - 1;

    memset(hs, 0, sizeof(*hs));
    /* Noise 5.2 InitializeSymmetric: the name is padded, or hashed when longer than
     * HASHLEN (ours is 36 bytes, so hashed) */
    if (nlen <= HASHLEN)
        memcpy(hs->h, PROTOCOL_NAME, nlen);
    else
        crypto_hash_sha256(hs->h, (const uint8_t *)PROTOCOL_NAME, nlen);
    memcpy(hs->ck, hs->h, HASHLEN);
    mix_hash(hs, prologue, prologue_len);
    hs->initiator = initiator;
    hs->me = me;
}

static void bind_clear(struct ovl_hs *hs, const uint8_t *bind, size_t blen)
{
    if (blen > 0)
        mix_hash(hs, bind, blen);
}

/* The "e" token, written (Noise 5.3 WriteMessage) with psk's extra MixKey (9.2). */
static void write_e(struct ovl_hs *hs, const uint8_t e_sk[32], uint8_t *out)
{
    memcpy(hs->e_sk, e_sk, 32);
    crypto_scalarmult_base(hs->e_pk, hs->e_sk);
    memcpy(out, hs->e_pk, 32);
    mix_hash(hs, hs->e_pk, 32);
    mix_key(hs, hs->e_pk, 32);
}

static void read_e(struct ovl_hs *hs, const uint8_t *in)
{
    memcpy(hs->re, in, 32);
    mix_hash(hs, hs->re, 32);
    mix_key(hs, hs->re, 32);
}

/* MixKey(DH(sk, pk)) for the ee, es and se tokens. */
static int mix_dh(struct ovl_hs *hs, const uint8_t sk[32], const uint8_t pk[32])
{
    uint8_t shared[DHLEN];
    int rc = dh(shared, sk, pk);

    if (rc == 0)
        mix_key(hs, shared, DHLEN);
    sodium_memzero(shared, sizeof(shared));
    return rc;
}

/* -> psk, e */
int ovl__noise_write1(struct ovl_hs *hs, const uint8_t psk[OVL_KEY_LEN], const uint8_t e_sk[32],
                      const uint8_t *bind, size_t blen, const uint8_t *pl, size_t plen,
                      uint8_t *out)
{
    size_t n;

    bind_clear(hs, bind, blen);
    mix_key_and_hash(hs, psk, OVL_KEY_LEN); /* Noise 9.2: the psk token */
    write_e(hs, e_sk, out);
    n = encrypt_and_hash(hs, pl, plen, out + 32);
    hs->step = 1;
    return (int)(32 + n);
}

int ovl__noise_read1(struct ovl_hs *hs, const uint8_t psk[OVL_KEY_LEN], const uint8_t *bind,
                     size_t blen, const uint8_t *msg, size_t len, uint8_t *pl)
{
    if (len < 32 + OVL_TAG_LEN)
        return -EBADMSG;
    bind_clear(hs, bind, blen);
    mix_key_and_hash(hs, psk, OVL_KEY_LEN);
    read_e(hs, msg);
    /* the payload's tag is the first thing only a holder of the PSK can make */
    if (decrypt_and_hash(hs, msg + 32, len - 32, pl) != 0)
        return -EBADMSG;
    hs->step = 1;
    return (int)(len - 32 - OVL_TAG_LEN);
}

/* <- e, ee, s, es */
int ovl__noise_write2(struct ovl_hs *hs, const uint8_t e_sk[32], const uint8_t *bind, size_t blen,
                      const uint8_t *pl, size_t plen, uint8_t *out)
{
    size_t n = 32;

    bind_clear(hs, bind, blen);
    write_e(hs, e_sk, out);
    if (mix_dh(hs, hs->e_sk, hs->re) != 0) /* ee */
        return -EBADMSG;
    n += encrypt_and_hash(hs, hs->me->x_pk, 32, out + n); /* s */
    if (mix_dh(hs, hs->me->x_sk, hs->re) != 0)            /* es, responder side */
        return -EBADMSG;
    n += encrypt_and_hash(hs, pl, plen, out + n);
    hs->step = 2;
    return (int)n;
}

int ovl__noise_read2(struct ovl_hs *hs, const uint8_t *bind, size_t blen, const uint8_t *msg,
                     size_t len, uint8_t *pl)
{
    if (len < 32 + 48 + OVL_TAG_LEN)
        return -EBADMSG;
    bind_clear(hs, bind, blen);
    read_e(hs, msg);
    if (mix_dh(hs, hs->e_sk, hs->re) != 0) /* ee */
        return -EBADMSG;
    if (decrypt_and_hash(hs, msg + 32, 48, hs->rs) != 0) /* s */
        return -EBADMSG;
    if (mix_dh(hs, hs->e_sk, hs->rs) != 0) /* es, initiator side */
        return -EBADMSG;
    if (decrypt_and_hash(hs, msg + 80, len - 80, pl) != 0)
        return -EBADMSG;
    hs->step = 2;
    return (int)(len - 80 - OVL_TAG_LEN);
}

/* -> s, se */
int ovl__noise_write3(struct ovl_hs *hs, const uint8_t *bind, size_t blen, const uint8_t *pl,
                      size_t plen, uint8_t *out)
{
    size_t n;

    bind_clear(hs, bind, blen);
    n = encrypt_and_hash(hs, hs->me->x_pk, 32, out); /* s */
    if (mix_dh(hs, hs->me->x_sk, hs->re) != 0)       /* se, initiator side */
        return -EBADMSG;
    n += encrypt_and_hash(hs, pl, plen, out + n);
    hs->step = 3;
    return (int)n;
}

int ovl__noise_read3(struct ovl_hs *hs, const uint8_t *bind, size_t blen, const uint8_t *msg,
                     size_t len, uint8_t *pl)
{
    if (len < 48 + OVL_TAG_LEN)
        return -EBADMSG;
    bind_clear(hs, bind, blen);
    if (decrypt_and_hash(hs, msg, 48, hs->rs) != 0) /* s */
        return -EBADMSG;
    if (mix_dh(hs, hs->e_sk, hs->rs) != 0) /* se, responder side */
        return -EBADMSG;
    if (decrypt_and_hash(hs, msg + 48, len - 48, pl) != 0)
        return -EBADMSG;
    hs->step = 3;
    return (int)(len - 48 - OVL_TAG_LEN);
}

void ovl__noise_split(const struct ovl_hs *hs, uint8_t k1[OVL_KEY_LEN], uint8_t k2[OVL_KEY_LEN])
{
    static const uint8_t empty[1];

    hkdf(hs->ck, empty, 0, k1, k2, NULL); /* Noise 5.2 Split() */
}

/* ---- identities and keys ---- */

int ovl_identity_from_secret(struct ovl_identity *out, const uint8_t ed_sk[64])
{
    struct ovl_identity id;
    uint8_t pk[32], sk[64];
    int rc = -EINVAL;

    /* libsodium's secret key is seed || public key: the public half must be the one
     * the seed makes, or signatures would not verify under the key we announce */
    if (crypto_sign_seed_keypair(pk, sk, ed_sk) != 0 || sodium_memcmp(pk, ed_sk + 32, 32) != 0)
        goto out;
    memcpy(id.ed_pk, pk, 32);
    memcpy(id.ed_sk, sk, 64);
    if (crypto_sign_ed25519_pk_to_curve25519(id.x_pk, id.ed_pk) != 0 ||
        crypto_sign_ed25519_sk_to_curve25519(id.x_sk, id.ed_sk) != 0)
        goto out;
    dht_id_hash(&id.id, id.ed_pk, sizeof(id.ed_pk));
    *out = id;
    rc = 0;
out:
    sodium_memzero(&id, sizeof(id));
    sodium_memzero(sk, sizeof(sk));
    return rc;
}

int ovl_identity_generate(struct ovl_identity *out)
{
    uint8_t pk[32], sk[64];
    int rc;

    if (crypto_sign_keypair(pk, sk) != 0)
        return -EIO;
    rc = ovl_identity_from_secret(out, sk);
    sodium_memzero(sk, sizeof(sk));
    return rc == 0 ? 0 : -EIO;
}

void ovl_identity_wipe(struct ovl_identity *id)
{
    sodium_memzero(id->ed_sk, sizeof(id->ed_sk));
    sodium_memzero(id->x_sk, sizeof(id->x_sk));
}

void ovl_psk_from_secret(uint8_t psk[OVL_KEY_LEN], const uint8_t *secret, size_t len)
{
    static const uint8_t none[1];

    crypto_generichash(psk, OVL_KEY_LEN, len > 0 ? secret : none, len, (const uint8_t *)PSK_LABEL,
                       sizeof(PSK_LABEL) - 1);
}

/* ---- frames ---- */

int ovl_frame_peek(const uint8_t *buf, size_t len, struct ovl_frame_info *out)
{
    struct ovl_frame_info fi = {0};

    if (len < OVL_HDR_LEN || buf[0] != OVL_MAGIC)
        return -EBADMSG;
    if (buf[1] != OVL_VERSION)
        return -EPROTONOSUPPORT;
    if (buf[3] != 0 || len > OVL_FRAME_MAX)
        return -EBADMSG;
    fi.type = buf[2];
    switch (fi.type) {
    case OVL_T_HS1:
        if (len != OVL_HS1_LEN)
            return -EBADMSG;
        fi.sender_index = get_be32(buf + 4);
        break;
    case OVL_T_HS2:
        if (len < OVL_HS2_LEN(0) || len > OVL_HS2_LEN(OVL_HS_PAYLOAD_MAX))
            return -EBADMSG;
        fi.sender_index = get_be32(buf + 4);
        fi.receiver_index = get_be32(buf + 8);
        break;
    case OVL_T_HS3:
        if (len < OVL_HS3_LEN(0) || len > OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX))
            return -EBADMSG;
        fi.receiver_index = get_be32(buf + 4);
        break;
    case OVL_T_DATA:
        if (len < OVL_DATA_OVERHEAD)
            return -EBADMSG;
        fi.receiver_index = get_be32(buf + 4);
        fi.counter = get_be64(buf + 8);
        break;
    case OVL_T_DISCOVER:
        if (len != OVL_DISCOVER_LEN)
            return -EBADMSG;
        break;
    default:
        return -EBADMSG;
    }
    *out = fi;
    return 0;
}

/* A handshake frame of this type, or -EBADMSG (another version counts as malformed
 * here: the caller that cares asks ovl_frame_peek first). */
static int peek_type(const uint8_t *buf, size_t len, uint8_t type, struct ovl_frame_info *fi)
{
    if (ovl_frame_peek(buf, len, fi) != 0 || fi->type != type)
        return -EBADMSG;
    return 0;
}

/* ---- handshake ---- */

static void hs_start(struct ovl_hs *hs, bool initiator, const struct ovl_identity *me)
{
    ovl__noise_init(hs, initiator, me, (const uint8_t *)PROLOGUE, sizeof(PROLOGUE) - 1);
}

/* The payload of HS2 and HS3 is the sender's Ed25519 key, then the caller's bytes. */
static size_t id_payload(uint8_t out[ID_PAYLOAD], const struct ovl_identity *me,
                         const uint8_t *payload, size_t plen)
{
    memcpy(out, me->ed_pk, 32);
    if (plen > 0)
        memcpy(out + 32, payload, plen);
    return 32 + plen;
}

/* Checks that the Ed25519 key in a received payload is the one the static key rs came
 * from, and fills peer.  The converse conversion is the only one there is: X25519 keys
 * have no sign, so each one comes from two Ed25519 keys (docs/OVERLAY-WIRE.md). */
static int check_peer(const struct ovl_hs *hs, const uint8_t *pl, size_t plen,
                      struct ovl_peer_info *peer)
{
    uint8_t x_pk[32];

    if (plen < 32 || plen - 32 > OVL_HS_PAYLOAD_MAX)
        return -EBADMSG;
    if (crypto_sign_ed25519_pk_to_curve25519(x_pk, pl) != 0 || sodium_memcmp(x_pk, hs->rs, 32) != 0)
        return -EBADMSG;
    memset(peer, 0, sizeof(*peer));
    memcpy(peer->ed_pk, pl, 32);
    dht_id_hash(&peer->id, peer->ed_pk, 32);
    peer->payload_len = plen - 32;
    if (peer->payload_len > 0)
        memcpy(peer->payload, pl + 32, peer->payload_len);
    return 0;
}

int ovl__hs_initiate_e(struct ovl_hs *hs, const struct ovl_identity *me,
                       const uint8_t psk[OVL_KEY_LEN], uint32_t local_index, const uint8_t e_sk[32],
                       uint8_t *out, size_t cap)
{
    struct ovl_hs t;

    assert(me != NULL);
    if (cap < OVL_HS1_LEN)
        return -ENOSPC;
    hs_start(&t, true, me);
    t.local_index = local_index;
    put_hdr(out, OVL_T_HS1);
    put_be32(out + 4, local_index);
    (void)ovl__noise_write1(&t, psk, e_sk, out, HS1_CLEAR, NULL, 0, out + HS1_CLEAR);
    *hs = t;
    sodium_memzero(&t, sizeof(t));
    return OVL_HS1_LEN;
}

int ovl_hs_initiate(struct ovl_hs *hs, const struct ovl_identity *me,
                    const uint8_t psk[OVL_KEY_LEN], uint32_t local_index, uint8_t *out, size_t cap)
{
    uint8_t e_sk[32];
    int rc;

    randombytes_buf(e_sk, sizeof(e_sk)); /* Noise 4.1 GENERATE_KEYPAIR */
    rc = ovl__hs_initiate_e(hs, me, psk, local_index, e_sk, out, cap);
    sodium_memzero(e_sk, sizeof(e_sk));
    return rc;
}

int ovl__hs_respond_e(struct ovl_hs *hs, const struct ovl_identity *me,
                      const uint8_t psk[OVL_KEY_LEN], uint32_t local_index, const uint8_t *hs1,
                      size_t len, const uint8_t *payload, size_t plen, const uint8_t e_sk[32],
                      uint8_t *out, size_t cap)
{
    struct ovl_hs t;
    struct ovl_frame_info fi;
    uint8_t pl[ID_PAYLOAD], empty[1];
    int rc, n;

    assert(me != NULL);
    if (plen > OVL_HS_PAYLOAD_MAX || (plen > 0 && payload == NULL))
        return -EINVAL;
    if (cap < OVL_HS2_LEN(plen))
        return -ENOSPC;
    if (peek_type(hs1, len, OVL_T_HS1, &fi) != 0)
        return -EBADMSG;
    hs_start(&t, false, me);
    /* HS1's payload is empty; its tag (the only check there can be before we answer)
     * needs the PSK: without it, no answer at all */
    if (ovl__noise_read1(&t, psk, hs1, HS1_CLEAR, hs1 + HS1_CLEAR, len - HS1_CLEAR, empty) != 0) {
        rc = -EBADMSG;
        goto out;
    }
    t.local_index = local_index;
    t.remote_index = fi.sender_index;
    put_hdr(out, OVL_T_HS2);
    put_be32(out + 4, local_index);
    put_be32(out + 8, fi.sender_index);
    n = ovl__noise_write2(&t, e_sk, out, HS2_CLEAR, pl, id_payload(pl, me, payload, plen),
                          out + HS2_CLEAR);
    if (n < 0) { /* HS1's ephemeral key was of small order: ee is worthless */
        rc = -EBADMSG;
        goto out;
    }
    *hs = t;
    rc = HS2_CLEAR + n;
out:
    sodium_memzero(&t, sizeof(t));
    return rc;
}

int ovl_hs_respond(struct ovl_hs *hs, const struct ovl_identity *me, const uint8_t psk[OVL_KEY_LEN],
                   uint32_t local_index, const uint8_t *hs1, size_t len, const uint8_t *payload,
                   size_t plen, uint8_t *out, size_t cap)
{
    uint8_t e_sk[32];
    int rc;

    randombytes_buf(e_sk, sizeof(e_sk));
    rc = ovl__hs_respond_e(hs, me, psk, local_index, hs1, len, payload, plen, e_sk, out, cap);
    sodium_memzero(e_sk, sizeof(e_sk));
    return rc;
}

int ovl_hs_finish(struct ovl_hs *hs, const uint8_t *hs2, size_t len, const uint8_t *payload,
                  size_t plen, uint8_t *out, size_t cap, struct ovl_peer_info *peer)
{
    struct ovl_hs t;
    struct ovl_frame_info fi;
    struct ovl_peer_info p;
    uint8_t pl[ID_PAYLOAD];
    int rc, n;

    if (!hs->initiator || hs->step != 1 || hs->me == NULL || plen > OVL_HS_PAYLOAD_MAX ||
        (plen > 0 && payload == NULL))
        return -EINVAL;
    if (cap < OVL_HS3_LEN(plen))
        return -ENOSPC;
    if (peek_type(hs2, len, OVL_T_HS2, &fi) != 0 || fi.receiver_index != hs->local_index)
        return -EBADMSG;
    t = *hs; /* a refused HS2 must not spoil the handshake for the genuine one */
    n = ovl__noise_read2(&t, hs2, HS2_CLEAR, hs2 + HS2_CLEAR, len - HS2_CLEAR, pl);
    if (n < 0 || check_peer(&t, pl, (size_t)n, &p) != 0) {
        rc = -EBADMSG;
        goto out;
    }
    t.remote_index = fi.sender_index;
    put_hdr(out, OVL_T_HS3);
    put_be32(out + 4, t.remote_index);
    n = ovl__noise_write3(&t, out, HS3_CLEAR, pl, id_payload(pl, t.me, payload, plen),
                          out + HS3_CLEAR);
    if (n < 0) { /* the responder's ephemeral key was of small order */
        rc = -EBADMSG;
        goto out;
    }
    *hs = t;
    *peer = p;
    rc = HS3_CLEAR + n;
out:
    sodium_memzero(&t, sizeof(t));
    sodium_memzero(pl, sizeof(pl));
    return rc;
}

int ovl_hs_complete(struct ovl_hs *hs, const uint8_t *hs3, size_t len, struct ovl_peer_info *peer)
{
    struct ovl_hs t;
    struct ovl_frame_info fi;
    struct ovl_peer_info p;
    uint8_t pl[ID_PAYLOAD];
    int rc = -EBADMSG, n;

    if (hs->initiator || hs->step != 2)
        return -EINVAL;
    if (peek_type(hs3, len, OVL_T_HS3, &fi) != 0 || fi.receiver_index != hs->local_index)
        return -EBADMSG;
    t = *hs;
    n = ovl__noise_read3(&t, hs3, HS3_CLEAR, hs3 + HS3_CLEAR, len - HS3_CLEAR, pl);
    if (n < 0 || check_peer(&t, pl, (size_t)n, &p) != 0)
        goto out;
    *hs = t;
    *peer = p;
    rc = 0;
out:
    sodium_memzero(&t, sizeof(t));
    sodium_memzero(pl, sizeof(pl));
    return rc;
}

void ovl_hs_wipe(struct ovl_hs *hs)
{
    sodium_memzero(hs, sizeof(*hs));
}

int ovl_hs_split(struct ovl_hs *hs, struct ovl_session *out)
{
    uint8_t k1[OVL_KEY_LEN], k2[OVL_KEY_LEN];

    if (hs->step != 3)
        return -EINVAL;
    ovl__noise_split(hs, k1, k2);
    memset(out, 0, sizeof(*out));
    out->local_index = hs->local_index;
    out->remote_index = hs->remote_index;
    out->initiator = hs->initiator;
    /* Split(): the initiator sends with k1 and receives with k2, the responder the
     * reverse */
    memcpy(out->send_key, hs->initiator ? k1 : k2, OVL_KEY_LEN);
    memcpy(out->recv_key, hs->initiator ? k2 : k1, OVL_KEY_LEN);
    sodium_memzero(k1, sizeof(k1));
    sodium_memzero(k2, sizeof(k2));
    ovl_hs_wipe(hs);
    return 0;
}

/* ---- sessions ---- */

static void data_hdr(uint8_t *p, uint32_t receiver_index, uint64_t counter)
{
    put_hdr(p, OVL_T_DATA);
    put_be32(p + 4, receiver_index);
    put_be64(p + 8, counter);
}

int ovl_seal(struct ovl_session *s, const uint8_t *pt, size_t len, uint8_t *out, size_t cap)
{
    uint8_t nonce[12];
    uint64_t c = s->send_next, epoch;

    if (len > OVL_FRAME_MAX - OVL_DATA_OVERHEAD)
        return -EMSGSIZE;
    if (cap < len + OVL_DATA_OVERHEAD)
        return -ENOSPC;
    if (c >= OVL_COUNTER_LIMIT)
        return -ESTALE;
    /* each counter's key is its epoch's: key(e + 1) = REKEY(key(e)) */
    epoch = c / OVL_REKEY_EVERY;
    assert(s->send_epoch <= epoch);
    while (s->send_epoch < epoch) {
        ovl__rekey(s->send_key);
        s->send_epoch++;
    }
    data_hdr(out, s->remote_index, c);
    chachapoly_nonce(nonce, c);
    crypto_aead_chacha20poly1305_ietf_encrypt(out + OVL_DATA_HDR_LEN, NULL, pt, len, out,
                                              OVL_DATA_HDR_LEN, NULL, nonce, s->send_key);
    s->send_next = c + 1;
    return (int)(len + OVL_DATA_OVERHEAD);
}

/*
 * RFC 6479 section 2: the bitmap is a ring of 64-bit blocks; counter c is bit c % 64 of
 * block (c / 64) % blocks.  Sliding forward clears the blocks passed over instead of
 * shifting, so one block is always being recycled: a counter is judged only when it is
 * less than OVL_REPLAY_SPAN below recv_max, and then its bit is its own.
 */
#define REPLAY_BLOCKS (OVL_REPLAY_WINDOW / 64)

static bool replay_seen(const struct ovl_session *s, uint64_t c)
{
    if (!s->recv_any || c > s->recv_max)
        return false;
    if (s->recv_max - c >= OVL_REPLAY_SPAN)
        return true; /* too old to tell: refused as a replay */
    return (s->window[(c / 64) % REPLAY_BLOCKS] >> (c % 64)) & 1;
}

static void replay_accept(struct ovl_session *s, uint64_t c)
{
    if (!s->recv_any) {
        memset(s->window, 0, sizeof(s->window));
        s->recv_max = c;
        s->recv_any = true;
    } else if (c > s->recv_max) {
        uint64_t cur = s->recv_max / 64, steps = c / 64 - cur;
        if (steps > REPLAY_BLOCKS)
            steps = REPLAY_BLOCKS;
        for (uint64_t i = 1; i <= steps; i++)
            s->window[(cur + i) % REPLAY_BLOCKS] = 0;
        s->recv_max = c;
    }
    s->window[(c / 64) % REPLAY_BLOCKS] |= (uint64_t)1 << (c % 64);
}

/* How far ahead of recv_epoch a frame may be: deriving its key costs one REKEY per
 * epoch, and a sender is this far ahead only after OVL_REKEY_EVERY lost frames. */
#define RECV_EPOCHS_AHEAD 2

int ovl_open(struct ovl_session *s, const uint8_t *frame, size_t len, uint8_t *out, size_t cap)
{
    struct ovl_frame_info fi;
    uint8_t nonce[12], prev[OVL_KEY_LEN], cur[OVL_KEY_LEN];
    const uint8_t *key, *ct, *tag;
    uint64_t epoch;
    size_t clen;
    int rc = -EBADMSG;

    if (ovl_frame_peek(frame, len, &fi) != 0 || fi.type != OVL_T_DATA ||
        fi.receiver_index != s->local_index || fi.counter >= OVL_COUNTER_LIMIT)
        return -EBADMSG;
    clen = len - OVL_DATA_OVERHEAD;
    if (cap < clen)
        return -ENOSPC;
    if (replay_seen(s, fi.counter))
        return -EALREADY;
    epoch = fi.counter / OVL_REKEY_EVERY;
    if (epoch == s->recv_epoch) {
        key = s->recv_key;
    } else if (epoch + 1 == s->recv_epoch) {
        key = s->recv_prev_key;
    } else if (epoch < s->recv_epoch) {
        return -EALREADY; /* older than the previous epoch: far below the window */
    } else if (epoch - s->recv_epoch <= RECV_EPOCHS_AHEAD) {
        /* a later epoch: derive its key (and the one before it) forward, keep them
         * only if the frame authenticates */
        memcpy(cur, s->recv_key, OVL_KEY_LEN);
        for (uint64_t e = s->recv_epoch; e < epoch; e++) {
            memcpy(prev, cur, OVL_KEY_LEN);
            ovl__rekey(cur);
        }
        key = cur;
    } else {
        return -EBADMSG;
    }
    ct = frame + OVL_DATA_HDR_LEN;
    tag = ct + clen;
    chachapoly_nonce(nonce, fi.counter);
    /* verify first (no m), decrypt after: out is untouched by a forgery */
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(NULL, NULL, ct, clen, tag, frame,
                                                           OVL_DATA_HDR_LEN, nonce, key) != 0)
        goto out;
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, ct, clen, tag, frame,
                                                           OVL_DATA_HDR_LEN, nonce, key) != 0)
        goto out; /* cannot happen: the same check passed just above */
    if (epoch > s->recv_epoch) {
        memcpy(s->recv_prev_key, prev, OVL_KEY_LEN);
        memcpy(s->recv_key, cur, OVL_KEY_LEN);
        s->recv_epoch = epoch;
    }
    replay_accept(s, fi.counter);
    rc = (int)clen;
out:
    sodium_memzero(prev, sizeof(prev));
    sodium_memzero(cur, sizeof(cur));
    return rc;
}

void ovl_session_wipe(struct ovl_session *s)
{
    sodium_memzero(s, sizeof(*s));
}

/* ---- discovery ---- */

/* MAC key = BLAKE2b-256 keyed with the PSK over the label; MAC = HMAC-SHA-256 over the
 * frame before the MAC, truncated to 16 bytes. */
static void discover_mac(const uint8_t psk[OVL_KEY_LEN], const uint8_t *frame,
                         uint8_t mac[OVL_TAG_LEN])
{
    uint8_t key[32], full[32];

    crypto_generichash(key, sizeof(key), (const uint8_t *)DISCOVER_LABEL,
                       sizeof(DISCOVER_LABEL) - 1, psk, OVL_KEY_LEN);
    hmac(full, key, frame, OVL_DISCOVER_LEN - OVL_TAG_LEN, NULL, 0);
    memcpy(mac, full, OVL_TAG_LEN);
    sodium_memzero(key, sizeof(key));
}

int ovl_discover_encode(const uint8_t psk[OVL_KEY_LEN], const struct ovl_discover *d, uint8_t *out,
                        size_t cap)
{
    uint8_t *p = out;

    if (cap < OVL_DISCOVER_LEN)
        return -ENOSPC;
    put_hdr(p, OVL_T_DISCOVER);
    p += OVL_HDR_LEN;
    memcpy(p, d->id.b, DHT_ID_LEN);
    p += DHT_ID_LEN;
    put_be16(p, d->port);
    p += 2;
    *p++ = d->flags;
    memcpy(p, d->nonce, sizeof(d->nonce));
    p += sizeof(d->nonce);
    discover_mac(psk, out, p);
    return OVL_DISCOVER_LEN;
}

int ovl_discover_decode(const uint8_t psk[OVL_KEY_LEN], const uint8_t *buf, size_t len,
                        struct ovl_discover *out)
{
    struct ovl_frame_info fi;
    struct ovl_discover d;
    uint8_t mac[OVL_TAG_LEN];
    const uint8_t *p = buf + OVL_HDR_LEN;

    if (peek_type(buf, len, OVL_T_DISCOVER, &fi) != 0)
        return -EBADMSG;
    discover_mac(psk, buf, mac);
    if (sodium_memcmp(mac, buf + OVL_DISCOVER_LEN - OVL_TAG_LEN, OVL_TAG_LEN) != 0)
        return -EBADMSG;
    memcpy(d.id.b, p, DHT_ID_LEN);
    p += DHT_ID_LEN;
    d.port = get_be16(p);
    p += 2;
    d.flags = *p++;
    memcpy(d.nonce, p, sizeof(d.nonce));
    *out = d;
    return 0;
}
