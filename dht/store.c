/*
 * store.c: the record store's rules, range walks, anti-entropy summaries and group
 * commit (see dht_store.h for the contract and the numbered rules).
 *
 * Design.  All reads are answered from the sorted in-memory index (store_mem.c).  A
 * store with a durable copy (store_sqlite.c, an append-only table) notes each
 * change in a pending list: a changed entry is marked dirty and its (key, value id)
 * listed once; an entry leaving the index lists the rowid of its row.
 * dht_store_flush() then, in one transaction, deletes the listed rows and writes
 * each dirty entry as a new row (deleting the row of its previous version).  The
 * pending list is bounded by max_pending: a full list triggers a flush, and when a
 * flush cannot run (mid-sweep) or fails after it began, the list is dropped and the
 * next successful flush rewrites the whole table instead (resync), so memory stays
 * bounded and the file right whatever sqlite does.
 *
 * Invariants: every entry in the index has a verified signature; all present
 * entries under one key share one owner; stats.records == idx.n.
 */
#include "p2p/dht_store.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store_int.h"

#define DEFAULT_MAX_RECORDS 100000
#define DEFAULT_MAX_VALUES_PER_KEY 64
#define DEFAULT_MAX_TTL_MS (24ull * 3600 * 1000)
#define DEFAULT_MAX_PENDING 4096
#define DEFAULT_MAX_VALUE_BYTES (32u << 20)
#define DEFAULT_MAILBOX_VALUES 16
#define DEFAULT_MAILBOX_PER_WRITER 4
#define DEFAULT_MAILBOX_BYTES (32u << 10)
#define DEFAULT_MAILBOX_TTL_MS (7ull * 24 * 3600 * 1000)

/* A listed change: delete row del_rowid (if not 0), then write the pair's entry if
 * it is held and dirty. */
struct pending {
    struct dht_id key;
    struct dht_id value_id;
    int64_t del_rowid;
};

struct dht_store {
    struct dht_store_config cfg;
    struct dht__index idx;
    struct dht__sql *sql; /* NULL: in-memory only */
    struct pending *pending;
    size_t n_pending;
    bool resync; /* the pending list overflowed: rewrite the whole table */
    struct dht_store_stats st;
    void (*observe)(void *arg, const struct dht_id *key, enum dht_store_gone why);
    void *observe_arg;
};

void dht_store_config_init(struct dht_store_config *cfg)
{
    cfg->max_records = DEFAULT_MAX_RECORDS;
    cfg->max_values_per_key = DEFAULT_MAX_VALUES_PER_KEY;
    cfg->max_ttl_ms = DEFAULT_MAX_TTL_MS;
    cfg->max_pending = DEFAULT_MAX_PENDING;
    cfg->max_value_bytes = DEFAULT_MAX_VALUE_BYTES;
    cfg->max_mailbox_values = DEFAULT_MAILBOX_VALUES;
    cfg->max_mailbox_per_writer = DEFAULT_MAILBOX_PER_WRITER;
    cfg->max_mailbox_bytes = DEFAULT_MAILBOX_BYTES;
    cfg->max_mailbox_ttl_ms = DEFAULT_MAILBOX_TTL_MS;
}

static bool present(const struct dht__entry *e, uint64_t now_ms)
{
    return e->keep_until > now_ms;
}

static bool live_value(const struct dht__entry *e, uint64_t now_ms)
{
    return !e->tombstone && e->expiry_ms > now_ms;
}

/* ---- 160-bit helpers for ranges ---------------------------------------------- */

static void id_add(struct dht_id *out, const struct dht_id *a, const struct dht_id *b)
{
    unsigned carry = 0;
    for (int i = DHT_ID_LEN - 1; i >= 0; i--) {
        unsigned s = (unsigned)a->b[i] + b->b[i] + carry;
        out->b[i] = (uint8_t)s;
        carry = s >> 8;
    }
}

/* Number of significant bits, 0..160. */
static unsigned id_bitlen(const struct dht_id *a)
{
    for (unsigned i = 0; i < DHT_ID_LEN; i++) {
        if (a->b[i] != 0) {
            unsigned bits = 8;
            while (!(a->b[i] & (1u << (bits - 1))))
                bits--;
            return (DHT_ID_LEN - 1 - i) * 8 + bits;
        }
    }
    return 0;
}

/* Bit k of a (0 = least significant). */
static unsigned id_bit(const struct dht_id *a, unsigned k)
{
    return (a->b[DHT_ID_LEN - 1 - k / 8] >> (k % 8)) & 1u;
}

