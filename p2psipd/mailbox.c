/*
 * mailbox.c: MESSAGEs kept in the overlay for users who are offline (mailbox.h).
 *
 * One operation (struct mbop) per thing in flight, in mb->ops, at most
 * MAILBOX_OPS_MAX.  Each waits for one overlay get or put (its arg is the op, so
 * overlay_node_cancel() finds it) or for one delivery by the proxy.
 *
 *   keep:    get H(AoR) -> [get the owner record] -> seal -> put the mailbox value
 *   owner:   put the owner record (fire and forget, counted)
 *   fetch:   get the mailbox -> one deliver op per value (or a remove if it does not open)
 *   deliver: proxy -> 2xx -> put the tombstone (remove) | else left for the next REGISTER
 *
 * The sealed plaintext (never on the wire in clear):
 *     "p2psip-message-v1\r\nFrom: <name-addr>\r\nContent-Type: <type>\r\n
 *      Date: <Unix seconds>\r\n\r\n<body>"
 */
#include "mailbox.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "locator_dht.h"
#include "p2p/clock.h"
#include "p2p/dht_record.h"
#include "p2p/list.h"
#include "p2p/overlay_node.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_proxy.h"
#include "p2psipd.h"

#define MB_MAGIC "p2psip-message-v1\r\n"
#define MB_PLAIN_MAX (DHT_RECORD_VALUE_MAX - crypto_box_SEALBYTES)
#define MB_OWNER_TTL_MS (23ull * 3600 * 1000) /* under the store's 24 h cap */

enum mb_kind { MB_KEEP = 1, MB_OWNER, MB_FETCH, MB_DELIVER, MB_REMOVE };

struct mbop {
    enum mb_kind kind;
    struct mailbox *mb;
    struct p2p_list link;
    char aor[SIP_AOR_MAX];
    bool waiting; /* on the overlay or the proxy: cancel there when freed */
    /* keep */
    sip_locator_publish_cb cb;
    void *arg;
    bool owner_asked; /* the owner record was asked for (no live binding) */
    uint8_t *plain;
    size_t plain_len;
    /* fetch, deliver, remove: the AoR's key pair */
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    /* deliver, remove: the mailbox value's identity */
    struct dht_id key, value_id;
    uint64_t seq, expiry_ms;
};

/* The background work a REGISTER brings (the owner record, the mailbox fetch) must
 * not take the overlay's operation slots from the REGISTERs themselves: at most
 * MB_BG_INFLIGHT at once and MB_BG_PER_S a second (a burst of as many); what finds no
 * room is skipped and counted: the next REGISTER of the AoR does it. */
#define MB_BG_INFLIGHT 16
#define MB_BG_PER_S 20.0

struct mailbox {
    struct p2psipd *d;
    struct p2p_list ops;
    size_t nops, nbg;
    double tokens;
    uint64_t t_tokens;
    struct mailbox_stats st;
};

/* Takes one background slot now, or says there is none. */
static bool bg_take(struct mailbox *mb)
{
    uint64_t now = uv_now(mb->d->loop);

    mb->tokens += (double)(now - mb->t_tokens) * MB_BG_PER_S / 1000.0;
    if (mb->tokens > MB_BG_PER_S)
        mb->tokens = MB_BG_PER_S;
    mb->t_tokens = now;
    if (mb->tokens < 1.0 || mb->nbg >= MB_BG_INFLIGHT) {
        mb->st.skipped++;
        return false;
    }
    mb->tokens -= 1.0;
    return true;
}

/* ---- ops ------------------------------------------------------------------------------ */

static struct mbop *op_new(struct mailbox *mb, enum mb_kind kind, const char *aor)
{
    struct mbop *o;

    if (mb->nops >= MAILBOX_OPS_MAX)
        return NULL;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->kind = kind;
    o->mb = mb;
    snprintf(o->aor, sizeof(o->aor), "%s", aor);
    p2p_list_push_front(&mb->ops, &o->link);
    mb->nops++;
    mb->nbg += kind == MB_OWNER || kind == MB_FETCH;
    return o;
}

static void op_free(struct mbop *o)
{
    struct p2psipd *d = o->mb->d;

    if (o->waiting) {
        if (o->kind == MB_DELIVER && d->proxy != NULL)
            sip_proxy_deliver_cancel(d->proxy, o);
        else if (d->overlay != NULL)
            (void)overlay_node_cancel(d->overlay, o);
    }
    p2p_list_remove(&o->link);
    o->mb->nops--;
    o->mb->nbg -= o->kind == MB_OWNER || o->kind == MB_FETCH;
    free(o->plain);
    sodium_memzero(o->sk, sizeof(o->sk));
    free(o);
}

