/*
 * sip_glue.c: the daemon's SIP side: transport -> proxy (and its registrar), one timer.
 *
 * Design.  The overlay's SIP transport delivers each message to on_message(), which
 * hands it with the loop's clock to the proxy core (sip_proxy.h): the proxy owns the
 * transaction layer, answers what is malformed (RFC 3261 8.2, 16.3: 400 when the
 * request is answerable, else a drop this file counts), gives REGISTERs for our
 * domains to the registrar and proxies the rest, asking the locator where an AoR is.
 * Everything the proxy sends comes back through sip_send(): requests go to their
 * destination, responses are routed by the overlay's RFC 3261 18.2.2 / RFC 3581 4
 * rules from their top Via.  -d traces every message in and out with its source or
 * destination.
 *
 * Time: one uv_timer_t armed, from a uv_prepare_t that runs before the loop blocks,
 * to the earliest of the proxy's (transactions) and the registrar's (binding expiry)
 * next deadline; its callback advances both.  Whatever changed the deadlines during a
 * loop turn (a message, a locator completion, a timer) is thus covered before the
 * next poll.
 *
 * Invariants.  After p2psipd__sip_stop() no SIP callback reaches a freed object: the
 * transport is closed first (no more messages), then the locator (its completions
 * reach a live registrar and proxy, whose sends are refused while stopping), then
 * the RFC 3263 resolver (pending resolutions complete with -ECANCELED), then the
 * proxy and the registrar are freed.
 */
#include "p2psipd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bindings_db.h"
#include "locator_dht.h"
#include "locator_local.h"
#include "p2p/clock.h"
#include "p2p/overlay_addr.h"
#include "p2p/overlay_sip.h"
#include "p2p/overlay_sip_resolver.h"
#include "p2p/sip_accounts.h"
#include "p2p/sip_build.h"
#include "p2p/sip_digest.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_proxy.h"
#include "p2p/sip_registrar.h"
#include "p2p/sip_tsx.h"

/* Publishes (and lookups) that may wait for the next loop turn at once. */
#define LOCATOR_MAX_PENDING 4096

static const char *proto_name(enum overlay_sip_proto p)
{
    return p == OVERLAY_SIP_TCP ? "TCP" : "UDP";
}

static bool tracing(const struct p2psipd *d)
{
    return d->conf.log.trace && p2p_log_enabled(d->log, P2P_LOG_DEBUG);
}

static void trace(struct p2psipd *d, const char *dir, enum overlay_sip_proto proto,
                  const struct sockaddr_storage *from, const struct sockaddr_storage *to,
                  const char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN + 16], b[INET6_ADDRSTRLEN + 16];

    if (!tracing(d))
        return;
    p2p_debug(d->log, "SIP %s %s %s -> %s, %zu bytes:\n%.*s", dir, proto_name(proto),
              from ? overlay_addr_text(from, a, sizeof(a)) : "us",
              to ? overlay_addr_text(to, b, sizeof(b)) : "us", len, (int)len, buf);
}

static void on_message(void *arg, const struct overlay_sip_source *src, const char *buf, size_t len,
                       const struct sip_msg *msg, int parse_err)
{
    struct p2psipd *d = arg;
    struct sip_tsx_dest dest;
    int rc;

    /* The proxy parses again (it owns the rules for what a bad message gets). */
    if (d->stopping)
        return;
    d->sip_stats.rx++;
    trace(d, "recv", src->proto, &src->remote, &src->local, buf, len);
    /* From a phone (other nodes come over pipes): REGISTER and INVITE are timed from
     * here, before the proxy can answer. */
    if (msg != NULL && parse_err == 0)
        p2psipd__sip_timing_request(d, msg, uv_hrtime());
    memset(&dest, 0, sizeof(dest));
    dest.transport = src->proto == OVERLAY_SIP_TCP ? SIP_TSX_TCP : SIP_TSX_UDP;
    dest.addr = src->remote;
    dest.conn_id = src->conn_id;
    rc = sip_proxy_recv(d->proxy, buf, len, &dest, uv_now(d->loop));
    if (rc != 0) {
        /* RFC 3261 16.3: answered 400 when answerable, else dropped; counted here. */
        d->sip_stats.bad_dropped++;
        p2p_info_rl(d->log, &d->sip_log, uv_now(d->loop), "SIP message from %s not taken: %s",
                    proto_name(src->proto), strerror(-rc));
    }
}

