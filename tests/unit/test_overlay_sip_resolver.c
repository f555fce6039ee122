/*
 * test_overlay_sip_resolver.c: RFC 3263 server location without DNS traffic.
 *
 * The pure part gets DNS response packets built here by a tiny encoder (header,
 * one question, answer records of type NAPTR and SRV, RFC 1035 4.1 / RFC 3403 /
 * RFC 2782 layouts) and a scripted random source, so NAPTR filtering and sorting and
 * the SRV weighted selection are checked exactly.  The plan (RFC 3263 4.1/4.2 chain)
 * runs on a fake query function that answers from a table and records the questions
 * asked.  The resolver object runs on a real libuv loop with numeric hosts only, or
 * with the fake query whose SRV targets are numeric, so no name ever reaches the
 * system resolver.  Every loop test ends with uv_loop_close() == 0.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <cmocka.h>
#include <uv.h>

#include "p2p/overlay_sip_resolver.h"

/* ---- a tiny DNS response encoder ---- */

struct pkt {
    uint8_t b[4096];
    size_t len;
    size_t ancount_at;
};

static void put8(struct pkt *p, unsigned v)
{
    assert_true(p->len < sizeof(p->b));
    p->b[p->len++] = (uint8_t)v;
}

static void put16(struct pkt *p, unsigned v)
{
    put8(p, v >> 8);
    put8(p, v & 0xff);
}

static void put_name(struct pkt *p, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name);
        put8(p, (unsigned)n);
        for (size_t i = 0; i < n; i++)
            put8(p, (uint8_t)name[i]);
        name += n + (dot ? 1 : 0);
    }
    put8(p, 0);
}

static void put_str(struct pkt *p, const char *s)
{
    put8(p, (unsigned)strlen(s));
    for (; *s; s++)
        put8(p, (uint8_t)*s);
}

/* Header (response, rcode) and the question; answers follow. */
static void pkt_start(struct pkt *p, const char *qname, unsigned qtype, unsigned rcode)
{
    memset(p, 0, sizeof(*p));
    put16(p, 0x1234);         /* id */
    put16(p, 0x8180 | rcode); /* QR, RD, RA */
    put16(p, 1);              /* qdcount */
    p->ancount_at = p->len;
    put16(p, 0); /* ancount */
    put16(p, 0);
    put16(p, 0);
    put_name(p, qname);
    put16(p, qtype);
    put16(p, ns_c_in);
}

/* An answer record header owned by the question name (pointer to offset 12). */
static size_t rr_start(struct pkt *p, unsigned type)
{
    unsigned an = (unsigned)(p->b[p->ancount_at] << 8 | p->b[p->ancount_at + 1]) + 1;
    p->b[p->ancount_at] = (uint8_t)(an >> 8);
    p->b[p->ancount_at + 1] = (uint8_t)an;
    put16(p, 0xc00c);
    put16(p, type);
    put16(p, ns_c_in);
    put16(p, 0);
    put16(p, 300); /* ttl */
    put16(p, 0);   /* rdlength, patched by rr_end */
    return p->len;
}

static void rr_end(struct pkt *p, size_t rdata_at)
{
    size_t n = p->len - rdata_at;
    p->b[rdata_at - 2] = (uint8_t)(n >> 8);
    p->b[rdata_at - 1] = (uint8_t)n;
}

static void add_naptr(struct pkt *p, unsigned order, unsigned pref, const char *flags,
                      const char *service, const char *regexp, const char *replacement)
{
    size_t at = rr_start(p, ns_t_naptr);
    put16(p, order);
    put16(p, pref);
    put_str(p, flags);
    put_str(p, service);
    put_str(p, regexp);
    put_name(p, replacement);
    rr_end(p, at);
}

static void add_srv(struct pkt *p, unsigned prio, unsigned weight, unsigned port,
                    const char *target)
{
    size_t at = rr_start(p, ns_t_srv);
    put16(p, prio);
    put16(p, weight);
    put16(p, port);
    put_name(p, target);
    rr_end(p, at);
}

static void add_cname(struct pkt *p, const char *target)
{
    size_t at = rr_start(p, ns_t_cname);
    put_name(p, target);
    rr_end(p, at);
}

/* ---- a scripted random source ---- */

struct script {
    uint32_t values[16];
    uint32_t bounds[16]; /* the upper bounds asked for */
    size_t n, next;
};

static uint32_t scripted(uint32_t upper_bound, void *arg)
{
    struct script *s = arg;
    assert_true(s->next < s->n);
    s->bounds[s->next] = upper_bound;
    return s->values[s->next++];
}

