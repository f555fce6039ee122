/*
 * test_dht_node.c: the DHT node on small simulated rings (a FIFO network with a
 * fixed 10 ms latency, driven by dht_node_next_deadline / dht_node_advance):
 * join and leaf-set convergence, lookups reaching the true root, replication to
 * R replicas with a quorum, handoff to a new replica-set member, failure
 * detection and removal, owner-only puts, and bad input that must change nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "p2p/dht_node.h"

#define MAXN 32
#define LAT 10

struct qmsg {
    uint64_t at;
    unsigned to, from;
    uint8_t *buf;
    size_t len;
};

struct net;

struct tnode {
    struct net *net;
    unsigned idx;
    struct dht_node *node;
    struct dht_store *store;
    uint8_t pk[32], sk[64];
    bool joined, down;
    bool cut; /* partitioned away: what it sends and what is sent to it is lost */
    int join_status;
};

struct net {
    struct tnode n[MAXN];
    unsigned count;
    struct qmsg *q;
    size_t qh, qn, qcap;
    uint64_t now;
    int64_t wall_off; /* wall clock = now + wall_off (test_two_clocks) */
    struct dht_config cfg;
    unsigned callbacks_inside; /* callbacks run inside the arming call: must stay 0 */
    /* optional: sees every message sent (test_reroute_carries_avoid) */
    void (*spy)(struct net *net, unsigned from, unsigned to, const uint8_t *buf, size_t len);
    void *spy_arg;
    bool in_call;
};

static void addr_of(unsigned i, struct dht_addr *a)
{
    a->len = 1;
    a->b[0] = (uint8_t)i;
}

static int tsend(void *arg, const struct dht_peer *to, const uint8_t *buf, size_t len)
{
    struct tnode *src = arg;
    struct net *net = src->net;
    struct qmsg *m;

    assert_int_equal(to->addr.len, 1);
    if (net->spy != NULL)
        net->spy(net, src->idx, to->addr.b[0], buf, len);
    if (src->cut || (to->addr.b[0] < net->count && net->n[to->addr.b[0]].cut))
        return 0;
    if (net->qn == net->qcap) {
        /* compact, then grow */
        if (net->q != NULL)
            memmove(net->q, net->q + net->qh, (net->qn - net->qh) * sizeof(*net->q));
        net->qn -= net->qh;
        net->qh = 0;
        if (net->qn == net->qcap) {
            net->qcap = net->qcap ? net->qcap * 2 : 256;
            net->q = realloc(net->q, net->qcap * sizeof(*net->q));
            assert_non_null(net->q);
        }
    }
    m = &net->q[net->qn++];
    m->at = net->now + LAT;
    m->to = to->addr.b[0];
    m->from = src->idx;
    m->buf = malloc(len);
    assert_non_null(m->buf);
    memcpy(m->buf, buf, len);
    m->len = len;
    return 0;
}

static void net_init(struct net *net, unsigned leaf, unsigned replicas, unsigned quorum)
{
    memset(net, 0, sizeof(*net));
    net->now = 1000;
    dht_config_init(&net->cfg);
    net->cfg.leaf_half = leaf;
    net->cfg.replicas = replicas;
    net->cfg.quorum = quorum;
}

/* Creates node i with a key pair derived from seed. */
static struct tnode *net_add(struct net *net, uint8_t seed)
{
    struct tnode *t = &net->n[net->count];
    struct dht_node_ops ops = {.send = tsend, .arg = t};
    struct dht_addr a;
    uint8_t s[32];

    memset(s, seed, sizeof(s));
    t->net = net;
    t->idx = net->count++;
    crypto_sign_seed_keypair(t->pk, t->sk, s);
    assert_int_equal(dht_store_new(&t->store, NULL), 0);
    addr_of(t->idx, &a);
    net->cfg.seed = seed;
    assert_int_equal(dht_node_new(&t->node, t->pk, &a, &net->cfg, t->store, &ops, net->now), 0);
    return t;
}

static void net_free(struct net *net)
{
    for (unsigned i = 0; i < net->count; i++) {
        dht_node_free(net->n[i].node);
        dht_store_free(net->n[i].store);
    }
    for (size_t k = net->qh; k < net->qn; k++)
        free(net->q[k].buf);
    free(net->q);
}

/* Runs the network until `until` (absolute ms). */
static void net_run(struct net *net, uint64_t until)
{
    for (;;) {
        uint64_t t = UINT64_MAX;
        if (net->qh < net->qn)
            t = net->q[net->qh].at;
        for (unsigned i = 0; i < net->count; i++) {
            uint64_t d;
            if (net->n[i].down)
                continue;
            d = dht_node_next_deadline(net->n[i].node);
            if (d < t)
                t = d < net->now ? net->now : d;
        }
        if (t > until)
            break;
        net->now = t;
        while (net->qh < net->qn && net->q[net->qh].at <= net->now) {
            struct qmsg m = net->q[net->qh++];
            struct dht_addr from;
            if (m.to < net->count && !net->n[m.to].down) {
                addr_of(m.from, &from);
                (void)dht_node_recv(net->n[m.to].node, &from, m.buf, m.len, net->now);
            }
            free(m.buf);
        }
        for (unsigned i = 0; i < net->count; i++)
            if (!net->n[i].down && dht_node_next_deadline(net->n[i].node) <= net->now)
                dht_node_advance(net->n[i].node, net->now);
    }
    net->now = until;
}

static void on_join(int status, void *arg)
{
    struct tnode *t = arg;
    if (t->net->in_call)
        t->net->callbacks_inside++;
    t->joined = status == 0;
    t->join_status = status;
}

static void join(struct net *net, struct tnode *t, struct tnode *via)
{
    struct dht_peer bs;

    net->in_call = true;
    if (via == NULL) {
        assert_int_equal(dht_node_join(t->node, NULL, on_join, t, net->now), 0);
    } else {
        bs = *dht_node_self(via->node);
        assert_int_equal(dht_node_join(t->node, &bs, on_join, t, net->now), 0);
    }
    net->in_call = false;
    assert_false(t->joined); /* never inside the call */
    net_run(net, net->now + 2000);
    assert_true(t->joined);
}

