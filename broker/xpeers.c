/* xpeers.c: direct send across nodes, and the peer records it relies on.
 *
 * Each node keeps, per peer connected to it, one field of the peer's Redis
 * hash (rtm:p:...): its node id -> the channels the peer is in there. A send
 * runs one script on the recipient's shard that checks the scope rule against
 * every node's channels (the two share a channel somewhere), publishes the
 * direct to each other node the recipient is on (their rtm:n: channel), and
 * answers how many, or -1 for peer_not_found; the sender's node then delivers
 * to its own sessions of the recipient and acks. One connection per shard
 * keeps a sender's directs to one recipient in order. Changes to the hash are
 * coalesced per loop turn (and flushed before any send, so a send sees this
 * node's own latest state), and rewritten in full for every local peer when a
 * shard comes back (Redis may have restarted empty). */
#include "xnode.h"

#include "errors.h"
#include "json_dump.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- where peers are (direct send) ---- */

/* "\n"-separated channel names of p on this node, with a leading and a trailing
 * "\n" ("\n" alone when none); malloc'd, NULL on ENOMEM. Places handed to
 * another node (moved) and skip are left out. */
char *peer_channels(const struct brk_peer *p, const struct brk_session *skip, size_t *len)
{
    size_t cap = 256, n = 0;
    char *out = malloc(cap);
    struct htab seen;
    htab_init(&seen, HTAB_PTR);
    if (!out) return NULL;
    out[n++] = '\n';
    for (const struct brk_session *s = p->sessions; s; s = s->peer_next) {
        if (s == skip || s->moved) continue;
        for (uint32_t i = 0; i < s->subs.cap; i++) {
            const struct brk_sub *sub = s->subs.slots[i].key ? s->subs.slots[i].val : NULL;
            if (!sub || htab_get(&seen, sub->ch)) continue;
            if (htab_put(&seen, sub->ch, sub->ch)) goto fail;
            size_t l = strlen(sub->ch->name);
            if (n + l + 2 > cap) {
                while (n + l + 2 > cap) cap *= 2;
                char *bigger = realloc(out, cap);
                if (!bigger) goto fail;
                out = bigger;
            }
            memcpy(out + n, sub->ch->name, l);
            n += l;
            out[n++] = '\n';
        }
    }
    htab_free(&seen);
    out[n] = '\0';
    *len = n;
    return out;
fail:
    htab_free(&seen);
    free(out);
    return NULL;
}

static void mark_dirty_key(struct brk_xnode *xn, const char *key)
{
    xn_mark_key(&xn->dirty, key, &xn->dirty_full_logged, "peer records");
}

static void peer_written(void *arg, int ok, long long value)
{
    char *key = arg; /* owned */
    (void)value;
    /* A failed write waits for the shard's next "up", which rewrites every record. */
    if (!ok && xn_the && !xn_the->stopping) mark_dirty_key(xn_the, key);
    free(key);
}

/* KEYS[1] the peer's hash, KEYS[2] this node's index on that shard; ARGV[1]
 * this node, ARGV[2] the peer's channels here ("" when it left this node).
 * (Keys outside KEYS are fine: the shards are standalone Redis instances.) */
static const char PEER_SCRIPT[] =
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('SADD', KEYS[2], KEYS[1])\n"
    "else\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('SREM', KEYS[2], KEYS[1])\n"
    "end\n"
    "return 1\n";

/* Writes one peer's record (or removes it when the peer left). 0, or -1 when the
 * shard is down (the key stays dirty). */
static int write_peer(struct brk_xnode *xn, const char *key)
{
    const char *sep = strchr(key, '\x1f');
    if (!sep) return 0;
    char app[80], name[CLU_NAME_MAX];
    snprintf(app, sizeof app, "%.*s", (int)(sep - key), key);
    if (clu_peer_name(name, sizeof name, app, sep + 1) < 0) return 0;
    struct brk_peer *p = htab_get(&xn->b->peers, key);
    char *chans = NULL;
    size_t clen = 0;
    if (p && !(chans = peer_channels(p, NULL, &clen))) return -1;
    const char *argv[7] = {"EVAL", PEER_SCRIPT, "2", name, xn->index, xn->node, p ? chans : ""};
    size_t lens[7] = {4, sizeof PEER_SCRIPT - 1, 1, strlen(name), strlen(xn->index), strlen(xn->node), clen};
    char *arg = strdup(key);
    int rc = arg ? clu_command(xn->cl, name, 7, argv, lens, peer_written, arg) : -1;
    if (rc) free(arg);
    free(chans);
    return rc;
}

