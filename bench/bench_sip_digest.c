/*
 * bench_sip_digest.c: cost of a digest challenge and of a verification (MD5 and
 * SHA-256, password and stored HA1), against the cost of parsing the REGISTER that
 * carries the credentials (sip_msg_parse), which the registrar pays anyway.
 *
 * Each verification uses a fresh nonce-count on one nonce, as a phone refreshing
 * its registration does; the nonce table holds N nonces.  Prints a table, then one
 * JSON line.  Never asserts times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "p2p/buf.h"
#include "p2p/sip_digest.h"
#include "p2p/sip_msg.h"

#define N 50000

static const char REGISTER[] =
    "REGISTER sip:p2psip SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:alice@p2psip>\r\n"
    "From: <sip:alice@p2psip>;tag=456248\r\n"
    "Call-ID: 843817637684230@998sdasdh09\r\n"
    "CSeq: 1826 REGISTER\r\n"
    "Contact: <sip:alice@127.0.0.1:5070>\r\n"
    "Authorization: Digest username=\"alice\", realm=\"p2psip\", "
    "nonce=\"AAABjA3Z5fQAAAAAAAAAAcCIhDpxWq1vV0tP3nGg2Yk\", uri=\"sip:p2psip\", "
    "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", "
    "algorithm=SHA-256, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n"
    "Expires: 3600\r\n"
    "Content-Length: 0\r\n\r\n";

struct secret {
    struct sip_digest_secret s;
};

static int lookup(struct p2p_slice username, struct p2p_slice realm, enum sip_digest_alg alg,
                  struct sip_digest_secret *out, void *arg)
{
    const struct secret *sec = arg;
    (void)username;
    (void)realm;
    (void)alg;
    *out = sec->s;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    fprintf(stderr, "bench_sip_digest: %s\n", what);
    exit(1);
}

/* Verifies N requests on one nonce with increasing nc; returns seconds. */
static double run_verify(struct sip_digest *d, const char *nonce, const char *alg,
                         const struct secret *sec, uint64_t now)
{
    struct sip_digest_secret pw = {SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5,
                                   P2P_SLICE_LIT("s3cret")};
    static char responses[N][SIP_DIGEST_HEX_MAX + 1];
    static char ncs[N][9];
    struct sip_auth cr = {
        .scheme = P2P_SLICE_LIT("Digest"),
        .username = P2P_SLICE_LIT("alice"),
        .realm = P2P_SLICE_LIT("p2psip"),
        .nonce = p2p_slice_cstr(nonce),
        .uri = P2P_SLICE_LIT("sip:p2psip"),
        .algorithm = p2p_slice_cstr(alg),
        .cnonce = P2P_SLICE_LIT("0a4f113b"),
        .qop = P2P_SLICE_LIT("auth"),
    };
    double t0, t;

    for (unsigned i = 0; i < N; i++) {
        snprintf(ncs[i], sizeof(ncs[i]), "%08x", i + 1);
        cr.nc = p2p_slice_cstr(ncs[i]);
        if (sip_digest_compute(&cr, &pw, P2P_SLICE_LIT("REGISTER"), responses[i]) != 0)
            fail("compute");
    }
    t0 = now_s();
    for (unsigned i = 0; i < N; i++) {
        cr.nc = p2p_slice_cstr(ncs[i]);
        cr.response = p2p_slice_cstr(responses[i]);
        if (sip_digest_verify(d, &cr, P2P_SLICE_LIT("REGISTER"), P2P_SLICE_LIT("sip:p2psip"),
                              P2P_SLICE_LIT("p2psip"), lookup, (void *)sec, now) != 0)
            fail("verify");
    }
    t = now_s() - t0;
    /* The last one again is a replay. */
    if (sip_digest_verify(d, &cr, P2P_SLICE_LIT("REGISTER"), P2P_SLICE_LIT("sip:p2psip"),
                          P2P_SLICE_LIT("p2psip"), lookup, (void *)sec, now) != -ESTALE)
        fail("replay accepted");
    return t;
}

