/*
 * sip_resolver.c: RFC 3263 server location for requests to domains that are not ours.
 *
 * Design.  The first half is pure: DNS answer packets (parsed with glibc's
 * ns_initparse/ns_parserr, names with dn_expand) become NAPTR and SRV lists ordered
 * as RFC 3403 and RFC 2782 say, and overlay_sip_resolver_plan() chains the queries of
 * RFC 3263 4.1/4.2 through a query function it is given.  The second half runs that
 * plan for a URI on a libuv loop: the URI rules first, on the loop thread (a numeric
 * target or a name with a port needs no NAPTR/SRV), then the plan in the thread pool
 * with res_nquery on a struct __res_state of its own, then uv_getaddrinfo on the
 * targets in order until one has an address.
 *
 * Invariants.  A struct resolution lives from resolve() until its answer was given
 * (cb NULL), no work or getaddrinfo request is in flight, and its timer handle is
 * closed; r->live counts them and is capped by max_pending.  Worker threads read only
 * the resolution's host/transport and the resolver's config, and write only the
 * resolution's plan result, which the loop thread reads after the work completes.
 * Once the answer is given nothing else about it reaches the caller.
 *
 * RFC 3263 4.1 (transport), 4.2 (port and address); RFC 3403 4.1 (NAPTR order and
 * preference); RFC 2782 (SRV usage rules: priority, weighted selection, ".").
 */
#define _DEFAULT_SOURCE /* res_ninit, res_nquery, ns_initparse, dn_expand */

#include "p2p/overlay_sip_resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "p2p/list.h"
#include "p2p/log.h"
#include "p2p/sip_uri.h"
#include "p2p/slice.h"

#define SIP_DEFAULT_PORT 5060 /* RFC 3263 4.2: the default port for sip URIs */
/* NAPTR replacements whose SRV records a plan asks for: each query may block for
 * seconds, and the first records are the ones RFC 3403 prefers. */
#define MAX_NAPTR_FOLLOWED 3

/* ---- pure part ---- */

/* Parses the header of answer and gives the number of answer records to read, capped
 * at OVERLAY_SIP_RESOLVER_MAX_RR; -ENOENT for NXDOMAIN or no answer, -EIO for another
 * error rcode. */
static int answer_init(const uint8_t *answer, size_t len, ns_msg *msg, size_t *nrr)
{
    size_t n;

    if (len > OVERLAY_SIP_RESOLVER_ANSWER_MAX || ns_initparse(answer, (int)len, msg) != 0)
        return -EBADMSG;
    if (ns_msg_getflag(*msg, ns_f_rcode) == ns_r_nxdomain)
        return -ENOENT;
    if (ns_msg_getflag(*msg, ns_f_rcode) != ns_r_noerror)
        return -EIO; /* SERVFAIL, REFUSED...: a failure, not "no such records" */
    n = ns_msg_count(*msg, ns_s_an);
    if (n == 0)
        return -ENOENT;
    *nrr = n > OVERLAY_SIP_RESOLVER_MAX_RR ? OVERLAY_SIP_RESOLVER_MAX_RR : n;
    return 0;
}

/* Reads a <character-string> (RFC 1035 3.3) at *pos within [.., end). */
static int read_charstr(const uint8_t **pos, const uint8_t *end, struct p2p_slice *out)
{
    const uint8_t *p = *pos;

    if (p >= end || (size_t)(end - p) < 1u + p[0])
        return -EBADMSG;
    out->p = (const char *)p + 1;
    out->len = p[0];
    *pos = p + 1 + p[0];
    return 0;
}

/* Expands the domain name at pos, which must end by end.  -EBADMSG, or -ENAMETOOLONG
 * when it does not fit in name (the record is skipped then). */
static int read_name(const ns_msg *msg, const uint8_t *pos, const uint8_t *end, char *name,
                     size_t size)
{
    int n;

    if (pos >= end)
        return -EBADMSG;
    n = dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), pos, name, (int)size);
    if (n < 0)
        return -ENAMETOOLONG; /* bad pointer or too long: either way, not a usable name */
    if (n > end - pos)
        return -EBADMSG;
    return 0;
}

