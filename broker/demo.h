/* demo.h: the development-only token endpoint behind the demo page,
 * GET /demo/token?room=ROOM&name=NAME on the public listener.
 *
 * Served only when cfg->demo_token is on (`make run` turns it on); anyone who
 * can reach the public listener can mint with it, which is why it is off by
 * default and never meant for production. Loop thread only. */
#ifndef BRK_DEMO_H
#define BRK_DEMO_H

struct rtm_server;

/* Mints a token with the development key (cfg->demo_key_file) for peer
 * (a peerId this endpoint issued before, "demo-" + 16 hex digits, so a page
 * keeps its identity across refreshes and reconnects) or, when peer is NULL
 * or empty, a fresh random peerId, scoped to the one channel "room-<room>" (inside the room-*
 * family), all four permissions, the default lifetime, peerMetadata {name},
 * and TURN iceServers as the mint API adds them.
 * room: 1..64 of [A-Za-z0-9_-]; name: 1..64 bytes of UTF-8 without control
 * characters (both already URL-decoded, may be NULL = missing).
 * Always sets *json_out (malloc'd, caller frees) and *http_status:
 *   200 {"token","expiresAt","peerId","room","channel"} (a credential: send
 *       it with Cache-Control: no-store),
 *   400 {"error": invalid_request, "message"}, 404 when the endpoint is off,
 *   500 {"error": internal_error, "message"} (key file missing, key revoked).
 * Returns 0, or a negative rtm_err when even the error body could not be built
 * (*json_out NULL, answer 500 with no body). Never logs the token or secret. */
int brk_demo_token(struct rtm_server *srv, const char *room, const char *name, const char *peer,
                   char **json_out, int *http_status);

#endif
