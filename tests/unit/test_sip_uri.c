/*
 * test_sip_uri.c: SIP/SIPS/tel URI parsing, the RFC 3261 19.1.4 comparison (with
 * the RFC's own equivalent and non-equivalent examples) and the canonical AoR.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/sip_uri.h"

static bool sl_is(struct p2p_slice s, const char *want)
{
    return p2p_slice_eq(s, p2p_slice_cstr(want));
}

static struct sip_uri parse_ok(const char *s)
{
    struct sip_uri u;
    int rc = sip_uri_parse(p2p_slice_cstr(s), &u);
    if (rc != 0)
        fail_msg("%s: %d", s, rc);
    return u;
}

static void test_parse_parts(void **state)
{
    (void)state;
    struct sip_uri u =
        parse_ok("sips:alice:secret@Atlanta.COM:5061;transport=tcp;lr;maddr=239.255.255.1"
                 ";ttl=15;method=INVITE;user=phone;x=y?subject=a%20b&priority=urgent");
    assert_int_equal(u.scheme, SIP_URI_SIPS);
    assert_true(sl_is(u.user, "alice"));
    assert_true(sl_is(u.password, "secret"));
    assert_true(sl_is(u.host, "Atlanta.COM"));
    assert_true(u.has_port);
    assert_int_equal(u.port, 5061);
    assert_true(sl_is(u.transport, "tcp"));
    assert_true(u.lr);
    assert_true(sl_is(u.maddr, "239.255.255.1"));
    assert_true(sl_is(u.ttl, "15"));
    assert_true(sl_is(u.method, "INVITE"));
    assert_true(sl_is(u.user_param, "phone"));
    assert_true(sl_is(u.headers, "subject=a%20b&priority=urgent"));
    assert_true(sl_is(u.params,
                      ";transport=tcp;lr;maddr=239.255.255.1;ttl=15;method=INVITE;user=phone;x=y"));

    u = parse_ok("sip:[2001:db8::10]:5070");
    assert_true(sl_is(u.host, "[2001:db8::10]"));
    assert_int_equal(u.port, 5070);
    assert_int_equal(u.user.len, 0);
    /* RFC 5118 4.3: the last group is part of the address, not a port */
    u = parse_ok("sip:[2001:db8::10:5070]");
    assert_false(u.has_port);
    /* RFC 4475 3.1.1.9: ';' is a user character */
    u = parse_ok("sip:user;par=u%40example.net@example.com");
    assert_true(sl_is(u.user, "user;par=u%40example.net"));
    assert_true(sl_is(u.host, "example.com"));
    /* RFC 4475 3.1.1.4: escaped NULs */
    u = parse_ok("sip:null-%00-null@example.com");
    assert_true(sl_is(u.user, "null-%00-null"));
    u = parse_ok("sip:192.0.2.1;lr");
    assert_true(u.lr);
    u = parse_ok("tel:+1-201-555-0123;phone-context=example.com");
    assert_int_equal(u.scheme, SIP_URI_TEL);
    assert_true(sl_is(u.user, "+1-201-555-0123"));
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *bad[] = {
        "sip:",
        "sip:@example.com",
        "sip:a@",
        "sip:a@b:",
        "sip:a@b:65536",
        "sip:a@b:5x",
        "sip:a b@c",
        "sip:a@-b.com",
        "sip:a@b..com",
        "sip:a@[2001:db8::10",
        "sip:2001:db8::10",
        "sip:a@b;=x",
        "sip:a@b;x=",
        "sip:a@b?x",
        "sip:a@b?=x",
        "sip:a%4@b",
        "sip:a%zz@b",
        "sip:a@256.1.1.1",
        "sip:a@b#c",
        "tel:",
        "tel:+",
        "1sip:a@b",
        "<sip:a@b>",
        ":a@b",
    };
    struct sip_uri u;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int rc = sip_uri_parse(p2p_slice_cstr(bad[k]), &u);
        if (rc != -EBADMSG)
            fail_msg("%s: %d, want -EBADMSG", bad[k], rc);
    }
    /* RFC 4475 3.3.2, 3.3.3: another scheme is well-formed, answered 416 */
    assert_int_equal(sip_uri_parse(P2P_SLICE_LIT("nobodyKnowsThisScheme:totallyopaquecontent"), &u),
                     -EPROTONOSUPPORT);
    assert_int_equal(sip_uri_parse(P2P_SLICE_LIT("soap.beep://192.0.2.103:3002"), &u),
                     -EPROTONOSUPPORT);
    assert_int_equal(sip_uri_parse(P2P_SLICE_LIT("http://x y"), &u), -EBADMSG);
}

static bool eq(const char *a, const char *b)
{
    struct sip_uri x = parse_ok(a), y = parse_ok(b);
    bool r = sip_uri_equal(&x, &y);
    assert_true(sip_uri_equal(&y, &x) == r); /* symmetric */
    return r;
}

