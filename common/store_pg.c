/* store_pg.c: the Postgres store behind store.h, for deployments that share
 * one store between processes or machines; store.c dispatches to it when
 * --db is a postgres:// or postgresql:// URL.
 *
 * Main design choice: it reads like store_sqlite.c on purpose. Every SQL
 * statement lives in one table below and is prepared once per connection
 * (PQprepare), every value travels as a parameter (PQexecPrepared), and rows
 * are decoded by the same store_rows.c code, so both backends accept and
 * return the same things. Arguments arrive validated by store.c.
 *
 * Bounded waits: the connection has a connect timeout, TCP keepalives and a
 * TCP user timeout (a vanished server costs seconds, not the kernel's
 * minutes), and a statement timeout (a locked or overloaded server likewise).
 * A call that finds the connection broken fails with RTM_ESTORE and the next
 * call, at most once a second, resets it and prepares the statements again:
 * the server coming back needs no restart of rtmd. The log says when the
 * store is lost and when it is back, once each.
 *
 * Migrations: schema/pg/NNN_*.sql, the twins of schema/NNN_*.sql with the
 * same numbers, run in one transaction under a transaction-scoped advisory
 * lock, reading the version (table rtm_schema) inside the lock, so two
 * processes starting at once cannot both migrate; a newer version or a
 * database holding foreign tables is refused.
 *
 * Durability equals the sqlite store's: synchronous_commit is set on for the
 * connection (a server default of off cannot weaken an acknowledged key or
 * revocation write); only the session rows' transactions relax it, as the
 * sqlite store's do.
 *
 * Revocation ids must commit in id order, or a broker paging with
 * revocations_since could pass over a row committed late: revocation inserts
 * take an advisory lock for their transaction (rare writes, so serializing
 * them costs nothing).
 *
 * Secrets: the URL's password is never logged (dburl.c redacts it), a
 * password file's content is wiped after connecting, libpq's messages are
 * terse (no DETAIL lines, which can quote column values) and scrubbed of the
 * password before they reach a log line or an error. */
#include "store.h"
#include "store_backend.h"
#include "store_rows.h"

#include "dburl.h"
#include "errors.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern const char *const rtm_pg_schema_migrations[];
extern const size_t rtm_pg_schema_migration_count;

#define CONNECT_TIMEOUT_S "5"
#define STATEMENT_TIMEOUT_MS 5000
/* Shorter than the statement timeout, so a wait for another writer's lock
 * ends as "locked" (RTM_EBUSY), told apart from a slow server. */
#define LOCK_TIMEOUT_MS 3000
#define RECONNECT_INTERVAL_MS 1000
#define MAX_PASSWORD_LEN 1024
#define MAX_PARAMS 16
/* Session rows sent per round trip (libpq pipeline mode); bounded so the
 * server's replies never fill the socket while rtm is still sending. */
#define PIPELINE_MAX 256
/* pg_advisory_xact_lock keys: "rtm" in ASCII then a number per purpose
 * (0x72746d01, 0x72746d02), in decimal because Postgres 15 has no hex literals. */
#define LOCK_MIGRATE 1920232705
#define LOCK_REVOCATIONS 1920232706
#define LOCK_OUTBOX 1920232707

