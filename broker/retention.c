/* retention.c: the session rows' retention (session-retention-days).
 *
 * Every connection adds a row (a publishable-key page adds one per visit),
 * so the table is pruned in the background: a timer deletes closed rows of
 * sessions that connected before the retention bound, oldest first, in
 * batches of PRUNE_BATCH rows (an index search each: the loop is held for a
 * batch, never for the table). A run stops after PRUNE_BATCHES full
 * batches and comes back after PRUNE_BUSY_MS instead of PRUNE_EVERY_MS, so a
 * large backlog drains steadily without stalling sessions. The first run is
 * PRUNE_FIRST_MS after start. Loop thread only; when the session rows move
 * to a writer thread, this moves with them. */
#include "internal.h"

#include "errors.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define PRUNE_FIRST_MS 1000
#define PRUNE_EVERY_MS 60000
#define PRUNE_BUSY_MS 1000
#define PRUNE_BATCH 2000
#define PRUNE_BATCHES 5

static void prune_cb(struct rtm_timer *t)
{
    struct brk_broker *b = lws_container_of(t, struct brk_broker, retention_t);
    int64_t bound = rtm_now_ms() - (int64_t)b->cfg->session_retention_days * 86400 * 1000;
    int total = 0, n = 0, full = 0;
    for (int i = 0; i < PRUNE_BATCHES; i++) {
        n = rtm_store_sessions_prune(b->srv->store, bound, PRUNE_BATCH);
        if (n < 0) {
            log_error("broker: pruning session rows failed: %s", rtm_err_str(n));
            break;
        }
        total += n;
        if (n < PRUNE_BATCH) break;
        full = i == PRUNE_BATCHES - 1;
    }
    if (total) log_info("broker: pruned %d session rows older than %d days%s", total, b->cfg->session_retention_days,
                        full ? " (more to go)" : "");
    rtm_timer_in(b->timers, &b->retention_t, prune_cb, full ? PRUNE_BUSY_MS : PRUNE_EVERY_MS);
}

void retention_start(struct brk_broker *b)
{
    rtm_timer_in(b->timers, &b->retention_t, prune_cb, PRUNE_FIRST_MS);
}

void retention_stop(struct brk_broker *b) { rtm_timer_cancel(b->timers, &b->retention_t); }
