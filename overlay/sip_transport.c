/*
 * sip_transport.c: SIP transport core: listeners, UDP, response routing, Via fixes.
 *
 * Design: the transport owns a fixed array of listeners (UDP sockets and TCP
 * listening sockets) and, in sip_transport_tcp.c, a table of TCP connections.  All
 * sockets read into one 64 KiB buffer inside the transport (libuv calls alloc and
 * read back to back on one thread, and a read callback finishes with the bytes before
 * it returns), so a datagram is parsed where it landed: no allocation, no copy.  The
 * parse target (struct sip_msg) is also one per transport.
 *
 * Invariants: t->handles counts the libuv handles not yet closed; the transport is
 * freed when it reaches zero after overlay_sip_transport_close().  No ops callback
 * runs once t->closing is set.  Sends copy only what the kernel did not take, into a
 * queue capped at max_write_queue bytes per socket.
 *
 * RFC 3261 18.2.1 (received), 18.2.2 (sending responses), 18.3 (datagram framing);
 * RFC 3581 4 (rport); RFC 5626 3.5.1 (CRLF keep-alives, ignored on UDP).
 */
#include "sip_transport_int.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/log.h"
#include "p2p/sip_build.h"
#include "p2p/slice.h"

#define SIP_DEFAULT_PORT 5060 /* RFC 3261 18.2.2, 19.1.2 */
#define LISTEN_BACKLOG 128

struct udp_send_req {
    uv_udp_send_t req;
    struct overlay_sip_transport *t;
    struct sockaddr_storage addr;
    char data[];
};

/* ---- addresses ---- */

static void addr_set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)a)->sin_port = htons(port);
}

static uint16_t addr_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

/*
 * Parses an IP literal (IPv6 with or without brackets, RFC 3261 25.1 IPv6reference)
 * into *out with port 0.  Returns 0 or -EINVAL for anything else (a host name).
 */
static int addr_parse_ip(struct p2p_slice s, struct sockaddr_storage *out)
{
    char text[INET6_ADDRSTRLEN + 2];
    struct sockaddr_storage a;

    s = p2p_slice_trim(s);
    if (s.len >= 2 && s.p[0] == '[' && s.p[s.len - 1] == ']') {
        s.p++;
        s.len -= 2;
    }
    if (p2p_slice_copy(s, text, sizeof(text)) != 0)
        return -EINVAL;
    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&a)->sin_addr) == 1) {
        a.ss_family = AF_INET;
    } else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&a)->sin6_addr) == 1) {
        a.ss_family = AF_INET6;
    } else {
        return -EINVAL;
    }
    *out = a;
    return 0;
}

/* ---- handle bookkeeping ---- */

void overlay__sip_handle_closed(struct overlay_sip_transport *t)
{
    overlay_sip_close_cb cb;
    void *arg;

    assert(t->handles > 0);
    if (--t->handles > 0 || !t->closing)
        return;
    cb = t->close_cb;
    arg = t->close_arg;
    overlay__sip_tcp_fini(t);
    free(t);
    if (cb)
        cb(arg);
}

static void listener_closed_cb(uv_handle_t *h)
{
    struct overlay__sip_listener *l = h->data;

    overlay__sip_handle_closed(l->t);
}

void overlay__sip_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct overlay_sip_transport *t = *(struct overlay_sip_transport **)h->data;

    (void)suggested;
    /* One buffer for every socket: the read callback is done with it on return. */
    buf->base = t->rx;
    buf->len = sizeof(t->rx);
}

/* ---- UDP ---- */

