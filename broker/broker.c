/* broker.c: the broker's lifetime, the batched session rows, and the
 * functions the mint API and main call (peers, kick, server publish,
 * revocations, shutdown).
 *
 * Session rows never touch sqlite on the message path: a row is copied into
 * an in-memory batch when a session opens and when it closes, and a timer
 * writes the batch in one transaction every session-flush-ms. The batch is
 * bounded (ROWS_MAX); at the bound it is written at once. */
#include "internal.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "server.h"
#include "util.h"
#include "json_dump.h"

#include <stdlib.h>
#include <string.h>

#define ROWS_MAX 4096

int brk_create(struct rtm_server *srv, struct brk_broker **out)
{
    struct brk_broker *b = calloc(1, sizeof *b);
    if (!b) return RTM_ENOMEM;
    b->srv = srv;
    b->cfg = srv->cfg;
    b->timers = srv->timers;
    htab_init(&b->peers, HTAB_STR);
    htab_init(&b->channels, HTAB_STR);
    htab_init(&b->conn_ips, HTAB_STR);
    htab_init(&b->app_conns, HTAB_STR);
    htab_init(&b->places, HTAB_STR);
    b->snapshot_wait_ms = -1;
    htab_init(&b->unauth_ips, HTAB_STR);
    b->scratch = malloc(BRK_SCRATCH);
    b->wbuf = malloc(LWS_PRE + BRK_SCRATCH);
    if (!b->scratch || !b->wbuf || !b->timers) {
        brk_destroy(b);
        return RTM_ENOMEM;
    }
    if (b->cfg->cluster && *b->cfg->cluster) {
        char err[256];
        int rc = xnode_create(b, err, sizeof err);
        if (rc) {
            log_error("rtmd: %s", err);
            brk_destroy(b);
            return rc;
        }
    }
    *out = b;
    return 0;
}

static void rows_free(struct brk_broker *b)
{
    for (size_t i = 0; i < b->n_rows; i++) {
        free(b->rows[i].origin);
        free(b->rows[i].user_agent);
    }
    b->n_rows = 0;
}

void brk_flush_sessions(struct brk_broker *b)
{
    if (!b || !b->n_rows) return;
    int rc = rtm_store_sessions_write(b->srv->store, b->rows, b->n_rows);
    if (rc) log_error("broker: writing %zu session rows failed: %s", b->n_rows, rtm_err_str(rc));
    rows_free(b);
}

static void flush_cb(struct rtm_timer *t)
{
    struct brk_broker *b = lws_container_of(t, struct brk_broker, flush_t);
    b->flush_armed = 0;
    brk_flush_sessions(b);
}

