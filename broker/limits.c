/* limits.c: the broker's protections that are about time: the per-connection
 * frame rate, the read pause, the abuse close (4011), the per-IP connect rate
 * at TCP accept, and liveness pings.
 *
 * Every limit is a config key (0 = off). Rates are token buckets refilled on
 * use, so an idle connection costs no timer; the timers that do exist are one
 * per session (liveness, read resume) and one per broker (IP table pruning). */
#include "internal.h"

#include "log.h"
#include "protocol.h"
#include "netaddr.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define HOT_WINDOWS 5          /* seconds over twice the rate before 4011 */
#define IP_TABLE_MAX 65536     /* remote addresses tracked per minute */
#define IP_WINDOW_MS 60000

/* ---- frame rate ---- */

static void resume_cb(struct rtm_timer *t)
{
    struct brk_session *s = lws_container_of(t, struct brk_session, rx_resume_t);
    if (s->rx_paused && s->wsi) {
        s->rx_paused = 0;
        lws_rx_flow_control(s->wsi, 1);
    }
}

static void pause_reading(struct brk_session *s, int64_t ms)
{
    if (s->rx_paused) return;
    if (ms < 10) ms = 10;
    s->rx_paused = 1;
    lws_rx_flow_control(s->wsi, 0);
    rtm_timer_in(s->b->timers, &s->rx_resume_t, resume_cb, ms);
}

/* Between the rate and twice the rate, frames are read and dropped (an
 * immediate drop buffers nothing). Past twice the rate in a one-second
 * window, reading stops until the window ends, so the backlog waits in the
 * client's socket; a connection that is back past twice the rate at once,
 * HOT_WINDOWS windows in a row, is closed with 4011. */
int limit_frame(struct brk_session *s)
{
    const struct rtm_config *cfg = s->b->cfg;
    int rate = cfg->rate_frames_per_second;
    if (rate <= 0) return 0;
    int64_t now = rtm_mono_ms();

    if (s->win_start_ms == 0) s->win_start_ms = now;
    if (now - s->win_start_ms >= 1000) {
        int64_t elapsed = now - s->win_start_ms;
        s->hot_windows = (elapsed < 2000 && s->win_frames > 2 * rate) ? s->hot_windows + 1 : 0;
        s->win_start_ms = now;
        s->win_frames = 0;
    }
    s->win_frames++;
    if (s->hot_windows >= HOT_WINDOWS && s->win_frames > 2 * rate) {
        log_warn("ws: closing abusive sender sid=%s peer=%s", s->sid, s->claims.sub);
        s->close_now = 1;
        sess_close(s, RTM_WIRE_SENDING_TOO_FAST, NULL);
        return 1;
    }
    if (s->win_frames > 2 * rate) pause_reading(s, s->win_start_ms + 1000 - now);

    double burst = cfg->rate_frames_burst > 0 ? cfg->rate_frames_burst : rate;
    if (s->rate_last_ms == 0) s->rate_tokens = burst;
    else s->rate_tokens += (double)(now - s->rate_last_ms) * rate / 1000.0;
    if (s->rate_tokens > burst) s->rate_tokens = burst;
    s->rate_last_ms = now;
    if (s->rate_tokens >= 1.0) {
        s->rate_tokens -= 1.0;
        return 0;
    }
    return 1;
}

/* ---- presence snapshots ---- */

int limit_snapshot(struct brk_session *s, uint32_t members, int64_t *wait_ms)
{
    int rate = s->b->cfg->presence_snapshot_members_per_second;
    if (rate <= 0) return 0;
    int64_t now = rtm_mono_ms();
    double full = rate;
    if (s->snap_last_ms == 0) s->snap_tokens = full;
    else s->snap_tokens += (double)(now - s->snap_last_ms) * rate / 1000.0;
    if (s->snap_tokens > full) s->snap_tokens = full;
    s->snap_last_ms = now;
    double cost = members ? members : 1;
    if (s->snap_tokens >= cost || s->snap_tokens >= full) {
        s->snap_tokens -= cost;
        return 0;
    }
    double need = (cost < full ? cost : full) - s->snap_tokens;
    *wait_ms = (int64_t)(need * 1000.0 / rate) + 1;
    return 1;
}

/* ---- liveness ---- */

static void live_cb(struct rtm_timer *t)
{
    struct brk_session *s = lws_container_of(t, struct brk_session, live_t);
    const struct rtm_config *cfg = s->b->cfg;
    if (s->state != SESS_OPEN) return;
    int64_t now = rtm_mono_ms();
    int64_t next;
    if (s->ping_sent_ms) {
        if (now - s->ping_sent_ms >= cfg->ping_timeout_ms) {
            log_info("ws: no pong, dropping sid=%s peer=%s", s->sid, s->claims.sub);
            s->close_now = 1;
            s->drop = 1; /* no close handshake with a peer that does not answer */
            sess_close(s, RTM_WIRE_PING_TIMEOUT, NULL);
            return;
        }
        next = s->ping_sent_ms + cfg->ping_timeout_ms - now;
    } else if (now - s->last_rx_ms >= cfg->ping_interval_ms) {
        /* Idle for a whole interval: ask for a pong. Busy sessions are never pinged. */
        s->ping_sent_ms = now;
        s->want_ping = 1;
        lws_callback_on_writable(s->wsi);
        next = cfg->ping_timeout_ms;
    } else {
        next = s->last_rx_ms + cfg->ping_interval_ms - now;
    }
    rtm_timer_in(s->b->timers, &s->live_t, live_cb, next > 0 ? next : 1);
}

