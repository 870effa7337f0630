/* xnode.c: the broker's side of cluster mode: channels, publishes and control
 * messages across nodes through the Redis link (cluster/cluster.h), and the
 * glue's lifetime (peer records and directs: xpeers.c; heartbeats, reaping and
 * per-app counts: xbeat.c). Absent (b->xn NULL) without --cluster, and then
 * nothing here runs.
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
 * Requests waiting on Redis (struct xwait) are listed on their session; a
 * session that closes first only clears its pointers, and the wait is freed
 * when Redis answers (the link guarantees an answer, even at shutdown). */
#include "xnode.h"

#include "errors.h"
#include "json_dump.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB_WAITS_MAX 65536 /* subscribe acks waiting on Redis; beyond, acked at once */

struct brk_xnode *xn_the;

/* ---- waits ---- */

struct xwait *wait_new(struct brk_xnode *xn, struct brk_session *s, const char *rid)
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

void wait_free(struct xwait *w)
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

const char *wait_rid(const struct xwait *w) { return w->rid[0] ? w->rid : NULL; }

void xn_unavailable(struct brk_session *s, const char *rid)
{
    rtm_metric_inc(RTM_M_CLUSTER_UNAVAILABLE, 1);
    sess_error(s, RTM_WIRE_CLUSTER_UNAVAILABLE, NULL, rid);
}

/* ---- sets of records to write (peer records, presence entries) ---- */

void xn_mark_key(struct htab *set, const char *key, int *full_logged, const char *what)
{
    if (htab_get(set, key)) return;
    if (set->n >= XN_DIRTY_MAX) {
        if (!*full_logged) log_error("cluster: %d %s wait for Redis; dropping more", XN_DIRTY_MAX, what);
        *full_logged = 1;
        return;
    }
    char *k = strdup(key);
    if (!k || htab_put(set, k, k)) {
        free(k);
        log_error("cluster: out of memory recording a change of %s", what);
    }
}

void xn_flush_keys(struct brk_xnode *xn, struct htab *set, int (*write)(struct brk_xnode *, const char *))
{
    if (!set->n) return;
    char **done = malloc(set->n * sizeof *done);
    uint32_t nd = 0;
    if (!done) return;
    for (uint32_t i = 0; i < set->cap; i++) {
        char *k = set->slots[i].key ? set->slots[i].val : NULL;
        if (k && write(xn, k) == 0) done[nd++] = k;
    }
    for (uint32_t i = 0; i < nd; i++) {
        htab_del(set, done[i]);
        free(done[i]);
    }
    free(done);
}

void xn_free_keys(struct htab *set)
{
    for (uint32_t i = 0; i < set->cap; i++)
        if (set->slots[i].key) free(set->slots[i].val);
    htab_free(set);
}

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
    int rc = redis_name(name, sizeof name, ch) < 0 ? -1 : clu_want(b->xn->cl, name);
    if (rc < 0) log_error("cluster: cannot subscribe channel %s across nodes (out of memory)", ch->name);
    xpresence_chan_open(b, ch, rc == 1);
}

void xnode_channel_unused(struct brk_broker *b, struct brk_channel *ch)
{
    char name[CLU_NAME_MAX];
    xpresence_chan_free(ch);
    if (redis_name(name, sizeof name, ch) >= 0) clu_unwant(b->xn->cl, name);
}

static void sub_wait_unlink(struct brk_xnode *xn, struct xwait *w)
{
    if (w->b_prev) w->b_prev->b_next = w->b_next;
    else xn->sub_waits = w->b_next;
    if (w->b_next) w->b_next->b_prev = w->b_prev;
    xn->n_sub_waits--;
}

void xnode_ack_subscribe(struct brk_session *s, const char *channel, const char *rid)
{
    struct brk_xnode *xn = s->b->xn;
    char name[CLU_NAME_MAX];
    /* The peer's new channel goes to Redis before the ack can reach the client
     * (a send from another node right after the ack should find it). */
    xpeers_flush(xn);
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
            if (w->s) sess_ack(w->s, wait_rid(w));
            wait_free(w);
        }
        w = next;
    }
}

static void on_subscribed(void *user, const char *chan)
{
    struct brk_xnode *xn = user;
    if (xn->n_sub_waits) settle_sub_waits(xn, chan, -1);
    xpresence_subscribed(xn, chan);
}

static void on_shard_state(void *user, int shard, int up)
{
    struct brk_xnode *xn = user;
    /* Down: the subscriptions it held count as settled (they are made again
     * on reconnect); local delivery goes on meanwhile. */
    if (!up && xn->n_sub_waits) settle_sub_waits(xn, NULL, shard);
    if (up) {
        xbeat_shard_up(xn, shard);
        xpresence_shard_up(xn, shard);
    }
}

/* ---- publish ---- */

