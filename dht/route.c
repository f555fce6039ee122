/*
 * route.c: routing table, leaf set and per-neighbour RTO (see dht_route.h).
 *
 * The pool is a small array scanned linearly: at N = 1000 a node knows about 50
 * neighbours (3 useful rows plus 16 leaves), so a scan of 50 x 20-byte IDs is
 * cheaper than keeping a hash table in sync.  All ring comparisons go through
 * dht_id_closer so that every node breaks ties the same way.
 */
#include "p2p/dht_route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* RFC 6298 2.2: first sample SRTT = R, RTTVAR = R/2.  2.3: later samples
 * RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT + 1/8 R (scaled integers). */
void dht_rto_sample(struct dht_rto *r, uint32_t rtt_ms)
{
    if (rtt_ms == 0)
        rtt_ms = 1;
    if (r->srtt8 == 0) {
        r->srtt8 = rtt_ms << 3;
        r->rttvar4 = (rtt_ms << 2) / 2;
    } else {
        int32_t err = (int32_t)rtt_ms - (int32_t)(r->srtt8 >> 3);
        uint32_t aerr = (uint32_t)(err < 0 ? -err : err);
        r->rttvar4 = r->rttvar4 - (r->rttvar4 >> 2) + aerr;
        r->srtt8 = (uint32_t)((int32_t)r->srtt8 + err);
    }
    r->backoff = 0;
}

void dht_rto_sample_prior(struct dht_rto *r, uint32_t rtt_ms, const struct dht_rto *prior)
{
    bool first = r->srtt8 == 0;

    dht_rto_sample(r, rtt_ms);
    /* A path's own first sample says nothing of its variation: RFC 6298 2.2 takes
     * R/2, but the node has already seen how its paths vary. */
    if (first && prior != NULL && prior->srtt8 != 0 && prior->rttvar4 < r->rttvar4)
        r->rttvar4 = prior->rttvar4 > 0 ? prior->rttvar4 : 1;
}

uint32_t dht_rto_value(const struct dht_rto *r, const struct dht_rto_config *cfg)
{
    uint64_t v;

    /* RFC 6298 2.1 before a sample, 2.3 after: RTO = SRTT + max(G, 4 RTTVAR). */
    if (r->srtt8 == 0)
        v = cfg->initial_ms;
    else
        v = (r->srtt8 >> 3) + (r->rttvar4 > 0 ? r->rttvar4 : 1);
    if (v < cfg->floor_ms)
        v = cfg->floor_ms;
    v <<= r->backoff; /* RFC 6298 5.5: back off the timer */
    if (v > cfg->cap_ms)
        v = cfg->cap_ms; /* RFC 6298 2.5: a maximum value */
    return (uint32_t)v;
}

void dht_rto_backoff(struct dht_rto *r)
{
    if (r->backoff < 8)
        r->backoff++;
}

int dht_route_init(struct dht_route *rt, const struct dht_id *self, unsigned leaf_half)
{
    if (leaf_half < 1 || leaf_half > DHT_LEAF_HALF_MAX)
        return -EINVAL;
    memset(rt, 0, sizeof(*rt));
    rt->self = *self;
    rt->leaf_half = leaf_half;
    return 0;
}

void dht_route_free(struct dht_route *rt)
{
    if (rt == NULL)
        return;
    free(rt->pool);
    rt->pool = NULL;
    rt->pool_len = rt->pool_alloc = 0;
}

static int find_index(const struct dht_route *rt, const struct dht_id *id)
{
    for (unsigned i = 0; i < rt->pool_len; i++)
        if (dht_route_slot_used(rt, i) && dht_id_eq(&rt->pool[i].peer.id, id))
            return (int)i;
    return -1;
}

struct dht_nbr *dht_route_find(const struct dht_route *rt, const struct dht_id *id)
{
    int i = find_index(rt, id);
    return i < 0 ? NULL : &rt->pool[i];
}

