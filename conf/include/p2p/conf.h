/*
 * conf.h: p2psipd's configuration: defaults, the configuration file, the command line.
 *
 * Design.  One plain struct conf holds every setting, with fixed-size fields so that
 * it can be copied, compared and thrown away without ownership questions.  Three
 * sources fill it, in this order: conf_defaults(), a configuration file
 * (conf_load_file / conf_load_buf), then the command line (conf_args_parse +
 * conf_args_apply).  The command line is kept as a list of (key, value) pairs in the
 * configuration file's own key space, so a command-line option is checked by exactly
 * the code that checks the same key in a file, and a SIGHUP reload can rebuild the
 * whole configuration (defaults, file, command line) and swap it in.
 *
 * File format: `key = value` lines, `# comment` lines, and `[section]` headers that
 * prefix the following keys (`[sip]` then `port = 5070` is `sip.port`).  Keys may be
 * written dotted instead (`sip.port = 5070` before any section).  A `#` preceded by a
 * blank starts a comment after a value.  Lists are comma-separated.  Validation is
 * strict: an unknown section or key, a malformed or out-of-range value, a key given
 * twice, an over-long line or a NUL byte is an error "file:line: reason", and the
 * loader leaves the caller's struct untouched.
 *
 * Invariants.  Every loader and setter writes its output only on success.  Each list
 * has a hard cap (CONF_*_MAX); a file is at most CONF_FILE_MAX bytes, a line at most
 * CONF_LINE_MAX.  Hosts in sip.domain are stored lower-cased (RFC 3261 19.1.4: hosts
 * compare case-insensitively).  No global state: two configurations can coexist.
 */
#ifndef P2P_CONF_H
#define P2P_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "p2p/buf.h"
#include "p2p/log.h"

#define CONF_LISTEN_MAX 8   /* sip.listen addresses */
#define CONF_DOMAIN_MAX 8   /* sip.domain entries (SIP_SELF_DOMAINS_MAX) */
#define CONF_SERVER_MAX 16  /* p2p.servers entries */
#define CONF_HOST_MAX 256   /* a DNS name (253) or an address, with its NUL */
#define CONF_ADDR_MAX 46    /* INET6_ADDRSTRLEN */
#define CONF_PATH_MAX 512   /* data_dir, auth.accounts */
#define CONF_REALM_MAX 128  /* auth.realm */
#define CONF_LINE_MAX 1024  /* one line of a configuration file */
#define CONF_FILE_MAX 65536 /* a whole configuration file */
#define CONF_ERR_MAX 768    /* a buffer this size holds any error message */
#define CONF_ARGS_MAX 32    /* command-line settings kept by conf_args_parse */

/* Default SIP port, as in the seed (phones point at 127.0.0.1:5062). */
#define CONF_DEFAULT_SIP_PORT 5062

enum conf_transport {
    CONF_TRANSPORT_UDP = 1u << 0,
    CONF_TRANSPORT_TCP = 1u << 1,
};

/* A numeric address to listen on; host is the canonical text (inet_ntop). */
struct conf_addr {
    int family; /* AF_INET or AF_INET6 */
    char host[CONF_ADDR_MAX];
};

/* A peer given as host:port; host is a DNS name, IPv4 or IPv6 text (no brackets). */
struct conf_hostport {
    char host[CONF_HOST_MAX];
    uint16_t port;
};

struct conf_sip {
    uint16_t port;                               /* sip.port */
    struct conf_addr listen[CONF_LISTEN_MAX];    /* sip.listen */
    size_t listen_count;                         /* >= 1 */
    unsigned transports;                         /* sip.transports: enum conf_transport bits */
    bool domain_any;                             /* sip.domain = * */
    char domain[CONF_DOMAIN_MAX][CONF_HOST_MAX]; /* sip.domain list, lower-case */
    size_t domain_count;                         /* 0 when domain_any */
};