/* The live node closest to key. */
static struct tnode *true_root(struct net *net, const struct dht_id *key)
{
    struct tnode *best = NULL;
    for (unsigned i = 0; i < net->count; i++) {
        if (net->n[i].down)
            continue;
        if (best == NULL ||
            dht_id_closer(key, dht_node_id(net->n[i].node), dht_node_id(best->node)) < 0)
            best = &net->n[i];
    }
    return best;
}

struct lk {
    int status;
    struct dht_peer root;
    unsigned hops;
    bool done;
};

static void on_lookup(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    struct lk *l = arg;
    l->status = status;
    if (root != NULL)
        l->root = *root;
    l->hops = hops;
    l->done = true;
}

static void rand_id(struct dht_id *id, unsigned seed)
{
    dht_id_hash(id, &seed, sizeof(seed));
}

static struct net *ring(unsigned n, unsigned leaf, unsigned r, unsigned q)
{
    struct net *net = calloc(1, sizeof(*net));
    assert_non_null(net);
    net_init(net, leaf, r, q);
    for (unsigned i = 0; i < n; i++) {
        struct tnode *t = net_add(net, (uint8_t)(i + 1));
        join(net, t, i == 0 ? NULL : &net->n[(i * 7) % i]);
    }
    net_run(net, net->now + 20000);
    return net;
}

static void test_join_converges_and_routes(void **state)
{
    struct net *net = ring(12, 4, 2, 1);

    (void)state;
    assert_int_equal(net->callbacks_inside, 0);
    /* every leaf set is the 4 true neighbours on each side */
    for (unsigned i = 0; i < net->count; i++) {
        const struct dht_route *rt = dht_node_route(net->n[i].node);
        assert_int_equal(rt->n_preds, 4);
        assert_int_equal(rt->n_succs, 4);
        for (unsigned k = 0; k < 4; k++) {
            const struct dht_id *succ = &rt->pool[rt->succs[k]].peer.id;
            /* no live node lies strictly between self and its k-th successor
             * other than the k nearer successors */
            unsigned between = 0;
            struct dht_id dsucc, dj;
            dht_id_sub(&dsucc, succ, dht_node_id(net->n[i].node));
            for (unsigned j = 0; j < net->count; j++) {
                if (j == i)
                    continue;
                dht_id_sub(&dj, dht_node_id(net->n[j].node), dht_node_id(net->n[i].node));
                if (dht_id_cmp(&dj, &dsucc) < 0)
                    between++;
            }
            assert_int_equal(between, k);
        }
        assert_false(dht_node_cut_off(net->n[i].node, net->now));
    }
    /* lookups from every node reach the true root */
    for (unsigned k = 0; k < 60; k++) {
        struct dht_id key;
        struct lk l = {0};
        struct tnode *from = &net->n[k % net->count];
        rand_id(&key, k);
        net->in_call = true;
        assert_int_equal(dht_node_lookup(from->node, &key, on_lookup, &l, net->now), 0);
        net->in_call = false;
        assert_false(l.done);
        net_run(net, net->now + 3000);
        assert_true(l.done);
        assert_int_equal(l.status, 0);
        assert_true(dht_id_eq(&l.root.id, dht_node_id(true_root(net, &key)->node)));
        assert_true(l.hops <= 3);
    }
    net_free(net);
    free(net);
}

struct tr {
    int status;
    struct dht_trace t;
    bool done;
};

static void on_trace(int status, const struct dht_trace *t, void *arg)
{
    struct tr *x = arg;
    x->status = status;
    if (t != NULL)
        x->t = *t;
    x->done = true;
}

/* A traced lookup returns its route: origin first, root last, each hop a neighbour
 * of the one before, with its smoothed RTT to that neighbour (20 ms round trips). */
static void test_trace_returns_the_route(void **state)
{
    struct net *net = ring(30, 2, 2, 1);
    unsigned multi = 0, measured = 0;

    (void)state;
    for (unsigned k = 0; k < 40; k++) {
        struct dht_id key;
        struct tr x = {0};
        struct tnode *from = &net->n[(k * 3) % net->count];
        rand_id(&key, 900 + k);
        net->in_call = true;
        assert_int_equal(dht_node_trace(from->node, &key, on_trace, &x, net->now), 0);
        net->in_call = false;
        net_run(net, net->now + 3000);
        assert_true(x.done);
        assert_int_equal(x.status, 0);
        assert_true(dht_id_eq(&x.t.root.id, dht_node_id(true_root(net, &key)->node)));
        assert_int_equal(x.t.n_path, x.t.hops + 1);
        assert_true(dht_id_eq(&x.t.path[0].id, dht_node_id(from->node)));
        assert_true(dht_id_eq(&x.t.path[x.t.n_path - 1].id, &x.t.root.id));
        assert_int_equal(x.t.path[x.t.n_path - 1].rtt_ms, 0);
        for (unsigned i = 0; i + 1 < x.t.n_path; i++) {
            struct tnode *h = NULL;
            for (unsigned j = 0; j < net->count && h == NULL; j++)
                if (dht_id_eq(dht_node_id(net->n[j].node), &x.t.path[i].id))
                    h = &net->n[j];
            assert_non_null(h);
            assert_non_null(dht_route_find(dht_node_route(h->node), &x.t.path[i + 1].id));
            if (x.t.path[i].rtt_ms != DHT_PATH_RTT_UNKNOWN) {
                assert_in_range(x.t.path[i].rtt_ms, 10, 40);
                measured++;
            }
        }
        multi += x.t.hops >= 2;
    }
    assert_true(multi > 0);
    assert_true(measured > 20);
    net_free(net);
    free(net);
}

struct putres {
    int status;
    unsigned acks;
    bool done;
};

static void on_put(int status, unsigned acks, void *arg)
{
    struct putres *p = arg;
    p->status = status;
    p->acks = acks;
    p->done = true;
}

