/*
 * fuzz_overlay_frame.c: libFuzzer target for the node-to-node frames (overlay/secure.c).
 *
 * Every input is offered, as one received datagram, to each function that reads peer
 * input: ovl_frame_peek, ovl_discover_decode, a responder's ovl_hs_respond, an
 * initiator's ovl_hs_finish (it sent a fixed HS1), a responder's ovl_hs_complete (it
 * answered that HS1), and ovl_open on an established session, fresh and after some
 * traffic.  Identities, ephemeral keys and sessions are fixed and built once, so a
 * crash reproduces.  Besides memory safety it checks: each function returns only the
 * errors its contract names; a frame peek accepts has the length its type allows; a
 * discovery announcement that verifies re-encodes to the same bytes; a refused frame
 * leaves the handshake or session unchanged; what one side accepts the other side's
 * next step accepts too; a DATA frame opened once is a replay the second time.
 *
 * An input that starts with 'P' is also used as the plaintext of an HS2 and an HS3
 * payload (sealed with the right keys), which reaches the checks behind the AEAD: the
 * Ed25519 key and the payload length a peer could only get wrong on purpose.
 *
 * Seeds: build with -DOVL_FUZZ_WRITE_SEEDS (a main() instead of libFuzzer) and run it
 * with a directory; it writes one valid frame of each type from the fixture below:
 *   cc -DOVL_FUZZ_WRITE_SEEDS -Ioverlay/include -Idht/include tests/fuzz/fuzz_overlay_frame.c \
 *      overlay/secure.c dht/id.c -lsodium -o /tmp/seeds && /tmp/seeds
 * tests/fuzz/corpus/overlay_frame
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "p2p/overlay_secure.h"

#include "../../overlay/secure_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (OVL_FRAME_MAX + 64)

static const uint8_t PAY_I[] = "initiator";
static const uint8_t PAY_R[] = "responder";

static struct {
    bool ready;
    struct ovl_identity a, b; /* a initiates (index 1), b responds (index 2) */
    uint8_t psk[OVL_KEY_LEN];
    uint8_t e_a[32], e_b[32];
    struct ovl_hs hs_a1;        /* a after sending HS1 */
    struct ovl_hs hs_b1;        /* b after reading HS1, before writing HS2 (internal) */
    struct ovl_hs hs_b2;        /* b after sending HS2 */
    struct ovl_hs hs_a2;        /* a after reading HS2, before writing HS3 (internal) */
    struct ovl_session sb;      /* b's session, nothing received yet */
    struct ovl_session sb_used; /* b's session after counters 0..2 and 5 */
    struct ovl_session sa;
    uint8_t hs1[OVL_HS1_LEN], hs2[OVL_HS_FRAME_MAX], hs3[OVL_HS_FRAME_MAX];
    size_t n1, n2, n3;
    uint8_t data[8][64];
    size_t n_data[8];
    uint8_t disc[OVL_DISCOVER_LEN];
} fx;

static void check(int cond)
{
    if (!cond)
        abort();
}

static void ident(struct ovl_identity *id, uint8_t seed_byte)
{
    uint8_t seed[32], pk[32], sk[64];

    memset(seed, seed_byte, sizeof(seed));
    check(crypto_sign_seed_keypair(pk, sk, seed) == 0);
    check(ovl_identity_from_secret(id, sk) == 0);
}

static void put_clear(uint8_t *p, uint8_t type, uint32_t a, uint32_t b, size_t n_index)
{
    p[0] = OVL_MAGIC;
    p[1] = OVL_VERSION;
    p[2] = type;
    p[3] = 0;
    for (int i = 0; i < 4; i++) {
        p[4 + i] = (uint8_t)(a >> (24 - 8 * i));
        if (n_index == 2)
            p[8 + i] = (uint8_t)(b >> (24 - 8 * i));
    }
}

