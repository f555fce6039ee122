/*
 * node.c: the overlay node's sockets, secure channels, inner messages and DHT glue
 * (overlay_node.h; roles in node_roles.c, discovery in node_disc.c).
 *
 * Design.  One receive buffer serves every socket.  A received datagram is first
 * peeked (overlay_secure.h): handshake frames drive a channel's state, DATA frames are
 * found by their receiver index and opened, DISCOVER frames go to discovery or to a
 * reachability probe.  An opened DATA frame's plaintext is one inner message
 * (node_int.h enum inner_kind).  Sending to a peer seals one inner message on the
 * peer's newest established channel; while none is up, the message waits in the
 * peer's small queue and a handshake is started (HS1 retransmitted with backoff, the
 * queue dropped when it fails; the DHT's own retransmissions take over from there).
 * The initiator of a channel repeats HS3 in front of its DATA until the responder
 * has sent DATA back, so a lost HS3 costs one retransmission, not the channel.
 *
 * A DHT message inside a channel must name the channel's authenticated node ID as
 * its sender (docs/DHT-WIRE.md header): anything else is forged, dropped and counted.
 * The DHT's peer address for a message is the channel's current address (the source
 * of the last authentic frame), so a peer that moved is followed at once.
 *
 * Invariants: see node_int.h.  No callback of a user runs inside the call that armed
 * it: completions come from the DHT (which defers them) or from received frames.
 */
#include "node_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "p2p/clock.h"
#include "p2p/dht_msg.h"

const char *overlay_role_name(enum overlay_role role)
{
    switch (role) {
    case OVERLAY_ROLE_SEEKING:
        return "seeking";
    case OVERLAY_ROLE_CLIENT:
        return "client";
    case OVERLAY_ROLE_MEMBER:
        return "member";
    case OVERLAY_ROLE_SUPER:
        return "super-node";
    }
    return "?";
}

void overlay_node_config_init(struct overlay_node_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->port_fallback = true;
    cfg->multicast = false;
    cfg->discovery_port = 7561;
    dht_config_init(&cfg->dht);
    cfg->promote_after_ms = 15000;
    cfg->cutoff_ms = 8000;
    cfg->max_peers = 1024;
    cfg->max_clients = 256;
}

/* ---- addresses ------------------------------------------------------------------- */

uint64_t overlay__now(const struct overlay_node *n)
{
    return uv_now(n->loop);
}

/* ---- peers ------------------------------------------------------------------------- */

int overlay__peer_slot(const struct overlay_node *n, const struct peer *p)
{
    return (int)(p - n->peers);
}

struct peer *overlay__peer_find(struct overlay_node *n, const struct dht_id *id)
{
    for (unsigned i = 0; i < n->n_peers; i++)
        if (n->peers[i].used && n->peers[i].id_known && dht_id_eq(&n->peers[i].id, id))
            return &n->peers[i];
    return NULL;
}

static struct peer *peer_find_addr(struct overlay_node *n, const struct sockaddr_storage *addr)
{
    for (unsigned i = 0; i < n->n_peers; i++)
        if (n->peers[i].used && overlay_addr_eq(&n->peers[i].addr, addr))
            return &n->peers[i];
    return NULL;
}

static void q_clear(struct peer *p)
{
    for (unsigned i = 0; i < p->qn; i++)
        free(p->q[i].buf);
    p->qn = 0;
    p->qbytes = 0;
}

static void chan_free(struct overlay_node *n, int slot);

static void peer_free(struct overlay_node *n, struct peer *p)
{
    int slot = overlay__peer_slot(n, p);

    if (n->super == slot)
        n->super = -1;
    for (unsigned i = 0; i < n->n_chans; i++)
        if (n->chans[i].state != CH_FREE && n->chans[i].peer == slot)
            chan_free(n, (int)i);
    if (p->conn >= 0)
        overlay__conn_close(n, p->conn);
    q_clear(p);
    memset(p, 0, sizeof(*p));
    p->cur = p->prev = p->opening = p->conn = -1;
}

bool overlay__peer_up(const struct overlay_node *n, const struct peer *p)
{
    return p->cur >= 0 && n->chans[p->cur].state == CH_UP;
}

/* The least useful peer to make room for a new one: not our super, not a client,
 * quiet the longest. */
static struct peer *peer_victim(struct overlay_node *n)
{
    struct peer *best = NULL;

    for (unsigned i = 0; i < n->n_peers; i++) {
        struct peer *p = &n->peers[i];
        uint64_t t = p->last_recv > p->last_send ? p->last_recv : p->last_send;
        if (!p->used || (int)i == n->super || p->client)
            continue;
        if (best == NULL ||
            t < (best->last_recv > best->last_send ? best->last_recv : best->last_send))
            best = p;
    }
    return best;
}

/* The peer for id (or, when id is NULL or zero, for addr), created if needed. */
struct peer *overlay__peer_get(struct overlay_node *n, const struct dht_id *id,
                               const struct sockaddr_storage *addr)
{
    struct peer *p = NULL;
    bool known = id != NULL && !dht_id_is_zero(id);

    if (known && dht_id_eq(id, &n->me->id))
        return NULL;
    if (known)
        p = overlay__peer_find(n, id);
    if (p == NULL && addr != NULL)
        p = peer_find_addr(n, addr);
    if (p != NULL && known && p->id_known && !dht_id_eq(&p->id, id))
        p = NULL; /* that address now belongs to another node: a new entry */
    if (p != NULL) {
        if (known && !p->id_known) {
            p->id = *id;
            p->id_known = true;
        }
        return p;
    }
    if (addr == NULL)
        return NULL;
    for (unsigned i = 0; i < n->n_peers && p == NULL; i++)
        if (!n->peers[i].used)
            p = &n->peers[i];
    if (p == NULL) {
        p = peer_victim(n);
        if (p == NULL) {
            n->st.dropped_full++;
            return NULL;
        }
        peer_free(n, p);
    }
    memset(p, 0, sizeof(*p));
    p->used = true;
    p->cur = p->prev = p->opening = p->conn = -1;
    p->addr = *addr;
    p->created = overlay__now(n);
    if (known) {
        p->id = *id;
        p->id_known = true;
    }
    return p;
}

/* ---- channels ----------------------------------------------------------------------- */

static int chan_alloc(struct overlay_node *n)
{
    for (unsigned i = 0; i < n->n_chans; i++) {
        if (n->chans[i].state == CH_FREE) {
            struct chan *c = &n->chans[i];
            uint32_t r = randombytes_uniform(0xffff) + 1;
            memset(c, 0, sizeof(*c));
            c->peer = -1;
            c->local_index = r << 16 | i;
            return (int)i;
        }
    }
    return -1;
}