struct getres {
    int status;
    size_t n;
    uint64_t seq;
    bool done;
};

static void on_get(int status, const struct dht_record *recs, size_t n, void *arg)
{
    struct getres *g = arg;
    g->status = status;
    g->n = n;
    g->seq = n > 0 ? recs[0].seq : 0;
    g->done = true;
}

static void make_record(struct dht_record *rec, const struct dht_id *key, unsigned vid,
                        uint64_t seq, uint64_t now, const uint8_t *sk)
{
    static const uint8_t v[] = "<sip:alice@192.0.2.1:5060>";
    memset(rec, 0, sizeof(*rec));
    rec->key = *key;
    rand_id(&rec->value_id, 1000 + vid);
    rec->seq = seq;
    rec->expiry_ms = now + 3600 * 1000;
    rec->value = v;
    rec->value_len = sizeof(v) - 1;
    assert_int_equal(dht_record_sign(rec, sk), 0);
}

static unsigned holders(struct net *net, const struct dht_record *rec)
{
    unsigned h = 0;
    for (unsigned i = 0; i < net->count; i++) {
        struct dht_record r;
        if (!net->n[i].down &&
            dht_store_find(net->n[i].store, &rec->key, &rec->value_id, net->now, &r) == 0)
            h++;
    }
    return h;
}

/* Are the R+1 closest live nodes to key exactly the ones holding rec? */
static bool held_by_replica_set(struct net *net, const struct dht_record *rec, unsigned r)
{
    bool taken[MAXN] = {false};
    for (unsigned k = 0; k <= r; k++) {
        int best = -1;
        struct dht_record tmp;
        for (unsigned i = 0; i < net->count; i++)
            if (!net->n[i].down && !taken[i] &&
                (best < 0 || dht_id_closer(&rec->key, dht_node_id(net->n[i].node),
                                           dht_node_id(net->n[best].node)) < 0))
                best = (int)i;
        taken[best] = true;
        if (dht_store_find(net->n[best].store, &rec->key, &rec->value_id, net->now, &tmp) != 0)
            return false;
    }
    return true;
}

static void test_put_replicates_with_quorum(void **state)
{
    struct net *net = ring(10, 4, 4, 2);
    uint8_t opk[32], osk[64], other_pk[32], other_sk[64];
    struct dht_record rec, rogue;
    struct dht_id key;
    struct putres p = {0};
    struct getres g = {0};

    (void)state;
    crypto_sign_keypair(opk, osk);
    crypto_sign_keypair(other_pk, other_sk);
    rand_id(&key, 4242);
    make_record(&rec, &key, 1, 1, net->now, osk);
    net->in_call = true;
    assert_int_equal(dht_node_put(net->n[3].node, &rec, on_put, &p, net->now), 0);
    net->in_call = false;
    assert_false(p.done);
    net_run(net, net->now + 3000);
    assert_true(p.done);
    assert_int_equal(p.status, 0);
    assert_true(p.acks >= 2);
    /* root + R replicas hold it, nobody else */
    assert_int_equal(holders(net, &rec), 5);
    assert_true(held_by_replica_set(net, &rec, 4));
    /* get from a node that is not a replica */
    assert_int_equal(dht_node_get(net->n[0].node, &key, on_get, &g, net->now), 0);
    net_run(net, net->now + 3000);
    assert_true(g.done);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 1);
    /* another owner cannot write under the claimed key: the root refuses */
    make_record(&rogue, &key, 2, 5, net->now, other_sk);
    memset(&p, 0, sizeof(p));
    assert_int_equal(dht_node_put(net->n[5].node, &rogue, on_put, &p, net->now), 0);
    net_run(net, net->now + 3000);
    assert_true(p.done);
    assert_int_equal(p.status, -EPERM);
    assert_int_equal(holders(net, &rogue), 0);
    /* a get for a key nobody stored: status 0, no records */
    struct dht_id none;
    rand_id(&none, 999);
    memset(&g, 0, sizeof(g));
    assert_int_equal(dht_node_get(net->n[2].node, &none, on_get, &g, net->now), 0);
    net_run(net, net->now + 3000);
    assert_true(g.done);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 0);
    net_free(net);
    free(net);
}

static void test_handoff_and_failure(void **state)
{
    struct net *net = ring(8, 4, 3, 2);
    uint8_t opk[32], osk[64];
    struct dht_record rec;
    struct dht_id key;
    struct putres p = {0};
    struct tnode *root;

    (void)state;
    crypto_sign_keypair(opk, osk);
    rand_id(&key, 77);
    make_record(&rec, &key, 1, 1, net->now, osk);
    assert_int_equal(dht_node_put(net->n[1].node, &rec, on_put, &p, net->now), 0);
    net_run(net, net->now + 3000);
    assert_int_equal(p.status, 0);
    assert_true(held_by_replica_set(net, &rec, 3));

    /* new nodes join; the record follows its replica set */
    for (unsigned i = 0; i < 8; i++) {
        struct tnode *t = net_add(net, (uint8_t)(100 + i));
        join(net, t, &net->n[i]);
    }
    net_run(net, net->now + 10000);
    assert_true(held_by_replica_set(net, &rec, 3));

    /* the root dies abruptly: its neighbours notice, remove it, and the record is
     * re-replicated to the new R+1 closest */
    root = true_root(net, &key);
    root->down = true;
    net_run(net, net->now + 15000);
    for (unsigned i = 0; i < net->count; i++) {
        if (net->n[i].down)
            continue;
        /* gone from every leaf set (table-only entries are probed lazily, or when
         * a message to them times out) */
        const struct dht_nbr *e =
            dht_route_find(dht_node_route(net->n[i].node), dht_node_id(root->node));
        assert_true(e == NULL || !(e->flags & DHT_NBR_LEAF));
        assert_true(dht_node_counters(net->n[i].node)->msgs_sent[DHT_MSG_PING] > 0);
    }
    assert_true(held_by_replica_set(net, &rec, 3));
    /* and lookups go to the new root */
    struct lk l = {0};
    assert_int_equal(dht_node_lookup(net->n[2].node, &key, on_lookup, &l, net->now), 0);
    net_run(net, net->now + 3000);
    assert_int_equal(l.status, 0);
    assert_true(dht_id_eq(&l.root.id, dht_node_id(true_root(net, &key)->node)));
    net_free(net);
    free(net);
}

