/*
 * metrics.c: latency histograms and the Prometheus text exposition (metrics.h).
 */
#include "p2p/metrics.h"

#include <errno.h>
#include <string.h>

uint64_t p2p_hist_bound_us(unsigned i)
{
    return (uint64_t)P2P_HIST_FIRST_US << i;
}

unsigned p2p_hist_bucket(uint64_t us)
{
    uint64_t q;
    unsigned bits;

    if (us <= P2P_HIST_FIRST_US)
        return 0;
    /* (us - 1) / 250 has bit length i exactly when 250 << (i-1) < us <= 250 << i. */
    q = (us - 1) / P2P_HIST_FIRST_US;
    bits = 64 - (unsigned)__builtin_clzll(q);
    return bits < P2P_HIST_BUCKETS ? bits : P2P_HIST_BUCKETS;
}

void p2p_hist_observe(struct p2p_hist *h, uint64_t us)
{
    h->counts[p2p_hist_bucket(us)]++;
    h->count++;
    h->sum_us += us;
}

int p2p_prom_header(struct p2p_buf *b, const char *name, const char *type, const char *help)
{
    return p2p_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int p2p_prom_sample(struct p2p_buf *b, const char *name, const char *labels, uint64_t value)
{
    if (labels == NULL || labels[0] == '\0')
        return p2p_buf_printf(b, "%s %llu\n", name, (unsigned long long)value);
    return p2p_buf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
}

int p2p_hist_write(struct p2p_buf *b, const char *name, const char *labels,
                   const struct p2p_hist *h)
{
    const char *sep = labels != NULL && labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;
    int rc = 0;

    if (labels == NULL)
        labels = "";
    for (unsigned i = 0; rc == 0 && i < P2P_HIST_BUCKETS; i++) {
        uint64_t us = p2p_hist_bound_us(i);
        cum += h->counts[i];
        /* The bound in seconds, exactly: every bound is a whole number of us. */
        rc = p2p_buf_printf(b, "%s_bucket{%s%sle=\"%llu.%06llu\"} %llu\n", name, labels, sep,
                            (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000),
                            (unsigned long long)cum);
    }
    if (rc == 0)
        rc = p2p_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                            (unsigned long long)h->count);
    if (rc == 0)
        rc = p2p_buf_printf(b, "%s_sum%s%s%s %llu.%06llu\n", name, labels[0] ? "{" : "", labels,
                            labels[0] ? "}" : "", (unsigned long long)(h->sum_us / 1000000),
                            (unsigned long long)(h->sum_us % 1000000));
    if (rc == 0)
        rc = p2p_buf_printf(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                            labels[0] ? "}" : "", (unsigned long long)h->count);
    return rc;
}

int p2p_prom_label_value(const char *v, char *out, size_t size)
{
    size_t o = 0;

    if (size == 0)
        return -ENOSPC;
    for (; *v != '\0'; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        size_t n = esc != NULL ? 2 : 1;
        if (o + n >= size) {
            out[o] = '\0';
            return -ENOSPC;
        }
        if (esc != NULL)
            memcpy(out + o, esc, 2);
        else
            out[o] = *v;
        o += n;
    }
    out[o] = '\0';
    return 0;
}
