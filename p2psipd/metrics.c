/*
 * metrics.c: the node's metrics in the Prometheus text exposition format 0.0.4:
 * every counter of `p2psipctl counters` and four latency histograms, as the control
 * command "metrics" and, with metrics_listen, over HTTP (GET /metrics).
 *
 * Design.  The counters are not listed a second time: the exposition walks the very
 * object the "counters" command returns (p2psipd__counters()), so the two can never
 * disagree (only their HELP texts are a table here, and a counter it lacks still
 * appears, with its path as its help).  Its numbers become
 * p2psip_<part>_<name>_total counters (the overlay's top-level ones are
 * p2psip_overlay_*, the per-type DHT messages p2psip_dht_messages_total{type,dir}
 * and p2psip_dht_message_bytes_total{type,dir}), except the control socket's
 * clients, subscribers and pending, which are gauges.
 *
 * Histograms (base/metrics.c, 250 us to 32.8 s, log-spaced) are observed where the
 * latency is known, with uv_hrtime() (monotonic, ns):
 *   p2psip_dht_put_duration_seconds{origin}  locator_dht.c (register, refresh) and
 *                                            overlay_glue.c (control): put -> its callback
 *   p2psip_dht_get_duration_seconds{origin}  locator_dht.c (lookup), overlay_glue.c (control)
 *   p2psip_sip_register_duration_seconds     REGISTER from a phone in -> final response out
 *   p2psip_sip_call_setup_duration_seconds   INVITE from a phone in -> first 18x/2xx out
 * A DHT operation cancelled at shutdown is not observed; a failed one is (its time
 * to fail is what a caller waited).  The SIP ones are seen from sip_glue.c: a
 * request arriving from the transport (a phone: requests from other nodes come over
 * pipes, so an INVITE is timed at the caller's node only) is entered into a
 * direct-mapped table keyed by a hash of its top Via's branch and sent-by and its
 * CSeq method (RFC 3261 17.2.3, the server transaction's identity); a response
 * leaving for the transport with the same key ends it.  Entries stay, marked done,
 * until their slot is reused, so a retransmitted request and a retransmitted
 * response are not counted twice; an open entry older than 64*T1 is stale (the
 * transaction is over).  A new request whose slot holds another open entry takes
 * the slot (counted in p2psip_sip_timing_evicted_total): the table is bounded and
 * O(1), and a collision only costs one observation.  sip/ is not touched.
 *
 * HTTP.  libmicrohttpd, in its external epoll mode (MHD_USE_EPOLL without an
 * internal thread): MHD's epoll descriptor, which covers the listening socket and
 * every connection, is watched by a uv_poll_t, and a uv_timer_t follows
 * MHD_get_timeout(); both call MHD_run(), which never blocks.  So requests are
 * answered on the loop thread, from the live counters, and no thread is started.
 * At most HTTP_CONNS_MAX connections (HTTP_PER_IP_MAX per address), each with
 * HTTP_MEMORY_MAX bytes for its request and HTTP_TIMEOUT_S seconds of idleness; only
 * GET /metrics answers 200, another path 404, another method on it 405.  There is
 * no authentication: the default is loopback.
 *
 * Invariants.  One loop thread; no global state.  The exposition is built into a
 * buffer capped at METRICS_TEXT_MAX.  The poll handle is closed before MHD closes
 * its descriptor; the struct is freed when both handles are closed.
 */
#include "p2psipd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "control.h"
#include "p2p/buf.h"
#include "p2p/sip_msg.h"

#define METRICS_TEXT_MAX (1u << 20) /* the exposition, bytes */
#define TIMING_SLOTS 1024           /* SIP requests timed at once (a power of two) */
#define HTTP_CONNS_MAX 16
#define HTTP_PER_IP_MAX 8
#define HTTP_TIMEOUT_S 10
#define HTTP_MEMORY_MAX (32u << 10)
#define NAME_MAX_LEN 128

enum timing_kind { T_FREE = 0, T_REGISTER, T_INVITE };

struct timing {
    uint64_t key;
    uint64_t t0_ns;
    uint8_t kind; /* enum timing_kind */
    bool done;    /* answered: only absorbs retransmissions now */
};

struct p2psipd_metrics {
    struct p2psipd *d;
    struct timing slots[TIMING_SLOTS];
    uint64_t evicted;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles; /* poll and timer, until their close callbacks ran */
};

