/*
 * test_dht_store.c: the record store's rules (one test per numbered rule in
 * dht_store.h), expiry and tombstones, owner claims, caps, ring-ordered ranges and
 * continuation, anti-entropy summaries, and the sqlite copy (reopen, group commit,
 * kill -9, a shared connection, rows that must not load).
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "p2p/dht_store.h"

#define T0 1000000000ull /* "now" in the tests, ms */
#define MIN 60000ull

struct keypair {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

static struct keypair alice, mallory;

static void keypair_from(struct keypair *kp, uint8_t seed_byte)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, seed_byte, sizeof(seed));
    assert_int_equal(crypto_sign_seed_keypair(kp->pk, kp->sk, seed), 0);
}

static struct dht_id id_top(uint8_t top, uint8_t low)
{
    struct dht_id id;
    memset(&id, 0, sizeof(id));
    id.b[0] = top;
    id.b[DHT_ID_LEN - 1] = low;
    return id;
}

static struct dht_id id_hex(const char *h)
{
    struct dht_id id;
    assert_int_equal(dht_id_from_hex(&id, h, strlen(h)), 0);
    return id;
}

/* A signed record; value is a string literal (static storage). */
static struct dht_record rec_make(const struct keypair *kp, struct dht_id key, uint8_t vid,
                                  uint64_t seq, uint64_t expiry, const char *value)
{
    struct dht_record r;
    memset(&r, 0, sizeof(r));
    r.key = key;
    r.value_id = id_top(0, vid);
    r.seq = seq;
    r.expiry_ms = expiry;
    r.tombstone = value == NULL;
    r.value = (const uint8_t *)value;
    r.value_len = value != NULL ? strlen(value) : 0;
    assert_int_equal(dht_record_sign(&r, kp->sk), 0);
    return r;
}

static struct dht_store *mem_store(size_t max_records, unsigned max_per_key)
{
    struct dht_store_config cfg;
    struct dht_store *s;
    dht_store_config_init(&cfg);
    if (max_records)
        cfg.max_records = max_records;
    if (max_per_key)
        cfg.max_values_per_key = max_per_key;
    assert_int_equal(dht_store_new(&s, &cfg), 0);
    return s;
}

static size_t n_live(struct dht_store *s, struct dht_id key, uint64_t now)
{
    struct dht_record out[80];
    size_t n = 99;
    assert_int_equal(dht_store_get(s, &key, now, out, 80, &n), 0);
    return n;
}

static void test_put_get_order_and_max(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x10, 1), other = id_top(0x10, 2);
    struct dht_record out[4];
    size_t n;

    /* Inserted out of value-id order; returned in value-id order. */
    struct dht_record r3 = rec_make(&alice, k, 3, 1, T0 + MIN, "three");
    struct dht_record r1 = rec_make(&alice, k, 1, 1, T0 + MIN, "one");
    struct dht_record r2 = rec_make(&alice, k, 2, 1, T0 + MIN, "two");
    assert_int_equal(dht_store_put(s, &r3, T0), 0);
    assert_int_equal(dht_store_put(s, &r1, T0), 0);
    assert_int_equal(dht_store_put(s, &r2, T0), 0);
    struct dht_record ro = rec_make(&alice, other, 1, 1, T0 + MIN, "other key");
    assert_int_equal(dht_store_put(s, &ro, T0), 0);

    assert_int_equal(dht_store_get(s, &k, T0, out, 4, &n), 0);
    assert_int_equal(n, 3);
    assert_true(dht_record_equal(&out[0], &r1));
    assert_true(dht_record_equal(&out[1], &r2));
    assert_true(dht_record_equal(&out[2], &r3));
    assert_int_equal(dht_record_verify(&out[1]), 0);

    /* max caps the answer (the seed ignored maxvalues). */
    assert_int_equal(dht_store_get(s, &k, T0, out, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_true(dht_record_equal(&out[1], &r2));
    assert_int_equal(dht_store_get(s, &k, T0, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dht_store_get(s, &k, T0, NULL, 1, &n), -EINVAL);

    struct dht_id none = id_top(0x11, 0);
    assert_int_equal(n_live(s, none, T0), 0);
    dht_store_free(s);
}

static void test_rule_bad_signature(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x20, 0);
    struct dht_record r = rec_make(&alice, k, 1, 1, T0 + MIN, "v");
    struct dht_record_ident id;
    struct dht_store_stats st;
    struct dht_record f;
    size_t n;
    bool more;

    r.seq = 2; /* changed after signing */
    assert_int_equal(dht_store_put(s, &r, T0), -EBADMSG);
    r = rec_make(&alice, k, 1, 1, T0 + MIN, "v");
    r.sig[3] ^= 4;
    assert_int_equal(dht_store_put(s, &r, T0), -EBADMSG);
    /* Never stored, never returned by any path. */
    assert_int_equal(n_live(s, k, T0), 0);
    assert_int_equal(dht_store_find(s, &k, &r.value_id, T0, &f), -ENOENT);
    assert_int_equal(dht_store_list(s, &k, &k, NULL, T0, &id, 1, &n, &more), 0);
    assert_int_equal(n, 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.refused_badsig, 2);
    assert_int_equal(st.records, 0);

    /* A bad-signature record does not claim the key either. */
    struct dht_record m = rec_make(&mallory, k, 1, 1, T0 + MIN, "m");
    assert_int_equal(dht_store_put(s, &m, T0), 0);
    dht_store_free(s);
}

static void test_rule_invalid_form(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_record r = rec_make(&alice, id_top(0x21, 0), 1, 1, T0 + MIN, "v");
    struct dht_store_stats st;

    r.tombstone = true; /* a tombstone with a value */
    assert_int_equal(dht_store_put(s, &r, T0), -EINVAL);
    r.tombstone = false;
    r.value_len = DHT_RECORD_VALUE_MAX + 1;
    assert_int_equal(dht_store_put(s, &r, T0), -EINVAL);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.refused_invalid, 2);
    dht_store_free(s);
}

static void test_rule_expired_and_ttl(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x30, 0);
    struct dht_store_stats st;

    struct dht_record past = rec_make(&alice, k, 1, 1, T0 - 1, "old");
    struct dht_record edge = rec_make(&alice, k, 1, 1, T0, "edge"); /* dead at T0 */
    struct dht_record tomb = rec_make(&alice, k, 2, 1, T0, NULL);
    assert_int_equal(dht_store_put(s, &past, T0), -ETIMEDOUT);
    assert_int_equal(dht_store_put(s, &edge, T0), -ETIMEDOUT);
    assert_int_equal(dht_store_put(s, &tomb, T0), -ETIMEDOUT);

    /* Default max TTL is 24 h: a record may not hold a key for a year. */
    struct dht_record year = rec_make(&alice, k, 1, 1, T0 + 365 * 24 * 60 * MIN, "y");
    assert_int_equal(dht_store_put(s, &year, T0), -ERANGE);
    struct dht_record day = rec_make(&alice, k, 1, 1, T0 + 24 * 60 * MIN, "d");
    assert_int_equal(dht_store_put(s, &day, T0), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.refused_expired, 3);
    assert_int_equal(st.refused_ttl, 1);
    assert_int_equal(st.stored, 1);
    dht_store_free(s);
}

