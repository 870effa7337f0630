/* loop.c: rtmd's event loop, on lws's default poll loop.
 *
 * Every timer of the process lives in one rtm_timers heap behind a single
 * lws_sul: the sul is moved only when an earlier deadline appears (lws
 * keeps its timers in one sorted list, and a sul per session per purpose
 * made admitting N sessions cost O(N^2)). Signals only set a flag and wake
 * the loop; the drain (going_away, 1001, session rows flushed) runs on the
 * loop, bounded by shutdown-grace-ms. */
#include "loop.h"

#include "broker.h"
#include "config.h"
#include "errors.h"
#include "log.h"
#include "server.h"
#include "timers.h"
#include "util.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define DRAIN_CHECK_MS 50

/* One per process, owned by srv->loop. */
struct rtm_loop {
    struct rtm_server *srv;
    struct rtm_timers timers;
    lws_sorted_usec_list_t sul; /* the heap's one native timer */
    struct rtm_timer drain_t;
    int64_t drain_deadline_ms;
    int done;
};

static volatile sig_atomic_t got_signal;
static struct lws_context *signal_ctx;

static void on_signal(int sig)
{
    got_signal = sig;
    if (signal_ctx) lws_cancel_service(signal_ctx);
}

static void sul_fired(lws_sorted_usec_list_t *sul)
{
    struct rtm_loop *l = lws_container_of(sul, struct rtm_loop, sul);
    rtm_timers_run(&l->timers, rtm_mono_ms());
}

/* The heap has a new earliest deadline: move the one lws timer there. */
static void wake_at(void *arg, int64_t due_ms)
{
    struct rtm_loop *l = arg;
    if (!l->srv->lws) return; /* rtm_loop_open tells it once the context exists */
    int64_t in = due_ms - rtm_mono_ms();
    lws_sul_schedule(l->srv->lws, 0, &l->sul, sul_fired, in > 0 ? (lws_usec_t)in * LWS_US_PER_MS : 1);
}

int rtm_loop_create(struct rtm_server *srv)
{
    struct rtm_loop *l = calloc(1, sizeof *l);
    if (!l) return RTM_ENOMEM;
    l->srv = srv;
    rtm_timers_init(&l->timers, wake_at, l);
    srv->loop = l;
    srv->timers = &l->timers;
    return 0;
}

int rtm_loop_open(struct rtm_server *srv, struct lws_context_creation_info *info)
{
    struct rtm_loop *l = srv->loop;
    srv->lws = lws_create_context(info);
    if (!srv->lws) {
        log_error("rtmd: cannot create the event loop (libwebsockets)");
        return -1;
    }
    if (l->timers.n) wake_at(l, rtm_timers_next(&l->timers));
    return 0;
}

static void drain_check(struct rtm_timer *t)
{
    struct rtm_loop *l = lws_container_of(t, struct rtm_loop, drain_t);
    struct rtm_server *srv = l->srv;
    if (!srv->broker || brk_session_count(srv->broker) == 0 || rtm_mono_ms() >= l->drain_deadline_ms) {
        l->done = 1;
        return;
    }
    rtm_timer_in(&l->timers, &l->drain_t, drain_check, DRAIN_CHECK_MS);
}

static void begin_drain(struct rtm_loop *l, int sig)
{
    struct rtm_server *srv = l->srv;
    srv->stopping = 1;
    log_info("rtmd: %s received, draining sessions", sig == SIGINT ? "SIGINT" : "SIGTERM");
    l->drain_deadline_ms = rtm_mono_ms() + srv->cfg->shutdown_grace_ms;
    if (srv->broker) brk_begin_shutdown(srv->broker, 1000 + srv->cfg->shutdown_grace_ms);
    rtm_timer_in(&l->timers, &l->drain_t, drain_check, 0);
}

int rtm_loop_run(struct rtm_server *srv)
{
    struct rtm_loop *l = srv->loop;
    signal_ctx = srv->lws;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0;
    while (!l->done) {
        if (lws_service(srv->lws, 0) < 0) {
            rc = -1;
            break;
        }
        if (got_signal && !srv->stopping) begin_drain(l, got_signal);
    }
    rtm_timer_cancel(&l->timers, &l->drain_t);
    if (srv->broker) brk_flush_sessions(srv->broker);
    return rc;
}

void rtm_loop_destroy(struct rtm_server *srv)
{
    struct rtm_loop *l = srv->loop;
    signal_ctx = NULL;
    if (srv->lws) {
        /* Sessions close (and cancel their timers) inside; the broker's own
         * timers go at PROTOCOL_DESTROY. */
        lws_context_destroy(srv->lws);
        srv->lws = NULL;
    }
    if (!l) return;
    if (l->timers.n) log_warn("rtmd: %u timers still armed at exit", l->timers.n);
    rtm_timers_free(&l->timers);
    free(l);
    srv->loop = NULL;
    srv->timers = NULL;
}
