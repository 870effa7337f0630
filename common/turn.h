/* turn.h: TURN credentials in the coturn REST scheme (use-auth-secret).
 *
 * username   = "<expiry unix seconds>:<user>"
 * credential = base64(HMAC-SHA1(secret, username))   (base64, not hex)
 * coturn accepts a credential while expiry is in the future and the HMAC
 * matches any of its static-auth-secret lines, which is how secrets rotate. */
#ifndef RTM_TURN_H
#define RTM_TURN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RTM_TURN_USERNAME_MAX 160
#define RTM_TURN_CREDENTIAL_MAX 32 /* base64 of 20 bytes = 28 chars + NUL */

int rtm_turn_credential(const char *secret, int64_t expiry, const char *user, char *username,
                        size_t username_len, char *credential, size_t credential_len);

/* The iceServers array RTCPeerConnection takes as is:
 *   [{"urls":[stun...]}, {"urls":[turn..., turns...], "username", "credential"}]
 * The stun entry is omitted when no stun: url is configured, the turn entry
 * when no turn:/turns: url is. Returns a new reference, or NULL on failure. */
json_t *rtm_turn_ice_servers(const char *secret, const char *const *urls, size_t n_urls,
                             const char *user, int64_t expiry);

#endif
