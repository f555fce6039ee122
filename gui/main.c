/*
 * main.c: p2psip-gui, the ring viewer: its window, its actions, the model dump, the
 * snapshot, quitting, main().
 *
 * Design.  One struct gui_app (app.h), made in main() and passed to every callback,
 * holds all the state; there is no other mutable global.  Everything runs on the
 * GLib main loop (GTK's thread of control): sources.c feeds the model (model.c)
 * from each daemon's answers and watch events.  No event draws: each marks the app
 * dirty, and a tick callback on the drawing area's frame clock redraws at most once
 * per frame while something changed or still animates, then removes itself.  A
 * frame is drawn client-side (draw.c into an image) and put on the window at once.
 *
 * Without a display: --snapshot FILE draws the model after the first poll round of
 * every daemon into a PNG and exits; --dump-model prints (or writes to
 * --model-file) the model as JSON the same way.  While running, SIGUSR1 writes the
 * model to --model-file (through a temporary file and rename, so a reader never
 * sees half of it).  SIGTERM, SIGINT or closing the window stop the nodes the
 * viewer started (sources.c), wait for them, and end the loop.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gtk/gtk.h>

#include "app.h"
#include "ctl_client.h"
#include "draw.h"
#include "model.h"

#define SNAPSHOT_WAIT_MS 20000
#define SNAPSHOT_SIZE 800
#define STOP_WAIT_MS 8000
#define HIT_DIST 14.0

uint64_t gui__now_ms(void)
{
    return (uint64_t)(g_get_monotonic_time() / 1000);
}

static gboolean tick_cb(GtkWidget *w, GdkFrameClock *clock, gpointer data);

void gui__app_changed(struct gui_app *app)
{
    app->dirty = true;
    if (app->headless || app->area == NULL || app->tick_id != 0)
        return;
    app->tick_id = gtk_widget_add_tick_callback(app->area, tick_cb, app, NULL);
}

/* ---- the model as JSON (SIGUSR1, --dump-model) -------------------------------------------- */

/* gui_model_dump()'s object (laid out for the drawing area's size on screen), plus
 * "sources": [{"path", "connected", "started", "node_id"?, "pid"?}], "frames" and
 * "draw_us" (frames drawn on screen, time spent drawing them) and, with a window,
 * "center_window": the ring's centre and "stop_button": {"enabled", "center"} in
 * window coordinates, for a test that clicks there. */
static json_t *app_dump(struct gui_app *app)
{
    json_t *o, *srcs;

    if (!app->headless && app->area != NULL && gtk_widget_get_realized(app->area))
        gui_model_layout(app->model, gtk_widget_get_allocated_width(app->area),
                         gtk_widget_get_allocated_height(app->area));
    o = gui_model_dump(app->model);
    if (o == NULL)
        return NULL;
    if (!app->headless && app->area != NULL && app->window != NULL) {
        int wx = 0, wy = 0;
        /* Where the ring's centre is in the window, for a test that clicks there. */
        (void)gtk_widget_translate_coordinates(app->area, app->window, (int)app->model->cx,
                                               (int)app->model->cy, &wx, &wy);
        json_object_set_new(o, "center_window", json_pack("[i, i]", wx, wy));
        /* The Stop button: whether it is enabled, and its centre in the window. */
        (void)gtk_widget_translate_coordinates(
            app->stop_button, app->window, gtk_widget_get_allocated_width(app->stop_button) / 2,
            gtk_widget_get_allocated_height(app->stop_button) / 2, &wx, &wy);
        json_object_set_new(o, "stop_button",
                            json_pack("{s:b, s:[i, i]}", "enabled",
                                      gtk_widget_get_sensitive(app->stop_button), "center", wx,
                                      wy));
    }
    srcs = json_array();
    for (guint i = 0; i < app->sources->len; i++) {
        struct gui_source *s = g_ptr_array_index(app->sources, i);
        char hex[GUI_ID_HEX_LEN + 1] = "";
        json_t *e;
        if (s->have_id)
            gui_id_to_hex(&s->id, hex);
        e = json_pack("{s:s, s:b, s:b, s:s?}", "path", s->path, "connected",
                      s->ctl != NULL && gui_ctl_is_up(s->ctl), "started", s->pid != 0, "node_id",
                      s->have_id ? hex : NULL);
        if (e != NULL && s->pid != 0)
            json_object_set_new(e, "pid", json_integer(s->pid));
        json_array_append_new(srcs, e);
    }
    json_object_set_new(o, "sources", srcs);
    json_object_set_new(o, "frames", json_integer((json_int_t)app->frames));
    json_object_set_new(o, "draw_us", json_integer((json_int_t)app->draw_us));
    return o;
}

