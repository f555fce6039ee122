/*
 * p2psipd.h: the daemon object, private to p2psipd/.
 *
 * A struct p2psipd owns everything one node runs on its libuv loop: the signal
 * handlers, the configuration in force, the log, the data directory lock and the
 * bindings database.  main() builds the configuration, creates the daemon and runs the
 * loop; the daemon stops itself on SIGTERM/SIGINT by closing every handle it owns, so
 * uv_run() returns and uv_loop_close() succeeds.
 *
 * Invariants: one loop thread; no global state (two daemons could share a process);
 * after p2psipd_stop() no new work is accepted and every handle is closing.
 */
#ifndef P2PSIPD_H
#define P2PSIPD_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include <jansson.h>

#include "p2p/conf.h"
#include "p2p/log.h"
#include "p2p/metrics.h"
#include "p2p/dht_id.h"
#include "p2p/overlay_secure.h"
#include "p2p/sip_tsx.h"
#include "p2p/sip_locator.h"

struct bindings_db;
struct control;
struct dht_store;
struct locator_dht;
struct locator_local;
struct overlay_media;
struct overlay_node;
struct p2p_buf;
struct p2psipd_metrics;
struct overlay_sip_resolver;
struct overlay_sip_transport;
struct sip_accounts;
struct sip_digest;
struct sip_msg;
struct sip_proxy;
struct sip_registrar;
struct trace_pcap;
struct sip_via;

/* SIP counters (the control socket will show them). */
struct p2psipd_sip_stats {
    uint64_t rx, tx;      /* messages received / handed to the transport */
    uint64_t bad_dropped; /* messages the proxy refused (-EBADMSG, -EMSGSIZE) */
    uint64_t send_errors; /* sends the transport refused or reported failed */
    uint64_t restored, expired_on_load;
    uint64_t pipe_rx, pipe_tx; /* of which over the overlay, from or to other nodes */
};

/* What a latency histogram times (metrics.c names them). */
enum p2psipd_lat {
    P2PSIPD_LAT_PUT_REGISTER, /* DHT put of a REGISTER's bindings, to its completion */
    P2PSIPD_LAT_PUT_REFRESH,  /* DHT put re-publishing an AoR */
    P2PSIPD_LAT_PUT_CONTROL,  /* p2psipctl put / remove */
    P2PSIPD_LAT_GET_LOOKUP,   /* DHT get of a proxy lookup */
    P2PSIPD_LAT_GET_CONTROL,  /* p2psipctl get */
    P2PSIPD_LAT_REGISTER,     /* REGISTER from a phone in -> its final response out */
    P2PSIPD_LAT_CALL_SETUP,   /* INVITE from a phone in -> its first 18x or 2xx out */
    P2PSIPD_LAT_COUNT
};

/* Another node as a SIP "connection" (sip_pipes.c). */
#define P2PSIPD_SIP_PIPES_MAX 256
struct p2psipd_sip_pipe {
    uint16_t gen; /* 0: free */
    struct dht_id node;
    struct dht_id super; /* relays to it when it is a client; zero otherwise */
    uint64_t last_used;
};

struct p2psipd {
    uv_loop_t *loop;
    struct p2p_log *log;    /* owned by main(); level/syslog follow the conf on reload */
    struct conf conf;       /* the configuration in force */
    struct conf_args args;  /* the command line, re-applied on every reload */
    struct bindings_db *db; /* owned */
    int lock_fd;            /* data directory lock (fcntl), -1 when not held */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t stop_timer; /* the control socket's `stop`: the stop runs on the next turn */
    bool started, stopping;
    uint64_t reloads; /* successful SIGHUP reloads */

    /* The SIP side (sip_glue.c). */
    bool sip_started;
    struct overlay_sip_transport *transport;
    struct sip_proxy *proxy;
    struct sip_registrar *registrar;
    struct locator_local *locator;
    struct locator_dht *ldht; /* the locator the proxy and registrar use: local + DHT */
    struct p2psipd_sip_pipe pipes[P2PSIPD_SIP_PIPES_MAX];
    struct overlay_sip_resolver *resolver; /* RFC 3263, when proxy.forward_foreign */
    struct sip_accounts *accounts;
    struct sip_digest *digest;
    struct sip_self self;
    uv_timer_t timer;        /* the earliest of the transaction and registrar deadlines */
    uv_prepare_t prepare;    /* re-arms timer before the loop blocks */
    uint64_t timer_due;      /* deadline timer is armed for, UINT64_MAX when stopped */
    struct sip_msg *scratch; /* for parsing the top Via of outgoing responses */
    struct p2psipd_sip_stats sip_stats;

