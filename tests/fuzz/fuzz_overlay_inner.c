/*
 * fuzz_overlay_inner.c: libFuzzer target for the overlay's inner messages (the
 * plaintext of a DATA frame, docs/OVERLAY-WIRE.md "Inner messages"), delivered to
 * real overlay nodes over real UDP on one libuv loop.
 *
 * The handlers (overlay/node.c on_dht_inner, on_pipe_inner; overlay/node_roles.c
 * on_attach, on_attach_ack, on_probe_req, on_probe_seen, on_probe_result,
 * on_proxy_req, on_proxy_reply, keep-alive, detach) are static and only run for a
 * frame that authenticates on an established channel.  So this target is a peer:
 * a "rogue" endpoint R of its own (a plain UDP socket, an identity and the PSK, the
 * handshake done by hand with overlay_secure.h), built once per process with two
 * real nodes:
 *   S  a server (-s, a ring of one); R opens a channel to it and ATTACHes: R is its
 *      client, which reaches the super-node's side (proxy requests, probes, relay);
 *   C  a node that seeks a super-node with R's address as its only bootstrap; R
 *      answers its handshake and its ATTACH: R is C's super-node, which reaches the
 *      client's side (attach acks, proxy replies, probe results).  C has a get, a put
 *      and a lookup in flight through R at all times, so a PROXY_REPLY finds them.
 * Each input is sealed, as it is, as the plaintext of one DATA frame to S and one to
 * C on R's sessions, with two substitutions that let short inputs get past checks
 * no mutation would guess: a DHT message (kind 1) gets R's node ID as its header's
 * sender (on_dht_inner drops anything else as forged), and a PROXY_REPLY (kind 9)
 * whose request id is 1, 2 or 3 modulo 4 gets the id of C's pending put, get or
 * lookup instead.  Then each node must answer a ping sent after the input: S a DHT
 * PING (the ring answers with an ACK of its txid), C a PROXY_REQ (a node answers a
 * peer that is not its client with -ENOTCONN under the request's id).  A node that
 * does not answer within PING_MS of loop time gets a second chance: R opens a new
 * channel to it (as a real peer would once a node dropped the old one; the counts
 * and the node's state are printed) and pings again; silence then fails the target,
 * and so does any sanitizer report or crash.  Before each input R restores what an
 * earlier one may have undone: its attachment to S, C's attachment to R, C's pending
 * requests.  R also acknowledges S's DHT pings, like a live neighbour: an input may
 * have put R into S's leaf set, and a lone S whose only leaf fell silent would leave
 * its ring of one to look for the ring (by design, not a fault to report here).
 *
 * Containment.  Inner messages name addresses (probe this address, try that
 * super-node, here is a peer): fed random bytes, the nodes send datagrams to
 * random hosts.  So the target first moves the process into a network namespace of
 * its own (unshare(CLONE_NEWNET) as root, else with a user namespace) with only
 * loopback up, and refuses to run (exit 1) when it cannot: nothing it provokes can
 * leave the machine.  In there the ports are fixed.
 *
 * Determinism.  libsodium's random source is replaced, before sodium_init, by a
 * ChaCha20 stream under a fixed key: identities (from fixed seeds as well), session
 * indexes, ephemeral keys and nonces are the same on every run.  What remains is the
 * loop's clock (timers of the nodes, 250 ms ticks), so a crash that depends on
 * timing may need its input replayed a few times; none of the handlers reads time
 * for its checks.  Request timeouts are long (no request of C times out during a
 * run) and promotion is off (C stays a client whatever probe result it is sent).
 *
 * Seeds: tests/fuzz/corpus/overlay_inner/, one well-formed message of each kind
 * (tests/fuzz/corpus/overlay_inner/README would go stale: the names say the kind).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <sodium.h>
#include <uv.h>

#include "p2p/dht_msg.h"
#include "p2p/dht_record.h"
#include "p2p/dht_store.h"
#include "p2p/log.h"
#include "p2p/overlay_node.h"
#include "p2p/overlay_secure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The inner kinds (docs/OVERLAY-WIRE.md; overlay/node_int.h is the other side's). */
enum {
    K_DHT = 1,
    K_ATTACH = 3,
    K_ATTACH_ACK = 4,
    K_PROXY_REQ = 8,
    K_PROXY_REPLY = 9,
    K_KEEPALIVE = 10,
};
enum { OPK_PUT = 1, OPK_GET = 2, OPK_LOOKUP = 3 }; /* PROXY_REQ's op byte */