struct conf_registrar {
    uint32_t min_expires;       /* seconds; RFC 3261 10.3 step 7: 423 below this */
    uint32_t max_expires;       /* seconds; longer requests are shortened */
    uint32_t default_expires;   /* seconds, when the REGISTER names none */
    uint32_t max_contacts;      /* bindings per AoR */
    uint32_t max_aors;          /* AoRs served by this node */
    uint32_t options_keepalive; /* seconds between OPTIONS pings to contacts; 0 = off */
    bool keepalive_remove;      /* drop a binding whose contact does not answer a ping */
};

struct conf_proxy {
    bool forward_foreign;   /* proxy requests for domains we are not responsible for */
    uint16_t foreign_reply; /* else answer them with 404 or 403 */
};

struct conf_timers {
    uint32_t t1_ms; /* RFC 3261 17.1.1.1: RTT estimate, default 500 ms */
    uint32_t t2_ms; /* maximum retransmit interval, default 4 s */
    uint32_t t4_ms; /* maximum time a message stays in the network, default 5 s */
};

/* Digest algorithms (RFC 7616 3.2), offered in the order SHA-256 first. */
enum conf_digest_alg {
    CONF_DIGEST_MD5 = 1u << 0,
    CONF_DIGEST_MD5_SESS = 1u << 1,
    CONF_DIGEST_SHA256 = 1u << 2,
    CONF_DIGEST_SHA256_SESS = 1u << 3,
};

struct conf_auth {
    char accounts[CONF_PATH_MAX]; /* accounts file; "" = none (only local phones register) */
    char realm[CONF_REALM_MAX];   /* digest realm */
    unsigned algorithms;          /* enum conf_digest_alg bits, never 0 */
};

struct conf_logcfg {
    enum p2p_log_level level;
    bool syslog; /* log to syslog (LOG_DAEMON) instead of stderr */
    bool trace;  /* trace every SIP message in and out (at debug level) */
    /* --trace-pcap: every DHT message sent and received, decrypted, into this pcap
     * file (p2psipd/trace_pcap.h); "" = none.  A debugging aid, never a default. */
    char trace_pcap[CONF_PATH_MAX];
    uint32_t trace_pcap_max; /* MiB; the file stops growing at this size */
    uint32_t burst;          /* lines a peer can cause: at once, per category */
    uint32_t rate;           /* and then per second, per category */
};

/* The Prometheus HTTP listener (metrics_listen); port 0 = off. */
struct conf_metrics {
    struct conf_addr addr; /* numeric; 127.0.0.1 when only a port was given */
    uint16_t port;
};

/* Default P2P port (UDP for DHT messages, TCP for large messages and pipes) and the
 * LAN discovery port: neither is SIP's (the seed shared 5062 and discovery failed). */
#define CONF_DEFAULT_P2P_PORT 7560
#define CONF_DEFAULT_DISCOVERY_PORT 7561

struct conf_p2p {
    uint16_t port; /* p2p.port; 0 = any free port */
    struct conf_hostport servers[CONF_SERVER_MAX];
    size_t server_count;
    bool server;                /* -s: start a new overlay (a super-node from the start) */
    bool multicast;             /* LAN discovery (-P turns it off, as in the seed) */
    uint16_t discovery_port;    /* multicast discovery port */
    char secret[CONF_PATH_MAX]; /* overlay secret file; "" = the public overlay */
    uint32_t promote_after;     /* seconds up before a client may become a member */
    uint32_t cutoff;            /* seconds without any leaf answering: cut off */
    uint32_t replicas, quorum;  /* DHT replicas besides the root, acks for a put */
    uint32_t leaf_half;         /* leaf-set members per side */
};

struct conf {
    struct conf_sip sip;
    struct conf_registrar registrar;
    struct conf_proxy proxy;
    struct conf_timers timers;
    struct conf_auth auth;
    struct conf_logcfg log;
    char data_dir[CONF_PATH_MAX]; /* "" until conf_resolve() chooses the default */
    char control[CONF_PATH_MAX];  /* control socket; "" until conf_build() chooses
                                     data_dir/control.sock */
    struct conf_metrics metrics;  /* metrics_listen */
    struct conf_p2p p2p;
};

/* Fills *c with the built-in defaults (the values conf/p2psipd.conf documents). */
void conf_defaults(struct conf *c);

