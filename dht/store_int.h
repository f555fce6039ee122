/*
 * store_int.h: internals shared by store.c (rules), store_mem.c (the sorted
 * in-memory index) and store_sqlite.c (the durable copy).  Not a public header.
 *
 * Invariants of the index: v[0..n) is sorted strictly by (key, value_id), with at
 * most one entry per pair; every entry is owned by the index; all present entries
 * under one key have the same owner.
 */
#ifndef P2P_DHT_STORE_INT_H
#define P2P_DHT_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"
#include "p2p/dht_record.h"

struct sqlite3;

/* One stored record, value inline.  keep_until is not signed: it is the store's own
 * "present until" (expiry_ms, or for a tombstone the max with what it replaced). */
struct dht__entry {
    struct dht_id key;
    struct dht_id value_id;
    uint64_t seq;
    uint64_t expiry_ms;
    uint64_t keep_until;
    uint8_t owner[DHT_RECORD_OWNER_LEN];
    uint8_t sig[DHT_RECORD_SIG_LEN];
    uint16_t value_len;
    uint8_t tombstone;
    uint8_t mailbox;
    uint8_t dirty; /* changed since the last flush and listed (sqlite stores only) */
    int64_t rowid; /* sqlite row holding the last flushed version of the pair, 0: none */
    uint8_t value[];
};

struct dht__index {
    struct dht__entry **v;
    size_t n, cap;
};

/* store_mem.c */
void dht__index_free(struct dht__index *idx);
/* First position whose (key, value_id) is >= (key, value_id). */
size_t dht__index_lower_bound(const struct dht__index *idx, const struct dht_id *key,
                              const struct dht_id *value_id);
/* First position whose key is > key. */
size_t dht__index_upper_key(const struct dht__index *idx, const struct dht_id *key);
/* Inserts e at pos (the caller found pos with lower_bound).  0 or -ENOMEM. */
int dht__index_insert_at(struct dht__index *idx, size_t pos, struct dht__entry *e);
/* Removes the entry at pos and returns it (not freed). */
struct dht__entry *dht__index_remove_at(struct dht__index *idx, size_t pos);
/* Keeps entries for which keep(e, arg) is true, in order; frees the others after
 * calling gone(e, arg).  Returns how many were removed.  One pass, no reallocation
 * beyond a final shrink. */
size_t dht__index_filter(struct dht__index *idx, bool (*keep)(const struct dht__entry *, void *),
                         void (*gone)(struct dht__entry *, void *), void *arg);

struct dht__entry *dht__entry_new(const struct dht_record *rec, uint64_t keep_until);
void dht__entry_to_record(const struct dht__entry *e, struct dht_record *out);

/* store_sqlite.c: the durable copy, an append-only table of rows (see there). */
struct dht__sql;
int dht__sql_open(struct dht__sql **out, const char *path);
int dht__sql_attach(struct dht__sql **out, struct sqlite3 *db);
void dht__sql_free(struct dht__sql *q);
/* Calls row() for every stored row in rowid order; key/value_id/blob point into
 * sqlite memory valid during the call only.  A nonzero return from row() stops the
 * scan and is returned. */
typedef int (*dht__sql_row_cb)(int64_t rowid, const uint8_t *key, size_t key_len,
                               const uint8_t *value_id, size_t value_id_len, uint64_t keep_until,
                               const uint8_t *blob, size_t blob_len, void *arg);
int dht__sql_load(struct dht__sql *q, dht__sql_row_cb row, void *arg);
/* One transaction: begin, any number of inserts/deletes, then commit or rollback.
 * begin fails with -EBUSY, changing nothing, when the connection is already inside
 * a transaction or the file is locked. */
int dht__sql_begin(struct dht__sql *q);
int dht__sql_insert(struct dht__sql *q, const struct dht__entry *e, int64_t *rowid);
int dht__sql_delete(struct dht__sql *q, int64_t rowid);
int dht__sql_delete_all(struct dht__sql *q);
int dht__sql_commit(struct dht__sql *q);
void dht__sql_rollback(struct dht__sql *q);

#endif
