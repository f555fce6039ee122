/*
 * locator_dht.c: the DHT-backed locator (locator_dht.h).
 *
 * Design.  Each lookup or publish is one heap operation (struct ldop) in a bounded
 * count, chained through the asynchronous steps and freed by its last one:
 *   lookup:  local lookup (locator_local) -> DHT get -> merge -> callback;
 *   publish: DHT put of the AoR's resulting set -> local publish (sqlite, one commit
 *            per loop turn) -> callback;
 *   refresh: DHT put of the AoR's current set (no callback; the schedule's).
 * A step that fails completes the operation with its error.  No callback runs inside
 * the call that started the operation: the first asynchronous step always lies
 * between (the local locator and the overlay both complete later).
 *
 * Invariants: at most LDHT_OPS_MAX operations exist; the refresh queue holds at most
 * LDHT_QUEUE_MAX AoRs (the rest waits for the next round); sequence numbers of this
 * node's records only grow (wall-clock ms, or last + 1).
 */
#include "locator_dht.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "control.h"
#include "locator_local.h"
#include "mailbox.h"
#include "p2p/clock.h"
#include "p2p/dht_record.h"
#include "p2p/list.h"
#include "p2p/overlay_node.h"
#include "p2p/sip_accounts.h"
#include "p2p/sip_registrar.h"
#include "p2psipd.h"

#define LDHT_OPS_MAX 4096
#define LDHT_QUEUE_MAX 4096
#define LDHT_REFRESH_MS 30000 /* every AoR with bindings is re-put this often */
#define LDHT_RATE_PER_S 200   /* refresh puts a second, at most */
#define LDHT_REFRESH_INFLIGHT 64
#define LDHT_TOMBSTONE_MS 120000
#define LDHT_TTL_MAX_MS (23ull * 3600 * 1000) /* under the store's 24 h cap */

enum ldop_kind { LD_LOOKUP = 1, LD_PUBLISH, LD_REFRESH };

struct ldop {
    enum ldop_kind kind;
    struct locator_dht *loc;
    char aor[SIP_AOR_MAX];
    sip_locator_lookup_cb lookup_cb;
    sip_locator_publish_cb publish_cb;
    void *arg;
    bool cancelled;   /* its user went away: complete silently */
    bool in_dht;      /* waiting for the overlay (cancellable there) */
    bool tombstone;   /* publish, refresh: the record put removes the AoR's bindings here */
    bool owner_asked; /* lookup: nothing found; the AoR's owner record was asked for */
    uint64_t dht_ns;  /* uv_hrtime() when the DHT get or put went out (metrics) */
    /* lookup: the local answer, kept while the DHT is asked */
    int local_status;
    size_t nlocal;
    struct sip_binding *local;
    /* publish: the registrar's changes, written locally once the DHT has them */
    size_t nchanges;
    struct sip_binding changes[SIP_PUBLISH_MAX];
    bool removes[SIP_PUBLISH_MAX];
    struct p2p_list link; /* in loc->ops */
};

struct locator_dht {
    struct p2psipd *d;
    struct p2p_list ops; /* every live operation, for shutdown */
    size_t nops;
    uint64_t last_seq;
    char (*queue)[SIP_AOR_MAX]; /* AoRs to re-publish, a ring */
    size_t qhead, qcount;
    size_t refreshing;
    uint64_t next_round, t_rate;
    double tokens;
    struct locator_dht_stats st;
    struct mailbox *mb; /* offline MESSAGEs */
};

/* ---- value, key, node names ------------------------------------------------------- */

