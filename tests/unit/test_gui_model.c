/*
 * test_gui_model.c: the ring viewer's model (gui/model.c) without GTK: IDs to
 * angles, the daemons' answers and events to nodes, fading and forgetting, bounds
 * (nodes, arrows, unknown events) and the JSON dump.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"

#define A_HEX "8000000000000000000000000000000000000001"
#define B_HEX "4000000000000000000000000000000000000002"
#define C_HEX "c000000000000000000000000000000000000003"
#define D_HEX "0000000000000000000000000000000000000004"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &err);

    if (j == NULL)
        fail_msg("bad test JSON: %s", err.text);
    return j;
}

static struct gui_id id_of(const char *hex)
{
    struct gui_id id;

    assert_int_equal(gui_id_from_hex(&id, hex), 0);
    return id;
}

/* Feeds a status answer of the daemon with node_id hex and role; returns its ID. */
static struct gui_id connect_daemon(struct gui_model *m, const char *hex, const char *role,
                                    uint64_t now)
{
    char text[256];
    struct gui_id self;
    json_t *j;

    snprintf(text, sizeof(text),
             "{\"node_id\": \"%s\", \"role\": \"%s\", \"advertised\": \"127.0.0.1:7601\"}", hex,
             role);
    j = parse(text);
    assert_int_equal(gui_model_apply_status(m, j, now, &self), 0);
    json_decref(j);
    return self;
}

static void test_id_angle(void **state)
{
    struct gui_id id;
    char hex[GUI_ID_HEX_LEN + 1];

    (void)state;
    id = id_of(A_HEX);
    assert_true(fabs(gui_id_turn(&id) - 0.5) < 1e-12);
    id = id_of(B_HEX);
    assert_true(fabs(gui_id_turn(&id) - 0.25) < 1e-12);
    id = id_of("FFFFFFFF00000000000000000000000000000000");
    assert_true(gui_id_turn(&id) < 1.0 && gui_id_turn(&id) > 0.9999999);
    gui_id_to_hex(&id, hex);
    assert_string_equal(hex, "ffffffff00000000000000000000000000000000");
    /* Not 40 hex digits: refused, output untouched. */
    assert_int_equal(gui_id_from_hex(&id, "ffff"), -EINVAL);
    assert_int_equal(gui_id_from_hex(&id, "g000000000000000000000000000000000000000"), -EINVAL);
    assert_int_equal(gui_id_from_hex(&id, A_HEX "0"), -EINVAL);
    assert_int_equal(gui_id_from_hex(&id, NULL), -EINVAL);
    assert_int_equal(id.b[0], 0xff);
    assert_int_equal(gui_role_from_name("super-node"), GUI_ROLE_SUPER);
    assert_int_equal(gui_role_from_name("nonsense"), GUI_ROLE_UNKNOWN);
}

static void test_layout_positions(void **state)
{
    struct gui_model *m;
    struct gui_node *n;

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    struct gui_id a = connect_daemon(m, A_HEX, "member", 0);
    struct gui_id b = connect_daemon(m, B_HEX, "super-node", 0);
    gui_model_layout(m, 800, 800);
    assert_true(fabs(m->cx - 400) < 1e-9 && fabs(m->cy - 400) < 1e-9);
    /* Half a turn: straight down; a quarter: to the right (0 at the top, clockwise). */
    n = gui_model_find(m, &a);
    assert_true(fabs(n->x - 400) < 1e-6 && fabs(n->y - (400 + m->radius)) < 1e-6);
    n = gui_model_find(m, &b);
    assert_true(fabs(n->x - (400 + m->radius)) < 1e-6 && fabs(n->y - 400) < 1e-6);
    assert_ptr_equal(gui_model_hit(m, 400 + m->radius - 5, 403, 10), n);
    assert_null(gui_model_hit(m, 400, 400, 10));
    assert_true(gui_model_near_centre(m, 400 + 0.2 * m->radius, 400));
    assert_false(gui_model_near_centre(m, 400 + 0.3 * m->radius, 400));
    gui_model_free(m);
}