static void setup(void)
{
    static const char prologue[] = "p2psip-overlay-v1";
    struct ovl_peer_info peer;
    struct ovl_hs ha, hb;
    uint8_t empty[1];
    int n;

    check(sodium_init() >= 0);
    ident(&fx.a, 0x11);
    ident(&fx.b, 0x22);
    ovl_psk_from_secret(fx.psk, (const uint8_t *)"fuzz", 4);
    memset(fx.e_a, 0xa5, 32);
    memset(fx.e_b, 0x5a, 32);

    n = ovl__hs_initiate_e(&fx.hs_a1, &fx.a, fx.psk, 1, fx.e_a, fx.hs1, sizeof(fx.hs1));
    check(n == OVL_HS1_LEN);
    fx.n1 = (size_t)n;
    n = ovl__hs_respond_e(&fx.hs_b2, &fx.b, fx.psk, 2, fx.hs1, fx.n1, PAY_R, sizeof(PAY_R), fx.e_b,
                          fx.hs2, sizeof(fx.hs2));
    check(n == OVL_HS2_LEN(sizeof(PAY_R)));
    fx.n2 = (size_t)n;
    ha = fx.hs_a1;
    n = ovl_hs_finish(&ha, fx.hs2, fx.n2, PAY_I, sizeof(PAY_I), fx.hs3, sizeof(fx.hs3), &peer);
    check(n == OVL_HS3_LEN(sizeof(PAY_I)));
    fx.n3 = (size_t)n;
    hb = fx.hs_b2;
    check(ovl_hs_complete(&hb, fx.hs3, fx.n3, &peer) == 0);
    check(ovl_hs_split(&ha, &fx.sa) == 0 && ovl_hs_split(&hb, &fx.sb) == 0);

    /* the states in the middle of a message, for the payload mode: the same steps the
     * public functions take (checked by the payload mode's own valid case below) */
    ovl__noise_init(&fx.hs_b1, false, &fx.b, (const uint8_t *)prologue, sizeof(prologue) - 1);
    check(ovl__noise_read1(&fx.hs_b1, fx.psk, fx.hs1, 8, fx.hs1 + 8, fx.n1 - 8, empty) == 0);
    fx.hs_b1.local_index = 2;
    fx.hs_b1.remote_index = 1;
    fx.hs_a2 = fx.hs_a1;
    n = ovl__noise_read2(&fx.hs_a2, fx.hs2, 12, fx.hs2 + 12, fx.n2 - 12, (uint8_t[160]){0});
    check(n == (int)(32 + sizeof(PAY_R)));
    fx.hs_a2.remote_index = 2;

    for (int i = 0; i < 8; i++) {
        n = ovl_seal(&fx.sa, (const uint8_t *)"DATA frame", 10, fx.data[i], sizeof(fx.data[i]));
        check(n == 10 + OVL_DATA_OVERHEAD);
        fx.n_data[i] = (size_t)n;
    }
    fx.sb_used = fx.sb;
    for (int i = 0; i < 8; i++) {
        uint8_t pt[64];
        if (i <= 2 || i == 5)
            check(ovl_open(&fx.sb_used, fx.data[i], fx.n_data[i], pt, sizeof(pt)) == 10);
    }

    struct ovl_discover d = {0};
    memset(d.id.b, 0x77, sizeof(d.id.b));
    d.port = 7560;
    d.flags = OVL_DISC_MEMBER;
    memset(d.nonce, 0x99, sizeof(d.nonce));
    check(ovl_discover_encode(fx.psk, &d, fx.disc, sizeof(fx.disc)) == OVL_DISCOVER_LEN);
    fx.ready = true;
}

static void fuzz_peek(const uint8_t *data, size_t size)
{
    struct ovl_frame_info fi;
    int rc = ovl_frame_peek(data, size, &fi);

    check(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
    if (rc != 0)
        return;
    check(size >= OVL_HDR_LEN && size <= OVL_FRAME_MAX && data[0] == OVL_MAGIC &&
          data[1] == OVL_VERSION && data[2] == fi.type && data[3] == 0);
    switch (fi.type) {
    case OVL_T_HS1:
        check(size == OVL_HS1_LEN);
        break;
    case OVL_T_HS2:
        check(size >= OVL_HS2_LEN(0) && size <= OVL_HS2_LEN(OVL_HS_PAYLOAD_MAX));
        break;
    case OVL_T_HS3:
        check(size >= OVL_HS3_LEN(0) && size <= OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX));
        break;
    case OVL_T_DATA:
        check(size >= OVL_DATA_OVERHEAD);
        break;
    case OVL_T_DISCOVER:
        check(size == OVL_DISCOVER_LEN);
        break;
    default:
        abort();
    }
}