static void test_rule_owner_claim(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x40, 0);
    struct dht_record out[2];
    size_t n;

    struct dht_record a1 = rec_make(&alice, k, 1, 1, T0 + 10 * MIN, "alice");
    assert_int_equal(dht_store_put(s, &a1, T0), 0);

    /* Mallory can neither add a value, overwrite alice's, nor remove it. */
    struct dht_record m_add = rec_make(&mallory, k, 2, 1, T0 + MIN, "mallory");
    struct dht_record m_over = rec_make(&mallory, k, 1, 99, T0 + MIN, "mallory");
    struct dht_record m_rm = rec_make(&mallory, k, 1, 100, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(s, &m_add, T0), -EPERM);
    assert_int_equal(dht_store_put(s, &m_over, T0), -EPERM);
    assert_int_equal(dht_store_put(s, &m_rm, T0), -EPERM);
    assert_int_equal(dht_store_get(s, &k, T0, out, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_true(dht_record_equal(&out[0], &a1));

    /* Alice's own tombstone keeps the claim too. */
    struct dht_record a_rm = rec_make(&alice, k, 1, 2, T0 + 10 * MIN, NULL);
    assert_int_equal(dht_store_put(s, &a_rm, T0), 0);
    assert_int_equal(n_live(s, k, T0), 0);
    assert_int_equal(dht_store_put(s, &m_add, T0), -EPERM);

    struct dht_store_stats st;
    dht_store_get_stats(s, &st);
    assert_int_equal(st.refused_owner, 4);
    dht_store_free(s);
}

static void test_claim_released_after_expiry(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x41, 0);

    struct dht_record a1 = rec_make(&alice, k, 1, 1, T0 + MIN, "a1");
    struct dht_record a2 = rec_make(&alice, k, 2, 1, T0 + 2 * MIN, "a2");
    assert_int_equal(dht_store_put(s, &a1, T0), 0);
    assert_int_equal(dht_store_put(s, &a2, T0), 0);

    /* One value expired, one left: still alice's. */
    struct dht_record m = rec_make(&mallory, k, 3, 1, T0 + 3 * MIN, "m");
    assert_int_equal(dht_store_put(s, &m, T0 + MIN), -EPERM);
    assert_int_equal(n_live(s, k, T0 + MIN), 1);

    /* Both expired: the key is free even before a sweep... */
    assert_int_equal(dht_store_put(s, &m, T0 + 2 * MIN), 0);
    assert_int_equal(n_live(s, k, T0 + 2 * MIN), 1);
    /* ...and now mallory holds it against alice. */
    struct dht_record a3 = rec_make(&alice, k, 1, 5, T0 + 3 * MIN, "a3");
    assert_int_equal(dht_store_put(s, &a3, T0 + 2 * MIN), -EPERM);

    /* After the sweep the dead records are gone and the claim follows the live one. */
    assert_int_equal(dht_store_expire(s, T0 + 2 * MIN), 2);
    struct dht_store_stats st;
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(dht_store_expire(s, T0 + 3 * MIN), 1);
    assert_int_equal(dht_store_put(s, &a3, T0 + 3 * MIN - 1), 0);
    dht_store_free(s);
}

static void test_rule_seq_replay_and_replace(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x50, 0);
    struct dht_record out[1], f;
    size_t n;

    struct dht_record v5 = rec_make(&alice, k, 1, 5, T0 + MIN, "five");
    assert_int_equal(dht_store_put(s, &v5, T0), 0);
    /* Identical replay: its own code, so a replica can acknowledge it. */
    assert_int_equal(dht_store_put(s, &v5, T0), -EALREADY);
    /* Older, and same seq with other content: stale. */
    struct dht_record v4 = rec_make(&alice, k, 1, 4, T0 + 5 * MIN, "four");
    struct dht_record v5b = rec_make(&alice, k, 1, 5, T0 + 5 * MIN, "five again");
    assert_int_equal(dht_store_put(s, &v4, T0), -ESTALE);
    assert_int_equal(dht_store_put(s, &v5b, T0), -ESTALE);
    assert_int_equal(dht_store_find(s, &k, &v5.value_id, T0, &f), 0);
    assert_true(dht_record_equal(&f, &v5));

    /* Newer replaces (even with an earlier expiry). */
    struct dht_record v6 = rec_make(&alice, k, 1, 6, T0 + MIN / 2, "six");
    assert_int_equal(dht_store_put(s, &v6, T0), 0);
    assert_int_equal(dht_store_get(s, &k, T0, out, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_true(dht_record_equal(&out[0], &v6));
    assert_int_equal(dht_store_put(s, &v5, T0), -ESTALE);

    struct dht_store_stats st;
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.replaced, 1);
    assert_int_equal(st.refused_replay, 1);
    assert_int_equal(st.refused_stale, 3);
    dht_store_free(s);
}

static void test_tombstone_semantics(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x60, 0);
    struct dht_record f;
    struct dht_store_stats st;

    struct dht_record put = rec_make(&alice, k, 1, 1, T0 + 10 * MIN, "bound");
    assert_int_equal(dht_store_put(s, &put, T0), 0);
    /* The remove expires before the put would have: it is kept until the put's
     * expiry anyway, so a late replica copy of the put cannot come back. */
    struct dht_record rm = rec_make(&alice, k, 1, 2, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(s, &rm, T0), 0);
    assert_int_equal(n_live(s, k, T0), 0);
    assert_int_equal(dht_store_find(s, &k, &put.value_id, T0, &f), 0);
    assert_true(f.tombstone);
    assert_true(dht_record_equal(&f, &rm));
    dht_store_get_stats(s, &st);
    assert_int_equal(st.tombstones, 1);

    /* Past the tombstone's own expiry, still before the put's: still there. */
    assert_int_equal(dht_store_expire(s, T0 + 5 * MIN), 0);
    assert_int_equal(dht_store_find(s, &k, &put.value_id, T0 + 5 * MIN, &f), 0);
    assert_int_equal(dht_store_put(s, &put, T0 + 5 * MIN), -ESTALE);
    struct dht_record same_seq = rec_make(&alice, k, 1, 2, T0 + 10 * MIN, "again");
    assert_int_equal(dht_store_put(s, &same_seq, T0 + 5 * MIN), -ESTALE);
    assert_int_equal(n_live(s, k, T0 + 5 * MIN), 0);
    /* Tombstone replayed after its own expiry: identical, acknowledged. */
    assert_int_equal(dht_store_put(s, &rm, T0 + 5 * MIN), -EALREADY);

    /* Gone at the put's expiry. */
    assert_int_equal(dht_store_find(s, &k, &put.value_id, T0 + 10 * MIN, &f), -ENOENT);
    assert_int_equal(dht_store_expire(s, T0 + 10 * MIN), 1);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.tombstones, 0);
    dht_store_free(s);
}

