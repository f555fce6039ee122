/*
 * msg.c: the SIP message parser (RFC 3261 7, 7.3, 18.3, 25) and header access.
 *
 * Design: one pass over the bytes.  The start line is split at single SPs
 * (RFC 3261 7.1, 7.2: exactly one SP between elements, so lwsstart/trws of RFC
 * 4475 fail here).  Each header line is name, optional white space, ':', value up
 * to a line end that is not followed by SP/HTAB (a folded line, RFC 3261 7.3.1);
 * the value slice keeps the fold, and the typed parsers treat CR/LF as LWS.
 * Line ends are found with memchr (a word at a time), never past the line cap.
 * Header names map to an enum by a switch on the name's length; the compact
 * forms are the one-letter ones of RFC 3261 7.3.3 and the IANA registry.
 * A malformed request line or Content-Length does not stop the scan of the
 * head, so a 400 can still be built from the Via and CSeq that follow.
 *
 * Invariants: no read past buf + len; no allocation; the caps of sip_msg.h hold
 * for every return value, including -EAGAIN (a peer cannot make us wait forever
 * for an over-long header: the cap check happens before the "incomplete" check).
 * Framing (RFC 3261 18.3): datagrams carry one message, the body is the rest of
 * the datagram cut to Content-Length; streams need Content-Length.
 */
#include "p2p/sip_msg.h"

#include "p2p/sip_uri.h"

#include <errno.h>
#include <string.h>

#include "hdr_priv.h"

const uint16_t sip__cclass[256] = {
    0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0500, 0x0100, 0x0400,
    0x0400, 0x0100, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400,
    0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0400, 0x0500, 0xa409, 0x6400, 0x8400,
    0x84f0, 0xa401, 0x84b0, 0xa409, 0xa408, 0xa408, 0xa409, 0xacf1, 0xc490, 0xbc09, 0xbc09, 0xa470,
    0xbe0f, 0xbe0f, 0xbe0f, 0xbe0f, 0xbe0f, 0xbe0f, 0xbe0f, 0xbe0f, 0xbe0f, 0xbe0f, 0xa460, 0x8410,
    0x6400, 0x8490, 0x6400, 0xa450, 0x8400, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0b,
    0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b,
    0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xa460, 0xa400, 0xa460, 0x8400, 0xa409,
    0xa401, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0f, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b,
    0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b, 0xbc0b,
    0xbc0b, 0xbc0b, 0xbc0b, 0xa400, 0x8400, 0xa400, 0xa409, 0x0400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400, 0x8400,
    0x8400, 0x8400, 0x8400, 0x8400,
};

size_t sip__skip_quoted(const char *p, size_t i, size_t n)
{
    /* RFC 3261 25.1: quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE */
    for (i++; i < n; i++) {
        if (p[i] == '"')
            return i + 1;
        if (p[i] == '\\') {
            i++;
            if (i < n && (p[i] == '\r' || p[i] == '\n'))
                return n + 1; /* quoted-pair excludes CR and LF */
        }
    }
    return n + 1;
}

/* ---- header names ---- */

struct hdr_name {
    const char *name;
    unsigned char len;
    unsigned char id;
};

#define H(s, id)                                                                                   \
    {                                                                                              \
        s, sizeof(s) - 1, id                                                                       \
    }

static const struct hdr_name hdr_names[] = {
    H("Accept", SIP_HDR_ACCEPT),
    H("Accept-Contact", SIP_HDR_ACCEPT_CONTACT),
    H("Accept-Encoding", SIP_HDR_ACCEPT_ENCODING),
    H("Accept-Language", SIP_HDR_ACCEPT_LANGUAGE),
    H("Alert-Info", SIP_HDR_ALERT_INFO),
    H("Allow", SIP_HDR_ALLOW),
    H("Allow-Events", SIP_HDR_ALLOW_EVENTS),
    H("Authentication-Info", SIP_HDR_AUTHENTICATION_INFO),
    H("Authorization", SIP_HDR_AUTHORIZATION),
    H("Call-ID", SIP_HDR_CALL_ID),
    H("Call-Info", SIP_HDR_CALL_INFO),
    H("Contact", SIP_HDR_CONTACT),
    H("Content-Disposition", SIP_HDR_CONTENT_DISPOSITION),
    H("Content-Encoding", SIP_HDR_CONTENT_ENCODING),
    H("Content-Language", SIP_HDR_CONTENT_LANGUAGE),
    H("Content-Length", SIP_HDR_CONTENT_LENGTH),
    H("Content-Type", SIP_HDR_CONTENT_TYPE),
    H("CSeq", SIP_HDR_CSEQ),
    H("Date", SIP_HDR_DATE),
    H("Error-Info", SIP_HDR_ERROR_INFO),
    H("Event", SIP_HDR_EVENT),
    H("Expires", SIP_HDR_EXPIRES),
    H("From", SIP_HDR_FROM),
    H("Identity", SIP_HDR_IDENTITY),
    H("In-Reply-To", SIP_HDR_IN_REPLY_TO),
    H("Max-Forwards", SIP_HDR_MAX_FORWARDS),
    H("MIME-Version", SIP_HDR_MIME_VERSION),
    H("Min-Expires", SIP_HDR_MIN_EXPIRES),
    H("Organization", SIP_HDR_ORGANIZATION),
    H("Path", SIP_HDR_PATH),
    H("Priority", SIP_HDR_PRIORITY),
    H("Proxy-Authenticate", SIP_HDR_PROXY_AUTHENTICATE),
    H("Proxy-Authorization", SIP_HDR_PROXY_AUTHORIZATION),
    H("Proxy-Require", SIP_HDR_PROXY_REQUIRE),
    H("Record-Route", SIP_HDR_RECORD_ROUTE),
    H("Refer-To", SIP_HDR_REFER_TO),
    H("Referred-By", SIP_HDR_REFERRED_BY),
    H("Reject-Contact", SIP_HDR_REJECT_CONTACT),
    H("Reply-To", SIP_HDR_REPLY_TO),
    H("Request-Disposition", SIP_HDR_REQUEST_DISPOSITION),
    H("Require", SIP_HDR_REQUIRE),
    H("Retry-After", SIP_HDR_RETRY_AFTER),
    H("Route", SIP_HDR_ROUTE),
    H("Server", SIP_HDR_SERVER),
    H("Session-Expires", SIP_HDR_SESSION_EXPIRES),
    H("Subject", SIP_HDR_SUBJECT),
    H("Supported", SIP_HDR_SUPPORTED),
    H("Timestamp", SIP_HDR_TIMESTAMP),
    H("To", SIP_HDR_TO),
    H("Unsupported", SIP_HDR_UNSUPPORTED),
    H("User-Agent", SIP_HDR_USER_AGENT),
    H("Via", SIP_HDR_VIA),
    H("Warning", SIP_HDR_WARNING),
    H("WWW-Authenticate", SIP_HDR_WWW_AUTHENTICATE),
};

