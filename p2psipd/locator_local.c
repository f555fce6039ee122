/*
 * locator_local.c: the node's locator: local bindings, persisted to sqlite with one
 * commit per loop turn, completions on the next loop turn.
 *
 * Design.  publish() applies the changes to the database at once (inside the open
 * batch, all or nothing) and queues its callback in a fixed ring with the write's
 * status; lookups go to sip/'s local locator, which answers from the registrar.  The
 * idle callback is the only place where callbacks run: it commits the batch, then
 * completes the publishes that were queued before it started (each gets its write
 * error, else the commit's), then lets the local locator answer its lookups.
 *
 * Invariants.  ring[head .. head+count) are waiting publishes in arrival order,
 * count <= cap.  The idle handle is active iff something waits (a publish, a lookup
 * or an uncommitted write) and the locator is not closing.  Wall-clock expiries are
 * the registrar's loop-clock expiries shifted by (wall now - loop now).
 */
#include "locator_local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bindings_db.h"
#include "p2p/clock.h"
#include "p2p/dht_store.h"
#include "p2p/sip_registrar.h"

struct pending_publish {
    sip_locator_publish_cb cb;
    void *arg;
    int status; /* the database write's result */
};

struct locator_local {
    uv_loop_t *loop;
    struct p2p_log *log;
    struct bindings_db *db;
    struct sip_locator_local *lookups;
    uv_idle_t idle;
    struct pending_publish *ring;
    size_t cap, head, count;
    bool closing;
    struct dht_store *store; /* flushed after each bindings commit, may be NULL */
    struct locator_local_stats stats;
};

/* Wall-clock milliseconds minus the loop's clock: add it to a loop-clock time. */
static int64_t wall_offset_ms(const struct locator_local *loc)
{
    return (int64_t)p2p_wall_ms() - (int64_t)uv_now(loc->loop);
}

static bool has_work(const struct locator_local *loc)
{
    return loc->count > 0 || bindings_db_pending(loc->db) ||
           sip_locator_local_pending(loc->lookups) > 0 ||
           (loc->store != NULL && dht_store_pending(loc->store) > 0);
}

static void on_idle(uv_idle_t *h);

static void arm(struct locator_local *loc)
{
    if (!loc->closing && !uv_is_active((uv_handle_t *)&loc->idle))
        (void)uv_idle_start(&loc->idle, on_idle); /* cannot fail on an initialised handle */
}

/* Commits the batch and completes the first n waiting publishes. */
static void complete(struct locator_local *loc, size_t n)
{
    int rc = bindings_db_commit(loc->db);

    if (rc != 0)
        p2p_err(loc->log, "bindings database: commit failed; %zu REGISTERs get 503", n);
    else
        loc->stats.commits = bindings_db_commits(loc->db);
    /* The DHT store after the bindings batch, never inside it. */
    if (loc->store != NULL && dht_store_pending(loc->store) > 0 && dht_store_flush(loc->store) != 0)
        p2p_warn(loc->log, "DHT store: flush failed; the changes stay pending");
    while (n-- > 0) {
        struct pending_publish p = loc->ring[loc->head];
        loc->head = (loc->head + 1) % loc->cap;
        loc->count--;
        int status = p.status != 0 ? p.status : rc;
        loc->stats.publishes++;
        if (status != 0)
            loc->stats.publish_errors++;
        p.cb(status, p.arg);
    }
}

static void on_idle(uv_idle_t *h)
{
    struct locator_local *loc = h->data;

    /* Only what was queued before this turn; callbacks may queue more. */
    complete(loc, loc->count);
    (void)sip_locator_local_run(loc->lookups, uv_now(loc->loop));
    if (!has_work(loc))
        uv_idle_stop(&loc->idle);
}

