/*
 * node_roles.c: how an overlay node finds its place: seeking a super-node, attaching
 * as a client, the reachability probe, promotion to ring member, the DHT through the
 * super-node (proxy), the put/get/lookup API, and health (overlay_node.h).
 *
 * Design.  The role moves SEEKING -> CLIENT -> MEMBER (or starts at SUPER with -s).
 * Seeking tries candidates (bootstrap addresses, saved peers, nodes that answered a
 * discovery query) a few at a time with backoff: each gets an ATTACH over a fresh
 * secure channel, and the first member to answer 0 becomes our super-node.  A client
 * keeps its super-node alive with KEEPALIVE every cutoff/4 and asks it to PROBE the
 * address we would advertise; the super-node sends the probe (a DISCOVER frame with
 * the PROBE flag and a random nonce) from its probe socket, which no NAT has a flow
 * for, and the client reports the nonce back over the channel.  A client that has
 * been up promote_after_ms and was probed successfully creates its DHT node with that
 * address and joins through its super-node.
 *
 * Health.  A member is cut off when dht_node_cut_off says so (no leaf answered for
 * cutoff_ms); it then rejoins through its candidates (the leaf set it had, saved
 * peers, bootstrap list) with a fresh DHT node, every 1-8 s with backoff.  A node
 * that started the ring (-s) and finds no one to rejoin becomes a ring of one again;
 * restarted with saved peers, it first tries to rejoin through them for 3 cutoff_ms,
 * so that a bootstrap node's restart does not split the overlay into two rings.
 * A client is cut off when its super-node has been silent for cutoff_ms, and seeks.
 *
 * Our own users' requests are struct op slots (node_int.h): run by our DHT node (the
 * slot is the DHT callback's argument) or proxied with an id the super-node echoes.
 * Cancelling marks the slot so its completion is silent; closing completes every
 * live slot with -ECANCELED first.
 */
#include "node_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#define DISC_FLAG_PROBE 0x04 /* a DISCOVER frame that is a reachability probe */

static uint64_t seek_backoff_max(const struct overlay_node *n)
{
    return n->cfg.cutoff_ms / 2 > 1000 ? n->cfg.cutoff_ms / 2 : 1000;
}

void overlay__cand_add(struct overlay_node *n, const struct dht_peer *p, bool front)
{
    int free_slot = -1;

    if (dht_id_eq(&p->id, &n->me->id))
        return;
    for (unsigned i = 0; i < NODE_CAND_MAX; i++) {
        struct cand *c = &n->cands[i];
        if (!c->used) {
            if (free_slot < 0)
                free_slot = (int)i;
            continue;
        }
        bool same_id = !dht_id_is_zero(&p->id) && dht_id_eq(&c->peer.id, &p->id);
        bool same_addr =
            c->peer.addr.len == p->addr.len && memcmp(c->peer.addr.b, p->addr.b, p->addr.len) == 0;
        if (same_id || (same_addr && dht_id_is_zero(&c->peer.id))) {
            c->peer = *p;
            if (front)
                c->next_try = 0;
            return;
        }
    }
    if (free_slot < 0) {
        /* Full: replace the one whose next try is furthest away. */
        free_slot = 0;
        for (unsigned i = 1; i < NODE_CAND_MAX; i++)
            if (n->cands[i].next_try > n->cands[free_slot].next_try)
                free_slot = (int)i;
    }
    n->cands[free_slot].used = true;
    n->cands[free_slot].peer = *p;
    n->cands[free_slot].next_try = front ? 0 : overlay__now(n);
}

/* The local address the kernel would use toward `to`, with our P2P port. */
static int local_addr_toward(struct overlay_node *n, const struct sockaddr_storage *to,
                             struct dht_addr *out)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    int fd = socket(to->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)to,
                to->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                         : sizeof(struct sockaddr_in6)) != 0 ||
        getsockname(fd, (struct sockaddr *)&local, &len) != 0)
        rc = -errno;
    close(fd);
    if (rc != 0)
        return rc;
    if (local.ss_family == AF_INET)
        ((struct sockaddr_in *)&local)->sin_port = htons(n->port);
    else
        ((struct sockaddr_in6 *)&local)->sin6_port = htons(n->port);
    return overlay_addr_to_dht(&local, out);
}

/* A ring starter's address: the first IPv4 address that is not loopback, else the
 * first IPv6 global one, else 127.0.0.1 (a ring on one host). */
