/*
 * sip_transport_tcp.c: SIP over TCP: accepted and opened connections, framing,
 * reuse, idle timeout.
 *
 * Design: connections live in a table of max_tcp_conns slots; a connection id is
 * (sequence << 32 | slot), so a lookup by id is one array read and a stale id finds
 * nothing.  Open connections are also chained in a hash on the remote address, so a
 * send to an address reuses a connection to it, whichever side opened it (RFC 3261
 * 18.1.1, 18.2.2).  Each connection has one timer: the connect timeout while
 * connecting, then the idle timeout, checked against last_active_ms when it fires
 * (nginx style) so that traffic does not reprogram the timer heap on every read.
 *
 * Framing (RFC 3261 18.3): reads land in the transport's shared buffer and are
 * parsed there; only an incomplete tail is copied into the connection's rbuf,
 * capped at max_msg_size.  While a tail waits, it is parsed again only when the end
 * of its head has arrived, or when it has doubled in size (so a malformed head is
 * still caught early), or when the buffer is full: a peer dribbling bytes cannot
 * make us parse 64 KiB once per byte.  (Once the head is in, each read parses the
 * head again: the parser does not say how many body bytes it still waits for.)
 * A stream that does not parse (-EBADMSG), or
 * a message over the cap, closes that connection only, and is counted and logged:
 * there is no way to find the next message in a stream that lost its framing.
 *
 * Invariants: a connection in state CLOSING is out of the address hash, finds
 * nothing by id, and delivers nothing; its struct is freed in the close callback of
 * the second of its two handles.  The write queue of a connection (libuv's
 * write_queue_size) never passes max_write_queue.
 *
 * RFC 3261 18.1.1, 18.2.2, 18.3; RFC 5626 3.5.1 (CRLF keep-alive: "\r\n\r\n" ping,
 * "\r\n" pong).
 */
#include "sip_transport_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/log.h"

#define PROBE_MIN 1024 /* re-parse a waiting tail headless once it reaches this size */

struct write_req {
    uv_write_t req;
    struct overlay__sip_conn *c;
    char data[];
};

/* ---- table and hash ---- */

int overlay__sip_tcp_init(struct overlay_sip_transport *t)
{
    size_t n = t->cfg.max_tcp_conns, buckets = 16;

    while (buckets < n)
        buckets *= 2;
    t->slots = calloc(n, sizeof(*t->slots));
    t->free_slots = calloc(n, sizeof(*t->free_slots));
    t->addr_hash = calloc(buckets, sizeof(*t->addr_hash));
    if (t->slots == NULL || t->free_slots == NULL || t->addr_hash == NULL) {
        overlay__sip_tcp_fini(t);
        return -ENOMEM;
    }
    /* Pop order hands out slot 0 first. */
    for (size_t i = 0; i < n; i++)
        t->free_slots[i] = (uint32_t)(n - 1 - i);
    t->free_count = n;
    t->addr_hash_mask = buckets - 1;
    return 0;
}

void overlay__sip_tcp_fini(struct overlay_sip_transport *t)
{
    free(t->slots);
    free(t->free_slots);
    free(t->addr_hash);
    t->slots = NULL;
    t->free_slots = NULL;
    t->addr_hash = NULL;
}

/* FNV-1a over family, port and address. */
static size_t addr_hash(const struct overlay_sip_transport *t, const struct sockaddr_storage *a)
{
    const unsigned char *p;
    size_t n;
    uint32_t h = 2166136261u;

    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
        h = (h ^ (uint32_t)s->sin6_port) * 16777619u;
        p = (const unsigned char *)&s->sin6_addr;
        n = sizeof(s->sin6_addr);
    } else {
        const struct sockaddr_in *s = (const struct sockaddr_in *)a;
        h = (h ^ (uint32_t)s->sin_port) * 16777619u;
        p = (const unsigned char *)&s->sin_addr;
        n = sizeof(s->sin_addr);
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h & t->addr_hash_mask;
}

