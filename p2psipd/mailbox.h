/*
 * mailbox.h: MESSAGEs kept in the overlay for users who are offline
 * (docs/P2PSIP.md, "A MESSAGE to a user who is offline").
 *
 * Keeping, at the sender's node: a phone's MESSAGE found no live binding
 * (sip_locator_ops.keep).  The AoR's owner key P is its live binding records'
 * owner, else the owner of its owner record (key H("p2psip-aor-owner:" || AoR),
 * put by the AoR's node whenever one of its phones registers or the AoR goes
 * offline, signed by P like the bindings).  The message (From, Content-Type,
 * Date, body) is sealed to P (crypto_box_seal to P's X25519 form: only a holder
 * of P's secret opens it) and put as a mailbox value under dht_mailbox_key(P)
 * (dht_record.h), signed by this node, kept 7 days; 202 once a quorum has it.
 *
 * Delivering, at the recipient's node: when a REGISTER of the AoR is stored, the
 * node (which holds P's secret: its own key, or the key derived from the AoR's
 * account) gets the mailbox, opens each value, hands it to its phones
 * (sip_proxy_deliver_message) and, once one answered 2xx, removes it with a
 * tombstone signed by P.  A value that does not open is removed too.
 *
 * The store caps a mailbox (16 values, 4 per writer node, 32 KiB, 7 days), so the
 * overlay cannot be filled through it.  Everything here is bounded (MAILBOX_OPS_MAX
 * operations in flight) and cancellable: mailbox_free() ends each pending keep
 * with -ECANCELED.
 */
#ifndef P2PSIPD_MAILBOX_H
#define P2PSIPD_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_id.h"
#include "p2p/sip_locator.h"

#define MAILBOX_OPS_MAX 64
#define MAILBOX_TTL_MS (7ull * 24 * 3600 * 1000)

struct p2psipd;
struct mailbox;

int mailbox_new(struct mailbox **out, struct p2psipd *d);
/* Cancels what is in flight (keeps complete with -ECANCELED) and frees. */
void mailbox_free(struct mailbox *mb);

/* sip_locator_ops.keep: seals raw (a MESSAGE) for aor's owner and puts it in its
 * mailbox.  cb(0) when stored; -ENOENT no owner key known; -EMSGSIZE; -errno. */
int mailbox_keep(struct mailbox *mb, const char *aor, const char *raw, size_t len,
                 sip_locator_publish_cb cb, void *arg);
/* Drops the keeps whose callback argument is arg: their callbacks never run. */
void mailbox_cancel(struct mailbox *mb, void *arg);

/*
 * The AoR's record at this node was stored, signed by the AoR key (pk, sk):
 * puts its owner record; when `online` (a phone of it is registered here) also
 * delivers what its mailbox holds.
 */
void mailbox_aor_stored(struct mailbox *mb, const char *aor, const uint8_t pk[32],
                        const uint8_t sk[64], bool online);

/* The key of aor's owner record. */
void mailbox_owner_key(const char *aor, struct dht_id *out);

/*
 * The sealed plaintext: "p2psip-message-v1\r\nFrom: F\r\nContent-Type: T\r\n
 * Date: D\r\n\r\n" then the body.  Anyone can seal a box to P, so what opens is
 * checked like any network input.
 */
#define MAILBOX_FROM_MAX 512
#define MAILBOX_TYPE_MAX 128
struct mailbox_msg {
    char from[MAILBOX_FROM_MAX]; /* a name-addr, no tag */
    char type[MAILBOX_TYPE_MAX]; /* Content-Type */
    uint64_t date_s;             /* Unix seconds when it was kept */
    const uint8_t *body;         /* into the parsed buffer */
    size_t body_len;
};
/* Writes m (body included) into out; its length, or -EMSGSIZE when over cap, -EINVAL
 * for a field with a CR, LF or NUL. */
int mailbox_msg_build(const struct mailbox_msg *m, uint8_t *out, size_t cap);
/* Parses p[0..len); 0 or -EBADMSG (bad magic, a field missing, too long or with a
 * control character). */
int mailbox_msg_parse(const uint8_t *p, size_t len, struct mailbox_msg *out);

struct mailbox_stats {
    uint64_t kept, keep_failed, keep_unknown;                  /* sender side */
    uint64_t found, delivered, undelivered, unopened, cleared; /* recipient side */
    uint64_t owner_puts, owner_put_errors;
    uint64_t skipped; /* owner puts and fetches left out: no room for background work */
};
void mailbox_stats(const struct mailbox *mb, struct mailbox_stats *out);

#endif
