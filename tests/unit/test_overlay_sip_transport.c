/*
 * test_overlay_sip_transport.c: the SIP transport on a real libuv loop with real
 * sockets on 127.0.0.1 and ::1 (port 0 everywhere, so runs never collide).
 *
 * Peers are plain libuv handles on the same loop.  Every wait runs the loop until
 * the expected callbacks have happened, with a bounded timer as the failsafe; every
 * test closes everything and asserts uv_loop_close() == 0, which fails if a handle
 * or the transport leaked.  IPv6 cases are skipped (cmocka skip) when ::1 cannot be
 * bound.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "p2p/log.h"
#include "p2p/overlay_sip.h"
#include "p2p/sip_msg.h"

#define FAILSAFE_MS 5000

struct fixture;

struct tcp_peer {
    struct fixture *f;
    uv_tcp_t h;
    uv_connect_t creq;
    bool used, connected, eof, closed;
    int connect_status;
    char rx[8192];
    size_t rxlen;
};

struct udp_peer {
    struct fixture *f;
    uv_udp_t h;
    bool used, closed;
    struct sockaddr_storage addr;
    int datagrams;
    char rx[4096];
    size_t rxlen;
};

struct fixture {
    uv_loop_t loop;
    uv_timer_t failsafe;
    bool timed_out;
    struct p2p_log log;
    struct overlay_sip_transport *t;
    bool t_closed;

    /* on_message */
    int messages;
    int bad_messages;
    struct overlay_sip_source last_src;
    char last[4096];
    size_t last_len;
    char method[16];
    int last_err;
    /* what on_message does */
    bool respond;
    bool ref_conn;
    int respond_rc;
    const char *response;

    /* on_send_error */
    int send_errors;
    int last_send_err;
    struct overlay_sip_dest last_send_dest;

    /* a listening peer (for reconnection) */
    uv_tcp_t peer_server;
    bool peer_server_used;
    struct sockaddr_storage peer_server_addr;
    struct tcp_peer accepted;
};

static const char RESPONSE[] = "SIP/2.0 200 OK\r\n"
                               "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
                               "From: <sip:alice@example.org>;tag=1\r\n"
                               "To: <sip:bob@example.org>;tag=2\r\n"
                               "Call-ID: c1@h\r\n"
                               "CSeq: 1 REGISTER\r\n"
                               "Content-Length: 0\r\n\r\n";

/* ---- helpers ---- */

static void failsafe_cb(uv_timer_t *timer)
{
    struct fixture *f = timer->data;
    f->timed_out = true;
}

/* Runs the loop until cond holds or the failsafe (ms) fires; returns cond. */
#define RUN_UNTIL_MS(f, cond, ms)                                                                  \
    do {                                                                                           \
        (f)->timed_out = false;                                                                    \
        assert_int_equal(uv_timer_start(&(f)->failsafe, failsafe_cb, (ms), 0), 0);                 \
        while (!(cond) && !(f)->timed_out)                                                         \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->failsafe);                                                             \
    } while (0)

#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        RUN_UNTIL_MS(f, cond, FAILSAFE_MS);                                                        \
        assert_true(cond);                                                                         \
    } while (0)

/* Lets the loop run for ms (to show that something does NOT happen). */
static void run_for(struct fixture *f, uint64_t ms)
{
    RUN_UNTIL_MS(f, false, ms);
}

static struct sockaddr_storage ip_port(const char *ip, unsigned port)
{
    struct sockaddr_storage a;
    memset(&a, 0, sizeof(a));
    if (strchr(ip, ':'))
        assert_int_equal(uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)&a), 0);
    else
        assert_int_equal(uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)&a), 0);
    return a;
}

static unsigned port_of(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    char x[64], y[64];
    if (a->ss_family != b->ss_family || port_of(a) != port_of(b))
        return false;
    if (a->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)a, x, sizeof(x));
        uv_ip6_name((const struct sockaddr_in6 *)b, y, sizeof(y));
    } else {
        uv_ip4_name((const struct sockaddr_in *)a, x, sizeof(x));
        uv_ip4_name((const struct sockaddr_in *)b, y, sizeof(y));
    }
    return strcmp(x, y) == 0;
}

static size_t make_request(char *out, size_t size, const char *transport, const char *host,
                           unsigned port, const char *via_params, const char *body)
{
    int n = snprintf(out, size,
                     "REGISTER sip:example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/%s %s:%u;branch=z9hG4bK776%s\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:alice@example.org>;tag=1\r\n"
                     "To: <sip:alice@example.org>\r\n"
                     "Call-ID: c1@h\r\n"
                     "CSeq: 1 REGISTER\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     transport, host, port, via_params, strlen(body), body);
    assert_true(n > 0 && (size_t)n < size);
    return (size_t)n;
}

static bool top_via(const struct sip_msg *msg, struct sip_via *via)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;

    sip_hdr_iter_init(&it, msg, SIP_HDR_VIA);
    return sip_hdr_iter_next(&it, &v) && sip_via_parse(v, via) == 0;
}

/* ---- transport callbacks ---- */

