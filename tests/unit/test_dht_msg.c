/*
 * test_dht_msg.c: the DHT wire codec (dht/msg.c): round trips of every attribute,
 * every truncation refused, unknown attributes skipped, caps enforced, and the
 * byte layout of the header as docs/DHT-WIRE.md documents it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "p2p/dht_msg.h"

static struct dht_id id_fill(uint8_t v)
{
    struct dht_id id;
    memset(id.b, v, sizeof(id.b));
    return id;
}

static struct dht_peer peer(uint8_t v, uint8_t alen)
{
    struct dht_peer p;
    memset(&p, 0, sizeof(p));
    p.id = id_fill(v);
    p.addr.len = alen;
    for (unsigned i = 0; i < alen; i++)
        p.addr.b[i] = (uint8_t)(v + i);
    return p;
}

static uint8_t sk[64], pk[32];
static const uint8_t value[] = "sip:alice@example.org;expires=3600";

/* A message using every attribute. */
static void full_msg(struct dht_msg *m)
{
    struct dht_id sender = id_fill(0x11);
    struct dht_record *r;

    dht_msg_init(m, DHT_MSG_REPLICATE, &sender);
    m->flags = DHT_FLAG_ACK_REQ | DHT_FLAG_CLIENT;
    m->hops = 3;
    m->txid = 0xdeadbeef;
    m->key = id_fill(0x22);
    m->origin = peer(0x33, 4);
    m->req_id = 77;
    m->level = 5;
    m->root = peer(0x44, DHT_ADDR_MAX);
    m->status = -ENOENT;
    m->lo = id_fill(0x55);
    m->hi = id_fill(0x66);
    m->count = 123456;
    memset(m->sender_key, 0x77, DHT_PUBKEY_LEN);
    m->summary_len = 20;
    memset(m->summary, 0x88, 20);
    m->have = DHT_HAVE(DHT_ATTR_KEY) | DHT_HAVE(DHT_ATTR_ORIGIN) | DHT_HAVE(DHT_ATTR_REQ_ID) |
              DHT_HAVE(DHT_ATTR_LEVEL) | DHT_HAVE(DHT_ATTR_ROOT) | DHT_HAVE(DHT_ATTR_STATUS) |
              DHT_HAVE(DHT_ATTR_LO) | DHT_HAVE(DHT_ATTR_HI) | DHT_HAVE(DHT_ATTR_COUNT) |
              DHT_HAVE(DHT_ATTR_SENDER_KEY) | DHT_HAVE(DHT_ATTR_SUMMARY) |
              DHT_HAVE(DHT_ATTR_AVOID) | DHT_HAVE(DHT_ATTR_PATH);
    m->n_path = 2;
    m->path[0].id = id_fill(0xa1);
    m->path[0].rtt_ms = 17;
    m->path[1].id = id_fill(0xa2);
    m->path[1].rtt_ms = DHT_PATH_RTT_UNKNOWN;
    m->n_avoid = 2;
    m->avoid[0] = id_fill(0x99);
    m->avoid[1] = id_fill(0x9a);
    m->n_peers = 3;
    m->peers[0] = peer(1, 4);
    m->peers[1] = peer(2, 0);
    m->peers[2] = peer(3, 18);
    m->n_idents = 2;
    m->idents[0].key = id_fill(9);
    m->idents[0].value_id = id_fill(10);
    m->idents[0].seq = 0x0102030405060708ull;
    m->idents[0].tombstone = true;
    m->idents[1].key = id_fill(12);
    m->idents[1].value_id = id_fill(13);
    m->idents[1].seq = 1;
    m->n_records = 1;
    r = &m->records[0];
    memset(r, 0, sizeof(*r));
    r->key = id_fill(0x22);
    r->value_id = id_fill(0x23);
    r->seq = 4;
    r->expiry_ms = 1000000;
    r->value = value;
    r->value_len = sizeof(value) - 1;
    assert_int_equal(dht_record_sign(r, sk), 0);
}

static void assert_peer_eq(const struct dht_peer *a, const struct dht_peer *b)
{
    assert_true(dht_id_eq(&a->id, &b->id));
    assert_int_equal(a->addr.len, b->addr.len);
    assert_memory_equal(a->addr.b, b->addr.b, a->addr.len);
}

