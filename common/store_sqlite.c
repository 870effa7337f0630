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
 * Secret keys are looked up by the SHA-256 of their secret (indexed), then
 * compared in constant time: a B-tree search over the secret itself would
 * leak, through its timing, how much of a guess matched. */
#include "store.h"
#include "store_backend.h"

#include "errors.h"
#include "log.h"
#include "protocol.h"
#include "util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const char *const rtm_schema_migrations[];
extern const size_t rtm_schema_migration_count;

#define BUSY_TIMEOUT_MS 2000
#define MAX_KEY_CHANNELS RTM_MAX_CHANNELS_PER_TOKEN
#define MAX_KEY_ORIGINS 64
#define MAX_ORIGIN_LEN 256
#define MAX_PEM_LEN 16384
#define MAX_JTI_LEN 256
/* Bounds on what one call returns; callers page with since_id / limit. */
#define KEY_LIST_MAX 10000
#define REVOCATIONS_BATCH 1000
#define SESSIONS_QUERY_DEFAULT 100
#define SESSIONS_QUERY_MAX 1000
#define SESSION_CLOSE_ABNORMAL 1006
/* jti revocations are kept this long past their token's exp (clock skew). */
#define REVOCATION_PRUNE_GRACE_S 3600

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
    S_SESSIONS_ALL,
    S_SESSIONS_PEER,
    S_COUNT
};

#define KEY_COLUMNS "id, app, kind, alg, secret, channels, actions, origins, created, revoked"
#define SESSION_COLUMNS                                                                            \
    "id, app, peer_id, jti, remote_addr, origin, user_agent, connected_ms, closed_ms, close_code, " \
    "close_reason, frames_in, frames_out, bytes_in, bytes_out"

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
    [S_KEY_GET] = "SELECT " KEY_COLUMNS " FROM keys WHERE id = ?1",
    [S_KEY_BY_HASH] = "SELECT " KEY_COLUMNS " FROM keys WHERE secret_hash = ?1 AND alg = 'HS256'",
    [S_KEY_LIST] = "SELECT " KEY_COLUMNS " FROM keys ORDER BY created, rowid LIMIT ?1",
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
        "INSERT INTO sessions (" SESSION_COLUMNS ") VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
        "ON CONFLICT (id) DO UPDATE SET app = excluded.app, peer_id = excluded.peer_id, "
        "jti = excluded.jti, remote_addr = excluded.remote_addr, origin = excluded.origin, "
        "user_agent = excluded.user_agent, connected_ms = excluded.connected_ms, "
        "closed_ms = excluded.closed_ms, close_code = excluded.close_code, "
        "close_reason = excluded.close_reason, frames_in = excluded.frames_in, "
        "frames_out = excluded.frames_out, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out",
    [S_SESSION_DANGLING] = "UPDATE sessions SET closed_ms = ?1, close_code = ?2, close_reason = ?3 "
                           "WHERE closed_ms = 0",
    [S_SESSIONS_ALL] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE (?2 IS NULL OR app = ?2) "
                       "ORDER BY connected_ms DESC, rowid DESC LIMIT ?1",
    [S_SESSIONS_PEER] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE peer_id = ?1 "
                        "AND (?3 IS NULL OR app = ?3) ORDER BY connected_ms DESC, rowid DESC LIMIT ?2",
};

/* One per process (see store.h); owns the connection and every statement. */
struct sq_store {
    struct rtm_store base; /* first: the front's handle */
    sqlite3 *db;
    int version;
    sqlite3_stmt *stmt[S_COUNT];
};

static struct sq_store *sq(struct rtm_store *base) { return (struct sq_store *)base; }
static void sq_close(struct rtm_store *base);

static const char *const action_names[] = {"publish", "subscribe", "presence", "send"};

/* ---- small helpers ---- */

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

static int store_fail(struct sq_store *st, const char *what)
{
    log_error("store: %s: %s", what, sqlite3_errmsg(st->db));
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

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) return RTM_EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

