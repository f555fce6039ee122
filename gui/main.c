/*
 * main.c: p2psip-gui, the ring viewer: its window, its daemons, its actions.
 *
 * Design.  One struct gui_app, made in main() and passed to every callback, holds
 * all the state; there is no other mutable global.  Everything runs on the GLib
 * main loop (GTK's thread of control): a gui_ctl per daemon (ctl_client.c) feeds
 * the model (model.c) from answers to a poll round every POLL_MS (status,
 * leafset, routes, peers, and records every RECORDS_EVERY rounds; a new round only
 * once the last one is answered) and from watch events.  No event draws: each
 * marks the app dirty, and a tick callback on the drawing area's frame clock
 * redraws at most once per frame while something changed or still animates, then
 * removes itself.
 *
 * Nodes the viewer starts (a click near the centre) are p2psipd children with a
 * fresh data directory (mkdtemp under $XDG_RUNTIME_DIR or /tmp) holding their log
 * and control socket; they are reaped by a child watch, stopped with SIGTERM by
 * PID (the Stop button, and at exit: SIGTERM, SIGINT or closing the window), and
 * their directories removed once they have exited.
 *
 * Without a display: --snapshot FILE draws the model after the first poll round of
 * every daemon into a PNG and exits; --dump-model prints (or writes to
 * --model-file) the model as JSON the same way.  While running, SIGUSR1 writes the
 * model to --model-file (through a temporary file and rename, so a reader never
 * sees half of it).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gtk/gtk.h>

#include "ctl_client.h"
#include "draw.h"
#include "model.h"
#include "p2p/dht_id.h"

#define POLL_MS 1000
#define RECORDS_EVERY 5 /* poll rounds */
#define SNAPSHOT_WAIT_MS 20000
#define SNAPSHOT_SIZE 800
#define STOP_WAIT_MS 8000
#define HIT_DIST 14.0
#define SOURCES_MAX 256

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

static uint64_t now_ms(void)
{
    return (uint64_t)(g_get_monotonic_time() / 1000);
}

static gboolean tick_cb(GtkWidget *w, GdkFrameClock *clock, gpointer data);

/* Something changed: redraw on the next frame (never here). */
static void app_changed(struct gui_app *app)
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
    (void)gui_model_tick(app->model, now_ms());
    gui_model_layout(app->model, app->snapshot_size, app->snapshot_size);
    if (app->snapshot != NULL && gui_draw_png(app->model, app->snapshot_size, app->snapshot_size,
                                              now_ms(), app->snapshot, err, sizeof(err)) != 0) {
        g_printerr("p2psip-gui: %s\n", err);
        status = 1;
    }
    if ((app->dump_model || app->model_file != NULL) && app_write_model(app, app->model_file) != 0)
        status = 1;
    app_quit(app, status);
}

/* In snapshot mode: draw once every daemon has answered a whole round. */
static void snapshot_check(struct gui_app *app)
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

/* ---- the daemons ---------------------------------------------------------------------------- */

static const char *const poll_cmds[] = {"status", "leafset", "routes", "peers", "records"};

static void poll_source(struct gui_source *s)
{
    if (s->ctl == NULL || !gui_ctl_is_up(s->ctl) || s->round_pending > 0)
        return;
    for (size_t i = 0; i < G_N_ELEMENTS(poll_cmds); i++) {
        /* records can be megabytes, and record events keep the keys current:
         * the whole list only every RECORDS_EVERY rounds. */
        if (strcmp(poll_cmds[i], "records") == 0 && s->rounds % RECORDS_EVERY != 0)
            continue;
        if (gui_ctl_request(s->ctl, poll_cmds[i], NULL) == 0)
            s->round_pending++;
    }
    s->rounds++;
}

static gboolean poll_cb(gpointer data)
{
    struct gui_app *app = data;

    for (guint i = 0; i < app->sources->len; i++)
        poll_source(g_ptr_array_index(app->sources, i));
    app_changed(app); /* ages the model even when nothing is answered */
    return G_SOURCE_CONTINUE;
}