static int op_lookup(void *ctx, const char *aor, sip_locator_lookup_cb cb, void *arg)
{
    struct locator_local *loc = ctx;
    struct sip_locator inner = sip_locator_local_get(loc->lookups);
    int rc;

    if (loc->closing)
        return -ECANCELED;
    rc = inner.ops->lookup(inner.ctx, aor, cb, arg);
    if (rc == 0)
        arm(loc);
    return rc;
}

static int op_publish(void *ctx, const struct sip_binding_change *changes, size_t n,
                      sip_locator_publish_cb cb, void *arg)
{
    struct locator_local *loc = ctx;
    struct pending_publish *p;

    if (loc->closing)
        return -ECANCELED;
    if (n == 0 || n > SIP_PUBLISH_MAX || cb == NULL)
        return -EINVAL;
    if (loc->count == loc->cap)
        return -EAGAIN;
    p = &loc->ring[(loc->head + loc->count) % loc->cap];
    p->cb = cb;
    p->arg = arg;
    p->status = bindings_db_apply(loc->db, changes, n, wall_offset_ms(loc));
    if (p->status != 0)
        p2p_err(loc->log, "bindings database: cannot store the bindings of %s",
                changes[0].binding->aor);
    loc->count++;
    arm(loc);
    return 0;
}

static const struct sip_locator_ops ops = {
    .lookup = op_lookup,
    .publish = op_publish,
};

int locator_local_new(struct locator_local **out, uv_loop_t *loop, struct bindings_db *db,
                      size_t max_pending, struct p2p_log *log)
{
    struct locator_local *loc;
    int rc;

    if (max_pending == 0)
        return -EINVAL;
    loc = calloc(1, sizeof(*loc));
    if (loc == NULL)
        return -ENOMEM;
    loc->ring = calloc(max_pending, sizeof(loc->ring[0]));
    if (loc->ring == NULL) {
        free(loc);
        return -ENOMEM;
    }
    rc = sip_locator_local_new(&loc->lookups, max_pending);
    if (rc != 0) {
        free(loc->ring);
        free(loc);
        return rc;
    }
    rc = uv_idle_init(loop, &loc->idle);
    if (rc != 0) {
        sip_locator_local_free(loc->lookups);
        free(loc->ring);
        free(loc);
        return rc;
    }
    loc->idle.data = loc;
    loc->loop = loop;
    loc->log = log;
    loc->db = db;
    loc->cap = max_pending;
    *out = loc;
    return 0;
}

void locator_local_attach(struct locator_local *loc, struct sip_registrar *reg)
{
    sip_locator_local_attach(loc->lookups, reg);
}

struct sip_locator locator_local_get(struct locator_local *loc)
{
    struct sip_locator l = {&ops, loc};
    return l;
}

void locator_local_expired(struct locator_local *loc, const struct sip_binding *b)
{
    if (bindings_db_delete(loc->db, b->aor, b->contact) != 0)
        p2p_warn(loc->log, "bindings database: cannot delete expired %s -> %s", b->aor, b->contact);
    loc->stats.expired++;
    arm(loc);
}

void locator_local_set_store(struct locator_local *loc, struct dht_store *store)
{
    loc->store = store;
}

void locator_local_kick(struct locator_local *loc)
{
    if (loc->store != NULL && dht_store_pending(loc->store) > 0)
        arm(loc);
}

void locator_local_stats(const struct locator_local *loc, struct locator_local_stats *out)
{
    *out = loc->stats;
}

static void on_idle_closed(uv_handle_t *h)
{
    struct locator_local *loc = h->data;

    free(loc->ring);
    free(loc);
}

void locator_local_close(struct locator_local *loc)
{
    if (loc == NULL)
        return;
    /* Publishes already written complete with the commit's result: a binding on disk
     * is one the registrar holds too.  Lookups are cancelled.  Closing first, so that
     * a callback cannot start a new operation. */
    loc->closing = true;
    complete(loc, loc->count);
    sip_locator_local_free(loc->lookups);
    loc->lookups = NULL;
    uv_close((uv_handle_t *)&loc->idle, on_idle_closed);
}
