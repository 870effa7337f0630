/* rio.h: plugs a hiredis async context into the process's event loop.
 *
 * The only file of the cluster that knows which loop runs rtmd. rtmd runs
 * on libev (rtmd/loop.c): hiredis's own libev adapter (redisLibevAttach)
 * watches each connection on that loop. On lws's own poll loop (ev NULL),
 * which has no hiredis adapter, rio hands lws a dup() of the hiredis socket
 * as a raw file descriptor, calls hiredis's read and write handlers from
 * lws's RAW_*_FILE callbacks and maps hiredis's "want to write" to
 * lws_callback_on_writable (PLATFORM-NOTES, hiredis); that path lost
 * re-subscriptions after a Redis stall under lws's libev plugin, so it is
 * used only on the poll loop. */
#ifndef CLU_RIO_H
#define CLU_RIO_H

struct ev_loop;
struct lws_context;
struct lws_vhost;
struct redisAsyncContext;

/* The vhost the adopted descriptors live on (no listener). NULL on failure.
 * Call from the loop, outside any lws callback (a timer is fine). */
struct lws_vhost *rio_vhost(struct lws_context *ctx);

/* Attaches ac. on_lost(arg) is called (from an lws callback, so the caller
 * must defer any hiredis teardown) when lws drops the descriptor on its own
 * (hang-up, error). The attachment ends with the hiredis context (its
 * cleanup hook). 0, or -1 (ac untouched; the caller frees it). */
int rio_attach(struct lws_vhost *vh, struct redisAsyncContext *ac, void (*on_lost)(void *arg), void *arg);
/* On a libev loop: hiredis's adapter (the connection's loss reaches hiredis
 * itself). 0, or -1 (ac untouched). */
int rio_attach_ev(struct ev_loop *ev, struct redisAsyncContext *ac);

#endif