static void publish_done(void *arg, int ok)
{
    struct xwait *w = arg;
    if (w->s && !w->xn->stopping) {
        if (ok) {
            sess_ack(w->s, wait_rid(w));
        } else {
            xn_unavailable(w->s, wait_rid(w));
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
    if (sender && sender->peer && sender->peer->meta_text && !(meta = strdup(sender->peer->meta_text))) goto fail;
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
            xn_unavailable(sender, rid);
        } else {
            sess_error(sender, RTM_WIRE_INTERNAL_ERROR, "could not publish", rid);
        }
    }
    return rc;
}

static int known_kind(char k)
{
    switch (k) {
    case CLU_PUBLISH: case CLU_DIRECT: case CLU_CTL_KICK: case CLU_CTL_REVOKED:
    case CLU_QUESTION: case CLU_ANSWER: case CLU_PUBLISH_COUNTED:
    case CLU_RESUME_CUT: case CLU_RESUME_PLACE: case CLU_RESUME_DONE: case CLU_PRESENCE:
        return 1;
    default:
        return 0;
    }
}

/* A message from Redis: one of this node's channels. */
static void on_message(void *user, const char *chan, const char *payload, size_t len)
{
    struct brk_xnode *xn = user;
    struct clu_msg m;
    (void)chan;
    if (clu_decode(payload, len, &m) || !known_kind(m.kind)) {
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
        xpeers_deliver(xn, &m, app, channel, from);
        return;
    }
    if (m.kind == CLU_QUESTION) { /* on this node's channel: another node asks */
        xask_serve(xn, &m, app, channel);
        return;
    }
    if (m.kind == CLU_ANSWER) {
        xask_on_answer(xn, &m);
        return;
    }
    if (m.kind == CLU_PUBLISH_COUNTED) { /* a server publish whose origin counts the recipients */
        xrest_deliver_counted(xn, &m, app, channel);
        return;
    }
    if (m.kind == CLU_RESUME_CUT || m.kind == CLU_RESUME_PLACE || m.kind == CLU_RESUME_DONE) {
        /* a resume through another node: sid is the hand-over's id, from the place's */
        char node[sizeof xn->node];
        if (m.n[CLU_F_NODE] >= sizeof node) return;
        memcpy(node, m.f[CLU_F_NODE], m.n[CLU_F_NODE]);
        node[m.n[CLU_F_NODE]] = '\0';
        xresume_message(xn, &m, node, sid, app, channel, from);
        return;
    }
    if (m.kind == CLU_PRESENCE) {
        xpresence_delta(xn, &m, app, channel, from);
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
    htab_init(&xn->asks, HTAB_PTR);
    xresume_init(xn);
    xrest_init(xn);
    /* The node-id setting (common/config.c): hostname:public-port unless given,
     * so two nodes on one machine with one config differ by their port. */
    snprintf(xn->node, sizeof xn->node, "%s", b->cfg->node_id);
    htab_init(&xn->pdirty, HTAB_STR);
    static const struct clu_handler h = {on_message, on_subscribed, on_shard_state};
    if (clu_create(b->cfg->cluster, xn->node, b->cfg->cluster_timeout_ms, &h, xn, &xn->cl, err, errlen)) {
        free(xn);
        return RTM_EINVAL;
    }
    b->xn = xn;
    xn_the = xn;
    snprintf(xn->index, sizeof xn->index, "rtm:ni:%s", xn->node);
    log_info("cluster: node %s, %d Redis shard%s", xn->node, clu_shard_count(xn->cl),
             clu_shard_count(xn->cl) > 1 ? "s" : "");
    return 0;
}

void xnode_start(struct brk_broker *b, struct lws_context *ctx)
{
    if (!b->xn) return;
    if (clu_want(b->xn->cl, CLU_CONTROL) < 0) log_error("cluster: out of memory subscribing " CLU_CONTROL);
    clu_start(b->xn->cl, ctx, b->timers, b->srv->ev);
    xbeat_start(b->xn);
}

void xnode_destroy(struct brk_broker *b)
{
    struct brk_xnode *xn = b->xn;
    if (!xn) return;
    xn->stopping = 1;
    rtm_timer_cancel(b->timers, &xn->flush_t);
    rtm_timer_cancel(b->timers, &xn->pflush_t);
    rtm_timer_cancel(b->timers, &xn->rebuild_t);
    xbeat_stop(xn);
    xask_close_all(xn); /* their requests are answered now, as partial */
    xresume_free(xn); /* ends moved places: their channels still have Redis subscriptions */
    clu_destroy(xn->cl); /* publish and send waits complete (and are freed) here */
    xpeers_free(xn);
    xpresence_free(xn);
    xbeat_free(xn);
    xrest_free(xn);
    while (xn->sub_waits) {
        struct xwait *w = xn->sub_waits;
        sub_wait_unlink(xn, w);
        wait_free(w);
    }
    free(xn);
    b->xn = NULL;
    xn_the = NULL;
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
