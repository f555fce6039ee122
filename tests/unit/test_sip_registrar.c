/*
 * test_sip_registrar.c: the registrar (RFC 3261 10.3) fed real REGISTER text
 * through the real parser, with the local locator (or a test locator whose
 * publishes fail) and a fake clock; responses are captured from the reply callback
 * and parsed back with the real parser.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nettle/md5.h>

#include "p2p/sip_accounts.h"
#include "p2p/sip_build.h"
#include "p2p/sip_digest.h"
#include "p2p/sip_locator.h"
#include "p2p/sip_msg.h"
#include "p2p/sip_registrar.h"

struct fixture {
    struct sip_self self;
    struct sip_registrar *reg;
    struct sip_locator_local *loc;
    struct sip_accounts *acc;
    struct sip_digest *digest;
    /* captured responses */
    int replies;
    void *txn;
    char msg[8192];
    size_t len;
    struct sip_msg resp;
    /* expiry callback */
    int expired;
    char expired_contact[SIP_CONTACT_MAX];
    /* test locator whose publishes complete with publish_status on flush */
    bool use_fake;
    int publish_status;
    sip_locator_publish_cb fake_cb;
    void *fake_arg;
    size_t fake_n;
};

static void on_reply(void *txn, const char *msg, size_t len, void *arg)
{
    struct fixture *f = arg;
    assert_true(len < sizeof(f->msg));
    memcpy(f->msg, msg, len);
    f->len = len;
    f->txn = txn;
    f->replies++;
    assert_true(sip_msg_parse(&f->resp, f->msg, f->len, SIP_MSG_DGRAM, NULL) > 0);
    assert_false(f->resp.is_request);
}

static void on_expired(const struct sip_binding *b, void *arg)
{
    struct fixture *f = arg;
    f->expired++;
    strcpy(f->expired_contact, b->contact);
}

static int fake_lookup(void *ctx, const char *aor, sip_locator_lookup_cb cb, void *arg)
{
    (void)ctx, (void)aor, (void)cb, (void)arg;
    return -ENOSYS;
}

static int fake_publish(void *ctx, const struct sip_binding_change *ch, size_t n,
                        sip_locator_publish_cb cb, void *arg)
{
    struct fixture *f = ctx;
    (void)ch;
    assert_null(f->fake_cb);
    f->fake_cb = cb;
    f->fake_arg = arg;
    f->fake_n = n;
    return 0;
}

static const struct sip_locator_ops fake_ops = {.lookup = fake_lookup, .publish = fake_publish};

static void fx_start(struct fixture *f, const char *accounts, bool fake)
{
    struct sip_registrar_config cfg;
    char err[256];

    memset(f, 0, sizeof(*f));
    f->self.default_port = 5062;
    assert_int_equal(sip_self_add_addr(&f->self, "10.0.0.1", 5062), 0);
    sip_registrar_config_default(&cfg);
    if (accounts) {
        struct sip_digest_config dc;
        assert_int_equal(
            sip_accounts_parse(&f->acc, "accounts", accounts, strlen(accounts), err, sizeof(err)),
            0);
        sip_digest_config_default(&dc);
        dc.algs = SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5) | SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256);
        assert_int_equal(sip_digest_new(&f->digest, &dc), 0);
        cfg.accounts = f->acc;
        cfg.digest = f->digest;
        cfg.realm = "example.org";
    }
    f->use_fake = fake;
    if (fake) {
        cfg.locator.ops = &fake_ops;
        cfg.locator.ctx = f;
    } else {
        assert_int_equal(sip_locator_local_new(&f->loc, 16), 0);
        cfg.locator = sip_locator_local_get(f->loc);
    }
    cfg.self = &f->self;
    cfg.max_contacts = 3;
    cfg.max_aors = 4;
    cfg.reply = on_reply;
    cfg.reply_arg = f;
    cfg.expired = on_expired;
    cfg.expired_arg = f;
    assert_int_equal(sip_registrar_new(&f->reg, &cfg), 0);
    if (f->loc)
        sip_locator_local_attach(f->loc, f->reg);
}

static void fx_stop(struct fixture *f)
{
    sip_locator_local_free(f->loc); /* locator first: pending ops complete */
    sip_registrar_free(f->reg);
    sip_digest_free(f->digest);
    sip_accounts_free(f->acc);
}

/*
 * Sends a REGISTER for alice from src (127.0.0.1 when NULL).  contacts are the
 * Contact header lines' values (NULL: none), extra more header lines.
 */
