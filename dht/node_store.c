/*
 * node_store.c: the storage side of the protocol: root puts with replication and
 * a quorum, gets, handoff when the leaf set changes, and anti-entropy.
 *
 * Design.  What is stored and the rules (owner-only writes, newer seq wins,
 * tombstones, expiry) are the store's (dht_store.h); this file only decides who
 * holds what and moves records between nodes.  `now` is the monotonic clock of the
 * timers; every store call gets dht__wall(n, now), the wall clock records' expiry
 * times are written in (dht_node.h, "Two clocks").
 *
 * - Put: the root stores the record, sends REPLICATE to its R closest leaves (each
 *   reliable, so a lost one is retransmitted, then counted as failed) and answers
 *   PUT_REPLY once `quorum` replicas acknowledged (the ACK carries the replica's
 *   store status), or with -ETIMEDOUT after put_timeout_ms.  A ring too small for
 *   the quorum needs acks from every replica it has (none for a ring of one).
 * - Handoff: after a leaf-set change, for every stored record compare the replica
 *   set (the R+1 closest among self and the leaves) before and after; members new
 *   to the set get the record from every node holding it (electing one sender by
 *   view loses records when the elected member itself never received them; the
 *   store ignores replays).
 * - A root that holds nothing for a GET passes it once to its closest replica,
 *   which answers: a new root may not have received its handoff yet.
 * - Anti-entropy (Bamboo's, with the store's range summaries): every sync_ms a node
 *   picks one of its R nearest leaves on either side and the range it is root for (half-way to
 *   each neighbour), narrowed by the store's 16-way sub-ranges until it holds at
 *   most DHT_SYNC_IDENTS records; it sends count + digest.  A peer whose summary
 *   differs answers with up to DHT_SYNC_IDENTS identities; the initiator FETCHes
 *   what is missing or older and pushes what the peer lacks.  So only differences
 *   cross the wire, and each round is bounded.
 */
#include "node_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- puts and gets ------------------------------------------------------------- */

static struct collect *collect_find(struct dht_node *n, uint32_t id)
{
    for (unsigned i = 0; i < DHT_COLLECT_MAX; i++)
        if (n->collect[i].used && n->collect[i].id == id)
            return &n->collect[i];
    return NULL;
}

static void put_reply(struct dht_node *n, const struct dht_peer *origin, uint32_t req_id,
                      int status, unsigned acks, uint64_t now)
{
    struct dht_msg m;

    dht_msg_init(&m, DHT_MSG_PUT_REPLY, &n->self.id);
    m.flags = DHT_FLAG_CLIENT;
    m.req_id = req_id;
    m.status = (int16_t)status;
    m.count = acks;
    m.have |= DHT_HAVE(DHT_ATTR_REQ_ID) | DHT_HAVE(DHT_ATTR_STATUS) | DHT_HAVE(DHT_ATTR_COUNT);
    dht__reply(n, origin, &m, now);
}

static void collect_done(struct dht_node *n, struct collect *c, int status, uint64_t now)
{
    put_reply(n, &c->origin, c->req_id, status, c->acks, now);
    memset(c, 0, sizeof(*c));
}

