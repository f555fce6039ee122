/*
 * tsx.c: the SIP transaction layer (RFC 3261 17, RFC 6026).
 *
 * Design: each transaction is one allocation holding its state, a copy of the
 * request that created it (freed once the transaction has its final response:
 * matching needs only the hashed key from then on), and the one message it may
 * have to send again (the last response of a server transaction, the ACK of an
 * INVITE client transaction), each copy allocated to its exact size.
 * Transactions are found through a chained hash table on a 128-bit key, a keyed
 * BLAKE2b of the 17.1.3 / 17.2.3 matching fields, so a lookup is O(1) whatever the
 * number of transactions and a peer cannot choose which bucket its branch lands in.
 * Every transaction owns two timers in one binary min-heap ordered by due time:
 * the retransmission timer (A, E, G, and the 100 Trying delay) and the timeout
 * timer (B, C, D, F, H, I, J, K, L, M, the server guard, and "destroy now" once
 * terminated).  advance() pops what is due: O(log n) per timer, nothing scanned.
 *
 * Termination is two steps: the transaction leaves the hash table at once (so a
 * new request is no longer matched to it) and its timeout timer is set to "now";
 * advance() then calls on_terminated and frees it.  This keeps every callback out
 * of the calls the TU makes (libuv's rule) and makes "count back to zero" exact.
 *
 * Invariants: a transaction is in the hash table iff its state is not Terminated;
 * a timer is in the heap iff timer.pos != NOT_ARMED; heap and table sizes are fixed
 * at creation from max_tsx (2 timers per transaction), so arming never allocates;
 * every copied message is at most cfg.max_msg bytes.
 */
#include "p2p/sip_tsx.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"

#define KEY_LEN 16
#define NOT_ARMED UINT32_MAX
/* RFC 3261 8.1.1.7 / 17.2.3: branches of 3261 elements begin with this. */
#define MAGIC_COOKIE "z9hG4bK"
#define MAGIC_COOKIE_LEN 7

enum { TIMER_RETRANS = 0, TIMER_TIMEOUT = 1 };

struct tsx_timer {
    uint64_t due;
    uint32_t pos; /* index in layer->heap, NOT_ARMED when not in the heap */
    uint8_t slot;
    struct sip_tsx *t;
};

/* A struct sip_tsx_dest without the room of a sockaddr_storage (AF_INET and
 * AF_INET6 only, as sip_tsx_dest says): 48 bytes instead of 144 in every
 * transaction, which lingers up to 64*T1. */
struct tsx_peer {
    union {
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    uint64_t conn_id;
    uint8_t transport; /* enum sip_tsx_transport */
    bool overlay;      /* sip_tsx_dest.overlay */
};

struct sip_tsx {
    struct sip_tsx_layer *layer;
    struct sip_tsx *hnext;
    uint8_t key[KEY_LEN];
    uint8_t resp_tag[KEY_LEN]; /* RFC 2543 server INVITE: hash of our response's To tag */
    bool client, invite, reliable, rfc2543, has_resp_tag;
    bool guard; /* client INVITE: Timer C fired or CANCEL sent; 64*T1 guard running */
    enum sip_tsx_state state;
    unsigned status;
    uint32_t interval; /* current retransmission interval */
    struct tsx_timer timers[2];
    /* client: destination; server: source of the request, where responses are sent
     * (the transport applies RFC 3261 18.2.2 / RFC 3581 from the top Via) */
    struct tsx_peer peer;
    char *req;
    size_t req_len;
    char *msg; /* server: last response sent; client INVITE: the ACK */
    size_t msg_len;
    void *arg;
};

struct sip_tsx_layer {
    struct sip_tsx_config cfg;
    struct sip_tsx_ops ops;
    uint8_t hash_key[crypto_generichash_KEYBYTES];
    struct sip_tsx **buckets;
    uint32_t bucket_mask;
    struct tsx_timer **heap;
    uint32_t heap_len, heap_cap;
    size_t count;
    struct sip_tsx_stats stats;
};

/* ---- timers: binary min-heap ------------------------------------------------ */

static void heap_set(struct sip_tsx_layer *l, uint32_t i, struct tsx_timer *tm)
{
    l->heap[i] = tm;
    tm->pos = i;
}

static void heap_up(struct sip_tsx_layer *l, uint32_t i)
{
    struct tsx_timer *tm = l->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (l->heap[parent]->due <= tm->due)
            break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, tm);
}

static void heap_down(struct sip_tsx_layer *l, uint32_t i)
{
    struct tsx_timer *tm = l->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= l->heap_len)
            break;
        if (c + 1 < l->heap_len && l->heap[c + 1]->due < l->heap[c]->due)
            c++;
        if (tm->due <= l->heap[c]->due)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, tm);
}

static void timer_disarm(struct sip_tsx *t, int slot)
{
    struct sip_tsx_layer *l = t->layer;
    struct tsx_timer *tm = &t->timers[slot];
    uint32_t i = tm->pos;

    if (i == NOT_ARMED)
        return;
    tm->pos = NOT_ARMED;
    if (--l->heap_len == i)
        return;
    struct tsx_timer *last = l->heap[l->heap_len];
    heap_set(l, i, last);
    heap_up(l, i);
    heap_down(l, last->pos); /* only one of the two moves it */
}

static void timer_arm(struct sip_tsx *t, int slot, uint64_t due)
{
    struct sip_tsx_layer *l = t->layer;
    struct tsx_timer *tm = &t->timers[slot];

    timer_disarm(t, slot);
    assert(l->heap_len < l->heap_cap); /* two per transaction, sized at creation */
    tm->due = due;
    heap_set(l, l->heap_len++, tm);
    heap_up(l, tm->pos);
}

static uint64_t t1x64(const struct sip_tsx_layer *l)
{
    return 64 * (uint64_t)l->cfg.t1_ms;
}

/* ---- keys and the hash table ---------------------------------------------- */

