/*
 * log.c: levelled logging to stderr (with a monotonic-free wall timestamp) or syslog.
 */
/* vsyslog() is a BSD/glibc extension outside POSIX. */
#define _DEFAULT_SOURCE

#include "p2p/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *const level_names[] = {
    [P2P_LOG_ERR] = "err",   [P2P_LOG_WARN] = "warn",   [P2P_LOG_NOTICE] = "notice",
    [P2P_LOG_INFO] = "info", [P2P_LOG_DEBUG] = "debug",
};

void p2p_log_init(struct p2p_log *log, const char *ident, enum p2p_log_level level, bool use_syslog)
{
    log->ident = ident;
    log->level = level;
    log->use_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void p2p_log_close(struct p2p_log *log)
{
    if (log->use_syslog)
        closelog();
    log->use_syslog = false;
}

int p2p_log_level_parse(const char *name, enum p2p_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (level_names[i] && strcmp(level_names[i], name) == 0) {
            *out = (enum p2p_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool p2p_log_enabled(const struct p2p_log *log, enum p2p_log_level level)
{
    return log != NULL && level <= log->level;
}

void p2p_vlogf(const struct p2p_log *log, enum p2p_log_level level, const char *fmt, va_list ap)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];

    if (!p2p_log_enabled(log, level))
        return;
    if (log->use_syslog) {
        vsyslog((int)level, fmt, ap);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld %s %s: ", stamp, ts.tv_nsec / 1000000L,
            log->ident ? log->ident : "p2p", level_names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void p2p_logf(const struct p2p_log *log, enum p2p_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    p2p_vlogf(log, level, fmt, ap);
    va_end(ap);
}
