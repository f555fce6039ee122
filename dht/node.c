/*
 * node.c: the DHT node: message handling, recursive routing with per-hop
 * acknowledgement, join, failure detection and maintenance (see dht_node.h).
 *
 * Design.  Everything the node does is a reaction to dht_node_recv or to a deadline
 * in dht_node_advance; there is no other entry point and no clock.  Unacknowledged
 * messages live in a capped pending table with a copy of their bytes, so a routed
 * message can be re-sent to another hop after a timeout without re-encoding (the
 * header's sender, hop count and txid are patched in place, so attributes this
 * version does not know are forwarded untouched).  Requests the node's own client
 * makes, and messages it sends itself (when it is its own root), go through a
 * loopback queue drained by dht_node_advance, so no callback runs inside the call
 * that armed it.  Storage handling (root put, replication, handoff, anti-entropy)
 * is in node_store.c.
 *
 * Invariants: routing state changes only for messages that decoded, whose sender
 * key (if any) hashes to the sender ID and whose records all verify; a node not yet
 * joined neither routes nor acknowledges routed messages, so it is never taken for
 * a root before it has its leaf set.
 *
 * Timers follow RFC 6298 per neighbour (route.c); Karn's rule: RTT samples only
 * from messages acknowledged on their first transmission.
 *
 * Clocks: every `now` in this file is the caller's monotonic clock; the store is
 * only ever asked with dht__wall(n, now), wall-clock Unix ms (dht_node.h).
 */
#include "node_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

void dht_config_init(struct dht_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->leaf_half = 8;
    cfg->replicas = 4;
    cfg->quorum = 2;
    cfg->rto.initial_ms = 1000;
    cfg->rto.floor_ms = 200;
    cfg->rto.cap_ms = 10000;
    cfg->leaf_ping_ms = 5000;
    cfg->rt_ping_ms = 60000;
    cfg->rt_ping_min_ms = 15000;
    cfg->leafset_ms = 15000;
    cfg->local_tune_ms = 60000;
    cfg->global_tune_ms = 120000;
    cfg->sync_ms = 30000;
    cfg->expire_ms = 10000;
    cfg->repair_min_ms = 500;
    cfg->handoff_delay_ms = 200;
    cfg->suspect_probes = 3;
    cfg->direct_retries = 2;
    cfg->cutoff_ms = 30000;
    cfg->request_retry_ms = 2000;
    cfg->request_retry_min_ms = 150;
    cfg->hop_floor_ms = 50;
    cfg->request_timeout_ms = 8000;
    cfg->join_timeout_ms = 30000;
    cfg->put_timeout_ms = 4000;
    cfg->byte_budget = 200;
    cfg->max_pending = 256;
    cfg->max_requests = 256;
    cfg->seed = 1;
}

