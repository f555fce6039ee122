/*
 * buf.h: a growable byte buffer with a hard cap, fixed at creation.
 *
 * Every buffer fed by the network is created with its cap (curl's dynbuf): an
 * append that would pass the cap fails with -EMSGSIZE and leaves the contents as
 * they were, so a peer can never make us allocate without bound.
 */
#ifndef P2P_BUF_H
#define P2P_BUF_H

#include <stddef.h>

struct p2p_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap;
};

/* Initialises an empty buffer that will never hold more than cap bytes. */
void p2p_buf_init(struct p2p_buf *b, size_t cap);

/* Frees the storage; the buffer is empty and reusable afterwards. */
void p2p_buf_free(struct p2p_buf *b);

/* Appends n bytes.  Returns 0, -EMSGSIZE past the cap, or -ENOMEM. */
int p2p_buf_append(struct p2p_buf *b, const void *p, size_t n);

/* printf-style append, same errors; -EINVAL on an encoding error. */
int p2p_buf_printf(struct p2p_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void p2p_buf_consume(struct p2p_buf *b, size_t n);

/* Empties the buffer without freeing its storage. */
void p2p_buf_reset(struct p2p_buf *b);

#endif
