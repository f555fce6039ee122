/*
 * media.c: media anchoring, RTP/RTCP relayed over pipes (overlay_media.h).
 *
 * Design.  Streams live in a fixed table; each owns two uv_udp_t on 127.0.0.1 (RTP on
 * an even port, RTCP on the next, RFC 3550 11), allocated by binding an ephemeral
 * port and retrying until it is even and its neighbour is free.  A packet from the
 * phone goes to the peer node as [call 8][stream 1][rtcp 1][packet]; one from the
 * peer goes to the phone's RTP or RTCP address from the matching socket.  The phone's
 * address is what its SDP said, corrected by the source of its first packet (a phone
 * behind its own NAT, or one that binds another port, RFC 4961 symmetric RTP).  A
 * repeating timer frees streams silent for OVERLAY_MEDIA_IDLE_MS.
 *
 * Invariants: a stream slot is in use iff it has open sockets or is closing; a
 * closing stream is out of every lookup; the relay is freed once its timer and every
 * stream socket are closed.
 */
#include "p2p/overlay_media.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/log.h"
#include "p2p/overlay_node.h"

struct stream;

struct msock {
    uv_udp_t h;
    struct stream *s;
    bool rtcp;
};

struct stream {
    bool used, closing;
    uint8_t call[OVERLAY_MEDIA_CALL_LEN];
    uint8_t index;
    unsigned open; /* sockets not yet closed */
    struct msock rtp, rtcp;
    uint16_t port;
    struct sockaddr_storage phone; /* RTP; family 0 until known */
    bool phone_latched;
    struct dht_id peer, via;
    bool has_peer, has_via;
    uint64_t last_ms, created_ms;
    struct overlay_media *m;
};

struct overlay_media {
    uv_loop_t *loop;
    struct overlay_node *node;
    struct p2p_log *log;
    struct stream *streams;
    unsigned max;
    uv_timer_t timer;
    bool closing;
    unsigned open; /* the timer + every stream socket */
    struct overlay_media_stats st;
    uint8_t buf[OVERLAY_MEDIA_PKT_MAX + 16];
};

static void released(struct overlay_media *m)
{
    if (--m->open > 0)
        return;
    free(m->streams);
    free(m);
}

static void sock_closed(uv_handle_t *h)
{
    struct msock *k = h->data;
    struct stream *s = k->s;
    struct overlay_media *m = s->m;

    if (--s->open == 0) {
        memset(s, 0, sizeof(*s));
        m->st.streams_closed++;
    }
    released(m);
}

static void stream_close(struct stream *s)
{
    if (!s->used || s->closing)
        return;
    s->closing = true;
    if (s->open == 0) {
        memset(s, 0, sizeof(*s));
        return;
    }
    if (!uv_is_closing((uv_handle_t *)&s->rtp.h))
        uv_close((uv_handle_t *)&s->rtp.h, sock_closed);
    if (s->open > 1 && !uv_is_closing((uv_handle_t *)&s->rtcp.h))
        uv_close((uv_handle_t *)&s->rtcp.h, sock_closed);
}

static struct stream *find(struct overlay_media *m, const uint8_t *call, unsigned index)
{
    for (unsigned i = 0; i < m->max; i++) {
        struct stream *s = &m->streams[i];
        if (s->used && !s->closing && s->index == index &&
            memcmp(s->call, call, OVERLAY_MEDIA_CALL_LEN) == 0)
            return s;
    }
    return NULL;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct msock *k = h->data;
    struct overlay_media *m = k->s->m;

    (void)suggested;
    buf->base = (char *)m->buf + 10;
    buf->len = OVERLAY_MEDIA_PKT_MAX;
}

