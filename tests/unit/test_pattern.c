/* test_pattern.c: channel pattern matching and the inclusion check used to
 * keep a token's channels inside its key's. */
#include "pattern.h"
#include "testlib.h"

#define M(p, c) rtm_pattern_match((p), (c))
#define W(inner, outer) rtm_pattern_within((inner), (outer))

TEST(literal)
{
    CHECK(M("room/1", "room/1"));
    CHECK(!M("room/1", "room/2"));
    CHECK(!M("room/1", "room/10"));
    CHECK(!M("room/10", "room/1"));
    CHECK(!M("room", "room/1"));
}

TEST(star_stays_in_one_segment)
{
    CHECK(M("*", "lobby"));
    CHECK(!M("*", "a/b"));
    CHECK(M("room/*", "room/42"));
    CHECK(!M("room/*", "room/42/x"));
    CHECK(!M("room/*", "room"));
    CHECK(M("room-*", "room-42"));
    CHECK(M("room-*", "room-"));
    CHECK(!M("room-*", "room-4/x"));
    CHECK(!M("room-*", "roomx"));
    CHECK(M("*/chat", "a/chat"));
    CHECK(!M("*/chat", "a/b/chat"));
    CHECK(M("a*b*c", "aXXbYYc"));
    CHECK(!M("a*b*c", "aXXbYY/c"));
}

TEST(globstar_crosses_segments)
{
    CHECK(M("**", "a"));
    CHECK(M("**", "a/b/c"));
    CHECK(M("room/**", "room/1"));
    CHECK(M("room/**", "room/1/2/3"));
    CHECK(!M("room/**", "room"));
    CHECK(!M("room/**", "lobby/1"));
    CHECK(M("a/**/b", "a/x/b"));
    CHECK(M("a/**/b", "a/x/y/z/b"));
    CHECK(!M("a/**/b", "a/x/c"));
    /* '**' is a run of characters, so the two slashes around it stay. */
    CHECK(!M("a/**/b", "a/b"));
    CHECK(M("***", "a/b")); /* three stars are a globstar */
}

TEST(edge_cases)
{
    CHECK(!M("", "a"));
    CHECK(M("", ""));
    CHECK(M("a/", "a/"));
    CHECK(!M("a/", "a"));
    CHECK(!M("a", "a/"));
    /* A star in a channel name is just a byte. */
    CHECK(M("room/*", "room/*"));
    CHECK(!M("room/x", "room/*"));
    CHECK(!M(NULL, "a"));
    CHECK(!M("a", NULL));
}

TEST(long_inputs_bounded)
{
    char p[2000], c[2000];
    memset(p, '*', sizeof p - 1);
    p[sizeof p - 1] = '\0';
    memset(c, 'a', sizeof c - 1);
    c[sizeof c - 1] = '\0';
    CHECK(!M(p, c)); /* over the 1024-byte bound: never matches */
    /* Many alternating stars against a long near-miss: the DP stays linear-ish. */
    char q[600], d[300];
    for (int i = 0; i < 599; i++) q[i] = (i % 2) ? '*' : 'a';
    q[599] = '\0';
    memset(d, 'a', 299);
    d[299] = '\0';
    CHECK(!M(q, d)); /* needs 300 'a's, has 299 */
    d[298] = 'b';
    CHECK(!M(q, d));
}

TEST(match_any)
{
    char *pats[] = {"room/*", "dm/**"};
    CHECK(rtm_pattern_match_any(pats, 2, "room/1"));
    CHECK(rtm_pattern_match_any(pats, 2, "dm/a/b"));
    CHECK(!rtm_pattern_match_any(pats, 2, "lobby"));
    CHECK(!rtm_pattern_match_any(pats, 0, "room/1"));
}

TEST(within)
{
    CHECK(W("room/1", "room/*"));
    CHECK(W("room/*", "room/*"));
    CHECK(W("room/*", "room/**"));
    CHECK(W("room/**", "room/**"));
    CHECK(W("room/a/**", "room/**"));
    CHECK(W("room/*/x", "room/**"));
    CHECK(W("anything/**", "**"));
    CHECK(W("*", "**"));
    CHECK(W("room-*", "room-*"));
    CHECK(W("room-1*", "room-*"));
    CHECK(W("room-*", "room*"));
    CHECK(W("a*b", "a*"));
    /* Wider inner: never inside. */
    CHECK(!W("room/**", "room/*"));
    CHECK(!W("**", "*"));
    CHECK(!W("room/*", "room/1"));
    CHECK(!W("room*", "room-*"));
    CHECK(!W("lobby/*", "room/**"));
    CHECK(!W("room", "room/**"));
    CHECK(!W("room/**", "room/*/**"));  /* room/x would escape */
    CHECK(W("room/*/**", "room/**"));
    CHECK(!W("a/**/b", "a/*/b"));
    CHECK(W("a/*/b", "a/**/b"));
    CHECK(W("", "**")); /* "**" also matches the empty run */
    CHECK(W("", ""));
    CHECK(!W("a", ""));
    CHECK(!W("*", "a"));
}

int main(void) { return RUN_TESTS(); }
