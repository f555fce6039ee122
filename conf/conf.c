/*
 * conf.c: the configuration keys, their values, and the file parser.
 *
 * Design.  One table (keys[]) lists every key with its kind, its place in struct conf
 * and its limits.  A file line, a command-line option and conf_set() all end in
 * set_value(), so a key is checked by one piece of code whatever its source.  The
 * parser is a line loop over (buf, len) with no NUL terminator assumed; it parses into
 * a copy and copies back only when the whole file is good, so a bad reload never
 * leaves a half-applied configuration.
 *
 * Invariants.  Every list is capped (CONF_*_MAX); a line longer than CONF_LINE_MAX or
 * containing a NUL byte is an error, never truncated.  Error messages name the key and
 * quote the offending text, cut to CONF_QUOTE_MAX bytes so any message fits in
 * CONF_ERR_MAX.
 */
#include "p2p/errmsg.h"
#include "p2p/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "p2p/slice.h"

#define CONF_QUOTE_MAX 64 /* bytes of an offending value quoted in an error */

enum key_kind {
    K_PORT,        /* uint16_t, 1..65535 (min 0 allowed through lo) */
    K_U32,         /* uint32_t in [lo, hi] */
    K_SECONDS_OFF, /* uint32_t: "off" or 0 = 0, else seconds in [lo, hi] */
    K_BOOL,
    K_PATH,   /* char[CONF_PATH_MAX]; may be empty */
    K_REALM,  /* char[CONF_REALM_MAX] */
    K_LISTEN, /* struct conf_sip listen list */
    K_TRANSPORTS,
    K_DOMAINS,
    K_LOGLEVEL,
    K_REPLY,   /* uint16_t: 403 or 404 */
    K_SERVERS, /* struct conf_p2p servers list */
    K_DIGEST,  /* unsigned: enum conf_digest_alg bits */
    K_METRICS, /* struct conf_metrics: "", PORT, ADDR:PORT or [ADDR]:PORT */
};

struct key {
    const char *name;
    enum key_kind kind;
    size_t off;
    uint32_t lo, hi;
};

#define OFF(field) offsetof(struct conf, field)

static const struct key keys[] = {
    {"data_dir", K_PATH, OFF(data_dir), 0, 0},
    {"control", K_PATH, OFF(control), 0, 0},
    {"metrics_listen", K_METRICS, 0, 0, 0},
    {"sip.port", K_PORT, OFF(sip.port), 1, 65535},
    {"sip.listen", K_LISTEN, 0, 0, 0},
    {"sip.transports", K_TRANSPORTS, OFF(sip.transports), 0, 0},
    {"sip.domain", K_DOMAINS, 0, 0, 0},
    {"registrar.min_expires", K_U32, OFF(registrar.min_expires), 1, 86400},
    {"registrar.max_expires", K_U32, OFF(registrar.max_expires), 1, 86400 * 7},
    {"registrar.default_expires", K_U32, OFF(registrar.default_expires), 1, 86400 * 7},
    {"registrar.max_contacts", K_U32, OFF(registrar.max_contacts), 1, 16},
    {"registrar.max_aors", K_U32, OFF(registrar.max_aors), 1, 10000000},
    {"registrar.options_keepalive", K_SECONDS_OFF, OFF(registrar.options_keepalive), 5, 3600},
    {"registrar.keepalive_remove", K_BOOL, OFF(registrar.keepalive_remove), 0, 0},
    {"proxy.forward_foreign", K_BOOL, OFF(proxy.forward_foreign), 0, 0},
    {"proxy.foreign_reply", K_REPLY, OFF(proxy.foreign_reply), 0, 0},
    {"timers.t1", K_U32, OFF(timers.t1_ms), 10, 60000},
    {"timers.t2", K_U32, OFF(timers.t2_ms), 10, 600000},
    {"timers.t4", K_U32, OFF(timers.t4_ms), 10, 600000},
    {"auth.accounts", K_PATH, OFF(auth.accounts), 0, 0},
    {"auth.realm", K_REALM, OFF(auth.realm), 0, 0},
    {"auth.algorithms", K_DIGEST, OFF(auth.algorithms), 0, 0},
    {"log.level", K_LOGLEVEL, OFF(log.level), 0, 0},
    {"log.syslog", K_BOOL, OFF(log.syslog), 0, 0},
    {"log.trace", K_BOOL, OFF(log.trace), 0, 0},
    {"log.trace_pcap", K_PATH, OFF(log.trace_pcap), 0, 0},
    {"log.trace_pcap_max", K_U32, OFF(log.trace_pcap_max), 1, 65536},
    {"log.burst", K_U32, OFF(log.burst), 1, 100000},
    {"log.rate", K_U32, OFF(log.rate), 1, 100000},
    {"p2p.port", K_PORT, OFF(p2p.port), 0, 65535},
    {"p2p.servers", K_SERVERS, 0, 0, 0},
    {"p2p.server", K_BOOL, OFF(p2p.server), 0, 0},
    {"p2p.multicast", K_BOOL, OFF(p2p.multicast), 0, 0},
    {"p2p.discovery_port", K_PORT, OFF(p2p.discovery_port), 1, 65535},
    {"p2p.secret", K_PATH, OFF(p2p.secret), 0, 0},
    {"p2p.promote_after", K_U32, OFF(p2p.promote_after), 0, 86400},
    {"p2p.cutoff", K_U32, OFF(p2p.cutoff), 2, 3600},
    {"p2p.replicas", K_U32, OFF(p2p.replicas), 0, 16},
    {"p2p.quorum", K_U32, OFF(p2p.quorum), 0, 16},
    {"p2p.leaf_half", K_U32, OFF(p2p.leaf_half), 2, 16},
};

