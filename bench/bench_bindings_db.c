/*
 * bench_bindings_db.c: what group commit buys the daemon's bindings database.
 *
 * Writes N publishes (one binding each, distinct AoRs, as a REGISTER storm does)
 * through bindings_db_apply(), committing every B publishes, for B = 1 (a commit per
 * REGISTER, what a naive registrar does) up to 512 (a loop turn under heavy load).
 * The database is the daemon's: WAL, synchronous=NORMAL, in a fresh directory under
 * $TMPDIR.  With NORMAL a WAL commit does not fsync (only checkpoints do), so what a
 * batch saves is the per-transaction work (locks, WAL frame headers, page writes of
 * the same B-tree pages again).  Prints a table, then one JSON line.  Never asserts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bindings_db.h"

#define N 10000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void remove_db(const char *path)
{
    char p[640];

    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    unlink(path);
}

/* Returns publishes per second with a commit every batch publishes. */
static double run(const char *path, int batch, uint64_t *commits)
{
    struct bindings_db *db;
    struct sip_binding b;
    struct sip_binding_change ch = {&b, false};
    char err[256];
    double t0, t1;

    remove_db(path);
    if (bindings_db_open(&db, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_bindings_db: %s\n", err);
        exit(1);
    }
    memset(&b, 0, sizeof(b));
    b.q = 1000;
    b.cseq = 1;
    snprintf(b.path.host, sizeof(b.path.host), "127.0.0.1");
    b.path.port = 5070;
    snprintf(b.path.transport, sizeof(b.path.transport), "UDP");
    t0 = now_s();
    for (int i = 0; i < N; i++) {
        snprintf(b.aor, sizeof(b.aor), "sip:user%05d@p2p.test", i);
        snprintf(b.contact, sizeof(b.contact), "sip:user%05d@127.0.0.1:5070", i);
        snprintf(b.call_id, sizeof(b.call_id), "%d-bench@127.0.0.1", i);
        b.expires_ms = 3600000 + (uint64_t)i;
        if (bindings_db_apply(db, &ch, 1, 1700000000000LL) != 0 ||
            ((i + 1) % batch == 0 && bindings_db_commit(db) != 0)) {
            fprintf(stderr, "bench_bindings_db: write failed\n");
            exit(1);
        }
    }
    if (bindings_db_commit(db) != 0)
        exit(1);
    t1 = now_s();
    *commits = bindings_db_commits(db);
    bindings_db_close(db);
    return N / (t1 - t0);
}

int main(void)
{
    static const int batches[] = {1, 8, 64, 512};
    double rate[4];
    uint64_t commits[4];
    char dir[512], path[600];
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/bench_bindings_db.XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/p2psip.db", dir);
    printf("bindings_db: %d publishes (one binding each), WAL, synchronous=NORMAL, in %s\n", N,
           dir);
    printf("%-22s %10s %14s %12s\n", "commit every", "commits", "publishes/s", "vs batch 1");
    for (int i = 0; i < 4; i++) {
        rate[i] = run(path, batches[i], &commits[i]);
        printf("%-4d publish(es)       %10llu %14.0f %11.1fx\n", batches[i],
               (unsigned long long)commits[i], rate[i], rate[i] / rate[0]);
    }
    remove_db(path);
    rmdir(dir);
    printf("{\"bench\":\"bindings_db\",\"n\":%d,\"per_s_batch1\":%.0f,\"per_s_batch8\":%.0f,"
           "\"per_s_batch64\":%.0f,\"per_s_batch512\":%.0f,\"ratio_64_vs_1\":%.2f}\n",
           N, rate[0], rate[1], rate[2], rate[3], rate[2] / rate[0]);
    return 0;
}