/* splitmix64: the node's own PRNG, seeded from the config (never rand()). */
uint64_t dht__rand(struct dht_node *n)
{
    uint64_t z = (n->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t dht__wall(const struct dht_node *n, uint64_t now)
{
    return n->wall_ms != NULL ? n->wall_ms(n->wall_arg) : now;
}

/* A period jittered uniformly in [0.5 P, 1.5 P). */
static uint64_t jitter(struct dht_node *n, uint32_t period)
{
    if (period == 0)
        return UINT64_MAX / 2; /* a period of 0 turns the task off */
    return period / 2 + dht__rand(n) % period;
}

static bool is_self(const struct dht_node *n, const struct dht_id *id)
{
    return dht_id_eq(id, &n->self.id);
}

/*
 * The retransmission timeout toward id for a message of this kind.  A neighbour
 * with RTT samples: its own RFC 6298 estimate.  One without (just learned, or a
 * bootstrap): the node-wide estimate fed by every sample the node took (RFC 6298
 * 2.2/2.3 over all neighbours, so RTTVAR also covers how much neighbours differ),
 * at most rto.initial_ms; initial_ms only before the node's first sample.  A
 * routed message (PK_HOP) is floored at hop_floor_ms: our ACKs are never delayed
 * (the reason for TCP's 200 ms floor), and a reroute costs a duplicate at worst.
 * Failure detection (probes, direct messages) keeps rto.floor_ms.
 */
static uint32_t rto_for(const struct dht_node *n, const struct dht_id *id, enum pend_kind kind)
{
    const struct dht_nbr *e = dht_route_find(&n->route, id);
    struct dht_rto_config c = n->cfg.rto;
    uint32_t v;

    if (kind == PK_HOP && n->cfg.hop_floor_ms > 0)
        c.floor_ms = n->cfg.hop_floor_ms;
    if (e != NULL && e->rto.srtt8 != 0)
        return dht_rto_value(&e->rto, &c);
    if (n->rto_all.srtt8 == 0)
        return dht_rto_value(&n->rto_all, &c); /* initial_ms */
    v = dht_rto_value(&n->rto_all, &c);
    return v < c.initial_ms ? v : c.initial_ms;
}

/*
 * When the origin resends a request it has no answer for (replies are not
 * acknowledged, and a hop may die after acknowledging): two node-wide RTOs (about
 * a request's round trip over a few hops plus one hop timeout), doubled at each
 * resend, clamped to [request_retry_min_ms, request_retry_ms]; request_retry_ms
 * before the node's first RTT sample.
 */
static uint64_t retry_after(const struct dht_node *n, unsigned tries)
{
    struct dht_rto_config c = n->cfg.rto;
    uint64_t v;

    if (n->rto_all.srtt8 == 0)
        return n->cfg.request_retry_ms;
    if (n->cfg.hop_floor_ms > 0)
        c.floor_ms = n->cfg.hop_floor_ms;
    v = 2 * (uint64_t)dht_rto_value(&n->rto_all, &c);
    if (v < n->cfg.request_retry_min_ms)
        v = n->cfg.request_retry_min_ms;
    v <<= tries < 8 ? tries : 8;
    return v < n->cfg.request_retry_ms ? v : n->cfg.request_retry_ms;
}

/* ---- sending ---------------------------------------------------------------- */

static void loop_push(struct dht_node *n, const uint8_t *buf, size_t len)
{
    uint8_t *copy;

    if (n->n_loop >= DHT_LOOP_MAX || (copy = malloc(len)) == NULL) {
        n->ctr.dropped_nopending++;
        return;
    }
    memcpy(copy, buf, len);
    n->loop[n->n_loop].buf = copy;
    n->loop[n->n_loop].len = len;
    n->n_loop++;
}

static void refill(struct dht_node *n, uint64_t now)
{
    double cap = 5.0 * n->cfg.byte_budget;
    if (now > n->t_tokens) {
        n->tokens += (double)(now - n->t_tokens) * n->cfg.byte_budget / 1000.0;
        if (n->tokens > cap)
            n->tokens = cap;
    }
    n->t_tokens = now;
}

/* Puts bytes on the wire (or the loopback queue) and counts them. */
static void xmit(struct dht_node *n, const struct dht_peer *to, const uint8_t *buf, size_t len)
{
    unsigned t = buf[1] <= DHT_MSG_TYPE_MAX ? buf[1] : 0;

    if (n->closed)
        return; /* a callback run by dht_node_close may still reach a send path */
    if (is_self(n, &to->id)) {
        loop_push(n, buf, len);
        return;
    }
    n->ctr.msgs_sent[t]++;
    n->ctr.bytes_sent[t] += len;
    if (buf[DHT_MSG_OFF_FLAGS] & DHT_FLAG_CLIENT) {
        n->ctr.client_bytes_sent += len;
    } else {
        n->ctr.maint_bytes_sent += len;
        n->tokens -= (double)len;
    }
    if (n->ops.observe != NULL)
        n->ops.observe(n->ops.arg, DHT_OBS_SENT, to, buf, len, 0);
    (void)n->ops.send(n->ops.arg, to, buf, len);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Pending entries are allocated one by one so that a pointer to one stays valid
 * while others are added (a timeout handler sends probes). */
static struct pend *pend_alloc(struct dht_node *n)
{
    unsigned slot = n->n_pend_alloc;
    struct pend *p;

    for (unsigned i = 0; i < n->n_pend_alloc; i++) {
        if (n->pend[i] == NULL) {
            slot = i;
            break;
        }
    }
    if (slot == n->n_pend_alloc) {
        unsigned want = n->n_pend_alloc ? n->n_pend_alloc * 2 : 8;
        struct pend **arr;
        if (n->n_pend_alloc >= n->cfg.max_pending)
            return NULL;
        if (want > n->cfg.max_pending)
            want = n->cfg.max_pending;
        arr = realloc(n->pend, want * sizeof(*arr));
        if (arr == NULL)
            return NULL;
        memset(arr + n->n_pend_alloc, 0, (want - n->n_pend_alloc) * sizeof(*arr));
        n->pend = arr;
        n->n_pend_alloc = want;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->slot = slot;
    n->pend[slot] = p;
    return p;
}

static void pend_free(struct dht_node *n, struct pend *p)
{
    n->pend[p->slot] = NULL;
    free(p->buf);
    free(p);
}

/* Sends a copy of buf reliably: a new txid, ACK_REQ, and a pending entry. */
struct pend *dht__send_reliable(struct dht_node *n, const struct dht_peer *to, const uint8_t *buf,
                                size_t len, enum pend_kind kind, uint64_t now)
{
    struct pend *p;

    if (n->closed)
        return NULL;
    p = pend_alloc(n);
    if (p == NULL) {
        n->ctr.dropped_nopending++;
        return NULL;
    }
    if ((p->buf = malloc(len)) == NULL) {
        pend_free(n, p);
        n->ctr.dropped_nopending++;
        return NULL;
    }
    memcpy(p->buf, buf, len);
    p->len = len;
    p->kind = (uint8_t)kind;
    p->to = *to;
    p->txid = n->next_txid++;
    p->buf[DHT_MSG_OFF_FLAGS] |= DHT_FLAG_ACK_REQ;
    memcpy(p->buf + DHT_MSG_OFF_SENDER, n->self.id.b, DHT_ID_LEN);
    put_u32(p->buf + DHT_MSG_OFF_TXID, p->txid);
    p->tries = 1;
    p->sent_ms = now;
    p->deadline = now + rto_for(n, &to->id, kind);
    xmit(n, to, p->buf, p->len);
    return p;
}

/*
 * (Re)sends a pending entry's bytes to p->to with a fresh txid.  RFC 6298 5.5: the
 * timer doubles with each retransmission of this message, capped (2.5).  The
 * backoff is the message's, not the neighbour's: several messages timing out at
 * once must not stretch each other's timers (a dead leaf is then found late).
 */
static void pend_resend(struct dht_node *n, struct pend *p, uint64_t now)
{
    uint64_t rto = (uint64_t)rto_for(n, &p->to.id, (enum pend_kind)p->kind)
                   << (p->tries > 1 ? p->tries - 1 : 0);

    if (rto > n->cfg.rto.cap_ms)
        rto = n->cfg.rto.cap_ms;
    p->txid = n->next_txid++;
    put_u32(p->buf + DHT_MSG_OFF_TXID, p->txid);
    p->sent_ms = now;
    p->deadline = now + rto;
    xmit(n, &p->to, p->buf, p->len);
}

int dht__send_msg(struct dht_node *n, const struct dht_peer *to, struct dht_msg *m,
                  enum pend_kind kind, uint32_t collect, uint64_t now)
{
    uint8_t buf[DHT_MSG_MAX];
    struct pend *p;
    int len;

    m->sender = n->self.id;
    len = dht_msg_encode(m, buf, sizeof(buf));
    if (len < 0)
        return len;
    if (kind == 0 || is_self(n, &to->id)) {
        xmit(n, to, buf, (size_t)len);
        return 0;
    }
    p = dht__send_reliable(n, to, buf, (size_t)len, kind, now);
    if (p == NULL)
        return -ENOBUFS;
    p->collect = collect;
    return 0;
}

void dht__reply(struct dht_node *n, const struct dht_peer *to, struct dht_msg *m, uint64_t now)
{
    (void)dht__send_msg(n, to, m, 0, 0, now);
}

static void send_ack(struct dht_node *n, const struct dht_peer *to, const struct dht_msg *in,
                     bool with_status, int status, uint64_t now)
{
    struct dht_msg m;

    dht_msg_init(&m, DHT_MSG_ACK, &n->self.id);
    m.txid = in->txid;
    m.flags = in->flags & DHT_FLAG_CLIENT;
    if (with_status) {
        m.have |= DHT_HAVE(DHT_ATTR_STATUS);
        m.status = (int16_t)status;
    }
    dht__reply(n, to, &m, now);
}

static bool probing(const struct dht_node *n, const struct dht_id *id)
{
    for (unsigned i = 0; i < n->n_pend_alloc; i++) {
        const struct pend *p = n->pend[i];
        if (p != NULL && (p->kind == PK_PROBE || p->kind == PK_CAND) && dht_id_eq(&p->to.id, id))
            return true;
    }
    return false;
}

static void send_ping(struct dht_node *n, const struct dht_peer *to, enum pend_kind kind,
                      uint64_t now)
{
    struct dht_msg m;
    struct dht_nbr *e;

    dht_msg_init(&m, DHT_MSG_PING, &n->self.id);
    (void)dht__send_msg(n, to, &m, kind, 0, now);
    if ((e = dht_route_find(&n->route, &to->id)) != NULL)
        e->last_ping_ms = now;
}

/* ---- neighbours ------------------------------------------------------------- */

static bool recently_dead(const struct dht_node *n, const struct dht_id *id, uint64_t now)
{
    for (unsigned i = 0; i < DHT_DEAD_MAX; i++)
        if (n->dead[i].until > now && dht_id_eq(&n->dead[i].id, id))
            return true;
    return false;
}

static void forget_dead(struct dht_node *n, const struct dht_id *id)
{
    for (unsigned i = 0; i < DHT_DEAD_MAX; i++)
        if (dht_id_eq(&n->dead[i].id, id))
            n->dead[i].until = 0;
}

static void leaf_changed(struct dht_node *n, uint64_t now)
{
    if (n->t_handoff == 0)
        n->t_handoff = now + n->cfg.handoff_delay_ms;
}

static void add_peer(struct dht_node *n, const struct dht_peer *p, uint64_t now)
{
    bool changed = false;
    struct dht_nbr *e = dht_route_add(&n->route, p, &changed);

    if (e != NULL && e->last_heard_ms == 0)
        e->last_heard_ms = now;
    if (changed) {
        n->had_peers = true;
        leaf_changed(n, now);
    }
}

/* Asks a leaf for its leaf set (push ours, want a reply). */
static void leafset_exchange(struct dht_node *n, const struct dht_peer *to, uint8_t flags,
                             uint32_t tag, uint64_t now)
{
    struct dht_msg m;

    dht_msg_init(&m, DHT_MSG_LEAFSET, &n->self.id);
    m.flags = flags;
    m.n_peers = dht_route_leafset(&n->route, m.peers, DHT_MSG_PEERS_MAX);
    m.have |= DHT_HAVE(DHT_ATTR_PEERS);
    if (flags & DHT_FLAG_ANNOUNCE) {
        memcpy(m.sender_key, n->pubkey, DHT_PUBKEY_LEN);
        m.have |= DHT_HAVE(DHT_ATTR_SENDER_KEY);
    }
    (void)dht__send_msg(n, to, &m, PK_DIRECT, tag, now);
}

/*
 * Reactive repair after a leaf was removed: pull the leaf set of the farthest
 * live leaf on that side, at most once per repair_min_ms.  A side keeps being
 * pulled for a few rounds after a removal even once it is full again: what filled
 * it may be a far node that happened to answer first (after a mass failure), and
 * the farthest member's leaf set is what shows the nodes in between.
 */
static void repair(struct dht_node *n, uint64_t now)
{
    const struct dht_route *rt = &n->route;
    struct dht_peer to;

    if (now < n->t_repair) {
        n->t_tick = n->t_repair < n->t_tick ? n->t_repair : n->t_tick;
        return;
    }
    for (unsigned s = 0; s < 2; s++) {
        const uint16_t *arr = s ? rt->succs : rt->preds;
        unsigned cnt = s ? rt->n_succs : rt->n_preds;
        int k;
        if (cnt >= rt->leaf_half && n->repair_left[s] == 0)
            continue;
        if (n->repair_left[s] > 0)
            n->repair_left[s]--;
        for (k = (int)cnt - 1; k >= 0 && (rt->pool[arr[k]].flags & DHT_NBR_SUSPECT); k--)
            ;
        if (k < 0)
            continue;
        to = rt->pool[arr[k]].peer;
        n->repair_to[s] = to.id;
        leafset_exchange(n, &to, DHT_FLAG_WANT_REPLY, 0, now);
        n->ctr.repairs++;
    }
    n->t_repair = now + n->cfg.repair_min_ms;
}

static bool leaf_short(const struct dht_node *n)
{
    const struct dht_route *rt = &n->route;
    /* a side is short when it holds fewer than L and the sides do not overlap */
    if (rt->n_preds == 0 && rt->n_succs == 0)
        return false;
    if (dht_route_in_leaf_range(rt, &n->self.id) && rt->n_preds > 0 && rt->n_succs > 0) {
        for (unsigned k = 0; k < rt->n_succs; k++)
            if (rt->pool[rt->succs[k]].flags & DHT_NBR_PRED)
                return false;
    }
    return rt->n_preds < rt->leaf_half || rt->n_succs < rt->leaf_half;
}

/*
 * A leaf was removed: routing-table entries that now fit in the leaf set are the
 * nearest replacements we know (after a mass failure the leaf sets we pull from
 * the far side often do not name them).  One heard from lately joins at once, the
 * others are probed first (their ACK promotes them, mark_heard).
 */
static void promote_table(struct dht_node *n, uint64_t now)
{
    for (unsigned i = 0; i < n->route.pool_len; i++) {
        const struct dht_nbr *e = &n->route.pool[i];
        struct dht_peer p;
        if (!dht_route_slot_used(&n->route, i) || (e->flags & (DHT_NBR_LEAF | DHT_NBR_SUSPECT)) ||
            !dht_route_leaf_promising(&n->route, &e->peer.id))
            continue;
        p = e->peer; /* add_peer may move the pool */
        if (now - e->last_heard_ms < n->cfg.leaf_ping_ms)
            add_peer(n, &p, now);
        else if (!probing(n, &p.id))
            send_ping(n, &p, PK_PROBE, now);
    }
}

static void remove_nbr(struct dht_node *n, const struct dht_id *id, uint64_t now)
{
    const struct dht_nbr *e = dht_route_find(&n->route, id);
    unsigned was;

    if (e != NULL && (e->flags & DHT_NBR_LEAF)) {
        /* remembered, to be probed should we end up cut off (lost_probe) */
        n->lost[n->lost_next] = e->peer;
        n->lost_next = (n->lost_next + 1) % DHT_LOST_MAX;
        if (n->n_lost < DHT_LOST_MAX)
            n->n_lost++;
    }
    was = dht_route_remove(&n->route, id);

    n->dead[n->dead_next].id = *id;
    n->dead[n->dead_next].until = now + 4 * (uint64_t)n->cfg.leafset_ms;
    n->dead_next = (n->dead_next + 1) % DHT_DEAD_MAX;
    n->ctr.removed++;
    if (was & DHT_NBR_LEAF)
        n->leaf_removed++;
    if (was & DHT_NBR_PRED)
        n->repair_left[0] = 1;
    if (was & DHT_NBR_SUCC)
        n->repair_left[1] = 1;
    if (was & DHT_NBR_LEAF) {
        leaf_changed(n, now);
        repair(n, now);
        promote_table(n, now);
    }
}

static void suspect(struct dht_node *n, const struct dht_id *id, uint64_t now)
{
    struct dht_nbr *e = dht_route_find(&n->route, id);
    struct dht_peer to;

    if (e == NULL)
        return;
    if (!(e->flags & DHT_NBR_SUSPECT)) {
        e->flags |= DHT_NBR_SUSPECT;
        n->ctr.suspects++;
    }
    /* no backoff here: several messages timing out at once must not stretch the
     * probes; the probe sequence backs off by itself (RFC 6298 5.5) */
    if (!probing(n, id)) {
        to = e->peer;
        send_ping(n, &to, PK_PROBE, now);
    }
}

/* A message arrived from peer: it is alive. */
static void mark_heard(struct dht_node *n, const struct dht_peer *p, uint64_t now)
{
    struct dht_nbr *e = dht_route_find(&n->route, &p->id);

    if (e == NULL || (!(e->flags & DHT_NBR_LEAF) && dht_route_leaf_promising(&n->route, &p->id))) {
        /* unknown, or known from the table only and now fit for the leaf set */
        forget_dead(n, &p->id);
        add_peer(n, p, now);
        e = dht_route_find(&n->route, &p->id);
        if (e == NULL)
            return;
    }
    e->last_heard_ms = now;
    e->probes = 0;
    e->flags &= (uint8_t)~DHT_NBR_SUSPECT;
    if (p->addr.len > 0)
        e->peer.addr = p->addr;
    if (e->flags & DHT_NBR_LEAF)
        n->last_leaf_heard = now;
}

/* A node learned second-hand is probed before it is used: a stale leaf costs
 * consistency and a stale table entry a timeout on every message routed to it. */
static void learn(struct dht_node *n, const struct dht_peer *p, uint64_t now)
{
    const struct dht_nbr *e;

    if (is_self(n, &p->id) || recently_dead(n, &p->id, now))
        return;
    e = dht_route_find(&n->route, &p->id);
    if (e != NULL) {
        /* A table entry that now belongs in the leaf set (a leaf died): promoted
         * at once if heard from lately, else probed first (after a mass failure
         * the table is full of the dead); the ACK promotes it (mark_heard). */
        if (!(e->flags & (DHT_NBR_LEAF | DHT_NBR_SUSPECT)) &&
            dht_route_leaf_promising(&n->route, &p->id)) {
            if (now - e->last_heard_ms < n->cfg.leaf_ping_ms) {
                add_peer(n, &e->peer, now);
            } else if (!probing(n, &p->id)) {
                struct dht_peer to = e->peer;
                send_ping(n, &to, PK_PROBE, now);
            }
        }
        return;
    }
    if (!dht_route_useful(&n->route, &p->id))
        return;
    for (unsigned i = 0; i < n->n_cand; i++)
        if (dht_id_eq(&n->cand[i].id, &p->id))
            return;
    if (n->n_cand < DHT_CAND_MAX)
        n->cand[n->n_cand++] = *p;
}

static void flush_cands(struct dht_node *n, uint64_t now)
{
    if (!n->joined)
        return;
    for (unsigned i = 0; i < n->n_cand; i++) {
        const struct dht_peer *p = &n->cand[i];
        if (dht_route_find(&n->route, &p->id) == NULL && !probing(n, &p->id) &&
            dht_route_useful(&n->route, &p->id))
            send_ping(n, p, PK_CAND, now);
    }
    n->n_cand = 0;
}

/* ---- routing ---------------------------------------------------------------- */

static void send_rows(struct dht_node *n, const struct dht_peer *to, unsigned from_row,
                      unsigned to_row, bool with_self, uint64_t now)
{
    struct dht_msg m;

    dht_msg_init(&m, DHT_MSG_ROWS, &n->self.id);
    if (with_self)
        m.peers[m.n_peers++] = n->self;
    for (unsigned r = to_row + 1; r-- > from_row;) {
        if (m.n_peers >= DHT_MSG_PEERS_MAX - DHT_ROUTE_COLS)
            break;
        m.n_peers +=
            dht_route_row(&n->route, r, m.peers + m.n_peers, DHT_MSG_PEERS_MAX - m.n_peers);
    }
    m.have |= DHT_HAVE(DHT_ATTR_PEERS);
    dht__reply(n, to, &m, now);
}

/* The leaf set without its suspects: what a joiner starts from (a suspect nearest
 * leaf would hold its join back, and most suspects are dead). */
static size_t leafset_live(const struct dht_node *n, struct dht_peer *out, size_t cap)
{
    struct dht_peer all[2 * DHT_LEAF_HALF_MAX];
    size_t k = dht_route_leafset(&n->route, all, 2 * DHT_LEAF_HALF_MAX), m = 0;

    for (size_t i = 0; i < k && m < cap; i++) {
        const struct dht_nbr *e = dht_route_find(&n->route, &all[i].id);
        if (e == NULL || !(e->flags & DHT_NBR_SUSPECT))
            out[m++] = all[i];
    }
    return m;
}

/*
 * A traced LOOKUP's PATH with this node added (unless it is there last already, as
 * after a reroute), its time being its smoothed RTT to `next` (0 for the root,
 * DHT_PATH_RTT_UNKNOWN before a first sample).
 * Returns the number of hops in out (the same when the path is full).
 */
static unsigned path_add(const struct dht_node *n, const struct dht_msg *m,
                         const struct dht_id *next, struct dht_path_hop *out)
{
    unsigned k = m->n_path;
    const struct dht_nbr *e = next != NULL ? dht_route_find(&n->route, next) : NULL;
    uint32_t ms = next == NULL ? 0 : DHT_PATH_RTT_UNKNOWN;

    if (e != NULL && e->rto.srtt8 != 0)
        ms = e->rto.srtt8 / 8 < DHT_PATH_RTT_UNKNOWN ? e->rto.srtt8 / 8 : DHT_PATH_RTT_UNKNOWN - 1;

    memcpy(out, m->path, k * sizeof(out[0]));
    if (k > 0 && dht_id_eq(&out[k - 1].id, &n->self.id))
        k--; /* rerouted here: the earlier entry named the hop that failed */
    if (k < DHT_MSG_PATH_MAX) {
        out[k].id = n->self.id;
        out[k].rtt_ms = (uint16_t)ms;
        k++;
    }
    return k;
}

static void deliver_local(struct dht_node *n, const struct dht_msg *in, const uint8_t *buf,
                          size_t len, uint64_t now)
{
    struct dht_msg m;

    switch (in->type) {
    case DHT_MSG_JOIN:
        dht_msg_init(&m, DHT_MSG_JOIN_REPLY, &n->self.id);
        m.root = n->self;
        m.key = in->key;
        m.req_id = in->req_id;
        m.have |= DHT_HAVE(DHT_ATTR_ROOT) | DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_REQ_ID) |
                  DHT_HAVE(DHT_ATTR_PEERS);
        m.n_peers = leafset_live(n, m.peers, DHT_MSG_PEERS_MAX);
        dht__reply(n, &in->origin, &m, now);
        break;
    case DHT_MSG_LOOKUP:
        dht_msg_init(&m, DHT_MSG_LOOKUP_REPLY, &n->self.id);
        m.flags = in->flags & (DHT_FLAG_CLIENT | DHT_FLAG_MAINT);
        m.root = n->self;
        m.key = in->key;
        m.req_id = in->req_id;
        m.count = in->hops;
        m.have |= DHT_HAVE(DHT_ATTR_ROOT) | DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_REQ_ID) |
                  DHT_HAVE(DHT_ATTR_COUNT);
        if (in->flags & DHT_FLAG_TRACE) {
            m.flags |= DHT_FLAG_TRACE;
            m.n_path = (uint8_t)path_add(n, in, NULL, m.path);
            m.have |= DHT_HAVE(DHT_ATTR_PATH);
        }
        dht__reply(n, &in->origin, &m, now);
        break;
    case DHT_MSG_PUT:
        dht__root_put(n, in, now);
        break;
    case DHT_MSG_GET:
        if (!(in->flags & DHT_FLAG_PASSED) &&
            (leaf_short(n) || n->repair_left[0] > 0 || n->repair_left[1] > 0) &&
            !dht__holds_key(n, &in->key, dht__wall(n, now))) {
            /* We hold nothing and our leaf set is being repaired (leaves died):
             * we may be the new root of keys whose holders are not in our leaf set
             * yet, and their handoff is on its way.  An empty answer now would say
             * "no such key" for a stored one; no answer lets the origin retry once
             * the repair is done. */
            n->ctr.gets_deferred++;
            break;
        }
        if (buf == NULL || !dht__pass_get(n, in, buf, len, now))
            dht__answer_get(n, in, now);
        break;
    default:
        break;
    }
}

/*
 * Copies a message's bytes with attribute `code` replaced by the value val[0..vlen)
 * (removed when vlen == 0), every other attribute kept as it was (a newer
 * version's included).  Returns the new length, 0 when it would not fit.
 */
static size_t with_attr(uint8_t *out, size_t cap, const uint8_t *in, size_t len, unsigned code,
                        const uint8_t *val, size_t vlen)
{
    size_t i = DHT_MSG_HEADER_LEN, o = DHT_MSG_HEADER_LEN;

    if (len < DHT_MSG_HEADER_LEN || cap < len + 4 + vlen)
        return 0;
    memcpy(out, in, DHT_MSG_HEADER_LEN);
    while (i + 4 <= len) {
        unsigned c = (unsigned)in[i] << 8 | in[i + 1];
        size_t alen = (size_t)in[i + 2] << 8 | in[i + 3];
        if (i + 4 + alen > len)
            return 0;
        if (c != code) {
            memcpy(out + o, in + i, 4 + alen);
            o += 4 + alen;
        }
        i += 4 + alen;
    }
    if (vlen > 0) {
        out[o++] = (uint8_t)(code >> 8);
        out[o++] = (uint8_t)code;
        out[o++] = (uint8_t)(vlen >> 8);
        out[o++] = (uint8_t)vlen;
        memcpy(out + o, val, vlen);
        o += vlen;
    }
    if (o > DHT_MSG_MAX)
        return 0;
    out[DHT_MSG_OFF_LEN] = (uint8_t)(o >> 8);
    out[DHT_MSG_OFF_LEN + 1] = (uint8_t)o;
    return o;
}

/* The same with the AVOID attribute: ids[0..k) (none when k == 0). */
static size_t with_avoid(uint8_t *out, size_t cap, const uint8_t *in, size_t len,
                         const struct dht_id *ids, unsigned k)
{
    uint8_t val[1 + DHT_MSG_AVOID_MAX * DHT_ID_LEN];

    if (k > DHT_MSG_AVOID_MAX)
        return 0;
    val[0] = (uint8_t)k;
    for (unsigned j = 0; j < k; j++)
        memcpy(val + 1 + j * DHT_ID_LEN, ids[j].b, DHT_ID_LEN);
    return with_attr(out, cap, in, len, DHT_ATTR_AVOID, val,
                     k > 0 ? 1 + (size_t)k * DHT_ID_LEN : 0);
}

/* Forwards a routed message's bytes to the next hop; the hops its AVOID names are
 * this node's first exclusions should the hop fail. */
static struct pend *forward(struct dht_node *n, const uint8_t *buf, size_t len,
                            const struct dht_msg *m, const struct dht_peer *to, uint64_t now)
{
    uint8_t copy[DHT_MSG_MAX];
    struct pend *p;

    memcpy(copy, buf, len);
    if (m->type == DHT_MSG_LOOKUP && (m->flags & DHT_FLAG_TRACE)) {
        struct dht_path_hop path[DHT_MSG_PATH_MAX];
        uint8_t val[1 + DHT_MSG_PATH_MAX * (DHT_ID_LEN + 2)];
        unsigned k = path_add(n, m, &to->id, path);
        size_t nl;
        val[0] = (uint8_t)k;
        for (unsigned j = 0; j < k; j++) {
            uint8_t *h = val + 1 + j * (DHT_ID_LEN + 2);
            memcpy(h, path[j].id.b, DHT_ID_LEN);
            h[DHT_ID_LEN] = (uint8_t)(path[j].rtt_ms >> 8);
            h[DHT_ID_LEN + 1] = (uint8_t)path[j].rtt_ms;
        }
        nl = with_attr(copy, sizeof(copy), buf, len, DHT_ATTR_PATH, val,
                       1 + (size_t)k * (DHT_ID_LEN + 2));
        if (nl > 0)
            len = nl; /* else forwarded as it came: the trace misses this hop */
    }
    copy[DHT_MSG_OFF_HOPS] = (uint8_t)(m->hops + 1);
    p = dht__send_reliable(n, to, copy, len, PK_HOP, now);
    if (p != NULL) {
        p->key = m->key;
        for (unsigned i = 0; i < m->n_avoid && p->n_tried < DHT_TRIED_MAX; i++)
            p->tried[p->n_tried++] = m->avoid[i];
    }
    return p;
}

static void route_msg(struct dht_node *n, const struct dht_msg *m, const uint8_t *buf, size_t len,
                      uint64_t now)
{
    struct dht_nbr *e, *v;
    struct dht_id excl[2 + DHT_MSG_AVOID_MAX];
    size_t n_excl = 0, n_base;
    struct dht_peer to;
    struct pend *pe;
    unsigned p;

    if ((m->have &
         (DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_ORIGIN) | DHT_HAVE(DHT_ATTR_REQ_ID))) !=
        (DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_ORIGIN) | DHT_HAVE(DHT_ATTR_REQ_ID))) {
        n->ctr.dropped_malformed++;
        return;
    }
    if (m->hops >= DHT_MAX_HOPS) {
        n->ctr.dropped_loop++;
        return;
    }
    if (m->type == DHT_MSG_GET && ((m->flags & DHT_FLAG_PASSED) ||
                                   (dht_route_is_replica(&n->route, &m->key, n->cfg.replicas) &&
                                    dht__holds_key(n, &m->key, dht__wall(n, now))))) {
        dht__answer_get(n, m, now);
        return;
    }
    if (m->type == DHT_MSG_JOIN) {
        excl[n_excl++] = m->origin.id;
        if (!is_self(n, &m->origin.id)) {
            p = dht_id_shared_prefix(&n->self.id, &m->origin.id);
            if (p >= DHT_ROUTE_ROWS)
                p = DHT_ROUTE_ROWS - 1;
            send_rows(n, &m->origin, p >= 2 ? p - 2 : 0, p, true, now);
        }
    }
    /* AVOID: hops that failed this message earlier on its path.  Skipped here too,
     * so a dead root costs one timeout on the path instead of one at every
     * neighbour of it that the message is rerouted through; and probed, so that
     * this node learns of the failure without waiting for a timeout of its own. */
    n_base = n_excl;
    for (unsigned i = 0; i < m->n_avoid; i++)
        if (!is_self(n, &m->avoid[i]))
            excl[n_excl++] = m->avoid[i];
    for (unsigned i = 0; i < m->n_avoid; i++) {
        const struct dht_nbr *a = dht_route_find(&n->route, &m->avoid[i]);
        if (a != NULL && !probing(n, &a->peer.id)) {
            to = a->peer;
            send_ping(n, &to, PK_PROBE, now);
        }
    }
    e = dht_route_next_hop(&n->route, &m->key, excl, n_excl);
    if (e == NULL && n_excl > n_base &&
        (v = dht_route_next_hop(&n->route, &m->key, excl, n_base)) != NULL &&
        !(v->flags & DHT_NBR_SUSPECT)) {
        /* We are the root only because an earlier hop could not reach a closer
         * node that we believe alive: one lost message or ACK there must not
         * make us answer for a live node's key.  We try it once ourselves
         * (tries = 2: no second retransmission) and answer if it fails too. */
        to = v->peer;
        pe = forward(n, buf, len, m, &to, now);
        if (pe != NULL)
            pe->tries = 2;
        return;
    }
    if (e != NULL && (e->flags & DHT_NBR_SUSPECT) && (e->flags & DHT_NBR_LEAF)) {
        /* Only a suspect leaf is closer than self: were it dead, we are the root.
         * Once it also failed a probe (two failures in a row: a loss explains that
         * about once in 10^4) we answer at once: while a root's death is not yet
         * confirmed every message for its keys comes here, and each would wait a
         * timeout.  Before that, one try without retransmission (a live suspect
         * answers it; tries = 2), then we answer. */
        excl[n_excl++] = e->peer.id;
        if (dht_route_next_hop(&n->route, &m->key, excl, n_excl) == NULL) {
            if (e->probes > 0) {
                deliver_local(n, m, buf, len, now);
                return;
            }
            to = e->peer;
            pe = forward(n, buf, len, m, &to, now);
            if (pe != NULL)
                pe->tries = 2;
            return;
        }
    }
    if (e == NULL) {
        deliver_local(n, m, buf, len, now);
        return;
    }
    to = e->peer;
    forward(n, buf, len, m, &to, now);
}

