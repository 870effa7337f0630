/* store_backend.h: what a store backend provides to the front (store.c).
 *
 * Private to common/: callers use store.h only. Each backend (sqlite, later
 * Postgres) fills one const rtm_store_ops with its implementation of every
 * store.h function and embeds struct rtm_store as the first member of its own
 * handle, so the front dispatches with one indirect call and no lookup. The
 * contract of each op is the store.h function of the same name, except that
 * the front has already validated every argument (app names, jti and peer
 * sizes, key specs, setting values, session ids, query limits) and done
 * what needs no database (ids, secrets, hashes, encodings: store_rows.h). */
#ifndef RTM_STORE_BACKEND_H
#define RTM_STORE_BACKEND_H

#include "store.h"
#include "store_rows.h"

/* The front's view of a store: one per open store, first member of the
 * backend's own struct (which owns it). */
struct rtm_store {
    const struct rtm_store_ops *ops;
};

struct rtm_store_ops {
    const char *name; /* "sqlite", "postgres": for logs */
    int (*open)(const char *where, const struct rtm_store_opts *opts, struct rtm_store **out, char *err,
                size_t errlen);
    void (*close)(struct rtm_store *st);
    int (*version)(struct rtm_store *st);

    int (*app_ensure)(struct rtm_store *st, const char *name, struct rtm_app *out);
    int (*app_get)(struct rtm_store *st, const char *name, struct rtm_app *out);
    /* value for APP_DUPLICATE_PEER, num for the others; creates the app when missing */
    int (*app_set)(struct rtm_store *st, const char *name, enum store_app_field field,
                   const char *value, long num);

    /* Inserts the key (and its app when missing) in one transaction; RTM_EEXISTS for a taken id. */
    int (*key_insert)(struct rtm_store *st, const struct store_key_new *nk);
    int (*key_get)(struct rtm_store *st, const char *id, struct rtm_key *out);
    /* The HS256 key whose secret hashes to hash (store_secret_hash); RTM_ENOTFOUND when none. */
    int (*key_by_hash)(struct rtm_store *st, const char *hash, struct rtm_key *out);
    int (*key_list)(struct rtm_store *st, json_t **out);
    int (*key_revoke)(struct rtm_store *st, const char *id);
    int (*key_public_list)(struct rtm_store *st, json_t **out);

    int (*revoke_jti)(struct rtm_store *st, const char *app, const char *jti, int64_t expires);
    int (*revoke_peer)(struct rtm_store *st, const char *app, const char *peer_id, int64_t before);
    int (*is_revoked)(struct rtm_store *st, const char *app, const char *jti, const char *peer_id,
                      int64_t iat);
    int (*revocations_since)(struct rtm_store *st, int64_t since_id, json_t **out, int64_t *last_id);

    int (*sessions_write)(struct rtm_store *st, const struct rtm_session_row *rows, size_t n);
    int (*sessions_close_dangling)(struct rtm_store *st, const char *node_id, const char *reason);
    /* Rows deleted (closed, connected before the bound, oldest first, at most max_rows). */
    int (*sessions_prune)(struct rtm_store *st, int64_t connected_before_ms, int max_rows);
    int (*sessions_query)(struct rtm_store *st, const char *app, const char *peer_id, int limit,
                          json_t **out);

    int (*changed)(struct rtm_store *st);
    int (*config_version)(struct rtm_store *st, int64_t *out);
    int (*keys_load)(struct rtm_store *st, struct rtm_key **out, size_t *n);
    int (*apps_load)(struct rtm_store *st, struct rtm_app **out, size_t *n);
    int (*outbox_post)(struct rtm_store *st, const char *kind, const char *app, const char *target,
                       const char *data);
    int (*outbox_since)(struct rtm_store *st, int64_t since_id, json_t **out, int64_t *last_id);
    int (*outbox_last)(struct rtm_store *st, int64_t *last_id);
    int (*outbox_prune)(struct rtm_store *st, int64_t before_ms, int keep_max);
    int (*presence_put)(struct rtm_store *st, const char *node_id, const char *app, const char *peers,
                        int64_t now_ms);
    int (*node_seen)(struct rtm_store *st, const char *node_id, int64_t now_ms);
    int (*node_clear)(struct rtm_store *st, const char *node_id);
    int (*presence_query)(struct rtm_store *st, const char *app, int64_t fresh_ms, json_t **out);
};

extern const struct rtm_store_ops rtm_store_sqlite_ops;
extern const struct rtm_store_ops rtm_store_pg_ops;

#endif
