/*
 * control.h: the daemon's control socket (p2psipctl, the GUI, scripts).
 *
 * A Unix-domain stream socket, created mode 0600, on the daemon's libuv loop.  The
 * protocol is newline-delimited JSON (docs/CONTROL.md): a client writes one request
 * per line,
 *     {"id": <any JSON>, "cmd": "status", "args": ["..."], "opts": {...}}
 * and gets one response line per request,
 *     {"id": <the same>, "ok": true, "result": <JSON>}
 *     {"id": <the same>, "ok": false, "error": "<text>"}
 * A client that sends "watch" also gets event lines, {"event": "<name>", ...}, as the
 * daemon publishes them.
 *
 * Design.  control.c knows no command but the built-in "watch", "unwatch" and
 * "help": the daemon (and later the overlay glue) registers each command with its
 * handler.  A synchronous handler returns its result at once; an asynchronous one
 * (a DHT get needs round trips) receives a struct control_req and completes it later
 * with control_reply() or control_reply_error(), exactly once.  A request whose client
 * has gone (hung up, or the control socket closed) is "dead": its completion frees it
 * quietly, so a handler never needs to know about clients and a completion can never
 * touch a freed one.  Responses to pipelined requests may come back in another order
 * than the requests (an async one finishes later); "id" tells them apart.
 *
 * Invariants (all caps enforced before the data is complete: peer input is never
 * trusted).  A request line is at most CONTROL_LINE_MAX bytes: a longer one gets an
 * error response and the connection is closed.  At most CONTROL_CLIENTS_MAX clients
 * are connected; one more is told so and closed.  A client with CONTROL_PENDING_MAX
 * async requests in progress, or with CONTROL_OUT_BYTES_MAX bytes of responses it has
 * not read, is not read from until that drains (backpressure, not an error).  A
 * subscriber's queue is capped at CONTROL_WATCH_LINES_MAX lines and
 * CONTROL_WATCH_BYTES_MAX bytes: events beyond it are dropped and counted, and the
 * next line it receives is {"event":"lost","count":N}.  Nothing a client does (or
 * fails to do) can block the loop or make memory grow without bound.  One loop
 * thread; no global state.
 */
#ifndef P2PSIPD_CONTROL_H
#define P2PSIPD_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "p2p/log.h"

#define CONTROL_LINE_MAX 65536               /* one request line, without its newline */
#define CONTROL_CLIENTS_MAX 32               /* connected clients */
#define CONTROL_PENDING_MAX 64               /* async requests in progress, per client */
#define CONTROL_OUT_BYTES_MAX (1u << 20)     /* unread responses before a client is paused */
#define CONTROL_WATCH_LINES_MAX 1024         /* a subscriber's queue, lines */
#define CONTROL_WATCH_BYTES_MAX (256u << 10) /* a subscriber's queue, bytes */
#define CONTROL_RESULT_MAX (16u << 20)       /* one encoded response line */
#define CONTROL_ARGS_MAX 64                  /* elements of "args" */
#define CONTROL_CMD_NAME_MAX 32              /* a command name, with its NUL */
#define CONTROL_CMDS_MAX 64                  /* registered commands */
#define CONTROL_ERR_MAX 512                  /* an error text, with its NUL */

struct control;
struct control_req;

/*
 * A synchronous command.  args is an array of strings and opts an object, both
 * borrowed (never NULL: empty when the request had none).  Returns the result, a new
 * reference the control socket takes over (any JSON value, json_null() included), or
 * NULL after writing the reason into err (errlen bytes, CONTROL_ERR_MAX); an empty
 * err becomes "internal error".  Runs on the loop thread and must not block.
 */
typedef json_t *(*control_cmd_fn)(const json_t *args, const json_t *opts, char *err, size_t errlen,
                                  void *arg);

/*
 * An asynchronous command.  The handler owns req from now on and must complete it
 * exactly once, now or later, with control_reply() or control_reply_error(); args and
 * opts are borrowed for the duration of the call only (json_incref what is kept).
 */
typedef void (*control_async_fn)(struct control_req *req, const json_t *args, const json_t *opts,
                                 void *arg);

