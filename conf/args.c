/*
 * args.c: p2psipd's command line, and building the effective configuration.
 *
 * Design.  The options are the seed's (-s, -d, -p, -P, -S: SEED.md 3.1) plus
 * --config, --data-dir, --control, --metrics-listen, --listen, --accounts, --trace-pcap,
 * --print-config, --help, --version.
 * Each option that sets something maps to configuration keys (options[]), so the
 * command line is checked by the same code as the configuration file and simply
 * overrides it.  The parser is our own rather than getopt_long: getopt keeps its
 * position in globals (optind), which a test that parses several command lines in one
 * process, or a reload, would have to reset by hand.
 *
 * Invariants.  At most CONF_ARGS_MAX settings are kept; more is an error, never a
 * silent drop.  Output structs are written only on success.
 */
#include "p2p/errmsg.h"
#include "p2p/conf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_action {
    OPT_SET,    /* sets key1 (and key2, if any) to the option's value */
    OPT_FLAG,   /* sets key1 = value1 (and key2 = value2), takes no value */
    OPT_CONFIG, /* --config FILE */
    OPT_HELP,
    OPT_VERSION,
    OPT_PRINT,
};

struct opt {
    char short_name; /* 0 = long only */
    const char *long_name;
    enum opt_action action;
    const char *key1, *value1, *key2, *value2;
};

static const struct opt options[] = {
    {'s', "server", OPT_FLAG, "p2p.server", "yes", NULL, NULL},
    {'d', "verbose", OPT_FLAG, "log.level", "debug", "log.trace", "yes"},
    {'p', "sip-port", OPT_SET, "sip.port", NULL, NULL, NULL},
    {'P', "p2p-port", OPT_SET, "p2p.port", NULL, "p2p.multicast", "no"},
    {'S', "servers", OPT_SET, "p2p.servers", NULL, NULL, NULL},
    {0, "listen", OPT_SET, "sip.listen", NULL, NULL, NULL},
    {0, "data-dir", OPT_SET, "data_dir", NULL, NULL, NULL},
    {0, "control", OPT_SET, "control", NULL, NULL, NULL},
    {0, "metrics-listen", OPT_SET, "metrics_listen", NULL, NULL, NULL},
    {0, "accounts", OPT_SET, "auth.accounts", NULL, NULL, NULL},
    {0, "trace-pcap", OPT_SET, "log.trace_pcap", NULL, NULL, NULL},
    {0, "config", OPT_CONFIG, NULL, NULL, NULL, NULL},
    {0, "print-config", OPT_PRINT, NULL, NULL, NULL, NULL},
    {'h', "help", OPT_HELP, NULL, NULL, NULL, NULL},
    {'V', "version", OPT_VERSION, NULL, NULL, NULL, NULL},
};

#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

static bool takes_value(const struct opt *o)
{
    return o->action == OPT_SET || o->action == OPT_CONFIG;
}

/* Records what option o means; value is NULL for options without one. */
static int record(struct conf_args *a, const struct opt *o, const char *value, char *err,
                  size_t errlen)
{
    switch (o->action) {
    case OPT_HELP:
        a->help = true;
        return 0;
    case OPT_VERSION:
        a->version = true;
        return 0;
    case OPT_PRINT:
        a->print_config = true;
        return 0;
    case OPT_CONFIG:
        a->config_path = value;
        return 0;
    case OPT_SET:
    case OPT_FLAG:
        break;
    }
    if (a->set_count + (o->key2 ? 2 : 1) > CONF_ARGS_MAX) {
        p2p_errf(err, errlen, "too many options (max %d settings)", CONF_ARGS_MAX);
        return -EINVAL;
    }
    a->set[a->set_count++] =
        (struct conf_arg_set){o->long_name, o->key1, o->action == OPT_SET ? value : o->value1};
    if (o->key2 != NULL)
        a->set[a->set_count++] = (struct conf_arg_set){o->long_name, o->key2, o->value2};
    return 0;
}

int conf_args_parse(struct conf_args *out, int argc, char *const argv[], char *err, size_t errlen)
{
    struct conf_args a;
    int i;

    memset(&a, 0, sizeof(a));
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const struct opt *o = NULL;

        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            break;
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            const char *value = NULL;

            for (size_t k = 0; k < OPTION_COUNT && o == NULL; k++) {
                if (strlen(options[k].long_name) == nlen &&
                    memcmp(options[k].long_name, name, nlen) == 0)
                    o = &options[k];
            }
            if (o == NULL) {
                p2p_errf(err, errlen, "unknown option '--%.*s'", (int)(nlen > 64 ? 64 : nlen),
                         name);
                return -EINVAL;
            }
            if (takes_value(o)) {
                if (eq != NULL)
                    value = eq + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else {
                    p2p_errf(err, errlen, "option '--%s' needs a value", o->long_name);
                    return -EINVAL;
                }
            } else if (eq != NULL) {
                p2p_errf(err, errlen, "option '--%s' takes no value", o->long_name);
                return -EINVAL;
            }
            if (record(&a, o, value, err, errlen) != 0)
                return -EINVAL;
            continue;
        }
        /* A cluster of short options: -sd, -p5070, -sp 5070. */
        for (const char *p = arg + 1; *p != '\0'; p++) {
            const char *value = NULL;
            o = NULL;
            for (size_t k = 0; k < OPTION_COUNT && o == NULL; k++) {
                if (options[k].short_name == *p)
                    o = &options[k];
            }
            if (o == NULL) {
                p2p_errf(err, errlen, "unknown option '-%c'", *p);
                return -EINVAL;
            }
            if (takes_value(o)) {
                if (p[1] != '\0')
                    value = p + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else {
                    p2p_errf(err, errlen, "option '-%c' needs a value", *p);
                    return -EINVAL;
                }
            }
            if (record(&a, o, value, err, errlen) != 0)
                return -EINVAL;
            if (value != NULL)
                break;
        }
    }
    if (i < argc) {
        p2p_errf(err, errlen, "unexpected argument '%.64s'", argv[i]);
        return -EINVAL;
    }
    *out = a;
    return 0;
}

