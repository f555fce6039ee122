/*
 * proxy.c: the stateful proxy core (RFC 3261 16), API in sip_proxy.h.
 *
 * Design.  The proxy is the transaction user of its own sip_tsx layer.  Each
 * request that creates a server transaction and is forwarded gets a struct
 * proxy_req (the server transaction's arg) holding a copy of the request, the
 * target set and its branches; each branch (the client transaction's arg) is one
 * forwarded copy.  The request goes through 16.3 (validation), 16.4 (Route
 * preprocessing), 16.5 (targets: Route, locator lookup, or the Request-URI), 16.6
 * (forwarding one q-value group of targets in parallel), 16.7 (responses: 1xx and
 * 2xx forwarded at once, the best final one when every branch is done, CANCEL of
 * the others on a 2xx or 6xx to an INVITE), 16.8 (Timer C -> CANCEL) and 16.10
 * (CANCEL).  ACK to a 2xx is forwarded statelessly (16.11).
 *
 * Tags on transaction args: every arg is NULL (nothing to do: our own CANCELs and
 * requests answered at once), &p->register_tag (a REGISTER with the registrar), a
 * struct proxy_req or a struct proxy_branch, told apart by their first member.
 *
 * Lifetime invariants:
 *  - a proxy_req lives while it has something left to do: no final response went
 *    upstream yet (and its server transaction lives), a locator lookup is pending,
 *    a branch is resolving, or a branch's client transaction has no final answer
 *    yet (req_release() checks them).  Then it is freed and its transactions are
 *    detached (arg NULL): they linger alone for Timers J, K, D, L, M and absorb
 *    retransmissions.  A 2xx retransmitted to a detached INVITE client
 *    transaction in Accepted (RFC 6026 7.2) is forwarded statelessly upstream by
 *    its next Via (16.11, 18.2.2), as the ACK to a 2xx is;
 *  - final_sent is set once a final response went upstream; after it only
 *    further 2xx to an INVITE are forwarded (RFC 6026 Accepted);
 *  - branches[] holds at most max_branches entries per group, reused group by
 *    group only after every branch of the previous group is final.
 */
#include "p2p/sip_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/buf.h"
#include "p2p/list.h"
#include "p2p/sip_build.h"
#include "p2p/sip_registrar.h"
#include "p2p/sip_uri.h"
#include "proxy_priv.h"

#define MSG_CAP 65536u   /* any message we build */
#define LOOP_HASH_LEN 16 /* hex digits of the loop-detection hash */

enum arg_kind { ARG_REQ = 1, ARG_BRANCH, ARG_REGISTER, ARG_KEEPALIVE, ARG_DELIVER };

struct proxy_req;

struct proxy_branch {
    enum arg_kind kind; /* ARG_BRANCH */
    struct proxy_req *req;
    struct sip_tsx *client; /* NULL before it is sent and once terminated */
    struct sip_tsx_dest dest;
    bool resolving;       /* waiting for the resolver */
    bool final;           /* a final status is known (received or synthesised) */
    bool got_provisional; /* 9.1: a CANCEL may be sent */
    bool cancel_pending;  /* CANCEL wanted before a provisional came */
    bool cancel_sent;
    unsigned status;
    char *resp; /* the final non-2xx response as received, NULL if synthesised */
    size_t resp_len;
    char target[SIP_CONTACT_MAX]; /* Request-URI of this copy, "" to keep */
    struct sip_path path;         /* where the target is reached, host "" to resolve */
    char hop[SIP_CONTACT_MAX];    /* URI to resolve when no path: Route or target */
};

struct proxy_target {
    char uri[SIP_CONTACT_MAX];
    char hop[SIP_HOP_MAX]; /* first hop when not the uri itself (another node) */
    struct sip_path path;
    uint16_t q;
};

struct proxy_req {
    enum arg_kind kind; /* ARG_REQ */
    struct sip_proxy *p;
    struct p2p_list link;    /* in p->reqs */
    struct sip_tsx *server;  /* NULL once terminated */
    struct sip_tsx_dest src; /* where the request came from */
    bool is_invite;
    bool lookup_pending;
    bool cancelled;      /* a CANCEL arrived (16.10) */
    bool stop;           /* no new branches: 2xx or 6xx seen, or cancelled */
    bool final_sent;     /* a final response went upstream */
    bool starting;       /* inside start_group(): hold off the final decision */
    unsigned pop_routes; /* our own Route values on top (two after a double RR) */
    bool record_route;
    bool held; /* handle_request() still uses it: not freed yet */
    char loop_hash[LOOP_HASH_LEN + 1];
    struct proxy_target *targets;
    size_t ntargets, next_target;
    struct proxy_branch *branches;
    size_t nbranches;
    unsigned best_status; /* across every group so far, 0 none */
    char *best;           /* its bytes, NULL when synthesised */
    size_t best_len;
    struct p2p_buf auth; /* challenge lines of the 401/407 not chosen, 16.7 step 7 */
    size_t req_len;
    char *raw;      /* the request as forwarded onward (strict-route fix applied) */
    char *keep_aor; /* a phone's MESSAGE: its AoR, for the locator's keep */
};

/* One keep-alive OPTIONS to a registered UDP contact (client transaction arg). */
struct proxy_ka {
    enum arg_kind kind;   /* ARG_KEEPALIVE */
    struct p2p_list link; /* in p->kas */
    char aor[SIP_AOR_MAX];
    char contact[SIP_CONTACT_MAX];
};

/* A request the daemon makes (sip_proxy_deliver_message): one client transaction per
 * binding, each with this as its arg. */
struct proxy_dlv {
    enum arg_kind kind;      /* ARG_DELIVER */
    struct p2p_list link;    /* in p->dlvs */
    unsigned legs;           /* client transactions not terminated yet */
    unsigned best;           /* best final status so far (2xx first), 0 none */
    sip_proxy_deliver_cb cb; /* NULL once cancelled */
    void *arg;
};

struct sip_proxy {
    struct sip_proxy_config cfg;
    struct sip_tsx_layer *tsx;
    struct sip_registrar *reg;
    enum arg_kind register_tag; /* its address marks REGISTER server transactions */
    uint64_t now;               /* time of the last call into the proxy */
    uint64_t salt;              /* keys the loop hash */
    char to_tag[SIP_BRANCH_LEN + 1];
    struct p2p_list reqs;
    size_t nreqs;
    struct p2p_list kas;  /* keep-alive OPTIONS in flight */
    struct p2p_list dlvs; /* deliveries in flight */
    uint64_t next_keepalive;
};

static void req_release(struct proxy_req *r);
static void check_done(struct proxy_req *r);
static void branch_detach(struct proxy_branch *b);

/* ---- small helpers ---- */

/* An asynchronous completion resumes a request: timers it arms start now. */
static void clock_now(struct sip_proxy *p)
{
    if (p->cfg.clock != NULL)
        p->now = p->cfg.clock(p->cfg.clock_arg);
}

/* host names another node of the overlay: 0 and *dest (over a pipe), else -ENOENT. */
static int node_dest(struct sip_proxy *p, struct p2p_slice host, struct sip_tsx_dest *dest)
{
    if (p->cfg.nodes.node_dest == NULL)
        return -ENOENT;
    return p->cfg.nodes.node_dest(p->cfg.nodes.ctx, host, dest);
}

static bool method_is(const struct sip_msg *m, const char *name)
{
    return p2p_slice_eq(m->method, p2p_slice_cstr(name));
}

int sip_proxy_numeric_dest(struct p2p_slice host, uint16_t port, struct p2p_slice transport,
                           uint64_t conn_id, struct sip_tsx_dest *out)
{
    char h[SIP_HOST_MAX];
    struct sip_tsx_dest d;

    memset(&d, 0, sizeof(d));
    if (host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']') {
        host.p++;
        host.len -= 2;
    }
    if (p2p_slice_copy(host, h, sizeof(h)) != 0)
        return -EINVAL;
    if (transport.len == 0 || p2p_slice_caseeq_cstr(transport, "udp"))
        d.transport = SIP_TSX_UDP;
    else if (p2p_slice_caseeq_cstr(transport, "tcp"))
        d.transport = SIP_TSX_TCP;
    else if (p2p_slice_caseeq_cstr(transport, "tls"))
        d.transport = SIP_TSX_TLS;
    else
        return -EINVAL;
    if (port == 0)
        port = d.transport == SIP_TSX_TLS ? 5061 : 5060; /* RFC 3263 4.2 */
    struct sockaddr_in *a4 = (struct sockaddr_in *)&d.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&d.addr;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
    } else {
        return -EINVAL;
    }
    d.conn_id = conn_id;
    *out = d;
    return 0;
}

static const char *transport_name(enum sip_tsx_transport t)
{
    switch (t) {
    case SIP_TSX_TCP:
        return "TCP";
    case SIP_TSX_TLS:
        return "TLS";
    case SIP_TSX_UDP:
        break;
    }
    return "UDP";
}

