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
#define OP_MS 8000         /* a put or get completes well within */

/* Shortened timings (the defaults are seconds to minutes). */
#define T_PROMOTE_MS 300
#define T_CUTOFF_MS 3000
#define T_REQUEST_TIMEOUT_MS 2000

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
    bool in_close; /* the callback ran inside overlay_node_close */
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

static void on_closed(void *arg)
{
    struct tnode *t = arg;

    t->closed++;
}

/* ---- nodes ---- */

struct node_opts {
    bool server;
    const struct tnode *boot; /* bootstrap: this node's port on 127.0.0.1 */
    uint32_t promote_after_ms;
    uint32_t cutoff_ms;
    unsigned max_peers;
    bool port_fallback;
    bool no_start;                    /* created, not started */
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
    cfg.dht.leaf_ping_ms = 500;
    cfg.dht.request_timeout_ms = T_REQUEST_TIMEOUT_MS;
    cfg.dht.join_timeout_ms = 3000;
    if (o->boot != NULL) {
        assert_int_equal(uv_ip4_addr("127.0.0.1", overlay_node_port(o->boot->node),
                                     (struct sockaddr_in *)&cfg.bootstrap[0]),
                         0);
        cfg.n_bootstrap = 1;
    }
    memset(&ops, 0, sizeof(ops));
    ops.health = on_health;
    ops.role = on_role;
    ops.pipe = on_pipe;
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
    req_init(e, &x);
    req_init(e, &g1);
    assert_int_equal(overlay_node_get(s->node, &rec.key, get_done, &x), 0);
    assert_int_equal(overlay_node_get(s->node, &rec.key, get_done, &g1), 0);
    assert_int_equal(overlay_node_cancel(s->node, &x), 1);
    assert_int_equal(overlay_node_cancel(s->node, &x), 0);
    RUN_UNTIL(e, g1.calls > 0, OP_MS);
    assert_int_equal(g1.status, 0);
    assert_int_equal(g1.nrec, 1);
    run_for(e, 300);
    assert_int_equal(x.calls, 0);

    /* A put and a get issued right before close: -ECANCELED, once, inside close. */
    req_init(e, &p1);
    req_init(e, &g1);
    req_init(e, &x);
    rec.seq = 2;
    assert_int_equal(dht_record_sign(&rec, s->id.ed_sk), 0);
    assert_int_equal(overlay_node_put(s->node, &rec, put_done, &p1), 0);
    assert_int_equal(overlay_node_get(s->node, &rec.key, get_done, &g1), 0);
    /* A third, cancelled: it never runs, not even from close. */
    assert_int_equal(overlay_node_get(s->node, &rec.key, get_done, &x), 0);
    assert_int_equal(overlay_node_cancel(s->node, &x), 1);
    close_inside(s);
    assert_int_equal(p1.calls, 1);
    assert_int_equal(p1.status, -ECANCELED);
    assert_true(p1.in_close);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g1.status, -ECANCELED);
    assert_true(g1.in_close);
    assert_int_equal(g1.nrec, 0);
    assert_int_equal(x.calls, 0);
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

/* ---- 6. bounds ---- */

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_ring_of_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_lone_server, setup, teardown),
    };

    /* P2P_TEST_FILTER=test_pipes runs one test (cmocka's own wildcards). */
    if (getenv("P2P_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("P2P_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