void live_start(struct brk_session *s)
{
    s->last_rx_ms = rtm_mono_ms();
    if (s->b->cfg->ping_interval_ms <= 0) return;
    rtm_timer_in(s->b->timers, &s->live_t, live_cb, s->b->cfg->ping_interval_ms);
}

void live_seen(struct brk_session *s)
{
    s->last_rx_ms = rtm_mono_ms();
    s->ping_sent_ms = 0;
}

void limits_session_end(struct brk_session *s)
{
    rtm_timer_cancel(s->b->timers, &s->live_t);
    rtm_timer_cancel(s->b->timers, &s->rx_resume_t);
}

/* ---- connects per IP ---- */

struct ip_window {
    char ip[64];
    int64_t start_ms;
    int count;
};

static void prune(struct brk_broker *b, int64_t now)
{
    /* Collect first: deleting while walking reshuffles an open-addressing table. */
    uint32_t n = 0;
    struct ip_window **old = malloc((b->conn_ips.n ? b->conn_ips.n : 1) * sizeof *old);
    if (!old) return;
    for (uint32_t i = 0; i < b->conn_ips.cap; i++) {
        struct ip_window *w = b->conn_ips.slots[i].key ? b->conn_ips.slots[i].val : NULL;
        if (w && now - w->start_ms >= IP_WINDOW_MS) old[n++] = w;
    }
    for (uint32_t i = 0; i < n; i++) {
        htab_del(&b->conn_ips, old[i]->ip);
        free(old[i]);
    }
    free(old);
}

static void prune_cb(struct rtm_timer *t)
{
    struct brk_broker *b = lws_container_of(t, struct brk_broker, ip_prune_t);
    prune(b, rtm_mono_ms());
    if (b->conn_ips.n)
        rtm_timer_in(b->timers, &b->ip_prune_t, prune_cb, IP_WINDOW_MS);
}

int limit_accept(struct brk_broker *b, const struct lws_filter_network_conn_args *a)
{
    if (b->cfg->rate_connects_per_ip_per_minute <= 0 || !a) return 0;
    char ip[64] = "";
    if (a->cli_addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->cli_addr)->sin_addr, ip, sizeof ip);
    else if (a->cli_addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->cli_addr)->sin6_addr, ip, sizeof ip);
    if (!*ip) return 0;
    /* A trusted proxy carries many clients: they are counted one by one once
     * the request head names them (limit_connect_ip from conn.c). */
    if (rtm_cidr_match(b->cfg->trusted_cidrs, b->cfg->n_trusted_proxies, ip)) return 0;
    return limit_connect_ip(b, ip, "at accept");
}

int limit_connect_ip(struct brk_broker *b, const char *ip, const char *where)
{
    int limit = b->cfg->rate_connects_per_ip_per_minute;
    if (limit <= 0 || !*ip) return 0;
    int64_t now = rtm_mono_ms();
    struct ip_window *w = htab_get(&b->conn_ips, ip);
    if (!w) {
        if (b->conn_ips.n >= IP_TABLE_MAX) prune(b, now);
        if (b->conn_ips.n >= IP_TABLE_MAX) {
            /* Bounded memory wins over precision: past the bound, new
             * addresses are let through untracked (logged once). */
            if (!b->ip_table_full_logged) log_warn("broker: per-IP connect table full (%d addresses)", IP_TABLE_MAX);
            b->ip_table_full_logged = 1;
            return 0;
        }
        b->ip_table_full_logged = 0;
        w = calloc(1, sizeof *w);
        if (!w) return 0;
        snprintf(w->ip, sizeof w->ip, "%s", ip);
        w->start_ms = now;
        if (htab_put(&b->conn_ips, w->ip, w)) {
            free(w);
            return 0;
        }
        if (b->conn_ips.n == 1 && b->ctx)
            rtm_timer_in(b->timers, &b->ip_prune_t, prune_cb, IP_WINDOW_MS);
    }
    if (now - w->start_ms >= IP_WINDOW_MS) {
        w->start_ms = now;
        w->count = 0;
    }
    if (w->count >= limit) {
        if (w->count == limit) log_warn("broker: connects from %s over %d per minute, refusing %s", ip, limit, where);
        w->count = limit + 1; /* log once per window */
        return 1;
    }
    w->count++;
    return 0;
}

void limits_destroy(struct brk_broker *b)
{
    for (uint32_t i = 0; i < b->conn_ips.cap; i++)
        if (b->conn_ips.slots[i].key) free(b->conn_ips.slots[i].val);
    htab_free(&b->conn_ips);
}
