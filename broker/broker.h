/* broker.h: the public listener: WebSocket sessions, channels, presence,
 * fan-out, and the browser-facing files. What rtmd's main and the mint API
 * (backend listener, same process) may call. Loop thread only. */
#ifndef RTM_BROKER_H
#define RTM_BROKER_H

#include <jansson.h>

struct lws_protocols;
struct lws_http_mount;
struct rtm_server;
struct brk_broker;

/* Creates the broker's state (hash tables, timers are armed later by the
 * protocol's PROTOCOL_INIT). One per process, owned by main. */
int brk_create(struct rtm_server *srv, struct brk_broker **out);
void brk_destroy(struct brk_broker *b);

/* Protocols for the public vhost, terminated by a zeroed entry. protocols[0]
 * serves HTTP and any WebSocket that offers no known subprotocol. */
const struct lws_protocols *brk_protocols(void);
/* The loop turn's end, before the loop waits for events again (rtmd/loop.c's
 * ev_prepare): reads more input of the sessions that sent a burst
 * (rxdrain.c), then writes every session's new frames (conn.c). Once it has
 * been called, sessions wait for it to write: a loop calls it every turn. */
void brk_turn_end(struct brk_broker *b);
/* Mounts for the public vhost (static files from cfg->web_root), or NULL. */
const struct lws_http_mount *brk_mounts(const struct rtm_server *srv);

/* ---- wired into the bus (common/bus.h) by main: the mint API's way in ---- */
/* [{peerId, peerMetadata, channels:[...], connections:N}] of peers online, optionally in one channel. */
json_t *brk_peers(struct brk_broker *b, const char *channel);
/* The same, limited to one app (app NULL = every app). Each object also carries "app". */
json_t *brk_peers_app(struct brk_broker *b, const char *app, const char *channel);
/* Closes every session of peer_id with 4020; returns how many. */
int brk_kick(struct brk_broker *b, const char *app, const char *peer_id);
/* Publishes data (the JSON text of the value, copied as is) to channel with
 * from "_server"; returns recipients (in cluster mode: this node's
 * subscribers) or negative (RTM_EUNAVAILABLE: in cluster mode, Redis cannot
 * take it now). */
int brk_server_publish(struct brk_broker *b, const char *app, const char *channel, const char *data);
/* Sends going_away to every session and closes them with 1001. */
void brk_begin_shutdown(struct brk_broker *b, int retry_after_ms);
/* Number of live sessions (for shutdown: main waits until 0 or the grace time). */
int brk_session_count(struct brk_broker *b);
/* Sets the broker's gauges in rtm_gauges (common/metrics.h) from its tables:
 * O(sessions + channels), called once per scrape. */
void brk_metrics_gauges(struct brk_broker *b);
/* Cluster mode (docs/CLUSTER.md): 1 with the Redis link's figures in *st
 * (struct clu_stats, cluster/cluster.h), 0 without --cluster. */
struct clu_stats;
int brk_cluster_stats(struct brk_broker *b, struct clu_stats *st);

/* ---- called from the store's view (common/view.h) as it drains ---- */
struct rtm_revocation;
/* A new revocation row: matching live sessions (and held places) close with 4001; returns how many. */
int brk_revoked(struct brk_broker *b, const struct rtm_revocation *r);
/* A key was revoked (or deleted): every session on it closes with 4012 "key revoked". */
void brk_key_revoked(struct brk_broker *b, const char *kid, const char *app);
/* The view answered a refresh: connections waiting for their key go on. */
void brk_view_refreshed(struct brk_broker *b);

/* ---- wiring (rtmd's main, the fuzz environment) ---- */
struct rtm_bus_broker;
struct rtm_view_hooks;
/* The broker as the local bus calls it: kick, publish, peers (arg = b). */
void brk_bus_broker(struct brk_broker *b, struct rtm_bus_broker *out);
/* Fills the view's key_revoked, revoked, outbox and refreshed hooks (arg =
 * srv): they act on srv->broker when there is one, outbox rows through
 * srv->bus. The caller sets wake. */
void brk_view_hooks(struct rtm_server *srv, struct rtm_view_hooks *h);

#endif
