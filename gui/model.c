/*
 * model.c: the ring viewer's model (model.h has the design and the bounds).
 *
 * Every function takes the time as an argument and does no I/O, so the tests drive
 * it with JSON literals and a fake clock.  Input is the daemons' JSON: every
 * member is checked for type before use, IDs must be 40 hex digits, and what does
 * not fit a bound is dropped (and, for nodes, counted), never grown.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/dht_id.h"

#define GUI_PI 3.14159265358979323846

/* ---- IDs ------------------------------------------------------------------------------- */

/* The same 20 bytes as a dht_id: dht/id.c's hex codec. */
int gui_id_from_hex(struct gui_id *out, const char *hex)
{
    struct dht_id id;

    if (hex == NULL || strlen(hex) != GUI_ID_HEX_LEN ||
        dht_id_from_hex(&id, hex, GUI_ID_HEX_LEN) != 0)
        return -EINVAL;
    memcpy(out->b, id.b, GUI_ID_LEN);
    return 0;
}

void gui_id_to_hex(const struct gui_id *id, char *buf)
{
    struct dht_id d;

    memcpy(d.b, id->b, GUI_ID_LEN);
    dht_id_to_hex(&d, buf);
}

double gui_id_turn(const struct gui_id *id)
{
    uint32_t top = (uint32_t)id->b[0] << 24 | (uint32_t)id->b[1] << 16 | (uint32_t)id->b[2] << 8 |
                   (uint32_t)id->b[3];

    return (double)top / 4294967296.0;
}

static const char *const role_names[] = {
    [GUI_ROLE_UNKNOWN] = "unknown", [GUI_ROLE_SEEKING] = "seeking",  [GUI_ROLE_CLIENT] = "client",
    [GUI_ROLE_MEMBER] = "member",   [GUI_ROLE_SUPER] = "super-node",
};

