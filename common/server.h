/* server.h: the one runtime context of an rtmd process.
 *
 * Exactly one exists, owned by rtmd's main(); it is the lws context's user
 * pointer, so any callback reaches it with lws_context_user(lws_get_context(wsi)).
 * Everything in it is used from the event-loop thread only (the view's
 * threads touch only the view's own state). */
#ifndef RTM_SERVER_H
#define RTM_SERVER_H

struct lws_context;
struct lws_vhost;
struct rtm_config;
struct rtm_store;
struct brk_broker;
struct mint_api;
struct rtm_loop;
struct ev_loop;
struct rtm_timers;
struct rtm_view;
struct rtm_bus;

struct rtm_server {
    const struct rtm_config *cfg;
    struct rtm_store *store;      /* the loop's handle: tools, the mint API's writes (not the broker) */
    struct rtm_view *view;        /* keys, apps, revocations in memory; the writer thread */
    struct rtm_bus *bus;          /* how the mint API reaches brokers (local or through the store) */
    struct lws_context *lws;
    struct rtm_loop *loop;        /* rtmd/loop.c: the event loop and its signals */
    struct rtm_timers *timers;    /* the loop's one timer heap: every timer of the process */
    struct ev_loop *ev;           /* the libev loop (rtmd/loop.c), for hiredis's libev adapter; NULL on a poll loop */
    struct lws_vhost *public_vh;  /* NULL with --role mint */
    struct lws_vhost *backend_vh; /* NULL with --role broker */
    struct brk_broker *broker;    /* NULL with --role mint */
    struct mint_api *mint;        /* NULL with --role broker */
    int stopping;                 /* set once SIGTERM/SIGINT arrived */
};

#endif
