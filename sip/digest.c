/*
 * digest.c: digest authentication, server side (RFC 7616, RFC 2617, RFC 3261 22.4).
 *
 * Design: nonces are stateless and signed (issue time, id, HMAC over both and the
 * realm), so forging one or moving its time needs the per-instance secret.  State is
 * only kept for replay protection: a ring of the nonces issued, in issue order, each
 * with the highest nonce-count accepted so far, indexed by a chained hash on the id.
 * Expired nonces leave the ring from its head; when the ring is full the oldest is
 * dropped, and a nonce no longer in the ring is treated as stale, never as new.
 *
 * Hashes come from nettle: libsodium has no MD5, and nettle is small, well kept and
 * has no global provider state to initialise (unlike OpenSSL 3).  SHA-256 comes from
 * nettle too so both algorithms go through the same nettle_hash interface.  The
 * nonce MAC, the secret and the constant-time comparison come from libsodium.
 *
 * Invariants: ring holds count entries from head (mod cap), issue times
 * non-decreasing when the caller's clock is; every ring entry is in exactly one hash
 * chain; no credential parameter longer than SIP_DIGEST_PARAM_MAX is hashed.
 */
#include "p2p/sip_digest.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_uri.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/md5.h>
#include <nettle/nettle-meta.h>
#include <nettle/sha2.h>
#include <sodium.h>

#define NONCE_TAG_LEN 16
#define NONCE_BIN_LEN (8 + 8 + NONCE_TAG_LEN)
#define SECRET_LEN crypto_auth_KEYBYTES
#define NC_HEX_LEN 8

struct nonce_entry {
    uint64_t id;
    uint64_t issued_ms;
    uint32_t max_nc; /* highest nonce-count accepted, 0 before the first use */
    int32_t hnext;   /* next ring index in the same hash chain, -1 at the end */
};

struct sip_digest {
    uint64_t lifetime_ms;
    unsigned algs;
    uint8_t secret[SECRET_LEN];
    uint64_t next_id;
    struct nonce_entry *ring;
    uint32_t cap, head, count;
    int32_t *buckets; /* ring index of the first entry of each chain, or -1 */
    uint32_t bucket_mask;
};

static_assert(SECRET_LEN == 32, "sip_digest_config.secret is documented as 32 bytes");
static_assert(crypto_auth_BYTES >= NONCE_TAG_LEN, "MAC shorter than the nonce tag");

/* ---- hashing ------------------------------------------------------------- */

struct hash {
    const struct nettle_hash *h;
    union {
        struct md5_ctx md5;
        struct sha256_ctx sha256;
    } u;
};

static bool alg_is_sha256(enum sip_digest_alg alg)
{
    return alg == SIP_DIGEST_SHA256 || alg == SIP_DIGEST_SHA256_SESS;
}

static bool alg_is_sess(enum sip_digest_alg alg)
{
    return alg == SIP_DIGEST_MD5_SESS || alg == SIP_DIGEST_SHA256_SESS;
}

static void hash_init(struct hash *c, enum sip_digest_alg alg)
{
    c->h = alg_is_sha256(alg) ? &nettle_sha256 : &nettle_md5;
    c->h->init(&c->u);
}

static void hash_update(struct hash *c, struct p2p_slice s)
{
    if (s.len > 0)
        c->h->update(&c->u, s.len, (const uint8_t *)s.p);
}

static void hash_colon(struct hash *c)
{
    hash_update(c, P2P_SLICE_LIT(":"));
}

/* Finishes the hash into lower-case hex (RFC 7616 3.4: LHEX); returns its length. */
static size_t hash_hex(struct hash *c, char out[SIP_DIGEST_HEX_MAX + 1])
{
    uint8_t bin[SHA256_DIGEST_SIZE];
    size_t n = c->h->digest_size;

    c->h->digest(&c->u, n, bin);
    sodium_bin2hex(out, SIP_DIGEST_HEX_MAX + 1, bin, n);
    return 2 * n;
}

/*
 * Resolves quoted-pairs (RFC 3261 25.1) with the parser's sip_unquote() into buf,
 * only when there is one: most values are returned as they are, uncopied.
 * -EBADMSG for an overlong value.
 */
static int unquote(struct p2p_slice in, char buf[SIP_DIGEST_PARAM_MAX + 1], struct p2p_slice *out)
{
    int n;

    if (in.len > SIP_DIGEST_PARAM_MAX)
        return -EBADMSG;
    if (in.len == 0 || memchr(in.p, '\\', in.len) == NULL) {
        *out = in;
        return 0;
    }
    n = sip_unquote(in, buf, SIP_DIGEST_PARAM_MAX + 1);
    if (n < 0)
        return -EBADMSG;
    out->p = buf;
    out->len = (size_t)n;
    return 0;
}

