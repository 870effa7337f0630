/* store.c: the backend-neutral front of store.h.
 *
 * Main design choice: the backend is chosen once, at open, from the --db
 * value, and every later call is one indirect call through that backend's ops
 * table (store_backend.h); nothing here knows SQL. Only the sqlite backend
 * exists in this build step; a postgres:// URL is refused with a clear reason
 * rather than being taken for a file name. */
#include "store.h"
#include "store_backend.h"

#include "errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_postgres_url(const char *where)
{
    return !strncmp(where, "postgres://", 11) || !strncmp(where, "postgresql://", 13);
}

int rtm_store_open(const char *where, struct rtm_store **out, char *err, size_t errlen)
{
    if (where && is_postgres_url(where)) {
        if (err && errlen) snprintf(err, errlen, "store: this rtm was built without the Postgres store");
        *out = NULL;
        return RTM_EINVAL;
    }
    return rtm_store_sqlite_ops.open(where, out, err, errlen);
}

void rtm_store_close(struct rtm_store *st)
{
    if (st) st->ops->close(st);
}

int rtm_store_version(struct rtm_store *st) { return st->ops->version(st); }

int rtm_store_app_ensure(struct rtm_store *st, const char *name, struct rtm_app *out)
{
    return st->ops->app_ensure(st, name, out);
}

int rtm_store_app_get(struct rtm_store *st, const char *name, struct rtm_app *out)
{
    return st->ops->app_get(st, name, out);
}

int rtm_store_app_set(struct rtm_store *st, const char *name, const char *key, const char *value)
{
    return st->ops->app_set(st, name, key, value);
}

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
    return st->ops->key_create(st, spec, out);
}

int rtm_store_key_get(struct rtm_store *st, const char *id, struct rtm_key *out)
{
    return st->ops->key_get(st, id, out);
}

int rtm_store_key_by_secret(struct rtm_store *st, const char *secret, struct rtm_key *out)
{
    return st->ops->key_by_secret(st, secret, out);
}

int rtm_store_key_list(struct rtm_store *st, json_t **out) { return st->ops->key_list(st, out); }

int rtm_store_key_revoke(struct rtm_store *st, const char *id) { return st->ops->key_revoke(st, id); }

int rtm_store_key_public_list(struct rtm_store *st, json_t **out)
{
    return st->ops->key_public_list(st, out);
}

int rtm_store_revoke_jti(struct rtm_store *st, const char *app, const char *jti, int64_t expires)
{
    return st->ops->revoke_jti(st, app, jti, expires);
}

int rtm_store_revoke_peer(struct rtm_store *st, const char *app, const char *peer_id, int64_t before)
{
    return st->ops->revoke_peer(st, app, peer_id, before);
}

int rtm_store_is_revoked(struct rtm_store *st, const char *app, const char *jti, const char *peer_id,
                         int64_t iat)
{
    return st->ops->is_revoked(st, app, jti, peer_id, iat);
}

int rtm_store_revocations_since(struct rtm_store *st, int64_t since_id, json_t **out, int64_t *last_id)
{
    return st->ops->revocations_since(st, since_id, out, last_id);
}

int rtm_store_sessions_write(struct rtm_store *st, const struct rtm_session_row *rows, size_t n)
{
    return st->ops->sessions_write(st, rows, n);
}

int rtm_store_sessions_close_dangling(struct rtm_store *st, const char *reason)
{
    return st->ops->sessions_close_dangling(st, reason);
}

int rtm_store_sessions_query(struct rtm_store *st, const char *app, const char *peer_id, int limit,
                             json_t **out)
{
    return st->ops->sessions_query(st, app, peer_id, limit, out);
}
