/* xnode.c: the broker's side of cluster mode: channels and publishes across
 * nodes through the Redis link (cluster/cluster.h). Absent (b->xn NULL)
 * without --cluster, and then nothing here runs.
 *
 * One order per channel: a publish is never delivered on its own node
 * directly. Every node, the publisher's included, delivers from its Redis
 * subscription, so all of them see the channel's messages in the order Redis
 * took them (one channel lives on one shard). The sender's own session is
 * skipped by its session id, so nothing is echoed. The publisher's ack waits
 * for Redis to take the message; when it cannot (shard down, deadline, lost
 * connection), the sender gets cluster_unavailable with its requestId
 * instead of a silent loss.
 *
 * A node subscribes to a channel's Redis channel while the channel has
 * subscribers here (held places included), and a subscribe is acked once
 * Redis confirmed it, so a client that holds its ack receives every publish
 * made after it, from any node.
 *
 * Direct send: each node keeps, per peer connected to it, one field of the
 * peer's Redis hash (rtm:p:...): its node id -> the channels the peer is in
 * there. A send runs one script on the recipient's shard that checks the
 * scope rule against every node's channels (the two share a channel
 * somewhere), publishes the direct to each other node the recipient is on
 * (their rtm:n: channel), and answers how many, or -1 for peer_not_found;
 * the sender's node then delivers to its own sessions of the recipient and
 * acks. One connection per shard keeps a sender's directs to one recipient in
 * order. Changes to the hash are coalesced per loop turn (and flushed before
 * any send, so a send sees this node's own latest state), and rewritten in
 * full for every local peer when a shard comes back (Redis may have restarted
 * empty).
 *
 * Node death: every node writes a heartbeat (Redis's own clock) into
 * rtm:nodes on every shard once a second, and lists the peer records it has
 * fields in under rtm:ni:<node> on that shard. The same script reaps: a node
 * whose heartbeat is older than cluster-node-dead-ms loses its fields (a
 * bounded number per call), so a direct to a peer of a dead node answers
 * peer_not_found instead of vanishing. A node that starts (or meets a shard
 * for the first time) first removes the fields a previous life under its id
 * left there.
 *
 * Per-app limits: with each heartbeat a node writes its session count of
 * every app it serves into rtm:ac:<app> (field: node) and reads the other
 * nodes' total back, so max-connections-per-app counts the whole cluster as
 * of the last beat (a soft limit: connects on several nodes within a second
 * can pass it together; an app new to a node is asked about at once). The fields are in the node's index, so a
 * dead node's counts are reaped with its peer records.
 *
 * Requests waiting on Redis (struct xwait) are listed on their session; a
 * session that closes first only clears its pointers, and the wait is freed
 * when Redis answers (the link guarantees an answer, even at shutdown). */
#include "internal.h"

#include "cluster.h"
#include "errors.h"
#include "json_dump.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUB_WAITS_MAX 65536 /* subscribe acks waiting on Redis; beyond, acked at once */
#define DIRTY_MAX (1 << 20)  /* peers whose Redis record waits to be written; beyond, dropped (logged) */
#define HEARTBEAT_MS 1000
#define REAP_BATCH "1000"    /* fields of dead nodes removed per heartbeat script */

struct xwait {
    struct brk_session *s;          /* NULL once the session closed */
    struct xwait *s_next, *s_prev;  /* the session's waits */
    struct xwait *b_next, *b_prev;  /* subscribe waits only: the node's list */
    struct brk_xnode *xn;
    int shard;                      /* subscribe waits */
    char *chan;                     /* subscribe waits: the Redis channel, owned */
    struct brk_msg *msg;            /* send waits: the direct frame for this node's sessions */
    char *to, *from;                /* send waits, owned */
    char app[65];                   /* send waits */
    char rid[];                     /* "" when the request had none */
};

struct brk_xnode {
    struct brk_broker *b;
    struct clu *cl;
    char node[128];
    struct xwait *sub_waits;
    int n_sub_waits;
    int stopping;
    struct htab dirty; /* "app\x1fpeer" -> the same string (owned): peers whose record to write */
    struct rtm_timer flush_t;
    int dirty_full_logged;
    struct rtm_timer beat_t;
    uint32_t shards_met; /* bit per shard: its stale fields of this node's id were removed */
    char index[CLU_NAME_MAX]; /* rtm:ni:<node> */
    struct htab remote_apps;  /* app -> struct remote_app: sessions on the other nodes */
};

/* An app this node counts: one per app with sessions here now or at the
 * last beat; owned by xn->remote_apps. */