int main(void)
{
    static struct sip_msg msg;
    struct sip_digest_config cfg;
    struct sip_digest *d;
    struct p2p_buf b;
    char nonce[SIP_DIGEST_NONCE_LEN + 1];
    double t0, t_parse, t_challenge, t_md5, t_sha, t_md5_ha1, t_sha_ha1;

    sip_digest_config_default(&cfg);
    if (sip_digest_new(&d, &cfg) != 0)
        fail("new");

    t0 = now_s();
    for (unsigned i = 0; i < N; i++) {
        if (sip_msg_parse(&msg, REGISTER, sizeof(REGISTER) - 1, SIP_MSG_DGRAM, NULL) <= 0)
            fail("parse");
    }
    t_parse = now_s() - t0;

    p2p_buf_init(&b, 4096);
    t0 = now_s();
    for (unsigned i = 0; i < N; i++) {
        p2p_buf_reset(&b);
        if (sip_digest_challenge(d, &b, "WWW-Authenticate", P2P_SLICE_LIT("p2psip"), false,
                                 1000 + i / 100) != 0)
            fail("challenge");
    }
    t_challenge = now_s() - t0;
    const char *n;
    nonce[SIP_DIGEST_NONCE_LEN] = '\0';

    /* HA1 = H("alice:p2psip:s3cret") as an accounts file stores it (RFC 7616 3.4.2),
     * computed with Python's hashlib. */
    struct secret pw = {{SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5, P2P_SLICE_LIT("s3cret")}};
    struct secret ha1_md5 = {
        {SIP_DIGEST_SECRET_HA1, SIP_DIGEST_MD5, P2P_SLICE_LIT("7fa58309d2dcb54092c91dd3ac590e59")}};
    struct secret ha1_sha = {
        {SIP_DIGEST_SECRET_HA1, SIP_DIGEST_SHA256,
         P2P_SLICE_LIT("638811ad7dc66b8559a1001e0f60faab6242960c7ed062518d0684c991d12966")}};
    const struct {
        const char *alg;
        const struct secret *sec;
        double *out;
    } runs[] = {
        {"MD5", &pw, &t_md5},
        {"SHA-256", &pw, &t_sha},
        {"MD5", &ha1_md5, &t_md5_ha1},
        {"SHA-256", &ha1_sha, &t_sha_ha1},
    };
    for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
        /* A fresh nonce per run, so that nc starts again at 1. */
        p2p_buf_reset(&b);
        if (sip_digest_challenge(d, &b, "WWW-Authenticate", P2P_SLICE_LIT("p2psip"), false, 3000) !=
            0)
            fail("challenge");
        n = strstr(b.data, "nonce=\"");
        if (n == NULL)
            fail("no nonce");
        memcpy(nonce, n + 7, SIP_DIGEST_NONCE_LEN);
        *runs[r].out = run_verify(d, nonce, runs[r].alg, runs[r].sec, 4000);
    }
    p2p_buf_free(&b);
    sip_digest_free(d);

    double ns = 1e9 / N;
    printf("%-36s %10s %10s\n", "operation", "ns/op", "x parse");
    printf("%-36s %10.0f %10.2f\n", "sip_msg_parse REGISTER (baseline)", t_parse * ns, 1.0);
    printf("%-36s %10.0f %10.2f\n", "challenge (SHA-256 + MD5 lines)", t_challenge * ns,
           t_challenge / t_parse);
    printf("%-36s %10.0f %10.2f\n", "verify MD5, password", t_md5 * ns, t_md5 / t_parse);
    printf("%-36s %10.0f %10.2f\n", "verify SHA-256, password", t_sha * ns, t_sha / t_parse);
    printf("%-36s %10.0f %10.2f\n", "verify MD5, stored HA1", t_md5_ha1 * ns, t_md5_ha1 / t_parse);
    printf("%-36s %10.0f %10.2f\n", "verify SHA-256, stored HA1", t_sha_ha1 * ns,
           t_sha_ha1 / t_parse);
    printf("{\"bench\":\"sip_digest\",\"n\":%d,\"parse_ns\":%.0f,\"challenge_ns\":%.0f,"
           "\"verify_md5_ns\":%.0f,\"verify_sha256_ns\":%.0f,\"verify_md5_ha1_ns\":%.0f,"
           "\"verify_sha256_ha1_ns\":%.0f}\n",
           N, t_parse * ns, t_challenge * ns, t_md5 * ns, t_sha * ns, t_md5_ha1 * ns,
           t_sha_ha1 * ns);
    return 0;
}
