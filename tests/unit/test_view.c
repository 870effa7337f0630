/* test_view.c: the store's in-memory view (common/view.c) against a real
 * sqlite file, with changes made by other processes (fork: a child opens
 * its own store handle, as `rtm key revoke` or a mint-only rtmd would).
 *
 * Checks that each change is seen without a restart within a second (the
 * bound the issue sets; the view polls every 50 ms here), that the hooks
 * fire on the owner thread only while it drains, that session rows reach
 * the store through the writer, that a locked store degrades the status,
 * drops the oldest rows at the bound and recovers, and that the outbox
 * carries a kick from one view to another. The changes test runs again on
 * a real Postgres the test starts (tests/lib/pg.sh), the view's store
 * functions being backend-neutral. */
#define _GNU_SOURCE /* nftw */
#include "testlib.h"
#include "pg_sh.h"

#include "errors.h"
#include "hs256.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "view.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], db[256];
/* The store the current test uses: the sqlite file, or the Postgres URL. */
static const char *where;
static struct rtm_store_opts where_opts;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* ---- hooks: what the owner saw ---- */
static volatile int woken;
static int n_key_revoked, n_revoked, n_outbox, n_refreshed;
static char last_kid[80], last_target[64], last_kind[16];

static void wake(void *arg) { (void)arg; __atomic_store_n(&woken, 1, __ATOMIC_RELEASE); }
static void on_key_revoked(void *arg, const char *kid, const char *app)
{
    (void)arg, (void)app;
    n_key_revoked++;
    snprintf(last_kid, sizeof last_kid, "%s", kid);
}
static void on_revoked(void *arg, const struct rtm_revocation *r) { (void)arg, (void)r; n_revoked++; }
static void on_outbox(void *arg, const char *kind, const char *app, const char *target, const char *data)
{
    (void)arg, (void)app, (void)data;
    n_outbox++;
    snprintf(last_kind, sizeof last_kind, "%s", kind);
    snprintf(last_target, sizeof last_target, "%s", target);
}
static void on_refreshed(void *arg) { (void)arg; n_refreshed++; }

static const struct rtm_view_hooks hooks = {wake, on_key_revoked, on_revoked, on_outbox, on_refreshed, NULL};

static struct rtm_view *open_view(const char *node, int broker, int rows_max)
{
    struct rtm_view_opts o = {.db = where, .store_opts = &where_opts, .node_id = node, .poll_ms = 50,
                              .flush_ms = 50, .rows_max = rows_max, .broker = broker};
    struct rtm_view *v = NULL;
    char err[256];
    if (rtm_view_open(&o, &hooks, &v, err, sizeof err)) fprintf(stderr, "  view: %s\n", err);
    return v;
}

/* Drains when woken until cond() holds or a second passed; returns whether it held. */
static int drain_until(struct rtm_view *v, int (*cond)(struct rtm_view *))
{
    int64_t end = rtm_mono_ms() + 1000;
    while (rtm_mono_ms() < end) {
        if (__atomic_exchange_n(&woken, 0, __ATOMIC_ACQ_REL)) rtm_view_drain(v);
        if (cond(v)) return 1;
        usleep(5000);
    }
    rtm_view_drain(v);
    return cond(v);
}

static struct rtm_key k1;
static const char *self_path; /* argv[0]: under valgrind /proc/self/exe is the tool */

/* Runs one of the ops below in another process with its own store handle,
 * as `rtm key revoke` would; returns its exit status. The child execs this
 * binary again (main's --child) rather than running on after fork: the
 * view's threads may hold the allocator's locks at fork time (an ASan
 * build then hangs in the child), and a child that inherits the parent's
 * heap shows its blocks as leaks under valgrind. */
static int in_other_process(const char *op)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(self_path, "test_view", "--child", op, where,
              where_opts.password_file ? where_opts.password_file : "", k1.id, (char *)NULL);
        _exit(12);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char new_kid[80];

static int make_key(struct rtm_store *st)
{
    struct rtm_key_spec sp = {.app = "demo"};
    struct rtm_key k;
    int rc = rtm_store_key_create(st, &sp, &k);
    if (!rc) {
        FILE *f = fopen("/tmp/rtm-view-test-kid", "w");
        if (f) fprintf(f, "%s\n%s\n", k.id, k.secret), fclose(f);
    }
    rtm_key_free(&k);
    return rc;
}
static int revoke_k1(struct rtm_store *st) { return rtm_store_key_revoke(st, k1.id); }
static int revoke_jti(struct rtm_store *st) { return rtm_store_revoke_jti(st, "demo", "jti-1", rtm_now_s() + 600); }
static int revoke_peer(struct rtm_store *st) { return rtm_store_revoke_peer(st, "demo", "bob", rtm_now_s() + 1); }
static int set_app(struct rtm_store *st) { return rtm_store_app_set(st, "demo", "maxConnections", "7"); }

