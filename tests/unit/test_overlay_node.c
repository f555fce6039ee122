/*
 * test_overlay_node.c: the overlay node (overlay_node.h) in one process: several
 * nodes on ONE libuv loop, each with its own identity and in-memory store, talking
 * over real UDP and TCP sockets on this host.
 *
 * Every node binds port 0 (an ephemeral port, so parallel test runs never collide),
 * multicast off; a server (-s) starts a ring, a node that seeks one is given a
 * server's port on 127.0.0.1 as its bootstrap address, and a plain UDP socket of the
 * test plays a broken or foreign peer (garbage, handshakes made by hand).  Timings are
 * shortened in the configuration (promotion after a few hundred ms, cut-off after 3 s)
 * so that the file runs in seconds.  Every wait runs the loop (UV_RUN_ONCE) until a condition
 * holds, bounded by an iteration cap and by loop time (a failsafe timer makes sure UV_RUN_ONCE
 * always wakes up): a condition that never holds fails the test, never hangs it.
 *
 * Each test ends with every node closed (its close callback counted exactly once) and
 * uv_loop_close() == 0, which fails when a node leaks a handle.  The teardown does the
 * same for a test that failed half-way, so one failure does not cascade.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <uv.h>

#include "p2p/dht_node.h"
#include "p2p/dht_record.h"
#include "p2p/dht_route.h"
#include "p2p/dht_store.h"
#include "p2p/log.h"
#include "p2p/overlay_node.h"
#include "p2p/overlay_secure.h"

#define MAX_NODES 12
#define ITER_MAX 2000000UL /* loop turns in one wait: a spinning loop fails, never hangs */
#define FORM_MS 15000      /* a ring forms (attach, probe, promotion, join) well within */
#define OP_MS 8000         /* a put or get completes well within */

/* Shortened timings (the defaults are seconds to minutes). */
#define T_PROMOTE_MS 300
#define T_CUTOFF_MS 3000
#define T_REQUEST_TIMEOUT_MS 2000
#define T_NEVER_MS 600000 /* promote_after for a node that must stay a client */

struct env;

/* One overlay node under test and what its callbacks saw. */
struct tnode {
    struct env *e;
    bool used;
    struct ovl_identity id;
    struct dht_store *store;
    struct overlay_node *node;
    int closed; /* close callbacks */
    /* ops->health */
    int health_calls, cut_off_calls;
    bool last_cut_off;
    uint64_t cut_off_at; /* loop time of the first cut_off = true */
    /* ops->role */
    enum overlay_role roles[16];
    int n_roles;
    /* ops->unreachable */
    int unreachable_calls;
    struct dht_id unreachable;
    /* ops->pipe */
    int pipes;
    struct dht_id pipe_from, pipe_relay;
    bool pipe_relayed;
    uint16_t pipe_service;
    uint8_t pipe_buf[256];
    size_t pipe_len;
};

/* One put or get of a test, and how its callback ran. */
struct req {
    struct env *e;
    int calls;
    int status;
    unsigned acks;
    bool in_close;            /* the callback ran inside overlay_node_close */
    struct tnode *close_node; /* the callback closes this node */
    size_t nrec;
    struct dht_record rec; /* the first record (value copied below) */
    uint8_t value[DHT_RECORD_VALUE_MAX];
};

/* A plain UDP socket of the test (garbage, hand-made handshakes). */
struct raw_sock {
    uv_udp_t h;
    bool open;
    int datagrams;
    uint8_t last[512];
    size_t last_len;
};

struct env {
    uv_loop_t loop;
    uv_timer_t failsafe;
    bool timed_out;
    bool finished;
    bool closing_node; /* inside overlay_node_close */
    struct p2p_log log;
    uint8_t psk[OVL_KEY_LEN];
    struct tnode nodes[MAX_NODES];
    struct raw_sock raw;
};

/* ---- the loop ---- */

static void failsafe_cb(uv_timer_t *t)
{
    struct env *e = t->data;

    e->timed_out = true;
}

/*
 * Runs the loop until cond holds, at most ms of loop time and ITER_MAX turns.  The
 * failsafe timer wakes UV_RUN_ONCE up when nothing else would.
 */
#define RUN_UNTIL_MS(e, cond, ms)                                                                  \
    do {                                                                                           \
        uint64_t dl_ = uv_now(&(e)->loop) + (ms);                                                  \
        unsigned long it_ = 0;                                                                     \
        (e)->timed_out = false;                                                                    \
        assert_int_equal(uv_timer_start(&(e)->failsafe, failsafe_cb, (ms), 0), 0);                 \
        while (!(cond) && !(e)->timed_out && uv_now(&(e)->loop) < dl_ && it_++ < ITER_MAX)         \
            (void)uv_run(&(e)->loop, UV_RUN_ONCE);                                                 \
        (void)uv_timer_stop(&(e)->failsafe);                                                       \
    } while (0)

#define RUN_UNTIL(e, cond, ms)                                                                     \
    do {                                                                                           \
        RUN_UNTIL_MS(e, cond, ms);                                                                 \
        assert_true(cond);                                                                         \
    } while (0)

