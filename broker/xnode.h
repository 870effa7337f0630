/* xnode.h: what the cluster glue's files share (broker/xnode.c: channels,
 * publish, control, lifetime; broker/xpeers.c: peer records and direct send;
 * broker/xbeat.c: heartbeats, reaping, per-app counts; broker/xresume.c:
 * resume through another node; broker/xpresence.c: cluster-wide presence).
 * Private to them. */
#ifndef BRK_XNODE_H
#define BRK_XNODE_H

#include "internal.h"

#include "cluster.h"
#include "wire.h"

/* A request waiting on Redis: a publish's or a send's ack, or a subscribe's.
 * Listed on its session until it closes (then s is NULL); freed when Redis
 * answers, which the link guarantees, even at shutdown. */
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

/* The answering side of a question (xask.c): what this node answers to
 * another node's question of one op, as a malloc'd answer (*len its length),
 * or NULL to answer nothing (the asker then counts this node missing). ctx
 * is the one given to xask_handle. Loop thread. */
typedef char *xask_serve_fn(void *ctx, struct brk_xnode *xn, const char *app, const char *target, const char *data,
                            size_t dlen, size_t *len);
#define XASK_OPS_MAX 8 /* ops a node can serve; xask_handle refuses more */

/* One per process in cluster mode, owned by the broker (b->xn). */
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
    struct htab remote_apps;  /* app -> struct remote_app (xbeat.c) */
    struct htab asks;         /* question id (as a pointer key) -> struct xask (xask.c) */
    struct htab revs_seen;    /* revocation key -> struct rev_seen: what each closed here (xrest.c) */
    uint64_t ask_seq;
    struct {
        char op;
        xask_serve_fn *fn;
        void *ctx;
    } ask_ops[XASK_OPS_MAX]; /* registered by the modules that serve them (xask_handle) */
    int n_ask_ops;
    /* xresume.c: resumes through this node waiting for a place held
     * elsewhere, and this node's held places moving elsewhere (rsid -> struct xmove) */
    struct xhandover *handovers;
    int n_handovers;
    struct htab moves;
    unsigned remote_delivery : 1; /* xpeers_deliver is delivering a direct from another node */
    unsigned handovers_full_logged : 1;
    /* xpresence.c */
    struct htab pdirty; /* "app\x1fchannel\x1fpeer" -> the same string (owned): presence entries to write */
    struct rtm_timer pflush_t;
    struct rtm_timer rebuild_t; /* the end of the grace after a shard came back: channels re-fetched */
    int pdirty_full_logged;
    uint64_t pfetch_seq; /* the last presence fetch's number, across all channels: a table's fetch is known by it */
};

/* The process's one xnode, for callbacks that carry only a key (they may
 * fire during clu_destroy, when stopping is set). NULL without --cluster. */
extern struct brk_xnode *xn_the;

/* xnode.c */
struct xwait *wait_new(struct brk_xnode *xn, struct brk_session *s, const char *rid);
void wait_free(struct xwait *w);
const char *wait_rid(const struct xwait *w);
/* The cluster_unavailable error frame (counted). */
void xn_unavailable(struct brk_session *s, const char *rid);

/* Sets of keys whose Redis records wait to be written (peer records,
 * presence entries), coalesced per loop turn: a key is marked (strdup'd;
 * over XN_DIRTY_MAX it is dropped, logged once) and a flush calls write for
 * each, keeping those whose write could not be sent (0 = sent). */
#define XN_DIRTY_MAX (1 << 20)
void xn_mark_key(struct htab *set, const char *key, int *full_logged, const char *what);
void xn_flush_keys(struct brk_xnode *xn, struct htab *set, int (*write)(struct brk_xnode *, const char *));
void xn_free_keys(struct htab *set);

/* xpeers.c */
void xpeers_flush(struct brk_xnode *xn);          /* writes every dirty peer record now */
void xpeers_rewrite_all(struct brk_xnode *xn);    /* a shard came back: every local peer again */
void xpeers_deliver(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *to,
                    const char *from);            /* a direct from another node */
void xpeers_free(struct brk_xnode *xn);
void xpeers_dirty_key(struct brk_xnode *xn, const char *key); /* "app\x1fpeer": its record is written soon */
char *peer_channels(const struct brk_peer *p, const struct brk_session *skip, size_t *len);