static int key_known(struct rtm_view *v) { return rtm_view_key(v, new_kid) != NULL; }
static int k1_revoked(struct rtm_view *v)
{
    const struct rtm_key *k = rtm_view_key(v, k1.id);
    return k && k->revoked && n_key_revoked == 1;
}
static int jti_revoked(struct rtm_view *v) { return rtm_view_is_revoked(v, "demo", "jti-1", "alice", 0) == 1; }
static int peer_revoked(struct rtm_view *v) { return rtm_view_is_revoked(v, "demo", "x", "bob", 0) == 1; } /* issued before it */
static int app_set(struct rtm_view *v)
{
    struct rtm_app a;
    return rtm_view_app(v, "demo", &a) == 0 && a.max_connections == 7;
}

static void changes_seen(void)
{
    struct rtm_store *st;
    char err[256];
    n_key_revoked = 0;
    rtm_key_free(&k1);
    CHECK(rtm_store_open_opts(where, &where_opts, &st, err, sizeof err) == 0);
    if (!st) return;
    struct rtm_key_spec sp = {.app = "demo"};
    CHECK(rtm_store_key_create(st, &sp, &k1) == 0);
    rtm_store_close(st);

    struct rtm_view *v = open_view("node-a", 0, 1000);
    CHECK(v != NULL);
    if (!v) return;
    /* Loaded at open: the first connection needs no poll. */
    const struct rtm_key *k = rtm_view_key(v, k1.id);
    CHECK(k && !k->revoked && strcmp(k->app, "demo") == 0);
    CHECK(rtm_view_key_by_secret(v, k1.secret) == k);
    CHECK(rtm_view_key_by_secret(v, "sk_secret_nope") == NULL);
    struct rtm_app a;
    CHECK(rtm_view_app(v, "demo", &a) == 0 && a.max_connections == 0);
    CHECK(rtm_view_app(v, "absent", &a) == RTM_ENOTFOUND);

    /* A key created elsewhere (rtm key create). */
    CHECK(in_other_process("make_key") == 0);
    FILE *f = fopen("/tmp/rtm-view-test-kid", "r");
    char secret[128] = "";
    CHECK(f && fscanf(f, "%79s %127s", new_kid, secret) == 2);
    if (f) fclose(f);
    remove("/tmp/rtm-view-test-kid");
    CHECK(drain_until(v, key_known));
    CHECK(rtm_view_key_by_secret(v, secret) == rtm_view_key(v, new_kid));

    /* A key revoked elsewhere (rtm key revoke): the hook names it, once. */
    unsigned char mac[RTM_HS256_LEN];
    CHECK(rtm_hs256(k1.secret, (const unsigned char *)"h.p", 3, mac) == 0); /* this thread keeps k1 keyed */
    CHECK(rtm_hs256_kept() >= 1);
    CHECK(in_other_process("revoke_k1") == 0);
    CHECK(drain_until(v, k1_revoked));
    CHECK_STR(last_kid, k1.id);
    /* ... and no thread keeps a keyed copy of it past its next MAC (common/hs256.c) */
    CHECK(rtm_hs256("another-secret", (const unsigned char *)"h.p", 3, mac) == 0);
    CHECK(rtm_hs256_kept() == 1);
    CHECK(rtm_view_key_by_secret(v, k1.secret) == NULL);

    /* Revocations by jti and by peer (the mint API of a mint-only rtmd). */
    int before = n_revoked;
    CHECK(in_other_process("revoke_jti") == 0);
    CHECK(drain_until(v, jti_revoked));
    CHECK(rtm_view_is_revoked(v, "demo", "jti-2", "alice", 0) == 0);
    CHECK(rtm_view_is_revoked(v, "other-app", "jti-1", "alice", 0) == 0);
    CHECK(in_other_process("revoke_peer") == 0);
    CHECK(drain_until(v, peer_revoked));
    CHECK(rtm_view_is_revoked(v, "demo", "x", "bob", rtm_now_s() + 5) == 0); /* issued after: valid */
    CHECK(n_revoked == before + 2);

    /* An app setting changed elsewhere (rtm app set). */
    CHECK(in_other_process("set_app") == 0);
    CHECK(drain_until(v, app_set));

    /* A revocation made here is enforced at once, and the poll's copy of it
     * later changes nothing. */
    struct rtm_revocation r = {"demo", "jti-local", NULL, 0};
    before = n_revoked;
    rtm_view_revocation_add(v, &r);
    CHECK(n_revoked == before + 1);
    rtm_view_revocation_add(v, &r);
    CHECK(n_revoked == before + 1);
    CHECK(rtm_view_is_revoked(v, "demo", "jti-local", "a", 0) == 1);

    /* A refresh ticket is answered by a poll. */
    uint64_t t = rtm_view_refresh(v);
    int refreshed = n_refreshed;
    int64_t end = rtm_mono_ms() + 1000;
    while (rtm_view_served(v) < t && rtm_mono_ms() < end) {
        usleep(5000);
        rtm_view_drain(v);
    }
    CHECK(rtm_view_served(v) >= t);
    CHECK(n_refreshed == refreshed + 1);
    rtm_view_close(v);
}

