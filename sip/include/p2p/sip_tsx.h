/*
 * sip_tsx.h: the SIP transaction layer (RFC 3261 17, with RFC 6026's Accepted state).
 *
 * Pure: no sockets, no libuv, no clock.  Bytes leave through ops.send, time comes in
 * as now_ms (any monotonic millisecond clock), and the event loop runs
 * sip_tsx_layer_advance() when sip_tsx_layer_next_deadline() says so.
 *
 * Client transactions (17.1): INVITE (Calling, Proceeding, Completed, Accepted,
 * Terminated) and non-INVITE (Trying, Proceeding, Completed, Terminated) with timers
 * A, B, D, E, F, K, M and optionally the proxy's Timer C (16.6 step 11).  The ACK for
 * a 300-699 answer to an INVITE is built (sip_build_ack) and sent here (17.1.1.3);
 * 2xx answers go up to the TU, which acknowledges or forwards them.
 *
 * Server transactions (17.2): INVITE (Proceeding, Completed, Confirmed, Accepted,
 * Terminated) and non-INVITE (Trying, Proceeding, Completed, Terminated) with timers
 * G, H, I, J, L and the 100 Trying of 17.2.1 (after 200 ms, or at once as a proxy
 * may do, 16.2).  Retransmitted requests are absorbed and the last response is sent
 * again.
 *
 * RFC 6026 is implemented: a 2xx moves an INVITE transaction to Accepted instead of
 * Terminated, for 64*T1 (Timer L server side, Timer M client side).  A server in
 * Accepted absorbs retransmitted INVITEs and sends every 2xx the TU passes it (the
 * UAS core or the downstream side retransmits them, not the transaction); a client
 * in Accepted passes every 2xx retransmission up.  An ACK that matches a server
 * transaction in Accepted goes up like any ACK to a 2xx.
 *
 * Responses of a server transaction are handed to ops.send with the request's
 * source as destination (transport, address, connection).  Where they really go is
 * the transport layer's business (RFC 3261 18.2.2 and RFC 3581 4: the connection,
 * or received/rport/sent-by/maddr of the top Via), done by overlay/'s
 * overlay_sip_send_response(), so it is not repeated here.
 *
 * Matching: 17.2.3 for requests (branch with the z9hG4bK cookie + sent-by + method,
 * ACK and CANCEL-for-9.2 matching INVITE) with the RFC 2543 fallback (Request-URI,
 * To tag, From tag, Call-ID, CSeq number and top Via; for an ACK, the To tag of our
 * response); 17.1.3 for responses (branch + CSeq method).  The fields are hashed
 * together with a keyed BLAKE2b (secret per layer, so peers cannot aim collisions at
 * one bucket) into a 128-bit key; equal keys are taken as equal fields.  The 2543
 * fallback compares the header values byte for byte, which is what retransmissions
 * carry.
 *
 * Lifetimes the RFC leaves to the TU: an INVITE server transaction waits in
 * Proceeding until the TU answers (a UAS may ring for minutes; the proxy answers
 * through Timer C or its downstream timeouts), and an INVITE client transaction in
 * Proceeding waits for a final response unless Timer C is configured or the TU calls
 * sip_tsx_client_cancelled() after sending a CANCEL.  A non-INVITE server transaction
 * the TU never answers is ended 64*T1 + T4 after it began (SIP_TSX_TIMEOUT_TU).
 *
 * Callbacks (struct sip_tsx_ops) run only from sip_tsx_layer_recv() (on_request,
 * on_response, on_transport_error while sending an ACK or a response again) and
 * sip_tsx_layer_advance() (everything, and on_terminated only from there): never
 * from sip_tsx_client_new(), sip_tsx_server_respond() or another call the TU makes.
 * A transaction is destroyed right after its on_terminated; after any call into the
 * layer, the event loop re-arms its timer from sip_tsx_layer_next_deadline().
 */
#ifndef P2P_SIP_TSX_H
#define P2P_SIP_TSX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "p2p/sip_build.h"
#include "p2p/sip_msg.h"
#include "p2p/slice.h"

enum sip_tsx_transport {
    SIP_TSX_UDP,
    SIP_TSX_TCP,
    SIP_TSX_TLS,
};

