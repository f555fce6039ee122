/*
 * model.h: what the ring viewer knows, with no GTK and no I/O.
 *
 * The model is fed the control socket's JSON (docs/CONTROL.md: status, leafset,
 * routes, peers, records, route answers and watch events) by the caller, with the
 * time as an argument, and is asked where to draw each node.  It is plain C on
 * jansson so that tests/unit/test_gui_model.c runs it without a display.
 *
 * Nodes live in one array sorted by ID (binary search; the ring order for free).
 * A node is "connected" when the viewer talks to its daemon; every other node is
 * only heard of (named in a leaf set, routing table, peer list or message event)
 * and is forgotten GUI_FORGET_MS after the last mention: it then fades out in red
 * over GUI_FADE_MS and goes.  A connected daemon that goes away stays, drawn as
 * gone, until its connection comes back.  Everything fed by sockets is bounded:
 * GUI_NODES_MAX nodes (a new one beyond that is ignored), GUI_ARROWS_MAX message
 * arrows (the oldest is overwritten), per connected node GUI_LEAF_MAX leaf-set and
 * GUI_ROUTES_MAX routing entries and GUI_KEYS_MAX record keys, GUI_TYPES_MAX
 * message type names, GUI_HOPS_MAX hops of a route, GUI_STATUS_TEXT_MAX bytes of a
 * daemon's status text.
 *
 * Angles: a node's angle is the first 32 bits of its 160-bit ID over 2^32 turns,
 * 0 at the top of the ring, clockwise.  A client is drawn just inside the ring at
 * its super-node's angle (offset a little by its own ID so that clients of one
 * super-node do not cover each other).
 */
#ifndef P2P_GUI_MODEL_H
#define P2P_GUI_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define GUI_ID_LEN 20
#define GUI_ID_HEX_LEN 40
#define GUI_NODES_MAX 4096
#define GUI_ARROWS_MAX 1024
#define GUI_LEAF_MAX 64
#define GUI_ROUTES_MAX 256
#define GUI_KEYS_MAX 1000
#define GUI_TYPES_MAX 32
#define GUI_TYPE_NAME_MAX 24
#define GUI_HOPS_MAX 64
#define GUI_STATUS_TEXT_MAX 65536 /* bytes of a status answer kept for the panel */
#define GUI_FORGET_MS 5000        /* a heard-of node not mentioned for this long has left */
#define GUI_FADE_MS 1500          /* a node that left fades out (red) over this time */
#define GUI_GROW_MS 600           /* a new node grows in over this time */
#define GUI_ARROW_MS 600          /* a message arrow fades out over this time */

struct gui_id {
    uint8_t b[GUI_ID_LEN];
};

enum gui_role {
    GUI_ROLE_UNKNOWN,
    GUI_ROLE_SEEKING,
    GUI_ROLE_CLIENT,
    GUI_ROLE_MEMBER,
    GUI_ROLE_SUPER,
};

/* What the viewer knows only of the daemons it is connected to. */
struct gui_detail {
    char *status_text; /* the last status answer, indented JSON (malloc'd) */
    struct gui_id leaf[GUI_LEAF_MAX];
    unsigned n_leaf;
    struct gui_id route[GUI_ROUTES_MAX];
    unsigned n_route;
    struct gui_id keys[GUI_KEYS_MAX];
    unsigned n_keys;
    char advertised[64]; /* "ip:port", or "" */
    int p2p_port;        /* 0: not known */
    bool cut_off;
};

struct gui_node {
    struct gui_id id;
    enum gui_role role;
    bool connected; /* the viewer talks to this node's daemon */
    bool source;    /* it is (or was) one of the viewer's daemons */
    bool gone;      /* it left: fading out, or a daemon whose connection broke */
    bool stopped;   /* stopped by the viewer: gone even while others still name it */
    bool has_super;
    struct gui_id super; /* a client's super-node */
    uint64_t born_ms, gone_ms, mentioned_ms;
    double x, y;               /* screen position from the last gui_model_layout() */
    struct gui_detail *detail; /* connected (source) nodes only, else NULL */
};

struct gui_arrow {
    struct gui_id from, to;
    uint64_t t0_ms;
    uint8_t type; /* index into gui_model.types */
    bool dropped;
};

/* The last route answer: from the node asked, through path[], to root. */
struct gui_route {
    bool valid;
    struct gui_id from, key, root;
    char key_text[64];
    char root_addr[64];
    unsigned hops; /* the daemon's count */
    unsigned n_path;
    struct gui_id path[GUI_HOPS_MAX];
    char path_addr[GUI_HOPS_MAX][48];
    int path_rtt_ms[GUI_HOPS_MAX]; /* -1: not given */
    uint64_t t_ms;
};

struct gui_model {
    struct gui_node *nodes; /* sorted by id, n of cap GUI_NODES_MAX */
    size_t n;
    struct gui_arrow arrows[GUI_ARROWS_MAX]; /* ring buffer: oldest at head */
    size_t arrow_head, n_arrows;
    uint64_t arrows_total, arrows_dropped_old;
    char types[GUI_TYPES_MAX][GUI_TYPE_NAME_MAX]; /* message type names seen */
    unsigned n_types;
    uint64_t events, events_ignored, nodes_refused, lost;
    bool has_selected;
    struct gui_id selected;
    struct gui_route route;
    /* Geometry of the last layout. */
    double width, height, cx, cy, radius;
};

