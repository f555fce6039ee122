/*
 * main.c: p2psip-dht-sim, the command line of the DHT simulator (sim.h).
 *
 * Prints a table, then as its last line one JSON object with the figures the
 * tests and bench/dht_sim.sh check.  Same flags and seed, same output.
 */
#define _DEFAULT_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static void usage(FILE *f)
{
    fputs(
        "usage: p2psip-dht-sim [options]\n"
        "  --nodes N              nodes (default 100)\n"
        "  --seed S               PRNG seed (default 1)\n"
        "  --duration SECONDS     measured window (default 120)\n"
        "  --settle SECONDS       quiet time after the initial joins (default 30)\n"
        "  --median-session SEC   churn: exponential sessions with this median (0 = none)\n"
        "  --kill-fraction F      mass failure: kill this fraction of live nodes at once\n"
        "  --kill-at SECONDS      ... this far into the window (default 30)\n"
        "  --lookups K            lookups, in groups of 4 simultaneous ones per key\n"
        "  --puts K               signed puts; each is read back later with a get\n"
        "  --loss P               independent message loss probability\n"
        "  --latency-ms MEAN      mean one-way latency (default 50)\n"
        "  --leaf L --replicas R --quorum Q   node configuration\n"
        "  --leaf-ping-ms MS --leafset-ms MS  maintenance periods\n"
        "  --csv FILE             every answered request: kind,t0_ms,latency_ms,status,n,origin\n"
        "environment (debugging; output on stderr):\n"
        "  P2P_SIM_DEBUG=1        wrong roots, lost records, wrong leaf sets with the truth\n"
        "  P2P_SIM_TRACE=HEX      every message whose key, sender or receiver starts with HEX\n"
        "  P2P_SIM_DUMP=DIR       keep the first 4 messages of each type as files (fuzz seeds)\n"
        "  P2P_SIM_SLOW=MS        every request slower than MS ms, with the fate of its messages\n",
        f);
}

static int num(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return (errno != 0 || end == s || *end != '\0') ? -1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"settle", required_argument, NULL, 'S'},
        {"median-session", required_argument, NULL, 'm'},
        {"kill-fraction", required_argument, NULL, 'k'},
        {"kill-at", required_argument, NULL, 'K'},
        {"lookups", required_argument, NULL, 'l'},
        {"puts", required_argument, NULL, 'p'},
        {"loss", required_argument, NULL, 'L'},
        {"latency-ms", required_argument, NULL, 't'},
        {"leaf", required_argument, NULL, 'f'},
        {"replicas", required_argument, NULL, 'r'},
        {"quorum", required_argument, NULL, 'q'},
        {"leaf-ping-ms", required_argument, NULL, 'P'},
        {"leafset-ms", required_argument, NULL, 'E'},
        {"csv", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sim_config cfg;
    struct sim_result res;
    int c, rc;
    double v;

    sim_config_init(&cfg);
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'c' && optarg != NULL) {
            cfg.csv_path = optarg;
            continue;
        }
        if (c == '?' || optarg == NULL || num(optarg, &v) != 0 || v < 0) {
            usage(stderr);
            return 2;
        }
        switch (c) {
        case 'n':
            cfg.nodes = (unsigned)v;
            break;
        case 's':
            cfg.seed = (uint64_t)v;
            break;
        case 'd':
            cfg.duration_s = v;
            break;
        case 'S':
            cfg.settle_s = v;
            break;
        case 'm':
            cfg.median_session_s = v;
            break;
        case 'k':
            cfg.kill_fraction = v;
            break;
        case 'K':
            cfg.kill_at_s = v;
            break;
        case 'l':
            cfg.lookups = (unsigned)v;
            break;
        case 'p':
            cfg.puts = (unsigned)v;
            break;
        case 'L':
            cfg.loss = v;
            break;
        case 't':
            cfg.latency_ms = v;
            break;
        case 'f':
            cfg.leaf_half = (unsigned)v;
            break;
        case 'r':
            cfg.replicas = (unsigned)v;
            break;
        case 'q':
            cfg.quorum = (unsigned)v;
            break;
        case 'P':
            cfg.leaf_ping_ms = (uint32_t)v;
            break;
        case 'E':
            cfg.leafset_ms = (uint32_t)v;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    rc = sim_run(&cfg, &res, stdout);
    if (rc != 0) {
        fprintf(stderr, "p2psip-dht-sim: %s\n", strerror(-rc));
        return 1;
    }
    sim_result_json(&cfg, &res, stdout);
    putchar('\n');
    return 0;
}