#define PORT_S 17560
#define PORT_C 17570
#define PORT_R 17580
#define SETUP_MS 10000 /* loop time for the channels and attachments to come up */
#define PING_MS 5000   /* loop time a node has to answer the ping after an input */
#define INPUT_MAX 8192 /* a DATA frame of R's stays a datagram well under 64 KiB */
#define PING_ID 0xfe000000u

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_overlay_inner: %s\n", what);
        abort();
    }
}

/* ---- a fixed random source ----------------------------------------------------------- */

static struct {
    uint8_t key[crypto_stream_chacha20_KEYBYTES];
    uint64_t calls;
} rng;

static void rng_buf(void *const buf, const size_t size)
{
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};

    for (int i = 0; i < 8; i++)
        nonce[i] = (uint8_t)(rng.calls >> (8 * i));
    rng.calls++;
    crypto_stream_chacha20(buf, size, nonce, rng.key);
}

static uint32_t rng_random(void)
{
    uint32_t v;

    rng_buf(&v, sizeof(v));
    return v;
}

static const char *rng_name(void)
{
    return "fuzz-fixed-chacha20";
}

static void rng_stir(void)
{
}

static int rng_close(void)
{
    return 0;
}

static struct randombytes_implementation rng_impl = {
    .implementation_name = rng_name,
    .random = rng_random,
    .stir = rng_stir,
    .uniform = NULL, /* libsodium's own, on top of rng_random */
    .buf = rng_buf,
    .close = rng_close,
};

/* ---- a network namespace of our own ----------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static int isolate(void)
{
    struct ifreq ifr;
    int fd, rc = 0;

    if (unshare(CLONE_NEWNET) != 0) {
        /* Not root: a user namespace in which we are, if the system allows one (and
         * the process has a single thread; libFuzzer's -rss_limit_mb=0 keeps it so). */
        char map[64];
        uid_t uid = getuid();
        gid_t gid = getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
            return -errno;
        (void)write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        if (write_file("/proc/self/uid_map", map) != 0)
            return -EPERM;
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        if (write_file("/proc/self/gid_map", map) != 0)
            return -EPERM;
    }
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -errno;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
        rc = -errno;
    ifr.ifr_flags |= IFF_UP;
    if (rc == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* ---- the world ------------------------------------------------------------------------- */

/* R's side of one channel: to S (R initiated it) or to C (C initiated it). */
struct link {
    const char *name;
    uint16_t port; /* the node's P2P port */
    uint32_t index_base, next_index;
    struct ovl_session cur, prev; /* the node may open a new channel (rekey) */
    bool have_cur, have_prev;
    struct ovl_hs out_hs; /* R initiating */
    bool out_pending;
    struct ovl_hs in_hs; /* R responding */
    bool in_pending;
    uint32_t in_remote;
    uint8_t hs2[OVL_HS_FRAME_MAX];
    size_t hs2_len;
    /* what the node said */
    unsigned acks_ok;    /* ATTACH_ACK status 0 */
    uint32_t pong;       /* last ping answered (DHT ACK txid, or PROXY_REPLY id) */
    unsigned keepalives; /* answered */
};

static struct {
    bool ready;
    uv_loop_t loop;
    uv_timer_t failsafe;
    uv_udp_t sock;
    struct p2p_log log;
    uint8_t psk[OVL_KEY_LEN];
    struct ovl_identity id_s, id_c, id_r;
    struct dht_store *store_s, *store_c;
    struct overlay_node *s, *c;
    struct link ls, lc;
    /* C's requests through R: done (restart), and the id R last saw for each op */
    bool op_done[4];
    uint32_t op_req[4];
    uint32_t ping_seq;
    unsigned pipes, reconnects;
    struct link *fresh; /* reconnect: the link and the index of its new session */
    uint32_t fresh_index;
    struct dht_record rec;
    uint8_t rec_value[32];
    uint8_t frame[OVL_FRAME_MAX + 64], plain[OVL_FRAME_MAX + 64], rx[OVL_FRAME_MAX + 64];
} w;

static unsigned want_acks; /* ATTACH_ACKs of S to wait for */
static uint32_t want_pong; /* the id of the ping in flight */

static void failsafe_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond() holds or ms of loop time pass; returns cond(). */
static bool run_until(bool (*cond)(void), uint64_t ms)
{
    uint64_t deadline;

    uv_update_time(&w.loop);
    deadline = uv_now(&w.loop) + ms;
    (void)uv_timer_start(&w.failsafe, failsafe_cb, ms, 0);
    while (!cond() && uv_now(&w.loop) < deadline)
        (void)uv_run(&w.loop, UV_RUN_ONCE);
    (void)uv_timer_stop(&w.failsafe);
    return cond();
}

static void ident(struct ovl_identity *id, uint8_t seed_byte)
{
    uint8_t seed[32], pk[32], sk[64];

    memset(seed, seed_byte, sizeof(seed));
    check(crypto_sign_seed_keypair(pk, sk, seed) == 0, "seed keypair");
    check(ovl_identity_from_secret(id, sk) == 0, "identity");
}

static void r_send_raw(const struct link *l, const uint8_t *buf, size_t len)
{
    struct sockaddr_in a;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);

    check(uv_ip4_addr("127.0.0.1", l->port, &a) == 0, "address");
    (void)uv_udp_try_send(&w.sock, &b, 1, (const struct sockaddr *)&a);
}

