/*
 * control.c: the control socket server: NDJSON requests in, responses and events out.
 *
 * Design.  The listening socket is made with plain syscalls (socket, bind, chmod,
 * listen) and only then handed to libuv (uv_pipe_open): the mode is set to 0600
 * between bind() and listen(), and a Unix socket that is bound but not listening
 * refuses every connect(), so no other user can ever get in, and no process-wide
 * umask is touched.  Everything that can fail therefore fails before a handle exists.
 *
 * Each client has one fixed input buffer of CONTROL_LINE_MAX + 1 bytes, into which
 * libuv reads directly; complete lines are taken from its front (client_pump), and a
 * buffer full of bytes without a newline is an over-long line.  Output is a queue of
 * whole encoded lines; at most one uv_write (a batch of lines) is in flight, and the
 * lines are freed when it completes.  Requests are answered by queueing a line;
 * events are copied into every subscriber's queue unless that queue is at its watch
 * cap, in which case the event is dropped and counted in the client's `lost`, which
 * becomes a {"event":"lost","count":N} line as soon as there is room again (a write
 * completed) or just before the next event that fits.  Back-pressure on requests: a
 * client with CONTROL_PENDING_MAX requests in progress or CONTROL_OUT_BYTES_MAX
 * queued bytes is not read from (and its buffered lines wait) until that drains.
 *
 * Asynchronous requests are struct control_req, linked into their client's list.
 * When a client closes (hang-up, error, control_close) every request in its list is
 * unlinked and its client pointer cleared: it is dead, and control_reply() on it only
 * frees it.  A live request therefore always points at a client that is not closing,
 * and a dead one points at nothing, so no completion can reach freed memory.
 *
 * Invariants.  A client's memory is freed only in its close callback, never inside a
 * call that can run from a handler, so any code holding a client pointer may use it
 * until it returns to the loop (after checking `closing`).  A closing client gets no
 * new output.  Every count and size read from a peer has its cap (control.h).
 * The control object is freed in the last close callback after control_close().
 */
#include "control.h"

#include "p2p/errmsg.h"
#include "p2p/list.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define WRITE_BATCH 64   /* lines per uv_write */
#define LOST_LINE_MAX 64 /* {"event":"lost","count":<20 digits>}\n fits */
#define QUOTE_MAX 64     /* bytes of a client's text quoted in an error */

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

struct out_line {
    struct out_line *next;
    size_t len;
    char data[];
};

struct cmd {
    char name[CONTROL_CMD_NAME_MAX];
    const char *help;
    control_cmd_fn fn;      /* synchronous, or */
    control_async_fn async; /* asynchronous */
    void *arg;
};

struct client {
    uv_pipe_t pipe;
    uv_write_t wreq;
    struct control *c;
    struct p2p_list link; /* in c->clients */
    char *in;             /* CONTROL_LINE_MAX + 1 bytes; NULL for a refused client */
    size_t in_len;
    struct out_line *head, *tail; /* the first `inflight` lines are being written */
    size_t out_lines, out_bytes;  /* everything queued, in flight included */
    size_t inflight;
    struct p2p_list reqs; /* live async requests */
    size_t pending;
    uint64_t lost; /* events dropped since the last line that reached the queue */
    bool refused;  /* over CONTROL_CLIENTS_MAX: told so, then closed */
    bool subscriber;
    bool reading;
    bool hangup;  /* close once the queue is written; no more reading */
    bool closing; /* uv_close() called */
    bool in_pump; /* client_pump() is on the stack */
};

struct control_req {
    struct client *client; /* NULL once dead */
    struct p2p_list link;  /* in client->reqs while live */
    json_t *id;
};

struct control {
    uv_loop_t *loop;
    struct p2p_log *log;
    uv_pipe_t server;
    char path[SUN_PATH_MAX];
    dev_t dev; /* the socket file we made, so that close unlinks only ours */
    ino_t ino;
    struct p2p_list clients;
    size_t nclients; /* client structs, refused and closing ones included */
    size_t nactive;  /* accepted clients not closing */
    size_t nsubscribers;
    struct cmd cmds[CONTROL_CMDS_MAX];
    size_t ncmds;
    struct control_stats st; /* the counters; sizes are computed on demand */
    bool closing, server_closed;
    control_close_cb close_cb;
    void *close_arg;
};