/* Ends a keep: its callback, then the op. */
static void keep_finish(struct mbop *o, int status)
{
    sip_locator_publish_cb cb = o->cb;
    void *arg = o->arg;
    struct mailbox *mb = o->mb;

    if (status == 0)
        mb->st.kept++;
    else if (status == -ENOENT)
        mb->st.keep_unknown++;
    else if (status != -ECANCELED)
        mb->st.keep_failed++;
    op_free(o); /* still waiting (shutdown): cancelled there */
    if (cb != NULL)
        cb(status, arg);
}

void mailbox_owner_key(const char *aor, struct dht_id *out)
{
    static const char label[] = "p2psip-aor-owner:";
    uint8_t buf[sizeof(label) - 1 + SIP_AOR_MAX];
    size_t n = strnlen(aor, SIP_AOR_MAX - 1);

    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, aor, n);
    dht_id_hash(out, buf, sizeof(label) - 1 + n);
}

/* ---- keeping ------------------------------------------------------------------------- */

static void keep_put_done(int status, unsigned acks, void *arg)
{
    struct mbop *o = arg;

    (void)acks;
    o->waiting = false;
    keep_finish(o, status == 0 ? 0 : status == -ECANCELED ? -ECANCELED : -EIO);
}

/* Seals o's message to P and puts it in P's mailbox. */
static void keep_seal_put(struct mbop *o, const uint8_t owner[DHT_RECORD_OWNER_LEN])
{
    struct p2psipd *d = o->mb->d;
    uint8_t xpk[crypto_box_PUBLICKEYBYTES], sealed[DHT_RECORD_VALUE_MAX];
    struct dht_record rec;
    uint64_t wall = p2p_wall_ms();
    int rc;

    if (crypto_sign_ed25519_pk_to_curve25519(xpk, owner) != 0) {
        keep_finish(o, -EINVAL); /* not a usable key: nothing to seal to */
        return;
    }
    if (crypto_box_seal(sealed, o->plain, o->plain_len, xpk) != 0) {
        keep_finish(o, -EIO);
        return;
    }
    memset(&rec, 0, sizeof(rec));
    dht_mailbox_key(owner, &rec.key);
    randombytes_buf(rec.value_id.b, DHT_ID_LEN);
    rec.seq = wall;
    rec.expiry_ms = wall + MAILBOX_TTL_MS;
    rec.mailbox = true;
    rec.value = sealed;
    rec.value_len = o->plain_len + crypto_box_SEALBYTES;
    if (dht_record_sign(&rec, d->identity.ed_sk) != 0) {
        keep_finish(o, -EINVAL);
        return;
    }
    rc = d->overlay != NULL ? overlay_node_put(d->overlay, &rec, keep_put_done, o) : -ENOTCONN;
    if (rc != 0) {
        keep_finish(o, rc);
        return;
    }
    o->waiting = true;
}

static void keep_got(int status, const struct dht_record *recs, size_t n, void *arg)
{
    struct mbop *o = arg;
    struct p2psipd *d = o->mb->d;
    struct dht_id key;
    int rc;

    o->waiting = false;
    if (status == -ECANCELED) {
        keep_finish(o, -ECANCELED);
        return;
    }
    /* Any live value under the key: plain records of one key have one owner. */
    for (size_t i = 0; status == 0 && i < n; i++) {
        if (!recs[i].tombstone && !recs[i].mailbox) {
            keep_seal_put(o, recs[i].owner);
            return;
        }
    }
    if (o->owner_asked) {
        keep_finish(o, status == 0 || status == -ENOENT ? -ENOENT : status);
        return;
    }
    o->owner_asked = true;
    mailbox_owner_key(o->aor, &key);
    rc = d->overlay != NULL ? overlay_node_get(d->overlay, &key, keep_got, o) : -ENOTCONN;
    if (rc != 0) {
        keep_finish(o, rc);
        return;
    }
    o->waiting = true;
}

/* ---- the sealed plaintext ------------------------------------------------------------ */

static bool field_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            return false;
    return true;
}

