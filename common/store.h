/* store.h: the store: apps, keys, revocations, sessions.
 *
 * Two backends behind one contract, chosen at open by the --db value: a
 * sqlite file (the embedded default: common/store_sqlite.c) or a Postgres
 * server given as a postgres:// or postgresql:// URL (common/store_pg.c);
 * store.c is the front that validates arguments and dispatches. One struct
 * rtm_store per user, owned by whoever opened it (rtmd's main or the `rtm key`
 * tool), used from one thread at a time. Schema changes are numbered
 * migrations (schema/NNN_*.sql for sqlite, schema/pg/NNN_*.sql for Postgres,
 * the same numbers), compiled in and applied at open. sqlite runs in WAL mode
 * with a busy timeout so `rtm key create` can run beside a live rtmd; Postgres
 * migrates under an advisory lock so two processes starting at once cannot
 * both migrate. Nothing is ever recreated over existing data: a locked,
 * corrupt, unwritable, foreign or newer-version store fails open with a reason
 * naming it (a URL's password redacted) and what to do.
 *
 * Postgres calls are bounded (connect timeout, statement timeout, TCP
 * keepalives): a server that is down or gone makes a call fail with
 * RTM_ESTORE within seconds, never hang or abort, and the next call after
 * the server is back reconnects (at most one attempt per second).
 *
 * Ownership: every struct filled by a getter owns its heap fields; release
 * them with the matching *_free(). json_t results are new references. */
#ifndef RTM_STORE_H
#define RTM_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct rtm_store;

/* What a network store needs beyond its URL; sqlite ignores it. */
struct rtm_store_opts {
    /* Postgres: a file whose first line is the password (never argv). NULL:
     * or "": libpq's own sources (PGPASSWORD, PGPASSFILE, ~/.pgpass). */
    const char *password_file;
};

/* Opens (creating a missing sqlite file) and migrates. `where` is a sqlite
 * path or a Postgres URL. On failure returns a negative rtm_err and a
 * one-line reason in err. rtm_store_open is rtm_store_open_opts(.., NULL, ..). */
int rtm_store_open(const char *where, struct rtm_store **out, char *err, size_t errlen);
int rtm_store_open_opts(const char *where, const struct rtm_store_opts *opts, struct rtm_store **out,
                        char *err, size_t errlen);
/* "sqlite" or "postgres". */
const char *rtm_store_kind(struct rtm_store *st);
void rtm_store_close(struct rtm_store *st);
/* Schema version the store is at after open (== number of migrations). */
int rtm_store_version(struct rtm_store *st);

/* ---- apps ---- */
struct rtm_app {
    char name[65];
    int duplicate_replace;  /* app setting duplicatePeer: 1 = "replace", 0 = "allow" (default) */
    int resume_window_ms;   /* -1 = the daemon's default */
    int max_connections;    /* 0 = no per-app cap beyond the daemon's */
};
/* Creates the app row if missing (defaults) and returns it. */
int rtm_store_app_ensure(struct rtm_store *st, const char *name, struct rtm_app *out);
int rtm_store_app_get(struct rtm_store *st, const char *name, struct rtm_app *out); /* RTM_ENOTFOUND */
/* key = "duplicatePeer" ("allow"|"replace"), "resumeWindowMs" (-1..86400000),
 * "maxConnections" (0..100000000). Creates the app when missing. RTM_EINVAL for
 * an unknown key or a bad value. */
int rtm_store_app_set(struct rtm_store *st, const char *name, const char *key, const char *value);

/* ---- keys ---- */
struct rtm_key {
    char id[80];      /* sk_id_<hex> | pk_<hex> | the kid given for RS256/ES256 keys */
    char app[65];
    int publishable;  /* 1 for pk_ keys */
    char alg[8];      /* "HS256", "RS256", "ES256"; "" for publishable */
    char *secret;     /* HS256: the shared secret (sk_secret_<hex>); RS/ES: public key PEM; NULL for pk */
    char **channels;  /* allowed channel patterns (never empty: default {"**"}) */
    size_t n_channels;
    unsigned actions; /* RTM_PERM_* bits */
    char **origins;   /* allowed Origins; n_origins == 0 means any */
    size_t n_origins;
    int64_t created;  /* unix s */
    int64_t revoked;  /* unix s, 0 = live */
};
void rtm_key_free(struct rtm_key *k);

struct rtm_key_spec {
    const char *app;
    int publishable;
    const char *alg;          /* NULL = HS256 (secret keys) */
    const char *kid;          /* NULL = generated; required for RS256/ES256 */
    const char *public_pem;   /* RS256/ES256 only */
    const char *const *channels; size_t n_channels;   /* NULL/0 = {"**"} */
    unsigned actions;                                 /* 0 = all four */
    const char *const *origins; size_t n_origins;     /* NULL/0 = any */
};
/* Creates a key (generating id and, for HS256, the secret) and its app if missing. */
int rtm_store_key_create(struct rtm_store *st, const struct rtm_key_spec *spec, struct rtm_key *out);
/* Live or revoked; callers check k->revoked. RTM_ENOTFOUND when absent. */
int rtm_store_key_get(struct rtm_store *st, const char *id, struct rtm_key *out);
/* Finds an HS256 secret key by its secret (Bearer auth). RTM_ENOTFOUND when absent. */
int rtm_store_key_by_secret(struct rtm_store *st, const char *secret, struct rtm_key *out);
/* JSON array of keys without secrets: [{id, app, kind, alg, channels, actions, origins, created, revoked}]
 * (alg null for publishable keys, revoked 0 while live; oldest first, at most 10000). */