#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {"sip", "registrar", "proxy", "timers", "auth", "log", "p2p"};

/* The quoted form of a value in an error message: at most CONF_QUOTE_MAX bytes. */
static int qlen(struct p2p_slice s)
{
    return (int)(s.len > CONF_QUOTE_MAX ? CONF_QUOTE_MAX : s.len);
}

void conf_defaults(struct conf *c)
{
    memset(c, 0, sizeof(*c));
    c->sip.port = CONF_DEFAULT_SIP_PORT;
    /* The seed served only phones on its own host; so do we, unless told otherwise. */
    c->sip.listen[0].family = AF_INET;
    strcpy(c->sip.listen[0].host, "127.0.0.1");
    c->sip.listen_count = 1;
    c->sip.transports = CONF_TRANSPORT_UDP | CONF_TRANSPORT_TCP;
    /* No central server owns a domain in a P2P overlay: every node serves every AoR. */
    c->sip.domain_any = true;
    c->registrar.min_expires = 60;
    c->registrar.max_expires = 7200;
    c->registrar.default_expires = 3600;
    c->registrar.max_contacts = 10;
    c->registrar.max_aors = 100000;
    c->registrar.options_keepalive = 0;
    c->proxy.forward_foreign = false;
    c->proxy.foreign_reply = 404;
    /* RFC 3261 17.1.1.1 and table 4: T1 500 ms, T2 4 s, T4 5 s. */
    c->timers.t1_ms = 500;
    c->timers.t2_ms = 4000;
    c->timers.t4_ms = 5000;
    strcpy(c->auth.realm, "p2psip");
    c->auth.algorithms = CONF_DIGEST_SHA256 | CONF_DIGEST_MD5;
    c->log.level = P2P_LOG_NOTICE;
    c->log.syslog = false;
    c->log.trace = false;
    c->log.trace_pcap_max = 256;
    c->log.burst = P2P_LOG_BURST_DEFAULT;
    c->log.rate = P2P_LOG_RATE_DEFAULT;
    c->p2p.port = CONF_DEFAULT_P2P_PORT;
    c->p2p.server = false;
    c->p2p.multicast = true;
    c->p2p.discovery_port = CONF_DEFAULT_DISCOVERY_PORT;
    c->p2p.promote_after = 15;
    c->p2p.cutoff = 8;
    c->p2p.replicas = 4;
    c->p2p.quorum = 2;
    c->p2p.leaf_half = 8;
}

static const struct key *key_find(struct p2p_slice name)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (p2p_slice_eq(name, p2p_slice_cstr(keys[i].name)))
            return &keys[i];
    }
    return NULL;
}

/* Splits the next comma-separated element off *rest; false when none is left. */
static bool list_next(struct p2p_slice *rest, struct p2p_slice *elem)
{
    const char *comma;

    if (rest->p == NULL)
        return false;
    comma = rest->len ? memchr(rest->p, ',', rest->len) : NULL;
    if (comma == NULL) {
        *elem = p2p_slice_trim(*rest);
        rest->p = NULL;
        rest->len = 0;
        return true;
    }
    elem->p = rest->p;
    elem->len = (size_t)(comma - rest->p);
    *elem = p2p_slice_trim(*elem);
    rest->len -= (size_t)(comma - rest->p) + 1;
    rest->p = comma + 1;
    return true;
}

