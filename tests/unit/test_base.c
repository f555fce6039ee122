/*
 * test_base.c: slices, bounded buffers, log-level parsing and the log rate limiter
 * (on a fake clock: every time is an argument, nothing waits or reads a real clock).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "p2p/buf.h"
#include "p2p/clock.h"
#include "p2p/errmsg.h"
#include "p2p/list.h"
#include "p2p/log.h"
#include "p2p/slice.h"

static void test_slice_compare(void **state)
{
    (void)state;
    assert_true(p2p_slice_caseeq_cstr(P2P_SLICE_LIT("Via"), "vIA"));
    assert_false(p2p_slice_caseeq_cstr(P2P_SLICE_LIT("Via"), "Vias"));
    assert_false(p2p_slice_eq(P2P_SLICE_LIT("abc"), P2P_SLICE_LIT("abC")));
    struct p2p_slice t = p2p_slice_trim(P2P_SLICE_LIT(" \t x y \r\n"));
    assert_int_equal(t.len, 3);
    assert_memory_equal(t.p, "x y", 3);
}

static void test_slice_numbers(void **state)
{
    uint64_t v = 7;
    (void)state;
    assert_int_equal(p2p_slice_to_u64(P2P_SLICE_LIT("4294967295"), UINT32_MAX, &v), 0);
    assert_int_equal(v, 4294967295u);
    v = 7;
    assert_int_equal(p2p_slice_to_u64(P2P_SLICE_LIT("4294967296"), UINT32_MAX, &v), -ERANGE);
    assert_int_equal(p2p_slice_to_u64(P2P_SLICE_LIT("12a"), UINT32_MAX, &v), -EINVAL);
    assert_int_equal(p2p_slice_to_u64(P2P_SLICE_LIT(""), UINT32_MAX, &v), -EINVAL);
    assert_int_equal(v, 7); /* untouched on failure */
    char out[4];
    assert_int_equal(p2p_slice_copy(P2P_SLICE_LIT("abc"), out, sizeof(out)), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(p2p_slice_copy(P2P_SLICE_LIT("abcd"), out, sizeof(out)), -ENOSPC);
}

static void test_hex_and_errf(void **state)
{
    char err[8] = "x";
    (void)state;
    assert_true(p2p_slice_is_hex(P2P_SLICE_LIT("09afAF")));
    assert_false(p2p_slice_is_hex(P2P_SLICE_LIT("09ag")));
    assert_false(p2p_slice_is_hex(P2P_SLICE_LIT("")));
    p2p_errf(err, sizeof(err), "line %d: %s", 12, "bad");
    assert_string_equal(err, "line 12"); /* truncated, NUL-terminated */
    p2p_errf(NULL, 0, "ignored %d", 1);
}

static void test_buf_cap(void **state)
{
    struct p2p_buf b;
    (void)state;
    p2p_buf_init(&b, 10);
    assert_int_equal(p2p_buf_append(&b, "12345", 5), 0);
    assert_int_equal(p2p_buf_printf(&b, "%d", 6789), 0);
    assert_int_equal(b.len, 9);
    /* One byte past the cap fails and changes nothing. */
    assert_int_equal(p2p_buf_append(&b, "ab", 2), -EMSGSIZE);
    assert_int_equal(p2p_buf_printf(&b, "%s", "ab"), -EMSGSIZE);
    assert_int_equal(b.len, 9);
    assert_int_equal(p2p_buf_printf(&b, "x"), 0);
    assert_memory_equal(b.data, "123456789x", 10);
    assert_true(b.alloc <= b.cap);
    p2p_buf_consume(&b, 4);
    assert_memory_equal(b.data, "56789x", 6);
    p2p_buf_free(&b);
}

static void test_log_levels(void **state)
{
    enum p2p_log_level l;
    struct p2p_log log;
    (void)state;
    assert_int_equal(p2p_log_level_parse("debug", &l), 0);
    assert_int_equal(l, P2P_LOG_DEBUG);
    assert_int_equal(p2p_log_level_parse("loud", &l), -EINVAL);
    p2p_log_init(&log, "t", P2P_LOG_NOTICE, false);
    assert_true(p2p_log_enabled(&log, P2P_LOG_ERR));
    assert_false(p2p_log_enabled(&log, P2P_LOG_INFO));
    assert_false(p2p_log_enabled(NULL, P2P_LOG_ERR));
}

static void test_log_limit_bucket(void **state)
{
    struct p2p_log_limit l = {.name = "t"};
    uint64_t announce = 99;
    unsigned passed = 0;

    (void)state;
    /* Burst 3 at once, then 2 lines a second. */
    for (int i = 0; i < 3; i++) {
        assert_true(p2p_log_limit_take(&l, 3, 2, 1000, &announce));
        assert_int_equal(announce, 0);
    }
    assert_false(p2p_log_limit_take(&l, 3, 2, 1000, &announce));
    assert_false(p2p_log_limit_take(&l, 3, 2, 1000, &announce));
    /* 499 ms at 2/s is 0.998 of a line: not yet. */
    assert_false(p2p_log_limit_take(&l, 3, 2, 1499, &announce));
    /* 500 ms: one line, which is told of the 3 dropped before it. */
    assert_true(p2p_log_limit_take(&l, 3, 2, 1500, &announce));
    assert_int_equal(announce, 3);
    assert_false(p2p_log_limit_take(&l, 3, 2, 1500, &announce));
    /* A clock that goes back refills nothing. */
    assert_false(p2p_log_limit_take(&l, 3, 2, 100, &announce));
    /* A long silence refills to the burst, no more. */
    for (int i = 0; i < 3; i++)
        assert_true(p2p_log_limit_take(&l, 3, 2, 1000000000, &announce));
    assert_int_equal(announce, 0);
    assert_false(p2p_log_limit_take(&l, 3, 2, 1000000000, &announce));

    /* A flood of one attempt per ms for 10 s: burst + rate * 10 s lines, exactly. */
    memset(&l, 0, sizeof(l));
    for (uint64_t t = 0; t < 10000; t++)
        passed += p2p_log_limit_take(&l, 3, 2, 5000 + t, &announce);
    assert_int_equal(passed, 3 + 2 * 10 - 1); /* the last refill lands at t = 10000 */
}

