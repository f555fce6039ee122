/*
 * test_sip_digest.c: digest responses against the RFC examples, and the server's
 * nonce handling: round trip, expiry, replay, eviction, tampering, wrong secrets.
 *
 * Vectors: RFC 2617 3.5 and RFC 7616 3.9.1 as published; the -sess, RFC 2069 (no
 * qop) and quoted-pair vectors were computed independently with Python's hashlib
 * from the RFC formulas (the RFC 2069 text's own example is known to be wrong).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/sip_digest.h"

#define S(lit) P2P_SLICE_LIT(lit)

static struct p2p_slice cs(const char *s)
{
    return p2p_slice_cstr(s);
}

/* RFC 2617 3.5 */
static void test_rfc2617_example(void **state)
{
    struct sip_auth cr = {
        .username = S("Mufasa"),
        .realm = S("testrealm@host.com"),
        .nonce = S("dcd98b7102dd2f0e8b11d0f600bfb0c093"),
        .uri = S("/dir/index.html"),
        .qop = S("auth"),
        .nc = S("00000001"),
        .cnonce = S("0a4f113b"),
    };
    struct sip_digest_secret pw = {SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5, S("Circle Of Life")};
    char out[SIP_DIGEST_HEX_MAX + 1];
    (void)state;

    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
    assert_string_equal(out, "6629fae49393a05397450978507c4ef1");

    /* The same with a stored HA1 (upper-case hex is accepted). */
    struct sip_digest_secret ha1 = {SIP_DIGEST_SECRET_HA1, SIP_DIGEST_MD5,
                                    S("939E7578ED9E3C518A452ACEE763BCE9")};
    memset(out, 0, sizeof(out));
    assert_int_equal(sip_digest_compute(&cr, &ha1, S("GET"), out), 0);
    assert_string_equal(out, "6629fae49393a05397450978507c4ef1");

    /* An MD5 HA1 cannot answer a SHA-256 challenge; a short HA1 is refused. */
    cr.algorithm = S("SHA-256");
    assert_int_equal(sip_digest_compute(&cr, &ha1, S("GET"), out), -EACCES);
    cr.algorithm = S("MD5");
    ha1.value = S("939e7578ed9e3c518a452acee763bce");
    assert_int_equal(sip_digest_compute(&cr, &ha1, S("GET"), out), -EACCES);

    /* RFC 2069 form (no qop, no nc, no cnonce). */
    cr.qop = S("");
    cr.nc = S("");
    cr.cnonce = S("");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
    assert_string_equal(out, "670fd8c2df070c60b045671b8b24ff02");

    /* Quoted-pairs are resolved before hashing: username Mu"fasa. */
    cr.qop = S("auth");
    cr.nc = S("00000001");
    cr.cnonce = S("0a4f113b");
    cr.username = S("Mu\\\"fasa");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
    assert_string_equal(out, "0265e0a92b6a4cd3d332153ad27c1605");
    /* A parameter longer than SIP_DIGEST_PARAM_MAX is refused. */
    static char longname[SIP_DIGEST_PARAM_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    cr.username = p2p_slice_cstr(longname);
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), -EBADMSG);
    longname[SIP_DIGEST_PARAM_MAX] = '\0';
    cr.username = p2p_slice_cstr(longname);
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
}

/* RFC 7616 3.9.1 */
static void test_rfc7616_examples(void **state)
{
    struct sip_auth cr = {
        .username = S("Mufasa"),
        .realm = S("http-auth@example.org"),
        .nonce = S("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
        .uri = S("/dir/index.html"),
        .qop = S("auth"),
        .nc = S("00000001"),
        .cnonce = S("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
        .opaque = S("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"),
    };
    struct sip_digest_secret pw = {SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5, S("Circle of Life")};
    char out[SIP_DIGEST_HEX_MAX + 1];
    (void)state;

    cr.algorithm = S("MD5");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
    assert_string_equal(out, "8ca523f5e9506fed4657c9700eebdbec");

    cr.algorithm = S("sha-256"); /* tokens compare case-insensitively */
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
    assert_string_equal(out, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");

    cr.algorithm = S("MD5-sess");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
    assert_string_equal(out, "e783283f46242139c486a698fec7211d");

    cr.algorithm = S("SHA-256-sess");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), 0);
    assert_string_equal(out, "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7");

    /* Unsupported: other algorithms, auth-int, qop without nc. */
    cr.algorithm = S("SHA-512-256");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), -EBADMSG);
    cr.algorithm = S("MD5");
    cr.qop = S("auth-int");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), -EBADMSG);
    cr.qop = S("auth");
    cr.nc = S("1");
    assert_int_equal(sip_digest_compute(&cr, &pw, S("GET"), out), -EBADMSG);
}

