/* loop.c: rtmd's event loop: libev (epoll) as lws's foreign loop, the one
 * timer heap, SIGTERM/SIGINT and the drain. Nothing else touches libev.
 *
 * Why libev: lws 4.1.6's default loop calls poll() over every fd on every
 * turn, so each event cost O(connections). Its libev plugin runs on epoll
 * and, unlike the libuv one on Debian's build, keeps the close frame of a
 * callback that returns -1 (close codes reach browsers). The plugin's traps
 * (../shared/PLATFORM-NOTES.md, "Event loops") and what we do about them:
 *  - lws re-arms its one ev_timer while it may still be running, which
 *    libev ignores, so lws's own timers fire late or never on an idle loop:
 *    every timer of ours is in our heap behind our own ev_timer, and an
 *    ev_timer every LWS_TICK_MS calls lws_cancel_service so lws runs its
 *    (handshake, close and keep-alive) timeouts;
 *  - the plugin watches no signal on a foreign loop: SIGTERM and SIGINT are
 *    our ev_signals, and the drain runs inside the loop (ev_run returns only
 *    when we break it);
 *  - shutdown order: after the drain, from a 0 ms timer, lws_context_destroy,
 *    stop our watchers, ev_break; destroy again if lws did not finish
 *    (info.pcontext tells), then ev_loop_destroy.
 *  - lws runs its protocol init (LWS_CALLBACK_PROTOCOL_INIT, where the
 *    broker learns its loop) from an lws timer due at context creation,
 *    which this plugin runs only once lws's idle watcher runs, and libev
 *    runs that only when nothing else is pending: a client connecting as
 *    the listener opened was served by a broker with no loop yet (its
 *    channel marked for a presence flush that was never scheduled: no
 *    presence, ever, on that channel). rtm_loop_open turns the loop until
 *    lws reports itself operational, before any listener exists;
 *  - lws's plugin runs its "forced service" (input lws already read and
 *    holds, such as an HTTP body read with its headers) from an ev_idle
 *    watcher, which libev runs only when no other event is pending: on a busy
 *    loop a request body waited seconds (tests/integration/fault_store). An
 *    ev_check watcher, run after every poll, does that service whenever lws
 *    says input is buffered (lws_service_adjust_timeout == 0).
 * lws's log level stays ERR|WARN (main): the plugin logs a notice per I/O change.
 *
 * The cluster's Redis connections (cluster/rio.c) attach to the same loop
 * through hiredis's own libev adapter (srv->ev): hiredis on raw descriptors
 * adopted by lws stopped re-subscribing after a Redis stall on the libev
 * plugin. The poll-loop branches (use_ev 0) remain for a build without it. */
#include "loop.h"

#include "broker.h"
#include "config.h"
#include "errors.h"
#include "log.h"
#include "server.h"
#include "timers.h"
#include "util.h"

#include <ev.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define DRAIN_CHECK_MS 50
#define STARTUP_TURNS 100
/* lws's own forced service, exported for its event-lib plugins but not in
 * its headers (4.1.6): services connections holding input lws already read. */
int _lws_plat_service_forced_tsi(struct lws_context *context, int tsi);

#define LWS_TICK_MS 10 /* lws's own timeouts are seconds: 10 ms costs nothing and bounds their lateness */

/* One per process, owned by srv->loop. */
struct rtm_loop {
    struct rtm_server *srv;
    int use_ev;       /* epoll through libev; 0: lws's poll loop (--cluster) */
    struct rtm_timers timers;
    /* poll loop */
    lws_sorted_usec_list_t sul; /* the heap's one native timer */
    int done;
    /* epoll */
    struct ev_loop *ev;
    ev_timer heap_w;  /* the heap's one native timer */
    ev_timer lws_w;   /* lws_cancel_service every LWS_TICK_MS */
    ev_timer stop_w;  /* 0 ms: tears lws down from inside the loop */
    ev_check forced_w; /* lws's forced service after every poll (see above) */
    ev_prepare turn_w; /* the turn's end, before the poll: the broker reads bursts on (broker/rxdrain.c) */
    ev_signal term_w, int_w;
    struct rtm_timer drain_t;
    int64_t drain_deadline_ms;
    void *foreign[1];
};

static void heap_fired(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct rtm_loop *l = w->data;
    rtm_timers_run(&l->timers, rtm_mono_ms());
}

static void sul_fired(lws_sorted_usec_list_t *sul)
{
    struct rtm_loop *l = lws_container_of(sul, struct rtm_loop, sul);
    rtm_timers_run(&l->timers, rtm_mono_ms());
}

/* The heap has a new earliest deadline: move our one native timer there.
 * An ev_timer is stopped first: ev_timer_start on an active watcher is
 * ignored (lws's bug). */
