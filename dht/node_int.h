/*
 * node_int.h: private state of a DHT node (node.c, node_store.c).
 *
 * Invariants: every array here has a fixed cap from the config; a pending entry
 * owns its buffer copy; no pointer into route.pool is kept across a call that may
 * add a neighbour (the pool can move).
 */
#ifndef P2P_DHT_NODE_INT_H
#define P2P_DHT_NODE_INT_H

#include "p2p/dht_node.h"

#define DHT_MAX_HOPS 64
#define DHT_TRIED_MAX 10 /* hops a routed message failed at: AVOID + our own */
#define DHT_CAND_MAX 64
#define DHT_DEAD_MAX 32
#define DHT_LOOP_MAX 64
#define DHT_LOST_MAX (2 * DHT_LEAF_HALF_MAX) /* removed leaves probed when cut off */
#define DHT_COLLECT_MAX 64
#define DHT_SYNC_IDENTS 24      /* identities per SYNC_REPLY: keeps it near one datagram */
#define DHT_DATAGRAM 1400       /* size aimed at for messages without records */
#define DHT_JOIN_TAG UINT32_MAX /* pend.collect of a joiner's announce to a nearest leaf */

enum pend_kind {
    PK_HOP = 1, /* a routed message forwarded to one hop: reroute on timeout */
    PK_DIRECT,  /* a direct message: retransmit, then suspect */
    PK_PROBE,   /* a PING of a known neighbour */
    PK_CAND,    /* a PING of a node learned second-hand: add it on the ACK */
};

struct pend {
    uint32_t txid;
    uint8_t kind, tries, n_tried;
    unsigned slot;
    struct dht_peer to;
    uint64_t sent_ms, deadline;
    uint32_t collect; /* put collect id for REPLICATE, 0 = none */
    struct dht_id key;
    struct dht_id tried[DHT_TRIED_MAX];
    uint8_t *buf;
    size_t len;
};

enum req_kind { RQ_JOIN = 1, RQ_LOOKUP, RQ_PUT, RQ_GET, RQ_TUNE, RQ_TRACE };

struct request {
    uint32_t id;
    uint8_t kind;
    bool used;
    bool ready; /* completed with status; callback due in advance() */
    int status;
    struct dht_id key;
    union {
        dht_join_cb join;
        dht_lookup_cb lookup;
        dht_trace_cb trace;
        dht_put_cb put;
        dht_get_cb get;
    } cb;
    void *arg;
    uint64_t deadline, next_try;
    unsigned tries; /* resends so far (the retry timer doubles) */
    uint8_t *buf;   /* the routed message, resent on retry */
    size_t len;
    struct dht_peer bootstrap; /* RQ_JOIN */
};

struct collect {
    uint32_t id;
    bool used;
    uint8_t flags;
    struct dht_peer origin;
    uint32_t req_id;
    unsigned needed, acks, sent, answered;
    uint64_t deadline;
};

struct loopmsg {
    uint8_t *buf;
    size_t len;
};

struct dht_node {
    struct dht_config cfg;
    struct dht_node_ops ops;
    dht_wall_ms_cb wall_ms; /* NULL: wall time is the monotonic now */
    void *wall_arg;
    struct dht_store *store;
    uint8_t pubkey[DHT_PUBKEY_LEN];
    struct dht_peer self;
    struct dht_route route;
    struct dht_rto rto_all; /* RFC 6298 over every RTT sample: fresh neighbours, retries */
    struct dht_counters ctr;
    uint64_t rng;
    uint32_t next_txid, next_req, next_collect;

    bool joined, joining, had_peers;
    bool closed;        /* dht_node_close ran: no new work, nothing sent */
    unsigned join_wait; /* announces to the nearest leaves not yet acknowledged */
    uint32_t join_req;
    uint64_t last_leaf_heard;

    struct pend **pend; /* slots; NULL = free */
    unsigned n_pend_alloc;
    struct request *req;
    unsigned n_req_alloc;
    struct collect collect[DHT_COLLECT_MAX];
    struct loopmsg loop[DHT_LOOP_MAX];
    unsigned n_loop;

    struct dht_peer cand[DHT_CAND_MAX];
    unsigned n_cand;
    struct {
        struct dht_id id;
        uint64_t until;
    } dead[DHT_DEAD_MAX];
    unsigned dead_next;
    struct dht_peer lost[DHT_LOST_MAX]; /* the leaves removed last */
    unsigned n_lost, lost_next;

    /* churn seen in the leaf set: sets the routing-table ping period */
    uint64_t churn_t0, leaf_removed, leaf_removed0;
    double leaf_death_rate; /* leaf removals per leaf and second, smoothed; < 0: none yet */

    /* maintenance schedule */
    uint64_t t_tick, t_leafset, t_local, t_global, t_sync, t_expire, t_handoff, t_repair;
    uint8_t repair_left[2];     /* pulls still due per side (pred, succ) after a removal */
    struct dht_id repair_to[2]; /* whom the last repair pull of each side went to */
    double tokens;
    uint64_t t_tokens;

    /* handoff: the leaf set as of the last handoff */
    struct dht_id hview[2 * DHT_LEAF_HALF_MAX];
    unsigned n_hview;

    /* anti-entropy round in flight */
    bool sync_busy;
    struct dht_id sync_peer, sync_lo, sync_hi;
    uint64_t sync_until;
};

/* node.c, used by node_store.c */
uint64_t dht__rand(struct dht_node *n);
/* Wall-clock Unix ms for the store; `now` (monotonic) when no wall clock was set. */
uint64_t dht__wall(const struct dht_node *n, uint64_t now);
/* Tells ops.event (if any) that rec was stored here (kind STORED or REPLICATED). */
void dht__record_event(struct dht_node *n, enum dht_node_event_kind kind,
                       const struct dht_record *rec);
int dht__send_msg(struct dht_node *n, const struct dht_peer *to, struct dht_msg *m,
                  enum pend_kind kind, uint32_t collect, uint64_t now);
void dht__reply(struct dht_node *n, const struct dht_peer *to, struct dht_msg *m, uint64_t now);
struct pend *dht__send_reliable(struct dht_node *n, const struct dht_peer *to, const uint8_t *buf,
                                size_t len, enum pend_kind kind, uint64_t now);

/* node_store.c */
void dht__root_put(struct dht_node *n, const struct dht_msg *m, uint64_t now);
void dht__answer_get(struct dht_node *n, const struct dht_msg *m, uint64_t now);
bool dht__pass_get(struct dht_node *n, const struct dht_msg *m, const uint8_t *buf, size_t len,
                   uint64_t now);
bool dht__holds_key(struct dht_node *n, const struct dht_id *key, uint64_t wall);
int dht__on_replicate(struct dht_node *n, const struct dht_msg *m, uint64_t now);
void dht__collect_ack(struct dht_node *n, uint32_t collect, int status, uint64_t now);
void dht__collect_timeouts(struct dht_node *n, uint64_t now);
void dht__handoff(struct dht_node *n, uint64_t now);
void dht__sync_start(struct dht_node *n, uint64_t now);
void dht__on_sync(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *m,
                  uint64_t now);
void dht__on_sync_reply(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *m,
                        uint64_t now);
void dht__on_fetch(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *m,
                   uint64_t now);

#endif