/* RFC 3261 7.3.3 and the IANA "Header Fields" registry: compact forms. */
static enum sip_hdr_id compact_id(unsigned char c)
{
    switch (c | 0x20) {
    case 'a':
        return SIP_HDR_ACCEPT_CONTACT;
    case 'b':
        return SIP_HDR_REFERRED_BY;
    case 'c':
        return SIP_HDR_CONTENT_TYPE;
    case 'd':
        return SIP_HDR_REQUEST_DISPOSITION;
    case 'e':
        return SIP_HDR_CONTENT_ENCODING;
    case 'f':
        return SIP_HDR_FROM;
    case 'i':
        return SIP_HDR_CALL_ID;
    case 'j':
        return SIP_HDR_REJECT_CONTACT;
    case 'k':
        return SIP_HDR_SUPPORTED;
    case 'l':
        return SIP_HDR_CONTENT_LENGTH;
    case 'm':
        return SIP_HDR_CONTACT;
    case 'o':
        return SIP_HDR_EVENT;
    case 'r':
        return SIP_HDR_REFER_TO;
    case 's':
        return SIP_HDR_SUBJECT;
    case 't':
        return SIP_HDR_TO;
    case 'u':
        return SIP_HDR_ALLOW_EVENTS;
    case 'v':
        return SIP_HDR_VIA;
    case 'x':
        return SIP_HDR_SESSION_EXPIRES;
    case 'y':
        return SIP_HDR_IDENTITY;
    default:
        return SIP_HDR_OTHER;
    }
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool caseeq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    }
    return true;
}

/* name (any case) equals the lower-case literal l of n bytes */
static bool lower_eq(const char *name, const char *l, size_t n)
{
    if (lower((unsigned char)name[0]) != (unsigned char)l[0])
        return false;
    for (size_t i = 1; i < n; i++) {
        if (lower((unsigned char)name[i]) != (unsigned char)l[i])
            return false;
    }
    return true;
}