static void id_set_bit(struct dht_id *a, unsigned k)
{
    a->b[DHT_ID_LEN - 1 - k / 8] |= (uint8_t)(1u << (k % 8));
}

/* The 4 bits of a at [shift, shift + 4) (bits past 160 read as 0). */
static unsigned id_nibble_at(const struct dht_id *a, unsigned shift)
{
    unsigned v = 0;
    for (unsigned j = 0; j < 4; j++)
        if (shift + j < 8 * DHT_ID_LEN && id_bit(a, shift + j))
            v |= 1u << j;
    return v;
}

static unsigned subrange_shift(const struct dht_id *low, const struct dht_id *high)
{
    struct dht_id span;
    unsigned len;

    dht_id_sub(&span, high, low);
    len = id_bitlen(&span);
    return len > 4 ? len - 4 : 0;
}

int dht_store_subrange(const struct dht_id *low, const struct dht_id *high, unsigned i,
                       struct dht_id *sub_low, struct dht_id *sub_high)
{
    struct dht_id span, off_lo, off_hi;
    unsigned shift;

    if (i >= DHT_STORE_SUBRANGES)
        return -ENOENT;
    dht_id_sub(&span, high, low);
    shift = subrange_shift(low, high);

    /* off_lo = i << shift */
    memset(&off_lo, 0, sizeof(off_lo));
    for (unsigned j = 0; j < 4; j++)
        if (i & (1u << j))
            id_set_bit(&off_lo, shift + j);
    if (dht_id_cmp(&off_lo, &span) > 0)
        return -ENOENT;

    /* off_hi = min(((i + 1) << shift) - 1, span): the last sub-range always ends at
     * span, since span < 16 << shift. */
    if (i + 1 == DHT_STORE_SUBRANGES) {
        off_hi = span;
    } else {
        struct dht_id next, one;
        memset(&next, 0, sizeof(next));
        for (unsigned j = 0; j < 4; j++) /* i + 1 <= 15 here */
            if ((i + 1) & (1u << j))
                id_set_bit(&next, shift + j);
        memset(&one, 0, sizeof(one));
        one.b[DHT_ID_LEN - 1] = 1;
        dht_id_sub(&off_hi, &next, &one);
        if (dht_id_cmp(&off_hi, &span) > 0)
            off_hi = span;
    }
    id_add(sub_low, low, &off_lo);
    id_add(sub_high, low, &off_hi);
    return 0;
}

/* ---- walking a range in ring order ------------------------------------------- */

/* Index positions of [low, high]: seg[0] then seg[1] (empty unless it wraps). */
struct range_walk {
    size_t a[2], b[2];
    int seg;
    size_t i;
};

static bool in_range(const struct dht_id *low, const struct dht_id *high, const struct dht_id *x)
{
    struct dht_id span, off;
    dht_id_sub(&span, high, low);
    dht_id_sub(&off, x, low);
    return dht_id_cmp(&off, &span) <= 0;
}

static void walk_init(struct range_walk *w, const struct dht__index *idx, const struct dht_id *low,
                      const struct dht_id *high)
{
    static const struct dht_id zero;

    if (dht_id_cmp(low, high) <= 0) {
        w->a[0] = dht__index_lower_bound(idx, low, &zero);
        w->b[0] = dht__index_upper_key(idx, high);
        w->a[1] = w->b[1] = 0;
    } else {
        /* Wraps: low..2^160-1, then 0..high. */
        w->a[0] = dht__index_lower_bound(idx, low, &zero);
        w->b[0] = idx->n;
        w->a[1] = 0;
        w->b[1] = dht__index_upper_key(idx, high);
    }
    w->seg = 0;
    w->i = w->a[0];
}

/* Positions the walk strictly after (key, value_id), which lies in the range. */
static void walk_after(struct range_walk *w, const struct dht__index *idx, const struct dht_id *low,
                       const struct dht_id *high, const struct dht_id *key,
                       const struct dht_id *value_id)
{
    size_t p = dht__index_lower_bound(idx, key, value_id);

    if (p < idx->n && dht_id_eq(&idx->v[p]->key, key) && dht_id_eq(&idx->v[p]->value_id, value_id))
        p++;
    if (dht_id_cmp(low, high) > 0 && dht_id_cmp(key, low) < 0) {
        w->seg = 1; /* in the part after the wrap */
        w->i = p;
    } else {
        w->seg = 0;
        w->i = p;
    }
}

