/*
 * overlay_sip.h: SIP transports (UDP and TCP, IPv4 and IPv6) on a libuv loop.
 *
 * What it is: the socket half of RFC 3261 section 18.  sip/ parses and builds
 * messages but does no I/O; this transport owns the listening sockets and the TCP
 * connections, frames the byte streams with the sip/ parser (RFC 3261 18.3:
 * Content-Length on streams, one message per datagram), and delivers each message to
 * the SIP core through on_message.  It routes responses by the top Via (RFC 3261
 * 18.2.2, RFC 3581 4) and computes the "received"/"rport" parameters a server adds
 * to the top Via of a request it receives (RFC 3261 18.2.1, RFC 3581 4), so that
 * rule exists in one place.
 *
 * Design: one fixed receive buffer serves every socket (libuv calls alloc and read
 * back to back), so a datagram or a TCP read that holds whole messages costs no
 * allocation and no copy.  Only the unframed tail of a TCP read is copied into that
 * connection's own buffer, which is capped at the maximum message size.  Sends try
 * the socket first (uv_udp_try_send / uv_try_write) and copy only what the kernel
 * did not take.  Connections live in a fixed table of max_tcp_conns slots; an id is
 * (sequence << 32 | slot), never reused, so a stale id simply finds nothing.
 *
 * Invariants: no more than max_tcp_conns connections (accepted or opened) exist at
 * once, further accepts are refused (accepted and closed at once) and counted; no
 * connection buffers more than max_msg_size unframed bytes or queues more than
 * max_write_queue bytes for writing; every callback runs from the loop, never from
 * inside the API call that caused it.
 *
 * IPv6 listeners are bound IPV6ONLY, so sources are never IPv4-mapped addresses;
 * listen on 0.0.0.0 and :: separately for both families.
 */
#ifndef P2P_OVERLAY_SIP_H
#define P2P_OVERLAY_SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "p2p/slice.h"

struct p2p_log;
struct sip_msg;
struct sip_via;
struct overlay_sip_transport;

enum overlay_sip_proto {
    OVERLAY_SIP_UDP = 1,
    OVERLAY_SIP_TCP = 2,
};

/* One listening socket: protocol and local address; port 0 picks an ephemeral port. */
struct overlay_sip_listen {
    enum overlay_sip_proto proto;
    struct sockaddr_storage addr;
};

/* Defaults used when a config field is 0. */
#define OVERLAY_SIP_DEFAULT_MAX_TCP_CONNS 1024
#define OVERLAY_SIP_DEFAULT_MAX_MSG_SIZE 65536 /* SIP_MSG_MAX_SIZE, the parser's cap */
#define OVERLAY_SIP_DEFAULT_MAX_WRITE_QUEUE (256 * 1024)
#define OVERLAY_SIP_DEFAULT_TCP_IDLE_MS 60000
#define OVERLAY_SIP_DEFAULT_TCP_CONNECT_MS 10000
#define OVERLAY_SIP_MAX_LISTEN 16
/* The UDP receive buffer; a datagram cannot be larger. */
#define OVERLAY_SIP_RX_BUF 65536

struct overlay_sip_config {
    const struct overlay_sip_listen *listen; /* copied; at most OVERLAY_SIP_MAX_LISTEN */
    size_t listen_count;
    size_t max_tcp_conns;    /* accepted + opened connections alive at once */
    size_t max_msg_size;     /* largest TCP message, <= the parser's SIP_MSG_MAX_SIZE */
    size_t max_write_queue;  /* bytes queued for writing per connection / UDP socket */
    uint64_t tcp_idle_ms;    /* close a connection after this long with no traffic */
    uint64_t tcp_connect_ms; /* give up an outgoing connect after this long */
};

/*
 * Where a message came from.  conn_id is the TCP connection (0 for UDP); listener is
 * the index of the listening socket that received a datagram or accepted the
 * connection (for an outgoing connection, the index of the first TCP listener of its
 * family, or -1 when there is none).
 */
struct overlay_sip_source {
    enum overlay_sip_proto proto;
    int listener;
    uint64_t conn_id;
    struct sockaddr_storage local;
    struct sockaddr_storage remote;
};