static void hash_insert(struct overlay__sip_conn *c)
{
    struct overlay_sip_transport *t = c->t;
    size_t b = addr_hash(t, &c->remote);

    c->addr_next = t->addr_hash[b];
    t->addr_hash[b] = c;
}

static void hash_remove(struct overlay__sip_conn *c)
{
    struct overlay_sip_transport *t = c->t;
    struct overlay__sip_conn **pp = &t->addr_hash[addr_hash(t, &c->remote)];

    for (; *pp != NULL; pp = &(*pp)->addr_next) {
        if (*pp == c) {
            *pp = c->addr_next;
            c->addr_next = NULL;
            return;
        }
    }
}

static struct overlay__sip_conn *hash_find(struct overlay_sip_transport *t,
                                           const struct sockaddr_storage *addr)
{
    struct overlay__sip_conn *c = t->addr_hash[addr_hash(t, addr)];

    for (; c != NULL; c = c->addr_next)
        if (overlay_addr_eq(&c->remote, addr))
            return c;
    return NULL;
}

struct overlay__sip_conn *overlay__sip_conn_find(struct overlay_sip_transport *t, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & 0xffffffffu);
    struct overlay__sip_conn *c;

    if (id == 0 || slot >= t->cfg.max_tcp_conns)
        return NULL;
    c = t->slots[slot];
    if (c == NULL || c->id != id || c->state == OVERLAY__CONN_CLOSING)
        return NULL;
    return c;
}

/* ---- connection lifetime ---- */

static void conn_handle_closed_cb(uv_handle_t *h)
{
    struct overlay__sip_conn *c = h->data;
    struct overlay_sip_transport *t = c->t;

    if (--c->open_handles == 0) {
        t->slots[c->slot] = NULL;
        t->free_slots[t->free_count++] = c->slot;
        p2p_buf_free(&c->rbuf);
        free(c);
    }
    overlay__sip_handle_closed(t);
}

void overlay__sip_conn_close(struct overlay__sip_conn *c)
{
    struct overlay_sip_transport *t = c->t;

    if (c->state == OVERLAY__CONN_CLOSING)
        return;
    c->state = OVERLAY__CONN_CLOSING;
    hash_remove(c);
    t->ctr.conns_closed++;
    t->ctr.conns_open--;
    /* Queued writes complete with UV_ECANCELED before the close callbacks. */
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
}

void overlay__sip_tcp_close_all(struct overlay_sip_transport *t)
{
    for (size_t i = 0; i < t->cfg.max_tcp_conns; i++)
        if (t->slots[i] != NULL)
            overlay__sip_conn_close(t->slots[i]);
}

/*
 * Tells the SIP core that what was sent on c is lost, and closes c.  Called only
 * from loop callbacks for a connection not yet closing, so once per connection:
 * every later callback of c sees state CLOSING and stays silent.
 */
static void conn_fail(struct overlay__sip_conn *c, int err)
{
    struct overlay_sip_transport *t = c->t;
    char a[64];

    assert(c->state != OVERLAY__CONN_CLOSING);
    p2p_debug(t->log, "sip tcp: connection %s failed: %s",
              overlay_addr_text(&c->remote, a, sizeof(a)), uv_strerror(err));
    if (!t->closing) {
        struct overlay_sip_dest d;
        t->ctr.send_errors++;
        d.proto = OVERLAY_SIP_TCP;
        d.addr = c->remote;
        if (t->ops.on_send_error)
            t->ops.on_send_error(t->arg, &d, err);
    }
    overlay__sip_conn_close(c);
}

static void timer_cb(uv_timer_t *timer);

/* Takes a free slot and initialises both handles.  NULL at max_tcp_conns. */
static struct overlay__sip_conn *conn_new(struct overlay_sip_transport *t, int listener)
{
    struct overlay__sip_conn *c;
    int r;

