/*
 * test_daemon_store.c: the daemon's bindings database and its locator.
 *
 * bindings_db: schema creation and version check, all-or-nothing publishes inside a
 * batch, one commit per batch, expired rows dropped at load, fields round-tripped.
 * locator_local: publishes complete on the next loop turn (never inside the call),
 * after the commit, one commit for all the publishes of a turn; a publish made by a
 * callback waits one more turn; the ring cap; a locked database fails the publish
 * (-EIO, the registrar's 503); close completes what waits and leaves nothing on the
 * loop (uv_loop_close() returns 0).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "bindings_db.h"
#include "locator_local.h"

struct fixture {
    char dir[64];
    char path[96];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_daemon_store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/p2psip.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[128];

    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void binding(struct sip_binding *b, const char *aor, const char *contact,
                    uint64_t expires_ms)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->aor, sizeof(b->aor), "%s", aor);
    snprintf(b->contact, sizeof(b->contact), "%s", contact);
    b->expires_ms = expires_ms;
    b->q = 500;
    snprintf(b->call_id, sizeof(b->call_id), "call-%s", contact);
    b->cseq = 42;
    snprintf(b->path.host, sizeof(b->path.host), "::1");
    b->path.port = 5070;
    snprintf(b->path.transport, sizeof(b->path.transport), "TCP");
    b->path.conn_id = 99;
    snprintf(b->instance, sizeof(b->instance), "<urn:uuid:1>");
}

/* Rows seen by load(), kept for checks. */
struct seen {
    size_t n;
    struct sip_binding b[8];
    int64_t wall[8];
};

static int collect(const struct sip_binding *b, int64_t wall, void *arg)
{
    struct seen *s = arg;

    if (s->n < 8) {
        s->b[s->n] = *b;
        s->wall[s->n] = wall;
    }
    s->n++;
    return 0;
}

static int sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int v = -1;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_db_schema_and_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct bindings_db *db;
    struct sip_binding a, b;
    struct sip_binding_change ch[2] = {{&a, false}, {&b, false}};
    struct seen s = {0};
    char err[256];
    size_t expired = 7;

    assert_int_equal(bindings_db_open(&db, f->path, err, sizeof(err)), 0);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 1);
    binding(&a, "sip:alice@p2p.test", "sip:alice@127.0.0.1:5999", 1000);
    binding(&b, "sip:alice@p2p.test", "sip:alice@[::1]:5998", 2000);
    assert_false(bindings_db_pending(db));
    /* Offset: wall = loop + 10^12 ms. */
    assert_int_equal(bindings_db_apply(db, ch, 2, 1000000000000LL), 0);
    assert_true(bindings_db_pending(db));
    /* Not visible to another connection before the commit. */
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 0);
    assert_int_equal(bindings_db_commit(db), 0);
    assert_false(bindings_db_pending(db));
    assert_int_equal(bindings_db_commits(db), 1);
    assert_int_equal(bindings_db_commit(db), 0); /* nothing open: no commit */
    assert_int_equal(bindings_db_commits(db), 1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 2);

    assert_int_equal(bindings_db_load(db, 1000000000500LL, collect, &s, &expired), 2);
    assert_int_equal(expired, 0);
    assert_int_equal(s.n, 2);
    /* Ordered by aor, then expiry. */
    assert_string_equal(s.b[0].contact, "sip:alice@127.0.0.1:5999");
    assert_int_equal(s.wall[0], 1000000001000LL);
    assert_int_equal(s.wall[1], 1000000002000LL);
    assert_string_equal(s.b[1].aor, "sip:alice@p2p.test");
    assert_int_equal(s.b[1].q, 500);
    assert_string_equal(s.b[1].call_id, "call-sip:alice@[::1]:5998");
    assert_int_equal(s.b[1].cseq, 42);
    assert_string_equal(s.b[1].path.host, "::1");
    assert_int_equal(s.b[1].path.port, 5070);
    assert_string_equal(s.b[1].path.transport, "TCP");
    assert_int_equal(s.b[1].path.conn_id, 0); /* connections do not survive */
    assert_int_equal(s.b[1].expires_ms, 0);
    assert_string_equal(s.b[1].instance, "<urn:uuid:1>");

    /* Removal, and a refresh replaces the row (primary key aor, contact). */
    ch[0].remove = true;
    b.expires_ms = 3000;
    assert_int_equal(bindings_db_apply(db, ch, 2, 1000000000000LL), 0);
    assert_int_equal(bindings_db_commit(db), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(bindings_db_load(db, 1000000000500LL, collect, &s, NULL), 1);
    assert_int_equal(s.wall[0], 1000000003000LL);

    /* Expired rows are deleted at load and never passed on. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(bindings_db_load(db, 1000000003000LL, collect, &s, &expired), 0);
    assert_int_equal(expired, 1);
    assert_int_equal(s.n, 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 0);
    bindings_db_close(db);
}

static void test_db_publish_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    struct bindings_db *db;
    struct sip_binding a, good, bad;
    struct sip_binding_change one[1] = {{&a, false}};
    struct sip_binding_change two[2] = {{&good, false}, {&bad, false}};
    char err[256];

    assert_int_equal(bindings_db_open(&db, f->path, err, sizeof(err)), 0);
    /* A trigger makes the second write of a publish fail. */
    sql_exec(f->path, "CREATE TRIGGER refuse BEFORE INSERT ON binding "
                      "WHEN NEW.contact = 'sip:bad@x' BEGIN SELECT RAISE(ABORT, 'no'); END");
    binding(&a, "sip:a@p2p.test", "sip:a@x", 5000);
    binding(&good, "sip:b@p2p.test", "sip:good@x", 5000);
    binding(&bad, "sip:b@p2p.test", "sip:bad@x", 5000);
    assert_int_equal(bindings_db_apply(db, one, 1, 0), 0);
    assert_int_equal(bindings_db_apply(db, two, 2, 0), -EIO);
    assert_int_equal(bindings_db_commit(db), 0);
    /* The failed publish left nothing; the earlier one in the batch is kept. */
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding WHERE aor = 'sip:a@p2p.test'"),
                     1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding WHERE aor = 'sip:b@p2p.test'"),
                     0);
    bindings_db_close(db);
}