/* RFC 3261 19.1.4, the examples as the RFC lists them. */
static void test_rfc3261_equivalent(void **state)
{
    (void)state;
    assert_true(eq("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"));
    assert_true(eq("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"));
    assert_true(eq("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"));
    assert_true(eq("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"));
    assert_true(eq("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                   "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"));
    assert_true(eq("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                   "sip:alice@atlanta.com?priority=urgent&subject=project%20x"));
}

static void test_rfc3261_not_equivalent(void **state)
{
    (void)state;
    assert_false(eq("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"));
    assert_false(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
    assert_false(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"));
    assert_false(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"));
    assert_false(eq("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"));
    assert_false(eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
    assert_false(eq("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"));
}

static void test_more_equality(void **state)
{
    (void)state;
    assert_false(eq("sip:a@b", "sips:a@b"));
    assert_true(eq("sip:a@b;user=phone", "sip:a@b;USER=Phone"));
    assert_false(eq("sip:a@b;ttl=1", "sip:a@b"));
    assert_false(eq("sip:a@b;maddr=1.2.3.4", "sip:a@b"));
    assert_false(eq("sip:a@b;method=INVITE", "sip:a@b"));
    assert_true(eq("sip:a@b;lr", "sip:a@b"));
    assert_true(eq("sip:a@b;lr", "sip:a@b;LR"));
    assert_false(eq("sip:a:x@b", "sip:a@b"));
    assert_false(eq("sip:a:x@b", "sip:a:X@b"));
    assert_false(eq("sip:a@b?h=x", "sip:a@b?h=X"));
    assert_true(eq("sip:a@b?H=x", "sip:a@b?h=x"));
    assert_false(eq("sip:a@b?h=x&i=y", "sip:a@b?h=x"));
    /* repeated parameters and headers (found by fuzzing): still reflexive */
    assert_true(eq("sip:a@b;x=1;x=2", "sip:a@b;x=1;x=2"));
    assert_true(eq("sip:a@b;x=1;x=2", "sip:a@b;x=1"));
    assert_true(eq("sip:a@b?h=1&h=2", "sip:a@b?h=2&h=1"));
    assert_false(eq("sip:a@b?h=1&h=1", "sip:a@b?h=1&h=2"));
    /* IPv6 references compare as addresses (RFC 5954 4) */
    assert_true(eq("sip:a@[2001:DB8::1]", "sip:a@[2001:db8:0:0:0:0:0:1]"));
    assert_false(eq("sip:a@[2001:db8::1]", "sip:a@[2001:db8::2]"));
    /* tel: visual separators do not count (RFC 3966 4) */
    assert_true(eq("tel:+1-201-555-0123", "tel:+1.201.555.0123"));
    assert_false(eq("tel:+1-201-555-0123", "tel:+1-201-555-0124"));
    assert_false(eq("tel:1234;phone-context=a.com", "tel:1234"));
}

static const char *aor(const char *s, char *buf, size_t size)
{
    struct sip_uri u = parse_ok(s);
    int rc = sip_uri_aor(&u, buf, size);
    if (rc < 0)
        fail_msg("%s: %d", s, rc);
    assert_int_equal((size_t)rc, strlen(buf));
    return buf;
}

static void test_aor(void **state)
{
    (void)state;
    char b[128], c[128];

    assert_string_equal(aor("sip:alice@Example.ORG", b, sizeof(b)), "sip:alice@example.org");
    /* user keeps its case, escapes of unreserved characters are decoded */
    assert_string_equal(aor("SIP:%41lice@example.org;transport=tcp?subject=x", b, sizeof(b)),
                        "sip:Alice@example.org");
    /* a character that must stay escaped comes out in one canonical form */
    assert_string_equal(aor("sip:a%40b%2fc@example.org", b, sizeof(b)), "sip:a%40b/c@example.org");
    assert_string_equal(aor("sip:a%40b@example.org", b, sizeof(b)),
                        aor("sip:a%40b@EXAMPLE.org", c, sizeof(c)));
    assert_string_equal(aor("sip:a%20b@example.org", b, sizeof(b)), "sip:a%20b@example.org");
    /* the port is part of the AoR when given; the password never is */
    assert_string_equal(aor("sip:bob:pw@example.org:5070;lr", b, sizeof(b)),
                        "sip:bob@example.org:5070");
    assert_string_equal(aor("sips:bob@example.org", b, sizeof(b)), "sips:bob@example.org");
    assert_string_equal(aor("sip:[2001:DB8:0::1]:5060", b, sizeof(b)), "sip:[2001:db8::1]:5060");
    assert_string_equal(aor("sip:a@[2001:db8:::192.0.2.1]", b, sizeof(b)),
                        "sip:a@[2001:db8:::192.0.2.1]");
    assert_string_equal(aor("tel:+1-201-555-0123;phone-context=x", b, sizeof(b)),
                        "tel:+12015550123");
    /* equal URIs, equal keys */
    assert_string_equal(aor("sip:%61lice@atlanta.com;transport=TCP", b, sizeof(b)),
                        aor("sip:alice@AtLanTa.CoM;Transport=tcp", c, sizeof(c)));
    /* too small: -ENOSPC and an empty string */
    struct sip_uri u = parse_ok("sip:alice@example.org");
    assert_int_equal(sip_uri_aor(&u, b, 21), -ENOSPC);
    assert_string_equal(b, "");
    assert_int_equal(sip_uri_aor(&u, b, 22), 21);
}

static void test_unescape(void **state)
{
    (void)state;
    char b[16];
    assert_int_equal(sip_unescape(P2P_SLICE_LIT("a%41%2fb"), b, sizeof(b)), 4);
    assert_string_equal(b, "aA/b");
    assert_int_equal(sip_unescape(P2P_SLICE_LIT("a%4"), b, sizeof(b)), -EBADMSG);
    assert_int_equal(sip_unescape(P2P_SLICE_LIT("abcdefghijklmnopq"), b, sizeof(b)), -ENOSPC);
    assert_int_equal(sip_unescape(P2P_SLICE_LIT("x%00y"), b, sizeof(b)), 3);
    assert_int_equal(b[1], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_parts),        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_rfc3261_equivalent), cmocka_unit_test(test_rfc3261_not_equivalent),
        cmocka_unit_test(test_more_equality),      cmocka_unit_test(test_aor),
        cmocka_unit_test(test_unescape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