static const char *const builtins[] = {"watch", "unwatch", "help"};

static void client_close(struct client *cl);
static void client_pump(struct client *cl);

/* ---------------------------------------------------------------------------------
 * Output. */

/* Encodes obj as one line (compact JSON and '\n') of at most max bytes. */
static int encode_line(const json_t *obj, size_t max, struct out_line **out)
{
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    struct out_line *l;

    if (n == 0)
        return -EINVAL;
    if (n >= max)
        return -EMSGSIZE;
    l = malloc(sizeof(*l) + n + 1);
    if (l == NULL)
        return -ENOMEM;
    if (json_dumpb(obj, l->data, n, JSON_COMPACT) != n) {
        free(l);
        return -EINVAL;
    }
    l->data[n] = '\n';
    l->len = n + 1;
    l->next = NULL;
    *out = l;
    return 0;
}

static void on_write(uv_write_t *w, int status);

/* Starts writing the head of the queue unless a write is in flight. */
static void client_flush(struct client *cl)
{
    uv_buf_t bufs[WRITE_BATCH];
    unsigned n = 0;
    int rc;

    if (cl->closing || cl->inflight > 0 || cl->head == NULL)
        return;
    for (struct out_line *l = cl->head; l != NULL && n < WRITE_BATCH; l = l->next)
        bufs[n++] = uv_buf_init(l->data, (unsigned)l->len);
    cl->inflight = n;
    rc = uv_write(&cl->wreq, (uv_stream_t *)&cl->pipe, bufs, n, on_write);
    if (rc != 0) {
        cl->inflight = 0;
        p2p_debug(cl->c->log, "control: write: %s", uv_strerror(rc));
        client_close(cl);
    }
}

/* Appends l (taken over) to the queue and starts writing. */
static void enqueue(struct client *cl, struct out_line *l)
{
    if (cl->closing) {
        free(l);
        return;
    }
    if (cl->tail != NULL)
        cl->tail->next = l;
    else
        cl->head = l;
    cl->tail = l;
    cl->out_lines++;
    cl->out_bytes += l->len;
    client_flush(cl);
}

/* Whether lines/bytes more fit under a subscriber's caps. */
static bool watch_room(const struct client *cl, size_t lines, size_t bytes)
{
    return cl->out_lines + lines <= CONTROL_WATCH_LINES_MAX &&
           cl->out_bytes + bytes <= CONTROL_WATCH_BYTES_MAX;
}

/* Queues {"event":"lost","count":N} if it fits, and then forgets N. */
static void queue_lost(struct client *cl)
{
    struct out_line *l;
    int n;

    if (cl->lost == 0 || !watch_room(cl, 1, LOST_LINE_MAX))
        return;
    l = malloc(sizeof(*l) + LOST_LINE_MAX);
    if (l == NULL)
        return; /* still counted: told with the next line */
    n = snprintf(l->data, LOST_LINE_MAX, "{\"event\":\"lost\",\"count\":%llu}\n",
                 (unsigned long long)cl->lost);
    l->len = (size_t)n;
    l->next = NULL;
    cl->lost = 0;
    enqueue(cl, l);
}

/*
 * An error text as a JSON string.  A text quoting the client's bytes may have been cut
 * inside a UTF-8 sequence (or come from a handler that did not check): bytes that do
 * not start a complete sequence are dropped, and if jansson still refuses the text
 * (an overlong form, a surrogate) every non-ASCII byte becomes '?'.
 */