/* Writes the model to path (via path.tmp and rename) or stdout (path NULL). */
static int app_write_model(struct gui_app *app, const char *path)
{
    json_t *o = app_dump(app);
    char *tmp;
    int rc;

    if (o == NULL)
        return -ENOMEM;
    if (path == NULL) {
        rc = json_dumpf(o, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) ==
                     0
                 ? 0
                 : -EIO;
        fputc('\n', stdout);
        fflush(stdout);
        json_decref(o);
        return rc;
    }
    tmp = g_strdup_printf("%s.tmp", path);
    rc = json_dump_file(o, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) == 0
             ? 0
             : -EIO;
    if (rc == 0 && g_rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        g_printerr("p2psip-gui: cannot write the model to %s: %s\n", path, g_strerror(-rc));
        (void)g_unlink(tmp);
    }
    g_free(tmp);
    json_decref(o);
    return rc;
}

static gboolean sigusr1_cb(gpointer data)
{
    struct gui_app *app = data;

    if (app->model_file != NULL)
        (void)app_write_model(app, app->model_file);
    else
        g_printerr("p2psip-gui: SIGUSR1 but no --model-file\n");
    return G_SOURCE_CONTINUE;
}

/* ---- headless: --snapshot, --dump-model --------------------------------------------------- */

static void app_quit(struct gui_app *app, int status);

static void snapshot_now(struct gui_app *app, bool complete)
{
    char err[256];
    int status = complete ? 0 : 1;

    if (app->done)
        return;
    app->done = true;
    if (!complete)
        g_printerr("p2psip-gui: not every daemon answered within %d s; drawing what is known\n",
                   SNAPSHOT_WAIT_MS / 1000);
    (void)gui_model_tick(app->model, gui__now_ms());
    gui_model_layout(app->model, app->snapshot_size, app->snapshot_size);
    if (app->snapshot != NULL &&
        gui_draw_png(app->model, app->snapshot_size, app->snapshot_size, gui__now_ms(),
                     app->snapshot, err, sizeof(err)) != 0) {
        g_printerr("p2psip-gui: %s\n", err);
        status = 1;
    }
    if ((app->dump_model || app->model_file != NULL) && app_write_model(app, app->model_file) != 0)
        status = 1;
    app_quit(app, status);
}

/* In snapshot mode: draw once every daemon has answered a whole round. */
void gui__snapshot_check(struct gui_app *app)
{
    if (!app->headless || app->done)
        return;
    for (guint i = 0; i < app->sources->len; i++) {
        struct gui_source *s = g_ptr_array_index(app->sources, i);
        if (!s->round_done)
            return;
    }
    snapshot_now(app, true);
}

static gboolean snapshot_timeout_cb(gpointer data)
{
    struct gui_app *app = data;

    app->snapshot_timer = 0;
    snapshot_now(app, false);
    return G_SOURCE_REMOVE;
}

/* ---- quitting ------------------------------------------------------------------------------- */

static gboolean last_resort_cb(gpointer data)
{
    struct gui_app *app = data;

    app->quit_timer = 0;
    g_main_loop_quit(app->loop);
    return G_SOURCE_REMOVE;
}

static gboolean quit_timeout_cb(gpointer data)
{
    struct gui_app *app = data;

    app->quit_timer = 0;
    for (guint i = 0; i < app->sources->len; i++) {
        struct gui_source *s = g_ptr_array_index(app->sources, i);
        if (s->pid != 0) {
            g_printerr("p2psip-gui: p2psipd %d did not stop; SIGKILL\n", (int)s->pid);
            (void)kill(s->pid, SIGKILL);
        }
    }
    /* The child watches reap them and end the loop; this is the last resort. */
    app->quit_timer = g_timeout_add(2000, last_resort_cb, app);
    return G_SOURCE_REMOVE;
}