static void on_send_error(void *arg, const struct overlay_sip_dest *dest, int err)
{
    struct p2psipd *d = arg;
    char a[INET6_ADDRSTRLEN + 16];

    d->sip_stats.send_errors++;
    p2p_info_rl(d->log, &d->sip_log, uv_now(d->loop), "SIP %s to %s failed: %s",
                proto_name(dest->proto), overlay_addr_text(&dest->addr, a, sizeof(a)),
                uv_strerror(err));
}

/* Parses the top Via of a message we are about to send (a response's routing). */
static int top_via(struct p2psipd *d, const char *bytes, size_t len, struct sip_via *out)
{
    struct sip_hdr_iter it;
    struct p2p_slice top;

    if (sip_msg_parse(d->scratch, bytes, len, SIP_MSG_DGRAM, NULL) < 0)
        return -EINVAL;
    sip_hdr_iter_init(&it, d->scratch, SIP_HDR_VIA);
    if (!sip_hdr_iter_next(&it, &top) || sip_via_parse(top, out) != 0)
        return -EINVAL;
    return 0;
}

static int sip_send_raw(struct p2psipd *d, const char *bytes, size_t len,
                        const struct sip_tsx_dest *dest);

static int sip_send(const char *bytes, size_t len, const struct sip_tsx_dest *dest, void *arg)
{
    struct p2psipd *d = arg;
    struct p2p_buf rw;
    int rc;

    if (d->stopping)
        return sip_send_raw(d, bytes, len, dest);
    p2p_buf_init(&rw, 65536); /* allocates only when the filter rewrites */
    if (p2psipd__media_filter(d, bytes, len, dest, &rw) == 1)
        rc = sip_send_raw(d, rw.data, rw.len, dest);
    else
        rc = sip_send_raw(d, bytes, len, dest);
    p2p_buf_free(&rw);
    return rc;
}

static int sip_send_raw(struct p2psipd *d, const char *bytes, size_t len,
                        const struct sip_tsx_dest *dest)
{
    enum overlay_sip_proto proto =
        dest->transport == SIP_TSX_UDP ? OVERLAY_SIP_UDP : OVERLAY_SIP_TCP;
    int rc;

    if (d->stopping)
        return -ECANCELED;
    /* Another node: over the overlay's pipe, requests and responses alike. */
    if (p2psipd__is_pipe_conn(dest->conn_id)) {
        trace(d, "send", OVERLAY_SIP_UDP, NULL, NULL, bytes, len);
        rc = p2psipd__sip_pipe_send(d, dest->conn_id, bytes, len);
        if (rc != 0) {
            d->sip_stats.send_errors++;
            return rc;
        }
        d->sip_stats.tx++;
        d->sip_stats.pipe_tx++;
        return 0;
    }
    /* No TLS transport exists yet: a sips target must never leave as plain TCP. */
    if (dest->transport == SIP_TSX_TLS) {
        d->sip_stats.send_errors++;
        return -EPROTONOSUPPORT;
    }
    trace(d, "send", proto, NULL, &dest->addr, bytes, len);
    if (len > 8 && memcmp(bytes, "SIP/2.0 ", 8) == 0) {
        /* A response: RFC 3261 18.2.2 / RFC 3581 4 routing from its top Via. */
        struct overlay_sip_source src;
        struct sip_via via;
        if (top_via(d, bytes, len, &via) != 0) {
            /* RFC 4475 3.1.2.1 (badinv01): the 400 to a request whose top Via does
             * not parse goes where the SIP core says, the request's source. */
            struct overlay_sip_dest od = {proto, dest->addr};
            rc = dest->conn_id != 0 ? overlay_sip_send_conn(d->transport, dest->conn_id, bytes, len)
                                    : overlay_sip_send(d->transport, &od, bytes, len);
        } else {
            memset(&src, 0, sizeof(src));
            src.proto = proto;
            src.listener = -1; /* the first listener of the family sends */
            src.conn_id = dest->conn_id;
            src.remote = dest->addr;
            rc = overlay_sip_send_response(d->transport, &src, &via, bytes, len);
            /* To a phone (pipes were handled above): may end a timed request. */
            if (rc == 0)
                p2psipd__sip_timing_response(d, d->scratch, &via, uv_hrtime());
        }
    } else if (dest->conn_id != 0) {
        rc = overlay_sip_send_conn(d->transport, dest->conn_id, bytes, len);
    } else {
        struct overlay_sip_dest od = {proto, dest->addr};
        rc = overlay_sip_send(d->transport, &od, bytes, len);
    }
    if (rc != 0)
        d->sip_stats.send_errors++;
    else
        d->sip_stats.tx++;
    return rc;
}

