/* api.h: private to mint-api/: the request a resource handler sees and the
 * replies it may give. http.c owns the connection (routing, body, auth,
 * writing); each resource file only turns a request into one reply.
 *
 * A handler is called exactly once per request, on the loop thread, and must
 * call exactly one mint_reply_* before returning. Everything in the request
 * is borrowed for the call's duration. */
#ifndef RTM_MINT_API_H
#define RTM_MINT_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Both the shared minting contract and this API are called mint.h; the
 * former is reached by path because this directory is searched first. */
#include "../common/mint.h"
#include "mint.h"
#include "protocol.h"
#include "store.h"

#define MINT_BODY_MAX 32768  /* bytes; a larger body gets 413 and the connection closes */
#define MINT_ARG_MAX 512     /* one query argument ("name=value"), bytes */

struct rtm_server;
struct mint_keycache;

/* One per process (mint_create), owned by rtmd's main. */
struct mint_api {
    struct rtm_server *srv;
    struct rtm_mint_policy pol; /* built once from the config; strings borrowed from it */
    struct mint_keycache *keys; /* Bearer secret -> key, from the store's view */
};

struct mint_req {
    struct rtm_server *srv;
    struct mint_api *api;
    const struct rtm_key *key; /* the authenticated key, NULL on routes without auth */
    const char *body;          /* NUL-terminated, may be empty */
    size_t body_len;
    const char *path_arg;      /* the {peerId} of /v1/peers/{peerId}, else NULL */
    const char *q_peer_id;     /* ?peerId=, NULL when absent */
    const char *q_channel;     /* ?channel=, NULL when absent */
    const char *q_limit;       /* ?limit=, NULL when absent */
    int64_t now;               /* unix seconds at dispatch */

    /* http.c's: the connection, for mint_reply_later */
    void *conn;
    struct mint_later *later;

    /* the reply, filled by mint_reply_* (owned by http.c afterwards) */
    int status;
    char *out;                 /* malloc'd body */
    size_t out_len;
    const char *content_type;
};

/* A reply that comes later (cluster mode: answers gathered from other
 * nodes, within cluster-timeout-ms): the handler returns without replying
 * and keeps the handle; everything in rq but the handle is gone then.
 * mint_later_req gives a request to reply on with mint_reply_*, and
 * mint_later_send sends that reply and frees the handle (a connection that
 * closed meanwhile just loses it). It may be sent before the handler
 * returns. NULL when memory ran out (reply now instead). At most one per
 * request. */
struct mint_later;
struct mint_later *mint_reply_later(struct mint_req *rq);
struct mint_req *mint_later_req(struct mint_later *l);
void mint_later_send(struct mint_later *l);

/* A reply built from the bus's result (common/bus.h), whenever it comes:
 *   struct mint_bus_call *c = mint_bus_call_new(rq, fn, &ctx, sizeof ctx);
 *   if (!c) return;                       (answered 500 already)
 *   rtm_bus_ask(..., mint_bus_call_done, c);
 *   mint_bus_call_started(c);
 * fn(rq, r, ctx) then replies on rq (ctx: the copy made at new), exactly once. */
struct rtm_bus_result;
typedef void mint_bus_reply_fn(struct mint_req *rq, const struct rtm_bus_result *r, void *ctx);
struct mint_bus_call;
struct mint_bus_call *mint_bus_call_new(struct mint_req *rq, mint_bus_reply_fn *fn, const void *ctx, size_t len);
void mint_bus_call_done(void *call, const struct rtm_bus_result *r); /* an rtm_bus_done_fn */
void mint_bus_call_started(struct mint_bus_call *c);

/* Replies with a JSON value (stolen reference). */
void mint_reply_json(struct mint_req *rq, int status, json_t *v);
/* Replies with a ready body (malloc'd, stolen). */
void mint_reply_raw(struct mint_req *rq, int status, char *body, size_t len, const char *ctype);
/* Replies {"error": code, "message": msg} with the error's HTTP status (the
 * protocol's error table); msg NULL: the table's message; msg is copied. */
void mint_reply_error(struct mint_req *rq, enum rtm_wire_err e, const char *msg);

/* Replies to a failed store write: 503 store_full / store_locked (nothing
 * was recorded, the client may retry), else 500; what names the write. */
void mint_reply_store_error(struct mint_req *rq, int rc, const char *what);

/* Parses the body as one JSON object; on failure replies 400 and returns NULL. */
json_t *mint_body_object(struct mint_req *rq);

/* One field of a request body: its JSON type (JSON_STRING, ...; -1 = any
 * value) and whether it is required. */
struct mint_field {
    const char *name;
    int type;
    int required;
};
/* Checks obj against the table: required fields present, types right. An
 * optional field given as null is removed (null means absent). Unknown fields
 * are ignored. On failure replies 400 naming the field and returns -1. */
int mint_check_fields(struct mint_req *rq, json_t *obj, const struct mint_field *f, size_t n);

/* The handlers, one file per resource. */
void mint_tokens_post(struct mint_req *rq);
void mint_turn_post(struct mint_req *rq);
void mint_revocations_post(struct mint_req *rq);
void mint_jwks_get(struct mint_req *rq);
void mint_healthz_get(struct mint_req *rq);
void mint_metrics_get(struct mint_req *rq);
void mint_sessions_get(struct mint_req *rq);
void mint_peers_get(struct mint_req *rq);
void mint_peer_delete(struct mint_req *rq);
void mint_publish_post(struct mint_req *rq);

#endif
