/* store_sqlite.c: the sqlite store behind store.h (apps, keys, revocations,
 * sessions), the embedded default; store.c dispatches to it through
 * rtm_store_sqlite_ops.
 *
 * Main design choice: every SQL statement lives in one table below and is
 * prepared once at open, so the hot lookups (key by id, key by secret,
 * is_revoked) cost a bind, a B-tree search and a reset: microseconds, and no
 * call can fail later for a reason a test did not already exercise at open.
 *
 * Open never destroys data: it checks the directory, the file's readability as
 * a database, its schema version and its writability (by taking the write
 * lock), and fails with one line naming the file and what to do. Migrations
 * run one transaction each under BEGIN IMMEDIATE, reading user_version inside
 * the lock, so two processes opening a new file at once cannot both migrate.
 *
 * Durability: the connection runs synchronous = NORMAL (WAL: a commit is not
 * fsynced, so a power cut may lose the last ones; cheap for session rows).
 * Writes that are acknowledged as security decisions (a key created, a key
 * revoked, a revocation) run under synchronous = FULL instead, so their
 * commit fsyncs the WAL before the caller answers (durable_begin/_end).
 *
 * Arguments arrive validated by store.c; encodings come from store_rows.c. */
#include "store.h"
#include "store_backend.h"
#include "store_rows.h"

#include "errors.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const char *const rtm_schema_migrations[];
extern const size_t rtm_schema_migration_count;

#define BUSY_TIMEOUT_MS 2000

enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_APP_INSERT,
    S_APP_GET,
    S_APP_SET_DUP,
    S_APP_SET_RESUME,
    S_APP_SET_MAXCONN,
    S_KEY_INSERT,
    S_KEY_GET,
    S_KEY_BY_HASH,
    S_KEY_LIST,
    S_KEY_REVOKE,
    S_KEY_PUBLIC,
    S_REV_JTI,
    S_REV_PEER,
    S_IS_REVOKED,
    S_REV_SINCE,
    S_SESSION_UPSERT,
    S_SESSION_DANGLING,
    S_SESSION_PRUNE,
    S_SESSIONS_ALL,
    S_SESSIONS_PEER,
    S_DATA_VERSION,
    S_CONFIG_VERSION,
    S_KEYS_ALL,
    S_APPS_ALL,
    S_OUTBOX_POST,
    S_OUTBOX_SINCE,
    S_OUTBOX_LAST,
    S_OUTBOX_PRUNE,
    S_PRESENCE_PUT,
    S_PRESENCE_DEL,
    S_NODE_SEEN,
    S_NODE_DEL,
    S_NODE_DEL_PRESENCE,
    S_PRESENCE_QUERY,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_APP_INSERT] = "INSERT OR IGNORE INTO apps (name, created) VALUES (?1, ?2)",
    [S_APP_GET] = "SELECT duplicate_peer, resume_window_ms, max_connections FROM apps WHERE name = ?1",
    [S_APP_SET_DUP] = "UPDATE apps SET duplicate_peer = ?2 WHERE name = ?1",
    [S_APP_SET_RESUME] = "UPDATE apps SET resume_window_ms = ?2 WHERE name = ?1",
    [S_APP_SET_MAXCONN] = "UPDATE apps SET max_connections = ?2 WHERE name = ?1",
    [S_KEY_INSERT] = "INSERT INTO keys (id, app, kind, alg, secret, secret_hash, channels, actions, "
                     "origins, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_KEY_GET] = "SELECT " STORE_KEY_COLUMNS " FROM keys WHERE id = ?1",
    [S_KEY_BY_HASH] = "SELECT " STORE_KEY_COLUMNS " FROM keys WHERE secret_hash = ?1 AND alg = 'HS256'",
    [S_KEY_LIST] = "SELECT " STORE_KEY_COLUMNS " FROM keys ORDER BY created, rowid LIMIT ?1",
    [S_KEY_REVOKE] = "UPDATE keys SET revoked = ?2 WHERE id = ?1 AND revoked = 0",
    [S_KEY_PUBLIC] = "SELECT id, alg, secret FROM keys WHERE alg IN ('RS256', 'ES256') "
                     "AND revoked = 0 ORDER BY created, rowid LIMIT ?1",
    [S_REV_JTI] = "INSERT INTO revocations (app, jti, expires, created) VALUES (?1, ?2, ?3, ?4)",
    [S_REV_PEER] = "INSERT INTO revocations (app, peer_id, \"before\", created) VALUES (?1, ?2, ?3, ?4)",
    /* Two index searches; a NULL jti or peer matches nothing. */
    [S_IS_REVOKED] = "SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = ?2 AND app = ?1) "
                     "OR EXISTS (SELECT 1 FROM revocations WHERE peer_id = ?3 AND app = ?1 "
                     "AND \"before\" > ?4)",
    [S_REV_SINCE] = "SELECT id, app, jti, peer_id, \"before\" FROM revocations WHERE id > ?1 "
                    "ORDER BY id LIMIT ?2",
    [S_SESSION_UPSERT] =
        "INSERT INTO sessions (" STORE_SESSION_COLUMNS ", node_id) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
        "ON CONFLICT (id) DO UPDATE SET app = excluded.app, peer_id = excluded.peer_id, "
        "jti = excluded.jti, remote_addr = excluded.remote_addr, origin = excluded.origin, "
        "user_agent = excluded.user_agent, connected_ms = excluded.connected_ms, "
        "closed_ms = excluded.closed_ms, close_code = excluded.close_code, "
        "close_reason = excluded.close_reason, frames_in = excluded.frames_in, "
        "frames_out = excluded.frames_out, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, "
        "node_id = excluded.node_id",
    [S_SESSION_DANGLING] = "UPDATE sessions SET closed_ms = ?1, close_code = ?2, close_reason = ?3 "
                           "WHERE closed_ms = 0 AND node_id IN (?4, '')",
    /* sessions_by_connected: the subquery walks the oldest rows only. */
    [S_SESSION_PRUNE] = "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE connected_ms < ?1 "
                        "AND closed_ms > 0 ORDER BY connected_ms LIMIT ?2)",
    [S_SESSIONS_ALL] = "SELECT " STORE_SESSION_COLUMNS " FROM sessions WHERE (?2 IS NULL OR app = ?2) "
                       "ORDER BY connected_ms DESC, rowid DESC LIMIT ?1",
    [S_SESSIONS_PEER] = "SELECT " STORE_SESSION_COLUMNS " FROM sessions WHERE peer_id = ?1 "
                        "AND (?3 IS NULL OR app = ?3) ORDER BY connected_ms DESC, rowid DESC LIMIT ?2",
    [S_DATA_VERSION] = "PRAGMA data_version",
    [S_CONFIG_VERSION] = "SELECT n FROM change_counter WHERE id = 1",
    [S_KEYS_ALL] = "SELECT " STORE_KEY_COLUMNS " FROM keys ORDER BY created, rowid LIMIT ?1",
    [S_APPS_ALL] = "SELECT name, duplicate_peer, resume_window_ms, max_connections FROM apps "
                   "ORDER BY rowid LIMIT ?1",
    [S_OUTBOX_POST] = "INSERT INTO outbox (kind, app, target, data, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_OUTBOX_SINCE] = "SELECT id, kind, app, target, data FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
    [S_OUTBOX_LAST] = "SELECT coalesce(max(id), 0) FROM outbox",
    [S_OUTBOX_PRUNE] = "DELETE FROM outbox WHERE created_ms < ?1 "
                       "OR id <= (SELECT coalesce(max(id), 0) FROM outbox) - ?2",
    [S_PRESENCE_PUT] = "INSERT INTO presence (node_id, app, peers, updated_ms) VALUES (?1, ?2, ?3, ?4) "
                       "ON CONFLICT (node_id, app) DO UPDATE SET peers = excluded.peers, "
                       "updated_ms = excluded.updated_ms",
    [S_PRESENCE_DEL] = "DELETE FROM presence WHERE node_id = ?1 AND app = ?2",
    [S_NODE_SEEN] = "INSERT INTO nodes (node_id, seen_ms) VALUES (?1, ?2) "
                    "ON CONFLICT (node_id) DO UPDATE SET seen_ms = excluded.seen_ms",
    [S_NODE_DEL] = "DELETE FROM nodes WHERE node_id = ?1",
    [S_NODE_DEL_PRESENCE] = "DELETE FROM presence WHERE node_id = ?1",
    [S_PRESENCE_QUERY] = "SELECT p.peers FROM presence p JOIN nodes n ON n.node_id = p.node_id "
                         "WHERE p.app = ?1 AND n.seen_ms >= ?2 LIMIT 64",
};

/* One per process (see store.h); owns the connection and every statement. */
struct sq_store {
    struct rtm_store base; /* first: the front's handle */
    sqlite3 *db;
    int version;
    int64_t data_version; /* -1 until the first rtm_store_changed */
    sqlite3_stmt *stmt[S_COUNT];
};

static struct sq_store *sq(struct rtm_store *base) { return (struct sq_store *)base; }
static void sq_close(struct rtm_store *base);

/* ---- small helpers ---- */

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(s, i);
}

