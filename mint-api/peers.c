/* peers.c: the brokers' live state seen from the backend: GET /v1/peers
 * [?channel=], DELETE /v1/peers/{peerId} (close with 4020), POST /v1/publish
 * {channel, data} (from "_server"). They go through the bus (common/bus.h):
 * with the broker in this process the answer is exact (sessions closed,
 * recipients); in cluster mode it is every node's, gathered within
 * cluster-timeout-ms, so the reply comes later (mint_reply_later) and says
 * `partial: true` when a node did not answer in time; with --role mint the
 * kick or publish is queued for the brokers (202, applied within about a
 * poll) and the listing comes from their presence snapshots. Kicks and
 * publishes act in the calling key's app; the listing is filtered to it. */
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

/* `partial: true` only when some broker did not answer: a whole answer keeps
 * the reply's fields exactly as without cluster mode. */
static json_t *mark_partial(json_t *reply, int partial)
{
    if (reply && partial) json_object_set_new(reply, "partial", json_true());
    return reply;
}

/* The reply to a kick (ctx: the peerId) or a publish (ctx: the channel). */
static void reply_counted(struct mint_req *rq, const struct rtm_bus_result *r, const char *field, const char *name,
                          const char *count)
{
    if (r->rc == RTM_BUS_QUEUED) mint_reply_json(rq, 202, json_pack("{s:s, s:b}", field, name, "queued", 1));
    else if (r->rc < 0) reply_unreachable(rq, r->rc);
    else mint_reply_json(rq, 200, mark_partial(json_pack("{s:s, s:i}", field, name, count, r->rc), r->partial));
}

static void reply_kick(struct mint_req *rq, const struct rtm_bus_result *r, void *ctx)
{
    reply_counted(rq, r, "peerId", ctx, "closed");
}

static void reply_publish(struct mint_req *rq, const struct rtm_bus_result *r, void *ctx)
{
    reply_counted(rq, r, "channel", ctx, "recipients");
}

static void reply_peers(struct mint_req *rq, const struct rtm_bus_result *r, void *ctx)
{
    (void)ctx;
    if (r->rc < 0 || !r->peers) mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the brokers did not answer");
    else mint_reply_json(rq, 200, mark_partial(json_pack("{s:O}", "peers", r->peers), r->partial));
}

/* Asks every broker; ctx is the reply's name (the peerId or channel). */
static void ask(struct mint_req *rq, enum rtm_bus_op op, const char *target, const char *data)
{
    static mint_bus_reply_fn *const reply[] = {
        [RTM_BUS_KICK] = reply_kick, [RTM_BUS_PUBLISH] = reply_publish, [RTM_BUS_PEERS] = reply_peers};
    const char *name = target ? target : "";
    struct mint_bus_call *c = mint_bus_call_new(rq, reply[op], name, strlen(name) + 1);
    if (!c) return;
    rtm_bus_ask(rq->srv->bus, op, rq->key->app, target, data, mint_bus_call_done, c);
    mint_bus_call_started(c);
}

void mint_peers_get(struct mint_req *rq)
{
    if (rq->q_channel && !rtm_channel_valid(rq->q_channel)) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "channel must be 1 to 256 bytes without control characters");
        return;
    }
    /* The brokers span every app; a key sees its own app's peers only. */
    ask(rq, RTM_BUS_PEERS, rq->q_channel, NULL);
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
    ask(rq, RTM_BUS_KICK, id, NULL);
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
    if (data) ask(rq, RTM_BUS_PUBLISH, ch, data);
    else mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
    free(data);
done:
    json_decref(b);
}