TEST(changes_from_another_process_are_seen_within_a_second) { changes_seen(); }

static int row_written(struct rtm_view *v)
{
    (void)v;
    struct rtm_store *st;
    json_t *rows = NULL;
    if (rtm_store_open(where, &st, NULL, 0)) return 0;
    int ok = rtm_store_sessions_query(st, "demo", "writer-peer", 10, &rows) == 0 && json_array_size(rows) == 1;
    json_decref(rows);
    rtm_store_close(st);
    return ok;
}

TEST(session_rows_go_through_the_writer)
{
    struct rtm_view *v = open_view("node-w", 0, 1000);
    CHECK(v != NULL);
    if (!v) return;
    struct rtm_session_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "ses_writer");
    snprintf(r.app, sizeof r.app, "demo");
    snprintf(r.peer_id, sizeof r.peer_id, "writer-peer");
    r.connected_ms = rtm_now_ms();
    r.origin = strdup("https://a.example");
    rtm_view_session_row(v, &r);
    CHECK(r.origin == NULL); /* taken */
    CHECK(drain_until(v, row_written));
    rtm_view_close(v);
}

static int degraded(struct rtm_view *v) { return rtm_view_status(v, NULL, 0) == 1; }
static int healthy(struct rtm_view *v) { return rtm_view_status(v, NULL, 0) == 0; }
static int all_rows_written(struct rtm_view *v)
{
    (void)v;
    struct rtm_store *st;
    json_t *rows = NULL;
    if (rtm_store_open(db, &st, NULL, 0)) return 0;
    int n = rtm_store_sessions_query(st, "locked", NULL, 1000, &rows) == 0 ? (int)json_array_size(rows) : -1;
    json_decref(rows);
    rtm_store_close(st);
    return n == 64;
}