/* Returns the cached statement, reset and unbound, ready for binding. */
static sqlite3_stmt *stmt(struct sq_store *st, enum stmt_id id)
{
    sqlite3_stmt *s = st->stmt[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Releases a statement's read lock and its bound strings at once, so a cached
 * statement never holds a transaction open or keeps a caller's pointer. */
static void done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* A full disk and another writer's lock are told apart (the mint API
 * answers 503 with the reason); both leave nothing written. */
static int store_fail(struct sq_store *st, const char *what)
{
    int code = sqlite3_errcode(st->db) & 0xff;
    log_error("store: %s: %s", what, sqlite3_errmsg(st->db));
    if (code == SQLITE_FULL) return RTM_EFULL;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return RTM_EBUSY;
    return RTM_ESTORE;
}

/* Runs a statement that returns no rows. */
static int exec_stmt(struct sq_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    int err = rc == SQLITE_DONE ? 0 : store_fail(st, what);
    done(s);
    return err;
}

static int begin(struct sq_store *st) { return exec_stmt(st, stmt(st, S_BEGIN), "begin"); }
static int commit(struct sq_store *st) { return exec_stmt(st, stmt(st, S_COMMIT), "commit"); }
static void rollback(struct sq_store *st)
{
    if (!sqlite3_get_autocommit(st->db)) exec_stmt(st, stmt(st, S_ROLLBACK), "rollback");
}

/* Around a write that must reach the disk before it is acknowledged: the
 * commit (or autocommit statement) between the two fsyncs the WAL. Not a
 * prepared statement from the table: sqlite applies PRAGMA synchronous when
 * the pragma is compiled, not when it is stepped, so a persistent prepared
 * copy would change nothing after its first preparation. */
static int durable_begin(struct sq_store *st)
{
    return sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : store_fail(st, "synchronous full");
}
static void durable_end(struct sq_store *st)
{
    if (sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK)
        store_fail(st, "synchronous normal");
}

/* One statement, autocommitted durably. */
static int durable_exec(struct sq_store *st, sqlite3_stmt *s, const char *what)
{
    int ret = durable_begin(st);
    if (ret) {
        done(s);
        return ret;
    }
    ret = exec_stmt(st, s, what);
    durable_end(st);
    return ret;
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}




/* ---- open, migrate, close ---- */

/* One line for the operator: what is wrong with the file and what to do. */
static void open_reason(const char *path, sqlite3 *db, int rc, char *err, size_t errlen)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(err, errlen,
                 "store: %s is locked by another process (waited %d ms): stop the other writer "
                 "or retry",
                 path, BUSY_TIMEOUT_MS);
        break;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        snprintf(err, errlen,
                 "store: %s is not a usable database (%s): move it aside or restore a backup; "
                 "rtm never overwrites it",
                 path, msg);
        break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_AUTH:
        snprintf(err, errlen,
                 "store: %s cannot be opened for writing (%s): check the permissions of the file, "
                 "its -wal/-shm files and its directory",
                 path, msg);
        break;
    case SQLITE_FULL:
        snprintf(err, errlen, "store: %s: disk full (%s): free some space", path, msg);
        break;
    case SQLITE_IOERR:
        snprintf(err, errlen, "store: %s: I/O error (%s): check the disk and the file", path, msg);
        break;
    default:
        snprintf(err, errlen, "store: %s: %s", path, msg);
    }
}

/* A missing file is created by sqlite, but only inside an existing directory;
 * say so plainly instead of sqlite's "unable to open database file". */
static int check_path(const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            snprintf(err, errlen, "store: %s is a directory: pass the database file's path", path);
            return RTM_EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "store: %s: %s", path, strerror(errno));
        return RTM_ESTORE;
    }
    size_t n = strlen(path);
    char *dir = malloc(n + 2);
    if (!dir) return RTM_ENOMEM;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    int ret = 0;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "store: cannot create %s: directory %s does not exist (create it first)",
                 path, dir);
        ret = RTM_ENOTFOUND;
    }
    free(dir);
    return ret;
}

/* Runs one SQL text (no result rows wanted); returns the sqlite code. */
static int exec_sql(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, NULL, NULL, NULL); }

static int read_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/* Under the write lock: checks the file's version and applies the next
 * migration when one is due. Sets *version to the version after the step and
 * *applied to whether a migration ran. Returns the sqlite code, or -1 with
 * err filled when the file is not one this build may touch. */
static int migrate_step(sqlite3 *db, const char *path, int *version, int *applied, char *err,
                        size_t errlen)
{
    const int known = (int)rtm_schema_migration_count;
    int v = 0, objects = 0;
    int rc = read_int(db, "PRAGMA user_version", &v);
    if (rc != SQLITE_OK) return rc;
    if (v > known) {
        snprintf(err, errlen,
                 "store: %s has schema version %d but this rtm knows only %d: upgrade rtm "
                 "(or pass another --db)",
                 path, v, known);
        return -1;
    }
    if (v == 0 && (rc = read_int(db, "SELECT count(*) FROM sqlite_schema", &objects)) != SQLITE_OK)
        return rc;
    if (v == 0 && objects > 0) {
        snprintf(err, errlen,
                 "store: %s holds tables but no rtm schema version: it is not an rtm database; "
                 "pass another --db",
                 path);
        return -1;
    }
    *version = v;
    *applied = 0;
    if (v == known) return SQLITE_OK;
    char pragma[48];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
    if (exec_sql(db, rtm_schema_migrations[v]) != SQLITE_OK || exec_sql(db, pragma) != SQLITE_OK) {
        snprintf(err, errlen, "store: %s: migration %d failed (%s): nothing was changed", path,
                 v + 1, sqlite3_errmsg(db));
        return -1;
    }
    *version = v + 1;
    *applied = 1;
    return SQLITE_OK;
}