static json_t *error_string(const char *text)
{
    char copy[CONTROL_ERR_MAX];
    size_t len = strlen(text), o = 0;
    json_t *s = json_string(text);

    if (s != NULL)
        return s;
    for (size_t i = 0; i < len && o < sizeof(copy) - 4;) {
        unsigned char b = (unsigned char)text[i];
        size_t n = b < 0x80             ? 1
                   : (b & 0xe0) == 0xc0 ? 2
                   : (b & 0xf0) == 0xe0 ? 3
                   : (b & 0xf8) == 0xf0 ? 4
                                        : 0;
        bool ok = n > 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++)
            ok = ((unsigned char)text[i + k] & 0xc0) == 0x80;
        if (!ok) {
            i++;
            continue;
        }
        memcpy(copy + o, text + i, n);
        o += n;
        i += n;
    }
    copy[o] = '\0';
    s = json_string(copy);
    if (s != NULL)
        return s;
    for (size_t i = 0; i < o; i++) {
        if ((unsigned char)copy[i] & 0x80)
            copy[i] = '?';
    }
    return json_string(copy);
}

/* Responds to one request: result (stolen) when error is NULL, else the error. */
static void respond(struct client *cl, json_t *id, json_t *result, const char *error)
{
    struct control *c = cl->c;
    json_t *obj;
    struct out_line *l = NULL;
    int rc = -ENOMEM;

    if (error != NULL)
        c->st.errors++;
    if (cl->closing) {
        /* A handler closed the control socket (a "stop" command): nobody to tell. */
        json_decref(result);
        return;
    }
    obj = json_object();
    if (obj != NULL) {
        json_object_set(obj, "id", id != NULL ? id : json_null());
        if (error == NULL) {
            json_object_set_new(obj, "ok", json_true());
            json_object_set_new(obj, "result", result);
            result = NULL;
        } else {
            json_object_set_new(obj, "ok", json_false());
            json_object_set_new(obj, "error", error_string(error));
        }
        rc = encode_line(obj, CONTROL_RESULT_MAX, &l);
        json_object_del(obj, "result");
        if (rc != 0 && error == NULL) {
            /* The handler's result is the problem: say so instead. */
            c->st.errors++;
            json_object_set_new(obj, "ok", json_false());
            json_object_set_new(
                obj, "error",
                json_string(rc == -EMSGSIZE ? "result too large" : "result cannot be encoded"));
            rc = encode_line(obj, CONTROL_RESULT_MAX, &l);
        }
    }
    json_decref(result);
    json_decref(obj);
    if (rc != 0) {
        /* Out of memory or an id we cannot encode (its request decoded, so unlikely):
         * the client would wait for ever, so hang up on it. */
        p2p_warn(c->log, "control: cannot encode a response: %s", strerror(-rc));
        client_close(cl);
        return;
    }
    enqueue(cl, l);
}