int overlay_sip_naptr_parse(const uint8_t *answer, size_t len, unsigned transports,
                            struct overlay_sip_naptr *out, size_t max, size_t *count)
{
    struct overlay_sip_naptr found[OVERLAY_SIP_RESOLVER_MAX_RR];
    size_t nfound = 0, nrr, n = 0, seen = 0;
    ns_msg msg;
    int rc;

    rc = answer_init(answer, len, &msg, &nrr);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < nrr; i++) {
        struct overlay_sip_naptr *x = &found[nfound];
        struct p2p_slice flags, service, regexp;
        const uint8_t *p, *end;
        ns_rr rr;

        if (ns_parserr(&msg, ns_s_an, (int)i, &rr) != 0)
            return -EBADMSG;
        if (ns_rr_type(rr) != ns_t_naptr || ns_rr_class(rr) != ns_c_in)
            continue; /* a CNAME on the way, or something unasked for */
        seen++;
        p = ns_rr_rdata(rr);
        end = p + ns_rr_rdlen(rr);
        if (end - p < 4)
            return -EBADMSG;
        x->order = (uint16_t)(p[0] << 8 | p[1]);
        x->preference = (uint16_t)(p[2] << 8 | p[3]);
        p += 4;
        if (read_charstr(&p, end, &flags) != 0 || read_charstr(&p, end, &service) != 0 ||
            read_charstr(&p, end, &regexp) != 0)
            return -EBADMSG;
        rc = read_name(&msg, p, end, x->replacement, sizeof(x->replacement));
        if (rc == -EBADMSG)
            return rc;
        /* RFC 3263 4.1: the "S" flag leads to SRV; a regexp rewrite is not for SIP. */
        if (rc != 0 || !p2p_slice_caseeq_cstr(flags, "s") || regexp.len != 0 ||
            x->replacement[0] == '\0' || strcmp(x->replacement, ".") == 0)
            continue;
        /* RFC 3263 4.1: SIP+D2U, SIP+D2T (SIPS+D2T needs TLS, which we lack). */
        if (p2p_slice_caseeq_cstr(service, "SIP+D2U"))
            x->transport = SIP_TSX_UDP;
        else if (p2p_slice_caseeq_cstr(service, "SIP+D2T"))
            x->transport = SIP_TSX_TCP;
        else
            continue;
        if (!(transports & (1u << x->transport)))
            continue;
        nfound++;
    }
    if (seen == 0)
        return -ENOENT;
    if (nfound == 0)
        return -EPROTONOSUPPORT;
    /* RFC 3403 4.1: once a record matches, records of another Order are not used;
     * within the lowest Order, Preference says which first (stable insertion sort). */
    uint16_t lowest = found[0].order;
    for (size_t i = 1; i < nfound; i++)
        if (found[i].order < lowest)
            lowest = found[i].order;
    for (size_t i = 0; i < nfound; i++) {
        if (found[i].order != lowest)
            continue;
        struct overlay_sip_naptr x = found[i];
        size_t k = n++;
        while (k > 0 && found[k - 1].preference > x.preference) {
            found[k] = found[k - 1];
            k--;
        }
        found[k] = x;
    }
    if (n > max)
        n = max;
    memcpy(out, found, n * sizeof(found[0]));
    *count = n;
    return 0;
}

