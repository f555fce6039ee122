/*
 * test_control.c: the control socket (p2psipd/control.c) on a real libuv loop.
 *
 * The clients are uv_pipe_t handles on the same loop as the server, connected to a
 * socket under a mkdtemp directory; the loop is turned (bounded) until what a test
 * waits for has arrived.  Checks: sync and async commands answer with the request's
 * id, in order for pipelined sync requests; "help" lists the commands; registration
 * errors; malformed JSON, a duplicate key, a non-object, bad members, an unknown
 * command and an over-long line get the documented errors (the last one closes the
 * connection, a line of exactly CONTROL_LINE_MAX bytes does not); the socket is
 * mode 0600, a live one is refused, a stale one replaced, a regular file left alone,
 * close removes it; a client gone before its async request completes (and a control
 * closed with requests pending) leaves dead requests whose completion frees them;
 * back-pressure at CONTROL_PENDING_MAX; the 33rd client is refused; a subscriber
 * that never reads while 100,000 events are published keeps a queue under the caps,
 * the drops are counted, and when it reads it gets every kept event in order and
 * then {"event":"lost","count":N} with N the number dropped, while a subscriber that
 * reads gets all of them.  Every test ends with uv_loop_close() == 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "control.h"

/* ---------------------------------------------------------------------------------
 * Fixture: a loop, a temporary directory, a control socket in it. */

struct fix {
    uv_loop_t loop;
    char dir[64];
    char path[128];
    struct control *c;
    int closed; /* control_close callbacks */
    /* The async command's requests, as the handler received them. */
    struct control_req *reqs[128];
    size_t nreqs;
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_control.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/control.sock", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    char p[160];

