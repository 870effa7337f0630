/* broker_env.c: see broker_env.h. */
#include "broker_env.h"
#include "support.h"

#include "config.h"
#include "log.h"
#include "bus.h"
#include "store.h"
#include "timers.h"
#include "util.h"
#include "view.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rtm_config benv_cfg;
struct rtm_server benv_srv;
static int ready;
static struct rtm_timers timers; /* armed by the broker, never run */

static void view_close(void)
{
    rtm_view_close(benv_srv.view);
    benv_srv.view = NULL;
}

void benv_init(const char *db_name)
{
    char err[256], db[160];
    char *args[] = {"rtmd", NULL};
    if (ready) return;
    ready = 1;
    if (rtm_config_load(&benv_cfg, 1, args, err, sizeof err)) abort();
    snprintf(db, sizeof db, "%s/%s", fuzz_tmpdir(), db_name);
    free(benv_cfg.db_path);
    benv_cfg.db_path = strdup(db);
    rtm_log_level = RTM_LOG_ERROR;
    if (rtm_store_open(db, &benv_srv.store, err, sizeof err)) abort();
    benv_srv.cfg = &benv_cfg;
    rtm_timers_init(&timers, NULL, NULL);
    benv_srv.timers = &timers;
    /* The store's view, as rtmd has it but without its threads (replay.c
     * forks after this): loaded once; revocations made through the bus reach
     * the broker at once, through the hooks; the mint API's key lookups see
     * the view behind the store and read the store, as rtmd's do. Closed
     * before the scratch directory goes (atexit runs in reverse order). */
    struct rtm_view_opts vo = {.db = db, .node_id = "fuzz", .poll_ms = 100, .flush_ms = 200, .rows_max = 1000,
                               .broker = 1, .no_threads = 1};
    struct rtm_view_hooks vh = {0};
    brk_view_hooks(&benv_srv, &vh);
    if (rtm_view_open(&vo, &vh, &benv_srv.view, err, sizeof err)) abort();
    atexit(view_close);
}

struct brk_broker *benv_broker(void)
{
    struct brk_broker *b;
    /* Keys and revocations the harness stored since: into the view, as its poll would. */
    if (rtm_view_poll_now(benv_srv.view)) abort();
    if (brk_create(&benv_srv, &b)) abort();
    benv_srv.broker = b;
    struct rtm_bus_broker bb;
    brk_bus_broker(b, &bb);
    if (rtm_bus_local(&bb, benv_srv.view, &benv_srv.bus)) abort();
    broker_loop_ready(b, fuzz_lws_context());
    return b;
}

void benv_broker_free(struct brk_broker *b)
{
    presence_flush(b); /* frees the channels the closes left */
    brk_destroy(b);
    benv_srv.broker = NULL;
    rtm_bus_free(benv_srv.bus);
    benv_srv.bus = NULL;
}

struct brk_session *benv_session_open(struct brk_broker *b, const struct benv_session *sp, int i)
{
    struct brk_session *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->b = b;
    outq_init(&s->q);
    htab_init(&s->subs, HTAB_PTR);
    snprintf(s->sid, sizeof s->sid, "ses_fuzz%d", i);
    snprintf(s->app, sizeof s->app, "fuzz");
    snprintf(s->remote, sizeof s->remote, "127.0.0.1");
    s->claims.sub = strdup(sp->peer);
    s->claims.jti = strdup("jti");
    s->claims.exp = rtm_now_s() + 3600;
    s->claims.channels = calloc(sp->n, sizeof *s->claims.channels);
    for (size_t k = 0; k < sp->n; k++) s->claims.channels[k] = strdup(sp->chans[k]);
    s->claims.n_channels = sp->n;
    s->claims.perms = s->perms = sp->perms;
    if (sp->peer_meta) s->claims.peer_metadata = json_loads(sp->peer_meta, 0, NULL);
    s->ext = sp->ext;
    if (peer_attach(s) || app_conns_add(b, s->app, 1)) abort();
    s->state = SESS_OPEN;
    s->attached = 1;
    s->next = b->sessions;
    if (b->sessions) b->sessions->prev = s;
    b->sessions = s;
    b->n_sessions++;
    return s;
}

void benv_session_close(struct brk_broker *b, struct brk_session *s)
{
    /* The real close path: the broker protocol's CLOSED (it never touches
     * the wsi), then what lws does after it, freeing the per-session data. */
    brk_protocols()[0].callback(NULL, LWS_CALLBACK_CLOSED, s, NULL, 0);
    free(s);
}
