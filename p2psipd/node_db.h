/*
 * node_db.h: the node's identity and the peers it knew, in the daemon's sqlite file.
 *
 * The Ed25519 identity is created once, on first start, and kept (table
 * node_identity), so a restarted node has the same node ID (BLAKE2b-160 of the public
 * key).  The peers it was connected to (its leaf set, its super-node) are saved in
 * node_peer and tried first on the next start, before the bootstrap list and
 * discovery.  The file is the data directory's p2psip.db, private to the daemon
 * (the data directory is created 0700).
 *
 * Tables (created if missing; the schema version lives in node_meta):
 *   node_identity(k = 1, ed_sk BLOB(64), created_ms)
 *   node_peer(id BLOB(20) PRIMARY KEY, addr BLOB, seen_ms)
 */
#ifndef P2PSIPD_NODE_DB_H
#define P2PSIPD_NODE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/dht_msg.h"
#include "p2p/overlay_secure.h"

struct sqlite3;

#define NODE_DB_PEERS_MAX 32

/*
 * Loads the identity, creating and storing a new one on first use (*created true).
 * Returns 0, -EIO (sqlite, with the message in err), -EINVAL (a stored key that is
 * not a valid Ed25519 key: refused rather than silently replaced).
 */
int node_db_identity(struct sqlite3 *db, struct ovl_identity *out, bool *created, char *err,
                     size_t errlen);

/* Replaces the saved peers with peers[0..n).  0 or -EIO. */
int node_db_save_peers(struct sqlite3 *db, const struct dht_peer *peers, size_t n,
                       uint64_t wall_ms);

/* Loads at most max saved peers, most recently seen first.  Returns how many, or -EIO. */
int node_db_load_peers(struct sqlite3 *db, struct dht_peer *out, size_t max);

#endif
