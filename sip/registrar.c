/*
 * registrar.c: the SIP registrar (RFC 3261 10.3), API in sip_registrar.h.
 *
 * Design.  Bindings live in memory: a chained hash table of AoR entries keyed by
 * the canonical AoR (FNV-1a, doubled when the load passes 1), each holding a short
 * list of bindings, and one binary min-heap of all bindings ordered by expiry so
 * that sip_registrar_advance() pops exactly what is due.  A REGISTER is checked
 * and turned into a list of changes (add, refresh, remove) against the current
 * bindings; the changes go to the locator's publish, and only its completion
 * commits them to the table and answers, 200 or 503.  The request bytes are kept
 * (one copy) until then so that the answer can be built from them.
 *
 * Invariants:
 *  - every binding in the table is in the heap at heap[b->heap_idx];
 *  - an AoR entry is in the table while it has a binding or a REGISTER in flight
 *    (aor->pending); when it has neither it is freed at once if it never held a
 *    binding, else it is "remembered" (issue 3): kept without bindings, on the
 *    reg->remembered FIFO, so that a lookup reports it as known without contact
 *    (the proxy's 480) rather than unknown (404);
 *  - remembering: an entry joins the FIFO's tail stamped with reg->clock_ms, the
 *    highest now_ms the registrar has been given (monotone, so the FIFO is sorted
 *    by that stamp), and is forgotten by sip_registrar_advance() once
 *    stamp + max_expires_s has passed (the longest a binding could have lived, so
 *    a phone that is merely late to refresh still gets 480; the current limit, so
 *    that a reconfigure keeps the FIFO sorted by due time), or dropped from the
 *    head (oldest first) when aor_add() needs room under max_aors; it leaves the
 *    FIFO when a REGISTER of it goes in flight or a binding is restored into it.
 *    Remembered entries are not persisted: a restart forgets them;
 *  - at most one REGISTER per AoR is in flight; a pending REGISTER's changes are
 *    re-matched against the bindings at commit time, since expiry may have removed
 *    some meanwhile;
 *  - naor <= max_aors, each AoR holds at most max_contacts bindings.
 */
#include "p2p/sip_registrar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/buf.h"
#include "p2p/list.h"
#include "p2p/sip_accounts.h"
#include "p2p/sip_build.h"
#include "p2p/sip_digest.h"
#include "p2p/sip_uri.h"

#define RESP_CAP 65536u /* a response never exceeds a SIP message */

struct reg_aor;

/*
 * A binding as held in memory: the fixed-size struct sip_binding (about 1.3 KB)
 * is only the exchange format; here the strings take what they need, in one
 * allocation with the node (a typical binding is about 250 bytes).
 */
struct reg_binding {
    struct reg_aor *aor;
    struct reg_binding *next; /* in aor->bindings */
    size_t heap_idx;
    uint64_t expires_ms;
    uint64_t conn_id;
    uint32_t cseq;
    uint16_t q;
    uint16_t path_port;
    char transport[8];
    const char *contact, *call_id, *instance, *path_host; /* into strs */
    char strs[];
};

struct reg_pending;

struct reg_aor {
    struct reg_aor *hnext; /* hash chain */
    uint64_t hash;
    struct reg_binding *bindings;
    size_t nbindings;
    struct reg_pending *pending;   /* REGISTER in flight for this AoR */
    bool bound;                    /* has held a binding: remembered when emptied */
    struct reg_aor *rprev, *rnext; /* in reg->remembered, while remembered */
    bool remembered;
    uint64_t gone_ms; /* while remembered: reg->clock_ms when it became so */
    char aor[];       /* canonical, NUL-terminated */
};

struct reg_change {
    struct sip_binding b;
    bool remove;
};

struct reg_pending {
    struct sip_registrar *reg;
    struct reg_aor *aor;
    struct p2p_list link; /* in reg->pending */
    void *txn;            /* NULL once forgotten */
    uint64_t now_ms;      /* when the REGISTER arrived */
    struct sip_path from;
    size_t nchanges;
    struct reg_change changes[SIP_PUBLISH_MAX];
    size_t req_len;
    char req[]; /* the REGISTER as received */
};

struct sip_registrar {
    struct sip_registrar_config cfg;
    bool cut_off;
    char to_tag[SIP_BRANCH_LEN + 1];

    struct reg_aor **buckets;
    size_t nbuckets; /* power of two */
    size_t naors;

    struct reg_binding **heap;
    size_t nheap, heap_alloc;

    struct p2p_list pending; /* REGISTERs waiting for their publish */

    /* AoR entries without binding kept for the 404/480 choice, oldest first */
    struct reg_aor *remembered, *remembered_tail;
    uint64_t clock_ms; /* highest now_ms seen */
};

/* ---- hash table of AoRs ---- */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static struct reg_aor *aor_find(const struct sip_registrar *reg, const char *aor)
{
    uint64_t h = fnv1a(aor);
    struct reg_aor *a = reg->buckets[h & (reg->nbuckets - 1)];

    for (; a; a = a->hnext) {
        if (a->hash == h && strcmp(a->aor, aor) == 0)
            return a;
    }
    return NULL;
}

static int table_grow(struct sip_registrar *reg)
{
    size_t n = reg->nbuckets * 2;
    struct reg_aor **nb = calloc(n, sizeof(*nb));

    if (!nb)
        return -ENOMEM;
    for (size_t i = 0; i < reg->nbuckets; i++) {
        struct reg_aor *a = reg->buckets[i], *next;
        for (; a; a = next) {
            next = a->hnext;
            a->hnext = nb[a->hash & (n - 1)];
            nb[a->hash & (n - 1)] = a;
        }
    }
    free(reg->buckets);
    reg->buckets = nb;
    reg->nbuckets = n;
    return 0;
}

