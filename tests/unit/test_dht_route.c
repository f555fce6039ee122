/*
 * test_dht_route.c: routing state (dht/route.c): leaf set insert / evict / remove /
 * closest, routing-table placement, Pastry next hop (leaf set, table, rare case,
 * suspects and exclusions), replica sets, and the RFC 6298 timer arithmetic.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/dht_route.h"

/* An ID whose first two bytes are hi, lo and the rest zero. */
static struct dht_id idx(uint8_t hi, uint8_t lo)
{
    struct dht_id id;
    memset(&id, 0, sizeof(id));
    id.b[0] = hi;
    id.b[1] = lo;
    return id;
}

static bool is(const struct dht_id *a, uint8_t hi, uint8_t lo)
{
    struct dht_id b = idx(hi, lo);
    return dht_id_eq(a, &b);
}

static struct dht_peer pr(uint8_t hi, uint8_t lo)
{
    struct dht_peer p;
    memset(&p, 0, sizeof(p));
    p.id = idx(hi, lo);
    p.addr.len = 2;
    p.addr.b[0] = hi;
    p.addr.b[1] = lo;
    return p;
}

static void test_leafset_order_and_eviction(void **state)
{
    struct dht_route rt;
    struct dht_id self = idx(0x80, 0);
    struct dht_peer out[8];
    bool changed;

    (void)state;
    assert_int_equal(dht_route_init(&rt, &self, 2), 0);
    /* successors 0x81, 0x83, then 0x82 slots in between */
    assert_non_null(
        dht_route_add(&rt, &(struct dht_peer){pr(0x83, 0).id, pr(0x83, 0).addr}, &changed));
    assert_true(changed);
    assert_non_null(dht_route_add(&rt, &(struct dht_peer){pr(0x81, 0).id, pr(0x81, 0).addr}, NULL));
    assert_int_equal(rt.n_succs, 2);
    assert_true(is(&rt.pool[rt.succs[0]].peer.id, 0x81, 0));
    assert_true(is(&rt.pool[rt.succs[1]].peer.id, 0x83, 0));
    /* a closer successor evicts the farthest one */
    struct dht_peer p82 = pr(0x82, 0);
    assert_non_null(dht_route_add(&rt, &p82, &changed));
    assert_true(changed);
    assert_int_equal(rt.n_succs, 2);
    assert_true(dht_id_eq(&rt.pool[rt.succs[1]].peer.id, &p82.id));
    /* with 3 nodes in a ring of 4 the sides overlap: 0x83 and 0x81 are also preds */
    assert_int_equal(rt.n_preds, 2);
    assert_true(is(&rt.pool[rt.preds[0]].peer.id, 0x83, 0) ||
                dht_id_eq(&rt.pool[rt.preds[0]].peer.id, &p82.id));
    /* predecessors on the other side push the far ones out */
    struct dht_peer p7f = pr(0x7f, 0), p7e = pr(0x7e, 0);
    assert_non_null(dht_route_add(&rt, &p7e, NULL));
    assert_non_null(dht_route_add(&rt, &p7f, NULL));
    assert_true(dht_id_eq(&rt.pool[rt.preds[0]].peer.id, &p7f.id));
    assert_true(dht_id_eq(&rt.pool[rt.preds[1]].peer.id, &p7e.id));
    assert_int_equal(dht_route_leafset(&rt, out, 8), 4);
    /* a far node fits nowhere in the leaf set; it still fills its table cell */
    struct dht_peer far = pr(0x10, 0);
    assert_false(dht_route_leaf_promising(&rt, &far.id));
    assert_true(dht_route_useful(&rt, &far.id));
    assert_non_null(dht_route_add(&rt, &far, &changed));
    assert_false(changed);
    assert_true(rt.pool[rt.cells[0][1] - 1].flags & DHT_NBR_RT);
    /* self is never an entry */
    assert_null(dht_route_add(&rt, &(struct dht_peer){self, {0, {0}}}, NULL));
    dht_route_free(&rt);
}

