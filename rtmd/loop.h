/* loop.h: rtmd's event loop: the lws context on it, the one timer heap,
 * SIGTERM/SIGINT and the drain. The only module that touches the loop
 * library; everything else arms rtm_timers through srv->timers.
 *
 * Order: rtm_loop_create (timers exist: the broker may be created), then
 * rtm_loop_open (the lws context, given its creation info), the listeners,
 * rtm_loop_run (returns after a signal and the drain), rtm_loop_destroy. */
#ifndef RTMD_LOOP_H
#define RTMD_LOOP_H

struct rtm_server;
struct lws_context_creation_info;

/* Sets srv->timers and srv->loop. 0 or RTM_ENOMEM. */
int rtm_loop_create(struct rtm_server *srv);
/* Creates srv->lws on the loop from info (the loop's options are added). 0 or -1 (logged). */
int rtm_loop_open(struct rtm_server *srv, struct lws_context_creation_info *info);
/* Serves until SIGTERM or SIGINT, then drains: going_away and 1001 to every
 * session (brk_begin_shutdown), waits until they are closed or
 * shutdown-grace-ms passed, writes the session rows. 0, or -1 when the loop failed. */
int rtm_loop_run(struct rtm_server *srv);
/* Destroys the lws context (if any), the loop and the timers. */
void rtm_loop_destroy(struct rtm_server *srv);

#endif
