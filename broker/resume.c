/* resume.c: the resume window and per-pair sequence numbers (issue 7,
 * docs/EXTENSIONS.md), for sessions that asked for the extensions (&ext=1).
 *
 * A *place* is what a session holds at the broker beyond its socket: its
 * peer membership (presence), its subscriptions, its seq counters and its id
 * (rsid, the wire sessionId). lws owns the session struct and frees it after
 * CLOSED, so when an extension session drops without a clean close its place
 * is moved into a heap copy of the struct (state SESS_HELD, wsi NULL): the
 * tables now point at the copy, nobody sees a leave, and the copy's outq
 * collects the directs sent to it and the presence frames of its channels
 * (the shared frames, in the order they were made), bounded by
 * resume-queue-messages and resume-queue-bytes (the oldest dropped; directs
 * counted). A reconnect with the id and a token for the same peer moves the
 * place into the new session and replays the queue; if a presence frame was
 * dropped the member lists cannot be patched, so the presence frames are
 * skipped and each channel gets a fresh snapshot instead. A window that runs
 * out discards the place (leave, queue dropped, counted). In cluster mode a
 * held place can also move to the node the client resumed through
 * (xresume.c drives it): resume_export writes it as JSON, resume_import
 * rebuilds it in the new session there, and the old copy stays a member that
 * takes no frames (moved) until the new node has it.
 *
 * Bounds: held places count toward max-connections (and the app's cap, since
 * the app count is kept while held); with max-connections off they are
 * capped at HELD_MAX, past which a drop is an ordinary close. A held place
 * owns no socket buffers: lws has freed the connection, rx is freed, the
 * outq holds only the queued directs and presence frames. seq counters: at
 * most SEQ_MAX senders per receiving session; past that the counters restart
 * at 1 (documented: the receiver sees a lower seq, never a false gap). */
#include "internal.h"

#include "errors.h"
#include "json_dump.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELD_MAX 65536
#define SEQ_MAX 4096

struct seq_entry {
    uint32_t n;
    char from[]; /* key of s->seqs */
};

/* ---- seq ---- */

void seq_free(struct brk_session *s)
{
    for (uint32_t i = 0; i < s->seqs.cap; i++)
        if (s->seqs.slots[i].key) free(s->seqs.slots[i].val);
    htab_free(&s->seqs);
}

static uint32_t seq_next(struct brk_session *s, const char *from)
{
    struct seq_entry *e = htab_get(&s->seqs, from);
    if (e) return ++e->n;
    if (s->seqs.n >= SEQ_MAX) seq_free(s);
    size_t n = strlen(from) + 1;
    e = malloc(sizeof *e + n);
    if (!e) return 0;
    memcpy(e->from, from, n);
    e->n = 1;
    if (htab_put(&s->seqs, e->from, e)) {
        free(e);
        return 0;
    }
    return 1;
}

/* A frame the held queue could not keep: directs are counted, a presence
 * frame makes the member lists untrustworthy (snapshots on resume). */
static void held_lost(struct brk_session *h, const struct brk_msg *m, uint32_t *dropped)
{
    if (wire_is_presence(m)) h->presence_lost = 1;
    else (*dropped)++;
}

void resume_hold(struct brk_session *h, struct brk_msg *m)
{
    if (h->moved) return; /* handed to another node: a member only */
    const struct rtm_config *cfg = h->b->cfg;
    /* Both bounds are at least 1 (the config table's minimums). */
    uint32_t max_n = cfg->resume_queue_messages > 0 ? (uint32_t)cfg->resume_queue_messages : 1;
    if (max_n > OUTQ_MAX_FRAMES) max_n = OUTQ_MAX_FRAMES; /* the queue's own cap */
    size_t max_b = cfg->resume_queue_bytes > 0 ? (size_t)cfg->resume_queue_bytes : 1024;
    size_t len = msg_frame_len(m);
    uint32_t dropped = 0;
    int lost = 0;
    if (len > max_b) {
        held_lost(h, m, &dropped);
        lost = 1;
        goto out;
    }
    while (h->q.count && (h->q.count + 1 > max_n || h->q.bytes + len > max_b)) {
        held_lost(h, outq_peek(&h->q, 0), &dropped);
        outq_pop(&h->q, 1);
        lost = 1;
    }
    if (outq_push(&h->q, m)) {
        held_lost(h, m, &dropped);
        lost = 1;
    } else if (wire_is_direct(m)) {
        rtm_metric_inc(RTM_M_DIRECT_QUEUED, 1);
    }
out:
    if (lost) {
        /* One line when a place starts dropping, not one per drop (close_now
         * means nothing else on a held place: it marks "logged"). */
        if (!h->close_now)
            log_warn("ws: resume queue full, dropping the oldest frames sid=%s peer=%s", h->sid, h->claims.sub);
        h->close_now = 1;
    }
    if (dropped) rtm_metric_inc(RTM_M_DIRECT_DROPPED, dropped);
}

