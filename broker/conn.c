/* conn.c: one WebSocket connection's life: upgrade, admission (the
 * credential itself is checked by auth.c), welcome, inbound reassembly, the
 * outbound queue, and the close.
 *
 * The token is checked after the upgrade, in ESTABLISHED (never in
 * HTTP_CONFIRM_UPGRADE: CVE-2025-11677), because only a close frame reaches a
 * browser. Every close the broker decides goes the same way: mark the session,
 * ask for WRITEABLE, and there set the close reason and return -1; lws sends
 * no close frame from other callbacks. The session leaves the tables in
 * CLOSED, so fan-out never sees a table change under its feet.
 *
 * Outbound frames are pre-framed (see msg.c). A session's new frames are
 * written once per loop turn, at its end (conn_flush_turn, from the loop's
 * ev_prepare through brk_turn_end), straight from there rather than from a
 * WRITEABLE: as many as fit a byte budget (WRITE_BUDGET), consecutive frames
 * packed into one buffer of at most BRK_SCRATCH bytes and sent with a single
 * write (LWS_WRITE_RAW: the WebSocket headers are already in the bytes), a
 * lone frame straight from its shared buffer. WRITEABLE writes the rest (a
 * budget spent, a remainder lws kept), pings, and every close.
 *
 * No poll() before a write: lws 4.1.6 keeps whatever part of a write the
 * socket did not take (buflist_out), asks for WRITEABLE itself, sends that
 * remainder first when the socket drains and calls WRITEABLE only once it is
 * gone (lib/core-net/output.c lws_issue_raw, service.c
 * lws_handle_POLLOUT_event). So a write goes out until lws says it holds a
 * remainder (lws_partial_buffered, a field read): at most one partial
 * write's bytes (BRK_SCRATCH) are ever copied aside. lws_send_pipe_choked,
 * used before, is a poll() system call on every call. */
#include "internal.h"
#include "bind.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "pattern.h"
#include "protocol.h"
#include "server.h"
#include "netaddr.h"
#include "util.h"
#include "view.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define WRITE_BUDGET (256 * 1024) /* bytes per WRITEABLE: one slow reader cannot hog the loop */
#define RX_HARD_CAP (16u << 20)   /* reassembly bound when max-message-size is 0 (off) */
#define LINGER_SEC 2              /* a lingering close reads and discards this long at most */
#define FLUSH_MAX (1u << 20)      /* sessions noted for the turn's write; beyond, WRITEABLE writes them */

/* rx_buffer_size: lws keeps one receive buffer of this size per connection
 * for as long as it lives, so it is kept small; messages larger than it
 * arrive in pieces and are reassembled in a buffer that exists only until
 * the message is complete. tx_packet_size: without it lws cuts every send to
 * the rx size and copies the rest aside, which would undo the coalescing.
 * 512 bytes: a signaling frame with an ICE candidate, a presence change or a
 * 256-byte payload still arrives whole; an SDP offer (2-6 KB) is reassembled
 * at any size that fits an idle session. 1,024 cost 512 bytes more of RSS
 * per idle session (rtm bench connect, 10,000 sessions: median 4,638 bytes
 * against 4,149 with 512, load 2-6). */
#define RX_CHUNK 512

struct brk_broker *broker_of(struct lws *wsi)
{
    struct rtm_server *srv = lws_context_user(lws_get_context(wsi));
    return srv ? srv->broker : NULL;
}

/* ---- outbound ---- */

/* Asks lws for WRITEABLE. A session without a socket (the fuzz harness in
 * tests/fuzz drives frame_handle() on sessions it builds itself) keeps its
 * frames queued, where the harness reads them. */
static void want_writeable(struct brk_session *s)
{
    if (s->wsi) lws_callback_on_writable(s->wsi);
}

/* A session with new frames: written at the loop turn's end (conn_flush_turn),
 * once, however many frames it got this turn. Without the turn-end hook
 * (or with no room to note it) lws's WRITEABLE does it, as before. */
static void want_flush(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    if (!s->wsi) return;
    if (s->tx_dirty) return;
    if (!b->turn_end || s->state != SESS_OPEN) {
        lws_callback_on_writable(s->wsi);
        return;
    }
    if (b->n_flush == b->cap_flush) {
        uint32_t cap = b->cap_flush ? b->cap_flush * 2 : 256;
        struct brk_session **n = cap <= FLUSH_MAX ? realloc(b->flush, cap * sizeof *n) : NULL;
        if (!n) {
            lws_callback_on_writable(s->wsi);
            return;
        }
        b->flush = n;
        b->cap_flush = cap;
    }
    b->flush[b->n_flush++] = s;
    s->tx_dirty = 1;
}

