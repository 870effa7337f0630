/* store.c: the backend-neutral front of store.h.
 *
 * Main design choice: the backend is chosen once, at open, from the --db
 * value, and every later call is one indirect call through that backend's ops
 * table (store_backend.h). Everything that needs no database happens here,
 * once for every backend: argument checks, ids and secrets, limits. Nothing
 * here knows SQL or a driver.
 *
 * Secret keys are looked up by the SHA-256 of their secret (indexed), then
 * compared in constant time: an index search over the secret itself would
 * leak, through its timing, how much of a guess matched. */
#include "store.h"
#include "store_backend.h"
#include "store_rows.h"

#include "dburl.h"
#include "errors.h"
#include "protocol.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rtm_store_open_opts(const char *where, const struct rtm_store_opts *opts, struct rtm_store **out,
                        char *err, size_t errlen)
{
    const struct rtm_store_ops *ops = rtm_dburl_is_postgres(where) ? &rtm_store_pg_ops : &rtm_store_sqlite_ops;
    return ops->open(where, opts, out, err, errlen);
}

int rtm_store_open(const char *where, struct rtm_store **out, char *err, size_t errlen)
{
    return rtm_store_open_opts(where, NULL, out, err, errlen);
}

const char *rtm_store_kind(struct rtm_store *st) { return st->ops->name; }

void rtm_store_close(struct rtm_store *st)
{
    if (st) st->ops->close(st);
}

int rtm_store_version(struct rtm_store *st) { return st->ops->version(st); }

/* ---- apps ---- */

int rtm_store_app_ensure(struct rtm_store *st, const char *name, struct rtm_app *out)
{
    if (!store_app_name_valid(name)) return RTM_EINVAL;
    return st->ops->app_ensure(st, name, out);
}

int rtm_store_app_get(struct rtm_store *st, const char *name, struct rtm_app *out)
{
    if (!store_app_name_valid(name)) return RTM_EINVAL;
    return st->ops->app_get(st, name, out);
}

int rtm_store_app_set(struct rtm_store *st, const char *name, const char *key, const char *value)
{
    enum store_app_field field;
    long num = 0;
    if (!store_app_name_valid(name) || store_app_setting(key, value, &field, &num)) return RTM_EINVAL;
    return st->ops->app_set(st, name, field, value, num);
}

/* ---- keys ---- */

void rtm_key_free(struct rtm_key *k)
{
    if (!k) return;
    free(k->secret);
    for (size_t i = 0; i < k->n_channels; i++) free(k->channels[i]);
    free(k->channels);
    for (size_t i = 0; i < k->n_origins; i++) free(k->origins[i]);
    free(k->origins);
    k->secret = NULL;
    k->channels = k->origins = NULL;
    k->n_channels = k->n_origins = 0;
}

int rtm_store_key_create(struct rtm_store *st, const struct rtm_key_spec *spec, struct rtm_key *out)
{
    struct store_key_new nk;
    int ret = store_key_new_init(&nk, spec);
    if (ret) return ret;
    ret = st->ops->key_insert(st, &nk);
    if (!ret && out) ret = st->ops->key_get(st, nk.id, out);
    store_key_new_clear(&nk);
    return ret;
}

int rtm_store_key_get(struct rtm_store *st, const char *id, struct rtm_key *out)
{
    if (!id) return RTM_EINVAL;
    return st->ops->key_get(st, id, out);
}

int rtm_store_key_by_secret(struct rtm_store *st, const char *secret, struct rtm_key *out)
{
    char hash[65];
    if (!secret) return RTM_EINVAL;
    int ret = store_secret_hash(secret, hash);
    if (ret || (ret = st->ops->key_by_hash(st, hash, out))) return ret;
    if (!out->secret || !rtm_streq_ct(out->secret, secret)) { /* a hash collision: never */
        rtm_key_free(out);
        return RTM_ENOTFOUND;
    }
    return 0;
}

int rtm_store_key_list(struct rtm_store *st, json_t **out) { return st->ops->key_list(st, out); }

int rtm_store_key_revoke(struct rtm_store *st, const char *id)
{
    if (!id) return RTM_EINVAL;
    return st->ops->key_revoke(st, id);
}

int rtm_store_key_public_list(struct rtm_store *st, json_t **out)
{
    return st->ops->key_public_list(st, out);
}

/* ---- revocations ---- */

int rtm_store_revoke_jti(struct rtm_store *st, const char *app, const char *jti, int64_t expires)
{
    /* A jti is any string the signer chose (RFC 7519); only its size is bounded. */
    if (!store_app_name_valid(app) || !jti || !*jti || strlen(jti) > STORE_MAX_JTI_LEN)
        return RTM_EINVAL;
    return st->ops->revoke_jti(st, app, jti, expires);
}

