/*
 * dht_route.h: Pastry/Bamboo routing state: neighbour entries, the routing table
 * (40 rows x 16 columns, base 16) and the leaf set (L predecessors, L successors).
 *
 * Design: every known neighbour is one small entry (ID, address, RTO state,
 * liveness times) in a pool that grows up to a fixed cap; routing-table cells and
 * leaf-set slots are 16-bit indexes into that pool, so an empty table costs 1280
 * bytes and each neighbour about 80.  An entry lives while it is in the table or in
 * the leaf set, and is freed when it is in neither.
 *
 * Invariants: the leaf set's successors are sorted by clockwise distance from self,
 * its predecessors by counter-clockwise distance, each side holds at most L distinct
 * nodes, self is never an entry; a routing-table cell [r][c] only holds a node
 * sharing exactly r digits with self whose digit r is c.  With fewer than 2L+1
 * nodes in the ring the same node may be on both sides (then the leaf set covers the
 * whole ring).
 *
 * Next hop (Pastry, Rowstron & Druschel 2001, section 2.2; Bamboo, Rhea et al. 2004):
 * 1. key within the leaf set's range: the member (or self) numerically closest to
 *    the key, ties broken by dht_id_closer;
 * 2. else the routing-table entry [shared prefix(self, key)][key digit];
 * 3. else ("rare case") any known node sharing at least as long a prefix with the
 *    key and numerically closer to it than self (the closest such);
 * 4. else self is the root.
 * The caller's excluded IDs (hops this message already failed at) are skipped at
 * every step, suspected nodes at steps 2 and 3, and at step 1 whenever a live leaf
 * is closer to the key than self; when none is, step 1 returns the closest suspect
 * (it may be the root, and skipping it after one lost ACK would deliver at the
 * wrong node: the caller decides, knowing it is the root if that suspect is dead).
 */
#ifndef P2P_DHT_ROUTE_H
#define P2P_DHT_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"
#include "p2p/dht_msg.h"

#define DHT_ROUTE_ROWS DHT_ID_DIGITS
#define DHT_ROUTE_COLS 16
#define DHT_LEAF_HALF_MAX 16

/*
 * Retransmission timer state per neighbour, RFC 6298 section 2 in integer
 * milliseconds with Jacobson's scaling (srtt x8, rttvar x4).
 */
struct dht_rto {
    uint32_t srtt8; /* 0 = no sample yet */
    uint32_t rttvar4;
    uint8_t backoff; /* doublings since the last good sample */
};

struct dht_rto_config {
    uint32_t initial_ms; /* before the first sample (RFC 6298 2.1: 1 s) */
    uint32_t floor_ms;   /* RFC 6298 2.4 suggests 1 s; an overlay uses less */
    uint32_t cap_ms;     /* RFC 6298 2.5: an upper bound */
};

/* RFC 6298 2.2/2.3: feeds one RTT measurement (never from a retransmission). */
void dht_rto_sample(struct dht_rto *r, uint32_t rtt_ms);

/*
 * The same, except that a first sample takes RTTVAR from prior (a node-wide
 * estimate over all paths) when that is smaller than R/2.  prior may be NULL.
 */
void dht_rto_sample_prior(struct dht_rto *r, uint32_t rtt_ms, const struct dht_rto *prior);

/* The current timeout: SRTT + 4 RTTVAR (or initial), backed off, clamped. */
uint32_t dht_rto_value(const struct dht_rto *r, const struct dht_rto_config *cfg);

/* RFC 6298 5.5: on a timeout, double (the caller decides when to stop). */
void dht_rto_backoff(struct dht_rto *r);

/* Neighbour entry flags. */
#define DHT_NBR_RT 0x01      /* in the routing table */
#define DHT_NBR_PRED 0x02    /* in the leaf set, predecessor side */
#define DHT_NBR_SUCC 0x04    /* in the leaf set, successor side */
#define DHT_NBR_SUSPECT 0x08 /* a message timed out; being probed */
#define DHT_NBR_LEAF (DHT_NBR_PRED | DHT_NBR_SUCC)

struct dht_nbr {
    struct dht_peer peer;
    struct dht_rto rto;
    uint8_t flags;
    uint8_t probes;         /* probes sent since it became suspect */
    uint64_t last_heard_ms; /* last message received from it */
    uint64_t last_ping_ms;  /* last probe sent to it */
};