static int src_of(const struct sip_tsx_dest *d, char *host, size_t size, struct sip_src *src)
{
    memset(src, 0, sizeof(*src));
    /* Another node: its address is the pipe, not a socket address; its Via names
     * it (node_host) and needs no received/rport (RFC 3261 18.2.1 is about IP). */
    if (d->overlay)
        return -ENOENT;
    return sip_tsx_dest_src(d, host, size, src);
}

/* Builds our own response to req and passes it to the server transaction (or
 * statelessly to src when t is NULL). */
static void respond(struct sip_proxy *p, struct sip_tsx *t, const struct sip_msg *req,
                    const struct sip_tsx_dest *src, unsigned status, const char *reason,
                    const char *extra)
{
    struct p2p_buf out;
    struct sip_resp r;
    char host[64];
    int rc;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.reason = p2p_slice_cstr(reason);
    r.to_tag = p2p_slice_cstr(p->to_tag);
    r.extra = p2p_slice_cstr(extra);
    if (src_of(src, host, sizeof(host), &r.src) != 0)
        memset(&r.src, 0, sizeof(r.src));
    p2p_buf_init(&out, MSG_CAP);
    rc = sip_build_response(req, &r, &out);
    if (rc == -EBADMSG && r.src.host.len > 0) {
        /* RFC 4475 3.1.2.1: a top Via too broken to parse cannot take received/rport;
         * it is copied as it is and the 400 goes to the datagram's source, which is
         * where src already points (RFC 3581 4 sends there anyway). */
        memset(&r.src, 0, sizeof(r.src));
        rc = sip_build_response(req, &r, &out);
    }
    if (rc == 0) {
        if (t)
            (void)sip_tsx_server_respond(t, out.data, out.len, p->now);
        else
            (void)p->cfg.send(out.data, out.len, src, p->cfg.send_arg);
    }
    p2p_buf_free(&out);
}

/* ---- loop detection (RFC 3261 16.3 step 4, 16.6 step 8) ---- */

static uint64_t fnv_add(uint64_t h, struct p2p_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.p[i];
        h *= 0x100000001b3ull;
    }
    h ^= 0xff; /* field separator */
    h *= 0x100000001b3ull;
    return h;
}

static struct p2p_slice hdr_value(const struct sip_msg *m, enum sip_hdr_id id)
{
    const struct sip_hdr *h = sip_msg_hdr(m, id);
    struct p2p_slice none = {NULL, 0};
    return h ? h->value : none;
}

/*
 * The part of our branch that is the same every time this request passes us:
 * the fields of 16.6 step 8 that do not change along the path (Request-URI as
 * received, From and To tags, Call-ID, CSeq number, Proxy-Require,
 * Proxy-Authorization).  The received top Via, which the RFC also lists, is left
 * out on purpose: with it a looped request, whose top Via is the previous hop's,
 * would always look like a spiral.
 */
static void loop_hash(struct sip_proxy *p, const struct sip_msg *m, char out[LOOP_HASH_LEN + 1])
{
    uint64_t h = 0xcbf29ce484222325ull ^ p->salt;
    struct sip_addr a;
    struct sip_cseq cs;
    struct p2p_slice none = {NULL, 0};

    h = fnv_add(h, m->ruri);
    h = fnv_add(h, sip_addr_parse(hdr_value(m, SIP_HDR_FROM), &a) == 0 ? a.tag : none);
    h = fnv_add(h, sip_addr_parse(hdr_value(m, SIP_HDR_TO), &a) == 0 ? a.tag : none);
    h = fnv_add(h, hdr_value(m, SIP_HDR_CALL_ID));
    if (sip_cseq_parse(hdr_value(m, SIP_HDR_CSEQ), &cs) == 0) {
        char n[16];
        int len = snprintf(n, sizeof(n), "%u", cs.num);
        h = fnv_add(h, (struct p2p_slice){n, (size_t)len});
    }
    for (size_t i = 0; i < m->nhdrs; i++) {
        if (m->hdrs[i].id == SIP_HDR_PROXY_REQUIRE || m->hdrs[i].id == SIP_HDR_PROXY_AUTHORIZATION)
            h = fnv_add(h, m->hdrs[i].value);
    }
    snprintf(out, LOOP_HASH_LEN + 1, "%016llx", (unsigned long long)h);
}

/* 16.3 step 4: a Via of ours whose branch carries this request's hash: a loop. */
static bool looped(struct sip_proxy *p, const struct sip_msg *m, const char *hash)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;

    sip_hdr_iter_init(&it, m, SIP_HDR_VIA);
    while (sip_hdr_iter_next(&it, &v)) {
        struct sip_via via;
        if (sip_via_parse(v, &via) != 0 || !sip_self_is_me(p->cfg.self, via.host, via.port))
            continue;
        if (via.branch.len > 7 + LOOP_HASH_LEN &&
            memcmp(via.branch.p + 7, hash, LOOP_HASH_LEN) == 0 &&
            via.branch.p[7 + LOOP_HASH_LEN] == '.')
            return true;
    }
    return false;
}

/* ---- request contexts ---- */

static struct proxy_req *req_new(struct sip_proxy *p, struct sip_tsx *t, const char *raw,
                                 size_t len, const struct sip_tsx_dest *src)
{
    struct proxy_req *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->raw = malloc(len);
    r->branches = calloc(p->cfg.max_branches, sizeof(*r->branches));
    if (!r->raw || !r->branches) {
        free(r->raw);
        free(r->branches);
        free(r);
        return NULL;
    }
    memcpy(r->raw, raw, len);
    r->req_len = len;
    r->kind = ARG_REQ;
    r->p = p;
    r->server = t;
    r->src = *src;
    p2p_buf_init(&r->auth, 16384);
    p2p_list_push_front(&p->reqs, &r->link);
    p->nreqs++;
    sip_tsx_set_arg(t, r);
    return r;
}

static void branches_clear(struct proxy_req *r)
{
    for (size_t i = 0; i < r->nbranches; i++) {
        free(r->branches[i].resp);
        r->branches[i].resp = NULL;
    }
    r->nbranches = 0;
}

/* Frees r once it has nothing left to do (see the lifetime invariants above). */
static void req_release(struct proxy_req *r)
{
    struct sip_proxy *p = r->p;

    if (r->held || r->starting || r->lookup_pending || (r->server && !r->final_sent))
        return;
    for (size_t i = 0; i < r->nbranches; i++) {
        const struct proxy_branch *b = &r->branches[i];
        if (b->resolving || (b->client && !b->final))
            return;
    }
    /* The transactions carry on without us (17.2.1, 17.2.2, RFC 6026 7.1, 7.2). */
    if (r->server) {
        sip_tsx_set_arg(r->server, NULL);
        r->server = NULL;
    }
    for (size_t i = 0; i < r->nbranches; i++)
        branch_detach(&r->branches[i]);
    p2p_list_remove(&r->link);
    p->nreqs--;
    branches_clear(r);
    free(r->branches);
    free(r->targets);
    free(r->best);
    free(r->raw);
    free(r->keep_aor);
    p2p_buf_free(&r->auth);
    free(r);
}

static int req_parse(const struct proxy_req *r, struct sip_msg *m)
{
    return sip_msg_parse(m, r->raw, r->req_len, SIP_MSG_DGRAM, NULL) > 0 ? 0 : -EBADMSG;
}

/* Our own final response upstream. */
static void req_respond(struct proxy_req *r, unsigned status, const char *reason, const char *extra)
{
    struct sip_msg m;

    if (r->final_sent)
        return;
    r->final_sent = true;
    if (!r->server || req_parse(r, &m) != 0)
        return;
    respond(r->p, r->server, &m, &r->src, status, reason, extra);
}

/* ---- CANCEL of branches (RFC 3261 9.1, 16.10) ---- */

static void branch_cancel(struct proxy_branch *b)
{
    struct sip_proxy *p = b->req->p;
    struct sip_msg m;
    struct p2p_buf out;
    struct p2p_slice sent;
    struct sip_tsx *ct;

    if (b->final || b->cancel_sent)
        return;
    if (!b->client) {
        /* still resolving: never sent, so nothing to cancel; it ends as 487 */
        b->cancel_pending = true;
        return;
    }
    if (!b->got_provisional) {
        b->cancel_pending = true; /* 9.1: wait for a provisional response */
        return;
    }
    sent = sip_tsx_request(b->client);
    if (sip_msg_parse(&m, sent.p, sent.len, SIP_MSG_DGRAM, NULL) <= 0)
        return;
    p2p_buf_init(&out, MSG_CAP);
    if (sip_build_cancel(&m, &out) == 0 &&
        sip_tsx_client_new(p->tsx, &ct, out.data, out.len, &b->dest, NULL, p->now) == 0) {
        b->cancel_sent = true;
        (void)sip_tsx_client_cancelled(b->client, p->now);
    }
    p2p_buf_free(&out);
}

