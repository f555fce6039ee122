/*
 * app.h: the viewer's state, shared by main.c (window, dump, snapshot, quitting) and
 * sources.c (the daemons it talks to and the nodes it starts).
 *
 * One struct gui_app, made in main() and passed to every callback, holds all the
 * state; there is no other mutable global.  Everything runs on the GLib main loop.
 */
#ifndef P2P_GUI_APP_H
#define P2P_GUI_APP_H

#include <stdbool.h>
#include <stdint.h>

#include <gtk/gtk.h>

#include "draw.h"
#include "model.h"

#define POLL_MS 1000 /* a poll round of every daemon */

struct gui_app;

/* A daemon the viewer talks to (and maybe started). */
struct gui_source {
    struct gui_app *app;
    struct gui_ctl *ctl; /* NULL once stopped */
    char *path;
    bool have_id;
    struct gui_id id;
    unsigned round_pending; /* answers of the current poll round still due */
    unsigned rounds;        /* poll rounds since the connection came up */
    bool round_done;        /* one whole round has been answered */
    GPid pid;               /* a p2psipd this viewer started, else 0 */
    char *data_dir;         /* its fresh data directory */
    guint child_watch;
    bool stopping;
    char why[256]; /* why the connection is down */
};

struct gui_app {
    struct gui_model *model;
    GPtrArray *sources;
    char *p2psipd;
    char *snapshot, *model_file;
    gboolean dump_model;
    int snapshot_size;
    bool headless, quitting, dirty, done;
    int exit_status;
    uint64_t frames;        /* drawn on screen */
    uint64_t draw_us;       /* time spent in them */
    cairo_surface_t *frame; /* the drawing area's picture, drawn client-side */
    struct gui_draw_cache draw_cache;
    GMainLoop *loop;
    guint poll_timer, snapshot_timer, quit_timer;
    guint tick_id;
    GtkWidget *window, *area, *title, *status_view, *stop_button, *entry, *route_label;
    char *shown_title, *shown_status, *shown_route;
};

/* main.c */
/* Milliseconds on the monotonic clock: the model's time. */
uint64_t gui__now_ms(void);
/* Something changed: redraw on the next frame (never from inside this call). */
void gui__app_changed(struct gui_app *app);
/* In snapshot mode: draws and quits once every daemon has answered a whole round. */
void gui__snapshot_check(struct gui_app *app);
/* Shows text (copied) in the route list under the lookup box; no-op without a window. */
void gui__update_route_label(struct gui_app *app, const char *text);

/* sources.c */
/* The poll timer (POLL_MS): a round for every connected daemon not in one. */
gboolean gui__poll_cb(gpointer data);
/* Follows the daemon at the control socket path (connects from the loop); NULL when
 * SOURCES_MAX are followed or the path is too long (said on stderr). */
struct gui_source *gui__source_add(struct gui_app *app, const char *path);
/* Disconnects, and removes the data directory of a node this viewer started. */
void gui__source_free(struct gui_source *s);
/* Stops a node: one this viewer started by SIGTERM to its PID (its child watch
 * cleans up), any other through its control socket's `stop`. */
void gui__source_stop(struct gui_source *s);
/* How many nodes this viewer started still run (not yet reaped). */
unsigned gui__children_running(struct gui_app *app);
/* Starts a new local node (a click near the centre); errors go to stderr. */
void gui__start_node(struct gui_app *app);

#endif
