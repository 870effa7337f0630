/* xbeat.c: node heartbeats, the reaping of dead nodes, per-app counts.
 *
 * Every node writes a heartbeat (Redis's own clock) into
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
 * can pass it together; an app new to a node is asked about at once). The
 * fields are in the node's index, so a dead node's counts are reaped with its
 * peer records. */
#include "xnode.h"

#include "errors.h"
#include "json_dump.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEARTBEAT_MS 1000
#define REAP_BATCH "1000" /* fields of dead nodes removed per heartbeat script */

/* An app this node counts: one per app with sessions here now or at the
 * last beat; owned by xn->remote_apps. */
struct remote_app {
    char app[65];
    int remote;  /* sessions on the other nodes, as of the last answer */
    int written; /* this node's count as last written */
};

/* ARGV[1] this node, ARGV[2] dead-after ms, ARGV[3] most fields to reap.
 * The heartbeat, on Redis's clock (no skew between nodes), then the reaping of
 * nodes silent for longer than dead-after: their fields go, and the node with
 * its index once the index is empty. Only a node that has itself beaten
 * without a gap for dead-after may reap (rtm:nodes:run: the start of each
 * node's current run of regular beats): after a Redis stall or a partition
 * every node's beats were late alike, and each gets dead-after to come back
 * before anyone is reaped. Returns the fields removed. */
static const char BEAT_SCRIPT[] = XPR_LUA
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
    "  for _, k in ipairs(keys) do\n"
    "    if string.sub(k, 1, 7) == 'rtm:pr:' then pr_drop_node(k, node) else redis.call('HDEL', k, node) end\n"
    "  end\n"
    "  n = n + #keys; budget = budget - #keys\n"
    "  if redis.call('SCARD', idx) == 0 then\n"
    "    redis.call('ZREM', 'rtm:nodes', node); redis.call('HDEL', 'rtm:nodes:run', node)\n"
    "  end\n"
    "  if budget <= 0 then break end\n"
    "end\n"
    "return n\n";

/* ARGV[1] this node: the fields a previous life under this id left on the shard. */
static const char RESET_SCRIPT[] = XPR_LUA
    "local idx = 'rtm:ni:' .. ARGV[1]\n"
    "local keys = redis.call('SMEMBERS', idx)\n"
    "for _, k in ipairs(keys) do\n"
    "  if string.sub(k, 1, 7) == 'rtm:pr:' then pr_drop_node(k, ARGV[1]) else redis.call('HDEL', k, ARGV[1]) end\n"
    "end\n"
    "redis.call('DEL', idx)\n"
    "return #keys\n";

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
    struct brk_xnode *xn = xn_the;
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
void xbeat_shard_up(struct brk_xnode *xn, int shard)
{
    if (!(xn->shards_met & (1u << shard))) {
        /* first meeting: what an earlier life under this id left goes first (same connection, so in order) */
        xn->shards_met |= 1u << shard;
        script_on(xn, shard, RESET_SCRIPT, sizeof RESET_SCRIPT - 1, NULL);
    }
    script_on(xn, shard, BEAT_SCRIPT, sizeof BEAT_SCRIPT - 1, reaped);
    xpeers_rewrite_all(xn);
}

void xbeat_start(struct brk_xnode *xn) { rtm_timer_in(xn->b->timers, &xn->beat_t, beat_cb, HEARTBEAT_MS); }

void xbeat_stop(struct brk_xnode *xn) { rtm_timer_cancel(xn->b->timers, &xn->beat_t); }

void xbeat_free(struct brk_xnode *xn)
{
    for (uint32_t i = 0; i < xn->remote_apps.cap; i++)
        if (xn->remote_apps.slots[i].key) free(xn->remote_apps.slots[i].val);
    htab_free(&xn->remote_apps);
}
