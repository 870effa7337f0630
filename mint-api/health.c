/* health.c: GET /healthz (the store answers a query; in cluster mode, the
 * state of the Redis link too) and GET /metrics
 * (Prometheus text). Neither needs auth: a load balancer or a scraper calls
 * them, and they carry nothing secret. */
#include "api.h"

#include "broker.h"
#include "cluster.h"
#include "errors.h"
#include "metrics.h"
#include "server.h"
#include "store.h"

#include <string.h>

void mint_healthz_get(struct mint_req *rq)
{
    struct rtm_app app;
    /* A lookup that touches the database: a missing row is a healthy answer. */
    int rc = rtm_store_app_get(rq->srv->store, "_healthz", &app);
    if (rc != 0 && rc != RTM_ENOTFOUND) {
        mint_reply_json(rq, 503, json_pack("{s:s, s:s}", "status", "unavailable", "store", "error"));
        return;
    }
    json_t *reply = json_pack("{s:s, s:s, s:i}", "status", "ok", "store", "ok", "schemaVersion",
                              rtm_store_version(rq->srv->store));
    struct clu_stats cs;
    if (reply && rq->srv->broker && brk_cluster_stats(rq->srv->broker, &cs)) {
        /* Redis is shared by every node: a node without it still serves its own
         * clients, so this is "degraded" (200), for alerts rather than for
         * taking nodes out of a load balancer. The state comes from the link's
         * probes, so a subscriber that went silent shows here too. */
        const char *state = cs.shards_up == cs.shards ? "up" : cs.shards_up ? "degraded" : "down";
        json_object_set_new(reply, "cluster",
                            json_pack("{s:s, s:i, s:i}", "state", state, "shards", cs.shards, "shardsUp", cs.shards_up));
        if (cs.shards_up < cs.shards) json_object_set_new(reply, "status", json_string("degraded"));
    }
    mint_reply_json(rq, 200, reply);
}

void mint_metrics_get(struct mint_req *rq)
{
    if (rq->srv->broker) brk_metrics_gauges(rq->srv->broker);
    char *s = rtm_metrics_render();
    if (!s) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
        return;
    }
    mint_reply_raw(rq, 200, s, strlen(s), "text/plain; version=0.0.4");
}