/* Applies the missing migrations, one transaction each. Taking the write lock
 * (BEGIN IMMEDIATE) before reading the version also proves the file writable
 * and not held by another writer. Returns the sqlite code, or -1 with err. */
static int migrate(sqlite3 *db, const char *path, int *version, char *err, size_t errlen)
{
    for (;;) {
        int applied = 0;
        int rc = exec_sql(db, "BEGIN IMMEDIATE");
        if (rc != SQLITE_OK) return rc;
        rc = migrate_step(db, path, version, &applied, err, errlen);
        if (rc == SQLITE_OK) rc = exec_sql(db, "COMMIT");
        if (rc != SQLITE_OK) {
            exec_sql(db, "ROLLBACK");
            return rc;
        }
        if (!applied) return SQLITE_OK;
        log_info("store: %s migrated to schema version %d", path, *version);
    }
}

static int sq_open(const char *path, const struct rtm_store_opts *opts, struct rtm_store **out, char *err,
                   size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) err = scratch, errlen = sizeof scratch;
    err[0] = '\0';
    *out = NULL;
    if (!path || !*path) {
        snprintf(err, errlen, "store: no database path given");
        return RTM_EINVAL;
    }
    int ret = check_path(path, err, errlen);
    if (ret) return ret;

    struct sq_store *st = calloc(1, sizeof *st);
    if (!st) return RTM_ENOMEM;
    st->base.ops = &rtm_store_sqlite_ops;
    st->data_version = -1;
    ret = RTM_ESTORE;
    /* NOMUTEX: one thread uses a store (store.h), so sqlite's own
     * per-call mutex would be pure cost on the hot lookups. */
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) goto sqlfail;
    sqlite3_extended_result_codes(st->db, 1);
    /* sqlite quietly falls back to read-only when the OS refuses writing. */
    if (sqlite3_db_readonly(st->db, "main") == 1) {
        snprintf(err, errlen,
                 "store: %s is read-only: check the permissions of the file and its directory", path);
        goto fail;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    int objects = 0;
    /* The first read tells a database from garbage bytes. */
    if ((rc = read_int(st->db, "SELECT count(*) FROM sqlite_schema", &objects)) != SQLITE_OK)
        goto sqlfail;
    if ((rc = exec_sql(st->db, "PRAGMA foreign_keys = ON")) != SQLITE_OK) goto sqlfail;
    {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            int wal = sqlite3_stricmp(col_text(s, 0), "wal") == 0;
            rc = SQLITE_OK;
            if (!wal)
                snprintf(err, errlen, "store: %s: cannot use WAL mode (journal mode stays %s)", path,
                         col_text(s, 0));
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_OK) goto sqlfail;
        if (err[0]) goto fail;
    }
    /* WAL makes NORMAL safe against corruption; only the last commits before
     * a power cut may be lost. */
    if ((rc = exec_sql(st->db, "PRAGMA synchronous = NORMAL")) != SQLITE_OK) goto sqlfail;
    rc = migrate(st->db, path, &st->version, err, errlen);
    if (rc == -1) goto fail;
    if (rc != SQLITE_OK) goto sqlfail;

    for (int i = 0; i < S_COUNT; i++) {
        rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "store: %s: schema does not match this rtm (%s)", path,
                     sqlite3_errmsg(st->db));
            goto fail;
        }
    }
    /* Keeps the revocation table bounded by the tokens still alive. */
    {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "DELETE FROM revocations WHERE jti IS NOT NULL AND expires > 0 AND expires < %lld",
                 (long long)(rtm_now_s() - STORE_REVOCATION_PRUNE_GRACE_S));
        if ((rc = exec_sql(st->db, sql)) != SQLITE_OK) goto sqlfail;
    }
    *out = &st->base;
    return 0;

sqlfail:
    open_reason(path, st->db, rc, err, errlen);
fail:
    sq_close(&st->base);
    return ret;
}

static void sq_close(struct rtm_store *base)
{
    struct sq_store *st = sq(base);
    if (!st) return;
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(st->stmt[i]);
    sqlite3_close(st->db);
    free(st);
}

static int sq_version(struct rtm_store *base) { return sq(base)->version; }

/* ---- apps ---- */

static int app_ensure_row(struct sq_store *st, const char *name)
{
    sqlite3_stmt *s = stmt(st, S_APP_INSERT);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, rtm_now_s());
    return exec_stmt(st, s, "app insert");
}

static int sq_app_get(struct rtm_store *base, const char *name, struct rtm_app *out)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_APP_GET);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->duplicate_replace = strcmp(col_text(s, 0), "replace") == 0;
        out->resume_window_ms = sqlite3_column_int(s, 1);
        out->max_connections = sqlite3_column_int(s, 2);
    } else {
        ret = rc == SQLITE_DONE ? RTM_ENOTFOUND : store_fail(st, "app get");
    }
    done(s);
    return ret;
}