/* Anti-entropy: a record only the root holds reaches the replicas (SYNC, SYNC_REPLY,
 * push), and one only a replica holds reaches the root (FETCH) and from there the
 * rest of the replica set.  Only differences cross: in-sync rounds carry no
 * identities. */
static void test_anti_entropy(void **state)
{
    struct net *net = calloc(1, sizeof(*net));
    uint8_t opk[32], osk[64];
    struct dht_record a, b;
    struct dht_id ka, kb;
    struct tnode *ra, *rb, *rep;
    struct dht_nbr *c[1];
    uint64_t fetched = 0, rounds = 0;

    (void)state;
    assert_non_null(net);
    net_init(net, 4, 2, 1);
    net->cfg.sync_ms = 2000;
    for (unsigned i = 0; i < 8; i++) {
        struct tnode *t = net_add(net, (uint8_t)(40 + i));
        join(net, t, i == 0 ? NULL : &net->n[0]);
    }
    net_run(net, net->now + 10000);
    crypto_sign_keypair(opk, osk);
    rand_id(&ka, 501);
    rand_id(&kb, 502);
    make_record(&a, &ka, 1, 1, net->now, osk);
    make_record(&b, &kb, 1, 1, net->now, osk);
    /* a: at its root only; b: at one replica only (bypassing the protocol) */
    ra = true_root(net, &ka);
    assert_int_equal(dht_store_put(ra->store, &a, net->now), 0);
    rb = true_root(net, &kb);
    assert_int_equal(dht_route_closest_leaves(dht_node_route(rb->node), &kb, c, 1), 1);
    rep = NULL;
    for (unsigned i = 0; i < net->count; i++)
        if (dht_id_eq(dht_node_id(net->n[i].node), &c[0]->peer.id))
            rep = &net->n[i];
    assert_non_null(rep);
    assert_int_equal(dht_store_put(rep->store, &b, net->now), 0);
    assert_int_equal(holders(net, &a), 1);
    assert_int_equal(holders(net, &b), 1);
    net_run(net, net->now + 40000);
    assert_true(held_by_replica_set(net, &a, 2));
    assert_true(held_by_replica_set(net, &b, 2));
    for (unsigned i = 0; i < net->count; i++) {
        fetched += dht_node_counters(net->n[i].node)->sync_fetched;
        rounds += dht_node_counters(net->n[i].node)->sync_rounds;
    }
    assert_true(fetched >= 1);
    assert_true(rounds > 8);
    net_free(net);
    free(net);
}

static void test_bad_input_changes_nothing(void **state)
{
    struct net *net = ring(4, 4, 2, 1);
    struct tnode *t = &net->n[0];
    const struct dht_route *rt = dht_node_route(t->node);
    const struct dht_counters *c = dht_node_counters(t->node);
    unsigned pool_before = rt->pool_len, preds = rt->n_preds;
    uint8_t buf[1024], rpk[32], rsk[64];
    struct dht_msg m;
    struct dht_id stranger, key;
    struct dht_addr from;
    struct dht_record rec;
    struct dht_store_stats st;
    int len;

    (void)state;
    addr_of(9, &from);
    rand_id(&stranger, 31337);
    /* garbage */
    memset(buf, 0x41, sizeof(buf));
    assert_int_equal(dht_node_recv(t->node, &from, buf, sizeof(buf), net->now), -EBADMSG);
    assert_int_equal(c->dropped_malformed, 1);
    /* oversized */
    assert_int_equal(dht_node_recv(t->node, &from, buf, DHT_MSG_MAX + 1, net->now), -EMSGSIZE);
    assert_int_equal(c->dropped_oversize, 1);
    /* unknown type */
    dht_msg_init(&m, DHT_MSG_PING, &stranger);
    m.type = 99;
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_int_equal(dht_node_recv(t->node, &from, buf, (size_t)len, net->now), -EPROTO);
    assert_int_equal(c->dropped_unknown, 1);
    /* a claimed ID that is not the hash of the key carried */
    dht_msg_init(&m, DHT_MSG_LEAFSET, &stranger);
    memset(m.sender_key, 7, DHT_PUBKEY_LEN);
    m.have = DHT_HAVE(DHT_ATTR_SENDER_KEY);
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_int_equal(dht_node_recv(t->node, &from, buf, (size_t)len, net->now), -EACCES);
    assert_int_equal(c->dropped_badkey, 1);
    /* a record whose signature does not verify */
    crypto_sign_keypair(rpk, rsk);
    rand_id(&key, 5);
    make_record(&rec, &key, 1, 1, net->now, rsk);
    rec.seq = 2; /* changed after signing */
    dht_msg_init(&m, DHT_MSG_REPLICATE, &stranger);
    m.records[0] = rec;
    m.n_records = 1;
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_true(len > 0);
    assert_int_equal(dht_node_recv(t->node, &from, buf, (size_t)len, net->now), -EBADMSG);
    assert_int_equal(c->dropped_badrecord, 1);
    dht_store_get_stats(t->store, &st);
    assert_int_equal(st.records, 0);
    /* none of it touched the routing state: the stranger is unknown */
    assert_null(dht_route_find(rt, &stranger));
    assert_int_equal(rt->pool_len, pool_before);
    assert_int_equal(rt->n_preds, preds);
    /* a well-formed PING from the stranger is answered and it is learned */
    dht_msg_init(&m, DHT_MSG_PING, &stranger);
    m.flags = DHT_FLAG_ACK_REQ;
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_int_equal(dht_node_recv(t->node, &from, buf, (size_t)len, net->now), 0);
    assert_int_equal(c->msgs_sent[DHT_MSG_ACK] > 0, 1);
    net_free(net);
    free(net);
}

