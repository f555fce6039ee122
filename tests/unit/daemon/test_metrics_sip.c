/*
 * test_metrics_sip.c: the daemon's SIP timings and its exposition (p2psipd/metrics.c),
 * on a fake clock (every time is an argument; nothing reads a real clock or waits).
 *
 * Checks: a REGISTER is timed from its arrival to its final response (a 100 is not
 * final), an INVITE to its first 18x or 2xx (a 100 does not end it, a later 200 is
 * not counted again, a 486 ends it unobserved); retransmitted requests and
 * responses are counted once; a request without a branch is not timed; the key is
 * the branch with the sent-by and the CSeq method (the same branch from another
 * host, or for another method, is another transaction); an answer after 64*T1 is
 * stale and not observed; 2000 requests open at once in 1024 slots evict at least
 * 976 (pigeonhole), and the observations plus the evictions are exactly 2000.  The
 * exposition of a bare daemon shows the SIP counters from sip_stats, the
 * histograms' counts and sums, and the evictions.
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

#include "p2p/buf.h"
#include "p2p/sip_msg.h"
#include "p2psipd.h"

#define MS 1000000ull /* ns */

struct fix {
    struct p2psipd *d;
    struct sip_msg msg;
    char buf[2048];
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->d = calloc(1, sizeof(*f->d));
    assert_non_null(f->d);
    f->d->conf.timers.t1_ms = 500;
    assert_int_equal(p2psipd__metrics_start(f->d), 0); /* no control, no listener */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;

    p2psipd__metrics_stop(f->d);
    assert_null(f->d->metrics);
    free(f->d);
    free(f);
    return 0;
}

/* A request METHOD from host:5070 with branch (none when NULL), at now. */
static void request(struct fix *f, const char *method, const char *host, const char *branch,
                    uint64_t now)
{
    int n = snprintf(f->buf, sizeof(f->buf),
                     "%s sip:alice@p2p.test SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP %s:5070%s%s\r\n"
                     "Max-Forwards: 70\r\nFrom: <sip:alice@p2p.test>;tag=1\r\n"
                     "To: <sip:alice@p2p.test>\r\nCall-ID: c1\r\nCSeq: 1 %s\r\n"
                     "Content-Length: 0\r\n\r\n",
                     method, host, branch ? ";branch=" : "", branch ? branch : "", method);

    assert_true(sip_msg_parse(&f->msg, f->buf, (size_t)n, SIP_MSG_DGRAM, NULL) > 0);
    p2psipd__sip_timing_request(f->d, &f->msg, now);
}

/* A response STATUS to METHOD, with the request's top Via (no branch when NULL),
 * leaving at now. */
static void response(struct fix *f, unsigned status, const char *method, const char *host,
                     const char *branch, uint64_t now)
{
    int n = snprintf(f->buf, sizeof(f->buf),
                     "SIP/2.0 %u Something\r\n"
                     "Via: SIP/2.0/UDP %s:5070;received=127.0.0.1%s%s\r\n"
                     "From: <sip:alice@p2p.test>;tag=1\r\nTo: <sip:alice@p2p.test>;tag=2\r\n"
                     "Call-ID: c1\r\nCSeq: 1 %s\r\nContent-Length: 0\r\n\r\n",
                     status, host, branch ? ";branch=" : "", branch ? branch : "", method);
    struct sip_hdr_iter it;
    struct p2p_slice top;
    struct sip_via via;

    assert_true(sip_msg_parse(&f->msg, f->buf, (size_t)n, SIP_MSG_DGRAM, NULL) > 0);
    sip_hdr_iter_init(&it, &f->msg, SIP_HDR_VIA);
    assert_true(sip_hdr_iter_next(&it, &top));
    assert_int_equal(sip_via_parse(top, &via), 0);
    p2psipd__sip_timing_response(f->d, &f->msg, &via, now);
}

static const struct p2p_hist *hist(struct fix *f, enum p2psipd_lat which)
{
    return &f->d->lat[which];
}

static void test_register(void **state)
{
    struct fix *f = *state;
    uint64_t t0 = 1000 * MS;

    request(f, "REGISTER", "127.0.0.1", "z9hG4bK-r1", t0);
    response(f, 100, "REGISTER", "127.0.0.1", "z9hG4bK-r1", t0 + 1 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 0);      /* 100 is not final */
    request(f, "REGISTER", "127.0.0.1", "z9hG4bK-r1", t0 + 2 * MS); /* retransmission */
    response(f, 200, "REGISTER", "127.0.0.1", "z9hG4bK-r1", t0 + 3 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 1);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->sum_us, 3000); /* from the first copy */
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->counts[p2p_hist_bucket(3000)], 1);
    /* Retransmissions after the answer: neither a new timing nor a second count. */
    request(f, "REGISTER", "127.0.0.1", "z9hG4bK-r1", t0 + 500 * MS);
    response(f, 200, "REGISTER", "127.0.0.1", "z9hG4bK-r1", t0 + 501 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 1);
    /* A 401 challenge is a final response too. */
    request(f, "REGISTER", "127.0.0.1", "z9hG4bK-r2", t0);
    response(f, 401, "REGISTER", "127.0.0.1", "z9hG4bK-r2", t0 + 1 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 2);
    /* No branch (RFC 2543): not timed. */
    request(f, "REGISTER", "127.0.0.1", NULL, t0);
    response(f, 200, "REGISTER", "127.0.0.1", NULL, t0 + 1 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 2);
    /* Answered after 64*T1 = 32 s: stale, not observed. */
    request(f, "REGISTER", "127.0.0.1", "z9hG4bK-r3", t0);
    response(f, 200, "REGISTER", "127.0.0.1", "z9hG4bK-r3", t0 + 33000 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 2);
}