static enum sip_hdr_id lookup_long(const char *name, size_t len)
{
    /* generated from hdr_names[]: candidates by length, then first letter */
    switch (len) {
    case 2:
        if (lower_eq(name, "to", 2))
            return SIP_HDR_TO;
        break;
    case 3:
        if (lower_eq(name, "via", 3))
            return SIP_HDR_VIA;
        break;
    case 4:
        if (lower_eq(name, "cseq", 4))
            return SIP_HDR_CSEQ;
        if (lower_eq(name, "date", 4))
            return SIP_HDR_DATE;
        if (lower_eq(name, "from", 4))
            return SIP_HDR_FROM;
        if (lower_eq(name, "path", 4))
            return SIP_HDR_PATH;
        break;
    case 5:
        if (lower_eq(name, "allow", 5))
            return SIP_HDR_ALLOW;
        if (lower_eq(name, "event", 5))
            return SIP_HDR_EVENT;
        if (lower_eq(name, "route", 5))
            return SIP_HDR_ROUTE;
        break;
    case 6:
        if (lower_eq(name, "accept", 6))
            return SIP_HDR_ACCEPT;
        if (lower_eq(name, "server", 6))
            return SIP_HDR_SERVER;
        break;
    case 7:
        if (lower_eq(name, "call-id", 7))
            return SIP_HDR_CALL_ID;
        if (lower_eq(name, "contact", 7))
            return SIP_HDR_CONTACT;
        if (lower_eq(name, "expires", 7))
            return SIP_HDR_EXPIRES;
        if (lower_eq(name, "require", 7))
            return SIP_HDR_REQUIRE;
        if (lower_eq(name, "subject", 7))
            return SIP_HDR_SUBJECT;
        if (lower_eq(name, "warning", 7))
            return SIP_HDR_WARNING;
        break;
    case 8:
        if (lower_eq(name, "identity", 8))
            return SIP_HDR_IDENTITY;
        if (lower_eq(name, "priority", 8))
            return SIP_HDR_PRIORITY;
        if (lower_eq(name, "refer-to", 8))
            return SIP_HDR_REFER_TO;
        if (lower_eq(name, "reply-to", 8))
            return SIP_HDR_REPLY_TO;
        break;
    case 9:
        if (lower_eq(name, "call-info", 9))
            return SIP_HDR_CALL_INFO;
        if (lower_eq(name, "supported", 9))
            return SIP_HDR_SUPPORTED;
        if (lower_eq(name, "timestamp", 9))
            return SIP_HDR_TIMESTAMP;
        break;
    case 10:
        if (lower_eq(name, "alert-info", 10))
            return SIP_HDR_ALERT_INFO;
        if (lower_eq(name, "error-info", 10))
            return SIP_HDR_ERROR_INFO;
        if (lower_eq(name, "user-agent", 10))
            return SIP_HDR_USER_AGENT;
        break;
    case 11:
        if (lower_eq(name, "in-reply-to", 11))
            return SIP_HDR_IN_REPLY_TO;
        if (lower_eq(name, "min-expires", 11))
            return SIP_HDR_MIN_EXPIRES;
        if (lower_eq(name, "referred-by", 11))
            return SIP_HDR_REFERRED_BY;
        if (lower_eq(name, "retry-after", 11))
            return SIP_HDR_RETRY_AFTER;
        if (lower_eq(name, "unsupported", 11))
            return SIP_HDR_UNSUPPORTED;
        break;
    case 12:
        if (lower_eq(name, "allow-events", 12))
            return SIP_HDR_ALLOW_EVENTS;
        if (lower_eq(name, "content-type", 12))
            return SIP_HDR_CONTENT_TYPE;
        if (lower_eq(name, "max-forwards", 12))
            return SIP_HDR_MAX_FORWARDS;
        if (lower_eq(name, "mime-version", 12))
            return SIP_HDR_MIME_VERSION;
        if (lower_eq(name, "organization", 12))
            return SIP_HDR_ORGANIZATION;
        if (lower_eq(name, "record-route", 12))
            return SIP_HDR_RECORD_ROUTE;
        break;
    case 13:
        if (lower_eq(name, "authorization", 13))
            return SIP_HDR_AUTHORIZATION;
        if (lower_eq(name, "proxy-require", 13))
            return SIP_HDR_PROXY_REQUIRE;
        break;
    case 14:
        if (lower_eq(name, "accept-contact", 14))
            return SIP_HDR_ACCEPT_CONTACT;
        if (lower_eq(name, "content-length", 14))
            return SIP_HDR_CONTENT_LENGTH;
        if (lower_eq(name, "reject-contact", 14))
            return SIP_HDR_REJECT_CONTACT;
        break;
    case 15:
        if (lower_eq(name, "accept-encoding", 15))
            return SIP_HDR_ACCEPT_ENCODING;
        if (lower_eq(name, "accept-language", 15))
            return SIP_HDR_ACCEPT_LANGUAGE;
        if (lower_eq(name, "session-expires", 15))
            return SIP_HDR_SESSION_EXPIRES;
        break;
    case 16:
        if (lower_eq(name, "content-encoding", 16))
            return SIP_HDR_CONTENT_ENCODING;
        if (lower_eq(name, "content-language", 16))
            return SIP_HDR_CONTENT_LANGUAGE;
        if (lower_eq(name, "www-authenticate", 16))
            return SIP_HDR_WWW_AUTHENTICATE;
        break;
    case 18:
        if (lower_eq(name, "proxy-authenticate", 18))
            return SIP_HDR_PROXY_AUTHENTICATE;
        break;
    case 19:
        if (lower_eq(name, "authentication-info", 19))
            return SIP_HDR_AUTHENTICATION_INFO;
        if (lower_eq(name, "content-disposition", 19))
            return SIP_HDR_CONTENT_DISPOSITION;
        if (lower_eq(name, "proxy-authorization", 19))
            return SIP_HDR_PROXY_AUTHORIZATION;
        if (lower_eq(name, "request-disposition", 19))
            return SIP_HDR_REQUEST_DISPOSITION;
        break;
    default:
        break;
    }
    return SIP_HDR_OTHER;
}

enum sip_hdr_id sip_hdr_lookup(const char *name, size_t len)
{
    if (len == 1)
        return compact_id((unsigned char)name[0]);
    return lookup_long(name, len);
}

