/*
 * fuzz_control.c: libFuzzer target for the control socket's request handling
 * (p2psipd/control.c: a request line -> jansson decode -> checks -> dispatch ->
 * one response line).
 *
 * Built once per process: a control instance on a libuv loop, listening on a Unix
 * socket in a fresh temporary directory (both removed once the client is connected),
 * with test commands of every kind a handler can be: "echo" (synchronous, returns
 * its args and opts), "fail" (synchronous error, its text from the first arg),
 * "empty" (synchronous NULL with no text: "internal error"), "now" (asynchronous,
 * completed inside the handler) and "later" (asynchronous, completed on the next
 * loop turn, with an error when opts has "fail").  One client connection is kept open across inputs
 * (if the daemon hangs up, the control socket is closed and made again, with a new one).
 *
 * Each input up to its first newline is one request line, written with a newline.
 * The loop then runs until the response line arrives or the connection closes,
 * within LOOP_MS of loop time (else the target aborts: the daemon neither answered
 * nor hung up).  A line that is empty after an optional CR is no request and is not
 * sent.  After every input an event is published, so a client that sent "watch"
 * receives event lines (skipped here) ahead of responses.  Besides memory safety it
 * checks that the response is one JSON object with a boolean "ok" and an "id" equal
 * to the request's (null when the request has none or is not an object); that an
 * error has a string "error" and a success a "result"; that a line which is not
 * JSON is answered with an error; that only known commands succeed; and that
 * "echo" answers exactly {"args": <args or []>, "opts": <opts or {}>}.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <jansson.h>
#include <uv.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOOP_MS 5000
#define RESP_MAX (4u << 20)
#define LATER_MAX 256

static struct {
    bool ready;
    uv_loop_t loop;
    uv_timer_t failsafe, later_timer;
    struct control *ctl;
    int fd; /* the client, -1 when closed */
    char *resp;
    size_t resp_len;
    bool eof;
    struct control_req *later[LATER_MAX];
    bool later_fail[LATER_MAX];
    size_t n_later;
    unsigned events, seq;
} w = {.fd = -1};

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_control: %s\n", what);
        abort();
    }
}

/* ---- the test commands --------------------------------------------------------------- */

static json_t *cmd_echo(const json_t *args, const json_t *opts, char *err, size_t errlen, void *arg)
{
    (void)err;
    (void)errlen;
    (void)arg;
    return json_pack("{s:o,s:o}", "args", json_deep_copy(args), "opts", json_deep_copy(opts));
}

static json_t *cmd_fail(const json_t *args, const json_t *opts, char *err, size_t errlen, void *arg)
{
    const char *first = json_string_value(json_array_get(args, 0));

    (void)opts;
    (void)arg;
    snprintf(err, errlen, "failed: %s", first != NULL ? first : "");
    return NULL;
}

static json_t *cmd_empty(const json_t *args, const json_t *opts, char *err, size_t errlen,
                         void *arg)
{
    (void)args;
    (void)opts;
    (void)err;
    (void)errlen;
    (void)arg;
    return NULL;
}

static void cmd_now(struct control_req *req, const json_t *args, const json_t *opts, void *arg)
{
    (void)opts;
    (void)arg;
    control_reply(req, json_deep_copy(args));
}

static void later_cb(uv_timer_t *t)
{
    size_t n = w.n_later;

    (void)t;
    w.n_later = 0;
    for (size_t i = 0; i < n; i++) {
        if (w.later_fail[i])
            control_reply_error(w.later[i], "later: failed as asked");
        else
            control_reply(w.later[i], json_string("later"));
    }
}

static void cmd_later(struct control_req *req, const json_t *args, const json_t *opts, void *arg)
{
    (void)args;
    (void)arg;
    if (w.n_later == LATER_MAX) {
        control_reply_error(req, "later: busy");
        return;
    }
    w.later_fail[w.n_later] = json_object_get(opts, "fail") != NULL;
    w.later[w.n_later++] = req;
    (void)uv_timer_start(&w.later_timer, later_cb, 0, 0);
}