static void test_answers_make_nodes(void **state)
{
    struct gui_model *m;
    struct gui_node *n;
    size_t connected;
    json_t *j;

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    struct gui_id a = connect_daemon(m, A_HEX, "super-node", 0);
    j = parse("{\"self\": \"" A_HEX "\", \"preds\": [{\"id\": \"" B_HEX "\", \"addr\": null}],"
              " \"succs\": [{\"id\": \"" C_HEX "\", \"addr\": \"127.0.0.1:1\"}, {\"id\": 7}]}");
    assert_int_equal(gui_model_apply_leafset(m, &a, j, 10), 0);
    json_decref(j);
    j = parse("[{\"id\": \"" D_HEX "\", \"row\": 0, \"col\": 0}]");
    assert_int_equal(gui_model_apply_routes(m, &a, j, 10), 0);
    json_decref(j);
    assert_int_equal(m->n, 4);
    assert_int_equal(gui_model_count(m, &connected), 4);
    assert_int_equal(connected, 1);
    n = gui_model_find(m, &a);
    assert_int_equal(n->detail->n_leaf, 2);
    assert_int_equal(n->detail->n_route, 1);
    /* Sorted by ID: the ring order. */
    for (size_t i = 1; i < m->n; i++)
        assert_true(memcmp(m->nodes[i - 1].id.b, m->nodes[i].id.b, GUI_ID_LEN) < 0);
    struct gui_id b = id_of(B_HEX);
    n = gui_model_find(m, &b);
    assert_false(n->connected);
    assert_int_equal(n->role, GUI_ROLE_MEMBER);
    /* A peer flagged client is a client of this daemon, drawn inside near it. */
    j = parse("[{\"id\": \"" B_HEX "\", \"up\": true, \"client\": true, \"super\": false}]");
    assert_int_equal(gui_model_apply_peers(m, &a, j, 20), 0);
    json_decref(j);
    n = gui_model_find(m, &b);
    assert_int_equal(n->role, GUI_ROLE_CLIENT);
    assert_true(n->has_super);
    gui_model_layout(m, 800, 800);
    n = gui_model_find(m, &b);
    {
        double dx = n->x - m->cx, dy = n->y - m->cy;
        assert_true(sqrt(dx * dx + dy * dy) < m->radius - 5); /* inside the ring */
        assert_true(n->y > m->cy);                            /* near A, at the bottom */
    }
    /* Records: keys, tombstones left out; a wrong shape is an error. */
    j = parse("[{\"key\": \"" C_HEX "\", \"tombstone\": false},"
              " {\"key\": \"" D_HEX "\", \"tombstone\": true}, {\"key\": \"xyz\"}]");
    assert_int_equal(gui_model_apply_records(m, &a, j), 0);
    json_decref(j);
    assert_int_equal(gui_model_find(m, &a)->detail->n_keys, 1);
    j = parse("{\"preds\": 1}");
    assert_int_equal(gui_model_apply_leafset(m, &a, j, 30), -EBADMSG);
    assert_int_equal(gui_model_apply_routes(m, &a, j, 30), -EBADMSG);
    json_decref(j);
    j = parse("{\"role\": \"member\"}");
    struct gui_id none;
    assert_int_equal(gui_model_apply_status(m, j, 30, &none), -EBADMSG);
    json_decref(j);
    gui_model_free(m);
}

