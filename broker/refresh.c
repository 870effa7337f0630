/* refresh.c: in-band token refresh and the token_expiring notice, for
 * extension sessions (docs/EXTENSIONS.md).
 *
 * A refresh token goes through the connect path's own verifier (key, pinned
 * algorithm, signature, expiry, claims, revocation, the key's Origins) and
 * must name the same peer of the same app. Everything is checked before
 * anything changes, so a refusal leaves the session exactly as it was; on
 * success the new claims replace the old ones in one step, subscriptions the
 * new token does not allow are dropped (presence tells the others), and the
 * expiry timers are re-armed for the new exp.
 *
 * A token whose key the store's view does not know yet (created a moment ago
 * by another process) waits, as a connect does (conn.c), for one fresh poll
 * of the store and is then decided as above. */
#include "internal.h"
#include "bind.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "pattern.h"
#include "protocol.h"
#include "server.h"
#include "store.h"
#include "util.h"
#include "view.h"

#include <stdlib.h>
#include <string.h>

/* ---- token_expiring ---- */

static void notice_cb(struct rtm_timer *t)
{
    struct brk_session *s = lws_container_of(t, struct brk_session, notice_t);
    if (s->state != SESS_OPEN) return;
    struct brk_msg *msg = wire_token_expiring(s->claims.exp);
    if (!msg) return;
    sess_enqueue(s, msg);
    msg_unref(msg);
}

void ext_arm_notice(struct brk_session *s)
{
    rtm_timer_cancel(s->b->timers, &s->notice_t);
    int notice = s->b->cfg->token_expiring_notice_sec;
    if (!s->ext || s->publishable || s->claims.exp <= 0 || notice <= 0) return;
    int64_t at = rtm_ms_until_s(s->claims.exp, (int64_t)notice * 1000); /* saturating, never overflows */
    if (at < 1) at = 1; /* less left than the notice: at once (after the welcome) */
    rtm_timer_in(s->b->timers, &s->notice_t, notice_cb, at);
}

/* ---- narrowing ---- */

static int sub_allowed(const struct brk_session *s, const char *channel)
{
    return (s->perms & RTM_PERM_SUBSCRIBE) &&
           rtm_pattern_match_any(s->claims.channels, s->claims.n_channels, channel);
}

struct brk_msg *ext_adopt_claims(struct brk_session *s)
{
    s->perms = s->claims.perms;
    if (s->peer) peer_set_metadata(s->peer, s->claims.peer_metadata, s->claims.peer_metadata_text);
    return ext_narrow_subs(s);
}

struct brk_msg *ext_narrow_subs(struct brk_session *s)
{
    if (!s->subs.n) return NULL;
    uint32_t n = 0;
    struct brk_channel **drop = malloc(s->subs.n * sizeof *drop);
    if (!drop) {
        /* Cannot collect: drop everything rather than keep what is not allowed. */
        log_error("broker: out of memory narrowing subscriptions of sid=%s: dropping all", s->sid);
        chan_unsubscribe_all(s);
        return NULL;
    }
    for (uint32_t i = 0; i < s->subs.cap; i++) {
        struct brk_sub *sub = s->subs.slots[i].key ? s->subs.slots[i].val : NULL;
        if (sub && !sub_allowed(s, sub->ch->name)) drop[n++] = sub->ch;
    }
    /* The names go into the frame before the channels may be freed. */
    struct brk_msg *told = n ? wire_unsubscribed(drop, n) : NULL;
    if (n && !told) log_error("broker: out of memory telling sid=%s which subscriptions ended", s->sid);
    /* Each channel is touched once and may be freed by its own unsubscribe. */
    for (uint32_t i = 0; i < n; i++) chan_unsubscribe(s, drop[i]->name);
    free(drop);
    return told;
}

/* ---- refresh ---- */

static void refuse(struct brk_session *s, const char *reason, const char *rid)
{
    rtm_metric_inc(RTM_M_REFRESH_REFUSED, 1);
    log_info("ws: refresh refused sid=%s peer=%s reason=\"%s\"", s->sid, s->claims.sub, reason);
    sess_error(s, RTM_WIRE_INVALID_TOKEN, reason, rid);
}

/* A refresh waiting for the view: at most one per session (s->refresh_waiting)
 * and REFRESH_WAITING_MAX in the broker, beside conn.c's WAITING_MAX for
 * connects; beyond either, "unknown key" at once, as without the wait. The
 * session's other frames do not wait for it. Listed on b->refresh_waits;
 * freed when answered or when its session closes (ext_refresh_forget). */
struct brk_refresh_wait {
    struct brk_session *s;
    char *token, *rid;  /* copies: the frame is gone once handled; rid may be NULL */
    uint64_t ticket;    /* rtm_view_served() >= ticket: the poll has been seen */
    struct brk_refresh_wait *next, *prev;
};
#define REFRESH_WAITING_MAX 256