static int alloc_slot(struct dht_route *rt)
{
    for (unsigned i = 0; i < rt->pool_len; i++)
        if (!dht_route_slot_used(rt, i))
            return (int)i;
    if (rt->pool_len == rt->pool_alloc) {
        unsigned n = rt->pool_alloc ? rt->pool_alloc * 2u : 16u;
        struct dht_nbr *p;
        if (n > DHT_ROUTE_POOL_MAX)
            n = DHT_ROUTE_POOL_MAX;
        if (n <= rt->pool_alloc)
            return -ENOSPC;
        p = realloc(rt->pool, n * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        rt->pool = p;
        rt->pool_alloc = (uint16_t)n;
    }
    return rt->pool_len++;
}

/* Clockwise distance from self to id (successor side) or from id to self. */
static void side_dist(const struct dht_route *rt, const struct dht_id *id, bool succ,
                      struct dht_id *out)
{
    if (succ)
        dht_id_sub(out, id, &rt->self);
    else
        dht_id_sub(out, &rt->self, id);
}

static bool side_promising(const struct dht_route *rt, const struct dht_id *id, bool succ)
{
    const uint16_t *arr = succ ? rt->succs : rt->preds;
    unsigned n = succ ? rt->n_succs : rt->n_preds;
    struct dht_id d, dfar;

    if (n < rt->leaf_half)
        return true;
    side_dist(rt, id, succ, &d);
    side_dist(rt, &rt->pool[arr[n - 1]].peer.id, succ, &dfar);
    return dht_id_cmp(&d, &dfar) < 0;
}

bool dht_route_leaf_promising(const struct dht_route *rt, const struct dht_id *id)
{
    if (dht_id_eq(id, &rt->self))
        return false;
    return side_promising(rt, id, true) || side_promising(rt, id, false);
}

bool dht_route_useful(const struct dht_route *rt, const struct dht_id *id)
{
    unsigned r;
    uint16_t cell;

    if (dht_id_eq(id, &rt->self) || find_index(rt, id) >= 0)
        return false;
    if (dht_route_leaf_promising(rt, id))
        return true;
    r = dht_id_shared_prefix(&rt->self, id);
    cell = rt->cells[r][dht_id_digit(id, r)];
    return cell == 0 || (rt->pool[cell - 1].flags & DHT_NBR_SUSPECT);
}

/* Every change of an entry's flags goes through here, so on_change sees each
 * membership transition exactly once. */
static void set_flags(struct dht_route *rt, unsigned i, unsigned flags)
{
    const unsigned member = DHT_NBR_RT | DHT_NBR_LEAF;
    unsigned before = rt->pool[i].flags;

    rt->pool[i].flags = (uint8_t)flags;
    if (rt->on_change != NULL && ((before ^ flags) & member) != 0)
        rt->on_change(rt->change_arg, &rt->pool[i].peer, before & member, flags & member);
}

static void release_if_unused(struct dht_route *rt, unsigned i)
{
    if (!dht_route_slot_used(rt, i)) {
        set_flags(rt, i, 0);
        while (rt->pool_len > 0 && !dht_route_slot_used(rt, rt->pool_len - 1u))
            rt->pool_len--;
    }
}

/* Inserts pool index i on one side; returns true when the side changed. */
static bool side_insert(struct dht_route *rt, unsigned i, bool succ)
{
    uint16_t *arr = succ ? rt->succs : rt->preds;
    uint8_t *n = succ ? &rt->n_succs : &rt->n_preds;
    uint8_t flag = succ ? DHT_NBR_SUCC : DHT_NBR_PRED;
    struct dht_id d, dj;
    unsigned pos;

    if (rt->pool[i].flags & flag)
        return false;
    if (!side_promising(rt, &rt->pool[i].peer.id, succ))
        return false;
    side_dist(rt, &rt->pool[i].peer.id, succ, &d);
    for (pos = 0; pos < *n; pos++) {
        side_dist(rt, &rt->pool[arr[pos]].peer.id, succ, &dj);
        if (dht_id_cmp(&d, &dj) < 0)
            break;
    }
    if (*n == rt->leaf_half) {
        unsigned out = arr[*n - 1];
        (*n)--;
        set_flags(rt, out, rt->pool[out].flags & ~(unsigned)flag);
        /* released by the caller once i is placed, so i's slot cannot be reused */
        if (out != i && !dht_route_slot_used(rt, out))
            set_flags(rt, out, 0);
    }
    memmove(&arr[pos + 1], &arr[pos], (*n - pos) * sizeof(arr[0]));
    arr[pos] = (uint16_t)i;
    (*n)++;
    set_flags(rt, i, rt->pool[i].flags | flag);
    return true;
}

struct dht_nbr *dht_route_add(struct dht_route *rt, const struct dht_peer *p, bool *changed_leaf)
{
    int i = find_index(rt, &p->id);
    bool fresh = false, changed = false;
    unsigned r, c;
    uint16_t cell;

    if (changed_leaf != NULL)
        *changed_leaf = false;
    if (dht_id_eq(&p->id, &rt->self))
        return NULL;
    if (i < 0) {
        if (!dht_route_useful(rt, &p->id))
            return NULL;
        i = alloc_slot(rt);
        if (i < 0)
            return NULL;
        memset(&rt->pool[i], 0, sizeof(rt->pool[i]));
        rt->pool[i].peer = *p;
        fresh = true;
    } else {
        rt->pool[i].peer.addr = p->addr;
    }
    changed |= side_insert(rt, (unsigned)i, true);
    changed |= side_insert(rt, (unsigned)i, false);

    r = dht_id_shared_prefix(&rt->self, &p->id);
    c = dht_id_digit(&p->id, r);
    cell = rt->cells[r][c];
    if (cell == 0) {
        rt->cells[r][c] = (uint16_t)(i + 1);
        set_flags(rt, (unsigned)i, rt->pool[i].flags | DHT_NBR_RT);
    } else if ((int)cell - 1 != i && (rt->pool[cell - 1].flags & DHT_NBR_SUSPECT)) {
        unsigned old = cell - 1u;
        set_flags(rt, old, rt->pool[old].flags & ~(unsigned)DHT_NBR_RT);
        rt->cells[r][c] = (uint16_t)(i + 1);
        set_flags(rt, (unsigned)i, rt->pool[i].flags | DHT_NBR_RT);
        if (!dht_route_slot_used(rt, old))
            set_flags(rt, old, 0);
    }
    if (fresh && !dht_route_slot_used(rt, (unsigned)i)) {
        release_if_unused(rt, (unsigned)i);
        return NULL;
    }
    /* trim trailing free slots left by leaf-set evictions */
    release_if_unused(rt, rt->pool_len > 0 ? rt->pool_len - 1u : 0);
    if (changed_leaf != NULL)
        *changed_leaf = changed;
    return &rt->pool[i];
}

static bool side_remove(struct dht_route *rt, unsigned i, bool succ)
{
    uint16_t *arr = succ ? rt->succs : rt->preds;
    uint8_t *n = succ ? &rt->n_succs : &rt->n_preds;

    for (unsigned k = 0; k < *n; k++) {
        if (arr[k] == i) {
            memmove(&arr[k], &arr[k + 1], (*n - k - 1) * sizeof(arr[0]));
            (*n)--;
            set_flags(rt, i, rt->pool[i].flags & ~(unsigned)(succ ? DHT_NBR_SUCC : DHT_NBR_PRED));
            return true;
        }
    }
    return false;
}

unsigned dht_route_remove(struct dht_route *rt, const struct dht_id *id)
{
    int i = find_index(rt, id);
    unsigned was = 0, r, c;

    if (i < 0)
        return 0;
    if (side_remove(rt, (unsigned)i, false))
        was |= DHT_NBR_PRED;
    if (side_remove(rt, (unsigned)i, true))
        was |= DHT_NBR_SUCC;
    r = dht_id_shared_prefix(&rt->self, id);
    c = dht_id_digit(id, r);
    if (rt->cells[r][c] == (uint16_t)(i + 1))
        rt->cells[r][c] = 0;
    set_flags(rt, (unsigned)i, 0);
    release_if_unused(rt, (unsigned)i);
    return was;
}

bool dht_route_in_leaf_range(const struct dht_route *rt, const struct dht_id *key)
{
    struct dht_id span, off;
    const struct dht_id *pfar, *sfar;

    if (rt->n_preds == 0 || rt->n_succs == 0)
        return true;
    for (unsigned k = 0; k < rt->n_succs; k++)
        if (rt->pool[rt->succs[k]].flags & DHT_NBR_PRED)
            return true; /* sides overlap: the leaf set is the whole ring */
    pfar = &rt->pool[rt->preds[rt->n_preds - 1]].peer.id;
    sfar = &rt->pool[rt->succs[rt->n_succs - 1]].peer.id;
    dht_id_sub(&span, sfar, pfar);
    dht_id_sub(&off, key, pfar);
    return dht_id_cmp(&off, &span) <= 0;
}

static bool excluded(const struct dht_nbr *e, const struct dht_id *excl, size_t n_excl)
{
    for (size_t k = 0; k < n_excl; k++)
        if (dht_id_eq(&e->peer.id, &excl[k]))
            return true;
    return false;
}

static bool usable(const struct dht_nbr *e, const struct dht_id *excl, size_t n_excl)
{
    return !(e->flags & DHT_NBR_SUSPECT) && !excluded(e, excl, n_excl);
}

struct dht_nbr *dht_route_next_hop(const struct dht_route *rt, const struct dht_id *key,
                                   const struct dht_id *excl, size_t n_excl)
{
    struct dht_nbr *best = NULL;
    const struct dht_id *best_id = &rt->self;
    unsigned r;
    uint16_t cell;

    /* Pastry step 1: the key is covered by the leaf set.  Suspects are passed over
     * when a live member is closer than self (that member decides, with its own
     * view of the suspect).  When self is closer than every live member, the
     * closest suspect is still returned: passing over a live root because one ACK
     * was lost would deliver at the wrong node; the caller decides. */
    if (dht_route_in_leaf_range(rt, key)) {
        struct dht_nbr *sbest = NULL;
        const struct dht_id *sbest_id = &rt->self;
        for (unsigned s = 0; s < 2; s++) {
            const uint16_t *arr = s ? rt->succs : rt->preds;
            unsigned n = s ? rt->n_succs : rt->n_preds;
            for (unsigned k = 0; k < n; k++) {
                struct dht_nbr *e = &rt->pool[arr[k]];
                if (excluded(e, excl, n_excl))
                    continue;
                if (e->flags & DHT_NBR_SUSPECT) {
                    if (dht_id_closer(key, &e->peer.id, sbest_id) < 0) {
                        sbest = e;
                        sbest_id = &e->peer.id;
                    }
                } else if (dht_id_closer(key, &e->peer.id, best_id) < 0) {
                    best = e;
                    best_id = &e->peer.id;
                }
            }
        }
        return best != NULL ? best : sbest;
    }
    /* Step 2: the routing-table cell that shares one more digit with the key. */
    r = dht_id_shared_prefix(&rt->self, key);
    if (r >= DHT_ROUTE_ROWS)
        return NULL;
    cell = rt->cells[r][dht_id_digit(key, r)];
    if (cell != 0 && usable(&rt->pool[cell - 1], excl, n_excl))
        return &rt->pool[cell - 1];
    /* Step 3, the rare case: any node with as long a prefix, numerically closer. */
    for (unsigned i = 0; i < rt->pool_len; i++) {
        struct dht_nbr *e = &rt->pool[i];
        if (!dht_route_slot_used(rt, i) || !usable(e, excl, n_excl))
            continue;
        if (dht_id_shared_prefix(&e->peer.id, key) >= r &&
            dht_id_closer(key, &e->peer.id, best_id) < 0) {
            best = e;
            best_id = &e->peer.id;
        }
    }
    return best;
}

size_t dht_route_closest_leaves(const struct dht_route *rt, const struct dht_id *key,
                                struct dht_nbr **out, size_t n)
{
    struct dht_nbr *all[2 * DHT_LEAF_HALF_MAX];
    size_t m = 0;

    for (unsigned s = 0; s < 2; s++) {
        const uint16_t *arr = s ? rt->succs : rt->preds;
        unsigned cnt = s ? rt->n_succs : rt->n_preds;
        for (unsigned k = 0; k < cnt; k++) {
            struct dht_nbr *e = &rt->pool[arr[k]];
            if ((e->flags & DHT_NBR_SUSPECT) || (s == 1 && (e->flags & DHT_NBR_PRED)))
                continue;
            /* insertion sort by closeness to key */
            size_t pos = m;
            while (pos > 0 && dht_id_closer(key, &e->peer.id, &all[pos - 1]->peer.id) < 0) {
                all[pos] = all[pos - 1];
                pos--;
            }
            all[pos] = e;
            m++;
        }
    }
    if (m > n)
        m = n;
    memcpy(out, all, m * sizeof(out[0]));
    return m;
}

bool dht_route_is_replica(const struct dht_route *rt, const struct dht_id *key, size_t n)
{
    size_t closer = 0;

    if (!dht_route_in_leaf_range(rt, key))
        return false;
    for (unsigned s = 0; s < 2; s++) {
        const uint16_t *arr = s ? rt->succs : rt->preds;
        unsigned cnt = s ? rt->n_succs : rt->n_preds;
        for (unsigned k = 0; k < cnt; k++) {
            const struct dht_nbr *e = &rt->pool[arr[k]];
            if ((e->flags & DHT_NBR_SUSPECT) || (s == 1 && (e->flags & DHT_NBR_PRED)))
                continue;
            if (dht_id_closer(key, &e->peer.id, &rt->self) < 0)
                closer++;
        }
    }
    return closer <= n;
}

size_t dht_route_leafset(const struct dht_route *rt, struct dht_peer *out, size_t cap)
{
    size_t m = 0;

    for (unsigned k = 0; k < rt->n_preds && m < cap; k++)
        out[m++] = rt->pool[rt->preds[k]].peer;
    for (unsigned k = 0; k < rt->n_succs && m < cap; k++) {
        const struct dht_nbr *e = &rt->pool[rt->succs[k]];
        if (!(e->flags & DHT_NBR_PRED))
            out[m++] = e->peer;
    }
    return m;
}

size_t dht_route_row(const struct dht_route *rt, unsigned r, struct dht_peer *out, size_t cap)
{
    size_t m = 0;

    if (r >= DHT_ROUTE_ROWS)
        return 0;
    for (unsigned c = 0; c < DHT_ROUTE_COLS && m < cap; c++)
        if (rt->cells[r][c] != 0)
            out[m++] = rt->pool[rt->cells[r][c] - 1].peer;
    return m;
}

unsigned dht_route_depth(const struct dht_route *rt)
{
    for (unsigned r = DHT_ROUTE_ROWS; r > 0; r--)
        for (unsigned c = 0; c < DHT_ROUTE_COLS; c++)
            if (rt->cells[r - 1][c] != 0)
                return r;
    return 0;
}
