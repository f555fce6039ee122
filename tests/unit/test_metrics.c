/*
 * test_metrics.c: latency histograms and the Prometheus text exposition (base/metrics.c).
 *
 * Checks the bucket boundaries (a value equal to a bound is in that bucket, one
 * microsecond more is in the next, past the last bound only in +Inf), that the
 * written buckets are cumulative and end in +Inf == _count, the sum in seconds,
 * the label forms, label-value escaping and the buffer cap.
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
#include "p2p/metrics.h"

static void test_bucket_bounds(void **state)
{
    (void)state;
    assert_int_equal(p2p_hist_bound_us(0), 250);
    assert_int_equal(p2p_hist_bound_us(2), 1000);
    assert_int_equal(p2p_hist_bound_us(P2P_HIST_BUCKETS - 1), 32768000);
    assert_int_equal(p2p_hist_bucket(0), 0);
    assert_int_equal(p2p_hist_bucket(250), 0);
    for (unsigned i = 1; i < P2P_HIST_BUCKETS; i++) {
        /* (bound(i-1), bound(i)] is bucket i. */
        assert_int_equal(p2p_hist_bucket(p2p_hist_bound_us(i - 1)), i - 1);
        assert_int_equal(p2p_hist_bucket(p2p_hist_bound_us(i - 1) + 1), i);
        assert_int_equal(p2p_hist_bucket(p2p_hist_bound_us(i)), i);
    }
    assert_int_equal(p2p_hist_bucket(32768001), P2P_HIST_BUCKETS);
    assert_int_equal(p2p_hist_bucket(UINT64_MAX), P2P_HIST_BUCKETS);
}

/* The value of the line of text that starts with prefix, or -1. */
static long long line_value(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

static void test_write(void **state)
{
    struct p2p_hist h;
    struct p2p_buf b;
    char *text;

    (void)state;
    memset(&h, 0, sizeof(h));
    p2p_hist_observe(&h, 100);      /* 0.25 ms bucket */
    p2p_hist_observe(&h, 250);      /* still 0.25 ms */
    p2p_hist_observe(&h, 1500);     /* 2 ms */
    p2p_hist_observe(&h, 40000000); /* 40 s: only +Inf */
    assert_int_equal(h.count, 4);
    p2p_buf_init(&b, 1 << 16);
    assert_int_equal(p2p_hist_write(&b, "x_seconds", "op=\"put\"", &h), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    text = b.data;
    assert_int_equal(line_value(text, "x_seconds_bucket{op=\"put\",le=\"0.000250\"}"), 2);
    assert_int_equal(line_value(text, "x_seconds_bucket{op=\"put\",le=\"0.001000\"}"), 2);
    assert_int_equal(line_value(text, "x_seconds_bucket{op=\"put\",le=\"0.002000\"}"), 3);
    assert_int_equal(line_value(text, "x_seconds_bucket{op=\"put\",le=\"32.768000\"}"), 3);
    assert_int_equal(line_value(text, "x_seconds_bucket{op=\"put\",le=\"+Inf\"}"), 4);
    assert_int_equal(line_value(text, "x_seconds_count{op=\"put\"}"), 4);
    /* 100 + 250 + 1500 + 40000000 us = 40.001850 s. */
    assert_non_null(strstr(text, "\nx_seconds_sum{op=\"put\"} 40.001850\n"));
    /* Buckets, sum, count: 18 + 1 + 2 lines, each ended by a newline. */
    size_t lines = 0;
    for (const char *p = text; *p != '\0'; p++)
        lines += *p == '\n';
    assert_int_equal(lines, P2P_HIST_BUCKETS + 3);
    p2p_buf_free(&b);

    /* No labels: no braces on _sum and _count, le alone in the buckets. */
    p2p_buf_init(&b, 1 << 16);
    assert_int_equal(p2p_hist_write(&b, "y", NULL, &h), 0);
    assert_int_equal(p2p_prom_header(&b, "z_total", "counter", "things"), 0);
    assert_int_equal(p2p_prom_sample(&b, "z_total", NULL, 7), 0);
    assert_int_equal(p2p_prom_sample(&b, "z_total", "dir=\"sent\"", 8), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    text = b.data;
    assert_int_equal(line_value(text, "y_bucket{le=\"+Inf\"}"), 4);
    assert_int_equal(line_value(text, "y_count"), 4);
    assert_non_null(strstr(text, "\ny_sum 40.001850\n"));
    assert_non_null(strstr(text, "\n# HELP z_total things\n# TYPE z_total counter\nz_total 7\n"
                                 "z_total{dir=\"sent\"} 8\n"));
    p2p_buf_free(&b);
}

static void test_empty_and_cap(void **state)
{
    struct p2p_hist h;
    struct p2p_buf b;

    (void)state;
    memset(&h, 0, sizeof(h));
    p2p_buf_init(&b, 1 << 16);
    assert_int_equal(p2p_hist_write(&b, "e", "", &h), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    assert_int_equal(line_value(b.data, "e_bucket{le=\"+Inf\"}"), 0);
    assert_non_null(strstr(b.data, "\ne_sum 0.000000\n"));
    p2p_buf_free(&b);
    /* A buffer too small: the error, never past the cap. */
    p2p_buf_init(&b, 100);
    assert_int_equal(p2p_hist_write(&b, "e", "", &h), -EMSGSIZE);
    assert_true(b.len <= 100);
    p2p_buf_free(&b);
}

static void test_label_escape(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(p2p_prom_label_value("a\"b\\c\nd", out, sizeof(out)), 0);
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    /* Cut before an escape, never inside one. */
    assert_int_equal(p2p_prom_label_value("abcdefghijklmn\"", out, sizeof(out)), -ENOSPC);
    assert_string_equal(out, "abcdefghijklmn");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_bounds),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_empty_and_cap),
        cmocka_unit_test(test_label_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