static void udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct overlay__sip_listener *l = h->data;
    struct overlay_sip_transport *t = l->t;
    struct overlay_sip_source src;
    struct sip_parse_err perr;
    size_t n;
    int r;

    if (nread == 0 && addr == NULL)
        return; /* nothing more to read this turn */
    if (t->closing)
        return;
    if (nread < 0) {
        p2p_debug(t->log, "sip udp: receive error on listener %d: %s", l->index,
                  uv_strerror((int)nread));
        return;
    }
    n = (size_t)nread;
    if (n == 0 || (flags & UV_UDP_PARTIAL)) {
        t->ctr.dropped++;
        return;
    }
    t->ctr.udp_rx_datagrams++;
    t->ctr.udp_rx_bytes += n;
    /* Some phones send CRLF keep-alives over UDP too (RFC 5626 4.4.1 uses STUN
     * there); they carry no message and need no answer. */
    if (sip_msg_leading_crlf(buf->base, n) == n) {
        t->ctr.keepalives++;
        return;
    }
    src.proto = OVERLAY_SIP_UDP;
    src.listener = l->index;
    src.conn_id = 0;
    src.local = l->addr;
    overlay_addr_copy(&src.remote, addr);

    /* RFC 3261 18.3: one message per datagram, Content-Length may truncate the body. */
    perr.phrase = NULL;
    r = sip_msg_parse(&t->msg, buf->base, n, SIP_MSG_DGRAM, &perr);
    if (r < 0) {
        char a[64];
        t->ctr.parse_errors++;
        p2p_debug(t->log, "sip udp: unparsable datagram from %s: %s",
                  overlay_addr_text(&src.remote, a, sizeof(a)),
                  perr.phrase ? perr.phrase : "bad message");
        t->ops.on_message(t->arg, &src, buf->base, n, NULL, r);
        return;
    }
    t->ops.on_message(t->arg, &src, buf->base, (size_t)r, &t->msg, 0);
}

static void udp_send_cb(uv_udp_send_t *req, int status)
{
    struct udp_send_req *s = (struct udp_send_req *)req;
    struct overlay_sip_transport *t = s->t;

    if (status < 0 && status != UV_ECANCELED && !t->closing) {
        struct overlay_sip_dest d;
        t->ctr.send_errors++;
        d.proto = OVERLAY_SIP_UDP;
        d.addr = s->addr;
        if (t->ops.on_send_error)
            t->ops.on_send_error(t->arg, &d, status);
    }
    free(s);
}

static int udp_send(struct overlay_sip_transport *t, struct overlay__sip_listener *l,
                    const struct sockaddr_storage *addr, const char *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    struct udp_send_req *s;
    size_t queued;
    int r;

    r = uv_udp_try_send(&l->h.udp, &b, 1, (const struct sockaddr *)addr);
    if (r >= 0)
        goto sent;
    if (r != UV_EAGAIN)
        return r;
    /* The socket is busy: queue a copy, within the cap. */
    queued = uv_udp_get_send_queue_size(&l->h.udp);
    if (queued > t->cfg.max_write_queue || len > t->cfg.max_write_queue - queued) {
        t->ctr.dropped++;
        return -ENOBUFS;
    }
    s = malloc(sizeof(*s) + len);
    if (s == NULL)
        return -ENOMEM;
    s->t = t;
    s->addr = *addr;
    memcpy(s->data, buf, len);
    b = uv_buf_init(s->data, (unsigned)len);
    r = uv_udp_send(&s->req, &l->h.udp, &b, 1, (const struct sockaddr *)addr, udp_send_cb);
    if (r < 0) {
        free(s);
        return r;
    }
sent:
    t->ctr.udp_tx_datagrams++;
    t->ctr.udp_tx_bytes += len;
    return 0;
}

/* The first listener of this protocol and family, or NULL. */
static struct overlay__sip_listener *listener_for(struct overlay_sip_transport *t,
                                                  enum overlay_sip_proto proto, int family)
{
    for (size_t i = 0; i < t->listener_count; i++) {
        struct overlay__sip_listener *l = &t->listeners[i];
        if (l->proto == proto && l->addr.ss_family == family)
            return l;
    }
    return NULL;
}

int overlay__sip_listener_index(struct overlay_sip_transport *t, enum overlay_sip_proto proto,
                                int family)
{
    struct overlay__sip_listener *l = listener_for(t, proto, family);

    return l ? l->index : -1;
}

/* ---- lifecycle ---- */

