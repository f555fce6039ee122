/*
 * p2p_rogue.c: a misbehaving overlay peer for test_overlay_forged.sh.
 *
 * It speaks the real wire (docs/OVERLAY-WIRE.md) with the library's own functions
 * (overlay_secure.h, dht_msg.h), so everything it sends is exactly what a hostile
 * node holding the overlay secret could send:
 *
 *   p2p_rogue ADDR PORT SECRET_FILE|- VICTIM_ID [ROUNDS]
 *   p2p_rogue flood ADDR PORT SECRET_FILE|- N
 *   p2p_rogue ctl ADDR PORT SECRET_FILE|- PROBE_ADDR PROBE_PORT
 *
 * ctl: over a genuine channel, the role messages a node must not take from anyone:
 * an ATTACH_ACK (status 0) it never asked for, then a PROXY_REPLY from a peer that is
 * not its super-node; then it attaches for real (ATTACH, and waits for the answer)
 * and asks for a reachability probe of PROBE_ADDR:PROBE_PORT, another host.  It
 * prints "up", "attach_ack", "proxy_reply", "attached STATUS", "probe_req", and
 * "alive" once a KEEPALIVE is answered after all of it; exit 0, 1 when the channel
 * or the last KEEPALIVE failed.
 *
 * flood: N valid HS1 frames (right PSK, a fresh ephemeral key and session index
 * each), from one socket, as fast as it can, never finishing a handshake; it reads
 * the HS2s that come back meanwhile and for 2 s after, and prints "hs1 N" and
 * "hs2 M" (M: HS2 frames received).  Each HS1 costs the responder its DH work and a
 * half-open handshake slot: what the responder's caps are for.
 *
 * The default mode:
 * 1. Opens a genuine channel to ADDR:PORT as itself (a fresh identity): HS1, HS2,
 *    HS3, then a KEEPALIVE asking for an answer; the answer (a DATA frame of the
 *    peer that opens with the session's key) proves the channel is up.
 * 2. forged: sends ROUNDS DHT PINGs (ACK requested) and ROUNDS LEAFSET messages
 *    (ANNOUNCE, WANT_REPLY, PEERS = {VICTIM_ID at the rogue's own address}) whose
 *    header sender is VICTIM_ID, i.e. another node's ID, each in a DATA frame sealed
 *    for the genuine channel (inner kind 1).
 * 3. replayed: sends every DATA frame it sent so far once more, verbatim.
 * 4. malformed: ROUNDS times each of: random bytes, a truncated HS1, a DATA frame of
 *    the 16-byte header only, our magic with version 2, an HS1 with flags set.
 * 5. tampered: ROUNDS genuine DATA frames with one bit of the tag flipped.
 * Then it asks for one more KEEPALIVE answer (the channel still works after all of
 * that) and prints, one per line, what it did:
 *   id HEX / local ADDR:PORT / up / forged N / replayed N / malformed N /
 *   tampered N / alive
 * and exits 0; 1 when the channel did not come up or the last KEEPALIVE got no
 * answer, 2 on usage or local errors.  Every wait is bounded (2 s per answer, 6
 * tries); each step of the handshake and of the KEEPALIVE exchange is told on
 * stderr.  IPv4 only.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "p2p/dht_id.h"
#include "p2p/dht_msg.h"
#include "p2p/overlay_secure.h"

#define IN_DHT 1
#define IN_ATTACH 3
#define IN_ATTACH_ACK 4
#define IN_PROBE_REQ 5
#define IN_PROXY_REPLY 9
#define IN_KEEPALIVE 10
#define SENT_MAX 256
#define TRIES 6 /* sends of HS1 or KEEPALIVE, 2 s apart, before giving up */

static int sock = -1;
static struct sockaddr_in peer;
static struct ovl_session sess;
static uint8_t *sent[SENT_MAX]; /* every DATA frame we sent, for the replay */
static size_t sent_len[SENT_MAX];
static size_t n_sent;

static int send_raw(const uint8_t *buf, size_t len)
{
    ssize_t r = sendto(sock, buf, len, 0, (const struct sockaddr *)&peer, sizeof(peer));
    return r == (ssize_t)len ? 0 : -1;
}

