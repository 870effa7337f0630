/* channels.c: channels, subscriptions, presence and publish fan-out.
 *
 * A channel is found by hash ("app\x1fname"); its subscribers are a hash set
 * of sessions and its members a hash of peers with a connection count, so
 * presence is per peer: a peer joins with its first subscribed connection and
 * leaves after its last. Presence changes are not sent when they happen: they
 * collect per channel (a join and a leave of one peer in the same turn cancel
 * out) and a zero-delay timer flushes every changed channel once per loop
 * turn, one frame per channel. Snapshots for new subscribers are built at the
 * same flush, so a subscriber never sees a member twice.
 *
 * A snapshot costs the broker one entry per member, and a client can ask
 * for one with every subscribe: each connection has a budget of member
 * entries per second (presence-snapshot-members-per-second, limits.c). Over
 * it, the snapshot waits (the subscription gets no deltas meanwhile, since
 * the snapshot will include them) and further requests coalesce into it; a
 * timer re-flushes the channel when the budget allows. A held place
 * (resume.c) is a subscriber too: its frames go to its resume queue.
 *
 * In cluster mode (xpresence.c) the members are the whole cluster's: a
 * local join or leave goes to Redis first, and the change reaches this
 * node's clients when it comes back (every node alike), through the same
 * pending table and flush; snapshots wait until the channel's cluster table
 * has been fetched.
 *
 * Fan-out never mutates the tables it walks: sess_enqueue() only marks a
 * session for closing, the detach happens later in its own callback. */
#include "internal.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"

#include <stdlib.h>
#include <string.h>

struct brk_channel *chan_find(struct brk_broker *b, const char *app, const char *name)
{
    char key[65 + 1 + RTM_MAX_CHANNEL + 1];
    if (join_key(key, sizeof key, app, name)) return NULL;
    return htab_get(&b->channels, key);
}

static struct brk_channel *chan_get(struct brk_broker *b, const char *app, const char *name)
{
    struct brk_channel *ch = chan_find(b, app, name);
    if (ch) return ch;
    ch = calloc(1, sizeof *ch);
    if (!ch) return NULL;
    size_t klen = strlen(app) + 1 + strlen(name) + 1;
    ch->key = malloc(klen);
    if (!ch->key || join_key(ch->key, klen, app, name)) goto fail;
    ch->name = ch->key + strlen(app) + 1;
    htab_init(&ch->subs, HTAB_PTR);
    htab_init(&ch->members, HTAB_PTR);
    htab_init(&ch->pending, HTAB_STR);
    if (htab_put(&b->channels, ch->key, ch)) goto fail;
    return ch;
fail:
    free(ch->key);
    free(ch);
    return NULL;
}

static void chan_free(struct brk_channel *ch)
{
    xpresence_chan_free(ch);
    htab_free(&ch->subs);
    htab_free(&ch->members);
    htab_free(&ch->pending);
    free(ch->key);
    free(ch);
}

/* Frees a channel nobody uses; a dirty one waits for its flush. */
static void chan_maybe_free(struct brk_broker *b, struct brk_channel *ch)
{
    if (ch->subs.n || ch->members.n || ch->pending.n || ch->dirty) return;
    htab_del(&b->channels, ch->key);
    chan_free(ch);
}

static void presence_cb(struct rtm_timer *t)
{
    struct brk_broker *b = lws_container_of(t, struct brk_broker, presence_t);
    presence_flush(b);
}

static void mark_dirty(struct brk_broker *b, struct brk_channel *ch)
{
    if (ch->dirty) return;
    ch->dirty = 1;
    ch->dirty_next = b->dirty;
    b->dirty = ch;
    /* Due now: runs at the next loop turn, after every frame read in this one. */
    if (b->ctx && !rtm_timer_armed(&b->presence_t)) rtm_timer_in(b->timers, &b->presence_t, presence_cb, 0);
}

static void pending_free(struct brk_pending *p)
{
    free(p->peer_id);
    free(p->meta);
    free(p);
}

/* Records a join or a leave of peer_id (peer: the local member in single-node
 * mode; meta: a cluster join's metadata text); the opposite pending change cancels. */
