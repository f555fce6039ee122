/*
 * sources.c: the daemons the viewer follows, and the nodes it starts.
 *
 * A gui_source is one daemon's control socket (ctl_client.c).  Every POLL_MS it gets
 * a poll round (status, leafset, routes, peers, and records every RECORDS_EVERY
 * rounds; a new round only once the last one is answered), the answers and its watch
 * events go into the model, and a lost connection shows its node as gone until
 * ctl_client's back-off brings it back.
 *
 * Nodes the viewer starts (a click near the centre) are p2psipd children with a
 * fresh data directory (mkdtemp under $XDG_RUNTIME_DIR or /tmp) holding their log
 * and control socket, free ports, and a connected member as their bootstrap node.
 * They are reaped by a child watch, stopped with SIGTERM by PID (the Stop button,
 * and main.c's quitting), and their directories removed once they have exited.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "app.h"
#include "ctl_client.h"
#include "model.h"
#include "p2p/dht_id.h"

#define RECORDS_EVERY 5 /* poll rounds */
#define SOURCES_MAX 256

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

gboolean gui__poll_cb(gpointer data)
{
    struct gui_app *app = data;

    for (guint i = 0; i < app->sources->len; i++)
        poll_source(g_ptr_array_index(app->sources, i));
    gui__app_changed(app); /* ages the model even when nothing is answered */
    return G_SOURCE_CONTINUE;
}

static bool is_poll_cmd(const char *cmd)
{
    for (size_t i = 0; i < G_N_ELEMENTS(poll_cmds); i++)
        if (strcmp(cmd, poll_cmds[i]) == 0)
            return true;
    return false;
}

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
        gui__update_route_label(app, msg);
        g_free(msg);
        return;
    }
    dht_id_hash(&k, key, strlen(key)); /* the daemon routes to the hash of the key */
    memcpy(key_id.b, k.b, GUI_ID_LEN);
    if (gui_model_apply_route(m, &s->id, key, &key_id, r, gui__now_ms()) != 0) {
        gui__update_route_label(app, "route: an answer without a root");
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
    gui__update_route_label(app, t->str);
    g_string_free(t, TRUE);
}

static void answer_cb(struct gui_ctl *c, const char *cmd, const char *arg1, bool ok,
                      const json_t *r, void *arg)
{
    struct gui_source *s = arg;
    struct gui_app *app = s->app;
    uint64_t now = gui__now_ms();
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
        gui__snapshot_check(app);
    }
    gui__app_changed(app);
}

static void event_cb(struct gui_ctl *c, const json_t *ev, void *arg)
{
    struct gui_source *s = arg;

    (void)c;
    if (!s->have_id) /* events before the first status answer: no node to pin them on */
        return;
    (void)gui_model_apply_event(s->app->model, &s->id, ev, gui__now_ms());
    gui__app_changed(s->app);
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
            gui_model_source_lost(s->app->model, &s->id, gui__now_ms());
    }
    gui__app_changed(s->app);
}

static const struct gui_ctl_ops ctl_ops = {state_cb, answer_cb, event_cb};

struct gui_source *gui__source_add(struct gui_app *app, const char *path)
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

/* ---- the nodes this viewer starts ------------------------------------------------------------ */

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

void gui__source_free(struct gui_source *s)
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

unsigned gui__children_running(struct gui_app *app)
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
        gui_model_source_forget(app->model, &s->id, gui__now_ms());
    (void)g_ptr_array_remove(app->sources, s);
    gui__source_free(s);
    gui__app_changed(app);
    if (app->quitting && gui__children_running(app) == 0)
        g_main_loop_quit(app->loop);
}

/* Stops a node: one this viewer started by SIGTERM to its PID (the child watch
 * cleans up); any other through its control socket's `stop` (the socket is its
 * owner's only), after which it shows as gone until it comes back. */
void gui__source_stop(struct gui_source *s)
{
    if (s->stopping)
        return;
    if (s->pid == 0) {
        if (s->ctl != NULL && gui_ctl_is_up(s->ctl))
            (void)gui_ctl_request(s->ctl, "stop", NULL);
        return;
    }
    s->stopping = true;
    if (kill(s->pid, SIGTERM) != 0)
        g_printerr("p2psip-gui: kill %d: %s\n", (int)s->pid, g_strerror(errno));
    gui_ctl_free(s->ctl); /* no reconnecting to a node on its way out */
    s->ctl = NULL;
    if (s->have_id)
        gui_model_source_forget(s->app->model, &s->id, gui__now_ms());
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
void gui__start_node(struct gui_app *app)
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
    s = gui__source_add(app, sock);
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
    gui__app_changed(app);
out:
    if (logfd >= 0)
        close(logfd);
    g_free(bin);
    g_free(dir);
    g_free(sock);
    g_free(logp);
    g_free(boot);
}
