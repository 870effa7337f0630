/* link.c: Redis shards, their two connections each, deadlines, probes,
 * reconnects and the subscription set (see cluster.h).
 *
 * Subscriptions are a small state machine per Redis channel, with at most
 * one SUBSCRIBE or UNSUBSCRIBE in flight for a channel at any time: hiredis
 * 0.14.1 keys its subscription callbacks by channel and drops the entry when
 * an UNSUBSCRIBE reply arrives, so an UNSUBSCRIBE overtaken by a new
 * SUBSCRIBE of the same channel would silently lose every later message.
 *
 * A shard is up when its command connection is connected and its subscriber
 * has confirmed the node's own channel, which is subscribed last, so that
 * every channel wanted before a reconnect is confirmed by then too (Redis
 * answers a connection's commands in order). Liveness: once a second the
 * node publishes a probe to its own channel through the command connection;
 * the probe must come back through the subscriber within the deadline
 * (Redis pub/sub has no acknowledgement, and PING on a subscribed hiredis
 * context misroutes its reply). A missed deadline of any kind restarts the
 * whole shard, and its subscriptions are made again. */
#include "cluster.h"
#include "rio.h"
#include "wire.h"

#include "htab.h"
#include "log.h"
#include "metrics.h"
#include "timers.h"

#include <hiredis.h>
#include <async.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 100
#define PROBE_EVERY_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define PENDING_MAX 65536 /* commands in flight per shard; beyond, publish fails at once */
#define PROBE_TAG "\0probe:"
#define PROBE_TAG_LEN 7

enum sub_state { SUB_IDLE, SUB_SUBSCRIBING, SUB_SUBSCRIBED, SUB_UNSUBSCRIBING };

/* One Redis channel of the subscription set; owned by its shard's table. */
struct csub {
    char *name;
    enum sub_state state;
    int wanted;
};

/* One command in flight on a command connection (a FIFO: Redis answers in order). */
struct pcmd {
    struct pcmd *next;
    struct shard *sh;
    int64_t deadline_ms;
    int64_t sent_us;
    clu_done_fn *done;  /* a publish's */
    clu_int_fn *on_int; /* a command's */
    clu_text_fn *on_text; /* a command's, when its reply is a string */
    void *arg;
};

struct conn {
    struct shard *sh;
    redisAsyncContext *ac; /* NULL when closed */
    int connected;
};

struct shard {
    struct clu *cl;
    int idx;
    char host[256];
    int port;
    struct conn cmd, sub;
    struct pcmd *head, *tail;
    int n_pending;
    struct htab subs; /* name -> struct csub */
    int up, resetting, lost, node_confirmed, ever_up, down_logged;
    int64_t retry_at_ms;
    int backoff_ms;
    uint64_t probe_seq;
    int64_t probe_deadline_ms; /* 0: no probe outstanding */
    int64_t next_probe_ms;
};

struct clu {
    struct shard sh[CLU_MAX_SHARDS];
    int n;
    char node_chan[CLU_NAME_MAX];
    int timeout_ms;
    struct clu_handler h;
    void *user;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct rtm_timers *timers; /* the loop's heap */
    struct ev_loop *ev;        /* libev loop for hiredis's adapter, or NULL (lws poll loop: rio adoption) */
    struct rtm_timer tick;
    int started, stopping;
    struct clu_stats st;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
static int64_t now_ms(void) { return now_us() / 1000; }

/* ---- configuration ---- */

/* 0, -1 when u is not redis://HOST:PORT, -2 when it carries userinfo
 * (redis://[user]:password@...): Redis AUTH is not supported
 * (docs/KNOWN-GAPS.md), and such a URL must be neither echoed in an error
 * nor taken as a host name (logged with every shard state change). */
static int parse_url(const char *u, size_t len, struct shard *sh)
{
    const char *pre = "redis://";
    size_t pl = strlen(pre);
    if (memchr(u, '@', len)) return -2;
    if (len <= pl || strncmp(u, pre, pl) != 0) return -1;
    const char *h = u + pl, *end = u + len;
    const char *colon = NULL;
    for (const char *p = h; p < end; p++)
        if (*p == ':') colon = p;
    if (!colon || colon == h || (size_t)(colon - h) >= sizeof sh->host) return -1;
    memcpy(sh->host, h, (size_t)(colon - h));
    sh->host[colon - h] = '\0';
    long port = 0;
    const char *p = colon + 1;
    if (p == end) return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        port = port * 10 + (*p - '0');
        if (port > 65535) return -1;
    }
    if (port < 1) return -1;
    sh->port = (int)port;
    return 0;
}

