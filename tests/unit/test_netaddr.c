/* test_netaddr.c: CIDR parsing and matching, and the X-Forwarded-For rule:
 * believed only from a trusted peer, rightmost untrusted hop wins, anything
 * malformed falls back to the peer. */
#include "netaddr.h"
#include "testlib.h"

static struct rtm_cidr list[4];
static size_t n;

static void trust(const char *a, const char *b)
{
    n = 0;
    if (a) CHECK(rtm_cidr_parse(a, &list[n++]) == 0);
    if (b) CHECK(rtm_cidr_parse(b, &list[n++]) == 0);
}

static const char *client(const char *peer, const char *xff)
{
    static char out[64];
    rtm_client_addr(list, n, peer, xff, out, sizeof out);
    return out;
}

TEST(cidr_parse_and_match)
{
    struct rtm_cidr c;
    CHECK(rtm_cidr_parse("10.0.0.0/8", &c) == 0 && c.bits == 8);
    CHECK(rtm_cidr_parse("192.0.2.7", &c) == 0 && c.bits == 32);
    CHECK(rtm_cidr_parse("fd00::/8", &c) == 0 && c.bits == 8);
    CHECK(rtm_cidr_parse("::1", &c) == 0 && c.bits == 128);
    CHECK(rtm_cidr_parse("10.0.0.0/33", &c) == -1);
    CHECK(rtm_cidr_parse("10.0.0.0/", &c) == -1);
    CHECK(rtm_cidr_parse("proxy.example", &c) == -1);
    CHECK(rtm_cidr_parse("", &c) == -1);
    trust("10.0.0.0/8", "192.168.1.0/25");
    CHECK(rtm_cidr_match(list, n, "10.255.0.1"));
    CHECK(!rtm_cidr_match(list, n, "11.0.0.1"));
    CHECK(rtm_cidr_match(list, n, "192.168.1.127"));
    CHECK(!rtm_cidr_match(list, n, "192.168.1.128"));
    CHECK(rtm_cidr_match(list, n, "::ffff:10.0.0.1"));  /* IPv4-mapped: the same host */
    CHECK(!rtm_cidr_match(list, n, "::ffff:11.0.0.1"));
    CHECK(!rtm_cidr_match(list, n, "::10.0.0.1"));      /* IPv4-compatible form is not mapped */
    CHECK(!rtm_cidr_match(list, n, "fe80::ffff:a00:1")); /* the same last 32 bits elsewhere */
    CHECK(!rtm_cidr_match(list, n, "garbage"));
    trust("0.0.0.0/0", NULL);
    CHECK(rtm_cidr_match(list, n, "203.0.113.9"));
}

TEST(xff_only_from_trusted_peers)
{
    trust("127.0.0.1", NULL);
    CHECK_STR(client("127.0.0.1", "203.0.113.7"), "203.0.113.7");
    CHECK_STR(client("198.51.100.2", "203.0.113.7"), "198.51.100.2"); /* not a proxy: header ignored */
    CHECK_STR(client("127.0.0.1", NULL), "127.0.0.1");
    n = 0;
    CHECK_STR(client("127.0.0.1", "203.0.113.7"), "127.0.0.1"); /* nobody trusted */
}

TEST(xff_rightmost_untrusted_hop)
{
    trust("127.0.0.1", "10.0.0.0/8");
    /* the client wrote the leftmost part: only what trusted hops appended counts */
    CHECK_STR(client("127.0.0.1", "1.2.3.4, 203.0.113.7"), "203.0.113.7");
    CHECK_STR(client("127.0.0.1", "203.0.113.7, 10.1.2.3"), "203.0.113.7");
    CHECK_STR(client("127.0.0.1", " 2001:db8::5 ,10.1.2.3 "), "2001:db8::5");
    CHECK_STR(client("127.0.0.1", "10.9.9.9, 10.1.2.3"), "10.9.9.9"); /* every hop trusted: the first */
}

TEST(xff_malformed_falls_back_to_the_peer)
{
    trust("127.0.0.1", NULL);
    CHECK_STR(client("127.0.0.1", "not-an-ip"), "127.0.0.1");
    CHECK_STR(client("127.0.0.1", "203.0.113.7,,"), "127.0.0.1");
    CHECK_STR(client("127.0.0.1", ""), "127.0.0.1");
    CHECK_STR(client("127.0.0.1", "203.0.113.7:4444"), "127.0.0.1");
    char longhop[200];
    memset(longhop, '1', sizeof longhop - 1);
    longhop[sizeof longhop - 1] = '\0';
    CHECK_STR(client("127.0.0.1", longhop), "127.0.0.1");
}

int main(void) { return RUN_TESTS(); }