enum stmt_id {
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
    S_REV_LOCK,
    S_REV_JTI,
    S_REV_PEER,
    S_IS_REVOKED,
    S_REV_SINCE,
    S_REV_PRUNE,
    S_SESSION_UPSERT,
    S_SESSION_DANGLING,
    S_SESSION_PRUNE,
    S_SESSIONS_ALL,
    S_SESSIONS_PEER,
    S_CHANGED,
    S_CONFIG_VERSION,
    S_KEYS_ALL,
    S_APPS_ALL,
    S_OUTBOX_LOCK,
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

#define STR_(x) #x
#define STR(x) STR_(x)

static const char *const stmt_sql[S_COUNT] = {
    [S_APP_INSERT] = "INSERT INTO apps (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    [S_APP_GET] = "SELECT duplicate_peer, resume_window_ms, max_connections FROM apps WHERE name = $1",
    [S_APP_SET_DUP] = "UPDATE apps SET duplicate_peer = $2 WHERE name = $1",
    [S_APP_SET_RESUME] = "UPDATE apps SET resume_window_ms = $2 WHERE name = $1",
    [S_APP_SET_MAXCONN] = "UPDATE apps SET max_connections = $2 WHERE name = $1",
    [S_KEY_INSERT] = "INSERT INTO keys (id, app, kind, alg, secret, secret_hash, channels, actions, "
                     "origins, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    [S_KEY_GET] = "SELECT " STORE_KEY_COLUMNS " FROM keys WHERE id = $1",
    [S_KEY_BY_HASH] = "SELECT " STORE_KEY_COLUMNS " FROM keys WHERE secret_hash = $1 AND alg = 'HS256'",
    [S_KEY_LIST] = "SELECT " STORE_KEY_COLUMNS " FROM keys ORDER BY created, seq LIMIT $1",
    [S_KEY_REVOKE] = "UPDATE keys SET revoked = $2 WHERE id = $1 AND revoked = 0",
    [S_KEY_PUBLIC] = "SELECT id, alg, secret FROM keys WHERE alg IN ('RS256', 'ES256') "
                     "AND revoked = 0 ORDER BY created, seq LIMIT $1",
    [S_REV_LOCK] = "SELECT pg_advisory_xact_lock(" STR(LOCK_REVOCATIONS) ")",
    [S_REV_JTI] = "INSERT INTO revocations (app, jti, expires, created) VALUES ($1, $2, $3, $4)",
    [S_REV_PEER] = "INSERT INTO revocations (app, peer_id, \"before\", created) VALUES ($1, $2, $3, $4)",
    /* Two index searches; a NULL jti or peer matches nothing. */
    [S_IS_REVOKED] = "SELECT EXISTS (SELECT 1 FROM revocations WHERE jti = $2::text AND app = $1) "
                     "OR EXISTS (SELECT 1 FROM revocations WHERE peer_id = $3::text AND app = $1 "
                     "AND \"before\" > $4::bigint)",
    [S_REV_SINCE] = "SELECT id, app, jti, peer_id, \"before\" FROM revocations WHERE id > $1 "
                    "ORDER BY id LIMIT $2",
    [S_REV_PRUNE] = "DELETE FROM revocations WHERE jti IS NOT NULL AND expires > 0 AND expires < $1",
    [S_SESSION_UPSERT] =
        "INSERT INTO sessions (" STORE_SESSION_COLUMNS ", node_id) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
        "ON CONFLICT (id) DO UPDATE SET app = excluded.app, peer_id = excluded.peer_id, "
        "jti = excluded.jti, remote_addr = excluded.remote_addr, origin = excluded.origin, "
        "user_agent = excluded.user_agent, connected_ms = excluded.connected_ms, "
        "closed_ms = excluded.closed_ms, close_code = excluded.close_code, "
        "close_reason = excluded.close_reason, frames_in = excluded.frames_in, "
        "frames_out = excluded.frames_out, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, "
        "node_id = excluded.node_id",
    [S_SESSION_DANGLING] = "UPDATE sessions SET closed_ms = $1, close_code = $2, close_reason = $3 "
                           "WHERE closed_ms = 0 AND node_id IN ($4, '')",
    [S_SESSIONS_ALL] = "SELECT " STORE_SESSION_COLUMNS " FROM sessions WHERE ($2::text IS NULL OR app = $2) "
                       "ORDER BY connected_ms DESC, seq DESC LIMIT $1",
    [S_SESSION_PRUNE] = "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE connected_ms < $1 "
                        "AND closed_ms > 0 ORDER BY connected_ms LIMIT $2)",
    [S_SESSIONS_PEER] = "SELECT " STORE_SESSION_COLUMNS " FROM sessions WHERE peer_id = $1 "
                        "AND ($3::text IS NULL OR app = $3) ORDER BY connected_ms DESC, seq DESC LIMIT $2",
    [S_CHANGED] = "SELECT (SELECT n FROM change_counter WHERE id = 1), "
                  "(SELECT coalesce(max(id), 0) FROM revocations), (SELECT coalesce(max(id), 0) FROM outbox)",
    [S_CONFIG_VERSION] = "SELECT n FROM change_counter WHERE id = 1",
    [S_KEYS_ALL] = "SELECT " STORE_KEY_COLUMNS " FROM keys ORDER BY created, seq LIMIT $1",
    [S_APPS_ALL] = "SELECT name, duplicate_peer, resume_window_ms, max_connections FROM apps ORDER BY name LIMIT $1",
    [S_OUTBOX_LOCK] = "SELECT pg_advisory_xact_lock(" STR(LOCK_OUTBOX) ")",
    [S_OUTBOX_POST] = "INSERT INTO outbox (kind, app, target, data, created_ms) VALUES ($1, $2, $3, $4, $5)",
    [S_OUTBOX_SINCE] = "SELECT id, kind, app, target, data FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
    [S_OUTBOX_LAST] = "SELECT coalesce(max(id), 0) FROM outbox",
    [S_OUTBOX_PRUNE] = "DELETE FROM outbox WHERE created_ms < $1 "
                       "OR id <= (SELECT coalesce(max(id), 0) FROM outbox) - $2",
    [S_PRESENCE_PUT] = "INSERT INTO presence (node_id, app, peers, updated_ms) VALUES ($1, $2, $3, $4) "
                       "ON CONFLICT (node_id, app) DO UPDATE SET peers = excluded.peers, "
                       "updated_ms = excluded.updated_ms",
    [S_PRESENCE_DEL] = "DELETE FROM presence WHERE node_id = $1 AND app = $2",
    [S_NODE_SEEN] = "INSERT INTO nodes (node_id, seen_ms) VALUES ($1, $2) "
                    "ON CONFLICT (node_id) DO UPDATE SET seen_ms = excluded.seen_ms",
    [S_NODE_DEL] = "DELETE FROM nodes WHERE node_id = $1",
    [S_NODE_DEL_PRESENCE] = "DELETE FROM presence WHERE node_id = $1",
    [S_PRESENCE_QUERY] = "SELECT p.peers FROM presence p JOIN nodes n ON n.node_id = p.node_id "
                         "WHERE p.app = $1 AND n.seen_ms >= $2 LIMIT 64",
};

/* Run once per connection, before the statements are prepared: the bounds
 * and durability this file's header promises, whatever the server's defaults. */
static const char session_setup_sql[] = "SET statement_timeout = " STR(STATEMENT_TIMEOUT_MS) "; "
                                        "SET lock_timeout = " STR(LOCK_TIMEOUT_MS) "; "
                                        "SET synchronous_commit = on; "
                                        "SET client_min_messages = warning";

/* One per open store (see store.h); owns the connection. */
struct pg_store {
    struct rtm_store base; /* first: the front's handle */
    PGconn *conn;
    int version;
    int lost;                 /* the connection broke and is not back yet */
    int64_t next_reconnect_ms;
    char where[512];          /* the URL as logs show it (password redacted) */
    char password[MAX_PASSWORD_LEN]; /* from the password file, for scrubbing messages; wiped at close */
    int64_t seen[3];          /* pg_changed: change counter, newest revocation and outbox ids */
    int seen_valid;
};

static struct pg_store *pg(struct rtm_store *base) { return (struct pg_store *)base; }

/* ---- messages ---- */

/* Copies libpq's message into out: one line, without the password. */
static void clean_message(const struct pg_store *st, const char *msg, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = msg ? msg : ""; *p && n + 1 < outlen; p++) {
        int space = *p == '\n' || *p == '\r' || *p == '\t' || *p == ' ';
        if (space && (n == 0 || out[n - 1] == ' ')) continue; /* one line, single spaces */
        out[n++] = space ? ' ' : *p;
    }
    while (n && out[n - 1] == ' ') n--;
    out[n] = '\0';
    size_t pwlen = strlen(st->password);
    if (!pwlen) return;
    for (char *p = strstr(out, st->password); p; p = strstr(p + 3, st->password)) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + pwlen, strlen(p + pwlen) + 1);
    }
}

static void notice_to_log(void *arg, const char *msg)
{
    char line[512];
    clean_message(arg, msg, line, sizeof line);
    log_debug("store: %s: server notice: %s", ((struct pg_store *)arg)->where, line);
}