void dht__root_put(struct dht_node *n, const struct dht_msg *in, uint64_t now)
{
    struct dht_nbr *reps[2 * DHT_LEAF_HALF_MAX];
    struct dht_peer to[2 * DHT_LEAF_HALF_MAX];
    struct collect *c = NULL;
    struct dht_msg m;
    size_t nr;
    int rc;

    if (in->n_records != 1 || !dht_id_eq(&in->records[0].key, &in->key)) {
        put_reply(n, &in->origin, in->req_id, -EINVAL, 0, now);
        return;
    }
    rc = dht_store_put(n->store, &in->records[0], dht__wall(n, now));
    if (rc == 0) {
        n->ctr.records_stored++;
        dht__record_event(n, DHT_EV_RECORD_STORED, &in->records[0]);
    }
    if (rc != 0 && rc != -EALREADY) {
        n->ctr.records_refused++;
        put_reply(n, &in->origin, in->req_id, rc, 0, now);
        return;
    }
    nr = dht_route_closest_leaves(&n->route, &in->key, reps, n->cfg.replicas);
    for (size_t i = 0; i < nr; i++)
        to[i] = reps[i]->peer;
    if (nr == 0) {
        put_reply(n, &in->origin, in->req_id, 0, 0, now);
        return;
    }
    for (unsigned i = 0; i < DHT_COLLECT_MAX; i++) {
        if (!n->collect[i].used) {
            c = &n->collect[i];
            break;
        }
    }
    if (c == NULL) {
        put_reply(n, &in->origin, in->req_id, -EBUSY, 0, now);
        return;
    }
    c->used = true;
    c->id = n->next_collect++;
    if (n->next_collect == 0 || n->next_collect == DHT_JOIN_TAG)
        n->next_collect = 1;
    c->origin = in->origin;
    c->req_id = in->req_id;
    c->needed = n->cfg.quorum < nr ? n->cfg.quorum : (unsigned)nr;
    c->deadline = now + n->cfg.put_timeout_ms;
    c->sent = (unsigned)nr;
    dht_msg_init(&m, DHT_MSG_REPLICATE, &n->self.id);
    m.flags = DHT_FLAG_CLIENT;
    m.records[0] = in->records[0];
    m.n_records = 1;
    for (size_t i = 0; i < nr; i++)
        if (dht__send_msg(n, &to[i], &m, PK_DIRECT, c->id, now) != 0)
            c->answered++;
    if (c->needed == 0)
        collect_done(n, c, 0, now);
}

void dht__collect_ack(struct dht_node *n, uint32_t id, int status, uint64_t now)
{
    struct collect *c = collect_find(n, id);

    if (c == NULL)
        return;
    c->answered++;
    /* the replica holds this version (stored now, or already) */
    if (status == 0 || status == -EALREADY || status == -ESTALE)
        c->acks++;
    if (c->acks >= c->needed)
        collect_done(n, c, 0, now);
    else if (c->answered >= c->sent)
        collect_done(n, c, -EIO, now);
}

void dht__collect_timeouts(struct dht_node *n, uint64_t now)
{
    for (unsigned i = 0; i < DHT_COLLECT_MAX; i++)
        if (n->collect[i].used && now >= n->collect[i].deadline)
            collect_done(n, &n->collect[i], -ETIMEDOUT, now);
}

bool dht__holds_key(struct dht_node *n, const struct dht_id *key, uint64_t wall)
{
    struct dht_record rec;
    size_t k = 0;

    return dht_store_get(n->store, key, wall, &rec, 1, &k) == 0 && k > 0;
}

bool dht__pass_get(struct dht_node *n, const struct dht_msg *in, const uint8_t *buf, size_t len,
                   uint64_t now)
{
    struct dht_nbr *reps[1];
    struct dht_peer to;
    uint8_t copy[DHT_MSG_MAX];
    struct pend *p;

    if ((in->flags & DHT_FLAG_PASSED) || dht__holds_key(n, &in->key, dht__wall(n, now)) ||
        dht_route_closest_leaves(&n->route, &in->key, reps, 1) == 0)
        return false;
    to = reps[0]->peer;
    memcpy(copy, buf, len);
    copy[DHT_MSG_OFF_FLAGS] |= DHT_FLAG_PASSED;
    copy[DHT_MSG_OFF_HOPS] = (uint8_t)(in->hops + 1);
    p = dht__send_reliable(n, &to, copy, len, PK_DIRECT, now);
    return p != NULL;
}

void dht__answer_get(struct dht_node *n, const struct dht_msg *in, uint64_t now)
{
    struct dht_record recs[DHT_MSG_RECORDS_MAX];
    struct dht_msg m;
    size_t k = 0, bytes = DHT_MSG_HEADER_LEN + 64;
    int rc;

    rc = dht_store_get(n->store, &in->key, dht__wall(n, now), recs, DHT_MSG_RECORDS_MAX, &k);
    dht_msg_init(&m, DHT_MSG_GET_REPLY, &n->self.id);
    m.flags = DHT_FLAG_CLIENT;
    m.key = in->key;
    m.req_id = in->req_id;
    m.status = (int16_t)rc;
    m.have |= DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_REQ_ID) | DHT_HAVE(DHT_ATTR_STATUS);
    for (size_t i = 0; rc == 0 && i < k; i++) {
        size_t len = 4 + dht_record_encoded_len(&recs[i]);
        if (bytes + len > DHT_MSG_MAX)
            break;
        bytes += len;
        m.records[m.n_records++] = recs[i];
    }
    dht__reply(n, &in->origin, &m, now);
}