static void on_message(void *arg, const struct overlay_sip_source *src, const char *buf, size_t len,
                       const struct sip_msg *msg, int parse_err)
{
    struct fixture *f = arg;

    f->last_src = *src;
    f->last_err = parse_err;
    f->last_len = len < sizeof(f->last) ? len : sizeof(f->last);
    memcpy(f->last, buf, f->last_len);
    if (msg == NULL) {
        assert_true(parse_err < 0);
        f->bad_messages++;
        return;
    }
    assert_int_equal(parse_err, 0);
    f->messages++;
    f->method[0] = '\0';
    if (msg->is_request)
        assert_int_equal(p2p_slice_copy(msg->method, f->method, sizeof(f->method)), 0);
    if (f->ref_conn)
        assert_int_equal(overlay_sip_conn_ref(f->t, src->conn_id), 0);
    if (f->respond) {
        struct sip_via via;
        const char *r = f->response ? f->response : RESPONSE;
        assert_true(top_via(msg, &via));
        f->respond_rc = overlay_sip_send_response(f->t, src, &via, r, strlen(r));
    }
}

static void on_send_error(void *arg, const struct overlay_sip_dest *dest, int err)
{
    struct fixture *f = arg;

    f->send_errors++;
    f->last_send_err = err;
    f->last_send_dest = *dest;
}

static const struct overlay_sip_ops ops = {on_message, on_send_error};

static void transport_closed(void *arg)
{
    struct fixture *f = arg;
    f->t_closed = true;
}

/* ---- fixture ---- */

static struct fixture *fixture_new(void)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->failsafe), 0);
    f->failsafe.data = f;
    p2p_log_init(&f->log, "test", P2P_LOG_ERR, false);
    return f;
}

static void start(struct fixture *f, const struct overlay_sip_config *cfg)
{
    assert_int_equal(overlay_sip_transport_new(&f->t, &f->loop, cfg, &ops, f, &f->log), 0);
}

/* One listener of each kind given, on ip port 0. */
static void start_simple(struct fixture *f, const char *ip, bool udp, bool tcp,
                         struct overlay_sip_config *cfg)
{
    static struct overlay_sip_listen l[2];
    struct overlay_sip_config c = {0};
    size_t n = 0;

    if (cfg)
        c = *cfg;
    if (udp) {
        l[n].proto = OVERLAY_SIP_UDP;
        l[n++].addr = ip_port(ip, 0);
    }
    if (tcp) {
        l[n].proto = OVERLAY_SIP_TCP;
        l[n++].addr = ip_port(ip, 0);
    }
    c.listen = l;
    c.listen_count = n;
    start(f, &c);
}

static struct sockaddr_storage listener_addr(struct fixture *f, size_t i)
{
    struct overlay_sip_listen l;
    assert_int_equal(overlay_sip_transport_listener(f->t, i, &l), 0);
    assert_int_not_equal(port_of(&l.addr), 0);
    return l.addr;
}

static struct overlay_sip_counters counters(struct fixture *f)
{
    struct overlay_sip_counters c;
    overlay_sip_transport_counters(f->t, &c);
    return c;
}

static void handle_closed(uv_handle_t *h)
{
    bool *closed = h->data;
    *closed = true;
}

static void tcp_peer_close(struct tcp_peer *p)
{
    if (p->used && !uv_is_closing((uv_handle_t *)&p->h)) {
        p->h.data = &p->closed;
        uv_close((uv_handle_t *)&p->h, handle_closed);
    }
}

static void udp_peer_close(struct udp_peer *p)
{
    if (p->used && !uv_is_closing((uv_handle_t *)&p->h)) {
        p->h.data = &p->closed;
        uv_close((uv_handle_t *)&p->h, handle_closed);
    }
}

static void fixture_free(struct fixture *f, struct tcp_peer *tcp, size_t ntcp, struct udp_peer *udp,
                         size_t nudp)
{
    for (size_t i = 0; i < ntcp; i++)
        tcp_peer_close(&tcp[i]);
    for (size_t i = 0; i < nudp; i++)
        udp_peer_close(&udp[i]);
    tcp_peer_close(&f->accepted);
    if (f->peer_server_used)
        uv_close((uv_handle_t *)&f->peer_server, NULL);
    if (f->t) {
        overlay_sip_transport_close(f->t, transport_closed, f);
        assert_false(f->t_closed); /* never from inside the call */
    }
    uv_close((uv_handle_t *)&f->failsafe, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_true(f->t_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    p2p_log_close(&f->log);
    free(f);
}

/* ---- peers ---- */

static void tcp_peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tcp_peer *p = h->data;
    (void)suggested;
    buf->base = p->rx + p->rxlen;
    buf->len = sizeof(p->rx) - p->rxlen;
}

static void tcp_peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tcp_peer *p = s->data;
    (void)buf;
    if (nread > 0)
        p->rxlen += (size_t)nread;
    else if (nread < 0)
        p->eof = true;
}

static void tcp_peer_connected(uv_connect_t *req, int status)
{
    struct tcp_peer *p = req->data;
    p->connect_status = status;
    p->connected = true;
    if (status == 0)
        assert_int_equal(uv_read_start((uv_stream_t *)&p->h, tcp_peer_alloc, tcp_peer_read), 0);
}

static void tcp_peer_connect(struct fixture *f, struct tcp_peer *p,
                             const struct sockaddr_storage *to)
{
    memset(p, 0, sizeof(*p));
    p->f = f;
    p->used = true;
    assert_int_equal(uv_tcp_init(&f->loop, &p->h), 0);
    p->h.data = p;
    p->creq.data = p;
    assert_int_equal(
        uv_tcp_connect(&p->creq, &p->h, (const struct sockaddr *)to, tcp_peer_connected), 0);
    RUN_UNTIL(f, p->connected);
    assert_int_equal(p->connect_status, 0);
}