static void first_interface_addr(struct overlay_node *n, struct dht_addr *out)
{
    uv_interface_address_t *ifs;
    struct sockaddr_storage best;
    int cnt;
    bool found = false;

    memset(&best, 0, sizeof(best));
    if (uv_interface_addresses(&ifs, &cnt) == 0) {
        for (int pass = 0; pass < 2 && !found; pass++) {
            for (int i = 0; i < cnt && !found; i++) {
                if (ifs[i].is_internal)
                    continue;
                if (pass == 0 && ifs[i].address.address4.sin_family == AF_INET) {
                    memcpy(&best, &ifs[i].address.address4, sizeof(struct sockaddr_in));
                    found = true;
                } else if (pass == 1 && ifs[i].address.address6.sin6_family == AF_INET6 &&
                           !IN6_IS_ADDR_LINKLOCAL(&ifs[i].address.address6.sin6_addr) && n->have6) {
                    memcpy(&best, &ifs[i].address.address6, sizeof(struct sockaddr_in6));
                    found = true;
                }
            }
        }
        uv_free_interface_addresses(ifs, cnt);
    }
    if (!found) {
        struct sockaddr_in *a = (struct sockaddr_in *)&best;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    if (best.ss_family == AF_INET)
        ((struct sockaddr_in *)&best)->sin_port = htons(n->port);
    else
        ((struct sockaddr_in6 *)&best)->sin6_port = htons(n->port);
    (void)overlay_addr_to_dht(&best, out);
}

static void set_cut_off(struct overlay_node *n, bool cut)
{
    if (n->cut_off == cut)
        return;
    n->cut_off = cut;
    if (cut)
        n->t_cut_since = overlay__now(n);
    if (cut)
        p2p_warn_rl(n->log, &n->state_log, overlay__now(n),
                    "overlay: cut off: no peer has answered for %u ms; retrying",
                    (unsigned)n->cfg.cutoff_ms);
    else
        p2p_notice_rl(n->log, &n->state_log, overlay__now(n), "overlay: connected again");
    if (n->ops.health != NULL)
        n->ops.health(n->ops.arg, cut);
}

/* ---- our users' requests ------------------------------------------------------------- */

static struct op *op_alloc(struct overlay_node *n)
{
    for (unsigned i = 0; i < NODE_OPS_MAX; i++) {
        struct op *o = &n->ops_tab[i];
        if (!o->used) {
            memset(o, 0, sizeof(*o));
            o->used = true;
            o->node = n;
            o->id = ++n->next_op;
            return o;
        }
    }
    return NULL;
}

static void op_free(struct op *o)
{
    free(o->req);
    memset(o, 0, sizeof(*o));
}

static void op_fail(struct op *o, int status)
{
    struct op c = *o;

    c.req = NULL;
    op_free(o);
    if (c.cancelled)
        return;
    switch (c.kind) {
    case OP_PUT:
        c.cb.put(status, 0, c.arg);
        break;
    case OP_GET:
        c.cb.get(status, NULL, 0, c.arg);
        break;
    case OP_LOOKUP:
        c.cb.lookup(status, NULL, 0, c.arg);
        break;
    case OP_TRACE:
        c.cb.trace(status, NULL, c.arg);
        break;
    default:
        break;
    }
}

void overlay__ops_cancel_all(struct overlay_node *n)
{
    for (unsigned i = 0; i < NODE_OPS_MAX; i++)
        if (n->ops_tab[i].used)
            op_fail(&n->ops_tab[i], -ECANCELED);
}

static void op_put_done(int status, unsigned acks, void *arg)
{
    struct op *o = arg;
    struct op c = *o;

    op_free(o);
    if (!c.cancelled)
        c.cb.put(status, acks, c.arg);
}

static void op_get_done(int status, const struct dht_record *recs, size_t nrec, void *arg)
{
    struct op *o = arg;
    struct op c = *o;

    op_free(o);
    if (!c.cancelled)
        c.cb.get(status, recs, nrec, c.arg);
}

static void op_lookup_done(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    struct op *o = arg;
    struct op c = *o;

    op_free(o);
    if (!c.cancelled)
        c.cb.lookup(status, root, hops, c.arg);
}

static void op_trace_done(int status, const struct dht_trace *t, void *arg)
{
    struct op *o = arg;
    struct op c = *o;

    op_free(o);
    if (!c.cancelled)
        c.cb.trace(status, t, c.arg);
}

static bool member(const struct overlay_node *n)
{
    return n->dht != NULL && dht_node_joined(n->dht) &&
           (n->role == OVERLAY_ROLE_MEMBER || n->role == OVERLAY_ROLE_SUPER);
}

static int start_op(struct overlay_node *n, enum op_kind kind, const struct dht_id *key,
                    const struct dht_record *rec, union op_cb cb, void *arg)
{
    struct op *o;
    int rc;

    if (n->closing)
        return -ECANCELED;
    if (!member(n) && !(n->role == OVERLAY_ROLE_CLIENT && n->super >= 0))
        return -ENOTCONN;
    if (kind == OP_TRACE && !member(n))
        return -EOPNOTSUPP; /* a client's lookups run at its super-node: no route of ours */
    o = op_alloc(n);
    if (o == NULL)
        return -EBUSY;
    o->kind = (uint8_t)kind;
    o->arg = arg;
    o->cb = cb;
    if (member(n)) {
        uint64_t now = overlay__now(n);
        if (kind == OP_PUT)
            rc = dht_node_put(n->dht, rec, op_put_done, o, now);
        else if (kind == OP_GET)
            rc = dht_node_get(n->dht, key, op_get_done, o, now);
        else if (kind == OP_TRACE)
            rc = dht_node_trace(n->dht, key, op_trace_done, o, now);
        else
            rc = dht_node_lookup(n->dht, key, op_lookup_done, o, now);
        overlay__dht_rearm(n);
    } else {
        o->via_super = true;
        rc = overlay__proxy_request(n, o, key, rec);
    }
    if (rc != 0)
        op_free(o);
    return rc;
}

int overlay_node_put(struct overlay_node *n, const struct dht_record *rec, dht_put_cb cb, void *arg)
{
    if (dht_record_check(rec) != 0)
        return -EINVAL;
    union op_cb u = {.put = cb};

    return start_op(n, OP_PUT, &rec->key, rec, u, arg);
}

int overlay_node_get(struct overlay_node *n, const struct dht_id *key, dht_get_cb cb, void *arg)
{
    union op_cb u = {.get = cb};

    return start_op(n, OP_GET, key, NULL, u, arg);
}

int overlay_node_lookup(struct overlay_node *n, const struct dht_id *key, dht_lookup_cb cb,
                        void *arg)
{
    union op_cb u = {.lookup = cb};

    return start_op(n, OP_LOOKUP, key, NULL, u, arg);
}

int overlay_node_trace(struct overlay_node *n, const struct dht_id *key, dht_trace_cb cb, void *arg)
{
    union op_cb u = {.trace = cb};

    return start_op(n, OP_TRACE, key, NULL, u, arg);
}

size_t overlay_node_cancel(struct overlay_node *n, void *arg)
{
    size_t k = 0;

    for (unsigned i = 0; i < NODE_OPS_MAX; i++) {
        struct op *o = &n->ops_tab[i];
        if (!o->used || o->cancelled || o->arg != arg)
            continue;
        k++;
        if (o->via_super)
            op_free(o); /* a late reply finds no slot */
        else
            o->cancelled = true; /* freed when the DHT completes it */
    }
    return k;
}

/* ---- the proxy: client side ----------------------------------------------------------- */

int overlay__proxy_request(struct overlay_node *n, struct op *o, const struct dht_id *key,
                           const struct dht_record *rec)
{
    uint8_t buf[32 + DHT_RECORD_ENCODED_MAX];
    size_t k = 0;
    int rc;

    overlay__put32(buf, o->id);
    buf[4] = o->kind;
    memcpy(buf + 5, key->b, DHT_ID_LEN);
    k = 5 + DHT_ID_LEN;
    if (rec != NULL) {
        rc = dht_record_encode(rec, buf + k, sizeof(buf) - k);
        if (rc < 0)
            return rc;
        k += (size_t)rc;
    }
    o->req = malloc(k);
    if (o->req == NULL)
        return -ENOMEM;
    memcpy(o->req, buf, k);
    o->req_len = k;
    o->deadline = overlay__now(n) + n->cfg.dht.request_timeout_ms;
    rc = overlay__send_inner(n, &n->peers[n->super], IN_PROXY_REQ, o->req, k);
    return rc == -ENOBUFS ? 0 : rc; /* queued or not, the deadline ends it */
}

static void on_proxy_reply(struct overlay_node *n, struct peer *p, const uint8_t *b, size_t len)
{
    struct dht_record recs[DHT_MSG_RECORDS_MAX];
    struct dht_peer root;
    struct op *o = NULL;
    uint32_t id;
    int16_t status;
    uint32_t count;
    size_t k, nrec = 0;

    /* Only our super-node answers our proxied requests: another peer must not be able
     * to say a put reached its quorum. */
    if (len < 11 || n->super < 0 || overlay__peer_slot(n, p) != n->super) {
        n->st.dropped_inner++;
        return;
    }
    id = overlay__get32(b);
    status = (int16_t)overlay__get16(b + 4);
    count = overlay__get32(b + 6);
    for (unsigned i = 0; i < NODE_OPS_MAX; i++)
        if (n->ops_tab[i].used && n->ops_tab[i].via_super && n->ops_tab[i].id == id)
            o = &n->ops_tab[i];
    if (o == NULL)
        return; /* cancelled or timed out */
    k = 10;
    memset(&root, 0, sizeof(root));
    if (o->kind == OP_LOOKUP && status == 0) {
        if (len < k + DHT_ID_LEN + 1 || b[k + DHT_ID_LEN] > DHT_ADDR_MAX ||
            len < k + DHT_ID_LEN + 1 + b[k + DHT_ID_LEN]) {
            n->st.dropped_inner++;
            return;
        }
        memcpy(root.id.b, b + k, DHT_ID_LEN);
        root.addr.len = b[k + DHT_ID_LEN];
        memcpy(root.addr.b, b + k + DHT_ID_LEN + 1, root.addr.len);
        k += DHT_ID_LEN + 1 + root.addr.len;
    }
    if (k >= len) {
        n->st.dropped_inner++;
        return;
    }
    nrec = b[k++];
    if (nrec > DHT_MSG_RECORDS_MAX) {
        n->st.dropped_inner++;
        return;
    }
    for (size_t i = 0; i < nrec; i++) {
        int used = dht_record_decode(&recs[i], b + k, len - k);
        /* A super-node relays records; it cannot forge them: each must be signed by
         * its owner and be under the key we asked for. */
        if (used <= 0 || dht_record_verify(&recs[i]) != 0 ||
            memcmp(recs[i].key.b, o->req + 5, DHT_ID_LEN) != 0) {
            n->st.dropped_inner++;
            return;
        }
        k += (size_t)used;
    }
    {
        struct op c = *o;
        c.req = NULL;
        op_free(o);
        if (c.cancelled)
            return;
        if (c.kind == OP_PUT)
            c.cb.put(status, count, c.arg);
        else if (c.kind == OP_GET)
            c.cb.get(status, recs, nrec, c.arg);
        else
            c.cb.lookup(status, status == 0 ? &root : NULL, count, c.arg);
    }
}

/* ---- the proxy: super-node side ---------------------------------------------------------- */

static void prox_reply(struct proxied *x, int status, uint32_t count, const struct dht_peer *root,
                       const struct dht_record *recs, size_t nrec)
{
    struct overlay_node *n = x->node;
    uint8_t *buf = n->plain + 1; /* encoded here, copied by send_inner's seal */
    size_t k = 0, cap = sizeof(n->plain) - 64;
    struct peer *p = overlay__peer_find(n, &x->client);
    uint8_t *copy;

    x->used = false;
    if (p == NULL || n->closing)
        return;
    overlay__put32(buf, x->req);
    overlay__put16(buf + 4, (uint16_t)(int16_t)status);
    overlay__put32(buf + 6, count);
    k = 10;
    if (root != NULL) {
        memcpy(buf + k, root->id.b, DHT_ID_LEN);
        buf[k + DHT_ID_LEN] = root->addr.len;
        memcpy(buf + k + DHT_ID_LEN + 1, root->addr.b, root->addr.len);
        k += DHT_ID_LEN + 1 + root->addr.len;
    }
    buf[k++] = (uint8_t)nrec;
    for (size_t i = 0; i < nrec; i++) {
        int used = dht_record_encode(&recs[i], buf + k, cap - k);
        if (used < 0) {
            buf[10 + (root ? DHT_ID_LEN + 1 + root->addr.len : 0)] = (uint8_t)i;
            break;
        }
        k += (size_t)used;
    }
    copy = malloc(k);
    if (copy == NULL)
        return;
    memcpy(copy, buf, k);
    (void)overlay__send_inner(n, p, IN_PROXY_REPLY, copy, k);
    free(copy);
}

static void prox_put_done(int status, unsigned acks, void *arg)
{
    prox_reply(arg, status, acks, NULL, NULL, 0);
}

static void prox_get_done(int status, const struct dht_record *recs, size_t nrec, void *arg)
{
    prox_reply(arg, status, 0, NULL, recs, nrec);
}

static void prox_lookup_done(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    prox_reply(arg, status, hops, status == 0 ? root : NULL, NULL, 0);
}

static void on_proxy_req(struct overlay_node *n, struct peer *p, const uint8_t *b, size_t len)
{
    struct proxied *x = NULL;
    struct dht_record rec;
    struct dht_id key;
    uint64_t now = overlay__now(n);
    uint8_t op;
    int rc;

    if (len < 5 + DHT_ID_LEN) {
        n->st.dropped_inner++;
        return;
    }
    op = b[4];
    memcpy(key.b, b + 5, DHT_ID_LEN);
    if (!p->client || !member(n)) {
        struct proxied tmp = {true, op, overlay__get32(b), p->id, n};
        prox_reply(&tmp, -ENOTCONN, 0, NULL, NULL, 0);
        return;
    }
    for (unsigned i = 0; i < NODE_PROXIED_MAX && x == NULL; i++)
        if (!n->prox[i].used)
            x = &n->prox[i];
    if (x == NULL) {
        struct proxied tmp = {true, op, overlay__get32(b), p->id, n};
        n->st.dropped_full++;
        prox_reply(&tmp, -EBUSY, 0, NULL, NULL, 0);
        return;
    }
    x->used = true;
    x->op = op;
    x->req = overlay__get32(b);
    x->client = p->id;
    x->node = n;
    switch (op) {
    case OP_PUT:
        if (dht_record_decode(&rec, b + 5 + DHT_ID_LEN, len - 5 - DHT_ID_LEN) <= 0 ||
            !dht_id_eq(&rec.key, &key)) {
            x->used = false;
            n->st.dropped_inner++;
            return;
        }
        rc = dht_node_put(n->dht, &rec, prox_put_done, x, now);
        break;
    case OP_GET:
        rc = dht_node_get(n->dht, &key, prox_get_done, x, now);
        break;
    case OP_LOOKUP:
        rc = dht_node_lookup(n->dht, &key, prox_lookup_done, x, now);
        break;
    default:
        x->used = false;
        n->st.dropped_inner++;
        return;
    }
    if (rc != 0) {
        prox_reply(x, rc, 0, NULL, NULL, 0);
        return;
    }
    n->st.proxied_for_clients++;
    overlay__dht_rearm(n);
}

/* ---- attach, keep-alive, probe ------------------------------------------------------------ */

static unsigned client_count(const struct overlay_node *n)
{
    unsigned k = 0;

    for (unsigned i = 0; i < n->n_peers; i++)
        if (n->peers[i].used && n->peers[i].client)
            k++;
    return k;
}

#define ATTACH_ACK_PEERS 4 /* other members a new client learns, for its failover */

static size_t put_peer(uint8_t *b, const struct dht_peer *p)
{
    memcpy(b, p->id.b, DHT_ID_LEN);
    b[DHT_ID_LEN] = p->addr.len;
    memcpy(b + DHT_ID_LEN + 1, p->addr.b, p->addr.len);
    return DHT_ID_LEN + 1 + p->addr.len;
}

static void send_attach_ack(struct overlay_node *n, struct peer *p, int status)
{
    uint8_t b[2 + 1 + ATTACH_ACK_PEERS * (DHT_ID_LEN + 1 + DHT_ADDR_MAX)];
    size_t k = 2;
    struct dht_peer sp, leaves[2 * DHT_LEAF_HALF_MAX];

    overlay__put16(b, (uint16_t)(int16_t)status);
    /* Not a member: point the seeker at our own super-node, if we have one. */
    if (status == -EAGAIN && overlay_node_super(n, &sp) == 0)
        k += put_peer(b + k, &sp);
    /* Accepted: a few other members, so that a client that knew only us can attach
     * to another one when we die (it sits in no leaf set and learns no others). */
    if (status == 0 && n->dht != NULL) {
        size_t nl = dht_route_leafset(dht_node_route(n->dht), leaves, 2 * DHT_LEAF_HALF_MAX);
        size_t cnt = nl < ATTACH_ACK_PEERS ? nl : ATTACH_ACK_PEERS;
        b[k++] = (uint8_t)cnt;
        for (size_t i = 0; i < cnt; i++)
            k += put_peer(b + k, &leaves[i]);
    }
    (void)overlay__send_inner(n, p, IN_ATTACH_ACK, b, k);
}

/* Reads one peer (id, address) at b[*k..len); false when it does not fit. */
static bool get_peer(const uint8_t *b, size_t len, size_t *k, struct dht_peer *out)
{
    size_t alen;

    if (len < *k + DHT_ID_LEN + 1)
        return false;
    alen = b[*k + DHT_ID_LEN];
    if (alen > DHT_ADDR_MAX || len < *k + DHT_ID_LEN + 1 + alen)
        return false;
    memcpy(out->id.b, b + *k, DHT_ID_LEN);
    out->addr.len = (uint8_t)alen;
    memcpy(out->addr.b, b + *k + DHT_ID_LEN + 1, alen);
    *k += DHT_ID_LEN + 1 + alen;
    return true;
}

static void on_attach(struct overlay_node *n, struct peer *p)
{
    if (!member(n)) {
        send_attach_ack(n, p, -EAGAIN);
        return;
    }
    if (!p->client && client_count(n) >= n->cfg.max_clients) {
        n->st.dropped_full++;
        send_attach_ack(n, p, -EBUSY);
        return;
    }
    if (!p->client) {
        char a[64];
        char hex[DHT_ID_HEX_LEN + 1];
        dht_id_to_hex(&p->id, hex);
        p2p_info_rl(n->log, &n->peer_log, overlay__now(n), "overlay: client %.8s attached from %s",
                    hex, overlay_addr_text(&p->addr, a, sizeof(a)));
    }
    p->client = true;
    send_attach_ack(n, p, 0);
}

static void become_client(struct overlay_node *n, struct peer *p)
{
    char a[64], hex[DHT_ID_HEX_LEN + 1];

    n->super = overlay__peer_slot(n, p);
    n->super_since = overlay__now(n);
    n->seek_backoff = 0;
    dht_id_to_hex(&p->id, hex);
    p2p_notice_rl(n->log, &n->state_log, overlay__now(n),
                  "overlay: attached to super-node %.8s at %s", hex,
                  overlay_addr_text(&p->addr, a, sizeof(a)));
    if (n->advertised.len == 0 || !n->reachable)
        (void)local_addr_toward(n, &p->addr, &n->advertised);
    overlay__set_role(n, OVERLAY_ROLE_CLIENT);
    set_cut_off(n, false);
    n->t_probe = overlay__now(n);
    /* Proxied requests waiting for a super-node go now. */
    for (unsigned i = 0; i < NODE_OPS_MAX; i++) {
        struct op *o = &n->ops_tab[i];
        if (o->used && o->via_super && o->req != NULL)
            (void)overlay__send_inner(n, p, IN_PROXY_REQ, o->req, o->req_len);
    }
}

static void on_attach_ack(struct overlay_node *n, struct peer *p, const uint8_t *b, size_t len)
{
    int16_t status;

    if (len < 2 || !p->attach_asked) {
        n->st.dropped_inner++; /* an answer to nothing we asked: nobody makes us its client */
        return;
    }
    p->attach_asked = false;
    status = (int16_t)overlay__get16(b);
    if (status == 0) {
        size_t k = 3;
        struct dht_peer other;
        /* Other members: candidates should this super-node die. */
        for (unsigned i = 0;
             len > 2 && i < b[2] && i < ATTACH_ACK_PEERS && get_peer(b, len, &k, &other); i++)
            overlay__cand_add(n, &other, false);
        if (n->role == OVERLAY_ROLE_SEEKING)
            become_client(n, p);
        else if (overlay__peer_slot(n, p) != n->super)
            /* Another candidate answered too: it must not keep us as its client. */
            (void)overlay__send_inner(n, p, IN_DETACH, NULL, 0);
        return;
    }
    if (status == -EAGAIN) {
        struct dht_peer other;
        size_t k = 2;
        if (get_peer(b, len, &k, &other))
            overlay__cand_add(n, &other, true);
    }
}

static void send_probe_result(struct overlay_node *n, struct peer *p, bool ok,
                              const struct dht_addr *a)
{
    uint8_t b[2 + DHT_ADDR_MAX];

    b[0] = ok ? 1 : 0;
    b[1] = a->len;
    memcpy(b + 2, a->b, a->len);
    (void)overlay__send_inner(n, p, IN_PROBE_RESULT, b, 2u + a->len);
}

static void on_probe_req(struct overlay_node *n, struct peer *p, const uint8_t *b, size_t len)
{
    struct sockaddr_storage to;
    struct dht_addr a;
    uint8_t frame[OVL_DISCOVER_LEN];
    int slot = -1, flen;

    if (!p->client || len < 1 || b[0] > DHT_ADDR_MAX || len < 1u + b[0]) {
        n->st.dropped_inner++;
        return;
    }
    a.len = b[0];
    memcpy(a.b, b + 1, a.len);
    if (overlay_addr_from_dht(&a, &to) != 0) {
        n->st.dropped_inner++;
        return;
    }
    if (!overlay_addr_same_host(&to, &p->addr)) {
        /* Only the address the client's own packets come from: a probe elsewhere would
         * make us send to any host it names.  A client behind NAT asks for its private
         * address, which could not be reached anyway: not reachable. */
        n->st.probes_refused++;
        send_probe_result(n, p, false, &a);
        return;
    }
    for (unsigned i = 0; i < NODE_PROBES_MAX; i++) {
        if (n->probes[i].used && dht_id_eq(&n->probes[i].client, &p->id))
            slot = (int)i; /* one probe per client at a time */
        else if (!n->probes[i].used && slot < 0)
            slot = (int)i;
    }
    if (slot < 0) {
        n->st.dropped_full++;
        return;
    }
    n->probes[slot].used = true;
    n->probes[slot].client = p->id;
    n->probes[slot].addr = a;
    n->probes[slot].deadline = overlay__now(n) + NODE_PROBE_WAIT_MS;
    randombytes_buf(n->probes[slot].nonce, sizeof(n->probes[slot].nonce));
    flen = overlay__disc_frame(n, DISC_FLAG_PROBE, n->probes[slot].nonce, frame);
    if (flen > 0 && overlay__send_raw(n, &to, frame, (size_t)flen, true) == 0)
        n->st.probes_sent++;
}

static void on_probe_seen(struct overlay_node *n, struct peer *p, const uint8_t *b, size_t len)
{
    if (len < 8) {
        n->st.dropped_inner++;
        return;
    }
    for (unsigned i = 0; i < NODE_PROBES_MAX; i++) {
        if (n->probes[i].used && dht_id_eq(&n->probes[i].client, &p->id) &&
            sodium_memcmp(n->probes[i].nonce, b, 8) == 0) {
            n->probes[i].used = false;
            n->st.probes_ok++;
            send_probe_result(n, p, true, &n->probes[i].addr);
            return;
        }
    }
}

/* A DISCOVER frame with the probe flag reached our P2P socket. */
void overlay__on_probe_frame(struct overlay_node *n, const struct ovl_discover *d)
{
    struct peer *s;

    if (n->super < 0)
        return;
    s = &n->peers[n->super];
    if (!dht_id_eq(&s->id, &d->id))
        return; /* only our super-node's probes count */
    (void)overlay__send_inner(n, s, IN_PROBE_SEEN, d->nonce, sizeof(d->nonce));
}

static void on_probe_result(struct overlay_node *n, struct peer *p, const uint8_t *b, size_t len)
{
    if (overlay__peer_slot(n, p) != n->super || len < 2 || b[1] > DHT_ADDR_MAX || len < 2u + b[1]) {
        n->st.dropped_inner++;
        return;
    }
    n->probe_pending = false;
    if (b[0] == 1) {
        char a[64];
        struct sockaddr_storage ss;
        n->advertised.len = b[1];
        memcpy(n->advertised.b, b + 2, b[1]);
        n->reachable = true;
        if (overlay_addr_from_dht(&n->advertised, &ss) == 0)
            p2p_notice_rl(n->log, &n->state_log, overlay__now(n), "overlay: reachable at %s",
                          overlay_addr_text(&ss, a, sizeof(a)));
    } else {
        if (!n->reachable)
            p2p_notice_rl(n->log, &n->state_log, overlay__now(n),
                          "overlay: not reachable from outside (NAT?): staying a client");
    }
}

void overlay__on_inner_ctl(struct overlay_node *n, struct peer *p, uint8_t kind,
                           const uint8_t *body, size_t len)
{
    switch (kind) {
    case IN_ATTACH:
        on_attach(n, p);
        break;
    case IN_ATTACH_ACK:
        on_attach_ack(n, p, body, len);
        break;
    case IN_PROBE_REQ:
        on_probe_req(n, p, body, len);
        break;
    case IN_PROBE_SEEN:
        on_probe_seen(n, p, body, len);
        break;
    case IN_PROBE_RESULT:
        on_probe_result(n, p, body, len);
        break;
    case IN_PROXY_REQ:
        on_proxy_req(n, p, body, len);
        break;
    case IN_PROXY_REPLY:
        on_proxy_reply(n, p, body, len);
        break;
    case IN_KEEPALIVE:
        if (len >= 1 && (body[0] & 1)) {
            uint8_t f = 0;
            (void)overlay__send_inner(n, p, IN_KEEPALIVE, &f, 1);
        }
        break;
    case IN_DETACH:
        p->client = false;
        if (overlay__peer_slot(n, p) == n->super && n->role == OVERLAY_ROLE_CLIENT) {
            n->super = -1;
            overlay__set_role(n, OVERLAY_ROLE_SEEKING);
        }
        break;
    default:
        n->st.dropped_inner++;
        break;
    }
}

/* The host's addresses changed: work out the address to advertise again. */
void overlay__addr_changed(struct overlay_node *n)
{
    struct dht_addr a;

    memset(&a, 0, sizeof(a));
    if (n->role == OVERLAY_ROLE_SUPER && n->super < 0) {
        first_interface_addr(n, &a);
    } else {
        /* Toward a peer we talk to: our super-node, else any leaf. */
        struct peer *p = n->super >= 0 ? &n->peers[n->super] : NULL;
        for (unsigned i = 0; i < n->n_peers && p == NULL; i++)
            if (n->peers[i].used && overlay__peer_up(n, &n->peers[i]))
                p = &n->peers[i];
        if (p == NULL || local_addr_toward(n, &p->addr, &a) != 0)
            return;
    }
    if (a.len == n->advertised.len && memcmp(a.b, n->advertised.b, a.len) == 0)
        return;
    n->advertised = a;
    if (n->dht != NULL)
        dht_node_set_addr(n->dht, &a);
    if (n->role == OVERLAY_ROLE_CLIENT) {
        n->reachable = false; /* the new address must be probed before we join */
        n->t_probe = overlay__now(n);
    }
}

/* ---- role changes ------------------------------------------------------------------------ */

static void join_done(int status, void *arg)
{
    struct overlay_node *n = arg;
    char a[64];
    struct sockaddr_storage ss;

    n->joining = false;
    if (n->closing)
        return;
    if (status != 0) {
        if (status != -ECANCELED)
            p2p_warn_rl(n->log, &n->state_log, overlay__now(n), "overlay: join failed: %s",
                        strerror(-status));
        overlay__dht_discard(n);
        n->t_seek = overlay__now(n) + 2000;
        return;
    }
    if (overlay_addr_from_dht(&n->advertised, &ss) != 0)
        snprintf(a, sizeof(a), "?");
    else
        overlay_addr_text(&ss, a, sizeof(a));
    p2p_notice_rl(n->log, &n->state_log, overlay__now(n), "overlay: joined the ring as %s", a);
    n->ever_joined = true;
    if (n->role != OVERLAY_ROLE_SUPER) {
        /* A member needs no super-node any more; the channel stays. */
        if (n->super >= 0) {
            (void)overlay__send_inner(n, &n->peers[n->super], IN_DETACH, NULL, 0);
            n->super = -1;
        }
        overlay__set_role(n, OVERLAY_ROLE_MEMBER);
    }
    set_cut_off(n, false);
    n->seek_backoff = 0;
}

/* Joins the ring through peer `via` (NULL: start a ring of one). */
static int join_ring(struct overlay_node *n, const struct dht_peer *via)
{
    int rc;

    if (n->joining)
        return -EALREADY;
    overlay__dht_discard(n);
    rc = overlay__dht_create(n);
    if (rc != 0)
        return rc;
    rc = dht_node_join(n->dht, via, join_done, n, overlay__now(n));
    if (rc == 0)
        n->joining = true;
    overlay__dht_rearm(n);
    return rc;
}

void overlay__roles_start(struct overlay_node *n)
{
    for (size_t i = 0; i < n->cfg.n_saved; i++)
        overlay__cand_add(n, &n->cfg.saved[i], false);
    for (size_t i = 0; i < n->cfg.n_bootstrap; i++) {
        struct dht_peer p;
        memset(&p, 0, sizeof(p));
        if (overlay_addr_to_dht(&n->cfg.bootstrap[i], &p.addr) == 0)
            overlay__cand_add(n, &p, false);
    }
    if (n->cfg.server) {
        first_interface_addr(n, &n->advertised);
        n->reachable = true;
        overlay__set_role(n, OVERLAY_ROLE_SUPER);
        if (n->cfg.n_saved > 0) {
            /* Restarted: the ring we started may live on without us.  Rejoin it
             * through the peers we saved (the tick's seek); only when none took us
             * back within 3 cutoff_ms is there no ring left, and we start one again. */
            n->t_seek = overlay__now(n);
            return;
        }
        if (join_ring(n, NULL) != 0)
            p2p_err(n->log, "overlay: cannot start the ring");
        return;
    }
    overlay__set_role(n, OVERLAY_ROLE_SEEKING);
    n->t_seek = overlay__now(n);
}

/* Tries the candidates that are due (a few at a time). */
static void seek(struct overlay_node *n, uint64_t now, bool rejoin)
{
    unsigned tried = 0;

    if (now < n->t_seek)
        return;
    for (unsigned i = 0; i < NODE_CAND_MAX && tried < 3; i++) {
        struct cand *c = &n->cands[i];
        struct sockaddr_storage ss;
        struct peer *p;
        if (!c->used || c->next_try > now || overlay_addr_from_dht(&c->peer.addr, &ss) != 0)
            continue;
        c->next_try = now + 4000;
        tried++;
        if (rejoin) {
            /* A member that lost the ring joins again through a candidate; a channel
             * to it that has been silent that long may be one it lost (a restart). */
            struct peer *q = overlay__peer_find(n, &c->peer.id);
            if (q != NULL && overlay__peer_up(n, q) && now - q->last_recv > n->cfg.cutoff_ms)
                overlay__peer_reset(n, q);
            if (join_ring(n, &c->peer) == 0)
                break;
            continue;
        }
        p = overlay__peer_get(n, &c->peer.id, &ss); /* a zero id: found by address */
        if (p != NULL && overlay__peer_up(n, p) && now - p->last_recv > n->cfg.cutoff_ms)
            overlay__peer_reset(n, p); /* silent that long: maybe restarted; handshake anew */
        if (p != NULL) {
            p->attach_asked = true;
            (void)overlay__send_inner(n, p, IN_ATTACH, NULL, 0);
        }
    }
    n->seek_backoff = n->seek_backoff == 0 ? 1000 : n->seek_backoff * 2;
    if (n->seek_backoff > seek_backoff_max(n))
        n->seek_backoff = seek_backoff_max(n);
    n->t_seek = now + n->seek_backoff;
}

/* Keeps the leaf set as rejoin candidates while healthy. */
static void remember_leaves(struct overlay_node *n)
{
    struct dht_peer leaves[2 * DHT_LEAF_HALF_MAX];
    size_t k;

    if (n->dht == NULL)
        return;
    k = dht_route_leafset(dht_node_route(n->dht), leaves, 2 * DHT_LEAF_HALF_MAX);
    for (size_t i = 0; i < k; i++)
        overlay__cand_add(n, &leaves[i], false);
}

void overlay__roles_tick(struct overlay_node *n, uint64_t now)
{
    /* A client that went without a word (no DETACH) is one no longer: clients send a
     * keep-alive every cutoff/4, so twice cutoff without a frame means gone. */
    for (unsigned i = 0; i < n->n_peers; i++) {
        struct peer *p = &n->peers[i];
        if (p->used && p->client && now - p->last_recv > 2u * n->cfg.cutoff_ms)
            p->client = false;
    }
    /* Probes we sent for clients that were not seen in time. */
    for (unsigned i = 0; i < NODE_PROBES_MAX; i++) {
        if (n->probes[i].used && now >= n->probes[i].deadline) {
            struct peer *p = overlay__peer_find(n, &n->probes[i].client);
            n->probes[i].used = false;
            if (p != NULL)
                send_probe_result(n, p, false, &n->probes[i].addr);
        }
    }
    /* Proxied requests past their deadline. */
    for (unsigned i = 0; i < NODE_OPS_MAX; i++)
        if (n->ops_tab[i].used && n->ops_tab[i].via_super && now >= n->ops_tab[i].deadline)
            op_fail(&n->ops_tab[i], -ETIMEDOUT);

    switch (n->role) {
    case OVERLAY_ROLE_SEEKING:
        if (n->cfg.n_bootstrap + n->cfg.n_saved > 0 && now - n->t_start >= n->cfg.cutoff_ms)
            set_cut_off(n, true);
        if (n->closing)
            return;
        seek(n, now, false);
        break;
    case OVERLAY_ROLE_CLIENT: {
        struct peer *s = n->super >= 0 ? &n->peers[n->super] : NULL;
        if (s == NULL || now - s->last_recv > n->cfg.cutoff_ms) {
            /* Our super-node is gone: seek another.  Its channel goes too: if it
             * restarted, it lost its half, and the next ATTACH must handshake anew. */
            if (s != NULL) {
                s->client = false;
                overlay__peer_reset(n, s);
            }
            n->super = -1;
            set_cut_off(n, true);
            if (n->closing)
                return;
            overlay__set_role(n, OVERLAY_ROLE_SEEKING);
            n->t_seek = now;
            break;
        }
        if (now >= n->t_keepalive) {
            uint8_t f = 1;
            n->t_keepalive = now + n->cfg.cutoff_ms / 4;
            (void)overlay__send_inner(n, s, IN_KEEPALIVE, &f, 1);
        }
        if (!n->reachable && !n->probe_pending && now >= n->t_probe && n->advertised.len > 0) {
            uint8_t b[1 + DHT_ADDR_MAX];
            b[0] = n->advertised.len;
            memcpy(b + 1, n->advertised.b, n->advertised.len);
            n->probe_pending = true;
            n->t_probe = now + NODE_PROBE_RETRY_MS;
            (void)overlay__send_inner(n, s, IN_PROBE_REQ, b, 1u + n->advertised.len);
        }
        if (n->probe_pending && now >= n->t_probe)
            n->probe_pending = false;
        if (n->reachable && !n->joining && n->dht == NULL &&
            now - n->t_start >= n->cfg.promote_after_ms && now >= n->t_seek) {
            struct dht_peer via;
            via.id = s->id;
            (void)overlay_addr_to_dht(&s->addr, &via.addr);
            p2p_notice_rl(n->log, &n->state_log, overlay__now(n),
                          "overlay: promoting: joining the ring through the super-node");
            if (join_ring(n, &via) != 0)
                n->t_seek = now + 2000;
        }
        break;
    }
    case OVERLAY_ROLE_MEMBER:
    case OVERLAY_ROLE_SUPER:
        if (n->role == OVERLAY_ROLE_SUPER && !n->ever_joined && n->dht == NULL && !n->joining &&
            now - n->t_start >= 3u * n->cfg.cutoff_ms) {
            /* -s, restarted, and none of its saved peers took it back within a few join
             * attempts (each may take join_timeout_ms): a new ring. */
            p2p_notice_rl(n->log, &n->state_log, overlay__now(n),
                          "overlay: none of the saved peers answered; starting a new ring");
            if (join_ring(n, NULL) != 0)
                p2p_err(n->log, "overlay: cannot start the ring");
            break;
        }
        if (n->dht == NULL || n->joining) {
            if (n->dht == NULL)
                seek(n, now, true);
            break;
        }
        if (!dht_node_cut_off(n->dht, now)) {
            set_cut_off(n, false);
            if (now >= n->t_cut_check) {
                n->t_cut_check = now + 5000;
                remember_leaves(n);
            }
            break;
        }
        set_cut_off(n, true);
        if (n->closing)
            return; /* the health callback closed the node */
        if (n->role == OVERLAY_ROLE_SUPER && now - n->t_cut_since > 4u * n->cfg.cutoff_ms) {
            /* We started the ring and no one is left to rejoin: a ring of one again. */
            p2p_notice_rl(n->log, &n->state_log, overlay__now(n),
                          "overlay: no peer left; a ring of one again");
            n->seek_backoff = 0;
            n->t_seek = now;
            if (join_ring(n, NULL) == 0)
                set_cut_off(n, false);
            break;
        }
        seek(n, now, true);
        break;
    }
}
