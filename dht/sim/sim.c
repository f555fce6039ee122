/*
 * sim.c: discrete-event simulation of N dht_node instances (see sim.h).
 *
 * Design: one binary heap of events ordered by (time, sequence number), so equal
 * times keep their insertion order and a seed gives one exact history.  Each node
 * has at most one live timer event: after every interaction the simulator asks
 * dht_node_next_deadline() and pushes a timer only if it is earlier than the one
 * already queued; a timer event whose time no longer matches is stale and skipped.
 * Nodes live in individually allocated slots (the node ops keep a pointer to
 * theirs); a dead node's slot is never reused, so its address stays dead.
 * Ground truth is a sorted array of the live, joined node IDs.
 */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "p2p/dht_node.h"
#include "p2p/dht_store.h"

enum ev_kind {
    EV_DELIVER = 1,
    EV_TIMER,
    EV_DEATH,
    EV_START_JOIN,
    EV_LOOKUP,
    EV_PUT,
    EV_GETS,
    EV_KILL,
    EV_REPAIR_CHECK,
};

struct ev {
    uint64_t t, seq;
    uint32_t kind, slot, from, len;
    uint8_t *buf;
};

struct sim;

struct slot {
    struct sim *sim;
    unsigned idx;
    struct dht_node *node;
    struct dht_store *store;
    uint8_t pk[32], sk[64];
    struct dht_id id;
    bool alive, joined, joining;
    uint64_t join_t, death_t;
    uint64_t sched; /* time of the queued timer event, UINT64_MAX = none */
};

struct live {
    struct dht_id id;
    unsigned slot;
};

struct lookup_ctx {
    struct sim *sim;
    unsigned group, origin;
    uint64_t t0;
};

/* P2P_SIM_SLOW: one message event, kept to explain slow requests. */
enum tr_ev { TR_SENT = 1, TR_RECV, TR_LOST, TR_DEAD };

struct tr {
    uint64_t t, key8;
    uint32_t req_id, txid;
    uint32_t node, peer;
    uint8_t ev, type, hops, flags;
};

struct group {
    struct dht_id key;
    unsigned issued, done, ok;
    bool agree;
    struct dht_id root;
};

struct put_ctx {
    struct sim *sim;
    struct dht_id key, vid;
    uint64_t seq, t0;
    unsigned origin;
    bool ok, done;
    uint8_t owner_sk[64];
};

struct get_ctx {
    struct sim *sim;
    unsigned put, origin;
    uint64_t t0;
};

struct sim {
    struct sim_config cfg;
    struct dht_config ncfg;
    uint64_t rng, now, seq;
    struct slot **slots;
    unsigned n_slots, cap_slots;
    struct ev *heap;
    size_t n_heap, cap_heap;
    struct live *live;
    unsigned n_live, cap_live;
    uint64_t win_start, win_end, kill_t;
    uint64_t nodesec_t;
    double nodesec; /* live node-seconds inside the window */
    uint64_t maint_bytes, all_bytes;
    FILE *csv; /* cfg.csv_path: one line per answered request */

    struct group *groups;
    struct lookup_ctx *lk;
    unsigned n_groups, n_lk;
    double *lat, *hops;
    size_t n_lat, n_hops;
    struct put_ctx *puts;
    double *put_lat;
    size_t n_put_lat;
    struct get_ctx *gets;
    bool repaired, debug;
    uint64_t slow_ms; /* P2P_SIM_SLOW: explain requests slower than this (0 = off) */
    struct tr *tr;
    size_t n_tr, cap_tr;
    unsigned dumped[DHT_MSG_TYPE_MAX + 1];
    struct sim_result res;
};

/* ---- PRNG ------------------------------------------------------------------ */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rnd(struct sim *s)
{
    return mix(s->rng += 0x9e3779b97f4a7c15ull);
}