static void tcp_peer_write(struct tcp_peer *p, const char *s, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)n);
    /* Loopback with small messages: the kernel takes it all at once. */
    assert_int_equal(uv_try_write((uv_stream_t *)&p->h, &b, 1), (int)n);
}

static struct sockaddr_storage tcp_peer_local(struct tcp_peer *p)
{
    struct sockaddr_storage a;
    int len = sizeof(a);
    assert_int_equal(uv_tcp_getsockname(&p->h, (struct sockaddr *)&a, &len), 0);
    return a;
}

static void udp_peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct udp_peer *p = h->data;
    (void)suggested;
    buf->base = p->rx;
    buf->len = sizeof(p->rx);
}

static void udp_peer_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                          const struct sockaddr *addr, unsigned flags)
{
    struct udp_peer *p = h->data;
    (void)buf;
    (void)flags;
    if (nread <= 0 || addr == NULL)
        return;
    p->datagrams++;
    p->rxlen = (size_t)nread;
}

static void udp_peer_open(struct fixture *f, struct udp_peer *p, const char *ip)
{
    struct sockaddr_storage a = ip_port(ip, 0);
    int len = sizeof(p->addr);

    memset(p, 0, sizeof(*p));
    p->f = f;
    p->used = true;
    assert_int_equal(uv_udp_init(&f->loop, &p->h), 0);
    p->h.data = p;
    assert_int_equal(uv_udp_bind(&p->h, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_udp_getsockname(&p->h, (struct sockaddr *)&p->addr, &len), 0);
    assert_int_equal(uv_udp_recv_start(&p->h, udp_peer_alloc, udp_peer_recv), 0);
}

static void udp_peer_send(struct udp_peer *p, const struct sockaddr_storage *to, const char *s,
                          size_t n)
{
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)n);
    assert_int_equal(uv_udp_try_send(&p->h, &b, 1, (const struct sockaddr *)to), (int)n);
}

static void peer_server_on_connection(uv_stream_t *server, int status)
{
    struct fixture *f = server->data;
    struct tcp_peer *p = &f->accepted;

    assert_int_equal(status, 0);
    assert_false(p->used);
    p->f = f;
    p->used = true;
    assert_int_equal(uv_tcp_init(&f->loop, &p->h), 0);
    p->h.data = p;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->h), 0);
    p->connected = true;
    assert_int_equal(uv_read_start((uv_stream_t *)&p->h, tcp_peer_alloc, tcp_peer_read), 0);
}

static void peer_server_listen(struct fixture *f, const char *ip)
{
    struct sockaddr_storage a = ip_port(ip, 0);
    int len = sizeof(f->peer_server_addr);

    assert_int_equal(uv_tcp_init(&f->loop, &f->peer_server), 0);
    f->peer_server_used = true;
    f->peer_server.data = f;
    assert_int_equal(uv_tcp_bind(&f->peer_server, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->peer_server, 8, peer_server_on_connection), 0);
    assert_int_equal(
        uv_tcp_getsockname(&f->peer_server, (struct sockaddr *)&f->peer_server_addr, &len), 0);
}

