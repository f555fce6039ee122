/*
 * store_sqlite.c: the durable copy of a record store in sqlite.
 *
 * Schema (version 1), created on first open, all names prefixed dht_ so the file can
 * hold the daemon's tables too:
 *
 *     dht_meta(name TEXT PRIMARY KEY, value INTEGER)     -- 'schema_version' = 1
 *     dht_records(id INTEGER PRIMARY KEY, key BLOB, value_id BLOB,
 *                 keep_until INTEGER, record BLOB)
 *
 * record is the version-1 encoding of dht_record.h (signature included), so a
 * loaded row is verified exactly like a record from the network.  keep_until is the
 * store's unsigned "present until" (a tombstone may outlive its own expiry).  The
 * schema version lives in dht_meta rather than PRAGMA user_version because
 * user_version is one number per file and the daemon may share the file.
 *
 * The table is an append-only log keyed by rowid, not a table keyed by (key,
 * value id): the store keeps each pair's rowid in memory, so replacing a version is
 * "insert at the end, delete the old row by rowid".  Keys are hashes, so a
 * (key, value id) primary key would scatter every batch over the whole B-tree and
 * write one page per row; appends and the deletes of old versions (which arrive
 * roughly in the order they were written, since bindings are refreshed
 * periodically) touch a few pages per batch.  Measured with 100,000 rows in
 * batches of 100: 24 us of CPU per row with the primary key, 1.7 us appending.
 * (key, value id) is therefore not unique in the file; the loader keeps the
 * highest seq of each pair and deletes the rest.
 *
 * Design.  This file only runs statements; store.c decides what to write and when.
 * Writes happen inside dht__sql_begin / dht__sql_commit, which store.c calls once
 * per flush (group commit).  A connection opened here uses WAL and
 * synchronous=NORMAL: a commit is durable against a process crash (kill -9) at once
 * and against power loss at the next checkpoint, and never corrupts the file.
 */
#include "store_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define DHT_SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 200

struct dht__sql {
    sqlite3 *db;
    bool own_db;
    sqlite3_stmt *insert, *del;
};

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* Creates the tables if needed and checks the version, inside a savepoint so that
 * it works whether or not the caller's connection is inside a transaction. */
static int schema_init(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = -EIO;

    if (exec(db, "SAVEPOINT dht_schema") < 0)
        return -EIO;
    if (exec(db, "CREATE TABLE IF NOT EXISTS dht_meta(name TEXT PRIMARY KEY,"
                 " value INTEGER NOT NULL) WITHOUT ROWID;"
                 "CREATE TABLE IF NOT EXISTS dht_records(id INTEGER PRIMARY KEY,"
                 " key BLOB NOT NULL, value_id BLOB NOT NULL, keep_until INTEGER NOT NULL,"
                 " record BLOB NOT NULL);"
                 "INSERT OR IGNORE INTO dht_meta(name, value) VALUES ('schema_version', 1);") < 0)
        goto out;
    if (sqlite3_prepare_v2(db, "SELECT value FROM dht_meta WHERE name = 'schema_version'", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    if (sqlite3_column_int64(st, 0) > DHT_SCHEMA_VERSION) {
        rc = -EPROTO;
        goto out;
    }
    /* Version 1 is the only one so far: future versions migrate here. */
    rc = 0;
out:
    sqlite3_finalize(st);
    if (rc == 0 && exec(db, "RELEASE dht_schema") < 0)
        rc = -EIO;
    if (rc < 0) {
        (void)exec(db, "ROLLBACK TO dht_schema");
        (void)exec(db, "RELEASE dht_schema");
    }
    return rc;
}

static int sql_init(struct dht__sql **out, sqlite3 *db, bool own_db)
{
    struct dht__sql *q;
    int rc;

    rc = schema_init(db);
    if (rc < 0)
        return rc;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    q->db = db;
    q->own_db = own_db;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO dht_records(key, value_id, keep_until, record)"
                           " VALUES (?, ?, ?, ?)",
                           -1, &q->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM dht_records WHERE id = ?", -1, &q->del, NULL) !=
            SQLITE_OK) {
        q->own_db = false; /* the caller closes db on this error path */
        dht__sql_free(q);
        return -EIO;
    }
    *out = q;
    return 0;
}

int dht__sql_open(struct dht__sql **out, const char *path)
{
    sqlite3 *db = NULL;
    int rc = -EIO;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS) != SQLITE_OK)
        goto out;
    /* WAL: readers never block the writer and a crash never corrupts the file;
     * synchronous=NORMAL: no fsync per commit, the group commit's whole point. */
    if (exec(db, "PRAGMA journal_mode=WAL") < 0 || exec(db, "PRAGMA synchronous=NORMAL") < 0)
        goto out;
    rc = sql_init(out, db, true);