TEST(a_locked_store_degrades_drops_the_oldest_rows_and_recovers)
{
    struct rtm_view *v = open_view("node-l", 0, 64);
    CHECK(v != NULL);
    if (!v) return;
    CHECK(healthy(v));
    /* Another writer holds the lock: every write waits out the busy timeout and fails. */
    sqlite3 *holder = NULL;
    CHECK(sqlite3_open(db, &holder) == SQLITE_OK);
    CHECK(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    for (int i = 0; i < 100; i++) {
        struct rtm_session_row r;
        memset(&r, 0, sizeof r);
        snprintf(r.id, sizeof r.id, "ses_locked_%03d", i);
        snprintf(r.app, sizeof r.app, "locked");
        snprintf(r.peer_id, sizeof r.peer_id, "p%d", i);
        r.connected_ms = rtm_now_ms() + i;
        rtm_view_session_row(v, &r);
    }
    CHECK(rtm_view_rows_dropped(v) == 36); /* 100 rows, 64 kept: the oldest went */
    int64_t end = rtm_mono_ms() + 5000;    /* the first write waits out the 2 s busy timeout */
    while (!degraded(v) && rtm_mono_ms() < end) usleep(10000);
    char why[200] = "";
    CHECK(rtm_view_status(v, why, sizeof why) == 1);
    CHECK(strstr(why, "cannot") != NULL);
    /* Lookups still answer from memory meanwhile. */
    CHECK(rtm_view_key(v, k1.id) != NULL);
    sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(holder);
    end = rtm_mono_ms() + 6000;
    while (!(healthy(v) && all_rows_written(v)) && rtm_mono_ms() < end) usleep(20000);
    CHECK(healthy(v));
    CHECK(all_rows_written(v)); /* the newest 64 waited in memory and were written */
    rtm_view_close(v);
}

static int got_kick(struct rtm_view *v)
{
    (void)v;
    return n_outbox > 0 && strcmp(last_kind, "kick") == 0 && strcmp(last_target, "carol") == 0;
}

TEST(the_outbox_carries_a_kick_to_a_broker_view)
{
    struct rtm_view *mint = open_view("node-m", 0, 1000);
    struct rtm_view *brk = open_view("node-b", 1, 1000);
    CHECK(mint && brk);
    if (!mint || !brk) return;
    n_outbox = 0;
    CHECK(rtm_view_outbox_post(mint, "kick", "demo", "carol", NULL) == 0);
    CHECK(drain_until(brk, got_kick));
    CHECK(n_outbox == 1);
    rtm_view_close(mint);
    rtm_view_close(brk);
}

TEST(a_restart_closes_only_its_own_rows)
{
    struct rtm_store *st;
    CHECK(rtm_store_open(db, &st, NULL, 0) == 0);
    struct rtm_session_row r[3];
    memset(r, 0, sizeof r);
    const char *nodes[3] = {"n-a", "n-b", "n-a"};
    for (int i = 0; i < 3; i++) {
        snprintf(r[i].id, sizeof r[i].id, "ses_node_%d", i);
        snprintf(r[i].node_id, sizeof r[i].node_id, "%s", nodes[i]);
        snprintf(r[i].app, sizeof r[i].app, "nodes");
        snprintf(r[i].peer_id, sizeof r[i].peer_id, "p");
        r[i].connected_ms = rtm_now_ms();
    }
    CHECK(rtm_store_sessions_write(st, r, 3) == 0);
    CHECK(rtm_store_sessions_close_dangling(st, "n-a", "server restart") == 2);
    CHECK(rtm_store_sessions_close_dangling(st, "n-a", "server restart") == 0);
    json_t *rows = NULL;
    CHECK(rtm_store_sessions_query(st, "nodes", NULL, 10, &rows) == 0);
    size_t i;
    json_t *o;
    int open = 0;
    json_array_foreach(rows, i, o) if (json_is_null(json_object_get(o, "closedAt"))) open++;
    CHECK(open == 1); /* n-b's row is another node's: left open */
    json_decref(rows);
    rtm_store_close(st);
}

/* ---- the same on Postgres ---- */
static char pg_dir[80];

TEST(zz_changes_seen_on_postgres)
{
    static char url[256], pwfile[160];
    char args[160];
    snprintf(pg_dir, sizeof pg_dir, "/tmp/rtm-view-pg.%d", (int)getpid());
    snprintf(args, sizeof args, "start %s", pg_dir);
    int started = pg_sh(args, "RTM_PG_URL=", url, sizeof url) == 0 && url[0];
    CHECK(started); /* tests/lib/pg.sh: is the postgresql package installed? */
    if (started) {
        snprintf(pwfile, sizeof pwfile, "%s/password", pg_dir);
        where = url;
        where_opts.password_file = pwfile;
        changes_seen();
        where = db;
        where_opts.password_file = NULL;
    }
    snprintf(args, sizeof args, "stop %s", pg_dir);
    pg_sh(args, NULL, NULL, 0);
}

/* The child side of in_other_process: test_view --child OP STORE PASSWORD_FILE K1_ID */
static int child_main(char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(struct rtm_store *);
    } ops[] = {{"make_key", make_key}, {"revoke_k1", revoke_k1}, {"revoke_jti", revoke_jti},
               {"revoke_peer", revoke_peer}, {"set_app", set_app}};
    struct rtm_store_opts o = where_opts;
    o.password_file = argv[4][0] ? argv[4] : NULL;
    snprintf(k1.id, sizeof k1.id, "%s", argv[5]); /* revoke_k1's key, made by the parent */
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(ops[i].name, argv[2])) continue;
        struct rtm_store *st;
        char err[256];
        if (rtm_store_open_opts(argv[3], &o, &st, err, sizeof err)) return 10;
        int rc = ops[i].fn(st);
        rtm_store_close(st);
        return rc ? 11 : 0;
    }
    return 13;
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 6 && strcmp(argv[1], "--child") == 0) return child_main(argv);
    rtm_log_level = RTM_LOG_ERROR;
    snprintf(dir, sizeof dir, "/tmp/rtm-view-test.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(db, sizeof db, "%s/rtm.db", dir);
    where = db;
    int rc = RUN_TESTS();
    rtm_key_free(&k1);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}