static void test_lone_node_and_cutoff(void **state)
{
    struct net *net = calloc(1, sizeof(*net));
    struct tnode *a;
    struct lk l = {0};
    struct putres p = {0};
    struct dht_record rec;
    struct dht_id key;
    uint8_t opk[32], osk[64];

    (void)state;
    net_init(net, 8, 4, 2);
    a = net_add(net, 1);
    rand_id(&key, 3);
    assert_int_equal(dht_node_lookup(a->node, &key, on_lookup, &l, net->now), -ENOTCONN);
    join(net, a, NULL);
    assert_int_equal(a->join_status, 0);
    /* a ring of one is its own root, and a put needs no replica acks */
    rand_id(&key, 3);
    assert_int_equal(dht_node_lookup(a->node, &key, on_lookup, &l, net->now), 0);
    assert_false(l.done);
    net_run(net, net->now + 100);
    assert_true(l.done);
    assert_true(dht_id_eq(&l.root.id, dht_node_id(a->node)));
    assert_int_equal(l.hops, 0);
    crypto_sign_keypair(opk, osk);
    make_record(&rec, &key, 1, 1, net->now, osk);
    assert_int_equal(dht_node_put(a->node, &rec, on_put, &p, net->now), 0);
    net_run(net, net->now + 100);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.acks, 0);
    /* never had peers: not cut off, even after a long time */
    net_run(net, net->now + 120000);
    assert_false(dht_node_cut_off(a->node, net->now));
    /* a node whose whole leaf set dies is cut off after cutoff_ms */
    struct tnode *b = net_add(net, 2);
    join(net, b, a);
    net_run(net, net->now + 5000);
    a->down = true;
    net_run(net, net->now + 5000);
    assert_false(dht_node_cut_off(b->node, net->now));
    net_run(net, net->now + net->cfg.cutoff_ms + 1000);
    assert_true(dht_node_cut_off(b->node, net->now));
    assert_true(dht_node_memory(b->node) < 64 * 1024);
    net_free(net);
    free(net);
}

static uint64_t twall(void *arg)
{
    const struct net *net = arg;
    return (uint64_t)((int64_t)net->now + net->wall_off);
}

static uint64_t sent_total(struct net *net)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < net->count; i++)
        for (unsigned k = 0; k <= DHT_MSG_TYPE_MAX; k++)
            t += dht_node_counters(net->n[i].node)->msgs_sent[k];
    return t;
}

static uint64_t timeouts_total(struct net *net)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < net->count; i++)
        t += dht_node_counters(net->n[i].node)->timeouts;
    return t;
}

/* One lookup from node `from`: it answers, at the true root, within 3 hops of 10 ms
 * there and a reply back (no timer waited on the way). */
static void quick_lookup(struct net *net, unsigned from, unsigned seed)
{
    struct dht_id key;
    struct lk l = {0};
    uint64_t t0 = net->now;

    rand_id(&key, seed);
    assert_int_equal(dht_node_lookup(net->n[from].node, &key, on_lookup, &l, net->now), 0);
    while (!l.done && net->now < t0 + 5000)
        net_run(net, net->now + 5);
    assert_true(l.done);
    assert_int_equal(l.status, 0);
    assert_true(net->now - t0 <= 5 * LAT);
    assert_true(dht_id_eq(&l.root.id, dht_node_id(true_root(net, &key)->node)));
}

/* Two clocks: the wall clock steps back an hour, then forward two hours, while the
 * monotonic clock runs on.  Timers fire as before (the traffic of a minute stays
 * what it was, no timeout storm, lookups take no longer); records live and die by
 * the wall clock: one put before the steps and one put while the clock was an hour
 * behind both expire when the wall clock jumps past their expiry, minutes of
 * monotonic time after they were stored. */
static void test_two_clocks(void **state)
{
    struct net *net = ring(8, 4, 2, 1);
    uint8_t opk[32], osk[64];
    struct dht_record r1, r2;
    struct dht_id k1, k2;
    struct putres p = {0};
    struct getres g = {0};
    uint64_t s0, s1, s2, s3, t0, t1;
    struct dht_store_stats st;

    (void)state;
    for (unsigned i = 0; i < net->count; i++)
        dht_node_set_wall_clock(net->n[i].node, twall, net);
    net->wall_off = 1700000000000; /* Unix ms, November 2023 */
    crypto_sign_keypair(opk, osk);
    rand_id(&k1, 601);
    rand_id(&k2, 602);
    /* r1 expires 30 min of wall time from now */
    make_record(&r1, &k1, 1, 1, twall(net) - 3600 * 1000 + 1800 * 1000, osk);
    assert_int_equal(dht_node_put(net->n[1].node, &r1, on_put, &p, net->now), 0);
    net_run(net, net->now + 1000);
    assert_int_equal(p.status, 0);
    assert_int_equal(holders(net, &r1), 3);
    net_run(net, net->now + 60000);
    s0 = sent_total(net);
    t0 = timeouts_total(net);
    net_run(net, net->now + 60000);
    s1 = sent_total(net) - s0; /* messages of a quiet minute */
    assert_true(s1 > 0);
    quick_lookup(net, 0, 1);

    /* back one hour */
    net->wall_off -= 3600 * 1000;
    s0 = sent_total(net);
    net_run(net, net->now + 60000);
    s2 = sent_total(net) - s0;
    assert_true(s2 <= 2 * s1 && s1 <= 2 * s2); /* neither a storm nor a stall */
    quick_lookup(net, 3, 2);
    /* r1 is live: the wall clock is further from its expiry than before */
    memset(&g, 0, sizeof(g));
    assert_int_equal(dht_node_get(net->n[5].node, &k1, on_get, &g, net->now), 0);
    net_run(net, net->now + 1000);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 1);
    /* r2, written while the wall clock is behind: expires 10 min of wall time on */
    make_record(&r2, &k2, 1, 1, twall(net) - 3600 * 1000 + 600 * 1000, osk);
    memset(&p, 0, sizeof(p));
    assert_int_equal(dht_node_put(net->n[2].node, &r2, on_put, &p, net->now), 0);
    net_run(net, net->now + 1000);
    assert_int_equal(p.status, 0);
    assert_int_equal(holders(net, &r2), 3);

    /* forward two hours: both expiries are now in the past */
    net->wall_off += 2 * 3600 * 1000;
    s0 = sent_total(net);
    net_run(net, net->now + 60000);
    s3 = sent_total(net) - s0;
    assert_true(s3 <= 2 * s1 && s1 <= 2 * s3);
    t1 = timeouts_total(net);
    assert_int_equal(t1, t0); /* no message was ever taken for lost */
    quick_lookup(net, 6, 3);
    for (unsigned i = 0; i < net->count; i++) {
        dht_store_get_stats(net->n[i].store, &st);
        assert_int_equal(st.records, 0); /* swept by the node's expiry timer */
    }
    memset(&g, 0, sizeof(g));
    assert_int_equal(dht_node_get(net->n[4].node, &k2, on_get, &g, net->now), 0);
    net_run(net, net->now + 1000);
    assert_true(g.done);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 0);
    /* and a put is judged by the wall clock: an expiry an hour behind it is refused
     * although it lies far ahead of the monotonic clock */
    make_record(&r2, &k2, 2, 2, twall(net) - 3600 * 1000 - 3600 * 1000, osk);
    assert_true(r2.expiry_ms > net->now);
    memset(&p, 0, sizeof(p));
    assert_int_equal(dht_node_put(net->n[2].node, &r2, on_put, &p, net->now), 0);
    net_run(net, net->now + 1000);
    assert_int_equal(p.status, -ETIMEDOUT);
    net_free(net);
    free(net);
}

