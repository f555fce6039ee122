/*
 * overlay_glue.c: the daemon's overlay side: identity, the DHT store, the overlay
 * node, health -> registrar, saved peers, the -d trace of P2P messages and the
 * --trace-pcap file (trace_pcap.h), and the control commands that show and use the
 * overlay (docs/CONTROL.md).
 *
 * Design.  p2psipd__overlay_start() loads (or creates) the node's identity from the
 * daemon's sqlite file, attaches the DHT store to the same connection (the locator
 * is the one commit owner: bindings batch first, then the store's flush, once per
 * loop turn), reads the overlay secret file, resolves the bootstrap list, and starts
 * the overlay node (overlay_node.h) with the configuration's [p2p] settings.  The
 * node's health drives the registrar: while cut off, REGISTER gets 503 (DESIGN.md).
 * Every 30 s, and at stop, the peers the node has channels with are saved, so a
 * restart finds the ring without -S or multicast.
 *
 * Control commands registered here: leafset, routes, peers, records, put, get,
 * remove, route; status and counters get the overlay's fields from
 * p2psipd__overlay_status() and p2psipd__overlay_counters().
 */
#include "p2psipd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bindings_db.h"
#include "control.h"
#include "locator_dht.h"
#include "locator_local.h"
#include "node_db.h"
#include "trace_pcap.h"
#include "p2p/clock.h"
#include "p2p/dht_msg.h"
#include "p2p/dht_store.h"
#include "p2p/overlay_media.h"
#include "p2p/overlay_node.h"
#include "p2p/sip_registrar.h"

#define SAVE_PEERS_MS 30000
#define P2PSIPD_MEDIA_STREAMS 256 /* anchored media streams (an m= line each) */
#define SECRET_MAX 4096
#define CTL_TTL_DEFAULT_S 3600
#define CTL_TTL_MAX_S 86400
#define CTL_RECORDS_MAX 1000

static json_t *addr_json(const struct dht_addr *a)
{
    struct sockaddr_storage ss;
    char buf[80];

    if (overlay_addr_from_dht(a, &ss) != 0)
        return json_null();
    return json_string(overlay_addr_text(&ss, buf, sizeof(buf)));
}

static json_t *peer_json(const struct dht_peer *p)
{
    char hex[DHT_ID_HEX_LEN + 1];

    dht_id_to_hex(&p->id, hex);
    return json_pack("{s:s, s:o}", "id", hex, "addr", addr_json(&p->addr));
}

/* ---- callbacks from the overlay ------------------------------------------------------- */

static void on_health(void *arg, bool cut_off)
{
    struct p2psipd *d = arg;

    if (d->registrar != NULL)
        sip_registrar_set_cut_off(d->registrar, cut_off);
    if (d->control != NULL)
        control_publish(d->control, json_pack("{s:s, s:b}", "event", "health", "cut_off", cut_off));
}

static void on_role(void *arg, enum overlay_role role)
{
    struct p2psipd *d = arg;

    p2psipd__sip_node_name(d); /* a client is named with its super-node */
    if (d->control != NULL)
        control_publish(d->control,
                        json_pack("{s:s, s:s}", "event", "role", "role", overlay_role_name(role)));
}

static void on_unreachable(void *arg, const struct dht_id *id)
{
    struct p2psipd *d = arg;
    char hex[DHT_ID_HEX_LEN + 1];

    dht_id_to_hex(id, hex);
    p2p_info_rl(d->log, &d->overlay_log, uv_now(d->loop), "overlay: node %.8s stopped answering",
                hex);
    p2psipd__sip_node_gone(d, id);
}

static void on_observe(void *arg, enum dht_obs_event ev, const struct dht_peer *peer,
                       const uint8_t *buf, size_t len, int reason)
{
    struct p2psipd *d = arg;
    static const char *const dir[] = {"sent", "recv", "dropped"};
    char hex[DHT_ID_HEX_LEN + 1], key[DHT_ID_HEX_LEN + 1] = "";
    bool trace = d->conf.log.trace && p2p_log_enabled(d->log, P2P_LOG_DEBUG);
    bool watched = d->control != NULL && control_watched(d->control);
    struct dht_msg *m;
    unsigned type = len > 1 ? buf[1] : 0;
    json_t *o;

    trace_pcap_record(d->pcap, ev, peer, buf, len, reason);
    if (!trace && !watched)
        return;
    m = malloc(sizeof(*m));
    if (m != NULL && dht_msg_decode(m, buf, len) == 0 && (m->have & DHT_HAVE(DHT_ATTR_KEY)))
        dht_id_to_hex(&m->key, key);
    free(m);
    dht_id_to_hex(&peer->id, hex);
    if (trace)
        p2p_debug(d->log, "P2P %s %s %s %.8s key %.8s %zu bytes%s%s", dir[ev],
                  dht_msg_type_name(type), ev == DHT_OBS_SENT ? "to" : "from", hex,
                  key[0] ? key : "-", len, reason ? ": " : "", reason ? strerror(-reason) : "");
    if (!watched)
        return;
    o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "event", "msg", "dir", dir[ev], "type",
                  dht_msg_type_name(type), "peer", hex, "size", (json_int_t)len);
    if (o != NULL && key[0])
        json_object_set_new(o, "key", json_string(key));
    if (o != NULL && reason)
        json_object_set_new(o, "reason", json_string(strerror(-reason)));
    control_publish(d->control, o);
}

