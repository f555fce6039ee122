/*
 * test_overlay_secure.c: the node-to-node secure channel (overlay/secure.c).
 *
 * Handshakes both ways and sealed data both directions; identities; a node with
 * another overlay secret gets no answer; every byte of every frame is authenticated
 * (each flipped byte is refused, and the refusal leaves the handshake or session as it
 * was, so the genuine frame still works); replay window and key epochs; the counter
 * limit; discovery; ovl_frame_peek on every prefix.  Two known-answer tests: the Noise
 * core against snow's published Noise_XXpsk0_25519_ChaChaPoly_SHA256 vector (plain
 * Noise, nothing bound), and our own frames from fixed keys, pinned byte for byte so
 * that an accidental change of the wire fails here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "p2p/overlay_secure.h"

#include "../../overlay/secure_int.h"

#define BUF 2048

static const uint8_t PAY_A[] = "alice's caller payload";
static const uint8_t PAY_B[] = "bob";

/* ---- helpers ---- */

static void ident(struct ovl_identity *id, uint8_t seed_byte)
{
    uint8_t seed[32], pk[32], sk[64];

    memset(seed, seed_byte, sizeof(seed));
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
    assert_int_equal(ovl_identity_from_secret(id, sk), 0);
}

static void psk_of(uint8_t psk[OVL_KEY_LEN], const char *secret)
{
    ovl_psk_from_secret(psk, (const uint8_t *)secret, strlen(secret));
}

static void assert_hex(const uint8_t *got, size_t len, const char *want)
{
    char hex[2 * BUF + 1];

    assert_true(len <= BUF);
    sodium_bin2hex(hex, sizeof(hex), got, len);
    if (strcmp(hex, want) != 0)
        print_message("got  %s\nwant %s\n", hex, want);
    assert_string_equal(hex, want);
}

/* The three frames of one handshake, kept so that tests can replay or alter them. */
struct run {
    struct ovl_hs hi, hr;
    uint8_t hs1[BUF], hs2[BUF], hs3[BUF];
    int n1, n2, n3;
    struct ovl_peer_info pi, pr; /* what the initiator / responder learned */
};

/* A full handshake from a (index ia) to b (index ib). */
static void handshake(struct run *r, const struct ovl_identity *a, const struct ovl_identity *b,
                      const uint8_t psk[OVL_KEY_LEN], uint32_t ia, uint32_t ib)
{
    memset(r, 0, sizeof(*r));
    r->n1 = ovl_hs_initiate(&r->hi, a, psk, ia, r->hs1, sizeof(r->hs1));
    assert_int_equal(r->n1, OVL_HS1_LEN);
    r->n2 = ovl_hs_respond(&r->hr, b, psk, ib, r->hs1, (size_t)r->n1, PAY_B, sizeof(PAY_B), r->hs2,
                           sizeof(r->hs2));
    assert_int_equal(r->n2, OVL_HS2_LEN(sizeof(PAY_B)));
    r->n3 = ovl_hs_finish(&r->hi, r->hs2, (size_t)r->n2, PAY_A, sizeof(PAY_A), r->hs3,
                          sizeof(r->hs3), &r->pi);
    assert_int_equal(r->n3, OVL_HS3_LEN(sizeof(PAY_A)));
    assert_int_equal(ovl_hs_complete(&r->hr, r->hs3, (size_t)r->n3, &r->pr), 0);
}

static void sessions(const struct ovl_identity *a, const struct ovl_identity *b,
                     const uint8_t psk[OVL_KEY_LEN], struct ovl_session *sa, struct ovl_session *sb)
{
    struct run r;

    handshake(&r, a, b, psk, 11, 22);
    assert_int_equal(ovl_hs_split(&r.hi, sa), 0);
    assert_int_equal(ovl_hs_split(&r.hr, sb), 0);
}

static int seal(struct ovl_session *s, const char *msg, uint8_t *out)
{
    int n = ovl_seal(s, (const uint8_t *)msg, strlen(msg), out, BUF);
    assert_int_equal(n, (int)(strlen(msg) + OVL_DATA_OVERHEAD));
    return n;
}

static void open_ok(struct ovl_session *s, const uint8_t *frame, int n, const char *msg)
{
    uint8_t pt[BUF];

    assert_int_equal(ovl_open(s, frame, (size_t)n, pt, sizeof(pt)), (int)strlen(msg));
    assert_memory_equal(pt, msg, strlen(msg));
}