/* ---- IDs ---- */

/* Parses 40 hex digits (either case) into *out; -EINVAL otherwise (out untouched). */
int gui_id_from_hex(struct gui_id *out, const char *hex);
/* Writes 40 lower-case hex digits and a NUL into buf (GUI_ID_HEX_LEN + 1 bytes). */
void gui_id_to_hex(const struct gui_id *id, char *buf);
/* The ID's place on the ring as a fraction of a turn, [0, 1): first 32 bits / 2^32. */
double gui_id_turn(const struct gui_id *id);
enum gui_role gui_role_from_name(const char *name);
const char *gui_role_name(enum gui_role role);

/* ---- life cycle ---- */

/* A new empty model; -ENOMEM. gui_model_free(NULL) is a no-op. */
int gui_model_new(struct gui_model **out);
void gui_model_free(struct gui_model *m);

/* The node with this ID, or NULL. The pointer is valid until the next call that
 * adds or removes nodes. */
struct gui_node *gui_model_find(struct gui_model *m, const struct gui_id *id);

/* Mentions id at now: adds it (heard of, role unknown) when new, revives it when it
 * was fading. NULL when the model is full (counted in nodes_refused). */
struct gui_node *gui_model_mention(struct gui_model *m, const struct gui_id *id, uint64_t now);

/* ---- the control socket's answers, for the daemon whose node is self ---- */

/* A status answer: the daemon's node becomes connected (source), its role, super-node
 * and status text are taken. Writes its ID to *self. -EBADMSG without a node_id. */
int gui_model_apply_status(struct gui_model *m, const json_t *status, uint64_t now,
                           struct gui_id *self);
/* leafset, routes, peers and records answers of the daemon self; -EBADMSG when the
 * answer has the wrong shape (entries that are not IDs are skipped). */
int gui_model_apply_leafset(struct gui_model *m, const struct gui_id *self, const json_t *r,
                            uint64_t now);
int gui_model_apply_routes(struct gui_model *m, const struct gui_id *self, const json_t *r,
                           uint64_t now);
int gui_model_apply_peers(struct gui_model *m, const struct gui_id *self, const json_t *r,
                          uint64_t now);
int gui_model_apply_records(struct gui_model *m, const struct gui_id *self, const json_t *r);
/* A route answer to "route KEY" asked of self: {"key"?, "root", "hops", "path"?:
 * [{"id", "rtt_ms", "addr" or "self"}, ...]} (path from self to the root, absent
 * on older daemons and for clients). key is the viewer's own H(KEY), used when the
 * answer has no "key". */
int gui_model_apply_route(struct gui_model *m, const struct gui_id *self, const char *key_text,
                          const struct gui_id *key, const json_t *r, uint64_t now);
/* One watch event of the daemon self. Unknown events and members are ignored (return
 * 0); -EBADMSG for a known event with a bad member. */
int gui_model_apply_event(struct gui_model *m, const struct gui_id *self, const json_t *ev,
                          uint64_t now);
/* The connection to self's daemon broke (gone) or came back. */
void gui_model_source_lost(struct gui_model *m, const struct gui_id *self, uint64_t now);
/* The viewer stopped self's daemon and no longer follows it: it fades out at once,
 * and stays gone (not drawn) while other daemons still name it. */
void gui_model_source_forget(struct gui_model *m, const struct gui_id *self, uint64_t now);

/* Adds a message arrow (the oldest goes when full). */
void gui_model_add_arrow(struct gui_model *m, const struct gui_id *from, const struct gui_id *to,
                         const char *type, bool dropped, uint64_t now);

/* Ages the model: expired arrows go, unmentioned heard-of nodes start to fade, faded
 * ones are removed. Returns true while something is still animating (a redraw is
 * wanted on the next frame). */
bool gui_model_tick(struct gui_model *m, uint64_t now);

/* ---- geometry ---- */

/* Places every node for a drawing of width x height (sets cx, cy, radius, x, y). */
void gui_model_layout(struct gui_model *m, double width, double height);
/* The node drawn within max_dist of (x, y), nearest first; NULL if none. */
struct gui_node *gui_model_hit(struct gui_model *m, double x, double y, double max_dist);
/* Whether (x, y) is near the centre: within a quarter of the radius. */
bool gui_model_near_centre(const struct gui_model *m, double x, double y);
/* (x, y) of the point at turn t (0..1) and radius fraction f of the ring. */
void gui_model_point(const struct gui_model *m, double t, double f, double *x, double *y);

/* The live node count (not gone) and the connected count. */
size_t gui_model_count(const struct gui_model *m, size_t *connected);

/* The model as JSON: {"count", "connected", "width", "height", "center": [x, y],
 * "radius", "arrows" (live), "messages" (arrows ever), "events", "lost", "refused"
 * (nodes beyond the cap), "nodes": [{"id", "role", "connected", "gone", "x", "y",
 * "super"?}], "selected"?, "route"?: {"key", "key_id", "from", "root", "hops",
 * "path": [id...]}}; NULL on ENOMEM. */
json_t *gui_model_dump(const struct gui_model *m);

#endif