static const struct {
    const char *name, *labels, *help;
} hists[P2PSIPD_LAT_COUNT] = {
    [P2PSIPD_LAT_PUT_REGISTER] = {"p2psip_dht_put_duration_seconds", "origin=\"register\"",
                                  "DHT put, until acknowledged by a quorum or failed"},
    [P2PSIPD_LAT_PUT_REFRESH] = {"p2psip_dht_put_duration_seconds", "origin=\"refresh\"", NULL},
    [P2PSIPD_LAT_PUT_CONTROL] = {"p2psip_dht_put_duration_seconds", "origin=\"control\"", NULL},
    [P2PSIPD_LAT_GET_LOOKUP] = {"p2psip_dht_get_duration_seconds", "origin=\"lookup\"",
                                "DHT get, until answered or failed"},
    [P2PSIPD_LAT_GET_CONTROL] = {"p2psip_dht_get_duration_seconds", "origin=\"control\"", NULL},
    [P2PSIPD_LAT_REGISTER] = {"p2psip_sip_register_duration_seconds", NULL,
                              "REGISTER from a phone, until its final response left"},
    [P2PSIPD_LAT_CALL_SETUP] = {"p2psip_sip_call_setup_duration_seconds", NULL,
                                "INVITE from a phone, until its first 18x or 2xx left"},
};

/* ---- observations ---------------------------------------------------------------------- */

static void observe_at(struct p2psipd *d, enum p2psipd_lat which, uint64_t start_ns,
                       uint64_t now_ns)
{
    p2p_hist_observe(&d->lat[which], now_ns > start_ns ? (now_ns - start_ns) / 1000 : 0);
}

void p2psipd__observe(struct p2psipd *d, enum p2psipd_lat which, uint64_t start_ns)
{
    observe_at(d, which, start_ns, uv_hrtime());
}

/* FNV-1a, 64 bits, over one more piece of a key. */
static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The server transaction's key of msg (RFC 3261 17.2.3: branch, sent-by, method),
 * from its top Via (parsed when via is NULL); its CSeq method in *kind.  False when
 * msg is not one we time (no branch, another method, something does not parse). */
static bool timing_key(const struct sip_msg *msg, const struct sip_via *via, uint64_t *key,
                       enum timing_kind *kind)
{
    const struct sip_hdr *h = sip_msg_hdr(msg, SIP_HDR_CSEQ);
    struct sip_via top;
    struct sip_cseq cseq;
    struct sip_hdr_iter it;
    struct p2p_slice v;
    uint64_t k = 0xcbf29ce484222325ull;
    char port[2];

    if (h == NULL || sip_cseq_parse(h->value, &cseq) != 0)
        return false;
    if (p2p_slice_eq(cseq.method, P2P_SLICE_LIT("REGISTER")))
        *kind = T_REGISTER;
    else if (p2p_slice_eq(cseq.method, P2P_SLICE_LIT("INVITE")))
        *kind = T_INVITE;
    else
        return false;
    if (via == NULL) {
        sip_hdr_iter_init(&it, msg, SIP_HDR_VIA);
        if (!sip_hdr_iter_next(&it, &v) || sip_via_parse(v, &top) != 0)
            return false;
        via = &top;
    }
    if (via->branch.len == 0)
        return false; /* RFC 2543 transactions are matched otherwise: not timed */
    port[0] = (char)(via->port >> 8);
    port[1] = (char)via->port;
    k = fnv(k, via->branch.p, via->branch.len);
    k = fnv(k, "\n", 1);
    k = fnv(k, via->host.p, via->host.len);
    k = fnv(k, port, 2);
    k = fnv(k, cseq.method.p, cseq.method.len);
    *key = k;
    return true;
}

static bool stale(const struct p2psipd *d, const struct timing *t, uint64_t now_ns)
{
    return now_ns - t->t0_ns > 64ull * d->conf.timers.t1_ms * 1000000ull;
}

void p2psipd__sip_timing_request(struct p2psipd *d, const struct sip_msg *msg, uint64_t now_ns)
{
    struct p2psipd_metrics *m = d->metrics;
    enum timing_kind kind;
    struct timing *t;
    uint64_t key;

    if (m == NULL || !msg->is_request || !timing_key(msg, NULL, &key, &kind))
        return;
    t = &m->slots[key & (TIMING_SLOTS - 1)];
    if (t->kind != T_FREE && t->key == key && !stale(d, t, now_ns))
        return; /* a retransmission: timed from the first copy */
    if (t->kind != T_FREE && !t->done && !stale(d, t, now_ns))
        m->evicted++;
    t->key = key;
    t->t0_ns = now_ns;
    t->kind = (uint8_t)kind;
    t->done = false;
}

