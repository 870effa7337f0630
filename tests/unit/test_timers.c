/* test_timers.c: the timer heap (common/timers.c) against its contract:
 * order, cancel, re-arm, many due at once, far deadlines, arming and
 * cancelling from inside callbacks, the loop told only of earlier
 * deadlines, and a random churn checked against a brute-force reference. */
#include "testlib.h"
#include "timers.h"

#include <stdint.h>
#include <stdlib.h>

struct probe {
    struct rtm_timer t;
    int fired;
    int64_t fired_at; /* the deadline it had when it ran */
    int order;
};
static int fire_seq;

static void on_fire(struct rtm_timer *t)
{
    struct probe *p = (struct probe *)t;
    p->fired++;
    p->fired_at = t->due_ms;
    p->order = ++fire_seq;
}

static int64_t told[64];
static int n_told;
static void wake(void *arg, int64_t due)
{
    (void)arg;
    if (n_told < 64) told[n_told++] = due;
}

/* Checks the heap property and the recorded slots. */
static int heap_ok(const struct rtm_timers *ts)
{
    for (uint32_t i = 0; i < ts->n; i++) {
        if (ts->heap[i]->slot != i + 1) return 0;
        if (i && ts->heap[(i - 1) / 2]->due_ms > ts->heap[i]->due_ms) return 0;
    }
    return 1;
}

TEST(fires_in_deadline_order_and_only_when_due)
{
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    struct probe p[5] = {0};
    int64_t due[5] = {50, 10, 40, 20, 30};
    fire_seq = 0;
    for (int i = 0; i < 5; i++) CHECK(rtm_timer_at(&ts, &p[i].t, on_fire, due[i]) == 0);
    CHECK(heap_ok(&ts));
    CHECK(rtm_timers_next(&ts) == 10);
    CHECK(rtm_timers_run(&ts, 9) == 0);
    CHECK(rtm_timers_run(&ts, 30) == 3);
    CHECK(p[1].order == 1 && p[3].order == 2 && p[4].order == 3);
    CHECK(!rtm_timer_armed(&p[1].t) && rtm_timer_armed(&p[0].t));
    CHECK(rtm_timers_run(&ts, 1000) == 2);
    CHECK(p[2].order == 4 && p[0].order == 5);
    CHECK(ts.n == 0 && rtm_timers_next(&ts) == INT64_MAX);
    for (int i = 0; i < 5; i++) CHECK(p[i].fired == 1);
    rtm_timers_free(&ts);
}

TEST(cancel_disarms_and_is_safe_twice_or_unarmed)
{
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    struct probe a = {0}, b = {0}, c = {0}, never = {0};
    rtm_timer_at(&ts, &a.t, on_fire, 10);
    rtm_timer_at(&ts, &b.t, on_fire, 20);
    rtm_timer_at(&ts, &c.t, on_fire, 30);
    rtm_timer_cancel(&ts, &a.t); /* the earliest */
    rtm_timer_cancel(&ts, &a.t);
    rtm_timer_cancel(&ts, &never.t);
    CHECK(ts.n == 2 && heap_ok(&ts));
    CHECK(rtm_timers_next(&ts) == 20);
    rtm_timer_cancel(&ts, &c.t); /* the last */
    CHECK(rtm_timers_run(&ts, 100) == 1);
    CHECK(a.fired == 0 && b.fired == 1 && c.fired == 0);
    rtm_timers_free(&ts);
}

TEST(rearm_moves_the_deadline_either_way)
{
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    struct probe a = {0}, b = {0};
    rtm_timer_at(&ts, &a.t, on_fire, 100);
    rtm_timer_at(&ts, &b.t, on_fire, 50);
    rtm_timer_at(&ts, &a.t, on_fire, 10); /* earlier */
    CHECK(ts.n == 2 && rtm_timers_next(&ts) == 10);
    rtm_timer_at(&ts, &a.t, on_fire, 500); /* later */
    CHECK(ts.n == 2 && rtm_timers_next(&ts) == 50 && heap_ok(&ts));
    CHECK(rtm_timers_run(&ts, 100) == 1 && b.fired == 1 && a.fired == 0);
    CHECK(rtm_timers_run(&ts, 500) == 1 && a.fired == 1 && a.fired_at == 500);
    rtm_timers_free(&ts);
}

TEST(many_due_at_once_all_run_in_one_pass)
{
    enum { N = 20000 };
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    struct probe *p = calloc(N, sizeof *p);
    for (int i = 0; i < N; i++) CHECK(rtm_timer_at(&ts, &p[i].t, on_fire, 1000 + (i % 7)) == 0);
    CHECK(heap_ok(&ts));
    CHECK(rtm_timers_run(&ts, 1006) == N);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= p[i].fired == 1;
    CHECK(ok && ts.n == 0);
    CHECK(ts.heap == NULL); /* a burst's heap is released once it empties */
    free(p);
    rtm_timers_free(&ts);
}

TEST(far_deadlines_do_not_overflow_or_fire_early)
{
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    struct probe far = {0}, farther = {0}, near = {0};
    int64_t year = 365LL * 24 * 3600 * 1000;
    rtm_timer_at(&ts, &far.t, on_fire, 100 * year);
    rtm_timer_at(&ts, &farther.t, on_fire, INT64_MAX - 1);
    rtm_timer_in(&ts, &near.t, on_fire, 5);
    CHECK(rtm_timers_next(&ts) == near.t.due_ms);
    CHECK(rtm_timers_run(&ts, 50 * year) == 1 && near.fired == 1 && far.fired == 0);
    CHECK(rtm_timers_run(&ts, 100 * year) == 1 && far.fired == 1 && farther.fired == 0);
    CHECK(rtm_timers_run(&ts, INT64_MAX - 1) == 1 && farther.fired == 1);
    rtm_timers_free(&ts);
}