static bool is_poll_cmd(const char *cmd)
{
    for (size_t i = 0; i < G_N_ELEMENTS(poll_cmds); i++)
        if (strcmp(cmd, poll_cmds[i]) == 0)
            return true;
    return false;
}

static void update_route_label(struct gui_app *app, const char *text);

static void on_route(struct gui_source *s, const char *key, bool ok, const json_t *r)
{
    struct gui_app *app = s->app;
    struct gui_model *m = app->model;
    struct dht_id k;
    struct gui_id key_id;
    GString *t;
    char hex[GUI_ID_HEX_LEN + 1];

    if (!ok) {
        char *msg = g_strdup_printf("route %s: %s", key,
                                    json_is_string(r) ? json_string_value(r) : "failed");
        update_route_label(app, msg);
        g_free(msg);
        return;
    }
    dht_id_hash(&k, key, strlen(key)); /* the daemon routes to the hash of the key */
    memcpy(key_id.b, k.b, GUI_ID_LEN);
    if (gui_model_apply_route(m, &s->id, key, &key_id, r, now_ms()) != 0) {
        update_route_label(app, "route: an answer without a root");
        return;
    }
    t = g_string_new(NULL);
    gui_id_to_hex(&m->route.key, hex);
    g_string_append_printf(t, "route %s\nkey %.16s…\n", key, hex);
    if (m->route.n_path == 0) {
        gui_id_to_hex(&s->id, hex);
        g_string_append_printf(t, " 0  %.12s  (asked)\n", hex);
    }
    /* Hop by hop; rtt_ms is each hop's smoothed RTT to the next one. */
    for (unsigned i = 0; i < m->route.n_path; i++) {
        gui_id_to_hex(&m->route.path[i], hex);
        if (m->route.path_rtt_ms[i] >= 0)
            g_string_append_printf(t, "%2u  %.12s  %s  %d ms\n", i, hex, m->route.path_addr[i],
                                   m->route.path_rtt_ms[i]);
        else
            g_string_append_printf(t, "%2u  %.12s  %s  -\n", i, hex, m->route.path_addr[i]);
    }
    gui_id_to_hex(&m->route.root, hex);
    g_string_append_printf(t, "root %.12s  %s\n%u hop%s%s", hex, m->route.root_addr, m->route.hops,
                           m->route.hops == 1 ? "" : "s",
                           m->route.n_path == 0 ? " (this daemon reports no path)" : "");
    update_route_label(app, t->str);
    g_string_free(t, TRUE);
}

static void answer_cb(struct gui_ctl *c, const char *cmd, const char *arg1, bool ok,
                      const json_t *r, void *arg)
{
    struct gui_source *s = arg;
    struct gui_app *app = s->app;
    uint64_t now = now_ms();
    int rc = 0;

    (void)c;
    if (strcmp(cmd, "status") == 0 && ok) {
        struct gui_id id;
        rc = gui_model_apply_status(app->model, r, now, &id);
        if (rc == 0) {
            /* Another daemon on the same socket now (a new data directory): the
             * old node is no longer ours to show as connected. */
            if (s->have_id && memcmp(s->id.b, id.b, GUI_ID_LEN) != 0)
                gui_model_source_forget(app->model, &s->id, now);
            s->id = id;
            s->have_id = true;
        }
    } else if (strcmp(cmd, "route") == 0 && s->have_id) {
        on_route(s, arg1, ok, r);
    } else if (ok && s->have_id) {
        if (strcmp(cmd, "leafset") == 0)
            rc = gui_model_apply_leafset(app->model, &s->id, r, now);
        else if (strcmp(cmd, "routes") == 0)
            rc = gui_model_apply_routes(app->model, &s->id, r, now);
        else if (strcmp(cmd, "peers") == 0)
            rc = gui_model_apply_peers(app->model, &s->id, r, now);
        else if (strcmp(cmd, "records") == 0)
            rc = gui_model_apply_records(app->model, &s->id, r);
    }
    if (rc != 0)
        g_warning("%s: unexpected %s answer (%s)", s->path, cmd, g_strerror(-rc));
    if (is_poll_cmd(cmd) && s->round_pending > 0 && --s->round_pending == 0) {
        s->round_done = true;
        snapshot_check(app);
    }
    app_changed(app);
}

