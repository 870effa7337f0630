/* sessions.c: GET /v1/sessions[?peerId=&limit=]: connection rows the broker
 * wrote to the store, newest first, limited to the calling key's app.
 * limit defaults to 100 and is capped at 1000 (bounded replies). */
#include "api.h"

#include "protocol.h"
#include "server.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

#define SESSIONS_DEFAULT 100
#define SESSIONS_MAX 1000

void mint_sessions_get(struct mint_req *rq)
{
    int limit = SESSIONS_DEFAULT;
    if (rq->q_limit) {
        char *end;
        long v = strtol(rq->q_limit, &end, 10);
        if (!*rq->q_limit || *end || v < 1 || v > SESSIONS_MAX) {
            mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "limit must be an integer from 1 to 1000");
            return;
        }
        limit = (int)v;
    }
    if (rq->q_peer_id && !rtm_peer_id_valid(rq->q_peer_id)) {
        mint_reply_error(rq, RTM_WIRE_INVALID_REQUEST, "peerId must be 1 to 128 printable ASCII characters");
        return;
    }
    if (rq->q_peer_id && rtm_peer_id_reserved(rq->q_peer_id)) {
        mint_reply_error(rq, RTM_WIRE_PEER_ID_RESERVED, NULL);
        return;
    }
    /* The store spans every app; a key sees its own app's rows only, filtered
     * in the query so the limit counts this app's rows. */
    json_t *rows = NULL;
    if (rtm_store_sessions_query(rq->srv->store, rq->key->app, rq->q_peer_id, limit, &rows) != 0) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "the session store did not answer");
        return;
    }
    mint_reply_json(rq, 200, json_pack("{s:o}", "sessions", rows));
}
