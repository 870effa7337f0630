/* mint.c: tokens for backend code: signed locally with a secret key, or
 * minted through the mint API over HTTP.
 *
 * Design: local signing goes through the same rtm_mint() as the mint API
 * (common/mint.h) with a key whose scope is unrestricted, so the claims are
 * identical by construction; the broker still checks the token against the
 * key's real scope when it verifies it. */
#include "rtm_internal.h"
#include "mint.h"
#include "protocol.h"
#include "store.h"
#include "util.h"
#include "json_dump.h"

#include <stdlib.h>
#include <string.h>

static rtm_status load_obj(const char *text, json_t **out)
{
    *out = NULL;
    if (!text) return RTM_STATUS_OK;
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!json_is_object(j)) {
        json_decref(j);
        return RTM_ERR_INVALID_ARG;
    }
    *out = j;
    return RTM_STATUS_OK;
}

rtm_status rtm_sign_token(const char *key_id, const char *key_secret, const struct rtm_token_params *p,
                          const char *turn_secret, const char *const *turn_urls, size_t n_turn_urls,
                          char **token, int64_t *expires_at)
{
    if (!key_id || !key_secret || !*key_secret || !p || !p->peer_id || !token) return RTM_ERR_INVALID_ARG;
    if (strlen(key_id) >= sizeof(((struct rtm_key *)0)->id)) return RTM_ERR_INVALID_ARG;
    *token = NULL;
    json_t *meta = NULL, *pmeta = NULL;
    rtm_status st;
    if ((st = load_obj(p->metadata_json, &meta)) || (st = load_obj(p->peer_metadata_json, &pmeta))) goto out;

    char *all[] = {"**"};
    struct rtm_key key;
    memset(&key, 0, sizeof key);
    snprintf(key.id, sizeof key.id, "%s", key_id);
    snprintf(key.alg, sizeof key.alg, "HS256");
    key.secret = (char *)key_secret;
    key.channels = all;
    key.n_channels = 1;
    key.actions = RTM_PERM_ALL;

    struct rtm_mint_request rq;
    memset(&rq, 0, sizeof rq);
    rq.peer_id = p->peer_id;
    rq.channels = p->channels;
    rq.n_channels = p->n_channels;
    if (p->permissions) {
        rq.perms_set = 1;
        for (size_t i = 0; i < p->n_permissions; i++) {
            unsigned bit = rtm_perm_parse(p->permissions[i]);
            if (!bit) {
                st = RTM_ERR_INVALID_ARG;
                goto out;
            }
            rq.perms |= bit;
        }
    }
    rq.expires_in = p->expires_in_sec;
    rq.metadata = meta;
    rq.peer_metadata = pmeta;

    struct rtm_mint_policy pol;
    memset(&pol, 0, sizeof pol);
    pol.default_ttl = 3600;
    pol.max_ttl = 86400;
    pol.turn_secret = turn_secret;
    pol.turn_urls = turn_urls;
    pol.n_turn_urls = n_turn_urls;

    const char *code = NULL, *msg = NULL;
    int64_t exp = 0;
    int rc = rtm_mint(&pol, &key, &rq, rtm_now_s(), token, &exp, &code, &msg);
    if (rc) {
        st = code && rtm_wire_by_code(code) == RTM_WIRE_INTERNAL_ERROR ? RTM_ERR_CRYPTO : RTM_ERR_INVALID_ARG;
        goto out;
    }
    if (expires_at) *expires_at = exp;
    st = RTM_STATUS_OK;
out:
    json_decref(meta);
    json_decref(pmeta);
    return st;
}

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

rtm_status rtm_fetch_token(const char *mint_url, const char *key_secret, const struct rtm_token_params *p,
                           int timeout_ms, char **token, int64_t *expires_at, int *http_status)
{
    if (!mint_url || !key_secret || !p || !p->peer_id || !token) return RTM_ERR_INVALID_ARG;
    *token = NULL;
    if (http_status) *http_status = 0;
    json_t *meta = NULL, *pmeta = NULL, *body = json_object(), *r = NULL;
    char *text = NULL, *resp = NULL, *url = NULL;
    rtm_status st;
    if (!body) return RTM_ERR_NOMEM;
    if ((st = load_obj(p->metadata_json, &meta)) || (st = load_obj(p->peer_metadata_json, &pmeta))) goto out;
    json_object_set_new(body, "peerId", json_string(p->peer_id));
    if (p->channels) json_object_set_new(body, "channels", str_array(p->channels, p->n_channels));
    if (p->permissions) json_object_set_new(body, "permissions", str_array(p->permissions, p->n_permissions));
    if (p->expires_in_sec) json_object_set_new(body, "expiresInSec", json_integer(p->expires_in_sec));
    if (meta) json_object_set(body, "metadata", meta);
    if (pmeta) json_object_set(body, "peerMetadata", pmeta);
    st = RTM_ERR_NOMEM;
    if (!(text = rtm_json_dumps(body, JSON_COMPACT))) goto out;
    size_t n = strlen(mint_url) + 16;
    if (!(url = malloc(n))) goto out;
    /* tolerate a trailing slash on the base URL */
    snprintf(url, n, "%s%s", mint_url, mint_url[strlen(mint_url) - 1] == '/' ? "v1/tokens" : "/v1/tokens");
    int status = 0;
    st = rtm_http_request("POST", url, key_secret, text, timeout_ms, &status, &resp);
    if (st) goto out;
    if (http_status) *http_status = status;
    if (status != 200) {
        st = RTM_ERR_HTTP;
        goto out;
    }
    json_error_t e;
    r = json_loads(resp, 0, &e);
    const char *tok = json_string_value(json_object_get(r, "token"));
    if (!tok) {
        st = RTM_ERR_PROTOCOL;
        goto out;
    }
    if (!(*token = strdup(tok))) {
        st = RTM_ERR_NOMEM;
        goto out;
    }
    if (expires_at) *expires_at = json_integer_value(json_object_get(r, "expiresAt"));
    st = RTM_STATUS_OK;
out:
    if (resp) memset(resp, 0, strlen(resp));
    free(resp);
    free(text);
    free(url);
    json_decref(r);
    json_decref(body);
    json_decref(meta);
    json_decref(pmeta);
    return st;
}
