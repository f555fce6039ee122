/*
 * bench_sip_transport.c: request/response throughput of the SIP transport on
 * loopback, against a raw libuv echo of the same bytes.
 *
 * A client on the same loop keeps WINDOW requests in flight and sends a new one for
 * each response, until COUNT responses have come back.  "transport": the requests go
 * to overlay_sip_transport, whose on_message parses the top Via, computes the
 * received/rport fix and sends a fixed 200 with overlay_sip_send_response (UDP) or
 * on the request's connection (TCP).  "raw": the same client against a bare libuv
 * socket that answers each datagram / each whole request's worth of bytes with the
 * same response, without parsing anything.  The ratio raw/transport is
 * what framing, parsing and routing cost per message; both include the client.
 * Prints a table, then one JSON line.  Never asserts times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "p2p/overlay_sip.h"
#include "p2p/sip_msg.h"

#define COUNT 100000
#define WINDOW 32

static const char REQUEST[] = "REGISTER sip:example.org SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK776asdhds;rport\r\n"
                              "Max-Forwards: 70\r\n"
                              "To: Bob <sip:bob@example.org>\r\n"
                              "From: Bob <sip:bob@example.org>;tag=456248\r\n"
                              "Call-ID: 843817637684230@998sdasdh09\r\n"
                              "CSeq: 1826 REGISTER\r\n"
                              "Contact: <sip:bob@192.0.2.4>\r\n"
                              "Expires: 7200\r\n"
                              "Content-Length: 0\r\n\r\n";

static const char RESPONSE[] = "SIP/2.0 200 OK\r\n"
                               "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK776asdhds;"
                               "received=127.0.0.1;rport=40000\r\n"
                               "To: Bob <sip:bob@example.org>;tag=2493k59kd\r\n"
                               "From: Bob <sip:bob@example.org>;tag=456248\r\n"
                               "Call-ID: 843817637684230@998sdasdh09\r\n"
                               "CSeq: 1826 REGISTER\r\n"
                               "Contact: <sip:bob@192.0.2.4>;expires=7200\r\n"
                               "Content-Length: 0\r\n\r\n";

struct run {
    uv_loop_t *loop;
    struct overlay_sip_transport *t;
    /* client */
    uv_udp_t udp;
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct sockaddr_storage server;
    char rx[65536];
    size_t pending_bytes; /* TCP: bytes of a response not yet complete */
    size_t resp_len;
    long sent, received;
    /* raw echo server */
    uv_udp_t echo_udp;
    uv_tcp_t echo_listen, echo_conn;
    uv_timer_t failsafe; /* a lost datagram would stall the window forever */
    int errors;
};

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

/* ---- transport side ---- */

static void on_message(void *arg, const struct overlay_sip_source *src, const char *buf, size_t len,
                       const struct sip_msg *msg, int parse_err)
{
    struct run *r = arg;
    struct overlay_sip_via_fix fix;
    struct sip_hdr_iter it;
    struct p2p_slice v;
    struct sip_via via;

    (void)buf;
    (void)len;
    if (msg == NULL || parse_err != 0) {
        r->errors++;
        return;
    }
    sip_hdr_iter_init(&it, msg, SIP_HDR_VIA);
    if (!sip_hdr_iter_next(&it, &v) || sip_via_parse(v, &via) != 0 ||
        overlay_sip_via_fix(src, &via, &fix) != 0 ||
        overlay_sip_send_response(r->t, src, &via, RESPONSE, sizeof(RESPONSE) - 1) != 0)
        r->errors++;
}

static const struct overlay_sip_ops ops = {on_message, NULL};

/* ---- raw echo side ---- */

static void echo_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char rx[65536];
    (void)h;
    (void)suggested;
    buf->base = rx;
    buf->len = sizeof(rx);
}

static void echo_udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *a,
                          unsigned flags)
{
    struct run *r = h->data;
    uv_buf_t b = uv_buf_init((char *)RESPONSE, sizeof(RESPONSE) - 1);
    (void)buf;
    (void)flags;
    if (n <= 0 || a == NULL)
        return;
    if (uv_udp_try_send(h, &b, 1, a) < 0)
        r->errors++;
}

