/*
 * test_dht_id.c: ring arithmetic on 160-bit IDs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/dht_id.h"

static struct dht_id id_hex(const char *h)
{
    struct dht_id id;
    assert_int_equal(dht_id_from_hex(&id, h, strlen(h)), 0);
    return id;
}

static void test_digits_and_prefix(void **state)
{
    (void)state;
    struct dht_id a = id_hex("abcdef0000000000000000000000000000000001");
    struct dht_id b = id_hex("abcde00000000000000000000000000000000001");
    assert_int_equal(dht_id_digit(&a, 0), 0xa);
    assert_int_equal(dht_id_digit(&a, 5), 0xf);
    assert_int_equal(dht_id_digit(&a, 39), 1);
    assert_int_equal(dht_id_shared_prefix(&a, &b), 5);
    assert_int_equal(dht_id_shared_prefix(&a, &a), 40);
    char hex[DHT_ID_HEX_LEN + 1];
    dht_id_to_hex(&a, hex);
    assert_string_equal(hex, "abcdef0000000000000000000000000000000001");
    struct dht_id bad;
    assert_int_equal(dht_id_from_hex(&bad, "xyz", 3), -EINVAL);
    assert_int_equal(dht_id_from_hex(&bad, "g000000000000000000000000000000000000000", 40),
                     -EINVAL);
}

static void test_distance_wraps(void **state)
{
    (void)state;
    struct dht_id lo = id_hex("0000000000000000000000000000000000000002");
    struct dht_id hi = id_hex("fffffffffffffffffffffffffffffffffffffffe");
    struct dht_id d;
    struct dht_id four = id_hex("0000000000000000000000000000000000000004");
    dht_id_distance(&d, &lo, &hi);
    assert_memory_equal(&d, &four, 20);
    dht_id_distance(&d, &hi, &lo);
    assert_memory_equal(&d, &four, 20);
}

static void test_closer_and_ties(void **state)
{
    (void)state;
    struct dht_id key = id_hex("8000000000000000000000000000000000000000");
    struct dht_id x = id_hex("7ffffffffffffffffffffffffffffffffffffff0");
    struct dht_id y = id_hex("8000000000000000000000000000000000000020");
    assert_true(dht_id_closer(&key, &x, &y) < 0);
    assert_true(dht_id_closer(&key, &y, &x) > 0);
    /* Equal distance on both sides: the smaller ID wins, whatever the order. */
    struct dht_id l = id_hex("7ffffffffffffffffffffffffffffffffffffff0");
    struct dht_id r = id_hex("8000000000000000000000000000000000000010");
    assert_true(dht_id_closer(&key, &l, &r) < 0);
    assert_true(dht_id_closer(&key, &r, &l) > 0);
    assert_int_equal(dht_id_closer(&key, &l, &l), 0);
}

static void test_hash_is_blake2b_160(void **state)
{
    (void)state;
    struct dht_id a, b;
    dht_id_hash(&a, "sip:alice@example.org", 21);
    dht_id_hash(&b, "sip:alice@example.org", 21);
    assert_memory_equal(&a, &b, 20);
    dht_id_hash(&b, "sip:alice@example.com", 21);
    assert_memory_not_equal(&a, &b, 20);
    /* BLAKE2b with a 20-byte digest of "" (RFC 7693 parameters, libsodium). */
    dht_id_hash(&a, "", 0);
    struct dht_id empty = id_hex("3345524abf6bbe1809449224b5972c41790b6cf2");
    assert_memory_equal(&a, &empty, 20);
}

static void test_unit_position(void **state)
{
    (void)state;
    struct dht_id h = id_hex("8000000000000000000000000000000000000000");
    assert_true(dht_id_to_unit(&h) == 0.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits_and_prefix), cmocka_unit_test(test_distance_wraps),
        cmocka_unit_test(test_closer_and_ties),   cmocka_unit_test(test_hash_is_blake2b_160),
        cmocka_unit_test(test_unit_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
