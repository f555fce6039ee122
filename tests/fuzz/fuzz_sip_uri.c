/*
 * fuzz_sip_uri.c: libFuzzer entry for the URI parser, comparison and AoR.
 *
 * The input is split at its first NUL (or in the middle) into two URIs, which are
 * parsed, compared both ways (the comparison must be symmetric and reflexive) and
 * canonicalised (equal URIs without parameters must give equal AoRs).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/sip_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const char *nul = memchr(buf, '\0', size);
    size_t cut = nul ? (size_t)(nul - buf) : size / 2;
    struct p2p_slice a = {buf, cut};
    struct p2p_slice b = {buf + (nul ? cut + 1 : cut), size - cut - (nul ? 1 : 0)};
    struct sip_uri x, y;
    char ax[512], ay[512], un[512];
    int rx = sip_uri_parse(a, &x), ry = sip_uri_parse(b, &y);

    (void)sip_unescape(a, un, sizeof(un));
    if (rx == 0) {
        check(sip_uri_equal(&x, &x));
        int n = sip_uri_aor(&x, ax, sizeof(ax));
        check(n == -ENOSPC || n == -EBADMSG || (n >= 0 && (size_t)n == strlen(ax)));
    }
    if (rx == 0 && ry == 0) {
        bool e = sip_uri_equal(&x, &y);
        check(e == sip_uri_equal(&y, &x));
        if (e && x.params.len == 0 && y.params.len == 0 && x.password.p == NULL &&
            y.password.p == NULL) {
            int n = sip_uri_aor(&x, ax, sizeof(ax)), m = sip_uri_aor(&y, ay, sizeof(ay));
            if (n > 0 && m > 0)
                check(n == m && memcmp(ax, ay, (size_t)n) == 0);
        }
    }
    return 0;
}
