/*
 * dht_node.h: one Bamboo-style DHT node as a pure library.
 *
 * The node owns its routing state (dht_route.h) and speaks the wire format of
 * dht_msg.h; it stores records in a dht_store it is given.  It has no sockets and
 * no clock: messages leave through ops->send, arrive through dht_node_recv, and
 * time is the now_ms argument.  The caller sleeps until dht_node_next_deadline()
 * and then calls dht_node_advance(); the simulator runs 1000 nodes this way on a
 * virtual clock, the daemon on a libuv timer.
 *
 * Two clocks.  now_ms is a monotonic clock (the daemon passes uv_now()): every
 * timer, RTT sample, deadline and rate limit of the node uses it, and it must never
 * go back.  Records carry absolute Unix times (expiry_ms), so everything that asks
 * the store (puts, gets, expiry sweeps, handoff, anti-entropy) uses wall-clock Unix
 * milliseconds instead, read through dht_node_set_wall_clock()'s callback at the
 * moment of each store call.  Without that callback the wall clock is now_ms itself
 * (the simulator and the unit tests, which stay deterministic).  A wall clock that
 * steps back or forward therefore changes which records are live, never when a
 * timer fires.
 *
 * Protocol (docs/DHT-WIRE.md): recursive routing with a per-hop ACK; a hop that
 * does not acknowledge within its RTO (RFC 6298 per neighbour; a neighbour without
 * samples gets the node-wide estimate; hop_floor_ms for routed messages) is
 * suspected, the message is rerouted at once to the next best hop (naming the
 * failed hops in its AVOID attribute, which later hops skip and probe), and the
 * suspect is probed with backed-off PINGs and removed after cfg.suspect_probes
 * failures.
 * Responses go straight to the origin, which resends a request after two node-wide
 * RTOs (request_retry_min_ms at least), doubling up to request_retry_ms, until
 * request_timeout_ms.  Join: routed to the joiner's own ID; every hop sends its
 * routing rows, the root its leaf set; the joiner then announces itself to its
 * leaf set, whose members answer with theirs.  Nodes learned second-hand are
 * probed before use; a node that messages us is alive and learned at once.
 * Maintenance (all periods jittered +-50%): leaf-set push/pull with a random leaf,
 * pings of leaves and table entries not heard from, local tuning (ROW_REQ to a
 * table entry), global tuning (lookups for empty cells), anti-entropy with a
 * replica neighbour.  The tuning draws on a byte budget (it is what can wait);
 * failure detection, leaf-set upkeep and anti-entropy never do.  Reactive
 * leaf-set repair is rate-limited (repair_min_ms).
 *
 * Storage: the root stores a put, replicates it to its cfg.replicas closest leaves
 * and answers after cfg.quorum acknowledgements.  When the leaf set changes,
 * records are handed to members that joined their replica set.  Gets are answered
 * by the root or by a replica on the path that holds the key.
 *
 * Callbacks never run inside the call that armed them: completions are delivered
 * from dht_node_recv or dht_node_advance, and on shutdown from dht_node_close.
 */
#ifndef P2P_DHT_NODE_H
#define P2P_DHT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"
#include "p2p/dht_msg.h"
#include "p2p/dht_record.h"
#include "p2p/dht_route.h"
#include "p2p/dht_store.h"

struct dht_node;