/* ---- receiving ------------------------------------------------------------------- */

static struct request *req_find(struct dht_node *n, uint32_t id)
{
    for (unsigned i = 0; i < n->n_req_alloc; i++)
        if (n->req[i].used && n->req[i].id == id)
            return &n->req[i];
    return NULL;
}

static void req_free(struct request *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

/* Frees the slot and returns what the callback needs, so that a callback that
 * starts a new request (and so may move the request array) is safe. */
static struct request req_take(struct request *r)
{
    struct request c = *r;
    c.buf = NULL;
    req_free(r);
    return c;
}

/* Runs a taken request's callback with status (no result). */
static void req_fail(struct request *c, int status)
{
    switch (c->kind) {
    case RQ_JOIN:
        c->cb.join(status, c->arg);
        break;
    case RQ_LOOKUP:
        c->cb.lookup(status, NULL, 0, c->arg);
        break;
    case RQ_TRACE:
        c->cb.trace(status, NULL, c->arg);
        break;
    case RQ_PUT:
        c->cb.put(status, 0, c->arg);
        break;
    case RQ_GET:
        c->cb.get(status, NULL, 0, c->arg);
        break;
    default:
        break; /* RQ_TUNE: the node's own, no callback */
    }
}

static void start_maintenance(struct dht_node *n, uint64_t now)
{
    n->churn_t0 = now;
    n->t_tick = now + 1000;
    n->t_leafset = now + jitter(n, n->cfg.leafset_ms);
    n->t_local = now + jitter(n, n->cfg.local_tune_ms);
    n->t_global = now + jitter(n, n->cfg.global_tune_ms);
    n->t_sync = now + jitter(n, n->cfg.sync_ms);
    n->t_expire = now + jitter(n, n->cfg.expire_ms);
    n->t_tokens = now;
    n->last_leaf_heard = now;
}

static void on_join_reply(struct dht_node *n, const struct dht_msg *m, uint64_t now)
{
    struct request *r = req_find(n, m->req_id);
    struct dht_peer leaves[2 * DHT_LEAF_HALF_MAX];
    size_t nl;

    if (r == NULL || r->kind != RQ_JOIN || n->joined)
        return;
    for (size_t i = 0; i < m->n_peers; i++)
        if (!recently_dead(n, &m->peers[i].id, now))
            add_peer(n, &m->peers[i], now);
    if (m->have & DHT_HAVE(DHT_ATTR_ROOT))
        add_peer(n, &m->root, now);
    n->joined = true;
    n->joining = false;
    n->had_peers = true;
    start_maintenance(n, now);
    /* Announce ourselves to the leaf set; every member answers with its own leaf
     * set, so nodes that joined at the same time as we did are found at once.  The
     * join completes when the nearest predecessor and successor have acknowledged
     * (until then they would still answer for keys that are now ours), or after
     * 4 RTO floors. */
    nl = dht_route_leafset(&n->route, leaves, 2 * DHT_LEAF_HALF_MAX);
    n->join_wait = 0;
    for (size_t i = 0; i < nl; i++) {
        const struct dht_nbr *e = dht_route_find(&n->route, &leaves[i].id);
        bool nearest =
            e != NULL && ((n->route.n_preds > 0 && &n->route.pool[n->route.preds[0]] == e) ||
                          (n->route.n_succs > 0 && &n->route.pool[n->route.succs[0]] == e));
        if (nearest)
            n->join_wait++;
        leafset_exchange(n, &leaves[i], DHT_FLAG_ANNOUNCE | DHT_FLAG_WANT_REPLY,
                         nearest ? DHT_JOIN_TAG : 0, now);
    }
    n->n_hview = 0;
    for (size_t i = 0; i < nl; i++)
        n->hview[n->n_hview++] = leaves[i].id;
    n->t_handoff = 0;
    n->join_req = r->id;
    r->next_try = UINT64_MAX;
    /* a nearest leaf that is dead (the root had not noticed yet) must not hold the
     * join back: after a few RTOs it completes anyway (see the timeout in advance) */
    r->deadline = now + 4 * (uint64_t)n->cfg.rto.floor_ms;
    if (n->join_wait == 0) {
        r->ready = true; /* told from advance() */
        r->status = 0;
    }
}

/* An announce to a nearest neighbour was acknowledged (or gave up). */
static void join_announced(struct dht_node *n)
{
    struct request *r;

    if (n->join_wait == 0 || --n->join_wait > 0)
        return;
    r = req_find(n, n->join_req);
    if (r != NULL && r->kind == RQ_JOIN) {
        r->ready = true;
        r->status = 0;
    }
}

static void on_reply(struct dht_node *n, const struct dht_msg *m)
{
    struct request *r = req_find(n, m->req_id);
    struct request c;

    if (r == NULL)
        return;
    switch (m->type) {
    case DHT_MSG_LOOKUP_REPLY:
        if (r->kind == RQ_TUNE) {
            req_free(r);
            return;
        }
        if ((r->kind != RQ_LOOKUP && r->kind != RQ_TRACE) || !(m->have & DHT_HAVE(DHT_ATTR_ROOT)))
            return;
        c = req_take(r);
        if (c.kind == RQ_LOOKUP) {
            c.cb.lookup(0, &m->root, m->count, c.arg);
        } else {
            struct dht_trace t = {.root = m->root, .hops = m->count, .n_path = m->n_path};
            memcpy(t.path, m->path, m->n_path * sizeof(t.path[0]));
            c.cb.trace(0, &t, c.arg);
        }
        break;
    case DHT_MSG_PUT_REPLY:
        if (r->kind != RQ_PUT)
            return;
        c = req_take(r);
        c.cb.put(m->status, m->count, c.arg);
        break;
    case DHT_MSG_GET_REPLY:
        if (r->kind != RQ_GET)
            return;
        c = req_take(r);
        c.cb.get(m->status, m->records, m->n_records, c.arg);
        break;
    default:
        return;
    }
}

static void on_ack(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *m,
                   uint64_t now)
{
    struct pend *p = NULL;
    struct dht_nbr *e;

    for (unsigned i = 0; i < n->n_pend_alloc; i++) {
        struct pend *q = n->pend[i];
        if (q != NULL && q->txid == m->txid &&
            (dht_id_is_zero(&q->to.id) || dht_id_eq(&q->to.id, &from->id))) {
            p = q;
            break;
        }
    }
    if (p == NULL) {
        n->ctr.acks_unmatched++;
        return;
    }
    /* Karn: only a first transmission gives an unambiguous sample.  now is
     * monotonic; the guards keep a caller's clock error from becoming a 49-day RTT. */
    if (p->tries == 1 && now >= p->sent_ms && now - p->sent_ms <= n->cfg.rto.cap_ms &&
        (e = dht_route_find(&n->route, &from->id)) != NULL) {
        dht_rto_sample_prior(&e->rto, (uint32_t)(now - p->sent_ms), &n->rto_all);
        dht_rto_sample(&n->rto_all, (uint32_t)(now - p->sent_ms));
    }
    if (p->collect == DHT_JOIN_TAG)
        join_announced(n);
    else if (p->collect != 0)
        dht__collect_ack(n, p->collect, (m->have & DHT_HAVE(DHT_ATTR_STATUS)) ? m->status : 0, now);
    pend_free(n, p);
}

static void on_leafset(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *m,
                       uint64_t now)
{
    struct dht_msg r;
    unsigned fresh = 0;

    for (size_t i = 0; i < m->n_peers; i++) {
        if (dht_route_find(&n->route, &m->peers[i].id) == NULL &&
            dht_route_leaf_promising(&n->route, &m->peers[i].id))
            fresh++;
        learn(n, &m->peers[i], now);
    }
    /* An answer to our repair pull that showed new would-be leaves: pull once more
     * from the new farthest leaf, until a pull shows nothing new. */
    for (unsigned s = 0; s < 2; s++)
        if (fresh > 0 && !(m->flags & DHT_FLAG_WANT_REPLY) &&
            dht_id_eq(&from->id, &n->repair_to[s])) {
            n->repair_left[s] = 1;
            memset(&n->repair_to[s], 0, sizeof(n->repair_to[s]));
        }
    if (m->flags & DHT_FLAG_WANT_REPLY) {
        dht_msg_init(&r, DHT_MSG_LEAFSET, &n->self.id);
        r.n_peers = dht_route_leafset(&n->route, r.peers, DHT_MSG_PEERS_MAX);
        r.have |= DHT_HAVE(DHT_ATTR_PEERS);
        dht__reply(n, from, &r, now);
    }
}

static int handle(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *m,
                  const uint8_t *buf, size_t len, bool local, uint64_t now)
{
    int rc;

    /* The sender is alive; but a joiner's own JOIN does not make it a neighbour
     * yet: it neither routes nor answers until its join completes. */
    if (!local && !(m->type == DHT_MSG_JOIN && dht_id_eq(&m->origin.id, &from->id)))
        mark_heard(n, from, now);
    if (!n->joined && m->type != DHT_MSG_ACK && m->type != DHT_MSG_JOIN_REPLY &&
        m->type != DHT_MSG_ROWS && !local)
        return 0; /* not part of a ring yet: neither route nor answer */

    switch (m->type) {
    case DHT_MSG_PING:
        send_ack(n, from, m, false, 0, now);
        break;
    case DHT_MSG_ACK:
        on_ack(n, from, m, now);
        break;
    case DHT_MSG_JOIN:
    case DHT_MSG_LOOKUP:
    case DHT_MSG_PUT:
    case DHT_MSG_GET:
        if (m->flags & DHT_FLAG_ACK_REQ)
            send_ack(n, from, m, false, 0, now);
        route_msg(n, m, buf, len, now);
        break;
    case DHT_MSG_JOIN_REPLY:
        on_join_reply(n, m, now);
        break;
    case DHT_MSG_ROWS:
        for (size_t i = 0; i < m->n_peers; i++)
            learn(n, &m->peers[i], now);
        break;
    case DHT_MSG_ROW_REQ:
        if (m->have & DHT_HAVE(DHT_ATTR_LEVEL))
            send_rows(n, from, m->level, m->level, false, now);
        break;
    case DHT_MSG_LEAFSET:
        if (m->flags & DHT_FLAG_ACK_REQ)
            send_ack(n, from, m, false, 0, now);
        on_leafset(n, from, m, now);
        break;
    case DHT_MSG_LOOKUP_REPLY:
    case DHT_MSG_PUT_REPLY:
    case DHT_MSG_GET_REPLY:
        on_reply(n, m);
        break;
    case DHT_MSG_REPLICATE:
        rc = dht__on_replicate(n, m, now);
        if (m->flags & DHT_FLAG_ACK_REQ)
            send_ack(n, from, m, true, rc, now);
        break;
    case DHT_MSG_SYNC:
        dht__on_sync(n, from, m, now);
        break;
    case DHT_MSG_SYNC_REPLY:
        dht__on_sync_reply(n, from, m, now);
        break;
    case DHT_MSG_FETCH:
        dht__on_fetch(n, from, m, now);
        break;
    default:
        break;
    }
    if (!n->closed) /* a reply's callback may have closed the node */
        flush_cands(n, now);
    return 0;
}

static void drop(struct dht_node *n, const struct dht_peer *from, const uint8_t *buf, size_t len,
                 int reason, uint64_t *ctr)
{
    (*ctr)++;
    if (n->ops.observe != NULL)
        n->ops.observe(n->ops.arg, DHT_OBS_DROPPED, from, buf, len, reason);
}

int dht_node_recv(struct dht_node *n, const struct dht_addr *from, const uint8_t *buf, size_t len,
                  uint64_t now)
{
    struct dht_msg m;
    struct dht_peer peer;
    struct dht_id h;
    int rc;

    if (n->closed)
        return -ECANCELED;
    memset(&peer, 0, sizeof(peer));
    if (from != NULL)
        peer.addr = *from;
    if (len > DHT_MSG_MAX) {
        drop(n, &peer, buf, len, -EMSGSIZE, &n->ctr.dropped_oversize);
        return -EMSGSIZE;
    }
    rc = dht_msg_decode(&m, buf, len);
    if (rc < 0) {
        drop(n, &peer, buf, len, rc, &n->ctr.dropped_malformed);
        return rc;
    }
    peer.id = m.sender;
    if (m.type == 0 || m.type > DHT_MSG_TYPE_MAX) {
        drop(n, &peer, buf, len, -EPROTO, &n->ctr.dropped_unknown);
        return -EPROTO;
    }
    if (is_self(n, &m.sender) || dht_id_is_zero(&m.sender)) {
        drop(n, &peer, buf, len, -EINVAL, &n->ctr.dropped_badkey);
        return -EINVAL;
    }
    if (m.have & DHT_HAVE(DHT_ATTR_SENDER_KEY)) {
        /* The key belongs to whoever wrote the message: the origin of a routed
         * message (hops rewrite the sender), else the sender. */
        bool routed = m.type == DHT_MSG_JOIN || m.type == DHT_MSG_LOOKUP || m.type == DHT_MSG_PUT ||
                      m.type == DHT_MSG_GET;
        dht_id_hash(&h, m.sender_key, DHT_PUBKEY_LEN);
        if (routed && !(m.have & DHT_HAVE(DHT_ATTR_ORIGIN))) {
            drop(n, &peer, buf, len, -EBADMSG, &n->ctr.dropped_malformed);
            return -EBADMSG;
        }
        if (!dht_id_eq(&h, routed ? &m.origin.id : &m.sender)) {
            drop(n, &peer, buf, len, -EACCES, &n->ctr.dropped_badkey);
            return -EACCES;
        }
    }
    for (size_t i = 0; i < m.n_records; i++) {
        if (dht_record_verify(&m.records[i]) != 0) {
            drop(n, &peer, buf, len, -EBADMSG, &n->ctr.dropped_badrecord);
            return -EBADMSG;
        }
    }
    n->ctr.msgs_recv[m.type]++;
    n->ctr.bytes_recv[m.type] += len;
    if (n->ops.observe != NULL)
        n->ops.observe(n->ops.arg, DHT_OBS_RECV, &peer, buf, len, 0);
    return handle(n, &peer, &m, buf, len, false, now);
}

/* ---- client API ---------------------------------------------------------------- */

static struct request *req_alloc(struct dht_node *n)
{
    for (unsigned i = 0; i < n->n_req_alloc; i++)
        if (!n->req[i].used)
            return &n->req[i];
    if (n->n_req_alloc < n->cfg.max_requests) {
        unsigned want = n->n_req_alloc ? n->n_req_alloc * 2 : 4;
        struct request *p;
        if (want > n->cfg.max_requests)
            want = n->cfg.max_requests;
        p = realloc(n->req, want * sizeof(*p));
        if (p == NULL)
            return NULL;
        memset(p + n->n_req_alloc, 0, (want - n->n_req_alloc) * sizeof(*p));
        n->req = p;
        n->n_req_alloc = want;
        return req_alloc(n);
    }
    return NULL;
}

/* Builds a routed request and queues it to ourselves; advance() routes it. */
static int start_routed(struct dht_node *n, enum req_kind kind, enum dht_msg_type type,
                        const struct dht_id *key, const struct dht_record *rec, uint8_t flags,
                        uint64_t now, struct request **out)
{
    struct request *r;
    uint8_t buf[DHT_MSG_MAX];
    struct dht_msg m;
    int len;

    if (n->closed)
        return -ECANCELED;
    if (!n->joined)
        return -ENOTCONN;
    r = req_alloc(n);
    if (r == NULL)
        return -EBUSY;
    dht_msg_init(&m, type, &n->self.id);
    m.flags = flags;
    m.key = *key;
    m.origin = n->self;
    m.req_id = n->next_req++;
    m.have |= DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_ORIGIN) | DHT_HAVE(DHT_ATTR_REQ_ID);
    if (rec != NULL) {
        m.records[0] = *rec;
        m.n_records = 1;
    }
    len = dht_msg_encode(&m, buf, sizeof(buf));
    if (len < 0)
        return -EINVAL;
    r->buf = malloc((size_t)len);
    if (r->buf == NULL)
        return -ENOMEM;
    memcpy(r->buf, buf, (size_t)len);
    r->len = (size_t)len;
    r->used = true;
    r->kind = (uint8_t)kind;
    r->id = m.req_id;
    r->key = *key;
    r->deadline = now + n->cfg.request_timeout_ms;
    r->next_try = now + retry_after(n, 0);
    loop_push(n, r->buf, r->len);
    *out = r;
    return 0;
}

