/*
 * test_conf.c: the configuration: defaults, file format, strict errors with
 * "file:line: reason", command line parsing and precedence over the file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "p2p/buf.h"
#include "p2p/conf.h"

static int load(struct conf *c, const char *text, char *err)
{
    return conf_load_buf(c, "t.conf", text, strlen(text), err, CONF_ERR_MAX);
}

/* conf_format output as a NUL-terminated string (caller frees). */
static char *format(const struct conf *c)
{
    struct p2p_buf b;
    char *s;

    p2p_buf_init(&b, 1 << 16);
    assert_int_equal(conf_format(c, &b), 0);
    assert_int_equal(p2p_buf_append(&b, "", 1), 0);
    s = strdup(b.data);
    p2p_buf_free(&b);
    return s;
}

static void test_defaults(void **state)
{
    struct conf c;
    char err[CONF_ERR_MAX];
    (void)state;

    conf_defaults(&c);
    assert_int_equal(c.sip.port, 5062);
    assert_int_equal(c.sip.listen_count, 1);
    assert_string_equal(c.sip.listen[0].host, "127.0.0.1");
    assert_int_equal(c.sip.listen[0].family, AF_INET);
    assert_int_equal(c.sip.transports, CONF_TRANSPORT_UDP | CONF_TRANSPORT_TCP);
    assert_true(c.sip.domain_any);
    assert_int_equal(c.registrar.min_expires, 60);
    assert_int_equal(c.registrar.max_expires, 7200);
    assert_int_equal(c.registrar.default_expires, 3600);
    assert_int_equal(c.registrar.options_keepalive, 0);
    assert_false(c.registrar.keepalive_remove);
    assert_false(c.proxy.forward_foreign);
    assert_int_equal(c.proxy.foreign_reply, 404);
    assert_int_equal(c.timers.t1_ms, 500);
    assert_int_equal(c.timers.t2_ms, 4000);
    assert_int_equal(c.timers.t4_ms, 5000);
    assert_string_equal(c.auth.accounts, "");
    assert_string_equal(c.auth.realm, "p2psip");
    assert_int_equal(c.auth.algorithms, CONF_DIGEST_SHA256 | CONF_DIGEST_MD5);
    assert_int_equal(c.log.level, P2P_LOG_NOTICE);
    assert_false(c.log.syslog);
    assert_false(c.log.trace);
    assert_int_equal(c.p2p.port, CONF_DEFAULT_P2P_PORT);
    assert_int_equal(c.p2p.server_count, 0);
    assert_false(c.p2p.server);
    assert_true(c.p2p.multicast);
    assert_int_equal(c.p2p.discovery_port, CONF_DEFAULT_DISCOVERY_PORT);
    assert_string_equal(c.p2p.secret, "");
    assert_int_equal(c.p2p.promote_after, 15);
    assert_int_equal(c.p2p.cutoff, 8);
    assert_int_equal(c.p2p.replicas, 4);
    assert_int_equal(c.p2p.quorum, 2);
    assert_int_equal(c.p2p.leaf_half, 8);
    assert_int_equal(conf_check(&c, err, sizeof(err)), 0);
}

