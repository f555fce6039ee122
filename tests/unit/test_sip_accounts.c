/*
 * test_sip_accounts.c: the accounts file format (sip_accounts.h): accepted forms,
 * canonical AoR lookup, and every error naming file:line.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "p2p/sip_accounts.h"

static int parse(const char *text, struct sip_accounts **out, char *err, size_t errlen)
{
    return sip_accounts_parse(out, "acc.txt", text, strlen(text), err, errlen);
}

static void test_forms(void **state)
{
    struct sip_accounts *acc = NULL;
    const struct sip_account *a;
    char err[256] = "";
    (void)state;

    assert_int_equal(parse("# comment\n"
                           "\n"
                           "  sip:Alice@EXAMPLE.org   two words \r\n"
                           "sip:bob@example.org\tHA1-md5:0123456789ABCDEF0123456789abcdef\n"
                           "sips:carol@example.org HA1-sha256:"
                           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                           &acc, err, sizeof(err)),
                     0);
    assert_int_equal(sip_accounts_count(acc), 3);
    /* Canonical AoR: host lower-cased, user case kept. */
    a = sip_accounts_find(acc, P2P_SLICE_LIT("sip:Alice@example.org"));
    assert_non_null(a);
    assert_string_equal(a->user, "Alice");
    assert_int_equal(a->kind, SIP_SECRET_PASSWORD);
    assert_string_equal(a->secret, "two words");
    assert_null(sip_accounts_find(acc, P2P_SLICE_LIT("sip:alice@example.org")));
    a = sip_accounts_find(acc, P2P_SLICE_LIT("sip:bob@example.org"));
    assert_non_null(a);
    assert_int_equal(a->kind, SIP_SECRET_HA1_MD5);
    assert_string_equal(a->secret, "0123456789abcdef0123456789abcdef"); /* lower-cased */
    a = sip_accounts_find(acc, P2P_SLICE_LIT("sips:carol@example.org"));
    assert_non_null(a);
    assert_int_equal(a->kind, SIP_SECRET_HA1_SHA256);
    assert_null(sip_accounts_find(acc, P2P_SLICE_LIT("sip:carol@example.org")));
    assert_null(sip_accounts_find(acc, P2P_SLICE_LIT("sip:zed@example.org")));
    sip_accounts_free(acc);
}

static void expect_error(const char *text, int code, const char *msg)
{
    struct sip_accounts *acc = (struct sip_accounts *)0x1;
    char err[256] = "";

    assert_int_equal(parse(text, &acc, err, sizeof(err)), code);
    assert_ptr_equal(acc, (struct sip_accounts *)0x1); /* untouched on failure */
    assert_string_equal(err, msg);
}

static void test_errors(void **state)
{
    char *big;
    (void)state;

    expect_error("sip:a@x.org\n", -EINVAL, "acc.txt:1: missing secret after the AoR");
    expect_error("# c\nnot-a-uri pw\n", -EINVAL, "acc.txt:2: AoR is not a valid SIP URI");
    expect_error("sip:x.org pw\n", -EINVAL, "acc.txt:1: AoR has no user part");
    expect_error("\n\nsip:a@x.org HA1-md5:abc\n", -EINVAL,
                 "acc.txt:3: HA1-md5 needs 32 hex digits");
    expect_error("sip:a@x.org HA1-sha256:0123456789abcdef0123456789abcdef\n", -EINVAL,
                 "acc.txt:1: HA1-sha256 needs 64 hex digits");
    expect_error("sip:a@x.org HA1-sha1:0123\n", -EINVAL,
                 "acc.txt:1: unknown HA1 algorithm (HA1-md5: or HA1-sha256:)");
    expect_error("sip:a@X.org pw\nsip:a@x.ORG pw2\n", -EINVAL,
                 "acc.txt: account sip:a@x.org listed twice");
    big = malloc(SIP_ACCOUNTS_LINE_MAX + 64);
    assert_non_null(big);
    memset(big, 'p', SIP_ACCOUNTS_LINE_MAX + 63);
    memcpy(big, "sip:a@x.org ", 12);
    big[SIP_ACCOUNTS_LINE_MAX + 63] = '\0';
    expect_error(big, -EINVAL, "acc.txt:1: line longer than 1024 bytes");
    free(big);
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/test_sip_accounts_XXXXXX";
    struct sip_accounts *acc = NULL;
    char err[256] = "";
    int fd = mkstemp(path);
    FILE *f;
    (void)state;

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("sip:alice@example.org secret\n", f);
    fclose(f);
    assert_int_equal(sip_accounts_load(&acc, path, err, sizeof(err)), 0);
    assert_int_equal(sip_accounts_count(acc), 1);
    sip_accounts_free(acc);
    unlink(path);
    assert_int_equal(sip_accounts_load(&acc, path, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