static void cancel_others(struct proxy_req *r, const struct proxy_branch *except)
{
    r->stop = true;
    if (!r->is_invite)
        return; /* 9.1: only INVITE is cancelled */
    for (size_t i = 0; i < r->nbranches; i++) {
        if (&r->branches[i] != except)
            branch_cancel(&r->branches[i]);
    }
}

/* ---- forwarding (RFC 3261 16.6) ---- */

/*
 * Once a branch has its final non-2xx answer, its client transaction has nothing
 * more for us (it sends the ACK itself, 17.1.1.3, and absorbs retransmissions):
 * it is detached, so that the branch slot can be reused by the next q group
 * while the transaction lingers in Completed.
 */
static void branch_detach(struct proxy_branch *b)
{
    if (b->client) {
        sip_tsx_set_arg(b->client, NULL);
        b->client = NULL;
    }
}

/* Marks a branch final with a status we made up (408 timeout, 503 transport). */
static void branch_fail(struct proxy_branch *b, unsigned status)
{
    branch_detach(b);
    if (b->final)
        return;
    b->final = true;
    b->status = status;
}

static void branch_send(struct proxy_branch *b)
{
    struct proxy_req *r = b->req;
    struct sip_proxy *p = r->p;
    const struct sip_self_addr *me = &p->cfg.self->addrs[0];
    struct sip_msg m;
    struct sip_fwd f;
    struct p2p_buf out;
    char via[256], rr[384], branch[SIP_BRANCH_LEN + 1], host[64];
    int rc;

    if (b->cancel_pending || r->stop) {
        branch_fail(b, 487); /* cancelled before it was ever sent */
        return;
    }
    if (req_parse(r, &m) != 0 || sip_branch_new(branch, sizeof(branch)) < 0) {
        branch_fail(b, 500);
        return;
    }
    memset(&f, 0, sizeof(f));
    /* 16.6 step 8: Via with a branch = cookie + loop hash + "." + unique part. */
    if (b->dest.overlay && p->cfg.self->node_host[0] != '\0')
        /* Toward another node we are our node name: a 2xx retransmission forwarded
         * statelessly by that Via finds its way back over the overlay (node_dest). */
        snprintf(via, sizeof(via), "SIP/2.0/%s %s;branch=z9hG4bK%s.%s;rport",
                 transport_name(b->dest.transport), p->cfg.self->node_host, r->loop_hash,
                 branch + 7);
    else
        snprintf(via, sizeof(via), "SIP/2.0/%s %s:%u;branch=z9hG4bK%s.%s;rport",
                 transport_name(b->dest.transport), me->host, me->port, r->loop_hash, branch + 7);
    f.via = p2p_slice_cstr(via);
    f.ruri = p2p_slice_cstr(b->target); /* 16.6 step 2 */
    if (r->record_route) {
        /* 16.6 step 4: Record-Route with our address, loose routing (lr).  Between a
         * phone and another node we are known by two names (our phones reach us at
         * addrs[0], which every node shares: 127.0.0.1; other nodes by node_host):
         * double Record-Route (RFC 5658 4.1), the name facing the next hop on top. */
        const char *node = p->cfg.self->node_host;
        if (node[0] != '\0' && b->dest.overlay != r->src.overlay) {
            if (b->dest.overlay)
                snprintf(rr, sizeof(rr), "<sip:%s;lr>, <sip:%s:%u;lr>", node, me->host, me->port);
            else
                snprintf(rr, sizeof(rr), "<sip:%s:%u;lr>, <sip:%s;lr>", me->host, me->port, node);
        } else if (node[0] != '\0' && b->dest.overlay) {
            snprintf(rr, sizeof(rr), "<sip:%s;lr>", node);
        } else {
            snprintf(rr, sizeof(rr), "<sip:%s:%u;lr>", me->host, me->port);
        }
        f.record_route = p2p_slice_cstr(rr);
    }
    f.pop_routes = r->pop_routes; /* 16.4 */
    if (src_of(&r->src, host, sizeof(host), &f.src) != 0)
        memset(&f.src, 0, sizeof(f.src));
    p2p_buf_init(&out, MSG_CAP);
    rc = sip_build_forward(&m, &f, &out);
    if (rc == 0)
        rc = sip_tsx_client_new(p->tsx, &b->client, out.data, out.len, &b->dest, b, p->now);
    p2p_buf_free(&out);
    if (rc != 0) {
        b->client = NULL;
        branch_fail(b, 503); /* 16.7 step 2-ish: could not reach it */
    }
}

static void resolved(int status, const struct sip_tsx_dest *dest, void *arg)
{
    struct proxy_branch *b = arg;
    struct proxy_req *r = b->req;

    clock_now(r->p);
    b->resolving = false;
    if (status != 0) {
        branch_fail(b, status == -ECANCELED ? 500 : 503);
    } else {
        b->dest = *dest;
        branch_send(b);
    }
    check_done(r);
    req_release(r);
}

/* True for loopback, RFC 1918, link-local and IPv6 unique-local addresses. */
static bool is_private(const struct sip_tsx_dest *d)
{
    if (d->addr.ss_family == AF_INET) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)&d->addr)->sin_addr;
        return a[0] == 10 || a[0] == 127 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
               (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254);
    }
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&d->addr)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a6) || IN6_IS_ADDR_LINKLOCAL(a6) || (a6->s6_addr[0] & 0xfe) == 0xfc;
}

static bool same_host(const struct sip_tsx_dest *x, const struct sip_tsx_dest *y)
{
    if (x->addr.ss_family != y->addr.ss_family)
        return false;
    if (x->addr.ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)&x->addr)->sin_addr,
                      &((const struct sockaddr_in *)&y->addr)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)&x->addr)->sin6_addr,
                  &((const struct sockaddr_in6 *)&y->addr)->sin6_addr, 16) == 0;
}

/*
 * Where to send a request for a registered contact: the address its REGISTER came
 * from (the path), or the Contact URI itself.  Over TCP/TLS the path, to reuse the
 * phone's connection (its Contact port rarely listens).  Over UDP the path only
 * when the Contact looks unreachable from here: a name, or a private address that
 * is not the source's (a phone behind NAT, RFC 3581); otherwise the Contact, so
 * that a third party may register a contact other than its own address (a device
 * on the same host with another port, a public address).
 */
static bool prefer_path(const struct sip_path *path, const char *uri)
{
    struct sip_tsx_dest src, contact;
    struct sip_uri u;

    if (!path->host[0])
        return false;
    if (!p2p_slice_caseeq_cstr(p2p_slice_cstr(path->transport), "UDP"))
        return true;
    if (sip_proxy_numeric_dest(p2p_slice_cstr(path->host), path->port, P2P_SLICE_LIT("udp"), 0,
                               &src) != 0)
        return false;
    if (sip_uri_parse(p2p_slice_cstr(uri), &u) != 0 ||
        sip_proxy_numeric_dest(u.maddr.p ? u.maddr : u.host, u.port, P2P_SLICE_LIT("udp"), 0,
                               &contact) != 0)
        return true;
    if (same_host(&src, &contact))
        return false;
    return is_private(&contact);
}

/* Finds where the branch goes, then sends it (now or when resolved). */
static void branch_start(struct proxy_branch *b)
{
    struct proxy_req *r = b->req;
    struct sip_proxy *p = r->p;
    struct sip_uri u;

    if (prefer_path(&b->path, b->hop)) {
        /* the registered phone's own path (RFC 3581 received/rport, connection) */
        if (sip_proxy_numeric_dest(p2p_slice_cstr(b->path.host), b->path.port,
                                   p2p_slice_cstr(b->path.transport), b->path.conn_id,
                                   &b->dest) != 0) {
            branch_fail(b, 503);
            return;
        }
        branch_send(b);
        return;
    }
    if (sip_uri_parse(p2p_slice_cstr(b->hop), &u) != 0 || u.scheme == SIP_URI_TEL) {
        branch_fail(b, 416);
        return;
    }
    /* RFC 3263 4.1/4.2: maddr if any, else the host; a numeric one needs no lookup. */
    struct p2p_slice host = u.maddr.p ? u.maddr : u.host;
    struct p2p_slice tp = u.transport.p ? u.transport : (struct p2p_slice){NULL, 0};
    if (u.scheme == SIP_URI_SIPS && !u.transport.p)
        tp = P2P_SLICE_LIT("tls");
    if (sip_proxy_numeric_dest(host, u.port, tp, 0, &b->dest) == 0) {
        branch_send(b);
        return;
    }
    /* Another node of the overlay: reached over a pipe, no DNS. */
    if (node_dest(p, host, &b->dest) == 0) {
        branch_send(b);
        return;
    }
    if (!p->cfg.resolver.resolve ||
        p->cfg.resolver.resolve(p->cfg.resolver.ctx, b->hop, resolved, b) != 0) {
        branch_fail(b, 503);
        return;
    }
    b->resolving = true;
}