struct dht_config {
    unsigned leaf_half;            /* L: leaves per side, default 8 */
    unsigned replicas;             /* R: replicas besides the root, default 4 */
    unsigned quorum;               /* replica acks before a put succeeds, default 2 */
    struct dht_rto_config rto;     /* initial 1000, floor 200, cap 10000 ms */
    uint32_t leaf_ping_ms;         /* ping a leaf not heard from for this long: 5000 */
    uint32_t rt_ping_ms;           /* same for table entries (4 per second at most): 60000, */
    uint32_t rt_ping_min_ms;       /* down to this (15000) as leaf deaths show churn */
    uint32_t leafset_ms;           /* leaf-set push/pull with a random leaf: 15000 */
    uint32_t local_tune_ms;        /* ROW_REQ to a table entry: 60000 */
    uint32_t global_tune_ms;       /* lookup for an empty cell: 120000 */
    uint32_t sync_ms;              /* anti-entropy round: 30000 */
    uint32_t expire_ms;            /* store sweep: 10000 */
    uint32_t repair_min_ms;        /* reactive leaf-set repair at most this often: 500 */
    uint32_t handoff_delay_ms;     /* wait after a leaf-set change before handing off: 200 */
    unsigned suspect_probes;       /* failed probes before removal: 3 */
    unsigned direct_retries;       /* retransmissions of a direct message: 2 */
    uint32_t cutoff_ms;            /* "cut off" after no leaf answered this long: 30000 */
    uint32_t hop_floor_ms;         /* floor of a routed message's per-hop timer: 50 */
    uint32_t request_retry_min_ms; /* origin resends after 2 node-wide RTOs, */
    uint32_t request_retry_ms;     /* at least this (150) and at most this (2000) */
    uint32_t request_timeout_ms;   /* and gives up: 8000 */
    uint32_t join_timeout_ms;      /* a join gives up: 30000 */
    uint32_t put_timeout_ms;       /* root waits for the quorum: 4000 */
    uint32_t byte_budget;          /* bytes/s that let routing-table tuning run: 200 */
    unsigned max_pending;          /* unacknowledged messages in flight: 256 */
    unsigned max_requests;         /* client requests in flight: 256 */
    uint64_t seed;                 /* PRNG seed for jitter and random choices */
};

/* Fills cfg with the defaults above (seed 1). */
void dht_config_init(struct dht_config *cfg);

enum dht_obs_event {
    DHT_OBS_SENT,
    DHT_OBS_RECV,
    DHT_OBS_DROPPED, /* received but refused: see reason (-errno) */
};

/* A change of the node's state, for live events (dht_node_ops.event). */
enum dht_node_event_kind {
    DHT_EV_NEIGHBOUR,         /* peer's membership bits went from before to after */
    DHT_EV_RECORD_STORED,     /* a record under key stored here as its root (a put) */
    DHT_EV_RECORD_REPLICATED, /* one stored here by replication (or handoff, repair) */
    DHT_EV_RECORD_EXPIRED,    /* one under key expired */
    DHT_EV_RECORD_DROPPED,    /* one under key handed off: no longer this node's */
};

struct dht_node_event {
    enum dht_node_event_kind kind;
    const struct dht_peer *peer; /* DHT_EV_NEIGHBOUR */
    unsigned before, after;      /* DHT_EV_NEIGHBOUR: DHT_NBR_RT | DHT_NBR_PRED | DHT_NBR_SUCC */
    const struct dht_id *key;    /* DHT_EV_RECORD_* */
    bool tombstone;              /* DHT_EV_RECORD_STORED/REPLICATED: a removal */
};

struct dht_node_ops {
    /*
     * Sends buf to peer `to` (its address; `to->id` may be all-zero for a bootstrap
     * whose ID is unknown).  The buffer is only valid during the call.  A negative
     * return counts as a loss (the retransmission logic still applies).
     */
    int (*send)(void *arg, const struct dht_peer *to, const uint8_t *buf, size_t len);
    /*
     * Optional: every message sent, received or dropped (for -d traces and the
     * viewer).  peer is the destination or the sender as far as known; reason is 0
     * or the -errno that caused a drop.  Must not call back into the node.
     */
    void (*observe)(void *arg, enum dht_obs_event ev, const struct dht_peer *peer,
                    const uint8_t *buf, size_t len, int reason);
    /* Optional: each change of the leaf set, routing table and store, as it
     * happens.  Must not call back into the node. */
    void (*event)(void *arg, const struct dht_node_event *ev);
    void *arg;
};

/* Per-type and overall counters (read-only view). */
struct dht_counters {
    uint64_t msgs_sent[DHT_MSG_TYPE_MAX + 1], bytes_sent[DHT_MSG_TYPE_MAX + 1];
    uint64_t msgs_recv[DHT_MSG_TYPE_MAX + 1], bytes_recv[DHT_MSG_TYPE_MAX + 1];
    uint64_t maint_bytes_sent;  /* everything not flagged CLIENT */
    uint64_t client_bytes_sent; /* lookups/puts/gets, their replies, replication of puts */
    uint64_t dropped_malformed, dropped_oversize, dropped_unknown, dropped_badkey,
        dropped_badrecord, dropped_loop, dropped_nopending;
    uint64_t acks_unmatched;
    uint64_t timeouts, reroutes, retransmits, suspects, removed;
    uint64_t records_refused, records_stored, handoff_records, sync_rounds, sync_fetched;
    uint64_t budget_skipped, repairs;
    uint64_t gets_deferred; /* GETs left unanswered by a root holding nothing mid-repair */
};

