/*
 * fuzz_locator_dht.c: libFuzzer target for the two decoders of p2psipd/locator_dht.c
 * that read peer input: locator_dht_value_decode (the value of a binding record
 * fetched from the DHT, signed by whichever node published it) and
 * locator_dht_parse_node_host (an overlay node's host name, taken from a SIP URI).
 *
 * Every input is offered to both.  Besides memory safety it checks:
 *  - value: the only refusal is -EBADMSG; a value that decodes holds at most
 *    SIP_LOOKUP_MAX contacts, each instance NUL-terminated inside its array; it
 *    encodes again to the very same bytes (the encoding is canonical: one value, one
 *    byte string, so a signed record means one thing); encoding into one byte less
 *    is -ENOSPC and writes nothing past the buffer; no strict prefix decodes.
 *  - host: the only refusal is -ENOENT; a host that parses prints back, with
 *    locator_dht_node_host, to the same name up to the case of its hex digits, except
 *    an explicit all-zero super-node part (zero means "no super-node", so that name
 *    prints without it); the printed name parses to the same IDs.
 *
 * This target found that a value whose instance held a NUL decoded but did not
 * round-trip (the encoder counts an instance with strnlen); the decoder now refuses
 * such a value (-EBADMSG), so the strict check holds.  -DFUZZ_LOCATOR_DHT_SKIP_NUL_INSTANCE
 * (the campaign's workaround before that fix) is kept only for old builds.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "locator_dht.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NODE_SUFFIX ".node.invalid"
#define NODE_SUFFIX_LEN (sizeof(NODE_SUFFIX) - 1)

static void check(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_value(const uint8_t *data, size_t size)
{
    static struct locator_dht_value v, w;
    uint8_t *again, *shorter;
    bool nul_inside = false;
    int rc = locator_dht_value_decode(data, size, &v);

    check(rc == 0 || rc == -EBADMSG);
    if (rc != 0)
        return;
    check(size >= 42 && v.n <= SIP_LOOKUP_MAX);
    for (size_t i = 0; i < v.n; i++) {
        const char *inst = v.contacts[i].instance;
        check(memchr(inst, '\0', SIP_INSTANCE_MAX) != NULL);
        check(v.contacts[i].expires_s <= UINT32_MAX);
    }
    /* walk the contacts on the wire (the decode above vouches for every length) to see
     * whether an instance carries a NUL, which the decoded string no longer shows */
    for (size_t i = 0, k = 42; i < v.n; i++) {
        size_t il = data[k + 6];
        if (memchr(data + k + 7, '\0', il) != NULL)
            nul_inside = true;
        k += 7 + il;
    }
    /* a strict prefix never decodes: the value's length follows from its content */
    check(locator_dht_value_decode(data, size - 1, &w) == -EBADMSG);

#ifdef FUZZ_LOCATOR_DHT_SKIP_NUL_INSTANCE
    if (nul_inside)
        return;
#else
    (void)nul_inside;
#endif
    /* exact-size heap buffers, so ASan sees a write past either */
    again = malloc(size);
    shorter = malloc(size - 1);
    check(again != NULL && shorter != NULL);
    rc = locator_dht_value_encode(&v, again, size);
    check(rc >= 0 && (size_t)rc == size && memcmp(again, data, size) == 0);
    check(locator_dht_value_encode(&v, shorter, size - 1) == -ENOSPC);
    free(shorter);
    free(again);
}

static bool all_zero_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '0')
            return false;
    return true;
}

static void fuzz_host(const char *host, size_t len)
{
    struct dht_id node, super, node2, super2;
    char name[2 * DHT_ID_HEX_LEN + 1 + NODE_SUFFIX_LEN + 1];
    int rc = locator_dht_parse_node_host(host, len, &node, &super);
    size_t n;

    check(rc == 0 || rc == -ENOENT);
    if (rc != 0)
        return;
    check(len == DHT_ID_HEX_LEN + NODE_SUFFIX_LEN ||
          len == 2 * DHT_ID_HEX_LEN + 1 + NODE_SUFFIX_LEN);
    locator_dht_node_host(&node, &super, name, sizeof(name));
    n = strlen(name);
    if (len == 2 * DHT_ID_HEX_LEN + 1 + NODE_SUFFIX_LEN &&
        all_zero_hex(host + DHT_ID_HEX_LEN + 1, DHT_ID_HEX_LEN)) {
        /* "<node>.<zero>.node.invalid" names the node with no super-node */
        check(n == DHT_ID_HEX_LEN + NODE_SUFFIX_LEN);
        check(strncasecmp(name, host, DHT_ID_HEX_LEN) == 0);
        check(strncasecmp(name + DHT_ID_HEX_LEN, host + len - NODE_SUFFIX_LEN, NODE_SUFFIX_LEN) ==
              0);
    } else {
        check(n == len && strncasecmp(name, host, len) == 0);
    }
    check(locator_dht_parse_node_host(name, n, &node2, &super2) == 0);
    check(dht_id_eq(&node, &node2) && dht_id_eq(&super, &super2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_value(data, size);
    fuzz_host((const char *)data, size);
    return 0;
}
