/*
 * node_int.h: private state of the overlay node (node.c: sockets, channels, inner
 * messages and the DHT; node_roles.c: seeking, attach, probe, promotion, proxying and
 * health; node_disc.c: LAN multicast discovery).
 *
 * Invariants.  Channels live in a fixed table; a channel's local index is
 * (random 16 bits << 16 | slot), so a stale or forged index finds nothing.  Peers
 * live in a fixed table too and refer to channels by slot (-1 = none); a channel
 * refers back to its peer by slot (-1 while a responder does not know who it is).
 * Every queue and table has a cap; nothing here grows with the network's input.
 * All times are the loop's monotonic clock (uv_now) unless named wall.
 */
#ifndef P2P_OVERLAY_NODE_INT_H
#define P2P_OVERLAY_NODE_INT_H

#include "p2p/overlay_node.h"

#include "p2p/log.h"

#define NODE_Q_MAX 16           /* messages queued for a peer while its channel opens */
#define NODE_Q_BYTES 65536      /* and their bytes */
#define NODE_HALF_OPEN_MAX 64   /* responder handshakes waiting for HS3 */
#define NODE_HS_RTO_MS 250      /* first handshake retransmission */
#define NODE_HS_TRIES 3         /* HS1 sends before a handshake gives up (1.75 s) */
#define NODE_PIPE_FRESH_MS 1000 /* a pipe peer silent this long is probed on send */
#define NODE_PIPE_DEAD_MS 1200  /* and declared gone when the probe gets nothing */
#define NODE_DEAD_MAX 32
#define NODE_DEAD_MS 30000          /* how long a gone node is remembered as gone */
#define NODE_REKEY_MS 600000        /* an initiator opens a fresh channel after 10 min */
#define NODE_CHAN_MAX_AGE_MS 900000 /* a channel is not used for sending after 15 min */
#define NODE_OPS_MAX 256            /* put/get/lookup in flight from our own users */
#define NODE_PROXIED_MAX 256        /* requests run for clients at once */
#define NODE_CAND_MAX 64            /* super-node candidates */
#define NODE_TICK_MS 250
#define NODE_PROBE_WAIT_MS 3000
#define NODE_PROBES_MAX 16 /* reachability probes a super-node has out at once */
#define NODE_PROBE_RETRY_MS 20000
#define NODE_ADDR_CHECK_MS 2000
#define NODE_UDP_MAX 1400           /* larger frames take the stream path (node_tcp.c) */
#define NODE_CONN_MAX 256           /* TCP connections */
#define NODE_CONN_QUEUE 16          /* frames waiting for a connection to open */
#define NODE_CONN_WQ_MAX (1u << 20) /* bytes waiting to be written on one connection */
#define NODE_CONN_IDLE_MS 120000

/* Inner messages (the plaintext of a DATA frame), first byte. */
enum inner_kind {
    IN_DHT = 1,          /* a DHT message (docs/DHT-WIRE.md) */
    IN_PIPE = 2,         /* to 20, from 20, service u16, data */
    IN_ATTACH = 3,       /* client -> super: flags u8 */
    IN_ATTACH_ACK = 4,   /* status i16, [peer: a member to try instead] */
    IN_PROBE_REQ = 5,    /* client -> super: addr (u8 len, bytes) to probe */
    IN_PROBE_SEEN = 6,   /* client -> super: nonce 8 */
    IN_PROBE_RESULT = 7, /* super -> client: ok u8, addr */
    IN_PROXY_REQ = 8,    /* client -> super: req u32, op u8, key 20, [record] */
    IN_PROXY_REPLY = 9,  /* super -> client: req u32, status i16, count u32, [peer], records */
    IN_KEEPALIVE = 10,   /* flags u8 (1 = please answer) */
    IN_DETACH = 11,      /* either side: the attachment ends */
};

enum chan_state { CH_FREE = 0, CH_INIT, CH_RESP, CH_UP };

struct chan {
    uint8_t state;
    uint8_t tries;
    bool initiator;
    bool confirmed; /* initiator: the responder has sent us DATA (HS3 arrived) */
    bool renewing;  /* initiator: a second handshake was started for it */
    uint32_t local_index;
    int peer; /* peer slot, -1 for a responder that does not know yet */
    struct sockaddr_storage addr;
    struct ovl_hs hs;
    struct ovl_session sess;
    uint64_t t_start, t_sent, t_up;
    uint8_t *hs_msg; /* the last handshake message we sent (retransmission) */
    size_t hs_len;
    uint32_t remote_hs_index; /* responder: the initiator's index from HS1 */
};

