/*
 * sip_digest.h: HTTP digest authentication, server side (RFC 7616, RFC 2617, RFC 3261 22).
 *
 * What is supported:
 *  - algorithms MD5, MD5-sess, SHA-256, SHA-256-sess (RFC 7616 3.4.2); the server
 *    offers the algorithms of its config, one challenge header each, strongest first
 *    (RFC 7616 3.7), all sharing one nonce;
 *  - qop=auth (RFC 7616 3.4.1), and no qop at all (RFC 2069 compatibility, RFC 2617
 *    3.2.2.1): a no-qop response carries no nonce-count, so it is accepted once per
 *    nonce;
 *  - not supported: qop=auth-int, userhash, username* (RFC 7616 3.4.4).  No opaque
 *    is sent (it is optional; the nonce carries all the state we need).
 *
 * Nonces (RFC 7616 3.3, 5.5): stateless and signed.  A nonce is base64url of
 *     issue time (ms, 8 bytes) | id (8 bytes, per-instance counter) | tag (16 bytes)
 * where tag = HMAC-SHA-512-256(secret, time | id | realm) truncated; the secret is
 * random per instance (libsodium).  A nonce older than the configured lifetime is
 * stale.  Replay protection: a table of bounded size remembers, for every nonce
 * issued and not yet expired, the highest nonce-count accepted; a request whose nc is
 * not above it is refused.  The table is a ring in issue order: when full, the oldest
 * nonce is forgotten, and a nonce we no longer track answers stale, so an old nonce
 * can never be replayed from a clean slate.
 *
 * Per RFC 7616 3.3, "stale" is only reported when the digest itself is right for that
 * nonce: a wrong password on an old nonce is a plain failure.
 */
#ifndef P2P_SIP_DIGEST_H
#define P2P_SIP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/buf.h"
#include "p2p/sip_msg.h"
#include "p2p/slice.h"

enum sip_digest_alg {
    SIP_DIGEST_MD5 = 0,
    SIP_DIGEST_MD5_SESS = 1,
    SIP_DIGEST_SHA256 = 2,
    SIP_DIGEST_SHA256_SESS = 3,
};

#define SIP_DIGEST_ALG_BIT(alg) (1u << (alg))
/* Longest hex digest (SHA-256), without the terminating NUL. */
#define SIP_DIGEST_HEX_MAX 64
/* Length of the nonces this module issues. */
#define SIP_DIGEST_NONCE_LEN 43
/* Longest value of any one credential parameter that is accepted. */
#define SIP_DIGEST_PARAM_MAX 512

/*
 * Credentials are a struct sip_auth from sip_auth_parse() (sip_msg.h): slices into
 * the message, quoted values without quotes and with quoted-pairs (\") still in
 * place; they are resolved here before hashing.  A missing parameter is an empty
 * slice; for the required ones, an empty value counts as missing.
 */

enum sip_digest_secret_kind {
    SIP_DIGEST_SECRET_PASSWORD, /* value is the clear-text password */
    SIP_DIGEST_SECRET_HA1,      /* value is hex H(username:realm:password) */
};

/* What an account lookup returns. */
struct sip_digest_secret {
    enum sip_digest_secret_kind kind;
    enum sip_digest_alg ha1_alg; /* for an HA1: SIP_DIGEST_MD5 or SIP_DIGEST_SHA256 */
    struct p2p_slice value;      /* must stay valid until sip_digest_verify returns */
};

/*
 * Finds the secret of (username, realm) for a response computed with alg.  Writes
 * *out and returns 0, or returns -ENOENT for an unknown user; any other negative
 * errno is passed through by sip_digest_verify.  An account that only holds an HA1
 * of another algorithm may return it: verification then fails with -EACCES.
 */
typedef int (*sip_digest_lookup_cb)(struct p2p_slice username, struct p2p_slice realm,
                                    enum sip_digest_alg alg, struct sip_digest_secret *out,
                                    void *arg);

