/* xask.c: questions from this node to the others, answers gathered on this
 * node's own channel (rtm:n:<node>): the request/reply every "cluster-wide
 * result" needs (kick counts, /v1/peers, server publish recipients; any
 * node-to-node request, such as a resume hand-over, can use it too).
 *
 * A question has an id unique in this process. The asker learns how many
 * answers to wait for from Redis itself, never from its own idea of who is
 * alive: xask_all runs one script on shard 0 that publishes the question to
 * the channel of every node in the registry (rtm:nodes) but this one, and
 * returns how many of those channels had a listener (a stopped or stalled
 * node still has its connection and is waited for), plus the nodes with no
 * listener whose heartbeat is recent (a link down, or a kill -9 of the last
 * seconds: they cannot answer, so the reply is marked incomplete; a node
 * silent for longer is not waited for, its sessions are gone). xask_node does the same for one node; a caller with its
 * own way to count (a publish: the number of subscribed nodes) uses
 * xask_open + xask_expect. Answers may arrive before that count (they travel
 * on other connections), so they are counted from the start.
 *
 * A question ends when every expected answer came, at its deadline
 * (cluster-timeout-ms: the nodes that did not answer are then "missing"), or
 * at once when it could not be sent; done fires exactly once, after which
 * the question is freed. Redis's replies carry the question's id, not a
 * pointer, so a reply that comes after the deadline finds nothing.
 * Bounded: at most XASK_MAX questions open; beyond, xask_open fails.
 *
 * The answering side: a question (kind 'q') is served by the handler its
 * op's owner registered (xask_handle, at that module's init: this file
 * calls none of its users), and the answer (kind 'a': answering node,
 * question id, data) is published to the asker's channel. Loop thread only. */
#include "xnode.h"

#include "errors.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XASK_MAX 1024 /* open questions per node; beyond, xask_open fails */
/* A node that beat within this (3 heartbeats) but is not listening is waited
 * for (and so reported missing) rather than silently left out. */
#define XASK_FRESH_MS "3000"

struct xask {
    uint64_t id;
    struct brk_xnode *xn;
    struct rtm_timer deadline;
    int expected; /* -1 until Redis said */
    int answered;
    xask_answer_fn *on_answer;
    xask_done_fn *done;
    void *arg;
};

static void finish(struct xask *q, int sent)
{
    struct brk_xnode *xn = q->xn;
    htab_del(&xn->asks, (void *)(uintptr_t)q->id);
    rtm_timer_cancel(xn->b->timers, &q->deadline);
    int missing = q->expected < 0 ? 1 : q->expected - q->answered;
    rtm_metric_inc(!sent ? RTM_M_CLUSTER_ASK_NOT_SENT : missing > 0 ? RTM_M_CLUSTER_ASK_INCOMPLETE
                                                                    : RTM_M_CLUSTER_ASK_COMPLETE, 1);
    q->done(q->arg, !sent ? XASK_NOT_SENT : missing > 0 ? XASK_INCOMPLETE : XASK_COMPLETE, q->answered);
    free(q);
}

static void on_deadline(struct rtm_timer *t)
{
    struct xask *q = lws_container_of(t, struct xask, deadline);
    log_info("cluster: question %llu: %d of %d node(s) answered within %d ms", (unsigned long long)q->id,
             q->answered, q->expected, q->xn->b->cfg->cluster_timeout_ms);
    finish(q, 1);
}

struct xask *xask_open(struct brk_xnode *xn, xask_answer_fn *on_answer, xask_done_fn *done, void *arg)
{
    if (xn->asks.n >= XASK_MAX) {
        log_warn("cluster: %d questions to other nodes are open: refusing another", XASK_MAX);
        return NULL;
    }
    struct xask *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->id = ++xn->ask_seq;
    q->xn = xn;
    q->expected = -1;
    q->on_answer = on_answer;
    q->done = done;
    q->arg = arg;
    if (htab_put(&xn->asks, (void *)(uintptr_t)q->id, q) ||
        rtm_timer_in(xn->b->timers, &q->deadline, on_deadline, xn->b->cfg->cluster_timeout_ms)) {
        htab_del(&xn->asks, (void *)(uintptr_t)q->id);
        free(q);
        return NULL;
    }
    return q;
}

int xask_id(const struct xask *q, char *out, size_t outlen)
{
    return snprintf(out, outlen, "%llu", (unsigned long long)q->id);
}

