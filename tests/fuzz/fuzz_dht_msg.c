/*
 * fuzz_dht_msg.c: libFuzzer target for the DHT wire decoder (dht/msg.c) and the
 * node's receive path (dht_node_recv).
 *
 * Checks, besides memory safety: a message that decodes re-encodes, and the
 * re-encoding decodes to the same fields (attribute order and unknown attributes
 * may differ, the meaning may not); a decoded message never claims more peers,
 * records or identities than the caps; a refusal is -EBADMSG or -EMSGSIZE.  Every
 * input that decodes is then handed to a fresh, joined node (ring of one) and the
 * node's timers run for 11 simulated seconds (retransmissions, probes of learned
 * peers, maintenance), which must neither crash nor leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "p2p/dht_msg.h"
#include "p2p/dht_node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int no_send(void *arg, const struct dht_peer *to, const uint8_t *buf, size_t len)
{
    size_t *sent = arg;
    (void)to;
    (void)buf;
    *sent += len;
    return 0;
}

static void same_peer(const struct dht_peer *a, const struct dht_peer *b)
{
    if (!dht_id_eq(&a->id, &b->id) || a->addr.len != b->addr.len ||
        memcmp(a->addr.b, b->addr.b, a->addr.len) != 0)
        abort();
}

static void check_round_trip(const struct dht_msg *m)
{
    static uint8_t buf[DHT_MSG_MAX];
    static struct dht_msg d;
    int len;

    if (m->n_peers > DHT_MSG_PEERS_MAX || m->n_records > DHT_MSG_RECORDS_MAX ||
        m->n_idents > DHT_MSG_IDENTS_MAX)
        abort();
    len = dht_msg_encode(m, buf, sizeof(buf));
    if (len < 0)
        abort(); /* what decodes must encode */
    if (dht_msg_decode(&d, buf, (size_t)len) != 0)
        abort();
    if (d.type != m->type || d.flags != m->flags || d.hops != m->hops || d.txid != m->txid ||
        !dht_id_eq(&d.sender, &m->sender) || d.have != m->have || d.n_peers != m->n_peers ||
        d.n_records != m->n_records || d.n_idents != m->n_idents || d.req_id != m->req_id ||
        d.status != m->status || d.count != m->count || d.level != m->level ||
        d.n_avoid != m->n_avoid || d.n_path != m->n_path)
        abort();
    for (size_t i = 0; i < m->n_path; i++)
        if (!dht_id_eq(&d.path[i].id, &m->path[i].id) || d.path[i].rtt_ms != m->path[i].rtt_ms)
            abort();
    if ((m->have & DHT_HAVE(DHT_ATTR_ORIGIN)))
        same_peer(&d.origin, &m->origin);
    for (size_t i = 0; i < m->n_peers; i++)
        same_peer(&d.peers[i], &m->peers[i]);
    for (size_t i = 0; i < m->n_records; i++)
        if (!dht_record_equal(&d.records[i], &m->records[i]))
            abort();
    for (size_t i = 0; i < m->n_idents; i++)
        if (d.idents[i].seq != m->idents[i].seq ||
            d.idents[i].tombstone != m->idents[i].tombstone ||
            !dht_id_eq(&d.idents[i].key, &m->idents[i].key))
            abort();
}

static void joined(int status, void *arg)
{
    (void)status;
    (void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dht_msg m;
    struct dht_store *store;
    struct dht_node *node;
    struct dht_node_ops ops;
    struct dht_addr self = {4, {127, 0, 0, 1}}, from = {4, {10, 0, 0, 2}};
    uint8_t pk[32];
    size_t sent = 0;
    int rc;

    if (sodium_init() < 0)
        return 0;
    rc = dht_msg_decode(&m, data, size);
    if (rc != 0) {
        /* dht_node_recv starts with this same decode and drops what fails it */
        if (rc != -EBADMSG && rc != -EMSGSIZE)
            abort();
        return 0;
    }
    check_round_trip(&m);

    memset(pk, 0x5a, sizeof(pk));
    memset(&ops, 0, sizeof(ops));
    ops.send = no_send;
    ops.observe = NULL;
    ops.arg = &sent;
    if (dht_store_new(&store, NULL) != 0)
        return 0;
    if (dht_node_new(&node, pk, &self, NULL, store, &ops, 1000) != 0) {
        dht_store_free(store);
        return 0;
    }
    if (dht_node_join(node, NULL, joined, NULL, 1000) == 0) {
        dht_node_advance(node, 1000);
        (void)dht_node_recv(node, &from, data, size, 1001);
        /* whatever the message started (replies, probes of learned peers,
         * retransmissions) runs to its timeouts */
        for (uint64_t t = 1002; t < 12000;) {
            uint64_t d = dht_node_next_deadline(node);
            if (d == UINT64_MAX || d > 12000)
                break;
            t = d > t ? d : t + 1;
            dht_node_advance(node, t);
        }
    }
    dht_node_free(node);
    dht_store_free(store);
    return 0;
}
