/*
 * node_db.c: identity and saved peers in sqlite (node_db.h).
 *
 * Design.  Plain prepared statements on the daemon's connection, outside the bindings
 * batch (these writes are rare: once at first start, and the peer list every 30 s).
 * The secret key is read back and checked (ovl_identity_from_secret) so a damaged row
 * is refused loudly instead of giving the node a new identity behind the user's back.
 */
#include "node_db.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "p2p/errmsg.h"

static const char schema[] = "CREATE TABLE IF NOT EXISTS node_identity ("
                             " k INTEGER PRIMARY KEY CHECK (k = 1),"
                             " ed_sk BLOB NOT NULL,"
                             " created_ms INTEGER NOT NULL);"
                             "CREATE TABLE IF NOT EXISTS node_peer ("
                             " id BLOB PRIMARY KEY,"
                             " addr BLOB NOT NULL,"
                             " seen_ms INTEGER NOT NULL) WITHOUT ROWID;";

static int ensure_schema(sqlite3 *db, char *err, size_t errlen)
{
    if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        p2p_errf(err, errlen, "node tables: %s", sqlite3_errmsg(db));
        return -EIO;
    }
    return 0;
}

int node_db_identity(sqlite3 *db, struct ovl_identity *out, bool *created, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct ovl_identity id;
    int rc = ensure_schema(db, err, errlen);

    if (rc != 0)
        return rc;
    if (sqlite3_prepare_v2(db, "SELECT ed_sk FROM node_identity WHERE k = 1", -1, &st, NULL) !=
        SQLITE_OK) {
        p2p_errf(err, errlen, "node identity: %s", sqlite3_errmsg(db));
        return -EIO;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(st, 0);
        int len = sqlite3_column_bytes(st, 0);
        if (blob == NULL || len != (int)sizeof(id.ed_sk) ||
            ovl_identity_from_secret(&id, blob) != 0) {
            sqlite3_finalize(st);
            p2p_errf(err, errlen,
                     "node identity: the stored key is damaged (refusing to "
                     "replace it; move p2psip.db away to start as a new node)");
            return -EINVAL;
        }
        sqlite3_finalize(st);
        *out = id;
        sodium_memzero(&id, sizeof(id));
        *created = false;
        return 0;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        p2p_errf(err, errlen, "node identity: %s", sqlite3_errmsg(db));
        return -EIO;
    }
    if (ovl_identity_generate(&id) != 0) {
        p2p_errf(err, errlen, "node identity: cannot generate a key");
        return -EIO;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO node_identity (k, ed_sk, created_ms)"
                           " VALUES (1, ?1, strftime('%s','now') * 1000)",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_blob(st, 1, id.ed_sk, sizeof(id.ed_sk), SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        p2p_errf(err, errlen, "node identity: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        ovl_identity_wipe(&id);
        return -EIO;
    }
    sqlite3_finalize(st);
    *out = id;
    ovl_identity_wipe(&id);
    *created = true;
    return 0;
}

int node_db_save_peers(sqlite3 *db, const struct dht_peer *peers, size_t n, uint64_t wall_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (ensure_schema(db, NULL, 0) != 0)
        return -EIO;
    if (sqlite3_exec(db, "SAVEPOINT node_peers; DELETE FROM node_peer;", NULL, NULL, NULL) !=
        SQLITE_OK)
        return -EIO;
    if (sqlite3_prepare_v2(
            db, "INSERT OR REPLACE INTO node_peer (id, addr, seen_ms) VALUES (?1, ?2, ?3)", -1, &st,
            NULL) != SQLITE_OK)
        rc = -EIO;
    for (size_t i = 0; rc == 0 && i < n && i < NODE_DB_PEERS_MAX; i++) {
        sqlite3_reset(st);
        if (sqlite3_bind_blob(st, 1, peers[i].id.b, DHT_ID_LEN, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_blob(st, 2, peers[i].addr.b, peers[i].addr.len, SQLITE_STATIC) !=
                SQLITE_OK ||
            sqlite3_bind_int64(st, 3, (sqlite3_int64)wall_ms) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
            rc = -EIO;
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(db,
                     rc == 0 ? "RELEASE node_peers" : "ROLLBACK TO node_peers; RELEASE node_peers",
                     NULL, NULL, NULL) != SQLITE_OK)
        rc = -EIO;
    return rc;
}

int node_db_load_peers(sqlite3 *db, struct dht_peer *out, size_t max)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc;

    if (ensure_schema(db, NULL, 0) != 0)
        return -EIO;
    if (sqlite3_prepare_v2(db, "SELECT id, addr FROM node_peer ORDER BY seen_ms DESC", -1, &st,
                           NULL) != SQLITE_OK)
        return -EIO;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *id = sqlite3_column_blob(st, 0);
        const void *addr = sqlite3_column_blob(st, 1);
        int idlen = sqlite3_column_bytes(st, 0), alen = sqlite3_column_bytes(st, 1);
        if (id == NULL || addr == NULL || idlen != DHT_ID_LEN || alen <= 0 || alen > DHT_ADDR_MAX)
            continue; /* a damaged row is skipped: it is only a hint */
        memcpy(out[n].id.b, id, DHT_ID_LEN);
        out[n].addr.len = (uint8_t)alen;
        memcpy(out[n].addr.b, addr, (size_t)alen);
        n++;
    }
    sqlite3_finalize(st);
    return (int)n;
}
