/*
 * sip_msg.h: the SIP message parser (RFC 3261 sections 7, 18.3, 20, 25).
 *
 * One parser for requests and responses, for datagrams and for streams.  Input is
 * (buf, len) with no NUL terminator assumed; output is slices into buf, so a parsed
 * struct sip_msg is valid only as long as buf.  Nothing allocates.
 *
 * Two layers:
 *  - sip_msg_parse() splits the start line, the header lines (names mapped to an
 *    enum, compact forms included, folded lines kept inside the value slice) and the
 *    body, frames the message (Content-Length) and enforces the hard caps.
 *  - typed parsers take one header value (a slice) and fill a small struct of slices:
 *    Via, name-addr (From/To/Route/Record-Route/Contact), CSeq, Content-Type, Digest
 *    credentials and challenges, numbers, token lists.  An iterator walks the
 *    comma-separated values of every header of one id (RFC 3261 7.3.1), never
 *    splitting inside a quoted string or a <...> URI.
 *  - sip_msg_validate() runs the typed parsers over the headers a proxy relies on,
 *    and says which one is wrong, so a 400 can name it (RFC 3261 8.2, 16.3).
 *
 * Header values may contain folded lines (CRLF followed by SP/HTAB): every typed
 * parser treats CR and LF as linear white space, which is what LWS means there
 * (RFC 3261 25.1).  Quoted strings are returned without their quotes and with the
 * backslash escapes left in place; sip_unquote() removes them when needed.
 *
 * Convention for optional slices in typed structs: present iff .p != NULL (an
 * empty quoted string is present with len 0).
 */
#ifndef P2P_SIP_MSG_H
#define P2P_SIP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/slice.h"

/* Hard caps, enforced even on incomplete input. */
#define SIP_MSG_MAX_SIZE 65536u /* whole message, head + body */
#define SIP_MSG_MAX_HDRS 128u   /* header lines (a folded line counts once) */
#define SIP_MSG_MAX_LINE 8192u  /* start line or one (unfolded) header line */

enum sip_msg_mode {
    /* UDP: one message per datagram; the body is the rest of the datagram
     * (RFC 3261 18.3: a Content-Length larger than what arrived is an error, a
     * smaller one truncates the body).  Never returns -EAGAIN. */
    SIP_MSG_DGRAM,
    /* TCP/TLS: framing by Content-Length, which is then mandatory (RFC 3261 18.3);
     * leading CRLFs (RFC 5626 3.5.1 keep-alives) are skipped and counted as
     * consumed; returns -EAGAIN until the whole message is in buf. */
    SIP_MSG_STREAM,
};

/* Known header names.  SIP_HDR_OTHER is any other (kept as written). */
enum sip_hdr_id {
    SIP_HDR_OTHER = 0,
    SIP_HDR_ACCEPT,
    SIP_HDR_ACCEPT_CONTACT, /* a */
    SIP_HDR_ACCEPT_ENCODING,
    SIP_HDR_ACCEPT_LANGUAGE,
    SIP_HDR_ALERT_INFO,
    SIP_HDR_ALLOW,
    SIP_HDR_ALLOW_EVENTS, /* u */
    SIP_HDR_AUTHENTICATION_INFO,
    SIP_HDR_AUTHORIZATION,
    SIP_HDR_CALL_ID, /* i */
    SIP_HDR_CALL_INFO,
    SIP_HDR_CONTACT, /* m */
    SIP_HDR_CONTENT_DISPOSITION,
    SIP_HDR_CONTENT_ENCODING, /* e */
    SIP_HDR_CONTENT_LANGUAGE,
    SIP_HDR_CONTENT_LENGTH, /* l */
    SIP_HDR_CONTENT_TYPE,   /* c */
    SIP_HDR_CSEQ,
    SIP_HDR_DATE,
    SIP_HDR_ERROR_INFO,
    SIP_HDR_EVENT, /* o */
    SIP_HDR_EXPIRES,
    SIP_HDR_FROM,     /* f */
    SIP_HDR_IDENTITY, /* y */
    SIP_HDR_IN_REPLY_TO,
    SIP_HDR_MAX_FORWARDS,
    SIP_HDR_MIME_VERSION,
    SIP_HDR_MIN_EXPIRES,
    SIP_HDR_ORGANIZATION,
    SIP_HDR_PATH,
    SIP_HDR_PRIORITY,
    SIP_HDR_PROXY_AUTHENTICATE,
    SIP_HDR_PROXY_AUTHORIZATION,
    SIP_HDR_PROXY_REQUIRE,
    SIP_HDR_RECORD_ROUTE,
    SIP_HDR_REFER_TO,       /* r */
    SIP_HDR_REFERRED_BY,    /* b */
    SIP_HDR_REJECT_CONTACT, /* j */
    SIP_HDR_REPLY_TO,
    SIP_HDR_REQUEST_DISPOSITION, /* d */
    SIP_HDR_REQUIRE,
    SIP_HDR_RETRY_AFTER,
    SIP_HDR_ROUTE,
    SIP_HDR_SERVER,
    SIP_HDR_SESSION_EXPIRES, /* x */
    SIP_HDR_SUBJECT,         /* s */
    SIP_HDR_SUPPORTED,       /* k */
    SIP_HDR_TIMESTAMP,
    SIP_HDR_TO, /* t */
    SIP_HDR_UNSUPPORTED,
    SIP_HDR_USER_AGENT,
    SIP_HDR_VIA, /* v */
    SIP_HDR_WARNING,
    SIP_HDR_WWW_AUTHENTICATE,
    SIP_HDR__COUNT
};

