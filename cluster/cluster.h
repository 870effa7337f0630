/* cluster.h: the Redis link of a node in cluster mode (docs/CLUSTER.md).
 *
 * A transport and nothing more: it knows Redis shards, connections,
 * deadlines, reconnects and subscriptions, and nothing of sessions, channels
 * or frames (the broker's glue, broker/xnode.c, does). Per shard: one command
 * connection (PUBLISH) and one subscriber connection (SUBSCRIBE), so the
 * subscriber never waits behind commands. Every command has a deadline of
 * its own (hiredis 0.14.1 has none); a shard whose command misses it, or
 * whose subscriber stops hearing the node's own probe, is torn down and
 * reconnected with backoff, and every subscription is made again.
 *
 * One struct clu per process, owned by the broker; loop thread only. Nothing
 * here blocks: a call either queues work or fails at once. */
#ifndef CLU_CLUSTER_H
#define CLU_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct lws_context;
struct rtm_timers;
struct clu;

struct clu_handler {
    /* A message on a channel this node subscribed to (payload borrowed). */
    void (*message)(void *user, const char *chan, const char *payload, size_t len);
    /* chan's subscription is confirmed by Redis: messages published from now on arrive. */
    void (*subscribed)(void *user, const char *chan);
    /* A shard went down (up = 0) or came back with every subscription made
     * again (up = 1). Subscriptions of a down shard count as settled. */
    void (*shard_state)(void *user, int shard, int up);
};

struct clu_stats {
    int shards, shards_up;
    uint64_t published, publish_failed, received, reconnects, probes_missed, deadline_missed;
    uint64_t rtt_us_sum, rtt_count; /* PUBLISH round trips */
    int subscriptions;
};

/* Parses urls ("redis://host:port[,...]", at most CLU_MAX_SHARDS) and
 * prepares the link; nothing connects yet. 0, or -1 with a reason in err. */
int clu_create(const char *urls, const char *node_id, int timeout_ms, const struct clu_handler *h, void *user,
               struct clu **out, char *err, size_t errlen);
/* Starts connecting, from a timer of its own in the loop's heap (so it may be
 * called from any lws callback): on ev with hiredis's libev adapter, or, when
 * ev is NULL, on ctx's lws poll loop through adopted descriptors. */
void clu_start(struct clu *cl, struct lws_context *ctx, struct rtm_timers *timers, struct ev_loop *ev);
/* Cancels timers and frees every connection; pending publishes complete
 * with ok = 0 before it returns. */
void clu_destroy(struct clu *cl);

int clu_shard_count(const struct clu *cl);
int clu_shard_of_chan(const struct clu *cl, const char *chan);
int clu_shard_up(const struct clu *cl, int shard);

/* done(arg, ok) fires exactly once: ok = 1 when Redis took the PUBLISH, 0 on
 * an error, a missed deadline or a connection lost. Returns 0, or -1 when the
 * shard is down or memory ran out (then done never fires). */
typedef void clu_done_fn(void *arg, int ok);
int clu_publish(struct clu *cl, const char *chan, const char *payload, size_t len, clu_done_fn *done, void *arg);

/* Any command, on the shard of shard_key (a key name the command touches:
 * every key of one command must live on that shard). on_int(arg, ok, value)
 * fires exactly once: ok = 1 with value for an integer reply (0 for another
 * kind), ok = 0 on an error reply, a missed deadline or a lost connection.
 * Returns 0, or -1 when the shard is down or full (on_int never fires). */
typedef void clu_int_fn(void *arg, int ok, long long value);
int clu_command(struct clu *cl, const char *shard_key, int argc, const char **argv, const size_t *lens,
                clu_int_fn *on_int, void *arg);
/* The same on one shard by index (node-wide records kept on every shard). */
int clu_command_on(struct clu *cl, int shard, int argc, const char **argv, const size_t *lens, clu_int_fn *on_int,
                   void *arg);

/* The same for a command whose reply is a string (a script's snapshot):
 * on_text(arg, ok, text, len) fires exactly once, text borrowed for the call
 * ("" for a reply of another kind, or when ok = 0). */
typedef void clu_text_fn(void *arg, int ok, const char *text, size_t len);
int clu_command_text(struct clu *cl, const char *shard_key, int argc, const char **argv, const size_t *lens,
                     clu_text_fn *on_text, void *arg);

/* This node wants chan's messages (idempotent). 1 when the subscription is
 * already confirmed, 0 when handler->subscribed will tell (or shard_state, if
 * the shard goes down first), -1 on ENOMEM. While the shard is down the wish
 * is kept and made good on reconnect. */
int clu_want(struct clu *cl, const char *chan);
/* No longer wanted: unsubscribed once no command for it is in flight. */
void clu_unwant(struct clu *cl, const char *chan);

void clu_get_stats(const struct clu *cl, struct clu_stats *st);

#endif