static void respond_errorf(struct client *cl, json_t *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void respond_errorf(struct client *cl, json_t *id, const char *fmt, ...)
{
    char text[CONTROL_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    respond(cl, id, NULL, text);
}

/* ---------------------------------------------------------------------------------
 * Requests. */

static void req_unlink(struct control_req *r)
{
    p2p_list_remove(&r->link);
    r->client->pending--;
}

/* Every async request of cl becomes dead: its completion will only free it. */
static void kill_requests(struct client *cl)
{
    while (!p2p_list_empty(&cl->reqs)) {
        struct control_req *r = P2P_LIST_ENTRY(cl->reqs.next, struct control_req, link);
        p2p_list_remove(&r->link);
        r->client = NULL;
    }
    cl->pending = 0;
}

static void complete(struct control_req *req, json_t *result, const char *error)
{
    struct client *cl = req->client;

    if (cl != NULL) {
        req_unlink(req);
        respond(cl, req->id, result, error);
        /* Below CONTROL_PENDING_MAX again: lines held back may go on. */
        client_pump(cl);
    } else {
        json_decref(result);
    }
    json_decref(req->id);
    free(req);
}

void control_reply(struct control_req *req, json_t *result)
{
    complete(req, result != NULL ? result : json_null(), NULL);
}

void control_reply_error(struct control_req *req, const char *fmt, ...)
{
    char text[CONTROL_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    complete(req, NULL, text[0] != '\0' ? text : "internal error");
}

bool control_req_alive(const struct control_req *req)
{
    return req->client != NULL;
}

static const struct cmd *cmd_find(const struct control *c, const char *name)
{
    for (size_t i = 0; i < c->ncmds; i++) {
        if (strcmp(c->cmds[i].name, name) == 0)
            return &c->cmds[i];
    }
    return NULL;
}

static json_t *help_result(const struct control *c)
{
    static const char *const builtin_help[] = {
        "stream the daemon's events (one JSON object per line) on this connection",
        "stop streaming events",
        "list the commands",
    };
    json_t *list = json_array();

    for (size_t i = 0; i < c->ncmds + 3; i++) {
        const char *name = i < c->ncmds ? c->cmds[i].name : builtins[i - c->ncmds];
        const char *help = i < c->ncmds ? c->cmds[i].help : builtin_help[i - c->ncmds];
        json_array_append_new(
            list, json_pack("{s:s, s:s}", "command", name, "help", help != NULL ? help : ""));
    }
    return list;
}

/* The built-in commands, which act on the client itself. */
static bool builtin(struct client *cl, const char *name, json_t *id)
{
    struct control *c = cl->c;

    if (strcmp(name, "watch") == 0) {
        if (!cl->subscriber) {
            cl->subscriber = true;
            c->nsubscribers++;
        }
        respond(cl, id, json_pack("{s:b}", "watching", 1), NULL);
        return true;
    }
    if (strcmp(name, "unwatch") == 0) {
        if (cl->subscriber) {
            cl->subscriber = false;
            cl->lost = 0;
            c->nsubscribers--;
        }
        respond(cl, id, json_pack("{s:b}", "watching", 0), NULL);
        return true;
    }
    if (strcmp(name, "help") == 0) {
        respond(cl, id, help_result(c), NULL);
        return true;
    }
    return false;
}

/* Checks the request's members; writes the reason into why on failure. */
static int check_request(json_t *req, const char **name, json_t **args, json_t **opts, char *why,
                         size_t wlen)
{
    const char *key;
    json_t *v;

    if (!json_is_object(req)) {
        p2p_errf(why, wlen, "bad request: not a JSON object");
        return -EINVAL;
    }
    json_object_foreach(req, key, v)
    {
        if (strcmp(key, "id") != 0 && strcmp(key, "cmd") != 0 && strcmp(key, "args") != 0 &&
            strcmp(key, "opts") != 0) {
            p2p_errf(why, wlen, "bad request: unknown member '%.*s'", QUOTE_MAX, key);
            return -EINVAL;
        }
    }
    v = json_object_get(req, "cmd");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        p2p_errf(why, wlen, "bad request: \"cmd\" must be a non-empty string");
        return -EINVAL;
    }
    *name = json_string_value(v);
    v = json_object_get(req, "args");
    if (v != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(v)) {
            p2p_errf(why, wlen, "bad request: \"args\" must be an array of strings");
            return -EINVAL;
        }
        if (json_array_size(v) > CONTROL_ARGS_MAX) {
            p2p_errf(why, wlen, "bad request: more than %d args", CONTROL_ARGS_MAX);
            return -EINVAL;
        }
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                p2p_errf(why, wlen, "bad request: \"args\" must be an array of strings");
                return -EINVAL;
            }
        }
    }
    *args = v;
    v = json_object_get(req, "opts");
    if (v != NULL && !json_is_object(v)) {
        p2p_errf(why, wlen, "bad request: \"opts\" must be an object");
        return -EINVAL;
    }
    *opts = v;
    return 0;
}