struct sip_hdr {
    enum sip_hdr_id id;
    struct p2p_slice name;  /* as written, without trailing white space */
    struct p2p_slice value; /* trimmed; may contain folded line breaks */
    struct p2p_slice line;  /* the whole header line(s), CRLF included */
};

struct sip_msg {
    bool is_request;
    struct p2p_slice start_line; /* without CRLF */
    /* requests */
    struct p2p_slice method;
    struct p2p_slice ruri;
    /* both: "SIP/2.0" as written (not checked here: 505 is the application's) */
    struct p2p_slice version;
    /* responses */
    unsigned status; /* 100..699 */
    struct p2p_slice reason;

    size_t nhdrs;
    struct sip_hdr hdrs[SIP_MSG_MAX_HDRS];
    uint8_t first[SIP_HDR__COUNT]; /* index + 1 of the first header of each id, 0 none */

    struct p2p_slice head; /* start line through the empty line (CRLF CRLF included) */
    struct p2p_slice body;
    int64_t content_length; /* -1 when absent */
};

/* What went wrong, for logs and for the reason phrase of a 400. */
struct sip_parse_err {
    enum sip_hdr_id hdr; /* header at fault, SIP_HDR_OTHER for the start line or framing */
    size_t hdr_index;    /* index into msg->hdrs when a header line is at fault, else SIZE_MAX */
    const char *phrase;  /* static string, e.g. "Bad Request - malformed Via" */
};

/*
 * Parses one message from buf.  Returns the number of bytes consumed (> 0; in
 * stream mode leading CRLFs included; in datagram mode the message's own length,
 * the octets past Content-Length being discarded, RFC 4475 3.1.1.8), -EAGAIN
 * (stream mode: incomplete), -EBADMSG (malformed) or -EMSGSIZE (a cap passed,
 * also on incomplete input).  On success *msg is filled.  On -EBADMSG/-EMSGSIZE,
 * *err (may be NULL) says why, and *msg describes this input as far as it was
 * read: after a malformed start line or Content-Length the rest of the head is
 * still split into headers, so that sip_msg_answerable() can decide whether a
 * 400 can be built from it (msg->head and msg->body are then empty); on -EAGAIN
 * *msg is unspecified.  Only the framing header is checked here (Content-Length
 * must be one number); the rest is sip_msg_validate()'s job.
 */
int sip_msg_parse(struct sip_msg *msg, const char *buf, size_t len, enum sip_msg_mode mode,
                  struct sip_parse_err *err);

/* Number of leading CR/LF bytes: an RFC 5626 keep-alive ping is "\r\n\r\n". */
size_t sip_msg_leading_crlf(const char *buf, size_t len);

/*
 * Checks what a proxy or registrar relies on: exactly one From, To, Call-ID, CSeq
 * (and at most one Max-Forwards, Content-Length, Content-Type, Expires), at least
 * one Via, every Via value, From/To name-addr, CSeq number and method (for a
 * request, the CSeq method equals the request method, RFC 3261 8.1.1.5),
 * Max-Forwards 0..255, Contact values, the Request-URI's syntax for sip/sips, and
 * Expires.  Returns 0 or -EBADMSG with *err (may be NULL) naming the header.
 * Does not check the SIP version, methods, Require/Proxy-Require or schemes:
 * those answers (505, 405, 420, 416) belong to the layers above.
 */
