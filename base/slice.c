/*
 * slice.c: comparisons and conversions on struct p2p_slice.
 *
 * Nothing here assumes a NUL terminator: every loop is bounded by the slice length.
 */
#include "p2p/slice.h"

#include <errno.h>
#include <string.h>

struct p2p_slice p2p_slice_cstr(const char *s)
{
    struct p2p_slice r = {s, s ? strlen(s) : 0};
    return r;
}

bool p2p_slice_eq(struct p2p_slice a, struct p2p_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

bool p2p_slice_caseeq(struct p2p_slice a, struct p2p_slice b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
            return false;
    }
    return true;
}

bool p2p_slice_caseeq_cstr(struct p2p_slice a, const char *s)
{
    return p2p_slice_caseeq(a, p2p_slice_cstr(s));
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct p2p_slice p2p_slice_trim(struct p2p_slice s)
{
    while (s.len > 0 && is_ws(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && is_ws(s.p[s.len - 1]))
        s.len--;
    return s;
}

int p2p_slice_to_u64(struct p2p_slice s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s.len == 0)
        return -EINVAL;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9)
            return -EINVAL;
        if (v > (max - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

bool p2p_slice_is_hex(struct p2p_slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

int p2p_slice_copy(struct p2p_slice s, char *dst, size_t size)
{
    if (size == 0)
        return -ENOSPC;
    if (s.len >= size) {
        dst[0] = '\0';
        return -ENOSPC;
    }
    if (s.len)
        memcpy(dst, s.p, s.len);
    dst[s.len] = '\0';
    return 0;
}
