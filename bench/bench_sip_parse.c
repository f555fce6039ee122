/*
 * bench_sip_parse.c: SIP parsing speed, ours against libosip2, in one run.
 *
 * The corpus is a typical REGISTER with digest credentials, an INVITE with SDP,
 * a 200 OK and the RFC 4475 / RFC 5118 torture messages that are valid at the
 * parser.  Each is parsed N times by each parser:
 *  - ours: sip_msg_parse() plus what a proxy reads on every message: every Via
 *    value, From and To (tags), Call-ID, CSeq, each Contact, Max-Forwards and
 *    each Route value;
 *  - libosip2 5.x: osip_message_init() + osip_message_parse() +
 *    osip_message_free() (osip parses Via, From, To, Call-ID, CSeq, Contact and
 *    Route into structures while it parses; osip_init() once).
 * Rates are messages per second of thread CPU time, the two parsers running in
 * alternating chunks.  Prints a table and, as its last line, one JSON object
 * with both rates and their ratio.  Usage: bench_sip_parse [rounds]
 */
#define _DEFAULT_SOURCE /* struct timeval in <osip2/osip.h> */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "p2p/sip_msg.h"

#ifndef P2P_NO_OSIP
#include <sys/time.h>

#include <osip2/osip.h>
#include <osipparser2/osip_parser.h>
#endif

#define MAX_MSGS 64

struct corpus {
    char *msg[MAX_MSGS];
    size_t len[MAX_MSGS];
    const char *name[MAX_MSGS];
    size_t n;
};

static const char *const typical[] = {
    "REGISTER sip:example.org SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    "To: Alice <sip:alice@example.org>\r\n"
    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.org\r\n"
    "CSeq: 314160 REGISTER\r\n"
    "Contact: <sip:alice@192.0.2.10:5062;transport=udp>;expires=3600\r\n"
    "Authorization: Digest username=\"alice\", realm=\"example.org\", "
    "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:example.org\", qop=auth, "
    "nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", "
    "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=MD5\r\n"
    "User-Agent: baresip v2.9.0 (x86_64/linux)\r\n"
    "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER\r\n"
    "Content-Length: 0\r\n"
    "\r\n",

    "INVITE sip:bob@example.org SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKp1.1;received=192.0.2.1\r\n"
    "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnashds8;rport=5060;received=10.0.0.5\r\n"
    "Record-Route: <sip:192.0.2.1:5062;lr>\r\n"
    "Route: <sip:192.0.2.7:5062;lr>\r\n"
    "Max-Forwards: 69\r\n"
    "To: Bob <sip:bob@example.org>\r\n"
    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@10.0.0.5\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@10.0.0.5:5060>\r\n"
    "Supported: replaces, 100rel, timer\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 142\r\n"
    "\r\n"
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\n"
    "s=-\r\n"
    "c=IN IP4 10.0.0.5\r\n"
    "t=0 0\r\n"
    "m=audio 49172 RTP/AVP 0 8\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=sendrecv\r\n",

    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK776asdhds;rport=5062;received=192.0.2.10\r\n"
    "To: Alice <sip:alice@example.org>;tag=37GkEhwl6\r\n"
    "From: Alice <sip:alice@example.org>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.org\r\n"
    "CSeq: 314160 REGISTER\r\n"
    "Contact: <sip:alice@192.0.2.10:5062;transport=udp>;expires=3600\r\n"
    "Content-Length: 0\r\n"
    "\r\n",
};

/* RFC 4475 3.1.1 / 3.3 / 3.4 and RFC 5118 messages that are valid at the parser */
static const char *const torture[] = {
    "rfc4475/wsinv.dat",
    "rfc4475/intmeth.dat",
    "rfc4475/esc01.dat",
    "rfc4475/escnull.dat",
    "rfc4475/esc02.dat",
    "rfc4475/lwsdisp.dat",
    "rfc4475/longreq.dat",
    "rfc4475/dblreq.dat",
    "rfc4475/semiuri.dat",
    "rfc4475/transports.dat",
    "rfc4475/mpart01.dat",
    "rfc4475/unreason.dat",
    "rfc4475/noreason.dat",
    "rfc4475/unksm2.dat",
    "rfc4475/cparam01.dat",
    "rfc4475/cparam02.dat",
    "rfc4475/regescrt.dat",
    "rfc4475/inv2543.dat",
    "rfc5118/ipv6-good.dat",
    "rfc5118/port-ambiguous.dat",
    "rfc5118/port-unambiguous.dat",
    "rfc5118/via-received-param-with-delim.dat",
    "rfc5118/via-received-param-no-delim.dat",
    "rfc5118/ipv6-in-sdp.dat",
    "rfc5118/mult-ip-in-header.dat",
    "rfc5118/mult-ip-in-sdp.dat",
    "rfc5118/ipv4-mapped-ipv6.dat",
    "rfc5118/ipv6-correct-abnf-2-colons.dat",
};