/* Runs the loop for ms (to show that something does NOT happen). */
static void run_for(struct env *e, uint64_t ms)
{
    RUN_UNTIL_MS(e, false, ms);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- node callbacks ---- */

static void on_closed(void *arg);

static void on_health(void *arg, bool cut_off)
{
    struct tnode *t = arg;

    t->health_calls++;
    t->last_cut_off = cut_off;
    if (cut_off && t->cut_off_calls++ == 0)
        t->cut_off_at = uv_now(&t->e->loop);
}

static void on_role(void *arg, enum overlay_role role)
{
    struct tnode *t = arg;

    if (t->n_roles < (int)(sizeof(t->roles) / sizeof(t->roles[0])))
        t->roles[t->n_roles] = role;
    t->n_roles++;
}

static void on_pipe(void *arg, const struct dht_id *from, const struct dht_id *relay,
                    uint16_t service, const uint8_t *buf, size_t len)
{
    struct tnode *t = arg;

    t->pipes++;
    t->pipe_from = *from;
    t->pipe_relayed = relay != NULL;
    if (relay != NULL)
        t->pipe_relay = *relay;
    t->pipe_service = service;
    t->pipe_len = len < sizeof(t->pipe_buf) ? len : sizeof(t->pipe_buf);
    memcpy(t->pipe_buf, buf, t->pipe_len);
}

static void on_unreachable(void *arg, const struct dht_id *id)
{
    struct tnode *t = arg;

    t->unreachable_calls++;
    t->unreachable = *id;
}

static void on_closed(void *arg)
{
    struct tnode *t = arg;

    t->closed++;
}

/* ---- nodes ---- */

struct node_opts {
    bool server;
    const struct tnode *boot;  /* bootstrap: this node's port on 127.0.0.1 */
    const struct tnode *boot2; /* and this one's */
    bool boot_v6;              /* boot on ::1 instead */
    uint32_t promote_after_ms;
    uint32_t cutoff_ms;
    unsigned max_peers;
    bool port_fallback;
    bool no_start; /* created, not started */
    unsigned max_clients;
    uint16_t port;                    /* 0: any */
    const struct ovl_identity *reuse; /* a restarted node: this identity */
};

static struct tnode *node_add(struct env *e, const struct node_opts *o)
{
    struct overlay_node_config cfg;
    struct overlay_node_ops ops;
    struct tnode *t = NULL;

    for (int i = 0; i < MAX_NODES && t == NULL; i++)
        if (!e->nodes[i].used)
            t = &e->nodes[i];
    assert_non_null(t);
    memset(t, 0, sizeof(*t));
    t->used = true;
    t->e = e;
    if (o->reuse != NULL)
        t->id = *o->reuse;
    else
        assert_int_equal(ovl_identity_generate(&t->id), 0);
    assert_int_equal(dht_store_new(&t->store, NULL), 0);

    overlay_node_config_init(&cfg);
    cfg.identity = &t->id;
    memcpy(cfg.psk, e->psk, sizeof(cfg.psk));
    cfg.port = o->port;
    cfg.port_fallback = o->port_fallback;
    cfg.server = o->server;
    cfg.multicast = false;
    cfg.store = t->store;
    cfg.promote_after_ms = o->promote_after_ms ? o->promote_after_ms : T_PROMOTE_MS;
    cfg.cutoff_ms = o->cutoff_ms ? o->cutoff_ms : T_CUTOFF_MS;
    cfg.max_peers = o->max_peers;
    cfg.max_clients = o->max_clients;
    cfg.dht.leaf_ping_ms = 500;
    cfg.dht.request_timeout_ms = T_REQUEST_TIMEOUT_MS;
    cfg.dht.join_timeout_ms = 3000;
    if (o->boot != NULL && o->boot_v6) {
        assert_int_equal(uv_ip6_addr("::1", overlay_node_port(o->boot->node),
                                     (struct sockaddr_in6 *)&cfg.bootstrap[0]),
                         0);
        cfg.n_bootstrap = 1;
    } else if (o->boot != NULL) {
        assert_int_equal(uv_ip4_addr("127.0.0.1", overlay_node_port(o->boot->node),
                                     (struct sockaddr_in *)&cfg.bootstrap[0]),
                         0);
        cfg.n_bootstrap = 1;
    }
    if (o->boot2 != NULL) {
        assert_int_equal(uv_ip4_addr("127.0.0.1", overlay_node_port(o->boot2->node),
                                     (struct sockaddr_in *)&cfg.bootstrap[cfg.n_bootstrap]),
                         0);
        cfg.n_bootstrap++;
    }
    memset(&ops, 0, sizeof(ops));
    ops.health = on_health;
    ops.role = on_role;
    ops.pipe = on_pipe;
    ops.unreachable = on_unreachable;
    ops.arg = t;
    assert_int_equal(overlay_node_new(&t->node, &e->loop, &cfg, &ops, &e->log), 0);
    assert_non_null(t->node);
    assert_true(overlay_node_port(t->node) != 0);
    if (!o->no_start)
        assert_int_equal(overlay_node_start(t->node), 0);
    return t;
}

static struct tnode *server_add(struct env *e)
{
    struct node_opts o = {.server = true};

    return node_add(e, &o);
}

static struct tnode *seeker_add(struct env *e, const struct tnode *boot, uint32_t promote_after_ms)
{
    struct node_opts o = {.boot = boot, .promote_after_ms = promote_after_ms};

    return node_add(e, &o);
}

/* Closes t and waits for its close callback (exactly one). */
static void node_close(struct tnode *t)
{
    struct env *e = t->e;

    if (t->node == NULL)
        return;
    overlay_node_close(t->node, on_closed, t);
    RUN_UNTIL(e, t->closed > 0, 5000);
    run_for(e, 1);
    assert_int_equal(t->closed, 1);
    t->node = NULL;
    dht_store_free(t->store);
    t->store = NULL;
}

static bool is_member(const struct tnode *t)
{
    enum overlay_role r = overlay_node_role(t->node);

    return (r == OVERLAY_ROLE_MEMBER || r == OVERLAY_ROLE_SUPER) && overlay_node_dht(t->node);
}

static bool leafset_has(const struct tnode *t, const struct tnode *other)
{
    struct dht_peer leaves[2 * DHT_LEAF_HALF_MAX];
    struct dht_node *d = overlay_node_dht(t->node);
    size_t k;

    if (d == NULL)
        return false;
    k = dht_route_leafset(dht_node_route(d), leaves, 2 * DHT_LEAF_HALF_MAX);
    for (size_t i = 0; i < k; i++)
        if (dht_id_eq(&leaves[i].id, &other->id.id))
            return true;
    return false;
}

/* Every pair of the given nodes holds each other in its leaf set. */
static bool leafsets_complete(struct tnode **ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (i != j && !leafset_has(ts[i], ts[j]))
                return false;
    return true;
}

static int count_peer(const struct overlay_peer_view *p, void *arg)
{
    (void)p;
    (*(unsigned *)arg)++;
    return 0;
}

static unsigned peer_count(const struct tnode *t)
{
    unsigned k = 0;

    assert_int_equal(overlay_node_peers(t->node, count_peer, &k), 0);
    return k;
}

struct client_find {
    const struct dht_id *id;
    bool client;
};

static int find_client(const struct overlay_peer_view *p, void *arg)
{
    struct client_find *f = arg;

    if (dht_id_eq(&p->peer.id, f->id))
        f->client = p->client;
    return 0;
}

/* Does t hold c as an attached client? */
static bool holds_client(const struct tnode *t, const struct tnode *c)
{
    struct client_find f = {&c->id.id, false};

    assert_int_equal(overlay_node_peers(t->node, find_client, &f), 0);
    return f.client;
}

static unsigned peer_count_max(const struct tnode *t, unsigned max)
{
    unsigned k = peer_count(t);

    return k > max ? k : max;
}

/* ---- records, puts and gets ---- */

/* A record of t's under key name/value id vid, signed with t's identity. */
static void make_record(struct dht_record *r, const struct tnode *t, const char *name,
                        const char *vid, uint64_t seq, const uint8_t *value, size_t len)
{
    memset(r, 0, sizeof(*r));
    dht_id_hash(&r->key, name, strlen(name));
    dht_id_hash(&r->value_id, vid, strlen(vid));
    r->seq = seq;
    r->expiry_ms = wall_ms() + 120000;
    r->value = value;
    r->value_len = len;
    assert_int_equal(dht_record_sign(r, t->id.ed_sk), 0);
    assert_int_equal(dht_record_verify(r), 0);
}

static void put_done(int status, unsigned acks, void *arg)
{
    struct req *q = arg;

    q->calls++;
    q->status = status;
    q->acks = acks;
    q->in_close = q->e->closing_node;
    if (q->close_node != NULL && q->close_node->node != NULL)
        overlay_node_close(q->close_node->node, on_closed, q->close_node);
}

static void get_done(int status, const struct dht_record *recs, size_t n, void *arg)
{
    struct req *q = arg;

    q->calls++;
    q->status = status;
    q->nrec = n;
    q->in_close = q->e->closing_node;
    if (n > 0) {
        q->rec = recs[0];
        assert_true(recs[0].value_len <= sizeof(q->value));
        memcpy(q->value, recs[0].value, recs[0].value_len);
        q->rec.value = q->value;
    }
    if (q->close_node != NULL && q->close_node->node != NULL)
        overlay_node_close(q->close_node->node, on_closed, q->close_node);
}

static void do_put(struct tnode *t, const struct dht_record *rec, struct req *q)
{
    memset(q, 0, sizeof(*q));
    q->e = t->e;
    assert_int_equal(overlay_node_put(t->node, rec, put_done, q), 0);
    assert_int_equal(q->calls, 0); /* never from inside the call */
    RUN_UNTIL(t->e, q->calls > 0, OP_MS);
    assert_int_equal(q->calls, 1);
    assert_int_equal(q->status, 0);
}

/* A get of rec->key on t returns exactly rec. */
static void get_expect(struct tnode *t, const struct dht_record *rec)
{
    struct req q;

    memset(&q, 0, sizeof(q));
    q.e = t->e;
    assert_int_equal(overlay_node_get(t->node, &rec->key, get_done, &q), 0);
    assert_int_equal(q.calls, 0);
    RUN_UNTIL(t->e, q.calls > 0, OP_MS);
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.status, 0);
    assert_int_equal(q.nrec, 1);
    assert_true(dht_record_equal(&q.rec, rec));
}