out:
    if (rc < 0)
        sqlite3_close(db);
    return rc;
}

int dht__sql_attach(struct dht__sql **out, sqlite3 *db)
{
    return sql_init(out, db, false);
}

void dht__sql_free(struct dht__sql *q)
{
    if (q == NULL)
        return;
    sqlite3_finalize(q->insert);
    sqlite3_finalize(q->del);
    if (q->own_db)
        sqlite3_close(q->db);
    free(q);
}

int dht__sql_load(struct dht__sql *q, dht__sql_row_cb row, void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src;

    if (sqlite3_prepare_v2(q->db,
                           "SELECT id, key, value_id, keep_until, record FROM dht_records"
                           " ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        /* Each column's bytes are read after its pointer, as sqlite requires. */
        sqlite3_int64 id = sqlite3_column_int64(st, 0);
        const uint8_t *key = sqlite3_column_blob(st, 1);
        size_t key_len = (size_t)sqlite3_column_bytes(st, 1);
        const uint8_t *vid = sqlite3_column_blob(st, 2);
        size_t vid_len = (size_t)sqlite3_column_bytes(st, 2);
        sqlite3_int64 keep = sqlite3_column_int64(st, 3);
        const uint8_t *blob = sqlite3_column_blob(st, 4);
        size_t blob_len = (size_t)sqlite3_column_bytes(st, 4);

        rc =
            row(id, key, key_len, vid, vid_len, keep < 0 ? 0 : (uint64_t)keep, blob, blob_len, arg);
        if (rc != 0)
            break;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = -EIO;
    sqlite3_finalize(st);
    return rc;
}

int dht__sql_begin(struct dht__sql *q)
{
    /* Inside the caller's own transaction our commit would not be ours to make. */
    if (!sqlite3_get_autocommit(q->db))
        return -EBUSY;
    /* IMMEDIATE takes the write lock now, so a busy file fails here, not at COMMIT. */
    switch (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) {
    case SQLITE_OK:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    default:
        return -EIO;
    }
}

int dht__sql_insert(struct dht__sql *q, const struct dht__entry *e, int64_t *rowid)
{
    uint8_t blob[DHT_RECORD_ENCODED_MAX];
    struct dht_record rec;
    sqlite3_int64 keep;
    int n, rc = -EIO;

    dht__entry_to_record(e, &rec);
    n = dht_record_encode(&rec, blob, sizeof(blob));
    if (n < 0)
        return n;
    keep = e->keep_until > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)e->keep_until;
    if (sqlite3_bind_blob(q->insert, 1, e->key.b, DHT_ID_LEN, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_blob(q->insert, 2, e->value_id.b, DHT_ID_LEN, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int64(q->insert, 3, keep) == SQLITE_OK &&
        sqlite3_bind_blob(q->insert, 4, blob, n, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(q->insert) == SQLITE_DONE) {
        *rowid = sqlite3_last_insert_rowid(q->db);
        rc = 0;
    }
    sqlite3_reset(q->insert);
    sqlite3_clear_bindings(q->insert);
    return rc;
}

int dht__sql_delete(struct dht__sql *q, int64_t rowid)
{
    int rc = -EIO;

    if (sqlite3_bind_int64(q->del, 1, rowid) == SQLITE_OK && sqlite3_step(q->del) == SQLITE_DONE)
        rc = 0;
    sqlite3_reset(q->del);
    return rc;
}

int dht__sql_delete_all(struct dht__sql *q)
{
    return exec(q->db, "DELETE FROM dht_records");
}

int dht__sql_commit(struct dht__sql *q)
{
    return exec(q->db, "COMMIT");
}

void dht__sql_rollback(struct dht__sql *q)
{
    /* Fails harmlessly when sqlite already rolled back on its own (e.g. SQLITE_FULL). */
    if (!sqlite3_get_autocommit(q->db))
        (void)exec(q->db, "ROLLBACK");
}