static void aor_unlink_table(struct sip_registrar *reg, struct reg_aor *a)
{
    for (struct reg_aor **pp = &reg->buckets[a->hash & (reg->nbuckets - 1)]; *pp;
         pp = &(*pp)->hnext) {
        if (*pp == a) {
            *pp = a->hnext;
            break;
        }
    }
    reg->naors--;
}

/* Takes a off the remembered FIFO (it is in use again); no-op if not on it. */
static void aor_unremember(struct sip_registrar *reg, struct reg_aor *a)
{
    if (!a->remembered)
        return;
    if (a->rprev)
        a->rprev->rnext = a->rnext;
    else
        reg->remembered = a->rnext;
    if (a->rnext)
        a->rnext->rprev = a->rprev;
    else
        reg->remembered_tail = a->rprev;
    a->rprev = a->rnext = NULL;
    a->remembered = false;
}

/* Forgets a remembered entry: it leaves the FIFO and the table. */
static void aor_forget(struct sip_registrar *reg, struct reg_aor *a)
{
    aor_unremember(reg, a);
    aor_unlink_table(reg, a);
    free(a);
}

/* When a remembered entry stamped gone_ms is forgotten (saturating). */
static uint64_t remember_until(const struct sip_registrar *reg, uint64_t gone_ms)
{
    uint64_t d = (uint64_t)reg->cfg.max_expires_s * 1000u;

    return gone_ms > UINT64_MAX - d ? UINT64_MAX : gone_ms + d;
}

/*
 * Creates the entry of aor; the caller checked it is absent.  When the table is
 * full, the oldest remembered entry makes room; -ENOSPC when there is none.
 */
static int aor_add(struct sip_registrar *reg, const char *aor, struct reg_aor **out)
{
    struct reg_aor *a;
    size_t len = strlen(aor);

    if (len >= SIP_AOR_MAX)
        return -EINVAL;
    while (reg->naors >= reg->cfg.max_aors && reg->remembered)
        aor_forget(reg, reg->remembered); /* more than one only after max_aors was lowered */
    if (reg->naors >= reg->cfg.max_aors)
        return -ENOSPC;
    if (reg->naors >= reg->nbuckets && table_grow(reg) != 0)
        return -ENOMEM;
    a = calloc(1, sizeof(*a) + len + 1);
    if (!a)
        return -ENOMEM;
    memcpy(a->aor, aor, len + 1);
    a->hash = fnv1a(aor);
    a->hnext = reg->buckets[a->hash & (reg->nbuckets - 1)];
    reg->buckets[a->hash & (reg->nbuckets - 1)] = a;
    reg->naors++;
    *out = a;
    return 0;
}

/*
 * The entry holds nothing any more: remembered (FIFO tail, stamped with the
 * registrar's clock) when it once held a binding, else freed.
 */
static void aor_release(struct sip_registrar *reg, struct reg_aor *a)
{
    if (a->bindings || a->pending || a->remembered)
        return;
    if (!a->bound) {
        aor_unlink_table(reg, a);
        free(a);
        return;
    }
    a->remembered = true;
    a->gone_ms = reg->clock_ms;
    a->rnext = NULL;
    a->rprev = reg->remembered_tail;
    if (a->rprev)
        a->rprev->rnext = a;
    else
        reg->remembered = a;
    reg->remembered_tail = a;
}

/* The registrar's clock only moves forward (keeps the remembered FIFO sorted). */
static void clock_see(struct sip_registrar *reg, uint64_t now_ms)
{
    if (now_ms > reg->clock_ms)
        reg->clock_ms = now_ms;
}

/* ---- expiry heap ---- */

static void heap_set(struct sip_registrar *reg, size_t i, struct reg_binding *b)
{
    reg->heap[i] = b;
    b->heap_idx = i;
}

static void heap_up(struct sip_registrar *reg, size_t i)
{
    struct reg_binding *b = reg->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (reg->heap[parent]->expires_ms <= b->expires_ms)
            break;
        heap_set(reg, i, reg->heap[parent]);
        i = parent;
    }
    heap_set(reg, i, b);
}

static void heap_down(struct sip_registrar *reg, size_t i)
{
    struct reg_binding *b = reg->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = b->expires_ms;
        if (l < reg->nheap && reg->heap[l]->expires_ms < best) {
            m = l;
            best = reg->heap[l]->expires_ms;
        }
        if (l + 1 < reg->nheap && reg->heap[l + 1]->expires_ms < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(reg, i, reg->heap[m]);
        i = m;
    }
    heap_set(reg, i, b);
}

static int heap_push(struct sip_registrar *reg, struct reg_binding *b)
{
    if (reg->nheap == reg->heap_alloc) {
        size_t n = reg->heap_alloc ? reg->heap_alloc * 2 : 64;
        struct reg_binding **nh = realloc(reg->heap, n * sizeof(*nh));
        if (!nh)
            return -ENOMEM;
        reg->heap = nh;
        reg->heap_alloc = n;
    }
    heap_set(reg, reg->nheap++, b);
    heap_up(reg, reg->nheap - 1);
    return 0;
}

static void heap_remove(struct sip_registrar *reg, struct reg_binding *b)
{
    size_t i = b->heap_idx;
    struct reg_binding *last = reg->heap[--reg->nheap];

    if (i == reg->nheap)
        return;
    heap_set(reg, i, last);
    heap_up(reg, i);
    heap_down(reg, last->heap_idx);
}

/* The binding's expiry changed: restore the heap order. */
static void heap_fix(struct sip_registrar *reg, struct reg_binding *b)
{
    heap_up(reg, b->heap_idx);
    heap_down(reg, b->heap_idx);
}

/* ---- bindings ---- */

