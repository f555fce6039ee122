/*
 * store_mem.c: the in-memory record index, a sorted array of entry pointers.
 *
 * Design.  Entries are allocated one by one with their value inline (about 170
 * bytes plus the value), and the array holds only pointers, so an insert moves 8
 * bytes per later record and a range is a contiguous run in ring order.  A key
 * lookup is a binary search.  The array doubles when full and halves when a
 * quarter full, so a node of the 1000-node simulator holding a few records costs a
 * few hundred bytes, not a preallocated table.
 */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_MIN_CAP 8

static int entry_cmp(const struct dht__entry *e, const struct dht_id *key,
                     const struct dht_id *value_id)
{
    int c = dht_id_cmp(&e->key, key);
    return c != 0 ? c : dht_id_cmp(&e->value_id, value_id);
}

size_t dht__index_lower_bound(const struct dht__index *idx, const struct dht_id *key,
                              const struct dht_id *value_id)
{
    size_t lo = 0, hi = idx->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (entry_cmp(idx->v[mid], key, value_id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t dht__index_upper_key(const struct dht__index *idx, const struct dht_id *key)
{
    size_t lo = 0, hi = idx->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dht_id_cmp(&idx->v[mid]->key, key) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int index_resize(struct dht__index *idx, size_t cap)
{
    struct dht__entry **v;

    if (cap == 0) {
        free(idx->v);
        idx->v = NULL;
        idx->cap = 0;
        return 0;
    }
    v = realloc(idx->v, cap * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    idx->v = v;
    idx->cap = cap;
    return 0;
}

int dht__index_insert_at(struct dht__index *idx, size_t pos, struct dht__entry *e)
{
    assert(pos <= idx->n);
    if (idx->n == idx->cap) {
        size_t cap = idx->cap < INDEX_MIN_CAP ? INDEX_MIN_CAP : 2 * idx->cap;
        if (cap > SIZE_MAX / sizeof(*idx->v))
            return -ENOMEM;
        int rc = index_resize(idx, cap);
        if (rc < 0)
            return rc;
    }
    memmove(&idx->v[pos + 1], &idx->v[pos], (idx->n - pos) * sizeof(*idx->v));
    idx->v[pos] = e;
    idx->n++;
    return 0;
}

static void index_maybe_shrink(struct dht__index *idx)
{
    /* Shrinking cannot fail in a way that matters: on failure the old, larger
     * array stays valid. */
    if (idx->n == 0)
        (void)index_resize(idx, 0);
    else if (idx->cap > INDEX_MIN_CAP && idx->n < idx->cap / 4)
        (void)index_resize(idx, idx->cap / 2 < INDEX_MIN_CAP ? INDEX_MIN_CAP : idx->cap / 2);
}

struct dht__entry *dht__index_remove_at(struct dht__index *idx, size_t pos)
{
    struct dht__entry *e;

    assert(pos < idx->n);
    e = idx->v[pos];
    memmove(&idx->v[pos], &idx->v[pos + 1], (idx->n - pos - 1) * sizeof(*idx->v));
    idx->n--;
    index_maybe_shrink(idx);
    return e;
}

size_t dht__index_filter(struct dht__index *idx, bool (*keep)(const struct dht__entry *, void *),
                         void (*gone)(struct dht__entry *, void *), void *arg)
{
    size_t w = 0, removed;

    for (size_t r = 0; r < idx->n; r++) {
        struct dht__entry *e = idx->v[r];
        if (keep(e, arg)) {
            idx->v[w++] = e;
        } else {
            gone(e, arg);
            free(e);
        }
    }
    removed = idx->n - w;
    idx->n = w;
    index_maybe_shrink(idx);
    return removed;
}

void dht__index_free(struct dht__index *idx)
{
    for (size_t i = 0; i < idx->n; i++)
        free(idx->v[i]);
    free(idx->v);
    idx->v = NULL;
    idx->n = idx->cap = 0;
}

struct dht__entry *dht__entry_new(const struct dht_record *rec, uint64_t keep_until)
{
    struct dht__entry *e;

    assert(rec->value_len <= DHT_RECORD_VALUE_MAX);
    e = malloc(sizeof(*e) + rec->value_len);
    if (e == NULL)
        return NULL;
    e->key = rec->key;
    e->value_id = rec->value_id;
    e->seq = rec->seq;
    e->expiry_ms = rec->expiry_ms;
    e->keep_until = keep_until;
    memcpy(e->owner, rec->owner, sizeof(e->owner));
    memcpy(e->sig, rec->sig, sizeof(e->sig));
    e->value_len = (uint16_t)rec->value_len;
    e->tombstone = rec->tombstone ? 1 : 0;
    e->mailbox = rec->mailbox ? 1 : 0;
    e->dirty = 0;
    e->rowid = 0;
    if (rec->value_len > 0)
        memcpy(e->value, rec->value, rec->value_len);
    return e;
}

void dht__entry_to_record(const struct dht__entry *e, struct dht_record *out)
{
    out->key = e->key;
    out->value_id = e->value_id;
    out->seq = e->seq;
    out->expiry_ms = e->expiry_ms;
    memcpy(out->owner, e->owner, sizeof(out->owner));
    memcpy(out->sig, e->sig, sizeof(out->sig));
    out->tombstone = e->tombstone != 0;
    out->mailbox = e->mailbox != 0;
    out->value = e->value_len > 0 ? e->value : NULL;
    out->value_len = e->value_len;
}