static int config_check(const struct overlay_sip_config *in, struct overlay_sip_config *out)
{
    *out = *in;
    if (in->listen == NULL || in->listen_count == 0 || in->listen_count > OVERLAY_SIP_MAX_LISTEN)
        return -EINVAL;
    if (out->max_tcp_conns == 0)
        out->max_tcp_conns = OVERLAY_SIP_DEFAULT_MAX_TCP_CONNS;
    if (out->max_msg_size == 0)
        out->max_msg_size = OVERLAY_SIP_DEFAULT_MAX_MSG_SIZE;
    if (out->max_write_queue == 0)
        out->max_write_queue = OVERLAY_SIP_DEFAULT_MAX_WRITE_QUEUE;
    if (out->tcp_idle_ms == 0)
        out->tcp_idle_ms = OVERLAY_SIP_DEFAULT_TCP_IDLE_MS;
    if (out->tcp_connect_ms == 0)
        out->tcp_connect_ms = OVERLAY_SIP_DEFAULT_TCP_CONNECT_MS;
    /* Slot indices live in the low 32 bits of a connection id. */
    if (out->max_tcp_conns > UINT32_MAX || out->max_msg_size > SIP_MSG_MAX_SIZE)
        return -EINVAL;
    for (size_t i = 0; i < in->listen_count; i++) {
        const struct overlay_sip_listen *l = &in->listen[i];
        if (l->proto != OVERLAY_SIP_UDP && l->proto != OVERLAY_SIP_TCP)
            return -EINVAL;
        if (l->addr.ss_family != AF_INET && l->addr.ss_family != AF_INET6)
            return -EAFNOSUPPORT;
    }
    out->listen = NULL; /* the copies live in t->listeners */
    return 0;
}

static int listener_start(struct overlay_sip_transport *t, struct overlay__sip_listener *l)
{
    const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
    bool v6 = l->addr.ss_family == AF_INET6;
    int namelen = (int)sizeof(l->addr);
    int r;

    if (l->proto == OVERLAY_SIP_UDP) {
        r = uv_udp_init_ex(t->loop, &l->h.udp, l->addr.ss_family);
        if (r < 0)
            return r;
        l->h.handle.data = l;
        t->handles++;
        /* IPV6ONLY: an IPv4 peer never shows up as ::ffff:a.b.c.d. */
        r = uv_udp_bind(&l->h.udp, sa, v6 ? UV_UDP_IPV6ONLY : 0);
        if (r == 0)
            r = uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&l->addr, &namelen);
        if (r == 0)
            r = uv_udp_recv_start(&l->h.udp, overlay__sip_alloc_cb, udp_recv_cb);
        return r;
    }
    r = uv_tcp_init_ex(t->loop, &l->h.tcp, l->addr.ss_family);
    if (r < 0)
        return r;
    l->h.handle.data = l;
    t->handles++;
    r = uv_tcp_bind(&l->h.tcp, sa, v6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->h.tcp, LISTEN_BACKLOG, overlay__sip_tcp_on_connection);
    if (r == 0)
        r = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&l->addr, &namelen);
    return r;
}

static void close_all(struct overlay_sip_transport *t)
{
    for (size_t i = 0; i < t->listener_count; i++)
        uv_close(&t->listeners[i].h.handle, listener_closed_cb);
    overlay__sip_tcp_close_all(t);
}