int overlay_sip_srv_parse(const uint8_t *answer, size_t len, overlay_sip_uniform_fn uniform,
                          void *uniform_arg, struct overlay_sip_srv *out, size_t max, size_t *count)
{
    struct overlay_sip_srv rrs[OVERLAY_SIP_RESOLVER_MAX_RR];
    size_t nrr, n = 0, seen = 0, written = 0;
    ns_msg msg;
    int rc;

    rc = answer_init(answer, len, &msg, &nrr);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < nrr; i++) {
        struct overlay_sip_srv *x = &rrs[n];
        const uint8_t *p, *end;
        ns_rr rr;

        if (ns_parserr(&msg, ns_s_an, (int)i, &rr) != 0)
            return -EBADMSG;
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in)
            continue;
        seen++;
        p = ns_rr_rdata(rr);
        end = p + ns_rr_rdlen(rr);
        if (end - p < 6)
            return -EBADMSG;
        x->priority = (uint16_t)(p[0] << 8 | p[1]);
        x->weight = (uint16_t)(p[2] << 8 | p[3]);
        x->port = (uint16_t)(p[4] << 8 | p[5]);
        rc = read_name(&msg, p + 6, end, x->target, sizeof(x->target));
        if (rc == -EBADMSG)
            return rc;
        /* RFC 2782: target "." means the service is decidedly not available. */
        if (rc != 0 || x->target[0] == '\0' || strcmp(x->target, ".") == 0)
            continue;
        n++;
    }
    if (seen == 0)
        return -ENOENT;
    if (n == 0)
        return -ECONNREFUSED;
    /* RFC 2782: lowest priority first (stable insertion sort)... */
    for (size_t i = 1; i < n; i++) {
        struct overlay_sip_srv x = rrs[i];
        size_t k = i;
        while (k > 0 && rrs[k - 1].priority > x.priority) {
            rrs[k] = rrs[k - 1];
            k--;
        }
        rrs[k] = x;
    }
    /* ... and within a priority, repeated weighted random selection. */
    for (size_t start = 0; start < n && written < max;) {
        size_t end = start;
        while (end < n && rrs[end].priority == rrs[start].priority)
            end++;
        while (start < end && written < max) {
            /* Weight-0 records go to the front of the running sum: the stable
             * partition keeps the answer's order otherwise. */
            size_t z = start;
            for (size_t i = start; i < end; i++) {
                if (rrs[i].weight == 0) {
                    struct overlay_sip_srv x = rrs[i];
                    memmove(&rrs[z + 1], &rrs[z], (i - z) * sizeof(rrs[0]));
                    rrs[z++] = x;
                }
            }
            uint32_t sum = 0, running = 0, pick;
            size_t chosen = end - 1;
            for (size_t i = start; i < end; i++)
                sum += rrs[i].weight;
            /* RFC 2782: a uniform random number between 0 and the sum, inclusive. */
            pick = uniform(sum + 1, uniform_arg) % (sum + 1);
            for (size_t i = start; i < end; i++) {
                running += rrs[i].weight;
                if (running >= pick) {
                    chosen = i;
                    break;
                }
            }
            out[written++] = rrs[chosen];
            /* The chosen record leaves the unordered set; keep the others' order. */
            memmove(&rrs[chosen], &rrs[chosen + 1], (n - chosen - 1) * sizeof(rrs[0]));
            n--;
            end--;
        }
        start = end;
    }
    *count = written;
    return 0;
}

/* Appends the SRV targets of one answer to the plan. */
static void add_srv_targets(const struct overlay_sip_srv *srv, size_t nsrv,
                            enum sip_tsx_transport transport, struct overlay_sip_target *out,
                            size_t max, size_t *n)
{
    for (size_t i = 0; i < nsrv && *n < max; i++) {
        struct overlay_sip_target *t = &out[(*n)++];
        t->transport = transport;
        t->port = srv[i].port;
        memcpy(t->host, srv[i].target, sizeof(t->host));
    }
}

/* Queries the SRV records of name and orders them. */
static int query_srv(const char *name, overlay_sip_dns_query_fn query, void *query_arg,
                     overlay_sip_uniform_fn uniform, void *uniform_arg, uint8_t *buf,
                     struct overlay_sip_srv *srv, size_t *nsrv)
{
    int len = query(name, ns_t_srv, buf, OVERLAY_SIP_RESOLVER_ANSWER_MAX, query_arg);

    if (len < 0)
        return len;
    return overlay_sip_srv_parse(buf, (size_t)len, uniform, uniform_arg, srv,
                                 OVERLAY_SIP_RESOLVER_MAX_RR, nsrv);
}

int overlay_sip_resolver_plan(const char *host, int transport, unsigned transports, bool prefer_udp,
                              overlay_sip_dns_query_fn query, void *query_arg,
                              overlay_sip_uniform_fn uniform, void *uniform_arg,
                              struct overlay_sip_target *out, size_t max, size_t *count)
{
    struct overlay_sip_naptr naptr[OVERLAY_SIP_RESOLVER_MAX_RR];
    struct overlay_sip_srv srv[OVERLAY_SIP_RESOLVER_MAX_RR];
    char name[OVERLAY_SIP_RESOLVER_NAME_MAX];
    enum sip_tsx_transport order[2], fallback;
    size_t n = 0, nnaptr = 0, nsrv, norder = 0;
    uint8_t *buf;
    int rc, err = -ENOENT;