static void hex_lower(struct p2p_slice s, char *out)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
}

int sip_digest_alg_parse(struct p2p_slice s, enum sip_digest_alg *out)
{
    /* RFC 2617 3.2.2: an absent algorithm means MD5. */
    if (s.len == 0 || p2p_slice_caseeq_cstr(s, "MD5"))
        *out = SIP_DIGEST_MD5;
    else if (p2p_slice_caseeq_cstr(s, "MD5-sess"))
        *out = SIP_DIGEST_MD5_SESS;
    else if (p2p_slice_caseeq_cstr(s, "SHA-256"))
        *out = SIP_DIGEST_SHA256;
    else if (p2p_slice_caseeq_cstr(s, "SHA-256-sess"))
        *out = SIP_DIGEST_SHA256_SESS;
    else
        return -EBADMSG;
    return 0;
}

const char *sip_digest_alg_name(enum sip_digest_alg alg)
{
    switch (alg) {
    case SIP_DIGEST_MD5:
        return "MD5";
    case SIP_DIGEST_MD5_SESS:
        return "MD5-sess";
    case SIP_DIGEST_SHA256:
        return "SHA-256";
    case SIP_DIGEST_SHA256_SESS:
        return "SHA-256-sess";
    }
    return "?";
}

/* The credential fields that enter the hash, quoted-pairs resolved. */
struct unquoted {
    struct p2p_slice username, realm, nonce, uri, cnonce;
    char b_username[SIP_DIGEST_PARAM_MAX + 1], b_realm[SIP_DIGEST_PARAM_MAX + 1],
        b_nonce[SIP_DIGEST_PARAM_MAX + 1], b_uri[SIP_DIGEST_PARAM_MAX + 1],
        b_cnonce[SIP_DIGEST_PARAM_MAX + 1];
};

static int unquote_all(const struct sip_auth *cr, struct unquoted *u)
{
    if (unquote(cr->username, u->b_username, &u->username) < 0 ||
        unquote(cr->realm, u->b_realm, &u->realm) < 0 ||
        unquote(cr->nonce, u->b_nonce, &u->nonce) < 0 || unquote(cr->uri, u->b_uri, &u->uri) < 0 ||
        unquote(cr->cnonce, u->b_cnonce, &u->cnonce) < 0)
        return -EBADMSG;
    return 0;
}

/* RFC 7616 3.4.1: qop is "auth" or absent (RFC 2069 form); nc and cnonce go with it. */
static int check_qop(const struct sip_auth *cr, enum sip_digest_alg alg)
{
    if (cr->qop.len == 0) {
        if (cr->nc.len != 0)
            return -EBADMSG;
    } else {
        if (!p2p_slice_caseeq_cstr(cr->qop, "auth"))
            return -EBADMSG;
        if (cr->nc.len != NC_HEX_LEN || !p2p_slice_is_hex(cr->nc) || cr->cnonce.len == 0)
            return -EBADMSG;
    }
    /* RFC 7616 3.4.2: the -sess variants hash the cnonce into A1. */
    if (alg_is_sess(alg) && cr->cnonce.len == 0)
        return -EBADMSG;
    return 0;
}