struct lookup_req {
    int calls;
    int status;
    struct dht_peer root;
};

static void lookup_done(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    struct lookup_req *l = arg;

    (void)hops;
    l->calls++;
    l->status = status;
    if (root != NULL)
        l->root = *root;
}

/* A lookup of key on t ends at node `root`. */
static void lookup_expect(struct tnode *t, const struct dht_id *key, const struct tnode *root)
{
    struct lookup_req l;

    memset(&l, 0, sizeof(l));
    assert_int_equal(overlay_node_lookup(t->node, key, lookup_done, &l), 0);
    assert_int_equal(l.calls, 0);
    RUN_UNTIL(t->e, l.calls > 0, OP_MS);
    assert_int_equal(l.calls, 1);
    assert_int_equal(l.status, 0);
    assert_true(dht_id_eq(&l.root.id, &root->id.id));
}

/* ---- fixture ---- */

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));

    if (e == NULL || uv_loop_init(&e->loop) != 0)
        return -1;
    if (uv_timer_init(&e->loop, &e->failsafe) != 0)
        return -1;
    e->failsafe.data = e;
    p2p_log_init(&e->log, "test_overlay_node", P2P_LOG_ERR, false);
    ovl_psk_from_secret(e->psk, (const uint8_t *)"test-overlay", 12);
    *state = e;
    return 0;
}

static void raw_closed(uv_handle_t *h)
{
    (void)h;
}

/* Closes every node and socket and checks that nothing leaked. */
static void env_finish(struct env *e)
{
    for (int i = MAX_NODES - 1; i >= 0; i--)
        if (e->nodes[i].used && e->nodes[i].node != NULL)
            node_close(&e->nodes[i]);
    for (int i = 0; i < MAX_NODES; i++)
        if (e->nodes[i].used)
            assert_int_equal(e->nodes[i].closed, 1);
    if (e->raw.open) {
        uv_close((uv_handle_t *)&e->raw.h, raw_closed);
        e->raw.open = false;
    }
    uv_close((uv_handle_t *)&e->failsafe, NULL);
    e->finished = true;
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

static int teardown(void **state)
{
    struct env *e = *state;

    if (!e->finished) {
        /* The test failed half-way: close what is left so that the next test starts
         * clean; leak the stores of nodes that did not close rather than free them
         * under a live node. */
        for (int i = 0; i < MAX_NODES; i++) {
            struct tnode *t = &e->nodes[i];
            if (t->used && t->node != NULL && t->closed == 0)
                overlay_node_close(t->node, on_closed, t);
        }
        if (e->raw.open)
            uv_close((uv_handle_t *)&e->raw.h, raw_closed);
        if (!uv_is_closing((uv_handle_t *)&e->failsafe))
            uv_close((uv_handle_t *)&e->failsafe, NULL);
        for (int k = 0; k < 1000 && uv_run(&e->loop, UV_RUN_NOWAIT) != 0; k++)
            ;
        for (int i = 0; i < MAX_NODES; i++)
            if (e->nodes[i].used && e->nodes[i].closed > 0 && e->nodes[i].store != NULL)
                dht_store_free(e->nodes[i].store);
        (void)uv_loop_close(&e->loop);
    }
    for (int i = 0; i < MAX_NODES; i++)
        ovl_identity_wipe(&e->nodes[i].id);
    free(e);
    return 0;
}

/* ---- raw sockets ---- */

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static uint8_t rx[65536];

    (void)h;
    (void)suggested;
    buf->base = (char *)rx;
    buf->len = sizeof(rx);
}

static void raw_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                     unsigned flags)
{
    struct raw_sock *r = h->data;

    (void)flags;
    if (nread <= 0 || addr == NULL)
        return;
    r->datagrams++;
    r->last_len = (size_t)nread < sizeof(r->last) ? (size_t)nread : sizeof(r->last);
    memcpy(r->last, buf->base, r->last_len);
}

static void raw_open(struct env *e)
{
    struct sockaddr_in a;

    assert_int_equal(uv_udp_init(&e->loop, &e->raw.h), 0);
    e->raw.h.data = &e->raw;
    e->raw.open = true;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &a), 0);
    assert_int_equal(uv_udp_bind(&e->raw.h, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_udp_recv_start(&e->raw.h, raw_alloc, raw_recv), 0);
}

static void raw_send(struct env *e, const struct tnode *to, const uint8_t *buf, size_t len)
{
    struct sockaddr_in a;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);

    assert_int_equal(uv_ip4_addr("127.0.0.1", overlay_node_port(to->node), &a), 0);
    assert_int_equal(uv_udp_try_send(&e->raw.h, &b, 1, (const struct sockaddr *)&a), (int)len);
}

/* ---- 1. a server is a ring of one at once ---- */

static void test_server_ring_of_one(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e);
    struct dht_record rec;
    struct req q;
    static const uint8_t value[] = "sip:alice@192.0.2.1:5060";

    /* At once: no loop turn has run yet. */
    assert_int_equal(overlay_node_role(s->node), OVERLAY_ROLE_SUPER);
    assert_false(overlay_node_cut_off(s->node));
    assert_non_null(overlay_node_dht(s->node));
    assert_true(dht_node_joined(overlay_node_dht(s->node)));
    assert_true(overlay_node_advertised(s->node)->len > 0);
    {
        struct dht_peer sp;
        assert_int_equal(overlay_node_super(s->node, &sp), -ENOENT);
    }

    make_record(&rec, s, "ring-of-one", "v1", 1, value, sizeof(value));
    do_put(s, &rec, &q);
    get_expect(s, &rec);
    /* A key nobody stored: status 0, no record. */
    {
        struct req g;
        struct dht_id other;
        memset(&g, 0, sizeof(g));
        g.e = e;
        dht_id_hash(&other, "nobody", 6);
        assert_int_equal(overlay_node_get(s->node, &other, get_done, &g), 0);
        RUN_UNTIL(e, g.calls > 0, OP_MS);
        assert_int_equal(g.calls, 1);
        assert_int_equal(g.status, 0);
        assert_int_equal(g.nrec, 0);
    }
    /* A record whose signature does not verify is refused by the store. */
    {
        struct dht_record bad = rec;
        struct req b;
        bad.seq = 2; /* signed for seq 1 */
        memset(&b, 0, sizeof(b));
        b.e = e;
        assert_int_equal(overlay_node_put(s->node, &bad, put_done, &b), 0);
        RUN_UNTIL(e, b.calls > 0, OP_MS);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.status, -EBADMSG);
        get_expect(s, &rec);
    }
    assert_false(overlay_node_cut_off(s->node));
    assert_int_equal(s->cut_off_calls, 0);
    assert_int_equal(s->n_roles, 1);
    assert_int_equal(s->roles[0], OVERLAY_ROLE_SUPER);
    env_finish(e);
}

/* ---- 2. seeking -> client -> member, proxy while a client ---- */