static void wake_at(void *arg, int64_t due_ms)
{
    struct rtm_loop *l = arg;
    int64_t in = due_ms - rtm_mono_ms();
    if (!l->use_ev) {
        if (l->srv->lws) /* rtm_loop_open tells it once the context exists */
            lws_sul_schedule(l->srv->lws, 0, &l->sul, sul_fired, in > 0 ? (lws_usec_t)in * LWS_US_PER_MS : 1);
        return;
    }
    ev_timer_stop(l->ev, &l->heap_w);
    ev_timer_set(&l->heap_w, in > 0 ? (ev_tstamp)in / 1000.0 : 0.0, 0.0);
    ev_timer_start(l->ev, &l->heap_w);
}

static void forced_service(struct ev_loop *ev, ev_check *w, int revents)
{
    struct rtm_loop *l = w->data;
    if (l->srv->lws && lws_service_adjust_timeout(l->srv->lws, 1, 0) == 0)
        _lws_plat_service_forced_tsi(l->srv->lws, 0);
}

static void turn_end(struct ev_loop *ev, ev_prepare *w, int revents)
{
    struct rtm_loop *l = w->data;
    if (l->srv->lws && l->srv->broker) brk_turn_end(l->srv->broker);
}

static void lws_tick(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct rtm_loop *l = w->data;
    if (l->srv->lws) lws_cancel_service(l->srv->lws);
}

int rtm_loop_create(struct rtm_server *srv)
{
    struct rtm_loop *l = calloc(1, sizeof *l);
    if (!l) return RTM_ENOMEM;
    l->use_ev = 1;
    /* EVFLAG_NOENV: LIBEV_FLAGS in the environment cannot pick poll/select. */
    if (l->use_ev) l->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (l->use_ev && !l->ev) {
        log_error("rtmd: cannot create the epoll loop (libev)");
        free(l);
        return RTM_ENOMEM;
    }
    l->srv = srv;
    if (l->use_ev) {
        ev_init(&l->heap_w, heap_fired);
        l->heap_w.data = l;
    }
    rtm_timers_init(&l->timers, wake_at, l);
    srv->loop = l;
    srv->timers = &l->timers;
    srv->ev = l->ev; /* the cluster's hiredis connections attach to it (cluster/rio.c) */
    return 0;
}

static int lws_operational(struct lws_context *ctx)
{
    lws_state_manager_t *m = lws_system_get_state_manager(ctx);
    return !m || m->state >= LWS_SYSTATE_OPERATIONAL;
}

/* lws's start-up (protocol init) is a timer of lws due now: one wake-up
 * (the cancel pipe's read starts lws's idle watcher), then quiet turns until
 * that watcher has run it. No listener exists yet, so nothing competes;
 * vhosts made after this get their PROTOCOL_INIT as they are created. */
static void run_lws_startup(struct rtm_loop *l, struct lws_context *ctx)
{
    lws_cancel_service(ctx);
    for (int i = 0; i < STARTUP_TURNS && !lws_operational(ctx); i++) ev_run(l->ev, EVRUN_NOWAIT);
    if (!lws_operational(ctx)) log_warn("rtmd: libwebsockets did not finish starting before the listeners opened");
}

int rtm_loop_open(struct rtm_server *srv, struct lws_context_creation_info *info)
{
    struct rtm_loop *l = srv->loop;
    if (l->use_ev) {
        l->foreign[0] = l->ev;
        info->options |= LWS_SERVER_OPTION_LIBEV;
        info->foreign_loops = l->foreign;
        info->pcontext = &srv->lws; /* lws clears it when its destruction is complete */
    }
    srv->lws = lws_create_context(info);
    if (!srv->lws) {
        log_error("rtmd: cannot create the event loop (libwebsockets with the libev plugin: "
                  "is libwebsockets-evlib-ev installed?)");
        return -1;
    }
    if (l->use_ev) run_lws_startup(l, srv->lws);
    if (!l->use_ev && l->timers.n) wake_at(l, rtm_timers_next(&l->timers));
    return 0;
}

static void stop_now(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct rtm_loop *l = w->data;
    /* Sessions still open close here (their CLOSED runs, rows are added);
     * the broker's own timers are cancelled at PROTOCOL_DESTROY. */
    ev_check_stop(ev, &l->forced_w);
    ev_prepare_stop(ev, &l->turn_w);
    if (l->srv->lws) lws_context_destroy(l->srv->lws);
    ev_timer_stop(ev, &l->heap_w);
    ev_timer_stop(ev, &l->lws_w);
    ev_signal_stop(ev, &l->term_w);
    ev_signal_stop(ev, &l->int_w);
    ev_break(ev, EVBREAK_ALL);
}