/* From the phone: to the peer node. */
static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct msock *k = h->data;
    struct stream *s = k->s;
    struct overlay_media *m = s->m;

    if (nread <= 0 || addr == NULL || s->closing || m->closing)
        return;
    if ((flags & UV_UDP_PARTIAL) || !s->has_peer) {
        m->st.dropped++;
        return;
    }
    if (!k->rtcp && !s->phone_latched) {
        /* The phone's real source: answers go there (symmetric RTP). */
        memset(&s->phone, 0, sizeof(s->phone));
        memcpy(&s->phone, addr,
               addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in));
        s->phone_latched = true;
    }
    s->last_ms = uv_now(m->loop);
    memcpy(m->buf, s->call, OVERLAY_MEDIA_CALL_LEN);
    m->buf[8] = s->index;
    m->buf[9] = k->rtcp ? 1 : 0;
    (void)buf;
    if (overlay_node_pipe_send(m->node, &s->peer, s->has_via ? &s->via : NULL, OVERLAY_SVC_MEDIA,
                               m->buf, (size_t)nread + 10) == 0)
        m->st.to_peer++;
    else
        m->st.dropped++;
}

static int sock_open(struct overlay_media *m, struct stream *s, struct msock *k, uint16_t port,
                     uint16_t *bound)
{
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof(ss), r;

    k->s = s;
    k->rtcp = k == &s->rtcp; /* what the phone sends here is RTCP (found by baresip) */
    k->h.data = k;
    r = uv_udp_init(m->loop, &k->h);
    if (r != 0)
        return r;
    s->open++;
    m->open++;
    (void)uv_ip4_addr("127.0.0.1", port, &a);
    r = uv_udp_bind(&k->h, (const struct sockaddr *)&a, 0);
    if (r == 0)
        r = uv_udp_getsockname(&k->h, (struct sockaddr *)&ss, &len);
    if (r == 0)
        r = uv_udp_recv_start(&k->h, alloc_cb, recv_cb);
    if (r == 0)
        *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return r;
}

int overlay_media_stream(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN],
                         unsigned index, uint16_t *port)
{
    struct stream *s = find(m, call, index);

    if (s != NULL) {
        *port = s->port;
        return 0;
    }
    if (m->closing)
        return -ECANCELED;
    for (unsigned i = 0; i < m->max && s == NULL; i++)
        if (!m->streams[i].used)
            s = &m->streams[i];
    if (s == NULL)
        return -ENOSPC;
    /* An even RTP port with a free odd neighbour (RFC 3550 11), a few tries. */
    for (int tries = 0; tries < 16; tries++) {
        uint16_t rp = 0, cp = 0;
        int r;
        memset(s, 0, sizeof(*s));
        s->used = true;
        s->m = m;
        r = sock_open(m, s, &s->rtp, 0, &rp);
        if (r == 0 && (rp & 1) == 0)
            r = sock_open(m, s, &s->rtcp, (uint16_t)(rp + 1), &cp);
        else if (r == 0)
            r = -EAGAIN;
        if (r == 0) {
            memcpy(s->call, call, OVERLAY_MEDIA_CALL_LEN);
            s->index = (uint8_t)index;
            s->port = rp;
            s->created_ms = s->last_ms = uv_now(m->loop);
            m->st.streams_opened++;
            *port = rp;
            return 0;
        }
        /* Close what this try opened; the slot is reusable once libuv is done. */
        stream_close(s);
        s = NULL;
        for (unsigned i = 0; i < m->max && s == NULL; i++)
            if (!m->streams[i].used)
                s = &m->streams[i];
        if (s == NULL)
            return -ENOSPC;
    }
    return -EADDRINUSE;
}

void overlay_media_set_phone(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN],
                             unsigned index, const struct sockaddr_storage *rtp)
{
    struct stream *s = find(m, call, index);

    if (s != NULL && !s->phone_latched)
        s->phone = *rtp;
}

void overlay_media_set_peer(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN],
                            unsigned index, const struct dht_id *peer, const struct dht_id *via)
{
    struct stream *s = find(m, call, index);

    if (s != NULL) {
        s->peer = *peer;
        s->has_peer = true;
        s->has_via = via != NULL;
        if (via != NULL)
            s->via = *via;
    }
}