/*
 * Sets one key ("sip.port") from its text form, exactly as a configuration file line
 * would.  Returns 0, or -EINVAL (unknown key, bad value) with the reason written to
 * err (always NUL-terminated when errlen > 0); *c is unchanged on failure.
 */
int conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errlen);

/*
 * Parses a configuration file held in memory; name is used in error messages only.
 * Settings found override those already in *c.  Returns 0, or -EINVAL with
 * "name:line: reason" in err; *c is unchanged on failure.
 */
int conf_load_buf(struct conf *c, const char *name, const char *buf, size_t len, char *err,
                  size_t errlen);

/*
 * Reads and parses the file at path (see conf_load_buf).  Errors: -ENOENT, -EACCES...
 * ("path: strerror"), -EFBIG over CONF_FILE_MAX, -EINVAL for a bad line.
 */
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);

/*
 * Checks rules that span keys (min_expires <= default_expires <= max_expires,
 * t1 <= t2, p2p.port != sip.port) and that control fits a socket path.  Returns 0
 * or -EINVAL with the reason in err.
 */
int conf_check(const struct conf *c, char *err, size_t errlen);

/*
 * Chooses the default data directory when c->data_dir is empty: /var/lib/p2psip for
 * root, else $XDG_DATA_HOME/p2psip, else $HOME/.local/share/p2psip (XDG Base
 * Directory specification).  The environment is passed in so that tests control it.
 * Returns 0, -ENOENT when neither variable is set for a non-root user, -ENAMETOOLONG.
 */
int conf_default_data_dir(char *out, size_t size, bool is_root, const char *xdg_data_home,
                          const char *home);

/* The control socket's file name in the data directory, when `control` is empty. */
#define CONF_CONTROL_NAME "control.sock"

/*
 * Writes the default control socket path for data_dir (data_dir/control.sock), the
 * one place that names it, so p2psipd and p2psipctl agree.  A Unix socket path must
 * fit in sockaddr_un.sun_path (107 bytes on Linux): a longer result is -ENAMETOOLONG,
 * as is one that does not fit in size.  Returns 0; out is "" on failure.
 */
int conf_default_control(char *out, size_t size, const char *data_dir);

/*
 * Writes the whole configuration in the file format (sections, one key per line), so
 * that conf_load_buf() of the output gives back the same settings.  Returns 0 or the
 * p2p_buf_append error.
 */
int conf_format(const struct conf *c, struct p2p_buf *out);

/* A command line, parsed but not yet applied; strings point into argv. */
struct conf_args {
    const char *config_path; /* --config FILE, or NULL */
    bool help;               /* -h, --help */
    bool version;            /* -V, --version */
    bool print_config;       /* --print-config */
    size_t set_count;
    struct conf_arg_set {
        const char *option; /* the long option name, for messages ("--sip-port") */
        const char *key;    /* configuration key ("sip.port") */
        const char *value;  /* its text */
    } set[CONF_ARGS_MAX];
};

/*
 * Parses argv (argv[0] is skipped) without global state (not getopt): short options
 * may be clustered (-sd) and take their value attached or as the next word (-p5070,
 * -p 5070); long ones as --opt=value or --opt value; "--" ends the options.  Values
 * are not checked here but by conf_args_apply.  Returns 0, or -EINVAL with the reason
 * in err; *out is unchanged on failure.
 */
int conf_args_parse(struct conf_args *out, int argc, char *const argv[], char *err, size_t errlen);

/*
 * Applies the command-line settings over *c, in order.  Returns 0, or -EINVAL with
 * "--option: reason" in err; *c is unchanged on failure.
 */
int conf_args_apply(struct conf *c, const struct conf_args *args, char *err, size_t errlen);

/*
 * Builds the effective configuration: defaults, then the --config file if any, then
 * the command line, then the data directory default (from the real environment and
 * uid) and conf_check().  This is what the daemon does at start and on SIGHUP.
 * Returns 0 or a negative errno with the message in err; *out is unchanged on failure.
 */
int conf_build(struct conf *out, const struct conf_args *args, char *err, size_t errlen);

/* Prints the --help text; default_data_dir is shown as the data directory default. */
void conf_usage(FILE *f, const char *prog, const char *default_data_dir);

#endif