int sess_enqueue(struct brk_session *s, struct brk_msg *m)
{
    if (s->state != SESS_OPEN) return RTM_ELIMIT;
    size_t cap = s->b->cfg->queue_bytes > 0 ? (size_t)s->b->cfg->queue_bytes : 0;
    if (cap && s->q.bytes + msg_frame_len(m) > cap && s->q.count > 0) goto full;
    int rc = outq_push(&s->q, m);
    if (rc) goto full;
    rtm_metric_inc(RTM_M_FRAMES_OUT, 1);
    want_flush(s);
    return 0;
full:
    /* A consumer that stopped reading: close it rather than let memory grow
     * or slow the others; what is queued is dropped with it. */
    rtm_metric_inc(RTM_M_SLOW_CONSUMERS, 1);
    log_warn("ws: slow consumer closed sid=%s peer=%s queued=%zu", s->sid, s->claims.sub, s->q.bytes);
    s->close_now = 1;
    sess_close(s, RTM_WIRE_SLOW_CONSUMER, NULL);
    return RTM_ELIMIT;
}

void sess_close(struct brk_session *s, enum rtm_wire_err e, const char *reason)
{
    if (s->state == SESS_HELD) {
        resume_discard_soon(s); /* no socket: the place goes instead */
        return;
    }
    if (s->state == SESS_CLOSING) return;
    const struct rtm_wire_def *w = rtm_wire(e);
    s->state = SESS_CLOSING;
    s->close_code = w->close_code;
    s->close_reason = reason ? reason : w->message;
    want_writeable(s);
}

/* A frame queued even to a closing session: its own error and goodbye frames
 * go out before the close code. */
static void enqueue_own(struct brk_session *s, struct brk_msg *m)
{
    if (!m) {
        /* Out of memory building an answer: a request must not go unanswered
         * on a session that stays open, so the session ends (1011) and the
         * client retries on a new one (found by tests/fault). */
        sess_close(s, RTM_WIRE_INTERNAL_ERROR, NULL);
        return;
    }
    enum sess_state st = s->state;
    if (st == SESS_CLOSING && !s->close_now) s->state = SESS_OPEN;
    sess_enqueue(s, m);
    if (s->state == SESS_OPEN) s->state = st;
    msg_unref(m);
}

void sess_error(struct brk_session *s, enum rtm_wire_err e, const char *message, const char *request_id)
{
    rtm_log(rtm_wire(e)->log_level, "ws: error sid=%s peer=%s code=%s", s->sid, s->claims.sub ? s->claims.sub : "-",
            rtm_wire(e)->code);
    enqueue_own(s, wire_error(e, message, request_id));
}

void sess_ack(struct brk_session *s, const char *request_id)
{
    if (request_id) enqueue_own(s, wire_ack(request_id));
}

void sess_send_going_away(struct brk_session *s, int retry_after_ms)
{
    enqueue_own(s, wire_going_away(retry_after_ms));
}

static void detach(struct brk_session *s);

/* The reason's bytes on the wire: a close frame's payload is 125 bytes at most. */
static size_t close_reason_len(const struct brk_session *s)
{
    size_t n = s->close_reason ? strlen(s->close_reason) : 0;
    return n > 123 ? 123 : n;
}

/* A lingering close (for a client that broke a rule while it may still be
 * sending: 1003, 1007, 1009): the close frame is written, the write side
 * shut, and the client's input read and discarded until it closes or
 * LINGER_SEC pass. Closing at once with its data unread would make the
 * kernel answer with a reset, and the client would see 1006 instead of the
 * code. The session leaves every table now; only the socket lingers. */
static int close_lingering(struct brk_session *s)
{
    unsigned char f[LWS_PRE + 4 + 123];
    unsigned char *p = f + LWS_PRE;
    size_t rl = close_reason_len(s);
    p[0] = 0x88; /* FIN + close */
    p[1] = (unsigned char)(2 + rl);
    p[2] = (unsigned char)(s->close_code >> 8);
    p[3] = (unsigned char)s->close_code;
    memcpy(p + 4, s->close_reason, rl);
    s->sent_close = 1;
    if (lws_write(s->wsi, p, 4 + rl, LWS_WRITE_RAW) < 0) return -1;
    if (lws_partial_buffered(s->wsi)) return -1; /* lws holds part of it: no clean half-close possible */
    shutdown(lws_get_socket_fd(s->wsi), SHUT_WR);
    s->lingering = 1;
    detach(s);
    if (s->rx_paused) {
        s->rx_paused = 0;
        lws_rx_flow_control(s->wsi, 1);
    }
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LINGER_SEC);
    return 0;
}