static struct dht__entry *walk_next(struct range_walk *w, const struct dht__index *idx,
                                    uint64_t now_ms)
{
    while (w->seg < 2) {
        if (w->i < w->b[w->seg]) {
            struct dht__entry *e = idx->v[w->i++];
            if (present(e, now_ms))
                return e;
            continue;
        }
        w->seg++;
        if (w->seg < 2)
            w->i = w->a[1];
    }
    return NULL;
}

/* ---- pending changes and flush ------------------------------------------------ */

static struct dht__entry *lookup(struct dht_store *s, const struct dht_id *key,
                                 const struct dht_id *value_id)
{
    size_t pos = dht__index_lower_bound(&s->idx, key, value_id);

    if (pos < s->idx.n && dht_id_eq(&s->idx.v[pos]->key, key) &&
        dht_id_eq(&s->idx.v[pos]->value_id, value_id))
        return s->idx.v[pos];
    return NULL;
}

/* Writes e as a new row and deletes the row of its previous version. */
static int write_entry(struct dht_store *s, struct dht__entry *e)
{
    int64_t rowid;
    int rc;

    if (e->rowid != 0) {
        rc = dht__sql_delete(s->sql, e->rowid);
        if (rc < 0)
            return rc;
    }
    rc = dht__sql_insert(s->sql, e, &rowid);
    if (rc < 0)
        return rc;
    e->rowid = rowid;
    e->dirty = 0;
    return 0;
}

static int flush_now(struct dht_store *s)
{
    int rc;

    if (s->sql == NULL || (s->n_pending == 0 && !s->resync))
        return 0;
    /* A refused begin changes nothing: the list stays for the next flush. */
    rc = dht__sql_begin(s->sql);
    if (rc < 0) {
        s->st.flush_errors++;
        return rc;
    }
    if (s->resync) {
        rc = dht__sql_delete_all(s->sql);
        for (size_t i = 0; rc == 0 && i < s->idx.n; i++) {
            s->idx.v[i]->rowid = 0;
            rc = write_entry(s, s->idx.v[i]);
        }
    } else {
        for (size_t i = 0; rc == 0 && i < s->n_pending; i++) {
            const struct pending *p = &s->pending[i];
            struct dht__entry *e;
            if (p->del_rowid != 0)
                rc = dht__sql_delete(s->sql, p->del_rowid);
            e = lookup(s, &p->key, &p->value_id);
            if (rc == 0 && e != NULL && e->dirty)
                rc = write_entry(s, e);
        }
    }
    if (rc == 0)
        rc = dht__sql_commit(s->sql);
    if (rc < 0) {
        /* Rolled back, but rowids and dirty flags in memory have moved on: only a
         * full rewrite is sure to be right now. */
        dht__sql_rollback(s->sql);
        s->n_pending = 0;
        s->resync = true;
        s->st.flush_errors++;
        return rc;
    }
    s->n_pending = 0;
    s->resync = false;
    s->st.flushes++;
    return 0;
}

/* Room for one more listed change.  may_flush is false while the index or a sqlite
 * read is mid-walk (sweeps, load): a full list then turns into a resync. */
static bool pending_room(struct dht_store *s, bool may_flush)
{
    if (s->n_pending < s->cfg.max_pending)
        return true;
    if (may_flush && flush_now(s) == 0)
        return true;
    /* Forget the list (bounded memory); the next flush rewrites the table. */
    s->n_pending = 0;
    s->resync = true;
    return false;
}

/* e was stored or replaced (it carries the dirty flag and rowid of the version it
 * replaced): list its pair unless already listed. */
static void note_put(struct dht_store *s, struct dht__entry *e)
{
    if (s->sql == NULL)
        return;
    if (e->dirty || s->resync) {
        e->dirty = 1;
        return;
    }
    /* A flush here writes the other listed entries; e is not yet dirty. */
    if (!pending_room(s, true))
        return;
    e->dirty = 1;
    s->pending[s->n_pending].key = e->key;
    s->pending[s->n_pending].value_id = e->value_id;
    s->pending[s->n_pending].del_rowid = 0;
    s->n_pending++;
}