static void test_invite(void **state)
{
    struct fix *f = *state;
    uint64_t t0 = 5000 * MS;

    request(f, "INVITE", "127.0.0.1", "z9hG4bK-i1", t0);
    response(f, 100, "INVITE", "127.0.0.1", "z9hG4bK-i1", t0 + 1 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->count, 0);
    response(f, 180, "INVITE", "127.0.0.1", "z9hG4bK-i1", t0 + 20 * MS);
    response(f, 200, "INVITE", "127.0.0.1", "z9hG4bK-i1", t0 + 900 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->count, 1);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->sum_us, 20000);
    /* Straight to 200. */
    request(f, "INVITE", "127.0.0.1", "z9hG4bK-i2", t0);
    response(f, 200, "INVITE", "127.0.0.1", "z9hG4bK-i2", t0 + 5 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->count, 2);
    /* A failed call is no setup: 486, and nothing it is sent later counts. */
    request(f, "INVITE", "127.0.0.1", "z9hG4bK-i3", t0);
    response(f, 486, "INVITE", "127.0.0.1", "z9hG4bK-i3", t0 + 5 * MS);
    response(f, 180, "INVITE", "127.0.0.1", "z9hG4bK-i3", t0 + 6 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->count, 2);
    /* The same branch from another host, or for another method, is another
     * transaction: its answer does not end this one. */
    request(f, "INVITE", "127.0.0.1", "z9hG4bK-i4", t0);
    response(f, 180, "INVITE", "127.0.0.2", "z9hG4bK-i4", t0 + 1 * MS);
    response(f, 200, "OPTIONS", "127.0.0.1", "z9hG4bK-i4", t0 + 1 * MS);
    response(f, 200, "REGISTER", "127.0.0.1", "z9hG4bK-i4", t0 + 1 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->count, 2);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 0);
    response(f, 183, "INVITE", "127.0.0.1", "z9hG4bK-i4", t0 + 7 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->count, 3);
    /* Other methods are not timed. */
    request(f, "OPTIONS", "127.0.0.1", "z9hG4bK-o1", t0);
    response(f, 200, "OPTIONS", "127.0.0.1", "z9hG4bK-o1", t0 + 1 * MS);
    assert_int_equal(hist(f, P2PSIPD_LAT_CALL_SETUP)->count, 3);
    assert_int_equal(hist(f, P2PSIPD_LAT_REGISTER)->count, 0);
}

static void test_eviction(void **state)
{
    struct fix *f = *state;
    char branch[32];
    uint64_t observed, evicted;
    struct p2p_buf b;
    char line[64];

    for (int i = 0; i < 2000; i++) {
        snprintf(branch, sizeof(branch), "z9hG4bK-e%d", i);
        request(f, "REGISTER", "127.0.0.1", branch, 1000 * MS);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(branch, sizeof(branch), "z9hG4bK-e%d", i);
        response(f, 200, "REGISTER", "127.0.0.1", branch, 1001 * MS);
    }
    observed = hist(f, P2PSIPD_LAT_REGISTER)->count;
    /* Read back through the exposition, which is where it is visible. */
    p2p_buf_init(&b, 1 << 20);
    assert_int_equal(p2psipd__metrics_text(f->d, &b), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    const char *p = strstr(b.data, "\np2psip_sip_timing_evicted_total ");
    assert_non_null(p);
    evicted = strtoull(p + strlen("\np2psip_sip_timing_evicted_total "), NULL, 10);
    assert_true(evicted >= 2000 - 1024);
    assert_int_equal(observed + evicted, 2000);
    snprintf(line, sizeof(line), "\np2psip_sip_register_duration_seconds_count %llu\n",
             (unsigned long long)observed);
    assert_non_null(strstr(b.data, line));
    p2p_buf_free(&b);
}

static void test_exposition(void **state)
{
    struct fix *f = *state;
    struct p2p_buf b;

    f->d->sip_stats.rx = 42;
    f->d->sip_stats.bad_dropped = 7;
    request(f, "REGISTER", "127.0.0.1", "z9hG4bK-x", 0);
    response(f, 200, "REGISTER", "127.0.0.1", "z9hG4bK-x", 1500000); /* 1.5 ms */
    p2p_buf_init(&b, 1 << 20);
    assert_int_equal(p2psipd__metrics_text(f->d, &b), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    assert_non_null(strstr(
        b.data, "# HELP p2psip_sip_rx_total SIP messages received (p2psipctl counters: sip.rx)\n"
                "# TYPE p2psip_sip_rx_total counter\n"
                "p2psip_sip_rx_total 42\n"));
    assert_non_null(strstr(b.data, "\np2psip_sip_bad_dropped_total 7\n"));
    assert_non_null(strstr(b.data, "# TYPE p2psip_control_clients gauge\n"));
    assert_non_null(strstr(b.data, "# TYPE p2psip_sip_register_duration_seconds histogram\n"));
    assert_non_null(strstr(b.data,
                           "\np2psip_sip_register_duration_seconds_bucket{le=\"0.001000\"} "
                           "0\np2psip_sip_register_duration_seconds_bucket{le=\"0.002000\"} 1\n"));
    assert_non_null(strstr(b.data, "\np2psip_sip_register_duration_seconds_sum 0.001500\n"));
    /* One TYPE line for the three label sets of the put histogram. */
    const char *first = strstr(b.data, "# TYPE p2psip_dht_put_duration_seconds histogram\n");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# TYPE p2psip_dht_put_duration_seconds "));
    assert_non_null(
        strstr(b.data, "p2psip_dht_put_duration_seconds_count{origin=\"refresh\"} 0\n"));
    p2p_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exposition, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
