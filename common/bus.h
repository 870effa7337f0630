/* bus.h: how roles meet. The mint API posts a kick, a server publish or a
 * revocation notice, and asks who is online, without knowing where the
 * brokers are; a broker takes what was posted for it.
 *
 * Two implementations behind one small ops table:
 *   local  the broker lives in this process: direct calls (the default
 *          all-in-one rtmd); results are exact (sessions closed, recipients).
 *   store  the brokers are other processes on the same store: kicks and
 *          publishes go to the outbox table through the view's writer thread
 *          (each broker's view reads rows newer than it has seen, every
 *          store-poll-ms); who is online comes from the presence snapshots
 *          each broker writes (fresh nodes only). Results are RTM_BUS_QUEUED.
 * Revocations themselves are rows in the store that every view polls; the
 * bus only asks for a poll now. In cluster mode (issue 15) the local broker
 * offers `ask` too: a kick, a publish or a listing asked of every node
 * through Redis (broker/xask.c), the answers gathered with a deadline, so
 * rtm_bus_ask reports the cluster's result (or a partial one, said so).
 *
 * One bus per rtmd process (owned by main); owner (loop) thread only. */
#ifndef RTM_BUS_H
#define RTM_BUS_H

#include <jansson.h>
#include <stddef.h>

struct rtm_view;
struct rtm_store;
struct rtm_revocation;

enum rtm_bus_op { RTM_BUS_KICK, RTM_BUS_PUBLISH, RTM_BUS_PEERS };

/* What a request to every broker came to. */
struct rtm_bus_result {
    int rc;        /* KICK: sessions closed; PUBLISH: recipients; PEERS: 0; or RTM_BUS_QUEUED, or negative */
    json_t *peers; /* PEERS with rc 0: the array, each peer once (borrowed for the call) */
    int partial;   /* some broker did not answer within its deadline (cluster mode): the counts and
                      the listing miss its share, and a kick may not have reached it */
};
typedef void rtm_bus_done_fn(void *arg, const struct rtm_bus_result *r);

/* What a broker in this process offers the bus (rtmd wires the broker in). */
struct rtm_bus_broker {
    /* Sessions closed with 4020, or negative. */
    int (*kick)(void *arg, const char *app, const char *peer_id);
    /* data: JSON text of the value. Recipients, or negative. */
    int (*publish)(void *arg, const char *app, const char *channel, const char *data);
    /* The GET /v1/peers array for app (and channel, may be NULL); new reference or NULL. */
    json_t *(*peers)(void *arg, const char *app, const char *channel);
    /* A revocation was stored here: the sessions of this process it voids
     * close now; returns how many (live and held). */
    int (*revoke)(void *arg, const struct rtm_revocation *r);
    /* Cluster mode, else NULL: op asked of every node (target: the peerId
     * or the channel, NULL for every channel; data: a publish's JSON text).
     * 0 when done will fire exactly once (perhaps before this returns), or
     * negative when it never will. */
    int (*ask)(void *arg, enum rtm_bus_op op, const char *app, const char *target, const char *data,
               rtm_bus_done_fn *done, void *done_arg);
    /* Cluster mode, else NULL: every other node applies r (this one did:
     * closed sessions here); done gets the sum. As ask. */
    int (*ask_revoked)(void *arg, const struct rtm_revocation *r, int closed, rtm_bus_done_fn *done,
                       void *done_arg);
    void *arg;
};

/* A post that will be applied by the brokers that read it (not counted). */
#define RTM_BUS_QUEUED 1000000000

struct rtm_bus;

/* In-process: broker must outlive the bus; view may be NULL. */
int rtm_bus_local(const struct rtm_bus_broker *broker, struct rtm_view *view, struct rtm_bus **out);
/* Across processes through the store: posts through view, reads presence with st. */
int rtm_bus_store(struct rtm_view *view, struct rtm_store *st, struct rtm_bus **out);
void rtm_bus_free(struct rtm_bus *bus);

/* Closes every session of peer_id in app with 4020: the count, RTM_BUS_QUEUED, or negative. */
int rtm_bus_kick(struct rtm_bus *bus, const char *app, const char *peer_id);
/* A server publish (data: JSON text): recipients, RTM_BUS_QUEUED, or negative. */
int rtm_bus_publish(struct rtm_bus *bus, const char *app, const char *channel, const char *data);
/* Peers online in app (optionally in channel): a new JSON array, or NULL on error. */
json_t *rtm_bus_peers(struct rtm_bus *bus, const char *app, const char *channel);
/* The same three with the result of every broker: done fires exactly once,
 * perhaps before this returns (one process, or the store: RTM_BUS_QUEUED),
 * perhaps later, within cluster-timeout-ms (cluster mode). target: the
 * peerId (KICK), the channel (PUBLISH; PEERS: NULL for every channel). */
void rtm_bus_ask(struct rtm_bus *bus, enum rtm_bus_op op, const char *app, const char *target, const char *data,
                 rtm_bus_done_fn *done, void *arg);
/* A revocation was just stored: a broker in this process enforces it now,
 * brokers elsewhere when they read it (asked now in cluster mode, else at
 * their next poll). done gets the live sessions (and held places) it closed:
 * this process's, or every node's in cluster mode (as rtm_bus_ask), or
 * RTM_BUS_QUEUED with the store (the brokers are other processes). */
void rtm_bus_revoked(struct rtm_bus *bus, const struct rtm_revocation *r, rtm_bus_done_fn *done, void *arg);

/* The receiving side: a broker's view hands it each outbox row ("kick" or
 * "publish"); it is applied to the local broker. Unknown kinds are ignored. */
void rtm_bus_deliver(struct rtm_bus *bus, const char *kind, const char *app, const char *target,
                     const char *data);

#endif
