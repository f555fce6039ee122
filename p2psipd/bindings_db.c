/*
 * bindings_db.c: local bindings in sqlite (WAL), written in one transaction per batch.
 *
 * Design.  Three prepared statements (upsert, delete, load) are made once at open.
 * A write starts a transaction when none is open ("BEGIN IMMEDIATE": the write lock
 * is taken at once, so a commit cannot fail with SQLITE_BUSY half-way through a
 * batch); bindings_db_commit() ends it.  The daemon calls commit from a uv_idle
 * callback, so every write of one loop turn lands in one transaction, and the
 * registrar's 200 goes out only after that commit (locator_local.c).
 *
 * Invariants.  Every text column is bound with its length and read back into the
 * fixed-size fields of struct sip_binding with truncation refused (a row that does
 * not fit is skipped: it cannot come from us).  The schema version is
 * PRAGMA user_version (the DHT store keeps its own version in its own table).
 */
#include "bindings_db.h"

#include "p2p/errmsg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

struct bindings_db {
    sqlite3 *db;
    sqlite3_stmt *put, *del, *load;
    bool in_batch;
    uint64_t commits;
};

static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS binding ("
    " aor TEXT NOT NULL,"
    " contact TEXT NOT NULL,"
    " expires_ms INTEGER NOT NULL," /* wall clock, ms since the epoch */
    " q INTEGER NOT NULL,"
    " call_id TEXT NOT NULL,"
    " cseq INTEGER NOT NULL,"
    " path_host TEXT NOT NULL,"
    " path_port INTEGER NOT NULL,"
    " path_transport TEXT NOT NULL,"
    " instance TEXT NOT NULL,"
    " PRIMARY KEY (aor, contact)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS binding_expires ON binding (expires_ms);"
    "PRAGMA user_version = 1;";

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st;
    int rc = -EIO;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int bindings_db_open(struct bindings_db **out, const char *path, char *err, size_t errlen)
{
    struct bindings_db *b;
    int version = 0, rc = -EIO;

    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    if (sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        p2p_errf(err, errlen, "%s: %s", path, b->db ? sqlite3_errmsg(b->db) : "out of memory");
        goto fail;
    }
    /* Another connection (the DHT store, the sqlite3 CLI) may hold the write lock for
     * a moment; wait a little, but never stall the loop long: past this a write
     * fails and the REGISTER gets 503. */
    sqlite3_busy_timeout(b->db, 200);
    /* The bindings are served from memory (the registrar); the file is written
     * and read back at start only, so its page cache is bounded (512 KiB instead
     * of sqlite's 2 MiB default, which grew with every binding). */
    if (exec(b->db, "PRAGMA journal_mode=WAL") != 0 ||
        exec(b->db, "PRAGMA synchronous=NORMAL") != 0 ||
        exec(b->db, "PRAGMA cache_size=-512") != 0 || user_version(b->db, &version) != 0) {
        p2p_errf(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
        goto fail;
    }
    if (version > BINDINGS_DB_SCHEMA) {
        p2p_errf(err, errlen, "%s: schema version %d is newer than this p2psipd's (%d)", path,
                 version, BINDINGS_DB_SCHEMA);
        rc = -EPROTO;
        goto fail;
    }
    if (version < 1 && exec(b->db, schema_v1) != 0) {
        p2p_errf(err, errlen, "%s: creating the schema: %s", path, sqlite3_errmsg(b->db));
        goto fail;
    }
    if (sqlite3_prepare_v2(b->db,
                           "INSERT OR REPLACE INTO binding (aor, contact, expires_ms, q, call_id,"
                           " cseq, path_host, path_port, path_transport, instance)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           -1, &b->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(b->db, "DELETE FROM binding WHERE aor = ?1 AND contact = ?2", -1,
                           &b->del, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(b->db,
                           "SELECT aor, contact, expires_ms, q, call_id, cseq, path_host,"
                           " path_port, path_transport, instance FROM binding"
                           " ORDER BY aor, expires_ms",
                           -1, &b->load, NULL) != SQLITE_OK) {
        p2p_errf(err, errlen, "%s: %s", path, sqlite3_errmsg(b->db));
        goto fail;
    }
    *out = b;
    return 0;
fail:
    sqlite3_finalize(b->put);
    sqlite3_finalize(b->del);
    sqlite3_finalize(b->load);
    sqlite3_close(b->db);
    free(b);
    return rc;
}

void bindings_db_close(struct bindings_db *db)
{
    if (db == NULL)
        return;
    (void)bindings_db_commit(db);
    sqlite3_finalize(db->put);
    sqlite3_finalize(db->del);
    sqlite3_finalize(db->load);
    sqlite3_close(db->db);
    free(db);
}

static int begin(struct bindings_db *db)
{
    if (db->in_batch)
        return 0;
    if (exec(db->db, "BEGIN IMMEDIATE") != 0)
        return -EIO;
    db->in_batch = true;
    return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK ? 0 : -EIO;
}

/* Runs a write statement to completion and resets it; 0 or -EIO. */
static int step_write(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int put(struct bindings_db *db, const struct sip_binding *b, int64_t wall_expires_ms)
{
    sqlite3_stmt *st = db->put;

    if (bind_text(st, 1, b->aor) || bind_text(st, 2, b->contact) ||
        sqlite3_bind_int64(st, 3, wall_expires_ms) != SQLITE_OK ||
        sqlite3_bind_int(st, 4, b->q) != SQLITE_OK || bind_text(st, 5, b->call_id) ||
        sqlite3_bind_int64(st, 6, b->cseq) != SQLITE_OK || bind_text(st, 7, b->path.host) ||
        sqlite3_bind_int(st, 8, b->path.port) != SQLITE_OK || bind_text(st, 9, b->path.transport) ||
        bind_text(st, 10, b->instance)) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return -EIO;
    }
    return step_write(st);
}

static int del(struct bindings_db *db, const char *aor, const char *contact)
{
    if (bind_text(db->del, 1, aor) || bind_text(db->del, 2, contact)) {
        sqlite3_reset(db->del);
        sqlite3_clear_bindings(db->del);
        return -EIO;
    }
    return step_write(db->del);
}

int bindings_db_delete(struct bindings_db *db, const char *aor, const char *contact)
{
    if (begin(db) != 0)
        return -EIO;
    return del(db, aor, contact);
}

int bindings_db_apply(struct bindings_db *db, const struct sip_binding_change *changes, size_t n,
                      int64_t wall_offset_ms)
{
    int rc = 0;

    if (begin(db) != 0 || exec(db->db, "SAVEPOINT publish") != 0)
        return -EIO;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct sip_binding *b = changes[i].binding;
        if (changes[i].remove)
            rc = del(db, b->aor, b->contact);
        else
            rc = put(db, b, (int64_t)b->expires_ms + wall_offset_ms);
    }
    if (rc != 0) {
        /* Undo this publish only; the rest of the batch stays. */
        (void)exec(db->db, "ROLLBACK TO publish");
        (void)exec(db->db, "RELEASE publish");
        return -EIO;
    }
    return exec(db->db, "RELEASE publish");
}

bool bindings_db_pending(const struct bindings_db *db)
{
    return db->in_batch;
}

int bindings_db_commit(struct bindings_db *db)
{
    if (!db->in_batch)
        return 0;
    db->in_batch = false;
    if (exec(db->db, "COMMIT") != 0) {
        (void)exec(db->db, "ROLLBACK");
        return -EIO;
    }
    db->commits++;
    return 0;
}

uint64_t bindings_db_commits(const struct bindings_db *db)
{
    return db->commits;
}

struct sqlite3 *bindings_db_sqlite(struct bindings_db *db)
{
    return db->db;
}

/* Copies text column i into dst; false when it is NULL or does not fit. */
static bool column_copy(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);

    if (s == NULL || n < 0 || (size_t)n >= size)
        return false;
    memcpy(dst, s, (size_t)n);
    dst[n] = '\0';
    return true;
}

int bindings_db_load(struct bindings_db *db, int64_t wall_now_ms, bindings_db_row_cb cb, void *arg,
                     size_t *expired)
{
    sqlite3_stmt *del = NULL;
    struct sip_binding *b;
    int rc = 0, count = 0;

    if (db->in_batch)
        return -EINVAL;
    if (sqlite3_prepare_v2(db->db, "DELETE FROM binding WHERE expires_ms <= ?1", -1, &del, NULL) !=
        SQLITE_OK)
        return -EIO;
    if (sqlite3_bind_int64(del, 1, wall_now_ms) != SQLITE_OK || sqlite3_step(del) != SQLITE_DONE) {
        sqlite3_finalize(del);
        return -EIO;
    }
    if (expired != NULL)
        *expired = (size_t)sqlite3_changes(db->db);
    sqlite3_finalize(del);

    b = malloc(sizeof(*b)); /* about 1.4 KB: kept off the stack */
    if (b == NULL)
        return -ENOMEM;
    for (;;) {
        int step = sqlite3_step(db->load);
        int64_t port, q, cseq;
        if (step == SQLITE_DONE)
            break;
        if (step != SQLITE_ROW) {
            rc = -EIO;
            break;
        }
        memset(b, 0, sizeof(*b));
        q = sqlite3_column_int64(db->load, 3);
        cseq = sqlite3_column_int64(db->load, 5);
        port = sqlite3_column_int64(db->load, 7);
        if (!column_copy(db->load, 0, b->aor, sizeof(b->aor)) ||
            !column_copy(db->load, 1, b->contact, sizeof(b->contact)) ||
            !column_copy(db->load, 4, b->call_id, sizeof(b->call_id)) ||
            !column_copy(db->load, 6, b->path.host, sizeof(b->path.host)) ||
            !column_copy(db->load, 8, b->path.transport, sizeof(b->path.transport)) ||
            !column_copy(db->load, 9, b->instance, sizeof(b->instance)) || q < 0 || q > 1000 ||
            cseq < 0 || cseq > UINT32_MAX || port < 0 || port > 65535)
            continue; /* not a row we wrote: ignore it */
        b->q = (uint16_t)q;
        b->cseq = (uint32_t)cseq;
        b->path.port = (uint16_t)port;
        rc = cb(b, sqlite3_column_int64(db->load, 2), arg);
        if (rc != 0)
            break;
        count++;
    }
    sqlite3_reset(db->load);
    free(b);
    return rc != 0 ? rc : count;
}
