/*
 * sip_locator.h: where an address of record can be reached, and who we are.
 *
 * The proxy and the registrar never look in a database or the DHT themselves:
 * they ask a locator, an ops struct the daemon provides (local bindings first,
 * then the DHT).  Both operations are asynchronous from the first day, because a
 * DHT get or a quorum put takes round trips:
 *
 *   lookup(aor)                 -> the current bindings of an AoR;
 *   publish(aor, changes[])     -> store/refresh/remove bindings of one AoR.
 *
 * Contract of every locator (libuv's): an op that returns 0 calls its callback
 * exactly once, later, never from inside the call; an op that returns an error
 * never calls it.  On shutdown, pending ops complete with -ECANCELED, and the
 * locator must be shut down (all callbacks run) before the registrar or proxy
 * that issued them is freed.
 *
 * sip_locator_local (locator.c) is the local-only implementation: lookups are
 * answered from a registrar's own bindings, publishes always succeed.  Since
 * sip/ has no event loop, it queues its completions and runs them in
 * sip_locator_local_run(), which the daemon calls once per loop turn (an idle or
 * check handle armed while sip_locator_local_pending() is non-zero); tests call it
 * by hand, which keeps them deterministic.
 *
 * struct sip_self is the proxy's "who am I": every host:port it answers on (the
 * listen addresses and the advertised one), and the domains it is responsible
 * for.  RFC 3261 16.4 and 19.1.4: a URI is ours only when host AND port match
 * (the seed compared hosts only and looped between two nodes on one machine).
 */
#ifndef P2P_SIP_LOCATOR_H
#define P2P_SIP_LOCATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/slice.h"

#define SIP_AOR_MAX 256     /* canonical AoR, NUL included */
#define SIP_CONTACT_MAX 512 /* contact URI, NUL included */
#define SIP_CALLID_MAX 256  /* Call-ID, NUL included */
#define SIP_INSTANCE_MAX 128
#define SIP_HOP_MAX 128        /* next-hop URI of a binding reached through another node */
#define SIP_NODE_HOST_MAX 96   /* an overlay node name, sip_self.node_host */
#define SIP_HOST_MAX 64        /* numeric address text, IPv6 without brackets */
#define SIP_LOOKUP_MAX 32      /* bindings one lookup may return */
#define SIP_PUBLISH_MAX 16     /* changes one publish may carry */
#define SIP_SELF_MAX 8         /* host:port entries of struct sip_self */
#define SIP_SELF_DOMAINS_MAX 8 /* domains of struct sip_self */

/*
 * How to reach the phone that registered a binding: the address its REGISTER
 * came from (RFC 3581 received/rport; phones behind NAT are reached there, not at
 * their Contact), the transport, and for TCP/TLS the connection it came on, so
 * requests reuse it (RFC 5626 spirit; the daemon may fall back to a new
 * connection when conn_id is gone).
 */
struct sip_path {
    char host[SIP_HOST_MAX]; /* empty: no path, use the contact URI */
    uint16_t port;
    char transport[8]; /* "UDP", "TCP", "TLS" as in Via */
    uint64_t conn_id;  /* 0: none */
};

struct sip_binding {
    char aor[SIP_AOR_MAX];         /* canonical (sip_uri_aor) */
    char contact[SIP_CONTACT_MAX]; /* the Contact URI, as the phone wrote it */
    /* Where a request for this binding goes first, when not to the contact itself:
     * a URI whose host the proxy's node_dest hook knows (another node of the
     * overlay, which proxies on to the phone).  "" for a local phone. */
    char hop[SIP_HOP_MAX];
    uint64_t expires_ms; /* absolute, on the registrar's clock */
    uint16_t q;          /* q-value times 1000; 1000 when absent */
    char call_id[SIP_CALLID_MAX];
    uint32_t cseq;
    struct sip_path path;
    char instance[SIP_INSTANCE_MAX]; /* +sip.instance (RFC 5626), "" when absent */
};

struct sip_binding_change {
    const struct sip_binding *binding;
    bool remove; /* false: add or refresh */
};

/*
 * Lookup result.  status 0: n bindings (n may be 0: the AoR is known but has no
 * live contact); -ENOENT: the AoR is unknown; other negative errno: the lookup
 * failed (e.g. -ETIMEDOUT, -ECANCELED).  The array is valid during the call only.
 */
typedef void (*sip_locator_lookup_cb)(int status, const struct sip_binding *bindings, size_t n,
                                      void *arg);

/* Publish result: 0 when every change is stored, else a negative errno. */
typedef void (*sip_locator_publish_cb)(int status, void *arg);

