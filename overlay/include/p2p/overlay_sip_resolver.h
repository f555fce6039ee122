/*
 * overlay_sip_resolver.h: RFC 3263 server location (NAPTR, SRV, A/AAAA) on a libuv loop.
 *
 * What it is: the implementation of the proxy's asynchronous resolver hook
 * (struct sip_proxy_resolver, sip_proxy.h) that turns the URI of a request for a
 * domain that is not ours into one destination (transport and socket address).
 *
 * Design.  Two layers:
 *   - a pure part that knows DNS packets and RFC 3263 / RFC 2782 rules but does no
 *     I/O: overlay_sip_naptr_parse() and overlay_sip_srv_parse() turn raw answer
 *     packets into ordered lists, and overlay_sip_resolver_plan() runs the whole
 *     RFC 3263 4.1/4.2 chain (NAPTR, then SRV, then the host itself) through an
 *     injected query function and random source, so tests run it on hand-made
 *     packets;
 *   - the resolver object, which applies the URI rules (transport parameter, numeric
 *     host, explicit port, maddr) on the loop thread, runs the plan in the libuv
 *     thread pool (uv_queue_work: res_nquery blocks) with a struct __res_state per
 *     resolution (res_ninit/res_nclose, no global resolver state), then resolves the
 *     chosen target's A/AAAA records with uv_getaddrinfo.  A target name that does
 *     not resolve makes it try the next target of the plan (RFC 2782 usage rules).
 *
 * Invariants: at most cfg.max_pending resolutions exist at once (counting the ones
 * whose answer was given but whose worker thread is still blocked in the resolver
 * library); each has a timer that gives -ETIMEDOUT after cfg.timeout_ms; every
 * callback runs from the loop thread, never inside the call that armed it; every
 * count and name taken from a DNS answer is capped (OVERLAY_SIP_RESOLVER_MAX_RR
 * records, names of OVERLAY_SIP_RESOLVER_NAME_MAX bytes, answers of
 * OVERLAY_SIP_RESOLVER_ANSWER_MAX bytes).
 *
 * Limits: no TLS transport exists in p2psip, so a sips URI, transport=tls and
 * transport=sctp are refused at once with -EPROTONOSUPPORT (RFC 3263 4.1 would pick
 * TLS for them; pretending TCP would break the sips guarantee).  NAPTR records for
 * SIPS+D2T are discarded as unsupported.  The destination handed back is the first
 * usable one; failing over to the next SRV target after a transport error is not
 * done (the proxy hook asks for one destination), so RFC 3263 4.3's retry on a
 * 503/timeout is left to the upstream client.
 *
 * RFC 3263 4.1 (transport), 4.2 (port and address), RFC 3403 4.1 (NAPTR order and
 * preference), RFC 2782 (SRV priority, weighted selection, "." target).
 */
#ifndef P2P_OVERLAY_SIP_RESOLVER_H
#define P2P_OVERLAY_SIP_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "p2p/sip_proxy.h"
#include "p2p/sip_tsx.h"

struct p2p_log;
struct overlay_sip_resolver;

/* Caps on what one DNS answer may make us hold. */
#define OVERLAY_SIP_RESOLVER_NAME_MAX 256    /* a domain name as text, with the NUL */
#define OVERLAY_SIP_RESOLVER_MAX_RR 32       /* NAPTR / SRV records of one answer used */
#define OVERLAY_SIP_RESOLVER_MAX_TARGETS 16  /* targets a plan keeps */
#define OVERLAY_SIP_RESOLVER_ANSWER_MAX 8192 /* bytes of one DNS answer */

/* Defaults used when a config field is 0. */
#define OVERLAY_SIP_RESOLVER_DEFAULT_MAX_PENDING 64
#define OVERLAY_SIP_RESOLVER_DEFAULT_TIMEOUT_MS 8000

/* Bits of the transports we can use (struct overlay_sip_resolver_config.transports). */
#define OVERLAY_SIP_RESOLVER_UDP (1u << SIP_TSX_UDP)
#define OVERLAY_SIP_RESOLVER_TCP (1u << SIP_TSX_TCP)

/* ---- pure part: DNS answers to ordered lists (no I/O) ---- */