int locator_dht_value_encode(const struct locator_dht_value *v, uint8_t *buf, size_t cap)
{
    size_t k = 0;

    if (v->n > SIP_LOOKUP_MAX)
        return -EINVAL;
    if (cap < 42)
        return -ENOSPC;
    buf[k++] = LOCATOR_DHT_VALUE_VERSION;
    memcpy(buf + k, v->node.b, DHT_ID_LEN);
    k += DHT_ID_LEN;
    memcpy(buf + k, v->super.b, DHT_ID_LEN);
    k += DHT_ID_LEN;
    buf[k++] = (uint8_t)v->n;
    for (size_t i = 0; i < v->n; i++) {
        size_t il = strnlen(v->contacts[i].instance, SIP_INSTANCE_MAX - 1);
        if (k + 7 + il > cap)
            return -ENOSPC;
        buf[k++] = (uint8_t)(v->contacts[i].q >> 8);
        buf[k++] = (uint8_t)v->contacts[i].q;
        for (int s = 24; s >= 0; s -= 8)
            buf[k++] = (uint8_t)(v->contacts[i].expires_s >> s);
        buf[k++] = (uint8_t)il;
        memcpy(buf + k, v->contacts[i].instance, il);
        k += il;
    }
    return (int)k;
}

int locator_dht_value_decode(const uint8_t *buf, size_t len, struct locator_dht_value *out)
{
    struct locator_dht_value v;
    size_t k = 0;

    memset(&v, 0, sizeof(v));
    if (len < 42 || buf[0] != LOCATOR_DHT_VALUE_VERSION)
        return -EBADMSG;
    k = 1;
    memcpy(v.node.b, buf + k, DHT_ID_LEN);
    k += DHT_ID_LEN;
    memcpy(v.super.b, buf + k, DHT_ID_LEN);
    k += DHT_ID_LEN;
    v.n = buf[k++];
    if (v.n > SIP_LOOKUP_MAX)
        return -EBADMSG;
    for (size_t i = 0; i < v.n; i++) {
        size_t il;
        if (len - k < 7)
            return -EBADMSG;
        v.contacts[i].q = (uint16_t)(buf[k] << 8 | buf[k + 1]);
        v.contacts[i].expires_s = (uint64_t)buf[k + 2] << 24 | (uint64_t)buf[k + 3] << 16 |
                                  (uint64_t)buf[k + 4] << 8 | buf[k + 5];
        il = buf[k + 6];
        k += 7;
        /* An instance is text: a NUL inside would not survive the round trip. */
        if (il >= SIP_INSTANCE_MAX || len - k < il || memchr(buf + k, 0, il) != NULL)
            return -EBADMSG;
        memcpy(v.contacts[i].instance, buf + k, il);
        v.contacts[i].instance[il] = '\0';
        k += il;
    }
    if (k != len)
        return -EBADMSG;
    *out = v;
    return 0;
}

void locator_dht_key(const char *aor, struct dht_id *out)
{
    dht_id_hash(out, aor, strlen(aor));
}

const char *locator_dht_node_host(const struct dht_id *node, const struct dht_id *super, char *buf,
                                  size_t size)
{
    char a[DHT_ID_HEX_LEN + 1], b[DHT_ID_HEX_LEN + 1];

    dht_id_to_hex(node, a);
    if (super != NULL && !dht_id_is_zero(super)) {
        dht_id_to_hex(super, b);
        snprintf(buf, size, "%s.%s.node.invalid", a, b);
    } else {
        snprintf(buf, size, "%s.node.invalid", a);
    }
    return buf;
}

int locator_dht_parse_node_host(const char *host, size_t len, struct dht_id *node,
                                struct dht_id *super)
{
    static const char suffix[] = ".node.invalid";
    const size_t sl = sizeof(suffix) - 1;

    memset(super, 0, sizeof(*super));
    if (len < DHT_ID_HEX_LEN + sl || strncasecmp(host + len - sl, suffix, sl) != 0)
        return -ENOENT;
    if (dht_id_from_hex(node, host, DHT_ID_HEX_LEN) != 0)
        return -ENOENT;
    if (len == DHT_ID_HEX_LEN + sl)
        return 0;
    if (len != 2 * DHT_ID_HEX_LEN + 1 + sl || host[DHT_ID_HEX_LEN] != '.' ||
        dht_id_from_hex(super, host + DHT_ID_HEX_LEN + 1, DHT_ID_HEX_LEN) != 0)
        return -ENOENT;
    return 0;
}

