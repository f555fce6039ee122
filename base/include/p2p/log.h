/*
 * log.h: levelled logging to stderr or syslog.
 *
 * A struct p2p_log is owned by main() and passed to the modules that log (the pure
 * libraries sip/ and dht/ do not log: they return errors and count).  There is no
 * global logger, so two daemons in one test process keep separate logs.
 */
#ifndef P2P_LOG_H
#define P2P_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum p2p_log_level {
    P2P_LOG_ERR = 3,
    P2P_LOG_WARN = 4,
    P2P_LOG_NOTICE = 5,
    P2P_LOG_INFO = 6,
    P2P_LOG_DEBUG = 7,
};

struct p2p_log {
    enum p2p_log_level level; /* messages above this level are discarded */
    bool use_syslog;
    const char *ident; /* prefix on stderr, ident for syslog */
};

void p2p_log_init(struct p2p_log *log, const char *ident, enum p2p_log_level level,
                  bool use_syslog);
void p2p_log_close(struct p2p_log *log);

/* Parses "err", "warn", "notice", "info", "debug".  Returns 0 or -EINVAL. */
int p2p_log_level_parse(const char *name, enum p2p_log_level *out);

bool p2p_log_enabled(const struct p2p_log *log, enum p2p_log_level level);

/* log may be NULL: the message is dropped. */
void p2p_logf(const struct p2p_log *log, enum p2p_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void p2p_vlogf(const struct p2p_log *log, enum p2p_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define p2p_err(log, ...) p2p_logf((log), P2P_LOG_ERR, __VA_ARGS__)
#define p2p_warn(log, ...) p2p_logf((log), P2P_LOG_WARN, __VA_ARGS__)
#define p2p_notice(log, ...) p2p_logf((log), P2P_LOG_NOTICE, __VA_ARGS__)
#define p2p_info(log, ...) p2p_logf((log), P2P_LOG_INFO, __VA_ARGS__)
#define p2p_debug(log, ...) p2p_logf((log), P2P_LOG_DEBUG, __VA_ARGS__)

#endif
