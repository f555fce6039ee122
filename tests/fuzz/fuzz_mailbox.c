/*
 * fuzz_mailbox.c: libFuzzer target for the plaintext of an offline MESSAGE
 * (p2psipd/mailbox.c, mailbox_msg_parse).  Anyone can seal a box to a user's key,
 * so what opens is network input.
 *
 * Checks, besides memory safety: a refusal is -EBADMSG; what parses has a non-empty
 * From and Content-Type with no control character, and a body inside the input
 * ending where the input ends; it builds again (mailbox_msg_build) to a text that
 * parses to the same fields and body, and to the same bytes when the input's Date
 * was written canonically.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_field(const char *v)
{
    if (v[0] == '\0')
        abort();
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[8192];
    struct mailbox_msg m, again;
    int rc, n;

    rc = mailbox_msg_parse(data, size, &m);
    if (rc != 0) {
        if (rc != -EBADMSG)
            abort();
        return 0;
    }
    check_field(m.from);
    check_field(m.type);
    if (m.body < data || m.body + m.body_len != data + size)
        abort();
    n = mailbox_msg_build(&m, out, sizeof(out));
    if (n == -EMSGSIZE && size > sizeof(out) - 64)
        return 0; /* longer than the rebuilt buffer: nothing to compare */
    if (n < 0)
        abort();
    if (mailbox_msg_parse(out, (size_t)n, &again) != 0 || strcmp(again.from, m.from) != 0 ||
        strcmp(again.type, m.type) != 0 || again.date_s != m.date_s ||
        again.body_len != m.body_len || memcmp(again.body, m.body, m.body_len) != 0)
        abort();
    if ((size_t)n == size && memcmp(out, data, size) != 0)
        abort();
    return 0;
}
