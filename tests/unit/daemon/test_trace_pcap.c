/*
 * test_trace_pcap.c: the --trace-pcap writer (p2psipd/trace_pcap.h).
 *
 * The file is a classic pcap of link type USER0: the header fields, and each record's
 * lengths, pseudo-header (magic, version, length, event, own and peer ID, address,
 * reason) and message bytes, exactly.  The file is created mode 0600, and an existing
 * file is truncated and made 0600.  Records are buffered: nothing but the header is
 * in the file before a flush.  The cap holds for the file as written: the record that
 * would cross it and every later one are left out, whole.  A write error (a file
 * size limit, RLIMIT_FSIZE) ends the trace and is returned by flush and close.  A
 * path that cannot be opened is an error and *out is untouched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "trace_pcap.h"

struct fixture {
    char dir[64];
    char path[96];
    struct p2p_log log;
    struct dht_id self;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_trace_pcap.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/trace.pcap", f->dir);
    p2p_log_init(&f->log, "test_trace_pcap", P2P_LOG_ERR, false);
    memset(f->self.b, 0x11, sizeof(f->self.b));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    unlink(f->path);
    rmdir(f->dir);
    p2p_log_close(&f->log);
    free(f);
    return 0;
}

/* The whole file; *len its size. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *b = malloc(1 << 20);
    size_t n;

    assert_non_null(fp);
    assert_non_null(b);
    n = fread(b, 1, 1 << 20, fp);
    fclose(fp);
    *len = n;
    return b;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static unsigned mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

/* A PING-sized fake message: 30 bytes, byte i = seed + i. */
static void fake_msg(uint8_t *m, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        m[i] = (uint8_t)(seed + i);
}

static void test_format(void **state)
{
    struct fixture *f = *state;
    struct trace_pcap *t = NULL;
    struct dht_peer p4, p6;
    uint8_t msg[40], *b, *r;
    size_t len;

    memset(&p4, 0, sizeof(p4));
    memset(p4.id.b, 0x22, sizeof(p4.id.b));
    p4.addr.len = 6;
    memcpy(p4.addr.b, "\xc6\x12\x00\x0b\x1d\x88", 6); /* 198.18.0.11:7560 */
    memset(&p6, 0, sizeof(p6));
    memset(p6.id.b, 0x33, sizeof(p6.id.b));
    p6.addr.len = 18;
    memset(p6.addr.b, 0x20, 18);

    assert_int_equal(trace_pcap_open(&t, f->path, 1 << 20, &f->self, &f->log), 0);
    assert_non_null(t);
    assert_int_equal(mode_of(f->path), 0600);
    fake_msg(msg, 30, 1);
    trace_pcap_record(t, DHT_OBS_SENT, &p4, msg, 30, 0);
    fake_msg(msg, 40, 2);
    trace_pcap_record(t, DHT_OBS_RECV, &p6, msg, 40, 0);
    trace_pcap_record(t, DHT_OBS_DROPPED, NULL, msg, 3, -EBADMSG);
    assert_int_equal(trace_pcap_close(t), 0);

    b = slurp(f->path, &len);
    assert_int_equal(len, 24 + (16 + 70 + 30) + (16 + 70 + 40) + (16 + 70 + 3));
    assert_int_equal(le32(b), 0xa1b2c3d4u);
    assert_int_equal(b[4] | b[5] << 8, 2);
    assert_int_equal(b[6] | b[7] << 8, 4);
    assert_int_equal(le32(b + 16), 70 + 65535);
    assert_int_equal(le32(b + 20), 147);

    r = b + 24; /* sent, IPv4 peer */
    assert_int_equal(le32(r + 8), 100);
    assert_int_equal(le32(r + 12), 100);
    assert_memory_equal(r + 16, "P2PT\x01\x46\x00\x06\x00\x00\x00\x00", 12);
    assert_memory_equal(r + 16 + 12, f->self.b, 20);
    assert_memory_equal(r + 16 + 32, p4.id.b, 20);
    assert_memory_equal(r + 16 + 52, p4.addr.b, 6);
    for (int i = 58; i < 70; i++)
        assert_int_equal(r[16 + i], 0);
    fake_msg(msg, 30, 1);
    assert_memory_equal(r + 16 + 70, msg, 30);

    r += 16 + 100; /* received, IPv6 peer */
    assert_int_equal(le32(r + 8), 110);
    assert_int_equal(r[16 + 6], 1);
    assert_int_equal(r[16 + 7], 18);
    assert_memory_equal(r + 16 + 32, p6.id.b, 20);
    assert_memory_equal(r + 16 + 52, p6.addr.b, 18);
    fake_msg(msg, 40, 2);
    assert_memory_equal(r + 16 + 70, msg, 40);

    r += 16 + 110; /* dropped, no peer, reason -EBADMSG big-endian */
    assert_int_equal(le32(r + 8), 73);
    assert_int_equal(r[16 + 6], 2);
    assert_int_equal(r[16 + 7], 0);
    assert_int_equal((int16_t)(r[16 + 8] << 8 | r[16 + 9]), -EBADMSG);
    for (int i = 32; i < 70; i++)
        assert_int_equal(r[16 + i], 0);
    free(b);
}