int sip_msg_validate(const struct sip_msg *msg, struct sip_parse_err *err);

/*
 * After a failed parse or validate: true when the message is a request with a
 * request line, a Via and a CSeq header, so that a 400 can be sent back and
 * matched by the client (RFC 3261 8.2, 16.3, 17.1.3).  RFC 4475 3.3.1 asks for a
 * 400 even without From, To and Call-ID, which the response then copies only
 * when present; with a top Via too broken to parse (RFC 4475 3.1.2.1) the 400
 * goes to the request's source address.  Otherwise the message is dropped.
 */
bool sip_msg_answerable(const struct sip_msg *msg);

/* True when version is "SIP/2.0" (case-insensitive), else the answer is 505. */
bool sip_msg_version_ok(const struct sip_msg *msg);

/* Maps a header name (long or compact form, any case) to its id. */
enum sip_hdr_id sip_hdr_lookup(const char *name, size_t len);

/* Canonical long name of a known id ("Via"), NULL for SIP_HDR_OTHER. */
const char *sip_hdr_name(enum sip_hdr_id id);

/* First header with this id, or NULL. */
const struct sip_hdr *sip_msg_hdr(const struct sip_msg *msg, enum sip_hdr_id id);

/* First header named name (case-insensitive; for unknown headers), or NULL. */
const struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *msg, struct p2p_slice name);

/* Number of header lines with this id. */
size_t sip_msg_hdr_count(const struct sip_msg *msg, enum sip_hdr_id id);

/*
 * Iterator over the comma-separated values of every header with one id, in
 * message order (RFC 3261 7.3.1).  For ids whose grammar is not a list (Call-ID,
 * CSeq, Date, the authentication headers, unknown headers, ...) each header line
 * gives one value.  Values are trimmed; empty list elements are skipped.
 */
struct sip_hdr_iter {
    const struct sip_msg *msg;
    enum sip_hdr_id id;
    size_t hdr;            /* index in msg->hdrs of the header of the last value */
    struct p2p_slice rest; /* unread part of that header's value */
    bool started;
};

void sip_hdr_iter_init(struct sip_hdr_iter *it, const struct sip_msg *msg, enum sip_hdr_id id);

/* Writes the next value and returns true, or returns false at the end. */
bool sip_hdr_iter_next(struct sip_hdr_iter *it, struct p2p_slice *value);

/* True when this id's grammar is a comma-separated list. */
bool sip_hdr_is_list(enum sip_hdr_id id);

/*
 * Splits the next comma-separated element off *rest (quotes and <> respected).
 * Returns false when *rest holds no more elements.
 */
bool sip_list_next(struct p2p_slice *rest, struct p2p_slice *elem);

/* ---- generic parameters: ;name[=value] ---- */

struct sip_param {
    struct p2p_slice name;
    struct p2p_slice value; /* without quotes when quoted; .p == NULL when no '=' */
};

/*
 * Takes the next ";name[=value]" off *rest (leading white space and ';' skipped).
 * Returns 1 and fills *out, 0 at the end, -EBADMSG on bad syntax.
 */
int sip_param_next(struct p2p_slice *rest, struct sip_param *out);

/* Finds a parameter by name (case-insensitive) in a ";a=b;c" list.
 * Returns true and fills *value (may be NULL) when present. */
bool sip_param_find(struct p2p_slice params, const char *name, struct p2p_slice *value);

/* ---- Via (RFC 3261 20.42, RFC 3581) ---- */

struct sip_via {
    struct p2p_slice protocol;  /* "SIP" (SWS may surround the '/', RFC 3261 25.1) */
    struct p2p_slice version;   /* "2.0" */
    struct p2p_slice transport; /* "UDP", "TCP", ... */
    struct p2p_slice host;      /* IPv6 references keep their brackets */
    uint16_t port;              /* 0 when absent */
    struct p2p_slice branch;
    struct p2p_slice received;
    struct p2p_slice maddr;
    struct p2p_slice ttl;
    bool rport;               /* rport present */
    uint16_t rport_value;     /* 0 when written without a value */
    struct p2p_slice rport_p; /* the whole "rport[=n]" parameter, for rewriting */
    struct p2p_slice params;  /* everything from the first ';' (other params) */
    struct p2p_slice value;   /* the whole via-parm */
};