enum gui_role gui_role_from_name(const char *name)
{
    if (name == NULL)
        return GUI_ROLE_UNKNOWN;
    for (unsigned i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
        if (strcmp(name, role_names[i]) == 0)
            return (enum gui_role)i;
    return GUI_ROLE_UNKNOWN;
}

const char *gui_role_name(enum gui_role role)
{
    return (unsigned)role < sizeof(role_names) / sizeof(role_names[0]) ? role_names[role] : "?";
}

/* ---- nodes ----------------------------------------------------------------------------- */

int gui_model_new(struct gui_model **out)
{
    struct gui_model *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return -ENOMEM;
    m->nodes = calloc(GUI_NODES_MAX, sizeof(*m->nodes));
    if (m->nodes == NULL) {
        free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

static void detail_free(struct gui_detail *d)
{
    if (d != NULL)
        free(d->status_text);
    free(d);
}

void gui_model_free(struct gui_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        detail_free(m->nodes[i].detail);
    free(m->nodes);
    free(m);
}

/* The index of id, or of where it would be inserted (with *found false). */
static size_t node_search(const struct gui_model *m, const struct gui_id *id, bool *found)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(m->nodes[mid].id.b, id->b, GUI_ID_LEN);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

struct gui_node *gui_model_find(struct gui_model *m, const struct gui_id *id)
{
    bool found;
    size_t i = node_search(m, id, &found);

    return found ? &m->nodes[i] : NULL;
}

struct gui_node *gui_model_mention(struct gui_model *m, const struct gui_id *id, uint64_t now)
{
    bool found;
    size_t i = node_search(m, id, &found);
    struct gui_node *n;

    if (found) {
        n = &m->nodes[i];
        if (n->gone && !n->source && !n->stopped) { /* back before it faded: a new life */
            n->gone = false;
            n->born_ms = now;
        }
        n->mentioned_ms = now;
        return n;
    }
    if (m->n >= GUI_NODES_MAX) {
        m->nodes_refused++;
        return NULL;
    }
    memmove(&m->nodes[i + 1], &m->nodes[i], (m->n - i) * sizeof(m->nodes[0]));
    m->n++;
    n = &m->nodes[i];
    memset(n, 0, sizeof(*n));
    n->id = *id;
    n->born_ms = now;
    n->mentioned_ms = now;
    return n;
}

static void node_remove(struct gui_model *m, size_t i)
{
    detail_free(m->nodes[i].detail);
    memmove(&m->nodes[i], &m->nodes[i + 1], (m->n - i - 1) * sizeof(m->nodes[0]));
    m->n--;
}

/* A member string of o that is an ID, into *out. */
static int member_id(const json_t *o, const char *name, struct gui_id *out)
{
    return gui_id_from_hex(out, json_string_value(json_object_get(o, name)));
}

/* The source node self with its detail, or NULL (not connected, or no memory). */
static struct gui_node *source_node(struct gui_model *m, const struct gui_id *self)
{
    struct gui_node *n = gui_model_find(m, self);

    return n != NULL && n->detail != NULL ? n : NULL;
}

/* ---- answers ----------------------------------------------------------------------------- */

int gui_model_apply_status(struct gui_model *m, const json_t *status, uint64_t now,
                           struct gui_id *self)
{
    struct gui_id id, sup;
    struct gui_node *n;
    const json_t *port;
    const char *adv;
    char *text;

    if (!json_is_object(status) || member_id(status, "node_id", &id) != 0)
        return -EBADMSG;
    n = gui_model_mention(m, &id, now);
    if (n == NULL)
        return -ENOSPC;
    if (n->detail == NULL) {
        n->detail = calloc(1, sizeof(*n->detail));
        if (n->detail == NULL)
            return -ENOMEM;
    }
    if (!n->connected || n->gone)
        n->born_ms = now; /* (re)joined the viewer */
    n->connected = true;
    n->source = true;
    n->gone = false;
    n->stopped = false;
    n->role = gui_role_from_name(json_string_value(json_object_get(status, "role")));
    n->has_super = json_is_object(json_object_get(status, "super")) &&
                   member_id(json_object_get(status, "super"), "id", &sup) == 0;
    if (n->has_super)
        n->super = sup;
    adv = json_string_value(json_object_get(status, "advertised"));
    snprintf(n->detail->advertised, sizeof(n->detail->advertised), "%s", adv ? adv : "");
    n->detail->cut_off = json_is_true(json_object_get(status, "isolated"));
    port = json_object_get(status, "p2p_port");
    n->detail->p2p_port =
        json_is_integer(port) && json_integer_value(port) > 0 && json_integer_value(port) < 65536
            ? (int)json_integer_value(port)
            : 0;
    text = json_dumps(status, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (text != NULL && strlen(text) > GUI_STATUS_TEXT_MAX)
        memcpy(text + GUI_STATUS_TEXT_MAX - 4, "\n...", 5); /* the panel shows the start */
    if (text != NULL) {
        free(n->detail->status_text);
        n->detail->status_text = text;
    }
    if (n->has_super) {
        struct gui_node *s = gui_model_mention(m, &sup, now);
        if (s != NULL && !s->connected && s->role == GUI_ROLE_UNKNOWN)
            s->role = GUI_ROLE_SUPER;
    }
    *self = id;
    return 0;
}

/* Mentions every {"id": ...} of array a (a ring member unless known otherwise) and
 * copies up to max of their IDs into out; returns how many were copied. */
static unsigned mention_peers(struct gui_model *m, const json_t *a, struct gui_id *out,
                              unsigned max, unsigned n_out, uint64_t now)
{
    size_t i;
    const json_t *e;

    json_array_foreach(a, i, e)
    {
        struct gui_id id;
        struct gui_node *n;
        if (member_id(e, "id", &id) != 0)
            continue;
        n = gui_model_mention(m, &id, now);
        if (n != NULL && !n->connected && n->role == GUI_ROLE_UNKNOWN)
            n->role = GUI_ROLE_MEMBER; /* in a leaf set or routing table: on the ring */
        if (out != NULL && n_out < max)
            out[n_out++] = id;
    }
    return n_out;
}

int gui_model_apply_leafset(struct gui_model *m, const struct gui_id *self, const json_t *r,
                            uint64_t now)
{
    struct gui_node *s = source_node(m, self);
    /* The detail is on the heap: it stays put while mentions move the nodes. */
    struct gui_detail *d = s != NULL ? s->detail : NULL;
    const json_t *preds = json_object_get(r, "preds"), *succs = json_object_get(r, "succs");
    unsigned n;

    if (!json_is_array(preds) || !json_is_array(succs))
        return -EBADMSG;
    n = mention_peers(m, preds, d ? d->leaf : NULL, GUI_LEAF_MAX, 0, now);
    n = mention_peers(m, succs, d ? d->leaf : NULL, GUI_LEAF_MAX, n, now);
    if (d != NULL)
        d->n_leaf = n;
    return 0;
}

int gui_model_apply_routes(struct gui_model *m, const struct gui_id *self, const json_t *r,
                           uint64_t now)
{
    struct gui_node *s = source_node(m, self);
    struct gui_detail *d = s != NULL ? s->detail : NULL;
    unsigned n;

    if (!json_is_array(r))
        return -EBADMSG;
    n = mention_peers(m, r, d ? d->route : NULL, GUI_ROUTES_MAX, 0, now);
    if (d != NULL)
        d->n_route = n;
    return 0;
}

int gui_model_apply_peers(struct gui_model *m, const struct gui_id *self, const json_t *r,
                          uint64_t now)
{
    size_t i;
    const json_t *e;

    if (!json_is_array(r))
        return -EBADMSG;
    json_array_foreach(r, i, e)
    {
        struct gui_id id;
        struct gui_node *n;
        if (member_id(e, "id", &id) != 0 || json_is_false(json_object_get(e, "up")))
            continue;
        n = gui_model_mention(m, &id, now);
        if (n == NULL || n->connected)
            continue; /* a connected daemon says its role itself */
        if (json_is_true(json_object_get(e, "client"))) {
            n->role = GUI_ROLE_CLIENT; /* our client: we are its super-node */
            n->has_super = true;
            n->super = *self;
        } else if (json_is_true(json_object_get(e, "super"))) {
            n->role = GUI_ROLE_SUPER; /* our super-node */
        }
    }
    return 0;
}

int gui_model_apply_records(struct gui_model *m, const struct gui_id *self, const json_t *r)
{
    struct gui_node *s;
    size_t i;
    const json_t *e;
    unsigned n = 0;

    if (!json_is_array(r))
        return -EBADMSG;
    s = source_node(m, self);
    if (s == NULL)
        return 0;
    json_array_foreach(r, i, e)
    {
        struct gui_id key;
        if (n >= GUI_KEYS_MAX)
            break;
        if (json_is_true(json_object_get(e, "tombstone")) || member_id(e, "key", &key) != 0)
            continue;
        s->detail->keys[n++] = key;
    }
    s->detail->n_keys = n;
    return 0;
}

static void copy_text(char *dst, size_t len, const json_t *s)
{
    snprintf(dst, len, "%s", json_is_string(s) ? json_string_value(s) : "");
}

int gui_model_apply_route(struct gui_model *m, const struct gui_id *self, const char *key_text,
                          const struct gui_id *key, const json_t *r, uint64_t now)
{
    struct gui_route *rt = &m->route;
    const json_t *root = json_object_get(r, "root"), *path = json_object_get(r, "path");
    const json_t *hops = json_object_get(r, "hops"), *e;
    struct gui_id root_id;
    size_t i;

    if (!json_is_object(root) || member_id(root, "id", &root_id) != 0)
        return -EBADMSG;
    memset(rt, 0, sizeof(*rt));
    rt->from = *self;
    rt->key = *key;
    (void)member_id(r, "key", &rt->key); /* the daemon's H(KEY), when it says it */
    rt->root = root_id;
    snprintf(rt->key_text, sizeof(rt->key_text), "%s", key_text);
    copy_text(rt->root_addr, sizeof(rt->root_addr), json_object_get(root, "addr"));
    rt->hops = json_is_integer(hops) && json_integer_value(hops) >= 0
                   ? (unsigned)json_integer_value(hops)
                   : 0;
    (void)gui_model_mention(m, &root_id, now);
    if (json_is_array(path)) { /* absent on daemons before the path was added */
        json_array_foreach(path, i, e)
        {
            const json_t *rtt = json_object_get(e, "rtt_ms");
            if (rt->n_path >= GUI_HOPS_MAX)
                break;
            if (member_id(e, "id", &rt->path[rt->n_path]) != 0)
                continue;
            if (json_is_true(json_object_get(e, "self")))
                snprintf(rt->path_addr[rt->n_path], sizeof(rt->path_addr[0]), "(self)");
            else
                copy_text(rt->path_addr[rt->n_path], sizeof(rt->path_addr[0]),
                          json_object_get(e, "addr"));
            rt->path_rtt_ms[rt->n_path] = json_is_integer(rtt) && json_integer_value(rtt) >= 0 &&
                                                  json_integer_value(rtt) < 1000000
                                              ? (int)json_integer_value(rtt)
                                              : -1;
            (void)gui_model_mention(m, &rt->path[rt->n_path], now);
            rt->n_path++;
        }
    }
    rt->valid = true;
    rt->t_ms = now;
    return 0;
}

/* ---- events ------------------------------------------------------------------------------ */

static unsigned type_index(struct gui_model *m, const char *type)
{
    for (unsigned i = 0; i < m->n_types; i++)
        if (strcmp(m->types[i], type) == 0)
            return i;
    if (m->n_types < GUI_TYPES_MAX - 1) {
        snprintf(m->types[m->n_types], GUI_TYPE_NAME_MAX, "%s", type);
        return m->n_types++;
    }
    snprintf(m->types[GUI_TYPES_MAX - 1], GUI_TYPE_NAME_MAX, "other");
    return GUI_TYPES_MAX - 1;
}

void gui_model_add_arrow(struct gui_model *m, const struct gui_id *from, const struct gui_id *to,
                         const char *type, bool dropped, uint64_t now)
{
    struct gui_arrow *a;

    if (m->n_arrows == GUI_ARROWS_MAX) { /* full: the oldest goes */
        m->arrow_head = (m->arrow_head + 1) % GUI_ARROWS_MAX;
        m->n_arrows--;
        m->arrows_dropped_old++;
    }
    a = &m->arrows[(m->arrow_head + m->n_arrows) % GUI_ARROWS_MAX];
    a->from = *from;
    a->to = *to;
    a->t0_ms = now;
    a->type = (uint8_t)type_index(m, type);
    a->dropped = dropped;
    m->n_arrows++;
    m->arrows_total++;
}

static bool id_is_zero(const struct gui_id *id)
{
    for (unsigned i = 0; i < GUI_ID_LEN; i++)
        if (id->b[i] != 0)
            return false;
    return true;
}

/* Adds id to (or removes it from) a bounded ID list. */
static void id_list_set(struct gui_id *list, unsigned *n, unsigned max, const struct gui_id *id,
                        bool add)
{
    for (unsigned i = 0; i < *n; i++) {
        if (memcmp(list[i].b, id->b, GUI_ID_LEN) != 0)
            continue;
        if (!add)
            list[i] = list[--*n];
        return;
    }
    if (add && *n < max)
        list[(*n)++] = *id;
}

static int event_msg(struct gui_model *m, const struct gui_id *self, const json_t *ev, uint64_t now)
{
    const char *dir = json_string_value(json_object_get(ev, "dir"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    struct gui_id peer;
    struct gui_node *p;

    if (dir == NULL || member_id(ev, "peer", &peer) != 0)
        return -EBADMSG;
    if (type == NULL || type[0] == '\0')
        type = "?";
    if (id_is_zero(&peer)) /* a bootstrap whose ID is not known yet: no node to draw */
        return 0;
    p = gui_model_mention(m, &peer, now);
    if (strcmp(dir, "sent") == 0 || strcmp(dir, "dropped") == 0)
        gui_model_add_arrow(m, self, &peer, type, dir[0] == 'd', now);
    else if (strcmp(dir, "recv") == 0) {
        /* A connected sender reports it as "sent" itself: draw each message once. */
        if (p == NULL || !p->connected)
            gui_model_add_arrow(m, &peer, self, type, false, now);
    } else {
        return -EBADMSG;
    }
    return 0;
}

static int event_neighbour(struct gui_model *m, const struct gui_id *self, const json_t *ev,
                           uint64_t now)
{
    const char *op = json_string_value(json_object_get(ev, "op"));
    const char *set = json_string_value(json_object_get(ev, "set"));
    struct gui_id id;
    struct gui_node *s;
    bool add;

    if (op == NULL || set == NULL || member_id(ev, "id", &id) != 0)
        return -EBADMSG;
    if (strcmp(op, "add") != 0 && strcmp(op, "remove") != 0)
        return -EBADMSG;
    add = op[0] == 'a';
    if (add) {
        struct gui_node *n = gui_model_mention(m, &id, now);
        if (n != NULL && !n->connected && n->role == GUI_ROLE_UNKNOWN)
            n->role = GUI_ROLE_MEMBER;
    }
    s = source_node(m, self);
    if (s == NULL)
        return 0;
    if (strcmp(set, "leaf") == 0)
        id_list_set(s->detail->leaf, &s->detail->n_leaf, GUI_LEAF_MAX, &id, add);
    else if (strcmp(set, "route") == 0)
        id_list_set(s->detail->route, &s->detail->n_route, GUI_ROUTES_MAX, &id, add);
    return 0;
}

static int event_record(struct gui_model *m, const struct gui_id *self, const json_t *ev)
{
    const char *op = json_string_value(json_object_get(ev, "op"));
    struct gui_id key;
    struct gui_node *s;
    bool add;

    if (op == NULL || member_id(ev, "key", &key) != 0)
        return -EBADMSG;
    /* stored (as root) or replicated: a live key here, unless it is a tombstone;
     * expired, dropped (handed off) or removed: gone from here. */
    add = (strcmp(op, "stored") == 0 || strcmp(op, "replicated") == 0) &&
          !json_is_true(json_object_get(ev, "tombstone"));
    s = source_node(m, self);
    if (s != NULL)
        id_list_set(s->detail->keys, &s->detail->n_keys, GUI_KEYS_MAX, &key, add);
    return 0;
}

int gui_model_apply_event(struct gui_model *m, const struct gui_id *self, const json_t *ev,
                          uint64_t now)
{
    const char *name = json_string_value(json_object_get(ev, "event"));
    struct gui_node *s;

    if (name == NULL)
        return -EBADMSG;
    m->events++;
    if (strcmp(name, "msg") == 0)
        return event_msg(m, self, ev, now);
    if (strcmp(name, "neighbour") == 0)
        return event_neighbour(m, self, ev, now);
    if (strcmp(name, "record") == 0)
        return event_record(m, self, ev);
    if (strcmp(name, "binding") == 0) /* its record shows up as a "record" event */
        return json_is_string(json_object_get(ev, "op")) ? 0 : -EBADMSG;
    if (strcmp(name, "lost") == 0) {
        const json_t *c = json_object_get(ev, "count");
        if (json_is_integer(c) && json_integer_value(c) > 0)
            m->lost += (uint64_t)json_integer_value(c);
        return 0;
    }
    s = source_node(m, self);
    if (strcmp(name, "role") == 0) {
        const char *role = json_string_value(json_object_get(ev, "role"));
        if (role == NULL)
            return -EBADMSG;
        if (s != NULL)
            s->role = gui_role_from_name(role);
        return 0;
    }
    if (strcmp(name, "health") == 0) {
        if (s != NULL)
            s->detail->cut_off = json_is_true(json_object_get(ev, "cut_off"));
        return 0;
    }
    if (strcmp(name, "stopping") == 0) {
        gui_model_source_lost(m, self, now);
        return 0;
    }
    m->events_ignored++; /* an event this viewer does not know: ignored */
    return 0;
}

void gui_model_source_lost(struct gui_model *m, const struct gui_id *self, uint64_t now)
{
    struct gui_node *n = gui_model_find(m, self);

    if (n == NULL || !n->connected)
        return;
    n->connected = false;
    n->gone = true;
    n->gone_ms = now;
}

void gui_model_source_forget(struct gui_model *m, const struct gui_id *self, uint64_t now)
{
    struct gui_node *n = gui_model_find(m, self);

    if (n == NULL)
        return;
    detail_free(n->detail);
    n->detail = NULL;
    n->source = false;
    n->stopped = true;
    if (n->connected || !n->gone) {
        n->gone = true;
        n->gone_ms = now;
    }
    n->connected = false;
    if (m->has_selected && memcmp(m->selected.b, self->b, GUI_ID_LEN) == 0)
        m->has_selected = false;
}

bool gui_model_tick(struct gui_model *m, uint64_t now)
{
    bool busy = false;

    while (m->n_arrows > 0 && m->arrows[m->arrow_head].t0_ms + GUI_ARROW_MS <= now) {
        m->arrow_head = (m->arrow_head + 1) % GUI_ARROWS_MAX;
        m->n_arrows--;
    }
    for (size_t i = m->n; i-- > 0;) {
        struct gui_node *n = &m->nodes[i];
        if (!n->source && !n->gone && n->mentioned_ms + GUI_FORGET_MS <= now) {
            n->gone = true; /* nobody names it any more: it left */
            n->gone_ms = now;
        }
        /* Faded, and no longer named by anyone (a node the viewer stopped stays,
         * invisible, while the ring still names it, so that it does not come back). */
        if (n->gone && !n->source && n->gone_ms + GUI_FADE_MS <= now &&
            n->mentioned_ms + GUI_FORGET_MS <= now) {
            if (m->has_selected && memcmp(m->selected.b, n->id.b, GUI_ID_LEN) == 0)
                m->has_selected = false;
            node_remove(m, i);
            continue;
        }
        if ((n->gone && !n->source && n->gone_ms + GUI_FADE_MS > now) ||
            n->born_ms + GUI_GROW_MS > now)
            busy = true;
    }
    return busy || m->n_arrows > 0;
}

/* ---- geometry ---------------------------------------------------------------------------- */

void gui_model_point(const struct gui_model *m, double t, double f, double *x, double *y)
{
    double a = t * 2 * GUI_PI;

    *x = m->cx + f * m->radius * sin(a);
    *y = m->cy - f * m->radius * cos(a);
}

void gui_model_layout(struct gui_model *m, double width, double height)
{
    double r = (width < height ? width : height) / 2 - 40;

    m->width = width;
    m->height = height;
    m->cx = width / 2;
    m->cy = height / 2;
    m->radius = r < 10 ? 10 : r;
    for (size_t i = 0; i < m->n; i++) {
        struct gui_node *n = &m->nodes[i];
        if (n->role == GUI_ROLE_CLIENT && n->has_super) {
            /* Just inside the ring near its super-node, spread by its own ID. */
            double t = gui_id_turn(&n->super) + (gui_id_turn(&n->id) - 0.5) * 0.03;
            gui_model_point(m, t, 0.86, &n->x, &n->y);
        } else if (n->role == GUI_ROLE_CLIENT || n->role == GUI_ROLE_SEEKING) {
            gui_model_point(m, gui_id_turn(&n->id), 0.86, &n->x, &n->y);
        } else {
            gui_model_point(m, gui_id_turn(&n->id), 1.0, &n->x, &n->y);
        }
    }
}

struct gui_node *gui_model_hit(struct gui_model *m, double x, double y, double max_dist)
{
    struct gui_node *best = NULL;
    double best_d2 = max_dist * max_dist;

    for (size_t i = 0; i < m->n; i++) {
        double dx = m->nodes[i].x - x, dy = m->nodes[i].y - y, d2 = dx * dx + dy * dy;
        if (d2 <= best_d2) {
            best_d2 = d2;
            best = &m->nodes[i];
        }
    }
    return best;
}

bool gui_model_near_centre(const struct gui_model *m, double x, double y)
{
    double dx = x - m->cx, dy = y - m->cy;

    return dx * dx + dy * dy <= (0.25 * m->radius) * (0.25 * m->radius);
}

size_t gui_model_count(const struct gui_model *m, size_t *connected)
{
    size_t live = 0, conn = 0;

    for (size_t i = 0; i < m->n; i++) {
        live += !m->nodes[i].gone;
        conn += m->nodes[i].connected;
    }
    if (connected != NULL)
        *connected = conn;
    return live;
}

/* x rounded to 0.1, so the dump is stable to read. */
static json_t *coord(double x)
{
    return json_real(round(x * 10) / 10);
}

json_t *gui_model_dump(const struct gui_model *m)
{
    char hex[GUI_ID_HEX_LEN + 1];
    size_t connected, count = gui_model_count(m, &connected);
    json_t *o, *nodes = json_array();

    if (nodes == NULL)
        return NULL;
    for (size_t i = 0; i < m->n; i++) {
        const struct gui_node *n = &m->nodes[i];
        json_t *e;
        gui_id_to_hex(&n->id, hex);
        e = json_pack("{s:s, s:s, s:b, s:b, s:o, s:o}", "id", hex, "role", gui_role_name(n->role),
                      "connected", n->connected, "gone", n->gone, "x", coord(n->x), "y",
                      coord(n->y));
        if (e != NULL && n->has_super) {
            gui_id_to_hex(&n->super, hex);
            json_object_set_new(e, "super", json_string(hex));
        }
        if (e == NULL || json_array_append_new(nodes, e) != 0) {
            json_decref(nodes);
            return NULL;
        }
    }
    o = json_pack("{s:I, s:I, s:o, s:o, s:[o, o], s:o, s:I, s:I, s:I, s:I, s:o}", "count",
                  (json_int_t)count, "connected", (json_int_t)connected, "width", coord(m->width),
                  "height", coord(m->height), "center", coord(m->cx), coord(m->cy), "radius",
                  coord(m->radius), "arrows", (json_int_t)m->n_arrows, "messages",
                  (json_int_t)m->arrows_total, "events", (json_int_t)m->events, "lost",
                  (json_int_t)m->lost, "nodes", nodes);
    if (o != NULL)
        json_object_set_new(o, "refused", json_integer((json_int_t)m->nodes_refused));
    if (o != NULL && m->has_selected) {
        gui_id_to_hex(&m->selected, hex);
        json_object_set_new(o, "selected", json_string(hex));
    }
    if (o != NULL && m->route.valid) {
        json_t *path = json_array(), *r;
        for (unsigned i = 0; i < m->route.n_path; i++) {
            gui_id_to_hex(&m->route.path[i], hex);
            json_array_append_new(path, json_string(hex));
        }
        gui_id_to_hex(&m->route.root, hex);
        r = json_pack("{s:s, s:s, s:I, s:o}", "key", m->route.key_text, "root", hex, "hops",
                      (json_int_t)m->route.hops, "path", path);
        if (r != NULL) {
            gui_id_to_hex(&m->route.from, hex);
            json_object_set_new(r, "from", json_string(hex));
            gui_id_to_hex(&m->route.key, hex);
            json_object_set_new(r, "key_id", json_string(hex));
            json_object_set_new(o, "route", r);
        }
    }
    return o;
}