    unlink(f->path);
    snprintf(p, sizeof(p), "%s/other", f->dir);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void nap(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Runs the loop without blocking until done(arg) or about 10 s have passed. */
static bool spin(struct fix *f, bool (*done)(void *), void *arg)
{
    for (int i = 0; i < 50000; i++) {
        if (done(arg))
            return true;
        if (uv_run(&f->loop, UV_RUN_NOWAIT) == 0 && done(arg))
            return true;
        if (i > 100)
            nap(200);
    }
    return done(arg);
}

/* A few turns of the loop, for "nothing more happens" checks. */
static void turns(struct fix *f, int n)
{
    for (int i = 0; i < n; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        nap(1000);
    }
}

static void on_control_closed(void *arg)
{
    struct fix *f = arg;
    f->closed++;
}

/* Closes the control socket, runs the loop dry, and checks nothing is left on it. */
static void finish(struct fix *f)
{
    if (f->c != NULL) {
        control_close(f->c, on_control_closed, f);
        assert_int_equal(f->closed, 0); /* never from inside control_close */
        f->c = NULL;
        assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(f->closed, 1);
    }
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* Commands: "echo" (sync: {"args":..., "opts":...}), "fail" (sync error), "later"
 * (async: kept in f->reqs until the test completes it). */
static json_t *cmd_echo(const json_t *args, const json_t *opts, char *err, size_t errlen, void *arg)
{
    (void)err;
    (void)errlen;
    (void)arg;
    return json_pack("{s:O, s:O}", "args", args, "opts", opts);
}

static json_t *cmd_fail(const json_t *args, const json_t *opts, char *err, size_t errlen, void *arg)
{
    (void)args;
    (void)opts;
    (void)arg;
    snprintf(err, errlen, "no such key");
    return NULL;
}

static void cmd_later(struct control_req *req, const json_t *args, const json_t *opts, void *arg)
{
    struct fix *f = arg;
    (void)args;
    (void)opts;
    assert_true(f->nreqs < 128);
    f->reqs[f->nreqs++] = req;
}

static void start(struct fix *f)
{
    char err[256] = "";

    assert_int_equal(control_new(&f->c, &f->loop, f->path, NULL, err, sizeof(err)), 0);
    assert_int_equal(control_register(f->c, "echo", "echo the args and opts", cmd_echo, f), 0);
    assert_int_equal(control_register(f->c, "fail", "always fails", cmd_fail, f), 0);
    assert_int_equal(control_register_async(f->c, "later", "answers later", cmd_later, f), 0);
}

/* ---------------------------------------------------------------------------------
 * Test client: a uv_pipe_t on the same loop. */

struct tc {
    uv_pipe_t pipe;
    uv_connect_t creq;
    int status; /* connect result; 1 while connecting */
    bool eof, closed;
    char in[1 << 17]; /* a partial line */
    size_t in_len;
    json_t *msgs[256]; /* lines kept: responses and "lost" events */
    size_t nmsgs;
    /* "tick" events, {"event":"tick","seq":N}: counted, order checked. */
    uint64_t ticks, lost;
    long long expect; /* the seq the next tick should have */
    bool order_ok;
};

static void tc_on_connect(uv_connect_t *req, int status)
{
    struct tc *t = req->data;
    t->status = status;
}

static void tc_line(struct tc *t, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *m = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *ev;

    assert_non_null(m); /* the server only ever sends valid JSON */
    ev = json_string_value(json_object_get(m, "event"));
    if (ev != NULL && strcmp(ev, "tick") == 0) {
        long long seq = (long long)json_integer_value(json_object_get(m, "seq"));
        if (seq != t->expect)
            t->order_ok = false;
        t->expect = seq + 1;
        t->ticks++;
        json_decref(m);
        return;
    }
    if (ev != NULL && strcmp(ev, "lost") == 0) {
        uint64_t n = (uint64_t)json_integer_value(json_object_get(m, "count"));
        t->lost += n;
        t->expect += (long long)n;
    }
    assert_true(t->nmsgs < 256);
    t->msgs[t->nmsgs++] = m;
}

static void tc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tc *t = h->data;
    (void)suggested;
    buf->base = t->in + t->in_len;
    buf->len = sizeof(t->in) - t->in_len;
}

static void tc_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tc *t = s->data;
    size_t start = 0;
    char *nl;
    (void)buf;

    if (nread < 0) {
        t->eof = true;
        uv_read_stop(s);
        return;
    }
    t->in_len += (size_t)nread;
    while ((nl = memchr(t->in + start, '\n', t->in_len - start)) != NULL) {
        tc_line(t, t->in + start, (size_t)(nl - (t->in + start)));
        start = (size_t)(nl - t->in) + 1;
    }
    memmove(t->in, t->in + start, t->in_len - start);
    t->in_len -= start;
    assert_true(t->in_len < sizeof(t->in));
}

static bool tc_connected(void *arg)
{
    return ((struct tc *)arg)->status != 1;
}

static struct tc *tc_new(struct fix *f, bool read)
{
    struct tc *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    t->status = 1;
    t->order_ok = true;
    assert_int_equal(uv_pipe_init(&f->loop, &t->pipe, 0), 0);
    t->pipe.data = t;
    t->creq.data = t;
    uv_pipe_connect(&t->creq, &t->pipe, f->path, tc_on_connect);
    assert_true(spin(f, tc_connected, t));
    assert_int_equal(t->status, 0);
    if (read)
        assert_int_equal(uv_read_start((uv_stream_t *)&t->pipe, tc_alloc, tc_on_read), 0);
    return t;
}

static void tc_on_write(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Sends len bytes (copied). */
static void tc_sendn(struct tc *t, const char *data, size_t len)
{
    uv_write_t *w = malloc(sizeof(*w) + len);
    char *copy = (char *)(w + 1);
    uv_buf_t b;

    assert_non_null(w);
    memcpy(copy, data, len);
    b = uv_buf_init(copy, (unsigned)len);
    assert_int_equal(uv_write(w, (uv_stream_t *)&t->pipe, &b, 1, tc_on_write), 0);
}

static void tc_send(struct tc *t, const char *text)
{
    tc_sendn(t, text, strlen(text));
}

static void tc_on_close(uv_handle_t *h)
{
    struct tc *t = h->data;
    t->closed = true;
}

static bool tc_is_closed(void *arg)
{
    return ((struct tc *)arg)->closed;
}

static void tc_free(struct fix *f, struct tc *t)
{
    if (!uv_is_closing((uv_handle_t *)&t->pipe))
        uv_close((uv_handle_t *)&t->pipe, tc_on_close);
    assert_true(spin(f, tc_is_closed, t));
    for (size_t i = 0; i < t->nmsgs; i++)
        json_decref(t->msgs[i]);
    free(t);
}

/* What a spin() waits for on one client: n kept lines, or n ticks. */
struct want {
    struct tc *t;
    uint64_t n;
};

static bool has_msgs(void *arg)
{
    struct want *w = arg;
    return w->t->nmsgs >= w->n || w->t->eof;
}

/* Waits for the client's n-th kept line and returns it. */
static json_t *tc_wait(struct fix *f, struct tc *t, size_t n)
{
    struct want w = {t, n};

    assert_true(spin(f, has_msgs, &w));
    assert_true(t->nmsgs >= n);
    return t->msgs[n - 1];
}

static bool is_eof(void *arg)
{
    return ((struct tc *)arg)->eof;
}

/* Asserts m is {"id": <id_json>, "ok": false, "error": <text starting with prefix>}. */
static void assert_error(json_t *m, const char *id_json, const char *prefix)
{
    char *id = json_dumps(json_object_get(m, "id"), JSON_ENCODE_ANY | JSON_COMPACT);
    const char *text = json_string_value(json_object_get(m, "error"));

    assert_string_equal(id, id_json);
    free(id);
    assert_true(json_is_false(json_object_get(m, "ok")));
    assert_non_null(text);
    if (strncmp(text, prefix, strlen(prefix)) != 0)
        fail_msg("error '%s' does not start with '%s'", text, prefix);
    assert_null(json_object_get(m, "result"));
}

/* Asserts m is {"id": <id_json>, "ok": true, "result": <result_json>} (compact). */
static void assert_result(json_t *m, const char *id_json, const char *result_json)
{
    char *id = json_dumps(json_object_get(m, "id"), JSON_ENCODE_ANY | JSON_COMPACT);
    char *res = json_dumps(json_object_get(m, "result"), JSON_ENCODE_ANY | JSON_COMPACT);

    assert_string_equal(id, id_json);
    assert_true(json_is_true(json_object_get(m, "ok")));
    assert_non_null(res);
    assert_string_equal(res, result_json);
    assert_null(json_object_get(m, "error"));
    free(id);
    free(res);
}

/* ---------------------------------------------------------------------------------
 * Tests. */

static void test_sync_and_async(void **state)
{
    struct fix *f = *state;
    struct control_stats st;
    struct tc *t;
    json_t *m;

    start(f);
    t = tc_new(f, true);
    /* Two pipelined sync requests in one write: answered in order. */
    tc_send(t, "{\"id\":1,\"cmd\":\"echo\",\"args\":[\"a\",\"b\"],\"opts\":{\"ttl\":30}}\n"
               "{\"cmd\":\"echo\"}\r\n");
    assert_result(tc_wait(f, t, 1), "1", "{\"args\":[\"a\",\"b\"],\"opts\":{\"ttl\":30}}");
    assert_result(tc_wait(f, t, 2), "null", "{\"args\":[],\"opts\":{}}");
    tc_send(t, "{\"id\":\"x\",\"cmd\":\"fail\"}\n");
    assert_error(tc_wait(f, t, 3), "\"x\"", "no such key");

    /* Async: no answer until the handler completes; the id comes back unchanged. */
    tc_send(t, "{\"id\":[1,{\"k\":2}],\"cmd\":\"later\"}\n\n{\"id\":5,\"cmd\":\"later\"}\n");
    turns(f, 20);
    assert_int_equal(f->nreqs, 2);
    assert_int_equal(t->nmsgs, 3);
    control_stats(f->c, &st);
    assert_int_equal(st.pending, 2);
    assert_true(control_req_alive(f->reqs[0]));
    /* Completed out of order: the second first. */
    control_reply_error(f->reqs[1], "timed out after %d s", 3);
    control_reply(f->reqs[0], json_pack("{s:s}", "value", "v"));
    assert_error(tc_wait(f, t, 4), "5", "timed out after 3 s");
    assert_result(tc_wait(f, t, 5), "[1,{\"k\":2}]", "{\"value\":\"v\"}");

    /* help lists the registered commands, then the built-ins. */
    tc_send(t, "{\"id\":6,\"cmd\":\"help\"}\n");
    m = json_object_get(tc_wait(f, t, 6), "result");
    assert_int_equal(json_array_size(m), 6);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "command")),
                        "echo");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 2), "help")),
                        "answers later");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 3), "command")),
                        "watch");

    /* Registration errors. */
    assert_int_equal(control_register(f->c, "echo", "", cmd_echo, f), -EEXIST);
    assert_int_equal(control_register(f->c, "watch", "", cmd_echo, f), -EEXIST);
    assert_int_equal(control_register_async(f->c, "later", "", cmd_later, f), -EEXIST);
    assert_int_equal(control_register(f->c, "", "", cmd_echo, f), -EINVAL);
    assert_int_equal(control_register(f->c, "Bad Name", "", cmd_echo, f), -EINVAL);
    assert_int_equal(control_register(f->c, "x", "", NULL, f), -EINVAL);
    assert_int_equal(control_register(f->c, "a-very-long-command-name-over-31", "", cmd_echo, f),
                     -EINVAL);
    assert_int_equal(control_register(f->c, "status_2", "", cmd_echo, f), 0);

    control_stats(f->c, &st);
    assert_int_equal(st.clients, 1);
    assert_int_equal(st.requests, 6); /* the blank line is no request */
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.pending, 0);
    tc_free(f, t);
    finish(f);
}