uint64_t xask_question_id(const struct xask *q) { return q->id; }

static struct xask *find(struct brk_xnode *xn, uint64_t id)
{
    return id ? htab_get(&xn->asks, (void *)(uintptr_t)id) : NULL;
}

static void settle(struct xask *q)
{
    if (q->expected >= 0 && q->answered >= q->expected) finish(q, 1);
}

void xask_expect(struct brk_xnode *xn, uint64_t id, int n)
{
    struct xask *q = find(xn, id);
    if (!q) return;
    if (n < 0) {
        finish(q, 0);
        return;
    }
    q->expected = n;
    settle(q);
}

void xask_answer_local(struct brk_xnode *xn, uint64_t id, const char *data, size_t dlen)
{
    struct xask *q = find(xn, id);
    if (!q) return;
    q->answered++;
    if (q->on_answer) q->on_answer(q->arg, xn->node, strlen(xn->node), data, dlen);
    settle(q);
}

uint64_t xask_parse_id(const char *s, size_t n)
{
    uint64_t v = 0;
    if (n == 0 || n > 19) return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v;
}

/* ---- asking ---- */

/* Redis's answer to the fan-out (the number of nodes that were listening),
 * or -1 when it could not run. The question is found by its id. */
static void on_sent(void *arg, int ok, long long listeners)
{
    if (!xn_the) return;
    xask_expect(xn_the, (uint64_t)(uintptr_t)arg, ok ? (int)listeners : -1);
}

/* Publishes the question to every registered node's channel but the asker's
 * (ARGV[1]); returns how many answers to wait for: the nodes that had a
 * listener, and those that had none but beat within ARGV[3] ms (alive by
 * their heartbeat, their link to this shard down or just killed: they will
 * not answer, and the reply says so). The registry is on every shard. */
static const char ALL_SCRIPT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local fresh = now - tonumber(ARGV[3])\n"
    "local reg = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
    "local n = 0\n"
    "for i = 1, #reg, 2 do\n"
    "  local node = reg[i]\n"
    "  if node ~= ARGV[1] then\n"
    "    local got = redis.call('PUBLISH', 'rtm:n:' .. node, ARGV[2])\n"
    "    if got == 0 and tonumber(reg[i + 1]) >= fresh then got = 1 end\n"
    "    n = n + got\n"
    "  end\n"
    "end\n"
    "return n\n";

static char *question(struct brk_xnode *xn, const struct xask *q, char op, const char *app, const char *target,
                      const char *data, size_t dlen, size_t *len)
{
    char id[24], ops[2] = {op, '\0'};
    xask_id(q, id, sizeof id);
    const char *f[CLU_FIELDS] = {xn->node, id, app, target, ops, NULL, data};
    size_t n[CLU_FIELDS] = {strlen(xn->node), strlen(id), strlen(app), strlen(target), 1, 0, data ? dlen : 0};
    return clu_encode(CLU_QUESTION, f, n, len);
}

/* Sends the question and arms the count; on failure the question ends at
 * once (done fires before this returns). 0 when done fires (now or later),
 * -1 when it never will (too many questions open). */
static int ask(struct brk_xnode *xn, const char *node, char op, const char *app, const char *target,
               const char *data, size_t dlen, xask_answer_fn *on_answer, xask_done_fn *done, void *arg)
{
    struct xask *q = xask_open(xn, on_answer, done, arg);
    if (!q) return -1;
    size_t len;
    char *msg = question(xn, q, op, app, target, data, dlen, &len);
    int rc = -1;
    if (msg && node) {
        char chan[CLU_NAME_MAX];
        if (clu_node_name(chan, sizeof chan, node) >= 0) {
            const char *argv[3] = {"PUBLISH", chan, msg};
            size_t lens[3] = {7, strlen(chan), len};
            rc = clu_command(xn->cl, chan, 3, argv, lens, on_sent, (void *)(uintptr_t)q->id);
        }
    } else if (msg) {
        const char *argv[7] = {"EVAL", ALL_SCRIPT, "1", "rtm:nodes", xn->node, msg, XASK_FRESH_MS};
        size_t lens[7] = {4, sizeof ALL_SCRIPT - 1, 1, 9, strlen(xn->node), len, sizeof XASK_FRESH_MS - 1};
        rc = clu_command_on(xn->cl, 0, 7, argv, lens, on_sent, (void *)(uintptr_t)q->id);
    }
    free(msg);
    if (rc == 0) rtm_metric_inc(RTM_M_CLUSTER_OUT, 1);
    else finish(q, 0); /* shard down, full, or out of memory: done says so now (q is freed) */
    return 0;
}