struct dht_route {
    struct dht_id self;
    unsigned leaf_half;                             /* L */
    uint16_t cells[DHT_ROUTE_ROWS][DHT_ROUTE_COLS]; /* pool index + 1; 0 = empty */
    uint16_t preds[DHT_LEAF_HALF_MAX];              /* pool index, nearest first */
    uint16_t succs[DHT_LEAF_HALF_MAX];
    uint8_t n_preds, n_succs;
    struct dht_nbr *pool;
    uint16_t pool_len, pool_alloc; /* used slots are those with flags & (RT|LEAF) */
    /*
     * Optional: told of every change of an entry's membership bits (RT, PRED, SUCC)
     * with the bits before and after, as it happens (evictions included).  Must not
     * change the table.
     */
    void (*on_change)(void *arg, const struct dht_peer *p, unsigned before, unsigned after);
    void *change_arg;
};

#define DHT_ROUTE_POOL_MAX (DHT_ROUTE_ROWS * DHT_ROUTE_COLS + 2 * DHT_LEAF_HALF_MAX)

/* Initialises empty state for node self with L = leaf_half (1..16).  -EINVAL. */
int dht_route_init(struct dht_route *rt, const struct dht_id *self, unsigned leaf_half);
void dht_route_free(struct dht_route *rt);

/* The entry for id, or NULL. */
struct dht_nbr *dht_route_find(const struct dht_route *rt, const struct dht_id *id);

/*
 * Would p enter the leaf set or fill an empty (or suspect-held) routing-table cell?  (Used to
 * decide whether a node learned second-hand is worth probing.)
 */
bool dht_route_useful(const struct dht_route *rt, const struct dht_id *id);

/* Would id enter the leaf set (on either side)? */
bool dht_route_leaf_promising(const struct dht_route *rt, const struct dht_id *id);

/*
 * Inserts p where it fits: leaf set sides (pushing out the farthest) and its
 * routing-table cell if empty (or held by a suspect).  Updates the address of a
 * known node.  Returns the entry (NULL when p is self or fits nowhere, or the pool
 * is exhausted).  *changed_leaf (may be NULL) tells whether the leaf set changed.
 */
struct dht_nbr *dht_route_add(struct dht_route *rt, const struct dht_peer *p, bool *changed_leaf);

/*
 * Removes id from the table and the leaf set.  Returns the DHT_NBR_PRED/SUCC bits
 * it held (0 when unknown or not a leaf).
 */
unsigned dht_route_remove(struct dht_route *rt, const struct dht_id *id);

/* Is key inside the arc covered by the leaf set (always, for a small ring)? */
bool dht_route_in_leaf_range(const struct dht_route *rt, const struct dht_id *key);

/*
 * The next hop for key, skipping suspects and the n_excl IDs in excl.  Returns the
 * entry, or NULL when self is the root.
 */
struct dht_nbr *dht_route_next_hop(const struct dht_route *rt, const struct dht_id *key,
                                   const struct dht_id *excl, size_t n_excl);

/*
 * The up to n leaf-set members closest to key (self excluded, suspects skipped),
 * closest first.  Returns how many were written.
 */
size_t dht_route_closest_leaves(const struct dht_route *rt, const struct dht_id *key,
                                struct dht_nbr **out, size_t n);

/*
 * Is self among the n+1 closest to key among self and the leaf set (so self should
 * hold a replica), with key inside the leaf range?
 */
bool dht_route_is_replica(const struct dht_route *rt, const struct dht_id *key, size_t n);

/* Leaf set as peers: predecessors nearest first, then successors (no duplicates). */
size_t dht_route_leafset(const struct dht_route *rt, struct dht_peer *out, size_t cap);

/* Entries of row r (up to 16). */
size_t dht_route_row(const struct dht_route *rt, unsigned r, struct dht_peer *out, size_t cap);

/* Deepest non-empty row + 1 (0 for an empty table). */
unsigned dht_route_depth(const struct dht_route *rt);

/* Iteration over live pool entries: index < rt->pool_len with flags != 0. */
static inline bool dht_route_slot_used(const struct dht_route *rt, unsigned i)
{
    return (rt->pool[i].flags & (DHT_NBR_RT | DHT_NBR_LEAF)) != 0;
}

#endif