struct sip_locator_ops {
    /* Finds the bindings of a canonical AoR.  0 or -errno (then no callback). */
    int (*lookup)(void *ctx, const char *aor, sip_locator_lookup_cb cb, void *arg);
    /* Stores n (1..SIP_PUBLISH_MAX) changes of one AoR.  The array and bindings are
     * only valid during the call (copy them).  0 or -errno (then no callback). */
    int (*publish)(void *ctx, const struct sip_binding_change *changes, size_t n,
                   sip_locator_publish_cb cb, void *arg);
    /* Optional: drops every pending lookup whose callback argument is arg; their
     * callbacks never run (a request ended by CANCEL while its lookup, a DHT get,
     * was still under way).  May be NULL: the proxy then waits for the callback. */
    void (*cancel)(void *ctx, void *arg);
    /* Optional: keeps a phone's MESSAGE to an AoR that has no live binding, for the
     * AoR's phone to get when it registers (offline messages).  raw is the request
     * as received, valid during the call only.  cb(0): kept, the proxy answers 202;
     * -ENOENT: no one to keep it for (404); -EMSGSIZE: too large to keep (513);
     * another -errno: 480.  0 or -errno (then no callback, and the proxy answers as
     * without it); cancel(arg) drops it as it drops a lookup. */
    int (*keep)(void *ctx, const char *aor, const char *raw, size_t len, sip_locator_publish_cb cb,
                void *arg);
};

struct sip_locator {
    const struct sip_locator_ops *ops;
    void *ctx;
};

/* One address we answer on. */
struct sip_self_addr {
    char host[SIP_HOST_MAX + 2]; /* IP or name as it appears in URIs (IPv6 in brackets) */
    uint16_t port;               /* never 0 */
};

struct sip_self {
    struct sip_self_addr addrs[SIP_SELF_MAX];
    size_t naddrs;
    /* Domains we serve (R-URI hosts looked up in the locator).  Empty list: any
     * domain that is not one of our addresses is treated as ours too, which is the
     * P2P default: every node is the registrar of any AoR its phones use. */
    char domains[SIP_SELF_DOMAINS_MAX][SIP_HOST_MAX + 2];
    size_t ndomains;
    uint16_t default_port; /* port meant by a URI without one (5060 per RFC; we use
                              our SIP port so that sip:node-ip means us) */
    /* The node's name on the overlay side ("<node-id>.node.invalid", or while it is a
     * client "<node-id>.<super-node-id>.node.invalid"), "" when none: the
     * Record-Route a node adds facing other nodes, while phones on its host see
     * addrs[0].  sip_self_is_me() knows it (any name whose first label is our node
     * ID, with no port or default_port). */
    char node_host[SIP_NODE_HOST_MAX];
};

/*
 * Adds host:port to self.  Returns 0, -ENOSPC when full or host too long,
 * -EINVAL for port 0.
 */
int sip_self_add_addr(struct sip_self *self, const char *host, uint16_t port);

/* Adds a served domain.  Returns 0, -ENOSPC. */
int sip_self_add_domain(struct sip_self *self, const char *domain);

/*
 * True when host:port is one of our addresses: host compared case-insensitively,
 * IPv6 with or without brackets.  port 0 (a URI without a port) stands for
 * self->default_port.
 */
bool sip_self_is_me(const struct sip_self *self, struct p2p_slice host, uint16_t port);

/* True when host (an address as text, IPv6 with or without brackets) is the host
 * of one of our addresses, whatever the port: "this machine". */
bool sip_self_has_host(const struct sip_self *self, struct p2p_slice host);

/*
 * True when an R-URI with this host:port is for a domain we are responsible for
 * (then the locator is asked, RFC 3261 16.5): our own address, a listed domain,
 * or any host that is not an IP literal when the domain list is empty.
 */
bool sip_self_is_domain(const struct sip_self *self, struct p2p_slice host, uint16_t port);

/* ---- the local-only locator ---- */

struct sip_registrar;
struct sip_locator_local;

/*
 * Creates a locator that answers lookups from a registrar's bindings (RFC 3261
 * 10.3: the location service of this registrar) and accepts every publish.  At
 * most max_pending operations may wait for sip_locator_local_run(); beyond, ops
 * fail with -EAGAIN.  The registrar is attached afterwards, since it is created
 * with this locator.  Returns 0, -EINVAL or -ENOMEM.
 */
int sip_locator_local_new(struct sip_locator_local **out, size_t max_pending);

/* Sets the registrar whose bindings lookups return (none: every AoR is unknown). */
void sip_locator_local_attach(struct sip_locator_local *loc, struct sip_registrar *reg);

/* Runs every pending op with -ECANCELED, then frees.  NULL is a no-op. */
void sip_locator_local_free(struct sip_locator_local *loc);

/* The ops struct to give to the registrar and proxy. */
struct sip_locator sip_locator_local_get(struct sip_locator_local *loc);

/*
 * Completes the operations queued before this call (those queued by their
 * callbacks wait for the next call), in order, answering lookups with the
 * registrar's bindings as they are now at now_ms.  Returns how many completed.
 */
size_t sip_locator_local_run(struct sip_locator_local *loc, uint64_t now_ms);

/* Operations waiting for sip_locator_local_run(). */
size_t sip_locator_local_pending(const struct sip_locator_local *loc);

#endif