static void key_add(crypto_generichash_state *st, struct p2p_slice s)
{
    uint8_t len[4] = {(uint8_t)(s.len >> 24), (uint8_t)(s.len >> 16), (uint8_t)(s.len >> 8),
                      (uint8_t)s.len};
    /* Length-prefixed, so that no two field lists hash the same bytes. */
    crypto_generichash_update(st, len, sizeof(len));
    if (s.len > 0)
        crypto_generichash_update(st, (const uint8_t *)s.p, s.len);
}

static void key_add_lower(crypto_generichash_state *st, struct p2p_slice s)
{
    uint8_t chunk[64];
    uint8_t len[4] = {(uint8_t)(s.len >> 24), (uint8_t)(s.len >> 16), (uint8_t)(s.len >> 8),
                      (uint8_t)s.len};

    crypto_generichash_update(st, len, sizeof(len));
    for (size_t off = 0; off < s.len; off += sizeof(chunk)) {
        size_t n = s.len - off < sizeof(chunk) ? s.len - off : sizeof(chunk);
        for (size_t i = 0; i < n; i++) {
            uint8_t c = (uint8_t)s.p[off + i];
            chunk[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : c;
        }
        crypto_generichash_update(st, chunk, n);
    }
}

static void key_begin(const struct sip_tsx_layer *l, crypto_generichash_state *st, char kind)
{
    crypto_generichash_init(st, l->hash_key, sizeof(l->hash_key), KEY_LEN);
    crypto_generichash_update(st, (const uint8_t *)&kind, 1);
}

static void key_end(crypto_generichash_state *st, uint8_t out[KEY_LEN])
{
    crypto_generichash_final(st, out, KEY_LEN);
}

/* Hash of a single value (To tags), with the same secret. */
static void value_hash(const struct sip_tsx_layer *l, struct p2p_slice s, uint8_t out[KEY_LEN])
{
    crypto_generichash_state st;
    key_begin(l, &st, 't');
    key_add(&st, s);
    key_end(&st, out);
}

static uint32_t bucket_of(const struct sip_tsx_layer *l, const uint8_t key[KEY_LEN])
{
    uint32_t h;
    memcpy(&h, key, sizeof(h)); /* the key is already a keyed hash */
    return h & l->bucket_mask;
}

static struct sip_tsx *table_find(const struct sip_tsx_layer *l, const uint8_t key[KEY_LEN])
{
    for (struct sip_tsx *t = l->buckets[bucket_of(l, key)]; t != NULL; t = t->hnext) {
        if (memcmp(t->key, key, KEY_LEN) == 0)
            return t;
    }
    return NULL;
}

static void table_insert(struct sip_tsx *t)
{
    struct sip_tsx **b = &t->layer->buckets[bucket_of(t->layer, t->key)];
    t->hnext = *b;
    *b = t;
}

static void table_remove(struct sip_tsx *t)
{
    struct sip_tsx **p = &t->layer->buckets[bucket_of(t->layer, t->key)];
    while (*p != NULL && *p != t)
        p = &(*p)->hnext;
    if (*p == t)
        *p = t->hnext;
    t->hnext = NULL;
}

/* ---- what matching needs from a message ----------------------------------- */

struct msg_info {
    struct sip_via via; /* top Via */
    struct sip_cseq cseq;
    bool rfc3261; /* the top Via branch carries the magic cookie */
};

static int msg_info(const struct sip_msg *msg, struct msg_info *mi)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;
    const struct sip_hdr *h;

    sip_hdr_iter_init(&it, msg, SIP_HDR_VIA);
    if (!sip_hdr_iter_next(&it, &v) || sip_via_parse(v, &mi->via) < 0)
        return -EBADMSG;
    h = sip_msg_hdr(msg, SIP_HDR_CSEQ);
    if (h == NULL || sip_cseq_parse(h->value, &mi->cseq) < 0)
        return -EBADMSG;
    /* RFC 3261 17.2.3: a branch beginning with the cookie was set by a 3261 element. */
    mi->rfc3261 = mi->via.branch.len > MAGIC_COOKIE_LEN &&
                  memcmp(mi->via.branch.p, MAGIC_COOKIE, MAGIC_COOKIE_LEN) == 0;
    return 0;
}

static int tag_of(const struct sip_msg *msg, enum sip_hdr_id id, struct p2p_slice *tag)
{
    const struct sip_hdr *h = sip_msg_hdr(msg, id);
    struct sip_addr a;

    if (h == NULL || sip_addr_parse(h->value, &a) < 0)
        return -EBADMSG;
    *tag = a.tag;
    return 0;
}

/* RFC 3261 17.2.3: ACK matches the INVITE that created the transaction. */
static struct p2p_slice method_class(struct p2p_slice method)
{
    if (p2p_slice_eq(method, P2P_SLICE_LIT("ACK")))
        return P2P_SLICE_LIT("INVITE");
    return method;
}

/*
 * Server key.  RFC 3261 17.2.3: branch, sent-by (host case-insensitive, port) and
 * method.  RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID, CSeq number,
 * top Via (the CSeq method as well, except for ACK, through method).
 */
static int server_key(const struct sip_tsx_layer *l, const struct sip_msg *msg,
                      const struct msg_info *mi, struct p2p_slice method, struct p2p_slice to_tag,
                      uint8_t out[KEY_LEN])
{
    crypto_generichash_state st;
    uint8_t port[2] = {(uint8_t)(mi->via.port >> 8), (uint8_t)mi->via.port};

    if (mi->rfc3261) {
        key_begin(l, &st, 's');
        key_add(&st, method);
        key_add(&st, mi->via.branch);
        key_add_lower(&st, mi->via.host);
        crypto_generichash_update(&st, port, sizeof(port));
    } else {
        const struct sip_hdr *callid = sip_msg_hdr(msg, SIP_HDR_CALL_ID);
        struct p2p_slice from_tag;
        uint8_t num[4] = {(uint8_t)(mi->cseq.num >> 24), (uint8_t)(mi->cseq.num >> 16),
                          (uint8_t)(mi->cseq.num >> 8), (uint8_t)mi->cseq.num};
        if (callid == NULL || tag_of(msg, SIP_HDR_FROM, &from_tag) < 0)
            return -EBADMSG;
        key_begin(l, &st, '2');
        key_add(&st, method);
        key_add(&st, msg->ruri);
        key_add(&st, to_tag);
        key_add(&st, from_tag);
        key_add(&st, callid->value);
        crypto_generichash_update(&st, num, sizeof(num));
        key_add(&st, mi->via.value);
    }
    key_end(&st, out);
    return 0;
}

