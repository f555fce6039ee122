/*
 * uri.c: SIP/SIPS/tel URI parsing, RFC 3261 19.1.4 comparison, canonical AoR.
 *
 * Design: sip_uri_parse() checks the RFC 3261 25.1 grammar part by part (userinfo,
 * hostport, uri-parameters, headers) with the character tables of hdr_priv.h and
 * hands out slices; escapes stay as written.  Comparison and the AoR decode
 * escapes on the fly, so "%61lice" and "alice" compare equal without a copy.
 *
 * Invariants: no read past the slice; sip_uri_aor() writes at most size bytes.
 * RFC 3261 19.1 (syntax), 19.1.4 (comparison), 10.3 step 5 (AoR), RFC 5118
 * (IPv6 references), RFC 3966 (tel).
 */
#include "p2p/sip_uri.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "hdr_priv.h"

/* Length of a run of class cls or %HH escapes; *bad set on a broken escape. */
static size_t span_esc(const char *p, size_t i, size_t n, unsigned cls, bool *bad)
{
    size_t s = i;

    while (i < n) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= n || sip__hexval((unsigned char)p[i + 1]) < 0 ||
                sip__hexval((unsigned char)p[i + 2]) < 0) {
                *bad = true;
                return i - s;
            }
            i += 3;
        } else if (sip__is(c, cls)) {
            i++;
        } else {
            break;
        }
    }
    return i - s;
}

#define scheme_is(s, name) SIP__NAME_IS(s, name)

static int parse_params(const char *p, size_t *ip, size_t n, struct sip_uri *u)
{
    size_t i = *ip;
    bool bad = false;

    /* uri-parameters = *( ";" uri-parameter ); pname = 1*paramchar; pvalue = 1*paramchar */
    while (i < n && p[i] == ';') {
        size_t ns = i + 1, ne, vs = 0, ve = 0;
        ne = ns + span_esc(p, ns, n, SIP__C_PARAM | SIP__C_UNRES, &bad);
        if (bad || ne == ns)
            return -EBADMSG;
        i = ne;
        if (i < n && p[i] == '=') {
            vs = i + 1;
            ve = vs + span_esc(p, vs, n, SIP__C_PARAM | SIP__C_UNRES, &bad);
            if (bad || ve == vs)
                return -EBADMSG;
            i = ve;
        }
        struct p2p_slice name = sip__sl(p, ns, ne);
        struct p2p_slice val = vs ? sip__sl(p, vs, ve) : sip__sl(p, ne, ne);
        if (scheme_is(name, "transport"))
            u->transport = val;
        else if (scheme_is(name, "user"))
            u->user_param = val;
        else if (scheme_is(name, "method"))
            u->method = val;
        else if (scheme_is(name, "maddr"))
            u->maddr = val;
        else if (scheme_is(name, "ttl"))
            u->ttl = val;
        else if (scheme_is(name, "lr"))
            u->lr = true;
    }
    *ip = i;
    return 0;
}

static int parse_headers(const char *p, size_t *ip, size_t n, struct sip_uri *u)
{
    size_t i = *ip;
    bool bad = false;

    /* headers = "?" header *( "&" header ); header = hname "=" hvalue */
    if (i >= n || p[i] != '?')
        return 0;
    u->headers = sip__sl(p, i + 1, n);
    i++;
    for (;;) {
        size_t s = i;
        i += span_esc(p, i, n, SIP__C_HNV | SIP__C_UNRES, &bad);
        if (bad || i == s || i >= n || p[i] != '=')
            return -EBADMSG;
        i++;
        i += span_esc(p, i, n, SIP__C_HNV | SIP__C_UNRES, &bad);
        if (bad)
            return -EBADMSG;
        if (i < n && p[i] == '&') {
            i++;
            continue;
        }
        break;
    }
    *ip = i;
    return 0;
}