static void test_round_trip(void **state)
{
    struct dht_msg m, d;
    uint8_t buf[4096];
    int len;

    (void)state;
    full_msg(&m);
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_true(len > DHT_MSG_HEADER_LEN);
    assert_int_equal(dht_msg_decode(&d, buf, (size_t)len), 0);
    assert_int_equal(d.version, 1);
    assert_int_equal(d.type, DHT_MSG_REPLICATE);
    assert_int_equal(d.flags, DHT_FLAG_ACK_REQ | DHT_FLAG_CLIENT);
    assert_int_equal(d.hops, 3);
    assert_int_equal(d.txid, 0xdeadbeef);
    assert_true(dht_id_eq(&d.sender, &m.sender));
    assert_int_equal(d.have & ~DHT_HAVE(DHT_ATTR_PEERS) & ~DHT_HAVE(DHT_ATTR_IDENTS) &
                         ~DHT_HAVE(DHT_ATTR_RECORD),
                     m.have);
    assert_true(dht_id_eq(&d.key, &m.key));
    assert_peer_eq(&d.origin, &m.origin);
    assert_peer_eq(&d.root, &m.root);
    assert_int_equal(d.req_id, 77);
    assert_int_equal(d.level, 5);
    assert_int_equal(d.status, -ENOENT);
    assert_true(dht_id_eq(&d.lo, &m.lo));
    assert_true(dht_id_eq(&d.hi, &m.hi));
    assert_int_equal(d.count, 123456);
    assert_memory_equal(d.sender_key, m.sender_key, DHT_PUBKEY_LEN);
    assert_int_equal(d.summary_len, 20);
    assert_memory_equal(d.summary, m.summary, 20);
    assert_int_equal(d.n_avoid, 2);
    assert_true(dht_id_eq(&d.avoid[0], &m.avoid[0]));
    assert_true(dht_id_eq(&d.avoid[1], &m.avoid[1]));
    assert_int_equal(d.n_path, 2);
    assert_true(dht_id_eq(&d.path[0].id, &m.path[0].id));
    assert_int_equal(d.path[0].rtt_ms, 17);
    assert_true(dht_id_eq(&d.path[1].id, &m.path[1].id));
    assert_int_equal(d.path[1].rtt_ms, DHT_PATH_RTT_UNKNOWN);
    assert_int_equal(d.n_peers, 3);
    for (unsigned i = 0; i < 3; i++)
        assert_peer_eq(&d.peers[i], &m.peers[i]);
    assert_int_equal(d.n_idents, 2);
    assert_true(dht_id_eq(&d.idents[0].key, &m.idents[0].key));
    assert_true(dht_id_eq(&d.idents[0].value_id, &m.idents[0].value_id));
    assert_true(d.idents[0].seq == m.idents[0].seq);
    assert_true(d.idents[0].tombstone);
    assert_false(d.idents[1].tombstone);
    assert_int_equal(d.n_records, 1);
    assert_true(dht_record_equal(&d.records[0], &m.records[0]));
    assert_int_equal(dht_record_verify(&d.records[0]), 0);
    /* record values point into the buffer: no copy, no allocation */
    assert_true(d.records[0].value >= buf && d.records[0].value < buf + len);
}

static void test_header_layout(void **state)
{
    struct dht_msg m;
    struct dht_id s = id_fill(0xab);
    uint8_t buf[64];

    (void)state;
    dht_msg_init(&m, DHT_MSG_PING, &s);
    m.flags = DHT_FLAG_ACK_REQ;
    m.txid = 0x01020304;
    assert_int_equal(dht_msg_encode(&m, buf, sizeof(buf)), DHT_MSG_HEADER_LEN);
    assert_int_equal(buf[DHT_MSG_OFF_LEN], 0);
    assert_int_equal(buf[DHT_MSG_OFF_LEN + 1], DHT_MSG_HEADER_LEN);
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[1], DHT_MSG_PING);
    assert_int_equal(buf[DHT_MSG_OFF_FLAGS], DHT_FLAG_ACK_REQ);
    assert_int_equal(buf[DHT_MSG_OFF_HOPS], 0);
    assert_int_equal(buf[DHT_MSG_OFF_TXID], 1);
    assert_int_equal(buf[DHT_MSG_OFF_TXID + 3], 4);
    assert_memory_equal(buf + DHT_MSG_OFF_SENDER, s.b, DHT_ID_LEN);
    /* too small a buffer: -ENOSPC, never a write past cap */
    assert_int_equal(dht_msg_encode(&m, buf, DHT_MSG_HEADER_LEN - 1), -ENOSPC);
}

static void test_every_truncation_fails(void **state)
{
    struct dht_msg m, d;
    uint8_t buf[4096];
    int len;

    (void)state;
    full_msg(&m);
    len = dht_msg_encode(&m, buf, sizeof(buf));
    assert_true(len > 0);
    /* The header carries the total length, so every strict prefix is refused,
     * and so is trailing junk. */
    for (int cut = 0; cut < len; cut++)
        assert_int_equal(dht_msg_decode(&d, buf, (size_t)cut), -EBADMSG);
    buf[len] = 0;
    assert_int_equal(dht_msg_decode(&d, buf, (size_t)len + 1), -EBADMSG);
    assert_int_equal(dht_msg_decode(&d, buf, (size_t)len), 0);
}

