/*
 * test_sip_tsx.c: the transaction layer against RFC 3261 17 and RFC 6026, with a fake
 * clock (now_ms is an argument; nothing sleeps) and a fake transport that records
 * every message sent.
 *
 * Each test checks the exact times timers fire (Timer A 500, 1000, 2000...; E capped
 * at T2; G; B/F at 64*T1; D, I, J, K, L, M), what is sent and what is passed up, and
 * ends with the transaction count back at zero and every on_terminated seen.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/buf.h"
#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_tsx.h"

#define MAX_EV 64
#define MSG_MAX 4096

struct sent {
    char bytes[MSG_MAX];
    size_t len;
    struct sip_tsx_dest dest;
};

struct world {
    struct sip_tsx_layer *layer;
    struct sent sent[MAX_EV];
    int nsent;
    int send_error; /* returned by send when non-zero */

    struct sip_tsx *req_tsx[MAX_EV];
    char req_method[MAX_EV][16];
    int nreq;
    int nreq_null; /* on_request with t == NULL (ACK to 2xx) */

    struct sip_tsx *resp_tsx[MAX_EV];
    unsigned resp_status[MAX_EV];
    int nresp;
    int nresp_null;

    enum sip_tsx_timeout timeout_why[MAX_EV];
    struct sip_tsx *timeout_tsx[MAX_EV];
    int ntimeout;
    int nterr;
    int last_terr;
    struct sip_tsx *term_tsx[MAX_EV];
    int nterm;

    const char *answer_in_request; /* respond with this status from on_request */
};

static int w_send(const char *bytes, size_t len, const struct sip_tsx_dest *dest, void *arg)
{
    struct world *w = arg;
    if (w->send_error != 0)
        return w->send_error;
    assert_true(w->nsent < MAX_EV);
    assert_true(len < MSG_MAX);
    memcpy(w->sent[w->nsent].bytes, bytes, len);
    w->sent[w->nsent].bytes[len] = '\0';
    w->sent[w->nsent].len = len;
    w->sent[w->nsent].dest = *dest;
    w->nsent++;
    return 0;
}

static int build_resp(const char *req, size_t req_len, unsigned status, const char *to_tag,
                      struct p2p_buf *out);

static void w_request(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                      const struct sip_tsx_dest *src, void *arg)
{
    struct world *w = arg;
    (void)src;
    if (t == NULL) {
        w->nreq_null++;
        return;
    }
    assert_true(w->nreq < MAX_EV);
    w->req_tsx[w->nreq] = t;
    assert_int_equal(p2p_slice_copy(msg->method, w->req_method[w->nreq], 16), 0);
    w->nreq++;
    /* The stored request is the received one. */
    struct p2p_slice r = sip_tsx_request(t);
    assert_int_equal(r.len, raw.len);
    assert_memory_equal(r.p, raw.p, raw.len);
    if (w->answer_in_request != NULL) {
        struct p2p_buf b;
        p2p_buf_init(&b, MSG_MAX);
        assert_int_equal(build_resp(raw.p, raw.len, (unsigned)atoi(w->answer_in_request), "x1", &b),
                         0);
        assert_int_equal(sip_tsx_server_respond(t, b.data, b.len, 0), 0);
        p2p_buf_free(&b);
    }
}

static void w_response(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                       const struct sip_tsx_dest *src, void *arg)
{
    struct world *w = arg;
    (void)raw;
    (void)src;
    if (t == NULL) {
        w->nresp_null++;
        return;
    }
    assert_true(w->nresp < MAX_EV);
    w->resp_tsx[w->nresp] = t;
    w->resp_status[w->nresp] = msg->status;
    w->nresp++;
}

static void w_timeout(struct sip_tsx *t, enum sip_tsx_timeout why, void *arg)
{
    struct world *w = arg;
    assert_true(w->ntimeout < MAX_EV);
    w->timeout_tsx[w->ntimeout] = t;
    w->timeout_why[w->ntimeout] = why;
    w->ntimeout++;
}

static void w_terr(struct sip_tsx *t, int err, void *arg)
{
    struct world *w = arg;
    (void)t;
    w->nterr++;
    w->last_terr = err;
}

static void w_term(struct sip_tsx *t, void *arg)
{
    struct world *w = arg;
    assert_true(w->nterm < MAX_EV);
    w->term_tsx[w->nterm++] = t;
}

static struct world *world_new(const struct sip_tsx_config *cfg_in)
{
    static struct world worlds[2];
    static int next;
    struct world *w = &worlds[next++ % 2];
    struct sip_tsx_config cfg;
    struct sip_tsx_ops ops = {w_send, w_request, w_response, w_timeout, w_terr, w_term, w};

    memset(w, 0, sizeof(*w));
    if (cfg_in != NULL)
        cfg = *cfg_in;
    else
        sip_tsx_config_default(&cfg);
    assert_int_equal(sip_tsx_layer_new(&w->layer, &cfg, &ops), 0);
    return w;
}

static void world_free(struct world *w)
{
    sip_tsx_layer_free(w->layer);
}

static struct sip_tsx_dest dest(enum sip_tsx_transport tr, uint16_t port)
{
    struct sip_tsx_dest d;
    struct sockaddr_in *sin = (struct sockaddr_in *)&d.addr;
    memset(&d, 0, sizeof(d));
    d.transport = tr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(0x7f000001);
    return d;
}

static uint16_t port_of(const struct sip_tsx_dest *d)
{
    return ntohs(((const struct sockaddr_in *)&d->addr)->sin_port);
}

/* A request; branch NULL gives an RFC 2543 Via without branch. */
static int req_text(char *buf, size_t size, const char *method, const char *branch,
                    const char *via_extra, unsigned cseq, const char *cseq_method,
                    const char *to_tag)
{
    return snprintf(buf, size,
                    "%s sip:bob@example.org SIP/2.0\r\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5070%s%s%s\r\n"
                    "Max-Forwards: 70\r\n"
                    "From: <sip:alice@example.org>;tag=a1\r\n"
                    "To: <sip:bob@example.org>%s%s\r\n"
                    "Call-ID: c1@127.0.0.1\r\n"
                    "CSeq: %u %s\r\n"
                    "Content-Length: 0\r\n\r\n",
                    method, branch ? ";branch=" : "", branch ? branch : "", via_extra,
                    to_tag ? ";tag=" : "", to_tag ? to_tag : "", cseq, cseq_method);
}