void ext_deliver_direct(struct brk_session *s, const char *from, struct brk_msg *m)
{
    if (s->state != SESS_OPEN && s->state != SESS_HELD) return;
    /* A place moving to another node: past the cut the new node has it. */
    if (s->state == SESS_HELD && (s->moved || (s->moving && xresume_refuses(s)))) return;
    uint32_t seq = seq_next(s, from);
    struct brk_msg *o = seq ? wire_with_seq(m, seq) : NULL;
    if (!o) {
        log_error("broker: out of memory numbering a direct for sid=%s", s->sid);
        return;
    }
    if (s->state == SESS_HELD) {
        resume_hold(s, o); /* untimed: a resume gap is not the broker's latency */
    } else {
        msg_time_copy(o, m);
        sess_enqueue(s, o);
    }
    msg_unref(o);
}

/* ---- places ---- */

int resume_register(struct brk_session *s)
{
    if (rtm_random_id("rs_", 18, s->rsid, sizeof s->rsid)) return RTM_ENOMEM;
    if (s->resume_window_ms <= 0) return 0;
    return htab_put(&s->b->places, s->rsid, s);
}

struct brk_session *resume_find(struct brk_broker *b, const char *rsid, const char *app, const char *peer_id)
{
    if (!rsid || !*rsid) return NULL;
    struct brk_session *p = htab_get(&b->places, rsid);
    if (!p || (p->state != SESS_OPEN && p->state != SESS_HELD)) return NULL;
    if (p->state == SESS_HELD && p->close_code) return NULL; /* kicked or replaced: being discarded */
    if (p->moving) return NULL; /* being handed to another node */
    /* The id alone is worth nothing: the token must be for the same app and peer. */
    if (strcmp(p->app, app) != 0 || !p->claims.sub || strcmp(p->claims.sub, peer_id) != 0) return NULL;
    return p;
}

/* Moves peer links, subscriptions and seq counters from src to dst.
 * Transactional: on ENOMEM nothing has moved. */
static int place_move(struct brk_session *dst, struct brk_session *src)
{
    uint32_t done = 0, i;
    /* The channels index subscribers by session pointer: add dst first
     * (the only step that can fail), then remove src. */
    for (i = 0; i < src->subs.cap; i++) {
        struct brk_sub *sub = src->subs.slots[i].key ? src->subs.slots[i].val : NULL;
        if (!sub) continue;
        if (htab_put(&sub->ch->subs, dst, sub)) goto undo;
        done++;
    }
    for (i = 0; i < src->subs.cap; i++) {
        struct brk_sub *sub = src->subs.slots[i].key ? src->subs.slots[i].val : NULL;
        if (!sub) continue;
        htab_del(&sub->ch->subs, src);
        sub->s = dst;
    }
    dst->subs = src->subs;
    htab_init(&src->subs, HTAB_PTR);
    dst->seqs = src->seqs;
    htab_init(&src->seqs, HTAB_STR);

    struct brk_peer *p = src->peer;
    dst->peer = p;
    dst->peer_prev = src->peer_prev;
    dst->peer_next = src->peer_next;
    if (dst->peer_prev) dst->peer_prev->peer_next = dst;
    else if (p) p->sessions = dst;
    if (dst->peer_next) dst->peer_next->peer_prev = dst;
    src->peer = NULL;
    src->peer_prev = src->peer_next = NULL;

    memcpy(dst->rsid, src->rsid, sizeof dst->rsid);
    dst->ext = src->ext;
    return 0;
undo:
    for (i = 0; i < src->subs.cap && done; i++) {
        struct brk_sub *sub = src->subs.slots[i].key ? src->subs.slots[i].val : NULL;
        if (!sub) continue;
        htab_del(&sub->ch->subs, dst);
        done--;
    }
    return RTM_ENOMEM;
}