/* One request line (without its newline).  cl may be closing when this returns. */
static void handle_line(struct client *cl, const char *line, size_t len)
{
    struct control *c = cl->c;
    char why[CONTROL_ERR_MAX] = "";
    const char *name = NULL;
    json_t *req, *id, *args = NULL, *opts = NULL, *empty_args = NULL, *empty_opts = NULL;
    const struct cmd *cmd;
    json_error_t jerr;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return; /* a blank line is no request */
    c->st.requests++;
    /* Strict: one JSON text, UTF-8 checked, no duplicate member, no NUL in strings. */
    req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (req == NULL) {
        respond_errorf(cl, NULL, "bad request: invalid JSON: %s (byte %d)", jerr.text,
                       jerr.position);
        return;
    }
    id = json_object_get(req, "id"); /* NULL for a request that is not an object */
    if (check_request(req, &name, &args, &opts, why, sizeof(why)) != 0) {
        respond(cl, id, NULL, why);
        goto out;
    }
    if (builtin(cl, name, id))
        goto out;
    cmd = cmd_find(c, name);
    if (cmd == NULL) {
        respond_errorf(cl, id, "unknown command '%.*s'", QUOTE_MAX, name);
        goto out;
    }
    if (args == NULL)
        args = empty_args = json_array();
    if (opts == NULL)
        opts = empty_opts = json_object();
    if (args == NULL || opts == NULL) {
        respond(cl, id, NULL, "out of memory");
        goto out;
    }
    p2p_debug(c->log, "control: %s", cmd->name);
    if (cmd->fn != NULL) {
        json_t *result = cmd->fn(args, opts, why, sizeof(why), cmd->arg);
        if (result != NULL)
            respond(cl, id, result, NULL);
        else
            respond(cl, id, NULL, why[0] != '\0' ? why : "internal error");
    } else {
        struct control_req *r = calloc(1, sizeof(*r));
        if (r == NULL) {
            respond(cl, id, NULL, "out of memory");
            goto out;
        }
        r->client = cl;
        r->id = id != NULL ? json_incref(id) : json_null();
        p2p_list_push_front(&cl->reqs, &r->link);
        cl->pending++;
        cmd->async(r, args, opts, cmd->arg);
    }
out:
    json_decref(empty_args);
    json_decref(empty_opts);
    json_decref(req);
}

/* ---------------------------------------------------------------------------------
 * Input. */

static bool throttled(const struct client *cl)
{
    return cl->pending >= CONTROL_PENDING_MAX || cl->out_bytes >= CONTROL_OUT_BYTES_MAX;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *cl = h->data;
    (void)suggested;

    buf->base = cl->in + cl->in_len;
    buf->len = CONTROL_LINE_MAX + 1 - cl->in_len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Reads while there is room, no hang-up, and no back-pressure. */
static void update_reading(struct client *cl)
{
    bool want = !cl->closing && !cl->hangup && !throttled(cl) && cl->in_len <= CONTROL_LINE_MAX;
    int rc;

    if (want == cl->reading)
        return;
    if (want) {
        rc = uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read);
        if (rc != 0) {
            p2p_debug(cl->c->log, "control: read: %s", uv_strerror(rc));
            client_close(cl);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&cl->pipe);
    }
    cl->reading = want;
}

/* No more requests from cl: answer what is queued, then close.  Requests still in
 * progress are dead (their answers could not be sent in time anyway). */
static void client_hangup(struct client *cl)
{
    if (cl->closing)
        return;
    cl->hangup = true;
    kill_requests(cl);
    update_reading(cl);
    if (cl->head == NULL)
        client_close(cl);
}

