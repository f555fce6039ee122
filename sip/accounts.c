/*
 * accounts.c: loads the accounts file (format in sip_accounts.h).
 *
 * Design: one pass over the text, one line at a time, each line bounded by
 * SIP_ACCOUNTS_LINE_MAX before it is looked at.  Each account is one allocation
 * holding its strings; the table is an array sorted by canonical AoR and searched
 * with bsearch, since it never changes after loading.
 *
 * Invariants: every entry's aor is canonical (sip_uri), unique in the table, and
 * its secret is well-formed for its kind.
 */
#include "p2p/sip_accounts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/sip_uri.h"

struct sip_accounts {
    struct sip_account **v; /* sorted by aor */
    size_t n;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool has_prefix(struct p2p_slice s, const char *pfx, size_t n)
{
    return s.len >= n && memcmp(s.p, pfx, n) == 0;
}

static int cmp_aor(const void *a, const void *b)
{
    const struct sip_account *x = *(const struct sip_account *const *)a;
    const struct sip_account *y = *(const struct sip_account *const *)b;
    return strcmp(x->aor, y->aor);
}

/* Builds one account: a single allocation holding the struct and its strings. */
static struct sip_account *account_new(const char *aor, struct p2p_slice user,
                                       enum sip_secret_kind kind, struct p2p_slice secret)
{
    size_t alen = strlen(aor);
    struct sip_account *a = malloc(sizeof(*a) + alen + 1 + user.len + 1 + secret.len + 1);
    char *p;

