/*
 * dht_store.h: the records one DHT node holds, with owner-only writes, expiry,
 * tombstones, anti-entropy summaries and an optional durable sqlite copy.
 *
 * Design.  Every store keeps its records in memory, in one array sorted by
 * (key, value id): lookups by key are a binary search, and a key range is a
 * contiguous run (two runs when it wraps), visited in ring order.  Reads never touch
 * disk.  A store opened on sqlite (WAL, synchronous=NORMAL) also keeps a durable
 * copy: it loads it at open, and notes each change in a bounded pending list that
 * dht_store_flush() writes in one transaction.  The owner calls dht_store_flush() at
 * the end of each event-loop turn (or from a timer of a few ms), so 10,000 puts a
 * second cost one commit per turn, not 10,000.  When the pending list reaches
 * max_pending the store flushes by itself inside the put.  A kill -9 loses at most
 * the changes not yet flushed, never the database.  The in-memory store (for the
 * simulator) is the same code with no durable copy; its flush does nothing.
 *
 * Rules (each one tested in tests/unit/test_dht_store.c).  A record is "present"
 * until its keep-until time: its own expiry_ms, or for a tombstone the larger of its
 * expiry and the expiry of the record it replaced.  Records no longer present are
 * treated as absent everywhere, even before dht_store_expire() frees them.
 *
 *   1. Not well-formed (dht_record_check)                     -> -EINVAL
 *   2. Identical to the stored record (idempotent replay)    -> -EALREADY
 *   3. Signature does not verify                             -> -EBADMSG
 *   4. A put with expiry_ms <= now; a tombstone whose expiry and the replaced
 *      record's keep-until are both <= now                   -> -ETIMEDOUT
 *   5. expiry_ms > now + max_ttl_ms (would claim a key for too long; a mailbox
 *      value: max_mailbox_ttl_ms)                            -> -ERANGE
 *   6. Key claimed by another owner: any present record (value or tombstone) under
 *      the key has a different owner key, or is of the other kind (plain or
 *      mailbox).  Under a mailbox key (dht_record.h) writers may differ, but a
 *      present value is replaced only by its writer, or removed by a tombstone
 *      signed by the mailbox's owner                         -> -EPERM
 *   7. Same (key, value id) present with seq >= the new seq (an older or conflicting
 *      version; a put older than a tombstone included)       -> -ESTALE
 *   8. New value id and the key already has max_values_per_key present records,
 *      or the store holds max_records records, or the value bytes held would
 *      exceed max_value_bytes; a mailbox value when the key holds
 *      max_mailbox_values live values, or the writer max_mailbox_per_writer, or
 *      their bytes would exceed max_mailbox_bytes            -> -ENOSPC
 *   9. Otherwise the record is stored (0): a higher seq replaces the stored version,
 *      a tombstone replaces a value and is kept until the keep-until above.
 *
 * The first valid record under a key thus claims the key for its owner; the claim
 * ends when every record under the key has passed its keep-until.  Get returns only
 * values (never tombstones) whose expiry is in the future.  Every refusal is counted
 * in the stats.
 *
 * Anti-entropy.  A range [low, high] is inclusive and wraps: when low > high it is
 * low..2^160-1 then 0..high; low == high + 1 is the whole ring.  Ring order from low
 * = records sorted by ((key - low) mod 2^160, value id); both sides of an exchange
 * compute summaries in that order, so equal sets give equal digests whatever order
 * they arrived in (the seed hashed in dict order).  A range splits into 16
 * sub-ranges (dht_store_subrange) by the 4 bits of the offset key - low just below
 * the bit length of high - low, so two nodes given the same [low, high] compute the
 * same 16 sub-ranges, and can recurse into the one whose digests differ.
 *
 * Not thread-safe: one store is used by one thread (the node's loop).
 */
#ifndef P2P_DHT_STORE_H
#define P2P_DHT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"
#include "p2p/dht_record.h"

struct dht_store;
struct sqlite3; /* sqlite3.h: typedef struct sqlite3 sqlite3 */

#define DHT_STORE_SUBRANGES 16
#define DHT_STORE_DIGEST_LEN 16

