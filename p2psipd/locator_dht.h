/*
 * locator_dht.h: the node's locator (sip_locator.h) backed by the DHT.
 *
 * Lookups: the bindings of this node's own phones (locator_local) first, then a DHT
 * get of H(AoR), which adds one target per other node that holds phones of the AoR:
 * contact = the AoR, hop = that node's overlay name, so the request goes over a pipe
 * to that node, which proxies it to its phone (forking across nodes).  A request
 * that came from another node is never sent back over the overlay (the proxy skips
 * hops for those), so two nodes cannot bounce a request between them.
 *
 * Publishes: the AoR's complete set of bindings at this node (what the registrar
 * holds, with the REGISTER's changes applied) becomes one signed DHT record: key
 * H(AoR), value id H("p2psip-binding:" || node ID), value = this node's ID, its
 * super-node's ID when it is a client, and for each contact q, expiry and
 * +sip.instance (never the Contact URI: phones' contacts are usually 127.0.0.1).
 * The DHT put must reach its quorum first; only then are the changes written to the
 * bindings database, and the REGISTER is answered 200; otherwise 503 (-EPERM, the
 * AoR owned by another key: 403).  An AoR with no binding left is a tombstone.
 *
 * Ownership (docs/P2PSIP.md): with an accounts file, the record of an AoR that has an
 * account is signed by a key derived from the account's secret and the AoR (any node
 * holding that account can publish for it, so a user moves to another host, or
 * registers on two, and nobody else can); otherwise by the node's own key, which
 * then owns the AoR until its record expires.
 *
 * Keeping records alive: every AoR with bindings here is re-published on a schedule
 * (every refresh_ms, spread out, at most rate_per_s puts a second), so a binding
 * outlives the loss of its replicas as long as this node lives; a binding that
 * expires or is removed re-publishes its AoR at once; a restart re-publishes all.
 */
#ifndef P2PSIPD_LOCATOR_DHT_H
#define P2PSIPD_LOCATOR_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailbox.h"
#include "p2p/dht_id.h"
#include "p2p/sip_locator.h"

struct p2psipd;
struct locator_dht;

#define LOCATOR_DHT_VALUE_VERSION 1

/* A binding record's value, decoded. */
struct locator_dht_value {
    struct dht_id node;
    struct dht_id super; /* all zero: the node is a ring member */
    size_t n;
    struct {
        uint16_t q;
        uint64_t expires_s; /* Unix seconds */
        char instance[SIP_INSTANCE_MAX];
    } contacts[SIP_LOOKUP_MAX];
};

/* Encodes v into buf (cap bytes).  Returns the length, -ENOSPC, -EINVAL. */
int locator_dht_value_encode(const struct locator_dht_value *v, uint8_t *buf, size_t cap);

/* Decodes a value (len bytes, never read past).  0, or -EBADMSG. */
int locator_dht_value_decode(const uint8_t *buf, size_t len, struct locator_dht_value *out);

/*
 * The DHT key of a canonical AoR: BLAKE2b-160 of its text (DESIGN.md: save and
 * lookup use this one function).
 */
void locator_dht_key(const char *aor, struct dht_id *out);

/* The overlay host name of a node ("<hex>.node.invalid", or with its super-node
 * "<hex>.<super hex>.node.invalid"); buf of at least 96 bytes.  Returns buf. */
const char *locator_dht_node_host(const struct dht_id *node, const struct dht_id *super, char *buf,
                                  size_t size);

/* Parses a node host back.  0 (super zeroed when absent), or -ENOENT. */
int locator_dht_parse_node_host(const char *host, size_t len, struct dht_id *node,
                                struct dht_id *super);

/* Creates the locator for daemon d (its local locator, registrar and overlay are
 * reached through d and may be set later).  0, -ENOMEM. */
int locator_dht_new(struct locator_dht **out, struct p2psipd *d);

/* The ops for the registrar and the proxy. */
struct sip_locator locator_dht_get(struct locator_dht *loc);

/* A binding went away without a REGISTER (expiry, keep-alive): re-publish its AoR. */
void locator_dht_changed(struct locator_dht *loc, const char *aor);

/* Re-publishes every AoR with bindings (after a restart, or an address change). */
void locator_dht_republish_all(struct locator_dht *loc);

/* Runs the refresh schedule; call every few hundred ms. */
void locator_dht_tick(struct locator_dht *loc, uint64_t now_ms);

/* Completes every pending operation with -ECANCELED and frees.  NULL is a no-op. */
void locator_dht_free(struct locator_dht *loc);

struct locator_dht_stats {
    uint64_t lookups, lookups_remote, remote_targets;
    uint64_t puts, put_errors, put_refused, republished;
    struct mailbox_stats mailbox; /* offline MESSAGEs */
};
void locator_dht_stats(const struct locator_dht *loc, struct locator_dht_stats *out);

#endif