    /* The control socket (control.c), NULL when not started. */
    struct control *control;
    uint64_t start_ms; /* uv_now() at start, for the uptime */

    /* Metrics (metrics.c): the histograms live here, so that an observation never
     * depends on what was started; the SIP timing table and the HTTP listener in
     * *metrics, NULL when not started. */
    struct p2p_hist lat[P2PSIPD_LAT_COUNT];
    struct p2psipd_metrics *metrics;

    /* Rate limits of the log lines peers can cause (p2p_logf_limited). */
    struct p2p_log_limit sip_log;     /* SIP messages refused, sends failed */
    struct p2p_log_limit overlay_log; /* nodes gone, AoRs owned by another key */

    /* The overlay side (overlay_glue.c). */
    struct ovl_identity identity; /* the node's key pair, from the database */
    struct dht_store *store;      /* DHT records, on the database's connection */
    struct overlay_node *overlay; /* sockets, channels, the DHT node */
    struct overlay_media *media;  /* media anchoring: RTP relayed over pipes */
    struct trace_pcap *pcap;      /* --trace-pcap, NULL when off */
    uv_timer_t save_timer;        /* every 500 ms: ends pipe pings; saves the peers every 30 s */
    bool overlay_started;
    uint64_t peers_saved_ms;
    uint8_t peers_saved_digest[16]; /* of the peer list last written: unchanged, no write */
    struct p2psipd_pipe_ping {      /* "pipe-ping" requests waiting for their echo */
        struct control_req *req;
        uint8_t nonce[8];
        uint64_t sent_us;
    } pings[16];
};

/*
 * Opens the data directory (created 0700 if missing, then locked so that two daemons
 * never share it) and the bindings database in it, and starts the signal handlers
 * on loop.  conf and args are copied.  Returns 0, or a negative errno (-EBUSY when
 * another p2psipd holds the data directory) after logging why; on failure nothing is
 * left on the loop and p2psipd_free() must still be called.
 */
int p2psipd_start(struct p2psipd *d, uv_loop_t *loop, struct p2p_log *log, const struct conf *conf,
                  const struct conf_args *args);

/*
 * Stops accepting work and closes every handle; uv_run() returns once they are
 * closed.  Bindings stay in the database.  Idempotent.
 */
void p2psipd_stop(struct p2psipd *d);

/*
 * Re-reads the configuration (defaults, --config file, command line) and applies
 * what can change at run time: log level, syslog and trace; the accounts file
 * (re-read), auth realm and algorithms; the registrar's expiry limits, max_aors and
 * max_contacts.  Every other setting needs a restart: it keeps its running value and
 * the change is reported.  A bad configuration or accounts file is logged and
 * changes nothing.  Returns 0 or -EINVAL.
 */
int p2psipd_reload(struct p2psipd *d);

/* Stops the daemon on the next loop turn, as SIGTERM would (the control socket's
 * `stop`: its answer goes out first). */
void p2psipd__stop_soon(struct p2psipd *d);

/* Releases what p2psipd_start acquired (database, lock); call after uv_run returns. */
void p2psipd_free(struct p2psipd *d);

/*
 * SIP side, sip_glue.c.  p2psipd__sip_start() creates the locator, the proxy (with
 * its transaction layer), the registrar (bindings restored from the database) and the transport
 * listening on every sip.listen address and transport; -errno after logging why.
 * p2psipd__sip_stop() closes them in the order that lets every pending callback run
 * without touching freed state; p2psipd__sip_free() frees what outlives the loop.
 */
int p2psipd__sip_start(struct p2psipd *d);
/* SIGHUP: re-reads accounts and applies the registrar policy of next; 0 or -errno,
 * and then nothing changed. */
int p2psipd__sip_reconfigure(struct p2psipd *d, const struct conf *next);
void p2psipd__sip_stop(struct p2psipd *d);
void p2psipd__sip_free(struct p2psipd *d);

/*
 * Control socket, control_cmds.c.  p2psipd__control_start() opens conf.control and
 * registers the node's commands (status, counters, ping); the SIP and overlay sides,
 * started after it, register theirs on d->control.  -errno after logging why (another
 * daemon's live socket, a path that is not a socket).  p2psipd__control_stop()
 * publishes a "stopping" event and closes the socket; pending async requests die.
 */
int p2psipd__control_start(struct p2psipd *d);
void p2psipd__control_stop(struct p2psipd *d);