/* ---- parameters ---- */

/* Text parameters for one statement; numbers are formatted into num. */
struct params {
    int n;
    const char *v[MAX_PARAMS];
    char num[MAX_PARAMS][24];
};

static void p_text(struct params *p, const char *v) { p->v[p->n++] = v; }

static void p_i64(struct params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[p->n], "%" PRId64, v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *col_text_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* ---- connection ---- */

/* Prepared statements are named after their stmt_id. */
static void stmt_name(enum stmt_id id, char name[16]) { snprintf(name, 16, "rtm%d", (int)id); }

static int prepare_all(struct pg_store *st, char *err, size_t errlen)
{
    for (int i = 0; i < S_COUNT; i++) {
        char name[16];
        stmt_name((enum stmt_id)i, name);
        PGresult *r = PQprepare(st->conn, name, stmt_sql[i], 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            char msg[256];
            clean_message(st, PQresultErrorMessage(r), msg, sizeof msg);
            snprintf(err, errlen, "store: %s: schema does not match this rtm (%s)", st->where, msg);
        }
        PQclear(r);
        if (!ok) return RTM_ESTORE;
    }
    return 0;
}

/* The rtm_err of a failed result, as the sqlite store tells them apart: a
 * full disk (SQLSTATE 53100) is RTM_EFULL; another writer's lock (55P03
 * lock_not_available, 40P01 deadlock, 40001 serialization) and a statement
 * the server cancelled for time (57014) are RTM_EBUSY: nothing was written
 * and a retry may succeed. Anything else, a lost connection included, is
 * RTM_ESTORE. */
static int err_of(const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state) return RTM_ESTORE;
    if (!strcmp(state, "53100")) return RTM_EFULL;
    if (!strcmp(state, "55P03") || !strcmp(state, "40P01") || !strcmp(state, "40001") || !strcmp(state, "57014"))
        return RTM_EBUSY;
    return RTM_ESTORE;
}

/* Runs SQL text with no parameters (setup, transactions, migrations). */
static int exec_text(struct pg_store *st, const char *sql, char *err, size_t errlen, const char *what)
{
    PGresult *r = PQexec(st->conn, sql);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok) {
        char msg[256];
        clean_message(st, PQresultErrorMessage(r), msg, sizeof msg);
        if (err) snprintf(err, errlen, "store: %s: %s failed (%s)", st->where, what, msg);
        else log_error("store: %s: %s failed (%s)", st->where, what, msg);
    }
    int ret = ok ? 0 : err_of(r);
    PQclear(r);
    return ret;
}

/* After connecting or reconnecting: bounds, durability, quiet notices. */
static int session_setup(struct pg_store *st, char *err, size_t errlen)
{
    PQsetErrorVerbosity(st->conn, PQERRORS_TERSE);
    PQsetNoticeProcessor(st->conn, notice_to_log, st);
    return exec_text(st, session_setup_sql, err, errlen, "session setup");
}

/* Reads the password file's first line into st->password. */
static int read_password_file(struct pg_store *st, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "store: db-password-file %s: %s", path, strerror(errno));
        return RTM_EINVAL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077))
        log_warn("store: db-password-file %s is readable by other users (mode %03o): chmod 600 it", path,
                 (unsigned)(sb.st_mode & 0777));
    int ok = fgets(st->password, sizeof st->password, f) != NULL;
    fclose(f);
    st->password[strcspn(st->password, "\r\n")] = '\0';
    if (!ok || !st->password[0]) {
        snprintf(err, errlen, "store: db-password-file %s is empty: its first line is the password", path);
        return RTM_EINVAL;
    }
    return 0;
}

static int connect_db(struct pg_store *st, const char *url, char *err, size_t errlen)
{
    /* The URL comes after the defaults so its own settings win; a password
     * file comes last so it wins over the URL. */
    const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "application_name", "dbname",
                          st->password[0] ? "password" : NULL, NULL};
    const char *vals[] = {CONNECT_TIMEOUT_S, "1", "10", "3", "3", "10000", "rtmd", url,
                          st->password[0] ? st->password : NULL, NULL};
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (!st->conn) {
        snprintf(err, errlen, "store: %s: out of memory", st->where);
        return RTM_ENOMEM;
    }
    if (PQstatus(st->conn) != CONNECTION_OK) {
        char msg[400];
        clean_message(st, PQerrorMessage(st->conn), msg, sizeof msg);
        snprintf(err, errlen,
                 "store: cannot connect to %s (%s): check that the server is up, the URL and the "
                 "password (PGPASSWORD or db-password-file)",
                 st->where, msg);
        return RTM_ESTORE;
    }
    return 0;
}

/* Before each call: a lost connection is reset, at most once a second. */
static int ensure_conn(struct pg_store *st)
{
    if (!st->lost && PQstatus(st->conn) == CONNECTION_OK) return 0;
    if (!st->lost) {
        st->lost = 1;
        log_error("store: %s: connection lost; calls fail until it is back", st->where);
    }
    int64_t now = rtm_now_ms();
    if (now < st->next_reconnect_ms) return RTM_ESTORE;
    st->next_reconnect_ms = now + RECONNECT_INTERVAL_MS;
    PQreset(st->conn);
    char err[512];
    if (PQstatus(st->conn) != CONNECTION_OK || session_setup(st, err, sizeof err) ||
        prepare_all(st, err, sizeof err))
        return RTM_ESTORE;
    st->lost = 0;
    log_info("store: %s: connection back", st->where);
    return 0;
}

/* Logs a failed call once, with context; notes a broken connection.
 * Returns the rtm_err (err_of; RTM_ESTORE while the connection is lost). */
static int call_fail(struct pg_store *st, const PGresult *r, const char *what)
{
    char msg[256];
    clean_message(st, r ? PQresultErrorMessage(r) : PQerrorMessage(st->conn), msg, sizeof msg);
    if (PQstatus(st->conn) != CONNECTION_OK) {
        if (!st->lost) {
            st->lost = 1;
            log_error("store: %s: %s: connection lost (%s); calls fail until it is back", st->where,
                      what, msg);
        }
        return RTM_ESTORE;
    }
    log_error("store: %s: %s: %s", st->where, what, msg);
    return err_of(r);
}