/*
 * Where a message goes or came from; filled by the overlay, opaque to sip/.  For a
 * stream transport conn_id names the connection (0: let the transport choose).
 */
struct sip_tsx_dest {
    enum sip_tsx_transport transport;
    struct sockaddr_storage addr; /* AF_INET or AF_INET6 */
    uint64_t conn_id;
    /* Reached through the P2P overlay (another node, over a pipe): the proxy
     * Record-Routes twice across this boundary (RFC 5658), see sip_self.node_host. */
    bool overlay;
};

enum sip_tsx_state {
    SIP_TSX_CALLING,    /* client INVITE */
    SIP_TSX_TRYING,     /* client and server non-INVITE */
    SIP_TSX_PROCEEDING, /* all four */
    SIP_TSX_COMPLETED,  /* all four */
    SIP_TSX_CONFIRMED,  /* server INVITE */
    SIP_TSX_ACCEPTED,   /* INVITE, RFC 6026 */
    SIP_TSX_TERMINATED,
};

/* Why on_timeout ran. */
enum sip_tsx_timeout {
    /* Client: no final response (Timer B or F, or 64*T1 after Timer C or a CANCEL,
     * RFC 3261 9.1).  The TU acts as on a 408 (8.1.3.1, 16.7 step 2).  The
     * transaction terminates. */
    SIP_TSX_TIMEOUT_RESPONSE,
    /* Client INVITE with Timer C, in Proceeding (16.6 step 11, 16.8): the proxy must
     * CANCEL the branch.  The transaction stays, and gives up 64*T1 later with
     * SIP_TSX_TIMEOUT_RESPONSE unless a final response arrives. */
    SIP_TSX_TIMEOUT_C,
    /* Server INVITE: Timer H, the ACK never came (17.2.1).  Terminates. */
    SIP_TSX_TIMEOUT_ACK,
    /* Server non-INVITE: the TU gave no final response within 64*T1 + T4 (the
     * client's Timer F has expired by then; not in RFC 3261, which leaves the
     * transaction waiting forever).  Terminates. */
    SIP_TSX_TIMEOUT_TU,
};

struct sip_tsx;
struct sip_tsx_layer;

/*
 * The destination behind conn_id is gone (the daemon learned it out of band: another
 * node of the overlay stopped answering).  Every client transaction still waiting on
 * it fails as on a transport error (on_transport_error, from inside this call, then
 * terminated), RFC 3261 17.1.4.  Returns how many.
 */
size_t sip_tsx_layer_conn_failed(struct sip_tsx_layer *l, uint64_t conn_id, int err,
                                 uint64_t now_ms);

/*
 * Hands bytes to the transport.  Returns 0 or a negative errno (the transaction
 * reports it, see the functions below).  The bytes are only valid during the call.
 */
typedef int (*sip_tsx_send_cb)(const char *bytes, size_t len, const struct sip_tsx_dest *dest,
                               void *arg);
/*
 * A request that created a server transaction t, or an ACK that belongs to no
 * transaction or to one in Accepted (t == NULL: an ACK to a 2xx, which a proxy
 * forwards statelessly, 16.11).  msg and raw are valid during the call only; the
 * bytes stay available from sip_tsx_request(t) until t's final response.  src
 * is where it came from.
 */
typedef void (*sip_tsx_request_cb)(struct sip_tsx *t, const struct sip_msg *msg,
                                   struct p2p_slice raw, const struct sip_tsx_dest *src, void *arg);
/*
 * A response for client transaction t, as 17.1 passes it up (1xx, the final one,
 * every 2xx to an INVITE).  t == NULL: it matched no transaction (RFC 6026 8.4: a
 * stateful proxy drops it; a UA core may still use it).
 */
typedef void (*sip_tsx_response_cb)(struct sip_tsx *t, const struct sip_msg *msg,
                                    struct p2p_slice raw, const struct sip_tsx_dest *src,
                                    void *arg);
