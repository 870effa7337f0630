/* health.c: GET /healthz (the store's state from its in-memory view: "ok",
 * or "degraded" with the reason while the store does not answer, the node
 * serving from memory meanwhile, so the status stays 200; in cluster mode,
 * the state of the Redis link too) and GET /metrics (Prometheus text).
 * Neither needs auth: a load balancer or a scraper calls them, and they
 * carry nothing secret. Neither touches the store. */
#include "api.h"

#include "broker.h"
#include "cluster.h"
#include "errors.h"
#include "metrics.h"
#include "config.h"
#include "server.h"
#include "store.h"
#include "view.h"

#include <string.h>

void mint_healthz_get(struct mint_req *rq)
{
    char why[200];
    int degraded = rtm_view_status(rq->srv->view, why, sizeof why);
    json_t *reply = json_pack("{s:s, s:s, s:i, s:s}", "status", degraded ? "degraded" : "ok", "store",
                              degraded ? "degraded" : "ok", "schemaVersion", rtm_store_version(rq->srv->store),
                              "node", rq->srv->cfg->node_id);
    if (reply && degraded) json_object_set_new(reply, "storeError", json_string(why));
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
    /* The store's side: the view owns the rows waiting for the writer. */
    rtm_gauges[RTM_G_STORE_WRITE_LAG] = (double)rtm_view_write_lag_ms(rq->srv->view) / 1e3;
    rtm_counters[RTM_M_SESSION_ROWS_DROPPED] = rtm_view_rows_dropped(rq->srv->view);
    char *s = rtm_metrics_render();
    if (!s) {
        mint_reply_error(rq, RTM_WIRE_INTERNAL_ERROR, "out of memory");
        return;
    }
    mint_reply_raw(rq, 200, s, strlen(s), "text/plain; version=0.0.4");
}
