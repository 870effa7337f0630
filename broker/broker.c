/* broker.c: the broker's lifetime, what it hands the store's view (session
 * rows, presence snapshots), and the functions main and the bus call (peers,
 * kick, server publish, revocations and revoked keys, shutdown).
 *
 * The broker never calls the store: a session row is copied to the view's
 * writer thread when a session opens and when it closes (common/view.h
 * bounds and batches them); revocations and revoked keys arrive from the
 * view's poll as calls on the loop and close the matching live sessions. */
#include "internal.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "server.h"
#include "util.h"
#include "bus.h"
#include "view.h"
#include "json_dump.h"

#include <stdlib.h>
#include <string.h>

/* GET /v1/peers snapshots for other processes: at most this often, at most
 * this many peers per app. */
#define PEERS_SNAPSHOT_MS 250
#define PEERS_SNAPSHOT_MAX 10000

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
    htab_init(&b->peers_snapshot_apps, HTAB_STR);
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

/* src (NULL: "") into dst, cut to fit: a row's fields, twice per session
 * (snprintf's "%s" cost ~600 instructions each). */
static void copy_field(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void rows_add(struct brk_broker *b, const struct brk_session *s, int closing)
{
    struct rtm_session_row r;
    memset(&r, 0, sizeof r);
    copy_field(r.id, sizeof r.id, s->sid);
    copy_field(r.app, sizeof r.app, s->app);
    copy_field(r.peer_id, sizeof r.peer_id, s->claims.sub);
    copy_field(r.jti, sizeof r.jti, s->claims.jti);
    copy_field(r.remote_addr, sizeof r.remote_addr, s->remote);
    r.origin = s->origin ? strdup(s->origin) : NULL;
    r.user_agent = s->user_agent ? strdup(s->user_agent) : NULL;
    r.connected_ms = s->connected_ms;
    if (closing) {
        r.closed_ms = rtm_now_ms();
        r.close_code = s->close_code;
        copy_field(r.close_reason, sizeof r.close_reason, s->close_reason);
    }
    r.frames_in = s->frames_in;
    r.frames_out = s->frames_out;
    r.bytes_in = s->bytes_in;
    r.bytes_out = s->bytes_out;
    rtm_view_session_row(b->srv->view, &r);
}

/* ---- presence snapshots (GET /v1/peers from another process) ---- */

static void peers_snapshot_cb(struct rtm_timer *t)
{
    struct brk_broker *b = lws_container_of(t, struct brk_broker, peers_snapshot_t);
    json_t *all = brk_peers_app(b, NULL, NULL);
    if (!all) return;
    /* Split by app: one row per app; an app that emptied gets "[]" (row deleted). */
    struct htab now;
    htab_init(&now, HTAB_STR);
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p)
    {
        const char *app = json_string_value(json_object_get(p, "app"));
        json_t *list = app ? htab_get(&now, app) : NULL;
        if (app && !list && (list = json_array()) && htab_put(&now, app, list)) json_decref(list), list = NULL;
        if (list && json_array_size(list) < PEERS_SNAPSHOT_MAX) json_array_append(list, p);
    }
    for (uint32_t k = 0; k < now.cap; k++) {
        if (!now.slots[k].key) continue;
        char *text = json_dumps(now.slots[k].val, JSON_COMPACT);
        if (text) rtm_view_presence(b->srv->view, now.slots[k].key, text);
        free(text);
        if (!htab_get(&b->peers_snapshot_apps, now.slots[k].key)) {
            char *app = strdup(now.slots[k].key);
            if (app && htab_put(&b->peers_snapshot_apps, app, app)) free(app);
        }
    }
    /* Apps written before and empty now: cleared, and forgotten. */
    for (uint32_t k = 0; k < b->peers_snapshot_apps.cap;) {
        char *app = b->peers_snapshot_apps.slots[k].key ? b->peers_snapshot_apps.slots[k].val : NULL;
        if (app && !htab_get(&now, app)) {
            rtm_view_presence(b->srv->view, app, "[]");
            htab_del(&b->peers_snapshot_apps, app); /* backward shift: slot k holds another entry now */
            free(app);
            continue;
        }
        k++;
    }
    for (uint32_t k = 0; k < now.cap; k++)
        if (now.slots[k].key) json_decref(now.slots[k].val);
    htab_free(&now);
    json_decref(all); /* the keys of now pointed into it: freed last */
}