    if (t->free_count == 0)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    r = uv_tcp_init(t->loop, &c->tcp);
    if (r < 0) {
        free(c);
        return NULL;
    }
    /* Cannot fail on a valid loop. */
    (void)uv_timer_init(t->loop, &c->timer);
    c->t = t;
    c->slot = t->free_slots[--t->free_count];
    if (++t->conn_seq == 0)
        t->conn_seq = 1;
    c->id = (uint64_t)t->conn_seq << 32 | c->slot;
    c->listener = listener;
    c->state = OVERLAY__CONN_CONNECTING;
    c->open_handles = 2;
    c->tcp.data = c;
    c->timer.data = c;
    c->last_active_ms = uv_now(t->loop);
    p2p_buf_init(&c->rbuf, t->cfg.max_msg_size);
    t->slots[c->slot] = c;
    t->handles += 2;
    t->ctr.conns_opened++;
    t->ctr.conns_open++;
    return c;
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct overlay__sip_conn *c = w->c;

    free(w);
    /* UV_ECANCELED: we closed the connection; whoever closed it knows. */
    if (status < 0 && status != UV_ECANCELED && c->state != OVERLAY__CONN_CLOSING)
        conn_fail(c, status);
}

int overlay__sip_conn_write(struct overlay__sip_conn *c, const char *buf, size_t len)
{
    struct overlay_sip_transport *t = c->t;
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    size_t queued = uv_stream_get_write_queue_size(s);
    size_t off = 0;
    struct write_req *w;
    uv_buf_t b;
    int r;

    if (c->state == OVERLAY__CONN_CLOSING)
        return -ENOTCONN;
    if (len > UINT32_MAX) /* uv_buf_t lengths are unsigned int */
        return -EMSGSIZE;
    if (queued > t->cfg.max_write_queue || len > t->cfg.max_write_queue - queued) {
        t->ctr.dropped++;
        return -ENOBUFS;
    }
    if (c->state == OVERLAY__CONN_OPEN && queued == 0) {
        b = uv_buf_init((char *)buf, (unsigned)len);
        r = uv_try_write(s, &b, 1);
        if (r < 0 && r != UV_EAGAIN) {
            /* The connection is broken; the caller learns it from the return
             * value, so no on_send_error for this one. */
            overlay__sip_conn_close(c);
            return r;
        }
        if (r > 0)
            off = (size_t)r;
    }
    if (off < len) {
        /* Connecting, or the kernel took only part: queue a copy of the rest. */
        w = malloc(sizeof(*w) + (len - off));
        if (w == NULL) {
            if (off > 0) {
                /* Half a message is on the wire: the stream is torn. */
                overlay__sip_conn_close(c);
            }
            return -ENOMEM;
        }
        w->c = c;
        memcpy(w->data, buf + off, len - off);
        b = uv_buf_init(w->data, (unsigned)(len - off));
        r = uv_write(&w->req, s, &b, 1, write_cb);
        if (r < 0) {
            free(w);
            overlay__sip_conn_close(c);
            return r;
        }
    }
    t->ctr.tcp_tx_messages++;
    t->ctr.tcp_tx_bytes += len;
    c->last_active_ms = uv_now(t->loop);
    return 0;
}

/* ---- reading and framing ---- */

static void conn_deliver(struct overlay__sip_conn *c, const char *p, size_t len)
{
    struct overlay_sip_transport *t = c->t;
    struct overlay_sip_source src;

    src.proto = OVERLAY_SIP_TCP;
    src.listener = c->listener;
    src.conn_id = c->id;
    src.local = c->local;
    src.remote = c->remote;
    t->ctr.tcp_rx_messages++;
    t->ops.on_message(t->arg, &src, p, len, &t->msg, 0);
}

static bool conn_gone(const struct overlay__sip_conn *c)
{
    return c->state == OVERLAY__CONN_CLOSING || c->t->closing;
}

static void conn_bad_stream(struct overlay__sip_conn *c, int err, const char *why)
{
    struct overlay_sip_transport *t = c->t;
    char a[64];

    if (err == -EMSGSIZE)
        t->ctr.oversized++;
    else
        t->ctr.framing_errors++;
    p2p_warn_rl(t->log, &t->conn_log, uv_now(t->loop), "sip tcp: closing connection %s: %s",
                overlay_addr_text(&c->remote, a, sizeof(a)), why ? why : "bad message");
    overlay__sip_conn_close(c);
}