/* ---- NAPTR ---- */

static void test_naptr_filter_and_order(void **state)
{
    struct overlay_sip_naptr out[8];
    struct pkt p;
    size_t n = 99;
    (void)state;

    pkt_start(&p, "example.com", ns_t_naptr, 0);
    add_naptr(&p, 10, 50, "s", "SIP+D2T", "", "_sip._tcp.example.com");
    add_naptr(&p, 10, 10, "S", "sip+d2u", "", "_sip._udp.example.com");
    add_naptr(&p, 10, 5, "s", "SIPS+D2T", "", "_sips._tcp.example.com"); /* needs TLS */
    add_naptr(&p, 5, 1, "u", "E2U+sip", "!^.*$!sip:x@y!", "");           /* not SIP */
    add_naptr(&p, 10, 1, "a", "SIP+D2U", "", "a.example.com");           /* not "S" */
    add_naptr(&p, 10, 2, "s", "SIP+D2U", "!x!y!", "b.example.com");      /* regexp */
    add_naptr(&p, 20, 0, "s", "SIP+D2U", "", "_sip._udp.backup.example.com");
    add_cname(&p, "elsewhere.example.com"); /* skipped, not an error */

    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len,
                                             OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP,
                                             out, 8, &n),
                     0);
    /* RFC 3403 4.1: lowest order with a usable record (10), by preference; the
     * order-20 record is not used although it is usable. */
    assert_int_equal(n, 2);
    assert_int_equal(out[0].transport, SIP_TSX_UDP);
    assert_int_equal(out[0].preference, 10);
    assert_string_equal(out[0].replacement, "_sip._udp.example.com");
    assert_int_equal(out[1].transport, SIP_TSX_TCP);
    assert_string_equal(out[1].replacement, "_sip._tcp.example.com");

    /* TCP only: the UDP record is not a match. */
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len, OVERLAY_SIP_RESOLVER_TCP, out, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].transport, SIP_TSX_TCP);

    /* max caps what is written */
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len,
                                             OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP,
                                             out, 1, &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].transport, SIP_TSX_UDP);
}

static void test_naptr_lowest_usable_order(void **state)
{
    struct overlay_sip_naptr out[4];
    struct pkt p;
    size_t n;
    (void)state;

    /* The order-1 record is TLS only: the usable records of order 2 are taken. */
    pkt_start(&p, "example.com", ns_t_naptr, 0);
    add_naptr(&p, 2, 20, "s", "SIP+D2T", "", "_sip._tcp.example.com");
    add_naptr(&p, 1, 10, "s", "SIPS+D2T", "", "_sips._tcp.example.com");
    add_naptr(&p, 2, 30, "s", "SIP+D2U", "", "_sip._udp.example.com");
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len,
                                             OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP,
                                             out, 4, &n),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].transport, SIP_TSX_TCP);
    assert_int_equal(out[1].transport, SIP_TSX_UDP);
}

static void test_naptr_none(void **state)
{
    struct overlay_sip_naptr out[4];
    struct pkt p;
    size_t n = 77;
    (void)state;

    /* Only SIPS+D2T: records, but none we can use. */
    pkt_start(&p, "example.com", ns_t_naptr, 0);
    add_naptr(&p, 1, 1, "s", "SIPS+D2T", "", "_sips._tcp.example.com");
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len, OVERLAY_SIP_RESOLVER_UDP, out, 4, &n),
                     -EPROTONOSUPPORT);
    assert_int_equal(n, 77);

    pkt_start(&p, "example.com", ns_t_naptr, ns_r_nxdomain);
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len, OVERLAY_SIP_RESOLVER_UDP, out, 4, &n),
                     -ENOENT);
    pkt_start(&p, "example.com", ns_t_naptr, 0); /* NOERROR, no data */
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len, OVERLAY_SIP_RESOLVER_UDP, out, 4, &n),
                     -ENOENT);
    add_cname(&p, "x.example.com"); /* answers, none NAPTR */
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len, OVERLAY_SIP_RESOLVER_UDP, out, 4, &n),
                     -ENOENT);
    assert_int_equal(n, 77);
}