/* ---- operations ----------------------------------------------------------------------- */

static struct ldop *op_new(struct locator_dht *loc, enum ldop_kind kind, const char *aor)
{
    struct ldop *o;

    if (loc->nops >= LDHT_OPS_MAX)
        return NULL;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->kind = kind;
    o->loc = loc;
    snprintf(o->aor, sizeof(o->aor), "%s", aor);
    p2p_list_push_front(&loc->ops, &o->link);
    loc->nops++;
    return o;
}

static void op_free(struct ldop *o)
{
    struct locator_dht *loc = o->loc;

    p2p_list_remove(&o->link);
    loc->nops--;
    free(o->local);
    free(o);
}

static struct overlay_node *overlay_of(const struct locator_dht *loc)
{
    return loc->d->overlay;
}

/* The key that signs an AoR's records (locator_dht.h, Ownership). */
static void aor_secret(struct locator_dht *loc, const char *aor, uint8_t sk[64])
{
    const struct sip_account *acc =
        loc->d->accounts ? sip_accounts_find(loc->d->accounts, p2p_slice_cstr(aor)) : NULL;
    uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    static const char label[] = "p2psip-aor-key-v1";
    crypto_generichash_state st;

    if (acc == NULL) {
        memcpy(sk, loc->d->identity.ed_sk, 64);
        return;
    }
    /* BLAKE2b-256 keyed by the label over AoR || 0 || secret: the same on every node
     * that holds this account, and useless to anyone who does not. */
    crypto_generichash_init(&st, (const uint8_t *)label, sizeof(label) - 1, sizeof(seed));
    crypto_generichash_update(&st, (const uint8_t *)aor, strlen(aor) + 1);
    crypto_generichash_update(&st, (const uint8_t *)acc->secret, strlen(acc->secret));
    crypto_generichash_final(&st, seed, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof(seed));
}

/*
 * Builds this node's record for aor: its bindings (after `changes`), or a tombstone
 * when none is left.
 */
static int build_record(struct locator_dht *loc, const char *aor, const struct ldop *with,
                        struct dht_record *rec, uint8_t *valbuf, size_t cap)
{
    struct p2psipd *d = loc->d;
    struct sip_binding cur[SIP_LOOKUP_MAX];
    struct locator_dht_value v;
    uint64_t now = uv_now(d->loop), wall = p2p_wall_ms(), until = 0;
    struct dht_peer sp;
    static const char label[] = "p2psip-binding:";
    uint8_t vid[sizeof(label) - 1 + DHT_ID_LEN];
    uint8_t sk[64];
    int n, len;