/* Client key, RFC 3261 17.1.3: top Via branch and CSeq method. */
static void client_key(const struct sip_tsx_layer *l, struct p2p_slice branch,
                       struct p2p_slice method, uint8_t out[KEY_LEN])
{
    crypto_generichash_state st;
    key_begin(l, &st, 'c');
    key_add(&st, method);
    key_add(&st, branch);
    key_end(&st, out);
}

/* ---- transaction lifecycle ---------------------------------------------------- */

static int copy_msg(const struct sip_tsx_layer *l, const char *bytes, size_t len, char **out)
{
    char *p;
    if (len > l->cfg.max_msg)
        return -EMSGSIZE;
    p = malloc(len > 0 ? len : 1);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, bytes, len);
    *out = p;
    return 0;
}

/* Replaces the stored message; on failure the old one stays. */
static int store_msg(struct sip_tsx *t, const char *bytes, size_t len)
{
    char *p;
    int rc = copy_msg(t->layer, bytes, len, &p);
    if (rc < 0)
        return rc;
    free(t->msg);
    t->msg = p;
    t->msg_len = len;
    return 0;
}

static struct sip_tsx *tsx_alloc(struct sip_tsx_layer *l, const char *bytes, size_t len, int *rc)
{
    struct sip_tsx *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    if ((*rc = copy_msg(l, bytes, len, &t->req)) < 0) {
        free(t);
        return NULL;
    }
    t->req_len = len;
    t->layer = l;
    for (int i = 0; i < 2; i++) {
        t->timers[i].pos = NOT_ARMED;
        t->timers[i].slot = (uint8_t)i;
        t->timers[i].t = t;
    }
    return t;
}

/*
 * Once a transaction has its final response, nothing reads its request again:
 * server matching uses the hash key (RFC 3261 17.2.3 branch, sent-by, method, or
 * the RFC 2543 fields, all hashed in it) and the To tag hash; the client has built
 * its ACK (17.1.1.3) and sends no CANCEL any more (9.1).  Freeing the copy there
 * keeps a lingering transaction (Timer J, K, D, L, M: up to 64*T1) small.
 */
static void drop_request(struct sip_tsx *t)
{
    free(t->req);
    t->req = NULL;
    t->req_len = 0;
}

static void tsx_free(struct sip_tsx *t)
{
    free(t->req);
    free(t->msg);
    free(t);
}

static void tsx_terminate(struct sip_tsx *t, uint64_t now_ms)
{
    if (t->state == SIP_TSX_TERMINATED)
        return;
    t->state = SIP_TSX_TERMINATED;
    table_remove(t);
    timer_disarm(t, TIMER_RETRANS);
    timer_arm(t, TIMER_TIMEOUT, now_ms); /* destroyed by the next advance() */
}

static void tsx_destroy(struct sip_tsx *t)
{
    struct sip_tsx_layer *l = t->layer;

    timer_disarm(t, TIMER_RETRANS);
    timer_disarm(t, TIMER_TIMEOUT);
    l->count--;
    if (l->ops.on_terminated != NULL)
        l->ops.on_terminated(t, l->ops.arg);
    tsx_free(t);
}

static void peer_set(struct sip_tsx *t, const struct sip_tsx_dest *d)
{
    memcpy(&t->peer.addr, &d->addr, sizeof(t->peer.addr));
    t->peer.conn_id = d->conn_id;
    t->peer.transport = (uint8_t)d->transport;
    t->peer.overlay = d->overlay;
}

static void peer_get(const struct sip_tsx *t, struct sip_tsx_dest *d)
{
    memset(d, 0, sizeof(*d));
    memcpy(&d->addr, &t->peer.addr, sizeof(t->peer.addr));
    d->conn_id = t->peer.conn_id;
    d->transport = (enum sip_tsx_transport)t->peer.transport;
    d->overlay = t->peer.overlay;
}

/* Sends to the transaction's peer. */
static int tsx_send(struct sip_tsx *t, const char *bytes, size_t len)
{
    struct sip_tsx_dest d;
    peer_get(t, &d);
    return t->layer->ops.send(bytes, len, &d, t->layer->ops.arg);
}

/* RFC 3261 17.1.4 / 17.2.4: a transport failure ends the transaction. */
static void tsx_fail(struct sip_tsx *t, int err, uint64_t now_ms)
{
    struct sip_tsx_layer *l = t->layer;
    tsx_terminate(t, now_ms);
    l->stats.transport_errors++;
    if (l->ops.on_transport_error != NULL)
        l->ops.on_transport_error(t, err, l->ops.arg);
}

static bool is_reliable(const struct sip_tsx_dest *d)
{
    return d->transport != SIP_TSX_UDP;
}

/* ---- server transactions ---------------------------------------------------- */

/* RFC 3261 17.2.1: the transaction's own 100 (Trying), built from the request. */
static int send_trying(struct sip_tsx *t)
{
    struct sip_msg req;
    struct sip_resp r = {.status = 100};
    struct sip_tsx_dest peer;
    struct p2p_buf b;
    char host[INET6_ADDRSTRLEN];
    int rc;

    if (sip_msg_parse(&req, t->req, t->req_len, SIP_MSG_DGRAM, NULL) < 0)
        return -EBADMSG;
    peer_get(t, &peer);
    if ((rc = sip_tsx_dest_src(&peer, host, sizeof(host), &r.src)) < 0)
        return rc;
    p2p_buf_init(&b, t->layer->cfg.max_msg);
    rc = sip_build_response(&req, &r, &b);
    if (rc == 0)
        rc = store_msg(t, b.data, b.len);
    p2p_buf_free(&b);
    if (rc < 0)
        return rc;
    t->status = 100;
    return tsx_send(t, t->msg, t->msg_len);
}