/* The leaf set, routing table and store as they change, for `watch` (the viewer). */
static void on_event(void *arg, const struct dht_node_event *ev)
{
    struct p2psipd *d = arg;
    static const char *const rec_op[] = {[DHT_EV_RECORD_STORED] = "stored",
                                         [DHT_EV_RECORD_REPLICATED] = "replicated",
                                         [DHT_EV_RECORD_EXPIRED] = "expired",
                                         [DHT_EV_RECORD_DROPPED] = "dropped"};
    char hex[DHT_ID_HEX_LEN + 1];

    if (d->control == NULL || !control_watched(d->control))
        return;
    if (ev->kind != DHT_EV_NEIGHBOUR) {
        json_t *o;
        dht_id_to_hex(ev->key, hex);
        o = json_pack("{s:s, s:s, s:s}", "event", "record", "op", rec_op[ev->kind], "key", hex);
        if (o != NULL && (ev->kind == DHT_EV_RECORD_STORED || ev->kind == DHT_EV_RECORD_REPLICATED))
            json_object_set_new(o, "tombstone", json_boolean(ev->tombstone));
        control_publish(d->control, o);
        return;
    }
    dht_id_to_hex(&ev->peer->id, hex);
    /* The leaf set and the routing table are two sets: an entry can enter one as it
     * leaves the other, so each gets its own event. */
    static const struct {
        unsigned bits;
        const char *set;
    } sets[] = {{DHT_NBR_LEAF, "leaf"}, {DHT_NBR_RT, "route"}};
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        bool was = (ev->before & sets[i].bits) != 0, is = (ev->after & sets[i].bits) != 0;
        if (was == is)
            continue;
        control_publish(d->control, json_pack("{s:s, s:s, s:s, s:s, s:o}", "event", "neighbour",
                                              "op", is ? "add" : "remove", "set", sets[i].set, "id",
                                              hex, "addr", addr_json(&ev->peer->addr)));
    }
}

/* ---- saved peers ------------------------------------------------------------------------ */

struct collect_peers {
    struct dht_peer peers[NODE_DB_PEERS_MAX];
    size_t n;
};

static int collect_up(const struct overlay_peer_view *v, void *arg)
{
    struct collect_peers *c = arg;

    if (v->up && !v->client && c->n < NODE_DB_PEERS_MAX)
        c->peers[c->n++] = v->peer;
    return 0;
}

static void save_peers(struct p2psipd *d)
{
    struct collect_peers c;
    uint8_t digest[sizeof(d->peers_saved_digest)];
    crypto_generichash_state st;

    if (d->overlay == NULL)
        return;
    c.n = 0;
    (void)overlay_node_peers(d->overlay, collect_up, &c);
    if (c.n == 0)
        return; /* keep what we had: an isolated node must still find the ring later */
    /* Every row of a save gets the same time, so writing the same list again would
     * change nothing that is read back: skip it. */
    crypto_generichash_init(&st, NULL, 0, sizeof(digest));
    for (size_t i = 0; i < c.n; i++) {
        crypto_generichash_update(&st, c.peers[i].id.b, DHT_ID_LEN);
        crypto_generichash_update(&st, &c.peers[i].addr.len, 1);
        crypto_generichash_update(&st, c.peers[i].addr.b, c.peers[i].addr.len);
    }
    crypto_generichash_final(&st, digest, sizeof(digest));
    if (sodium_memcmp(digest, d->peers_saved_digest, sizeof(digest)) == 0)
        return;
    if (node_db_save_peers(bindings_db_sqlite(d->db), c.peers, c.n, p2p_wall_ms()) != 0)
        p2p_warn(d->log, "cannot save the overlay peers");
    else
        memcpy(d->peers_saved_digest, digest, sizeof(digest));
}

/* ---- the echo service on pipes (p2psipctl pipe-ping) ----------------------------- */

#define PING_TIMEOUT_MS 3000

static void on_pipe(void *arg, const struct dht_id *from, const struct dht_id *relay,
                    uint16_t service, const uint8_t *buf, size_t len)
{
    struct p2psipd *d = arg;
    char hex[DHT_ID_HEX_LEN + 1], rhex[DHT_ID_HEX_LEN + 1];

    if (service == OVERLAY_SVC_MEDIA) {
        if (d->media != NULL)
            overlay_media_recv(d->media, from, buf, len);
        return;
    }
    if (service == P2PSIPD_SVC_SIP) {
        p2psipd__sip_pipe_recv(d, from, relay, buf, len);
        return;
    }
    if (service == P2PSIPD_SVC_ECHO_REQ && len == 8) {
        /* Back the way it came: through the same relay when it was relayed. */
        (void)overlay_node_pipe_send(d->overlay, from, relay, P2PSIPD_SVC_ECHO_REP, buf, len);
        return;
    }
    if (service != P2PSIPD_SVC_ECHO_REP || len != 8)
        return;
    for (size_t i = 0; i < sizeof(d->pings) / sizeof(d->pings[0]); i++) {
        struct p2psipd_pipe_ping *pp = &d->pings[i];
        if (pp->req == NULL || sodium_memcmp(pp->nonce, buf, 8) != 0)
            continue;
        dht_id_to_hex(from, hex);
        if (relay != NULL)
            dht_id_to_hex(relay, rhex);
        control_reply(pp->req, json_pack("{s:s, s:I, s:s?}", "from", hex, "rtt_us",
                                         (json_int_t)(uv_hrtime() / 1000 - pp->sent_us),
                                         "relayed_by", relay != NULL ? rhex : NULL));
        pp->req = NULL;
        return;
    }
}

static void pings_sweep(struct p2psipd *d, bool all)
{
    uint64_t now_us = uv_hrtime() / 1000;

    for (size_t i = 0; i < sizeof(d->pings) / sizeof(d->pings[0]); i++) {
        struct p2psipd_pipe_ping *pp = &d->pings[i];
        if (pp->req != NULL && (all || now_us - pp->sent_us > PING_TIMEOUT_MS * 1000ull)) {
            control_reply_error(pp->req, "no echo within %d ms", PING_TIMEOUT_MS);
            pp->req = NULL;
        }
    }
}