typedef void (*sip_tsx_timeout_cb)(struct sip_tsx *t, enum sip_tsx_timeout why, void *arg);
/* ops.send failed for t (17.1.4, 17.2.4); t terminates. */
typedef void (*sip_tsx_transport_error_cb)(struct sip_tsx *t, int err, void *arg);
/* Last callback for t, which is freed when it returns. */
typedef void (*sip_tsx_terminated_cb)(struct sip_tsx *t, void *arg);

struct sip_tsx_ops {
    sip_tsx_send_cb send;                          /* required */
    sip_tsx_request_cb on_request;                 /* required */
    sip_tsx_response_cb on_response;               /* required */
    sip_tsx_timeout_cb on_timeout;                 /* may be NULL */
    sip_tsx_transport_error_cb on_transport_error; /* may be NULL */
    sip_tsx_terminated_cb on_terminated;           /* may be NULL */
    void *arg;                                     /* passed to every callback */
};

struct sip_tsx_config {
    uint32_t t1_ms;      /* RTT estimate, default 500 (RFC 3261 17.1.1.1) */
    uint32_t t2_ms;      /* max non-INVITE retransmit interval, default 4000 */
    uint32_t t4_ms;      /* max time a message stays in the network, default 5000 */
    uint32_t timer_d_ms; /* Timer D on unreliable transports, default 32000 (>= 32 s) */
    uint32_t timer_c_ms; /* proxy Timer C, > 3 min (16.6 step 11); 0 = off (default) */
    uint32_t trying_ms;  /* 100 Trying delay for INVITE, default 200 (17.2.1) */
    bool trying_at_once; /* send 100 Trying on arrival, as a proxy may (16.2) */
    uint32_t max_tsx;    /* hard cap on live transactions, default 65536 */
    size_t max_msg;      /* largest message copied into a transaction, default 65536 */
};

/* Fills cfg with the defaults above. */
void sip_tsx_config_default(struct sip_tsx_config *cfg);

/*
 * Creates a layer.  ops is copied.  Returns 0, -EINVAL (t1/t2/t4/max_tsx/max_msg
 * zero, t2 < t1, timer_c_ms in (0, 180000], missing required op), -ENOMEM, -EIO
 * (libsodium cannot initialise).
 */
int sip_tsx_layer_new(struct sip_tsx_layer **out, const struct sip_tsx_config *cfg,
                      const struct sip_tsx_ops *ops);

/* Frees the layer and every transaction without calling back; NULL is a no-op.
 * Not from inside a callback. */
void sip_tsx_layer_free(struct sip_tsx_layer *layer);

/*
 * Feeds one parsed and validated message (sip_msg_parse + sip_msg_validate) that
 * arrived from src.  raw is the message's bytes (what msg points into).  Requests
 * are matched to server transactions (17.2.3) and responses to client transactions
 * (17.1.3); the callbacks above run from here.  Returns 0 (handled, absorbed or
 * passed up), -ENOBUFS when a new server transaction would pass max_tsx (the caller
 * answers 503 statelessly), -EMSGSIZE when the request is larger than max_msg,
 * -EBADMSG when the top Via or CSeq cannot be parsed, -ENOMEM.  No callback runs
 * when an error is returned.
 */
int sip_tsx_layer_recv(struct sip_tsx_layer *layer, const struct sip_msg *msg, struct p2p_slice raw,
                       const struct sip_tsx_dest *src, uint64_t now_ms);

/*
 * Runs every timer due at now_ms: retransmissions, timeouts, and the destruction
 * of terminated transactions (on_terminated).  Bounded work per call; if work
 * remains, next_deadline says now_ms.
 */
void sip_tsx_layer_advance(struct sip_tsx_layer *layer, uint64_t now_ms);

/* When advance() must run next (absolute ms), or UINT64_MAX when no timer is set. */
uint64_t sip_tsx_layer_next_deadline(const struct sip_tsx_layer *layer);

/* Live transactions, terminated ones not yet destroyed included. */
size_t sip_tsx_layer_count(const struct sip_tsx_layer *layer);

/* Counters since the layer was created, for status output (sip/ does not log). */
struct sip_tsx_stats {
    uint64_t server_created, client_created;
    uint64_t retransmitted;    /* timer-driven sends: Timers A, E, G */
    uint64_t absorbed;         /* requests / responses matched as retransmissions */
    uint64_t refused;          /* new server transactions refused at max_tsx */
    uint64_t timeouts;         /* on_timeout calls */
    uint64_t transport_errors; /* failed sends that ended a transaction */
    uint64_t stray_responses;  /* responses matching no client transaction */
};