static void event_cb(struct gui_ctl *c, const json_t *ev, void *arg)
{
    struct gui_source *s = arg;

    (void)c;
    if (!s->have_id) /* events before the first status answer: no node to pin them on */
        return;
    (void)gui_model_apply_event(s->app->model, &s->id, ev, now_ms());
    app_changed(s->app);
}

static void state_cb(struct gui_ctl *c, bool up, const char *why, void *arg)
{
    struct gui_source *s = arg;

    if (up) {
        s->why[0] = '\0';
        s->round_pending = 0;
        s->rounds = 0;
        poll_source(s); /* status first: events are pinned on the node it names */
        (void)gui_ctl_request(c, "watch", NULL);
    } else {
        if (s->why[0] == '\0') /* once per outage, not once per retry */
            g_printerr("p2psip-gui: %s: %s (retrying)\n", s->path, why ? why : "down");
        snprintf(s->why, sizeof(s->why), "%s", why ? why : "down");
        s->round_pending = 0;
        if (s->have_id)
            gui_model_source_lost(s->app->model, &s->id, now_ms());
    }
    app_changed(s->app);
}

static const struct gui_ctl_ops ctl_ops = {state_cb, answer_cb, event_cb};

static struct gui_source *source_add(struct gui_app *app, const char *path)
{
    struct gui_source *s;
    int rc;

    if (app->sources->len >= SOURCES_MAX) {
        g_printerr("p2psip-gui: at most %d daemons\n", SOURCES_MAX);
        return NULL;
    }
    s = g_new0(struct gui_source, 1);
    s->app = app;
    s->path = g_strdup(path);
    rc = gui_ctl_new(&s->ctl, path, &ctl_ops, s);
    if (rc != 0) {
        g_printerr("p2psip-gui: %s: %s\n", path, g_strerror(-rc));
        g_free(s->path);
        g_free(s);
        return NULL;
    }
    g_ptr_array_add(app->sources, s);
    return s;
}

/* Removes a data directory this viewer made (one level of files, then the dir). */
static void remove_data_dir(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    if (d != NULL) {
        while ((name = g_dir_read_name(d)) != NULL) {
            char *p = g_build_filename(dir, name, NULL);
            (void)g_unlink(p);
            g_free(p);
        }
        g_dir_close(d);
    }
    (void)g_rmdir(dir);
}

static void source_free(struct gui_source *s)
{
    gui_ctl_free(s->ctl);
    if (s->child_watch != 0)
        g_source_remove(s->child_watch);
    if (s->data_dir != NULL)
        remove_data_dir(s->data_dir);
    g_free(s->data_dir);
    g_free(s->path);
    g_free(s);
}

static unsigned children_running(struct gui_app *app)
{
    unsigned n = 0;

    for (guint i = 0; i < app->sources->len; i++)
        n += ((struct gui_source *)g_ptr_array_index(app->sources, i))->pid != 0;
    return n;
}

/* A node we started exited: reaped; it leaves the model and the sources. */
static void child_exited(GPid pid, gint status, gpointer data)
{
    struct gui_source *s = data;
    struct gui_app *app = s->app;
    GError *error = NULL;

    if (!g_spawn_check_wait_status(status, &error)) {
        g_printerr("p2psip-gui: p2psipd %d (%s): %s\n", (int)pid, s->data_dir, error->message);
        g_clear_error(&error);
    }
    g_spawn_close_pid(pid);
    s->child_watch = 0; /* this source is removed when the callback returns */
    s->pid = 0;
    if (s->have_id)
        gui_model_source_forget(app->model, &s->id, now_ms());
    (void)g_ptr_array_remove(app->sources, s);
    source_free(s);
    app_changed(app);
    if (app->quitting && children_running(app) == 0)
        g_main_loop_quit(app->loop);
}

