/*
 * fuzz_gui_model.c: libFuzzer target for the ring viewer's model (gui/model.c): what
 * a daemon's control socket says, decoded by jansson, fed to every gui_model_apply_*.
 *
 * Each input is one JSON text (the viewer decodes each line the same way, with
 * JSON_REJECT_DUPLICATES).  A fresh model gets a status of a fixed daemon first,
 * then the input as that daemon's status, leafset, routes, peers and records
 * answers, as a route answer and as a watch event, at advancing times, with ticks
 * and layouts between.  Besides memory safety it checks the model's invariants:
 * nodes sorted by ID with no duplicates, at most GUI_NODES_MAX; arrows and each
 * connected node's lists within their caps; the dump is made and its "count" is
 * the live node count; a status without a 40-hex node_id is refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "model.h"

#define SELF_HEX "5555555555555555555555555555555555555555"

static void check(struct gui_model *m)
{
    size_t connected;
    json_t *d;

    if (m->n > GUI_NODES_MAX || m->n_arrows > GUI_ARROWS_MAX || m->n_types > GUI_TYPES_MAX)
        abort();
    for (size_t i = 0; i < m->n; i++) {
        const struct gui_detail *dt = m->nodes[i].detail;
        if (i > 0 && memcmp(m->nodes[i - 1].id.b, m->nodes[i].id.b, GUI_ID_LEN) >= 0)
            abort(); /* sorted, unique */
        if (dt != NULL && (dt->n_leaf > GUI_LEAF_MAX || dt->n_route > GUI_ROUTES_MAX ||
                           dt->n_keys > GUI_KEYS_MAX))
            abort();
        if (dt != NULL && dt->status_text != NULL && strlen(dt->status_text) > GUI_STATUS_TEXT_MAX)
            abort();
    }
    if (m->route.n_path > GUI_HOPS_MAX)
        abort();
    d = gui_model_dump(m);
    if (d == NULL || json_integer_value(json_object_get(d, "count")) !=
                         (json_int_t)gui_model_count(m, &connected))
        abort();
    json_decref(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gui_model *m;
    struct gui_id self, got, key;
    json_t *status, *j;
    uint64_t now = 1000;

    j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL)
        return 0;
    if (gui_model_new(&m) != 0)
        abort();
    status = json_pack("{s:s, s:s, s:s}", "node_id", SELF_HEX, "role", "member", "advertised",
                       "127.0.0.1:7560");
    if (gui_model_apply_status(m, status, now, &self) != 0)
        abort();
    json_decref(status);
    memset(key.b, 0xaa, sizeof(key.b));

    if (gui_model_apply_status(m, j, now, &got) == 0) {
        const char *id = json_string_value(json_object_get(j, "node_id"));
        struct gui_id want;
        if (gui_id_from_hex(&want, id) != 0 || memcmp(want.b, got.b, GUI_ID_LEN) != 0)
            abort(); /* accepted only with a valid node_id, and that one */
    }
    check(m);
    (void)gui_model_apply_leafset(m, &self, j, now += 10);
    (void)gui_model_apply_routes(m, &self, j, now += 10);
    (void)gui_model_apply_peers(m, &self, j, now += 10);
    (void)gui_model_apply_records(m, &self, j);
    check(m);
    (void)gui_model_apply_route(m, &self, "key", &key, j, now += 10);
    (void)gui_model_apply_event(m, &self, j, now += 10);
    gui_model_layout(m, 800, 800);
    (void)gui_model_hit(m, 400, 40, 14);
    check(m);
    /* Every element of an array as an event too (a stream of them). */
    if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e)
        {
            (void)gui_model_apply_event(m, &self, e, now += 1);
        }
    }
    (void)gui_model_tick(m, now + GUI_FORGET_MS);
    check(m);
    gui_model_source_lost(m, &self, now);
    gui_model_source_forget(m, &self, now);
    (void)gui_model_tick(m, now + 2 * GUI_FORGET_MS);
    check(m);
    json_decref(j);
    gui_model_free(m);
    return 0;
}