static void test_naptr_truncated(void **state)
{
    struct overlay_sip_naptr out[4];
    struct pkt p;
    size_t n = 5;
    (void)state;

    pkt_start(&p, "example.com", ns_t_naptr, 0);
    add_naptr(&p, 10, 10, "s", "SIP+D2U", "", "_sip._udp.example.com");
    add_naptr(&p, 10, 20, "s", "SIP+D2T", "", "_sip._tcp.example.com");
    /* Every strict prefix is malformed: the header promises more than there is. */
    for (size_t len = 0; len < p.len; len++)
        assert_int_equal(overlay_sip_naptr_parse(p.b, len, OVERLAY_SIP_RESOLVER_UDP, out, 4, &n),
                         -EBADMSG);
    assert_int_equal(n, 5);

    /* rdata shorter than its strings say */
    pkt_start(&p, "example.com", ns_t_naptr, 0);
    size_t at = rr_start(&p, ns_t_naptr);
    put16(&p, 10);
    put16(&p, 10);
    put8(&p, 5); /* flags claims 5 bytes, rdata ends after 1 */
    put8(&p, 's');
    rr_end(&p, at);
    assert_int_equal(overlay_sip_naptr_parse(p.b, p.len, OVERLAY_SIP_RESOLVER_UDP, out, 4, &n),
                     -EBADMSG);
}

/* ---- SRV ---- */

static void test_srv_priority_and_weight(void **state)
{
    struct overlay_sip_srv out[8];
    struct script s = {.values = {70, 0, 0}, .n = 3};
    struct pkt p;
    size_t n;
    (void)state;

    pkt_start(&p, "_sip._udp.example.com", ns_t_srv, 0);
    add_srv(&p, 20, 0, 5060, "c.example.com");
    add_srv(&p, 10, 60, 5061, "a.example.com");
    add_srv(&p, 10, 40, 5062, "b.example.com");
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &s, out, 8, &n), 0);
    assert_int_equal(n, 3);
    /* RFC 2782: priority 10 first; draw in [0, 100]: 70 > running 60 (a), <= 100 (b). */
    assert_int_equal(s.bounds[0], 101);
    assert_string_equal(out[0].target, "b.example.com");
    assert_int_equal(out[0].port, 5062);
    /* then a alone: a draw in [0, 60] */
    assert_int_equal(s.bounds[1], 61);
    assert_string_equal(out[1].target, "a.example.com");
    /* then priority 20 */
    assert_int_equal(s.bounds[2], 1);
    assert_string_equal(out[2].target, "c.example.com");
    assert_int_equal(out[2].priority, 20);

    /* A draw equal to the running sum selects that record (>=). */
    struct script s2 = {.values = {60, 0, 0}, .n = 3};
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &s2, out, 8, &n), 0);
    assert_string_equal(out[0].target, "a.example.com");
    assert_string_equal(out[1].target, "b.example.com");

    /* max: only the first pick is made */
    struct script s3 = {.values = {0}, .n = 1};
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &s3, out, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].target, "a.example.com");
    assert_int_equal(s3.next, 1);
}

static void test_srv_weight_zero_first(void **state)
{
    struct overlay_sip_srv out[4];
    struct pkt p;
    size_t n;
    (void)state;

    /* RFC 2782: weight-0 records go first in the running sum, so only a draw of 0
     * picks one; any other draw picks a weighted record. */
    pkt_start(&p, "_sip._tcp.example.com", ns_t_srv, 0);
    add_srv(&p, 1, 10, 5060, "y.example.com");
    add_srv(&p, 1, 0, 5060, "x.example.com");
    struct script zero = {.values = {0, 0}, .n = 2};
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &zero, out, 4, &n), 0);
    assert_int_equal(zero.bounds[0], 11);
    assert_string_equal(out[0].target, "x.example.com");
    assert_string_equal(out[1].target, "y.example.com");
    struct script one = {.values = {1, 0}, .n = 2};
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &one, out, 4, &n), 0);
    assert_string_equal(out[0].target, "y.example.com");
    assert_string_equal(out[1].target, "x.example.com");
}

static void test_srv_none_and_dot(void **state)
{
    struct overlay_sip_srv out[4];
    struct script s = {.n = 0};
    struct pkt p;
    size_t n = 9;
    (void)state;

    pkt_start(&p, "_sip._udp.example.com", ns_t_srv, 0);
    add_srv(&p, 0, 0, 0, ""); /* "." : decidedly not available */
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &s, out, 4, &n), -ECONNREFUSED);
    pkt_start(&p, "_sip._udp.example.com", ns_t_srv, ns_r_nxdomain);
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &s, out, 4, &n), -ENOENT);
    pkt_start(&p, "_sip._udp.example.com", ns_t_srv, ns_r_servfail);
    add_srv(&p, 1, 1, 5060, "a.example.com");
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &s, out, 4, &n), -EIO);
    pkt_start(&p, "_sip._udp.example.com", ns_t_srv, ns_r_servfail); /* no answers */
    assert_int_equal(overlay_sip_srv_parse(p.b, p.len, scripted, &s, out, 4, &n), -EIO);
    pkt_start(&p, "_sip._udp.example.com", ns_t_srv, 0);
    add_srv(&p, 1, 1, 5060, "a.example.com");
    for (size_t len = 0; len < p.len; len++)
        assert_int_equal(overlay_sip_srv_parse(p.b, len, scripted, &s, out, 4, &n), -EBADMSG);
    assert_int_equal(n, 9);
    assert_int_equal(s.next, 0);
}