/* RFC 3261 10.3 step 6 / RFC 5626 6: same instance id, else URI equality (19.1.4). */
static bool contact_matches(const char *xc, const char *xi, const char *yc, const char *yi)
{
    struct sip_uri ux, uy;

    if (xi[0] && yi[0])
        return strcmp(xi, yi) == 0;
    if (sip_uri_parse(p2p_slice_cstr(xc), &ux) != 0 || sip_uri_parse(p2p_slice_cstr(yc), &uy) != 0)
        return strcmp(xc, yc) == 0;
    return sip_uri_equal(&ux, &uy);
}

static bool binding_matches(const struct sip_binding *x, const struct sip_binding *y)
{
    return contact_matches(x->contact, x->instance, y->contact, y->instance);
}

static struct reg_binding *binding_find(struct reg_aor *a, const struct sip_binding *b)
{
    for (struct reg_binding *rb = a->bindings; rb; rb = rb->next) {
        if (contact_matches(rb->contact, rb->instance, b->contact, b->instance))
            return rb;
    }
    return NULL;
}

/* The exchange form of a stored binding. */
static void binding_export(const struct reg_binding *rb, struct sip_binding *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->aor, sizeof(out->aor), "%s", rb->aor->aor);
    snprintf(out->contact, sizeof(out->contact), "%s", rb->contact);
    snprintf(out->call_id, sizeof(out->call_id), "%s", rb->call_id);
    snprintf(out->instance, sizeof(out->instance), "%s", rb->instance);
    snprintf(out->path.host, sizeof(out->path.host), "%s", rb->path_host);
    memcpy(out->path.transport, rb->transport, sizeof(out->path.transport));
    out->path.port = rb->path_port;
    out->path.conn_id = rb->conn_id;
    out->expires_ms = rb->expires_ms;
    out->q = rb->q;
    out->cseq = rb->cseq;
}

/* A stored binding made from b (whose strings the callers checked are
 * NUL-terminated), not linked anywhere yet. */
static struct reg_binding *binding_alloc(struct reg_aor *a, const struct sip_binding *b)
{
    size_t lc = strlen(b->contact) + 1, li = strlen(b->call_id) + 1;
    size_t ln = strlen(b->instance) + 1, lh = strlen(b->path.host) + 1;
    struct reg_binding *rb = malloc(sizeof(*rb) + lc + li + ln + lh);
    char *p;

    if (!rb)
        return NULL;
    memset(rb, 0, sizeof(*rb));
    p = rb->strs;
    rb->contact = memcpy(p, b->contact, lc);
    p += lc;
    rb->call_id = memcpy(p, b->call_id, li);
    p += li;
    rb->instance = memcpy(p, b->instance, ln);
    p += ln;
    rb->path_host = memcpy(p, b->path.host, lh);
    memcpy(rb->transport, b->path.transport, sizeof(rb->transport));
    rb->transport[sizeof(rb->transport) - 1] = '\0';
    rb->path_port = b->path.port;
    rb->conn_id = b->path.conn_id;
    rb->expires_ms = b->expires_ms;
    rb->q = b->q;
    rb->cseq = b->cseq;
    rb->aor = a;
    return rb;
}

/* Puts a new version of old in its place (list and heap).  -ENOMEM keeps old. */
static int binding_replace(struct sip_registrar *reg, struct reg_binding *old,
                           const struct sip_binding *b)
{
    struct reg_binding *nb = binding_alloc(old->aor, b);

    if (!nb)
        return -ENOMEM;
    for (struct reg_binding **pp = &old->aor->bindings; *pp; pp = &(*pp)->next) {
        if (*pp == old) {
            *pp = nb;
            break;
        }
    }
    nb->next = old->next;
    heap_set(reg, old->heap_idx, nb);
    heap_fix(reg, nb);
    free(old);
    return 0;
}

static int binding_insert(struct sip_registrar *reg, struct reg_aor *a, const struct sip_binding *b)
{
    struct reg_binding *rb = binding_alloc(a, b);

    if (!rb)
        return -ENOMEM;
    if (heap_push(reg, rb) != 0) {
        free(rb);
        return -ENOMEM;
    }
    rb->next = a->bindings;
    a->bindings = rb;
    a->nbindings++;
    a->bound = true;
    aor_unremember(reg, a);
    return 0;
}

/* Unlinks and frees rb; the AoR entry is left for aor_release(). */
static void binding_remove(struct sip_registrar *reg, struct reg_binding *rb)
{
    struct reg_aor *a = rb->aor;

    for (struct reg_binding **pp = &a->bindings; *pp; pp = &(*pp)->next) {
        if (*pp == rb) {
            *pp = rb->next;
            break;
        }
    }
    a->nbindings--;
    heap_remove(reg, rb);
    free(rb);
}

/*
 * A binding leaves the table other than by a REGISTER (expiry, or the proxy's
 * keep-alive): the daemon is told through the expired callback, then the binding
 * and, when it was the last, its AoR entry go.
 */
static void binding_drop(struct sip_registrar *reg, struct reg_binding *rb)
{
    struct reg_aor *a = rb->aor;

    if (reg->cfg.expired) {
        struct sip_binding b;
        binding_export(rb, &b);
        reg->cfg.expired(&b, reg->cfg.expired_arg);
    }
    binding_remove(reg, rb);
    aor_release(reg, a);
}

/* ---- responses ---- */

static int reply_status(struct sip_registrar *reg, void *txn, const struct sip_msg *req,
                        const struct sip_path *from, unsigned status, const char *reason,
                        struct p2p_slice extra)
{
    struct p2p_buf out;
    struct sip_resp r = {0};
    int rc;