static PGresult *exec_prepared(struct pg_store *st, enum stmt_id id, const struct params *p)
{
    char name[16];
    stmt_name(id, name);
    return PQexecPrepared(st->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
}

/* Runs a prepared statement; *out gets the result (PQclear it) on success. */
static int run(struct pg_store *st, enum stmt_id id, const struct params *p, PGresult **out,
               const char *what)
{
    PGresult *r = exec_prepared(st, id, p);
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        if (out) *out = r;
        else PQclear(r);
        return 0;
    }
    int ret = call_fail(st, r, what);
    PQclear(r);
    return ret;
}

/* Runs a statement whose rows are not wanted; returns rows changed or an error. */
static int run_changes(struct pg_store *st, enum stmt_id id, const struct params *p, const char *what)
{
    PGresult *r = NULL;
    int ret = run(st, id, p, &r, what);
    if (ret) return ret;
    ret = atoi(PQcmdTuples(r));
    PQclear(r);
    return ret;
}

/* Pipeline mode: queues a prepared statement without waiting for it. */
static int send_prepared(struct pg_store *st, enum stmt_id id, const struct params *p, const char *what)
{
    char name[16];
    stmt_name(id, name);
    return PQsendQueryPrepared(st->conn, name, p->n, p->v, NULL, NULL, 0) ? 0 : call_fail(st, NULL, what);
}

/* Pipeline mode: ends the queued statements with a sync and reads every
 * result; returns the first failure. After one, the server skips the rest
 * (PGRES_PIPELINE_ABORTED) and the transaction is left for rollback(). */
static int pipeline_sync(struct pg_store *st, const char *what)
{
    int ret = PQpipelineSync(st->conn) ? 0 : call_fail(st, NULL, what);
    for (int nulls = 0; !ret || PQstatus(st->conn) == CONNECTION_OK;) {
        PGresult *r = PQgetResult(st->conn);
        if (!r) { /* one NULL ends each statement's results; two in a row: nothing is coming */
            if (++nulls > 1 || PQstatus(st->conn) != CONNECTION_OK) {
                if (!ret) ret = call_fail(st, NULL, what);
                break;
            }
            continue;
        }
        nulls = 0;
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && !ret)
            ret = s == PGRES_PIPELINE_ABORTED ? RTM_ESTORE : call_fail(st, r, what);
        PQclear(r);
    }
    return ret;
}

static int begin(struct pg_store *st) { return exec_text(st, "BEGIN", NULL, 0, "begin"); }
static int commit(struct pg_store *st) { return exec_text(st, "COMMIT", NULL, 0, "commit"); }
static void rollback(struct pg_store *st)
{
    if (!st->lost && PQstatus(st->conn) == CONNECTION_OK && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
        exec_text(st, "ROLLBACK", NULL, 0, "rollback");
}

/* Makes one JSON object of row i; NULL with *err set on failure. */
typedef json_t *row_json_fn(const PGresult *r, int i, int *err);

/* Runs a query and collects one JSON object per row into a new array. */
static int query_array(struct pg_store *st, enum stmt_id id, const struct params *p, const char *what,
                       row_json_fn *row_json, json_t **out)
{
    int ret = ensure_conn(st);
    if (ret) return ret;
    PGresult *r = NULL;
    if ((ret = run(st, id, p, &r, what))) return ret;
    json_t *a = json_array();
    if (!a) ret = RTM_ENOMEM;
    for (int i = 0; !ret && i < PQntuples(r); i++) {
        int err = RTM_ENOMEM;
        json_t *o = row_json(r, i, &err);
        if (!o) ret = err;
        else if (json_array_append_new(a, o)) ret = RTM_ENOMEM;
    }
    PQclear(r);
    if (ret) {
        json_decref(a);
        return ret;
    }
    *out = a;
    return 0;
}

/* ---- open, migrate, close ---- */

/* Under the migration lock: version 0 with tables means not ours. */
static int read_version(struct pg_store *st, int *version, char *err, size_t errlen)
{
    PGresult *r = PQexec(st->conn, "SELECT to_regclass('rtm_schema') IS NOT NULL, "
                                   "(SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())");
    int ret = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[256];
        clean_message(st, PQresultErrorMessage(r), msg, sizeof msg);
        snprintf(err, errlen, "store: %s: cannot read the schema (%s)", st->where, msg);
        ret = RTM_ESTORE;
    } else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        if (atoi(PQgetvalue(r, 0, 1)) > 0) {
            snprintf(err, errlen,
                     "store: %s holds tables but no rtm schema version: it is not an rtm database; "
                     "pass another --db",
                     st->where);
            ret = RTM_ESTORE;
        } else {
            ret = exec_text(st, "CREATE TABLE rtm_schema (version INTEGER NOT NULL); "
                                "INSERT INTO rtm_schema VALUES (0)",
                            err, errlen, "creating the version table");
            *version = 0;
        }
    } else {
        PQclear(r);
        r = PQexec(st->conn, "SELECT version FROM rtm_schema");
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            snprintf(err, errlen, "store: %s: rtm_schema must hold one row: restore a backup", st->where);
            ret = RTM_ESTORE;
        } else {
            *version = atoi(PQgetvalue(r, 0, 0));
        }
    }
    PQclear(r);
    return ret;
}

/* Applies the missing migrations in one transaction under the advisory lock. */
static int migrate(struct pg_store *st, char *err, size_t errlen)
{
    const int known = (int)rtm_pg_schema_migration_count;
    int v = 0, ret = exec_text(st, "BEGIN", err, errlen, "begin");
    if (ret) return ret;
    if ((ret = exec_text(st, "SELECT pg_advisory_xact_lock(" STR(LOCK_MIGRATE) ")", err, errlen,
                         "taking the migration lock")) ||
        (ret = read_version(st, &v, err, errlen)))
        goto fail;
    if (v > known) {
        snprintf(err, errlen,
                 "store: %s has schema version %d but this rtm knows only %d: upgrade rtm "
                 "(or pass another --db)",
                 st->where, v, known);
        ret = RTM_ESTORE;
        goto fail;
    }
    for (int next = v; next < known; next++) {
        char what[48];
        snprintf(what, sizeof what, "migration %d", next + 1);
        if ((ret = exec_text(st, rtm_pg_schema_migrations[next], err, errlen, what))) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, ": nothing was changed");
            goto fail;
        }
    }
    if (v < known) {
        char num[16];
        snprintf(num, sizeof num, "%d", known);
        const char *vals[] = {num};
        PGresult *r = PQexecParams(st->conn, "UPDATE rtm_schema SET version = $1", 1, NULL, vals, NULL,
                                   NULL, 0);
        ret = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : RTM_ESTORE;
        PQclear(r);
        if (ret) {
            snprintf(err, errlen, "store: %s: recording the schema version failed: nothing was changed",
                     st->where);
            goto fail;
        }
    }
    if ((ret = exec_text(st, "COMMIT", err, errlen, "commit"))) goto fail;
    st->version = known;
    if (v < known) log_info("store: %s migrated to schema version %d", st->where, known);
    return 0;