static void chan_free(struct overlay_node *n, int slot)
{
    struct chan *c = &n->chans[slot];

    if (c->state == CH_RESP && n->half_open > 0)
        n->half_open--;
    if (c->peer >= 0) {
        struct peer *p = &n->peers[c->peer];
        if (p->cur == slot)
            p->cur = -1;
        if (p->prev == slot)
            p->prev = -1;
        if (p->opening == slot)
            p->opening = -1;
        if (p->cur < 0 && p->prev >= 0) {
            p->cur = p->prev;
            p->prev = -1;
        }
    }
    ovl_hs_wipe(&c->hs);
    ovl_session_wipe(&c->sess);
    free(c->hs_msg);
    memset(c, 0, sizeof(*c));
    c->peer = -1;
}

static struct chan *chan_by_index(struct overlay_node *n, uint32_t index)
{
    unsigned slot = index & 0xffff;

    if (slot >= n->n_chans || n->chans[slot].state == CH_FREE ||
        n->chans[slot].local_index != index)
        return NULL;
    return &n->chans[slot];
}

static int keep_hs_msg(struct chan *c, const uint8_t *buf, size_t len)
{
    uint8_t *copy = malloc(len);

    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, buf, len);
    free(c->hs_msg);
    c->hs_msg = copy;
    c->hs_len = len;
    return 0;
}

/* Starts a handshake to p as initiator, unless one is in flight. */
static void open_channel(struct overlay_node *n, struct peer *p)
{
    struct chan *c;
    int slot, len;

    if (p->opening >= 0)
        return;
    slot = chan_alloc(n);
    if (slot < 0) {
        n->st.dropped_full++;
        return;
    }
    c = &n->chans[slot];
    len = ovl_hs_initiate(&c->hs, n->me, n->cfg.psk, c->local_index, n->frame, sizeof(n->frame));
    if (len < 0 || keep_hs_msg(c, n->frame, (size_t)len) != 0) {
        chan_free(n, slot);
        return;
    }
    c->state = CH_INIT;
    c->initiator = true;
    c->peer = overlay__peer_slot(n, p);
    c->addr = p->addr;
    c->t_start = c->t_sent = overlay__now(n);
    c->tries = 1;
    p->opening = slot;
    n->st.handshakes_started++;
    (void)overlay__send_raw(n, &c->addr, c->hs_msg, c->hs_len, false);
}

/* Our handshake payload: our role flags, the P2P port, and where we see the peer. */
static size_t hs_payload(struct overlay_node *n, const struct sockaddr_storage *peer_addr,
                         uint8_t *out)
{
    struct dht_addr seen = {0};
    size_t k = 0;

    out[k++] = (uint8_t)n->role;
    overlay__put16(out + k, n->port);
    k += 2;
    (void)overlay_addr_to_dht(peer_addr, &seen);
    out[k++] = seen.len;
    memcpy(out + k, seen.b, seen.len);
    k += seen.len;
    return k;
}

static void flush_queue(struct overlay_node *n, struct peer *p);

/* A channel came up for the peer it authenticated. */
static void chan_up(struct overlay_node *n, int slot, const struct ovl_peer_info *info)
{
    struct chan *c = &n->chans[slot];
    struct peer *p = NULL, *tmp = NULL;
    struct ovl_session s;

    if (ovl_hs_split(&c->hs, &s) != 0) {
        n->st.handshakes_failed++;
        chan_free(n, slot);
        return;
    }
    if (c->state == CH_RESP && n->half_open > 0)
        n->half_open--;
    c->sess = s;
    c->state = CH_UP;
    c->t_up = overlay__now(n);
    n->st.handshakes_done++;
    if (dht_id_eq(&info->id, &n->me->id)) {
        /* We reached ourselves (our own address in a bootstrap list). */
        chan_free(n, slot);
        return;
    }
    if (c->peer >= 0)
        tmp = &n->peers[c->peer];
    p = overlay__peer_find(n, &info->id);
    if (tmp != NULL && tmp != p && tmp->id_known && !dht_id_eq(&tmp->id, &info->id)) {
        /* We dialled an address for one node and found another: the one we
         * expected is not there.  Its queued messages were meant for it, not this. */
        q_clear(tmp);
        tmp->opening = -1;
        tmp = NULL;
    }
    if (p == NULL && tmp != NULL && !tmp->id_known) {
        p = tmp; /* a bootstrap address: now we know who it is */
        p->id = info->id;
        p->id_known = true;
        tmp = NULL;
    }
    if (p == NULL)
        p = overlay__peer_get(n, &info->id, &c->addr);
    if (p == NULL) {
        chan_free(n, slot);
        return;
    }
    if (tmp != NULL && tmp != p) {
        /* Messages queued under the bootstrap address move to the real entry. */
        for (unsigned i = 0; i < tmp->qn && p->qn < NODE_Q_MAX; i++) {
            p->q[p->qn++] = tmp->q[i];
            p->qbytes += tmp->q[i].len;
            tmp->q[i].buf = NULL;
        }
        tmp->qn = 0;
        if (tmp->opening == slot)
            tmp->opening = -1;
        c->peer = -1;
        if (tmp->cur < 0 && tmp->opening < 0 && (int)(tmp - n->peers) != n->super)
            peer_free(n, tmp);
    }
    c->peer = overlay__peer_slot(n, p);
    memcpy(p->ed_pk, info->ed_pk, sizeof(p->ed_pk));
    if (p->opening == slot)
        p->opening = -1;
    if (p->prev >= 0 && p->prev != slot)
        chan_free(n, p->prev);
    p->prev = p->cur;
    p->cur = slot;
    p->addr = c->addr;
    p->last_recv = overlay__now(n);
    flush_queue(n, p);
}

/* ---- sending ------------------------------------------------------------------------ */