static void fuzz_discover(const uint8_t *data, size_t size)
{
    struct ovl_discover d;
    uint8_t again[OVL_DISCOVER_LEN];
    int rc = ovl_discover_decode(fx.psk, data, size, &d);

    check(rc == 0 || rc == -EBADMSG);
    if (rc == 0) {
        check(ovl_discover_encode(fx.psk, &d, again, sizeof(again)) == OVL_DISCOVER_LEN);
        check(size == OVL_DISCOVER_LEN && memcmp(again, data, size) == 0);
    }
}

static void fuzz_handshake(const uint8_t *data, size_t size)
{
    static uint8_t out[OUT_MAX], out2[OUT_MAX];
    struct ovl_hs h, h2;
    struct ovl_peer_info peer;
    struct ovl_session s1, s2;
    int rc;

    /* a responder reading the input as HS1 */
    rc = ovl_hs_respond(&h, &fx.b, fx.psk, 2, data, size, PAY_R, sizeof(PAY_R), out, sizeof(out));
    check(rc == OVL_HS2_LEN(sizeof(PAY_R)) || rc == -EBADMSG);
    if (rc > 0 && size == fx.n1 && memcmp(data, fx.hs1, size) == 0) {
        /* our own HS1, answered with a new ephemeral key: a still finishes */
        h2 = fx.hs_a1;
        check(ovl_hs_finish(&h2, out, (size_t)rc, NULL, 0, out2, sizeof(out2), &peer) > 0);
        check(memcmp(peer.ed_pk, fx.b.ed_pk, 32) == 0);
        ovl_hs_wipe(&h2);
    }
    ovl_hs_wipe(&h);

    /* the initiator reading it as HS2 */
    h = fx.hs_a1;
    rc = ovl_hs_finish(&h, data, size, PAY_I, sizeof(PAY_I), out, sizeof(out), &peer);
    check(rc == OVL_HS3_LEN(sizeof(PAY_I)) || rc == -EBADMSG);
    if (rc < 0) {
        check(memcmp(&h, &fx.hs_a1, sizeof(h)) == 0);
    } else {
        /* only b can have made it: b's key, and b completes with the HS3 */
        check(memcmp(peer.ed_pk, fx.b.ed_pk, 32) == 0);
        if (size == fx.n2 && memcmp(data, fx.hs2, size) == 0) {
            h2 = fx.hs_b2;
            check(ovl_hs_complete(&h2, out, (size_t)rc, &peer) == 0);
            check(ovl_hs_split(&h, &s1) == 0 && ovl_hs_split(&h2, &s2) == 0);
            check(memcmp(s1.send_key, s2.recv_key, 32) == 0);
        }
    }
    ovl_hs_wipe(&h);

    /* the responder reading it as HS3 */
    h = fx.hs_b2;
    rc = ovl_hs_complete(&h, data, size, &peer);
    check(rc == 0 || rc == -EBADMSG);
    if (rc < 0)
        check(memcmp(&h, &fx.hs_b2, sizeof(h)) == 0);
    else
        check(memcmp(peer.ed_pk, fx.a.ed_pk, 32) == 0 && h.step == 3);
    ovl_hs_wipe(&h);
}

static void open_on(const struct ovl_session *base, const uint8_t *data, size_t size)
{
    static uint8_t out[OUT_MAX];
    struct ovl_session s = *base;
    int rc = ovl_open(&s, data, size, out, sizeof(out));

    check(rc == -EBADMSG || rc == -EALREADY || (rc >= 0 && (size_t)rc + OVL_DATA_OVERHEAD == size));
    if (rc < 0) {
        check(memcmp(&s, base, sizeof(s)) == 0);
        return;
    }
    /* accepted once: the same frame again is a replay */
    check(ovl_open(&s, data, size, out, sizeof(out)) == -EALREADY);
}