static int compute(const struct sip_auth *cr, const struct unquoted *u, enum sip_digest_alg alg,
                   const struct sip_digest_secret *secret, struct p2p_slice method,
                   char out[SIP_DIGEST_HEX_MAX + 1])
{
    char ha1[SIP_DIGEST_HEX_MAX + 1], ha2[SIP_DIGEST_HEX_MAX + 1];
    size_t ha1_len, ha2_len;
    struct hash c;

    /* RFC 7616 3.4.2: A1 = unq(username) ":" unq(realm) ":" passwd */
    hash_init(&c, alg);
    if (secret->kind == SIP_DIGEST_SECRET_PASSWORD) {
        hash_update(&c, u->username);
        hash_colon(&c);
        hash_update(&c, u->realm);
        hash_colon(&c);
        hash_update(&c, secret->value);
        ha1_len = hash_hex(&c, ha1);
    } else {
        /* A stored HA1 only serves its own hash function. */
        if (alg_is_sha256(secret->ha1_alg) != alg_is_sha256(alg) ||
            secret->value.len != 2 * c.h->digest_size || !p2p_slice_is_hex(secret->value))
            return -EACCES;
        hex_lower(secret->value, ha1);
        ha1_len = secret->value.len;
    }
    if (alg_is_sess(alg)) {
        /* RFC 7616 3.4.2: A1 = H(user:realm:passwd) ":" unq(nonce) ":" unq(cnonce) */
        hash_init(&c, alg);
        hash_update(&c, (struct p2p_slice){ha1, ha1_len});
        hash_colon(&c);
        hash_update(&c, u->nonce);
        hash_colon(&c);
        hash_update(&c, u->cnonce);
        ha1_len = hash_hex(&c, ha1);
    }

    /* RFC 7616 3.4.3: A2 = Method ":" request-uri (qop=auth or none) */
    hash_init(&c, alg);
    hash_update(&c, method);
    hash_colon(&c);
    hash_update(&c, u->uri);
    ha2_len = hash_hex(&c, ha2);

    /* RFC 7616 3.4.1: response = KD(H(A1), nonce:nc:cnonce:qop:H(A2));
     * RFC 2617 3.2.2.1: without qop, KD(H(A1), nonce:H(A2)) (RFC 2069). */
    hash_init(&c, alg);
    hash_update(&c, (struct p2p_slice){ha1, ha1_len});
    hash_colon(&c);
    hash_update(&c, u->nonce);
    hash_colon(&c);
    if (cr->qop.len != 0) {
        hash_update(&c, cr->nc);
        hash_colon(&c);
        hash_update(&c, u->cnonce);
        hash_colon(&c);
        hash_update(&c, P2P_SLICE_LIT("auth"));
        hash_colon(&c);
    }
    hash_update(&c, (struct p2p_slice){ha2, ha2_len});
    hash_hex(&c, out);
    sodium_memzero(ha1, sizeof(ha1));
    return 0;
}

int sip_digest_compute(const struct sip_auth *cr, const struct sip_digest_secret *secret,
                       struct p2p_slice method, char out[SIP_DIGEST_HEX_MAX + 1])
{
    struct unquoted u;
    enum sip_digest_alg alg;
    int rc;

    if ((rc = sip_digest_alg_parse(cr->algorithm, &alg)) < 0 || (rc = check_qop(cr, alg)) < 0 ||
        (rc = unquote_all(cr, &u)) < 0)
        return rc;
    return compute(cr, &u, alg, secret, method, out);
}

/* ---- nonce table --------------------------------------------------------- */

static uint32_t bucket_of(const struct sip_digest *d, uint64_t id)
{
    return (uint32_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & d->bucket_mask;
}

static struct nonce_entry *table_find(struct sip_digest *d, uint64_t id, uint64_t issued_ms)
{
    for (int32_t i = d->buckets[bucket_of(d, id)]; i >= 0; i = d->ring[i].hnext) {
        if (d->ring[i].id == id && d->ring[i].issued_ms == issued_ms)
            return &d->ring[i];
    }
    return NULL;
}

static void table_pop_head(struct sip_digest *d)
{
    struct nonce_entry *e = &d->ring[d->head];
    int32_t *link = &d->buckets[bucket_of(d, e->id)];

    while (*link != (int32_t)d->head) {
        assert(*link >= 0);
        link = &d->ring[*link].hnext;
    }
    *link = e->hnext;
    d->head = (d->head + 1) % d->cap;
    d->count--;
}

static bool expired(const struct sip_digest *d, uint64_t issued_ms, uint64_t now_ms)
{
    return now_ms > issued_ms && now_ms - issued_ms > d->lifetime_ms;
}

static void table_push(struct sip_digest *d, uint64_t id, uint64_t now_ms)
{
    while (d->count > 0 && expired(d, d->ring[d->head].issued_ms, now_ms))
        table_pop_head(d);
    if (d->count == d->cap)
        table_pop_head(d); /* the oldest nonce is forgotten: it will answer stale */
    uint32_t i = (d->head + d->count) % d->cap;
    uint32_t b = bucket_of(d, id);
    d->ring[i] = (struct nonce_entry){.id = id, .issued_ms = now_ms, .hnext = d->buckets[b]};
    d->buckets[b] = (int32_t)i;
    d->count++;
}

static void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void nonce_tag(const struct sip_digest *d, const uint8_t head[16], struct p2p_slice realm,
                      uint8_t tag[crypto_auth_BYTES])
{
    crypto_auth_hmacsha512256_state st;

    crypto_auth_hmacsha512256_init(&st, d->secret, sizeof(d->secret));
    crypto_auth_hmacsha512256_update(&st, head, 16);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)realm.p, realm.len);
    crypto_auth_hmacsha512256_final(&st, tag);
}

