/* revocations.c: POST /v1/revocations {jti} | {peerId}: stored in the key's
 * app (before the reply: a 201 means it is durable), then the bus asks every
 * broker's view for a poll now; they close matching live sessions with 4001. A revocation by peerId voids every
 * token of that peer issued up to now: iat has one-second resolution and the
 * store voids iat < before, so before is the next second, or a token minted
 * in this very second (the usual mint, connect, revoke sequence) would
 * survive. Tokens minted from the next second on are valid. */
#include "api.h"

#include "bus.h"
#include "view.h"
#include "config.h"
#include "protocol.h"
#include "server.h"
#include "store.h"

#include <stdio.h>
#include <string.h>

/* How long a jti revocation is kept at least: a token of ours lives at most
 * max_ttl, but a backend may sign longer-lived ones offline. */
#define JTI_KEEP_MIN_SEC (30 * 86400)

static const struct mint_field fields[] = {
    {"jti", JSON_STRING, 0},
    {"peerId", JSON_STRING, 0},
};

/* What the reply names, copied into the bus call (the reply is built when
 * the result comes: nothing owned waits in the call, so a call that finds no
 * request to answer, its connection's later reply out of memory, frees it all). */
struct revoked_ctx {
    int by_jti;
    json_int_t at; /* revokedAt (jti) or before (peerId) */
    char id[RTM_MAX_PEER_ID + 1];
};

static void reply_revoked(struct mint_req *rq, const struct rtm_bus_result *r, void *ctx)
{
    const struct revoked_ctx *x = ctx;
    json_t *reply = json_pack("{s:s, s:I}", x->by_jti ? "jti" : "peerId", x->id, x->by_jti ? "revokedAt" : "before",
                              x->at);
    /* The revocation is stored whatever the brokers say: 201 always; the
     * sessions it closed when the brokers are in reach (not with --role mint). */
    if (reply && r->rc >= 0 && r->rc != RTM_BUS_QUEUED) json_object_set_new(reply, "closed", json_integer(r->rc));
    if (reply && r->partial) json_object_set_new(reply, "partial", json_true());
    mint_reply_json(rq, 201, reply);
}

void mint_revocations_post(struct mint_req *rq)
{
    json_t *b = mint_body_object(rq);
    if (!b) return;
    if (mint_check_fields(rq, b, fields, sizeof fields / sizeof fields[0]) != 0) goto done;
    const char *jti = json_string_value(json_object_get(b, "jti"));
    const char *peer = json_string_value(json_object_get(b, "peerId"));
    if (!jti == !peer) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "give exactly one of jti or peerId");
        goto done;
    }
    int rc;
    struct revoked_ctx x = {.by_jti = jti != NULL};
    if (jti) {
        size_t n = strlen(jti);
        if (n == 0 || n >= 80) {
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "jti must be 1 to 79 characters");
            goto done;
        }
        int64_t keep = rq->api->pol.max_ttl > JTI_KEEP_MIN_SEC ? rq->api->pol.max_ttl : JTI_KEEP_MIN_SEC;
        rc = rtm_store_revoke_jti(rq->srv->store, rq->key->app, jti, rq->now + keep);
        x.at = (json_int_t)rq->now;
        memcpy(x.id, jti, n + 1);
    } else {
        if (!rtm_peer_id_valid(peer)) {
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST,
                             "peerId must be 1 to 128 printable ASCII characters");
            goto done;
        }
        if (rtm_peer_id_reserved(peer)) {
            mint_reply_error(rq, RTM_WIRE_PEER_ID_RESERVED, NULL);
            goto done;
        }
        rc = rtm_store_revoke_peer(rq->srv->store, rq->key->app, peer, rq->now + 1);
        x.at = (json_int_t)(rq->now + 1);
        snprintf(x.id, sizeof x.id, "%s", peer);
    }
    if (rc != 0) {
        mint_reply_store_error(rq, rc, "the revocation");
        goto done;
    }
    struct rtm_revocation r = {rq->key->app, jti, peer, rq->now + 1};
    struct mint_bus_call *c = mint_bus_call_new(rq, reply_revoked, &x, sizeof x);
    if (!c) goto done;
    rtm_bus_revoked(rq->srv->bus, &r, mint_bus_call_done, c);
    mint_bus_call_started(c);
done:
    json_decref(b);
}