/* Seals pt as one DATA frame on l's current session and sends it. */
static void r_send_plain(struct link *l, const uint8_t *pt, size_t len)
{
    int n;

    if (!l->have_cur)
        return;
    n = ovl_seal(&l->cur, pt, len, w.frame, sizeof(w.frame));
    check(n > 0, "seal");
    r_send_raw(l, w.frame, (size_t)n);
}

static void r_send_inner(struct link *l, uint8_t kind, const uint8_t *body, size_t len)
{
    w.plain[0] = kind;
    if (len > 0)
        memcpy(w.plain + 1, body, len);
    r_send_plain(l, w.plain, len + 1);
}

static void install(struct link *l, struct ovl_hs *hs)
{
    struct ovl_session s;

    if (ovl_hs_split(hs, &s) != 0)
        return;
    if (l->have_cur) {
        l->prev = l->cur;
        l->have_prev = true;
    }
    l->cur = s;
    l->have_cur = true;
}

/* R's handshake payload, in the nodes' own format (role, port, where we see it). */
static size_t r_payload(const struct link *l, uint8_t *out)
{
    out[0] = (uint8_t)OVERLAY_ROLE_SUPER;
    out[1] = PORT_R >> 8;
    out[2] = PORT_R & 0xff;
    out[3] = 6;
    out[4] = 127;
    out[5] = 0;
    out[6] = 0;
    out[7] = 1;
    out[8] = (uint8_t)(l->port >> 8);
    out[9] = (uint8_t)l->port;
    return 10;
}

static void r_initiate(struct link *l)
{
    int n = ovl_hs_initiate(&l->out_hs, &w.id_r, w.psk, l->index_base + l->next_index++, w.frame,
                            sizeof(w.frame));

    check(n > 0, "HS1");
    l->out_pending = true;
    r_send_raw(l, w.frame, (size_t)n);
}

static struct link *link_by_port(uint16_t port)
{
    if (port == w.ls.port)
        return &w.ls;
    if (port == w.lc.port)
        return &w.lc;
    return NULL;
}