/* Stops every node we started, then ends the main loop with status. */
static void app_quit(struct gui_app *app, int status)
{
    if (app->quitting)
        return;
    app->quitting = true;
    app->exit_status = status;
    for (guint i = 0; i < app->sources->len; i++) {
        struct gui_source *s = g_ptr_array_index(app->sources, i);
        if (s->pid != 0 && !s->stopping)
            gui__source_stop(s);
    }
    if (gui__children_running(app) == 0)
        g_main_loop_quit(app->loop);
    else
        app->quit_timer = g_timeout_add(STOP_WAIT_MS, quit_timeout_cb, app);
}

static gboolean sigterm_cb(gpointer data)
{
    app_quit(data, 0);
    return G_SOURCE_CONTINUE;
}

/* ---- the window ----------------------------------------------------------------------------- */

static struct gui_source *source_of(struct gui_app *app, const struct gui_id *id)
{
    for (guint i = 0; i < app->sources->len; i++) {
        struct gui_source *s = g_ptr_array_index(app->sources, i);
        if (s->have_id && memcmp(s->id.b, id->b, GUI_ID_LEN) == 0)
            return s;
    }
    return NULL;
}

void gui__update_route_label(struct gui_app *app, const char *text)
{
    if (app->route_label == NULL)
        return;
    if (app->shown_route != NULL && strcmp(app->shown_route, text) == 0)
        return;
    g_free(app->shown_route);
    app->shown_route = g_strdup(text);
    gtk_label_set_text(GTK_LABEL(app->route_label), text);
}

static void update_panel(struct gui_app *app)
{
    struct gui_model *m = app->model;
    struct gui_node *n = m->has_selected ? gui_model_find(m, &m->selected) : NULL;
    struct gui_source *s = n != NULL ? source_of(app, &n->id) : NULL;
    char hex[GUI_ID_HEX_LEN + 1], title[256];
    const char *text;

    if (n == NULL) {
        snprintf(title, sizeof(title), "%s",
                 "Click near the centre of the ring to start a new node.\n"
                 "Click on a node to see its leaf set (green), routing table (orange) "
                 "and stored keys (purple).\nType a key below to watch its lookup.");
        text = "";
    } else {
        gui_id_to_hex(&n->id, hex);
        snprintf(title, sizeof(title), "Node %s\n%s, %s%s", hex, gui_role_name(n->role),
                 n->connected ? "connected"
                 : n->gone    ? "gone"
                              : "heard of",
                 s != NULL && s->pid != 0 ? ", started here" : "");
        text = n->detail != NULL && n->detail->status_text != NULL ? n->detail->status_text
               : s != NULL && s->why[0] != '\0'                    ? s->why
                                                                   : "(not connected)";
    }
    if (app->shown_title == NULL || strcmp(app->shown_title, title) != 0) {
        /* Only when it changed: a label's text costs a Pango layout of the panel. */
        g_free(app->shown_title);
        app->shown_title = g_strdup(title);
        gtk_label_set_text(GTK_LABEL(app->title), title);
    }
    if (app->shown_status == NULL || strcmp(app->shown_status, text) != 0) {
        g_free(app->shown_status);
        app->shown_status = g_strdup(text);
        gtk_text_buffer_set_text(gtk_text_view_get_buffer(GTK_TEXT_VIEW(app->status_view)), text,
                                 -1);
    }
    gtk_widget_set_sensitive(app->stop_button,
                             s != NULL && !s->stopping &&
                                 (s->pid != 0 || (s->ctl != NULL && gui_ctl_is_up(s->ctl))));
}

static gboolean tick_cb(GtkWidget *w, GdkFrameClock *clock, gpointer data)
{
    struct gui_app *app = data;
    bool busy = gui_model_tick(app->model, gui__now_ms());

    (void)clock;
    if (!app->dirty && !busy) {
        app->tick_id = 0;
        return G_SOURCE_REMOVE;
    }
    if (app->dirty)
        update_panel(app);
    app->dirty = false;
    gtk_widget_queue_draw(w);
    return G_SOURCE_CONTINUE;
}

