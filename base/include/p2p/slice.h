/*
 * slice.h: a pointer and a length into someone else's buffer.
 *
 * Parsers hand out slices into the bytes they were given instead of copying or
 * NUL-terminating (picohttpparser, libre's struct pl).  A slice never owns memory;
 * it is valid as long as the buffer it points into.  An empty slice has len 0 and
 * may have p == NULL.
 */
#ifndef P2P_SLICE_H
#define P2P_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct p2p_slice {
    const char *p;
    size_t len;
};

#define P2P_SLICE_LIT(s) ((struct p2p_slice){(s), sizeof(s) - 1})

/* A slice over a NUL-terminated string (NULL gives the empty slice). */
struct p2p_slice p2p_slice_cstr(const char *s);

/* Byte-exact comparison. */
bool p2p_slice_eq(struct p2p_slice a, struct p2p_slice b);

/* ASCII case-insensitive comparison, as SIP tokens and header names compare. */
bool p2p_slice_caseeq(struct p2p_slice a, struct p2p_slice b);
bool p2p_slice_caseeq_cstr(struct p2p_slice a, const char *s);

/* Removes leading and trailing SP / HTAB / CR / LF. */
struct p2p_slice p2p_slice_trim(struct p2p_slice s);

/*
 * Parses an unsigned decimal number that must fill the whole slice.  Returns 0 and
 * writes *out, or -EINVAL for an empty slice or a non-digit, -ERANGE above max.
 */
int p2p_slice_to_u64(struct p2p_slice s, uint64_t max, uint64_t *out);

/* True when the slice is non-empty and every byte is a hex digit (either case). */
bool p2p_slice_is_hex(struct p2p_slice s);

/*
 * Copies the slice into dst as a NUL-terminated string.  Returns 0, or -ENOSPC
 * (dst untouched beyond dst[0] = '\0') when it does not fit in size bytes.
 */
int p2p_slice_copy(struct p2p_slice s, char *dst, size_t size);

#endif
