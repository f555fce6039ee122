/*
 * dht_id.h: 160-bit identifiers on the Bamboo/Pastry ring.
 *
 * Node IDs are BLAKE2b-160 of the node's Ed25519 public key, so a node cannot pick
 * its place on the ring; keys are BLAKE2b-160 of the stored name (for SIP, the
 * canonical AoR).  IDs are big-endian: digit 0 is the high nibble of b[0].  Routing
 * is base 16, so an ID has 40 digits.  Distance is the symmetric ring distance
 * min((a-b) mod 2^160, (b-a) mod 2^160), as in Pastry and the seed.
 */
#ifndef P2P_DHT_ID_H
#define P2P_DHT_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHT_ID_LEN 20
#define DHT_ID_DIGITS 40 /* base-16 digits */
#define DHT_ID_HEX_LEN (2 * DHT_ID_LEN)

struct dht_id {
    uint8_t b[DHT_ID_LEN];
};

/* Total order on the ring's integers (not ring distance): <0, 0, >0 like memcmp. */
int dht_id_cmp(const struct dht_id *a, const struct dht_id *b);
bool dht_id_eq(const struct dht_id *a, const struct dht_id *b);
/* The all-zero id: "no id" where a message or a record leaves it unset. */
bool dht_id_is_zero(const struct dht_id *id);

/* Base-16 digit i (0 = most significant), 0..15. */
unsigned dht_id_digit(const struct dht_id *id, unsigned i);

/* Number of leading base-16 digits a and b share, 0..40. */
unsigned dht_id_shared_prefix(const struct dht_id *a, const struct dht_id *b);

/* out = (a - b) mod 2^160. */
void dht_id_sub(struct dht_id *out, const struct dht_id *a, const struct dht_id *b);

/* out = symmetric ring distance between a and b. */
void dht_id_distance(struct dht_id *out, const struct dht_id *a, const struct dht_id *b);

/*
 * Which of x and y is closer to key on the ring?  <0 when x is closer, >0 when y
 * is, 0 only when x == y.  Equal distances (x and y on opposite sides at the same
 * distance) are broken one fixed way: the one with the smaller ID wins.
 */
int dht_id_closer(const struct dht_id *key, const struct dht_id *x, const struct dht_id *y);

/* BLAKE2b-160 of the bytes (libsodium crypto_generichash with a 20-byte output). */
void dht_id_hash(struct dht_id *out, const void *data, size_t len);

/* Lower-case hex, NUL-terminated: buf must hold DHT_ID_HEX_LEN + 1 bytes. */
void dht_id_to_hex(const struct dht_id *id, char *buf);

/* Parses exactly 40 hex digits.  Returns 0, or -EINVAL. */
int dht_id_from_hex(struct dht_id *out, const char *hex, size_t len);

/* The ID's position as a fraction of the ring, [0, 1): for drawing and statistics. */
double dht_id_to_unit(const struct dht_id *id);

#endif