static void do_register(struct fixture *f, const char *src, const char *callid, unsigned cseq,
                        const char *contacts, const char *extra, uint64_t now)
{
    static char buf[4096];
    struct sip_msg m;
    struct sip_path from = {0};
    int n;

    n = snprintf(buf, sizeof(buf),
                 "REGISTER sip:example.org SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-%s-%u;rport\r\n"
                 "Max-Forwards: 70\r\n"
                 "From: <sip:alice@example.org>;tag=a1\r\n"
                 "To: <sip:alice@Example.ORG>\r\n"
                 "Call-ID: %s\r\n"
                 "CSeq: %u REGISTER\r\n"
                 "%s%s%s"
                 "%s"
                 "Content-Length: 0\r\n\r\n",
                 callid, cseq, callid, cseq, contacts ? "Contact: " : "", contacts ? contacts : "",
                 contacts ? "\r\n" : "", extra ? extra : "");
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    assert_int_equal(sip_msg_parse(&m, buf, (size_t)n, SIP_MSG_DGRAM, NULL), n);
    assert_int_equal(sip_msg_validate(&m, NULL), 0);
    strcpy(from.host, src ? src : "127.0.0.1");
    from.port = 5070;
    strcpy(from.transport, "UDP");
    assert_int_equal(sip_registrar_register(f->reg, &m, &from, (void *)0x77, now), 0);
    /* The request buffer is reused: the registrar must have kept its own copy. */
    memset(buf, 'x', sizeof(buf));
}

/* Completes the pending publish (local locator: run; fake: flush with status). */
static void complete(struct fixture *f, uint64_t now)
{
    if (f->use_fake) {
        sip_locator_publish_cb cb = f->fake_cb;
        assert_non_null(cb);
        f->fake_cb = NULL;
        cb(f->publish_status, f->fake_arg);
    } else {
        assert_int_equal(sip_locator_local_run(f->loc, now), 1);
    }
}

static const char *hdr_value(struct fixture *f, enum sip_hdr_id id, char *dst, size_t size)
{
    const struct sip_hdr *h = sip_msg_hdr(&f->resp, id);
    if (!h)
        return NULL;
    assert_int_equal(p2p_slice_copy(h->value, dst, size), 0);
    return dst;
}

/* The response's Contact values joined with "|" (header order). */
static const char *contacts_of(struct fixture *f, char *dst, size_t size)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;
    size_t len = 0;

    dst[0] = '\0';
    sip_hdr_iter_init(&it, &f->resp, SIP_HDR_CONTACT);
    while (sip_hdr_iter_next(&it, &v)) {
        assert_true(len + v.len + 2 < size);
        if (len)
            dst[len++] = '|';
        memcpy(dst + len, v.p, v.len);
        len += v.len;
        dst[len] = '\0';
    }
    return dst;
}

static bool has_contact(struct fixture *f, const char *want)
{
    char all[2048];
    return strstr(contacts_of(f, all, sizeof(all)), want) != NULL;
}

static void test_add_refresh_remove(void **state)
{
    struct fixture f;
    char v[256];
    struct sip_binding b[4];
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", "Expires: 3600\r\n", 1000);
    /* Not answered before the publish completes (DESIGN.md: never a silent 200). */
    assert_int_equal(f.replies, 0);
    assert_int_equal(sip_registrar_binding_count(f.reg), 0);
    complete(&f, 1000);
    assert_int_equal(f.replies, 1);
    assert_ptr_equal(f.txn, (void *)0x77);
    assert_int_equal(f.resp.status, 200);
    assert_true(has_contact(&f, "<sip:alice@127.0.0.1:5070>;expires=3600"));
    /* RFC 3581: rport filled in on the response's Via, To got a tag. */
    assert_non_null(strstr(hdr_value(&f, SIP_HDR_VIA, v, sizeof(v)), "rport=5070"));
    assert_non_null(strstr(hdr_value(&f, SIP_HDR_TO, v, sizeof(v)), ";tag="));
    assert_int_equal(sip_registrar_binding_count(f.reg), 1);
    /* The AoR is canonical: the host was lower-cased. */
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 1000, b, 4), 1);
    assert_string_equal(b[0].contact, "sip:alice@127.0.0.1:5070");
    assert_string_equal(b[0].path.host, "127.0.0.1");
    assert_int_equal(b[0].path.port, 5070);
    assert_int_equal(b[0].expires_ms, 1000 + 3600 * 1000);

    /* Refresh, same Call-ID, higher CSeq, a shorter time from the Contact param
     * which wins over the Expires header. */
    do_register(&f, NULL, "c1", 2, "<sip:alice@127.0.0.1:5070>;expires=1800", "Expires: 3600\r\n",
                2000);
    complete(&f, 2000);
    assert_int_equal(f.resp.status, 200);
    assert_true(has_contact(&f, "expires=1800"));
    assert_int_equal(sip_registrar_binding_count(f.reg), 1);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 2000, b, 4), 1);
    assert_int_equal(b[0].expires_ms, 2000 + 1800 * 1000);
    assert_int_equal(b[0].cseq, 2);

    /* An older CSeq for the same Call-ID is refused, nothing published. */
    do_register(&f, NULL, "c1", 2, "<sip:alice@127.0.0.1:5070>", NULL, 3000);
    assert_int_equal(f.replies, 3);
    assert_int_equal(f.resp.status, 500);
    assert_non_null(sip_msg_hdr(&f.resp, SIP_HDR_RETRY_AFTER));
    assert_int_equal(sip_locator_local_pending(f.loc), 0);

    /* A different Call-ID may update it whatever its CSeq (RFC 3261 10.3 step 7). */
    do_register(&f, NULL, "c2", 1, "<sip:alice@127.0.0.1:5070>;expires=0", NULL, 4000);
    complete(&f, 4000);
    assert_int_equal(f.resp.status, 200);
    assert_null(sip_msg_hdr(&f.resp, SIP_HDR_CONTACT));
    assert_int_equal(sip_registrar_binding_count(f.reg), 0);
    /* The AoR is remembered without contact (issue 3), see test_remembered_aor. */
    assert_int_equal(sip_registrar_aor_count(f.reg), 1);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 4000, b, 4), 0);
    fx_stop(&f);
}