/* Handles the complete lines in the input buffer, as far as back-pressure allows. */
static void client_pump(struct client *cl)
{
    size_t start = 0;

    if (cl->in_pump || cl->closing || cl->in == NULL)
        return;
    cl->in_pump = true;
    while (!cl->closing && !cl->hangup && !throttled(cl)) {
        char *nl = memchr(cl->in + start, '\n', cl->in_len - start);
        if (nl == NULL)
            break;
        handle_line(cl, cl->in + start, (size_t)(nl - (cl->in + start)));
        start = (size_t)(nl - cl->in) + 1;
    }
    if (start > 0) {
        memmove(cl->in, cl->in + start, cl->in_len - start);
        cl->in_len -= start;
    }
    if (!cl->closing && !cl->hangup && cl->in_len > CONTROL_LINE_MAX &&
        memchr(cl->in, '\n', cl->in_len) == NULL) {
        /* A full buffer and no newline in it: the line is longer than the cap. */
        respond_errorf(cl, NULL, "request line too long (max %d bytes)", CONTROL_LINE_MAX);
        client_hangup(cl);
    }
    update_reading(cl);
    cl->in_pump = false;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    (void)buf;

    if (nread > 0) {
        cl->in_len += (size_t)nread;
        client_pump(cl);
    } else if (nread == UV_EOF) {
        client_hangup(cl);
    } else if (nread < 0) {
        p2p_debug(cl->c->log, "control: read: %s", uv_strerror((int)nread));
        client_close(cl);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct client *cl = w->data;
    size_t n = cl->inflight;

    cl->inflight = 0;
    while (n-- > 0) {
        struct out_line *l = cl->head;
        cl->head = l->next;
        if (cl->head == NULL)
            cl->tail = NULL;
        cl->out_lines--;
        cl->out_bytes -= l->len;
        free(l);
    }
    if (cl->closing)
        return; /* UV_ECANCELED: the close callback frees the rest */
    if (status < 0) {
        p2p_debug(cl->c->log, "control: write: %s", uv_strerror(status));
        client_close(cl);
        return;
    }
    if (cl->subscriber)
        queue_lost(cl);
    client_flush(cl);
    if (cl->hangup) {
        if (cl->head == NULL)
            client_close(cl);
        return;
    }
    client_pump(cl); /* the queue shrank: held-back lines may go on */
}

/* ---------------------------------------------------------------------------------
 * Connections. */

static void maybe_finish(struct control *c)
{
    control_close_cb cb = c->close_cb;
    void *arg = c->close_arg;

    if (!c->closing || !c->server_closed || !p2p_list_empty(&c->clients))
        return;
    free(c);
    if (cb != NULL)
        cb(arg);
}

static void on_client_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    struct control *c = cl->c;

    while (cl->head != NULL) {
        struct out_line *l = cl->head;
        cl->head = l->next;
        free(l);
    }
    p2p_list_remove(&cl->link);
    c->nclients--;
    free(cl->in);
    free(cl);
    maybe_finish(c);
}

static void client_close(struct client *cl)
{
    struct control *c = cl->c;

    if (cl->closing)
        return;
    cl->closing = true;
    cl->reading = false;
    kill_requests(cl);
    if (cl->subscriber) {
        cl->subscriber = false;
        c->nsubscribers--;
    }
    if (!cl->refused)
        c->nactive--;
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct control *c = server->data;
    struct client *cl;
    int rc;

    if (status < 0) {
        p2p_warn(c->log, "control: accept: %s", uv_strerror(status));
        return;
    }
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        p2p_err(c->log, "control: out of memory for a client");
        return;
    }
    cl->c = c;
    cl->refused = c->nactive >= CONTROL_CLIENTS_MAX;
    uv_pipe_init(c->loop, &cl->pipe, 0); /* cannot fail on Unix */
    cl->pipe.data = cl;
    cl->wreq.data = cl;
    p2p_list_init(&cl->reqs);
    p2p_list_push_front(&c->clients, &cl->link);
    c->nclients++;
    if (!cl->refused)
        c->nactive++;
    rc = uv_accept(server, (uv_stream_t *)&cl->pipe);
    if (rc != 0) {
        p2p_warn(c->log, "control: accept: %s", uv_strerror(rc));
        client_close(cl);
        return;
    }
    if (cl->refused) {
        c->st.refused++;
        p2p_info(c->log, "control: refusing a client: %d connected already", CONTROL_CLIENTS_MAX);
        respond_errorf(cl, NULL, "too many clients (max %d)", CONTROL_CLIENTS_MAX);
        client_hangup(cl);
        return;
    }
    cl->in = malloc(CONTROL_LINE_MAX + 1);
    if (cl->in == NULL) {
        p2p_err(c->log, "control: out of memory for a client");
        client_close(cl);
        return;
    }
    c->st.accepted++;
    update_reading(cl);
}

/* ---------------------------------------------------------------------------------
 * The listening socket. */

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    size_t len = strlen(path);

    if (len >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, len + 1);
    return 0;
}