/* ---- callbacks that arm and cancel ---- */

static struct rtm_timers *cb_ts;
static struct probe *victim;
static int self_count;

static void cancel_other(struct rtm_timer *t)
{
    on_fire(t);
    rtm_timer_cancel(cb_ts, &victim->t);
}

static void rearm_self_now(struct rtm_timer *t)
{
    self_count++;
    rtm_timer_at(cb_ts, t, rearm_self_now, 0); /* "now": must wait for the next run */
}

static void cancel_self(struct rtm_timer *t)
{
    self_count++;
    rtm_timer_cancel(cb_ts, t); /* already disarmed: a no-op */
}

TEST(a_callback_may_cancel_a_timer_due_in_the_same_pass)
{
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    cb_ts = &ts;
    struct probe a = {0}, b = {0}, c = {0};
    victim = &b;
    rtm_timer_at(&ts, &a.t, cancel_other, 10);
    rtm_timer_at(&ts, &b.t, on_fire, 11);
    rtm_timer_at(&ts, &c.t, on_fire, 12);
    CHECK(rtm_timers_run(&ts, 20) == 2);
    CHECK(a.fired == 1 && b.fired == 0 && c.fired == 1 && ts.n == 0);
    rtm_timers_free(&ts);
}

TEST(a_callback_rearming_itself_at_zero_does_not_starve_the_loop)
{
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    cb_ts = &ts;
    self_count = 0;
    struct rtm_timer t = {0};
    rtm_timer_at(&ts, &t, rearm_self_now, 10);
    CHECK(rtm_timers_run(&ts, 10) == 1 && self_count == 1);
    CHECK(rtm_timer_armed(&t) && t.due_ms == 11);
    CHECK(rtm_timers_run(&ts, 11) == 1 && self_count == 2);
    rtm_timer_cancel(&ts, &t);
    struct rtm_timer u = {0};
    rtm_timer_at(&ts, &u, cancel_self, 5);
    CHECK(rtm_timers_run(&ts, 5) == 1 && self_count == 3 && ts.n == 0);
    rtm_timers_free(&ts);
}

TEST(the_loop_is_told_only_of_an_earlier_deadline)
{
    struct rtm_timers ts;
    n_told = 0;
    rtm_timers_init(&ts, wake, NULL);
    struct probe a = {0}, b = {0}, c = {0};
    rtm_timer_at(&ts, &a.t, on_fire, 100);
    rtm_timer_at(&ts, &b.t, on_fire, 200); /* later: the loop already wakes at 100 */
    rtm_timer_at(&ts, &c.t, on_fire, 50);
    CHECK(n_told == 2 && told[0] == 100 && told[1] == 50);
    rtm_timer_cancel(&ts, &c.t); /* the loop wakes early at 50 and runs nothing */
    CHECK(n_told == 2);
    CHECK(rtm_timers_run(&ts, 50) == 0);
    CHECK(n_told == 3 && told[2] == 100); /* after a run, the loop learns the new earliest */
    CHECK(rtm_timers_run(&ts, 100) == 1);
    CHECK(n_told == 4 && told[3] == 200);
    CHECK(rtm_timers_run(&ts, 200) == 1 && n_told == 4); /* nothing left: not told */
    rtm_timers_free(&ts);
}

static uint32_t rng = 99;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

TEST(random_churn_matches_a_reference)
{
    enum { N = 3000, STEPS = 200000 };
    struct rtm_timers ts;
    rtm_timers_init(&ts, NULL, NULL);
    struct probe *p = calloc(N, sizeof *p);
    int64_t *ref = malloc(N * sizeof *ref); /* deadline, or -1 when not armed */
    for (int i = 0; i < N; i++) ref[i] = -1;
    int64_t now = 0;
    int bad = 0;
    for (int step = 0; step < STEPS; step++) {
        uint32_t r = next_rand();
        int i = (int)(r % N);
        switch ((r >> 16) % 4) {
        case 0:
        case 1: {
            int64_t due = now + (int64_t)(next_rand() % 5000);
            rtm_timer_at(&ts, &p[i].t, on_fire, due);
            ref[i] = due;
            break;
        }
        case 2:
            rtm_timer_cancel(&ts, &p[i].t);
            ref[i] = -1;
            break;
        default: {
            now += next_rand() % 50;
            int want = 0;
            for (int k = 0; k < N; k++) {
                p[k].fired = 0;
                if (ref[k] >= 0 && ref[k] <= now) want++;
            }
            int got = rtm_timers_run(&ts, now);
            for (int k = 0; k < N; k++) {
                int due = ref[k] >= 0 && ref[k] <= now;
                if (p[k].fired != due) bad++;
                if (due) ref[k] = -1;
            }
            if (got != want) bad++;
        }
        }
    }
    uint32_t armed = 0;
    for (int k = 0; k < N; k++) armed += ref[k] >= 0 && rtm_timer_armed(&p[k].t);
    CHECK(bad == 0);
    CHECK(armed == ts.n && heap_ok(&ts));
    rtm_timers_free(&ts); /* it clears each armed timer's slot: before the timers go */
    free(p);
    free(ref);
}

int main(void) { return RUN_TESTS(); }