void sip_tsx_layer_stats(const struct sip_tsx_layer *layer, struct sip_tsx_stats *out);

/*
 * Starts a client transaction for the request in bytes (any method but ACK; its top
 * Via must carry an RFC 3261 branch, z9hG4bK...), sends it to dest and arms its
 * timers.  The bytes are copied.  arg is the TU's, see sip_tsx_arg().  Returns 0 and
 * *out, -EINVAL (not a request, ACK, no 3261 branch, unparseable), -EEXIST (a client
 * transaction with this branch and method exists), -ENOBUFS (max_tsx reached),
 * -EMSGSIZE, -ENOMEM, or the error of ops.send (nothing is then created).
 */
int sip_tsx_client_new(struct sip_tsx_layer *layer, struct sip_tsx **out, const char *bytes,
                       size_t len, const struct sip_tsx_dest *dest, void *arg, uint64_t now_ms);

/*
 * Tells an INVITE client transaction that the TU sent a CANCEL for it: if no final
 * response comes within 64*T1 it ends with SIP_TSX_TIMEOUT_RESPONSE (RFC 3261 9.1).
 * Returns 0, or -EINVAL when t is not an INVITE client transaction in Proceeding
 * (9.1: a CANCEL may only be sent once a provisional response has arrived).
 */
int sip_tsx_client_cancelled(struct sip_tsx *t, uint64_t now_ms);

/*
 * Sends a response on server transaction t (bytes built by sip_build_response from
 * t's request, or forwarded by a proxy), copying it for retransmission, and moves t
 * as 17.2.1 / 17.2.2 / RFC 6026 say.  Returns 0; -EINVAL when the bytes are not a
 * response or t's state forbids it (a final response already sent; only further
 * 2xx are allowed in Accepted); -EMSGSIZE; -ENOMEM; or the error of ops.send, in
 * which case t is terminated (on_terminated follows from advance()).
 */
int sip_tsx_server_respond(struct sip_tsx *t, const char *bytes, size_t len, uint64_t now_ms);

/*
 * Finds the INVITE server transaction that the CANCEL request msg refers to (RFC
 * 3261 9.2: the 17.2.3 rules with the method taken as INVITE).  Returns 0 and *out,
 * or -ENOENT (the TU answers the CANCEL with 481), -EBADMSG.
 */
int sip_tsx_layer_match_cancel(struct sip_tsx_layer *layer, const struct sip_msg *msg,
                               struct sip_tsx **out);

/* The TU's pointer for t (from sip_tsx_client_new or sip_tsx_set_arg). */
void *sip_tsx_arg(const struct sip_tsx *t);
void sip_tsx_set_arg(struct sip_tsx *t, void *arg);

enum sip_tsx_state sip_tsx_state(const struct sip_tsx *t);
bool sip_tsx_is_client(const struct sip_tsx *t);
bool sip_tsx_is_invite(const struct sip_tsx *t);

/* The request that created t, valid until t has a final response (sent by a
 * server transaction, received by a client one) or t ends, whichever is first;
 * an empty slice (NULL, 0) from then on: a lingering transaction keeps only what
 * matching and retransmission need. */
struct p2p_slice sip_tsx_request(const struct sip_tsx *t);

/* Last response status sent (server) or received (client), 0 before any. */
unsigned sip_tsx_status(const struct sip_tsx *t);

/* Client: where the request goes.  Server: where the request came from.  Written
 * to *out (the transaction keeps it in a compact form, not as a sip_tsx_dest). */
void sip_tsx_peer(const struct sip_tsx *t, struct sip_tsx_dest *out);

/*
 * Writes the address of d as text into buf (size >= 46) and fills *out for
 * sip_build_response (received / rport, RFC 3261 18.2.1, RFC 3581).  Returns 0 or
 * -EAFNOSUPPORT.
 */
int sip_tsx_dest_src(const struct sip_tsx_dest *d, char *buf, size_t size, struct sip_src *out);

#endif