    n = d->registrar ? sip_registrar_lookup(d->registrar, aor, now, cur, SIP_LOOKUP_MAX) : 0;
    if (n < 0)
        n = 0;
    /* The REGISTER's changes, not committed in the registrar yet. */
    for (size_t i = 0; with != NULL && i < with->nchanges; i++) {
        int at = -1;
        for (int k = 0; k < n; k++)
            if (strcmp(cur[k].contact, with->changes[i].contact) == 0)
                at = k;
        if (with->removes[i]) {
            if (at >= 0)
                cur[at] = cur[--n];
        } else if (at >= 0) {
            cur[at] = with->changes[i];
        } else if (n < SIP_LOOKUP_MAX) {
            cur[n++] = with->changes[i];
        }
    }
    memset(&v, 0, sizeof(v));
    v.node = d->identity.id;
    if (overlay_of(loc) != NULL && overlay_node_super(overlay_of(loc), &sp) == 0)
        v.super = sp.id; /* a client is reached through its super-node */
    for (int k = 0; k < n; k++) {
        uint64_t exp_wall;
        if (cur[k].expires_ms <= now)
            continue;
        exp_wall = wall + (cur[k].expires_ms - now);
        if (exp_wall > until)
            until = exp_wall;
        v.contacts[v.n].q = cur[k].q;
        v.contacts[v.n].expires_s = exp_wall / 1000;
        snprintf(v.contacts[v.n].instance, sizeof(v.contacts[v.n].instance), "%s", cur[k].instance);
        v.n++;
    }
    memset(rec, 0, sizeof(*rec));
    locator_dht_key(aor, &rec->key);
    memcpy(vid, label, sizeof(label) - 1);
    memcpy(vid + sizeof(label) - 1, d->identity.id.b, DHT_ID_LEN);
    dht_id_hash(&rec->value_id, vid, sizeof(vid));
    loc->last_seq = wall > loc->last_seq ? wall : loc->last_seq + 1;
    rec->seq = loc->last_seq;
    if (v.n == 0) {
        rec->tombstone = true;
        rec->expiry_ms = wall + LDHT_TOMBSTONE_MS;
    } else {
        len = locator_dht_value_encode(&v, valbuf, cap);
        if (len < 0)
            return len;
        rec->value = valbuf;
        rec->value_len = (size_t)len;
        rec->expiry_ms = until > wall + LDHT_TTL_MAX_MS ? wall + LDHT_TTL_MAX_MS : until;
    }
    aor_secret(loc, aor, sk);
    len = dht_record_sign(rec, sk);
    sodium_memzero(sk, sizeof(sk));
    return len;
}

/* ---- lookup ------------------------------------------------------------------------------ */

/* Completes a lookup; bs may point into o (its local answer), which lives until the
 * callback has returned. */
static void lookup_finish(struct ldop *o, int status, const struct sip_binding *bs, size_t n)
{
    sip_locator_lookup_cb cb = o->lookup_cb;
    void *arg = o->arg;
    struct sip_binding *keep = o->local;

    o->local = NULL;
    op_free(o);
    cb(status, bs, n, arg);
    free(keep);
}

/* No binding anywhere: an AoR whose owner record lives (mailbox.h) is a known user
 * who is not reachable now (480, RFC 3261 21.4.18), not an unknown one (404).  So a
 * call in the seconds after every replica of a binding died says "try again". */
static void owner_got(int status, const struct dht_record *recs, size_t nrec, void *arg)
{
    struct ldop *o = arg;
    bool known = false;

    if (status == -ECANCELED) {
        lookup_finish(o, -ECANCELED, NULL, 0);
        return;
    }
    for (size_t i = 0; status == 0 && i < nrec; i++)
        known |= !recs[i].tombstone;
    lookup_finish(o, known ? 0 : -ENOENT, NULL, 0);
}