static void test_join_three(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e);
    struct tnode *a, *b;
    struct dht_peer sp;
    struct dht_record r1, r2, r3;
    struct req q;
    static const uint8_t v1[] = "client-put", v3[] = "member-put";

    /* Node 2: seeking, then a client of the server, then a member. */
    a = seeker_add(e, s, T_PROMOTE_MS);
    assert_int_equal(overlay_node_role(a->node), OVERLAY_ROLE_SEEKING);
    assert_null(overlay_node_dht(a->node));
    /* Neither member nor client yet: refused at once, no callback. */
    make_record(&r1, a, "too-early", "v", 1, v1, sizeof(v1));
    memset(&q, 0, sizeof(q));
    assert_int_equal(overlay_node_put(a->node, &r1, put_done, &q), -ENOTCONN);
    assert_int_equal(overlay_node_get(a->node, &r1.key, get_done, &q), -ENOTCONN);
    RUN_UNTIL(e, overlay_node_role(a->node) != OVERLAY_ROLE_SEEKING, FORM_MS);
    assert_int_equal(overlay_node_role(a->node), OVERLAY_ROLE_CLIENT);
    assert_int_equal(overlay_node_super(a->node, &sp), 0);
    assert_true(dht_id_eq(&sp.id, &s->id.id));
    {
        struct sockaddr_storage ss;
        assert_int_equal(overlay_addr_from_dht(&sp.addr, &ss), 0);
        assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), overlay_node_port(s->node));
    }
    RUN_UNTIL(e, is_member(a), FORM_MS);
    assert_int_equal(overlay_node_role(a->node), OVERLAY_ROLE_MEMBER);
    assert_int_equal(overlay_node_super(a->node, &sp), -ENOENT);

    /* Node 3 stays a client long enough to use the DHT through its super-node. */
    b = seeker_add(e, s, 2500);
    RUN_UNTIL(e, overlay_node_role(b->node) == OVERLAY_ROLE_CLIENT, FORM_MS);
    assert_int_equal(overlay_node_super(b->node, &sp), 0);
    assert_true(dht_id_eq(&sp.id, &s->id.id));
    RUN_UNTIL(e, holds_client(s, b), 2000); /* the server's view: b is its client */
    {
        uint64_t proxied = overlay_node_stats(s->node)->proxied_for_clients;
        make_record(&r1, b, "node3-as-client", "v", 1, v1, sizeof(v1));
        do_put(b, &r1, &q);
        assert_true(q.acks >= 1);
        get_expect(b, &r1);
        /* ... and it really was a client's request, run by the server. */
        assert_int_equal(overlay_node_role(b->node), OVERLAY_ROLE_CLIENT);
        assert_null(overlay_node_dht(b->node));
        assert_true(overlay_node_stats(s->node)->proxied_for_clients >= proxied + 2);
        /* Another node reads what the client stored. */
        get_expect(a, &r1);
        /* A lookup through the super-node: a node's own ID leads to it. */
        lookup_expect(b, &a->id.id, a);
    }
    RUN_UNTIL(e, is_member(b), FORM_MS);
    assert_int_equal(overlay_node_role(b->node), OVERLAY_ROLE_MEMBER);
    /* Members need no super-node: they detached. */
    RUN_UNTIL(e, !holds_client(s, a) && !holds_client(s, b), 2000);

    /* Each node went through exactly client then member. */
    assert_int_equal(a->n_roles, 2);
    assert_int_equal(a->roles[0], OVERLAY_ROLE_CLIENT);
    assert_int_equal(a->roles[1], OVERLAY_ROLE_MEMBER);
    assert_int_equal(b->n_roles, 2);
    assert_int_equal(b->roles[0], OVERLAY_ROLE_CLIENT);
    assert_int_equal(b->roles[1], OVERLAY_ROLE_MEMBER);

    /* All three leaf sets hold the other two. */
    {
        struct tnode *all[] = {s, a, b};
        RUN_UNTIL(e, leafsets_complete(all, 3), FORM_MS);
    }

    lookup_expect(a, &b->id.id, b);
    lookup_expect(b, &s->id.id, s);

    /* A put on node 3 (a member now) is read on node 2; node 3's earlier record too. */
    make_record(&r3, b, "node3-as-member", "v", 1, v3, sizeof(v3));
    do_put(b, &r3, &q);
    get_expect(a, &r3);
    get_expect(a, &r1);
    get_expect(s, &r3);
    /* A newer version replaces the older one everywhere. */
    r2 = r3;
    r2.seq = 2;
    assert_int_equal(dht_record_sign(&r2, b->id.ed_sk), 0);
    do_put(b, &r2, &q);
    get_expect(a, &r2);
    get_expect(s, &r2);

    for (int i = 0; i < 3; i++) {
        struct tnode *t = i == 0 ? s : i == 1 ? a : b;
        assert_false(overlay_node_cut_off(t->node));
        assert_int_equal(t->cut_off_calls, 0);
    }
    env_finish(e);
}

/* Forms a ring of the server and n - 1 members: ts[0] = server. */
static void form_ring(struct env *e, struct tnode **ts, size_t n)
{
    ts[0] = server_add(e);
    for (size_t i = 1; i < n; i++) {
        ts[i] = seeker_add(e, ts[0], T_PROMOTE_MS);
        RUN_UNTIL(e, is_member(ts[i]), FORM_MS);
    }
    RUN_UNTIL(e, leafsets_complete(ts, n), FORM_MS);
}

/* A client of ts[0] that is not going to be promoted. */
static struct tnode *client_add(struct env *e, struct tnode *super)
{
    struct tnode *c = seeker_add(e, super, T_NEVER_MS);
    struct dht_peer sp;

    RUN_UNTIL(e, overlay_node_role(c->node) == OVERLAY_ROLE_CLIENT, FORM_MS);
    assert_int_equal(overlay_node_super(c->node, &sp), 0);
    assert_true(dht_id_eq(&sp.id, &super->id.id));
    return c;
}

/* ---- 3. large records take the TCP path ---- */

static void test_tcp_path(void **state)
{
    struct env *e = *state;
    struct tnode *ts[3], *c;
    struct dht_record rec, crec;
    struct req q;
    static uint8_t big[DHT_RECORD_VALUE_MAX], cbig[DHT_RECORD_VALUE_MAX];

    form_ring(e, ts, 3);
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7 + 1);
        cbig[i] = (uint8_t)(i * 13 + 5);
    }
    assert_true(sizeof(big) > 1400); /* NODE_UDP_MAX: larger frames take the stream path */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(overlay_node_stats(ts[i]->node)->tcp_frames_out, 0);
        assert_int_equal(overlay_node_stats(ts[i]->node)->tcp_frames_in, 0);
    }

    /* A member puts 4 KB; every node of a ring of 3 holds a copy (replicas), so the put left node 1
     * by TCP and reached node 2 by TCP, wherever the root is. */
    make_record(&rec, ts[1], "big-record", "v", 1, big, sizeof(big));
    do_put(ts[1], &rec, &q);
    assert_int_equal(q.acks, 2);
    get_expect(ts[2], &rec);
    get_expect(ts[0], &rec);
    assert_true(overlay_node_stats(ts[1]->node)->tcp_frames_out > 0);
    assert_true(overlay_node_stats(ts[2]->node)->tcp_frames_in > 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(overlay_node_stats(ts[i]->node)->tcp_connect_failed, 0);

    /* A client: its 4 KB put goes to its super-node over a connection it opens, and the get's 4 KB
     * answer comes back over that same connection. */
    c = client_add(e, ts[0]);
    make_record(&crec, c, "big-client-record", "v", 1, cbig, sizeof(cbig));
    do_put(c, &crec, &q);
    get_expect(c, &crec);
    get_expect(ts[2], &crec);
    assert_true(overlay_node_stats(c->node)->tcp_frames_out > 0);
    assert_true(overlay_node_stats(c->node)->tcp_frames_in > 0);
    assert_int_equal(overlay_node_stats(c->node)->tcp_accepted, 0);
    assert_int_equal(overlay_node_role(c->node), OVERLAY_ROLE_CLIENT);
    env_finish(e);
}

/* ---- 4. pipes ---- */

static void pipe_expect(struct tnode *to, int pipes_before, const struct tnode *from,
                        const struct tnode *relay, uint16_t service, const char *text)
{
    RUN_UNTIL(to->e, to->pipes > pipes_before, OP_MS);
    assert_int_equal(to->pipes, pipes_before + 1);
    assert_true(dht_id_eq(&to->pipe_from, &from->id.id));
    if (relay == NULL) {
        assert_false(to->pipe_relayed);
    } else {
        assert_true(to->pipe_relayed);
        assert_true(dht_id_eq(&to->pipe_relay, &relay->id.id));
    }
    assert_int_equal(to->pipe_service, service);
    assert_int_equal(to->pipe_len, strlen(text));
    assert_memory_equal(to->pipe_buf, text, strlen(text));
}

