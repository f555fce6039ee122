/*
 * fuzz_sip_digest.c: libFuzzer entry for digest verification.
 *
 * Two properties per input:
 *  - the whole input, taken as an Authorization header value and parsed with
 *    sip_auth_parse(), never authenticates (no one can forge our nonce) and fails
 *    with -EBADMSG or -EACCES only;
 *  - the input split at NULs into username, password and uri is a legitimate
 *    client: the challenge's nonce (read back with sip_auth_parse) and the response
 *    sip_digest_compute() gives must verify once (0), and a second time not (-ESTALE,
 *    replay), for the algorithm chosen by the first byte.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/buf.h"
#include "p2p/sip_digest.h"
#include "p2p/sip_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

struct account {
    struct p2p_slice user, password;
};

static int lookup(struct p2p_slice username, struct p2p_slice realm, enum sip_digest_alg alg,
                  struct sip_digest_secret *out, void *arg)
{
    const struct account *a = arg;
    (void)realm;
    (void)alg;
    if (!p2p_slice_eq(username, a->user))
        return -ENOENT;
    out->kind = SIP_DIGEST_SECRET_PASSWORD;
    out->ha1_alg = SIP_DIGEST_MD5;
    out->value = a->password;
    return 0;
}

/* Usable inside a quoted string as is (no quote, backslash or control byte). */
static int quotable(struct p2p_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return s.len > 0 && s.len <= SIP_DIGEST_PARAM_MAX;
}

static struct p2p_slice next_field(const char **p, const char *end)
{
    const char *nul = memchr(*p, '\0', (size_t)(end - *p));
    struct p2p_slice s = {*p, (size_t)((nul ? nul : end) - *p)};
    *p = nul ? nul + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *algs[] = {"MD5", "MD5-sess", "SHA-256", "SHA-256-sess"};
    const struct p2p_slice realm = P2P_SLICE_LIT("p2psip");
    struct sip_digest_config cfg;
    struct sip_digest *d;
    struct sip_auth cr;
    struct account acct = {P2P_SLICE_LIT("alice"), P2P_SLICE_LIT("pw")};
    int rc;

    sip_digest_config_default(&cfg);
    cfg.nonce_max = 8;
    cfg.algs = 0xf;
    if (sip_digest_new(&d, &cfg) != 0)
        abort();

    /* 1: arbitrary credentials never pass. */
    if (sip_auth_parse((struct p2p_slice){(const char *)data, size}, &cr) == 0) {
        rc = sip_digest_verify(d, &cr, P2P_SLICE_LIT("REGISTER"), P2P_SLICE_LIT("sip:p2psip"),
                               realm, lookup, &acct, 1000);
        check(rc == -EBADMSG || rc == -EACCES);
    }

    /* 2: a legitimate client always passes, once. */
    if (size >= 1) {
        const char *p = (const char *)data + 1, *end = (const char *)data + size;
        enum sip_digest_alg alg;
        struct p2p_slice user = next_field(&p, end);
        struct p2p_slice password = next_field(&p, end);
        struct p2p_slice uri = next_field(&p, end);
        struct p2p_buf ch;
        struct sip_auth chal;
        char response[SIP_DIGEST_HEX_MAX + 1];

        check(sip_digest_alg_parse(p2p_slice_cstr(algs[data[0] % 4]), &alg) == 0);
        if (quotable(user) && quotable(uri)) {
            const char *line, *colon;
            p2p_buf_init(&ch, 4096);
            check(sip_digest_challenge(d, &ch, "WWW-Authenticate", realm, false, 2000) == 0);
            /* Every line shares the nonce; read the first one's value back. */
            line = ch.data;
            colon = memchr(line, ':', ch.len);
            check(colon != NULL);
            const char *eol = memchr(colon, '\r', ch.len - (size_t)(colon - line));
            check(eol != NULL);
            check(sip_auth_parse((struct p2p_slice){colon + 1, (size_t)(eol - colon - 1)}, &chal) ==
                  0);
            memset(&cr, 0, sizeof(cr));
            cr.scheme = P2P_SLICE_LIT("Digest");
            cr.username = user;
            cr.realm = realm;
            cr.nonce = chal.nonce;
            cr.uri = uri;
            cr.algorithm = p2p_slice_cstr(sip_digest_alg_name(alg));
            cr.qop = P2P_SLICE_LIT("auth");
            cr.nc = P2P_SLICE_LIT("00000001");
            cr.cnonce = P2P_SLICE_LIT("0a4f113b");
            struct sip_digest_secret secret = {SIP_DIGEST_SECRET_PASSWORD, SIP_DIGEST_MD5,
                                               password};
            check(sip_digest_compute(&cr, &secret, P2P_SLICE_LIT("INVITE"), response) == 0);
            cr.response = p2p_slice_cstr(response);
            acct.user = user;
            acct.password = password;
            check(sip_digest_verify(d, &cr, P2P_SLICE_LIT("INVITE"), uri, realm, lookup, &acct,
                                    2500) == 0);
            check(sip_digest_verify(d, &cr, P2P_SLICE_LIT("INVITE"), uri, realm, lookup, &acct,
                                    2600) == -ESTALE);
            p2p_buf_free(&ch);
        }
    }
    sip_digest_free(d);
    return 0;
}
