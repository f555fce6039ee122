/*
 * sip_proxy.h: the stateful proxy core (RFC 3261 16) of one node.
 *
 * The proxy is the transaction user of a struct sip_tsx_layer that it owns: the
 * daemon hands it every SIP message that arrives (sip_proxy_recv), runs its timers
 * (sip_proxy_advance at sip_proxy_next_deadline) and provides the send callback.
 * No I/O, no clock: time is an argument.
 *
 * Every method is proxied statefully (INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE,
 * SUBSCRIBE/NOTIFY, REFER, INFO, UPDATE, PRACK and unknown ones), except an ACK
 * to a 2xx, which is forwarded statelessly by its Route (16.11).  A REGISTER for a
 * domain of ours goes to the registrar (sip_proxy_set_registrar).
 *
 * Targets (16.5): a request with Route headers left after our own is popped is
 * sent on by the first Route (loose routing, in-dialog requests) with no lookup;
 * a Request-URI in one of our domains is looked up in the locator (404 unknown
 * AoR, 480 no live contact); any other host is forwarded to the Request-URI when
 * cfg.foreign is SIP_PROXY_FOREIGN_FORWARD, else refused with 404 or 403.
 *
 * Forking: RFC 3261 16.6 leaves the order to the proxy ("in parallel, or one at a
 * time, e.g. by q-value").  We fork in parallel to all the contacts of the highest
 * q-value, and if all of them fail (no 2xx, no 6xx, not cancelled) to the next
 * q-value group, and so on; equal q-values are never tried one after another.
 *
 * Names and addresses: RFC 3263 resolution of host names is the daemon's, through
 * the optional resolver hook (asynchronous, like the locator); numeric IP hosts are
 * turned into addresses here.  Without a resolver, a host name target fails that
 * branch with 503 (which goes upstream as 500, 16.7 step 6).  Tests never do DNS.
 */
#ifndef P2P_SIP_PROXY_H
#define P2P_SIP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/sip_locator.h"
#include "p2p/sip_tsx.h"

struct sip_proxy;
struct sip_registrar;

/* Result of a resolution: status 0 and the destination, or a negative errno. */
typedef void (*sip_proxy_resolve_cb)(int status, const struct sip_tsx_dest *dest, void *arg);

/*
 * RFC 3263 hook.  resolve() finds where to send a request for uri (a SIP URI,
 * NUL-terminated; its transport parameter, port and host as given).  Same contract
 * as the locator: 0 and exactly one later callback, never inside the call; or an
 * error and no callback.  Pending resolutions complete (-ECANCELED) before the
 * proxy is freed.
 */
struct sip_proxy_resolver {
    int (*resolve)(void *ctx, const char *uri, sip_proxy_resolve_cb cb, void *arg);
    void *ctx;
};

/*
 * Synchronous mapping of a host name that names another node of the overlay
 * ("<node-id>.node.invalid") to a destination (with dest->overlay set).  Returns 0,
 * or -ENOENT for any other host (which then goes to the resolver).
 */
struct sip_proxy_node_hook {
    int (*node_dest)(void *ctx, struct p2p_slice host, struct sip_tsx_dest *out);
    void *ctx;
};

enum sip_proxy_foreign {
    SIP_PROXY_FOREIGN_404,     /* a domain that is not ours: 404 Not Found (default) */
    SIP_PROXY_FOREIGN_403,     /* ... 403 Forbidden (no relaying) */
    SIP_PROXY_FOREIGN_FORWARD, /* ... forwarded to the Request-URI (RFC 3263) */
};

struct sip_proxy_config {
    struct sip_tsx_config tsx;   /* of the layer the proxy owns (Timer C: tsx.timer_c_ms) */
    const struct sip_self *self; /* kept; addrs[0] is what we put in Via and Record-Route */
    struct sip_locator locator;
    sip_tsx_send_cb send; /* every byte the proxy sends */
    void *send_arg;
    struct sip_proxy_resolver resolver; /* .resolve NULL: numeric hosts only */
    struct sip_proxy_node_hook nodes;   /* .node_dest NULL: no overlay */
    /* The loop's clock, read when an asynchronous completion (a lookup, a
     * resolution, a publish) resumes a request, so that its transaction timers
     * start from now and not from the last message (NULL: the time of the last
     * sip_proxy_recv / sip_proxy_advance). */
    uint64_t (*clock)(void *arg);
    void *clock_arg;
    enum sip_proxy_foreign foreign;
    bool record_route;   /* Record-Route on INVITE, SUBSCRIBE, REFER (default true) */
    size_t max_branches; /* targets forked to per request, <= SIP_LOOKUP_MAX (8) */
    size_t max_requests; /* requests in progress; beyond: 503 (10000) */
    /* Keep-alive of registered UDP contacts: every keepalive_ms (0: never) an
     * OPTIONS goes to each binding reached over UDP; with keepalive_remove, one
     * that gets no answer at all (Timer F, or a transport error) is removed from
     * the registrar early.  Any response, even 4xx, counts as an answer. */
    uint32_t keepalive_ms;
    bool keepalive_remove;
};