typedef void (*dht_join_cb)(int status, void *arg);
/* root is the node the key maps to; hops the number of routing hops taken. */
typedef void (*dht_lookup_cb)(int status, const struct dht_peer *root, unsigned hops, void *arg);
/* A traced lookup's route: from this node (path[0]) to the root (last). */
struct dht_trace {
    struct dht_peer root;
    unsigned hops; /* routing hops taken, also those the path had no room for */
    unsigned n_path;
    struct dht_path_hop path[DHT_MSG_PATH_MAX]; /* rtt_ms: to the next hop, 0 at the root */
};
/* t valid only during the call; NULL unless status is 0. */
typedef void (*dht_trace_cb)(int status, const struct dht_trace *t, void *arg);
/* status 0: stored at the root and acked by `acks` replicas (>= quorum or all there are). */
typedef void (*dht_put_cb)(int status, unsigned acks, void *arg);
/* recs valid only during the call; n == 0 with status 0 means "no such key". */
typedef void (*dht_get_cb)(int status, const struct dht_record *recs, size_t n, void *arg);

/*
 * Creates a node whose ID is BLAKE2b-160(pubkey), reachable at self_addr.  The
 * store is borrowed (must outlive the node); ops is copied.  cfg NULL = defaults.
 * Returns 0, -EINVAL (bad config), -ENOMEM.  The node is not part of a ring until
 * dht_node_join.
 */
int dht_node_new(struct dht_node **out, const uint8_t pubkey[DHT_PUBKEY_LEN],
                 const struct dht_addr *self_addr, const struct dht_config *cfg,
                 struct dht_store *store, const struct dht_node_ops *ops, uint64_t now_ms);

/*
 * Wall-clock Unix time in milliseconds (the daemon: uv_clock_gettime(UV_CLOCK_REALTIME)),
 * for the store's expiry rules.  Called from inside dht_node_recv/advance/put/...;
 * must not call back into the node.
 */
typedef uint64_t (*dht_wall_ms_cb)(void *arg);

/*
 * Makes the node read wall-clock time for everything the store decides (record
 * expiry, keep-until of tombstones, the TTL cap) from wall_ms(arg), while timers keep
 * the monotonic now_ms arguments.  wall_ms NULL restores the default: wall time is
 * now_ms.  Call it right after dht_node_new.
 */
void dht_node_set_wall_clock(struct dht_node *node, dht_wall_ms_cb wall_ms, void *arg);

/*
 * Shuts the node down, synchronously: every pending join, lookup, put and get
 * callback runs exactly once, from inside this call, with -ECANCELED (the one
 * exception to "never inside the arming call": it is what sip_locator.h promises
 * on shutdown), in no particular order.  From the start of the call the node is
 * closed: it sends nothing more, forgets messages in flight, dht_node_join/lookup/
 * put/get return -ECANCELED, dht_node_recv returns -ECANCELED, dht_node_advance
 * does nothing and dht_node_next_deadline returns UINT64_MAX.  So a callback may
 * call back into the node: it is refused, or (dht_node_cancel) drops requests
 * whose callbacks then do not run, or (dht_node_close) does nothing.  May itself be
 * called from inside one of the node's callbacks; the remaining callbacks then run
 * before it returns.  The read-only views stay valid until dht_node_free.  A second
 * call and NULL are no-ops.
 */
void dht_node_close(struct dht_node *node);

/*
 * Drops every pending join, lookup, put and get whose callback argument is arg
 * (pointer equality; NULL matches requests armed with NULL): their callbacks never
 * run, and an answer that still arrives is ignored.  For a caller whose own
 * transaction ended first (a SIP CANCEL, a timer, its own shutdown) and that will
 * free arg.  Other requests are unaffected.  Safe from inside a callback of the
 * node.  Cancelling a join that has not completed leaves the node unjoined (it may
 * join again).  Returns how many requests were dropped.
 */
size_t dht_node_cancel(struct dht_node *node, const void *arg);

/*
 * Frees the node.  Pending callbacks are NOT called (what a crash looks like; the
 * simulator kills nodes this way): a caller that promised its users a completion
 * calls dht_node_close() first.  NULL is a no-op.  Never from inside a callback of
 * the node.
 */
void dht_node_free(struct dht_node *node);

const struct dht_id *dht_node_id(const struct dht_node *node);
const struct dht_peer *dht_node_self(const struct dht_node *node);

