/*
 * sip_registrar.h: the SIP registrar (RFC 3261 10.3) of one node.
 *
 * The registrar keeps the node's local bindings in memory (hash table by
 * canonical AoR, bounded by max_aors and max_contacts), asks the locator to
 * publish every change, and answers the REGISTER only when that publish
 * completes: 200 listing all current bindings with their remaining expiry, or 503
 * with Retry-After when the binding could not be stored (never a silent 200).
 * Bindings expire on the registrar's clock: sip_registrar_advance(now_ms) drops
 * what is due, sip_registrar_next_deadline() says when to call it next.
 *
 * Known AoRs without contact (issue 3): an AoR whose last binding goes (expiry,
 * REGISTER removal, sip_registrar_remove) is remembered, without bindings, for
 * max_expires_s after that moment as the registrar's clock saw it (the highest
 * now_ms given to register/advance/restore), the longest any of its bindings could
 * have lived.  Meanwhile sip_registrar_lookup() answers 0 bindings (known, no
 * contact: the proxy's 480) instead of -ENOENT (404).  Remembered AoRs count
 * against max_aors and are dropped oldest first when a new AoR needs room, so a
 * REGISTER is refused 503 "Registrar full" only when live AoRs (or REGISTERs in
 * flight) fill the table.  An AoR that never held a binding is not remembered.
 * They are in memory only: a restart forgets them (not persisted, not given to
 * cfg->expired or sip_registrar_foreach).
 *
 * It does no I/O: a REGISTER comes in as a parsed, validated message with the
 * address it came from and an opaque transaction handle; the response leaves
 * through the reply callback with that handle.  Immediate answers (401, 423, 400,
 * 403...) are sent from inside sip_registrar_register(); the final answer to an
 * accepted REGISTER is sent from the locator's publish completion.
 *
 * Authentication: with an accounts table, digest (RFC 7616, MD5 and SHA-256)
 * through sip_digest, and the credentials must be those of the To AoR's account;
 * without one, only phones on this host (loopback or one of struct sip_self's
 * addresses) may register, as in the seed.
 *
 * Concurrency: one REGISTER per AoR is in flight at a time; another REGISTER for
 * the same AoR arriving before the publish completes gets 500 with Retry-After
 * (RFC 3261 21.5.1), which phones retry.
 */
#ifndef P2P_SIP_REGISTRAR_H
#define P2P_SIP_REGISTRAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/sip_locator.h"
#include "p2p/sip_msg.h"

struct sip_accounts;
struct sip_digest;
struct sip_registrar;

/*
 * Sends a response (len bytes, valid during the call only) on the server
 * transaction txn given to sip_registrar_register().
 */
typedef void (*sip_registrar_reply_cb)(void *txn, const char *msg, size_t len, void *arg);

/* A binding left the table by expiry (for the daemon's persistent copy). */
typedef void (*sip_registrar_expired_cb)(const struct sip_binding *b, void *arg);

struct sip_registrar_config {
    struct sip_locator locator;          /* where bindings are published */
    const struct sip_self *self;         /* our addresses, for the local-phone rule; kept */
    const struct sip_accounts *accounts; /* NULL: only local phones may register */
    struct sip_digest *digest;           /* required with accounts */
    const char *realm;                   /* digest realm, required with accounts */
    uint32_t default_expires_s;          /* without Expires anywhere (3600) */
    uint32_t min_expires_s;              /* below: 423 with Min-Expires (60) */
    uint32_t max_expires_s;              /* above: lowered to it; also how long an
                                            AoR is remembered (86400) */
    size_t max_aors;                     /* AoRs held, remembered ones too (100000) */
    size_t max_contacts;                 /* bindings per AoR (10, <= SIP_PUBLISH_MAX); 403 */
    uint32_t retry_after_s;              /* Retry-After of 500/503 answers (5) */
    sip_registrar_reply_cb reply;
    void *reply_arg;
    sip_registrar_expired_cb expired; /* may be NULL */
    void *expired_arg;
};

/* Fills cfg with the defaults above; locator, self and reply stay to be set. */
void sip_registrar_config_default(struct sip_registrar_config *cfg);

/*
 * Creates a registrar.  cfg is copied; what it points to (self, accounts,
 * digest, realm) must outlive the registrar.  Returns 0, -EINVAL (no reply
 * callback or locator, accounts without digest/realm, bad limits) or -ENOMEM.
 */
