/* test_bind.c: token binding hashes and checks (common/bind.c). */
#include "bind.h"
#include "errors.h"
#include "testlib.h"
#include "token.h"

#include <jansson.h>

TEST(hash_is_salted_by_jti_and_kind)
{
    char a[RTM_BIND_HASH_LEN + 1], b[RTM_BIND_HASH_LEN + 1], c[RTM_BIND_HASH_LEN + 1];
    CHECK(rtm_bind_hash("ip", "jti-1", "203.0.113.7", a, sizeof a) == 0);
    CHECK(strlen(a) == RTM_BIND_HASH_LEN);
    CHECK(rtm_bind_hash("ip", "jti-2", "203.0.113.7", b, sizeof b) == 0);
    CHECK(strcmp(a, b) != 0);
    CHECK(rtm_bind_hash("ua", "jti-1", "203.0.113.7", c, sizeof c) == 0);
    CHECK(strcmp(a, c) != 0);
    CHECK(rtm_bind_hash("ip", "jti-1", "203.0.113.7", c, sizeof c) == 0);
    CHECK_STR(a, c);
    CHECK(rtm_bind_hash("ip", "j", "v", c, RTM_BIND_HASH_LEN) == RTM_EINVAL); /* no room for the NUL */
}

TEST(addresses_are_canonical)
{
    char o[64];
    CHECK(rtm_bind_ip_canonical("127.0.0.1", o, sizeof o) == 0);
    CHECK_STR(o, "127.0.0.1");
    CHECK(rtm_bind_ip_canonical("::ffff:127.0.0.1", o, sizeof o) == 0);
    CHECK_STR(o, "127.0.0.1");
    CHECK(rtm_bind_ip_canonical("2001:DB8:0:0::1", o, sizeof o) == 0);
    CHECK_STR(o, "2001:db8::1");
    CHECK(rtm_bind_ip_canonical("localhost", o, sizeof o) == RTM_EINVAL);
    CHECK(rtm_bind_ip_canonical("1.2.3.4 ", o, sizeof o) == RTM_EINVAL);
    CHECK(rtm_bind_ip_canonical(NULL, o, sizeof o) == RTM_EINVAL);
}

TEST(matches_every_bound_value)
{
    struct rtm_claims c;
    memset(&c, 0, sizeof c);
    c.jti = "j1";
    CHECK(rtm_bind_matches(&c, NULL, NULL)); /* not bound */
    char ip[RTM_BIND_HASH_LEN + 1], ua[RTM_BIND_HASH_LEN + 1];
    CHECK(rtm_bind_hash("ip", "j1", "10.0.0.1", ip, sizeof ip) == 0);
    CHECK(rtm_bind_hash("ua", "j1", "UA/1", ua, sizeof ua) == 0);
    c.bind_ip = ip;
    CHECK(rtm_bind_matches(&c, "10.0.0.1", NULL));
    CHECK(rtm_bind_matches(&c, "::ffff:10.0.0.1", "anything"));
    CHECK(!rtm_bind_matches(&c, "10.0.0.2", NULL));
    CHECK(!rtm_bind_matches(&c, "unknown", NULL));
    CHECK(!rtm_bind_matches(&c, NULL, NULL));
    c.bind_ua = ua;
    CHECK(rtm_bind_matches(&c, "10.0.0.1", "UA/1"));
    CHECK(!rtm_bind_matches(&c, "10.0.0.1", "UA/2"));
    CHECK(!rtm_bind_matches(&c, "10.0.0.1", NULL));
}

TEST(claim_shape)
{
    char h[RTM_BIND_HASH_LEN + 1];
    CHECK(rtm_bind_hash("ip", "j", "1.2.3.4", h, sizeof h) == 0);
    json_t *ok = json_pack("{s:s}", "ip", h), *both = json_pack("{s:s, s:s}", "ip", h, "ua", h);
    json_t *bad[] = {json_object(), json_pack("{s:s}", "ip", "short"), json_pack("{s:s}", "mac", h),
                     json_pack("{s:i}", "ua", 1), json_string("x")};
    CHECK(rtm_bind_claim_valid(ok) == 0);
    CHECK(rtm_bind_claim_valid(both) == 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(rtm_bind_claim_valid(bad[i]) != 0);
        json_decref(bad[i]);
    }
    struct rtm_claims c;
    memset(&c, 0, sizeof c);
    CHECK(rtm_bind_claim_read(both, &c) == 0);
    CHECK_STR(c.bind_ip, h);
    json_t *out = json_object();
    CHECK(rtm_bind_claim_add(out, &c) == 0);
    CHECK(json_equal(json_object_get(out, "bind"), both));
    rtm_claims_free(&c);
    json_decref(out);
    json_decref(ok);
    json_decref(both);
}

int main(void) { return RUN_TESTS(); }