    if (max > OVERLAY_SIP_RESOLVER_MAX_TARGETS)
        max = OVERLAY_SIP_RESOLVER_MAX_TARGETS;
    /* room for "_sip._udp." in front of the host */
    if (max == 0 || strlen(host) + 11 > sizeof(name) || host[0] == '\0')
        return -EINVAL;
    if (transport >= 0 && !(transports & (1u << transport)))
        return -EPROTONOSUPPORT;
    buf = malloc(OVERLAY_SIP_RESOLVER_ANSWER_MAX);
    if (buf == NULL)
        return -ENOMEM;

    if (transport < 0) {
        /* RFC 3263 4.1: NAPTR of the domain, for the transports we support. */
        int len = query(host, ns_t_naptr, buf, OVERLAY_SIP_RESOLVER_ANSWER_MAX, query_arg);
        rc = len < 0 ? len
                     : overlay_sip_naptr_parse(buf, (size_t)len, transports, naptr,
                                               OVERLAY_SIP_RESOLVER_MAX_RR, &nnaptr);
        if (rc != 0 && rc != -ENOENT)
            goto out; /* a DNS failure, or NAPTR records but none for UDP/TCP */
        if (rc == 0) {
            /* RFC 3263 4.2: SRV of each NAPTR replacement in turn. */
            for (size_t i = 0; i < nnaptr && i < MAX_NAPTR_FOLLOWED && n < max; i++) {
                rc = query_srv(naptr[i].replacement, query, query_arg, uniform, uniform_arg, buf,
                               srv, &nsrv);
                if (rc == 0)
                    add_srv_targets(srv, nsrv, naptr[i].transport, out, max, &n);
                else if (rc != -ENOENT)
                    err = rc;
            }
            fallback = naptr[0].transport;
            goto fallback;
        }
        /* RFC 3263 4.1: no NAPTR: SRV for each transport we support. */
        if (transports & OVERLAY_SIP_RESOLVER_UDP)
            order[norder++] = SIP_TSX_UDP;
        if (transports & OVERLAY_SIP_RESOLVER_TCP)
            order[norder++] = SIP_TSX_TCP;
        if (norder == 2 && !prefer_udp) {
            order[0] = SIP_TSX_TCP;
            order[1] = SIP_TSX_UDP;
        }
        /* RFC 3263 4.1: with no SRV either, UDP for a sip URI (TCP if we have no UDP). */
        fallback = (transports & OVERLAY_SIP_RESOLVER_UDP) ? SIP_TSX_UDP : SIP_TSX_TCP;
    } else {
        /* RFC 3263 4.2: transport given, no port: SRV for that transport. */
        order[norder++] = (enum sip_tsx_transport)transport;
        fallback = (enum sip_tsx_transport)transport;
    }
    for (size_t i = 0; i < norder && n < max; i++) {
        snprintf(name, sizeof(name), "_sip.%s.%s", order[i] == SIP_TSX_UDP ? "_udp" : "_tcp", host);
        rc = query_srv(name, query, query_arg, uniform, uniform_arg, buf, srv, &nsrv);
        if (rc == 0)
            add_srv_targets(srv, nsrv, order[i], out, max, &n);
        else if (rc != -ENOENT)
            err = rc;
    }

fallback:
    if (n == 0 && err == -ENOENT) {
        /* RFC 3263 4.2: no SRV records: A/AAAA of the target at the default port. */
        out[n].transport = fallback;
        out[n].port = SIP_DEFAULT_PORT;
        snprintf(out[n].host, sizeof(out[n].host), "%s", host);
        n++;
    }
    rc = n > 0 ? 0 : err;
    if (rc == 0)
        *count = n;
out:
    free(buf);
    return rc;
}

/* ---- the resolver object ---- */