static bool have_ipv6(void)
{
    uv_loop_t loop;
    uv_udp_t h;
    struct sockaddr_in6 a;
    bool ok;

    if (uv_loop_init(&loop) != 0)
        return false;
    uv_ip6_addr("::1", 0, &a);
    ok = uv_udp_init(&loop, &h) == 0;
    if (ok) {
        ok = uv_udp_bind(&h, (const struct sockaddr *)&a, 0) == 0;
        uv_close((uv_handle_t *)&h, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return ok;
}

/* ---- UDP ---- */

/* A request in: on_message with its source; the response goes back per Via with
 * rport (RFC 3581 4), to the source port, although sent-by names port 9. */
static void udp_request_rport(const char *ip)
{
    struct fixture *f = fixture_new();
    struct udp_peer peer;
    char req[1024];
    size_t n;

    start_simple(f, ip, true, false, NULL);
    struct sockaddr_storage srv = listener_addr(f, 0);
    udp_peer_open(f, &peer, ip);
    n = make_request(req, sizeof(req), "UDP", strchr(ip, ':') ? "[::1]" : ip, 9, ";rport", "");
    f->respond = true;
    udp_peer_send(&peer, &srv, req, n);
    RUN_UNTIL(f, f->messages == 1 && peer.datagrams == 1);

    assert_int_equal(f->last_src.proto, OVERLAY_SIP_UDP);
    assert_int_equal(f->last_src.conn_id, 0);
    assert_int_equal(f->last_src.listener, 0);
    assert_true(same_addr(&f->last_src.remote, &peer.addr));
    assert_int_equal(f->last_len, n);
    assert_memory_equal(f->last, req, n);
    assert_string_equal(f->method, "REGISTER");
    assert_int_equal(f->respond_rc, 0);
    assert_int_equal(peer.rxlen, strlen(RESPONSE));
    assert_memory_equal(peer.rx, RESPONSE, peer.rxlen);

    struct overlay_sip_counters c = counters(f);
    assert_int_equal(c.udp_rx_datagrams, 1);
    assert_int_equal(c.udp_rx_bytes, n);
    assert_int_equal(c.udp_tx_datagrams, 1);
    assert_int_equal(c.parse_errors, 0);
    fixture_free(f, NULL, 0, &peer, 1);
}

static void test_udp_request_rport_v4(void **state)
{
    (void)state;
    udp_request_rport("127.0.0.1");
}

static void test_udp_request_rport_v6(void **state)
{
    (void)state;
    if (!have_ipv6())
        skip();
    udp_request_rport("::1");
}

/* Without rport the response goes to the sent-by port (RFC 3261 18.2.2): peer a
 * sends the request naming peer b's port, and only b gets the response. */
static void test_udp_response_to_sent_by(void **state)
{
    struct fixture *f = fixture_new();
    struct udp_peer peers[2];
    char req[1024];
    size_t n;

    (void)state;
    start_simple(f, "127.0.0.1", true, false, NULL);
    struct sockaddr_storage srv = listener_addr(f, 0);
    udp_peer_open(f, &peers[0], "127.0.0.1");
    udp_peer_open(f, &peers[1], "127.0.0.1");
    n = make_request(req, sizeof(req), "UDP", "127.0.0.1", port_of(&peers[1].addr), "", "");
    f->respond = true;
    udp_peer_send(&peers[0], &srv, req, n);
    RUN_UNTIL(f, peers[1].datagrams == 1);
    assert_int_equal(f->respond_rc, 0);
    assert_int_equal(peers[0].datagrams, 0);
    assert_memory_equal(peers[1].rx, RESPONSE, strlen(RESPONSE));

    /* no UDP listener of that family */
    struct overlay_sip_dest d = {OVERLAY_SIP_UDP, ip_port("::1", 5060)};
    assert_int_equal(overlay_sip_send(f->t, &d, "x", 1), -EAFNOSUPPORT);
    fixture_free(f, NULL, 0, peers, 2);
}

/* A datagram that does not parse is delivered with its error and no message, so the
 * SIP core can choose between 400 and silence; a CRLF keep-alive is not delivered. */
static void test_udp_bad_datagram(void **state)
{
    struct fixture *f = fixture_new();
    struct udp_peer peer;

    (void)state;
    start_simple(f, "127.0.0.1", true, false, NULL);
    struct sockaddr_storage srv = listener_addr(f, 0);
    udp_peer_open(f, &peer, "127.0.0.1");
    udp_peer_send(&peer, &srv, "\r\n\r\n", 4);
    udp_peer_send(&peer, &srv, "NOT SIP", 7);
    RUN_UNTIL(f, f->bad_messages == 1);
    assert_int_equal(f->messages, 0);
    assert_int_equal(f->last_len, 7);
    assert_memory_equal(f->last, "NOT SIP", 7);
    assert_true(f->last_err == -EBADMSG);
    struct overlay_sip_counters c = counters(f);
    assert_int_equal(c.keepalives, 1);
    assert_int_equal(c.parse_errors, 1);
    assert_int_equal(c.udp_rx_datagrams, 2);
    fixture_free(f, NULL, 0, &peer, 1);
}

/* ---- TCP ---- */

/* Two messages in one write and one message split across writes are framed by
 * Content-Length (RFC 3261 18.3); a CRLF ping gets its pong (RFC 5626 3.5.1). */
static void tcp_framing(const char *ip)
{
    struct fixture *f = fixture_new();
    struct tcp_peer peer;
    char one[1024], two[2048];
    size_t n1, n;

    start_simple(f, ip, false, true, NULL);
    struct sockaddr_storage srv = listener_addr(f, 0);
    tcp_peer_connect(f, &peer, &srv);
    n1 = make_request(one, sizeof(one), "TCP", "host.invalid", 5060, "", "v=0\r\n");
    memcpy(two, one, n1);
    memcpy(two + n1, one, n1);
    tcp_peer_write(&peer, two, 2 * n1);
    RUN_UNTIL(f, f->messages == 2);
    assert_int_equal(f->last_len, n1);
    assert_memory_equal(f->last, one, n1);
    assert_int_equal(f->last_src.proto, OVERLAY_SIP_TCP);
    assert_int_not_equal(f->last_src.conn_id, 0);
    struct sockaddr_storage me = tcp_peer_local(&peer);
    assert_true(same_addr(&f->last_src.remote, &me));

    /* Split: head in pieces, the body's last byte alone.  Each piece must reach
     * the transport before the next is written, so wait on the byte counter. */
    size_t cuts[] = {1, 30, n1 / 2, n1 - 1, n1};
    size_t at = 0;
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        uint64_t before = counters(f).tcp_rx_bytes;
        tcp_peer_write(&peer, one + at, cuts[i] - at);
        RUN_UNTIL(f, counters(f).tcp_rx_bytes == before + (cuts[i] - at));
        assert_int_equal(f->messages, i + 1 < sizeof(cuts) / sizeof(cuts[0]) ? 2 : 3);
        at = cuts[i];
    }
    assert_int_equal(f->last_len, n1);
    assert_memory_equal(f->last, one, n1);

    /* RFC 5626 3.5.1 keep-alive */
    n = peer.rxlen;
    tcp_peer_write(&peer, "\r\n\r\n", 4);
    RUN_UNTIL(f, peer.rxlen == n + 2);
    assert_memory_equal(peer.rx + n, "\r\n", 2);

    struct overlay_sip_counters c = counters(f);
    assert_int_equal(c.tcp_rx_messages, 3);
    assert_int_equal(c.keepalives, 1);
    assert_int_equal(c.conns_opened, 1);
    assert_int_equal(c.conns_open, 1);
    assert_int_equal(c.framing_errors, 0);
    fixture_free(f, &peer, 1, NULL, 0);
}

static void test_tcp_framing_v4(void **state)
{
    (void)state;
    tcp_framing("127.0.0.1");
}

static void test_tcp_framing_v6(void **state)
{
    (void)state;
    if (!have_ipv6())
        skip();
    tcp_framing("::1");
}

/* A stream that does not parse closes that connection only. */
static void test_tcp_garbage_closes_one(void **state)
{
    struct fixture *f = fixture_new();
    struct tcp_peer peers[2];
    char req[1024];
    size_t n;

    (void)state;
    start_simple(f, "127.0.0.1", false, true, NULL);
    struct sockaddr_storage srv = listener_addr(f, 0);
    tcp_peer_connect(f, &peers[0], &srv);
    tcp_peer_connect(f, &peers[1], &srv);
    RUN_UNTIL(f, counters(f).conns_open == 2);
    tcp_peer_write(&peers[0], "\x01\x02 GARBAGE\r\n\r\n", 14);
    RUN_UNTIL(f, peers[0].eof);
    assert_false(peers[1].eof);
    assert_int_equal(counters(f).framing_errors, 1);
    assert_int_equal(counters(f).conns_open, 1);

    n = make_request(req, sizeof(req), "TCP", "host.invalid", 5060, "", "");
    tcp_peer_write(&peers[1], req, n);
    RUN_UNTIL(f, f->messages == 1);
    assert_int_equal(f->bad_messages, 0);
    assert_false(peers[1].eof);
    fixture_free(f, peers, 2, NULL, 0);
}

/* The response goes back on the request's connection (RFC 3261 18.2.2), and a send
 * to the peer's address reuses that accepted connection. */
static void test_tcp_response_reuses_connection(void **state)
{
    struct fixture *f = fixture_new();
    struct tcp_peer peer;
    char req[1024];
    size_t n;

    (void)state;
    start_simple(f, "127.0.0.1", false, true, NULL);
    struct sockaddr_storage srv = listener_addr(f, 0);
    tcp_peer_connect(f, &peer, &srv);
    n = make_request(req, sizeof(req), "TCP", "127.0.0.1", 9, "", "");
    f->respond = true;
    tcp_peer_write(&peer, req, n);
    RUN_UNTIL(f, peer.rxlen == strlen(RESPONSE));
    assert_int_equal(f->respond_rc, 0);
    assert_memory_equal(peer.rx, RESPONSE, strlen(RESPONSE));

    struct overlay_sip_dest d = {OVERLAY_SIP_TCP, tcp_peer_local(&peer)};
    assert_int_equal(overlay_sip_send(f->t, &d, "OPTIONS", 7), 0);
    assert_int_equal(overlay_sip_send_conn(f->t, f->last_src.conn_id, "!", 1), 0);
    RUN_UNTIL(f, peer.rxlen == strlen(RESPONSE) + 8);
    assert_memory_equal(peer.rx + strlen(RESPONSE), "OPTIONS!", 8);
    assert_int_equal(counters(f).conns_opened, 1);
    assert_int_equal(f->send_errors, 0);
    assert_int_equal(overlay_sip_send_conn(f->t, 12345, "x", 1), -ENOTCONN);
    fixture_free(f, &peer, 1, NULL, 0);
}

/* When the request's connection is gone, the response opens a connection to the
 * source IP at the sent-by port (RFC 3261 18.2.2). */
static void test_tcp_response_reconnects(void **state)
{
    struct fixture *f = fixture_new();
    struct tcp_peer peer;
    char req[1024];
    size_t n;

    (void)state;
    start_simple(f, "127.0.0.1", false, true, NULL);
    struct sockaddr_storage srv = listener_addr(f, 0);
    peer_server_listen(f, "127.0.0.1");
    tcp_peer_connect(f, &peer, &srv);
    n = make_request(req, sizeof(req), "TCP", "127.0.0.1", port_of(&f->peer_server_addr), "", "");
    tcp_peer_write(&peer, req, n);
    RUN_UNTIL(f, f->messages == 1);
    struct overlay_sip_source src = f->last_src;
    tcp_peer_close(&peer);
    RUN_UNTIL(f, peer.closed && counters(f).conns_open == 0);

    struct sip_msg msg;
    struct sip_via via;
    assert_true(sip_msg_parse(&msg, req, n, SIP_MSG_STREAM, NULL) > 0);
    assert_true(top_via(&msg, &via));
    assert_int_equal(overlay_sip_send_response(f->t, &src, &via, RESPONSE, strlen(RESPONSE)), 0);
    RUN_UNTIL(f, f->accepted.rxlen == strlen(RESPONSE));
    assert_memory_equal(f->accepted.rx, RESPONSE, strlen(RESPONSE));
    assert_int_equal(counters(f).conns_opened, 2);
    fixture_free(f, &peer, 1, NULL, 0);
}

/* A connection with no traffic is closed after tcp_idle_ms, unless held. */
static void test_tcp_idle_timeout(void **state)
{
    struct fixture *f = fixture_new();
    struct overlay_sip_config cfg = {.tcp_idle_ms = 40};
    struct tcp_peer peers[2];
    char req[1024];
    size_t n;

    (void)state;
    start_simple(f, "127.0.0.1", false, true, &cfg);
    struct sockaddr_storage srv = listener_addr(f, 0);
    n = make_request(req, sizeof(req), "TCP", "host.invalid", 5060, "", "");

    /* Held by a ref: survives several idle periods, closes after the unref. */
    f->ref_conn = true;
    tcp_peer_connect(f, &peers[0], &srv);
    tcp_peer_write(&peers[0], req, n);
    RUN_UNTIL(f, f->messages == 1);
    uint64_t held = f->last_src.conn_id;
    f->ref_conn = false;
    run_for(f, 150);
    assert_false(peers[0].eof);
    assert_int_equal(counters(f).conns_idle_closed, 0);
    assert_int_equal(overlay_sip_conn_unref(f->t, held), 0);
    RUN_UNTIL(f, peers[0].eof);
    assert_int_equal(counters(f).conns_idle_closed, 1);
    assert_int_equal(overlay_sip_conn_ref(f->t, held), -ENOTCONN);

    /* Not held: closes after the idle time. */
    tcp_peer_connect(f, &peers[1], &srv);
    RUN_UNTIL(f, peers[1].eof);
    struct overlay_sip_counters c = counters(f);
    assert_int_equal(c.conns_idle_closed, 2);
    assert_int_equal(c.conns_closed, 2);
    assert_int_equal(c.conns_open, 0);
    fixture_free(f, peers, 2, NULL, 0);
}

/* A connection to a closed port fails through on_send_error, never inside the call. */
static void test_tcp_connect_refused(void **state)
{
    struct fixture *f = fixture_new();
    struct overlay_sip_dest d = {OVERLAY_SIP_TCP, {0}};
    uv_tcp_t probe;
    bool probe_closed = false;
    int len = sizeof(d.addr);

    (void)state;
    start_simple(f, "127.0.0.1", false, true, NULL);
    /* A port that was just free: bind, read it, close. */
    struct sockaddr_storage any = ip_port("127.0.0.1", 0);
    assert_int_equal(uv_tcp_init(&f->loop, &probe), 0);
    assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&any, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&probe, (struct sockaddr *)&d.addr, &len), 0);
    probe.data = &probe_closed;
    uv_close((uv_handle_t *)&probe, handle_closed);
    RUN_UNTIL(f, probe_closed);

    assert_int_equal(overlay_sip_send(f->t, &d, RESPONSE, strlen(RESPONSE)), 0);
    assert_int_equal(overlay_sip_send(f->t, &d, RESPONSE, strlen(RESPONSE)), 0); /* queued */
    assert_int_equal(f->send_errors, 0);
    assert_int_equal(counters(f).conns_open, 1); /* both on one connection */
    RUN_UNTIL(f, f->send_errors == 1);
    assert_int_equal(f->last_send_err, UV_ECONNREFUSED);
    assert_int_equal(f->last_send_dest.proto, OVERLAY_SIP_TCP);
    assert_true(same_addr(&f->last_send_dest.addr, &d.addr));
    RUN_UNTIL(f, counters(f).conns_open == 0);
    run_for(f, 20);
    assert_int_equal(f->send_errors, 1); /* once per connection */
    fixture_free(f, NULL, 0, NULL, 0);
}

