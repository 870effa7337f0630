/* refresh.c: in-band token refresh and the token_expiring notice, for
 * extension sessions (docs/EXTENSIONS.md).
 *
 * A refresh token goes through the connect path's own verifier (key, pinned
 * algorithm, signature, expiry, claims, revocation, the key's Origins) and
 * must name the same peer of the same app. Everything is checked before
 * anything changes, so a refusal leaves the session exactly as it was; on
 * success the new claims replace the old ones in one step, subscriptions the
 * new token does not allow are dropped (presence tells the others), and the
 * expiry timers are re-armed for the new exp. */
#include "internal.h"
#include "bind.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "pattern.h"
#include "protocol.h"
#include "store.h"
#include "util.h"

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

void ext_refresh(struct brk_session *s, const char *token, const char *rid)
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
    if (auth_verify_token(b, token, &key, &c, &reason)) {
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
