/*
 * sip_pipes.c: SIP between nodes, over the overlay's pipes.
 *
 * Design.  To sip/, another node is a "connection": a destination whose conn_id has
 * PIPE_CONN_BIT set, with overlay = true, transport UDP (a pipe datagram may be lost
 * like a UDP one, so the transaction layer retransmits) and a placeholder address.
 * The table here maps such a conn_id to (node ID, the super-node that relays to it
 * when it is a client).  Everything sip/ sends to one (requests, and responses to
 * requests that came from one) leaves as a pipe datagram of service SIP; every SIP
 * datagram that arrives from a node enters sip_proxy_recv as coming from that
 * node's conn_id.  Node names in URIs ("<id>[.<super>].node.invalid", Record-Route,
 * Route, a binding's hop) map to these destinations through the proxy's node_dest
 * hook.  The listener for phones stays on 127.0.0.1: no SIP port is opened on the LAN,
 * and SIP between nodes is authenticated and encrypted by the overlay's channels.
 *
 * Invariants: at most SIP_PIPES_MAX entries; a conn_id is (PIPE_CONN_BIT | generation
 * << 16 | slot), so a stale one (its entry reused) finds nothing; the least recently
 * used entry is reused when the table is full.
 */
#include "p2psipd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "locator_dht.h"
#include "p2p/overlay_node.h"
#include "p2p/sip_proxy.h"

#define PIPE_CONN_BIT (1ull << 63)

bool p2psipd__is_pipe_conn(uint64_t conn_id)
{
    return (conn_id & PIPE_CONN_BIT) != 0;
}

/* The entry for (node, super), made if needed; its destination in *out. */
static int pipe_dest(struct p2psipd *d, const struct dht_id *node, const struct dht_id *super,
                     struct sip_tsx_dest *out)
{
    struct p2psipd_sip_pipe *e = NULL, *lru = NULL;
    size_t slot;

    for (size_t i = 0; i < P2PSIPD_SIP_PIPES_MAX; i++) {
        struct p2psipd_sip_pipe *p = &d->pipes[i];
        if (p->gen != 0 && dht_id_eq(&p->node, node)) {
            e = p;
            break;
        }
        if (lru == NULL || p->gen == 0 || (lru->gen != 0 && p->last_used < lru->last_used))
            lru = p;
    }
    if (e == NULL) {
        e = lru;
        e->gen = (uint16_t)(e->gen + 1 == 0 ? 1 : e->gen + 1);
        e->node = *node;
        memset(&e->super, 0, sizeof(e->super));
    }
    if (super != NULL && !dht_id_is_zero(super))
        e->super = *super; /* the newest word on how to reach it */
    e->last_used = uv_now(d->loop);
    slot = (size_t)(e - d->pipes);
    memset(out, 0, sizeof(*out));
    out->transport = SIP_TSX_UDP;
    {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->addr;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(d->conf.sip.port);
    }
    out->conn_id = PIPE_CONN_BIT | (uint64_t)e->gen << 16 | slot;
    out->overlay = true;
    return 0;
}

int p2psipd__node_dest(void *ctx, struct p2p_slice host, struct sip_tsx_dest *out)
{
    struct p2psipd *d = ctx;
    struct dht_id node, super;

    if (locator_dht_parse_node_host(host.p, host.len, &node, &super) != 0)
        return -ENOENT;
    if (dht_id_eq(&node, &d->identity.id))
        return -ENOENT; /* ourselves: the proxy knows that name as its own */
    return pipe_dest(d, &node, &super, out);
}

int p2psipd__sip_pipe_send(struct p2psipd *d, uint64_t conn_id, const char *bytes, size_t len)
{
    size_t slot = conn_id & 0xffff;
    uint16_t gen = (uint16_t)(conn_id >> 16);
    struct p2psipd_sip_pipe *e;

    if (slot >= P2PSIPD_SIP_PIPES_MAX || d->pipes[slot].gen != gen || d->overlay == NULL)
        return -ENOTCONN;
    e = &d->pipes[slot];
    e->last_used = uv_now(d->loop);
    return overlay_node_pipe_send(d->overlay, &e->node,
                                  dht_id_is_zero(&e->super) ? NULL : &e->super, P2PSIPD_SVC_SIP,
                                  (const uint8_t *)bytes, len);
}

void p2psipd__sip_pipe_recv(struct p2psipd *d, const struct dht_id *from,
                            const struct dht_id *relay, const uint8_t *bytes, size_t len)
{
    struct sip_tsx_dest src;
    int rc;

    if (d->stopping || d->proxy == NULL)
        return;
    /* Answers go back the way the request came: through the same relay. */
    if (pipe_dest(d, from, relay, &src) != 0)
        return;
    d->sip_stats.rx++;
    d->sip_stats.pipe_rx++;
    rc = sip_proxy_recv(d->proxy, (const char *)bytes, len, &src, uv_now(d->loop));
    if (rc != 0)
        d->sip_stats.bad_dropped++;
}

void p2psipd__sip_node_gone(struct p2psipd *d, const struct dht_id *id)
{
    uint64_t now = uv_now(d->loop);

    if (d->proxy == NULL || d->stopping)
        return;
    /* Calls waiting on that node (or on the super-node relaying to it) end now with
     * 480, not after Timer B. */
    for (size_t i = 0; i < P2PSIPD_SIP_PIPES_MAX; i++) {
        struct p2psipd_sip_pipe *e = &d->pipes[i];
        if (e->gen == 0 || !(dht_id_eq(&e->node, id) || dht_id_eq(&e->super, id)))
            continue;
        size_t n = sip_proxy_dest_failed(d->proxy, PIPE_CONN_BIT | (uint64_t)e->gen << 16 | i,
                                         -EHOSTUNREACH, now);
        if (n > 0)
            p2p_info_rl(d->log, &d->overlay_log, now,
                        "SIP: %zu transactions to a node that is gone failed at once", n);
    }
}

void p2psipd__sip_node_name(struct p2psipd *d)
{
    struct dht_peer sp;
    const struct dht_id *super = NULL;

    if (d->overlay != NULL && overlay_node_super(d->overlay, &sp) == 0 &&
        overlay_node_role(d->overlay) == OVERLAY_ROLE_CLIENT)
        super = &sp.id;
    locator_dht_node_host(&d->identity.id, super, d->self.node_host, sizeof(d->self.node_host));
}