/* ---- server round trips --------------------------------------------------- */

struct account {
    const char *user;
    const char *password;
    int calls;
};

static int lookup(struct p2p_slice username, struct p2p_slice realm, enum sip_digest_alg alg,
                  struct sip_digest_secret *out, void *arg)
{
    struct account *a = arg;
    (void)alg;
    a->calls++;
    if (!p2p_slice_eq(username, cs(a->user)) || !p2p_slice_eq(realm, S("p2psip")))
        return -ENOENT;
    *out = (struct sip_digest_secret){SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5, cs(a->password)};
    return 0;
}

/* Returns the nonce of the n-th challenge line in b (0-based), NUL-terminated. */
static void nonce_of(const struct p2p_buf *b, int line, char out[SIP_DIGEST_NONCE_LEN + 1])
{
    const char *p = b->data, *end = b->data + b->len;
    for (int i = 0; i < line; i++) {
        p = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(p);
        p++;
    }
    const char *n = strstr(p, "nonce=\"");
    assert_non_null(n);
    n += 7;
    const char *q = memchr(n, '"', (size_t)(end - n));
    assert_non_null(q);
    assert_int_equal(q - n, SIP_DIGEST_NONCE_LEN);
    memcpy(out, n, SIP_DIGEST_NONCE_LEN);
    out[SIP_DIGEST_NONCE_LEN] = '\0';
}

struct client {
    struct sip_auth cr;
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    char nc[9];
    char response[SIP_DIGEST_HEX_MAX + 1];
};

/* Builds what a phone would send for nonce, nc and password. */
static void client_answer(struct client *c, const char *alg, const char *nonce, unsigned nc,
                          const char *password)
{
    snprintf(c->nonce, sizeof(c->nonce), "%s", nonce);
    snprintf(c->nc, sizeof(c->nc), "%08x", nc);
    c->cr = (struct sip_auth){
        .scheme = S("Digest"),
        .username = S("alice"),
        .realm = S("p2psip"),
        .nonce = cs(c->nonce),
        .uri = S("sip:p2psip"),
        .algorithm = cs(alg),
        .qop = S("auth"),
        .nc = cs(c->nc),
        .cnonce = S("0a4f113b"),
    };
    struct sip_digest_secret pw = {SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5, cs(password)};
    assert_int_equal(sip_digest_compute(&c->cr, &pw, S("REGISTER"), c->response), 0);
    c->cr.response = cs(c->response);
}

static int verify(struct sip_digest *d, struct client *c, struct account *a, uint64_t now)
{
    return sip_digest_verify(d, &c->cr, S("REGISTER"), S("sip:p2psip"), S("p2psip"), lookup, a,
                             now);
}

static struct sip_digest *server(uint64_t lifetime_ms, uint32_t nonce_max, unsigned algs)
{
    struct sip_digest_config cfg;
    struct sip_digest *d = NULL;
    sip_digest_config_default(&cfg);
    cfg.nonce_lifetime_ms = lifetime_ms;
    cfg.nonce_max = nonce_max;
    if (algs != 0)
        cfg.algs = algs;
    assert_int_equal(sip_digest_new(&d, &cfg), 0);
    assert_non_null(d);
    return d;
}

