/* mint.h: issuing a token for a peer with a secret key: validation against
 * the key's scope, defaults, and a freshly minted TURN credential in
 * metadata.iceServers. Shared by the mint API (POST /v1/tokens), the
 * development demo endpoint and sdk-c's local signing helper. */
#ifndef RTM_MINT_COMMON_H
#define RTM_MINT_COMMON_H

#include <jansson.h>
#include <stdint.h>

struct rtm_key;

struct rtm_mint_request {
    const char *peer_id;
    const char *const *channels; /* NULL = the key's patterns */
    size_t n_channels;
    unsigned perms;              /* RTM_PERM_* */
    int perms_set;               /* 0 = the key's actions */
    int64_t expires_in;          /* seconds; 0 = default_ttl */
    json_t *metadata;            /* borrowed; object or NULL */
    json_t *peer_metadata;       /* borrowed; object or NULL */
    const char *bind_ip;         /* bind the token to this client address (hashed into it); NULL = no */
    const char *bind_ua;         /* ... and/or this User-Agent; NULL = no */
};

struct rtm_mint_policy {
    int default_ttl, max_ttl;          /* 3600, 86400 */
    const char *turn_secret;           /* signs TURN credentials; NULL = no iceServers added */
    const char *const *turn_urls;
    size_t n_turn_urls;
    int turn_ttl;                      /* 0 = token lifetime + 3600 */
};

/* On success: *token (malloc'd, caller frees), *expires_at, returns 0.
 * On failure returns a negative rtm_err with *err_code one of
 * the wire code of invalid_request, peer_id_reserved, channel_reserved (a
 * reserved name asked for), channel_not_authorized, action_not_permitted or
 * internal_error (common/protocol.c) and *err_msg a static human sentence. */
int rtm_mint(const struct rtm_mint_policy *pol, const struct rtm_key *key,
             const struct rtm_mint_request *rq, int64_t now, char **token, int64_t *expires_at,
             const char **err_code, const char **err_msg);

#endif