int dht__on_replicate(struct dht_node *n, const struct dht_msg *m, uint64_t now)
{
    int status = 0;

    for (size_t i = 0; i < m->n_records; i++) {
        int rc = dht_store_put(n->store, &m->records[i], dht__wall(n, now));
        if (rc == 0) {
            n->ctr.records_stored++;
            dht__record_event(n, DHT_EV_RECORD_REPLICATED, &m->records[i]);
        } else if (rc != -EALREADY) {
            n->ctr.records_refused++;
            if (status == 0)
                status = rc;
        }
    }
    return status;
}

/* ---- handoff ------------------------------------------------------------------- */

#define HANDOFF_MAX 512

struct handoff_ctx {
    struct dht_node *n;
    const struct dht_id *cur, *old;
    unsigned n_cur, n_old;
    struct {
        uint8_t dest; /* index into cur */
        struct dht_id key, value_id;
    } out[HANDOFF_MAX];
    unsigned n_out;
    bool overflow;
};

/* The k closest to key among ids[0..n) (self is ids[0]); marks them in sel. */
static void closest_set(const struct dht_id *key, const struct dht_id *ids, unsigned n, unsigned k,
                        bool *sel)
{
    memset(sel, 0, n * sizeof(bool));
    for (unsigned round = 0; round < k && round < n; round++) {
        int best = -1;
        for (unsigned i = 0; i < n; i++)
            if (!sel[i] && (best < 0 || dht_id_closer(key, &ids[i], &ids[best]) < 0))
                best = (int)i;
        sel[best] = true;
    }
}

static bool in_list(const struct dht_id *id, const struct dht_id *ids, unsigned n, bool *sel)
{
    for (unsigned i = 0; i < n; i++)
        if (sel[i] && dht_id_eq(id, &ids[i]))
            return true;
    return false;
}

static int handoff_visit(const struct dht_record *rec, void *arg)
{
    struct handoff_ctx *h = arg;
    unsigned k = h->n->cfg.replicas + 1;
    bool sel_cur[2 * DHT_LEAF_HALF_MAX + 1], sel_old[2 * DHT_LEAF_HALF_MAX + 1];

    closest_set(&rec->key, h->cur, h->n_cur, k, sel_cur);
    closest_set(&rec->key, h->old, h->n_old, k, sel_old);
    /* Every holder sends: a member we believe holds the record may not (it joined
     * and its own handoff never came), and the store ignores replays. */
    for (unsigned i = 1; i < h->n_cur; i++) {
        if (!sel_cur[i] || in_list(&h->cur[i], h->old, h->n_old, sel_old))
            continue;
        if (h->n_out >= HANDOFF_MAX) {
            h->overflow = true;
            return 1;
        }
        h->out[h->n_out].dest = (uint8_t)i;
        h->out[h->n_out].key = rec->key;
        h->out[h->n_out].value_id = rec->value_id;
        h->n_out++;
    }
    return 0;
}

static void send_records(struct dht_node *n, const struct dht_peer *to, struct dht_msg *m,
                         enum pend_kind kind, uint64_t now)
{
    if (m->n_records > 0)
        (void)dht__send_msg(n, to, m, kind, 0, now);
    m->n_records = 0;
}