    if (!txn)
        return 0;
    r.status = status;
    r.reason = p2p_slice_cstr(reason);
    r.to_tag = p2p_slice_cstr(reg->to_tag);
    r.src.host = p2p_slice_cstr(from->host);
    r.src.port = from->port;
    r.extra = extra;
    p2p_buf_init(&out, RESP_CAP);
    rc = sip_build_response(req, &r, &out);
    if (rc == 0)
        reg->cfg.reply(txn, out.data, out.len, reg->cfg.reply_arg);
    p2p_buf_free(&out);
    return rc;
}

static int reply_simple(struct sip_registrar *reg, void *txn, const struct sip_msg *req,
                        const struct sip_path *from, unsigned status, const char *reason)
{
    return reply_status(reg, txn, req, from, status, reason, (struct p2p_slice){NULL, 0});
}

/* 500/503 with Retry-After (RFC 3261 20.33). */
static int reply_retry(struct sip_registrar *reg, void *txn, const struct sip_msg *req,
                       const struct sip_path *from, unsigned status, const char *reason)
{
    char extra[64];
    int n = snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", reg->cfg.retry_after_s);

    return reply_status(reg, txn, req, from, status, reason, (struct p2p_slice){extra, (size_t)n});
}

/* RFC 3261 10.3 step 8: 200 listing every current binding with its remaining expiry. */
static int reply_ok(struct sip_registrar *reg, void *txn, const struct sip_msg *req,
                    const struct sip_path *from, const struct reg_aor *a, uint64_t now_ms)
{
    struct p2p_buf extra;
    int rc = 0;

    p2p_buf_init(&extra, RESP_CAP);
    for (const struct reg_binding *rb = a ? a->bindings : NULL; rb && rc == 0; rb = rb->next) {
        uint64_t left = rb->expires_ms > now_ms ? (rb->expires_ms - now_ms + 999) / 1000 : 0;
        rc = p2p_buf_printf(&extra, "Contact: <%s>;expires=%llu", rb->contact,
                            (unsigned long long)left);
        if (rc == 0 && rb->q != 1000)
            rc = p2p_buf_printf(&extra, ";q=%u.%03u", rb->q / 1000u, rb->q % 1000u);
        if (rc == 0 && rb->instance[0])
            rc = p2p_buf_printf(&extra, ";+sip.instance=\"%s\"", rb->instance);
        if (rc == 0)
            rc = p2p_buf_append(&extra, "\r\n", 2);
    }
    if (rc == 0)
        rc =
            reply_status(reg, txn, req, from, 200, NULL, (struct p2p_slice){extra.data, extra.len});
    p2p_buf_free(&extra);
    return rc;
}

/* ---- authentication ---- */

struct auth_lookup {
    const struct sip_account *acct;
};

/* sip_digest_lookup_cb: the secret of the To AoR's account, if username is its user. */
static int account_secret(struct p2p_slice username, struct p2p_slice realm,
                          enum sip_digest_alg alg, struct sip_digest_secret *out, void *arg)
{
    const struct auth_lookup *al = arg;
    const struct sip_account *acct = al->acct;

    (void)realm;
    (void)alg;
    if (!acct || !p2p_slice_eq(username, p2p_slice_cstr(acct->user)))
        return -ENOENT;
    switch (acct->kind) {
    case SIP_SECRET_PASSWORD:
        out->kind = SIP_DIGEST_SECRET_PASSWORD;
        out->ha1_alg = SIP_DIGEST_MD5;
        break;
    case SIP_SECRET_HA1_MD5:
        out->kind = SIP_DIGEST_SECRET_HA1;
        out->ha1_alg = SIP_DIGEST_MD5;
        break;
    case SIP_SECRET_HA1_SHA256:
        out->kind = SIP_DIGEST_SECRET_HA1;
        out->ha1_alg = SIP_DIGEST_SHA256;
        break;
    }
    out->value = p2p_slice_cstr(acct->secret);
    return 0;
}

static bool is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strncmp(host, "::ffff:127.", 11) == 0;
}

/*
 * Decides whether the REGISTER may change the bindings of aor.  Returns 0 to go
 * on, 1 when a response has been sent, or a negative errno.
 */
static int authorize(struct sip_registrar *reg, const struct sip_msg *req,
                     const struct sip_path *from, void *txn, const char *aor, uint64_t now_ms)
{
    struct sip_hdr_iter it;
    struct p2p_slice v, realm = p2p_slice_cstr(reg->cfg.realm);
    struct auth_lookup al;
    bool stale = false;
    struct p2p_buf ch;
    int rc;

    if (!reg->cfg.accounts) {
        /* The seed's rule: without accounts, only phones on this very host. */
        if (is_loopback(from->host) ||
            (reg->cfg.self && sip_self_has_host(reg->cfg.self, p2p_slice_cstr(from->host))))
            return 0;
        rc = reply_simple(reg, txn, req, from, 403, "Only local phones may register");
        return rc < 0 ? rc : 1;
    }
    al.acct = sip_accounts_find(reg->cfg.accounts, p2p_slice_cstr(aor));
    /* RFC 3261 22.3 / RFC 7616: the credentials for our realm, if any. */
    sip_hdr_iter_init(&it, req, SIP_HDR_AUTHORIZATION);
    while (sip_hdr_iter_next(&it, &v)) {
        struct sip_auth cr;
        if (sip_auth_parse(v, &cr) != 0 || !p2p_slice_caseeq_cstr(cr.scheme, "Digest") ||
            !p2p_slice_eq(cr.realm, realm))
            continue;
        rc = sip_digest_verify(reg->cfg.digest, &cr, req->method, req->ruri, realm, account_secret,
                               &al, now_ms);
        if (rc == 0)
            return 0;
        if (rc == -ESTALE) {
            stale = true;
        } else if (rc == -EBADMSG) {
            rc = reply_simple(reg, txn, req, from, 400, "Bad Request - malformed credentials");
            return rc < 0 ? rc : 1;
        } else if (rc != -EACCES && rc != -ENOENT) {
            return rc;
        }
        break;
    }
    /* RFC 3261 22.1: challenge (again) with 401; wrong credentials too, so that a
     * phone holding a nonce of a previous run of this node gets a fresh one. */
    p2p_buf_init(&ch, 4096);
    rc = sip_digest_challenge(reg->cfg.digest, &ch, "WWW-Authenticate", realm, stale, now_ms);
    if (rc == 0)
        rc = reply_status(reg, txn, req, from, 401, NULL, (struct p2p_slice){ch.data, ch.len});
    p2p_buf_free(&ch);
    return rc < 0 ? rc : 1;
}