struct remote_app {
    char app[65];
    int remote;  /* sessions on the other nodes, as of the last answer */
    int written; /* this node's count as last written */
};

/* The process's one xnode: a peer record's write callback carries only the
 * peer's key, and may fire during clu_destroy. */
static struct brk_xnode *the_xn;

/* ---- waits ---- */

static struct xwait *wait_new(struct brk_xnode *xn, struct brk_session *s, const char *rid)
{
    size_t rl = rid ? strlen(rid) : 0;
    struct xwait *w = calloc(1, sizeof *w + rl + 1);
    if (!w) return NULL;
    w->xn = xn;
    w->s = s;
    if (rl) memcpy(w->rid, rid, rl);
    w->s_next = s->xwaits;
    if (s->xwaits) s->xwaits->s_prev = w;
    s->xwaits = w;
    return w;
}

static void wait_unlink_session(struct xwait *w)
{
    if (!w->s) return;
    if (w->s_prev) w->s_prev->s_next = w->s_next;
    else w->s->xwaits = w->s_next;
    if (w->s_next) w->s_next->s_prev = w->s_prev;
    w->s = NULL;
    w->s_next = w->s_prev = NULL;
}

static void wait_free(struct xwait *w)
{
    wait_unlink_session(w);
    free(w->chan);
    free(w->to);
    free(w->from);
    msg_unref(w->msg);
    free(w);
}

void xnode_session_closed(struct brk_session *s)
{
    while (s->xwaits) wait_unlink_session(s->xwaits);
}

static const char *rid_of(const struct xwait *w) { return w->rid[0] ? w->rid : NULL; }

/* ---- subscriptions ---- */

static int redis_name(char *out, size_t outlen, const struct brk_channel *ch)
{
    int applen = (int)(ch->name - ch->key - 1);
    char app[80];
    snprintf(app, sizeof app, "%.*s", applen, ch->key);
    return clu_channel_name(out, outlen, app, ch->name);
}

void xnode_channel_used(struct brk_broker *b, struct brk_channel *ch)
{
    char name[CLU_NAME_MAX];
    if (redis_name(name, sizeof name, ch) < 0 || clu_want(b->xn->cl, name) < 0)
        log_error("cluster: cannot subscribe channel %s across nodes (out of memory)", ch->name);
}

void xnode_channel_unused(struct brk_broker *b, struct brk_channel *ch)
{
    char name[CLU_NAME_MAX];
    if (redis_name(name, sizeof name, ch) >= 0) clu_unwant(b->xn->cl, name);
}

static void sub_wait_unlink(struct brk_xnode *xn, struct xwait *w)
{
    if (w->b_prev) w->b_prev->b_next = w->b_next;
    else xn->sub_waits = w->b_next;
    if (w->b_next) w->b_next->b_prev = w->b_prev;
    xn->n_sub_waits--;
}

static void flush_peers(struct brk_xnode *xn);

void xnode_ack_subscribe(struct brk_session *s, const char *channel, const char *rid)
{
    struct brk_xnode *xn = s->b->xn;
    char name[CLU_NAME_MAX];
    /* The peer's new channel goes to Redis before the ack can reach the client
     * (a send from another node right after the ack should find it). */
    flush_peers(xn);
    if (clu_channel_name(name, sizeof name, s->app, channel) < 0) goto now;
    int rc = clu_want(xn->cl, name); /* idempotent: asks whether it is settled */
    if (rc != 0 || xn->n_sub_waits >= SUB_WAITS_MAX) goto now;
    struct xwait *w = wait_new(xn, s, rid);
    if (!w || !(w->chan = strdup(name))) {
        if (w) wait_free(w);
        goto now;
    }
    w->shard = clu_shard_of_chan(xn->cl, name);
    w->b_next = xn->sub_waits;
    if (xn->sub_waits) xn->sub_waits->b_prev = w;
    xn->sub_waits = w;
    xn->n_sub_waits++;
    return;
now:
    sess_ack(s, rid);
}

/* Acks the subscribe waits that match (chan, or every wait of a shard). */
static void settle_sub_waits(struct brk_xnode *xn, const char *chan, int shard)
{
    struct xwait *w = xn->sub_waits;
    while (w) {
        struct xwait *next = w->b_next;
        if (chan ? strcmp(w->chan, chan) == 0 : w->shard == shard) {
            sub_wait_unlink(xn, w);
            if (w->s) sess_ack(w->s, rid_of(w));
            wait_free(w);
        }
        w = next;
    }
}