/* Re-points b->places at dst (the key is borrowed from the struct). */
static void places_repoint(struct brk_broker *b, struct brk_session *src, struct brk_session *dst)
{
    htab_del(&b->places, src->rsid);
    if (dst && htab_put(&b->places, dst->rsid, dst))
        log_error("broker: out of memory indexing rsid of peer=%s: not resumable", dst->claims.sub);
}

/* Leave + discard: the end of a held place that was not taken back. */
static void held_discard(struct brk_session *h)
{
    struct brk_broker *b = h->b;
    rtm_timer_cancel(b->timers, &h->expiry_t);
    if (h->moving || h->moved) xresume_place_gone(h);
    if (!h->moved) htab_del(&b->places, h->rsid);
    b->n_held--;
    uint32_t directs = 0;
    for (uint32_t i = 0; i < h->q.count; i++) directs += wire_is_direct(outq_peek(&h->q, i)) ? 1u : 0u;
    if (directs) rtm_metric_inc(RTM_M_DIRECT_DROPPED, directs);
    chan_unsubscribe_all(h);
    peer_detach(h);
    app_conns_add(b, h->app, -1);
    outq_clear(&h->q);
    htab_free(&h->subs);
    seq_free(h);
    rtm_claims_free(&h->claims);
    free(h);
}

static void held_expire_cb(struct rtm_timer *t)
{
    struct brk_session *h = lws_container_of(t, struct brk_session, expiry_t);
    if (!h->close_code) {
        rtm_metric_inc(RTM_M_RESUME_EXPIRED, 1);
        log_info("ws: resume window passed sid=%s peer=%s dropped=%u", h->sid, h->claims.sub, h->q.count);
    }
    held_discard(h);
}

int resume_end_held(struct brk_broker *b, int (*match)(const struct brk_session *h, void *arg), void *arg)
{
    int n = 0;
    /* resume_discard_soon only arms a timer: the table is not changed under this walk. */
    for (uint32_t i = 0; i < b->places.cap; i++) {
        struct brk_session *h = b->places.slots[i].key ? b->places.slots[i].val : NULL;
        if (!h || h->state != SESS_HELD || h->close_code || !match(h, arg)) continue;
        log_info("ws: held place ended sid=%s peer=%s", h->sid, h->claims.sub);
        resume_discard_soon(h);
        n++;
    }
    return n;
}

void resume_discard_soon(struct brk_session *h)
{
    if (h->state != SESS_HELD || h->close_code) return;
    h->close_code = RTM_CLOSE_KICKED; /* marks "discarded on purpose", not an expiry */
    rtm_timer_in(h->b->timers, &h->expiry_t, held_expire_cb, 0);
}

/* The unsent frames of a dead connection worth keeping: its directs and
 * presence (what the others did is news the client has not had). */
static void keep_unsent(struct brk_session *h, struct outq *q)
{
    for (uint32_t i = 0; i < q->count; i++) {
        struct brk_msg *m = outq_peek(q, i);
        if (wire_is_direct(m) || wire_is_presence(m)) resume_hold(h, m);
    }
    outq_clear(q);
}

static struct brk_session *hold_copy(struct brk_session *s);

int resume_on_close(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    if (!s->rsid[0] || s->resume_window_ms <= 0) return 0;
    if (htab_get(&b->places, s->rsid) != s) return 0;
    /* Clean closes end the place: a close frame 1000/1001 from the client, or
     * a close the broker decided (kick, revocation, expiry, limits,
     * shutdown) other than a dead peer (ping timeout). */
    /* A close the broker had decided (state CLOSING: a kick, a revocation)
     * whose connection dropped before the close frame went out is still that
     * decision: no place is held for it. */
    int decided = s->state == SESS_CLOSING && !s->drop;
    int unclean = !decided && (s->drop || (!s->sent_close && s->peer_close_code != RTM_CLOSE_NORMAL &&
                                           s->peer_close_code != RTM_CLOSE_GOING_AWAY));
    if (!unclean || !hold_copy(s)) goto end;
    return 1;
end:
    htab_del(&b->places, s->rsid);
    return 0;
}