int sip_registrar_new(struct sip_registrar **out, const struct sip_registrar_config *cfg);

/*
 * Applies a new policy to a running registrar (the daemon's SIGHUP): accounts,
 * digest, realm, the expiry limits, max_aors, max_contacts and retry_after_s are
 * taken from cfg; locator, self, reply and expired keep their running values.
 * Bindings already held stay as they are until refreshed, even where they exceed a
 * lowered limit.  The old accounts table may be freed once this returns: the
 * registrar reads accounts only inside sip_registrar_register().  Returns 0, or
 * -EINVAL (same checks as sip_registrar_new) and nothing changes.
 */
int sip_registrar_reconfigure(struct sip_registrar *reg, const struct sip_registrar_config *cfg);

/*
 * Frees the registrar and its bindings.  Its locator's pending publishes must have
 * completed (sip_locator.h: shut the locator down first).  NULL is a no-op.
 */
void sip_registrar_free(struct sip_registrar *reg);

/*
 * Handles a REGISTER (RFC 3261 10.3) that passed sip_msg_validate() and whose
 * Request-URI names a domain of ours.  from is where it came from (its
 * received/rport and the binding's path).  Returns 0 when the registrar has
 * answered or will answer through reply(txn, ...) exactly once, unless
 * sip_registrar_forget() is called first; -ENOMEM or -EINVAL (not a REGISTER)
 * when it will not answer (the caller sends 500).
 */
int sip_registrar_register(struct sip_registrar *reg, const struct sip_msg *req,
                           const struct sip_path *from, void *txn, uint64_t now_ms);

/*
 * The transaction txn is gone (transport error, shutdown): its pending REGISTER,
 * if any, will still be committed when the publish completes, but no reply is
 * sent.
 */
void sip_registrar_forget(struct sip_registrar *reg, void *txn);

/* While cut off from the overlay, REGISTERs are answered 503 (DESIGN.md). */
void sip_registrar_set_cut_off(struct sip_registrar *reg, bool cut_off);

/*
 * Drops every binding whose expiry is <= now_ms (calling cfg->expired for each),
 * and forgets the remembered AoRs whose time is up (oldest first, O(1) each).
 * Returns how many bindings were dropped.
 */
size_t sip_registrar_advance(struct sip_registrar *reg, uint64_t now_ms);

/*
 * Earliest binding expiry or end of a remembered AoR's time, or UINT64_MAX when
 * there is neither.
 */
uint64_t sip_registrar_next_deadline(const struct sip_registrar *reg);

/*
 * Copies the live bindings (expiry > now_ms) of a canonical AoR into out (at most
 * max, highest q first).  Returns how many, or -ENOENT when the AoR has no account
 * and neither an entry here nor a remembered one whose time is not up at now_ms.
 * 0 bindings: the AoR is known (account, or bindings lately) but has no contact,
 * RFC 3261 16.5 -> 480.
 */
int sip_registrar_lookup(const struct sip_registrar *reg, const char *aor, uint64_t now_ms,
                         struct sip_binding *out, size_t max);

/*
 * Re-inserts a binding saved earlier (daemon start-up from sqlite), without
 * publishing.  Returns 0, -ETIME when it has already expired at now_ms, -EEXIST
 * when the same contact is already bound, -ENOSPC past the limits, -EINVAL for a
 * binding that does not parse, -ENOMEM.
 */
int sip_registrar_restore(struct sip_registrar *reg, const struct sip_binding *b, uint64_t now_ms);

/*
 * Removes the binding of contact (compared as RFC 3261 19.1.4 says) from aor at
 * once, as if it had expired (cfg->expired is called), without publishing: used
 * when a UDP contact stops answering keep-alive OPTIONS.  Returns 0, -ENOENT, or
 * -EBUSY while a REGISTER of that AoR is in flight (its commit decides).
 */
int sip_registrar_remove(struct sip_registrar *reg, const char *aor, const char *contact);

/* Calls cb for every binding (persistence, status).  cb must not modify reg. */
void sip_registrar_foreach(const struct sip_registrar *reg,
                           void (*cb)(const struct sip_binding *b, void *arg), void *arg);

/* Numbers of AoRs (remembered ones included) and of bindings held. */
size_t sip_registrar_aor_count(const struct sip_registrar *reg);
size_t sip_registrar_binding_count(const struct sip_registrar *reg);

#endif