/* One callback record for every kind of request (so a callback that must not run
 * finds the same type whatever request it belonged to). */
struct seen {
    unsigned calls;
    int status;
    struct dht_node *node; /* reenter: call back into this node from the callback */
    bool reenter, close_on_success;
    int reenter_rc;
    size_t reenter_cancelled;
};

static unsigned seen_nothing;

static void seen_call(struct seen *s, int status)
{
    s->calls++;
    s->status = status;
    if (s->reenter) {
        struct dht_id k;
        rand_id(&k, 1);
        s->reenter_rc = dht_node_lookup(s->node, &k, on_lookup, NULL, 0);
        s->reenter_cancelled = dht_node_cancel(s->node, &seen_nothing);
        dht_node_close(s->node); /* closing: a no-op */
    }
    if (s->close_on_success && status == 0)
        dht_node_close(s->node);
}

static void seen_join(int status, void *arg)
{
    seen_call(arg, status);
}

static void seen_lookup(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    (void)root;
    (void)hops;
    seen_call(arg, status);
}

static void seen_put(int status, unsigned acks, void *arg)
{
    (void)acks;
    seen_call(arg, status);
}

static void seen_get(int status, const struct dht_record *recs, size_t n, void *arg)
{
    (void)recs;
    (void)n;
    seen_call(arg, status);
}

static uint64_t node_sent(struct dht_node *node)
{
    uint64_t t = 0;
    for (unsigned k = 0; k <= DHT_MSG_TYPE_MAX; k++)
        t += dht_node_counters(node)->msgs_sent[k];
    return t;
}

/* dht_node_close: every pending join, lookup, put and get completes once with
 * -ECANCELED inside the call; a callback that calls back in is refused; the closed
 * node sends nothing and refuses new work; closing from inside a callback
 * completes the others. */
static void test_close_completes_everything(void **state)
{
    struct net *net = ring(6, 4, 2, 1);
    struct tnode *x = &net->n[2], *y, *z = &net->n[4];
    struct seen l1 = {0}, l2 = {0}, pu = {0}, ge = {0}, jo = {0}, zs[3] = {{0}};
    uint8_t opk[32], osk[64];
    struct dht_record rec;
    struct dht_id k1, k2;
    struct dht_peer bs;
    uint8_t buf[64];
    struct dht_msg m;
    uint64_t sent;
    int len;

    (void)state;
    rand_id(&k1, 11);
    rand_id(&k2, 12);
    crypto_sign_keypair(opk, osk);
    make_record(&rec, &k1, 1, 1, net->now, osk);
    l1.node = x->node;
    l1.reenter = true;
    assert_int_equal(dht_node_lookup(x->node, &k1, seen_lookup, &l1, net->now), 0);
    assert_int_equal(dht_node_lookup(x->node, &k2, seen_lookup, &l2, net->now), 0);
    assert_int_equal(dht_node_put(x->node, &rec, seen_put, &pu, net->now), 0);
    assert_int_equal(dht_node_get(x->node, &k2, seen_get, &ge, net->now), 0);
    net_run(net, net->now + 1); /* routed, answers still on their way */
    assert_int_equal(l1.calls + l2.calls + pu.calls + ge.calls, 0);
    /* a joiner whose JOIN is in flight */
    y = net_add(net, 77);
    bs = *dht_node_self(net->n[0].node);
    assert_int_equal(dht_node_join(y->node, &bs, seen_join, &jo, net->now), 0);
    net_run(net, net->now + 5);
    assert_int_equal(jo.calls, 0);
    dht_node_close(y->node);
    assert_int_equal(jo.calls, 1);
    assert_int_equal(jo.status, -ECANCELED);

    sent = node_sent(x->node);
    dht_node_close(x->node);
    assert_int_equal(l1.calls, 1);
    assert_int_equal(l2.calls, 1);
    assert_int_equal(pu.calls, 1);
    assert_int_equal(ge.calls, 1);
    assert_int_equal(l1.status, -ECANCELED);
    assert_int_equal(l2.status, -ECANCELED);
    assert_int_equal(pu.status, -ECANCELED);
    assert_int_equal(ge.status, -ECANCELED);
    assert_int_equal(l1.reenter_rc, -ECANCELED); /* the callback's new lookup */
    assert_int_equal(l1.reenter_cancelled, 0);
    /* closed: no new work, nothing due, input refused */
    assert_int_equal(dht_node_lookup(x->node, &k1, seen_lookup, &l1, net->now), -ECANCELED);
    assert_int_equal(dht_node_put(x->node, &rec, seen_put, &pu, net->now), -ECANCELED);
    assert_int_equal(dht_node_get(x->node, &k1, seen_get, &ge, net->now), -ECANCELED);
    assert_int_equal(dht_node_join(x->node, &bs, seen_join, &jo, net->now), -ECANCELED);
    assert_int_equal(dht_node_next_deadline(x->node), UINT64_MAX);
    dht_msg_init(&m, DHT_MSG_PING, dht_node_id(net->n[0].node));
    m.flags = DHT_FLAG_ACK_REQ;
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_int_equal(
        dht_node_recv(x->node, &dht_node_self(net->n[0].node)->addr, buf, (size_t)len, net->now),
        -ECANCELED);
    dht_node_close(x->node);        /* again: nothing */
    net_run(net, net->now + 10000); /* the answers arrive and are refused */
    assert_int_equal(l1.calls + l2.calls + pu.calls + ge.calls + jo.calls, 5);
    assert_int_equal(node_sent(x->node), sent);
    assert_int_equal(dht_node_cancel(x->node, &l2), 0);

    /* closing from inside a callback: the first lookup to succeed closes the node,
     * the two others complete with -ECANCELED before that close returns */
    for (unsigned i = 0; i < 3; i++) {
        struct dht_id k;
        rand_id(&k, 20 + i);
        zs[i].node = z->node;
        zs[i].close_on_success = true;
        assert_int_equal(dht_node_lookup(z->node, &k, seen_lookup, &zs[i], net->now), 0);
    }
    net_run(net, net->now + 3000);
    unsigned ok = 0, cancelled = 0;
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(zs[i].calls, 1);
        ok += zs[i].status == 0;
        cancelled += zs[i].status == -ECANCELED;
    }
    assert_int_equal(ok, 1);
    assert_int_equal(cancelled, 2);
    assert_int_equal(dht_node_next_deadline(z->node), UINT64_MAX);
    net_free(net);
    free(net);
}