static void test_forget_and_fade(void **state)
{
    struct gui_model *m;
    struct gui_node *n;
    json_t *j;

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    struct gui_id a = connect_daemon(m, A_HEX, "member", 0);
    struct gui_id b = id_of(B_HEX);
    j = parse("[{\"id\": \"" B_HEX "\"}]");
    assert_int_equal(gui_model_apply_routes(m, &a, j, 0), 0);
    json_decref(j);
    assert_true(gui_model_tick(m, 100)); /* still growing in */
    /* Mentioned again at 4 s: still there at 8 s; gone (fading) 5 s after. */
    assert_non_null(gui_model_mention(m, &b, 4000));
    (void)gui_model_tick(m, 8000);
    assert_false(gui_model_find(m, &b)->gone);
    (void)gui_model_tick(m, 9000);
    n = gui_model_find(m, &b);
    assert_true(n->gone);
    assert_int_equal(gui_model_count(m, NULL), 1);
    assert_true(gui_model_tick(m, 9000 + GUI_FADE_MS - 1)); /* fading: animating */
    assert_non_null(gui_model_find(m, &b));
    (void)gui_model_tick(m, 9000 + GUI_FADE_MS);
    assert_null(gui_model_find(m, &b));
    /* A daemon whose connection breaks stays, as gone, until it is back. */
    gui_model_source_lost(m, &a, 20000);
    (void)gui_model_tick(m, 60000);
    n = gui_model_find(m, &a);
    assert_non_null(n);
    assert_true(n->gone && !n->connected);
    connect_daemon(m, A_HEX, "member", 61000);
    assert_false(gui_model_find(m, &a)->gone);
    /* Stopped by the viewer: gone at once; still named by the ring, it stays gone
     * (not revived), and goes once nobody names it. */
    gui_model_source_forget(m, &a, 62000);
    assert_null(gui_model_find(m, &a)->detail);
    assert_true(gui_model_find(m, &a)->gone);
    assert_non_null(gui_model_mention(m, &a, 63000));
    assert_true(gui_model_find(m, &a)->gone);
    assert_false(gui_model_tick(m, 64000)); /* faded: nothing to animate */
    assert_non_null(gui_model_find(m, &a));
    (void)gui_model_tick(m, 63000 + GUI_FORGET_MS);
    assert_null(gui_model_find(m, &a));
    assert_int_equal(m->n, 0);
    gui_model_free(m);
}

static void test_nodes_bounded(void **state)
{
    struct gui_model *m;
    struct gui_id id;

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    memset(&id, 0, sizeof(id));
    for (unsigned i = 0; i < GUI_NODES_MAX + 10; i++) {
        id.b[0] = (uint8_t)(i >> 8);
        id.b[1] = (uint8_t)i;
        id.b[19] = (uint8_t)(i * 7);
        (void)gui_model_mention(m, &id, 0);
    }
    assert_int_equal(m->n, GUI_NODES_MAX);
    assert_int_equal(m->nodes_refused, 10);
    gui_model_free(m);
}

