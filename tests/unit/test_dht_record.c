/*
 * test_dht_record.c: signed DHT records: the signed string, tampering, the
 * version-1 encoding and its decoder's bounds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "p2p/dht_record.h"

struct keypair {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

/* Deterministic keys, so a failure reproduces. */
static void keypair_from(struct keypair *kp, uint8_t seed_byte)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, seed_byte, sizeof(seed));
    assert_int_equal(crypto_sign_seed_keypair(kp->pk, kp->sk, seed), 0);
}

static const uint8_t VALUE[] = "sip:alice@192.0.2.1:5062;node=abcd";

static void make_record(struct dht_record *r, const struct keypair *kp)
{
    memset(r, 0, sizeof(*r));
    dht_id_hash(&r->key, "sip:alice@example.org", 21);
    dht_id_hash(&r->value_id, "urn:uuid:00000000-0000-1000-8000-000a95a0e128", 45);
    r->seq = 0x0102030405060708ull;
    r->expiry_ms = 1700000000000ull;
    r->value = VALUE;
    r->value_len = sizeof(VALUE) - 1;
    assert_int_equal(dht_record_sign(r, kp->sk), 0);
}

static void test_sign_verify(void **state)
{
    (void)state;
    struct keypair kp;
    struct dht_record r;

    keypair_from(&kp, 1);
    make_record(&r, &kp);
    assert_memory_equal(r.owner, kp.pk, sizeof(kp.pk));
    assert_int_equal(dht_record_verify(&r), 0);

    /* The signature is over the documented canonical string, nothing else. */
    uint8_t msg[16 + 20 + 20 + 8 + 8 + 1 + 32 + 2 + sizeof(VALUE)];
    size_t n = 0;
    memcpy(msg + n, "p2psip-record-v1", 16), n += 16;
    memcpy(msg + n, r.key.b, 20), n += 20;
    memcpy(msg + n, r.value_id.b, 20), n += 20;
    for (int i = 0; i < 8; i++)
        msg[n++] = (uint8_t)(r.seq >> (56 - 8 * i));
    for (int i = 0; i < 8; i++)
        msg[n++] = (uint8_t)(r.expiry_ms >> (56 - 8 * i));
    msg[n++] = 0; /* flags */
    memcpy(msg + n, kp.pk, 32), n += 32;
    msg[n++] = 0;
    msg[n++] = (uint8_t)r.value_len;
    memcpy(msg + n, VALUE, r.value_len), n += r.value_len;
    assert_int_equal(crypto_sign_verify_detached(r.sig, msg, n, kp.pk), 0);

    /* A tombstone signs too, with no value. */
    struct dht_record t = r;
    t.tombstone = true;
    t.value = NULL;
    t.value_len = 0;
    t.seq++;
    assert_int_equal(dht_record_sign(&t, kp.sk), 0);
    assert_int_equal(dht_record_verify(&t), 0);
}

static void test_tampered_fields_refused(void **state)
{
    (void)state;
    struct keypair kp, other;
    struct dht_record r, t;
    uint8_t changed[sizeof(VALUE)];

    keypair_from(&kp, 1);
    keypair_from(&other, 2);
    make_record(&r, &kp);

    t = r;
    t.key.b[19] ^= 1;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.value_id.b[0] ^= 0x80;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.seq++;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.expiry_ms += 1000;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    memcpy(changed, VALUE, sizeof(VALUE));
    changed[4] ^= 0x20;
    t.value = changed;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.value_len--;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.sig[10] ^= 1;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    /* Claiming another owner: the signature does not verify under that key. */
    t = r;
    memcpy(t.owner, other.pk, sizeof(other.pk));
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    /* Turning a signed put into a tombstone (value dropped) breaks the signature. */
    t = r;
    t.tombstone = true;
    t.value = NULL;
    t.value_len = 0;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    /* Re-signing with another key yields a valid record of the other owner. */
    t = r;
    assert_int_equal(dht_record_sign(&t, other.sk), 0);
    assert_memory_equal(t.owner, other.pk, sizeof(other.pk));
    assert_int_equal(dht_record_verify(&t), 0);
}