static int build_resp(const char *req, size_t req_len, unsigned status, const char *to_tag,
                      struct p2p_buf *out)
{
    struct sip_msg m;
    struct sip_resp r = {.status = status, .to_tag = p2p_slice_cstr(to_tag)};
    assert_true(sip_msg_parse(&m, req, req_len, SIP_MSG_DGRAM, NULL) > 0);
    return sip_build_response(&m, &r, out);
}

/* Parses text and feeds it to the layer; returns recv's result. */
static int feed(struct world *w, const char *text, size_t len, struct sip_tsx_dest src,
                uint64_t now)
{
    struct sip_msg m;
    assert_true(sip_msg_parse(&m, text, len, SIP_MSG_DGRAM, NULL) > 0);
    assert_int_equal(sip_msg_validate(&m, NULL), 0);
    return sip_tsx_layer_recv(w->layer, &m, (struct p2p_slice){text, len}, &src, now);
}

static int feed_str(struct world *w, const char *text, struct sip_tsx_dest src, uint64_t now)
{
    return feed(w, text, strlen(text), src, now);
}

/* Response to a request text, fed as if it came from downstream. */
static void feed_resp(struct world *w, const char *req, unsigned status, const char *tag,
                      uint64_t now)
{
    struct p2p_buf b;
    p2p_buf_init(&b, MSG_MAX);
    assert_int_equal(build_resp(req, strlen(req), status, tag, &b), 0);
    assert_int_equal(feed(w, b.data, b.len, dest(SIP_TSX_UDP, 5080), now), 0);
    p2p_buf_free(&b);
}

static void respond(struct sip_tsx *t, unsigned status, const char *tag, uint64_t now, int want)
{
    struct p2p_buf b;
    struct p2p_slice r = sip_tsx_request(t);
    p2p_buf_init(&b, MSG_MAX);
    assert_int_equal(build_resp(r.p, r.len, status, tag, &b), 0);
    assert_int_equal(sip_tsx_server_respond(t, b.data, b.len, now), want);
    p2p_buf_free(&b);
}

/* As respond(), from the request text: once t has its final response, it keeps
 * no copy of its request (sip_tsx_request() is empty). */
static void respond_req(struct sip_tsx *t, const char *req, unsigned status, const char *tag,
                        uint64_t now, int want)
{
    struct p2p_buf b;
    p2p_buf_init(&b, MSG_MAX);
    assert_int_equal(build_resp(req, strlen(req), status, tag, &b), 0);
    assert_int_equal(sip_tsx_server_respond(t, b.data, b.len, now), want);
    p2p_buf_free(&b);
}

static bool starts(const struct sent *s, const char *prefix)
{
    return strncmp(s->bytes, prefix, strlen(prefix)) == 0;
}

/* Advances to each time in order and checks that exactly one message went out. */
static void expect_retransmits(struct world *w, const uint64_t *times, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int before = w->nsent;
        assert_int_equal(sip_tsx_layer_next_deadline(w->layer), times[i]);
        sip_tsx_layer_advance(w->layer, times[i] - 1);
        assert_int_equal(w->nsent, before);
        sip_tsx_layer_advance(w->layer, times[i]);
        assert_int_equal(w->nsent, before + 1);
        assert_true(starts(&w->sent[w->nsent - 1], what));
    }
}

/* ---- client INVITE ---------------------------------------------------------- */

static void test_client_invite_timer_a_b(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_UDP, 5080);
    struct sip_tsx *t = NULL;
    char req[1024];
    (void)state;

    int n = req_text(req, sizeof(req), "INVITE", "z9hG4bKa1", "", 1, "INVITE", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, w, 1000), 0);
    assert_non_null(t);
    assert_ptr_equal(sip_tsx_arg(t), w);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_CALLING);
    assert_int_equal(w->nsent, 1);
    assert_memory_equal(w->sent[0].bytes, req, (size_t)n);
    assert_int_equal(port_of(&w->sent[0].dest), 5080);

    /* RFC 3261 17.1.1.2: Timer A = T1, doubling: 500, 1000, 2000, 4000, 8000, 16000
     * (no T2 cap for INVITE); Timer B = 64*T1 = 32 s. */
    const uint64_t a[] = {1500, 2500, 4500, 8500, 16500, 32500};
    expect_retransmits(w, a, 6, "INVITE sip:bob@example.org");
    assert_int_equal(w->sent[3].len, (size_t)n);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 33000);
    sip_tsx_layer_advance(w->layer, 32999);
    assert_int_equal(w->ntimeout, 0);
    sip_tsx_layer_advance(w->layer, 33000);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->timeout_why[0], SIP_TSX_TIMEOUT_RESPONSE);
    assert_ptr_equal(w->timeout_tsx[0], t);
    assert_int_equal(w->nterm, 1);
    assert_ptr_equal(w->term_tsx[0], t);
    assert_int_equal(w->nsent, 7);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), UINT64_MAX);
    world_free(w);
}

