/*
 * bench_sip_tsx.c: cost of the transaction layer per message, with many transactions
 * alive at once, against the cost of parsing the same message (sip_msg_parse), which
 * every received message pays anyway.
 *
 * Server side: N REGISTERs with distinct branches create N live server transactions
 * (recv), each is retransmitted once (absorbed), answered with a 200 (respond), its
 * retransmission gets the 200 again, then Timer J expires all of them (advance).
 * Client side: N OPTIONS client transactions over UDP run Timer E to Timer F with
 * the clock advanced in 100 ms steps (about 11 retransmissions each).
 * The fake transport only counts bytes.  Prints a table, then one JSON line.
 * Never asserts times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_tsx.h"

#define N 50000

struct counters {
    size_t sent, bytes, requests, responses, timeouts, terminated;
    struct sip_tsx **tsx;
};

static int on_send(const char *bytes, size_t len, const struct sip_tsx_dest *dest, void *arg)
{
    struct counters *c = arg;
    (void)bytes;
    (void)dest;
    c->sent++;
    c->bytes += len;
    return 0;
}

static void on_request(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                       const struct sip_tsx_dest *src, void *arg)
{
    struct counters *c = arg;
    (void)msg;
    (void)raw;
    (void)src;
    if (t != NULL)
        c->tsx[c->requests++] = t;
}

static void on_response(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                        const struct sip_tsx_dest *src, void *arg)
{
    struct counters *c = arg;
    (void)t;
    (void)msg;
    (void)raw;
    (void)src;
    c->responses++;
}

static void on_timeout(struct sip_tsx *t, enum sip_tsx_timeout why, void *arg)
{
    struct counters *c = arg;
    (void)t;
    (void)why;
    c->timeouts++;
}

static void on_terminated(struct sip_tsx *t, void *arg)
{
    struct counters *c = arg;
    (void)t;
    c->terminated++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int make_request(char *buf, size_t size, const char *method, unsigned i)
{
    return snprintf(buf, size,
                    "%s sip:example.org SIP/2.0\r\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK%08xbench;rport\r\n"
                    "Max-Forwards: 70\r\n"
                    "To: Bob <sip:bob@example.org>\r\n"
                    "From: Bob <sip:bob@example.org>;tag=456248\r\n"
                    "Call-ID: %u@998sdasdh09\r\n"
                    "CSeq: 1826 %s\r\n"
                    "Contact: <sip:bob@192.0.2.4>\r\n"
                    "Expires: 7200\r\n"
                    "Content-Length: 0\r\n\r\n",
                    method, i, i, method);
}

static void fail(const char *what)
{
    fprintf(stderr, "bench_sip_tsx: %s\n", what);
    exit(1);
}

int main(void)
{
    static struct sip_msg msg;
    static char reqs[N][512];
    static size_t lens[N];
    struct counters c = {0};
    struct sip_tsx_layer *l;
    struct sip_tsx_config cfg;
    struct sip_tsx_ops ops = {on_send, on_request,    on_response, on_timeout,
                              NULL,    on_terminated, &c};
    struct sip_tsx_dest src = {.transport = SIP_TSX_UDP};
    double t0, t_parse, t_recv, t_retrans, t_respond, t_resend, t_expire, t_client_new, t_client;
    char resp[1024];
    size_t resp_len;

    c.tsx = calloc(N, sizeof(*c.tsx));
    if (c.tsx == NULL)
        fail("out of memory");
    src.addr.ss_family = AF_INET;
    sip_tsx_config_default(&cfg);
    if (sip_tsx_layer_new(&l, &cfg, &ops) != 0)
        fail("layer");
    for (unsigned i = 0; i < N; i++)
        lens[i] = (size_t)make_request(reqs[i], sizeof(reqs[i]), "REGISTER", i);

    /* Baseline: parsing alone. */
    t0 = now_s();
    for (unsigned i = 0; i < N; i++) {
        if (sip_msg_parse(&msg, reqs[i], lens[i], SIP_MSG_DGRAM, NULL) <= 0)
            fail("parse");
    }
    t_parse = now_s() - t0;

    /* New server transactions (the parse is repeated outside the timing). */
    t_recv = 0;
    for (unsigned i = 0; i < N; i++) {
        sip_msg_parse(&msg, reqs[i], lens[i], SIP_MSG_DGRAM, NULL);
        t0 = now_s();
        if (sip_tsx_layer_recv(l, &msg, (struct p2p_slice){reqs[i], lens[i]}, &src, 0) != 0)
            fail("recv");
        t_recv += now_s() - t0;
    }
    if (c.requests != N || sip_tsx_layer_count(l) != N)
        fail("not every request made a transaction");
    t_retrans = 0;
    for (unsigned i = 0; i < N; i++) {
        sip_msg_parse(&msg, reqs[i], lens[i], SIP_MSG_DGRAM, NULL);
        t0 = now_s();
        sip_tsx_layer_recv(l, &msg, (struct p2p_slice){reqs[i], lens[i]}, &src, 10);
        t_retrans += now_s() - t0;
    }
    if (c.requests != N || c.sent != 0)
        fail("retransmission not absorbed");

    /* Responses (built outside the timing). */
    t_respond = 0;
    for (unsigned i = 0; i < N; i++) {
        struct p2p_buf b;
        struct sip_resp r = {.status = 200, .to_tag = P2P_SLICE_LIT("t1")};
        p2p_buf_init(&b, sizeof(resp));
        sip_msg_parse(&msg, reqs[i], lens[i], SIP_MSG_DGRAM, NULL);
        if (sip_build_response(&msg, &r, &b) != 0)
            fail("build");
        memcpy(resp, b.data, b.len);
        resp_len = b.len;
        p2p_buf_free(&b);
        t0 = now_s();
        if (sip_tsx_server_respond(c.tsx[i], resp, resp_len, 20) != 0)
            fail("respond");
        t_respond += now_s() - t0;
    }
    t_resend = 0;
    for (unsigned i = 0; i < N; i++) {
        sip_msg_parse(&msg, reqs[i], lens[i], SIP_MSG_DGRAM, NULL);
        t0 = now_s();
        sip_tsx_layer_recv(l, &msg, (struct p2p_slice){reqs[i], lens[i]}, &src, 30);
        t_resend += now_s() - t0;
    }
    if (c.sent != 2 * (size_t)N)
        fail("final response not re-sent");
    t0 = now_s();
    sip_tsx_layer_advance(l, 20 + 64 * 500); /* Timer J */
    sip_tsx_layer_advance(l, 20 + 64 * 500);
    t_expire = now_s() - t0;
    if (sip_tsx_layer_count(l) != 0 || c.terminated != N)
        fail("Timer J did not end every transaction");

    /* Client side over UDP: Timer E retransmissions until Timer F. */
    size_t sent_before = c.sent;
    t0 = now_s();
    for (unsigned i = 0; i < N; i++) {
        struct sip_tsx *t;
        lens[i] = (size_t)make_request(reqs[i], sizeof(reqs[i]), "OPTIONS", i);
        if (sip_tsx_client_new(l, &t, reqs[i], lens[i], &src, NULL, 100000) != 0)
            fail("client_new");
    }
    t_client_new = now_s() - t0;
    t0 = now_s();
    for (uint64_t now = 100000; now <= 100000 + 64 * 500; now += 100)
        sip_tsx_layer_advance(l, now);
    t_client = now_s() - t0;
    size_t retrans = c.sent - sent_before - N;
    if (sip_tsx_layer_count(l) != 0 || c.timeouts != N)
        fail("Timer F did not end every client transaction");
    sip_tsx_layer_free(l);
    free(c.tsx);

    double ns = 1e9 / N;
    printf("%-34s %10s %10s\n", "operation (50000 live transactions)", "ns/op", "x parse");
    printf("%-34s %10.0f %10.2f\n", "sip_msg_parse (baseline)", t_parse * ns, 1.0);
    printf("%-34s %10.0f %10.2f\n", "recv: new server transaction", t_recv * ns, t_recv / t_parse);
    printf("%-34s %10.0f %10.2f\n", "recv: retransmission absorbed", t_retrans * ns,
           t_retrans / t_parse);
    printf("%-34s %10.0f %10.2f\n", "server_respond (200)", t_respond * ns, t_respond / t_parse);
    printf("%-34s %10.0f %10.2f\n", "recv: retransmission, 200 again", t_resend * ns,
           t_resend / t_parse);
    printf("%-34s %10.0f %10.2f\n", "advance: Timer J + destroy", t_expire * ns,
           t_expire / t_parse);
    printf("%-34s %10.0f %10.2f\n", "client_new (OPTIONS, UDP)", t_client_new * ns,
           t_client_new / t_parse);
    printf("%-34s %10.0f %10.2f\n", "advance: E x11 + F + destroy", t_client * ns,
           t_client / t_parse);
    printf("client retransmissions: %zu (%.1f per transaction)\n", retrans, (double)retrans / N);
    printf("{\"bench\":\"sip_tsx\",\"n\":%d,\"parse_ns\":%.0f,\"recv_new_ns\":%.0f,"
           "\"recv_absorb_ns\":%.0f,\"respond_ns\":%.0f,\"recv_resend_ns\":%.0f,"
           "\"expire_ns\":%.0f,\"client_new_ns\":%.0f,\"client_timers_ns\":%.0f}\n",
           N, t_parse * ns, t_recv * ns, t_retrans * ns, t_respond * ns, t_resend * ns,
           t_expire * ns, t_client_new * ns, t_client * ns);
    return 0;
}