void dht__handoff(struct dht_node *n, uint64_t now)
{
    static const struct dht_id zero;
    struct handoff_ctx *h;
    struct dht_id cur[2 * DHT_LEAF_HALF_MAX + 1], old[2 * DHT_LEAF_HALF_MAX + 1];
    struct dht_peer leaves[2 * DHT_LEAF_HALF_MAX];
    struct dht_id lo, hi;
    size_t nl;

    nl = dht_route_leafset(&n->route, leaves, 2 * DHT_LEAF_HALF_MAX);
    cur[0] = n->self.id;
    for (size_t i = 0; i < nl; i++)
        cur[i + 1] = leaves[i].id;
    old[0] = n->self.id;
    for (unsigned i = 0; i < n->n_hview; i++)
        old[i + 1] = n->hview[i];

    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        n->t_handoff = now + n->cfg.handoff_delay_ms;
        return;
    }
    h->n = n;
    h->cur = cur;
    h->n_cur = (unsigned)nl + 1;
    h->old = old;
    h->n_old = n->n_hview + 1;
    /* whole ring: low == high + 1 */
    lo = n->self.id;
    {
        struct dht_id one = zero;
        one.b[DHT_ID_LEN - 1] = 1;
        dht_id_sub(&hi, &lo, &one);
    }
    (void)dht_store_visit_range(n->store, &lo, &hi, dht__wall(n, now), handoff_visit, h);

    /* batch per destination */
    for (unsigned d = 1; d < h->n_cur; d++) {
        struct dht_msg m;
        size_t bytes = DHT_MSG_HEADER_LEN;
        dht_msg_init(&m, DHT_MSG_REPLICATE, &n->self.id);
        for (unsigned i = 0; i < h->n_out; i++) {
            struct dht_record rec;
            size_t len;
            if (h->out[i].dest != d || dht_store_find(n->store, &h->out[i].key, &h->out[i].value_id,
                                                      dht__wall(n, now), &rec) != 0)
                continue;
            len = 4 + dht_record_encoded_len(&rec);
            if (m.n_records == DHT_MSG_RECORDS_MAX || bytes + len > DHT_MSG_MAX) {
                send_records(n, &leaves[d - 1], &m, PK_DIRECT, now);
                bytes = DHT_MSG_HEADER_LEN;
            }
            m.records[m.n_records++] = rec;
            bytes += len;
            n->ctr.handoff_records++;
        }
        send_records(n, &leaves[d - 1], &m, PK_DIRECT, now);
    }
    if (h->overflow)
        n->t_handoff = now + 1000; /* more next time; the view stays the old one */
    free(h);
    if (n->t_handoff == 0) {
        n->n_hview = (unsigned)nl;
        for (size_t i = 0; i < nl; i++)
            n->hview[i] = leaves[i].id;
    }
}

/* ---- anti-entropy -------------------------------------------------------------- */

/* out = a + (b - a) / 2 on the ring: the midpoint going clockwise from a to b. */
static void midpoint(struct dht_id *out, const struct dht_id *a, const struct dht_id *b)
{
    struct dht_id d;
    unsigned carry = 0;

    dht_id_sub(&d, b, a);
    for (unsigned i = 0; i < DHT_ID_LEN; i++) {
        unsigned v = d.b[i];
        d.b[i] = (uint8_t)((v >> 1) | (carry << 7));
        carry = v & 1;
    }
    carry = 0;
    for (int i = DHT_ID_LEN - 1; i >= 0; i--) {
        unsigned s = (unsigned)a->b[i] + d.b[i] + carry;
        out->b[i] = (uint8_t)s;
        carry = s >> 8;
    }
}

static void encode_summary(struct dht_msg *m, const struct dht_store_summary *s)
{
    m->summary_len = 4 + DHT_STORE_DIGEST_LEN;
    m->summary[0] = (uint8_t)(s->count >> 24);
    m->summary[1] = (uint8_t)(s->count >> 16);
    m->summary[2] = (uint8_t)(s->count >> 8);
    m->summary[3] = (uint8_t)s->count;
    memcpy(m->summary + 4, s->digest, DHT_STORE_DIGEST_LEN);
    m->have |= DHT_HAVE(DHT_ATTR_SUMMARY);
}

