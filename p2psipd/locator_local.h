/*
 * locator_local.h: the node's locator (sip_locator.h): local bindings, persisted.
 *
 * Lookups are answered from the registrar's bindings through sip/'s local locator.
 * Publishes are written to the bindings database (bindings_db.h) at once, inside the
 * loop turn's batch, and complete on the next loop turn, after that batch is
 * committed: the registrar's 200 goes out only once the binding is on disk, and a
 * failed commit gives the phone a 503 instead of a silent 200.  The DHT comes later,
 * behind the same ops.
 *
 * One uv_idle_t drives everything: it is started whenever an operation or a database
 * write is pending, so the loop does not block in poll while work waits, and stopped
 * when nothing is left.  Its callback commits the batch, then completes the publishes
 * queued before it (those queued by their callbacks wait one more turn), then runs the
 * local lookups.
 */
#ifndef P2PSIPD_LOCATOR_LOCAL_H
#define P2PSIPD_LOCATOR_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "p2p/log.h"
#include "p2p/sip_locator.h"

struct bindings_db;
struct dht_store;
struct sip_registrar;
struct locator_local;

/*
 * Creates the locator on loop, writing to db (not owned; must outlive it).  At most
 * max_pending publishes (and as many lookups) wait at once; beyond, ops fail with
 * -EAGAIN.  Returns 0, -ENOMEM or a libuv error.
 */
int locator_local_new(struct locator_local **out, uv_loop_t *loop, struct bindings_db *db,
                      size_t max_pending, struct p2p_log *log);

/* Sets the registrar whose bindings lookups return (created after the locator). */
void locator_local_attach(struct locator_local *loc, struct sip_registrar *reg);

/* The ops struct to give to the registrar and the proxy. */
struct sip_locator locator_local_get(struct locator_local *loc);

/*
 * A binding expired in the registrar (its expired callback): deletes it from the
 * database in the current batch.
 */
void locator_local_expired(struct locator_local *loc, const struct sip_binding *b);

/*
 * Shuts down: commits the batch, completes the waiting publishes with its result and
 * the waiting lookups with -ECANCELED (all callbacks run inside this call, which is
 * the shutdown exception of sip_locator.h), closes the idle handle and frees the
 * locator when libuv has closed it.  No operation may be started afterwards.
 */
void locator_local_close(struct locator_local *loc);

/*
 * Makes the locator the node's one commit owner for the DHT store too: once per loop
 * turn it commits the bindings batch, then flushes the store's pending records (two
 * transactions, never nested, so the store never meets -EBUSY).  store may be NULL.
 */
void locator_local_set_store(struct locator_local *loc, struct dht_store *store);

/* Arms the per-turn commit when the DHT store has changes waiting (call once a turn). */
void locator_local_kick(struct locator_local *loc);

/* Numbers for logs and tests. */
struct locator_local_stats {
    uint64_t publishes;      /* completed */
    uint64_t publish_errors; /* completed with an error */
    uint64_t commits;        /* database commits */
    uint64_t expired;        /* deletions of expired bindings */
};

void locator_local_stats(const struct locator_local *loc, struct locator_local_stats *out);

#endif