int dht_node_lookup(struct dht_node *n, const struct dht_id *key, dht_lookup_cb cb, void *arg,
                    uint64_t now)
{
    struct request *r;
    int rc = start_routed(n, RQ_LOOKUP, DHT_MSG_LOOKUP, key, NULL, DHT_FLAG_CLIENT, now, &r);
    if (rc == 0) {
        r->cb.lookup = cb;
        r->arg = arg;
    }
    return rc;
}

int dht_node_trace(struct dht_node *n, const struct dht_id *key, dht_trace_cb cb, void *arg,
                   uint64_t now)
{
    struct request *r;
    int rc = start_routed(n, RQ_TRACE, DHT_MSG_LOOKUP, key, NULL, DHT_FLAG_CLIENT | DHT_FLAG_TRACE,
                          now, &r);
    if (rc == 0) {
        r->cb.trace = cb;
        r->arg = arg;
    }
    return rc;
}

int dht_node_put(struct dht_node *n, const struct dht_record *rec, dht_put_cb cb, void *arg,
                 uint64_t now)
{
    struct request *r;
    int rc;

    if (dht_record_check(rec) != 0)
        return -EINVAL;
    rc = start_routed(n, RQ_PUT, DHT_MSG_PUT, &rec->key, rec, DHT_FLAG_CLIENT, now, &r);
    if (rc == 0) {
        r->cb.put = cb;
        r->arg = arg;
    }
    return rc;
}