static void echo_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct run *r = s->data;
    (void)buf;
    if (n <= 0)
        return;
    /* Answer as many responses as whole requests arrived. */
    r->pending_bytes += (size_t)n;
    while (r->pending_bytes >= sizeof(REQUEST) - 1) {
        uv_buf_t b = uv_buf_init((char *)RESPONSE, sizeof(RESPONSE) - 1);
        r->pending_bytes -= sizeof(REQUEST) - 1;
        if (uv_try_write(s, &b, 1) != (int)b.len)
            r->errors++;
    }
}

static void echo_on_connection(uv_stream_t *server, int status)
{
    struct run *r = server->data;
    if (status < 0 || uv_tcp_init(r->loop, &r->echo_conn) < 0) {
        r->errors++;
        return;
    }
    r->echo_conn.data = r;
    /* Like the transport: no Nagle delay on small messages. */
    if (uv_accept(server, (uv_stream_t *)&r->echo_conn) < 0 ||
        uv_tcp_nodelay(&r->echo_conn, 1) < 0 ||
        uv_read_start((uv_stream_t *)&r->echo_conn, echo_alloc, echo_tcp_read) < 0)
        r->errors++;
}

/* ---- client ---- */

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct run *r = h->data;
    (void)suggested;
    buf->base = r->rx;
    buf->len = sizeof(r->rx);
}

static void client_send_udp(struct run *r)
{
    uv_buf_t b = uv_buf_init((char *)REQUEST, sizeof(REQUEST) - 1);
    if (uv_udp_try_send(&r->udp, &b, 1, (const struct sockaddr *)&r->server) < 0)
        r->errors++;
    r->sent++;
}

static void client_udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *a,
                            unsigned flags)
{
    struct run *r = h->data;
    (void)buf;
    (void)flags;
    if (n <= 0 || a == NULL)
        return;
    r->received++;
    if (r->sent < COUNT)
        client_send_udp(r);
    if (r->received == COUNT)
        uv_stop(r->loop);
}

static void client_send_tcp(struct run *r)
{
    uv_buf_t b = uv_buf_init((char *)REQUEST, sizeof(REQUEST) - 1);
    if (uv_try_write((uv_stream_t *)&r->tcp, &b, 1) != (int)b.len)
        r->errors++;
    r->sent++;
}

static void client_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct run *r = s->data;
    (void)buf;
    if (n < 0) {
        r->errors++;
        uv_stop(r->loop);
        return;
    }
    r->resp_len += (size_t)n;
    while (r->resp_len >= sizeof(RESPONSE) - 1) {
        r->resp_len -= sizeof(RESPONSE) - 1;
        r->received++;
        if (r->sent < COUNT)
            client_send_tcp(r);
    }
    if (r->received >= COUNT)
        uv_stop(r->loop);
}

static void client_connected(uv_connect_t *req, int status)
{
    struct run *r = req->data;
    if (status < 0 || uv_read_start((uv_stream_t *)&r->tcp, client_alloc, client_tcp_read) < 0) {
        r->errors++;
        uv_stop(r->loop);
        return;
    }
    for (int i = 0; i < WINDOW; i++)
        client_send_tcp(r);
}

static void failsafe_cb(uv_timer_t *h)
{
    fprintf(stderr, "bench: gave up after 30 s\n");
    uv_stop(h->loop);
}

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