/* ---- REGISTER processing ---- */

static int copy_cstr(struct p2p_slice s, char *dst, size_t size)
{
    return p2p_slice_copy(s, dst, size);
}

/*
 * Builds the changes of the REGISTER against a (may be NULL).  Returns 0, or a
 * status code >= 400 with *reason set (and *min_expires for 423).
 */
static unsigned compute_changes(struct sip_registrar *reg, const struct sip_msg *req,
                                const struct sip_path *from, const char *aor, struct reg_aor *a,
                                uint64_t now_ms, struct reg_pending *p, const char **reason)
{
    struct sip_hdr_iter it;
    struct p2p_slice v, callid = {0};
    const struct sip_hdr *h;
    struct sip_cseq cseq;
    uint32_t hdr_expires = reg->cfg.default_expires_s;
    bool star = false;
    size_t ncontacts = 0, nnew = 0, nremoved = 0;

    h = sip_msg_hdr(req, SIP_HDR_CALL_ID);
    if (h)
        callid = h->value;
    h = sip_msg_hdr(req, SIP_HDR_CSEQ);
    if (!h || sip_cseq_parse(h->value, &cseq) != 0 || callid.len == 0 ||
        callid.len >= SIP_CALLID_MAX) {
        *reason = "Bad Request - Call-ID or CSeq";
        return 400;
    }
    h = sip_msg_hdr(req, SIP_HDR_EXPIRES);
    if (h && sip_uint_parse(h->value, UINT32_MAX, &hdr_expires) != 0) {
        *reason = "Bad Request - malformed Expires";
        return 400;
    }

    sip_hdr_iter_init(&it, req, SIP_HDR_CONTACT);
    while (sip_hdr_iter_next(&it, &v)) {
        struct sip_contact c;
        if (sip_contact_parse(v, &c) != 0) {
            *reason = "Bad Request - malformed Contact";
            return 400;
        }
        ncontacts++;
        if (c.star)
            star = true;
    }
    if (star) {
        /* RFC 3261 10.3 step 6: "*" alone, with Expires: 0 */
        if (ncontacts != 1 || !h || hdr_expires != 0) {
            *reason = "Bad Request - Contact * needs Expires: 0 and no other Contact";
            return 400;
        }
        for (struct reg_binding *rb = a ? a->bindings : NULL; rb; rb = rb->next) {
            /* Same Call-ID: only a higher CSeq may remove it. */
            if (p2p_slice_eq(callid, p2p_slice_cstr(rb->call_id)) && cseq.num <= rb->cseq) {
                *reason = "Out of order CSeq";
                return 500;
            }
            if (p->nchanges == SIP_PUBLISH_MAX)
                break;
            binding_export(rb, &p->changes[p->nchanges].b);
            p->changes[p->nchanges].remove = true;
            p->nchanges++;
        }
        return 0;
    }
    if (ncontacts > reg->cfg.max_contacts) {
        *reason = "Too many contacts";
        return 403;
    }

    sip_hdr_iter_init(&it, req, SIP_HDR_CONTACT);
    while (sip_hdr_iter_next(&it, &v)) {
        struct sip_contact c;
        struct sip_uri u;
        struct reg_change *ch = &p->changes[p->nchanges];
        struct reg_binding *old;
        struct p2p_slice inst;
        uint32_t e;

        (void)sip_contact_parse(v, &c); /* parsed above */
        if (sip_uri_parse(c.addr.uri, &u) != 0) {
            *reason = "Bad Request - Contact URI";
            return 400;
        }
        memset(&ch->b, 0, sizeof(ch->b));
        if (copy_cstr(c.addr.uri, ch->b.contact, sizeof(ch->b.contact)) != 0) {
            *reason = "Contact URI too long";
            return 400;
        }
        if (sip_param_find(c.addr.params, "+sip.instance", &inst) && inst.p &&
            copy_cstr(inst, ch->b.instance, sizeof(ch->b.instance)) != 0) {
            *reason = "Bad Request - +sip.instance too long";
            return 400;
        }
        /* RFC 3261 10.3 step 7: the Contact's expires, else Expires, else default. */
        e = c.has_expires ? c.expires : hdr_expires;
        if (e != 0 && e < reg->cfg.min_expires_s) {
            *reason = NULL;
            return 423;
        }
        if (e > reg->cfg.max_expires_s)
            e = reg->cfg.max_expires_s;
        memcpy(ch->b.aor, aor, strlen(aor) + 1);
        ch->b.expires_ms = now_ms + (uint64_t)e * 1000u;
        ch->b.q = c.has_q ? c.q : 1000;
        (void)copy_cstr(callid, ch->b.call_id, sizeof(ch->b.call_id));
        ch->b.cseq = cseq.num;
        ch->b.path = *from;
        ch->remove = e == 0;

        /* The same contact twice in one request: the later one wins. */
        for (size_t i = 0; i < p->nchanges; i++) {
            if (binding_matches(&p->changes[i].b, &ch->b)) {
                *reason = "Bad Request - duplicate Contact";
                return 400;
            }
        }
        old = a ? binding_find(a, &ch->b) : NULL;
        if (old) {
            /* RFC 3261 10.3 step 7: same Call-ID needs a higher CSeq. */
            if (strcmp(old->call_id, ch->b.call_id) == 0 && cseq.num <= old->cseq) {
                *reason = "Out of order CSeq";
                return 500;
            }
            if (ch->remove) {
                binding_export(old, &ch->b); /* publish the removal of what is stored */
                nremoved++;
            }
        } else if (ch->remove) {
            continue; /* removing what is not there: nothing to publish */
        } else {
            nnew++;
        }
        p->nchanges++;
    }
    /* a phone replacing its contact in one request (remove + add) fits */
    if ((a ? a->nbindings : 0) - nremoved + nnew > reg->cfg.max_contacts) {
        *reason = "Too many contacts";
        return 403;
    }
    return 0;
}

