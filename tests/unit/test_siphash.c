/* test_siphash.c: common/siphash.c against the SipHash paper's test vectors
 * (key 00..0f, messages 00, 00 01, ..., 00..0e; outputs little-endian). */
#include "siphash.h"
#include "testlib.h"

static uint8_t key[16], msg[64];

static void setup(void)
{
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
}

TEST(paper_vectors)
{
    setup();
    CHECK(rtm_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);  /* the empty message */
    CHECK(rtm_siphash24(key, msg, 1) == 0x74f839c593dc67fdULL);
    CHECK(rtm_siphash24(key, msg, 8) == 0x93f5f5799a932462ULL);  /* one full word */
    CHECK(rtm_siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL); /* the paper's worked example */
}

TEST(the_key_matters)
{
    setup();
    uint8_t other[16] = {0};
    CHECK(rtm_siphash24(key, "room/1", 6) != rtm_siphash24(other, "room/1", 6));
    CHECK(rtm_siphash24(key, "room/1", 6) == rtm_siphash24(key, "room/1", 6));
    CHECK(rtm_siphash24(key, "room/1", 6) != rtm_siphash24(key, "room/2", 6));
}

int main(void) { return RUN_TESTS(); }