void presence_changed(struct brk_broker *b)
{
    /* Only a broker-only process has a mint elsewhere to read them; an
     * all-in-one rtmd answers GET /v1/peers from its own tables. */
    if (strcmp(b->cfg->role, "broker") != 0) return;
    if (rtm_timer_armed(&b->peers_snapshot_t) || !b->ctx) return;
    rtm_timer_in(b->timers, &b->peers_snapshot_t, peers_snapshot_cb, PEERS_SNAPSHOT_MS);
}

void broker_loop_ready(struct brk_broker *b, struct lws_context *ctx)
{
    if (b->ctx) return; /* PROTOCOL_INIT comes once per vhost */
    b->ctx = ctx;
    xnode_start(b, ctx);
}

void broker_loop_gone(struct brk_broker *b)
{
    if (!b->ctx) return;
    resume_destroy(b); /* held places have timers on this loop; their leaves go in the flush below */
    rtm_timer_cancel(b->timers, &b->presence_t);
    rtm_timer_cancel(b->timers, &b->snapshot_t);
    rtm_timer_cancel(b->timers, &b->peers_snapshot_t);
    rtm_timer_cancel(b->timers, &b->ip_prune_t);
    xnode_destroy(b); /* its Redis connections live on this loop */
    b->ctx = NULL;
    presence_flush(b); /* frees the channels left dirty by the last closes */
}

void brk_turn_end(struct brk_broker *b)
{
    b->turn_end = 1; /* from now on, sessions' frames wait for it (conn.c want_flush) */
    if (!b->ctx) return;
    rxdrain_run(b);      /* bursts read on first: their frames go out in the same writes */
    conn_flush_turn(b);
}

void brk_destroy(struct brk_broker *b)
{
    if (!b) return;
    if (b->ctx) broker_loop_gone(b);
    xnode_destroy(b);
    for (uint32_t i = 0; i < b->peers_snapshot_apps.cap; i++)
        if (b->peers_snapshot_apps.slots[i].key) free(b->peers_snapshot_apps.slots[i].val);
    htab_free(&b->peers_snapshot_apps);
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
        peer_set_metadata(p, NULL, NULL);
        free(p->key);
        free(p);
    }
    htab_free(&b->peers);
    free(b->scratch);
    free(b->wbuf);
    conn_flush_free(b);
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
        json_t *o = json_pack("{s:s, s:s, s:o?, s:o, s:i}", "peerId", p->peer_id, "app", p->app, "peerMetadata",
                              peer_metadata_json(p), "channels", chans, "connections", live);
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

int brk_server_publish(struct brk_broker *b, const char *app, const char *channel, const char *data)
{
    /* Reserved names are refused on every path, this one included. */
    if (!data || !rtm_channel_valid(channel) || rtm_channel_reserved(channel)) return RTM_EINVAL;
    if (b->xn) {
        /* Every node delivers from Redis; what this node knows is how many
         * subscribers it has itself (docs/KNOWN-GAPS.md). */
        struct brk_channel *ch = chan_find(b, app, channel);
        int local = ch ? (int)ch->subs.n : 0;
        int rc = xnode_publish(b, app, channel, NULL, data, strlen(data), NULL);
        return rc ? rc : local;
    }
    return chan_publish(b, app, channel, NULL, data, strlen(data));
}

static int revocation_matches(const struct brk_session *s, void *arg)
{
    const struct rtm_revocation *r = arg;
    if (strcmp(r->app, s->app) != 0 || s->publishable) return 0;
    if (r->jti) return s->claims.jti && *r->jti && strcmp(r->jti, s->claims.jti) == 0;
    return r->peer_id && strcmp(r->peer_id, s->claims.sub) == 0 && s->claims.iat < r->before;
}

/* A session's credential is gone: it closes at once (its queue is not drained). */
static void revoke_close(struct brk_session *s, enum rtm_wire_err e, const char *reason)
{
    log_info("ws: %s sid=%s peer=%s", reason ? reason : rtm_wire(e)->message, s->sid, s->claims.sub);
    s->close_now = 1;
    sess_close(s, e, reason);
}

int brk_revoked(struct brk_broker *b, const struct rtm_revocation *r)
{
    int live = 0;
    for (struct brk_session *s = b->sessions; s; s = s->next) {
        if (s->state != SESS_OPEN || !revocation_matches(s, (void *)r)) continue;
        revoke_close(s, RTM_WIRE_INVALID_TOKEN, "token revoked");
        live++;
    }
    /* A held place (its connection just dropped) is the same token: it
     * ends now, so the peer leaves presence at once. */
    int n = resume_end_held(b, revocation_matches, (void *)r);
    if (n) log_info("ws: revocation ended %d held place(s)", n);
    return live + n;
}