int dht_node_get(struct dht_node *n, const struct dht_id *key, dht_get_cb cb, void *arg,
                 uint64_t now)
{
    struct request *r;
    int rc = start_routed(n, RQ_GET, DHT_MSG_GET, key, NULL, DHT_FLAG_CLIENT, now, &r);
    if (rc == 0) {
        r->cb.get = cb;
        r->arg = arg;
    }
    return rc;
}

static void send_join(struct dht_node *n, struct request *r, uint64_t now)
{
    struct pend *p = dht__send_reliable(n, &r->bootstrap, r->buf, r->len, PK_HOP, now);
    if (p != NULL)
        p->key = n->self.id;
}

int dht_node_join(struct dht_node *n, const struct dht_peer *bootstrap, dht_join_cb cb, void *arg,
                  uint64_t now)
{
    struct request *r;
    struct dht_msg m;
    uint8_t buf[512];
    int len;

    if (n->closed)
        return -ECANCELED;
    if (n->joined || n->joining)
        return -EALREADY;
    r = req_alloc(n);
    if (r == NULL)
        return -ENOMEM;
    r->used = true;
    r->kind = RQ_JOIN;
    r->id = n->next_req++;
    r->cb.join = cb;
    r->arg = arg;
    if (bootstrap == NULL) {
        /* A ring of one: joined now, told from advance(). */
        n->joined = true;
        start_maintenance(n, now);
        r->ready = true;
        r->status = 0;
        r->deadline = now;
        return 0;
    }
    dht_msg_init(&m, DHT_MSG_JOIN, &n->self.id);
    m.key = n->self.id;
    m.origin = n->self;
    m.req_id = r->id;
    memcpy(m.sender_key, n->pubkey, DHT_PUBKEY_LEN);
    m.have |= DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_ORIGIN) | DHT_HAVE(DHT_ATTR_REQ_ID) |
              DHT_HAVE(DHT_ATTR_SENDER_KEY);
    len = dht_msg_encode(&m, buf, sizeof(buf));
    if (len < 0 || (r->buf = malloc((size_t)len)) == NULL) {
        req_free(r);
        return -ENOMEM;
    }
    memcpy(r->buf, buf, (size_t)len);
    r->len = (size_t)len;
    r->bootstrap = *bootstrap;
    r->deadline = now + n->cfg.join_timeout_ms;
    r->next_try = now + n->cfg.request_retry_ms;
    n->joining = true;
    n->had_peers = true;
    n->last_leaf_heard = now;
    send_join(n, r, now);
    return 0;
}