static void test_pipes(void **state)
{
    struct env *e = *state;
    struct tnode *ts[3], *c, *s, *a, *b;
    struct dht_id unknown;
    int before[4];

    form_ring(e, ts, 3);
    s = ts[0];
    a = ts[1];
    b = ts[2];
    c = client_add(e, s);

    /* Member to member: straight over A's own channel. */
    assert_int_equal(overlay_node_pipe_send(a->node, &b->id.id, NULL, 7, (const uint8_t *)"ab", 2),
                     0);
    pipe_expect(b, 0, a, NULL, 7, "ab");

    /* Member to a client, through the client's super-node. */
    assert_int_equal(
        overlay_node_pipe_send(a->node, &c->id.id, &s->id.id, 9, (const uint8_t *)"to-client", 9),
        0);
    pipe_expect(c, 0, a, s, 9, "to-client");

    /* A client to a member: everything goes through its super-node. */
    assert_int_equal(
        overlay_node_pipe_send(c->node, &b->id.id, NULL, 11, (const uint8_t *)"from-client", 11),
        0);
    pipe_expect(b, 1, c, s, 11, "from-client");

    /* The super-node to its own client: direct. */
    assert_int_equal(overlay_node_pipe_send(s->node, &c->id.id, NULL, 12, (const uint8_t *)"sc", 2),
                     0);
    pipe_expect(c, 1, s, NULL, 12, "sc");
    assert_true(overlay_node_stats(s->node)->relayed >= 2);

    /* Nobody has this ID: the lookup finds another root, nothing is delivered. */
    before[0] = s->pipes;
    before[1] = a->pipes;
    before[2] = b->pipes;
    before[3] = c->pipes;
    dht_id_hash(&unknown, "no-such-node", 12);
    {
        int rc = overlay_node_pipe_send(a->node, &unknown, NULL, 13, (const uint8_t *)"lost", 4);
        assert_true(rc == 0 || rc == -EHOSTUNREACH);
    }
    /* Also an unknown ID behind a relay that is no one's super-node for it. */
    {
        int rc =
            overlay_node_pipe_send(c->node, &unknown, &s->id.id, 13, (const uint8_t *)"lost", 4);
        assert_true(rc == 0 || rc == -EHOSTUNREACH);
    }
    run_for(e, T_REQUEST_TIMEOUT_MS + 1000);
    assert_int_equal(s->pipes, before[0]);
    assert_int_equal(a->pipes, before[1]);
    assert_int_equal(b->pipes, before[2]);
    assert_int_equal(c->pipes, before[3]);

    /* Bad arguments. */
    assert_int_equal(overlay_node_pipe_send(a->node, &a->id.id, NULL, 1, (const uint8_t *)"x", 1),
                     -EINVAL);
    {
        static uint8_t huge[OVL_FRAME_MAX];
        assert_int_equal(overlay_node_pipe_send(a->node, &b->id.id, NULL, 1, huge, sizeof(huge)),
                         -EMSGSIZE);
    }
    /* Pipes still work after all that. */
    assert_int_equal(overlay_node_pipe_send(b->node, &a->id.id, NULL, 7, (const uint8_t *)"ba", 2),
                     0);
    pipe_expect(a, before[1], b, NULL, 7, "ba");
    /* Nobody died: nobody was declared unreachable. */
    assert_int_equal(s->unreachable_calls + a->unreachable_calls + b->unreachable_calls +
                         c->unreachable_calls,
                     0);
    env_finish(e);
}

/* A pipe datagram to a member that went away: the sender says the node is unreachable
 * within a few seconds (fast failure), and remembers it as gone; live nodes are not. */
static void test_pipe_dead_peer(void **state)
{
    struct env *e = *state;
    struct tnode *ts[3], *s, *a, *b;
    struct dht_id b_id;

    form_ring(e, ts, 3);
    s = ts[0];
    a = ts[1];
    b = ts[2];
    assert_int_equal(overlay_node_pipe_send(a->node, &b->id.id, NULL, 7, (const uint8_t *)"ab", 2),
                     0);
    pipe_expect(b, 0, a, NULL, 7, "ab");
    assert_false(overlay_node_peer_dead(a->node, &b->id.id));
    b_id = b->id.id;
    node_close(b);
    run_for(e, 1100); /* silent for longer than a pipe peer stays fresh */
    assert_int_equal(overlay_node_pipe_send(a->node, &b_id, NULL, 7, (const uint8_t *)"ab", 2), 0);
    RUN_UNTIL(e, a->unreachable_calls > 0, 5000);
    assert_true(dht_id_eq(&a->unreachable, &b_id));
    assert_true(overlay_node_peer_dead(a->node, &b_id));
    assert_false(overlay_node_peer_dead(a->node, &s->id.id));
    /* The living still talk. */
    assert_int_equal(overlay_node_pipe_send(a->node, &s->id.id, NULL, 8, (const uint8_t *)"as", 2),
                     0);
    pipe_expect(s, 0, a, NULL, 8, "as");
    assert_false(overlay_node_peer_dead(a->node, &s->id.id));
    env_finish(e);
}

/* ---- life cycle ---- */

/* Creation errors, a second start, a port taken (no fallback), a node closed before it
 * started. */
static void test_lifecycle(void **state)
{
    struct env *e = *state;
    struct overlay_node_config cfg;
    struct overlay_node *n = (struct overlay_node *)&cfg; /* must stay untouched */
    struct dht_store *store;
    struct ovl_identity id;
    struct tnode *s, *u;
    struct node_opts o = {.server = true};

    assert_int_equal(ovl_identity_generate(&id), 0);
    assert_int_equal(dht_store_new(&store, NULL), 0);
    overlay_node_config_init(&cfg);
    cfg.store = store; /* no identity */
    assert_int_equal(overlay_node_new(&n, &e->loop, &cfg, NULL, &e->log), -EINVAL);
    cfg.identity = &id;
    cfg.store = NULL; /* no store */
    assert_int_equal(overlay_node_new(&n, &e->loop, &cfg, NULL, &e->log), -EINVAL);
    cfg.store = store;
    cfg.n_bootstrap = OVERLAY_BOOTSTRAP_MAX + 1;
    assert_int_equal(overlay_node_new(&n, &e->loop, &cfg, NULL, &e->log), -EINVAL);
    assert_ptr_equal(n, (struct overlay_node *)&cfg);

    /* Started twice: refused. */
    s = node_add(e, &o);
    assert_int_equal(overlay_node_start(s->node), -EALREADY);

    /* Its port without fallback: the bind's error, and nothing leaks (uv_loop_close at
     * the end fails on a handle left open). */
    overlay_node_config_init(&cfg);
    cfg.identity = &id;
    cfg.store = store;
    cfg.port = overlay_node_port(s->node);
    cfg.port_fallback = false;
    n = NULL;
    assert_int_equal(overlay_node_new(&n, &e->loop, &cfg, NULL, &e->log), UV_EADDRINUSE);
    assert_null(n);
    run_for(e, 50);
    dht_store_free(store);
    ovl_identity_wipe(&id);

    /* Created and closed without ever starting: the close callback runs once and no
     * other callback at all. */
    u = node_add(e, &(struct node_opts){.no_start = true});
    assert_int_equal(overlay_node_role(u->node), OVERLAY_ROLE_SEEKING);
    assert_int_equal(overlay_node_uptime_ms(u->node), 0);
    run_for(e, 600);
    node_close(u);
    assert_int_equal(u->n_roles, 0);
    assert_int_equal(u->health_calls, 0);
    assert_int_equal(overlay_node_stats(s->node)->frames_in, 0);
    env_finish(e);
}

