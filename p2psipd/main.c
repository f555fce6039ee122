/*
 * main.c: p2psipd's entry point: command line, configuration, log, loop.
 *
 * Exit status: 0 after a clean stop (SIGTERM/SIGINT) or --help/--version/
 * --print-config; 2 for a command-line error; 1 when the node cannot start (bad
 * configuration, data directory in use, port taken) or did not shut down cleanly
 * (uv_loop_close() found a handle still open).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "p2p/buf.h"
#include "p2p/conf.h"
#include "p2p/log.h"
#include "p2psipd.h"

#ifndef P2PSIPD_VERSION
#define P2PSIPD_VERSION "unknown"
#endif

static int print_config(const struct conf *c)
{
    struct p2p_buf b;
    int rc;

    p2p_buf_init(&b, 1 << 20);
    rc = conf_format(c, &b);
    if (rc == 0 && fwrite(b.data, 1, b.len, stdout) != b.len)
        rc = -EIO;
    p2p_buf_free(&b);
    return rc;
}

int main(int argc, char **argv)
{
    static const char prog[] = "p2psipd";
    struct conf_args args;
    struct conf conf;
    struct p2p_log log;
    struct p2psipd d;
    struct sigaction sa;
    uv_loop_t loop;
    char err[CONF_ERR_MAX];
    int rc, status = 0;

    if (conf_args_parse(&args, argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, err, prog);
        return 2;
    }
    if (args.help) {
        char dir[CONF_PATH_MAX];
        if (conf_default_data_dir(dir, sizeof(dir), geteuid() == 0, getenv("XDG_DATA_HOME"),
                                  getenv("HOME")) != 0)
            dir[0] = '\0';
        conf_usage(stdout, prog, dir[0] ? dir : NULL);
        return 0;
    }
    if (args.version) {
        printf("%s %s\n", prog, P2PSIPD_VERSION);
        return 0;
    }
    if (conf_build(&conf, &args, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    if (args.print_config)
        return print_config(&conf) == 0 ? 0 : 1;

    /* A phone closing its TCP connection must not kill the node with SIGPIPE. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        fprintf(stderr, "%s: sigaction(SIGPIPE): %s\n", prog, strerror(errno));
        return 1;
    }

    /* Once, before any thread or module draws random bytes (nonces, branches, keys). */
    if (sodium_init() < 0) {
        fprintf(stderr, "%s: libsodium cannot initialise\n", prog);
        return 1;
    }
    p2p_log_init(&log, prog, conf.log.level, conf.log.syslog);
    log.limit_burst = conf.log.burst;
    log.limit_rate = conf.log.rate;
    rc = uv_loop_init(&loop);
    if (rc != 0) {
        p2p_err(&log, "uv_loop_init: %s", uv_strerror(rc));
        p2p_log_close(&log);
        return 1;
    }
    rc = p2psipd_start(&d, &loop, &log, &conf, &args);
    if (rc == 0) {
        p2p_notice(&log, "%s %s running: data directory %s", prog, P2PSIPD_VERSION, conf.data_dir);
    } else {
        status = 1;
    }
    /* Runs until every handle is closed: after a stop, or at once after a failed start
     * (which closes what it opened). */
    rc = uv_run(&loop, UV_RUN_DEFAULT);
    p2psipd_free(&d);
    rc = uv_loop_close(&loop);
    if (rc != 0) {
        p2p_err(&log, "uv_loop_close: %s (a handle was left open)", uv_strerror(rc));
        status = 1;
    } else if (status == 0) {
        p2p_notice(&log, "stopped");
    }
    p2p_log_close(&log);
    return status;
}