/* Where a message goes: protocol and remote address. */
struct overlay_sip_dest {
    enum overlay_sip_proto proto;
    struct sockaddr_storage addr;
};

/*
 * Transport events.  Every callback may call any function of this API, including
 * overlay_sip_transport_close(); buf, msg and src are valid only during the call.
 */
struct overlay_sip_ops {
    /*
     * A message arrived.  msg is the parse of buf (parse_err 0), or NULL with
     * parse_err < 0 for a datagram that did not parse, so the SIP core can decide
     * between a 400 and silence (RFC 3261 18.3, 16.3).  A TCP stream that loses
     * its framing is never delivered: that connection is closed and counted.
     */
    void (*on_message)(void *arg, const struct overlay_sip_source *src, const char *buf, size_t len,
                       const struct sip_msg *msg, int parse_err);
    /*
     * Something sent earlier could not be delivered: an outgoing connection failed
     * (refused, timed out after tcp_connect_ms), a connection broke with bytes
     * queued on it, or a datagram queued behind a busy socket failed.  Called once
     * per failed connection (not per queued message) with the connection's remote
     * address, once per failed datagram with its destination.  Never called for a
     * send whose call returned an error, nor for writes dropped because we closed
     * the connection (idle, framing error, overlay_sip_conn_close, transport
     * close).  May be NULL.
     */
    void (*on_send_error)(void *arg, const struct overlay_sip_dest *dest, int err);
};

struct overlay_sip_counters {
    uint64_t udp_rx_datagrams, udp_rx_bytes, udp_tx_datagrams, udp_tx_bytes;
    uint64_t tcp_rx_messages, tcp_rx_bytes, tcp_tx_messages, tcp_tx_bytes;
    uint64_t keepalives;     /* CRLF keep-alives received (RFC 5626 3.5.1) */
    uint64_t parse_errors;   /* datagrams delivered with parse_err */
    uint64_t framing_errors; /* TCP connections closed because the stream did not parse */
    uint64_t oversized;      /* TCP messages over max_msg_size (connection closed) */
    uint64_t dropped;        /* datagrams dropped (empty, truncated), sends refused */
    uint64_t send_errors;    /* on_send_error reports */
    uint64_t conns_opened;   /* accepted + connected */
    uint64_t conns_closed;
    uint64_t conns_refused; /* accepts refused at max_tcp_conns */
    uint64_t conns_idle_closed;
    uint64_t conns_open; /* alive now (including connecting) */
};

/*
 * Creates the transport and binds and starts every listener.  cfg and its listen
 * array are copied; ops and arg are kept.  log may be NULL.  Returns 0 and writes
 * *out, or a negative errno / libuv error (-EINVAL for a bad config, the bind error
 * for an address in use).  On failure no callback ever runs; listeners already opened
 * are closed and freed when the loop next runs.
 */
int overlay_sip_transport_new(struct overlay_sip_transport **out, uv_loop_t *loop,
                              const struct overlay_sip_config *cfg,
                              const struct overlay_sip_ops *ops, void *arg, struct p2p_log *log);

typedef void (*overlay_sip_close_cb)(void *arg);

/*
 * Closes every socket and connection (queued writes are dropped, without
 * on_send_error) and frees the transport once libuv has closed all its handles;
 * then cb(arg) runs, if cb is not NULL.  No ops callback runs after this call.
 * Calling it twice is a programming error.
 */
void overlay_sip_transport_close(struct overlay_sip_transport *t, overlay_sip_close_cb cb,
                                 void *arg);

/* Number of listeners (as configured, in order). */
size_t overlay_sip_transport_listener_count(const struct overlay_sip_transport *t);

/*
 * The bound address of listener i (with the real port when 0 was asked for).
 * Returns 0, or -ENOENT past the end.
 */
int overlay_sip_transport_listener(const struct overlay_sip_transport *t, size_t i,
                                   struct overlay_sip_listen *out);

/* A snapshot of the counters. */
void overlay_sip_transport_counters(const struct overlay_sip_transport *t,
                                    struct overlay_sip_counters *out);