struct qmsg {
    uint8_t *buf;
    size_t len;
};

struct peer {
    bool used;
    bool id_known;
    bool client;       /* attached to us */
    bool attach_asked; /* we sent it an ATTACH not answered yet */
    struct dht_id id;
    uint8_t ed_pk[32];
    struct sockaddr_storage addr;
    int cur, prev; /* established channels, -1 = none */
    int opening;   /* initiator handshake in flight, -1 = none */
    int conn;      /* stream path (node_tcp.c), -1 = none */
    struct qmsg q[NODE_Q_MAX];
    unsigned qn;
    size_t qbytes;
    uint64_t last_recv, last_send, created;
    uint64_t probe_sent; /* a liveness probe (KEEPALIVE) waits for any frame, 0 = none */
    uint64_t frames_in, frames_out;
};

enum op_kind { OP_PUT = 1, OP_GET, OP_LOOKUP, OP_TRACE /* never proxied */ };

union op_cb {
    dht_put_cb put;
    dht_get_cb get;
    dht_lookup_cb lookup;
    dht_trace_cb trace;
};

/* One put/get/lookup of our own user, run by our DHT node or proxied to our super. */
struct op {
    bool used;
    bool cancelled; /* its user went away: complete silently */
    bool via_super; /* proxied: answered by IN_PROXY_REPLY */
    uint8_t kind;
    uint32_t id;
    union op_cb cb;
    void *arg;
    uint64_t deadline; /* proxied ops only */
    uint8_t *req;      /* proxied: the request, resent to a new super */
    size_t req_len;
    struct overlay_node *node;
};

/* A request run by our DHT node for a client. */
struct proxied {
    bool used;
    uint8_t op;
    uint32_t req;
    struct dht_id client;
    struct overlay_node *node;
};

struct conn; /* node_tcp.c */

/* A pipe datagram waiting for the DHT to find its next hop's address. */
#define NODE_PIPE_WAIT_MAX 32
struct pipe_wait {
    bool used;
    struct dht_id target; /* the node we look up (the destination or its relay) */
    uint8_t *body;        /* the PIPE inner body: to, from, service, data */
    size_t len;
    uint64_t deadline;
};

struct cand {
    bool used;
    struct dht_peer peer; /* id may be zero (a bootstrap address) */
    uint64_t next_try;
};

struct overlay_node {
    uv_loop_t *loop;
    struct p2p_log *log;
    struct p2p_log_limit peer_log;  /* lines peers can cause (log.h) */
    struct p2p_log_limit state_log; /* role and health changes, which peers drive */
    struct overlay_node_config cfg;
    struct overlay_node_ops ops;
    const struct ovl_identity *me;

    uv_udp_t udp4, udp6, probe4, probe6, disc;
    bool have4, have6, have_probe4, have_probe6, have_disc;
    uv_tcp_t tcp4, tcp6;
    bool have_tcp4, have_tcp6;
    struct conn *conns[NODE_CONN_MAX];
    uv_timer_t tick, dht_timer;
    unsigned open_handles;
    bool closing, started;
    void (*close_cb)(void *arg);
    void *close_arg;
    uint16_t port;

    struct chan *chans;
    unsigned n_chans;
    struct peer *peers;
    unsigned n_peers;
    unsigned half_open;

    struct dht_node *dht;
    struct dht_node *dht_old; /* closed, freed from the next tick (not inside its callback) */
    enum overlay_role role;
    bool cut_off;
    uint64_t t_start, t_cut_check, t_addr_check, t_cut_since;
    bool ever_joined;       /* a join completed since the node started */
    uint8_t addr_print[16]; /* digest of the host's interface addresses */
    bool addr_print_set;
    uint8_t addr_tell; /* keep-alive rounds still due after an address change */

    /* seeking / attachment */
    struct cand cands[NODE_CAND_MAX];
    int super; /* peer slot of our super-node, -1 */
    uint64_t super_since;
    uint64_t t_seek, seek_backoff;
    uint64_t t_keepalive;
    bool joining;
    /* reachability */
    bool reachable; /* a super verified our advertised address */
    struct dht_addr advertised;
    uint64_t t_probe;
    bool probe_pending;
    /* super side: one probe at a time per client, by nonce */
    struct {
        bool used;
        uint8_t nonce[8];
        struct dht_id client;
        struct dht_addr addr;
        uint64_t deadline;
    } probes[NODE_PROBES_MAX];