static void test_existing_file_private(void **state)
{
    struct fixture *f = *state;
    struct trace_pcap *t = NULL;
    FILE *fp = fopen(f->path, "w");
    uint8_t *b;
    size_t len;

    assert_non_null(fp);
    assert_int_equal(fputs("old contents, world-readable", fp) >= 0, 1);
    fclose(fp);
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(trace_pcap_open(&t, f->path, 1 << 20, &f->self, &f->log), 0);
    assert_int_equal(mode_of(f->path), 0600);
    assert_int_equal(trace_pcap_close(t), 0);
    b = slurp(f->path, &len);
    assert_int_equal(len, 24);
    free(b);
}

static void test_buffered(void **state)
{
    struct fixture *f = *state;
    struct trace_pcap *t = NULL;
    uint8_t msg[30], *b;
    size_t len;

    fake_msg(msg, sizeof(msg), 0);
    assert_int_equal(trace_pcap_open(&t, f->path, 1 << 20, &f->self, &f->log), 0);
    for (int i = 0; i < 10; i++)
        trace_pcap_record(t, DHT_OBS_SENT, NULL, msg, sizeof(msg), 0);
    b = slurp(f->path, &len);
    assert_int_equal(len, 24); /* only the header so far */
    free(b);
    assert_int_equal(trace_pcap_flush(t), 0);
    b = slurp(f->path, &len);
    assert_int_equal(len, 24 + 10 * (16 + 70 + 30));
    free(b);
    assert_int_equal(trace_pcap_close(t), 0);
}

static void test_cap(void **state)
{
    struct fixture *f = *state;
    struct trace_pcap *t = NULL;
    uint8_t msg[30], *b;
    size_t len, rec = 16 + 70 + 30;

    fake_msg(msg, sizeof(msg), 0);
    /* Room for two records and a half. */
    assert_int_equal(trace_pcap_open(&t, f->path, 24 + 2 * rec + rec / 2, &f->self, &f->log), 0);
    for (int i = 0; i < 5; i++)
        trace_pcap_record(t, DHT_OBS_SENT, NULL, msg, sizeof(msg), 0);
    trace_pcap_record(t, DHT_OBS_SENT, NULL, msg, 1, 0); /* would fit, but the trace ended */
    assert_int_equal(trace_pcap_close(t), 0);
    b = slurp(f->path, &len);
    assert_int_equal(len, 24 + 2 * rec);
    free(b);
}

static void test_write_error(void **state)
{
    struct fixture *f = *state;
    struct trace_pcap *t = NULL;
    struct rlimit old, lim;
    struct sigaction ign, old_sa;
    uint8_t msg[30], *b;
    size_t len;

    fake_msg(msg, sizeof(msg), 0);
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGXFSZ, &ign, &old_sa), 0);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1000; /* the kernel refuses writes past it: EFBIG */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    assert_int_equal(trace_pcap_open(&t, f->path, 1 << 20, &f->self, &f->log), 0);
    for (int i = 0; i < 20; i++)
        trace_pcap_record(t, DHT_OBS_SENT, NULL, msg, sizeof(msg), 0);
    assert_int_equal(trace_pcap_flush(t), -EFBIG);
    trace_pcap_record(t, DHT_OBS_SENT, NULL, msg, sizeof(msg), 0); /* ignored */
    assert_int_equal(trace_pcap_flush(t), -EFBIG);
    assert_int_equal(trace_pcap_close(t), -EFBIG);

    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
    b = slurp(f->path, &len);
    assert_true(len <= 1000);
    free(b);
}

static void test_open_fails(void **state)
{
    struct fixture *f = *state;
    struct trace_pcap *t = (struct trace_pcap *)(uintptr_t)1;
    char path[128];

    snprintf(path, sizeof(path), "%s/no/such/dir/trace.pcap", f->dir);
    assert_int_equal(trace_pcap_open(&t, path, 1 << 20, &f->self, &f->log), -ENOENT);
    assert_ptr_equal(t, (struct trace_pcap *)(uintptr_t)1);
    assert_int_equal(trace_pcap_close(NULL), 0);
    trace_pcap_record(NULL, DHT_OBS_SENT, NULL, (const uint8_t *)"", 0, 0);
    assert_int_equal(trace_pcap_flush(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_file_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