/* ---- timers ------------------------------------------------------------------- */

static void pend_timeout(struct dht_node *n, struct pend *p, uint64_t now)
{
    struct dht_nbr *e;
    struct dht_msg m;
    struct dht_peer to;

    n->ctr.timeouts++;
    switch (p->kind) {
    case PK_HOP:
        if (!n->joined) { /* a join whose bootstrap did not answer: retried later */
            pend_free(n, p);
            return;
        }
        if (p->n_tried < DHT_TRIED_MAX)
            p->tried[p->n_tried++] = p->to.id;
        suspect(n, &p->to.id, now);
        if (dht_msg_decode(&m, p->buf, p->len) != 0) {
            pend_free(n, p);
            return;
        }
        if (p->n_tried >= DHT_TRIED_MAX) {
            pend_free(n, p); /* every hop tried failed: the origin retries */
            return;
        }
        e = dht_route_next_hop(&n->route, &p->key, p->tried, p->n_tried);
        if (e == NULL && p->tries == 1 && dht_route_find(&n->route, &p->to.id) != NULL) {
            /* We would be the root only because this hop failed once: a lost
             * message or ACK must not make us answer for a live neighbour's key.
             * One retransmission with the same timer (no backoff: a dead root
             * costs one RTO more, not three), in parallel with the probe. */
            p->n_tried--;
            p->tries++;
            n->ctr.retransmits++;
            pend_resend(n, p, now);
            p->deadline = p->sent_ms + rto_for(n, &p->to.id, PK_HOP);
            return;
        }
        if (e == NULL) {
            /* no better hop left: we are the root */
            m.hops = p->buf[DHT_MSG_OFF_HOPS] > 0 ? (uint8_t)(p->buf[DHT_MSG_OFF_HOPS] - 1) : 0;
            deliver_local(n, &m, p->buf, p->len, now);
            pend_free(n, p);
            return;
        }
        n->ctr.reroutes++;
        {
            /* tell the next hops which hops failed (AVOID: the latest ones) */
            uint8_t tmp[DHT_MSG_MAX];
            unsigned k = p->n_tried < DHT_MSG_AVOID_MAX ? p->n_tried : DHT_MSG_AVOID_MAX;
            size_t nl = with_avoid(tmp, sizeof(tmp), p->buf, p->len, p->tried + p->n_tried - k, k);
            uint8_t *nb = nl > 0 ? realloc(p->buf, nl) : NULL;
            if (nb != NULL) {
                memcpy(nb, tmp, nl);
                p->buf = nb;
                p->len = nl;
            }
        }
        p->to = e->peer;
        p->tries = 1;
        pend_resend(n, p, now); /* RFC 6298 5.4-5.6 applied per hop: reroute at once */
        return;
    case PK_DIRECT:
        /* probe the neighbour at once, in parallel with the retransmissions */
        suspect(n, &p->to.id, now);
        if (p->collect == DHT_JOIN_TAG) {
            /* A nearest leaf that did not acknowledge our announce within its RTO
             * is suspect: the join does not wait for its retransmissions (while we
             * wait, lookups that reach us are answered, yet the join is not done). */
            join_announced(n);
            p->collect = 0;
        }
        if (p->tries <= n->cfg.direct_retries) {
            p->tries++;
            n->ctr.retransmits++;
            pend_resend(n, p, now);
            return;
        }
        if (p->collect != 0)
            dht__collect_ack(n, p->collect, -ETIMEDOUT, now);
        pend_free(n, p);
        return;
    case PK_PROBE:
        e = dht_route_find(&n->route, &p->to.id);
        if (e == NULL) {
            pend_free(n, p);
            return;
        }
        if (!(e->flags & DHT_NBR_SUSPECT)) {
            e->flags |= DHT_NBR_SUSPECT;
            n->ctr.suspects++;
        }
        if (e->probes < UINT8_MAX)
            e->probes++; /* failed probes since it was last heard */
        if (p->tries >= n->cfg.suspect_probes) {
            to = p->to;
            pend_free(n, p);
            remove_nbr(n, &to.id, now);
            return;
        }
        p->tries++;
        n->ctr.retransmits++;
        pend_resend(n, p, now);
        return;
    default:
        pend_free(n, p);
        return;
    }
}

