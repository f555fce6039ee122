/*
 * msg.c: the DHT wire codec, version 1.
 *
 * All integers are big-endian.  Header (30 bytes):
 *
 *   offset size field
 *        0    1 version = 1 (any other value: -EBADMSG)
 *        1    1 type (enum dht_msg_type; unknown types decode and are dropped above)
 *        2    1 flags: 0x01 ACK_REQ, 0x02 WANT_REPLY, 0x04 ANNOUNCE, 0x08 CLIENT,
 *                      0x10 MAINT, 0x20 PASSED; other bits ignored
 *        3    1 hops: incremented at each routing hop; routed messages over 64 die
 *        4    4 txid: per-hop transaction id, echoed by ACK
 *        8   20 sender node ID (the immediate sender, rewritten at every hop)
 *       28    2 total length of the message, header included: must equal the
 *               length received, so every truncation (and trailing junk) is refused
 *
 * Then attributes until the end of the buffer, each: u16 code, u16 length, value.
 * An unknown code is skipped by its length; a known code with a wrong length, a
 * second copy of a single-valued attribute, or a length past the end is -EBADMSG.
 * At most DHT_MSG_ATTRS_MAX attributes are read.
 *
 *   code name        length   value
 *      1 KEY             20   target key
 *      2 ORIGIN      21..39   peer: node ID (20), addr len (1, <= 18), addr
 *      3 REQ_ID           4   origin's request id
 *      4 PEERS       1 + ...  u8 count (<= 48), then count peers as in ORIGIN
 *      5 LEVEL            1   routing-table row (< 40)
 *      6 ROOT        21..39   peer
 *      7 RECORD   156..4252   one record, dht_record.h encoding; repeats (<= 8)
 *      8 STATUS           2   i16: 0 or a negative errno
 *      9 LO              20   range start (inclusive)
 *     10 HI              20   range end (inclusive; the range wraps when LO > HI)
 *     11 SUMMARY      0..64   range summary: u32 count, 16-byte BLAKE2b digest (20 bytes
 *                             as node_store.c sends it; the codec takes any 0..64)
 *     12 IDENTS     1 + 49n   u8 count (<= 64), then key 20, value id 20, seq 8,
 *                             flags 1 (bit 0 tombstone)
 *     13 SENDER_KEY      32   Ed25519 key of the writer: BLAKE2b-160(key) must be the
 *                             ORIGIN ID in routed messages (JOIN, LOOKUP, PUT, GET),
 *                             the sender ID in all others
 *     14 COUNT            4   u32
 *     15 AVOID       1 + 20n  u8 count (1..6), then node IDs: hops that did not
 *                             acknowledge this routed message (docs/DHT-WIRE.md)
 *     16 PATH        1 + 22n  u8 count (1..12), then per hop a node ID and u16 ms:
 *                             the route a traced LOOKUP took (docs/DHT-WIRE.md)
 *
 * Types (dht_msg.h; who sends what and which attributes: docs/DHT-WIRE.md):
 *    1 PING  2 ACK  3 JOIN (routed)  4 JOIN_REPLY  5 ROWS  6 ROW_REQ  7 LEAFSET
 *    8 LOOKUP (routed)  9 LOOKUP_REPLY  10 PUT (routed)  11 PUT_REPLY
 *   12 GET (routed)  13 GET_REPLY  14 REPLICATE  15 SYNC  16 SYNC_REPLY  17 FETCH
 *
 * Design: the decoder copies fixed-size fields into struct dht_msg and keeps record
 * values as pointers into the caller's buffer, so it allocates nothing.  Every read
 * is preceded by an end check (struct rd); the encoder mirrors it (struct wr) and
 * reports -ENOSPC instead of writing past cap.
 */
#include "p2p/dht_msg.h"

#include <errno.h>
#include <string.h>

struct rd {
    const uint8_t *p;
    size_t left;
};