static void dht_got(int status, const struct dht_record *recs, size_t nrec, void *arg)
{
    struct ldop *o = arg;
    struct locator_dht *loc = o->loc;
    struct p2psipd *d = loc->d;
    struct sip_binding *out;
    uint64_t now = uv_now(d->loop), wall = p2p_wall_ms();
    size_t n = 0, remote = 0, stale = 0;

    if (status == -ECANCELED) {
        lookup_finish(o, -ECANCELED, NULL, 0);
        return;
    }
    p2psipd__observe(d, P2PSIPD_LAT_GET_LOOKUP, o->dht_ns);
    out = calloc(SIP_LOOKUP_MAX, sizeof(*out));
    if (out == NULL) {
        lookup_finish(o, o->local_status, o->local, o->nlocal);
        return;
    }
    for (size_t i = 0; i < o->nlocal && n < SIP_LOOKUP_MAX; i++)
        out[n++] = o->local[i];
    for (size_t i = 0; status == 0 && i < nrec && n < SIP_LOOKUP_MAX; i++) {
        struct locator_dht_value v;
        uint64_t until = 0;
        uint16_t q = 0;
        char host[128];
        if (recs[i].tombstone ||
            locator_dht_value_decode(recs[i].value, recs[i].value_len, &v) != 0 ||
            dht_id_eq(&v.node, &d->identity.id))
            continue; /* our own phones were answered locally */
        if (d->overlay != NULL &&
            (overlay_node_peer_dead(d->overlay, &v.node) ||
             (!dht_id_is_zero(&v.super) && overlay_node_peer_dead(d->overlay, &v.super)))) {
            stale++;
            continue; /* its node is gone: a stale binding, until its record expires */
        }
        for (size_t k = 0; k < v.n; k++) {
            if (v.contacts[k].expires_s * 1000 <= wall)
                continue;
            if (v.contacts[k].expires_s * 1000 > until)
                until = v.contacts[k].expires_s * 1000;
            if (v.contacts[k].q > q)
                q = v.contacts[k].q;
        }
        if (until == 0)
            continue;
        /* One target per node: that node forks to its own phones. */
        memset(&out[n], 0, sizeof(out[n]));
        snprintf(out[n].aor, sizeof(out[n].aor), "%s", o->aor);
        snprintf(out[n].contact, sizeof(out[n].contact), "%s", o->aor);
        snprintf(out[n].hop, sizeof(out[n].hop), "sip:%s;lr",
                 locator_dht_node_host(&v.node, &v.super, host, sizeof(host)));
        out[n].q = q;
        out[n].expires_ms = now + (until - wall);
        n++;
        remote++;
    }
    if (remote > 0) {
        loc->st.lookups_remote++;
        loc->st.remote_targets += remote;
        lookup_finish(o, 0, out, n);
    } else if (stale > 0 && o->nlocal == 0) {
        lookup_finish(o, 0, NULL, 0); /* known, but its only node is gone: 480 */
    } else if (o->local_status == -ENOENT && (status == 0 || status == -ENOENT) &&
               !o->owner_asked && overlay_of(loc) != NULL) {
        struct dht_id key;
        o->owner_asked = true;
        mailbox_owner_key(o->aor, &key);
        if (overlay_node_get(overlay_of(loc), &key, owner_got, o) != 0)
            lookup_finish(o, -ENOENT, NULL, 0);
    } else if (o->local_status == 0 || status == 0 || status == -ENOENT) {
        lookup_finish(o, o->local_status, o->local, o->nlocal);
    } else {
        lookup_finish(o, status, NULL, 0); /* the DHT failed and we know nothing */
    }
    free(out);
}

static void local_looked_up(int status, const struct sip_binding *bs, size_t n, void *arg)
{
    struct ldop *o = arg;
    struct dht_id key;
    int rc;

    if (o->cancelled) {
        op_free(o);
        return;
    }
    o->local_status = status;
    if (status == 0 && n > 0) {
        o->local = calloc(n, sizeof(*o->local));
        if (o->local != NULL) {
            memcpy(o->local, bs, n * sizeof(*bs));
            o->nlocal = n;
        }
    }
    if (status == -ECANCELED || overlay_of(o->loc) == NULL) {
        lookup_finish(o, status, o->local, o->nlocal);
        return;
    }
    if (o->nlocal == 0 && overlay_node_cut_off(overlay_of(o->loc))) {
        /* Cut off: the DHT cannot answer; say so now (480), not after its timeout. */
        lookup_finish(o, -ENETUNREACH, NULL, 0);
        return;
    }
    locator_dht_key(o->aor, &key);
    o->dht_ns = uv_hrtime();
    rc = overlay_node_get(overlay_of(o->loc), &key, dht_got, o);
    if (rc == 0)
        o->in_dht = true;
    else if (o->nlocal > 0)
        lookup_finish(o, status, o->local, o->nlocal); /* no DHT now: what we have */
    else
        lookup_finish(o, rc, NULL, 0); /* not in any overlay: we cannot know (480) */
}

