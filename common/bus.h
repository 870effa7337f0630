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
 * bus only asks for a poll now. The cluster (issue 15) adds a Redis
 * implementation of the same ops.
 *
 * One bus per rtmd process (owned by main); owner (loop) thread only. */
#ifndef RTM_BUS_H
#define RTM_BUS_H

#include <jansson.h>
#include <stddef.h>

struct rtm_view;
struct rtm_store;

/* What a broker in this process offers the bus (rtmd wires the broker in). */
struct rtm_bus_broker {
    /* Sessions closed with 4020, or negative. */
    int (*kick)(void *arg, const char *app, const char *peer_id);
    /* data: JSON text of the value. Recipients, or negative. */
    int (*publish)(void *arg, const char *app, const char *channel, const char *data);
    /* The GET /v1/peers array for app (and channel, may be NULL); new reference or NULL. */
    json_t *(*peers)(void *arg, const char *app, const char *channel);
    /* A revocation was stored here (may be NULL): a broker that has other
     * nodes (cluster mode) tells them. */
    void (*revoked)(void *arg);
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
/* A revocation was just stored: a broker in this process enforces it now;
 * brokers elsewhere are asked to poll now (their next poll at the latest). */
struct rtm_revocation;
void rtm_bus_revoked(struct rtm_bus *bus, const struct rtm_revocation *r);

/* The receiving side: a broker's view hands it each outbox row ("kick" or
 * "publish"); it is applied to the local broker. Unknown kinds are ignored. */
void rtm_bus_deliver(struct rtm_bus *bus, const char *kind, const char *app, const char *target,
                     const char *data);

#endif
