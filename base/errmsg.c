/*
 * errmsg.c: see errmsg.h.
 */
#include "p2p/errmsg.h"

#include <stdarg.h>
#include <stdio.h>

void p2p_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