static void pending_record(struct brk_broker *b, struct brk_channel *ch, const char *peer_id, struct brk_peer *peer,
                           const char *meta, size_t mlen, int join)
{
    presence_changed(b); /* a peer's channels are part of GET /v1/peers */
    struct brk_pending *p = htab_get(&ch->pending, peer_id);
    if (p) {
        if (p->join != (unsigned)join) {
            htab_del(&ch->pending, peer_id);
            pending_free(p);
        }
        return;
    }
    p = calloc(1, sizeof *p);
    if (!p || !(p->peer_id = strdup(peer_id)) || (join && meta && mlen && !(p->meta = strndup(meta, mlen))) ||
        htab_put(&ch->pending, p->peer_id, p)) {
        /* Losing one presence delta is the documented outcome of ENOMEM. */
        log_error("broker: out of memory recording presence for channel");
        if (p) pending_free(p);
        return;
    }
    p->join = join ? 1 : 0;
    p->peer = join ? peer : NULL;
    p->mlen = p->meta ? mlen : 0;
    mark_dirty(b, ch);
}

/* A local peer's first subscribed session joined ch, or its last left. In
 * cluster mode the change goes through Redis and comes back to every node. */
static void member_change(struct brk_broker *b, struct brk_channel *ch, struct brk_peer *peer, int join)
{
    if (b->xn) {
        presence_changed(b);
        xpresence_member(b, ch, peer);
        return;
    }
    pending_record(b, ch, peer->peer_id, peer, NULL, 0, join);
}

void chan_presence_record(struct brk_broker *b, struct brk_channel *ch, const char *peer_id, const char *meta,
                          size_t mlen, int join)
{
    pending_record(b, ch, peer_id, NULL, meta, mlen, join);
}

void chan_presence_ready(struct brk_broker *b, struct brk_channel *ch) { mark_dirty(b, ch); }

int chan_subscribe(struct brk_session *s, const char *name, int include_meta, enum rtm_wire_err *err)
{
    struct brk_broker *b = s->b;
    struct brk_channel *ch = chan_find(b, s->app, name);
    struct brk_sub *sub = ch ? htab_get(&s->subs, ch) : NULL;
    if (sub) {
        /* Idempotent: refresh the option and give a fresh snapshot after this ack. */
        sub->include_sender_meta = include_meta ? 1 : 0;
        if ((s->perms & RTM_PERM_PRESENCE) && !sub->needs_snapshot) {
            sub->needs_snapshot = 1;
            ch->n_snapshot++;
            mark_dirty(b, ch);
        }
        return 0;
    }
    *err = RTM_WIRE_INTERNAL_ERROR;
    int max = b->cfg->max_channels_per_connection;
    if (max > 0 && (int)s->subs.n >= max) {
        *err = RTM_WIRE_CHANNEL_LIMIT_EXCEEDED;
        return -1;
    }
    if (!ch && !(ch = chan_get(b, s->app, name))) return -1;
    sub = calloc(1, sizeof *sub);
    if (!sub) goto fail;
    sub->s = s;
    sub->ch = ch;
    sub->include_sender_meta = include_meta ? 1 : 0;
    if (htab_put(&s->subs, ch, sub)) goto fail;
    if (htab_put(&ch->subs, s, sub)) {
        htab_del(&s->subs, ch);
        goto fail;
    }
    if (ch->subs.n == 1 && b->xn) xnode_channel_used(b, ch);
    intptr_t n = (intptr_t)htab_get(&ch->members, s->peer);
    if (htab_put(&ch->members, s->peer, (void *)(n + 1))) {
        htab_del(&s->subs, ch);
        htab_del(&ch->subs, s);
        if (ch->subs.n == 0 && b->xn) xnode_channel_unused(b, ch);
        goto fail;
    }
    if (n == 0) {
        member_change(b, ch, s->peer, 1);
        xnode_peer_dirty(b, s->peer);
    }
    if (s->perms & RTM_PERM_PRESENCE) {
        sub->needs_snapshot = 1;
        ch->n_snapshot++;
        mark_dirty(b, ch);
    }
    return 0;
fail:
    free(sub);
    chan_maybe_free(b, ch);
    return -1;
}

static void sub_remove(struct brk_session *s, struct brk_sub *sub)
{
    struct brk_broker *b = s->b;
    struct brk_channel *ch = sub->ch;
    htab_del(&ch->subs, s);
    if (ch->subs.n == 0 && b->xn) xnode_channel_unused(b, ch);
    if (sub->needs_snapshot) ch->n_snapshot--;
    intptr_t n = (intptr_t)htab_get(&ch->members, s->peer);
    if (n <= 1) {
        htab_del(&ch->members, s->peer);
        member_change(b, ch, s->peer, 0);
        xnode_peer_dirty(b, s->peer);
    } else {
        htab_put(&ch->members, s->peer, (void *)(n - 1)); /* replace: cannot fail */
    }
    free(sub);
    chan_maybe_free(b, ch);
}

