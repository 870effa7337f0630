/* mint.h: the backend listener's REST API (tokens, TURN credentials,
 * revocations, JWKS, health, metrics, and the peers/sessions views).
 * Loop thread only. */
#ifndef RTM_MINT_H
#define RTM_MINT_H

struct lws_protocols;
struct rtm_server;
struct mint_api;

int mint_create(struct rtm_server *srv, struct mint_api **out);
void mint_destroy(struct mint_api *m);
/* Protocols for the backend vhost, terminated by a zeroed entry. */
const struct lws_protocols *mint_protocols(void);

#endif
