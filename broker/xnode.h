/* xnode.h: what the cluster glue's files share (broker/xnode.c: channels,
 * publish, control, lifetime; broker/xpeers.c: peer records and direct send;
 * broker/xbeat.c: heartbeats, reaping, per-app counts). Private to them. */
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

/* xpeers.c */
void xpeers_flush(struct brk_xnode *xn);          /* writes every dirty peer record now */
void xpeers_rewrite_all(struct brk_xnode *xn);    /* a shard came back: every local peer again */
void xpeers_deliver(struct brk_xnode *xn, const struct clu_msg *m, const char *app, const char *to,
                    const char *from);            /* a direct from another node */
void xpeers_free(struct brk_xnode *xn);

/* xbeat.c */
void xbeat_start(struct brk_xnode *xn);
void xbeat_stop(struct brk_xnode *xn);
void xbeat_shard_up(struct brk_xnode *xn, int shard);
void xbeat_free(struct brk_xnode *xn);

#endif