static void test_tombstone_then_newer_put(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x61, 0);
    struct dht_record out[1];
    size_t n;

    /* A remove for a value never seen is kept: it blocks an older put arriving late. */
    struct dht_record rm = rec_make(&alice, k, 1, 3, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(s, &rm, T0), 0);
    struct dht_record late = rec_make(&alice, k, 1, 2, T0 + MIN, "late");
    assert_int_equal(dht_store_put(s, &late, T0), -ESTALE);
    /* A re-registration with a higher seq replaces the tombstone. */
    struct dht_record back = rec_make(&alice, k, 1, 4, T0 + MIN, "back");
    assert_int_equal(dht_store_put(s, &back, T0), 0);
    assert_int_equal(dht_store_get(s, &k, T0, out, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_true(dht_record_equal(&out[0], &back));
    dht_store_free(s);
}

static void test_expired_never_returned(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(0, 0);
    struct dht_id k = id_top(0x70, 0);
    struct dht_record f;
    struct dht_record_ident ids[4];
    struct dht_store_summary sum;
    size_t n;
    bool more;

    struct dht_record r = rec_make(&alice, k, 1, 1, T0 + MIN, "v");
    assert_int_equal(dht_store_put(s, &r, T0), 0);
    assert_int_equal(n_live(s, k, T0 + MIN - 1), 1);
    /* At and after the expiry instant nothing returns it, before any sweep. */
    for (uint64_t t = T0 + MIN; t < T0 + MIN + 3; t++) {
        assert_int_equal(n_live(s, k, t), 0);
        assert_int_equal(dht_store_find(s, &k, &r.value_id, t, &f), -ENOENT);
        assert_int_equal(dht_store_list(s, &k, &k, NULL, t, ids, 4, &n, &more), 0);
        assert_int_equal(n, 0);
        assert_int_equal(dht_store_summarize(s, &k, &k, t, &sum), 0);
        assert_int_equal(sum.count, 0);
    }
    assert_int_equal(dht_store_expire(s, T0 + MIN - 1), 0);
    assert_int_equal(dht_store_expire(s, T0 + MIN), 1);
    assert_int_equal(dht_store_expire(s, T0 + MIN), 0);
    dht_store_free(s);
}

static void test_caps(void **state)
{
    (void)state;
    struct dht_store *s = mem_store(6, 3);
    struct dht_id k = id_top(0x80, 0);
    struct dht_store_stats st;

    for (uint8_t v = 1; v <= 3; v++) {
        struct dht_record r = rec_make(&alice, k, v, 1, T0 + MIN, "v");
        assert_int_equal(dht_store_put(s, &r, T0), 0);
    }
    struct dht_record r4 = rec_make(&alice, k, 4, 1, T0 + MIN, "v");
    assert_int_equal(dht_store_put(s, &r4, T0), -ENOSPC);
    /* Replacing a value under a full key is not a new value. */
    struct dht_record r2 = rec_make(&alice, k, 2, 2, T0 + 2 * MIN, "v2");
    assert_int_equal(dht_store_put(s, &r2, T0), 0);
    /* Expired values do not count against the key. */
    assert_int_equal(dht_store_put(s, &r4, T0 + MIN), -ETIMEDOUT);
    struct dht_record r4b = rec_make(&alice, k, 4, 1, T0 + 3 * MIN, "v");
    assert_int_equal(dht_store_put(s, &r4b, T0 + MIN), 0);

    /* Store-wide cap: 4 records held (2 of them dead but not swept) + 2 = 6. */
    struct dht_id k2 = id_top(0x81, 0);
    for (uint8_t v = 1; v <= 2; v++) {
        struct dht_record r = rec_make(&alice, k2, v, 1, T0 + 3 * MIN, "w");
        assert_int_equal(dht_store_put(s, &r, T0 + MIN), 0);
    }
    struct dht_record r3 = rec_make(&alice, k2, 3, 1, T0 + 3 * MIN, "w");
    assert_int_equal(dht_store_put(s, &r3, T0 + MIN), -ENOSPC);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.refused_full, 2);
    assert_int_equal(st.records, 6);
    /* The sweep makes room. */
    assert_int_equal(dht_store_expire(s, T0 + MIN), 2);
    assert_int_equal(dht_store_put(s, &r3, T0 + MIN), 0);
    dht_store_free(s);

    /* Value bytes: 10 bytes allowed in all. */
    struct dht_store_config cfg;
    dht_store_config_init(&cfg);
    cfg.max_value_bytes = 10;
    assert_int_equal(dht_store_new(&s, &cfg), 0);
    struct dht_record b6 = rec_make(&alice, k, 1, 1, T0 + MIN, "123456");
    struct dht_record b5 = rec_make(&alice, k, 2, 1, T0 + MIN, "12345");
    struct dht_record b4 = rec_make(&alice, k, 2, 1, T0 + MIN, "1234");
    assert_int_equal(dht_store_put(s, &b6, T0), 0);
    assert_int_equal(dht_store_put(s, &b5, T0), -ENOSPC);
    assert_int_equal(dht_store_put(s, &b4, T0), 0);
    /* A replacement only needs room for what it adds; a tombstone frees. */
    struct dht_record b6b = rec_make(&alice, k, 1, 2, T0 + MIN, "abcdef");
    struct dht_record b7 = rec_make(&alice, k, 1, 3, T0 + MIN, "abcdefg");
    assert_int_equal(dht_store_put(s, &b6b, T0), 0);
    assert_int_equal(dht_store_put(s, &b7, T0), -ENOSPC);
    struct dht_record rm = rec_make(&alice, k, 2, 2, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(s, &rm, T0), 0);
    assert_int_equal(dht_store_put(s, &b7, T0), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.value_bytes, 7);
    assert_int_equal(st.refused_full, 2);
    dht_store_free(s);
}

/* ---- ranges ------------------------------------------------------------------ */

struct collect {
    struct dht_id keys[32];
    size_t n;
};

static int collect_cb(const struct dht_record *rec, void *arg)
{
    struct collect *c = arg;
    assert_true(c->n < 32);
    c->keys[c->n++] = rec->key;
    return 0;
}

static int stop_cb(const struct dht_record *rec, void *arg)
{
    (void)rec;
    int *calls = arg;
    return ++*calls == 2 ? 7 : 0;
}

static struct dht_store *ring_store(void)
{
    struct dht_store *s = mem_store(0, 0);
    static const uint8_t tops[] = {0x00, 0x10, 0x50, 0x90, 0xe0, 0xff};
    for (size_t i = 0; i < sizeof(tops); i++) {
        struct dht_record r = rec_make(&alice, id_top(tops[i], 0), 1, 1, T0 + MIN, "x");
        assert_int_equal(dht_store_put(s, &r, T0), 0);
    }
    return s;
}

static void assert_tops(const struct collect *c, const uint8_t *tops, size_t n)
{
    assert_int_equal(c->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c->keys[i].b[0], tops[i]);
}

static void test_range_walk_wraps(void **state)
{
    (void)state;
    struct dht_store *s = ring_store();
    struct collect c;
    struct dht_id lo, hi;

    /* Plain range. */
    lo = id_top(0x10, 0);
    hi = id_top(0x90, 0);
    c.n = 0;
    assert_int_equal(dht_store_visit_range(s, &lo, &hi, T0, collect_cb, &c), 0);
    assert_tops(&c, (const uint8_t[]){0x10, 0x50, 0x90}, 3);

    /* Wrapping range, in ring order from low: e0, ff, then 00, 10. */
    lo = id_top(0xa0, 0);
    hi = id_top(0x10, 0);
    c.n = 0;
    assert_int_equal(dht_store_visit_range(s, &lo, &hi, T0, collect_cb, &c), 0);
    assert_tops(&c, (const uint8_t[]){0xe0, 0xff, 0x00, 0x10}, 4);

    /* Whole ring starting mid-way: low = high + 1. */
    lo = id_top(0x50, 0);
    hi = id_hex("4fffffffffffffffffffffffffffffffffffffff");
    c.n = 0;
    assert_int_equal(dht_store_visit_range(s, &lo, &hi, T0, collect_cb, &c), 0);
    assert_tops(&c, (const uint8_t[]){0x50, 0x90, 0xe0, 0xff, 0x00, 0x10}, 6);

    /* A single ID. */
    lo = hi = id_top(0x90, 0);
    c.n = 0;
    assert_int_equal(dht_store_visit_range(s, &lo, &hi, T0, collect_cb, &c), 0);
    assert_tops(&c, (const uint8_t[]){0x90}, 1);

    /* The callback stops the walk and its value comes back. */
    int calls = 0;
    lo = id_top(0, 0);
    hi = id_hex("ffffffffffffffffffffffffffffffffffffffff");
    assert_int_equal(dht_store_visit_range(s, &lo, &hi, T0, stop_cb, &calls), 7);
    assert_int_equal(calls, 2);
    dht_store_free(s);
}

static void test_list_pages_with_continuation(void **state)
{
    (void)state;
    struct dht_store *s = ring_store();
    struct dht_id lo = id_top(0x80, 0), hi = id_top(0x60, 0); /* wraps */
    struct dht_record_ident page[2], all[8];
    size_t n, total = 0;
    bool more = true;
    const struct dht_record_ident *after = NULL;
    int pages = 0;

    /* A second value under 0x00, so a page boundary can fall inside a key. */
    struct dht_record extra = rec_make(&alice, id_top(0x00, 0), 2, 9, T0 + MIN, "y");
    assert_int_equal(dht_store_put(s, &extra, T0), 0);

    while (more) {
        assert_true(pages++ < 10);
        assert_int_equal(dht_store_list(s, &lo, &hi, after, T0, page, 2, &n, &more), 0);
        for (size_t i = 0; i < n; i++)
            all[total++] = page[i];
        after = &all[total - 1];
    }
    /* 90, e0, ff, 00/1, 00/2, 10, 50: seven in ring order, over four pages. */
    assert_int_equal(total, 7);
    assert_int_equal(pages, 4);
    static const uint8_t tops[] = {0x90, 0xe0, 0xff, 0x00, 0x00, 0x10, 0x50};
    for (size_t i = 0; i < total; i++)
        assert_int_equal(all[i].key.b[0], tops[i]);
    assert_int_equal(all[3].value_id.b[19], 1);
    assert_int_equal(all[4].value_id.b[19], 2);
    assert_true(all[4].seq == 9);
    assert_false(all[4].tombstone);

    /* Continuation from an identity that is no longer stored still works. */
    struct dht_record_ident gone = {.key = id_top(0xa0, 0)};
    assert_int_equal(dht_store_list(s, &lo, &hi, &gone, T0, page, 2, &n, &more), 0);
    assert_int_equal(n, 2);
    assert_int_equal(page[0].key.b[0], 0xe0);
    assert_true(more);
    /* An after outside the range is refused. */
    struct dht_record_ident outside = {.key = id_top(0x70, 0)};
    assert_int_equal(dht_store_list(s, &lo, &hi, &outside, T0, page, 2, &n, &more), -EINVAL);
    dht_store_free(s);
}

