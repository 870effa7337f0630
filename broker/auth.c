/* auth.c: the connect path's authentication: where the credential is found
 * (query, Authorization header, subprotocol), the key it names, the token's
 * signature and claims, revocation, the key's Origin list, and the claims a
 * publishable key stands for.
 *
 * The design choice: the broker is the verifier, not the mint. A secret-key
 * token is verified against the key its kid names; a publishable key (pk_)
 * has no token, so the broker makes the claims from the key itself (a random
 * peerId, the key's scope). Loop thread only: it borrows b->scratch. */
#include "internal.h"

#include "errors.h"
#include "protocol.h"
#include "server.h"
#include "turn.h"
#include "util.h"
#include "view.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Finds the credential: ?token=, ?key=, Authorization: Bearer, else
 * "token.<jwt>" in the subprotocol list.
 * Returns a pointer into b->scratch, or NULL. */
const char *auth_find_credential(struct brk_broker *b, struct lws *wsi, int *publishable)
{
    *publishable = 0;
    const char *v = lws_get_urlarg_by_name(wsi, "token=", b->scratch, BRK_SCRATCH - 1);
    if (v && *v) return v;
    v = lws_get_urlarg_by_name(wsi, "key=", b->scratch, BRK_SCRATCH - 1);
    if (v && *v) {
        *publishable = 1;
        return v;
    }
    /* Authorization: Bearer <jwt>: for clients (lws's own) that can send
     * neither a long request line nor a long subprotocol list. */
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && n < BRK_SCRATCH && lws_hdr_copy(wsi, b->scratch, BRK_SCRATCH, WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
        strncasecmp(b->scratch, "Bearer ", 7) == 0) {
        char *t = b->scratch + 7;
        while (*t == ' ') t++;
        if (*t) return t;
    }
    n = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
    if (n <= 0 || n >= BRK_SCRATCH) return NULL;
    if (lws_hdr_copy(wsi, b->scratch, BRK_SCRATCH, WSI_TOKEN_PROTOCOL) < 0) return NULL;
    for (char *p = b->scratch; p && *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        char *end = strchr(p, ',');
        if (end) *end = '\0';
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) p[--len] = '\0';
        if (strncmp(p, "token.", 6) == 0 && p[6]) return p + 6;
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* An Origin allowlist is a browser control: a browser always sends Origin,
 * so a secret-key token presented without one (a backend, a bot, a Node or
 * C client) is served; an Origin that is present must be listed. A
 * publishable key exists for browsers and always needs a listed Origin
 * when its key has a list. */
int auth_origin_allowed(const struct rtm_key *key, const char *origin)
{
    if (key->n_origins == 0) return 1;
    if (!origin) return !key->publishable;
    for (size_t i = 0; i < key->n_origins; i++)
        if (strcmp(key->origins[i], origin) == 0) return 1;
    return 0;
}

/* A publishable key: the broker is the mint. peerId is random, scope and
 * TURN credentials come from the key and the config. */
static int claims_from_pk(struct brk_broker *b, const struct rtm_key *key, struct rtm_claims *c,
                          const char **reason)
{
    const struct rtm_config *cfg = b->cfg;
    char uuid[37];
    memset(c, 0, sizeof *c);
    /* A UUID is hex and dashes: it never begins with the reserved '_'. */
    if (rtm_uuid4(uuid) || rtm_peer_id_reserved(uuid)) goto fail;
    c->sub = strdup(uuid);
    c->jti = strdup("");
    c->iat = rtm_now_s();
    c->exp = 0;
    c->perms = key->actions;
    c->channels = calloc(key->n_channels ? key->n_channels : 1, sizeof *c->channels);
    if (!c->sub || !c->jti || !c->channels) goto fail;
    for (size_t i = 0; i < key->n_channels; i++) {
        if (!(c->channels[i] = strdup(key->channels[i]))) goto fail;
        c->n_channels++;
    }
    c->metadata = json_object();
    if (!c->metadata) goto fail;
    if (cfg->n_turn_secrets && cfg->n_turn_urls) {
        int ttl = cfg->turn_ttl > 0 ? cfg->turn_ttl : cfg->token_default_ttl + 3600;
        json_t *ice = rtm_turn_ice_servers(cfg->turn_secrets[0], (const char *const *)cfg->turn_urls,
                                           cfg->n_turn_urls, uuid, rtm_now_s() + ttl);
        if (!ice) goto fail;
        json_object_set_new(c->metadata, "iceServers", ice);
    }
    return 0;
fail:
    rtm_claims_free(c);
    *reason = rtm_wire(RTM_WIRE_INTERNAL_ERROR)->message;
    return RTM_ENOMEM;
}

int auth_connect(struct brk_broker *b, const char *cred, int publishable, const struct rtm_key **keyp,
                 struct rtm_claims *c, enum rtm_wire_err *code, const char **reason)
{
    struct rtm_jws w = {0};
    const char *kid = cred; /* a publishable key's credential is its id */
    int rc;
    *code = RTM_WIRE_INVALID_TOKEN;
    *keyp = NULL;
    memset(c, 0, sizeof *c);
    /* Tokens of 16 KB and a margin fit the request head (48 KB); a larger
     * one is refused here with its reason, whatever else is wrong with it. */
    if (strlen(cred) > RTM_MAX_TOKEN_BYTES) {
        *reason = "token too large";
        return RTM_EINVAL;
    }
    /* A token is opened once: its kid names the key, and the same opened
     * token is verified against it. */
    /* No key id is that long: refused at once, not after a wait for the view. */
    if (publishable && strlen(cred) >= sizeof ((struct rtm_key *)0)->id) {
        *reason = "unknown key";
        return RTM_EINVAL;
    }
    if (!publishable) {
        if (rtm_token_open(cred, &w)) {
            *reason = "malformed token";
            return RTM_EINVAL;
        }
        if (!rtm_token_kid_ok(&w)) {
            *reason = "missing kid";
            rc = RTM_EINVAL;
            goto done;
        }
        kid = w.kid;
    }
    const struct rtm_key *key = rtm_view_key(b->srv->view, kid);
    rc = RTM_ENOTFOUND;
    *reason = "unknown key";
    if (!key) goto done;
    rc = RTM_EDENIED;
    if (key->revoked) {
        *reason = "key revoked";
        goto done;
    }
    /* A pk_ id in a token's kid, or a secret key id given as ?key=. */
    if (publishable != key->publishable) goto done;
    if (publishable) {
        rc = claims_from_pk(b, key, c, reason);
    } else {
        struct rtm_token_policy pol = {.now = rtm_now_s(),
                                       .clock_leeway_s = b->cfg->clock_leeway_seconds,
                                       .max_lifetime_s = b->cfg->max_token_lifetime};
        rc = rtm_token_verify_opened(&w, key, &pol, c, reason);
    }
    if (rc) goto done;
    if (!publishable && (rc = rtm_view_is_revoked(b->srv->view, key->app, c->jti, c->sub, c->iat)) != 0) {
        /* Below zero: the revocation table is over its bound, so one may be missing. */
        if (rc < 0) *code = RTM_WIRE_INTERNAL_ERROR;
        *reason = rc > 0 ? "token revoked" : "revocations unavailable";
        rtm_claims_free(c);
        rc = rc > 0 ? RTM_EDENIED : rc;
        goto done;
    }
    *keyp = key;
done:
    rtm_token_close(&w);
    return rc;
}

int auth_verify_token(struct brk_broker *b, const char *token, const struct rtm_key **key, struct rtm_claims *c,
                      const char **reason)
{
    enum rtm_wire_err code;
    return auth_connect(b, token, 0, key, c, &code, reason);
}

uint64_t auth_kid_hash(const char *kid)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: ids are ours or the operator's, not an attacker's */
    for (const unsigned char *p = (const unsigned char *)kid; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return h;
}