void p2psipd__sip_timing_response(struct p2psipd *d, const struct sip_msg *msg,
                                  const struct sip_via *via, uint64_t now_ns)
{
    struct p2psipd_metrics *m = d->metrics;
    enum timing_kind kind;
    struct timing *t;
    uint64_t key;

    if (m == NULL || msg->is_request || !timing_key(msg, via, &key, &kind))
        return;
    t = &m->slots[key & (TIMING_SLOTS - 1)];
    if (t->kind != (uint8_t)kind || t->key != key || t->done)
        return;
    if (stale(d, t, now_ns)) {
        t->kind = T_FREE;
        return;
    }
    if (kind == T_REGISTER && msg->status >= 200) {
        observe_at(d, P2PSIPD_LAT_REGISTER, t->t0_ns, now_ns);
        t->done = true;
    } else if (kind == T_INVITE && msg->status >= 180 && msg->status < 300) {
        observe_at(d, P2PSIPD_LAT_CALL_SETUP, t->t0_ns, now_ns);
        t->done = true;
    } else if (kind == T_INVITE && msg->status >= 300) {
        t->done = true; /* the call failed: no setup time */
    }
}

/* ---- the exposition ----------------------------------------------------------------------- */

/* Only [a-z0-9_] goes into a metric name (the counters' keys are ours: a key that is
 * not such a name would be a mistake, and is left out rather than break the text). */
static bool name_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

/* HELP texts by counter path (as `p2psipctl counters` shows it); a counter missing
 * here gets "p2psipctl counters: <path>", so a new counter needs no change here. */
static const struct {
    const char *path, *help;
} helps[] = {
    {"frames_in", "overlay frames received"},
    {"frames_out", "overlay frames sent"},
    {"bytes_in", "overlay bytes received"},
    {"bytes_out", "overlay bytes sent"},
    {"dropped_malformed", "datagrams on the P2P port that are not a frame of ours"},
    {"dropped_auth", "frames failing the handshake or AEAD (another secret, tampering)"},
    {"dropped_replay", "frames replayed or below the replay window"},
    {"dropped_forged", "inner messages naming another sender than their channel's node"},
    {"dropped_nosession", "frames for a session this node does not have"},
    {"dropped_full", "frames dropped at a full queue or table"},
    {"dropped_inner", "inner messages that do not decode"},
    {"handshakes_started", "secure channel handshakes started"},
    {"handshakes_done", "secure channel handshakes completed"},
    {"handshakes_failed", "secure channel handshakes failed"},
    {"rekeys", "secure channel key epochs changed"},
    {"send_errors", "overlay sends the socket refused"},
    {"discover_sent", "LAN discovery announcements sent"},
    {"discover_recv", "LAN discovery announcements received"},
    {"probes_sent", "reachability probes sent for new clients"},
    {"probes_ok", "reachability probes that arrived"},
    {"proxied_for_clients", "DHT operations done for client nodes"},
    {"relayed", "pipe datagrams relayed for client nodes"},
    {"pipe_sent", "pipe datagrams sent"},
    {"pipe_recv", "pipe datagrams received"},
    {"tcp_frames_in", "overlay frames received over TCP"},
    {"tcp_frames_out", "overlay frames sent over TCP"},
    {"tcp_accepted", "overlay TCP connections accepted"},
    {"tcp_connect_failed", "overlay TCP connections that failed"},
    {"media.streams_opened", "anchored media streams opened"},
    {"media.streams_closed", "anchored media streams closed"},
    {"media.to_peer", "media packets relayed to the other node"},
    {"media.to_phone", "media packets relayed to the phone"},
    {"media.dropped", "media packets dropped (unknown stream, wrong peer, too large)"},
    {"dht.maint_bytes_sent", "DHT bytes sent for ring maintenance"},
    {"dht.client_bytes_sent", "DHT bytes sent for lookups, puts, gets and their replication"},
    {"dht.dropped_malformed", "DHT messages that do not decode"},
    {"dht.dropped_oversize", "DHT messages over the size limit"},
    {"dht.dropped_unknown", "DHT messages of an unknown type"},
    {"dht.dropped_badkey", "DHT messages with a bad key"},
    {"dht.dropped_badrecord", "DHT records refused: bad signature or fields"},
    {"dht.timeouts", "DHT hops that timed out"},
    {"dht.reroutes", "DHT messages rerouted around a node that did not answer"},
    {"dht.retransmits", "DHT messages retransmitted"},
    {"dht.removed", "DHT neighbours removed as dead"},
    {"dht.records_refused", "DHT records refused (owned by another key, older)"},
    {"dht.records_stored", "DHT records stored"},
    {"sip.rx", "SIP messages received"},
    {"sip.tx", "SIP messages sent"},
    {"sip.bad_dropped", "SIP messages the proxy refused as malformed"},
    {"sip.send_errors", "SIP sends that failed"},
    {"sip.restored", "bindings restored from the database at start"},
    {"sip.expired_on_load", "bindings found expired in the database at start"},
    {"sip.pipe_rx", "SIP messages received from other nodes"},
    {"sip.pipe_tx", "SIP messages sent to other nodes"},
    {"control.clients", "control socket clients connected"},
    {"control.subscribers", "control socket clients watching events"},
    {"control.pending", "control requests in progress"},
    {"control.accepted", "control socket connections accepted"},
    {"control.refused", "control socket connections refused (too many)"},
    {"control.requests", "control requests handled"},
    {"control.errors", "control requests answered with an error"},
    {"control.events", "control events published"},
    {"control.events_dropped", "control events dropped for slow subscribers"},
};