static void test_drop_range(void **state)
{
    (void)state;
    struct dht_store *s = ring_store(); /* keys 00 10 50 90 e0 ff */
    struct dht_id lo = id_top(0xe0, 0), hi = id_top(0x10, 0), all_lo = id_top(0, 0);
    struct dht_id all_hi = id_hex("ffffffffffffffffffffffffffffffffffffffff");
    struct dht_store_stats st;
    struct collect c;

    /* A tombstone in the range goes too. */
    struct dht_record t = rec_make(&alice, id_top(0xff, 0), 2, 1, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(s, &t, T0), 0);
    assert_int_equal(dht_store_drop_range(s, &lo, &hi), 5); /* e0 ff ff/2 00 10 */
    c.n = 0;
    assert_int_equal(dht_store_visit_range(s, &all_lo, &all_hi, T0, collect_cb, &c), 0);
    assert_tops(&c, (const uint8_t[]){0x50, 0x90}, 2);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.tombstones, 0);
    assert_int_equal(st.dropped, 5);
    /* The key is no longer claimed here. */
    struct dht_record m = rec_make(&mallory, id_top(0xe0, 0), 1, 1, T0 + MIN, "m");
    assert_int_equal(dht_store_put(s, &m, T0), 0);
    dht_store_free(s);
}

/* ---- summaries ------------------------------------------------------------------ */

#define SUM_N 40

static void summary_records(struct dht_record *r, struct keypair *kps)
{
    for (unsigned i = 0; i < SUM_N; i++) {
        struct dht_id k;
        uint8_t seed[4] = {(uint8_t)i, 0x5a, 0x5a, 0x5a};
        dht_id_hash(&k, seed, sizeof(seed));
        /* Spread over three owners, one in five a tombstone. */
        r[i] = rec_make(&kps[i % 3], k, 1, i + 1, T0 + MIN, i % 5 ? "val" : NULL);
    }
}

static void test_summaries_canonical(void **state)
{
    (void)state;
    struct keypair kps[3];
    struct dht_record r[SUM_N];
    struct dht_store *a = mem_store(0, 0), *b = mem_store(0, 0);
    struct dht_store_summary sa, sb, a16[16], b16[16];
    struct dht_id lo = id_top(0xc0, 0), hi = id_top(0x40, 0); /* wraps */

    keypair_from(&kps[0], 11);
    keypair_from(&kps[1], 12);
    keypair_from(&kps[2], 13);
    summary_records(r, kps);
    for (unsigned i = 0; i < SUM_N; i++)
        assert_int_equal(dht_store_put(a, &r[i], T0), 0);
    for (unsigned i = SUM_N; i-- > 0;) /* reverse order */
        assert_int_equal(dht_store_put(b, &r[(i * 7) % SUM_N], T0), 0);

    assert_int_equal(dht_store_summarize(a, &lo, &hi, T0, &sa), 0);
    assert_int_equal(dht_store_summarize(b, &lo, &hi, T0, &sb), 0);
    assert_true(sa.count > 5 && sa.count < SUM_N);
    assert_int_equal(sa.count, sb.count);
    assert_memory_equal(sa.digest, sb.digest, DHT_STORE_DIGEST_LEN);
    assert_int_equal(dht_store_summarize16(a, &lo, &hi, T0, a16), 0);
    assert_int_equal(dht_store_summarize16(b, &lo, &hi, T0, b16), 0);
    assert_memory_equal(a16, b16, sizeof(a16));

    /* The 16 sub-ranges partition the range: counts add up, each matches a
     * summary of its own bounds, and they tile [low, high] in order. */
    uint32_t sum = 0;
    struct dht_id prev_hi = hi, one = id_top(0, 1), next;
    bool first = true;
    for (unsigned i = 0; i < 16; i++) {
        struct dht_id sl, sh;
        struct dht_store_summary one_sum;
        sum += a16[i].count;
        if (dht_store_subrange(&lo, &hi, i, &sl, &sh) < 0) {
            assert_int_equal(a16[i].count, 0);
            continue;
        }
        if (first)
            assert_memory_equal(&sl, &lo, sizeof(sl));
        else {
            dht_id_sub(&next, &sl, &one);
            assert_memory_equal(&next, &prev_hi, sizeof(next));
        }
        first = false;
        prev_hi = sh;
        assert_int_equal(dht_store_summarize(a, &sl, &sh, T0, &one_sum), 0);
        assert_int_equal(one_sum.count, a16[i].count);
        assert_memory_equal(one_sum.digest, a16[i].digest, DHT_STORE_DIGEST_LEN);
    }
    assert_memory_equal(&prev_hi, &hi, sizeof(hi));
    assert_int_equal(sum, sa.count);

    /* One record differs (a newer seq in b): the total and exactly one sub-range
     * digest differ. */
    struct dht_record_ident ids[SUM_N];
    size_t n;
    bool more;
    assert_int_equal(dht_store_list(a, &lo, &hi, NULL, T0, ids, SUM_N, &n, &more), 0);
    assert_int_equal(n, sa.count);
    struct dht_record cur;
    assert_int_equal(dht_store_find(b, &ids[n / 2].key, &ids[n / 2].value_id, T0, &cur), 0);
    unsigned owner = 0;
    for (unsigned j = 0; j < 3; j++)
        if (memcmp(cur.owner, kps[j].pk, 32) == 0)
            owner = j;
    struct dht_record newer =
        rec_make(&kps[owner], cur.key, 1, cur.seq + 1, T0 + MIN, cur.tombstone ? NULL : "val");
    assert_int_equal(dht_store_put(b, &newer, T0), 0);
    assert_int_equal(dht_store_summarize(b, &lo, &hi, T0, &sb), 0);
    assert_int_equal(sa.count, sb.count);
    assert_memory_not_equal(sa.digest, sb.digest, DHT_STORE_DIGEST_LEN);
    assert_int_equal(dht_store_summarize16(b, &lo, &hi, T0, b16), 0);
    unsigned differing = 0;
    for (unsigned i = 0; i < 16; i++)
        differing += memcmp(a16[i].digest, b16[i].digest, DHT_STORE_DIGEST_LEN) != 0;
    assert_int_equal(differing, 1);

    /* Same identities, only the tombstone flag differs: digests differ. */
    struct dht_store *c = mem_store(0, 0), *d = mem_store(0, 0);
    struct dht_id k = id_top(0x01, 0);
    struct dht_record v = rec_make(&alice, k, 1, 1, T0 + MIN, "x");
    struct dht_record t = rec_make(&alice, k, 1, 1, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(c, &v, T0), 0);
    assert_int_equal(dht_store_put(d, &t, T0), 0);
    assert_int_equal(dht_store_summarize(c, &lo, &hi, T0, &sa), 0);
    assert_int_equal(dht_store_summarize(d, &lo, &hi, T0, &sb), 0);
    assert_int_equal(sa.count, 1);
    assert_memory_not_equal(sa.digest, sb.digest, DHT_STORE_DIGEST_LEN);

    /* Empty ranges agree on the empty digest. */
    struct dht_store *e = mem_store(0, 0);
    struct dht_id elo = id_top(0x70, 0), ehi = id_top(0x7f, 0);
    assert_int_equal(dht_store_summarize(e, &elo, &ehi, T0, &sa), 0);
    assert_int_equal(dht_store_summarize(c, &elo, &ehi, T0, &sb), 0);
    assert_int_equal(sb.count, 0);
    assert_memory_equal(sa.digest, sb.digest, DHT_STORE_DIGEST_LEN);

    dht_store_free(a);
    dht_store_free(b);
    dht_store_free(c);
    dht_store_free(d);
    dht_store_free(e);
}