/*
 * A node with no leaf left, or cut off (no leaf heard for cutoff_ms), keeps probing
 * the leaves it removed last, once per tick: after a network outage on our side
 * every leaf looked dead and was removed, and they removed us, so nobody else would
 * ever call.  The first one that answers is a leaf again (mark_heard), the node is
 * no longer cut off, and leaf-set repair pulls in the rest.  Costs nothing while
 * the node has live leaves.
 */
static void lost_probe(struct dht_node *n, uint64_t now)
{
    const struct dht_route *rt = &n->route;

    if (n->n_lost == 0 || (!dht_node_cut_off(n, now) && (rt->n_preds > 0 || rt->n_succs > 0)))
        return;
    for (unsigned i = 0; i < n->n_lost; i++) {
        struct dht_peer to = n->lost[i];
        if (dht_route_find(rt, &to.id) != NULL || probing(n, &to.id))
            continue;
        send_ping(n, &to, PK_CAND, now);
    }
}

/*
 * How long a routing-table entry may stay silent before it is pinged.  Leaves are
 * watched every leaf_ping_ms whatever happens, so their removals measure the churn
 * without bias: with d leaf deaths per leaf and second, an entry silent for T is
 * dead with probability about d T.  T is chosen so that this stays near 5 %
 * (routing through a dead entry costs a timeout), between rt_ping_min_ms (heavy
 * churn) and rt_ping_ms (none).
 */
static uint32_t rt_ping_period(const struct dht_node *n)
{
    uint32_t lo = n->cfg.rt_ping_min_ms, hi = n->cfg.rt_ping_ms;
    double t;

    if (lo == 0 || lo > hi)
        lo = hi;
    if (n->leaf_death_rate <= 0)
        return hi;
    t = 0.05 / n->leaf_death_rate * 1000.0;
    return t < lo ? lo : t > hi ? hi : (uint32_t)t;
}

/* Once a minute: leaf removals per leaf and second, smoothed. */
static void churn_update(struct dht_node *n, uint64_t now)
{
    unsigned leaves = n->route.n_preds + n->route.n_succs;
    double sample;

    if (now - n->churn_t0 < 60000)
        return;
    sample = (double)(n->leaf_removed - n->leaf_removed0) / (leaves > 0 ? leaves : 1) /
             ((double)(now - n->churn_t0) / 1000.0);
    n->leaf_death_rate = n->leaf_death_rate < 0 ? sample : 0.5 * n->leaf_death_rate + 0.5 * sample;
    n->churn_t0 = now;
    n->leaf_removed0 = n->leaf_removed;
}

static void ping_stale(struct dht_node *n, uint64_t now)
{
    struct dht_route *rt = &n->route;
    unsigned rt_pings = 0;
    uint32_t rt_period = rt_ping_period(n);

    for (unsigned i = 0; i < rt->pool_len; i++) {
        struct dht_nbr *e = &rt->pool[i];
        struct dht_peer to;
        uint32_t period;
        if (!dht_route_slot_used(rt, i))
            continue;
        period = (e->flags & DHT_NBR_LEAF) ? n->cfg.leaf_ping_ms : rt_period;
        if (now - e->last_heard_ms < period || now - e->last_ping_ms < period)
            continue;
        if (!(e->flags & DHT_NBR_LEAF)) {
            /* table entries: a few per tick, so a table full of stale entries is
             * checked within a few periods without bursts */
            if (rt_pings >= 4)
                continue;
            rt_pings++;
        }
        if (probing(n, &e->peer.id))
            continue;
        to = e->peer;
        send_ping(n, &to, PK_PROBE, now);
    }
}

static void local_tune(struct dht_node *n, uint64_t now)
{
    unsigned depth = dht_route_depth(&n->route);
    struct dht_peer row[DHT_ROUTE_COLS];
    struct dht_msg m;
    size_t k;
    unsigned r;

    if (depth == 0)
        return;
    r = (unsigned)(dht__rand(n) % depth);
    k = dht_route_row(&n->route, r, row, DHT_ROUTE_COLS);
    if (k == 0)
        return;
    dht_msg_init(&m, DHT_MSG_ROW_REQ, &n->self.id);
    m.level = (uint8_t)r;
    m.have |= DHT_HAVE(DHT_ATTR_LEVEL);
    dht__reply(n, &row[dht__rand(n) % k], &m, now);
}

static void global_tune(struct dht_node *n, uint64_t now)
{
    unsigned depth = dht_route_depth(&n->route);
    struct request *r;
    struct dht_id key;

    for (unsigned attempt = 0; attempt < 8; attempt++) {
        unsigned row = (unsigned)(dht__rand(n) % (depth + 1));
        unsigned col = (unsigned)(dht__rand(n) % DHT_ROUTE_COLS);
        if (row >= DHT_ROUTE_ROWS || col == dht_id_digit(&n->self.id, row) ||
            n->route.cells[row][col] != 0)
            continue;
        /* a key with self's first `row` digits, then `col`, then random */
        for (unsigned b = 0; b < DHT_ID_LEN; b++)
            key.b[b] = (uint8_t)dht__rand(n);
        for (unsigned d = 0; d <= row; d++) {
            unsigned v = d < row ? dht_id_digit(&n->self.id, d) : col;
            if (d % 2 == 0)
                key.b[d / 2] = (uint8_t)((key.b[d / 2] & 0x0f) | v << 4);
            else
                key.b[d / 2] = (uint8_t)((key.b[d / 2] & 0xf0) | v);
        }
        if (start_routed(n, RQ_TUNE, DHT_MSG_LOOKUP, &key, NULL, DHT_FLAG_MAINT, now, &r) == 0)
            r->next_try = UINT64_MAX; /* one try: the next tuning round asks again */
        return;
    }
}

static void maintain(struct dht_node *n, uint64_t now)
{
    const struct dht_route *rt = &n->route;

    refill(n, now);
    if (now >= n->t_tick) {
        n->t_tick = now + 1000;
        churn_update(n, now);
        ping_stale(n, now);
        lost_probe(n, now);
        if ((leaf_short(n) || n->repair_left[0] > 0 || n->repair_left[1] > 0) && now >= n->t_repair)
            repair(n, now);
    }
    if (now >= n->t_leafset) {
        n->t_leafset = now + jitter(n, n->cfg.leafset_ms);
        struct dht_peer leaves[2 * DHT_LEAF_HALF_MAX];
        size_t k = dht_route_leafset(rt, leaves, 2 * DHT_LEAF_HALF_MAX);
        if (k > 0)
            leafset_exchange(n, &leaves[dht__rand(n) % k], DHT_FLAG_WANT_REPLY, 0, now);
    }
    if (now >= n->t_local) {
        n->t_local = now + jitter(n, n->cfg.local_tune_ms);
        if (n->tokens > 0)
            local_tune(n, now);
        else
            n->ctr.budget_skipped++;
    }
    if (now >= n->t_global) {
        n->t_global = now + jitter(n, n->cfg.global_tune_ms);
        if (n->tokens > 0)
            global_tune(n, now);
        else
            n->ctr.budget_skipped++;
    }
    if (now >= n->t_sync) {
        n->t_sync = now + jitter(n, n->cfg.sync_ms);
        dht__sync_start(n, now); /* durability: never starved by the budget */
    }
    if (n->t_handoff != 0 && now >= n->t_handoff) {
        n->t_handoff = 0;
        dht__handoff(n, now);
    }
    if (now >= n->t_expire) {
        n->t_expire = now + jitter(n, n->cfg.expire_ms);
        (void)dht_store_expire(n->store, dht__wall(n, now));
    }
}