static void test_form_checks(void **state)
{
    (void)state;
    struct keypair kp;
    struct dht_record r, t;
    static uint8_t big[DHT_RECORD_VALUE_MAX + 1];
    uint8_t buf[DHT_RECORD_ENCODED_MAX + 8];

    keypair_from(&kp, 1);
    make_record(&r, &kp);

    t = r;
    t.value = big;
    t.value_len = sizeof(big);
    assert_int_equal(dht_record_check(&t), -EINVAL);
    assert_int_equal(dht_record_sign(&t, kp.sk), -EINVAL);
    assert_int_equal(dht_record_verify(&t), -EINVAL);
    assert_int_equal(dht_record_encode(&t, buf, sizeof(buf)), -EINVAL);
    /* Exactly the cap is fine. */
    t.value_len = DHT_RECORD_VALUE_MAX;
    assert_int_equal(dht_record_sign(&t, kp.sk), 0);
    assert_int_equal(dht_record_encode(&t, buf, sizeof(buf)), DHT_RECORD_ENCODED_MAX);

    t = r;
    t.tombstone = true; /* with a value */
    assert_int_equal(dht_record_check(&t), -EINVAL);
    t = r;
    t.value = NULL; /* length without bytes */
    assert_int_equal(dht_record_check(&t), -EINVAL);
}

static void test_encode_decode_roundtrip(void **state)
{
    (void)state;
    struct keypair kp;
    struct dht_record r, d, t;
    uint8_t buf[2 * DHT_RECORD_ENCODED_MAX];
    int n, m;

    keypair_from(&kp, 1);
    make_record(&r, &kp);
    n = dht_record_encode(&r, buf, sizeof(buf));
    assert_int_equal(n, (int)dht_record_encoded_len(&r));
    assert_int_equal(n, DHT_RECORD_HEADER_LEN + (int)r.value_len);
    assert_int_equal(buf[0], DHT_RECORD_VERSION);
    assert_int_equal(dht_record_decode(&d, buf, (size_t)n), n);
    assert_true(dht_record_equal(&d, &r));
    assert_ptr_equal(d.value, buf + DHT_RECORD_HEADER_LEN);
    assert_int_equal(dht_record_verify(&d), 0);

    /* Records packed back to back: decode returns what it consumed. */
    t = r;
    t.tombstone = true;
    t.value = NULL;
    t.value_len = 0;
    t.seq++;
    assert_int_equal(dht_record_sign(&t, kp.sk), 0);
    m = dht_record_encode(&t, buf + n, sizeof(buf) - (size_t)n);
    assert_int_equal(m, DHT_RECORD_HEADER_LEN);
    assert_int_equal(dht_record_decode(&d, buf, (size_t)(n + m)), n);
    assert_int_equal(dht_record_decode(&d, buf + n, (size_t)m), m);
    assert_true(d.tombstone);
    assert_null(d.value);
    assert_true(dht_record_equal(&d, &t));

    /* Too small a buffer for encode. */
    assert_int_equal(dht_record_encode(&r, buf, (size_t)n - 1), -ENOSPC);
}

static void test_every_truncation_fails(void **state)
{
    (void)state;
    struct keypair kp;
    struct dht_record r, d;
    uint8_t buf[DHT_RECORD_ENCODED_MAX];
    int n;

    keypair_from(&kp, 1);
    make_record(&r, &kp);
    n = dht_record_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    memset(&d, 0xaa, sizeof(d));
    for (int len = 0; len < n; len++) {
        /* A copy of exactly len bytes, so ASan would see any read past it. */
        uint8_t *copy = test_malloc(len > 0 ? (size_t)len : 1);
        memcpy(copy, buf, (size_t)len);
        assert_int_equal(dht_record_decode(&d, copy, (size_t)len), -EAGAIN);
        test_free(copy);
    }
    /* Output untouched on error. */
    for (size_t i = 0; i < sizeof(d.owner); i++)
        assert_int_equal(d.owner[i], 0xaa);
}