/* A request (or ACK) that matched server transaction t. */
static void server_match(struct sip_tsx *t, bool is_ack, const struct sip_msg *msg,
                         struct p2p_slice raw, const struct sip_tsx_dest *src, uint64_t now_ms)
{
    struct sip_tsx_layer *l = t->layer;
    int rc;

    if (is_ack) {
        switch (t->state) {
        case SIP_TSX_COMPLETED:
            /* RFC 3261 17.2.1: ACK -> Confirmed, Timer I = T4 (unreliable) or 0. */
            l->stats.absorbed++;
            t->state = SIP_TSX_CONFIRMED;
            timer_disarm(t, TIMER_RETRANS);
            timer_arm(t, TIMER_TIMEOUT, now_ms + (t->reliable ? 0 : l->cfg.t4_ms));
            break;
        case SIP_TSX_ACCEPTED:
            /* RFC 6026 7.1: in Accepted, an ACK goes to the TU (ACK to a 2xx). */
            l->ops.on_request(NULL, msg, raw, src, l->ops.arg);
            break;
        default:
            break; /* Confirmed: retransmitted ACK absorbed; Proceeding: nothing to ack */
        }
        return;
    }
    /* A retransmission of the request. */
    l->stats.absorbed++;
    switch (t->state) {
    case SIP_TSX_PROCEEDING: /* 17.2.1 / 17.2.2: the most recent provisional again */
    case SIP_TSX_COMPLETED:  /* 17.2.1 / 17.2.2: the final response again */
        if (t->msg != NULL && (rc = tsx_send(t, t->msg, t->msg_len)) < 0)
            tsx_fail(t, rc, now_ms);
        break;
    default:
        break; /* Trying, Confirmed, Accepted (RFC 6026 7.1): absorbed */
    }
}

static int server_new(struct sip_tsx_layer *l, const struct sip_msg *msg, const struct msg_info *mi,
                      const uint8_t key[KEY_LEN], struct p2p_slice raw,
                      const struct sip_tsx_dest *src, uint64_t now_ms)
{
    struct sip_tsx *t;
    int rc;

    if (l->count >= l->cfg.max_tsx) {
        l->stats.refused++;
        return -ENOBUFS;
    }
    t = tsx_alloc(l, raw.p, raw.len, &rc);
    if (t == NULL)
        return rc;
    memcpy(t->key, key, KEY_LEN);
    t->invite = p2p_slice_eq(msg->method, P2P_SLICE_LIT("INVITE"));
    t->rfc2543 = !mi->rfc3261;
    peer_set(t, src);
    t->reliable = is_reliable(src);
    table_insert(t);
    l->count++;
    l->stats.server_created++;

    if (t->invite) {
        t->state = SIP_TSX_PROCEEDING;
        /* RFC 3261 17.2.1: 100 Trying unless the TU answers within 200 ms. */
        if (!l->cfg.trying_at_once)
            timer_arm(t, TIMER_RETRANS, now_ms + l->cfg.trying_ms);
    } else {
        t->state = SIP_TSX_TRYING;
        /* Guard: the client's Timer F (64*T1) has passed by then. */
        timer_arm(t, TIMER_TIMEOUT, now_ms + t1x64(l) + l->cfg.t4_ms);
    }
    l->ops.on_request(t, msg, raw, src, l->ops.arg);

    /* RFC 3261 16.2 note: a proxy may send 100 at once; only if the TU did not
     * already answer from inside on_request. */
    if (t->invite && l->cfg.trying_at_once && t->state == SIP_TSX_PROCEEDING && t->status == 0) {
        if ((rc = send_trying(t)) < 0)
            tsx_fail(t, rc, now_ms);
    }
    return 0;
}

static int recv_request(struct sip_tsx_layer *l, const struct sip_msg *msg, struct p2p_slice raw,
                        const struct sip_tsx_dest *src, uint64_t now_ms)
{
    struct msg_info mi;
    struct p2p_slice to_tag = {NULL, 0};
    struct p2p_slice method = method_class(msg->method);
    bool is_ack = p2p_slice_eq(msg->method, P2P_SLICE_LIT("ACK"));
    uint8_t key[KEY_LEN];
    struct sip_tsx *t;
    int rc;

    if ((rc = msg_info(msg, &mi)) < 0)
        return rc;
    if (!mi.rfc3261 && (rc = tag_of(msg, SIP_HDR_TO, &to_tag)) < 0)
        return rc;
    if ((rc = server_key(l, msg, &mi, method, to_tag, key)) < 0)
        return rc;
    t = table_find(l, key);
    if (!mi.rfc3261 && is_ack) {
        /* RFC 3261 17.2.3: an RFC 2543 ACK carries the To tag of our response, which
         * the INVITE had not when it was the first of its dialog. */
        uint8_t tag[KEY_LEN];
        if (t == NULL) {
            if ((rc = server_key(l, msg, &mi, method, (struct p2p_slice){NULL, 0}, key)) < 0)
                return rc;
            t = table_find(l, key);
        }
        value_hash(l, to_tag, tag);
        if (t != NULL && (!t->has_resp_tag || memcmp(tag, t->resp_tag, KEY_LEN) != 0))
            t = NULL;
    }
    if (t != NULL && !t->client) {
        server_match(t, is_ack, msg, raw, src, now_ms);
        return 0;
    }
    if (is_ack) {
        /* No transaction: an ACK to a 2xx, end to end (17.2.3, 13.2.2.4). */
        l->ops.on_request(NULL, msg, raw, src, l->ops.arg);
        return 0;
    }
    return server_new(l, msg, &mi, key, raw, src, now_ms);
}

