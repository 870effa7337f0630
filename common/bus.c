/* bus.c: the local and store implementations of bus.h.
 *
 * Design choice: an ops table with two tiny implementations rather than
 * "if remote" branches in the mint API, so the Redis transport is a third
 * table and nothing above it changes. The store implementation is bounded
 * by the view (pending outbox posts) and the outbox table (a minute, 10,000
 * rows); presence is read only from nodes seen within PRESENCE_FRESH_MS. */
#include "bus.h"

#include "errors.h"
#include "store.h"
#include "util.h"
#include "view.h"

#include <stdlib.h>
#include <string.h>

/* A node whose heartbeat (about every second) is older than this is gone. */
#define PRESENCE_FRESH_MS 5000

struct bus_ops {
    int (*kick)(struct rtm_bus *bus, const char *app, const char *peer_id);
    int (*publish)(struct rtm_bus *bus, const char *app, const char *channel, const char *data);
    json_t *(*peers)(struct rtm_bus *bus, const char *app, const char *channel);
};

struct rtm_bus {
    const struct bus_ops *ops;
    struct rtm_bus_broker broker; /* local */
    struct rtm_view *view;
    struct rtm_store *st;         /* store: presence reads */
};

/* ---- local ---- */

static int local_kick(struct rtm_bus *bus, const char *app, const char *peer_id)
{
    return bus->broker.kick(bus->broker.arg, app, peer_id);
}

static int local_publish(struct rtm_bus *bus, const char *app, const char *channel, const char *data)
{
    return bus->broker.publish(bus->broker.arg, app, channel, data);
}

static json_t *local_peers(struct rtm_bus *bus, const char *app, const char *channel)
{
    return bus->broker.peers(bus->broker.arg, app, channel);
}

static const struct bus_ops local_ops = {local_kick, local_publish, local_peers};

/* ---- store ---- */

static int store_kick(struct rtm_bus *bus, const char *app, const char *peer_id)
{
    int rc = rtm_view_outbox_post(bus->view, "kick", app, peer_id, NULL);
    return rc ? rc : RTM_BUS_QUEUED;
}

static int store_publish(struct rtm_bus *bus, const char *app, const char *channel, const char *data)
{
    int rc = rtm_view_outbox_post(bus->view, "publish", app, channel, data);
    return rc ? rc : RTM_BUS_QUEUED;
}

static int peer_in_channel(json_t *peer, const char *channel)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(peer, "channels"), i, c) if (strcmp(json_string_value(c), channel) == 0) return 1;
    return 0;
}

static json_t *store_peers(struct rtm_bus *bus, const char *app, const char *channel)
{
    json_t *all = NULL;
    if (rtm_store_presence_query(bus->st, app, rtm_now_ms() - PRESENCE_FRESH_MS, &all)) return NULL;
    if (!channel) return all;
    json_t *out = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p) if (out && peer_in_channel(p, channel)) json_array_append(out, p);
    json_decref(all);
    return out;
}

static const struct bus_ops store_ops = {store_kick, store_publish, store_peers};

/* ---- the interface ---- */

int rtm_bus_local(const struct rtm_bus_broker *broker, struct rtm_view *view, struct rtm_bus **out)
{
    struct rtm_bus *bus = calloc(1, sizeof *bus);
    if (!bus) return RTM_ENOMEM;
    bus->ops = &local_ops;
    bus->broker = *broker;
    bus->view = view;
    *out = bus;
    return 0;
}

int rtm_bus_store(struct rtm_view *view, struct rtm_store *st, struct rtm_bus **out)
{
    struct rtm_bus *bus = calloc(1, sizeof *bus);
    if (!bus) return RTM_ENOMEM;
    bus->ops = &store_ops;
    bus->view = view;
    bus->st = st;
    *out = bus;
    return 0;
}

void rtm_bus_free(struct rtm_bus *bus) { free(bus); }

int rtm_bus_kick(struct rtm_bus *bus, const char *app, const char *peer_id)
{
    return bus->ops->kick(bus, app, peer_id);
}

int rtm_bus_publish(struct rtm_bus *bus, const char *app, const char *channel, const char *data)
{
    return bus->ops->publish(bus, app, channel, data);
}

json_t *rtm_bus_peers(struct rtm_bus *bus, const char *app, const char *channel)
{
    return bus->ops->peers(bus, app, channel);
}

void rtm_bus_ask(struct rtm_bus *bus, enum rtm_bus_op op, const char *app, const char *target, const char *data,
                 rtm_bus_done_fn *done, void *arg)
{
    int asked = bus->ops == &local_ops && bus->broker.ask;
    if (asked && bus->broker.ask(bus->broker.arg, op, app, target, data, done, arg) == 0) return;
    /* One process or the store: the answer is known now. (A cluster node
     * that could not ask the others answers for itself, and says so.) */
    struct rtm_bus_result r = {0, NULL, asked};
    switch (op) {
    case RTM_BUS_KICK: r.rc = rtm_bus_kick(bus, app, target); break;
    case RTM_BUS_PUBLISH: r.rc = rtm_bus_publish(bus, app, target, data); break;
    case RTM_BUS_PEERS:
        r.peers = rtm_bus_peers(bus, app, target);
        r.rc = r.peers ? 0 : RTM_ENOMEM;
        break;
    }
    done(arg, &r);
    json_decref(r.peers);
}

void rtm_bus_revoked(struct rtm_bus *bus, const struct rtm_revocation *r, rtm_bus_done_fn *done, void *arg)
{
    int local = bus->ops == &local_ops;
    struct rtm_bus_result res = {RTM_BUS_QUEUED, NULL, 0};
    /* The broker first, to count: the view's hook then finds them closed. */
    if (local) res.rc = bus->broker.revoke(bus->broker.arg, r);
    if (bus->view) {
        rtm_view_revocation_add(bus->view, r); /* this process's lookups (and its broker, if not done above) */
        rtm_view_refresh(bus->view);
    }
    if (local && bus->broker.ask_revoked && bus->broker.ask_revoked(bus->broker.arg, r, res.rc, done, arg) == 0)
        return;
    res.partial = local && bus->broker.ask_revoked; /* cluster mode, and the others could not be asked */
    done(arg, &res);
}

void rtm_bus_deliver(struct rtm_bus *bus, const char *kind, const char *app, const char *target,
                     const char *data)
{
    if (bus->ops != &local_ops || !kind || !app || !target) return;
    if (strcmp(kind, "kick") == 0) bus->broker.kick(bus->broker.arg, app, target);
    else if (strcmp(kind, "publish") == 0 && data) bus->broker.publish(bus->broker.arg, app, target, data);
}