static void test_bad_requests(void **state)
{
    struct fix *f = *state;
    struct tc *t;
    char *line;
    size_t n = 0;

    start(f);
    t = tc_new(f, true);
    tc_send(t, "{\"id\":1,\"cmd\":\"echo\"\n");
    assert_error(tc_wait(f, t, ++n), "null", "bad request: invalid JSON: ");
    tc_send(t, "{\"id\":2,\"cmd\":\"echo\",\"cmd\":\"fail\"}\n");
    assert_error(tc_wait(f, t, ++n), "null", "bad request: invalid JSON: duplicate object key");
    tc_send(t, "[1,2]\n");
    assert_error(tc_wait(f, t, ++n), "null", "bad request: not a JSON object");
    tc_send(t, "{\"id\":3,\"cmd\":\"nosuch\"}\n");
    assert_error(tc_wait(f, t, ++n), "3", "unknown command 'nosuch'");
    /* A quote cut inside a UTF-8 sequence loses the cut sequence, not the text. */
    {
        char req[160], want[100];
        memset(want, 'a', 63);
        want[63] = '\0';
        snprintf(req, sizeof(req), "{\"id\":31,\"cmd\":\"%s\xc3\xa9\"}\n", want);
        tc_send(t, req);
        snprintf(req, sizeof(req), "unknown command '%s'", want);
        assert_error(tc_wait(f, t, ++n), "31", req);
        assert_string_equal(json_string_value(json_object_get(t->msgs[n - 1], "error")), req);
    }
    tc_send(t, "{\"id\":4,\"cmd\":\"echo\",\"args\":[1]}\n");
    assert_error(tc_wait(f, t, ++n), "4", "bad request: \"args\" must be an array of strings");
    tc_send(t, "{\"id\":5,\"cmd\":\"echo\",\"opts\":[]}\n");
    assert_error(tc_wait(f, t, ++n), "5", "bad request: \"opts\" must be an object");
    tc_send(t, "{\"id\":6,\"cmd\":\"echo\",\"extra\":1}\n");
    assert_error(tc_wait(f, t, ++n), "6", "bad request: unknown member 'extra'");
    tc_send(t, "{\"id\":7,\"cmd\":\"\"}\n");
    assert_error(tc_wait(f, t, ++n), "7", "bad request: \"cmd\" must be a non-empty string");
    tc_send(t, "{\"id\":8,\"cmd\":\"echo\",\"args\":[\"\\u0000\"]}\n");
    assert_error(tc_wait(f, t, ++n), "null", "bad request: invalid JSON: ");
    tc_send(t, "{\"id\":9,\"cmd\":\"echo\",\"args\":[\"\xff\"]}\n");
    assert_error(tc_wait(f, t, ++n), "null", "bad request: invalid JSON: ");

    /* After all that the connection still works; a line of exactly CONTROL_LINE_MAX
     * bytes (padded with blanks) is accepted. */
    line = malloc(CONTROL_LINE_MAX + 2);
    assert_non_null(line);
    memset(line, ' ', CONTROL_LINE_MAX);
    memcpy(line, "{\"id\":10,\"cmd\":\"echo\"}", 22);
    line[CONTROL_LINE_MAX] = '\n';
    tc_sendn(t, line, CONTROL_LINE_MAX + 1);
    assert_result(tc_wait(f, t, ++n), "10", "{\"args\":[],\"opts\":{}}");

    /* One byte more: an error, and the connection is closed. */
    memset(line, ' ', CONTROL_LINE_MAX + 1);
    memcpy(line, "{\"id\":11,\"cmd\":\"echo\"}", 22);
    line[CONTROL_LINE_MAX + 1] = '\n';
    tc_sendn(t, line, CONTROL_LINE_MAX + 2);
    assert_error(tc_wait(f, t, ++n), "null", "request line too long (max 65536 bytes)");
    assert_true(spin(f, is_eof, t));
    assert_int_equal(t->nmsgs, n); /* nothing after the error */
    free(line);
    tc_free(f, t);
    finish(f);
}