fail:
    rollback(st);
    return ret;
}

static void pg_close(struct rtm_store *base)
{
    struct pg_store *st = pg(base);
    if (!st) return;
    PQfinish(st->conn);
    OPENSSL_cleanse(st->password, sizeof st->password);
    free(st);
}

static int pg_open(const char *url, const struct rtm_store_opts *opts, struct rtm_store **out, char *err,
                   size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) err = scratch, errlen = sizeof scratch;
    err[0] = '\0';
    *out = NULL;
    struct pg_store *st = calloc(1, sizeof *st);
    if (!st) return RTM_ENOMEM;
    st->base.ops = &rtm_store_pg_ops;
    rtm_dburl_redact(url, st->where, sizeof st->where);
    int ret = 0;
    if (opts && opts->password_file && *opts->password_file)
        ret = read_password_file(st, opts->password_file, err, errlen);
    if (!ret) ret = connect_db(st, url, err, errlen);
    if (!ret) ret = session_setup(st, err, errlen); /* the timeouts bound the migration too */
    if (!ret) ret = migrate(st, err, errlen);
    if (!ret) ret = prepare_all(st, err, errlen);
    if (!ret) { /* keeps the revocation table bounded by the tokens still alive */
        struct params p = {0};
        p_i64(&p, rtm_now_s() - STORE_REVOCATION_PRUNE_GRACE_S);
        PGresult *r = NULL;
        if (run(st, S_REV_PRUNE, &p, &r, "pruning expired revocations") == 0) PQclear(r);
        else ret = RTM_ESTORE, snprintf(err, errlen, "store: %s: pruning expired revocations failed", st->where);
    }
    if (ret) {
        pg_close(&st->base);
        return ret;
    }
    *out = &st->base;
    return 0;
}

static int pg_version(struct rtm_store *base) { return pg(base)->version; }

/* ---- apps ---- */

static int app_ensure_row(struct pg_store *st, const char *name)
{
    struct params p = {0};
    p_text(&p, name);
    p_i64(&p, rtm_now_s());
    int ret = run_changes(st, S_APP_INSERT, &p, "app insert");
    return ret < 0 ? ret : 0;
}

static int pg_app_get(struct rtm_store *base, const char *name, struct rtm_app *out)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_text(&p, name);
    PGresult *r = NULL;
    if ((ret = run(st, S_APP_GET, &p, &r, "app get"))) return ret;
    if (PQntuples(r) == 1) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->duplicate_replace = strcmp(PQgetvalue(r, 0, 0), "replace") == 0;
        out->resume_window_ms = atoi(PQgetvalue(r, 0, 1));
        out->max_connections = atoi(PQgetvalue(r, 0, 2));
    } else {
        ret = RTM_ENOTFOUND;
    }
    PQclear(r);
    return ret;
}

static int pg_app_ensure(struct rtm_store *base, const char *name, struct rtm_app *out)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (!ret) ret = app_ensure_row(st, name);
    return ret ? ret : pg_app_get(base, name, out);
}