static void test_db_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    struct bindings_db *db = NULL;
    char err[256] = "";

    sql_exec(f->path, "PRAGMA user_version = 2");
    assert_int_equal(bindings_db_open(&db, f->path, err, sizeof(err)), -EPROTO);
    assert_null(db);
    assert_non_null(strstr(err, "schema version 2 is newer than this p2psipd's (1)"));
}

/* ---- locator_local on a real loop ---- */

struct calls {
    int n;
    int status[16];
    struct locator_local *loc; /* for publishing from a callback */
    struct sip_binding *again;
    bool inside; /* true while the test is inside an op call */
    bool called_inside;
};

static void on_publish(int status, void *arg)
{
    struct calls *c = arg;

    if (c->inside)
        c->called_inside = true;
    if (c->n < 16)
        c->status[c->n] = status;
    c->n++;
    if (c->again != NULL) {
        struct sip_binding_change ch = {c->again, false};
        struct sip_locator l = locator_local_get(c->loc);
        c->again = NULL;
        assert_int_equal(l.ops->publish(l.ctx, &ch, 1, on_publish, c), 0);
    }
}

static void on_lookup(int status, const struct sip_binding *b, size_t n, void *arg)
{
    struct calls *c = arg;
    (void)b;
    (void)n;

    if (c->n < 16)
        c->status[c->n] = status;
    c->n++;
}