static void on_save_timer(uv_timer_t *h)
{
    struct p2psipd *d = h->data;
    uint64_t now = uv_now(d->loop);

    pings_sweep(d, false);
    if (d->ldht != NULL)
        locator_dht_tick(d->ldht, now);
    (void)trace_pcap_flush(d->pcap); /* an error is logged once and ends the trace */
    if (now - d->peers_saved_ms >= SAVE_PEERS_MS) {
        d->peers_saved_ms = now;
        save_peers(d);
    }
}

/* ---- start and stop ----------------------------------------------------------------------- */

static int read_secret(struct p2psipd *d, uint8_t psk[OVL_KEY_LEN])
{
    uint8_t buf[SECRET_MAX];
    struct stat st;
    ssize_t n;
    int fd;

    if (d->conf.p2p.secret[0] == '\0') {
        ovl_psk_from_secret(psk, NULL, 0);
        return 0;
    }
    fd = open(d->conf.p2p.secret, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        int rc = -errno;
        p2p_err(d->log, "p2p.secret: %s: %s", d->conf.p2p.secret, strerror(-rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        p2p_warn(d->log, "p2p.secret: %s can be read by other users", d->conf.p2p.secret);
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n <= 0) {
        p2p_err(d->log, "p2p.secret: %s is empty or unreadable", d->conf.p2p.secret);
        return -EINVAL;
    }
    /* A trailing newline (echo secret > file) is not part of the secret. */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    ovl_psk_from_secret(psk, buf, (size_t)n);
    sodium_memzero(buf, sizeof(buf));
    return 0;
}

static void resolve_bootstrap(struct p2psipd *d, struct overlay_node_config *cfg)
{
    for (size_t i = 0; i < d->conf.p2p.server_count && cfg->n_bootstrap < OVERLAY_BOOTSTRAP_MAX;
         i++) {
        const struct conf_hostport *hp = &d->conf.p2p.servers[i];
        struct addrinfo hints, *res = NULL;
        char port[8];
        int rc;

        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_DGRAM;
        snprintf(port, sizeof(port), "%u", (unsigned)hp->port);
        /* Names are resolved once, at start (a node without DNS gives addresses). */
        rc = getaddrinfo(hp->host, port, &hints, &res);
        if (rc != 0 || res == NULL) {
            p2p_warn(d->log, "p2p.servers: cannot resolve %s: %s", hp->host, gai_strerror(rc));
            continue;
        }
        memset(&cfg->bootstrap[cfg->n_bootstrap], 0, sizeof(cfg->bootstrap[0]));
        memcpy(&cfg->bootstrap[cfg->n_bootstrap], res->ai_addr, res->ai_addrlen);
        cfg->n_bootstrap++;
        freeaddrinfo(res);
    }
}

/* --trace-pcap: the file is opened before the node sends anything. */
static int open_trace(struct p2psipd *d)
{
    const char *path = d->conf.log.trace_pcap;
    int rc;

    if (path[0] == '\0')
        return 0;
    rc = trace_pcap_open(&d->pcap, path, (uint64_t)d->conf.log.trace_pcap_max << 20,
                         &d->identity.id, d->log);
    if (rc != 0) {
        p2p_err(d->log, "trace-pcap: %s: %s", path, strerror(-rc));
        return rc;
    }
    p2p_warn(d->log,
             "trace-pcap: writing every DHT message, decrypted, to %s (at most %u MiB): "
             "the file holds the overlay's traffic in clear; a debugging aid only",
             path, (unsigned)d->conf.log.trace_pcap_max);
    return 0;
}

int p2psipd__overlay_start(struct p2psipd *d)
{
    struct overlay_node_config cfg;
    struct overlay_node_ops ops;
    struct dht_store_config scfg;
    char err[CONF_ERR_MAX], hex[DHT_ID_HEX_LEN + 1];
    bool created = false;
    int rc, n;

    rc = node_db_identity(bindings_db_sqlite(d->db), &d->identity, &created, err, sizeof(err));
    if (rc != 0) {
        p2p_err(d->log, "%s", err);
        return rc;
    }
    dht_id_to_hex(&d->identity.id, hex);
    p2p_notice(d->log, "node ID %s (%s)", hex, created ? "new identity" : "from the database");
    rc = open_trace(d);
    if (rc != 0)
        return rc;

    dht_store_config_init(&scfg);
    rc = dht_store_attach(&d->store, &scfg, bindings_db_sqlite(d->db), p2p_wall_ms());
    if (rc != 0) {
        p2p_err(d->log, "cannot open the DHT store: %s", strerror(-rc));
        return rc;
    }
    locator_local_set_store(d->locator, d->store);
    d->overlay_log.name = "overlay";

    overlay_node_config_init(&cfg);
    cfg.identity = &d->identity;
    rc = read_secret(d, cfg.psk);
    if (rc != 0)
        return rc;
    cfg.port = d->conf.p2p.port;
    cfg.port_fallback = true;
    cfg.server = d->conf.p2p.server;
    cfg.multicast = d->conf.p2p.multicast;
    cfg.discovery_port = d->conf.p2p.discovery_port;
    resolve_bootstrap(d, &cfg);
    n = node_db_load_peers(bindings_db_sqlite(d->db), cfg.saved, OVERLAY_BOOTSTRAP_MAX);
    cfg.n_saved = n > 0 ? (size_t)n : 0;
    cfg.dht.leaf_half = d->conf.p2p.leaf_half;
    cfg.dht.replicas = d->conf.p2p.replicas;
    cfg.dht.quorum = d->conf.p2p.quorum;
    /* A network node fails over faster than the simulator's defaults: a join
     * through a dead candidate is abandoned for the next one within seconds. */
    cfg.dht.join_timeout_ms = 6000;
    cfg.store = d->store;
    cfg.promote_after_ms = d->conf.p2p.promote_after * 1000;
    cfg.cutoff_ms = d->conf.p2p.cutoff * 1000;

    memset(&ops, 0, sizeof(ops));
    ops.health = on_health;
    ops.role = on_role;
    ops.observe = on_observe;
    ops.event = on_event;
    ops.pipe = on_pipe;
    ops.unreachable = on_unreachable;
    ops.arg = d;
    rc = overlay_node_new(&d->overlay, d->loop, &cfg, &ops, d->log);
    sodium_memzero(cfg.psk, sizeof(cfg.psk));
    if (rc != 0)
        return rc;
    p2p_notice(d->log, "P2P on UDP port %u%s; %zu bootstrap, %zu saved peers%s",
               (unsigned)overlay_node_port(d->overlay), cfg.multicast ? ", LAN discovery on" : "",
               cfg.n_bootstrap, cfg.n_saved, cfg.server ? "; starting a new ring" : "");
    rc = overlay_media_new(&d->media, d->loop, d->overlay, P2PSIPD_MEDIA_STREAMS, d->log);
    if (rc != 0)
        return rc;
    rc = uv_timer_init(d->loop, &d->save_timer);
    if (rc != 0)
        return rc;
    d->save_timer.data = d;
    d->overlay_started = true;
    p2psipd__sip_node_name(d);
    d->peers_saved_ms = uv_now(d->loop);
    (void)uv_timer_start(&d->save_timer, on_save_timer, 500, 500);
    return overlay_node_start(d->overlay);
}

void p2psipd__overlay_stop(struct p2psipd *d)
{
    pings_sweep(d, true);
    overlay_media_close(d->media);
    d->media = NULL;
    if (d->overlay != NULL) {
        save_peers(d);
        overlay_node_close(d->overlay, NULL, NULL);
        d->overlay = NULL;
    }
    if (d->overlay_started) {
        uv_close((uv_handle_t *)&d->save_timer, NULL);
        d->overlay_started = false;
    }
}

void p2psipd__overlay_free(struct p2psipd *d)
{
    if (d->pcap != NULL) {
        if (trace_pcap_close(d->pcap) != 0)
            p2p_warn(d->log, "trace-pcap: %s is incomplete", d->conf.log.trace_pcap);
        d->pcap = NULL;
    }
    if (d->store != NULL) {
        if (dht_store_flush(d->store) != 0)
            p2p_warn(d->log, "DHT store: the last changes could not be written");
        dht_store_free(d->store);
        d->store = NULL;
    }
    ovl_identity_wipe(&d->identity);
}

/* ---- control commands ----------------------------------------------------------------------- */

json_t *p2psipd__overlay_status(struct p2psipd *d)
{
    const struct dht_route *rt;
    struct dht_store_stats ss;
    struct dht_peer sp;
    char hex[DHT_ID_HEX_LEN + 1];
    size_t leaves = 0, routes = 0, peers_up = 0;
    json_t *o;

    dht_id_to_hex(&d->identity.id, hex);
    if (d->overlay == NULL)
        return json_pack("{s:s}", "node_id", hex);
    struct collect_peers c = {.n = 0};
    (void)overlay_node_peers(d->overlay, collect_up, &c);
    peers_up = c.n;
    if (overlay_node_dht(d->overlay) != NULL) {
        struct dht_peer tmp[2 * DHT_LEAF_HALF_MAX];
        rt = dht_node_route(overlay_node_dht(d->overlay));
        leaves = dht_route_leafset(rt, tmp, 2 * DHT_LEAF_HALF_MAX);
        for (unsigned i = 0; i < rt->pool_len; i++)
            if (dht_route_slot_used(rt, i) && (rt->pool[i].flags & DHT_NBR_RT))
                routes++;
    }
    dht_store_get_stats(d->store, &ss);
    o = json_pack("{s:s, s:s, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:o}", "node_id", hex, "role",
                  overlay_role_name(overlay_node_role(d->overlay)), "p2p_port",
                  (json_int_t)overlay_node_port(d->overlay), "isolated",
                  overlay_node_cut_off(d->overlay), "peer_count", (json_int_t)peers_up,
                  "leaf_count", (json_int_t)leaves, "route_count", (json_int_t)routes,
                  "record_count", (json_int_t)(ss.records - ss.tombstones), "overlay_uptime_s",
                  (json_int_t)(overlay_node_uptime_ms(d->overlay) / 1000), "advertised",
                  addr_json(overlay_node_advertised(d->overlay)));
    if (o != NULL && overlay_node_super(d->overlay, &sp) == 0)
        json_object_set_new(o, "super", peer_json(&sp));
    if (o != NULL && d->media != NULL)
        json_object_set_new(o, "media_streams",
                            json_integer((json_int_t)overlay_media_streams(d->media)));
    return o;
}

/* A uint64_t counter of a stats struct, by name: the counters command's tables. */
struct counter_field {
    const char *name;
    size_t off;
};
#define FIELD(type, f)                                                                             \
    {                                                                                              \
#f, offsetof(struct type, f)                                                               \
    }

static const struct counter_field node_fields[] = {
    FIELD(overlay_node_stats, frames_in),
    FIELD(overlay_node_stats, frames_out),
    FIELD(overlay_node_stats, bytes_in),
    FIELD(overlay_node_stats, bytes_out),
    FIELD(overlay_node_stats, dropped_malformed),
    FIELD(overlay_node_stats, dropped_auth),
    FIELD(overlay_node_stats, dropped_replay),
    FIELD(overlay_node_stats, dropped_forged),
    FIELD(overlay_node_stats, dropped_nosession),
    FIELD(overlay_node_stats, dropped_full),
    FIELD(overlay_node_stats, dropped_inner),
    FIELD(overlay_node_stats, handshakes_started),
    FIELD(overlay_node_stats, handshakes_done),
    FIELD(overlay_node_stats, handshakes_failed),
    FIELD(overlay_node_stats, rekeys),
    FIELD(overlay_node_stats, send_errors),
    FIELD(overlay_node_stats, discover_sent),
    FIELD(overlay_node_stats, discover_recv),
    FIELD(overlay_node_stats, probes_sent),
    FIELD(overlay_node_stats, probes_ok),
    FIELD(overlay_node_stats, probes_refused),
    FIELD(overlay_node_stats, proxied_for_clients),
    FIELD(overlay_node_stats, relayed),
    FIELD(overlay_node_stats, pipe_sent),
    FIELD(overlay_node_stats, pipe_recv),
    FIELD(overlay_node_stats, tcp_frames_in),
    FIELD(overlay_node_stats, tcp_frames_out),
    FIELD(overlay_node_stats, tcp_accepted),
    FIELD(overlay_node_stats, tcp_connect_failed),
};

static const struct counter_field media_fields[] = {
    FIELD(overlay_media_stats, streams_opened), FIELD(overlay_media_stats, streams_closed),
    FIELD(overlay_media_stats, to_peer),        FIELD(overlay_media_stats, to_phone),
    FIELD(overlay_media_stats, dropped),
};

static const struct counter_field dht_fields[] = {
    FIELD(dht_counters, maint_bytes_sent),  FIELD(dht_counters, client_bytes_sent),
    FIELD(dht_counters, dropped_malformed), FIELD(dht_counters, dropped_oversize),
    FIELD(dht_counters, dropped_unknown),   FIELD(dht_counters, dropped_badkey),
    FIELD(dht_counters, dropped_badrecord), FIELD(dht_counters, timeouts),
    FIELD(dht_counters, reroutes),          FIELD(dht_counters, retransmits),
    FIELD(dht_counters, removed),           FIELD(dht_counters, records_refused),
    FIELD(dht_counters, records_stored),
};

static const struct counter_field mailbox_fields[] = {
    FIELD(mailbox_stats, kept),         FIELD(mailbox_stats, keep_failed),
    FIELD(mailbox_stats, keep_unknown), FIELD(mailbox_stats, found),
    FIELD(mailbox_stats, delivered),    FIELD(mailbox_stats, undelivered),
    FIELD(mailbox_stats, unopened),     FIELD(mailbox_stats, cleared),
    FIELD(mailbox_stats, owner_puts),   FIELD(mailbox_stats, owner_put_errors),
    FIELD(mailbox_stats, skipped),
};
#undef FIELD

/* An object of each field of stats named in f[0..n); NULL when out of memory. */
static json_t *counters_json(const void *stats, const struct counter_field *f, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && i < n; i++) {
        uint64_t v;
        memcpy(&v, (const char *)stats + f[i].off, sizeof(v));
        json_object_set_new(o, f[i].name, json_integer((json_int_t)v));
    }
    return o;
}

#define COUNTERS(stats, fields) counters_json(stats, fields, sizeof(fields) / sizeof(fields[0]))

json_t *p2psipd__overlay_counters(struct p2psipd *d)
{
    json_t *o, *types;

    if (d->overlay == NULL)
        return json_object();
    o = COUNTERS(overlay_node_stats(d->overlay), node_fields);
    if (o == NULL)
        return NULL;
    if (d->media != NULL) {
        struct overlay_media_stats ms;
        overlay_media_get_stats(d->media, &ms);
        json_object_set_new(o, "media", COUNTERS(&ms, media_fields));
    }
    types = json_object();
    if (overlay_node_dht(d->overlay) != NULL) {
        const struct dht_counters *c = dht_node_counters(overlay_node_dht(d->overlay));
        for (unsigned t = 1; t <= DHT_MSG_TYPE_MAX; t++)
            json_object_set_new(
                types, dht_msg_type_name(t),
                json_pack("{s:I, s:I, s:I, s:I}", "sent", (json_int_t)c->msgs_sent[t], "sent_bytes",
                          (json_int_t)c->bytes_sent[t], "recv", (json_int_t)c->msgs_recv[t],
                          "recv_bytes", (json_int_t)c->bytes_recv[t]));
        json_object_set_new(o, "dht", COUNTERS(c, dht_fields));
    }
    json_object_set_new(o, "types", types);
    if (d->ldht != NULL) {
        struct locator_dht_stats ls;
        locator_dht_stats(d->ldht, &ls);
        json_object_set_new(o, "mailbox", COUNTERS(&ls.mailbox, mailbox_fields));
    }
    return o;
}

static struct dht_node *need_dht(struct p2psipd *d, char *err, size_t errlen)
{
    struct dht_node *n = d->overlay ? overlay_node_dht(d->overlay) : NULL;

    if (n == NULL)
        snprintf(err, errlen, "this node is not a ring member (role %s)",
                 d->overlay ? overlay_role_name(overlay_node_role(d->overlay)) : "none");
    return n;
}

static json_t *cmd_leafset(const json_t *args, const json_t *opts, char *err, size_t errlen,
                           void *arg)
{
    struct p2psipd *d = arg;
    struct dht_node *n = need_dht(d, err, errlen);
    const struct dht_route *rt;
    json_t *preds, *succs;
    char hex[DHT_ID_HEX_LEN + 1];

    (void)args;
    (void)opts;
    if (n == NULL)
        return NULL;
    rt = dht_node_route(n);
    preds = json_array();
    succs = json_array();
    for (unsigned i = 0; i < rt->n_preds; i++)
        json_array_append_new(preds, peer_json(&rt->pool[rt->preds[i]].peer));
    for (unsigned i = 0; i < rt->n_succs; i++)
        json_array_append_new(succs, peer_json(&rt->pool[rt->succs[i]].peer));
    dht_id_to_hex(&d->identity.id, hex);
    return json_pack("{s:s, s:o, s:o}", "self", hex, "preds", preds, "succs", succs);
}

static json_t *cmd_routes(const json_t *args, const json_t *opts, char *err, size_t errlen,
                          void *arg)
{
    struct p2psipd *d = arg;
    struct dht_node *n = need_dht(d, err, errlen);
    const struct dht_route *rt;
    json_t *a;

    (void)args;
    (void)opts;
    if (n == NULL)
        return NULL;
    rt = dht_node_route(n);
    a = json_array();
    for (unsigned r = 0; r < DHT_ROUTE_ROWS; r++) {
        for (unsigned c = 0; c < DHT_ROUTE_COLS; c++) {
            const struct dht_nbr *e;
            json_t *p;
            if (rt->cells[r][c] == 0)
                continue;
            e = &rt->pool[rt->cells[r][c] - 1];
            p = peer_json(&e->peer);
            json_object_set_new(p, "row", json_integer(r));
            json_object_set_new(p, "col", json_integer(c));
            json_object_set_new(p, "srtt_ms", json_integer(e->rto.srtt8 / 8));
            json_object_set_new(p, "suspect", json_boolean(e->flags & DHT_NBR_SUSPECT));
            json_array_append_new(a, p);
        }
    }
    return a;
}

static int peer_to_json(const struct overlay_peer_view *v, void *arg)
{
    json_t *p = peer_json(&v->peer);

    json_object_set_new(p, "up", json_boolean(v->up));
    json_object_set_new(p, "client", json_boolean(v->client));
    json_object_set_new(p, "super", json_boolean(v->is_super));
    json_object_set_new(p, "frames_in", json_integer((json_int_t)v->frames_in));
    json_object_set_new(p, "frames_out", json_integer((json_int_t)v->frames_out));
    json_array_append_new(arg, p);
    return 0;
}

static json_t *cmd_peers(const json_t *args, const json_t *opts, char *err, size_t errlen,
                         void *arg)
{
    struct p2psipd *d = arg;
    json_t *a = json_array();

    (void)args;
    (void)opts;
    if (d->overlay == NULL) {
        snprintf(err, errlen, "no overlay");
        json_decref(a);
        return NULL;
    }
    (void)overlay_node_peers(d->overlay, peer_to_json, a);
    return a;
}

static json_t *value_json(const struct dht_record *r)
{
    bool text = r->value_len > 0;
    char *hex;
    json_t *v;

    for (size_t i = 0; i < r->value_len && text; i++)
        text = r->value[i] >= 0x20 && r->value[i] < 0x7f;
    if (text)
        return json_stringn((const char *)r->value, r->value_len);
    hex = malloc(2 * r->value_len + 1);
    if (hex == NULL)
        return json_null();
    sodium_bin2hex(hex, 2 * r->value_len + 1, r->value, r->value_len);
    v = json_pack("{s:s}", "hex", hex);
    free(hex);
    return v;
}

static json_t *record_json(const struct dht_record *r, uint64_t now)
{
    char key[DHT_ID_HEX_LEN + 1], vid[DHT_ID_HEX_LEN + 1], owner[2 * 32 + 1];

    dht_id_to_hex(&r->key, key);
    dht_id_to_hex(&r->value_id, vid);
    sodium_bin2hex(owner, sizeof(owner), r->owner, sizeof(r->owner));
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:b, s:b, s:I, s:o}", "key", key, "value_id", vid,
                     "seq", (json_int_t)r->seq, "expires_in_s",
                     (json_int_t)(r->expiry_ms > now ? (r->expiry_ms - now) / 1000 : 0), "owner",
                     owner, "tombstone", r->tombstone, "mailbox", r->mailbox, "value_len",
                     (json_int_t)r->value_len, "value", r->tombstone ? json_null() : value_json(r));
}