/* The input as the plaintext of HS2's and HS3's payload (Ed25519 key + caller bytes). */
static void fuzz_payload(const uint8_t *data, size_t size)
{
    static uint8_t frame[OUT_MAX], out[OUT_MAX];
    struct ovl_hs h;
    struct ovl_peer_info peer;
    bool valid;
    int n, rc;

    if (size > OVL_FRAME_MAX - 200)
        return;
    /* HS2 from b carrying the input */
    h = fx.hs_b1;
    put_clear(frame, OVL_T_HS2, 2, 1, 2);
    n = ovl__noise_write2(&h, fx.e_b, frame, 12, data, size, frame + 12);
    check(n == (int)(32 + 48 + size + OVL_TAG_LEN));
    valid = size >= 32 && size - 32 <= OVL_HS_PAYLOAD_MAX && memcmp(data, fx.b.ed_pk, 32) == 0;
    h = fx.hs_a1;
    rc = ovl_hs_finish(&h, frame, 12 + (size_t)n, NULL, 0, out, sizeof(out), &peer);
    /* the only Ed25519 keys that convert to b's static key are b's and its negation */
    check(rc == -EBADMSG ||
          (rc == OVL_HS3_LEN(0) && size >= 32 && size - 32 <= OVL_HS_PAYLOAD_MAX));
    if (valid)
        check(rc > 0 && peer.payload_len == size - 32 &&
              memcmp(peer.payload, data + 32, peer.payload_len) == 0);

    /* HS3 from a carrying the input */
    h = fx.hs_a2;
    put_clear(frame, OVL_T_HS3, 2, 0, 1);
    n = ovl__noise_write3(&h, frame, 8, data, size, frame + 8);
    check(n == (int)(48 + size + OVL_TAG_LEN));
    valid = size >= 32 && size - 32 <= OVL_HS_PAYLOAD_MAX && memcmp(data, fx.a.ed_pk, 32) == 0;
    h = fx.hs_b2;
    rc = ovl_hs_complete(&h, frame, 8 + (size_t)n, &peer);
    check(rc == -EBADMSG || (rc == 0 && size >= 32 && size - 32 <= OVL_HS_PAYLOAD_MAX));
    if (valid)
        check(rc == 0 && peer.payload_len == size - 32);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx.ready)
        setup();
    fuzz_peek(data, size);
    fuzz_discover(data, size);
    fuzz_handshake(data, size);
    open_on(&fx.sb, data, size);
    open_on(&fx.sb_used, data, size);
    if (size > 0 && data[0] == 'P')
        fuzz_payload(data + 1, size - 1);
    return 0;
}

#ifdef OVL_FUZZ_WRITE_SEEDS
static void write_seed(const char *dir, const char *name, const uint8_t *b, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    check(f != NULL && fwrite(b, 1, n, f) == n && fclose(f) == 0);
}

int main(int argc, char **argv)
{
    uint8_t p[1 + 32 + sizeof(PAY_I)];

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    setup();
    write_seed(argv[1], "seed-hs1", fx.hs1, fx.n1);
    write_seed(argv[1], "seed-hs2", fx.hs2, fx.n2);
    write_seed(argv[1], "seed-hs3", fx.hs3, fx.n3);
    write_seed(argv[1], "seed-data0", fx.data[0], fx.n_data[0]);
    write_seed(argv[1], "seed-data7", fx.data[7], fx.n_data[7]);
    write_seed(argv[1], "seed-discover", fx.disc, sizeof(fx.disc));
    p[0] = 'P';
    memcpy(p + 1, fx.b.ed_pk, 32);
    memcpy(p + 33, PAY_I, sizeof(PAY_I));
    write_seed(argv[1], "seed-payload-b", p, sizeof(p));
    memcpy(p + 1, fx.a.ed_pk, 32);
    write_seed(argv[1], "seed-payload-a", p, sizeof(p));
    /* and every seed must pass through the target */
    LLVMFuzzerTestOneInput(fx.hs1, fx.n1);
    LLVMFuzzerTestOneInput(p, sizeof(p));
    return 0;
}
#endif