static int sq_app_ensure(struct rtm_store *base, const char *name, struct rtm_app *out)
{
    struct sq_store *st = sq(base);
    int ret = app_ensure_row(st, name);
    return ret ? ret : sq_app_get(&st->base, name, out);
}

static int sq_app_set(struct rtm_store *base, const char *name, enum store_app_field field,
                      const char *value, long num)
{
    struct sq_store *st = sq(base);
    enum stmt_id id = field == APP_DUPLICATE_PEER     ? S_APP_SET_DUP
                      : field == APP_RESUME_WINDOW_MS ? S_APP_SET_RESUME
                                                      : S_APP_SET_MAXCONN;
    int ret = begin(st);
    if (ret) return ret;
    if ((ret = app_ensure_row(st, name))) goto fail;
    sqlite3_stmt *s = stmt(st, id);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (id == S_APP_SET_DUP) sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    else sqlite3_bind_int64(s, 2, num);
    if ((ret = exec_stmt(st, s, "app set"))) goto fail;
    if ((ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

/* ---- keys ---- */

static const char *col_text_or_null(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NULL : col_text(s, i);
}

/* Fills k from a row selected with STORE_KEY_COLUMNS. */
static int row_to_key(sqlite3_stmt *s, struct rtm_key *k)
{
    const struct store_key_cols c = {
        .id = col_text(s, 0),
        .app = col_text(s, 1),
        .kind = col_text(s, 2),
        .alg = col_text(s, 3),
        .secret = col_text_or_null(s, 4),
        .channels = col_text(s, 5),
        .actions = col_text(s, 6),
        .origins = col_text(s, 7),
        .created = sqlite3_column_int64(s, 8),
        .revoked = sqlite3_column_int64(s, 9),
    };
    return store_key_from_cols(&c, k);
}

/* Steps a one-row key query; RTM_ENOTFOUND when it has none. */
static int key_query(struct sq_store *st, sqlite3_stmt *s, struct rtm_key *out)
{
    int rc = sqlite3_step(s), ret;
    if (rc == SQLITE_ROW) ret = row_to_key(s, out);
    else ret = rc == SQLITE_DONE ? RTM_ENOTFOUND : store_fail(st, "key lookup");
    done(s);
    return ret;
}

static int sq_key_get(struct rtm_store *base, const char *id, struct rtm_key *out)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_KEY_GET);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    return key_query(st, s, out);
}

static int sq_key_by_hash(struct rtm_store *base, const char *hash, struct rtm_key *out)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_KEY_BY_HASH);
    sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
    return key_query(st, s, out);
}

static int sq_key_insert(struct rtm_store *base, const struct store_key_new *nk)
{
    struct sq_store *st = sq(base);
    int ret = durable_begin(st);
    if (ret || (ret = begin(st))) goto out;
    if ((ret = app_ensure_row(st, nk->app))) goto fail;
    sqlite3_stmt *s = stmt(st, S_KEY_INSERT);
    sqlite3_bind_text(s, 1, nk->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, nk->app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, nk->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, nk->alg, -1, SQLITE_STATIC);
    bind_text_or_null(s, 5, nk->secret);
    bind_text_or_null(s, 6, nk->secret_hash);
    sqlite3_bind_text(s, 7, nk->channels, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, nk->actions, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 9, nk->origins, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, rtm_now_s());
    int rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        ret = RTM_EEXISTS; /* a kid given twice: the caller words it */
    } else if (rc != SQLITE_DONE) {
        ret = store_fail(st, "key insert");
    }
    done(s);
    if (ret || (ret = commit(st))) goto fail;
    goto out;
fail:
    rollback(st);
out:
    durable_end(st);
    return ret;
}

static int sq_key_list(struct rtm_store *base, json_t **out)
{
    struct sq_store *st = sq(base);
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_KEY_LIST);
    sqlite3_bind_int(s, 1, STORE_KEY_LIST_MAX);
    int rc, ret = 0;
    while (!ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct rtm_key k;
        if ((ret = row_to_key(s, &k))) break;
        json_t *o = store_key_json(&k);
        rtm_key_free(&k);
        if (!o || json_array_append_new(a, o)) ret = RTM_ENOMEM;
    }
    if (!ret && rc != SQLITE_DONE) ret = store_fail(st, "key list");
    done(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    return 0;
}

static int sq_key_revoke(struct rtm_store *base, const char *id)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_KEY_REVOKE);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, rtm_now_s());
    int ret = durable_exec(st, s, "key revoke");
    if (ret || sqlite3_changes(st->db) > 0) return ret;
    /* Nothing changed: absent, or revoked already (which keeps its first time). */
    struct rtm_key k;
    if ((ret = sq_key_get(&st->base, id, &k))) return ret;
    rtm_key_free(&k);
    return 0;
}