static void drain_check(struct rtm_timer *t)
{
    struct rtm_loop *l = lws_container_of(t, struct rtm_loop, drain_t);
    struct rtm_server *srv = l->srv;
    if (srv->broker && brk_session_count(srv->broker) > 0 && rtm_mono_ms() < l->drain_deadline_ms) {
        rtm_timer_in(&l->timers, &l->drain_t, drain_check, DRAIN_CHECK_MS);
        return;
    }
    /* Session rows: the store view's writer writes what is pending when main closes it. */
    if (l->use_ev) ev_timer_start(l->ev, &l->stop_w);
    else l->done = 1;
}

static void begin_drain(struct rtm_loop *l, int sig)
{
    struct rtm_server *srv = l->srv;
    if (srv->stopping) return;
    srv->stopping = 1;
    log_info("rtmd: %s received, draining sessions", sig == SIGINT ? "SIGINT" : "SIGTERM");
    l->drain_deadline_ms = rtm_mono_ms() + srv->cfg->shutdown_grace_ms;
    if (srv->broker) brk_begin_shutdown(srv->broker, 1000 + srv->cfg->shutdown_grace_ms);
    rtm_timer_in(&l->timers, &l->drain_t, drain_check, 0);
}

static void on_ev_signal(struct ev_loop *ev, ev_signal *w, int revents) { begin_drain(w->data, w->signum); }

/* Poll loop: the handler only records the signal and wakes the loop. */
static volatile sig_atomic_t got_signal;
static struct lws_context *signal_ctx;

static void on_posix_signal(int sig)
{
    got_signal = sig;
    if (signal_ctx) lws_cancel_service(signal_ctx);
}

static int run_poll(struct rtm_loop *l)
{
    struct rtm_server *srv = l->srv;
    signal_ctx = srv->lws;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_posix_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!l->done) {
        if (lws_service(srv->lws, 0) < 0) return -1;
        if (got_signal) begin_drain(l, got_signal);
    }
    return 0;
}

int rtm_loop_run(struct rtm_server *srv)
{
    struct rtm_loop *l = srv->loop;
    signal(SIGPIPE, SIG_IGN);
    if (!l->use_ev) {
        int rc = run_poll(l);
        rtm_timer_cancel(&l->timers, &l->drain_t);
        return rc;
    }
    ev_signal_init(&l->term_w, on_ev_signal, SIGTERM);
    ev_signal_init(&l->int_w, on_ev_signal, SIGINT);
    l->term_w.data = l->int_w.data = l;
    ev_signal_start(l->ev, &l->term_w);
    ev_signal_start(l->ev, &l->int_w);
    ev_timer_init(&l->lws_w, lws_tick, LWS_TICK_MS / 1000.0, LWS_TICK_MS / 1000.0);
    l->lws_w.data = l;
    ev_timer_start(l->ev, &l->lws_w);
    ev_check_init(&l->forced_w, forced_service);
    l->forced_w.data = l;
    ev_check_start(l->ev, &l->forced_w);
    ev_prepare_init(&l->turn_w, turn_end);
    l->turn_w.data = l;
    ev_prepare_start(l->ev, &l->turn_w);
    ev_timer_init(&l->stop_w, stop_now, 0.0, 0.0);
    l->stop_w.data = l;

    ev_run(l->ev, 0);

    rtm_timer_cancel(&l->timers, &l->drain_t);
    /* Session rows: the store view's writer writes what is pending when main closes it. */
    return srv->stopping ? 0 : -1; /* without a signal, the loop ended on its own: a failure */
}

void rtm_loop_destroy(struct rtm_server *srv)
{
    struct rtm_loop *l = srv->loop;
    signal_ctx = NULL;
    /* A context that never ran (start-up failed), the poll loop's, or one
     * lws did not finish destroying inside the libev loop. */
    if (srv->lws) lws_context_destroy(srv->lws);
    if (!l || !l->use_ev) srv->lws = NULL; /* the poll loop's destroy is synchronous */
    if (srv->lws && l) {
        ev_run(l->ev, EVRUN_NOWAIT);
        if (srv->lws) lws_context_destroy(srv->lws);
    }
    srv->lws = NULL;
    if (!l) return;
    if (l->timers.n) log_warn("rtmd: %u timers still armed at exit", l->timers.n);
    rtm_timers_free(&l->timers);
    if (l->ev) {
        ev_timer_stop(l->ev, &l->heap_w);
        ev_loop_destroy(l->ev);
    }
    free(l);
    srv->loop = NULL;
    srv->timers = NULL;
}