static int printable_ascii(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e) return 0;
    return n >= min && n <= max;
}

static int app_name_valid(const char *name)
{
    return name && printable_ascii(name, 1, sizeof ((struct rtm_app *)0)->name - 1);
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

static int sq_open(const char *path, struct rtm_store **out, char *err, size_t errlen)
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
                 (long long)(rtm_now_s() - REVOCATION_PRUNE_GRACE_S));
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
    if (!app_name_valid(name)) return RTM_EINVAL;
    sqlite3_stmt *s = stmt(st, S_APP_GET);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        copy_str(out->name, sizeof out->name, name);
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
    if (!app_name_valid(name)) return RTM_EINVAL;
    int ret = app_ensure_row(st, name);
    return ret ? ret : sq_app_get(&st->base, name, out);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return RTM_EINVAL;
    *out = v;
    return 0;
}

static int sq_app_set(struct rtm_store *base, const char *name, const char *key, const char *value)
{
    struct sq_store *st = sq(base);
    if (!app_name_valid(name) || !key || !value) return RTM_EINVAL;
    enum stmt_id id;
    long num = 0;
    if (strcmp(key, "duplicatePeer") == 0) {
        if (strcmp(value, "allow") != 0 && strcmp(value, "replace") != 0) return RTM_EINVAL;
        id = S_APP_SET_DUP;
    } else if (strcmp(key, "resumeWindowMs") == 0) {
        if (parse_int(value, -1, 86400000L, &num)) return RTM_EINVAL;
        id = S_APP_SET_RESUME;
    } else if (strcmp(key, "maxConnections") == 0) {
        if (parse_int(value, 0, 100000000L, &num)) return RTM_EINVAL;
        id = S_APP_SET_MAXCONN;
    } else {
        return RTM_EINVAL;
    }
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

/* Parses a JSON array of strings into a heap array of heap strings. */
static int parse_str_array(const char *text, char ***out, size_t *n)
{
    json_t *a = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    int ret = RTM_ESTORE;
    *out = NULL;
    *n = 0;
    if (!json_is_array(a)) goto done;
    size_t len = json_array_size(a);
    if (len == 0) {
        ret = 0;
        goto done;
    }
    char **v = calloc(len, sizeof *v);
    if (!v) {
        ret = RTM_ENOMEM;
        goto done;
    }
    *out = v;
    for (size_t i = 0; i < len; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s) goto done;
        if (!(v[i] = strdup(s))) {
            ret = RTM_ENOMEM;
            goto done;
        }
        (*n)++;
    }
    ret = 0;
done:
    json_decref(a);
    return ret;
}

static unsigned parse_actions(const char *text)
{
    json_t *a = json_loads(text, 0, NULL);
    unsigned bits = 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *s = json_string_value(v);
        if (s) bits |= rtm_perm_parse(s);
    }
    json_decref(a);
    return bits;
}

static json_t *actions_json(unsigned bits)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < sizeof action_names / sizeof action_names[0]; i++)
        if (bits & (1u << i)) json_array_append_new(a, json_string(action_names[i]));
    return a;
}

/* Fills k from a row selected with KEY_COLUMNS. */
static int row_to_key(sqlite3_stmt *s, struct rtm_key *k)
{
    memset(k, 0, sizeof *k);
    if (copy_str(k->id, sizeof k->id, col_text(s, 0)) || copy_str(k->app, sizeof k->app, col_text(s, 1)) ||
        copy_str(k->alg, sizeof k->alg, col_text(s, 3)))
        return RTM_ESTORE;
    k->publishable = strcmp(col_text(s, 2), "publishable") == 0;
    if (sqlite3_column_type(s, 4) != SQLITE_NULL && !(k->secret = strdup(col_text(s, 4))))
        return RTM_ENOMEM;
    int ret = parse_str_array(col_text(s, 5), &k->channels, &k->n_channels);
    if (!ret) ret = parse_str_array(col_text(s, 7), &k->origins, &k->n_origins);
    if (ret) goto fail;
    if (k->n_channels == 0) { /* the schema's promise: never empty */
        ret = RTM_ESTORE;
        goto fail;
    }
    k->actions = parse_actions(col_text(s, 6));
    k->created = sqlite3_column_int64(s, 8);
    k->revoked = sqlite3_column_int64(s, 9);
    return 0;
fail:
    rtm_key_free(k);
    return ret;
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
    if (!id) return RTM_EINVAL;
    sqlite3_stmt *s = stmt(st, S_KEY_GET);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    return key_query(st, s, out);
}