void dht__sync_start(struct dht_node *n, uint64_t now)
{
    const struct dht_route *rt = &n->route;
    struct dht_nbr *partners[2 * DHT_LEAF_HALF_MAX];
    struct dht_store_summary sum;
    struct dht_peer to;
    struct dht_id lo, hi;
    struct dht_msg m;
    size_t k;

    if (n->sync_busy && now < n->sync_until)
        return;
    n->sync_busy = false;
    /* Partners: the R nearest leaves on each side.  A key of our arc near one edge
     * has replicas up to R nodes away on that side, so the R closest to our own
     * ID would miss some of them. */
    k = 0;
    for (unsigned side = 0; side < 2; side++) {
        const uint16_t *arr = side ? rt->succs : rt->preds;
        unsigned cnt = side ? rt->n_succs : rt->n_preds;
        for (unsigned j = 0; j < cnt && j < n->cfg.replicas; j++) {
            struct dht_nbr *e = &rt->pool[arr[j]];
            if ((e->flags & DHT_NBR_SUSPECT) || (side == 1 && (e->flags & DHT_NBR_PRED)))
                continue;
            partners[k++] = e;
        }
    }
    if (k == 0 || rt->n_preds == 0 || rt->n_succs == 0)
        return;
    to = partners[dht__rand(n) % k]->peer;
    /* the arc this node is root for */
    midpoint(&lo, &rt->pool[rt->preds[0]].peer.id, &n->self.id);
    midpoint(&hi, &n->self.id, &rt->pool[rt->succs[0]].peer.id);
    (void)dht_store_summarize(n->store, &lo, &hi, dht__wall(n, now), &sum);
    for (unsigned depth = 0; depth < 4 && sum.count > DHT_SYNC_IDENTS; depth++) {
        struct dht_id slo, shi;
        unsigned i = (unsigned)(dht__rand(n) % DHT_STORE_SUBRANGES);
        if (dht_store_subrange(&lo, &hi, i, &slo, &shi) != 0)
            break;
        lo = slo;
        hi = shi;
        (void)dht_store_summarize(n->store, &lo, &hi, dht__wall(n, now), &sum);
    }
    dht_msg_init(&m, DHT_MSG_SYNC, &n->self.id);
    m.lo = lo;
    m.hi = hi;
    m.have |= DHT_HAVE(DHT_ATTR_LO) | DHT_HAVE(DHT_ATTR_HI);
    encode_summary(&m, &sum);
    n->sync_busy = true;
    n->sync_peer = to.id;
    n->sync_lo = lo;
    n->sync_hi = hi;
    n->sync_until = now + 4 * (uint64_t)n->cfg.rto.cap_ms;
    n->ctr.sync_rounds++;
    dht__reply(n, &to, &m, now);
}

void dht__on_sync(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *in,
                  uint64_t now)
{
    struct dht_store_summary sum;
    struct dht_msg m;
    bool more = false;

    if ((in->have & (DHT_HAVE(DHT_ATTR_LO) | DHT_HAVE(DHT_ATTR_HI) | DHT_HAVE(DHT_ATTR_SUMMARY))) !=
            (DHT_HAVE(DHT_ATTR_LO) | DHT_HAVE(DHT_ATTR_HI) | DHT_HAVE(DHT_ATTR_SUMMARY)) ||
        in->summary_len != 4 + DHT_STORE_DIGEST_LEN)
        return;
    (void)dht_store_summarize(n->store, &in->lo, &in->hi, dht__wall(n, now), &sum);
    dht_msg_init(&m, DHT_MSG_SYNC_REPLY, &n->self.id);
    m.lo = in->lo;
    m.hi = in->hi;
    m.count = sum.count;
    m.have |= DHT_HAVE(DHT_ATTR_LO) | DHT_HAVE(DHT_ATTR_HI) | DHT_HAVE(DHT_ATTR_COUNT) |
              DHT_HAVE(DHT_ATTR_STATUS);
    if (memcmp(in->summary + 4, sum.digest, DHT_STORE_DIGEST_LEN) != 0 ||
        ((uint32_t)in->summary[0] << 24 | (uint32_t)in->summary[1] << 16 |
         (uint32_t)in->summary[2] << 8 | in->summary[3]) != sum.count) {
        (void)dht_store_list(n->store, &in->lo, &in->hi, NULL, dht__wall(n, now), m.idents,
                             DHT_SYNC_IDENTS, &m.n_idents, &more);
        m.have |= DHT_HAVE(DHT_ATTR_IDENTS);
        m.status = more ? 1 : 0;
    } else {
        m.status = 0; /* same: no identities */
    }
    dht__reply(n, from, &m, now);
}