/* ---- 5. close and cancel with operations pending ---- */

static void close_inside(struct tnode *t)
{
    t->e->closing_node = true;
    overlay_node_close(t->node, on_closed, t);
    t->e->closing_node = false;
}

static void req_init(struct env *e, struct req *q)
{
    memset(q, 0, sizeof(*q));
    q->e = e;
}

/* Two gets of key on t, the first (x) cancelled at once, a second cancel finding
 * nothing: the other (g) is answered with one record, x never.  The caller owns x
 * and g, so a late call of x is still seen by its later checks. */
static void get_beside_cancelled(struct tnode *t, const struct dht_id *key, struct req *x,
                                 struct req *g)
{
    req_init(t->e, x);
    req_init(t->e, g);
    assert_int_equal(overlay_node_get(t->node, key, get_done, x), 0);
    assert_int_equal(overlay_node_get(t->node, key, get_done, g), 0);
    assert_int_equal(overlay_node_cancel(t->node, x), 1);
    assert_int_equal(overlay_node_cancel(t->node, x), 0);
    RUN_UNTIL(t->e, g->calls > 0, OP_MS);
    assert_int_equal(g->status, 0);
    assert_int_equal(g->nrec, 1);
    run_for(t->e, 300);
    assert_int_equal(x->calls, 0);
}

/* rec re-signed at seq 2; a put of it (p) and a get of its key (g) pending on t
 * when it closes, and a third request (x) cancelled before: p and g complete once
 * each with -ECANCELED, inside the close; x never runs, not even from close. */
static void close_with_pending(struct tnode *t, struct dht_record *rec, struct req *p,
                               struct req *g, struct req *x)
{
    req_init(t->e, p);
    req_init(t->e, g);
    req_init(t->e, x);
    rec->seq = 2;
    assert_int_equal(dht_record_sign(rec, t->id.ed_sk), 0);
    assert_int_equal(overlay_node_put(t->node, rec, put_done, p), 0);
    assert_int_equal(overlay_node_get(t->node, &rec->key, get_done, g), 0);
    assert_int_equal(overlay_node_get(t->node, &rec->key, get_done, x), 0);
    assert_int_equal(overlay_node_cancel(t->node, x), 1);
    close_inside(t);
    assert_int_equal(p->calls, 1);
    assert_int_equal(p->status, -ECANCELED);
    assert_true(p->in_close);
    assert_int_equal(g->calls, 1);
    assert_int_equal(g->status, -ECANCELED);
    assert_true(g->in_close);
    assert_int_equal(x->calls, 0);
}

static void test_close_pending_member(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e);
    struct dht_record rec;
    struct req p1, g1, x;
    static const uint8_t value[] = "pending";

    /* The control: a put and a get left to run complete normally. */
    make_record(&rec, s, "pending-key", "v", 1, value, sizeof(value));
    req_init(e, &p1);
    req_init(e, &g1);
    assert_int_equal(overlay_node_put(s->node, &rec, put_done, &p1), 0);
    assert_int_equal(overlay_node_get(s->node, &rec.key, get_done, &g1), 0);
    assert_int_equal(p1.calls + g1.calls, 0);
    RUN_UNTIL(e, p1.calls > 0 && g1.calls > 0, OP_MS);
    assert_int_equal(p1.status, 0);
    assert_int_equal(g1.status, 0);
    assert_false(p1.in_close);

    /* A cancelled get never completes; the one beside it does. */
    get_beside_cancelled(s, &rec.key, &x, &g1);

    /* A put and a get issued right before close: -ECANCELED, once, inside close;
     * a third, cancelled, never runs. */
    close_with_pending(s, &rec, &p1, &g1, &x);
    assert_int_equal(g1.nrec, 0);
    RUN_UNTIL(e, s->closed > 0, 5000);
    assert_int_equal(s->closed, 1);
    s->node = NULL;
    dht_store_free(s->store);
    s->store = NULL;
    run_for(e, 300);
    /* Still exactly once each. */
    assert_int_equal(p1.calls, 1);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(x.calls, 0);
    env_finish(e);
}

static void test_close_pending_client(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e), *c;
    struct dht_record crec;
    struct req p2, g2, x;
    static const uint8_t value[] = "pending";

    c = client_add(e, s);
    make_record(&crec, c, "client-pending", "v", 1, value, sizeof(value));
    do_put(c, &crec, &p2);

    /* A cancelled proxied get never completes, though its answer comes back (the
     * one not cancelled was answered, the cancelled one's answer was ignored). */
    get_beside_cancelled(c, &crec.key, &x, &g2);

    /* Proxied put and get pending at close: -ECANCELED, once, inside close. */
    close_with_pending(c, &crec, &p2, &g2, &x);
    RUN_UNTIL(e, c->closed > 0, 5000);
    c->node = NULL;
    dht_store_free(c->store);
    c->store = NULL;
    /* The server answers the requests it had already received: nobody hears it. */
    run_for(e, 500);
    assert_int_equal(p2.calls, 1);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(x.calls, 0);
    env_finish(e);
}

/* ---- 6. bounds ---- */

#define MAX_PEERS_SMALL 4

static void test_bounds_peers(void **state)
{
    struct env *e = *state;
    struct node_opts so = {.server = true, .max_peers = MAX_PEERS_SMALL};
    struct tnode *s = node_add(e, &so), *c0, *others[6];
    struct dht_record rec;
    struct req q;
    unsigned max_seen = 0;
    int clients = 0;
    static const uint8_t value[] = "still-serving";

    c0 = client_add(e, s);
    for (int i = 0; i < 6; i++)
        others[i] = seeker_add(e, s, T_NEVER_MS);
    /* More nodes than the server has room for handshake with it, repeatedly; the table is looked at
     * after every turn of the loop. */
    RUN_UNTIL_MS(e, (max_seen = peer_count_max(s, max_seen)) > MAX_PEERS_SMALL, 3000);
    assert_true(max_seen <= MAX_PEERS_SMALL);
    assert_true(max_seen >= 1);
    assert_true(overlay_node_stats(s->node)->handshakes_done > MAX_PEERS_SMALL);
    for (int i = 0; i < 6; i++)
        if (overlay_node_role(others[i]->node) == OVERLAY_ROLE_CLIENT)
            clients++;
    assert_true(clients <= MAX_PEERS_SMALL - 1); /* c0 holds one place */
    assert_int_equal(overlay_node_role(c0->node), OVERLAY_ROLE_CLIENT);

    /* The server keeps serving: its attached client's requests and its own. */
    make_record(&rec, c0, "bounds-client", "v", 1, value, sizeof(value));
    do_put(c0, &rec, &q);
    get_expect(c0, &rec);
    get_expect(s, &rec);
    assert_true(peer_count(s) <= MAX_PEERS_SMALL);
    env_finish(e);
}