static struct proxy_branch *branch_add(struct proxy_req *r, const char *target, const char *hop,
                                       const struct sip_path *path)
{
    struct proxy_branch *b = &r->branches[r->nbranches++];

    memset(b, 0, sizeof(*b));
    b->kind = ARG_BRANCH;
    b->req = r;
    snprintf(b->target, sizeof(b->target), "%s", target);
    snprintf(b->hop, sizeof(b->hop), "%s", hop);
    if (path)
        b->path = *path;
    return b;
}

/* 16.6: forks to the next group of targets sharing the highest remaining q. */
static void start_group(struct proxy_req *r)
{
    uint16_t q;

    branches_clear(r);
    if (r->next_target >= r->ntargets)
        return;
    q = r->targets[r->next_target].q;
    r->starting = true;
    while (r->next_target < r->ntargets && r->targets[r->next_target].q == q &&
           r->nbranches < r->p->cfg.max_branches) {
        struct proxy_target *t = &r->targets[r->next_target++];
        struct proxy_branch *b = branch_add(r, t->uri, t->hop[0] ? t->hop : t->uri, &t->path);
        branch_start(b);
    }
    /* a group larger than max_branches: the rest is not tried (kept bounded) */
    while (r->next_target < r->ntargets && r->targets[r->next_target].q == q)
        r->next_target++;
    r->starting = false;
}

/* ---- responses (RFC 3261 16.7) ---- */

/* 16.7 step 6: lower is better. 6xx first, then the lowest class; in 4xx, the
 * answers a UA can act on (401, 407, 415, 420, 484) before the others. */
static int rank(unsigned s)
{
    if (s >= 600)
        return 0;
    if (s >= 300 && s < 400)
        return 10;
    if (s == 401 || s == 407 || s == 415 || s == 420 || s == 484)
        return 20;
    if (s >= 400 && s < 500)
        return 21;
    return 30;
}

/* Appends the challenge lines of a 401/407 to r->auth (16.7 step 7). */
static void collect_auth(struct proxy_req *r, const struct sip_msg *resp)
{
    if (resp->status != 401 && resp->status != 407)
        return;
    (void)sip__proxy_copy_lines(resp, SIP_HDR_WWW_AUTHENTICATE, &r->auth);
    (void)sip__proxy_copy_lines(resp, SIP_HDR_PROXY_AUTHENTICATE, &r->auth);
}

/* Sends a response received from downstream upstream, without our Via. */
static void forward_response(struct proxy_req *r, const struct sip_msg *resp, struct p2p_slice add)
{
    struct p2p_buf out;

    if (!r->server)
        return;
    p2p_buf_init(&out, MSG_CAP);
    if (sip__proxy_strip_via(resp, add, &out) == 0)
        (void)sip_tsx_server_respond(r->server, out.data, out.len, r->p->now);
    p2p_buf_free(&out);
}

/* Every branch of the group is final: next group, or the best answer upstream. */
static void check_done(struct proxy_req *r)
{
    struct sip_msg best;

    if (r->starting || r->lookup_pending || r->final_sent)
        return;
    for (size_t i = 0; i < r->nbranches; i++) {
        if (!r->branches[i].final)
            return;
    }
    /* fold this group's answers into the best so far */
    for (size_t i = 0; i < r->nbranches; i++) {
        struct proxy_branch *b = &r->branches[i];
        if (r->best_status == 0 || rank(b->status) < rank(r->best_status)) {
            if (r->best) {
                struct sip_msg old;
                if (sip_msg_parse(&old, r->best, r->best_len, SIP_MSG_DGRAM, NULL) > 0)
                    collect_auth(r, &old);
            }
            free(r->best);
            r->best = b->resp;
            r->best_len = b->resp_len;
            r->best_status = b->status;
            b->resp = NULL;
        } else if (b->resp) {
            struct sip_msg m;
            if (sip_msg_parse(&m, b->resp, b->resp_len, SIP_MSG_DGRAM, NULL) > 0)
                collect_auth(r, &m);
        }
    }
    if (!r->stop && r->next_target < r->ntargets) {
        start_group(r);
        if (r->nbranches > 0) {
            check_done(r); /* a group may fail synchronously */
            return;
        }
    }
    if (r->cancelled && (r->best_status == 0 || !r->best)) {
        req_respond(r, 487, NULL, NULL); /* 16.10: nothing answered downstream */
        return;
    }
    if (r->best_status == 0) {
        req_respond(r, 408, NULL, NULL); /* 16.7 step 6: no response at all */
        return;
    }
    if (!r->best) {
        /* synthesised: 408 (timeout), 503 -> 500 (16.7 step 6), 487, ... */
        req_respond(r, r->best_status == 503 ? 500 : r->best_status, NULL, NULL);
        return;
    }
    if (sip_msg_parse(&best, r->best, r->best_len, SIP_MSG_DGRAM, NULL) <= 0) {
        req_respond(r, 500, NULL, NULL);
        return;
    }
    if (best.status == 503) {
        /* 16.7 step 6: a 503 downstream must not make the UA think we are down */
        req_respond(r, 500, NULL, NULL);
        return;
    }
    r->final_sent = true;
    forward_response(r, &best,
                     (best.status == 401 || best.status == 407)
                         ? (struct p2p_slice){r->auth.data, r->auth.len}
                         : (struct p2p_slice){NULL, 0});
}

static void on_branch_response(struct proxy_branch *b, const struct sip_msg *msg,
                               struct p2p_slice raw)
{
    struct proxy_req *r = b->req;
    unsigned s = msg->status;

    if (s < 200) {
        b->got_provisional = true;
        if (b->cancel_pending)
            branch_cancel(b); /* 9.1: now a CANCEL may go */
        /* 16.7 step 5: provisional responses other than 100 go upstream */
        if (s > 100 && !r->final_sent)
            forward_response(r, msg, (struct p2p_slice){NULL, 0});
        return;
    }
    if (s < 300) {
        /* 16.7 step 5/10: every 2xx goes upstream at once; for an INVITE, the other
         * branches are cancelled (16.7 step 10 "MUST cancel all other pending"). */
        if (!r->final_sent || r->is_invite)
            forward_response(r, msg, (struct p2p_slice){NULL, 0});
        r->final_sent = true;
        if (!b->final) {
            b->final = true;
            b->status = s;
        }
        if (!r->is_invite)
            branch_detach(b); /* only an INVITE sees further 2xx (forking UAS) */
        cancel_others(r, b);
        return;
    }
    if (b->final)
        return;
    b->final = true;
    b->status = s;
    branch_detach(b);
    b->resp = malloc(raw.len);
    if (b->resp) {
        memcpy(b->resp, raw.p, raw.len);
        b->resp_len = raw.len;
    }
    if (s >= 600)
        cancel_others(r, b); /* 16.7 step 5: a 6xx ends the search */
    check_done(r);
}

/* ---- request processing ---- */

/* The locator kept a MESSAGE for an offline AoR (or could not). */
static void keep_done(int status, void *arg)
{
    struct proxy_req *r = arg;

    clock_now(r->p);
    r->lookup_pending = false;
    if (r->final_sent || !r->server || status == -ECANCELED) {
        req_release(r);
        return;
    }
    if (status == 0)
        req_respond(r, 202, "Accepted - kept for the user", NULL);
    else if (status == -ENOENT)
        req_respond(r, 404, NULL, NULL);
    else if (status == -EMSGSIZE)
        req_respond(r, 513, NULL, NULL);
    else
        req_respond(r, 480, NULL, NULL);
    req_release(r);
}

/* No phone to send r to: a phone's MESSAGE may be kept for its AoR (sip_locator.h). */
static bool try_keep(struct proxy_req *r)
{
    const struct sip_locator *loc = &r->p->cfg.locator;

    if (r->keep_aor == NULL || loc->ops->keep == NULL)
        return false;
    r->lookup_pending = true;
    if (loc->ops->keep(loc->ctx, r->keep_aor, r->raw, r->req_len, keep_done, r) != 0) {
        r->lookup_pending = false;
        return false;
    }
    return true;
}

static void lookup_done(int status, const struct sip_binding *bs, size_t n, void *arg)
{
    struct proxy_req *r = arg;

    clock_now(r->p);
    r->lookup_pending = false;
    if (r->final_sent || !r->server || status == -ECANCELED) {
        req_release(r);
        return;
    }
    if ((status == -ENOENT || (status == 0 && n == 0)) && try_keep(r)) {
        ; /* keep_done answers */
    } else if (status == -ENOENT) {
        req_respond(r, 404, NULL, NULL); /* 16.5: unknown AoR */
    } else if (status < 0) {
        req_respond(r, 480, "Temporarily Unavailable - location service failed", NULL);
    } else if (n == 0) {
        req_respond(r, 480, NULL, NULL); /* known AoR, no live contact */
    } else {
        r->targets = calloc(n, sizeof(*r->targets));
        if (!r->targets) {
            req_respond(r, 500, NULL, NULL);
        } else {
            /* highest q first, stable (insertion sort of at most SIP_LOOKUP_MAX) */
            for (size_t i = 0; i < n && i < SIP_LOOKUP_MAX; i++) {
                size_t j;
                /* A request another node sent us is for our own phones: never back
                 * over the overlay (two nodes would bounce it between them). */
                if (r->src.overlay && bs[i].hop[0] != '\0')
                    continue;
                j = r->ntargets++;
                while (j > 0 && r->targets[j - 1].q < bs[i].q) {
                    r->targets[j] = r->targets[j - 1];
                    j--;
                }
                snprintf(r->targets[j].uri, sizeof(r->targets[j].uri), "%s", bs[i].contact);
                snprintf(r->targets[j].hop, sizeof(r->targets[j].hop), "%s", bs[i].hop);
                r->targets[j].path = bs[i].path;
                r->targets[j].q = bs[i].q;
            }
            if (r->ntargets == 0) {
                req_respond(r, 480, NULL, NULL); /* only other nodes: not for us */
            } else {
                start_group(r);
                check_done(r);
            }
        }
    }
    req_release(r);
}