int mailbox_msg_build(const struct mailbox_msg *m, uint8_t *out, size_t cap)
{
    int n;

    if (!field_ok(m->from) || !field_ok(m->type) || m->from[0] == '\0' || m->type[0] == '\0')
        return -EINVAL;
    n = snprintf((char *)out, cap,
                 MB_MAGIC "From: %s\r\nContent-Type: %s\r\nDate: %" PRIu64 "\r\n\r\n", m->from,
                 m->type, m->date_s);
    if (n < 0 || (size_t)n >= cap || m->body_len > cap - (size_t)n)
        return -EMSGSIZE;
    if (m->body_len > 0)
        memcpy(out + n, m->body, m->body_len);
    return n + (int)m->body_len;
}

/* One "Name: value\r\n" line at *at of p[0..end); value copied into out. */
static bool parse_line(const uint8_t *p, size_t end, size_t *at, const char *name, char *out,
                       size_t cap)
{
    size_t nl = strlen(name), i = *at, k;

    if (end - i < nl + 2 || memcmp(p + i, name, nl) != 0 || p[i + nl] != ':' ||
        p[i + nl + 1] != ' ')
        return false;
    i += nl + 2;
    for (k = 0; i < end && p[i] != '\r'; i++, k++) {
        if (k + 1 >= cap || p[i] < 0x20 || p[i] == 0x7f)
            return false;
        out[k] = (char)p[i];
    }
    if (i + 1 >= end || p[i + 1] != '\n' || k == 0)
        return false;
    out[k] = '\0';
    *at = i + 2;
    return true;
}

int mailbox_msg_parse(const uint8_t *p, size_t len, struct mailbox_msg *out)
{
    const size_t ml = sizeof(MB_MAGIC) - 1;
    char date[24];
    char *end;
    size_t at = ml;

    memset(out, 0, sizeof(*out));
    if (len < ml || memcmp(p, MB_MAGIC, ml) != 0 ||
        !parse_line(p, len, &at, "From", out->from, sizeof(out->from)) ||
        !parse_line(p, len, &at, "Content-Type", out->type, sizeof(out->type)) ||
        !parse_line(p, len, &at, "Date", date, sizeof(date)) || len - at < 2 || p[at] != '\r' ||
        p[at + 1] != '\n')
        return -EBADMSG;
    errno = 0;
    out->date_s = strtoull(date, &end, 10);
    if (errno != 0 || *end != '\0' || date[0] < '0' || date[0] > '9')
        return -EBADMSG;
    out->body = p + at + 2;
    out->body_len = len - at - 2;
    return 0;
}