int rtm_store_revoke_peer(struct rtm_store *st, const char *app, const char *peer_id, int64_t before)
{
    if (!store_app_name_valid(app) || !peer_id || !rtm_peer_id_valid(peer_id)) return RTM_EINVAL;
    return st->ops->revoke_peer(st, app, peer_id, before);
}

int rtm_store_is_revoked(struct rtm_store *st, const char *app, const char *jti, const char *peer_id,
                         int64_t iat)
{
    if (!app) return RTM_EINVAL;
    return st->ops->is_revoked(st, app, jti, peer_id, iat);
}

int rtm_store_revocations_since(struct rtm_store *st, int64_t since_id, json_t **out, int64_t *last_id)
{
    return st->ops->revocations_since(st, since_id, out, last_id);
}

/* ---- sessions ---- */

int rtm_store_sessions_write(struct rtm_store *st, const struct rtm_session_row *rows, size_t n)
{
    if (n == 0) return 0;
    if (!rows) return RTM_EINVAL;
    for (size_t i = 0; i < n; i++) /* all or nothing: a bad row writes none */
        if (!rows[i].id[0]) return RTM_EINVAL;
    return st->ops->sessions_write(st, rows, n);
}

int rtm_store_sessions_close_dangling(struct rtm_store *st, const char *node_id, const char *reason)
{
    return st->ops->sessions_close_dangling(st, node_id ? node_id : "", reason ? reason : "");
}

int rtm_store_sessions_prune(struct rtm_store *st, int64_t connected_before_ms, int max_rows)
{
    if (max_rows <= 0) return 0;
    return st->ops->sessions_prune(st, connected_before_ms, max_rows);
}

int rtm_store_sessions_query(struct rtm_store *st, const char *app, const char *peer_id, int limit,
                             json_t **out)
{
    if (limit <= 0) limit = STORE_SESSIONS_QUERY_DEFAULT;
    if (limit > STORE_SESSIONS_QUERY_MAX) limit = STORE_SESSIONS_QUERY_MAX;
    return st->ops->sessions_query(st, app, peer_id, limit, out);
}

int rtm_store_changed(struct rtm_store *st) { return st->ops->changed(st); }

int rtm_store_config_version(struct rtm_store *st, int64_t *out) { return st->ops->config_version(st, out); }

int rtm_store_keys_load(struct rtm_store *st, struct rtm_key **out, size_t *n)
{
    return st->ops->keys_load(st, out, n);
}

void rtm_keys_free(struct rtm_key *keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++) rtm_key_free(&keys[i]);
    free(keys);
}

int rtm_store_apps_load(struct rtm_store *st, struct rtm_app **out, size_t *n)
{
    return st->ops->apps_load(st, out, n);
}

int rtm_store_outbox_post(struct rtm_store *st, const char *kind, const char *app, const char *target,
                          const char *data)
{
    if (!kind || (strcmp(kind, "kick") && strcmp(kind, "publish")) || !store_app_name_valid(app) || !target ||
        (!strcmp(kind, "publish") && !data))
        return RTM_EINVAL;
    return st->ops->outbox_post(st, kind, app, target, data);
}

int rtm_store_outbox_since(struct rtm_store *st, int64_t since_id, json_t **out, int64_t *last_id)
{
    return st->ops->outbox_since(st, since_id, out, last_id);
}

int rtm_store_outbox_last(struct rtm_store *st, int64_t *last_id) { return st->ops->outbox_last(st, last_id); }

int rtm_store_outbox_prune(struct rtm_store *st, int64_t before_ms, int keep_max)
{
    return st->ops->outbox_prune(st, before_ms, keep_max);
}

int rtm_store_presence_put(struct rtm_store *st, const char *node_id, const char *app, const char *peers,
                           int64_t now_ms)
{
    if (!node_id || !app || !peers) return RTM_EINVAL;
    return st->ops->presence_put(st, node_id, app, peers, now_ms);
}

int rtm_store_node_seen(struct rtm_store *st, const char *node_id, int64_t now_ms)
{
    if (!node_id) return RTM_EINVAL;
    return st->ops->node_seen(st, node_id, now_ms);
}

int rtm_store_node_clear(struct rtm_store *st, const char *node_id)
{
    return node_id ? st->ops->node_clear(st, node_id) : RTM_EINVAL;
}

int rtm_store_presence_query(struct rtm_store *st, const char *app, int64_t fresh_ms, json_t **out)
{
    if (!app) return RTM_EINVAL;
    return st->ops->presence_query(st, app, fresh_ms, out);
}
