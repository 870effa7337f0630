/* test_store.c: the store on both backends: sqlite files in a temporary
 * directory, and a real Postgres server this test starts (tests/lib/pg.sh:
 * initdb into a temporary directory, loopback port, stopped by PID at the end).
 *
 * Covers sqlite's open (new, existing, empty, and every refusal: missing
 * directory, a directory, garbage bytes, a newer schema, a foreign database,
 * a locked file, an unwritable file) with the promise that a refused file is
 * left byte-for-byte as it was; Postgres's open (new database, newer schema,
 * foreign tables, concurrent first opens, passwords kept out of errors and
 * logs, a lock that would hang, the server stopped and back); then keys,
 * apps, revocations and sessions: every STORE_TEST runs once per backend
 * (the _pg twin on Postgres), with the same assertions.
 * The unwritable case drops to uid nobody in a child, since root ignores
 * file modes. The two locked cases each wait out the store's busy timeout. */
#define _GNU_SOURCE /* nftw */
#include "testlib.h"
#include "pg_sh.h"

#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "store.h"
#include "util.h"

#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <time.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern const char *const rtm_schema_migrations[];
extern const size_t rtm_schema_migration_count;
extern const char *const rtm_pg_schema_migrations[];
extern const size_t rtm_pg_schema_migration_count;

static char tmpdir[64];

static const char *tpath(const char *name)
{
    static char buf[8][256];
    static int next;
    char *p = buf[next++ % 8];
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/rtm-store-test.XXXXXX");
        if (!mkdtemp(tmpdir)) abort();
    }
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

/* Reads a whole (small) file; returns its length, -1 when absent. */
static long read_file(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---- the Postgres server (started on first use, stopped by zz_cleanup) ---- */

static char pg_dir[80], pg_url[256], pg_password_file[256];
static int pg_failed;

static int is_url(const char *where) { return !strncmp(where, "postgresql://", 13); }


static int pg_ready(void)
{
    if (pg_url[0]) return 1;
    if (pg_failed) {
        CHECK(!"the Postgres test server did not start (see above)");
        return 0;
    }
    snprintf(pg_dir, sizeof pg_dir, "/tmp/rtm-store-pg.%d", (int)getpid());
    char args[128];
    snprintf(args, sizeof args, "start %s", pg_dir);
    if (pg_sh(args, "RTM_PG_URL=", pg_url, sizeof pg_url) != 0 || !pg_url[0]) {
        fprintf(stderr, "  tests/lib/pg.sh start failed: is the postgresql package installed?\n");
        pg_url[0] = '\0';
        pg_failed = 1;
        CHECK(!"the Postgres test server did not start");
        return 0;
    }
    snprintf(pg_password_file, sizeof pg_password_file, "%s/password", pg_dir);
    return 1;
}

/* A fresh Postgres database; returns its URL (static ring of buffers). */
static const char *pg_newdb(const char *name)
{
    static char buf[8][256];
    static int next;
    char *u = buf[next++ % 8], args[256];
    snprintf(args, sizeof args, "createdb %s %s", pg_dir, name);
    if (pg_sh(args, NULL, u, 256) != 0) u[0] = '\0';
    CHECK(u[0] != '\0');
    return u;
}

static char *read_password(void)
{
    static char pw[128];
    FILE *f = fopen(pg_password_file, "r");
    pw[0] = '\0';
    if (f) {
        if (!fgets(pw, sizeof pw, f)) pw[0] = '\0';
        fclose(f);
    }
    pw[strcspn(pw, "\n")] = '\0';
    return pw;
}

static PGconn *pg_raw(const char *url)
{
    const char *keys[] = {"dbname", "password", NULL}, *vals[] = {url, read_password(), NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) fprintf(stderr, "  raw connect: %s", PQerrorMessage(c));
    return c;
}

/* Runs SQL on a raw connection (outside the store) and returns an int result. */
static int raw_int(const char *path, const char *sql)
{
    if (is_url(path)) {
        PGconn *c = pg_raw(path);
        PGresult *r = PQexec(c, sql);
        int v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : -12345;
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int v = -12345;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    if (is_url(path)) {
        PGconn *c = pg_raw(path);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "raw_exec: %s\n", PQresultErrorMessage(r));
            abort();
        }
        PQclear(r);
        PQfinish(c);
        return;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw_exec: %s\n", sqlite3_errmsg(db));
        abort();
    }
    sqlite3_close(db);
}

/* Opens a sqlite path, or a Postgres URL with the test server's password file. */
static int open_where(const char *where, struct rtm_store **st, char *err, size_t errlen)
{
    struct rtm_store_opts o = {.password_file = is_url(where) ? pg_password_file : NULL};
    return rtm_store_open_opts(where, &o, st, err, errlen);
}

static struct rtm_store *open_ok(const char *path)
{
    struct rtm_store *st = NULL;
    char err[512] = "";
    int rc = open_where(path, &st, err, sizeof err);
    if (rc) fprintf(stderr, "  open %s: %d %s\n", path, rc, err);
    CHECK(rc == 0 && st != NULL);
    return st;
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i])) return 0;
    return s[n] == '\0';
}

/* ---- open and migrations ---- */