/* An outgoing connect that gets no answer times out after tcp_connect_ms and is
 * reported; closing the transport while a connect is pending reports nothing.  The
 * peer is a listening socket with a full accept queue (backlog 0, one connection
 * queued, never accepted): Linux drops further SYNs, so the connect hangs. */
static void test_tcp_connect_timeout(void **state)
{
    struct fixture *f = fixture_new();
    struct overlay_sip_config cfg = {.tcp_connect_ms = 50};
    struct overlay_sip_dest d = {OVERLAY_SIP_TCP, ip_port("127.0.0.1", 0)};
    socklen_t len = sizeof(d.addr);
    int lfd, cfd;

    (void)state;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (const struct sockaddr *)&d.addr, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&d.addr, &len), 0);
    cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cfd >= 0);
    assert_int_equal(connect(cfd, (const struct sockaddr *)&d.addr, sizeof(struct sockaddr_in)), 0);

    start_simple(f, "127.0.0.1", false, true, &cfg);
    assert_int_equal(overlay_sip_send(f->t, &d, RESPONSE, strlen(RESPONSE)), 0);
    RUN_UNTIL(f, f->send_errors == 1);
    assert_int_equal(f->last_send_err, UV_ETIMEDOUT);
    assert_true(same_addr(&f->last_send_dest.addr, &d.addr));
    RUN_UNTIL(f, counters(f).conns_open == 0);

    assert_int_equal(overlay_sip_send(f->t, &d, RESPONSE, strlen(RESPONSE)), 0);
    assert_int_equal(counters(f).conns_open, 1);
    overlay_sip_transport_close(f->t, transport_closed, f);
    f->t = NULL;
    RUN_UNTIL(f, f->t_closed);
    assert_int_equal(f->send_errors, 1);
    close(cfd);
    close(lfd);
    fixture_free(f, NULL, 0, NULL, 0);
}