static void test_bounds_garbage(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e);
    struct overlay_node_stats before;
    uint8_t buf[2048];
    int sent = 0;

    raw_open(e);
    run_for(e, 50);
    before = *overlay_node_stats(s->node);

    /* Not our magic; our magic with another version, flags or type; truncated frames. */
    for (int i = 0; i < 200; i++) {
        size_t len = 1 + (size_t)(i * 37) % sizeof(buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(k * 31 + (size_t)i * 17 + 3);
        switch (i % 6) {
        case 0:
            buf[0] = 0x00;
            break;
        case 1: /* another version */
            buf[0] = OVL_MAGIC;
            if (len > 1)
                buf[1] = OVL_VERSION + 1;
            break;
        case 2: /* unknown type */
            buf[0] = OVL_MAGIC;
            if (len >= 4) {
                buf[1] = OVL_VERSION;
                buf[2] = 0x7f;
                buf[3] = 0;
            }
            break;
        case 3: /* flags set */
            buf[0] = OVL_MAGIC;
            if (len >= 4) {
                buf[1] = OVL_VERSION;
                buf[2] = OVL_T_DATA;
                buf[3] = 0x80;
            }
            break;
        case 4: /* HS1 of the wrong length */
            buf[0] = OVL_MAGIC;
            if (len >= 4) {
                buf[1] = OVL_VERSION;
                buf[2] = OVL_T_HS1;
                buf[3] = 0;
            }
            if (len == OVL_HS1_LEN)
                len++;
            break;
        default: /* DATA shorter than its overhead */
            buf[0] = OVL_MAGIC;
            len = len % OVL_DATA_OVERHEAD;
            if (len < 4)
                len = 4;
            buf[1] = OVL_VERSION;
            buf[2] = OVL_T_DATA;
            buf[3] = 0;
            break;
        }
        raw_send(e, s, buf, len);
        sent++;
        /* In batches, so that the kernel's receive buffer never overflows. */
        if (sent % 20 == 0)
            RUN_UNTIL(e,
                      overlay_node_stats(s->node)->dropped_malformed >=
                          before.dropped_malformed + (uint64_t)sent,
                      5000);
    }
    RUN_UNTIL(e,
              overlay_node_stats(s->node)->dropped_malformed >=
                  before.dropped_malformed + (uint64_t)sent,
              5000);
    run_for(e, 200);
    {
        const struct overlay_node_stats *st = overlay_node_stats(s->node);
        assert_int_equal(st->dropped_malformed, before.dropped_malformed + (uint64_t)sent);
        assert_int_equal(st->dropped_auth, before.dropped_auth);
        assert_int_equal(st->dropped_nosession, before.dropped_nosession);
        assert_int_equal(st->handshakes_started, before.handshakes_started);
        assert_int_equal(st->frames_out, before.frames_out);
        assert_int_equal(e->raw.datagrams, 0);
    }

    /* A well-formed HS1 made with another overlay's key: counted, never answered. */
    {
        struct ovl_identity me;
        struct ovl_hs hs;
        uint8_t other_psk[OVL_KEY_LEN];
        int len;
        assert_int_equal(ovl_identity_generate(&me), 0);
        ovl_psk_from_secret(other_psk, (const uint8_t *)"another-overlay", 15);
        len = ovl_hs_initiate(&hs, &me, other_psk, 0x00010001, buf, sizeof(buf));
        assert_int_equal(len, OVL_HS1_LEN);
        raw_send(e, s, buf, (size_t)len);
        RUN_UNTIL(e, overlay_node_stats(s->node)->dropped_auth == before.dropped_auth + 1, 5000);
        run_for(e, 500);
        assert_int_equal(e->raw.datagrams, 0);
        assert_int_equal(overlay_node_stats(s->node)->dropped_auth, before.dropped_auth + 1);
        assert_int_equal(overlay_node_stats(s->node)->dropped_malformed,
                         before.dropped_malformed + (uint64_t)sent);
        ovl_hs_wipe(&hs);

        /* The control: the same from an initiator with the right key is answered (HS2),
         * so the silence above is the node's doing, not the socket's. */
        len = ovl_hs_initiate(&hs, &me, e->psk, 0x00020002, buf, sizeof(buf));
        assert_int_equal(len, OVL_HS1_LEN);
        raw_send(e, s, buf, (size_t)len);
        RUN_UNTIL(e, e->raw.datagrams > 0, 5000);
        assert_int_equal(e->raw.datagrams, 1);
        assert_true(e->raw.last_len >= 4);
        assert_int_equal(e->raw.last[0], OVL_MAGIC);
        assert_int_equal(e->raw.last[2], OVL_T_HS2);
        assert_int_equal(overlay_node_stats(s->node)->dropped_auth, before.dropped_auth + 1);
        ovl_hs_wipe(&hs);
        ovl_identity_wipe(&me);
    }

    /* A flood of genuine HS1s (half-open handshakes) is bounded: the oldest go. */
    {
        struct ovl_identity me;
        struct ovl_hs hs;
        uint64_t full = overlay_node_stats(s->node)->dropped_full;
        assert_int_equal(ovl_identity_generate(&me), 0);
        e->raw.datagrams = 0;
        for (uint32_t i = 0; i < 100; i++) {
            int len = ovl_hs_initiate(&hs, &me, e->psk, 0x00100000 + i, buf, sizeof(buf));
            assert_int_equal(len, OVL_HS1_LEN);
            raw_send(e, s, buf, (size_t)len);
            ovl_hs_wipe(&hs);
        }
        RUN_UNTIL(e, e->raw.datagrams >= 100, 5000);
        assert_true(overlay_node_stats(s->node)->dropped_full >= full + 100 - 64);
        ovl_identity_wipe(&me);
    }

    /* And the node still serves. */
    {
        struct dht_record rec;
        struct req q;
        static const uint8_t value[] = "after-garbage";
        make_record(&rec, s, "after-garbage", "v", 1, value, sizeof(value));
        do_put(s, &rec, &q);
        get_expect(s, &rec);
    }
    env_finish(e);
}

/* ---- 7. health ---- */

static void test_health_cut_off(void **state)
{
    struct env *e = *state;
    struct tnode *ts[3], *c;
    uint64_t t0;

    form_ring(e, ts, 3);
    c = client_add(e, ts[0]);
    run_for(e, 500);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ts[i]->cut_off_calls, 0);
    assert_int_equal(c->cut_off_calls, 0);

    /* The server (the client's super-node) and the other member stop. */
    node_close(ts[0]);
    node_close(ts[1]);
    t0 = uv_now(&e->loop);
    RUN_UNTIL(e, ts[2]->cut_off_calls > 0 && c->cut_off_calls > 0, T_CUTOFF_MS + 3000);
    assert_true(ts[2]->last_cut_off);
    assert_true(c->last_cut_off);
    assert_true(overlay_node_cut_off(ts[2]->node));
    assert_true(overlay_node_cut_off(c->node));
    /* It took the cut-off time, not a moment. */
    assert_true(ts[2]->cut_off_at - t0 >= T_CUTOFF_MS / 2);
    assert_true(c->cut_off_at - t0 >= T_CUTOFF_MS / 2);
    assert_true(ts[2]->cut_off_at - t0 <= T_CUTOFF_MS + 3000);
    assert_true(c->cut_off_at - t0 <= T_CUTOFF_MS + 3000);
    /* The client looks for a super-node again. */
    RUN_UNTIL(e, overlay_node_role(c->node) == OVERLAY_ROLE_SEEKING, 2000);
    env_finish(e);
}

static void test_health_lone_server(void **state)
{
    struct env *e = *state;
    struct node_opts so = {.server = true, .cutoff_ms = 1000};
    struct tnode *s = node_add(e, &so);

    run_for(e, 3500);
    assert_int_equal(s->cut_off_calls, 0);
    assert_int_equal(s->health_calls, 0);
    assert_false(overlay_node_cut_off(s->node));
    assert_int_equal(overlay_node_role(s->node), OVERLAY_ROLE_SUPER);
    env_finish(e);
}

/* Keeps a closed node's UDP port from other processes until it restarts on it. */
static void port_hold(struct env *e, uint16_t port)
{
    struct sockaddr_in a;

    assert_false(e->raw.open);
    assert_int_equal(uv_udp_init(&e->loop, &e->raw.h), 0);
    e->raw.h.data = &e->raw;
    e->raw.open = true;
    assert_int_equal(uv_ip4_addr("0.0.0.0", port, &a), 0);
    assert_int_equal(uv_udp_bind(&e->raw.h, (const struct sockaddr *)&a, 0), 0);
}

