/*
 * test_mailbox.c: the sealed plaintext of an offline MESSAGE (p2psipd/mailbox.h):
 * what mailbox_msg_build writes parses back to the same fields and body, and what
 * does not follow the format (magic, field order, control characters, a Date that is
 * no number, no empty line) is refused.  The keep/deliver path itself runs in
 * tests/integration/test_p2psip_offline_message.sh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mailbox.h"

static void test_round_trip(void **state)
{
    struct mailbox_msg m, p;
    uint8_t buf[512];
    int n;

    (void)state;
    memset(&m, 0, sizeof(m));
    strcpy(m.from, "\"Alice\" <sip:alice@p2p.test>");
    strcpy(m.type, "text/plain;charset=UTF-8");
    m.date_s = 1796455069;
    m.body = (const uint8_t *)"hello\r\n\r\nbob\0!";
    m.body_len = 15;
    n = mailbox_msg_build(&m, buf, sizeof(buf));
    assert_true(n > 0);
    assert_memory_equal(buf, "p2psip-message-v1\r\nFrom: \"Alice\" <sip:alice@p2p.test>\r\n", 55);
    assert_int_equal(mailbox_msg_parse(buf, (size_t)n, &p), 0);
    assert_string_equal(p.from, m.from);
    assert_string_equal(p.type, m.type);
    assert_int_equal(p.date_s, m.date_s);
    assert_int_equal(p.body_len, 15);
    assert_memory_equal(p.body, m.body, 15);
    /* an empty body */
    m.body_len = 0;
    n = mailbox_msg_build(&m, buf, sizeof(buf));
    assert_int_equal(mailbox_msg_parse(buf, (size_t)n, &p), 0);
    assert_int_equal(p.body_len, 0);
    /* too small a buffer, and fields that would break the format */
    assert_int_equal(mailbox_msg_build(&m, buf, 40), -EMSGSIZE);
    strcpy(m.from, "<sip:a@b>\r\nDate: 1");
    assert_int_equal(mailbox_msg_build(&m, buf, sizeof(buf)), -EINVAL);
    m.from[0] = '\0';
    assert_int_equal(mailbox_msg_build(&m, buf, sizeof(buf)), -EINVAL);
}

static void test_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "p2psip-message-v2\r\nFrom: <sip:a@b>\r\nContent-Type: t\r\nDate: 1\r\n\r\n",
        "p2psip-message-v1\r\nContent-Type: t\r\nFrom: <sip:a@b>\r\nDate: 1\r\n\r\n",
        "p2psip-message-v1\r\nFrom: <sip:a@b>\r\nContent-Type: t\r\nDate: 1\r\n",
        "p2psip-message-v1\r\nFrom: <sip:a@b>\r\nContent-Type: t\r\nDate: x1\r\n\r\n",
        "p2psip-message-v1\r\nFrom: <sip:a@b>\r\nContent-Type: t\r\nDate: 1x\r\n\r\n",
        "p2psip-message-v1\r\nFrom: <sip:a@b>\r\nContent-Type: t\r\nDate: "
        "99999999999999999999999\r\n\r\n",
        "p2psip-message-v1\r\nFrom: <sip:a\x01@b>\r\nContent-Type: t\r\nDate: 1\r\n\r\n",
        "p2psip-message-v1\r\nFrom: \r\nContent-Type: t\r\nDate: 1\r\n\r\n",
        "p2psip-message-v1\r\nFrom:<sip:a@b>\r\nContent-Type: t\r\nDate: 1\r\n\r\n",
        "p2psip-message-v1\r\nFrom: <sip:a@b>\nContent-Type: t\r\nDate: 1\r\n\r\n",
    };
    struct mailbox_msg p;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mailbox_msg_parse((const uint8_t *)bad[i], strlen(bad[i]), &p), -EBADMSG);
    /* a From longer than MAILBOX_FROM_MAX - 1 */
    char big[1024];
    int n = snprintf(big, sizeof(big),
                     "p2psip-message-v1\r\nFrom: <sip:%0600d@b>\r\nContent-Type: t\r\n"
                     "Date: 1\r\n\r\n",
                     0);
    assert_int_equal(mailbox_msg_parse((const uint8_t *)big, (size_t)n, &p), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