/* max_tcp_conns: a connection past it is refused (closed at once) and counted; an
 * outgoing one fails synchronously with -EMFILE.  The write queue is capped too. */
static void test_tcp_connection_cap(void **state)
{
    struct fixture *f = fixture_new();
    struct overlay_sip_config cfg = {.max_tcp_conns = 2, .max_write_queue = 1000};
    struct tcp_peer peers[3];
    char big[600];

    (void)state;
    start_simple(f, "127.0.0.1", false, true, &cfg);
    struct sockaddr_storage srv = listener_addr(f, 0);
    for (int i = 0; i < 3; i++)
        tcp_peer_connect(f, &peers[i], &srv);
    RUN_UNTIL(f, counters(f).conns_refused == 1);
    RUN_UNTIL(f, peers[0].eof + peers[1].eof + peers[2].eof == 1);
    struct overlay_sip_counters c = counters(f);
    assert_int_equal(c.conns_opened, 2);
    assert_int_equal(c.conns_open, 2);

    peer_server_listen(f, "127.0.0.1");
    struct overlay_sip_dest d = {OVERLAY_SIP_TCP, f->peer_server_addr};
    assert_int_equal(overlay_sip_send(f->t, &d, "x", 1), -EMFILE);

    /* Free one slot, then fill the write queue of a connection still connecting. */
    for (int i = 0; i < 3; i++)
        tcp_peer_close(&peers[i]);
    RUN_UNTIL(f, counters(f).conns_open == 0);
    memset(big, 'a', sizeof(big));
    assert_int_equal(overlay_sip_send(f->t, &d, big, sizeof(big)), 0);
    assert_int_equal(overlay_sip_send(f->t, &d, big, sizeof(big)), -ENOBUFS);
    RUN_UNTIL(f, f->accepted.rxlen == sizeof(big));
    assert_int_equal(f->send_errors, 0);
    fixture_free(f, peers, 3, NULL, 0);
}

