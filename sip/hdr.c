/*
 * hdr.c: typed parsers for SIP header values (RFC 3261 20, 25.1; RFC 3581).
 *
 * Each parser takes one header value (or one element of a list, see
 * sip_hdr_iter) and fills a small struct of slices into the same bytes.  LWS is
 * SP / HTAB / CR / LF here: the message parser guarantees a CR LF inside a value
 * is a fold.  The grammar's SWS around separators (SEMI, EQUAL, COLON, SLASH,
 * COMMA, LAQUOT/RAQUOT) is honoured where RFC 3261 25.1 puts it, and refused where
 * it does not (e.g. inside <...>, RFC 4475 3.1.2.14).
 */
#include "p2p/sip_msg.h"

#include <errno.h>
#include <string.h>

#include "hdr_priv.h"

int sip__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int sip__port_parse(struct p2p_slice s, uint16_t *out)
{
    uint32_t v = 0;

    if (s.len == 0 || s.len > 5)
        return -EBADMSG;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9)
            return -EBADMSG;
        v = v * 10 + d;
    }
    if (v > 65535)
        return -EBADMSG;
    *out = (uint16_t)v;
    return 0;
}

static bool ipv4_ok(struct p2p_slice h)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        size_t d = sip__span(h.p, i, h.len, SIP__C_DIGIT);
        unsigned v = 0;
        if (d == 0 || d > 3)
            return false;
        for (size_t k = 0; k < d; k++)
            v = v * 10 + (unsigned)(h.p[i + k] - '0');
        if (v > 255)
            return false;
        i += d;
        if (part < 3) {
            if (i >= h.len || h.p[i] != '.')
                return false;
            i++;
        }
    }
    return i == h.len;
}

