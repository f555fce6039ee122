/*
 * sip_uri.h: SIP, SIPS and tel URIs (RFC 3261 19.1, 25.1; RFC 3966; RFC 5118).
 *
 * sip_uri_parse() splits a URI into slices of the caller's bytes (no allocation,
 * no NUL assumed, %-escapes left as written).  sip_uri_equal() is the comparison of
 * RFC 3261 19.1.4, and sip_uri_aor() writes the canonical address-of-record used as
 * the DHT key, so that saving and looking up a binding always agree.
 */
#ifndef P2P_SIP_URI_H
#define P2P_SIP_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/slice.h"

enum sip_uri_scheme {
    SIP_URI_SIP,
    SIP_URI_SIPS,
    SIP_URI_TEL,
};

struct sip_uri {
    enum sip_uri_scheme scheme;
    /* userinfo (sip/sips); for tel, user holds the telephone-subscriber number */
    struct p2p_slice user;
    struct p2p_slice password; /* .p == NULL when absent */
    struct p2p_slice host;     /* as written; IPv6 references keep their brackets */
    uint16_t port;             /* 0 when absent */
    bool has_port;
    struct p2p_slice params;  /* from the first ';' up to '?' (leading ';' included) */
    struct p2p_slice headers; /* after '?', .p == NULL when absent */
    /* well-known parameters (RFC 3261 19.1.1), .p == NULL when absent */
    struct p2p_slice transport, user_param, method, maddr, ttl;
    bool lr;
};

/*
 * Parses a whole slice as a URI.  Returns 0, -EPROTONOSUPPORT for a well-formed
 * URI of another scheme (the answer is 416, RFC 3261 8.2.2.1), or -EBADMSG.
 * Checks the RFC 3261 25.1 character classes of each part, escapes (%HH), the host
 * (hostname, IPv4, IPv6 reference, RFC 5118), the port (0..65535).
 */
int sip_uri_parse(struct p2p_slice s, struct sip_uri *out);

/*
 * RFC 3261 19.1.4: sip and sips never equal each other; user and password compare
 * case-sensitively after unescaping; host case-insensitively (IPv6 references by
 * address); port must be both absent or equal; transport, user, ttl, method and
 * maddr parameters, when present in either, must be in both and equal; other
 * parameters compare only when in both; lr and any param compare
 * case-insensitively after unescaping; headers must be the same set (names
 * case-insensitive, values case-sensitive).  tel URIs: numbers compare after
 * dropping visual separators (RFC 3966 4), parameters as above.
 */
bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b);

/*
 * Writes the canonical address-of-record of u into dst (NUL-terminated): the URI
 * with parameters and headers removed (RFC 3261 10.3 step 5), scheme in lower
 * case, user unescaped and re-escaped canonically (only characters outside
 * unreserved / user-unreserved escaped, upper-case hex) keeping its case,
 * password dropped, host lower-cased (IPv6 written in RFC 5952 form inside
 * brackets), ":port" only when the URI had a port.  Equal URIs in the sense of
 * 19.1.4 (parameters aside) give the same bytes.  tel: "tel:" + number without
 * visual separators.  Returns the length written (without NUL), -ENOSPC when dst
 * is too small (dst untouched past dst[0]) or -EBADMSG for a bad escape.
 */
int sip_uri_aor(const struct sip_uri *u, char *dst, size_t size);

/*
 * Copies s into dst decoding %HH escapes, NUL-terminated.  Returns the length,
 * -ENOSPC or -EBADMSG for a malformed escape.  Note: the result may contain NUL.
 */
int sip_unescape(struct p2p_slice s, char *dst, size_t size);

#endif