static int pg_app_set(struct rtm_store *base, const char *name, enum store_app_field field,
                      const char *value, long num)
{
    struct pg_store *st = pg(base);
    enum stmt_id id = field == APP_DUPLICATE_PEER     ? S_APP_SET_DUP
                      : field == APP_RESUME_WINDOW_MS ? S_APP_SET_RESUME
                                                      : S_APP_SET_MAXCONN;
    int ret = ensure_conn(st);
    if (ret || (ret = begin(st))) return ret;
    if ((ret = app_ensure_row(st, name))) goto fail;
    struct params p = {0};
    p_text(&p, name);
    if (id == S_APP_SET_DUP) p_text(&p, value);
    else p_i64(&p, num);
    if ((ret = run_changes(st, id, &p, "app set")) < 0 || (ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

/* ---- keys ---- */

static int row_to_key(const PGresult *r, int row, struct rtm_key *k)
{
    const struct store_key_cols c = {
        .id = PQgetvalue(r, row, 0),
        .app = PQgetvalue(r, row, 1),
        .kind = PQgetvalue(r, row, 2),
        .alg = PQgetvalue(r, row, 3),
        .secret = col_text_or_null(r, row, 4),
        .channels = PQgetvalue(r, row, 5),
        .actions = PQgetvalue(r, row, 6),
        .origins = PQgetvalue(r, row, 7),
        .created = col_i64(r, row, 8),
        .revoked = col_i64(r, row, 9),
    };
    return store_key_from_cols(&c, k);
}

/* Runs a one-row key query; RTM_ENOTFOUND when it has none. */
static int key_query(struct pg_store *st, enum stmt_id id, const char *arg, struct rtm_key *out)
{
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_text(&p, arg);
    PGresult *r = NULL;
    if ((ret = run(st, id, &p, &r, "key lookup"))) return ret;
    ret = PQntuples(r) == 1 ? row_to_key(r, 0, out) : RTM_ENOTFOUND;
    PQclear(r);
    return ret;
}

static int pg_key_get(struct rtm_store *base, const char *id, struct rtm_key *out)
{
    return key_query(pg(base), S_KEY_GET, id, out);
}

static int pg_key_by_hash(struct rtm_store *base, const char *hash, struct rtm_key *out)
{
    return key_query(pg(base), S_KEY_BY_HASH, hash, out);
}

static int pg_key_insert(struct rtm_store *base, const struct store_key_new *nk)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret || (ret = begin(st))) return ret;
    if ((ret = app_ensure_row(st, nk->app))) goto fail;
    struct params p = {0};
    p_text(&p, nk->id);
    p_text(&p, nk->app);
    p_text(&p, nk->kind);
    p_text(&p, nk->alg);
    p_text(&p, nk->secret);
    p_text(&p, nk->secret_hash);
    p_text(&p, nk->channels);
    p_text(&p, nk->actions);
    p_text(&p, nk->origins);
    p_i64(&p, rtm_now_s());
    PGresult *r = exec_prepared(st, S_KEY_INSERT, &p);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *constraint = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        if (state && !strcmp(state, "23505") && constraint && !strcmp(constraint, "keys_pkey"))
            ret = RTM_EEXISTS; /* a kid given twice: the caller words it */
        else ret = call_fail(st, r, "key insert");
    }
    PQclear(r);
    if (ret || (ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static json_t *key_list_json(const PGresult *r, int i, int *err)
{
    struct rtm_key k;
    if ((*err = row_to_key(r, i, &k))) return NULL;
    json_t *o = store_key_json(&k);
    rtm_key_free(&k);
    *err = RTM_ENOMEM;
    return o;
}

static int pg_key_list(struct rtm_store *base, json_t **out)
{
    struct params p = {0};
    p_i64(&p, STORE_KEY_LIST_MAX);
    return query_array(pg(base), S_KEY_LIST, &p, "key list", key_list_json, out);
}

static int pg_key_revoke(struct rtm_store *base, const char *id)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_text(&p, id);
    p_i64(&p, rtm_now_s());
    if ((ret = run_changes(st, S_KEY_REVOKE, &p, "key revoke")) != 0) return ret < 0 ? ret : 0;
    /* Nothing changed: absent, or revoked already (which keeps its first time). */
    struct rtm_key k;
    if ((ret = pg_key_get(base, id, &k))) return ret;
    rtm_key_free(&k);
    return 0;
}

static json_t *public_key_json(const PGresult *r, int i, int *err)
{
    return json_pack("{s:s, s:s, s:s}", "kid", PQgetvalue(r, i, 0), "alg", PQgetvalue(r, i, 1), "pem",
                     PQgetvalue(r, i, 2));
}

static int pg_key_public_list(struct rtm_store *base, json_t **out)
{
    struct params p = {0};
    p_i64(&p, STORE_KEY_LIST_MAX);
    return query_array(pg(base), S_KEY_PUBLIC, &p, "public key list", public_key_json, out);
}

/* ---- revocations ---- */

/* Inserts one revocation under the revocation lock (ids commit in order). */
static int revocation_insert(struct pg_store *st, enum stmt_id id, const struct params *p, const char *what)
{
    int ret = ensure_conn(st);
    if (ret || (ret = begin(st))) return ret;
    PGresult *r = NULL;
    if ((ret = run(st, S_REV_LOCK, NULL, &r, what))) goto fail;
    PQclear(r);
    if ((ret = run_changes(st, id, p, what)) < 0 || (ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static int pg_revoke_jti(struct rtm_store *base, const char *app, const char *jti, int64_t expires)
{
    struct params p = {0};
    p_text(&p, app);
    p_text(&p, jti);
    p_i64(&p, expires);
    p_i64(&p, rtm_now_s());
    return revocation_insert(pg(base), S_REV_JTI, &p, "revoke jti");
}

static int pg_revoke_peer(struct rtm_store *base, const char *app, const char *peer_id, int64_t before)
{
    struct params p = {0};
    p_text(&p, app);
    p_text(&p, peer_id);
    p_i64(&p, before);
    p_i64(&p, rtm_now_s());
    return revocation_insert(pg(base), S_REV_PEER, &p, "revoke peer");
}

static int pg_is_revoked(struct rtm_store *base, const char *app, const char *jti, const char *peer_id,
                         int64_t iat)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_text(&p, app);
    p_text(&p, jti);
    p_text(&p, peer_id);
    p_i64(&p, iat);
    PGresult *r = NULL;
    if ((ret = run(st, S_IS_REVOKED, &p, &r, "is revoked"))) return ret;
    ret = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return ret;
}

static json_t *revocation_json(const PGresult *r, int i, int *err)
{
    return store_revocation_json(col_i64(r, i, 0), PQgetvalue(r, i, 1), col_text_or_null(r, i, 2),
                                 PQgetvalue(r, i, 3), col_i64(r, i, 4));
}

static int pg_revocations_since(struct rtm_store *base, int64_t since_id, json_t **out, int64_t *last_id)
{
    struct params p = {0};
    p_i64(&p, since_id);
    p_i64(&p, STORE_REVOCATIONS_BATCH);
    int ret = query_array(pg(base), S_REV_SINCE, &p, "revocations since", revocation_json, out);
    if (!ret && last_id) {
        size_t n = json_array_size(*out);
        *last_id = n ? json_integer_value(json_object_get(json_array_get(*out, n - 1), "id")) : since_id;
    }
    return ret;
}

/* ---- sessions ---- */

static int pg_sessions_write(struct rtm_store *base, const struct rtm_session_row *rows, size_t n)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret || (ret = begin(st))) return ret;
    /* Session rows may be lost to a server crash, as the sqlite store's may
     * to a power cut; keys and revocations may not (synchronous_commit on). */
    if ((ret = exec_text(st, "SET LOCAL synchronous_commit = off", NULL, 0, "session write"))) goto fail;
    /* One round trip per PIPELINE_MAX rows rather than per row: a remote
     * server's latency would otherwise bound how many rows a flush can write. */
    if (!PQenterPipelineMode(st->conn)) {
        ret = call_fail(st, NULL, "session write");
        goto fail;
    }
    for (size_t i = 0, sent = 0; i < n; i++) {
        const struct rtm_session_row *w = &rows[i];
        struct params p = {0};
        p_text(&p, w->id);
        p_text(&p, w->app);
        p_text(&p, w->peer_id);
        p_text(&p, w->jti);
        p_text(&p, w->remote_addr);
        p_text(&p, w->origin);
        p_text(&p, w->user_agent);
        p_i64(&p, w->connected_ms);
        p_i64(&p, w->closed_ms);
        p_i64(&p, w->close_code);
        p_text(&p, w->close_reason);
        /* Counters past 2^63 would wrap; no connection lives that long. */
        p_i64(&p, (int64_t)w->frames_in);
        p_i64(&p, (int64_t)w->frames_out);
        p_i64(&p, (int64_t)w->bytes_in);
        p_i64(&p, (int64_t)w->bytes_out);
        p_text(&p, w->node_id);
        int err = send_prepared(st, S_SESSION_UPSERT, &p, "session write");
        if (!err) sent++;
        if (err || sent == PIPELINE_MAX || i + 1 == n) {
            int synced = sent ? pipeline_sync(st, "session write") : 0;
            ret = err ? err : synced;
            sent = 0;
            if (ret) break;
        }
    }
    if (!PQexitPipelineMode(st->conn)) {
        /* results left unread (the connection broke mid-batch): this
         * connection is unusable for plain calls until it is reset */
        if (!ret) ret = call_fail(st, NULL, "session write");
        st->lost = 1;
    }
    if (ret || (ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static int pg_sessions_close_dangling(struct rtm_store *base, const char *node_id, const char *reason)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_i64(&p, rtm_now_ms());
    p_i64(&p, STORE_SESSION_CLOSE_ABNORMAL);
    p_text(&p, reason);
    p_text(&p, node_id);
    return run_changes(st, S_SESSION_DANGLING, &p, "close dangling sessions");
}

static int pg_sessions_prune(struct rtm_store *base, int64_t connected_before_ms, int max_rows)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_i64(&p, connected_before_ms);
    p_i64(&p, max_rows);
    return run_changes(st, S_SESSION_PRUNE, &p, "prune sessions");
}

static json_t *session_json(const PGresult *r, int i, int *err)
{
    const struct store_session_cols c = {
        .id = PQgetvalue(r, i, 0),
        .app = PQgetvalue(r, i, 1),
        .peer_id = PQgetvalue(r, i, 2),
        .jti = PQgetvalue(r, i, 3),
        .remote_addr = PQgetvalue(r, i, 4),
        .origin = col_text_or_null(r, i, 5),
        .user_agent = col_text_or_null(r, i, 6),
        .connected_ms = col_i64(r, i, 7),
        .closed_ms = col_i64(r, i, 8),
        .close_code = atoi(PQgetvalue(r, i, 9)),
        .close_reason = PQgetvalue(r, i, 10),
        .frames_in = col_i64(r, i, 11),
        .frames_out = col_i64(r, i, 12),
        .bytes_in = col_i64(r, i, 13),
        .bytes_out = col_i64(r, i, 14),
    };
    return store_session_json(&c);
}

static int pg_sessions_query(struct rtm_store *base, const char *app, const char *peer_id, int limit,
                             json_t **out)
{
    struct params p = {0};
    if (peer_id) p_text(&p, peer_id);
    p_i64(&p, limit);
    p_text(&p, app);
    return query_array(pg(base), peer_id ? S_SESSIONS_PEER : S_SESSIONS_ALL, &p, "sessions query",
                       session_json, out);
}

/* ---- change detection, bulk loads, outbox, presence (store.h: for the view) ---- */

/* Postgres has no data_version: one query reads the three things a poller
 * follows (the change counter, the newest revocation and outbox ids: index
 * ends) and compares them with the last call's, so an idle poll is one
 * round trip instead of three. Revocation and outbox ids commit in order
 * (their advisory locks), so a row committed later always raises its max. */
static int pg_changed(struct rtm_store *base)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    PGresult *r = NULL;
    if ((ret = run(st, S_CHANGED, NULL, &r, "changed"))) return ret;
    int changed = 1;
    if (PQntuples(r) == 1 && PQnfields(r) == 3) {
        int64_t now[3] = {col_i64(r, 0, 0), col_i64(r, 0, 1), col_i64(r, 0, 2)};
        changed = !st->seen_valid || memcmp(now, st->seen, sizeof now) != 0;
        memcpy(st->seen, now, sizeof now);
        st->seen_valid = 1;
    }
    PQclear(r);
    return changed;
}

static int read_i64(struct pg_store *st, enum stmt_id id, int64_t *out, const char *what)
{
    int ret = ensure_conn(st);
    if (ret) return ret;
    PGresult *r = NULL;
    if ((ret = run(st, id, NULL, &r, what))) return ret;
    if (PQntuples(r) == 1) *out = col_i64(r, 0, 0);
    else ret = RTM_ESTORE;
    PQclear(r);
    return ret;
}

static int pg_config_version(struct rtm_store *base, int64_t *out)
{
    return read_i64(pg(base), S_CONFIG_VERSION, out, "config version");
}

static int pg_keys_load(struct rtm_store *base, struct rtm_key **out, size_t *n)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_i64(&p, RTM_STORE_LOAD_MAX);
    PGresult *r = NULL;
    if ((ret = run(st, S_KEYS_ALL, &p, &r, "keys load"))) return ret;
    int rows = PQntuples(r);
    struct rtm_key *keys = calloc(rows ? (size_t)rows : 1, sizeof *keys);
    size_t len = 0;
    if (!keys) ret = RTM_ENOMEM;
    for (int i = 0; !ret && i < rows; i++)
        if (!(ret = row_to_key(r, i, &keys[len]))) len++;
    PQclear(r);
    if (ret) {
        rtm_keys_free(keys, len);
        return ret;
    }
    *out = keys;
    *n = len;
    return 0;
}

static int pg_apps_load(struct rtm_store *base, struct rtm_app **out, size_t *n)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_i64(&p, RTM_STORE_LOAD_MAX);
    PGresult *r = NULL;
    if ((ret = run(st, S_APPS_ALL, &p, &r, "apps load"))) return ret;
    int rows = PQntuples(r);
    struct rtm_app *apps = calloc(rows ? (size_t)rows : 1, sizeof *apps);
    size_t len = 0;
    for (int i = 0; apps && i < rows; i++) {
        struct rtm_app *a = &apps[len];
        const char *name = PQgetvalue(r, i, 0);
        if (strlen(name) >= sizeof a->name) continue; /* the schema bounds it */
        memcpy(a->name, name, strlen(name) + 1);
        a->duplicate_replace = strcmp(PQgetvalue(r, i, 1), "replace") == 0;
        a->resume_window_ms = atoi(PQgetvalue(r, i, 2));
        a->max_connections = atoi(PQgetvalue(r, i, 3));
        len++;
    }
    PQclear(r);
    if (!apps) return RTM_ENOMEM;
    *out = apps;
    *n = len;
    return 0;
}