static int add(struct corpus *c, const char *name, const char *p, size_t n)
{
    if (c->n == MAX_MSGS)
        return -ENOSPC;
    c->msg[c->n] = malloc(n + 1);
    if (c->msg[c->n] == NULL)
        return -ENOMEM;
    memcpy(c->msg[c->n], p, n);
    c->msg[c->n][n] = '\0';
    c->name[c->n] = name;
    c->len[c->n++] = n;
    return 0;
}

static int load(struct corpus *c, const char *dir)
{
    static char buf[SIP_MSG_MAX_SIZE];
    char path[1024];

    for (size_t i = 0; i < sizeof(typical) / sizeof(typical[0]); i++) {
        if (add(c, "typical", typical[i], strlen(typical[i])) != 0)
            return -1;
    }
    for (size_t i = 0; i < sizeof(torture) / sizeof(torture[0]); i++) {
        snprintf(path, sizeof(path), "%s/sip-torture/%s", dir, torture[i]);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            fprintf(stderr, "bench_sip_parse: %s: %s\n", path, strerror(errno));
            return -1;
        }
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (add(c, torture[i], buf, n) != 0)
            return -1;
    }
    return 0;
}

/* CPU time of this thread: what a parse costs, not how busy the machine is
 * (the bench shares two cores with other jobs). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What a proxy reads from every message; returns a checksum so nothing is
 * optimised away, or -1 when the message did not parse. */
static long ours_one(struct sip_msg *m, const char *p, size_t n)
{
    struct sip_hdr_iter it;
    struct p2p_slice v;
    struct sip_via via;
    struct sip_addr a;
    struct sip_cseq cs;
    struct sip_contact c;
    const struct sip_hdr *h;
    uint32_t mf;
    long sum = 0;

    if (sip_msg_parse(m, p, n, SIP_MSG_DGRAM, NULL) <= 0)
        return -1;
    sip_hdr_iter_init(&it, m, SIP_HDR_VIA);
    while (sip_hdr_iter_next(&it, &v)) {
        if (sip_via_parse(v, &via) == 0)
            sum += (long)via.branch.len + via.port;
    }
    if ((h = sip_msg_hdr(m, SIP_HDR_FROM)) != NULL && sip_addr_parse(h->value, &a) == 0)
        sum += (long)a.tag.len;
    if ((h = sip_msg_hdr(m, SIP_HDR_TO)) != NULL && sip_addr_parse(h->value, &a) == 0)
        sum += (long)a.tag.len;
    if ((h = sip_msg_hdr(m, SIP_HDR_CALL_ID)) != NULL)
        sum += (long)h->value.len;
    if ((h = sip_msg_hdr(m, SIP_HDR_CSEQ)) != NULL && sip_cseq_parse(h->value, &cs) == 0)
        sum += (long)cs.num;
    if ((h = sip_msg_hdr(m, SIP_HDR_MAX_FORWARDS)) != NULL &&
        sip_uint_parse(h->value, 255, &mf) == 0)
        sum += mf;
    sip_hdr_iter_init(&it, m, SIP_HDR_CONTACT);
    while (sip_hdr_iter_next(&it, &v)) {
        if (sip_contact_parse(v, &c) == 0)
            sum += (long)c.addr.uri.len + c.expires;
    }
    sip_hdr_iter_init(&it, m, SIP_HDR_ROUTE);
    while (sip_hdr_iter_next(&it, &v)) {
        if (sip_addr_parse(v, &a) == 0)
            sum += (long)a.uri.len;
    }
    return sum;
}