static uint64_t loop_clock(void *arg)
{
    struct p2psipd *d = arg;
    return uv_now(d->loop);
}

static void registrar_expired(const struct sip_binding *b, void *arg)
{
    struct p2psipd *d = arg;

    p2p_info_rl(d->log, &d->sip_log, uv_now(d->loop), "binding expired: %s -> %s", b->aor,
                b->contact);
    locator_local_expired(d->locator, b);
    locator_dht_changed(d->ldht, b->aor); /* the DHT record follows */
}

static void on_timer(uv_timer_t *h)
{
    struct p2psipd *d = h->data;
    uint64_t now = uv_now(d->loop);

    d->timer_due = UINT64_MAX;
    sip_proxy_advance(d->proxy, now);
    sip_registrar_advance(d->registrar, now);
}

static void on_prepare(uv_prepare_t *h)
{
    struct p2psipd *d = h->data;
    uint64_t due = sip_proxy_next_deadline(d->proxy);
    uint64_t reg = sip_registrar_next_deadline(d->registrar);
    uint64_t now = uv_now(d->loop);

    /* DHT records stored during this turn are committed at its end. */
    if (d->locator != NULL)
        locator_local_kick(d->locator);
    if (reg < due)
        due = reg;
    if (due == d->timer_due)
        return;
    d->timer_due = due;
    /* Neither call can fail here: the callback is set and the timer is not closing
     * (it is closed together with the prepare handle that calls this, and a closing
     * prepare handle runs no more). */
    if (due == UINT64_MAX)
        (void)uv_timer_stop(&d->timer);
    else
        (void)uv_timer_start(&d->timer, on_timer, due > now ? due - now : 0, 0);
}

/* Converts a database row to the loop clock and gives it back to the registrar. */
struct restore_ctx {
    struct p2psipd *d;
    int64_t wall_now_ms;
};

static int restore_row(const struct sip_binding *b, int64_t wall_expires_ms, void *arg)
{
    struct restore_ctx *r = arg;
    struct p2psipd *d = r->d;
    struct sip_binding copy = *b;
    uint64_t now = uv_now(d->loop);
    int rc;

    copy.expires_ms = now + (uint64_t)(wall_expires_ms - r->wall_now_ms);
    rc = sip_registrar_restore(d->registrar, &copy, now);
    if (rc == 0)
        d->sip_stats.restored++;
    else
        p2p_warn(d->log, "binding %s -> %s not restored: %s", b->aor, b->contact, strerror(-rc));
    return 0;
}

static int restore_bindings(struct p2psipd *d)
{
    struct restore_ctx r = {d, 0};
    size_t expired = 0;
    int rc;

    r.wall_now_ms = (int64_t)p2p_wall_ms();
    rc = bindings_db_load(d->db, r.wall_now_ms, restore_row, &r, &expired);
    if (rc < 0) {
        p2p_err(d->log, "cannot read the bindings database: %s", strerror(-rc));
        return rc;
    }
    d->sip_stats.expired_on_load = expired;
    p2p_notice(d->log, "restored %llu bindings from the database (%zu expired dropped)",
               (unsigned long long)d->sip_stats.restored, expired);
    return 0;
}