static int pg_outbox_post(struct rtm_store *base, const char *kind, const char *app, const char *target,
                          const char *data)
{
    struct pg_store *st = pg(base);
    struct params p = {0};
    p_text(&p, kind);
    p_text(&p, app);
    p_text(&p, target);
    p_text(&p, data);
    p_i64(&p, rtm_now_ms());
    /* Under a lock, as revocations: ids commit in order, so no reader skips one. */
    int ret = ensure_conn(st);
    if (ret || (ret = begin(st))) return ret;
    PGresult *r = NULL;
    if ((ret = run(st, S_OUTBOX_LOCK, NULL, &r, "outbox post"))) goto fail;
    PQclear(r);
    if ((ret = run_changes(st, S_OUTBOX_POST, &p, "outbox post")) < 0 || (ret = commit(st))) goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static json_t *outbox_json(const PGresult *r, int i, int *err)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)col_i64(r, i, 0), "kind", PQgetvalue(r, i, 1),
                          "app", PQgetvalue(r, i, 2), "target", PQgetvalue(r, i, 3));
    if (o && !PQgetisnull(r, i, 4) && json_object_set_new(o, "data", json_string(PQgetvalue(r, i, 4))))
        json_decref(o), o = NULL;
    return o;
}

static int pg_outbox_since(struct rtm_store *base, int64_t since_id, json_t **out, int64_t *last_id)
{
    struct params p = {0};
    p_i64(&p, since_id);
    p_i64(&p, STORE_REVOCATIONS_BATCH);
    int ret = query_array(pg(base), S_OUTBOX_SINCE, &p, "outbox since", outbox_json, out);
    if (!ret && last_id) {
        size_t n = json_array_size(*out);
        *last_id = n ? json_integer_value(json_object_get(json_array_get(*out, n - 1), "id")) : since_id;
    }
    return ret;
}