static void test_default_expires_and_query(void **state)
{
    struct fixture f;
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", NULL, 0);
    complete(&f, 0);
    assert_true(has_contact(&f, "expires=3600"));
    /* A REGISTER without Contact is a query: answered at once with the bindings,
     * remaining time counted from now. */
    do_register(&f, NULL, "c9", 1, NULL, NULL, 100 * 1000);
    assert_int_equal(f.replies, 2);
    assert_int_equal(f.resp.status, 200);
    assert_true(has_contact(&f, "<sip:alice@127.0.0.1:5070>;expires=3500"));
    /* Above the maximum: lowered to 86400. */
    do_register(&f, NULL, "c1", 2, "<sip:alice@127.0.0.1:5070>", "Expires: 999999\r\n", 100 * 1000);
    complete(&f, 100 * 1000);
    assert_true(has_contact(&f, "expires=86400"));
    fx_stop(&f);
}

static void test_multi_contacts_q(void **state)
{
    struct fixture f;
    struct sip_binding b[4];
    char all[2048];
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, NULL, "c1", 1,
                "<sip:alice@127.0.0.1:5070>;q=0.5, <sip:alice@127.0.0.1:5072>;q=1.0",
                "Expires: 600\r\n", 0);
    complete(&f, 0);
    assert_int_equal(f.resp.status, 200);
    contacts_of(&f, all, sizeof(all));
    assert_non_null(strstr(all, "<sip:alice@127.0.0.1:5070>;expires=600;q=0.500"));
    assert_non_null(strstr(all, "<sip:alice@127.0.0.1:5072>;expires=600"));
    /* Another phone of alice with another Call-ID, 100 s later. */
    do_register(&f, NULL, "c2", 1, "<sip:alice@127.0.0.1:5074>;q=0.7", "Expires: 600\r\n",
                100 * 1000);
    complete(&f, 100 * 1000);
    contacts_of(&f, all, sizeof(all));
    /* The 200 lists all current bindings with their remaining expiry. */
    assert_non_null(strstr(all, "<sip:alice@127.0.0.1:5070>;expires=500"));
    assert_non_null(strstr(all, "<sip:alice@127.0.0.1:5072>;expires=500"));
    assert_non_null(strstr(all, "<sip:alice@127.0.0.1:5074>;expires=600;q=0.700"));
    /* Lookup returns them highest q first. */
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 100 * 1000, b, 4), 3);
    assert_string_equal(b[0].contact, "sip:alice@127.0.0.1:5072");
    assert_string_equal(b[1].contact, "sip:alice@127.0.0.1:5074");
    assert_string_equal(b[2].contact, "sip:alice@127.0.0.1:5070");
    /* Asked for one only: the best one. */
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 100 * 1000, b, 1), 1);
    assert_string_equal(b[0].contact, "sip:alice@127.0.0.1:5072");
    /* A fourth contact passes max_contacts (3): 403, nothing changes. */
    do_register(&f, NULL, "c3", 1, "<sip:alice@127.0.0.1:5076>", NULL, 100 * 1000);
    assert_int_equal(f.resp.status, 403);
    assert_int_equal(sip_registrar_binding_count(f.reg), 3);
    /* Replacing one contact by another in one request fits the limit. */
    do_register(&f, NULL, "c3", 1,
                "<sip:alice@127.0.0.1:5074>;expires=0, <sip:alice@127.0.0.1:5076>", NULL,
                100 * 1000);
    complete(&f, 100 * 1000);
    assert_int_equal(f.resp.status, 200);
    assert_int_equal(sip_registrar_binding_count(f.reg), 3);
    assert_false(has_contact(&f, "5074"));
    assert_true(has_contact(&f, "<sip:alice@127.0.0.1:5076>;expires=3600"));
    /* The same contact twice in one request is refused. */
    do_register(&f, NULL, "c3", 3, "<sip:alice@127.0.0.1:5070>, <sip:alice@127.0.0.1:5070>", NULL,
                100 * 1000);
    assert_int_equal(f.resp.status, 400);
    fx_stop(&f);
}