int rtm_store_key_list(struct rtm_store *st, json_t **out);
int rtm_store_key_revoke(struct rtm_store *st, const char *id); /* RTM_ENOTFOUND */
/* JSON array of the public RS256/ES256 keys: [{kid, alg, pem}] (for JWKS; revoked keys left out). */
int rtm_store_key_public_list(struct rtm_store *st, json_t **out);

/* ---- revocations ---- */
/* By jti: expires is the token's exp, after which the row may be pruned. */
int rtm_store_revoke_jti(struct rtm_store *st, const char *app, const char *jti, int64_t expires);
/* By peer: every token of that peer issued (iat) before `before` (unix s) is void. */
int rtm_store_revoke_peer(struct rtm_store *st, const char *app, const char *peer_id, int64_t before);
/* 1 when revoked, 0 when not, negative on store error. */
int rtm_store_is_revoked(struct rtm_store *st, const char *app, const char *jti, const char *peer_id,
                         int64_t iat);
/* Rows created after `since_id` (for the broker to enforce on live sessions):
 * JSON array of {id, app, jti?, peerId?, before?}, oldest first, at most 1000 per
 * call (call again with *last_id until empty); *last_id is the newest id seen. */
int rtm_store_revocations_since(struct rtm_store *st, int64_t since_id, json_t **out, int64_t *last_id);

/* ---- sessions ---- */
struct rtm_session_row {
    char id[40];
    char node_id[65];   /* the rtmd that owns the row (node-id setting) */
    char app[65];
    char peer_id[129];
    char jti[80];
    char remote_addr[64];
    char *origin;       /* may be NULL */
    char *user_agent;   /* may be NULL */
    int64_t connected_ms;
    int64_t closed_ms;  /* 0 while open */
    int close_code;     /* 0 while open */
    char close_reason[124];
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
};
/* Upserts the rows in one transaction (the broker batches; never per frame). */
int rtm_store_sessions_write(struct rtm_store *st, const struct rtm_session_row *rows, size_t n);
/* Closes this node's rows left open by a crash (and rows from before node
 * ids, node_id ''): closed = now, code 1006, reason given. Rows of other
 * nodes are left alone. Returns rows changed. */
int rtm_store_sessions_close_dangling(struct rtm_store *st, const char *node_id, const char *reason);
/* Retention: deletes at most max_rows closed rows of sessions that connected
 * before connected_before_ms, oldest first (an index search, so a call costs
 * in proportion to max_rows, not to the table). Returns rows deleted or a
 * negative rtm_err. Rows of sessions still open are kept however old. */
int rtm_store_sessions_prune(struct rtm_store *st, int64_t connected_before_ms, int max_rows);
/* Newest first, at most limit (<= 0: 100; capped at 1000): JSON array of session
 * objects (camelCase keys); app and peer_id filter (NULL = any). The app filter
 * is applied before the limit, so one app's rows never crowd out another's. closedAt, closeCode and closeReason
 * are null while the session is open; origin and userAgent null when unknown. */
int rtm_store_sessions_query(struct rtm_store *st, const char *app, const char *peer_id, int limit,
                             json_t **out);

/* ---- for the in-memory view (common/view.c) and roles across processes ----
 * Called from the view's own threads, each with its own store handle. */
#define RTM_STORE_LOAD_MAX 100000 /* keys or apps one load returns at most */
/* 1 when another connection may have committed since the last call on this
 * handle (always 1 on the first call), 0 when surely not, negative on error.
 * sqlite: PRAGMA data_version, so an idle poll costs no table read. */
int rtm_store_changed(struct rtm_store *st);
/* A counter that changes with every change to keys or apps. */
int rtm_store_config_version(struct rtm_store *st, int64_t *out);
/* Every key, secrets included (*n of them, oldest first); free with rtm_keys_free. */
int rtm_store_keys_load(struct rtm_store *st, struct rtm_key **out, size_t *n);
void rtm_keys_free(struct rtm_key *keys, size_t n);
/* Every app (*n of them); free() the array. */
int rtm_store_apps_load(struct rtm_store *st, struct rtm_app **out, size_t *n);

/* The outbox: kicks and server publishes for brokers in other processes.
 * kind "kick" (target = peerId) or "publish" (target = channel, data = JSON text). */
int rtm_store_outbox_post(struct rtm_store *st, const char *kind, const char *app, const char *target,
                          const char *data);
/* Rows after since_id, oldest first, at most 1000: [{id, kind, app, target, data?}]; *last_id the newest. */
int rtm_store_outbox_since(struct rtm_store *st, int64_t since_id, json_t **out, int64_t *last_id);
/* The newest row id (0 when empty): a broker starts after it. */
int rtm_store_outbox_last(struct rtm_store *st, int64_t *last_id);
/* Deletes rows created before before_ms, and all but the newest keep_max. */
int rtm_store_outbox_prune(struct rtm_store *st, int64_t before_ms, int keep_max);

/* Presence snapshots: a broker's peers of one app as the JSON array text
 * GET /v1/peers shows ("[]" deletes the row); node rows say who is alive. */
int rtm_store_presence_put(struct rtm_store *st, const char *node_id, const char *app, const char *peers,
                           int64_t now_ms);
int rtm_store_node_seen(struct rtm_store *st, const char *node_id, int64_t now_ms);
/* Removes a node's row and its presence rows (clean stop, or start). */
int rtm_store_node_clear(struct rtm_store *st, const char *node_id);
/* The peers of app on every node seen since fresh_ms: one JSON array of the
 * snapshots' objects (at most 64 nodes). */
int rtm_store_presence_query(struct rtm_store *st, const char *app, int64_t fresh_ms, json_t **out);

#endif