int sip_tsx_server_respond(struct sip_tsx *t, const char *bytes, size_t len, uint64_t now_ms)
{
    struct sip_tsx_layer *l = t->layer;
    struct sip_msg resp;
    unsigned status;
    bool store = true;
    int rc;

    if (t->client || t->state == SIP_TSX_TERMINATED)
        return -EINVAL;
    if (len > l->cfg.max_msg)
        return -EMSGSIZE;
    if (sip_msg_parse(&resp, bytes, len, SIP_MSG_DGRAM, NULL) < 0 || resp.is_request)
        return -EINVAL;
    status = resp.status;

    if (t->invite) {
        if (t->state == SIP_TSX_ACCEPTED) {
            /* RFC 6026 7.1: further 2xx from the TU are sent, not stored. */
            if (status < 200 || status >= 300)
                return -EINVAL;
            store = false;
        } else if (t->state != SIP_TSX_PROCEEDING) {
            return -EINVAL;
        } else if (status >= 200 && status < 300) {
            store = false; /* the 2xx is never retransmitted by the transaction */
        }
    } else if (t->state != SIP_TSX_TRYING && t->state != SIP_TSX_PROCEEDING) {
        return -EINVAL;
    }
    if (t->rfc2543 && t->invite && status >= 200) {
        /* RFC 3261 17.2.3: the ACK of a 2543 client carries the To tag we send. */
        struct p2p_slice tag;
        if (tag_of(&resp, SIP_HDR_TO, &tag) < 0)
            return -EINVAL;
        value_hash(l, tag, t->resp_tag);
        t->has_resp_tag = true;
    }
    if (store) {
        if ((rc = store_msg(t, bytes, len)) < 0)
            return rc;
    } else {
        free(t->msg);
        t->msg = NULL;
        t->msg_len = 0;
    }
    t->status = status;
    if (status >= 200)
        drop_request(t);

    if (t->invite) {
        if (status < 200) {
            timer_disarm(t, TIMER_RETRANS); /* no 100 Trying from us any more */
        } else if (status < 300) {
            /* RFC 6026 7.1: 2xx -> Accepted, Timer L = 64*T1. */
            if (t->state == SIP_TSX_PROCEEDING) {
                t->state = SIP_TSX_ACCEPTED;
                timer_disarm(t, TIMER_RETRANS);
                timer_arm(t, TIMER_TIMEOUT, now_ms + t1x64(l));
            }
        } else {
            /* RFC 3261 17.2.1: 300-699 -> Completed, Timer G (unreliable, T1),
             * Timer H = 64*T1. */
            t->state = SIP_TSX_COMPLETED;
            t->interval = l->cfg.t1_ms;
            if (t->reliable)
                timer_disarm(t, TIMER_RETRANS);
            else
                timer_arm(t, TIMER_RETRANS, now_ms + t->interval);
            timer_arm(t, TIMER_TIMEOUT, now_ms + t1x64(l));
        }
    } else if (status < 200) {
        t->state = SIP_TSX_PROCEEDING; /* RFC 3261 17.2.2 */
    } else {
        /* RFC 3261 17.2.2: final -> Completed, Timer J = 64*T1 unreliable, 0 reliable. */
        t->state = SIP_TSX_COMPLETED;
        timer_arm(t, TIMER_TIMEOUT, now_ms + (t->reliable ? 0 : t1x64(l)));
    }

    rc = tsx_send(t, bytes, len);
    if (rc < 0)
        tsx_terminate(t, now_ms); /* RFC 3261 17.2.4; the TU learns it from rc */
    return rc;
}

int sip_tsx_layer_match_cancel(struct sip_tsx_layer *l, const struct sip_msg *msg,
                               struct sip_tsx **out)
{
    struct msg_info mi;
    struct p2p_slice to_tag = {NULL, 0};
    uint8_t key[KEY_LEN];
    struct sip_tsx *t;
    int rc;

    if (!msg->is_request || (rc = msg_info(msg, &mi)) < 0)
        return -EBADMSG;
    if (!mi.rfc3261 && (rc = tag_of(msg, SIP_HDR_TO, &to_tag)) < 0)
        return rc;
    /* RFC 3261 9.2: the 17.2.3 rules, the method taken as INVITE. */
    if ((rc = server_key(l, msg, &mi, P2P_SLICE_LIT("INVITE"), to_tag, key)) < 0)
        return rc;
    t = table_find(l, key);
    if (t == NULL || t->client || !t->invite)
        return -ENOENT;
    *out = t;
    return 0;
}

/* ---- client transactions ------------------------------------------------------ */

int sip_tsx_client_new(struct sip_tsx_layer *l, struct sip_tsx **out, const char *bytes, size_t len,
                       const struct sip_tsx_dest *dest, void *arg, uint64_t now_ms)
{
    struct sip_msg req;
    struct msg_info mi;
    uint8_t key[KEY_LEN];
    struct sip_tsx *t;
    uint64_t timeout;
    int rc;

    if (len > l->cfg.max_msg)
        return -EMSGSIZE;
    if (sip_msg_parse(&req, bytes, len, SIP_MSG_DGRAM, NULL) < 0 || !req.is_request ||
        p2p_slice_eq(req.method, P2P_SLICE_LIT("ACK")) || msg_info(&req, &mi) < 0 || !mi.rfc3261)
        return -EINVAL;
    client_key(l, mi.via.branch, req.method, key);
    if (table_find(l, key) != NULL)
        return -EEXIST;
    if (l->count >= l->cfg.max_tsx)
        return -ENOBUFS;
    t = tsx_alloc(l, bytes, len, &rc);
    if (t == NULL)
        return rc;
    memcpy(t->key, key, KEY_LEN);
    t->client = true;
    t->invite = p2p_slice_eq(req.method, P2P_SLICE_LIT("INVITE"));
    peer_set(t, dest);
    t->reliable = is_reliable(dest);
    t->arg = arg;
    if ((rc = tsx_send(t, t->req, t->req_len)) < 0) {
        tsx_free(t);
        return rc;
    }
    table_insert(t);
    l->count++;
    l->stats.client_created++;

    /* RFC 3261 17.1.1.2 (Timer A) and 17.1.2.2 (Timer E): T1, unreliable only. */
    t->interval = l->cfg.t1_ms;
    if (!t->reliable)
        timer_arm(t, TIMER_RETRANS, now_ms + t->interval);
    /* Timer B / Timer F = 64*T1; 16.6 step 11: Timer C, if sooner, acts the same
     * while no provisional response has come. */
    timeout = t1x64(l);
    if (t->invite) {
        t->state = SIP_TSX_CALLING;
        if (l->cfg.timer_c_ms != 0 && l->cfg.timer_c_ms < timeout)
            timeout = l->cfg.timer_c_ms;
    } else {
        t->state = SIP_TSX_TRYING;
    }
    timer_arm(t, TIMER_TIMEOUT, now_ms + timeout);
    *out = t;
    return 0;
}