/* Waits up to ms for one datagram from the peer; its length, 0 on timeout. */
static ssize_t recv_one(uint8_t *buf, size_t cap, int ms)
{
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    ssize_t n;

    if (poll(&pfd, 1, ms) <= 0)
        return 0;
    n = recvfrom(sock, buf, cap, 0, (struct sockaddr *)&from, &fl);
    if (n < 0 || from.sin_addr.s_addr != peer.sin_addr.s_addr || from.sin_port != peer.sin_port)
        return 0;
    return n;
}

/* Seals kind + body into a DATA frame, sends it and keeps a copy. */
static int send_inner(uint8_t kind, const uint8_t *body, size_t len, bool keep)
{
    uint8_t pt[2048], frame[2048 + OVL_DATA_OVERHEAD];
    int fl;

    if (len + 1 > sizeof(pt))
        return -1;
    pt[0] = kind;
    memcpy(pt + 1, body, len);
    fl = ovl_seal(&sess, pt, len + 1, frame, sizeof(frame));
    if (fl < 0 || send_raw(frame, (size_t)fl) != 0)
        return -1;
    if (keep && n_sent < SENT_MAX) {
        sent[n_sent] = malloc((size_t)fl);
        if (sent[n_sent] == NULL)
            return -1;
        memcpy(sent[n_sent], frame, (size_t)fl);
        sent_len[n_sent++] = (size_t)fl;
    }
    return 0;
}

/* KEEPALIVE "answer me" until a KEEPALIVE comes back (4 tries, 2 s each). */
static int keepalive_answered(void)
{
    uint8_t buf[OVL_FRAME_MAX], pt[OVL_FRAME_MAX], one = 1;
    struct ovl_frame_info fi;

    for (int t = 0; t < TRIES; t++) {
        if (send_inner(IN_KEEPALIVE, &one, 1, true) != 0)
            return -1;
        fprintf(stderr, "p2p_rogue: KEEPALIVE sent (try %d)\n", t + 1);
        for (;;) {
            ssize_t n = recv_one(buf, sizeof(buf), 2000);
            int pl;
            if (n <= 0)
                break;
            if (ovl_frame_peek(buf, (size_t)n, &fi) != 0 || fi.type != OVL_T_DATA) {
                fprintf(stderr, "p2p_rogue: %zd bytes, not a DATA frame (type %u)\n", n, buf[2]);
                continue;
            }
            pl = ovl_open(&sess, buf, (size_t)n, pt, sizeof(pt));
            fprintf(stderr, "p2p_rogue: DATA frame opened: %d, inner kind %u\n", pl,
                    pl > 0 ? pt[0] : 0);
            if (pl >= 2 && pt[0] == IN_KEEPALIVE)
                return 0;
        }
    }
    return -1;
}

static int read_psk(const char *path, uint8_t psk[OVL_KEY_LEN])
{
    uint8_t buf[4096];
    ssize_t n;
    int fd;

    if (strcmp(path, "-") == 0) {
        ovl_psk_from_secret(psk, NULL, 0);
        return 0;
    }
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n <= 0)
        return -1;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--; /* as p2psipd reads it */
    ovl_psk_from_secret(psk, buf, (size_t)n);
    return 0;
}

/* Our handshake payload, shaped like a node's: role, P2P port, where we see the peer. */
static size_t hs_payload(uint16_t port, uint8_t *out)
{
    size_t k = 0;

    out[k++] = 0; /* seeking */
    out[k++] = (uint8_t)(port >> 8);
    out[k++] = (uint8_t)port;
    out[k++] = 6;
    memcpy(out + k, &peer.sin_addr, 4);
    k += 4;
    memcpy(out + k, &peer.sin_port, 2);
    return k + 2;
}