TEST(new_file_is_created_and_migrated)
{
    const char *p = tpath("new.db");
    CHECK(!exists(p));
    struct rtm_store *st = open_ok(p);
    if (!st) return;
    CHECK(rtm_store_version(st) == (int)rtm_schema_migration_count);
    CHECK(rtm_schema_migration_count >= 1);
    rtm_store_close(st);
    CHECK(raw_int(p, "PRAGMA user_version") == (int)rtm_schema_migration_count);
    CHECK(raw_int(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                     "('apps', 'keys', 'revocations', 'sessions')") == 4);
    CHECK(raw_int(p, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = "
                     "'sessions_by_peer'") == 1);
    /* WAL is a property of the file: a fresh connection sees it. */
    sqlite3 *db;
    sqlite3_open(p, &db);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

TEST(reopen_existing_keeps_data_and_version)
{
    const char *p = tpath("reopen.db");
    struct rtm_store *st = open_ok(p);
    if (!st) return;
    struct rtm_key k;
    struct rtm_key_spec spec = {.app = "demo"};
    CHECK(rtm_store_key_create(st, &spec, &k) == 0);
    rtm_store_close(st);
    for (int i = 0; i < 2; i++) { /* reopening twice changes nothing */
        st = open_ok(p);
        if (!st) break;
        CHECK(rtm_store_version(st) == (int)rtm_schema_migration_count);
        struct rtm_key again;
        CHECK(rtm_store_key_get(st, k.id, &again) == 0);
        CHECK_STR(again.secret, k.secret);
        rtm_key_free(&again);
        rtm_store_close(st);
    }
    CHECK(raw_int(p, "SELECT count(*) FROM keys") == 1);
    CHECK(raw_int(p, "PRAGMA user_version") == (int)rtm_schema_migration_count);
    rtm_key_free(&k);
}

TEST(empty_file_is_a_new_database)
{
    const char *p = tpath("empty.db");
    write_file(p, "", 0);
    struct rtm_store *st = open_ok(p);
    if (st) CHECK(rtm_store_version(st) == (int)rtm_schema_migration_count);
    rtm_store_close(st);
}

TEST(embedded_migrations_are_the_schema_files)
{
    /* The embed script must carry quotes and multi-line SQL through intact. */
    CHECK(strstr(rtm_schema_migrations[0], "CREATE TABLE sessions (\n") != NULL);
    CHECK(strstr(rtm_schema_migrations[0], "DEFAULT '[\"**\"]'") != NULL);
    CHECK(strstr(rtm_schema_migrations[0], "\"before\" INTEGER") != NULL);
}

TEST(missing_directory_is_named)
{
    const char *p = tpath("no-such-dir/rtm.db");
    struct rtm_store *st = (struct rtm_store *)1;
    char err[512] = "";
    CHECK(rtm_store_open(p, &st, err, sizeof err) < 0);
    CHECK(st == NULL);
    CHECK(strstr(err, p) != NULL);
    CHECK(strstr(err, "no-such-dir does not exist") != NULL);
    CHECK(!exists(tpath("no-such-dir")));
}

TEST(directory_path_is_refused)
{
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(rtm_store_open(tmpdir, &st, err, sizeof err) < 0);
    CHECK(strstr(err, "is a directory") != NULL);
    CHECK(rtm_store_open("", &st, err, sizeof err) == RTM_EINVAL);
}

TEST(garbage_file_is_refused_and_left_alone)
{
    const char *p = tpath("garbage.db");
    unsigned char junk[8192], after[9000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 131 + 7);
    write_file(p, junk, sizeof junk);
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(rtm_store_open(p, &st, err, sizeof err) == RTM_ESTORE);
    CHECK(st == NULL);
    CHECK(strstr(err, p) != NULL);
    CHECK(strstr(err, "not a usable database") != NULL);
    CHECK(strstr(err, "move it aside") != NULL);
    CHECK(strchr(err, '\n') == NULL);
    CHECK(read_file(p, after, sizeof after) == (long)sizeof junk);
    CHECK(memcmp(junk, after, sizeof junk) == 0);
}

TEST(corrupt_database_is_refused_and_left_alone)
{
    /* A real database whose schema page is then overwritten. */
    const char *p = tpath("corrupt.db");
    raw_exec(p, "CREATE TABLE t (a); INSERT INTO t VALUES (1);");
    static unsigned char before[65536], after[65536];
    long n = read_file(p, before, sizeof before);
    CHECK(n >= 4096);
    int fd = open(p, O_WRONLY);
    CHECK(pwrite(fd, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 100) == 8); /* b-tree page header */
    close(fd);
    n = read_file(p, before, sizeof before);
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(rtm_store_open(p, &st, err, sizeof err) == RTM_ESTORE);
    CHECK(strstr(err, p) != NULL);
    CHECK(strstr(err, "not a usable database") != NULL);
    CHECK(read_file(p, after, sizeof after) == n);
    CHECK(memcmp(before, after, (size_t)n) == 0);
}

TEST(newer_schema_is_refused_and_left_alone)
{
    const char *p = tpath("newer.db");
    raw_exec(p, "CREATE TABLE future (x); INSERT INTO future VALUES (42); PRAGMA user_version = 999;");
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(rtm_store_open(p, &st, err, sizeof err) == RTM_ESTORE);
    CHECK(st == NULL);
    CHECK(strstr(err, p) != NULL);
    CHECK(strstr(err, "schema version 999") != NULL);
    CHECK(strstr(err, "upgrade rtm") != NULL);
    CHECK(raw_int(p, "PRAGMA user_version") == 999);
    CHECK(raw_int(p, "SELECT x FROM future") == 42);
    CHECK(raw_int(p, "SELECT count(*) FROM sqlite_schema WHERE name = 'apps'") == 0);
}

TEST(foreign_database_is_refused)
{
    const char *p = tpath("foreign.db");
    raw_exec(p, "CREATE TABLE apps (whatever); INSERT INTO apps VALUES ('mine');");
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(rtm_store_open(p, &st, err, sizeof err) == RTM_ESTORE);
    CHECK(strstr(err, "not an rtm database") != NULL);
    CHECK(raw_int(p, "SELECT count(*) FROM apps WHERE whatever = 'mine'") == 1);
}

/* Holds the write lock from another connection while the store opens. */
static void check_locked(const char *p, const char *hold_sql)
{
    sqlite3 *other = NULL;
    CHECK(sqlite3_open(p, &other) == SQLITE_OK);
    CHECK(sqlite3_exec(other, hold_sql, NULL, NULL, NULL) == SQLITE_OK);
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(rtm_store_open(p, &st, err, sizeof err) == RTM_ESTORE);
    CHECK(st == NULL);
    CHECK(strstr(err, p) != NULL);
    CHECK(strstr(err, "is locked by another process") != NULL);
    CHECK(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(other);
    /* Once the other writer is gone, the same file opens with its data. */
    st = open_ok(p);
    rtm_store_close(st);
}

TEST(locked_wal_database_is_refused)
{
    const char *p = tpath("locked-wal.db");
    rtm_store_close(open_ok(p));
    check_locked(p, "BEGIN EXCLUSIVE; INSERT INTO apps (name, created) VALUES ('held', 1);");
    CHECK(raw_int(p, "SELECT count(*) FROM apps WHERE name = 'held'") == 1);
}

TEST(locked_rollback_journal_database_is_refused)
{
    /* Not yet WAL: an exclusive lock here blocks even reading. */
    const char *p = tpath("locked-journal.db");
    raw_exec(p, "PRAGMA user_version = 0;");
    check_locked(p, "BEGIN EXCLUSIVE;");
    CHECK(raw_int(p, "PRAGMA user_version") == (int)rtm_schema_migration_count);
}

TEST(unwritable_database_is_refused)
{
    const char *p = tpath("readonly.db");
    rtm_store_close(open_ok(p));
    /* The temp dir stays traversable and the file readable, neither writable.
     * Root ignores modes, so a child drops to nobody first. */
    chmod(tmpdir, 0555);
    chmod(p, 0444);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
        struct rtm_store *st = NULL;
        char err[512] = "";
        int rc = rtm_store_open(p, &st, err, sizeof err);
        rtm_store_close(st);
        ssize_t w = write(fds[1], err, strlen(err));
        (void)w;
        close(fds[1]);
        _exit(rc == RTM_ESTORE ? 0 : 1);
    }
    close(fds[1]);
    char err[513] = "";
    ssize_t n = read(fds[0], err, sizeof err - 1);
    close(fds[0]);
    err[n > 0 ? n : 0] = '\0';
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(err, p) != NULL);
    CHECK(strstr(err, "read-only") != NULL || strstr(err, "cannot be opened for writing") != NULL);
    chmod(tmpdir, 0700);
    chmod(p, 0644);
    /* The file is intact and usable by its owner. */
    struct rtm_store *st = open_ok(p);
    rtm_store_close(st);
}

TEST(two_stores_share_a_file)
{
    /* `rtm key create` beside a live rtmd: WAL lets both work. */
    const char *p = tpath("shared.db");
    struct rtm_store *a = open_ok(p), *b = open_ok(p);
    if (!a || !b) goto out;
    struct rtm_key k, seen;
    struct rtm_key_spec spec = {.app = "demo"};
    CHECK(rtm_store_key_create(b, &spec, &k) == 0);
    CHECK(rtm_store_key_by_secret(a, k.secret, &seen) == 0);
    CHECK_STR(seen.id, k.id);
    rtm_key_free(&seen);
    rtm_key_free(&k);
out:
    rtm_store_close(a);
    rtm_store_close(b);
}

/* ---- both backends ---- */

/* The backend the current STORE_TEST runs on: 0 sqlite, 1 Postgres. */
static int pg_mode;

