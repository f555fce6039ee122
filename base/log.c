/*
 * log.c: levelled logging to stderr (with a monotonic-free wall timestamp) or syslog,
 * and the per-category rate limiter for lines a peer can cause (log.h).
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
    log->limit_burst = P2P_LOG_BURST_DEFAULT;
    log->limit_rate = P2P_LOG_RATE_DEFAULT;
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

bool p2p_log_limit_take(struct p2p_log_limit *l, unsigned burst, unsigned rate, uint64_t now_ms,
                        uint64_t *announce)
{
    uint64_t cap = (uint64_t)(burst > 0 ? burst : 1) * 1000;

    if (rate == 0)
        rate = 1;
    if (!l->started) {
        l->started = true;
        l->credit = cap;
        l->last_ms = now_ms;
    } else if (now_ms > l->last_ms) {
        /* ms * lines/s = thousandths of a line; past cap ms the bucket is full
         * anyway, which also keeps the product from overflowing. */
        uint64_t dt = now_ms - l->last_ms;
        uint64_t add = dt > cap ? cap : dt * rate;
        l->credit = add >= cap - l->credit ? cap : l->credit + add;
        l->last_ms = now_ms;
    }
    if (l->credit < 1000) {
        l->suppressed++;
        return false;
    }
    l->credit -= 1000;
    *announce = l->suppressed;
    l->suppressed = 0;
    return true;
}

void p2p_logf_limited(const struct p2p_log *log, struct p2p_log_limit *l, uint64_t now_ms,
                      enum p2p_log_level level, const char *fmt, ...)
{
    uint64_t dropped = 0;
    va_list ap;

    if (!p2p_log_enabled(log, level) ||
        !p2p_log_limit_take(l, log->limit_burst, log->limit_rate, now_ms, &dropped))
        return;
    if (dropped > 0)
        p2p_logf(log, level, "%s: %llu messages suppressed", l->name != NULL ? l->name : "log",
                 (unsigned long long)dropped);
    va_start(ap, fmt);
    p2p_vlogf(log, level, fmt, ap);
    va_end(ap);
}