/* The row rowid (of pair key, value_id) must go at the next flush. */
static void note_row_gone(struct dht_store *s, const struct dht_id *key,
                          const struct dht_id *value_id, int64_t rowid)
{
    if (s->sql == NULL || s->resync || rowid == 0)
        return;
    if (!pending_room(s, false))
        return;
    s->pending[s->n_pending].key = *key;
    s->pending[s->n_pending].value_id = *value_id;
    s->pending[s->n_pending].del_rowid = rowid;
    s->n_pending++;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int store_alloc(struct dht_store **out, const struct dht_store_config *cfg, bool durable)
{
    struct dht_store *s;
    struct dht_store_config def;

    dht_store_config_init(&def);
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = def;
    if (cfg != NULL) {
        if (cfg->max_records != 0)
            s->cfg.max_records = cfg->max_records;
        if (cfg->max_values_per_key != 0)
            s->cfg.max_values_per_key = cfg->max_values_per_key;
        if (cfg->max_ttl_ms != 0)
            s->cfg.max_ttl_ms = cfg->max_ttl_ms;
        if (cfg->max_pending != 0)
            s->cfg.max_pending = cfg->max_pending;
        if (cfg->max_value_bytes != 0)
            s->cfg.max_value_bytes = cfg->max_value_bytes;
        if (cfg->max_mailbox_values != 0)
            s->cfg.max_mailbox_values = cfg->max_mailbox_values;
        if (cfg->max_mailbox_per_writer != 0)
            s->cfg.max_mailbox_per_writer = cfg->max_mailbox_per_writer;
        if (cfg->max_mailbox_bytes != 0)
            s->cfg.max_mailbox_bytes = cfg->max_mailbox_bytes;
        if (cfg->max_mailbox_ttl_ms != 0)
            s->cfg.max_mailbox_ttl_ms = cfg->max_mailbox_ttl_ms;
    }
    if (durable) {
        s->pending = calloc(s->cfg.max_pending, sizeof(*s->pending));
        if (s->pending == NULL) {
            free(s);
            return -ENOMEM;
        }
    }
    *out = s;
    return 0;
}

int dht_store_new(struct dht_store **out, const struct dht_store_config *cfg)
{
    return store_alloc(out, cfg, false);
}

static void account_add(struct dht_store *s, const struct dht__entry *e)
{
    s->st.records++;
    s->st.tombstones += e->tombstone;
    s->st.value_bytes += e->value_len;
}

static void account_remove(struct dht_store *s, const struct dht__entry *e)
{
    s->st.records--;
    s->st.tombstones -= e->tombstone;
    s->st.value_bytes -= e->value_len;
}

struct load_ctx {
    struct dht_store *s;
    uint64_t now_ms;
    /* compaction pass */
    const struct dht__entry *prev; /* last entry kept */
    unsigned n_key;                /* entries kept under prev's key */
};

/* A row as a verified entry, or NULL. */
static struct dht__entry *load_entry(struct load_ctx *c, int64_t rowid, const uint8_t *key,
                                     const uint8_t *vid, uint64_t keep_until, const uint8_t *blob,
                                     size_t blob_len)
{
    struct dht_record rec;
    struct dht__entry *e;

    if (blob == NULL || dht_record_decode(&rec, blob, blob_len) != (int)blob_len)
        return NULL;
    if (memcmp(rec.key.b, key, DHT_ID_LEN) != 0 || memcmp(rec.value_id.b, vid, DHT_ID_LEN) != 0)
        return NULL;
    if (keep_until <= c->now_ms || keep_until < rec.expiry_ms)
        return NULL;
    if (!rec.tombstone && keep_until != rec.expiry_ms)
        return NULL;
    /* Rows were written by this code, but the file is trusted no more than the
     * network: a record that does not verify is never loaded. */
    if (dht_record_verify(&rec) < 0)
        return NULL;
    e = dht__entry_new(&rec, keep_until);
    if (e != NULL)
        e->rowid = rowid;
    return e;
}

static int load_row(int64_t rowid, const uint8_t *key, size_t key_len, const uint8_t *vid,
                    size_t vid_len, uint64_t keep_until, const uint8_t *blob, size_t blob_len,
                    void *arg)
{
    static const struct dht_id zero;
    struct load_ctx *c = arg;
    struct dht_store *s = c->s;
    struct dht__entry *e = NULL;
    bool named = key != NULL && vid != NULL && key_len == DHT_ID_LEN && vid_len == DHT_ID_LEN;

    /* Rows past max_records or max_value_bytes (oldest first are kept) are dropped
     * like bad ones. */
    if (named && s->idx.n < s->cfg.max_records)
        e = load_entry(c, rowid, key, vid, keep_until, blob, blob_len);
    /* Appended unsorted; store_load sorts once at the end. */
    if (e != NULL && s->st.value_bytes + e->value_len <= s->cfg.max_value_bytes &&
        dht__index_insert_at(&s->idx, s->idx.n, e) == 0) {
        account_add(s, e);
        return 0;
    }
    free(e);
    s->st.load_skipped++;
    note_row_gone(s, &zero, &zero, rowid);
    return 0;
}

static int load_cmp(const void *pa, const void *pb)
{
    const struct dht__entry *a = *(const struct dht__entry *const *)pa;
    const struct dht__entry *b = *(const struct dht__entry *const *)pb;
    int c = dht_id_cmp(&a->key, &b->key);

    if (c == 0)
        c = dht_id_cmp(&a->value_id, &b->value_id);
    if (c == 0) /* highest seq first, then the newest row */
        c = a->seq != b->seq ? (a->seq > b->seq ? -1 : 1) : (a->rowid > b->rowid ? -1 : 1);
    return c;
}

/* After sorting: one entry per pair (the first, highest seq), one owner per key (the
 * first entry's), at most max_values_per_key per key. */
static bool load_keep(const struct dht__entry *e, void *arg)
{
    struct load_ctx *c = arg;
    const struct dht__entry *p = c->prev;

    if (p != NULL && dht_id_eq(&p->key, &e->key)) {
        if (dht_id_eq(&p->value_id, &e->value_id))
            return false;
        if (p->mailbox != e->mailbox ||
            (!e->mailbox && memcmp(p->owner, e->owner, DHT_RECORD_OWNER_LEN) != 0))
            return false;
        if (c->n_key >= c->s->cfg.max_values_per_key)
            return false;
        c->n_key++;
    } else {
        c->n_key = 1;
    }
    c->prev = e;
    return true;
}

static void load_gone(struct dht__entry *e, void *arg)
{
    struct load_ctx *c = arg;

    account_remove(c->s, e);
    c->s->st.load_skipped++;
    note_row_gone(c->s, &e->key, &e->value_id, e->rowid);
}

static int store_load(struct dht_store **out, const struct dht_store_config *cfg,
                      struct dht__sql *q, uint64_t now_ms)
{
    struct dht_store *s;
    struct load_ctx c;
    int rc;

    rc = store_alloc(&s, cfg, true);
    if (rc < 0) {
        dht__sql_free(q);
        return rc;
    }
    s->sql = q;
    c.s = s;
    c.now_ms = now_ms;
    c.prev = NULL;
    c.n_key = 0;
    rc = dht__sql_load(q, load_row, &c);
    if (rc == 0 && s->idx.n > 1) {
        qsort(s->idx.v, s->idx.n, sizeof(*s->idx.v), load_cmp);
        (void)dht__index_filter(&s->idx, load_keep, load_gone, &c);
    }
    if (rc < 0) {
        /* A half-read table must not be "flushed" back over the file. */
        s->n_pending = 0;
        s->resync = false;
        dht_store_free(s);
        return rc;
    }
    /* Drop skipped rows now; if the connection is busy they go at the next flush. */
    (void)flush_now(s);
    *out = s;
    return 0;
}

int dht_store_open(struct dht_store **out, const struct dht_store_config *cfg, const char *path,
                   uint64_t now_ms)
{
    struct dht__sql *q;
    int rc = dht__sql_open(&q, path);

    if (rc < 0)
        return rc;
    return store_load(out, cfg, q, now_ms);
}

int dht_store_attach(struct dht_store **out, const struct dht_store_config *cfg, struct sqlite3 *db,
                     uint64_t now_ms)
{
    struct dht__sql *q;
    int rc = dht__sql_attach(&q, db);

    if (rc < 0)
        return rc;
    return store_load(out, cfg, q, now_ms);
}

void dht_store_free(struct dht_store *s)
{
    if (s == NULL)
        return;
    (void)flush_now(s);
    dht__sql_free(s->sql);
    dht__index_free(&s->idx);
    free(s->pending);
    free(s);
}

/* ---- put / get ------------------------------------------------------------------ */

static bool entry_equals_record(const struct dht__entry *e, const struct dht_record *rec)
{
    struct dht_record cur;
    dht__entry_to_record(e, &cur);
    return dht_record_equal(&cur, rec);
}

static int refuse(uint64_t *counter, int rc)
{
    (*counter)++;
    return rc;
}

int dht_store_put(struct dht_store *s, const struct dht_record *rec, uint64_t now_ms)
{
    struct dht__entry *old = NULL, *e;
    size_t pos, i;
    unsigned n_key = 0;
    uint64_t keep_until, ttl_limit;
    int rc;

    /* Rule 1: well-formed. */
    if (dht_record_check(rec) < 0)
        return refuse(&s->st.refused_invalid, -EINVAL);

    pos = dht__index_lower_bound(&s->idx, &rec->key, &rec->value_id);
    if (pos < s->idx.n && dht_id_eq(&s->idx.v[pos]->key, &rec->key) &&
        dht_id_eq(&s->idx.v[pos]->value_id, &rec->value_id) && present(s->idx.v[pos], now_ms))
        old = s->idx.v[pos];

    /* Rule 2: an identical replay is acknowledged without another verification (the
     * stored copy was verified when it came in). */
    if (old != NULL && entry_equals_record(old, rec))
        return refuse(&s->st.refused_replay, -EALREADY);

    /* Rule 3: the signature covers every field. */
    if (dht_record_verify(rec) < 0)
        return refuse(&s->st.refused_badsig, -EBADMSG);

    /* Rule 4: expired.  A tombstone lives as long as what it replaces. */
    keep_until = rec->expiry_ms;
    if (rec->tombstone && old != NULL && old->keep_until > keep_until)
        keep_until = old->keep_until;
    if (keep_until <= now_ms)
        return refuse(&s->st.refused_expired, -ETIMEDOUT);

    /* Rule 5: a record may not claim a key for longer than max_ttl_ms (a mailbox
     * value: max_mailbox_ttl_ms). */
    uint64_t max_ttl = rec->mailbox ? s->cfg.max_mailbox_ttl_ms : s->cfg.max_ttl_ms;
    ttl_limit = now_ms > UINT64_MAX - max_ttl ? UINT64_MAX : now_ms + max_ttl;
    if (rec->expiry_ms > ttl_limit)
        return refuse(&s->st.refused_ttl, -ERANGE);

    /* Rule 6: owner claim, over every present record under the key.  A key holds
     * either plain records, all of one owner, or mailbox values of any writers. */
    unsigned n_live = 0, n_writer = 0;
    size_t mb_bytes = 0;
    size_t first = pos;
    while (first > 0 && dht_id_eq(&s->idx.v[first - 1]->key, &rec->key))
        first--;
    for (i = first; i < s->idx.n && dht_id_eq(&s->idx.v[i]->key, &rec->key); i++) {
        const struct dht__entry *x = s->idx.v[i];
        if (!present(x, now_ms))
            continue;
        if ((x->mailbox != 0) != rec->mailbox)
            return refuse(&s->st.refused_owner, -EPERM);
        if (!rec->mailbox && memcmp(x->owner, rec->owner, DHT_RECORD_OWNER_LEN) != 0)
            return refuse(&s->st.refused_owner, -EPERM);
        n_key++;
        if (rec->mailbox && !x->tombstone && x != old) {
            n_live++;
            mb_bytes += x->value_len;
            n_writer += memcmp(x->owner, rec->owner, DHT_RECORD_OWNER_LEN) == 0;
        }
    }
    /* A mailbox value is replaced by its writer, or removed by the mailbox's owner. */
    if (rec->mailbox && old != NULL && memcmp(old->owner, rec->owner, DHT_RECORD_OWNER_LEN) != 0) {
        struct dht_id mk;
        dht_mailbox_key(rec->owner, &mk);
        if (!rec->tombstone || !dht_id_eq(&mk, &rec->key))
            return refuse(&s->st.refused_owner, -EPERM);
    }

    /* Rule 7: only a newer version replaces. */
    if (old != NULL && old->seq >= rec->seq)
        return refuse(&s->st.refused_stale, -ESTALE);

    /* Rule 8: caps.  Counts for a value id not present under the key; bytes for
     * every put (what the stored entry for the pair, if any, frees is deducted).
     * A mailbox also caps its live values, in all and per writer, and their bytes. */
    bool reuse = pos < s->idx.n && dht_id_eq(&s->idx.v[pos]->key, &rec->key) &&
                 dht_id_eq(&s->idx.v[pos]->value_id, &rec->value_id);
    if (old == NULL) {
        if (n_key >= s->cfg.max_values_per_key)
            return refuse(&s->st.refused_full, -ENOSPC);
        if (!reuse && s->idx.n >= s->cfg.max_records)
            return refuse(&s->st.refused_full, -ENOSPC);
    }
    if (rec->mailbox && !rec->tombstone &&
        (n_live >= s->cfg.max_mailbox_values || n_writer >= s->cfg.max_mailbox_per_writer ||
         mb_bytes + rec->value_len > s->cfg.max_mailbox_bytes))
        return refuse(&s->st.refused_full, -ENOSPC);
    size_t freed = reuse ? s->idx.v[pos]->value_len : 0;
    if (rec->value_len > freed &&
        s->st.value_bytes + (rec->value_len - freed) > s->cfg.max_value_bytes)
        return refuse(&s->st.refused_full, -ENOSPC);

    /* Rule 9: store, replacing whatever entry (present or dead) holds the pair. */
    e = dht__entry_new(rec, keep_until);
    if (e == NULL)
        return -ENOMEM;
    if (reuse) {
        struct dht__entry *prev = s->idx.v[pos];
        /* The file still holds prev's row (if any): e's write will replace it. */
        e->rowid = prev->rowid;
        e->dirty = prev->dirty;
        account_remove(s, prev);
        free(prev);
        s->idx.v[pos] = e;
        s->st.replaced++;
    } else {
        rc = dht__index_insert_at(&s->idx, pos, e);
        if (rc < 0) {
            free(e);
            return rc;
        }
    }
    account_add(s, e);
    s->st.stored++;
    note_put(s, e);
    return 0;
}

int dht_store_get(struct dht_store *s, const struct dht_id *key, uint64_t now_ms,
                  struct dht_record *out, size_t max, size_t *n_out)
{
    static const struct dht_id zero;
    size_t n = 0;

    if (max > 0 && out == NULL)
        return -EINVAL;
    for (size_t i = dht__index_lower_bound(&s->idx, key, &zero);
         i < s->idx.n && n < max && dht_id_eq(&s->idx.v[i]->key, key); i++) {
        const struct dht__entry *e = s->idx.v[i];
        if (live_value(e, now_ms))
            dht__entry_to_record(e, &out[n++]);
    }
    *n_out = n;
    return 0;
}

int dht_store_find(struct dht_store *s, const struct dht_id *key, const struct dht_id *value_id,
                   uint64_t now_ms, struct dht_record *out)
{
    size_t pos = dht__index_lower_bound(&s->idx, key, value_id);

    if (pos >= s->idx.n || !dht_id_eq(&s->idx.v[pos]->key, key) ||
        !dht_id_eq(&s->idx.v[pos]->value_id, value_id) || !present(s->idx.v[pos], now_ms))
        return -ENOENT;
    dht__entry_to_record(s->idx.v[pos], out);
    return 0;
}

/* Removal of every entry for which doomed() holds, listing each for the flush. */
struct sweep {
    struct dht_store *s;
    bool (*doomed)(const struct dht__entry *e, const struct sweep *w);
    uint64_t now_ms;
    const struct dht_id *low, *high;
    uint64_t *counter;
    enum dht_store_gone why;
};

static bool sweep_keep(const struct dht__entry *e, void *arg)
{
    const struct sweep *w = arg;
    return !w->doomed(e, w);
}

static void sweep_gone(struct dht__entry *e, void *arg)
{
    struct sweep *w = arg;

    account_remove(w->s, e);
    (*w->counter)++;
    note_row_gone(w->s, &e->key, &e->value_id, e->rowid);
    if (w->s->observe != NULL)
        w->s->observe(w->s->observe_arg, &e->key, w->why);
}

static int sweep_run(struct sweep *w)
{
    struct dht_store *s = w->s;
    size_t n, doomed = 0;

    /* The removals are listed while the index is being compacted, when a flush
     * cannot run; make room first so that a big sweep does not force a resync. */
    if (s->sql != NULL) {
        for (size_t i = 0; i < s->idx.n; i++)
            doomed += w->doomed(s->idx.v[i], w);
        if (doomed > 0 && s->n_pending + doomed > s->cfg.max_pending)
            (void)flush_now(s);
    }
    n = dht__index_filter(&s->idx, sweep_keep, sweep_gone, w);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

static bool doomed_expired(const struct dht__entry *e, const struct sweep *w)
{
    return !present(e, w->now_ms);
}

int dht_store_expire(struct dht_store *s, uint64_t now_ms)
{
    struct sweep w = {.s = s,
                      .doomed = doomed_expired,
                      .now_ms = now_ms,
                      .counter = &s->st.expired,
                      .why = DHT_STORE_EXPIRED};
    return sweep_run(&w);
}

static bool doomed_in_range(const struct dht__entry *e, const struct sweep *w)
{
    return in_range(w->low, w->high, &e->key);
}

int dht_store_drop_range(struct dht_store *s, const struct dht_id *low, const struct dht_id *high)
{
    struct sweep w = {.s = s,
                      .doomed = doomed_in_range,
                      .low = low,
                      .high = high,
                      .counter = &s->st.dropped,
                      .why = DHT_STORE_DROPPED};
    return sweep_run(&w);
}

void dht_store_set_observer(struct dht_store *s,
                            void (*fn)(void *arg, const struct dht_id *key,
                                       enum dht_store_gone why),
                            void *arg)
{
    s->observe = fn;
    s->observe_arg = arg;
}

int dht_store_flush(struct dht_store *s)
{
    return flush_now(s);
}

size_t dht_store_pending(const struct dht_store *s)
{
    return s->resync ? s->idx.n : s->n_pending;
}

void dht_store_get_stats(const struct dht_store *s, struct dht_store_stats *out)
{
    *out = s->st;
    out->pending = dht_store_pending(s);
}

/* ---- ranges -------------------------------------------------------------------- */

int dht_store_visit_range(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                          uint64_t now_ms, dht_store_visit_cb cb, void *arg)
{
    struct range_walk w;
    struct dht__entry *e;

    walk_init(&w, &s->idx, low, high);
    while ((e = walk_next(&w, &s->idx, now_ms)) != NULL) {
        struct dht_record rec;
        int rc;
        dht__entry_to_record(e, &rec);
        rc = cb(&rec, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int dht_store_list(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                   const struct dht_record_ident *after, uint64_t now_ms,
                   struct dht_record_ident *out, size_t max, size_t *n_out, bool *more)
{
    struct range_walk w;
    struct dht__entry *e;
    size_t n = 0;

    if (max > 0 && out == NULL)
        return -EINVAL;
    if (after != NULL && !in_range(low, high, &after->key))
        return -EINVAL;
    walk_init(&w, &s->idx, low, high);
    if (after != NULL)
        walk_after(&w, &s->idx, low, high, &after->key, &after->value_id);
    while (n < max && (e = walk_next(&w, &s->idx, now_ms)) != NULL) {
        out[n].key = e->key;
        out[n].value_id = e->value_id;
        out[n].seq = e->seq;
        out[n].tombstone = e->tombstone != 0;
        n++;
    }
    *more = walk_next(&w, &s->idx, now_ms) != NULL;
    *n_out = n;
    return 0;
}

static void digest_entry(crypto_generichash_state *h, const struct dht__entry *e)
{
    uint8_t buf[2 * DHT_ID_LEN + 8 + 1];

    memcpy(buf, e->key.b, DHT_ID_LEN);
    memcpy(buf + DHT_ID_LEN, e->value_id.b, DHT_ID_LEN);
    for (int i = 0; i < 8; i++)
        buf[2 * DHT_ID_LEN + i] = (uint8_t)(e->seq >> (56 - 8 * i));
    buf[2 * DHT_ID_LEN + 8] = e->tombstone ? 1 : 0;
    crypto_generichash_update(h, buf, sizeof(buf));
}

int dht_store_summarize(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                        uint64_t now_ms, struct dht_store_summary *out)
{
    crypto_generichash_state h;
    struct range_walk w;
    struct dht__entry *e;
    uint32_t count = 0;

    crypto_generichash_init(&h, NULL, 0, DHT_STORE_DIGEST_LEN);
    walk_init(&w, &s->idx, low, high);
    while ((e = walk_next(&w, &s->idx, now_ms)) != NULL) {
        digest_entry(&h, e);
        count++;
    }
    crypto_generichash_final(&h, out->digest, DHT_STORE_DIGEST_LEN);
    out->count = count;
    return 0;
}

int dht_store_summarize16(struct dht_store *s, const struct dht_id *low, const struct dht_id *high,
                          uint64_t now_ms, struct dht_store_summary out[DHT_STORE_SUBRANGES])
{
    crypto_generichash_state h[DHT_STORE_SUBRANGES];
    struct range_walk w;
    struct dht__entry *e;
    unsigned shift = subrange_shift(low, high);

    for (unsigned i = 0; i < DHT_STORE_SUBRANGES; i++) {
        crypto_generichash_init(&h[i], NULL, 0, DHT_STORE_DIGEST_LEN);
        out[i].count = 0;
    }
    walk_init(&w, &s->idx, low, high);
    while ((e = walk_next(&w, &s->idx, now_ms)) != NULL) {
        struct dht_id off;
        unsigned b;
        dht_id_sub(&off, &e->key, low);
        b = id_nibble_at(&off, shift);
        assert(b < DHT_STORE_SUBRANGES);
        digest_entry(&h[b], e);
        out[b].count++;
    }
    for (unsigned i = 0; i < DHT_STORE_SUBRANGES; i++)
        crypto_generichash_final(&h[i], out[i].digest, DHT_STORE_DIGEST_LEN);
    return 0;
}