/* ---- the plan, on a fake DNS ---- */

struct zone_entry {
    const char *name;
    int type;
    struct pkt pkt; /* len 0: the name does not exist */
    int err;        /* returned instead of the packet when not 0 */
};

struct zone {
    struct zone_entry e[8];
    size_t n;
    char asked[8][OVERLAY_SIP_RESOLVER_NAME_MAX + 8];
    size_t nasked;
    /* blocking: the worker waits for release (tests of timeout and close) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool block, entered, released;
};

static struct pkt *zone_add(struct zone *z, const char *name, int type)
{
    struct zone_entry *e = &z->e[z->n++];
    assert_true(z->n <= 8);
    e->name = name;
    e->type = type;
    pkt_start(&e->pkt, name, (unsigned)type, 0);
    return &e->pkt;
}

static int zone_query(const char *name, int type, uint8_t *buf, size_t size, void *arg)
{
    struct zone *z = arg;

    pthread_mutex_lock(&z->mu);
    if (z->nasked < 8)
        snprintf(z->asked[z->nasked++], sizeof(z->asked[0]), "%s %s",
                 type == ns_t_naptr ? "NAPTR" : "SRV", name);
    if (z->block) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5; /* bound: a broken test fails instead of hanging */
        z->entered = true;
        pthread_cond_broadcast(&z->cv);
        while (!z->released)
            if (pthread_cond_timedwait(&z->cv, &z->mu, &until) != 0)
                break;
    }
    pthread_mutex_unlock(&z->mu);
    for (size_t i = 0; i < z->n; i++) {
        const struct zone_entry *e = &z->e[i];
        if (e->type != type || strcmp(e->name, name) != 0)
            continue;
        if (e->err)
            return e->err;
        if (e->pkt.len > size) /* no cmocka assert on a worker thread */
            return -EMSGSIZE;
        memcpy(buf, e->pkt.b, e->pkt.len);
        return (int)e->pkt.len;
    }
    return -ENOENT;
}

static void zone_init(struct zone *z)
{
    memset(z, 0, sizeof(*z));
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->cv, NULL);
}

static void zone_release(struct zone *z)
{
    pthread_mutex_lock(&z->mu);
    z->released = true;
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
}

static void zone_wait_entered(struct zone *z)
{
    pthread_mutex_lock(&z->mu);
    while (!z->entered)
        pthread_cond_wait(&z->cv, &z->mu);
    pthread_mutex_unlock(&z->mu);
}

static void zone_fini(struct zone *z)
{
    pthread_cond_destroy(&z->cv);
    pthread_mutex_destroy(&z->mu);
}

static uint32_t draw_zero(uint32_t upper_bound, void *arg)
{
    (void)upper_bound;
    (void)arg;
    return 0;
}

#define BOTH (OVERLAY_SIP_RESOLVER_UDP | OVERLAY_SIP_RESOLVER_TCP)