void xpeers_flush(struct brk_xnode *xn)
{
    xn_flush_keys(xn, &xn->dirty, write_peer);
    rtm_timer_cancel(xn->b->timers, &xn->flush_t);
}

static void flush_cb(struct rtm_timer *t)
{
    struct brk_xnode *xn = lws_container_of(t, struct brk_xnode, flush_t);
    xpeers_flush(xn);
}

void xnode_peer_dirty(struct brk_broker *b, const struct brk_peer *p)
{
    if (b->xn) xpeers_dirty_key(b->xn, p->key);
}

void xpeers_dirty_key(struct brk_xnode *xn, const char *key)
{
    if (xn->stopping) return;
    mark_dirty_key(xn, key);
    if (!rtm_timer_armed(&xn->flush_t)) rtm_timer_in(xn->b->timers, &xn->flush_t, flush_cb, 0);
}

/* A shard came back: Redis may be empty, so every local peer's record is written again. */
void xpeers_rewrite_all(struct brk_xnode *xn)
{
    for (uint32_t i = 0; i < xn->b->peers.cap; i++) {
        const struct brk_peer *p = xn->b->peers.slots[i].key ? xn->b->peers.slots[i].val : NULL;
        if (p) mark_dirty_key(xn, p->key);
    }
    xpeers_flush(xn);
}

/* ---- direct send ---- */

/* KEYS[1] the recipient's hash, KEYS[2] its move key (clu_move_name); ARGV[1]
 * this node, ARGV[2] the node message, ARGV[3] the sender's channels
 * ("\n"-separated, "\n" at both ends). -1: no node of the recipient shares a
 * channel with the sender; else twice the number of other nodes the direct
 * was published to, plus 1 when a place of the recipient is moving to this
 * node (xresume.c: the direct is past the move's cut, the place gets it here). */
static const char SEND_SCRIPT[] =
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local ok = false\n"
    "for i = 2, #h, 2 do\n"
    "  for ch in string.gmatch(ARGV[3], '[^\\n]+') do\n"
    "    if string.find(h[i], '\\n' .. ch .. '\\n', 1, true) then ok = true break end\n"
    "  end\n"
    "  if ok then break end\n"
    "end\n"
    "if not ok then return -1 end\n"
    "local n = 0\n"
    "for i = 1, #h, 2 do\n"
    "  if h[i] ~= ARGV[1] then redis.call('PUBLISH', '" CLU_NODE_PREFIX "' .. h[i], ARGV[2]); n = n + 1 end\n"
    "end\n"
    "if redis.call('GET', KEYS[2]) == ARGV[1] then return n * 2 + 1 end\n"
    "return n * 2\n";

static void send_done(void *arg, int ok, long long value)
{
    struct xwait *w = arg;
    struct brk_xnode *xn = w->xn;
    if (xn->stopping) goto out;
    if (!ok) {
        if (w->s) {
            xn_unavailable(w->s, wait_rid(w));
        }
        goto out;
    }
    if (value < 0) {
        if (w->s) sess_error(w->s, RTM_WIRE_PEER_NOT_FOUND, NULL, wait_rid(w));
        goto out;
    }
    rtm_metric_inc(RTM_M_CLUSTER_OUT, (uint64_t)(value / 2));
    struct brk_peer *p = peer_find(xn->b, w->app, w->to);
    if (p) direct_deliver(p, w->s, w->from, w->msg);
    if (value & 1) xresume_direct(xn, w->app, w->to, w->from, w->msg, 1);
    if (w->s) sess_ack(w->s, wait_rid(w));
out:
    wait_free(w);
}