/* The old socket of a place taken elsewhere (its drop went unnoticed): it
 * stops being a session now; its row closes with 4009. */
static void live_taken(struct brk_session *take)
{
    struct brk_broker *b = take->b;
    rtm_timer_cancel(b->timers, &take->expiry_t);
    rtm_timer_cancel(b->timers, &take->notice_t);
    limits_session_end(take);
    sess_list_unlink(&b->sessions, take);
    b->n_sessions--;
    take->attached = 0;
    take->close_code = rtm_wire(RTM_WIRE_RESUMED_ELSEWHERE)->close_code;
    take->close_reason = rtm_wire(RTM_WIRE_RESUMED_ELSEWHERE)->message;
    take->sent_close = 1;
    rows_add(b, take, 1);
}

struct brk_session *resume_hold_live(struct brk_session *s)
{
    if (s->state != SESS_OPEN || htab_get(&s->b->places, s->rsid) != s) return NULL;
    char *sub = strdup(s->claims.sub);
    struct brk_session *h = sub ? hold_copy(s) : NULL;
    if (!h) {
        free(sub);
        return NULL;
    }
    s->claims.sub = sub; /* the rest went with the place; the old socket's last lines name the peer */
    live_taken(s);
    log_info("ws: open sid=%s peer=%s resumed on another node: its old socket closes", s->sid, sub);
    s->close_now = 1;
    sess_close(s, RTM_WIRE_RESUMED_ELSEWHERE, NULL);
    return h;
}

/* Moves s's place into a held copy (s keeps its socket and nothing else),
 * armed for the resume window. The copy, or NULL (at the bound, shutting
 * down, out of memory: nothing moved). */
static struct brk_session *hold_copy(struct brk_session *s)
{
    struct brk_broker *b = s->b;
    int max = b->cfg->max_connections > 0 ? b->cfg->max_connections : HELD_MAX;
    if (b->shutting_down || !b->ctx || b->n_held >= max) return NULL;
    struct brk_session *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->b = b;
    h->state = SESS_HELD;
    memcpy(h->sid, s->sid, sizeof h->sid);
    memcpy(h->app, s->app, sizeof h->app);
    outq_init(&h->q);
    htab_init(&h->subs, HTAB_PTR);
    htab_init(&h->seqs, HTAB_STR);
    if (place_move(h, s)) {
        free(h);
        return NULL;
    }
    h->claims = s->claims;
    memset(&s->claims, 0, sizeof s->claims);
    h->publishable = s->publishable;
    h->perms = s->perms;
    h->resume_window_ms = s->resume_window_ms;
    h->held_since_ms = rtm_mono_ms();
    keep_unsent(h, &s->q);
    places_repoint(b, s, h);
    b->n_held++;
    rtm_timer_in(b->timers, &h->expiry_t, held_expire_cb, h->resume_window_ms);
    log_info("ws: held sid=%s peer=%s for %d ms", h->sid, h->claims.sub, h->resume_window_ms);
    return h;
}

/* ---- taking a place back ---- */

int resume_take(struct brk_session *s, struct brk_session *take)
{
    struct brk_broker *b = s->b;
    if (place_move(s, take)) return RTM_ENOMEM;
    places_repoint(b, take, s);
    if (take->state == SESS_HELD) {
        rtm_timer_cancel(b->timers, &take->expiry_t);
        b->n_held--;
    } else {
        live_taken(take);
    }
    /* The new token's scope decides what stays; it speaks for the peer now.
     * What it ends is told after the welcome (resume_finish). */
    s->resume_unsubscribed = ext_adopt_claims(s);
    return 0;
}