static void test_subrange_small_and_full(void **state)
{
    (void)state;
    struct dht_id lo, hi, sl, sh;

    /* A span of 3 IDs: sub-ranges 0..2 are single IDs, the rest empty. */
    lo = id_hex("fffffffffffffffffffffffffffffffffffffffe");
    hi = id_top(0, 0);
    struct dht_id ff = id_hex("ffffffffffffffffffffffffffffffffffffffff");
    const struct dht_id *expect[3] = {&lo, &ff, &hi};
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(dht_store_subrange(&lo, &hi, i, &sl, &sh), 0);
        assert_memory_equal(&sl, expect[i], sizeof(sl));
        assert_memory_equal(&sh, expect[i], sizeof(sh));
    }
    assert_int_equal(dht_store_subrange(&lo, &hi, 2, &sl, &sh), 0);
    assert_memory_equal(&sl, &hi, sizeof(sl));
    assert_int_equal(dht_store_subrange(&lo, &hi, 3, &sl, &sh), -ENOENT);
    assert_int_equal(dht_store_subrange(&lo, &hi, 16, &sl, &sh), -ENOENT);

    /* The whole ring from 0 splits by the first hex digit. */
    lo = id_top(0, 0);
    hi = id_hex("ffffffffffffffffffffffffffffffffffffffff");
    assert_int_equal(dht_store_subrange(&lo, &hi, 0xa, &sl, &sh), 0);
    assert_memory_equal(&sl, &(struct dht_id){.b = {0xa0}}, sizeof(sl));
    struct dht_id want = id_hex("afffffffffffffffffffffffffffffffffffffff");
    assert_memory_equal(&sh, &want, sizeof(sh));
    assert_int_equal(dht_store_subrange(&lo, &hi, 15, &sl, &sh), 0);
    assert_memory_equal(&sh, &hi, sizeof(sh));
}

/* ---- sqlite ----------------------------------------------------------------------- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_dht_store.XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void db_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static long long count_rows(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long long n = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM dht_records", -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static bool integrity_ok(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    bool ok = false;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

static struct dht_id key_n(unsigned i)
{
    struct dht_id k;
    uint8_t b[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    dht_id_hash(&k, b, sizeof(b));
    return k;
}

/* A mailbox value (dht_record.h): rec_make's record with the flag, signed again. */
static struct dht_record mb_make(const struct keypair *kp, struct dht_id key, uint8_t vid,
                                 uint64_t seq, uint64_t expiry, const char *value)
{
    struct dht_record r = rec_make(kp, key, vid, seq, expiry, value);
    r.mailbox = true;
    assert_int_equal(dht_record_sign(&r, kp->sk), 0);
    return r;
}

/* Mailboxes: many writers, each may replace only its own value, the mailbox's owner
 * removes any; caps per writer, in all and in bytes; a week's TTL; no mixing with
 * plain records; the flag is signed; and it all survives a reopen. */
static void test_mailbox(void **state)
{
    struct keypair bob, w[5];
    struct dht_id mk, other = id_top(0x42, 1);
    struct dht_record r, out[32], f;
    struct dht_store *s;
    struct dht_store_stats st;
    char path[128];
    size_t n;

    (void)state;
    keypair_from(&bob, 0xb0);
    for (unsigned i = 0; i < 5; i++)
        keypair_from(&w[i], (uint8_t)(0xc0 + i));
    dht_mailbox_key(bob.pk, &mk);
    db_path(path, sizeof(path), "mailbox.db");
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);

    /* Two writers drop a message each. */
    struct dht_record a1 = mb_make(&alice, mk, 1, 1, T0 + 10 * MIN, "hello from alice");
    struct dht_record m1 = mb_make(&mallory, mk, 2, 1, T0 + 10 * MIN, "hello from mallory");
    assert_int_equal(dht_store_put(s, &a1, T0), 0);
    assert_int_equal(dht_store_put(s, &m1, T0), 0);
    assert_int_equal(n_live(s, mk, T0), 2);
    /* The flag is signed: cleared, the signature fails. */
    r = a1;
    r.mailbox = false;
    r.value_id = id_top(0, 9);
    assert_int_equal(dht_record_verify(&r), -EBADMSG);
    /* No plain record under a mailbox key, no mailbox value under a plain key. */
    r = rec_make(&alice, mk, 3, 1, T0 + MIN, "plain");
    assert_int_equal(dht_store_put(s, &r, T0), -EPERM);
    r = rec_make(&alice, other, 1, 1, T0 + MIN, "plain");
    assert_int_equal(dht_store_put(s, &r, T0), 0);
    r = mb_make(&mallory, other, 2, 1, T0 + MIN, "drop");
    assert_int_equal(dht_store_put(s, &r, T0), -EPERM);
    /* Mallory can neither overwrite nor remove alice's value; alice can replace it. */
    r = mb_make(&mallory, mk, 1, 2, T0 + 10 * MIN, "forged");
    assert_int_equal(dht_store_put(s, &r, T0), -EPERM);
    r = mb_make(&mallory, mk, 1, 2, T0 + 10 * MIN, NULL);
    assert_int_equal(dht_store_put(s, &r, T0), -EPERM);
    struct dht_record a2 = mb_make(&alice, mk, 1, 2, T0 + 10 * MIN, "hello again");
    assert_int_equal(dht_store_put(s, &a2, T0), 0);
    /* Bob, the mailbox's owner, removes mallory's value. */
    struct dht_record gone = mb_make(&bob, mk, 2, 2, T0 + 10 * MIN, NULL);
    assert_int_equal(dht_store_put(s, &gone, T0), 0);
    assert_int_equal(dht_store_find(s, &mk, &m1.value_id, T0, &f), 0);
    assert_true(f.tombstone);
    assert_int_equal(n_live(s, mk, T0), 1);
    /* ...but a tombstone signed by bob under somebody else's mailbox is refused. */
    struct dht_id wk;
    dht_mailbox_key(w[0].pk, &wk);
    r = mb_make(&w[1], wk, 1, 1, T0 + MIN, "to w0");
    assert_int_equal(dht_store_put(s, &r, T0), 0);
    r = mb_make(&bob, wk, 1, 2, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(s, &r, T0), -EPERM);

    /* Caps: 4 live values per writer... */
    for (uint8_t v = 10; v < 13; v++) {
        r = mb_make(&alice, mk, v, 1, T0 + MIN, "more");
        assert_int_equal(dht_store_put(s, &r, T0), 0);
    }
    r = mb_make(&alice, mk, 13, 1, T0 + MIN, "one too many");
    assert_int_equal(dht_store_put(s, &r, T0), -ENOSPC);
    /* ...16 in all (alice's 4 + 4 writers x 3 = 16)... */
    for (unsigned i = 0; i < 4; i++)
        for (uint8_t v = 0; v < 3; v++) {
            r = mb_make(&w[i], mk, (uint8_t)(20 + 10 * i + v), 1, T0 + MIN, "x");
            assert_int_equal(dht_store_put(s, &r, T0), 0);
        }
    r = mb_make(&w[4], mk, 90, 1, T0 + MIN, "full");
    assert_int_equal(dht_store_put(s, &r, T0), -ENOSPC);
    /* ...and the owner's removal makes room. */
    r = mb_make(&bob, mk, 20, 2, T0 + MIN, NULL);
    assert_int_equal(dht_store_put(s, &r, T0), 0);
    r = mb_make(&w[4], mk, 90, 1, T0 + MIN, "now it fits");
    assert_int_equal(dht_store_put(s, &r, T0), 0);
    /* A week is the TTL cap of a mailbox value; a plain record's stays a day. */
    r = mb_make(&w[4], wk, 91, 1, T0 + 7 * 24 * 60 * MIN, "a week");
    assert_int_equal(dht_store_put(s, &r, T0), 0);
    r = mb_make(&w[4], wk, 92, 1, T0 + 7 * 24 * 60 * MIN + MIN, "longer");
    assert_int_equal(dht_store_put(s, &r, T0), -ERANGE);
    r = rec_make(&alice, other, 2, 1, T0 + 2 * 24 * 60 * MIN, "two days");
    assert_int_equal(dht_store_put(s, &r, T0), -ERANGE);
    assert_int_equal(dht_store_get(s, &mk, T0, out, 32, &n), 0);
    assert_int_equal(n, 16);

    /* Reopened: every writer's values are back, and the rules still hold. */
    assert_int_equal(dht_store_flush(s), 0);
    dht_store_free(s);
    assert_int_equal(dht_store_open(&s, NULL, path, T0 + 1), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.load_skipped, 0);
    assert_int_equal(dht_store_get(s, &mk, T0 + 1, out, 32, &n), 0);
    assert_int_equal(n, 16);
    r = mb_make(&mallory, mk, 1, 3, T0 + 10 * MIN, NULL);
    assert_int_equal(dht_store_put(s, &r, T0 + 1), -EPERM);
    dht_store_free(s);
}