static int parse_sip(const char *p, size_t i, size_t n, struct sip_uri *u)
{
    bool bad = false;
    const char *at = memchr(p + i, '@', n - i);

    if (at != NULL) {
        /* userinfo = ( user / telephone-subscriber ) [ ":" password ] "@" */
        size_t ue = (size_t)(at - p);
        size_t s = i;
        i += span_esc(p, i, ue, SIP__C_UNRES | SIP__C_USER, &bad);
        if (bad || i == s)
            return -EBADMSG;
        u->user = sip__sl(p, s, i);
        if (i < ue && p[i] == ':') {
            s = i + 1;
            i = s + span_esc(p, s, ue, SIP__C_UNRES | SIP__C_PASSWD, &bad);
            if (bad)
                return -EBADMSG;
            u->password = sip__sl(p, s, i);
        }
        if (i != ue)
            return -EBADMSG;
        i = ue + 1;
    }
    /* hostport = host [ ":" port ] */
    size_t hs = i;
    if (i < n && p[i] == '[') {
        while (i < n && p[i] != ']')
            i++;
        if (i >= n)
            return -EBADMSG; /* RFC 5118 4.4 */
        i++;
    } else {
        i += sip__span(p, i, n, SIP__C_HOST);
    }
    u->host = sip__sl(p, hs, i);
    if (!sip__host_ok(u->host))
        return -EBADMSG;
    if (i < n && p[i] == ':') {
        size_t d = sip__span(p, i + 1, n, SIP__C_DIGIT);
        if (sip__port_parse(sip__sl(p, i + 1, i + 1 + d), &u->port) != 0)
            return -EBADMSG;
        u->has_port = true;
        i += 1 + d;
    }
    size_t ps = i;
    if (parse_params(p, &i, n, u) != 0)
        return -EBADMSG;
    u->params = sip__sl(p, ps, i);
    if (parse_headers(p, &i, n, u) != 0)
        return -EBADMSG;
    return i == n ? 0 : -EBADMSG;
}

static bool tel_char(unsigned char c)
{
    /* RFC 3966 3: phonedigit-hex plus the visual separators */
    return sip__is(c, SIP__C_HEX) || c == '*' || c == '#' || c == '-' || c == '.' || c == '(' ||
           c == ')' || c == '+';
}

static int parse_tel(const char *p, size_t i, size_t n, struct sip_uri *u)
{
    size_t s = i;

    if (i < n && p[i] == '+')
        i++;
    while (i < n && tel_char((unsigned char)p[i]) && p[i] != '+')
        i++;
    if (i == s || (i == s + 1 && p[s] == '+'))
        return -EBADMSG;
    u->user = sip__sl(p, s, i);
    size_t ps = i;
    if (parse_params(p, &i, n, u) != 0)
        return -EBADMSG;
    u->params = sip__sl(p, ps, i);
    return i == n ? 0 : -EBADMSG;
}

int sip_uri_parse(struct p2p_slice s, struct sip_uri *out)
{
    struct sip_uri u;
    const char *p = s.p;
    size_t n = s.len, sl;
    int rc;

    memset(&u, 0, sizeof(u));
    sl = sip__span(p, 0, n, SIP__C_SCHEME);
    if (sl == 0 || sl >= n || p[sl] != ':' || !sip__is((unsigned char)p[0], SIP__C_ALNUM) ||
        sip__is((unsigned char)p[0], SIP__C_DIGIT))
        return -EBADMSG;
    struct p2p_slice scheme = sip__sl(p, 0, sl);
    if (scheme_is(scheme, "sip")) {
        u.scheme = SIP_URI_SIP;
        rc = parse_sip(p, sl + 1, n, &u);
    } else if (scheme_is(scheme, "sips")) {
        u.scheme = SIP_URI_SIPS;
        rc = parse_sip(p, sl + 1, n, &u);
    } else if (scheme_is(scheme, "tel")) {
        u.scheme = SIP_URI_TEL;
        rc = parse_tel(p, sl + 1, n, &u);
    } else {
        /* absoluteURI of another scheme: well-formed enough to answer 416 */
        for (size_t i = sl + 1; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"')
                return -EBADMSG;
        }
        return sl + 1 < n ? -EPROTONOSUPPORT : -EBADMSG;
    }
    if (rc != 0)
        return rc;
    *out = u;
    return 0;
}

/* ---- escapes ---- */

/* Next decoded byte of s at *i (which advances); -1 at the end. */
static int next_dec(struct p2p_slice s, size_t *i)
{
    if (*i >= s.len)
        return -1;
    unsigned char c = (unsigned char)s.p[*i];
    if (c == '%' && *i + 2 < s.len) {
        int h = sip__hexval((unsigned char)s.p[*i + 1]);
        int l = sip__hexval((unsigned char)s.p[*i + 2]);
        if (h >= 0 && l >= 0) {
            *i += 3;
            return h * 16 + l;
        }
    }
    *i += 1;
    return c;
}