/* Decodes and authenticates a nonce of ours.  0 or -EACCES. */
static int nonce_open(const struct sip_digest *d, struct p2p_slice nonce, struct p2p_slice realm,
                      uint64_t *issued_ms, uint64_t *id)
{
    uint8_t bin[NONCE_BIN_LEN], tag[crypto_auth_BYTES];
    size_t bin_len = 0;
    const char *end = NULL;

    if (nonce.len != SIP_DIGEST_NONCE_LEN ||
        sodium_base642bin(bin, sizeof(bin), nonce.p, nonce.len, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        bin_len != NONCE_BIN_LEN || end != nonce.p + nonce.len)
        return -EACCES;
    nonce_tag(d, bin, realm, tag);
    if (sodium_memcmp(tag, bin + 16, NONCE_TAG_LEN) != 0)
        return -EACCES;
    *issued_ms = be64_get(bin);
    *id = be64_get(bin + 8);
    return 0;
}

/* ---- public -------------------------------------------------------------- */

void sip_digest_config_default(struct sip_digest_config *cfg)
{
    *cfg = (struct sip_digest_config){
        .nonce_lifetime_ms = 300 * 1000,
        .nonce_max = 65536,
        .algs = SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256) | SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5),
        .secret = NULL,
    };
}

int sip_digest_new(struct sip_digest **out, const struct sip_digest_config *cfg)
{
    struct sip_digest *d;
    uint32_t nb = 1;

    if (cfg->nonce_lifetime_ms == 0 || cfg->nonce_max == 0 || cfg->nonce_max > (1u << 30) ||
        cfg->algs == 0 || (cfg->algs & ~0xfu) != 0)
        return -EINVAL;
    if (sodium_init() < 0)
        return -EIO;
    while (nb < cfg->nonce_max)
        nb <<= 1;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->ring = calloc(cfg->nonce_max, sizeof(*d->ring));
    d->buckets = malloc((size_t)nb * sizeof(*d->buckets));
    if (d->ring == NULL || d->buckets == NULL) {
        sip_digest_free(d);
        return -ENOMEM;
    }
    memset(d->buckets, 0xff, (size_t)nb * sizeof(*d->buckets)); /* all -1 */
    d->bucket_mask = nb - 1;
    d->cap = cfg->nonce_max;
    d->lifetime_ms = cfg->nonce_lifetime_ms;
    d->algs = cfg->algs;
    if (cfg->secret != NULL)
        memcpy(d->secret, cfg->secret, sizeof(d->secret));
    else
        randombytes_buf(d->secret, sizeof(d->secret));
    randombytes_buf(&d->next_id, sizeof(d->next_id));
    *out = d;
    return 0;
}

void sip_digest_free(struct sip_digest *d)
{
    if (d == NULL)
        return;
    sodium_memzero(d->secret, sizeof(d->secret));
    free(d->ring);
    free(d->buckets);
    free(d);
}

size_t sip_digest_nonces_tracked(const struct sip_digest *d)
{
    return d->count;
}