struct resolution {
    struct overlay_sip_resolver *r;
    struct p2p_list link;    /* in r->list */
    sip_proxy_resolve_cb cb; /* NULL once the answer was given */
    void *arg;
    uv_timer_t timer; /* the timeout, or 0 ms to answer a numeric target */
    uv_work_t work;
    uv_getaddrinfo_t gai;
    bool in_work, in_gai, closing;
    bool have_dest;        /* numeric target: dest is the answer */
    atomic_bool abandoned; /* answered while the worker runs: it asks nothing more */
    struct sip_tsx_dest dest;
    /* set before the work starts, read-only while it runs */
    char host[OVERLAY_SIP_RESOLVER_NAME_MAX];
    int transport; /* -1: not given */
    /* written by the worker, read after it; then the getaddrinfo cursor */
    int plan_rc;
    struct overlay_sip_target targets[OVERLAY_SIP_RESOLVER_MAX_TARGETS];
    size_t ntargets, next_target;
    int last_err;
};

struct overlay_sip_resolver {
    uv_loop_t *loop;
    struct overlay_sip_resolver_config cfg;
    struct p2p_log *log;
    struct p2p_log_limit req_log; /* lines requests can cause (log.h) */
    struct p2p_list list;
    size_t live;
    uv_timer_t handle; /* never started: its close makes the close callback asynchronous */
    bool closing, handle_closed;
    overlay_sip_resolver_close_cb close_cb;
    void *close_arg;
};

static uint32_t sodium_uniform(uint32_t upper_bound, void *arg)
{
    (void)arg;
    return randombytes_uniform(upper_bound);
}

/* The system resolver: one struct __res_state per query, nothing shared. */
static int system_query(const char *name, int type, uint8_t *buf, size_t size,
                        const struct overlay_sip_resolver *r)
{
    struct __res_state st;
    int n, herr;

    memset(&st, 0, sizeof(st));
    if (res_ninit(&st) != 0)
        return -EIO;
    /* Bound the blocking time by the resolution's own timeout: glibc waits retrans
     * seconds, then twice that (retry 2), per server. */
    st.retrans = (int)(r->cfg.timeout_ms / 3000);
    if (st.retrans < 1)
        st.retrans = 1;
    st.retry = 2;
    n = res_nquery(&st, name, ns_c_in, type, buf, (int)size);
    herr = st.res_h_errno;
    res_nclose(&st);
    if (n >= 0)
        return (size_t)n > size ? -EMSGSIZE : n;
    switch (herr) {
    case HOST_NOT_FOUND:
    case NO_DATA:
        return -ENOENT;
    case TRY_AGAIN:
        return -EAGAIN;
    default:
        return -EIO;
    }
}

static void resolver_maybe_free(struct overlay_sip_resolver *r)
{
    if (!r->closing || r->live != 0 || !r->handle_closed)
        return;
    overlay_sip_resolver_close_cb cb = r->close_cb;
    void *arg = r->close_arg;
    free(r);
    if (cb)
        cb(arg);
}

static void resolution_closed(uv_handle_t *h)
{
    struct resolution *q = h->data;
    struct overlay_sip_resolver *r = q->r;

    p2p_list_remove(&q->link);
    r->live--;
    free(q);
    resolver_maybe_free(r);
}

/* Frees q once nothing refers to it any more. */
static void resolution_maybe_free(struct resolution *q)
{
    if (q->cb || q->in_work || q->in_gai || q->closing)
        return;
    q->closing = true;
    uv_close((uv_handle_t *)&q->timer, resolution_closed);
}

/* Gives the one answer. */
static void deliver(struct resolution *q, int status, const struct sip_tsx_dest *dest)
{
    sip_proxy_resolve_cb cb = q->cb;

    if (cb == NULL)
        return;
    q->cb = NULL;
    atomic_store(&q->abandoned, true);
    uv_timer_stop(&q->timer);
    if (status != 0)
        p2p_debug(q->r->log, "RFC 3263: %s: %s", q->host[0] ? q->host : "(numeric)",
                  status <= UV__EAI_ADDRFAMILY && status > -3100 ? uv_strerror(status)
                                                                 : strerror(-status));
    cb(status, status == 0 ? dest : NULL, q->arg);
    resolution_maybe_free(q);
}