static gboolean draw_cb(GtkWidget *w, cairo_t *cr, gpointer data)
{
    struct gui_app *app = data;

    int width = gtk_widget_get_allocated_width(w), height = gtk_widget_get_allocated_height(w);
    gint64 t0 = g_get_monotonic_time();
    cairo_t *icr;

    /* Drawn on the client side into an image, then put on the window in one go:
     * hundreds of translucent strokes straight onto an X11 surface cost the X
     * server a round trip each (measured: 50 ms a frame at 600 arrows). */
    if (app->frame == NULL || cairo_image_surface_get_width(app->frame) != width ||
        cairo_image_surface_get_height(app->frame) != height) {
        if (app->frame != NULL)
            cairo_surface_destroy(app->frame);
        app->frame = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    }
    icr = cairo_create(app->frame);
    gui_draw(icr, app->model, width, height, gui__now_ms(), &app->draw_cache);
    cairo_destroy(icr);
    cairo_set_source_surface(cr, app->frame, 0, 0);
    cairo_paint(cr);
    app->frames++;
    app->draw_us += (uint64_t)(g_get_monotonic_time() - t0);
    return TRUE;
}

static gboolean press_cb(GtkWidget *w, GdkEventButton *ev, gpointer data)
{
    struct gui_app *app = data;
    struct gui_node *n;

    (void)w;
    if (ev->type != GDK_BUTTON_PRESS || ev->button != 1)
        return FALSE;
    if (gui_model_near_centre(app->model, ev->x, ev->y)) {
        gui__start_node(app);
        return TRUE;
    }
    n = gui_model_hit(app->model, ev->x, ev->y, HIT_DIST);
    app->model->has_selected = n != NULL;
    if (n != NULL)
        app->model->selected = n->id;
    gui__app_changed(app);
    return TRUE;
}

static void stop_clicked(GtkButton *b, gpointer data)
{
    struct gui_app *app = data;
    struct gui_source *s = app->model->has_selected ? source_of(app, &app->model->selected) : NULL;

    (void)b;
    if (s != NULL)
        gui__source_stop(s);
    gui__app_changed(app);
}

static void lookup_activated(GtkEntry *e, gpointer data)
{
    struct gui_app *app = data;
    const char *key = gtk_entry_get_text(e);
    struct gui_source *s = app->model->has_selected ? source_of(app, &app->model->selected) : NULL;
    int rc;

    if (key[0] == '\0')
        return;
    for (guint i = 0; s == NULL && i < app->sources->len; i++) {
        struct gui_source *o = g_ptr_array_index(app->sources, i);
        if (o->ctl != NULL && gui_ctl_is_up(o->ctl) && o->have_id)
            s = o; /* nothing selected: the first daemon that answers */
    }
    if (s == NULL || s->ctl == NULL) {
        gui__update_route_label(app, "route: no connected daemon");
        return;
    }
    rc = gui_ctl_request(s->ctl, "route", key);
    gui__update_route_label(app, rc == 0 ? "route: asking…" : g_strerror(-rc));
}

static gboolean delete_cb(GtkWidget *w, GdkEvent *ev, gpointer data)
{
    (void)w;
    (void)ev;
    app_quit(data, 0);
    return TRUE; /* the window goes with the loop */
}