static int close_with_code(struct brk_session *s)
{
    if (s->linger && !s->drop) return close_lingering(s);
    s->sent_close = 1;
    if (s->drop) return -1;
    lws_close_reason(s->wsi, (enum lws_close_status)s->close_code,
                     (unsigned char *)(s->close_reason ? s->close_reason : ""), close_reason_len(s));
    return -1;
}

/* The first k queued frames were just written: their timings end now (one
 * clock read per write, and only when one of them is timed). */
static void written_timed(const struct outq *q, uint32_t k)
{
    int64_t now = 0;
    for (uint32_t i = 0; i < k; i++) {
        const struct brk_msg *m = outq_peek(q, i);
        if (!m->timer) continue;
        if (!now) now = rtm_mono_ns();
        msg_written(m, now);
    }
}

/* Writes the ping and queued frames until the budget is spent or lws keeps
 * a remainder; -1: the socket failed. */
static int write_queue(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    if (s->want_ping && !lws_partial_buffered(s->wsi)) {
        /* A payload, because lws 4.1.6 does not report empty pongs. */
        unsigned char ping[LWS_PRE + 4] = {0};
        memcpy(ping + LWS_PRE, "rtm", 3);
        s->want_ping = 0;
        if (lws_write(s->wsi, ping + LWS_PRE, 3, LWS_WRITE_PING) < 0) return -1;
    }
    size_t budget = WRITE_BUDGET;
    while (s->q.count && budget && !lws_partial_buffered(s->wsi)) {
        /* Pack consecutive frames that fit the scratch buffer. */
        uint32_t k = 0;
        size_t total = 0;
        struct brk_msg *m;
        while ((m = outq_peek(&s->q, k)) && total + msg_frame_len(m) <= BRK_SCRATCH) {
            total += msg_frame_len(m);
            k++;
        }
        int n;
        if (k <= 1) {
            m = outq_peek(&s->q, 0);
            k = 1;
            total = m->len;
            /* lws writes the same header bytes into the shared headroom. */
            n = lws_write(s->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
            s->bytes_out += m->len;
        } else {
            unsigned char *o = b->wbuf + LWS_PRE;
            for (uint32_t i = 0; i < k; i++) {
                m = outq_peek(&s->q, i);
                memcpy(o, msg_frame(m), msg_frame_len(m));
                o += msg_frame_len(m);
                s->bytes_out += m->len;
            }
            n = lws_write(s->wsi, b->wbuf + LWS_PRE, total, LWS_WRITE_RAW);
        }
        if (n < 0) return -1;
        s->frames_out += k;
        written_timed(&s->q, k);
        outq_pop(&s->q, k);
        budget = total >= budget ? 0 : budget - total;
    }
    return 0;
}

static int on_writeable(struct brk_session *s)
{
    if (s->lingering) return 0; /* the write side is shut */
    if (s->state == SESS_CLOSING && (s->close_now || !s->attached)) return close_with_code(s);
    if (write_queue(s) < 0) return -1;
    if (s->q.count || s->want_ping) {
        lws_callback_on_writable(s->wsi);
        return 0;
    }
    if (s->state == SESS_CLOSING) {
        if (lws_partial_buffered(s->wsi)) {
            lws_callback_on_writable(s->wsi);
            return 0;
        }
        return close_with_code(s);
    }
    return 0;
}

/* The loop turn's end: every session that got frames this turn writes them
 * now, straight from here, as many as the turn brought in one write (the
 * raw relay's way: no POLLOUT round, no epoll_ctl to turn it on and off).
 * lws's WRITEABLE stays for what this cannot do: a remainder lws keeps, a
 * budget spent, a ping, and every close (a close code is only sent from
 * WRITEABLE). A session whose client sent its close gets nothing more. */
void conn_flush_turn(struct brk_broker *b)
{
    for (uint32_t i = 0; i < b->n_flush; i++) {
        struct brk_session *s = b->flush[i];
        if (!s) continue; /* closed meanwhile */
        s->tx_dirty = 0;
        if (s->state != SESS_OPEN || s->lingering || s->peer_close_code || lws_partial_buffered(s->wsi)) {
            lws_callback_on_writable(s->wsi);
            continue;
        }
        if (write_queue(s) < 0) {
            /* the socket failed: lws ends it (CLOSED records 1006) */
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (s->q.count || s->want_ping) lws_callback_on_writable(s->wsi);
    }
    b->n_flush = 0;
}

void conn_flush_free(struct brk_broker *b)
{
    free(b->flush);
    b->flush = NULL;
    b->n_flush = b->cap_flush = 0;
}

/* ---- connect ---- */

static void expiry_cb(struct rtm_timer *t)
{
    struct brk_session *s = lws_container_of(t, struct brk_session, expiry_t);
    log_info("ws: token expired sid=%s peer=%s", s->sid, s->claims.sub);
    sess_close(s, RTM_WIRE_TOKEN_EXPIRED, NULL);
}

void sess_arm_expiry(struct brk_session *s)
{
    rtm_timer_cancel(s->b->timers, &s->expiry_t);
    if (!s->publishable && s->claims.exp > 0) {
        /* Saturating: whatever exp holds, the timer arithmetic cannot overflow. */
        int64_t at = rtm_ms_until_s(s->claims.exp, s->b->cfg->expiry_margin_ms);
        rtm_timer_in(s->b->timers, &s->expiry_t, expiry_cb, at);
    }
    ext_arm_notice(s);
}

static char *hdr_dup(struct lws *wsi, enum lws_token_indexes h, size_t max)
{
    int n = lws_hdr_total_length(wsi, h);
    if (n <= 0) return NULL;
    if ((size_t)n > max) n = (int)max;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    if (lws_hdr_copy(wsi, s, n + 1, h) < 0) {
        /* Longer than max: lws refuses a short buffer, so keep nothing. */
        free(s);
        return NULL;
    }
    return s;
}

static void welcome(struct brk_session *s, int resumed, int presence_reset)
{
    struct brk_msg *w = wire_welcome(s, resumed, presence_reset);
    if (!w) {
        sess_close(s, RTM_WIRE_INTERNAL_ERROR, NULL);
        return;
    }
    msg_time(w, RTM_H_WELCOME, s->upgraded_ns);
    sess_enqueue(s, w);
    msg_unref(w);
    sess_shed_claims(s);
}

void sess_shed_claims(struct brk_session *s)
{
    struct rtm_claims *c = &s->claims;
    json_decref(c->metadata);
    json_decref(c->peer_metadata);
    free(c->metadata_text);
    free(c->peer_metadata_text);
    c->metadata = c->peer_metadata = NULL;
    c->metadata_text = c->peer_metadata_text = NULL;
    free(c->kid); /* the session keeps its key as kid_hash */
    c->kid = NULL;
}

/* Refuses a connection before its welcome; reason NULL: the table's message. */
static void reject(struct brk_session *s, enum rtm_wire_err e, const char *reason, const char *remote)
{
    const struct rtm_wire_def *w = rtm_wire(e);
    if (!reason) reason = w->message;
    rtm_metric_inc(RTM_M_WS_REJECTED, 1);
    rtm_log(w->log_level, "ws: refused remote=%s code=%d reason=\"%s\"", remote, w->close_code, reason);
    s->state = SESS_CLOSING;
    s->close_now = 1;
    s->close_code = w->close_code;
    s->close_reason = reason;
    lws_callback_on_writable(s->wsi);
}

/* A connection whose key is not in the view yet (created a moment ago by
 * another process) waits for one fresh poll of the store instead of being
 * refused; its credential is kept here (lws lets the request head go once
 * ESTABLISHED returns, and an auth frame is gone once read). */
struct brk_waiting {
    char *cred;
    int publishable, via_message;
    uint64_t ticket; /* rtm_view_served() >= ticket: the poll has been seen */
};
#define WAITING_MAX 256 /* beyond, an unknown key is refused at once */

static void waiting_unlink(struct brk_session *s)
{
    sess_list_unlink(&s->b->waiting, s);
    s->b->n_waiting--;
}

static void waiting_free(struct brk_session *s)
{
    if (!s->waiting) return;
    waiting_unlink(s);
    free(s->waiting->cred);
    free(s->waiting);
    s->waiting = NULL;
}

static int wait_for_view(struct brk_session *s, const char *cred, int publishable, int via_message)
{
    struct brk_broker *b = s->b;
    if (b->n_waiting >= WAITING_MAX || !(s->waiting = calloc(1, sizeof *s->waiting))) return -1;
    s->waiting->cred = strdup(cred);
    s->waiting->publishable = publishable;
    s->waiting->via_message = via_message;
    /* 0: a view without threads, no poll will come */
    if (!s->waiting->cred || !(s->waiting->ticket = rtm_view_refresh(b->srv->view))) {
        free(s->waiting->cred);
        free(s->waiting);
        s->waiting = NULL;
        return -1;
    }
    sess_list_push(&b->waiting, s);
    b->n_waiting++;
    return 0;
}

/* The app's settings from the view (the defaults while it does not know the app yet). */
static void view_app(struct brk_broker *b, const char *name, struct rtm_app *app)
{
    if (rtm_view_app(b->srv->view, name, app)) {
        /* Not in the view yet: the defaults now, the row written on the writer thread. */
        memset(app, 0, sizeof *app);
        app->resume_window_ms = -1;
        rtm_view_app_ensure(b->srv->view, name);
    }
}

/* The end of an admission: caps, replacement, the session's place (a new
 * one, take's from this node, or place from another node's hand-over with
 * its id rsid), the welcome. */
static void admit_open(struct brk_session *s, const struct rtm_app *appp, struct brk_session *take, const char *rsid,
                       const json_t *place, int via_message)
{
    struct brk_broker *b = s->b;
    const struct rtm_config *cfg = b->cfg;
    const struct rtm_app app = *appp;
    int app_max = app.max_connections > 0 ? app.max_connections : cfg->max_connections_per_app;
    if (!take && !place && ((cfg->max_connections > 0 && b->n_sessions + b->n_held >= cfg->max_connections) ||
                  (app_max > 0 && app_conns_get(b, s->app) + xnode_app_remote(b, s->app) >= app_max))) {
        rtm_claims_free(&s->claims);
        reject(s, RTM_WIRE_OVER_CAPACITY, NULL, s->remote);
        return;
    }

    if (app.duplicate_replace) {
        struct brk_peer *old = peer_find(b, s->app, s->claims.sub);
        for (struct brk_session *x = old ? old->sessions : NULL; x; x = x->peer_next) {
            if (x == take) continue;
            log_info("ws: replaced sid=%s peer=%s", x->sid, x->claims.sub);
            sess_close(x, RTM_WIRE_REPLACED, NULL);
        }
    }
    if (rtm_random_id("ses_", 12, s->sid, sizeof s->sid) || (!take && app_conns_add(b, s->app, 1))) {
        rtm_claims_free(&s->claims);
        reject(s, RTM_WIRE_INTERNAL_ERROR, NULL, s->remote);
        return;
    }
    int failed = take    ? resume_take(s, take)
                 : place ? (peer_attach(s) || resume_import(s, rsid, place))
                         : (peer_attach(s) || (s->ext && resume_register(s)));
    if (failed) {
        if (!take) {
            chan_unsubscribe_all(s);
            htab_del(&b->places, s->rsid);
            peer_detach(s);
            app_conns_add(b, s->app, -1);
        }
        rtm_claims_free(&s->claims);
        reject(s, RTM_WIRE_INTERNAL_ERROR, NULL, s->remote);
        return;
    }
    s->perms = s->claims.perms;
    s->connected_ms = rtm_now_ms();
    s->state = SESS_OPEN;
    s->attached = 1;
    sess_list_push(&b->sessions, s);
    b->n_sessions++;
    rtm_metric_inc(RTM_M_WS_CONNECTS, 1);
    log_info("ws: open sid=%s peer=%s app=%s remote=%s auth=%s", s->sid, s->claims.sub, s->app, s->remote,
             via_message ? "frame" : "request");

    /* A place from another node comes without its presence frames: the
     * member lists are rebuilt by snapshots (presenceReset). */
    int reset = take ? take->presence_lost : place != NULL;
    welcome(s, take || place, reset && (s->perms & RTM_PERM_PRESENCE));
    if (take) resume_finish(s, take);
    if (place) resume_import_finish(s, place);
    sess_arm_expiry(s);
    live_start(s);
    rows_add(b, s, 0);
}

/* Admits a session on its credential (from the request, or from the auth
 * frame of ?auth=message): verification (from the store's view, no store
 * call), Origin, caps, resume, welcome. s->origin, s->user_agent, s->ext and
 * s->resume_req are already set. A key the view does not know yet makes the
 * session wait for one fresh poll when may_wait. */
static void admit(struct brk_session *s, const char *cred, int publishable, int via_message, int may_wait)
{
    struct brk_broker *b = s->b;
    const struct rtm_config *cfg = b->cfg;
    const struct rtm_key *key = NULL;
    enum rtm_wire_err code;
    const char *reason = NULL;
    int rc = auth_connect(b, cred, publishable, &key, &s->claims, &code, &reason);
    if (rc == RTM_ENOTFOUND && may_wait && !wait_for_view(s, cred, publishable, via_message)) return;
    if (rc) {
        reject(s, code, reason, s->remote);
        return;
    }
    s->publishable = publishable;
    if (!auth_origin_allowed(key, s->origin)) {
        rtm_claims_free(&s->claims);
        reject(s, RTM_WIRE_ORIGIN_NOT_ALLOWED, NULL, s->remote);
        return;
    }
    /* A token minted with bind {ip, userAgent} serves only that client. */
    if (!rtm_bind_matches(&s->claims, s->remote, s->user_agent)) {
        rtm_claims_free(&s->claims);
        reject(s, RTM_WIRE_INVALID_TOKEN, "token bound to another client", s->remote);
        return;
    }
    snprintf(s->app, sizeof s->app, "%s", key->app);
    s->kid_hash = auth_kid_hash(key->id);

    struct rtm_app app;
    view_app(b, s->app, &app);

    /* Extensions (docs/EXTENSIONS.md): a resume takes a place that already
     * counts toward the caps, so it is not refused for capacity. */
    struct brk_session *take = NULL;
    if (s->ext && !s->publishable) {
        s->resume_window_ms = app.resume_window_ms >= 0 ? app.resume_window_ms : cfg->resume_window_ms;
        if (s->resume_req[0] && s->resume_window_ms > 0) {
            take = resume_find(b, s->resume_req, s->app, s->claims.sub);
            /* Not here: in cluster mode another node may hold it (xresume.c). */
            if (!take && xresume_ask(s, via_message) == 0) return;
            if (!take) log_info("ws: resume not granted peer=%s app=%s (unknown, expired or not this peer's)",
                                s->claims.sub, s->app);
        }
    }
    admit_open(s, &app, take, NULL, NULL, via_message);
}

int conn_admit_place(struct brk_session *s, const char *rsid, const json_t *place, int via_message)
{
    struct rtm_app app;
    view_app(s->b, s->app, &app);
    if (!place) log_info("ws: resume not granted peer=%s app=%s (no node could hand the place over)", s->claims.sub,
                         s->app);
    admit_open(s, &app, NULL, rsid, place, via_message);
    return place && s->state == SESS_OPEN;
}

void conn_view_refreshed(struct brk_broker *b)
{
    uint64_t served = rtm_view_served(b->srv->view);
    for (struct brk_session *s = b->waiting, *next; s; s = next) {
        next = s->next;
        if (s->waiting->ticket > served) continue;
        struct brk_waiting *w = s->waiting;
        s->waiting = NULL;
        waiting_unlink(s); /* w stays alive: admit reads its credential */
        if (b->shutting_down) reject(s, RTM_WIRE_SHUTTING_DOWN, NULL, s->remote);
        else admit(s, w->cred, w->publishable, w->via_message, 0);
        free(w->cred);
        free(w);
    }
}

/* A query argument into b->scratch (NULL when absent). The scratch buffer,
 * not a small one: lws stops looking at the first argument longer than the
 * buffer, which may be the token. */
static const char *url_arg(struct brk_broker *b, struct lws *wsi, const char *name)
{
    return lws_get_urlarg_by_name(wsi, name, b->scratch, BRK_SCRATCH - 1);
}

static void on_established(struct brk_session *s, struct lws *wsi)
{
    struct brk_broker *b = broker_of(wsi);
    const struct rtm_config *cfg = b->cfg;
    s->upgraded_ns = rtm_mono_ns(); /* rtm_ws_welcome_seconds starts here */
    s->wsi = wsi;
    s->b = b;
    outq_init(&s->q);
    htab_init(&s->subs, HTAB_PTR);
    /* lws writes its error text into the buffer when the socket is already gone. */
    char peer[sizeof s->remote];
    if (!lws_get_peer_simple(wsi, peer, sizeof peer) || strchr(peer, ' ')) snprintf(peer, sizeof peer, "unknown");
    int via_proxy = rtm_cidr_match(cfg->trusted_cidrs, cfg->n_trusted_proxies, peer);
    const char *xff = NULL;
    if (via_proxy && lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) > 0 &&
        lws_hdr_copy(wsi, b->scratch, BRK_SCRATCH, WSI_TOKEN_X_FORWARDED_FOR) > 0)
        xff = b->scratch;
    rtm_client_addr(cfg->trusted_cidrs, cfg->n_trusted_proxies, peer, xff, s->remote, sizeof s->remote);
    /* Behind a trusted proxy the per-address connect rate is counted here,
     * on the client's address (at accept only the proxy's is known). */
    if (via_proxy && limit_connect_ip(b, s->remote, "after the request head")) {
        reject(s, RTM_WIRE_SENDING_TOO_FAST, "too many connects from this address", s->remote);
        return;
    }

    if (b->shutting_down) {
        reject(s, RTM_WIRE_SHUTTING_DOWN, NULL, s->remote);
        return;
    }
    /* Everything the admission needs from the request head is taken now:
     * with ?auth=message it happens later, when lws has freed the head. */
    s->origin = hdr_dup(wsi, WSI_TOKEN_ORIGIN, 512);
    s->user_agent = hdr_dup(wsi, WSI_TOKEN_HTTP_USER_AGENT, 512);
    const char *v = url_arg(b, wsi, "ext=");
    s->ext = v && strcmp(v, "1") == 0;
    v = url_arg(b, wsi, "resume=");
    if (v && strlen(v) < sizeof s->resume_req) snprintf(s->resume_req, sizeof s->resume_req, "%s", v);
    v = url_arg(b, wsi, "auth=");
    if (v && strcmp(v, "message") == 0) {
        authmsg_begin(s); /* the token comes in the first frame (handle_message) */
        return;
    }
    int publishable;
    const char *cred = auth_find_credential(b, wsi, &publishable);
    if (!cred) {
        reject(s, RTM_WIRE_INVALID_TOKEN, "missing token", s->remote);
        return;
    }
    admit(s, cred, publishable, 0, 1);
}

/* ---- inbound ---- */

/* A rule broken by a client that may still be sending: close, lingering. */
static void close_violation(struct brk_session *s, enum rtm_wire_err e)
{
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
    s->close_now = 1;
    s->linger = 1;
    sess_close(s, e, NULL);
}

static void handle_message(struct brk_session *s, const unsigned char *data, size_t len)
{
    if (s->state == SESS_AUTH) { /* ?auth=message: nothing but the auth frame is read first */
        char *token = utf8_valid(data, len) ? authmsg_token(s, (const char *)data, len) : NULL;
        if (!token && s->state == SESS_AUTH) {
            authmsg_end(s);
            reject(s, RTM_WIRE_AUTH_EXPECTED, NULL, s->remote);
        }
        if (!token) return;
        admit(s, token, 0, 1, 0); /* no wait for the view here: the auth frame was the one chance */
        memset(token, 0, strlen(token));
        free(token);
        return;
    }
    s->frames_in++;
    rtm_metric_inc(RTM_M_FRAMES_IN, 1);
    if (!utf8_valid(data, len)) {
        close_violation(s, RTM_WIRE_INVALID_UTF8);
        return;
    }
    if (limit_frame(s)) {
        /* Dropped. The error is skipped while the client's own queue is half
         * full, so a flood cannot turn into a flood of errors. */
        size_t cap = s->b->cfg->queue_bytes > 0 ? (size_t)s->b->cfg->queue_bytes : 0;
        if (s->state == SESS_OPEN && (!cap || s->q.bytes < cap / 2)) {
            char rid[RTM_MAX_REQUEST_ID * 4 + 1];
            int has = request_id_peek((const char *)data, len, rid, sizeof rid) > 0;
            sess_error(s, RTM_WIRE_OVER_MESSAGE_QUOTA, NULL, has ? rid : NULL);
        }
        return;
    }
    frame_handle(s, (const char *)data, len);
}

static void on_receive(struct brk_session *s, struct lws *wsi, const unsigned char *in, size_t len)
{
    if (s->state != SESS_OPEN && s->state != SESS_AUTH) return; /* closing or lingering: nothing more */
    if (s->state == SESS_OPEN) {
        live_seen(s);
        rxdrain_seen(s, len, RX_CHUNK + LWS_PRE); /* lws reads rx_buffer_size + LWS_PRE at a time */
    }
    const struct rtm_config *cfg = s->b->cfg;
    size_t max = cfg->max_message_size > 0 ? (size_t)cfg->max_message_size : RX_HARD_CAP;
    s->bytes_in += len;
    if (lws_frame_is_binary(wsi)) {
        if (s->state == SESS_AUTH) { /* nothing but the auth frame first */
            authmsg_end(s);
            reject(s, RTM_WIRE_AUTH_EXPECTED, NULL, s->remote);
            return;
        }
        close_violation(s, RTM_WIRE_BINARY_FRAME);
        return;
    }
    /* The frame header announces its length: lws hands the payload over in
     * pieces of at most RX_CHUNK, and with the first piece what remains is
     * known, so a frame announcing more than the bound is refused at once,
     * before any of it is kept (a fragment counts what came before it). */
    size_t remaining = lws_remaining_packet_payload(wsi);
    if (s->rx_len + len > max || remaining > max - s->rx_len - len) {
        close_violation(s, RTM_WIRE_MESSAGE_TOO_BIG);
        return;
    }
    int final = lws_is_final_fragment(wsi) && remaining == 0;
    if (!s->rx && final) {
        handle_message(s, in, len);
        return;
    }
    /* Fragmented: reassemble into a buffer that exists only until the message ends. */
    unsigned char *n = realloc(s->rx, s->rx_len + len + 1);
    if (!n) {
        s->close_now = 1;
        sess_close(s, RTM_WIRE_INTERNAL_ERROR, NULL);
        return;
    }
    s->rx = n;
    memcpy(s->rx + s->rx_len, in, len);
    s->rx_len += len;
    if (!final) return;
    unsigned char *msg = s->rx;
    size_t mlen = s->rx_len;
    s->rx = NULL;
    s->rx_len = 0;
    handle_message(s, msg, mlen);
    free(msg);
}

/* ---- close ---- */

static void on_peer_close(struct brk_session *s, const unsigned char *in, size_t len)
{
    if (len >= 2) {
        s->peer_close_code = (in[0] << 8) | in[1];
        /* Kept for the session's row; rare, so on the heap (out of memory:
         * the row goes without the reason). A close frame holds 123 at most. */
        size_t rl = len - 2 < 123 ? len - 2 : 123;
        free(s->peer_close_reason);
        s->peer_close_reason = rl ? strndup((const char *)in + 2, rl) : NULL;
    } else {
        s->peer_close_code = RTM_CLOSE_NO_STATUS;
    }
}

/* Takes a session out of every table (or hands its place to a held copy):
 * from CLOSED, or earlier when a lingering close starts. Once. */
static void detach(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    if (!s->attached) return;
    rtm_timer_cancel(b->timers, &s->expiry_t);
    rtm_timer_cancel(b->timers, &s->notice_t);
    limits_session_end(s);
    if (!s->sent_close) {
        if (s->peer_close_code) {
            s->close_code = s->peer_close_code;
            s->close_reason = s->peer_close_reason;
        } else {
            s->close_code = RTM_CLOSE_ABNORMAL;
            s->close_reason = "connection lost";
        }
    }
    rows_add(b, s, 1);
    log_info("ws: closed sid=%s peer=%s app=%s code=%d in=%llu out=%llu", s->sid, s->claims.sub, s->app,
             s->close_code, (unsigned long long)s->frames_in, (unsigned long long)s->frames_out);
    /* An extension session that dropped uncleanly keeps its place (peer,
     * subscriptions, app count) in a held copy for the resume window. */
    if (!resume_on_close(s)) {
        chan_unsubscribe_all(s);
        peer_detach(s);
        app_conns_add(b, s->app, -1);
    }
    sess_list_unlink(&b->sessions, s);
    b->n_sessions--;
    s->attached = 0;
}

static void on_closed(struct brk_session *s)
{
    if (!s->b) return;
    rxdrain_forget(s);
    if (s->tx_dirty) {
        for (uint32_t i = 0; i < s->b->n_flush; i++)
            if (s->b->flush[i] == s) s->b->flush[i] = NULL;
        s->tx_dirty = 0;
    }
    waiting_free(s);
    ext_refresh_forget(s); /* before detach: a held copy keeps no refresh_waiting */
    xnode_session_closed(s);
    authmsg_end(s);
    detach(s);
    msg_unref(s->resume_unsubscribed);
    s->resume_unsubscribed = NULL;
    outq_clear(&s->q);
    htab_free(&s->subs);
    seq_free(s);
    free(s->rx);
    free(s->origin);
    free(s->user_agent);
    free(s->peer_close_reason);
    rtm_claims_free(&s->claims);
    s->rx = NULL;
    s->origin = s->user_agent = s->peer_close_reason = NULL;
    s->close_reason = NULL;
    s->b = NULL;
}

/* ---- the callback ---- */

int brk_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct brk_session *s = user;
    struct brk_broker *b;
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* user is the accept arguments here, not a session */
        return (b = broker_of(wsi)) ? limit_accept(b, user) : 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        log_debug("ws: pong sid=%s", s && s->b ? s->sid : "-");
        if (s && s->b && s->state == SESS_OPEN) live_seen(s);
        return 0;
    case LWS_CALLBACK_PROTOCOL_INIT:
        if ((b = broker_of(wsi))) broker_loop_ready(b, lws_get_context(wsi));
        return 0;
    case LWS_CALLBACK_PROTOCOL_DESTROY:
        /* After every session's CLOSED, before the context is freed: the
         * broker's timers must not outlive the loop they are scheduled on. */
        if ((b = broker_of(wsi))) broker_loop_gone(b);
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        if (!broker_of(wsi)) return -1;
        on_established(s, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (s && s->b) on_receive(s, wsi, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s && s->b ? on_writeable(s) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* Lingering: everything up to the client's close is read; go now
         * (lws would echo a close frame on the shut write side). */
        if (s && s->lingering) return -1;
        if (s && s->b) on_peer_close(s, in, len);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (s) on_closed(s);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: /* woken by the view's threads (or a signal) */
        if ((b = broker_of(wsi)) && b->srv->view) rtm_view_drain(b->srv->view);
        return 0;
    default:
        return brk_http(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"rtm.v1", callback, sizeof(struct brk_session), RX_CHUNK, 0, NULL, LWS_PRE + WRITE_BUDGET},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

const struct lws_protocols *brk_protocols(void) { return protocols; }
