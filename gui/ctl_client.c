/*
 * ctl_client.c: a daemon's control socket over GIO (ctl_client.h has the contract).
 *
 * Design.  Each connection attempt is a struct conn with a reference count: every
 * asynchronous GIO call holds one reference and gives it back in its callback, so
 * the callback never sees freed memory however late it runs.  When a connection is
 * dropped (an error, or gui_ctl_free) its ctl pointer is cleared and its
 * GCancellable cancelled: callbacks of a detached conn only release their
 * reference.  The reader fills a 64 KiB buffer, cuts it into lines and appends
 * partial lines to a GByteArray capped at GUI_CTL_LINE_MAX; one write is in flight
 * at a time, the rest wait in a queue capped at GUI_CTL_OUTQ_MAX bytes.
 *
 * Invariant: c->conn is either NULL (waiting to reconnect) or the one attached
 * conn; c->pending holds exactly the requests written on c->conn not yet answered.
 */
#include "ctl_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#define READ_CHUNK 65536
/* Reads and writes run below GTK's redraw priority (G_PRIORITY_HIGH_IDLE + 20): a
 * daemon streaming events keeps the socket readable nearly all the time, and at the
 * default priority it would starve the frame clock (seen: 15 frames/s at 1000
 * events/s).  Below it, each frame is drawn and the reads take the time between. */
#define IO_PRIORITY (G_PRIORITY_HIGH_IDLE + 30)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define BAD_LINES_SHOWN 10

struct pending {
    bool used;
    unsigned id;
    char cmd[32];
    char arg[GUI_CTL_ARG_MAX];
};

struct conn {
    int refs;
    struct gui_ctl *ctl; /* NULL once detached */
    GCancellable *cancel;
    GSocketClient *client;
    GSocketConnection *sc;
    GByteArray *line;
    GQueue outq; /* GBytes of request lines, not yet written */
    size_t outq_bytes;
    GBytes *writing; /* the one in flight */
    bool up;
    char rbuf[READ_CHUNK];
};

struct gui_ctl {
    char *path;
    struct gui_ctl_ops ops;
    void *arg;
    struct conn *conn;
    guint retry_source;
    unsigned backoff_ms;
    unsigned next_id;
    struct pending pending[GUI_CTL_PENDING];
    unsigned n_pending;
    unsigned long bad_lines; /* lines that were not JSON objects or answered nothing */
};

static void ctl_connect(struct gui_ctl *c);

static struct conn *conn_ref(struct conn *k)
{
    k->refs++;
    return k;
}

static void conn_unref(struct conn *k)
{
    if (--k->refs > 0)
        return;
    g_clear_object(&k->sc);
    g_clear_object(&k->client);
    g_clear_object(&k->cancel);
    if (k->line != NULL)
        g_byte_array_unref(k->line);
    g_queue_clear_full(&k->outq, (GDestroyNotify)g_bytes_unref);
    if (k->writing != NULL)
        g_bytes_unref(k->writing);
    g_free(k);
}

/* Detaches c's conn (cancelling its operations) without telling the owner. */
static void ctl_detach(struct gui_ctl *c)
{
    struct conn *k = c->conn;

    if (k == NULL)
        return;
    c->conn = NULL;
    k->ctl = NULL;
    g_cancellable_cancel(k->cancel);
    if (k->sc != NULL)
        (void)g_io_stream_close(G_IO_STREAM(k->sc), NULL, NULL);
    memset(c->pending, 0, sizeof(c->pending));
    c->n_pending = 0;
    conn_unref(k);
}

static gboolean retry_cb(gpointer data)
{
    struct gui_ctl *c = data;

    c->retry_source = 0;
    ctl_connect(c);
    return G_SOURCE_REMOVE;
}