static int sha256_hex(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return RTM_ECRYPTO;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

static int sq_key_by_secret(struct rtm_store *base, const char *secret, struct rtm_key *out)
{
    struct sq_store *st = sq(base);
    char hash[65];
    if (!secret) return RTM_EINVAL;
    int ret = sha256_hex(secret, hash);
    if (ret) return ret;
    sqlite3_stmt *s = stmt(st, S_KEY_BY_HASH);
    sqlite3_bind_text(s, 1, hash, 64, SQLITE_STATIC);
    if ((ret = key_query(st, s, out))) return ret;
    if (!out->secret || !rtm_streq_ct(out->secret, secret)) { /* a hash collision: never */
        rtm_key_free(out);
        return RTM_ENOTFOUND;
    }
    return 0;
}

static json_t *str_array_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Checks that pem is a public key of alg's type (RSA; EC on P-256). */
static int public_pem_valid(const char *alg, const char *pem)
{
    if (!pem || strlen(pem) > MAX_PEM_LEN) return 0;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    int ok = 0;
    if (pk && strcmp(alg, "RS256") == 0) {
        ok = EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) >= 2048;
    } else if (pk && strcmp(alg, "ES256") == 0) {
        char group[64];
        size_t glen = 0;
        ok = EVP_PKEY_is_a(pk, "EC") &&
             EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) == 1 &&
             (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0);
    }
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return ok;
}

/* Validates a spec; on failure logs why at warn (the caller only sees EINVAL). */
static int spec_valid(const struct rtm_key_spec *sp, const char **alg)
{
    const char *why = NULL;
    *alg = sp->publishable ? "" : sp->alg ? sp->alg : "HS256";
    int asym = strcmp(*alg, "RS256") == 0 || strcmp(*alg, "ES256") == 0;
    if (!app_name_valid(sp->app)) why = "app name must be 1 to 64 printable ASCII characters";
    else if (sp->publishable && sp->alg && *sp->alg) why = "publishable keys have no algorithm";
    else if (!sp->publishable && !asym && strcmp(*alg, "HS256") != 0) why = "alg must be HS256, RS256 or ES256";
    else if (asym && (!sp->kid || !printable_ascii(sp->kid, 1, sizeof ((struct rtm_key *)0)->id - 1)))
        why = "RS256/ES256 keys need a kid of 1 to 79 printable ASCII characters";
    else if (asym && (!strncmp(sp->kid, "sk_", 3) || !strncmp(sp->kid, "pk_", 3)))
        why = "a kid may not start with sk_ or pk_ (reserved for generated ids)";
    else if (!asym && sp->kid) why = "only RS256/ES256 keys take a kid";
    else if (asym && !public_pem_valid(*alg, sp->public_pem))
        why = "the public key is not a PEM public key of that algorithm (RSA >= 2048 bits; EC P-256)";
    else if (!asym && sp->public_pem) why = "only RS256/ES256 keys take a public key";
    else if (sp->n_channels > MAX_KEY_CHANNELS) why = "too many channel patterns (at most 100)";
    else if (sp->n_origins > MAX_KEY_ORIGINS) why = "too many origins (at most 64)";
    else if (sp->actions & ~(unsigned)RTM_PERM_ALL) why = "unknown action bits";
    for (size_t i = 0; !why && i < sp->n_channels; i++)
        if (!sp->channels[i] || !rtm_channel_valid(sp->channels[i]))
            why = "a channel pattern is empty, over 256 bytes or has control characters";
    for (size_t i = 0; !why && i < sp->n_origins; i++)
        if (!sp->origins[i] || !printable_ascii(sp->origins[i], 1, MAX_ORIGIN_LEN))
            why = "an origin is empty, over 256 bytes or not printable ASCII";
    if (why) {
        log_warn("store: key not created: %s", why);
        return 0;
    }
    return 1;
}

