/*
 * draw.c: the ring viewer's picture (draw.h).
 *
 * Painter's order: background, ring, centre hint, the selected node's leaf-set
 * (green) and routing-table (orange) links and its record keys (purple ticks), the
 * last route (magenta, hop by hop), message arrows (fading over GUI_ARROW_MS,
 * coloured by type, dashed red when dropped), node dots (fill by role; a dark rim
 * for daemons the viewer is connected to, a thin grey one for nodes only heard of,
 * red for nodes that left), labels, legend.  Arrows, links and labels never use a
 * dot fill colour, so the dots can be counted in a snapshot.
 */
#include "draw.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <math.h>

#define DRAW_PI 3.14159265358979323846

static void set_hex(cairo_t *cr, unsigned rgb, double alpha)
{
    cairo_set_source_rgba(cr, ((rgb >> 16) & 0xff) / 255.0, ((rgb >> 8) & 0xff) / 255.0,
                          (rgb & 0xff) / 255.0, alpha);
}

static unsigned role_fill(enum gui_role role)
{
    switch (role) {
    case GUI_ROLE_SUPER:
        return GUI_FILL_SUPER;
    case GUI_ROLE_MEMBER:
        return GUI_FILL_MEMBER;
    case GUI_ROLE_CLIENT:
        return GUI_FILL_CLIENT;
    default:
        return GUI_FILL_UNKNOWN;
    }
}