static int op_lookup(void *ctx, const char *aor, sip_locator_lookup_cb cb, void *arg)
{
    struct locator_dht *loc = ctx;
    struct sip_locator local = locator_local_get(loc->d->locator);
    struct ldop *o = op_new(loc, LD_LOOKUP, aor);
    int rc;

    if (o == NULL)
        return -EAGAIN;
    o->lookup_cb = cb;
    o->arg = arg;
    loc->st.lookups++;
    rc = local.ops->lookup(local.ctx, aor, local_looked_up, o);
    if (rc != 0)
        op_free(o);
    return rc;
}

/* ---- publish ------------------------------------------------------------------------------ */

static void publish_finish(struct ldop *o, int status)
{
    sip_locator_publish_cb cb = o->publish_cb;
    void *arg = o->arg;

    if (status != 0)
        o->loc->st.put_errors++;
    op_free(o);
    if (cb != NULL)
        cb(status, arg);
}

/* The AoR's record is stored: its owner record follows, and a phone that just
 * registered gets what its mailbox holds. */
static void aor_stored(struct locator_dht *loc, const char *aor, bool online)
{
    uint8_t sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];

    aor_secret(loc, aor, sk);
    if (crypto_sign_ed25519_sk_to_pk(pk, sk) == 0)
        mailbox_aor_stored(loc->mb, aor, pk, sk, online);
    sodium_memzero(sk, sizeof(sk));
}

static void local_published(int status, void *arg)
{
    struct ldop *o = arg;
    struct locator_dht *loc = o->loc;
    char aor[SIP_AOR_MAX];
    bool online = !o->tombstone;

    snprintf(aor, sizeof(aor), "%s", o->aor);
    publish_finish(o, status); /* the REGISTER's 200 first, then its messages */
    if (status == 0)
        aor_stored(loc, aor, online);
}

/* `watch`: the AoR's record at this node is in the DHT (or its tombstone is). */
static void binding_event(struct locator_dht *loc, const struct ldop *o)
{
    struct control *ctl = loc->d->control;
    struct dht_id key;
    char hex[DHT_ID_HEX_LEN + 1];

    if (ctl == NULL || !control_watched(ctl))
        return;
    locator_dht_key(o->aor, &key);
    dht_id_to_hex(&key, hex);
    control_publish(ctl, json_pack("{s:s, s:s, s:s, s:s, s:b}", "event", "binding", "op",
                                   o->tombstone ? "removed" : "published", "aor", o->aor, "key",
                                   hex, "refresh", o->kind == LD_REFRESH));
}

static void dht_put_done(int status, unsigned acks, void *arg)
{
    struct ldop *o = arg;
    struct locator_dht *loc = o->loc;
    struct sip_binding_change ch[SIP_PUBLISH_MAX];
    struct sip_locator local;
    struct overlay_node *ov = overlay_of(loc);
    struct dht_node *ring = ov != NULL ? overlay_node_dht(ov) : NULL;
    int rc;

    if (status != -ECANCELED)
        p2psipd__observe(loc->d,
                         o->kind == LD_REFRESH ? P2PSIPD_LAT_PUT_REFRESH : P2PSIPD_LAT_PUT_REGISTER,
                         o->dht_ns);
    if (status == 0 && acks == 0 && ring != NULL && overlay_node_role(ov) == OVERLAY_ROLE_MEMBER &&
        dht_node_route(ring)->n_preds + dht_node_route(ring)->n_succs == 0) {
        /* A member with no leaf left (cut off, before the verdict) stored it on
         * itself only: a binding nobody else holds is no binding.  Only a ring of
         * one (-s) keeps records by itself; a client trusts its super-node's count. */
        status = -EHOSTUNREACH;
    }
    if (status == 0)
        binding_event(loc, o);
    if (status == -EPERM) {
        loc->st.put_refused++; /* another key owns this AoR */
        p2p_warn_rl(loc->d->log, &loc->d->overlay_log, uv_now(loc->d->loop),
                    "DHT: the binding of %s is owned by another key: refused", o->aor);
    }
    if (o->kind == LD_REFRESH) {
        loc->refreshing--;
        if (status != 0)
            loc->st.put_errors++;
        else if (o->tombstone)
            aor_stored(loc, o->aor, false); /* gone offline: its owner record stays findable */
        op_free(o);
        return;
    }
    if (status != 0) {
        publish_finish(o, status);
        return;
    }
    /* In the DHT: now durable here too, and then the REGISTER gets its 200. */
    local = locator_local_get(loc->d->locator);
    for (size_t i = 0; i < o->nchanges; i++) {
        ch[i].binding = &o->changes[i];
        ch[i].remove = o->removes[i];
    }
    rc = local.ops->publish(local.ctx, ch, o->nchanges, local_published, o);
    if (rc != 0)
        publish_finish(o, rc);
}

