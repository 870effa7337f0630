/* peers.c: the brokers' live state seen from the backend: GET /v1/peers
 * [?channel=], DELETE /v1/peers/{peerId} (close with 4020), POST /v1/publish
 * {channel, data} (from "_server"). They go through the bus (common/bus.h):
 * with the broker in this process the answer is exact (sessions closed,
 * recipients); with --role mint the kick or publish is queued for the
 * brokers (202, applied within about a poll) and the listing comes from
 * their presence snapshots. Kicks and publishes act in the calling key's
 * app; the listing is filtered to it. */
#include "api.h"

#include "bus.h"
#include "errors.h"
#include "json_dump.h"
#include "pattern.h"
#include "protocol.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* The brokers could not take it: the store's outbox is full, or Redis is down. */
static void reply_unreachable(struct mint_req *rq, int rc)
{
    if (rc == RTM_ELIMIT) mint_reply_error(rq, RTM_WIRE_STORE_BUSY, NULL);
    else if (rc == RTM_EUNAVAILABLE)
        mint_reply_error(rq, RTM_WIRE_CLUSTER_UNAVAILABLE, "cluster mode: Redis cannot take the message now");
    else mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the brokers could not be reached");
}

void mint_peers_get(struct mint_req *rq)
{
    if (rq->q_channel && !rtm_channel_valid(rq->q_channel)) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "channel must be 1 to 256 bytes without control characters");
        return;
    }
    /* The brokers span every app; a key sees its own app's peers only. */
    json_t *peers = rtm_bus_peers(rq->srv->bus, rq->key->app, rq->q_channel);
    if (!peers) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the brokers did not answer");
        return;
    }
    mint_reply_json(rq, 200, json_pack("{s:o}", "peers", peers));
}

void mint_peer_delete(struct mint_req *rq)
{
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
    int n = rtm_bus_kick(rq->srv->bus, rq->key->app, id);
    if (n == RTM_BUS_QUEUED) {
        mint_reply_json(rq, 202, json_pack("{s:s, s:b}", "peerId", id, "queued", 1));
        return;
    }
    if (n < 0) {
        reply_unreachable(rq, n);
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
    char *data = rtm_json_dumps(json_object_get(b, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
    int n = data ? rtm_bus_publish(rq->srv->bus, rq->key->app, ch, data) : RTM_ENOMEM;
    free(data);
    if (n == RTM_BUS_QUEUED) {
        mint_reply_json(rq, 202, json_pack("{s:s, s:b}", "channel", ch, "queued", 1));
        goto done;
    }
    if (n < 0) {
        reply_unreachable(rq, n);
        goto done;
    }
    mint_reply_json(rq, 200, json_pack("{s:s, s:i}", "channel", ch, "recipients", n));
done:
    json_decref(b);
}