/* A message type's colour: fixed for the common ones, else from a hash of the name. */
static unsigned type_colour(const char *type)
{
    static const struct {
        const char *name;
        unsigned rgb;
    } known[] = {
        {"LOOKUP", 0x1f5fbf},  {"ROUTE", 0x1f5fbf},   {"PUT", 0x1a8a3a},  {"STORE", 0x1a8a3a},
        {"GET", 0x138a8a},     {"JOIN", 0x8a2be2},    {"PING", 0x707070}, {"ACK", 0xb0b0b0},
        {"LEAFSET", 0xc06000}, {"REPLICA", 0x6b4226},
    };
    static const unsigned palette[] = {0xd62728, 0x9467bd, 0x8c564b, 0xe377c2,
                                       0x7f7f7f, 0xbcbd22, 0x17becf, 0x2f4f4f};
    unsigned h = 5381;

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(type, known[i].name) == 0)
            return known[i].rgb;
    for (const char *p = type; *p != '\0'; p++)
        h = h * 33 + (unsigned char)*p;
    return palette[h % (sizeof(palette) / sizeof(palette[0]))];
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* The selected node's leaf set, routing table and keys. */
static void draw_selected(cairo_t *cr, struct gui_model *m, const struct gui_node *s)
{
    const struct gui_detail *d = s->detail;

    cairo_save(cr);
    cairo_set_line_width(cr, 1.2);
    set_hex(cr, 0xf08c1a, 0.8); /* routing table: orange, dashed */
    cairo_set_dash(cr, (const double[]){5, 3}, 2, 0);
    for (unsigned i = 0; i < d->n_route; i++) {
        const struct gui_node *t = gui_model_find(m, &d->route[i]);
        if (t == NULL)
            continue;
        cairo_move_to(cr, s->x, s->y);
        cairo_line_to(cr, t->x, t->y);
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_line_width(cr, 2.0);
    set_hex(cr, 0x1f9e4a, 0.85); /* leaf set: green */
    for (unsigned i = 0; i < d->n_leaf; i++) {
        const struct gui_node *t = gui_model_find(m, &d->leaf[i]);
        if (t == NULL)
            continue;
        cairo_move_to(cr, s->x, s->y);
        cairo_line_to(cr, t->x, t->y);
    }
    cairo_stroke(cr);
    set_hex(cr, 0x8e44ad, 0.9); /* stored keys: purple ticks outside the ring */
    cairo_set_line_width(cr, 1.5);
    for (unsigned i = 0; i < d->n_keys; i++) {
        double x0, y0, x1, y1, t = gui_id_turn(&d->keys[i]);
        gui_model_point(m, t, 1.03, &x0, &y0);
        gui_model_point(m, t, 1.09, &x1, &y1);
        cairo_move_to(cr, x0, y0);
        cairo_line_to(cr, x1, y1);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

static void draw_route(cairo_t *cr, struct gui_model *m)
{
    const struct gui_route *r = &m->route;
    const struct gui_node *n = gui_model_find(m, &r->from);
    double x, y, x1, y1, t = gui_id_turn(&r->key);

    if (!r->valid || n == NULL)
        return;
    cairo_save(cr);
    set_hex(cr, 0xc2185b, 0.85);
    cairo_set_line_width(cr, 3.5);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_move_to(cr, n->x, n->y);
    for (unsigned i = 0; i < r->n_path; i++) {
        const struct gui_node *h = gui_model_find(m, &r->path[i]);
        if (h != NULL)
            cairo_line_to(cr, h->x, h->y);
    }
    n = gui_model_find(m, &r->root);
    if (n != NULL)
        cairo_line_to(cr, n->x, n->y);
    cairo_stroke(cr);
    /* The key: a black tick across the ring. */
    gui_model_point(m, t, 0.94, &x, &y);
    gui_model_point(m, t, 1.12, &x1, &y1);
    set_hex(cr, 0x000000, 1);
    cairo_set_line_width(cr, 2.5);
    cairo_move_to(cr, x, y);
    cairo_line_to(cr, x1, y1);
    cairo_stroke(cr);
    cairo_restore(cr);
}

#define ALPHA_LEVELS 4 /* arrows fade in steps: one path per type and step */

/* Message arrows, batched: an arrow's fade is quantised to ALPHA_LEVELS steps and
 * all arrows of one type (or dropped) and one step form one path, stroked and
 * filled once.  One cairo operation per arrow costs a pass over its bounding box
 * each, which at 1000 messages/s (600 arrows alive) was most of a frame. */
static void draw_arrows(cairo_t *cr, struct gui_model *m, uint64_t now)
{
    struct seg {
        float x0, y0, x1, y1, ux, uy;
        uint16_t bucket; /* (type or GUI_TYPES_MAX for dropped) * ALPHA_LEVELS + step */
    } segs[GUI_ARROWS_MAX];
    bool used[(GUI_TYPES_MAX + 1) * ALPHA_LEVELS] = {false};
    size_t n = 0;

    for (size_t i = 0; i < m->n_arrows; i++) {
        const struct gui_arrow *a = &m->arrows[(m->arrow_head + i) % GUI_ARROWS_MAX];
        const struct gui_node *f = gui_model_find(m, &a->from), *t = gui_model_find(m, &a->to);
        double alpha = 1.0 - clamp01((double)(now - a->t0_ms) / GUI_ARROW_MS);
        double dx, dy, len;
        int step;
        if (f == NULL || t == NULL || alpha <= 0)
            continue;
        dx = t->x - f->x;
        dy = t->y - f->y;
        len = sqrt(dx * dx + dy * dy);
        if (len < 2 * GUI_DOT_R + 10)
            continue;
        step = (int)(alpha * ALPHA_LEVELS);
        step = step >= ALPHA_LEVELS ? ALPHA_LEVELS - 1 : step;
        segs[n].ux = (float)(dx / len);
        segs[n].uy = (float)(dy / len);
        segs[n].x0 = (float)(f->x + dx / len * GUI_DOT_R);
        segs[n].y0 = (float)(f->y + dy / len * GUI_DOT_R);
        segs[n].x1 = (float)(t->x - dx / len * (GUI_DOT_R + 2)); /* the head at the rim */
        segs[n].y1 = (float)(t->y - dy / len * (GUI_DOT_R + 2));
        segs[n].bucket = (uint16_t)((a->dropped ? GUI_TYPES_MAX : a->type) * ALPHA_LEVELS + step);
        used[segs[n].bucket] = true;
        n++;
    }
    cairo_save(cr);
    cairo_set_line_width(cr, 1.0);
    /* Short-lived, many, thin: cairo's full-quality scan conversion of hundreds of
     * long antialiased edges was 70 % of the viewer's CPU at 1000 messages/s. */
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    for (unsigned b = 0; b < (GUI_TYPES_MAX + 1) * ALPHA_LEVELS; b++) {
        unsigned type = b / ALPHA_LEVELS;
        double alpha = 0.8 * ((b % ALPHA_LEVELS) + 0.5) / ALPHA_LEVELS;
        if (!used[b])
            continue;
        set_hex(cr, type == GUI_TYPES_MAX ? 0xd00000 : type_colour(m->types[type]), alpha);
        if (type == GUI_TYPES_MAX)
            cairo_set_dash(cr, (const double[]){3, 3}, 2, 0);
        for (size_t i = 0; i < n; i++) {
            if (segs[i].bucket != b)
                continue;
            cairo_move_to(cr, segs[i].x0, segs[i].y0);
            cairo_line_to(cr, segs[i].x1, segs[i].y1);
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        for (size_t i = 0; i < n; i++) {
            const struct seg *g = &segs[i];
            if (g->bucket != b)
                continue;
            cairo_move_to(cr, g->x1, g->y1);
            cairo_line_to(cr, g->x1 - g->ux * 8 - g->uy * 4, g->y1 - g->uy * 8 + g->ux * 4);
            cairo_line_to(cr, g->x1 - g->ux * 8 + g->uy * 4, g->y1 - g->uy * 8 - g->ux * 4);
            cairo_close_path(cr);
        }
        cairo_fill(cr);
    }
    cairo_restore(cr);
}

/* A node's dot radius and opacity at now; false when there is nothing to draw. */
static bool node_size(const struct gui_node *n, uint64_t now, double *r, double *alpha)
{
    double grow = clamp01((double)(now - n->born_ms) / GUI_GROW_MS);

    *r = GUI_DOT_R * (n->gone ? 1.0 : grow);
    *alpha = 1.0;
    if (n->gone && !n->source)
        *alpha = 1.0 - clamp01((double)(now - n->gone_ms) / GUI_FADE_MS);
    return *r >= 0.5 && *alpha > 0;
}

/* Three passes: rims (and the red nodes that left), then every fill on top of all
 * rims (so a dot's centre always has a fill colour, even where dots overlap), then
 * the selection mark and labels. */
static void draw_nodes(cairo_t *cr, struct gui_model *m, uint64_t now)
{
    char hex[GUI_ID_HEX_LEN + 1];
    bool labels = m->n <= 64;
    double r, alpha;

    cairo_save(cr);
    for (size_t i = 0; i < m->n; i++) {
        const struct gui_node *n = &m->nodes[i];
        if (!node_size(n, now, &r, &alpha))
            continue;
        cairo_new_path(cr);
        if (n->gone) {
            /* It left: red, fading out (a daemon we lost stays as a red ring). */
            cairo_arc(cr, n->x, n->y, r, 0, 2 * DRAW_PI);
            set_hex(cr, 0xd62020, alpha * (n->source ? 0.25 : 0.8));
            cairo_fill_preserve(cr);
            set_hex(cr, 0xd62020, alpha);
            cairo_set_line_width(cr, 2);
        } else if (n->connected) { /* a dark rim outside the fill */
            cairo_arc(cr, n->x, n->y, r + 1.5, 0, 2 * DRAW_PI);
            set_hex(cr, 0x202020, 1);
            cairo_set_line_width(cr, 3);
        } else { /* only heard of: a thin grey rim */
            cairo_arc(cr, n->x, n->y, r + 0.5, 0, 2 * DRAW_PI);
            set_hex(cr, 0x808080, 1);
            cairo_set_line_width(cr, 1);
        }
        cairo_stroke(cr);
    }
    for (size_t i = 0; i < m->n; i++) {
        const struct gui_node *n = &m->nodes[i];
        if (n->gone || !node_size(n, now, &r, &alpha))
            continue;
        cairo_new_path(cr);
        cairo_arc(cr, n->x, n->y, r, 0, 2 * DRAW_PI);
        set_hex(cr, role_fill(n->role), 1);
        cairo_fill(cr);
    }
    cairo_select_font_face(cr, "monospace", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 10);
    for (size_t i = 0; i < m->n; i++) {
        const struct gui_node *n = &m->nodes[i];
        if (!node_size(n, now, &r, &alpha))
            continue;
        if (m->has_selected && memcmp(m->selected.b, n->id.b, GUI_ID_LEN) == 0) {
            cairo_new_path(cr);
            cairo_arc(cr, n->x, n->y, GUI_DOT_R + 6, 0, 2 * DRAW_PI);
            set_hex(cr, 0xe00000, 1);
            cairo_set_line_width(cr, 1.5);
            cairo_set_dash(cr, (const double[]){2, 2}, 2, 0);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        if (labels) {
            /* The first 4 hex digits, outward from the centre. */
            double dx = n->x - m->cx, dy = n->y - m->cy, d = sqrt(dx * dx + dy * dy);
            cairo_text_extents_t ext;
            gui_id_to_hex(&n->id, hex);
            hex[4] = '\0';
            cairo_text_extents(cr, hex, &ext);
            if (d < 1)
                d = 1;
            set_hex(cr, 0x303030, alpha);
            cairo_move_to(cr, n->x + dx / d * 28 - ext.width / 2, n->y + dy / d * 24 + 4);
            cairo_show_text(cr, hex);
        }
    }
    cairo_restore(cr);
}

static void draw_legend(cairo_t *cr, struct gui_model *m)
{
    static const struct {
        unsigned rgb;
        const char *text;
    } roles[] = {{GUI_FILL_SUPER, "super-node"},
                 {GUI_FILL_MEMBER, "member"},
                 {GUI_FILL_CLIENT, "client"},
                 {GUI_FILL_UNKNOWN, "unknown"}};
    char line[128];
    size_t connected, count = gui_model_count(m, &connected);
    double y = 16;

    cairo_save(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 11);
    set_hex(cr, 0x202020, 1);
    snprintf(line, sizeof(line), "%zu nodes, %zu connected", count, connected);
    cairo_move_to(cr, 8, y);
    cairo_show_text(cr, line);
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        y += 14;
        set_hex(cr, roles[i].rgb, 1); /* 6x6 swatches: far below a dot's area */
        cairo_rectangle(cr, 8, y - 7, 6, 6);
        cairo_fill(cr);
        set_hex(cr, 0x202020, 1);
        cairo_move_to(cr, 20, y);
        cairo_show_text(cr, roles[i].text);
    }
    for (unsigned i = 0; i < m->n_types && i < 12; i++) {
        y += 14;
        set_hex(cr, type_colour(m->types[i]), 1);
        cairo_move_to(cr, 8, y);
        cairo_show_text(cr, m->types[i]);
    }
    if (m->lost > 0) {
        y += 14;
        set_hex(cr, 0xd00000, 1);
        snprintf(line, sizeof(line), "%llu events lost", (unsigned long long)m->lost);
        cairo_move_to(cr, 8, y);
        cairo_show_text(cr, line);
    }
    cairo_restore(cr);
}

/* What depends on the size only: background, ring, centre hint. */
static void draw_background(cairo_t *cr, const struct gui_model *m)
{
    set_hex(cr, 0xffffff, 1);
    cairo_paint(cr);
    /* The ring. */
    cairo_set_line_width(cr, 2);
    set_hex(cr, 0x3060c0, 0.6);
    cairo_arc(cr, m->cx, m->cy, m->radius, 0, 2 * DRAW_PI);
    cairo_stroke(cr);
    /* Where a click starts a node. */
    set_hex(cr, 0xc8c8c8, 1);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, (const double[]){4, 4}, 2, 0);
    cairo_arc(cr, m->cx, m->cy, 0.25 * m->radius, 0, 2 * DRAW_PI);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_move_to(cr, m->cx - 8, m->cy);
    cairo_line_to(cr, m->cx + 8, m->cy);
    cairo_move_to(cr, m->cx, m->cy - 8);
    cairo_line_to(cr, m->cx, m->cy + 8);
    cairo_stroke(cr);
}

void gui_draw_cache_clear(struct gui_draw_cache *c)
{
    if (c->background != NULL)
        cairo_surface_destroy(c->background);
    c->background = NULL;
}

void gui_draw(cairo_t *cr, struct gui_model *m, double width, double height, uint64_t now,
              struct gui_draw_cache *cache)
{
    const struct gui_node *sel = m->has_selected ? gui_model_find(m, &m->selected) : NULL;

    gui_model_layout(m, width, height);
    if (cache == NULL) {
        draw_background(cr, m);
    } else {
        if (cache->background == NULL || cache->width != (int)width ||
            cache->height != (int)height) {
            cairo_t *bcr;
            gui_draw_cache_clear(cache);
            cache->background =
                cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)width, (int)height);
            cache->width = (int)width;
            cache->height = (int)height;
            bcr = cairo_create(cache->background);
            draw_background(bcr, m);
            cairo_destroy(bcr);
        }
        cairo_save(cr);
        cairo_set_source_surface(cr, cache->background, 0, 0);
        cairo_set_operator(cr, CAIRO_OPERATOR_SOURCE);
        cairo_paint(cr);
        cairo_restore(cr);
    }
    if (sel != NULL && sel->detail != NULL)
        draw_selected(cr, m, sel);
    draw_route(cr, m);
    draw_arrows(cr, m, now);
    draw_nodes(cr, m, now);
    draw_legend(cr, m);
}

int gui_draw_png(struct gui_model *m, int width, int height, uint64_t now, const char *path,
                 char *err, size_t errlen)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_status_t st = cairo_surface_status(s);
    cairo_t *cr;

    if (st == CAIRO_STATUS_SUCCESS) {
        cr = cairo_create(s);
        gui_draw(cr, m, width, height, now + GUI_GROW_MS, NULL);
        st = cairo_status(cr);
        cairo_destroy(cr);
    }
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png(s, path);
    cairo_surface_destroy(s);
    if (st != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: %s", path, cairo_status_to_string(st));
        return -EIO;
    }
    return 0;
}
