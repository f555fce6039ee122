/*
 * node_disc.c: LAN discovery by multicast (overlay_node.h, docs/OVERLAY-WIRE.md).
 *
 * Design.  A node that seeks a super-node sends a DISCOVER query (flag QUERY) from its
 * P2P socket to the administratively scoped group 239.255.75.60 (RFC 2365) on the
 * discovery port, with TTL 1 so it never leaves the link, on every IPv4 interface
 * that is up, again after 1, 2, 4... s (at most every 16 s) while it seeks.  Ring
 * members listen on the group and answer a query with a unicast DISCOVER (flag
 * MEMBER) from their P2P socket to the querier's source address, i.e. its P2P
 * socket; a member answers at most 5 queries a second.  The querier then attaches to
 * whoever answered (node_roles.c).  Every DISCOVER frame carries a MAC keyed by the
 * overlay secret, so nodes of another overlay on the same LAN ignore each other, and
 * the discovery port is not SIP's (the seed shared 5062 and its discovery failed).
 *
 * IPv6 link-local discovery (ff02::7560) is not implemented yet: nodes on an
 * IPv6-only LAN need -S.
 */
#include "node_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <sodium.h>

#define DISC_GROUP4 "239.255.75.60"
#define DISC_FLAG_PROBE 0x04
#define DISC_BACKOFF_MAX 16000
#define DISC_ANSWERS_PER_S 5.0

static int join_groups(struct overlay_node *n)
{
    uv_interface_address_t *ifs;
    int cnt, joined = 0, r;

    if (uv_interface_addresses(&ifs, &cnt) != 0)
        cnt = 0;
    for (int pass = 0; pass < 2 && joined == 0; pass++) {
        for (int i = 0; i < cnt; i++) {
            char ip[INET_ADDRSTRLEN];
            if (ifs[i].address.address4.sin_family != AF_INET)
                continue;
            /* Loopback only when there is nothing else (a host of its own in tests). */
            if ((pass == 0) == (ifs[i].is_internal != 0))
                continue;
            inet_ntop(AF_INET, &ifs[i].address.address4.sin_addr, ip, sizeof(ip));
            r = uv_udp_set_membership(&n->disc, DISC_GROUP4, ip, UV_JOIN_GROUP);
            if (r == 0)
                joined++;
            else
                p2p_debug(n->log, "overlay: cannot join %s on %s: %s", DISC_GROUP4, ip,
                          uv_strerror(r));
        }
    }
    if (cnt > 0)
        uv_free_interface_addresses(ifs, cnt);
    return joined > 0 ? 0 : -ENODEV;
}

static void disc_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                      unsigned flags)
{
    struct overlay_node *n = h->data;
    struct sockaddr_storage from;
    struct ovl_discover d;

    if (nread <= 0 || addr == NULL || n->closing || (flags & UV_UDP_PARTIAL))
        return;
    n->st.frames_in++;
    n->st.bytes_in += (uint64_t)nread;
    if (ovl_discover_decode(n->cfg.psk, (const uint8_t *)buf->base, (size_t)nread, &d) != 0) {
        n->st.dropped_auth++; /* garbage, or another overlay's announcement */
        return;
    }
    if (dht_id_eq(&d.id, &n->me->id))
        return;
    memset(&from, 0, sizeof(from));
    if (addr->sa_family != AF_INET)
        return;
    memcpy(&from, addr, sizeof(struct sockaddr_in));
    n->st.discover_recv++;
    overlay__on_discover(n, &d, &from, true);
}

int overlay__disc_open(struct overlay_node *n)
{
    struct sockaddr_storage any;
    int r;

    r = uv_udp_init_ex(n->loop, &n->disc, AF_INET);
    if (r != 0)
        return r;
    n->disc.data = n;
    n->open_handles++;
    n->have_disc = true;
    overlay_addr_any(&any, AF_INET, n->cfg.discovery_port);
    /* Several nodes on one host share the discovery port. */
    r = uv_udp_bind(&n->disc, (const struct sockaddr *)&any, UV_UDP_REUSEADDR);
    if (r == 0)
        r = join_groups(n);
    if (r == 0)
        r = uv_udp_set_multicast_loop(&n->disc, 1);
    if (r == 0)
        r = uv_udp_recv_start(&n->disc, overlay__rx_alloc, disc_recv);
    /* Queries leave from the P2P socket (answers come back to it): TTL 1, looped
     * back so that two nodes on one host find each other. */
    if (r == 0 && n->have4)
        r = uv_udp_set_multicast_ttl(&n->udp4, 1);
    if (r == 0 && n->have4)
        r = uv_udp_set_multicast_loop(&n->udp4, 1);
    if (r != 0) {
        p2p_info(n->log, "overlay: discovery on port %u: %s", (unsigned)n->cfg.discovery_port,
                 r == -ENODEV ? "no interface can join the group" : uv_strerror(r));
        uv_udp_recv_stop(&n->disc);
        return r;
    }
    p2p_info(n->log, "overlay: LAN discovery on %s port %u", DISC_GROUP4,
             (unsigned)n->cfg.discovery_port);
    return 0;
}