static void wait_free(struct brk_broker *b, struct brk_refresh_wait *w)
{
    if (w->prev) w->prev->next = w->next;
    else b->refresh_waits = w->next;
    if (w->next) w->next->prev = w->prev;
    b->n_refresh_waits--;
    w->s->refresh_waiting = 0;
    free(w->token);
    free(w->rid);
    free(w);
}

/* 0: the refresh waits; -1: it cannot (a bound, no memory, a view without threads). */
static int wait_for_view(struct brk_session *s, const char *token, const char *rid)
{
    struct brk_broker *b = s->b;
    if (s->refresh_waiting || b->n_refresh_waits >= REFRESH_WAITING_MAX) return -1;
    struct brk_refresh_wait *w = calloc(1, sizeof *w);
    if (!w) return -1;
    w->s = s;
    w->token = strdup(token);
    w->rid = rid ? strdup(rid) : NULL;
    /* ticket 0: a view without threads, no poll will come */
    if (!w->token || (rid && !w->rid) || !(w->ticket = rtm_view_refresh(b->srv->view))) {
        free(w->token);
        free(w->rid);
        free(w);
        return -1;
    }
    w->next = b->refresh_waits;
    if (w->next) w->next->prev = w;
    b->refresh_waits = w;
    b->n_refresh_waits++;
    s->refresh_waiting = 1;
    log_debug("ws: refresh waits for the store's view sid=%s peer=%s", s->sid, s->claims.sub);
    return 0;
}

static void refresh(struct brk_session *s, const char *token, const char *rid, int may_wait)
{
    struct brk_broker *b = s->b;
    const struct rtm_key *key = NULL;
    struct rtm_claims c;
    const char *reason = "invalid token";
    memset(&c, 0, sizeof c);
    if (s->publishable) {
        refuse(s, "publishable key sessions do not expire", rid);
        return;
    }
    int rc = auth_verify_token(b, token, &key, &c, &reason);
    if (rc == RTM_ENOTFOUND && may_wait && !wait_for_view(s, token, rid)) return;
    if (rc) {
        refuse(s, reason, rid);
        return;
    }
    if (strcmp(key->app, s->app) != 0) reason = "app mismatch";
    else if (strcmp(c.sub, s->claims.sub) != 0) reason = "peer mismatch";
    else if (!auth_origin_allowed(key, s->origin)) reason = "origin not allowed";
    else if (!rtm_bind_matches(&c, s->remote, s->user_agent)) reason = "token bound to another client";
    else reason = NULL;
    if (!reason) s->kid_hash = auth_kid_hash(key->id); /* the session now lives on this key */
    if (reason) {
        rtm_claims_free(&c);
        refuse(s, reason, rid);
        return;
    }

    json_t *meta = c.metadata;
    c.metadata = NULL; /* kept only for the ack: an idle session holds no private metadata */
    rtm_claims_free(&s->claims);
    s->claims = c;
    struct brk_msg *ended = ext_adopt_claims(s);
    sess_shed_claims(s);
    if (ended) { /* before the ack: when the client reads the ack, its lists are right */
        sess_enqueue(s, ended);
        msg_unref(ended);
    }
    sess_arm_expiry(s);
    rtm_metric_inc(RTM_M_REFRESH_OK, 1);
    log_info("ws: refreshed sid=%s peer=%s exp=%lld", s->sid, s->claims.sub, (long long)s->claims.exp);

    if (rid) {
        struct brk_msg *ack = wire_refresh_ack(rid, s->claims.exp, meta);
        if (ack) {
            sess_enqueue(s, ack);
            msg_unref(ack);
        }
    }
    json_decref(meta);
}

void ext_refresh(struct brk_session *s, const char *token, const char *rid) { refresh(s, token, rid, 1); }

void ext_refresh_view_answered(struct brk_broker *b)
{
    uint64_t served = rtm_view_served(b->srv->view);
    for (struct brk_refresh_wait *w = b->refresh_waits, *next; w; w = next) {
        next = w->next;
        if (w->ticket > served) continue;
        struct brk_session *s = w->s;
        char *token = w->token, *rid = w->rid;
        w->token = w->rid = NULL;
        wait_free(b, w);
        /* A session on its way out gets no answer: it reads nothing more. */
        if (s->state == SESS_OPEN) refresh(s, token, rid, 0);
        free(token);
        free(rid);
    }
}

void ext_refresh_forget(struct brk_session *s)
{
    if (!s->refresh_waiting) return;
    for (struct brk_refresh_wait *w = s->b->refresh_waits; w; w = w->next)
        if (w->s == s) {
            wait_free(s->b, w);
            return;
        }
}
