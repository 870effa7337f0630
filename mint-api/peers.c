/* peers.c: the broker's live state seen from the backend: GET /v1/peers
 * [?channel=], DELETE /v1/peers/{peerId} (close with 4020), POST /v1/publish
 * {channel, data} (from "_server"). These call into the broker in the same
 * process; with --role mint there is none and they answer 503. Kicks and
 * publishes act in the calling key's app; the listing is filtered to it. */
#include "api.h"

#include "broker.h"
#include "errors.h"
#include "pattern.h"
#include "protocol.h"
#include "server.h"

#include <string.h>

static int need_broker(struct mint_req *rq)
{
    if (rq->srv->broker) return 0;
    mint_reply_error(rq, RTM_WIRE_BROKER_UNAVAILABLE, "this rtmd runs without the broker (--role mint)");
    return -1;
}

void mint_peers_get(struct mint_req *rq)
{
    if (need_broker(rq)) return;
    if (rq->q_channel && !rtm_channel_valid(rq->q_channel)) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "channel must be 1 to 256 bytes without control characters");
        return;
    }
    /* The broker spans every app; a key sees its own app's peers only. */
    json_t *peers = brk_peers_app(rq->srv->broker, rq->key->app, rq->q_channel);
    if (!peers) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the broker did not answer");
        return;
    }
    mint_reply_json(rq, 200, json_pack("{s:o}", "peers", peers));
}

void mint_peer_delete(struct mint_req *rq)
{
    if (need_broker(rq)) return;
    /* DELETE /v1/peers/{peerId} or DELETE /v1/peers?peerId= (exact for ids
     * lws would normalize in a path: see mint-api/http.c route_find). */
    const char *id = rq->path_arg ? rq->path_arg : rq->q_peer_id;
    if (!id || !rtm_peer_id_valid(id)) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "peerId must be 1 to 128 printable ASCII characters");
        return;
    }
    if (rtm_peer_id_reserved(id)) {
        mint_reply_error(rq, RTM_WIRE_PEER_ID_RESERVED, NULL);
        return;
    }
    int n = brk_kick(rq->srv->broker, rq->key->app, id);
    if (n < 0) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the broker could not close the sessions");
        return;
    }
    mint_reply_json(rq, 200, json_pack("{s:s, s:i}", "peerId", id, "closed", n));
}

static const struct mint_field publish_fields[] = {
    {"channel", JSON_STRING, 1},
    {"data", -1, 1}, /* any JSON value, null included (required fields keep their null) */
};

void mint_publish_post(struct mint_req *rq)
{
    if (need_broker(rq)) return;
    json_t *b = mint_body_object(rq);
    if (!b) return;
    if (mint_check_fields(rq, b, publish_fields, sizeof publish_fields / sizeof publish_fields[0]) != 0)
        goto done;
    const char *ch = json_string_value(json_object_get(b, "channel"));
    if (!rtm_channel_valid(ch)) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "channel must be 1 to 256 bytes without control characters");
        goto done;
    }
    if (rtm_channel_reserved(ch)) {
        mint_reply_error(rq, RTM_WIRE_CHANNEL_RESERVED, NULL);
        goto done;
    }
    if (!rtm_pattern_match_any(rq->key->channels, rq->key->n_channels, ch)) {
        mint_reply_error(rq, RTM_WIRE_CHANNEL_NOT_AUTHORIZED, "the channel lies outside the key's channels");
        goto done;
    }
    if (!(rq->key->actions & RTM_PERM_PUBLISH)) {
        mint_reply_error(rq, RTM_WIRE_ACTION_NOT_PERMITTED, "the key does not allow publish");
        goto done;
    }
    int n = brk_server_publish(rq->srv->broker, rq->key->app, ch, json_object_get(b, "data"));
    if (n == RTM_EUNAVAILABLE) {
        mint_reply_error(rq, RTM_WIRE_CLUSTER_UNAVAILABLE, "cluster mode: Redis cannot take the message now");
        goto done;
    }
    if (n < 0) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the broker could not publish");
        goto done;
    }
    mint_reply_json(rq, 200, json_pack("{s:s, s:i}", "channel", ch, "recipients", n));
done:
    json_decref(b);
}