/* The message as sealed: From (without its tag), Content-Type, Date, body. */
static int keep_plaintext(struct mbop *o, const char *raw, size_t len)
{
    struct sip_msg *m = malloc(sizeof(*m));
    struct mailbox_msg mm;
    const struct sip_hdr *from, *ct;
    struct sip_addr a;
    int n, rc = -EBADMSG;

    if (m == NULL)
        return -ENOMEM;
    if (sip_msg_parse(m, raw, len, SIP_MSG_DGRAM, NULL) <= 0 ||
        (from = sip_msg_hdr(m, SIP_HDR_FROM)) == NULL || sip_addr_parse(from->value, &a) != 0)
        goto out;
    ct = sip_msg_hdr(m, SIP_HDR_CONTENT_TYPE);
    memset(&mm, 0, sizeof(mm));
    if (a.display.len > 0)
        n = snprintf(mm.from, sizeof(mm.from), "\"%.*s\" <%.*s>", (int)a.display.len, a.display.p,
                     (int)a.uri.len, a.uri.p);
    else
        n = snprintf(mm.from, sizeof(mm.from), "<%.*s>", (int)a.uri.len, a.uri.p);
    if (n < 0 || (size_t)n >= sizeof(mm.from) || (ct != NULL && ct->value.len >= sizeof(mm.type))) {
        rc = -EMSGSIZE;
        goto out;
    }
    if (ct != NULL)
        memcpy(mm.type, ct->value.p, ct->value.len);
    else
        strcpy(mm.type, "text/plain");
    mm.date_s = p2p_wall_ms() / 1000;
    mm.body = (const uint8_t *)m->body.p;
    mm.body_len = m->body.len;
    o->plain = malloc(MB_PLAIN_MAX);
    if (o->plain == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    n = mailbox_msg_build(&mm, o->plain, MB_PLAIN_MAX);
    if (n < 0) {
        rc = n == -EINVAL ? -EBADMSG : n;
        goto out;
    }
    o->plain_len = (size_t)n;
    rc = 0;
out:
    free(m);
    return rc;
}

int mailbox_keep(struct mailbox *mb, const char *aor, const char *raw, size_t len,
                 sip_locator_publish_cb cb, void *arg)
{
    struct p2psipd *d = mb->d;
    struct mbop *o;
    struct dht_id key;
    int rc;

    if (d->overlay == NULL)
        return -ENOTCONN;
    o = op_new(mb, MB_KEEP, aor);
    if (o == NULL)
        return -EAGAIN;
    rc = keep_plaintext(o, raw, len);
    if (rc == 0) {
        locator_dht_key(aor, &key);
        rc = overlay_node_get(d->overlay, &key, keep_got, o);
    }
    if (rc != 0) {
        op_free(o);
        return rc;
    }
    o->cb = cb;
    o->arg = arg;
    o->waiting = true;
    return 0;
}

void mailbox_cancel(struct mailbox *mb, void *arg)
{
    struct p2p_list *it, *tmp;

    P2P_LIST_FOREACH_SAFE(it, tmp, &mb->ops)
    {
        struct mbop *o = P2P_LIST_ENTRY(it, struct mbop, link);
        if (o->kind == MB_KEEP && o->arg == arg)
            op_free(o);
    }
}

/* ---- the owner record ---------------------------------------------------------------- */

static void owner_put_done(int status, unsigned acks, void *arg)
{
    struct mbop *o = arg;

    (void)acks;
    o->waiting = false;
    if (status == 0)
        o->mb->st.owner_puts++;
    else if (status != -ECANCELED)
        o->mb->st.owner_put_errors++;
    op_free(o);
}

static void owner_put(struct mailbox *mb, const char *aor, const uint8_t sk[64])
{
    struct p2psipd *d = mb->d;
    static const char label[] = "p2psip-aor-owner-value:";
    uint8_t vid[sizeof(label) - 1 + DHT_ID_LEN];
    struct dht_record rec;
    uint64_t wall = p2p_wall_ms();
    struct mbop *o;

    memset(&rec, 0, sizeof(rec));
    mailbox_owner_key(aor, &rec.key);
    /* One value per node, replaced by each refresh; the value is the AoR, for people
     * reading `p2psipctl records`. */
    memcpy(vid, label, sizeof(label) - 1);
    memcpy(vid + sizeof(label) - 1, d->identity.id.b, DHT_ID_LEN);
    dht_id_hash(&rec.value_id, vid, sizeof(vid));
    rec.seq = wall;
    rec.expiry_ms = wall + MB_OWNER_TTL_MS;
    rec.value = (const uint8_t *)aor;
    rec.value_len = strnlen(aor, SIP_AOR_MAX - 1);
    o = op_new(mb, MB_OWNER, aor);
    if (o == NULL || dht_record_sign(&rec, sk) != 0 ||
        overlay_node_put(d->overlay, &rec, owner_put_done, o) != 0) {
        mb->st.owner_put_errors++;
        if (o != NULL)
            op_free(o);
        return;
    }
    o->waiting = true;
}

/* ---- delivering ------------------------------------------------------------------------ */

static void remove_done(int status, unsigned acks, void *arg)
{
    struct mbop *o = arg;

    (void)acks;
    o->waiting = false;
    if (status == 0)
        o->mb->st.cleared++;
    op_free(o);
}

/* Turns o (deliver) into the removal of its value: a tombstone signed by P. */
static void remove_value(struct mbop *o)
{
    struct p2psipd *d = o->mb->d;
    struct dht_record rec;

    o->kind = MB_REMOVE;
    memset(&rec, 0, sizeof(rec));
    rec.key = o->key;
    rec.value_id = o->value_id;
    rec.seq = o->seq + 1;
    rec.expiry_ms = o->expiry_ms; /* lives as long as any copy of the value could */
    rec.mailbox = true;
    rec.tombstone = true;
    if (d->overlay == NULL || dht_record_sign(&rec, o->sk) != 0 ||
        overlay_node_put(d->overlay, &rec, remove_done, o) != 0) {
        op_free(o);
        return;
    }
    o->waiting = true;
}

static void delivered(int status, void *arg)
{
    struct mbop *o = arg;
    struct mailbox *mb = o->mb;

    o->waiting = false;
    if (status >= 200 && status < 300) {
        mb->st.delivered++;
        p2p_info(mb->d->log, "mailbox: a kept MESSAGE reached %s", o->aor);
        remove_value(o);
        return;
    }
    mb->st.undelivered++; /* kept for the next REGISTER */
    op_free(o);
}

/* Opens one mailbox value and hands it to the phones; a value that does not open
 * (or parse) is removed. */
static void deliver_value(struct mbop *f, const struct dht_record *rec)
{
    struct mailbox *mb = f->mb;
    struct p2psipd *d = mb->d;
    uint8_t xpk[crypto_box_PUBLICKEYBYTES], xsk[crypto_box_SECRETKEYBYTES];
    uint8_t plain[MB_PLAIN_MAX];
    struct mailbox_msg mm;
    size_t plen;
    struct mbop *o;
    bool ok;

    /* Already being delivered (two REGISTERs close together)? */
    {
        struct p2p_list *it;
        P2P_LIST_FOREACH(it, &mb->ops)
        {
            struct mbop *x = P2P_LIST_ENTRY(it, struct mbop, link);
            if ((x->kind == MB_DELIVER || x->kind == MB_REMOVE) &&
                dht_id_eq(&x->value_id, &rec->value_id))
                return;
        }
    }
    o = op_new(mb, MB_DELIVER, f->aor);
    if (o == NULL)
        return; /* the next REGISTER tries again */
    memcpy(o->pk, f->pk, sizeof(o->pk));
    memcpy(o->sk, f->sk, sizeof(o->sk));
    o->key = rec->key;
    o->value_id = rec->value_id;
    o->seq = rec->seq;
    o->expiry_ms = rec->expiry_ms;
    mb->st.found++;
    ok = rec->value_len > crypto_box_SEALBYTES &&
         crypto_sign_ed25519_pk_to_curve25519(xpk, o->pk) == 0 &&
         crypto_sign_ed25519_sk_to_curve25519(xsk, o->sk) == 0 &&
         crypto_box_seal_open(plain, rec->value, rec->value_len, xpk, xsk) == 0;
    sodium_memzero(xsk, sizeof(xsk));
    plen = ok ? rec->value_len - crypto_box_SEALBYTES : 0;
    ok = ok && mailbox_msg_parse(plain, plen, &mm) == 0;
    if (!ok) {
        mb->st.unopened++;
        remove_value(o);
        return;
    }
    if (d->proxy == NULL ||
        sip_proxy_deliver_message(d->proxy, o->aor, mm.from, mm.type, mm.body, mm.body_len,
                                  delivered, o, uv_now(d->loop)) != 0) {
        mb->st.undelivered++;
        op_free(o);
        return;
    }
    o->waiting = true;
}

static void fetch_got(int status, const struct dht_record *recs, size_t n, void *arg)
{
    struct mbop *o = arg;

    o->waiting = false;
    for (size_t i = 0; status == 0 && i < n; i++)
        if (recs[i].mailbox && !recs[i].tombstone)
            deliver_value(o, &recs[i]);
    op_free(o);
}

void mailbox_aor_stored(struct mailbox *mb, const char *aor, const uint8_t pk[32],
                        const uint8_t sk[64], bool online)
{
    struct p2psipd *d = mb->d;
    struct mbop *o;
    struct dht_id key;

    if (d->overlay == NULL)
        return;
    if (bg_take(mb))
        owner_put(mb, aor, sk);
    if (!online || !bg_take(mb))
        return;
    o = op_new(mb, MB_FETCH, aor);
    if (o == NULL)
        return;
    memcpy(o->pk, pk, sizeof(o->pk));
    memcpy(o->sk, sk, sizeof(o->sk));
    dht_mailbox_key(pk, &key);
    if (overlay_node_get(d->overlay, &key, fetch_got, o) != 0) {
        op_free(o);
        return;
    }
    o->waiting = true;
}

/* ---- life cycle ---------------------------------------------------------------------- */

int mailbox_new(struct mailbox **out, struct p2psipd *d)
{
    struct mailbox *mb = calloc(1, sizeof(*mb));

    if (mb == NULL)
        return -ENOMEM;
    mb->d = d;
    p2p_list_init(&mb->ops);
    mb->tokens = MB_BG_PER_S;
    mb->t_tokens = uv_now(d->loop);
    *out = mb;
    return 0;
}

void mailbox_free(struct mailbox *mb)
{
    if (mb == NULL)
        return;
    while (!p2p_list_empty(&mb->ops)) {
        struct mbop *o = P2P_LIST_ENTRY(mb->ops.next, struct mbop, link);
        if (o->kind == MB_KEEP)
            keep_finish(o, -ECANCELED);
        else
            op_free(o);
    }
    free(mb);
}

void mailbox_stats(const struct mailbox *mb, struct mailbox_stats *out)
{
    *out = mb->st;
}