/* Applies the publish's changes to the table (RFC 3261 10.3 step 7 "commit"). */
static int commit(struct sip_registrar *reg, struct reg_pending *p)
{
    struct reg_aor *a = p->aor;
    int rc = 0;

    for (size_t i = 0; i < p->nchanges; i++) {
        struct reg_change *ch = &p->changes[i];
        struct reg_binding *old = binding_find(a, &ch->b);
        if (ch->remove) {
            if (old)
                binding_remove(reg, old);
        } else if (old) {
            int r = binding_replace(reg, old, &ch->b);
            if (r != 0)
                rc = r;
        } else if (a->nbindings < reg->cfg.max_contacts) {
            int r = binding_insert(reg, a, &ch->b);
            if (r != 0)
                rc = r;
        }
    }
    return rc;
}

static void publish_done(int status, void *arg)
{
    struct reg_pending *p = arg;
    struct sip_registrar *reg = p->reg;
    struct sip_msg req;
    int rc;

    p2p_list_remove(&p->link);
    p->aor->pending = NULL;
    if (status == 0)
        status = commit(reg, p);
    if (p->txn && sip_msg_parse(&req, p->req, p->req_len, SIP_MSG_DGRAM, NULL) > 0) {
        uint64_t now = p->now_ms;
        if (status == 0)
            rc = reply_ok(reg, p->txn, &req, &p->from, p->aor, now);
        else if (status == -EPERM) /* the DHT: another key owns this AoR */
            rc = reply_simple(reg, p->txn, &req, &p->from, 403, "Forbidden - AoR owned elsewhere");
        else
            rc = reply_retry(reg, p->txn, &req, &p->from, 503, "Binding could not be stored");
        (void)rc; /* a response that cannot be built is lost like a datagram */
    }
    aor_release(reg, p->aor);
    free(p);
}

int sip_registrar_register(struct sip_registrar *reg, const struct sip_msg *req,
                           const struct sip_path *from, void *txn, uint64_t now_ms)
{
    const struct sip_hdr *to_h;
    struct sip_addr to;
    struct sip_uri to_uri;
    char aor[SIP_AOR_MAX];
    struct reg_aor *a;
    struct reg_pending *p;
    struct sip_binding_change changes[SIP_PUBLISH_MAX];
    const char *reason = NULL;
    unsigned status;
    int rc;

    if (!req->is_request || !p2p_slice_eq(req->method, P2P_SLICE_LIT("REGISTER")) ||
        !memchr(from->host, '\0', sizeof(from->host)))
        return -EINVAL;
    clock_see(reg, now_ms);
    if (reg->cut_off) {
        rc = reply_retry(reg, txn, req, from, 503, "Cut off from the overlay");
        return rc < 0 ? rc : 0;
    }
    /* RFC 3261 10.3 step 2: we support no extension a Require could name. */
    if (sip_msg_hdr(req, SIP_HDR_REQUIRE)) {
        const struct sip_hdr *rq = sip_msg_hdr(req, SIP_HDR_REQUIRE);
        char extra[SIP_MSG_MAX_LINE + 32];
        int n = snprintf(extra, sizeof(extra), "Unsupported: %.*s\r\n", (int)rq->value.len,
                         rq->value.p);
        if (n < 0 || (size_t)n >= sizeof(extra))
            n = 0;
        rc = reply_status(reg, txn, req, from, 420, NULL, (struct p2p_slice){extra, (size_t)n});
        return rc < 0 ? rc : 0;
    }
    /* RFC 3261 10.3 step 5: the AoR is the To URI, canonical. */
    to_h = sip_msg_hdr(req, SIP_HDR_TO);
    if (!to_h || sip_addr_parse(to_h->value, &to) != 0 || sip_uri_parse(to.uri, &to_uri) != 0 ||
        to_uri.scheme == SIP_URI_TEL || sip_uri_aor(&to_uri, aor, sizeof(aor)) < 0) {
        rc = reply_simple(reg, txn, req, from, 400, "Bad Request - To is not a SIP AoR");
        return rc < 0 ? rc : 0;
    }
    if (reg->cfg.self && reg->cfg.self->ndomains > 0 &&
        !sip_self_is_domain(reg->cfg.self, to_uri.host, to_uri.port)) {
        rc = reply_simple(reg, txn, req, from, 404, "Not Found - domain not served here");
        return rc < 0 ? rc : 0;
    }
    /* RFC 3261 10.3 step 3-4: authenticate, and the credentials must own the AoR. */
    rc = authorize(reg, req, from, txn, aor, now_ms);
    if (rc != 0)
        return rc < 0 ? rc : 0;

    a = aor_find(reg, aor);
    if (a && a->remembered && remember_until(reg, a->gone_ms) <= now_ms) {
        aor_forget(reg, a); /* due, advance() has not run yet: unknown */
        a = NULL;
    }
    if (a && a->pending) {
        rc = reply_retry(reg, txn, req, from, 500, "Registration of this AoR in progress");
        return rc < 0 ? rc : 0;
    }
    p = calloc(1, sizeof(*p) + req->head.len + req->body.len);
    if (!p)
        return -ENOMEM;
    status = compute_changes(reg, req, from, aor, a, now_ms, p, &reason);
    if (status == 423) {
        /* RFC 3261 10.3 step 7 / 20.23: the shortest interval we accept. */
        char extra[48];
        int n = snprintf(extra, sizeof(extra), "Min-Expires: %u\r\n", reg->cfg.min_expires_s);
        free(p);
        rc = reply_status(reg, txn, req, from, 423, NULL, (struct p2p_slice){extra, (size_t)n});
        return rc < 0 ? rc : 0;
    }
    if (status == 500) {
        free(p);
        rc = reply_retry(reg, txn, req, from, 500, reason);
        return rc < 0 ? rc : 0;
    }
    if (status != 0) {
        free(p);
        rc = reply_simple(reg, txn, req, from, status, reason);
        return rc < 0 ? rc : 0;
    }
    if (p->nchanges == 0) {
        /* A query (no Contact) or removals of nothing: answer with what is bound. */
        free(p);
        rc = reply_ok(reg, txn, req, from, a, now_ms);
        return rc < 0 ? rc : 0;
    }
    if (!a) {
        rc = aor_add(reg, aor, &a);
        if (rc == -ENOSPC) {
            free(p);
            rc = reply_retry(reg, txn, req, from, 503, "Registrar full");
            return rc < 0 ? rc : 0;
        }
        if (rc != 0) {
            free(p);
            return rc;
        }
    }
    p->reg = reg;
    p->aor = a;
    p->txn = txn;
    p->now_ms = now_ms;
    p->from = *from;
    /* The request bytes, so that the answer can be built when the publish is done. */
    memcpy(p->req, req->head.p, req->head.len);
    if (req->body.len)
        memcpy(p->req + req->head.len, req->body.p, req->body.len);
    p->req_len = req->head.len + req->body.len;
    for (size_t i = 0; i < p->nchanges; i++) {
        changes[i].binding = &p->changes[i].b;
        changes[i].remove = p->changes[i].remove;
    }
    a->pending = p;
    aor_unremember(reg, a); /* in use again; re-remembered if it ends empty */
    rc = reg->cfg.locator.ops->publish(reg->cfg.locator.ctx, changes, p->nchanges, publish_done, p);
    if (rc != 0) {
        a->pending = NULL;
        aor_release(reg, a);
        free(p);
        rc = reply_retry(reg, txn, req, from, 503, "Binding could not be stored");
        return rc < 0 ? rc : 0;
    }
    p2p_list_push_front(&reg->pending, &p->link);
    return 0;
}