static int lower_c(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Equality after unescaping, optionally ignoring ASCII case. */
static bool esc_eq(struct p2p_slice a, struct p2p_slice b, bool icase)
{
    size_t i = 0, j = 0;

    for (;;) {
        int x = next_dec(a, &i), y = next_dec(b, &j);
        if (icase) {
            x = lower_c(x);
            y = lower_c(y);
        }
        if (x != y)
            return false;
        if (x < 0)
            return true;
    }
}

int sip_unescape(struct p2p_slice s, char *dst, size_t size)
{
    size_t i = 0, o = 0;

    if (size == 0)
        return -ENOSPC;
    while (i < s.len) {
        if (s.p[i] == '%' && (i + 2 >= s.len || sip__hexval((unsigned char)s.p[i + 1]) < 0 ||
                              sip__hexval((unsigned char)s.p[i + 2]) < 0)) {
            dst[0] = '\0';
            return -EBADMSG;
        }
        int c = next_dec(s, &i);
        if (o + 1 >= size) {
            dst[0] = '\0';
            return -ENOSPC;
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return (int)o;
}

/* ---- comparison (RFC 3261 19.1.4) ---- */

static bool host_eq(struct p2p_slice a, struct p2p_slice b)
{
    if (a.len > 2 && b.len > 2 && a.p[0] == '[' && b.p[0] == '[' && a.len < 64 && b.len < 64) {
        /* RFC 5118 4.10 / RFC 4291: IPv6 references compare as addresses */
        char sa[64], sb[64];
        unsigned char x[16], y[16];
        memcpy(sa, a.p + 1, a.len - 2);
        sa[a.len - 2] = '\0';
        memcpy(sb, b.p + 1, b.len - 2);
        sb[b.len - 2] = '\0';
        if (inet_pton(AF_INET6, sa, x) == 1 && inet_pton(AF_INET6, sb, y) == 1)
            return memcmp(x, y, 16) == 0;
    }
    return p2p_slice_caseeq(a, b);
}

struct kv {
    struct p2p_slice name, value;
};

/* Splits the next item of a "<sep>name[=value]" list (sep ';' or '&'). */
static bool kv_next(struct p2p_slice *rest, char sep, struct kv *out)
{
    const char *p = rest->p;
    size_t n = rest->len, i = 0, s, e;

    while (i < n && p[i] == sep)
        i++;
    if (i >= n)
        return false;
    s = i;
    while (i < n && p[i] != sep)
        i++;
    e = i;
    const char *eq = memchr(p + s, '=', e - s);
    if (eq != NULL) {
        out->name = sip__sl(p, s, (size_t)(eq - p));
        out->value = sip__sl(p, (size_t)(eq - p) + 1, e);
    } else {
        out->name = sip__sl(p, s, e);
        out->value = sip__sl(p, e, e);
    }
    rest->p += i;
    rest->len -= i;
    return true;
}

static bool kv_find(struct p2p_slice list, char sep, struct p2p_slice name, struct kv *out)
{
    struct kv x;

    while (kv_next(&list, sep, &x)) {
        if (esc_eq(x.name, name, true)) {
            *out = x;
            return true;
        }
    }
    return false;
}

static bool param_must_match(struct p2p_slice name, bool tel)
{
    /* 19.1.4: user, ttl, method, maddr, transport must be in both if in one.
     * RFC 3966 4: every tel parameter must be in both. */
    return tel || esc_eq(name, P2P_SLICE_LIT("transport"), true) ||
           esc_eq(name, P2P_SLICE_LIT("user"), true) || esc_eq(name, P2P_SLICE_LIT("ttl"), true) ||
           esc_eq(name, P2P_SLICE_LIT("method"), true) ||
           esc_eq(name, P2P_SLICE_LIT("maddr"), true);
}

static bool params_eq(struct p2p_slice a, struct p2p_slice b, bool tel)
{
    struct kv x, y;
    struct p2p_slice r = a;

    while (kv_next(&r, ';', &x)) {
        /* a repeated parameter counts by its first occurrence, on both sides */
        if (kv_find(a, ';', x.name, &y) && y.name.p != x.name.p)
            continue;
        if (kv_find(b, ';', x.name, &y)) {
            if (!esc_eq(x.value, y.value, true))
                return false;
        } else if (param_must_match(x.name, tel)) {
            return false;
        }
    }
    r = b;
    while (kv_next(&r, ';', &y)) {
        if (param_must_match(y.name, tel) && !kv_find(a, ';', y.name, &x))
            return false;
    }
    return true;
}

static size_t kv_count(struct p2p_slice list, char sep)
{
    struct kv x;
    size_t c = 0;
    while (kv_next(&list, sep, &x))
        c++;
    return c;
}

/* Every header of a has a header in b with the same name and value. */
static bool headers_in(struct p2p_slice a, struct p2p_slice b)
{
    struct kv x, y;
    struct p2p_slice r = a;

    while (kv_next(&r, '&', &x)) {
        struct p2p_slice rb = b;
        bool found = false;
        while (!found && kv_next(&rb, '&', &y))
            found = esc_eq(x.name, y.name, true) && esc_eq(x.value, y.value, false);
        if (!found)
            return false;
    }
    return true;
}

static bool headers_eq(struct p2p_slice a, struct p2p_slice b)
{
    /* 19.1.4: header components are never ignored; names compare without
     * case, values exactly */
    return kv_count(a, '&') == kv_count(b, '&') && headers_in(a, b) && headers_in(b, a);
}

/* Next tel digit without visual separators; -1 at the end. */
static int tel_next(struct p2p_slice s, size_t *i)
{
    while (*i < s.len) {
        char c = s.p[(*i)++];
        if (c != '-' && c != '.' && c != '(' && c != ')')
            return lower_c((unsigned char)c);
    }
    return -1;
}

bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b)
{
    if (a->scheme != b->scheme)
        return false;
    if (a->scheme == SIP_URI_TEL) {
        size_t i = 0, j = 0;
        for (;;) {
            int x = tel_next(a->user, &i), y = tel_next(b->user, &j);
            if (x != y)
                return false;
            if (x < 0)
                break;
        }
        return params_eq(a->params, b->params, true);
    }
    /* userinfo: case-sensitive, escapes equal to the characters they encode */
    if ((a->user.len == 0) != (b->user.len == 0) || !esc_eq(a->user, b->user, false))
        return false;
    if ((a->password.p == NULL) != (b->password.p == NULL) ||
        !esc_eq(a->password, b->password, false))
        return false;
    if (!host_eq(a->host, b->host))
        return false;
    if (a->has_port != b->has_port || a->port != b->port)
        return false;
    if (!params_eq(a->params, b->params, false))
        return false;
    return headers_eq(a->headers, b->headers);
}

/* ---- canonical AoR ---- */

struct out {
    char *p;
    size_t len, size;
    bool over;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->over || o->len + n + 1 > o->size) {
        o->over = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_c(struct out *o, char c)
{
    put(o, &c, 1);
}

int sip_uri_aor(const struct sip_uri *u, char *dst, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    struct out o = {dst, 0, size, size == 0};
    size_t i = 0;
    int c;

    if (u->scheme == SIP_URI_TEL) {
        put(&o, "tel:", 4);
        while ((c = tel_next(u->user, &i)) >= 0)
            put_c(&o, (char)c);
        goto done;
    }
    put(&o, u->scheme == SIP_URI_SIPS ? "sips:" : "sip:", u->scheme == SIP_URI_SIPS ? 5 : 4);
    if (u->user.len > 0) {
        /* unescape, then escape exactly what user may not hold as itself */
        while (i < u->user.len) {
            if (u->user.p[i] == '%' &&
                (i + 2 >= u->user.len || sip__hexval((unsigned char)u->user.p[i + 1]) < 0 ||
                 sip__hexval((unsigned char)u->user.p[i + 2]) < 0)) {
                if (size > 0)
                    dst[0] = '\0';
                return -EBADMSG;
            }
            c = next_dec(u->user, &i);
            if (sip__is((unsigned char)c, SIP__C_UNRES | SIP__C_USER)) {
                put_c(&o, (char)c);
            } else {
                char e[3] = {'%', hex[(c >> 4) & 15], hex[c & 15]};
                put(&o, e, 3);
            }
        }
        put_c(&o, '@');
    }
    if (u->host.len > 2 && u->host.p[0] == '[' && u->host.len < 64) {
        char s[64], t[INET6_ADDRSTRLEN];
        unsigned char a[16];
        memcpy(s, u->host.p + 1, u->host.len - 2);
        s[u->host.len - 2] = '\0';
        if (inet_pton(AF_INET6, s, a) == 1 && inet_ntop(AF_INET6, a, t, sizeof(t)) != NULL) {
            put_c(&o, '[');
            put(&o, t, strlen(t));
            put_c(&o, ']');
            goto port;
        }
    }
    for (size_t k = 0; k < u->host.len; k++)
        put_c(&o, (char)lower_c((unsigned char)u->host.p[k]));
port:
    if (u->has_port) {
        char num[8];
        size_t nl = 0;
        unsigned v = u->port;
        do {
            num[nl++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        put_c(&o, ':');
        while (nl > 0)
            put_c(&o, num[--nl]);
    }
done:
    if (o.over) {
        if (size > 0)
            dst[0] = '\0';
        return -ENOSPC;
    }
    dst[o.len] = '\0';
    return (int)o.len;
}