static void test_events(void **state)
{
    struct gui_model *m;
    json_t *j;

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    struct gui_id a = connect_daemon(m, A_HEX, "member", 0);
    struct gui_id c = id_of(C_HEX), d = id_of(D_HEX);
    /* A message to a node not yet known makes it known, and an arrow. */
    j = parse("{\"event\": \"msg\", \"dir\": \"sent\", \"type\": \"LOOKUP\", \"peer\": \"" C_HEX
              "\", \"key\": \"" D_HEX "\", \"size\": 123}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_non_null(gui_model_find(m, &c));
    assert_int_equal(m->n_arrows, 1);
    assert_memory_equal(m->arrows[0].from.b, a.b, GUI_ID_LEN);
    assert_memory_equal(m->arrows[0].to.b, c.b, GUI_ID_LEN);
    assert_string_equal(m->types[m->arrows[0].type], "LOOKUP");
    /* Received from a node that is not connected: an arrow towards us. */
    j = parse("{\"event\": \"msg\", \"dir\": \"recv\", \"type\": \"PUT\", \"peer\": \"" C_HEX
              "\", \"size\": 9}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(m->n_arrows, 2);
    assert_memory_equal(m->arrows[1].to.b, a.b, GUI_ID_LEN);
    /* Neighbours and records change the detail. */
    j = parse("{\"event\": \"neighbour\", \"op\": \"add\", \"set\": \"leaf\", \"id\": \"" D_HEX
              "\", \"addr\": \"127.0.0.1:5\"}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(gui_model_find(m, &a)->detail->n_leaf, 1);
    assert_non_null(gui_model_find(m, &d));
    j = parse("{\"event\": \"neighbour\", \"op\": \"remove\", \"set\": \"leaf\", \"id\": \"" D_HEX
              "\", \"addr\": \"127.0.0.1:5\"}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(gui_model_find(m, &a)->detail->n_leaf, 0);
    j = parse("{\"event\": \"record\", \"op\": \"stored\", \"key\": \"" D_HEX "\"}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(gui_model_find(m, &a)->detail->n_keys, 1);
    /* replicated adds a key too; a tombstone, expired and dropped take it away. */
    j = parse("{\"event\": \"record\", \"op\": \"replicated\", \"key\": \"" C_HEX
              "\", \"tombstone\": false}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(gui_model_find(m, &a)->detail->n_keys, 2);
    j = parse("{\"event\": \"record\", \"op\": \"stored\", \"key\": \"" C_HEX
              "\", \"tombstone\": true}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    j = parse("{\"event\": \"record\", \"op\": \"dropped\", \"key\": \"" D_HEX "\"}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(gui_model_find(m, &a)->detail->n_keys, 0);
    /* A message to a bootstrap whose ID is not known (all zeros): no node, no arrow. */
    j = parse("{\"event\": \"msg\", \"dir\": \"sent\", \"type\": \"PING\", \"peer\": "
              "\"0000000000000000000000000000000000000000\", \"size\": 40}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(m->n_arrows, 2);
    assert_int_equal(m->n, 3);
    j = parse("{\"event\": \"role\", \"role\": \"super-node\"}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(gui_model_find(m, &a)->role, GUI_ROLE_SUPER);
    /* Unknown events are ignored; known ones with bad members are errors. */
    j = parse("{\"event\": \"something-new\", \"x\": [1, 2]}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), 0);
    json_decref(j);
    assert_int_equal(m->events_ignored, 1);
    j = parse("{\"event\": \"msg\", \"dir\": \"sideways\", \"peer\": \"" C_HEX "\"}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), -EBADMSG);
    json_decref(j);
    j = parse("{\"event\": \"msg\", \"dir\": \"sent\", \"peer\": \"short\"}");
    assert_int_equal(gui_model_apply_event(m, &a, j, 100), -EBADMSG);
    json_decref(j);
    /* Arrows expire after GUI_ARROW_MS. */
    (void)gui_model_tick(m, 100 + GUI_ARROW_MS);
    assert_int_equal(m->n_arrows, 0);
    gui_model_free(m);
}

static void test_arrows_bounded(void **state)
{
    struct gui_model *m;
    struct gui_id a = id_of(A_HEX), b = id_of(B_HEX);
    char type[16];

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    for (unsigned i = 0; i < GUI_ARROWS_MAX + 100; i++) {
        snprintf(type, sizeof(type), "T%u", i % 50); /* more types than the table holds */
        gui_model_add_arrow(m, &a, &b, type, false, i);
    }
    assert_int_equal(m->n_arrows, GUI_ARROWS_MAX);
    assert_int_equal(m->arrows_dropped_old, 100);
    /* The oldest went: the first left is number 100. */
    assert_int_equal(m->arrows[m->arrow_head].t0_ms, 100);
    assert_int_equal(m->n_types, GUI_TYPES_MAX - 1);
    assert_string_equal(m->types[GUI_TYPES_MAX - 1], "other");
    gui_model_free(m);
}

static void test_route(void **state)
{
    struct gui_model *m;
    struct gui_id key = id_of(D_HEX);
    json_t *j;

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    struct gui_id a = connect_daemon(m, A_HEX, "member", 0);
    /* Today's answer: root and hops only. */
    j = parse("{\"root\": {\"id\": \"" C_HEX "\", \"addr\": \"127.0.0.1:7\"}, \"hops\": 1}");
    assert_int_equal(gui_model_apply_route(m, &a, "alice", &key, j, 5), 0);
    json_decref(j);
    assert_true(m->route.valid);
    assert_int_equal(m->route.n_path, 0);
    assert_int_equal(m->route.hops, 1);
    assert_string_equal(m->route.root_addr, "127.0.0.1:7");
    /* With the path, hop by hop, from self to the root (the daemon's format: the
     * key's hash, self marked, rtt_ms null before a first sample). */
    j = parse("{\"key\": \"" B_HEX "\", \"root\": {\"id\": \"" C_HEX "\", \"addr\": "
              "\"127.0.0.1:7\"}, \"hops\": 2, \"path\": [{\"id\": \"" A_HEX
              "\", \"self\": true, \"rtt_ms\": 3}, {\"id\": \"" B_HEX "\", \"addr\": "
              "\"127.0.0.1:6\", \"rtt_ms\": null}, {\"id\": \"" C_HEX "\", \"addr\": "
              "\"127.0.0.1:7\", \"rtt_ms\": 0}]}");
    assert_int_equal(gui_model_apply_route(m, &a, "alice", &key, j, 6), 0);
    json_decref(j);
    assert_int_equal(m->route.n_path, 3);
    assert_memory_equal(m->route.key.b, id_of(B_HEX).b, GUI_ID_LEN);
    assert_string_equal(m->route.path_addr[0], "(self)");
    assert_int_equal(m->route.path_rtt_ms[0], 3);
    assert_int_equal(m->route.path_rtt_ms[1], -1);
    assert_int_equal(m->route.path_rtt_ms[2], 0);
    assert_non_null(gui_model_find(m, &m->route.path[1]));
    j = parse("{\"hops\": 2}");
    assert_int_equal(gui_model_apply_route(m, &a, "alice", &key, j, 6), -EBADMSG);
    json_decref(j);
    gui_model_free(m);
}

static void test_dump(void **state)
{
    struct gui_model *m;
    json_t *d, *nodes, *n;

    (void)state;
    assert_int_equal(gui_model_new(&m), 0);
    struct gui_id a = connect_daemon(m, A_HEX, "super-node", 0);
    json_t *j = parse("[{\"id\": \"" B_HEX "\"}]");
    assert_int_equal(gui_model_apply_routes(m, &a, j, 0), 0);
    json_decref(j);
    m->has_selected = true;
    m->selected = a;
    gui_model_layout(m, 800, 800);
    d = gui_model_dump(m);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "count")), 2);
    assert_int_equal(json_integer_value(json_object_get(d, "connected")), 1);
    assert_string_equal(json_string_value(json_object_get(d, "selected")), A_HEX);
    nodes = json_object_get(d, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    n = json_array_get(nodes, 1); /* sorted: B (0x40...) before A (0x80...) */
    assert_string_equal(json_string_value(json_object_get(n, "id")), A_HEX);
    assert_string_equal(json_string_value(json_object_get(n, "role")), "super-node");
    assert_true(json_is_true(json_object_get(n, "connected")));
    assert_true(fabs(json_real_value(json_object_get(n, "x")) - 400) < 0.1);
    assert_true(fabs(json_real_value(json_object_get(n, "y")) - (400 + m->radius)) < 0.1);
    n = json_array_get(nodes, 0);
    assert_true(json_is_false(json_object_get(n, "connected")));
    assert_string_equal(json_string_value(json_object_get(n, "role")), "member");
    json_decref(d);
    gui_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_angle),
        cmocka_unit_test(test_layout_positions),
        cmocka_unit_test(test_answers_make_nodes),
        cmocka_unit_test(test_forget_and_fade),
        cmocka_unit_test(test_nodes_bounded),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_arrows_bounded),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
