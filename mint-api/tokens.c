/* tokens.c: POST /v1/tokens: the body is checked for shape here; every rule
 * about the key's scope, bounds and iceServers lives in common/mint.c, shared
 * with the demo endpoint and sdk-c, so the API adds nothing of its own.
 * The reply is formatted by hand: a JWT needs no JSON escaping and this is
 * the hot path of the benchmark. */
#include "api.h"

#include "metrics.h"
#include "protocol.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mint_field fields[] = {
    {"peerId", JSON_STRING, 1},   {"channels", JSON_ARRAY, 0},    {"permissions", JSON_ARRAY, 0},
    {"expiresInSec", JSON_INTEGER, 0}, {"metadata", JSON_OBJECT, 0}, {"peerMetadata", JSON_OBJECT, 0},
    {"bind", JSON_OBJECT, 0},
};

/* bind: {"ip": "...", "userAgent": "..."}, at least one, nothing else. -1 after a reply. */
static int bind_arg(struct mint_req *rq, json_t *b, struct rtm_mint_request *mr)
{
    json_t *bind = json_object_get(b, "bind");
    if (!bind) return 0;
    const char *k;
    json_t *v;
    json_object_foreach(bind, k, v) {
        const char **slot = !strcmp(k, "ip") ? &mr->bind_ip : !strcmp(k, "userAgent") ? &mr->bind_ua : NULL;
        if (!slot || !json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "bind takes ip and userAgent, strings");
            return -1;
        }
        *slot = json_string_value(v);
    }
    if (!mr->bind_ip && !mr->bind_ua) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "bind needs ip or userAgent");
        return -1;
    }
    return 0;
}

void mint_tokens_post(struct mint_req *rq)
{
    const char *chans[RTM_MAX_CHANNELS_PER_TOKEN];
    struct rtm_mint_request mr = {0};
    json_t *b = mint_body_object(rq);
    if (!b) return;
    if (mint_check_fields(rq, b, fields, sizeof fields / sizeof fields[0]) != 0) goto done;

    mr.peer_id = json_string_value(json_object_get(b, "peerId"));

    json_t *ch = json_object_get(b, "channels");
    if (ch) {
        size_t n = json_array_size(ch);
        if (n > RTM_MAX_CHANNELS_PER_TOKEN) {
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "at most 100 channels");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            chans[i] = json_string_value(json_array_get(ch, i));
            if (!chans[i]) {
                mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "channels must be strings");
                goto done;
            }
        }
        mr.channels = chans;
        mr.n_channels = n;
    }

    json_t *perms = json_object_get(b, "permissions");
    if (perms) {
        mr.perms_set = 1;
        for (size_t i = 0; i < json_array_size(perms); i++) {
            const char *name = json_string_value(json_array_get(perms, i));
            unsigned bit = name ? rtm_perm_parse(name) : 0;
            if (!bit) {
                mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST,
                                 "permissions are some of publish, subscribe, presence, send");
                goto done;
            }
            mr.perms |= bit;
        }
    }

    json_t *exp = json_object_get(b, "expiresInSec");
    if (exp) {
        json_int_t v = json_integer_value(exp);
        if (v < 1 || v > rq->api->pol.max_ttl) {
            char msg[96];
            snprintf(msg, sizeof msg, "expiresInSec must be between 1 and %d", rq->api->pol.max_ttl);
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, msg);
            goto done;
        }
        mr.expires_in = v;
    }
    mr.metadata = json_object_get(b, "metadata");
    mr.peer_metadata = json_object_get(b, "peerMetadata");
    if (bind_arg(rq, b, &mr)) goto done;

    char *token = NULL;
    int64_t expires_at = 0;
    const char *code = NULL, *msg = NULL;
    if (rtm_mint(&rq->api->pol, rq->key, &mr, rq->now, &token, &expires_at, &code, &msg) != 0) {
        int e = rtm_wire_by_code(code);
        mint_reply_error(rq, e >= 0 ? (enum rtm_wire_err)e : RTM_WIRE_INTERNAL_ERROR, msg);
        goto done;
    }
    size_t tlen = strlen(token);
    size_t cap = tlen + 64;
    char *out = malloc(cap);
    if (!out) {
        free(token);
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
        goto done;
    }
    int n = snprintf(out, cap, "{\"token\":\"%s\",\"expiresAt\":%lld}", token, (long long)expires_at);
    free(token);
    rtm_metric_inc(RTM_M_TOKENS_MINTED, 1);
    mint_reply_raw(rq, 200, out, (size_t)n, "application/json");
done:
    json_decref(b);
}