/* ---- the loop and the client ----------------------------------------------------------- */

static void failsafe_cb(uv_timer_t *t)
{
    (void)t;
}

/*
 * Creates the control socket in a fresh directory, connects the client, then removes
 * the socket file and the directory: the connection lives on, and nothing is left
 * behind however the process ends (libFuzzer does not always run atexit handlers).
 */
static void open_control(void)
{
    char dir[48], path[80], err[256];
    struct sockaddr_un sa;

    snprintf(dir, sizeof(dir), "/tmp/fuzz_control.XXXXXX");
    check(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof(path), "%s/ctl.sock", dir); /* fits sun_path (108 bytes) */
    check(control_new(&w.ctl, &w.loop, path, NULL, err, sizeof(err)) == 0, err);
    check(control_register(w.ctl, "echo", "echo args and opts", cmd_echo, NULL) == 0, "echo");
    check(control_register(w.ctl, "fail", "fail with args[0]", cmd_fail, NULL) == 0, "fail");
    check(control_register(w.ctl, "empty", "fail with no text", cmd_empty, NULL) == 0, "empty");
    check(control_register_async(w.ctl, "now", "async, at once", cmd_now, NULL) == 0, "now");
    check(control_register_async(w.ctl, "later", "async, next turn", cmd_later, NULL) == 0,
          "later");
    w.fd = socket(AF_UNIX, SOCK_STREAM, 0);
    check(w.fd >= 0, "socket");
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, sizeof(path));
    check(connect(w.fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    check(unlink(path) == 0 && rmdir(dir) == 0, "removing the socket file");
    w.resp_len = 0;
    w.eof = false;
}

static void control_closed(void *arg)
{
    (void)arg;
    w.ctl = NULL;
}

/* The daemon hung up on the client: a new control socket and connection. */
static void reopen_control(void)
{
    uint64_t deadline;

    close(w.fd);
    w.fd = -1;
    control_close(w.ctl, control_closed, NULL);
    uv_update_time(&w.loop);
    deadline = uv_now(&w.loop) + LOOP_MS;
    (void)uv_timer_start(&w.failsafe, failsafe_cb, LOOP_MS, 0);
    while (w.ctl != NULL && uv_now(&w.loop) < deadline)
        (void)uv_run(&w.loop, UV_RUN_ONCE);
    (void)uv_timer_stop(&w.failsafe);
    check(w.ctl == NULL, "control_close did not complete");
    open_control();
}

/* Reads what the daemon has written so far (never blocks). */
static void client_read(void)
{
    while (!w.eof && w.resp_len < RESP_MAX) {
        ssize_t n = recv(w.fd, w.resp + w.resp_len, RESP_MAX - w.resp_len, MSG_DONTWAIT);
        if (n > 0)
            w.resp_len += (size_t)n;
        else if (n == 0)
            w.eof = true;
        else
            break;
    }
}

/*
 * Takes the next complete line that is not an event off the input, decoded, or
 * NULL when there is none yet.
 */
static json_t *next_response(void)
{
    char *nl;

    while ((nl = memchr(w.resp, '\n', w.resp_len)) != NULL) {
        size_t len = (size_t)(nl - w.resp);
        json_error_t jerr;
        json_t *line = json_loadb(w.resp, len, JSON_REJECT_DUPLICATES, &jerr);

        check(line != NULL, "a line from the daemon that is not JSON");
        memmove(w.resp, nl + 1, w.resp_len - len - 1);
        w.resp_len -= len + 1;
        if (json_object_get(line, "event") != NULL && json_object_get(line, "ok") == NULL) {
            w.events++;
            json_decref(line);
            continue;
        }
        return line;
    }
    return NULL;
}

/* Runs the loop until a response line or the daemon's hang-up; NULL on hang-up. */
static json_t *await_response(void)
{
    json_t *r = NULL;
    uint64_t deadline;

    uv_update_time(&w.loop);
    deadline = uv_now(&w.loop) + LOOP_MS;
    (void)uv_timer_start(&w.failsafe, failsafe_cb, LOOP_MS, 0);
    for (;;) {
        client_read();
        r = next_response();
        if (r != NULL || w.eof)
            break;
        check(w.resp_len < RESP_MAX, "a response line over 4 MiB");
        check(uv_now(&w.loop) < deadline, "no response and no hang-up");
        (void)uv_run(&w.loop, UV_RUN_ONCE);
    }
    (void)uv_timer_stop(&w.failsafe);
    return r;
}

static void setup(void)
{
    check(uv_loop_init(&w.loop) == 0, "loop");
    check(uv_timer_init(&w.loop, &w.failsafe) == 0, "timer");
    check(uv_timer_init(&w.loop, &w.later_timer) == 0, "timer");
    w.resp = malloc(RESP_MAX);
    check(w.resp != NULL, "malloc");
    open_control();
    w.ready = true;
}

static bool known(const char *name)
{
    static const char *const names[] = {"watch", "unwatch", "help", "echo", "now", "later"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* The response r (decoded) to the request line (len bytes). */
static void check_response(const json_t *r, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;
    const json_t *ok = json_object_get(r, "ok");
    const char *cmd = json_string_value(json_object_get(req, "cmd"));

    check(json_is_object(r) && json_is_boolean(ok), "a response without a boolean \"ok\"");
    check(json_object_get(r, "id") != NULL, "a response without \"id\"");
    check(json_equal(json_object_get(r, "id"), id != NULL ? id : json_null()),
          "a response whose id is not the request's");
    if (json_is_false(ok)) {
        check(json_is_string(json_object_get(r, "error")), "an error without a text");
    } else {
        check(json_object_get(r, "result") != NULL, "a success without a result");
        check(req != NULL, "a line that is not JSON answered ok");
        check(cmd != NULL && known(cmd), "an unknown command answered ok");
        if (strcmp(cmd, "echo") == 0) {
            json_t *args = json_object_get(req, "args"), *opts = json_object_get(req, "opts");
            json_t *want =
                json_pack("{s:o,s:o}", "args", args != NULL ? json_incref(args) : json_array(),
                          "opts", opts != NULL ? json_incref(opts) : json_object());
            check(json_equal(json_object_get(r, "result"), want), "echo answered wrong");
            json_decref(want);
        }
    }
    json_decref(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    const char *nl = memchr(data, '\n', size);
    size_t len = nl != NULL ? (size_t)(nl - line) : size, eff = len;
    char *out;
    json_t *r;

    if (!w.ready)
        setup();
    if (eff > 0 && line[eff - 1] == '\r')
        eff--;
    if (eff == 0)
        return 0; /* no request: the daemon answers nothing */
    out = malloc(len + 1);
    check(out != NULL, "malloc");
    memcpy(out, line, len);
    out[len] = '\n';
    for (size_t k = 0; k < len + 1;) {
        ssize_t n = send(w.fd, out + k, len + 1 - k, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)uv_run(&w.loop, UV_RUN_NOWAIT); /* a long line: let the daemon read */
            client_read();
            continue;
        }
        if (n < 0) {
            reopen_control(); /* hung up on us: no answer to wait for */
            free(out);
            return 0;
        }
        k += (size_t)n;
    }
    free(out);
    r = await_response();
    if (r == NULL) {
        reopen_control(); /* the daemon hung up: allowed; a new connection for the next */
        return 0;
    }
    check_response(r, line, eff);
    json_decref(r);
    control_publish(w.ctl, json_pack("{s:s,s:i}", "event", "tick", "seq", (json_int_t)++w.seq));
    return 0;
}