static const char *help_of(const char *path)
{
    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
        if (strcmp(helps[i].path, path) == 0)
            return helps[i].help;
    }
    return NULL;
}

static bool is_gauge(const char *part, const char *key)
{
    return strcmp(part, "control") == 0 &&
           (strcmp(key, "clients") == 0 || strcmp(key, "subscribers") == 0 ||
            strcmp(key, "pending") == 0);
}

/* One counter or gauge with its HELP and TYPE lines. */
static int write_one(struct p2p_buf *b, const char *part, const char *key, const char *path,
                     json_int_t v)
{
    char name[NAME_MAX_LEN], help[NAME_MAX_LEN + 128];
    bool gauge = is_gauge(part, key);
    int rc;

    if (!name_ok(key) || strlen(part) + strlen(key) + 16 > sizeof(name) || v < 0)
        return 0;
    snprintf(name, sizeof(name), "p2psip_%s_%s%s", part, key, gauge ? "" : "_total");
    if (help_of(path) != NULL)
        snprintf(help, sizeof(help), "%s (p2psipctl counters: %s)", help_of(path), path);
    else
        snprintf(help, sizeof(help), "p2psipctl counters: %s", path);
    rc = p2p_prom_header(b, name, gauge ? "gauge" : "counter", help);
    return rc != 0 ? rc : p2p_prom_sample(b, name, NULL, (uint64_t)v);
}

/* The numbers of one part of the counters object (nested parts are written by the
 * caller): part names the metrics, prefix is the path shown in HELP. */
static int write_part(struct p2p_buf *b, const char *part, const char *prefix, const json_t *o)
{
    const char *key;
    json_t *v;
    char path[NAME_MAX_LEN];
    int rc = 0;

    json_object_foreach((json_t *)o, key, v)
    {
        if (!json_is_integer(v))
            continue;
        snprintf(path, sizeof(path), "%s%s", prefix, key);
        rc = write_one(b, part, key, path, json_integer_value(v));
        if (rc != 0)
            break;
    }
    return rc;
}

/* The DHT's per-type counters: {"PUT": {"sent", "sent_bytes", "recv", "recv_bytes"}}. */
static int write_types(struct p2p_buf *b, const json_t *types)
{
    static const char *const metric[2] = {"p2psip_dht_messages_total",
                                          "p2psip_dht_message_bytes_total"};
    static const char *const help[2] = {"DHT messages by type and direction",
                                        "bytes of DHT messages by type and direction"};
    static const char *const member[2][2] = {{"sent", "recv"}, {"sent_bytes", "recv_bytes"}};
    const char *type;
    json_t *t;
    char esc[64], labels[128];
    int rc = 0;

    for (int m = 0; m < 2 && rc == 0; m++) {
        rc = p2p_prom_header(b, metric[m], "counter", help[m]);
        json_object_foreach((json_t *)types, type, t)
        {
            for (int dir = 0; dir < 2 && rc == 0; dir++) {
                json_t *v = json_object_get(t, member[m][dir]);
                if (!json_is_integer(v) || json_integer_value(v) < 0)
                    continue;
                (void)p2p_prom_label_value(type, esc, sizeof(esc));
                snprintf(labels, sizeof(labels), "type=\"%s\",dir=\"%s\"", esc, member[0][dir]);
                rc = p2p_prom_sample(b, metric[m], labels, (uint64_t)json_integer_value(v));
            }
            if (rc != 0)
                break;
        }
    }
    return rc;
}