int sip_tsx_client_cancelled(struct sip_tsx *t, uint64_t now_ms)
{
    if (!t->client || !t->invite || t->state != SIP_TSX_PROCEEDING)
        return -EINVAL;
    /* RFC 3261 9.1: no final response within 64*T1 of the CANCEL: give up. */
    if (!t->guard) {
        t->guard = true;
        timer_arm(t, TIMER_TIMEOUT, now_ms + t1x64(t->layer));
    }
    return 0;
}

/* RFC 3261 17.1.1.3: the ACK for a 300-699 response, built from our request. */
static int build_ack(struct sip_tsx *t, const struct sip_msg *resp)
{
    struct sip_msg req;
    struct p2p_buf b;
    int rc;

    if (sip_msg_parse(&req, t->req, t->req_len, SIP_MSG_DGRAM, NULL) < 0)
        return -EBADMSG;
    p2p_buf_init(&b, t->layer->cfg.max_msg);
    rc = sip_build_ack(&req, resp, &b);
    if (rc == 0)
        rc = store_msg(t, b.data, b.len);
    p2p_buf_free(&b);
    return rc;
}

static void pass_up(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                    const struct sip_tsx_dest *src)
{
    t->status = msg->status;
    t->layer->ops.on_response(t, msg, raw, src, t->layer->ops.arg);
}

static void client_invite_response(struct sip_tsx *t, const struct sip_msg *msg,
                                   struct p2p_slice raw, const struct sip_tsx_dest *src,
                                   uint64_t now_ms)
{
    struct sip_tsx_layer *l = t->layer;
    unsigned status = msg->status;
    int rc;

    switch (t->state) {
    case SIP_TSX_CALLING:
    case SIP_TSX_PROCEEDING:
        if (status < 200) {
            /* RFC 3261 17.1.1.2: 1xx -> Proceeding, no more retransmissions; Timer B
             * only guards Calling.  16.6 step 11: a provisional resets Timer C. */
            t->state = SIP_TSX_PROCEEDING;
            timer_disarm(t, TIMER_RETRANS);
            if (!t->guard) {
                if (l->cfg.timer_c_ms != 0)
                    timer_arm(t, TIMER_TIMEOUT, now_ms + l->cfg.timer_c_ms);
                else
                    timer_disarm(t, TIMER_TIMEOUT);
            }
            pass_up(t, msg, raw, src);
        } else if (status < 300) {
            /* RFC 6026 7.2: 2xx -> Accepted, Timer M = 64*T1, 2xx passed up. */
            t->state = SIP_TSX_ACCEPTED;
            timer_disarm(t, TIMER_RETRANS);
            timer_arm(t, TIMER_TIMEOUT, now_ms + t1x64(l));
            drop_request(t);
            pass_up(t, msg, raw, src);
        } else {
            /* RFC 3261 17.1.1.2: 300-699 -> Completed, ACK, Timer D (>= 32 s
             * unreliable, 0 reliable), response passed up. */
            t->state = SIP_TSX_COMPLETED;
            timer_disarm(t, TIMER_RETRANS);
            timer_arm(t, TIMER_TIMEOUT, now_ms + (t->reliable ? 0 : l->cfg.timer_d_ms));
            rc = build_ack(t, msg);
            drop_request(t);
            pass_up(t, msg, raw, src);
            if (rc == 0)
                rc = tsx_send(t, t->msg, t->msg_len);
            if (rc < 0 && t->state != SIP_TSX_TERMINATED)
                tsx_fail(t, rc, now_ms);
        }
        break;
    case SIP_TSX_COMPLETED:
        /* 17.1.1.2: a retransmitted final response gets the ACK again, not the TU. */
        l->stats.absorbed++;
        if (status >= 300 && t->msg != NULL && (rc = tsx_send(t, t->msg, t->msg_len)) < 0)
            tsx_fail(t, rc, now_ms);
        break;
    case SIP_TSX_ACCEPTED:
        /* RFC 6026 7.2: every 2xx retransmission goes up (the TU acks or forwards). */
        if (status >= 200 && status < 300)
            pass_up(t, msg, raw, src);
        break;
    default:
        break;
    }
}

static void client_noninvite_response(struct sip_tsx *t, const struct sip_msg *msg,
                                      struct p2p_slice raw, const struct sip_tsx_dest *src,
                                      uint64_t now_ms)
{
    struct sip_tsx_layer *l = t->layer;

    if (t->state != SIP_TSX_TRYING && t->state != SIP_TSX_PROCEEDING) {
        l->stats.absorbed++; /* 17.1.2.2: Completed absorbs retransmitted responses */
        return;
    }
    if (msg->status < 200) {
        t->state = SIP_TSX_PROCEEDING;
    } else {
        /* RFC 3261 17.1.2.2: final -> Completed, Timer K = T4 unreliable, 0 reliable. */
        t->state = SIP_TSX_COMPLETED;
        timer_disarm(t, TIMER_RETRANS);
        timer_arm(t, TIMER_TIMEOUT, now_ms + (t->reliable ? 0 : l->cfg.t4_ms));
        drop_request(t);
    }
    pass_up(t, msg, raw, src);
}