/* Registers the test twice: on sqlite as `name`, on Postgres as `name_pg`. */
#define STORE_TEST(name)                                                                           \
    static void body_##name(void);                                                                 \
    TEST(name)                                                                                     \
    {                                                                                              \
        pg_mode = 0;                                                                               \
        body_##name();                                                                             \
    }                                                                                              \
    TEST(name##_pg)                                                                                \
    {                                                                                              \
        pg_mode = 1;                                                                               \
        if (pg_ready()) body_##name();                                                             \
    }                                                                                              \
    static void body_##name(void)

/* A fresh, empty store location on the current backend. */
static const char *db_at(const char *name)
{
    if (!pg_mode) {
        char file[64];
        snprintf(file, sizeof file, "%s.db", name);
        return tpath(file);
    }
    return pg_newdb(name);
}

static struct rtm_store *shared[2];

static struct rtm_store *store(void)
{
    if (!shared[pg_mode]) shared[pg_mode] = open_ok(db_at("main"));
    return shared[pg_mode];
}

/* ---- keys ---- */

STORE_TEST(secret_key_defaults_and_formats)
{
    struct rtm_store *st = store();
    struct rtm_key k;
    struct rtm_key_spec spec = {.app = "demo"};
    CHECK(rtm_store_key_create(st, &spec, &k) == 0);
    CHECK(strncmp(k.id, "sk_id_", 6) == 0 && is_hex(k.id + 6, 32));
    CHECK(k.secret && strncmp(k.secret, "sk_secret_", 10) == 0 && is_hex(k.secret + 10, 64));
    CHECK_STR(k.app, "demo");
    CHECK_STR(k.alg, "HS256");
    CHECK(k.publishable == 0);
    CHECK(k.n_channels == 1 && !strcmp(k.channels[0], "**"));
    CHECK(k.actions == RTM_PERM_ALL);
    CHECK(k.n_origins == 0 && k.origins == NULL);
    CHECK(k.revoked == 0 && k.created > 1700000000);

    struct rtm_key g;
    CHECK(rtm_store_key_get(st, k.id, &g) == 0);
    CHECK_STR(g.secret, k.secret);
    rtm_key_free(&g);
    CHECK(rtm_store_key_by_secret(st, k.secret, &g) == 0);
    CHECK_STR(g.id, k.id);
    rtm_key_free(&g);

    char wrong[100];
    snprintf(wrong, sizeof wrong, "%s", k.secret);
    wrong[20] = wrong[20] == 'a' ? 'b' : 'a';
    CHECK(rtm_store_key_by_secret(st, wrong, &g) == RTM_ENOTFOUND);
    CHECK(rtm_store_key_by_secret(st, k.id, &g) == RTM_ENOTFOUND);
    CHECK(rtm_store_key_get(st, "sk_id_nope", &g) == RTM_ENOTFOUND);

    /* The app came with it, with defaults. */
    struct rtm_app app;
    CHECK(rtm_store_app_get(st, "demo", &app) == 0);
    CHECK(app.duplicate_replace == 0 && app.resume_window_ms == -1 && app.max_connections == 0);

    struct rtm_key k2;
    CHECK(rtm_store_key_create(st, &spec, &k2) == 0);
    CHECK(strcmp(k2.id, k.id) != 0 && strcmp(k2.secret, k.secret) != 0);
    rtm_key_free(&k2);
    rtm_key_free(&k);
}

STORE_TEST(publishable_key_with_scope)
{
    struct rtm_store *st = store();
    const char *channels[] = {"room-*", "lobby/**"};
    const char *origins[] = {"https://a.example", "http://localhost:3000"};
    struct rtm_key_spec spec = {
        .app = "demo",
        .publishable = 1,
        .channels = channels,
        .n_channels = 2,
        .actions = RTM_PERM_SUBSCRIBE | RTM_PERM_PRESENCE,
        .origins = origins,
        .n_origins = 2,
    };
    struct rtm_key k, g;
    CHECK(rtm_store_key_create(st, &spec, &k) == 0);
    CHECK(strncmp(k.id, "pk_", 3) == 0 && is_hex(k.id + 3, 32));
    CHECK(k.publishable == 1 && k.secret == NULL && k.alg[0] == '\0');
    CHECK(rtm_store_key_get(st, k.id, &g) == 0);
    CHECK(g.n_channels == 2 && !strcmp(g.channels[0], "room-*") && !strcmp(g.channels[1], "lobby/**"));
    CHECK(g.actions == (RTM_PERM_SUBSCRIBE | RTM_PERM_PRESENCE));
    CHECK(g.n_origins == 2 && !strcmp(g.origins[1], "http://localhost:3000"));
    CHECK(g.publishable == 1 && g.secret == NULL);
    rtm_key_free(&g);
    rtm_key_free(&k);
}

static char *public_pem(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pk);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

STORE_TEST(asymmetric_keys_and_public_list)
{
    struct rtm_store *st = store();
    EVP_PKEY *ec = EVP_EC_gen("P-256"), *rsa = EVP_RSA_gen(2048);
    char *ec_pem = public_pem(ec), *rsa_pem = public_pem(rsa);
    struct rtm_key k;
    struct rtm_key_spec es = {.app = "demo", .alg = "ES256", .kid = "ec-1", .public_pem = ec_pem};
    struct rtm_key_spec rs = {.app = "demo", .alg = "RS256", .kid = "rsa-1", .public_pem = rsa_pem};
    CHECK(rtm_store_key_create(st, &es, &k) == 0);
    CHECK_STR(k.id, "ec-1");
    CHECK_STR(k.alg, "ES256");
    CHECK_STR(k.secret, ec_pem);
    rtm_key_free(&k);
    CHECK(rtm_store_key_create(st, &rs, &k) == 0);
    rtm_key_free(&k);
    CHECK(rtm_store_key_create(st, &es, NULL) == RTM_EEXISTS);

    /* Refusals: wrong key type, no kid, no PEM, reserved kid prefix. */
    struct rtm_key_spec bad = {.app = "demo", .alg = "RS256", .kid = "x", .public_pem = ec_pem};
    CHECK(rtm_store_key_create(st, &bad, NULL) == RTM_EINVAL);
    bad = (struct rtm_key_spec){.app = "demo", .alg = "ES256", .public_pem = ec_pem};
    CHECK(rtm_store_key_create(st, &bad, NULL) == RTM_EINVAL);
    bad = (struct rtm_key_spec){.app = "demo", .alg = "ES256", .kid = "y"};
    CHECK(rtm_store_key_create(st, &bad, NULL) == RTM_EINVAL);
    bad = (struct rtm_key_spec){.app = "demo", .alg = "ES256", .kid = "sk_id_1", .public_pem = ec_pem};
    CHECK(rtm_store_key_create(st, &bad, NULL) == RTM_EINVAL);
    bad = (struct rtm_key_spec){.app = "demo", .alg = "ES256", .kid = "z", .public_pem = "-----BEGIN junk"};
    CHECK(rtm_store_key_create(st, &bad, NULL) == RTM_EINVAL);

    json_t *list = NULL;
    CHECK(rtm_store_key_public_list(st, &list) == 0);
    int found_ec = 0, found_rsa = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *kid = json_string_value(json_object_get(v, "kid"));
        const char *alg = json_string_value(json_object_get(v, "alg"));
        const char *pem = json_string_value(json_object_get(v, "pem"));
        if (kid && !strcmp(kid, "ec-1")) found_ec = alg && !strcmp(alg, "ES256") && pem && !strcmp(pem, ec_pem);
        if (kid && !strcmp(kid, "rsa-1")) found_rsa = alg && !strcmp(alg, "RS256");
        CHECK(kid && strncmp(kid, "sk_", 3) != 0); /* never an HS256 key */
    }
    CHECK(found_ec && found_rsa);
    json_decref(list);
    /* A revoked key leaves the JWKS. */
    CHECK(rtm_store_key_revoke(st, "rsa-1") == 0);
    CHECK(rtm_store_key_public_list(st, &list) == 0);
    json_array_foreach(list, i, v) CHECK(strcmp(json_string_value(json_object_get(v, "kid")), "rsa-1") != 0);
    json_decref(list);

    free(ec_pem);
    free(rsa_pem);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
}

STORE_TEST(key_spec_refusals)
{
    struct rtm_store *st = store();
    const char *empty[] = {""};
    const char *ctl[] = {"room\n1"};
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    struct rtm_key_spec bad[] = {
        {.app = ""},
        {.app = NULL},
        {.app = longname},
        {.app = "has space"},
        {.app = "demo", .channels = empty, .n_channels = 1},
        {.app = "demo", .channels = ctl, .n_channels = 1},
        {.app = "demo", .origins = empty, .n_origins = 1},
        {.app = "demo", .actions = 1u << 7},
        {.app = "demo", .alg = "HS512"},
        {.app = "demo", .kid = "custom"},
        {.app = "demo", .publishable = 1, .alg = "HS256"},
    };
    json_t *before = NULL, *after = NULL;
    CHECK(rtm_store_key_list(st, &before) == 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = rtm_store_key_create(st, &bad[i], NULL);
        if (rc != RTM_EINVAL) fprintf(stderr, "  spec %zu: %d\n", i, rc);
        CHECK(rc == RTM_EINVAL);
    }
    CHECK(rtm_store_key_list(st, &after) == 0);
    CHECK(json_array_size(before) == json_array_size(after));
    json_decref(before);
    json_decref(after);
}