static int write_counters(struct p2p_buf *b, const json_t *c)
{
    const char *key;
    json_t *v;
    char prefix[NAME_MAX_LEN];
    int rc = write_part(b, "overlay", "", c);

    json_object_foreach((json_t *)c, key, v)
    {
        if (rc != 0)
            break;
        if (!json_is_object(v) || !name_ok(key))
            continue;
        if (strcmp(key, "types") == 0) {
            rc = write_types(b, v);
            continue;
        }
        snprintf(prefix, sizeof(prefix), "%s.", key);
        rc = write_part(b, key, prefix, v);
    }
    return rc;
}

int p2psipd__metrics_text(struct p2psipd *d, struct p2p_buf *out)
{
    json_t *c = p2psipd__counters(d);
    int rc;

    if (c == NULL)
        return -ENOMEM;
    rc = write_counters(out, c);
    json_decref(c);
    for (unsigned i = 0; rc == 0 && i < P2PSIPD_LAT_COUNT; i++) {
        if (hists[i].help != NULL)
            rc = p2p_prom_header(out, hists[i].name, "histogram", hists[i].help);
        if (rc == 0)
            rc = p2p_hist_write(out, hists[i].name, hists[i].labels, &d->lat[i]);
    }
    if (rc == 0)
        rc = p2p_prom_header(out, "p2psip_sip_timing_evicted_total", "counter",
                             "SIP requests whose timing was given up for a newer one");
    if (rc == 0)
        rc = p2p_prom_sample(out, "p2psip_sip_timing_evicted_total", NULL,
                             d->metrics != NULL ? d->metrics->evicted : 0);
    return rc;
}

/* ---- the control command ------------------------------------------------------------------ */

static json_t *cmd_metrics(const json_t *args, const json_t *opts, char *err, size_t errlen,
                           void *arg)
{
    struct p2psipd *d = arg;
    struct p2p_buf b;
    json_t *text;
    int rc;

    if (json_array_size(args) != 0 || json_object_size(opts) != 0) {
        snprintf(err, errlen, "usage: metrics (no arguments)");
        return NULL;
    }
    p2p_buf_init(&b, METRICS_TEXT_MAX);
    rc = p2psipd__metrics_text(d, &b);
    text = rc == 0 ? json_stringn(b.data != NULL ? b.data : "", b.len) : NULL;
    p2p_buf_free(&b);
    if (text == NULL)
        snprintf(err, errlen, "metrics: %s", strerror(rc != 0 ? -rc : ENOMEM));
    return text;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text,
                             const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok;

    if (r == NULL)
        return MHD_NO;
    if (allow != NULL)
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct p2psipd_metrics *m = cls;
    struct MHD_Response *r;
    struct p2p_buf b;
    enum MHD_Result ok;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(url, "/metrics") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n", NULL);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n", MHD_HTTP_METHOD_GET);
    p2p_buf_init(&b, METRICS_TEXT_MAX);
    if (p2psipd__metrics_text(m->d, &b) != 0 || b.len == 0) {
        p2p_buf_free(&b);
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot build the metrics\n", NULL);
    }
    /* MHD frees the text with free() once sent. */
    r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        p2p_buf_free(&b);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                  "text/plain; version=0.0.4; charset=utf-8");
    ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

static void on_mhd_log(void *arg, const char *fmt, va_list ap)
{
    struct p2psipd_metrics *m = arg;

    /* What a client does wrong is its business: debug only. */
    p2p_vlogf(m->d->log, P2P_LOG_DEBUG, fmt, ap);
}

static void on_http_timer(uv_timer_t *h);

