/* xrest.c: the backend API's results across nodes (cluster mode): a kick's
 * sessions closed, a server publish's recipients and GET /v1/peers count
 * every node, not the one that served the request. The broker behind the
 * bus (common/bus.h `ask`) does its own share at once and asks the others
 * through broker/xask.c; the answers are summed (or, for the listing, merged
 * so each peer appears once) and the bus is told when all came or the
 * deadline passed (then the result says partial).
 *
 * A revocation is stored by the serving node (the store the nodes share),
 * which closes its own sessions and asks the others to apply it now (each
 * adds it to its store view and closes its own), so the reply can count the
 * sessions it closed everywhere. A node's store view may read the row
 * before the question arrives and close the sessions itself; what it closed
 * that way is kept (REVS_SEEN_MAX, for REVS_SEEN_MS) and reported by the
 * question, once.
 *
 * A server publish is counted where it is delivered: it goes to Redis as a
 * counted publish (kind 'P', carrying the question's id), PUBLISH's reply is
 * the number of nodes subscribed to the channel, which is the number of
 * answers to wait for, and every such node, this one included, answers how
 * many of its subscribers it queued the message for. Each node delivers it
 * from its subscription, in the channel's one order, like any publish. */
#include "xnode.h"

#include "bus.h"
#include "errors.h"
#include "json_dump.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "server.h"
#include "util.h"
#include "view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One node's GET /v1/peers answer; beyond, not sent (the reply is partial).
 * Every node's answer lands in the asking node's one subscriber connection
 * at once, and Redis disconnects a subscriber whose output buffer passes
 * client-output-buffer-limit pubsub (32 MB hard by default): that costs the
 * node its subscriptions and the messages of the gap. At 2 MB, one listing
 * from 12 other nodes is 24 MB, leaving 8 MB for channel traffic; more
 * nodes or listings at once need the limit raised (docs/CLUSTER.md
 * "Operating it"). About 20,000 peers without metadata per node. */
#define PEERS_ANSWER_MAX (2 * 1024 * 1024)
#define REVS_SEEN_MAX 1024   /* revocations remembered per node; beyond, a late question may count 0 */
#define REVS_SEEN_MS 30000   /* how long: far beyond any question's deadline */

/* What one revocation's poll closed on this node, not yet reported. */
struct rev_seen {
    int closed;
    int64_t until_ms;
    char key[];
};

static int rev_key(char *out, size_t outlen, const struct rtm_revocation *r)
{
    int n = r->jti ? snprintf(out, outlen, "%s\x1fj\x1f%s", r->app, r->jti)
                   : snprintf(out, outlen, "%s\x1fp\x1f%s\x1f%lld", r->app, r->peer_id ? r->peer_id : "",
                              (long long)r->before);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static void revs_prune(struct brk_xnode *xn, int64_t now)
{
    for (uint32_t i = 0; i < xn->revs_seen.cap;) {
        struct rev_seen *e = xn->revs_seen.slots[i].key ? xn->revs_seen.slots[i].val : NULL;
        if (e && e->until_ms <= now) {
            htab_del(&xn->revs_seen, e->key); /* backward shift: look at slot i again */
            free(e);
            continue;
        }
        i++;
    }
}

void xrest_revoked_here(struct brk_xnode *xn, const struct rtm_revocation *r, int n)
{
    char key[400];
    if (rev_key(key, sizeof key, r)) return;
    struct rev_seen *e = htab_get(&xn->revs_seen, key);
    if (e) {
        e->closed += n;
        return;
    }
    int64_t now = rtm_mono_ms();
    if (xn->revs_seen.n >= REVS_SEEN_MAX) revs_prune(xn, now);
    if (xn->revs_seen.n >= REVS_SEEN_MAX) return;
    size_t kl = strlen(key) + 1;
    if (!(e = malloc(sizeof *e + kl))) return;
    e->closed = n;
    e->until_ms = now + REVS_SEEN_MS;
    memcpy(e->key, key, kl);
    if (htab_put(&xn->revs_seen, e->key, e)) free(e);
}

void xrest_free(struct brk_xnode *xn)
{
    for (uint32_t i = 0; i < xn->revs_seen.cap; i++)
        if (xn->revs_seen.slots[i].key) free(xn->revs_seen.slots[i].val);
    htab_free(&xn->revs_seen);
}

/* One request across nodes; freed when done fires. */
struct gather {
    enum rtm_bus_op op;
    int count;
    json_t *peers;     /* PEERS: the merged array */
    struct htab index; /* PEERS: peerId (the object's own string) -> its object in peers */
    rtm_bus_done_fn *done;
    void *arg;
};

static void gather_free(struct gather *g)
{
    htab_free(&g->index);
    json_decref(g->peers);
    free(g);
}

static void report(struct gather *g, int rc, int partial)
{
    struct rtm_bus_result r = {rc, g->op == RTM_BUS_PEERS ? g->peers : NULL, partial};
    g->done(g->arg, &r);
    gather_free(g);
}

/* ---- merging ---- */

static int has_string(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *t = json_string_value(v);
        if (t && strcmp(t, s) == 0) return 1;
    }
    return 0;
}