STORE_TEST(key_list_hides_secrets_and_revoke)
{
    struct rtm_store *st = store();
    struct rtm_key k;
    struct rtm_key_spec spec = {.app = "listed"};
    CHECK(rtm_store_key_create(st, &spec, &k) == 0);
    json_t *list = NULL;
    CHECK(rtm_store_key_list(st, &list) == 0);
    char *text = json_dumps(list, 0);
    CHECK(text && strstr(text, k.id) != NULL);
    CHECK(text && strstr(text, "sk_secret_") == NULL);
    free(text);
    size_t i;
    json_t *v, *mine = NULL;
    json_array_foreach(list, i, v)
    {
        CHECK(json_object_get(v, "secret") == NULL);
        if (!strcmp(json_string_value(json_object_get(v, "id")), k.id)) mine = v;
    }
    CHECK(mine != NULL);
    if (mine) {
        CHECK_STR(json_string_value(json_object_get(mine, "app")), "listed");
        CHECK_STR(json_string_value(json_object_get(mine, "kind")), "secret");
        CHECK_STR(json_string_value(json_object_get(mine, "alg")), "HS256");
        CHECK(json_array_size(json_object_get(mine, "actions")) == 4);
        CHECK(json_integer_value(json_object_get(mine, "revoked")) == 0);
    }
    json_decref(list);

    CHECK(rtm_store_key_revoke(st, k.id) == 0);
    struct rtm_key g;
    CHECK(rtm_store_key_get(st, k.id, &g) == 0);
    CHECK(g.revoked >= k.created);
    int64_t first = g.revoked;
    rtm_key_free(&g);
    /* Revoked keys are still found (callers check revoked), and stay revoked. */
    CHECK(rtm_store_key_by_secret(st, k.secret, &g) == 0);
    CHECK(g.revoked == first);
    rtm_key_free(&g);
    CHECK(rtm_store_key_revoke(st, k.id) == 0);
    CHECK(rtm_store_key_get(st, k.id, &g) == 0);
    CHECK(g.revoked == first);
    rtm_key_free(&g);
    CHECK(rtm_store_key_revoke(st, "sk_id_absent") == RTM_ENOTFOUND);
    rtm_key_free(&k);
}

/* ---- apps ---- */

STORE_TEST(app_settings)
{
    struct rtm_store *st = store();
    struct rtm_app app;
    CHECK(rtm_store_app_get(st, "nope", &app) == RTM_ENOTFOUND);
    CHECK(rtm_store_app_ensure(st, "apps-1", &app) == 0);
    CHECK_STR(app.name, "apps-1");
    CHECK(app.duplicate_replace == 0 && app.resume_window_ms == -1 && app.max_connections == 0);
    CHECK(rtm_store_app_set(st, "apps-1", "duplicatePeer", "replace") == 0);
    CHECK(rtm_store_app_set(st, "apps-1", "resumeWindowMs", "5000") == 0);
    CHECK(rtm_store_app_set(st, "apps-1", "maxConnections", "10") == 0);
    CHECK(rtm_store_app_ensure(st, "apps-1", &app) == 0); /* ensure keeps settings */
    CHECK(app.duplicate_replace == 1 && app.resume_window_ms == 5000 && app.max_connections == 10);
    CHECK(rtm_store_app_set(st, "apps-1", "duplicatePeer", "allow") == 0);
    CHECK(rtm_store_app_get(st, "apps-1", &app) == 0 && app.duplicate_replace == 0);
    /* set creates the app when new */
    CHECK(rtm_store_app_set(st, "apps-2", "duplicatePeer", "replace") == 0);
    CHECK(rtm_store_app_get(st, "apps-2", &app) == 0 && app.duplicate_replace == 1);

    CHECK(rtm_store_app_set(st, "apps-1", "duplicatePeer", "sometimes") == RTM_EINVAL);
    CHECK(rtm_store_app_set(st, "apps-1", "resumeWindowMs", "-2") == RTM_EINVAL);
    CHECK(rtm_store_app_set(st, "apps-1", "resumeWindowMs", "12abc") == RTM_EINVAL);
    CHECK(rtm_store_app_set(st, "apps-1", "maxConnections", "") == RTM_EINVAL);
    CHECK(rtm_store_app_set(st, "apps-1", "colour", "blue") == RTM_EINVAL);
    CHECK(rtm_store_app_set(st, "", "duplicatePeer", "allow") == RTM_EINVAL);
    CHECK(rtm_store_app_get(st, "apps-1", &app) == 0 && app.resume_window_ms == 5000);
}

/* ---- revocations ---- */

STORE_TEST(revocations_by_jti_and_peer)
{
    struct rtm_store *st = store();
    int64_t start = 0;
    json_t *rows = NULL;
    CHECK(rtm_store_revocations_since(st, 0, &rows, &start) == 0);
    json_decref(rows);

    CHECK(rtm_store_is_revoked(st, "demo", "jti-1", "alice", 100) == 0);
    CHECK(rtm_store_revoke_jti(st, "demo", "jti-1", 4102444800) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "jti-1", "alice", 100) == 1);
    CHECK(rtm_store_is_revoked(st, "demo", "jti-1", NULL, 100) == 1);
    CHECK(rtm_store_is_revoked(st, "other", "jti-1", "alice", 100) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "jti-2", "alice", 100) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", NULL, NULL, 100) == 0);

    CHECK(rtm_store_revoke_peer(st, "demo", "bob", 1000) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "any", "bob", 999) == 1);
    CHECK(rtm_store_is_revoked(st, "demo", "any", "bob", 1000) == 0); /* issued at the cut: valid */
    CHECK(rtm_store_is_revoked(st, "demo", "any", "bob", 2000) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "any", "bobby", 999) == 0);
    CHECK(rtm_store_is_revoked(st, "other", "any", "bob", 999) == 0);

    CHECK(rtm_store_revoke_jti(st, "demo", "", 0) == RTM_EINVAL);
    char long_jti[300];
    memset(long_jti, 'j', 257);
    long_jti[257] = '\0';
    CHECK(rtm_store_revoke_jti(st, "demo", long_jti, 0) == RTM_EINVAL);
    CHECK(rtm_store_revoke_jti(st, "demo", "a jti with spaces", 4102444800) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "a jti with spaces", NULL, 0) == 1);
    CHECK(rtm_store_revoke_peer(st, "demo", "has space", 1) == RTM_EINVAL);

    int64_t last = -1;
    CHECK(rtm_store_revocations_since(st, start, &rows, &last) == 0);
    CHECK(json_array_size(rows) == 3);
    json_t *a = json_array_get(rows, 0), *b = json_array_get(rows, 1);
    CHECK_STR(json_string_value(json_object_get(a, "jti")), "jti-1");
    CHECK_STR(json_string_value(json_object_get(a, "app")), "demo");
    CHECK(json_object_get(a, "peerId") == NULL);
    CHECK_STR(json_string_value(json_object_get(b, "peerId")), "bob");
    CHECK(json_integer_value(json_object_get(b, "before")) == 1000);
    CHECK(json_object_get(b, "jti") == NULL);
    CHECK_STR(json_string_value(json_object_get(json_array_get(rows, 2), "jti")), "a jti with spaces");
    CHECK(last == json_integer_value(json_object_get(json_array_get(rows, 2), "id")));
    CHECK(json_integer_value(json_object_get(a, "id")) < last);
    json_decref(rows);
    int64_t again = -1;
    CHECK(rtm_store_revocations_since(st, last, &rows, &again) == 0);
    CHECK(json_array_size(rows) == 0 && again == last);
    json_decref(rows);
}