/* Fills cfg with the defaults (tsx defaults with 100 Trying at once, Timer C 200 s). */
void sip_proxy_config_default(struct sip_proxy_config *cfg);

/*
 * Creates the proxy and its transaction layer.  cfg is copied; self must outlive
 * the proxy.  Returns 0, -EINVAL (no send, no locator, no self address, bad
 * limits, or the tsx layer's own -EINVAL), -ENOMEM, -EIO.
 */
int sip_proxy_new(struct sip_proxy **out, const struct sip_proxy_config *cfg);

/*
 * Frees the proxy, its transactions and requests in progress, without sending
 * anything.  Locator and resolver operations must have completed first
 * (sip_locator.h).  NULL is a no-op.
 */
void sip_proxy_free(struct sip_proxy *p);

/*
 * Hands REGISTERs for our domains to reg (NULL: they are proxied like other
 * requests).  reg must be created with reply = sip_proxy_registrar_reply and
 * reply_arg = p.
 */
void sip_proxy_set_registrar(struct sip_proxy *p, struct sip_registrar *reg);

/*
 * sip_registrar_reply_cb that sends the registrar's answer on its transaction.
 * Answers given from a publish completion read cfg.clock (when set) for the
 * transaction's timers, else the time of the last sip_proxy_recv() /
 * sip_proxy_advance() call.
 */
void sip_proxy_registrar_reply(void *txn, const char *msg, size_t len, void *arg);

/*
 * Feeds one SIP message (len bytes, one datagram or one framed stream message)
 * from src.  Unparseable or invalid requests get a stateless 400 when they can
 * be answered (RFC 3261 8.2, 16.3 step 1), other garbage is dropped; everything
 * else goes through the transaction layer to the proxy logic.  Returns 0, or
 * -EBADMSG / -EMSGSIZE when the message was dropped (for counters and logs).
 */
int sip_proxy_recv(struct sip_proxy *p, const char *buf, size_t len, const struct sip_tsx_dest *src,
                   uint64_t now_ms);

/*
 * Runs the transaction timers and the keep-alive round due at now_ms.  The
 * keep-alive schedule starts at the first call, so call it once at start.
 */
void sip_proxy_advance(struct sip_proxy *p, uint64_t now_ms);

/* When sip_proxy_advance() must run next, UINT64_MAX when nothing is armed. */
uint64_t sip_proxy_next_deadline(const struct sip_proxy *p);

/*
 * The destination behind conn_id is gone (another node of the overlay stopped
 * answering): every branch waiting on it fails at once, with 480 for a node of the
 * overlay (its user is temporarily unavailable), 503 otherwise, instead of waiting
 * for Timer B.  Returns how many transactions failed.
 */
size_t sip_proxy_dest_failed(struct sip_proxy *p, uint64_t conn_id, int err, uint64_t now_ms);

/* Requests in progress (server transactions the proxy is answering). */
size_t sip_proxy_requests(const struct sip_proxy *p);

/*
 * A MESSAGE the daemon hands to the phones registered here for aor (a message kept
 * for them while they were offline): one client transaction per binding, From
 * `from` (a name-addr, a tag is added), To aor, with the given Content-Type and
 * body.  cb(status, arg) runs once, later: the best final status (a 2xx if any phone
 * took it; 408 when none answered), or -ECANCELED from sip_proxy_free.  Returns 0,
 * -ENOENT (no binding here), -EHOSTUNREACH (no binding reachable), -EMSGSIZE,
 * -EINVAL, -ENOMEM (then no callback).
 */
typedef void (*sip_proxy_deliver_cb)(int status, void *arg);
int sip_proxy_deliver_message(struct sip_proxy *p, const char *aor, const char *from,
                              const char *content_type, const uint8_t *body, size_t len,
                              sip_proxy_deliver_cb cb, void *arg, uint64_t now_ms);
/* The caller of deliveries with this arg goes away: their callbacks never run. */
void sip_proxy_deliver_cancel(struct sip_proxy *p, void *arg);

/* The transaction layer (counters, status). */
struct sip_tsx_layer *sip_proxy_tsx(struct sip_proxy *p);

/*
 * Converts a numeric host (IPv4, or IPv6 with or without brackets) and port into
 * a destination.  transport: "UDP", "TCP", "TLS" (case-insensitive; empty: UDP).
 * Returns 0, -EINVAL for a host name or an unknown transport.
 */
int sip_proxy_numeric_dest(struct p2p_slice host, uint16_t port, struct p2p_slice transport,
                           uint64_t conn_id, struct sip_tsx_dest *out);

#endif