/* dht_node_cancel(arg): the requests armed with arg never call back, the others
 * are answered as usual; a cancelled join leaves the node free to join again. */
static void test_cancel_by_arg(void **state)
{
    struct net *net = ring(6, 4, 2, 1);
    struct tnode *x = &net->n[1], *y;
    struct seen a1 = {0}, a2 = {0}, jo = {0};
    uint8_t opk[32], osk[64];
    struct dht_record rec;
    struct dht_id k1, k2, k3;
    struct dht_peer bs;

    (void)state;
    rand_id(&k1, 31);
    rand_id(&k2, 32);
    rand_id(&k3, 33);
    crypto_sign_keypair(opk, osk);
    make_record(&rec, &k1, 1, 1, net->now, osk);
    assert_int_equal(dht_node_lookup(x->node, &k1, seen_lookup, &a1, net->now), 0);
    assert_int_equal(dht_node_lookup(x->node, &k2, seen_lookup, &a1, net->now), 0);
    assert_int_equal(dht_node_put(x->node, &rec, seen_put, &a1, net->now), 0);
    assert_int_equal(dht_node_lookup(x->node, &k3, seen_lookup, &a2, net->now), 0);
    assert_int_equal(dht_node_get(x->node, &k2, seen_get, &a2, net->now), 0);
    net_run(net, net->now + 15); /* on their way: the answers will come */
    assert_int_equal(dht_node_cancel(x->node, &a1), 3);
    assert_int_equal(dht_node_cancel(x->node, &a1), 0);
    net_run(net, net->now + 10000); /* past every retry and deadline */
    assert_int_equal(a1.calls, 0);
    assert_int_equal(a2.calls, 2);
    assert_int_equal(a2.status, 0);
    /* the put itself went ahead (only its callback is gone) */
    assert_int_equal(holders(net, &rec), 3);

    /* a join cancelled while in flight, then done again */
    y = net_add(net, 88);
    bs = *dht_node_self(net->n[0].node);
    assert_int_equal(dht_node_join(y->node, &bs, seen_join, &jo, net->now), 0);
    net_run(net, net->now + 5);
    assert_int_equal(dht_node_cancel(y->node, &jo), 1);
    net_run(net, net->now + 5000);
    assert_int_equal(jo.calls, 0);
    assert_false(dht_node_joined(y->node));
    assert_int_equal(dht_node_join(y->node, &bs, seen_join, &jo, net->now), 0);
    net_run(net, net->now + 5000);
    assert_int_equal(jo.calls, 1);
    assert_int_equal(jo.status, 0);
    assert_true(dht_node_joined(y->node));
    net_free(net);
    free(net);
}

/* cutoff_ms = 10 s (the daemon's): a node partitioned from every other (its leaves
 * look dead, fail their probes and are removed) reports cut off within cutoff_ms
 * plus the probe RTOs, and not before its leaves stopped answering; once the
 * partition heals it is no longer cut off as soon as a former leaf answers its
 * probe (about a second), and the leaf sets are whole again. */