/* The connection failed or broke: detach it, tell the owner, try again later. */
static void ctl_down(struct gui_ctl *c, const char *why)
{
    ctl_detach(c);
    if (c->retry_source == 0) {
        c->retry_source = g_timeout_add(c->backoff_ms, retry_cb, c);
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    }
    c->ops.state_cb(c, false, why, c->arg);
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Says what was wrong with a line: the first BAD_LINES_SHOWN of each client only,
 * so that a daemon sending garbage cannot flood the terminal. */
static void bad_line(struct gui_ctl *c, const char *what, const char *detail)
{
    c->bad_lines++;
    if (c->bad_lines <= BAD_LINES_SHOWN)
        g_warning("%s: %s: %s%s", c->path, what, detail,
                  c->bad_lines == BAD_LINES_SHOWN ? " (further ones not shown)" : "");
}

static void handle_line(struct gui_ctl *c, const char *line, size_t len)
{
    json_error_t err;
    json_t *j, *id;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return;
    j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(j)) {
        bad_line(c, "a line that is not a JSON object", err.text);
        json_decref(j);
        return;
    }
    if (json_object_get(j, "event") != NULL && json_object_get(j, "ok") == NULL) {
        c->ops.event_cb(c, j, c->arg);
        json_decref(j);
        return;
    }
    id = json_object_get(j, "id");
    if (!json_is_integer(id)) {
        const char *e = json_string_value(json_object_get(j, "error"));
        bad_line(c, "an answer to no request", e ? e : "(no error text)");
        json_decref(j);
        return;
    }
    for (unsigned i = 0; i < GUI_CTL_PENDING; i++) {
        struct pending *p = &c->pending[i];
        struct pending copy;
        bool ok;
        if (!p->used || p->id != (unsigned)json_integer_value(id))
            continue;
        copy = *p;
        p->used = false;
        c->n_pending--;
        ok = json_is_true(json_object_get(j, "ok"));
        c->ops.answer_cb(c, copy.cmd, copy.arg, ok, json_object_get(j, ok ? "result" : "error"),
                         c->arg);
        break;
    }
    json_decref(j);
}

static void read_more(struct conn *k);

static void read_done(GObject *src, GAsyncResult *res, gpointer data)
{
    struct conn *k = data;
    struct gui_ctl *c = k->ctl;
    GError *error = NULL;
    gssize n = g_input_stream_read_finish(G_INPUT_STREAM(src), res, &error);
    const char *p, *end, *nl;

    if (c == NULL) { /* detached meanwhile */
        g_clear_error(&error);
        conn_unref(k);
        return;
    }
    if (n <= 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s",
                 n == 0 ? "the daemon closed the connection" : error->message);
        g_clear_error(&error);
        conn_unref(k);
        ctl_down(c, why);
        return;
    }
    p = k->rbuf;
    end = k->rbuf + n;
    while (p < end && k->ctl == c) { /* c is alive while k is attached to it */
        nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = (size_t)((nl ? nl : end) - p);
        if (k->line->len + take > GUI_CTL_LINE_MAX) {
            conn_unref(k);
            ctl_down(c, "a line longer than the viewer's limit");
            return;
        }
        if (nl == NULL) {
            g_byte_array_append(k->line, (const guint8 *)p, (guint)take);
            break;
        }
        if (k->line->len == 0) {
            handle_line(c, p, take);
        } else {
            g_byte_array_append(k->line, (const guint8 *)p, (guint)take);
            handle_line(c, (const char *)k->line->data, k->line->len);
            g_byte_array_set_size(k->line, 0);
        }
        p = nl + 1;
    }
    /* A callback may have freed c (gui_ctl_free detaches k first). */
    if (k->ctl != NULL)
        read_more(k);
    conn_unref(k);
}

static void read_more(struct conn *k)
{
    g_input_stream_read_async(g_io_stream_get_input_stream(G_IO_STREAM(k->sc)), k->rbuf,
                              sizeof(k->rbuf), IO_PRIORITY, k->cancel, read_done, conn_ref(k));
}

/* ---- writing ----------------------------------------------------------------------------- */

static void write_next(struct conn *k);

static void write_done(GObject *src, GAsyncResult *res, gpointer data)
{
    struct conn *k = data;
    GError *error = NULL;
    gboolean ok = g_output_stream_write_all_finish(G_OUTPUT_STREAM(src), res, NULL, &error);

    if (k->writing != NULL) {
        g_bytes_unref(k->writing);
        k->writing = NULL;
    }
    if (k->ctl == NULL) {
        g_clear_error(&error);
        conn_unref(k);
        return;
    }
    if (!ok) {
        char why[256];
        snprintf(why, sizeof(why), "write: %s", error->message);
        g_clear_error(&error);
        struct gui_ctl *c = k->ctl;
        conn_unref(k);
        ctl_down(c, why);
        return;
    }
    write_next(k);
    conn_unref(k);
}

static void write_next(struct conn *k)
{
    gsize len;
    const void *p;

    if (k->writing != NULL || g_queue_is_empty(&k->outq))
        return;
    k->writing = g_queue_pop_head(&k->outq);
    p = g_bytes_get_data(k->writing, &len);
    k->outq_bytes -= len;
    g_output_stream_write_all_async(g_io_stream_get_output_stream(G_IO_STREAM(k->sc)), p, len,
                                    IO_PRIORITY, k->cancel, write_done, conn_ref(k));
}