struct visit_ctx {
    json_t *arr;
    uint64_t now;
    size_t n;
};

static int visit_record(const struct dht_record *rec, void *arg)
{
    struct visit_ctx *v = arg;

    if (v->n >= CTL_RECORDS_MAX)
        return 1;
    json_array_append_new(v->arr, record_json(rec, v->now));
    v->n++;
    return 0;
}

static json_t *cmd_records(const json_t *args, const json_t *opts, char *err, size_t errlen,
                           void *arg)
{
    struct p2psipd *d = arg;
    struct visit_ctx v = {json_array(), p2p_wall_ms(), 0};
    struct dht_id lo, hi;

    (void)args;
    (void)opts;
    (void)err;
    (void)errlen;
    memset(lo.b, 0, sizeof(lo.b));
    memset(hi.b, 0xff, sizeof(hi.b));
    (void)dht_store_visit_range(d->store, &lo, &hi, v.now, visit_record, &v);
    return v.arr;
}

/* An async put/get/lookup from the control socket. */
struct ctl_op {
    struct control_req *req;
    struct dht_id key;
    struct p2psipd *d; /* route: for the hops' addresses; put, get: the metrics */
    uint64_t sent_ns;  /* uv_hrtime() when the put or get went out (metrics) */
};

/* A pending control operation for req, or NULL with the error already replied. */
static struct ctl_op *ctl_op_new(struct control_req *req)
{
    struct ctl_op *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        control_reply_error(req, "out of memory");
        return NULL;
    }
    o->req = req;
    return o;
}