/* A byte cap: 32 KiB of live values per mailbox. */
static void test_mailbox_bytes(void **state)
{
    static char big[DHT_RECORD_VALUE_MAX + 1];
    struct keypair bob, w[9];
    struct dht_id mk;
    struct dht_record r;
    struct dht_store *s = mem_store(0, 0);
    unsigned stored = 0;

    (void)state;
    memset(big, 'm', DHT_RECORD_VALUE_MAX);
    keypair_from(&bob, 0xb0);
    dht_mailbox_key(bob.pk, &mk);
    for (unsigned i = 0; i < 9; i++) {
        keypair_from(&w[i], (uint8_t)(0xd0 + i));
        r = mb_make(&w[i], mk, (uint8_t)i, 1, T0 + MIN, big);
        if (dht_store_put(s, &r, T0) == 0)
            stored++;
        else
            assert_int_equal(dht_store_put(s, &r, T0), -ENOSPC);
    }
    assert_int_equal(stored, (32u << 10) / DHT_RECORD_VALUE_MAX);
    dht_store_free(s);
}

static void test_sqlite_reopen(void **state)
{
    (void)state;
    char path[128];
    struct dht_store *s;
    struct dht_record f, out[2];
    struct dht_store_stats st;
    size_t n;

    db_path(path, sizeof(path), "reopen.db");
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    struct dht_record a = rec_make(&alice, key_n(1), 1, 3, T0 + 10 * MIN, "alice@node1");
    struct dht_record b = rec_make(&alice, key_n(1), 2, 1, T0 + 10 * MIN, "alice@node2");
    struct dht_record put = rec_make(&alice, key_n(2), 1, 1, T0 + 10 * MIN, "gone soon");
    struct dht_record rm = rec_make(&alice, key_n(2), 1, 2, T0 + MIN, NULL);
    struct dht_record m = rec_make(&mallory, key_n(3), 7, 1, T0 + MIN, "mallory");
    assert_int_equal(dht_store_put(s, &a, T0), 0);
    assert_int_equal(dht_store_put(s, &b, T0), 0);
    assert_int_equal(dht_store_put(s, &put, T0), 0);
    assert_int_equal(dht_store_put(s, &rm, T0), 0);
    assert_int_equal(dht_store_put(s, &m, T0), 0);
    assert_int_equal(dht_store_pending(s), 4); /* key_n(2)/1 listed once */
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(dht_store_pending(s), 0);
    dht_store_free(s);
    assert_int_equal(count_rows(path), 4);

    /* Reopened later: the same records, the tombstone still kept until the put's
     * expiry, the owner claims intact, the expired one not loaded. */
    assert_int_equal(dht_store_open(&s, NULL, path, T0 + 2 * MIN), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.load_skipped, 1);
    assert_int_equal(dht_store_get(s, &a.key, T0 + 2 * MIN, out, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_true(dht_record_equal(&out[0], &a));
    assert_true(dht_record_equal(&out[1], &b));
    assert_int_equal(dht_store_find(s, &rm.key, &rm.value_id, T0 + 2 * MIN, &f), 0);
    assert_true(dht_record_equal(&f, &rm));
    assert_int_equal(dht_store_put(s, &put, T0 + 2 * MIN), -ESTALE);
    struct dht_record steal = rec_make(&mallory, key_n(1), 9, 1, T0 + 5 * MIN, "x");
    assert_int_equal(dht_store_put(s, &steal, T0 + 2 * MIN), -EPERM);
    dht_store_free(s);
    /* The expired row was deleted at open. */
    assert_int_equal(count_rows(path), 3);
    assert_true(integrity_ok(path));
}

static void test_sqlite_group_commit(void **state)
{
    (void)state;
    char path[128];
    struct dht_store *s;
    struct dht_store_config cfg;
    struct dht_store_stats st;
    enum { N = 2000 };

    db_path(path, sizeof(path), "group.db");
    dht_store_config_init(&cfg);
    cfg.max_pending = 4 * N;
    assert_int_equal(dht_store_open(&s, &cfg, path, T0), 0);
    for (unsigned i = 0; i < N; i++) {
        struct dht_record r = rec_make(&alice, key_n(i), 1, 1, T0 + MIN, "contact");
        assert_int_equal(dht_store_put(s, &r, T0), 0);
    }
    /* Nothing reached the file yet: one flush writes the batch in one commit. */
    assert_int_equal(count_rows(path), 0);
    assert_int_equal(dht_store_pending(s), N);
    assert_int_equal(dht_store_flush(s), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(count_rows(path), N);
    /* A flush with nothing pending is free and not counted. */
    assert_int_equal(dht_store_flush(s), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.flushes, 1);

    /* Dropping a range reaches the file at the next flush. */
    struct dht_id lo = id_top(0, 0), hi = id_top(0x7f, 0xff);
    int dropped = dht_store_drop_range(s, &lo, &hi);
    assert_true(dropped > N / 4 && dropped < 3 * N / 4);
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(count_rows(path), N - dropped);

    /* Expiry sweeps reach the file at the next flush too. */
    assert_int_equal(dht_store_expire(s, T0 + MIN), N - dropped);
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(count_rows(path), 0);
    dht_store_free(s);

    /* Auto-flush: with max_pending 10, 25 puts cost 2 commits inside put. */
    db_path(path, sizeof(path), "auto.db");
    cfg.max_pending = 10;
    assert_int_equal(dht_store_open(&s, &cfg, path, T0), 0);
    for (unsigned i = 0; i < 25; i++) {
        struct dht_record r = rec_make(&alice, key_n(i), 1, 1, T0 + MIN, "c");
        assert_int_equal(dht_store_put(s, &r, T0), 0);
    }
    dht_store_get_stats(s, &st);
    assert_int_equal(st.flushes, 2);
    assert_int_equal(dht_store_pending(s), 5);
    assert_int_equal(count_rows(path), 20);
    dht_store_free(s); /* flushes the rest */
    assert_int_equal(count_rows(path), 25);
}

static void test_sqlite_replace_and_resync(void **state)
{
    (void)state;
    char path[128];
    struct dht_store *s;
    struct dht_store_config cfg;
    struct dht_store_stats st;
    struct dht_record out[1];
    size_t n;
    sqlite3 *db;

    /* A replaced version leaves exactly one row, across flushes. */
    db_path(path, sizeof(path), "replace.db");
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    struct dht_record v1 = rec_make(&alice, key_n(1), 1, 1, T0 + MIN, "v1");
    struct dht_record v2 = rec_make(&alice, key_n(1), 1, 2, T0 + MIN, "v2");
    struct dht_record v3 = rec_make(&alice, key_n(1), 1, 3, T0 + 2 * MIN, NULL);
    struct dht_record w = rec_make(&alice, key_n(2), 1, 1, T0 + MIN, "w");
    assert_int_equal(dht_store_put(s, &v1, T0), 0);
    assert_int_equal(dht_store_put(s, &w, T0), 0);
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(dht_store_put(s, &v2, T0), 0);
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(count_rows(path), 2);
    /* Replaced, then swept before the flush: its row still goes. */
    assert_int_equal(dht_store_put(s, &v3, T0), 0);
    assert_int_equal(dht_store_expire(s, T0 + MIN), 1); /* w */
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(count_rows(path), 1);
    dht_store_free(s);
    assert_int_equal(dht_store_open(&s, NULL, path, T0 + MIN), 0);
    assert_int_equal(dht_store_get(s, &v1.key, T0 + MIN, out, 1, &n), 0);
    assert_int_equal(n, 0);
    struct dht_record f;
    assert_int_equal(dht_store_find(s, &v1.key, &v1.value_id, T0 + MIN, &f), 0);
    assert_true(dht_record_equal(&f, &v3));
    dht_store_free(s);

    /* The pending list overflows while sqlite is unavailable (the daemon holds a
     * transaction): memory stays bounded and the next flush rewrites the table. */
    db_path(path, sizeof(path), "resync.db");
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    dht_store_config_init(&cfg);
    cfg.max_pending = 4;
    assert_int_equal(dht_store_attach(&s, &cfg, db, T0), 0);
    assert_int_equal(dht_store_put(s, &w, T0), 0);
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    for (unsigned i = 10; i < 20; i++) {
        struct dht_record r = rec_make(&alice, key_n(i), 1, 1, T0 + MIN, "c");
        assert_int_equal(dht_store_put(s, &r, T0), 0);
    }
    assert_int_equal(dht_store_flush(s), -EBUSY);
    dht_store_get_stats(s, &st);
    assert_true(st.flush_errors >= 2);
    assert_int_equal(dht_store_pending(s), 11); /* everything: a full rewrite */
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(dht_store_flush(s), 0);
    assert_int_equal(dht_store_pending(s), 0);
    dht_store_free(s);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(count_rows(path), 11);
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 11);
    assert_int_equal(st.load_skipped, 0);
    dht_store_free(s);
}

static void test_sqlite_kill9_loses_only_unflushed(void **state)
{
    (void)state;
    char path[128];
    struct dht_store *s;
    struct dht_store_stats st;
    pid_t pid;
    int status;

    db_path(path, sizeof(path), "kill.db");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct dht_store *c;
        if (dht_store_open(&c, NULL, path, T0) < 0)
            _exit(2);
        for (unsigned i = 0; i < 100; i++) {
            struct dht_record r = rec_make(&alice, key_n(i), 1, 1, T0 + MIN, "flushed");
            if (dht_store_put(c, &r, T0) < 0)
                _exit(3);
        }
        if (dht_store_flush(c) < 0)
            _exit(4);
        for (unsigned i = 100; i < 150; i++) {
            struct dht_record r = rec_make(&alice, key_n(i), 1, 1, T0 + MIN, "not flushed");
            if (dht_store_put(c, &r, T0) < 0)
                _exit(5);
        }
        raise(SIGKILL);
        _exit(6);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    assert_true(integrity_ok(path));
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 100);
    assert_int_equal(n_live(s, key_n(99), T0), 1);
    assert_int_equal(n_live(s, key_n(100), T0), 0);
    dht_store_free(s);
}

static void test_sqlite_kill9_mid_stream_keeps_whole_batches(void **state)
{
    (void)state;
    char path[128];
    struct dht_store *s;
    struct dht_store_stats st;
    int fds[2];
    pid_t pid;
    enum { BATCH = 50, MAX_BATCHES = 2000 };

    db_path(path, sizeof(path), "stream.db");
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct dht_store *c;
        close(fds[0]);
        if (dht_store_open(&c, NULL, path, T0) < 0)
            _exit(2);
        /* Batches of BATCH puts, each followed by one flush, until killed. */
        for (unsigned b = 0; b < MAX_BATCHES; b++) {
            for (unsigned i = 0; i < BATCH; i++) {
                struct dht_record r =
                    rec_make(&alice, key_n(b * BATCH + i), 1, 1, T0 + MIN, "stream");
                if (dht_store_put(c, &r, T0) < 0)
                    _exit(3);
            }
            if (dht_store_flush(c) < 0)
                _exit(4);
            if (write(fds[1], "f", 1) != 1)
                _exit(5);
        }
        _exit(0);
    }
    close(fds[1]);
    /* Kill it after it reports 5 committed batches, while it writes more. */
    char ch;
    for (int i = 0; i < 5; i++)
        assert_int_equal(read(fds[0], &ch, 1), 1);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    close(fds[0]);

    assert_true(integrity_ok(path));
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    dht_store_get_stats(s, &st);
    /* Every batch is all or nothing; at least the 5 reported ones are there. */
    assert_true(st.records >= 5 * BATCH);
    assert_int_equal(st.records % BATCH, 0);
    assert_int_equal(st.load_skipped, 0);
    dht_store_free(s);
}