static void test_client_invite_non2xx_ack(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_UDP, 5080);
    struct sip_tsx *t = NULL;
    char req[1024];
    (void)state;

    int n = req_text(req, sizeof(req), "INVITE", "z9hG4bKa2", "", 7, "INVITE", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), 0);
    assert_int_equal(sip_tsx_client_cancelled(t, 10), -EINVAL); /* 9.1: not before a 1xx */
    feed_resp(w, req, 180, "b7", 100);
    assert_int_equal(w->nresp, 1);
    assert_int_equal(w->resp_status[0], 180);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_PROCEEDING);
    /* Proceeding: Timer A stopped, Timer B no longer applies. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), UINT64_MAX);
    sip_tsx_layer_advance(w->layer, 100000);
    assert_int_equal(w->nsent, 1);

    feed_resp(w, req, 486, "b7", 200000);
    assert_int_equal(w->nresp, 2);
    assert_int_equal(w->resp_status[1], 486);
    assert_int_equal(sip_tsx_status(t), 486);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_COMPLETED);
    /* RFC 3261 17.1.1.3: the ACK, same branch, To with the response's tag. */
    assert_int_equal(w->nsent, 2);
    const char *ack = w->sent[1].bytes;
    assert_true(starts(&w->sent[1], "ACK sip:bob@example.org SIP/2.0\r\n"));
    assert_non_null(strstr(ack, "branch=z9hG4bKa2"));
    assert_non_null(strstr(ack, "CSeq: 7 ACK\r\n"));
    assert_non_null(strstr(ack, ";tag=b7"));
    assert_int_equal(port_of(&w->sent[1].dest), 5080);

    /* The retransmitted 486 gets the ACK again and is not passed up. */
    feed_resp(w, req, 486, "b7", 200500);
    assert_int_equal(w->nresp, 2);
    assert_int_equal(w->nsent, 3);
    assert_string_equal(w->sent[2].bytes, w->sent[1].bytes);

    /* Timer D: 32 s on UDP. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 232000);
    sip_tsx_layer_advance(w->layer, 231999);
    assert_int_equal(w->nterm, 0);
    sip_tsx_layer_advance(w->layer, 232000);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(w->ntimeout, 0);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_client_invite_2xx_accepted(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_UDP, 5080);
    struct sip_tsx *t = NULL;
    char req[1024];
    (void)state;

    int n = req_text(req, sizeof(req), "INVITE", "z9hG4bKa3", "", 1, "INVITE", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), 0);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), -EEXIST);
    feed_resp(w, req, 200, "b1", 300);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_ACCEPTED);
    /* RFC 6026 7.2: every 2xx goes up; the transaction sends no ACK for a 2xx. */
    feed_resp(w, req, 200, "b1", 800);
    feed_resp(w, req, 200, "b1", 1800);
    assert_int_equal(w->nresp, 3);
    assert_int_equal(w->nsent, 1);
    /* Timer A stopped at the 2xx; Timer M = 64*T1. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 300 + 32000);
    sip_tsx_layer_advance(w->layer, 32300);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(w->nsent, 1);
    /* Afterwards a 2xx matches nothing. */
    feed_resp(w, req, 200, "b1", 40000);
    assert_int_equal(w->nresp_null, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_client_invite_reliable_timer_c(void **state)
{
    struct sip_tsx_config cfg;
    sip_tsx_config_default(&cfg);
    cfg.timer_c_ms = 181000;
    struct world *w = world_new(&cfg);
    struct sip_tsx_dest d = dest(SIP_TSX_TCP, 5080);
    struct sip_tsx *t = NULL;
    char req[1024];
    (void)state;

    int n = req_text(req, sizeof(req), "INVITE", "z9hG4bKc1", "", 1, "INVITE", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), 0);
    /* Reliable: no Timer A; Timer B at 32 s comes before Timer C. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 32000);
    feed_resp(w, req, 100, NULL, 1000);
    /* 16.6 step 11: a provisional resets Timer C. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 1000 + 181000);
    feed_resp(w, req, 183, "t", 5000);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 5000 + 181000);
    sip_tsx_layer_advance(w->layer, 185999);
    assert_int_equal(w->ntimeout, 0);
    sip_tsx_layer_advance(w->layer, 186000);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->timeout_why[0], SIP_TSX_TIMEOUT_C);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_PROCEEDING);
    /* The proxy cancels; no final response within 64*T1 -> the transaction ends. */
    assert_int_equal(sip_tsx_client_cancelled(t, 186000), 0);
    feed_resp(w, req, 180, "t", 190000); /* does not restart Timer C any more */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 186000 + 32000);
    sip_tsx_layer_advance(w->layer, 218000);
    assert_int_equal(w->ntimeout, 2);
    assert_int_equal(w->timeout_why[1], SIP_TSX_TIMEOUT_RESPONSE);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(w->nsent, 1); /* never retransmitted over TCP */
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);

    /* A 486 over TCP: ACK sent, Timer D = 0. */
    n = req_text(req, sizeof(req), "INVITE", "z9hG4bKc2", "", 2, "INVITE", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 300000), 0);
    feed_resp(w, req, 486, "t", 300100);
    assert_true(starts(&w->sent[w->nsent - 1], "ACK "));
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 300100);
    sip_tsx_layer_advance(w->layer, 300100);
    assert_int_equal(w->nterm, 2);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

/* ---- client non-INVITE -------------------------------------------------------- */