/* What R does with an inner message a node sent it. */
static void r_inner(struct link *l, const uint8_t *pt, size_t len)
{
    static struct dht_msg m;

    if (len < 1)
        return;
    switch (pt[0]) {
    case K_DHT:
        if (dht_msg_decode(&m, pt + 1, len - 1) != 0)
            break;
        if (m.type == DHT_MSG_ACK && m.txid == want_pong)
            l->pong = m.txid;
        if (m.type == DHT_MSG_PING || (m.type != DHT_MSG_ACK && (m.flags & DHT_FLAG_ACK_REQ))) {
            /* An input may have made R one of S's DHT neighbours: R then answers like
             * a live one, or S would soon see its ring lost and go looking for it. */
            static struct dht_msg ack;
            int n;
            dht_msg_init(&ack, DHT_MSG_ACK, &w.id_r.id);
            ack.txid = m.txid;
            ack.flags = m.flags & DHT_FLAG_CLIENT;
            n = dht_msg_encode(&ack, w.plain + 1, sizeof(w.plain) - 1);
            if (n > 0) {
                w.plain[0] = K_DHT;
                r_send_plain(l, w.plain, (size_t)n + 1);
            }
        }
        break;
    case K_ATTACH: {
        uint8_t ok[2] = {0, 0};
        r_send_inner(l, K_ATTACH_ACK, ok, sizeof(ok)); /* yes, be my client */
        break;
    }
    case K_ATTACH_ACK:
        if (len >= 3 && pt[1] == 0 && pt[2] == 0)
            l->acks_ok++;
        break;
    case K_PROXY_REQ:
        if (len >= 6 && pt[5] >= OPK_PUT && pt[5] <= OPK_LOOKUP)
            w.op_req[pt[5]] =
                (uint32_t)pt[1] << 24 | (uint32_t)pt[2] << 16 | (uint32_t)pt[3] << 8 | pt[4];
        break;
    case K_PROXY_REPLY:
        if (len >= 5 && ((uint32_t)pt[1] << 24 | (uint32_t)pt[2] << 16 | (uint32_t)pt[3] << 8 |
                         pt[4]) == want_pong)
            l->pong = want_pong;
        break;
    case K_KEEPALIVE:
        if (len >= 2 && (pt[1] & 1)) {
            uint8_t f = 0;
            r_send_inner(l, K_KEEPALIVE, &f, 1);
        } else {
            l->keepalives++;
        }
        break;
    default:
        break;
    }
}

static void r_datagram(struct link *l, const uint8_t *buf, size_t len)
{
    struct ovl_frame_info fi;
    struct ovl_peer_info peer;
    uint8_t payload[16];
    int n;

    if (ovl_frame_peek(buf, len, &fi) != 0)
        return;
    switch (fi.type) {
    case OVL_T_HS1:
        if (l->in_pending && fi.sender_index == l->in_remote) {
            r_send_raw(l, l->hs2, l->hs2_len); /* our HS2 was lost */
            return;
        }
        if (l->in_pending)
            ovl_hs_wipe(&l->in_hs);
        n = ovl_hs_respond(&l->in_hs, &w.id_r, w.psk, l->index_base + l->next_index++, buf, len,
                           payload, r_payload(l, payload), l->hs2, sizeof(l->hs2));
        if (n <= 0)
            return;
        l->hs2_len = (size_t)n;
        l->in_pending = true;
        l->in_remote = fi.sender_index;
        r_send_raw(l, l->hs2, l->hs2_len);
        break;
    case OVL_T_HS2:
        if (!l->out_pending)
            return;
        n = ovl_hs_finish(&l->out_hs, buf, len, payload, r_payload(l, payload), w.frame,
                          sizeof(w.frame), &peer);
        if (n <= 0)
            return;
        l->out_pending = false;
        r_send_raw(l, w.frame, (size_t)n);
        install(l, &l->out_hs);
        break;
    case OVL_T_HS3:
        if (!l->in_pending || ovl_hs_complete(&l->in_hs, buf, len, &peer) != 0)
            return; /* a repeated HS3 of a channel that is up: nothing to do */
        l->in_pending = false;
        install(l, &l->in_hs);
        break;
    case OVL_T_DATA:
        n = -EBADMSG;
        if (l->have_cur && fi.receiver_index == l->cur.local_index)
            n = ovl_open(&l->cur, buf, len, w.rx, sizeof(w.rx));
        else if (l->have_prev && fi.receiver_index == l->prev.local_index)
            n = ovl_open(&l->prev, buf, len, w.rx, sizeof(w.rx));
        if (n > 0)
            r_inner(l, w.rx, (size_t)n);
        break;
    default:
        break; /* a probe (DISCOVER) S was told to send here */
    }
}

static void r_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static uint8_t in[65536];

    (void)h;
    (void)suggested;
    buf->base = (char *)in;
    buf->len = sizeof(in);
}

