/*
 * control_cmds.c: the daemon's side of the control socket: opening it at start, the
 * node's own commands, closing it at stop.
 *
 * Design.  p2psipd__control_start() runs after the data directory is locked (so the
 * socket in it is ours to replace when stale) and before the SIP and overlay sides
 * start, so that they can register their commands on d->control as they come up.
 * The commands here are synchronous and read only the daemon's counters:
 *   status    node-level facts: version, pid, uptime_s, data_dir, control, sip_port,
 *             reloads, the overlay's (node_id, role, peer_count...: overlay_glue.c)
 *             and the SIP counters under "sip"
 *   counters  every counter: the overlay's at the top level, the SIP ones under "sip"
 *             and the control socket's own under "control" (p2psipd__counters(),
 *             which the Prometheus exposition in metrics.c reads too)
 *   ping      "pong", for scripts and health checks
 *   stop      stops the daemon as SIGTERM does, on the next loop turn (the answer first)
 *
 * Adding a command elsewhere in the daemon (the overlay's are in overlay_glue.c):
 *   static json_t *cmd_x(const json_t *args, const json_t *opts, char *err,
 *                        size_t errlen, void *arg)     // return a new reference,
 *   { ... }                                            // or NULL + text in err
 *   control_register(d->control, "x", "x KEY: what it does", cmd_x, d);
 * and for one that needs round trips, control_register_async() with a handler that
 * keeps its struct control_req and later calls control_reply() or
 * control_reply_error() exactly once (a request whose client left is completed the
 * same way; control_req_alive() says whether anyone still waits).  Events for
 * `p2psipctl watch` go through control_publish(d->control, json_pack("{s:s, ...}",
 * "event", "name", ...)); control_watched() tells whether anyone listens.  The
 * protocol is in docs/CONTROL.md.
 *
 * Invariants.  d->control is NULL before start and after stop; p2psipd__control_stop()
 * comes first in p2psipd_stop(), so no request reaches a part that is closing, and
 * the async requests still pending die (their completions free them).
 */
#include "p2psipd.h"

#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef P2PSIPD_VERSION
#define P2PSIPD_VERSION "unknown"
#endif

/* The node's commands take no arguments: anything given is a mistake worth saying. */
static bool no_args(const char *name, const json_t *args, const json_t *opts, char *err,
                    size_t errlen)
{
    if (json_array_size(args) == 0 && json_object_size(opts) == 0)
        return true;
    snprintf(err, errlen, "usage: %s (no arguments)", name);
    return false;
}

static json_t *sip_counters(const struct p2psipd *d)
{
    const struct p2psipd_sip_stats *s = &d->sip_stats;

    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rx", (json_int_t)s->rx, "tx",
                     (json_int_t)s->tx, "bad_dropped", (json_int_t)s->bad_dropped, "send_errors",
                     (json_int_t)s->send_errors, "restored", (json_int_t)s->restored,
                     "expired_on_load", (json_int_t)s->expired_on_load, "pipe_rx",
                     (json_int_t)s->pipe_rx, "pipe_tx", (json_int_t)s->pipe_tx);
}

/*
 * Builds a command's result: o with the members of part merged in (the overlay's
 * share, which never names ours), then name1 = v1 and name2 = v2 if given.  Every
 * json_t argument is a new reference (NULL allowed) that this takes over; NULL when
 * out of memory.
 */