static int parse_bool(struct p2p_slice v, bool *out)
{
    static const char *const yes[] = {"yes", "on", "true", "1"};
    static const char *const no[] = {"no", "off", "false", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (p2p_slice_caseeq_cstr(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (p2p_slice_caseeq_cstr(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* Parses an IPv4 or IPv6 address (brackets around IPv6 allowed) into *out. */
static int parse_addr(struct p2p_slice v, struct conf_addr *out)
{
    char text[CONF_ADDR_MAX];
    unsigned char bin[sizeof(struct in6_addr)];
    struct conf_addr a;

    if (v.len >= 2 && v.p[0] == '[' && v.p[v.len - 1] == ']') {
        v.p++;
        v.len -= 2;
    }
    if (p2p_slice_copy(v, text, sizeof(text)) != 0)
        return -EINVAL;
    if (inet_pton(AF_INET, text, bin) == 1)
        a.family = AF_INET;
    else if (inet_pton(AF_INET6, text, bin) == 1)
        a.family = AF_INET6;
    else
        return -EINVAL;
    if (inet_ntop(a.family, bin, a.host, sizeof(a.host)) == NULL)
        return -EINVAL;
    *out = a;
    return 0;
}

static bool is_hostname_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.';
}

/*
 * RFC 3261 25.1 host = hostname / IPv4address / IPv6reference.  Checks the hostname
 * character set and label shape (no empty label, no label starting or ending in '-'),
 * or an IPv6 reference in brackets.  Writes the lower-cased host without brackets.
 */
static int parse_host(struct p2p_slice v, char *out, size_t size)
{
    char tmp[CONF_HOST_MAX];
    size_t label = 0;

    if (v.len == 0 || v.len >= sizeof(tmp) || v.len >= size)
        return -EINVAL;
    if (v.p[0] == '[') {
        struct conf_addr a;
        if (v.p[v.len - 1] != ']' || parse_addr(v, &a) != 0 || a.family != AF_INET6)
            return -EINVAL;
        strcpy(out, a.host);
        return 0;
    }
    for (size_t i = 0; i < v.len; i++) {
        char ch = v.p[i];
        if (!is_hostname_char(ch))
            return -EINVAL;
        if (ch == '.') {
            if (label == 0 || v.p[i - 1] == '-')
                return -EINVAL;
            label = 0;
            tmp[i] = ch;
            continue;
        }
        if (label == 0 && ch == '-')
            return -EINVAL;
        if (++label > 63)
            return -EINVAL;
        tmp[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + ('a' - 'A')) : ch;
    }
    if (v.p[v.len - 1] == '-')
        return -EINVAL;
    /* A trailing dot (fully qualified form) is allowed, an empty last label is not. */
    if (label == 0 && v.len == 1)
        return -EINVAL;
    tmp[v.len] = '\0';
    memcpy(out, tmp, v.len + 1);
    return 0;
}

/* host:port with host a name, IPv4 address or [IPv6]. */
static int parse_hostport(struct p2p_slice v, struct conf_hostport *out, char *why, size_t wlen)
{
    struct conf_hostport hp;
    struct p2p_slice host, port;
    const char *colon = NULL;
    uint64_t n;

    if (v.len > 0 && v.p[0] == '[') {
        const char *close = memchr(v.p, ']', v.len);
        if (close == NULL || (size_t)(close - v.p) + 1 >= v.len || close[1] != ':') {
            p2p_errf(why, wlen, "expected [ipv6]:port");
            return -EINVAL;
        }
        colon = close + 1;
    } else {
        for (size_t i = 0; i < v.len; i++) {
            if (v.p[i] == ':') {
                if (colon != NULL) {
                    p2p_errf(why, wlen, "an IPv6 address needs brackets: [addr]:port");
                    return -EINVAL;
                }
                colon = v.p + i;
            }
        }
        if (colon == NULL) {
            p2p_errf(why, wlen, "expected host:port");
            return -EINVAL;
        }
    }
    host.p = v.p;
    host.len = (size_t)(colon - v.p);
    port.p = colon + 1;
    port.len = v.len - host.len - 1;
    if (parse_host(host, hp.host, sizeof(hp.host)) != 0) {
        p2p_errf(why, wlen, "'%.*s' is not a host name or address", qlen(host), host.p);
        return -EINVAL;
    }
    if (p2p_slice_to_u64(port, 65535, &n) != 0 || n == 0) {
        p2p_errf(why, wlen, "'%.*s' is not a port number (1-65535)", qlen(port), port.p);
        return -EINVAL;
    }
    hp.port = (uint16_t)n;
    *out = hp;
    return 0;
}

/* Rejects control characters in free text (paths, realm): they never belong there. */
static bool has_ctl(struct p2p_slice v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.p[i];
        if (ch < 0x20 || ch == 0x7f)
            return true;
    }
    return false;
}

/*
 * Sets key k in *c from v.  On failure writes "key: reason" to why and leaves *c as
 * it was (lists are built in a local copy first).
 */
static int set_value(struct conf *c, const struct key *k, struct p2p_slice v, char *why,
                     size_t wlen)
{
    char *base = (char *)c;
    uint64_t n;

    /* Empty means "none" for a path and for the server list; elsewhere it is a mistake. */
    if (v.len == 0 && k->kind != K_PATH && k->kind != K_SERVERS && k->kind != K_METRICS) {
        p2p_errf(why, wlen, "%s: missing value", k->name);
        return -EINVAL;
    }
    switch (k->kind) {
    case K_PORT:
        if (p2p_slice_to_u64(v, 65535, &n) != 0 || n < k->lo) {
            p2p_errf(why, wlen, "%s: '%.*s' is not a port number (%u-65535)", k->name, qlen(v), v.p,
                     (unsigned)k->lo);
            return -EINVAL;
        }
        *(uint16_t *)(void *)(base + k->off) = (uint16_t)n;
        return 0;
    case K_SECONDS_OFF:
        if (p2p_slice_caseeq_cstr(v, "off") || p2p_slice_eq(v, P2P_SLICE_LIT("0"))) {
            *(uint32_t *)(void *)(base + k->off) = 0;
            return 0;
        }
        /* fall through - a number of seconds */
    case K_U32: {
        int rc = p2p_slice_to_u64(v, UINT32_MAX, &n);
        if (rc == -EINVAL) {
            p2p_errf(why, wlen, "%s: '%.*s' is not a number%s", k->name, qlen(v), v.p,
                     k->kind == K_SECONDS_OFF ? " or 'off'" : "");
            return -EINVAL;
        }
        if (rc != 0 || n < k->lo || n > k->hi) {
            p2p_errf(why, wlen, "%s: %.*s is out of range (%u-%u)", k->name, qlen(v), v.p,
                     (unsigned)k->lo, (unsigned)k->hi);
            return -EINVAL;
        }
        *(uint32_t *)(void *)(base + k->off) = (uint32_t)n;
        return 0;
    }
    case K_BOOL: {
        bool b;
        if (parse_bool(v, &b) != 0) {
            p2p_errf(why, wlen, "%s: '%.*s' is not a boolean (yes/no, on/off, true/false, 1/0)",
                     k->name, qlen(v), v.p);
            return -EINVAL;
        }
        *(bool *)(void *)(base + k->off) = b;
        return 0;
    }
    case K_PATH:
    case K_REALM: {
        size_t size = k->kind == K_PATH ? CONF_PATH_MAX : CONF_REALM_MAX;
        if (has_ctl(v)) {
            p2p_errf(why, wlen, "%s: control character in value", k->name);
            return -EINVAL;
        }
        /* The realm goes into a quoted-string (RFC 3261 25.1): no quote, no backslash. */
        if (k->kind == K_REALM && (memchr(v.p, '"', v.len) || memchr(v.p, '\\', v.len))) {
            p2p_errf(why, wlen, "%s: '\"' and '\\' are not allowed in a realm", k->name);
            return -EINVAL;
        }
        if (v.len >= size) {
            p2p_errf(why, wlen, "%s: value too long (max %zu bytes)", k->name, size - 1);
            return -EINVAL;
        }
        if (v.len > 0)
            memcpy(base + k->off, v.p, v.len);
        base[k->off + v.len] = '\0';
        return 0;
    }
    case K_METRICS: {
        struct conf_metrics m;
        struct p2p_slice host = {v.p, 0}, port = v;
        const char *colon = NULL;
        memset(&m, 0, sizeof(m));
        if (v.len == 0) {
            c->metrics = m; /* off */
            return 0;
        }
        /* The last colon separates the port; an IPv6 address needs its brackets. */
        for (size_t i = v.len; i > 0 && colon == NULL; i--)
            if (v.p[i - 1] == ':')
                colon = v.p + i - 1;
        if (colon != NULL) {
            host.len = (size_t)(colon - v.p);
            port.p = colon + 1;
            port.len = v.len - host.len - 1;
        }
        if (colon == NULL) {
            m.addr.family = AF_INET;
            strcpy(m.addr.host, "127.0.0.1"); /* a bare port: this host only */
        } else if (parse_addr(host, &m.addr) != 0 ||
                   (m.addr.family == AF_INET6 && host.p[0] != '[')) {
            p2p_errf(why, wlen, "%s: '%.*s' is not an IPv4 address or [IPv6 address]", k->name,
                     qlen(host), host.p);
            return -EINVAL;
        }
        if (p2p_slice_to_u64(port, 65535, &n) != 0 || n == 0) {
            p2p_errf(why, wlen, "%s: '%.*s' is not a port number (1-65535)", k->name, qlen(port),
                     port.p);
            return -EINVAL;
        }
        m.port = (uint16_t)n;
        c->metrics = m;
        return 0;
    }
    case K_LISTEN: {
        struct conf_addr list[CONF_LISTEN_MAX];
        struct p2p_slice rest = v, e;
        size_t count = 0;
        while (list_next(&rest, &e)) {
            struct conf_addr a;
            if (e.len == 0) {
                p2p_errf(why, wlen, "%s: empty list element", k->name);
                return -EINVAL;
            }
            if (parse_addr(e, &a) != 0) {
                p2p_errf(why, wlen, "%s: '%.*s' is not an IPv4 or IPv6 address", k->name, qlen(e),
                         e.p);
                return -EINVAL;
            }
            for (size_t i = 0; i < count; i++) {
                if (strcmp(list[i].host, a.host) == 0) {
                    p2p_errf(why, wlen, "%s: duplicate address %s", k->name, a.host);
                    return -EINVAL;
                }
            }
            if (count == CONF_LISTEN_MAX) {
                p2p_errf(why, wlen, "%s: more than %d addresses", k->name, CONF_LISTEN_MAX);
                return -EINVAL;
            }
            list[count++] = a;
        }
        memcpy(c->sip.listen, list, count * sizeof(list[0]));
        c->sip.listen_count = count;
        return 0;
    }
    case K_TRANSPORTS: {
        struct p2p_slice rest = v, e;
        unsigned bits = 0, bit;
        while (list_next(&rest, &e)) {
            if (p2p_slice_caseeq_cstr(e, "udp")) {
                bit = CONF_TRANSPORT_UDP;
            } else if (p2p_slice_caseeq_cstr(e, "tcp")) {
                bit = CONF_TRANSPORT_TCP;
            } else {
                p2p_errf(why, wlen, "%s: unsupported transport '%.*s' (udp, tcp)", k->name, qlen(e),
                         e.p);
                return -EINVAL;
            }
            if (bits & bit) {
                p2p_errf(why, wlen, "%s: duplicate transport '%.*s'", k->name, qlen(e), e.p);
                return -EINVAL;
            }
            bits |= bit;
        }
        c->sip.transports = bits;
        return 0;
    }
    case K_DOMAINS: {
        char list[CONF_DOMAIN_MAX][CONF_HOST_MAX];
        struct p2p_slice rest = v, e;
        size_t count = 0;
        if (p2p_slice_eq(v, P2P_SLICE_LIT("*"))) {
            c->sip.domain_any = true;
            c->sip.domain_count = 0;
            return 0;
        }
        while (list_next(&rest, &e)) {
            if (e.len == 0) {
                p2p_errf(why, wlen, "%s: empty list element", k->name);
                return -EINVAL;
            }
            if (p2p_slice_eq(e, P2P_SLICE_LIT("*"))) {
                p2p_errf(why, wlen, "%s: '*' (any domain) cannot be combined with names", k->name);
                return -EINVAL;
            }
            if (count == CONF_DOMAIN_MAX) {
                p2p_errf(why, wlen, "%s: more than %d domains", k->name, CONF_DOMAIN_MAX);
                return -EINVAL;
            }
            if (parse_host(e, list[count], sizeof(list[count])) != 0) {
                p2p_errf(why, wlen, "%s: '%.*s' is not a host name or address", k->name, qlen(e),
                         e.p);
                return -EINVAL;
            }
            for (size_t i = 0; i < count; i++) {
                if (strcmp(list[i], list[count]) == 0) {
                    p2p_errf(why, wlen, "%s: duplicate domain %s", k->name, list[count]);
                    return -EINVAL;
                }
            }
            count++;
        }
        memcpy(c->sip.domain, list, sizeof(list[0]) * count);
        c->sip.domain_count = count;
        c->sip.domain_any = false;
        return 0;
    }
    case K_DIGEST: {
        static const struct {
            const char *name;
            unsigned bit;
        } algs[] = {{"md5", CONF_DIGEST_MD5},
                    {"md5-sess", CONF_DIGEST_MD5_SESS},
                    {"sha-256", CONF_DIGEST_SHA256},
                    {"sha-256-sess", CONF_DIGEST_SHA256_SESS}};
        struct p2p_slice rest = v, e;
        unsigned bits = 0;
        while (list_next(&rest, &e)) {
            unsigned bit = 0;
            for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
                if (p2p_slice_caseeq_cstr(e, algs[i].name))
                    bit = algs[i].bit;
            }
            if (bit == 0) {
                p2p_errf(why, wlen,
                         "%s: unknown algorithm '%.*s' (md5, md5-sess, sha-256, sha-256-sess)",
                         k->name, qlen(e), e.p);
                return -EINVAL;
            }
            if (bits & bit) {
                p2p_errf(why, wlen, "%s: duplicate algorithm '%.*s'", k->name, qlen(e), e.p);
                return -EINVAL;
            }
            bits |= bit;
        }
        c->auth.algorithms = bits;
        return 0;
    }
    case K_LOGLEVEL: {
        char name[16];
        enum p2p_log_level level;
        if (p2p_slice_copy(v, name, sizeof(name)) != 0 || p2p_log_level_parse(name, &level) != 0) {
            p2p_errf(why, wlen, "%s: '%.*s' is not a log level (err, warn, notice, info, debug)",
                     k->name, qlen(v), v.p);
            return -EINVAL;
        }
        c->log.level = level;
        return 0;
    }
    case K_REPLY:
        if (p2p_slice_to_u64(v, 999, &n) != 0 || (n != 403 && n != 404)) {
            p2p_errf(why, wlen, "%s: '%.*s' is not 403 or 404", k->name, qlen(v), v.p);
            return -EINVAL;
        }
        c->proxy.foreign_reply = (uint16_t)n;
        return 0;
    case K_SERVERS: {
        struct conf_hostport list[CONF_SERVER_MAX];
        struct p2p_slice rest = v, e;
        size_t count = 0;
        char sub[CONF_ERR_MAX / 2];
        while (v.len > 0 && list_next(&rest, &e)) {
            if (e.len == 0) {
                p2p_errf(why, wlen, "%s: empty list element", k->name);
                return -EINVAL;
            }
            if (count == CONF_SERVER_MAX) {
                p2p_errf(why, wlen, "%s: more than %d servers", k->name, CONF_SERVER_MAX);
                return -EINVAL;
            }
            if (parse_hostport(e, &list[count], sub, sizeof(sub)) != 0) {
                p2p_errf(why, wlen, "%s: '%.*s': %s", k->name, qlen(e), e.p, sub);
                return -EINVAL;
            }
            count++;
        }
        memcpy(c->p2p.servers, list, sizeof(list[0]) * count);
        c->p2p.server_count = count;
        return 0;
    }
    }
    p2p_errf(why, wlen, "%s: internal error: unknown kind", k->name);
    return -EINVAL;
}

int conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct key *k = key_find(p2p_slice_cstr(key));
    struct p2p_slice v = p2p_slice_trim(p2p_slice_cstr(value));

    if (k == NULL) {
        p2p_errf(err, errlen, "unknown key '%.*s'", qlen(p2p_slice_cstr(key)), key);
        return -EINVAL;
    }
    return set_value(c, k, v, err, errlen);
}

static bool is_key_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
}

/* Cuts a trailing comment: a '#' at the start or preceded by a blank. */
static struct p2p_slice cut_comment(struct p2p_slice v)
{
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] == '#' && (i == 0 || v.p[i - 1] == ' ' || v.p[i - 1] == '\t')) {
            v.len = i;
            break;
        }
    }
    return p2p_slice_trim(v);
}