/*
 * What is at path now?  Nothing: fine.  A socket nobody answers on (a daemon that
 * died without cleaning up): unlinked.  A socket that accepts (or whose backlog is
 * full): another daemon's, refused.  Anything else: refused, never removed.
 */
static int clear_path(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, rc, e;

    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        rc = -errno;
        p2p_errf(err, errlen, "control socket %s: %s", path, strerror(-rc));
        return rc;
    }
    if (!S_ISSOCK(st.st_mode)) {
        p2p_errf(err, errlen, "control socket %s: exists and is not a socket", path);
        return -EEXIST;
    }
    fill_addr(&sa, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        p2p_errf(err, errlen, "control socket %s: socket: %s", path, strerror(-rc));
        return rc;
    }
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
        p2p_errf(err, errlen, "control socket %s is in use by another process", path);
        return -EADDRINUSE;
    }
    if (e == ENOENT)
        return 0;
    if (e != ECONNREFUSED) {
        p2p_errf(err, errlen, "control socket %s: connect: %s", path, strerror(e));
        return -e;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = -errno;
        p2p_errf(err, errlen, "cannot remove the stale control socket %s: %s", path, strerror(-rc));
        return rc;
    }
    return 0;
}

static void on_server_closed(uv_handle_t *h)
{
    struct control *c = h->data;

    c->server_closed = true;
    maybe_finish(c);
}

int control_new(struct control **out, uv_loop_t *loop, const char *path, struct p2p_log *log,
                char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct control *c;
    struct stat st;
    int fd = -1, rc;

    if (path[0] == '\0') {
        p2p_errf(err, errlen, "control socket: empty path");
        return -EINVAL;
    }
    if (fill_addr(&sa, path) != 0) {
        p2p_errf(err, errlen, "control socket %.64s...: path too long (max %zu bytes)", path,
                 SUN_PATH_MAX - 1);
        return -ENAMETOOLONG;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        p2p_errf(err, errlen, "control socket: out of memory");
        return -ENOMEM;
    }
    c->loop = loop;
    c->log = log;
    p2p_list_init(&c->clients);
    memcpy(c->path, sa.sun_path, sizeof(c->path));
    rc = clear_path(path, err, errlen);
    if (rc != 0)
        goto fail;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        p2p_errf(err, errlen, "control socket %s: socket: %s", path, strerror(-rc));
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = -errno;
        p2p_errf(err, errlen, "control socket %s: bind: %s", path, strerror(-rc));
        goto fail;
    }
    /* Owner only, before listen(): until then every connect() is refused. */
    if (chmod(path, 0600) != 0 || lstat(path, &st) != 0) {
        rc = -errno;
        p2p_errf(err, errlen, "control socket %s: chmod: %s", path, strerror(-rc));
        unlink(path);
        goto fail;
    }
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    if (listen(fd, CONTROL_CLIENTS_MAX) != 0) {
        rc = -errno;
        p2p_errf(err, errlen, "control socket %s: listen: %s", path, strerror(-rc));
        unlink(path);
        goto fail;
    }
    uv_pipe_init(loop, &c->server, 0); /* cannot fail on Unix */
    c->server.data = c;
    rc = uv_pipe_open(&c->server, fd);
    if (rc != 0)
        close(fd); /* not the handle's: uv_close() would not close it */
    else
        rc = uv_listen((uv_stream_t *)&c->server, CONTROL_CLIENTS_MAX, on_connection);
    if (rc != 0) {
        /* Not seen in practice (the socket is good): the handle exists now, so it is
         * closed and c freed by its close callback. */
        p2p_errf(err, errlen, "control socket %s: %s", path, uv_strerror(rc));
        unlink(path);
        c->closing = true;
        uv_close((uv_handle_t *)&c->server, on_server_closed);
        return rc;
    }
    *out = c;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(c);
    return rc;
}

/* ---------------------------------------------------------------------------------
 * Commands, events, teardown. */