struct dht_store_config {
    size_t max_records;          /* all records incl. tombstones; default 100000 */
    unsigned max_values_per_key; /* present records per key; default 64 */
    uint64_t max_ttl_ms;         /* expiry at most now + this; default 24 h */
    size_t max_pending;          /* sqlite: unflushed changes before auto-flush; 4096 */
    size_t max_value_bytes;      /* sum of value lengths held; default 32 MiB */
    /* Mailbox keys (dht_record.h): live values per key (16), per writer per key (4),
     * value bytes per key (32 KiB), and expiry at most now + 7 days. */
    unsigned max_mailbox_values, max_mailbox_per_writer;
    size_t max_mailbox_bytes;
    uint64_t max_mailbox_ttl_ms;
};

/* Fills cfg with the defaults above. */
void dht_store_config_init(struct dht_store_config *cfg);

struct dht_store_stats {
    size_t records;    /* held in memory, incl. tombstones and not-yet-swept ones */
    size_t tombstones; /* of those */
    size_t value_bytes;
    size_t pending; /* changes not yet flushed to sqlite */
    uint64_t stored, replaced, expired, dropped;
    uint64_t refused_invalid, refused_replay, refused_badsig, refused_expired, refused_ttl,
        refused_owner, refused_stale, refused_full;
    uint64_t flushes, flush_errors;
    uint64_t load_skipped; /* rows dropped at open (see dht_store_open) */
};

/* Summary of a range: how many present records, and a digest over their identities. */
struct dht_store_summary {
    uint32_t count;
    uint8_t digest[DHT_STORE_DIGEST_LEN];
};

/*
 * Creates an empty in-memory store (no durable copy).  cfg may be NULL for the
 * defaults; zero fields take their default.  Returns 0, -ENOMEM.
 */
int dht_store_new(struct dht_store **out, const struct dht_store_config *cfg);

/*
 * Opens (creating if needed) the sqlite database at path, sets WAL and
 * synchronous=NORMAL, creates the dht_ tables on first open (schema version kept in
 * table dht_meta, not in PRAGMA user_version, because the file may be shared with
 * the daemon's own tables), and loads every record still present at now_ms,
 * verifying each signature again (about 55 us per record).  Rows that do not
 * decode, do not verify or are expired, older versions of a pair, records of a
 * second owner under a key and rows past the caps are skipped and deleted (counted
 * in load_skipped).  Returns 0, -ENOMEM, -EIO (sqlite error),
 * -EPROTO (the file has a newer dht schema version than this code).
 */
int dht_store_open(struct dht_store **out, const struct dht_store_config *cfg, const char *path,
                   uint64_t now_ms);

/*
 * Like dht_store_open on a connection the caller already has (the daemon's
 * database): only the dht_ tables are touched; journal mode and synchronous are
 * the caller's to set.  db is not closed by dht_store_free and must outlive the
 * store.  The store opens a transaction only inside dht_store_flush (and the
 * auto-flush in dht_store_put); while the caller holds its own transaction on db,
 * a flush fails with -EBUSY and the changes stay pending.
 */
int dht_store_attach(struct dht_store **out, const struct dht_store_config *cfg, struct sqlite3 *db,
                     uint64_t now_ms);

/* Flushes pending changes (best effort; call dht_store_flush first to see errors),
 * closes a connection the store opened, frees everything.  NULL is a no-op. */
void dht_store_free(struct dht_store *s);

/*
 * Stores rec (a value or a tombstone) after the rules in the file comment.  The
 * store copies the value; rec is not kept.  Returns 0 when stored, else the
 * negative errno of the rule that refused it (the store is then unchanged), or
 * -ENOMEM.  An auto-flush failure does not fail the put (the change stays pending
 * and flush_errors counts it).
 */
int dht_store_put(struct dht_store *s, const struct dht_record *rec, uint64_t now_ms);

/*
 * Live values under key at now_ms (not tombstones, expiry_ms > now_ms), in value-id
 * order, at most max of them, into out[].  *n_out is the number written.  Value
 * pointers stay valid until the next call that modifies s.  Returns 0 (also when
 * there are none), -EINVAL when max > 0 and out is NULL.
 */
int dht_store_get(struct dht_store *s, const struct dht_id *key, uint64_t now_ms,
                  struct dht_record *out, size_t max, size_t *n_out);