/*
 * Our own addresses (RFC 3261 16.4: a URI is ours when host and port match).  A
 * wildcard listen address stands for every interface address of its family.
 */
static int build_self(struct p2psipd *d)
{
    const struct conf_sip *c = &d->conf.sip;

    memset(&d->self, 0, sizeof(d->self));
    d->self.default_port = c->port;
    for (size_t i = 0; i < c->listen_count; i++) {
        const struct conf_addr *a = &c->listen[i];
        bool any = strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0;
        char host[CONF_ADDR_MAX + 2];
        if (any) {
            uv_interface_address_t *ifs;
            int n;
            if (uv_interface_addresses(&ifs, &n) == 0) {
                for (int k = 0; k < n; k++) {
                    char ip[INET6_ADDRSTRLEN];
                    if (ifs[k].address.address4.sin_family != a->family)
                        continue;
                    if (a->family == AF_INET) {
                        inet_ntop(AF_INET, &ifs[k].address.address4.sin_addr, ip, sizeof(ip));
                        snprintf(host, sizeof(host), "%s", ip);
                    } else {
                        inet_ntop(AF_INET6, &ifs[k].address.address6.sin6_addr, ip, sizeof(ip));
                        snprintf(host, sizeof(host), "[%s]", ip);
                    }
                    if (sip_self_add_addr(&d->self, host, c->port) != 0)
                        p2p_warn(d->log, "more than %d own addresses: %s not recognised as us",
                                 SIP_SELF_MAX, host);
                }
                uv_free_interface_addresses(ifs, n);
            }
            continue;
        }
        snprintf(host, sizeof(host), a->family == AF_INET6 ? "[%s]" : "%s", a->host);
        if (sip_self_add_addr(&d->self, host, c->port) != 0)
            p2p_warn(d->log, "more than %d own addresses: %s not recognised as us", SIP_SELF_MAX,
                     host);
    }
    for (size_t i = 0; i < c->domain_count; i++) {
        if (sip_self_add_domain(&d->self, c->domain[i]) != 0)
            return -ENOSPC; /* conf caps the list at SIP_SELF_DOMAINS_MAX */
    }
    return 0;
}