static void test_client_noninvite_timer_e_f_k(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_UDP, 5080);
    struct sip_tsx *t = NULL;
    char req[1024];
    (void)state;

    int n = req_text(req, sizeof(req), "OPTIONS", "z9hG4bKe1", "", 1, "OPTIONS", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), 0);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_TRYING);
    /* RFC 3261 17.1.2.2: E = T1, then MIN(2E, T2): 500, 1000, 2000, 4000, 4000... */
    const uint64_t e[] = {500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500};
    expect_retransmits(w, e, 10, "OPTIONS ");
    struct sip_tsx_stats st;
    sip_tsx_layer_stats(w->layer, &st);
    assert_int_equal(st.client_created, 1);
    assert_int_equal(st.retransmitted, 10);
    /* Timer F = 64*T1 = 32 s. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 32000);
    sip_tsx_layer_advance(w->layer, 32000);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->timeout_why[0], SIP_TSX_TIMEOUT_RESPONSE);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);

    /* Again, with a provisional: E becomes T2 in Proceeding, then a final, then K. */
    n = req_text(req, sizeof(req), "OPTIONS", "z9hG4bKe2", "", 2, "OPTIONS", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 100000), 0);
    int base = w->nsent;
    sip_tsx_layer_advance(w->layer, 100500); /* E: 500 */
    feed_resp(w, req, 100, NULL, 100600);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_PROCEEDING);
    assert_int_equal(w->resp_status[w->nresp - 1], 100);
    sip_tsx_layer_advance(w->layer, 101500); /* E was armed for 1000 in Trying */
    assert_int_equal(w->nsent, base + 2);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 101500 + 4000); /* T2 */
    feed_resp(w, req, 200, "x", 102000);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_COMPLETED);
    assert_int_equal(w->resp_status[w->nresp - 1], 200);
    /* Completed absorbs retransmitted finals; Timer K = T4 = 5 s on UDP. */
    int nresp = w->nresp;
    feed_resp(w, req, 200, "x", 103000);
    assert_int_equal(w->nresp, nresp);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 107000);
    sip_tsx_layer_advance(w->layer, 106999);
    assert_int_equal(w->nterm, 1);
    sip_tsx_layer_advance(w->layer, 107000);
    assert_int_equal(w->nterm, 2);
    assert_int_equal(w->nsent, base + 2);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_client_noninvite_tcp_k_zero(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_TCP, 5080);
    struct sip_tsx *t = NULL;
    char req[1024];
    (void)state;

    int n = req_text(req, sizeof(req), "REGISTER", "z9hG4bKk1", "", 1, "REGISTER", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), 0);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 32000); /* F only, no E */
    feed_resp(w, req, 200, "x", 50);
    /* Timer K = 0 on a reliable transport: gone at the next advance. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 50);
    sip_tsx_layer_advance(w->layer, 50);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(w->nsent, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_client_errors(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_UDP, 5080);
    struct sip_tsx *t = (struct sip_tsx *)&d;
    char req[1024];
    (void)state;

    /* No 3261 branch, or ACK: no client transaction. */
    int n = req_text(req, sizeof(req), "OPTIONS", "abc", "", 1, "OPTIONS", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), -EINVAL);
    n = req_text(req, sizeof(req), "ACK", "z9hG4bKx", "", 1, "ACK", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), -EINVAL);
    /* A send error on creation: nothing created, no callback. */
    w->send_error = -ENETUNREACH;
    n = req_text(req, sizeof(req), "OPTIONS", "z9hG4bKx", "", 1, "OPTIONS", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), -ENETUNREACH);
    assert_ptr_equal(t, (struct sip_tsx *)&d);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    assert_int_equal(w->nterr, 0);
    /* A send error on a retransmission: transport error, then terminated. */
    w->send_error = 0;
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), 0);
    w->send_error = -ENOBUFS;
    sip_tsx_layer_advance(w->layer, 500);
    assert_int_equal(w->nterr, 1);
    assert_int_equal(w->last_terr, -ENOBUFS);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

/* ---- server non-INVITE ------------------------------------------------------------ */

static void test_server_noninvite(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 40000);
    char req[1024];
    (void)state;

    req_text(req, sizeof(req), "REGISTER", "z9hG4bKr1", "", 1, "REGISTER", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    assert_int_equal(w->nreq, 1);
    assert_string_equal(w->req_method[0], "REGISTER");
    struct sip_tsx *t = w->req_tsx[0];
    assert_false(sip_tsx_is_client(t));
    assert_int_equal(sip_tsx_state(t), SIP_TSX_TRYING);
    /* Trying: a retransmission is absorbed, nothing sent, nothing passed up. */
    assert_int_equal(feed_str(w, req, src, 500), 0);
    assert_int_equal(w->nreq, 1);
    assert_int_equal(w->nsent, 0);
    /* The same branch from another sent-by is another transaction (17.2.3). */
    char other[1024];
    req_text(other, sizeof(other), "REGISTER", "z9hG4bKr1", "", 1, "REGISTER", NULL);
    char *p = strstr(other, "127.0.0.1:5070");
    memcpy(p, "127.0.0.2", 9);
    assert_int_equal(feed_str(w, other, src, 600), 0);
    assert_int_equal(w->nreq, 2);
    assert_int_equal(sip_tsx_layer_count(w->layer), 2);

    respond(t, 100, NULL, 700, 0);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_PROCEEDING);
    assert_int_equal(feed_str(w, req, src, 800), 0); /* the provisional again */
    assert_int_equal(w->nsent, 2);
    assert_true(starts(&w->sent[1], "SIP/2.0 100 "));
    respond(t, 200, "s1", 1000, 0);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_COMPLETED);
    assert_int_equal(w->nsent, 3);
    assert_true(starts(&w->sent[2], "SIP/2.0 200 "));
    /* Responses are handed to the transport with the request's source (18.2.2 is
     * the transport's). */
    assert_int_equal(port_of(&w->sent[2].dest), 40000);
    /* Completed: the request copy is gone, matching works from the key alone. */
    assert_null(sip_tsx_request(t).p);
    assert_int_equal(sip_tsx_request(t).len, 0);
    respond_req(t, req, 200, "s1", 1100, -EINVAL);    /* one final response only */
    assert_int_equal(feed_str(w, req, src, 2000), 0); /* the final response again */
    assert_int_equal(w->nsent, 4);
    assert_string_equal(w->sent[3].bytes, w->sent[2].bytes);
    assert_int_equal(w->nreq, 2);

    /* Timer J = 64*T1 on UDP. */
    sip_tsx_layer_advance(w->layer, 32999);
    assert_int_equal(w->nterm, 0);
    sip_tsx_layer_advance(w->layer, 33000);
    assert_int_equal(w->nterm, 1);
    assert_ptr_equal(w->term_tsx[0], t);
    /* The other one never got an answer: the guard ends it 64*T1 + T4 after arrival. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 600 + 32000 + 5000);
    sip_tsx_layer_advance(w->layer, 37600);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->timeout_why[0], SIP_TSX_TIMEOUT_TU);
    assert_int_equal(w->nterm, 2);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    struct sip_tsx_stats st;
    sip_tsx_layer_stats(w->layer, &st);
    assert_int_equal(st.server_created, 2);
    assert_int_equal(st.absorbed, 3); /* Trying, Proceeding, Completed */
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.retransmitted, 0);
    world_free(w);
}