void resume_finish(struct brk_session *s, struct brk_session *take)
{
    /* Presence goes as queued (in order with the directs) unless the queue
     * lost some of it or the new token no longer allows presence; after a
     * loss the member lists are rebuilt by snapshots instead. */
    int presence = (s->perms & RTM_PERM_PRESENCE) && !take->presence_lost;
    uint32_t n = 0;
    if (s->resume_unsubscribed) { /* first after the welcome: what the new token ended */
        sess_enqueue(s, s->resume_unsubscribed);
        msg_unref(s->resume_unsubscribed);
        s->resume_unsubscribed = NULL;
    }
    for (uint32_t i = 0; i < take->q.count; i++) {
        struct brk_msg *m = outq_peek(&take->q, i);
        if (!presence && wire_is_presence(m)) continue;
        n += wire_is_direct(m) ? 1u : 0u;
        sess_enqueue(s, m);
    }
    outq_clear(&take->q);
    if (take->presence_lost) {
        log_info("ws: resumed sid=%s peer=%s lost presence while held: snapshots instead", s->sid, s->claims.sub);
        chan_resnapshot(s);
    }
    rtm_metric_inc(RTM_M_RESUME_HIT, 1);
    if (take->state == SESS_HELD) {
        rtm_metric_inc(RTM_M_DIRECT_DELIVERED, n);
        rtm_histogram_observe(RTM_H_RESUME_GAP, (double)(rtm_mono_ms() - take->held_since_ms) / 1000.0);
        log_info("ws: resumed sid=%s peer=%s from held sid=%s delivered=%u", s->sid, s->claims.sub, take->sid, n);
        htab_free(&take->subs);
        seq_free(take);
        rtm_claims_free(&take->claims);
        free(take);
        return;
    }
    log_info("ws: resumed sid=%s peer=%s taking over open sid=%s", s->sid, s->claims.sub, take->sid);
    take->close_now = 1;
    sess_close(take, RTM_WIRE_RESUMED_ELSEWHERE, NULL);
}

/* ---- moving a place to another node (xresume.c) ---- */

char *resume_export(struct brk_session *h, size_t max, uint32_t *directs)
{
    json_t *o = json_object(), *subs = json_array(), *seqs = json_array(), *ds = json_array();
    char *out = NULL;
    *directs = 0;
    if (!o || !subs || !seqs || !ds) goto done;
    json_object_set(o, "subs", subs);
    json_object_set(o, "seqs", seqs);
    json_object_set(o, "directs", ds);
    json_object_set_new(o, "gapMs", json_integer(rtm_mono_ms() - h->held_since_ms));
    for (uint32_t i = 0; i < h->subs.cap; i++) {
        const struct brk_sub *sub = h->subs.slots[i].key ? h->subs.slots[i].val : NULL;
        if (sub && json_array_append_new(subs, json_pack("[sb]", sub->ch->name, sub->include_sender_meta)))
            goto done;
    }
    for (uint32_t i = 0; i < h->seqs.cap; i++) {
        const struct seq_entry *e = h->seqs.slots[i].key ? h->seqs.slots[i].val : NULL;
        if (e && json_array_append_new(seqs, json_pack("[sI]", e->from, (json_int_t)e->n))) goto done;
    }
    /* Presence frames stay behind: the new node's member lists are its own
     * (snapshots there, presenceReset). Directs keep their seq. */
    for (uint32_t i = 0; i < h->q.count; i++) {
        const struct brk_msg *m = outq_peek(&h->q, i);
        if (!wire_is_direct(m)) continue;
        if (json_array_append_new(ds, json_stringn((const char *)m->buf + LWS_PRE, m->len))) goto done;
        (*directs)++;
    }
    out = rtm_json_dumps(o, JSON_COMPACT);
    if (out && strlen(out) > max) {
        log_warn("ws: held place of peer=%s too large to move (%zu bytes, at most %zu)", h->claims.sub, strlen(out),
                 max);
        free(out);
        out = NULL;
    }
done:
    json_decref(subs);
    json_decref(seqs);
    json_decref(ds);
    json_decref(o);
    return out;
}

void resume_mark_moved(struct brk_session *h)
{
    htab_del(&h->b->places, h->rsid);
    h->moved = 1;
    h->moving = 0;
    outq_clear(&h->q);
    rtm_timer_cancel(h->b->timers, &h->expiry_t);
}