static void udp_send_cb(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

int overlay__send_raw(struct overlay_node *n, const struct sockaddr_storage *to, const uint8_t *buf,
                      size_t len, bool from_probe)
{
    uv_udp_t *h;
    uv_buf_t b;
    int r;

    if (n->closing)
        return -ECANCELED;
    if (to->ss_family == AF_INET)
        h = from_probe ? (n->have_probe4 ? &n->probe4 : NULL) : (n->have4 ? &n->udp4 : NULL);
    else
        h = from_probe ? (n->have_probe6 ? &n->probe6 : NULL) : (n->have6 ? &n->udp6 : NULL);
    if (h == NULL) {
        n->st.send_errors++;
        return -EAFNOSUPPORT;
    }
    b = uv_buf_init((char *)buf, (unsigned)len);
    r = uv_udp_try_send(h, &b, 1, (const struct sockaddr *)to);
    if (r == UV_EAGAIN) {
        /* The socket buffer is full: queue a copy, bounded by the send queue size. */
        uv_udp_send_t *req;
        if (uv_udp_get_send_queue_size(h) > 4u << 20) {
            n->st.dropped_full++;
            return -ENOBUFS;
        }
        req = malloc(sizeof(*req) + len);
        if (req == NULL)
            return -ENOMEM;
        memcpy(req + 1, buf, len);
        b = uv_buf_init((char *)(req + 1), (unsigned)len);
        r = uv_udp_send(req, h, &b, 1, (const struct sockaddr *)to, udp_send_cb);
        if (r != 0) {
            free(req);
            n->st.send_errors++;
            return r;
        }
        r = (int)len;
    }
    if (r < 0) {
        n->st.send_errors++;
        return r;
    }
    n->st.frames_out++;
    n->st.bytes_out += len;
    return 0;
}

/* Seals one inner message on the peer's current channel and sends it. */
static int seal_send(struct overlay_node *n, struct peer *p, const uint8_t *pt, size_t len)
{
    struct chan *c = &n->chans[p->cur];
    int flen;

    if (c->initiator && !c->confirmed && c->hs_msg != NULL)
        (void)overlay__send_raw(n, &p->addr, c->hs_msg, c->hs_len, false); /* HS3 again */
    flen = ovl_seal(&c->sess, pt, len, n->frame, sizeof(n->frame));
    if (flen < 0)
        return flen;
    p->last_send = overlay__now(n);
    p->frames_out++;
    /* Larger than a datagram: the stream path; UDP when there is none. */
    if ((size_t)flen > NODE_UDP_MAX && overlay__tcp_send(n, p, n->frame, (size_t)flen) == 0)
        return 0;
    return overlay__send_raw(n, &p->addr, n->frame, (size_t)flen, false);
}

static bool chan_usable(const struct overlay_node *n, const struct peer *p)
{
    const struct chan *c;

    if (p->cur < 0)
        return false;
    c = &n->chans[p->cur];
    return c->state == CH_UP && overlay__now(n) - c->t_up < NODE_CHAN_MAX_AGE_MS;
}

int overlay__send_inner(struct overlay_node *n, struct peer *p, uint8_t kind, const uint8_t *body,
                        size_t len)
{
    uint8_t *pt;
    int rc;

    if (len + 1 + OVL_DATA_OVERHEAD > OVL_FRAME_MAX)
        return -EMSGSIZE;
    if (chan_usable(n, p)) {
        n->plain[0] = kind;
        if (len > 0)
            memcpy(n->plain + 1, body, len);
        rc = seal_send(n, p, n->plain, len + 1);
        if (rc != -ESTALE)
            return rc;
    }
    /* No channel yet (or it is too old): queue, and open one. */
    if (p->qn >= NODE_Q_MAX || p->qbytes + len + 1 > NODE_Q_BYTES) {
        n->st.dropped_full++;
        open_channel(n, p);
        return -ENOBUFS;
    }
    pt = malloc(len + 1);
    if (pt == NULL)
        return -ENOMEM;
    pt[0] = kind;
    if (len > 0)
        memcpy(pt + 1, body, len); /* ATTACH and DETACH have no body (NULL) */
    p->q[p->qn].buf = pt;
    p->q[p->qn].len = len + 1;
    p->qn++;
    p->qbytes += len + 1;
    open_channel(n, p);
    return 0;
}

static void flush_queue(struct overlay_node *n, struct peer *p)
{
    for (unsigned i = 0; i < p->qn; i++) {
        if (chan_usable(n, p))
            (void)seal_send(n, p, p->q[i].buf, p->q[i].len);
        free(p->q[i].buf);
    }
    p->qn = 0;
    p->qbytes = 0;
}

/* ---- the DHT ------------------------------------------------------------------------ */

static int dht_send(void *arg, const struct dht_peer *to, const uint8_t *buf, size_t len)
{
    struct overlay_node *n = arg;
    struct sockaddr_storage ss;
    struct peer *p;
    bool has_addr = overlay_addr_from_dht(&to->addr, &ss) == 0;

    p = overlay__peer_get(n, &to->id, has_addr ? &ss : NULL);
    if (p == NULL)
        return -EHOSTUNREACH;
    return overlay__send_inner(n, p, IN_DHT, buf, len);
}

static void dht_observe(void *arg, enum dht_obs_event ev, const struct dht_peer *peer,
                        const uint8_t *buf, size_t len, int reason)
{
    struct overlay_node *n = arg;

    if (n->ops.observe != NULL)
        n->ops.observe(n->ops.arg, ev, peer, buf, len, reason);
}

static void dht_event(void *arg, const struct dht_node_event *ev)
{
    struct overlay_node *n = arg;

    n->ops.event(n->ops.arg, ev);
}

static uint64_t dht_wall(void *arg)
{
    (void)arg;
    return p2p_wall_ms();
}

static void dht_timer_cb(uv_timer_t *h)
{
    struct overlay_node *n = h->data;

    if (n->dht != NULL && !n->closing)
        dht_node_advance(n->dht, overlay__now(n));
    overlay__dht_rearm(n);
}

void overlay__dht_rearm(struct overlay_node *n)
{
    uint64_t due, now;

    if (n->closing || n->dht == NULL)
        return;
    due = dht_node_next_deadline(n->dht);
    now = overlay__now(n);
    if (due == UINT64_MAX) {
        (void)uv_timer_stop(&n->dht_timer);
        return;
    }
    (void)uv_timer_start(&n->dht_timer, dht_timer_cb, due > now ? due - now : 0, 0);
}

/* Ends our DHT node: its pending callbacks run with -ECANCELED now; the memory goes
 * on the next tick, since this may run inside one of its callbacks. */
void overlay__dht_discard(struct overlay_node *n)
{
    struct dht_node *d = n->dht;

    if (d == NULL)
        return;
    n->dht = NULL;
    (void)uv_timer_stop(&n->dht_timer);
    dht_node_close(d);
    dht_node_free(n->dht_old);
    n->dht_old = d;
}

int overlay__dht_create(struct overlay_node *n)
{
    struct dht_node_ops ops;
    struct dht_config cfg = n->cfg.dht;
    int rc;

    if (n->dht != NULL)
        return 0;
    memset(&ops, 0, sizeof(ops));
    ops.send = dht_send;
    ops.observe = dht_observe;
    if (n->ops.event != NULL)
        ops.event = dht_event;
    ops.arg = n;
    cfg.cutoff_ms = n->cfg.cutoff_ms;
    /* A live leaf must be heard well within the cutoff, or a healthy node calls itself
     * cut off: a short cutoff (the configuration allows 2 s) pings leaves sooner.  The
     * default (cutoff 8 s) keeps the 5 s period, and its traffic. */
    if (cfg.leaf_ping_ms + 2000 > cfg.cutoff_ms)
        cfg.leaf_ping_ms = cfg.cutoff_ms > 3000 ? cfg.cutoff_ms - 2000 : 1000;
    cfg.seed ^= (uint64_t)randombytes_random() << 32 | randombytes_random();
    rc = dht_node_new(&n->dht, n->me->ed_pk, &n->advertised, &cfg, n->cfg.store, &ops,
                      overlay__now(n));
    if (rc == 0)
        dht_node_set_wall_clock(n->dht, dht_wall, n); /* record expiry is Unix time */
    return rc;
}

/* ---- receiving ---------------------------------------------------------------------- */

static void on_dht_inner(struct overlay_node *n, struct peer *p, const uint8_t *buf, size_t len)
{
    struct dht_addr from;

    if (len < DHT_MSG_HEADER_LEN || memcmp(buf + DHT_MSG_OFF_SENDER, p->id.b, DHT_ID_LEN) != 0) {
        /* The header must name the node that authenticated this channel. */
        n->st.dropped_forged++;
        return;
    }
    if (n->dht == NULL) {
        n->st.dropped_inner++; /* not a member: a DHT message is not for us */
        return;
    }
    if (overlay_addr_to_dht(&p->addr, &from) != 0)
        return;
    (void)dht_node_recv(n->dht, &from, buf, len, overlay__now(n));
    overlay__dht_rearm(n);
}

static int pipe_forward(struct overlay_node *n, const struct dht_id *hop, const uint8_t *body,
                        size_t len);

static void on_pipe_inner(struct overlay_node *n, struct peer *p, const uint8_t *buf, size_t len)
{
    struct dht_id to, from;
    struct peer *q;

    if (len < 42) {
        n->st.dropped_inner++;
        return;
    }
    memcpy(to.b, buf, DHT_ID_LEN);
    memcpy(from.b, buf + DHT_ID_LEN, DHT_ID_LEN);
    if (dht_id_eq(&to, &n->me->id)) {
        /* Straight from its sender, or relayed: then the relay vouches for `from`,
         * and says so to the application. */
        if (p->client && !dht_id_eq(&from, &p->id)) {
            n->st.dropped_forged++; /* a client may only speak for itself */
            return;
        }
        n->st.pipe_recv++;
        if (n->ops.pipe != NULL)
            n->ops.pipe(n->ops.arg, &from, dht_id_eq(&from, &p->id) ? NULL : &p->id,
                        overlay__get16(buf + 40), buf + 42, len - 42);
        return;
    }
    /* Relay: only what a peer says in its own name, and only to or from our clients. */
    if (!dht_id_eq(&from, &p->id)) {
        n->st.dropped_forged++;
        return;
    }
    q = overlay__peer_find(n, &to);
    if (!p->client && (q == NULL || !q->client)) {
        n->st.dropped_inner++;
        return;
    }
    n->st.relayed++;
    (void)pipe_forward(n, &to, buf, len);
}

/* ---- pipes: next hops found by a DHT lookup ---------------------------------------- */

static void pipe_wait_free(struct pipe_wait *w)
{
    free(w->body);
    memset(w, 0, sizeof(*w));
}

static void pipe_lookup_done(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    struct overlay_node *n = arg;
    struct dht_id target;
    struct sockaddr_storage ss;
    struct peer *p = NULL;
    bool found = false;

    (void)hops;
    /* Every waiting datagram for the node this lookup found goes now; a lookup that
     * ended on another node means the target is not in the ring (yet). */
    for (unsigned i = 0; i < NODE_PIPE_WAIT_MAX && !found; i++)
        if (n->pipe_wait[i].used && status == 0 && dht_id_eq(&n->pipe_wait[i].target, &root->id))
            found = true;
    if (!found)
        return; /* the deadline sweeps what waited */
    target = root->id;
    if (overlay_addr_from_dht(&root->addr, &ss) == 0)
        p = overlay__peer_get(n, &target, &ss);
    for (unsigned i = 0; i < NODE_PIPE_WAIT_MAX; i++) {
        struct pipe_wait *w = &n->pipe_wait[i];
        if (!w->used || !dht_id_eq(&w->target, &target))
            continue;
        if (p != NULL && overlay__send_inner(n, p, IN_PIPE, w->body, w->len) == 0)
            n->st.pipe_sent++;
        pipe_wait_free(w);
    }
}

/* Hands a PIPE body to `hop`: over its channel if we know it, else after a lookup. */
static int pipe_forward(struct overlay_node *n, const struct dht_id *hop, const uint8_t *body,
                        size_t len)
{
    struct peer *p = overlay__peer_find(n, hop);
    struct pipe_wait *w = NULL;
    bool asked = false;

    if (p != NULL) {
        uint64_t now = overlay__now(n);
        /* A peer silent for a while may be gone: ask for a sign of life with this
         * datagram, so that a call to a dead node fails in about a second. */
        if (overlay__peer_up(n, p) && now - p->last_recv > NODE_PIPE_FRESH_MS) {
            if (p->probe_sent == 0) {
                uint8_t ka = 1;
                p->probe_sent = now;
                (void)overlay__send_inner(n, p, IN_KEEPALIVE, &ka, 1);
            }
        }
        return overlay__send_inner(n, p, IN_PIPE, body, len);
    }
    /* Not a known peer: find its address by a lookup of its ID (a member is its own
     * root).  A client asks through its super-node: that is how a phone behind one
     * NAT reaches the super-node of a phone behind another, which relays to it. */
    if ((n->dht == NULL || !dht_node_joined(n->dht)) &&
        !(n->role == OVERLAY_ROLE_CLIENT && n->super >= 0))
        return -EHOSTUNREACH;
    for (unsigned i = 0; i < NODE_PIPE_WAIT_MAX; i++) {
        if (!n->pipe_wait[i].used && w == NULL)
            w = &n->pipe_wait[i];
        else if (n->pipe_wait[i].used && dht_id_eq(&n->pipe_wait[i].target, hop))
            asked = true;
    }
    if (w == NULL) {
        n->st.dropped_full++;
        return -ENOBUFS;
    }
    if (!asked && overlay_node_lookup(n, hop, pipe_lookup_done, n) != 0)
        return -EHOSTUNREACH;
    w->body = malloc(len);
    if (w->body == NULL)
        return -ENOMEM;
    memcpy(w->body, body, len);
    w->len = len;
    w->used = true;
    w->target = *hop;
    w->deadline = overlay__now(n) + n->cfg.dht.request_timeout_ms;
    return 0;
}

/* Drops a peer's channels: the next message to it opens a new one (the peer may have
 * restarted and lost its half). */
void overlay__peer_reset(struct overlay_node *n, struct peer *p)
{
    p->probe_sent = 0;
    while (p->cur >= 0)
        chan_free(n, p->cur);
}

/* A peer stopped answering: its channels go, and the user is told (fast failure). */
void overlay__peer_gone(struct overlay_node *n, struct peer *p)
{
    if (p->id_known) {
        n->dead[n->dead_next].id = p->id;
        n->dead[n->dead_next].until = overlay__now(n) + NODE_DEAD_MS;
        n->dead_next = (n->dead_next + 1) % NODE_DEAD_MAX;
        if (n->ops.unreachable != NULL)
            n->ops.unreachable(n->ops.arg, &p->id);
    }
    p->probe_sent = 0;
    while (p->cur >= 0)
        chan_free(n, p->cur); /* the previous channel moves up, and goes too */
    q_clear(p);
}

bool overlay_node_peer_dead(const struct overlay_node *n, const struct dht_id *id)
{
    uint64_t now = uv_now(n->loop);

    for (unsigned i = 0; i < NODE_DEAD_MAX; i++)
        if (n->dead[i].until > now && dht_id_eq(&n->dead[i].id, id))
            return true;
    return false;
}

static void pipe_tick(struct overlay_node *n, uint64_t now)
{
    for (unsigned i = 0; i < n->n_peers; i++) {
        struct peer *p = &n->peers[i];
        if (!p->used || p->probe_sent == 0)
            continue;
        if (now - p->probe_sent > NODE_PIPE_DEAD_MS)
            overlay__peer_gone(n, p); /* a call waits on it: say so now */
    }
    for (unsigned i = 0; i < NODE_PIPE_WAIT_MAX; i++)
        if (n->pipe_wait[i].used && now >= n->pipe_wait[i].deadline) {
            n->st.dropped_full++;
            pipe_wait_free(&n->pipe_wait[i]);
        }
}

/* A DATA frame, from a UDP source address (from) or a TCP connection (conn >= 0). */
static void on_data(struct overlay_node *n, const struct ovl_frame_info *fi, const uint8_t *buf,
                    size_t len, const struct sockaddr_storage *from, int conn)
{
    struct chan *c = chan_by_index(n, fi->receiver_index);
    struct peer *p;
    int pl;

    if (c == NULL || c->state != CH_UP || c->peer < 0) {
        n->st.dropped_nosession++;
        return;
    }
    pl = ovl_open(&c->sess, buf, len, n->opened, sizeof(n->opened));
    if (pl == -EALREADY) {
        n->st.dropped_replay++;
        return;
    }
    if (pl <= 0) {
        n->st.dropped_auth++;
        return;
    }
    p = &n->peers[c->peer];
    c->confirmed = true;
    p->probe_sent = 0;
    for (unsigned i = 0; i < NODE_DEAD_MAX; i++)
        if (n->dead[i].until != 0 && dht_id_eq(&n->dead[i].id, &p->id))
            n->dead[i].until = 0; /* it is back */
    if (conn >= 0) {
        n->st.tcp_frames_in++;
        overlay__conn_bind(n, conn, c->peer);
    } else if (!overlay_addr_eq(&p->addr, from)) {
        char a[64], b[64];
        p2p_info_rl(n->log, &n->peer_log, overlay__now(n), "overlay: peer moved from %s to %s",
                    overlay_addr_text(&p->addr, a, sizeof(a)),
                    overlay_addr_text(from, b, sizeof(b)));
        p->addr = *from; /* roaming: the authentic source is where the peer is now */
        c->addr = *from;
    }
    p->last_recv = overlay__now(n);
    p->frames_in++;
    switch (n->opened[0]) {
    case IN_DHT:
        on_dht_inner(n, p, n->opened + 1, (size_t)pl - 1);
        break;
    case IN_PIPE:
        on_pipe_inner(n, p, n->opened + 1, (size_t)pl - 1);
        break;
    default:
        overlay__on_inner_ctl(n, p, n->opened[0], n->opened + 1, (size_t)pl - 1);
        break;
    }
}

static void on_hs1(struct overlay_node *n, const struct ovl_frame_info *fi, const uint8_t *buf,
                   size_t len, const struct sockaddr_storage *from)
{
    uint8_t payload[64];
    struct chan *c;
    size_t plen;
    int slot, hlen;

    /* A retransmitted HS1 (our HS2 was lost): answer with the same HS2. */
    for (unsigned i = 0; i < n->n_chans; i++) {
        c = &n->chans[i];
        if (c->state == CH_RESP && c->remote_hs_index == fi->sender_index &&
            overlay_addr_eq(&c->addr, from)) {
            (void)overlay__send_raw(n, from, c->hs_msg, c->hs_len, false);
            return;
        }
    }
    if (n->half_open >= NODE_HALF_OPEN_MAX) {
        /* Make room: the oldest half-open handshake goes. */
        int oldest = -1;
        for (unsigned i = 0; i < n->n_chans; i++)
            if (n->chans[i].state == CH_RESP &&
                (oldest < 0 || n->chans[i].t_start < n->chans[oldest].t_start))
                oldest = (int)i;
        if (oldest >= 0)
            chan_free(n, oldest);
        n->st.dropped_full++;
    }
    slot = chan_alloc(n);
    if (slot < 0) {
        n->st.dropped_full++;
        return;
    }
    c = &n->chans[slot];
    plen = hs_payload(n, from, payload);
    hlen = ovl_hs_respond(&c->hs, n->me, n->cfg.psk, c->local_index, buf, len, payload, plen,
                          n->frame, sizeof(n->frame));
    if (hlen < 0) {
        /* Another overlay's secret, or garbage: no answer at all. */
        n->st.dropped_auth++;
        chan_free(n, slot);
        return;
    }
    if (keep_hs_msg(c, n->frame, (size_t)hlen) != 0) {
        chan_free(n, slot);
        return;
    }
    c->state = CH_RESP;
    c->addr = *from;
    c->remote_hs_index = fi->sender_index;
    c->t_start = c->t_sent = overlay__now(n);
    n->half_open++;
    (void)overlay__send_raw(n, from, c->hs_msg, c->hs_len, false);
}

static void on_hs2(struct overlay_node *n, const struct ovl_frame_info *fi, const uint8_t *buf,
                   size_t len, const struct sockaddr_storage *from)
{
    struct chan *c = chan_by_index(n, fi->receiver_index);
    struct ovl_peer_info info;
    uint8_t payload[64];
    size_t plen;
    int hlen, slot;

    if (c == NULL || c->state != CH_INIT) {
        n->st.dropped_nosession++;
        return;
    }
    slot = (int)(c - n->chans);
    plen = hs_payload(n, from, payload);
    hlen = ovl_hs_finish(&c->hs, buf, len, payload, plen, n->frame, sizeof(n->frame), &info);
    if (hlen < 0) {
        n->st.dropped_auth++;
        return; /* maybe a forgery: the real HS2 may still come; the retransmit timer ends it */
    }
    if (keep_hs_msg(c, n->frame, (size_t)hlen) != 0) {
        chan_free(n, slot);
        return;
    }
    c->addr = *from;
    (void)overlay__send_raw(n, from, c->hs_msg, c->hs_len, false);
    chan_up(n, slot, &info);
}

static void on_hs3(struct overlay_node *n, const struct ovl_frame_info *fi, const uint8_t *buf,
                   size_t len, const struct sockaddr_storage *from)
{
    struct chan *c = chan_by_index(n, fi->receiver_index);
    struct ovl_peer_info info;

    if (c != NULL && c->state == CH_UP)
        return; /* the initiator repeats HS3 until it hears from us: nothing to do */
    if (c == NULL || c->state != CH_RESP || !overlay_addr_eq(&c->addr, from)) {
        n->st.dropped_nosession++;
        return;
    }
    if (ovl_hs_complete(&c->hs, buf, len, &info) != 0) {
        n->st.dropped_auth++;
        n->st.handshakes_failed++;
        chan_free(n, (int)(c - n->chans));
        return;
    }
    chan_up(n, (int)(c - n->chans), &info);
}

static void on_datagram(struct overlay_node *n, const uint8_t *buf, size_t len,
                        const struct sockaddr *sa, bool disc_socket)
{
    struct sockaddr_storage from;
    struct ovl_frame_info fi;
    struct ovl_discover d;

    n->st.frames_in++;
    n->st.bytes_in += len;
    overlay_addr_copy(&from, sa);
    if (ovl_frame_peek(buf, len, &fi) != 0) {
        n->st.dropped_malformed++;
        return;
    }
    if (disc_socket && fi.type != OVL_T_DISCOVER) {
        n->st.dropped_malformed++;
        return;
    }
    switch (fi.type) {
    case OVL_T_HS1:
        on_hs1(n, &fi, buf, len, &from);
        break;
    case OVL_T_HS2:
        on_hs2(n, &fi, buf, len, &from);
        break;
    case OVL_T_HS3:
        on_hs3(n, &fi, buf, len, &from);
        break;
    case OVL_T_DATA:
        on_data(n, &fi, buf, len, &from, -1);
        break;
    case OVL_T_DISCOVER:
        if (ovl_discover_decode(n->cfg.psk, buf, len, &d) != 0) {
            n->st.dropped_auth++; /* another overlay's announcement */
            return;
        }
        if (dht_id_eq(&d.id, &n->me->id))
            return; /* our own, looped back */
        n->st.discover_recv++;
        overlay__on_discover(n, &d, &from, disc_socket);
        break;
    default:
        n->st.dropped_malformed++;
        break;
    }
    overlay__dht_rearm(n);
}

bool overlay__on_stream_frame(struct overlay_node *n, int conn, const uint8_t *buf, size_t len)
{
    struct ovl_frame_info fi;

    n->st.frames_in++;
    n->st.bytes_in += len + 2;
    if (ovl_frame_peek(buf, len, &fi) != 0 || fi.type != OVL_T_DATA) {
        n->st.dropped_malformed++; /* handshakes and discovery never come by TCP */
        return false;
    }
    on_data(n, &fi, buf, len, NULL, conn);
    overlay__dht_rearm(n);
    return true;
}

void overlay__rx_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct overlay_node *n = h->data;

    (void)suggested;
    buf->base = (char *)n->rx;
    buf->len = sizeof(n->rx);
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct overlay_node *n = h->data;

    if (nread <= 0 || addr == NULL || n->closing)
        return;
    if (flags & UV_UDP_PARTIAL) {
        n->st.dropped_malformed++;
        return;
    }
    on_datagram(n, (const uint8_t *)buf->base, (size_t)nread, addr, h == &n->disc);
}