static int sq_key_public_list(struct rtm_store *base, json_t **out)
{
    struct sq_store *st = sq(base);
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_KEY_PUBLIC);
    sqlite3_bind_int(s, 1, STORE_KEY_LIST_MAX);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "kid", col_text(s, 0), "alg", col_text(s, 1), "pem",
                              col_text(s, 2));
        if (!o || json_array_append_new(a, o)) {
            ret = RTM_ENOMEM;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE) ret = store_fail(st, "public key list");
    done(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    return 0;
}

/* ---- revocations ---- */

static int sq_revoke_jti(struct rtm_store *base, const char *app, const char *jti, int64_t expires)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_REV_JTI);
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, jti, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, expires);
    sqlite3_bind_int64(s, 4, rtm_now_s());
    return durable_exec(st, s, "revoke jti");
}

static int sq_revoke_peer(struct rtm_store *base, const char *app, const char *peer_id, int64_t before)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_REV_PEER);
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, peer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, before);
    sqlite3_bind_int64(s, 4, rtm_now_s());
    return durable_exec(st, s, "revoke peer");
}

static int sq_is_revoked(struct rtm_store *base, const char *app, const char *jti, const char *peer_id,
                         int64_t iat)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_IS_REVOKED);
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    if (jti) sqlite3_bind_text(s, 2, jti, -1, SQLITE_STATIC);
    if (peer_id) sqlite3_bind_text(s, 3, peer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, iat);
    int rc = sqlite3_step(s);
    int ret = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) != 0 : store_fail(st, "is revoked");
    done(s);
    return ret;
}

static int sq_revocations_since(struct rtm_store *base, int64_t since_id, json_t **out, int64_t *last_id)
{
    struct sq_store *st = sq(base);
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_REV_SINCE);
    sqlite3_bind_int64(s, 1, since_id);
    sqlite3_bind_int(s, 2, STORE_REVOCATIONS_BATCH);
    int64_t last = since_id;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        last = sqlite3_column_int64(s, 0);
        json_t *o = store_revocation_json(last, col_text(s, 1), col_text_or_null(s, 2), col_text(s, 3),
                                          sqlite3_column_int64(s, 4));
        if (!o || json_array_append_new(a, o)) {
            ret = RTM_ENOMEM;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE) ret = store_fail(st, "revocations since");
    done(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    if (last_id) *last_id = last;
    return 0;
}

/* ---- sessions ---- */

static int sq_sessions_write(struct rtm_store *base, const struct rtm_session_row *rows, size_t n)
{
    struct sq_store *st = sq(base);
    int ret = begin(st);
    if (ret) return ret;
    for (size_t i = 0; i < n; i++) {
        const struct rtm_session_row *r = &rows[i];
        sqlite3_stmt *s = stmt(st, S_SESSION_UPSERT);
        sqlite3_bind_text(s, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, r->app, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, r->peer_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, r->jti, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, r->remote_addr, -1, SQLITE_STATIC);
        bind_text_or_null(s, 6, r->origin);
        bind_text_or_null(s, 7, r->user_agent);
        sqlite3_bind_int64(s, 8, r->connected_ms);
        sqlite3_bind_int64(s, 9, r->closed_ms);
        sqlite3_bind_int(s, 10, r->close_code);
        sqlite3_bind_text(s, 11, r->close_reason, -1, SQLITE_STATIC);
        /* Counters past 2^63 would wrap; no connection lives that long. */
        sqlite3_bind_int64(s, 12, (sqlite3_int64)r->frames_in);
        sqlite3_bind_int64(s, 13, (sqlite3_int64)r->frames_out);
        sqlite3_bind_int64(s, 14, (sqlite3_int64)r->bytes_in);
        sqlite3_bind_int64(s, 15, (sqlite3_int64)r->bytes_out);
        sqlite3_bind_text(s, 16, r->node_id, -1, SQLITE_STATIC);
        if ((ret = exec_stmt(st, s, "session write"))) goto fail;
    }
    if ((ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static int sq_sessions_close_dangling(struct rtm_store *base, const char *node_id, const char *reason)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_SESSION_DANGLING);
    sqlite3_bind_int64(s, 1, rtm_now_ms());
    sqlite3_bind_int(s, 2, STORE_SESSION_CLOSE_ABNORMAL);
    sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, node_id, -1, SQLITE_STATIC);
    int ret = exec_stmt(st, s, "close dangling sessions");
    return ret ? ret : sqlite3_changes(st->db);
}

static int sq_sessions_prune(struct rtm_store *base, int64_t connected_before_ms, int max_rows)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_SESSION_PRUNE);
    sqlite3_bind_int64(s, 1, connected_before_ms);
    sqlite3_bind_int(s, 2, max_rows);
    int ret = exec_stmt(st, s, "prune sessions");
    return ret ? ret : sqlite3_changes(st->db);
}