static bool control_has_no_clients(void *arg)
{
    struct control_stats st;
    control_stats(arg, &st);
    return st.clients == 0;
}

static void test_socket_file(void **state)
{
    struct fix *f = *state;
    struct control *c2 = NULL;
    char err[256] = "", other[160];
    struct sockaddr_un sa;
    struct stat st;
    struct tc *t;
    int fd;

    /* A stale socket (bound, then its process went) is replaced. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    assert_true(strlen(f->path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(stat(f->path, &st), 0);
    start(f);

    /* Owner only. */
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_string_equal(control_path(f->c), f->path);

    /* A second control on the live path is refused, and leaves the first alone. */
    assert_int_equal(control_new(&c2, &f->loop, f->path, NULL, err, sizeof(err)), -EADDRINUSE);
    assert_null(c2);
    assert_non_null(strstr(err, "is in use by another process"));
    assert_non_null(strstr(err, f->path));
    assert_true(spin(f, control_has_no_clients, f->c)); /* its probe came and went */
    t = tc_new(f, true);
    tc_send(t, "{\"id\":1,\"cmd\":\"echo\"}\n");
    assert_result(tc_wait(f, t, 1), "1", "{\"args\":[],\"opts\":{}}");
    tc_free(f, t);

    /* Not a socket: refused and left untouched. */
    snprintf(other, sizeof(other), "%s/other", f->dir);
    fd = open(other, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(control_new(&c2, &f->loop, other, NULL, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "exists and is not a socket"));
    assert_int_equal(stat(other, &st), 0);
    assert_true(S_ISREG(st.st_mode));

    /* Too long for sun_path. */
    {
        char longp[200];
        memset(longp, 'a', sizeof(longp) - 1);
        longp[0] = '/';
        longp[sizeof(longp) - 1] = '\0';
        assert_int_equal(control_new(&c2, &f->loop, longp, NULL, err, sizeof(err)), -ENAMETOOLONG);
    }

    /* Closing removes the socket file. */
    finish(f);
    assert_int_equal(stat(f->path, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static bool no_pending(void *arg)
{
    struct control_stats st;
    control_stats(arg, &st);
    return st.pending == 0 && st.clients == 0;
}

static void test_client_gone_before_completion(void **state)
{
    struct fix *f = *state;
    struct control_stats st;
    struct tc *t;

    start(f);
    t = tc_new(f, true);
    tc_send(t, "{\"id\":1,\"cmd\":\"later\"}\n{\"id\":2,\"cmd\":\"later\"}\n");
    turns(f, 20);
    assert_int_equal(f->nreqs, 2);
    /* One completes while the client is there. */
    control_reply(f->reqs[0], json_string("first"));
    assert_result(tc_wait(f, t, 1), "1", "\"first\"");
    /* The client hangs up; the other request is dead, its completion frees it. */
    tc_free(f, t);
    assert_true(spin(f, no_pending, f->c));
    assert_false(control_req_alive(f->reqs[1]));
    control_reply(f->reqs[1], json_pack("{s:[s,s]}", "big", "x", "y"));

    /* Requests pending when the control socket closes die too, and may be completed
     * after it is freed. */
    f->nreqs = 0;
    t = tc_new(f, true);
    tc_send(t, "{\"id\":3,\"cmd\":\"later\"}\n{\"id\":4,\"cmd\":\"later\"}\n");
    turns(f, 20);
    assert_int_equal(f->nreqs, 2);
    control_stats(f->c, &st);
    assert_int_equal(st.pending, 2);
    control_close(f->c, on_control_closed, f);
    f->c = NULL;
    assert_false(control_req_alive(f->reqs[0]));
    assert_false(control_req_alive(f->reqs[1]));
    assert_true(spin(f, is_eof, t));
    tc_free(f, t);
    assert_int_equal(f->closed, 1); /* the control object is freed now */
    control_reply_error(f->reqs[0], "cancelled");
    control_reply(f->reqs[1], NULL);
    finish(f);
}

static void test_backpressure(void **state)
{
    struct fix *f = *state;
    struct control_stats st;
    struct tc *t;
    char buf[64];

    start(f);
    t = tc_new(f, true);
    /* 70 async requests in one go: 64 are taken, the rest wait in the buffer. */
    for (int i = 0; i < 70; i++) {
        snprintf(buf, sizeof(buf), "{\"id\":%d,\"cmd\":\"later\"}\n", i);
        tc_send(t, buf);
    }
    turns(f, 50);
    assert_int_equal(f->nreqs, CONTROL_PENDING_MAX);
    control_stats(f->c, &st);
    assert_int_equal(st.pending, CONTROL_PENDING_MAX);
    /* Completing one lets one more in. */
    control_reply(f->reqs[0], json_integer(0));
    turns(f, 20);
    assert_int_equal(f->nreqs, CONTROL_PENDING_MAX + 1);
    for (size_t i = 1; i < CONTROL_PENDING_MAX + 1; i++)
        control_reply(f->reqs[i], json_integer((json_int_t)i));
    turns(f, 50);
    assert_int_equal(f->nreqs, 70);
    for (size_t i = CONTROL_PENDING_MAX + 1; i < 70; i++)
        control_reply(f->reqs[i], json_integer((json_int_t)i));
    tc_wait(f, t, 70);
    for (size_t i = 0; i < 70; i++)
        assert_int_equal(json_integer_value(json_object_get(t->msgs[i], "id")),
                         json_integer_value(json_object_get(t->msgs[i], "result")));
    tc_free(f, t);
    finish(f);
}

static void test_clients_cap(void **state)
{
    struct fix *f = *state;
    struct tc *t[CONTROL_CLIENTS_MAX + 2];
    struct control_stats st;

    start(f);
    for (int i = 0; i < CONTROL_CLIENTS_MAX + 1; i++)
        t[i] = tc_new(f, true);
    /* The last one is told and closed. */
    assert_error(tc_wait(f, t[CONTROL_CLIENTS_MAX], 1), "null", "too many clients (max 32)");
    assert_true(spin(f, is_eof, t[CONTROL_CLIENTS_MAX]));
    control_stats(f->c, &st);
    assert_int_equal(st.clients, CONTROL_CLIENTS_MAX);
    assert_int_equal(st.refused, 1);
    /* The others work; one leaves, and a newcomer is served. */
    tc_send(t[0], "{\"id\":1,\"cmd\":\"echo\"}\n");
    assert_result(tc_wait(f, t[0], 1), "1", "{\"args\":[],\"opts\":{}}");
    tc_free(f, t[0]);
    tc_free(f, t[CONTROL_CLIENTS_MAX]);
    t[0] = tc_new(f, true);
    tc_send(t[0], "{\"id\":2,\"cmd\":\"echo\"}\n");
    assert_result(tc_wait(f, t[0], 1), "2", "{\"args\":[],\"opts\":{}}");
    control_stats(f->c, &st);
    assert_int_equal(st.refused, 1);
    for (int i = 0; i < CONTROL_CLIENTS_MAX; i++)
        tc_free(f, t[i]);
    finish(f);
}

static bool ticks_at_least(void *arg)
{
    struct want *w = arg;
    return w->t->ticks + w->t->lost >= w->n;
}

/* Waits until the client has seen n ticks, received or reported lost. */
static void tc_wait_ticks(struct fix *f, struct tc *t, uint64_t n)
{
    struct want w = {t, n};

    assert_true(spin(f, ticks_at_least, &w));
}

static void test_watch_slow_subscriber(void **state)
{
    struct fix *f = *state;
    enum { EVENTS = 100000, CHUNK = 500 };
    struct control_stats st;
    struct tc *slow, *fast;
    json_t *m;

    start(f);
    slow = tc_new(f, true);
    fast = tc_new(f, true);
    assert_false(control_watched(f->c));
    tc_send(slow, "{\"id\":1,\"cmd\":\"watch\"}\n");
    tc_send(fast, "{\"id\":1,\"cmd\":\"watch\"}\n");
    assert_result(tc_wait(f, slow, 1), "1", "{\"watching\":true}");
    assert_result(tc_wait(f, fast, 1), "1", "{\"watching\":true}");
    assert_true(control_watched(f->c));
    /* The slow one stops reading: its socket buffer fills, then its queue. */
    uv_read_stop((uv_stream_t *)&slow->pipe);

    for (long long i = 0; i < EVENTS; i++) {
        control_publish(f->c, json_pack("{s:s, s:I}", "event", "tick", "seq", (json_int_t)i));
        if ((i + 1) % CHUNK == 0) {
            /* The fast one keeps up, whatever the slow one does. */
            tc_wait_ticks(f, fast, (uint64_t)i + 1);
            control_stats(f->c, &st);
            assert_true(st.queue_lines_max <= CONTROL_WATCH_LINES_MAX);
            assert_true(st.queue_bytes_max <= CONTROL_WATCH_BYTES_MAX);
        }
    }
    control_stats(f->c, &st);
    assert_int_equal(st.events, EVENTS);
    assert_true(st.events_dropped > 0);
    assert_true(st.events_dropped < EVENTS);
    assert_int_equal(fast->ticks, EVENTS);
    assert_int_equal(fast->lost, 0);
    assert_true(fast->order_ok);
    /* The slow one's queue is full now (lines or bytes). */
    assert_true(st.queue_lines_max == CONTROL_WATCH_LINES_MAX ||
                st.queue_bytes_max + 64 > CONTROL_WATCH_BYTES_MAX);

    /* It reads at last: every event kept, in order, then the "lost" line. */
    assert_int_equal(uv_read_start((uv_stream_t *)&slow->pipe, tc_alloc, tc_on_read), 0);
    tc_wait_ticks(f, slow, EVENTS);
    assert_int_equal(slow->ticks + slow->lost, EVENTS);
    assert_int_equal(slow->lost, st.events_dropped);
    assert_true(slow->order_ok);
    m = tc_wait(f, slow, 2);
    assert_string_equal(json_string_value(json_object_get(m, "event")), "lost");
    assert_int_equal(json_integer_value(json_object_get(m, "count")), st.events_dropped);
    control_stats(f->c, &st);
    assert_int_equal(st.queue_lines_max, 0);

    /* Nothing lost any more; unwatch stops the stream. */
    control_publish(f->c, json_pack("{s:s, s:I}", "event", "tick", "seq", (json_int_t)EVENTS));
    tc_wait_ticks(f, slow, EVENTS + 1);
    assert_true(slow->order_ok);
    tc_send(slow, "{\"id\":2,\"cmd\":\"unwatch\"}\n");
    assert_result(tc_wait(f, slow, 3), "2", "{\"watching\":false}");
    control_publish(f->c, json_pack("{s:s, s:I}", "event", "tick", "seq", (json_int_t)EVENTS + 1));
    tc_wait_ticks(f, fast, EVENTS + 2);
    turns(f, 10);
    assert_int_equal(slow->ticks, EVENTS - st.events_dropped + 1);
    tc_free(f, slow);
    tc_free(f, fast);
    assert_true(spin(f, control_has_no_clients, f->c));
    assert_false(control_watched(f->c));
    control_publish(f->c, json_pack("{s:s}", "event", "nobody")); /* freed, not queued */
    finish(f);
}

/* "now": an async command that completes inside its handler. */
static void cmd_now(struct control_req *req, const json_t *args, const json_t *opts, void *arg)
{
    (void)args;
    (void)opts;
    (void)arg;
    control_reply(req, json_string("now"));
}

/* "quit": closes the control socket from inside a request, as a "stop" command would. */
static json_t *cmd_quit(const json_t *args, const json_t *opts, char *err, size_t errlen, void *arg)
{
    struct fix *f = arg;
    (void)args;
    (void)opts;
    (void)err;
    (void)errlen;
    control_close(f->c, on_control_closed, f);
    f->c = NULL;
    return json_string("bye");
}

static void test_reentrancy(void **state)
{
    struct fix *f = *state;
    struct tc *t;
    char name[16];

    start(f);
    assert_int_equal(control_register_async(f->c, "now", "", cmd_now, f), 0);
    assert_int_equal(control_register(f->c, "quit", "", cmd_quit, f), 0);
    /* The table is full at CONTROL_CMDS_MAX. */
    for (int i = 5; i < CONTROL_CMDS_MAX; i++) {
        snprintf(name, sizeof(name), "cmd%d", i);
        assert_int_equal(control_register(f->c, name, "", cmd_echo, f), 0);
    }
    assert_int_equal(control_register(f->c, "one-more", "", cmd_echo, f), -ENOSPC);

    t = tc_new(f, true);
    tc_send(t, "{\"id\":1,\"cmd\":\"now\"}\n");
    assert_result(tc_wait(f, t, 1), "1", "\"now\"");
    /* Closing from inside a handler: the requests before it are answered, it and the
     * ones after it are not, the connection ends, and nothing is touched after. */
    tc_send(t, "{\"id\":2,\"cmd\":\"now\"}\n{\"id\":3,\"cmd\":\"quit\"}\n"
               "{\"id\":4,\"cmd\":\"now\"}\n");
    assert_true(spin(f, is_eof, t));
    assert_null(f->c);
    assert_int_equal(t->nmsgs, 2);
    assert_result(t->msgs[1], "2", "\"now\"");
    tc_free(f, t);
    assert_int_equal(f->closed, 1);
    finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_and_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_before_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_slow_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrancy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
