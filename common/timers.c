/* timers.c: the binary min-heap behind timers.h.
 *
 * Each armed timer records its heap index, so cancel and re-arm remove it
 * in O(log n) without a search. Ties keep no particular order. The loop is
 * told only when a deadline earlier than the one it already knows appears;
 * a native timer that fires early (its deadline was cancelled) just runs
 * nothing and is moved to the new earliest. */
#include "timers.h"

#include "errors.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>

#define HEAP_KEEP 64 /* slots kept when the heap empties */

void rtm_timers_init(struct rtm_timers *ts, void (*wake)(void *arg, int64_t due_ms), void *arg)
{
    ts->heap = NULL;
    ts->n = ts->cap = 0;
    ts->running_ms = INT64_MIN;
    ts->wake = wake;
    ts->wake_arg = arg;
    ts->told_ms = INT64_MAX;
}

void rtm_timers_free(struct rtm_timers *ts)
{
    for (uint32_t i = 0; i < ts->n; i++) ts->heap[i]->slot = 0;
    free(ts->heap);
    ts->heap = NULL;
    ts->n = ts->cap = 0;
}

static void place(struct rtm_timers *ts, uint32_t i, struct rtm_timer *t)
{
    ts->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(struct rtm_timers *ts, uint32_t i)
{
    struct rtm_timer *t = ts->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (ts->heap[parent]->due_ms <= t->due_ms) break;
        place(ts, i, ts->heap[parent]);
        i = parent;
    }
    place(ts, i, t);
}

static void sift_down(struct rtm_timers *ts, uint32_t i)
{
    struct rtm_timer *t = ts->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= ts->n) break;
        if (c + 1 < ts->n && ts->heap[c + 1]->due_ms < ts->heap[c]->due_ms) c++;
        if (t->due_ms <= ts->heap[c]->due_ms) break;
        place(ts, i, ts->heap[c]);
        i = c;
    }
    place(ts, i, t);
}

static void remove_at(struct rtm_timers *ts, uint32_t i)
{
    ts->heap[i]->slot = 0;
    struct rtm_timer *last = ts->heap[--ts->n];
    if (i < ts->n) {
        place(ts, i, last);
        if (i > 0 && ts->heap[(i - 1) / 2]->due_ms > last->due_ms) sift_up(ts, i);
        else sift_down(ts, i);
    }
    if (ts->n == 0 && ts->cap > HEAP_KEEP) {
        /* After a burst, an idle loop keeps only a small heap. */
        free(ts->heap);
        ts->heap = NULL;
        ts->cap = 0;
    }
}

static void tell_loop(struct rtm_timers *ts)
{
    /* While callbacks run, the runner tells the loop once at the end. */
    if (!ts->wake || ts->running_ms != INT64_MIN || !ts->n) return;
    int64_t first = ts->heap[0]->due_ms;
    if (first >= ts->told_ms) return;
    ts->told_ms = first;
    ts->wake(ts->wake_arg, first);
}

int rtm_timer_at(struct rtm_timers *ts, struct rtm_timer *t, rtm_timer_cb cb, int64_t due_ms)
{
    if (ts->running_ms != INT64_MIN && due_ms <= ts->running_ms) due_ms = ts->running_ms + 1;
    t->cb = cb;
    if (t->slot) {
        uint32_t i = t->slot - 1;
        int64_t old = t->due_ms;
        t->due_ms = due_ms;
        if (due_ms < old) sift_up(ts, i);
        else sift_down(ts, i);
        tell_loop(ts);
        return 0;
    }
    if (ts->n == ts->cap) {
        uint32_t cap = ts->cap ? ts->cap * 2 : HEAP_KEEP;
        struct rtm_timer **h = realloc(ts->heap, cap * sizeof *h);
        if (!h) {
            log_error("timers: out of memory growing the heap to %u timers", cap);
            return RTM_ENOMEM;
        }
        ts->heap = h;
        ts->cap = cap;
    }
    t->due_ms = due_ms;
    ts->heap[ts->n] = t;
    sift_up(ts, ts->n++);
    tell_loop(ts);
    return 0;
}

int rtm_timer_in(struct rtm_timers *ts, struct rtm_timer *t, rtm_timer_cb cb, int64_t in_ms)
{
    return rtm_timer_at(ts, t, cb, rtm_mono_ms() + (in_ms > 0 ? in_ms : 0));
}

void rtm_timer_cancel(struct rtm_timers *ts, struct rtm_timer *t)
{
    if (t->slot) remove_at(ts, t->slot - 1);
}

int rtm_timers_run(struct rtm_timers *ts, int64_t now_ms)
{
    int ran = 0;
    int64_t outer = ts->running_ms; /* a run from inside a callback is a no-op */
    if (outer != INT64_MIN) return 0;
    ts->running_ms = now_ms;
    while (ts->n && ts->heap[0]->due_ms <= now_ms) {
        struct rtm_timer *t = ts->heap[0];
        remove_at(ts, 0);
        t->cb(t);
        ran++;
    }
    ts->running_ms = INT64_MIN;
    ts->told_ms = INT64_MAX; /* the loop's timer fired or is stale: tell it afresh */
    tell_loop(ts);
    return ran;
}

int64_t rtm_timers_next(const struct rtm_timers *ts) { return ts->n ? ts->heap[0]->due_ms : INT64_MAX; }
