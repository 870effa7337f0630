/* fuzz_mint_api.c: the mint API's request handlers (one file per resource in mint-api/) on a real
 * sqlite store and a real broker (broker_env.c), called the way http.c calls
 * them once it has routed, read the body and authenticated the key.
 *
 * The key: HS256, app "fuzz", channels room-* and team/ + globstar, actions
 * publish, subscribe, presence (no send); TURN is configured, so tokens carry
 * iceServers. Two sessions (alice, bob) are subscribed to room-1.
 * Input: records separated by 0x1e; a record's first byte picks the route
 * (tokens, turn-credentials, revocations, sessions, peers, DELETE peer,
 * publish); the rest is the body, or for GET the query arguments peerId,
 * channel and limit separated by NUL bytes, or for DELETE the path's peerId.
 * Oracle: exactly one reply, a JSON object, with a documented status; errors
 * carry a string error and message; every minted token verifies against the
 * key (rtm_token_verify) and lies within its scope by the independent matcher
 * (channels) and the key's actions, for the peerId asked, with expiresAt = exp
 * inside 1..token-max-ttl from now and the asked lifetime when given, never
 * for a reserved peerId (leading _); a 201
 * revocation is in force in the store; a publish reaches exactly the
 * subscribers it reports, each with the data sent, from "_server"; a kick
 * reports exactly the peer's open sessions. */
#include "broker_env.h"
#include "support.h"

#include "api.h"
#include "protocol.h"
#include "store.h"
#include "token.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECORDS 32
#define N_SESS 2

static struct mint_api *api;
static struct rtm_key key;
static const char *const key_chans[] = {"room-*", "team/**"};

static const struct benv_session specs[N_SESS] = {
    {"alice", {"room-*"}, 1, RTM_PERM_ALL, 0, "{\"name\":\"A\"}"},
    {"bob", {"**"}, 1, RTM_PERM_ALL, 0, NULL},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* TURN through the config's own route for secrets (the environment) */
    setenv("RTM_TURN_SECRETS", "fuzz-turn-secret", 1);
    setenv("RTM_TURN_URLS", "turn:127.0.0.1:3478?transport=udp", 1);
    benv_init("mint.db");
    FUZZ_CHECK(benv_cfg.n_turn_secrets == 1 && benv_cfg.n_turn_urls == 1, "TURN settings not taken");
    struct rtm_key_spec spec = {.app = "fuzz", .channels = key_chans, .n_channels = 2,
                                .actions = RTM_PERM_PUBLISH | RTM_PERM_SUBSCRIBE | RTM_PERM_PRESENCE};
    if (rtm_store_key_create(benv_srv.store, &spec, &key)) abort();
    if (mint_create(&benv_srv, &api)) abort();
    return 0;
}

enum { R_TOKENS, R_TURN, R_REVOKE, R_SESSIONS, R_PEERS, R_KICK, R_PUBLISH, N_ROUTES };
static void (*const handlers[N_ROUTES])(struct mint_req *) = {
    mint_tokens_post, mint_turn_post, mint_revocations_post, mint_sessions_get,
    mint_peers_get,   mint_peer_delete, mint_publish_post,
};

struct run {
    struct brk_broker *b;
    struct brk_session *sess[N_SESS];
};

static int in_scope(const char *pattern)
{
    static const char *fills[] = {"", "x", "a/b"};
    for (size_t f = 0; f < 3; f++) {
        char *inst = ref_instantiate(pattern, fills[f]);
        int ok = ref_match(key_chans[0], inst) || ref_match(key_chans[1], inst);
        free(inst);
        if (!ok) return 0;
    }
    return 1;
}

static void check_token(struct mint_req *rq, json_t *reply, json_t *body)
{
    const char *token = json_string_value(json_object_get(reply, "token"));
    json_t *exp_at = json_object_get(reply, "expiresAt");
    FUZZ_CHECK(token && json_is_integer(exp_at), "a 200 from /v1/tokens without token and expiresAt");
    struct rtm_claims c;
    const char *reason = NULL;
    int rc = rtm_token_verify(token, &key, rq->now, &c, &reason);
    FUZZ_CHECK(rc == 0, "a minted token does not verify: %s", reason);
    FUZZ_CHECK(!strcmp(c.sub, json_string_value(json_object_get(body, "peerId"))), "minted for another peerId");
    FUZZ_CHECK(c.sub[0] != '_', "minted for the reserved peerId %s", c.sub);
    FUZZ_CHECK(c.exp == json_integer_value(exp_at), "expiresAt differs from exp");
    FUZZ_CHECK(c.exp - rq->now >= 1 && c.exp - rq->now <= api->pol.max_ttl, "lifetime %lld outside the policy",
               (long long)(c.exp - rq->now));
    json_t *asked = json_object_get(body, "expiresInSec");
    if (json_is_integer(asked))
        FUZZ_CHECK(c.exp == rq->now + json_integer_value(asked), "lifetime is not the one asked for");
    FUZZ_CHECK((c.perms & ~key.actions) == 0, "permissions 0x%x outside the key's", c.perms);
    for (size_t i = 0; i < c.n_channels; i++)
        FUZZ_CHECK(in_scope(c.channels[i]), "minted channel %s outside the key's", c.channels[i]);
    json_t *ice = json_object_get(c.metadata, "iceServers");
    FUZZ_CHECK(json_is_array(ice), "a token without iceServers although TURN is configured");
    rtm_claims_free(&c);
}