static json_t *with_parts(json_t *o, json_t *part, const char *name1, json_t *v1, const char *name2,
                          json_t *v2)
{
    bool ok = o != NULL && part != NULL && v1 != NULL && (name2 == NULL || v2 != NULL) &&
              json_object_update(o, part) == 0 && json_object_set(o, name1, v1) == 0 &&
              (name2 == NULL || json_object_set(o, name2, v2) == 0);

    json_decref(part);
    json_decref(v1);
    json_decref(v2);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *cmd_status(const json_t *args, const json_t *opts, char *err, size_t errlen,
                          void *arg)
{
    struct p2psipd *d = arg;
    json_t *o;

    if (!no_args("status", args, opts, err, errlen))
        return NULL;
    o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:I}", "version", P2PSIPD_VERSION, "pid",
                  (json_int_t)getpid(), "uptime_s",
                  (json_int_t)((uv_now(d->loop) - d->start_ms) / 1000), "data_dir",
                  d->conf.data_dir, "control", d->conf.control, "sip_port",
                  (json_int_t)d->conf.sip.port, "reloads", (json_int_t)d->reloads);
    return with_parts(o, p2psipd__overlay_status(d), "sip", sip_counters(d), NULL, NULL);
}

json_t *p2psipd__counters(struct p2psipd *d)
{
    struct control_stats st;

    memset(&st, 0, sizeof(st));
    if (d->control != NULL)
        control_stats(d->control, &st);
    return with_parts(
        json_object(), p2psipd__overlay_counters(d), "sip", sip_counters(d), "control",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "clients",
                  (json_int_t)st.clients, "subscribers", (json_int_t)st.subscribers, "pending",
                  (json_int_t)st.pending, "accepted", (json_int_t)st.accepted, "refused",
                  (json_int_t)st.refused, "requests", (json_int_t)st.requests, "errors",
                  (json_int_t)st.errors, "events", (json_int_t)st.events, "events_dropped",
                  (json_int_t)st.events_dropped));
}

static json_t *cmd_counters(const json_t *args, const json_t *opts, char *err, size_t errlen,
                            void *arg)
{
    if (!no_args("counters", args, opts, err, errlen))
        return NULL;
    return p2psipd__counters(arg);
}

static json_t *cmd_ping(const json_t *args, const json_t *opts, char *err, size_t errlen, void *arg)
{
    (void)arg;
    if (!no_args("ping", args, opts, err, errlen))
        return NULL;
    return json_string("pong");
}

static json_t *cmd_stop(const json_t *args, const json_t *opts, char *err, size_t errlen, void *arg)
{
    struct p2psipd *d = arg;

    if (!no_args("stop", args, opts, err, errlen))
        return NULL;
    p2psipd__stop_soon(d);
    return json_pack("{s:b}", "stopping", true);
}

int p2psipd__control_start(struct p2psipd *d)
{
    char err[CONTROL_ERR_MAX + CONF_PATH_MAX];
    int rc;

    d->start_ms = uv_now(d->loop);
    rc = control_new(&d->control, d->loop, d->conf.control, d->log, err, sizeof(err));
    if (rc != 0) {
        p2p_err(d->log, "%s", err);
        return rc;
    }
    rc = control_register(d->control, "status", "the node: version, uptime, SIP counters",
                          cmd_status, d);
    if (rc == 0)
        rc = control_register(d->control, "counters", "every counter, by part", cmd_counters, d);
    if (rc == 0)
        rc = control_register(d->control, "ping", "answers pong", cmd_ping, d);
    if (rc == 0)
        rc = control_register(d->control, "stop",
                              "stops the daemon, as SIGTERM does (the socket is owner-only)",
                              cmd_stop, d);
    if (rc != 0) {
        /* Only a programming error gets here (a name taken twice). */
        p2p_err(d->log, "control socket: cannot register the node's commands: %s", strerror(-rc));
        p2psipd__control_stop(d);
        return rc;
    }
    p2p_info(d->log, "control socket %s", d->conf.control);
    return 0;
}

void p2psipd__control_stop(struct p2psipd *d)
{
    if (d->control == NULL)
        return;
    /* Watchers learn why their stream ends (best effort: it is written at once when
     * their socket has room, and dropped with the rest otherwise). */
    control_publish(d->control, json_pack("{s:s}", "event", "stopping"));
    control_close(d->control, NULL, NULL);
    d->control = NULL;
}