static int pg_outbox_last(struct rtm_store *base, int64_t *last_id)
{
    return read_i64(pg(base), S_OUTBOX_LAST, last_id, "outbox last");
}

static int pg_outbox_prune(struct rtm_store *base, int64_t before_ms, int keep_max)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_i64(&p, before_ms);
    p_i64(&p, keep_max);
    ret = run_changes(st, S_OUTBOX_PRUNE, &p, "outbox prune");
    return ret < 0 ? ret : 0;
}

static int pg_presence_put(struct rtm_store *base, const char *node_id, const char *app, const char *peers,
                           int64_t now_ms)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    int empty = strcmp(peers, "[]") == 0;
    struct params p = {0};
    p_text(&p, node_id);
    p_text(&p, app);
    if (!empty) {
        p_text(&p, peers);
        p_i64(&p, now_ms);
    }
    ret = run_changes(st, empty ? S_PRESENCE_DEL : S_PRESENCE_PUT, &p, "presence put");
    return ret < 0 ? ret : 0;
}

static int pg_node_seen(struct rtm_store *base, const char *node_id, int64_t now_ms)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_text(&p, node_id);
    p_i64(&p, now_ms);
    ret = run_changes(st, S_NODE_SEEN, &p, "node seen");
    return ret < 0 ? ret : 0;
}

static int pg_node_clear(struct rtm_store *base, const char *node_id)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret || (ret = begin(st))) return ret;
    struct params p = {0};
    p_text(&p, node_id);
    if ((ret = run_changes(st, S_NODE_DEL_PRESENCE, &p, "node clear")) < 0 ||
        (ret = run_changes(st, S_NODE_DEL, &p, "node clear")) < 0 || (ret = commit(st)))
        goto fail;
    return 0;
fail:
    rollback(st);
    return ret;
}

static int pg_presence_query(struct rtm_store *base, const char *app, int64_t fresh_ms, json_t **out)
{
    struct pg_store *st = pg(base);
    int ret = ensure_conn(st);
    if (ret) return ret;
    struct params p = {0};
    p_text(&p, app);
    p_i64(&p, fresh_ms);
    PGresult *r = NULL;
    if ((ret = run(st, S_PRESENCE_QUERY, &p, &r, "presence query"))) return ret;
    json_t *a = json_array();
    for (int i = 0; a && i < PQntuples(r); i++) {
        json_t *peers = json_loads(PQgetvalue(r, i, 0), 0, NULL);
        if (json_is_array(peers)) json_array_extend(a, peers);
        json_decref(peers);
    }
    PQclear(r);
    if (!a) return RTM_ENOMEM;
    *out = a;
    return 0;
}

const struct rtm_store_ops rtm_store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .version = pg_version,
    .app_ensure = pg_app_ensure,
    .app_get = pg_app_get,
    .app_set = pg_app_set,
    .key_insert = pg_key_insert,
    .key_get = pg_key_get,
    .key_by_hash = pg_key_by_hash,
    .key_list = pg_key_list,
    .key_revoke = pg_key_revoke,
    .key_public_list = pg_key_public_list,
    .revoke_jti = pg_revoke_jti,
    .revoke_peer = pg_revoke_peer,
    .is_revoked = pg_is_revoked,
    .revocations_since = pg_revocations_since,
    .sessions_write = pg_sessions_write,
    .sessions_close_dangling = pg_sessions_close_dangling,
    .sessions_prune = pg_sessions_prune,
    .sessions_query = pg_sessions_query,
    .changed = pg_changed,
    .config_version = pg_config_version,
    .keys_load = pg_keys_load,
    .apps_load = pg_apps_load,
    .outbox_post = pg_outbox_post,
    .outbox_since = pg_outbox_since,
    .outbox_last = pg_outbox_last,
    .outbox_prune = pg_outbox_prune,
    .presence_put = pg_presence_put,
    .node_seen = pg_node_seen,
    .node_clear = pg_node_clear,
    .presence_query = pg_presence_query,
};