/* One usable NAPTR record (RFC 3263 4.1): the transport and the SRV name to query. */
struct overlay_sip_naptr {
    enum sip_tsx_transport transport;
    uint16_t order, preference;
    char replacement[OVERLAY_SIP_RESOLVER_NAME_MAX];
};

/* One SRV record (RFC 2782). */
struct overlay_sip_srv {
    uint16_t priority, weight, port;
    char target[OVERLAY_SIP_RESOLVER_NAME_MAX];
};

/* Where to try next: a host name (or numeric address), port and transport. */
struct overlay_sip_target {
    enum sip_tsx_transport transport;
    uint16_t port;
    char host[OVERLAY_SIP_RESOLVER_NAME_MAX];
};

/* A uniform random number in [0, upper_bound), upper_bound >= 1 (libsodium's
 * randombytes_uniform() has this shape).  Tests inject a scripted one. */
typedef uint32_t (*overlay_sip_uniform_fn)(uint32_t upper_bound, void *arg);

/*
 * Reads the NAPTR records of a DNS response packet (answer, len bytes) and keeps
 * those a SIP client may use (RFC 3263 4.1): flags "S", empty regexp, service
 * SIP+D2U (UDP) or SIP+D2T (TCP) when its bit is in transports (SIPS+D2T and
 * anything else discarded), replacement a name.  RFC 3403 4.1: only the records of
 * the lowest order among those are kept, sorted by preference.  At most
 * OVERLAY_SIP_RESOLVER_MAX_RR answer records are examined.  Returns 0 with *count >= 1
 * and out[0..*count) filled (at most max), -ENOENT when the answer has no NAPTR record
 * (NXDOMAIN, no data), -EPROTONOSUPPORT when it has some but none usable, -EBADMSG for
 * a malformed packet or record.  out and *count are written only on success.
 */
int overlay_sip_naptr_parse(const uint8_t *answer, size_t len, unsigned transports,
                            struct overlay_sip_naptr *out, size_t max, size_t *count);

/*
 * Reads the SRV records of a DNS response packet and orders them as RFC 2782 says:
 * by priority, and within one priority by repeated weighted random selection
 * (weight-0 records first in the running sum, a number drawn in [0, sum]), using
 * uniform.  At most OVERLAY_SIP_RESOLVER_MAX_RR records are examined.  Returns 0 with
 * *count >= 1 (at most max written), -ENOENT when there is no SRV record,
 * -ECONNREFUSED when the only records have target "." (the service is decidedly not
 * available, RFC 2782), -EBADMSG for a malformed packet.  Written only on success.
 */
int overlay_sip_srv_parse(const uint8_t *answer, size_t len, overlay_sip_uniform_fn uniform,
                          void *uniform_arg, struct overlay_sip_srv *out, size_t max,
                          size_t *count);

/*
 * Asks DNS one question: writes the response packet for (name, type) (ns_t_naptr or
 * ns_t_srv, class IN) into buf, returns its length, or -ENOENT when the name or the
 * data does not exist, or another negative errno (-ETIMEDOUT, -EAGAIN for a server
 * failure, -EIO).  Runs on a worker thread: it may only touch arg.  The resolver asks
 * nothing more once a resolution was answered (timeout, close): -ECANCELED then.
 */
typedef int (*overlay_sip_dns_query_fn)(const char *name, int type, uint8_t *buf, size_t size,
                                        void *arg);

/*
 * RFC 3263 4.1 and 4.2 for a host name without an explicit port.  transport is the
 * URI's transport, or -1 when it gave none.  With -1: NAPTR of host; the usable
 * records (overlay_sip_naptr_parse) give the transports, and the SRV records of each
 * replacement in turn (the first three: each query may block) the targets; with no NAPTR record,
 * SRV of _sip._udp.host and _sip._tcp.host (the preferred one first, prefer_udp) for the transports
 * in transports; with no SRV record either, host itself over UDP at 5060.  With a transport: SRV of
 * _sip._udp / _sip._tcp .host, else host at 5060.  Writes the targets in the order to try (at most
 * max, at most OVERLAY_SIP_RESOLVER_MAX_TARGETS). Returns 0 with *count >= 1, or a negative errno:
 * a query error other than -ENOENT, -EPROTONOSUPPORT (NAPTR records, none usable; or transport not
 * in transports), -ECONNREFUSED (SRV "." and no other target), -EBADMSG, -EINVAL (host empty or
 * too long).  NAPTR records whose SRV names have no SRV record lead to host itself, with the first
 * record's transport, at 5060 (RFC 3263 4.2).  Written only on success.
 */