/* One measurement: returns responses per second, or 0 on failure. */
static double measure(bool tcp, bool raw)
{
    uv_loop_t loop;
    struct run *r = calloc(1, sizeof(*r));
    struct sockaddr_storage any;
    int len = sizeof(r->server);
    double t0, rate = 0;

    if (r == NULL || uv_loop_init(&loop) != 0)
        return 0;
    r->loop = &loop;
    uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&any);
    if (!raw) {
        struct overlay_sip_listen l = {tcp ? OVERLAY_SIP_TCP : OVERLAY_SIP_UDP, any};
        struct overlay_sip_config cfg = {.listen = &l, .listen_count = 1};
        struct overlay_sip_listen bound;
        if (overlay_sip_transport_new(&r->t, &loop, &cfg, &ops, r, NULL) != 0 ||
            overlay_sip_transport_listener(r->t, 0, &bound) != 0)
            goto out;
        r->server = bound.addr;
    } else if (tcp) {
        uv_tcp_init(&loop, &r->echo_listen);
        r->echo_listen.data = r;
        if (uv_tcp_bind(&r->echo_listen, (const struct sockaddr *)&any, 0) != 0 ||
            uv_listen((uv_stream_t *)&r->echo_listen, 8, echo_on_connection) != 0 ||
            uv_tcp_getsockname(&r->echo_listen, (struct sockaddr *)&r->server, &len) != 0)
            goto out;
    } else {
        uv_udp_init(&loop, &r->echo_udp);
        r->echo_udp.data = r;
        if (uv_udp_bind(&r->echo_udp, (const struct sockaddr *)&any, 0) != 0 ||
            uv_udp_recv_start(&r->echo_udp, echo_alloc, echo_udp_recv) != 0 ||
            uv_udp_getsockname(&r->echo_udp, (struct sockaddr *)&r->server, &len) != 0)
            goto out;
    }
    uv_timer_init(&loop, &r->failsafe);
    uv_timer_start(&r->failsafe, failsafe_cb, 30000, 0);
    uv_unref((uv_handle_t *)&r->failsafe);
    t0 = now_s();
    if (tcp) {
        uv_tcp_init(&loop, &r->tcp);
        r->tcp.data = r;
        r->creq.data = r;
        if (uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&r->server,
                           client_connected) != 0)
            goto out;
    } else {
        uv_udp_init(&loop, &r->udp);
        r->udp.data = r;
        if (uv_udp_bind(&r->udp, (const struct sockaddr *)&any, 0) != 0 ||
            uv_udp_recv_start(&r->udp, client_alloc, client_udp_recv) != 0)
            goto out;
        for (int i = 0; i < WINDOW; i++)
            client_send_udp(r);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (r->received >= COUNT && r->errors == 0)
        rate = (double)r->received / (now_s() - t0);
out:
    if (r->t)
        overlay_sip_transport_close(r->t, NULL, NULL);
    {
        uv_handle_t *hs[] = {(uv_handle_t *)&r->udp,       (uv_handle_t *)&r->tcp,
                             (uv_handle_t *)&r->echo_udp,  (uv_handle_t *)&r->echo_listen,
                             (uv_handle_t *)&r->echo_conn, (uv_handle_t *)&r->failsafe};
        for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
            if (hs[i]->loop == &loop && !uv_is_closing(hs[i]))
                uv_close(hs[i], noop_close);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "bench: loop not empty at the end\n");
    if (r->errors)
        fprintf(stderr, "bench: %d errors\n", r->errors);
    free(r);
    return rate;
}

int main(void)
{
    double udp = measure(false, false), udp_raw = measure(false, true);
    double tcp = measure(true, false), tcp_raw = measure(true, true);

    printf("SIP transport, %d request/response pairs, window %d, loopback, one loop\n", COUNT,
           WINDOW);
    printf("%-6s %14s %14s %8s\n", "proto", "transport/s", "raw echo/s", "raw/tr");
    printf("%-6s %14.0f %14.0f %8.2f\n", "udp", udp, udp_raw, udp > 0 ? udp_raw / udp : 0);
    printf("%-6s %14.0f %14.0f %8.2f\n", "tcp", tcp, tcp_raw, tcp > 0 ? tcp_raw / tcp : 0);
    printf("{\"bench\":\"sip_transport\",\"count\":%d,\"window\":%d,\"udp_per_s\":%.0f,"
           "\"udp_raw_per_s\":%.0f,\"tcp_per_s\":%.0f,\"tcp_raw_per_s\":%.0f}\n",
           COUNT, WINDOW, udp, udp_raw, tcp, tcp_raw);
    return udp > 0 && tcp > 0 && udp_raw > 0 && tcp_raw > 0 ? 0 : 1;
}
