/* test_cluster_wire.c: the cluster's names, shard choice and node-to-node
 * message codec (cluster/wire.c, compiled in here: the cluster is not part
 * of librtm). */
#include "../../cluster/wire.c"

#include "testlib.h"

#include <stdlib.h>

TEST(channel_names_are_unambiguous_whatever_the_app_holds)
{
    char a[CLU_NAME_MAX], b[CLU_NAME_MAX];
    CHECK(clu_channel_name(a, sizeof a, "test", "room-1") > 0);
    CHECK_STR(a, "rtm:c:4:test:room-1");
    /* "a:b" + "c" and "a" + "b:c" would collide without the length */
    clu_channel_name(a, sizeof a, "a:b", "c");
    clu_channel_name(b, sizeof b, "a", "b:c");
    CHECK(strcmp(a, b) != 0);
    CHECK(clu_channel_name(a, 8, "test", "room") == -1);
    CHECK(clu_node_name(a, sizeof a, "host:8080") > 0);
    CHECK_STR(a, "rtm:n:host:8080");
}

TEST(presence_names_share_the_channel_names_suffix)
{
    /* The presence scripts derive the channel's Redis channel (and rtm:pc:)
     * from the hash's name by swapping the prefix (xnode.h XPR_LUA). */
    char c[CLU_NAME_MAX], p[CLU_NAME_MAX];
    CHECK(clu_presence_name(p, sizeof p, "a:b", "room:1") > 0);
    CHECK_STR(p, "rtm:pr:3:a:b:room:1");
    clu_channel_name(c, sizeof c, "a:b", "room:1");
    CHECK_STR(p + 7, c + 6);
    CHECK(clu_presence_name(p, 9, "test", "room") == -1);
}

TEST(shards_are_stable_in_range_and_move_little_when_one_is_added)
{
    char name[64];
    int counts[4] = {0}, moved = 0;
    for (int i = 0; i < 4000; i++) {
        int n = snprintf(name, sizeof name, "rtm:c:4:test:ch-%d", i);
        int s3 = clu_shard_of(name, (size_t)n, 3), s4 = clu_shard_of(name, (size_t)n, 4);
        CHECK(s3 >= 0 && s3 < 3);
        CHECK(s4 >= 0 && s4 < 4);
        CHECK(clu_shard_of(name, (size_t)n, 3) == s3); /* same answer every time */
        CHECK(clu_shard_of(name, (size_t)n, 1) == 0);
        counts[s4]++;
        if (s3 != s4) {
            moved++;
            CHECK(s4 == 3); /* a name only ever moves to the new shard */
        }
    }
    for (int s = 0; s < 4; s++) CHECK(counts[s] > 800 && counts[s] < 1200);
    CHECK(moved > 800 && moved < 1200); /* about 1/4 */
}

TEST(messages_round_trip_with_any_bytes_in_any_field)
{
    const char *f[CLU_FIELDS] = {"node:1", "ses_ab", "app", "ch \n 1", "alice", "", "{\"x\":[1,2]}\n\0z"};
    size_t n[CLU_FIELDS] = {6, 6, 3, 6, 5, 0, 15};
    size_t len;
    char *buf = clu_encode(CLU_PUBLISH, f, n, &len);
    CHECK(buf != NULL);
    struct clu_msg m;
    CHECK(clu_decode(buf, len, &m) == 0);
    CHECK(m.kind == CLU_PUBLISH);
    for (int i = 0; i < CLU_FIELDS; i++) {
        CHECK(m.n[i] == n[i]);
        CHECK(memcmp(m.f[i], f[i], n[i]) == 0);
    }
    /* every truncation and one extra byte are refused */
    for (size_t cut = 0; cut < len; cut++) CHECK(clu_decode(buf, cut, &m) == -1);
    char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 'x';
    CHECK(clu_decode(longer, len + 1, &m) == -1);
    free(longer);
    free(buf);
}

TEST(malformed_headers_are_refused)
{
    struct clu_msg m;
    const char *bad[] = {
        "",
        "rtm2 p 0 0 0 0 0 0 0\n",
        "rtm1 p 0 0 0 0 0 0\n",            /* a field short */
        "rtm1 p 0 0 0 0 0 0 0 0\n",        /* a field too many */
        "rtm1 p 0 0 0 0 0 0 x\n",
        "rtm1 p 0 0 0 0 0 0 99999999999999999999999\n",
        "rtm1 p 0 0 0 0 0 0 1\n",          /* says 1 byte, has none */
        "rtm1 p 0 0 0 0 0 0 0",            /* no newline */
        "rtm1 p  0 0 0 0 0 0 0\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(clu_decode(bad[i], strlen(bad[i]), &m) == -1);
    const char *ok = "rtm1 p 0 0 0 0 0 0 2\n{}";
    CHECK(clu_decode(ok, strlen(ok), &m) == 0);
    CHECK(m.n[CLU_F_DATA] == 2 && memcmp(m.f[CLU_F_DATA], "{}", 2) == 0);
}

int main(void) { return RUN_TESTS(); }