static int sq_key_create(struct rtm_store *base, const struct rtm_key_spec *spec, struct rtm_key *out)
{
    struct sq_store *st = sq(base);
    static const char *const all_channels[] = {"**"};
    const char *alg;
    if (!spec || !spec_valid(spec, &alg)) return RTM_EINVAL;
    char id[80], secret[80], hash[65];
    char *channels = NULL, *actions = NULL, *origins = NULL;
    json_t *jc = NULL, *ja = NULL, *jo = NULL;
    int ret;
    if (spec->publishable) ret = rtm_random_id("pk_", 16, id, sizeof id);
    else if (!strcmp(alg, "HS256")) ret = rtm_random_id("sk_id_", 16, id, sizeof id);
    else ret = copy_str(id, sizeof id, spec->kid);
    if (!ret && !strcmp(alg, "HS256")) {
        ret = rtm_random_id("sk_secret_", 32, secret, sizeof secret);
        if (!ret) ret = sha256_hex(secret, hash);
    }
    if (ret) return ret;

    ret = RTM_ENOMEM;
    if (spec->n_channels) jc = str_array_json(spec->channels, spec->n_channels);
    else jc = str_array_json(all_channels, 1);
    ja = actions_json(spec->actions ? spec->actions : RTM_PERM_ALL);
    jo = str_array_json(spec->origins, spec->n_origins);
    if (!jc || !ja || !jo) goto out;
    channels = json_dumps(jc, JSON_COMPACT);
    actions = json_dumps(ja, JSON_COMPACT);
    origins = json_dumps(jo, JSON_COMPACT);
    if (!channels || !actions || !origins) goto out;

    if ((ret = begin(st))) goto out;
    if ((ret = app_ensure_row(st, spec->app))) goto fail;
    sqlite3_stmt *s = stmt(st, S_KEY_INSERT);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, spec->app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, spec->publishable ? "publishable" : "secret", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, alg, -1, SQLITE_STATIC);
    if (!strcmp(alg, "HS256")) {
        sqlite3_bind_text(s, 5, secret, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, hash, -1, SQLITE_STATIC);
    } else if (!spec->publishable) {
        sqlite3_bind_text(s, 5, spec->public_pem, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(s, 7, channels, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, actions, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 9, origins, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, rtm_now_s());
    int rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        ret = RTM_EEXISTS; /* a kid given twice: the caller words it */
    } else if (rc != SQLITE_DONE) {
        ret = store_fail(st, "key insert");
    }
    done(s);
    if (ret || (ret = commit(st))) goto fail;
    ret = out ? sq_key_get(&st->base, id, out) : 0;
    goto out;
fail:
    rollback(st);
out:
    OPENSSL_cleanse(secret, sizeof secret);
    json_decref(jc);
    json_decref(ja);
    json_decref(jo);
    free(channels);
    free(actions);
    free(origins);
    return ret;
}

