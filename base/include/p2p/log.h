/*
 * log.h: levelled logging to stderr or syslog.
 *
 * A struct p2p_log is owned by main() and passed to the modules that log (the pure
 * libraries sip/ and dht/ do not log: they return errors and count).  There is no
 * global logger, so two daemons in one test process keep separate logs.
 *
 * Lines a peer can cause (anything reachable from network input at info level or
 * above) go through a rate limiter, so that no input can make the log grow faster
 * than a fixed rate: a token bucket (struct p2p_log_limit) per category, owned by
 * the object whose input it is (the overlay node, the SIP transport, the daemon),
 * never a static.  Each category may write `burst` lines at once and then `rate`
 * lines a second; what it drops is counted, and the first line it writes again is
 * preceded by "<category>: N messages suppressed".  So a category writes at most
 * 2 * (burst + rate * T) lines in T seconds, whatever arrives.
 */
#ifndef P2P_LOG_H
#define P2P_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum p2p_log_level {
    P2P_LOG_ERR = 3,
    P2P_LOG_WARN = 4,
    P2P_LOG_NOTICE = 5,
    P2P_LOG_INFO = 6,
    P2P_LOG_DEBUG = 7,
};

/* Defaults of the rate limit (the configuration's log.burst and log.rate). */
#define P2P_LOG_BURST_DEFAULT 20
#define P2P_LOG_RATE_DEFAULT 2

struct p2p_log {
    enum p2p_log_level level; /* messages above this level are discarded */
    bool use_syslog;
    const char *ident;    /* prefix on stderr, ident for syslog */
    unsigned limit_burst; /* rate-limited lines: at once, per category (>= 1) */
    unsigned limit_rate;  /* and then per second (>= 1) */
};

/*
 * One category's token bucket.  Zero-initialised it is full (the first use fills
 * it); name (may be NULL: "log") says whose lines a "suppressed" line counts, and
 * must outlive the struct (a literal).  Credit is in thousandths of a line, so that
 * integer arithmetic refills it exactly at any rate.
 */
struct p2p_log_limit {
    const char *name;
    uint64_t last_ms;    /* the clock at the last refill */
    uint64_t credit;     /* thousandths of a line */
    uint64_t suppressed; /* lines dropped since the last one written */
    bool started;
};

/* Sets every field; the rate limit gets its defaults. */
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

/*
 * The token bucket alone, for tests and for callers that build their line otherwise.
 * now_ms is any monotonic millisecond clock (uv_now(); a test's fake one): a clock
 * that goes back refills nothing.  Returns true when one more line may be written
 * (and takes its token); then *announce is the count of lines dropped before it
 * (to be told first) and the count restarts.  Returns false and counts the line
 * otherwise.  burst and rate are taken as at least 1.
 */
bool p2p_log_limit_take(struct p2p_log_limit *l, unsigned burst, unsigned rate, uint64_t now_ms,
                        uint64_t *announce);

/*
 * p2p_logf() behind l, with log's burst and rate: a line below the log's level is
 * neither written nor counted; one over the limit is counted and dropped; the first
 * one that goes after drops is preceded by "<name>: N messages suppressed" at the
 * same level.  log may be NULL (nothing happens).
 */
void p2p_logf_limited(const struct p2p_log *log, struct p2p_log_limit *l, uint64_t now_ms,
                      enum p2p_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define p2p_err(log, ...) p2p_logf((log), P2P_LOG_ERR, __VA_ARGS__)
#define p2p_warn(log, ...) p2p_logf((log), P2P_LOG_WARN, __VA_ARGS__)
#define p2p_notice(log, ...) p2p_logf((log), P2P_LOG_NOTICE, __VA_ARGS__)
#define p2p_info(log, ...) p2p_logf((log), P2P_LOG_INFO, __VA_ARGS__)
#define p2p_debug(log, ...) p2p_logf((log), P2P_LOG_DEBUG, __VA_ARGS__)

/* Rate-limited forms, for lines a peer can cause: (log, limit, now_ms, fmt, ...). */
#define p2p_warn_rl(log, l, now, ...) p2p_logf_limited((log), (l), (now), P2P_LOG_WARN, __VA_ARGS__)
#define p2p_notice_rl(log, l, now, ...)                                                            \
    p2p_logf_limited((log), (l), (now), P2P_LOG_NOTICE, __VA_ARGS__)
#define p2p_info_rl(log, l, now, ...) p2p_logf_limited((log), (l), (now), P2P_LOG_INFO, __VA_ARGS__)

#endif