/* The commented default file shipped in conf/ must say exactly the built-in defaults. */
static void test_shipped_file_is_defaults(void **state)
{
    struct conf def, file;
    char err[CONF_ERR_MAX] = "";
    char path[1024];
    char *a, *b;
    (void)state;

    snprintf(path, sizeof(path), "%s/../../conf/p2psipd.conf", getenv("P2P_TEST_DATA"));
    conf_defaults(&def);
    conf_defaults(&file);
    /* Start from different values so that a key missing from the file shows. */
    assert_int_equal(load(&file, "sip.port = 9\nregistrar.max_aors = 7\nlog.level = err\n", err),
                     0);
    assert_int_equal(conf_load_file(&file, path, err, sizeof(err)), 0);
    a = format(&def);
    b = format(&file);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_sections_dotted_and_comments(void **state)
{
    struct conf c;
    char err[CONF_ERR_MAX] = "";
    (void)state;

    conf_defaults(&c);
    assert_int_equal(load(&c,
                          "# comment\r\n"
                          "data_dir = /tmp/x y # not part of the value\n"
                          "registrar.max_contacts = 3\n"
                          "\n"
                          "  [sip]  # the SIP side\n"
                          "port=5070\n"
                          "listen = 0.0.0.0, [::1] ,fe80::1\n"
                          "transports = TCP\n"
                          "domain = Example.ORG, 10.0.0.1, [2001:DB8::1]\n"
                          "[auth]\n"
                          "accounts = /etc/p2psip/accounts#1\n"
                          "algorithms = MD5-sess\n"
                          "[registrar]\n"
                          "options_keepalive = 30\n"
                          "keepalive_remove = yes\n"
                          "[log]\n"
                          "level = info\n"
                          "trace = On\n"
                          "trace_pcap = /var/tmp/node.pcap\n"
                          "trace_pcap_max = 16\n"
                          "[p2p]\n"
                          "port = 4000\n"
                          "servers = node1.example.org:4000, 10.1.2.3:4001,[::1]:4002\n"
                          "server = true",
                          err),
                     0);
    assert_string_equal(err, "");
    assert_string_equal(c.data_dir, "/tmp/x y");
    assert_int_equal(c.registrar.max_contacts, 3);
    assert_int_equal(c.sip.port, 5070);
    assert_int_equal(c.sip.listen_count, 3);
    assert_string_equal(c.sip.listen[0].host, "0.0.0.0");
    assert_int_equal(c.sip.listen[1].family, AF_INET6);
    assert_string_equal(c.sip.listen[1].host, "::1");
    assert_string_equal(c.sip.listen[2].host, "fe80::1");
    assert_int_equal(c.sip.transports, CONF_TRANSPORT_TCP);
    assert_false(c.sip.domain_any);
    assert_int_equal(c.sip.domain_count, 3);
    assert_string_equal(c.sip.domain[0], "example.org");
    assert_string_equal(c.sip.domain[1], "10.0.0.1");
    assert_string_equal(c.sip.domain[2], "2001:db8::1");
    /* '#' not preceded by a blank belongs to the value. */
    assert_string_equal(c.auth.accounts, "/etc/p2psip/accounts#1");
    assert_int_equal(c.registrar.options_keepalive, 30);
    assert_true(c.registrar.keepalive_remove);
    assert_int_equal(c.auth.algorithms, CONF_DIGEST_MD5_SESS);
    assert_int_equal(c.log.level, P2P_LOG_INFO);
    assert_true(c.log.trace);
    assert_string_equal(c.log.trace_pcap, "/var/tmp/node.pcap");
    assert_int_equal(c.log.trace_pcap_max, 16);
    assert_int_equal(c.p2p.port, 4000);
    assert_int_equal(c.p2p.server_count, 3);
    assert_string_equal(c.p2p.servers[0].host, "node1.example.org");
    assert_int_equal(c.p2p.servers[0].port, 4000);
    assert_string_equal(c.p2p.servers[2].host, "::1");
    assert_int_equal(c.p2p.servers[2].port, 4002);
    assert_true(c.p2p.server);
    /* Untouched keys keep their earlier values. */
    assert_int_equal(c.registrar.min_expires, 60);

    /* Formatting and loading again gives the same configuration. */
    char *a = format(&c);
    struct conf d;
    conf_defaults(&d);
    assert_int_equal(load(&d, a, err), 0);
    char *b = format(&d);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

struct bad_case {
    const char *text;
    const char *err;
};

static void test_bad_lines(void **state)
{
    static const struct bad_case cases[] = {
        {"sip.port = 5062\nfoo", "t.conf:2: expected 'key = value' or '[section]'"},
        {"[sip\n", "t.conf:1: missing ']' in section header"},
        {"[sip] port = 1\n", "t.conf:1: text after section header"},
        {"\n\n[nosuch]\n", "t.conf:3: unknown section [nosuch]"},
        {"[]\n", "t.conf:1: unknown section []"},
        {"= 5\n", "t.conf:1: missing key before '='"},
        {"Sip.Port = 5\n", "t.conf:1: invalid key 'Sip.Port'"},
        {"sip.nosuch = 1\n", "t.conf:1: unknown key 'sip.nosuch'"},
        {"[sip]\nregistrar.min_expires = 1\n", "t.conf:2: unknown key 'sip.registrar.min_expires'"},
        {"[sip]\nport = 1\n# x\nport = 2\n",
         "t.conf:4: duplicate key 'sip.port' (first set on line 2)"},
        {"sip.port =\n", "t.conf:1: sip.port: missing value"},
        {"log.trace_pcap_max = 0\n", "t.conf:1: log.trace_pcap_max: 0 is out of range (1-65536)"},
        {"sip.port = 0\n", "t.conf:1: sip.port: '0' is not a port number (1-65535)"},
        {"sip.port = 65536\n", "t.conf:1: sip.port: '65536' is not a port number (1-65535)"},
        {"sip.port = 50x\n", "t.conf:1: sip.port: '50x' is not a port number (1-65535)"},
        {"p2p.port = -1\n", "t.conf:1: p2p.port: '-1' is not a port number (0-65535)"},
        {"registrar.min_expires = 0\n",
         "t.conf:1: registrar.min_expires: 0 is out of range (1-86400)"},
        {"registrar.max_contacts = 99999999999999999999\n",
         "t.conf:1: registrar.max_contacts: 99999999999999999999 is out of range (1-16)"},
        {"registrar.max_contacts = 17\n",
         "t.conf:1: registrar.max_contacts: 17 is out of range (1-16)"},
        {"sip.domain = a,b,c,d,e,f,g,h,i\n", "t.conf:1: sip.domain: more than 8 domains"},
        {"registrar.max_aors = ten\n", "t.conf:1: registrar.max_aors: 'ten' is not a number"},
        {"registrar.options_keepalive = sometimes\n",
         "t.conf:1: registrar.options_keepalive: 'sometimes' is not a number or 'off'"},
        {"registrar.options_keepalive = 1\n",
         "t.conf:1: registrar.options_keepalive: 1 is out of range (5-3600)"},
        {"log.syslog = maybe\n",
         "t.conf:1: log.syslog: 'maybe' is not a boolean (yes/no, on/off, true/false, 1/0)"},
        {"log.level = loud\n",
         "t.conf:1: log.level: 'loud' is not a log level (err, warn, notice, info, debug)"},
        {"proxy.foreign_reply = 480\n", "t.conf:1: proxy.foreign_reply: '480' is not 403 or 404"},
        {"sip.listen = localhost\n",
         "t.conf:1: sip.listen: 'localhost' is not an IPv4 or IPv6 address"},
        {"sip.listen = 127.0.0.1,,::1\n", "t.conf:1: sip.listen: empty list element"},
        {"sip.listen = ::1, 0:0::1\n", "t.conf:1: sip.listen: duplicate address ::1"},
        {"sip.listen = 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,"
         "127.0.0.8,127.0.0.9\n",
         "t.conf:1: sip.listen: more than 8 addresses"},
        {"sip.transports = udp, tls\n",
         "t.conf:1: sip.transports: unsupported transport 'tls' (udp, tcp)"},
        {"sip.transports = udp,UDP\n", "t.conf:1: sip.transports: duplicate transport 'UDP'"},
        {"sip.domain = example.org, *\n",
         "t.conf:1: sip.domain: '*' (any domain) cannot be combined with names"},
        {"sip.domain = exa_mple.org\n",
         "t.conf:1: sip.domain: 'exa_mple.org' is not a host name or address"},
        {"sip.domain = a..b\n", "t.conf:1: sip.domain: 'a..b' is not a host name or address"},
        {"sip.domain = -a.org\n", "t.conf:1: sip.domain: '-a.org' is not a host name or address"},
        {"sip.domain = a.org, A.org\n", "t.conf:1: sip.domain: duplicate domain a.org"},
        {"p2p.servers = node1\n", "t.conf:1: p2p.servers: 'node1': expected host:port"},
        {"p2p.servers = ::1:4000\n",
         "t.conf:1: p2p.servers: '::1:4000': an IPv6 address needs brackets: [addr]:port"},
        {"p2p.servers = [::1]4000\n", "t.conf:1: p2p.servers: '[::1]4000': expected [ipv6]:port"},
        {"p2p.servers = a:1, b:0\n",
         "t.conf:1: p2p.servers: 'b:0': '0' is not a port number (1-65535)"},
        {"p2p.servers = a b:1\n",
         "t.conf:1: p2p.servers: 'a b:1': 'a b' is not a host name or address"},
        {"auth.realm = say \"hi\"\n",
         "t.conf:1: auth.realm: '\"' and '\\' are not allowed in a realm"},
        {"auth.algorithms = md5, sha1\n",
         "t.conf:1: auth.algorithms: unknown algorithm 'sha1' (md5, md5-sess, sha-256, "
         "sha-256-sess)"},
        {"auth.algorithms = md5,MD5\n", "t.conf:1: auth.algorithms: duplicate algorithm 'MD5'"},
        {"auth.algorithms =\n", "t.conf:1: auth.algorithms: missing value"},
        {"auth.accounts = a\x01"
         "b\n",
         "t.conf:1: auth.accounts: control character in value"},
    };
    char err[CONF_ERR_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf c, before;
        conf_defaults(&c);
        before = c;
        memset(err, 0, sizeof(err));
        int rc = load(&c, cases[i].text, err);
        if (rc != -EINVAL || strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu: rc %d, got \"%s\", want \"%s\"", i, rc, err, cases[i].err);
        /* A failed load leaves the configuration as it was. */
        assert_memory_equal(&c, &before, sizeof(c));
    }
}

static void test_bad_bytes_and_sizes(void **state)
{
    struct conf c, before;
    char err[CONF_ERR_MAX];
    char *big;
    (void)state;

    conf_defaults(&c);
    before = c;
    /* A NUL byte inside a line. */
    assert_int_equal(
        conf_load_buf(&c, "t.conf", "sip.port = 5\n[sip]\npo\0rt = 1\n", 24, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err, "t.conf:3: NUL byte in line");
    /* A line over CONF_LINE_MAX is refused, not truncated. */
    big = malloc(CONF_FILE_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', CONF_LINE_MAX + 1);
    memcpy(big, "# x", 3);
    big[CONF_LINE_MAX + 1] = '\n';
    assert_int_equal(conf_load_buf(&c, "t.conf", big, CONF_LINE_MAX + 2, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "t.conf:1: line too long (max 1024 bytes)");
    /* Exactly CONF_LINE_MAX bytes is fine. */
    assert_int_equal(conf_load_buf(&c, "t.conf", big, CONF_LINE_MAX, err, sizeof(err)), 0);
    /* A file over CONF_FILE_MAX. */
    memset(big, '\n', CONF_FILE_MAX + 1);
    assert_int_equal(conf_load_buf(&c, "t.conf", big, CONF_FILE_MAX + 1, err, sizeof(err)), -EFBIG);
    assert_string_equal(err, "t.conf: file too large (max 65536 bytes)");
    free(big);
    assert_memory_equal(&c, &before, sizeof(c));
    /* A missing file names the file and the system's reason. */
    assert_int_equal(conf_load_file(&c, "/nonexistent/p2psipd.conf", err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "/nonexistent/p2psipd.conf: No such file or directory");
}

static void test_check(void **state)
{
    struct conf c;
    char err[CONF_ERR_MAX];
    (void)state;

    conf_defaults(&c);
    assert_int_equal(load(&c, "registrar.min_expires = 4000\n", err), 0);
    assert_int_equal(conf_check(&c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "registrar.default_expires (3600) is outside "
                             "registrar.min_expires..max_expires (4000-7200)");
    conf_defaults(&c);
    assert_int_equal(load(&c, "registrar.max_expires = 30\n", err), 0);
    assert_int_equal(conf_check(&c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "registrar.min_expires (60) is above registrar.max_expires (30)");
    conf_defaults(&c);
    assert_int_equal(load(&c, "timers.t1 = 5000\n", err), 0);
    assert_int_equal(conf_check(&c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "timers.t1 (5000 ms) is above timers.t2 (4000 ms)");
    conf_defaults(&c);
    assert_int_equal(load(&c, "p2p.port = 5062\n", err), 0);
    assert_int_equal(conf_check(&c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "p2p.port (5062) must differ from sip.port");
    conf_defaults(&c);
    assert_int_equal(load(&c, "p2p.discovery_port = 7560\n", err), 0);
    assert_int_equal(conf_check(&c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "p2p.discovery_port (7560) must differ from sip.port and p2p.port");
    /* Without multicast the discovery port is not used, so it may be anything. */
    assert_int_equal(load(&c, "p2p.multicast = no\n", err), 0);
    assert_int_equal(conf_check(&c, err, sizeof(err)), 0);
    conf_defaults(&c);
    assert_int_equal(load(&c, "p2p.quorum = 5\n", err), 0);
    assert_int_equal(conf_check(&c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "p2p.quorum (5) must not exceed p2p.replicas (4), nor replicas "
                             "twice p2p.leaf_half (8)");
}

static void test_default_data_dir(void **state)
{
    char out[64] = "x";
    (void)state;

    assert_int_equal(conf_default_data_dir(out, sizeof(out), true, "/x", "/home/a"), 0);
    assert_string_equal(out, "/var/lib/p2psip");
    assert_int_equal(conf_default_data_dir(out, sizeof(out), false, "/xdg", "/home/a"), 0);
    assert_string_equal(out, "/xdg/p2psip");
    /* A relative XDG_DATA_HOME is invalid per the XDG spec and ignored. */
    assert_int_equal(conf_default_data_dir(out, sizeof(out), false, "rel", "/home/a"), 0);
    assert_string_equal(out, "/home/a/.local/share/p2psip");
    assert_int_equal(conf_default_data_dir(out, sizeof(out), false, NULL, "/home/a"), 0);
    assert_string_equal(out, "/home/a/.local/share/p2psip");
    assert_int_equal(conf_default_data_dir(out, sizeof(out), false, NULL, NULL), -ENOENT);
    assert_int_equal(conf_default_data_dir(out, 10, false, NULL, "/home/a"), -ENAMETOOLONG);
}

static int parse(struct conf_args *a, char *err, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    argv[argc++] = "p2psipd";
    va_start(ap, err);
    for (char *s; (s = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = s;
    va_end(ap);
    argv[argc] = NULL;
    return conf_args_parse(a, argc, argv, err, CONF_ERR_MAX);
}

static void test_args(void **state)
{
    struct conf_args a;
    struct conf c;
    char err[CONF_ERR_MAX];
    (void)state;

    assert_int_equal(parse(&a, err, "-sd", "-p", "5070", "-P4000", "--servers",
                           "10.0.0.1:4000,[2001:db8::7]:4001,boot.example.org:4002",
                           "--listen=::1,127.0.0.1", "--data-dir", "/tmp/d", "--config",
                           "/etc/p.conf", "--accounts=/etc/acc", "--trace-pcap", "/tmp/t.pcap",
                           NULL),
                     0);
    assert_string_equal(a.config_path, "/etc/p.conf");
    assert_false(a.help);
    assert_false(a.version);
    conf_defaults(&c);
    assert_int_equal(conf_args_apply(&c, &a, err, sizeof(err)), 0);
    assert_true(c.p2p.server);
    assert_true(c.log.trace);
    assert_int_equal(c.log.level, P2P_LOG_DEBUG);
    assert_int_equal(c.sip.port, 5070);
    assert_int_equal(c.p2p.port, 4000);
    assert_false(c.p2p.multicast); /* -P turns discovery off, as in the seed */
    assert_int_equal(c.p2p.server_count, 3);
    assert_string_equal(c.p2p.servers[0].host, "10.0.0.1");
    assert_int_equal(c.p2p.servers[0].port, 4000);
    assert_string_equal(c.p2p.servers[1].host, "2001:db8::7");
    assert_int_equal(c.p2p.servers[1].port, 4001);
    assert_string_equal(c.p2p.servers[2].host, "boot.example.org");
    assert_int_equal(c.sip.listen_count, 2);
    assert_int_equal(c.sip.listen[0].family, AF_INET6);
    assert_string_equal(c.sip.listen[0].host, "::1");
    assert_string_equal(c.sip.listen[1].host, "127.0.0.1");
    assert_string_equal(c.data_dir, "/tmp/d");
    assert_string_equal(c.auth.accounts, "/etc/acc");
    assert_string_equal(c.log.trace_pcap, "/tmp/t.pcap");
    assert_int_equal(c.log.trace_pcap_max, 256); /* MiB, the default cap */

    assert_int_equal(parse(&a, err, "--help", NULL), 0);
    assert_true(a.help);
    assert_int_equal(parse(&a, err, "-V", NULL), 0);
    assert_true(a.version);
    assert_int_equal(parse(&a, err, "--print-config", "--", NULL), 0);
    assert_true(a.print_config);
    assert_int_equal(a.set_count, 0);

    /* The later of two settings of one key wins, as in "-p 1 -p 2". */
    assert_int_equal(parse(&a, err, "-p", "1", "--sip-port", "2", NULL), 0);
    conf_defaults(&c);
    assert_int_equal(conf_args_apply(&c, &a, err, sizeof(err)), 0);
    assert_int_equal(c.sip.port, 2);
}

static void test_args_errors(void **state)
{
    struct conf_args a;
    struct conf c, before;
    char err[CONF_ERR_MAX];
    (void)state;

    a.help = true; /* untouched on failure */
    assert_int_equal(parse(&a, err, "-x", NULL), -EINVAL);
    assert_string_equal(err, "unknown option '-x'");
    assert_true(a.help);
    assert_int_equal(parse(&a, err, "--sip-prot", "5", NULL), -EINVAL);
    assert_string_equal(err, "unknown option '--sip-prot'");
    assert_int_equal(parse(&a, err, "-p", NULL), -EINVAL);
    assert_string_equal(err, "option '-p' needs a value");
    assert_int_equal(parse(&a, err, "--listen", NULL), -EINVAL);
    assert_string_equal(err, "option '--listen' needs a value");
    assert_int_equal(parse(&a, err, "--server=yes", NULL), -EINVAL);
    assert_string_equal(err, "option '--server' takes no value");
    assert_int_equal(parse(&a, err, "-s", "extra", NULL), -EINVAL);
    assert_string_equal(err, "unexpected argument 'extra'");

    /* Values are checked by the key's own parser and reported with the option. */
    conf_defaults(&c);
    before = c;
    assert_int_equal(parse(&a, err, "-s", "--sip-port", "99999", NULL), 0);
    assert_int_equal(conf_args_apply(&c, &a, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--sip-port: sip.port: '99999' is not a port number (1-65535)");
    assert_memory_equal(&c, &before, sizeof(c));
    assert_int_equal(parse(&a, err, "--listen", "::1,localhost", NULL), 0);
    assert_int_equal(conf_args_apply(&c, &a, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--listen: sip.listen: 'localhost' is not an IPv4 or IPv6 address");
    assert_int_equal(parse(&a, err, "-S", "1.2.3.4", NULL), 0);
    assert_int_equal(conf_args_apply(&c, &a, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--servers: p2p.servers: '1.2.3.4': expected host:port");
}

/* conf_build: file over defaults, command line over file. */
static void test_build_precedence(void **state)
{
    char dir[] = "/tmp/test_conf.XXXXXX";
    char path[64], err[CONF_ERR_MAX];
    struct conf_args a;
    struct conf c;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/p.conf", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("data_dir = /tmp/from-file\n[sip]\nport = 5080\n[log]\nlevel = info\n", f);
    assert_int_equal(fclose(f), 0);

    assert_int_equal(parse(&a, err, "--config", path, "-p", "5090", NULL), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), 0);
    assert_int_equal(c.sip.port, 5090);          /* command line wins */
    assert_int_equal(c.log.level, P2P_LOG_INFO); /* from the file */
    assert_string_equal(c.data_dir, "/tmp/from-file");
    assert_int_equal(c.registrar.max_expires, 7200); /* default */

    /* A bad line fails the build with file:line. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[sip]\nport = 5080\nlisten = nowhere\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), -EINVAL);
    char want[256];
    snprintf(want, sizeof(want), "%s:3: sip.listen: 'nowhere' is not an IPv4 or IPv6 address",
             path);
    assert_string_equal(err, want);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* control: the socket path, its default next to the database, its length limit. */
static void test_control(void **state)
{
    struct conf_args a;
    struct conf c;
    char err[CONF_ERR_MAX], out[128], dir[400];
    char *text;
    (void)state;

    conf_defaults(&c);
    assert_string_equal(c.control, "");
    assert_int_equal(load(&c, "control = /run/p2p/ctl.sock\n[sip]\nport = 5070\n", err), 0);
    assert_string_equal(c.control, "/run/p2p/ctl.sock");
    text = format(&c);
    assert_non_null(strstr(text, "\ncontrol = /run/p2p/ctl.sock\n"));
    free(text);
    /* A key of the top level: not valid inside a section. */
    assert_int_equal(load(&c, "[sip]\ncontrol = /x\n", err), -EINVAL);
    assert_string_equal(err, "t.conf:2: unknown key 'sip.control'");

    assert_int_equal(conf_default_control(out, sizeof(out), "/var/lib/p2psip"), 0);
    assert_string_equal(out, "/var/lib/p2psip/control.sock");
    assert_int_equal(conf_default_control(out, 10, "/var/lib/p2psip"), -ENAMETOOLONG);
    assert_string_equal(out, "");
    /* 95 + "/control.sock" = 108 bytes: one more than sun_path holds. */
    memset(dir, 'd', 95);
    dir[0] = '/';
    dir[95] = '\0';
    assert_int_equal(conf_default_control(out, sizeof(out), dir), -ENAMETOOLONG);
    dir[94] = '\0';
    assert_int_equal(conf_default_control(out, sizeof(out), dir), 0);
    assert_int_equal(strlen(out), 107);

    /* The command line; the default follows the data directory; an explicit one wins. */
    assert_int_equal(parse(&a, err, "--data-dir", "/tmp/d", NULL), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), 0);
    assert_string_equal(c.control, "/tmp/d/control.sock");
    text = format(&c); /* what --print-config prints */
    assert_non_null(strstr(text, "\ncontrol = /tmp/d/control.sock\n"));
    free(text);
    assert_int_equal(parse(&a, err, "--data-dir", "/tmp/d", "--control=/tmp/c.sock", NULL), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), 0);
    assert_string_equal(c.control, "/tmp/c.sock");
    assert_string_equal(c.data_dir, "/tmp/d");

    /* Too long for a socket: refused, whether given or derived. */
    memset(dir, 'x', 200);
    dir[0] = '/';
    dir[200] = '\0';
    assert_int_equal(parse(&a, err, "--data-dir", "/tmp/d", "--control", dir, NULL), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "control: socket path too long (max 107 bytes)"));
    assert_int_equal(parse(&a, err, "--data-dir", dir, NULL), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "/control.sock is too long for a socket path; set --control"));
    assert_int_equal(parse(&a, err, "--data-dir", dir, "--control", "/tmp/c.sock", NULL), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), 0);
    assert_string_equal(c.control, "/tmp/c.sock");
}

static void test_metrics_listen(void **state)
{
    struct conf_args a;
    struct conf c;
    char err[CONF_ERR_MAX];
    char *text;
    (void)state;

    conf_defaults(&c);
    assert_int_equal(c.metrics.port, 0); /* off by default */
    assert_int_equal(c.log.burst, P2P_LOG_BURST_DEFAULT);
    assert_int_equal(c.log.rate, P2P_LOG_RATE_DEFAULT);
    /* A bare port is loopback. */
    assert_int_equal(load(&c, "metrics_listen = 9100\n", err), 0);
    assert_int_equal(c.metrics.port, 9100);
    assert_string_equal(c.metrics.addr.host, "127.0.0.1");
    assert_int_equal(load(&c, "metrics_listen = 0.0.0.0:9101\n", err), 0);
    assert_int_equal(c.metrics.port, 9101);
    assert_string_equal(c.metrics.addr.host, "0.0.0.0");
    assert_int_equal(load(&c, "metrics_listen = [::1]:9102\n", err), 0);
    assert_int_equal(c.metrics.addr.family, AF_INET6);
    text = format(&c);
    assert_non_null(strstr(text, "\nmetrics_listen = [::1]:9102\n"));
    free(text);
    assert_int_equal(load(&c, "metrics_listen =\n", err), 0);
    assert_int_equal(c.metrics.port, 0);
    text = format(&c);
    assert_non_null(strstr(text, "\nmetrics_listen =\n"));
    free(text);
    /* Names, unbracketed IPv6, port 0 and junk are refused, and change nothing. */
    assert_int_equal(load(&c, "metrics_listen = localhost:9100\n", err), -EINVAL);
    assert_non_null(strstr(err, "metrics_listen: 'localhost' is not an IPv4 address"));
    assert_int_equal(load(&c, "metrics_listen = ::1:9100\n", err), -EINVAL);
    assert_int_equal(load(&c, "metrics_listen = 127.0.0.1:0\n", err), -EINVAL);
    assert_non_null(strstr(err, "metrics_listen: '0' is not a port number (1-65535)"));
    assert_int_equal(load(&c, "metrics_listen = 9100x\n", err), -EINVAL);
    assert_int_equal(c.metrics.port, 0);
    assert_int_equal(load(&c, "[log]\nburst = 0\n", err), -EINVAL);
    assert_int_equal(load(&c, "[log]\nburst = 5\nrate = 1\n", err), 0);
    assert_int_equal(c.log.burst, 5);
    assert_int_equal(c.log.rate, 1);
    /* The command line. */
    assert_int_equal(parse(&a, err, "--data-dir", "/tmp/d", "--metrics-listen", "9200", NULL), 0);
    assert_int_equal(conf_build(&c, &a, err, sizeof(err)), 0);
    assert_int_equal(c.metrics.port, 9200);
    assert_string_equal(c.metrics.addr.host, "127.0.0.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_shipped_file_is_defaults),
        cmocka_unit_test(test_sections_dotted_and_comments),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_bad_bytes_and_sizes),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_default_data_dir),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_args_errors),
        cmocka_unit_test(test_build_precedence),
        cmocka_unit_test(test_control),
        cmocka_unit_test(test_metrics_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