void sip_registrar_forget(struct sip_registrar *reg, void *txn)
{
    struct p2p_list *it;

    P2P_LIST_FOREACH(it, &reg->pending)
    {
        struct reg_pending *p = P2P_LIST_ENTRY(it, struct reg_pending, link);
        if (p->txn == txn)
            p->txn = NULL;
    }
}

void sip_registrar_set_cut_off(struct sip_registrar *reg, bool cut_off)
{
    reg->cut_off = cut_off;
}

size_t sip_registrar_advance(struct sip_registrar *reg, uint64_t now_ms)
{
    size_t n = 0;

    clock_see(reg, now_ms);
    while (reg->nheap > 0 && reg->heap[0]->expires_ms <= now_ms) {
        struct reg_binding *rb = reg->heap[0];
        binding_drop(reg, rb);
        n++;
    }
    /* The FIFO is sorted by gone_ms: forget from its head what is due. */
    while (reg->remembered && remember_until(reg, reg->remembered->gone_ms) <= now_ms)
        aor_forget(reg, reg->remembered);
    return n;
}

uint64_t sip_registrar_next_deadline(const struct sip_registrar *reg)
{
    uint64_t t = reg->nheap ? reg->heap[0]->expires_ms : UINT64_MAX;

    if (reg->remembered) {
        uint64_t r = remember_until(reg, reg->remembered->gone_ms);
        if (r < t)
            t = r;
    }
    return t;
}

int sip_registrar_lookup(const struct sip_registrar *reg, const char *aor, uint64_t now_ms,
                         struct sip_binding *out, size_t max)
{
    const struct reg_aor *a = aor_find(reg, aor);
    size_t n = 0;

    /* A remembered entry past its time is unknown, even before advance() ran. */
    if (a && a->remembered && remember_until(reg, a->gone_ms) <= now_ms)
        a = NULL;
    if (!a && !(reg->cfg.accounts && sip_accounts_find(reg->cfg.accounts, p2p_slice_cstr(aor))))
        return -ENOENT;
    for (const struct reg_binding *rb = a ? a->bindings : NULL; rb; rb = rb->next) {
        size_t i;
        if (rb->expires_ms <= now_ms)
            continue;
        if (n == max) {
            /* Keep the highest q: replace the lowest if this one is higher. */
            if (max == 0 || out[max - 1].q >= rb->q)
                continue;
            n--;
        }
        /* insertion sort, highest q first */
        for (i = n; i > 0 && out[i - 1].q < rb->q; i--)
            out[i] = out[i - 1];
        binding_export(rb, &out[i]);
        n++;
    }
    return (int)n;
}