static int start_transport(struct p2psipd *d)
{
    struct overlay_sip_listen listen[OVERLAY_SIP_MAX_LISTEN];
    struct overlay_sip_config cfg;
    static const struct overlay_sip_ops ops = {on_message, on_send_error};
    const struct conf_sip *c = &d->conf.sip;
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < c->listen_count; i++) {
        for (unsigned proto = OVERLAY_SIP_UDP; proto <= OVERLAY_SIP_TCP; proto++) {
            struct overlay_sip_listen *l = &listen[n];
            unsigned bit = proto == OVERLAY_SIP_UDP ? CONF_TRANSPORT_UDP : CONF_TRANSPORT_TCP;
            if (!(c->transports & bit))
                continue;
            memset(l, 0, sizeof(*l));
            l->proto = (enum overlay_sip_proto)proto;
            if (c->listen[i].family == AF_INET)
                rc = uv_ip4_addr(c->listen[i].host, c->port, (struct sockaddr_in *)&l->addr);
            else
                rc = uv_ip6_addr(c->listen[i].host, c->port, (struct sockaddr_in6 *)&l->addr);
            if (rc != 0)
                return rc;
            n++;
        }
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = listen;
    cfg.listen_count = n;
    rc = overlay_sip_transport_new(&d->transport, d->loop, &cfg, &ops, d, d->log);
    if (rc != 0) {
        p2p_err(d->log, "cannot listen for SIP on port %u: %s", (unsigned)c->port, uv_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < c->listen_count; i++)
        p2p_notice(d->log, "SIP on %s%s%s %s%s%s port %u",
                   c->listen[i].family == AF_INET6 ? "[" : "", c->listen[i].host,
                   c->listen[i].family == AF_INET6 ? "]" : "",
                   (c->transports & CONF_TRANSPORT_UDP) ? "UDP" : "",
                   c->transports == (CONF_TRANSPORT_UDP | CONF_TRANSPORT_TCP) ? "+" : "",
                   (c->transports & CONF_TRANSPORT_TCP) ? "TCP" : "", (unsigned)c->port);
    return 0;
}

/*
 * The RFC 3263 resolver for forwarding to foreign domains: only the transports and
 * address families we can send on (a UDP send needs a UDP listener of its family).
 */
static int start_resolver(struct p2psipd *d)
{
    struct overlay_sip_resolver_config cfg;
    const struct conf_sip *c = &d->conf.sip;
    bool v4 = false, v6 = false;
    int rc;

    overlay_sip_resolver_config_default(&cfg);
    cfg.transports = ((c->transports & CONF_TRANSPORT_UDP) ? OVERLAY_SIP_RESOLVER_UDP : 0) |
                     ((c->transports & CONF_TRANSPORT_TCP) ? OVERLAY_SIP_RESOLVER_TCP : 0);
    for (size_t i = 0; i < c->listen_count; i++) {
        v4 |= c->listen[i].family == AF_INET;
        v6 |= c->listen[i].family == AF_INET6;
    }
    cfg.family = v4 && !v6 ? AF_INET : v6 && !v4 ? AF_INET6 : AF_UNSPEC;
    rc = overlay_sip_resolver_new(&d->resolver, d->loop, &cfg, d->log);
    if (rc != 0)
        p2p_err(d->log, "cannot create the RFC 3263 resolver: %s", strerror(-rc));
    return rc;
}

/*
 * Loads the accounts file of conf (if any) and creates the digest state for its
 * algorithms.  Both outputs stay NULL without auth.accounts.  Used at start and on
 * SIGHUP, so that a reload checks exactly what a start checks.
 */
static int load_auth(struct p2psipd *d, const struct conf *conf, struct sip_accounts **acc_out,
                     struct sip_digest **digest_out)
{
    struct sip_digest_config dcfg;
    struct sip_accounts *acc = NULL;
    struct sip_digest *digest = NULL;
    char err[CONF_ERR_MAX];
    int rc;

    if (conf->auth.accounts[0] != '\0') {
        rc = sip_accounts_load(&acc, conf->auth.accounts, err, sizeof(err));
        if (rc != 0) {
            p2p_err(d->log, "%s", err);
            return rc;
        }
        sip_digest_config_default(&dcfg);
        dcfg.algs = 0;
        if (conf->auth.algorithms & CONF_DIGEST_MD5)
            dcfg.algs |= SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5);
        if (conf->auth.algorithms & CONF_DIGEST_MD5_SESS)
            dcfg.algs |= SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5_SESS);
        if (conf->auth.algorithms & CONF_DIGEST_SHA256)
            dcfg.algs |= SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256);
        if (conf->auth.algorithms & CONF_DIGEST_SHA256_SESS)
            dcfg.algs |= SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256_SESS);
        rc = sip_digest_new(&digest, &dcfg);
        if (rc != 0) {
            p2p_err(d->log, "cannot set up digest authentication: %s", strerror(-rc));
            sip_accounts_free(acc);
            return rc;
        }
        p2p_notice(d->log, "%zu accounts from %s, realm \"%s\"", sip_accounts_count(acc),
                   conf->auth.accounts, conf->auth.realm);
    }
    *acc_out = acc;
    *digest_out = digest;
    return 0;
}

/*
 * The registrar's policy from conf.  realm points into d->conf, which outlives the
 * registrar (a reload rewrites that array in place after the registrar took the
 * new policy).
 */
static void registrar_policy(struct p2psipd *d, const struct conf *conf, struct sip_accounts *acc,
                             struct sip_digest *digest, struct sip_registrar_config *rcfg)
{
    sip_registrar_config_default(rcfg);
    rcfg->locator = locator_dht_get(d->ldht);
    rcfg->self = &d->self;
    rcfg->accounts = acc;
    rcfg->digest = digest;
    rcfg->realm = d->conf.auth.realm;
    rcfg->default_expires_s = conf->registrar.default_expires;
    rcfg->min_expires_s = conf->registrar.min_expires;
    rcfg->max_expires_s = conf->registrar.max_expires;
    rcfg->max_aors = conf->registrar.max_aors;
    rcfg->max_contacts = conf->registrar.max_contacts;
}