/*
 * Delivers every complete message at the front of p[0..n).  Returns the number of
 * bytes consumed (the rest is an incomplete message), or -1 when the connection was
 * closed (by a framing error or by the callback).
 */
static ssize_t conn_frame(struct overlay__sip_conn *c, const char *p, size_t n)
{
    struct overlay_sip_transport *t = c->t;
    struct sip_parse_err perr;
    size_t off = 0;
    int r;

    while (off < n) {
        size_t crlf = sip_msg_leading_crlf(p + off, n - off);
        if (crlf > 0) {
            /* RFC 5626 3.5.1: "\r\n\r\n" is a ping, answered by "\r\n".  Fewer
             * bytes alone may be half a ping: wait for more. */
            if (crlf == n - off && crlf < 4)
                break;
            if (crlf >= 4) {
                t->ctr.keepalives++;
                (void)overlay__sip_conn_write(c, "\r\n", 2);
                if (conn_gone(c))
                    return -1;
            }
            off += crlf;
            continue;
        }
        /* RFC 3261 18.3: streams are framed by Content-Length. */
        perr.phrase = NULL;
        r = sip_msg_parse(&t->msg, p + off, n - off, SIP_MSG_STREAM, &perr);
        if (r == -EAGAIN)
            break;
        if (r < 0 || (size_t)r > t->cfg.max_msg_size) {
            if (r > 0)
                r = -EMSGSIZE;
            conn_bad_stream(c, r, r == -EMSGSIZE ? "message too large" : perr.phrase);
            return -1;
        }
        conn_deliver(c, p + off, (size_t)r);
        if (conn_gone(c))
            return -1;
        off += (size_t)r;
    }
    return (ssize_t)off;
}

/* Advances the search for the end of the head ("\n\r\n" or "\n\n") in rbuf. */
static void conn_scan_head(struct overlay__sip_conn *c)
{
    const char *d = c->rbuf.data;
    size_t len = c->rbuf.len;
    size_t i = c->scan;

    for (; !c->head_seen && i < len; i++) {
        if (d[i] != '\n')
            continue;
        if (i + 1 < len && d[i + 1] == '\n')
            c->head_seen = true;
        else if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n')
            c->head_seen = true;
        else if (i + 2 >= len)
            break; /* the terminator may still be arriving: look again later */
    }
    c->scan = i;
}

/* rbuf now holds a fresh incomplete tail that was just parsed: reset the waiting state. */
static void conn_tail_reset(struct overlay__sip_conn *c)
{
    if (c->rbuf.len == 0) {
        /* Give the memory back: an idle connection costs no buffer. */
        p2p_buf_free(&c->rbuf);
    }
    c->scan = 0;
    c->head_seen = false;
    c->probe = c->rbuf.len * 2 > PROBE_MIN ? c->rbuf.len * 2 : PROBE_MIN;
    conn_scan_head(c);
}