/* Parses one via-parm (one element of a Via list).  Returns 0 or -EBADMSG. */
int sip_via_parse(struct p2p_slice value, struct sip_via *out);

/* ---- name-addr / addr-spec (From, To, Contact, Route, Record-Route) ---- */

struct sip_addr {
    struct p2p_slice display; /* without quotes; escapes left in place */
    bool display_quoted;
    struct p2p_slice uri;    /* inside <> or the bare addr-spec */
    bool angle;              /* the URI was in <> */
    struct p2p_slice tag;    /* tag parameter value (From/To) */
    struct p2p_slice params; /* header parameters after the address, from ';' */
};

/*
 * Parses name-addr / addr-spec followed by header params.  With a bare
 * addr-spec, ';' parameters belong to the header (RFC 3261 20.10), and the URI
 * must not contain ',', ';' or '?' there.  Returns 0 or -EBADMSG.
 */
int sip_addr_parse(struct p2p_slice value, struct sip_addr *out);

/* ---- Contact (RFC 3261 20.10) ---- */

struct sip_contact {
    bool star; /* "*" (only in a REGISTER with Expires: 0) */
    struct sip_addr addr;
    bool has_expires;
    uint32_t expires; /* capped at 2^32-1 (RFC 3261 20.19 delta-seconds) */
    bool has_q;
    uint16_t q; /* q-value times 1000, 0..1000 */
};

int sip_contact_parse(struct p2p_slice value, struct sip_contact *out);

/* ---- CSeq (RFC 3261 20.16) ---- */

struct sip_cseq {
    uint32_t num; /* less than 2^31 (RFC 3261 8.1.1.5) */
    struct p2p_slice method;
};

int sip_cseq_parse(struct p2p_slice value, struct sip_cseq *out);

/*
 * A decimal header value (Max-Forwards, Expires, Min-Expires, Content-Length),
 * white space around allowed.  Returns 0, -EBADMSG or -ERANGE above max.
 */
int sip_uint_parse(struct p2p_slice value, uint32_t max, uint32_t *out);

/* ---- Content-Type (RFC 3261 20.15) ---- */

struct sip_media_type {
    struct p2p_slice type, subtype;
    struct p2p_slice params; /* from the first ';' */
};

int sip_media_type_parse(struct p2p_slice value, struct sip_media_type *out);

/* True when a token-list header of this id (Supported, Require, Proxy-Require,
 * Allow, Unsupported...) names token, case-insensitively. */
bool sip_msg_has_token(const struct sip_msg *msg, enum sip_hdr_id id, const char *token);

/* A token (RFC 3261 25.1) fills the whole slice. */
bool sip_is_token(struct p2p_slice s);

/* ---- Digest credentials and challenges (RFC 3261 20.7, 20.27, 22.4; RFC 7616) ---- */

struct sip_auth {
    struct p2p_slice scheme; /* "Digest" (compare case-insensitively) */
    struct p2p_slice username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc,
        domain, stale, userhash;
    struct p2p_slice params; /* every auth-param as written, for the unknown ones */
};

/*
 * Parses Authorization / Proxy-Authorization (credentials) and WWW-Authenticate /
 * Proxy-Authenticate (challenge) values: scheme, then comma-separated
 * name=token / name="quoted" pairs.  Quoted values come without quotes (escapes
 * left; use sip_unquote()).  Known names are matched case-insensitively; a
 * repeated known name is -EBADMSG.  Returns 0 or -EBADMSG.
 */
int sip_auth_parse(struct p2p_slice value, struct sip_auth *out);

/*
 * Iterates the auth-params of sip_auth.params: returns 1 with name and value
 * (unquoted), 0 at the end, -EBADMSG.
 */
int sip_auth_param_next(struct p2p_slice *rest, struct sip_param *out);

/*
 * Copies s into dst removing quoted-pair backslashes, NUL-terminated.
 * Returns the length, or -ENOSPC when it does not fit.
 */
int sip_unquote(struct p2p_slice s, char *dst, size_t size);

#endif