const char *sip_hdr_name(enum sip_hdr_id id)
{
    for (size_t i = 0; i < sizeof(hdr_names) / sizeof(hdr_names[0]); i++) {
        if (hdr_names[i].id == id)
            return hdr_names[i].name;
    }
    return NULL;
}
static const char *const malformed_phrase[SIP_HDR__COUNT] = {
    [SIP_HDR_OTHER] = "Bad Request - malformed header",
    [SIP_HDR_ACCEPT] = "Bad Request - malformed Accept",
    [SIP_HDR_ACCEPT_CONTACT] = "Bad Request - malformed Accept-Contact",
    [SIP_HDR_ACCEPT_ENCODING] = "Bad Request - malformed Accept-Encoding",
    [SIP_HDR_ACCEPT_LANGUAGE] = "Bad Request - malformed Accept-Language",
    [SIP_HDR_ALERT_INFO] = "Bad Request - malformed Alert-Info",
    [SIP_HDR_ALLOW] = "Bad Request - malformed Allow",
    [SIP_HDR_ALLOW_EVENTS] = "Bad Request - malformed Allow-Events",
    [SIP_HDR_AUTHENTICATION_INFO] = "Bad Request - malformed Authentication-Info",
    [SIP_HDR_AUTHORIZATION] = "Bad Request - malformed Authorization",
    [SIP_HDR_CALL_ID] = "Bad Request - malformed Call-ID",
    [SIP_HDR_CALL_INFO] = "Bad Request - malformed Call-Info",
    [SIP_HDR_CONTACT] = "Bad Request - malformed Contact",
    [SIP_HDR_CONTENT_DISPOSITION] = "Bad Request - malformed Content-Disposition",
    [SIP_HDR_CONTENT_ENCODING] = "Bad Request - malformed Content-Encoding",
    [SIP_HDR_CONTENT_LANGUAGE] = "Bad Request - malformed Content-Language",
    [SIP_HDR_CONTENT_LENGTH] = "Bad Request - malformed Content-Length",
    [SIP_HDR_CONTENT_TYPE] = "Bad Request - malformed Content-Type",
    [SIP_HDR_CSEQ] = "Bad Request - malformed CSeq",
    [SIP_HDR_DATE] = "Bad Request - malformed Date",
    [SIP_HDR_ERROR_INFO] = "Bad Request - malformed Error-Info",
    [SIP_HDR_EVENT] = "Bad Request - malformed Event",
    [SIP_HDR_EXPIRES] = "Bad Request - malformed Expires",
    [SIP_HDR_FROM] = "Bad Request - malformed From",
    [SIP_HDR_IDENTITY] = "Bad Request - malformed Identity",
    [SIP_HDR_IN_REPLY_TO] = "Bad Request - malformed In-Reply-To",
    [SIP_HDR_MAX_FORWARDS] = "Bad Request - malformed Max-Forwards",
    [SIP_HDR_MIME_VERSION] = "Bad Request - malformed MIME-Version",
    [SIP_HDR_MIN_EXPIRES] = "Bad Request - malformed Min-Expires",
    [SIP_HDR_ORGANIZATION] = "Bad Request - malformed Organization",
    [SIP_HDR_PATH] = "Bad Request - malformed Path",
    [SIP_HDR_PRIORITY] = "Bad Request - malformed Priority",
    [SIP_HDR_PROXY_AUTHENTICATE] = "Bad Request - malformed Proxy-Authenticate",
    [SIP_HDR_PROXY_AUTHORIZATION] = "Bad Request - malformed Proxy-Authorization",
    [SIP_HDR_PROXY_REQUIRE] = "Bad Request - malformed Proxy-Require",
    [SIP_HDR_RECORD_ROUTE] = "Bad Request - malformed Record-Route",
    [SIP_HDR_REFER_TO] = "Bad Request - malformed Refer-To",
    [SIP_HDR_REFERRED_BY] = "Bad Request - malformed Referred-By",
    [SIP_HDR_REJECT_CONTACT] = "Bad Request - malformed Reject-Contact",
    [SIP_HDR_REPLY_TO] = "Bad Request - malformed Reply-To",
    [SIP_HDR_REQUEST_DISPOSITION] = "Bad Request - malformed Request-Disposition",
    [SIP_HDR_REQUIRE] = "Bad Request - malformed Require",
    [SIP_HDR_RETRY_AFTER] = "Bad Request - malformed Retry-After",
    [SIP_HDR_ROUTE] = "Bad Request - malformed Route",
    [SIP_HDR_SERVER] = "Bad Request - malformed Server",
    [SIP_HDR_SESSION_EXPIRES] = "Bad Request - malformed Session-Expires",
    [SIP_HDR_SUBJECT] = "Bad Request - malformed Subject",
    [SIP_HDR_SUPPORTED] = "Bad Request - malformed Supported",
    [SIP_HDR_TIMESTAMP] = "Bad Request - malformed Timestamp",
    [SIP_HDR_TO] = "Bad Request - malformed To",
    [SIP_HDR_UNSUPPORTED] = "Bad Request - malformed Unsupported",
    [SIP_HDR_USER_AGENT] = "Bad Request - malformed User-Agent",
    [SIP_HDR_VIA] = "Bad Request - malformed Via",
    [SIP_HDR_WARNING] = "Bad Request - malformed Warning",
    [SIP_HDR_WWW_AUTHENTICATE] = "Bad Request - malformed WWW-Authenticate",
};

/* ---- errors ---- */

static int fail(struct sip_parse_err *err, int rc, enum sip_hdr_id hdr, size_t idx,
                const char *phrase)
{
    if (err != NULL) {
        err->hdr = hdr;
        err->hdr_index = idx;
        err->phrase = phrase;
    }
    return rc;
}

static int fail_hdr(struct sip_parse_err *err, const struct sip_msg *m, size_t idx)
{
    enum sip_hdr_id id = m->hdrs[idx].id;
    return fail(err, -EBADMSG, id, idx, malformed_phrase[id]);
}

size_t sip_msg_leading_crlf(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    return i;
}

/* ---- start line (RFC 3261 7.1, 7.2, 25.1) ---- */

/* "SIP" "/" 1*DIGIT "." 1*DIGIT from p[i]; returns the index past it or 0. */
static size_t scan_version(const char *p, size_t i, size_t n)
{
    size_t d;

    if (n - i < 4 || !caseeq_n(p + i, "SIP/", 4))
        return 0;
    i += 4;
    d = sip__span(p, i, n, SIP__C_DIGIT);
    if (d == 0)
        return 0;
    i += d;
    if (i >= n || p[i] != '.')
        return 0;
    i++;
    d = sip__span(p, i, n, SIP__C_DIGIT);
    if (d == 0)
        return 0;
    return i + d;
}

static int parse_start_line(struct sip_msg *m, const char *p, size_t n)
{
    size_t i, v;

    m->start_line = sip__sl(p, 0, n);
    v = scan_version(p, 0, n);
    if (v != 0) {
        /* RFC 3261 7.2: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
        m->is_request = false;
        m->version = sip__sl(p, 0, v);
        if (v >= n || p[v] != ' ')
            return -EBADMSG;
        i = v + 1;
        if (n - i < 3 || sip__span(p, i, i + 3, SIP__C_DIGIT) != 3)
            return -EBADMSG;
        m->status = (unsigned)(p[i] - '0') * 100 + (unsigned)(p[i + 1] - '0') * 10 +
                    (unsigned)(p[i + 2] - '0');
        if (m->status < 100 || m->status > 699)
            return -EBADMSG;
        i += 3;
        if (i < n && p[i] != ' ')
            return -EBADMSG; /* RFC 4475 3.1.2.19: an overlarge code */
        i = i < n ? i + 1 : n;
        /* Reason-Phrase: reserved / unreserved / escaped / UTF8 / SP / HTAB */
        for (size_t k = i; k < n; k++) {
            unsigned char c = (unsigned char)p[k];
            if ((c < ' ' && c != '\t') || c == 0x7f)
                return -EBADMSG;
        }
        m->reason = sip__sl(p, i, n);
        m->method = m->ruri = sip__sl(p, 0, 0);
        return 0;
    }
    /* RFC 3261 7.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF,
     * exactly one SP each (RFC 4475 3.1.2.9, 3.1.2.10). */
    m->status = 0;
    m->reason = sip__sl(p, 0, 0);
    i = sip__span(p, 0, n, SIP__C_TOKEN);
    if (i == 0 || i >= n || p[i] != ' ')
        return -EBADMSG;
    /* a request, whatever follows: enough to answer 400 */
    m->is_request = true;
    m->method = sip__sl(p, 0, i);
    i++;
    /* Request-URI = SIP-URI / SIPS-URI / absoluteURI: all begin with a scheme */
    size_t u = i, s = sip__span(p, i, n, SIP__C_SCHEME);
    if (s == 0 || !sip__is((unsigned char)p[u], SIP__C_ALNUM) ||
        sip__is((unsigned char)p[u], SIP__C_DIGIT) || u + s >= n || p[u + s] != ':')
        return -EBADMSG; /* RFC 4475 3.1.2.7: <> around the Request-URI */
    while (i < n && (unsigned char)p[i] > ' ' && (unsigned char)p[i] != 0x7f)
        i++;
    if (i >= n || p[i] != ' ')
        return -EBADMSG;
    m->ruri = sip__sl(p, u, i);
    i++;
    v = scan_version(p, i, n);
    if (v != n)
        return -EBADMSG;
    m->version = sip__sl(p, i, n);
    return 0;
}