static void build_window(struct gui_app *app)
{
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 0);
    GtkWidget *panel = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
    GtkWidget *scroll = gtk_scrolled_window_new(NULL, NULL);
    GtkWidget *route_scroll = gtk_scrolled_window_new(NULL, NULL);

    app->window = gtk_window_new(GTK_WINDOW_TOPLEVEL);
    gtk_window_set_title(GTK_WINDOW(app->window), "p2psip ring");
    gtk_window_set_default_size(GTK_WINDOW(app->window), 1100, 780);
    g_signal_connect(app->window, "delete-event", G_CALLBACK(delete_cb), app);

    /* The drawing area first, at the window's origin. */
    app->area = gtk_drawing_area_new();
    gtk_widget_set_hexpand(app->area, TRUE);
    gtk_widget_set_vexpand(app->area, TRUE);
    gtk_widget_add_events(app->area, GDK_BUTTON_PRESS_MASK);
    g_signal_connect(app->area, "draw", G_CALLBACK(draw_cb), app);
    g_signal_connect(app->area, "button-press-event", G_CALLBACK(press_cb), app);
    gtk_box_pack_start(GTK_BOX(box), app->area, TRUE, TRUE, 0);

    gtk_widget_set_size_request(panel, 340, -1);
    gtk_container_set_border_width(GTK_CONTAINER(panel), 8);
    app->title = gtk_label_new(NULL);
    gtk_label_set_line_wrap(GTK_LABEL(app->title), TRUE);
    gtk_label_set_max_width_chars(GTK_LABEL(app->title), 40); /* wrap, do not widen */
    gtk_label_set_xalign(GTK_LABEL(app->title), 0);
    gtk_label_set_selectable(GTK_LABEL(app->title), TRUE);
    gtk_box_pack_start(GTK_BOX(panel), app->title, FALSE, FALSE, 0);
    app->status_view = gtk_text_view_new();
    gtk_text_view_set_editable(GTK_TEXT_VIEW(app->status_view), FALSE);
    gtk_text_view_set_monospace(GTK_TEXT_VIEW(app->status_view), TRUE);
    gtk_container_add(GTK_CONTAINER(scroll), app->status_view);
    gtk_widget_set_vexpand(scroll, TRUE);
    gtk_box_pack_start(GTK_BOX(panel), scroll, TRUE, TRUE, 0);
    app->stop_button = gtk_button_new_with_label("Stop this node");
    gtk_widget_set_tooltip_text(app->stop_button,
                                "A node this viewer started: SIGTERM; any other: its control "
                                "socket's stop");
    g_signal_connect(app->stop_button, "clicked", G_CALLBACK(stop_clicked), app);
    gtk_box_pack_start(GTK_BOX(panel), app->stop_button, FALSE, FALSE, 0);
    app->entry = gtk_entry_new();
    gtk_entry_set_placeholder_text(GTK_ENTRY(app->entry), "key to look up (Enter)");
    gtk_entry_set_max_length(GTK_ENTRY(app->entry), GUI_CTL_ARG_MAX - 1);
    g_signal_connect(app->entry, "activate", G_CALLBACK(lookup_activated), app);
    gtk_box_pack_start(GTK_BOX(panel), app->entry, FALSE, FALSE, 0);
    app->route_label = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(app->route_label), 0);
    gtk_label_set_yalign(GTK_LABEL(app->route_label), 0);
    gtk_label_set_selectable(GTK_LABEL(app->route_label), TRUE);
    gtk_container_add(GTK_CONTAINER(route_scroll), app->route_label);
    gtk_widget_set_size_request(route_scroll, -1, 180);
    gtk_box_pack_start(GTK_BOX(panel), route_scroll, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), panel, FALSE, FALSE, 0);

    gtk_container_add(GTK_CONTAINER(app->window), box);
    update_panel(app);
    gtk_widget_show_all(app->window);
    gtk_widget_grab_focus(app->entry); /* typing a key goes to the lookup box */
}

/* ---- main ----------------------------------------------------------------------------------- */

/* The default daemon's socket, as p2psipd and p2psipctl find it. */
static char *default_socket(void)
{
    const char *xdg = g_getenv("XDG_DATA_HOME");

    if (geteuid() == 0)
        return g_strdup("/var/lib/p2psip/control.sock");
    if (xdg != NULL && xdg[0] == '/')
        return g_build_filename(xdg, "p2psip", "control.sock", NULL);
    return g_build_filename(g_get_home_dir(), ".local", "share", "p2psip", "control.sock", NULL);
}