STORE_TEST(expired_jti_revocations_are_pruned_at_open)
{
    const char *p = db_at("prune");
    struct rtm_store *st = open_ok(p);
    if (!st) return;
    CHECK(rtm_store_revoke_jti(st, "demo", "old", 1000) == 0);       /* long expired */
    CHECK(rtm_store_revoke_jti(st, "demo", "live", 4102444800) == 0); /* year 2100 */
    CHECK(rtm_store_revoke_peer(st, "demo", "carol", 1000) == 0);   /* peer rows stay */
    rtm_store_close(st);
    st = open_ok(p);
    if (!st) return;
    CHECK(rtm_store_is_revoked(st, "demo", "old", NULL, 0) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "live", NULL, 0) == 1);
    CHECK(rtm_store_is_revoked(st, "demo", NULL, "carol", 999) == 1);
    rtm_store_close(st);
}

/* ---- sessions ---- */

static struct rtm_session_row row(const char *id, const char *peer, int64_t connected, int64_t closed)
{
    struct rtm_session_row r = {0};
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.app, sizeof r.app, "demo");
    snprintf(r.peer_id, sizeof r.peer_id, "%s", peer);
    snprintf(r.jti, sizeof r.jti, "jti-%s", id);
    snprintf(r.remote_addr, sizeof r.remote_addr, "127.0.0.1");
    r.connected_ms = connected;
    r.closed_ms = closed;
    if (closed) {
        r.close_code = 1000;
        snprintf(r.close_reason, sizeof r.close_reason, "bye");
    }
    return r;
}

STORE_TEST(sessions_write_query_and_close_dangling)
{
    const char *p = db_at("sessions");
    struct rtm_store *st = open_ok(p);
    if (!st) return;
    struct rtm_session_row rows[3] = {
        row("s1", "alice", 1000, 0),
        row("s2", "bob", 2000, 2500),
        row("s3", "alice", 3000, 0),
    };
    char origin[] = "https://a.example", ua[] = "test-agent/1";
    rows[0].origin = origin;
    rows[0].user_agent = ua;
    rows[0].frames_in = 5;
    rows[0].bytes_out = 1ull << 40;
    CHECK(rtm_store_sessions_write(st, rows, 3) == 0);
    CHECK(rtm_store_sessions_write(st, rows, 0) == 0);

    json_t *all = NULL;
    CHECK(rtm_store_sessions_query(st, NULL, NULL, 10, &all) == 0);
    CHECK(json_array_size(all) == 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(all, 0), "id")), "s3"); /* newest first */
    CHECK_STR(json_string_value(json_object_get(json_array_get(all, 2), "id")), "s1");
    json_t *s1 = json_array_get(all, 2), *s2 = json_array_get(all, 1);
    CHECK_STR(json_string_value(json_object_get(s1, "peerId")), "alice");
    CHECK_STR(json_string_value(json_object_get(s1, "app")), "demo");
    CHECK_STR(json_string_value(json_object_get(s1, "jti")), "jti-s1");
    CHECK_STR(json_string_value(json_object_get(s1, "remoteAddr")), "127.0.0.1");
    CHECK_STR(json_string_value(json_object_get(s1, "origin")), origin);
    CHECK_STR(json_string_value(json_object_get(s1, "userAgent")), ua);
    CHECK(json_integer_value(json_object_get(s1, "connectedAt")) == 1000);
    CHECK(json_is_null(json_object_get(s1, "closedAt")));
    CHECK(json_is_null(json_object_get(s1, "closeCode")));
    CHECK(json_integer_value(json_object_get(s1, "framesIn")) == 5);
    CHECK(json_integer_value(json_object_get(s1, "framesOut")) == 0);
    CHECK(json_integer_value(json_object_get(s1, "bytesIn")) == 0);
    CHECK(json_integer_value(json_object_get(s1, "bytesOut")) == (json_int_t)(1ll << 40));
    CHECK(json_is_null(json_object_get(s2, "origin")));
    CHECK(json_integer_value(json_object_get(s2, "closedAt")) == 2500);
    CHECK(json_integer_value(json_object_get(s2, "closeCode")) == 1000);
    CHECK_STR(json_string_value(json_object_get(s2, "closeReason")), "bye");
    json_decref(all);

    /* Upsert: the same id again updates the row in place. */
    rows[0].frames_in = 9;
    rows[0].closed_ms = 1500;
    rows[0].close_code = 4009;
    snprintf(rows[0].close_reason, sizeof rows[0].close_reason, "replaced");
    CHECK(rtm_store_sessions_write(st, rows, 1) == 0);
    json_t *alice = NULL;
    CHECK(rtm_store_sessions_query(st, NULL, "alice", 10, &alice) == 0);
    CHECK(json_array_size(alice) == 2);
    json_t *a1 = json_array_get(alice, 1);
    CHECK_STR(json_string_value(json_object_get(a1, "id")), "s1");
    CHECK(json_integer_value(json_object_get(a1, "framesIn")) == 9);
    CHECK(json_integer_value(json_object_get(a1, "closeCode")) == 4009);
    CHECK_STR(json_string_value(json_object_get(a1, "closeReason")), "replaced");
    json_decref(alice);
    CHECK(raw_int(p, "SELECT count(*) FROM sessions") == 3);

    /* A batch with a bad row writes nothing. */
    struct rtm_session_row batch[2] = {row("s4", "dave", 4000, 0), row("", "eve", 5000, 0)};
    CHECK(rtm_store_sessions_write(st, batch, 2) == RTM_EINVAL);
    CHECK(raw_int(p, "SELECT count(*) FROM sessions WHERE id = 's4'") == 0);

    json_t *one = NULL;
    CHECK(rtm_store_sessions_query(st, NULL, NULL, 1, &one) == 0);
    CHECK(json_array_size(one) == 1);
    json_decref(one);
    CHECK(rtm_store_sessions_query(st, NULL, "nobody", 10, &one) == 0);
    CHECK(json_array_size(one) == 0);
    json_decref(one);

    /* Another app's newer row never crowds this app's rows out of the limit. */
    struct rtm_session_row other = row("o1", "alice", 9000, 9500);
    snprintf(other.app, sizeof other.app, "other");
    CHECK(rtm_store_sessions_write(st, &other, 1) == 0);
    CHECK(rtm_store_sessions_query(st, "demo", NULL, 1, &one) == 0);
    CHECK(json_array_size(one) == 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(one, 0), "id")), "s3");
    json_decref(one);
    CHECK(rtm_store_sessions_query(st, "other", "alice", 10, &one) == 0);
    CHECK(json_array_size(one) == 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(one, 0), "id")), "o1");
    json_decref(one);
    CHECK(rtm_store_sessions_query(st, "demo", "alice", 10, &one) == 0);
    CHECK(json_array_size(one) == 2);
    json_decref(one);

    /* Only s3 is still open (as after a crash). */
    CHECK(rtm_store_sessions_close_dangling(st, "n1", "rtmd restarted") == 1);
    CHECK(rtm_store_sessions_close_dangling(st, "n1", "rtmd restarted") == 0);
    CHECK(rtm_store_sessions_query(st, "demo", "alice", 1, &one) == 0);
    json_t *s3 = json_array_get(one, 0);
    CHECK_STR(json_string_value(json_object_get(s3, "id")), "s3");
    CHECK(json_integer_value(json_object_get(s3, "closeCode")) == 1006);
    CHECK_STR(json_string_value(json_object_get(s3, "closeReason")), "rtmd restarted");
    CHECK(json_integer_value(json_object_get(s3, "closedAt")) > 1700000000000ll);
    json_decref(one);
    rtm_store_close(st);
}

