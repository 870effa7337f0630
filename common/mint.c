/* mint.c: issuing one token for one peer with a secret key.
 *
 * Everything a caller asks for is checked against the key's scope before any
 * crypto runs: channels must lie inside the key's patterns, permissions inside
 * its actions, sizes inside the protocol's bounds. The caller's metadata is
 * never modified: when iceServers are added, a shallow copy gets them. The
 * one size that matters to the broker is the claim as signed, so the 8 KB
 * metadata bound is checked after iceServers were added. */
#include "mint.h"

#include "errors.h"
#include "pattern.h"
#include "protocol.h"
#include "store.h"
#include "token.h"
#include "turn.h"
#include "util.h"

#include <string.h>

#define FAIL(code, msg)                                                                            \
    do {                                                                                           \
        *err_code = (code);                                                                        \
        *err_msg = (msg);                                                                          \
        if (rc == 0) rc = RTM_EINVAL;                                                              \
        goto fail;                                                                                 \
    } while (0)

/* Serialized size (compact) of a JSON value; json_dumpb with no buffer only counts. */
static size_t json_size(const json_t *v) { return json_dumpb(v, NULL, 0, JSON_COMPACT); }

static int channels_inside_key(const struct rtm_key *key, const char *ch)
{
    for (size_t i = 0; i < key->n_channels; i++)
        if (rtm_pattern_within(ch, key->channels[i])) return 1;
    return 0;
}

int rtm_mint(const struct rtm_mint_policy *pol, const struct rtm_key *key,
             const struct rtm_mint_request *rq, int64_t now, char **token, int64_t *expires_at,
             const char **err_code, const char **err_msg)
{
    int rc = 0;
    json_t *meta = NULL;
    struct rtm_claims c;
    char jti[40];

    memset(&c, 0, sizeof c);
    *token = NULL;
    if (!key || key->publishable || !key->secret || strcmp(key->alg, "HS256") != 0) {
        *err_code = "internal_error";
        *err_msg = "this key cannot sign tokens";
        return RTM_EINVAL;
    }
    if (!rq->peer_id || !rtm_peer_id_valid(rq->peer_id))
        FAIL("invalid_request", "peerId must be 1 to 128 printable ASCII characters");

    if (rq->channels) {
        if (rq->n_channels > RTM_MAX_CHANNELS_PER_TOKEN)
            FAIL("invalid_request", "at most 100 channels");
        for (size_t i = 0; i < rq->n_channels; i++) {
            const char *ch = rq->channels[i];
            if (!ch || !rtm_channel_valid(ch))
                FAIL("invalid_request", "each channel must be 1 to 256 bytes without control characters");
        }
        for (size_t i = 0; i < rq->n_channels; i++)
            if (!channels_inside_key(key, rq->channels[i]))
                FAIL("channel_not_authorized", "a requested channel lies outside the key's channels");
        c.channels = (char **)rq->channels;
        c.n_channels = rq->n_channels;
    } else {
        c.channels = key->channels;
        c.n_channels = key->n_channels;
    }

    if (rq->perms_set) {
        if (rq->perms & ~(unsigned)RTM_PERM_ALL) FAIL("invalid_request", "unknown permission");
        if (rq->perms & ~key->actions)
            FAIL("action_not_permitted", "a requested permission lies outside the key's actions");
        c.perms = rq->perms;
    } else {
        c.perms = key->actions;
    }

    int64_t ttl = rq->expires_in ? rq->expires_in : pol->default_ttl;
    if (ttl < 1 || ttl > pol->max_ttl)
        FAIL("invalid_request", "expiresInSec must be between 1 and the maximum token lifetime");

    if (rq->metadata && !json_is_object(rq->metadata))
        FAIL("invalid_request", "metadata must be an object");
    if (rq->peer_metadata) {
        if (!json_is_object(rq->peer_metadata))
            FAIL("invalid_request", "peerMetadata must be an object");
        if (json_size(rq->peer_metadata) > RTM_MAX_PEER_METADATA)
            FAIL("invalid_request", "peerMetadata is over 4 KB");
    }

    if (pol->turn_secret && !(rq->metadata && json_object_get(rq->metadata, "iceServers"))) {
        int64_t turn_ttl = pol->turn_ttl > 0 ? pol->turn_ttl : ttl + 3600;
        json_t *ice = rtm_turn_ice_servers(pol->turn_secret, pol->turn_urls, pol->n_turn_urls,
                                           rq->peer_id, now + turn_ttl);
        meta = rq->metadata ? json_copy(rq->metadata) : json_object();
        if (!ice || !meta || json_object_set_new(meta, "iceServers", ice) != 0) {
            if (!meta) json_decref(ice);
            FAIL("internal_error", "could not mint a TURN credential");
        }
    } else {
        meta = rq->metadata ? json_incref(rq->metadata) : json_object();
        if (!meta) FAIL("internal_error", "out of memory");
    }
    /* Only caller-supplied metadata can be large; skip the count otherwise. */
    if (rq->metadata && json_size(meta) > RTM_MAX_METADATA)
        FAIL("invalid_request", "metadata is over 8 KB");

    if (rtm_random_id("", 16, jti, sizeof jti) != 0)
        FAIL("internal_error", "no randomness for the token id");

    c.sub = (char *)rq->peer_id;
    c.iat = now;
    c.exp = now + ttl;
    c.jti = jti;
    c.kid = (char *)key->id;
    c.metadata = meta;
    c.peer_metadata = rq->peer_metadata;
    rc = rtm_token_sign(&c, "HS256", (const unsigned char *)key->secret, strlen(key->secret), token);
    if (rc != 0) FAIL("internal_error", "could not sign the token");
    *expires_at = c.exp;
    json_decref(meta);
    return 0;

fail:
    json_decref(meta);
    return rc;
}