int clu_create(const char *urls, const char *node_id, int timeout_ms, const struct clu_handler *h, void *user,
               struct clu **out, char *err, size_t errlen)
{
    struct clu *cl = calloc(1, sizeof *cl);
    if (!cl) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *s = urls;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len && *s == ' ') s++, len--;
        while (len && s[len - 1] == ' ') len--;
        if (len) {
            if (cl->n == CLU_MAX_SHARDS) {
                snprintf(err, errlen, "cluster: at most %d Redis shards", CLU_MAX_SHARDS);
                goto fail;
            }
            struct shard *sh = &cl->sh[cl->n];
            int bad = parse_url(s, len, sh);
            if (bad == -2) {
                snprintf(err, errlen, "cluster: Redis URL %d has a user or password (redis://...@): Redis AUTH is "
                         "not supported; keep Redis on loopback or a private network (docs/HARDENING.md)",
                         cl->n + 1);
                goto fail;
            }
            if (bad) {
                snprintf(err, errlen, "cluster: \"%.*s\" is not redis://HOST:PORT", (int)(len > 80 ? 80 : len), s);
                goto fail;
            }
            sh->cl = cl;
            sh->idx = cl->n++;
            sh->cmd.sh = sh->sub.sh = sh;
            sh->backoff_ms = BACKOFF_MIN_MS;
            htab_init(&sh->subs, HTAB_STR);
        }
        if (!e) break;
        s = e + 1;
    }
    if (cl->n == 0) {
        snprintf(err, errlen, "cluster: no Redis URL given");
        goto fail;
    }
    if (clu_node_name(cl->node_chan, sizeof cl->node_chan, node_id) < 0) {
        snprintf(err, errlen, "cluster: node id too long");
        goto fail;
    }
    cl->timeout_ms = timeout_ms;
    cl->h = *h;
    cl->user = user;
    cl->st.shards = cl->n;
    *out = cl;
    return 0;
fail:
    for (int i = 0; i < cl->n; i++) htab_free(&cl->sh[i].subs);
    free(cl);
    return -1;
}

int clu_shard_count(const struct clu *cl) { return cl->n; }
int clu_shard_of_chan(const struct clu *cl, const char *chan) { return clu_shard_of(chan, strlen(chan), cl->n); }
int clu_shard_up(const struct clu *cl, int shard) { return shard >= 0 && shard < cl->n && cl->sh[shard].up; }

/* ---- commands ---- */

static void pcmd_unlink(struct shard *sh, struct pcmd *p)
{
    struct pcmd **pp = &sh->head, *prev = NULL;
    while (*pp && *pp != p) prev = *pp, pp = &(*pp)->next;
    if (!*pp) return;
    *pp = p->next;
    if (sh->tail == p) sh->tail = prev;
    sh->n_pending--;
}

static void cmd_cb(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct pcmd *p = priv;
    struct shard *sh = p->sh;
    redisReply *reply = r;
    pcmd_unlink(sh, p);
    int ok = reply && reply->type != REDIS_REPLY_ERROR;
    if (ok) {
        int64_t us = now_us() - p->sent_us;
        sh->cl->st.rtt_us_sum += (uint64_t)us;
        sh->cl->st.rtt_count++;
        rtm_histogram_observe(RTM_H_REDIS_RTT, (double)us / 1e6);
    } else if (reply) {
        log_warn("cluster: shard %d answered an error: %.*s", sh->idx, (int)reply->len, reply->str);
    }
    if (p->done) {
        if (!ok) sh->cl->st.publish_failed++;
        p->done(p->arg, ok);
    } else if (p->on_int) {
        p->on_int(p->arg, ok, ok && reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0);
    } else if (p->on_text) {
        int text = ok && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS);
        p->on_text(p->arg, ok, text ? reply->str : "", text ? reply->len : 0);
    }
    free(p);
}

