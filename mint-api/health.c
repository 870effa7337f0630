/* health.c: GET /healthz (the store answers a query) and GET /metrics
 * (Prometheus text). Neither needs auth: a load balancer or a scraper calls
 * them, and they carry nothing secret. */
#include "api.h"

#include "broker.h"
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
        mint_reply_json(rq, 503, json_pack("{s:s, s:s}", "status", "unavailable", "store", "error"), 0);
        return;
    }
    mint_reply_json(rq, 200,
                    json_pack("{s:s, s:s, s:i}", "status", "ok", "store", "ok", "schemaVersion",
                              rtm_store_version(rq->srv->store)),
                    0);
}

void mint_metrics_get(struct mint_req *rq)
{
    if (rq->srv->broker) brk_metrics_gauges(rq->srv->broker);
    char *s = rtm_metrics_render();
    if (!s) {
        mint_reply_error(rq, 500, "internal_error", "out of memory");
        return;
    }
    mint_reply_raw(rq, 200, s, strlen(s), "text/plain; version=0.0.4", 0);
}