int conf_load_buf(struct conf *c, const char *name, const char *buf, size_t len, char *err,
                  size_t errlen)
{
    struct conf tmp = *c;
    unsigned set_line[KEY_COUNT] = {0};
    struct p2p_slice section = {NULL, 0};
    char why[CONF_ERR_MAX];
    size_t pos = 0;
    unsigned lineno = 0;

    if (len > CONF_FILE_MAX) {
        p2p_errf(err, errlen, "%s: file too large (max %d bytes)", name, CONF_FILE_MAX);
        return -EFBIG;
    }
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        struct p2p_slice line = {buf + pos, end - pos};
        struct p2p_slice keyname, value;
        const char *eq;
        const struct key *k;
        char full[96];

        lineno++;
        pos = nl ? end + 1 : len;
        if (line.len > CONF_LINE_MAX) {
            p2p_errf(err, errlen, "%s:%u: line too long (max %d bytes)", name, lineno,
                     CONF_LINE_MAX);
            return -EINVAL;
        }
        if (memchr(line.p, '\0', line.len) != NULL) {
            p2p_errf(err, errlen, "%s:%u: NUL byte in line", name, lineno);
            return -EINVAL;
        }
        line = p2p_slice_trim(line);
        if (line.len == 0 || line.p[0] == '#')
            continue;
        if (line.p[0] == '[') {
            struct p2p_slice s;
            const char *close = memchr(line.p, ']', line.len);
            bool known = false;
            if (close == NULL) {
                p2p_errf(err, errlen, "%s:%u: missing ']' in section header", name, lineno);
                return -EINVAL;
            }
            if (cut_comment((struct p2p_slice){close + 1, line.len - (size_t)(close - line.p) - 1})
                    .len != 0) {
                p2p_errf(err, errlen, "%s:%u: text after section header", name, lineno);
                return -EINVAL;
            }
            s = p2p_slice_trim((struct p2p_slice){line.p + 1, (size_t)(close - line.p) - 1});
            for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
                known = known || p2p_slice_eq(s, p2p_slice_cstr(sections[i]));
            if (!known) {
                p2p_errf(err, errlen, "%s:%u: unknown section [%.*s]", name, lineno, qlen(s), s.p);
                return -EINVAL;
            }
            section = s;
            continue;
        }
        eq = memchr(line.p, '=', line.len);
        if (eq == NULL) {
            p2p_errf(err, errlen, "%s:%u: expected 'key = value' or '[section]'", name, lineno);
            return -EINVAL;
        }
        keyname = p2p_slice_trim((struct p2p_slice){line.p, (size_t)(eq - line.p)});
        value = cut_comment((struct p2p_slice){eq + 1, line.len - (size_t)(eq - line.p) - 1});
        if (keyname.len == 0) {
            p2p_errf(err, errlen, "%s:%u: missing key before '='", name, lineno);
            return -EINVAL;
        }
        for (size_t i = 0; i < keyname.len; i++) {
            if (!is_key_char(keyname.p[i])) {
                p2p_errf(err, errlen, "%s:%u: invalid key '%.*s'", name, lineno, qlen(keyname),
                         keyname.p);
                return -EINVAL;
            }
        }
        if (section.len + 1 + keyname.len >= sizeof(full)) {
            p2p_errf(err, errlen, "%s:%u: unknown key '%.*s'", name, lineno, qlen(keyname),
                     keyname.p);
            return -EINVAL;
        }
        if (section.len > 0)
            snprintf(full, sizeof(full), "%.*s.%.*s", (int)section.len, section.p, (int)keyname.len,
                     keyname.p);
        else
            snprintf(full, sizeof(full), "%.*s", (int)keyname.len, keyname.p);
        k = key_find(p2p_slice_cstr(full));
        if (k == NULL) {
            p2p_errf(err, errlen, "%s:%u: unknown key '%s'", name, lineno, full);
            return -EINVAL;
        }
        if (set_line[k - keys] != 0) {
            p2p_errf(err, errlen, "%s:%u: duplicate key '%s' (first set on line %u)", name, lineno,
                     full, set_line[k - keys]);
            return -EINVAL;
        }
        set_line[k - keys] = lineno;
        if (set_value(&tmp, k, value, why, sizeof(why)) != 0) {
            p2p_errf(err, errlen, "%s:%u: %s", name, lineno, why);
            return -EINVAL;
        }
    }
    *c = tmp;
    return 0;
}