void resume_end_moved(struct brk_session *h)
{
    log_info("ws: moved place left sid=%s peer=%s", h->sid, h->claims.sub);
    held_discard(h);
}

static int seq_set(struct brk_session *s, const char *from, uint32_t n)
{
    size_t len = strlen(from) + 1;
    if (s->seqs.n >= SEQ_MAX || htab_get(&s->seqs, from)) return 0;
    struct seq_entry *e = malloc(sizeof *e + len);
    if (!e) return RTM_ENOMEM;
    memcpy(e->from, from, len);
    e->n = n;
    if (htab_put(&s->seqs, e->from, e)) {
        free(e);
        return RTM_ENOMEM;
    }
    return 0;
}

int resume_import(struct brk_session *s, const char *rsid, const json_t *place)
{
    struct brk_broker *b = s->b;
    size_t i;
    json_t *v;
    if (!rsid || strlen(rsid) >= sizeof s->rsid || htab_get(&b->places, rsid)) return RTM_EINVAL;
    memcpy(s->rsid, rsid, strlen(rsid) + 1);
    if (htab_put(&b->places, s->rsid, s)) return RTM_ENOMEM;
    json_array_foreach(json_object_get(place, "subs"), i, v) {
        const char *name = json_string_value(json_array_get(v, 0));
        enum rtm_wire_err err;
        if (name && chan_subscribe(s, name, json_is_true(json_array_get(v, 1)), &err))
            log_warn("ws: resumed sid=%s peer=%s lost its subscription to a channel from the other node (%s)", s->sid,
                     s->claims.sub, rtm_wire(err)->code);
    }
    json_array_foreach(json_object_get(place, "seqs"), i, v) {
        const char *from = json_string_value(json_array_get(v, 0));
        json_int_t n = json_integer_value(json_array_get(v, 1));
        if (from && n > 0 && n <= UINT32_MAX && seq_set(s, from, (uint32_t)n)) return RTM_ENOMEM;
    }
    /* The new token decides what stays, as for a resume on one node. */
    s->resume_unsubscribed = ext_adopt_claims(s);
    return 0;
}

void resume_import_finish(struct brk_session *s, const json_t *place)
{
    uint32_t n = 0;
    size_t i;
    json_t *v;
    if (s->resume_unsubscribed) {
        sess_enqueue(s, s->resume_unsubscribed);
        msg_unref(s->resume_unsubscribed);
        s->resume_unsubscribed = NULL;
    }
    json_array_foreach(json_object_get(place, "directs"), i, v) {
        size_t len = json_string_length(v);
        struct brk_msg *m = json_is_string(v) ? msg_alloc(len) : NULL;
        if (!m) continue;
        memcpy(m->buf + LWS_PRE, json_string_value(v), len);
        msg_seal(m);
        if (sess_enqueue(s, m) == 0) n++;
        msg_unref(m);
    }
    chan_resnapshot(s);
    rtm_metric_inc(RTM_M_RESUME_HIT, 1);
    rtm_metric_inc(RTM_M_DIRECT_DELIVERED, n);
    json_int_t gap = json_integer_value(json_object_get(place, "gapMs"));
    rtm_histogram_observe(RTM_H_RESUME_GAP, (double)(gap > 0 ? gap : 0) / 1000.0);
    log_info("ws: resumed sid=%s peer=%s with a place from another node delivered=%u", s->sid, s->claims.sub, n);
}

void resume_destroy(struct brk_broker *b)
{
    if (!b->places.n) {
        htab_free(&b->places);
        return;
    }
    uint32_t n = 0;
    struct brk_session **list = malloc(b->places.n * sizeof *list);
    if (list) {
        for (uint32_t i = 0; i < b->places.cap; i++) {
            struct brk_session *p = b->places.slots[i].key ? b->places.slots[i].val : NULL;
            if (p && p->state == SESS_HELD) list[n++] = p;
        }
        for (uint32_t i = 0; i < n; i++) held_discard(list[i]);
        free(list);
    } else {
        log_error("broker: out of memory discarding held places");
    }
    if (!b->places.n) htab_free(&b->places);
}