/* One session row as the REST API shows it. */
static json_t *session_json(sqlite3_stmt *s)
{
    const struct store_session_cols c = {
        .id = col_text(s, 0),
        .app = col_text(s, 1),
        .peer_id = col_text(s, 2),
        .jti = col_text(s, 3),
        .remote_addr = col_text(s, 4),
        .origin = col_text_or_null(s, 5),
        .user_agent = col_text_or_null(s, 6),
        .connected_ms = sqlite3_column_int64(s, 7),
        .closed_ms = sqlite3_column_int64(s, 8),
        .close_code = sqlite3_column_int(s, 9),
        .close_reason = col_text(s, 10),
        .frames_in = sqlite3_column_int64(s, 11),
        .frames_out = sqlite3_column_int64(s, 12),
        .bytes_in = sqlite3_column_int64(s, 13),
        .bytes_out = sqlite3_column_int64(s, 14),
    };
    return store_session_json(&c);
}

static int sq_sessions_query(struct rtm_store *base, const char *app, const char *peer_id, int limit,
                             json_t **out)
{
    struct sq_store *st = sq(base);
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s;
    if (peer_id) {
        s = stmt(st, S_SESSIONS_PEER);
        sqlite3_bind_text(s, 1, peer_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, limit);
        bind_text_or_null(s, 3, app);
    } else {
        s = stmt(st, S_SESSIONS_ALL);
        sqlite3_bind_int(s, 1, limit);
        bind_text_or_null(s, 2, app);
    }
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *o = session_json(s);
        if (!o || json_array_append_new(a, o)) {
            ret = RTM_ENOMEM;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE) ret = store_fail(st, "sessions query");
    done(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    return 0;
}

/* ---- change detection, bulk loads, outbox, presence (store.h: for the view) ---- */

static int sq_changed(struct rtm_store *base)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_DATA_VERSION);
    int rc = sqlite3_step(s);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    done(s);
    if (v < 0) return store_fail(st, "data version");
    int changed = v != st->data_version;
    st->data_version = v;
    return changed;
}

/* One integer from a one-row statement without parameters. */
static int read_one(struct sq_store *st, enum stmt_id id, int64_t *out, const char *what)
{
    sqlite3_stmt *s = stmt(st, id);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
    else ret = store_fail(st, what);
    done(s);
    return ret;
}

static int sq_config_version(struct rtm_store *base, int64_t *out)
{
    return read_one(sq(base), S_CONFIG_VERSION, out, "config version");
}

/* Doubles *arr (n elements of size) when len has reached *cap: 0 or RTM_ENOMEM
 * (*arr unchanged). The keys and apps loads read row by row into one array. */
static int grow_full(void **arr, size_t *cap, size_t len, size_t size)
{
    if (len < *cap) return 0;
    void *a = realloc(*arr, *cap * 2 * size);
    if (!a) return RTM_ENOMEM;
    *arr = a;
    *cap *= 2;
    return 0;
}

static int sq_keys_load(struct rtm_store *base, struct rtm_key **out, size_t *n)
{
    struct sq_store *st = sq(base);
    size_t cap = 16, len = 0;
    struct rtm_key *keys = calloc(cap, sizeof *keys);
    if (!keys) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_KEYS_ALL);
    sqlite3_bind_int(s, 1, RTM_STORE_LOAD_MAX);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if ((ret = grow_full((void **)&keys, &cap, len, sizeof *keys))) break;
        if ((ret = row_to_key(s, &keys[len]))) break;
        len++;
    }
    if (!ret && rc != SQLITE_DONE) ret = store_fail(st, "keys load");
    done(s);
    if (ret) {
        rtm_keys_free(keys, len);
        return ret;
    }
    *out = keys;
    *n = len;
    return 0;
}

static int sq_apps_load(struct rtm_store *base, struct rtm_app **out, size_t *n)
{
    struct sq_store *st = sq(base);
    size_t cap = 16, len = 0;
    struct rtm_app *apps = calloc(cap, sizeof *apps);
    if (!apps) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_APPS_ALL);
    sqlite3_bind_int(s, 1, RTM_STORE_LOAD_MAX);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if ((ret = grow_full((void **)&apps, &cap, len, sizeof *apps))) break;
        struct rtm_app *a = &apps[len];
        memset(a, 0, sizeof *a);
        const char *name = col_text(s, 0);
        if (strlen(name) >= sizeof a->name) continue; /* the schema bounds it */
        memcpy(a->name, name, strlen(name) + 1);
        a->duplicate_replace = strcmp(col_text(s, 1), "replace") == 0;
        a->resume_window_ms = sqlite3_column_int(s, 2);
        a->max_connections = sqlite3_column_int(s, 3);
        len++;
    }
    if (!ret && rc != SQLITE_DONE) ret = store_fail(st, "apps load");
    done(s);
    if (ret) {
        free(apps);
        return ret;
    }
    *out = apps;
    *n = len;
    return 0;
}