static void test_plan_naptr_then_srv(void **state)
{
    struct overlay_sip_target t[OVERLAY_SIP_RESOLVER_MAX_TARGETS];
    struct zone z;
    size_t n;
    (void)state;

    zone_init(&z);
    struct pkt *p = zone_add(&z, "example.com", ns_t_naptr);
    add_naptr(p, 10, 20, "s", "SIP+D2T", "", "_sip._tcp.example.com");
    add_naptr(p, 10, 10, "s", "SIP+D2U", "", "_sip._udp.example.com");
    p = zone_add(&z, "_sip._udp.example.com", ns_t_srv);
    add_srv(p, 2, 0, 5070, "u2.example.com");
    add_srv(p, 1, 0, 5080, "u1.example.com");
    p = zone_add(&z, "_sip._tcp.example.com", ns_t_srv);
    add_srv(p, 1, 0, 5090, "t1.example.com");

    assert_int_equal(overlay_sip_resolver_plan("example.com", -1, BOTH, false, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     0);
    /* NAPTR preference (UDP first) wins over prefer_udp = false */
    assert_int_equal(n, 3);
    assert_int_equal(t[0].transport, SIP_TSX_UDP);
    assert_string_equal(t[0].host, "u1.example.com");
    assert_int_equal(t[0].port, 5080);
    assert_string_equal(t[1].host, "u2.example.com");
    assert_int_equal(t[2].transport, SIP_TSX_TCP);
    assert_string_equal(t[2].host, "t1.example.com");
    assert_int_equal(z.nasked, 3);
    assert_string_equal(z.asked[0], "NAPTR example.com");
    assert_string_equal(z.asked[1], "SRV _sip._udp.example.com");
    assert_string_equal(z.asked[2], "SRV _sip._tcp.example.com");
    zone_fini(&z);
}

static void test_plan_naptr_bounded(void **state)
{
    struct overlay_sip_target t[OVERLAY_SIP_RESOLVER_MAX_TARGETS];
    struct zone z;
    size_t n;
    (void)state;

    /* Five usable NAPTR records, no SRV anywhere: only the first three replacements
     * are asked (each question may block), then the host with the first transport. */
    zone_init(&z);
    struct pkt *p = zone_add(&z, "many.example", ns_t_naptr);
    add_naptr(p, 1, 5, "s", "SIP+D2U", "", "e.many.example");
    add_naptr(p, 1, 1, "s", "SIP+D2T", "", "a.many.example");
    add_naptr(p, 1, 2, "s", "SIP+D2U", "", "b.many.example");
    add_naptr(p, 1, 3, "s", "SIP+D2U", "", "c.many.example");
    add_naptr(p, 1, 4, "s", "SIP+D2U", "", "d.many.example");
    assert_int_equal(overlay_sip_resolver_plan("many.example", -1, BOTH, true, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     0);
    assert_int_equal(z.nasked, 4);
    assert_string_equal(z.asked[1], "SRV a.many.example");
    assert_string_equal(z.asked[2], "SRV b.many.example");
    assert_string_equal(z.asked[3], "SRV c.many.example");
    assert_int_equal(n, 1);
    assert_int_equal(t[0].transport, SIP_TSX_TCP);
    assert_string_equal(t[0].host, "many.example");
    assert_int_equal(t[0].port, 5060);
    zone_fini(&z);
}

static void test_plan_no_naptr(void **state)
{
    struct overlay_sip_target t[OVERLAY_SIP_RESOLVER_MAX_TARGETS];
    struct zone z;
    size_t n;
    (void)state;

    /* No NAPTR: SRV per transport, the preferred first. */
    zone_init(&z);
    struct pkt *p = zone_add(&z, "_sip._udp.example.org", ns_t_srv);
    add_srv(p, 1, 0, 5060, "u.example.org");
    p = zone_add(&z, "_sip._tcp.example.org", ns_t_srv);
    add_srv(p, 1, 0, 5060, "t.example.org");
    assert_int_equal(overlay_sip_resolver_plan("example.org", -1, BOTH, false, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(t[0].transport, SIP_TSX_TCP);
    assert_string_equal(t[0].host, "t.example.org");
    assert_int_equal(t[1].transport, SIP_TSX_UDP);
    assert_string_equal(z.asked[0], "NAPTR example.org");
    assert_string_equal(z.asked[1], "SRV _sip._tcp.example.org");
    assert_string_equal(z.asked[2], "SRV _sip._udp.example.org");

    z.nasked = 0;
    assert_int_equal(overlay_sip_resolver_plan("example.org", -1, BOTH, true, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     0);
    assert_int_equal(t[0].transport, SIP_TSX_UDP);
    assert_string_equal(t[0].host, "u.example.org");

    /* Only TCP enabled: no UDP question at all. */
    z.nasked = 0;
    assert_int_equal(overlay_sip_resolver_plan("example.org", -1, OVERLAY_SIP_RESOLVER_TCP, true,
                                               zone_query, &z, draw_zero, NULL, t, 16, &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].transport, SIP_TSX_TCP);
    assert_int_equal(z.nasked, 2);
    zone_fini(&z);
}

static void test_plan_fallback_to_host(void **state)
{
    struct overlay_sip_target t[OVERLAY_SIP_RESOLVER_MAX_TARGETS];
    struct zone z;
    size_t n;
    (void)state;

    /* Nothing at all: the host over UDP at 5060 (RFC 3263 4.1, 4.2). */
    zone_init(&z);
    assert_int_equal(overlay_sip_resolver_plan("plain.example", -1, BOTH, true, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].transport, SIP_TSX_UDP);
    assert_int_equal(t[0].port, 5060);
    assert_string_equal(t[0].host, "plain.example");
    assert_int_equal(z.nasked, 3);

    /* transport=tcp given: only _sip._tcp is asked, then the host over TCP. */
    z.nasked = 0;
    assert_int_equal(overlay_sip_resolver_plan("plain.example", SIP_TSX_TCP, BOTH, true, zone_query,
                                               &z, draw_zero, NULL, t, 16, &n),
                     0);
    assert_int_equal(z.nasked, 1);
    assert_string_equal(z.asked[0], "SRV _sip._tcp.plain.example");
    assert_int_equal(t[0].transport, SIP_TSX_TCP);
    assert_int_equal(t[0].port, 5060);

    /* NAPTR says TCP, its SRV name has nothing: the host over TCP at 5060. */
    struct pkt *p = zone_add(&z, "plain.example", ns_t_naptr);
    add_naptr(p, 1, 1, "s", "SIP+D2T", "", "_sip._tcp.plain.example");
    z.nasked = 0;
    assert_int_equal(overlay_sip_resolver_plan("plain.example", -1, BOTH, true, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].transport, SIP_TSX_TCP);
    assert_string_equal(t[0].host, "plain.example");
    assert_int_equal(z.nasked, 2);
    zone_fini(&z);
}

static void test_plan_errors(void **state)
{
    struct overlay_sip_target t[OVERLAY_SIP_RESOLVER_MAX_TARGETS];
    struct zone z;
    size_t n = 42;
    (void)state;

    zone_init(&z);
    /* A DNS failure is not "no records": no fallback to the host. */
    zone_add(&z, "down.example", ns_t_naptr)->len = 0;
    z.e[0].err = -EAGAIN;
    assert_int_equal(overlay_sip_resolver_plan("down.example", -1, BOTH, true, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     -EAGAIN);
    /* Only SIPS+D2T: we cannot follow it. */
    struct pkt *p = zone_add(&z, "tls.example", ns_t_naptr);
    add_naptr(p, 1, 1, "s", "SIPS+D2T", "", "_sips._tcp.tls.example");
    assert_int_equal(overlay_sip_resolver_plan("tls.example", -1, BOTH, true, zone_query, &z,
                                               draw_zero, NULL, t, 16, &n),
                     -EPROTONOSUPPORT);
    /* SRV "." for the only transport asked. */
    p = zone_add(&z, "_sip._udp.none.example", ns_t_srv);
    add_srv(p, 0, 0, 0, "");
    assert_int_equal(overlay_sip_resolver_plan("none.example", SIP_TSX_UDP, BOTH, true, zone_query,
                                               &z, draw_zero, NULL, t, 16, &n),
                     -ECONNREFUSED);
    /* A transport we do not have; a name that cannot take the _sip._udp. prefix. */
    assert_int_equal(overlay_sip_resolver_plan("x.example", SIP_TSX_TCP, OVERLAY_SIP_RESOLVER_UDP,
                                               true, zone_query, &z, draw_zero, NULL, t, 16, &n),
                     -EPROTONOSUPPORT);
    char longname[OVERLAY_SIP_RESOLVER_NAME_MAX];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(overlay_sip_resolver_plan(longname, -1, BOTH, true, zone_query, &z, draw_zero,
                                               NULL, t, 16, &n),
                     -EINVAL);
    assert_int_equal(n, 42);
    zone_fini(&z);
}

/* ---- the resolver object on a real loop ---- */

struct answers {
    int calls;
    int status;
    struct sip_tsx_dest dest;
    int closes;
    struct zone *release_on_answer;
};

static void on_answer(int status, const struct sip_tsx_dest *dest, void *arg)
{
    struct answers *a = arg;
    a->calls++;
    a->status = status;
    if (status == 0) {
        assert_non_null(dest);
        a->dest = *dest;
    } else {
        assert_null(dest);
    }
    if (a->release_on_answer)
        zone_release(a->release_on_answer);
}

static void on_closed(void *arg)
{
    struct answers *a = arg;
    a->closes++;
}

static void check_dest(const struct sip_tsx_dest *d, enum sip_tsx_transport tp, int family,
                       const char *ip, unsigned port)
{
    char text[INET6_ADDRSTRLEN];

    assert_int_equal(d->transport, tp);
    assert_int_equal(d->addr.ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&d->addr;
        inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
        assert_int_equal(ntohs(a->sin_port), port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&d->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
        assert_int_equal(ntohs(a->sin6_port), port);
    }
    assert_string_equal(text, ip);
}

static void close_and_finish(uv_loop_t *loop, struct overlay_sip_resolver *r, struct answers *a)
{
    int closes = a->closes;
    overlay_sip_resolver_close(r, on_closed, a);
    assert_int_equal(a->closes, closes); /* never inside the call */
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a->closes, closes + 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_resolver_numeric_rules(void **state)
{
    static const struct {
        const char *uri;
        enum sip_tsx_transport tp;
        int family;
        const char *ip;
        unsigned port;
    } cases[] = {
        {"sip:192.0.2.1", SIP_TSX_UDP, AF_INET, "192.0.2.1", 5060},
        {"sip:alice@192.0.2.1:5070;transport=tcp", SIP_TSX_TCP, AF_INET, "192.0.2.1", 5070},
        {"sip:192.0.2.1;transport=TCP", SIP_TSX_TCP, AF_INET, "192.0.2.1", 5060},
        {"sip:[2001:db8::1]", SIP_TSX_UDP, AF_INET6, "2001:db8::1", 5060},
        {"sip:bob@[2001:db8::2]:5080;transport=udp", SIP_TSX_UDP, AF_INET6, "2001:db8::2", 5080},
        /* RFC 3263 4: maddr is the target; the name is never looked up */
        {"sip:bob@example.invalid;maddr=192.0.2.7", SIP_TSX_UDP, AF_INET, "192.0.2.7", 5060},
    };
    struct overlay_sip_resolver_config cfg;
    struct overlay_sip_resolver *r;
    uv_loop_t loop;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct answers a = {0};
        assert_int_equal(overlay_sip_resolver_resolve(r, cases[i].uri, on_answer, &a), 0);
        assert_int_equal(a.calls, 0); /* never inside the call */
        assert_int_equal(overlay_sip_resolver_pending(r), 1);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(a.calls, 1);
        assert_int_equal(a.status, 0);
        check_dest(&a.dest, cases[i].tp, cases[i].family, cases[i].ip, cases[i].port);
        assert_int_equal(overlay_sip_resolver_pending(r), 0);
    }
    struct answers a = {0};
    close_and_finish(&loop, r, &a);
}

static void test_resolver_refusals(void **state)
{
    static const struct {
        const char *uri;
        int rc;
    } cases[] = {
        {"sips:192.0.2.1", -EPROTONOSUPPORT}, /* no TLS here */
        {"sips:example.invalid", -EPROTONOSUPPORT},
        {"sip:192.0.2.1;transport=tls", -EPROTONOSUPPORT},
        {"sip:192.0.2.1;transport=sctp", -EPROTONOSUPPORT},
        {"sip:example.invalid;transport=tcp", -EPROTONOSUPPORT}, /* UDP only below */
        {"tel:+15551234567", -EINVAL},
        {"sip:", -EINVAL},
        {"http://example.invalid/", -EINVAL},
    };
    struct overlay_sip_resolver_config cfg;
    struct overlay_sip_resolver *r;
    struct answers a = {0};
    uv_loop_t loop;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    cfg.transports = OVERLAY_SIP_RESOLVER_UDP;
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(overlay_sip_resolver_resolve(r, cases[i].uri, on_answer, &a), cases[i].rc);
    assert_int_equal(overlay_sip_resolver_pending(r), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 0); /* an error and no callback */
    close_and_finish(&loop, r, &a);

    /* bad configurations */
    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    cfg.family = AF_UNIX;
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), -EINVAL);
    overlay_sip_resolver_config_default(&cfg);
    cfg.transports = 1u << SIP_TSX_TLS;
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), -EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_resolver_name_through_plan(void **state)
{
    struct overlay_sip_resolver_config cfg;
    struct overlay_sip_resolver *r;
    struct answers a = {0};
    struct zone z;
    uv_loop_t loop;
    (void)state;

    /* A name with no port goes through NAPTR and SRV on a worker thread; the SRV
     * targets are literals, so no name reaches getaddrinfo. */
    zone_init(&z);
    struct pkt *p = zone_add(&z, "example.test", ns_t_naptr);
    add_naptr(p, 1, 1, "s", "SIP+D2T", "", "_sip._tcp.example.test");
    p = zone_add(&z, "_sip._tcp.example.test", ns_t_srv);
    add_srv(p, 1, 0, 5099, "192.0.2.55");
    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    cfg.query = zone_query;
    cfg.query_arg = &z;
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), 0);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:carol@example.test", on_answer, &a), 0);
    assert_int_equal(a.calls, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    check_dest(&a.dest, SIP_TSX_TCP, AF_INET, "192.0.2.55", 5099);
    assert_int_equal(z.nasked, 2);

    /* A DNS failure comes back as the callback's status. */
    zone_add(&z, "broken.test", ns_t_naptr);
    z.e[z.n - 1].err = -EIO;
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:broken.test", on_answer, &a), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 2);
    assert_int_equal(a.status, -EIO);
    assert_int_equal(overlay_sip_resolver_pending(r), 0);
    close_and_finish(&loop, r, &a);
    zone_fini(&z);
}

static void test_resolver_cap(void **state)
{
    struct overlay_sip_resolver_config cfg;
    struct overlay_sip_resolver *r;
    struct answers a = {0};
    uv_loop_t loop;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    cfg.max_pending = 2;
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), 0);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:192.0.2.1", on_answer, &a), 0);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:192.0.2.2", on_answer, &a), 0);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:192.0.2.3", on_answer, &a), -ENOBUFS);
    assert_int_equal(overlay_sip_resolver_pending(r), 2);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 2); /* the refused one never answers */
    assert_int_equal(overlay_sip_resolver_pending(r), 0);
    /* room again */
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:192.0.2.3", on_answer, &a), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 3);
    check_dest(&a.dest, SIP_TSX_UDP, AF_INET, "192.0.2.3", 5060);
    close_and_finish(&loop, r, &a);
}