static int rd_bytes(struct rd *r, void *out, size_t n)
{
    if (r->left < n)
        return -EBADMSG;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

static int rd_u8(struct rd *r, uint8_t *out)
{
    return rd_bytes(r, out, 1);
}

static int rd_u16(struct rd *r, uint16_t *out)
{
    uint8_t b[2];
    if (rd_bytes(r, b, 2) < 0)
        return -EBADMSG;
    *out = (uint16_t)(b[0] << 8 | b[1]);
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *out)
{
    uint8_t b[4];
    if (rd_bytes(r, b, 4) < 0)
        return -EBADMSG;
    *out = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

static uint64_t be64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static int rd_peer(struct rd *r, struct dht_peer *p)
{
    if (rd_bytes(r, p->id.b, DHT_ID_LEN) < 0 || rd_u8(r, &p->addr.len) < 0)
        return -EBADMSG;
    if (p->addr.len > DHT_ADDR_MAX)
        return -EBADMSG;
    memset(p->addr.b, 0, sizeof(p->addr.b));
    return rd_bytes(r, p->addr.b, p->addr.len);
}

/* A single-valued attribute may appear once. */
static int once(struct dht_msg *m, unsigned code)
{
    if (m->have & DHT_HAVE(code))
        return -EBADMSG;
    m->have |= DHT_HAVE(code);
    return 0;
}

static int decode_attr(struct dht_msg *m, uint16_t code, struct rd *v)
{
    uint8_t n;
    uint16_t st;

    switch (code) {
    case DHT_ATTR_KEY:
    case DHT_ATTR_LO:
    case DHT_ATTR_HI: {
        struct dht_id *dst = code == DHT_ATTR_KEY ? &m->key : code == DHT_ATTR_LO ? &m->lo : &m->hi;
        if (v->left != DHT_ID_LEN || once(m, code) < 0)
            return -EBADMSG;
        return rd_bytes(v, dst->b, DHT_ID_LEN);
    }
    case DHT_ATTR_ORIGIN:
    case DHT_ATTR_ROOT:
        if (once(m, code) < 0 || rd_peer(v, code == DHT_ATTR_ORIGIN ? &m->origin : &m->root) < 0)
            return -EBADMSG;
        return v->left == 0 ? 0 : -EBADMSG;
    case DHT_ATTR_REQ_ID:
    case DHT_ATTR_COUNT:
        if (v->left != 4 || once(m, code) < 0)
            return -EBADMSG;
        return rd_u32(v, code == DHT_ATTR_REQ_ID ? &m->req_id : &m->count);
    case DHT_ATTR_LEVEL:
        if (v->left != 1 || once(m, code) < 0 || rd_u8(v, &m->level) < 0)
            return -EBADMSG;
        return m->level < DHT_ID_DIGITS ? 0 : -EBADMSG;
    case DHT_ATTR_STATUS:
        if (v->left != 2 || once(m, code) < 0 || rd_u16(v, &st) < 0)
            return -EBADMSG;
        m->status = (int16_t)st;
        return 0;
    case DHT_ATTR_SENDER_KEY:
        if (v->left != DHT_PUBKEY_LEN || once(m, code) < 0)
            return -EBADMSG;
        return rd_bytes(v, m->sender_key, DHT_PUBKEY_LEN);
    case DHT_ATTR_SUMMARY:
        if (v->left > DHT_MSG_SUMMARY_MAX || once(m, code) < 0)
            return -EBADMSG;
        m->summary_len = (uint8_t)v->left;
        return rd_bytes(v, m->summary, v->left);
    case DHT_ATTR_PEERS:
        if (once(m, code) < 0 || rd_u8(v, &n) < 0 || n > DHT_MSG_PEERS_MAX)
            return -EBADMSG;
        for (unsigned i = 0; i < n; i++)
            if (rd_peer(v, &m->peers[i]) < 0)
                return -EBADMSG;
        m->n_peers = n;
        return v->left == 0 ? 0 : -EBADMSG;
    case DHT_ATTR_IDENTS:
        if (once(m, code) < 0 || rd_u8(v, &n) < 0 || n > DHT_MSG_IDENTS_MAX ||
            v->left != (size_t)n * DHT_IDENT_WIRE_LEN)
            return -EBADMSG;
        for (unsigned i = 0; i < n; i++) {
            struct dht_record_ident *id = &m->idents[i];
            uint8_t b[DHT_IDENT_WIRE_LEN];
            (void)rd_bytes(v, b, sizeof(b)); /* length checked above */
            memcpy(id->key.b, b, DHT_ID_LEN);
            memcpy(id->value_id.b, b + 20, DHT_ID_LEN);
            id->seq = be64(b + 40);
            if (b[48] & ~DHT_RECORD_FLAG_TOMBSTONE)
                return -EBADMSG;
            id->tombstone = (b[48] & DHT_RECORD_FLAG_TOMBSTONE) != 0;
        }
        m->n_idents = n;
        return 0;
    case DHT_ATTR_AVOID:
        if (once(m, code) < 0 || rd_u8(v, &n) < 0 || n == 0 || n > DHT_MSG_AVOID_MAX ||
            v->left != (size_t)n * DHT_ID_LEN)
            return -EBADMSG;
        for (unsigned i = 0; i < n; i++)
            (void)rd_bytes(v, m->avoid[i].b, DHT_ID_LEN); /* length checked above */
        m->n_avoid = n;
        return 0;
    case DHT_ATTR_PATH:
        if (once(m, code) < 0 || rd_u8(v, &n) < 0 || n == 0 || n > DHT_MSG_PATH_MAX ||
            v->left != (size_t)n * (DHT_ID_LEN + 2))
            return -EBADMSG;
        for (unsigned i = 0; i < n; i++) {
            uint16_t ms = 0;
            (void)rd_bytes(v, m->path[i].id.b, DHT_ID_LEN); /* length checked above */
            (void)rd_u16(v, &ms);
            m->path[i].rtt_ms = ms;
        }
        m->n_path = n;
        return 0;
    case DHT_ATTR_RECORD: {
        int rc;
        if (m->n_records >= DHT_MSG_RECORDS_MAX)
            return -EBADMSG;
        m->have |= DHT_HAVE(code);
        rc = dht_record_decode(&m->records[m->n_records], v->p, v->left);
        if (rc < 0 || (size_t)rc != v->left)
            return -EBADMSG;
        m->n_records++;
        return 0;
    }
    default:
        return 0; /* unknown: skipped by the caller's length */
    }
}

void dht_msg_init(struct dht_msg *m, enum dht_msg_type type, const struct dht_id *sender)
{
    memset(m, 0, offsetof(struct dht_msg, peers));
    m->n_peers = 0;
    m->n_records = 0;
    m->n_idents = 0;
    m->version = DHT_MSG_VERSION;
    m->type = (uint8_t)type;
    m->sender = *sender;
}

int dht_msg_decode(struct dht_msg *out, const uint8_t *buf, size_t len)
{
    struct rd r = {buf, len};
    unsigned nattr = 0;

    if (len > DHT_MSG_MAX)
        return -EMSGSIZE;
    if (len < DHT_MSG_HEADER_LEN)
        return -EBADMSG;
    memset(out, 0, offsetof(struct dht_msg, peers));
    out->n_peers = out->n_records = out->n_idents = 0;
    (void)rd_u8(&r, &out->version);
    if (out->version != DHT_MSG_VERSION)
        return -EBADMSG;
    (void)rd_u8(&r, &out->type);
    (void)rd_u8(&r, &out->flags);
    (void)rd_u8(&r, &out->hops);
    (void)rd_u32(&r, &out->txid);
    (void)rd_bytes(&r, out->sender.b, DHT_ID_LEN);
    {
        uint16_t total = 0;
        (void)rd_u16(&r, &total); /* len >= header length was checked */
        if (total != len)
            return -EBADMSG;
    }

    while (r.left > 0) {
        uint16_t code, alen;
        struct rd v;
        int rc;

        if (++nattr > DHT_MSG_ATTRS_MAX)
            return -EBADMSG;
        if (rd_u16(&r, &code) < 0 || rd_u16(&r, &alen) < 0 || alen > r.left)
            return -EBADMSG;
        v.p = r.p;
        v.left = alen;
        rc = decode_attr(out, code, &v);
        if (rc < 0)
            return rc;
        r.p += alen;
        r.left -= alen;
    }
    return 0;
}

struct wr {
    uint8_t *p;
    size_t len, cap;
    int err;
};

static void wr_bytes(struct wr *w, const void *p, size_t n)
{
    if (w->err)
        return;
    if (w->cap - w->len < n) {
        w->err = -ENOSPC;
        return;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void wr_u8(struct wr *w, unsigned v)
{
    uint8_t b = (uint8_t)v;
    wr_bytes(w, &b, 1);
}

static void wr_u16(struct wr *w, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, 2);
}

static void wr_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, 4);
}

static void wr_attr(struct wr *w, unsigned code, const void *p, size_t n)
{
    wr_u16(w, code);
    wr_u16(w, (unsigned)n);
    wr_bytes(w, p, n);
}

size_t dht_msg_peer_wire_len(const struct dht_peer *p)
{
    return DHT_ID_LEN + 1 + p->addr.len;
}

static void wr_peer(struct wr *w, const struct dht_peer *p)
{
    wr_bytes(w, p->id.b, DHT_ID_LEN);
    wr_u8(w, p->addr.len);
    wr_bytes(w, p->addr.b, p->addr.len);
}

static int check_peer(const struct dht_peer *p)
{
    return p->addr.len <= DHT_ADDR_MAX ? 0 : -EINVAL;
}

int dht_msg_encode(const struct dht_msg *m, uint8_t *buf, size_t cap)
{
    struct wr w = {buf, 0, cap > DHT_MSG_MAX ? DHT_MSG_MAX : cap, 0};
    uint32_t h = m->have;

    if (m->n_peers > DHT_MSG_PEERS_MAX || m->n_records > DHT_MSG_RECORDS_MAX ||
        m->n_idents > DHT_MSG_IDENTS_MAX || m->summary_len > DHT_MSG_SUMMARY_MAX ||
        m->n_avoid > DHT_MSG_AVOID_MAX || ((h & DHT_HAVE(DHT_ATTR_AVOID)) && m->n_avoid == 0) ||
        m->n_path > DHT_MSG_PATH_MAX || ((h & DHT_HAVE(DHT_ATTR_PATH)) && m->n_path == 0))
        return -EINVAL;
    if (((h & DHT_HAVE(DHT_ATTR_ORIGIN)) && check_peer(&m->origin) < 0) ||
        ((h & DHT_HAVE(DHT_ATTR_ROOT)) && check_peer(&m->root) < 0))
        return -EINVAL;
    for (size_t i = 0; i < m->n_peers; i++)
        if (check_peer(&m->peers[i]) < 0)
            return -EINVAL;

    wr_u8(&w, DHT_MSG_VERSION);
    wr_u8(&w, m->type);
    wr_u8(&w, m->flags);
    wr_u8(&w, m->hops);
    wr_u32(&w, m->txid);
    wr_bytes(&w, m->sender.b, DHT_ID_LEN);
    wr_u16(&w, 0); /* total length, patched below */

    if (h & DHT_HAVE(DHT_ATTR_KEY))
        wr_attr(&w, DHT_ATTR_KEY, m->key.b, DHT_ID_LEN);
    if (h & DHT_HAVE(DHT_ATTR_ORIGIN)) {
        wr_u16(&w, DHT_ATTR_ORIGIN);
        wr_u16(&w, (unsigned)dht_msg_peer_wire_len(&m->origin));
        wr_peer(&w, &m->origin);
    }
    if (h & DHT_HAVE(DHT_ATTR_REQ_ID)) {
        wr_u16(&w, DHT_ATTR_REQ_ID);
        wr_u16(&w, 4);
        wr_u32(&w, m->req_id);
    }
    if (h & DHT_HAVE(DHT_ATTR_LEVEL))
        wr_attr(&w, DHT_ATTR_LEVEL, &m->level, 1);
    if (h & DHT_HAVE(DHT_ATTR_ROOT)) {
        wr_u16(&w, DHT_ATTR_ROOT);
        wr_u16(&w, (unsigned)dht_msg_peer_wire_len(&m->root));
        wr_peer(&w, &m->root);
    }
    if (h & DHT_HAVE(DHT_ATTR_STATUS)) {
        wr_u16(&w, DHT_ATTR_STATUS);
        wr_u16(&w, 2);
        wr_u16(&w, (uint16_t)m->status);
    }
    if (h & DHT_HAVE(DHT_ATTR_LO))
        wr_attr(&w, DHT_ATTR_LO, m->lo.b, DHT_ID_LEN);
    if (h & DHT_HAVE(DHT_ATTR_HI))
        wr_attr(&w, DHT_ATTR_HI, m->hi.b, DHT_ID_LEN);
    if (h & DHT_HAVE(DHT_ATTR_COUNT)) {
        wr_u16(&w, DHT_ATTR_COUNT);
        wr_u16(&w, 4);
        wr_u32(&w, m->count);
    }
    if (h & DHT_HAVE(DHT_ATTR_SUMMARY))
        wr_attr(&w, DHT_ATTR_SUMMARY, m->summary, m->summary_len);
    if (h & DHT_HAVE(DHT_ATTR_SENDER_KEY))
        wr_attr(&w, DHT_ATTR_SENDER_KEY, m->sender_key, DHT_PUBKEY_LEN);
    if (m->n_avoid > 0) {
        wr_u16(&w, DHT_ATTR_AVOID);
        wr_u16(&w, (unsigned)(1 + m->n_avoid * DHT_ID_LEN));
        wr_u8(&w, m->n_avoid);
        for (unsigned i = 0; i < m->n_avoid; i++)
            wr_bytes(&w, m->avoid[i].b, DHT_ID_LEN);
    }
    if (m->n_path > 0) {
        wr_u16(&w, DHT_ATTR_PATH);
        wr_u16(&w, (unsigned)(1 + m->n_path * (DHT_ID_LEN + 2)));
        wr_u8(&w, m->n_path);
        for (unsigned i = 0; i < m->n_path; i++) {
            wr_bytes(&w, m->path[i].id.b, DHT_ID_LEN);
            wr_u16(&w, m->path[i].rtt_ms);
        }
    }
    if (m->n_peers > 0 || (h & DHT_HAVE(DHT_ATTR_PEERS))) {
        size_t plen = 1;
        for (size_t i = 0; i < m->n_peers; i++)
            plen += dht_msg_peer_wire_len(&m->peers[i]);
        wr_u16(&w, DHT_ATTR_PEERS);
        wr_u16(&w, (unsigned)plen);
        wr_u8(&w, (unsigned)m->n_peers);
        for (size_t i = 0; i < m->n_peers; i++)
            wr_peer(&w, &m->peers[i]);
    }
    if (m->n_idents > 0 || (h & DHT_HAVE(DHT_ATTR_IDENTS))) {
        wr_u16(&w, DHT_ATTR_IDENTS);
        wr_u16(&w, (unsigned)(1 + m->n_idents * DHT_IDENT_WIRE_LEN));
        wr_u8(&w, (unsigned)m->n_idents);
        for (size_t i = 0; i < m->n_idents; i++) {
            const struct dht_record_ident *id = &m->idents[i];
            wr_bytes(&w, id->key.b, DHT_ID_LEN);
            wr_bytes(&w, id->value_id.b, DHT_ID_LEN);
            wr_u32(&w, (uint32_t)(id->seq >> 32));
            wr_u32(&w, (uint32_t)id->seq);
            wr_u8(&w, id->tombstone ? DHT_RECORD_FLAG_TOMBSTONE : 0);
        }
    }
    for (size_t i = 0; i < m->n_records; i++) {
        int rc;
        size_t rlen = dht_record_encoded_len(&m->records[i]);
        wr_u16(&w, DHT_ATTR_RECORD);
        wr_u16(&w, (unsigned)rlen);
        if (w.err)
            break;
        rc = dht_record_encode(&m->records[i], w.p + w.len, w.cap - w.len);
        if (rc < 0) {
            w.err = rc == -ENOSPC ? -ENOSPC : -EINVAL;
            break;
        }
        w.len += (size_t)rc;
    }
    if (w.err)
        return w.err;
    buf[DHT_MSG_OFF_LEN] = (uint8_t)(w.len >> 8);
    buf[DHT_MSG_OFF_LEN + 1] = (uint8_t)w.len;
    return (int)w.len;
}

const char *dht_msg_type_name(unsigned type)
{
    static const char *const names[] = {
        "?",       "PING",      "ACK",       "JOIN",         "JOIN_REPLY", "ROWS",
        "ROW_REQ", "LEAFSET",   "LOOKUP",    "LOOKUP_REPLY", "PUT",        "PUT_REPLY",
        "GET",     "GET_REPLY", "REPLICATE", "SYNC",         "SYNC_REPLY", "FETCH",
    };
    return type <= DHT_MSG_TYPE_MAX ? names[type] : "?";
}
