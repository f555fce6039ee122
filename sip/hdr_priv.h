/*
 * hdr_priv.h: character classes and small scanners shared by the SIP message,
 * header and URI parsers (msg.c, hdr.c, uri.c, build.c).
 *
 * Every class is a 256-entry table indexed by the unsigned byte, so a scan is one
 * load and one test per byte; every scanner checks the end before each read.
 */
#ifndef P2P_SIP_HDR_PRIV_H
#define P2P_SIP_HDR_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/slice.h"

/* Bits of sip__cclass[]. */
enum {
    SIP__C_TOKEN = 1 << 0,   /* RFC 3261 25.1 token */
    SIP__C_ALNUM = 1 << 1,   /* ALPHA / DIGIT */
    SIP__C_HEX = 1 << 2,     /* HEXDIG */
    SIP__C_UNRES = 1 << 3,   /* unreserved = alphanum / mark */
    SIP__C_USER = 1 << 4,    /* user-unreserved */
    SIP__C_PARAM = 1 << 5,   /* param-unreserved */
    SIP__C_HNV = 1 << 6,     /* hnv-unreserved */
    SIP__C_PASSWD = 1 << 7,  /* "&" / "=" / "+" / "$" / "," (password extra) */
    SIP__C_WS = 1 << 8,      /* SP / HTAB / CR / LF: LWS inside a header value */
    SIP__C_DIGIT = 1 << 9,   /* DIGIT */
    SIP__C_VALUE = 1 << 10,  /* a header value byte: anything but CR and LF (quoted-pair
                              * may escape NUL, RFC 3261 25.1, RFC 4475 3.1.1.2) */
    SIP__C_SCHEME = 1 << 11, /* ALPHA / DIGIT / "+" / "-" / "." */
    SIP__C_HOST = 1 << 12,   /* hostname chars: alphanum / "-" / "." */
    SIP__C_WORD = 1 << 13,   /* RFC 3261 25.1 word (Call-ID) */
    SIP__C_LSEP = 1 << 14,   /* '"', '<', '>', ',': what a list split looks at */
    SIP__C_URIC = 1 << 15,   /* a byte a URI may hold: visible, not '<' '>' '"' */
};

extern const uint16_t sip__cclass[256];

static inline bool sip__is(unsigned char c, unsigned cls)
{
    return (sip__cclass[c] & cls) != 0;
}

/* s equals the lower-case literal lit of n bytes, ignoring ASCII case. */
static inline bool sip__name_is(struct p2p_slice s, const char *lit, size_t n)
{
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)lit[i])
            return false;
    }
    return true;
}

#define SIP__NAME_IS(s, lit) sip__name_is((s), (lit), sizeof(lit) - 1)

/* Removes LWS at both ends. */
static inline struct p2p_slice sip__trim(struct p2p_slice s)
{
    while (s.len > 0 && (sip__cclass[(unsigned char)s.p[0]] & SIP__C_WS)) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && (sip__cclass[(unsigned char)s.p[s.len - 1]] & SIP__C_WS))
        s.len--;
    return s;
}

/* Skips LWS (SP, HTAB, and the CR LF of folded lines). */
static inline size_t sip__skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && sip__is((unsigned char)p[i], SIP__C_WS))
        i++;
    return i;
}

/* Scans a quoted string starting at p[i] == '"'.  Returns the index just past
 * the closing quote, or n + 1 when it is not terminated. */
size_t sip__skip_quoted(const char *p, size_t i, size_t n);

/* Length of the run of bytes of class cls from p[i]. */
static inline size_t sip__span(const char *p, size_t i, size_t n, unsigned cls)
{
    size_t j = i;
    while (j < n && sip__is((unsigned char)p[j], cls))
        j++;
    return j - i;
}

/* A slice of p[a..b). */
static inline struct p2p_slice sip__sl(const char *p, size_t a, size_t b)
{
    struct p2p_slice s = {p + a, b - a};
    return s;
}

/* Host syntax (hostname, IPv4address, IPv6reference) filling the whole slice. */
bool sip__host_ok(struct p2p_slice h);

/* A port: 1..5 digits, at most 65535. */
int sip__port_parse(struct p2p_slice s, uint16_t *out);

int sip__hexval(unsigned char c);

#endif