static void r_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                   unsigned flags)
{
    struct link *l;

    (void)h;
    (void)flags;
    if (nread <= 0 || addr == NULL || addr->sa_family != AF_INET)
        return;
    l = link_by_port(ntohs(((const struct sockaddr_in *)addr)->sin_port));
    if (l != NULL)
        r_datagram(l, (const uint8_t *)buf->base, (size_t)nread);
}

/* ---- the nodes ------------------------------------------------------------------------ */

static void on_pipe(void *arg, const struct dht_id *from, const struct dht_id *relay,
                    uint16_t service, const uint8_t *buf, size_t len)
{
    (void)arg;
    (void)from;
    (void)relay;
    (void)service;
    (void)buf;
    (void)len;
    w.pipes++;
}

static void new_node(struct overlay_node **out, struct dht_store **store,
                     const struct ovl_identity *id, uint16_t port, bool server)
{
    struct overlay_node_config cfg;
    struct overlay_node_ops ops;

    check(dht_store_new(store, NULL) == 0, "store");
    overlay_node_config_init(&cfg);
    cfg.identity = id;
    memcpy(cfg.psk, w.psk, sizeof(cfg.psk));
    cfg.port = port;
    cfg.server = server;
    cfg.multicast = false;
    cfg.store = *store;
    cfg.promote_after_ms = UINT32_MAX; /* C stays a client */
    cfg.cutoff_ms = 3600000;
    cfg.dht.request_timeout_ms = server ? 1000 : 3600000;
    cfg.dht.seed = 1;
    if (!server) {
        check(uv_ip4_addr("127.0.0.1", PORT_R, (struct sockaddr_in *)&cfg.bootstrap[0]) == 0,
              "bootstrap");
        cfg.n_bootstrap = 1;
    }
    memset(&ops, 0, sizeof(ops));
    ops.pipe = on_pipe;
    check(overlay_node_new(out, &w.loop, &cfg, &ops, &w.log) == 0, "overlay_node_new");
    check(overlay_node_start(*out) == 0, "overlay_node_start");
}

static void op_put_done(int status, unsigned acks, void *arg)
{
    (void)status;
    (void)acks;
    (void)arg;
    w.op_done[OPK_PUT] = true;
}

static void op_get_done(int status, const struct dht_record *recs, size_t n, void *arg)
{
    (void)status;
    (void)recs;
    (void)n;
    (void)arg;
    w.op_done[OPK_GET] = true;
}

static void op_lookup_done(int status, const struct dht_peer *root, unsigned hops, void *arg)
{
    (void)status;
    (void)root;
    (void)hops;
    (void)arg;
    w.op_done[OPK_LOOKUP] = true;
}

static int start_op(int op)
{
    w.op_done[op] = false;
    w.op_req[op] = 0;
    if (op == OPK_PUT)
        return overlay_node_put(w.c, &w.rec, op_put_done, NULL);
    if (op == OPK_GET)
        return overlay_node_get(w.c, &w.rec.key, op_get_done, NULL);
    return overlay_node_lookup(w.c, &w.rec.key, op_lookup_done, NULL);
}

/* ---- conditions to wait for ------------------------------------------------------------ */

static bool s_link_up(void)
{
    return w.ls.have_cur;
}

static bool s_attached(void)
{
    return w.ls.acks_ok >= want_acks;
}

static bool c_client(void)
{
    return overlay_node_role(w.c) == OVERLAY_ROLE_CLIENT && w.lc.have_cur;
}

static bool ops_seen(void)
{
    for (int op = OPK_PUT; op <= OPK_LOOKUP; op++)
        if (!w.op_done[op] && w.op_req[op] == 0)
            return false;
    return true;
}

static bool pongs(void)
{
    return w.ls.pong == want_pong && w.lc.pong == want_pong;
}

static int find_r_client(const struct overlay_peer_view *v, void *arg)
{
    (void)arg;
    return dht_id_eq(&v->peer.id, &w.id_r.id) && v->client ? 1 : 0;
}

/* ---- setup, once ------------------------------------------------------------------------ */