static void test_server_rport_and_tcp(void **state)
{
    struct world *w = world_new(NULL);
    char req[1024];
    (void)state;

    /* The 100 Trying the transaction builds carries received and rport (RFC 3261
     * 18.2.1, RFC 3581 4) and goes to the request's source. */
    req_text(req, sizeof(req), "INVITE", "z9hG4bKp1", ";rport", 1, "INVITE", NULL);
    struct sip_tsx_dest nat = dest(SIP_TSX_UDP, 40000);
    ((struct sockaddr_in *)&nat.addr)->sin_addr.s_addr = htonl(0x7f000009);
    assert_int_equal(feed_str(w, req, nat, 0), 0);
    sip_tsx_layer_advance(w->layer, 200);
    assert_int_equal(w->nsent, 1);
    assert_true(starts(&w->sent[0], "SIP/2.0 100 "));
    assert_non_null(strstr(w->sent[0].bytes, "received=127.0.0.9"));
    assert_non_null(strstr(w->sent[0].bytes, "rport=40000"));
    assert_int_equal(port_of(&w->sent[0].dest), 40000);
    assert_int_equal(ntohl(((struct sockaddr_in *)&w->sent[0].dest.addr)->sin_addr.s_addr),
                     0x7f000009);
    respond(w->req_tsx[0], 486, "s", 300, 0);
    assert_int_equal(port_of(&w->sent[1].dest), 40000);
    sip_tsx_layer_advance(w->layer, 300 + 32000); /* Timer H: no ACK */
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->nterm, 1);
    w->nsent = 0;
    w->nterm = 0;
    w->nreq = 0;

    /* Over TCP: same connection, Timer J = 0. */
    struct sip_tsx_dest tcp = dest(SIP_TSX_TCP, 40001);
    tcp.conn_id = 77;
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKp2", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, tcp, 40000), 0);
    respond(w->req_tsx[0], 200, "s", 40010, 0);
    assert_int_equal(w->sent[0].dest.conn_id, 77);
    assert_int_equal(w->sent[0].dest.transport, SIP_TSX_TCP);
    assert_int_equal(port_of(&w->sent[0].dest), 40001);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 40010);
    sip_tsx_layer_advance(w->layer, 40010);
    assert_int_equal(w->nterm, 1);
    assert_ptr_equal(w->term_tsx[0], w->req_tsx[0]);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);

    /* INVITE over TCP: no Timer G, Timer H still 64*T1, Timer I = 0 after the ACK. */
    char ack[1024];
    req_text(req, sizeof(req), "INVITE", "z9hG4bKp3", "", 1, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, tcp, 50000), 0);
    respond(w->req_tsx[1], 480, "s", 50010, 0);
    int sent = w->nsent;
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 50010 + 32000);
    req_text(ack, sizeof(ack), "ACK", "z9hG4bKp3", "", 1, "ACK", "s");
    assert_int_equal(feed_str(w, ack, tcp, 50020), 0);
    assert_int_equal(sip_tsx_state(w->req_tsx[1]), SIP_TSX_CONFIRMED);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 50020);
    sip_tsx_layer_advance(w->layer, 50020);
    assert_int_equal(w->nterm, 2);
    assert_int_equal(w->nsent, sent);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

/* ---- server INVITE ------------------------------------------------------------- */

static void test_server_invite_non2xx(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 5070);
    char req[1024], ack[1024];
    (void)state;

    req_text(req, sizeof(req), "INVITE", "z9hG4bKi1", "", 1, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    struct sip_tsx *t = w->req_tsx[0];
    assert_true(sip_tsx_is_invite(t));
    assert_int_equal(sip_tsx_state(t), SIP_TSX_PROCEEDING);
    /* RFC 3261 17.2.1: 100 Trying when the TU has not answered within 200 ms. */
    sip_tsx_layer_advance(w->layer, 199);
    assert_int_equal(w->nsent, 0);
    sip_tsx_layer_advance(w->layer, 200);
    assert_int_equal(w->nsent, 1);
    assert_true(starts(&w->sent[0], "SIP/2.0 100 Trying\r\n"));
    assert_non_null(strstr(w->sent[0].bytes, "\r\nTo: <sip:bob@example.org>\r\n")); /* no tag */
    assert_int_equal(feed_str(w, req, src, 500), 0);
    assert_int_equal(w->nsent, 2); /* retransmission: the provisional again */
    assert_int_equal(w->nreq, 1);

    respond(t, 486, "s9", 1000, 0);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_COMPLETED);
    assert_true(starts(&w->sent[2], "SIP/2.0 486 "));
    /* Timer G: T1, then doubling up to T2: 500, 1000, 2000, 4000, 4000. */
    const uint64_t g[] = {1500, 2500, 4500, 8500, 12500};
    expect_retransmits(w, g, 5, "SIP/2.0 486 ");
    /* ACK (same branch, RFC 3261 client) -> Confirmed; G stops; Timer I = T4. */
    req_text(ack, sizeof(ack), "ACK", "z9hG4bKi1", "", 1, "ACK", "s9");
    assert_int_equal(feed_str(w, ack, src, 13000), 0);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_CONFIRMED);
    assert_int_equal(w->nreq, 1);
    assert_int_equal(w->nreq_null, 0);                 /* the ACK belongs to the transaction */
    assert_int_equal(feed_str(w, ack, src, 13100), 0); /* absorbed */
    int sent = w->nsent;
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 18000);
    sip_tsx_layer_advance(w->layer, 18000);
    assert_int_equal(w->nsent, sent);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_server_invite_timer_h(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 5070);
    char req[1024];
    (void)state;

    req_text(req, sizeof(req), "INVITE", "z9hG4bKh1", "", 1, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    struct sip_tsx *t = w->req_tsx[0];
    respond(t, 180, "s", 50, 0); /* before 200 ms: no 100 from the transaction */
    respond(t, 603, "s", 100, 0);
    sip_tsx_layer_advance(w->layer, 32099);
    assert_int_equal(w->ntimeout, 0);
    for (int i = 0; i < w->nsent; i++)
        assert_false(starts(&w->sent[i], "SIP/2.0 100"));
    /* Timer H = 64*T1: the ACK never came. */
    sip_tsx_layer_advance(w->layer, 32100);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->timeout_why[0], SIP_TSX_TIMEOUT_ACK);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_server_invite_2xx_accepted(void **state)
{
    struct sip_tsx_config cfg;
    sip_tsx_config_default(&cfg);
    cfg.trying_at_once = true;
    struct world *w = world_new(&cfg);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 5070);
    char req[1024], ack[1024];
    (void)state;

    req_text(req, sizeof(req), "INVITE", "z9hG4bKv1", "", 1, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    /* 16.2: 100 at once. */
    assert_int_equal(w->nsent, 1);
    assert_true(starts(&w->sent[0], "SIP/2.0 100 Trying"));
    struct sip_tsx *t = w->req_tsx[0];
    respond(t, 200, "s2", 1000, 0);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_ACCEPTED);
    assert_int_equal(sip_tsx_request(t).len, 0); /* Accepted keeps no request copy */
    /* RFC 6026 7.1: retransmitted INVITEs absorbed, no 2xx retransmission by us. */
    assert_int_equal(feed_str(w, req, src, 1500), 0);
    assert_int_equal(w->nreq, 1);
    assert_int_equal(w->nsent, 2);
    sip_tsx_layer_advance(w->layer, 5000);
    assert_int_equal(w->nsent, 2);
    /* The TU's own 2xx retransmissions pass through; other statuses do not. */
    respond_req(t, req, 200, "s2", 1500, 0);
    assert_int_equal(w->nsent, 3);
    respond_req(t, req, 486, "s2", 1600, -EINVAL);
    /* The ACK to the 2xx has a new branch: it goes to the TU without a transaction. */
    req_text(ack, sizeof(ack), "ACK", "z9hG4bKv1ack", "", 1, "ACK", "s2");
    assert_int_equal(feed_str(w, ack, src, 1700), 0);
    assert_int_equal(w->nreq_null, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 1);
    /* Timer L = 64*T1 from the 2xx. */
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 33000);
    sip_tsx_layer_advance(w->layer, 33000);
    assert_int_equal(w->nterm, 1);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);

    /* An answer from inside on_request: no 100 Trying at all. */
    w->answer_in_request = "180";
    req_text(req, sizeof(req), "INVITE", "z9hG4bKv2", "", 2, "INVITE", NULL);
    int sent = w->nsent;
    assert_int_equal(feed_str(w, req, src, 40000), 0);
    assert_int_equal(w->nsent, sent + 1);
    assert_true(starts(&w->sent[sent], "SIP/2.0 180 "));
    world_free(w);
}