int sip_registrar_restore(struct sip_registrar *reg, const struct sip_binding *b, uint64_t now_ms)
{
    struct reg_aor *a;
    struct sip_uri u;
    int rc;

    clock_see(reg, now_ms);
    if (b->expires_ms <= now_ms)
        return -ETIME;
    if (!memchr(b->aor, '\0', sizeof(b->aor)) || !memchr(b->contact, '\0', sizeof(b->contact)) ||
        !memchr(b->call_id, '\0', sizeof(b->call_id)) ||
        !memchr(b->instance, '\0', sizeof(b->instance)) ||
        !memchr(b->path.host, '\0', sizeof(b->path.host)) ||
        sip_uri_parse(p2p_slice_cstr(b->contact), &u) != 0 || b->q > 1000)
        return -EINVAL;
    a = aor_find(reg, b->aor);
    if (a && binding_find(a, b))
        return -EEXIST;
    if (a && a->nbindings >= reg->cfg.max_contacts)
        return -ENOSPC;
    if (!a) {
        rc = aor_add(reg, b->aor, &a);
        if (rc != 0)
            return rc;
    }
    rc = binding_insert(reg, a, b);
    if (rc != 0)
        aor_release(reg, a);
    return rc;
}

int sip_registrar_remove(struct sip_registrar *reg, const char *aor, const char *contact)
{
    struct reg_aor *a = aor_find(reg, aor);
    struct sip_binding key;
    struct reg_binding *rb;

    if (!a)
        return -ENOENT;
    if (a->pending)
        return -EBUSY;
    memset(&key, 0, sizeof(key));
    if (p2p_slice_copy(p2p_slice_cstr(contact), key.contact, sizeof(key.contact)) != 0)
        return -ENOENT;
    rb = binding_find(a, &key);
    if (!rb)
        return -ENOENT;
    binding_drop(reg, rb);
    return 0;
}

void sip_registrar_foreach(const struct sip_registrar *reg,
                           void (*cb)(const struct sip_binding *b, void *arg), void *arg)
{
    for (size_t i = 0; i < reg->nbuckets; i++) {
        for (const struct reg_aor *a = reg->buckets[i]; a; a = a->hnext) {
            for (const struct reg_binding *rb = a->bindings; rb; rb = rb->next) {
                struct sip_binding b;
                binding_export(rb, &b);
                cb(&b, arg);
            }
        }
    }
}

size_t sip_registrar_aor_count(const struct sip_registrar *reg)
{
    return reg->naors;
}

size_t sip_registrar_binding_count(const struct sip_registrar *reg)
{
    return reg->nheap;
}

void sip_registrar_config_default(struct sip_registrar_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->default_expires_s = 3600;
    cfg->min_expires_s = 60;
    cfg->max_expires_s = 86400;
    cfg->max_aors = 100000;
    cfg->max_contacts = 10;
    cfg->retry_after_s = 5;
}

/* The policy checks shared by sip_registrar_new() and sip_registrar_reconfigure(). */
static int config_check_policy(const struct sip_registrar_config *cfg)
{
    if (cfg->max_aors == 0 || cfg->max_contacts == 0 || cfg->max_contacts > SIP_PUBLISH_MAX ||
        cfg->min_expires_s > cfg->max_expires_s || cfg->default_expires_s == 0)
        return -EINVAL;
    if (cfg->accounts && (!cfg->digest || !cfg->realm))
        return -EINVAL;
    return 0;
}

int sip_registrar_reconfigure(struct sip_registrar *reg, const struct sip_registrar_config *cfg)
{
    int rc = config_check_policy(cfg);

    if (rc != 0)
        return rc;
    reg->cfg.accounts = cfg->accounts;
    reg->cfg.digest = cfg->digest;
    reg->cfg.realm = cfg->realm;
    reg->cfg.default_expires_s = cfg->default_expires_s;
    reg->cfg.min_expires_s = cfg->min_expires_s;
    reg->cfg.max_expires_s = cfg->max_expires_s;
    reg->cfg.max_aors = cfg->max_aors;
    reg->cfg.max_contacts = cfg->max_contacts;
    reg->cfg.retry_after_s = cfg->retry_after_s;
    return 0;
}

int sip_registrar_new(struct sip_registrar **out, const struct sip_registrar_config *cfg)
{
    struct sip_registrar *reg;
    char branch[SIP_BRANCH_LEN + 1];

    if (!cfg->reply || !cfg->locator.ops || !cfg->locator.ops->publish ||
        config_check_policy(cfg) != 0)
        return -EINVAL;
    reg = calloc(1, sizeof(*reg));
    if (!reg)
        return -ENOMEM;
    reg->cfg = *cfg;
    p2p_list_init(&reg->pending);
    reg->nbuckets = 64;
    reg->buckets = calloc(reg->nbuckets, sizeof(*reg->buckets));
    if (!reg->buckets || sip_branch_new(branch, sizeof(branch)) < 0) {
        free(reg->buckets);
        free(reg);
        return -ENOMEM;
    }
    /* A To tag of our own for every response (RFC 3261 8.2.6.2), from the random
     * part of a branch. */
    memcpy(reg->to_tag, branch + 7, SIP_BRANCH_LEN - 7);
    reg->to_tag[SIP_BRANCH_LEN - 7] = '\0';
    *out = reg;
    return 0;
}

void sip_registrar_free(struct sip_registrar *reg)
{
    if (!reg)
        return;
    while (!p2p_list_empty(&reg->pending)) {
        struct reg_pending *p = P2P_LIST_ENTRY(reg->pending.next, struct reg_pending, link);
        p2p_list_remove(&p->link);
        free(p);
    }
    for (size_t i = 0; i < reg->nbuckets; i++) {
        struct reg_aor *a = reg->buckets[i], *next;
        for (; a; a = next) {
            struct reg_binding *rb = a->bindings, *bn;
            next = a->hnext;
            for (; rb; rb = bn) {
                bn = rb->next;
                free(rb);
            }
            free(a);
        }
    }
    free(reg->buckets);
    free(reg->heap);
    free(reg);
}