static int put_aor(struct locator_dht *loc, struct ldop *o)
{
    uint8_t val[DHT_RECORD_VALUE_MAX];
    struct dht_record rec;
    int rc;

    if (overlay_of(loc) == NULL)
        return -ENOTCONN;
    if (overlay_node_cut_off(overlay_of(loc)))
        return -ENETUNREACH; /* its put could only reach itself: no silent 200 */
    rc = build_record(loc, o->aor, o->kind == LD_PUBLISH ? o : NULL, &rec, val, sizeof(val));
    if (rc < 0)
        return rc;
    loc->st.puts++;
    o->tombstone = rec.tombstone;
    o->dht_ns = uv_hrtime();
    return overlay_node_put(overlay_of(loc), &rec, dht_put_done, o);
}

static int op_publish(void *ctx, const struct sip_binding_change *changes, size_t n,
                      sip_locator_publish_cb cb, void *arg)
{
    struct locator_dht *loc = ctx;
    struct ldop *o;
    int rc;

    if (n == 0 || n > SIP_PUBLISH_MAX || cb == NULL)
        return -EINVAL;
    o = op_new(loc, LD_PUBLISH, changes[0].binding->aor);
    if (o == NULL)
        return -EAGAIN;
    o->publish_cb = cb;
    o->arg = arg;
    o->nchanges = n;
    for (size_t i = 0; i < n; i++) {
        o->changes[i] = *changes[i].binding;
        o->removes[i] = changes[i].remove;
    }
    rc = put_aor(loc, o);
    if (rc != 0)
        op_free(o);
    return rc;
}

static void op_cancel(void *ctx, void *arg)
{
    struct locator_dht *loc = ctx;
    struct p2p_list *it, *tmp;

    P2P_LIST_FOREACH_SAFE(it, tmp, &loc->ops)
    {
        struct ldop *o = P2P_LIST_ENTRY(it, struct ldop, link);
        if (o->kind != LD_LOOKUP || o->arg != arg || o->cancelled)
            continue;
        if (o->in_dht) {
            if (overlay_of(loc) != NULL)
                (void)overlay_node_cancel(overlay_of(loc), o);
            op_free(o);
        } else {
            o->cancelled = true; /* the local locator still owes its answer */
        }
    }
    mailbox_cancel(loc->mb, arg);
}

static int op_keep(void *ctx, const char *aor, const char *raw, size_t len,
                   sip_locator_publish_cb cb, void *arg)
{
    struct locator_dht *loc = ctx;

    return mailbox_keep(loc->mb, aor, raw, len, cb, arg);
}

static const struct sip_locator_ops ops = {
    .lookup = op_lookup,
    .publish = op_publish,
    .cancel = op_cancel,
    .keep = op_keep,
};

struct sip_locator locator_dht_get(struct locator_dht *loc)
{
    struct sip_locator l = {&ops, loc};
    return l;
}

/* ---- keeping records alive ------------------------------------------------------------------ */