/* A message over max_msg_size closes its connection, whether it arrives at once or
 * dribbles in. */
static void test_tcp_oversized(void **state)
{
    struct fixture *f = fixture_new();
    struct overlay_sip_config cfg = {.max_msg_size = 1024};
    struct tcp_peer peers[3];
    static char body[3000];
    char req[4096];
    size_t n;

    (void)state;
    start_simple(f, "127.0.0.1", false, true, &cfg);
    struct sockaddr_storage srv = listener_addr(f, 0);
    memset(body, 'b', sizeof(body) - 1);
    n = make_request(req, sizeof(req), "TCP", "host.invalid", 5060, "", body);

    tcp_peer_connect(f, &peers[0], &srv);
    tcp_peer_write(&peers[0], req, n);
    RUN_UNTIL(f, peers[0].eof);
    assert_int_equal(counters(f).oversized, 1);

    /* More than the cap of an incomplete message in one read. */
    tcp_peer_connect(f, &peers[1], &srv);
    tcp_peer_write(&peers[1], req, 1100);
    RUN_UNTIL(f, peers[1].eof);
    assert_int_equal(counters(f).oversized, 2);

    /* Dribbled in: the connection's buffer reaches its cap. */
    tcp_peer_connect(f, &peers[2], &srv);
    for (size_t at = 0; at < 1200; at += 300) {
        uint64_t before = counters(f).tcp_rx_bytes;
        tcp_peer_write(&peers[2], req + at, 300);
        RUN_UNTIL(f, counters(f).tcp_rx_bytes == before + 300 || peers[2].eof);
    }
    RUN_UNTIL(f, peers[2].eof);
    struct overlay_sip_counters c = counters(f);
    assert_int_equal(c.oversized, 3);
    assert_int_equal(c.framing_errors, 0);
    assert_int_equal(c.conns_open, 0);
    assert_int_equal(f->messages, 0);
    fixture_free(f, peers, 3, NULL, 0);
}

/* ---- Via received / rport ---- */

static struct sip_via via_of(const char *value)
{
    struct sip_via via;
    assert_int_equal(sip_via_parse(p2p_slice_cstr(value), &via), 0);
    return via;
}

/* overlay_sip_via_fix() only converts the socket address for sip_via_fix(), whose
 * rule test_sip_build.c tests: here, that the source address and port arrive. */
static void test_via_fix(void **state)
{
    struct overlay_sip_source src = {.proto = OVERLAY_SIP_UDP};
    struct overlay_sip_via_fix fix;
    struct sip_via via;

    (void)state;
    src.remote = ip_port("192.0.2.7", 40000);
    via = via_of("SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bK1");
    assert_int_equal(overlay_sip_via_fix(&src, &via, &fix), 0);
    assert_true(fix.add_received);
    assert_string_equal(fix.received, "192.0.2.7");
    assert_true(fix.set_rport);
    assert_int_equal(fix.rport, 40000);
    /* the binary source compares equal to sent-by in another textual form */
    src.remote = ip_port("2001:db8::1", 5070);
    via = via_of("SIP/2.0/TCP [2001:DB8:0::1]:5070;branch=z9hG4bK1");
    assert_int_equal(overlay_sip_via_fix(&src, &via, &fix), 0);
    assert_false(fix.add_received);
    assert_false(fix.set_rport);
    via = via_of("SIP/2.0/TCP pc.example.org;branch=z9hG4bK1");
    assert_int_equal(overlay_sip_via_fix(&src, &via, &fix), 0);
    assert_true(fix.add_received);
    assert_string_equal(fix.received, "2001:db8::1"); /* no brackets (RFC 3261 25.1) */
    /* a source that is not IP */
    src.remote.ss_family = AF_UNIX;
    assert_int_equal(overlay_sip_via_fix(&src, &via, &fix), -EINVAL);
}