/*
 * The present record (value or tombstone) for (key, value_id), for anti-entropy and
 * replication.  Returns 0, or -ENOENT.  out->value valid until s is next modified.
 */
int dht_store_find(struct dht_store *s, const struct dht_id *key, const struct dht_id *value_id,
                   uint64_t now_ms, struct dht_record *out);

/*
 * Frees every record whose keep-until is <= now_ms (values and tombstones), which
 * releases the claim on keys left empty.  Returns the number of records removed.
 */
int dht_store_expire(struct dht_store *s, uint64_t now_ms);

/*
 * Removes every record (values and tombstones, live or not) whose key is in
 * [low, high], for a node that has handed a range to its new replicas and is no
 * longer responsible for it.  Dropping tombstones there is safe only because the
 * node stops answering for the range.  Returns the number of records removed.
 */
int dht_store_drop_range(struct dht_store *s, const struct dht_id *low, const struct dht_id *high);

/* Why a record left the store, for the observer below. */
enum dht_store_gone {
    DHT_STORE_EXPIRED, /* dht_store_expire */
    DHT_STORE_DROPPED, /* dht_store_drop_range: handed off */
};

/*
 * Optional (fn NULL to stop): told of every record that dht_store_expire or
 * dht_store_drop_range removes, as it goes.  fn must not call into the store.
 */
void dht_store_set_observer(struct dht_store *s,
                            void (*fn)(void *arg, const struct dht_id *key,
                                       enum dht_store_gone why),
                            void *arg);

/*
 * Writes every pending change to sqlite in one transaction.  Returns 0 (also for an
 * in-memory store or when nothing is pending), -EBUSY when the shared connection is
 * inside another transaction, -EIO on a sqlite error; on error the transaction is
 * rolled back and the changes stay pending for the next flush.
 */
int dht_store_flush(struct dht_store *s);

/* Number of changes waiting for dht_store_flush (0 for an in-memory store). */
size_t dht_store_pending(const struct dht_store *s);

void dht_store_get_stats(const struct dht_store *s, struct dht_store_stats *out);

/*
 * Calls cb for every present record in [low, high] at now_ms, in ring order from low.
 * cb returning nonzero stops the walk and that value is returned; else 0.  cb must
 * not modify s.  rec (and its value) is valid only during the call.
 */
typedef int (*dht_store_visit_cb)(const struct dht_record *rec, void *arg);
int dht_store_visit_range(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                          uint64_t now_ms, dht_store_visit_cb cb, void *arg);

/*
 * Identities of present records in [low, high] in ring order, at most max, into
 * out[]; *n_out = number written, *more = true when further records follow.  after
 * == NULL starts at low; otherwise listing resumes strictly after the record
 * (after->key, after->value_id) in ring order (pass the last identity of the
 * previous page; it need not still be stored).  Returns 0, or -EINVAL when after's
 * key is not in [low, high] or max > 0 and out is NULL.
 */
int dht_store_list(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                   const struct dht_record_ident *after, uint64_t now_ms,
                   struct dht_record_ident *out, size_t max, size_t *n_out, bool *more);

/*
 * Summary of [low, high] at now_ms: count and BLAKE2b-128 digest over the sorted
 * identities (key || value_id || seq big-endian || tombstone byte, in ring order
 * from low).  An empty range has count 0 and the digest of no input.  Returns 0.
 */
int dht_store_summarize(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                        uint64_t now_ms, struct dht_store_summary *out);

/*
 * Summaries of the 16 sub-ranges of [low, high] (dht_store_subrange), in one pass;
 * an empty sub-range gets count 0 and the empty digest.  Returns 0.
 */
int dht_store_summarize16(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                          uint64_t now_ms, struct dht_store_summary out[DHT_STORE_SUBRANGES]);

/*
 * Sub-range i (0..15) of [low, high]: with span = high - low (mod 2^160) of bit length
 * L and shift = max(L - 4, 0), sub-range i holds the IDs whose offset (id - low) has
 * offset >> shift == i.  Writes its bounds and returns 0, or -ENOENT when it holds no
 * ID (offsets past span; also i >= 16).  The 16 sub-ranges partition [low, high].
 */
int dht_store_subrange(const struct dht_id *low, const struct dht_id *high, unsigned i,
                       struct dht_id *sub_low, struct dht_id *sub_high);

#endif