static void test_cancel_matching(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 5070);
    char req[1024], cancel[1024];
    struct sip_msg m;
    struct sip_tsx *found = NULL;
    (void)state;

    req_text(req, sizeof(req), "INVITE", "z9hG4bKq1", "", 5, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    /* RFC 3261 9.1: CANCEL has the INVITE's branch; it is its own transaction. */
    req_text(cancel, sizeof(cancel), "CANCEL", "z9hG4bKq1", "", 5, "CANCEL", NULL);
    assert_int_equal(feed_str(w, cancel, src, 100), 0);
    assert_int_equal(w->nreq, 2);
    assert_string_equal(w->req_method[1], "CANCEL");
    assert_ptr_not_equal(w->req_tsx[1], w->req_tsx[0]);
    assert_true(sip_msg_parse(&m, cancel, strlen(cancel), SIP_MSG_DGRAM, NULL) > 0);
    /* 9.2: the INVITE transaction it cancels. */
    assert_int_equal(sip_tsx_layer_match_cancel(w->layer, &m, &found), 0);
    assert_ptr_equal(found, w->req_tsx[0]);
    /* A CANCEL with another branch matches nothing (the TU answers 481). */
    req_text(cancel, sizeof(cancel), "CANCEL", "z9hG4bKq2", "", 5, "CANCEL", NULL);
    assert_true(sip_msg_parse(&m, cancel, strlen(cancel), SIP_MSG_DGRAM, NULL) > 0);
    found = NULL;
    assert_int_equal(sip_tsx_layer_match_cancel(w->layer, &m, &found), -ENOENT);
    assert_null(found);

    /* RFC 2543 CANCEL (no branch): matched on R-URI, tags, Call-ID, CSeq, top Via. */
    req_text(req, sizeof(req), "INVITE", NULL, "", 9, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, src, 200), 0);
    req_text(cancel, sizeof(cancel), "CANCEL", NULL, "", 9, "CANCEL", NULL);
    assert_true(sip_msg_parse(&m, cancel, strlen(cancel), SIP_MSG_DGRAM, NULL) > 0);
    assert_int_equal(sip_tsx_layer_match_cancel(w->layer, &m, &found), 0);
    assert_ptr_equal(found, w->req_tsx[w->nreq - 1]);
    req_text(cancel, sizeof(cancel), "CANCEL", NULL, "", 10, "CANCEL", NULL);
    assert_true(sip_msg_parse(&m, cancel, strlen(cancel), SIP_MSG_DGRAM, NULL) > 0);
    assert_int_equal(sip_tsx_layer_match_cancel(w->layer, &m, &found), -ENOENT);
    world_free(w);
}

