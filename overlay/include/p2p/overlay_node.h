/*
 * overlay_node.h: a p2psip node on the network: sockets, secure channels, the DHT,
 * bootstrap and LAN discovery, roles, pipes and health, on one libuv loop.
 *
 * What it is.  dht/ is a pure library; this module puts it on the network.  It owns
 * the P2P UDP socket (IPv4 and IPv6), the multicast discovery socket and a probe
 * socket, runs one secure channel (overlay_secure.h: Noise XXpsk0, AEAD, replay
 * window) per peer node, and carries inside those channels the DHT's messages, pipe
 * datagrams between node IDs, and the overlay's own control messages (attach, probe,
 * proxy, relay).  docs/OVERLAY-WIRE.md is the wire.
 *
 * Roles (the seed's, with criteria).  A node started with `server` (-s) creates a
 * ring and is a super-node at once.  Any other node first finds a super-node (the
 * bootstrap list, then its saved peers, then LAN multicast), opens a channel to it
 * and ATTACHes as a client: it sits in no leaf set and uses the DHT through its
 * super-node (PROXY).  Once it has been up for promote_after_ms AND its super-node
 * has verified that it can be reached from outside (a PROBE sent from the
 * super-node's separate probe socket to the address the client advertises, which a
 * NAT drops), it joins the ring as a member; every member is a super-node for the
 * clients that attach to it.  A node that cannot be reached stays a client: its
 * super-node keeps the channel the client opened and relays to it.
 *
 * Addresses.  Peers are known by node ID; the address used for a peer is the source
 * of its last authenticated frame (so a peer whose address changed is followed at
 * once, like WireGuard's roaming), else the address the DHT or discovery gave.  The
 * address a node advertises in the DHT is the local address the kernel uses toward
 * its super-node (never a loopback address unless the super-node is on loopback, and
 * never 127.0.1.1), verified by the reachability probe.
 *
 * Health.  A member is cut off when no leaf-set member has answered for cutoff_ms; a
 * client when its super-node has not.  A cut-off node says so (ops->health), keeps
 * retrying its bootstrap list, saved peers and discovery with backoff, and is healthy
 * again as soon as a peer answers.  A `server` node alone is a healthy ring of one.
 *
 * Bounds.  Channels (max_peers), messages queued per peer while its handshake runs,
 * half-open handshakes, attached clients, requests proxied for clients and by us,
 * every one has a cap; input that does not decode, authenticate or fit is dropped and
 * counted (overlay_node_stats), never logged per packet above debug level.
 *
 * Threads: everything runs on the loop thread; callbacks never run inside the call
 * that armed them; overlay_node_close completes every pending operation with
 * -ECANCELED (from inside the call: the shutdown exception of sip_locator.h).
 */
#ifndef P2P_OVERLAY_NODE_H
#define P2P_OVERLAY_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "p2p/dht_node.h"
#include "p2p/overlay_addr.h"
#include "p2p/overlay_secure.h"

struct p2p_log;
struct overlay_node;

#define OVERLAY_BOOTSTRAP_MAX 32

enum overlay_role {
    OVERLAY_ROLE_SEEKING = 0, /* looking for a super-node */
    OVERLAY_ROLE_CLIENT,      /* attached to a super-node, not in the ring */
    OVERLAY_ROLE_MEMBER,      /* in the ring (and a super-node for clients) */
    OVERLAY_ROLE_SUPER,       /* started the ring (-s); a member too */
};

const char *overlay_role_name(enum overlay_role role);

struct overlay_node_config {
    const struct ovl_identity *identity; /* borrowed; must outlive the node */
    uint8_t psk[OVL_KEY_LEN];            /* ovl_psk_from_secret() */
    uint16_t port;                       /* P2P UDP port; 0 = any */
    bool port_fallback;                  /* port taken: take any free port instead */
    bool server;                         /* start a ring (-s) */
    bool multicast;                      /* LAN discovery */
    uint16_t discovery_port;
    /* Where to look for a super-node, in order: bootstrap, then saved peers. */
    struct sockaddr_storage bootstrap[OVERLAY_BOOTSTRAP_MAX];
    size_t n_bootstrap;
    struct dht_peer saved[OVERLAY_BOOTSTRAP_MAX];
    size_t n_saved;
    struct dht_config dht;     /* the DHT's settings (seed, leaf set, replicas...) */
    struct dht_store *store;   /* borrowed; must outlive the node */
    uint32_t promote_after_ms; /* up this long before promotion */
    uint32_t cutoff_ms;        /* no answer this long: cut off */
    unsigned max_peers;        /* channels; 0 = 1024 */
    unsigned max_clients;      /* clients attached to us; 0 = 256 */
};

