/*
 * proxy_fixture.h: scaffolding shared by the proxy core unit tests
 * (test_sip_proxy.c, test_sip_proxy_lifetime.c, test_sip_proxy_overlay.c).
 * Test-only header: its functions are static and it is included by exactly one
 * .c file per test.
 *
 * The proxy runs on the real parser and transaction layer; only the network edge
 * and the clock are replaced.  The send callback records every message the proxy
 * sends (bytes, destination, parsed form) in struct fixture; the clock is
 * f->now, moved by advance(); the locator is a test double (fake_ops) whose one
 * pending lookup is kept in f->lk_cb / f->lk_arg until the test completes it
 * (each test file defines its own lookup_complete()).  fx_proxy_new() can put the
 * real registrar over a real local locator in its place (f->reg, f->loc).
 *
 * Before including, a test may define:
 *   PROXY_FIXTURE_MAX_SENT    how many sent messages are kept (default 64)
 *   PROXY_FIXTURE_SENT_BYTES  the largest message kept (default 8192)
 *   PROXY_FIXTURE_EXTRA       extra members appended to struct fixture
 * It must include <cmocka.h> (and its prerequisites) first.
 */
#ifndef P2P_TESTS_PROXY_FIXTURE_H
#define P2P_TESTS_PROXY_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "p2p/sip_locator.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_proxy.h"
#include "p2p/sip_registrar.h"
#include "p2p/sip_tsx.h"

#ifndef PROXY_FIXTURE_MAX_SENT
#define PROXY_FIXTURE_MAX_SENT 64
#endif
#ifndef PROXY_FIXTURE_SENT_BYTES
#define PROXY_FIXTURE_SENT_BYTES 8192
#endif
#ifndef PROXY_FIXTURE_EXTRA
#define PROXY_FIXTURE_EXTRA
#endif

struct sent {
    char bytes[PROXY_FIXTURE_SENT_BYTES];
    size_t len;
    struct sip_tsx_dest dest;
    struct sip_msg m;
};

struct fixture {
    struct sip_self self;
    struct sip_proxy *proxy;
    struct sent sent[PROXY_FIXTURE_MAX_SENT];
    size_t nsent;
    uint64_t now;
    /* test locator: one pending lookup at a time */
    sip_locator_lookup_cb lk_cb;
    void *lk_arg;
    char lk_aor[SIP_AOR_MAX];
    /* test locator's keep (offline MESSAGE): off unless keep_on; one pending */
    bool keep_on;
    sip_locator_publish_cb kp_cb;
    void *kp_arg;
    char kp_aor[SIP_AOR_MAX];
    size_t kp_len;
    uint16_t fail_port; /* sends to this port fail with -ECONNREFUSED (0: none) */
    /* fx_proxy_new(..., true): the real registrar and local locator (else NULL) */
    struct sip_registrar *reg;
    struct sip_locator_local *loc;
    PROXY_FIXTURE_EXTRA
};

static uint16_t port_of(const struct sip_tsx_dest *d)
{
    return ntohs(((const struct sockaddr_in *)&d->addr)->sin_port);
}

/* The proxy's send callback: records and parses every message it sends. */
static int on_send(const char *bytes, size_t len, const struct sip_tsx_dest *dest, void *arg)
{
    struct fixture *f = arg;
    struct sent *s;

    if (f->fail_port && port_of(dest) == f->fail_port)
        return -ECONNREFUSED;
    assert_true(f->nsent < PROXY_FIXTURE_MAX_SENT);
    assert_true(len < sizeof(s->bytes));
    s = &f->sent[f->nsent++];
    memcpy(s->bytes, bytes, len);
    s->len = len;
    s->dest = *dest;
    assert_true(sip_msg_parse(&s->m, s->bytes, s->len, SIP_MSG_DGRAM, NULL) > 0);
    return 0;
}

static int fake_lookup(void *ctx, const char *aor, sip_locator_lookup_cb cb, void *arg)
{
    struct fixture *f = ctx;
    assert_null(f->lk_cb);
    f->lk_cb = cb;
    f->lk_arg = arg;
    snprintf(f->lk_aor, sizeof(f->lk_aor), "%s", aor);
    return 0;
}

static int fake_publish(void *ctx, const struct sip_binding_change *c, size_t n,
                        sip_locator_publish_cb cb, void *arg)
{
    (void)ctx, (void)c, (void)n, (void)cb, (void)arg;
    return -ENOSYS;
}

static int fake_keep(void *ctx, const char *aor, const char *raw, size_t len,
                     sip_locator_publish_cb cb, void *arg)
{
    struct fixture *f = ctx;
    (void)raw;
    if (!f->keep_on)
        return -ENOSYS;
    assert_null(f->kp_cb);
    f->kp_cb = cb;
    f->kp_arg = arg;
    f->kp_len = len;
    snprintf(f->kp_aor, sizeof(f->kp_aor), "%s", aor);
    return 0;
}

