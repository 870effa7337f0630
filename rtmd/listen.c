/* listen.c: creates the two listeners (one lws vhost each) and keeps the
 * public one within its share of the request-header pool.
 *
 * Design: the public vhost gets a copy of the broker's protocol table whose
 * callback is public_cb, which counts and then hands every event to the
 * broker's own callback unchanged. A connection counts as a handshake from
 * its accept (FILTER_NETWORK_CONNECTION, which knows the address, then
 * WSI_CREATE, which knows the wsi: lws calls them back to back) until it
 * becomes a WebSocket session (ESTABLISHED; lws drops its header space right
 * after) or is destroyed. A plain HTTP connection counts for its whole life:
 * it may hold header space for any of its requests. Counting at accept is the
 * only place a refusal costs nothing (no header space, no TLS, no response);
 * the kernel's accept queue stays drained. */
#include "listen.h"

#include "broker.h"
#include "config.h"
#include "htab.h"
#include "log.h"
#include "metrics.h"
#include "../mint-api/mint.h" /* not common/mint.h */
#include "server.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One per address with unfinished handshakes; owned by budget.by_ip. */
struct ip_count {
    char ip[64];
    int n;
};

/* The public listener's handshake budget: one per process. */
static struct {
    const struct rtm_config *cfg;
    lws_callback_function *inner;   /* the broker's callback */
    struct lws_protocols protos[2]; /* the broker's table with public_cb in front */
    struct htab by_ip;              /* ip -> ip_count (n >= 1) */
    struct htab by_wsi;             /* wsi -> ip_count: connections counted */
    struct ip_count *accepted;      /* counted at FILTER_NETWORK_CONNECTION, not yet given a wsi */
    int total;
    int refusing;                   /* a refusal is being logged: once per episode, not per connection */
} budget;

static void ip_string(const struct lws_filter_network_conn_args *a, char *out, size_t n)
{
    *out = '\0';
    if (a->cli_addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->cli_addr)->sin_addr, out, (socklen_t)n);
    else if (a->cli_addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->cli_addr)->sin6_addr, out, (socklen_t)n);
}

static void release(struct ip_count *c)
{
    budget.total--;
    rtm_gauges[RTM_G_HANDSHAKES] = budget.total;
    if (--c->n == 0) {
        htab_del(&budget.by_ip, c->ip);
        free(c);
    }
    if (budget.refusing && budget.total < budget.cfg->max_handshakes) {
        budget.refusing = 0;
        log_info("rtmd: public handshakes back under their budget (%d)", budget.total);
    }
}

static int refuse(const char *ip, const char *why, enum rtm_counter_id counter)
{
    rtm_metric_inc(counter, 1);
    if (!budget.refusing) {
        budget.refusing = 1;
        log_warn("rtmd: refusing public connections at accept: %s (first from %s)", why, ip);
    }
    return 1;
}

/* 0 to accept, non-zero to close the socket unanswered. */
static int on_accept(const struct lws_filter_network_conn_args *a)
{
    if (budget.accepted) { /* the last accept never got its wsi (adoption failed) */
        release(budget.accepted);
        budget.accepted = NULL;
    }
    char ip[64];
    ip_string(a, ip, sizeof ip);
    if (!*ip) snprintf(ip, sizeof ip, "unknown");
    if (budget.total >= budget.cfg->max_handshakes)
        return refuse(ip, "max-handshakes reached", RTM_M_HANDSHAKES_REFUSED_TOTAL);
    struct ip_count *c = htab_get(&budget.by_ip, ip);
    if (c && c->n >= budget.cfg->max_handshakes_per_ip)
        return refuse(ip, "max-handshakes-per-ip reached", RTM_M_HANDSHAKES_REFUSED_PER_IP);
    if (!c) {
        if (!(c = calloc(1, sizeof *c))) return 1;
        snprintf(c->ip, sizeof c->ip, "%s", ip);
        if (htab_put(&budget.by_ip, c->ip, c)) {
            free(c);
            return 1;
        }
    }
    c->n++;
    budget.total++;
    rtm_gauges[RTM_G_HANDSHAKES] = budget.total;
    budget.accepted = c;
    return 0;
}