void rows_add(struct brk_broker *b, const struct brk_session *s, int closing)
{
    if (b->n_rows == b->cap_rows) {
        if (b->cap_rows >= ROWS_MAX) {
            brk_flush_sessions(b); /* the bound: write now rather than grow */
        } else {
            size_t cap = b->cap_rows ? b->cap_rows * 2 : 64;
            struct rtm_session_row *r = realloc(b->rows, cap * sizeof *r);
            if (!r) {
                brk_flush_sessions(b);
            } else {
                b->rows = r;
                b->cap_rows = cap;
            }
        }
    }
    if (b->n_rows == b->cap_rows) {
        log_error("broker: no room for the session row of sid=%s", s->sid);
        return;
    }
    if (b->n_rows == 0) b->rows_oldest_ms = rtm_mono_ms();
    struct rtm_session_row *r = &b->rows[b->n_rows++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", s->sid);
    snprintf(r->app, sizeof r->app, "%s", s->app);
    snprintf(r->peer_id, sizeof r->peer_id, "%s", s->claims.sub ? s->claims.sub : "");
    snprintf(r->jti, sizeof r->jti, "%s", s->claims.jti ? s->claims.jti : "");
    snprintf(r->remote_addr, sizeof r->remote_addr, "%s", s->remote);
    r->origin = s->origin ? strdup(s->origin) : NULL;
    r->user_agent = s->user_agent ? strdup(s->user_agent) : NULL;
    r->connected_ms = s->connected_ms;
    if (closing) {
        r->closed_ms = rtm_now_ms();
        r->close_code = s->close_code;
        snprintf(r->close_reason, sizeof r->close_reason, "%s", s->close_reason);
    }
    r->frames_in = s->frames_in;
    r->frames_out = s->frames_out;
    r->bytes_in = s->bytes_in;
    r->bytes_out = s->bytes_out;
    if (!b->flush_armed && b->ctx) {
        b->flush_armed = 1;
        int ms = b->cfg->session_flush_ms > 0 ? b->cfg->session_flush_ms : 200;
        rtm_timer_in(b->timers, &b->flush_t, flush_cb, ms);
    }
}

void broker_loop_ready(struct brk_broker *b, struct lws_context *ctx)
{
    if (b->ctx) return; /* PROTOCOL_INIT comes once per vhost */
    b->ctx = ctx;
    /* Revocations already stored were enforced at connect; only newer ones concern live sessions. */
    json_t *rows = NULL;
    int64_t last = 0;
    if (rtm_store_revocations_since(b->srv->store, 0, &rows, &last) == 0) b->revocations_seen = last;
    json_decref(rows);
    retention_start(b);
    xnode_start(b, ctx);
}

void broker_loop_gone(struct brk_broker *b)
{
    if (!b->ctx) return;
    resume_destroy(b); /* held places have timers on this loop; their leaves go in the flush below */
    rtm_timer_cancel(b->timers, &b->presence_t);
    rtm_timer_cancel(b->timers, &b->snapshot_t);
    rtm_timer_cancel(b->timers, &b->flush_t);
    rtm_timer_cancel(b->timers, &b->ip_prune_t);
    retention_stop(b);
    b->flush_armed = 0;
    xnode_destroy(b); /* its Redis connections live on this loop */
    b->ctx = NULL;
    presence_flush(b); /* frees the channels left dirty by the last closes */
}

void brk_destroy(struct brk_broker *b)
{
    if (!b) return;
    if (b->ctx) broker_loop_gone(b);
    xnode_destroy(b);
    brk_flush_sessions(b);
    free(b->rows);
    limits_destroy(b);
    authmsg_destroy(b);
    resume_destroy(b);
    htab_free(&b->places);
    for (uint32_t i = 0; i < b->app_conns.cap; i++)
        if (b->app_conns.slots[i].key) free(b->app_conns.slots[i].val);
    htab_free(&b->app_conns);
    channels_destroy(b);
    /* Peers outlive nothing: every session's CLOSED ran in lws_context_destroy. */
    for (uint32_t i = 0; i < b->peers.cap; i++) {
        struct brk_peer *p = b->peers.slots[i].key ? b->peers.slots[i].val : NULL;
        if (!p) continue;
        peer_set_metadata(p, NULL);
        free(p->key);
        free(p);
    }
    htab_free(&b->peers);
    free(b->scratch);
    free(b->wbuf);
    free(b);
}

int brk_session_count(struct brk_broker *b) { return b ? b->n_sessions : 0; }

int app_conns_get(struct brk_broker *b, const char *app)
{
    struct app_count *c = htab_get(&b->app_conns, app);
    return c ? c->n : 0;
}

int app_conns_add(struct brk_broker *b, const char *app, int delta)
{
    struct app_count *c = htab_get(&b->app_conns, app);
    if (!c) {
        if (delta <= 0) return 0;
        if (!(c = calloc(1, sizeof *c))) return RTM_ENOMEM;
        snprintf(c->app, sizeof c->app, "%s", app);
        if (htab_put(&b->app_conns, c->app, c)) {
            free(c);
            return RTM_ENOMEM;
        }
    }
    c->n += delta;
    if (c->n <= 0) {
        htab_del(&b->app_conns, c->app);
        free(c);
    }
    return 0;
}

/* ---- backend-facing ---- */

void brk_metrics_gauges(struct brk_broker *b)
{
    double subs = 0, queued = 0;
    for (struct brk_session *s = b->sessions; s; s = s->next) {
        subs += s->subs.n;
        queued += (double)s->q.bytes;
    }
    for (uint32_t i = 0; i < b->places.cap; i++) { /* held places keep their frames too */
        struct brk_session *h = b->places.slots[i].key ? b->places.slots[i].val : NULL;
        if (h && h->state == SESS_HELD) queued += (double)h->q.bytes;
    }
    rtm_gauges[RTM_G_SESSIONS] = b->n_sessions;
    rtm_gauges[RTM_G_HELD_PLACES] = b->n_held;
    rtm_gauges[RTM_G_CHANNELS] = b->channels.n;
    rtm_gauges[RTM_G_SUBSCRIPTIONS] = subs;
    rtm_gauges[RTM_G_QUEUE_BYTES] = queued;
    rtm_gauges[RTM_G_STORE_WRITE_LAG] = b->n_rows ? (double)(rtm_mono_ms() - b->rows_oldest_ms) / 1e3 : 0;
    xnode_metrics_gauges(b);
}

json_t *brk_peers(struct brk_broker *b, const char *channel) { return brk_peers_app(b, NULL, channel); }

json_t *brk_peers_app(struct brk_broker *b, const char *app, const char *channel)
{
    json_t *out = json_array();
    if (!out) return NULL;
    for (uint32_t i = 0; i < b->peers.cap; i++) {
        struct brk_peer *p = b->peers.slots[i].key ? b->peers.slots[i].val : NULL;
        if (!p || (app && strcmp(p->app, app) != 0)) continue;
        json_t *chans = json_array();
        struct htab seen;
        htab_init(&seen, HTAB_PTR);
        int in_channel = channel == NULL;
        int live = 0, held = 0;
        for (struct brk_session *s = p->sessions; s; s = s->peer_next) {
            /* A held place (resume window) is still in presence, not a connection. */
            if (s->state == SESS_HELD) held++;
            else if (s->state == SESS_OPEN) live++;
            else continue;
            for (uint32_t j = 0; j < s->subs.cap; j++) {
                struct brk_sub *sub = s->subs.slots[j].key ? s->subs.slots[j].val : NULL;
                if (!sub || htab_get(&seen, sub->ch)) continue;
                htab_put(&seen, sub->ch, sub->ch);
                json_array_append_new(chans, json_string(sub->ch->name));
                if (channel && strcmp(sub->ch->name, channel) == 0) in_channel = 1;
            }
        }
        htab_free(&seen);
        if ((!live && !held) || !in_channel) {
            json_decref(chans);
            continue;
        }
        json_t *o = json_pack("{s:s, s:s, s:O?, s:o, s:i}", "peerId", p->peer_id, "app", p->app, "peerMetadata",
                              p->peer_metadata, "channels", chans, "connections", live);
        if (o) json_array_append_new(out, o);
    }
    return out;
}

int brk_kick(struct brk_broker *b, const char *app, const char *peer_id)
{
    if (b->xn) xnode_control(b, CLU_CTL_KICK, app, peer_id); /* the other nodes' sessions of the peer */
    return kick_local(b, app, peer_id);
}

int kick_local(struct brk_broker *b, const char *app, const char *peer_id)
{
    struct brk_peer *p = peer_find(b, app, peer_id);
    int n = 0;
    for (struct brk_session *s = p ? p->sessions : NULL; s; s = s->peer_next) {
        if (s->state == SESS_HELD) {
            sess_close(s, RTM_WIRE_KICKED, NULL); /* a held place goes too */
            n++;
            continue;
        }
        if (s->state != SESS_OPEN) continue;
        log_info("ws: kicked sid=%s peer=%s", s->sid, s->claims.sub);
        s->close_now = 1;
        sess_close(s, RTM_WIRE_KICKED, NULL);
        n++;
    }
    return n;
}

int brk_server_publish(struct brk_broker *b, const char *app, const char *channel, json_t *data)
{
    /* Reserved names are refused on every path, this one included. */
    if (!data || !rtm_channel_valid(channel) || rtm_channel_reserved(channel)) return RTM_EINVAL;
    char *text = rtm_json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return RTM_ENOMEM;
    if (b->xn) {
        /* Every node delivers from Redis; what this node knows is how many
         * subscribers it has itself (docs/KNOWN-GAPS.md). */
        struct brk_channel *ch = chan_find(b, app, channel);
        int local = ch ? (int)ch->subs.n : 0;
        int rc = xnode_publish(b, app, channel, NULL, text, strlen(text), NULL);
        free(text);
        return rc ? rc : local;
    }
    int n = chan_publish(b, app, channel, NULL, text, strlen(text));
    free(text);
    return n;
}

static int revocation_matches(const struct brk_session *s, void *arg)
{
    json_t *row = arg;
    const char *app = json_string_value(json_object_get(row, "app"));
    if (!app || strcmp(app, s->app) != 0) return 0;
    const char *jti = json_string_value(json_object_get(row, "jti"));
    if (jti && s->claims.jti && *jti && strcmp(jti, s->claims.jti) == 0) return 1;
    const char *peer = json_string_value(json_object_get(row, "peerId"));
    json_t *before = json_object_get(row, "before");
    if (peer && strcmp(peer, s->claims.sub) == 0)
        return !json_is_integer(before) || s->claims.iat < json_integer_value(before);
    return 0;
}

void brk_revocations_changed(struct brk_broker *b)
{
    /* The other nodes read the same store: they are told to read it now. */
    if (b->xn) xnode_control(b, CLU_CTL_REVOKED, "", "");
    revocations_local(b);
}

void revocations_local(struct brk_broker *b)
{
    json_t *rows = NULL;
    int64_t last = b->revocations_seen;
    if (rtm_store_revocations_since(b->srv->store, b->revocations_seen, &rows, &last)) {
        log_error("broker: cannot read revocations");
        return;
    }
    b->revocations_seen = last;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        for (struct brk_session *s = b->sessions; s; s = s->next) {
            if (s->state != SESS_OPEN || !revocation_matches(s, row)) continue;
            log_info("ws: revoked sid=%s peer=%s", s->sid, s->claims.sub);
            s->close_now = 1;
            sess_close(s, RTM_WIRE_INVALID_TOKEN, "token revoked");
        }
        /* A held place (its connection just dropped) is the same token: it
         * ends now, so the peer leaves presence at once. */
        int n = resume_end_held(b, revocation_matches, row);
        if (n) log_info("ws: revocation ended %d held place(s)", n);
    }
    json_decref(rows);
}

void brk_begin_shutdown(struct brk_broker *b, int retry_after_ms)
{
    if (!b) return;
    b->shutting_down = 1;
    for (struct brk_session *s = b->sessions; s; s = s->next) {
        if (s->state != SESS_OPEN) continue;
        sess_send_going_away(s, retry_after_ms);
        sess_close(s, RTM_WIRE_SHUTTING_DOWN, NULL);
    }
}