int p2psipd__sip_reconfigure(struct p2psipd *d, const struct conf *next)
{
    struct sip_registrar_config rcfg;
    struct sip_accounts *acc;
    struct sip_digest *digest;
    int rc;

    if (!d->sip_started || d->registrar == NULL)
        return 0;
    rc = load_auth(d, next, &acc, &digest);
    if (rc != 0)
        return rc;
    registrar_policy(d, next, acc, digest, &rcfg);
    rc = sip_registrar_reconfigure(d->registrar, &rcfg);
    if (rc != 0) {
        p2p_err(d->log, "reload: the registrar refused the new settings: %s", strerror(-rc));
        sip_digest_free(digest);
        sip_accounts_free(acc);
        return rc;
    }
    /* The registrar reads accounts and digest only inside a REGISTER: the old ones
     * are unused from here on. */
    sip_digest_free(d->digest);
    sip_accounts_free(d->accounts);
    d->accounts = acc;
    d->digest = digest;
    return 0;
}

int p2psipd__sip_start(struct p2psipd *d)
{
    struct sip_proxy_config pcfg;
    struct sip_registrar_config rcfg;
    int rc;

    d->timer_due = UINT64_MAX;
    d->sip_log.name = "SIP";
    d->scratch = malloc(sizeof(*d->scratch));
    if (d->scratch == NULL)
        return -ENOMEM;
    rc = build_self(d);
    if (rc != 0)
        return rc;
    rc = load_auth(d, &d->conf, &d->accounts, &d->digest);
    if (rc != 0)
        return rc;

    rc = locator_local_new(&d->locator, d->loop, d->db, LOCATOR_MAX_PENDING, d->log);
    if (rc == 0)
        rc = locator_dht_new(&d->ldht, d);
    if (rc != 0) {
        p2p_err(d->log, "cannot create the locator: %s", strerror(-rc));
        return rc;
    }

    sip_proxy_config_default(&pcfg);
    pcfg.tsx.t1_ms = d->conf.timers.t1_ms;
    pcfg.tsx.t2_ms = d->conf.timers.t2_ms;
    pcfg.tsx.t4_ms = d->conf.timers.t4_ms;
    pcfg.self = &d->self;
    pcfg.locator = locator_dht_get(d->ldht);
    pcfg.nodes.node_dest = p2psipd__node_dest;
    pcfg.nodes.ctx = d;
    pcfg.clock = loop_clock;
    pcfg.clock_arg = d;
    pcfg.send = sip_send;
    pcfg.send_arg = d;
    pcfg.foreign = d->conf.proxy.forward_foreign        ? SIP_PROXY_FOREIGN_FORWARD
                   : d->conf.proxy.foreign_reply == 403 ? SIP_PROXY_FOREIGN_403
                                                        : SIP_PROXY_FOREIGN_404;
    pcfg.keepalive_ms = d->conf.registrar.options_keepalive * 1000;
    pcfg.keepalive_remove = d->conf.registrar.keepalive_remove;
    if (d->conf.proxy.forward_foreign) {
        rc = start_resolver(d);
        if (rc != 0)
            return rc;
        pcfg.resolver = overlay_sip_resolver_hook(d->resolver);
    }
    rc = sip_proxy_new(&d->proxy, &pcfg);
    if (rc != 0) {
        p2p_err(d->log, "cannot create the proxy: %s", strerror(-rc));
        return rc;
    }

    registrar_policy(d, &d->conf, d->accounts, d->digest, &rcfg);
    rcfg.reply = sip_proxy_registrar_reply;
    rcfg.reply_arg = d->proxy;
    rcfg.expired = registrar_expired;
    rcfg.expired_arg = d;
    rc = sip_registrar_new(&d->registrar, &rcfg);
    if (rc != 0) {
        p2p_err(d->log, "cannot create the registrar: %s", strerror(-rc));
        return rc;
    }
    sip_proxy_set_registrar(d->proxy, d->registrar);
    /* Starts the keep-alive schedule (sip_proxy.h). */
    sip_proxy_advance(d->proxy, uv_now(d->loop));
    locator_local_attach(d->locator, d->registrar);
    rc = restore_bindings(d);
    if (rc != 0)
        return rc;
    locator_dht_republish_all(d->ldht); /* sent once the overlay can take them */

    rc = uv_timer_init(d->loop, &d->timer);
    if (rc != 0)
        return rc;
    d->timer.data = d;
    rc = uv_prepare_init(d->loop, &d->prepare);
    if (rc != 0) {
        uv_close((uv_handle_t *)&d->timer, NULL);
        return rc;
    }
    d->prepare.data = d;
    (void)uv_prepare_start(&d->prepare, on_prepare); /* cannot fail once initialised */
    d->sip_started = true;

    rc = start_transport(d);
    if (rc != 0)
        return rc;
    return 0;
}