int overlay_sip_transport_new(struct overlay_sip_transport **out, uv_loop_t *loop,
                              const struct overlay_sip_config *cfg,
                              const struct overlay_sip_ops *ops, void *arg, struct p2p_log *log)
{
    struct overlay_sip_transport *t;
    struct overlay_sip_config c;
    int r;

    if (ops == NULL || ops->on_message == NULL)
        return -EINVAL;
    r = config_check(cfg, &c);
    if (r < 0)
        return r;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->loop = loop;
    t->log = log;
    t->conn_log.name = "sip tcp";
    t->ops = *ops;
    t->arg = arg;
    t->cfg = c;
    r = overlay__sip_tcp_init(t);
    if (r < 0) {
        free(t);
        return r;
    }
    for (size_t i = 0; i < cfg->listen_count; i++) {
        struct overlay__sip_listener *l = &t->listeners[i];
        l->t = t;
        l->index = (int)i;
        l->proto = cfg->listen[i].proto;
        l->addr = cfg->listen[i].addr;
        r = listener_start(t, l);
        if (t->handles > i)
            t->listener_count = i + 1; /* its handle exists and must be closed */
        if (r < 0) {
            char a[64];
            p2p_err(log, "sip %s: cannot listen on %s: %s",
                    l->proto == OVERLAY_SIP_UDP ? "udp" : "tcp",
                    overlay_addr_text(&cfg->listen[i].addr, a, sizeof(a)), uv_strerror(r));
            goto fail;
        }
    }
    *out = t;
    return 0;

fail:
    /* The handles opened so far close on the next loop turn; no callback runs. */
    t->closing = true;
    if (t->handles == 0) {
        overlay__sip_tcp_fini(t);
        free(t);
    } else {
        close_all(t);
    }
    return r;
}

void overlay_sip_transport_close(struct overlay_sip_transport *t, overlay_sip_close_cb cb,
                                 void *arg)
{
    assert(!t->closing);
    t->closing = true;
    t->close_cb = cb;
    t->close_arg = arg;
    /* At least one listener exists, so the free happens in a close callback. */
    close_all(t);
}

size_t overlay_sip_transport_listener_count(const struct overlay_sip_transport *t)
{
    return t->listener_count;
}

int overlay_sip_transport_listener(const struct overlay_sip_transport *t, size_t i,
                                   struct overlay_sip_listen *out)
{
    if (i >= t->listener_count)
        return -ENOENT;
    out->proto = t->listeners[i].proto;
    out->addr = t->listeners[i].addr;
    return 0;
}

void overlay_sip_transport_counters(const struct overlay_sip_transport *t,
                                    struct overlay_sip_counters *out)
{
    *out = t->ctr;
}

/* ---- sending ---- */

static int check_send(struct overlay_sip_transport *t, const struct sockaddr_storage *addr,
                      size_t len)
{
    if (t->closing)
        return -ECANCELED;
    if (len == 0 || len > UINT32_MAX)
        return len == 0 ? -EINVAL : -EMSGSIZE;
    if (addr->ss_family != AF_INET && addr->ss_family != AF_INET6)
        return -EAFNOSUPPORT;
    return 0;
}

int overlay_sip_send(struct overlay_sip_transport *t, const struct overlay_sip_dest *dest,
                     const char *buf, size_t len)
{
    struct overlay__sip_listener *l;
    int r;

    r = check_send(t, &dest->addr, len);
    if (r < 0)
        return r;
    if (dest->proto == OVERLAY_SIP_TCP)
        return overlay__sip_tcp_send(t, &dest->addr, buf, len);
    if (dest->proto != OVERLAY_SIP_UDP)
        return -EPROTONOSUPPORT;
    l = listener_for(t, OVERLAY_SIP_UDP, dest->addr.ss_family);
    if (l == NULL)
        return -EAFNOSUPPORT;
    return udp_send(t, l, &dest->addr, buf, len);
}

int overlay_sip_send_conn(struct overlay_sip_transport *t, uint64_t conn_id, const char *buf,
                          size_t len)
{
    struct overlay__sip_conn *c;

    if (t->closing)
        return -ECANCELED;
    if (len == 0)
        return -EINVAL;
    c = overlay__sip_conn_find(t, conn_id);
    if (c == NULL)
        return -ENOTCONN;
    return overlay__sip_conn_write(c, buf, len);
}

