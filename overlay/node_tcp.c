/*
 * node_tcp.c: the overlay's stream path, for frames larger than one datagram
 * (overlay_node.h, docs/OVERLAY-WIRE.md "TCP").
 *
 * Design.  A TCP connection carries the same DATA frames as UDP, each preceded by its
 * length (u16, big-endian), sealed with the same channel keys: the AEAD counter and
 * replay window span both paths, so a frame is accepted once whichever way it came.
 * Handshakes stay on UDP; a connection belongs to no one until an authentic DATA frame
 * arrives on it, and is then the stream path of that frame's peer.  A node sends a
 * frame over TCP when it is larger than NODE_UDP_MAX (a DHT reply with records, a SIP
 * message with a long body): it uses the peer's connection, or opens one to the
 * peer's address (the UDP port, on TCP) and queues the frames until it is up; if the
 * connection fails, the queued frames go by UDP instead (IP fragments, which a LAN
 * carries).  A client behind NAT cannot be connected to, so its super-node reaches it
 * over the connection the client opened, or by UDP.
 *
 * Bounds: at most NODE_CONN_MAX connections (one more accepted is closed at once),
 * NODE_CONN_QUEUE frames queued per connection while it opens, NODE_CONN_WQ_MAX bytes
 * waiting in the kernel's and libuv's write queue (beyond, frames are dropped and
 * counted, as UDP would lose them); a connection silent for NODE_CONN_IDLE_MS is closed.
 * A length of 0 or above OVL_FRAME_MAX, or a frame that is not DATA, closes the
 * connection (counted as malformed).
 */
#include "node_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct conn {
    uv_tcp_t h;
    uv_connect_t connect;
    struct overlay_node *n;
    int slot;
    int peer; /* -1 until an authentic frame (or our own connect) names it */
    bool connected, closing;
    uint64_t last_io;
    uint8_t *rx;
    size_t rx_len;
    uint8_t *q[NODE_CONN_QUEUE];
    size_t qlen[NODE_CONN_QUEUE];
    unsigned qn;
};

struct wreq {
    uv_write_t req;
    size_t len;
    uint8_t data[];
};

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct overlay_node *n = c->n;

    for (unsigned i = 0; i < c->qn; i++)
        free(c->q[i]);
    free(c->rx);
    free(c);
    overlay__handle_closed(n);
}

void overlay__conn_close(struct overlay_node *n, int slot)
{
    struct conn *c = n->conns[slot];

    if (c == NULL || c->closing)
        return;
    c->closing = true;
    if (c->peer >= 0 && n->peers[c->peer].conn == slot)
        n->peers[c->peer].conn = -1;
    n->conns[slot] = NULL;
    uv_close((uv_handle_t *)&c->h, conn_closed);
}

static int conn_alloc(struct overlay_node *n)
{
    struct conn *c;
    int slot = -1;

    for (unsigned i = 0; i < NODE_CONN_MAX && slot < 0; i++)
        if (n->conns[i] == NULL)
            slot = (int)i;
    if (slot < 0)
        return -ENOSPC;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->rx = malloc(2 + OVL_FRAME_MAX);
    if (c->rx == NULL || uv_tcp_init(n->loop, &c->h) != 0) {
        free(c->rx);
        free(c);
        return -ENOMEM;
    }
    c->n = n;
    c->slot = slot;
    c->peer = -1;
    c->h.data = c;
    c->last_io = overlay__now(n);
    n->conns[slot] = c;
    n->open_handles++;
    return slot;
}

static void write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static int conn_write(struct overlay_node *n, struct conn *c, const uint8_t *frame, size_t len)
{
    struct wreq *w;
    uv_buf_t b;
    int r;

    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->h) > NODE_CONN_WQ_MAX) {
        n->st.dropped_full++;
        return -ENOBUFS;
    }
    w = malloc(sizeof(*w) + 2 + len);
    if (w == NULL)
        return -ENOMEM;
    overlay__put16(w->data, (uint16_t)len);
    memcpy(w->data + 2, frame, len);
    w->len = 2 + len;
    b = uv_buf_init((char *)w->data, (unsigned)w->len);
    r = uv_write(&w->req, (uv_stream_t *)&c->h, &b, 1, write_cb);
    if (r != 0) {
        free(w);
        n->st.send_errors++;
        return r;
    }
    c->last_io = overlay__now(n);
    n->st.frames_out++;
    n->st.bytes_out += len + 2;
    n->st.tcp_frames_out++;
    return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    buf->base = (char *)c->rx + c->rx_len;
    buf->len = 2 + OVL_FRAME_MAX - c->rx_len;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct overlay_node *n = c->n;
    size_t off = 0;

    (void)buf;
    if (nread < 0) {
        overlay__conn_close(n, c->slot);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    c->rx_len += (size_t)nread;
    c->last_io = overlay__now(n);
    while (c->rx_len - off >= 2) {
        size_t len = overlay__get16(c->rx + off);
        if (len == 0 || len > OVL_FRAME_MAX) {
            n->st.dropped_malformed++;
            overlay__conn_close(n, c->slot);
            return;
        }
        if (c->rx_len - off < 2 + len)
            break;
        if (!overlay__on_stream_frame(n, c->slot, c->rx + off + 2, len)) {
            overlay__conn_close(n, c->slot);
            return;
        }
        if (n->conns[c->slot] != c)
            return; /* closed while handling the frame */
        off += 2 + len;
    }
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
}