static void test_sqlite_shared_connection(void **state)
{
    (void)state;
    char path[128];
    sqlite3 *db;
    struct dht_store *s;

    db_path(path, sizeof(path), "shared.db");
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode=WAL; PRAGMA user_version=7;"
                                  "CREATE TABLE bindings(aor TEXT); INSERT INTO bindings "
                                  "VALUES ('sip:alice@example.org')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(dht_store_attach(&s, NULL, db, T0), 0);
    struct dht_record r = rec_make(&alice, key_n(1), 1, 1, T0 + MIN, "c");
    assert_int_equal(dht_store_put(s, &r, T0), 0);

    /* While the daemon holds a transaction, the store does not commit for it. */
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(dht_store_flush(s), -EBUSY);
    assert_int_equal(dht_store_pending(s), 1);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(dht_store_flush(s), 0);
    dht_store_free(s);

    /* The caller's tables and user_version are untouched; db still usable. */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM bindings),"
                                        " (SELECT count(*) FROM dht_records), "
                                        "(SELECT user_version FROM pragma_user_version)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    assert_int_equal(sqlite3_column_int(st, 2), 7);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_sqlite_bad_rows_not_loaded(void **state)
{
    (void)state;
    char path[128];
    struct dht_store *s;
    struct dht_store_stats st;
    sqlite3 *db;
    sqlite3_stmt *ins;
    uint8_t blob[DHT_RECORD_ENCODED_MAX];

    db_path(path, sizeof(path), "bad.db");
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    struct dht_record good = rec_make(&alice, key_n(1), 1, 1, T0 + MIN, "good");
    assert_int_equal(dht_store_put(s, &good, T0), 0);
    dht_store_free(s);

    /* Someone edits the file: a tampered record, garbage, and a row whose key
     * column disagrees with its record. */
    struct dht_record tampered = rec_make(&alice, key_n(2), 1, 1, T0 + MIN, "value");
    int n = dht_record_encode(&tampered, blob, sizeof(blob));
    blob[n - 1] ^= 1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(
            db, "INSERT INTO dht_records(key, value_id, keep_until, record) VALUES (?, ?, ?, ?)",
            -1, &ins, NULL),
        SQLITE_OK);
    sqlite3_bind_blob(ins, 1, tampered.key.b, 20, SQLITE_STATIC);
    sqlite3_bind_blob(ins, 2, tampered.value_id.b, 20, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 3, (sqlite3_int64)(T0 + MIN));
    sqlite3_bind_blob(ins, 4, blob, n, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_reset(ins);
    struct dht_id k3 = key_n(3);
    sqlite3_bind_blob(ins, 1, k3.b, 20, SQLITE_STATIC);
    sqlite3_bind_blob(ins, 4, "garbage", 7, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_reset(ins);
    struct dht_id k4 = key_n(4);
    n = dht_record_encode(&good, blob, sizeof(blob));
    sqlite3_bind_blob(ins, 1, k4.b, 20, SQLITE_STATIC);
    sqlite3_bind_blob(ins, 4, blob, n, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_reset(ins);
    /* Two versions of one pair (the table is append-only, so this can only come
     * from a crash between writes or an edit): the higher seq wins. */
    struct dht_record v1 = rec_make(&alice, key_n(5), 1, 1, T0 + MIN, "v1");
    struct dht_record v2 = rec_make(&alice, key_n(5), 1, 2, T0 + MIN, "v2");
    const struct dht_record *vs[2] = {&v2, &v1};
    for (int i = 0; i < 2; i++) {
        n = dht_record_encode(vs[i], blob, sizeof(blob));
        sqlite3_bind_blob(ins, 1, vs[i]->key.b, 20, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, vs[i]->value_id.b, 20, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)(T0 + MIN));
        sqlite3_bind_blob(ins, 4, blob, n, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
    }
    /* A second owner under a key already held: only one owner is loaded. */
    struct dht_record mk = rec_make(&mallory, key_n(1), 9, 1, T0 + MIN, "mallory");
    n = dht_record_encode(&mk, blob, sizeof(blob));
    sqlite3_bind_blob(ins, 1, mk.key.b, 20, SQLITE_STATIC);
    sqlite3_bind_blob(ins, 2, mk.value_id.b, 20, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 3, (sqlite3_int64)(T0 + MIN));
    sqlite3_bind_blob(ins, 4, blob, n, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    assert_int_equal(count_rows(path), 7);

    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.load_skipped, 5);
    struct dht_record out[2];
    size_t got;
    assert_int_equal(dht_store_get(s, &good.key, T0, out, 2, &got), 0);
    assert_int_equal(got, 1);
    assert_true(dht_record_equal(&out[0], &good));
    assert_int_equal(n_live(s, key_n(2), T0), 0);
    struct dht_id k5 = key_n(5);
    assert_int_equal(dht_store_get(s, &k5, T0, out, 2, &got), 0);
    assert_int_equal(got, 1);
    assert_true(dht_record_equal(&out[0], &v2));
    dht_store_free(s);
    assert_int_equal(count_rows(path), 2);

    /* The survivors load again, unchanged. */
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    dht_store_get_stats(s, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.load_skipped, 0);
    dht_store_free(s);
}

static void test_sqlite_newer_schema_refused(void **state)
{
    (void)state;
    char path[128];
    struct dht_store *s;
    sqlite3 *db;

    db_path(path, sizeof(path), "future.db");
    assert_int_equal(dht_store_open(&s, NULL, path, T0), 0);
    dht_store_free(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE dht_meta SET value = 2", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    s = NULL;
    assert_int_equal(dht_store_open(&s, NULL, path, T0), -EPROTO);
    assert_null(s);
}

/* ---- randomized: rules against a reference model, sqlite against memory -------- */

#define M_KEYS 6
#define M_VIDS 4

struct model_slot {
    bool used;
    struct dht_record r;
    uint64_t keep;
};

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The rules of dht_store.h, written plainly over a small table. */
static int model_put(struct model_slot m[M_KEYS][M_VIDS], unsigned k, unsigned v,
                     const struct dht_record *r, uint64_t now)
{
    struct model_slot *old = m[k][v].used && m[k][v].keep > now ? &m[k][v] : NULL;
    uint64_t keep = r->expiry_ms;

    if (old != NULL && dht_record_equal(&old->r, r))
        return -EALREADY;
    if (dht_record_verify(r) < 0)
        return -EBADMSG;
    if (r->tombstone && old != NULL && old->keep > keep)
        keep = old->keep;
    if (keep <= now)
        return -ETIMEDOUT;
    for (unsigned j = 0; j < M_VIDS; j++)
        if (m[k][j].used && m[k][j].keep > now && memcmp(m[k][j].r.owner, r->owner, 32) != 0)
            return -EPERM;
    if (old != NULL && old->r.seq >= r->seq)
        return -ESTALE;
    m[k][v].used = true;
    m[k][v].r = *r; /* values are string literals: the pointer stays valid */
    m[k][v].keep = keep;
    return 0;
}

static void test_random_against_model_and_reopen(void **state)
{
    (void)state;
    static const char *const values[] = {"a", "bb", "ccc"};
    struct model_slot m[M_KEYS][M_VIDS];
    struct dht_store_config cfg;
    struct dht_store *mem, *disk;
    char path[128];
    uint64_t x = 0x9e3779b97f4a7c15ull, now = T0;
    struct dht_id lo = id_top(0, 0), hi = id_hex("ffffffffffffffffffffffffffffffffffffffff");
    unsigned stored = 0;

    memset(m, 0, sizeof(m));
    db_path(path, sizeof(path), "random.db");
    dht_store_config_init(&cfg);
    cfg.max_pending = 7; /* exercise auto-flush */
    assert_int_equal(dht_store_new(&mem, &cfg), 0);
    assert_int_equal(dht_store_open(&disk, &cfg, path, now), 0);

    for (unsigned op = 0; op < 3000; op++) {
        uint64_t r = rng_next(&x);
        unsigned k = (unsigned)(r % M_KEYS), v = (unsigned)((r >> 8) % M_VIDS);
        if ((r >> 16) % 50 == 0) {
            now += MIN / 2;
            assert_int_equal(dht_store_expire(mem, now), dht_store_expire(disk, now));
            continue;
        }
        if ((r >> 16) % 50 == 1) {
            assert_int_equal(dht_store_flush(disk), 0);
            continue;
        }
        if ((r >> 16) % 97 == 2) { /* reopen: the file must give back the same set */
            assert_int_equal(dht_store_flush(disk), 0);
            dht_store_free(disk);
            assert_int_equal(dht_store_open(&disk, &cfg, path, now), 0);
        }
        const struct keypair *kp = (r >> 24) % 8 == 0 ? &mallory : &alice;
        uint64_t seq = 1 + (r >> 28) % 6;
        uint64_t expiry = now - MIN / 4 + ((r >> 32) % 8) * (MIN / 2);
        bool tomb = (r >> 40) % 4 == 0;
        struct dht_record rec = rec_make(kp, id_top((uint8_t)(0x20 * k), 0), (uint8_t)v, seq,
                                         expiry, tomb ? NULL : values[(r >> 44) % 3]);
        if ((r >> 48) % 20 == 0)
            rec.sig[7] ^= 1;
        /* Replays of the model's own record, to hit the idempotent path. */
        if ((r >> 52) % 10 == 0 && m[k][v].used)
            rec = m[k][v].r;
        int want = model_put(m, k, v, &rec, now);
        assert_int_equal(dht_store_put(mem, &rec, now), want);
        assert_int_equal(dht_store_put(disk, &rec, now), want);
        stored += want == 0;

        /* get agrees with the model for that key. */
        struct dht_record out[M_VIDS];
        size_t n, expect = 0;
        struct dht_id key = id_top((uint8_t)(0x20 * k), 0);
        assert_int_equal(dht_store_get(mem, &key, now, out, M_VIDS, &n), 0);
        for (unsigned j = 0; j < M_VIDS; j++) {
            const struct model_slot *sl = &m[k][j];
            if (sl->used && sl->keep > now && !sl->r.tombstone && sl->r.expiry_ms > now) {
                assert_true(expect < n);
                assert_true(dht_record_equal(&out[expect], &sl->r));
                expect++;
            }
        }
        assert_int_equal(n, expect);
    }
    assert_true(stored > 100);

    /* Both stores and a reopened file hold the same set. */
    struct dht_store_summary a, b, c;
    assert_int_equal(dht_store_summarize(mem, &lo, &hi, now, &a), 0);
    assert_int_equal(dht_store_summarize(disk, &lo, &hi, now, &b), 0);
    assert_int_equal(dht_store_flush(disk), 0);
    dht_store_free(disk);
    assert_int_equal(dht_store_open(&disk, &cfg, path, now), 0);
    assert_int_equal(dht_store_summarize(disk, &lo, &hi, now, &c), 0);
    assert_true(a.count > 0);
    assert_int_equal(a.count, b.count);
    assert_int_equal(a.count, c.count);
    assert_memory_equal(a.digest, b.digest, DHT_STORE_DIGEST_LEN);
    assert_memory_equal(a.digest, c.digest, DHT_STORE_DIGEST_LEN);
    struct dht_store_stats st;
    dht_store_get_stats(disk, &st);
    assert_int_equal(st.load_skipped, 0);
    /* No row left behind for replaced or swept versions. */
    assert_int_equal(count_rows(path), (long long)st.records);
    dht_store_free(mem);
    dht_store_free(disk);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    keypair_from(&alice, 1);
    keypair_from(&mallory, 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_order_and_max),
        cmocka_unit_test(test_rule_bad_signature),
        cmocka_unit_test(test_rule_invalid_form),
        cmocka_unit_test(test_rule_expired_and_ttl),
        cmocka_unit_test(test_rule_owner_claim),
        cmocka_unit_test(test_claim_released_after_expiry),
        cmocka_unit_test(test_rule_seq_replay_and_replace),
        cmocka_unit_test(test_tombstone_semantics),
        cmocka_unit_test(test_tombstone_then_newer_put),
        cmocka_unit_test(test_expired_never_returned),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_range_walk_wraps),
        cmocka_unit_test(test_list_pages_with_continuation),
        cmocka_unit_test(test_drop_range),
        cmocka_unit_test(test_summaries_canonical),
        cmocka_unit_test(test_subrange_small_and_full),
        cmocka_unit_test(test_sqlite_reopen),
        cmocka_unit_test(test_mailbox),
        cmocka_unit_test(test_mailbox_bytes),
        cmocka_unit_test(test_sqlite_group_commit),
        cmocka_unit_test(test_sqlite_replace_and_resync),
        cmocka_unit_test(test_sqlite_kill9_loses_only_unflushed),
        cmocka_unit_test(test_sqlite_kill9_mid_stream_keeps_whole_batches),
        cmocka_unit_test(test_sqlite_shared_connection),
        cmocka_unit_test(test_sqlite_bad_rows_not_loaded),
        cmocka_unit_test(test_sqlite_newer_schema_refused),
        cmocka_unit_test(test_random_against_model_and_reopen),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