static void test_star(void **state)
{
    struct fixture f;
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>, <sip:alice@127.0.0.1:5072>", NULL,
                0);
    complete(&f, 0);
    assert_int_equal(sip_registrar_binding_count(f.reg), 2);
    /* "*" without Expires: 0 is a 400 (RFC 3261 10.3 step 6). */
    do_register(&f, NULL, "c1", 2, "*", NULL, 0);
    assert_int_equal(f.resp.status, 400);
    do_register(&f, NULL, "c1", 3, "*", "Expires: 10\r\n", 0);
    assert_int_equal(f.resp.status, 400);
    /* Same Call-ID with a CSeq not higher: refused. */
    do_register(&f, NULL, "c1", 1, "*", "Expires: 0\r\n", 0);
    assert_int_equal(f.resp.status, 500);
    assert_int_equal(sip_registrar_binding_count(f.reg), 2);
    do_register(&f, NULL, "c1", 4, "*", "Expires: 0\r\n", 0);
    complete(&f, 0);
    assert_int_equal(f.resp.status, 200);
    assert_null(sip_msg_hdr(&f.resp, SIP_HDR_CONTACT));
    assert_int_equal(sip_registrar_binding_count(f.reg), 0);
    /* No binding left: the next deadline is the end of the AoR's remembering. */
    assert_int_equal(sip_registrar_next_deadline(f.reg), 86400u * 1000u);
    fx_stop(&f);
}

static void test_interval_too_brief(void **state)
{
    struct fixture f;
    char v[64];
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", "Expires: 10\r\n", 0);
    assert_int_equal(f.replies, 1);
    assert_int_equal(f.resp.status, 423);
    assert_string_equal(hdr_value(&f, SIP_HDR_MIN_EXPIRES, v, sizeof(v)), "60");
    assert_int_equal(sip_locator_local_pending(f.loc), 0);
    /* Expires 0 is not "too brief": it is a removal. */
    do_register(&f, NULL, "c1", 2, "<sip:alice@127.0.0.1:5070>;expires=0", "Expires: 10\r\n", 0);
    assert_int_equal(f.resp.status, 200);
    fx_stop(&f);
}

static void test_expiry_on_time(void **state)
{
    struct fixture f;
    struct sip_binding b[4];
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>;expires=60", NULL, 5000);
    complete(&f, 5000);
    do_register(&f, NULL, "c2", 1, "<sip:alice@127.0.0.1:5072>;expires=120", NULL, 5000);
    complete(&f, 5000);
    assert_int_equal(sip_registrar_next_deadline(f.reg), 65000);
    assert_int_equal(sip_registrar_advance(f.reg, 64999), 0);
    assert_int_equal(sip_registrar_binding_count(f.reg), 2);
    assert_int_equal(sip_registrar_advance(f.reg, 65000), 1);
    assert_int_equal(f.expired, 1);
    assert_string_equal(f.expired_contact, "sip:alice@127.0.0.1:5070");
    assert_int_equal(sip_registrar_next_deadline(f.reg), 125000);
    /* A lookup never returns an expired binding, even before advance() ran. */
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 125000, b, 4), 0);
    assert_int_equal(sip_registrar_advance(f.reg, 200000), 1);
    /* Expired, the AoR is still known without contact (the proxy's 480) for
     * max_expires_s (86400 s) after the advance() that saw its last binding go. */
    assert_int_equal(sip_registrar_aor_count(f.reg), 1);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 200000, b, 4), 0);
    assert_int_equal(sip_registrar_next_deadline(f.reg), 200000 + 86400u * 1000u);
    assert_int_equal(sip_registrar_advance(f.reg, 200000 + 86400u * 1000u - 1), 0);
    assert_int_equal(sip_registrar_aor_count(f.reg), 1);
    assert_int_equal(sip_registrar_advance(f.reg, 200000 + 86400u * 1000u), 0);
    assert_int_equal(sip_registrar_aor_count(f.reg), 0);
    assert_int_equal(sip_registrar_next_deadline(f.reg), UINT64_MAX);
    assert_int_equal(
        sip_registrar_lookup(f.reg, "sip:alice@example.org", 200000 + 86400u * 1000u, b, 4),
        -ENOENT);
    fx_stop(&f);
}

/*
 * Issue 3: an AoR whose bindings were removed stays known (lookup 0, the proxy's
 * 480) until max_expires_s after, then is unknown (-ENOENT, 404), even before
 * advance() runs; an AoR never registered is unknown; a failed first REGISTER
 * leaves nothing to remember; a new REGISTER takes a remembered AoR back.
 */