static void test_resolver_close_cancels(void **state)
{
    struct overlay_sip_resolver_config cfg;
    struct overlay_sip_resolver *r;
    struct answers a = {0};
    uv_loop_t loop;
    (void)state;

    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), 0);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:192.0.2.1", on_answer, &a), 0);
    overlay_sip_resolver_close(r, on_closed, &a);
    /* completed during close, so that a proxy may be freed right after */
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(a.closes, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 1); /* the numeric answer never follows */
    assert_int_equal(a.closes, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_resolver_close_with_worker_running(void **state)
{
    struct overlay_sip_resolver_config cfg;
    struct overlay_sip_resolver *r;
    struct answers a = {0};
    struct zone z;
    uv_loop_t loop;
    (void)state;

    zone_init(&z);
    z.block = true;
    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    cfg.query = zone_query;
    cfg.query_arg = &z;
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), 0);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:slow.test", on_answer, &a), 0);
    zone_wait_entered(&z); /* the worker is inside the query */
    overlay_sip_resolver_close(r, on_closed, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:192.0.2.1", on_answer, &a), -ECANCELED);
    zone_release(&z);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.closes, 1);
    /* answered: the worker asked no SRV question after the blocked NAPTR one */
    assert_int_equal(z.nasked, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    zone_fini(&z);
}