static void check_reply(struct run *r, int route, struct mint_req *rq, json_t *body, const int *open_before)
{
    static const int statuses[] = {200, 201, 400, 403, 404, 413, 500, 503};
    int known = 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) known |= rq->status == statuses[i];
    FUZZ_CHECK(known, "status %d", rq->status);
    FUZZ_CHECK(rq->out, "no reply body");
    json_t *reply = one_object(rq->out, rq->out_len);
    FUZZ_CHECK(reply, "the reply is not one JSON object: %.*s", (int)rq->out_len, rq->out);
    if (rq->status >= 400) {
        FUZZ_CHECK(json_is_string(json_object_get(reply, "error")) && json_is_string(json_object_get(reply, "message")),
                   "an error reply without error and message");
    } else if (route == R_TOKENS) {
        check_token(rq, reply, body);
    } else if (route == R_REVOKE) {
        const char *jti = json_string_value(json_object_get(body, "jti"));
        const char *peer = json_string_value(json_object_get(body, "peerId"));
        /* a token issued when the revocation was made (later ones are valid again) */
        int rev = jti ? rtm_store_is_revoked(benv_srv.store, "fuzz", jti, "someone-else", rq->now)
                      : rtm_store_is_revoked(benv_srv.store, "fuzz", "other-jti", peer, rq->now);
        FUZZ_CHECK(rq->status == 201 && rev == 1, "an acknowledged revocation is not in force (%d)", rev);
    } else if (route == R_PUBLISH) {
        json_t *data = json_object_get(body, "data");
        int n = (int)json_integer_value(json_object_get(reply, "recipients")), got = 0;
        for (int i = 0; i < N_SESS; i++) {
            struct brk_msg *m;
            for (uint32_t k = 0; (m = outq_peek(&r->sess[i]->q, k)); k++) {
                json_t *f = one_object((const char *)m->buf + LWS_PRE, m->len);
                FUZZ_CHECK(f, "a published frame is not one JSON object");
                const char *type = json_string_value(json_object_get(f, "type"));
                if (type && !strcmp(type, "message")) {
                    got++;
                    FUZZ_CHECK(json_equal(json_object_get(f, "data"), data), "published data changed on the way");
                    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(f, "from")), "_server"), "not from _server");
                }
                json_decref(f);
            }
        }
        FUZZ_CHECK(n == got, "publish reported %d recipients, %d got it", n, got);
    } else if (route == R_KICK) {
        int n = (int)json_integer_value(json_object_get(reply, "closed")), want = 0;
        for (int i = 0; i < N_SESS; i++) want += open_before[i] && !strcmp(specs[i].peer, rq->path_arg);
        FUZZ_CHECK(n == want, "kick closed %d, the peer had %d open", n, want);
    }
    json_decref(reply);
}

/* The next NUL-separated part of [*p, end), or NULL when none is left. */
static char *part(const char **p, const char *end)
{
    if (*p > end) return NULL;
    const char *z = memchr(*p, 0, (size_t)(end - *p));
    size_t n = z ? (size_t)(z - *p) : (size_t)(end - *p);
    char *s = strndup(*p, n);
    *p = z ? z + 1 : end + 1;
    return s;
}

static void one_request(const uint8_t *rec, size_t n, void *ud)
{
    struct run *r = ud;
    if (n == 0) return;
    int route = rec[0] % N_ROUTES;
    const char *text = (const char *)rec + 1, *end = text + n - 1;
    char *body = strndup(text, n - 1), *qa = NULL, *qb = NULL, *qc = NULL;
    struct mint_req rq = {.srv = &benv_srv, .api = api, .key = &key, .body = body, .body_len = strlen(body),
                          .now = rtm_now_s()};
    if (route == R_SESSIONS || route == R_PEERS) {
        const char *p = text;
        qa = part(&p, end);
        qb = part(&p, end);
        qc = part(&p, end);
        rq.q_peer_id = qa && *qa ? qa : NULL;
        rq.q_channel = qb && *qb ? qb : NULL;
        rq.q_limit = qc;
        rq.body = "";
        rq.body_len = 0;
    } else if (route == R_KICK) {
        if (strlen(body) > RTM_MAX_PEER_ID) body[RTM_MAX_PEER_ID] = '\0'; /* http.c's buffer */
        rq.path_arg = body;
        rq.body = "";
        rq.body_len = 0;
    }
    int open_before[N_SESS];
    for (int i = 0; i < N_SESS; i++) {
        open_before[i] = r->sess[i]->state == SESS_OPEN;
        outq_pop(&r->sess[i]->q, r->sess[i]->q.count);
    }
    handlers[route](&rq);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "  route %d -> %d %.*s\n", route, rq.status, (int)rq.out_len, rq.out);
    json_error_t e;
    json_t *jb = json_loadb(rq.body, rq.body_len, 0, &e);
    check_reply(r, route, &rq, jb, open_before);
    json_decref(jb);
    free(rq.out);
    free(body);
    free(qa);
    free(qb);
    free(qc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 100000) return 0;
    if (!api) LLVMFuzzerInitialize(NULL, NULL);
    struct run r;
    r.b = benv_broker();
    for (int i = 0; i < N_SESS; i++) {
        enum rtm_wire_err err;
        r.sess[i] = benv_session_open(r.b, &specs[i], i);
        if (chan_subscribe(r.sess[i], "room-1", 0, &err)) abort();
    }
    presence_flush(r.b);
    fuzz_records(data, size, MAX_RECORDS, one_request, &r);
    for (int i = 0; i < N_SESS; i++) benv_session_close(r.b, r.sess[i]);
    benv_broker_free(r.b);
    return 0;
}