/* xresume.c */
void xresume_init(struct brk_xnode *xn); /* registers XASK_RESUME's handler */
/* A resume message from another node (CLU_RESUME_*) on this node's channel. */
void xresume_message(struct brk_xnode *xn, const struct clu_msg *m, const char *node, const char *id,
                     const char *app, const char *peer, const char *rsid);
/* A direct to app's peer delivered here: a place of that peer moving here
 * keeps it when it is past the move's cut (past_cut: the send script said so;
 * else this node's cut message has come). */
void xresume_direct(struct brk_xnode *xn, const char *app, const char *peer, const char *from, struct brk_msg *msg,
                    int past_cut);
/* Shutdown (before the link goes): asks end with fresh sessions, moves end. */
void xresume_free(struct brk_xnode *xn);

/* xask.c: questions to other nodes, answers gathered on this node's channel.
 * done(arg, status, answered) fires exactly once: XASK_COMPLETE when every
 * node that was listening answered, XASK_INCOMPLETE when some did not within
 * cluster-timeout-ms, XASK_NOT_SENT when Redis did not take the question
 * (shard down, deadline, out of memory). on_answer (may be NULL) sees each
 * answer as it comes (node and data borrowed for the call). */
enum { XASK_NOT_SENT = -1, XASK_INCOMPLETE = 0, XASK_COMPLETE = 1 };
typedef void xask_answer_fn(void *arg, const char *node, size_t nlen, const char *data, size_t dlen);
typedef void xask_done_fn(void *arg, int status, int answered);
/* Ops (a question's "from" field), one table for the cluster's wire; each
 * is served by the module named, which registers its handler at its init
 * (xask_handle): xask.c knows none of them. */
#define XASK_KICK 'k'  /* target: peerId; answer: sessions closed, decimal */
#define XASK_PEERS 'l' /* target: channel or ""; answer: the node's GET /v1/peers array */
#define XASK_REVOKED 'r' /* target: jti or peerId; data: "j", or "p<before>"; answer: sessions closed */
#define XASK_RESUME 'm' /* target: peerId; data: hand-over id, rsid, asking node ("\n"-separated);
                          answer: "m" (held here, moving: xresume.c) or "-" */
/* Asks every other live node (xask_all) or one node (xask_node): 0 when
 * done will fire (it may have already, when the question could not be
 * sent), -1 when it never will (XASK_MAX questions open, or out of memory). */
int xask_all(struct brk_xnode *xn, char op, const char *app, const char *target, const char *data, size_t dlen,
             xask_answer_fn *on_answer, xask_done_fn *done, void *arg);
int xask_node(struct brk_xnode *xn, const char *node, char op, const char *app, const char *target,
              const char *data, size_t dlen, xask_answer_fn *on_answer, xask_done_fn *done, void *arg);
/* For a caller that counts answers its own way (a counted publish): open a
 * question (NULL: never fires), put its id in the message (xask_id, "%llu"),
 * then say how many answers come (xask_expect; -1: none can). */
struct xask;
struct xask *xask_open(struct brk_xnode *xn, xask_answer_fn *on_answer, xask_done_fn *done, void *arg);
int xask_id(const struct xask *q, char *out, size_t outlen);
uint64_t xask_question_id(const struct xask *q);
void xask_expect(struct brk_xnode *xn, uint64_t id, int n);
uint64_t xask_parse_id(const char *s, size_t n); /* 0: not an id */
/* Registers fn (with ctx) as the handler of op's questions from other nodes:
 * 0, or -1 when op already has one or XASK_OPS_MAX are registered. */
int xask_handle(struct brk_xnode *xn, char op, xask_serve_fn *fn, void *ctx);
/* The answering side: a question from another node (kind 'q') is served by
 * its op's handler; xask_reply answers m's asker (this node's own: at once). */
void xask_serve(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *target);
void xask_reply(struct brk_xnode *xn, const struct clu_msg *m, const char *data, size_t dlen);
void xask_on_answer(struct brk_xnode *xn, const struct clu_msg *m); /* kind 'a' */
/* Shutdown: every open question ends now (done fires, incomplete). */
void xask_close_all(struct brk_xnode *xn);

/* xrest.c: the backend API's results across nodes (kick, peers, publish). */
void xrest_init(struct brk_xnode *xn); /* registers XASK_KICK's, XASK_PEERS' and XASK_REVOKED's handlers */
/* The store's view applied a revocation here before its question came: n
 * sessions closed, which the question (if it comes) reports. */