int conf_args_apply(struct conf *c, const struct conf_args *args, char *err, size_t errlen)
{
    struct conf tmp = *c;
    char why[CONF_ERR_MAX];

    for (size_t i = 0; i < args->set_count; i++) {
        const struct conf_arg_set *s = &args->set[i];
        if (conf_set(&tmp, s->key, s->value, why, sizeof(why)) != 0) {
            p2p_errf(err, errlen, "--%s: %s", s->option, why);
            return -EINVAL;
        }
    }
    *c = tmp;
    return 0;
}

int conf_build(struct conf *out, const struct conf_args *args, char *err, size_t errlen)
{
    struct conf c;
    int rc;

    conf_defaults(&c);
    if (args->config_path != NULL) {
        rc = conf_load_file(&c, args->config_path, err, errlen);
        if (rc != 0)
            return rc;
    }
    rc = conf_args_apply(&c, args, err, errlen);
    if (rc != 0)
        return rc;
    if (c.data_dir[0] == '\0') {
        rc = conf_default_data_dir(c.data_dir, sizeof(c.data_dir), geteuid() == 0,
                                   getenv("XDG_DATA_HOME"), getenv("HOME"));
        if (rc != 0) {
            p2p_errf(err, errlen, "no data directory: set --data-dir, data_dir, or $HOME");
            return rc;
        }
    }
    if (c.control[0] == '\0' &&
        conf_default_control(c.control, sizeof(c.control), c.data_dir) != 0) {
        p2p_errf(err, errlen, "control: %s/%s is too long for a socket path; set --control",
                 c.data_dir, CONF_CONTROL_NAME);
        return -EINVAL;
    }
    rc = conf_check(&c, err, errlen);
    if (rc != 0)
        return rc;
    *out = c;
    return 0;
}

void conf_usage(FILE *f, const char *prog, const char *default_data_dir)
{
    fprintf(f,
            "Usage: %s [options]\n"
            "A peer-to-peer SIP node: a registrar and proxy for the softphones on this host.\n"
            "Nodes on different hosts form one overlay (a DHT) and carry calls between them.\n"
            "\n"
            "  -s, --server           start a new overlay (a bootstrap super-node); without\n"
            "                         -s or -S the node finds one by LAN multicast\n"
            "                         (a restarted node first tries the peers it saved)\n"
            "  -d, --verbose          log at debug level and trace every SIP and DHT message\n"
            "  -p, --sip-port PORT    SIP port, UDP and TCP (default %d)\n"
            "  -P, --p2p-port PORT    P2P port, UDP and TCP (default %d; 0 = any free port);\n"
            "                         turns multicast discovery off, as in the seed\n"
            "  -S, --servers LIST     bootstrap nodes, host:port,... ([v6addr]:port for IPv6)\n"
            "      --listen ADDRS     addresses to serve SIP on, comma-separated, IPv4 or IPv6\n"
            "                         (default 127.0.0.1: phones on this host only)\n"
            "      --config FILE      read settings from FILE; the command line overrides it\n"
            "                         (default: no file, built-in defaults)\n"
            "      --data-dir DIR     database directory (default here: %s;\n"
            "                         root: /var/lib/p2psip, else $XDG_DATA_HOME/p2psip or\n"
            "                         ~/.local/share/p2psip)\n"
            "      --control PATH     control socket for p2psipctl(1), mode 0600\n"
            "                         (default: DIR/control.sock in the data directory)\n"
            "      --metrics-listen [ADDR:]PORT\n"
            "                         serve Prometheus metrics over HTTP at /metrics on\n"
            "                         ADDR:PORT (a bare PORT: 127.0.0.1; default: off)\n"
            "      --accounts FILE    digest accounts file; without one only phones on this\n"
            "                         host may register\n"
            "      --trace-pcap FILE  write every DHT message sent and received, decrypted,\n"
            "                         to FILE (pcap, mode 0600; at most log.trace_pcap_max\n"
            "                         MiB), for Wireshark with the p2psip dissector; a\n"
            "                         debugging aid: FILE holds overlay traffic in clear\n"
            "      --print-config     print the effective configuration and exit\n"
            "  -h, --help             this text\n"
            "  -V, --version          version\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop (bindings are kept in the database), SIGHUP\n"
            "re-reads the configuration and accounts files (log, auth and registrar limits\n"
            "change at once, others need a restart).  See p2psipd(8).\n",
            prog, CONF_DEFAULT_SIP_PORT, CONF_DEFAULT_P2P_PORT,
            default_data_dir ? default_data_dir : "none");
}