static int add_cmd(struct control *c, const char *name, const char *help, control_cmd_fn fn,
                   control_async_fn async, void *arg)
{
    size_t len = strlen(name);

    if (len == 0 || len >= CONTROL_CMD_NAME_MAX || (fn == NULL && async == NULL))
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        if (strcmp(builtins[i], name) == 0)
            return -EEXIST;
    }
    if (cmd_find(c, name) != NULL)
        return -EEXIST;
    if (c->ncmds == CONTROL_CMDS_MAX)
        return -ENOSPC;
    memcpy(c->cmds[c->ncmds].name, name, len + 1);
    c->cmds[c->ncmds].help = help;
    c->cmds[c->ncmds].fn = fn;
    c->cmds[c->ncmds].async = async;
    c->cmds[c->ncmds].arg = arg;
    c->ncmds++;
    return 0;
}

int control_register(struct control *c, const char *cmd, const char *help, control_cmd_fn fn,
                     void *arg)
{
    return add_cmd(c, cmd, help, fn, NULL, arg);
}

int control_register_async(struct control *c, const char *cmd, const char *help,
                           control_async_fn fn, void *arg)
{
    return add_cmd(c, cmd, help, NULL, fn, arg);
}

void control_publish(struct control *c, json_t *event)
{
    struct out_line *line = NULL;
    struct p2p_list *it;
    int rc;

    if (c->closing || c->nsubscribers == 0) {
        json_decref(event);
        return;
    }
    /* Encoded once; room for a "lost" line before it is kept in every queue. */
    rc = encode_line(event, CONTROL_WATCH_BYTES_MAX - LOST_LINE_MAX, &line);
    json_decref(event);
    if (rc != 0) {
        p2p_warn(c->log, "control: event dropped: %s",
                 rc == -EMSGSIZE ? "too large" : "cannot be encoded");
        return;
    }
    c->st.events++;
    P2P_LIST_FOREACH(it, &c->clients)
    {
        struct client *cl = P2P_LIST_ENTRY(it, struct client, link);
        struct out_line *copy;
        if (!cl->subscriber || cl->closing || cl->hangup)
            continue;
        if (!watch_room(cl, cl->lost > 0 ? 2 : 1, line->len + (cl->lost > 0 ? LOST_LINE_MAX : 0)) ||
            (copy = malloc(sizeof(*copy) + line->len)) == NULL) {
            cl->lost++;
            c->st.events_dropped++;
            continue;
        }
        queue_lost(cl); /* fits: room for both was checked */
        memcpy(copy->data, line->data, line->len);
        copy->len = line->len;
        copy->next = NULL;
        enqueue(cl, copy);
    }
    free(line);
}

bool control_watched(const struct control *c)
{
    return !c->closing && c->nsubscribers > 0;
}

void control_stats(const struct control *c, struct control_stats *out)
{
    struct control_stats s = c->st;
    const struct p2p_list *it;

    s.clients = c->nactive;
    s.subscribers = c->nsubscribers;
    s.pending = 0;
    s.queue_lines_max = 0;
    s.queue_bytes_max = 0;
    P2P_LIST_FOREACH(it, &c->clients)
    {
        const struct client *cl = P2P_LIST_ENTRY(it, struct client, link);
        s.pending += cl->pending;
        if (cl->out_lines > s.queue_lines_max)
            s.queue_lines_max = cl->out_lines;
        if (cl->out_bytes > s.queue_bytes_max)
            s.queue_bytes_max = cl->out_bytes;
    }
    *out = s;
}

const char *control_path(const struct control *c)
{
    return c->path;
}

void control_close(struct control *c, control_close_cb cb, void *arg)
{
    struct stat st;
    struct p2p_list *it;

    if (c->closing)
        return;
    c->closing = true;
    c->close_cb = cb;
    c->close_arg = arg;
    /* Only our own socket: another daemon may have replaced a file someone removed. */
    if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == c->dev &&
        st.st_ino == c->ino)
        unlink(c->path);
    P2P_LIST_FOREACH(it, &c->clients)
    client_close(P2P_LIST_ENTRY(it, struct client, link));
    uv_close((uv_handle_t *)&c->server, on_server_closed);
}