/* ---- timers --------------------------------------------------------------------------- */

static void chans_tick(struct overlay_node *n, uint64_t now)
{
    for (unsigned i = 0; i < n->n_chans; i++) {
        struct chan *c = &n->chans[i];
        switch (c->state) {
        case CH_INIT:
            if (now - c->t_sent < ((uint64_t)NODE_HS_RTO_MS << (c->tries - 1)))
                break;
            if (c->tries >= NODE_HS_TRIES) {
                struct peer *p = c->peer >= 0 ? &n->peers[c->peer] : NULL;
                n->st.handshakes_failed++;
                chan_free(n, (int)i);
                if (p != NULL) {
                    q_clear(p); /* the DHT retransmits what mattered */
                    if (!overlay__peer_up(n, p))
                        overlay__peer_gone(n, p);
                }
                break;
            }
            c->tries++;
            c->t_sent = now;
            (void)overlay__send_raw(n, &c->addr, c->hs_msg, c->hs_len, false);
            break;
        case CH_RESP:
            if (now - c->t_start > (uint64_t)NODE_HS_RTO_MS << NODE_HS_TRIES)
                chan_free(n, (int)i);
            break;
        case CH_UP:
            if (c->initiator && !c->confirmed && !c->renewing && c->peer >= 0 &&
                n->peers[c->peer].cur == (int)i &&
                now - c->t_up > ((uint64_t)NODE_HS_RTO_MS << NODE_HS_TRIES)) {
                /* The responder has not sent on it: it may have lost its half (HS3
                 * dropped, its half-open slot taken by a flood), or just have had
                 * nothing to say.  A second handshake settles it without dropping
                 * this one (the peer may still be sending on it): once it is up, it
                 * is the one we send on. */
                c->renewing = true;
                open_channel(n, &n->peers[c->peer]);
            } else if (now - c->t_up >= NODE_CHAN_MAX_AGE_MS + 60000) {
                chan_free(n, (int)i); /* replaced long ago or its peer is gone */
            } else if (c->initiator && now - c->t_up >= NODE_REKEY_MS && c->peer >= 0) {
                struct peer *p = &n->peers[c->peer];
                if (p->cur == (int)i && p->opening < 0) {
                    n->st.rekeys++;
                    open_channel(n, p); /* fresh ephemeral keys; the old one serves meanwhile */
                }
            }
            break;
        default:
            break;
        }
    }
}