/* Stops what can still be stopped; a running worker or lookup ends on its own. */
static void cancel_requests(struct resolution *q)
{
    /* uv_cancel fails (EBUSY) for a request a thread already runs: it then completes
     * normally and its result is dropped, since q->cb is NULL by then. */
    if (q->in_work)
        (void)uv_cancel((uv_req_t *)&q->work);
    if (q->in_gai)
        (void)uv_cancel((uv_req_t *)&q->gai);
}

static void gai_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res);

/* Starts the A/AAAA lookup of the target at q->next_target (RFC 3263 4.2). */
static int start_lookup(struct resolution *q)
{
    const struct overlay_sip_target *t = &q->targets[q->next_target++];
    struct addrinfo hints;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = q->r->cfg.family;
    hints.ai_socktype = t->transport == SIP_TSX_TCP ? SOCK_STREAM : SOCK_DGRAM;
    /* With a family given, ask for it even on a host whose only address of that
     * family is loopback (AI_ADDRCONFIG would then return nothing). */
    hints.ai_flags = AI_NUMERICSERV | (q->r->cfg.family == AF_UNSPEC ? AI_ADDRCONFIG : 0);
    snprintf(port, sizeof(port), "%u", (unsigned)t->port);
    rc = uv_getaddrinfo(q->r->loop, &q->gai, gai_done, t->host, port, &hints);
    if (rc == 0)
        q->in_gai = true;
    return rc;
}

/* Tries the plan's targets in order (RFC 2782: on failure, the next one). */
static void next_target(struct resolution *q)
{
    while (q->next_target < q->ntargets) {
        const struct overlay_sip_target *t = &q->targets[q->next_target];
        struct p2p_slice tp =
            t->transport == SIP_TSX_TCP ? P2P_SLICE_LIT("tcp") : P2P_SLICE_LIT("udp");
        int rc;

        /* An address as the target (an SRV pointing at a literal) needs no lookup. */
        if (sip_proxy_numeric_dest(p2p_slice_cstr(t->host), t->port, tp, 0, &q->dest) == 0) {
            deliver(q, 0, &q->dest);
            return;
        }
        rc = start_lookup(q);
        if (rc == 0)
            return;
        q->last_err = rc;
    }
    deliver(q, q->last_err != 0 ? q->last_err : -ENOENT, NULL);
}

static void gai_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolution *q = req->data;
    const struct overlay_sip_target *t = &q->targets[q->next_target - 1];
    const struct addrinfo *a;

    q->in_gai = false;
    if (q->cb == NULL) {
        uv_freeaddrinfo(res);
        resolution_maybe_free(q);
        return;
    }
    for (a = status == 0 ? res : NULL; a != NULL; a = a->ai_next) {
        if ((a->ai_family == AF_INET && a->ai_addrlen >= sizeof(struct sockaddr_in)) ||
            (a->ai_family == AF_INET6 && a->ai_addrlen >= sizeof(struct sockaddr_in6)))
            break;
    }
    if (a != NULL) {
        memset(&q->dest, 0, sizeof(q->dest));
        q->dest.transport = t->transport;
        memcpy(&q->dest.addr, a->ai_addr,
               a->ai_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        uv_freeaddrinfo(res);
        deliver(q, 0, &q->dest);
        return;
    }
    uv_freeaddrinfo(res);
    q->last_err = status != 0 ? status : -ENOENT;
    next_target(q);
}

/* Worker thread: one question, unless the answer was already given (timeout, close). */
static int worker_query(const char *name, int type, uint8_t *buf, size_t size, void *arg)
{
    struct resolution *q = arg;
    const struct overlay_sip_resolver *r = q->r;

    if (atomic_load(&q->abandoned))
        return -ECANCELED;
    if (r->cfg.query)
        return r->cfg.query(name, type, buf, size, r->cfg.query_arg);
    return system_query(name, type, buf, size, r);
}

/* Worker thread: the NAPTR/SRV chain. */
static void plan_work(uv_work_t *req)
{
    struct resolution *q = req->data;
    const struct overlay_sip_resolver *r = q->r;

    q->plan_rc = overlay_sip_resolver_plan(
        q->host, q->transport, r->cfg.transports, r->cfg.prefer_udp, worker_query, q,
        sodium_uniform, NULL, q->targets, OVERLAY_SIP_RESOLVER_MAX_TARGETS, &q->ntargets);
}