void dht__on_sync_reply(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *in,
                        uint64_t now)
{
    struct dht_record_ident mine[DHT_SYNC_IDENTS];
    struct dht_msg fetch, push;
    struct dht_record rec;
    size_t n_mine = 0, bytes = DHT_MSG_HEADER_LEN;
    bool more = false;

    if (!n->sync_busy || !dht_id_eq(&from->id, &n->sync_peer) ||
        !(in->have & DHT_HAVE(DHT_ATTR_LO)) || !dht_id_eq(&in->lo, &n->sync_lo) ||
        !dht_id_eq(&in->hi, &n->sync_hi))
        return;
    n->sync_busy = false;
    if (!(in->have & DHT_HAVE(DHT_ATTR_IDENTS)))
        return; /* in sync */

    /* pull: what the peer has that we lack or hold older */
    dht_msg_init(&fetch, DHT_MSG_FETCH, &n->self.id);
    for (size_t i = 0; i < in->n_idents; i++) {
        const struct dht_record_ident *id = &in->idents[i];
        if (dht_store_find(n->store, &id->key, &id->value_id, dht__wall(n, now), &rec) == 0 &&
            rec.seq >= id->seq)
            continue;
        fetch.idents[fetch.n_idents++] = *id;
    }
    if (fetch.n_idents > 0) {
        fetch.have |= DHT_HAVE(DHT_ATTR_IDENTS);
        n->ctr.sync_fetched += fetch.n_idents;
        dht__reply(n, from, &fetch, now);
    }
    if (in->status != 0)
        return; /* the peer's list is partial: it may hold what we would push */

    /* push: what we have that the peer lacks or holds older */
    (void)dht_store_list(n->store, &n->sync_lo, &n->sync_hi, NULL, dht__wall(n, now), mine,
                         DHT_SYNC_IDENTS, &n_mine, &more);
    dht_msg_init(&push, DHT_MSG_REPLICATE, &n->self.id);
    for (size_t i = 0; i < n_mine; i++) {
        bool peer_has = false;
        size_t len;
        for (size_t j = 0; j < in->n_idents; j++)
            if (dht_id_eq(&in->idents[j].key, &mine[i].key) &&
                dht_id_eq(&in->idents[j].value_id, &mine[i].value_id) &&
                in->idents[j].seq >= mine[i].seq)
                peer_has = true;
        if (peer_has ||
            dht_store_find(n->store, &mine[i].key, &mine[i].value_id, dht__wall(n, now), &rec) != 0)
            continue;
        len = 4 + dht_record_encoded_len(&rec);
        if (push.n_records == DHT_MSG_RECORDS_MAX || bytes + len > DHT_MSG_MAX) {
            send_records(n, from, &push, 0, now);
            bytes = DHT_MSG_HEADER_LEN;
        }
        push.records[push.n_records++] = rec;
        bytes += len;
    }
    send_records(n, from, &push, 0, now);
}

void dht__on_fetch(struct dht_node *n, const struct dht_peer *from, const struct dht_msg *in,
                   uint64_t now)
{
    struct dht_msg m;
    struct dht_record rec;
    size_t bytes = DHT_MSG_HEADER_LEN;

    dht_msg_init(&m, DHT_MSG_REPLICATE, &n->self.id);
    for (size_t i = 0; i < in->n_idents; i++) {
        size_t len;
        if (dht_store_find(n->store, &in->idents[i].key, &in->idents[i].value_id, dht__wall(n, now),
                           &rec) != 0)
            continue;
        len = 4 + dht_record_encoded_len(&rec);
        if (m.n_records == DHT_MSG_RECORDS_MAX || bytes + len > DHT_MSG_MAX) {
            send_records(n, from, &m, 0, now);
            bytes = DHT_MSG_HEADER_LEN;
        }
        m.records[m.n_records++] = rec;
        bytes += len;
    }
    send_records(n, from, &m, 0, now);
}
