/*
 * draw.h: the ring in cairo, the same code for the window and for --snapshot.
 */
#ifndef P2P_GUI_DRAW_H
#define P2P_GUI_DRAW_H

#include <stdint.h>

#include <cairo.h>

#include "model.h"

/* Node dot fills (0xRRGGBB): the test counts dots by these exact colours, and
 * nothing else on the drawing is filled with them over more than 64 pixels. */
#define GUI_FILL_SUPER 0x6b8fd9
#define GUI_FILL_MEMBER 0x5fb35f
#define GUI_FILL_CLIENT 0xe0a040
#define GUI_FILL_UNKNOWN 0xa8a8a8
#define GUI_DOT_R 9.0

/* What a window keeps between frames: the parts of the picture that change only
 * with its size (background, ring, centre hint), drawn once. */
struct gui_draw_cache {
    cairo_surface_t *background; /* NULL: none yet */
    int width, height;
};

/* Lays the model out for width x height (gui_model_layout) and draws it at time now
 * (ms, the clock of the model's events): ring, the selected node's links and keys,
 * the last route, message arrows, nodes, labels and a legend.  cache may be NULL
 * (everything drawn); else its background is made when missing or of another size
 * and reused. */
void gui_draw(cairo_t *cr, struct gui_model *m, double width, double height, uint64_t now,
              struct gui_draw_cache *cache);
/* Frees the cache's surfaces (the struct itself is the caller's). */
void gui_draw_cache_clear(struct gui_draw_cache *c);

/* Draws the model into a width x height PNG file, as gui_draw would GUI_GROW_MS
 * later: every node fully grown, message arrows (short-lived) gone, so a snapshot
 * shows the ring itself.  0, or -EIO with cairo's reason in err. */
int gui_draw_png(struct gui_model *m, int width, int height, uint64_t now, const char *path,
                 char *err, size_t errlen);

#endif
