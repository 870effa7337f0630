/* test_broker_htab.c: the broker's open-addressing hash table (broker/htab.c)
 * against a plain array as the reference: random inserts, replaces and
 * deletes, with both key kinds, through growth and shrinking. The module is
 * compiled in here (the broker is not part of librtm). */
#include "../../broker/htab.c"

#include "testlib.h"

#include <stdlib.h>

#define N 4000

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

TEST(empty_table_costs_nothing)
{
    struct htab t;
    htab_init(&t, HTAB_STR);
    CHECK(t.slots == NULL);
    CHECK(htab_get(&t, "x") == NULL);
    CHECK(htab_del(&t, "x") == NULL);
    CHECK(htab_put(&t, "x", &t) == 0);
    CHECK(htab_get(&t, "x") == &t);
    CHECK(htab_del(&t, "x") == &t);
    CHECK(t.n == 0 && t.slots == NULL); /* released when it empties */
    htab_free(&t);
}

TEST(string_keys_match_a_reference_under_random_churn)
{
    static char keys[N][16];
    static void *ref[N];
    struct htab t;
    htab_init(&t, HTAB_STR);
    for (int i = 0; i < N; i++) snprintf(keys[i], sizeof keys[i], "k%d", i);
    uint32_t live = 0;
    for (int step = 0; step < 200000; step++) {
        int i = (int)(next_rand() % N);
        switch (next_rand() % 3) {
        case 0:
        case 1: { /* insert or replace */
            void *v = (void *)(uintptr_t)(step + 1);
            if (!ref[i]) live++;
            CHECK(htab_put(&t, keys[i], v) == 0);
            ref[i] = v;
            break;
        }
        default:
            CHECK(htab_del(&t, keys[i]) == ref[i]);
            if (ref[i]) live--;
            ref[i] = NULL;
        }
        if (step % 9973 == 0) {
            for (int k = 0; k < N; k++) CHECK(htab_get(&t, keys[k]) == ref[k]);
            CHECK(t.n == live);
            CHECK(t.cap == 0 || t.n * 4 <= t.cap * 3);
        }
    }
    /* a key equal by content, not by pointer, finds the entry */
    char copy[16];
    for (int k = 0; k < N; k++) {
        memcpy(copy, keys[k], sizeof copy);
        CHECK(htab_get(&t, copy) == ref[k]);
    }
    uint32_t seen = 0;
    for (uint32_t s = 0; s < t.cap; s++) seen += t.slots[s].key != NULL;
    CHECK(seen == live);
    for (int k = 0; k < N; k++) htab_del(&t, keys[k]);
    CHECK(t.n == 0 && t.slots == NULL);
    htab_free(&t);
}

TEST(pointer_keys_compare_by_address_and_shrink)
{
    static int objs[N];
    struct htab t;
    htab_init(&t, HTAB_PTR);
    for (int i = 0; i < N; i++) CHECK(htab_put(&t, &objs[i], (void *)(intptr_t)(i + 1)) == 0);
    CHECK(t.n == N);
    uint32_t big = t.cap;
    for (int i = 0; i < N; i++) CHECK(htab_get(&t, &objs[i]) == (void *)(intptr_t)(i + 1));
    for (int i = 0; i < N - 10; i++) CHECK(htab_del(&t, &objs[i]) == (void *)(intptr_t)(i + 1));
    CHECK(t.n == 10);
    CHECK(t.cap < big); /* shrank */
    for (int i = N - 10; i < N; i++) CHECK(htab_get(&t, &objs[i]) == (void *)(intptr_t)(i + 1));
    for (int i = 0; i < N - 10; i++) CHECK(htab_get(&t, &objs[i]) == NULL);
    htab_free(&t);
}

int main(void) { return RUN_TESTS(); }
