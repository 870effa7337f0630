/* test_ipcount.c: per-address counts: an entry exists exactly while its
 * address holds something, and counts stay apart per address. */
#include "ipcount.h"
#include "testlib.h"

TEST(counts_per_address_and_frees_at_zero)
{
    struct htab t;
    htab_init(&t, HTAB_STR);
    CHECK(rtm_ipcount_get(&t, "192.0.2.1") == 0);
    struct rtm_ipcount *a = rtm_ipcount_add(&t, "192.0.2.1");
    struct rtm_ipcount *a2 = rtm_ipcount_add(&t, "192.0.2.1");
    struct rtm_ipcount *b = rtm_ipcount_add(&t, "2001:db8::1");
    CHECK(a && a == a2 && b && b != a);
    CHECK(rtm_ipcount_get(&t, "192.0.2.1") == 2);
    CHECK(rtm_ipcount_get(&t, "2001:db8::1") == 1);
    CHECK(t.n == 2);
    rtm_ipcount_drop(&t, a);
    CHECK(rtm_ipcount_get(&t, "192.0.2.1") == 1 && t.n == 2);
    rtm_ipcount_drop(&t, a);
    CHECK(rtm_ipcount_get(&t, "192.0.2.1") == 0 && htab_get(&t, "192.0.2.1") == NULL && t.n == 1);
    /* counted again after reaching zero: a fresh entry */
    CHECK(rtm_ipcount_add(&t, "192.0.2.1") != NULL && rtm_ipcount_get(&t, "192.0.2.1") == 1);
    rtm_ipcount_free(&t); /* valgrind: the two live entries go with the table */
    CHECK(t.slots == NULL && t.n == 0);
}

int main(void) { return RUN_TESTS(); }