int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    ssize_t n;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        p2p_errf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    /* Read at most one byte past the cap, so an oversized file is reported as such. */
    buf = malloc(CONF_FILE_MAX + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        p2p_errf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        n = read(fd, buf + len, CONF_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            p2p_errf(err, errlen, "%s: %s", path, strerror(-rc));
            goto out;
        }
        if (n == 0 || len + (size_t)n > CONF_FILE_MAX) {
            len += (size_t)n;
            break;
        }
        len += (size_t)n;
    }
    rc = conf_load_buf(c, path, buf, len, err, errlen);
out:
    free(buf);
    close(fd);
    return rc;
}

int conf_check(const struct conf *c, char *err, size_t errlen)
{
    const struct conf_registrar *r = &c->registrar;

    if (r->min_expires > r->max_expires) {
        p2p_errf(err, errlen, "registrar.min_expires (%u) is above registrar.max_expires (%u)",
                 (unsigned)r->min_expires, (unsigned)r->max_expires);
        return -EINVAL;
    }
    if (r->default_expires < r->min_expires || r->default_expires > r->max_expires) {
        p2p_errf(err, errlen,
                 "registrar.default_expires (%u) is outside registrar.min_expires..max_expires "
                 "(%u-%u)",
                 (unsigned)r->default_expires, (unsigned)r->min_expires, (unsigned)r->max_expires);
        return -EINVAL;
    }
    if (c->timers.t1_ms > c->timers.t2_ms) {
        p2p_errf(err, errlen, "timers.t1 (%u ms) is above timers.t2 (%u ms)",
                 (unsigned)c->timers.t1_ms, (unsigned)c->timers.t2_ms);
        return -EINVAL;
    }
    if (c->sip.listen_count == 0 || c->sip.transports == 0) {
        p2p_errf(err, errlen, "sip.listen and sip.transports must not be empty");
        return -EINVAL;
    }
    /* bind() would silently truncate a longer path (libuv < 1.46 does). */
    if (strlen(c->control) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        p2p_errf(err, errlen, "control: socket path too long (max %zu bytes): %.64s...",
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1, c->control);
        return -EINVAL;
    }
    /* The seed's multicast discovery shared port 5062 with SIP and never worked. */
    if (c->p2p.port != 0 && c->p2p.port == c->sip.port) {
        p2p_errf(err, errlen, "p2p.port (%u) must differ from sip.port", (unsigned)c->p2p.port);
        return -EINVAL;
    }
    if (c->p2p.multicast &&
        (c->p2p.discovery_port == c->sip.port || c->p2p.discovery_port == c->p2p.port)) {
        p2p_errf(err, errlen, "p2p.discovery_port (%u) must differ from sip.port and p2p.port",
                 (unsigned)c->p2p.discovery_port);
        return -EINVAL;
    }
    if (c->p2p.quorum > c->p2p.replicas || c->p2p.replicas > 2 * c->p2p.leaf_half) {
        p2p_errf(err, errlen,
                 "p2p.quorum (%u) must not exceed p2p.replicas (%u), nor replicas twice "
                 "p2p.leaf_half (%u)",
                 (unsigned)c->p2p.quorum, (unsigned)c->p2p.replicas, (unsigned)c->p2p.leaf_half);
        return -EINVAL;
    }
    return 0;
}