static void test_remembered_aor(void **state)
{
    struct fixture f;
    struct sip_binding b[4];
    const uint64_t keep = 86400u * 1000u;
    (void)state;

    fx_start(&f, NULL, false);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 0, b, 4), -ENOENT);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", NULL, 1000);
    complete(&f, 1000);
    do_register(&f, NULL, "c1", 2, "<sip:alice@127.0.0.1:5070>", "Expires: 0\r\n", 5000);
    complete(&f, 5000);
    assert_int_equal(f.resp.status, 200);
    assert_int_equal(sip_registrar_binding_count(f.reg), 0);
    assert_int_equal(sip_registrar_aor_count(f.reg), 1);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 5000, b, 4), 0);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:bob@example.org", 5000, b, 4), -ENOENT);
    assert_int_equal(sip_registrar_next_deadline(f.reg), 5000 + keep);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 5000 + keep - 1, b, 4),
                     0);
    /* Time is up: unknown at once, forgotten by advance(). */
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 5000 + keep, b, 4),
                     -ENOENT);
    assert_int_equal(sip_registrar_advance(f.reg, 5000 + keep), 0);
    assert_int_equal(sip_registrar_aor_count(f.reg), 0);
    assert_int_equal(sip_registrar_next_deadline(f.reg), UINT64_MAX);

    /* Registered again, then its binding removed by the keep-alive path. */
    do_register(&f, NULL, "c2", 1, "<sip:alice@127.0.0.1:5072>", NULL, 6000 + keep);
    complete(&f, 6000 + keep);
    assert_int_equal(
        sip_registrar_remove(f.reg, "sip:alice@example.org", "sip:alice@127.0.0.1:5072"), 0);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 6000 + keep, b, 4), 0);
    /* A REGISTER takes it back into use: when that binding expires, the AoR is
     * remembered anew, not forgotten at the first remembering's deadline. */
    do_register(&f, NULL, "c2", 2, "<sip:alice@127.0.0.1:5072>", NULL, 7000 + keep);
    complete(&f, 7000 + keep);
    assert_int_equal(sip_registrar_next_deadline(f.reg), 7000 + keep + 3600 * 1000);
    assert_int_equal(sip_registrar_advance(f.reg, 6000 + 2 * keep), 1);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 6000 + 2 * keep, b, 4),
                     0);
    fx_stop(&f);

    /* A first REGISTER whose publish fails bound nothing: not remembered. */
    fx_start(&f, NULL, true);
    f.publish_status = -ETIMEDOUT;
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", NULL, 0);
    complete(&f, 0);
    assert_int_equal(f.resp.status, 503);
    assert_int_equal(sip_registrar_aor_count(f.reg), 0);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 0, b, 4), -ENOENT);
    fx_stop(&f);
}

/*
 * Remembered AoRs count against max_aors (4 here) but give way, oldest first, to
 * a new AoR; when live AoRs alone fill the table, a REGISTER still gets 503.
 */
static void test_max_aors_evicts_remembered(void **state)
{
    struct fixture f;
    struct sip_binding b = {0}, got[2];
    (void)state;

    fx_start(&f, NULL, false);
    for (int i = 0; i < 4; i++) {
        snprintf(b.aor, sizeof(b.aor), "sip:u%d@example.org", i);
        snprintf(b.contact, sizeof(b.contact), "sip:u%d@127.0.0.1:6000", i);
        b.expires_ms = 10000u * (unsigned)(i + 1);
        b.q = 1000;
        assert_int_equal(sip_registrar_restore(f.reg, &b, 0), 0);
    }
    /* u0 then u1 expire: remembered, in that order, still counted. */
    assert_int_equal(sip_registrar_advance(f.reg, 10000), 1);
    assert_int_equal(sip_registrar_advance(f.reg, 20000), 1);
    assert_int_equal(sip_registrar_aor_count(f.reg), 4);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:u0@example.org", 20000, got, 2), 0);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:u1@example.org", 20000, got, 2), 0);
    /* A REGISTER of a fifth AoR: u0, the oldest remembered, makes room. */
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", NULL, 20000);
    complete(&f, 20000);
    assert_int_equal(f.resp.status, 200);
    assert_int_equal(sip_registrar_aor_count(f.reg), 4);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:u0@example.org", 20000, got, 2), -ENOENT);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:u1@example.org", 20000, got, 2), 0);
    /* A restored sixth AoR takes u1's place; then only live AoRs are left. */
    strcpy(b.aor, "sip:u4@example.org");
    strcpy(b.contact, "sip:u4@127.0.0.1:6000");
    b.expires_ms = 500000;
    assert_int_equal(sip_registrar_restore(f.reg, &b, 20000), 0);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:u1@example.org", 20000, got, 2), -ENOENT);
    strcpy(b.aor, "sip:u5@example.org");
    assert_int_equal(sip_registrar_restore(f.reg, &b, 20000), -ENOSPC);
    /* alice's binding removed: remembered; the table is full of live AoRs plus
     * alice, so a new AoR evicts alice, and with four live ones, 503. */
    do_register(&f, NULL, "c1", 2, "<sip:alice@127.0.0.1:5070>", "Expires: 0\r\n", 20000);
    complete(&f, 20000);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 20000, got, 2), 0);
    assert_int_equal(sip_registrar_restore(f.reg, &b, 20000), 0);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 20000, got, 2), -ENOENT);
    assert_int_equal(sip_registrar_aor_count(f.reg), 4);
    do_register(&f, NULL, "c1", 3, "<sip:alice@127.0.0.1:5070>", NULL, 20000);
    assert_int_equal(f.resp.status, 503);
    assert_int_equal(sip_registrar_aor_count(f.reg), 4);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:u2@example.org", 20000, got, 2), 1);
    fx_stop(&f);
}