static void conn_feed(struct overlay__sip_conn *c, const char *p, size_t n)
{
    size_t cap = c->t->cfg.max_msg_size;
    ssize_t used;
    int r;

    if (c->rbuf.len == 0) {
        /* Fast path: parse where the bytes landed. */
        used = conn_frame(c, p, n);
        if (used < 0)
            return;
        p += used;
        n -= (size_t)used;
        if (n == 0)
            return;
        if (n >= cap) {
            conn_bad_stream(c, -EMSGSIZE, "message too large");
            return;
        }
        r = p2p_buf_append(&c->rbuf, p, n);
        if (r < 0) {
            conn_bad_stream(c, r, "cannot buffer");
            return;
        }
        conn_tail_reset(c);
        return;
    }
    while (n > 0) {
        size_t take = cap - c->rbuf.len < n ? cap - c->rbuf.len : n;
        r = p2p_buf_append(&c->rbuf, p, take);
        if (r < 0) {
            conn_bad_stream(c, r, "cannot buffer");
            return;
        }
        p += take;
        n -= take;
        conn_scan_head(c);
        if (!c->head_seen && c->rbuf.len < c->probe && c->rbuf.len < cap)
            continue; /* nothing new worth a parse */
        used = conn_frame(c, c->rbuf.data, c->rbuf.len);
        if (used < 0)
            return;
        if (used == 0) {
            if (c->rbuf.len >= cap) {
                conn_bad_stream(c, -EMSGSIZE, "message too large");
                return;
            }
            if (c->rbuf.len >= c->probe)
                c->probe *= 2;
            continue;
        }
        p2p_buf_consume(&c->rbuf, (size_t)used);
        conn_tail_reset(c);
        if (c->rbuf.len == 0 && n > 0) {
            conn_feed(c, p, n); /* back to the fast path, once */
            return;
        }
    }
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct overlay__sip_conn *c = stream->data;
    struct overlay_sip_transport *t = c->t;

    if (nread == 0 || conn_gone(c))
        return;
    if (nread < 0) {
        char a[64];
        p2p_debug(t->log, "sip tcp: connection %s: %s", overlay_addr_text(&c->remote, a, sizeof(a)),
                  uv_strerror((int)nread));
        /* Bytes still queued for the peer are lost: say so. */
        if (uv_stream_get_write_queue_size(stream) > 0)
            conn_fail(c, (int)nread);
        else
            overlay__sip_conn_close(c);
        return;
    }
    t->ctr.tcp_rx_bytes += (uint64_t)nread;
    c->last_active_ms = uv_now(t->loop);
    conn_feed(c, buf->base, (size_t)nread);
}

/* ---- timers ---- */

static void timer_cb(uv_timer_t *timer)
{
    struct overlay__sip_conn *c = timer->data;
    struct overlay_sip_transport *t = c->t;
    uint64_t idle_ms = t->cfg.tcp_idle_ms;
    uint64_t now = uv_now(t->loop), idle;

    if (conn_gone(c))
        return;
    if (c->state == OVERLAY__CONN_CONNECTING) {
        conn_fail(c, UV_ETIMEDOUT);
        return;
    }
    idle = now - c->last_active_ms;
    if (idle >= idle_ms && c->refs == 0 &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        char a[64];
        t->ctr.conns_idle_closed++;
        p2p_debug(t->log, "sip tcp: closing idle connection %s",
                  overlay_addr_text(&c->remote, a, sizeof(a)));
        overlay__sip_conn_close(c);
        return;
    }
    (void)uv_timer_start(&c->timer, timer_cb, idle >= idle_ms ? idle_ms : idle_ms - idle, 0);
}

/* The connection is established: start reading and the idle clock. */
static int conn_established(struct overlay__sip_conn *c)
{
    struct overlay_sip_transport *t = c->t;
    int namelen = (int)sizeof(c->local);
    int r;

    c->state = OVERLAY__CONN_OPEN;
    c->last_active_ms = uv_now(t->loop);
    r = uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local, &namelen);
    if (r == 0)
        r = uv_tcp_nodelay(&c->tcp, 1); /* SIP messages are latency bound */
    if (r == 0)
        r = uv_read_start((uv_stream_t *)&c->tcp, overlay__sip_alloc_cb, read_cb);
    if (r == 0)
        r = uv_timer_start(&c->timer, timer_cb, t->cfg.tcp_idle_ms, 0);
    return r;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct overlay__sip_conn *c = req->data;

    if (c->state == OVERLAY__CONN_CLOSING)
        return; /* closed while connecting (timeout, transport close) */
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    status = conn_established(c);
    if (status < 0)
        conn_fail(c, status);
}