static void test_remove_and_closest(void **state)
{
    struct dht_route rt;
    struct dht_id self = idx(0x80, 0), key;
    struct dht_nbr *c[4];

    (void)state;
    assert_int_equal(dht_route_init(&rt, &self, 4), 0);
    for (uint8_t v = 0x7c; v <= 0x84; v++)
        if (v != 0x80)
            (void)dht_route_add(&rt, &(struct dht_peer){pr(v, 0).id, pr(v, 0).addr}, NULL);
    assert_int_equal(rt.n_preds, 4);
    assert_int_equal(rt.n_succs, 4);
    key = idx(0x82, 0x10);
    assert_int_equal(dht_route_closest_leaves(&rt, &key, c, 3), 3);
    assert_true(is(&c[0]->peer.id, 0x82, 0));
    assert_true(is(&c[1]->peer.id, 0x83, 0));
    assert_true(is(&c[2]->peer.id, 0x81, 0));
    /* replica of a key when among its n+1 closest: for 0x8090.. only 0x81 is closer */
    struct dht_id near = idx(0x80, 0x90);
    assert_true(dht_route_is_replica(&rt, &near, 1));
    assert_false(dht_route_is_replica(&rt, &near, 0));
    assert_false(dht_route_is_replica(&rt, &key, 2)); /* 0x81..0x84 are all closer */
    assert_true(dht_route_is_replica(&rt, &key, 4));
    /* removing a leaf shifts the rest and reports the side */
    struct dht_id k82 = idx(0x82, 0);
    assert_int_equal(dht_route_remove(&rt, &k82), DHT_NBR_SUCC);
    assert_int_equal(rt.n_succs, 3);
    assert_true(is(&rt.pool[rt.succs[1]].peer.id, 0x83, 0));
    assert_null(dht_route_find(&rt, &k82));
    assert_int_equal(dht_route_remove(&rt, &k82), 0);
    dht_route_free(&rt);
}

static void test_next_hop(void **state)
{
    struct dht_route rt;
    struct dht_id self = idx(0x80, 0), key, excl[1];
    struct dht_nbr *e;

    (void)state;
    assert_int_equal(dht_route_init(&rt, &self, 2), 0);
    /* leaf set 0x7e 0x7f | 0x81 0x82; table entries elsewhere */
    for (uint8_t v = 0x7e; v <= 0x82; v++)
        if (v != 0x80)
            (void)dht_route_add(&rt, &(struct dht_peer){pr(v, 0).id, pr(v, 0).addr}, NULL);
    struct dht_peer a = pr(0xa0, 0), b = pr(0x31, 0), c = pr(0x8f, 0);
    assert_non_null(dht_route_add(&rt, &a, NULL));
    assert_non_null(dht_route_add(&rt, &b, NULL));
    assert_non_null(dht_route_add(&rt, &c, NULL));

    /* step 1: key inside the leaf range -> numerically closest, or self */
    key = idx(0x81, 0x90);
    e = dht_route_next_hop(&rt, &key, NULL, 0);
    assert_non_null(e);
    assert_true(is(&e->peer.id, 0x82, 0));
    key = idx(0x80, 0x10);
    assert_null(dht_route_next_hop(&rt, &key, NULL, 0));
    /* step 2: table cell sharing one more digit */
    key = idx(0xa5, 0x55);
    e = dht_route_next_hop(&rt, &key, NULL, 0);
    assert_non_null(e);
    assert_true(dht_id_eq(&e->peer.id, &a.id));
    /* row 1: 0x8f shares digit '8' with self and has '15' at digit 1 */
    key = idx(0x8f, 0x55);
    e = dht_route_next_hop(&rt, &key, NULL, 0);
    assert_true(dht_id_eq(&e->peer.id, &c.id));
    /* step 3, rare case: empty cell for 0xc.. -> a known node closer to the key */
    key = idx(0xc0, 0);
    e = dht_route_next_hop(&rt, &key, NULL, 0);
    assert_non_null(e);
    assert_true(dht_id_eq(&e->peer.id, &a.id));
    /* exclusions and suspects are skipped: reroute after a timeout */
    key = idx(0xa5, 0x55);
    excl[0] = a.id;
    e = dht_route_next_hop(&rt, &key, excl, 1);
    assert_non_null(e);
    assert_false(dht_id_eq(&e->peer.id, &a.id));
    assert_true(dht_id_closer(&key, &e->peer.id, &self) < 0);
    dht_route_find(&rt, &c.id)->flags |= DHT_NBR_SUSPECT;
    key = idx(0x8f, 0x55);
    e = dht_route_next_hop(&rt, &key, NULL, 0);
    assert_non_null(e);
    assert_false(dht_id_eq(&e->peer.id, &c.id));
    /* a suspect table entry is replaced by a newcomer for the same cell */
    struct dht_peer c2 = pr(0x8f, 0x80);
    assert_non_null(dht_route_add(&rt, &c2, NULL));
    e = dht_route_next_hop(&rt, &key, NULL, 0);
    assert_true(dht_id_eq(&e->peer.id, &c2.id));
    assert_int_equal(dht_route_depth(&rt), 2);
    dht_route_free(&rt);
}