void overlay_media_end(struct overlay_media *m, const uint8_t call[OVERLAY_MEDIA_CALL_LEN])
{
    for (unsigned i = 0; i < m->max; i++) {
        struct stream *s = &m->streams[i];
        if (s->used && !s->closing && memcmp(s->call, call, OVERLAY_MEDIA_CALL_LEN) == 0)
            stream_close(s);
    }
}

void overlay_media_recv(struct overlay_media *m, const struct dht_id *from, const uint8_t *buf,
                        size_t len)
{
    struct sockaddr_storage to;
    struct stream *s;
    uv_buf_t b;
    bool rtcp;

    if (len < 10 || len - 10 > OVERLAY_MEDIA_PKT_MAX || m->closing) {
        m->st.dropped++;
        return;
    }
    s = find(m, buf, buf[8]);
    rtcp = buf[9] == 1;
    if (s == NULL || buf[9] > 1 || s->phone.ss_family == 0 ||
        (s->has_peer && !dht_id_eq(&s->peer, from))) {
        m->st.dropped++;
        return;
    }
    if (!s->has_peer) {
        s->peer = *from; /* the first packet names the other end */
        s->has_peer = true;
    }
    to = s->phone;
    if (rtcp) {
        if (to.ss_family == AF_INET)
            ((struct sockaddr_in *)&to)->sin_port =
                htons((uint16_t)(ntohs(((struct sockaddr_in *)&to)->sin_port) + 1));
        else
            ((struct sockaddr_in6 *)&to)->sin6_port =
                htons((uint16_t)(ntohs(((struct sockaddr_in6 *)&to)->sin6_port) + 1));
    }
    s->last_ms = uv_now(m->loop);
    b = uv_buf_init((char *)buf + 10, (unsigned)(len - 10));
    if (uv_udp_try_send(rtcp ? &s->rtcp.h : &s->rtp.h, &b, 1, (const struct sockaddr *)&to) >= 0)
        m->st.to_phone++;
    else
        m->st.dropped++;
}

static void on_timer(uv_timer_t *h)
{
    struct overlay_media *m = h->data;
    uint64_t now = uv_now(m->loop);

    for (unsigned i = 0; i < m->max; i++) {
        struct stream *s = &m->streams[i];
        if (s->used && !s->closing && now - s->last_ms > OVERLAY_MEDIA_IDLE_MS)
            stream_close(s);
    }
}

int overlay_media_new(struct overlay_media **out, uv_loop_t *loop, struct overlay_node *node,
                      unsigned max_streams, struct p2p_log *log)
{
    struct overlay_media *m;

    if (node == NULL || max_streams == 0)
        return -EINVAL;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->streams = calloc(max_streams, sizeof(*m->streams));
    if (m->streams == NULL) {
        free(m);
        return -ENOMEM;
    }
    m->loop = loop;
    m->node = node;
    m->log = log;
    m->max = max_streams;
    (void)uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    m->open = 1;
    (void)uv_timer_start(&m->timer, on_timer, 5000, 5000);
    *out = m;
    return 0;
}

void overlay_media_get_stats(const struct overlay_media *m, struct overlay_media_stats *out)
{
    *out = m->st;
}

size_t overlay_media_streams(const struct overlay_media *m)
{
    size_t n = 0;

    for (unsigned i = 0; i < m->max; i++)
        if (m->streams[i].used && !m->streams[i].closing)
            n++;
    return n;
}

static void timer_closed(uv_handle_t *h)
{
    released(h->data);
}

void overlay_media_close(struct overlay_media *m)
{
    if (m == NULL || m->closing)
        return;
    m->closing = true;
    for (unsigned i = 0; i < m->max; i++)
        stream_close(&m->streams[i]);
    uv_close((uv_handle_t *)&m->timer, timer_closed);
}