void overlay__sip_tcp_on_connection(uv_stream_t *server, int status)
{
    struct overlay__sip_listener *l = server->data;
    struct overlay_sip_transport *t = l->t;
    struct overlay__sip_conn *c;
    int namelen = (int)sizeof(struct sockaddr_storage);
    char a[64];
    int r;

    if (status < 0) {
        p2p_warn_rl(t->log, &t->conn_log, uv_now(t->loop), "sip tcp: accept on listener %d: %s",
                    l->index, uv_strerror(status));
        return;
    }
    if (t->closing)
        return;
    c = conn_new(t, l->index);
    if (c == NULL) {
        /* At the cap: accept and close at once, or libuv stops accepting. */
        uv_tcp_t *tmp = malloc(sizeof(*tmp));
        t->ctr.conns_refused++;
        if (tmp == NULL || uv_tcp_init(t->loop, tmp) < 0) {
            free(tmp);
            return;
        }
        tmp->data = t;
        t->handles++;
        (void)uv_accept(server, (uv_stream_t *)tmp);
        uv_close((uv_handle_t *)tmp, overlay__sip_refused_closed_cb);
        p2p_warn_rl(t->log, &t->conn_log, uv_now(t->loop),
                    "sip tcp: refused a connection: %zu connections open", t->cfg.max_tcp_conns);
        return;
    }
    r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r == 0)
        r = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->remote, &namelen);
    if (r == 0)
        r = conn_established(c);
    if (r < 0) {
        p2p_warn_rl(t->log, &t->conn_log, uv_now(t->loop), "sip tcp: accept on listener %d: %s",
                    l->index, uv_strerror(r));
        overlay__sip_conn_close(c);
        return;
    }
    hash_insert(c);
    p2p_debug(t->log, "sip tcp: accepted %s", overlay_addr_text(&c->remote, a, sizeof(a)));
}

void overlay__sip_refused_closed_cb(uv_handle_t *h)
{
    struct overlay_sip_transport *t = h->data;

    free(h);
    overlay__sip_handle_closed(t);
}

/* ---- sending to an address ---- */

int overlay__sip_tcp_send(struct overlay_sip_transport *t, const struct sockaddr_storage *addr,
                          const char *buf, size_t len)
{
    struct overlay__sip_conn *c = hash_find(t, addr);
    int r;

    /* RFC 3261 18.1.1 / 18.2.2: reuse a connection to that address, either way. */
    if (c != NULL)
        return overlay__sip_conn_write(c, buf, len);
    c = conn_new(t, overlay__sip_listener_index(t, OVERLAY_SIP_TCP, addr->ss_family));
    if (c == NULL) {
        t->ctr.dropped++;
        return t->free_count == 0 ? -EMFILE : -ENOMEM;
    }
    c->remote = *addr;
    c->connect_req.data = c;
    r = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)addr, connect_cb);
    if (r == 0)
        r = uv_timer_start(&c->timer, timer_cb, t->cfg.tcp_connect_ms, 0);
    if (r == 0)
        hash_insert(c);
    /* Queued until the connect completes (libuv holds writes while connecting). */
    if (r == 0)
        r = overlay__sip_conn_write(c, buf, len);
    if (r < 0) {
        overlay__sip_conn_close(c);
        return r;
    }
    return 0;
}

/* ---- holds ---- */

int overlay_sip_conn_ref(struct overlay_sip_transport *t, uint64_t conn_id)
{
    struct overlay__sip_conn *c = overlay__sip_conn_find(t, conn_id);

    if (c == NULL)
        return -ENOTCONN;
    c->refs++;
    return 0;
}

int overlay_sip_conn_unref(struct overlay_sip_transport *t, uint64_t conn_id)
{
    struct overlay__sip_conn *c = overlay__sip_conn_find(t, conn_id);

    if (c == NULL)
        return -ENOTCONN;
    assert(c->refs > 0);
    if (c->refs > 0)
        c->refs--;
    return 0;
}

int overlay_sip_conn_close(struct overlay_sip_transport *t, uint64_t conn_id)
{
    struct overlay__sip_conn *c = overlay__sip_conn_find(t, conn_id);

    if (c == NULL)
        return -ENOTCONN;
    overlay__sip_conn_close(c);
    return 0;
}