static json_t *key_json(const struct rtm_key *k)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = json_object_set_new(o, "id", json_string(k->id)) ||
              json_object_set_new(o, "app", json_string(k->app)) ||
              json_object_set_new(o, "kind", json_string(k->publishable ? "publishable" : "secret")) ||
              json_object_set_new(o, "alg", k->alg[0] ? json_string(k->alg) : json_null()) ||
              json_object_set_new(o, "channels", str_array_json((const char *const *)k->channels, k->n_channels)) ||
              json_object_set_new(o, "actions", actions_json(k->actions)) ||
              json_object_set_new(o, "origins", str_array_json((const char *const *)k->origins, k->n_origins)) ||
              json_object_set_new(o, "created", json_integer(k->created)) ||
              json_object_set_new(o, "revoked", json_integer(k->revoked));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int sq_key_list(struct rtm_store *base, json_t **out)
{
    struct sq_store *st = sq(base);
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s = stmt(st, S_KEY_LIST);
    sqlite3_bind_int(s, 1, KEY_LIST_MAX);
    int rc, ret = 0;
    while (!ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct rtm_key k;
        if ((ret = row_to_key(s, &k))) break;
        json_t *o = key_json(&k);
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
    if (!id) return RTM_EINVAL;
    sqlite3_stmt *s = stmt(st, S_KEY_REVOKE);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, rtm_now_s());
    int ret = exec_stmt(st, s, "key revoke");
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
    sqlite3_bind_int(s, 1, KEY_LIST_MAX);
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
    /* A jti is any string the signer chose (RFC 7519); only its size is bounded. */
    if (!app_name_valid(app) || !jti || !*jti || strlen(jti) > MAX_JTI_LEN) return RTM_EINVAL;
    sqlite3_stmt *s = stmt(st, S_REV_JTI);
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, jti, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, expires);
    sqlite3_bind_int64(s, 4, rtm_now_s());
    return exec_stmt(st, s, "revoke jti");
}

static int sq_revoke_peer(struct rtm_store *base, const char *app, const char *peer_id, int64_t before)
{
    struct sq_store *st = sq(base);
    if (!app_name_valid(app) || !peer_id || !rtm_peer_id_valid(peer_id)) return RTM_EINVAL;
    sqlite3_stmt *s = stmt(st, S_REV_PEER);
    sqlite3_bind_text(s, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, peer_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, before);
    sqlite3_bind_int64(s, 4, rtm_now_s());
    return exec_stmt(st, s, "revoke peer");
}

static int sq_is_revoked(struct rtm_store *base, const char *app, const char *jti, const char *peer_id,
                         int64_t iat)
{
    struct sq_store *st = sq(base);
    if (!app) return RTM_EINVAL;
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
    sqlite3_bind_int(s, 2, REVOCATIONS_BATCH);
    int64_t last = since_id;
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        last = sqlite3_column_int64(s, 0);
        json_t *o = json_pack("{s:I, s:s}", "id", (json_int_t)last, "app", col_text(s, 1));
        if (o && sqlite3_column_type(s, 2) != SQLITE_NULL) {
            if (json_object_set_new(o, "jti", json_string(col_text(s, 2)))) json_decref(o), o = NULL;
        } else if (o) {
            if (json_object_set_new(o, "peerId", json_string(col_text(s, 3))) ||
                json_object_set_new(o, "before", json_integer(sqlite3_column_int64(s, 4))))
                json_decref(o), o = NULL;
        }
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

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(s, i);
}