/*
 * The node's own address changed (the host moved): messages it sends from now on
 * (ORIGIN of its requests, its entry in leaf sets and rows it sends) carry addr.
 * An addr longer than DHT_ADDR_MAX is ignored.
 */
void dht_node_set_addr(struct dht_node *node, const struct dht_addr *addr);

/*
 * Joins the ring through bootstrap, or starts a new ring when bootstrap is NULL
 * (the node is then a ring of one, joined at once).  cb(0) once the root's leaf
 * set arrived and the nearest leaf on each side acknowledged our announcement
 * (or 4 RTO floors later, when one of them is dead); cb(-ETIMEDOUT) after
 * join_timeout_ms without an answer; cb(-ECANCELED) from dht_node_close.  Returns
 * 0, -EALREADY (joined or joining), -ECANCELED (closed), -ENOMEM.
 */
int dht_node_join(struct dht_node *node, const struct dht_peer *bootstrap, dht_join_cb cb,
                  void *arg, uint64_t now_ms);

/*
 * Routes to the root of key.  cb(0, root, hops) or cb(-ETIMEDOUT, NULL, 0, ...),
 * or cb(-ECANCELED, NULL, 0, ...) from dht_node_close.  Returns 0, -ENOTCONN (not
 * joined), -EBUSY (max_requests in flight), -ECANCELED (closed), -ENOMEM.
 */
int dht_node_lookup(struct dht_node *node, const struct dht_id *key, dht_lookup_cb cb, void *arg,
                    uint64_t now_ms);

/*
 * The same lookup, traced (DHT_FLAG_TRACE): every hop adds its ID and its smoothed
 * RTT to the next hop, and the root returns the path.  cb(0, trace) or as above.
 */
int dht_node_trace(struct dht_node *node, const struct dht_id *key, dht_trace_cb cb, void *arg,
                   uint64_t now_ms);

/*
 * Stores a signed record (copied) at the root of rec->key and its replicas.
 * cb(0, acks) on quorum; cb(-errno of the store rule) when the root refused it;
 * cb(-ETIMEDOUT) when no quorum in time; cb(-ECANCELED) from dht_node_close.
 * Returns 0, -EINVAL (malformed record, too large), -ENOTCONN, -EBUSY, -ECANCELED,
 * -ENOMEM.
 */
int dht_node_put(struct dht_node *node, const struct dht_record *rec, dht_put_cb cb, void *arg,
                 uint64_t now_ms);

/* Fetches the live values under key.  Errors as for lookup. */
int dht_node_get(struct dht_node *node, const struct dht_id *key, dht_get_cb cb, void *arg,
                 uint64_t now_ms);

/*
 * Handles one received message from address `from`.  Malformed, oversized,
 * wrong-key or bad-record messages are dropped and counted without touching the
 * routing state.  Returns 0, or the negative errno of the drop (-ECANCELED once
 * the node is closed).
 */
int dht_node_recv(struct dht_node *node, const struct dht_addr *from, const uint8_t *buf,
                  size_t len, uint64_t now_ms);

/* The earliest time dht_node_advance has work to do (UINT64_MAX: none). */
uint64_t dht_node_next_deadline(const struct dht_node *node);

/* Runs timers due at now_ms: retransmissions, reroutes, maintenance, timeouts. */
void dht_node_advance(struct dht_node *node, uint64_t now_ms);

/* Read-only views. */
bool dht_node_joined(const struct dht_node *node);
const struct dht_route *dht_node_route(const struct dht_node *node);
const struct dht_counters *dht_node_counters(const struct dht_node *node);
struct dht_store *dht_node_store(const struct dht_node *node);

/*
 * True when the node has had peers and no leaf-set member has been heard from for
 * cfg.cutoff_ms (a node that started a ring and never had peers is not cut off).
 * Live leaves are pinged every leaf_ping_ms, so a node with cutoff_ms above that
 * (the daemon: 10 s) is cut off only when every leaf stopped answering, and then at
 * most cutoff_ms after it last heard one.  While cut off (or with no leaf left) the
 * node probes the leaves it removed last, every second; it stops being cut off the
 * moment one of them, or any node that becomes a leaf, answers.
 */
bool dht_node_cut_off(const struct dht_node *node, uint64_t now_ms);

/* Bytes of heap and struct the node uses (not counting the store's records). */
size_t dht_node_memory(const struct dht_node *node);

#endif