static size_t put_attr(uint8_t *p, unsigned code, const void *v, size_t n)
{
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    memcpy(p + 4, v, n);
    return 4 + n;
}

/* Sets the header's total-length field once the attributes are in. */
static size_t fin(uint8_t *buf, size_t len)
{
    buf[DHT_MSG_OFF_LEN] = (uint8_t)(len >> 8);
    buf[DHT_MSG_OFF_LEN + 1] = (uint8_t)len;
    return len;
}

static size_t header(uint8_t *buf, unsigned type)
{
    memset(buf, 0, DHT_MSG_HEADER_LEN);
    buf[0] = 1;
    buf[1] = (uint8_t)type;
    memset(buf + DHT_MSG_OFF_SENDER, 0x42, DHT_ID_LEN);
    return DHT_MSG_HEADER_LEN;
}

static void test_unknown_skipped(void **state)
{
    uint8_t buf[256], junk[17], key[20];
    struct dht_msg d;
    size_t len;

    (void)state;
    memset(junk, 0xee, sizeof(junk));
    memset(key, 0x5a, sizeof(key));
    len = header(buf, DHT_MSG_LOOKUP);
    len += put_attr(buf + len, 0x7fff, junk, sizeof(junk)); /* unknown */
    len += put_attr(buf + len, DHT_ATTR_KEY, key, sizeof(key));
    len += put_attr(buf + len, 200, junk, 0); /* unknown, empty */
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), 0);
    assert_int_equal(d.have, DHT_HAVE(DHT_ATTR_KEY));
    assert_memory_equal(d.key.b, key, 20);
    /* an unknown message type still decodes; the node drops and counts it */
    len = header(buf, 200);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), 0);
    assert_int_equal(d.type, 200);
    /* a wrong version is refused, and so is a length field that disagrees */
    buf[DHT_MSG_OFF_LEN + 1]++;
    assert_int_equal(dht_msg_decode(&d, buf, len), -EBADMSG);
    buf[0] = 2;
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
}

static void test_bad_attributes(void **state)
{
    uint8_t buf[8192], v[DHT_MSG_SUMMARY_MAX + 16];
    struct dht_msg d;
    size_t len;

    (void)state;
    memset(v, 0, sizeof(v));
    /* known attribute with the wrong size */
    len = header(buf, DHT_MSG_LOOKUP);
    len += put_attr(buf + len, DHT_ATTR_KEY, v, 19);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    /* duplicate single-valued attribute */
    len = header(buf, DHT_MSG_LOOKUP);
    len += put_attr(buf + len, DHT_ATTR_REQ_ID, v, 4);
    len += put_attr(buf + len, DHT_ATTR_REQ_ID, v, 4);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    /* attribute length past the end */
    len = header(buf, DHT_MSG_LOOKUP);
    len += put_attr(buf + len, DHT_ATTR_KEY, v, 20);
    buf[DHT_MSG_HEADER_LEN + 3] = 21;
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    /* peer address longer than DHT_ADDR_MAX */
    len = header(buf, DHT_MSG_LOOKUP);
    v[20] = DHT_ADDR_MAX + 1;
    len += put_attr(buf + len, DHT_ATTR_ORIGIN, v, 21 + DHT_ADDR_MAX + 1);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    v[20] = 0;
    /* level out of range */
    len = header(buf, DHT_MSG_ROW_REQ);
    v[0] = DHT_ID_DIGITS;
    len += put_attr(buf + len, DHT_ATTR_LEVEL, v, 1);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    v[0] = 0;
    /* summary over its cap */
    len = header(buf, DHT_MSG_SYNC);
    len += put_attr(buf + len, DHT_ATTR_SUMMARY, v, DHT_MSG_SUMMARY_MAX + 1);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    /* identity flags with unknown bits */
    {
        uint8_t idv[1 + DHT_IDENT_WIRE_LEN];
        memset(idv, 0, sizeof(idv));
        idv[0] = 1;
        idv[DHT_IDENT_WIRE_LEN] = 0x02;
        len = header(buf, DHT_MSG_FETCH);
        len += put_attr(buf + len, DHT_ATTR_IDENTS, idv, sizeof(idv));
        assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    }
    /* AVOID: empty, over its cap, a length that does not match the count, twice */
    {
        uint8_t av[1 + 20 * (DHT_MSG_AVOID_MAX + 1)];
        memset(av, 0, sizeof(av));
        len = header(buf, DHT_MSG_LOOKUP);
        len += put_attr(buf + len, DHT_ATTR_AVOID, av, 1);
        assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
        av[0] = DHT_MSG_AVOID_MAX + 1;
        len = header(buf, DHT_MSG_LOOKUP);
        len += put_attr(buf + len, DHT_ATTR_AVOID, av, sizeof(av));
        assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
        av[0] = 2;
        len = header(buf, DHT_MSG_LOOKUP);
        len += put_attr(buf + len, DHT_ATTR_AVOID, av, 1 + 20);
        assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
        av[0] = 1;
        len = header(buf, DHT_MSG_LOOKUP);
        len += put_attr(buf + len, DHT_ATTR_AVOID, av, 1 + 20);
        assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), 0);
        assert_int_equal(d.n_avoid, 1);
        len += put_attr(buf + len, DHT_ATTR_AVOID, av, 1 + 20);
        assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    }
    /* a record that does not decode */
    len = header(buf, DHT_MSG_REPLICATE);
    len += put_attr(buf + len, DHT_ATTR_RECORD, v, 40);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
}