void chan_unsubscribe(struct brk_session *s, const char *name)
{
    struct brk_channel *ch = chan_find(s->b, s->app, name);
    if (!ch) return;
    struct brk_sub *sub = htab_del(&s->subs, ch);
    if (sub) sub_remove(s, sub);
}

void chan_unsubscribe_all(struct brk_session *s)
{
    if (!s->subs.n) return;
    /* Collect first: removing while walking would reshuffle the table. */
    uint32_t n = 0, cap = s->subs.n;
    struct brk_sub **list = malloc(cap * sizeof *list);
    if (!list) {
        /* Fall back to one at a time from slot 0: slower, never wrong. */
        while (s->subs.n) {
            for (uint32_t i = 0; i < s->subs.cap; i++) {
                if (!s->subs.slots[i].key) continue;
                struct brk_sub *sub = htab_del(&s->subs, s->subs.slots[i].key);
                sub_remove(s, sub);
                break;
            }
        }
        return;
    }
    for (uint32_t i = 0; i < s->subs.cap; i++)
        if (s->subs.slots[i].key) list[n++] = s->subs.slots[i].val;
    htab_free(&s->subs);
    for (uint32_t i = 0; i < n; i++) sub_remove(s, list[i]);
    free(list);
}

/* ---- presence ---- */

/* A held place (resume.c) keeps its presence frames for the resume, in the
 * same queue and order as its directs; the frame is the shared one. */
static void presence_send(struct brk_session *s, struct brk_msg *m)
{
    if (s->state == SESS_HELD) resume_hold(s, m);
    else sess_enqueue(s, m);
}

static void flush_channel(struct brk_broker *b, struct brk_channel *ch)
{
    int deferred = 0;
    struct brk_msg *delta = ch->pending.n ? wire_presence_delta(ch, NULL) : NULL;
    if (ch->pending.n && !delta) log_error("broker: out of memory building presence for %s", ch->name);
    for (uint32_t i = 0; i < ch->subs.cap; i++) {
        struct brk_sub *sub = ch->subs.slots[i].key ? ch->subs.slots[i].val : NULL;
        if (!sub) continue;
        struct brk_session *s = sub->s;
        if (sub->needs_snapshot) {
            int64_t wait;
            if (ch->xp && !xpresence_ready(ch)) {
                deferred++; /* the cluster table is being fetched: flushed again when it is here */
                continue;
            }
            if (limit_snapshot(s, ch->xp ? xpresence_count(ch) : ch->members.n, &wait)) {
                deferred++;
                if (b->snapshot_wait_ms < 0 || wait < b->snapshot_wait_ms) b->snapshot_wait_ms = wait;
                continue;
            }
            sub->needs_snapshot = 0;
            struct brk_msg *snap =
                ch->xp ? xpresence_snapshot(ch, s->peer->peer_id) : wire_presence_snapshot(ch, s->peer);
            if (snap) {
                presence_send(s, snap);
                msg_unref(snap);
            }
            continue;
        }
        if (!delta || !(s->perms & RTM_PERM_PRESENCE)) continue;
        /* A peer never hears about itself (its own join or leave is in the delta
         * only when all its connections are new, and those get snapshots). In
         * cluster mode its connection here may be old (its peerId left and
         * joined elsewhere meanwhile): it gets the others' changes alone. */
        if (htab_get(&ch->pending, s->peer->peer_id)) {
            struct brk_msg *others = ch->xp && ch->pending.n > 1 ? wire_presence_delta(ch, s->peer->peer_id) : NULL;
            if (others) {
                presence_send(s, others);
                msg_unref(others);
            }
            continue;
        }
        presence_send(s, delta);
    }
    ch->n_snapshot = deferred;
    msg_unref(delta);
    for (uint32_t i = 0; i < ch->pending.cap; i++)
        if (ch->pending.slots[i].key) pending_free(ch->pending.slots[i].val);
    htab_free(&ch->pending);
}

void chan_resnapshot(struct brk_session *s)
{
    if (!(s->perms & RTM_PERM_PRESENCE)) return;
    for (uint32_t i = 0; i < s->subs.cap; i++) {
        struct brk_sub *sub = s->subs.slots[i].key ? s->subs.slots[i].val : NULL;
        if (!sub || sub->needs_snapshot) continue;
        sub->needs_snapshot = 1;
        sub->ch->n_snapshot++;
        mark_dirty(s->b, sub->ch);
    }
}