static void test_dest_from_ip(void **state)
{
    struct overlay_sip_dest d;

    (void)state;
    assert_int_equal(overlay_sip_dest_from_ip(P2P_SLICE_LIT("127.0.0.1"), 0, OVERLAY_SIP_UDP, &d),
                     0);
    assert_int_equal(d.proto, OVERLAY_SIP_UDP);
    struct sockaddr_storage want = ip_port("127.0.0.1", 5060);
    assert_true(same_addr(&d.addr, &want));
    assert_int_equal(
        overlay_sip_dest_from_ip(P2P_SLICE_LIT("[2001:db8::5]"), 5070, OVERLAY_SIP_TCP, &d), 0);
    want = ip_port("2001:db8::5", 5070);
    assert_true(same_addr(&d.addr, &want));
    assert_int_equal(d.proto, OVERLAY_SIP_TCP);
    assert_int_equal(overlay_sip_dest_from_ip(P2P_SLICE_LIT("::1"), 1, OVERLAY_SIP_UDP, &d), 0);
    d.proto = OVERLAY_SIP_UDP;
    assert_int_equal(overlay_sip_dest_from_ip(P2P_SLICE_LIT("example.org"), 0, OVERLAY_SIP_TCP, &d),
                     -EINVAL);
    assert_int_equal(overlay_sip_dest_from_ip(P2P_SLICE_LIT("[::1"), 0, OVERLAY_SIP_TCP, &d),
                     -EINVAL);
    assert_int_equal(d.proto, OVERLAY_SIP_UDP); /* untouched on failure */
}

/* ---- configuration ---- */

static void test_config_and_listeners(void **state)
{
    struct fixture *f = fixture_new();
    struct overlay_sip_listen l[4];
    struct overlay_sip_config cfg = {.listen = l};
    struct overlay_sip_transport *t = NULL;
    bool v6 = have_ipv6();
    size_t n = 0;

    (void)state;
    cfg.listen_count = 0;
    assert_int_equal(overlay_sip_transport_new(&t, &f->loop, &cfg, &ops, f, NULL), -EINVAL);
    l[n++] = (struct overlay_sip_listen){OVERLAY_SIP_UDP, ip_port("127.0.0.1", 0)};
    l[n++] = (struct overlay_sip_listen){OVERLAY_SIP_TCP, ip_port("127.0.0.1", 0)};
    if (v6) {
        l[n++] = (struct overlay_sip_listen){OVERLAY_SIP_UDP, ip_port("::1", 0)};
        l[n++] = (struct overlay_sip_listen){OVERLAY_SIP_TCP, ip_port("::1", 0)};
    }
    cfg.listen_count = n;
    cfg.max_msg_size = 70000; /* above the parser's cap */
    assert_int_equal(overlay_sip_transport_new(&t, &f->loop, &cfg, &ops, f, NULL), -EINVAL);
    assert_null(t);
    cfg.max_msg_size = 0;
    start(f, &cfg);
    assert_int_equal(overlay_sip_transport_listener_count(f->t), n);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage a = listener_addr(f, i);
        assert_int_equal(a.ss_family, l[i].addr.ss_family);
    }
    struct overlay_sip_listen out;
    assert_int_equal(overlay_sip_transport_listener(f->t, n, &out), -ENOENT);

    /* The same UDP port again: bind fails, the half-built transport is cleaned up. */
    struct overlay_sip_listen dup[2] = {
        {OVERLAY_SIP_TCP, ip_port("127.0.0.1", 0)},
        {OVERLAY_SIP_UDP, listener_addr(f, 0)},
    };
    struct overlay_sip_config cfg2 = {.listen = dup, .listen_count = 2};
    assert_int_equal(overlay_sip_transport_new(&t, &f->loop, &cfg2, &ops, f, NULL), UV_EADDRINUSE);
    assert_null(t);
    fixture_free(f, NULL, 0, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_request_rport_v4),
        cmocka_unit_test(test_udp_request_rport_v6),
        cmocka_unit_test(test_udp_response_to_sent_by),
        cmocka_unit_test(test_udp_bad_datagram),
        cmocka_unit_test(test_tcp_framing_v4),
        cmocka_unit_test(test_tcp_framing_v6),
        cmocka_unit_test(test_tcp_garbage_closes_one),
        cmocka_unit_test(test_tcp_response_reuses_connection),
        cmocka_unit_test(test_tcp_response_reconnects),
        cmocka_unit_test(test_tcp_idle_timeout),
        cmocka_unit_test(test_tcp_connect_refused),
        cmocka_unit_test(test_tcp_connect_timeout),
        cmocka_unit_test(test_tcp_connection_cap),
        cmocka_unit_test(test_tcp_oversized),
        cmocka_unit_test(test_via_fix),
        cmocka_unit_test(test_dest_from_ip),
        cmocka_unit_test(test_config_and_listeners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