/* ---- the message ---- */

int sip_msg_parse(struct sip_msg *msg, const char *buf, size_t len, enum sip_msg_mode mode,
                  struct sip_parse_err *err)
{
    const bool dgram = mode == SIP_MSG_DGRAM;
    size_t start, avail, n, i, eol, lf;
    const char *p;
    int deferred = 0;
    enum sip_hdr_id deferred_hdr = SIP_HDR_OTHER;
    const char *deferred_phrase = NULL;
    size_t deferred_idx = SIZE_MAX;
    const char *nl;

    /* RFC 3261 7.5 / RFC 5626 3.5.1: CRLFs before the start line are ignored. */
    start = sip_msg_leading_crlf(buf, len);
    p = buf + start;
    avail = len - start;
    /* Reset first: after any error *msg describes this input, never the last. */
    msg->nhdrs = 0;
    memset(msg->first, 0, sizeof(msg->first));
    msg->content_length = -1;
    msg->body = sip__sl(p, 0, 0);
    msg->head = sip__sl(p, 0, 0);
    msg->method = msg->ruri = msg->version = msg->reason = msg->start_line = sip__sl(p, 0, 0);
    msg->status = 0;
    msg->is_request = false;
    if (dgram && len > SIP_MSG_MAX_SIZE)
        return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
    if (!dgram && start >= SIP_MSG_MAX_SIZE)
        return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
    /* Scan at most the cap: reaching it without the end of the head is -EMSGSIZE. */
    n = avail < SIP_MSG_MAX_SIZE - start ? avail : SIP_MSG_MAX_SIZE - start;

#define INCOMPLETE()                                                                               \
    (dgram ? fail(err, -EBADMSG, SIP_HDR_OTHER, SIZE_MAX, "Bad Request - truncated message")       \
     : n < avail || n == SIP_MSG_MAX_SIZE - start                                                  \
         ? fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large")                      \
         : -EAGAIN)

    if (avail == 0)
        return dgram ? fail(err, -EBADMSG, SIP_HDR_OTHER, SIZE_MAX, "Bad Request - empty message")
                     : -EAGAIN;

    /* Start line. */
    size_t lim = n < SIP_MSG_MAX_LINE + 2 ? n : SIP_MSG_MAX_LINE + 2;
    nl = memchr(p, '\n', lim);
    if (nl == NULL) {
        if (lim == SIP_MSG_MAX_LINE + 2)
            return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
        return INCOMPLETE();
    }
    lf = (size_t)(nl - p);
    eol = (lf > 0 && p[lf - 1] == '\r') ? lf - 1 : lf;
    if (eol > SIP_MSG_MAX_LINE)
        return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
    if (parse_start_line(msg, p, eol) != 0) {
        /* Keep reading the head: a 400 needs its Via and CSeq (RFC 4475
         * 3.1.2.7 to 3.1.2.10 expect one). */
        deferred = -EBADMSG;
        deferred_hdr = SIP_HDR_OTHER;
        deferred_phrase =
            msg->is_request ? "Bad Request - malformed Request-Line" : "malformed Status-Line";
    }

    /* Header lines (RFC 3261 7.3). */
    i = lf + 1;
    for (;;) {
        size_t ls, j, k, ve, name_end;

        if (i >= n)
            return INCOMPLETE();
        if (p[i] == '\r') {
            if (i + 1 >= n)
                return INCOMPLETE();
            if (p[i + 1] != '\n')
                return fail(err, -EBADMSG, SIP_HDR_OTHER, SIZE_MAX,
                            "Bad Request - malformed header");
            i += 2;
            break;
        }
        if (p[i] == '\n') {
            i++;
            break;
        }
        /* a header line starts: the count cap holds before it is complete */
        if (msg->nhdrs == SIP_MSG_MAX_HDRS)
            return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
        ls = i;
        /* field-name = token; HCOLON = *( SP / HTAB ) ":" SWS */
        name_end = i + sip__span(p, i, n, SIP__C_TOKEN);
        j = name_end;
        while (j < n && (p[j] == ' ' || p[j] == '\t'))
            j++;
        if (j >= n) {
            if (j - ls > SIP_MSG_MAX_LINE)
                return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
            return INCOMPLETE();
        }
        if (name_end == ls || p[j] != ':')
            return fail(err, -EBADMSG, SIP_HDR_OTHER, SIZE_MAX, "Bad Request - malformed header");
        j++;
        /* The value runs to a line end not followed by SP/HTAB (folding). */
        k = j;
        for (;;) {
            if (k - ls > SIP_MSG_MAX_LINE)
                return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
            /* the value ends at the first CR or LF (SIP__C_VALUE is every other
             * byte); memchr finds it a word at a time, within the line cap */
            size_t vlim = n - ls > SIP_MSG_MAX_LINE + 1 ? ls + SIP_MSG_MAX_LINE + 1 : n;
            const char *q = memchr(p + k, '\n', vlim - k);
            size_t e = q != NULL ? (size_t)(q - p) : vlim;
            const char *cr = memchr(p + k, '\r', e - k);
            k = cr != NULL ? (size_t)(cr - p) : e;
            if (k - ls > SIP_MSG_MAX_LINE)
                return fail(err, -EMSGSIZE, SIP_HDR_OTHER, SIZE_MAX, "Message Too Large");
            if (k >= n)
                return INCOMPLETE();
            if (p[k] == '\r') {
                if (k + 1 >= n)
                    return INCOMPLETE();
                if (p[k + 1] != '\n')
                    return fail(err, -EBADMSG, SIP_HDR_OTHER, SIZE_MAX,
                                "Bad Request - malformed header");
                ve = k;
                k += 2;
            } else if (p[k] == '\n') {
                ve = k;
                k += 1;
            } else {
                /* a CR not followed by LF */
                return fail(err, -EBADMSG, SIP_HDR_OTHER, SIZE_MAX,
                            "Bad Request - malformed header");
            }
            if (k >= n)
                return INCOMPLETE();
            if (p[k] != ' ' && p[k] != '\t')
                break;
        }
        struct sip_hdr *h = &msg->hdrs[msg->nhdrs];
        h->id = sip_hdr_lookup(p + ls, name_end - ls);
        h->name = sip__sl(p, ls, name_end);
        h->value = sip__trim(sip__sl(p, j, ve));
        h->line = sip__sl(p, ls, k);
        if (msg->first[h->id] == 0)
            msg->first[h->id] = (uint8_t)(msg->nhdrs + 1);
        msg->nhdrs++;

        if (h->id == SIP_HDR_CONTENT_LENGTH && deferred == 0) {
            /* RFC 3261 20.14, 18.3: the framing header.  A bad or repeated one
             * is reported once the head is complete, so the 400 can still be
             * built from the headers that follow (RFC 4475 3.1.2.3, 3.3.9). */
            uint32_t cl;
            int rc = sip_uint_parse(h->value, UINT32_MAX, &cl);
            deferred_hdr = SIP_HDR_CONTENT_LENGTH;
            if (msg->content_length >= 0) {
                deferred = -EBADMSG;
                deferred_phrase = "Bad Request - multiple Content-Length";
                deferred_idx = msg->nhdrs - 1;
            } else if (rc != 0) {
                deferred = -EBADMSG;
                deferred_phrase = malformed_phrase[SIP_HDR_CONTENT_LENGTH];
                deferred_idx = msg->nhdrs - 1;
            } else {
                msg->content_length = cl;
            }
        }
        i = k;
    }
    msg->head = sip__sl(p, 0, i);

    if (deferred != 0)
        return fail(err, deferred, deferred_hdr, deferred_idx, deferred_phrase);

    /* Body (RFC 3261 18.3). */
    if (!dgram) {
        if (msg->content_length < 0)
            return fail(err, -EBADMSG, SIP_HDR_CONTENT_LENGTH, SIZE_MAX,
                        "Bad Request - missing Content-Length");
        if ((uint64_t)msg->content_length > SIP_MSG_MAX_SIZE - start - i)
            return fail(err, -EMSGSIZE, SIP_HDR_CONTENT_LENGTH, SIZE_MAX, "Message Too Large");
        if (avail - i < (uint64_t)msg->content_length)
            return -EAGAIN;
        msg->body = sip__sl(p, i, i + (size_t)msg->content_length);
        return (int)(start + i + (size_t)msg->content_length);
    }
    if (msg->content_length < 0) {
        msg->body = sip__sl(p, i, avail);
        return (int)len;
    }
    if ((uint64_t)msg->content_length > avail - i)
        return fail(err, -EBADMSG, SIP_HDR_CONTENT_LENGTH, SIZE_MAX,
                    "Bad Request - Content-Length larger than the message");
    /* Octets past Content-Length in a datagram are discarded (RFC 4475 3.1.1.8). */
    msg->body = sip__sl(p, i, i + (size_t)msg->content_length);
    return (int)(start + i + (size_t)msg->content_length);
#undef INCOMPLETE
}

/* ---- header access ---- */

const struct sip_hdr *sip_msg_hdr(const struct sip_msg *msg, enum sip_hdr_id id)
{
    if ((unsigned)id >= SIP_HDR__COUNT || msg->first[id] == 0)
        return NULL;
    return &msg->hdrs[msg->first[id] - 1];
}

const struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *msg, struct p2p_slice name)
{
    for (size_t i = 0; i < msg->nhdrs; i++) {
        if (p2p_slice_caseeq(msg->hdrs[i].name, name))
            return &msg->hdrs[i];
    }
    return NULL;
}