struct sip_digest_config {
    uint64_t nonce_lifetime_ms; /* a nonce is stale after this (default 300 s) */
    uint32_t nonce_max;         /* nonces tracked for replay (default 65536, >= 1) */
    unsigned algs;              /* SIP_DIGEST_ALG_BIT mask offered and accepted */
    const uint8_t *secret;      /* 32 bytes to sign nonces with, or NULL for random */
};

struct sip_digest;

/* Fills cfg with the defaults: 300 s, 65536 nonces, SHA-256 and MD5, random secret. */
void sip_digest_config_default(struct sip_digest_config *cfg);

/*
 * Creates a digest authenticator (nonce signer and nonce-count table).  The table is
 * allocated whole (about 24 bytes per nonce; untouched pages cost no memory).
 * Returns 0, -EINVAL for a bad config (no algorithm, zero lifetime or table), -ENOMEM,
 * or -EIO when libsodium cannot initialise.
 */
int sip_digest_new(struct sip_digest **out, const struct sip_digest_config *cfg);

/* Frees d; NULL is a no-op. */
void sip_digest_free(struct sip_digest *d);

/*
 * Appends one challenge header line per configured algorithm to out, SHA-256 ones
 * first (RFC 7616 3.7), e.g. for header_name "WWW-Authenticate" (registrar, 401) or
 * "Proxy-Authenticate" (proxy, 407):
 *     WWW-Authenticate: Digest realm="r", nonce="...", algorithm=SHA-256, qop="auth"\r\n
 * with ", stale=true" when stale.  All lines share one fresh nonce, which is entered
 * in the replay table (evicting the oldest when full).  realm must be a valid
 * quoted-string body without quotes, backslashes or control characters.
 * Returns 0, -EINVAL for a bad realm, or the buffer's -EMSGSIZE / -ENOMEM (out may
 * then hold part of the lines; the caller discards the response).
 */
int sip_digest_challenge(struct sip_digest *d, struct p2p_buf *out, const char *header_name,
                         struct p2p_slice realm, bool stale, uint64_t now_ms);

/*
 * Checks credentials for a request with this method and Request-URI (the exact
 * text of the request line), against the expected realm.  The secret comes from
 * lookup.  Returns:
 *   0        authenticated; the nonce-count is recorded so the same one fails again;
 *   -ESTALE  the response is right but the nonce is expired, forgotten, or its nc is
 *            not above the highest seen: challenge again with stale=true;
 *   -EACCES  wrong response, unknown user, wrong realm, forged nonce, or an
 *            algorithm we did not offer: challenge again without stale (or 403);
 *   -EBADMSG a required parameter is missing or malformed, qop/algorithm unknown,
 *            or the uri does not designate the Request-URI (same text, or equal by
 *            RFC 3261 19.1.4): RFC 7616 3.4.6 says 400;
 *   or another negative errno returned by lookup.
 */
int sip_digest_verify(struct sip_digest *d, const struct sip_auth *cr, struct p2p_slice method,
                      struct p2p_slice request_uri, struct p2p_slice realm,
                      sip_digest_lookup_cb lookup, void *lookup_arg, uint64_t now_ms);

/*
 * Computes the expected lower-case hex response for cr (RFC 7616 3.4.1; RFC 2069
 * form when cr->qop is empty) with the given secret and method, into out (NUL
 * terminated, SIP_DIGEST_HEX_MAX + 1 bytes).  Pure: no nonce checks.  Returns 0,
 * -EBADMSG for an unknown algorithm or qop or missing cnonce/nc, or -EACCES when the
 * secret is an HA1 of another hash or not valid hex.
 */
int sip_digest_compute(const struct sip_auth *cr, const struct sip_digest_secret *secret,
                       struct p2p_slice method, char out[SIP_DIGEST_HEX_MAX + 1]);

/* Parses an algorithm token (case-insensitive; empty means MD5).  0 or -EBADMSG. */
int sip_digest_alg_parse(struct p2p_slice s, enum sip_digest_alg *out);

/* The algorithm's name as it appears in headers ("SHA-256-sess"). */
const char *sip_digest_alg_name(enum sip_digest_alg alg);

/* Nonces currently in the replay table (for status and leak tests). */
size_t sip_digest_nonces_tracked(const struct sip_digest *d);

#endif