int main(int argc, char **argv)
{
    struct gui_app app = {.snapshot_size = SNAPSHOT_SIZE};
    char **controls = NULL;
    GError *error = NULL;
    GOptionEntry entries[] = {
        {"control", 'c', 0, G_OPTION_ARG_FILENAME_ARRAY, &controls,
         "a daemon's control socket (repeatable; default: the local daemon's)", "PATH"},
        {"p2psipd", 0, 0, G_OPTION_ARG_FILENAME, &app.p2psipd,
         "the p2psipd to start nodes with (default: the build tree's, else PATH)", "PATH"},
        {"snapshot", 0, 0, G_OPTION_ARG_FILENAME, &app.snapshot,
         "draw the ring into a PNG after the first poll round, and exit (no display needed)",
         "FILE"},
        {"size", 0, 0, G_OPTION_ARG_INT, &app.snapshot_size, "the snapshot's size (default 800)",
         "PIXELS"},
        {"dump-model", 0, 0, G_OPTION_ARG_NONE, &app.dump_model,
         "print the model as JSON after the first poll round, and exit", NULL},
        {"model-file", 0, 0, G_OPTION_ARG_FILENAME, &app.model_file,
         "where SIGUSR1 (and --dump-model, --snapshot) write the model as JSON", "FILE"},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    GOptionContext *ctx = g_option_context_new("- the p2psip ring viewer");
    int status;

    g_option_context_add_main_entries(ctx, entries, NULL);
    /* GTK's own options (--display, ...); no display is opened while parsing. */
    g_option_context_add_group(ctx, gtk_get_option_group(FALSE));
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("p2psip-gui: %s\n", error->message);
        g_clear_error(&error);
        g_option_context_free(ctx);
        return 2;
    }
    g_option_context_free(ctx);
    if (app.snapshot_size < 100 || app.snapshot_size > 8000) {
        g_printerr("p2psip-gui: --size: 100 to 8000\n");
        return 2;
    }
    app.headless = app.snapshot != NULL || app.dump_model;
    /* Signals first: a SIGUSR1 or SIGTERM from now on is handled on the loop. */
    app.loop = g_main_loop_new(NULL, FALSE);
    (void)g_unix_signal_add(SIGTERM, sigterm_cb, &app);
    (void)g_unix_signal_add(SIGINT, sigterm_cb, &app);
    (void)g_unix_signal_add(SIGUSR1, sigusr1_cb, &app);
    if (!app.headless && !gtk_init_check(&argc, &argv)) {
        g_printerr("p2psip-gui: cannot open the display (use --snapshot without one)\n");
        return 1;
    }
    if (gui_model_new(&app.model) != 0) {
        g_printerr("p2psip-gui: out of memory\n");
        return 1;
    }
    app.sources = g_ptr_array_new();
    if (controls != NULL) {
        for (char **p = controls; *p != NULL; p++)
            (void)gui__source_add(&app, *p);
    } else {
        char *def = default_socket();
        if (g_file_test(def, G_FILE_TEST_EXISTS))
            (void)gui__source_add(&app, def);
        g_free(def);
    }
    g_strfreev(controls);

    app.poll_timer = g_timeout_add(POLL_MS, gui__poll_cb, &app);
    if (app.headless) {
        app.snapshot_timer = g_timeout_add(SNAPSHOT_WAIT_MS, snapshot_timeout_cb, &app);
        if (app.sources->len == 0)
            snapshot_now(&app, true);
    } else {
        build_window(&app);
    }
    if (!app.quitting || gui__children_running(&app) > 0)
        g_main_loop_run(app.loop);

    status = app.exit_status;
    g_source_remove(app.poll_timer);
    if (app.snapshot_timer != 0)
        g_source_remove(app.snapshot_timer);
    if (app.quit_timer != 0)
        g_source_remove(app.quit_timer);
    if (app.window != NULL)
        gtk_widget_destroy(app.window);
    for (guint i = 0; i < app.sources->len; i++)
        gui__source_free(g_ptr_array_index(app.sources, i));
    g_ptr_array_free(app.sources, TRUE);
    g_main_loop_unref(app.loop);
    gui_model_free(app.model);
    if (app.frame != NULL)
        cairo_surface_destroy(app.frame);
    gui_draw_cache_clear(&app.draw_cache);
    g_free(app.shown_title);
    g_free(app.shown_status);
    g_free(app.shown_route);
    g_free(app.p2psipd);
    g_free(app.snapshot);
    g_free(app.model_file);
    return status;
}