static void test_decode_rejects_malformed(void **state)
{
    (void)state;
    struct keypair kp;
    struct dht_record r, d;
    uint8_t buf[DHT_RECORD_ENCODED_MAX + 4], bad[sizeof(buf)];
    int n;

    keypair_from(&kp, 1);
    make_record(&r, &kp);
    n = dht_record_encode(&r, buf, sizeof(buf));

    memcpy(bad, buf, (size_t)n);
    bad[0] = 2; /* unknown version */
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), -EBADMSG);
    assert_int_equal(dht_record_decode(&d, bad, 1), -EBADMSG);
    bad[0] = 0;
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), -EBADMSG);

    memcpy(bad, buf, (size_t)n);
    bad[1] = 0x04; /* unknown flag bit */
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), -EBADMSG);

    /* The mailbox bit decodes, and is part of what is signed. */
    memcpy(bad, buf, (size_t)n);
    bad[1] = DHT_RECORD_FLAG_MAILBOX;
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), n);
    assert_true(d.mailbox);
    assert_false(d.tombstone);
    assert_int_equal(dht_record_verify(&d), -EBADMSG);
    r.mailbox = true;
    assert_int_equal(dht_record_sign(&r, kp.sk), 0);
    assert_int_equal(dht_record_encode(&r, bad, sizeof(bad)), n);
    assert_int_equal(bad[1], DHT_RECORD_FLAG_MAILBOX);
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), n);
    assert_true(dht_record_equal(&d, &r));
    assert_int_equal(dht_record_verify(&d), 0);
    r.mailbox = false;

    memcpy(bad, buf, (size_t)n);
    bad[1] = DHT_RECORD_FLAG_TOMBSTONE; /* tombstone with a value */
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), -EBADMSG);

    memcpy(bad, buf, (size_t)n);
    bad[154] = (DHT_RECORD_VALUE_MAX + 1) >> 8; /* value_len over the cap */
    bad[155] = (DHT_RECORD_VALUE_MAX + 1) & 0xff;
    assert_int_equal(dht_record_decode(&d, bad, sizeof(bad)), -EBADMSG);
    bad[154] = 0xff;
    bad[155] = 0xff;
    assert_int_equal(dht_record_decode(&d, bad, sizeof(bad)), -EBADMSG);

    /* value_len claiming more than is there: incomplete, not a read past the end. */
    memcpy(bad, buf, (size_t)n);
    bad[155] = (uint8_t)(bad[155] + 1);
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), -EAGAIN);

    /* A decoded record with a flipped payload byte decodes but does not verify. */
    memcpy(bad, buf, (size_t)n);
    bad[n - 1] ^= 1;
    assert_int_equal(dht_record_decode(&d, bad, (size_t)n), n);
    assert_int_equal(dht_record_verify(&d), -EBADMSG);
}

static void test_ident_and_equal(void **state)
{
    (void)state;
    struct keypair kp;
    struct dht_record r, t;
    struct dht_record_ident id;
    uint8_t copy[sizeof(VALUE)];

    keypair_from(&kp, 1);
    make_record(&r, &kp);
    dht_record_ident_of(&r, &id);
    assert_memory_equal(&id.key, &r.key, sizeof(id.key));
    assert_memory_equal(&id.value_id, &r.value_id, sizeof(id.value_id));
    assert_true(id.seq == r.seq);
    assert_false(id.tombstone);

    /* Equality compares value bytes, not pointers. */
    memcpy(copy, VALUE, sizeof(VALUE));
    t = r;
    t.value = copy;
    assert_true(dht_record_equal(&t, &r));
    t.sig[0] ^= 1;
    assert_false(dht_record_equal(&t, &r));
    t = r;
    t.expiry_ms++;
    assert_false(dht_record_equal(&t, &r));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_tampered_fields_refused),
        cmocka_unit_test(test_form_checks),
        cmocka_unit_test(test_encode_decode_roundtrip),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_decode_rejects_malformed),
        cmocka_unit_test(test_ident_and_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