static void plan_done(uv_work_t *req, int status)
{
    struct resolution *q = req->data;

    q->in_work = false;
    if (q->cb == NULL) { /* answered already (timeout, close); cancelled or not */
        resolution_maybe_free(q);
        return;
    }
    if (status != 0) { /* only a cancelled work has one, and we cancel after answering */
        deliver(q, status, NULL);
        return;
    }
    if (q->plan_rc != 0) {
        deliver(q, q->plan_rc, NULL);
        return;
    }
    next_target(q);
}

static void on_timer(uv_timer_t *h)
{
    struct resolution *q = h->data;

    if (q->have_dest) {
        deliver(q, 0, &q->dest);
        return;
    }
    cancel_requests(q);
    deliver(q, -ETIMEDOUT, NULL);
}

void overlay_sip_resolver_config_default(struct overlay_sip_resolver_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_pending = OVERLAY_SIP_RESOLVER_DEFAULT_MAX_PENDING;
    cfg->timeout_ms = OVERLAY_SIP_RESOLVER_DEFAULT_TIMEOUT_MS;
    cfg->prefer_udp = true;
    cfg->transports = OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP;
    cfg->family = AF_UNSPEC;
}

int overlay_sip_resolver_new(struct overlay_sip_resolver **out, uv_loop_t *loop,
                             const struct overlay_sip_resolver_config *cfg, struct p2p_log *log)
{
    struct overlay_sip_resolver *r;
    int rc;

    if (cfg->family != AF_UNSPEC && cfg->family != AF_INET && cfg->family != AF_INET6)
        return -EINVAL;
    if (cfg->transports & ~(OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP))
        return -EINVAL;
    if (sodium_init() < 0) /* SRV weights are drawn with randombytes_uniform */
        return -EIO;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->loop = loop;
    r->cfg = *cfg;
    r->log = log;
    r->req_log.name = "RFC 3263";
    p2p_list_init(&r->list);
    if (r->cfg.max_pending == 0)
        r->cfg.max_pending = OVERLAY_SIP_RESOLVER_DEFAULT_MAX_PENDING;
    if (r->cfg.timeout_ms == 0)
        r->cfg.timeout_ms = OVERLAY_SIP_RESOLVER_DEFAULT_TIMEOUT_MS;
    if (r->cfg.transports == 0)
        r->cfg.transports = OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP;
    rc = uv_timer_init(loop, &r->handle);
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->handle.data = r;
    *out = r;
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    struct overlay_sip_resolver *r = h->data;

    r->handle_closed = true;
    resolver_maybe_free(r);
}

void overlay_sip_resolver_close(struct overlay_sip_resolver *r, overlay_sip_resolver_close_cb cb,
                                void *arg)
{
    struct p2p_list *it;

    r->closing = true;
    r->close_cb = cb;
    r->close_arg = arg;
    /* Entries are unlinked only from close callbacks, so the walk is safe even when a
     * callback calls resolve() (refused) or close work piles up. */
    P2P_LIST_FOREACH(it, &r->list)
    {
        struct resolution *q = P2P_LIST_ENTRY(it, struct resolution, link);
        if (q->cb == NULL)
            continue;
        cancel_requests(q);
        deliver(q, -ECANCELED, NULL);
    }
    uv_close((uv_handle_t *)&r->handle, handle_closed);
}

/* RFC 3263 4.1: the transport parameter, -1 when absent. */
static int uri_transport(const struct sip_uri *u)
{
    if (!u->transport.p)
        return -1;
    if (p2p_slice_caseeq_cstr(u->transport, "udp"))
        return SIP_TSX_UDP;
    if (p2p_slice_caseeq_cstr(u->transport, "tcp"))
        return SIP_TSX_TCP;
    return -EPROTONOSUPPORT; /* tls (no TLS transport here), sctp, others */
}

