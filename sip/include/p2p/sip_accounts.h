/*
 * sip_accounts.h: the accounts file that digest authentication checks against.
 *
 * Format (UTF-8 text, one account per line):
 *
 *     # comment lines and blank lines are ignored
 *     sip:alice@example.org   s3cret password with spaces
 *     sip:bob@example.org     HA1-md5:0123456789abcdef0123456789abcdef
 *     sip:carol@example.org   HA1-sha256:<64 hex digits>
 *
 * The first field is the address of record (any SIP or SIPS URI; it is stored in
 * its canonical form, RFC 3261 19.1.4, so "sip:Alice@EXAMPLE.org" and
 * "sip:Alice@example.org" name the same account, while the user part stays case
 * sensitive).  The digest username of the account is the user part of that URI.
 * The rest of the line, trimmed, is the secret: a plain password, or an HA1
 * (RFC 7616 3.4.2: H(username ":" realm ":" password)) prefixed with "HA1-md5:" or
 * "HA1-sha256:".  An HA1 is only valid for the realm it was computed with, which
 * must be the registrar's realm.  A password cannot begin with "HA1-".
 *
 * Limits: lines of at most SIP_ACCOUNTS_LINE_MAX bytes, at most SIP_ACCOUNTS_MAX
 * accounts; an AoR listed twice is an error.  Errors are reported as
 * "file:line: reason" in the caller's buffer.  The table is immutable once loaded,
 * so it can be swapped whole on a reload.
 */
#ifndef P2P_SIP_ACCOUNTS_H
#define P2P_SIP_ACCOUNTS_H

#include <stddef.h>

#include "p2p/slice.h"

#define SIP_ACCOUNTS_LINE_MAX 1024
#define SIP_ACCOUNTS_MAX 100000

struct sip_accounts;

enum sip_secret_kind {
    SIP_SECRET_PASSWORD,
    SIP_SECRET_HA1_MD5,   /* secret is 32 lower-case hex digits */
    SIP_SECRET_HA1_SHA256 /* secret is 64 lower-case hex digits */
};

struct sip_account {
    const char *aor;  /* canonical AoR, NUL-terminated */
    const char *user; /* digest username: the AoR's user part */
    enum sip_secret_kind kind;
    const char *secret; /* password or lower-case hex HA1 */
};

/*
 * Parses accounts from text (len bytes, no NUL needed); name is used in error
 * messages.  Returns 0 and a new table in *out, -EINVAL for a syntax error (the
 * reason, "name:line: ...", is written to err), -E2BIG past SIP_ACCOUNTS_MAX, or
 * -ENOMEM.
 */
int sip_accounts_parse(struct sip_accounts **out, const char *name, const char *text, size_t len,
                       char *err, size_t errlen);

/*
 * Reads and parses the file at path (at most SIP_ACCOUNTS_MAX lines' worth).
 * Returns as sip_accounts_parse, or the -errno of open/read (reason in err).
 */
int sip_accounts_load(struct sip_accounts **out, const char *path, char *err, size_t errlen);

void sip_accounts_free(struct sip_accounts *acc);

/* Number of accounts in the table. */
size_t sip_accounts_count(const struct sip_accounts *acc);

/*
 * Finds the account of a canonical AoR (as sip_uri's canonical form prints it).
 * Returns a pointer valid until sip_accounts_free, or NULL.
 */
const struct sip_account *sip_accounts_find(const struct sip_accounts *acc, struct p2p_slice aor);

#endif