/* Every counter of the "counters" command (control_cmds.c), a new reference or NULL. */
json_t *p2psipd__counters(struct p2psipd *d);

/*
 * Metrics, metrics.c: the Prometheus exposition of the counters and latency
 * histograms, as the control command "metrics" and, when metrics_listen is set, over
 * HTTP.  p2psipd__metrics_start() (after the control socket, before the SIP and
 * overlay sides: it reads their state only when asked) creates the SIP timing table,
 * registers the command and opens the listener; -errno after logging why (the port
 * is taken).  p2psipd__metrics_stop() closes the listener; idempotent.
 */
int p2psipd__metrics_start(struct p2psipd *d);
void p2psipd__metrics_stop(struct p2psipd *d);
/* Appends the exposition text to out; 0 or the p2p_buf error. */
int p2psipd__metrics_text(struct p2psipd *d, struct p2p_buf *out);
/* Counts one duration in histogram which: from start_ns (uv_hrtime()) to now. */
void p2psipd__observe(struct p2psipd *d, enum p2psipd_lat which, uint64_t start_ns);
/* A request from a phone (the SIP transport) has arrived: REGISTER and INVITE are
 * timed until p2psipd__sip_timing_response() sees their answer leave (msg is the
 * response, via its top Via).  now_ns is uv_hrtime() (a test's fake clock). */
void p2psipd__sip_timing_request(struct p2psipd *d, const struct sip_msg *msg, uint64_t now_ns);
void p2psipd__sip_timing_response(struct p2psipd *d, const struct sip_msg *msg,
                                  const struct sip_via *via, uint64_t now_ns);

/*
 * Overlay side, overlay_glue.c.  p2psipd__overlay_start() loads the identity, attaches
 * the DHT store, starts the overlay node and registers the overlay's control commands
 * (when the control socket is up); -errno after logging why.  p2psipd__overlay_stop()
 * saves the peers and closes the node (its pending operations complete with
 * -ECANCELED); p2psipd__overlay_free() flushes and frees the store after the loop.
 * p2psipd__overlay_status() and _counters() are the overlay's part of the "status"
 * and "counters" commands (new references).
 */
int p2psipd__overlay_start(struct p2psipd *d);
void p2psipd__overlay_stop(struct p2psipd *d);
void p2psipd__overlay_free(struct p2psipd *d);
int p2psipd__overlay_register(struct p2psipd *d);
json_t *p2psipd__overlay_status(struct p2psipd *d);
json_t *p2psipd__overlay_counters(struct p2psipd *d);

/* Services of the pipe datagrams between nodes (OVERLAY_SVC_MEDIA, 4, is overlay's). */
enum p2psipd_pipe_service {
    P2PSIPD_SVC_ECHO_REQ = 1, /* echo this payload back (p2psipctl pipe-ping) */
    P2PSIPD_SVC_ECHO_REP = 2, /* an echo */
    P2PSIPD_SVC_SIP = 3,      /* one SIP message between nodes (sip_pipes.c) */
};

/*
 * SIP between nodes, sip_pipes.c: node names to destinations (the proxy's node_dest
 * hook), sending to and receiving from another node over a pipe, and our own node
 * name in d->self.node_host (set again when the role changes).
 */
bool p2psipd__is_pipe_conn(uint64_t conn_id);
int p2psipd__node_dest(void *ctx, struct p2p_slice host, struct sip_tsx_dest *out);
int p2psipd__sip_pipe_send(struct p2psipd *d, uint64_t conn_id, const char *bytes, size_t len);
void p2psipd__sip_pipe_recv(struct p2psipd *d, const struct dht_id *from,
                            const struct dht_id *relay, const uint8_t *bytes, size_t len);
void p2psipd__sip_node_name(struct p2psipd *d);
/*
 * Media anchoring, media_glue.c: called with every SIP message before it is sent;
 * returns 1 with the message rewritten into out (its SDP pointed at relay ports, or
 * marked for the other node to anchor), 0 to send it as it is.
 */
int p2psipd__media_filter(struct p2psipd *d, const char *bytes, size_t len,
                          const struct sip_tsx_dest *dest, struct p2p_buf *out);

/* Node id stopped answering (overlay): what waits on it fails at once. */
void p2psipd__sip_node_gone(struct p2psipd *d, const struct dht_id *id);

/* Creates dir and its missing parents with mode 0700 (like mkdir -p).  0 or -errno. */
int p2psipd_mkdirs(const char *dir);

#endif