    if (!a)
        return NULL;
    p = (char *)(a + 1);
    memcpy(p, aor, alen + 1);
    a->aor = p;
    p += alen + 1;
    if (user.len)
        memcpy(p, user.p, user.len);
    p[user.len] = '\0';
    a->user = p;
    p += user.len + 1;
    for (size_t i = 0; i < secret.len; i++) {
        char c = secret.p[i];
        /* HA1 hex is stored lower-case so that comparisons are plain strcmp. */
        if (kind != SIP_SECRET_PASSWORD && c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        p[i] = c;
    }
    p[secret.len] = '\0';
    a->secret = p;
    a->kind = kind;
    return a;
}

/* Parses one non-empty, non-comment line into a new account. */
static int parse_line(struct p2p_slice line, struct sip_account **out, const char **why)
{
    size_t i = 0;
    struct p2p_slice aor_s, secret;
    struct sip_uri uri;
    char aor[SIP_ACCOUNTS_LINE_MAX + 1];
    enum sip_secret_kind kind = SIP_SECRET_PASSWORD;

    while (i < line.len && line.p[i] != ' ' && line.p[i] != '\t')
        i++;
    aor_s = (struct p2p_slice){line.p, i};
    secret = p2p_slice_trim((struct p2p_slice){line.p + i, line.len - i});
    if (secret.len == 0) {
        *why = "missing secret after the AoR";
        return -EINVAL;
    }
    if (sip_uri_parse(aor_s, &uri) != 0) {
        *why = "AoR is not a valid SIP URI";
        return -EINVAL;
    }
    if (uri.user.len == 0) {
        *why = "AoR has no user part";
        return -EINVAL;
    }
    if (sip_uri_aor(&uri, aor, sizeof(aor)) < 0) {
        *why = "AoR too long";
        return -EINVAL;
    }
    if (has_prefix(secret, "HA1-md5:", 8)) {
        secret.p += 8;
        secret.len -= 8;
        if (secret.len != 32 || !p2p_slice_is_hex(secret)) {
            *why = "HA1-md5 needs 32 hex digits";
            return -EINVAL;
        }
        kind = SIP_SECRET_HA1_MD5;
    } else if (has_prefix(secret, "HA1-sha256:", 11)) {
        secret.p += 11;
        secret.len -= 11;
        if (secret.len != 64 || !p2p_slice_is_hex(secret)) {
            *why = "HA1-sha256 needs 64 hex digits";
            return -EINVAL;
        }
        kind = SIP_SECRET_HA1_SHA256;
    } else if (has_prefix(secret, "HA1-", 4)) {
        *why = "unknown HA1 algorithm (HA1-md5: or HA1-sha256:)";
        return -EINVAL;
    }
    *out = account_new(aor, uri.user, kind, secret);
    if (!*out) {
        *why = "out of memory";
        return -ENOMEM;
    }
    return 0;
}

int sip_accounts_parse(struct sip_accounts **out, const char *name, const char *text, size_t len,
                       char *err, size_t errlen)
{
    struct sip_accounts *acc = calloc(1, sizeof(*acc));
    size_t cap = 0, pos = 0, lineno = 0;
    int r = 0;

    if (!acc)
        return -ENOMEM;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        struct p2p_slice line = {text + pos, end - pos};
        struct sip_account *a = NULL;
        const char *why = NULL;

        lineno++;
        pos = nl ? end + 1 : len;
        if (line.len > SIP_ACCOUNTS_LINE_MAX) {
            seterr(err, errlen, "%s:%zu: line longer than %d bytes", name, lineno,
                   SIP_ACCOUNTS_LINE_MAX);
            r = -EINVAL;
            goto out;
        }
        line = p2p_slice_trim(line);
        if (line.len == 0 || line.p[0] == '#')
            continue;
        if (acc->n == SIP_ACCOUNTS_MAX) {
            seterr(err, errlen, "%s:%zu: more than %d accounts", name, lineno, SIP_ACCOUNTS_MAX);
            r = -E2BIG;
            goto out;
        }
        r = parse_line(line, &a, &why);
        if (r != 0) {
            seterr(err, errlen, "%s:%zu: %s", name, lineno, why);
            goto out;
        }
        if (acc->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct sip_account **nv = realloc(acc->v, ncap * sizeof(*nv));
            if (!nv) {
                free(a);
                seterr(err, errlen, "%s:%zu: out of memory", name, lineno);
                r = -ENOMEM;
                goto out;
            }
            acc->v = nv;
            cap = ncap;
        }
        acc->v[acc->n++] = a;
    }
    qsort(acc->v, acc->n, sizeof(*acc->v), cmp_aor);
    for (size_t i = 1; i < acc->n; i++) {
        if (strcmp(acc->v[i - 1]->aor, acc->v[i]->aor) == 0) {
            seterr(err, errlen, "%s: account %s listed twice", name, acc->v[i]->aor);
            r = -EINVAL;
            goto out;
        }
    }
out:
    if (r != 0) {
        sip_accounts_free(acc);
        return r;
    }
    *out = acc;
    return 0;
}

int sip_accounts_load(struct sip_accounts **out, const char *path, char *err, size_t errlen)
{
    /* Generous bound on the file: every allowed account on a maximal line. */
    const size_t max = (size_t)SIP_ACCOUNTS_MAX * (SIP_ACCOUNTS_LINE_MAX + 1);
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0;
    int r;

    if (!f) {
        r = -errno;
        seterr(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }
    for (;;) {
        size_t got;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nt;
            if (cap >= max) {
                seterr(err, errlen, "%s: file too large", path);
                r = -E2BIG;
                goto out;
            }
            nt = realloc(text, ncap);
            if (!nt) {
                r = -ENOMEM;
                seterr(err, errlen, "%s: out of memory", path);
                goto out;
            }
            text = nt;
            cap = ncap;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                r = -EIO;
                seterr(err, errlen, "%s: read error", path);
                goto out;
            }
            break;
        }
    }
    r = sip_accounts_parse(out, path, text, len, err, errlen);
out:
    free(text);
    fclose(f);
    return r;
}

void sip_accounts_free(struct sip_accounts *acc)
{
    if (!acc)
        return;
    for (size_t i = 0; i < acc->n; i++)
        free(acc->v[i]);
    free(acc->v);
    free(acc);
}

size_t sip_accounts_count(const struct sip_accounts *acc)
{
    return acc->n;
}

const struct sip_account *sip_accounts_find(const struct sip_accounts *acc, struct p2p_slice aor)
{
    size_t lo = 0, hi = acc->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = acc->v[mid]->aor;
        size_t klen = strlen(k);
        size_t n = klen < aor.len ? klen : aor.len;
        int c = n ? memcmp(k, aor.p, n) : 0;
        if (c == 0)
            c = klen < aor.len ? -1 : (klen > aor.len ? 1 : 0);
        if (c == 0)
            return acc->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