static void ctl_put_done(int status, unsigned acks, void *arg)
{
    struct ctl_op *o = arg;

    if (status != -ECANCELED)
        p2psipd__observe(o->d, P2PSIPD_LAT_PUT_CONTROL, o->sent_ns);
    if (status != 0)
        control_reply_error(o->req, "put failed: %s", strerror(-status));
    else
        control_reply(o->req, json_pack("{s:b, s:I}", "stored", 1, "acks", (json_int_t)acks));
    free(o);
}

static void ctl_get_done(int status, const struct dht_record *recs, size_t n, void *arg)
{
    struct ctl_op *o = arg;
    uint64_t now = p2p_wall_ms();
    json_t *a;

    if (status != -ECANCELED)
        p2psipd__observe(o->d, P2PSIPD_LAT_GET_CONTROL, o->sent_ns);
    if (status != 0) {
        control_reply_error(o->req, "get failed: %s", strerror(-status));
        free(o);
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, record_json(&recs[i], now));
    control_reply(o->req, a);
    free(o);
}

static void ctl_lookup_done(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    struct ctl_op *o = arg;

    if (status != 0)
        control_reply_error(o->req, "lookup failed: %s", strerror(-status));
    else
        control_reply(o->req,
                      json_pack("{s:o, s:I}", "root", peer_json(root), "hops", (json_int_t)hops));
    free(o);
}