static const struct sip_locator_ops fake_ops = {
    .lookup = fake_lookup, .publish = fake_publish, .keep = fake_keep};

/* Zeroes f, makes the proxy's self 10.0.0.1:5062 in domain example.org and fills
 * cfg with the defaults, the recording send callback and the fake locator.  The
 * caller adjusts cfg (and f->self) and creates the proxy with fx_proxy_new(). */
static void fx_config(struct fixture *f, struct sip_proxy_config *cfg)
{
    memset(f, 0, sizeof(*f));
    f->self.default_port = 5062;
    assert_int_equal(sip_self_add_addr(&f->self, "10.0.0.1", 5062), 0);
    assert_int_equal(sip_self_add_domain(&f->self, "example.org"), 0);
    sip_proxy_config_default(cfg);
    cfg->self = &f->self;
    cfg->send = on_send;
    cfg->send_arg = f;
    cfg->locator.ops = &fake_ops;
    cfg->locator.ctx = f;
}

/* Creates f->proxy from cfg (as fx_config() and the caller left it).  With
 * real_registrar the fake locator is replaced by a real local locator (f->loc,
 * 16 operations) and a real registrar (f->reg) answers REGISTERs through the
 * proxy. */
static void fx_proxy_new(struct fixture *f, struct sip_proxy_config *cfg, bool real_registrar)
{
    if (real_registrar) {
        assert_int_equal(sip_locator_local_new(&f->loc, 16), 0);
        cfg->locator = sip_locator_local_get(f->loc);
    }
    assert_int_equal(sip_proxy_new(&f->proxy, cfg), 0);
    if (real_registrar) {
        struct sip_registrar_config rc;
        sip_registrar_config_default(&rc);
        rc.locator = sip_locator_local_get(f->loc);
        rc.self = &f->self;
        rc.reply = sip_proxy_registrar_reply;
        rc.reply_arg = f->proxy;
        assert_int_equal(sip_registrar_new(&f->reg, &rc), 0);
        sip_locator_local_attach(f->loc, f->reg);
        sip_proxy_set_registrar(f->proxy, f->reg);
    }
}

/* Frees the proxy and, if fx_proxy_new() made them, the locator and registrar. */
static void fx_stop(struct fixture *f)
{
    sip_locator_local_free(f->loc);
    sip_proxy_free(f->proxy);
    sip_registrar_free(f->reg);
}

static struct sip_tsx_dest dest_of(const char *ip, uint16_t port, enum sip_tsx_transport tp)
{
    struct sip_tsx_dest d;
    assert_int_equal(sip_proxy_numeric_dest(p2p_slice_cstr(ip), port, P2P_SLICE_LIT(""), 0, &d), 0);
    d.transport = tp;
    return d;
}

/* The proxy receives text over UDP from ip:port at f->now. */
static void feed(struct fixture *f, const char *ip, uint16_t port, const char *text)
{
    struct sip_tsx_dest src = dest_of(ip, port, SIP_TSX_UDP);
    assert_int_equal(sip_proxy_recv(f->proxy, text, strlen(text), &src, f->now), 0);
}

/* Runs every timer up to 'to', in order, and leaves f->now at 'to'. */
static void advance(struct fixture *f, uint64_t to)
{
    while (sip_proxy_next_deadline(f->proxy) <= to) {
        f->now = sip_proxy_next_deadline(f->proxy);
        sip_proxy_advance(f->proxy, f->now);
    }
    f->now = to;
    sip_proxy_advance(f->proxy, to);
}

/* Index of the first sent message from index 'from' matching method (request) or
 * status (response, method NULL), to port (0: any); -1 if none. */
static int find_sent(struct fixture *f, size_t from, const char *method, unsigned status,
                     uint16_t port)
{
    for (size_t i = from; i < f->nsent; i++) {
        struct sent *s = &f->sent[i];
        if (port && port_of(&s->dest) != port)
            continue;
        if (method && s->m.is_request && p2p_slice_eq(s->m.method, p2p_slice_cstr(method)))
            return (int)i;
        if (!method && !s->m.is_request && s->m.status == status)
            return (int)i;
    }
    return -1;
}

/* How many sent messages match, as find_sent() does. */
static int count_sent(struct fixture *f, const char *method, unsigned status, uint16_t port)
{
    int n = 0;
    for (int i = find_sent(f, 0, method, status, port); i >= 0;
         i = find_sent(f, (size_t)i + 1, method, status, port))
        n++;
    return n;
}

/* Whether the sent message's bytes contain needle. */
static bool has(const struct sent *s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s->len; i++) {
        if (memcmp(s->bytes + i, needle, n) == 0)
            return true;
    }
    return false;
}

#endif