/*
 * Sends one message.  UDP: from the first UDP listener of the destination's family.
 * TCP: on an open (or opening) connection to exactly that address, whether we
 * accepted it or opened it, else on a new connection; the connect is asynchronous
 * and the message waits in the connection's write queue.  Returns 0 when the
 * message was sent or queued; a negative errno when it was not, and then no
 * on_send_error follows for it: -EAFNOSUPPORT (no listener of that family for UDP),
 * -ENOBUFS (write queue full), -EMFILE (max_tcp_conns reached), -EMSGSIZE, or the
 * socket's error.  Later failures come through on_send_error.
 */
int overlay_sip_send(struct overlay_sip_transport *t, const struct overlay_sip_dest *dest,
                     const char *buf, size_t len);

/*
 * Sends one message on TCP connection conn_id.  Returns 0, -ENOTCONN when that
 * connection is gone (closed or closing), or the errors of overlay_sip_send.
 */
int overlay_sip_send_conn(struct overlay_sip_transport *t, uint64_t conn_id, const char *buf,
                          size_t len);

/*
 * Sends a response the way RFC 3261 18.2.2 and RFC 3581 4 say, given where the
 * request came from (req_src, as delivered by on_message) and the request's top Via
 * (as parsed from the request, before any received/rport was added):
 *   - reliable (the request came over TCP): the same connection if it is still open;
 *     else a connection to "received" (else the source IP) at the sent-by port
 *     (default 5060);
 *   - "maddr" present (unreliable): to that address at the sent-by port (default
 *     5060); only an IP literal is accepted (this transport does no DNS: a name gives
 *     -EHOSTUNREACH); a multicast maddr is sent with the socket's default TTL of 1,
 *     the Via "ttl" parameter is not applied;
 *   - unreliable with "rport" in the request: to the source IP and source port, from
 *     the socket that received the request (RFC 3581 4);
 *   - unreliable otherwise: to "received" (else the source IP) at the sent-by port
 *     (default 5060), from the socket that received the request.
 * The source IP stands in for "received" because 18.2.1 would have set received to
 * exactly that.  Returns what overlay_sip_send returns, -EINVAL for a malformed Via
 * value.
 */
int overlay_sip_send_response(struct overlay_sip_transport *t,
                              const struct overlay_sip_source *req_src, const struct sip_via *via,
                              const char *buf, size_t len);

/*
 * What a server adds to the top Via of a request it received, for a caller that
 * holds the source as a socket address: the rule is sip_via_fix() (RFC 3261
 * 18.2.1, RFC 3581 4), applied to src->remote; received is that address as text
 * (IPv6 without brackets), rport its port.  The SIP core replaces any "received"
 * already in the Via with ours.
 */
struct overlay_sip_via_fix {
    bool add_received;
    bool set_rport;
    uint16_t rport;
    char received[INET6_ADDRSTRLEN];
};

/* Converts src and calls sip_via_fix().  Returns 0 and writes *out, or -EINVAL
 * (src->remote neither IPv4 nor IPv6). */
int overlay_sip_via_fix(const struct overlay_sip_source *src, const struct sip_via *via,
                        struct overlay_sip_via_fix *out);

/*
 * Builds a destination from a host as written in SIP (an IPv4 address or an IPv6
 * address, with or without brackets) and a port (0 means 5060, RFC 3261 19.1.2).
 * Returns 0, or -EINVAL for anything else: host names need a resolver
 * (uv_getaddrinfo, RFC 3263), which this transport does not run.
 */
int overlay_sip_dest_from_ip(struct p2p_slice host, uint16_t port, enum overlay_sip_proto proto,
                             struct overlay_sip_dest *out);

/*
 * Holds TCP connection conn_id open past its idle timeout, for example while a
 * transaction on it is pending; every ref needs one unref.  Returns 0 or -ENOTCONN.
 */
int overlay_sip_conn_ref(struct overlay_sip_transport *t, uint64_t conn_id);
int overlay_sip_conn_unref(struct overlay_sip_transport *t, uint64_t conn_id);

/* Closes TCP connection conn_id now (queued writes are dropped).  0 or -ENOTCONN. */
int overlay_sip_conn_close(struct overlay_sip_transport *t, uint64_t conn_id);

#endif