/* CANCEL (RFC 3261 16.10): 200 to it, then cancel every pending branch. */
static void handle_cancel(struct sip_proxy *p, struct sip_tsx *t, const struct sip_msg *msg,
                          const struct sip_tsx_dest *src)
{
    struct sip_tsx *inv;
    struct proxy_req *r;

    if (sip_tsx_layer_match_cancel(p->tsx, msg, &inv) != 0) {
        respond(p, t, msg, src, 481, NULL, NULL);
        return;
    }
    respond(p, t, msg, src, 200, NULL, NULL);
    r = sip_tsx_arg(inv);
    if (!r || r->kind != ARG_REQ || r->final_sent)
        return;
    r->cancelled = true;
    if (r->lookup_pending) {
        req_respond(r, 487, NULL, NULL); /* nothing forwarded yet */
        if (p->cfg.locator.ops->cancel != NULL) {
            /* The lookup's answer is of no use now: drop it, free the request. */
            p->cfg.locator.ops->cancel(p->cfg.locator.ctx, r);
            r->lookup_pending = false;
            req_release(r);
        }
        return;
    }
    cancel_others(r, NULL);
    check_done(r);
    req_release(r);
}

/* ACK to a 2xx (16.11): forwarded statelessly by Route or Request-URI. */
static void forward_ack(struct sip_proxy *p, const struct sip_msg *msg,
                        const struct sip_tsx_dest *src)
{
    struct sip_hdr_iter it;
    struct p2p_slice v, hop = msg->ruri;
    struct sip_uri u;
    struct sip_addr a;
    struct sip_fwd f;
    struct sip_tsx_dest dest;
    struct p2p_buf out;
    char via[256], branch[SIP_BRANCH_LEN + 1], host[64];
    const struct sip_self_addr *me = &p->cfg.self->addrs[0];
    bool leading = true;
    uint32_t mf;
    const struct sip_hdr *mfh = sip_msg_hdr(msg, SIP_HDR_MAX_FORWARDS);

    if (mfh && (sip_uint_parse(mfh->value, 255, &mf) != 0 || mf == 0))
        return; /* 16.3 step 3: an ACK gets no 483 */
    memset(&f, 0, sizeof(f));
    sip_hdr_iter_init(&it, msg, SIP_HDR_ROUTE);
    while (sip_hdr_iter_next(&it, &v)) {
        if (sip_addr_parse(v, &a) != 0 || sip_uri_parse(a.uri, &u) != 0)
            return;
        if (leading && sip_self_is_me(p->cfg.self, u.host, u.port)) {
            f.pop_routes++; /* 16.4: our own Route (two after a double Record-Route) */
            continue;
        }
        leading = false;
        hop = a.uri;
        break;
    }
    if (sip_uri_parse(hop, &u) != 0)
        return;
    if (sip_proxy_numeric_dest(u.maddr.p ? u.maddr : u.host, u.port,
                               u.transport.p ? u.transport : (struct p2p_slice){NULL, 0}, 0,
                               &dest) != 0 &&
        node_dest(p, u.host, &dest) != 0)
        return; /* no name resolution for a stateless ACK: dropped like a datagram */
    if (sip_self_is_me(p->cfg.self, u.host, u.port) || sip_branch_new(branch, sizeof(branch)) < 0)
        return;
    snprintf(via, sizeof(via), "SIP/2.0/%s %s:%u;branch=%s;rport", transport_name(dest.transport),
             me->host, me->port, branch);
    f.via = p2p_slice_cstr(via);
    if (src_of(src, host, sizeof(host), &f.src) != 0)
        memset(&f.src, 0, sizeof(f.src));
    p2p_buf_init(&out, MSG_CAP);
    if (sip_build_forward(msg, &f, &out) == 0)
        (void)p->cfg.send(out.data, out.len, &dest, p->cfg.send_arg);
    p2p_buf_free(&out);
}

static bool is_dialog_creating(const struct sip_msg *m)
{
    return method_is(m, "INVITE") || method_is(m, "SUBSCRIBE") || method_is(m, "REFER");
}

/* Unsupported: the Proxy-Require values (16.3 step 5). */
static void refuse_proxy_require(struct sip_proxy *p, struct sip_tsx *t, const struct sip_msg *m,
                                 const struct sip_tsx_dest *src)
{
    struct p2p_buf ex;

    p2p_buf_init(&ex, 4096);
    for (size_t i = 0; i < m->nhdrs; i++) {
        if (m->hdrs[i].id == SIP_HDR_PROXY_REQUIRE)
            (void)p2p_buf_printf(&ex, "Unsupported: %.*s\r\n", (int)m->hdrs[i].value.len,
                                 m->hdrs[i].value.p);
    }
    (void)p2p_buf_append(&ex, "", 1);
    respond(p, t, m, src, 420, NULL, ex.data);
    p2p_buf_free(&ex);
}

static void handle_request(struct sip_proxy *p, struct sip_tsx *t, const struct sip_msg *msg0,
                           struct p2p_slice raw0, const struct sip_tsx_dest *src)
{
    struct sip_msg msgbuf;
    const struct sip_msg *msg = msg0;
    struct p2p_slice raw = raw0;
    struct p2p_buf fixed;
    struct sip_uri ruri;
    struct sip_addr to;
    char hash[LOOP_HASH_LEN + 1];
    const struct sip_hdr *h;
    struct sip_hdr_iter it;
    struct p2p_slice v, hop = {NULL, 0};
    size_t nroutes = 0;
    unsigned pops = 0;
    bool strict = false, in_dialog;
    struct proxy_req *r = NULL;
    uint32_t mf;
    int rc;

    p2p_buf_init(&fixed, MSG_CAP);
    if (!sip_msg_version_ok(msg)) {
        respond(p, t, msg, src, 505, NULL, NULL);
        goto out;
    }
    /* 16.3 step 2: URI scheme */
    rc = sip_uri_parse(msg->ruri, &ruri);
    if (rc == -EPROTONOSUPPORT) {
        respond(p, t, msg, src, 416, NULL, NULL);
        goto out;
    }
    if (rc != 0) {
        respond(p, t, msg, src, 400, "Bad Request - Request-URI", NULL);
        goto out;
    }
    /* 16.3 step 3: Max-Forwards */
    h = sip_msg_hdr(msg, SIP_HDR_MAX_FORWARDS);
    if (h && sip_uint_parse(h->value, 255, &mf) == 0 && mf == 0) {
        if (method_is(msg, "OPTIONS") && ruri.user.len == 0 &&
            sip_self_is_me(p->cfg.self, ruri.host, ruri.port))
            respond(p, t, msg, src, 200, NULL, NULL); /* we are the final recipient */
        else
            respond(p, t, msg, src, 483, NULL, NULL);
        goto out;
    }
    /* 16.3 step 4: loop detection */
    loop_hash(p, msg, hash);
    if (looped(p, msg, hash)) {
        respond(p, t, msg, src, 482, NULL, NULL);
        goto out;
    }
    /* 16.3 step 5: we support no extension a Proxy-Require could name */
    if (sip_msg_hdr(msg, SIP_HDR_PROXY_REQUIRE)) {
        refuse_proxy_require(p, t, msg, src);
        goto out;
    }
    if (p->nreqs >= p->cfg.max_requests) {
        respond(p, t, msg, src, 503, "Service Unavailable - too many requests",
                "Retry-After: 5\r\n");
        goto out;
    }
    /* 16.4: a Request-URI we put in a Record-Route means a strict router before
     * us: the real Request-URI is the last Route value. */
    if (ruri.user.len == 0 && sip_self_is_me(p->cfg.self, ruri.host, ruri.port) &&
        sip_msg_hdr(msg, SIP_HDR_ROUTE)) {
        struct p2p_slice last;
        if (sip__proxy_pop_last_route(msg, &last, &fixed) != 0) {
            respond(p, t, msg, src, 400, "Bad Request - Route", NULL);
            goto out;
        }
        /* The new Request-URI: the popped value, spliced at the start line. */
        struct p2p_buf tmp;
        p2p_buf_init(&tmp, MSG_CAP);
        rc = p2p_buf_printf(&tmp, "%.*s %.*s %.*s\r\n", (int)msg->method.len, msg->method.p,
                            (int)last.len, last.p, (int)msg->version.len, msg->version.p);
        if (rc == 0) {
            const char *eol = memchr(fixed.data, '\n', fixed.len);
            rc = eol ? p2p_buf_append(&tmp, eol + 1, fixed.len - (size_t)(eol + 1 - fixed.data))
                     : -EBADMSG;
        }
        p2p_buf_free(&fixed);
        fixed = tmp;
        if (rc != 0 || sip_msg_parse(&msgbuf, fixed.data, fixed.len, SIP_MSG_DGRAM, NULL) <= 0 ||
            sip_uri_parse(msgbuf.ruri, &ruri) != 0) {
            respond(p, t, msg, src, 400, "Bad Request - Route", NULL);
            goto out;
        }
        msg = &msgbuf;
        strict = true; /* we were in the route set, as a strict router saw it */
        raw = (struct p2p_slice){fixed.data, fixed.len};
    }
    /* 16.4: our own address on top of Route is removed; the next one is the hop. */
    sip_hdr_iter_init(&it, msg, SIP_HDR_ROUTE);
    while (sip_hdr_iter_next(&it, &v)) {
        struct sip_addr a;
        struct sip_uri u;
        if (sip_addr_parse(v, &a) != 0 || sip_uri_parse(a.uri, &u) != 0) {
            respond(p, t, msg, src, 400, "Bad Request - Route", NULL);
            goto out;
        }
        /* Every leading value of ours goes: two after our double Record-Route. */
        if (nroutes == 0 && sip_self_is_me(p->cfg.self, u.host, u.port)) {
            pops++;
            continue;
        }
        if (nroutes++ == 0)
            hop = a.uri;
    }
    in_dialog = sip_addr_parse(hdr_value(msg, SIP_HDR_TO), &to) == 0 && to.tag.p;