/* Stops a node this viewer started: SIGTERM by PID; the child watch cleans up. */
static void source_stop(struct gui_source *s)
{
    if (s->pid == 0 || s->stopping)
        return;
    s->stopping = true;
    if (kill(s->pid, SIGTERM) != 0)
        g_printerr("p2psip-gui: kill %d: %s\n", (int)s->pid, g_strerror(errno));
    gui_ctl_free(s->ctl); /* no reconnecting to a node on its way out */
    s->ctl = NULL;
    if (s->have_id)
        gui_model_source_forget(s->app->model, &s->id, now_ms());
}

/* A port free for both UDP and TCP on 127.0.0.1 (bound to 0, read, closed). */
static int free_port(void)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof(a);
        int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0), port = -1;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(u, (struct sockaddr *)&a, &len) == 0 &&
            bind(t, (struct sockaddr *)&a, sizeof(a)) == 0)
            port = ntohs(a.sin_port);
        if (u >= 0)
            close(u);
        if (t >= 0)
            close(t);
        if (port > 0)
            return port;
    }
    return -1;
}

/* The p2psipd to start: --p2psipd, else next to this binary in the build tree
 * (../p2psipd/p2psipd) or the installed tree (../sbin/p2psipd), else on PATH. */
static char *find_p2psipd(struct gui_app *app)
{
    char *self, *dir, *p;

    if (app->p2psipd != NULL)
        return g_strdup(app->p2psipd);
    self = g_file_read_link("/proc/self/exe", NULL);
    if (self != NULL) {
        /* build/gui/p2psip-gui -> build/p2psipd/p2psipd; bin/ -> sbin/ when installed */
        static const char *const rel[] = {"../p2psipd/p2psipd", "../sbin/p2psipd"};
        dir = g_path_get_dirname(self);
        g_free(self);
        for (size_t i = 0; i < G_N_ELEMENTS(rel); i++) {
            p = g_build_filename(dir, rel[i], NULL);
            if (g_file_test(p, G_FILE_TEST_IS_EXECUTABLE)) {
                g_free(dir);
                return p;
            }
            g_free(p);
        }
        g_free(dir);
    }
    return g_find_program_in_path("p2psipd");
}

/* Starts a new node: through a connected daemon's advertised address, or (none) as
 * a new overlay's first node. */