/* Sends one command on sh's command connection with a deadline. 0, or -1
 * (not connected, full, or out of memory; no callback then). */
static int command(struct shard *sh, int argc, const char **argv, const size_t *lens, clu_done_fn *done,
                   clu_int_fn *on_int, void *arg)
{
    if (!sh->cmd.ac || !sh->cmd.connected || sh->n_pending >= PENDING_MAX) return -1;
    struct pcmd *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->sh = sh;
    p->sent_us = now_us();
    p->deadline_ms = p->sent_us / 1000 + sh->cl->timeout_ms;
    p->done = done;
    p->on_int = on_int;
    p->arg = arg;
    if (redisAsyncCommandArgv(sh->cmd.ac, cmd_cb, p, argc, argv, lens) != REDIS_OK) {
        free(p);
        return -1;
    }
    if (sh->tail) sh->tail->next = p;
    else sh->head = p;
    sh->tail = p;
    sh->n_pending++;
    return 0;
}

static int publish_raw(struct shard *sh, const char *chan, const char *payload, size_t len, clu_done_fn *done,
                       void *arg)
{
    const char *argv[3] = {"PUBLISH", chan, payload};
    size_t lens[3] = {7, strlen(chan), len};
    return command(sh, 3, argv, lens, done, NULL, arg);
}

int clu_command(struct clu *cl, const char *shard_key, int argc, const char **argv, const size_t *lens,
                clu_int_fn *on_int, void *arg)
{
    return clu_command_on(cl, clu_shard_of_chan(cl, shard_key), argc, argv, lens, on_int, arg);
}

int clu_command_on(struct clu *cl, int shard, int argc, const char **argv, const size_t *lens, clu_int_fn *on_int,
                   void *arg)
{
    struct shard *sh = &cl->sh[shard];
    if (!sh->up) return -1;
    return command(sh, argc, argv, lens, NULL, on_int, arg);
}

int clu_command_text(struct clu *cl, const char *shard_key, int argc, const char **argv, const size_t *lens,
                     clu_text_fn *on_text, void *arg)
{
    struct shard *sh = &cl->sh[clu_shard_of_chan(cl, shard_key)];
    if (!sh->up || command(sh, argc, argv, lens, NULL, NULL, arg)) return -1;
    sh->tail->on_text = on_text; /* the command just queued */
    return 0;
}

int clu_publish(struct clu *cl, const char *chan, const char *payload, size_t len, clu_done_fn *done, void *arg)
{
    struct shard *sh = &cl->sh[clu_shard_of_chan(cl, chan)];
    if (!sh->up || publish_raw(sh, chan, payload, len, done, arg)) {
        cl->st.publish_failed++;
        return -1;
    }
    cl->st.published++;
    return 0;
}

/* ---- subscriptions ---- */

static void sub_cb(redisAsyncContext *ac, void *r, void *priv);

static void send_sub(struct shard *sh, struct csub *e, int subscribe)
{
    int rc = redisAsyncCommand(sh->sub.ac, sub_cb, sh, subscribe ? "SUBSCRIBE %s" : "UNSUBSCRIBE %s", e->name);
    if (rc != REDIS_OK) {
        /* The connection is going away: the reset makes every wish good again. */
        e->state = SUB_IDLE;
        return;
    }
    e->state = subscribe ? SUB_SUBSCRIBING : SUB_UNSUBSCRIBING;
}

static void csub_free(struct shard *sh, struct csub *e)
{
    htab_del(&sh->subs, e->name);
    free(e->name);
    free(e);
}