static int handshake(const struct ovl_identity *me, const uint8_t psk[OVL_KEY_LEN], uint16_t port)
{
    uint8_t hs1[OVL_HS1_LEN], hs3[OVL_HS_FRAME_MAX], buf[OVL_FRAME_MAX], pl[64];
    struct ovl_frame_info fi;
    struct ovl_peer_info info;
    struct ovl_hs hs;
    uint32_t idx = randombytes_random();
    int l1, l3 = -1;

    l1 = ovl_hs_initiate(&hs, me, psk, idx, hs1, sizeof(hs1));
    if (l1 < 0)
        return -1;
    for (int t = 0; t < TRIES && l3 < 0; t++) {
        if (send_raw(hs1, (size_t)l1) != 0)
            return -1;
        fprintf(stderr, "p2p_rogue: HS1 sent (try %d)\n", t + 1);
        for (;;) {
            ssize_t n = recv_one(buf, sizeof(buf), 2000);
            if (n <= 0)
                break;
            if (ovl_frame_peek(buf, (size_t)n, &fi) != 0 || fi.type != OVL_T_HS2) {
                fprintf(stderr, "p2p_rogue: %zd bytes, not an HS2 (type %u)\n", n, buf[2]);
                continue;
            }
            l3 = ovl_hs_finish(&hs, buf, (size_t)n, pl, hs_payload(port, pl), hs3, sizeof(hs3),
                               &info);
            fprintf(stderr, "p2p_rogue: HS2 received: %s\n", l3 >= 0 ? "ok" : "refused");
            if (l3 >= 0)
                break;
        }
    }
    if (l3 < 0)
        return -1;
    if (send_raw(hs3, (size_t)l3) != 0 || ovl_hs_split(&hs, &sess) != 0)
        return -1;
    return 0;
}

/* Reads every datagram waiting (or for ms milliseconds) and counts the HS2s. */
static unsigned drain_hs2(int ms)
{
    uint8_t buf[OVL_FRAME_MAX];
    struct ovl_frame_info fi;
    unsigned n2 = 0;

    for (;;) {
        ssize_t n = recv_one(buf, sizeof(buf), ms);
        if (n <= 0)
            return n2;
        if (ovl_frame_peek(buf, (size_t)n, &fi) == 0 && fi.type == OVL_T_HS2)
            n2++;
    }
}

/* Sets peer to ADDR:PORT (IPv4) and opens sock, connected to it: connect() also picks
 * the local address the kernel uses toward the peer.  0, or -1 after a message on
 * stderr. */
static int open_peer(const char *addr, const char *port)
{
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, addr, &peer.sin_addr) != 1) {
        fprintf(stderr, "p2p_rogue: bad address %s\n", addr);
        return -1;
    }
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&peer, sizeof(peer)) != 0) {
        perror("p2p_rogue: socket");
        return -1;
    }
    return 0;
}

