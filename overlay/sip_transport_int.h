/*
 * sip_transport_int.h: internals shared by sip_transport.c (listeners, UDP, routing)
 * and sip_transport_tcp.c (connections).  Not a public header.
 *
 * Lifetime: every libuv handle owned by the transport is counted in t->handles; the
 * transport is freed when the last close callback brings the count to zero after
 * overlay_sip_transport_close().  A connection is freed in the close callback of its
 * second handle (tcp and timer); until then it keeps its slot, so the number of
 * connection structs never passes max_tcp_conns.
 */
#ifndef P2P_SIP_TRANSPORT_INT_H
#define P2P_SIP_TRANSPORT_INT_H

#include "p2p/buf.h"
#include "p2p/log.h"
#include "p2p/overlay_addr.h"
#include "p2p/overlay_sip.h"
#include "p2p/sip_msg.h"

struct overlay_sip_transport;

/* Listener and connection both start with the transport pointer: handle->data
 * points at either, and the shared alloc callback reads the transport from it. */
struct overlay__sip_listener {
    struct overlay_sip_transport *t; /* first member, see above */
    int index;
    enum overlay_sip_proto proto;
    struct sockaddr_storage addr; /* bound address */
    union {
        uv_handle_t handle;
        uv_udp_t udp;
        uv_tcp_t tcp;
    } h;
};

enum overlay__sip_conn_state {
    OVERLAY__CONN_CONNECTING,
    OVERLAY__CONN_OPEN,
    OVERLAY__CONN_CLOSING,
};

struct overlay__sip_conn {
    struct overlay_sip_transport *t; /* first member, see above */
    uint64_t id;
    uint32_t slot;
    enum overlay__sip_conn_state state;
    int listener;
    unsigned refs;           /* overlay_sip_conn_ref holds */
    unsigned open_handles;   /* tcp + timer until both close callbacks ran */
    uint64_t last_active_ms; /* uv_now of the last read or write */
    struct sockaddr_storage local;
    struct sockaddr_storage remote;
    struct overlay__sip_conn *addr_next; /* chain in t->addr_hash */
    struct p2p_buf rbuf;                 /* unframed tail, capped at max_msg_size */
    size_t scan;                         /* rbuf bytes searched for the end of the head */
    size_t probe;                        /* parse rbuf again once it holds this much */
    bool head_seen;                      /* rbuf holds a complete head */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
};

struct overlay_sip_transport {
    uv_loop_t *loop;
    struct p2p_log *log;
    struct p2p_log_limit conn_log; /* lines peers can cause (log.h) */
    struct overlay_sip_ops ops;
    void *arg;
    struct overlay_sip_config cfg;
    bool closing;
    overlay_sip_close_cb close_cb;
    void *close_arg;
    size_t handles; /* libuv handles not yet closed */

    struct overlay__sip_listener listeners[OVERLAY_SIP_MAX_LISTEN];
    size_t listener_count;

    struct overlay__sip_conn **slots; /* max_tcp_conns entries */
    uint32_t *free_slots;             /* stack of free slot indices */
    size_t free_count;
    uint32_t conn_seq;
    struct overlay__sip_conn **addr_hash; /* remote address -> open connections */
    size_t addr_hash_mask;

    struct overlay_sip_counters ctr;
    struct sip_msg msg; /* parse target, reused for every message */
    char rx[OVERLAY_SIP_RX_BUF];
};

/* sip_transport.c */
void overlay__sip_handle_closed(struct overlay_sip_transport *t);
void overlay__sip_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
int overlay__sip_listener_index(struct overlay_sip_transport *t, enum overlay_sip_proto proto,
                                int family);

/* sip_transport_tcp.c */
int overlay__sip_tcp_init(struct overlay_sip_transport *t);
void overlay__sip_tcp_fini(struct overlay_sip_transport *t);
void overlay__sip_tcp_on_connection(uv_stream_t *server, int status);
void overlay__sip_refused_closed_cb(uv_handle_t *h);
struct overlay__sip_conn *overlay__sip_conn_find(struct overlay_sip_transport *t, uint64_t id);
int overlay__sip_tcp_send(struct overlay_sip_transport *t, const struct sockaddr_storage *addr,
                          const char *buf, size_t len);
int overlay__sip_conn_write(struct overlay__sip_conn *c, const char *buf, size_t len);
void overlay__sip_conn_close(struct overlay__sip_conn *c);
void overlay__sip_tcp_close_all(struct overlay_sip_transport *t);

#endif
