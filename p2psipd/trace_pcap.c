/*
 * trace_pcap.c: the --trace-pcap writer (trace_pcap.h has the file format).
 *
 * Design.  One fixed buffer, allocated at open; a record goes into it whole or the
 * buffer is written out first.  Sizes are counted before anything is buffered, so
 * the cap holds for the file as written, and a record that would cross it ends the
 * trace (one log line) instead of leaving a truncated packet.  Writes loop over short
 * writes and EINTR; any other error ends the trace (one log line) and is returned by
 * trace_pcap_close().  Nothing here can fail the node: the caller's messages go on.
 *
 * The classic pcap header (tcpdump's pcap-savefile(5)): magic 0xa1b2c3d4, version
 * 2.4, thiszone 0, sigfigs 0, snaplen, link type; each record: seconds, microseconds,
 * captured length, original length.  Written little-endian, which the magic tells.
 */
#include "trace_pcap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "p2p/dht_msg.h"

#define PCAP_FILE_HDR_LEN 24
#define PCAP_REC_HDR_LEN 16
#define PCAP_SNAPLEN (TRACE_PCAP_HDR_LEN + DHT_MSG_MAX)

_Static_assert(TRACE_PCAP_BUF >= PCAP_REC_HDR_LEN + PCAP_SNAPLEN, "a whole record fits");
_Static_assert(TRACE_PCAP_HDR_LEN == 52 + DHT_ADDR_MAX, "pseudo-header layout");

struct trace_pcap {
    int fd;
    bool off;      /* capped or failed: records are ignored */
    int err;       /* the first error, for trace_pcap_close */
    uint64_t size; /* bytes in the file and the buffer */
    uint64_t max;  /* cap on size */
    struct dht_id self;
    struct p2p_log *log;
    size_t used;
    uint8_t buf[TRACE_PCAP_BUF];
};

static uint8_t *le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
    return p + 4;
}

static uint8_t *le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Ends the trace after an error; logs once. */
static void fail(struct trace_pcap *t, int err)
{
    if (t->err == 0)
        t->err = err;
    if (!t->off)
        p2p_err(t->log, "trace-pcap: cannot write the trace file: %s; tracing stops",
                strerror(-err));
    t->off = true;
}

int trace_pcap_flush(struct trace_pcap *t)
{
    int rc;

    if (t == NULL || t->used == 0)
        return t != NULL ? t->err : 0;
    rc = write_all(t->fd, t->buf, t->used);
    t->used = 0;
    if (rc != 0)
        fail(t, rc);
    return t->err;
}

int trace_pcap_open(struct trace_pcap **out, const char *path, uint64_t max_bytes,
                    const struct dht_id *self, struct p2p_log *log)
{
    struct trace_pcap *t;
    uint8_t *p;
    int fd, rc;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    /* An existing file keeps its mode through O_TRUNC: make it private too. */
    if (fchmod(fd, 0600) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    t = malloc(sizeof(*t));
    if (t == NULL) {
        close(fd);
        return -ENOMEM;
    }
    t->fd = fd;
    t->off = false;
    t->err = 0;
    t->size = PCAP_FILE_HDR_LEN;
    t->max = max_bytes < PCAP_FILE_HDR_LEN ? PCAP_FILE_HDR_LEN : max_bytes;
    t->self = *self;
    t->log = log;
    p = t->buf;
    p = le32(p, 0xa1b2c3d4u);
    p = le16(p, 2);
    p = le16(p, 4);
    p = le32(p, 0); /* thiszone */
    p = le32(p, 0); /* sigfigs */
    p = le32(p, PCAP_SNAPLEN);
    p = le32(p, TRACE_PCAP_LINKTYPE);
    t->used = (size_t)(p - t->buf);
    rc = trace_pcap_flush(t);
    if (rc != 0) {
        close(fd);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void trace_pcap_record(struct trace_pcap *t, enum dht_obs_event ev, const struct dht_peer *peer,
                       const uint8_t *buf, size_t len, int reason)
{
    struct timespec ts;
    uint64_t origlen = TRACE_PCAP_HDR_LEN + (uint64_t)len;
    size_t caplen;
    uint8_t *p;

    if (t == NULL || t->off)
        return;
    if (len > DHT_MSG_MAX)
        len = DHT_MSG_MAX; /* the DHT drops such a message; its head is enough */
    caplen = TRACE_PCAP_HDR_LEN + len;
    if (t->size + PCAP_REC_HDR_LEN + caplen > t->max) {
        p2p_warn(t->log,
                 "trace-pcap: the trace file reached its cap of %llu bytes "
                 "(log.trace_pcap_max); tracing stops",
                 (unsigned long long)t->max);
        t->off = true;
        return;
    }
    if (TRACE_PCAP_BUF - t->used < PCAP_REC_HDR_LEN + caplen && trace_pcap_flush(t) != 0)
        return;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        memset(&ts, 0, sizeof(ts));

    p = t->buf + t->used;
    p = le32(p, (uint32_t)ts.tv_sec);
    p = le32(p, (uint32_t)(ts.tv_nsec / 1000));
    p = le32(p, (uint32_t)caplen);
    p = le32(p, origlen > UINT32_MAX ? UINT32_MAX : (uint32_t)origlen);

    memset(p, 0, TRACE_PCAP_HDR_LEN);
    memcpy(p, "P2PT", 4);
    p[4] = 1;
    p[5] = TRACE_PCAP_HDR_LEN;
    p[6] = (uint8_t)ev;
    if (peer != NULL && peer->addr.len <= DHT_ADDR_MAX) {
        p[7] = peer->addr.len;
        memcpy(p + 32, peer->id.b, DHT_ID_LEN);
        memcpy(p + 52, peer->addr.b, peer->addr.len);
    }
    p[8] = (uint8_t)((uint16_t)(int16_t)reason >> 8);
    p[9] = (uint8_t)(uint16_t)(int16_t)reason;
    memcpy(p + 12, t->self.b, DHT_ID_LEN);
    p += TRACE_PCAP_HDR_LEN;
    if (len > 0)
        memcpy(p, buf, len);
    t->used += PCAP_REC_HDR_LEN + caplen;
    t->size += PCAP_REC_HDR_LEN + caplen;
}

int trace_pcap_close(struct trace_pcap *t)
{
    int rc;

    if (t == NULL)
        return 0;
    rc = trace_pcap_flush(t);
    if (close(t->fd) != 0 && rc == 0)
        rc = -errno;
    free(t);
    return rc;
}