void dht_node_advance(struct dht_node *n, uint64_t now)
{
    struct loopmsg batch[DHT_LOOP_MAX];
    unsigned nb = n->n_loop;

    if (n->closed)
        return;
    /* loopback first: our own requests and replies to ourselves (a reply's
     * callback may close the node: the rest of the batch is then only freed) */
    memcpy(batch, n->loop, nb * sizeof(batch[0]));
    n->n_loop = 0;
    for (unsigned i = 0; i < nb; i++) {
        struct dht_msg m;
        if (!n->closed && dht_msg_decode(&m, batch[i].buf, batch[i].len) == 0)
            (void)handle(n, &n->self, &m, batch[i].buf, batch[i].len, true, now);
        free(batch[i].buf);
    }
    if (n->closed)
        return;

    for (unsigned i = 0; i < n->n_pend_alloc; i++)
        if (n->pend[i] != NULL && n->pend[i]->deadline <= now)
            pend_timeout(n, n->pend[i], now);

    for (unsigned i = 0; i < n->n_req_alloc; i++) {
        struct request *r = &n->req[i];
        if (!r->used)
            continue;
        if (r->ready) {
            struct request c = req_take(r);
            if (c.kind == RQ_JOIN)
                c.cb.join(c.status, c.arg);
        } else if (now >= r->deadline) {
            struct request c = req_take(r);
            if (c.kind == RQ_JOIN)
                n->joining = false;
            req_fail(&c, c.kind == RQ_JOIN && n->joined ? 0 : -ETIMEDOUT);
        } else if (now >= r->next_try) {
            r->tries++;
            r->next_try =
                now + (r->kind == RQ_JOIN ? n->cfg.request_retry_ms : retry_after(n, r->tries));
            if (r->kind == RQ_JOIN)
                send_join(n, r, now);
            else
                loop_push(n, r->buf, r->len);
        }
    }
    if (n->closed)
        return; /* a callback above closed the node */
    dht__collect_timeouts(n, now);
    if (n->joined)
        maintain(n, now);
    flush_cands(n, now);
}

uint64_t dht_node_next_deadline(const struct dht_node *n)
{
    uint64_t t = UINT64_MAX;

#define MIN_T(x)                                                                                   \
    do {                                                                                           \
        if ((x) < t)                                                                               \
            t = (x);                                                                               \
    } while (0)
    if (n->closed)
        return UINT64_MAX;
    if (n->n_loop > 0)
        return 0;
    for (unsigned i = 0; i < n->n_pend_alloc; i++)
        if (n->pend[i] != NULL)
            MIN_T(n->pend[i]->deadline);
    for (unsigned i = 0; i < n->n_req_alloc; i++) {
        const struct request *r = &n->req[i];
        if (!r->used)
            continue;
        if (r->ready)
            return 0;
        MIN_T(r->deadline);
        MIN_T(r->next_try);
    }
    for (unsigned i = 0; i < DHT_COLLECT_MAX; i++)
        if (n->collect[i].used)
            MIN_T(n->collect[i].deadline);
    if (n->joined) {
        MIN_T(n->t_tick);
        MIN_T(n->t_leafset);
        MIN_T(n->t_local);
        MIN_T(n->t_global);
        MIN_T(n->t_sync);
        MIN_T(n->t_expire);
        if (n->t_handoff != 0)
            MIN_T(n->t_handoff);
    }
#undef MIN_T
    return t;
}

/* ---- lifecycle and views -------------------------------------------------------- */

static void route_changed(void *arg, const struct dht_peer *p, unsigned before, unsigned after)
{
    struct dht_node *n = arg;
    struct dht_node_event ev = {
        .kind = DHT_EV_NEIGHBOUR, .peer = p, .before = before, .after = after};

    if (n->ops.event != NULL)
        n->ops.event(n->ops.arg, &ev);
}

static void store_gone(void *arg, const struct dht_id *key, enum dht_store_gone why)
{
    struct dht_node *n = arg;
    struct dht_node_event ev = {.kind = why == DHT_STORE_EXPIRED ? DHT_EV_RECORD_EXPIRED
                                                                 : DHT_EV_RECORD_DROPPED,
                                .key = key};

    if (n->ops.event != NULL)
        n->ops.event(n->ops.arg, &ev);
}

void dht__record_event(struct dht_node *n, enum dht_node_event_kind kind,
                       const struct dht_record *rec)
{
    struct dht_node_event ev = {.kind = kind, .key = &rec->key, .tombstone = rec->tombstone};

    if (n->ops.event != NULL)
        n->ops.event(n->ops.arg, &ev);
}

int dht_node_new(struct dht_node **out, const uint8_t pubkey[DHT_PUBKEY_LEN],
                 const struct dht_addr *self_addr, const struct dht_config *cfg,
                 struct dht_store *store, const struct dht_node_ops *ops, uint64_t now)
{
    struct dht_node *n;
    struct dht_id id;

    if (ops == NULL || ops->send == NULL || store == NULL || self_addr == NULL ||
        self_addr->len > DHT_ADDR_MAX)
        return -EINVAL;
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    if (cfg != NULL)
        n->cfg = *cfg;
    else
        dht_config_init(&n->cfg);
    if (n->cfg.replicas > 2 * n->cfg.leaf_half || n->cfg.quorum > n->cfg.replicas ||
        n->cfg.max_pending == 0 || n->cfg.max_requests == 0 || n->cfg.suspect_probes == 0 ||
        n->cfg.rto.floor_ms == 0 || n->cfg.rto.cap_ms < n->cfg.rto.floor_ms) {
        free(n);
        return -EINVAL;
    }
    dht_id_hash(&id, pubkey, DHT_PUBKEY_LEN);
    if (dht_route_init(&n->route, &id, n->cfg.leaf_half) != 0) {
        free(n);
        return -EINVAL;
    }
    memcpy(n->pubkey, pubkey, DHT_PUBKEY_LEN);
    n->self.id = id;
    n->self.addr = *self_addr;
    n->ops = *ops;
    n->store = store;
    if (ops->event != NULL) {
        n->route.on_change = route_changed;
        n->route.change_arg = n;
        dht_store_set_observer(store, store_gone, n);
    }
    n->rng = n->cfg.seed ^ ((uint64_t)id.b[0] << 56 | (uint64_t)id.b[1] << 48 |
                            (uint64_t)id.b[2] << 40 | (uint64_t)id.b[3] << 32 | id.b[4]);
    n->next_txid = (uint32_t)dht__rand(n);
    n->next_req = (uint32_t)dht__rand(n) | 1u;
    n->next_collect = 1;
    n->t_tokens = now;
    n->tokens = n->cfg.byte_budget;
    n->leaf_death_rate = -1; /* no estimate before a minute of maintenance */
    *out = n;
    return 0;
}

void dht_node_close(struct dht_node *n)
{
    if (n == NULL || n->closed)
        return;
    /* Closed first, so that a callback below that calls back in is refused
     * (-ECANCELED) and nothing more is sent or armed. */
    n->closed = true;
    n->joining = false;
    for (unsigned i = 0; i < n->n_pend_alloc; i++)
        if (n->pend[i] != NULL)
            pend_free(n, n->pend[i]);
    for (unsigned i = 0; i < n->n_loop; i++)
        free(n->loop[i].buf);
    n->n_loop = 0;
    memset(n->collect, 0, sizeof(n->collect));
    /* The request array cannot move under us: no request can start any more.  A
     * callback may cancel others (they are then skipped) or close again (no-op). */
    for (unsigned i = 0; i < n->n_req_alloc; i++) {
        struct request c;
        if (!n->req[i].used)
            continue;
        c = req_take(&n->req[i]);
        req_fail(&c, -ECANCELED);
    }
}

size_t dht_node_cancel(struct dht_node *n, const void *arg)
{
    size_t k = 0;

    for (unsigned i = 0; i < n->n_req_alloc; i++) {
        struct request *r = &n->req[i];
        if (!r->used || r->kind == RQ_TUNE || r->arg != arg)
            continue;
        if (r->kind == RQ_JOIN && !n->joined)
            n->joining = false; /* a late JOIN_REPLY finds no request; join may be retried */
        /* The routed message may still be on its way: its reply finds no request
         * (req_id) and is ignored. */
        req_free(r);
        k++;
    }
    return k;
}

void dht_node_free(struct dht_node *n)
{
    if (n == NULL)
        return;
    for (unsigned i = 0; i < n->n_pend_alloc; i++)
        if (n->pend[i] != NULL)
            pend_free(n, n->pend[i]);
    for (unsigned i = 0; i < n->n_req_alloc; i++)
        free(n->req[i].buf);
    for (unsigned i = 0; i < n->n_loop; i++)
        free(n->loop[i].buf);
    free(n->pend);
    free(n->req);
    if (n->ops.event != NULL)
        dht_store_set_observer(n->store, NULL, NULL);
    dht_route_free(&n->route);
    free(n);
}

void dht_node_set_wall_clock(struct dht_node *n, dht_wall_ms_cb wall_ms, void *arg)
{
    n->wall_ms = wall_ms;
    n->wall_arg = arg;
}

const struct dht_id *dht_node_id(const struct dht_node *n)
{
    return &n->self.id;
}

const struct dht_peer *dht_node_self(const struct dht_node *n)
{
    return &n->self;
}

void dht_node_set_addr(struct dht_node *n, const struct dht_addr *addr)
{
    if (addr->len <= DHT_ADDR_MAX)
        n->self.addr = *addr;
}

bool dht_node_joined(const struct dht_node *n)
{
    return n->joined;
}

const struct dht_route *dht_node_route(const struct dht_node *n)
{
    return &n->route;
}

const struct dht_counters *dht_node_counters(const struct dht_node *n)
{
    return &n->ctr;
}

struct dht_store *dht_node_store(const struct dht_node *n)
{
    return n->store;
}

bool dht_node_cut_off(const struct dht_node *n, uint64_t now)
{
    if (!n->had_peers)
        return false;
    return now > n->last_leaf_heard && now - n->last_leaf_heard > n->cfg.cutoff_ms;
}

size_t dht_node_memory(const struct dht_node *n)
{
    size_t m = sizeof(*n);

    m += (size_t)n->route.pool_alloc * sizeof(struct dht_nbr);
    m += (size_t)n->n_pend_alloc * sizeof(struct pend *);
    for (unsigned i = 0; i < n->n_pend_alloc; i++)
        if (n->pend[i] != NULL)
            m += sizeof(struct pend) + n->pend[i]->len;
    m += (size_t)n->n_req_alloc * sizeof(struct request);
    for (unsigned i = 0; i < n->n_req_alloc; i++)
        if (n->req[i].used)
            m += n->req[i].len;
    for (unsigned i = 0; i < n->n_loop; i++)
        m += n->loop[i].len;
    return m;
}
