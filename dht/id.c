/*
 * id.c: arithmetic on 160-bit ring identifiers (see dht_id.h).
 */
#include "p2p/dht_id.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

int dht_id_cmp(const struct dht_id *a, const struct dht_id *b)
{
    return memcmp(a->b, b->b, DHT_ID_LEN);
}

bool dht_id_eq(const struct dht_id *a, const struct dht_id *b)
{
    return memcmp(a->b, b->b, DHT_ID_LEN) == 0;
}

bool dht_id_is_zero(const struct dht_id *id)
{
    static const struct dht_id zero;
    return dht_id_eq(id, &zero);
}

unsigned dht_id_digit(const struct dht_id *id, unsigned i)
{
    uint8_t byte = id->b[i / 2];
    return (i % 2 == 0) ? (unsigned)(byte >> 4) : (unsigned)(byte & 0x0f);
}

unsigned dht_id_shared_prefix(const struct dht_id *a, const struct dht_id *b)
{
    for (unsigned i = 0; i < DHT_ID_LEN; i++) {
        uint8_t x = a->b[i] ^ b->b[i];
        if (x != 0)
            return 2 * i + ((x & 0xf0) ? 0 : 1);
    }
    return DHT_ID_DIGITS;
}

void dht_id_sub(struct dht_id *out, const struct dht_id *a, const struct dht_id *b)
{
    int borrow = 0;
    for (int i = DHT_ID_LEN - 1; i >= 0; i--) {
        int d = (int)a->b[i] - (int)b->b[i] - borrow;
        borrow = d < 0;
        out->b[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

void dht_id_distance(struct dht_id *out, const struct dht_id *a, const struct dht_id *b)
{
    struct dht_id d1, d2;
    dht_id_sub(&d1, a, b);
    dht_id_sub(&d2, b, a);
    *out = dht_id_cmp(&d1, &d2) <= 0 ? d1 : d2;
}

int dht_id_closer(const struct dht_id *key, const struct dht_id *x, const struct dht_id *y)
{
    struct dht_id dx, dy;
    int c;

    if (dht_id_eq(x, y))
        return 0;
    dht_id_distance(&dx, key, x);
    dht_id_distance(&dy, key, y);
    c = dht_id_cmp(&dx, &dy);
    if (c != 0)
        return c;
    return dht_id_cmp(x, y);
}

void dht_id_hash(struct dht_id *out, const void *data, size_t len)
{
    crypto_generichash(out->b, DHT_ID_LEN, data, len, NULL, 0);
}

void dht_id_to_hex(const struct dht_id *id, char *buf)
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < DHT_ID_LEN; i++) {
        buf[2 * i] = hex[id->b[i] >> 4];
        buf[2 * i + 1] = hex[id->b[i] & 0x0f];
    }
    buf[DHT_ID_HEX_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dht_id_from_hex(struct dht_id *out, const char *hex, size_t len)
{
    struct dht_id id;

    if (len != DHT_ID_HEX_LEN)
        return -EINVAL;
    for (unsigned i = 0; i < DHT_ID_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        id.b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = id;
    return 0;
}

double dht_id_to_unit(const struct dht_id *id)
{
    double v = 0.0;
    for (int i = DHT_ID_LEN - 1; i >= 0; i--)
        v = (v + id->b[i]) / 256.0;
    return v;
}