static void test_resolver_timeout(void **state)
{
    struct overlay_sip_resolver_config cfg;
    struct overlay_sip_resolver *r;
    struct answers a = {0};
    struct zone z;
    uv_loop_t loop;
    (void)state;

    zone_init(&z);
    z.block = true;
    a.release_on_answer = &z; /* the worker may end once the timeout has answered */
    assert_int_equal(uv_loop_init(&loop), 0);
    overlay_sip_resolver_config_default(&cfg);
    cfg.timeout_ms = 30;
    cfg.query = zone_query;
    cfg.query_arg = &z;
    assert_int_equal(overlay_sip_resolver_new(&r, &loop, &cfg, NULL), 0);
    assert_int_equal(overlay_sip_resolver_resolve(r, "sip:slow.test", on_answer, &a), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ETIMEDOUT);
    assert_true(z.entered);
    assert_int_equal(z.nasked, 1); /* nothing asked after the timeout */
    /* the late plan result was dropped and the resolution freed */
    assert_int_equal(overlay_sip_resolver_pending(r), 0);
    close_and_finish(&loop, r, &a);
    zone_fini(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naptr_filter_and_order),
        cmocka_unit_test(test_naptr_lowest_usable_order),
        cmocka_unit_test(test_naptr_none),
        cmocka_unit_test(test_naptr_truncated),
        cmocka_unit_test(test_srv_priority_and_weight),
        cmocka_unit_test(test_srv_weight_zero_first),
        cmocka_unit_test(test_srv_none_and_dot),
        cmocka_unit_test(test_plan_naptr_then_srv),
        cmocka_unit_test(test_plan_naptr_bounded),
        cmocka_unit_test(test_plan_no_naptr),
        cmocka_unit_test(test_plan_fallback_to_host),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_resolver_numeric_rules),
        cmocka_unit_test(test_resolver_refusals),
        cmocka_unit_test(test_resolver_name_through_plan),
        cmocka_unit_test(test_resolver_cap),
        cmocka_unit_test(test_resolver_close_cancels),
        cmocka_unit_test(test_resolver_close_with_worker_running),
        cmocka_unit_test(test_resolver_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