static void maybe_up(struct shard *sh)
{
    if (sh->up || !sh->cmd.connected || !sh->node_confirmed) return;
    struct clu *cl = sh->cl;
    sh->up = 1;
    sh->backoff_ms = BACKOFF_MIN_MS;
    sh->next_probe_ms = now_ms() + PROBE_EVERY_MS;
    cl->st.shards_up++;
    if (sh->down_logged || !sh->ever_up)
        log_info("cluster: shard %d (%s:%d) up, %u channels subscribed", sh->idx, sh->host, sh->port, sh->subs.n);
    sh->ever_up = 1;
    sh->down_logged = 0;
    if (cl->h.shard_state) cl->h.shard_state(cl->user, sh->idx, 1);
}

static void on_probe(struct shard *sh, const char *p, size_t len)
{
    unsigned long long seq = strtoull(p + PROBE_TAG_LEN, NULL, 10);
    (void)len;
    if (sh->probe_deadline_ms && seq == sh->probe_seq) sh->probe_deadline_ms = 0;
}

static void sub_cb(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct shard *sh = priv;
    struct clu *cl = sh->cl;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply *type = reply->element[0], *chan = reply->element[1], *arg = reply->element[2];
    if (type->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING) return;
    int is_node = strcmp(chan->str, cl->node_chan) == 0;
    if (strcmp(type->str, "message") == 0) {
        if (arg->type != REDIS_REPLY_STRING) return;
        if (is_node && arg->len >= PROBE_TAG_LEN && memcmp(arg->str, PROBE_TAG, PROBE_TAG_LEN) == 0) {
            on_probe(sh, arg->str, arg->len);
            return;
        }
        cl->st.received++;
        if (cl->h.message) cl->h.message(cl->user, chan->str, arg->str, arg->len);
        return;
    }
    if (is_node) {
        if (strcmp(type->str, "subscribe") == 0) {
            sh->node_confirmed = 1;
            maybe_up(sh);
        }
        return;
    }
    struct csub *e = htab_get(&sh->subs, chan->str);
    if (!e) return;
    if (strcmp(type->str, "subscribe") == 0) {
        e->state = SUB_SUBSCRIBED;
        if (!e->wanted) send_sub(sh, e, 0);
        else if (sh->up && cl->h.subscribed) cl->h.subscribed(cl->user, e->name);
    } else if (strcmp(type->str, "unsubscribe") == 0) {
        e->state = SUB_IDLE;
        if (e->wanted) send_sub(sh, e, 1);
        else csub_free(sh, e);
    }
}

int clu_want(struct clu *cl, const char *chan)
{
    struct shard *sh = &cl->sh[clu_shard_of_chan(cl, chan)];
    struct csub *e = htab_get(&sh->subs, chan);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e || !(e->name = strdup(chan)) || htab_put(&sh->subs, e->name, e)) {
            if (e) free(e->name);
            free(e);
            return -1;
        }
    }
    e->wanted = 1;
    if (e->state == SUB_IDLE && sh->sub.ac) send_sub(sh, e, 1);
    if (!sh->up) return 1; /* nothing to wait for: the reconnect subscribes it */
    return e->state == SUB_SUBSCRIBED ? 1 : 0;
}

void clu_unwant(struct clu *cl, const char *chan)
{
    struct shard *sh = &cl->sh[clu_shard_of_chan(cl, chan)];
    struct csub *e = htab_get(&sh->subs, chan);
    if (!e) return;
    e->wanted = 0;
    if (e->state == SUB_SUBSCRIBED && sh->sub.ac) send_sub(sh, e, 0);
    else if (e->state == SUB_IDLE) csub_free(sh, e);
    /* SUBSCRIBING / UNSUBSCRIBING: the reply decides */
}

/* ---- connections ---- */

static void shard_fail(struct shard *sh, const char *why);