static bool all_zero(const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* ---- identities and keys ---- */

static void test_identity(void **state)
{
    (void)state;
    struct ovl_identity a, b, c;
    struct dht_id id;
    uint8_t x_pk[32], bad[64];

    assert_int_equal(ovl_identity_generate(&a), 0);
    assert_int_equal(ovl_identity_from_secret(&b, a.ed_sk), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    dht_id_hash(&id, a.ed_pk, 32);
    assert_true(dht_id_eq(&a.id, &id));
    assert_memory_equal(a.ed_sk + 32, a.ed_pk, 32);
    crypto_scalarmult_base(x_pk, a.x_sk);
    assert_memory_equal(x_pk, a.x_pk, 32);

    /* a secret key whose public half is not the seed's is refused, out untouched */
    memcpy(bad, a.ed_sk, 64);
    bad[40] ^= 1;
    memset(&c, 0x5a, sizeof(c));
    assert_int_equal(ovl_identity_from_secret(&c, bad), -EINVAL);
    for (size_t i = 0; i < sizeof(c); i++)
        assert_int_equal(((uint8_t *)&c)[i], 0x5a);

    ovl_identity_wipe(&b);
    assert_true(all_zero(b.ed_sk, sizeof(b.ed_sk)));
    assert_true(all_zero(b.x_sk, sizeof(b.x_sk)));
    assert_memory_equal(b.ed_pk, a.ed_pk, 32);
    ovl_identity_generate(&c);
    assert_memory_not_equal(c.ed_pk, a.ed_pk, 32);
}

static void test_psk(void **state)
{
    (void)state;
    static const uint8_t label[] = "p2psip-overlay-psk-v1";
    uint8_t p1[32], p2[32], p3[32], none[32], want[32];

    psk_of(p1, "secret one");
    psk_of(p2, "secret one");
    psk_of(p3, "secret two");
    assert_memory_equal(p1, p2, 32);
    assert_memory_not_equal(p1, p3, 32);
    ovl_psk_from_secret(none, NULL, 0);
    /* BLAKE2b-256 keyed with the label; no secret is the hash of nothing */
    crypto_generichash(want, 32, (const uint8_t *)"", 0, label, sizeof(label) - 1);
    assert_memory_equal(none, want, 32);
    crypto_generichash(want, 32, (const uint8_t *)"secret one", 10, label, sizeof(label) - 1);
    assert_memory_equal(p1, want, 32);
    assert_memory_not_equal(none, p1, 32);
}

/* ---- handshake ---- */

static void check_handshake(const struct ovl_identity *a, const struct ovl_identity *b)
{
    uint8_t psk[32], f[BUF];
    struct run r;
    struct ovl_session sa, sb;
    struct ovl_frame_info fi;
    int n;

    psk_of(psk, "overlay");
    handshake(&r, a, b, psk, 0x11111111, 0x22222222);
    /* each side learned the other's Ed25519 key, node ID and payload */
    assert_memory_equal(r.pi.ed_pk, b->ed_pk, 32);
    assert_true(dht_id_eq(&r.pi.id, &b->id));
    assert_int_equal(r.pi.payload_len, sizeof(PAY_B));
    assert_memory_equal(r.pi.payload, PAY_B, sizeof(PAY_B));
    assert_memory_equal(r.pr.ed_pk, a->ed_pk, 32);
    assert_true(dht_id_eq(&r.pr.id, &a->id));
    assert_int_equal(r.pr.payload_len, sizeof(PAY_A));
    assert_memory_equal(r.pr.payload, PAY_A, sizeof(PAY_A));
    /* the frames carry the indexes where the wire document says */
    assert_int_equal(ovl_frame_peek(r.hs1, (size_t)r.n1, &fi), 0);
    assert_int_equal(fi.type, OVL_T_HS1);
    assert_int_equal(fi.sender_index, 0x11111111);
    assert_int_equal(ovl_frame_peek(r.hs2, (size_t)r.n2, &fi), 0);
    assert_int_equal(fi.type, OVL_T_HS2);
    assert_int_equal(fi.sender_index, 0x22222222);
    assert_int_equal(fi.receiver_index, 0x11111111);
    assert_int_equal(ovl_frame_peek(r.hs3, (size_t)r.n3, &fi), 0);
    assert_int_equal(fi.type, OVL_T_HS3);
    assert_int_equal(fi.receiver_index, 0x22222222);

    assert_int_equal(ovl_hs_split(&r.hi, &sa), 0);
    assert_int_equal(ovl_hs_split(&r.hr, &sb), 0);
    assert_true(all_zero(&r.hi, sizeof(r.hi))); /* split wiped the handshakes */
    assert_true(all_zero(&r.hr, sizeof(r.hr)));
    assert_true(sa.initiator);
    assert_false(sb.initiator);
    assert_int_equal(sa.local_index, 0x11111111);
    assert_int_equal(sa.remote_index, 0x22222222);
    assert_int_equal(sb.local_index, 0x22222222);
    assert_int_equal(sb.remote_index, 0x11111111);
    assert_memory_equal(sa.send_key, sb.recv_key, 32);
    assert_memory_equal(sb.send_key, sa.recv_key, 32);
    assert_memory_not_equal(sa.send_key, sa.recv_key, 32);

    for (int i = 0; i < 3; i++) {
        n = seal(&sa, "INVITE a to b", f);
        assert_int_equal(ovl_frame_peek(f, (size_t)n, &fi), 0);
        assert_int_equal(fi.type, OVL_T_DATA);
        assert_int_equal(fi.receiver_index, 0x22222222);
        assert_int_equal(fi.counter, (uint64_t)i);
        open_ok(&sb, f, n, "INVITE a to b");
        n = seal(&sb, "200 OK b to a", f);
        open_ok(&sa, f, n, "200 OK b to a");
    }
    /* sealing and opening in place: the message where the frame's ciphertext goes */
    memcpy(f + OVL_DATA_HDR_LEN, "in place", 8);
    n = ovl_seal(&sa, f + OVL_DATA_HDR_LEN, 8, f, sizeof(f));
    assert_int_equal(n, 8 + OVL_DATA_OVERHEAD);
    assert_memory_not_equal(f + OVL_DATA_HDR_LEN, "in place", 8);
    assert_int_equal(ovl_open(&sb, f, (size_t)n, f + OVL_DATA_HDR_LEN, 8), 8);
    assert_memory_equal(f + OVL_DATA_HDR_LEN, "in place", 8);
    /* an empty message is a frame too */
    assert_int_equal(ovl_seal(&sa, NULL, 0, f, sizeof(f)), OVL_DATA_OVERHEAD);
    assert_int_equal(ovl_open(&sb, f, OVL_DATA_OVERHEAD, NULL, 0), 0);
    ovl_session_wipe(&sa);
    assert_true(all_zero(&sa, sizeof(sa)));
}

static void test_handshake_both_ways(void **state)
{
    (void)state;
    struct ovl_identity a, b;

    ident(&a, 1);
    ident(&b, 2);
    check_handshake(&a, &b);
    check_handshake(&b, &a);
}

static void test_other_psk_gets_no_answer(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_hs hi, hr;
    uint8_t pa[32], pb[32], none[32], hs1[BUF], out[BUF];
    int n;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(pa, "our overlay");
    psk_of(pb, "their overlay");
    ovl_psk_from_secret(none, NULL, 0);
    n = ovl_hs_initiate(&hi, &a, pa, 1, hs1, sizeof(hs1));
    assert_int_equal(n, OVL_HS1_LEN);
    memset(out, 0xee, sizeof(out));
    memset(&hr, 0xee, sizeof(hr));
    assert_int_equal(ovl_hs_respond(&hr, &b, pb, 2, hs1, (size_t)n, NULL, 0, out, sizeof(out)),
                     -EBADMSG);
    assert_int_equal(ovl_hs_respond(&hr, &b, none, 2, hs1, (size_t)n, NULL, 0, out, sizeof(out)),
                     -EBADMSG);
    /* nothing to send: neither the output nor the handshake was written */
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0xee);
    for (size_t i = 0; i < sizeof(hr); i++)
        assert_int_equal(((uint8_t *)&hr)[i], 0xee);
    /* the same HS1 is answered by a member of its own overlay */
    assert_int_equal(ovl_hs_respond(&hr, &b, pa, 2, hs1, (size_t)n, NULL, 0, out, sizeof(out)),
                     OVL_HS2_LEN(0));
    /* and two secret-less nodes form one overlay */
    n = ovl_hs_initiate(&hi, &a, none, 1, hs1, sizeof(hs1));
    assert_int_equal(ovl_hs_respond(&hr, &b, none, 2, hs1, (size_t)n, NULL, 0, out, sizeof(out)),
                     OVL_HS2_LEN(0));
}

static void test_tampered_handshake(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_hs h, saved;
    struct ovl_peer_info peer;
    struct ovl_session sa, sb;
    uint8_t psk[32], f[BUF], out[BUF];
    struct run r;
    int n;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    handshake(&r, &a, &b, psk, 7, 9);

    /* HS1: every byte, every bit */
    for (int i = 0; i < r.n1; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(f, r.hs1, (size_t)r.n1);
            f[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(
                ovl_hs_respond(&h, &b, psk, 9, f, (size_t)r.n1, NULL, 0, out, sizeof(out)),
                -EBADMSG);
        }

    /* HS2 against the initiator as it was after HS1 */
    memset(&h, 0, sizeof(h));
    n = ovl__hs_initiate_e(&h, &a, psk, 7, (const uint8_t[32]){1}, f, sizeof(f));
    assert_int_equal(n, OVL_HS1_LEN);
    assert_int_equal(ovl__hs_respond_e(&r.hr, &b, psk, 9, f, (size_t)n, PAY_B, sizeof(PAY_B),
                                       (const uint8_t[32]){2}, r.hs2, sizeof(r.hs2)),
                     r.n2);
    saved = h;
    for (int i = 0; i < r.n2; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(f, r.hs2, (size_t)r.n2);
            f[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(
                ovl_hs_finish(&h, f, (size_t)r.n2, PAY_A, sizeof(PAY_A), out, sizeof(out), &peer),
                -EBADMSG);
            assert_memory_equal(&h, &saved, sizeof(h)); /* a refusal changes nothing */
        }
    assert_int_equal(
        ovl_hs_finish(&h, r.hs2, (size_t)r.n2, PAY_A, sizeof(PAY_A), r.hs3, sizeof(r.hs3), &peer),
        r.n3);

    /* HS3 against the responder as it was after HS2 */
    saved = r.hr;
    for (int i = 0; i < r.n3; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(f, r.hs3, (size_t)r.n3);
            f[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(ovl_hs_complete(&r.hr, f, (size_t)r.n3, &peer), -EBADMSG);
            assert_memory_equal(&r.hr, &saved, sizeof(r.hr));
        }
    /* and truncated or extended by one byte */
    assert_int_equal(ovl_hs_complete(&r.hr, r.hs3, (size_t)r.n3 - 1, &peer), -EBADMSG);
    r.hs3[r.n3] = 0;
    assert_int_equal(ovl_hs_complete(&r.hr, r.hs3, (size_t)r.n3 + 1, &peer), -EBADMSG);
    assert_int_equal(ovl_hs_complete(&r.hr, r.hs3, (size_t)r.n3, &peer), 0);
    assert_int_equal(ovl_hs_split(&h, &sa), 0);
    assert_int_equal(ovl_hs_split(&r.hr, &sb), 0);
    n = seal(&sa, "still fine", f);
    open_ok(&sb, f, n, "still fine");
}

static void test_handshake_misuse(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_hs h;
    struct ovl_session s;
    struct ovl_peer_info peer;
    uint8_t psk[32], f[BUF], out[BUF], big[OVL_HS_PAYLOAD_MAX + 1] = {0};
    struct run r;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    assert_int_equal(ovl_hs_initiate(&h, &a, psk, 1, f, OVL_HS1_LEN - 1), -ENOSPC);
    handshake(&r, &a, &b, psk, 7, 9);
    /* steps out of order */
    assert_int_equal(ovl_hs_finish(&r.hr, r.hs2, (size_t)r.n2, NULL, 0, out, sizeof(out), &peer),
                     -EINVAL);
    assert_int_equal(ovl_hs_complete(&r.hi, r.hs3, (size_t)r.n3, &peer), -EINVAL);
    assert_int_equal(ovl_hs_finish(&r.hi, r.hs2, (size_t)r.n2, NULL, 0, out, sizeof(out), &peer),
                     -EINVAL); /* already finished */
    assert_int_equal(ovl_hs_initiate(&h, &a, psk, 1, f, sizeof(f)), OVL_HS1_LEN);
    assert_int_equal(ovl_hs_split(&h, &s), -EINVAL);
    /* payload bounds and output room */
    assert_int_equal(
        ovl_hs_respond(&r.hr, &b, psk, 2, f, OVL_HS1_LEN, big, sizeof(big), out, sizeof(out)),
        -EINVAL);
    assert_int_equal(ovl_hs_respond(&r.hr, &b, psk, 2, f, OVL_HS1_LEN, big, OVL_HS_PAYLOAD_MAX, out,
                                    OVL_HS2_LEN(OVL_HS_PAYLOAD_MAX) - 1),
                     -ENOSPC);
    {
        struct ovl_hs hr;
        struct ovl_peer_info pi, pr;
        uint8_t hs2[BUF], hs3[BUF];
        int n2 = ovl_hs_respond(&hr, &b, psk, 2, f, OVL_HS1_LEN, big, OVL_HS_PAYLOAD_MAX, hs2,
                                OVL_HS_FRAME_MAX);
        assert_int_equal(n2, OVL_HS_FRAME_MAX);
        assert_int_equal(
            ovl_hs_finish(&h, hs2, (size_t)n2, big, sizeof(big), hs3, sizeof(hs3), &pi), -EINVAL);
        assert_int_equal(ovl_hs_finish(&h, hs2, (size_t)n2, big, OVL_HS_PAYLOAD_MAX, hs3,
                                       OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX) - 1, &pi),
                         -ENOSPC);
        /* an HS2 for another handshake of ours (another receiver index) */
        struct ovl_hs other = h;
        other.local_index = 99;
        assert_int_equal(ovl_hs_finish(&other, hs2, (size_t)n2, NULL, 0, hs3, sizeof(hs3), &pi),
                         -EBADMSG);
        assert_int_equal(ovl_hs_finish(&h, hs2, (size_t)n2, big, OVL_HS_PAYLOAD_MAX, hs3,
                                       OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX), &pi),
                         OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX));
        assert_int_equal(pi.payload_len, OVL_HS_PAYLOAD_MAX);
        assert_int_equal(ovl_hs_complete(&hr, hs3, OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX), &pr), 0);
        assert_int_equal(pr.payload_len, OVL_HS_PAYLOAD_MAX);
        assert_true(dht_id_eq(&pr.id, &a.id));
    }
}