static int sq_outbox_post(struct rtm_store *base, const char *kind, const char *app, const char *target,
                          const char *data)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_OUTBOX_POST);
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, target, -1, SQLITE_STATIC);
    bind_text_or_null(s, 4, data);
    sqlite3_bind_int64(s, 5, rtm_now_ms());
    return exec_stmt(st, s, "outbox post");
}

static int sq_outbox_since(struct rtm_store *base, int64_t since_id, json_t **out, int64_t *last_id)
{
    struct sq_store *st = sq(base);
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_OUTBOX_SINCE);
    sqlite3_bind_int64(s, 1, since_id);
    sqlite3_bind_int(s, 2, STORE_REVOCATIONS_BATCH);
    int64_t last = since_id;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        last = sqlite3_column_int64(s, 0);
        json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)last, "kind", col_text(s, 1), "app",
                              col_text(s, 2), "target", col_text(s, 3));
        if (o && sqlite3_column_type(s, 4) != SQLITE_NULL &&
            json_object_set_new(o, "data", json_string(col_text(s, 4))))
            json_decref(o), o = NULL;
        if (!o || json_array_append_new(a, o)) {
            ret = RTM_ENOMEM;
            break;
        }
    }
    if (!ret && rc != SQLITE_DONE) ret = store_fail(st, "outbox since");
    done(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    if (last_id) *last_id = last;
    return 0;
}

static int sq_outbox_last(struct rtm_store *base, int64_t *last_id)
{
    return read_one(sq(base), S_OUTBOX_LAST, last_id, "outbox last");
}

static int sq_outbox_prune(struct rtm_store *base, int64_t before_ms, int keep_max)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_OUTBOX_PRUNE);
    sqlite3_bind_int64(s, 1, before_ms);
    sqlite3_bind_int(s, 2, keep_max);
    return exec_stmt(st, s, "outbox prune");
}

static int sq_presence_put(struct rtm_store *base, const char *node_id, const char *app, const char *peers,
                           int64_t now_ms)
{
    struct sq_store *st = sq(base);
    int empty = strcmp(peers, "[]") == 0;
    sqlite3_stmt *s = stmt(st, empty ? S_PRESENCE_DEL : S_PRESENCE_PUT);
    sqlite3_bind_text(s, 1, node_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, app, -1, SQLITE_STATIC);
    if (!empty) {
        sqlite3_bind_text(s, 3, peers, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, now_ms);
    }
    return exec_stmt(st, s, "presence put");
}

static int sq_node_seen(struct rtm_store *base, const char *node_id, int64_t now_ms)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_NODE_SEEN);
    sqlite3_bind_text(s, 1, node_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms);
    return exec_stmt(st, s, "node seen");
}

static int sq_node_clear(struct rtm_store *base, const char *node_id)
{
    struct sq_store *st = sq(base);
    int ret = begin(st);
    if (ret) return ret;
    sqlite3_stmt *s = stmt(st, S_NODE_DEL_PRESENCE);
    sqlite3_bind_text(s, 1, node_id, -1, SQLITE_STATIC);
    if ((ret = exec_stmt(st, s, "node clear"))) goto fail;
    s = stmt(st, S_NODE_DEL);
    sqlite3_bind_text(s, 1, node_id, -1, SQLITE_STATIC);
    if ((ret = exec_stmt(st, s, "node clear")) || (ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static int sq_presence_query(struct rtm_store *base, const char *app, int64_t fresh_ms, json_t **out)
{
    struct sq_store *st = sq(base);
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_PRESENCE_QUERY);
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, fresh_ms);
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *peers = json_loads(col_text(s, 0), 0, NULL);
        if (json_is_array(peers)) json_array_extend(a, peers);
        json_decref(peers);
    }
    if (rc != SQLITE_DONE) ret = store_fail(st, "presence query");
    done(s);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    return 0;
}

const struct rtm_store_ops rtm_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .version = sq_version,
    .app_ensure = sq_app_ensure,
    .app_get = sq_app_get,
    .app_set = sq_app_set,
    .key_insert = sq_key_insert,
    .key_get = sq_key_get,
    .key_by_hash = sq_key_by_hash,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .key_public_list = sq_key_public_list,
    .revoke_jti = sq_revoke_jti,
    .revoke_peer = sq_revoke_peer,
    .is_revoked = sq_is_revoked,
    .revocations_since = sq_revocations_since,
    .sessions_write = sq_sessions_write,
    .sessions_close_dangling = sq_sessions_close_dangling,
    .sessions_prune = sq_sessions_prune,
    .sessions_query = sq_sessions_query,
    .changed = sq_changed,
    .config_version = sq_config_version,
    .keys_load = sq_keys_load,
    .apps_load = sq_apps_load,
    .outbox_post = sq_outbox_post,
    .outbox_since = sq_outbox_since,
    .outbox_last = sq_outbox_last,
    .outbox_prune = sq_outbox_prune,
    .presence_put = sq_presence_put,
    .node_seen = sq_node_seen,
    .node_clear = sq_node_clear,
    .presence_query = sq_presence_query,
};