static void test_tie_break(void **state)
{
    struct dht_route rt;
    struct dht_id self = idx(0x00, 0), key = idx(0x80, 0);
    struct dht_nbr *e;

    (void)state;
    /* 0x7f.. and 0x81.. are equally far from 0x80..: the smaller ID wins, at
     * every node, so two nodes never both think they are the root */
    assert_int_equal(dht_route_init(&rt, &self, 4), 0);
    struct dht_peer p81 = pr(0x81, 0), p7f = pr(0x7f, 0);
    (void)dht_route_add(&rt, &p81, NULL);
    (void)dht_route_add(&rt, &p7f, NULL);
    e = dht_route_next_hop(&rt, &key, NULL, 0);
    assert_non_null(e);
    assert_true(is(&e->peer.id, 0x7f, 0));
    dht_route_free(&rt);
}

static void test_table_grows_without_bound_checks(void **state)
{
    struct dht_route rt;
    struct dht_id self = idx(0x55, 0x55);
    unsigned added = 0;

    (void)state;
    assert_int_equal(dht_route_init(&rt, &self, 8), 0);
    /* fill many cells of rows 0..3; the pool never exceeds its cap */
    for (unsigned i = 0; i < 4096; i++) {
        struct dht_peer p;
        memset(&p, 0, sizeof(p));
        p.id.b[0] = (uint8_t)(i >> 4);
        p.id.b[1] = (uint8_t)(i << 4 | (i & 0xf));
        p.id.b[2] = (uint8_t)i;
        if (dht_route_add(&rt, &p, NULL) != NULL)
            added++;
    }
    assert_true(added > 16);
    assert_true(rt.pool_alloc <= DHT_ROUTE_POOL_MAX);
    for (unsigned r = 0; r < DHT_ROUTE_ROWS; r++)
        for (unsigned c = 0; c < DHT_ROUTE_COLS; c++)
            if (rt.cells[r][c]) {
                const struct dht_id *id = &rt.pool[rt.cells[r][c] - 1].peer.id;
                assert_int_equal(dht_id_shared_prefix(&self, id), r);
                assert_int_equal(dht_id_digit(id, r), c);
            }
    assert_int_equal(rt.n_preds, 8);
    assert_int_equal(rt.n_succs, 8);
    dht_route_free(&rt);
}

/* A shadow of every node's membership bits, kept only from on_change. */
struct shadow {
    struct dht_id id[1024];
    unsigned bits[1024];
    size_t n;
    unsigned calls;
};

static void shadow_change(void *arg, const struct dht_peer *p, unsigned before, unsigned after)
{
    struct shadow *sh = arg;
    size_t i;

    sh->calls++;
    assert_int_not_equal(before, after);
    for (i = 0; i < sh->n && !dht_id_eq(&sh->id[i], &p->id); i++)
        ;
    if (i == sh->n) {
        assert_true(sh->n < 1024);
        sh->id[sh->n] = p->id;
        sh->bits[sh->n++] = 0;
    }
    /* each report starts from what the previous one left */
    assert_int_equal(sh->bits[i], before);
    sh->bits[i] = after;
}