static void start_node(struct gui_app *app)
{
    const char *base = g_getenv("XDG_RUNTIME_DIR");
    char *bin = find_p2psipd(app), *dir = NULL, *sock = NULL, *logp = NULL, *boot = NULL;
    char sip[16];
    GError *error = NULL;
    GPid pid;
    int port = free_port(), logfd = -1;
    struct gui_source *s;

    if (bin == NULL) {
        g_printerr("p2psip-gui: no p2psipd found (use --p2psipd PATH)\n");
        goto out;
    }
    if (port < 0) {
        g_printerr("p2psip-gui: no free port for SIP\n");
        goto out;
    }
    for (guint i = 0; i < app->sources->len && boot == NULL; i++) {
        struct gui_source *o = g_ptr_array_index(app->sources, i);
        struct gui_node *n = o->have_id ? gui_model_find(app->model, &o->id) : NULL;
        if (n == NULL || !n->connected || n->detail == NULL ||
            (n->role != GUI_ROLE_MEMBER && n->role != GUI_ROLE_SUPER))
            continue;
        if (n->detail->advertised[0] != '\0')
            boot = g_strdup(n->detail->advertised);
        else if (n->detail->p2p_port > 0) /* its socket is local: so is the daemon */
            boot = g_strdup_printf("127.0.0.1:%d", n->detail->p2p_port);
    }
    dir = g_build_filename(base != NULL && base[0] == '/' ? base : g_get_tmp_dir(),
                           "p2psip-gui.XXXXXX", NULL);
    if (g_mkdtemp(dir) == NULL) {
        g_printerr("p2psip-gui: mkdtemp %s: %s\n", dir, g_strerror(errno));
        goto out;
    }
    sock = g_build_filename(dir, "control.sock", NULL);
    logp = g_build_filename(dir, "p2psipd.log", NULL);
    logfd = g_open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    snprintf(sip, sizeof(sip), "%d", port);
    const char *argv[] = {bin,          "-p", sip,         "-P", "0",
                          "--data-dir", dir,  "--control", sock, boot != NULL ? "-S" : "-s",
                          boot,         NULL};
    if (!g_spawn_async_with_fds(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &pid, -1, logfd, logfd, &error)) {
        g_printerr("p2psip-gui: cannot start %s: %s\n", bin, error->message);
        g_clear_error(&error);
        remove_data_dir(dir);
        goto out;
    }
    g_printerr("p2psip-gui: started p2psipd %d (%s, %s)\n", (int)pid, dir,
               boot ? boot : "a new overlay");
    s = source_add(app, sock);
    if (s == NULL) {
        (void)kill(pid, SIGTERM); /* the watch below still reaps it */
        s = g_new0(struct gui_source, 1);
        s->app = app;
        s->path = g_strdup(sock);
        s->stopping = true;
        g_ptr_array_add(app->sources, s);
    }
    s->pid = pid;
    s->data_dir = dir;
    dir = NULL;
    s->child_watch = g_child_watch_add(pid, child_exited, s);
    app_changed(app);
out:
    if (logfd >= 0)
        close(logfd);
    g_free(bin);
    g_free(dir);
    g_free(sock);
    g_free(logp);
    g_free(boot);
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
            source_stop(s);
    }
    if (children_running(app) == 0)
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

static void update_route_label(struct gui_app *app, const char *text)
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
    gtk_widget_set_sensitive(app->stop_button, s != NULL && s->pid != 0 && !s->stopping);
}

static gboolean tick_cb(GtkWidget *w, GdkFrameClock *clock, gpointer data)
{
    struct gui_app *app = data;
    bool busy = gui_model_tick(app->model, now_ms());

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
    gui_draw(icr, app->model, width, height, now_ms(), &app->draw_cache);
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
        start_node(app);
        return TRUE;
    }
    n = gui_model_hit(app->model, ev->x, ev->y, HIT_DIST);
    app->model->has_selected = n != NULL;
    if (n != NULL)
        app->model->selected = n->id;
    app_changed(app);
    return TRUE;
}

static void stop_clicked(GtkButton *b, gpointer data)
{
    struct gui_app *app = data;
    struct gui_source *s = app->model->has_selected ? source_of(app, &app->model->selected) : NULL;

    (void)b;
    if (s != NULL)
        source_stop(s);
    app_changed(app);
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
        update_route_label(app, "route: no connected daemon");
        return;
    }
    rc = gui_ctl_request(s->ctl, "route", key);
    update_route_label(app, rc == 0 ? "route: asking…" : g_strerror(-rc));
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
    gtk_widget_set_tooltip_text(app->stop_button, "Only nodes this viewer started can be stopped");
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
            (void)source_add(&app, *p);
    } else {
        char *def = default_socket();
        if (g_file_test(def, G_FILE_TEST_EXISTS))
            (void)source_add(&app, def);
        g_free(def);
    }
    g_strfreev(controls);

    app.poll_timer = g_timeout_add(POLL_MS, poll_cb, &app);
    if (app.headless) {
        app.snapshot_timer = g_timeout_add(SNAPSHOT_WAIT_MS, snapshot_timeout_cb, &app);
        if (app.sources->len == 0)
            snapshot_now(&app, true);
    } else {
        build_window(&app);
    }
    if (!app.quitting || children_running(&app) > 0)
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
        source_free(g_ptr_array_index(app.sources, i));
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