static double rnd_unit(struct sim *s)
{
    return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

/* ---- event heap ------------------------------------------------------------- */

static bool ev_less(const struct ev *a, const struct ev *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int push(struct sim *s, struct ev e)
{
    size_t i;

    if (s->n_heap == s->cap_heap) {
        size_t n = s->cap_heap ? s->cap_heap * 2 : 4096;
        struct ev *h = realloc(s->heap, n * sizeof(*h));
        if (h == NULL) {
            free(e.buf);
            return -ENOMEM;
        }
        s->heap = h;
        s->cap_heap = n;
    }
    e.seq = s->seq++;
    i = s->n_heap++;
    while (i > 0 && ev_less(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return 0;
}

static struct ev pop(struct sim *s)
{
    struct ev top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap)
            break;
        if (c + 1 < s->n_heap && ev_less(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!ev_less(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap > 0)
        s->heap[i] = last;
    return top;
}

static void push_simple(struct sim *s, uint64_t t, enum ev_kind k, unsigned slot)
{
    struct ev e = {0};
    e.t = t;
    e.kind = k;
    e.slot = slot;
    (void)push(s, e);
}

/* ---- ground truth ------------------------------------------------------------- */

static unsigned live_pos(const struct sim *s, const struct dht_id *id)
{
    unsigned lo = 0, hi = s->n_live;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (dht_id_cmp(&s->live[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void nodesec_update(struct sim *s)
{
    uint64_t a = s->nodesec_t > s->win_start ? s->nodesec_t : s->win_start;
    uint64_t b = s->now < s->win_end ? s->now : s->win_end;
    if (b > a)
        s->nodesec += (double)s->n_live * (double)(b - a) / 1000.0;
    s->nodesec_t = s->now;
}

static void live_add(struct sim *s, unsigned slot)
{
    unsigned p;

    nodesec_update(s);
    if (s->n_live == s->cap_live) {
        unsigned n = s->cap_live ? s->cap_live * 2 : 64;
        struct live *l = realloc(s->live, n * sizeof(*l));
        if (l == NULL)
            return;
        s->live = l;
        s->cap_live = n;
    }
    p = live_pos(s, &s->slots[slot]->id);
    memmove(&s->live[p + 1], &s->live[p], (s->n_live - p) * sizeof(s->live[0]));
    s->live[p].id = s->slots[slot]->id;
    s->live[p].slot = slot;
    s->n_live++;
}

static void live_remove(struct sim *s, unsigned slot)
{
    unsigned p = live_pos(s, &s->slots[slot]->id);

    nodesec_update(s);
    if (p < s->n_live && s->live[p].slot == slot) {
        memmove(&s->live[p], &s->live[p + 1], (s->n_live - p - 1) * sizeof(s->live[0]));
        s->n_live--;
    }
}

/* The live joined node closest to key. */
static const struct dht_id *truth_root(const struct sim *s, const struct dht_id *key)
{
    unsigned p;
    const struct dht_id *a, *b;

    if (s->n_live == 0)
        return NULL;
    p = live_pos(s, key);
    a = &s->live[p % s->n_live].id;
    b = &s->live[(p + s->n_live - 1) % s->n_live].id;
    return dht_id_closer(key, a, b) <= 0 ? a : b;
}

/* ---- nodes -------------------------------------------------------------------- */

static void sched(struct sim *s, unsigned i, uint64_t min_t)
{
    struct slot *sl = s->slots[i];
    uint64_t d;

    if (!sl->alive)
        return;
    d = dht_node_next_deadline(sl->node);
    if (d == UINT64_MAX)
        return;
    if (d < min_t)
        d = min_t;
    if (d < sl->sched) {
        sl->sched = d;
        push_simple(s, d, EV_TIMER, i);
    }
}

static void addr_of(unsigned slot, struct dht_addr *a)
{
    uint32_t v = slot + 1;
    a->len = 4;
    a->b[0] = (uint8_t)(v >> 24);
    a->b[1] = (uint8_t)(v >> 16);
    a->b[2] = (uint8_t)(v >> 8);
    a->b[3] = (uint8_t)v;
}

static double pair_latency(const struct sim *s, unsigned a, unsigned b)
{
    uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
    uint64_t h = mix(s->cfg.seed ^ mix(lo * 0x100000001b3ull + hi));
    return s->cfg.latency_ms * (0.5 + (double)(h >> 11) / 9007199254740992.0);
}

/* P2P_SIM_DUMP=dir: keep the first 4 messages of each type as files (seeds for
 * the fuzzer's corpus: real traffic of every kind). */
static void dump(struct sim *s, const uint8_t *buf, size_t len)
{
    const char *dir = getenv("P2P_SIM_DUMP");
    char path[512];
    FILE *f;
    unsigned t = buf[1] <= DHT_MSG_TYPE_MAX ? buf[1] : 0;

    if (dir == NULL || s->dumped[t] >= 4)
        return;
    snprintf(path, sizeof(path), "%s/%s-%u", dir, dht_msg_type_name(t), s->dumped[t]++);
    f = fopen(path, "wb");
    if (f != NULL) {
        (void)fwrite(buf, 1, len, f);
        fclose(f);
    }
}

static uint32_t addr_slot(const struct dht_addr *a)
{
    if (a->len != 4)
        return UINT32_MAX;
    return ((uint32_t)a->b[0] << 24 | (uint32_t)a->b[1] << 16 | (uint32_t)a->b[2] << 8 | a->b[3]) -
           1;
}

static uint64_t key8(const struct dht_id *k)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v = v << 8 | k->b[i];
    return v;
}

/* P2P_SIM_SLOW: notes one message event (node: where it happened; peer: the
 * other end). */
static void tr_note(struct sim *s, enum tr_ev ev, uint32_t node, uint32_t peer, const uint8_t *buf,
                    size_t len)
{
    struct dht_msg m;
    struct tr *t;

    if (s->slow_ms == 0 || dht_msg_decode(&m, buf, len) != 0)
        return;
    if (s->n_tr == s->cap_tr) {
        size_t n = s->cap_tr ? s->cap_tr * 2 : 65536;
        struct tr *p = realloc(s->tr, n * sizeof(*p));
        if (p == NULL)
            return;
        s->tr = p;
        s->cap_tr = n;
    }
    t = &s->tr[s->n_tr++];
    t->t = s->now;
    t->key8 = key8(m.n_records > 0 ? &m.records[0].key : &m.key);
    t->req_id = (m.have & DHT_HAVE(DHT_ATTR_REQ_ID)) ? m.req_id : 0;
    t->txid = m.txid;
    t->node = node;
    t->peer = peer;
    t->ev = (uint8_t)ev;
    t->type = m.type;
    t->hops = m.hops;
    t->flags = m.flags;
}

/* P2P_SIM_SLOW: prints what happened to the messages of one slow request: those
 * with its key from t0 on, the replies with a req_id seen on them, and the ACKs of
 * their txids. */
static void tr_explain(struct sim *s, const char *what, const struct dht_id *key, uint64_t t0,
                       unsigned origin, int status)
{
    static const char *evn[] = {"?", "->", "<-", "LOST", "DEAD"};
    uint64_t k = key8(key);
    uint32_t reqs[64], txids[512];
    size_t nr = 0, nt = 0, first = s->n_tr;

    /* the trace is in time order: find t0 by binary search */
    {
        size_t lo = 0, hi = s->n_tr;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (s->tr[mid].t < t0)
                lo = mid + 1;
            else
                hi = mid;
        }
        first = lo;
    }
    fprintf(stderr, "SLOW %s key %016llx origin %u t0 %llu latency %llu status %d\n", what,
            (unsigned long long)k, origin, (unsigned long long)t0,
            (unsigned long long)(s->now - t0), status);
    for (size_t i = first; i < s->n_tr; i++) {
        const struct tr *t = &s->tr[i];
        bool mine = t->key8 == k && t->type != DHT_MSG_ACK && t->type != DHT_MSG_PUT_REPLY;
        if (!mine && t->req_id != 0 && t->type == DHT_MSG_PUT_REPLY)
            for (size_t j = 0; j < nr && !mine; j++)
                mine = reqs[j] == t->req_id;
        if (!mine && t->type == DHT_MSG_ACK)
            for (size_t j = 0; j < nt && !mine; j++)
                mine = txids[j] == t->txid;
        if (!mine)
            continue;
        if (t->req_id != 0 && nr < 64) {
            bool have = false;
            for (size_t j = 0; j < nr; j++)
                have |= reqs[j] == t->req_id;
            if (!have)
                reqs[nr++] = t->req_id;
        }
        if (t->type != DHT_MSG_ACK && (t->flags & DHT_FLAG_ACK_REQ) && nt < 512)
            txids[nt++] = t->txid;
        fprintf(stderr, "  +%5llu %4u %-4s %-12s %4u hops %u tx %08x%s\n",
                (unsigned long long)(t->t - t0), t->node, evn[t->ev], dht_msg_type_name(t->type),
                t->peer, t->hops, t->txid,
                t->peer < s->n_slots && !s->slots[t->peer]->alive &&
                        s->slots[t->peer]->death_t <= t->t
                    ? " (peer dead)"
                    : "");
    }
}

static void slow_obs(void *arg, enum dht_obs_event ev, const struct dht_peer *peer,
                     const uint8_t *buf, size_t len, int reason)
{
    struct slot *sl = arg;

    (void)reason;
    if (ev == DHT_OBS_SENT)
        tr_note(sl->sim, TR_SENT, sl->idx, addr_slot(&peer->addr), buf, len);
    else if (ev == DHT_OBS_RECV)
        tr_note(sl->sim, TR_RECV, sl->idx, addr_slot(&peer->addr), buf, len);
}

static int net_send(void *arg, const struct dht_peer *to, const uint8_t *buf, size_t len)
{
    struct slot *src = arg;
    struct sim *s = src->sim;
    struct ev e = {0};
    uint32_t dst;
    double lat;

    dump(s, buf, len);
    s->res.messages++;
    if (s->now >= s->win_start && s->now < s->win_end) {
        s->all_bytes += len;
        if (!(buf[2] & DHT_FLAG_CLIENT))
            s->maint_bytes += len;
    }
    if (to->addr.len != 4)
        return -EINVAL;
    dst = (uint32_t)to->addr.b[0] << 24 | (uint32_t)to->addr.b[1] << 16 |
          (uint32_t)to->addr.b[2] << 8 | to->addr.b[3];
    if (dst == 0 || dst > s->n_slots)
        return -EHOSTUNREACH;
    if (s->cfg.loss > 0 && rnd_unit(s) < s->cfg.loss) {
        tr_note(s, TR_LOST, src->idx, dst - 1, buf, len);
        return 0;
    }
    lat = pair_latency(s, src->idx, dst - 1) * (0.9 + 0.2 * rnd_unit(s));
    e.t = s->now + (uint64_t)(lat + 0.5);
    if (e.t == s->now)
        e.t++;
    e.kind = EV_DELIVER;
    e.slot = dst - 1;
    e.from = src->idx;
    e.len = (uint32_t)len;
    e.buf = malloc(len);
    if (e.buf == NULL)
        return -ENOMEM;
    memcpy(e.buf, buf, len);
    return push(s, e);
}

/* P2P_SIM_TRACE=hex: print every message whose key or sender starts with hex. */
static void trace_obs(void *arg, enum dht_obs_event ev, const struct dht_peer *peer,
                      const uint8_t *buf, size_t len, int reason)
{
    struct slot *sl = arg;
    const char *want = getenv("P2P_SIM_TRACE");
    struct dht_msg m;
    char k[41], snd[41], me[41];

    if (want == NULL || dht_msg_decode(&m, buf, len) != 0)
        return;
    dht_id_to_hex(m.n_records > 0 ? &m.records[0].key : &m.key, k);
    dht_id_to_hex(&peer->id, snd);
    dht_id_to_hex(&sl->id, me);
    if (strncmp(k, want, strlen(want)) != 0 && strncmp(snd, want, strlen(want)) != 0 &&
        strncmp(me, want, strlen(want)) != 0)
        return;
    fprintf(stderr, "%llu %.6s %s %s %.6s key %.6s hops %u reason %d\n",
            (unsigned long long)sl->sim->now, me,
            ev == DHT_OBS_SENT   ? "->"
            : ev == DHT_OBS_RECV ? "<-"
                                 : "XX",
            dht_msg_type_name(m.type), snd, k, m.hops, reason);
}

static int new_slot(struct sim *s, unsigned *out)
{
    struct slot *sl;
    struct dht_node_ops ops;
    struct dht_config nc = s->ncfg;
    struct dht_addr addr;
    uint8_t seed[32];

    if (s->n_slots == s->cap_slots) {
        unsigned n = s->cap_slots ? s->cap_slots * 2 : 256;
        struct slot **p = realloc(s->slots, n * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        s->slots = p;
        s->cap_slots = n;
    }
    sl = calloc(1, sizeof(*sl));
    if (sl == NULL)
        return -ENOMEM;
    sl->sim = s;
    sl->idx = s->n_slots;
    sl->sched = UINT64_MAX;
    for (unsigned i = 0; i < 32; i += 8) {
        uint64_t r = rnd(s);
        memcpy(seed + i, &r, 8);
    }
    crypto_sign_seed_keypair(sl->pk, sl->sk, seed);
    dht_id_hash(&sl->id, sl->pk, sizeof(sl->pk));
    if (dht_store_new(&sl->store, NULL) != 0) {
        free(sl);
        return -ENOMEM;
    }
    memset(&ops, 0, sizeof(ops));
    ops.send = net_send;
    ops.observe = getenv("P2P_SIM_TRACE") != NULL ? trace_obs : s->slow_ms ? slow_obs : NULL;
    ops.arg = sl;
    nc.seed = rnd(s);
    addr_of(sl->idx, &addr);
    if (dht_node_new(&sl->node, sl->pk, &addr, &nc, sl->store, &ops, s->now) != 0) {
        dht_store_free(sl->store);
        free(sl);
        return -ENOMEM;
    }
    sl->alive = true;
    s->slots[s->n_slots] = sl;
    *out = s->n_slots++;
    return 0;
}

static unsigned random_live(struct sim *s)
{
    return s->live[rnd(s) % s->n_live].slot;
}

static double exp_session(struct sim *s)
{
    double mean = s->cfg.median_session_s / log(2.0);
    return -mean * log(1.0 - rnd_unit(s));
}

static void on_joined(int status, void *arg);

static void start_join(struct sim *s, unsigned i)
{
    struct slot *sl = s->slots[i];
    struct dht_peer bs;
    unsigned via;

    if (!sl->alive || sl->joined)
        return;
    if (s->n_live == 0) {
        if (dht_node_join(sl->node, NULL, on_joined, sl, s->now) == 0)
            sl->joining = true;
    } else {
        via = random_live(s);
        bs.id = s->slots[via]->id;
        addr_of(via, &bs.addr);
        if (dht_node_join(sl->node, &bs, on_joined, sl, s->now) == 0)
            sl->joining = true;
    }
    sched(s, i, s->now);
}

static void on_joined(int status, void *arg)
{
    struct slot *sl = arg;
    struct sim *s = sl->sim;

    sl->joining = false;
    if (status != 0) {
        push_simple(s, s->now + 1000, EV_START_JOIN, sl->idx);
        return;
    }
    sl->joined = true;
    sl->join_t = s->now;
    s->res.joins++;
    live_add(s, sl->idx);
}

static void kill_slot(struct sim *s, unsigned i)
{
    struct slot *sl = s->slots[i];

    if (!sl->alive)
        return;
    if (sl->joined)
        live_remove(s, i);
    sl->alive = false;
    sl->joined = false;
    sl->death_t = s->now;
    dht_node_free(sl->node);
    dht_store_free(sl->store);
    sl->node = NULL;
    sl->store = NULL;
    s->res.deaths++;
}

/* A new node with a fresh ID, its session starting now. */
static void spawn(struct sim *s, uint64_t at)
{
    unsigned i;

    if (new_slot(s, &i) != 0)
        return;
    push_simple(s, at, EV_START_JOIN, i);
    if (s->cfg.median_session_s > 0) {
        uint64_t start = at > s->win_start ? at : s->win_start;
        push_simple(s, start + (uint64_t)(exp_session(s) * 1000.0), EV_DEATH, i);
    }
}

/* ---- workload ------------------------------------------------------------------ */

/* P2P_SIM_DEBUG: a node's leaf set against the truth, IDs cut to 4 hex digits. */
static void debug_leafset(const struct sim *s, const struct slot *sl)
{
    const struct dht_route *rt = dht_node_route(sl->node);
    unsigned p = live_pos(s, &sl->id), n = s->n_live;

    fprintf(stderr, "  %02x%02x succs:", sl->id.b[0], sl->id.b[1]);
    for (unsigned q = 0; q < rt->n_succs; q++)
        fprintf(stderr, " %02x%02x", rt->pool[rt->succs[q]].peer.id.b[0],
                rt->pool[rt->succs[q]].peer.id.b[1]);
    fprintf(stderr, " (true:");
    for (unsigned q = 1; q <= rt->leaf_half && q < n; q++)
        fprintf(stderr, " %02x%02x", s->live[(p + q) % n].id.b[0], s->live[(p + q) % n].id.b[1]);
    fprintf(stderr, ") preds:");
    for (unsigned q = 0; q < rt->n_preds; q++)
        fprintf(stderr, " %02x%02x", rt->pool[rt->preds[q]].peer.id.b[0],
                rt->pool[rt->preds[q]].peer.id.b[1]);
    fprintf(stderr, " (true:");
    for (unsigned q = 1; q <= rt->leaf_half && q < n; q++)
        fprintf(stderr, " %02x%02x", s->live[(p + n - q) % n].id.b[0],
                s->live[(p + n - q) % n].id.b[1]);
    fprintf(stderr, ")\n");
}

/*
 * The answer came from a node that died while its reply was in flight: it was the
 * right answer when given if that node was closer to the key than today's truth.
 */
static bool died_as_root(const struct sim *s, const struct dht_id *key, const struct dht_peer *root,
                         const struct dht_id *truth)
{
    for (unsigned p = s->n_slots; p-- > 0;) {
        const struct slot *sl = s->slots[p];
        if (dht_id_eq(&sl->id, &root->id))
            return !sl->alive && s->now - sl->death_t <= 1000 && truth != NULL &&
                   dht_id_closer(key, &root->id, truth) < 0;
    }
    return false;
}

/* cfg.csv_path: kind,t0_ms,latency_ms,status,n,origin (n: hops for a lookup,
 * replica acks for a put, records for a get); times are simulated ms. */
static void csv_row(struct sim *s, const char *kind, uint64_t t0, unsigned origin, int status,
                    unsigned n)
{
    if (s->csv != NULL)
        fprintf(s->csv, "%s,%llu,%llu,%d,%u,%u\n", kind, (unsigned long long)t0,
                (unsigned long long)(s->now - t0), status, n, origin);
}

static void on_lookup(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    struct lookup_ctx *c = arg;
    struct sim *s = c->sim;
    struct group *g = &s->groups[c->group];
    const struct dht_id *truth;

    s->res.lookups++;
    g->done++;
    s->lat[s->n_lat++] = (double)(s->now - c->t0);
    csv_row(s, "lookup", c->t0, c->origin, status, hops);
    if (s->slow_ms > 0 && s->now - c->t0 >= s->slow_ms)
        tr_explain(s, "lookup", &g->key, c->t0, c->origin, status);
    if (status == 0) {
        s->res.lookups_ok++;
        s->hops[s->n_hops++] = hops;
        truth = truth_root(s, &g->key);
        if (truth != NULL &&
            (dht_id_eq(truth, &root->id) || died_as_root(s, &g->key, root, truth))) {
            s->res.lookups_correct++;
        } else if (s->debug) {
            char a[41], b[41], k[41];
            unsigned gp = live_pos(s, &root->id) % s->n_live;
            dht_id_to_hex(&g->key, k);
            dht_id_to_hex(&root->id, a);
            dht_id_to_hex(truth, b);
            fprintf(stderr, "wrong root t=%llu key %s got %s want %s hops %u\n",
                    (unsigned long long)s->now, k, a, b, hops);
            for (unsigned p = 0; p < s->n_slots; p++) {
                const struct slot *x = s->slots[p];
                if (dht_id_eq(&x->id, &root->id) || dht_id_eq(&x->id, truth))
                    fprintf(stderr, "  %02x%02x: slot %u %s, joined %d (at %llu), died at %llu\n",
                            x->id.b[0], x->id.b[1], p, x->alive ? "alive" : "dead", x->joined,
                            (unsigned long long)x->join_t, (unsigned long long)x->death_t);
            }
            debug_leafset(s, s->slots[s->live[gp].slot]);
        }
        if (g->ok == 0)
            g->root = root->id;
        else if (!dht_id_eq(&g->root, &root->id))
            g->agree = false;
        g->ok++;
    } else {
        g->agree = false;
        if (s->debug) {
            char k[41];
            dht_id_to_hex(&g->key, k);
            fprintf(stderr, "fail t=%llu t0=%llu key %s status %d\n", (unsigned long long)s->now,
                    (unsigned long long)c->t0, k, status);
        }
    }
}

static void do_lookup_group(struct sim *s, unsigned gi)
{
    struct group *g = &s->groups[gi];

    for (unsigned b = 0; b < DHT_ID_LEN; b++)
        g->key.b[b] = (uint8_t)rnd(s);
    g->agree = true;
    if (s->n_live == 0)
        return;
    for (unsigned k = 0; k < s->cfg.lookup_group && s->n_lk < s->cfg.lookups; k++) {
        unsigned i = random_live(s);
        struct lookup_ctx *c = &s->lk[s->n_lk];
        c->sim = s;
        c->group = gi;
        c->origin = i;
        c->t0 = s->now;
        if (dht_node_lookup(s->slots[i]->node, &g->key, on_lookup, c, s->now) == 0) {
            s->n_lk++;
            g->issued++;
        }
        sched(s, i, s->now);
    }
}

static void on_put(int status, unsigned acks, void *arg)
{
    struct put_ctx *p = arg;
    struct sim *s = p->sim;

    p->done = true;
    s->res.puts++; /* counted when answered: a put whose origin died has no verdict */
    s->put_lat[s->n_put_lat++] = (double)(s->now - p->t0);
    csv_row(s, "put", p->t0, p->origin, status, acks);
    if (s->slow_ms > 0 && s->now - p->t0 >= s->slow_ms)
        tr_explain(s, "put", &p->key, p->t0, p->origin, status);
    if (status == 0) {
        p->ok = true;
        s->res.puts_ok++;
    } else if (s->debug) {
        char k[41];
        dht_id_to_hex(&p->key, k);
        fprintf(stderr, "put failed t=%llu t0=%llu key %s status %d acks %u\n",
                (unsigned long long)s->now, (unsigned long long)p->t0, k, status, acks);
    }
}

static void do_put(struct sim *s, unsigned idx)
{
    struct put_ctx *p = &s->puts[idx];
    struct dht_record rec;
    uint8_t pk[32], seed[32], value[32];
    unsigned i;

    if (s->n_live == 0)
        return;
    memset(&rec, 0, sizeof(rec));
    for (unsigned b = 0; b < 32; b += 8) {
        uint64_t r = rnd(s);
        memcpy(seed + b, &r, 8);
    }
    crypto_sign_seed_keypair(pk, p->owner_sk, seed);
    for (unsigned b = 0; b < DHT_ID_LEN; b++) {
        rec.key.b[b] = (uint8_t)rnd(s);
        rec.value_id.b[b] = (uint8_t)rnd(s);
    }
    for (unsigned b = 0; b < sizeof(value); b++)
        value[b] = (uint8_t)rnd(s);
    rec.seq = 1;
    rec.expiry_ms = s->now + 3600 * 1000;
    rec.value = value;
    rec.value_len = sizeof(value);
    if (dht_record_sign(&rec, p->owner_sk) != 0)
        return;
    p->sim = s;
    p->key = rec.key;
    p->vid = rec.value_id;
    p->seq = rec.seq;
    p->t0 = s->now;
    i = random_live(s);
    p->origin = i;
    if (dht_node_put(s->slots[i]->node, &rec, on_put, p, s->now) != 0)
        p->done = true;
    sched(s, i, s->now);
}

static void on_get(int status, const struct dht_record *recs, size_t n, void *arg)
{
    struct get_ctx *g = arg;
    struct sim *s = g->sim;
    const struct put_ctx *p = &s->puts[g->put];

    s->res.gets++; /* counted when answered, as puts */
    csv_row(s, "get", g->t0, g->origin, status, (unsigned)n);
    for (size_t k = 0; status == 0 && k < n; k++)
        if (dht_id_eq(&recs[k].value_id, &p->vid) && recs[k].seq >= p->seq) {
            s->res.gets_ok++;
            return;
        }
    if (s->debug) {
        char hx[41];
        dht_id_to_hex(&p->key, hx);
        fprintf(stderr, "get failed t=%llu key %s status %d records %zu\n",
                (unsigned long long)s->now, hx, status, n);
    }
}

static void do_gets(struct sim *s)
{
    for (unsigned k = 0; k < s->cfg.puts; k++) {
        unsigned i;
        if (!s->puts[k].ok || s->n_live == 0)
            continue;
        s->gets[k].sim = s;
        s->gets[k].put = k;
        i = random_live(s);
        s->gets[k].origin = i;
        s->gets[k].t0 = s->now;
        (void)dht_node_get(s->slots[i]->node, &s->puts[k].key, on_get, &s->gets[k], s->now);
        sched(s, i, s->now);
    }
}

static bool leafsets_correct(const struct sim *s)
{
    unsigned L = s->ncfg.leaf_half, n = s->n_live;
    unsigned want = n - 1 < L ? n - 1 : L;

    for (unsigned p = 0; p < n; p++) {
        const struct slot *sl = s->slots[s->live[p].slot];
        const struct dht_route *rt = dht_node_route(sl->node);
        bool ok = rt->n_succs == want && rt->n_preds == want;
        for (unsigned k = 0; ok && k < want; k++)
            ok = dht_id_eq(&rt->pool[rt->succs[k]].peer.id, &s->live[(p + 1 + k) % n].id) &&
                 dht_id_eq(&rt->pool[rt->preds[k]].peer.id, &s->live[(p + n - 1 - k) % n].id);
        if (!ok) {
            if (s->debug) {
                fprintf(stderr, "leaf set wrong t=%llu\n", (unsigned long long)s->now);
                debug_leafset(s, sl);
            }
            return false;
        }
    }
    return true;
}

static void do_kill(struct sim *s)
{
    unsigned k = (unsigned)(s->cfg.kill_fraction * s->n_live + 0.5);

    s->kill_t = s->now;
    for (unsigned j = 0; j < k && s->n_live > 1; j++)
        kill_slot(s, random_live(s));
    push_simple(s, s->now + 2000, EV_GETS, 0);
    push_simple(s, s->now + 250, EV_REPAIR_CHECK, 0);
}

/* ---- main loop ------------------------------------------------------------------ */

static void run_event(struct sim *s, struct ev *e)
{
    struct slot *sl = e->kind == EV_DELIVER || e->kind == EV_TIMER || e->kind == EV_DEATH ||
                              e->kind == EV_START_JOIN
                          ? s->slots[e->slot]
                          : NULL;
    struct dht_addr from;

    switch (e->kind) {
    case EV_DELIVER:
        if (!sl->alive)
            tr_note(s, TR_DEAD, e->slot, e->from, e->buf, e->len);
        if (sl->alive) {
            addr_of(e->from, &from);
            (void)dht_node_recv(sl->node, &from, e->buf, e->len, s->now);
            sched(s, e->slot, s->now);
        }
        break;
    case EV_TIMER:
        if (sl->alive && sl->sched == e->t) {
            sl->sched = UINT64_MAX;
            dht_node_advance(sl->node, s->now);
            sched(s, e->slot, s->now + 1);
        }
        break;
    case EV_DEATH:
        if (sl->alive && s->now < s->win_end) {
            kill_slot(s, e->slot);
            spawn(s, s->now);
        }
        break;
    case EV_START_JOIN:
        start_join(s, e->slot);
        break;
    case EV_LOOKUP:
        do_lookup_group(s, e->slot);
        break;
    case EV_PUT:
        do_put(s, e->slot);
        break;
    case EV_GETS:
        do_gets(s);
        break;
    case EV_KILL:
        do_kill(s);
        break;
    case EV_REPAIR_CHECK:
        if (leafsets_correct(s)) {
            s->res.repair_time_s = (double)(s->now - s->kill_t) / 1000.0;
            s->repaired = true;
        } else if (s->now < s->win_end) {
            push_simple(s, s->now + 250, EV_REPAIR_CHECK, 0);
        }
        break;
    default:
        break;
    }
    free(e->buf);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double q)
{
    size_t i;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(double), cmp_double);
    i = (size_t)ceil(q * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return v[i];
}

void sim_config_init(struct sim_config *c)
{
    memset(c, 0, sizeof(*c));
    c->nodes = 100;
    c->seed = 1;
    c->duration_s = 120;
    c->settle_s = 30;
    c->lookup_group = 4;
    c->latency_ms = 50;
    c->kill_at_s = 30;
}

static int setup(struct sim *s, const struct sim_config *cfg)
{
    uint64_t gap, t;
    double put_window, lk_window;

    s->cfg = *cfg;
    if (cfg->nodes == 0 || cfg->duration_s <= 0 || cfg->lookup_group == 0 || cfg->loss < 0 ||
        cfg->loss >= 1 || cfg->kill_fraction < 0 || cfg->kill_fraction >= 1)
        return -EINVAL;
    dht_config_init(&s->ncfg);
    if (cfg->leaf_half)
        s->ncfg.leaf_half = cfg->leaf_half;
    if (cfg->replicas)
        s->ncfg.replicas = cfg->replicas;
    if (cfg->quorum)
        s->ncfg.quorum = cfg->quorum;
    if (cfg->leaf_ping_ms)
        s->ncfg.leaf_ping_ms = cfg->leaf_ping_ms;
    if (cfg->leafset_ms)
        s->ncfg.leafset_ms = cfg->leafset_ms;
    s->rng = mix(cfg->seed ^ 0x5eed5eed5eedull);
    s->debug = getenv("P2P_SIM_DEBUG") != NULL;
    if (getenv("P2P_SIM_SLOW") != NULL)
        s->slow_ms = strtoull(getenv("P2P_SIM_SLOW"), NULL, 10);
    s->now = 1;
    s->res.repair_time_s = -1;

    gap = cfg->nodes > 200 ? 20 : 100;
    s->win_start = s->now + gap * cfg->nodes + (uint64_t)(cfg->settle_s * 1000);
    s->win_end = s->win_start + (uint64_t)(cfg->duration_s * 1000);

    s->n_groups = (cfg->lookups + cfg->lookup_group - 1) / cfg->lookup_group;
    s->groups = calloc(s->n_groups + 1, sizeof(*s->groups));
    s->lk = calloc(cfg->lookups + 1, sizeof(*s->lk));
    s->lat = calloc(cfg->lookups + 1, sizeof(double));
    s->hops = calloc(cfg->lookups + 1, sizeof(double));
    s->puts = calloc(cfg->puts + 1, sizeof(*s->puts));
    s->put_lat = calloc(cfg->puts + 1, sizeof(double));
    s->gets = calloc(cfg->puts + 1, sizeof(*s->gets));
    if (!s->groups || !s->lk || !s->lat || !s->hops || !s->puts || !s->put_lat || !s->gets)
        return -ENOMEM;

    /* initial joins, one every `gap` ms; sessions start with the window */
    for (unsigned k = 0; k < cfg->nodes; k++) {
        unsigned i;
        if (new_slot(s, &i) != 0)
            return -ENOMEM;
        push_simple(s, s->now + gap * k, EV_START_JOIN, i);
        if (cfg->median_session_s > 0)
            push_simple(s, s->win_start + (uint64_t)(exp_session(s) * 1000.0), EV_DEATH, i);
    }
    /* puts early in the window (before a kill), gets later, lookups throughout */
    put_window = cfg->duration_s * 0.4;
    if (cfg->kill_fraction > 0 && cfg->kill_at_s - 5 < put_window)
        put_window = cfg->kill_at_s - 5 > 1 ? cfg->kill_at_s - 5 : 1;
    for (unsigned k = 0; k < cfg->puts; k++) {
        t = s->win_start + 1000 + (uint64_t)(put_window * 1000.0 * k / cfg->puts);
        push_simple(s, t, EV_PUT, k);
    }
    lk_window = cfg->duration_s - 10 > 1 ? cfg->duration_s - 10 : 1;
    for (unsigned g = 0; g < s->n_groups; g++) {
        t = s->win_start + (uint64_t)(lk_window * 1000.0 * g / s->n_groups);
        push_simple(s, t, EV_LOOKUP, g);
    }
    if (cfg->kill_fraction > 0)
        push_simple(s, s->win_start + (uint64_t)(cfg->kill_at_s * 1000), EV_KILL, 0);
    else if (cfg->puts > 0)
        push_simple(s, s->win_start + (uint64_t)(cfg->duration_s * 800), EV_GETS, 0);
    return 0;
}

static void finish(struct sim *s)
{
    struct sim_result *r = &s->res;

    s->now = s->win_end;
    nodesec_update(s);
    r->nodes_final = s->n_live;
    r->leafsets_correct = leafsets_correct(s);
    r->lookup_success = r->lookups ? (double)r->lookups_correct / (double)r->lookups : 0;
    for (unsigned g = 0; g < s->n_groups; g++) {
        if (s->groups[g].issued == 0 || s->groups[g].done < s->groups[g].issued)
            continue; /* an origin died before its answer came */
        r->groups++;
        if (s->groups[g].agree && s->groups[g].ok == s->groups[g].issued)
            r->groups_consistent++;
    }
    r->consistency = r->groups ? (double)r->groups_consistent / (double)r->groups : 0;
    for (size_t i = 0; i < s->n_hops; i++)
        r->hops_mean += s->hops[i];
    r->hops_mean = s->n_hops ? r->hops_mean / (double)s->n_hops : 0;
    r->hops_p99 = pct(s->hops, s->n_hops, 0.99);
    r->lookup_p50_ms = pct(s->lat, s->n_lat, 0.50);
    r->lookup_p99_ms = pct(s->lat, s->n_lat, 0.99);
    r->put_p50_ms = pct(s->put_lat, s->n_put_lat, 0.50);
    r->put_p99_ms = pct(s->put_lat, s->n_put_lat, 0.99);
    r->get_success = r->gets ? (double)r->gets_ok / (double)r->gets : 0;
    for (unsigned k = 0; k < s->cfg.puts; k++) {
        bool held = false;
        if (!s->puts[k].ok)
            continue;
        r->records_stored++;
        for (unsigned p = 0; p < s->n_slots && !held; p++) {
            struct dht_record rec;
            const struct slot *sl = s->slots[p];
            if (sl->alive &&
                dht_store_find(sl->store, &s->puts[k].key, &s->puts[k].vid, s->now, &rec) == 0)
                held = true;
        }
        if (!held) {
            r->records_lost++;
            if (s->debug) {
                char hx[41];
                dht_id_to_hex(&s->puts[k].key, hx);
                fprintf(stderr, "lost %s put at %llu\n", hx, (unsigned long long)s->puts[k].t0);
            }
        }
    }
    r->maint_bytes_per_node_s = s->nodesec > 0 ? (double)s->maint_bytes / s->nodesec : 0;
    r->bytes_per_node_s = s->nodesec > 0 ? (double)s->all_bytes / s->nodesec : 0;
    if (s->cfg.kill_fraction > 0 && !s->repaired)
        r->repair_time_s = -2;
    for (unsigned p = 0; p < s->n_slots; p++) {
        const struct slot *sl = s->slots[p];
        if (sl->alive) {
            size_t m = dht_node_memory(sl->node);
            if (m > r->mem_per_node_max)
                r->mem_per_node_max = m;
            r->dropped_malformed += dht_node_counters(sl->node)->dropped_malformed;
        }
    }
}

static void teardown(struct sim *s)
{
    for (size_t i = 0; i < s->n_heap; i++)
        free(s->heap[i].buf);
    free(s->heap);
    for (unsigned p = 0; p < s->n_slots; p++) {
        if (s->slots[p]->alive) {
            dht_node_free(s->slots[p]->node);
            dht_store_free(s->slots[p]->store);
        }
        free(s->slots[p]);
    }
    free(s->slots);
    free(s->live);
    free(s->groups);
    free(s->lk);
    free(s->lat);
    free(s->hops);
    free(s->puts);
    free(s->put_lat);
    free(s->gets);
    free(s->tr);
}

int sim_run(const struct sim_config *cfg, struct sim_result *out, FILE *table)
{
    struct sim *s;
    int rc;

    if (sodium_init() < 0)
        return -ENOMEM;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    rc = setup(s, cfg);
    if (rc == 0 && cfg->csv_path != NULL) {
        s->csv = fopen(cfg->csv_path, "w");
        if (s->csv == NULL)
            rc = -errno;
        else
            fputs("kind,t0_ms,latency_ms,status,n,origin\n", s->csv);
    }
    if (rc == 0) {
        while (s->n_heap > 0 && s->heap[0].t <= s->win_end) {
            struct ev e = pop(s);
            s->now = e.t;
            s->res.events++;
            run_event(s, &e);
        }
        finish(s);
        *out = s->res;
        if (table != NULL) {
            const struct sim_result *r = &s->res;
            fprintf(table, "%-34s %u (final %u, joins %u, deaths %u)\n", "nodes", cfg->nodes,
                    r->nodes_final, r->joins, r->deaths);
            fprintf(table, "%-34s %llu issued, %.4f reach the true root\n", "lookups",
                    (unsigned long long)r->lookups, r->lookup_success);
            fprintf(table, "%-34s %.4f of %llu groups\n", "consistency", r->consistency,
                    (unsigned long long)r->groups);
            fprintf(table, "%-34s mean %.2f, p99 %.0f\n", "hops", r->hops_mean, r->hops_p99);
            fprintf(table, "%-34s p50 %.0f ms, p99 %.0f ms\n", "lookup latency", r->lookup_p50_ms,
                    r->lookup_p99_ms);
            fprintf(table, "%-34s %llu of %llu; p50 %.0f ms, p99 %.0f ms\n", "puts ok",
                    (unsigned long long)r->puts_ok, (unsigned long long)r->puts, r->put_p50_ms,
                    r->put_p99_ms);
            fprintf(table, "%-34s %llu of %llu (%.4f)\n", "gets ok", (unsigned long long)r->gets_ok,
                    (unsigned long long)r->gets, r->get_success);
            fprintf(table, "%-34s %llu of %llu\n", "records lost",
                    (unsigned long long)r->records_lost, (unsigned long long)r->records_stored);
            fprintf(table, "%-34s %.1f (all traffic %.1f)\n", "maintenance bytes/s per node",
                    r->maint_bytes_per_node_s, r->bytes_per_node_s);
            fprintf(table, "%-34s %.2f s\n", "repair after mass failure", r->repair_time_s);
            fprintf(table, "%-34s %zu bytes\n", "node state (max)", r->mem_per_node_max);
            fprintf(table, "%-34s %llu events, %llu messages\n", "simulation",
                    (unsigned long long)r->events, (unsigned long long)r->messages);
        }
    }
    if (s->csv != NULL && fclose(s->csv) != 0 && rc == 0)
        rc = -EIO;
    teardown(s);
    free(s);
    return rc;
}

void sim_result_json(const struct sim_config *c, const struct sim_result *r, FILE *f)
{
    fprintf(f,
            "{\"nodes\":%u,\"seed\":%llu,\"duration_s\":%.1f,\"median_session_s\":%.1f,"
            "\"kill_fraction\":%.3f,\"loss\":%.4f,\"latency_ms\":%.1f,"
            "\"joins\":%u,\"deaths\":%u,\"nodes_final\":%u,"
            "\"lookups\":%llu,\"lookup_success\":%.6f,\"consistency\":%.6f,\"groups\":%llu,"
            "\"hops_mean\":%.3f,\"hops_p99\":%.0f,\"lookup_p50_ms\":%.1f,\"lookup_p99_ms\":%.1f,"
            "\"puts\":%llu,\"puts_ok\":%llu,\"put_p50_ms\":%.1f,\"put_p99_ms\":%.1f,"
            "\"gets\":%llu,\"get_success\":%.6f,\"records_stored\":%llu,\"records_lost\":%llu,"
            "\"maint_bytes_per_node_s\":%.1f,\"bytes_per_node_s\":%.1f,\"repair_time_s\":%.2f,"
            "\"mem_per_node_max\":%zu,"
            "\"events\":%llu,\"messages\":%llu,\"dropped_malformed\":%llu,\"leafsets_correct\":%s}",
            c->nodes, (unsigned long long)c->seed, c->duration_s, c->median_session_s,
            c->kill_fraction, c->loss, c->latency_ms, r->joins, r->deaths, r->nodes_final,
            (unsigned long long)r->lookups, r->lookup_success, r->consistency,
            (unsigned long long)r->groups, r->hops_mean, r->hops_p99, r->lookup_p50_ms,
            r->lookup_p99_ms, (unsigned long long)r->puts, (unsigned long long)r->puts_ok,
            r->put_p50_ms, r->put_p99_ms, (unsigned long long)r->gets, r->get_success,
            (unsigned long long)r->records_stored, (unsigned long long)r->records_lost,
            r->maint_bytes_per_node_s, r->bytes_per_node_s, r->repair_time_s, r->mem_per_node_max,
            (unsigned long long)r->events, (unsigned long long)r->messages,
            (unsigned long long)r->dropped_malformed, r->leafsets_correct ? "true" : "false");
}