void locator_dht_changed(struct locator_dht *loc, const char *aor)
{
    size_t at;

    if (loc->qcount >= LDHT_QUEUE_MAX)
        return; /* the next refresh round covers it */
    at = (loc->qhead + loc->qcount) % LDHT_QUEUE_MAX;
    snprintf(loc->queue[at], SIP_AOR_MAX, "%s", aor);
    loc->qcount++;
}

struct collect {
    struct locator_dht *loc;
    char last[SIP_AOR_MAX];
};

static void collect_aor(const struct sip_binding *b, void *arg)
{
    struct collect *c = arg;

    if (strcmp(c->last, b->aor) == 0)
        return; /* the bindings of an AoR come together */
    snprintf(c->last, sizeof(c->last), "%s", b->aor);
    locator_dht_changed(c->loc, b->aor);
}

void locator_dht_republish_all(struct locator_dht *loc)
{
    struct collect c;

    if (loc->d->registrar == NULL)
        return;
    c.loc = loc;
    c.last[0] = '\0';
    sip_registrar_foreach(loc->d->registrar, collect_aor, &c);
}

void locator_dht_tick(struct locator_dht *loc, uint64_t now)
{
    struct overlay_node *ov = overlay_of(loc);
    enum overlay_role role;

    if (ov == NULL)
        return;
    role = overlay_node_role(ov);
    if (role == OVERLAY_ROLE_SEEKING || overlay_node_cut_off(ov))
        return; /* nowhere to put: the queue waits */
    if (now >= loc->next_round) {
        loc->next_round = now + LDHT_REFRESH_MS;
        if (loc->qcount == 0)
            locator_dht_republish_all(loc);
    }
    loc->tokens += (double)(now - loc->t_rate) * LDHT_RATE_PER_S / 1000.0;
    if (loc->tokens > LDHT_RATE_PER_S)
        loc->tokens = LDHT_RATE_PER_S;
    loc->t_rate = now;
    while (loc->qcount > 0 && loc->tokens >= 1.0 && loc->refreshing < LDHT_REFRESH_INFLIGHT) {
        struct ldop *o = op_new(loc, LD_REFRESH, loc->queue[loc->qhead]);
        loc->qhead = (loc->qhead + 1) % LDHT_QUEUE_MAX;
        loc->qcount--;
        loc->tokens -= 1.0;
        if (o == NULL)
            break;
        if (put_aor(loc, o) != 0) {
            op_free(o);
            continue;
        }
        loc->refreshing++;
        loc->st.republished++;
    }
}

/* ---- life cycle --------------------------------------------------------------------------- */

int locator_dht_new(struct locator_dht **out, struct p2psipd *d)
{
    struct locator_dht *loc = calloc(1, sizeof(*loc));

    if (loc == NULL)
        return -ENOMEM;
    loc->queue = calloc(LDHT_QUEUE_MAX, sizeof(*loc->queue));
    if (loc->queue == NULL) {
        free(loc);
        return -ENOMEM;
    }
    if (mailbox_new(&loc->mb, d) != 0) {
        free(loc->queue);
        free(loc);
        return -ENOMEM;
    }
    loc->d = d;
    p2p_list_init(&loc->ops);
    *out = loc;
    return 0;
}

void locator_dht_free(struct locator_dht *loc)
{
    if (loc == NULL)
        return;
    /* The overlay and the local locator completed theirs already (they close
     * first); whatever still waits here ends now. */
    while (!p2p_list_empty(&loc->ops)) {
        struct ldop *o = P2P_LIST_ENTRY(loc->ops.next, struct ldop, link);
        if (o->kind == LD_LOOKUP)
            lookup_finish(o, -ECANCELED, NULL, 0);
        else if (o->kind == LD_PUBLISH)
            publish_finish(o, -ECANCELED);
        else
            op_free(o);
    }
    mailbox_free(loc->mb);
    free(loc->queue);
    free(loc);
}

void locator_dht_stats(const struct locator_dht *loc, struct locator_dht_stats *out)
{
    *out = loc->st;
    mailbox_stats(loc->mb, &out->mailbox);
}
