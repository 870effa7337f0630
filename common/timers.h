/* timers.h: one timer structure for many deadlines (a binary min-heap).
 *
 * Every session timer of the broker (liveness, expiry, token_expiring,
 * resume window, read resume, held places) and the broker's own (presence
 * flush, row flush, IP pruning) is a struct rtm_timer embedded in its owner
 * and kept in one rtm_timers heap; the event loop runs one native timer for
 * the earliest deadline only. Insert and cancel cost O(log n), whatever the
 * number of armed timers (lws's sorted list costs O(n) per insert).
 *
 *   struct rtm_timer    one per purpose per owner, embedded (no allocation);
 *                       zeroed = not armed
 *   struct rtm_timers   one per event loop, owned by the loop's module
 *
 * Deadlines are monotonic milliseconds (rtm_mono_ms()). A timer armed from
 * inside a callback for "now or earlier" runs on the next rtm_timers_run,
 * never in the one that is running, so a timer that re-arms itself at 0 ms
 * cannot starve the loop. Callbacks may arm and cancel any timer, their own
 * included. Single-threaded: the loop's thread only. */
#ifndef RTM_TIMERS_H
#define RTM_TIMERS_H

#include <stdint.h>

struct rtm_timer;
typedef void (*rtm_timer_cb)(struct rtm_timer *t);

struct rtm_timer {
    int64_t due_ms;
    rtm_timer_cb cb;
    uint32_t slot; /* heap index + 1; 0 = not armed */
};

struct rtm_timers {
    struct rtm_timer **heap;
    uint32_t n, cap;
    int64_t running_ms; /* rtm_timers_run's "now" while it runs, else INT64_MIN */
    /* Told when the earliest deadline becomes earlier than what the loop was
     * last told (the loop then moves its one native timer); may be NULL. */
    void (*wake)(void *arg, int64_t due_ms);
    void *wake_arg;
    int64_t told_ms; /* the deadline last passed to wake (INT64_MAX: none) */
};

void rtm_timers_init(struct rtm_timers *ts, void (*wake)(void *arg, int64_t due_ms), void *arg);
/* Frees the heap; armed timers are forgotten (their slot is reset). */
void rtm_timers_free(struct rtm_timers *ts);

/* Arms (or re-arms) t to call cb at due_ms (monotonic). 0, or RTM_ENOMEM
 * (t is then not armed; logged). The heap grows by doubling and shrinks
 * back when it empties (past a small size), so it follows the number of armed timers. */
int rtm_timer_at(struct rtm_timers *ts, struct rtm_timer *t, rtm_timer_cb cb, int64_t due_ms);
/* The same, in_ms from now (negative counts as 0). */
int rtm_timer_in(struct rtm_timers *ts, struct rtm_timer *t, rtm_timer_cb cb, int64_t in_ms);
/* Disarms t if armed. Safe on a zeroed or already-fired timer. */
void rtm_timer_cancel(struct rtm_timers *ts, struct rtm_timer *t);
static inline int rtm_timer_armed(const struct rtm_timer *t) { return t->slot != 0; }

/* Runs every timer due at or before now (each disarmed before its callback).
 * Returns how many ran. */
int rtm_timers_run(struct rtm_timers *ts, int64_t now_ms);
/* The earliest deadline, or INT64_MAX when none is armed. */
int64_t rtm_timers_next(const struct rtm_timers *ts);

#endif