static void test_rfc2543_fallback(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 5070);
    char req[1024], ack[1024];
    (void)state;

    /* An INVITE whose Via has no branch. */
    req_text(req, sizeof(req), "INVITE", NULL, "", 3, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    assert_int_equal(w->nreq, 1);
    struct sip_tsx *t = w->req_tsx[0];
    assert_int_equal(feed_str(w, req, src, 500), 0); /* retransmission matched */
    assert_int_equal(w->nreq, 1);
    /* Another CSeq is another transaction. */
    char req2[1024];
    req_text(req2, sizeof(req2), "INVITE", NULL, "", 4, "INVITE", NULL);
    assert_int_equal(feed_str(w, req2, src, 600), 0);
    assert_int_equal(w->nreq, 2);
    /* An INVITE server transaction has no timer of its own before the TU answers. */
    respond(w->req_tsx[1], 500, "totag2", 700, 0);

    respond(t, 404, "totag1", 1000, 0);
    /* Completed without its request copy: the 2543 ACK still matches by the hashed
     * R-URI, tags, Call-ID, CSeq and top Via, and by our To tag. */
    assert_int_equal(sip_tsx_request(t).len, 0);
    /* The ACK carries the To tag of our response: it matches, G stops. */
    req_text(ack, sizeof(ack), "ACK", NULL, "", 3, "ACK", "totag1");
    assert_int_equal(feed_str(w, ack, src, 1200), 0);
    assert_int_equal(sip_tsx_state(t), SIP_TSX_CONFIRMED);
    assert_int_equal(w->nreq_null, 0);
    /* An ACK with another To tag is not for this transaction. */
    req_text(ack, sizeof(ack), "ACK", NULL, "", 3, "ACK", "other");
    assert_int_equal(feed_str(w, ack, src, 1300), 0);
    assert_int_equal(w->nreq_null, 1);

    /* Non-INVITE 2543: retransmission matched, final response re-sent. */
    req_text(req, sizeof(req), "BYE", NULL, "", 5, "BYE", "totag1");
    assert_int_equal(feed_str(w, req, src, 2000), 0);
    struct sip_tsx *bye = w->req_tsx[w->nreq - 1];
    respond(bye, 200, NULL, 2100, 0);
    assert_int_equal(sip_tsx_request(bye).len, 0);
    int sent = w->nsent;
    assert_int_equal(feed_str(w, req, src, 2200), 0);
    assert_int_equal(w->nsent, sent + 1);
    assert_true(starts(&w->sent[sent], "SIP/2.0 200 "));
    assert_int_equal(w->nreq, 3);

    sip_tsx_layer_advance(w->layer, 100000);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    assert_int_equal(w->nterm, 3);
    world_free(w);
}

static void test_table_cap(void **state)
{
    struct sip_tsx_config cfg;
    sip_tsx_config_default(&cfg);
    cfg.max_tsx = 2;
    struct world *w = world_new(&cfg);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 5070);
    struct sip_tsx *t;
    char req[1024];
    (void)state;

    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKm1", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKm2", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKm3", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 0), -ENOBUFS); /* the caller answers 503 */
    struct sip_tsx_stats st;
    sip_tsx_layer_stats(w->layer, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(w->nreq, 2);
    int n = req_text(req, sizeof(req), "OPTIONS", "z9hG4bKm4", "", 1, "OPTIONS", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &src, NULL, 0), -ENOBUFS);
    /* A retransmission of an existing one is still absorbed at the cap. */
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKm1", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    /* Room again once one has finished. */
    respond(w->req_tsx[0], 200, "t", 10, 0);
    sip_tsx_layer_advance(w->layer, 10 + 32000);
    assert_int_equal(sip_tsx_layer_count(w->layer), 1);
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKm3", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 32010), 0);
    assert_int_equal(sip_tsx_layer_count(w->layer), 2);
    world_free(w); /* frees live transactions without callbacks */
}

static void test_stray_and_config(void **state)
{
    struct world *w = world_new(NULL);
    char req[1024];
    struct sip_tsx_config cfg;
    struct sip_tsx_layer *l = NULL;
    struct sip_tsx_ops ops = {w_send, w_request, w_response, NULL, NULL, NULL, w};
    (void)state;

    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKnone", "", 1, "OPTIONS", NULL);
    feed_resp(w, req, 200, "x", 0);
    assert_int_equal(w->nresp_null, 1);
    assert_int_equal(w->nresp, 0);
    struct sip_tsx_stats st;
    sip_tsx_layer_stats(w->layer, &st);
    assert_int_equal(st.stray_responses, 1);
    world_free(w);

    sip_tsx_config_default(&cfg);
    cfg.timer_c_ms = 180000; /* must be more than 3 minutes */
    assert_int_equal(sip_tsx_layer_new(&l, &cfg, &ops), -EINVAL);
    sip_tsx_config_default(&cfg);
    cfg.t2_ms = 100; /* below T1 */
    assert_int_equal(sip_tsx_layer_new(&l, &cfg, &ops), -EINVAL);
    sip_tsx_config_default(&cfg);
    ops.send = NULL;
    assert_int_equal(sip_tsx_layer_new(&l, &cfg, &ops), -EINVAL);
    assert_null(l);
    sip_tsx_layer_free(NULL);
}

/* Many transactions with interleaved deadlines: the heap hands them out in order. */
static void test_many_transactions(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_TCP, 5080);
    char req[1024];
    (void)state;

    for (unsigned i = 0; i < 1000; i++) {
        char branch[32];
        struct sip_tsx *t;
        snprintf(branch, sizeof(branch), "z9hG4bKn%u", i);
        int n = req_text(req, sizeof(req), "OPTIONS", branch, "", 1, "OPTIONS", NULL);
        /* created at times 0, 7, 14... modulo 3001: deadlines out of order */
        uint64_t now = (uint64_t)(i * 7u) % 3001;
        w->nsent = 0;
        assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, now), 0);
    }
    assert_int_equal(sip_tsx_layer_count(w->layer), 1000);
    uint64_t last = 0;
    int timeouts = 0;
    while (sip_tsx_layer_next_deadline(w->layer) != UINT64_MAX) {
        uint64_t next = sip_tsx_layer_next_deadline(w->layer);
        assert_true(next >= last);
        last = next;
        w->ntimeout = 0;
        w->nterm = 0;
        sip_tsx_layer_advance(w->layer, next);
        timeouts += w->ntimeout;
    }
    assert_int_equal(timeouts, 1000);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_client_cancelled_guard(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest d = dest(SIP_TSX_UDP, 5080);
    struct sip_tsx *t = NULL, *t2 = NULL;
    char req[1024], req2[1024];
    (void)state;

    int n = req_text(req, sizeof(req), "INVITE", "z9hG4bKg1", "", 1, "INVITE", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t, req, (size_t)n, &d, NULL, 0), 0);
    feed_resp(w, req, 180, "r", 100);
    /* RFC 3261 9.1: after a CANCEL, 64*T1 for the final response, then give up. */
    assert_int_equal(sip_tsx_client_cancelled(t, 1000), 0);
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 33000);
    sip_tsx_layer_advance(w->layer, 32999);
    assert_int_equal(w->ntimeout, 0);
    sip_tsx_layer_advance(w->layer, 33000);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->timeout_why[0], SIP_TSX_TIMEOUT_RESPONSE);
    sip_tsx_layer_advance(w->layer, 33000);
    assert_int_equal(w->nterm, 1);

    /* The usual case: the 487 comes, the ACK is sent, the guard is gone. */
    n = req_text(req2, sizeof(req2), "INVITE", "z9hG4bKg2", "", 2, "INVITE", NULL);
    assert_int_equal(sip_tsx_client_new(w->layer, &t2, req2, (size_t)n, &d, NULL, 40000), 0);
    feed_resp(w, req2, 183, "r", 40100);
    assert_int_equal(sip_tsx_client_cancelled(t2, 40200), 0);
    feed_resp(w, req2, 487, "r", 40300);
    assert_int_equal(sip_tsx_state(t2), SIP_TSX_COMPLETED);
    assert_true(starts(&w->sent[w->nsent - 1], "ACK "));
    assert_int_equal(sip_tsx_layer_next_deadline(w->layer), 40300 + 32000); /* Timer D */
    sip_tsx_layer_advance(w->layer, 72300);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->nterm, 2);
    assert_int_equal(sip_tsx_layer_count(w->layer), 0);
    world_free(w);
}