static void test_cutoff_both_directions(void **state)
{
    struct net *net = calloc(1, sizeof(*net));
    struct tnode *b;
    uint64_t t0, t1, pings;
    unsigned i;

    (void)state;
    assert_non_null(net);
    net_init(net, 2, 1, 1);
    net->cfg.cutoff_ms = 10000;
    for (i = 0; i < 5; i++) {
        struct tnode *t = net_add(net, (uint8_t)(60 + i));
        join(net, t, i == 0 ? NULL : &net->n[0]);
    }
    net_run(net, net->now + 20000);
    b = &net->n[2];
    for (i = 0; i < net->count; i++)
        assert_false(dht_node_cut_off(net->n[i].node, net->now));

    b->cut = true;
    t0 = net->now;
    while (!dht_node_cut_off(b->node, net->now) && net->now < t0 + 30000)
        net_run(net, net->now + 10);
    /* the last leaf was heard at most leaf_ping_ms + a tick before the cut */
    assert_true(net->now >= t0 + net->cfg.cutoff_ms - net->cfg.leaf_ping_ms - 1000);
    assert_true(net->now <= t0 + net->cfg.cutoff_ms + 1400); /* 200 + 400 + 800 ms probes */
    assert_int_equal(dht_node_route(b->node)->n_preds, 0);   /* every leaf removed */
    assert_int_equal(dht_node_route(b->node)->n_succs, 0);
    for (i = 0; i < net->count; i++)
        if (&net->n[i] != b)
            assert_false(dht_node_cut_off(net->n[i].node, net->now));
    /* it keeps probing while cut off, and stays cut off while nobody answers */
    pings = dht_node_counters(b->node)->msgs_sent[DHT_MSG_PING];
    net_run(net, net->now + 20000);
    assert_true(dht_node_cut_off(b->node, net->now));
    assert_true(dht_node_counters(b->node)->msgs_sent[DHT_MSG_PING] >= pings + 20);

    /* the partition heals: recovered within a probe tick and a round trip */
    b->cut = false;
    t1 = net->now;
    while (dht_node_cut_off(b->node, net->now) && net->now < t1 + 30000)
        net_run(net, net->now + 10);
    assert_true(net->now <= t1 + 1000 + 2 * LAT + 10);
    net_run(net, net->now + 10000);
    assert_false(dht_node_cut_off(b->node, net->now));
    assert_int_equal(dht_node_route(b->node)->n_preds, 2);
    assert_int_equal(dht_node_route(b->node)->n_succs, 2);
    for (i = 0; i < net->count; i++) {
        const struct dht_route *rt = dht_node_route(net->n[i].node);
        assert_int_equal(rt->n_preds, 2);
        assert_int_equal(rt->n_succs, 2);
        assert_false(dht_node_cut_off(net->n[i].node, net->now));
    }
    net_free(net);
    free(net);
}

struct avoid_spy {
    unsigned x, y, origin;
    struct dht_id dead;
    bool rerouted, unknown_kept, answered;
    struct dht_id root;
};

static void avoid_spy(struct net *net, unsigned from, unsigned to, const uint8_t *buf, size_t len)
{
    struct avoid_spy *sp = net->spy_arg;
    struct dht_msg m;

    if (dht_msg_decode(&m, buf, len) != 0)
        return;
    if (from == sp->x && to == sp->y && m.type == DHT_MSG_LOOKUP) {
        sp->rerouted = m.n_avoid == 1 && dht_id_eq(&m.avoid[0], &sp->dead);
        /* the attribute this version does not know is still there */
        for (size_t i = DHT_MSG_HEADER_LEN; i + 7 <= len; i++)
            if (buf[i] == 0x60 && buf[i + 1] == 0x01 && buf[i + 2] == 0 && buf[i + 3] == 3 &&
                memcmp(buf + i + 4, "new", 3) == 0)
                sp->unknown_kept = true;
    }
    if (to == sp->origin && m.type == DHT_MSG_LOOKUP_REPLY) {
        sp->answered = true;
        sp->root = m.root.id;
    }
}

/* A hop that does not acknowledge is named in the rerouted message's AVOID (other
 * attributes, unknown ones included, kept); the next node, root once that hop is
 * excluded, tries it once itself and then answers. */
static void test_reroute_carries_avoid(void **state)
{
    struct net *net = ring(6, 4, 2, 1);
    struct avoid_spy sp;
    struct dht_id stranger, key;
    struct dht_addr from;
    struct dht_msg m;
    uint8_t buf[512];
    int len;

    (void)state;
    memset(&sp, 0, sizeof(sp));
    sp.origin = 9;                      /* no such node: the reply is only seen by the spy */
    key = *dht_node_id(net->n[0].node); /* the root: node 0, which dies */
    sp.dead = key;
    net->n[0].down = true;
    sp.y = (unsigned)(true_root(net, &key) - net->n);
    sp.x = sp.y == 1 ? 2 : 1;
    net->spy = avoid_spy;
    net->spy_arg = &sp;
    stranger = key; /* the far side of the ring: never a better hop for key */
    stranger.b[0] ^= 0x80;
    dht_msg_init(&m, DHT_MSG_LOOKUP, &stranger);
    m.flags = DHT_FLAG_ACK_REQ | DHT_FLAG_CLIENT;
    m.key = key;
    m.origin.id = stranger;
    addr_of(sp.origin, &m.origin.addr);
    m.req_id = 5;
    m.have = DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_ORIGIN) | DHT_HAVE(DHT_ATTR_REQ_ID);
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_true(len > 0);
    memcpy(buf + len, "\x60\x01\x00\x03new", 7); /* attribute 0x6001, 3 bytes */
    len += 7;
    buf[DHT_MSG_OFF_LEN] = (uint8_t)(len >> 8);
    buf[DHT_MSG_OFF_LEN + 1] = (uint8_t)len;
    addr_of(sp.origin, &from);
    assert_int_equal(dht_node_recv(net->n[sp.x].node, &from, buf, (size_t)len, net->now), 0);
    net_run(net, net->now + 2000);
    assert_true(sp.rerouted);
    assert_true(sp.unknown_kept);
    assert_true(sp.answered);
    assert_true(dht_id_eq(&sp.root, dht_node_id(net->n[sp.y].node)));
    /* the next node probed the failed hop itself */
    assert_true(dht_node_counters(net->n[sp.y].node)->msgs_sent[DHT_MSG_PING] > 0);
    net->spy = NULL;
    net_free(net);
    free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_converges_and_routes),
        cmocka_unit_test(test_trace_returns_the_route),
        cmocka_unit_test(test_put_replicates_with_quorum),
        cmocka_unit_test(test_handoff_and_failure),
        cmocka_unit_test(test_anti_entropy),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_lone_node_and_cutoff),
        cmocka_unit_test(test_two_clocks),
        cmocka_unit_test(test_close_completes_everything),
        cmocka_unit_test(test_cancel_by_arg),
        cmocka_unit_test(test_cutoff_both_directions),
        cmocka_unit_test(test_reroute_carries_avoid),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