/* route KEY on a member: every hop with its smoothed RTT to the next. */
static void ctl_trace_done(int status, const struct dht_trace *t, void *arg)
{
    struct ctl_op *o = arg;
    struct p2psipd *d = o->d;
    const struct dht_route *rt = d->overlay != NULL && overlay_node_dht(d->overlay) != NULL
                                     ? dht_node_route(overlay_node_dht(d->overlay))
                                     : NULL;
    json_t *path;
    char hex[DHT_ID_HEX_LEN + 1];

    if (status != 0) {
        control_reply_error(o->req, "route failed: %s", strerror(-status));
        free(o);
        return;
    }
    path = json_array();
    for (unsigned i = 0; i < t->n_path; i++) {
        const struct dht_path_hop *h = &t->path[i];
        const struct dht_nbr *e = rt != NULL ? dht_route_find(rt, &h->id) : NULL;
        json_t *hop;
        dht_id_to_hex(&h->id, hex);
        hop = json_pack("{s:s, s:o}", "id", hex, "rtt_ms",
                        h->rtt_ms == DHT_PATH_RTT_UNKNOWN ? json_null() : json_integer(h->rtt_ms));
        if (dht_id_eq(&h->id, &d->identity.id))
            json_object_set_new(hop, "self", json_true());
        else if (e != NULL)
            json_object_set_new(hop, "addr", addr_json(&e->peer.addr));
        else if (dht_id_eq(&h->id, &t->root.id))
            json_object_set_new(hop, "addr", addr_json(&t->root.addr));
        json_array_append_new(path, hop);
    }
    dht_id_to_hex(&o->key, hex);
    control_reply(o->req, json_pack("{s:s, s:o, s:I, s:o}", "key", hex, "root", peer_json(&t->root),
                                    "hops", (json_int_t)t->hops, "path", path));
    free(o);
}

