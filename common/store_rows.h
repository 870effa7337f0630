/* store_rows.h: what every store backend shares below the SQL (private to common/).
 *
 * Argument rules (app names, key specs), id and secret generation, and the
 * encodings between C structs, column text and the REST JSON live here once,
 * so the sqlite and Postgres backends differ only in their SQL and driver
 * calls and cannot drift apart in what they accept or return. Pure functions:
 * no store handle, any thread. */
#ifndef RTM_STORE_ROWS_H
#define RTM_STORE_ROWS_H

#include "store.h"

#define STORE_KEY_LIST_MAX 10000     /* rows one key list returns */
#define STORE_REVOCATIONS_BATCH 1000 /* rows one revocations_since returns */
#define STORE_SESSIONS_QUERY_DEFAULT 100
#define STORE_SESSIONS_QUERY_MAX 1000
#define STORE_SESSION_CLOSE_ABNORMAL 1006
/* jti revocations are kept this long past their token's exp (clock skew). */
#define STORE_REVOCATION_PRUNE_GRACE_S 3600
#define STORE_MAX_JTI_LEN 256

int store_printable_ascii(const char *s, size_t min, size_t max);
int store_app_name_valid(const char *name);

/* The app settings rtm_store_app_set knows; the column each one writes. */
enum store_app_field { APP_DUPLICATE_PEER, APP_RESUME_WINDOW_MS, APP_MAX_CONNECTIONS };
/* Parses one setting: RTM_EINVAL for an unknown key or a bad value; text
 * settings leave *num alone. */
int store_app_setting(const char *key, const char *value, enum store_app_field *field, long *num);

/* A key about to be inserted: validated, its id (and HS256 secret) generated,
 * its lists encoded as the JSON text the key columns hold. Stack-owned by
 * the caller; store_key_new_clear frees the texts and wipes the secret. */
struct store_key_new {
    char id[80];
    const char *app;
    const char *kind;        /* "secret" | "publishable" */
    const char *alg;         /* "" for publishable */
    const char *secret;      /* HS256: secret_buf; RS/ES: the caller's PEM; NULL for pk */
    const char *secret_hash; /* HS256: hash_buf; else NULL */
    char *channels, *actions, *origins;
    char secret_buf[80];
    char hash_buf[65];
};
/* RTM_EINVAL (reason logged at warn) for a bad spec. */
int store_key_new_init(struct store_key_new *nk, const struct rtm_key_spec *spec);
void store_key_new_clear(struct store_key_new *nk);

/* The columns every backend selects for a key row and a session row, in the
 * order of store_key_cols and store_session_cols: one list, so a column added
 * to the schema is read the same way by both backends. */
#define STORE_KEY_COLUMNS "id, app, kind, alg, secret, channels, actions, origins, created, revoked"
#define STORE_SESSION_COLUMNS                                                                      \
    "id, app, peer_id, jti, remote_addr, origin, user_agent, connected_ms, closed_ms, close_code, " \
    "close_reason, frames_in, frames_out, bytes_in, bytes_out"

/* One key row as column text (secret NULL when the column is NULL). */
struct store_key_cols {
    const char *id, *app, *kind, *alg, *secret, *channels, *actions, *origins;
    int64_t created, revoked;
};
/* Fills k (heap fields owned by k; rtm_key_free); RTM_ESTORE for a row that
 * breaks the schema's promises. */
int store_key_from_cols(const struct store_key_cols *c, struct rtm_key *k);
/* The key as rtm_store_key_list shows it (no secret); NULL on ENOMEM. */
json_t *store_key_json(const struct rtm_key *k);
/* Lowercase hex SHA-256 of a secret, the indexed lookup column. */
int store_secret_hash(const char *secret, char out[65]);

/* One revocation row as rtm_store_revocations_since shows it: {id, app, jti}
 * when jti is not NULL, else {id, app, peerId, before}. NULL on ENOMEM. */
json_t *store_revocation_json(int64_t id, const char *app, const char *jti, const char *peer_id,
                              int64_t before);

/* One session row as column values (origin, user_agent NULL when unknown). */
struct store_session_cols {
    const char *id, *app, *peer_id, *jti, *remote_addr, *origin, *user_agent, *close_reason;
    int64_t connected_ms, closed_ms, frames_in, frames_out, bytes_in, bytes_out;
    int close_code;
};
/* The session as the REST API shows it (camelCase; close fields null while open). */
json_t *store_session_json(const struct store_session_cols *c);

#endif
