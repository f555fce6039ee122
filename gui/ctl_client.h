/*
 * ctl_client.h: one daemon's control socket (docs/CONTROL.md) on the GLib main loop.
 *
 * A gui_ctl connects to a Unix socket path with GIO (GSocketClient), reads
 * newline-delimited JSON asynchronously and tells its owner, through callbacks on
 * the main loop, about the connection going up or down, each answer (matched to its
 * request by id) and each watch event.  When the connection fails or breaks it
 * tries again after a back-off (100 ms doubling to 5 s, reset by a success), until
 * it is freed.  Bounds: an answer or event line of GUI_CTL_LINE_MAX bytes, at most
 * GUI_CTL_PENDING requests waiting for answers and GUI_CTL_OUTQ_MAX bytes of
 * requests not yet written; a line over the cap breaks the connection (and the
 * back-off applies).  All GIO errors end in the down callback, never an abort.
 */
#ifndef P2P_GUI_CTL_CLIENT_H
#define P2P_GUI_CTL_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

/* The daemon's cap on one answer (16 MiB, docs/CONTROL.md) plus the envelope: any
 * answer a daemon sends fits. */
#define GUI_CTL_LINE_MAX ((16u << 20) + 65536)
#define GUI_CTL_PENDING 64
#define GUI_CTL_OUTQ_MAX (256u << 10)
#define GUI_CTL_ARG_MAX 128

struct gui_ctl;

struct gui_ctl_ops {
    /* The connection came up (up) or went down / failed to connect (why says why). */
    void (*state_cb)(struct gui_ctl *c, bool up, const char *why, void *arg);
    /* The answer to a request: ok with result, or !ok with error (a string). cmd and
     * arg1 are the request's (arg1 "" when it had none). Borrowed for the call. */
    void (*answer_cb)(struct gui_ctl *c, const char *cmd, const char *arg1, bool ok,
                      const json_t *result, void *arg);
    /* A watch event (an object with an "event" member), borrowed for the call. */
    void (*event_cb)(struct gui_ctl *c, const json_t *ev, void *arg);
};

/* A client for the socket at path; it starts connecting on the next main loop
 * iteration (no callback runs from inside this call). -ENOMEM, -ENAMETOOLONG. */
int gui_ctl_new(struct gui_ctl **out, const char *path, const struct gui_ctl_ops *ops, void *arg);
/* Closes the connection and cancels everything; no callback runs after it returns.
 * gui_ctl_free(NULL) is a no-op. */
void gui_ctl_free(struct gui_ctl *c);

/* Sends {"id": N, "cmd": cmd, "args": [arg1]} (no args when arg1 is NULL).
 * -ENOTCONN when the connection is not up, -EAGAIN when GUI_CTL_PENDING requests
 * wait or the write queue is full, -E2BIG when arg1 is too long. */
int gui_ctl_request(struct gui_ctl *c, const char *cmd, const char *arg1);

const char *gui_ctl_path(const struct gui_ctl *c);
bool gui_ctl_is_up(const struct gui_ctl *c);
/* How many requests wait for their answers. */
unsigned gui_ctl_pending(const struct gui_ctl *c);

#endif