int main(int argc, char **argv)
{
    static struct sip_msg m;
    struct corpus c = {0};
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    const char *dir = getenv("P2P_TEST_DATA");
    long sum = 0, ours_fail = 0, osip_fail = 0;
    double t0;

    if (dir == NULL)
        dir = P2P_SOURCE_DIR "/tests/data";
    if (rounds <= 0 || load(&c, dir) != 0)
        return 1;

#ifndef P2P_NO_OSIP
    osip_t *osip;
    if (osip_init(&osip) != 0)
        return 1;
    for (int l = 0; l < END_TRACE_LEVEL; l++)
        osip_trace_disable_level((osip_trace_level_t)l);
    /* Both parsers get the same corpus: what libosip2 refuses is left out
     * (its error path would be timed instead of a parse). */
    for (size_t i = 0; i < c.n;) {
        osip_message_t *om;
        if (osip_message_init(&om) != 0)
            return 1;
        int bad = osip_message_parse(om, c.msg[i], c.len[i]) != 0;
        osip_message_free(om);
        if (!bad) {
            i++;
            continue;
        }
        printf("libosip2 refuses %s: left out of both runs\n", c.name[i]);
        osip_fail++;
        free(c.msg[i]);
        c.n--;
        c.msg[i] = c.msg[c.n];
        c.len[i] = c.len[c.n];
        c.name[i] = c.name[c.n];
    }
#endif
    /* warm up and count failures once */
    for (size_t i = 0; i < c.n; i++)
        ours_fail += ours_one(&m, c.msg[i], c.len[i]) < 0;
    /* The two parsers run in alternating chunks of rounds, so a change in
     * machine load during the run falls on both alike. */
    double ours_s = 0, osip_s = 0;
    const long chunk = 500;
    for (long done = 0; done < rounds; done += chunk) {
        long k = rounds - done < chunk ? rounds - done : chunk;
        t0 = now_s();
        for (long r = 0; r < k; r++) {
            for (size_t i = 0; i < c.n; i++)
                sum += ours_one(&m, c.msg[i], c.len[i]);
        }
        ours_s += now_s() - t0;
#ifndef P2P_NO_OSIP
        t0 = now_s();
        for (long r = 0; r < k; r++) {
            for (size_t i = 0; i < c.n; i++) {
                osip_message_t *om;
                if (osip_message_init(&om) != 0)
                    return 1;
                sum += osip_message_parse(om, c.msg[i], c.len[i]);
                osip_message_free(om);
            }
        }
        osip_s += now_s() - t0;
#endif
    }
    double total = (double)rounds * (double)c.n;
    double ours_rate = total / ours_s;
#ifndef P2P_NO_OSIP
    osip_release(osip);
    double osip_rate = total / osip_s;
#else
    double osip_rate = 0;
#endif

    printf("%-10s %10s %10s %12s %14s %8s\n", "parser", "messages", "cpu_s", "msgs/s", "us/msg",
           "failed");
    printf("%-10s %10.0f %10.3f %12.0f %14.3f %8ld\n", "p2psip", total, ours_s, ours_rate,
           1e6 / ours_rate, ours_fail);
#ifndef P2P_NO_OSIP
    printf("%-10s %10.0f %10.3f %12.0f %14.3f %8ld\n", "libosip2", total, osip_s, osip_rate,
           1e6 / osip_rate, osip_fail);
#else
    printf("libosip2 not found at build time: no comparison\n");
#endif
    printf("corpus: %zu messages (3 typical + %zu torture), %ld rounds, checksum %ld\n", c.n,
           c.n - 3, rounds, sum);
    printf("failed: ours on the common corpus; libosip2 = messages it refused (left out)\n");
    printf("{\"bench\":\"sip_parse\",\"messages\":%.0f,\"ours_msgs_per_s\":%.0f,"
           "\"osip_msgs_per_s\":%.0f,\"ratio\":%.2f}\n",
           total, ours_rate, osip_rate, osip_rate > 0 ? ours_rate / osip_rate : 0.0);
    for (size_t i = 0; i < c.n; i++)
        free(c.msg[i]);
    return 0;
}
