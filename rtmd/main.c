/* main.c: rtmd, the daemon: the broker (public listener) and the mint API
 * (backend listener) in one process, or either alone with --role.
 *
 * One libwebsockets context, one vhost per listener (listen.c), and struct
 * rtm_server as the context's user pointer so every callback reaches the
 * shared state. The loop, its timers, signals and the drain belong to loop.c;
 * the store's in-memory view (common/view.h) and the bus (common/bus.h) are
 * wired to the broker here. */
#include "broker.h"
#include "bus.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "../mint-api/mint.h" /* not common/mint.h */
#include "server.h"
#include "store.h"
#include "util.h"
#include "view.h"

#include <libwebsockets.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

/* Allocations of this size or more are mmap'd and unmapped on free (glibc's
 * M_MMAP_THRESHOLD, which also turns off its self-raising threshold). The
 * case: every handshake holds a 48 KB request-header buffer (listen.h) and
 * a connect storm has up to max-handshakes of them at once. From the heap,
 * freed between the sessions they admitted, they kept their pages resident:
 * rtm bench connect, 10,000 sessions, 4,635-4,684 bytes of RSS per idle
 * session with this against 4,852-5,189 without (load average 2-5). An
 * unmapped buffer also costs only the pages a request head touches. */
#define MMAP_FROM (32 * 1024)

/* lws's own warnings and errors go through our log, one line each. */
static void lws_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    rtm_log(level == LLL_ERR ? RTM_LOG_ERROR : RTM_LOG_WARN, "lws: %.*s", (int)n, line);
}

/* ---- the store's view and the bus, wired to the broker ----
 * The view's threads wake the loop with lws_cancel_service (the only
 * cross-thread call); the broker's and the mint API's protocols drain the
 * view in LWS_CALLBACK_EVENT_WAIT_CANCELLED. */
static struct lws_context *wake_ctx; /* read by the view's threads: atomics */

static void view_wake(void *arg)
{
    (void)arg;
    struct lws_context *ctx = __atomic_load_n(&wake_ctx, __ATOMIC_ACQUIRE);
    if (ctx) lws_cancel_service(ctx);
}

static int open_view_and_bus(struct rtm_server *srv, char *err, size_t errlen)
{
    const struct rtm_config *cfg = srv->cfg;
    struct rtm_store_opts so = {.password_file = cfg->db_password_file};
    struct rtm_view_opts vo = {
        .db = cfg->db_path,
        .store_opts = &so,
        .node_id = cfg->node_id,
        .poll_ms = cfg->store_poll_ms,
        .flush_ms = cfg->session_flush_ms,
        .rows_max = cfg->session_rows_max,
        .broker = srv->broker != NULL,
        .retention_ms = (int64_t)cfg->session_retention_days * 86400 * 1000,
    };
    struct rtm_view_hooks vh = {.wake = view_wake};
    brk_view_hooks(srv, &vh);
    if (rtm_view_open(&vo, &vh, &srv->view, err, errlen)) return -1;
    if (srv->broker) {
        struct rtm_bus_broker bb;
        brk_bus_broker(srv->broker, &bb);
        if (rtm_bus_local(&bb, srv->view, &srv->bus)) return -1;
    } else if (rtm_bus_store(srv->view, srv->store, &srv->bus)) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct rtm_config cfg;
    char err[512];
    mallopt(M_MMAP_THRESHOLD, MMAP_FROM); /* before any thread has its arena */
    int rc = rtm_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "rtmd: %s\n", err);
        return 2;
    }
    rtm_log_level = cfg.log_level;
    rtm_log_format = rtm_log_format_parse(cfg.log_format);

    int want_broker = strcmp(cfg.role, "mint") != 0;
    int want_mint = strcmp(cfg.role, "broker") != 0;
    int exit_code = 1;
    struct rtm_server srv;
    memset(&srv, 0, sizeof srv);
    srv.cfg = &cfg;

    if (cfg.n_turn_secrets == 0) {
        log_error("rtmd: no TURN secret: set RTM_TURN_SECRETS or \"turn-secrets\" in the config file "
                  "(tokens carry TURN credentials signed with it)");
        goto out;
    }
    if (rtm_loop_create(&srv)) {
        log_error("rtmd: out of memory");
        goto out;
    }
    struct rtm_store_opts store_opts = {.password_file = cfg.db_password_file};
    if (rtm_store_open_opts(cfg.db_path, &store_opts, &srv.store, err, sizeof err)) {
        log_error("rtmd: %s", err);
        goto out;
    }
    int dangling = rtm_store_sessions_close_dangling(srv.store, cfg.node_id, "server restart");
    if (dangling > 0) log_warn("rtmd: closed %d session rows left open by an unclean stop", dangling);

    if (want_broker && brk_create(&srv, &srv.broker)) {
        log_error("rtmd: broker initialisation failed");
        goto out;
    }
    err[0] = '\0';
    if (open_view_and_bus(&srv, err, sizeof err)) {
        log_error("rtmd: %s", err[0] ? err : "cannot start the store's view");
        goto out;
    }
    if (want_mint && mint_create(&srv, &srv.mint)) {
        log_error("rtmd: mint API initialisation failed");
        goto out;
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.user = &srv;
    /* Tokens of 16 KB and more travel in the request line or the subprotocol
     * header; lws's default of ~4 KB drops such requests without a response. */
    info.max_http_header_data = 49152;
    /* Concurrent request heads, both listeners; others wait. The public
     * listener may hold at most max-handshakes of them (rtmd/listen.c). */
    info.max_http_header_pool = RTM_HEADER_POOL;
    info.fd_limit_per_thread = 0;
    rtm_listen_context_options(&cfg, &info);
    if (rtm_loop_open(&srv, &info)) goto out;
    __atomic_store_n(&wake_ctx, srv.lws, __ATOMIC_RELEASE);
    lws_cancel_service(srv.lws); /* whatever the view posted before the loop existed */
    if (want_broker && rtm_listen_public(&srv)) goto out;
    if (want_mint && rtm_listen_backend(&srv)) goto out;

    if (rtm_loop_run(&srv) == 0) exit_code = 0;
    log_info("rtmd: stopped");
out:
    __atomic_store_n(&wake_ctx, NULL, __ATOMIC_RELEASE);
    rtm_loop_destroy(&srv); /* the last session rows reach the view here */
    rtm_listen_free();
    if (srv.mint) mint_destroy(srv.mint);
    rtm_bus_free(srv.bus);
    rtm_view_close(srv.view); /* writes what is pending, then stops its threads */
    if (srv.broker) brk_destroy(srv.broker);
    if (srv.store) rtm_store_close(srv.store);
    rtm_config_free(&cfg);
    return exit_code;
}