static void on_subscribed(void *user, const char *chan)
{
    struct brk_xnode *xn = user;
    if (xn->n_sub_waits) settle_sub_waits(xn, chan, -1);
}

static void shard_came_up(struct brk_xnode *xn, int shard);

static void on_shard_state(void *user, int shard, int up)
{
    struct brk_xnode *xn = user;
    /* Down: the subscriptions it held count as settled (they are made again
     * on reconnect); local delivery goes on meanwhile. */
    if (!up && xn->n_sub_waits) settle_sub_waits(xn, NULL, shard);
    if (up) shard_came_up(xn, shard);
}

/* ---- where peers are (direct send) ---- */

/* "\n"-separated channel names of p on this node, with a leading and a trailing
 * "\n" ("\n" alone when none); malloc'd, NULL on ENOMEM. */
static char *peer_channels(const struct brk_peer *p, size_t *len)
{
    size_t cap = 256, n = 0;
    char *out = malloc(cap);
    struct htab seen;
    htab_init(&seen, HTAB_PTR);
    if (!out) return NULL;
    out[n++] = '\n';
    for (const struct brk_session *s = p->sessions; s; s = s->peer_next) {
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
    if (htab_get(&xn->dirty, key)) return;
    if (xn->dirty.n >= DIRTY_MAX) {
        if (!xn->dirty_full_logged) log_error("cluster: %d peer records wait for Redis; dropping more", DIRTY_MAX);
        xn->dirty_full_logged = 1;
        return;
    }
    char *k = strdup(key);
    if (!k || htab_put(&xn->dirty, k, k)) {
        free(k);
        log_error("cluster: out of memory recording a peer change");
    }
}

static void peer_written(void *arg, int ok, long long value)
{
    char *key = arg; /* owned: "xn\x1e" is not needed: one xnode per process */
    (void)value;
    /* A failed write waits for the shard's next "up", which rewrites every record. */
    if (!ok && the_xn && !the_xn->stopping) mark_dirty_key(the_xn, key);
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

/* ARGV[1] this node, ARGV[2] dead-after ms, ARGV[3] most fields to reap.
 * The heartbeat, on Redis's clock (no skew between nodes), then the reaping of
 * nodes silent for longer than dead-after: their fields go, and the node with
 * its index once the index is empty. Only a node that has itself beaten
 * without a gap for dead-after may reap (rtm:nodes:run: the start of each
 * node's current run of regular beats): after a Redis stall or a partition
 * every node's beats were late alike, and each gets dead-after to come back
 * before anyone is reaped. Returns the fields removed. */
static const char BEAT_SCRIPT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local after = tonumber(ARGV[2])\n"
    "local prev = tonumber(redis.call('ZSCORE', 'rtm:nodes', ARGV[1]))\n"
    "redis.call('ZADD', 'rtm:nodes', now, ARGV[1])\n"
    "if not prev or now - prev > after / 2 then redis.call('HSET', 'rtm:nodes:run', ARGV[1], now) end\n"
    "local run = tonumber(redis.call('HGET', 'rtm:nodes:run', ARGV[1]))\n"
    "if now - run < after then return 0 end\n"
    "local dead = redis.call('ZRANGEBYSCORE', 'rtm:nodes', '-inf', now - after)\n"
    "local budget, n = tonumber(ARGV[3]), 0\n"
    "for _, node in ipairs(dead) do\n"
    "  local idx = 'rtm:ni:' .. node\n"
    "  local keys = redis.call('SPOP', idx, budget)\n"
    "  for _, k in ipairs(keys) do redis.call('HDEL', k, node) end\n"
    "  n = n + #keys; budget = budget - #keys\n"
    "  if redis.call('SCARD', idx) == 0 then\n"
    "    redis.call('ZREM', 'rtm:nodes', node); redis.call('HDEL', 'rtm:nodes:run', node)\n"
    "  end\n"
    "  if budget <= 0 then break end\n"
    "end\n"
    "return n\n";

/* ARGV[1] this node: the fields a previous life under this id left on the shard. */
static const char RESET_SCRIPT[] =
    "local idx = 'rtm:ni:' .. ARGV[1]\n"
    "local keys = redis.call('SMEMBERS', idx)\n"
    "for _, k in ipairs(keys) do redis.call('HDEL', k, ARGV[1]) end\n"
    "redis.call('DEL', idx)\n"
    "return #keys\n";

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
    if (p && !(chans = peer_channels(p, &clen))) return -1;
    const char *argv[7] = {"EVAL", PEER_SCRIPT, "2", name, xn->index, xn->node, p ? chans : ""};
    size_t lens[7] = {4, sizeof PEER_SCRIPT - 1, 1, strlen(name), strlen(xn->index), strlen(xn->node), clen};
    char *arg = strdup(key);
    int rc = arg ? clu_command(xn->cl, name, 7, argv, lens, peer_written, arg) : -1;
    if (rc) free(arg);
    free(chans);
    return rc;
}

static void flush_peers(struct brk_xnode *xn)
{
    if (!xn->dirty.n) return;
    char **done = malloc(xn->dirty.n * sizeof *done);
    uint32_t nd = 0;
    if (!done) return;
    for (uint32_t i = 0; i < xn->dirty.cap; i++) {
        char *k = xn->dirty.slots[i].key ? xn->dirty.slots[i].val : NULL;
        if (k && write_peer(xn, k) == 0) done[nd++] = k;
    }
    for (uint32_t i = 0; i < nd; i++) {
        htab_del(&xn->dirty, done[i]);
        free(done[i]);
    }
    free(done);
    rtm_timer_cancel(xn->b->timers, &xn->flush_t);
}

static void flush_cb(struct rtm_timer *t)
{
    struct brk_xnode *xn = lws_container_of(t, struct brk_xnode, flush_t);
    flush_peers(xn);
}

void xnode_peer_dirty(struct brk_broker *b, const struct brk_peer *p)
{
    struct brk_xnode *xn = b->xn;
    if (!xn || xn->stopping) return;
    mark_dirty_key(xn, p->key);
    if (!rtm_timer_armed(&xn->flush_t)) rtm_timer_in(b->timers, &xn->flush_t, flush_cb, 0);
}

/* A shard came back: Redis may be empty, so every local peer's record is written again. */
static void rewrite_all_peers(struct brk_xnode *xn)
{
    for (uint32_t i = 0; i < xn->b->peers.cap; i++) {
        const struct brk_peer *p = xn->b->peers.slots[i].key ? xn->b->peers.slots[i].val : NULL;
        if (p) mark_dirty_key(xn, p->key);
    }
    flush_peers(xn);
}

/* ---- per-app counts across nodes ---- */

/* KEYS[1] rtm:ac:<app>, KEYS[2] this node's index; ARGV[1] this node, ARGV[2]
 * its sessions of the app. Writes this node's count (or removes it at 0) and
 * returns the other nodes' total. */
static const char APP_SCRIPT[] =
    "if tonumber(ARGV[2]) > 0 then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('SADD', KEYS[2], KEYS[1])\n"
    "else\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('SREM', KEYS[2], KEYS[1])\n"
    "end\n"
    "local h, n = redis.call('HGETALL', KEYS[1]), 0\n"
    "for i = 1, #h, 2 do if h[i] ~= ARGV[1] then n = n + tonumber(h[i + 1]) end end\n"
    "return n\n";

static void app_counted(void *arg, int ok, long long others)
{
    char *app = arg;
    struct brk_xnode *xn = the_xn;
    if (ok && xn && !xn->stopping) {
        struct remote_app *r = htab_get(&xn->remote_apps, app);
        if (r) r->remote = (int)others;
    }
    free(app);
}

static void count_app(struct brk_xnode *xn, const char *app, int n)
{
    char key[CLU_NAME_MAX], num[16];
    if (snprintf(key, sizeof key, "rtm:ac:%zu:%s", strlen(app), app) >= (int)sizeof key) return;
    snprintf(num, sizeof num, "%d", n);
    const char *argv[7] = {"EVAL", APP_SCRIPT, "2", key, xn->index, xn->node, num};
    size_t lens[7] = {4, sizeof APP_SCRIPT - 1, 1, strlen(key), strlen(xn->index), strlen(xn->node), strlen(num)};
    char *arg = strdup(app);
    if (arg && clu_command(xn->cl, key, 7, argv, lens, app_counted, arg)) free(arg);
}

/* Every app with sessions here, and every app that had some at the last
 * beat (its field goes once its count here is 0). */
static void count_apps(struct brk_xnode *xn)
{
    struct htab *local = &xn->b->app_conns;
    for (uint32_t i = 0; i < local->cap; i++) {
        const struct app_count *c = local->slots[i].key ? local->slots[i].val : NULL;
        if (!c || htab_get(&xn->remote_apps, c->app)) continue;
        struct remote_app *r = calloc(1, sizeof *r);
        if (!r) break;
        snprintf(r->app, sizeof r->app, "%s", c->app);
        if (htab_put(&xn->remote_apps, r->app, r)) {
            free(r);
            break;
        }
    }
    struct remote_app **gone = xn->remote_apps.n ? malloc(xn->remote_apps.n * sizeof *gone) : NULL;
    uint32_t ng = 0;
    for (uint32_t i = 0; i < xn->remote_apps.cap; i++) {
        struct remote_app *r = xn->remote_apps.slots[i].key ? xn->remote_apps.slots[i].val : NULL;
        if (!r) continue;
        int n = app_conns_get(xn->b, r->app);
        if (n == 0 && r->written == 0) {
            if (gone) gone[ng++] = r; /* nothing here, nothing of ours in Redis: forget it */
            continue;
        }
        count_app(xn, r->app, n);
        /* A failed write is redone by the next beat while n > 0; a lost write of 0 leaves a
         * stale count (a stricter limit) until this node restarts or dies. */
        r->written = n;
    }
    for (uint32_t i = 0; i < ng; i++) {
        htab_del(&xn->remote_apps, gone[i]->app);
        free(gone[i]);
    }
    free(gone);
}

int xnode_app_remote(struct brk_broker *b, const char *app)
{
    struct brk_xnode *xn = b->xn;
    if (!xn) return 0;
    struct remote_app *r = htab_get(&xn->remote_apps, app);
    if (r) return r->remote;
    /* An app new to this node: ask now rather than at the next beat, so only
     * the connects of the next Redis round trip go uncounted. */
    if (!(r = calloc(1, sizeof *r))) return 0;
    snprintf(r->app, sizeof r->app, "%s", app);
    if (htab_put(&xn->remote_apps, r->app, r)) {
        free(r);
        return 0;
    }
    count_app(xn, app, app_conns_get(b, app));
    r->written = app_conns_get(b, app);
    return 0;
}

/* ---- heartbeats and dead nodes ---- */

static void reaped(void *arg, int ok, long long n)
{
    (void)arg;
    if (ok && n > 0) log_info("cluster: removed %lld peer records of dead nodes", n);
}

static void script_on(struct brk_xnode *xn, int shard, const char *script, size_t slen, clu_int_fn *fn)
{
    char dead[24];
    snprintf(dead, sizeof dead, "%d", xn->b->cfg->cluster_node_dead_ms);
    const char *argv[6] = {"EVAL", script, "0", xn->node, dead, REAP_BATCH};
    size_t lens[6] = {4, slen, 1, strlen(xn->node), strlen(dead), strlen(REAP_BATCH)};
    clu_command_on(xn->cl, shard, 6, argv, lens, fn, NULL); /* a shard that is down gets it next beat */
}

static void beat_cb(struct rtm_timer *t)
{
    struct brk_xnode *xn = lws_container_of(t, struct brk_xnode, beat_t);
    for (int i = 0; i < clu_shard_count(xn->cl); i++)
        if (clu_shard_up(xn->cl, i)) script_on(xn, i, BEAT_SCRIPT, sizeof BEAT_SCRIPT - 1, reaped);
    count_apps(xn);
    rtm_timer_in(xn->b->timers, &xn->beat_t, beat_cb, HEARTBEAT_MS);
}

/* A shard is up (again): Redis may have restarted empty, so this node's
 * heartbeat and every local peer's record are written again. */
static void shard_came_up(struct brk_xnode *xn, int shard)
{
    if (!(xn->shards_met & (1u << shard))) {
        /* first meeting: what an earlier life under this id left goes first (same connection, so in order) */
        xn->shards_met |= 1u << shard;
        script_on(xn, shard, RESET_SCRIPT, sizeof RESET_SCRIPT - 1, NULL);
    }
    script_on(xn, shard, BEAT_SCRIPT, sizeof BEAT_SCRIPT - 1, reaped);
    rewrite_all_peers(xn);
}

/* ---- direct send ---- */

/* KEYS[1] the recipient's hash; ARGV[1] this node, ARGV[2] the node message,
 * ARGV[3] the sender's channels ("\n"-separated, "\n" at both ends).
 * -1: no node of the recipient shares a channel with the sender; else the
 * number of other nodes the direct was published to. */
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
    "return n\n";

static void send_done(void *arg, int ok, long long value)
{
    struct xwait *w = arg;
    struct brk_xnode *xn = w->xn;
    if (xn->stopping) goto out;
    if (!ok) {
        if (w->s) {
            rtm_metric_inc(RTM_M_CLUSTER_UNAVAILABLE, 1);
            sess_error(w->s, RTM_WIRE_CLUSTER_UNAVAILABLE, NULL,
                       rid_of(w));
        }
        goto out;
    }
    if (value < 0) {
        if (w->s) sess_error(w->s, RTM_WIRE_PEER_NOT_FOUND, NULL, rid_of(w));
        goto out;
    }
    rtm_metric_inc(RTM_M_CLUSTER_OUT, (uint64_t)value);
    struct brk_peer *p = peer_find(xn->b, w->app, w->to);
    if (p) direct_deliver(p, w->s, w->from, w->msg);
    if (w->s) sess_ack(w->s, rid_of(w));
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
    const json_t *pm = s->peer ? s->peer->peer_metadata : NULL;
    if (clu_peer_name(name, sizeof name, s->app, to) < 0) goto oom;
    if (!clu_shard_up(xn->cl, clu_shard_of_chan(xn->cl, name))) {
        /* Redis is out: a recipient here still gets it (nothing to cross); one
         * elsewhere cannot, and the sender is told. */
        struct brk_peer *p = peer_find(s->b, s->app, to);
        if (!p || !share_channel(s, p)) {
            rtm_metric_inc(RTM_M_CLUSTER_UNAVAILABLE, 1);
            sess_error(s, RTM_WIRE_CLUSTER_UNAVAILABLE, NULL, rid);
            return;
        }
        struct brk_msg *msg = wire_direct(s->claims.sub, data, dlen, pm, NULL, 0);
        if (!msg) goto oom;
        msg_time(msg, RTM_H_DIRECT_SEND, rx_ns);
        direct_deliver(p, s, s->claims.sub, msg);
        msg_unref(msg);
        sess_ack(s, rid);
        return;
    }
    flush_peers(xn); /* the script must see this node's latest state */
    if (pm && !(meta = rtm_json_dumps(pm, JSON_COMPACT | JSON_ENCODE_ANY))) goto oom;
    if (s->peer) chans = peer_channels(s->peer, &clen);
    else if ((chans = strdup("\n"))) clen = 1;
    if (!chans) goto oom;
    const char *f[CLU_FIELDS] = {xn->node, s->sid, s->app, to, s->claims.sub, meta, data};
    size_t n[CLU_FIELDS] = {strlen(xn->node), strlen(s->sid), strlen(s->app), strlen(to), strlen(s->claims.sub),
                            meta ? strlen(meta) : 0, dlen};
    if (!(payload = clu_encode(CLU_DIRECT, f, n, &plen))) goto oom;
    if (!(w = wait_new(xn, s, rid)) || !(w->to = strdup(to)) || !(w->from = strdup(s->claims.sub)) ||
        !(w->msg = wire_direct(s->claims.sub, data, dlen, pm, NULL, 0)))
        goto oom;
    snprintf(w->app, sizeof w->app, "%s", s->app);
    msg_time(w->msg, RTM_H_DIRECT_SEND, rx_ns); /* this node's recipients: the Redis round trip included */
    const char *argv[7] = {"EVAL", SEND_SCRIPT, "1", name, xn->node, payload, chans};
    size_t lens[7] = {4, sizeof SEND_SCRIPT - 1, 1, strlen(name), strlen(xn->node), plen, clen};
    if (clu_command(xn->cl, name, 7, argv, lens, send_done, w)) {
        wait_free(w);
        rtm_metric_inc(RTM_M_CLUSTER_UNAVAILABLE, 1);
        sess_error(s, RTM_WIRE_CLUSTER_UNAVAILABLE, NULL, rid);
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

/* ---- publish ---- */

static void publish_done(void *arg, int ok)
{
    struct xwait *w = arg;
    if (w->s && !w->xn->stopping) {
        if (ok) {
            sess_ack(w->s, rid_of(w));
        } else {
            rtm_metric_inc(RTM_M_CLUSTER_UNAVAILABLE, 1);
            sess_error(w->s, RTM_WIRE_CLUSTER_UNAVAILABLE, NULL,
                       rid_of(w));
        }
    }
    wait_free(w);
}

int xnode_publish(struct brk_broker *b, const char *app, const char *channel, struct brk_session *sender,
                  const char *data, size_t dlen, const char *rid)
{
    struct brk_xnode *xn = b->xn;
    char name[CLU_NAME_MAX];
    char *meta = NULL, *payload = NULL;
    struct xwait *w = NULL;
    int rc = RTM_ENOMEM;
    if (clu_channel_name(name, sizeof name, app, channel) < 0) {
        rc = RTM_EINVAL;
        goto fail;
    }
    if (sender && sender->peer && sender->peer->peer_metadata &&
        !(meta = rtm_json_dumps(sender->peer->peer_metadata, JSON_COMPACT | JSON_ENCODE_ANY)))
        goto fail;
    const char *from = sender ? sender->claims.sub : "_server";
    const char *sid = sender ? sender->sid : "";
    const char *f[CLU_FIELDS] = {xn->node, sid, app, channel, from, meta, data};
    size_t n[CLU_FIELDS] = {strlen(xn->node), strlen(sid), strlen(app), strlen(channel), strlen(from),
                            meta ? strlen(meta) : 0, dlen};
    size_t plen;
    if (!(payload = clu_encode(CLU_PUBLISH, f, n, &plen))) goto fail;
    if (sender && !(w = wait_new(xn, sender, rid))) goto fail;
    if (clu_publish(xn->cl, name, payload, plen, w ? publish_done : NULL, w)) {
        rc = RTM_EUNAVAILABLE;
        goto fail;
    }
    rtm_metric_inc(RTM_M_CLUSTER_OUT, 1);
    free(meta);
    free(payload);
    return 0;
fail:
    if (w) wait_free(w);
    free(meta);
    free(payload);
    if (sender) {
        if (rc == RTM_EUNAVAILABLE) {
            rtm_metric_inc(RTM_M_CLUSTER_UNAVAILABLE, 1);
            sess_error(sender, RTM_WIRE_CLUSTER_UNAVAILABLE, NULL, rid);
        } else {
            sess_error(sender, RTM_WIRE_INTERNAL_ERROR, "could not publish", rid);
        }
    }
    return rc;
}

/* A message from Redis: one of this node's channels. */
static void on_message(void *user, const char *chan, const char *payload, size_t len)
{
    struct brk_xnode *xn = user;
    struct clu_msg m;
    (void)chan;
    if (clu_decode(payload, len, &m) ||
        (m.kind != CLU_PUBLISH && m.kind != CLU_DIRECT && m.kind != CLU_CTL_KICK && m.kind != CLU_CTL_REVOKED)) {
        log_warn("cluster: dropped a malformed message from Redis (%zu bytes)", len);
        return;
    }
    char app[80], channel[RTM_MAX_CHANNEL + 1], from[RTM_MAX_PEER_ID + 16], sid[64];
    if (m.n[CLU_F_APP] >= sizeof app || m.n[CLU_F_CHANNEL] >= sizeof channel || m.n[CLU_F_FROM] >= sizeof from ||
        m.n[CLU_F_SID] >= sizeof sid)
        return;
#define COPY(dst, i) (memcpy(dst, m.f[i], m.n[i]), dst[m.n[i]] = '\0')
    COPY(app, CLU_F_APP);
    COPY(channel, CLU_F_CHANNEL);
    COPY(from, CLU_F_FROM);
    COPY(sid, CLU_F_SID);
#undef COPY
    rtm_metric_inc(RTM_M_CLUSTER_IN, 1);
    int self = m.n[CLU_F_NODE] == strlen(xn->node) && memcmp(m.f[CLU_F_NODE], xn->node, m.n[CLU_F_NODE]) == 0;
    if (m.kind == CLU_CTL_KICK || m.kind == CLU_CTL_REVOKED) {
        if (self) return; /* done locally when it was sent */
        if (m.kind == CLU_CTL_REVOKED) revocations_local(xn->b);
        else if (kick_local(xn->b, app, channel) > 0) log_info("cluster: kicked peer=%s app=%s for another node", channel, app);
        return;
    }
    if (m.kind == CLU_DIRECT) {
        /* channel holds the recipient's peerId; the script only sends here if it is here */
        struct brk_peer *p = peer_find(xn->b, app, channel);
        if (!p) return; /* left meanwhile: the sender was acked, like a local peer that leaves */
        struct brk_msg *msg = wire_direct(from, m.f[CLU_F_DATA], m.n[CLU_F_DATA], NULL, m.f[CLU_F_META] ? m.f[CLU_F_META] : "",
                                           m.n[CLU_F_META]);
        if (!msg) {
            log_error("cluster: out of memory delivering a direct");
            return;
        }
        direct_deliver(p, NULL, from, msg);
        msg_unref(msg);
        return;
    }
    /* Only a session of this node can be the sender. */
    chan_deliver(xn->b, app, channel, self && sid[0] ? sid : NULL, from, m.f[CLU_F_META], m.n[CLU_F_META],
                 m.f[CLU_F_DATA], m.n[CLU_F_DATA]);
}

/* ---- control: kick and revocations on every node ---- */

void xnode_control(struct brk_broker *b, char kind, const char *app, const char *peer_id)
{
    struct brk_xnode *xn = b->xn;
    const char *f[CLU_FIELDS] = {xn->node, NULL, app, peer_id, NULL, NULL, NULL};
    size_t n[CLU_FIELDS] = {strlen(xn->node), 0, strlen(app), strlen(peer_id), 0, 0, 0};
    size_t len;
    char *payload = clu_encode(kind, f, n, &len);
    if (!payload || clu_publish(xn->cl, CLU_CONTROL, payload, len, NULL, NULL))
        log_warn("cluster: could not tell the other nodes (%s %s): Redis is down or memory ran out",
                 kind == CLU_CTL_KICK ? "kick of" : "new revocations", kind == CLU_CTL_KICK ? peer_id : "");
    else rtm_metric_inc(RTM_M_CLUSTER_OUT, 1);
    free(payload);
}

/* ---- lifetime ---- */

static void default_node_id(const struct rtm_config *cfg, char *out, size_t outlen)
{
    /* Two nodes on one machine with one config differ by their public port. */
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    const char *port = strrchr(cfg->public_addr, ':');
    snprintf(out, outlen, "%s:%s", host, port ? port + 1 : cfg->public_addr);
}

int xnode_create(struct brk_broker *b, char *err, size_t errlen)
{
    struct brk_xnode *xn = calloc(1, sizeof *xn);
    if (!xn) {
        snprintf(err, errlen, "out of memory");
        return RTM_ENOMEM;
    }
    xn->b = b;
    htab_init(&xn->dirty, HTAB_STR);
    htab_init(&xn->remote_apps, HTAB_STR);
    default_node_id(b->cfg, xn->node, sizeof xn->node);
    static const struct clu_handler h = {on_message, on_subscribed, on_shard_state};
    if (clu_create(b->cfg->cluster, xn->node, b->cfg->cluster_timeout_ms, &h, xn, &xn->cl, err, errlen)) {
        free(xn);
        return RTM_EINVAL;
    }
    b->xn = xn;
    the_xn = xn;
    snprintf(xn->index, sizeof xn->index, "rtm:ni:%s", xn->node);
    log_info("cluster: node %s, %d Redis shard%s", xn->node, clu_shard_count(xn->cl),
             clu_shard_count(xn->cl) > 1 ? "s" : "");
    return 0;
}

void xnode_start(struct brk_broker *b, struct lws_context *ctx)
{
    if (!b->xn) return;
    if (clu_want(b->xn->cl, CLU_CONTROL) < 0) log_error("cluster: out of memory subscribing " CLU_CONTROL);
    clu_start(b->xn->cl, ctx, b->timers);
    rtm_timer_in(b->timers, &b->xn->beat_t, beat_cb, HEARTBEAT_MS);
}

void xnode_destroy(struct brk_broker *b)
{
    struct brk_xnode *xn = b->xn;
    if (!xn) return;
    xn->stopping = 1;
    rtm_timer_cancel(b->timers, &xn->flush_t);
    rtm_timer_cancel(b->timers, &xn->beat_t);
    clu_destroy(xn->cl); /* publish and send waits complete (and are freed) here */
    for (uint32_t i = 0; i < xn->dirty.cap; i++)
        if (xn->dirty.slots[i].key) free(xn->dirty.slots[i].val);
    htab_free(&xn->dirty);
    for (uint32_t i = 0; i < xn->remote_apps.cap; i++)
        if (xn->remote_apps.slots[i].key) free(xn->remote_apps.slots[i].val);
    htab_free(&xn->remote_apps);
    while (xn->sub_waits) {
        struct xwait *w = xn->sub_waits;
        sub_wait_unlink(xn, w);
        wait_free(w);
    }
    free(xn);
    b->xn = NULL;
    the_xn = NULL;
}

void xnode_metrics_gauges(struct brk_broker *b)
{
    struct clu_stats st;
    if (!brk_cluster_stats(b, &st)) return;
    rtm_gauges[RTM_G_CLUSTER_SHARDS_UP] = st.shards_up;
    rtm_gauges[RTM_G_CLUSTER_SUBSCRIPTIONS] = st.subscriptions;
}

int brk_cluster_stats(struct brk_broker *b, struct clu_stats *st)
{
    if (!b || !b->xn) return 0;
    clu_get_stats(b->xn->cl, st);
    return 1;
}