int overlay_sip_send_response(struct overlay_sip_transport *t,
                              const struct overlay_sip_source *req_src, const struct sip_via *via,
                              const char *buf, size_t len)
{
    struct overlay__sip_listener *l = NULL;
    struct overlay_sip_dest d;
    uint16_t port = via->port ? via->port : SIP_DEFAULT_PORT;
    int r;

    r = check_send(t, &req_src->remote, len);
    if (r < 0)
        return r;
    d.proto = req_src->proto;
    d.addr = req_src->remote;
    if (req_src->proto == OVERLAY_SIP_TCP) {
        /* RFC 3261 18.2.2: reliable transport: the connection the request came on,
         * if it is still open ... */
        struct overlay__sip_conn *c = overlay__sip_conn_find(t, req_src->conn_id);
        if (c != NULL)
            return overlay__sip_conn_write(c, buf, len);
        /* ... else a new connection to "received" (the source IP, 18.2.1) at the
         * sent-by port, or the transport's default port. */
        addr_set_port(&d.addr, port);
        return overlay__sip_tcp_send(t, &d.addr, buf, len);
    }
    if (via->maddr.p != NULL) {
        /* RFC 3261 18.2.2: maddr: to that address at the sent-by port (default
         * 5060).  No DNS here: only an IP literal.  A multicast maddr goes out with
         * the socket's multicast TTL (1); the Via ttl is not applied. */
        if (addr_parse_ip(via->maddr, &d.addr) < 0)
            return -EHOSTUNREACH;
        addr_set_port(&d.addr, port);
    } else if (via->rport) {
        /* RFC 3581 4: to the source IP and port of the request. */
    } else {
        /* RFC 3261 18.2.2: to "received" (the source IP, as 18.2.1 sets it) at the
         * sent-by port, or 5060. */
        addr_set_port(&d.addr, port);
    }
    /* RFC 3581 4: from the address and port the request was received on. */
    if (req_src->listener >= 0 && (size_t)req_src->listener < t->listener_count) {
        l = &t->listeners[req_src->listener];
        if (l->proto != OVERLAY_SIP_UDP || l->addr.ss_family != d.addr.ss_family)
            l = NULL;
    }
    if (l == NULL)
        l = listener_for(t, OVERLAY_SIP_UDP, d.addr.ss_family);
    if (l == NULL)
        return -EAFNOSUPPORT;
    return udp_send(t, l, &d.addr, buf, len);
}

int overlay_sip_dest_from_ip(struct p2p_slice host, uint16_t port, enum overlay_sip_proto proto,
                             struct overlay_sip_dest *out)
{
    struct sockaddr_storage a;

    if ((proto != OVERLAY_SIP_UDP && proto != OVERLAY_SIP_TCP) || addr_parse_ip(host, &a) < 0)
        return -EINVAL;
    addr_set_port(&a, port ? port : SIP_DEFAULT_PORT);
    out->proto = proto;
    out->addr = a;
    return 0;
}

/* ---- Via received / rport (the receiving side) ---- */

int overlay_sip_via_fix(const struct overlay_sip_source *src, const struct sip_via *via,
                        struct overlay_sip_via_fix *out)
{
    struct overlay_sip_via_fix f;
    struct sip_via_fix fix;
    struct sip_src s;
    int r;

    /* Only the conversion lives here: the rule itself (RFC 3261 18.2.1, RFC 3581
     * 4) is sip_via_fix(), the one the SIP core applies to every response. */
    memset(&f, 0, sizeof(f));
    if (src->remote.ss_family == AF_INET6)
        r = uv_ip6_name((const struct sockaddr_in6 *)&src->remote, f.received, sizeof(f.received));
    else if (src->remote.ss_family == AF_INET)
        r = uv_ip4_name((const struct sockaddr_in *)&src->remote, f.received, sizeof(f.received));
    else
        return -EINVAL;
    if (r < 0)
        return -EINVAL;
    s.host = p2p_slice_cstr(f.received);
    s.port = addr_port(&src->remote);
    if (sip_via_fix(via, &s, &fix) != 0)
        return -EINVAL;
    f.add_received = fix.received;
    f.set_rport = fix.rport;
    f.rport = fix.rport ? s.port : 0;
    *out = f;
    return 0;
}