/*
 * An identity that announces another node's Ed25519 key while proving a static key of
 * its own: the check that the Ed25519 key converts to the static key refuses it, on
 * both sides.
 */
static void test_forged_ed_key(void **state)
{
    (void)state;
    struct ovl_identity a, b, c, liar;
    struct ovl_hs hi, hr;
    struct ovl_peer_info peer;
    uint8_t psk[32], hs1[BUF], hs2[BUF], hs3[BUF];
    int n1, n2, n3;

    ident(&a, 1);
    ident(&b, 2);
    ident(&c, 3);
    psk_of(psk, "overlay");

    /* responder b claims to be c */
    liar = b;
    memcpy(liar.ed_pk, c.ed_pk, 32);
    n1 = ovl_hs_initiate(&hi, &a, psk, 1, hs1, sizeof(hs1));
    n2 = ovl_hs_respond(&hr, &liar, psk, 2, hs1, (size_t)n1, NULL, 0, hs2, sizeof(hs2));
    assert_int_equal(n2, OVL_HS2_LEN(0));
    assert_int_equal(ovl_hs_finish(&hi, hs2, (size_t)n2, NULL, 0, hs3, sizeof(hs3), &peer),
                     -EBADMSG);

    /* initiator a claims to be c */
    liar = a;
    memcpy(liar.ed_pk, c.ed_pk, 32);
    n1 = ovl_hs_initiate(&hi, &liar, psk, 1, hs1, sizeof(hs1));
    n2 = ovl_hs_respond(&hr, &b, psk, 2, hs1, (size_t)n1, NULL, 0, hs2, sizeof(hs2));
    n3 = ovl_hs_finish(&hi, hs2, (size_t)n2, NULL, 0, hs3, sizeof(hs3), &peer);
    assert_int_equal(n3, OVL_HS3_LEN(0));
    assert_int_equal(ovl_hs_complete(&hr, hs3, (size_t)n3, &peer), -EBADMSG);

    /* a key that is not a curve point at all */
    liar = b;
    memset(liar.ed_pk, 0xff, 32);
    n1 = ovl_hs_initiate(&hi, &a, psk, 1, hs1, sizeof(hs1));
    n2 = ovl_hs_respond(&hr, &liar, psk, 2, hs1, (size_t)n1, NULL, 0, hs2, sizeof(hs2));
    assert_int_equal(ovl_hs_finish(&hi, hs2, (size_t)n2, NULL, 0, hs3, sizeof(hs3), &peer),
                     -EBADMSG);
}

