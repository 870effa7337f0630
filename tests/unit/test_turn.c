/* test_turn.c: TURN REST credentials, checked against the openssl command
 * line (the same computation coturn does), and the iceServers shape. */
#include "errors.h"
#include "testlib.h"
#include "turn.h"

#include <stdio.h>
#include <string.h>

/* Runs `printf %s USERNAME | openssl dgst -sha1 -hmac SECRET -binary | base64`.
 * The inputs are fixed test strings without shell metacharacters. */
static int openssl_credential(const char *secret, const char *username, char *out, size_t outlen)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "printf %%s '%s' | openssl dgst -sha1 -hmac '%s' -binary | base64", username,
             secret);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    if (!fgets(out, (int)outlen, p)) out[0] = '\0';
    int st = pclose(p);
    out[strcspn(out, "\n")] = '\0';
    return st == 0 && out[0] ? 0 : -1;
}

TEST(credential_matches_openssl)
{
    const char *cases[][3] = {
        {"s3cret", "alice", "1800000000:alice"},
        {"another-turn-secret-with-length", "peer_42.x", "1800000123:peer_42.x"},
        {"k", "bob", "1700000001:bob"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char user[RTM_TURN_USERNAME_MAX], cred[RTM_TURN_CREDENTIAL_MAX], want[128];
        long long expiry = 0;
        sscanf(cases[i][2], "%lld", &expiry);
        CHECK(rtm_turn_credential(cases[i][0], expiry, cases[i][1], user, sizeof user, cred, sizeof cred) == 0);
        CHECK_STR(user, cases[i][2]);
        CHECK(openssl_credential(cases[i][0], user, want, sizeof want) == 0);
        CHECK_STR(cred, want);
        CHECK(strlen(cred) == 28); /* base64 of 20 bytes, not 40 hex chars */
    }
}

TEST(credential_depends_on_secret_and_username)
{
    char u1[RTM_TURN_USERNAME_MAX], c1[RTM_TURN_CREDENTIAL_MAX], u2[RTM_TURN_USERNAME_MAX],
        c2[RTM_TURN_CREDENTIAL_MAX];
    CHECK(rtm_turn_credential("a", 1800000000, "u", u1, sizeof u1, c1, sizeof c1) == 0);
    CHECK(rtm_turn_credential("b", 1800000000, "u", u2, sizeof u2, c2, sizeof c2) == 0);
    CHECK(strcmp(c1, c2) != 0);
    CHECK(rtm_turn_credential("a", 1800000001, "u", u2, sizeof u2, c2, sizeof c2) == 0);
    CHECK(strcmp(c1, c2) != 0);
}

TEST(empty_user_gives_bare_expiry)
{
    char u[RTM_TURN_USERNAME_MAX], c[RTM_TURN_CREDENTIAL_MAX], want[128];
    CHECK(rtm_turn_credential("sec", 1800000000, "", u, sizeof u, c, sizeof c) == 0);
    CHECK_STR(u, "1800000000");
    CHECK(openssl_credential("sec", u, want, sizeof want) == 0);
    CHECK_STR(c, want);
    CHECK(rtm_turn_credential("sec", 1800000000, NULL, u, sizeof u, c, sizeof c) == 0);
    CHECK_STR(u, "1800000000");
}

TEST(credential_rejects_bad_input)
{
    char u[RTM_TURN_USERNAME_MAX], c[RTM_TURN_CREDENTIAL_MAX], big[300];
    CHECK(rtm_turn_credential("", 1800000000, "u", u, sizeof u, c, sizeof c) == RTM_EINVAL);
    CHECK(rtm_turn_credential(NULL, 1800000000, "u", u, sizeof u, c, sizeof c) == RTM_EINVAL);
    CHECK(rtm_turn_credential("s", 0, "u", u, sizeof u, c, sizeof c) == RTM_EINVAL);
    CHECK(rtm_turn_credential("s", 1800000000, "a\nb", u, sizeof u, c, sizeof c) == RTM_EINVAL);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(rtm_turn_credential("s", 1800000000, big, u, sizeof u, c, sizeof c) == RTM_ELIMIT);
    CHECK(rtm_turn_credential("s", 1800000000, "u", u, 5, c, sizeof c) == RTM_ELIMIT);
    CHECK(rtm_turn_credential("s", 1800000000, "u", u, sizeof u, c, 10) == RTM_ELIMIT);
}

TEST(ice_servers_shape)
{
    const char *urls[] = {"stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp",
                          "turn:127.0.0.1:3478?transport=tcp", "turns:turn.example:5349"};
    json_t *a = rtm_turn_ice_servers("sec", urls, 4, "alice", 1800000000);
    CHECK(a && json_is_array(a) && json_array_size(a) == 2);
    if (a && json_array_size(a) == 2) {
        json_t *stun = json_array_get(a, 0), *turn = json_array_get(a, 1);
        CHECK(json_array_size(json_object_get(stun, "urls")) == 1);
        CHECK_STR(json_string_value(json_array_get(json_object_get(stun, "urls"), 0)), urls[0]);
        CHECK(json_object_get(stun, "username") == NULL);
        CHECK(json_array_size(json_object_get(turn, "urls")) == 3);
        CHECK_STR(json_string_value(json_array_get(json_object_get(turn, "urls"), 2)), urls[3]);
        CHECK_STR(json_string_value(json_object_get(turn, "username")), "1800000000:alice");
        char u[RTM_TURN_USERNAME_MAX], c[RTM_TURN_CREDENTIAL_MAX];
        CHECK(rtm_turn_credential("sec", 1800000000, "alice", u, sizeof u, c, sizeof c) == 0);
        CHECK_STR(json_string_value(json_object_get(turn, "credential")), c);
    }
    json_decref(a);
}

TEST(ice_servers_omit_empty_entries)
{
    const char *stun_only[] = {"stun:127.0.0.1:3478"};
    json_t *a = rtm_turn_ice_servers(NULL, stun_only, 1, "alice", 1800000000);
    CHECK(a && json_array_size(a) == 1);
    CHECK(a && json_object_get(json_array_get(a, 0), "credential") == NULL);
    json_decref(a);

    const char *turn_only[] = {"turn:127.0.0.1:3478"};
    a = rtm_turn_ice_servers("sec", turn_only, 1, "alice", 1800000000);
    CHECK(a && json_array_size(a) == 1);
    CHECK(a && json_object_get(json_array_get(a, 0), "credential") != NULL);
    json_decref(a);

    a = rtm_turn_ice_servers("sec", NULL, 0, "alice", 1800000000);
    CHECK(a && json_array_size(a) == 0);
    json_decref(a);
}

TEST(ice_servers_refuse_misconfiguration)
{
    const char *bad[] = {"http://example.com"};
    CHECK(rtm_turn_ice_servers("sec", bad, 1, "alice", 1800000000) == NULL);
    const char *turn_only[] = {"turn:127.0.0.1:3478"};
    CHECK(rtm_turn_ice_servers(NULL, turn_only, 1, "alice", 1800000000) == NULL); /* no secret */
}

int main(void) { return RUN_TESTS(); }