static void test_publish_failure_503(void **state)
{
    struct fixture f;
    char v[32];
    (void)state;

    fx_start(&f, NULL, true);
    f.publish_status = -ETIMEDOUT;
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", NULL, 0);
    assert_int_equal(f.replies, 0);
    assert_int_equal(f.fake_n, 1);
    /* A second REGISTER of the same AoR while the first is in flight: 500. */
    do_register(&f, NULL, "c1", 2, "<sip:alice@127.0.0.1:5072>", NULL, 0);
    assert_int_equal(f.replies, 1);
    assert_int_equal(f.resp.status, 500);
    complete(&f, 0);
    assert_int_equal(f.replies, 2);
    assert_int_equal(f.resp.status, 503);
    assert_string_equal(hdr_value(&f, SIP_HDR_RETRY_AFTER, v, sizeof(v)), "5");
    assert_int_equal(sip_registrar_binding_count(f.reg), 0);
    assert_int_equal(sip_registrar_aor_count(f.reg), 0);
    /* Now the store works: 200. */
    f.publish_status = 0;
    do_register(&f, NULL, "c1", 3, "<sip:alice@127.0.0.1:5070>", NULL, 0);
    complete(&f, 0);
    assert_int_equal(f.resp.status, 200);
    assert_int_equal(sip_registrar_binding_count(f.reg), 1);
    /* A transaction forgotten before completion: committed, but no reply. */
    do_register(&f, NULL, "c1", 4, "<sip:alice@127.0.0.1:5072>", NULL, 0);
    sip_registrar_forget(f.reg, (void *)0x77);
    complete(&f, 0);
    assert_int_equal(f.replies, 3);
    assert_int_equal(sip_registrar_binding_count(f.reg), 2);
    fx_stop(&f);
}

static void test_cut_off_and_limits(void **state)
{
    struct fixture f;
    char req[64];
    (void)state;

    fx_start(&f, NULL, false);
    sip_registrar_set_cut_off(f.reg, true);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", NULL, 0);
    assert_int_equal(f.resp.status, 503);
    assert_non_null(sip_msg_hdr(&f.resp, SIP_HDR_RETRY_AFTER));
    sip_registrar_set_cut_off(f.reg, false);
    /* Require names an extension we lack: 420 with Unsupported. */
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", "Require: foo\r\n", 0);
    assert_int_equal(f.resp.status, 420);
    assert_string_equal(hdr_value(&f, SIP_HDR_UNSUPPORTED, req, sizeof(req)), "foo");
    fx_stop(&f);
}

static void test_max_aors(void **state)
{
    struct fixture f;
    struct sip_binding b = {0};
    (void)state;

    fx_start(&f, NULL, false);
    /* max_aors is 4: restore 4 AoRs, then a REGISTER of a fifth gets 503. */
    for (int i = 0; i < 4; i++) {
        snprintf(b.aor, sizeof(b.aor), "sip:u%d@example.org", i);
        snprintf(b.contact, sizeof(b.contact), "sip:u%d@127.0.0.1:6000", i);
        b.expires_ms = 100000;
        b.q = 1000;
        assert_int_equal(sip_registrar_restore(f.reg, &b, 0), 0);
    }
    assert_int_equal(sip_registrar_restore(f.reg, &b, 0), -EEXIST);
    assert_int_equal(sip_registrar_restore(f.reg, &b, 100000), -ETIME);
    assert_int_equal(sip_registrar_aor_count(f.reg), 4);
    do_register(&f, NULL, "c1", 1, "<sip:alice@127.0.0.1:5070>", NULL, 0);
    assert_int_equal(f.resp.status, 503);
    assert_int_equal(sip_registrar_aor_count(f.reg), 4);
    fx_stop(&f);
}

static int count_cb_n;
static void count_cb(const struct sip_binding *b, void *arg)
{
    (void)arg;
    assert_non_null(strstr(b->aor, "@example.org"));
    count_cb_n++;
}

static void test_restore_lookup_foreach(void **state)
{
    struct fixture f;
    struct sip_binding b = {0}, got[2];
    (void)state;

    fx_start(&f, NULL, false);
    strcpy(b.aor, "sip:bob@example.org");
    strcpy(b.contact, "sip:bob@127.0.0.1:7000");
    strcpy(b.call_id, "x");
    b.cseq = 5;
    b.expires_ms = 50000;
    b.q = 1000;
    assert_int_equal(sip_registrar_restore(f.reg, &b, 0), 0);
    strcpy(b.contact, "sip:bob@127.0.0.1:7002");
    assert_int_equal(sip_registrar_restore(f.reg, &b, 0), 0);
    strcpy(b.contact, "not a uri");
    assert_int_equal(sip_registrar_restore(f.reg, &b, 0), -EINVAL);
    count_cb_n = 0;
    sip_registrar_foreach(f.reg, count_cb, NULL);
    assert_int_equal(count_cb_n, 2);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:bob@example.org", 0, got, 2), 2);
    assert_int_equal(sip_registrar_next_deadline(f.reg), 50000);
    fx_stop(&f);
}