static void on_wsi_create(struct lws *wsi)
{
    struct ip_count *c = budget.accepted;
    if (!c) return; /* not an accepted connection (the listening socket) */
    budget.accepted = NULL;
    if (htab_put(&budget.by_wsi, wsi, c)) release(c); /* out of memory: uncounted rather than leaked */
}

static void on_handshake_over(struct lws *wsi)
{
    struct ip_count *c = htab_del(&budget.by_wsi, wsi);
    if (c) release(c);
}

static int public_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
        /* The broker's own accept rule (connects per IP per minute) first. */
        int rc = budget.inner(wsi, reason, user, in, len);
        if (rc || !user) return rc;
        return on_accept(user);
    }
    case LWS_CALLBACK_WSI_CREATE:
        on_wsi_create(wsi);
        break;
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_WSI_DESTROY:
        on_handshake_over(wsi);
        break;
    default:
        break;
    }
    return budget.inner(wsi, reason, user, in, len);
}

static struct lws_vhost *listen_on(struct rtm_server *srv, const char *name, const char *addr,
                                   const struct lws_protocols *protocols,
                                   const struct lws_http_mount *mounts, int head_timeout_sec)
{
    char host[256];
    int port;
    if (rtm_config_split_addr(addr, host, sizeof host, &port)) return NULL;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.vhost_name = name;
    info.port = port;
    info.iface = host;
    info.protocols = protocols;
    info.mounts = mounts;
    /* Without DISABLE_IPV6 lws ignores iface and listens on every address. */
    if (!strchr(host, ':')) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    /* Browser security headers belong on what browsers load; the backend
     * API's callers are servers, and every reply there would carry ~450 bytes. */
    if (mounts) info.options |= LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    info.keepalive_timeout = 30;
    info.timeout_secs = 20; /* a client that stalls mid-request is dropped */
    /* From accept to a complete request head (lws's "ah idle" timeout, 10 s by default). */
    if (head_timeout_sec > 0) info.timeout_secs_ah_idle = (unsigned)head_timeout_sec;
    struct lws_vhost *vh = lws_create_vhost(srv->lws, &info);
    if (!vh) {
        log_error("rtmd: cannot listen on %s %s (port taken, or not a local address)", name, addr);
        return NULL;
    }
    log_info("rtmd: %s listener ready on http://%s", name, addr);
    return vh;
}

int rtm_listen_public(struct rtm_server *srv)
{
    const struct lws_protocols *p = brk_protocols();
    budget.cfg = srv->cfg;
    budget.inner = p[0].callback;
    budget.protos[0] = p[0];
    budget.protos[0].callback = public_cb;
    memset(&budget.protos[1], 0, sizeof budget.protos[1]);
    htab_init(&budget.by_ip, HTAB_STR);
    htab_init(&budget.by_wsi, HTAB_PTR);
    srv->public_vh = listen_on(srv, "public", srv->cfg->public_addr, budget.protos, brk_mounts(srv),
                               srv->cfg->handshake_timeout_sec);
    return srv->public_vh ? 0 : -1;
}

int rtm_listen_backend(struct rtm_server *srv)
{
    srv->backend_vh = listen_on(srv, "backend", srv->cfg->backend_addr, mint_protocols(), NULL, 0);
    return srv->backend_vh ? 0 : -1;
}

void rtm_listen_free(void)
{
    for (uint32_t i = 0; i < budget.by_ip.cap; i++)
        if (budget.by_ip.slots && budget.by_ip.slots[i].key) free(budget.by_ip.slots[i].val);
    htab_free(&budget.by_ip);
    htab_free(&budget.by_wsi);
    budget.accepted = NULL;
    budget.total = 0;
}