/*
 * Watches the host's addresses: when one is added or removed (a new DHCP lease, a
 * cable moved, a VPN up), every peer is told at once by a keep-alive from wherever
 * the kernel now sends from (peers follow an authentic source, like WireGuard's
 * roaming), and the advertised address is worked out again (node_roles.c).
 * OpenDHT once lost its subscriptions silently on such a change until a restart.
 */
static void check_addresses(struct overlay_node *n, uint64_t now)
{
    uv_interface_address_t *ifs;
    crypto_generichash_state st;
    uint8_t print[16];
    int cnt;

    if (now < n->t_addr_check)
        return;
    n->t_addr_check = now + NODE_ADDR_CHECK_MS;
    if (uv_interface_addresses(&ifs, &cnt) != 0)
        return;
    crypto_generichash_init(&st, NULL, 0, sizeof(print));
    for (int i = 0; i < cnt; i++) {
        if (ifs[i].is_internal)
            continue;
        if (ifs[i].address.address4.sin_family == AF_INET)
            crypto_generichash_update(&st, (const uint8_t *)&ifs[i].address.address4.sin_addr, 4);
        else if (ifs[i].address.address6.sin6_family == AF_INET6)
            crypto_generichash_update(&st, (const uint8_t *)&ifs[i].address.address6.sin6_addr, 16);
    }
    uv_free_interface_addresses(ifs, cnt);
    crypto_generichash_final(&st, print, sizeof(print));
    if (n->addr_print_set && memcmp(print, n->addr_print, sizeof(print)) != 0) {
        p2p_notice(n->log, "overlay: this host's addresses changed; telling the peers");
        /* Now and at the next two checks: an address often changes in steps (the
         * new one added, then the old one removed), and the first keep-alive may
         * still have left from the old one. */
        n->addr_tell = 3;
        overlay__addr_changed(n);
    }
    if (n->addr_tell > 0) {
        uint8_t ka = 0;
        n->addr_tell--;
        for (unsigned i = 0; i < n->n_peers; i++)
            if (n->peers[i].used && overlay__peer_up(n, &n->peers[i]))
                (void)overlay__send_inner(n, &n->peers[i], IN_KEEPALIVE, &ka, 1);
    }
    memcpy(n->addr_print, print, sizeof(print));
    n->addr_print_set = true;
}