static bool realm_ok(struct p2p_slice realm)
{
    for (size_t i = 0; i < realm.len; i++) {
        unsigned char c = (unsigned char)realm.p[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return false;
    }
    return realm.len > 0 && realm.len <= SIP_DIGEST_PARAM_MAX;
}

int sip_digest_challenge(struct sip_digest *d, struct p2p_buf *out, const char *header_name,
                         struct p2p_slice realm, bool stale, uint64_t now_ms)
{
    /* RFC 7616 3.7: challenges in order of preference, strongest first. */
    static const enum sip_digest_alg order[] = {SIP_DIGEST_SHA256, SIP_DIGEST_SHA256_SESS,
                                                SIP_DIGEST_MD5, SIP_DIGEST_MD5_SESS};
    uint8_t bin[NONCE_BIN_LEN], tag[crypto_auth_BYTES];
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    uint64_t id;
    int rc;

    if (header_name == NULL || !realm_ok(realm))
        return -EINVAL;
    id = d->next_id++;
    be64_put(bin, now_ms);
    be64_put(bin + 8, id);
    nonce_tag(d, bin, realm, tag);
    memcpy(bin + 16, tag, NONCE_TAG_LEN);
    sodium_bin2base64(nonce, sizeof(nonce), bin, sizeof(bin),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    table_push(d, id, now_ms);

    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if ((d->algs & SIP_DIGEST_ALG_BIT(order[i])) == 0)
            continue;
        /* RFC 7616 3.3 (challenge), RFC 3261 22.1 / 22.3 (401 and 407 headers) */
        rc = p2p_buf_printf(out,
                            "%s: Digest realm=\"%.*s\", nonce=\"%s\", algorithm=%s, "
                            "qop=\"auth\"%s\r\n",
                            header_name, (int)realm.len, realm.p, nonce,
                            sip_digest_alg_name(order[i]), stale ? ", stale=true" : "");
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Constant-time comparison of a received hex response with the expected one. */
static bool response_matches(struct p2p_slice got, const char *want)
{
    char low[SIP_DIGEST_HEX_MAX];
    size_t n = strlen(want);

    if (got.len != n || !p2p_slice_is_hex(got))
        return false;
    hex_lower(got, low); /* RFC 7616 3.4: LHEX, but be lenient on case */
    return sodium_memcmp(low, want, n) == 0;
}

/* The digest uri and the Request-URI designate the same resource: the same text, or
 * equal SIP URIs by RFC 3261 19.1.4 (a client may re-escape or reorder parameters). */
static bool same_resource(struct p2p_slice uri, struct p2p_slice request_uri)
{
    struct sip_uri a, b;

    if (p2p_slice_eq(uri, request_uri))
        return true;
    return sip_uri_parse(uri, &a) == 0 && sip_uri_parse(request_uri, &b) == 0 &&
           sip_uri_equal(&a, &b);
}

int sip_digest_verify(struct sip_digest *d, const struct sip_auth *cr, struct p2p_slice method,
                      struct p2p_slice request_uri, struct p2p_slice realm,
                      sip_digest_lookup_cb lookup, void *lookup_arg, uint64_t now_ms)
{
    char want[SIP_DIGEST_HEX_MAX + 1];
    struct sip_digest_secret secret;
    struct nonce_entry *e;
    struct unquoted u;
    enum sip_digest_alg alg;
    uint64_t issued_ms, id, nc = 1;
    int rc;

    if (!p2p_slice_caseeq_cstr(cr->scheme, "Digest"))
        return -EBADMSG;
    /* RFC 7616 3.4.4: userhash is not offered, so it may not be used. */
    if (cr->userhash.len != 0 && !p2p_slice_caseeq_cstr(cr->userhash, "false"))
        return -EBADMSG;
    if (cr->username.len == 0 || cr->realm.len == 0 || cr->nonce.len == 0 || cr->uri.len == 0 ||
        cr->response.len == 0)
        return -EBADMSG;
    if ((rc = sip_digest_alg_parse(cr->algorithm, &alg)) < 0 || (rc = check_qop(cr, alg)) < 0 ||
        (rc = unquote_all(cr, &u)) < 0)
        return rc;
    /* Only what we offered: a client may not downgrade to MD5 when we did not ask. */
    if ((d->algs & SIP_DIGEST_ALG_BIT(alg)) == 0)
        return -EACCES;
    if (!p2p_slice_eq(u.realm, realm))
        return -EACCES;
    /* RFC 7616 3.4.6 / RFC 2617 3.2.2.5: the uri must name the Request-URI, else 400. */
    if (!same_resource(u.uri, request_uri))
        return -EBADMSG;
    if (nonce_open(d, u.nonce, realm, &issued_ms, &id) < 0)
        return -EACCES;
    if (cr->qop.len != 0) {
        nc = 0;
        for (size_t i = 0; i < NC_HEX_LEN; i++) {
            char c = cr->nc.p[i];
            unsigned v = (c <= '9') ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
            nc = (nc << 4) | v;
        }
        if (nc == 0)
            return -EBADMSG;
    }

    rc = lookup(u.username, u.realm, alg, &secret, lookup_arg);
    if (rc == -ENOENT)
        return -EACCES;
    if (rc < 0)
        return rc;
    if ((rc = compute(cr, &u, alg, &secret, method, want)) < 0)
        return rc;
    if (!response_matches(cr->response, want))
        return -EACCES;

    /* The digest is right; now whether this nonce may still be used (RFC 7616 3.3). */
    if (expired(d, issued_ms, now_ms))
        return -ESTALE;
    e = table_find(d, id, issued_ms);
    if (e == NULL)
        return -ESTALE;
    /* RFC 7616 3.4: a nonce-count seen before means a replay. */
    if (nc <= e->max_nc)
        return -ESTALE;
    e->max_nc = (uint32_t)nc;
    return 0;
}
