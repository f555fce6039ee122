/*
 * bindings_db.h: the durable copy of this node's local bindings, in sqlite.
 *
 * The registrar keeps bindings in memory; this store only makes them survive a
 * restart.  Writes are batched: the first write opens a transaction, and the daemon
 * commits it once per loop turn (bindings_db_commit), so N REGISTERs in one turn
 * cost one commit.  The database is in WAL mode with synchronous=NORMAL: a crash
 * loses at most the last batch, never the database.
 *
 * Times are wall-clock milliseconds since the epoch (the registrar's clock restarts
 * with the process, the database outlives it); the caller converts.
 *
 * Schema (PRAGMA user_version = 1), created on first open:
 *   binding(aor, contact, expires_ms, q, call_id, cseq, path_host, path_port,
 *           path_transport, instance), primary key (aor, contact).
 * A database with a newer user_version is refused (-EPROTO) rather than misread.
 */
#ifndef P2PSIPD_BINDINGS_DB_H
#define P2PSIPD_BINDINGS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/sip_locator.h"

#define BINDINGS_DB_SCHEMA 1

struct bindings_db;

/*
 * Opens (creating if needed) the database at path and its schema.  Returns 0, -EIO
 * with sqlite's message in err, or -EPROTO for a schema newer than ours.
 */
int bindings_db_open(struct bindings_db **out, const char *path, char *err, size_t errlen);

/* Commits an open batch (errors are lost: call bindings_db_commit first), closes. */
void bindings_db_close(struct bindings_db *db);

/*
 * Applies one publish: each change stores or replaces (aor, contact) with the
 * wall-clock expiry b->expires_ms + wall_offset_ms, or deletes it.  All changes or
 * none (an SQL savepoint inside the current batch, opened if none).  Returns 0 or
 * -EIO; the writes are durable only after a successful bindings_db_commit().
 */
int bindings_db_apply(struct bindings_db *db, const struct sip_binding_change *changes, size_t n,
                      int64_t wall_offset_ms);

/* Deletes the binding (aor, contact) in the current batch.  0 or -EIO. */
int bindings_db_delete(struct bindings_db *db, const char *aor, const char *contact);

/* True while a batch is open (writes made, not yet committed). */
bool bindings_db_pending(const struct bindings_db *db);

/*
 * Commits the open batch, if any.  Returns 0, or -EIO after rolling it back (none of
 * its writes is stored).
 */
int bindings_db_commit(struct bindings_db *db);

/* Called by bindings_db_load for each live binding; a non-zero return stops the load. */
typedef int (*bindings_db_row_cb)(const struct sip_binding *b, int64_t wall_expires_ms, void *arg);

/*
 * Deletes the bindings expired at wall_now_ms, then calls cb for each one left
 * (b->expires_ms is left 0 and b->path.conn_id 0: connections do not outlive the
 * process).  Must not be called inside a batch.  Returns the number of rows passed to
 * cb, -EIO, or cb's non-zero return.  *expired (may be NULL) gets the number deleted.
 */
int bindings_db_load(struct bindings_db *db, int64_t wall_now_ms, bindings_db_row_cb cb, void *arg,
                     size_t *expired);

/* Number of commits made (for the log and tests of group commit). */
uint64_t bindings_db_commits(const struct bindings_db *db);

/*
 * The connection itself, for the daemon's other tables (identity, saved peers) and
 * the DHT store (dht_store_attach).  Those write outside the bindings batch: the
 * node's one commit owner (locator_local) commits the batch first, then flushes the
 * DHT store, so the two never meet inside one transaction (-EBUSY).
 */
struct sqlite3 *bindings_db_sqlite(struct bindings_db *db);

#endif