static void tick_cb(uv_timer_t *h)
{
    struct overlay_node *n = h->data;
    uint64_t now = overlay__now(n);

    if (n->closing)
        return;
    if (n->dht_old != NULL) {
        dht_node_free(n->dht_old);
        n->dht_old = NULL;
    }
    chans_tick(n, now);
    pipe_tick(n, now);
    check_addresses(n, now);
    overlay__tcp_tick(n, now);
    overlay__roles_tick(n, now);
    if (n->have_disc)
        overlay__disc_tick(n, now);
    overlay__dht_rearm(n);
}

/* ---- life cycle ------------------------------------------------------------------------ */

static int udp_open(struct overlay_node *n, uv_udp_t *h, int family, uint16_t port, bool *have)
{
    struct sockaddr_storage ss;
    int r;

    overlay_addr_any(&ss, family, port);
    r = uv_udp_init_ex(n->loop, h, (unsigned)family);
    if (r != 0)
        return r;
    h->data = n;
    n->open_handles++;
    *have = true;
    r = uv_udp_bind(h, (const struct sockaddr *)&ss, family == AF_INET6 ? UV_UDP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_udp_recv_start(h, overlay__rx_alloc, recv_cb);
    return r;
}

static void handle_closed(uv_handle_t *h)
{
    overlay__handle_closed(h->data);
}

void overlay__handle_closed(struct overlay_node *n)
{
    if (--n->open_handles > 0)
        return;
    dht_node_free(n->dht); /* NULL after a close; a node never started may have one */
    dht_node_free(n->dht_old);
    for (unsigned i = 0; i < n->n_chans; i++)
        chan_free(n, (int)i);
    for (unsigned i = 0; i < n->n_peers; i++)
        q_clear(&n->peers[i]);
    free(n->chans);
    free(n->peers);
    for (unsigned i = 0; i < NODE_OPS_MAX; i++)
        free(n->ops_tab[i].req);
    for (unsigned i = 0; i < NODE_PIPE_WAIT_MAX; i++)
        free(n->pipe_wait[i].body);
    if (n->close_cb != NULL)
        n->close_cb(n->close_arg);
    sodium_memzero(n->cfg.psk, sizeof(n->cfg.psk));
    free(n);
}

static void close_handles(struct overlay_node *n)
{
    uv_handle_t *hs[] = {
        (uv_handle_t *)&n->udp4,      (uv_handle_t *)&n->udp6, (uv_handle_t *)&n->probe4,
        (uv_handle_t *)&n->probe6,    (uv_handle_t *)&n->disc, (uv_handle_t *)&n->tick,
        (uv_handle_t *)&n->dht_timer, (uv_handle_t *)&n->tcp4, (uv_handle_t *)&n->tcp6};
    bool have[] = {n->have4, n->have6, n->have_probe4, n->have_probe6, n->have_disc,
                   true,     true,     n->have_tcp4,   n->have_tcp6};

    overlay__tcp_close_all(n);
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
        if (have[i] && !uv_is_closing(hs[i]))
            uv_close(hs[i], handle_closed);
}

int overlay_node_new(struct overlay_node **out, uv_loop_t *loop,
                     const struct overlay_node_config *cfg, const struct overlay_node_ops *ops,
                     struct p2p_log *log)
{
    struct overlay_node *n;
    uint16_t port;
    int r;

    if (cfg->identity == NULL || cfg->store == NULL || cfg->n_bootstrap > OVERLAY_BOOTSTRAP_MAX ||
        cfg->n_saved > OVERLAY_BOOTSTRAP_MAX)
        return -EINVAL;
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    n->loop = loop;
    n->log = log;
    n->peer_log.name = "overlay peers";
    n->state_log.name = "overlay state";
    n->cfg = *cfg;
    if (n->cfg.max_peers == 0)
        n->cfg.max_peers = 1024;
    if (n->cfg.max_clients == 0)
        n->cfg.max_clients = 256;
    if (ops != NULL)
        n->ops = *ops;
    n->me = cfg->identity;
    n->super = -1;
    n->n_peers = n->cfg.max_peers;
    n->n_chans = 2 * n->cfg.max_peers + NODE_HALF_OPEN_MAX;
    if (n->n_chans > 0xffff)
        n->n_chans = 0xffff;
    n->peers = calloc(n->n_peers, sizeof(*n->peers));
    n->chans = calloc(n->n_chans, sizeof(*n->chans));
    if (n->peers == NULL || n->chans == NULL) {
        free(n->peers);
        free(n->chans);
        free(n);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n->n_peers; i++)
        n->peers[i].cur = n->peers[i].prev = n->peers[i].opening = n->peers[i].conn = -1;
    for (unsigned i = 0; i < n->n_chans; i++)
        n->chans[i].peer = -1;

    /* The timers first, so that close_handles can always close them. */
    (void)uv_timer_init(loop, &n->tick);
    (void)uv_timer_init(loop, &n->dht_timer);
    n->tick.data = n->dht_timer.data = n;
    n->open_handles = 2;

    port = cfg->port;
    r = udp_open(n, &n->udp4, AF_INET, port, &n->have4);
    if (r == UV_EADDRINUSE && cfg->port_fallback && port != 0) {
        /* The same handle, bound again: its socket's failed bind left it unbound (a
         * handle may not be initialised again before its close has completed). */
        struct sockaddr_storage any;
        p2p_notice(log, "overlay: P2P port %u is taken, using a free port", (unsigned)port);
        port = 0;
        overlay_addr_any(&any, AF_INET, 0);
        r = uv_udp_bind(&n->udp4, (const struct sockaddr *)&any, 0);
        if (r == 0)
            r = uv_udp_recv_start(&n->udp4, overlay__rx_alloc, recv_cb);
    }
    if (r == 0) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        r = uv_udp_getsockname(&n->udp4, (struct sockaddr *)&ss, &len);
        if (r == 0)
            n->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (r != 0) {
        p2p_err(log, "overlay: cannot open the P2P port %u: %s", (unsigned)cfg->port,
                uv_strerror(r));
        n->closing = true;
        close_handles(n);
        *out = NULL;
        return r;
    }
    /* IPv6 on the same port when the host has it; its absence is not an error. */
    if (udp_open(n, &n->udp6, AF_INET6, n->port, &n->have6) != 0) {
        p2p_info(log, "overlay: no IPv6 P2P socket on port %u", (unsigned)n->port);
        if (n->have6) {
            uv_close((uv_handle_t *)&n->udp6, handle_closed);
            n->have6 = false;
        }
    }
    /* The stream path on the same port; without it, large frames go by UDP. */
    if (overlay__tcp_listen(n, &n->tcp4, AF_INET, &n->have_tcp4) != 0) {
        p2p_warn(log, "overlay: no TCP listener on port %u: large messages go by UDP",
                 (unsigned)n->port);
        if (n->have_tcp4) {
            uv_close((uv_handle_t *)&n->tcp4, handle_closed);
            n->have_tcp4 = false;
        }
    }
    if (n->have6 && overlay__tcp_listen(n, &n->tcp6, AF_INET6, &n->have_tcp6) != 0 &&
        n->have_tcp6) {
        uv_close((uv_handle_t *)&n->tcp6, handle_closed);
        n->have_tcp6 = false;
    }
    /* Probe sockets: reachability probes come from a port no peer has a flow with. */
    if (udp_open(n, &n->probe4, AF_INET, 0, &n->have_probe4) != 0 && n->have_probe4) {
        uv_close((uv_handle_t *)&n->probe4, handle_closed);
        n->have_probe4 = false;
    }
    if (n->have6 && udp_open(n, &n->probe6, AF_INET6, 0, &n->have_probe6) != 0 && n->have_probe6) {
        uv_close((uv_handle_t *)&n->probe6, handle_closed);
        n->have_probe6 = false;
    }
    if (cfg->multicast && overlay__disc_open(n) != 0)
        p2p_warn(log, "overlay: multicast discovery is not available on this host");
    *out = n;
    return 0;
}

int overlay_node_start(struct overlay_node *n)
{
    if (n->started || n->closing)
        return -EALREADY;
    n->started = true;
    n->t_start = overlay__now(n);
    overlay__roles_start(n);
    (void)uv_timer_start(&n->tick, tick_cb, NODE_TICK_MS, NODE_TICK_MS);
    overlay__dht_rearm(n);
    return 0;
}

void overlay_node_close(struct overlay_node *n, void (*cb)(void *arg), void *arg)
{
    if (n == NULL || n->closing)
        return;
    n->closing = true;
    n->close_cb = cb;
    n->close_arg = arg;
    /* The DHT first: its callbacks (our users' ops, clients' requests) run now with
     * -ECANCELED; then the ops proxied to our super-node. */
    overlay__dht_discard(n);
    /* Not freed here: close may run inside one of the DHT node's own callbacks
     * (a put's completion), while dht_node_advance still uses it. */
    overlay__ops_cancel_all(n);
    close_handles(n);
}

/* ---- views -------------------------------------------------------------------------- */

enum overlay_role overlay_node_role(const struct overlay_node *n)
{
    return n->role;
}

struct dht_node *overlay_node_dht(const struct overlay_node *n)
{
    return n->dht;
}

int overlay_node_super(const struct overlay_node *n, struct dht_peer *out)
{
    const struct peer *p;

    if (n->super < 0)
        return -ENOENT;
    p = &n->peers[n->super];
    out->id = p->id;
    return overlay_addr_to_dht(&p->addr, &out->addr);
}

bool overlay_node_cut_off(const struct overlay_node *n)
{
    return n->cut_off;
}

uint16_t overlay_node_port(const struct overlay_node *n)
{
    return n->port;
}

const struct dht_addr *overlay_node_advertised(const struct overlay_node *n)
{
    return &n->advertised;
}

const struct overlay_node_stats *overlay_node_stats(const struct overlay_node *n)
{
    return &n->st;
}

uint64_t overlay_node_uptime_ms(const struct overlay_node *n)
{
    return n->started ? overlay__now(n) - n->t_start : 0;
}

int overlay_node_peers(const struct overlay_node *n,
                       int (*cb)(const struct overlay_peer_view *p, void *arg), void *arg)
{
    for (unsigned i = 0; i < n->n_peers; i++) {
        const struct peer *p = &n->peers[i];
        struct overlay_peer_view v;
        int rc;
        if (!p->used || !p->id_known)
            continue;
        memset(&v, 0, sizeof(v));
        v.peer.id = p->id;
        (void)overlay_addr_to_dht(&p->addr, &v.peer.addr);
        v.up = overlay__peer_up(n, p);
        v.client = p->client;
        v.is_super = (int)i == n->super;
        v.last_recv_ms = p->last_recv;
        v.frames_in = p->frames_in;
        v.frames_out = p->frames_out;
        if ((rc = cb(&v, arg)) != 0)
            return rc;
    }
    return 0;
}

void overlay__set_role(struct overlay_node *n, enum overlay_role role)
{
    if (n->role == role)
        return;
    p2p_notice_rl(n->log, &n->state_log, overlay__now(n), "overlay: now %s",
                  overlay_role_name(role));
    n->role = role;
    if (n->ops.role != NULL)
        n->ops.role(n->ops.arg, role);
}

/* ---- pipes ------------------------------------------------------------------------- */

int overlay_node_pipe_send(struct overlay_node *n, const struct dht_id *to,
                           const struct dht_id *via, uint16_t service, const uint8_t *buf,
                           size_t len)
{
    const struct dht_id *hop = to;
    struct peer *p;
    uint8_t *body;
    int rc;

    if (n->closing)
        return -ECANCELED;
    if (len + 42 + 1 + OVL_DATA_OVERHEAD > OVL_FRAME_MAX)
        return -EMSGSIZE;
    if (dht_id_eq(to, &n->me->id))
        return -EINVAL;
    p = overlay__peer_find(n, to);
    if (via != NULL && !dht_id_eq(via, &n->me->id) && (p == NULL || !p->client)) {
        /* A client of another super-node: through that super-node, even when we hold a
         * channel of the client's (it may have tried us as its super-node): the path
         * through its NAT stays open only toward the super-node it keeps alive. */
        hop = via;
    } else if (p == NULL || (!overlay__peer_up(n, p) && p->opening < 0)) {
        if (n->dht == NULL && n->super >= 0)
            hop = &n->peers[n->super].id; /* a client sends everything through its super */
    }
    body = malloc(len + 42);
    if (body == NULL)
        return -ENOMEM;
    memcpy(body, to->b, DHT_ID_LEN);
    memcpy(body + DHT_ID_LEN, n->me->id.b, DHT_ID_LEN);
    overlay__put16(body + 40, service);
    memcpy(body + 42, buf, len);
    rc = pipe_forward(n, hop, body, len + 42);
    free(body);
    if (rc == 0)
        n->st.pipe_sent++;
    return rc;
}
