/* retention.c: the session rows' retention (session-retention-days).
 *
 * Every connection adds a row (a publishable-key page adds one per visit),
 * so the table is pruned in the background: a timer deletes closed rows of
 * sessions that connected before the retention bound, oldest first, one
 * batch of PRUNE_BATCH rows per run (an index search: the loop is held for a
 * batch, never for the table; measured 50-140 ms wall for 2,000 rows of a
 * 500,000-row sqlite table at load average 10, each row touching four
 * indexes, hence 250). A full batch brings the next run after PRUNE_BUSY_MS
 * instead of PRUNE_EVERY_MS, so a backlog drains at up to 2,500 rows a
 * second in slices of a few milliseconds. The first run is PRUNE_FIRST_MS
 * after start. Loop thread only; when the session rows move
 * to a writer thread, this moves with them. */
#include "internal.h"

#include "errors.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define PRUNE_FIRST_MS 1000
#define PRUNE_EVERY_MS 60000
#define PRUNE_BUSY_MS 100
#define PRUNE_BATCH 250

static void prune_cb(struct rtm_timer *t)
{
    struct brk_broker *b = lws_container_of(t, struct brk_broker, retention_t);
    int64_t bound = rtm_now_ms() - (int64_t)b->cfg->session_retention_days * 86400 * 1000;
    int n = rtm_store_sessions_prune(b->srv->store, bound, PRUNE_BATCH);
    if (n < 0) log_error("broker: pruning session rows failed: %s", rtm_err_str(n));
    else b->pruned += n;
    int full = n == PRUNE_BATCH;
    if (!full && b->pruned) { /* one line per backlog, when it is gone */
        log_info("broker: pruned %lld session rows older than %d days", (long long)b->pruned,
                 b->cfg->session_retention_days);
        b->pruned = 0;
    }
    rtm_timer_in(b->timers, &b->retention_t, prune_cb, full ? PRUNE_BUSY_MS : PRUNE_EVERY_MS);
}

void retention_start(struct brk_broker *b)
{
    rtm_timer_in(b->timers, &b->retention_t, prune_cb, PRUNE_FIRST_MS);
}

void retention_stop(struct brk_broker *b) { rtm_timer_cancel(b->timers, &b->retention_t); }