static int ctl_ttl(const json_t *opts, uint64_t *ttl_s)
{
    json_t *t = json_object_get(opts, "ttl");
    long long v;
    char *end;

    *ttl_s = CTL_TTL_DEFAULT_S;
    if (t == NULL)
        return 0;
    if (json_is_integer(t)) {
        v = json_integer_value(t);
    } else if (json_is_string(t)) {
        v = strtoll(json_string_value(t), &end, 10);
        if (*end != '\0')
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (v <= 0 || v > CTL_TTL_MAX_S)
        return -ERANGE;
    *ttl_s = (uint64_t)v;
    return 0;
}

static const char *arg_str(const json_t *args, size_t i)
{
    const json_t *a = json_array_get(args, i);

    return json_is_string(a) ? json_string_value(a) : NULL;
}

/* The value id of what this node puts under a key from the control socket: one per
 * node and key, so a second put replaces the first and remove finds it. */
static void ctl_value_id(struct p2psipd *d, struct dht_id *out)
{
    static const char label[] = "p2psipctl-value:";
    uint8_t buf[sizeof(label) + DHT_ID_LEN];

    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, d->identity.id.b, DHT_ID_LEN);
    dht_id_hash(out, buf, sizeof(label) - 1 + DHT_ID_LEN);
}

static void cmd_put(struct control_req *req, const json_t *args, const json_t *opts, void *arg,
                    bool remove)
{
    struct p2psipd *d = arg;
    const char *key = arg_str(args, 0), *value = arg_str(args, 1);
    struct dht_record rec;
    struct ctl_op *o;
    uint64_t ttl, now = p2p_wall_ms();
    int rc;

    if (key == NULL || (!remove && value == NULL)) {
        control_reply_error(req, remove ? "usage: remove KEY" : "usage: put KEY VALUE [--ttl S]");
        return;
    }
    if (ctl_ttl(opts, &ttl) != 0) {
        control_reply_error(req, "--ttl: a whole number of seconds, 1 to %d", CTL_TTL_MAX_S);
        return;
    }
    if (!remove && strlen(value) > DHT_RECORD_VALUE_MAX) {
        control_reply_error(req, "value too long (at most %d bytes)", DHT_RECORD_VALUE_MAX);
        return;
    }
    memset(&rec, 0, sizeof(rec));
    dht_id_hash(&rec.key, key, strlen(key));
    ctl_value_id(d, &rec.value_id);
    rec.seq = now; /* wall ms: a later put or remove always wins */
    rec.expiry_ms = now + ttl * 1000;
    rec.tombstone = remove;
    rec.value = remove ? NULL : (const uint8_t *)value;
    rec.value_len = remove ? 0 : strlen(value);
    if (dht_record_sign(&rec, d->identity.ed_sk) != 0) {
        control_reply_error(req, "cannot sign the record");
        return;
    }
    o = ctl_op_new(req);
    if (o == NULL)
        return;
    o->d = d;
    o->sent_ns = uv_hrtime();
    rc = d->overlay ? overlay_node_put(d->overlay, &rec, ctl_put_done, o) : -ENOTCONN;
    if (rc != 0) {
        control_reply_error(req, "put failed: %s", strerror(-rc));
        free(o);
    }
}

