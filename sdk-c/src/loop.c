/* loop.c: a client's event loop and timers. A client made without
 * rtm_options_set_lws_context owns its loop: libev (epoll) with lws 4.1.6's
 * libev plugin on it as a foreign loop, as rtmd runs (rtmd/loop.c), so a
 * turn costs what happened, not the number of descriptors watched. A client
 * on an application's lws context keeps its timers as lws_sul there.
 *
 * Design: on the own loop every timer of librtm is a native ev_timer, and
 * lws's plugin is kept honest around it (../shared/PLATFORM-NOTES.md, "Event
 * loops"; docs/PLATFORM-LEARNED.md):
 *  - lws re-arms its one ev_timer while it may still be running, which libev
 *    ignores, so lws's own timeouts (connect, close handshake, an
 *    LWS_TO_KILL_ASYNC) fire late or never on a quiet loop. While they
 *    matter (a socket connecting, closing, or told to close by the peer) an
 *    ev_timer calls lws_cancel_service every LWS_TICK_MS, and lws then runs
 *    what is due. An open, idle session has no lws timeout of its own (its
 *    liveness is ours), so an idle client sleeps until its next ping;
 *  - lws runs its forced service (input it already read and holds) from an
 *    ev_idle watcher, which libev starves while events are pending: an
 *    ev_check runs it after every poll when lws says input is buffered;
 *  - the plugin watches no signal on a foreign loop (a library must not);
 *  - lws_context_destroy may finish only on the loop: the loop turns until
 *    info.pcontext says it did (bounded), then is destroyed.
 * Closes keep their codes on this plugin (the usual lws_close_reason and -1
 * from WRITEABLE), unlike lws's libuv plugin on Debian's build. */
#include "rtm_internal.h"

#include <string.h>

#define LWS_TICK_MS 10 /* lws's timeouts are whole seconds: 10 ms bounds their lateness */
#define DESTROY_TURNS 100

/* Exported by lws 4.1.6 for its event-lib plugins, not in its headers:
 * services connections holding input lws already read. */
int _lws_plat_service_forced_tsi(struct lws_context *context, int tsi);

/* ---- timers ---- */

static void ctimer_sul_fired(lws_sorted_usec_list_t *s)
{
    struct ctimer *t = lws_container_of(s, struct ctimer, sul);
    t->fn(t->c); /* may free the client (do_free from t_free): t is not touched after */
}

static void ctimer_ev_fired(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct ctimer *t = w->data;
    t->fn(t->c);
}

void ctimer_set(struct rtm_client *c, struct ctimer *t, ctimer_fn fn, int64_t ms)
{
    if (ms < 0) ms = 0;
    t->c = c;
    t->fn = fn;
    if (!c->own_ctx) {
        lws_sul_schedule(c->ctx, 0, &t->sul, ctimer_sul_fired, (lws_usec_t)ms * LWS_US_PER_MS);
        return;
    }
    /* ev_timer_start on an active watcher is ignored: stop first. Time is
     * taken now, not at the loop's last turn, so a timer armed after the
     * application's own work is not early. */
    ev_timer_stop(c->loop.ev, &t->w);
    ev_now_update(c->loop.ev);
    ev_timer_init(&t->w, ctimer_ev_fired, (ev_tstamp)ms / 1000.0, 0.0);
    t->w.data = t;
    ev_timer_start(c->loop.ev, &t->w);
}

void ctimer_cancel(struct rtm_client *c, struct ctimer *t)
{
    if (!c->own_ctx) lws_sul_schedule(c->ctx, 0, &t->sul, NULL, LWS_SET_TIMER_USEC_CANCEL);
    else if (c->loop.ev) ev_timer_stop(c->loop.ev, &t->w);
}

/* ---- the own loop ---- */

/* lws's own timeouts can be running: a socket connecting (connect and
 * handshake timeouts), closing (our 5 s close-send bound, a kill), or
 * answering the peer's close (lws's close-ack wait). */
static int lws_timeouts_matter(const struct rtm_client *c)
{
    return c->wsi && (c->state != ST_OPEN || c->close_pending || c->peer_code);
}

static void on_prepare(struct ev_loop *ev, ev_prepare *w, int revents)
{
    struct rtm_client *c = w->data;
    ev_timer *tick = &c->loop.tick_w;
    int want = lws_timeouts_matter(c);
    if (want && !ev_is_active(tick)) {
        ev_timer_set(tick, LWS_TICK_MS / 1000.0, LWS_TICK_MS / 1000.0);
        ev_timer_start(ev, tick);
    } else if (!want && ev_is_active(tick)) {
        ev_timer_stop(ev, tick);
    }
}