int overlay_sip_resolver_resolve(struct overlay_sip_resolver *r, const char *uri,
                                 sip_proxy_resolve_cb cb, void *arg)
{
    struct resolution *q;
    struct sip_uri u;
    struct p2p_slice host;
    int transport, rc;

    if (r->closing)
        return -ECANCELED;
    if (r->live >= r->cfg.max_pending)
        return -ENOBUFS;
    if (sip_uri_parse(p2p_slice_cstr(uri), &u) != 0 || u.scheme == SIP_URI_TEL)
        return -EINVAL;
    if (u.scheme == SIP_URI_SIPS) {
        /* RFC 3263 4.1 would use TLS; we have none, and TCP would void the guarantee. */
        p2p_info_rl(r->log, &r->req_log, uv_now(r->loop),
                    "RFC 3263: %s: sips needs TLS, which this node does not have", uri);
        return -EPROTONOSUPPORT;
    }
    transport = uri_transport(&u);
    if (transport == -EPROTONOSUPPORT ||
        (transport >= 0 && !(r->cfg.transports & (1u << transport)))) {
        p2p_info_rl(r->log, &r->req_log, uv_now(r->loop),
                    "RFC 3263: %s: transport %.*s not available", uri, (int)u.transport.len,
                    u.transport.p);
        return -EPROTONOSUPPORT;
    }
    /* RFC 3263 4: maddr, when present, is the target. */
    host = u.maddr.p ? u.maddr : u.host;
    if (host.len == 0 || host.len >= OVERLAY_SIP_RESOLVER_NAME_MAX - 11)
        return -EINVAL;

    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    q->r = r;
    atomic_init(&q->abandoned, false);
    q->transport = transport;
    rc = uv_timer_init(r->loop, &q->timer);
    if (rc != 0) {
        free(q);
        return rc;
    }
    q->timer.data = q;
    q->work.data = q;
    q->gai.data = q;
    p2p_list_push_front(&r->list, &q->link);
    r->live++;

    /* RFC 3263 4.1/4.2: a numeric target: that address, the port or 5060, the
     * transport parameter or UDP; answered on the next loop turn. */
    if (sip_proxy_numeric_dest(
            host, u.port, transport == SIP_TSX_TCP ? P2P_SLICE_LIT("tcp") : P2P_SLICE_LIT("udp"), 0,
            &q->dest) == 0) {
        q->have_dest = true;
        q->cb = cb;
        q->arg = arg;
        (void)uv_timer_start(&q->timer, on_timer, 0, 0); /* cannot fail on an init'ed timer */
        return 0;
    }
    rc = p2p_slice_copy(host, q->host, sizeof(q->host));
    if (rc == 0 && u.has_port) {
        /* RFC 3263 4.2: a name with a port: A/AAAA only, transport given or UDP. */
        q->targets[0].transport = transport >= 0 ? (enum sip_tsx_transport)transport : SIP_TSX_UDP;
        q->targets[0].port = u.port ? u.port : SIP_DEFAULT_PORT;
        memcpy(q->targets[0].host, q->host, sizeof(q->host));
        q->ntargets = 1;
        q->cb = cb;
        q->arg = arg;
        rc = start_lookup(q); /* answers later, never inside this call */
    } else if (rc == 0) {
        q->cb = cb;
        q->arg = arg;
        rc = uv_queue_work(r->loop, &q->work, plan_work, plan_done);
        if (rc == 0)
            q->in_work = true;
    }
    if (rc != 0) {
        q->cb = NULL; /* an error and no callback */
        resolution_maybe_free(q);
        return rc;
    }
    /* RFC 3263 leaves the time to the client: ours is cfg.timeout_ms per URI. */
    (void)uv_timer_start(&q->timer, on_timer, r->cfg.timeout_ms, 0);
    return 0;
}

size_t overlay_sip_resolver_pending(const struct overlay_sip_resolver *r)
{
    return r->live;
}

static int hook_resolve(void *ctx, const char *uri, sip_proxy_resolve_cb cb, void *arg)
{
    return overlay_sip_resolver_resolve(ctx, uri, cb, arg);
}

struct sip_proxy_resolver overlay_sip_resolver_hook(struct overlay_sip_resolver *r)
{
    struct sip_proxy_resolver h = {hook_resolve, r};
    return h;
}