int overlay_sip_resolver_plan(const char *host, int transport, unsigned transports, bool prefer_udp,
                              overlay_sip_dns_query_fn query, void *query_arg,
                              overlay_sip_uniform_fn uniform, void *uniform_arg,
                              struct overlay_sip_target *out, size_t max, size_t *count);

/* ---- the resolver object (libuv) ---- */

struct overlay_sip_resolver_config {
    size_t max_pending;  /* resolutions alive at once; beyond: -ENOBUFS (0: default) */
    uint64_t timeout_ms; /* per resolution, then -ETIMEDOUT (0: default) */
    bool prefer_udp;     /* SRV without NAPTR: _sip._udp before _sip._tcp */
    unsigned transports; /* OVERLAY_SIP_RESOLVER_UDP | _TCP we can send on (0: both) */
    int family;          /* AF_UNSPEC, AF_INET or AF_INET6: addresses we can reach */
    /* Tests only: replaces res_nquery (NULL: the system resolver).  Called on a
     * worker thread with query_arg. */
    overlay_sip_dns_query_fn query;
    void *query_arg;
};

/* Fills cfg with the defaults (both transports, UDP preferred, any family). */
void overlay_sip_resolver_config_default(struct overlay_sip_resolver_config *cfg);

/*
 * Creates a resolver on loop.  cfg is copied; log (may be NULL) is kept.  Returns 0
 * and writes *out, -EINVAL (bad family or transports), -ENOMEM, or a libuv error.
 * Until overlay_sip_resolver_close() it holds one inactive handle (the loop can end).
 */
int overlay_sip_resolver_new(struct overlay_sip_resolver **out, uv_loop_t *loop,
                             const struct overlay_sip_resolver_config *cfg, struct p2p_log *log);

typedef void (*overlay_sip_resolver_close_cb)(void *arg);

/*
 * Stops the resolver.  Every resolution whose answer is still due gets its callback
 * with -ECANCELED during this call (so that the proxy, which must see them complete
 * before sip_proxy_free(), may be freed right after); resolve() refuses new work
 * with -ECANCELED from here on.  Work already running in the thread pool cannot be
 * interrupted: the resolver is freed once it has returned and all handles are
 * closed, then cb(arg) runs from the loop (cb may be NULL).  Calling it twice is a
 * programming error.
 */
void overlay_sip_resolver_close(struct overlay_sip_resolver *r, overlay_sip_resolver_close_cb cb,
                                void *arg);

/*
 * Starts the resolution of uri (a SIP URI, NUL-terminated), with the contract of
 * struct sip_proxy_resolver: returns 0 and calls cb exactly once later from the loop
 * (status 0 and the destination, valid during the call; or -ETIMEDOUT, -ECANCELED,
 * -ENOENT / a libuv getaddrinfo error when the name does not exist, or an error of
 * overlay_sip_resolver_plan()), or returns an error and never calls cb: -EINVAL (not
 * a SIP URI: bad, or tel), -EPROTONOSUPPORT (sips, transport tls/sctp/unknown, or a
 * transport not enabled), -ENOBUFS (max_pending reached), -ECANCELED (closing),
 * -ENOMEM.  RFC 3263 4.1/4.2 rules applied here: maddr, else the host, is the target;
 * a numeric target is used as is (port or 5060, transport parameter or UDP); a name
 * with a port gets A/AAAA only (transport parameter or UDP); otherwise the plan.
 */
int overlay_sip_resolver_resolve(struct overlay_sip_resolver *r, const char *uri,
                                 sip_proxy_resolve_cb cb, void *arg);

/* Resolutions alive now (pending answers plus workers still running). */
size_t overlay_sip_resolver_pending(const struct overlay_sip_resolver *r);

/* The proxy hook: resolve = overlay_sip_resolver_resolve, ctx = r. */
struct sip_proxy_resolver overlay_sip_resolver_hook(struct overlay_sip_resolver *r);

#endif