static void test_locator_next_turn_group_commit(void **state)
{
    struct fixture *f = *state;
    struct bindings_db *db;
    struct locator_local *loc;
    struct locator_local_stats st;
    struct sip_binding b[4];
    struct calls c = {0};
    uv_loop_t loop;
    char err[256];

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(bindings_db_open(&db, f->path, err, sizeof(err)), 0);
    assert_int_equal(locator_local_new(&loc, &loop, db, 3, NULL), 0);
    struct sip_locator l = locator_local_get(loc);
    c.loc = loc;

    /* Three publishes in one turn: none completes inside its call. */
    c.inside = true;
    for (int i = 0; i < 3; i++) {
        char contact[32];
        snprintf(contact, sizeof(contact), "sip:u%d@x", i);
        binding(&b[i], "sip:u@p2p.test", contact, uv_now(&loop) + 60000);
        struct sip_binding_change ch = {&b[i], false};
        assert_int_equal(l.ops->publish(l.ctx, &ch, 1, on_publish, &c), 0);
    }
    /* The ring holds 3: a fourth is refused at once, with no callback. */
    binding(&b[3], "sip:u@p2p.test", "sip:u3@x", uv_now(&loop) + 60000);
    struct sip_binding_change ch3 = {&b[3], false};
    assert_int_equal(l.ops->publish(l.ctx, &ch3, 1, on_publish, &c), -EAGAIN);
    c.inside = false;
    assert_int_equal(c.n, 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 0);

    /* A publish made from the first callback waits for the turn after. */
    c.again = &b[3];
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1);
    assert_false(c.called_inside);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.status[0], 0);
    assert_int_equal(c.status[2], 0);
    locator_local_stats(loc, &st);
    assert_int_equal(st.commits, 1); /* one transaction for the turn */
    /* Committed before the callbacks ran: another connection sees the rows. */
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 3);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.n, 4);
    locator_local_stats(loc, &st);
    assert_int_equal(st.commits, 2);
    assert_int_equal(st.publishes, 4);
    assert_int_equal(st.publish_errors, 0);

    /* Expiry deletes the row on the next turn's commit. */
    locator_local_expired(loc, &b[0]);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 3);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding WHERE contact = 'sip:u0@x'"),
                     0);

    /* A lookup with no registrar attached: the AoR is unknown, next turn. */
    c.n = 0;
    c.inside = true;
    assert_int_equal(l.ops->lookup(l.ctx, "sip:u@p2p.test", on_lookup, &c), 0);
    c.inside = false;
    assert_int_equal(c.n, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.status[0], -ENOENT);

    /* Nothing waits: the idle handle is stopped, so the loop has nothing active. */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);

    locator_local_close(loc);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    bindings_db_close(db);
}

static void test_locator_close_completes(void **state)
{
    struct fixture *f = *state;
    struct bindings_db *db;
    struct locator_local *loc;
    struct sip_binding b;
    struct calls c = {0};
    uv_loop_t loop;
    char err[256];

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(bindings_db_open(&db, f->path, err, sizeof(err)), 0);
    assert_int_equal(locator_local_new(&loc, &loop, db, 8, NULL), 0);
    struct sip_locator l = locator_local_get(loc);
    binding(&b, "sip:v@p2p.test", "sip:v@x", 60000);
    struct sip_binding_change ch = {&b, false};
    assert_int_equal(l.ops->publish(l.ctx, &ch, 1, on_publish, &c), 0);
    assert_int_equal(l.ops->lookup(l.ctx, "sip:v@p2p.test", on_lookup, &c), 0);
    /* Close: the written publish completes with the commit's result (0), the lookup
     * is cancelled; both callbacks run exactly once. */
    locator_local_close(loc);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.status[0], 0);
    assert_int_equal(c.status[1], -ECANCELED);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 1);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
    bindings_db_close(db);
}

/* Another connection holds the write lock: the publish completes with -EIO (the
 * registrar then answers 503), and works again once the lock is gone. */
static void test_locator_locked_database(void **state)
{
    struct fixture *f = *state;
    struct bindings_db *db;
    struct locator_local *loc;
    struct locator_local_stats st;
    struct sip_binding b;
    struct calls c = {0};
    sqlite3 *other;
    uv_loop_t loop;
    char err[256];

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(bindings_db_open(&db, f->path, err, sizeof(err)), 0);
    assert_int_equal(locator_local_new(&loc, &loop, db, 8, NULL), 0);
    struct sip_locator l = locator_local_get(loc);
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    binding(&b, "sip:w@p2p.test", "sip:w@x", 60000);
    struct sip_binding_change ch = {&b, false};
    assert_int_equal(l.ops->publish(l.ctx, &ch, 1, on_publish, &c), 0);
    assert_int_equal(c.n, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.status[0], -EIO);
    locator_local_stats(loc, &st);
    assert_int_equal(st.publish_errors, 1);

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(l.ops->publish(l.ctx, &ch, 1, on_publish, &c), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.status[1], 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM binding"), 1);

    locator_local_close(loc);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    bindings_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_db_schema_and_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_publish_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locator_next_turn_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locator_close_completes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locator_locked_database, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
