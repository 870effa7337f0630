/* test_mint.c: common/mint.c: what rtm_mint signs is what rtm_token_verify
 * accepts, with the defaults, the key's scope and the TURN credential the
 * issue asks for; and every refusal carries its documented code. */
#include "testlib.h"

#include "errors.h"
#include "mint.h"
#include "protocol.h"
#include "store.h"
#include "token.h"
#include "turn.h"

#include <stdlib.h>

static char *key_channels[] = {"room-*/**", "lobby"};
static struct rtm_key key = {
    .id = "sk_id_00112233445566778899aabbccddeeff",
    .app = "test",
    .alg = "HS256",
    .secret = "sk_secret_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab",
    .channels = key_channels,
    .n_channels = 2,
    .actions = RTM_PERM_PUBLISH | RTM_PERM_SUBSCRIBE | RTM_PERM_PRESENCE,
};
static const char *const urls[] = {"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp",
                                   "turns:127.0.0.1:5349?transport=tcp"};
static const struct rtm_mint_policy pol = {3600, 86400, "turn-secret-for-tests", urls, 3, 0};
static const int64_t NOW = 1900000000;

/* Mints, then verifies with the broker's verifier; returns 0 and fills *c. */
static int mint_verify(const struct rtm_mint_request *rq, struct rtm_claims *c, int64_t *exp)
{
    char *tok = NULL;
    const char *code = NULL, *msg = NULL, *reason = NULL;
    int rc = rtm_mint(&pol, &key, rq, NOW, &tok, exp, &code, &msg);
    if (rc) {
        fprintf(stderr, "  mint failed: %s %s\n", code, msg);
        return rc;
    }
    rc = rtm_token_verify(tok, &key, NOW + 1, c, &reason);
    if (rc) fprintf(stderr, "  verify failed: %s\n", reason);
    char kid[80];
    if (!rc && (rtm_token_peek_kid(tok, kid, sizeof kid, &reason) || strcmp(kid, key.id) != 0)) rc = -1;
    free(tok);
    return rc;
}

static const char *mint_error(const struct rtm_mint_request *rq, const struct rtm_key *k)
{
    char *tok = NULL;
    int64_t exp;
    const char *code = NULL, *msg = NULL;
    if (rtm_mint(&pol, k ? k : &key, rq, NOW, &tok, &exp, &code, &msg) == 0) {
        free(tok);
        return "ok";
    }
    CHECK(tok == NULL);
    CHECK(msg && *msg);
    return code;
}

TEST(defaults_verify_with_key_scope_and_turn)
{
    struct rtm_mint_request rq = {.peer_id = "alice"};
    struct rtm_claims c;
    int64_t exp = 0;
    CHECK(mint_verify(&rq, &c, &exp) == 0);
    CHECK_STR(c.sub, "alice");
    CHECK(c.iat == NOW && c.exp == NOW + 3600 && exp == NOW + 3600);
    CHECK(c.jti && strlen(c.jti) == 32);
    CHECK(c.n_channels == 2 && strcmp(c.channels[0], "room-*/**") == 0 && strcmp(c.channels[1], "lobby") == 0);
    CHECK(c.perms == key.actions);
    json_t *ice = json_object_get(c.metadata, "iceServers");
    CHECK(json_array_size(ice) == 2);
    json_t *stun = json_array_get(ice, 0), *turn = json_array_get(ice, 1);
    CHECK_STR(json_string_value(json_array_get(json_object_get(stun, "urls"), 0)), urls[0]);
    CHECK(json_array_size(json_object_get(turn, "urls")) == 2);
    char user[RTM_TURN_USERNAME_MAX], cred[RTM_TURN_CREDENTIAL_MAX];
    /* TURN lifetime defaults to the token's plus one hour. */
    CHECK(rtm_turn_credential(pol.turn_secret, NOW + 3600 + 3600, "alice", user, sizeof user, cred, sizeof cred) == 0);
    CHECK_STR(json_string_value(json_object_get(turn, "username")), user);
    CHECK_STR(json_string_value(json_object_get(turn, "credential")), cred);
    CHECK(c.peer_metadata == NULL || json_object_size(c.peer_metadata) == 0);
    rtm_claims_free(&c);
}

TEST(requested_scope_ttl_and_metadata)
{
    const char *chans[] = {"room-1/chat", "lobby"};
    json_t *meta = json_pack("{s:s}", "role", "host"), *pm = json_pack("{s:s}", "name", "Alice \"A\"");
    struct rtm_mint_request rq = {.peer_id = "a\\b\"c", .channels = chans, .n_channels = 2,
                                  .perms = RTM_PERM_SUBSCRIBE, .perms_set = 1, .expires_in = 60,
                                  .metadata = meta, .peer_metadata = pm};
    struct rtm_claims c;
    int64_t exp;
    CHECK(mint_verify(&rq, &c, &exp) == 0);
    CHECK_STR(c.sub, "a\\b\"c");
    CHECK(c.exp == NOW + 60);
    CHECK(c.n_channels == 2 && strcmp(c.channels[0], "room-1/chat") == 0);
    CHECK(c.perms == RTM_PERM_SUBSCRIBE);
    CHECK_STR(json_string_value(json_object_get(c.metadata, "role")), "host");
    CHECK(json_object_get(c.metadata, "iceServers") != NULL);
    CHECK_STR(json_string_value(json_object_get(c.peer_metadata, "name")), "Alice \"A\"");
    /* The caller's object is left as it was. */
    CHECK(json_object_get(meta, "iceServers") == NULL);
    rtm_claims_free(&c);
    json_decref(meta);
    json_decref(pm);
}