    /* REGISTER for a domain of ours: the registrar's (RFC 3261 10.3). */
    if (method_is(msg, "REGISTER") && p->reg && nroutes == 0 &&
        sip_self_is_domain(p->cfg.self, ruri.host, ruri.port)) {
        struct sip_path path;
        char host[64];
        struct sip_src s;
        memset(&path, 0, sizeof(path));
        if (src_of(src, host, sizeof(host), &s) == 0) {
            snprintf(path.host, sizeof(path.host), "%s", host);
            path.port = s.port;
        }
        snprintf(path.transport, sizeof(path.transport), "%s", transport_name(src->transport));
        path.conn_id = src->conn_id;
        sip_tsx_set_arg(t, &p->register_tag);
        if (sip_registrar_register(p->reg, msg, &path, t, p->now) != 0) {
            sip_tsx_set_arg(t, NULL);
            respond(p, t, msg, src, 500, NULL, NULL);
        }
        goto out;
    }
    /* A request for the proxy itself (no user, our address, no Route left). */
    if (nroutes == 0 && ruri.user.len == 0 && sip_self_is_me(p->cfg.self, ruri.host, ruri.port)) {
        if (method_is(msg, "OPTIONS"))
            respond(p, t, msg, src, 200, NULL,
                    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, "
                    "REFER, INFO, UPDATE, PRACK, REGISTER\r\n");
        else
            respond(p, t, msg, src, 404, NULL, NULL);
        goto out;
    }

    r = req_new(p, t, raw.p, raw.len, src);
    if (!r) {
        respond(p, t, msg, src, 500, NULL, NULL);
        goto out;
    }
    r->held = true; /* freed at the end of this function at the earliest */
    r->is_invite = method_is(msg, "INVITE");
    r->pop_routes = pops;
    r->record_route = p->cfg.record_route && is_dialog_creating(msg);
    memcpy(r->loop_hash, hash, sizeof(hash));

    /* Relaying policy: a request that names no domain of ours and did not come to
     * us as a member of its route set is someone else's.  In-dialog requests are
     * no exception: we Record-Route every dialog we are on, so theirs carry our
     * Route; a To tag alone must not make us an open relay. */
    if (pops == 0 && !strict && p->cfg.foreign != SIP_PROXY_FOREIGN_FORWARD &&
        !sip_self_is_domain(p->cfg.self, ruri.host, ruri.port)) {
        req_respond(r, p->cfg.foreign == SIP_PROXY_FOREIGN_403 ? 403 : 404,
                    p->cfg.foreign == SIP_PROXY_FOREIGN_403 ? "Forbidden - no relaying"
                                                            : "Not Found - domain not served here",
                    NULL);
    } else if (nroutes > 0) {
        /* 16.5/16.6 step 7: loose routing, the Request-URI stays, next hop = Route */
        char hopz[SIP_CONTACT_MAX];
        if (p2p_slice_copy(hop, hopz, sizeof(hopz)) != 0) {
            req_respond(r, 400, "Bad Request - Route too long", NULL);
            goto out;
        }
        r->starting = true;
        branch_start(branch_add(r, "", hopz, NULL));
        r->starting = false;
        check_done(r);
    } else if (!((pops > 0 || strict) && in_dialog) &&
               sip_self_is_domain(p->cfg.self, ruri.host, ruri.port)) {
        /* 16.5: a domain of ours: ask the location service.  Not for the last hop
         * of a dialog's route set, whose Request-URI is the remote target (a
         * Contact), whatever its host looks like. */
        char aor[SIP_AOR_MAX];
        struct sip_uri key = ruri;
        /* sip:bob@<our host>:<our port> (sipp's uac, some phones) means the AoR
         * sip:bob@<our host>, as kamailio takes it. */
        if (key.has_port && sip_self_is_me(p->cfg.self, key.host, key.port))
            key.has_port = false;
        if (sip_uri_aor(&key, aor, sizeof(aor)) < 0) {
            req_respond(r, 404, NULL, NULL);
            goto out;
        }
        if (p->cfg.locator.ops->keep != NULL && !src->overlay && method_is(msg, "MESSAGE"))
            r->keep_aor = strdup(aor); /* NULL: not kept, answered as before */
        r->lookup_pending = true;
        rc = p->cfg.locator.ops->lookup(p->cfg.locator.ctx, aor, lookup_done, r);
        if (rc != 0) {
            r->lookup_pending = false;
            req_respond(r, 480, "Temporarily Unavailable - location service busy", NULL);
        }
    } else {
        /* 16.5: not ours (or the last hop of a route set): the Request-URI is the
         * only target */
        char hopz[SIP_CONTACT_MAX];
        if (p2p_slice_copy(msg->ruri, hopz, sizeof(hopz)) != 0) {
            req_respond(r, 414, NULL, NULL);
            goto out;
        }
        r->starting = true;
        branch_start(branch_add(r, "", hopz, NULL));
        r->starting = false;
        check_done(r);
    }
out:
    if (r) {
        r->held = false;
        req_release(r); /* answered at once: nothing more to do */
    }
    p2p_buf_free(&fixed);
}

/* ---- keep-alive OPTIONS to registered UDP contacts ---- */

static void ka_free(struct proxy_ka *ka)
{
    p2p_list_remove(&ka->link);
    free(ka);
}

/* Where a request for registered binding b goes: its path when that is how the phone
 * is reached (prefer_path), else its contact, numeric only.  0 or -EINVAL. */
static int binding_dest(const struct sip_binding *b, struct sip_tsx_dest *dest)
{
    struct sip_uri u;

    if (prefer_path(&b->path, b->contact))
        return sip_proxy_numeric_dest(p2p_slice_cstr(b->path.host), b->path.port,
                                      p2p_slice_cstr(b->path.transport), b->path.conn_id, dest) == 0
                   ? 0
                   : -EINVAL;
    if (sip_uri_parse(p2p_slice_cstr(b->contact), &u) != 0 ||
        sip_proxy_numeric_dest(u.maddr.p ? u.maddr : u.host, u.port,
                               u.transport.p ? u.transport : P2P_SLICE_LIT("udp"), 0, dest) != 0)
        return -EINVAL;
    return 0;
}

static const char *dest_transport(const struct sip_tsx_dest *d)
{
    return d->transport == SIP_TSX_UDP ? "UDP" : d->transport == SIP_TSX_TLS ? "TLS" : "TCP";
}

