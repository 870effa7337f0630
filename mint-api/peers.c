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

#include <stdio.h>
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

/* A request to every broker, answered when the bus has their result: at
 * once (one process, or the store), or later (cluster mode). */
struct asked {
    struct mint_req *now;     /* the handler's request while rtm_bus_ask runs */
    int answered_now;
    struct mint_later *later; /* afterwards; NULL if that could not be allocated (then replied 500) */
    enum rtm_bus_op op;
    char target[RTM_MAX_CHANNEL + 1]; /* the peerId or the channel, for the reply */
};

/* `partial: true` only when some broker did not answer: a whole answer keeps
 * the reply's fields exactly as without cluster mode. */
static json_t *mark_partial(json_t *reply, int partial)
{
    if (reply && partial) json_object_set_new(reply, "partial", json_true());
    return reply;
}

static void on_result(void *arg, const struct rtm_bus_result *r)
{
    struct asked *a = arg;
    struct mint_req *rq = a->now ? a->now : a->later ? mint_later_req(a->later) : NULL;
    if (!rq) { /* answered 500 already */
        free(a);
        return;
    }
    if (a->op == RTM_BUS_PEERS) {
        if (r->rc < 0 || !r->peers) mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the brokers did not answer");
        else mint_reply_json(rq, 200, mark_partial(json_pack("{s:O}", "peers", r->peers), r->partial));
    } else if (r->rc == RTM_BUS_QUEUED) {
        mint_reply_json(rq, 202, json_pack("{s:s, s:b}", a->op == RTM_BUS_KICK ? "peerId" : "channel", a->target,
                                           "queued", 1));
    } else if (r->rc < 0) {
        reply_unreachable(rq, r->rc);
    } else {
        json_t *v = a->op == RTM_BUS_KICK ? json_pack("{s:s, s:i}", "peerId", a->target, "closed", r->rc)
                                          : json_pack("{s:s, s:i}", "channel", a->target, "recipients", r->rc);
        mint_reply_json(rq, 200, mark_partial(v, r->partial));
    }
    if (a->now) {
        a->answered_now = 1; /* ask() frees it */
        return;
    }
    mint_later_send(a->later);
    free(a);
}

static void ask(struct mint_req *rq, enum rtm_bus_op op, const char *target, const char *data)
{
    struct asked *a = calloc(1, sizeof *a);
    if (!a) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
        return;
    }
    a->op = op;
    a->now = rq;
    snprintf(a->target, sizeof a->target, "%s", target ? target : "");
    rtm_bus_ask(rq->srv->bus, op, rq->key->app, target, data, on_result, a);
    if (a->answered_now) {
        free(a);
        return;
    }
    a->now = NULL;
    if (!(a->later = mint_reply_later(rq))) mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
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