static void test_challenge_format(void **state)
{
    struct sip_digest *d = server(300000, 16, 0);
    struct p2p_buf b;
    char n0[SIP_DIGEST_NONCE_LEN + 1], n1[SIP_DIGEST_NONCE_LEN + 1];
    (void)state;

    p2p_buf_init(&b, 4096);
    assert_int_equal(sip_digest_challenge(d, &b, "WWW-Authenticate", S("p2psip"), false, 1000), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0); /* NUL for strstr */
    /* RFC 7616 3.7: SHA-256 first, then MD5, one shared nonce. */
    const char *sha = strstr(b.data, "WWW-Authenticate: Digest realm=\"p2psip\", nonce=\"");
    const char *md5 = strstr(b.data, "\r\nWWW-Authenticate: Digest realm=\"p2psip\", nonce=\"");
    assert_true(sha == b.data);
    assert_non_null(md5);
    assert_non_null(strstr(b.data, "\", algorithm=SHA-256, qop=\"auth\"\r\n"));
    assert_non_null(strstr(b.data, "\", algorithm=MD5, qop=\"auth\"\r\n"));
    assert_true(strstr(b.data, "algorithm=SHA-256") < strstr(b.data, "algorithm=MD5"));
    assert_null(strstr(b.data, "stale"));
    nonce_of(&b, 0, n0);
    nonce_of(&b, 1, n1);
    assert_string_equal(n0, n1);
    assert_int_equal(sip_digest_nonces_tracked(d), 1);

    p2p_buf_reset(&b);
    assert_int_equal(sip_digest_challenge(d, &b, "Proxy-Authenticate", S("p2psip"), true, 2000), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    assert_non_null(strstr(b.data, "Proxy-Authenticate: Digest realm=\"p2psip\""));
    assert_non_null(strstr(b.data, "qop=\"auth\", stale=true\r\n"));
    nonce_of(&b, 0, n1);
    assert_string_not_equal(n0, n1); /* every challenge has a fresh nonce */

    /* A realm that would break the quoted string is refused. */
    assert_int_equal(sip_digest_challenge(d, &b, "WWW-Authenticate", S("a\"b"), false, 1), -EINVAL);
    assert_int_equal(sip_digest_challenge(d, &b, "WWW-Authenticate", S(""), false, 1), -EINVAL);
    p2p_buf_free(&b);
    sip_digest_free(d);
}

static void challenge(struct sip_digest *d, uint64_t now, char nonce[SIP_DIGEST_NONCE_LEN + 1])
{
    struct p2p_buf b;
    p2p_buf_init(&b, 4096);
    assert_int_equal(sip_digest_challenge(d, &b, "WWW-Authenticate", S("p2psip"), false, now), 0);
    nonce_of(&b, 0, nonce);
    p2p_buf_free(&b);
}

static void test_round_trip_and_replay(void **state)
{
    struct sip_digest *d = server(300000, 16, 0);
    struct account a = {"alice", "s3cret", 0};
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    struct client c;
    (void)state;

    challenge(d, 1000, nonce);
    client_answer(&c, "SHA-256", nonce, 1, "s3cret");
    assert_int_equal(verify(d, &c, &a, 2000), 0);
    /* RFC 7616 3.4: the same nc again is a replay. */
    assert_int_equal(verify(d, &c, &a, 2001), -ESTALE);
    /* The next count is accepted, a lower one afterwards is not. */
    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    assert_int_equal(verify(d, &c, &a, 2002), 0);
    client_answer(&c, "SHA-256", nonce, 2, "s3cret");
    assert_int_equal(verify(d, &c, &a, 2003), -ESTALE);
    /* MD5 on the same nonce (the client chose the other challenge). */
    client_answer(&c, "MD5", nonce, 4, "s3cret");
    assert_int_equal(verify(d, &c, &a, 2004), 0);
    /* Upper-case hex in the response is tolerated. */
    client_answer(&c, "MD5", nonce, 5, "s3cret");
    for (char *p = c.response; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(verify(d, &c, &a, 2005), 0);
    sip_digest_free(d);
}

static void test_wrong_credentials(void **state)
{
    struct sip_digest *d = server(300000, 16, 0);
    struct account a = {"alice", "s3cret", 0};
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    struct client c;
    (void)state;

    challenge(d, 1000, nonce);

    /* Wrong password. */
    client_answer(&c, "SHA-256", nonce, 1, "guess");
    assert_int_equal(verify(d, &c, &a, 1500), -EACCES);
    /* A failed attempt does not consume the nonce-count. */
    client_answer(&c, "SHA-256", nonce, 1, "s3cret");
    assert_int_equal(verify(d, &c, &a, 1500), 0);

    /* Unknown user. */
    struct account other = {"bob", "s3cret", 0};
    client_answer(&c, "SHA-256", nonce, 2, "s3cret");
    assert_int_equal(verify(d, &c, &other, 1500), -EACCES);
    assert_int_equal(other.calls, 1);

    /* Wrong realm: refused before any lookup. */
    a.calls = 0;
    client_answer(&c, "SHA-256", nonce, 2, "s3cret");
    c.cr.realm = S("elsewhere");
    assert_int_equal(verify(d, &c, &a, 1500), -EACCES);
    /* Credentials for another Request-URI: RFC 7616 3.4.6, 400. */
    client_answer(&c, "SHA-256", nonce, 2, "s3cret");
    c.cr.uri = S("sip:attacker.example");
    assert_int_equal(verify(d, &c, &a, 1500), -EBADMSG);
    /* The same URI written differently (host case, RFC 3261 19.1.4) is accepted
     * as naming the Request-URI; the hash then uses the uri as the client sent it. */
    client_answer(&c, "SHA-256", nonce, 2, "s3cret");
    c.cr.uri = S("sip:P2PSIP");
    assert_int_equal(verify(d, &c, &a, 1500), -EACCES); /* response was for sip:p2psip */
    struct sip_digest_secret pw = {SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5, S("s3cret")};
    assert_int_equal(sip_digest_compute(&c.cr, &pw, S("REGISTER"), c.response), 0);
    assert_int_equal(verify(d, &c, &a, 1500), 0);
    assert_int_equal(a.calls, 2);
    a.calls = 0;
    assert_int_equal(a.calls, 0);

    /* Tampered nonce: one character changed, and a nonce not of this form. */
    char bad[SIP_DIGEST_NONCE_LEN + 1];
    memcpy(bad, nonce, sizeof(bad));
    bad[3] = bad[3] == 'A' ? 'B' : 'A';
    client_answer(&c, "SHA-256", bad, 2, "s3cret");
    assert_int_equal(verify(d, &c, &a, 1500), -EACCES);
    client_answer(&c, "SHA-256", "dcd98b7102dd2f0e8b11d0f600bfb0c093", 2, "s3cret");
    assert_int_equal(verify(d, &c, &a, 1500), -EACCES);

    /* Malformed: no response, qop without nc, auth-int. */
    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    c.cr.response = S("");
    assert_int_equal(verify(d, &c, &a, 1500), -EBADMSG);
    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    c.cr.nc = S("");
    assert_int_equal(verify(d, &c, &a, 1500), -EBADMSG);
    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    c.cr.qop = S("auth-int");
    assert_int_equal(verify(d, &c, &a, 1500), -EBADMSG);
    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    c.cr.nc = S("00000000");
    assert_int_equal(verify(d, &c, &a, 1500), -EBADMSG);

    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    c.cr.scheme = S("Basic");
    assert_int_equal(verify(d, &c, &a, 1500), -EBADMSG);
    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    c.cr.userhash = S("true");
    assert_int_equal(verify(d, &c, &a, 1500), -EBADMSG);

    /* Still usable with the right answer after all that. */
    client_answer(&c, "SHA-256", nonce, 3, "s3cret");
    assert_int_equal(verify(d, &c, &a, 1500), 0);
    sip_digest_free(d);
}

static void test_nonce_bound_to_realm(void **state)
{
    struct sip_digest *d = server(300000, 16, 0);
    struct account a = {"alice", "s3cret", 0};
    struct p2p_buf b;
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    struct client c;
    (void)state;

    p2p_buf_init(&b, 4096);
    assert_int_equal(sip_digest_challenge(d, &b, "WWW-Authenticate", S("other"), false, 10), 0);
    nonce_of(&b, 0, nonce);
    p2p_buf_free(&b);
    client_answer(&c, "SHA-256", nonce, 1, "s3cret"); /* realm p2psip, nonce of "other" */
    assert_int_equal(verify(d, &c, &a, 20), -EACCES);
    sip_digest_free(d);
}

static void test_expiry(void **state)
{
    struct sip_digest *d = server(30000, 16, 0);
    struct account a = {"alice", "s3cret", 0};
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    struct client c;
    (void)state;

    challenge(d, 5000, nonce);
    client_answer(&c, "MD5", nonce, 1, "s3cret");
    /* Exactly the lifetime is still fresh; one ms later it is stale. */
    assert_int_equal(verify(d, &c, &a, 35000), 0);
    client_answer(&c, "MD5", nonce, 2, "s3cret");
    assert_int_equal(verify(d, &c, &a, 35001), -ESTALE);
    /* RFC 7616 3.3: stale only with a valid digest; a wrong password is a failure. */
    client_answer(&c, "MD5", nonce, 2, "wrong");
    assert_int_equal(verify(d, &c, &a, 35001), -EACCES);

    /* The next challenge drops the expired nonce from the table. */
    challenge(d, 40000, nonce);
    assert_int_equal(sip_digest_nonces_tracked(d), 1);
    client_answer(&c, "MD5", nonce, 1, "s3cret");
    assert_int_equal(verify(d, &c, &a, 40001), 0);
    sip_digest_free(d);
}

static void test_eviction(void **state)
{
    struct sip_digest *d = server(300000, 3, 0);
    struct account a = {"alice", "s3cret", 0};
    char n[5][SIP_DIGEST_NONCE_LEN + 1];
    struct client c;
    (void)state;

    for (int i = 0; i < 5; i++)
        challenge(d, 100 + (uint64_t)i, n[i]);
    assert_int_equal(sip_digest_nonces_tracked(d), 3);
    /* The two oldest were forgotten: a valid answer on them is stale, never new. */
    client_answer(&c, "SHA-256", n[0], 1, "s3cret");
    assert_int_equal(verify(d, &c, &a, 200), -ESTALE);
    client_answer(&c, "SHA-256", n[1], 1, "s3cret");
    assert_int_equal(verify(d, &c, &a, 200), -ESTALE);
    for (int i = 2; i < 5; i++) {
        client_answer(&c, "SHA-256", n[i], 1, "s3cret");
        assert_int_equal(verify(d, &c, &a, 200), 0);
    }
    sip_digest_free(d);
}

static void test_algorithm_policy_and_no_qop(void **state)
{
    struct sip_digest *d = server(300000, 16, SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256));
    struct account a = {"alice", "s3cret", 0};
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    struct p2p_buf b;
    struct client c;
    (void)state;

    p2p_buf_init(&b, 4096);
    assert_int_equal(sip_digest_challenge(d, &b, "WWW-Authenticate", S("p2psip"), false, 1), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    assert_null(strstr(b.data, "MD5")); /* only what is configured is offered */
    nonce_of(&b, 0, nonce);
    p2p_buf_free(&b);

    /* MD5 was not offered, so a right MD5 answer is still refused (no downgrade). */
    client_answer(&c, "MD5", nonce, 1, "s3cret");
    assert_int_equal(verify(d, &c, &a, 2), -EACCES);
    client_answer(&c, "", nonce, 1, "s3cret"); /* absent algorithm means MD5 */
    assert_int_equal(verify(d, &c, &a, 2), -EACCES);

    /* RFC 2069 client: no qop, no nc; usable once per nonce. */
    client_answer(&c, "SHA-256", nonce, 1, "s3cret");
    c.cr.qop = S("");
    c.cr.nc = S("");
    c.cr.cnonce = S("");
    struct sip_digest_secret pw = {SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5, S("s3cret")};
    assert_int_equal(sip_digest_compute(&c.cr, &pw, S("REGISTER"), c.response), 0);
    assert_int_equal(verify(d, &c, &a, 3), 0);
    assert_int_equal(verify(d, &c, &a, 4), -ESTALE);
    sip_digest_free(d);
}

static void test_config_errors(void **state)
{
    struct sip_digest_config cfg;
    struct sip_digest *d = (struct sip_digest *)&cfg; /* must stay untouched */
    (void)state;
    sip_digest_config_default(&cfg);
    cfg.algs = 0;
    assert_int_equal(sip_digest_new(&d, &cfg), -EINVAL);
    sip_digest_config_default(&cfg);
    cfg.nonce_max = 0;
    assert_int_equal(sip_digest_new(&d, &cfg), -EINVAL);
    assert_ptr_equal(d, (struct sip_digest *)&cfg);
    sip_digest_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc2617_example),
        cmocka_unit_test(test_rfc7616_examples),
        cmocka_unit_test(test_challenge_format),
        cmocka_unit_test(test_round_trip_and_replay),
        cmocka_unit_test(test_wrong_credentials),
        cmocka_unit_test(test_nonce_bound_to_realm),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_algorithm_policy_and_no_qop),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