static void test_local_phones_only(void **state)
{
    struct fixture f;
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, "192.0.2.50", "c1", 1, "<sip:alice@192.0.2.50:5070>", NULL, 0);
    assert_int_equal(f.resp.status, 403);
    assert_int_equal(sip_locator_local_pending(f.loc), 0);
    /* One of our own addresses (another port) is this host too. */
    do_register(&f, "10.0.0.1", "c1", 2, "<sip:alice@10.0.0.1:5070>", NULL, 0);
    complete(&f, 0);
    assert_int_equal(f.resp.status, 200);
    fx_stop(&f);
}

/* ---- digest ---- */

static void md5_hex(const char *s, char out[33])
{
    struct md5_ctx c;
    uint8_t d[MD5_DIGEST_SIZE];
    md5_init(&c);
    md5_update(&c, strlen(s), (const uint8_t *)s);
    md5_digest(&c, sizeof(d), d);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* Takes the MD5 challenge's nonce out of the 401 just captured. */
static void md5_nonce(struct fixture *f, char *nonce, size_t size)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;
    bool found = false;

    sip_hdr_iter_init(&it, &f->resp, SIP_HDR_WWW_AUTHENTICATE);
    while (sip_hdr_iter_next(&it, &v)) {
        struct sip_auth ch;
        assert_int_equal(sip_auth_parse(v, &ch), 0);
        assert_true(p2p_slice_eq(ch.realm, P2P_SLICE_LIT("example.org")));
        if (ch.algorithm.len == 0 || p2p_slice_caseeq_cstr(ch.algorithm, "MD5")) {
            assert_int_equal(p2p_slice_copy(ch.nonce, nonce, size), 0);
            found = true;
        }
    }
    assert_true(found);
}

static void authorization(char *dst, size_t size, const char *user, const char *password,
                          const char *nonce)
{
    char a1[256], ha1[33], ha2[33], r[512], resp[33];

    snprintf(a1, sizeof(a1), "%s:example.org:%s", user, password);
    md5_hex(a1, ha1);
    md5_hex("REGISTER:sip:example.org", ha2);
    snprintf(r, sizeof(r), "%s:%s:00000001:0a4f113b:auth:%s", ha1, nonce, ha2);
    md5_hex(r, resp);
    snprintf(dst, size,
             "Authorization: Digest username=\"%s\", realm=\"example.org\", nonce=\"%s\", "
             "uri=\"sip:example.org\", response=\"%s\", algorithm=MD5, cnonce=\"0a4f113b\", "
             "qop=auth, nc=00000001\r\n",
             user, nonce, resp);
}

static void test_digest(void **state)
{
    struct fixture f;
    char nonce[128], auth[1024];
    (void)state;

    fx_start(&f,
             "# test accounts\n"
             "sip:alice@example.org  wonderland\n"
             "sip:bob@example.org HA1-md5:00000000000000000000000000000000\n",
             false);
    /* From anywhere, a REGISTER without credentials is challenged. */
    do_register(&f, "192.0.2.50", "c1", 1, "<sip:alice@192.0.2.50:5070>", NULL, 0);
    assert_int_equal(f.resp.status, 401);
    assert_int_equal(sip_msg_hdr_count(&f.resp, SIP_HDR_WWW_AUTHENTICATE), 2);
    md5_nonce(&f, nonce, sizeof(nonce));
    /* Wrong password: challenged again, nothing published. */
    authorization(auth, sizeof(auth), "alice", "queen", nonce);
    do_register(&f, "192.0.2.50", "c1", 2, "<sip:alice@192.0.2.50:5070>", auth, 10);
    assert_int_equal(f.resp.status, 401);
    assert_int_equal(sip_locator_local_pending(f.loc), 0);
    /* Right password: accepted, 200 after the publish. */
    authorization(auth, sizeof(auth), "alice", "wonderland", nonce);
    do_register(&f, "192.0.2.50", "c1", 3, "<sip:alice@192.0.2.50:5070>", auth, 20);
    assert_int_equal(f.replies, 2);
    complete(&f, 20);
    assert_int_equal(f.resp.status, 200);
    assert_int_equal(sip_registrar_binding_count(f.reg), 1);
    /* The same credentials again (same nc): a replay, refused. */
    do_register(&f, "192.0.2.50", "c1", 4, "<sip:alice@192.0.2.50:5070>", auth, 30);
    assert_int_equal(f.resp.status, 401);
    /* Bob's credentials cannot register alice's AoR (username is not hers). */
    do_register(&f, "192.0.2.50", "c9", 1, NULL, NULL, 40);
    md5_nonce(&f, nonce, sizeof(nonce));
    authorization(auth, sizeof(auth), "bob", "x", nonce);
    do_register(&f, "192.0.2.50", "c9", 2, "<sip:alice@192.0.2.50:5072>", auth, 50);
    assert_int_equal(f.resp.status, 401);
    assert_int_equal(sip_registrar_binding_count(f.reg), 1);
    fx_stop(&f);
}