static void test_change_hook_matches_table(void **state)
{
    struct dht_route rt;
    struct dht_id self = idx(0x55, 0x55);
    struct shadow *sh = calloc(1, sizeof(*sh));
    uint32_t x = 12345;

    (void)state;
    assert_non_null(sh);
    assert_int_equal(dht_route_init(&rt, &self, 4), 0);
    rt.on_change = shadow_change;
    rt.change_arg = sh;
    for (unsigned i = 0; i < 3000; i++) {
        struct dht_peer p;
        x = x * 1103515245u + 12345u;
        memset(&p, 0, sizeof(p));
        p.id.b[0] = (uint8_t)(x >> 24);
        p.id.b[1] = (uint8_t)(x >> 16);
        p.id.b[2] = (uint8_t)(x >> 8) & 0x3; /* repeats: some adds are of known nodes */
        if ((x & 0x700) == 0) {
            (void)dht_route_remove(&rt, &p.id);
            continue;
        }
        if ((x & 0x7000) == 0) {
            struct dht_nbr *e = dht_route_find(&rt, &p.id);
            if (e != NULL) /* a suspect's cell may be taken over */
                e->flags |= DHT_NBR_SUSPECT;
        }
        (void)dht_route_add(&rt, &p, NULL);
    }
    assert_true(sh->calls > 100);
    /* every node's shadow bits are its bits in the table */
    for (size_t i = 0; i < sh->n; i++) {
        const struct dht_nbr *e = dht_route_find(&rt, &sh->id[i]);
        unsigned real = 0;
        if (e != NULL)
            real = e->flags & (DHT_NBR_RT | DHT_NBR_LEAF);
        assert_int_equal(sh->bits[i], real);
    }
    for (unsigned i = 0; i < rt.pool_len; i++) {
        unsigned real = rt.pool[i].flags & (DHT_NBR_RT | DHT_NBR_LEAF);
        size_t k;
        if (real == 0)
            continue;
        for (k = 0; k < sh->n && !dht_id_eq(&sh->id[k], &rt.pool[i].peer.id); k++)
            ;
        assert_true(k < sh->n);
    }
    dht_route_free(&rt);
    free(sh);
}

static void test_rto(void **state)
{
    struct dht_rto r = {0, 0, 0};
    struct dht_rto_config cfg = {1000, 200, 8000};

    (void)state;
    /* RFC 6298 2.1: before a sample, the initial value */
    assert_int_equal(dht_rto_value(&r, &cfg), 1000);
    /* 2.2: first sample R=100 -> SRTT 100, RTTVAR 50, RTO 300 */
    dht_rto_sample(&r, 100);
    assert_int_equal(dht_rto_value(&r, &cfg), 300);
    /* 2.3: R=100 again -> RTTVAR 37.5, SRTT 100 -> 250 */
    dht_rto_sample(&r, 100);
    assert_int_equal(dht_rto_value(&r, &cfg), 250);
    /* floor */
    for (int i = 0; i < 50; i++)
        dht_rto_sample(&r, 10);
    assert_int_equal(dht_rto_value(&r, &cfg), 200);
    /* 5.5: backoff doubles, capped at 2.5's maximum */
    dht_rto_backoff(&r);
    assert_int_equal(dht_rto_value(&r, &cfg), 400);
    for (int i = 0; i < 10; i++)
        dht_rto_backoff(&r);
    assert_int_equal(dht_rto_value(&r, &cfg), 8000);
    /* a new sample clears the backoff */
    dht_rto_sample(&r, 10);
    assert_int_equal(dht_rto_value(&r, &cfg), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leafset_order_and_eviction),
        cmocka_unit_test(test_remove_and_closest),
        cmocka_unit_test(test_next_hop),
        cmocka_unit_test(test_tie_break),
        cmocka_unit_test(test_table_grows_without_bound_checks),
        cmocka_unit_test(test_rto),
        cmocka_unit_test(test_change_hook_matches_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