STORE_TEST(bounded_results)
{
    /* Each call returns a bounded batch; callers page (revocations) or ask less. */
    const char *p = db_at("bounds");
    struct rtm_store *st = open_ok(p);
    if (!st) return;
    enum { N = 1005 };
    char jti[32];
    for (int i = 0; i < N; i++) {
        snprintf(jti, sizeof jti, "jti-%d", i);
        CHECK(rtm_store_revoke_jti(st, "demo", jti, 4102444800) == 0);
    }
    json_t *rows = NULL;
    int64_t last = 0, next = 0;
    CHECK(rtm_store_revocations_since(st, 0, &rows, &last) == 0);
    CHECK(json_array_size(rows) == 1000);
    json_decref(rows);
    CHECK(rtm_store_revocations_since(st, last, &rows, &next) == 0);
    CHECK(json_array_size(rows) == N - 1000);
    CHECK_STR(json_string_value(json_object_get(json_array_get(rows, N - 1001), "jti")), "jti-1004");
    json_decref(rows);

    static struct rtm_session_row many[N];
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        many[i] = row(id, "mallory", 1000 + i, 0);
    }
    CHECK(rtm_store_sessions_write(st, many, N) == 0);
    CHECK(rtm_store_sessions_query(st, NULL, NULL, 0, &rows) == 0);
    CHECK(json_array_size(rows) == 100);
    CHECK_STR(json_string_value(json_object_get(json_array_get(rows, 0), "id")), "m1004");
    json_decref(rows);
    CHECK(rtm_store_sessions_query(st, NULL, "mallory", 100000, &rows) == 0);
    CHECK(json_array_size(rows) == 1000);
    json_decref(rows);
    CHECK(rtm_store_sessions_close_dangling(st, "n1", "restart") == N);
    rtm_store_close(st);
}

/* ---- several processes on one store: nodes, change detection, outbox, presence ---- */

STORE_TEST(close_dangling_closes_only_this_nodes_rows)
{
    struct rtm_store *st = open_ok(db_at("nodes"));
    if (!st) return;
    struct rtm_session_row rows[4] = {row("na", "p1", 1000, 0), row("nb", "p2", 1001, 0), row("nc", "p3", 1002, 0),
                                      row("nd", "p4", 1003, 2000)};
    snprintf(rows[0].node_id, sizeof rows[0].node_id, "n1");
    snprintf(rows[1].node_id, sizeof rows[1].node_id, "n2");
    /* rows[2]: node_id "" (written before node ids): any node closes it */
    snprintf(rows[3].node_id, sizeof rows[3].node_id, "n1");
    CHECK(rtm_store_sessions_write(st, rows, 4) == 0);
    CHECK(rtm_store_sessions_close_dangling(st, "n1", "restart") == 2);
    json_t *q = NULL;
    CHECK(rtm_store_sessions_query(st, NULL, "p2", 10, &q) == 0);
    CHECK(json_is_null(json_object_get(json_array_get(q, 0), "closedAt"))); /* n2's row is left alone */
    json_decref(q);
    CHECK(rtm_store_sessions_query(st, NULL, "p4", 10, &q) == 0);
    CHECK(json_integer_value(json_object_get(json_array_get(q, 0), "closedAt")) == 2000); /* closed rows keep theirs */
    json_decref(q);
    CHECK(rtm_store_sessions_close_dangling(st, "n2", "restart") == 1);
    CHECK(rtm_store_sessions_close_dangling(st, "n1", "restart") == 0);
    rtm_store_close(st);
}

STORE_TEST(change_detection_and_bulk_loads)
{
    const char *where = db_at("changes");
    struct rtm_store *a = open_ok(where), *b = open_ok(where);
    if (!a || !b) goto out;
    int64_t v0 = -1, v1 = -1, v2 = -1;
    CHECK(rtm_store_changed(a) == 1); /* always on the first call */
    CHECK(rtm_store_changed(a) == 0); /* an idle poll: nothing committed */
    CHECK(rtm_store_config_version(a, &v0) == 0);
    struct rtm_key k1, k2;
    struct rtm_key_spec spec = {.app = "chg"};
    CHECK(rtm_store_key_create(b, &spec, &k1) == 0);
    CHECK(rtm_store_app_set(b, "chg", "maxConnections", "7") == 0);
    CHECK(rtm_store_changed(a) == 1);
    CHECK(rtm_store_changed(a) == 0);
    /* what a poller follows besides keys and apps: revocations, the outbox */
    CHECK(rtm_store_revoke_jti(b, "chg", "j1", 4102444800) == 0);
    CHECK(rtm_store_changed(a) == 1);
    CHECK(rtm_store_changed(a) == 0);
    CHECK(rtm_store_outbox_post(b, "kick", "chg", "p1", NULL) == 0);
    CHECK(rtm_store_changed(a) == 1);
    CHECK(rtm_store_changed(a) == 0);
    CHECK(rtm_store_config_version(a, &v1) == 0);
    CHECK(v1 != v0);
    struct rtm_app app;
    CHECK(rtm_store_app_ensure(b, "chg", &app) == 0); /* no change: the counter stays */
    CHECK(rtm_store_config_version(a, &v2) == 0);
    CHECK(v2 == v1);
    CHECK(rtm_store_key_create(b, &spec, &k2) == 0);
    CHECK(rtm_store_key_revoke(b, k1.id) == 0);
    CHECK(rtm_store_config_version(a, &v2) == 0);
    CHECK(v2 != v1);

    struct rtm_key *keys = NULL;
    size_t n = 0;
    CHECK(rtm_store_keys_load(a, &keys, &n) == 0);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_STR(keys[0].id, k1.id); /* oldest first, secrets included */
        CHECK_STR(keys[0].secret, k1.secret);
        CHECK(keys[0].revoked > 0);
        CHECK_STR(keys[1].id, k2.id);
        CHECK(keys[1].revoked == 0 && keys[1].n_channels == 1);
    }
    rtm_keys_free(keys, n);
    struct rtm_app *apps = NULL;
    CHECK(rtm_store_apps_load(a, &apps, &n) == 0);
    CHECK(n == 1);
    if (n == 1) {
        CHECK_STR(apps[0].name, "chg");
        CHECK(apps[0].max_connections == 7 && apps[0].resume_window_ms == -1);
    }
    free(apps);
    rtm_key_free(&k1);
    rtm_key_free(&k2);
out:
    rtm_store_close(a);
    rtm_store_close(b);
}

STORE_TEST(outbox_post_since_last_prune)
{
    struct rtm_store *st = open_ok(db_at("outbox"));
    if (!st) return;
    int64_t last = -1, next = -1;
    CHECK(rtm_store_outbox_last(st, &last) == 0 && last == 0);
    CHECK(rtm_store_outbox_post(st, "kick", "demo", "alice", NULL) == 0);
    CHECK(rtm_store_outbox_post(st, "publish", "demo", "room-1", "{\"x\":1}") == 0);
    CHECK(rtm_store_outbox_post(st, "shout", "demo", "room-1", "1") == RTM_EINVAL);
    CHECK(rtm_store_outbox_post(st, "publish", "demo", "room-1", NULL) == RTM_EINVAL);
    CHECK(rtm_store_outbox_post(st, "kick", "", "alice", NULL) == RTM_EINVAL);
    json_t *rows = NULL;
    CHECK(rtm_store_outbox_since(st, 0, &rows, &last) == 0);
    CHECK(json_array_size(rows) == 2);
    json_t *k = json_array_get(rows, 0), *p = json_array_get(rows, 1);
    CHECK_STR(json_string_value(json_object_get(k, "kind")), "kick");
    CHECK_STR(json_string_value(json_object_get(k, "target")), "alice");
    CHECK(json_object_get(k, "data") == NULL);
    CHECK_STR(json_string_value(json_object_get(p, "kind")), "publish");
    CHECK_STR(json_string_value(json_object_get(p, "app")), "demo");
    CHECK_STR(json_string_value(json_object_get(p, "data")), "{\"x\":1}");
    CHECK(last == json_integer_value(json_object_get(p, "id")));
    CHECK(json_integer_value(json_object_get(k, "id")) < last);
    json_decref(rows);
    CHECK(rtm_store_outbox_last(st, &next) == 0 && next == last);
    CHECK(rtm_store_outbox_since(st, last, &rows, &next) == 0);
    CHECK(json_array_size(rows) == 0 && next == last);
    json_decref(rows);

    /* prune by count keeps the newest, by age removes the old; ids never go back */
    for (int i = 0; i < 5; i++) CHECK(rtm_store_outbox_post(st, "kick", "demo", "bob", NULL) == 0);
    CHECK(rtm_store_outbox_prune(st, 0, 2) == 0);
    CHECK(rtm_store_outbox_since(st, 0, &rows, &next) == 0);
    CHECK(json_array_size(rows) == 2);
    json_decref(rows);
    CHECK(rtm_store_outbox_prune(st, rtm_now_ms() + 60000, 1000) == 0);
    CHECK(rtm_store_outbox_since(st, 0, &rows, &next) == 0);
    CHECK(json_array_size(rows) == 0);
    json_decref(rows);
    CHECK(rtm_store_outbox_post(st, "kick", "demo", "carol", NULL) == 0);
    CHECK(rtm_store_outbox_last(st, &next) == 0 && next > last);
    rtm_store_close(st);
}

