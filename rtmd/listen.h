/* listen.h: rtmd's listeners: the public and backend vhosts, and what keeps
 * the public side from starving the backend (issue 11 defect 2).
 *
 * lws 4.1.6 has one request-header pool per context (max_http_header_pool),
 * shared by both listeners. The public listener gets a budget of it: at most
 * max-handshakes connections that are not yet WebSocket sessions at once, at
 * most max-handshakes-per-ip of them per address (both refused at accept),
 * and handshake-timeout-sec for a complete request head. The pool is larger
 * than the budget, so the backend always finds header space.
 *
 * With tls-cert and tls-key the public listener (and with backend-tls the
 * backend one) serves TLS; SIGHUP reloads the pair, checked before use.
 * Loop thread only. */
#ifndef RTMD_LISTEN_H
#define RTMD_LISTEN_H

struct rtm_config;
struct rtm_server;
struct lws_context_creation_info;

/* The header pool rtmd creates its context with (main passes it to lws):
 * the public budget (max-handshakes, at most 1000) stays below it, so at
 * least 24 request heads of the backend are served at once whatever the
 * public side does. lws allocates header space only while a connection holds
 * it (max_http_header_data, 48 KB, each): the pool costs memory only in use,
 * at most about 48 MB with every slot taken. */
#define RTM_HEADER_POOL 1024

/* Adds the context options the listeners need (TLS library init when a
 * certificate is configured). Call before the context is created. */
void rtm_listen_context_options(const struct rtm_config *cfg, struct lws_context_creation_info *info);
/* Creates srv->public_vh (with the broker's protocols and mounts) on srv->lws. 0 or -1 (logged). */
int rtm_listen_public(struct rtm_server *srv);
/* Creates srv->backend_vh (the mint API's protocols) on srv->lws. 0 or -1 (logged). */
int rtm_listen_backend(struct rtm_server *srv);
/* Releases the per-address table (after the context is destroyed). */
void rtm_listen_free(void);

#endif