int xask_all(struct brk_xnode *xn, char op, const char *app, const char *target, const char *data, size_t dlen,
             xask_answer_fn *on_answer, xask_done_fn *done, void *arg)
{
    return ask(xn, NULL, op, app, target, data, dlen, on_answer, done, arg);
}

int xask_node(struct brk_xnode *xn, const char *node, char op, const char *app, const char *target,
              const char *data, size_t dlen, xask_answer_fn *on_answer, xask_done_fn *done, void *arg)
{
    return ask(xn, node, op, app, target, data, dlen, on_answer, done, arg);
}

/* ---- answering ---- */

void xask_reply(struct brk_xnode *xn, const struct clu_msg *m, const char *data, size_t dlen)
{
    char chan[CLU_NAME_MAX], asker[130];
    if (m->n[CLU_F_NODE] >= sizeof asker) return;
    memcpy(asker, m->f[CLU_F_NODE], m->n[CLU_F_NODE]);
    asker[m->n[CLU_F_NODE]] = '\0';
    if (strcmp(asker, xn->node) == 0) { /* this node asked (a counted publish it delivers too) */
        xask_answer_local(xn, xask_parse_id(m->f[CLU_F_SID], m->n[CLU_F_SID]), data, dlen);
        return;
    }
    const char *f[CLU_FIELDS] = {xn->node, m->f[CLU_F_SID], NULL, NULL, NULL, NULL, data};
    size_t n[CLU_FIELDS] = {strlen(xn->node), m->n[CLU_F_SID], 0, 0, 0, 0, dlen};
    size_t len;
    char *msg = clu_node_name(chan, sizeof chan, asker) >= 0 ? clu_encode(CLU_ANSWER, f, n, &len) : NULL;
    if (!msg || clu_publish(xn->cl, chan, msg, len, NULL, NULL))
        log_warn("cluster: could not answer node %s (Redis down or out of memory): it reports us missing", asker);
    else rtm_metric_inc(RTM_M_CLUSTER_OUT, 1);
    free(msg);
}

void xask_on_answer(struct brk_xnode *xn, const struct clu_msg *m)
{
    struct xask *q = find(xn, xask_parse_id(m->f[CLU_F_SID], m->n[CLU_F_SID]));
    if (!q) return; /* after its deadline */
    q->answered++;
    if (q->on_answer) q->on_answer(q->arg, m->f[CLU_F_NODE], m->n[CLU_F_NODE], m->f[CLU_F_DATA], m->n[CLU_F_DATA]);
    settle(q);
}

int xask_handle(struct brk_xnode *xn, char op, xask_serve_fn *fn, void *ctx)
{
    if (xn->n_ask_ops >= XASK_OPS_MAX) return -1;
    for (int i = 0; i < xn->n_ask_ops; i++)
        if (xn->ask_ops[i].op == op) return -1;
    xn->ask_ops[xn->n_ask_ops].op = op;
    xn->ask_ops[xn->n_ask_ops].fn = fn;
    xn->ask_ops[xn->n_ask_ops].ctx = ctx;
    xn->n_ask_ops++;
    return 0;
}

void xask_serve(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *target)
{
    if (m->n[CLU_F_FROM] != 1) return;
    for (int i = 0; i < xn->n_ask_ops; i++) {
        if (xn->ask_ops[i].op != m->f[CLU_F_FROM][0]) continue;
        size_t len = 0;
        char *answer = xn->ask_ops[i].fn(xn->ask_ops[i].ctx, xn, app, target, m->f[CLU_F_DATA], m->n[CLU_F_DATA], &len);
        if (answer) xask_reply(xn, m, answer, len);
        free(answer);
        return;
    }
    log_warn("cluster: a question of an unknown kind '%c' from another node: not answered", m->f[CLU_F_FROM][0]);
}

void xask_close_all(struct brk_xnode *xn)
{
    for (;;) {
        struct xask *q = NULL;
        for (uint32_t i = 0; i < xn->asks.cap && !q; i++)
            if (xn->asks.slots[i].key) q = xn->asks.slots[i].val;
        if (!q) break;
        finish(q, 1);
    }
    htab_free(&xn->asks);
}