    /* discovery */
    uint64_t t_disc, disc_backoff;
    double disc_tokens;
    uint64_t t_disc_tokens;

    struct op ops_tab[NODE_OPS_MAX];
    uint32_t next_op;
    struct proxied prox[NODE_PROXIED_MAX];
    struct pipe_wait pipe_wait[NODE_PIPE_WAIT_MAX];
    struct {
        struct dht_id id;
        uint64_t until;
    } dead[NODE_DEAD_MAX];
    unsigned dead_next;

    struct overlay_node_stats st;
    uint8_t frame[OVL_FRAME_MAX + 64]; /* scratch for one outgoing frame */
    uint8_t plain[OVL_FRAME_MAX + 64]; /* scratch for one message being sealed */
    /* One opened frame: separate from plain, because handling it sends (a DHT hop
     * forwards the very bytes it received after sending ROWS). */
    uint8_t opened[OVL_FRAME_MAX + 64];
    uint8_t rx[OVL_FRAME_MAX + 64]; /* receive buffer for every socket */
};

/* node.c */
/* libuv alloc callback of every UDP socket of the node (h->data: the node): n->rx. */
void overlay__rx_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
uint64_t overlay__now(const struct overlay_node *n);
struct peer *overlay__peer_find(struct overlay_node *n, const struct dht_id *id);
int overlay__peer_slot(const struct overlay_node *n, const struct peer *p);
struct peer *overlay__peer_get(struct overlay_node *n, const struct dht_id *id,
                               const struct sockaddr_storage *addr);
int overlay__send_inner(struct overlay_node *n, struct peer *p, uint8_t kind, const uint8_t *body,
                        size_t len);
int overlay__send_raw(struct overlay_node *n, const struct sockaddr_storage *to, const uint8_t *buf,
                      size_t len, bool from_probe);
void overlay__dht_rearm(struct overlay_node *n);
bool overlay__peer_up(const struct overlay_node *n, const struct peer *p);
void overlay__set_role(struct overlay_node *n, enum overlay_role role);
int overlay__dht_create(struct overlay_node *n);
void overlay__ops_cancel_all(struct overlay_node *n);
void overlay__dht_discard(struct overlay_node *n);

void overlay__handle_closed(struct overlay_node *n);
void overlay__peer_gone(struct overlay_node *n, struct peer *p);
void overlay__peer_reset(struct overlay_node *n, struct peer *p);
bool overlay__on_stream_frame(struct overlay_node *n, int conn, const uint8_t *buf, size_t len);

/* node_tcp.c */
int overlay__tcp_listen(struct overlay_node *n, uv_tcp_t *h, int family, bool *have);
int overlay__tcp_send(struct overlay_node *n, struct peer *p, const uint8_t *frame, size_t len);
void overlay__conn_bind(struct overlay_node *n, int slot, int peer);
void overlay__conn_close(struct overlay_node *n, int slot);
void overlay__tcp_tick(struct overlay_node *n, uint64_t now);
void overlay__tcp_close_all(struct overlay_node *n);

/* node_roles.c */
void overlay__roles_start(struct overlay_node *n);
void overlay__roles_tick(struct overlay_node *n, uint64_t now);
void overlay__addr_changed(struct overlay_node *n);
void overlay__on_inner_ctl(struct overlay_node *n, struct peer *p, uint8_t kind,
                           const uint8_t *body, size_t len);
void overlay__on_probe_frame(struct overlay_node *n, const struct ovl_discover *d);
void overlay__cand_add(struct overlay_node *n, const struct dht_peer *p, bool front);
int overlay__proxy_request(struct overlay_node *n, struct op *o, const struct dht_id *key,
                           const struct dht_record *rec);

/* node_disc.c */
int overlay__disc_open(struct overlay_node *n);
void overlay__disc_tick(struct overlay_node *n, uint64_t now);
/* Our DISCOVER frame (our id and port, flags, nonce) sealed into frame: its length or <0. */
int overlay__disc_frame(const struct overlay_node *n, uint8_t flags, const uint8_t nonce[8],
                        uint8_t frame[OVL_DISCOVER_LEN]);
void overlay__on_discover(struct overlay_node *n, const struct ovl_discover *d,
                          const struct sockaddr_storage *from, bool via_group);

/* Byte helpers. */
static inline void overlay__put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void overlay__put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint16_t overlay__get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t overlay__get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
