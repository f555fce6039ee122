/*
 * fuzz_dht_record.c: libFuzzer target for the DHT record decoder.
 *
 * Decodes records packed back to back, as they arrive in DHT messages.  Checks,
 * besides memory safety: a decoded record is well-formed, re-encodes to exactly the
 * bytes it was decoded from (the encoding is canonical), and verifying its signature
 * returns 0 or -EBADMSG, never anything else.  Each accepted record is also offered
 * to an in-memory store, which must refuse it unless it verifies.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "p2p/dht_record.h"
#include "p2p/dht_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[DHT_RECORD_ENCODED_MAX];
    struct dht_store *s;
    size_t off = 0;

    if (sodium_init() < 0 || dht_store_new(&s, NULL) < 0)
        return 0;
    for (int i = 0; i < MAX_RECORDS && off < size; i++) {
        struct dht_record r;
        int n = dht_record_decode(&r, data + off, size - off);
        if (n == -EAGAIN || n == -EBADMSG)
            break;
        if (n <= 0 || (size_t)n > size - off)
            abort();
        if (dht_record_check(&r) != 0)
            abort();
        if (dht_record_encode(&r, out, sizeof(out)) != n || memcmp(out, data + off, (size_t)n) != 0)
            abort();
        int v = dht_record_verify(&r);
        if (v != 0 && v != -EBADMSG)
            abort();
        /* The store never takes a record that does not verify. */
        int p = dht_store_put(s, &r, r.expiry_ms > 0 ? r.expiry_ms - 1 : 0);
        if (v != 0 && p != -EBADMSG)
            abort();
        off += (size_t)n;
    }
    dht_store_free(s);
    return 0;
}