static int recv_response(struct sip_tsx_layer *l, const struct sip_msg *msg, struct p2p_slice raw,
                         const struct sip_tsx_dest *src, uint64_t now_ms)
{
    struct msg_info mi;
    uint8_t key[KEY_LEN];
    struct sip_tsx *t = NULL;
    int rc;

    if ((rc = msg_info(msg, &mi)) < 0)
        return rc;
    /* RFC 3261 17.1.3: our branches always have the cookie; others match nothing. */
    if (mi.rfc3261) {
        client_key(l, mi.via.branch, mi.cseq.method, key);
        t = table_find(l, key);
    }
    if (t == NULL || !t->client) {
        l->stats.stray_responses++;
        l->ops.on_response(NULL, msg, raw, src, l->ops.arg);
        return 0;
    }
    if (t->invite)
        client_invite_response(t, msg, raw, src, now_ms);
    else
        client_noninvite_response(t, msg, raw, src, now_ms);
    return 0;
}

int sip_tsx_layer_recv(struct sip_tsx_layer *l, const struct sip_msg *msg, struct p2p_slice raw,
                       const struct sip_tsx_dest *src, uint64_t now_ms)
{
    if (msg->is_request)
        return recv_request(l, msg, raw, src, now_ms);
    return recv_response(l, msg, raw, src, now_ms);
}

/* ---- timers firing ------------------------------------------------------------- */

/* 2 * x, capped (cap may be UINT32_MAX for Timer A, which has no cap). */
static uint32_t double_capped(uint32_t x, uint32_t cap)
{
    return x <= cap / 2 ? 2 * x : cap;
}

static void fire_retrans(struct sip_tsx *t, uint64_t now_ms)
{
    struct sip_tsx_layer *l = t->layer;
    int rc = 0;

    if (t->client) {
        /* Timer A (17.1.1.2) doubles without bound; Timer E (17.1.2.2) doubles up to
         * T2 in Trying and is T2 in Proceeding. */
        if (t->invite && t->state == SIP_TSX_CALLING)
            t->interval = double_capped(t->interval, UINT32_MAX);
        else if (!t->invite && t->state == SIP_TSX_TRYING)
            t->interval = double_capped(t->interval, l->cfg.t2_ms);
        else if (!t->invite && t->state == SIP_TSX_PROCEEDING)
            t->interval = l->cfg.t2_ms;
        else
            return;
        rc = tsx_send(t, t->req, t->req_len);
        if (rc == 0) {
            l->stats.retransmitted++;
            timer_arm(t, TIMER_RETRANS, now_ms + t->interval);
        }
    } else if (t->invite && t->state == SIP_TSX_PROCEEDING) {
        if (t->status == 0)
            rc = send_trying(t); /* 17.2.1: 200 ms without a TU response */
    } else if (t->invite && t->state == SIP_TSX_COMPLETED) {
        /* Timer G (17.2.1): the final response again, interval doubling up to T2. */
        t->interval = double_capped(t->interval, l->cfg.t2_ms);
        rc = tsx_send(t, t->msg, t->msg_len);
        if (rc == 0) {
            l->stats.retransmitted++;
            timer_arm(t, TIMER_RETRANS, now_ms + t->interval);
        }
    }
    if (rc < 0)
        tsx_fail(t, rc, now_ms);
}

static void timeout_cb(struct sip_tsx *t, enum sip_tsx_timeout why)
{
    t->layer->stats.timeouts++;
    if (t->layer->ops.on_timeout != NULL)
        t->layer->ops.on_timeout(t, why, t->layer->ops.arg);
}

static void fire_timeout(struct sip_tsx *t, uint64_t now_ms)
{
    struct sip_tsx_layer *l = t->layer;

    switch (t->state) {
    case SIP_TSX_TERMINATED:
        tsx_destroy(t);
        return;
    case SIP_TSX_CALLING: /* Timer B (or an earlier Timer C: 16.6 step 11, as a 408) */
    case SIP_TSX_TRYING:  /* client: Timer F; server: the TU guard */
        tsx_terminate(t, now_ms);
        timeout_cb(t, t->client ? SIP_TSX_TIMEOUT_RESPONSE : SIP_TSX_TIMEOUT_TU);
        return;
    case SIP_TSX_PROCEEDING:
        if (!t->client) {
            tsx_terminate(t, now_ms);
            timeout_cb(t, SIP_TSX_TIMEOUT_TU);
        } else if (t->invite && !t->guard) {
            /* Timer C in Proceeding (16.6 step 11): the proxy cancels; we wait 64*T1
             * for the final response (9.1) before giving up. */
            t->guard = true;
            timer_arm(t, TIMER_TIMEOUT, now_ms + t1x64(l));
            timeout_cb(t, SIP_TSX_TIMEOUT_C);
        } else {
            tsx_terminate(t, now_ms); /* Timer F, or 64*T1 after Timer C / CANCEL */
            timeout_cb(t, SIP_TSX_TIMEOUT_RESPONSE);
        }
        return;
    case SIP_TSX_COMPLETED:
        tsx_terminate(t, now_ms); /* Timer D, K, J; or H: */
        if (!t->client && t->invite)
            timeout_cb(t, SIP_TSX_TIMEOUT_ACK); /* 17.2.1: H fired, the ACK never came */
        return;
    case SIP_TSX_CONFIRMED: /* Timer I */
    case SIP_TSX_ACCEPTED:  /* RFC 6026: Timer L (server), Timer M (client) */
        tsx_terminate(t, now_ms);
        return;
    }
}

void sip_tsx_layer_advance(struct sip_tsx_layer *l, uint64_t now_ms)
{
    /* Each transaction fires at most a few timers at one instant (state timer,
     * destroy); the bound only keeps a bug from looping forever. */
    size_t budget = 4 * (size_t)l->heap_len + 16;

    while (l->heap_len > 0 && l->heap[0]->due <= now_ms && budget-- > 0) {
        struct tsx_timer *tm = l->heap[0];
        timer_disarm(tm->t, tm->slot);
        if (tm->slot == TIMER_RETRANS)
            fire_retrans(tm->t, now_ms);
        else
            fire_timeout(tm->t, now_ms);
    }
}

