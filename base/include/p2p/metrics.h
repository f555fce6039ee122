/*
 * metrics.h: latency histograms and the Prometheus text exposition format.
 *
 * Design.  A struct p2p_hist has fixed, log-spaced buckets: bucket i counts the
 * observations of at most 250 us << i (250 us, 500 us, 1 ms, ... 32.768 s), and one
 * more counts the rest (only in +Inf).  Observing is O(1) (the bucket is the bit
 * length of (us - 1) / 250, no search) and allocates nothing; the struct is plain
 * data, embedded where the latency is known.  Counts are kept per bucket and made
 * cumulative when written.  Durations are microseconds from a monotonic clock
 * (uv_hrtime() / 1000), never the wall clock.
 *
 * The writers append Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) to a capped
 * p2p_buf: "# HELP" and "# TYPE" lines, then samples `name{labels} value`.  Labels
 * are passed already formatted (`type="PUT",dir="sent"`); their values come from
 * the program's own tables, and p2p_prom_label_value() escapes one that may not.
 *
 * Invariants: no global state; every write returns the p2p_buf error (-EMSGSIZE at
 * the cap, -ENOMEM) and may then have appended part of its lines.
 */
#ifndef P2P_METRICS_H
#define P2P_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "p2p/buf.h"

#define P2P_HIST_BUCKETS 18    /* finite buckets: 250 us << 0 .. 17 */
#define P2P_HIST_FIRST_US 250u /* upper bound of the first bucket */

struct p2p_hist {
    uint64_t counts[P2P_HIST_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    uint64_t sum_us;
};

/* The upper bound of finite bucket i (< P2P_HIST_BUCKETS), in microseconds. */
uint64_t p2p_hist_bound_us(unsigned i);

/* The bucket an observation of us microseconds falls into (P2P_HIST_BUCKETS: +Inf). */
unsigned p2p_hist_bucket(uint64_t us);

/* Counts one observation of us microseconds.  O(1). */
void p2p_hist_observe(struct p2p_hist *h, uint64_t us);

/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, histogram).  help
 * may not hold a newline or a backslash (it is the program's own text). */
int p2p_prom_header(struct p2p_buf *b, const char *name, const char *type, const char *help);

/* One sample: "name value" or "name{labels} value"; labels may be NULL or "". */
int p2p_prom_sample(struct p2p_buf *b, const char *name, const char *labels, uint64_t value);

/*
 * The samples of histogram h: name_bucket{labels,le="..."} for each bound in
 * seconds and "+Inf" (cumulative), then name_sum (seconds) and name_count.  The
 * HELP/TYPE lines are the caller's (one per metric name, however many label sets).
 */
int p2p_hist_write(struct p2p_buf *b, const char *name, const char *labels,
                   const struct p2p_hist *h);

/*
 * Writes v escaped as a label value (backslash, double quote and newline as \\, \"
 * and \n) into out (size bytes, always NUL-terminated when size > 0).  Returns 0, or
 * -ENOSPC when it does not fit (out then holds a shortened, still valid value).
 */
int p2p_prom_label_value(const char *v, char *out, size_t size);

#endif