static void port_release(struct env *e)
{
    assert_true(e->raw.open);
    uv_close((uv_handle_t *)&e->raw.h, raw_closed);
    e->raw.open = false;
    run_for(e, 1); /* the socket is closed by the time this returns */
}

/* A super-node restarts on the same address with the same identity: its client, cut off meanwhile,
 * attaches to it again (overlay_node.h: "keeps retrying its bootstrap list ... healthy again as
 * soon as a peer answers"). */
static void test_health_super_restart(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e), *c, *s2;
    struct node_opts o = {.server = true};
    struct ovl_identity id = s->id;

    c = client_add(e, s);
    o.port = overlay_node_port(s->node);
    o.reuse = &id;
    node_close(s);
    port_hold(e, o.port);
    RUN_UNTIL(e, c->cut_off_calls > 0, T_CUTOFF_MS + 3000);
    port_release(e);
    s2 = node_add(e, &o);
    assert_int_equal(overlay_node_port(s2->node), o.port);
    RUN_UNTIL(e,
              overlay_node_role(c->node) == OVERLAY_ROLE_CLIENT && !overlay_node_cut_off(c->node),
              4 * T_CUTOFF_MS);
    assert_false(c->last_cut_off);
    ovl_identity_wipe(&id);
    env_finish(e);
}

/* The same for a member whose whole ring (the server) restarted. */
static void test_health_ring_restart(void **state)
{
    struct env *e = *state;
    struct tnode *ts[2], *s2;
    struct node_opts o = {.server = true};
    struct ovl_identity id;

    form_ring(e, ts, 2);
    id = ts[0]->id;
    o.port = overlay_node_port(ts[0]->node);
    o.reuse = &id;
    node_close(ts[0]);
    port_hold(e, o.port);
    RUN_UNTIL(e, ts[1]->cut_off_calls > 0, T_CUTOFF_MS + 3000);
    port_release(e);
    s2 = node_add(e, &o);
    RUN_UNTIL(
        e, !overlay_node_cut_off(ts[1]->node) && leafset_has(ts[1], s2) && leafset_has(s2, ts[1]),
        4 * T_CUTOFF_MS);
    ovl_identity_wipe(&id);
    env_finish(e);
}

/* The server of a ring of three goes away: the other two carry on, with its records. */
static void test_member_loss(void **state)
{
    struct env *e = *state;
    struct tnode *ts[3];
    struct dht_record rec, rec2;
    struct req q;
    static const uint8_t value[] = "survives", value2[] = "after";

    form_ring(e, ts, 3);
    make_record(&rec, ts[0], "survives-its-owner", "v", 1, value, sizeof(value));
    do_put(ts[0], &rec, &q);
    assert_int_equal(q.acks, 2);
    node_close(ts[0]);
    get_expect(ts[1], &rec);
    get_expect(ts[2], &rec);
    make_record(&rec2, ts[1], "after-the-loss", "v", 1, value2, sizeof(value2));
    do_put(ts[1], &rec2, &q);
    get_expect(ts[2], &rec2);
    run_for(e, T_CUTOFF_MS + 1000);
    assert_int_equal(ts[1]->cut_off_calls, 0);
    assert_int_equal(ts[2]->cut_off_calls, 0);
    assert_false(leafset_has(ts[1], ts[0]) && leafset_has(ts[2], ts[0]));
    env_finish(e);
}

/* A client's super-node goes away: a request through it times out (once), and the client attaches
 * to the other member of its bootstrap list. */
static void test_client_failover(void **state)
{
    struct env *e = *state;
    struct tnode *ts[3], *c;
    struct node_opts o = {.promote_after_ms = T_NEVER_MS};
    struct dht_record rec;
    struct req q, g;
    struct dht_peer sp;
    static const uint8_t value[] = "failover";

    /* Three: a member alone is cut off, and cut-off members take no clients. */
    form_ring(e, ts, 3);
    o.boot = ts[0];
    o.boot2 = ts[1];
    c = node_add(e, &o);
    RUN_UNTIL(e, overlay_node_role(c->node) == OVERLAY_ROLE_CLIENT, FORM_MS);
    assert_int_equal(overlay_node_super(c->node, &sp), 0);
    make_record(&rec, c, "failover", "v", 1, value, sizeof(value));
    do_put(c, &rec, &q);

    /* Its super-node goes. */
    node_close(dht_id_eq(&sp.id, &ts[0]->id.id) ? ts[0] : ts[1]);
    req_init(e, &g);
    assert_int_equal(overlay_node_get(c->node, &rec.key, get_done, &g), 0);
    RUN_UNTIL(e, g.calls > 0, T_REQUEST_TIMEOUT_MS + 2000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, -ETIMEDOUT);
    run_for(e, 300);
    assert_int_equal(g.calls, 1);

    /* It is cut off, then attached to the other member, then healthy again. */
    RUN_UNTIL(e, c->cut_off_calls > 0, T_CUTOFF_MS + 3000);
    RUN_UNTIL(e,
              overlay_node_role(c->node) == OVERLAY_ROLE_CLIENT && !overlay_node_cut_off(c->node),
              4 * T_CUTOFF_MS);
    assert_false(c->last_cut_off);
    {
        struct dht_peer sp2;
        assert_int_equal(overlay_node_super(c->node, &sp2), 0);
        assert_false(dht_id_eq(&sp2.id, &sp.id));
    }
    get_expect(c, &rec);
    env_finish(e);
}

/* A client that reaches its super-node over IPv6 (::1). */
static void test_join_ipv6(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e), *c;
    struct node_opts o = {.boot = s, .boot_v6 = true};
    struct dht_record rec;
    struct req q;
    static const uint8_t value[] = "over-ipv6";

    c = node_add(e, &o);
    RUN_UNTIL(e, overlay_node_role(c->node) == OVERLAY_ROLE_CLIENT, FORM_MS);
    assert_int_equal(overlay_node_advertised(c->node)->len, 18);
    make_record(&rec, c, "over-ipv6", "v", 1, value, sizeof(value));
    do_put(c, &rec, &q);
    RUN_UNTIL(e, is_member(c), FORM_MS);
    get_expect(c, &rec);
    get_expect(s, &rec);
    env_finish(e);
}

/* ---- 8. closing from inside the node's own callbacks ---- */

/* Waits for a node that closed itself from a callback; frees its store. */
static void wait_closed(struct tnode *t)
{
    RUN_UNTIL(t->e, t->closed > 0, 5000);
    run_for(t->e, 1);
    assert_int_equal(t->closed, 1);
    t->node = NULL;
    dht_store_free(t->store);
    t->store = NULL;
}

/* A client's proxied get callback (run from a received frame) closes the client. */
static void test_close_in_proxy_cb(void **state)
{
    struct env *e = *state;
    struct tnode *s = server_add(e), *c;
    struct dht_record rec;
    struct req q, g;
    static const uint8_t value[] = "close-in-proxy-cb";

    c = client_add(e, s);
    make_record(&rec, c, "close-in-proxy-cb", "v", 1, value, sizeof(value));
    do_put(c, &rec, &q);
    req_init(e, &g);
    g.close_node = c;
    assert_int_equal(overlay_node_get(c->node, &rec.key, get_done, &g), 0);
    wait_closed(c);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    get_expect(s, &rec);
    env_finish(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_ring_of_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_three, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipe_dead_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_lone_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_super_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_ring_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_proxy_cb, setup, teardown),
    };

    /* P2P_TEST_FILTER=test_pipes runs one test (cmocka's own wildcards). */
    if (getenv("P2P_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("P2P_TEST_FILTER"));
    if (getenv("P2P_TEST_SKIP") != NULL)
        cmocka_set_skip_filter(getenv("P2P_TEST_SKIP"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