/* Fills the defaults (no identity or store: the caller must set those). */
void overlay_node_config_init(struct overlay_node_config *cfg);

/*
 * A pipe datagram arrived from node `from` for `service`.  relay is NULL when it came
 * straight from `from` over `from`'s own authenticated channel; otherwise it is the
 * node that relayed it (a super-node), which vouches for `from`.
 */
typedef void (*overlay_pipe_cb)(void *arg, const struct dht_id *from, const struct dht_id *relay,
                                uint16_t service, const uint8_t *buf, size_t len);

struct overlay_node_ops {
    /* Health changed (cut_off true: no peer answers).  Optional. */
    void (*health)(void *arg, bool cut_off);
    /* Role changed (client, member...).  Optional. */
    void (*role)(void *arg, enum overlay_role role);
    /* A pipe datagram arrived.  Optional. */
    overlay_pipe_cb pipe;
    /* Node `id` stopped answering: a handshake to it failed, or a pipe datagram to
     * it got no sign of life within about a second (fast failure of calls to a dead
     * node).  Optional. */
    void (*unreachable)(void *arg, const struct dht_id *id);
    /* Every DHT message sent, received or dropped (for -d).  Optional; must not call
     * back into the node. */
    void (*observe)(void *arg, enum dht_obs_event ev, const struct dht_peer *peer,
                    const uint8_t *buf, size_t len, int reason);
    /* The DHT node's leaf-set, routing-table and store changes (dht_node_ops.event).
     * Optional; must not call back into the node. */
    void (*event)(void *arg, const struct dht_node_event *ev);
    void *arg;
};

/* Counters (read-only view; the DHT's own are in dht_node_counters). */
struct overlay_node_stats {
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t dropped_malformed; /* not a frame of ours, bad version, truncated */
    uint64_t dropped_auth;      /* handshake or AEAD failure (another secret, tampering) */
    uint64_t dropped_replay;    /* counter already seen or below the window */
    uint64_t dropped_forged;    /* inner sender ID is not the channel's authenticated ID */
    uint64_t dropped_nosession; /* DATA for an index we do not have */
    uint64_t dropped_full;      /* a queue or table at its cap */
    uint64_t dropped_inner;     /* an inner message that does not decode */
    uint64_t handshakes_started, handshakes_done, handshakes_failed, rekeys;
    uint64_t send_errors;
    uint64_t discover_sent, discover_recv;
    uint64_t probes_sent, probes_ok;
    uint64_t probes_refused; /* a client asked us to probe an address that is not its own */
    uint64_t proxied_for_clients, relayed;
    uint64_t pipe_sent, pipe_recv;
    uint64_t tcp_frames_in, tcp_frames_out, tcp_accepted, tcp_connect_failed;
};

/*
 * Creates the node on loop: binds the P2P sockets (and the discovery socket when
 * cfg->multicast), but sends nothing until overlay_node_start.  cfg and ops are
 * copied.  Returns 0, -EINVAL, -ENOMEM, or the libuv error of a bind (-EADDRINUSE).
 */
int overlay_node_new(struct overlay_node **out, uv_loop_t *loop,
                     const struct overlay_node_config *cfg, const struct overlay_node_ops *ops,
                     struct p2p_log *log);

/* Starts: a server creates its ring; any other node starts looking for a super-node. */
int overlay_node_start(struct overlay_node *node);

/*
 * Stops: every pending put/get/lookup completes with -ECANCELED (inside this call),
 * every handle is closed, and cb (may be NULL) runs once the memory is freed.
 */
