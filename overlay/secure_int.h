/*
 * secure_int.h: the insides of secure.c that tests need (not for the overlay node).
 *
 * Two things live here.  The Noise message functions without the p2psip frame around
 * them, so that a test can run them against another Noise implementation's published
 * vectors (prologue, payloads and keys of its choosing, no frame header mixed in).  And
 * ovl__hs_initiate_e / ovl__hs_respond_e, the public handshake steps with the ephemeral
 * key given instead of drawn, so that a known-answer test and the fuzz target can make
 * the same bytes on every run.  A node never calls any of these: a fixed ephemeral key
 * throws away forward secrecy, and reusing one across handshakes is worse.
 *
 * The message functions work in place on hs (they do not copy it first, unlike the
 * public functions, which leave hs as it was when a message is refused) and return the
 * bytes written (write) or the payload bytes read (read), or -EBADMSG.
 */
#ifndef P2P_OVERLAY_SECURE_INT_H
#define P2P_OVERLAY_SECURE_INT_H

#include "p2p/overlay_secure.h"

/* Noise 5.3 Initialize() for XXpsk0 with this prologue (no pre-messages in XX). */
void ovl__noise_init(struct ovl_hs *hs, bool initiator, const struct ovl_identity *me,
                     const uint8_t *prologue, size_t prologue_len);

/*
 * The three messages of XXpsk0.  bind (blen bytes, may be 0) is hashed into h before
 * the message's tokens: the p2psip frame fields that travel in clear.  A write's out
 * holds the message (its length is returned); a read's pl receives the payload.
 * Sizes: message 1 = 32 + plen + 16, message 2 = 32 + 48 + plen + 16, message 3 =
 * 48 + plen + 16.
 */
int ovl__noise_write1(struct ovl_hs *hs, const uint8_t psk[OVL_KEY_LEN], const uint8_t e_sk[32],
                      const uint8_t *bind, size_t blen, const uint8_t *pl, size_t plen,
                      uint8_t *out);
int ovl__noise_read1(struct ovl_hs *hs, const uint8_t psk[OVL_KEY_LEN], const uint8_t *bind,
                     size_t blen, const uint8_t *msg, size_t len, uint8_t *pl);
int ovl__noise_write2(struct ovl_hs *hs, const uint8_t e_sk[32], const uint8_t *bind, size_t blen,
                      const uint8_t *pl, size_t plen, uint8_t *out);
int ovl__noise_read2(struct ovl_hs *hs, const uint8_t *bind, size_t blen, const uint8_t *msg,
                     size_t len, uint8_t *pl);
int ovl__noise_write3(struct ovl_hs *hs, const uint8_t *bind, size_t blen, const uint8_t *pl,
                      size_t plen, uint8_t *out);
int ovl__noise_read3(struct ovl_hs *hs, const uint8_t *bind, size_t blen, const uint8_t *msg,
                     size_t len, uint8_t *pl);

/* Noise 5.2 Split(): k1 is the initiator's sending key, k2 the responder's. */
void ovl__noise_split(const struct ovl_hs *hs, uint8_t k1[OVL_KEY_LEN], uint8_t k2[OVL_KEY_LEN]);

/* Noise 11.3 REKEY(k): k becomes the first 32 bytes of ENCRYPT(k, 2^64-1, "", 0^32). */
void ovl__rekey(uint8_t k[OVL_KEY_LEN]);

/* ovl_hs_initiate and ovl_hs_respond with the ephemeral secret key e_sk (tests only). */
int ovl__hs_initiate_e(struct ovl_hs *hs, const struct ovl_identity *me,
                       const uint8_t psk[OVL_KEY_LEN], uint32_t local_index, const uint8_t e_sk[32],
                       uint8_t *out, size_t cap);
int ovl__hs_respond_e(struct ovl_hs *hs, const struct ovl_identity *me,
                      const uint8_t psk[OVL_KEY_LEN], uint32_t local_index, const uint8_t *hs1,
                      size_t len, const uint8_t *payload, size_t plen, const uint8_t e_sk[32],
                      uint8_t *out, size_t cap);

#endif