TEST(caller_ice_servers_are_kept)
{
    json_t *meta = json_pack("{s:[{s:[s]}]}", "iceServers", "urls", "stun:example.org");
    struct rtm_mint_request rq = {.peer_id = "bob", .metadata = meta};
    struct rtm_claims c;
    int64_t exp;
    CHECK(mint_verify(&rq, &c, &exp) == 0);
    CHECK(json_equal(json_object_get(c.metadata, "iceServers"), json_object_get(meta, "iceServers")));
    rtm_claims_free(&c);
    json_decref(meta);
}

TEST(jti_is_unique)
{
    struct rtm_mint_request rq = {.peer_id = "alice"};
    struct rtm_claims a, b;
    int64_t exp;
    CHECK(mint_verify(&rq, &a, &exp) == 0);
    CHECK(mint_verify(&rq, &b, &exp) == 0);
    CHECK(strcmp(a.jti, b.jti) != 0);
    rtm_claims_free(&a);
    rtm_claims_free(&b);
}

TEST(alternating_keys_sign_with_their_own_kid_and_secret)
{
    struct rtm_key other = key;
    memcpy(other.id, "sk_id_ffeeddccbbaa99887766554433221100", 39);
    other.secret = "sk_secret_another_secret_of_sufficient_length_for_tests_0000000000000";
    struct rtm_mint_request rq = {.peer_id = "alice"};
    for (int i = 0; i < 4; i++) {
        const struct rtm_key *k = i % 2 ? &other : &key;
        char *tok = NULL, kid[80];
        int64_t exp;
        const char *code, *msg, *reason;
        struct rtm_claims c = {0};
        CHECK(rtm_mint(&pol, k, &rq, NOW, &tok, &exp, &code, &msg) == 0);
        CHECK(tok && rtm_token_peek_kid(tok, kid, sizeof kid, &reason) == 0 && strcmp(kid, k->id) == 0);
        CHECK(tok && rtm_token_verify(tok, k, NOW + 1, &c, &reason) == 0);
        rtm_claims_free(&c);
        /* and not with the other key */
        CHECK(tok && rtm_token_verify(tok, k == &key ? &other : &key, NOW + 1, &c, &reason) != 0);
        free(tok);
    }
}

TEST(refusals)
{
    struct rtm_mint_request rq = {.peer_id = ""};
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    char long_id[130];
    memset(long_id, 'x', 129);
    long_id[129] = '\0';
    rq.peer_id = long_id;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    rq.peer_id = "has space";
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    long_id[128] = '\0';
    rq.peer_id = long_id; /* 128 is the limit, inclusive */
    CHECK_STR(mint_error(&rq, NULL), "ok");

    rq.peer_id = "alice";
    const char *many[101];
    for (int i = 0; i < 101; i++) many[i] = "lobby";
    rq.channels = many;
    rq.n_channels = 101;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    rq.n_channels = 100;
    CHECK_STR(mint_error(&rq, NULL), "ok");

    char big[300] = "room-1/";
    memset(big + 7, 'a', 250);
    big[257] = '\0'; /* 257 bytes */
    const char *one[1] = {big};
    rq.channels = one;
    rq.n_channels = 1;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    big[256] = '\0'; /* 256 bytes: fine */
    CHECK_STR(mint_error(&rq, NULL), "ok");
    one[0] = "elsewhere";
    CHECK_STR(mint_error(&rq, NULL), "channel_not_authorized");
    one[0] = "room-1/**";
    CHECK_STR(mint_error(&rq, NULL), "ok");
    one[0] = "**"; /* wider than the key */
    CHECK_STR(mint_error(&rq, NULL), "channel_not_authorized");
    rq.channels = NULL;
    rq.n_channels = 0;

    rq.perms_set = 1;
    rq.perms = RTM_PERM_SEND;
    CHECK_STR(mint_error(&rq, NULL), "action_not_permitted");
    rq.perms_set = 0;

    rq.expires_in = 86401;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    rq.expires_in = 86400;
    CHECK_STR(mint_error(&rq, NULL), "ok");
    rq.expires_in = -5;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    rq.expires_in = 0;

    char *fill = malloc(9000);
    memset(fill, 'm', 8999);
    fill[8999] = '\0';
    json_t *meta = json_pack("{s:s}", "x", fill);
    rq.metadata = meta;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    rq.metadata = NULL;
    fill[4100] = '\0';
    json_t *pm = json_pack("{s:s}", "x", fill);
    rq.peer_metadata = pm;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    rq.peer_metadata = NULL;
    json_t *arr = json_array();
    rq.metadata = arr;
    CHECK_STR(mint_error(&rq, NULL), "invalid_request");
    rq.metadata = NULL;
    json_decref(meta);
    json_decref(pm);
    json_decref(arr);
    free(fill);

    struct rtm_key pk = key;
    pk.publishable = 1;
    pk.secret = NULL;
    pk.alg[0] = '\0';
    CHECK_STR(mint_error(&rq, &pk), "internal_error");
}

int main(void) { return RUN_TESTS(); }