size_t sip_msg_hdr_count(const struct sip_msg *msg, enum sip_hdr_id id)
{
    size_t c = 0;

    if ((unsigned)id >= SIP_HDR__COUNT || msg->first[id] == 0)
        return 0;
    for (size_t i = msg->first[id] - 1u; i < msg->nhdrs; i++)
        c += msg->hdrs[i].id == id;
    return c;
}

bool sip_hdr_is_list(enum sip_hdr_id id)
{
    /* RFC 3261 7.3.1: headers whose grammar is a comma-separated list */
    switch (id) {
    case SIP_HDR_ACCEPT:
    case SIP_HDR_ACCEPT_CONTACT:
    case SIP_HDR_ACCEPT_ENCODING:
    case SIP_HDR_ACCEPT_LANGUAGE:
    case SIP_HDR_ALERT_INFO:
    case SIP_HDR_ALLOW:
    case SIP_HDR_ALLOW_EVENTS:
    case SIP_HDR_CALL_INFO:
    case SIP_HDR_CONTACT:
    case SIP_HDR_CONTENT_ENCODING:
    case SIP_HDR_CONTENT_LANGUAGE:
    case SIP_HDR_ERROR_INFO:
    case SIP_HDR_IN_REPLY_TO:
    case SIP_HDR_PATH:
    case SIP_HDR_PROXY_REQUIRE:
    case SIP_HDR_RECORD_ROUTE:
    case SIP_HDR_REJECT_CONTACT:
    case SIP_HDR_REQUEST_DISPOSITION:
    case SIP_HDR_REQUIRE:
    case SIP_HDR_ROUTE:
    case SIP_HDR_SUPPORTED:
    case SIP_HDR_UNSUPPORTED:
    case SIP_HDR_VIA:
    case SIP_HDR_WARNING:
        return true;
    default:
        return false;
    }
}

