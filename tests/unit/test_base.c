/*
 * test_base.c: slices, bounded buffers and log-level parsing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
        cmocka_unit_test(test_wall_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