/* Adds one node's entry for a peer: a peer on several nodes is listed once,
 * with the union of its channels and the sum of its connections. */
static void merge_peer(struct gather *g, json_t *p)
{
    const char *id = json_string_value(json_object_get(p, "peerId"));
    json_t *chans = json_object_get(p, "channels");
    json_t *conns = json_object_get(p, "connections");
    if (!id || !json_is_array(chans) || !json_is_integer(conns)) return; /* not ours: ignored */
    json_t *have = htab_get(&g->index, id);
    if (!have) {
        if (json_array_append(g->peers, p) == 0)
            htab_put(&g->index, json_string_value(json_object_get(p, "peerId")), p);
        return;
    }
    json_t *hc = json_object_get(have, "channels");
    size_t i;
    json_t *c;
    json_array_foreach(chans, i, c) {
        if (json_is_string(c) && !has_string(hc, json_string_value(c))) json_array_append(hc, c);
    }
    json_object_set_new(have, "connections",
                        json_integer(json_integer_value(json_object_get(have, "connections")) +
                                     json_integer_value(conns)));
    if (json_is_null(json_object_get(have, "peerMetadata")) && json_is_object(json_object_get(p, "peerMetadata")))
        json_object_set(have, "peerMetadata", json_object_get(p, "peerMetadata"));
}

static void index_all(struct gather *g)
{
    size_t i;
    json_t *p;
    json_array_foreach(g->peers, i, p) {
        htab_put(&g->index, json_string_value(json_object_get(p, "peerId")), p);
    }
}