/* SIGHUP: a running registrar takes new accounts and limits; a bad policy changes nothing. */
static void test_reconfigure(void **state)
{
    struct fixture f;
    struct sip_registrar_config cfg;
    struct sip_accounts *acc;
    struct sip_digest *digest;
    struct sip_digest_config dc;
    char err[256], v[64];
    static const char accounts[] = "sip:alice@example.org wonderland\n";
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, "192.0.2.50", "c1", 1, "<sip:alice@192.0.2.50:5070>", NULL, 0);
    assert_int_equal(f.resp.status, 403);

    assert_int_equal(
        sip_accounts_parse(&acc, "accounts", accounts, strlen(accounts), err, sizeof(err)), 0);
    sip_digest_config_default(&dc);
    assert_int_equal(sip_digest_new(&digest, &dc), 0);
    sip_registrar_config_default(&cfg);
    cfg.accounts = acc; /* without digest and realm: refused, nothing changes */
    cfg.max_contacts = 3;
    cfg.max_aors = 4;
    assert_int_equal(sip_registrar_reconfigure(f.reg, &cfg), -EINVAL);
    do_register(&f, "192.0.2.50", "c1", 2, "<sip:alice@192.0.2.50:5070>", NULL, 0);
    assert_int_equal(f.resp.status, 403);

    cfg.digest = digest;
    cfg.realm = "example.org";
    cfg.min_expires_s = 120;
    assert_int_equal(sip_registrar_reconfigure(f.reg, &cfg), 0);
    /* Now a remote phone is challenged instead of refused... */
    do_register(&f, "192.0.2.50", "c1", 3, "<sip:alice@192.0.2.50:5070>", NULL, 10);
    assert_int_equal(f.resp.status, 401);
    /* ... and the new Min-Expires applies (RFC 3261 10.3 step 7). */
    do_register(&f, "10.0.0.1", "c2", 1, "<sip:alice@10.0.0.1:5070>;expires=60", NULL, 20);
    assert_int_equal(f.resp.status, 401);
    fx_stop(&f);
    sip_digest_free(digest);
    sip_accounts_free(acc);

    /* The limits alone, without accounts: 423 with the new Min-Expires. */
    fx_start(&f, NULL, false);
    sip_registrar_config_default(&cfg);
    cfg.min_expires_s = 120;
    cfg.max_contacts = 3;
    cfg.max_aors = 4;
    assert_int_equal(sip_registrar_reconfigure(f.reg, &cfg), 0);
    do_register(&f, NULL, "c3", 1, "<sip:alice@127.0.0.1:5070>;expires=60", NULL, 0);
    assert_int_equal(f.resp.status, 423);
    assert_string_equal(hdr_value(&f, SIP_HDR_MIN_EXPIRES, v, sizeof(v)), "120");
    fx_stop(&f);
}

static void test_instance_id(void **state)
{
    static struct fixture f;
    struct sip_binding b[4];
    (void)state;

    fx_start(&f, NULL, false);
    do_register(&f, NULL, "c1", 1,
                "<sip:alice@127.0.0.1:5070>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-"
                "000A95A0E128>\"",
                NULL, 0);
    complete(&f, 0);
    assert_true(has_contact(&f, "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-"
                                "000A95A0E128>\""));
    /* RFC 5626 6: the same instance with a new Contact (new port after a
     * restart) replaces its binding, even with another Call-ID */
    do_register(&f, NULL, "c2", 1,
                "<sip:alice@127.0.0.1:5080>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-"
                "000A95A0E128>\"",
                NULL, 0);
    complete(&f, 0);
    assert_int_equal(sip_registrar_binding_count(f.reg), 1);
    assert_int_equal(sip_registrar_lookup(f.reg, "sip:alice@example.org", 0, b, 4), 1);
    assert_string_equal(b[0].contact, "sip:alice@127.0.0.1:5080");
    fx_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_refresh_remove),
        cmocka_unit_test(test_default_expires_and_query),
        cmocka_unit_test(test_multi_contacts_q),
        cmocka_unit_test(test_star),
        cmocka_unit_test(test_interval_too_brief),
        cmocka_unit_test(test_expiry_on_time),
        cmocka_unit_test(test_publish_failure_503),
        cmocka_unit_test(test_cut_off_and_limits),
        cmocka_unit_test(test_max_aors),
        cmocka_unit_test(test_remembered_aor),
        cmocka_unit_test(test_max_aors_evicts_remembered),
        cmocka_unit_test(test_restore_lookup_foreach),
        cmocka_unit_test(test_local_phones_only),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_instance_id),
        cmocka_unit_test(test_reconfigure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
