/*
 * sim.h: a discrete-event simulator running N real dht_node instances in one
 * process on a virtual clock (used by p2psip-dht-sim and the unit tests).
 *
 * Network model: per-pair base latency uniform in [0.5, 1.5] x mean from a seeded
 * hash of the pair, plus +-10% jitter per message, independent loss with
 * probability `loss`, abrupt node death (messages to a dead node vanish).  Churn:
 * exponential session times with the given median; a dead node is replaced at once
 * by a fresh node (new key, new ID, new address) joining through a random live
 * node.  Ground truth for a key is the live, joined node closest to it.
 *
 * Phases: the initial nodes join one after another (join_gap), then `settle_s` of
 * quiet, then the measured window of duration_s in which sessions, lookups, puts,
 * gets and the mass kill happen.  Everything is driven by one seeded PRNG, so a
 * seed gives the same output every time.
 *
 * Measures: a lookup succeeds when it returns the live, joined node closest to
 * the key at completion (or a node that was that root and died while its answer
 * was in flight); a failed lookup counts at its deadline in the latency figures.
 * Consistency: the lookup_group simultaneous lookups of one key from different
 * nodes all succeed and agree.  Maintenance bytes: bytes of every message not
 * flagged CLIENT, sent inside the window, divided by the live node-seconds (and
 * the same for all bytes).
 * Repair time: from the mass kill until every live leaf set is exactly the true
 * one (checked every 250 ms).  Records lost: stored (quorum-acknowledged) records
 * that no live node holds at the end.  csv_path keeps every answered request
 * (kind, start, latency, status) for plots.  The environment variables of
 * p2psip-dht-sim --help print debugging traces; P2P_SIM_SLOW=MS explains every
 * request slower than MS ms (the fate of each of its messages).
 */
#ifndef P2P_DHT_SIM_H
#define P2P_DHT_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct sim_config {
    unsigned nodes;
    uint64_t seed;
    double duration_s;       /* measured window */
    double settle_s;         /* quiet time after the initial joins (default 30) */
    double median_session_s; /* 0 = no churn */
    double kill_fraction;    /* of live nodes, at kill_at_s into the window */
    double kill_at_s;
    unsigned lookups;      /* issued in groups of lookup_group from different nodes */
    unsigned lookup_group; /* default 4 */
    unsigned puts;
    double loss;
    double latency_ms;                    /* mean one-way latency, default 50 */
    unsigned leaf_half, replicas, quorum; /* 0 = node defaults */
    uint32_t leaf_ping_ms, leafset_ms;    /* 0 = node defaults */
    const char *csv_path;                 /* NULL, or write every answered request's latency here */
};

void sim_config_init(struct sim_config *cfg);

struct sim_result {
    unsigned nodes_final, joins, deaths;
    bool leafsets_correct; /* at the end: every live leaf set is the true one */
    uint64_t lookups, lookups_ok, lookups_correct;
    uint64_t groups, groups_consistent;
    double lookup_success, consistency;
    double hops_mean, hops_p99;
    double lookup_p50_ms, lookup_p99_ms;
    uint64_t puts, puts_ok; /* puts answered (an origin that died gave no verdict), ok */
    double put_p50_ms, put_p99_ms;
    uint64_t gets, gets_ok; /* gets answered, and those returning the record */
    double get_success;
    uint64_t records_stored, records_lost;
    double maint_bytes_per_node_s;
    double bytes_per_node_s; /* every message sent in the window, client traffic included */
    double repair_time_s;    /* after the mass kill; -1 = no kill, -2 = not repaired */
    size_t mem_per_node_max;
    uint64_t events, messages;
    uint64_t dropped_malformed;
};

/*
 * Runs one simulation.  table (may be NULL) receives a human-readable table.
 * Returns 0, -EINVAL (bad config), -ENOMEM.
 */
int sim_run(const struct sim_config *cfg, struct sim_result *out, FILE *table);

/* Writes the result as one JSON object on one line (no newline). */
void sim_result_json(const struct sim_config *cfg, const struct sim_result *r, FILE *f);

#endif