/* The peerIds in a presence query's answer, sorted, comma-separated. */
static const char *peer_ids(json_t *a)
{
    static char buf[256];
    char *ids[16];
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(a, i, v) if (n < 16) ids[n++] = (char *)json_string_value(json_object_get(v, "peerId"));
    for (size_t x = 1; x < n; x++)
        for (size_t y = x; y > 0 && strcmp(ids[y - 1], ids[y]) > 0; y--) {
            char *t = ids[y];
            ids[y] = ids[y - 1];
            ids[y - 1] = t;
        }
    buf[0] = '\0';
    for (i = 0; i < n; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "", ids[i]);
    return buf;
}

STORE_TEST(presence_snapshots_of_live_nodes)
{
    struct rtm_store *st = open_ok(db_at("presence"));
    if (!st) return;
    int64_t now = rtm_now_ms();
    CHECK(rtm_store_node_seen(st, "n1", now) == 0);
    CHECK(rtm_store_node_seen(st, "n2", now - 60000) == 0); /* a node that stopped beating */
    CHECK(rtm_store_presence_put(st, "n1", "demo", "[{\"peerId\":\"a\"}]", now) == 0);
    CHECK(rtm_store_presence_put(st, "n2", "demo", "[{\"peerId\":\"b\"}]", now - 60000) == 0);
    CHECK(rtm_store_presence_put(st, "n1", "other", "[{\"peerId\":\"c\"}]", now) == 0);
    json_t *a = NULL;
    CHECK(rtm_store_presence_query(st, "demo", now - 10000, &a) == 0);
    CHECK_STR(peer_ids(a), "a");
    json_decref(a);
    CHECK(rtm_store_presence_query(st, "demo", now - 120000, &a) == 0);
    CHECK_STR(peer_ids(a), "a,b");
    json_decref(a);
    /* a newer snapshot replaces the old one; "[]" removes it */
    CHECK(rtm_store_presence_put(st, "n1", "demo", "[{\"peerId\":\"a\"},{\"peerId\":\"d\"}]", now) == 0);
    CHECK(rtm_store_presence_query(st, "demo", now - 10000, &a) == 0);
    CHECK_STR(peer_ids(a), "a,d");
    json_decref(a);
    CHECK(rtm_store_presence_put(st, "n1", "demo", "[]", now) == 0);
    CHECK(rtm_store_presence_query(st, "demo", now - 120000, &a) == 0);
    CHECK_STR(peer_ids(a), "b");
    json_decref(a);
    CHECK(rtm_store_node_clear(st, "n2") == 0); /* its presence goes with it */
    CHECK(rtm_store_node_seen(st, "n2", now) == 0);
    CHECK(rtm_store_presence_query(st, "demo", now - 120000, &a) == 0);
    CHECK(json_array_size(a) == 0);
    json_decref(a);
    CHECK(rtm_store_presence_query(st, "other", now - 10000, &a) == 0);
    CHECK_STR(peer_ids(a), "c");
    json_decref(a);
    rtm_store_close(st);
}

/* ---- Postgres only: open, migrations, passwords, bounded waits, reconnect ---- */

static void halt_or_resume(const char *cmd)
{
    char args[160];
    snprintf(args, sizeof args, "%s %s", cmd, pg_dir);
    CHECK(pg_sh(args, NULL, NULL, 0) == 0);
}

TEST(pg_new_database_is_migrated_in_step_with_sqlite)
{
    if (!pg_ready()) return;
    /* The two migration lists are numbered alike: version N means the same schema. */
    CHECK(rtm_pg_schema_migration_count == rtm_schema_migration_count);
    CHECK(strstr(rtm_pg_schema_migrations[0], "CREATE TABLE sessions (\n") != NULL);
    CHECK(strstr(rtm_pg_schema_migrations[0], "DEFAULT '[\"**\"]'") != NULL);
    const char *u = pg_newdb("fresh");
    struct rtm_store *st = open_ok(u);
    if (!st) return;
    CHECK(rtm_store_version(st) == (int)rtm_pg_schema_migration_count);
    CHECK_STR(rtm_store_kind(st), "postgres");
    rtm_store_close(st);
    CHECK(raw_int(u, "SELECT version FROM rtm_schema") == (int)rtm_pg_schema_migration_count);
    CHECK(raw_int(u, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
                     "('apps', 'keys', 'revocations', 'sessions')") == 4);
    /* reopening changes nothing */
    st = open_ok(u);
    if (st) CHECK(rtm_store_version(st) == (int)rtm_pg_schema_migration_count);
    rtm_store_close(st);
    CHECK(raw_int(u, "SELECT count(*) FROM rtm_schema") == 1);
}

TEST(pg_newer_schema_is_refused_and_left_alone)
{
    if (!pg_ready()) return;
    const char *u = pg_newdb("newer");
    rtm_store_close(open_ok(u));
    raw_exec(u, "UPDATE rtm_schema SET version = 999; CREATE TABLE future (x int); INSERT INTO future VALUES (42)");
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(open_where(u, &st, err, sizeof err) == RTM_ESTORE);
    CHECK(st == NULL);
    CHECK(strstr(err, u) != NULL);
    CHECK(strstr(err, "schema version 999") != NULL);
    CHECK(strstr(err, "upgrade rtm") != NULL);
    CHECK(raw_int(u, "SELECT version FROM rtm_schema") == 999);
    CHECK(raw_int(u, "SELECT x FROM future") == 42);
}