/* Lets MHD work, then arms the timer for its next deadline. */
static void http_run(struct p2psipd_metrics *m)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;

    (void)MHD_run(m->mhd);
    if (MHD_get_timeout(m->mhd, &ms) == MHD_YES)
        (void)uv_timer_start(&m->timer, on_http_timer, ms, 0);
    else
        (void)uv_timer_stop(&m->timer);
}

static void on_http_timer(uv_timer_t *h)
{
    http_run(h->data);
}

static void on_http_poll(uv_poll_t *h, int status, int events)
{
    struct p2psipd_metrics *m = h->data;

    (void)events;
    if (status < 0)
        p2p_debug(m->d->log, "metrics: poll: %s", uv_strerror(status));
    http_run(m);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct p2psipd_metrics *m = h->data;

    if (--m->open_handles == 0)
        free(m);
}

static int http_start(struct p2psipd *d, struct p2psipd_metrics *m)
{
    const struct conf_metrics *cm = &d->conf.metrics;
    struct sockaddr_storage ss;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    char text[CONF_ADDR_MAX + 8];
    int rc;

    memset(&ss, 0, sizeof(ss));
    if (cm->addr.family == AF_INET6) {
        rc = uv_ip6_addr(cm->addr.host, cm->port, (struct sockaddr_in6 *)&ss);
        flags |= MHD_USE_IPv6;
    } else {
        rc = uv_ip4_addr(cm->addr.host, cm->port, (struct sockaddr_in *)&ss);
    }
    snprintf(text, sizeof(text), "%s%s%s:%u", cm->addr.family == AF_INET6 ? "[" : "", cm->addr.host,
             cm->addr.family == AF_INET6 ? "]" : "", (unsigned)cm->port);
    if (rc != 0) {
        p2p_err(d->log, "metrics_listen %s: %s", text, uv_strerror(rc));
        return rc;
    }
    m->mhd = MHD_start_daemon(
        flags, cm->port, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNS_MAX, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)HTTP_PER_IP_MAX, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_MAX, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, m, MHD_OPTION_END);
    if (m->mhd == NULL) {
        p2p_err(d->log, "metrics_listen %s: cannot listen (port taken?)", text);
        return -EADDRINUSE;
    }
    info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    rc = info != NULL ? uv_poll_init(d->loop, &m->poll, info->epoll_fd) : -EINVAL;
    if (rc != 0) {
        p2p_err(d->log, "metrics_listen %s: cannot poll: %s", text, uv_strerror(rc));
        MHD_stop_daemon(m->mhd);
        m->mhd = NULL;
        return rc;
    }
    m->poll.data = m;
    m->timer.data = m;
    (void)uv_timer_init(d->loop, &m->timer); /* cannot fail */
    m->open_handles = 2;
    rc = uv_poll_start(&m->poll, UV_READABLE, on_http_poll);
    if (rc != 0) {
        p2p_err(d->log, "metrics_listen %s: cannot poll: %s", text, uv_strerror(rc));
        return rc; /* the caller's stop closes the handles */
    }
    p2p_notice(d->log, "metrics on http://%s/metrics", text);
    return 0;
}

/* ---- life cycle --------------------------------------------------------------------------- */

int p2psipd__metrics_start(struct p2psipd *d)
{
    struct p2psipd_metrics *m = calloc(1, sizeof(*m));
    int rc;

    if (m == NULL)
        return -ENOMEM;
    m->d = d;
    d->metrics = m;
    if (d->control != NULL) {
        rc = control_register(d->control, "metrics",
                              "the counters and latency histograms, Prometheus text", cmd_metrics,
                              d);
        if (rc != 0) {
            p2p_err(d->log, "control socket: cannot register metrics: %s", strerror(-rc));
            return rc;
        }
    }
    if (d->conf.metrics.port == 0)
        return 0;
    return http_start(d, m);
}

void p2psipd__metrics_stop(struct p2psipd *d)
{
    struct p2psipd_metrics *m = d->metrics;

    if (m == NULL)
        return;
    d->metrics = NULL;
    if (m->open_handles == 0) {
        if (m->mhd != NULL)
            MHD_stop_daemon(m->mhd);
        free(m);
        return;
    }
    /* The poll handle lets go of the epoll descriptor before MHD closes it. */
    uv_close((uv_handle_t *)&m->poll, on_handle_closed);
    uv_close((uv_handle_t *)&m->timer, on_handle_closed);
    MHD_stop_daemon(m->mhd);
    m->mhd = NULL;
}
