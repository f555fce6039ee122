/*
 * errmsg.h: filling a caller's error-message buffer.
 *
 * Functions that can fail on user input (a config line, a command-line option, a
 * database file) take `char *err, size_t errlen` and describe the problem there,
 * besides returning -errno.  This is the one formatter they share.
 */
#ifndef P2P_ERRMSG_H
#define P2P_ERRMSG_H

#include <stddef.h>

/* printf into err (always NUL-terminated, truncated to errlen); err NULL or errlen 0:
 * nothing is written. */
void p2p_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