static void setup(void)
{
    struct sockaddr_in a;
    int rc;

    memset(rng.key, 0x42, sizeof(rng.key));
    check(randombytes_set_implementation(&rng_impl) == 0, "randombytes");
    check(sodium_init() >= 0, "sodium_init");
    rc = isolate();
    if (rc != 0) {
        fprintf(stderr,
                "fuzz_overlay_inner: cannot isolate the network (%s): refusing to run, "
                "the nodes would send to the addresses the inputs name\n",
                strerror(-rc));
        exit(1);
    }
    check(uv_loop_init(&w.loop) == 0, "loop");
    check(uv_timer_init(&w.loop, &w.failsafe) == 0, "timer");
    p2p_log_init(&w.log, "fuzz_overlay_inner", P2P_LOG_ERR, false);
    w.log.level = (enum p2p_log_level)0; /* quiet: the inputs make nodes complain */
    ovl_psk_from_secret(w.psk, (const uint8_t *)"fuzz-inner", 10);
    ident(&w.id_s, 0x11);
    ident(&w.id_c, 0x22);
    ident(&w.id_r, 0x33);

    check(uv_udp_init(&w.loop, &w.sock) == 0, "udp");
    check(uv_ip4_addr("127.0.0.1", PORT_R, &a) == 0, "address");
    check(uv_udp_bind(&w.sock, (const struct sockaddr *)&a, 0) == 0, "bind R");
    check(uv_udp_recv_start(&w.sock, r_alloc, r_recv) == 0, "recv R");

    new_node(&w.s, &w.store_s, &w.id_s, PORT_S, true);
    w.ls.name = "S";
    w.ls.port = overlay_node_port(w.s);
    w.ls.index_base = 0x51000000;
    r_initiate(&w.ls);
    check(run_until(s_link_up, SETUP_MS), "no channel to S");
    want_acks = 1;
    r_send_inner(&w.ls, K_ATTACH, NULL, 0);
    check(run_until(s_attached, SETUP_MS), "S did not take R as a client");

    new_node(&w.c, &w.store_c, &w.id_c, PORT_C, false);
    w.lc.name = "C";
    w.lc.port = overlay_node_port(w.c);
    w.lc.index_base = 0xc1000000;
    check(run_until(c_client, SETUP_MS), "C did not attach to R");

    /* C's record for its put, signed by C (the value a binding's size) */
    memset(&w.rec, 0, sizeof(w.rec));
    dht_id_hash(&w.rec.key, "sip:fuzz@p2psip.invalid", 23);
    dht_id_hash(&w.rec.value_id, "fuzz", 4);
    w.rec.seq = 1;
    w.rec.expiry_ms = 4102444800000ull; /* 2100: never expires during a run */
    memset(w.rec_value, 0x61, sizeof(w.rec_value));
    w.rec.value = w.rec_value;
    w.rec.value_len = sizeof(w.rec_value);
    check(dht_record_sign(&w.rec, w.id_c.ed_sk) == 0, "sign");
    for (int op = OPK_PUT; op <= OPK_LOOKUP; op++)
        check(start_op(op) == 0, "C's request");
    check(run_until(ops_seen, SETUP_MS), "C's requests did not reach R");
    w.ready = true;
}

/* What an earlier input may have undone. */
static void restore(void)
{
    if (overlay_node_peers(w.s, find_r_client, NULL) != 1) {
        want_acks = w.ls.acks_ok + 1;
        r_send_inner(&w.ls, K_ATTACH, NULL, 0);
        check(run_until(s_attached, PING_MS), "S no longer takes R as a client");
    }
    if (!c_client()) {
        uint8_t ok[2] = {0, 0};
        r_send_inner(&w.lc, K_ATTACH_ACK, ok, sizeof(ok));
        check(run_until(c_client, PING_MS), "C no longer attaches to R");
    }
    for (int op = OPK_PUT; op <= OPK_LOOKUP; op++)
        if (w.op_done[op])
            check(start_op(op) == 0, "C's request again");
    /* Not waited for: after a long campaign C's new requests took a second each to
     * reach R (S and R busy with S's DHT traffic), which made the target crawl.  A
     * PROXY_REPLY before R has seen the request carries id 0 and matches nothing. */
}

static bool link_fresh(void)
{
    return w.fresh->have_cur && w.fresh->cur.local_index == w.fresh_index;
}