static void on_answer(void *arg, const char *node, size_t nlen, const char *data, size_t dlen)
{
    struct gather *g = arg;
    if (g->op != RTM_BUS_PEERS) {
        uint64_t n = dlen == 1 && data[0] == '0' ? 0 : xask_parse_id(data, dlen);
        if (n <= INT32_MAX) g->count += (int)n;
        return;
    }
    json_t *arr = json_loadb(data, dlen, 0, NULL);
    if (!json_is_array(arr)) {
        log_warn("cluster: node %.*s answered the peer listing with something else: left out", (int)nlen, node);
        json_decref(arr);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(arr, i, p) {
        if (json_is_object(p)) merge_peer(g, p);
    }
    json_decref(arr);
}

static void on_done(void *arg, int status, int answered)
{
    struct gather *g = arg;
    (void)answered;
    if (g->op == RTM_BUS_PUBLISH && status == XASK_NOT_SENT) {
        report(g, RTM_EUNAVAILABLE, 0); /* Redis did not take it: no node delivers it */
        return;
    }
    report(g, g->op == RTM_BUS_PEERS ? 0 : g->count, status != XASK_COMPLETE);
}

/* ---- asking ---- */

static int publish_counted(struct brk_xnode *xn, struct gather *g, const char *app, const char *channel,
                           const char *data);

int xrest_ask(struct brk_broker *b, enum rtm_bus_op op, const char *app, const char *target, const char *data,
              rtm_bus_done_fn *done, void *done_arg)
{
    struct brk_xnode *xn = b->xn;
    if (!xn || xn->stopping) return RTM_EINVAL;
    if (op == RTM_BUS_PUBLISH &&
        (!data || !target || !rtm_channel_valid(target) || rtm_channel_reserved(target)))
        return RTM_EINVAL;
    struct gather *g = calloc(1, sizeof *g);
    if (!g) return RTM_ENOMEM;
    g->op = op;
    g->done = done;
    g->arg = done_arg;
    htab_init(&g->index, HTAB_STR);
    switch (op) {
    case RTM_BUS_KICK:
        g->count = kick_local(b, app, target);
        if (xask_all(xn, XASK_KICK, app, target, NULL, 0, on_answer, on_done, g) == 0) return 0;
        /* Too many questions open: the kick still goes to every node, uncounted. */
        xnode_control(b, CLU_CTL_KICK, app, target);
        report(g, g->count, 1);
        return 0;
    case RTM_BUS_PEERS:
        if (!(g->peers = brk_peers_app(b, app, target))) break;
        index_all(g);
        if (xask_all(xn, XASK_PEERS, app, target ? target : "", NULL, 0, on_answer, on_done, g) == 0) return 0;
        report(g, 0, 1);
        return 0;
    case RTM_BUS_PUBLISH:
        return publish_counted(xn, g, app, target, data);
    }
    gather_free(g);
    return RTM_ENOMEM;
}

int xrest_ask_revoked(struct brk_broker *b, const struct rtm_revocation *r, int closed, rtm_bus_done_fn *done,
                      void *done_arg)
{
    struct brk_xnode *xn = b->xn;
    if (!xn || xn->stopping) return RTM_EINVAL;
    struct gather *g = calloc(1, sizeof *g);
    if (!g) return RTM_ENOMEM;
    g->op = RTM_BUS_KICK; /* a count, summed like a kick's */
    g->count = closed;
    g->done = done;
    g->arg = done_arg;
    htab_init(&g->index, HTAB_STR);
    char data[32];
    if (r->jti) snprintf(data, sizeof data, "j");
    else snprintf(data, sizeof data, "p%lld", (long long)r->before);
    if (xask_all(xn, XASK_REVOKED, r->app, r->jti ? r->jti : r->peer_id, data, strlen(data), on_answer, on_done, g) == 0)
        return 0;
    /* Too many questions open: the others read it from the store, uncounted. */
    xnode_control(b, CLU_CTL_REVOKED, "", "");
    report(g, g->count, 1);
    return 0;
}

/* PUBLISH's reply: how many nodes are subscribed, so how many answers come. */
static void on_published(void *arg, int ok, long long subscribed)
{
    if (!xn_the) return;
    if (ok) rtm_metric_inc(RTM_M_CLUSTER_OUT, 1);
    xask_expect(xn_the, (uint64_t)(uintptr_t)arg, ok ? (int)subscribed : -1);
}

static int publish_counted(struct brk_xnode *xn, struct gather *g, const char *app, const char *channel,
                           const char *data)
{
    char name[CLU_NAME_MAX], id[24];
    if (clu_channel_name(name, sizeof name, app, channel) < 0) {
        gather_free(g);
        return RTM_EINVAL;
    }
    struct xask *q = xask_open(xn, on_answer, on_done, g);
    if (!q) {
        gather_free(g);
        return RTM_ELIMIT; /* the bus answers it the uncounted way */
    }
    uint64_t qid = xask_question_id(q);
    xask_id(q, id, sizeof id);
    const char *f[CLU_FIELDS] = {xn->node, id, app, channel, "_server", NULL, data};
    size_t n[CLU_FIELDS] = {strlen(xn->node), strlen(id), strlen(app), strlen(channel), 7, 0, strlen(data)};
    size_t len;
    char *payload = clu_encode(CLU_PUBLISH_COUNTED, f, n, &len);
    const char *argv[3] = {"PUBLISH", name, payload};
    size_t lens[3] = {7, strlen(name), len};
    /* The channel's shard and command connection, like every publish of it: one order. */
    if (!payload || clu_command(xn->cl, name, 3, argv, lens, on_published, (void *)(uintptr_t)qid))
        xask_expect(xn, qid, -1); /* done reports cluster_unavailable now */
    free(payload);
    return 0;
}

/* ---- answering ---- */

static char *count_text(int n, size_t *len)
{
    char *s = malloc(16);
    if (!s) return NULL;
    *len = (size_t)snprintf(s, 16, "%d", n < 0 ? 0 : n);
    return s;
}

static char *serve_kick(void *ctx, struct brk_xnode *xn, const char *app, const char *target, const char *data, size_t dlen,
                       size_t *len)
{
    (void)ctx;
    (void)data;
    (void)dlen;
    int n = kick_local(xn->b, app, target);
    if (n > 0) log_info("cluster: kicked peer=%s app=%s for another node", target, app);
    return count_text(n, len);
}

static char *serve_revoked(void *ctx, struct brk_xnode *xn, const char *app, const char *target, const char *data, size_t dlen,
                          size_t *len)
{
    (void)ctx;
    char jti[80], peer[RTM_MAX_PEER_ID + 1];
    struct rtm_revocation r = {.app = app};
    if (dlen >= 1 && data[0] == 'j' && strlen(target) < sizeof jti) {
        r.jti = strcpy(jti, target);
    } else if (dlen >= 2 && dlen < 24 && data[0] == 'p' && strlen(target) < sizeof peer) {
        char before[24];
        memcpy(before, data + 1, dlen - 1);
        before[dlen - 1] = '\0';
        r.peer_id = strcpy(peer, target);
        r.before = strtoll(before, NULL, 10);
    } else {
        return NULL; /* malformed: not answered (the asker reports this node missing) */
    }
    int n = brk_revoked(xn->b, &r);
    /* This node's lookups refuse the token from now on (the store has the row). */
    struct rtm_view *v = xn->b->srv->view;
    if (v) {
        rtm_view_revocation_add(v, &r);
        rtm_view_refresh(v);
    }
    char key[400];
    struct rev_seen *e = rev_key(key, sizeof key, &r) ? NULL : htab_get(&xn->revs_seen, key);
    if (e) { /* the poll was first: its closes are this revocation's too, reported once */
        n += e->closed;
        htab_del(&xn->revs_seen, e->key);
        free(e);
    }
    return count_text(n, len);
}

static char *serve_peers(void *ctx, struct brk_xnode *xn, const char *app, const char *target, const char *data, size_t dlen,
                        size_t *len)
{
    (void)ctx;
    (void)data;
    (void)dlen;
    json_t *arr = brk_peers_app(xn->b, app, target[0] ? target : NULL);
    char *s = arr ? rtm_json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    if (!s) return NULL;
    *len = strlen(s);
    if (*len > PEERS_ANSWER_MAX) { /* the asker reports this node missing (partial) */
        log_warn("cluster: this node's peer listing of app %s is %zu bytes, over %d: not sent", app, *len,
                 PEERS_ANSWER_MAX);
        free(s);
        return NULL;
    }
    return s;
}

void xrest_init(struct brk_xnode *xn)
{
    htab_init(&xn->revs_seen, HTAB_STR);
    xask_handle(xn, XASK_KICK, serve_kick, NULL);
    xask_handle(xn, XASK_PEERS, serve_peers, NULL);
    xask_handle(xn, XASK_REVOKED, serve_revoked, NULL);
}

void xrest_deliver_counted(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *channel)
{
    int n = chan_deliver(xn->b, app, channel, NULL, "_server", NULL, 0, m->f[CLU_F_DATA], m->n[CLU_F_DATA]);
    size_t len;
    char *s = count_text(n, &len);
    if (s) xask_reply(xn, m, s, len);
    free(s);
}