/* The connection's peer, once an authentic frame named it. */
void overlay__conn_bind(struct overlay_node *n, int slot, int peer)
{
    struct conn *c = n->conns[slot];
    struct peer *p = &n->peers[peer];

    if (c == NULL || c->peer == peer)
        return;
    c->peer = peer;
    if (p->conn < 0 || n->conns[p->conn] == NULL)
        p->conn = slot;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->handle->data;
    struct overlay_node *n = c->n;

    if (c->closing)
        return;
    if (status != 0) {
        /* No stream path: what waited goes by UDP (fragmented) instead. */
        struct peer *p = c->peer >= 0 ? &n->peers[c->peer] : NULL;
        for (unsigned i = 0; i < c->qn; i++) {
            if (p != NULL)
                (void)overlay__send_raw(n, &p->addr, c->q[i], c->qlen[i], false);
            free(c->q[i]);
        }
        c->qn = 0;
        n->st.tcp_connect_failed++;
        overlay__conn_close(n, c->slot);
        return;
    }
    c->connected = true;
    (void)uv_tcp_nodelay(&c->h, 1);
    if (uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb) != 0) {
        overlay__conn_close(n, c->slot);
        return;
    }
    for (unsigned i = 0; i < c->qn; i++) {
        (void)conn_write(n, c, c->q[i], c->qlen[i]);
        free(c->q[i]);
    }
    c->qn = 0;
}

int overlay__tcp_send(struct overlay_node *n, struct peer *p, const uint8_t *frame, size_t len)
{
    struct conn *c;
    int slot = p->conn;
    uint8_t *copy;

    if (slot < 0 || n->conns[slot] == NULL) {
        slot = conn_alloc(n);
        if (slot < 0) {
            n->st.dropped_full++;
            return slot;
        }
        c = n->conns[slot];
        c->peer = overlay__peer_slot(n, p);
        p->conn = slot;
        if (uv_tcp_connect(&c->connect, &c->h, (const struct sockaddr *)&p->addr, connect_cb) !=
            0) {
            overlay__conn_close(n, slot);
            return -EHOSTUNREACH;
        }
    }
    c = n->conns[slot];
    if (c->connected)
        return conn_write(n, c, frame, len);
    if (c->qn >= NODE_CONN_QUEUE) {
        n->st.dropped_full++;
        return -ENOBUFS;
    }
    copy = malloc(len);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, frame, len);
    c->q[c->qn] = copy;
    c->qlen[c->qn] = len;
    c->qn++;
    return 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct overlay_node *n = server->data;
    struct conn *c;
    int slot;

    if (status != 0 || n->closing)
        return;
    slot = conn_alloc(n);
    if (slot < 0) {
        /* Full: take the connection off the backlog and close it at once. */
        uv_tcp_t *tmp = malloc(sizeof(*tmp));
        n->st.dropped_full++;
        if (tmp == NULL || uv_tcp_init(n->loop, tmp) != 0) {
            free(tmp);
            return;
        }
        (void)uv_accept(server, (uv_stream_t *)tmp); /* closed either way */
        uv_close((uv_handle_t *)tmp, free_handle);
        return;
    }
    c = n->conns[slot];
    if (uv_accept(server, (uv_stream_t *)&c->h) != 0 ||
        uv_read_start((uv_stream_t *)&c->h, alloc_cb, read_cb) != 0) {
        overlay__conn_close(n, slot);
        return;
    }
    c->connected = true;
    (void)uv_tcp_nodelay(&c->h, 1);
    n->st.tcp_accepted++;
}

int overlay__tcp_listen(struct overlay_node *n, uv_tcp_t *h, int family, bool *have)
{
    struct sockaddr_storage ss;
    int r;

    overlay_addr_any(&ss, family, n->port);
    r = uv_tcp_init_ex(n->loop, h, (unsigned)family);
    if (r != 0)
        return r;
    h->data = n;
    n->open_handles++;
    *have = true;
    r = uv_tcp_bind(h, (const struct sockaddr *)&ss, family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)h, 64, on_accept);
    return r;
}

void overlay__tcp_tick(struct overlay_node *n, uint64_t now)
{
    for (unsigned i = 0; i < NODE_CONN_MAX; i++) {
        struct conn *c = n->conns[i];
        if (c != NULL && !c->closing && now - c->last_io > NODE_CONN_IDLE_MS)
            overlay__conn_close(n, (int)i);
    }
}

void overlay__tcp_close_all(struct overlay_node *n)
{
    for (unsigned i = 0; i < NODE_CONN_MAX; i++)
        if (n->conns[i] != NULL)
            overlay__conn_close(n, (int)i);
}