static void on_tick(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct rtm_client *c = w->data;
    if (c->ctx) lws_cancel_service(c->ctx);
}

static void on_forced(struct ev_loop *ev, ev_check *w, int revents)
{
    struct rtm_client *c = w->data;
    if (c->ctx && lws_service_adjust_timeout(c->ctx, 1, 0) == 0) _lws_plat_service_forced_tsi(c->ctx, 0);
}

/* Its firing is what ends a bounded wait. */
static void on_wait_done(struct ev_loop *ev, ev_timer *w, int revents) {}

/* The plugin logs a NOTICE line for every change of a socket's events
 * (several per frame). An application that left lws's log level at its
 * default (ERR, WARN, NOTICE) gets ERR and WARN; a level it chose is kept. */
static void quiet_default_lws_log(void)
{
    int level = 0;
    for (int b = 0; b < LLL_COUNT; b++)
        if (lwsl_visible(1 << b)) level |= 1 << b;
    if (level == (LLL_ERR | LLL_WARN | LLL_NOTICE)) lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
}

int cloop_open(struct rtm_client *c)
{
    struct cloop *l = &c->loop;
    struct lws_context_creation_info info;
    /* EVFLAG_NOENV: LIBEV_FLAGS cannot pick poll or select behind our back;
     * EVFLAG_NOSIGMASK: a library leaves the signal mask alone. */
    l->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!l->ev) l->ev = ev_loop_new(EVFLAG_NOENV | EVFLAG_NOSIGMASK); /* no epoll: libev's best */
    if (!l->ev) return -1;
    l->foreign[0] = l->ev;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = l->foreign;
    info.pcontext = &c->ctx; /* lws clears it when its destruction is complete */
    info.port = CONTEXT_PORT_NO_LISTEN;
    /* a copy of rtm_lws_protocol(), as an application's context would hold
     * (lws keeps the array: it lives in the client) */
    l->protos[0] = *rtm_lws_protocol();
    memset(&l->protos[1], 0, sizeof l->protos[1]);
    info.protocols = l->protos;
    info.gid = -1;
    info.uid = -1;
    /* room for a long token in the subprotocol header (sent from pt_serv_buf,
     * kept in the header table) */
    info.max_http_header_data = RTM_HDR_SPACE;
    info.pt_serv_buf_size = RTM_HDR_SPACE;
    info.fd_limit_per_thread = 16;
    if (c->tls) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    quiet_default_lws_log();
    c->ctx = lws_create_context(&info);
    if (!c->ctx) {
        ev_loop_destroy(l->ev);
        l->ev = NULL;
        return -1;
    }
    ev_init(&l->wait_w, on_wait_done);
    ev_init(&l->tick_w, on_tick);
    l->tick_w.data = c;
    ev_check_init(&l->forced_w, on_forced);
    l->forced_w.data = c;
    ev_check_start(l->ev, &l->forced_w);
    ev_prepare_init(&l->prep_w, on_prepare);
    l->prep_w.data = c;
    ev_prepare_start(l->ev, &l->prep_w);
    return 0;
}

void cloop_run_once(struct rtm_client *c, int timeout_ms)
{
    struct cloop *l = &c->loop;
    if (timeout_ms <= 0) {
        ev_run(l->ev, EVRUN_NOWAIT);
        return;
    }
    ev_now_update(l->ev);
    ev_timer_set(&l->wait_w, (ev_tstamp)timeout_ms / 1000.0, 0.0);
    ev_timer_start(l->ev, &l->wait_w);
    ev_run(l->ev, EVRUN_ONCE);
    ev_timer_stop(l->ev, &l->wait_w);
}

void cloop_wake(struct rtm_client *c)
{
    if (c->ctx) lws_cancel_service(c->ctx);
}

void cloop_close(struct rtm_client *c)
{
    struct cloop *l = &c->loop;
    if (!l->ev) return;
    /* the client's timers are cancelled already: only lws runs from here */
    ev_prepare_stop(l->ev, &l->prep_w);
    ev_check_stop(l->ev, &l->forced_w);
    ev_timer_stop(l->ev, &l->tick_w);
    ev_timer_stop(l->ev, &l->wait_w);
    if (c->ctx) lws_context_destroy(c->ctx);
    for (int i = 0; c->ctx && i < DESTROY_TURNS; i++) ev_run(l->ev, EVRUN_NOWAIT);
    if (c->ctx) lws_context_destroy(c->ctx);
    c->ctx = NULL;
    ev_loop_destroy(l->ev);
    l->ev = NULL;
}