void overlay_node_close(struct overlay_node *node, void (*cb)(void *arg), void *arg);

/* ---- the DHT, as a member or through the super-node ---------------------------- */

/*
 * Stores a signed record (dht_node_put semantics), directly when we are a member,
 * else through our super-node.  cb(0, acks) on quorum, cb(-errno) otherwise (never
 * from inside this call).  Returns 0, -ENOTCONN (neither member nor client yet),
 * -EBUSY, -EINVAL, -ENOMEM.
 */
int overlay_node_put(struct overlay_node *node, const struct dht_record *rec, dht_put_cb cb,
                     void *arg);

/* Live values under key (dht_node_get semantics), as above. */
int overlay_node_get(struct overlay_node *node, const struct dht_id *key, dht_get_cb cb, void *arg);

/* The root of key and the hops taken (dht_node_lookup semantics), as above. */
int overlay_node_lookup(struct overlay_node *node, const struct dht_id *key, dht_lookup_cb cb,
                        void *arg);

/* The same, traced hop by hop (dht_node_trace); a member only: -EOPNOTSUPP on a client,
 * whose lookups run at its super-node. */
int overlay_node_trace(struct overlay_node *node, const struct dht_id *key, dht_trace_cb cb,
                       void *arg);

/*
 * Cancels every pending put/get/lookup whose callback argument is arg: their
 * callbacks never run.  Returns how many were cancelled.
 */
size_t overlay_node_cancel(struct overlay_node *node, void *arg);

/* ---- pipes --------------------------------------------------------------------- */

/*
 * Sends a datagram to node `to` for `service` over the authenticated channel: direct
 * when we have (or can open) a channel to it, else relayed through `via` (its
 * super-node, NULL when unknown).  A client sends everything through its super-node.
 * A member that knows neither `to` nor `via` finds the node's address with a DHT
 * lookup of its ID first (the datagram waits, bounded, up to the lookup's timeout).
 * A super-node relays only for its own clients (to one, or from one).  Returns 0
 * when handed on (delivery is not guaranteed, as for UDP), -EMSGSIZE, -EHOSTUNREACH
 * (no channel and no way to find one), -ENOBUFS.
 */
int overlay_node_pipe_send(struct overlay_node *node, const struct dht_id *to,
                           const struct dht_id *via, uint16_t service, const uint8_t *buf,
                           size_t len);

/* ---- views ----------------------------------------------------------------------- */

enum overlay_role overlay_node_role(const struct overlay_node *node);
/* True while node `id` is known to be gone (declared unreachable lately and not heard
 * from since): a binding through it is stale. */
bool overlay_node_peer_dead(const struct overlay_node *node, const struct dht_id *id);
/* The ring's node, NULL while not a member. */
struct dht_node *overlay_node_dht(const struct overlay_node *node);
/* The super-node we are attached to (clients): 0 and *out, or -ENOENT. */
int overlay_node_super(const struct overlay_node *node, struct dht_peer *out);
bool overlay_node_cut_off(const struct overlay_node *node);
/* The UDP port bound (after a fallback, the one actually used). */
uint16_t overlay_node_port(const struct overlay_node *node);
/* The address advertised in the DHT (len 0 before the node knows it). */
const struct dht_addr *overlay_node_advertised(const struct overlay_node *node);
const struct overlay_node_stats *overlay_node_stats(const struct overlay_node *node);
uint64_t overlay_node_uptime_ms(const struct overlay_node *node);

/* One peer with a channel (for status, `p2psipctl peers` and saving peers). */
struct overlay_peer_view {
    struct dht_peer peer;  /* ID and current address (dht_addr encoding below) */
    bool up;               /* channel established */
    bool client;           /* attached to us as a client */
    bool is_super;         /* our super-node */
    uint64_t last_recv_ms; /* loop time of its last authentic frame, 0 = never */
    uint64_t frames_in, frames_out;
};

/* Calls cb for each peer with a channel or a handshake; cb returning non-zero stops. */
int overlay_node_peers(const struct overlay_node *node,
                       int (*cb)(const struct overlay_peer_view *p, void *arg), void *arg);

#endif