/* ---- sessions ---- */

static void test_tampered_data(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_session sa, sb, fresh;
    uint8_t psk[32], f[BUF], g[BUF], pt[BUF];
    int n;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    sessions(&a, &b, psk, &sa, &sb);
    n = seal(&sa, "REGISTER sip:alice", f);
    fresh = sb;
    memset(pt, 0xee, sizeof(pt));
    for (int i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(g, f, (size_t)n);
            g[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(ovl_open(&sb, g, (size_t)n, pt, sizeof(pt)), -EBADMSG);
            assert_memory_equal(&sb, &fresh, sizeof(sb)); /* no window move, no epoch */
        }
    for (int len = 0; len < n; len++)
        assert_int_equal(ovl_open(&sb, f, (size_t)len, pt, sizeof(pt)), -EBADMSG);
    f[n] = 0;
    assert_int_equal(ovl_open(&sb, f, (size_t)n + 1, pt, sizeof(pt)), -EBADMSG);
    for (size_t i = 0; i < sizeof(pt); i++)
        assert_int_equal(pt[i], 0xee); /* nothing written by a refusal */
    assert_memory_equal(&sb, &fresh, sizeof(sb));
    /* too small a buffer is said before anything else happens */
    assert_int_equal(ovl_open(&sb, f, (size_t)n, pt, (size_t)n - OVL_DATA_OVERHEAD - 1), -ENOSPC);
    open_ok(&sb, f, n, "REGISTER sip:alice");
    /* the sender's own frame is not for the sender (its own index) */
    n = seal(&sa, "loop", f);
    assert_int_equal(ovl_open(&sa, f, (size_t)n, pt, sizeof(pt)), -EBADMSG);
}

static void test_other_session(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_session s1a, s1b, s2a, s2b;
    uint8_t psk[32], f[BUF], pt[BUF];
    int n;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    /* two sessions between the same nodes with the same indexes: only keys differ */
    sessions(&a, &b, psk, &s1a, &s1b);
    sessions(&a, &b, psk, &s2a, &s2b);
    n = seal(&s1a, "for session one", f);
    assert_int_equal(ovl_open(&s2b, f, (size_t)n, pt, sizeof(pt)), -EBADMSG);
    open_ok(&s1b, f, n, "for session one");
    n = seal(&s2b, "for session two", f);
    assert_int_equal(ovl_open(&s1a, f, (size_t)n, pt, sizeof(pt)), -EBADMSG);
    open_ok(&s2a, f, n, "for session two");
}

static void test_replay_window(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_session sa, sb;
    static uint8_t f[OVL_REPLAY_WINDOW + 100][64];
    int len[OVL_REPLAY_WINDOW + 100];
    uint8_t psk[32], pt[BUF];
    const int last = OVL_REPLAY_SPAN + 20;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    sessions(&a, &b, psk, &sa, &sb);
    for (int i = 0; i <= last; i++) {
        len[i] = ovl_seal(&sa, (const uint8_t *)"m", 1, f[i], sizeof(f[i]));
        assert_int_equal(len[i], 1 + OVL_DATA_OVERHEAD);
    }
    /* the same frame twice */
    assert_int_equal(ovl_open(&sb, f[0], (size_t)len[0], pt, sizeof(pt)), 1);
    assert_int_equal(ovl_open(&sb, f[0], (size_t)len[0], pt, sizeof(pt)), -EALREADY);
    /* out of order inside the window: each accepted once */
    assert_int_equal(ovl_open(&sb, f[5], (size_t)len[5], pt, sizeof(pt)), 1);
    assert_int_equal(ovl_open(&sb, f[3], (size_t)len[3], pt, sizeof(pt)), 1);
    assert_int_equal(ovl_open(&sb, f[3], (size_t)len[3], pt, sizeof(pt)), -EALREADY);
    assert_int_equal(ovl_open(&sb, f[5], (size_t)len[5], pt, sizeof(pt)), -EALREADY);
    assert_int_equal(ovl_open(&sb, f[4], (size_t)len[4], pt, sizeof(pt)), 1);
    assert_int_equal(sb.recv_max, 5);
    /* jump ahead: the last frame moves the window to it */
    assert_int_equal(ovl_open(&sb, f[last], (size_t)len[last], pt, sizeof(pt)), 1);
    assert_int_equal(sb.recv_max, (uint64_t)last);
    /* the oldest still inside (last - SPAN + 1) is accepted once; one older is not */
    int edge = last - OVL_REPLAY_SPAN + 1;
    assert_int_equal(ovl_open(&sb, f[edge], (size_t)len[edge], pt, sizeof(pt)), 1);
    assert_int_equal(ovl_open(&sb, f[edge], (size_t)len[edge], pt, sizeof(pt)), -EALREADY);
    assert_int_equal(ovl_open(&sb, f[edge - 1], (size_t)len[edge - 1], pt, sizeof(pt)), -EALREADY);
    assert_int_equal(ovl_open(&sb, f[6], (size_t)len[6], pt, sizeof(pt)), -EALREADY);
    /* everything in between, once, in reverse order */
    for (int i = last - 1; i > edge; i--)
        assert_int_equal(ovl_open(&sb, f[i], (size_t)len[i], pt, sizeof(pt)), 1);
    for (int i = edge; i <= last; i++)
        assert_int_equal(ovl_open(&sb, f[i], (size_t)len[i], pt, sizeof(pt)), -EALREADY);

    /* a forged frame far ahead does not move the window */
    uint8_t g[64];
    int n = ovl_seal(&sa, (const uint8_t *)"m", 1, g, sizeof(g));
    g[14] ^= 0x10; /* counter + 4096 */
    g[n - 1] ^= 1;
    assert_int_equal(ovl_open(&sb, g, (size_t)n, pt, sizeof(pt)), -EBADMSG);
    assert_int_equal(sb.recv_max, (uint64_t)last);
    g[14] ^= 0x10;
    g[n - 1] ^= 1;
    assert_int_equal(ovl_open(&sb, g, (size_t)n, pt, sizeof(pt)), 1);
}

/* Counters across a key epoch boundary, sent and delivered out of order. */
static void test_rekey(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_session sa, sb;
    uint8_t psk[32], k0[32], k1[32], f[8][64], pt[BUF];
    int len[8];
    static const int order[8] = {5, 0, 3, 1, 7, 2, 6, 4};

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    sessions(&a, &b, psk, &sa, &sb);
    memcpy(k0, sa.send_key, 32);
    sa.send_next = OVL_REKEY_EVERY - 4; /* frames 0..3 in epoch 0, 4..7 in epoch 1 */
    for (int i = 0; i < 8; i++) {
        char m[8];
        snprintf(m, sizeof(m), "m%d", i);
        len[i] = seal(&sa, m, f[i]);
    }
    assert_int_equal(sa.send_epoch, 1);
    assert_int_equal(sa.send_next, OVL_REKEY_EVERY + 4);
    memcpy(k1, k0, 32);
    ovl__rekey(k1);
    assert_memory_equal(sa.send_key, k1, 32); /* key(1) = REKEY(key(0)) */
    assert_memory_not_equal(k0, k1, 32);

    for (int j = 0; j < 8; j++) {
        int i = order[j];
        char m[8];
        snprintf(m, sizeof(m), "m%d", i);
        open_ok(&sb, f[i], len[i], m);
        assert_int_equal(sb.recv_epoch, 1); /* frame 5 came first: epoch 1 from then on */
    }
    assert_memory_equal(sb.recv_key, k1, 32);
    assert_memory_equal(sb.recv_prev_key, k0, 32);
    for (int i = 0; i < 8; i++)
        assert_int_equal(ovl_open(&sb, f[i], (size_t)len[i], pt, sizeof(pt)), -EALREADY);

    /* two epochs ahead is derived (bounded work); three is refused */
    uint8_t g[64], h[64];
    int ng, nh;
    sa.send_next = 3 * OVL_REKEY_EVERY;
    ng = seal(&sa, "epoch 3", g);
    assert_int_equal(sa.send_epoch, 3);
    sa.send_next = 4 * OVL_REKEY_EVERY + 1;
    nh = seal(&sa, "epoch 4", h);
    assert_int_equal(ovl_open(&sb, h, (size_t)nh, pt, sizeof(pt)), -EBADMSG);
    assert_int_equal(sb.recv_epoch, 1);
    open_ok(&sb, g, ng, "epoch 3");
    assert_int_equal(sb.recv_epoch, 3);
    open_ok(&sb, h, nh, "epoch 4");
    assert_int_equal(sb.recv_epoch, 4);
    /* epoch 1 is now older than the previous epoch (3): refused */
    assert_int_equal(ovl_open(&sb, f[7], (size_t)len[7], pt, sizeof(pt)), -EALREADY);
}

static void test_counter_limit(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_session sa, sb;
    uint8_t psk[32], f[BUF], pt[BUF];
    static uint8_t big[OVL_FRAME_MAX], frame[OVL_FRAME_MAX];
    int n;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    sessions(&a, &b, psk, &sa, &sb);
    assert_int_equal(
        ovl_seal(&sa, big, OVL_FRAME_MAX - OVL_DATA_OVERHEAD + 1, frame, sizeof(frame)), -EMSGSIZE);
    assert_int_equal(ovl_seal(&sa, (const uint8_t *)"x", 1, f, OVL_DATA_OVERHEAD), -ENOSPC);
    assert_int_equal(sa.send_next, 0);
    n = ovl_seal(&sa, big, OVL_FRAME_MAX - OVL_DATA_OVERHEAD, frame, sizeof(frame));
    assert_int_equal(n, OVL_FRAME_MAX);
    assert_int_equal(ovl_open(&sb, frame, (size_t)n, big, sizeof(big)),
                     OVL_FRAME_MAX - OVL_DATA_OVERHEAD);

    sa.send_next = OVL_COUNTER_LIMIT - 1;
    sa.send_epoch = (OVL_COUNTER_LIMIT - 1) / OVL_REKEY_EVERY;
    n = seal(&sa, "last", f);
    assert_int_equal(ovl_seal(&sa, (const uint8_t *)"x", 1, f, sizeof(f)), -ESTALE);
    assert_int_equal(ovl_seal(&sa, (const uint8_t *)"x", 1, f, sizeof(f)), -ESTALE);
    assert_int_equal(sa.send_next, OVL_COUNTER_LIMIT);
    /* a receiver never accepts a counter at the limit, whatever the tag */
    f[8] = 0x10; /* counter = 2^60 */
    memset(f + 9, 0, 7);
    assert_int_equal(ovl_open(&sb, f, (size_t)n, pt, sizeof(pt)), -EBADMSG);
}

/* ---- discovery and peek ---- */

static void test_discover(void **state)
{
    (void)state;
    uint8_t psk[32], other[32], f[BUF], g[BUF];
    struct ovl_discover d, e;
    int n;

    psk_of(psk, "overlay");
    psk_of(other, "another overlay");
    memset(&d, 0, sizeof(d));
    for (int i = 0; i < DHT_ID_LEN; i++)
        d.id.b[i] = (uint8_t)(0xa0 + i);
    d.port = 7560;
    d.flags = OVL_DISC_QUERY | OVL_DISC_MEMBER;
    memcpy(d.nonce, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(ovl_discover_encode(psk, &d, f, OVL_DISCOVER_LEN - 1), -ENOSPC);
    n = ovl_discover_encode(psk, &d, f, sizeof(f));
    assert_int_equal(n, OVL_DISCOVER_LEN);
    assert_int_equal(f[24], 7560 >> 8); /* port, big-endian, after header and ID */
    assert_int_equal(f[25], 7560 & 0xff);
    memset(&e, 0, sizeof(e));
    assert_int_equal(ovl_discover_decode(psk, f, (size_t)n, &e), 0);
    assert_true(dht_id_eq(&e.id, &d.id));
    assert_int_equal(e.port, 7560);
    assert_int_equal(e.flags, OVL_DISC_QUERY | OVL_DISC_MEMBER);
    assert_memory_equal(e.nonce, d.nonce, 8);

    memset(&e, 0x77, sizeof(e));
    assert_int_equal(ovl_discover_decode(other, f, (size_t)n, &e), -EBADMSG);
    for (int len = 0; len < n; len++)
        assert_int_equal(ovl_discover_decode(psk, f, (size_t)len, &e), -EBADMSG);
    f[n] = 0;
    assert_int_equal(ovl_discover_decode(psk, f, (size_t)n + 1, &e), -EBADMSG);
    for (int i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(g, f, (size_t)n);
            g[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(ovl_discover_decode(psk, g, (size_t)n, &e), -EBADMSG);
        }
    for (size_t i = 0; i < sizeof(e); i++)
        assert_int_equal(((uint8_t *)&e)[i], 0x77);
}

/* Every prefix of a frame: too short for its type is -EBADMSG, the rest parse the same. */
static void check_prefixes(const uint8_t *f, size_t n, size_t min)
{
    struct ovl_frame_info full, fi;

    assert_int_equal(ovl_frame_peek(f, n, &full), 0);
    for (size_t len = 0; len < n; len++) {
        memset(&fi, 0x77, sizeof(fi));
        int rc = ovl_frame_peek(f, len, &fi);
        if (len < min) {
            assert_int_equal(rc, -EBADMSG);
            assert_int_equal(fi.type, 0x77); /* untouched */
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(fi.type, full.type);
            assert_int_equal(fi.sender_index, full.sender_index);
            assert_int_equal(fi.receiver_index, full.receiver_index);
            assert_int_equal(fi.counter, full.counter);
        }
    }
}

static void test_peek(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_session sa, sb;
    struct ovl_discover d = {0};
    struct ovl_frame_info fi;
    uint8_t psk[32], f[BUF];
    struct run r;
    int n;

    ident(&a, 1);
    ident(&b, 2);
    psk_of(psk, "overlay");
    handshake(&r, &a, &b, psk, 0x01020304, 0x05060708);
    check_prefixes(r.hs1, (size_t)r.n1, OVL_HS1_LEN);
    check_prefixes(r.hs2, (size_t)r.n2, OVL_HS2_LEN(0));
    check_prefixes(r.hs3, (size_t)r.n3, OVL_HS3_LEN(0));
    assert_int_equal(ovl_frame_peek(r.hs2, (size_t)r.n2, &fi), 0);
    assert_int_equal(fi.sender_index, 0x05060708);
    assert_int_equal(fi.receiver_index, 0x01020304);
    assert_int_equal(fi.counter, 0);
    assert_int_equal(ovl_hs_split(&r.hi, &sa), 0);
    assert_int_equal(ovl_hs_split(&r.hr, &sb), 0);
    sa.send_next = 0x0102030405060708ull;
    sa.send_epoch = sa.send_next / OVL_REKEY_EVERY;
    n = seal(&sa, "x", f);
    check_prefixes(f, (size_t)n, OVL_DATA_OVERHEAD);
    assert_int_equal(ovl_frame_peek(f, (size_t)n, &fi), 0);
    assert_int_equal(fi.type, OVL_T_DATA);
    assert_int_equal(fi.receiver_index, 0x05060708); /* sent to the responder */
    assert_int_equal(fi.counter, 0x0102030405060708ull);
    n = ovl_discover_encode(psk, &d, f, sizeof(f));
    check_prefixes(f, (size_t)n, OVL_DISCOVER_LEN);

    /* header fields */
    memcpy(f, r.hs1, OVL_HS1_LEN);
    f[1] = 2;
    assert_int_equal(ovl_frame_peek(f, OVL_HS1_LEN, &fi), -EPROTONOSUPPORT);
    f[1] = OVL_VERSION;
    f[0] = 0xb4;
    assert_int_equal(ovl_frame_peek(f, OVL_HS1_LEN, &fi), -EBADMSG);
    f[0] = OVL_MAGIC;
    f[3] = 1;
    assert_int_equal(ovl_frame_peek(f, OVL_HS1_LEN, &fi), -EBADMSG);
    f[3] = 0;
    for (int t = 0; t < 256; t++) {
        f[2] = (uint8_t)t;
        if (t < OVL_T_HS1 || t > OVL_T_DISCOVER)
            assert_int_equal(ovl_frame_peek(f, BUF, &fi), -EBADMSG);
    }
    /* exact and upper lengths */
    memcpy(f, r.hs1, OVL_HS1_LEN);
    assert_int_equal(ovl_frame_peek(f, OVL_HS1_LEN + 1, &fi), -EBADMSG);
    f[2] = OVL_T_HS2;
    assert_int_equal(ovl_frame_peek(f, OVL_HS2_LEN(OVL_HS_PAYLOAD_MAX), &fi), 0);
    assert_int_equal(ovl_frame_peek(f, OVL_HS2_LEN(OVL_HS_PAYLOAD_MAX) + 1, &fi), -EBADMSG);
    f[2] = OVL_T_HS3;
    assert_int_equal(ovl_frame_peek(f, OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX), &fi), 0);
    assert_int_equal(ovl_frame_peek(f, OVL_HS3_LEN(OVL_HS_PAYLOAD_MAX) + 1, &fi), -EBADMSG);
    f[2] = OVL_T_DATA;
    {
        static uint8_t big[OVL_FRAME_MAX + 1];
        memcpy(big, f, 16);
        assert_int_equal(ovl_frame_peek(big, OVL_FRAME_MAX, &fi), 0);
        assert_int_equal(ovl_frame_peek(big, OVL_FRAME_MAX + 1, &fi), -EBADMSG);
    }
}

/* ---- known answers ---- */

static void inc_key(uint8_t k[32], uint8_t start)
{
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)(start + i);
}

/*
 * snow (github.com/mcginty/snow, tests/general.rs, test_XXpsk0_expected_value): static
 * keys 00..1f (initiator) and 01..20 (responder), ephemerals 20..3f and 21..40, PSK
 * 04..23, prologue 01 02 03, payloads "abc", "defg", "".  Plain Noise: nothing bound.
 */
static void test_noise_vector(void **state)
{
    (void)state;
    static const uint8_t prologue[3] = {1, 2, 3};
    struct ovl_identity si = {0}, sr = {0};
    struct ovl_hs hi, hr;
    uint8_t psk[32], ei[32], er[32], m[BUF], pl[BUF], k1[32], k2[32], k1r[32], k2r[32];
    int n;

    inc_key(si.x_sk, 0);
    crypto_scalarmult_base(si.x_pk, si.x_sk);
    inc_key(sr.x_sk, 1);
    crypto_scalarmult_base(sr.x_pk, sr.x_sk);
    inc_key(psk, 4);
    inc_key(ei, 32);
    inc_key(er, 33);
    ovl__noise_init(&hi, true, &si, prologue, sizeof(prologue));
    ovl__noise_init(&hr, false, &sr, prologue, sizeof(prologue));

    n = ovl__noise_write1(&hi, psk, ei, NULL, 0, (const uint8_t *)"abc", 3, m);
    assert_int_equal(n, 51);
    assert_int_equal(ovl__noise_read1(&hr, psk, NULL, 0, m, (size_t)n, pl), 3);
    assert_memory_equal(pl, "abc", 3);
    n = ovl__noise_write2(&hr, er, NULL, 0, (const uint8_t *)"defg", 4, m);
    assert_int_equal(n, 100);
    assert_int_equal(ovl__noise_read2(&hi, NULL, 0, m, (size_t)n, pl), 4);
    assert_memory_equal(pl, "defg", 4);
    assert_memory_equal(hi.rs, sr.x_pk, 32);
    n = ovl__noise_write3(&hi, NULL, 0, NULL, 0, m);
    assert_int_equal(n, 64);
    assert_hex(m, 64,
               "072b7bbd237ac602c4aa938db36998f31ca4750752d1758d59850c627d0bdbc5"
               "1205592c3baa101b4a31f062695b7c1dbee99d5123fbd2ad03052078c570e028");
    assert_int_equal(ovl__noise_read3(&hr, NULL, 0, m, (size_t)n, pl), 0);
    assert_memory_equal(hr.rs, si.x_pk, 32);
    assert_memory_equal(hi.h, hr.h, 32);
    ovl__noise_split(&hi, k1, k2);
    ovl__noise_split(&hr, k1r, k2r);
    assert_memory_equal(k1, k1r, 32);
    assert_memory_equal(k2, k2r, 32);
}

/* Our frames from fixed keys: any change to the wire or the key schedule shows here. */
static void test_known_answer(void **state)
{
    (void)state;
    struct ovl_identity a, b;
    struct ovl_hs hi, hr;
    struct ovl_peer_info pi, pr;
    struct ovl_session sa, sb;
    struct ovl_discover d = {0};
    uint8_t psk[32], ei[32], er[32], hs1[BUF], hs2[BUF], hs3[BUF], f[BUF];
    int n1, n2, n3, n;

    ident(&a, 0x61);
    ident(&b, 0x62);
    psk_of(psk, "known answer");
    inc_key(ei, 0x20);
    inc_key(er, 0x40);
    n1 = ovl__hs_initiate_e(&hi, &a, psk, 0x0a0b0c0d, ei, hs1, sizeof(hs1));
    n2 = ovl__hs_respond_e(&hr, &b, psk, 0x01020304, hs1, (size_t)n1, PAY_B, 3, er, hs2,
                           sizeof(hs2));
    n3 = ovl_hs_finish(&hi, hs2, (size_t)n2, PAY_A, 5, hs3, sizeof(hs3), &pi);
    assert_int_equal(ovl_hs_complete(&hr, hs3, (size_t)n3, &pr), 0);
    assert_hex(hs1, (size_t)n1,
               "b50101000a0b0c0d358072d6365880d1aeea329adf9121383851ed21a28e3b75"
               "e965d0d2cd166254f4f18d290214d4bfcb9e86358993273d");
    assert_hex(hs2, (size_t)n2,
               "b5010200010203040a0b0c0d79a631eede1bf9c98f12032cdeadd0e7a079398f"
               "c786b88cc846ec89af85a51ac4508f100dc6ba5fd61f29f3c94efbb00c5935d9"
               "6a91d500a153c24dc45a65b101b3b3d7d3162d2b6a6636cc88e57a2c03cda278"
               "195400147f92cfcc030b1e953ca2a2369af872cd27809a21a92ecf84e742224e"
               "f0795c30279996903eefc29a401b21");
    assert_hex(hs3, (size_t)n3,
               "b5010300010203048529a0b80757304848189f1d4a4733743c26bea41007cdf8"
               "39841d65b51ba82ae5cd51ed889a1f0079f7468e8c1103ec30b4e436fe93bc13"
               "6cdb5f41ea0c92b77efb782358033c477dae6f862377fdb4b51cdff65d2462a0"
               "a962349800b81729f865958232");
    assert_int_equal(ovl_hs_split(&hi, &sa), 0);
    assert_int_equal(ovl_hs_split(&hr, &sb), 0);
    n = seal(&sa, "hello", f);
    assert_hex(f, (size_t)n,
               "b5010400010203040000000000000000d044eca12901af307374f96d5f612998"
               "e0f925a606");
    open_ok(&sb, f, n, "hello");
    n = seal(&sb, "world", f);
    assert_hex(f, (size_t)n,
               "b50104000a0b0c0d0000000000000000ddbbac624a1be692916ac2f01141c2f9"
               "89c5501fdf");
    open_ok(&sa, f, n, "world");
    sa.send_next = OVL_REKEY_EVERY; /* first counter of epoch 1: one REKEY */
    n = seal(&sa, "epoch", f);
    assert_hex(f, (size_t)n,
               "b50104000102030400000000001000003811b40efe14ecb78deba1450c5890b9"
               "1b171e8d3f");
    open_ok(&sb, f, n, "epoch");
    memset(d.id.b, 0x33, DHT_ID_LEN);
    d.port = 7560;
    d.flags = OVL_DISC_MEMBER;
    memset(d.nonce, 0x44, 8);
    n = ovl_discover_encode(psk, &d, f, sizeof(f));
    assert_hex(f, (size_t)n,
               "b501050033333333333333333333333333333333333333331d88024444444444"
               "44444427a7f6a8a92f4e4ab28821b57735ad9a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_psk),
        cmocka_unit_test(test_handshake_both_ways),
        cmocka_unit_test(test_other_psk_gets_no_answer),
        cmocka_unit_test(test_tampered_handshake),
        cmocka_unit_test(test_handshake_misuse),
        cmocka_unit_test(test_forged_ed_key),
        cmocka_unit_test(test_tampered_data),
        cmocka_unit_test(test_other_session),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_rekey),
        cmocka_unit_test(test_counter_limit),
        cmocka_unit_test(test_discover),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_noise_vector),
        cmocka_unit_test(test_known_answer),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