/* Snapshots that waited for a budget: their channels go through the next
 * presence flush again (one walk of the channel table, only while some wait). */
static void snapshot_cb(struct rtm_timer *t)
{
    struct brk_broker *b = lws_container_of(t, struct brk_broker, snapshot_t);
    for (uint32_t i = 0; i < b->channels.cap; i++) {
        struct brk_channel *ch = b->channels.slots[i].key ? b->channels.slots[i].val : NULL;
        if (ch && ch->n_snapshot > 0) mark_dirty(b, ch);
    }
}

void presence_flush(struct brk_broker *b)
{
    struct brk_channel *list = b->dirty;
    b->dirty = NULL;
    while (list) {
        struct brk_channel *ch = list;
        list = ch->dirty_next;
        ch->dirty = 0;
        ch->dirty_next = NULL;
        flush_channel(b, ch);
        chan_maybe_free(b, ch);
    }
    if (b->snapshot_wait_ms >= 0 && b->ctx && !rtm_timer_armed(&b->snapshot_t))
        rtm_timer_in(b->timers, &b->snapshot_t, snapshot_cb, b->snapshot_wait_ms);
    b->snapshot_wait_ms = -1;
}

/* ---- publish ---- */

/* Who sent a message and how its metadata is held: a jansson value (a sender
 * on this node) or JSON text (another node's, through Redis). */
struct origin {
    const struct brk_session *skip; /* a local sender: never echoed */
    const char *skip_sid;           /* a sender of this node, by session id (through Redis) */
    const char *from;
    const json_t *meta;
    const char *meta_text;
    size_t mlen;
};

static int fanout(struct brk_channel *ch, const struct origin *o, const char *data, size_t dlen)
{
    int has_meta = o->meta_text ? o->mlen > 0 : o->meta != NULL;
    /* At most two frames per publish, each built once and shared. */
    struct brk_msg *plain = NULL, *with_meta = NULL;
    int n = 0;
    for (uint32_t i = 0; i < ch->subs.cap; i++) {
        struct brk_sub *sub = ch->subs.slots[i].key ? ch->subs.slots[i].val : NULL;
        if (!sub || sub->s == o->skip || (o->skip_sid && strcmp(sub->s->sid, o->skip_sid) == 0)) continue;
        int want = sub->include_sender_meta && has_meta;
        struct brk_msg **slot = want ? &with_meta : &plain;
        if (!*slot && !(*slot = wire_message(ch->name, o->from, data, dlen, want ? o->meta : NULL, want ? o->meta_text : NULL,
                                                want ? o->mlen : 0))) {
            n = RTM_ENOMEM;
            break;
        }
        if (sess_enqueue(sub->s, *slot) == 0) n++;
    }
    msg_unref(plain);
    msg_unref(with_meta);
    return n;
}

int chan_publish(struct brk_broker *b, const char *app, const char *name, struct brk_session *sender,
                 const char *data, size_t dlen)
{
    struct brk_channel *ch = chan_find(b, app, name);
    if (!ch || !ch->subs.n) return 0;
    /* A local sender's metadata as the text its peer keeps serialized. */
    const struct brk_peer *p = sender ? sender->peer : NULL;
    struct origin o = {sender, NULL, sender ? sender->claims.sub : "_server", NULL,
                       p && p->meta_text ? p->meta_text : NULL, p && p->meta_text ? p->meta_len : 0};
    return fanout(ch, &o, data, dlen);
}

int chan_deliver(struct brk_broker *b, const char *app, const char *name, const char *skip_sid, const char *from,
                 const char *meta, size_t mlen, const char *data, size_t dlen)
{
    struct brk_channel *ch = chan_find(b, app, name);
    if (!ch || !ch->subs.n) return 0;
    struct origin o = {NULL, skip_sid, from, NULL, meta ? meta : "", meta ? mlen : 0};
    return fanout(ch, &o, data, dlen);
}

void channels_destroy(struct brk_broker *b)
{
    for (uint32_t i = 0; i < b->channels.cap; i++) {
        struct brk_channel *ch = b->channels.slots[i].key ? b->channels.slots[i].val : NULL;
        if (!ch) continue;
        for (uint32_t j = 0; j < ch->subs.cap; j++)
            if (ch->subs.slots[j].key) free(ch->subs.slots[j].val);
        for (uint32_t j = 0; j < ch->pending.cap; j++)
            if (ch->pending.slots[j].key) pending_free(ch->pending.slots[j].val);
        chan_free(ch);
    }
    htab_free(&b->channels);
}
