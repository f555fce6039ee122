/*
 * buf.c: bounded growable buffer.
 *
 * Invariant: len <= alloc <= cap.  Growth doubles, clamped to the cap, so a buffer
 * costs at most cap bytes whatever a peer sends.
 */
#include "p2p/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void p2p_buf_init(struct p2p_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void p2p_buf_free(struct p2p_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

static int reserve(struct p2p_buf *b, size_t need)
{
    size_t n;
    char *p;

    if (need > b->cap)
        return -EMSGSIZE;
    if (need <= b->alloc)
        return 0;
    n = b->alloc ? b->alloc : 256;
    while (n < need)
        n = n > b->cap / 2 ? b->cap : n * 2;
    if (n > b->cap)
        n = b->cap;
    p = realloc(b->data, n);
    if (p == NULL)
        return -ENOMEM;
    b->data = p;
    b->alloc = n;
    return 0;
}

int p2p_buf_append(struct p2p_buf *b, const void *p, size_t n)
{
    int err;

    if (n == 0)
        return 0;
    if (n > b->cap - b->len)
        return -EMSGSIZE;
    err = reserve(b, b->len + n);
    if (err)
        return err;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int p2p_buf_printf(struct p2p_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, err;
    size_t room;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n > b->cap - b->len)
        return -EMSGSIZE;
    /* vsnprintf writes a NUL after the text, so reserve one byte more if we can. */
    room = (size_t)n + 1;
    if (room > b->cap - b->len) {
        char tmp[512];
        char *t = (size_t)n < sizeof(tmp) ? tmp : malloc((size_t)n + 1);
        if (t == NULL)
            return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(t, (size_t)n + 1, fmt, ap);
        va_end(ap);
        err = p2p_buf_append(b, t, (size_t)n);
        if (t != tmp)
            free(t);
        return err;
    }
    err = reserve(b, b->len + room);
    if (err)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void p2p_buf_consume(struct p2p_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void p2p_buf_reset(struct p2p_buf *b)
{
    b->len = 0;
}