int overlay__disc_frame(const struct overlay_node *n, uint8_t flags, const uint8_t nonce[8],
                        uint8_t frame[OVL_DISCOVER_LEN])
{
    struct ovl_discover d;

    memset(&d, 0, sizeof(d));
    d.id = n->me->id;
    d.port = n->port;
    d.flags = flags;
    memcpy(d.nonce, nonce, sizeof(d.nonce));
    return ovl_discover_encode(n->cfg.psk, &d, frame, OVL_DISCOVER_LEN);
}

/* Sends one query to the group on every IPv4 interface that is up. */
static void send_query(struct overlay_node *n)
{
    struct sockaddr_in group;
    uv_interface_address_t *ifs;
    uint8_t frame[OVL_DISCOVER_LEN], nonce[8];
    int len, cnt, sent = 0;

    randombytes_buf(nonce, sizeof(nonce));
    len = overlay__disc_frame(n, OVL_DISC_QUERY, nonce, frame);
    if (len < 0 || !n->have4)
        return;
    (void)uv_ip4_addr(DISC_GROUP4, n->cfg.discovery_port, &group);
    if (uv_interface_addresses(&ifs, &cnt) != 0)
        cnt = 0;
    for (int pass = 0; pass < 2 && sent == 0; pass++) {
        for (int i = 0; i < cnt; i++) {
            char ip[INET_ADDRSTRLEN];
            if (ifs[i].address.address4.sin_family != AF_INET ||
                (pass == 0) == (ifs[i].is_internal != 0))
                continue;
            inet_ntop(AF_INET, &ifs[i].address.address4.sin_addr, ip, sizeof(ip));
            if (uv_udp_set_multicast_interface(&n->udp4, ip) != 0)
                continue;
            if (overlay__send_raw(n, (const struct sockaddr_storage *)&group, frame, (size_t)len,
                                  false) == 0) {
                n->st.discover_sent++;
                sent++;
            }
        }
    }
    if (cnt > 0)
        uv_free_interface_addresses(ifs, cnt);
}

void overlay__disc_tick(struct overlay_node *n, uint64_t now)
{
    if (n->role != OVERLAY_ROLE_SEEKING || now < n->t_disc)
        return;
    send_query(n);
    n->disc_backoff = n->disc_backoff == 0 ? 1000 : n->disc_backoff * 2;
    if (n->disc_backoff > DISC_BACKOFF_MAX)
        n->disc_backoff = DISC_BACKOFF_MAX;
    n->t_disc = now + n->disc_backoff;
}

void overlay__on_discover(struct overlay_node *n, const struct ovl_discover *d,
                          const struct sockaddr_storage *from, bool via_group)
{
    uint64_t now = overlay__now(n);

    if (d->flags & DISC_FLAG_PROBE) {
        if (!via_group)
            overlay__on_probe_frame(n, d);
        return;
    }
    if ((d->flags & OVL_DISC_QUERY) && via_group) {
        uint8_t frame[OVL_DISCOVER_LEN], nonce[8];
        int len;
        bool member = n->dht != NULL && dht_node_joined(n->dht);

        if (!member)
            return; /* only ring members can be attached to */
        /* Token bucket: a flood of queries costs at most 5 answers a second. */
        n->disc_tokens += (double)(now - n->t_disc_tokens) * DISC_ANSWERS_PER_S / 1000.0;
        if (n->disc_tokens > DISC_ANSWERS_PER_S)
            n->disc_tokens = DISC_ANSWERS_PER_S;
        n->t_disc_tokens = now;
        if (n->disc_tokens < 1.0) {
            n->st.dropped_full++;
            return;
        }
        n->disc_tokens -= 1.0;
        randombytes_buf(nonce, sizeof(nonce));
        len = overlay__disc_frame(n, OVL_DISC_MEMBER, nonce, frame);
        if (len > 0 && overlay__send_raw(n, from, frame, (size_t)len, false) == 0)
            n->st.discover_sent++;
        return;
    }
    if ((d->flags & OVL_DISC_MEMBER) && !via_group && n->role == OVERLAY_ROLE_SEEKING) {
        struct dht_peer p;
        p.id = d->id;
        if (overlay_addr_to_dht(from, &p.addr) != 0)
            return;
        overlay__cand_add(n, &p, true);
        n->t_seek = now; /* try it on the next tick */
    }
}