static void ka_send(const struct sip_binding *b, void *arg)
{
    struct sip_proxy *p = arg;
    const struct sip_self_addr *me = &p->cfg.self->addrs[0];
    struct sip_tsx_dest dest;
    struct proxy_ka *ka;
    struct sip_tsx *t;
    struct p2p_buf out;
    char branch[SIP_BRANCH_LEN + 1], tag[SIP_BRANCH_LEN + 1];
    int rc;

    /* UDP bindings only (a TCP phone's connection is its keep-alive), at the
     * address requests for it go to */
    if (!p2p_slice_caseeq_cstr(p2p_slice_cstr(b->path.transport), "UDP") || !b->path.host[0])
        return;
    if (binding_dest(b, &dest) != 0 || dest.transport != SIP_TSX_UDP)
        return;
    if (sip_branch_new(branch, sizeof(branch)) < 0 || sip_branch_new(tag, sizeof(tag)) < 0)
        return;
    ka = calloc(1, sizeof(*ka));
    if (!ka)
        return;
    ka->kind = ARG_KEEPALIVE;
    snprintf(ka->aor, sizeof(ka->aor), "%s", b->aor);
    snprintf(ka->contact, sizeof(ka->contact), "%s", b->contact);
    p2p_buf_init(&out, MSG_CAP);
    rc = p2p_buf_printf(&out,
                        "OPTIONS %s SIP/2.0\r\n"
                        "Via: SIP/2.0/UDP %s:%u;branch=%s;rport\r\n"
                        "Max-Forwards: 70\r\n"
                        "From: <sip:%s:%u>;tag=%s\r\n"
                        "To: <%s>\r\n"
                        "Call-ID: %s\r\n"
                        "CSeq: 1 OPTIONS\r\n"
                        "Content-Length: 0\r\n\r\n",
                        b->contact, me->host, me->port, branch, me->host, me->port, tag + 7,
                        b->contact, branch + 7);
    if (rc == 0)
        rc = sip_tsx_client_new(p->tsx, &t, out.data, out.len, &dest, ka, p->now);
    p2p_buf_free(&out);
    if (rc != 0) {
        free(ka);
        return;
    }
    p2p_list_push_front(&p->kas, &ka->link);
}

/* No answer at all: the phone is gone (only with keepalive_remove). */
static void ka_failed(struct sip_proxy *p, struct proxy_ka *ka)
{
    if (p->cfg.keepalive_remove && p->reg)
        (void)sip_registrar_remove(p->reg, ka->aor, ka->contact);
}

/* ---- requests the daemon makes: a stored MESSAGE handed to this node's phones ---- */

static void dlv_leg_done(struct sip_proxy *p, struct proxy_dlv *d)
{
    (void)p;
    if (d->legs > 0)
        d->legs--;
    if (d->legs > 0)
        return;
    p2p_list_remove(&d->link);
    if (d->cb != NULL)
        d->cb(d->best != 0 ? (int)d->best : 408, d->arg);
    free(d);
}

static void dlv_status(struct proxy_dlv *d, unsigned status)
{
    bool ok = status >= 200 && status < 300, best_ok = d->best >= 200 && d->best < 300;

    if (d->best == 0 || (ok && !best_ok) || (!ok && !best_ok && status < d->best))
        d->best = status;
}

int sip_proxy_deliver_message(struct sip_proxy *p, const char *aor, const char *from,
                              const char *content_type, const uint8_t *body, size_t len,
                              sip_proxy_deliver_cb cb, void *arg, uint64_t now_ms)
{
    struct sip_binding *bs;
    struct proxy_dlv *d;
    int n;

    p->now = now_ms;
    if (!p->reg || cb == NULL)
        return -EINVAL;
    if (len > MSG_CAP / 2)
        return -EMSGSIZE;
    bs = calloc(SIP_LOOKUP_MAX, sizeof(*bs));
    d = calloc(1, sizeof(*d));
    if (bs == NULL || d == NULL) {
        free(bs);
        free(d);
        return -ENOMEM;
    }
    d->kind = ARG_DELIVER;
    d->cb = cb;
    d->arg = arg;
    n = sip_registrar_lookup(p->reg, aor, now_ms, bs, SIP_LOOKUP_MAX);
    for (int i = 0; i < n; i++) {
        const struct sip_self_addr *me = &p->cfg.self->addrs[0];
        struct sip_tsx_dest dest;
        struct sip_tsx *t;
        struct p2p_buf out;
        char branch[SIP_BRANCH_LEN + 1], tag[SIP_BRANCH_LEN + 1];
        int rc;

        if (binding_dest(&bs[i], &dest) != 0 || sip_branch_new(branch, sizeof(branch)) < 0 ||
            sip_branch_new(tag, sizeof(tag)) < 0)
            continue;
        p2p_buf_init(&out, MSG_CAP);
        rc = p2p_buf_printf(&out,
                            "MESSAGE %s SIP/2.0\r\n"
                            "Via: SIP/2.0/%s %s:%u;branch=%s;rport\r\n"
                            "Max-Forwards: 70\r\n"
                            "From: %s;tag=%s\r\n"
                            "To: <%s>\r\n"
                            "Call-ID: %s\r\n"
                            "CSeq: 1 MESSAGE\r\n"
                            "Content-Type: %s\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            bs[i].contact, dest_transport(&dest), me->host, me->port, branch, from,
                            tag + 7, aor, branch + 7, content_type, len);
        if (rc == 0)
            rc = p2p_buf_append(&out, body, len);
        if (rc == 0)
            rc = sip_tsx_client_new(p->tsx, &t, out.data, out.len, &dest, d, p->now);
        p2p_buf_free(&out);
        if (rc == 0)
            d->legs++;
    }
    free(bs);
    if (d->legs == 0) {
        free(d);
        return n > 0 ? -EHOSTUNREACH : -ENOENT;
    }
    p2p_list_push_front(&p->dlvs, &d->link);
    return 0;
}

void sip_proxy_deliver_cancel(struct sip_proxy *p, void *arg)
{
    struct p2p_list *it;

    P2P_LIST_FOREACH(it, &p->dlvs)
    {
        struct proxy_dlv *d = P2P_LIST_ENTRY(it, struct proxy_dlv, link);
        if (d->arg == arg)
            d->cb = NULL;
    }
}

/* ---- transaction layer callbacks ---- */

/*
 * RFC 6026 7.2: a 2xx retransmission reaching an INVITE client transaction in
 * Accepted after the request context was freed.  Sent upstream without our Via,
 * to the next Via (16.11 as for a stateless proxy, 18.2.2: received, RFC 3581
 * rport), so the caller still gets it if the first copy was lost.
 */
static void forward_2xx_stateless(struct sip_proxy *p, const struct sip_msg *resp)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;
    struct sip_via via;
    struct sip_tsx_dest dest;
    struct p2p_buf out;
    int n = 0;

    sip_hdr_iter_init(&it, resp, SIP_HDR_VIA);
    while (n < 2 && sip_hdr_iter_next(&it, &v))
        n++;
    if (n < 2 || sip_via_parse(v, &via) != 0)
        return;
    if (sip_proxy_numeric_dest(via.received.p ? via.received : via.host,
                               via.rport_value ? via.rport_value : via.port, via.transport, 0,
                               &dest) != 0 &&
        node_dest(p, via.host, &dest) != 0)
        return; /* no upstream hop we can reach without a lookup: dropped */
    p2p_buf_init(&out, MSG_CAP);
    if (sip__proxy_strip_via(resp, (struct p2p_slice){NULL, 0}, &out) == 0)
        (void)p->cfg.send(out.data, out.len, &dest, p->cfg.send_arg);
    p2p_buf_free(&out);
}

static void on_request(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                       const struct sip_tsx_dest *src, void *arg)
{
    struct sip_proxy *p = arg;

    if (!t) {
        if (method_is(msg, "ACK"))
            forward_ack(p, msg, src);
        return;
    }
    sip_tsx_set_arg(t, NULL);
    if (method_is(msg, "CANCEL"))
        handle_cancel(p, t, msg, src);
    else
        handle_request(p, t, msg, raw, src);
}

static void on_response(struct sip_tsx *t, const struct sip_msg *msg, struct p2p_slice raw,
                        const struct sip_tsx_dest *src, void *arg)
{
    enum arg_kind *k;

    (void)src;
    if (!t) /* RFC 6026 8.4: a stateful proxy drops stray responses */
        return;
    k = sip_tsx_arg(t);
    if (!k && sip_tsx_is_client(t) && sip_tsx_is_invite(t) && msg->status >= 200 &&
        msg->status < 300) {
        forward_2xx_stateless(arg, msg); /* its request context is gone */
        return;
    }
    if (k && *k == ARG_DELIVER && msg->status >= 200) {
        dlv_status((struct proxy_dlv *)k, msg->status);
        return;
    }
    if (k && *k == ARG_BRANCH) {
        struct proxy_req *r = ((struct proxy_branch *)k)->req;
        on_branch_response((struct proxy_branch *)k, msg, raw);
        req_release(r); /* the branch may have been detached: maybe the last user */
    }
}

static void on_timeout(struct sip_tsx *t, enum sip_tsx_timeout why, void *arg)
{
    enum arg_kind *k = sip_tsx_arg(t);
    struct proxy_branch *b;

    if (k && *k == ARG_KEEPALIVE && why == SIP_TSX_TIMEOUT_RESPONSE)
        ka_failed(arg, (struct proxy_ka *)k);
    if (!k || *k != ARG_BRANCH)
        return;
    b = (struct proxy_branch *)k;
    if (why == SIP_TSX_TIMEOUT_C) {
        /* 16.8: Timer C fired in Proceeding: CANCEL the branch */
        branch_cancel(b);
        return;
    }
    branch_fail(b, 408); /* 16.7 step 2: as if a 408 had arrived */
    check_done(b->req);
    req_release(b->req);
}