typedef void (*control_close_cb)(void *arg);

/* Counters and queue sizes, for tests and for the "counters" command. */
struct control_stats {
    size_t clients;          /* connected now */
    size_t subscribers;      /* of which watching */
    size_t pending;          /* async requests in progress, live clients only */
    size_t queue_lines_max;  /* the longest output queue now, lines */
    size_t queue_bytes_max;  /* the largest output queue now, bytes */
    uint64_t accepted;       /* connections accepted */
    uint64_t refused;        /* connections refused: CONTROL_CLIENTS_MAX reached */
    uint64_t requests;       /* request lines handled */
    uint64_t errors;         /* of which answered ok = false */
    uint64_t events;         /* events published (to at least one subscriber) */
    uint64_t events_dropped; /* event lines dropped for full subscriber queues */
};

/*
 * Creates the control socket at path and starts listening on loop.  The socket is
 * bound with mode 0600 (set before listen(), so no other user can ever connect).
 * When path exists: a live socket (a connect succeeds: another daemon answers) is
 * refused with -EADDRINUSE, a stale one (connection refused) is unlinked and
 * replaced, anything that is not a socket is refused with -EEXIST; a path too long
 * for sockaddr_un is -ENAMETOOLONG.  log may be NULL.  Returns 0 and *out, or a
 * negative errno with the reason in err (errlen bytes; always NUL-terminated when
 * errlen > 0), and then nothing is left on the loop (except if libuv refuses the
 * ready socket, never seen: then a closing handle frees itself on the next turn).
 */
int control_new(struct control **out, uv_loop_t *loop, const char *path, struct p2p_log *log,
                char *err, size_t errlen);

/*
 * Registers a synchronous command (see control_cmd_fn).  cmd is a name of 1 to
 * CONTROL_CMD_NAME_MAX - 1 characters from [a-z0-9_-] (copied); help is the one line
 * the built-in "help" command shows for it, not copied: it must outlive c (normally a
 * string literal).  fn is called with arg.  Returns 0, -EEXIST when cmd is registered
 * already (built-ins included), -EINVAL for a bad name or a NULL fn, -ENOSPC past
 * CONTROL_CMDS_MAX.
 */
int control_register(struct control *c, const char *cmd, const char *help, control_cmd_fn fn,
                     void *arg);

/* The same for an asynchronous command (see control_async_fn). */
int control_register_async(struct control *c, const char *cmd, const char *help,
                           control_async_fn fn, void *arg);

/*
 * Completes req with "ok": true and result (a reference stolen; NULL is taken as
 * JSON null) and frees req.  If the client is gone the result is dropped quietly.
 * A result that cannot be encoded, or encodes to more than CONTROL_RESULT_MAX bytes,
 * is answered as an error instead.  Never calls back into the handler.
 */
void control_reply(struct control_req *req, json_t *result);

/* Completes req with "ok": false and the printf-formatted error text; frees req. */
void control_reply_error(struct control_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * False once req's client has gone: the handler may then skip its work (it must still
 * complete req, which frees it).
 */
bool control_req_alive(const struct control_req *req);

/*
 * Queues event (a reference stolen; a JSON object, by convention with an "event"
 * member naming it) as one line to every subscriber.  A subscriber whose queue is
 * full loses it (counted; it is told with a "lost" line).  Never blocks, never fails
 * the caller; an event that cannot be encoded or is over CONTROL_WATCH_BYTES_MAX is
 * dropped and logged.
 */
void control_publish(struct control *c, json_t *event);

/* True when at least one client is watching: lets a publisher skip building events. */
bool control_watched(const struct control *c);

/* Fills *out with the current counters. */
void control_stats(const struct control *c, struct control_stats *out);

/* The socket path, as given to control_new(). */
const char *control_path(const struct control *c);

/*
 * Closes the listening socket and every client, unlinks the socket file (if it is
 * still ours: same inode), and marks every pending async request dead (its completion
 * will free it).  Output not yet written is discarded.  cb (may be NULL) runs with
 * arg once every handle is closed, never from inside this call; c is freed then.
 * After this call c must not be used.
 */
void control_close(struct control *c, control_close_cb cb, void *arg);

#endif