int gui_ctl_request(struct gui_ctl *c, const char *cmd, const char *arg1)
{
    struct conn *k = c->conn;
    struct pending *slot = NULL;
    json_t *req;
    char *text;
    size_t len;

    if (k == NULL || !k->up)
        return -ENOTCONN;
    if (strlen(cmd) >= sizeof(slot->cmd) || (arg1 != NULL && strlen(arg1) >= GUI_CTL_ARG_MAX))
        return -E2BIG;
    for (unsigned i = 0; i < GUI_CTL_PENDING && slot == NULL; i++)
        if (!c->pending[i].used)
            slot = &c->pending[i];
    if (slot == NULL || k->outq_bytes > GUI_CTL_OUTQ_MAX)
        return -EAGAIN;
    req = arg1 != NULL ? json_pack("{s:I, s:s, s:[s]}", "id", (json_int_t)c->next_id, "cmd", cmd,
                                   "args", arg1)
                       : json_pack("{s:I, s:s}", "id", (json_int_t)c->next_id, "cmd", cmd);
    text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (text == NULL)
        return -ENOMEM;
    len = strlen(text);
    text[len] = '\n'; /* json_dumps' NUL becomes the line's end */
    g_queue_push_tail(&k->outq, g_bytes_new_take(text, len + 1));
    k->outq_bytes += len + 1;
    slot->used = true;
    slot->id = c->next_id++;
    snprintf(slot->cmd, sizeof(slot->cmd), "%s", cmd);
    snprintf(slot->arg, sizeof(slot->arg), "%s", arg1 ? arg1 : "");
    c->n_pending++;
    write_next(k);
    return 0;
}

/* ---- connecting -------------------------------------------------------------------------- */

static void connect_done(GObject *src, GAsyncResult *res, gpointer data)
{
    struct conn *k = data;
    struct gui_ctl *c = k->ctl;
    GError *error = NULL;
    GSocketConnection *sc = g_socket_client_connect_finish(G_SOCKET_CLIENT(src), res, &error);

    if (c == NULL) {
        g_clear_error(&error);
        g_clear_object(&sc);
        conn_unref(k);
        return;
    }
    if (sc == NULL) {
        char why[512];
        snprintf(why, sizeof(why), "cannot connect: %s", error->message);
        g_clear_error(&error);
        conn_unref(k);
        ctl_down(c, why);
        return;
    }
    k->sc = sc;
    k->up = true;
    c->backoff_ms = BACKOFF_MIN_MS;
    read_more(k);
    conn_unref(k);
    c->ops.state_cb(c, true, NULL, c->arg);
}

static void ctl_connect(struct gui_ctl *c)
{
    struct conn *k = g_new0(struct conn, 1);
    GSocketAddress *addr = g_unix_socket_address_new(c->path);

    k->refs = 1; /* c->conn's */
    k->ctl = c;
    k->cancel = g_cancellable_new();
    k->client = g_socket_client_new();
    k->line = g_byte_array_new();
    g_queue_init(&k->outq);
    c->conn = k;
    g_socket_client_connect_async(k->client, G_SOCKET_CONNECTABLE(addr), k->cancel, connect_done,
                                  conn_ref(k));
    g_object_unref(addr);
}

int gui_ctl_new(struct gui_ctl **out, const char *path, const struct gui_ctl_ops *ops, void *arg)
{
    struct gui_ctl *c;

    if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return -ENAMETOOLONG;
    c = g_new0(struct gui_ctl, 1);
    c->path = g_strdup(path);
    c->ops = *ops;
    c->arg = arg;
    c->backoff_ms = BACKOFF_MIN_MS;
    /* Connect from the loop, so that no callback runs inside this call. */
    c->retry_source = g_idle_add(retry_cb, c);
    *out = c;
    return 0;
}

void gui_ctl_free(struct gui_ctl *c)
{
    if (c == NULL)
        return;
    if (c->retry_source != 0)
        g_source_remove(c->retry_source);
    ctl_detach(c);
    g_free(c->path);
    g_free(c);
}

const char *gui_ctl_path(const struct gui_ctl *c)
{
    return c->path;
}

bool gui_ctl_is_up(const struct gui_ctl *c)
{
    return c->conn != NULL && c->conn->up;
}

unsigned gui_ctl_pending(const struct gui_ctl *c)
{
    return c->n_pending;
}