static void on_lost(void *arg)
{
    struct conn *c = arg;
    c->sh->lost = 1; /* from an lws callback: the tick tears the shard down */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    if (!c) return;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this callback */
        shard_fail(c->sh, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    c->connected = 1;
    maybe_up(c->sh);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;
    (void)status;
    if (!c) return;
    c->ac = NULL;
    c->connected = 0;
    if (c->sh->resetting) return;
    rtm_metric_inc(RTM_M_CLUSTER_CONN_LOST, 1);
    shard_fail(c->sh, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void conn_close(struct conn *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    c->connected = 0;
    if (ac) redisAsyncFree(ac); /* pending callbacks run now, with NULL replies */
}

/* Closes both connections; every command in flight completes with ok = 0. */
static void close_both(struct shard *sh)
{
    conn_close(&sh->cmd);
    conn_close(&sh->sub);
    /* hiredis ran every pending callback; anything left was never sent */
    while (sh->head) {
        struct pcmd *p = sh->head;
        pcmd_unlink(sh, p);
        if (p->done) p->done(p->arg, 0);
        else if (p->on_int) p->on_int(p->arg, 0, 0);
        else if (p->on_text) p->on_text(p->arg, 0, "", 0);
        free(p);
    }
}

static int conn_open(struct shard *sh, struct conn *c)
{
    redisAsyncContext *ac = redisAsyncConnect(sh->host, sh->port);
    if (!ac) return -1;
    if (ac->err) {
        log_debug("cluster: shard %d: %s", sh->idx, ac->errstr);
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = c;
    if (sh->cl->ev ? rio_attach_ev(sh->cl->ev, ac) : rio_attach(sh->cl->vh, ac, on_lost, c)) {
        redisAsyncFree(ac);
        return -1;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->connected = 0;
    return 0;
}

static void shard_connect(struct shard *sh)
{
    struct clu *cl = sh->cl;
    if (sh->ever_up || sh->down_logged) {
        cl->st.reconnects++;
        rtm_metric_inc(RTM_M_CLUSTER_RECONNECTS, 1);
    }
    sh->node_confirmed = 0;
    sh->lost = 0;
    if (conn_open(sh, &sh->cmd) || conn_open(sh, &sh->sub)) {
        shard_fail(sh, "cannot connect");
        return;
    }
    /* Commands queue in hiredis until the connect completes. Wanted channels
     * first, the node's channel last: its confirmation then means all are. */
    for (uint32_t i = 0; i < sh->subs.cap; i++) {
        struct csub *e = sh->subs.slots[i].key ? sh->subs.slots[i].val : NULL;
        if (e && e->wanted && e->state == SUB_IDLE) send_sub(sh, e, 1);
    }
    if (redisAsyncCommand(sh->sub.ac, sub_cb, sh, "SUBSCRIBE %s", cl->node_chan) != REDIS_OK)
        shard_fail(sh, "cannot subscribe");
}

static void shard_fail(struct shard *sh, const char *why)
{
    struct clu *cl = sh->cl;
    if (sh->resetting) return;
    sh->resetting = 1;
    if (sh->up) cl->st.shards_up--;
    sh->up = 0;
    sh->node_confirmed = 0;
    sh->probe_deadline_ms = 0;
    if (!sh->down_logged && !cl->stopping) {
        /* once per outage, not once per retry */
        log_warn("cluster: shard %d (%s:%d) down: %s; retrying", sh->idx, sh->host, sh->port, why);
        sh->down_logged = 1;
    }
    close_both(sh);
    /* Every wish is made again on reconnect; the others are forgotten. */
    struct csub **drop = NULL;
    uint32_t nd = 0;
    if (sh->subs.n) drop = malloc(sh->subs.n * sizeof *drop);
    for (uint32_t i = 0; i < sh->subs.cap; i++) {
        struct csub *e = sh->subs.slots[i].key ? sh->subs.slots[i].val : NULL;
        if (!e) continue;
        e->state = SUB_IDLE;
        if (!e->wanted && drop) drop[nd++] = e;
    }
    for (uint32_t i = 0; i < nd; i++) csub_free(sh, drop[i]);
    free(drop);
    sh->retry_at_ms = now_ms() + sh->backoff_ms;
    sh->backoff_ms = sh->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : sh->backoff_ms * 2;
    sh->resetting = 0;
    if (!cl->stopping && cl->h.shard_state) cl->h.shard_state(cl->user, sh->idx, 0);
}

static void probe(struct shard *sh, int64_t now)
{
    char buf[PROBE_TAG_LEN + 24];
    memcpy(buf, PROBE_TAG, PROBE_TAG_LEN);
    int n = snprintf(buf + PROBE_TAG_LEN, sizeof buf - PROBE_TAG_LEN, "%llu", (unsigned long long)++sh->probe_seq);
    if (publish_raw(sh, sh->cl->node_chan, buf, (size_t)(PROBE_TAG_LEN + n), NULL, NULL) == 0)
        sh->probe_deadline_ms = now + sh->cl->timeout_ms;
    sh->next_probe_ms = now + PROBE_EVERY_MS;
}

static void tick_cb(struct rtm_timer *t)
{
    struct clu *cl = lws_container_of(t, struct clu, tick);
    if (!cl->ev && !cl->vh && !(cl->vh = rio_vhost(cl->ctx))) {
        rtm_timer_in(cl->timers, &cl->tick, tick_cb, 1000);
        return;
    }
    int64_t now = now_ms();
    for (int i = 0; i < cl->n; i++) {
        struct shard *sh = &cl->sh[i];
        if (!sh->cmd.ac && !sh->sub.ac) {
            if (now >= sh->retry_at_ms) shard_connect(sh);
            continue;
        }
        if (sh->lost) {
            rtm_metric_inc(RTM_M_CLUSTER_CONN_LOST, 1);
            shard_fail(sh, "connection closed");
            continue;
        }
        if (sh->head && now > sh->head->deadline_ms) {
            cl->st.deadline_missed++;
            rtm_metric_inc(RTM_M_CLUSTER_DEADLINES_MISSED, 1);
            shard_fail(sh, "a command missed its deadline");
            continue;
        }
        if (!sh->up && (sh->cmd.ac || sh->sub.ac) && sh->retry_at_ms && now > sh->retry_at_ms + cl->timeout_ms) {
            /* connecting (or resubscribing) for longer than the deadline */
            cl->st.deadline_missed++;
            rtm_metric_inc(RTM_M_CLUSTER_DEADLINES_MISSED, 1);
            shard_fail(sh, "no answer within the deadline");
            continue;
        }
        if (!sh->up) continue;
        if (sh->probe_deadline_ms && now > sh->probe_deadline_ms) {
            cl->st.probes_missed++;
            rtm_metric_inc(RTM_M_CLUSTER_PROBES_MISSED, 1);
            shard_fail(sh, "the subscriber connection missed its probe");
            continue;
        }
        if (!sh->probe_deadline_ms && now >= sh->next_probe_ms) probe(sh, now);
    }
    rtm_timer_in(cl->timers, &cl->tick, tick_cb, TICK_MS);
}

void clu_start(struct clu *cl, struct lws_context *ctx, struct rtm_timers *timers, struct ev_loop *ev)
{
    if (cl->started) return;
    cl->started = 1;
    cl->ctx = ctx;
    cl->ev = ev;
    cl->timers = timers;
    int64_t now = now_ms();
    for (int i = 0; i < cl->n; i++) cl->sh[i].retry_at_ms = now;
    rtm_timer_in(timers, &cl->tick, tick_cb, 0);
}

void clu_destroy(struct clu *cl)
{
    if (!cl) return;
    cl->stopping = 1;
    if (cl->started) rtm_timer_cancel(cl->timers, &cl->tick);
    for (int i = 0; i < cl->n; i++) {
        struct shard *sh = &cl->sh[i];
        sh->resetting = 1;
        close_both(sh);
        for (uint32_t j = 0; j < sh->subs.cap; j++) {
            struct csub *e = sh->subs.slots[j].key ? sh->subs.slots[j].val : NULL;
            if (!e) continue;
            free(e->name);
            free(e);
        }
        htab_free(&sh->subs);
    }
    free(cl);
}

void clu_get_stats(const struct clu *cl, struct clu_stats *st)
{
    *st = cl->st;
    st->subscriptions = 0;
    for (int i = 0; i < cl->n; i++) st->subscriptions += (int)cl->sh[i].subs.n;
}