void xrest_revoked_here(struct brk_xnode *xn, const struct rtm_revocation *r, int n);
void xrest_free(struct brk_xnode *xn);
/* A counted server publish came back from Redis (kind 'P'): deliver and answer the count. */
void xrest_deliver_counted(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *channel);

/* xpresence.c */
void xpresence_flush(struct brk_xnode *xn);
/* A channel's Redis channel is subscribed (confirmed): its table can be fetched. */
void xpresence_subscribed(struct brk_xnode *xn, const char *chan);
/* A shard is up (again): this node's entries are written again and, after a
 * grace for the other nodes to do the same, every channel's table is
 * fetched again and compared (only real changes reach clients). */
void xpresence_shard_up(struct brk_xnode *xn, int shard);
/* A CLU_PRESENCE message from a channel's Redis channel. */
void xpresence_delta(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *channel,
                     const char *peer);
void xpresence_free(struct brk_xnode *xn);

/* Lua shared by the presence scripts (xpresence.c) and the reaping
 * (xbeat.c): pr_leave(k, peer, node) removes a (peer, node) entry of the
 * presence hash k and, when it was the peer's last node, publishes the leave
 * with the next version; pr_drop_node(k, node) does it for every entry of a
 * node; pr_bump publishes a change. docs/CLUSTER.md "Presence". */
#define XPR_LUA                                                                                              \
    "local function pr_bump(k, peer, meta, kind, node)\n"                                                   \
    "  local sfx = string.sub(k, 8)\n"                                                                      \
    "  local prev = tonumber(redis.call('HGET', k, '#v') or '0')\n"                                        \
    "  local v = prev + 1\n"                                                                                \
    "  if prev == 0 then local t = redis.call('TIME'); v = tonumber(t[1]) * 1000000 + tonumber(t[2]) end\n" \
    "  local vs = string.format('%.0f', v)\n"                                                               \
    "  if kind == 'l' and redis.call('HLEN', k) <= 1 then redis.call('DEL', k)\n"                           \
    "  else redis.call('HSET', k, '#v', vs) end\n"                                                          \
    "  local l, rest = string.match(sfx, '^(%d+):(.*)$')\n"                                                 \
    "  l = tonumber(l)\n"                                                                                   \
    "  local f = {node, string.format('%.0f', prev) .. ' ' .. vs, string.sub(rest, 1, l),\n"                \
    "             string.sub(rest, l + 2), peer, meta, kind}\n"                                             \
    "  local hdr = 'rtm1 e'\n"                                                                              \
    "  for i = 1, 7 do hdr = hdr .. ' ' .. #f[i] end\n"                                                     \
    "  redis.call('PUBLISH', 'rtm:c:' .. sfx, hdr .. '\\n' .. table.concat(f))\n"                          \
    "end\n"                                                                                                 \
    "local function pr_leave(k, peer, node)\n"                                                              \
    "  if redis.call('HDEL', k, peer .. '\\31' .. node) == 0 then return 0 end\n"                           \
    "  local pc = 'rtm:pc:' .. string.sub(k, 8)\n"                                                          \
    "  if redis.call('HINCRBY', pc, peer, -1) > 0 then return 1 end\n"                                      \
    "  redis.call('HDEL', pc, peer)\n"                                                                      \
    "  pr_bump(k, peer, '', 'l', node)\n"                                                                   \
    "  return 1\n"                                                                                          \
    "end\n"                                                                                                 \
    "local function pr_drop_node(k, node)\n"                                                                \
    "  local sfx, n = '\\31' .. node, 0\n"                                                                  \
    "  for _, f in ipairs(redis.call('HKEYS', k)) do\n"                                                     \
    "    if #f > #sfx and string.sub(f, -#sfx) == sfx then\n"                                               \
    "      n = n + pr_leave(k, string.sub(f, 1, #f - #sfx), node)\n"                                        \
    "    end\n"                                                                                             \
    "  end\n"                                                                                               \
    "  return n\n"                                                                                          \
    "end\n"

/* xbeat.c */
void xbeat_start(struct brk_xnode *xn);
void xbeat_stop(struct brk_xnode *xn);
void xbeat_shard_up(struct brk_xnode *xn, int shard);
void xbeat_free(struct brk_xnode *xn);

#endif