static void report(const struct overlay_node *n, const char *name)
{
    const struct overlay_node_stats *st = overlay_node_stats(n);

    fprintf(stderr,
            "  %s: role %s, dht %s, cut off %d; frames in %llu, dropped: malformed %llu auth %llu "
            "replay %llu forged %llu nosession %llu full %llu inner %llu; handshakes %llu/%llu\n",
            name, overlay_role_name(overlay_node_role(n)), overlay_node_dht(n) ? "yes" : "no",
            overlay_node_cut_off(n), (unsigned long long)st->frames_in,
            (unsigned long long)st->dropped_malformed, (unsigned long long)st->dropped_auth,
            (unsigned long long)st->dropped_replay, (unsigned long long)st->dropped_forged,
            (unsigned long long)st->dropped_nosession, (unsigned long long)st->dropped_full,
            (unsigned long long)st->dropped_inner, (unsigned long long)st->handshakes_done,
            (unsigned long long)st->handshakes_started);
}

/* R opens a new channel to l's node (after the node dropped the old one). */
static void reconnect(struct link *l)
{
    const struct overlay_node *n = l == &w.ls ? w.s : w.c;

    w.reconnects++;
    fprintf(stderr, "fuzz_overlay_inner: %s does not answer: new channel (%u so far)\n", l->name,
            w.reconnects);
    report(n, l->name);
    w.fresh = l;
    w.fresh_index = l->index_base + l->next_index;
    r_initiate(l);
    check(run_until(link_fresh, PING_MS), "no new channel");
}

static void ping(void)
{
    static struct dht_msg m;
    uint8_t req[25];
    uint8_t *buf = w.plain + 1;
    int n;

    want_pong = PING_ID | (++w.ping_seq & 0xffffff);
    /* S: a DHT PING in R's name, answered by an ACK of its txid */
    dht_msg_init(&m, DHT_MSG_PING, &w.id_r.id);
    m.txid = want_pong;
    n = dht_msg_encode(&m, buf, sizeof(w.plain) - 1);
    check(n > 0, "PING");
    w.plain[0] = K_DHT;
    r_send_plain(&w.ls, w.plain, (size_t)n + 1);
    /* C: a proxy request from its super-node, answered -ENOTCONN under its id */
    req[0] = (uint8_t)(want_pong >> 24);
    req[1] = (uint8_t)(want_pong >> 16);
    req[2] = (uint8_t)(want_pong >> 8);
    req[3] = (uint8_t)want_pong;
    req[4] = OPK_GET;
    memset(req + 5, 0, 20);
    r_send_inner(&w.lc, K_PROXY_REQ, req, sizeof(req));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pt[INPUT_MAX];

    if (!w.ready)
        setup();
    if (size == 0 || size > INPUT_MAX)
        return 0;
    restore();
    memcpy(pt, data, size);
    if (pt[0] == K_DHT && size >= 1 + DHT_MSG_OFF_SENDER + DHT_ID_LEN)
        memcpy(pt + 1 + DHT_MSG_OFF_SENDER, w.id_r.id.b, DHT_ID_LEN);
    if (pt[0] == K_PROXY_REPLY && size >= 5) {
        uint32_t sel =
            ((uint32_t)pt[1] << 24 | (uint32_t)pt[2] << 16 | (uint32_t)pt[3] << 8 | pt[4]) % 4;
        if (sel != 0) {
            uint32_t id = w.op_req[sel];
            pt[1] = (uint8_t)(id >> 24);
            pt[2] = (uint8_t)(id >> 16);
            pt[3] = (uint8_t)(id >> 8);
            pt[4] = (uint8_t)id;
        }
    }
    r_send_plain(&w.ls, pt, size);
    r_send_plain(&w.lc, pt, size);
    ping();
    if (run_until(pongs, PING_MS))
        return 0;
    /* A node may drop a channel (its peer table full of peers an input named, say):
     * a real peer then opens a new one.  So does R, once; the node must answer then. */
    if (w.ls.pong != want_pong)
        reconnect(&w.ls);
    if (w.lc.pong != want_pong)
        reconnect(&w.lc);
    restore();
    ping();
    if (!run_until(pongs, PING_MS)) {
        fprintf(stderr,
                "fuzz_overlay_inner: no answer to the ping from%s%s, even on a new channel\n",
                w.ls.pong == want_pong ? "" : " S", w.lc.pong == want_pong ? "" : " C");
        report(w.s, "S");
        report(w.c, "C");
        abort();
    }
    return 0;
}
