/* auth_message.c: the connect form that keeps tokens out of URLs
 * (GET /v1?auth=message, docs/EXTENSIONS.md): the socket is upgraded without
 * a credential and its first frame must be {"type":"auth","token":"<jwt>"},
 * within auth-timeout-ms, else 4001 "auth timeout"; nothing else is read
 * before it.
 *
 * Design: such a socket is a session in state SESS_AUTH: not in any table,
 * holding only what the request head said (Origin, User-Agent, ext, resume:
 * lws frees the head after the upgrade), one timer, and a place in the
 * unauthenticated count. That count is bounded overall and per address
 * (max-unauthenticated, max-unauthenticated-per-ip) and is taken at the
 * upgrade, so together with the listener's handshake budget (rtmd/listen.c,
 * from accept to the upgrade) an unauthenticated socket is counted from
 * accept until its token is checked. Over a bound the socket is closed at
 * once with 4010. The admission itself stays in conn.c: this file only hands
 * back the token. */
#include "internal.h"

#include "ipcount.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* level: the table's level, or debug for a refusal whose episode is logged once. */
static void refuse_at(struct brk_session *s, enum rtm_wire_err e, int level)
{
    const struct rtm_wire_def *w = rtm_wire(e);
    rtm_metric_inc(RTM_M_WS_REJECTED, 1);
    rtm_log(level, "ws: refused remote=%s code=%d reason=\"%s\"", s->remote, w->close_code, w->message);
    s->close_now = 1;
    sess_close(s, e, NULL);
}

static void refuse(struct brk_session *s, enum rtm_wire_err e) { refuse_at(s, e, rtm_wire(e)->log_level); }

static void timeout_cb(struct rtm_timer *t)
{
    struct brk_session *s = lws_container_of(t, struct brk_session, auth_t);
    if (s->state == SESS_AUTH) refuse(s, RTM_WIRE_AUTH_TIMEOUT);
}

int authmsg_begin(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    const struct rtm_config *cfg = b->cfg;
    int from_ip = rtm_ipcount_get(&b->unauth_ips, s->remote);
    if (b->n_unauth >= cfg->max_unauthenticated || from_ip >= cfg->max_unauthenticated_per_ip) {
        if (!b->unauth_full_logged) log_warn("ws: unauthenticated sockets at their bound (%d, from %s at %d)",
                                             b->n_unauth, s->remote, from_ip);
        b->unauth_full_logged = 1;
        /* one warning per episode (above), not one per refused socket of a flood */
        refuse_at(s, RTM_WIRE_UNAUTHENTICATED_LIMIT, RTM_LOG_DEBUG);
        return -1;
    }
    struct rtm_ipcount *u = rtm_ipcount_add(&b->unauth_ips, s->remote);
    if (!u) goto oom;
    if (rtm_timer_in(b->timers, &s->auth_t, timeout_cb, cfg->auth_timeout_ms)) {
        rtm_ipcount_drop(&b->unauth_ips, u);
        goto oom;
    }
    b->n_unauth++;
    s->unauth_counted = 1;
    s->state = SESS_AUTH;
    return 0;
oom:
    refuse(s, RTM_WIRE_INTERNAL_ERROR);
    return -1;
}

void authmsg_end(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    rtm_timer_cancel(b->timers, &s->auth_t);
    if (!s->unauth_counted) return;
    s->unauth_counted = 0;
    b->n_unauth--;
    if (b->n_unauth < b->cfg->max_unauthenticated / 2) b->unauth_full_logged = 0;
    struct rtm_ipcount *u = htab_get(&b->unauth_ips, s->remote);
    if (u) rtm_ipcount_drop(&b->unauth_ips, u);
}

char *authmsg_token(struct brk_session *s, const char *text, size_t len)
{
    authmsg_end(s);
    const struct rtm_frame_def *def = rtm_frame_find(0, "auth");
    json_error_t e;
    json_t *f = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    const char *type = json_string_value(json_object_get(f, "type"));
    json_t *tv = json_object_get(f, "token");
    const char *tok = json_string_value(tv);
    char *out = NULL;
    if (def && json_is_object(f) && type && !strcmp(type, def->type) && tok && *tok &&
        strlen(tok) == json_string_length(tv)) {
        /* An oversize token is refused by auth_connect, as on the request. */
        if (!(out = strdup(tok))) refuse(s, RTM_WIRE_INTERNAL_ERROR);
    } else {
        refuse(s, RTM_WIRE_AUTH_EXPECTED);
    }
    json_decref(f);
    return out;
}

void authmsg_destroy(struct brk_broker *b)
{
    rtm_ipcount_free(&b->unauth_ips);
}