static int flood(int argc, char **argv)
{
    struct ovl_identity me;
    uint8_t psk[OVL_KEY_LEN], hs1[OVL_HS1_LEN];
    unsigned n, n_hs1 = 0, got = 0;

    if (argc != 6 || (n = (unsigned)atoi(argv[5])) == 0 || n > 1000000) {
        fprintf(stderr, "usage: p2p_rogue flood ADDR PORT SECRET_FILE|- N\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sodium_init() < 0 || ovl_identity_generate(&me) != 0 || read_psk(argv[4], psk) != 0) {
        fprintf(stderr, "p2p_rogue: bad secret file\n");
        return 2;
    }
    if (open_peer(argv[2], argv[3]) != 0)
        return 2;
    for (unsigned i = 0; i < n; i++) {
        struct ovl_hs hs;
        int l = ovl_hs_initiate(&hs, &me, psk, randombytes_random(), hs1, sizeof(hs1));
        ovl_hs_wipe(&hs);
        if (l < 0)
            return 2;
        if (send_raw(hs1, (size_t)l) == 0)
            n_hs1++;
        if (i % 64 == 63)
            got += drain_hs2(0); /* keep our receive buffer from overflowing */
    }
    got += drain_hs2(2000);
    printf("hs1 %u\nhs2 %u\n", n_hs1, got);
    ovl_identity_wipe(&me);
    close(sock);
    return 0;
}

/* Waits up to 2 s (6 tries of ATTACH) for the victim's ATTACH_ACK; its status or -1. */
static int attach(void)
{
    uint8_t buf[OVL_FRAME_MAX], pt[OVL_FRAME_MAX], flags = 0;
    struct ovl_frame_info fi;

    for (int t = 0; t < TRIES; t++) {
        if (send_inner(IN_ATTACH, &flags, 1, false) != 0)
            return -1;
        for (;;) {
            ssize_t n = recv_one(buf, sizeof(buf), 2000);
            int pl;
            if (n <= 0)
                break;
            if (ovl_frame_peek(buf, (size_t)n, &fi) != 0 || fi.type != OVL_T_DATA)
                continue;
            pl = ovl_open(&sess, buf, (size_t)n, pt, sizeof(pt));
            if (pl >= 3 && pt[0] == IN_ATTACH_ACK)
                return (int16_t)(pt[1] << 8 | pt[2]);
        }
    }
    return -1;
}

static int ctl_mode(int argc, char **argv)
{
    struct ovl_identity me;
    struct sockaddr_in local, probe;
    socklen_t ll = sizeof(local);
    uint8_t psk[OVL_KEY_LEN], b[64];
    int st;

    if (argc != 7) {
        fprintf(stderr, "usage: p2p_rogue ctl ADDR PORT SECRET_FILE|- PROBE_ADDR PROBE_PORT\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&probe, 0, sizeof(probe));
    if (sodium_init() < 0 || ovl_identity_generate(&me) != 0 || read_psk(argv[4], psk) != 0 ||
        inet_pton(AF_INET, argv[5], &probe.sin_addr) != 1) {
        fprintf(stderr, "p2p_rogue: bad secret file or probe address\n");
        return 2;
    }
    probe.sin_port = htons((uint16_t)atoi(argv[6]));
    if (open_peer(argv[2], argv[3]) != 0 || getsockname(sock, (struct sockaddr *)&local, &ll) != 0)
        return 2;
    if (handshake(&me, psk, ntohs(local.sin_port)) != 0 || keepalive_answered() != 0) {
        printf("no channel\n");
        return 1;
    }
    printf("up\n");
    /* An ATTACH_ACK nobody asked for: "you are my client now". */
    b[0] = 0;
    b[1] = 0;
    if (send_inner(IN_ATTACH_ACK, b, 2, false) != 0)
        return 2;
    printf("attach_ack\n");
    /* A PROXY_REPLY from a peer that is not the victim's super-node: request id 1,
     * status 0, 4 acks, no records ("your put reached its quorum"). */
    memset(b, 0, 11);
    b[3] = 1;
    b[9] = 4;
    if (send_inner(IN_PROXY_REPLY, b, 11, false) != 0)
        return 2;
    printf("proxy_reply\n");
    st = attach();
    printf("attached %d\n", st);
    /* A probe of another host's address: a dht_addr of IPv4 (4 address bytes, 2 port). */
    b[0] = 6;
    memcpy(b + 1, &probe.sin_addr, 4);
    memcpy(b + 5, &probe.sin_port, 2);
    if (send_inner(IN_PROBE_REQ, b, 7, false) != 0)
        return 2;
    printf("probe_req\n");
    if (keepalive_answered() != 0) {
        printf("no answer at the end\n");
        return 1;
    }
    printf("alive\n");
    ovl_session_wipe(&sess);
    ovl_identity_wipe(&me);
    close(sock);
    return 0;
}

int main(int argc, char **argv)
{
    struct ovl_identity me;
    struct dht_id victim;
    struct sockaddr_in local;
    socklen_t ll = sizeof(local);
    uint8_t psk[OVL_KEY_LEN], buf[4096];
    char hex[DHT_ID_HEX_LEN + 1], lip[INET_ADDRSTRLEN];
    unsigned rounds = argc > 5 ? (unsigned)atoi(argv[5]) : 5;
    unsigned forged = 0, replayed = 0, malformed = 0, tampered = 0;
    struct dht_msg *m;
    int len;

    if (argc > 1 && strcmp(argv[1], "flood") == 0)
        return flood(argc, argv);
    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return ctl_mode(argc, argv);
    if (argc < 5 || rounds == 0 || rounds > 50) {
        fprintf(stderr, "usage: p2p_rogue ADDR PORT SECRET_FILE|- VICTIM_ID [ROUNDS 1..50]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sodium_init() < 0 || ovl_identity_generate(&me) != 0 || read_psk(argv[3], psk) != 0 ||
        dht_id_from_hex(&victim, argv[4], strlen(argv[4])) != 0) {
        fprintf(stderr, "p2p_rogue: bad secret file or victim ID\n");
        return 2;
    }
    if (open_peer(argv[1], argv[2]) != 0)
        return 2;
    if (getsockname(sock, (struct sockaddr *)&local, &ll) != 0) {
        perror("p2p_rogue: socket");
        return 2;
    }
    inet_ntop(AF_INET, &local.sin_addr, lip, sizeof(lip));
    dht_id_to_hex(&me.id, hex);
    printf("id %s\nlocal %s:%u\n", hex, lip, (unsigned)ntohs(local.sin_port));

    if (handshake(&me, psk, ntohs(local.sin_port)) != 0 || keepalive_answered() != 0) {
        printf("no channel\n");
        return 1;
    }
    printf("up\n");

    /* 2. DHT messages in another node's name. */
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 2;
    for (unsigned r = 0; r < rounds; r++) {
        dht_msg_init(m, DHT_MSG_PING, &victim);
        m->flags = DHT_FLAG_ACK_REQ;
        m->txid = randombytes_random();
        len = dht_msg_encode(m, buf, sizeof(buf));
        if (len < 0 || send_inner(IN_DHT, buf, (size_t)len, true) != 0)
            return 2;
        forged++;

        dht_msg_init(m, DHT_MSG_LEAFSET, &victim);
        m->flags = DHT_FLAG_ANNOUNCE | DHT_FLAG_WANT_REPLY | DHT_FLAG_ACK_REQ;
        m->txid = randombytes_random();
        m->n_peers = 1;
        m->peers[0].id = victim;
        m->peers[0].addr.len = 6;
        memcpy(m->peers[0].addr.b, &local.sin_addr, 4);
        memcpy(m->peers[0].addr.b + 4, &local.sin_port, 2);
        m->have |= DHT_HAVE(DHT_ATTR_PEERS);
        len = dht_msg_encode(m, buf, sizeof(buf));
        if (len < 0 || send_inner(IN_DHT, buf, (size_t)len, true) != 0)
            return 2;
        forged++;
    }
    free(m);
    printf("forged %u\n", forged);

    /* 3. Everything we sent, once more, byte for byte. */
    for (size_t i = 0; i < n_sent; i++)
        if (send_raw(sent[i], sent_len[i]) == 0)
            replayed++;
    printf("replayed %u\n", replayed);

    /* 4. Frames that are not frames. */
    for (unsigned r = 0; r < rounds; r++) {
        uint8_t f[OVL_HS1_LEN];
        randombytes_buf(buf, 100);
        buf[0] = 0x42; /* not our magic */
        malformed += send_raw(buf, 100) == 0;
        (void)ovl_hs_initiate(&(struct ovl_hs){0}, &me, psk, 1, f, sizeof(f));
        malformed += send_raw(f, OVL_HS1_LEN - 1) == 0; /* truncated HS1 */
        memcpy(buf, sent[0], OVL_DATA_HDR_LEN);
        malformed += send_raw(buf, OVL_DATA_HDR_LEN) == 0; /* a DATA header, no body or tag */
        f[1] = 2;
        malformed += send_raw(f, OVL_HS1_LEN) == 0; /* version 2 */
        f[1] = OVL_VERSION;
        f[3] = 0x80;
        malformed += send_raw(f, OVL_HS1_LEN) == 0; /* reserved flags */
    }
    printf("malformed %u\n", malformed);

    /* 5. Genuine frames with a flipped tag bit. */
    for (unsigned r = 0; r < rounds; r++) {
        uint8_t pt[2] = {IN_KEEPALIVE, 0}, frame[64];
        int fl = ovl_seal(&sess, pt, sizeof(pt), frame, sizeof(frame));
        if (fl < 0)
            return 2;
        frame[fl - 1] ^= 0x01;
        tampered += send_raw(frame, (size_t)fl) == 0;
    }
    printf("tampered %u\n", tampered);

    if (keepalive_answered() != 0) {
        printf("no answer after the bad frames\n");
        return 1;
    }
    printf("alive\n");
    for (size_t i = 0; i < n_sent; i++)
        free(sent[i]);
    ovl_session_wipe(&sess);
    ovl_identity_wipe(&me);
    close(sock);
    return 0;
}