static int sq_sessions_write(struct rtm_store *base, const struct rtm_session_row *rows, size_t n)
{
    struct sq_store *st = sq(base);
    if (n == 0) return 0;
    if (!rows) return RTM_EINVAL;
    int ret = begin(st);
    if (ret) return ret;
    for (size_t i = 0; i < n; i++) {
        const struct rtm_session_row *r = &rows[i];
        if (!r->id[0]) {
            ret = RTM_EINVAL;
            goto fail;
        }
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
        if ((ret = exec_stmt(st, s, "session write"))) goto fail;
    }
    if ((ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static int sq_sessions_close_dangling(struct rtm_store *base, const char *reason)
{
    struct sq_store *st = sq(base);
    sqlite3_stmt *s = stmt(st, S_SESSION_DANGLING);
    sqlite3_bind_int64(s, 1, rtm_now_ms());
    sqlite3_bind_int(s, 2, SESSION_CLOSE_ABNORMAL);
    sqlite3_bind_text(s, 3, reason ? reason : "", -1, SQLITE_STATIC);
    int ret = exec_stmt(st, s, "close dangling sessions");
    return ret ? ret : sqlite3_changes(st->db);
}

/* One session row as the REST API shows it; while open, the close fields are null. */
static json_t *session_json(sqlite3_stmt *s)
{
    int open = sqlite3_column_int64(s, 8) == 0;
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = json_object_set_new(o, "id", json_string(col_text(s, 0))) ||
              json_object_set_new(o, "app", json_string(col_text(s, 1))) ||
              json_object_set_new(o, "peerId", json_string(col_text(s, 2))) ||
              json_object_set_new(o, "jti", json_string(col_text(s, 3))) ||
              json_object_set_new(o, "remoteAddr", json_string(col_text(s, 4))) ||
              json_object_set_new(o, "origin", sqlite3_column_type(s, 5) == SQLITE_NULL
                                                   ? json_null()
                                                   : json_string(col_text(s, 5))) ||
              json_object_set_new(o, "userAgent", sqlite3_column_type(s, 6) == SQLITE_NULL
                                                      ? json_null()
                                                      : json_string(col_text(s, 6))) ||
              json_object_set_new(o, "connectedAt", json_integer(sqlite3_column_int64(s, 7))) ||
              json_object_set_new(o, "closedAt", open ? json_null() : json_integer(sqlite3_column_int64(s, 8))) ||
              json_object_set_new(o, "closeCode", open ? json_null() : json_integer(sqlite3_column_int(s, 9))) ||
              json_object_set_new(o, "closeReason", open ? json_null() : json_string(col_text(s, 10))) ||
              json_object_set_new(o, "framesIn", json_integer(sqlite3_column_int64(s, 11))) ||
              json_object_set_new(o, "framesOut", json_integer(sqlite3_column_int64(s, 12))) ||
              json_object_set_new(o, "bytesIn", json_integer(sqlite3_column_int64(s, 13))) ||
              json_object_set_new(o, "bytesOut", json_integer(sqlite3_column_int64(s, 14)));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int sq_sessions_query(struct rtm_store *base, const char *app, const char *peer_id, int limit,
                             json_t **out)
{
    struct sq_store *st = sq(base);
    if (limit <= 0) limit = SESSIONS_QUERY_DEFAULT;
    if (limit > SESSIONS_QUERY_MAX) limit = SESSIONS_QUERY_MAX;
    json_t *a = json_array();
    if (!a) return RTM_ENOMEM;
    sqlite3_stmt *s;
    if (peer_id) {
        s = stmt(st, S_SESSIONS_PEER);
        sqlite3_bind_text(s, 1, peer_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, limit);
        if (app) sqlite3_bind_text(s, 3, app, -1, SQLITE_STATIC);
        else sqlite3_bind_null(s, 3);
    } else {
        s = stmt(st, S_SESSIONS_ALL);
        sqlite3_bind_int(s, 1, limit);
        if (app) sqlite3_bind_text(s, 2, app, -1, SQLITE_STATIC);
        else sqlite3_bind_null(s, 2);
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

const struct rtm_store_ops rtm_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .version = sq_version,
    .app_ensure = sq_app_ensure,
    .app_get = sq_app_get,
    .app_set = sq_app_set,
    .key_create = sq_key_create,
    .key_get = sq_key_get,
    .key_by_secret = sq_key_by_secret,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .key_public_list = sq_key_public_list,
    .revoke_jti = sq_revoke_jti,
    .revoke_peer = sq_revoke_peer,
    .is_revoked = sq_is_revoked,
    .revocations_since = sq_revocations_since,
    .sessions_write = sq_sessions_write,
    .sessions_close_dangling = sq_sessions_close_dangling,
    .sessions_query = sq_sessions_query,
};