bool sip__host_ok(struct p2p_slice h)
{
    if (h.len == 0)
        return false;
    if (h.p[0] == '[') {
        /* RFC 3261 25.1 / RFC 5118: IPv6reference = "[" IPv6address "]".  The
         * check is the ABNF's character set and shape (hex, ':' and a trailing
         * dotted quad), not a full address validation: RFC 5118 4.10. */
        size_t colons = 0;
        if (h.len < 4 || h.p[h.len - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < h.len; i++) {
            unsigned char c = (unsigned char)h.p[i];
            if (c == ':')
                colons++;
            else if (!sip__is(c, SIP__C_HEX) && c != '.')
                return false;
        }
        return colons >= 2 && colons <= 8;
    }
    /* hostname = *( domainlabel "." ) toplabel [ "." ] or IPv4address, in
     * one pass: labels of alphanum and inner '-', one trailing '.' at most */
    bool all_num = true;
    size_t ls = 0;
    for (size_t i = 0; i < h.len; i++) {
        unsigned char c = (unsigned char)h.p[i];
        if (c == '.') {
            if (i == ls || h.p[i - 1] == '-')
                return false;
            ls = i + 1;
        } else if (sip__is(c, SIP__C_ALNUM)) {
            if (!sip__is(c, SIP__C_DIGIT))
                all_num = false;
        } else if (c == '-') {
            if (i == ls)
                return false;
            all_num = false;
        } else {
            return false;
        }
    }
    if (all_num)
        return ipv4_ok(h);
    return ls == h.len || h.p[h.len - 1] != '-';
}

bool sip_is_token(struct p2p_slice s)
{
    return s.len > 0 && sip__span(s.p, 0, s.len, SIP__C_TOKEN) == s.len;
}

int sip_uint_parse(struct p2p_slice value, uint32_t max, uint32_t *out)
{
    struct p2p_slice s = sip__trim(value);
    uint64_t v;

    if (s.len == 0 || sip__span(s.p, 0, s.len, SIP__C_DIGIT) != s.len)
        return -EBADMSG;
    /* Skip leading zeros so "0068" (RFC 4475 3.1.1.1) does not count as long. */
    while (s.len > 1 && s.p[0] == '0') {
        s.p++;
        s.len--;
    }
    if (s.len > 10)
        return -ERANGE;
    if (p2p_slice_to_u64(s, max, &v) != 0)
        return -ERANGE;
    *out = (uint32_t)v;
    return 0;
}

/* ---- generic parameters ---- */

/* gen-value = token / host / quoted-string; returns index past it or SIZE_MAX */
static size_t scan_gen_value(const char *p, size_t i, size_t n, struct p2p_slice *val)
{
    if (i < n && p[i] == '"') {
        size_t e = sip__skip_quoted(p, i, n);
        if (e > n)
            return SIZE_MAX;
        *val = sip__sl(p, i + 1, e - 1);
        return e;
    }
    size_t s = i;
    while (i < n && (sip__is((unsigned char)p[i], SIP__C_TOKEN) || p[i] == ':' || p[i] == '[' ||
                     p[i] == ']'))
        i++;
    if (i == s)
        return SIZE_MAX;
    *val = sip__sl(p, s, i);
    return i;
}

int sip_param_next(struct p2p_slice *rest, struct sip_param *out)
{
    const char *p = rest->p;
    size_t n = rest->len, i, s;
    struct sip_param prm;

    i = sip__skip_ws(p, 0, n);
    if (i >= n) {
        rest->p += n;
        rest->len = 0;
        return 0;
    }
    if (p[i] != ';')
        return -EBADMSG;
    i = sip__skip_ws(p, i + 1, n);
    s = i;
    i += sip__span(p, i, n, SIP__C_TOKEN);
    if (i == s)
        return -EBADMSG; /* RFC 4475 3.1.2.1: ";;" */
    prm.name = sip__sl(p, s, i);
    prm.value.p = NULL;
    prm.value.len = 0;
    size_t j = sip__skip_ws(p, i, n);
    if (j < n && p[j] == '=') {
        j = sip__skip_ws(p, j + 1, n);
        i = scan_gen_value(p, j, n, &prm.value);
        if (i == SIZE_MAX)
            return -EBADMSG;
    }
    /* what follows must be LWS, ';' or the end */
    j = sip__skip_ws(p, i, n);
    if (j < n && p[j] != ';')
        return -EBADMSG;
    *out = prm;
    rest->p += i;
    rest->len -= i;
    return 1;
}

bool sip_param_find(struct p2p_slice params, const char *name, struct p2p_slice *value)
{
    struct sip_param prm;
    struct p2p_slice want = p2p_slice_cstr(name);

    while (sip_param_next(&params, &prm) == 1) {
        if (p2p_slice_caseeq(prm.name, want)) {
            if (value != NULL)
                *value = prm.value;
            return true;
        }
    }
    return false;
}

/* ---- Via ---- */

/* Scans a token at p[i] (after LWS); returns end or SIZE_MAX. */
static size_t scan_token(const char *p, size_t i, size_t n, struct p2p_slice *tok)
{
    size_t s;

    i = sip__skip_ws(p, i, n);
    s = i;
    i += sip__span(p, i, n, SIP__C_TOKEN);
    if (i == s)
        return SIZE_MAX;
    *tok = sip__sl(p, s, i);
    return i;
}

/* SLASH = SWS "/" SWS */
static size_t scan_sep(const char *p, size_t i, size_t n, char sep)
{
    i = sip__skip_ws(p, i, n);
    if (i >= n || p[i] != sep)
        return SIZE_MAX;
    return sip__skip_ws(p, i + 1, n);
}

/* host [ COLON port ] at p[i]: returns the end or SIZE_MAX */
static size_t scan_hostport(const char *p, size_t i, size_t n, struct p2p_slice *host,
                            uint16_t *port, bool *has_port)
{
    size_t s = i;

    if (i < n && p[i] == '[') {
        while (i < n && p[i] != ']')
            i++;
        if (i >= n)
            return SIZE_MAX;
        i++;
    } else {
        i += sip__span(p, i, n, SIP__C_HOST);
    }
    *host = sip__sl(p, s, i);
    if (!sip__host_ok(*host))
        return SIZE_MAX;
    *has_port = false;
    *port = 0;
    size_t j = sip__skip_ws(p, i, n);
    if (j < n && p[j] == ':') {
        j = sip__skip_ws(p, j + 1, n);
        size_t d = sip__span(p, j, n, SIP__C_DIGIT);
        if (sip__port_parse(sip__sl(p, j, j + d), port) != 0)
            return SIZE_MAX;
        *has_port = true;
        i = j + d;
    }
    return i;
}

static bool ip_ok(struct p2p_slice v)
{
    /* via-received = "received" EQUAL (IPv4address / IPv6address); RFC 5118
     * 4.5 and 4.6 show it with and without brackets. */
    if (v.len > 0 && v.p[0] == '[')
        return sip__host_ok(v);
    if (memchr(v.p, ':', v.len) != NULL) {
        if (v.len < 2 || v.len > 45)
            return false;
        for (size_t i = 0; i < v.len; i++) {
            if (!sip__is((unsigned char)v.p[i], SIP__C_HEX) && v.p[i] != ':' && v.p[i] != '.')
                return false;
        }
        return true;
    }
    return ipv4_ok(v);
}

int sip_via_parse(struct p2p_slice value, struct sip_via *out)
{
    const char *p = value.p;
    size_t n = value.len, i;
    struct sip_via v;
    bool has_port;

    memset(&v, 0, sizeof(v));
    v.value = value;
    /* RFC 3261 20.42: sent-protocol = protocol-name SLASH protocol-version SLASH transport */
    i = scan_token(p, 0, n, &v.protocol);
    if (i == SIZE_MAX || (i = scan_sep(p, i, n, '/')) == SIZE_MAX ||
        (i = scan_token(p, i, n, &v.version)) == SIZE_MAX ||
        (i = scan_sep(p, i, n, '/')) == SIZE_MAX ||
        (i = scan_token(p, i, n, &v.transport)) == SIZE_MAX)
        return -EBADMSG;
    /* LWS sent-by */
    size_t j = sip__skip_ws(p, i, n);
    if (j == i)
        return -EBADMSG;
    i = scan_hostport(p, j, n, &v.host, &v.port, &has_port);
    if (i == SIZE_MAX)
        return -EBADMSG;
    v.params = sip__sl(p, i, n);

    struct p2p_slice rest = v.params;
    struct sip_param prm;
    int rc;
    while ((rc = sip_param_next(&rest, &prm)) == 1) {
        if (SIP__NAME_IS(prm.name, "branch")) {
            if (prm.value.p == NULL || !sip_is_token(prm.value) || v.branch.p != NULL)
                return -EBADMSG;
            v.branch = prm.value;
        } else if (SIP__NAME_IS(prm.name, "received")) {
            if (prm.value.p == NULL || !ip_ok(prm.value))
                return -EBADMSG;
            v.received = prm.value;
        } else if (SIP__NAME_IS(prm.name, "maddr")) {
            if (prm.value.p == NULL || !sip__host_ok(prm.value))
                return -EBADMSG;
            v.maddr = prm.value;
        } else if (SIP__NAME_IS(prm.name, "ttl")) {
            uint32_t t;
            if (prm.value.p == NULL || prm.value.len > 3 || sip_uint_parse(prm.value, 255, &t) != 0)
                return -EBADMSG;
            v.ttl = prm.value;
        } else if (SIP__NAME_IS(prm.name, "rport")) {
            /* RFC 3581 3: response-port = "rport" [EQUAL 1*DIGIT] */
            v.rport = true;
            v.rport_p = sip__sl(prm.name.p, 0, (size_t)(rest.p - prm.name.p));
            if (prm.value.p != NULL) {
                if (sip__port_parse(prm.value, &v.rport_value) != 0)
                    return -EBADMSG;
            }
        }
    }
    if (rc < 0)
        return -EBADMSG;
    *out = v;
    return 0;
}

/* ---- name-addr / addr-spec ---- */

/* A URI's own shape: scheme ":" then non-LWS bytes. */
static bool uri_shape_ok(struct p2p_slice u)
{
    size_t s = sip__span(u.p, 0, u.len, SIP__C_SCHEME);
    if (s == 0 || s >= u.len || u.p[s] != ':' || sip__is((unsigned char)u.p[0], SIP__C_DIGIT) ||
        !sip__is((unsigned char)u.p[0], SIP__C_ALNUM))
        return false;
    return sip__span(u.p, s + 1, u.len, SIP__C_URIC) == u.len - s - 1;
}

int sip_addr_parse(struct p2p_slice value, struct sip_addr *out)
{
    const char *p = value.p;
    size_t n = value.len, i;
    struct sip_addr a;

    memset(&a, 0, sizeof(a));
    i = sip__skip_ws(p, 0, n);
    if (i >= n)
        return -EBADMSG;
    if (p[i] == '"') {
        /* display-name = quoted-string, then LAQUOT = SWS "<" */
        size_t e = sip__skip_quoted(p, i, n);
        if (e > n)
            return -EBADMSG; /* RFC 4475 3.1.2.6 */
        a.display = sip__sl(p, i + 1, e - 1);
        a.display_quoted = true;
        i = sip__skip_ws(p, e, n);
        if (i >= n || p[i] != '<')
            return -EBADMSG;
    } else {
        /* display-name = *(token LWS), or an addr-spec: look for '<' */
        size_t s = i, last = i;
        while (i < n && (sip__is((unsigned char)p[i], SIP__C_TOKEN) ||
                         sip__is((unsigned char)p[i], SIP__C_WS))) {
            if (!sip__is((unsigned char)p[i], SIP__C_WS))
                last = i + 1;
            i++;
        }
        if (i < n && p[i] == '<') {
            a.display = sip__sl(p, s, last);
        } else {
            /* addr-spec: params after it belong to the header (RFC 3261
             * 20.10); the URI cannot hold ',', ';', '?' or LWS there. */
            i = s;
            while (i < n && p[i] != ';' && !sip__is((unsigned char)p[i], SIP__C_WS)) {
                if (p[i] == ',' || p[i] == '?' || p[i] == '<' || p[i] == '>' || p[i] == '"')
                    return -EBADMSG; /* RFC 4475 3.1.2.13 */
                i++;
            }
            a.uri = sip__sl(p, s, i);
            if (!uri_shape_ok(a.uri))
                return -EBADMSG;
            goto params;
        }
    }
    /* p[i] == '<': addr-spec RAQUOT, no LWS inside (RFC 4475 3.1.2.14) */
    {
        size_t s = i + 1;
        const char *gt = memchr(p + s, '>', n - s);
        if (gt == NULL)
            return -EBADMSG;
        i = (size_t)(gt - p);
        a.uri = sip__sl(p, s, i);
        a.angle = true;
        if (!uri_shape_ok(a.uri))
            return -EBADMSG;
        i++;
    }
params:
    a.params = sip__sl(p, i, n);
    {
        struct p2p_slice rest = a.params;
        struct sip_param prm;
        int rc;
        while ((rc = sip_param_next(&rest, &prm)) == 1) {
            if (SIP__NAME_IS(prm.name, "tag")) {
                if (prm.value.p == NULL || !sip_is_token(prm.value) || a.tag.p != NULL)
                    return -EBADMSG;
                a.tag = prm.value;
            }
        }
        if (rc < 0)
            return -EBADMSG;
    }
    *out = a;
    return 0;
}

/* ---- Contact ---- */

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), times 1000 */
static int qvalue_parse(struct p2p_slice s, uint16_t *out)
{
    unsigned v, scale = 100;

    if (s.len == 0 || s.len > 5 || (s.p[0] != '0' && s.p[0] != '1'))
        return -EBADMSG;
    v = (unsigned)(s.p[0] - '0') * 1000;
    if (s.len > 1) {
        if (s.p[1] != '.')
            return -EBADMSG;
        for (size_t i = 2; i < s.len; i++) {
            if (!sip__is((unsigned char)s.p[i], SIP__C_DIGIT))
                return -EBADMSG;
            v += (unsigned)(s.p[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (v > 1000)
        return -EBADMSG;
    *out = (uint16_t)v;
    return 0;
}

int sip_contact_parse(struct p2p_slice value, struct sip_contact *out)
{
    struct sip_contact c;
    struct p2p_slice t = sip__trim(value);

    memset(&c, 0, sizeof(c));
    if (t.len == 1 && t.p[0] == '*') {
        c.star = true;
        *out = c;
        return 0;
    }
    if (sip_addr_parse(value, &c.addr) != 0)
        return -EBADMSG;
    struct p2p_slice rest = c.addr.params;
    struct sip_param prm;
    int rc;
    while ((rc = sip_param_next(&rest, &prm)) == 1) {
        if (SIP__NAME_IS(prm.name, "expires")) {
            uint32_t e;
            int r;
            if (prm.value.p == NULL)
                return -EBADMSG;
            r = sip_uint_parse(prm.value, UINT32_MAX, &e);
            if (r == -ERANGE)
                e = UINT32_MAX; /* RFC 3261 20.19: delta-seconds beyond 2^32-1 */
            else if (r != 0)
                return -EBADMSG;
            c.has_expires = true;
            c.expires = e;
        } else if (SIP__NAME_IS(prm.name, "q")) {
            if (prm.value.p == NULL || qvalue_parse(prm.value, &c.q) != 0)
                return -EBADMSG;
            c.has_q = true;
        }
    }
    if (rc < 0)
        return -EBADMSG;
    *out = c;
    return 0;
}

/* ---- CSeq ---- */

int sip_cseq_parse(struct p2p_slice value, struct sip_cseq *out)
{
    const char *p = value.p;
    size_t n = value.len, i, d;
    uint32_t num;
    struct p2p_slice m;

    /* RFC 3261 20.16: CSeq = 1*DIGIT LWS Method; 8.1.1.5: less than 2^31 */
    i = sip__skip_ws(p, 0, n);
    d = sip__span(p, i, n, SIP__C_DIGIT);
    if (d == 0 || sip_uint_parse(sip__sl(p, i, i + d), 0x7fffffffu, &num) != 0)
        return -EBADMSG;
    i += d;
    if (i >= n || !sip__is((unsigned char)p[i], SIP__C_WS))
        return -EBADMSG;
    i = scan_token(p, i, n, &m);
    if (i == SIZE_MAX || sip__skip_ws(p, i, n) != n)
        return -EBADMSG;
    out->num = num;
    out->method = m;
    return 0;
}

/* ---- Content-Type ---- */

int sip_media_type_parse(struct p2p_slice value, struct sip_media_type *out)
{
    const char *p = value.p;
    size_t n = value.len, i;
    struct sip_media_type mt;
    struct sip_param prm;
    int rc;

    i = scan_token(p, 0, n, &mt.type);
    if (i == SIZE_MAX || (i = scan_sep(p, i, n, '/')) == SIZE_MAX ||
        (i = scan_token(p, i, n, &mt.subtype)) == SIZE_MAX)
        return -EBADMSG;
    mt.params = sip__sl(p, i, n);
    struct p2p_slice rest = mt.params;
    while ((rc = sip_param_next(&rest, &prm)) == 1)
        ;
    if (rc < 0)
        return -EBADMSG;
    *out = mt;
    return 0;
}

bool sip_msg_has_token(const struct sip_msg *msg, enum sip_hdr_id id, const char *token)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;
    struct p2p_slice want = p2p_slice_cstr(token);

    sip_hdr_iter_init(&it, msg, id);
    while (sip_hdr_iter_next(&it, &v)) {
        if (p2p_slice_caseeq(v, want))
            return true;
    }
    return false;
}

/* ---- Digest ---- */

int sip_auth_param_next(struct p2p_slice *rest, struct sip_param *out)
{
    const char *p = rest->p;
    size_t n = rest->len, i, s;
    struct sip_param prm;

    /* auth-param = auth-param-name EQUAL ( token / quoted-string ), COMMA-separated */
    i = sip__skip_ws(p, 0, n);
    if (i < n && p[i] == ',')
        i = sip__skip_ws(p, i + 1, n);
    if (i >= n) {
        rest->p += n;
        rest->len = 0;
        return 0;
    }
    s = i;
    i += sip__span(p, i, n, SIP__C_TOKEN);
    if (i == s)
        return -EBADMSG;
    prm.name = sip__sl(p, s, i);
    i = sip__skip_ws(p, i, n);
    if (i >= n || p[i] != '=')
        return -EBADMSG;
    i = sip__skip_ws(p, i + 1, n);
    if (i < n && p[i] == '"') {
        size_t e = sip__skip_quoted(p, i, n);
        if (e > n)
            return -EBADMSG;
        prm.value = sip__sl(p, i + 1, e - 1);
        i = e;
    } else {
        s = i;
        /* token; '/' and ':' tolerated for unquoted legacy uri values */
        while (i < n && (sip__is((unsigned char)p[i], SIP__C_TOKEN) || p[i] == '/' || p[i] == ':' ||
                         p[i] == '='))
            i++;
        if (i == s)
            return -EBADMSG;
        prm.value = sip__sl(p, s, i);
    }
    size_t j = sip__skip_ws(p, i, n);
    if (j < n && p[j] != ',')
        return -EBADMSG;
    *out = prm;
    rest->p += j;
    rest->len -= j;
    return 1;
}

int sip_auth_parse(struct p2p_slice value, struct sip_auth *out)
{
    const char *p = value.p;
    size_t n = value.len, i;
    struct sip_auth a;
    struct sip_param prm;
    int rc;

    memset(&a, 0, sizeof(a));
    i = scan_token(p, 0, n, &a.scheme);
    if (i == SIZE_MAX)
        return -EBADMSG;
    if (i < n && !sip__is((unsigned char)p[i], SIP__C_WS))
        return -EBADMSG;
    a.params = sip__trim(sip__sl(p, i, n));
    struct p2p_slice rest = a.params;
    while ((rc = sip_auth_param_next(&rest, &prm)) == 1) {
        static const char *const names[] = {"username",  "realm",  "nonce",   "uri", "response",
                                            "algorithm", "cnonce", "opaque",  "qop", "nc",
                                            "domain",    "stale",  "userhash"};
        struct p2p_slice *slots[] = {&a.username,  &a.realm,  &a.nonce,   &a.uri, &a.response,
                                     &a.algorithm, &a.cnonce, &a.opaque,  &a.qop, &a.nc,
                                     &a.domain,    &a.stale,  &a.userhash};
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            if (p2p_slice_caseeq_cstr(prm.name, names[k])) {
                if (slots[k]->p != NULL)
                    return -EBADMSG;
                *slots[k] = prm.value;
                break;
            }
        }
    }
    if (rc < 0)
        return -EBADMSG;
    *out = a;
    return 0;
}

int sip_unquote(struct p2p_slice s, char *dst, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '\\' && i + 1 < s.len)
            c = s.p[++i];
        if (o + 1 >= size) {
            if (size > 0)
                dst[0] = '\0';
            return -ENOSPC;
        }
        dst[o++] = c;
    }
    if (size == 0)
        return -ENOSPC;
    dst[o] = '\0';
    return (int)o;
}