/* The lines written to stderr while fn runs. */
static size_t stderr_lines(void (*fn)(struct p2p_log *, struct p2p_log_limit *),
                           struct p2p_log *log, struct p2p_log_limit *l, char *text, size_t size)
{
    FILE *tmp = tmpfile();
    int saved = dup(2);
    size_t n, lines = 0;

    assert_non_null(tmp);
    assert_true(saved >= 0);
    fflush(stderr);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn(log, l);
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    rewind(tmp);
    n = fread(text, 1, size - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    return lines;
}

static void flood(struct p2p_log *log, struct p2p_log_limit *l)
{
    /* 1000 lines at t = 0, then one more 2 s later. */
    for (int i = 0; i < 1000; i++)
        p2p_info_rl(log, l, 0, "garbage %d", i);
    p2p_info_rl(log, l, 2000, "garbage again");
    /* Below the level: neither written nor counted. */
    p2p_debug(log, "not shown");
    p2p_logf_limited(log, l, 2000, P2P_LOG_DEBUG, "not counted");
}

static void test_log_limited(void **state)
{
    struct p2p_log log;
    struct p2p_log_limit l = {.name = "sip"};
    char text[8192];

    (void)state;
    p2p_log_init(&log, "t", P2P_LOG_INFO, false);
    assert_int_equal(log.limit_burst, P2P_LOG_BURST_DEFAULT);
    assert_int_equal(log.limit_rate, P2P_LOG_RATE_DEFAULT);
    log.limit_burst = 5;
    log.limit_rate = 1;
    /* 5 at once; 2 s later a token again: the message, after the suppressed line. */
    assert_int_equal(stderr_lines(flood, &log, &l, text, sizeof(text)), 5 + 2);
    assert_non_null(strstr(text, "garbage 4\n"));
    assert_null(strstr(text, "garbage 5\n"));
    assert_non_null(strstr(text, "info: sip: 995 messages suppressed\n"));
    assert_non_null(strstr(text, "garbage again\n"));
    assert_null(strstr(text, "not"));
    assert_int_equal(l.suppressed, 0);
    /* No log: nothing, no crash. */
    p2p_logf_limited(NULL, &l, 0, P2P_LOG_ERR, "x");
}

struct item {
    int v;
    struct p2p_list link;
};

/* The values of head's items in list order into out; their count. */
static size_t list_values(struct p2p_list *head, int *out, size_t max)
{
    struct p2p_list *it;
    size_t n = 0;

    P2P_LIST_FOREACH(it, head)
    {
        if (n < max)
            out[n] = P2P_LIST_ENTRY(it, struct item, link)->v;
        n++;
    }
    return n;
}

static void test_list(void **state)
{
    struct p2p_list head, *it, *tmp;
    struct item a = {1, {NULL, NULL}}, b = {2, {NULL, NULL}}, c = {3, {NULL, NULL}};
    int v[4];

    (void)state;
    p2p_list_init(&head);
    assert_true(p2p_list_empty(&head));
    p2p_list_push_front(&head, &a.link);
    p2p_list_push_front(&head, &b.link);
    p2p_list_push_front(&head, &c.link);
    assert_false(p2p_list_empty(&head));
    assert_int_equal(list_values(&head, v, 4), 3);
    assert_int_equal(v[0], 3);
    assert_int_equal(v[1], 2);
    assert_int_equal(v[2], 1);
    /* The middle one out; removing it again changes nothing. */
    p2p_list_remove(&b.link);
    p2p_list_remove(&b.link);
    assert_int_equal(list_values(&head, v, 4), 2);
    assert_int_equal(v[0], 3);
    assert_int_equal(v[1], 1);
    /* Removal while walking, as the free paths do. */
    P2P_LIST_FOREACH_SAFE(it, tmp, &head)
    {
        p2p_list_remove(it);
    }
    assert_true(p2p_list_empty(&head));
    assert_true(p2p_list_empty(&a.link));
    assert_true(p2p_list_empty(&c.link));
}

static void test_wall_clock(void **state)
{
    /* Unix time in ms, not seconds or a monotonic clock: past 2020-01-01 and
     * before 2100-01-01 (a wall clock may step back, so no ordering is asserted). */
    uint64_t t = p2p_wall_ms();

    (void)state;
    assert_true(t > 1577836800000ull);
    assert_true(t < 4102444800000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_compare), cmocka_unit_test(test_slice_numbers),
        cmocka_unit_test(test_hex_and_errf),  cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_log_levels),    cmocka_unit_test(test_list),
        cmocka_unit_test(test_wall_clock),    cmocka_unit_test(test_log_limit_bucket),
        cmocka_unit_test(test_log_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