void xnode_send(struct brk_session *s, const char *to, const char *data, size_t dlen, const char *rid,
                int64_t rx_ns)
{
    struct brk_xnode *xn = s->b->xn;
    char name[CLU_NAME_MAX];
    char *meta = NULL, *payload = NULL;
    size_t clen = 0, plen;
    char *chans = NULL;
    struct xwait *w = NULL;
    /* the sender's peerMetadata as its peer keeps it serialized (NULL: none) */
    const char *pm = s->peer ? s->peer->meta_text : NULL;
    size_t pmlen = pm ? s->peer->meta_len : 0;
    if (clu_peer_name(name, sizeof name, s->app, to) < 0) goto oom;
    if (!clu_shard_up(xn->cl, clu_shard_of_chan(xn->cl, name))) {
        /* Redis is out: a recipient here still gets it (nothing to cross); one
         * elsewhere cannot, and the sender is told. */
        struct brk_peer *p = peer_find(s->b, s->app, to);
        if (!p || !share_channel(s, p)) {
            xn_unavailable(s, rid);
            return;
        }
        struct brk_msg *msg = wire_direct(s->claims.sub, data, dlen, NULL, pm, pmlen);
        if (!msg) goto oom;
        msg_time(msg, RTM_H_DIRECT_SEND, rx_ns);
        direct_deliver(p, s, s->claims.sub, msg);
        msg_unref(msg);
        sess_ack(s, rid);
        return;
    }
    xpeers_flush(xn); /* the script must see this node's latest state */
    if (pm && !(meta = strdup(pm))) goto oom;
    if (s->peer) chans = peer_channels(s->peer, NULL, &clen);
    else if ((chans = strdup("\n"))) clen = 1;
    if (!chans) goto oom;
    const char *f[CLU_FIELDS] = {xn->node, s->sid, s->app, to, s->claims.sub, meta, data};
    size_t n[CLU_FIELDS] = {strlen(xn->node), strlen(s->sid), strlen(s->app), strlen(to), strlen(s->claims.sub),
                            meta ? strlen(meta) : 0, dlen};
    if (!(payload = clu_encode(CLU_DIRECT, f, n, &plen))) goto oom;
    if (!(w = wait_new(xn, s, rid)) || !(w->to = strdup(to)) || !(w->from = strdup(s->claims.sub)) ||
        !(w->msg = wire_direct(s->claims.sub, data, dlen, NULL, pm, pmlen)))
        goto oom;
    snprintf(w->app, sizeof w->app, "%s", s->app);
    msg_time(w->msg, RTM_H_DIRECT_SEND, rx_ns); /* this node's recipients: the Redis round trip included */
    char mv[CLU_NAME_MAX];
    if (clu_move_name(mv, sizeof mv, s->app, to) < 0) goto oom;
    const char *argv[8] = {"EVAL", SEND_SCRIPT, "2", name, mv, xn->node, payload, chans};
    size_t lens[8] = {4, sizeof SEND_SCRIPT - 1, 1, strlen(name), strlen(mv), strlen(xn->node), plen, clen};
    if (clu_command(xn->cl, name, 8, argv, lens, send_done, w)) {
        wait_free(w);
        xn_unavailable(s, rid);
        goto out;
    }
    goto out;
oom:
    if (w) wait_free(w);
    sess_error(s, RTM_WIRE_INTERNAL_ERROR, "out of memory", rid);
out:
    free(meta);
    free(chans);
    free(payload);
}

void xpeers_deliver(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *to, const char *from)
{
    /* The script only sends here if the recipient is here, or a place of it
     * is moving here (xresume.c keeps the direct for it). */
    struct brk_peer *p = peer_find(xn->b, app, to);
    if (!p && !xn->n_handovers) return; /* left meanwhile: the sender was acked, like a local peer that leaves */
    struct brk_msg *msg = wire_direct(from, m->f[CLU_F_DATA], m->n[CLU_F_DATA], NULL,
                                       m->f[CLU_F_META] ? m->f[CLU_F_META] : "", m->n[CLU_F_META]);
    if (!msg) {
        log_error("cluster: out of memory delivering a direct");
        return;
    }
    if (p) {
        xn->remote_delivery = 1; /* a place moving away tells a direct before its cut from one after */
        direct_deliver(p, NULL, from, msg);
        xn->remote_delivery = 0;
    }
    xresume_direct(xn, app, to, from, msg, 0);
    msg_unref(msg);
}

void xpeers_free(struct brk_xnode *xn) { xn_free_keys(&xn->dirty); }