int conf_default_control(char *out, size_t size, const char *data_dir)
{
    int n = snprintf(out, size, "%s/%s", data_dir, CONF_CONTROL_NAME);

    if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        if (size > 0)
            out[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

int conf_default_data_dir(char *out, size_t size, bool is_root, const char *xdg_data_home,
                          const char *home)
{
    int n;

    if (is_root)
        n = snprintf(out, size, "/var/lib/p2psip");
    /* XDG Base Directory: a relative $XDG_DATA_HOME is invalid and must be ignored. */
    else if (xdg_data_home != NULL && xdg_data_home[0] == '/')
        n = snprintf(out, size, "%s/p2psip", xdg_data_home);
    else if (home != NULL && home[0] != '\0')
        n = snprintf(out, size, "%s/.local/share/p2psip", home);
    else
        return -ENOENT;
    if (n < 0 || (size_t)n >= size) {
        if (size > 0)
            out[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

static const char *onoff(bool b)
{
    return b ? "yes" : "no";
}

int conf_format(const struct conf *c, struct p2p_buf *out)
{
    static const char *const level_names[] = {
        [P2P_LOG_ERR] = "err",   [P2P_LOG_WARN] = "warn",   [P2P_LOG_NOTICE] = "notice",
        [P2P_LOG_INFO] = "info", [P2P_LOG_DEBUG] = "debug",
    };
    int rc = 0;

#define PUT(...)                                                                                   \
    do {                                                                                           \
        if ((rc = p2p_buf_printf(out, __VA_ARGS__)) != 0)                                          \
            return rc;                                                                             \
    } while (0)

    PUT("data_dir =%s%s\n", c->data_dir[0] ? " " : "", c->data_dir);
    PUT("control =%s%s\n", c->control[0] ? " " : "", c->control);
    if (c->metrics.port == 0)
        PUT("metrics_listen =\n");
    else
        PUT("metrics_listen = %s%s%s:%u\n", c->metrics.addr.family == AF_INET6 ? "[" : "",
            c->metrics.addr.host, c->metrics.addr.family == AF_INET6 ? "]" : "",
            (unsigned)c->metrics.port);
    PUT("\n[sip]\nport = %u\nlisten = ", (unsigned)c->sip.port);
    for (size_t i = 0; i < c->sip.listen_count; i++)
        PUT("%s%s", i ? ", " : "", c->sip.listen[i].host);
    PUT("\ntransports = %s%s%s\n", (c->sip.transports & CONF_TRANSPORT_UDP) ? "udp" : "",
        (c->sip.transports & CONF_TRANSPORT_UDP) && (c->sip.transports & CONF_TRANSPORT_TCP) ? ", "
                                                                                             : "",
        (c->sip.transports & CONF_TRANSPORT_TCP) ? "tcp" : "");
    PUT("domain = ");
    if (c->sip.domain_any)
        PUT("*");
    for (size_t i = 0; i < c->sip.domain_count; i++) {
        bool v6 = strchr(c->sip.domain[i], ':') != NULL;
        PUT("%s%s%s%s", i ? ", " : "", v6 ? "[" : "", c->sip.domain[i], v6 ? "]" : "");
    }
    PUT("\n\n[registrar]\nmin_expires = %u\nmax_expires = %u\ndefault_expires = %u\n"
        "max_contacts = %u\nmax_aors = %u\n",
        (unsigned)c->registrar.min_expires, (unsigned)c->registrar.max_expires,
        (unsigned)c->registrar.default_expires, (unsigned)c->registrar.max_contacts,
        (unsigned)c->registrar.max_aors);
    if (c->registrar.options_keepalive == 0)
        PUT("options_keepalive = off\n");
    else
        PUT("options_keepalive = %u\n", (unsigned)c->registrar.options_keepalive);
    PUT("keepalive_remove = %s\n", onoff(c->registrar.keepalive_remove));
    PUT("\n[proxy]\nforward_foreign = %s\nforeign_reply = %u\n", onoff(c->proxy.forward_foreign),
        (unsigned)c->proxy.foreign_reply);
    PUT("\n[timers]\nt1 = %u\nt2 = %u\nt4 = %u\n", (unsigned)c->timers.t1_ms,
        (unsigned)c->timers.t2_ms, (unsigned)c->timers.t4_ms);
    PUT("\n[auth]\naccounts =%s%s\nrealm = %s\nalgorithms = ", c->auth.accounts[0] ? " " : "",
        c->auth.accounts, c->auth.realm);
    {
        static const char *const names[] = {"md5", "md5-sess", "sha-256", "sha-256-sess"};
        const char *sep = "";
        /* SHA-256 first: the order in which the challenges are offered. */
        static const unsigned order[] = {2, 3, 0, 1};
        for (size_t i = 0; i < 4; i++) {
            if (c->auth.algorithms & (1u << order[i])) {
                PUT("%s%s", sep, names[order[i]]);
                sep = ", ";
            }
        }
        PUT("\n");
    }
    PUT("\n[log]\nlevel = %s\nsyslog = %s\ntrace = %s\ntrace_pcap =%s%s\ntrace_pcap_max = "
        "%u\nburst = %u\nrate = %u\n",
        level_names[c->log.level], onoff(c->log.syslog), onoff(c->log.trace),
        c->log.trace_pcap[0] ? " " : "", c->log.trace_pcap, (unsigned)c->log.trace_pcap_max,
        (unsigned)c->log.burst, (unsigned)c->log.rate);
    PUT("\n[p2p]\nport = %u\nserver = %s\n", (unsigned)c->p2p.port, onoff(c->p2p.server));
    PUT("servers =");
    for (size_t i = 0; i < c->p2p.server_count; i++) {
        bool v6 = strchr(c->p2p.servers[i].host, ':') != NULL;
        PUT("%s%s%s%s:%u", i ? ", " : " ", v6 ? "[" : "", c->p2p.servers[i].host, v6 ? "]" : "",
            (unsigned)c->p2p.servers[i].port);
    }
    PUT("\nmulticast = %s\ndiscovery_port = %u\nsecret = %s\npromote_after = %u\ncutoff = %u\n",
        onoff(c->p2p.multicast), (unsigned)c->p2p.discovery_port, c->p2p.secret,
        (unsigned)c->p2p.promote_after, (unsigned)c->p2p.cutoff);
    PUT("replicas = %u\nquorum = %u\nleaf_half = %u\n", (unsigned)c->p2p.replicas,
        (unsigned)c->p2p.quorum, (unsigned)c->p2p.leaf_half);
#undef PUT
    return rc;
}