TEST(pg_foreign_database_is_refused)
{
    if (!pg_ready()) return;
    const char *u = pg_newdb("foreign");
    raw_exec(u, "CREATE TABLE theirs (x int)");
    struct rtm_store *st = NULL;
    char err[512] = "";
    CHECK(open_where(u, &st, err, sizeof err) == RTM_ESTORE);
    CHECK(strstr(err, "not an rtm database") != NULL);
    CHECK(raw_int(u, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 1);
}

TEST(pg_concurrent_first_opens_migrate_once)
{
    if (!pg_ready()) return;
    const char *u = pg_newdb("race");
    enum { N = 4 };
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            struct rtm_store *st = NULL;
            char err[512];
            int rc = open_where(u, &st, err, sizeof err);
            if (rc) fprintf(stderr, "  child %d: %s\n", i, err);
            int ok = rc == 0 && rtm_store_version(st) == (int)rtm_pg_schema_migration_count;
            rtm_store_close(st);
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < N; i++) {
        int status = -1;
        CHECK(kids[i] > 0 && waitpid(kids[i], &status, 0) == kids[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(raw_int(u, "SELECT count(*) FROM rtm_schema") == 1);
    CHECK(raw_int(u, "SELECT version FROM rtm_schema") == (int)rtm_pg_schema_migration_count);
}

/* Runs fn with stderr going to a file; returns what was written (static). */
static const char *capture_stderr(void (*fn)(void))
{
    static char text[16384];
    const char *path = tpath("stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0) abort();
    dup2(fd, 2);
    close(fd);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = read_file(path, (unsigned char *)text, sizeof text - 1);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

static char pw_err1[512], pw_err2[512];
static int pw_rc1, pw_rc2, pw_rc3;

static void open_with_bad_passwords(void)
{
    int saved = rtm_log_level;
    rtm_log_level = RTM_LOG_DEBUG;
    struct rtm_store *st = NULL;
    char url[300];
    /* a wrong password inside the URL */
    const char *at = strchr(pg_url + 13, '@');
    snprintf(url, sizeof url, "postgresql://rtm:wrong-pw-1234%s", at ? at : "");
    pw_rc1 = rtm_store_open(url, &st, pw_err1, sizeof pw_err1);
    /* a wrong password from a file */
    const char *file = tpath("wrong-password");
    write_file(file, "wrong-pw-5678\n", 14);
    struct rtm_store_opts o = {.password_file = file};
    pw_rc2 = rtm_store_open_opts(pg_url, &o, &st, pw_err2, sizeof pw_err2);
    /* the right one, with every debug line on */
    o.password_file = pg_password_file;
    pw_rc3 = rtm_store_open_opts(pg_newdb("logged"), &o, &st, NULL, 0);
    if (st) {
        struct rtm_key k;
        rtm_store_key_get(st, "absent", &k);
    }
    rtm_store_close(st);
    rtm_log_level = saved;
}

TEST(pg_password_never_in_errors_or_logs)
{
    if (!pg_ready()) return;
    const char *log = capture_stderr(open_with_bad_passwords);
    CHECK(pw_rc1 == RTM_ESTORE && pw_rc2 == RTM_ESTORE && pw_rc3 == 0);
    CHECK(strstr(pw_err1, "rtm:***@127.0.0.1") != NULL);
    CHECK(strstr(pw_err1, "password authentication failed") != NULL);
    CHECK(strstr(pw_err2, "password authentication failed") != NULL);
    const char *leaks[] = {"wrong-pw-1234", "wrong-pw-5678", read_password()};
    for (size_t i = 0; i < 3; i++) {
        CHECK(strstr(pw_err1, leaks[i]) == NULL);
        CHECK(strstr(pw_err2, leaks[i]) == NULL);
        CHECK(strstr(log, leaks[i]) == NULL);
    }
    CHECK(strstr(log, "migrated to schema version") != NULL); /* the debug log did run */
}

TEST(pg_a_held_lock_is_a_busy_error_not_a_hang)
{
    if (!pg_ready()) return;
    const char *u = pg_newdb("locked");
    struct rtm_store *st = open_ok(u);
    if (!st) return;
    PGconn *other = pg_raw(u);
    PGresult *r = PQexec(other, "BEGIN; LOCK TABLE keys IN ACCESS EXCLUSIVE MODE");
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    struct rtm_key k;
    /* lock_timeout ends the wait with an error, not a hang: "locked", as sqlite's busy timeout says */
    CHECK(rtm_store_key_get(st, "sk_id_x", &k) == RTM_EBUSY);
    r = PQexec(other, "ROLLBACK");
    PQclear(r);
    PQfinish(other);
    CHECK(rtm_store_key_get(st, "sk_id_x", &k) == RTM_ENOTFOUND); /* the same connection goes on */

    /* Another writer inside a revocation: the insert waits, then says "locked";
     * reads go on meanwhile. */
    CHECK(rtm_store_revoke_jti(st, "demo", "before", 4102444800) == 0);
    other = pg_raw(u);
    r = PQexec(other, "SELECT pg_advisory_lock(1920232706)"); /* store_pg.c's LOCK_REVOCATIONS */
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
    CHECK(rtm_store_revoke_jti(st, "demo", "during", 4102444800) == RTM_EBUSY);
    CHECK(rtm_store_is_revoked(st, "demo", "before", NULL, 0) == 1);
    PQfinish(other); /* its session lock goes with it */
    CHECK(rtm_store_revoke_jti(st, "demo", "during", 4102444800) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "during", NULL, 0) == 1);
    rtm_store_close(st);
}

/* Last before cleanup: it stops the shared server and starts it again. */
TEST(pg_server_stopped_and_back)
{
    if (!pg_ready()) return;
    struct rtm_store *st = open_ok(pg_newdb("restart"));
    if (!st) return;
    struct rtm_key k, g;
    struct rtm_key_spec spec = {.app = "demo"};
    CHECK(rtm_store_key_create(st, &spec, &k) == 0);
    halt_or_resume("halt");
    CHECK(rtm_store_key_get(st, k.id, &g) == RTM_ESTORE);
    CHECK(rtm_store_key_get(st, k.id, &g) == RTM_ESTORE); /* no abort, no hang: a clean error each time */
    CHECK(rtm_store_revoke_jti(st, "demo", "while-down", 4102444800) == RTM_ESTORE);
    halt_or_resume("resume");
    int rc = RTM_ESTORE;
    for (int i = 0; i < 50 && rc == RTM_ESTORE; i++) { /* reconnects at most once a second */
        rc = rtm_store_key_get(st, k.id, &g);
        if (rc == RTM_ESTORE) nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK_STR(g.id, k.id);
        rtm_key_free(&g);
    }
    /* every statement works again, not just the first (they were prepared again) */
    CHECK(rtm_store_revoke_jti(st, "demo", "after", 4102444800) == 0);
    CHECK(rtm_store_is_revoked(st, "demo", "after", NULL, 0) == 1);
    rtm_key_free(&k);
    rtm_store_close(st);
}

STORE_TEST(sessions_prune_keeps_open_and_recent_rows)
{
    /* Issue 11 defect 9: retention. Closed rows that connected before the
     * bound go, oldest first, at most max_rows per call; open rows and
     * recent ones stay. */
    const char *p = db_at("session_retention");
    struct rtm_store *st = open_ok(p);
    if (!st) return;
    struct rtm_session_row rows[6] = {
        row("old1", "a", 1000, 1500), row("old2", "a", 2000, 2500), row("old3", "b", 3000, 3500),
        row("oldopen", "c", 500, 0),  row("new1", "a", 9000, 9500), row("new2", "b", 9100, 0),
    };
    CHECK(rtm_store_sessions_write(st, rows, 6) == 0);
    CHECK(rtm_store_sessions_prune(st, 5000, 2) == 2);   /* a batch bound: the two oldest */
    CHECK(rtm_store_sessions_prune(st, 5000, 100) == 1); /* the rest of the old closed ones */
    CHECK(rtm_store_sessions_prune(st, 5000, 100) == 0);
    CHECK(rtm_store_sessions_prune(st, 5000, 0) == 0);
    json_t *left = NULL;
    CHECK(rtm_store_sessions_query(st, NULL, NULL, 100, &left) == 0);
    CHECK(json_array_size(left) == 3);
    size_t i;
    json_t *v;
    json_array_foreach(left, i, v) {
        const char *id = json_string_value(json_object_get(v, "sessionId"));
        if (!id) id = json_string_value(json_object_get(v, "id"));
        CHECK(id && (!strcmp(id, "oldopen") || !strcmp(id, "new1") || !strcmp(id, "new2")));
    }
    json_decref(left);
    rtm_store_close(st);
}

TEST(zz_cleanup)
{
    for (int i = 0; i < 2; i++) {
        rtm_store_close(shared[i]);
        shared[i] = NULL;
    }
    if (pg_dir[0]) {
        char args[128];
        snprintf(args, sizeof args, "stop %s", pg_dir);
        CHECK(pg_sh(args, NULL, NULL, 0) == 0);
    }
    CHECK(nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS) == 0);
}

int main(void)
{
    rtm_log_level = RTM_LOG_ERROR; /* the refusals above log their reasons at warn */
    return RUN_TESTS();
}