struct key_match {
    uint64_t kid_hash;
    const char *app;
};

static int key_matches(const struct brk_session *s, void *arg)
{
    const struct key_match *k = arg;
    return s->kid_hash == k->kid_hash && strcmp(s->app, k->app) == 0;
}

void brk_key_revoked(struct brk_broker *b, const char *kid, const char *app)
{
    struct key_match k = {auth_kid_hash(kid), app};
    int n = 0;
    for (struct brk_session *s = b->sessions; s; s = s->next) {
        if (s->state != SESS_OPEN || !key_matches(s, &k)) continue;
        revoke_close(s, RTM_WIRE_KEY_REVOKED, NULL);
        n++;
    }
    int held = resume_end_held(b, key_matches, &k);
    log_info("broker: key %s of app %s revoked: %d live sessions closed with 4012, %d held places ended", kid, app,
             n, held);
}

void brk_view_refreshed(struct brk_broker *b)
{
    conn_view_refreshed(b);
    ext_refresh_view_answered(b);
}

/* Cluster mode: another node stored a revocation; this node's view reads it now. */
void revocations_local(struct brk_broker *b) { rtm_view_refresh(b->srv->view); }

/* ---- wiring: the broker behind the bus and the view's hooks ---- */

static int bus_kick(void *arg, const char *app, const char *peer_id) { return brk_kick(arg, app, peer_id); }
static int bus_publish(void *arg, const char *app, const char *channel, const char *data)
{
    return brk_server_publish(arg, app, channel, data);
}
static json_t *bus_peers(void *arg, const char *app, const char *channel) { return brk_peers_app(arg, app, channel); }
static int bus_revoke(void *arg, const struct rtm_revocation *r) { return brk_revoked(arg, r); }
static int bus_ask_revoked(void *arg, const struct rtm_revocation *r, int closed, rtm_bus_done_fn *done,
                           void *done_arg)
{
    struct brk_broker *b = arg;
    return b->xn ? xrest_ask_revoked(b, r, closed, done, done_arg) : RTM_EINVAL;
}

static int bus_ask(void *arg, enum rtm_bus_op op, const char *app, const char *target, const char *data,
                   rtm_bus_done_fn *done, void *done_arg)
{
    struct brk_broker *b = arg;
    return b->xn ? xrest_ask(b, op, app, target, data, done, done_arg) : RTM_EINVAL;
}

void brk_bus_broker(struct brk_broker *b, struct rtm_bus_broker *out)
{
    *out = (struct rtm_bus_broker){.kick = bus_kick, .publish = bus_publish, .peers = bus_peers,
                                   .revoke = bus_revoke, .ask = b->xn ? bus_ask : NULL,
                                   .ask_revoked = b->xn ? bus_ask_revoked : NULL, .arg = b};
}

/* The hooks reach the broker through the server, so they work before the
 * broker exists and with none (--role mint: they do nothing). */
static void hook_key_revoked(void *arg, const char *kid, const char *app)
{
    struct rtm_server *srv = arg;
    if (srv->broker) brk_key_revoked(srv->broker, kid, app);
}
static void hook_revoked(void *arg, const struct rtm_revocation *r)
{
    struct rtm_server *srv = arg;
    if (!srv->broker) return;
    int n = brk_revoked(srv->broker, r);
    /* Cluster mode: the store's poll beat the question that asks this node to
     * apply it; the question reports these when it comes. */
    if (n > 0 && srv->broker->xn) xrest_revoked_here(srv->broker->xn, r, n);
}
static void hook_outbox(void *arg, const char *kind, const char *app, const char *target, const char *data)
{
    struct rtm_server *srv = arg;
    if (srv->broker && srv->bus) rtm_bus_deliver(srv->bus, kind, app, target, data);
}
static void hook_refreshed(void *arg)
{
    struct rtm_server *srv = arg;
    if (srv->broker) brk_view_refreshed(srv->broker);
}

void brk_view_hooks(struct rtm_server *srv, struct rtm_view_hooks *h)
{
    h->key_revoked = hook_key_revoked;
    h->revoked = hook_revoked;
    h->outbox = hook_outbox;
    h->refreshed = hook_refreshed;
    h->arg = srv;
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