bool sip_list_next(struct p2p_slice *rest, struct p2p_slice *elem)
{
    const char *p = rest->p;
    size_t n = rest->len, i = 0, s, e;
    int angle = 0;

    for (;;) {
        i = sip__skip_ws(p, i, n);
        if (i < n && p[i] == ',') {
            i++;
            continue;
        }
        break;
    }
    if (i >= n) {
        rest->p += n;
        rest->len = 0;
        return false;
    }
    s = i;
    while (i < n) {
        while (i < n && !sip__is((unsigned char)p[i], SIP__C_LSEP))
            i++;
        if (i >= n)
            break;
        char c = p[i];
        if (c == '"') {
            i = sip__skip_quoted(p, i, n);
            if (i > n)
                i = n;
            continue;
        }
        if (c == '<')
            angle = 1;
        else if (c == '>')
            angle = 0;
        else if (c == ',' && !angle)
            break;
        i++;
    }
    e = i;
    *elem = sip__trim(sip__sl(p, s, e));
    if (i < n)
        i++;
    rest->p += i;
    rest->len -= i;
    return true;
}

void sip_hdr_iter_init(struct sip_hdr_iter *it, const struct sip_msg *msg, enum sip_hdr_id id)
{
    it->msg = msg;
    it->id = id;
    it->hdr = ((unsigned)id < SIP_HDR__COUNT && msg->first[id]) ? msg->first[id] - 1u : msg->nhdrs;
    it->rest = it->hdr < msg->nhdrs ? msg->hdrs[it->hdr].value : sip__sl("", 0, 0);
    it->started = false;
}

bool sip_hdr_iter_next(struct sip_hdr_iter *it, struct p2p_slice *value)
{
    const struct sip_msg *m = it->msg;

    while (it->hdr < m->nhdrs) {
        if (m->hdrs[it->hdr].id == it->id) {
            if (!it->started) {
                it->rest = m->hdrs[it->hdr].value;
                it->started = true;
                if (!sip_hdr_is_list(it->id)) {
                    *value = it->rest;
                    it->rest.len = 0;
                    return true;
                }
            }
            if (sip_list_next(&it->rest, value))
                return true;
        }
        it->hdr++;
        it->started = false;
    }
    return false;
}

/* ---- validation (what a proxy relies on) ---- */

/* RFC 3261 25.1: callid = word [ "@" word ] */
static bool callid_ok(struct p2p_slice v)
{
    size_t i = sip__span(v.p, 0, v.len, SIP__C_WORD);
    if (i == 0)
        return false;
    if (i < v.len && v.p[i] == '@') {
        size_t k = sip__span(v.p, i + 1, v.len, SIP__C_WORD);
        if (k == 0)
            return false;
        i += 1 + k;
    }
    return i == v.len;
}

/* RFC 3261 20.17 / 25.1: SIP-date = rfc1123-date, "GMT" only. */
static bool date_ok(struct p2p_slice v)
{
    static const char *const wk = "MonTueWedThuFriSatSun";
    static const char *const mo = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const char *p = v.p;
    bool found = false;

    /* "Sat, 13 Nov 2010 23:29:00 GMT" */
    if (v.len != 29)
        return false;
    for (int k = 0; k < 7; k++)
        found |= memcmp(p, wk + 3 * k, 3) == 0;
    if (!found || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[19] != ':' || p[22] != ':' || p[25] != ' ' || memcmp(p + 26, "GMT", 3) != 0)
        return false;
    found = false;
    for (int k = 0; k < 12; k++)
        found |= memcmp(p + 8, mo + 3 * k, 3) == 0;
    static const unsigned char digits[] = {5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24};
    for (size_t k = 0; k < sizeof(digits); k++)
        found &= sip__is((unsigned char)p[digits[k]], SIP__C_DIGIT);
    return found;
}

/* A URI in a From/To/Contact/Route: sip/sips must parse; others keep their shape. */
static bool hdr_uri_ok(struct p2p_slice uri)
{
    struct sip_uri u;
    int rc = sip_uri_parse(uri, &u);
    return rc == 0 || rc == -EPROTONOSUPPORT;
}