static void test_server_edge_cases(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest src = dest(SIP_TSX_UDP, 5070);
    char req[1024], ack[1024];
    (void)state;

    /* An ACK reusing the INVITE's branch for a 2xx matches the transaction in
     * Accepted and goes to the TU (RFC 6026 7.1). */
    req_text(req, sizeof(req), "INVITE", "z9hG4bKz1", "", 1, "INVITE", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    respond(w->req_tsx[0], 200, "s", 10, 0);
    req_text(ack, sizeof(ack), "ACK", "z9hG4bKz1", "", 1, "ACK", "s");
    assert_int_equal(feed_str(w, ack, src, 20), 0);
    assert_int_equal(w->nreq_null, 1);
    assert_int_equal(sip_tsx_state(w->req_tsx[0]), SIP_TSX_ACCEPTED);

    /* A send error on respond: returned, and the transaction ends (17.2.4). */
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKz2", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 30), 0);
    w->send_error = -EPIPE;
    respond(w->req_tsx[1], 200, "s", 40, -EPIPE);
    w->send_error = 0;
    assert_int_equal(sip_tsx_state(w->req_tsx[1]), SIP_TSX_TERMINATED);
    assert_int_equal(w->nterr, 0); /* told by the return value, not a callback */
    assert_int_equal(w->nterm, 0);
    /* Its retransmission is now a new request. */
    assert_int_equal(feed_str(w, req, src, 45), 0);
    assert_int_equal(w->nreq, 3);
    sip_tsx_layer_advance(w->layer, 50);
    assert_int_equal(w->nterm, 1);
    assert_ptr_equal(w->term_tsx[0], w->req_tsx[1]);

    /* A non-INVITE left in Proceeding by its TU: the guard ends it. */
    respond(w->req_tsx[2], 100, NULL, 60, 0);
    sip_tsx_layer_advance(w->layer, 45 + 32000 + 5000);
    assert_int_equal(w->ntimeout, 1);
    assert_int_equal(w->timeout_why[0], SIP_TSX_TIMEOUT_TU);

    /* Freeing the layer with a terminated, not yet destroyed, transaction. */
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bKz3", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 40000), 0);
    w->send_error = -EPIPE;
    respond(w->req_tsx[3], 200, "s", 40001, -EPIPE);
    world_free(w); /* valgrind: nothing lost */
}

static void test_ipv6_source(void **state)
{
    struct world *w = world_new(NULL);
    struct sip_tsx_dest src;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&src.addr;
    char req[1024], host[64];
    struct sip_src s;
    (void)state;

    memset(&src, 0, sizeof(src));
    src.transport = SIP_TSX_UDP;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(40002);
    sin6->sin6_addr.s6_addr[15] = 1; /* ::1 */
    assert_int_equal(sip_tsx_dest_src(&src, host, sizeof(host), &s), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(s.port, 40002);
    req_text(req, sizeof(req), "OPTIONS", "z9hG4bK6", "", 1, "OPTIONS", NULL);
    assert_int_equal(feed_str(w, req, src, 0), 0);
    struct sip_tsx_dest peer;
    sip_tsx_peer(w->req_tsx[0], &peer);
    assert_int_equal(peer.addr.ss_family, AF_INET6);
    assert_memory_equal(&peer.addr, &src.addr, sizeof(struct sockaddr_in6));
    assert_int_equal(peer.transport, SIP_TSX_UDP);
    respond(w->req_tsx[0], 200, "s", 10, 0);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&w->sent[0].dest.addr)->sin6_port), 40002);
    sip_tsx_set_arg(w->req_tsx[0], w);
    assert_ptr_equal(sip_tsx_arg(w->req_tsx[0]), w);
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_invite_timer_a_b),
        cmocka_unit_test(test_client_invite_non2xx_ack),
        cmocka_unit_test(test_client_invite_2xx_accepted),
        cmocka_unit_test(test_client_invite_reliable_timer_c),
        cmocka_unit_test(test_client_noninvite_timer_e_f_k),
        cmocka_unit_test(test_client_noninvite_tcp_k_zero),
        cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_server_noninvite),
        cmocka_unit_test(test_server_rport_and_tcp),
        cmocka_unit_test(test_server_invite_non2xx),
        cmocka_unit_test(test_server_invite_timer_h),
        cmocka_unit_test(test_server_invite_2xx_accepted),
        cmocka_unit_test(test_cancel_matching),
        cmocka_unit_test(test_rfc2543_fallback),
        cmocka_unit_test(test_table_cap),
        cmocka_unit_test(test_stray_and_config),
        cmocka_unit_test(test_many_transactions),
        cmocka_unit_test(test_client_cancelled_guard),
        cmocka_unit_test(test_server_edge_cases),
        cmocka_unit_test(test_ipv6_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