static void test_caps(void **state)
{
    static uint8_t buf[DHT_MSG_MAX + 16];
    uint8_t v[1 + 49 * (DHT_MSG_PEERS_MAX + 1)];
    struct dht_msg m, d;
    struct dht_id s = id_fill(1);
    size_t len;

    (void)state;
    /* a PEERS count over the cap is refused even when the bytes are there */
    memset(v, 0, sizeof(v));
    v[0] = DHT_MSG_PEERS_MAX + 1;
    len = header(buf, DHT_MSG_LEAFSET);
    len += put_attr(buf + len, DHT_ATTR_PEERS, v, 1 + 21 * (DHT_MSG_PEERS_MAX + 1));
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    /* exactly the cap is fine */
    v[0] = DHT_MSG_PEERS_MAX;
    len = header(buf, DHT_MSG_LEAFSET);
    len += put_attr(buf + len, DHT_ATTR_PEERS, v, 1 + 21 * DHT_MSG_PEERS_MAX);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), 0);
    assert_int_equal(d.n_peers, DHT_MSG_PEERS_MAX);
    /* IDENTS over the cap */
    v[0] = DHT_MSG_IDENTS_MAX + 1;
    len = header(buf, DHT_MSG_FETCH);
    buf[len] = 0;
    buf[len + 1] = DHT_ATTR_IDENTS;
    {
        size_t alen = 1 + (size_t)DHT_IDENT_WIRE_LEN * (DHT_MSG_IDENTS_MAX + 1);
        buf[len + 2] = (uint8_t)(alen >> 8);
        buf[len + 3] = (uint8_t)alen;
        memset(buf + len + 4, 0, alen);
        buf[len + 4] = DHT_MSG_IDENTS_MAX + 1;
        len += 4 + alen;
    }
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    /* too many attributes */
    len = header(buf, DHT_MSG_PING);
    for (unsigned i = 0; i <= DHT_MSG_ATTRS_MAX; i++)
        len += put_attr(buf + len, 0x6000 + i, v, 0);
    assert_int_equal(dht_msg_decode(&d, buf, fin(buf, len)), -EBADMSG);
    /* oversized input */
    assert_int_equal(dht_msg_decode(&d, buf, DHT_MSG_MAX + 1), -EMSGSIZE);
    /* the encoder refuses counts over the caps */
    dht_msg_init(&m, DHT_MSG_LEAFSET, &s);
    m.n_peers = DHT_MSG_PEERS_MAX + 1;
    assert_int_equal(dht_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
    dht_msg_init(&m, DHT_MSG_LEAFSET, &s);
    m.origin.addr.len = DHT_ADDR_MAX + 1;
    m.have = DHT_HAVE(DHT_ATTR_ORIGIN);
    assert_int_equal(dht_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
    dht_msg_init(&m, DHT_MSG_LOOKUP, &s);
    m.n_avoid = DHT_MSG_AVOID_MAX + 1;
    assert_int_equal(dht_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
    dht_msg_init(&m, DHT_MSG_LOOKUP, &s);
    m.n_path = DHT_MSG_PATH_MAX + 1;
    assert_int_equal(dht_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(dht_msg_type_name(DHT_MSG_PING), "PING");
    assert_string_equal(dht_msg_type_name(DHT_MSG_FETCH), "FETCH");
    assert_string_equal(dht_msg_type_name(0), "?");
    assert_string_equal(dht_msg_type_name(250), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_unknown_skipped),
        cmocka_unit_test(test_bad_attributes),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_type_names),
    };
    if (sodium_init() < 0)
        return 1;
    crypto_sign_keypair(pk, sk);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