int sip_msg_validate(const struct sip_msg *msg, struct sip_parse_err *err)
{
    static const enum sip_hdr_id required[] = {SIP_HDR_FROM, SIP_HDR_TO, SIP_HDR_CALL_ID,
                                               SIP_HDR_CSEQ};
    static const char *const missing[] = {"Bad Request - missing From", "Bad Request - missing To",
                                          "Bad Request - missing Call-ID",
                                          "Bad Request - missing CSeq"};
    static const enum sip_hdr_id single[] = {
        SIP_HDR_FROM,         SIP_HDR_TO,           SIP_HDR_CALL_ID,
        SIP_HDR_CSEQ,         SIP_HDR_MAX_FORWARDS, SIP_HDR_CONTENT_LENGTH,
        SIP_HDR_CONTENT_TYPE, SIP_HDR_EXPIRES,      SIP_HDR_MIN_EXPIRES};
    static const char *const multiple[] = {
        "Bad Request - multiple From",         "Bad Request - multiple To",
        "Bad Request - multiple Call-ID",      "Bad Request - multiple CSeq",
        "Bad Request - multiple Max-Forwards", "Bad Request - multiple Content-Length",
        "Bad Request - multiple Content-Type", "Bad Request - multiple Expires",
        "Bad Request - multiple Min-Expires"};
    struct p2p_slice v;

    /* RFC 3261 8.1.1: the mandatory headers; RFC 4475 3.3.1 */
    if (msg->first[SIP_HDR_VIA] == 0)
        return fail(err, -EBADMSG, SIP_HDR_VIA, SIZE_MAX, "Bad Request - missing Via");
    for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++) {
        if (msg->first[required[k]] == 0)
            return fail(err, -EBADMSG, required[k], SIZE_MAX, missing[k]);
    }
    /* RFC 3261 7.3.1: single-valued headers appear once (RFC 4475 3.3.8) */
    for (size_t k = 0; k < sizeof(single) / sizeof(single[0]); k++) {
        if (sip_msg_hdr_count(msg, single[k]) > 1) {
            size_t idx = msg->first[single[k]] - 1u;
            while (msg->hdrs[++idx].id != single[k])
                ;
            return fail(err, -EBADMSG, single[k], idx, multiple[k]);
        }
    }
    for (size_t i = 0; i < msg->nhdrs; i++) {
        const struct sip_hdr *h = &msg->hdrs[i];
        switch (h->id) {
        case SIP_HDR_VIA:
        case SIP_HDR_CONTACT:
        case SIP_HDR_ROUTE:
        case SIP_HDR_RECORD_ROUTE: {
            struct p2p_slice rest = h->value;
            bool any = false;
            while (sip_list_next(&rest, &v)) {
                any = true;
                if (h->id == SIP_HDR_VIA) {
                    struct sip_via via;
                    if (sip_via_parse(v, &via) != 0)
                        return fail_hdr(err, msg, i);
                } else if (h->id == SIP_HDR_CONTACT) {
                    struct sip_contact c;
                    if (sip_contact_parse(v, &c) != 0 || (!c.star && !hdr_uri_ok(c.addr.uri)))
                        return fail_hdr(err, msg, i);
                } else {
                    struct sip_addr a;
                    if (sip_addr_parse(v, &a) != 0 || !a.angle || !hdr_uri_ok(a.uri))
                        return fail_hdr(err, msg, i);
                }
            }
            if (!any)
                return fail_hdr(err, msg, i);
            break;
        }
        case SIP_HDR_FROM:
        case SIP_HDR_TO: {
            struct sip_addr a;
            if (sip_addr_parse(h->value, &a) != 0 || !hdr_uri_ok(a.uri))
                return fail_hdr(err, msg, i);
            break;
        }
        case SIP_HDR_CALL_ID:
            if (!callid_ok(h->value))
                return fail_hdr(err, msg, i);
            break;
        case SIP_HDR_CSEQ: {
            struct sip_cseq cs;
            /* RFC 4475 3.1.2.4: an overlarge CSeq */
            if (sip_cseq_parse(h->value, &cs) != 0)
                return fail_hdr(err, msg, i);
            /* RFC 3261 8.1.1.5: the CSeq method matches the request's
             * (RFC 4475 3.1.2.17, 3.1.2.18) */
            if (msg->is_request && !p2p_slice_eq(cs.method, msg->method))
                return fail(err, -EBADMSG, SIP_HDR_CSEQ, i,
                            "Bad Request - CSeq method does not match");
            break;
        }
        case SIP_HDR_MAX_FORWARDS: {
            uint32_t mf;
            if (sip_uint_parse(h->value, 255, &mf) != 0)
                return fail_hdr(err, msg, i);
            break;
        }
        case SIP_HDR_EXPIRES:
        case SIP_HDR_MIN_EXPIRES: {
            uint32_t e;
            /* an overlarge delta-seconds means 2^32-1 (RFC 3261 20.19) */
            int rc = sip_uint_parse(h->value, UINT32_MAX, &e);
            if (rc != 0 && rc != -ERANGE)
                return fail_hdr(err, msg, i);
            break;
        }
        case SIP_HDR_CONTENT_TYPE: {
            struct sip_media_type mt;
            if (sip_media_type_parse(h->value, &mt) != 0)
                return fail_hdr(err, msg, i);
            break;
        }
        case SIP_HDR_DATE:
            if (!date_ok(h->value)) /* RFC 4475 3.1.2.12 */
                return fail_hdr(err, msg, i);
            break;
        default:
            break;
        }
    }
    if (msg->is_request) {
        struct sip_uri u;
        int rc = sip_uri_parse(msg->ruri, &u);
        /* RFC 3261 19.1.1: no headers in a Request-URI (RFC 4475 3.1.2.11);
         * an unknown scheme is the application's 416. */
        if ((rc != 0 && rc != -EPROTONOSUPPORT) || (rc == 0 && u.headers.p != NULL))
            return fail(err, -EBADMSG, SIP_HDR_OTHER, SIZE_MAX,
                        "Bad Request - malformed Request-URI");
    }
    return 0;
}

bool sip_msg_answerable(const struct sip_msg *msg)
{
    /* The client matches a response by the branch of the top Via and the CSeq
     * method (RFC 3261 17.1.3), so both headers must be there to copy; From,
     * To and Call-ID are copied when present.  A top Via too broken to parse
     * (RFC 4475 3.1.2.1) is copied as it is, and the 400 goes back to the
     * source address of the request, as RFC 3581 does for rport. */
    return msg->is_request && msg->method.len > 0 && msg->first[SIP_HDR_VIA] != 0 &&
           msg->first[SIP_HDR_CSEQ] != 0;
}

bool sip_msg_version_ok(const struct sip_msg *msg)
{
    return p2p_slice_caseeq_cstr(msg->version, "SIP/2.0");
}