static void on_transport_error(struct sip_tsx *t, int err, void *arg)
{
    enum arg_kind *k = sip_tsx_arg(t);
    struct proxy_branch *b;

    (void)err;
    if (k && *k == ARG_KEEPALIVE)
        ka_failed(arg, (struct proxy_ka *)k);
    if (!k || *k != ARG_BRANCH)
        return;
    b = (struct proxy_branch *)k;
    /* 16.7 step 2 / RFC 3263: the target is unreachable.  Another node of the
     * overlay that is gone: its user is temporarily unavailable (a 503 would go
     * upstream as 500, 16.7 step 6). */
    branch_fail(b, b->dest.overlay ? 480 : 503);
    check_done(b->req);
    req_release(b->req);
}

static void on_terminated(struct sip_tsx *t, void *arg)
{
    struct sip_proxy *p = arg;
    enum arg_kind *k = sip_tsx_arg(t);

    if (!k)
        return;
    if (k == &p->register_tag) {
        if (p->reg)
            sip_registrar_forget(p->reg, t);
        return;
    }
    if (*k == ARG_KEEPALIVE) {
        ka_free((struct proxy_ka *)k);
    } else if (*k == ARG_DELIVER) {
        dlv_leg_done(p, (struct proxy_dlv *)k); /* no final response: 408 */
    } else if (*k == ARG_REQ) {
        struct proxy_req *r = (struct proxy_req *)k;
        r->server = NULL;
        req_release(r);
    } else if (*k == ARG_BRANCH) {
        struct proxy_branch *b = (struct proxy_branch *)k;
        struct proxy_req *r = b->req;
        b->client = NULL;
        if (!b->final) {
            branch_fail(b, 408);
            check_done(r);
        }
        req_release(r);
    }
}

/* The layer passes its one arg (the proxy) to send as well: unwrap it. */
static int proxy_send(const char *bytes, size_t len, const struct sip_tsx_dest *dest, void *arg)
{
    struct sip_proxy *p = arg;
    return p->cfg.send(bytes, len, dest, p->cfg.send_arg);
}

/* ---- public API ---- */

void sip_proxy_config_default(struct sip_proxy_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    sip_tsx_config_default(&cfg->tsx);
    cfg->tsx.trying_at_once = true; /* 16.2: a proxy may send 100 at once */
    cfg->tsx.timer_c_ms = 200000;   /* 16.6 step 11: > 3 minutes */
    cfg->foreign = SIP_PROXY_FOREIGN_404;
    cfg->record_route = true;
    cfg->max_branches = 8;
    cfg->max_requests = 10000;
    /* Transactions linger up to 64*T1 after their request context is freed: an
     * INVITE and a BYE make 2 server + 2 client transactions, 3 of which linger
     * 32 s (L, M, J; K is T4).  2^18 holds 2,000 calls/s (about 200,000). */
    cfg->tsx.max_tsx = 1u << 18;
}

int sip_proxy_new(struct sip_proxy **out, const struct sip_proxy_config *cfg)
{
    struct sip_proxy *p;
    struct sip_tsx_ops ops;
    char branch[SIP_BRANCH_LEN + 1];
    int rc;

    if (!cfg->send || !cfg->locator.ops || !cfg->locator.ops->lookup || !cfg->self ||
        cfg->self->naddrs == 0 || cfg->max_branches == 0 || cfg->max_branches > SIP_LOOKUP_MAX ||
        cfg->max_requests == 0)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->cfg = *cfg;
    p->register_tag = ARG_REGISTER;
    p2p_list_init(&p->reqs);
    p2p_list_init(&p->kas);
    p2p_list_init(&p->dlvs);
    memset(&ops, 0, sizeof(ops));
    ops.send = proxy_send;
    ops.on_request = on_request;
    ops.on_response = on_response;
    ops.on_timeout = on_timeout;
    ops.on_transport_error = on_transport_error;
    ops.on_terminated = on_terminated;
    ops.arg = p;
    rc = sip_branch_new(branch, sizeof(branch));
    if (rc < 0) {
        free(p);
        return -EIO;
    }
    memcpy(p->to_tag, branch + 7, SIP_BRANCH_LEN - 7);
    p->to_tag[SIP_BRANCH_LEN - 7] = '\0';
    for (int i = 7; i < SIP_BRANCH_LEN; i++)
        p->salt = p->salt * 131 + (unsigned char)branch[i];
    rc = sip_tsx_layer_new(&p->tsx, &cfg->tsx, &ops);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void sip_proxy_free(struct sip_proxy *p)
{
    if (!p)
        return;
    sip_tsx_layer_free(p->tsx);
    while (!p2p_list_empty(&p->kas))
        ka_free(P2P_LIST_ENTRY(p->kas.next, struct proxy_ka, link));
    while (!p2p_list_empty(&p->dlvs)) {
        struct proxy_dlv *d = P2P_LIST_ENTRY(p->dlvs.next, struct proxy_dlv, link);
        p2p_list_remove(&d->link);
        if (d->cb != NULL)
            d->cb(-ECANCELED, d->arg);
        free(d);
    }
    while (!p2p_list_empty(&p->reqs)) {
        struct proxy_req *r = P2P_LIST_ENTRY(p->reqs.next, struct proxy_req, link);
        r->server = NULL;
        r->lookup_pending = false;
        for (size_t i = 0; i < r->nbranches; i++) {
            r->branches[i].client = NULL;
            r->branches[i].resolving = false;
        }
        req_release(r);
    }
    free(p);
}

void sip_proxy_set_registrar(struct sip_proxy *p, struct sip_registrar *reg)
{
    p->reg = reg;
}

void sip_proxy_registrar_reply(void *txn, const char *msg, size_t len, void *arg)
{
    struct sip_proxy *p = arg;

    clock_now(p); /* the registrar answers from a publish completion */
    (void)sip_tsx_server_respond(txn, msg, len, p->now);
}

int sip_proxy_recv(struct sip_proxy *p, const char *buf, size_t len, const struct sip_tsx_dest *src,
                   uint64_t now_ms)
{
    struct sip_msg m;
    struct sip_parse_err err;
    int rc;

    p->now = now_ms;
    memset(&err, 0, sizeof(err));
    rc = sip_msg_parse(&m, buf, len, src->transport == SIP_TSX_UDP ? SIP_MSG_DGRAM : SIP_MSG_STREAM,
                       &err);
    if (rc > 0)
        rc = sip_msg_validate(&m, &err);
    else if (rc == 0 || rc == -EAGAIN)
        rc = -EBADMSG;
    else
        rc = rc == -EMSGSIZE ? -EMSGSIZE : -EBADMSG;
    if (rc < 0) {
        /* RFC 3261 8.2 / 16.3 step 1: a 400 naming the fault when we can answer */
        if (sip_msg_answerable(&m))
            respond(p, NULL, &m, src, rc == -EMSGSIZE ? 513 : 400, err.phrase, NULL);
        return rc;
    }
    rc = sip_tsx_layer_recv(p->tsx, &m, (struct p2p_slice){buf, len}, src, now_ms);
    if (rc == -ENOBUFS && m.is_request && !method_is(&m, "ACK")) {
        respond(p, NULL, &m, src, 503, "Service Unavailable - too many transactions",
                "Retry-After: 5\r\n");
        return 0;
    }
    return rc == -ENOBUFS ? 0 : rc;
}

void sip_proxy_advance(struct sip_proxy *p, uint64_t now_ms)
{
    p->now = now_ms;
    sip_tsx_layer_advance(p->tsx, now_ms);
    if (p->cfg.keepalive_ms && p->reg) {
        if (p->next_keepalive == 0) {
            p->next_keepalive = now_ms + p->cfg.keepalive_ms;
        } else if (now_ms >= p->next_keepalive) {
            p->next_keepalive = now_ms + p->cfg.keepalive_ms;
            sip_registrar_foreach(p->reg, ka_send, p);
        }
    }
}

uint64_t sip_proxy_next_deadline(const struct sip_proxy *p)
{
    uint64_t d = sip_tsx_layer_next_deadline(p->tsx);

    if (p->cfg.keepalive_ms && p->reg && p->next_keepalive && p->next_keepalive < d)
        d = p->next_keepalive;
    return d;
}

size_t sip_proxy_dest_failed(struct sip_proxy *p, uint64_t conn_id, int err, uint64_t now_ms)
{
    p->now = now_ms;
    return sip_tsx_layer_conn_failed(p->tsx, conn_id, err, now_ms);
}

size_t sip_proxy_requests(const struct sip_proxy *p)
{
    return p->nreqs;
}

struct sip_tsx_layer *sip_proxy_tsx(struct sip_proxy *p)
{
    return p->tsx;
}