static void cmd_put_async(struct control_req *req, const json_t *args, const json_t *opts,
                          void *arg)
{
    cmd_put(req, args, opts, arg, false);
}

static void cmd_remove_async(struct control_req *req, const json_t *args, const json_t *opts,
                             void *arg)
{
    cmd_put(req, args, opts, arg, true);
}

static void cmd_get_async(struct control_req *req, const json_t *args, const json_t *opts,
                          void *arg, bool lookup)
{
    struct p2psipd *d = arg;
    const char *key = arg_str(args, 0);
    struct ctl_op *o;
    int rc;

    (void)opts;
    if (key == NULL) {
        control_reply_error(req, lookup ? "usage: route KEY" : "usage: get KEY");
        return;
    }
    o = ctl_op_new(req);
    if (o == NULL)
        return;
    dht_id_hash(&o->key, key, strlen(key));
    o->d = d;
    o->sent_ns = uv_hrtime();
    if (d->overlay == NULL)
        rc = -ENOTCONN;
    else if (lookup) {
        rc = overlay_node_trace(d->overlay, &o->key, ctl_trace_done, o);
        if (rc == -EOPNOTSUPP) /* a client: its super-node looks up, untraced */
            rc = overlay_node_lookup(d->overlay, &o->key, ctl_lookup_done, o);
    } else
        rc = overlay_node_get(d->overlay, &o->key, ctl_get_done, o);
    if (rc != 0) {
        control_reply_error(req, "%s failed: %s", lookup ? "route" : "get", strerror(-rc));
        free(o);
    }
}

static void cmd_get(struct control_req *req, const json_t *args, const json_t *opts, void *arg)
{
    cmd_get_async(req, args, opts, arg, false);
}

static void cmd_route(struct control_req *req, const json_t *args, const json_t *opts, void *arg)
{
    cmd_get_async(req, args, opts, arg, true);
}

static void cmd_pipe_ping(struct control_req *req, const json_t *args, const json_t *opts,
                          void *arg)
{
    struct p2psipd *d = arg;
    const char *to = arg_str(args, 0);
    json_t *via_j = json_object_get(opts, "via");
    struct dht_id id, via;
    struct p2psipd_pipe_ping *pp = NULL;
    int rc;

    if (to == NULL || dht_id_from_hex(&id, to, strlen(to)) != 0 ||
        (via_j != NULL &&
         (!json_is_string(via_j) || dht_id_from_hex(&via, json_string_value(via_j),
                                                    strlen(json_string_value(via_j))) != 0))) {
        control_reply_error(req, "usage: pipe-ping NODE-ID [--via SUPER-NODE-ID] (40 hex digits)");
        return;
    }
    for (size_t i = 0; i < sizeof(d->pings) / sizeof(d->pings[0]) && pp == NULL; i++)
        if (d->pings[i].req == NULL)
            pp = &d->pings[i];
    if (pp == NULL || d->overlay == NULL) {
        control_reply_error(req, d->overlay ? "too many pings in flight" : "no overlay");
        return;
    }
    randombytes_buf(pp->nonce, sizeof(pp->nonce));
    pp->sent_us = uv_hrtime() / 1000;
    rc = overlay_node_pipe_send(d->overlay, &id, via_j ? &via : NULL, P2PSIPD_SVC_ECHO_REQ,
                                pp->nonce, sizeof(pp->nonce));
    if (rc != 0) {
        control_reply_error(req, "pipe-ping: %s", strerror(-rc));
        return;
    }
    pp->req = req;
}

int p2psipd__overlay_register(struct p2psipd *d)
{
    int rc = 0;

    if (d->control == NULL)
        return 0;
    rc |= control_register(d->control, "leafset", "the leaf set: predecessors and successors",
                           cmd_leafset, d);
    rc |= control_register(d->control, "routes", "the routing table's entries", cmd_routes, d);
    rc |= control_register(d->control, "peers", "nodes with a secure channel", cmd_peers, d);
    rc |=
        control_register(d->control, "records", "the DHT records this node stores", cmd_records, d);
    rc |= control_register_async(d->control, "put", "put KEY VALUE [--ttl S]: a signed record",
                                 cmd_put_async, d);
    rc |= control_register_async(d->control, "get", "get KEY: the live values", cmd_get, d);
    rc |= control_register_async(d->control, "remove", "remove KEY: our value, as a tombstone",
                                 cmd_remove_async, d);
    rc |= control_register_async(d->control, "route", "route KEY: the root of KEY and the hops",
                                 cmd_route, d);
    rc |= control_register_async(d->control, "pipe-ping",
                                 "pipe-ping NODE-ID [--via SUPER-ID]: an echo over a pipe",
                                 cmd_pipe_ping, d);
    return rc != 0 ? -EINVAL : 0;
}