void p2psipd__sip_stop(struct p2psipd *d)
{
    if (d->locator != NULL) {
        struct locator_local_stats s;
        locator_local_stats(d->locator, &s);
        p2p_notice(d->log,
                   "bindings database: %llu commits for %llu publishes (%llu failed), %llu "
                   "expired bindings deleted",
                   (unsigned long long)s.commits, (unsigned long long)s.publishes,
                   (unsigned long long)s.publish_errors, (unsigned long long)s.expired);
        p2p_notice(d->log, "SIP: %llu messages in, %llu out, %llu refused, %llu send errors",
                   (unsigned long long)d->sip_stats.rx, (unsigned long long)d->sip_stats.tx,
                   (unsigned long long)d->sip_stats.bad_dropped,
                   (unsigned long long)d->sip_stats.send_errors);
    }
    if (d->transport != NULL) {
        overlay_sip_transport_close(d->transport, NULL, NULL);
        d->transport = NULL;
    }
    /* Completes pending publishes and lookups while registrar and proxy still live. */
    if (d->locator != NULL) {
        locator_local_close(d->locator);
        d->locator = NULL;
    }
    /* What the overlay and the local locator did not complete ends here. */
    if (d->ldht != NULL) {
        struct locator_dht_stats s;
        locator_dht_stats(d->ldht, &s);
        p2p_notice(d->log,
                   "DHT bindings: %llu lookups (%llu found other nodes' bindings), %llu puts "
                   "(%llu failed, %llu refused: AoR owned by another key), %llu republished",
                   (unsigned long long)s.lookups, (unsigned long long)s.lookups_remote,
                   (unsigned long long)s.puts, (unsigned long long)s.put_errors,
                   (unsigned long long)s.put_refused, (unsigned long long)s.republished);
        p2p_notice(d->log,
                   "offline MESSAGEs: %llu kept (%llu for unknown users, %llu failed), %llu "
                   "delivered, %llu left for a later REGISTER",
                   (unsigned long long)s.mailbox.kept, (unsigned long long)s.mailbox.keep_unknown,
                   (unsigned long long)s.mailbox.keep_failed,
                   (unsigned long long)s.mailbox.delivered,
                   (unsigned long long)s.mailbox.undelivered);
    }
    locator_dht_free(d->ldht);
    d->ldht = NULL;
    /* Completes pending resolutions (-ECANCELED) while the proxy still lives. */
    if (d->resolver != NULL) {
        overlay_sip_resolver_close(d->resolver, NULL, NULL);
        d->resolver = NULL;
    }
    sip_proxy_free(d->proxy);
    d->proxy = NULL;
    sip_registrar_free(d->registrar);
    d->registrar = NULL;
    if (d->sip_started) {
        uv_close((uv_handle_t *)&d->timer, NULL);
        uv_close((uv_handle_t *)&d->prepare, NULL);
        d->sip_started = false;
    }
}

void p2psipd__sip_free(struct p2psipd *d)
{
    sip_digest_free(d->digest);
    d->digest = NULL;
    sip_accounts_free(d->accounts);
    d->accounts = NULL;
    free(d->scratch);
    d->scratch = NULL;
}