uint64_t sip_tsx_layer_next_deadline(const struct sip_tsx_layer *l)
{
    return l->heap_len > 0 ? l->heap[0]->due : UINT64_MAX;
}

size_t sip_tsx_layer_count(const struct sip_tsx_layer *l)
{
    return l->count;
}

void sip_tsx_layer_stats(const struct sip_tsx_layer *l, struct sip_tsx_stats *out)
{
    *out = l->stats;
}

/* ---- layer ------------------------------------------------------------------------ */

void sip_tsx_config_default(struct sip_tsx_config *cfg)
{
    *cfg = (struct sip_tsx_config){
        .t1_ms = 500,
        .t2_ms = 4000,
        .t4_ms = 5000,
        .timer_d_ms = 32000,
        .timer_c_ms = 0,
        .trying_ms = 200,
        .trying_at_once = false,
        .max_tsx = 65536,
        .max_msg = SIP_MSG_MAX_SIZE,
    };
}

int sip_tsx_layer_new(struct sip_tsx_layer **out, const struct sip_tsx_config *cfg,
                      const struct sip_tsx_ops *ops)
{
    struct sip_tsx_layer *l;
    uint32_t nb = 1;

    if (cfg->t1_ms == 0 || cfg->t2_ms < cfg->t1_ms || cfg->t4_ms == 0 || cfg->max_tsx == 0 ||
        cfg->max_tsx > (1u << 24) || cfg->max_msg == 0 || cfg->timer_d_ms < 32000 ||
        (cfg->timer_c_ms != 0 && cfg->timer_c_ms <= 180000) || ops->send == NULL ||
        ops->on_request == NULL || ops->on_response == NULL)
        return -EINVAL;
    if (sodium_init() < 0)
        return -EIO;
    /* At most 4 transactions per bucket at max_tsx: the table stays small (its
     * buckets are touched at random, so all of it is resident) while a chain
     * is a few 16-byte compares. */
    while (nb < cfg->max_tsx / 4)
        nb <<= 1;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    l->buckets = calloc(nb, sizeof(*l->buckets));
    l->heap_cap = 2 * cfg->max_tsx;
    l->heap = calloc(l->heap_cap, sizeof(*l->heap));
    if (l->buckets == NULL || l->heap == NULL) {
        free(l->buckets);
        free(l->heap);
        free(l);
        return -ENOMEM;
    }
    l->bucket_mask = nb - 1;
    l->cfg = *cfg;
    l->ops = *ops;
    randombytes_buf(l->hash_key, sizeof(l->hash_key));
    *out = l;
    return 0;
}

void sip_tsx_layer_free(struct sip_tsx_layer *l)
{
    if (l == NULL)
        return;
    /* Every live transaction has its timeout timer or is in the table; walk both. */
    for (uint32_t b = 0; b <= l->bucket_mask; b++) {
        struct sip_tsx *t = l->buckets[b];
        while (t != NULL) {
            struct sip_tsx *next = t->hnext;
            timer_disarm(t, TIMER_RETRANS);
            timer_disarm(t, TIMER_TIMEOUT);
            tsx_free(t);
            t = next;
        }
    }
    /* What remains in the heap are terminated transactions (not in the table). */
    while (l->heap_len > 0) {
        struct sip_tsx *t = l->heap[0]->t;
        timer_disarm(t, TIMER_RETRANS);
        timer_disarm(t, TIMER_TIMEOUT);
        tsx_free(t);
    }
    free(l->buckets);
    free(l->heap);
    free(l);
}

/* ---- accessors -------------------------------------------------------------------- */

void *sip_tsx_arg(const struct sip_tsx *t)
{
    return t->arg;
}

void sip_tsx_set_arg(struct sip_tsx *t, void *arg)
{
    t->arg = arg;
}

enum sip_tsx_state sip_tsx_state(const struct sip_tsx *t)
{
    return t->state;
}

bool sip_tsx_is_client(const struct sip_tsx *t)
{
    return t->client;
}

bool sip_tsx_is_invite(const struct sip_tsx *t)
{
    return t->invite;
}

struct p2p_slice sip_tsx_request(const struct sip_tsx *t)
{
    return (struct p2p_slice){t->req, t->req_len};
}

unsigned sip_tsx_status(const struct sip_tsx *t)
{
    return t->status;
}

void sip_tsx_peer(const struct sip_tsx *t, struct sip_tsx_dest *out)
{
    peer_get(t, out);
}

int sip_tsx_dest_src(const struct sip_tsx_dest *d, char *buf, size_t size, struct sip_src *out)
{
    const void *a;
    uint16_t port;

    if (d->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&d->addr;
        a = &sin->sin_addr;
        port = ntohs(sin->sin_port);
    } else if (d->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&d->addr;
        a = &sin6->sin6_addr;
        port = ntohs(sin6->sin6_port);
    } else {
        return -EAFNOSUPPORT;
    }
    if (size > (size_t)INT32_MAX || inet_ntop(d->addr.ss_family, a, buf, (socklen_t)size) == NULL)
        return -ENOSPC;
    out->host = p2p_slice_cstr(buf);
    out->port = port;
    return 0;
}

size_t sip_tsx_layer_conn_failed(struct sip_tsx_layer *l, uint64_t conn_id, int err,
                                 uint64_t now_ms)
{
    struct sip_tsx **hit;
    size_t n = 0;

    if (conn_id == 0 || l->count == 0)
        return 0;
    /* Collected first: failing one may start others (the proxy's next branch). */
    hit = malloc(l->count * sizeof(*hit));
    if (hit == NULL)
        return 0;
    for (uint32_t b = 0; b <= l->bucket_mask; b++)
        for (struct sip_tsx *t = l->buckets[b]; t != NULL && n < l->count; t = t->hnext)
            if (t->client && t->state != SIP_TSX_TERMINATED && t->peer.conn_id == conn_id)
                hit[n++] = t;
    for (size_t i = 0; i < n; i++)
        if (hit[i]->state != SIP_TSX_TERMINATED)
            tsx_fail(hit[i], err, now_ms);
    free(hit);
    return n;
}
